-- Staff certifications, from identity's staff.changed events (producer
-- "identity", published by the gateway): each staff member's agency, status
-- and sites and the kind and dates of each credential, as the latest event
-- described them (an event replaces what was held: applying it twice
-- changes nothing). The dashboards count the credentials of active staff
-- that expire within the next 60 days, or have expired.
INSERT INTO reporting.positions (producer) VALUES ('identity') ON CONFLICT DO NOTHING;

CREATE TABLE reporting.staff (
    staff_id  uuid PRIMARY KEY,
    agency_id uuid NOT NULL,
    status    text NOT NULL CHECK (status IN ('active', 'disabled'))
);
CREATE INDEX staff_agency ON reporting.staff (agency_id);

CREATE TABLE reporting.staff_sites (
    staff_id uuid NOT NULL REFERENCES reporting.staff ON DELETE CASCADE,
    site_id  uuid NOT NULL,
    PRIMARY KEY (staff_id, site_id)
);
CREATE INDEX staff_sites_site ON reporting.staff_sites (site_id);

CREATE TABLE reporting.staff_credentials (
    staff_id   uuid NOT NULL REFERENCES reporting.staff ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{1,63}$'),
    issued_on  date,
    expires_on date
);
CREATE INDEX staff_credentials_staff ON reporting.staff_credentials (staff_id, expires_on);

CREATE FUNCTION reporting.on_staff(p_staff uuid, p_agency uuid, p_status text, p_sites uuid[],
                                   p_kinds text[], p_issued date[], p_expires date[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reporting.staff AS s VALUES (p_staff, p_agency, p_status)
    ON CONFLICT (staff_id) DO UPDATE SET agency_id = excluded.agency_id, status = excluded.status;
    DELETE FROM reporting.staff_sites WHERE staff_id = p_staff;
    INSERT INTO reporting.staff_sites SELECT DISTINCT p_staff, x FROM unnest(p_sites) x;
    DELETE FROM reporting.staff_credentials WHERE staff_id = p_staff;
    INSERT INTO reporting.staff_credentials
    SELECT p_staff, k, i, e FROM unnest(p_kinds, p_issued, p_expires) AS x (k, i, e);
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON reporting.staff, reporting.staff_sites,
            reporting.staff_credentials TO beacon_service;
    END IF;
END $$;
