-- Services connect as beacon_app (a member of beacon_service), which owns
-- nothing. Health reports the applied migrations, so it reads the runner's
-- table. Guarded so that a database without the roles (unit tests) still
-- migrates.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT ON public.beacon_schema_migrations TO beacon_service;
    END IF;
END $$;
