-- The clients table's row security, evaluated once per statement instead of
-- once per row (as scheduling's 006 does for its tables).
--
-- Written with intake.in_scope() and scope.*() called directly, the policies
-- re-read and re-parse the session's settings (the caller's roles, sites and
-- caseload sites) for every row a statement looks at: about 7 microseconds a
-- row, the larger part of reading a caseload page of 50. As scalar subqueries,
-- (SELECT scope.site_ids()), they become init plans computed once and then
-- compared per row. The rules are those of 003 and 015; only their form
-- changes. intake.in_scope stays for the policies of the other tables, which
-- look up one client each.
DROP POLICY clients_read ON intake.clients;
CREATE POLICY clients_read ON intake.clients FOR SELECT
    USING ((agency_id = (SELECT scope.agency_id())
            AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
            AND ((SELECT scope.has_role('supervisor'))
                 OR ((SELECT scope.has_role('peer_specialist'))
                     AND (assigned_staff_id = (SELECT scope.staff_id())
                          OR site_id = ANY ((SELECT scope.caseload_site_ids())::uuid[])))))
           OR ((SELECT scope.has_role('peer_specialist') OR scope.has_role('supervisor'))
               AND EXISTS (SELECT FROM intake.break_glass g
                           WHERE g.client_id = clients.id AND g.agency_id = clients.agency_id
                             AND g.staff_id = (SELECT scope.staff_id()) AND g.expires_at > now())));

DROP POLICY clients_referral_disclosure ON intake.clients;
CREATE POLICY clients_referral_disclosure ON intake.clients FOR SELECT
    USING ((SELECT scope.has_role('referral_disclosure')
                   AND current_setting('beacon.purpose', true) = 'referral_disclosure')
           AND agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[]));
