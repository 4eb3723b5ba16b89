-- The parts of identity other services may read: which sites exist (with
-- their IANA time zone, which scheduling needs to read and write local
-- times) and which active staff work at which site (who may be booked).
-- Views, so the tables behind them can change without the readers knowing;
-- read-only for everyone but identity.
CREATE VIEW identity.site_directory AS
    SELECT id AS site_id, agency_id, name, time_zone FROM identity.sites;

CREATE VIEW identity.staff_site_directory AS
    SELECT ss.staff_id, ss.agency_id, ss.site_id
    FROM identity.staff_sites ss JOIN identity.staff s ON s.id = ss.staff_id
    WHERE s.status = 'active';

COMMENT ON VIEW identity.site_directory IS
    'Published to the services: sites and their time zones (read-only)';
COMMENT ON VIEW identity.staff_site_directory IS
    'Published to the services: active staff by site (read-only)';

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT ON identity.site_directory, identity.staff_site_directory
            TO beacon_service;
    END IF;
END $$;
