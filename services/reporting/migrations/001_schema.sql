-- The reporting service's own schema. Tables arrive with the reporting issue.
CREATE SCHEMA IF NOT EXISTS reporting;
COMMENT ON SCHEMA reporting IS 'Beacon reporting service';
