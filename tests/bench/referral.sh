# tests/bench/referral.sh: the referral service's benchmarks (issue 7), sourced by
# tests/bench/run.sh after its helpers (result, fail, s_token, s_wrk, pg_admin_beacon,
# pg_beacon, run_child) and before main runs. Not a program of its own.
#
#   directory_import  BENCH_DIRECTORY_SERVICES services (default 100,000), each with its
#                 organization (one per 10 services), a location with coordinates around
#                 New York, the service_at_location link, a language and a taxonomy
#                 attribute, written as HSDS 3.0 JSON and sent through POST
#                 /api/v1/directory/import in files of BENCH_IMPORT_BATCH services
#                 (default 500, under the gateway's 1 MB body limit) by the agency's
#                 admin. Records directory_import.seconds, .records and .records_per_s.
#   directory_copy    the same rows loaded with a plain COPY into scratch tables shaped
#                 like the directory's (CREATE TABLE ... (LIKE referral.x)), in the same
#                 run: directory_copy.seconds. The issue's target: the import within 3x.
#   directory_search  GET /api/v1/directory/services with a keyword, a category and a
#                 10 km radius over the imported directory, at BENCH_LIST_CONNECTIONS
#                 callers: first right after the import (directory_search_fresh.rps,
#                 .p50_ms, .p99_ms), then once autovacuum and the referral upkeep
#                 have finished with what the import wrote (the waited time in
#                 directory_search.settle_seconds) as the directory is searched
#                 through the day (a latency target, p99 < 25 ms):
#                 directory_search.rps, .p50_ms, .p99_ms.
#
# Wiring (run.sh): source this file beside notes.sh, append
# "directory_import directory_search" to BENCHMARKS (directory_import runs the COPY
# comparison itself), and add
#   TARGETS: "directory_search.p99_ms max 25 p99 of keyword + category + 10 km over 100,000 services"
#   RATIOS:  "directory_copy.seconds directory_import.seconds 0.33 COPY time over import time (import within 3x of COPY)"
# The admin's token and id come from signin.py (BENCH_ADMIN_TOKEN, BENCH_ADMIN_ID).

BENCH_DIRECTORY_SERVICES=${BENCH_DIRECTORY_SERVICES:-100000}
BENCH_IMPORT_BATCH=${BENCH_IMPORT_BATCH:-500}

