#!/usr/bin/env bash
# tests/bench/run.sh BUILD_DIR: Beacon's benchmark harness (`make bench`).
#
# Starts one stack for the whole run through deploy/launch.py (tests/bench/
# stack.py: a private PostgreSQL cluster with fsync on, the five services and
# the gateway, free ports, a temporary state directory, log_level=warn), runs
# each benchmark in BENCHMARKS in order against it, then prints a summary and
# the ratio checks, the last line being the verdict.
#
# The skeleton baseline. Some targets compare with "the unauthenticated
# skeleton": Beacon as it was at BENCH_BASELINE_REV, before sign-in and audit
# guarded client records. That tree is exported from git into
# var/bench/baseline-<rev> (once; later runs reuse its build), built, and
# started as a second stack beside the current one, so both are measured in
# the same run on the same machine. Figures drift from run to
# run and machine to machine: compare figures of the same run (DESIGN.md).
# Everything is stopped and removed on exit, whatever the exit path.
#
# Adding a benchmark:
#   1. write a function bench_<name> below: set up its data (api/psql), run
#      the load (s_wrk does warm-up, run, parsing and error checks for HTTP),
#      and record figures with `result <name>.<key> <value> [unit]`;
#   2. append <name> to BENCHMARKS;
#   3. to hold it to a target, add "<name>.<key> <name2>.<key2> <min> <label>"
#      to RATIOS.
#
# Environment:
#   BENCH_SECONDS  seconds per measured run (default 10; e.g. 2 for a quick look)
#   BENCH_WARMUP   seconds of unmeasured load before each HTTP run (default 2)
#   BENCH_ONLY     space-separated names from BENCHMARKS to run (default: all)
#   BENCH_STRICT   1: exit 1 when a ratio misses its target (default: report only)
#   BENCH_KEEP     1: keep the state directory (process logs) and print its path
#   BENCH_SETTINGS extra settings for every process, e.g. "workers=2 gateway_threads=2"
#   BENCH_CONNECTIONS  wrk connections for the client GETs (default 64: enough
#                  concurrent callers to saturate this 2-core machine, so
#                  req/s is capacity; at 16 the audited path is bound by its
#                  commit latency instead and its figure measures that)
#   BENCH_LIST_CONNECTIONS  wrk connections for the caseload page (default 2:
#                  its target is a latency, measured below saturation)
#   BENCH_BASELINE_REV  the skeleton's commit (default: the last one before
#                  client routes required sign-in)
#
# Exit status: 0 when every benchmark ran cleanly (no failed requests, no
# process died); 1 otherwise, or with BENCH_STRICT=1 when a target is missed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$REPO/tests/bench"
BUILD=$(realpath -m "${1:-$REPO/build}")
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_WARMUP=${BENCH_WARMUP:-2}
BENCH_ONLY=${BENCH_ONLY:-}
BENCH_STRICT=${BENCH_STRICT:-0}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-64}
BENCH_LIST_CONNECTIONS=${BENCH_LIST_CONNECTIONS:-2}
BENCH_BASELINE_REV=${BENCH_BASELINE_REV:-6873b608235b6006db1fb53d98ab92084da7b615}

# Benchmarks, run in this order.
BENCHMARKS=(client_get_skeleton client_get client_create caseload_list week_view appointment_book
            appointment_book_team group_quarter note_save note_read note_plain directory_import
            directory_search dashboard_site dashboard_region event_lag metrics billing
            pgbench_select)

# Ratio checks: "numerator denominator minimum label". A check whose figures
# are missing (benchmark not selected) is skipped.
# Absolute targets: "key min|max value label".
TARGETS=(
  "client_create.rps min 1500 client registrations per second (audited, Medicaid ID encrypted)"
  "caseload_list.p99_ms max 20 p99 of a caseload page of 50 over 50,000 clients"
  "week_view.p99_ms max 20 p99 of a specialist's week view over a year of 500 staff's history"
  "group_quarter.p99_ms max 50 p99 of a site's quarter of 200 weekly groups (2,600 meetings) read expanded"
  "group_layout.p99_ms max 50 p99 of laying out one weekly series for a quarter (13 meetings, conflict-checked)"
  "note_read.p99_ms max 10 p99 of decrypting and reading a signed note with an addendum (audited)"
  "directory_search.p99_ms max 25 p99 of keyword + category + 10 km over the directory's services"
  "dashboard_site.p99_ms max 50 p99 of a site's dashboard (3 years by week) over 10M encounters"
  "dashboard_region.p99_ms max 50 p99 of a region's dashboard (5 agencies, 50 sites, 3 years by month)"
  "event_lag.p99_ms max 1000 p99 of commit -> rollup at 1,000 events/s"
  "metrics.cpu_share_pct max 3 CPU share metrics recording takes at the measured request rate (CPU ns per request, contended, times req/s)"
)

