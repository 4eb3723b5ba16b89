-- Assessments: one row per administration of an instrument to a client.
-- Answers and scores are stored as the service computed them (scores are
-- never recomputed from a later version of the definition); the
-- instrument's version is kept with them. Visible exactly when the client
-- is (the policy reads intake.clients, whose own policy applies inside it).
CREATE TABLE intake.assessments (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id          uuid NOT NULL REFERENCES intake.clients,
    instrument_id      text NOT NULL CHECK (instrument_id ~ '^[a-z0-9_-]{1,64}$'),
    instrument_version text NOT NULL CHECK (length(instrument_version) BETWEEN 1 AND 64),
    administered_on    date NOT NULL,
    answers            jsonb NOT NULL CHECK (jsonb_typeof(answers) = 'array'),
    total              integer NOT NULL,
    subscales          jsonb NOT NULL DEFAULT '[]',
    bands              text[] NOT NULL DEFAULT '{}',
    recorded_by        uuid NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assessments_client ON intake.assessments (client_id, instrument_id, administered_on, created_at);

ALTER TABLE intake.assessments ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.assessments FORCE ROW LEVEL SECURITY;
CREATE POLICY assessments_visible ON intake.assessments FOR SELECT
    USING (EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id));
-- Recording needs the ordinary scope (break-glass reads, it does not write).
CREATE POLICY assessments_record ON intake.assessments FOR INSERT
    WITH CHECK (recorded_by = scope.staff_id()
                AND EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id
                            AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id)));

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON intake.assessments TO beacon_service;
    END IF;
END $$;
