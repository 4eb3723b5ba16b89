-- The first caseload assignment of a client is no longer written as a
-- history row at registration: the client row already holds every fact of
-- it (assigned_staff_id, created_by, created_at), and writing it again cost
-- each registration an insert, two index entries, a foreign-key check and a
-- row-security probe.
--
-- The rule: a client with no rows in intake.client_assignments has been
-- assigned to its assigned_staff_id (if any) by created_by at created_at,
-- and nothing has changed it since. Whatever changes the history first
-- writes that registration row from the client row
-- (intake.keep_registration_assignment): a reassignment (closed at once),
-- a merge (for both records, before the history moves). Reading the
-- history shows the row derived from the client while there is none.

-- Recording the registration assignment is writing down facts the client
-- row already holds, whoever does it; every other history row is still
-- the caller's own decision (client_assignments_record).
CREATE POLICY client_assignments_registration ON intake.client_assignments FOR INSERT
    WITH CHECK (reason = 'registered the client'
                AND EXISTS (SELECT FROM intake.clients c
                            WHERE c.id = client_id
                              AND c.created_by = assigned_by::text
                              AND c.created_at = assigned_at));

-- Writes the registration row of p_client, assigned to p_staff (its
-- assignment until now) and ended at p_ended (NULL: still current), unless
-- the client already has history. Runs with the caller's rights and row
-- security; the caller holds the client row locked (FOR UPDATE or UPDATE),
-- so two callers cannot both find the history empty.
CREATE FUNCTION intake.keep_registration_assignment(p_client uuid, p_staff uuid,
                                                    p_ended timestamptz)
RETURNS void LANGUAGE sql VOLATILE AS $$
    INSERT INTO intake.client_assignments (client_id, staff_id, assigned_by, assigned_at,
                                           reason, ended_at)
    SELECT c.id, p_staff, c.created_by::uuid, c.created_at, 'registered the client', p_ended
    FROM intake.clients c
    WHERE c.id = p_client AND p_staff IS NOT NULL
      AND c.created_by ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
      AND NOT EXISTS (SELECT FROM intake.client_assignments a WHERE a.client_id = p_client)
$$;

