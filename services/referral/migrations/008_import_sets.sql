-- Imports write set-wise (services/referral/import_write.c): each table in
-- chunks of one statement, then the search rows of every service touched in
-- one call of refresh_service_search, rewritten here set-wise.
--
-- 1. refresh_service_search: every lookup of a touched service's rows is an
--    index probe by key (LATERAL ... OFFSET 0), and its old rows are deleted
--    by ctid. Migration 007's joins were planned as hashes of whole
--    directory tables (auto_explain after 10,000 services: seq scans of
--    service_search, services, attributes and languages, 120 to 450 ms per
--    batch of 500, growing with the directory). Same contract as 007's.
-- 2. analyze_directory: right after an import commits, the tables it grew
--    are analysed when their statistics are missing or stale, so that the
--    first search over a freshly imported directory is planned with them.
--    Without statistics (a table never analysed) the planner reads the
--    distance search's radius box with only the agency and longitude as
--    index bounds, i.e. the whole directory (EXPLAIN after an import of
--    10,000 services: 2,025 heap fetches and 55 ms where the latitude band
--    bounds the scan to a few hundred); autovacuum comes a minute or more
--    later. The application role owns no table, so the function runs with
--    its owner's rights (SECURITY DEFINER) and does nothing but ANALYZE.

CREATE OR REPLACE FUNCTION referral.refresh_service_search(p_agency uuid, p_services uuid[],
                                                           p_locations uuid[], p_terms uuid[],
                                                           p_staff uuid)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    touched uuid[];
BEGIN
    SELECT coalesce(array_agg(DISTINCT id), '{}') INTO touched FROM (
        SELECT unnest(p_services) AS id
        UNION ALL SELECT sal.service_id
                  FROM unnest(p_locations) AS l(id)
                  CROSS JOIN LATERAL (SELECT x.service_id FROM referral.service_at_location x
                                      WHERE x.agency_id = p_agency AND x.location_id = l.id
                                      OFFSET 0) sal
        UNION ALL SELECT a.link_id
                  FROM unnest(p_terms) AS t(id)
                  CROSS JOIN LATERAL (SELECT x.link_id FROM referral.attributes x
                                      WHERE x.agency_id = p_agency AND x.taxonomy_term_id = t.id
                                        AND x.link_entity = 'service'
                                      OFFSET 0) a) u;
    IF cardinality(touched) = 0 THEN
        RETURN;
    END IF;
    -- Every lookup below is by key, one index probe per touched service
    -- (LATERAL ... OFFSET 0 keeps each a parameterised probe): a join would
    -- be planned as a hash of a whole directory table, which grows with
    -- every batch while the batch stays the same size.
    DELETE FROM referral.service_search x
    WHERE x.ctid = ANY (ARRAY(
        SELECT y.ctid
        FROM unnest(touched) AS t(id)
        CROSS JOIN LATERAL (SELECT z.ctid FROM referral.service_search z
                            WHERE z.agency_id = p_agency AND z.service_id = t.id
                            OFFSET 0) y));
    INSERT INTO referral.service_search (agency_id, service_id, location_id, latitude,
                                         longitude, status, search, term_keys, language_keys,
                                         minimum_age, maximum_age, updated_by)
    SELECT p_agency, s.id, l.id, l.latitude, l.longitude, s.status, s.search,
           coalesce(tk.keys, '{}'), coalesce(lk.keys, '{}'), s.minimum_age, s.maximum_age,
           p_staff
    FROM unnest(touched) AS t(id)
    CROSS JOIN LATERAL (SELECT s.id, s.status, s.search, s.minimum_age, s.maximum_age
                        FROM referral.services s
                        WHERE s.agency_id = p_agency AND s.id = t.id OFFSET 0) s
    CROSS JOIN LATERAL (SELECT sal.location_id FROM referral.service_at_location sal
                        WHERE sal.agency_id = p_agency AND sal.service_id = s.id
                        OFFSET 0) sal
    CROSS JOIN LATERAL (SELECT l.id, l.latitude, l.longitude FROM referral.locations l
                        WHERE l.agency_id = p_agency AND l.id = sal.location_id
                          AND l.latitude IS NOT NULL AND l.longitude IS NOT NULL
                        OFFSET 0) l
    CROSS JOIN LATERAL (SELECT array_agg(k) AS keys
                        FROM referral.attributes a
                        JOIN referral.taxonomy_terms tt
                          ON tt.agency_id = a.agency_id AND tt.id = a.taxonomy_term_id,
                        LATERAL unnest(ARRAY['id:' || tt.id::text, 'code:' || tt.code,
                                             'name:' || lower(tt.name)]) k
                        WHERE a.agency_id = p_agency AND a.link_id = s.id
                          AND a.link_entity = 'service' AND k IS NOT NULL) tk
    CROSS JOIN LATERAL (SELECT array_agg(DISTINCT k) AS keys
                        FROM referral.languages g,
                        LATERAL unnest(ARRAY[lower(g.code), lower(g.name)]) k
                        WHERE g.agency_id = p_agency AND g.service_id = s.id
                          AND k IS NOT NULL) lk
    ON CONFLICT DO NOTHING;
END $$;

-- Analyses each directory table (and the search table) whose statistics are
-- missing or older than its size: never analysed, or more than twice as many
-- pages as when last analysed (plus a few, so that small tables are not
-- analysed after every import). A table that doubles is analysed about
-- log2(n) times as it grows: cheap next to writing it; autovacuum keeps the
-- statistics of slower changes. ANALYZE also invalidates the plans cached on
-- those tables (generic plans made while they were empty).
CREATE FUNCTION referral.analyze_directory() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS rel
        FROM pg_class c
        WHERE c.relnamespace = 'referral'::regnamespace AND c.relkind = 'r'
          AND c.relname IN ('organizations', 'services', 'locations', 'service_at_location',
                            'addresses', 'phones', 'schedules', 'taxonomies',
                            'taxonomy_terms', 'attributes', 'languages', 'accessibility',
                            'service_search')
          AND (c.reltuples < 0
               OR pg_relation_size(c.oid) / current_setting('block_size')::bigint
                  > 2 * c.relpages + 8)
    LOOP
        EXECUTE format('ANALYZE %s', r.rel);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION referral.analyze_directory() FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT EXECUTE ON FUNCTION referral.analyze_directory() TO beacon_service;
    END IF;
END $$;
