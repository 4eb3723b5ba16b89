-- refresh_service_search rewrites only the stored services an import
-- touched: the services an import creates get their rows from what the
-- import itself linked to them (services/referral/search_rows.c), and
-- places and category terms it creates are no longer passed (only records of
-- the same import can link to them, and those name their service).
--
-- * The lookup of services through places and terms runs only when some are
--   passed (an import that changes a stored place or term).
-- * The statements keep one generic plan (plan_cache_mode): each is a fixed
--   chain of key probes (LATERAL ... OFFSET 0) whatever the arrays hold;
--   pg_stat_statements showed every call planned afresh.
--
-- Same signature and contract as migration 008's: the rows of every service
-- named, offered at a place named or attributed a term named are rewritten,
-- with the caller's rights and row security.
CREATE OR REPLACE FUNCTION referral.refresh_service_search(p_agency uuid, p_services uuid[],
                                                           p_locations uuid[], p_terms uuid[],
                                                           p_staff uuid)
RETURNS void LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    stored uuid[] := p_services;
BEGIN
    IF cardinality(p_locations) > 0 OR cardinality(p_terms) > 0 THEN
        SELECT coalesce(array_agg(DISTINCT id), '{}') INTO stored FROM (
            SELECT unnest(p_services) AS id
            UNION ALL SELECT sal.service_id
                      FROM unnest(p_locations) AS l(id)
                      CROSS JOIN LATERAL (SELECT x.service_id
                                          FROM referral.service_at_location x
                                          WHERE x.agency_id = p_agency AND x.location_id = l.id
                                          OFFSET 0) sal
            UNION ALL SELECT a.link_id
                      FROM unnest(p_terms) AS t(id)
                      CROSS JOIN LATERAL (SELECT x.link_id FROM referral.attributes x
                                          WHERE x.agency_id = p_agency
                                            AND x.taxonomy_term_id = t.id
                                            AND x.link_entity = 'service'
                                          OFFSET 0) a) u;
    END IF;
    IF cardinality(stored) = 0 THEN
        RETURN;
    END IF;
    DELETE FROM referral.service_search x
    WHERE x.ctid = ANY (ARRAY(
        SELECT y.ctid
        FROM unnest(stored) AS t(id)
        CROSS JOIN LATERAL (SELECT z.ctid FROM referral.service_search z
                            WHERE z.agency_id = p_agency AND z.service_id = t.id
                            OFFSET 0) y));
    INSERT INTO referral.service_search (agency_id, service_id, location_id, latitude,
                                         longitude, status, search, term_keys, language_keys,
                                         minimum_age, maximum_age, updated_by)
    SELECT p_agency, s.id, l.id, l.latitude, l.longitude, s.status, s.search,
           coalesce(tk.keys, '{}'), coalesce(lk.keys, '{}'), s.minimum_age, s.maximum_age,
           p_staff
    FROM unnest(stored) AS t(id)
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
