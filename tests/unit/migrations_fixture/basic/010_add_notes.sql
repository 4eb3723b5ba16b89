ALTER TABLE @SCHEMA@.items ADD COLUMN notes text;
