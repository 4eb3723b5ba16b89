# tests/bench/metrics.sh: the cost of metrics on the hot path, sourced by
# tests/bench/run.sh after its helpers (result, fail, api, s_wrk, run_child)
# and before main runs. Not a program of its own.
#
#   metrics   GET /api/v1/instruments signed in (TLS keep-alive -> gateway:
#             session cache, role check, route counters and histogram ->
#             ZeroMQ -> intake: dispatcher counters and histogram, queue wait
#             -> one small query), the lightest signed-in route, so that the
#             metrics' share of a request is as large as it gets. Two fresh
#             stacks, started here side by side and set up alike: one
#             records metrics (the default), one runs with metrics=false.
#             Measured in turn on, off, off, on (a linear drift of the
#             machine cancels out) and compared as means:
#             metrics_on.rps_mean / metrics_off.rps_mean, target >= 0.97.
#             Afterwards both are scraped (GET /metrics with their
#             metrics_token): the first must have counted at least every
#             answered request of its runs, the second none, or the
#             comparison is void. Both stacks are stopped by bench_metrics
#             itself (and by run.sh's EXIT trap, should the run be
#             interrupted).
#
#             Then both loads at once, half the connections each
#             (metrics_pair_on.rps / metrics_pair_off.rps): the machine's
#             other work then slows both alike rather than whichever run it
#             falls in.
#             On a shared 2-core machine the runs swing by more than 3%,
#             so the cost is also measured directly: metrics_cost.c, built
#             here against the build's libbeacon.a, times in CPU
#             nanoseconds what one request records (clock reads, counters,
#             histograms at the gateway and in the service), alone and with
#             two threads on the same series; metrics.cpu_share_pct is that
#             cost times the metrics=false stack's request rate over the
#             machine's CPU time: the share of the machine the metrics
#             would take at that rate (target <= 3, the same 3%).
#
# Figures: metrics_on.rps, metrics_on_2.rps, metrics_off.rps,
# metrics_off_2.rps (s_wrk: also p50_ms, p99_ms, requests), the two means,
# metrics_on.counted (requests the scrape reports), metrics_on.scrape_ms
# (one GET /metrics of the whole stack), metrics_cost.ns_single,
# metrics_cost.ns_contended and metrics.cpu_share_pct.

METRICS_BENCH_TOKEN=

s_metrics_stop() {
  local name pid
  for name in on off; do
    pid=$([ "$name" = on ] && echo "${METRICS_ON_PID:-}" || echo "${METRICS_OFF_PID:-}")
    if [ -n "$pid" ]; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
    if [ -n "${TMP:-}" ] && [ -f "$TMP/metrics-$name-state/pg/data/postmaster.pid" ]; then
      bash "$REPO/deploy/pg-cluster.sh" stop "$TMP/metrics-$name-state/pg" >/dev/null 2>&1 || true
    fi
  done
  METRICS_ON_PID='' METRICS_OFF_PID=''
}

# s_metrics_start NAME [SETTING...]: starts stack NAME (on/off) in the
# background; its pid in METRICS_<NAME>_PID.
s_metrics_start() {
  local name=$1
  shift
  # shellcheck disable=SC2086
  python3 "$HERE/stack.py" "$BUILD" "$TMP/metrics-$name-state" "$TMP/metrics-$name.env" \
    log_level=warn allow_bootstrap=true ${BENCH_SETTINGS:-} "metrics_token=$METRICS_BENCH_TOKEN" \
    "$@" >"$TMP/metrics-$name.log" 2>&1 &
  if [ "$name" = on ]; then METRICS_ON_PID=$!; else METRICS_OFF_PID=$!; fi
}

# s_metrics_ready NAME: waits for stack NAME, signs its peer specialist in
# and prints "URL CA PGHOST PGPORT TOKEN"; non-zero when it did not start.
s_metrics_ready() {
  local name=$1 t0=$SECONDS pid env="$TMP/metrics-$1.env"
  pid=$([ "$name" = on ] && echo "$METRICS_ON_PID" || echo "$METRICS_OFF_PID")
  until [ -f "$env" ]; do
    if ! kill -0 "$pid" 2>/dev/null || [ $((SECONDS - t0)) -gt 240 ]; then
      tail -n 30 "$TMP/metrics-$name.log" >&2
      return 1
    fi
    sleep 0.2
  done
  (
    # shellcheck disable=SC1090
    . "$env"
    BENCH_URL=$BENCH_URL BENCH_CA=$BENCH_CA python3 "$HERE/signin.py" 0 >"$TMP/metrics-$name.signin" ||
      exit 1
    # shellcheck disable=SC1090
    . "$TMP/metrics-$name.signin"
    echo "$BENCH_URL $BENCH_CA $BENCH_PGHOST $BENCH_PGPORT $BENCH_PEER_TOKEN"
  )
}

