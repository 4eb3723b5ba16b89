-- The scheduling service's own schema. Tables arrive with the scheduling issue.
CREATE SCHEMA IF NOT EXISTS scheduling;
COMMENT ON SCHEMA scheduling IS 'Beacon scheduling service';
