-- Staff caseload and overdue work, to spot overload (README "Reporting"):
-- what is true now, not a count per period.
--
-- client_assignments: each client's site, status and assigned staff member
-- as intake's latest client.assigned described them (a staff member's
-- caseload is their active clients). overdue_work: encounters announced by
-- note.overdue whose note has not been signed since (note.signed removes
-- it). open_referrals gains who made each referral, where, and the date
-- they meant to follow up by (referral.created): past it while the
-- referral is open, it is overdue. Rows written before this migration have
-- none of these and count nowhere.
CREATE TABLE reporting.client_assignments (
    client_id uuid PRIMARY KEY,
    agency_id uuid NOT NULL,
    site_id   uuid NOT NULL,
    staff_id  uuid,
    status    text NOT NULL CHECK (status IN ('active', 'inactive', 'discharged', 'merged'))
);
CREATE INDEX client_assignments_site ON reporting.client_assignments (site_id, staff_id)
    WHERE status = 'active';

CREATE TABLE reporting.overdue_work (
    encounter_id uuid PRIMARY KEY,
    agency_id    uuid NOT NULL,
    site_id      uuid NOT NULL,
    staff_id     uuid NOT NULL
);
CREATE INDEX overdue_work_site ON reporting.overdue_work (site_id, staff_id);

ALTER TABLE reporting.open_referrals
    ADD COLUMN agency_id    uuid,
    ADD COLUMN site_id      uuid,
    ADD COLUMN staff_id     uuid,
    ADD COLUMN follow_up_on date;
CREATE INDEX open_referrals_site ON reporting.open_referrals (site_id, follow_up_on);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT, UPDATE ON reporting.client_assignments TO beacon_service;
        GRANT SELECT, INSERT, DELETE ON reporting.overdue_work TO beacon_service;
    END IF;
END $$;
