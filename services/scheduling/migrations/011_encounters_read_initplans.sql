-- Encounters read with the scope computed once per statement, not per row.
--
-- encounters_read (004) called scheduling.in_scope(), which PostgreSQL
-- inlines with scope.agency_id(), scope.site_ids() and scope.has_role()
-- in it: the session's settings read and parsed again for every row the
-- policy filters. Permissive policies are OR-ed, this one first, so every
-- read of encounters paid for it, whoever the caller: a billing batch,
-- whose own policy (encounters_billing, 009) already holds its settings in
-- init plans, spent most of the time it reads encounters beyond a plain
-- COPY of them in it. Written as scalar subqueries, as 006 did for the
-- groups, the settings become init plans, computed once per statement.
-- The rule is the same as in 004 (scheduling.in_scope of 003, or a group
-- encounter whose roster the caller may see); only its form changes.
DROP POLICY encounters_read ON scheduling.encounters;
CREATE POLICY encounters_read ON scheduling.encounters FOR SELECT
    USING ((agency_id = (SELECT scope.agency_id())
            AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
            AND ((SELECT scope.has_role('supervisor'))
                 OR ((SELECT scope.has_role('peer_specialist'))
                     AND (staff_id = (SELECT scope.staff_id())
                          OR site_id = ANY ((SELECT scope.caseload_site_ids())::uuid[])))))
           OR (is_group AND scheduling.roster_visible(
                   agency_id, site_id,
                   (SELECT o.group_id FROM scheduling.group_occurrences o
                    WHERE o.id = group_occurrence_id), client_id)));
