# tests/bench/reporting.sh: the reporting service's benchmarks, sourced by
# tests/bench/run.sh after its helpers (result, fail, s_token, s_wrk, pg_admin,
# pg_admin_beacon, pg_beacon, run_child) and before main runs. Not a program of
# its own.
#
#   dashboard_site    generates BENCH_REPORT_ENCOUNTERS encounters (default
#                     10,000,000) over 50 sites of 5 agencies and 3 years
#                     (2024-2026), 20 staff and 2,000 clients a site, straight into
#                     scheduling.encounters and the rollups, the people served per
#                     period and the caseloads (set-based SQL as the superuser;
#                     reporting_generate.seconds says how long), then
#                     measures GET /api/v1/dashboards/site/{id} (3 years by week,
#                     as the site's supervisor, identified, audited) at
#                     BENCH_LIST_CONNECTIONS callers: dashboard_site.p50_ms/.p99_ms;
#                     beside it, in the same run, the equivalent plain SQL
#                     aggregate over the raw encounters table (count, minutes,
#                     units by local week for the site, the table's own indexes)
#                     through pgbench with one client: dashboard_site_sql.p50_ms/.p99_ms.
#   dashboard_region  the same for GET /api/v1/dashboards/region/{id} (the 5
#                     agencies, 3 years by month, de-identified, as the bench
#                     agency's admin) and its plain SQL aggregate by agency and
#                     month: dashboard_region.* and dashboard_region_sql.*.
#   event_lag         BENCH_LAG_RATE events a second (default 1,000) written to
#                     scheduling's outbox in transactions of 20 every 20 ms for
#                     BENCH_SECONDS, published by its relay and applied by the
#                     reporting consumer; a watcher in the database samples the
#                     consumer's position every 5 ms. Lag of an event = first
#                     sample at or past its seq minus its outbox row's created_at
#                     (the start of the writing transaction: an upper bound of
#                     commit -> rollup). event_lag.p50_ms/.p99_ms/.events.
#
# Wiring (run.sh): source this file, append "dashboard_site dashboard_region
# event_lag" to BENCHMARKS, and TARGETS "dashboard_site.p99_ms max 50",
# "dashboard_region.p99_ms max 50", "event_lag.p99_ms max 1000".

BENCH_REPORT_ENCOUNTERS=${BENCH_REPORT_ENCOUNTERS:-10000000}
BENCH_LAG_RATE=${BENCH_LAG_RATE:-1000}
REPORT_FROM=2024-01-01
REPORT_TO=2026-12-31

