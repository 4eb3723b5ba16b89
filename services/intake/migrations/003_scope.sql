-- Who may see which client, enforced by PostgreSQL itself (row-level
-- security, FORCEd so that the owner is held to it too) as a second line
-- behind the handlers' own filters. The matrix (README, "Who may do what"):
--   supervisor        every client of their sites
--   peer_specialist   clients of their sites assigned to them, and every
--                     client of a site that allows site caseloads
--   anyone else       no client
-- plus break-glass: a time-limited, reasoned, audited grant to one client
-- outside that scope, visible to the supervisors of the client's site.
--
-- Clients registered before this migration have no agency or site: no
-- policy admits them until an administrator places them (the constraint is
-- NOT VALID: it holds for every new or changed row).
ALTER TABLE intake.clients
    ADD COLUMN agency_id uuid,
    ADD COLUMN site_id uuid,
    ADD COLUMN assigned_staff_id uuid;
ALTER TABLE intake.clients ADD CONSTRAINT clients_placed
    CHECK (agency_id IS NOT NULL AND site_id IS NOT NULL) NOT VALID;
CREATE INDEX clients_site ON intake.clients (site_id);
CREATE INDEX clients_assigned ON intake.clients (assigned_staff_id)
    WHERE assigned_staff_id IS NOT NULL;

-- True when the caller's ordinary scope covers a client so placed.
CREATE FUNCTION intake.in_scope(c_agency uuid, c_site uuid, c_assigned uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT c_agency = scope.agency_id() AND c_site = ANY (scope.site_ids()) AND (
               scope.has_role('supervisor')
            OR (scope.has_role('peer_specialist')
                AND (c_assigned = scope.staff_id() OR c_site = ANY (scope.caseload_site_ids()))))
$$;

-- Break-glass grants. A grant is opened by inserting it and then reading
-- the client through it (the client's site is recorded from that read); a
-- client that does not exist in the caller's agency reads as nothing and
-- the grant is rolled back, so a grant never tells anyone more than a 404.
CREATE TABLE intake.break_glass (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agency_id  uuid NOT NULL,
    staff_id   uuid NOT NULL,
    client_id  uuid NOT NULL REFERENCES intake.clients,
    site_id    uuid,
    reason     text NOT NULL CHECK (length(reason) BETWEEN 10 AND 1000),
    granted_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    request_id text CHECK (length(request_id) <= 128),
    CHECK (expires_at > granted_at AND expires_at <= granted_at + interval '8 hours')
);
CREATE INDEX break_glass_holder ON intake.break_glass (staff_id, client_id, expires_at);
CREATE INDEX break_glass_site ON intake.break_glass (site_id, granted_at);

ALTER TABLE intake.break_glass ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.break_glass FORCE ROW LEVEL SECURITY;
CREATE POLICY break_glass_read ON intake.break_glass FOR SELECT
    USING (agency_id = scope.agency_id() AND (
               staff_id = scope.staff_id()
            OR (scope.has_role('supervisor') AND site_id = ANY (scope.site_ids()))));
CREATE POLICY break_glass_open ON intake.break_glass FOR INSERT
    WITH CHECK (agency_id = scope.agency_id() AND staff_id = scope.staff_id()
                AND (scope.has_role('peer_specialist') OR scope.has_role('supervisor')));
CREATE POLICY break_glass_place ON intake.break_glass FOR UPDATE
    USING (staff_id = scope.staff_id() AND agency_id = scope.agency_id())
    WITH CHECK (staff_id = scope.staff_id() AND agency_id = scope.agency_id());

ALTER TABLE intake.clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.clients FORCE ROW LEVEL SECURITY;
CREATE POLICY clients_read ON intake.clients FOR SELECT
    USING (intake.in_scope(agency_id, site_id, assigned_staff_id)
           OR ((scope.has_role('peer_specialist') OR scope.has_role('supervisor'))
               AND EXISTS (SELECT FROM intake.break_glass g
                           WHERE g.client_id = clients.id AND g.agency_id = clients.agency_id
                             AND g.staff_id = scope.staff_id() AND g.expires_at > now())));
CREATE POLICY clients_register ON intake.clients FOR INSERT
    WITH CHECK (intake.in_scope(agency_id, site_id, assigned_staff_id));
CREATE POLICY clients_change ON intake.clients FOR UPDATE
    USING (intake.in_scope(agency_id, site_id, assigned_staff_id))
    WITH CHECK (intake.in_scope(agency_id, site_id, assigned_staff_id));

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON intake.break_glass TO beacon_service;
        GRANT UPDATE (site_id) ON intake.break_glass TO beacon_service;
    END IF;
END $$;
