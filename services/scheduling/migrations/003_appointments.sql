-- Scheduling: locations, staff availability, one-on-one appointments with
-- their history, and the encounters that completing them records.
--
-- Times are instants (timestamptz); the site's IANA zone (identity's
-- site_directory) turns them into wall-clock times. Ids of other services'
-- records (clients, staff, sites) are plain uuids: no foreign keys across
-- schemas, each service owns its own.
--
-- Who sees what (row-level security, FORCEd, behind the handlers' own checks):
--   supervisor        everything at their sites
--   peer_specialist   their own appointments and encounters, plus everything
--                     at a site that allows site caseloads
--   anyone else       nothing (billing reads encounters through the billing
--                     issue's own grants, not these policies)

CREATE TABLE scheduling.locations (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agency_id  uuid NOT NULL,
    site_id    uuid NOT NULL,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind       text NOT NULL CHECK (kind IN ('office_room', 'community', 'virtual')),
    address    text CHECK (length(address) <= 500),
    capacity   integer CHECK (capacity BETWEEN 1 AND 1000),
    active     boolean NOT NULL DEFAULT true,
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX locations_site_name ON scheduling.locations (site_id, lower(name));

-- Weekly working hours, in the site's local time.
CREATE TABLE scheduling.working_hours (
    agency_id uuid NOT NULL,
    staff_id  uuid NOT NULL,
    site_id   uuid NOT NULL,
    weekday   smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6), -- 0 = Monday
    starts    time NOT NULL,
    ends      time NOT NULL CHECK (ends > starts),
    set_by    uuid NOT NULL,
    set_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (staff_id, site_id, weekday, starts)
);

CREATE TABLE scheduling.time_off (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agency_id  uuid NOT NULL,
    staff_id   uuid NOT NULL,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL CHECK (ends_at > starts_at
                                          AND ends_at <= starts_at + interval '366 days'),
    kind       text NOT NULL CHECK (kind IN ('leave', 'sick', 'training', 'other')),
    note       text CHECK (length(note) <= 500),
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX time_off_staff ON scheduling.time_off (staff_id, ends_at);

-- An appointment blocks its people and room while its status is one of
-- these (scheduling.blocking); cancelled, noshow and entered_in_error free them.
CREATE FUNCTION scheduling.blocking(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT status IN ('proposed', 'booked', 'arrived', 'checked_in', 'fulfilled')
$$;

-- Meetings last under 24 hours (the service's limit is lower and
-- configurable): conflict checks rely on it to scan a bounded index range.
CREATE TABLE scheduling.appointments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agency_id       uuid NOT NULL,
    site_id         uuid NOT NULL,
    client_id       uuid NOT NULL,
    staff_id        uuid NOT NULL,
    location_id     uuid REFERENCES scheduling.locations,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL CHECK (ends_at > starts_at
                                                AND ends_at < starts_at + interval '24 hours'),
    mode            text NOT NULL CHECK (mode IN ('in_person', 'community', 'telehealth_video',
                                                  'telephone')),
    purpose         text CHECK (length(purpose) <= 500),
    status          text NOT NULL CHECK (status IN ('proposed', 'booked', 'arrived', 'checked_in',
                                                    'fulfilled', 'cancelled', 'noshow',
                                                    'entered_in_error')),
    status_reason   text CHECK (length(status_reason) <= 500),
    override_reason text CHECK (length(override_reason) <= 500),
    version         integer NOT NULL DEFAULT 1,
    created_by      uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      uuid NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Conflict checks: a person's or room's blocking appointments by start.
CREATE INDEX appointments_staff_time ON scheduling.appointments (staff_id, starts_at)
    WHERE scheduling.blocking(status);
CREATE INDEX appointments_client_time ON scheduling.appointments (client_id, starts_at);
CREATE INDEX appointments_location_time ON scheduling.appointments (location_id, starts_at)
    WHERE location_id IS NOT NULL AND scheduling.blocking(status);
-- Calendars: a specialist's day and week (every status), a site's calendar.
CREATE INDEX appointments_staff_all ON scheduling.appointments (staff_id, starts_at, id);
CREATE INDEX appointments_site_time ON scheduling.appointments (site_id, starts_at, id);

-- Every change of time, place or status, for the history shown with the
-- appointment (a reschedule keeps where it was).
CREATE TABLE scheduling.appointment_changes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appointment_id uuid NOT NULL REFERENCES scheduling.appointments,
    agency_id      uuid NOT NULL,
    site_id        uuid NOT NULL,
    staff_id       uuid NOT NULL, -- the appointment's, for the row policy
    changed_by     uuid NOT NULL,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    kind           text NOT NULL CHECK (kind IN ('booked', 'rescheduled', 'status')),
    from_starts_at timestamptz,
    from_ends_at   timestamptz,
    to_starts_at   timestamptz,
    to_ends_at     timestamptz,
    from_status    text,
    to_status      text,
    reason         text CHECK (length(reason) <= 500)
);
CREATE INDEX appointment_changes_appointment ON scheduling.appointment_changes (appointment_id, id);

-- What happened: one per attending client of a completed meeting or group
-- occurrence. Notes attach to it; billing counts its minutes.
CREATE TABLE scheduling.encounters (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agency_id        uuid NOT NULL,
    site_id          uuid NOT NULL,
    client_id        uuid NOT NULL,
    staff_id         uuid NOT NULL,
    appointment_id   uuid UNIQUE REFERENCES scheduling.appointments,
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL CHECK (ends_at > starts_at
                                                 AND ends_at < starts_at + interval '24 hours'),
    minutes          integer NOT NULL GENERATED ALWAYS AS
                         ((extract(epoch FROM ends_at - starts_at) / 60)::integer) STORED,
    mode             text NOT NULL CHECK (mode IN ('in_person', 'community', 'telehealth_video',
                                                   'telephone')),
    place_of_service text NOT NULL CHECK (place_of_service IN ('02', '10', '11', '12', '53',
                                                               '57', '99')),
    is_group         boolean NOT NULL DEFAULT false,
    recorded_by      uuid NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX encounters_client ON scheduling.encounters (client_id, starts_at);
CREATE INDEX encounters_staff ON scheduling.encounters (staff_id, starts_at);

-- Row security: the scope functions are common/migrations/003_scope.sql's.
CREATE FUNCTION scheduling.in_scope(r_agency uuid, r_site uuid, r_staff uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT r_agency = scope.agency_id() AND r_site = ANY (scope.site_ids()) AND (
               scope.has_role('supervisor')
            OR (scope.has_role('peer_specialist')
                AND (r_staff = scope.staff_id() OR r_site = ANY (scope.caseload_site_ids()))))
$$;

ALTER TABLE scheduling.locations ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduling.locations FORCE ROW LEVEL SECURITY;
CREATE POLICY locations_read ON scheduling.locations FOR SELECT
    USING (agency_id = scope.agency_id() AND site_id = ANY (scope.site_ids()));
CREATE POLICY locations_add ON scheduling.locations FOR INSERT
    WITH CHECK (agency_id = scope.agency_id() AND site_id = ANY (scope.site_ids())
                AND (scope.has_role('supervisor') OR scope.has_role('site_admin')));

ALTER TABLE scheduling.working_hours ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduling.working_hours FORCE ROW LEVEL SECURITY;
CREATE POLICY working_hours_read ON scheduling.working_hours FOR SELECT
    USING (agency_id = scope.agency_id() AND site_id = ANY (scope.site_ids()));
CREATE POLICY working_hours_set ON scheduling.working_hours FOR ALL
    USING (agency_id = scope.agency_id() AND site_id = ANY (scope.site_ids())
           AND (staff_id = scope.staff_id() OR scope.has_role('supervisor')))
    WITH CHECK (agency_id = scope.agency_id() AND site_id = ANY (scope.site_ids())
                AND (staff_id = scope.staff_id() OR scope.has_role('supervisor')));

ALTER TABLE scheduling.time_off ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduling.time_off FORCE ROW LEVEL SECURITY;
CREATE POLICY time_off_read ON scheduling.time_off FOR SELECT
    USING (agency_id = scope.agency_id());
CREATE POLICY time_off_add ON scheduling.time_off FOR INSERT
    WITH CHECK (agency_id = scope.agency_id()
                AND (staff_id = scope.staff_id() OR scope.has_role('supervisor')));

ALTER TABLE scheduling.appointments ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduling.appointments FORCE ROW LEVEL SECURITY;
CREATE POLICY appointments_read ON scheduling.appointments FOR SELECT
    USING (scheduling.in_scope(agency_id, site_id, staff_id));
-- The double-booking check must see every blocking appointment of the
-- people and room concerned, also those the caller may not read: the
-- handler sets beacon.purpose = 'conflict_check' for that one statement
-- (and back), and reads only times and ids through it.
CREATE POLICY appointments_conflicts ON scheduling.appointments FOR SELECT
    USING (agency_id = scope.agency_id()
           AND current_setting('beacon.purpose', true) = 'conflict_check');
CREATE POLICY appointments_book ON scheduling.appointments FOR INSERT
    WITH CHECK (scheduling.in_scope(agency_id, site_id, staff_id)
                AND created_by = scope.staff_id());
CREATE POLICY appointments_change ON scheduling.appointments FOR UPDATE
    USING (scheduling.in_scope(agency_id, site_id, staff_id))
    WITH CHECK (scheduling.in_scope(agency_id, site_id, staff_id)
                AND updated_by = scope.staff_id());

ALTER TABLE scheduling.appointment_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduling.appointment_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY appointment_changes_read ON scheduling.appointment_changes FOR SELECT
    USING (scheduling.in_scope(agency_id, site_id, staff_id));
CREATE POLICY appointment_changes_add ON scheduling.appointment_changes FOR INSERT
    WITH CHECK (scheduling.in_scope(agency_id, site_id, staff_id)
                AND changed_by = scope.staff_id());

ALTER TABLE scheduling.encounters ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduling.encounters FORCE ROW LEVEL SECURITY;
CREATE POLICY encounters_read ON scheduling.encounters FOR SELECT
    USING (scheduling.in_scope(agency_id, site_id, staff_id));
CREATE POLICY encounters_record ON scheduling.encounters FOR INSERT
    WITH CHECK (scheduling.in_scope(agency_id, site_id, staff_id)
                AND recorded_by = scope.staff_id());

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON scheduling.locations, scheduling.time_off,
            scheduling.appointment_changes, scheduling.encounters TO beacon_service;
        GRANT SELECT, INSERT, DELETE ON scheduling.working_hours TO beacon_service;
        GRANT SELECT, INSERT ON scheduling.appointments TO beacon_service;
        GRANT UPDATE (location_id, starts_at, ends_at, mode, status, status_reason,
                      override_reason, version, updated_by, updated_at)
            ON scheduling.appointments TO beacon_service;
    END IF;
END $$;
