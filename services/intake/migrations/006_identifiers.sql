-- Identifiers at rest and duplicate detection.
--
-- medicaid_id_enc holds the Medicaid ID encrypted (AES-256-GCM envelope
-- "v1:<key id>:<base64>", bound to the row and column by associated data;
-- common/bc_crypt.h); the clear value never reaches the database.
--
-- intake.client_match_keys holds, per client, keyed hashes (HMAC-SHA256
-- blind indexes) of name + date of birth and of the Medicaid ID. They let
-- intake tell a caller registering someone that a matching client already
-- exists in the agency, even at a site the caller cannot see, without that
-- table holding any readable personal data; the caller learns only that a
-- match exists (and its id when the client is in their scope).
ALTER TABLE intake.clients ADD COLUMN medicaid_id_enc text
    CHECK (medicaid_id_enc LIKE 'v1:%' AND length(medicaid_id_enc) <= 512);

CREATE TABLE intake.client_match_keys (
    client_id      uuid PRIMARY KEY REFERENCES intake.clients,
    agency_id      uuid NOT NULL,
    name_dob_index text NOT NULL CHECK (name_dob_index ~ '^[0-9a-f]{64}$'),
    medicaid_index text CHECK (medicaid_index ~ '^[0-9a-f]{64}$')
);
CREATE INDEX client_match_keys_name_dob ON intake.client_match_keys (agency_id, name_dob_index);
CREATE INDEX client_match_keys_medicaid ON intake.client_match_keys (agency_id, medicaid_index)
    WHERE medicaid_index IS NOT NULL;

ALTER TABLE intake.client_match_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.client_match_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY client_match_keys_agency ON intake.client_match_keys
    USING (agency_id = scope.agency_id()
           AND (scope.has_role('peer_specialist') OR scope.has_role('supervisor')))
    WITH CHECK (agency_id = scope.agency_id()
                AND (scope.has_role('peer_specialist') OR scope.has_role('supervisor')));

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON intake.client_match_keys TO beacon_service;
        GRANT UPDATE (name_dob_index, medicaid_index) ON intake.client_match_keys
            TO beacon_service;
    END IF;
END $$;