# s_metrics_scrape URL CA: prints "<ms> <requests counted for the route>"
# from one GET /metrics.
s_metrics_scrape() {
  python3 - "$1" "$2" "$METRICS_BENCH_TOKEN" <<'EOF'
import http.client, re, ssl, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)
t0 = time.monotonic()
c.request("GET", "/metrics", headers={"Authorization": "Bearer " + sys.argv[3]})
r = c.getresponse()
body = r.read().decode()
ms = (time.monotonic() - t0) * 1000
if r.status != 200:
    sys.exit("GET /metrics answered %d" % r.status)
n = sum(int(m.group(1)) for m in re.finditer(
    r'^beacon_http_requests_total\{service="gateway",route="/api/v1/instruments",'
    r'method="GET",status="2xx"\} (\d+)$', body, re.M))
print("%.1f %d" % (ms, n))
EOF
}

# s_metrics_run NAME HEADER VAR=VALUE...: one s_wrk run of METRICS_PATH
# against the stack the assignments (BENCH_URL, BENCH_CA, BENCH_PGHOST,
# BENCH_PGPORT) name.
METRICS_PATH=/api/v1/instruments
s_metrics_run() {
  local name=$1 hdr=$2
  shift 2
  local BENCH_URL BENCH_CA BENCH_PGHOST BENCH_PGPORT
  local "$@"
  s_wrk "$name" "$METRICS_PATH" 2 "$BENCH_CONNECTIONS" "$hdr"
}

# s_metrics_pair NAME ON_URL ON_HDR OFF_URL OFF_HDR: both loads at once for
# BENCH_SECONDS (after a warm-up of both), half the connections each, so
# that whatever else the machine does at that moment slows both alike;
# records NAME_on.rps and NAME_off.rps. A failed or erroring run fails
# NAME.
s_metrics_pair() {
  local name=$1 on_url=$2 on_hdr=$3 off_url=$4 off_hdr=$5 half=$((BENCH_CONNECTIONS / 2))
  local on_out="$TMP/wrk.${name}_on.out" off_out="$TMP/wrk.${name}_off.out" p_on p_off st=0
  [ "$half" -ge 1 ] || half=1
  if [ "$BENCH_WARMUP" != 0 ]; then
    wrk -t1 -c"$half" -d"${BENCH_WARMUP}s" -H "$on_hdr" "$on_url$METRICS_PATH" >/dev/null 2>&1 &
    p_on=$!
    wrk -t1 -c"$half" -d"${BENCH_WARMUP}s" -H "$off_hdr" "$off_url$METRICS_PATH" >/dev/null 2>&1 &
    p_off=$!
    wait "$p_on" "$p_off" || true
  fi
  echo "  both at once: wrk -t1 -c$half -d${BENCH_SECONDS}s against each stack"
  wrk -t1 -c"$half" -d"${BENCH_SECONDS}s" -H "$on_hdr" -s "$HERE/wrk_report.lua" \
    "$on_url$METRICS_PATH" >"$on_out" 2>&1 &
  p_on=$!
  wrk -t1 -c"$half" -d"${BENCH_SECONDS}s" -H "$off_hdr" -s "$HERE/wrk_report.lua" \
    "$off_url$METRICS_PATH" >"$off_out" 2>&1 &
  p_off=$!
  wait "$p_on" || st=1
  wait "$p_off" || st=1
  local side out line kv k v errors
  for side in on off; do
    out=$([ "$side" = on ] && echo "$on_out" || echo "$off_out")
    line=$(grep '^WRK ' "$out" || true)
    if [ "$st" -ne 0 ] || [ -z "$line" ]; then
      sed 's/^/    /' "$out"
      fail "$name" "wrk against the $side stack did not finish cleanly"
      return 0
    fi
    local -A w=()
    for kv in ${line#WRK }; do
      k=${kv%%=*} v=${kv#*=}
      w[$k]=$v
    done
    errors=$((w[connect_errors] + w[read_errors] + w[write_errors] + w[timeouts] + w[status_errors]))
    result "${name}_$side.rps" "${w[rps]}" "req/s"
    echo "  => metrics $side: ${w[rps]} req/s (${w[requests]} requests; errors $errors)"
    if [ "$errors" -ne 0 ] || [ "${w[requests]}" -eq 0 ]; then
      fail "$name" "requests failed against the $side stack"
    fi
  done
}

bench_metrics() {
  echo "== metrics: GET /api/v1/instruments on a stack recording metrics vs one with metrics=false"
  local t0=$SECONDS on off
  METRICS_BENCH_TOKEN=$(python3 -c 'import secrets; print("bench-" + secrets.token_hex(16))')
  s_metrics_start on
  s_metrics_start off metrics=false
  if ! on=$(s_metrics_ready on) || ! off=$(s_metrics_ready off); then
    fail metrics "the two stacks did not start (or sign-in failed)"
    s_metrics_stop
    return 0
  fi
  local on_url on_ca on_pghost on_pgport on_token off_url off_ca off_pghost off_pgport off_token
  read -r on_url on_ca on_pghost on_pgport on_token <<<"$on"
  read -r off_url off_ca off_pghost off_pgport off_token <<<"$off"
  echo "  metrics on at $on_url, metrics=false at $off_url, both ready in $((SECONDS - t0)) s"
  METRICS_PATH=/api/v1/instruments
  # s_wrk settles each run's cluster with a CHECKPOINT through these.
  local -a on_env=(BENCH_URL="$on_url" BENCH_CA="$on_ca" BENCH_PGHOST="$on_pghost"
                   BENCH_PGPORT="$on_pgport")
  local -a off_env=(BENCH_URL="$off_url" BENCH_CA="$off_ca" BENCH_PGHOST="$off_pghost"
                    BENCH_PGPORT="$off_pgport")
  s_metrics_run metrics_on "Authorization: Bearer $on_token" "${on_env[@]}"
  s_metrics_run metrics_off "Authorization: Bearer $off_token" "${off_env[@]}"
  s_metrics_run metrics_off_2 "Authorization: Bearer $off_token" "${off_env[@]}"
  s_metrics_run metrics_on_2 "Authorization: Bearer $on_token" "${on_env[@]}"
  s_metrics_pair metrics_pair "$on_url" "Authorization: Bearer $on_token" \
    "$off_url" "Authorization: Bearer $off_token"
  # A failed second run voids the mean it enters (the ratio check looks for
  # failures under the names of its figures).
  local b
  for b in "${FAILED[@]}"; do
    case "$b" in
      metrics_on_2) fail metrics_on "its second run failed" ;;
      metrics_off_2) fail metrics_off "its second run failed" ;;
    esac
  done
  if [ -n "${RESULT[metrics_on.rps]:-}" ] && [ -n "${RESULT[metrics_on_2.rps]:-}" ] &&
     [ -n "${RESULT[metrics_off.rps]:-}" ] && [ -n "${RESULT[metrics_off_2.rps]:-}" ]; then
    result metrics_on.rps_mean "$(awk -v a="${RESULT[metrics_on.rps]}" \
      -v b="${RESULT[metrics_on_2.rps]}" 'BEGIN { printf "%.1f", (a + b) / 2 }')" "req/s"
    result metrics_off.rps_mean "$(awk -v a="${RESULT[metrics_off.rps]}" \
      -v b="${RESULT[metrics_off_2.rps]}" 'BEGIN { printf "%.1f", (a + b) / 2 }')" "req/s"
  fi
  # The comparison holds only if one stack counted and the other did not.
  local scrape ms counted off_counted
  if ! scrape=$(s_metrics_scrape "$on_url" "$on_ca"); then
    fail metrics_on "GET /metrics failed on the recording stack"
  else
    read -r ms counted <<<"$scrape"
    result metrics_on.scrape_ms "$ms" "ms"
    result metrics_on.counted "$counted" ""
    local answered=$(( ${RESULT[metrics_on.requests]:-0} + ${RESULT[metrics_on_2.requests]:-0} ))
    echo "  scrape of the recording stack: $ms ms; it counted $counted answered GETs ($answered in the measured runs, plus warm-ups)"
    [ "$counted" -ge "$answered" ] ||
      fail metrics_on "the recording stack counted fewer requests than answered"
  fi
  if ! scrape=$(s_metrics_scrape "$off_url" "$off_ca"); then
    fail metrics_off "GET /metrics failed on the metrics=false stack"
  else
    read -r ms off_counted <<<"$scrape"
    [ "$off_counted" = 0 ] ||
      fail metrics_off "the metrics=false stack recorded requests: not a comparison"
  fi
  s_metrics_stop
  s_metrics_cost
}

