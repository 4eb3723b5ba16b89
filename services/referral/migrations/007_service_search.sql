-- What a distance search reads: one row per service and located place it is
-- offered at, holding everything the search filters on (keyword vector,
-- status, category and language keys, ages) next to the coordinates. A
-- keyword + category + radius query then reads the rows inside the
-- radius's latitude/longitude box from one index and filters them without
-- a lookup per candidate; the directory tables are read only for the page
-- of results. (Row security rules out a spatial index here: a qual can use
-- an index under row security only when its operator is leakproof, which
-- float8 comparisons are and the cube or point operators are not.)
--
-- Derived data: the import rewrites the rows of every service it touched
-- (directly, through one of its places, a category term or a language) in
-- the same transaction, with referral.refresh_service_search.
CREATE TABLE referral.service_search (
    agency_id     uuid NOT NULL,
    service_id    uuid NOT NULL,
    location_id   uuid NOT NULL,
    latitude      double precision NOT NULL,
    longitude     double precision NOT NULL,
    status        text NOT NULL,
    search        tsvector NOT NULL,
    -- 'id:<term id>', 'code:<code>', 'name:<lower-case name>' of each term
    -- the service is attributed (the search's taxonomy_term matches any).
    term_keys     text[] NOT NULL,
    -- lower-case code and name of each language the service is offered in.
    language_keys text[] NOT NULL,
    minimum_age   numeric,
    maximum_age   numeric,
    updated_by    uuid NOT NULL,
    -- A band of 0.05 degrees of latitude (about 5.5 km): the index reads
    -- the few bands a radius spans, each over the box's longitudes only,
    -- rather than every longitude of the box's latitudes.
    lat_cell      integer GENERATED ALWAYS AS (floor(latitude * 20)::integer) STORED,
    PRIMARY KEY (agency_id, service_id, location_id)
);
-- Holding every column the search filters on and returns, so that reading
-- the box is an index-only scan (no visit of the table's pages).
CREATE INDEX service_search_position ON referral.service_search (agency_id, lat_cell, longitude)
    INCLUDE (latitude, service_id, location_id, status, minimum_age, maximum_age, term_keys,
             language_keys, search);

ALTER TABLE referral.service_search ENABLE ROW LEVEL SECURITY;
ALTER TABLE referral.service_search FORCE ROW LEVEL SECURITY;
CREATE POLICY service_search_read ON referral.service_search FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND (SELECT scope.has_role('peer_specialist') OR scope.has_role('supervisor')
                    OR scope.has_role('site_admin') OR scope.has_role('agency_admin')));
CREATE POLICY service_search_add ON referral.service_search FOR INSERT
    WITH CHECK (agency_id = (SELECT scope.agency_id())
                AND (SELECT scope.has_role('agency_admin'))
                AND updated_by = (SELECT scope.staff_id()));
CREATE POLICY service_search_remove ON referral.service_search FOR DELETE
    USING (agency_id = (SELECT scope.agency_id()) AND (SELECT scope.has_role('agency_admin')));

-- Rewrites the search rows of the services named, of those offered at the
-- locations named and of those attributed the terms named. Runs with the
-- caller's rights and row security.
CREATE FUNCTION referral.refresh_service_search(p_agency uuid, p_services uuid[],
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
    DELETE FROM referral.service_search x USING unnest(touched) AS t(id)
    WHERE x.agency_id = p_agency AND x.service_id = t.id;
    INSERT INTO referral.service_search (agency_id, service_id, location_id, latitude,
                                         longitude, status, search, term_keys, language_keys,
                                         minimum_age, maximum_age, updated_by)
    SELECT p_agency, s.id, l.id, l.latitude, l.longitude, s.status, s.search,
           coalesce((SELECT array_agg(k) FROM referral.attributes a
                     JOIN referral.taxonomy_terms tt
                       ON tt.agency_id = a.agency_id AND tt.id = a.taxonomy_term_id,
                     LATERAL unnest(ARRAY['id:' || tt.id::text, 'code:' || tt.code,
                                          'name:' || lower(tt.name)]) k
                     WHERE a.agency_id = p_agency AND a.link_entity = 'service'
                       AND a.link_id = s.id AND k IS NOT NULL), '{}'),
           coalesce((SELECT array_agg(DISTINCT k) FROM referral.languages g,
                     LATERAL unnest(ARRAY[lower(g.code), lower(g.name)]) k
                     WHERE g.agency_id = p_agency AND g.service_id = s.id
                       AND k IS NOT NULL), '{}'),
           s.minimum_age, s.maximum_age, p_staff
    FROM unnest(touched) AS t(id)
    JOIN referral.services s ON s.agency_id = p_agency AND s.id = t.id
    JOIN referral.service_at_location sal ON sal.agency_id = p_agency AND sal.service_id = s.id
    JOIN referral.locations l ON l.agency_id = p_agency AND l.id = sal.location_id
    WHERE l.latitude IS NOT NULL AND l.longitude IS NOT NULL
    ON CONFLICT DO NOTHING;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT, DELETE ON referral.service_search TO beacon_service;
    END IF;
END $$;

-- The directory imported so far.
ALTER TABLE referral.service_search NO FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.services NO FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.service_at_location NO FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.locations NO FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.attributes NO FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.taxonomy_terms NO FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.languages NO FORCE ROW LEVEL SECURITY;
SELECT referral.refresh_service_search(agency_id, array_agg(id), '{}', '{}',
                                       (array_agg(updated_by))[1])
FROM referral.services GROUP BY agency_id;
ALTER TABLE referral.service_search FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.services FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.service_at_location FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.locations FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.attributes FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.taxonomy_terms FORCE ROW LEVEL SECURITY;
ALTER TABLE referral.languages FORCE ROW LEVEL SECURITY;
