# tests/bench/billing.sh: the billing benchmark, sourced by tests/bench/run.sh after its
# helpers (result, fail, s_token, pg_admin_beacon, pg_beacon, run_child) and before main
# runs. Not a program of its own.
#
#   billing   BENCH_BILLING_ENCOUNTERS completed encounters (default 1,000,000; set
#             50000 while developing) of BENCH_BILLING_CLIENTS clients (default one per
#             100 encounters, registered through the API so that their Medicaid IDs are
#             sealed as in service), each enrolled with an F11.20 diagnosis and a consent
#             naming the payer for payment, every encounter 50 minutes (3 units) with a
#             signed note; all but the clients written with set-based SQL. Then, in the
#             same run:
#               billing_copy.seconds   COPY (the same encounter rows, joined and ordered as
#                                      the batch reads them) TO STDOUT > /dev/null
#               billing_batch.seconds  POST /api/v1/billing/batches over the same range:
#                                      every claim built (intake and notes asked per chunk),
#                                      stored, and the 837P and CSV written in sealed parts
#             and the scheduling process's peak memory (VmHWM) after a first batch of
#             about a tenth of the encounters (billing_small.vmhwm_kb) and after the
#             large one (billing_batch.vmhwm_kb): equal when memory is flat.
#             The issue's target: the batch within 2.5x of the COPY. With
#             BENCH_BILLING_BATCH_DAYS the large range goes in several batches (each one
#             request within the gateway's request_timeout_ms), their times summed.
#
# Wiring (run.sh): source this file, append "billing" to BENCHMARKS, and add
#   RATIOS: "billing_copy.seconds billing_batch.seconds 0.40 COPY time over 837P batch time"
# The gateway must wait for a long batch: run.sh starts the stack with
# request_timeout_ms=600000.

BENCH_BILLING_ENCOUNTERS=${BENCH_BILLING_ENCOUNTERS:-1000000}
BENCH_BILLING_CLIENTS=${BENCH_BILLING_CLIENTS:-$(( (BENCH_BILLING_ENCOUNTERS + 99) / 100 ))}

# s_billing_py ARGS...: the benchmark's HTTPS steps (python3, deploy/launch.py's client).
s_billing_py() {
  python3 - "$@" <<'PY'
import concurrent.futures, json, os, ssl, sys, time, urllib.parse, http.client, uuid
url = urllib.parse.urlsplit(os.environ["BENCH_URL"])
ctx = ssl.create_default_context(cafile=os.environ["BENCH_CA"])

def call(method, path, body=None, token=None, timeout=60):
    conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=timeout, context=ctx)
    hdrs = {"Content-Type": "application/json"}
    if token:
        hdrs["Authorization"] = "Bearer " + token
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=hdrs)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data

what = sys.argv[1]
if what == "setup":
    admin, peer, site, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    email = "biller-%s@bench.beacon.test" % uuid.uuid4().hex[:8]
    s, d = call("POST", "/api/v1/staff", {"given_name": "Bench", "family_name": "Biller",
               "email": email, "roles": ["billing"], "site_ids": [site],
               "password": "bench billing password 1"}, admin)
    assert s == 201, d
    s, d = call("POST", "/api/v1/sessions", {"email": email, "password": "bench billing password 1"})
    assert s == 201, d
    biller = json.loads(d)["token"]
    cfg = {"payer_name": "Bench Medicaid", "submitter_id": "BENCHSUB", "submitter_name": "Bench",
           "submitter_contact_name": "Bench Biller", "submitter_contact_phone": "6145550100",
           "receiver_id": "BENCHRCV", "receiver_name": "Bench Receiver",
           "billing_provider_name": "Bench Agency", "billing_provider_npi": "1234567893",
           "billing_provider_taxonomy": "261QR0405X", "billing_provider_tax_id": "311234567",
           "billing_provider_address": {"line1": "1 Main St", "city": "Columbus", "state": "OH",
                                        "postal_code": "432150001"},
           "rates": [{"modifiers": "", "cents": 1525}], "max_units_per_day": 0}
    s, d = call("PUT", "/api/v1/billing/payers/BENCH", cfg, admin)
    assert s == 200, d
    def register(i):
        body = {"given_name": "Bench", "family_name": "Billing-%07d" % i,
                "date_of_birth": "1980-01-01", "medicaid_id": "BM%08d" % i,
                "address_lines": ["%d Elm St" % i], "city": "Columbus", "state": "OH",
                "postal_code": "43215", "allow_duplicate": True}
        for _ in range(5):
            s, d = call("POST", "/api/v1/clients", body, peer)
            if s == 201:
                return json.loads(d)["id"]
            if s not in (429, 503):
                raise SystemExit("client registration failed: %d %s" % (s, d[:200]))
            time.sleep(0.2)
        raise SystemExit("client registration kept failing")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(register, range(n)))
    with open(sys.argv[6], "w") as f:
        f.write("\n".join(ids) + "\n")
    print(biller)
