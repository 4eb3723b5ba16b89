-- The notes service's own schema. Tables arrive with the notes issue.
CREATE SCHEMA IF NOT EXISTS notes;
COMMENT ON SCHEMA notes IS 'Beacon notes service';
