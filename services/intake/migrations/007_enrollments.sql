-- Enrollment episodes: a client joins a program on a pathway (a brief
-- check-in, or the comprehensive pathway that requires an intake
-- assessment and an initial recovery plan within a set number of days),
-- and is discharged with a reason. Re-enrollment after a discharge is
-- normal in recovery: it is a new episode. One open episode at a time.
CREATE TABLE intake.enrollments (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id        uuid NOT NULL REFERENCES intake.clients,
    program          text NOT NULL CHECK (length(program) BETWEEN 1 AND 100),
    pathway          text NOT NULL CHECK (pathway IN ('brief', 'comprehensive')),
    started_on       date NOT NULL,
    discharged_on    date CHECK (discharged_on >= started_on),
    discharge_reason text CHECK (discharge_reason IN ('goals_met', 'completed', 'moved',
                                 'transferred', 'lost_contact', 'declined', 'incarcerated',
                                 'deceased', 'other')),
    enrolled_by      uuid NOT NULL,
    discharged_by    uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((discharged_on IS NULL) = (discharge_reason IS NULL))
);
CREATE UNIQUE INDEX enrollments_one_open ON intake.enrollments (client_id)
    WHERE discharged_on IS NULL;
CREATE INDEX enrollments_client ON intake.enrollments (client_id, started_on);

ALTER TABLE intake.enrollments ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.enrollments FORCE ROW LEVEL SECURITY;
CREATE POLICY enrollments_visible ON intake.enrollments FOR SELECT
    USING (EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id));
CREATE POLICY enrollments_enroll ON intake.enrollments FOR INSERT
    WITH CHECK (enrolled_by = scope.staff_id()
                AND EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id
                            AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id)));
CREATE POLICY enrollments_discharge ON intake.enrollments FOR UPDATE
    USING (EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id
                   AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id)))
    WITH CHECK (discharged_by = scope.staff_id());

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON intake.enrollments TO beacon_service;
        GRANT UPDATE (discharged_on, discharge_reason, discharged_by) ON intake.enrollments
            TO beacon_service;
    END IF;
END $$;
