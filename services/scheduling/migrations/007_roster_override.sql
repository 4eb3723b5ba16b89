-- Enrolling a client whose appointments or other groups collide with the
-- group's meetings is refused unless a supervisor overrides with a reason;
-- the reason is kept with the roster entry, as with appointments.
ALTER TABLE scheduling.group_roster
    ADD COLUMN override_reason text CHECK (length(override_reason) <= 500);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT UPDATE (override_reason) ON scheduling.group_roster TO beacon_service;
    END IF;
END $$;
