-- staff.changed (beacon.identity.StaffEvent) for every staff member who
-- exists when identity starts announcing them, so that reporting learns
-- their sites and credentials without waiting for their next change. The
-- relay publishes these before any later event (they are the oldest rows).
-- Fields: 1 staff_id, 2 agency_id, 3 status, 4 site_ids, 5 credentials
-- (1 kind, 3 issued_on, 4 expires_on).
INSERT INTO events.outbox (producer, topic, payload)
SELECT 'identity', 'staff.changed',
       events.pb_string(1, s.id::text) || events.pb_string(2, s.agency_id::text)
       || events.pb_string(3, s.status)
       || coalesce((SELECT string_agg(events.pb_string(4, x.site_id::text), ''::bytea
                                      ORDER BY x.site_id)
                    FROM identity.staff_sites x WHERE x.staff_id = s.id), ''::bytea)
       || coalesce((SELECT string_agg(events.pb_bytes(5,
                               events.pb_string(1, c.kind)
                               || events.pb_string(3, to_char(c.issued_on, 'YYYY-MM-DD'))
                               || events.pb_string(4, to_char(c.expires_on, 'YYYY-MM-DD'))),
                           ''::bytea ORDER BY c.kind, c.expires_on)
                    FROM identity.credentials c WHERE c.staff_id = s.id), ''::bytea)
FROM identity.staff s
ORDER BY s.created_at, s.id;
