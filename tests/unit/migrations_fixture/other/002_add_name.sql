ALTER TABLE @SCHEMA@.things ADD COLUMN name text;