# s_directory_files DIR: writes the dataset as HSDS JSON batches DIR/batch-N.json (the
# request bodies) and as CSV files DIR/<table>.csv for the COPY comparison.
s_directory_files() {
  python3 - "$1" "$BENCH_DIRECTORY_SERVICES" "$BENCH_IMPORT_BATCH" "$BENCH_AGENCY_ID" \
    "$BENCH_ADMIN_ID" <<'PY'
import base64, csv, json, os, random, sys, uuid
out, total, batch, agency, admin = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rnd = random.Random(7)
words = ["housing", "food", "legal", "employment", "treatment", "harm reduction", "medicaid",
         "counselling", "shelter", "transport", "childcare", "recovery"]
term_ids = {w: str(uuid.UUID(int=rnd.getrandbits(128))) for w in words}
taxonomy = str(uuid.UUID(int=rnd.getrandbits(128)))
rows = {t: [] for t in ("taxonomies", "taxonomy_terms", "organizations", "services", "locations",
                        "service_at_location", "languages", "attributes")}
rows["taxonomies"].append([agency, taxonomy, "Bench", "Bench categories", admin])
terms = [{"id": term_ids[w], "code": "BN-%d" % i, "name": w.title(), "description": w,
          "taxonomy_id": taxonomy} for i, w in enumerate(words)]
for t in terms:
    rows["taxonomy_terms"].append([agency, t["id"], t["code"], t["name"], t["description"],
                                   taxonomy, admin])
os.makedirs(out, exist_ok=True)
n = 0
def uid():
    return str(uuid.UUID(int=rnd.getrandbits(128)))
for start in range(0, total, batch):
    services = []
    org = None
    for i in range(start, min(total, start + batch)):
        if i % 10 == 0:
            org = uid()
            rows["organizations"].append([agency, org, "Organization %d" % i, admin])
        w = words[i % len(words)]
        sid, loc, sal, lang, attr = uid(), uid(), uid(), uid(), uid()
        lat = 40.7128 + rnd.uniform(-0.5, 0.5)
        lon = -74.0060 + rnd.uniform(-0.6, 0.6)
        name = "%s service %d" % (w.title(), i)
        desc = "Help with %s for adults in recovery, walk-in or by appointment (%d)" % (w, i)
        services.append({"id": sid, "organization_id": org, "name": name, "description": desc,
                         "status": "active", "minimum_age": 18,
                         "languages": [{"id": lang, "code": "en", "name": "English"}],
                         "attributes": [{"id": attr, "link_entity": "service",
                                         "taxonomy_term_id": term_ids[w]}],
                         "service_at_locations": [{"id": sal, "location": {
                             "id": loc, "organization_id": org, "name": name + " site",
                             "latitude": round(lat, 6), "longitude": round(lon, 6)}}]})
        rows["services"].append([agency, sid, org, name, desc, "active", 18, admin])
        rows["locations"].append([agency, loc, org, name + " site", round(lat, 6), round(lon, 6), admin])
        rows["service_at_location"].append([agency, sal, sid, loc, admin])
        rows["languages"].append([agency, lang, sid, "en", "English", admin])
        rows["attributes"].append([agency, attr, sid, term_ids[w], "service", admin])
    files = []
    if start == 0:
        files.append({"name": "taxonomy_terms.json", "content": base64.b64encode(json.dumps(
            [dict(t, taxonomy_detail={"id": taxonomy, "name": "Bench",
                                      "description": "Bench categories"}) for t in terms]
        ).encode()).decode()})
    orgs = sorted({s["organization_id"] for s in services})
    files.append({"name": "organizations.json", "content": base64.b64encode(json.dumps(
        [{"id": o, "name": "Organization"} for o in orgs]).encode()).decode()})
    files.append({"name": "services.json",
                  "content": base64.b64encode(json.dumps(services).encode()).decode()})
    with open(os.path.join(out, "batch-%06d.json" % n), "w") as f:
        json.dump({"files": files}, f)
    n += 1
for t, r in rows.items():
    with open(os.path.join(out, t + ".csv"), "w", newline="") as f:
        csv.writer(f).writerows(r)
PY
}

# s_directory_post DIR: sends every batch in DIR as the admin; prints "records refused".
s_directory_post() {
  python3 - "$1" <<'PY'
import http.client, json, os, ssl, sys, urllib.parse
url = urllib.parse.urlsplit(os.environ["BENCH_URL"])
ctx = ssl.create_default_context(cafile=os.environ["BENCH_CA"])
conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=300, context=ctx)
taken = refused = 0
for name in sorted(os.listdir(sys.argv[1])):
    if not name.startswith("batch-"):
        continue
    body = open(os.path.join(sys.argv[1], name), "rb").read()
    conn.request("POST", "/api/v1/directory/import", body=body,
                 headers={"Content-Type": "application/json",
                          "Authorization": "Bearer " + os.environ["BENCH_ADMIN_TOKEN"]})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        sys.exit("import of %s answered %d: %s" % (name, resp.status, data[:300]))
    rep = json.loads(data)
    taken += rep.get("taken", 0)
    refused += rep.get("refused", 0)
print(taken, refused)
PY
}