# s_metrics_cost: builds and runs metrics_cost.c (see the header).
s_metrics_cost() {
  local bin="$TMP/metrics_cost" out line kv k v
  local -A c=()
  # shellcheck disable=SC2046  # pkg-config prints several words
  if ! cc -std=gnu11 -O2 -D_GNU_SOURCE -pthread -I"$REPO/common" -I"$BUILD/gen" \
         "$HERE/metrics_cost.c" "$BUILD/libbeacon.a" $(pkg-config --libs openssl) \
         -o "$bin" 2>"$TMP/metrics_cost.log"; then
    sed 's/^/    /' "$TMP/metrics_cost.log"
    fail metrics "metrics_cost.c did not build"
    return 0
  fi
  out=$("$bin" 2000000 2) || { fail metrics "metrics_cost failed"; return 0; }
  echo "  $out"
  line=${out#COST }
  for kv in $line; do
    k=${kv%%=*} v=${kv#*=}
    c[$k]=$v
  done
  result metrics_cost.ns_single "${c[ns_single]}" "ns/request"
  result metrics_cost.ns_contended "${c[ns_contended]}" "ns/request"
  if [ -n "${RESULT[metrics_off.rps_mean]:-}" ]; then
    result metrics.cpu_share_pct "$(awk -v ns="${c[ns_contended]}" \
      -v rps="${RESULT[metrics_off.rps_mean]}" -v cpus="$(nproc)" \
      'BEGIN { printf "%.4f", ns * rps / (cpus * 1e9) * 100 }')" "%"
    echo "  => ${c[ns_contended]} ns of CPU per request x ${RESULT[metrics_off.rps_mean]} req/s over $(nproc) CPUs = ${RESULT[metrics.cpu_share_pct]}% of the machine"
  fi
}
