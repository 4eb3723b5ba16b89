-- Runs after 099 (numeric order, not string order): the table must exist.
ALTER TABLE @SCHEMA@.log ADD COLUMN at timestamptz NOT NULL DEFAULT now();
