-- Reporting: what the consumer of the event bus keeps (services/reporting/consumer.c).
--
-- positions: the last sequence number applied per producer, updated in the
-- same transaction as the rollups an event changes, so an event counts
-- exactly once whatever process dies when (DESIGN.md, transactional outbox).
-- rejects: events that were never applied (unknown producer, unknown schema
-- version, unreadable payload), for operators to look at.
--
-- Rollups (grain 'd' day, 'w' ISO week from Monday, 'm' month; periods are
-- local dates of the site's time zone): one row per site and period with
-- every additive measure, one per site, period and staff member, one per
-- site, period and referral outcome. Agencies and regions are sums of
-- sites. Every event adds to its day, week and month at once, so a
-- dashboard reads one row per period and site through the primary key,
-- never the days of a month. Active caseload is kept as the change of the
-- number of open episodes (active_delta): the caseload at the end of a
-- period is the sum of every change up to it.
CREATE TABLE reporting.positions (
    producer   text PRIMARY KEY CHECK (producer ~ '^[a-z][a-z0-9_]{0,31}$'),
    last_seq   bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    applied_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO reporting.positions (producer)
VALUES ('intake'), ('scheduling'), ('notes'), ('referral');

CREATE TABLE reporting.rejects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    producer    text NOT NULL CHECK (length(producer) <= 64),
    seq         bigint NOT NULL,
    topic       text NOT NULL CHECK (length(topic) <= 128),
    reason      text NOT NULL CHECK (length(reason) <= 500),
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (producer, seq)
);

CREATE TABLE reporting.site_rollup (
    site_id           uuid NOT NULL,
    grain             "char" NOT NULL CHECK (grain IN ('d', 'w', 'm')),
    period            date NOT NULL,
    agency_id         uuid NOT NULL,
    encounters        bigint NOT NULL DEFAULT 0,
    encounter_minutes bigint NOT NULL DEFAULT 0,
    units             bigint NOT NULL DEFAULT 0,
    group_attendance  bigint NOT NULL DEFAULT 0,
    group_sessions    bigint NOT NULL DEFAULT 0,
    noshows           bigint NOT NULL DEFAULT 0,
    enrollments       bigint NOT NULL DEFAULT 0,
    discharges        bigint NOT NULL DEFAULT 0,
    active_delta      bigint NOT NULL DEFAULT 0,
    notes_signed      bigint NOT NULL DEFAULT 0,
    notes_late        bigint NOT NULL DEFAULT 0,
    notes_overdue     bigint NOT NULL DEFAULT 0,
    referrals_made    bigint NOT NULL DEFAULT 0,
    referrals_closed  bigint NOT NULL DEFAULT 0,
    closure_seconds   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, grain, period)
);
CREATE INDEX site_rollup_agency ON reporting.site_rollup (agency_id, grain, period);

CREATE TABLE reporting.staff_rollup (
    site_id           uuid NOT NULL,
    grain             "char" NOT NULL CHECK (grain IN ('d', 'w', 'm')),
    period            date NOT NULL,
    staff_id          uuid NOT NULL,
    agency_id         uuid NOT NULL,
    encounters        bigint NOT NULL DEFAULT 0,
    encounter_minutes bigint NOT NULL DEFAULT 0,
    units             bigint NOT NULL DEFAULT 0,
    noshows           bigint NOT NULL DEFAULT 0,
    notes_signed      bigint NOT NULL DEFAULT 0,
    notes_late        bigint NOT NULL DEFAULT 0,
    notes_overdue     bigint NOT NULL DEFAULT 0,
    referrals_made    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, grain, period, staff_id)
);

CREATE TABLE reporting.outcome_rollup (
    site_id   uuid NOT NULL,
    grain     "char" NOT NULL CHECK (grain IN ('d', 'w', 'm')),
    period    date NOT NULL,
    outcome   text NOT NULL CHECK (outcome ~ '^[a-z_]{1,40}$'),
    agency_id uuid NOT NULL,
    referrals bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, grain, period, outcome)
);

-- BARC-10 from intake to latest: each client's first and latest total (in
-- the order recorded) and the site's sums, kept in step.
CREATE TABLE reporting.barc_clients (
    client_id    uuid PRIMARY KEY,
    agency_id    uuid NOT NULL,
    site_id      uuid NOT NULL,
    first_total  integer NOT NULL,
    latest_total integer NOT NULL,
    assessments  integer NOT NULL
);
CREATE TABLE reporting.barc_sites (
    site_id            uuid PRIMARY KEY,
    agency_id          uuid NOT NULL,
    clients_assessed   bigint NOT NULL DEFAULT 0,
    clients_reassessed bigint NOT NULL DEFAULT 0,
    change_sum         bigint NOT NULL DEFAULT 0
);
CREATE INDEX barc_sites_agency ON reporting.barc_sites (agency_id);

