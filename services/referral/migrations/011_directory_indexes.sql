-- Indexes no query reads, each written for every record an import takes.
--
-- * services_status (agency_id, status): the searches filter on status as
--   "$9 = 'any' OR s.status = $9" in one generic plan, which an index on
--   status cannot serve; the distance search reads status from its own
--   table (service_search).
-- * services_organization (agency_id, organization_id): served the foreign
--   key to organizations (the lookup of referencing services when an
--   organization is deleted or re-keyed). Migration 010 dropped that key and
--   nothing deletes from the directory; no query asks for an organization's
--   services.
-- * languages_code (agency_id, lower(code)): the language filter matches
--   code or name inside a probe by service (languages_service); an index on
--   the code alone serves neither branch of the OR.
DROP INDEX referral.services_status;
DROP INDEX referral.services_organization;
DROP INDEX referral.languages_code;
