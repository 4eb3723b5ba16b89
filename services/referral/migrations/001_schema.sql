-- The referral service's own schema. Tables arrive with the referral issue.
CREATE SCHEMA IF NOT EXISTS referral;
COMMENT ON SCHEMA referral IS 'Beacon referral service';
