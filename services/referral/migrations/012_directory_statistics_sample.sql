-- analyze_directory (migration 008) samples 3,000 rows a table instead of
-- 30,000 (default_statistics_target 10 instead of 100 for its ANALYZEs).
--
-- It runs beside the next import whenever a table has doubled since its
-- last statistics, about eight times per table while a 100,000-service
-- directory is loaded, and on a 2-core machine it takes its CPU from that
-- import: at 300,000 services a round over the directory took 3.2 s
-- (services 0.56 s, service_search 0.74 s), 0.10 and 0.11 s with the
-- smaller sample. Its statistics only need to say how large a table is and
-- roughly how its values spread, until autovacuum's next ANALYZE (a minute
-- or so later, with the full sample); the searches are written as probes
-- by key whatever the estimates.
CREATE OR REPLACE FUNCTION referral.analyze_directory() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET default_statistics_target = 10 AS $$
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
