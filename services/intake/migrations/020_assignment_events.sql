-- client.assigned (beacon.intake.IntakeEvent) for every client registered
-- before intake announced assignments, so that reporting's staff caseloads
-- start complete. Fields: 1 client_id, 2 agency_id, 3 site_id, 13
-- to_status, 15 staff_id. The row policies are set aside for this one
-- statement (the owner reads every client), inside the migration's
-- transaction, and are in force again when it commits.
ALTER TABLE intake.clients NO FORCE ROW LEVEL SECURITY;
INSERT INTO events.outbox (producer, topic, payload)
SELECT 'intake', 'client.assigned',
       events.pb_string(1, c.id::text) || events.pb_string(2, c.agency_id::text)
       || events.pb_string(3, c.site_id::text) || events.pb_string(13, c.status)
       || events.pb_string(15, c.assigned_staff_id::text)
FROM intake.clients c
ORDER BY c.created_at, c.id;
ALTER TABLE intake.clients FORCE ROW LEVEL SECURITY;