RATIOS=(
  "client_get.rps_mean client_get_skeleton.rps_mean 0.70 signed-in, audited GET over the unauthenticated skeleton, two alternating rounds each (auth + audit cost <= 30%)"
  "client_get_skeleton.rps pgbench_select.tps 0.15 skeleton GET /api/v1/clients/{id} req/s over pgbench -S tps"
  "appointment_book_team.rps client_create.rps 0.50 booking for a team (conflict-checked) over registration, both audited writes"
  "note_save.rps note_save_plain.rps 0.80 autosaving a draft encrypted over the same path unencrypted"
  "note_sign.rps note_sign_plain.rps 0.80 signing encrypted over unencrypted"
  "note_read.rps note_read_plain.rps 0.80 decrypt-and-read encrypted over unencrypted"
  "directory_copy.seconds directory_import.seconds 0.33 COPY time over HSDS import time (import within 3x of COPY)"
  "metrics_on.rps_mean metrics_off.rps_mean 0.97 signed-in GET with metrics recorded over metrics=false, two alternating rounds each (metrics cost <= 3%)"
  "dashboard_site_sql.p99_ms dashboard_site.p99_ms 1.0 plain SQL over the raw encounters over the site dashboard through the gateway (p99)"
  "dashboard_region_sql.p99_ms dashboard_region.p99_ms 1.0 plain SQL over the raw encounters over the region dashboard through the gateway (p99)"
  "metrics_pair_on.rps metrics_pair_off.rps 0.97 the same, both stacks loaded at once (the machine's other work slows both alike)"
  "billing_copy.seconds billing_batch.seconds 0.40 COPY of the encounter rows over building and writing their 837P batch (batch within 2.5x of COPY)"
)

declare -A RESULT=()      # "<bench>.<key>" -> number
declare -A RESULT_UNIT=() # "<bench>.<key>" -> unit, for the summary
RESULT_ORDER=()
FAILED=()                 # benchmarks that did not run cleanly

# ---------------------------------------------------------------------------
# Helpers for benchmarks

# result KEY VALUE [UNIT]: records one figure.
result() {
  [ -n "${RESULT[$1]+x}" ] || RESULT_ORDER+=("$1")
  RESULT[$1]=$2
  RESULT_UNIT[$1]=${3:-}
}

# fail NAME MESSAGE: marks a benchmark as not run cleanly (the run goes on).
fail() {
  FAILED+=("$1")
  echo "  FAILED: $2" >&2
}

# api METHOD PATH [JSON] [--expect N] [--field F]: one request to the stack
# (tests/bench/api.py); prints the body or the field.
api() { python3 "$HERE/api.py" "$@"; }

# pg_admin SQL: runs SQL as the postgres superuser in the stack's cluster.
pg_admin() {
  PGHOST=$BENCH_PGHOST PGPORT=$BENCH_PGPORT psql -X -q -A -t -v ON_ERROR_STOP=1 \
    -U postgres -d postgres -c "$1"
}

# pg_admin_beacon SQL: runs SQL as the postgres superuser in the Beacon
# database (the audit log's owner may not be the application's).
pg_admin_beacon() {
  PGHOST=$BENCH_PGHOST PGPORT=$BENCH_PGPORT psql -X -q -A -t -v ON_ERROR_STOP=1 \
    -U postgres -d "$(psql "$BENCH_DATABASE_URL" -XAtc 'SELECT current_database()')" -c "$1"
}

# s_token: signs in the bench's people (once per stack, on first use) and
# sets BENCH_PEER_TOKEN and BENCH_PEER_ID (the bench peer specialist),
# BENCH_SITE_ID and BENCH_AGENCY_ID (their site and agency),
# BENCH_SUPERVISOR_TOKEN (a supervisor at that site) and BENCH_TEAM (the
# staff ids of BENCH_TEAM_SIZE more peer specialists there, comma-separated).
# Call it directly, not in $(...), so that the values are kept for the next
# benchmark.
BENCH_TEAM_SIZE=32
s_token() {
  [ -n "${BENCH_PEER_TOKEN:-}" ] && return 0
  local out="$TMP/signin.out"
  python3 "$HERE/signin.py" "$BENCH_TEAM_SIZE" >"$out" || return 1
  # shellcheck disable=SC1090
  . "$out"
  BENCH_AGENCY_ID=$(pg_beacon "SELECT agency_id FROM identity.staff WHERE id = '$BENCH_PEER_ID'")
  [ -n "$BENCH_PEER_TOKEN" ] && [ -n "$BENCH_AGENCY_ID" ]
}

# pg_beacon SQL: runs SQL in the stack's Beacon database as its owner.
pg_beacon() {
  psql "$BENCH_DATABASE_URL" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"
}

# run_child OUTFILE COMMAND...: runs a load generator with its output in
# OUTFILE. In the background plus `wait`, because bash runs a signal trap
# only after a foreground command ends: Ctrl-C must not wait out a run.
run_child() {
  local out=$1 st=0
  shift
  "$@" >"$out" 2>&1 &
  CHILD_PID=$!
  wait "$CHILD_PID" || st=$?
  CHILD_PID=
  return "$st"
}

# ms MICROSECONDS: prints milliseconds with three decimals.
ms() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; }

