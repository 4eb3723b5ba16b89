-- Dashboards read the rollups by index only. A dashboard reads one row per
-- site and period; rows written by the consumer as events arrive lie
-- scattered over the heap (a region's 1,800 month rows over as many pages:
-- 20-50 ms on a loaded 2-core machine). Indexes that carry every measure
-- answer from a few dozen index pages instead, at the price of updates that
-- are no longer HOT (each applied event also writes index entries).
ALTER TABLE reporting.site_rollup DROP CONSTRAINT site_rollup_pkey;
ALTER TABLE reporting.site_rollup ADD PRIMARY KEY (site_id, grain, period)
    INCLUDE (agency_id, encounters, encounter_minutes, units, group_attendance, group_sessions,
             noshows, enrollments, discharges, active_delta, notes_signed, notes_late,
             notes_overdue, referrals_made, referrals_closed, closure_seconds);
DROP INDEX reporting.site_rollup_agency;
CREATE INDEX site_rollup_agency ON reporting.site_rollup (agency_id, grain, period)
    INCLUDE (site_id, encounters, encounter_minutes, units, group_attendance, group_sessions,
             noshows, enrollments, discharges, active_delta, notes_signed, notes_late,
             notes_overdue, referrals_made, referrals_closed, closure_seconds);
ALTER TABLE reporting.staff_rollup DROP CONSTRAINT staff_rollup_pkey;
ALTER TABLE reporting.staff_rollup ADD PRIMARY KEY (site_id, grain, period, staff_id)
    INCLUDE (agency_id, encounters, encounter_minutes, units, noshows, notes_signed, notes_late,
             notes_overdue, referrals_made);
