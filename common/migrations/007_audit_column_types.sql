-- Audit columns bounded by their type instead of by CHECK constraints.
--
-- PostgreSQL prepares a table's CHECK constraints afresh for every statement
-- that inserts into it (each is read back from its stored form and run
-- through the expression planner), so the nine length checks of 001 cost
-- more than the rest of a one-row audit insert together; on a registration
-- the constraints of the audit row and the client row were an eighth of the
-- database's CPU. A varchar(n) column enforces the same bound through the
-- insert's own plan, prepared once. The bounds are in characters where 001
-- counted bytes; every value here is an id, a code or a short purpose.
--
-- This rewrites audit.events once, holding its lock for the time that takes
-- on a large table: plan the upgrade for a quiet hour.
ALTER TABLE audit.events
    DROP CONSTRAINT events_request_id_check,
    DROP CONSTRAINT events_actor_staff_id_check,
    DROP CONSTRAINT events_actor_api_key_id_check,
    DROP CONSTRAINT events_agency_id_check,
    DROP CONSTRAINT events_site_id_check,
    DROP CONSTRAINT events_resource_type_check,
    DROP CONSTRAINT events_resource_id_check,
    DROP CONSTRAINT events_client_id_check,
    DROP CONSTRAINT events_purpose_check,
    ALTER COLUMN request_id TYPE varchar(128),
    ALTER COLUMN actor_staff_id TYPE varchar(128),
    ALTER COLUMN actor_api_key_id TYPE varchar(128),
    ALTER COLUMN agency_id TYPE varchar(128),
    ALTER COLUMN site_id TYPE varchar(128),
    ALTER COLUMN resource_type TYPE varchar(64),
    ALTER COLUMN resource_id TYPE varchar(128),
    ALTER COLUMN client_id TYPE varchar(128),
    ALTER COLUMN purpose TYPE varchar(512);

-- The action's form without a regular expression (a counted repetition in
-- PostgreSQL's engine costs more than the rest of the row's checks): a
-- lowercase letter, then up to 31 lowercase letters, digits or underscores.
ALTER TABLE audit.events
    DROP CONSTRAINT events_action_check,
    ADD CONSTRAINT events_action_form
        CHECK (length(action) BETWEEN 1 AND 32
               AND ltrim(left(action, 1), 'abcdefghijklmnopqrstuvwxyz') = ''
               AND ltrim(action, 'abcdefghijklmnopqrstuvwxyz0123456789_') = '');
