-- Scheduling: group sessions (series with a recurrence rule), their stored
-- occurrences, rosters, attendance, and the encounters completing an
-- occurrence records (one per attending client).
--
-- Occurrences are laid out when a series is created or changed (the service
-- expands the rule in the site's local dates, PostgreSQL turns each local
-- date and time into an instant in the site's zone), so conflict checks,
-- calendars and reminders read plain rows by time. A series always ends and
-- is bounded (the service's max_group_occurrences).
--
-- Who sees what:
--   the series and its occurrences (times, places, topics: no client data):
--       supervisors and peer specialists at the site
--   rosters and attendance (client data): supervisors at the site, the
--       group's facilitators, and anyone who may see the client in intake
--       (intake.client_ref, run with the caller's rights)

CREATE TABLE scheduling.groups (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agency_id       uuid NOT NULL,
    site_id         uuid NOT NULL,
    topic           text NOT NULL CHECK (topic IN ('coping_strategies', 'relapse_prevention',
                                                   'goal_setting', 'self_care', 'custom')),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description     text CHECK (length(description) <= 2000),
    facilitator_ids uuid[] NOT NULL CHECK (cardinality(facilitator_ids) BETWEEN 1 AND 5),
    capacity        integer NOT NULL CHECK (capacity BETWEEN 1 AND 200),
    -- On the roster now, kept by the service under the series' row lock
    -- (a count the caller could not take: rows of clients they may not see).
    enrolled        integer NOT NULL DEFAULT 0 CHECK (enrolled BETWEEN 0 AND capacity),
    location_id     uuid REFERENCES scheduling.locations,
    mode            text NOT NULL CHECK (mode IN ('in_person', 'community', 'telehealth_video')),
    start_time      time NOT NULL,
    minutes         integer NOT NULL CHECK (minutes BETWEEN 5 AND 1439),
    -- The rule (recurrence.h's sched_rule_t), in the site's local dates.
    freq            text NOT NULL CHECK (freq IN ('weekly', 'monthly')),
    every           integer NOT NULL CHECK (every BETWEEN 1 AND 52),
    weekdays        integer NOT NULL CHECK (weekdays BETWEEN 0 AND 127), -- bit 0 = Monday
    month_week      integer NOT NULL CHECK (month_week IN (-1, 0, 1, 2, 3, 4)),
    start_date      date NOT NULL,
    until_date      date CHECK (until_date >= start_date),
    occurrence_count integer CHECK (occurrence_count >= 1),
    CHECK ((until_date IS NULL) <> (occurrence_count IS NULL)),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    status_reason   text CHECK (length(status_reason) <= 500),
    override_reason text CHECK (length(override_reason) <= 500),
    version         integer NOT NULL DEFAULT 1,
    created_by      uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      uuid NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX groups_site ON scheduling.groups (site_id, status);
CREATE INDEX groups_facilitators ON scheduling.groups USING gin (facilitator_ids);

-- An occurrence blocks its facilitators and room while scheduled or
-- completed; cancelled frees them.
CREATE TABLE scheduling.group_occurrences (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    group_id        uuid NOT NULL REFERENCES scheduling.groups,
    agency_id       uuid NOT NULL,
    site_id         uuid NOT NULL,
    local_date      date NOT NULL, -- the series date it stands for
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL CHECK (ends_at > starts_at
                                                AND ends_at < starts_at + interval '24 hours'),
    location_id     uuid REFERENCES scheduling.locations,
    facilitator_ids uuid[] NOT NULL CHECK (cardinality(facilitator_ids) BETWEEN 1 AND 5),
    status          text NOT NULL DEFAULT 'scheduled'
                        CHECK (status IN ('scheduled', 'cancelled', 'completed')),
    status_reason   text CHECK (length(status_reason) <= 500),
    edited          boolean NOT NULL DEFAULT false,
    version         integer NOT NULL DEFAULT 1,
    updated_by      uuid NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (group_id, local_date)
);
CREATE INDEX group_occurrences_site_time ON scheduling.group_occurrences (site_id, starts_at, id);
CREATE INDEX group_occurrences_group_time ON scheduling.group_occurrences (group_id, starts_at);
CREATE INDEX group_occurrences_location_time ON scheduling.group_occurrences (location_id, starts_at)
    WHERE location_id IS NOT NULL AND status <> 'cancelled';
CREATE INDEX group_occurrences_facilitators ON scheduling.group_occurrences
    USING gin (facilitator_ids) WHERE status <> 'cancelled';
CREATE INDEX group_occurrences_time ON scheduling.group_occurrences (starts_at)
    WHERE status = 'scheduled';

CREATE TABLE scheduling.group_roster (
    group_id    uuid NOT NULL REFERENCES scheduling.groups,
    client_id   uuid NOT NULL,
    agency_id   uuid NOT NULL,
    site_id     uuid NOT NULL,
    enrolled_by uuid NOT NULL,
    enrolled_at timestamptz NOT NULL DEFAULT now(),
    left_by     uuid,
    left_at     timestamptz,
    left_reason text CHECK (length(left_reason) <= 500),
    PRIMARY KEY (group_id, client_id)
);
CREATE INDEX group_roster_client ON scheduling.group_roster (client_id) WHERE left_at IS NULL;

CREATE TABLE scheduling.group_attendance (
    occurrence_id uuid NOT NULL REFERENCES scheduling.group_occurrences,
    client_id     uuid NOT NULL,
    group_id      uuid NOT NULL,
    agency_id     uuid NOT NULL,
    site_id       uuid NOT NULL,
    status        text NOT NULL CHECK (status IN ('present', 'late', 'left_early', 'absent',
                                                  'excused')),
    arrived_at    timestamptz,
    left_at       timestamptz,
    recorded_by   uuid NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (occurrence_id, client_id),
    FOREIGN KEY (group_id, client_id) REFERENCES scheduling.group_roster
);

ALTER TABLE scheduling.encounters ADD COLUMN group_occurrence_id uuid
    REFERENCES scheduling.group_occurrences;
ALTER TABLE scheduling.encounters ADD CONSTRAINT encounters_one_per_occurrence_client
    UNIQUE (group_occurrence_id, client_id);
ALTER TABLE scheduling.encounters ADD CONSTRAINT encounters_group_source
    CHECK (is_group = (group_occurrence_id IS NOT NULL)
           AND (appointment_id IS NULL OR group_occurrence_id IS NULL));

-- Row security. roster_visible calls intake.client_ref, which intake's own
-- migrations create: the services start together, so its body is checked
-- when first run, not now (intake is up before any request arrives).
SET check_function_bodies = off;

CREATE FUNCTION scheduling.site_care_team(r_agency uuid, r_site uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT r_agency = scope.agency_id() AND r_site = ANY (scope.site_ids())
           AND (scope.has_role('supervisor') OR scope.has_role('peer_specialist'))
$$;

-- A roster or attendance row: the site's supervisors, the group's
-- facilitators, or whoever intake lets see the client.
CREATE FUNCTION scheduling.roster_visible(r_agency uuid, r_site uuid, r_group uuid,
                                          r_client uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT scheduling.site_care_team(r_agency, r_site) AND (
               scope.has_role('supervisor')
            OR EXISTS (SELECT FROM scheduling.groups g
                       WHERE g.id = r_group AND scope.staff_id() = ANY (g.facilitator_ids))
            OR EXISTS (SELECT FROM intake.client_ref(r_client)))
$$;

RESET check_function_bodies;

ALTER TABLE scheduling.groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduling.groups FORCE ROW LEVEL SECURITY;
CREATE POLICY groups_read ON scheduling.groups FOR SELECT
    USING (scheduling.site_care_team(agency_id, site_id));
CREATE POLICY groups_add ON scheduling.groups FOR INSERT
    WITH CHECK (scheduling.site_care_team(agency_id, site_id) AND created_by = scope.staff_id()
                AND (scope.has_role('supervisor') OR scope.staff_id() = ANY (facilitator_ids)));
-- A series is changed by its facilitators or the site's supervisors.
CREATE POLICY groups_change ON scheduling.groups FOR UPDATE
    USING (scheduling.site_care_team(agency_id, site_id)
           AND (scope.has_role('supervisor') OR scope.staff_id() = ANY (facilitator_ids)))
    WITH CHECK (scheduling.site_care_team(agency_id, site_id) AND updated_by = scope.staff_id()
                AND (scope.has_role('supervisor') OR scope.staff_id() = ANY (facilitator_ids)));

ALTER TABLE scheduling.group_occurrences ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduling.group_occurrences FORCE ROW LEVEL SECURITY;
CREATE POLICY group_occurrences_read ON scheduling.group_occurrences FOR SELECT
    USING (scheduling.site_care_team(agency_id, site_id));
-- Double-booking checks (appointments.c, groups.c) see every occurrence of
-- the agency for that one statement, as for appointments.
CREATE POLICY group_occurrences_conflicts ON scheduling.group_occurrences FOR SELECT
    USING (agency_id = scope.agency_id()
           AND current_setting('beacon.purpose', true) = 'conflict_check');
-- An occurrence is changed by the site's supervisors, the series'
-- facilitators and its own (a stand-in for one week).
CREATE POLICY group_occurrences_write ON scheduling.group_occurrences FOR ALL
    USING (scheduling.site_care_team(agency_id, site_id)
           AND (scope.has_role('supervisor') OR scope.staff_id() = ANY (facilitator_ids)
                OR EXISTS (SELECT FROM scheduling.groups g WHERE g.id = group_id
                           AND scope.staff_id() = ANY (g.facilitator_ids))))
    WITH CHECK (scheduling.site_care_team(agency_id, site_id) AND updated_by = scope.staff_id()
                AND (scope.has_role('supervisor') OR scope.staff_id() = ANY (facilitator_ids)
                     OR EXISTS (SELECT FROM scheduling.groups g WHERE g.id = group_id
                                AND scope.staff_id() = ANY (g.facilitator_ids))));

ALTER TABLE scheduling.group_roster ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduling.group_roster FORCE ROW LEVEL SECURITY;
CREATE POLICY group_roster_read ON scheduling.group_roster FOR SELECT
    USING (scheduling.roster_visible(agency_id, site_id, group_id, client_id));
-- A client's own double-booking check sees the groups they are on.
CREATE POLICY group_roster_conflicts ON scheduling.group_roster FOR SELECT
    USING (agency_id = scope.agency_id()
           AND current_setting('beacon.purpose', true) = 'conflict_check');
CREATE POLICY group_roster_enroll ON scheduling.group_roster FOR INSERT
    WITH CHECK (scheduling.roster_visible(agency_id, site_id, group_id, client_id)
                AND enrolled_by = scope.staff_id());
CREATE POLICY group_roster_change ON scheduling.group_roster FOR UPDATE
    USING (scheduling.roster_visible(agency_id, site_id, group_id, client_id))
    WITH CHECK (scheduling.roster_visible(agency_id, site_id, group_id, client_id));

ALTER TABLE scheduling.group_attendance ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduling.group_attendance FORCE ROW LEVEL SECURITY;
CREATE POLICY group_attendance_read ON scheduling.group_attendance FOR SELECT
    USING (scheduling.roster_visible(agency_id, site_id, group_id, client_id));
-- Attendance is taken by the site's supervisors and whoever runs the
-- occurrence (the series' facilitators, or the occurrence's own).
CREATE FUNCTION scheduling.runs_occurrence(r_occurrence uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT scope.has_role('supervisor') OR EXISTS (
        SELECT FROM scheduling.group_occurrences o JOIN scheduling.groups g ON g.id = o.group_id
        WHERE o.id = r_occurrence
          AND (scope.staff_id() = ANY (o.facilitator_ids)
               OR scope.staff_id() = ANY (g.facilitator_ids)))
$$;
CREATE POLICY group_attendance_write ON scheduling.group_attendance FOR ALL
    USING (scheduling.site_care_team(agency_id, site_id)
           AND scheduling.runs_occurrence(occurrence_id))
    WITH CHECK (scheduling.site_care_team(agency_id, site_id) AND recorded_by = scope.staff_id()
                AND scheduling.runs_occurrence(occurrence_id));

-- A group encounter is read like a group's attendance.
DROP POLICY encounters_read ON scheduling.encounters;
CREATE POLICY encounters_read ON scheduling.encounters FOR SELECT
    USING (scheduling.in_scope(agency_id, site_id, staff_id)
           OR (is_group AND scheduling.roster_visible(
                   agency_id, site_id,
                   (SELECT o.group_id FROM scheduling.group_occurrences o
                    WHERE o.id = group_occurrence_id), client_id)));

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON scheduling.groups TO beacon_service;
        GRANT UPDATE (title, description, facilitator_ids, capacity, enrolled, location_id, start_time,
                      minutes, freq, every, weekdays, month_week, start_date, until_date,
                      occurrence_count, status, status_reason, override_reason, version,
                      updated_by, updated_at)
            ON scheduling.groups TO beacon_service;
        GRANT SELECT, INSERT, DELETE ON scheduling.group_occurrences TO beacon_service;
        GRANT UPDATE (starts_at, ends_at, location_id, facilitator_ids, status, status_reason,
                      edited, version, updated_by, updated_at)
            ON scheduling.group_occurrences TO beacon_service;
        GRANT SELECT, INSERT ON scheduling.group_roster TO beacon_service;
        GRANT UPDATE (left_by, left_at, left_reason, enrolled_by, enrolled_at)
            ON scheduling.group_roster TO beacon_service;
        GRANT SELECT, INSERT, DELETE ON scheduling.group_attendance TO beacon_service;
        GRANT UPDATE (status, arrived_at, left_at, recorded_by, recorded_at)
            ON scheduling.group_attendance TO beacon_service;
    END IF;
END $$;