-- Referrals not yet closed (when they were made, for the loop-closure time)
-- and group meetings already counted as held.
CREATE TABLE reporting.open_referrals (
    referral_id uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL
);
CREATE TABLE reporting.groups_held (
    occurrence_id uuid PRIMARY KEY
);

-- Regions: named sets of agencies, defined by the operator (a funder's
-- catchment). An agency's analysts and agency admins see the de-identified
-- dashboard of each region their agency belongs to.
CREATE TABLE reporting.regions (
    id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200)
);
CREATE TABLE reporting.region_agencies (
    region_id uuid NOT NULL REFERENCES reporting.regions ON DELETE CASCADE,
    agency_id uuid NOT NULL,
    PRIMARY KEY (region_id, agency_id)
);
CREATE INDEX region_agencies_agency ON reporting.region_agencies (agency_id);

-- ---- Applying events --------------------------------------------------------

-- The local date of an instant at a site (its IANA zone; UTC if unknown).
-- PL/pgSQL: identity's view may not exist yet when this migration runs
-- (services start together), and its body is only resolved when called.
CREATE FUNCTION reporting.local_day(p_site uuid, p_at timestamptz) RETURNS date
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (p_at AT TIME ZONE coalesce((SELECT time_zone FROM identity.site_directory
                                         WHERE site_id = p_site), 'UTC'))::date;
END $$;

-- Billable units of an encounter: one per 15 minutes, a remainder of 8
-- minutes or more counting as one more.
CREATE FUNCTION reporting.units(p_minutes integer) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT greatest(p_minutes, 0) / 15 + CASE WHEN greatest(p_minutes, 0) % 15 >= 8 THEN 1 ELSE 0 END
$$;

-- Adds measures to a site's (and, with p_staff, that staff member's) day,
-- week and month.
CREATE FUNCTION reporting.bump(
    p_agency uuid, p_site uuid, p_staff uuid, p_day date,
    p_encounters bigint DEFAULT 0, p_minutes bigint DEFAULT 0, p_units bigint DEFAULT 0,
    p_group_attendance bigint DEFAULT 0, p_group_sessions bigint DEFAULT 0,
    p_noshows bigint DEFAULT 0, p_enrollments bigint DEFAULT 0, p_discharges bigint DEFAULT 0,
    p_active_delta bigint DEFAULT 0, p_notes_signed bigint DEFAULT 0,
    p_notes_late bigint DEFAULT 0, p_notes_overdue bigint DEFAULT 0,
    p_referrals_made bigint DEFAULT 0, p_referrals_closed bigint DEFAULT 0,
    p_closure_seconds bigint DEFAULT 0) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reporting.site_rollup AS r (site_id, grain, period, agency_id, encounters,
        encounter_minutes, units, group_attendance, group_sessions, noshows, enrollments,
        discharges, active_delta, notes_signed, notes_late, notes_overdue, referrals_made,
        referrals_closed, closure_seconds)
    SELECT p_site, g.grain, g.period, p_agency, p_encounters, p_minutes, p_units,
           p_group_attendance, p_group_sessions, p_noshows, p_enrollments, p_discharges,
           p_active_delta, p_notes_signed, p_notes_late, p_notes_overdue, p_referrals_made,
           p_referrals_closed, p_closure_seconds
    FROM (VALUES ('d'::"char", p_day), ('w'::"char", date_trunc('week', p_day)::date),
                 ('m'::"char", date_trunc('month', p_day)::date)) g (grain, period)
    ON CONFLICT (site_id, grain, period) DO UPDATE SET
        encounters = r.encounters + excluded.encounters,
        encounter_minutes = r.encounter_minutes + excluded.encounter_minutes,
        units = r.units + excluded.units,
        group_attendance = r.group_attendance + excluded.group_attendance,
        group_sessions = r.group_sessions + excluded.group_sessions,
        noshows = r.noshows + excluded.noshows,
        enrollments = r.enrollments + excluded.enrollments,
        discharges = r.discharges + excluded.discharges,
        active_delta = r.active_delta + excluded.active_delta,
        notes_signed = r.notes_signed + excluded.notes_signed,
        notes_late = r.notes_late + excluded.notes_late,
        notes_overdue = r.notes_overdue + excluded.notes_overdue,
        referrals_made = r.referrals_made + excluded.referrals_made,
        referrals_closed = r.referrals_closed + excluded.referrals_closed,
        closure_seconds = r.closure_seconds + excluded.closure_seconds;
    IF p_staff IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO reporting.staff_rollup AS r (site_id, grain, period, staff_id, agency_id,
        encounters, encounter_minutes, units, noshows, notes_signed, notes_late, notes_overdue,
        referrals_made)
    SELECT p_site, g.grain, g.period, p_staff, p_agency, p_encounters, p_minutes, p_units,
           p_noshows, p_notes_signed, p_notes_late, p_notes_overdue, p_referrals_made
    FROM (VALUES ('d'::"char", p_day), ('w'::"char", date_trunc('week', p_day)::date),
                 ('m'::"char", date_trunc('month', p_day)::date)) g (grain, period)
    ON CONFLICT (site_id, grain, period, staff_id) DO UPDATE SET
        encounters = r.encounters + excluded.encounters,
        encounter_minutes = r.encounter_minutes + excluded.encounter_minutes,
        units = r.units + excluded.units,
        noshows = r.noshows + excluded.noshows,
        notes_signed = r.notes_signed + excluded.notes_signed,
        notes_late = r.notes_late + excluded.notes_late,
        notes_overdue = r.notes_overdue + excluded.notes_overdue,
        referrals_made = r.referrals_made + excluded.referrals_made;