bench_directory_import() {
  s_token || { fail directory_import "could not sign in"; return 0; }
  if [ -z "${BENCH_ADMIN_TOKEN:-}" ]; then
    fail directory_import "no BENCH_ADMIN_TOKEN (signin.py must print the admin's token)"
    return 0
  fi
  local dir="$TMP/directory" t0 t1 out taken refused
  rm -rf "$dir"
  echo "  directory_import: $BENCH_DIRECTORY_SERVICES services in files of $BENCH_IMPORT_BATCH"
  s_directory_files "$dir" || { fail directory_import "could not write the dataset"; return 0; }
  pg_admin "CHECKPOINT" >/dev/null || true
  t0=$(date +%s.%N)
  if ! out=$(BENCH_ADMIN_TOKEN=$BENCH_ADMIN_TOKEN s_directory_post "$dir"); then
    fail directory_import "the import failed"
    return 0
  fi
  t1=$(date +%s.%N)
  read -r taken refused <<<"$out"
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  result directory_import.seconds "$secs" "s"
  result directory_import.records "$taken" ""
  result directory_import.records_per_s "$(awk -v n="$taken" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')" "rec/s"
  echo "  => $taken records taken, $refused refused in $secs s"
  [ "$refused" = 0 ] || fail directory_import "$refused records refused"

  # The same rows by COPY, into scratch tables shaped like the directory's.
  local t cols
  declare -A copy_cols=(
    [taxonomies]="agency_id, id, name, description, updated_by"
    [taxonomy_terms]="agency_id, id, code, name, description, taxonomy_id, updated_by"
    [organizations]="agency_id, id, name, updated_by"
    [services]="agency_id, id, organization_id, name, description, status, minimum_age, updated_by"
    [locations]="agency_id, id, organization_id, name, latitude, longitude, updated_by"
    [service_at_location]="agency_id, id, service_id, location_id, updated_by"
    [languages]="agency_id, id, service_id, code, name, updated_by"
    [attributes]="agency_id, id, link_id, taxonomy_term_id, link_entity, updated_by")
  local sql="BEGIN; CREATE SCHEMA IF NOT EXISTS bench_copy;"
  for t in "${!copy_cols[@]}"; do
    sql="$sql DROP TABLE IF EXISTS bench_copy.$t; CREATE TABLE bench_copy.$t (LIKE referral.$t INCLUDING ALL);"
  done
  pg_admin_beacon "$sql COMMIT" >/dev/null || { fail directory_import "scratch tables"; return 0; }
  pg_admin "CHECKPOINT" >/dev/null || true
  t0=$(date +%s.%N)
  for t in taxonomies taxonomy_terms organizations services locations service_at_location \
           languages attributes; do
    cols=${copy_cols[$t]}
    # psql's \copy: a plain COPY ... FROM STDIN, the file read by the client.
    pg_admin_beacon "\\copy bench_copy.$t ($cols) FROM '$dir/$t.csv' WITH (FORMAT csv)" >/dev/null ||
      { fail directory_import "COPY into $t"; return 0; }
  done
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  result directory_copy.seconds "$secs" "s"
  echo "  => COPY of the same rows: $secs s"
  pg_admin_beacon "DROP SCHEMA bench_copy CASCADE" >/dev/null || true
}

# s_directory_settle: waits (at most BENCH_SETTLE_SECONDS, default 300) until no
# autovacuum worker runs and the referral service's upkeep connection is idle, three
# polls in a row; records directory_search.settle_seconds.
s_directory_settle() {
  local t0 t1 quiet=0 busy
  t0=$(date +%s.%N)
  while :; do
    busy=$(pg_admin "SELECT count(*) FROM pg_stat_activity
                      WHERE backend_type = 'autovacuum worker'
                         OR (application_name = 'beacon-referral-upkeep' AND state <> 'idle')")
    if [ "$busy" = 0 ]; then quiet=$((quiet + 1)); else quiet=0; fi
    t1=$(date +%s.%N)
    [ "$quiet" -ge 3 ] && break
    if awk -v a="$t0" -v b="$t1" -v m="${BENCH_SETTLE_SECONDS:-300}" 'BEGIN { exit !(b - a > m) }'
    then echo "    still busy after ${BENCH_SETTLE_SECONDS:-300} s: measuring anyway"; break; fi
    sleep 1
  done
  result directory_search.settle_seconds "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" s
}

# The search is measured twice: right after the import, while autovacuum and the
# referral service's upkeep (statistics, vacuum of the search table) still work on
# what it wrote (directory_search_fresh.*), and once that background work is done,
# the directory as it is searched through the day (directory_search.*: the target).
bench_directory_search() {
  local path="/api/v1/directory/services?q=recovery&taxonomy_term=BN-0&latitude=40.7128&longitude=-74.0060&radius_km=10&limit=20"
  s_token || { fail directory_search "could not sign in"; return 0; }
  echo "  directory_search_fresh: keyword + category + 10 km radius, right after the import"
  s_wrk directory_search_fresh "$path" 2 "$BENCH_LIST_CONNECTIONS" \
    "Authorization: Bearer $BENCH_PEER_TOKEN"
  echo "  directory_search: the same once autovacuum and the upkeep are done"
  s_directory_settle
  s_wrk directory_search "$path" 2 "$BENCH_LIST_CONNECTIONS" \
    "Authorization: Bearer $BENCH_PEER_TOKEN"
}
