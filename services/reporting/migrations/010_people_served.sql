-- People served: the clients with at least one contact (a completed
-- encounter, one-on-one or in a group: encounter.completed) in a period,
-- each counted once per period however many contacts they had.
--
-- served (per site) and served_agency (per agency: a client seen at two
-- sites of the agency is one person there) hold who was seen in each day,
-- ISO week and month (local dates of the site); served_sites and
-- served_agencies count them, kept in step, so the time series reads one
-- row per period. A count for a longer span (a dashboard's total) is the
-- number of distinct clients in it, never the sum of its periods.
CREATE TABLE reporting.served (
    site_id   uuid NOT NULL,
    grain     "char" NOT NULL CHECK (grain IN ('d', 'w', 'm')),
    period    date NOT NULL,
    client_id uuid NOT NULL,
    agency_id uuid NOT NULL,
    PRIMARY KEY (site_id, grain, period, client_id)
);
CREATE TABLE reporting.served_agency (
    agency_id uuid NOT NULL,
    grain     "char" NOT NULL CHECK (grain IN ('d', 'w', 'm')),
    period    date NOT NULL,
    client_id uuid NOT NULL,
    PRIMARY KEY (agency_id, grain, period, client_id)
);
CREATE TABLE reporting.served_sites (
    site_id   uuid NOT NULL,
    grain     "char" NOT NULL CHECK (grain IN ('d', 'w', 'm')),
    period    date NOT NULL,
    agency_id uuid NOT NULL,
    people    bigint NOT NULL,
    PRIMARY KEY (site_id, grain, period)
);
CREATE TABLE reporting.served_agencies (
    agency_id uuid NOT NULL,
    grain     "char" NOT NULL CHECK (grain IN ('d', 'w', 'm')),
    period    date NOT NULL,
    people    bigint NOT NULL,
    PRIMARY KEY (agency_id, grain, period)
);

-- A run of encounters (the consumer's batch; rows without a client are
-- not contacts and are skipped): who was seen, once per period.
CREATE FUNCTION reporting.served_many(p_agency uuid[], p_site uuid[], p_at timestamptz[],
                                      p_client uuid[]) RETURNS void
LANGUAGE sql AS $$
    WITH e AS (SELECT a, s, c, reporting.local_day(s, t) AS d
               FROM unnest(p_agency, p_site, p_at, p_client) AS x (a, s, t, c)
               WHERE c IS NOT NULL),
    g AS (SELECT DISTINCT e.a, e.s, e.c, v.grain, v.period FROM e CROSS JOIN LATERAL (VALUES
              ('d'::"char", e.d), ('w'::"char", date_trunc('week', e.d)::date),
              ('m'::"char", date_trunc('month', e.d)::date)) v (grain, period)),
    ns AS (INSERT INTO reporting.served (site_id, grain, period, client_id, agency_id)
           SELECT s, grain, period, c, a FROM g ON CONFLICT DO NOTHING
           RETURNING site_id, grain, period, agency_id),
    na AS (INSERT INTO reporting.served_agency (agency_id, grain, period, client_id)
           SELECT DISTINCT a, grain, period, c FROM g ON CONFLICT DO NOTHING
           RETURNING agency_id, grain, period),
    cs AS (INSERT INTO reporting.served_sites AS r (site_id, grain, period, agency_id, people)
           SELECT site_id, grain, period, agency_id, count(*) FROM ns GROUP BY 1, 2, 3, 4
           ON CONFLICT (site_id, grain, period) DO UPDATE SET people = r.people + excluded.people)
    INSERT INTO reporting.served_agencies AS r (agency_id, grain, period, people)
    SELECT agency_id, grain, period, count(*) FROM na GROUP BY 1, 2, 3
    ON CONFLICT (agency_id, grain, period) DO UPDATE SET people = r.people + excluded.people;
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT, UPDATE ON reporting.served, reporting.served_agency,
            reporting.served_sites, reporting.served_agencies TO beacon_service;
    END IF;
END $$;
