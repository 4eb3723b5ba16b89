-- Every registration writes each index on intake.clients. Three of them
-- serve no query:
-- - clients_site and clients_assigned are prefixes of clients_site_status
--   and clients_assigned_status (same columns first, same predicate), which
--   serve every lookup they did, row security's site filter included;
-- - clients_name_dob predates the blind match keys: duplicate detection
--   reads intake.client_match_keys, and no query searches names.
DROP INDEX intake.clients_site;
DROP INDEX intake.clients_assigned;
DROP INDEX intake.clients_name_dob;
