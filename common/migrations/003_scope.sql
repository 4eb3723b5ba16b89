-- The caller's scope as row-level security policies read it. The dispatcher
-- (common/bc_dispatch.c) puts the principal the gateway authenticated into
-- session settings before each request's handler runs:
--   beacon.staff_id, beacon.agency_id, beacon.api_key_id   one id or ''
--   beacon.site_ids, beacon.caseload_site_ids, beacon.roles  comma-separated
-- These functions turn them into typed values. An unset or empty setting is
-- "nobody": NULL ids, empty arrays, no roles, so every policy denies.
-- They are plain SQL and STABLE with no SET clause, so the planner inlines
-- them into the policies (a SET search_path would make every call a real
-- function call with a settings save and restore: measured at about four
-- times the cost of the whole primary-key read). Every name in them is
-- schema-qualified or a pg_catalog built-in, which is searched first.
CREATE SCHEMA IF NOT EXISTS scope;
COMMENT ON SCHEMA scope IS 'Beacon: the caller''s scope, for row-level security policies';

CREATE FUNCTION scope.ids(setting text) RETURNS uuid[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(string_to_array(nullif(current_setting(setting, true), ''), ',')::uuid[],
                    '{}'::uuid[])
$$;

CREATE FUNCTION scope.staff_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('beacon.staff_id', true), '')::uuid
$$;

CREATE FUNCTION scope.agency_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('beacon.agency_id', true), '')::uuid
$$;

CREATE FUNCTION scope.site_ids() RETURNS uuid[]
LANGUAGE sql STABLE AS $$
    SELECT scope.ids('beacon.site_ids')
$$;

CREATE FUNCTION scope.caseload_site_ids() RETURNS uuid[]
LANGUAGE sql STABLE AS $$
    SELECT scope.ids('beacon.caseload_site_ids')
$$;

CREATE FUNCTION scope.has_role(role text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(role = ANY (string_to_array(nullif(current_setting('beacon.roles', true), ''),
                                                ',')), false)
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT USAGE ON SCHEMA scope TO beacon_service;
    END IF;
END $$;
