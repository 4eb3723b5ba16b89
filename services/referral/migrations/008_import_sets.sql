-- Imports write set-wise (services/referral/import_write.c): each table in
-- chunks of one statement, then the search rows of every service touched in
-- one call of refresh_service_search, rewritten here set-wise.
--
-- 1. refresh_service_search: the keys of every touched service are gathered
--    by one grouped join each (terms, languages) instead of two correlated
--    subqueries per service, and its rows are deleted by key joined with
--    unnest. Same contract as migration 007's.
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
    -- Joins with unnest rather than = ANY: an import names thousands of ids.
    SELECT coalesce(array_agg(DISTINCT id), '{}') INTO touched FROM (
        SELECT unnest(p_services) AS id
        UNION ALL SELECT sal.service_id
                  FROM unnest(p_locations) AS l(id)
                  JOIN referral.service_at_location sal
                    ON sal.agency_id = p_agency AND sal.location_id = l.id
        UNION ALL SELECT a.link_id
                  FROM unnest(p_terms) AS t(id)
                  JOIN referral.attributes a
                    ON a.agency_id = p_agency AND a.taxonomy_term_id = t.id
                  WHERE a.link_entity = 'service') u;
    IF cardinality(touched) = 0 THEN
        RETURN;
    END IF;
    DELETE FROM referral.service_search x USING unnest(touched) AS t(id)
    WHERE x.agency_id = p_agency AND x.service_id = t.id;
    INSERT INTO referral.service_search (agency_id, service_id, location_id, latitude,
                                         longitude, status, search, term_keys, language_keys,
                                         minimum_age, maximum_age, updated_by)
    WITH svc AS MATERIALIZED (
        SELECT s.id, s.status, s.search, s.minimum_age, s.maximum_age
        FROM unnest(touched) AS t(id)
        JOIN referral.services s ON s.agency_id = p_agency AND s.id = t.id
    ), terms AS MATERIALIZED (
        SELECT a.link_id AS service_id, array_agg(k) AS keys
        FROM svc
        JOIN referral.attributes a
          ON a.agency_id = p_agency AND a.link_id = svc.id AND a.link_entity = 'service'
        JOIN referral.taxonomy_terms tt
          ON tt.agency_id = p_agency AND tt.id = a.taxonomy_term_id,
        LATERAL unnest(ARRAY['id:' || tt.id::text, 'code:' || tt.code,
                             'name:' || lower(tt.name)]) k
        WHERE k IS NOT NULL
        GROUP BY a.link_id
    ), langs AS MATERIALIZED (
        SELECT g.service_id, array_agg(DISTINCT k) AS keys
        FROM svc
        JOIN referral.languages g ON g.agency_id = p_agency AND g.service_id = svc.id,
        LATERAL unnest(ARRAY[lower(g.code), lower(g.name)]) k
        WHERE k IS NOT NULL
        GROUP BY g.service_id
    )
    SELECT p_agency, svc.id, l.id, l.latitude, l.longitude, svc.status, svc.search,
           coalesce(terms.keys, '{}'), coalesce(langs.keys, '{}'),
           svc.minimum_age, svc.maximum_age, p_staff
    FROM svc
    JOIN referral.service_at_location sal ON sal.agency_id = p_agency AND sal.service_id = svc.id
    JOIN referral.locations l ON l.agency_id = p_agency AND l.id = sal.location_id
    LEFT JOIN terms ON terms.service_id = svc.id
    LEFT JOIN langs ON langs.service_id = svc.id
    WHERE l.latitude IS NOT NULL AND l.longitude IS NOT NULL
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
