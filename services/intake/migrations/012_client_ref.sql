-- Published to the other services (scheduling, notes, referral): what they
-- need to know about a client to act on the caller's behalf. It runs with
-- the caller's rights (SECURITY INVOKER, the default), so intake.clients'
-- row policies apply with the caller's scope: a client the caller may not
-- see is simply not returned, exactly as a client that does not exist.
-- initials stand in for the name where a schedule leaves Beacon (calendar
-- feeds) and must say as little as possible.
CREATE FUNCTION intake.client_ref(client uuid)
RETURNS TABLE (site_id uuid, status text, enrolled boolean, assigned_staff_id uuid,
               initials text, merged_into uuid)
LANGUAGE sql STABLE AS $$
    SELECT c.site_id, c.status,
           EXISTS (SELECT FROM intake.enrollments e
                   WHERE e.client_id = c.id AND e.discharged_on IS NULL),
           c.assigned_staff_id,
           upper(left(coalesce(nullif(c.preferred_name, ''), c.given_name), 1))
               || upper(left(c.family_name, 1)),
           c.merged_into
    FROM intake.clients c
    WHERE c.id = client AND c.agency_id = scope.agency_id()
$$;

COMMENT ON FUNCTION intake.client_ref(uuid) IS
    'Published to the services: a client in the caller''s scope (site, status, open episode)';

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT EXECUTE ON FUNCTION intake.client_ref(uuid) TO beacon_service;
    END IF;
END $$;