elif what == "batch":
    token, first, last = sys.argv[2], sys.argv[3], sys.argv[4]
    t0 = time.monotonic()
    s, d = call("POST", "/api/v1/billing/batches", {"payer_id": "BENCH", "from": first, "to": last},
                token, timeout=900)
    secs = time.monotonic() - t0
    if s != 201:
        raise SystemExit("batch failed: %d %s" % (s, d[:300]))
    b = json.loads(d)
    print("%.3f %d %d %d" % (secs, b["claim_count"], b["parts"], b["bytes"]))
PY
}

# s_vmhwm: the peak resident memory (VmHWM, kB) of this stack's scheduling process:
# the beacon-scheduling of this build whose environment names this run's state
# directory (other stacks may run on the machine). Reads /proc only.
s_vmhwm() {
  local p
  for p in $(pgrep -f "^$BUILD/bin/beacon-scheduling" || true); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q "$TMP/state"; then
      awk '/^VmHWM/ { print $2 }' "/proc/$p/status"
      return 0
    fi
  done
  echo 0
}

bench_billing() {
  local n=$BENCH_BILLING_ENCOUNTERS clients=$BENCH_BILLING_CLIENTS ids="$TMP/billing.clients"
  local biller first last mid t0 t1 out copy_s secs claims parts bytes
  s_token || { fail billing "sign-in failed"; return 0; }
  echo "billing: $n encounters of $clients clients (set-based SQL; clients through the API)"
  if [ -z "${BENCH_ADMIN_TOKEN:-}" ]; then fail billing "no agency admin token"; return 0; fi
  t0=$(date +%s.%N)
  if ! biller=$(s_billing_py setup "$BENCH_ADMIN_TOKEN" "$BENCH_PEER_TOKEN" "$BENCH_SITE_ID" \
                  "$clients" "$ids"); then
    fail billing "set-up through the API failed"
    return 0
  fi
  # Service dates: the 360 days before yesterday, a client's encounters spread over them.
  last=$(date -u -d yesterday +%F)
  first=$(date -u -d "$last - 359 days" +%F)
  if ! pg_admin_beacon "
    CREATE TEMP TABLE bench_clients (n serial, id uuid);
    COPY bench_clients (id) FROM '$ids';
    INSERT INTO intake.enrollments (client_id, program, pathway, started_on, enrolled_by)
      SELECT id, 'Bench', 'brief', DATE '$first' - 30, '$BENCH_PEER_ID' FROM bench_clients;
    INSERT INTO intake.diagnoses (client_id, code, recorded_on, recorded_by)
      SELECT id, 'F11.20', DATE '$first' - 30, '$BENCH_PEER_ID' FROM bench_clients;
    INSERT INTO intake.consents (client_id, disclosing_party, information_description,
        recipients, purposes, right_to_revoke_explained, revocation_instructions, expires_on,
        signed_by, signer_relationship, signature_method, signed_on, recorded_by)
      SELECT id, 'Bench Agency', 'dates of service, diagnoses and units', ARRAY['Bench Medicaid'],
        ARRAY['payment'], true, 'in writing', DATE '$last' + 365, 'Client', 'self', 'wet',
        DATE '$first' - 30, '$BENCH_PEER_ID' FROM bench_clients;
    INSERT INTO scheduling.encounters (id, agency_id, site_id, client_id, staff_id, starts_at,
        ends_at, mode, place_of_service, recorded_by)
      SELECT gen_random_uuid(), '$BENCH_AGENCY_ID', '$BENCH_SITE_ID', c.id, '$BENCH_PEER_ID', t,
        t + interval '50 minutes', 'in_person', '11', '$BENCH_PEER_ID'
      FROM (SELECT array_agg(id ORDER BY n) AS ids FROM bench_clients) a
      CROSS JOIN generate_series(0, $n - 1) g
      CROSS JOIN LATERAL (SELECT a.ids[1 + g % $clients] AS id) c
      CROSS JOIN LATERAL (SELECT (DATE '$first' + (g / $clients + 37 * (g % $clients)) % 360)
                                 ::timestamp AT TIME ZONE 'UTC' + interval '13 hours'
                                 + (g / ($clients * 360)) * interval '1 hour' AS t) x;
    INSERT INTO notes.notes (id, agency_id, site_id, client_id, author_id, encounter_id, kind,
        template_id, body_enc, status, occurred_at, content_hash, signed_by, signed_at,
        updated_by)
      SELECT gen_random_uuid(), e.agency_id, e.site_id, e.client_id, e.staff_id, e.id,
        'encounter', 'girp', 'bench', 'signed', e.starts_at, repeat('0', 64), e.staff_id,
        e.ends_at, e.staff_id
      FROM scheduling.encounters e WHERE e.agency_id = '$BENCH_AGENCY_ID';
    ANALYZE scheduling.encounters; ANALYZE notes.notes; ANALYZE intake.clients;" >/dev/null
  then
    fail billing "seeding failed"
    return 0
  fi
  t1=$(date +%s.%N)
  echo "  seeded in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
  pg_admin "CHECKPOINT" >/dev/null || true
  # A first, small batch (about a tenth of the days), for the memory comparison.
  mid=$(date -u -d "$first + 35 days" +%F)
  if ! out=$(s_billing_py batch "$biller" "$first" "$mid"); then
    fail billing "the small batch failed"
    return 0
  fi
  read -r secs claims parts bytes <<<"$out"
  result billing_small.seconds "$secs" s
  result billing_small.claims "$claims"
  result billing_small.vmhwm_kb "$(s_vmhwm)" kB
  echo "  small batch: $claims claims in $secs s, $parts part(s), VmHWM ${RESULT[billing_small.vmhwm_kb]} kB"
  mid=$(date -u -d "$mid + 1 day" +%F)
  # The baseline: COPY of the same rows, as the batch's cursor reads them.
  t0=$(date +%s.%N)
  pg_admin_beacon "COPY (SELECT e.id::text, e.client_id::text, e.site_id::text,
      to_char(e.starts_at AT TIME ZONE d.time_zone, 'YYYY-MM-DD'),
      to_char((e.ends_at - interval '1 microsecond') AT TIME ZONE d.time_zone, 'YYYY-MM-DD'),
      e.minutes, e.place_of_service, e.mode, e.is_group, coalesce(c.id::text, '')
    FROM scheduling.encounters e JOIN identity.site_directory d ON d.site_id = e.site_id
    LEFT JOIN billing.claims c ON c.encounter_id = e.id AND c.frequency = '1'
    WHERE e.agency_id = '$BENCH_AGENCY_ID'
      AND (e.starts_at AT TIME ZONE d.time_zone)::date BETWEEN '$mid' AND '$last'
      AND (c.id IS NULL OR c.status = 'held')
    ORDER BY e.client_id, e.starts_at, e.id) TO STDOUT" >/dev/null
  t1=$(date +%s.%N)
  copy_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  result billing_copy.seconds "$copy_s" s
  # The rest in batches of at most BENCH_BILLING_BATCH_DAYS days (default 400: one
  # batch), each one request that must finish within the gateway's request_timeout_ms.
  local from=$mid to secs=0 claims=0 parts=0 bytes=0 s c p b
  while [[ ! "$from" > "$last" ]]; do
    to=$(date -u -d "$from + $(( ${BENCH_BILLING_BATCH_DAYS:-400} - 1 )) days" +%F)
    [[ "$to" > "$last" ]] && to=$last
    if ! out=$(s_billing_py batch "$biller" "$from" "$to"); then
      fail billing "the batch of $from to $to failed"
      return 0
    fi
    read -r s c p b <<<"$out"
    echo "    batch $from to $to: $c claims in $s s"
    secs=$(awk -v a="$secs" -v b="$s" 'BEGIN { printf "%.3f", a + b }')
    claims=$((claims + c)) parts=$((parts + p)) bytes=$((bytes + b))
    from=$(date -u -d "$to + 1 day" +%F)
  done
  result billing_batch.seconds "$secs" s
  result billing_batch.claims "$claims"
  result billing_batch.mb "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')" MB
  result billing_batch.vmhwm_kb "$(s_vmhwm)" kB
  echo "  COPY of the same rows: $copy_s s; batch: $claims claims in $secs s," \
       "$parts parts ($(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }') MB of 837P)"
  echo "  scheduling VmHWM: ${RESULT[billing_small.vmhwm_kb]} kB after ${RESULT[billing_small.claims]} claims," \
       "${RESULT[billing_batch.vmhwm_kb]} kB after $claims more"
}