# s_wrk NAME PATH THREADS CONNECTIONS [HEADER]: warm-up, then a measured wrk
# run of GET PATH over TLS keep-alive against $BENCH_URL, with HEADER (e.g.
# "Authorization: Bearer ...") on every request; records NAME.rps,
# NAME.p50_ms, NAME.p99_ms and NAME.requests. Any socket error or
# non-2xx/3xx answer fails the benchmark.
s_wrk() {
  local name=$1 path=$2 threads=$3 conns=$4 out="$TMP/wrk.$1.out" line kv k v
  local -a hdr=()
  [ -z "${5:-}" ] || hdr=(-H "$5")
  local -A w=()
  # Settle the WAL first: a checkpoint lets PostgreSQL recycle the segments
  # that the set-up's bulk loads filled. Without it a fresh cluster creates
  # and zero-fills a new 16 MB segment every few seconds of audited load,
  # stalling every commit for 30-60 ms each time; a cluster in service
  # reuses old segments instead. (Measured: week view p99 31 ms without,
  # 10 ms with; the stalls lined up with new files in pg_wal.)
  pg_admin "CHECKPOINT" >/dev/null || true
  if [ "$BENCH_WARMUP" != 0 ]; then
    run_child "$out" wrk -t"$threads" -c"$conns" -d"${BENCH_WARMUP}s" "${hdr[@]}" \
      ${WRK_SCRIPT:+-s "$WRK_SCRIPT"} "$BENCH_URL$path" || true
  fi
  echo "  wrk -t$threads -c$conns -d${BENCH_SECONDS}s --latency${5:+ -H '${5%% *} ...'} $BENCH_URL$path"
  if ! run_child "$out" wrk -t"$threads" -c"$conns" -d"${BENCH_SECONDS}s" --latency \
         "${hdr[@]}" -s "${WRK_SCRIPT:-$HERE/wrk_report.lua}" "$BENCH_URL$path"; then
    sed 's/^/    /' "$out"
    fail "$name" "wrk exited non-zero"
    return 0
  fi
  grep -v '^WRK ' "$out" | sed 's/^/    /'
  line=$(grep '^WRK ' "$out" || true)
  if [ -z "$line" ]; then
    fail "$name" "no summary from wrk_report.lua"
    return 0
  fi
  for kv in ${line#WRK }; do
    k=${kv%%=*} v=${kv#*=}
    w[$k]=$v
  done
  result "$name.rps" "${w[rps]}" "req/s"
  result "$name.p50_ms" "$(ms "${w[p50_us]}")" "ms"
  result "$name.p99_ms" "$(ms "${w[p99_us]}")" "ms"
  result "$name.requests" "${w[requests]}" ""
  local errors=$((w[connect_errors] + w[read_errors] + w[write_errors] + w[timeouts]))
  printf '  => %s req/s, p50 %s ms, p99 %s ms (%s requests in %s s; socket errors %d, non-2xx %d)\n' \
    "${w[rps]}" "${RESULT[$name.p50_ms]}" "${RESULT[$name.p99_ms]}" "${w[requests]}" \
    "${w[seconds]}" "$errors" "${w[status_errors]}"
  if [ "$errors" -ne 0 ] || [ "${w[status_errors]}" -ne 0 ] || [ "${w[requests]}" -eq 0 ]; then
    fail "$name" "requests failed during the run: the figures do not measure $path"
  fi
}

# ---------------------------------------------------------------------------
# Benchmarks

# GET of one client through the whole path, as a signed-in peer specialist
# reading a client on their caseload: TLS keep-alive -> gateway (session
# cache, role check) -> ZeroMQ -> intake (scope, row-level security, audit
# record durable before the reply) -> PostgreSQL and back.
bench_client_get() {
  echo "== client_get: GET /api/v1/clients/{id} signed in, audited, TLS keep-alive"
  local id token
  if ! s_token; then
    fail client_get "could not sign in a peer specialist"
    return 0
  fi
  token=$BENCH_PEER_TOKEN
  if ! id=$(api POST /api/v1/clients \
              '{"given_name":"Ada","family_name":"Lovelace","date_of_birth":"1990-01-01"}' \
              --token "$token" --field id); then
    fail client_get "could not create the client"
    return 0
  fi
  if ! api GET "/api/v1/clients/$id" --token "$token" >/dev/null; then
    fail client_get "GET of the new client $id did not answer 200"
    return 0
  fi
  local before after
  before=$(pg_beacon "SELECT count(*) FROM audit.events WHERE action = 'read'")
  echo "  client $id, as a peer specialist (session token)"
  s_wrk client_get "/api/v1/clients/$id" 2 "$BENCH_CONNECTIONS" "Authorization: Bearer $token"
  # The pair measured again in turn (skeleton, then this): single runs of
  # either swing by 20% on this machine, so the ratio is taken over the
  # means of two alternating rounds, which cancels drift between them.
  if [ -n "${SKELETON_CLIENT_ID:-}" ] && [ -n "${RESULT[client_get_skeleton.rps]:-}" ]; then
    BENCH_URL=$BASE_URL s_wrk client_get_skeleton_2 "/api/v1/clients/$SKELETON_CLIENT_ID" 2 \
      "$BENCH_CONNECTIONS"
    s_wrk client_get_2 "/api/v1/clients/$id" 2 "$BENCH_CONNECTIONS" "Authorization: Bearer $token"
    if [ -n "${RESULT[client_get_skeleton_2.rps]:-}" ] && [ -n "${RESULT[client_get_2.rps]:-}" ]; then
      result client_get_skeleton.rps_mean "$(awk -v a="${RESULT[client_get_skeleton.rps]}" \
        -v b="${RESULT[client_get_skeleton_2.rps]}" 'BEGIN { printf "%.1f", (a + b) / 2 }')" "req/s"
      result client_get.rps_mean "$(awk -v a="${RESULT[client_get.rps]}" \
        -v b="${RESULT[client_get_2.rps]}" 'BEGIN { printf "%.1f", (a + b) / 2 }')" "req/s"
    fi
  fi
  after=$(pg_beacon "SELECT count(*) FROM audit.events WHERE action = 'read'")
  result client_get.audited_reads $((after - before)) ""
  local per_commit
  per_commit=$(pg_beacon "SELECT round(count(*)::numeric / greatest(count(DISTINCT xmin::text), 1), 1)
                          FROM audit.events WHERE action = 'read'")
  result client_get.audit_events_per_commit "$per_commit" ""
  echo "  audit: $((after - before)) read events recorded during warm-up and run, $per_commit per commit"
  if [ $((after - before)) -lt "${RESULT[client_get.requests]:-0}" ]; then
    fail client_get "fewer audit records than answered requests"
  fi
}

# Client registration through the whole path: each POST a new client (a
# distinct name, so duplicate detection passes) with a Medicaid ID to
# encrypt, audited in its transaction.
bench_client_create() {
  echo "== client_create: POST /api/v1/clients signed in, audited, Medicaid ID encrypted"
  local token
  if ! s_token; then
    fail client_create "could not sign in a peer specialist"
    return 0
  fi
  token=$BENCH_PEER_TOKEN
  BENCH_TOKEN=$token BENCH_HERE=$HERE WRK_SCRIPT="$HERE/create_client.lua" \
    s_wrk client_create /api/v1/clients 2 "$BENCH_CONNECTIONS"
}

# One page of 50 of a caseload of 50,000 clients (seeded straight into the
# table), newest first, as the peer specialist whose caseload it is; every
# listed client audited as read.
bench_caseload_list() {
  echo "== caseload_list: GET /api/v1/clients?limit=50 over 50,000 clients"
  local token staff agency site
  if ! s_token; then
    fail caseload_list "could not sign in a peer specialist"
    return 0
  fi
  token=$BENCH_PEER_TOKEN
  staff=$BENCH_PEER_ID agency=$BENCH_AGENCY_ID site=$BENCH_SITE_ID
  if ! pg_beacon "ALTER TABLE intake.clients NO FORCE ROW LEVEL SECURITY;
        INSERT INTO intake.clients (given_name, family_name, date_of_birth, agency_id, site_id,
          assigned_staff_id, created_by, created_at)
        SELECT 'Seed', 'Client-' || g, date '1960-01-01' + (g % 20000), '$agency', '$site',
          '$staff', '$staff', now() - g * interval '1 minute'
        FROM generate_series(1, 50000) g;
        ALTER TABLE intake.clients FORCE ROW LEVEL SECURITY" >/dev/null ||
     ! pg_beacon "VACUUM (ANALYZE) intake.clients" >/dev/null ||
     ! pg_admin_beacon "VACUUM (ANALYZE) audit.events" >/dev/null; then
    fail caseload_list "could not seed 50,000 clients"
    return 0
  fi
  # Settled, as the schedule's year is: the seed and the earlier benchmarks'
  # registrations vacuumed, so autovacuum does not catch up on them during
  # the measured run.
  echo "  seeded 50,000 clients on the peer specialist's caseload"
  s_wrk caseload_list "/api/v1/clients?limit=50" 2 "$BENCH_LIST_CONNECTIONS" "Authorization: Bearer $token"
}

# Scheduling history: a year of meetings (two a day, 09:00 and 12:00 UTC)
# for 500 staff members and 50,000 clients at the peer specialist's site,
# the peer being one of the 500. Seeded straight into the table once.
s_seed_schedule() {
  [ -n "${BENCH_SCHEDULE_SEEDED:-}" ] && return 0
  local staff=$BENCH_PEER_ID agency=$BENCH_AGENCY_ID site=$BENCH_SITE_ID
  # Staff 0 is the bench peer specialist and 1..BENCH_TEAM_SIZE the team
  # (real accounts, so they can be booked); the rest are history only.
  pg_beacon "ALTER TABLE scheduling.appointments NO FORCE ROW LEVEL SECURITY;
      INSERT INTO scheduling.appointments (agency_id, site_id, client_id, staff_id, starts_at,
        ends_at, mode, status, created_by, updated_by)
      SELECT '$agency', '$site',
        ('00000000-0000-4000-8000-' || lpad(to_hex((s * 731 + d * 2 + k) % 50000), 12, '0'))::uuid,
        CASE WHEN s = 0 THEN '$staff'::uuid
             WHEN s <= cardinality(team) THEN team[s]
             ELSE ('00000000-0000-4000-9000-' || lpad(to_hex(s), 12, '0'))::uuid END,
        date_trunc('day', now()) - d * interval '1 day' + (9 + 3 * k) * interval '1 hour',
        date_trunc('day', now()) - d * interval '1 day' + (10 + 3 * k) * interval '1 hour',
        'in_person', CASE WHEN d = 0 THEN 'booked' ELSE 'fulfilled' END, '$staff', '$staff'
      FROM generate_series(0, 499) s, generate_series(0, 364) d, generate_series(0, 1) k,
           (SELECT string_to_array('$BENCH_TEAM', ',')::uuid[] AS team) t;
      ALTER TABLE scheduling.appointments FORCE ROW LEVEL SECURITY" >/dev/null || return 1
  # A year of history is settled data: vacuumed (visibility map set), so the
  # runs measure the service rather than the bulk load's aftermath.
  pg_beacon "VACUUM (ANALYZE) scheduling.appointments" >/dev/null || return 1
  BENCH_SCHEDULE_SEEDED=1
  echo "  seeded 365,000 appointments: a year for 500 staff and 50,000 clients"
}

# Booking a meeting through the whole path as a peer specialist: client
# looked up in intake's scope, people locked, conflicts checked against the
# seeded year (staff, client, room, time off, hours), audited insert. Every
# request books the same person (and one of four clients), so bookings
# queue on that person's lock: the worst case, reported without a target.
bench_appointment_book() {
  echo "== appointment_book: POST /api/v1/appointments over a year of history (500 staff, 50,000 clients)"
  local token clients="" id i base
  if ! s_token; then
    fail appointment_book "could not sign in a peer specialist"
    return 0
  fi
  token=$BENCH_PEER_TOKEN
  if ! s_seed_schedule; then
    fail appointment_book "could not seed the schedule"
    return 0
  fi
  for i in 1 2 3 4; do
    if ! id=$(api POST /api/v1/clients "{\"given_name\":\"Book\",\"family_name\":\"Bench-$i-$RANDOM\",\"date_of_birth\":\"1985-03-0$i\"}" \
                --token "$token" --field id); then
      fail appointment_book "could not create a client"
      return 0
    fi
    clients="$clients${clients:+,}$id"
  done
  base=$(( $(date -u +%s) / 86400 * 86400 - 86400 + 14 * 3600 ))
  BENCH_TOKEN=$token BENCH_HERE=$HERE BENCH_CLIENTS=$clients BENCH_BOOK_BASE=$base \
    BENCH_BOOK_T0=$(date -u +%s) \
    WRK_SCRIPT="$HERE/book_appointment.lua" \
    s_wrk appointment_book /api/v1/appointments 2 "$BENCH_CONNECTIONS"
}

# Booking for a team: a supervisor books meetings for BENCH_TEAM_SIZE peer
# specialists (each with their seeded year of history) and 64 clients in
# turn, so concurrent requests contend as an agency's do rather than all
# queueing on one person's lock as in appointment_book.
bench_appointment_book_team() {
  echo "== appointment_book_team: POST /api/v1/appointments by a supervisor for $BENCH_TEAM_SIZE staff over a year of history"
  local clients="" id i base
  if ! s_token; then
    fail appointment_book_team "could not sign in the bench's people"
    return 0
  fi
  if ! s_seed_schedule; then
    fail appointment_book_team "could not seed the schedule"
    return 0
  fi
  for i in $(seq 1 64); do
    if ! id=$(api POST /api/v1/clients "{\"given_name\":\"Team\",\"family_name\":\"Bench-$i-$RANDOM\",\"date_of_birth\":\"1980-01-$(printf %02d $(( i % 28 + 1 )))\"}" \
                --token "$BENCH_SUPERVISOR_TOKEN" --field id); then
      fail appointment_book_team "could not create a client"
      return 0
    fi
    clients="$clients${clients:+,}$id"
  done
  base=$(( $(date -u +%s) / 86400 * 86400 - 86400 + 14 * 3600 ))
  BENCH_TOKEN=$BENCH_SUPERVISOR_TOKEN BENCH_HERE=$HERE BENCH_CLIENTS=$clients \
    BENCH_STAFF=$BENCH_TEAM BENCH_BOOK_BASE=$base BENCH_BOOK_T0=$(date -u +%s) \
    WRK_SCRIPT="$HERE/book_appointment.lua" \
    s_wrk appointment_book_team /api/v1/appointments 2 "$BENCH_CONNECTIONS"
}

# A specialist's week (the week before this one: 14 meetings) from the
# seeded year, every listed appointment audited as read.
bench_week_view() {
  echo "== week_view: GET /api/v1/appointments?staff_id=me&view=week over a year of history"
  local token from
  if ! s_token; then
    fail week_view "could not sign in a peer specialist"
    return 0
  fi
  token=$BENCH_PEER_TOKEN
  if ! s_seed_schedule; then
    fail week_view "could not seed the schedule"
    return 0
  fi
  from=$(date -u -d '8 days ago' +%Y-%m-%d)
  s_wrk week_view "/api/v1/appointments?staff_id=me&view=week&from=$from" 2 \
    "$BENCH_LIST_CONNECTIONS" "Authorization: Bearer $token"
}

# Group sessions: 200 weekly series for a quarter at one site, each laid
# out through the API (rule expanded in the site's local dates, 13 instants
# in its zone, conflict-checked against the facilitator's schedule), then
# the site's quarter read back expanded (2,600 meetings per request).
bench_group_quarter() {
  echo "== group_quarter: 200 weekly groups laid out for a quarter, then GET the quarter's 2,600 meetings"
  local token site out line kv k v
  if ! s_token; then
    fail group_quarter "could not sign in a peer specialist"
    return 0
  fi
  token=$BENCH_PEER_TOKEN
  site=$BENCH_SITE_ID
  out="$TMP/groups.out"
  if ! run_child "$out" python3 "$HERE/groups.py" "$token" "$site"; then
    sed 's/^/    /' "$out"
    fail group_quarter "could not set up the groups"
    return 0
  fi
  line=$(grep '^GROUPS ' "$out")
  declare -A g=()
  for kv in ${line#GROUPS }; do
    k=${kv%%=*} v=${kv#*=}
    g[$k]=$v
  done
  result group_layout.p50_ms "${g[layout_p50_ms]}" "ms"
  result group_layout.p99_ms "${g[layout_p99_ms]}" "ms"
  printf '  => laying out a weekly series for a quarter: p50 %s ms, p99 %s ms (200 series, 2,600 meetings)\n' \
    "${g[layout_p50_ms]}" "${g[layout_p99_ms]}"
  s_wrk group_quarter "/api/v1/group-occurrences?site_id=$site&from=${g[from]}&to=${g[to]}&limit=5000" 2 \
    "$BENCH_LIST_CONNECTIONS" "Authorization: Bearer $token"
}

# The same GET on the skeleton (BENCH_BASELINE_REV): no sign-in, no audit.
bench_client_get_skeleton() {
  echo "== client_get_skeleton: GET /api/v1/clients/{id} on the skeleton ($BASE_REV_SHORT), no sign-in, no audit"
  if [ -z "${BASE_URL:-}" ]; then
    fail client_get_skeleton "the skeleton stack is not running"
    return 0
  fi
  local id
  if ! id=$(BENCH_URL=$BASE_URL BENCH_CA=$BASE_CA api POST /api/v1/clients \
              '{"given_name":"Ada","family_name":"Lovelace","date_of_birth":"1990-01-01"}' \
              --field id); then
    fail client_get_skeleton "could not create the client"
    return 0
  fi
  echo "  client $id"
  SKELETON_CLIENT_ID=$id
  BENCH_URL=$BASE_URL s_wrk client_get_skeleton "/api/v1/clients/$id" 2 "$BENCH_CONNECTIONS"
}

# The database's own ceiling on this machine for comparison: pgbench's
# read-only (SELECT by primary key) script, prepared statements, 2 clients,
# in a scratch database of the same cluster.
bench_pgbench_select() {
  echo "== pgbench_select: pgbench -S -M prepared -c 2 -j 2 (scale 10, same cluster)"
  local db=bench_pgbench out tps lat
  if ! pg_admin "CREATE DATABASE $db OWNER $BENCH_PGUSER" ||
     ! PGHOST=$BENCH_PGHOST PGPORT=$BENCH_PGPORT run_child "$TMP/pgbench-init.out" \
         pgbench -i -s 10 -q -U "$BENCH_PGUSER" "$db"; then
    sed 's/^/    /' "$TMP/pgbench-init.out" 2>/dev/null || true
    fail pgbench_select "pgbench -i failed"
    return 0
  fi
  echo "  pgbench -S -M prepared -c 2 -j 2 -T $BENCH_SECONDS"
  if ! PGHOST=$BENCH_PGHOST PGPORT=$BENCH_PGPORT run_child "$TMP/pgbench.out" \
         pgbench -S -M prepared -c 2 -j 2 -T "$BENCH_SECONDS" -U "$BENCH_PGUSER" "$db"; then
    sed 's/^/    /' "$TMP/pgbench.out"
    fail pgbench_select "pgbench failed"
    return 0
  fi
  out=$(cat "$TMP/pgbench.out")
  echo "$out" | grep -E '^(number of (transactions|failed)|latency|tps)' | sed 's/^/    /'
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | tail -n 1)
  [ -z "$tps" ] || tps=$(awk -v t="$tps" 'BEGIN { printf "%.1f", t }')
  lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p')
  if [ -z "$tps" ] || [ -z "$lat" ]; then
    fail pgbench_select "could not read tps/latency from pgbench"
    return 0
  fi
  result pgbench_select.tps "$tps" "tps"
  result pgbench_select.latency_avg_ms "$lat" "ms"
  printf '  => %s tps, average latency %s ms\n' "$tps" "$lat"
}

# ---------------------------------------------------------------------------
# Driver

s_header() {
  local cpu mem commit
  cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
  mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
  commit=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
  echo "== Beacon benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit   $commit ($(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown))"
  echo "machine  $(nproc) CPUs, ${cpu:-unknown CPU}, $mem, $(uname -sr)"
  echo "tools    $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2), $(pgbench --version), $(openssl version | cut -d' ' -f1-2)"
  echo "run      BENCH_SECONDS=$BENCH_SECONDS BENCH_WARMUP=$BENCH_WARMUP, binaries $BUILD/bin"
  echo "load     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min averages before start: other work skews figures)"
}

s_cleanup() {
  local rc=$? st=0
  trap - EXIT INT TERM
  if [ -n "${CHILD_PID:-}" ]; then
    kill -TERM "$CHILD_PID" 2>/dev/null || true
    wait "$CHILD_PID" 2>/dev/null || true
  fi
  s_note_plain_stop # notes.sh: the unencrypted stack, if one runs
  s_metrics_stop    # metrics.sh: its two stacks, if they run
  if [ -n "${BASE_PID:-}" ]; then
    kill -TERM "$BASE_PID" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$BASE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BASE_PID" 2>/dev/null || true
    wait "$BASE_PID" 2>/dev/null || true
  fi
  if [ -n "${TMP:-}" ] && [ -f "$TMP/base-state/pg/data/postmaster.pid" ]; then
    bash "$REPO/deploy/pg-cluster.sh" stop "$TMP/base-state/pg" || true
  fi
  if [ -n "${STACK_PID:-}" ]; then
    kill -TERM "$STACK_PID" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$STACK_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$STACK_PID" 2>/dev/null || true
    wait "$STACK_PID" 2>/dev/null || st=$?
    if [ "$st" -ne 0 ] && [ "$rc" -eq 0 ]; then
      echo "bench: the stack reported a problem (exit $st):" >&2
      tail -n 40 "$TMP/stack.log" >&2 || true
      rc=1
    fi
  fi
  # If stack.py could not stop the cluster (killed), stop it here.
  if [ -n "${TMP:-}" ] && [ -f "$TMP/state/pg/data/postmaster.pid" ]; then
    bash "$REPO/deploy/pg-cluster.sh" stop "$TMP/state/pg" || true
  fi
  if [ -n "${TMP:-}" ]; then
    if [ "$BENCH_KEEP" = 1 ]; then echo "bench: state kept in $TMP" >&2; else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}

s_start_stack() {
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/beacon-bench.XXXXXX")
  chmod 0711 "$TMP"  # the postgres user must traverse it to reach its cluster
  # shellcheck disable=SC2086  # BENCH_SETTINGS is a list of name=value words
  python3 "$HERE/stack.py" "$BUILD" "$TMP/state" "$TMP/stack.env" log_level=warn \
    allow_bootstrap=true request_timeout_ms=600000 ${BENCH_SETTINGS:-} \
    >"$TMP/stack.log" 2>&1 &
  STACK_PID=$!
  local t0=$SECONDS
  until [ -f "$TMP/stack.env" ]; do
    if ! kill -0 "$STACK_PID" 2>/dev/null || [ $((SECONDS - t0)) -gt 180 ]; then
      echo "bench: the stack did not start:" >&2
      cat "$TMP/stack.log" >&2
      return 1
    fi
    sleep 0.2
  done
  set -a  # exported: api.py reads BENCH_URL and BENCH_CA
  # shellcheck disable=SC1091
  . "$TMP/stack.env"
  set +a
  echo "stack    gateway $BENCH_URL, started in $((SECONDS - t0)) s (log_level=warn)"
}

# Builds the skeleton (BENCH_BASELINE_REV) once into var/bench and starts it
# as a second stack; sets BASE_URL and BASE_CA. A failure is reported and
# the skeleton benchmark then fails; the others still run.
s_start_baseline() {
  local rev dir t0=$SECONDS
  if ! rev=$(git -C "$REPO" rev-parse --verify -q "$BENCH_BASELINE_REV^{commit}"); then
    echo "bench: skeleton commit $BENCH_BASELINE_REV is not in this clone's history" >&2
    return 0
  fi
  BASE_REV_SHORT=${rev:0:7}
  dir="$REPO/var/bench/baseline-$rev"
  if [ ! -x "$dir/build/bin/beacon-gateway" ]; then
    echo "skeleton building $BASE_REV_SHORT in ${dir#$REPO/} (once)"
    rm -rf "$dir" && mkdir -p "$dir"
    if ! git -C "$REPO" archive "$rev" | tar -x -C "$dir" ||
       ! make -C "$dir" -j"$(nproc)" all >"$TMP/baseline-build.log" 2>&1; then
      echo "bench: the skeleton did not build:" >&2
      tail -n 20 "$TMP/baseline-build.log" >&2 || true
      rm -rf "$dir"
      return 0
    fi
  fi
  # shellcheck disable=SC2086
  python3 "$dir/tests/bench/stack.py" "$dir/build" "$TMP/base-state" "$TMP/base.env" \
    log_level=warn ${BENCH_SETTINGS:-} >"$TMP/base.log" 2>&1 &
  BASE_PID=$!
  until [ -f "$TMP/base.env" ]; do
    if ! kill -0 "$BASE_PID" 2>/dev/null || [ $((SECONDS - t0)) -gt 300 ]; then
      echo "bench: the skeleton stack did not start:" >&2
      tail -n 30 "$TMP/base.log" >&2
      BASE_PID=
      return 0
    fi
    sleep 0.2
  done
  BASE_URL=$(. "$TMP/base.env"; echo "$BENCH_URL")
  BASE_CA=$(. "$TMP/base.env"; echo "$BENCH_CA")
  echo "skeleton $BASE_REV_SHORT at $BASE_URL, ready in $((SECONDS - t0)) s (same machine, same run)"
}

s_selected() {
  [ -z "$BENCH_ONLY" ] && return 0
  local n
  for n in $BENCH_ONLY; do [ "$n" = "$1" ] && return 0; done
  return 1
}

s_summary() {
  local key verdict=0 num den min label r b
  echo
  echo "== summary"
  for key in "${RESULT_ORDER[@]}"; do
    printf '  %-32s %14s %s\n' "$key" "${RESULT[$key]}" "${RESULT_UNIT[$key]}"
  done
  [ ${#FAILED[@]} -eq 0 ] || echo "  not run cleanly: ${FAILED[*]}"
  local key2 op want tlabel tv tmet
  for r in "${TARGETS[@]}"; do
    read -r key2 op want tlabel <<<"$r"
    if [ -z "${RESULT[$key2]:-}" ]; then
      echo "TARGET $key2: not measured in this run ($op $want)"
      continue
    fi
    local tbad=""
    for b in "${FAILED[@]}"; do [ "$b" = "${key2%%.*}" ] && tbad=" $b"; done
    if [ -n "$tbad" ]; then
      echo "TARGET $key2: INVALID, not run cleanly ($op $want)"
      verdict=1
      continue
    fi
    tv=${RESULT[$key2]}
    tmet=$(awk -v v="$tv" -v w="$want" -v o="$op" 'BEGIN { print ((o == "min" && v >= w) || (o == "max" && v <= w)) ? "MET" : "MISSED" }')
    [ "$tmet" = MET ] || verdict=1
    echo "TARGET $key2 = $tv ($op $want): $tmet  [$tlabel]"
  done
  for r in "${RATIOS[@]}"; do
    read -r num den min label <<<"$r"
    if [ -z "${RESULT[$num]:-}" ] || [ -z "${RESULT[$den]:-}" ]; then
      echo "RATIO $num / $den: not measured in this run (target >= $min)"
      continue
    fi
    local value met bad=""
    for b in "${FAILED[@]}"; do
      [ "$b" = "${num%%.*}" ] || [ "$b" = "${den%%.*}" ] && bad="$bad $b"
    done
    if [ -n "$bad" ]; then
      echo "RATIO $num / $den: INVALID, not run cleanly:$bad (target >= $min)"
      verdict=1
      continue
    fi
    value=$(awk -v a="${RESULT[$num]}" -v b="${RESULT[$den]}" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
    met=$(awk -v v="$value" -v m="$min" 'BEGIN { print (v >= m) ? "MET" : "MISSED" }')
    [ "$met" = MET ] || verdict=1
    echo "RATIO $num / $den = ${RESULT[$num]} / ${RESULT[$den]} = $value (target >= $min): $met  [$label]"
  done
  return $verdict
}

main() {
  command -v wrk >/dev/null && command -v pgbench >/dev/null ||
    { echo "bench: wrk and pgbench are needed (run deploy/install-deps.sh)" >&2; exit 1; }
  trap s_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  s_header
  s_start_stack
  if s_selected client_get_skeleton; then s_start_baseline; fi
  local b missed=0
  for b in "${BENCHMARKS[@]}"; do
    s_selected "$b" || continue
    echo
    "bench_$b"
  done
  s_summary || missed=1
  if [ ${#FAILED[@]} -ne 0 ]; then exit 1; fi
  if [ "$missed" -ne 0 ] && [ "$BENCH_STRICT" = 1 ]; then exit 1; fi
}

# The notes benchmarks (bench_note_save, bench_note_read, bench_note_plain).
# shellcheck source=tests/bench/notes.sh
. "$HERE/notes.sh"
# The referral directory benchmarks (bench_directory_import, bench_directory_search).
# shellcheck source=tests/bench/referral.sh
. "$HERE/referral.sh"
# The reporting benchmarks (bench_dashboard_site, bench_dashboard_region, bench_event_lag).
# shellcheck source=tests/bench/reporting.sh
. "$HERE/reporting.sh"

# The metrics benchmark (bench_metrics).
# shellcheck source=tests/bench/metrics.sh
. "$HERE/metrics.sh"

# The billing benchmark (bench_billing: 837P batch against COPY, memory at two sizes).
# shellcheck source=tests/bench/billing.sh
. "$HERE/billing.sh"

main "$@"
