-- The client record in full: contact details and preferences, address,
-- emergency contact, a version for optimistic concurrency (If-Match), and
-- the history of caseload assignments.
--
-- Identifiers (Medicaid ID and others) arrive with field encryption in a
-- later migration: they are never stored in the clear.
ALTER TABLE intake.clients
    ADD COLUMN version                  integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD COLUMN phone                    text CHECK (length(phone) <= 40),
    ADD COLUMN email                    text CHECK (length(email) <= 254),
    ADD COLUMN preferred_contact_method text NOT NULL DEFAULT 'phone'
        CHECK (preferred_contact_method IN ('phone', 'sms', 'email', 'mail', 'in_person')),
    ADD COLUMN do_not_contact           boolean NOT NULL DEFAULT false,
    ADD COLUMN address_lines            text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(address_lines) <= 4),
    ADD COLUMN city                     text NOT NULL DEFAULT '' CHECK (length(city) <= 100),
    ADD COLUMN state                    text NOT NULL DEFAULT '' CHECK (length(state) <= 100),
    ADD COLUMN postal_code              text NOT NULL DEFAULT '' CHECK (length(postal_code) <= 20),
    ADD COLUMN emergency_contact_name   text NOT NULL DEFAULT ''
        CHECK (length(emergency_contact_name) <= 200),
    ADD COLUMN emergency_contact_relationship text NOT NULL DEFAULT ''
        CHECK (length(emergency_contact_relationship) <= 100),
    ADD COLUMN emergency_contact_phone  text NOT NULL DEFAULT ''
        CHECK (length(emergency_contact_phone) <= 40),
    ADD COLUMN updated_by               text NOT NULL DEFAULT '';

-- Caseload listing: by site and status, newest first, and by specialist.
CREATE INDEX clients_site_status ON intake.clients (site_id, status, created_at DESC, id DESC);
CREATE INDEX clients_assigned_status ON intake.clients (assigned_staff_id, status, created_at DESC, id DESC)
    WHERE assigned_staff_id IS NOT NULL;

-- Who held the client on their caseload, when, and who decided. Visible
-- exactly when the client is (the policy reads intake.clients, whose own
-- policy applies inside it).
CREATE TABLE intake.client_assignments (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id     uuid NOT NULL REFERENCES intake.clients,
    staff_id      uuid,           -- NULL: unassigned from here on
    assigned_by   uuid NOT NULL,
    assigned_at   timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    reason        text NOT NULL DEFAULT '' CHECK (length(reason) <= 500)
);
CREATE INDEX client_assignments_client ON intake.client_assignments (client_id, assigned_at);

ALTER TABLE intake.client_assignments ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.client_assignments FORCE ROW LEVEL SECURITY;
CREATE POLICY client_assignments_visible ON intake.client_assignments FOR SELECT
    USING (EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id));
CREATE POLICY client_assignments_record ON intake.client_assignments FOR INSERT
    WITH CHECK (assigned_by = scope.staff_id()
                AND EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id));
CREATE POLICY client_assignments_close ON intake.client_assignments FOR UPDATE
    USING (EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id))
    WITH CHECK (EXISTS (SELECT FROM intake.clients c WHERE c.id = client_id));

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON intake.client_assignments TO beacon_service;
        GRANT UPDATE (ended_at) ON intake.client_assignments TO beacon_service;
    END IF;
END $$;

-- History starts with the current assignments (row security is lifted for
-- the owner for this one statement: a migration has no caller scope).
ALTER TABLE intake.clients NO FORCE ROW LEVEL SECURITY;
ALTER TABLE intake.client_assignments NO FORCE ROW LEVEL SECURITY;
INSERT INTO intake.client_assignments (client_id, staff_id, assigned_by, assigned_at)
SELECT id, assigned_staff_id, assigned_staff_id, created_at FROM intake.clients
WHERE assigned_staff_id IS NOT NULL;
ALTER TABLE intake.clients FORCE ROW LEVEL SECURITY;
ALTER TABLE intake.client_assignments FORCE ROW LEVEL SECURITY;