# s_report_fixture: the 50 sites, the encounters and their rollups, the
# region; once per run. Sets REPORT_SITE, REPORT_REGION, REPORT_AGENCIES.
s_report_fixture() {
  [ -n "${REPORT_SITE:-}" ] && return 0
  s_token || return 1
  local t0 n=$BENCH_REPORT_ENCOUNTERS
  t0=$(date +%s.%N)
  echo "  generating $n encounters over 50 sites and 3 years (set-based SQL)"
  pg_admin_beacon "
    BEGIN;
    CREATE TEMP TABLE bench_sites ON COMMIT DROP AS
      SELECT i, CASE WHEN i = 0 THEN '$BENCH_SITE_ID'::uuid
                     ELSE ('00000000-0000-4000-8000-' || lpad(to_hex(1000 + i), 12, '0'))::uuid END
                  AS site_id,
             CASE WHEN i < 10 THEN '$BENCH_AGENCY_ID'::uuid
                  ELSE ('00000000-0000-4000-9000-' || lpad(to_hex(i / 10), 12, '0'))::uuid END
                  AS agency_id
      FROM generate_series(0, 49) i;
    INSERT INTO identity.agencies (id, name)
      SELECT DISTINCT agency_id, 'Bench agency ' || agency_id FROM bench_sites
      WHERE agency_id <> '$BENCH_AGENCY_ID' ON CONFLICT DO NOTHING;
    INSERT INTO identity.sites (id, agency_id, name, time_zone)
      SELECT site_id, agency_id, 'Bench site ' || i, 'America/New_York' FROM bench_sites
      WHERE i > 0 ON CONFLICT DO NOTHING;
    UPDATE identity.sites SET time_zone = 'America/New_York' WHERE id = '$BENCH_SITE_ID';
    -- Encounter g: site g % 50, one of the site's 20 staff, one of its 2,000
    -- clients, a random time of a day in the three years, 20-90 minutes.
    INSERT INTO scheduling.encounters (agency_id, site_id, client_id, staff_id, starts_at,
                                       ends_at, mode, place_of_service, recorded_by)
      SELECT s.agency_id, s.site_id,
             ('00000000-0000-4000-a000-' || lpad(to_hex((g % 50) * 2000 + (g / 50) % 2000), 12, '0'))::uuid,
             ('00000000-0000-4000-b000-' || lpad(to_hex((g % 50) * 20 + (g / 50) % 20), 12, '0'))::uuid,
             t, t + make_interval(mins => m), 'in_person', '11',
             ('00000000-0000-4000-b000-' || lpad(to_hex((g % 50) * 20), 12, '0'))::uuid
      FROM generate_series(0, $n - 1) g
      JOIN bench_sites s ON s.i = g % 50
      CROSS JOIN LATERAL (SELECT timestamptz '$REPORT_FROM 13:00Z'
                                 + make_interval(days => (hashint4(g) & 1048575) % 1096,
                                                 mins => (hashint4(g + 7) & 1023) % 540) AS t,
                                 20 + (hashint4(g + 13) & 127) % 71 AS m) x;
    -- The rollups the consumer would have built from their events.
    CREATE TEMP TABLE bench_days ON COMMIT DROP AS
      SELECT e.site_id, e.agency_id, e.staff_id,
             (e.starts_at AT TIME ZONE 'America/New_York')::date AS day,
             count(*) AS n, sum(e.minutes) AS minutes, sum(reporting.units(e.minutes)) AS units
      FROM scheduling.encounters e JOIN bench_sites s USING (site_id)
      GROUP BY 1, 2, 3, 4;
    INSERT INTO reporting.site_rollup AS r (site_id, grain, period, agency_id, encounters,
                                            encounter_minutes, units)
      SELECT site_id, g.grain, g.period, agency_id, sum(n), sum(minutes), sum(units)
      FROM bench_days CROSS JOIN LATERAL (VALUES ('d'::\"char\", day),
             ('w'::\"char\", date_trunc('week', day)::date),
             ('m'::\"char\", date_trunc('month', day)::date)) g (grain, period)
      GROUP BY 1, 2, 3, 4
      ON CONFLICT (site_id, grain, period) DO UPDATE SET
        encounters = r.encounters + excluded.encounters,
        encounter_minutes = r.encounter_minutes + excluded.encounter_minutes,
        units = r.units + excluded.units;
    INSERT INTO reporting.agency_rollup AS r (agency_id, grain, period, encounters,
                                              encounter_minutes, units)
      SELECT agency_id, g.grain, g.period, sum(n), sum(minutes), sum(units)
      FROM bench_days CROSS JOIN LATERAL (VALUES ('d'::\"char\", day),
             ('w'::\"char\", date_trunc('week', day)::date),
             ('m'::\"char\", date_trunc('month', day)::date)) g (grain, period)
      GROUP BY 1, 2, 3
      ON CONFLICT (agency_id, grain, period) DO UPDATE SET
        encounters = r.encounters + excluded.encounters,
        encounter_minutes = r.encounter_minutes + excluded.encounter_minutes,
        units = r.units + excluded.units;
    INSERT INTO reporting.staff_rollup AS r (site_id, grain, period, staff_id, agency_id,
                                             encounters, encounter_minutes, units)
      SELECT site_id, g.grain, g.period, staff_id, agency_id, sum(n), sum(minutes), sum(units)
      FROM bench_days CROSS JOIN LATERAL (VALUES ('d'::\"char\", day),
             ('w'::\"char\", date_trunc('week', day)::date),
             ('m'::\"char\", date_trunc('month', day)::date)) g (grain, period)
      GROUP BY 1, 2, 3, 4, 5
      ON CONFLICT (site_id, grain, period, staff_id) DO UPDATE SET
        encounters = r.encounters + excluded.encounters,
        encounter_minutes = r.encounter_minutes + excluded.encounter_minutes,
        units = r.units + excluded.units;
    -- People served per period (distinct clients of the encounters) and
    -- who is on whose caseload now (each client with the site's staff member
    -- its number gives), as the consumer keeps them; the dashboards read
    -- these for people_served and staff_load.
    CREATE TEMP TABLE bench_seen ON COMMIT DROP AS
      SELECT DISTINCT e.site_id, e.agency_id, e.client_id,
             (e.starts_at AT TIME ZONE 'America/New_York')::date AS day
      FROM scheduling.encounters e JOIN bench_sites s USING (site_id);
    INSERT INTO reporting.served_sites AS r (site_id, grain, period, agency_id, people)
      SELECT site_id, g.grain, g.period, agency_id, count(DISTINCT client_id)
      FROM bench_seen CROSS JOIN LATERAL (VALUES ('d'::\"char\", day),
             ('w'::\"char\", date_trunc('week', day)::date),
             ('m'::\"char\", date_trunc('month', day)::date)) g (grain, period)
      GROUP BY 1, 2, 3, 4
      ON CONFLICT (site_id, grain, period) DO UPDATE SET people = r.people + excluded.people;
    INSERT INTO reporting.served_agencies AS r (agency_id, grain, period, people)
      SELECT agency_id, g.grain, g.period, count(DISTINCT client_id)
      FROM bench_seen CROSS JOIN LATERAL (VALUES ('d'::\"char\", day),
             ('w'::\"char\", date_trunc('week', day)::date),
             ('m'::\"char\", date_trunc('month', day)::date)) g (grain, period)
      GROUP BY 1, 2, 3
      ON CONFLICT (agency_id, grain, period) DO UPDATE SET people = r.people + excluded.people;
    INSERT INTO reporting.client_assignments (client_id, agency_id, site_id, staff_id, status)
      SELECT ('00000000-0000-4000-a000-' || lpad(to_hex(s.i * 2000 + c), 12, '0'))::uuid,
             s.agency_id, s.site_id,
             ('00000000-0000-4000-b000-' || lpad(to_hex(s.i * 20 + c % 20), 12, '0'))::uuid,
             'active'
      FROM bench_sites s CROSS JOIN generate_series(0, 1999) c
      ON CONFLICT (client_id) DO NOTHING;
    INSERT INTO reporting.regions (id, name) VALUES ('00000000-0000-4000-c000-000000000001',
                                                     'Bench region') ON CONFLICT DO NOTHING;
    INSERT INTO reporting.region_agencies
      SELECT DISTINCT '00000000-0000-4000-c000-000000000001'::uuid, agency_id FROM bench_sites
      ON CONFLICT DO NOTHING;
    COMMIT;" >/dev/null || return 1
  local t
  for t in scheduling.encounters reporting.site_rollup reporting.agency_rollup \
           reporting.staff_rollup reporting.served_sites reporting.served_agencies \
           reporting.client_assignments; do
    pg_admin_beacon "VACUUM (ANALYZE) $t" >/dev/null || return 1
  done
  local secs
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  result reporting_generate.seconds "$secs" "s"
  result reporting_generate.encounters "$(pg_admin_beacon "SELECT count(*) FROM scheduling.encounters")" ""
  echo "  generated in $secs s: $(pg_admin_beacon "SELECT count(*) FROM reporting.site_rollup") site rollup rows, $(pg_admin_beacon "SELECT count(*) FROM reporting.staff_rollup") staff rollup rows"
  REPORT_SITE=$BENCH_SITE_ID
  REPORT_REGION=00000000-0000-4000-c000-000000000001
  REPORT_AGENCIES=$(pg_admin_beacon "SELECT '{' || string_agg(agency_id::text, ',') || '}'
                                     FROM reporting.region_agencies WHERE region_id = '$REPORT_REGION'")
}

# s_pgbench NAME SQL: the plain SQL with one client for BENCH_SECONDS (after a
# warm-up run) as the superuser (the raw table has forced row security);
# records NAME.p50_ms, NAME.p99_ms, NAME.runs from pgbench's per-query log.
s_pgbench() {
  local name=$1 dir="$TMP/pgb.$1" db
  mkdir -p "$dir" && chmod 0777 "$dir"
  printf '%s\n' "$2" >"$dir/q.sql"
  db=$(psql "$BENCH_DATABASE_URL" -XAtc 'SELECT current_database()')
  PGHOST=$BENCH_PGHOST PGPORT=$BENCH_PGPORT pgbench -n -U postgres -c 1 -j 1 -T 2 \
    -f "$dir/q.sql" "$db" >/dev/null 2>&1 || true
  echo "  pgbench -n -c 1 -T $BENCH_SECONDS -f $name.sql -l (the plain SQL over the raw table)"
  if ! (cd "$dir" && PGHOST=$BENCH_PGHOST PGPORT=$BENCH_PGPORT run_child "$dir/out" \
          pgbench -n -U postgres -c 1 -j 1 -T "$BENCH_SECONDS" -l --log-prefix=lat \
          -f "$dir/q.sql" "$db"); then
    sed 's/^/    /' "$dir/out"
    fail "$name" "pgbench failed"
    return 0
  fi
  local stats
  stats=$(cat "$dir"/lat* | awk '{ print $3 }' | sort -n |
          awk '{ v[NR] = $1 } END { if (NR == 0) { print "0 0 0"; exit }
                 p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1];
                 printf "%.3f %.3f %d\n", p50 / 1000, p99 / 1000, NR }')
  read -r p50 p99 runs <<<"$stats"
  result "$name.p50_ms" "$p50" "ms"
  result "$name.p99_ms" "$p99" "ms"
  result "$name.runs" "$runs" ""
  echo "  => plain SQL p50 $p50 ms, p99 $p99 ms ($runs runs)"
}

bench_dashboard_site() {
  echo "== dashboard_site: a site's dashboard, 3 years by week, over $BENCH_REPORT_ENCOUNTERS encounters"
  if ! s_report_fixture; then
    fail dashboard_site "could not generate the encounters"
    return 0
  fi
  local path="/api/v1/dashboards/site/$REPORT_SITE?from=$REPORT_FROM&to=$REPORT_TO&grain=week"
  if ! api GET "$path" --token "$BENCH_SUPERVISOR_TOKEN" >"$TMP/site.json"; then
    fail dashboard_site "the dashboard did not answer 200"
    return 0
  fi
  echo "  site encounters: dashboard $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["tables"][0]; print(int(t["rows"][-1]["cells"][0]["value"]))' "$TMP/site.json"), raw table $(pg_admin_beacon "SELECT count(*) FROM scheduling.encounters WHERE site_id = '$REPORT_SITE'")"
  s_wrk dashboard_site "$path" 1 "$BENCH_LIST_CONNECTIONS" "Authorization: Bearer $BENCH_SUPERVISOR_TOKEN"
  s_pgbench dashboard_site_sql "SELECT date_trunc('week', (starts_at AT TIME ZONE 'America/New_York'))::date AS week, count(*), sum(minutes), sum(minutes / 15 + CASE WHEN minutes % 15 >= 8 THEN 1 ELSE 0 END) FROM scheduling.encounters WHERE site_id = '$REPORT_SITE' AND starts_at >= timestamptz '$REPORT_FROM 00:00 America/New_York' AND starts_at < timestamptz '$REPORT_TO 00:00 America/New_York' + interval '1 day' GROUP BY 1 ORDER BY 1;"
}

bench_dashboard_region() {
  echo "== dashboard_region: a region of 5 agencies (50 sites), 3 years by month, de-identified"
  if ! s_report_fixture; then
    fail dashboard_region "could not generate the encounters"
    return 0
  fi
  local path="/api/v1/dashboards/region/$REPORT_REGION?from=$REPORT_FROM&to=$REPORT_TO&grain=month"
  if ! api GET "$path" --token "$BENCH_ADMIN_TOKEN" >/dev/null; then
    fail dashboard_region "the dashboard did not answer 200"
    return 0
  fi
  s_wrk dashboard_region "$path" 1 "$BENCH_LIST_CONNECTIONS" "Authorization: Bearer $BENCH_ADMIN_TOKEN"
  s_pgbench dashboard_region_sql "SELECT e.site_id, date_trunc('month', (e.starts_at AT TIME ZONE 'America/New_York'))::date AS month, count(*), sum(e.minutes), sum(e.minutes / 15 + CASE WHEN e.minutes % 15 >= 8 THEN 1 ELSE 0 END) FROM scheduling.encounters e WHERE e.agency_id = ANY ('$REPORT_AGENCIES'::uuid[]) AND e.starts_at >= timestamptz '$REPORT_FROM 00:00 America/New_York' AND e.starts_at < timestamptz '$REPORT_TO 00:00 America/New_York' + interval '1 day' GROUP BY 1, 2 ORDER BY 1, 2;"
}

bench_event_lag() {
  echo "== event_lag: $BENCH_LAG_RATE events/s into scheduling's outbox -> relay -> bus -> reporting rollups"
  s_token || { fail event_lag "could not sign in"; return 0; }
  local payload batches db
  # A SchedulingEvent (encounter.completed, 30 minutes) at the bench site.
  payload=$(python3 - "$BENCH_AGENCY_ID" "$BENCH_SITE_ID" "$BENCH_PEER_ID" <<'PY'
import sys
def s(field, v):
    b = v.encode()
    return bytes([field << 3 | 2, len(b)]) + b
agency, site, staff = sys.argv[1:4]
m = (s(2, agency) + s(3, site) + s(4, "00000000-0000-4000-a000-00000000ffff") + s(5, staff) +
     s(6, "2026-11-02T15:00:00Z") + s(7, "2026-11-02T15:30:00Z") + bytes([11 << 3, 30]))
print(m.hex())
PY
)
  batches=$((BENCH_SECONDS * BENCH_LAG_RATE / 20))
  db=$(psql "$BENCH_DATABASE_URL" -XAtc 'SELECT current_database()')
  local from_seq
  from_seq=$(pg_admin_beacon "SELECT coalesce(max(published_seq), 0) FROM events.outbox WHERE producer = 'scheduling'")
  # The watcher: one transaction of READ COMMITTED statements, each seeing
  # the latest commits, sampling the position every 5 ms into a table.
  pg_admin_beacon "SET client_min_messages = warning; DROP TABLE IF EXISTS public.bench_lag_samples;
                   CREATE UNLOGGED TABLE public.bench_lag_samples (at timestamptz, seq bigint)" >/dev/null
  PGHOST=$BENCH_PGHOST PGPORT=$BENCH_PGPORT psql -X -q -U postgres -d "$db" -c "
    DO \$\$
    DECLARE stop timestamptz := clock_timestamp() + make_interval(secs => $BENCH_SECONDS + 5);
    BEGIN
      WHILE clock_timestamp() < stop LOOP
        INSERT INTO public.bench_lag_samples
          SELECT clock_timestamp(), last_seq FROM reporting.positions WHERE producer = 'scheduling';
        PERFORM pg_sleep(0.005);
      END LOOP;
    END \$\$;" >/dev/null 2>&1 &
  local watcher=$!
  sleep 0.5
  echo "  writing $((batches * 20)) events in $batches transactions of 20, one every 20 ms"
  PGHOST=$BENCH_PGHOST PGPORT=$BENCH_PGPORT psql -X -q -U postgres -d "$db" -c "
    DO \$\$
    DECLARE t0 timestamptz := clock_timestamp();
    BEGIN
      FOR b IN 1..$batches LOOP
        INSERT INTO events.outbox (producer, topic, payload)
          SELECT 'scheduling', 'encounter.completed', '\\x$payload'::bytea FROM generate_series(1, 20);
        PERFORM pg_notify('beacon_events', 'scheduling');
        COMMIT;
        PERFORM pg_sleep(greatest(0, extract(epoch FROM t0 + b * interval '20 ms' - clock_timestamp())));
      END LOOP;
    END \$\$;" >"$TMP/lag.out" 2>&1 || { sed 's/^/    /' "$TMP/lag.out"; fail event_lag "the writer failed"; }
  wait "$watcher" || true
  local stats
  stats=$(pg_admin_beacon "
    WITH ev AS (SELECT published_seq AS seq, created_at FROM events.outbox
                WHERE producer = 'scheduling' AND published_seq > $from_seq),
    lag AS (SELECT ev.seq, ev.created_at, (SELECT min(s.at) FROM public.bench_lag_samples s
                                           WHERE s.seq >= ev.seq) - ev.created_at AS lag FROM ev)
    SELECT count(*), count(lag),
           round((extract(epoch FROM percentile_disc(0.5) WITHIN GROUP (ORDER BY lag)) * 1000)::numeric, 1),
           round((extract(epoch FROM percentile_disc(0.99) WITHIN GROUP (ORDER BY lag)) * 1000)::numeric, 1),
           round((extract(epoch FROM max(lag)) * 1000)::numeric, 1),
           round((count(*) / extract(epoch FROM max(created_at) - min(created_at)))::numeric, 0)
    FROM lag")
  local total applied p50 p99 worst rate
  IFS='|' read -r total applied p50 p99 worst rate <<<"$stats"
  echo "  => $total events at $rate/s, $applied applied in the window: lag p50 $p50 ms, p99 $p99 ms, max $worst ms"
  result event_lag.events "$total" ""
  result event_lag.rate "$rate" "events/s"
  result event_lag.p50_ms "$p50" "ms"
  result event_lag.p99_ms "$p99" "ms"
  if [ "$applied" != "$total" ] || [ "$total" = 0 ]; then
    fail event_lag "not every event was applied within the watch window ($applied of $total)"
  fi
  pg_admin_beacon "DROP TABLE IF EXISTS public.bench_lag_samples" >/dev/null
}