END $$;

-- encounter.completed: one per one-on-one meeting or attending group client.
CREATE FUNCTION reporting.on_encounter(p_agency uuid, p_site uuid, p_staff uuid,
                                       p_start timestamptz, p_minutes integer,
                                       p_is_group boolean, p_occurrence uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    held bigint := 0;
BEGIN
    IF p_is_group AND p_occurrence IS NOT NULL THEN
        INSERT INTO reporting.groups_held VALUES (p_occurrence) ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS held = ROW_COUNT;
    END IF;
    PERFORM reporting.bump(p_agency, p_site, p_staff, reporting.local_day(p_site, p_start),
                           p_encounters => 1, p_minutes => p_minutes,
                           p_units => reporting.units(p_minutes),
                           p_group_attendance => CASE WHEN p_is_group THEN 1 ELSE 0 END,
                           p_group_sessions => held);
END $$;

-- BARC-10 assessment.completed: the client's first total stays, the latest
-- moves; the site's sums follow.
CREATE FUNCTION reporting.on_barc(p_agency uuid, p_site uuid, p_client uuid, p_total integer)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c reporting.barc_clients;
BEGIN
    SELECT * INTO c FROM reporting.barc_clients WHERE client_id = p_client FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO reporting.barc_clients VALUES (p_client, p_agency, p_site, p_total, p_total, 1);
        INSERT INTO reporting.barc_sites AS s (site_id, agency_id, clients_assessed)
        VALUES (p_site, p_agency, 1)
        ON CONFLICT (site_id) DO UPDATE SET clients_assessed = s.clients_assessed + 1;
        RETURN;
    END IF;
    UPDATE reporting.barc_clients SET latest_total = p_total, assessments = assessments + 1
    WHERE client_id = p_client;
    UPDATE reporting.barc_sites SET
        clients_reassessed = clients_reassessed + CASE WHEN c.assessments = 1 THEN 1 ELSE 0 END,
        change_sum = change_sum + (p_total - c.first_total) - (c.latest_total - c.first_total)
    WHERE site_id = c.site_id;
END $$;

CREATE FUNCTION reporting.on_referral_created(p_agency uuid, p_site uuid, p_staff uuid,
                                              p_referral uuid, p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reporting.open_referrals VALUES (p_referral, p_at) ON CONFLICT DO NOTHING;
    PERFORM reporting.bump(p_agency, p_site, p_staff, reporting.local_day(p_site, p_at),
                           p_referrals_made => 1);
END $$;

CREATE FUNCTION reporting.on_referral_closed(p_agency uuid, p_site uuid, p_referral uuid,
                                             p_outcome text, p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    made timestamptz;
    d date := reporting.local_day(p_site, p_at);
BEGIN
    DELETE FROM reporting.open_referrals WHERE referral_id = p_referral RETURNING created_at INTO made;
    PERFORM reporting.bump(p_agency, p_site, NULL, d, p_referrals_closed => 1,
        p_closure_seconds => coalesce(floor(extract(epoch FROM p_at - made)), 0)::bigint);
    INSERT INTO reporting.outcome_rollup AS r (site_id, grain, period, outcome, agency_id, referrals)
    SELECT p_site, g.grain, g.period, coalesce(nullif(p_outcome, ''), 'none'), p_agency, 1
    FROM (VALUES ('d'::"char", d), ('w'::"char", date_trunc('week', d)::date),
                 ('m'::"char", date_trunc('month', d)::date)) g (grain, period)
    ON CONFLICT (site_id, grain, period, outcome) DO UPDATE SET referrals = r.referrals + 1;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT, UPDATE ON reporting.positions TO beacon_service;
        GRANT SELECT, INSERT ON reporting.rejects TO beacon_service;
        GRANT SELECT, INSERT, UPDATE ON reporting.site_rollup, reporting.staff_rollup,
            reporting.outcome_rollup, reporting.barc_clients, reporting.barc_sites
            TO beacon_service;
        GRANT SELECT, INSERT, DELETE ON reporting.open_referrals, reporting.groups_held
            TO beacon_service;
        GRANT SELECT ON reporting.regions, reporting.region_agencies TO beacon_service;
    END IF;
END $$;
