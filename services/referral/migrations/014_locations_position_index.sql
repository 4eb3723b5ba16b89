-- locations_position (migration 003) served the first distance search,
-- which read the locations table by a latitude/longitude box. Since
-- migration 007 the distance search reads referral.service_search and its
-- own position index; nothing reads locations by position any more, and
-- every place an import takes paid for an entry in this index.
DROP INDEX referral.locations_position;
