-- Recovery plans: a client's goals across life domains, each with steps,
-- a target date, a lifecycle status (FHIR Goal.lifecycleStatus names:
-- proposed, active, on-hold, completed, cancelled) and progress entries
-- (the status history lives there). Visible exactly when the client is;
-- written only within the ordinary scope.
CREATE TABLE intake.goals (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id   uuid NOT NULL REFERENCES intake.clients,
    domain      text NOT NULL CHECK (domain IN ('recovery', 'housing', 'employment', 'education',
                    'health', 'mental_health', 'relationships', 'family', 'finances', 'legal',
                    'community', 'other')),
    description text NOT NULL CHECK (length(description) BETWEEN 1 AND 1000),
    target_date date,
    status      text NOT NULL DEFAULT 'proposed'
                CHECK (status IN ('proposed', 'active', 'on-hold', 'completed', 'cancelled')),
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX goals_client ON intake.goals (client_id, created_at);

CREATE TABLE intake.goal_steps (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    goal_id     uuid NOT NULL REFERENCES intake.goals,
    position    integer NOT NULL CHECK (position BETWEEN 1 AND 50),
    description text NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
    target_date date,
    done_on     date,
    UNIQUE (goal_id, position)
);

CREATE TABLE intake.goal_progress (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    goal_id     uuid NOT NULL REFERENCES intake.goals,
    note        text NOT NULL CHECK (length(note) BETWEEN 1 AND 2000),
    from_status text,
    to_status   text,
    step_done   integer,
    recorded_by uuid NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX goal_progress_goal ON intake.goal_progress (goal_id, recorded_at);

ALTER TABLE intake.goals ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.goals FORCE ROW LEVEL SECURITY;
ALTER TABLE intake.goal_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.goal_steps FORCE ROW LEVEL SECURITY;
ALTER TABLE intake.goal_progress ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.goal_progress FORCE ROW LEVEL SECURITY;

CREATE POLICY goals_visible ON intake.goals FOR SELECT
    USING (EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id));
CREATE POLICY goals_write ON intake.goals FOR INSERT
    WITH CHECK (created_by = scope.staff_id()
                AND EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id
                            AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id)));
CREATE POLICY goals_change ON intake.goals FOR UPDATE
    USING (EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id
                   AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id)));
CREATE POLICY goal_steps_visible ON intake.goal_steps FOR SELECT
    USING (EXISTS (SELECT FROM intake.goals g WHERE g.id = goal_id));
CREATE POLICY goal_steps_write ON intake.goal_steps FOR INSERT
    WITH CHECK (EXISTS (SELECT FROM intake.goals g JOIN intake.clients c ON c.id = g.client_id
                        WHERE g.id = goal_id
                          AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id)));
CREATE POLICY goal_steps_change ON intake.goal_steps FOR UPDATE
    USING (EXISTS (SELECT FROM intake.goals g JOIN intake.clients c ON c.id = g.client_id
                   WHERE g.id = goal_id
                     AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id)));
CREATE POLICY goal_progress_visible ON intake.goal_progress FOR SELECT
    USING (EXISTS (SELECT FROM intake.goals g WHERE g.id = goal_id));
CREATE POLICY goal_progress_write ON intake.goal_progress FOR INSERT
    WITH CHECK (recorded_by = scope.staff_id()
                AND EXISTS (SELECT FROM intake.goals g JOIN intake.clients c ON c.id = g.client_id
                            WHERE g.id = goal_id
                              AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id)));

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON intake.goals, intake.goal_steps, intake.goal_progress
            TO beacon_service;
        GRANT UPDATE (status, updated_at) ON intake.goals TO beacon_service;
        GRANT UPDATE (done_on) ON intake.goal_steps TO beacon_service;
    END IF;
END $$;
