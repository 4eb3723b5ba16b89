-- Caseload pages are read newest first within an agency: this index gives
-- them in order, so a page of 50 reads about 50 rows whatever the filters
-- (row security and the filters then apply to those rows only).
CREATE INDEX clients_agency_recent ON intake.clients (agency_id, created_at DESC, id DESC);

-- Duplicate lookups by Medicaid ID: a plain index (a partial one cannot
-- serve the prepared statement, whose parameter might be NULL, and the
-- lookup then read every key of the agency).
DROP INDEX intake.client_match_keys_medicaid;
CREATE INDEX client_match_keys_medicaid ON intake.client_match_keys (agency_id, medicaid_index);
