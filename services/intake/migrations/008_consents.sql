-- Consents to disclose substance-use-disorder records (42 CFR Part 2,
-- section 2.31, as amended in 2024). Every required element is a column
-- that must be filled: who may disclose, what information (an explicit
-- description), to whom (named recipients, or for treatment, payment and
-- health care operations a general designation "*"), for what purposes,
-- the right to revoke and how, an expiry date or event, the signature and
-- its date. Status is derived, never stored: revoked (a written revocation
-- was received; effective at once), expired (past its date), or active.
-- consent.check (CheckConsent) reads this table on every call: nothing is
-- cached that could outlive a revocation.
CREATE TABLE intake.consents (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id               uuid NOT NULL REFERENCES intake.clients,
    disclosing_party        text NOT NULL CHECK (length(disclosing_party) BETWEEN 1 AND 200),
    information_description text NOT NULL
        CHECK (length(information_description) BETWEEN 10 AND 2000),
    recipients              text[] NOT NULL
        CHECK (cardinality(recipients) BETWEEN 1 AND 50),
    purposes                text[] NOT NULL CHECK (cardinality(purposes) BETWEEN 1 AND 10
        AND purposes <@ ARRAY['treatment', 'payment', 'health_care_operations', 'referral',
                              'care_coordination', 'benefits_enrollment', 'legal', 'other']),
    purpose_description     text NOT NULL DEFAULT '' CHECK (length(purpose_description) <= 1000),
    right_to_revoke_explained boolean NOT NULL CHECK (right_to_revoke_explained),
    revocation_instructions text NOT NULL CHECK (length(revocation_instructions) BETWEEN 1 AND 1000),
    expires_on              date,
    expiry_event            text CHECK (length(expiry_event) BETWEEN 1 AND 500),
    signed_by               text NOT NULL CHECK (length(signed_by) BETWEEN 1 AND 200),
    signer_relationship     text NOT NULL
        CHECK (signer_relationship IN ('self', 'guardian', 'personal_representative')),
    signature_method        text NOT NULL CHECK (signature_method IN ('wet', 'electronic')),
    signed_on               date NOT NULL,
    recorded_by             uuid NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    revoked_at              timestamptz,
    revocation_received_on  date,
    revoked_by              uuid,
    revocation_note         text CHECK (length(revocation_note) <= 1000),
    CHECK (expires_on IS NOT NULL OR expiry_event IS NOT NULL),
    CHECK (expires_on IS NULL OR expires_on >= signed_on),
    -- A general designation only for treatment, payment and operations.
    CHECK (NOT ('*' = ANY (recipients))
           OR purposes <@ ARRAY['treatment', 'payment', 'health_care_operations']),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX consents_client ON intake.consents (client_id, created_at);

ALTER TABLE intake.consents ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.consents FORCE ROW LEVEL SECURITY;
CREATE POLICY consents_visible ON intake.consents FOR SELECT
    USING (EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id));
CREATE POLICY consents_record ON intake.consents FOR INSERT
    WITH CHECK (recorded_by = scope.staff_id()
                AND EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id
                            AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id)));
CREATE POLICY consents_revoke ON intake.consents FOR UPDATE
    USING (EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id
                   AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id)))
    WITH CHECK (revoked_by = scope.staff_id());

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON intake.consents TO beacon_service;
        GRANT UPDATE (revoked_at, revocation_received_on, revoked_by, revocation_note)
            ON intake.consents TO beacon_service;
    END IF;
END $$;
