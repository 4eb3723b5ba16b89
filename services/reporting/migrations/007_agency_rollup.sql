-- Agency rollups: the same measures summed per agency, kept with the
-- sites' by the same functions. An agency or region dashboard's time series
-- then reads one row per agency and period (a region of 5 agencies over
-- three years by month: 180 rows, not the 1,800 of its 50 sites), and a
-- region is broken down by agency.
CREATE TABLE reporting.agency_rollup (
    agency_id         uuid NOT NULL,
    grain             "char" NOT NULL CHECK (grain IN ('d', 'w', 'm')),
    period            date NOT NULL,
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
    PRIMARY KEY (agency_id, grain, period) INCLUDE (encounters, encounter_minutes, units, group_attendance, group_sessions, noshows, enrollments, discharges, active_delta, notes_signed, notes_late, notes_overdue, referrals_made, referrals_closed, closure_seconds)
);
INSERT INTO reporting.agency_rollup (agency_id, grain, period, encounters, encounter_minutes, units, group_attendance, group_sessions, noshows, enrollments, discharges, active_delta, notes_signed, notes_late, notes_overdue, referrals_made, referrals_closed, closure_seconds)
SELECT agency_id, grain, period, sum(encounters), sum(encounter_minutes), sum(units), sum(group_attendance), sum(group_sessions), sum(noshows), sum(enrollments), sum(discharges), sum(active_delta), sum(notes_signed), sum(notes_late), sum(notes_overdue), sum(referrals_made), sum(referrals_closed), sum(closure_seconds) FROM reporting.site_rollup GROUP BY 1, 2, 3;

