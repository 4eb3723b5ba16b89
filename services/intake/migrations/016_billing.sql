-- Billing: diagnoses on file, and what the billing role may read.
--
-- A claim needs an ICD-10-CM diagnosis on file (a SUD diagnosis, F10-F19,
-- by default): intake.diagnoses holds them with onset, recorded and
-- resolved dates. The care team records and reads them like the rest of
-- the record (visible exactly when the client is).
--
-- The billing role reads clients (and through them their episodes,
-- consents and diagnoses) of its sites only inside the transaction of
-- BillingSubjects (diagnoses.c), which sets beacon.purpose = billing; every
-- other method sees nothing with it.
CREATE TABLE intake.diagnoses (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id   uuid NOT NULL REFERENCES intake.clients,
    code        text NOT NULL CHECK (code ~ '^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$'),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 300),
    onset_on    date,
    recorded_on date NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date,
    resolved_on date CHECK (resolved_on >= onset_on),
    recorded_by uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX diagnoses_client ON intake.diagnoses (client_id, recorded_on);

ALTER TABLE intake.diagnoses ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.diagnoses FORCE ROW LEVEL SECURITY;
CREATE POLICY diagnoses_visible ON intake.diagnoses FOR SELECT
    USING (EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id));
CREATE POLICY diagnoses_record ON intake.diagnoses FOR INSERT
    WITH CHECK (recorded_by = scope.staff_id()
                AND EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id
                            AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id)));

CREATE POLICY clients_billing ON intake.clients FOR SELECT
    USING (scope.has_role('billing')
           AND current_setting('beacon.purpose', true) = 'billing'
           AND agency_id = scope.agency_id() AND site_id = ANY (scope.site_ids()));

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON intake.diagnoses TO beacon_service;
    END IF;
END $$;
