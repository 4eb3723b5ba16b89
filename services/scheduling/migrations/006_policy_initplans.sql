-- Row security evaluated once per statement, not once per row.
--
-- A policy that calls scope.agency_id(), scope.site_ids() or scope.has_role()
-- directly re-reads and re-parses the session's settings for every row it
-- filters: about 3 microseconds a row, most of the cost of reading a site's
-- quarter of group meetings. Written as scalar subqueries, (SELECT
-- scope.site_ids()), they become init plans: computed once per statement,
-- then compared per row. The rules are the same as in 004; only their form
-- changes. (A helper function such as site_care_team cannot hold the
-- subqueries: PostgreSQL inlines a SQL function only when its body has none,
-- and a function that is not inlined is called per row, which is slower
-- still.) The write policy, FOR ALL in 004, is split by command so that it is
-- no longer OR-ed into every read.

DROP POLICY groups_read ON scheduling.groups;
CREATE POLICY groups_read ON scheduling.groups FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
           AND (SELECT scope.has_role('supervisor') OR scope.has_role('peer_specialist')));

DROP POLICY group_occurrences_read ON scheduling.group_occurrences;
CREATE POLICY group_occurrences_read ON scheduling.group_occurrences FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
           AND (SELECT scope.has_role('supervisor') OR scope.has_role('peer_specialist')));

DROP POLICY group_occurrences_conflicts ON scheduling.group_occurrences;
CREATE POLICY group_occurrences_conflicts ON scheduling.group_occurrences FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND (SELECT current_setting('beacon.purpose', true) = 'conflict_check'));

DROP POLICY group_occurrences_reminders ON scheduling.group_occurrences;
CREATE POLICY group_occurrences_reminders ON scheduling.group_occurrences FOR SELECT
    USING ((SELECT current_setting('beacon.purpose', true) = 'reminder_scan'));

-- Changed by the site's supervisors, the series' facilitators and the
-- occurrence's own (a stand-in for one week), as in 004.
DROP POLICY group_occurrences_write ON scheduling.group_occurrences;
CREATE POLICY group_occurrences_add ON scheduling.group_occurrences FOR INSERT
    WITH CHECK (scheduling.site_care_team(agency_id, site_id) AND updated_by = scope.staff_id()
                AND (scope.has_role('supervisor') OR scope.staff_id() = ANY (facilitator_ids)
                     OR EXISTS (SELECT FROM scheduling.groups g WHERE g.id = group_id
                                AND scope.staff_id() = ANY (g.facilitator_ids))));
CREATE POLICY group_occurrences_change ON scheduling.group_occurrences FOR UPDATE
    USING (scheduling.site_care_team(agency_id, site_id)
           AND (scope.has_role('supervisor') OR scope.staff_id() = ANY (facilitator_ids)
                OR EXISTS (SELECT FROM scheduling.groups g WHERE g.id = group_id
                           AND scope.staff_id() = ANY (g.facilitator_ids))))
    WITH CHECK (scheduling.site_care_team(agency_id, site_id) AND updated_by = scope.staff_id()
                AND (scope.has_role('supervisor') OR scope.staff_id() = ANY (facilitator_ids)
                     OR EXISTS (SELECT FROM scheduling.groups g WHERE g.id = group_id
                                AND scope.staff_id() = ANY (g.facilitator_ids))));
CREATE POLICY group_occurrences_remove ON scheduling.group_occurrences FOR DELETE
    USING (scheduling.site_care_team(agency_id, site_id)
           AND (scope.has_role('supervisor') OR scope.staff_id() = ANY (facilitator_ids)
                OR EXISTS (SELECT FROM scheduling.groups g WHERE g.id = group_id
                           AND scope.staff_id() = ANY (g.facilitator_ids))));

DROP POLICY groups_reminders ON scheduling.groups;
CREATE POLICY groups_reminders ON scheduling.groups FOR SELECT
    USING ((SELECT current_setting('beacon.purpose', true) = 'reminder_scan'));

-- Appointments: the calendar views and the double-booking check read many
-- rows per statement. The rule is scheduling.in_scope's (003).
DROP POLICY appointments_read ON scheduling.appointments;
CREATE POLICY appointments_read ON scheduling.appointments FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
           AND ((SELECT scope.has_role('supervisor'))
                OR ((SELECT scope.has_role('peer_specialist'))
                    AND (staff_id = (SELECT scope.staff_id())
                         OR site_id = ANY ((SELECT scope.caseload_site_ids())::uuid[])))));

DROP POLICY appointments_conflicts ON scheduling.appointments;
CREATE POLICY appointments_conflicts ON scheduling.appointments FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND (SELECT current_setting('beacon.purpose', true) = 'conflict_check'));

DROP POLICY appointments_reminders ON scheduling.appointments;
CREATE POLICY appointments_reminders ON scheduling.appointments FOR SELECT
    USING ((SELECT current_setting('beacon.purpose', true) = 'reminder_scan'));