CREATE OR REPLACE FUNCTION reporting.bump(
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
    INSERT INTO reporting.agency_rollup AS r (agency_id, grain, period, encounters,
        encounter_minutes, units, group_attendance, group_sessions, noshows, enrollments,
        discharges, active_delta, notes_signed, notes_late, notes_overdue, referrals_made,
        referrals_closed, closure_seconds)
    SELECT p_agency, g.grain, g.period, p_encounters, p_minutes, p_units,
           p_group_attendance, p_group_sessions, p_noshows, p_enrollments, p_discharges,
           p_active_delta, p_notes_signed, p_notes_late, p_notes_overdue, p_referrals_made,
           p_referrals_closed, p_closure_seconds
    FROM (VALUES ('d'::"char", p_day), ('w'::"char", date_trunc('week', p_day)::date),
                 ('m'::"char", date_trunc('month', p_day)::date)) g (grain, period)
    ON CONFLICT (agency_id, grain, period) DO UPDATE SET
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

CREATE OR REPLACE FUNCTION reporting.bump_many(
    p_agency uuid[], p_site uuid[], p_staff uuid[], p_at timestamptz[], p_day date[],
    p_encounters bigint[], p_minutes bigint[], p_units bigint[], p_group_attendance bigint[],
    p_noshows bigint[], p_enrollments bigint[], p_discharges bigint[], p_active_delta bigint[],
    p_notes_signed bigint[], p_notes_late bigint[], p_notes_overdue bigint[],
    p_referrals_made bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH rp_batch AS (
        SELECT u.agency AS agency_id, u.site AS site_id, u.staff AS staff_id, g.grain, g.period,
               u.encounters, u.minutes AS encounter_minutes, u.units, u.group_attendance,
               u.noshows, u.enrollments, u.discharges, u.active_delta, u.notes_signed,
               u.notes_late, u.notes_overdue, u.referrals_made
        FROM unnest(p_agency, p_site, p_staff, p_at, p_day, p_encounters, p_minutes, p_units,
                    p_group_attendance, p_noshows, p_enrollments, p_discharges, p_active_delta,
                    p_notes_signed, p_notes_late, p_notes_overdue, p_referrals_made)
             AS u (agency, site, staff, at, day, encounters, minutes, units, group_attendance,
                   noshows, enrollments, discharges, active_delta, notes_signed, notes_late,
                   notes_overdue, referrals_made)
        LEFT JOIN identity.site_directory sd ON sd.site_id = u.site
        CROSS JOIN LATERAL (SELECT coalesce(u.day, (u.at AT TIME ZONE
                                coalesce(sd.time_zone, 'UTC'))::date) AS d) x
        CROSS JOIN LATERAL (VALUES ('d'::"char", x.d), ('w'::"char", date_trunc('week', x.d)::date),
                                   ('m'::"char", date_trunc('month', x.d)::date)) g (grain, period))
    INSERT INTO reporting.site_rollup AS r (site_id, grain, period, agency_id, encounters,
        encounter_minutes, units, group_attendance, noshows, enrollments, discharges,
        active_delta, notes_signed, notes_late, notes_overdue, referrals_made)
    SELECT site_id, grain, period, (array_agg(agency_id))[1], sum(encounters),
           sum(encounter_minutes), sum(units), sum(group_attendance), sum(noshows),
           sum(enrollments), sum(discharges), sum(active_delta), sum(notes_signed),
           sum(notes_late), sum(notes_overdue), sum(referrals_made)
    FROM rp_batch GROUP BY site_id, grain, period
    ON CONFLICT (site_id, grain, period) DO UPDATE SET
        encounters = r.encounters + excluded.encounters,
        encounter_minutes = r.encounter_minutes + excluded.encounter_minutes,
        units = r.units + excluded.units,
        group_attendance = r.group_attendance + excluded.group_attendance,
        noshows = r.noshows + excluded.noshows,
        enrollments = r.enrollments + excluded.enrollments,
        discharges = r.discharges + excluded.discharges,
        active_delta = r.active_delta + excluded.active_delta,
        notes_signed = r.notes_signed + excluded.notes_signed,
        notes_late = r.notes_late + excluded.notes_late,
        notes_overdue = r.notes_overdue + excluded.notes_overdue,
        referrals_made = r.referrals_made + excluded.referrals_made;
    WITH rp_batch AS (
        SELECT u.agency AS agency_id, u.site AS site_id, u.staff AS staff_id, g.grain, g.period,
               u.encounters, u.minutes AS encounter_minutes, u.units, u.group_attendance,
               u.noshows, u.enrollments, u.discharges, u.active_delta, u.notes_signed,
               u.notes_late, u.notes_overdue, u.referrals_made
        FROM unnest(p_agency, p_site, p_staff, p_at, p_day, p_encounters, p_minutes, p_units,
                    p_group_attendance, p_noshows, p_enrollments, p_discharges, p_active_delta,
                    p_notes_signed, p_notes_late, p_notes_overdue, p_referrals_made)
             AS u (agency, site, staff, at, day, encounters, minutes, units, group_attendance,
                   noshows, enrollments, discharges, active_delta, notes_signed, notes_late,
                   notes_overdue, referrals_made)
        LEFT JOIN identity.site_directory sd ON sd.site_id = u.site
        CROSS JOIN LATERAL (SELECT coalesce(u.day, (u.at AT TIME ZONE
                                coalesce(sd.time_zone, 'UTC'))::date) AS d) x
        CROSS JOIN LATERAL (VALUES ('d'::"char", x.d), ('w'::"char", date_trunc('week', x.d)::date),
                                   ('m'::"char", date_trunc('month', x.d)::date)) g (grain, period))
    INSERT INTO reporting.staff_rollup AS r (site_id, grain, period, staff_id, agency_id,
        encounters, encounter_minutes, units, noshows, notes_signed, notes_late, notes_overdue,
        referrals_made)
    SELECT site_id, grain, period, staff_id, (array_agg(agency_id))[1], sum(encounters),
           sum(encounter_minutes), sum(units), sum(noshows), sum(notes_signed),
           sum(notes_late), sum(notes_overdue), sum(referrals_made)
    FROM rp_batch WHERE staff_id IS NOT NULL GROUP BY site_id, grain, period, staff_id
    ON CONFLICT (site_id, grain, period, staff_id) DO UPDATE SET
        encounters = r.encounters + excluded.encounters,
        encounter_minutes = r.encounter_minutes + excluded.encounter_minutes,
        units = r.units + excluded.units,
        noshows = r.noshows + excluded.noshows,
        notes_signed = r.notes_signed + excluded.notes_signed,
        notes_late = r.notes_late + excluded.notes_late,
        notes_overdue = r.notes_overdue + excluded.notes_overdue,
        referrals_made = r.referrals_made + excluded.referrals_made;
    WITH rp_batch AS (
        SELECT u.agency AS agency_id, u.site AS site_id, u.staff AS staff_id, g.grain, g.period,
               u.encounters, u.minutes AS encounter_minutes, u.units, u.group_attendance,
               u.noshows, u.enrollments, u.discharges, u.active_delta, u.notes_signed,
               u.notes_late, u.notes_overdue, u.referrals_made
        FROM unnest(p_agency, p_site, p_staff, p_at, p_day, p_encounters, p_minutes, p_units,
                    p_group_attendance, p_noshows, p_enrollments, p_discharges, p_active_delta,
                    p_notes_signed, p_notes_late, p_notes_overdue, p_referrals_made)
             AS u (agency, site, staff, at, day, encounters, minutes, units, group_attendance,
                   noshows, enrollments, discharges, active_delta, notes_signed, notes_late,
                   notes_overdue, referrals_made)
        LEFT JOIN identity.site_directory sd ON sd.site_id = u.site
        CROSS JOIN LATERAL (SELECT coalesce(u.day, (u.at AT TIME ZONE
                                coalesce(sd.time_zone, 'UTC'))::date) AS d) x
        CROSS JOIN LATERAL (VALUES ('d'::"char", x.d), ('w'::"char", date_trunc('week', x.d)::date),
                                   ('m'::"char", date_trunc('month', x.d)::date)) g (grain, period))
    INSERT INTO reporting.agency_rollup AS r (agency_id, grain, period, encounters, encounter_minutes, units, group_attendance, noshows, enrollments, discharges, active_delta, notes_signed, notes_late, notes_overdue, referrals_made)
    SELECT agency_id, grain, period, sum(encounters), sum(encounter_minutes), sum(units), sum(group_attendance), sum(noshows), sum(enrollments), sum(discharges), sum(active_delta), sum(notes_signed), sum(notes_late), sum(notes_overdue), sum(referrals_made)
    FROM rp_batch GROUP BY agency_id, grain, period
    ON CONFLICT (agency_id, grain, period) DO UPDATE SET
        encounters = r.encounters + excluded.encounters,
        encounter_minutes = r.encounter_minutes + excluded.encounter_minutes,
        units = r.units + excluded.units,
        group_attendance = r.group_attendance + excluded.group_attendance,
        noshows = r.noshows + excluded.noshows,
        enrollments = r.enrollments + excluded.enrollments,
        discharges = r.discharges + excluded.discharges,
        active_delta = r.active_delta + excluded.active_delta,
        notes_signed = r.notes_signed + excluded.notes_signed,
        notes_late = r.notes_late + excluded.notes_late,
        notes_overdue = r.notes_overdue + excluded.notes_overdue,
        referrals_made = r.referrals_made + excluded.referrals_made;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT, UPDATE ON reporting.agency_rollup TO beacon_service;
    END IF;
END $$;
