-- Merging a duplicate registration into the record that stays. The
-- duplicate is not deleted: it is marked merged (status 'merged',
-- merged_into) and its episodes, consents, assessments, goals and
-- assignment history move to the survivor; intake.client_merges records
-- who merged what, when, why and how many records moved. Only a
-- supervisor with both clients in their ordinary scope may merge.
ALTER TABLE intake.clients DROP CONSTRAINT clients_status_check;
ALTER TABLE intake.clients ADD CONSTRAINT clients_status_check
    CHECK (status IN ('active', 'inactive', 'discharged', 'merged'));
ALTER TABLE intake.clients ADD COLUMN merged_into uuid REFERENCES intake.clients;
ALTER TABLE intake.clients ADD CONSTRAINT clients_merged
    CHECK ((status = 'merged') = (merged_into IS NOT NULL) AND merged_into IS DISTINCT FROM id);

CREATE TABLE intake.client_merges (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    survivor_id  uuid NOT NULL REFERENCES intake.clients,
    duplicate_id uuid NOT NULL UNIQUE REFERENCES intake.clients,
    merged_by    uuid NOT NULL,
    merged_at    timestamptz NOT NULL DEFAULT now(),
    reason       text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    moved        jsonb NOT NULL DEFAULT '{}'
);

ALTER TABLE intake.client_merges ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.client_merges FORCE ROW LEVEL SECURITY;
CREATE POLICY client_merges_visible ON intake.client_merges FOR SELECT
    USING (EXISTS (SELECT FROM intake.clients c WHERE c.id = survivor_id));
CREATE POLICY client_merges_record ON intake.client_merges FOR INSERT
    WITH CHECK (merged_by = scope.staff_id() AND scope.has_role('supervisor'));

-- The move: a supervisor re-points child records between two clients of
-- their scope (the policies are permissive, so these add to the others).
CREATE FUNCTION intake.merge_allowed(client uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT scope.has_role('supervisor')
           AND EXISTS (SELECT FROM intake.clients c WHERE c.id = client
                       AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id))
$$;
CREATE POLICY enrollments_merge ON intake.enrollments FOR UPDATE
    USING (intake.merge_allowed(client_id)) WITH CHECK (intake.merge_allowed(client_id));
CREATE POLICY consents_merge ON intake.consents FOR UPDATE
    USING (intake.merge_allowed(client_id)) WITH CHECK (intake.merge_allowed(client_id));
CREATE POLICY assessments_merge ON intake.assessments FOR UPDATE
    USING (intake.merge_allowed(client_id)) WITH CHECK (intake.merge_allowed(client_id));
CREATE POLICY goals_merge ON intake.goals FOR UPDATE
    USING (intake.merge_allowed(client_id)) WITH CHECK (intake.merge_allowed(client_id));
CREATE POLICY client_assignments_merge ON intake.client_assignments FOR UPDATE
    USING (intake.merge_allowed(client_id)) WITH CHECK (intake.merge_allowed(client_id));
-- Match keys: the agency-wide policy covered every command; deleting is now
-- granted (for merges), so it is split and DELETE is left to the merge.
DROP POLICY client_match_keys_agency ON intake.client_match_keys;
CREATE POLICY client_match_keys_read ON intake.client_match_keys FOR SELECT
    USING (agency_id = scope.agency_id()
           AND (scope.has_role('peer_specialist') OR scope.has_role('supervisor')));
CREATE POLICY client_match_keys_add ON intake.client_match_keys FOR INSERT
    WITH CHECK (agency_id = scope.agency_id()
                AND (scope.has_role('peer_specialist') OR scope.has_role('supervisor')));
CREATE POLICY client_match_keys_change ON intake.client_match_keys FOR UPDATE
    USING (agency_id = scope.agency_id()
           AND (scope.has_role('peer_specialist') OR scope.has_role('supervisor')))
    WITH CHECK (agency_id = scope.agency_id());
CREATE POLICY client_match_keys_merge ON intake.client_match_keys FOR DELETE
    USING (intake.merge_allowed(client_id));

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON intake.client_merges TO beacon_service;
        GRANT UPDATE (merged_into) ON intake.clients TO beacon_service;
        GRANT UPDATE (client_id) ON intake.enrollments, intake.consents, intake.assessments,
            intake.goals, intake.client_assignments TO beacon_service;
        GRANT DELETE ON intake.client_match_keys TO beacon_service;
    END IF;
END $$;
