# tests/bench/notes.sh: the notes service's benchmarks (issue 6), sourced by
# tests/bench/run.sh after its helpers (result, fail, api, s_token, s_wrk,
# pg_beacon, run_child) and before main runs. Not a program of its own.
#
#   note_save   PUT /api/v1/notes/{id}/draft: autosaving a ~700-byte GIRP
#               draft, sealed with AES-256-GCM, audited, versioned (If-Match);
#               16 wrk threads with one connection each, each saving its own
#               draft, so a thread's saves follow one another as an author's do
#   note_sign   POST /api/v1/notes/{id}/sign: opening the draft, checking its
#               required sections, hashing it, recording the signature, the
#               note.signed event and the audit record; each request signs a
#               different draft, made beforehand by note_create (POST
#               /api/v1/notes, itself measured: starting a draft encrypts,
#               checks the client in intake's scope and audits)
#   note_read   GET /api/v1/notes/{id}: a signed note with an addendum,
#               both opened (decrypted, authenticated) and the read audited
#               durably before the reply, at BENCH_LIST_CONNECTIONS callers
#               (a latency target, measured below saturation)
#   note_plain  the same three on a second stack whose notes service stores
#               note text unencrypted (bench_plaintext_notes, which the
#               service refuses to start with unless BENCH_NOTES_PLAINTEXT_OK
#               is in its environment): note_save_plain, note_create_plain,
#               note_sign_plain and note_read_plain, for the encryption cost
#               in the same run. The second stack is started and stopped by
#               bench_note_plain itself (and by the EXIT trap it chains in
#               front of run.sh's, should the run be interrupted).
#
# Figures: <name>.rps, .p50_ms, .p99_ms, .requests (s_wrk),
# note_save.audit_events and note_read.audited_reads.

NOTE_SAVE_THREADS=16
NOTE_TEXT="The client talked about the week and what helped."

# s_note_body CLIENT N: a complete GIRP contact note as JSON.
s_note_body() {
  printf '{"client_id":"%s","contact_kind":"phone_call","template_id":"girp","tags":["bench"],"sections":[{"key":"goal","text":"Stay housed (%s)"},{"key":"intervention","text":"%s"},{"key":"response","text":"%s"},{"key":"plan","text":"Meet again next week"}]}' \
    "$1" "$2" "$NOTE_TEXT" "$NOTE_TEXT"
}

# s_notes_fixture TOKEN: on the stack at BENCH_URL (BENCH_CA), a client, one
# draft per note_save thread and a signed note with an addendum. Sets
# NOTES_CLIENT, NOTES_DRAFTS (comma-separated) and NOTES_READ.
s_notes_fixture() {
  local token=$1 id i
  NOTES_CLIENT=$(api POST /api/v1/clients \
    "{\"given_name\":\"Nora\",\"family_name\":\"Bench-$RANDOM$RANDOM\",\"date_of_birth\":\"1979-05-06\"}" \
    --token "$token" --field id) || return 1
  NOTES_DRAFTS=""
  for i in $(seq 1 "$NOTE_SAVE_THREADS"); do
    id=$(api POST /api/v1/notes "$(s_note_body "$NOTES_CLIENT" "draft $i")" --token "$token" \
           --field id) || return 1
    NOTES_DRAFTS="$NOTES_DRAFTS${NOTES_DRAFTS:+,}$id"
  done
  NOTES_READ=$(api POST /api/v1/notes "$(s_note_body "$NOTES_CLIENT" read)" --token "$token" \
                 --field id) || return 1
  api POST "/api/v1/notes/$NOTES_READ/sign" '{"attest":true}' --token "$token" \
    --expect 200 >/dev/null || return 1
  api POST "/api/v1/notes/$NOTES_READ/addenda" \
    '{"text":"Addendum: the client called back to confirm the plan.","attest":true}' \
    --token "$token" >/dev/null || return 1
}

# s_note_runs SUFFIX TOKEN: the three measurements against BENCH_URL,
# recorded as note_save$SUFFIX, note_create$SUFFIX, note_sign$SUFFIX and
# note_read$SUFFIX.
s_note_runs() {
  local sfx=$1 token=$2 ids
  if ! s_notes_fixture "$token"; then
    fail "note_save$sfx" "could not set up the notes"
    return 0
  fi
  echo "  note_save$sfx: $NOTE_SAVE_THREADS drafts, one per thread"
  BENCH_TOKEN=$token BENCH_HERE=$HERE BENCH_NOTES=$NOTES_DRAFTS WRK_SCRIPT="$HERE/note_save.lua" \
    s_wrk "note_save$sfx" /api/v1/notes "$NOTE_SAVE_THREADS" "$NOTE_SAVE_THREADS"
  ids="$TMP/note_ids$sfx"
  rm -f "$ids" "$ids".*
  echo "  note_create$sfx: new drafts (kept for note_sign$sfx)"
  BENCH_TOKEN=$token BENCH_HERE=$HERE BENCH_CLIENT=$NOTES_CLIENT BENCH_NOTE_IDS=$ids \
    WRK_SCRIPT="$HERE/note_create.lua" s_wrk "note_create$sfx" /api/v1/notes 2 "$BENCH_CONNECTIONS"
  cat "$ids".* >"$ids" 2>/dev/null || true
  rm -f "$ids".used
  echo "  note_sign$sfx: $(wc -l <"$ids") drafts to sign, each once"
  BENCH_TOKEN=$token BENCH_HERE=$HERE BENCH_NOTE_IDS=$ids BENCH_SIGN_THREADS=2 \
    WRK_SCRIPT="$HERE/note_sign.lua" s_wrk "note_sign$sfx" /api/v1/notes 2 "$BENCH_CONNECTIONS"
}

# s_note_read_run SUFFIX TOKEN: note_read$SUFFIX against BENCH_URL, on the
# fixture's signed note (made when missing).
s_note_read_run() {
  local sfx=$1 token=$2
  if [ -z "${NOTES_READ:-}" ] && ! s_notes_fixture "$token"; then
    fail "note_read$sfx" "could not set up the note to read"
    return 0
  fi
  echo "  note_read$sfx: note $NOTES_READ (signed, one addendum)"
  s_wrk "note_read$sfx" "/api/v1/notes/$NOTES_READ" 2 "$BENCH_LIST_CONNECTIONS" \
    "Authorization: Bearer $token"
}

# s_pg_super SQL: SQL in the Beacon database as the postgres superuser (the
# notes tables' row security is FORCEd: their owner sees nothing).
s_pg_super() {
  psql "$BENCH_DATABASE_URL user=postgres" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"
}

bench_note_save() {
  echo "== note_save, note_create, note_sign: drafts saved, started and signed (encrypted, audited)"
  if ! s_token; then
    fail note_save "could not sign in a peer specialist"
    return 0
  fi
  local before after clear
  before=$(s_pg_super "SELECT count(*) FROM audit.events WHERE resource_type = 'note'")
  NOTES_READ=
  s_note_runs "" "$BENCH_PEER_TOKEN"
  after=$(s_pg_super "SELECT count(*) FROM audit.events WHERE resource_type = 'note'")
  result note_save.audit_events $((after - before)) ""
  echo "  audit: $((after - before)) note events recorded during the three runs"
  # Every draft and signature is sealed: nothing in clear in the table.
  clear=$(s_pg_super "SELECT count(*) FROM notes.notes WHERE body_enc NOT LIKE 'v1:%'")
  [ "$clear" = 0 ] || fail note_save "$clear notes not encrypted on the encrypted stack"
}

# Decrypt-and-read: one signed note with an addendum, both opened and
# authenticated, the read audited durably before the reply.
bench_note_read() {
  echo "== note_read: GET /api/v1/notes/{id} signed in, decrypted, audited, TLS keep-alive"
  if ! s_token; then
    fail note_read "could not sign in a peer specialist"
    return 0
  fi
  local before after
  before=$(s_pg_super "SELECT count(*) FROM audit.events WHERE resource_type = 'note' AND action = 'read'")
  s_note_read_run "" "$BENCH_PEER_TOKEN"
  after=$(s_pg_super "SELECT count(*) FROM audit.events WHERE resource_type = 'note' AND action = 'read'")
  result note_read.audited_reads $((after - before)) ""
  echo "  audit: $((after - before)) reads recorded during warm-up and run"
  [ $((after - before)) -ge "${RESULT[note_read.requests]:-0}" ] ||
    fail note_read "fewer audit records than answered reads"
}

# The second stack, notes stored in clear (benchmarks only).
s_note_plain_stop() {
  if [ -n "${NOTE_PLAIN_PID:-}" ]; then
    kill -TERM "$NOTE_PLAIN_PID" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$NOTE_PLAIN_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NOTE_PLAIN_PID" 2>/dev/null || true
    wait "$NOTE_PLAIN_PID" 2>/dev/null || true
    NOTE_PLAIN_PID=
  fi
  if [ -n "${TMP:-}" ] && [ -f "$TMP/plain-state/pg/data/postmaster.pid" ]; then
    bash "$REPO/deploy/pg-cluster.sh" stop "$TMP/plain-state/pg" >/dev/null 2>&1 || true
  fi
}

bench_note_plain() {
  echo "== note_plain: the same notes path on a second stack storing note text unencrypted"
  local t0=$SECONDS out
  # (run.sh's s_cleanup stops it too, whatever ends the run)
  # shellcheck disable=SC2086
  BENCH_NOTES_PLAINTEXT_OK=notes-encryption-cost python3 "$HERE/stack.py" "$BUILD" \
    "$TMP/plain-state" "$TMP/plain.env" log_level=warn allow_bootstrap=true \
    bench_plaintext_notes=true ${BENCH_SETTINGS:-} >"$TMP/plain.log" 2>&1 &
  NOTE_PLAIN_PID=$!
  until [ -f "$TMP/plain.env" ]; do
    if ! kill -0 "$NOTE_PLAIN_PID" 2>/dev/null || [ $((SECONDS - t0)) -gt 180 ]; then
      tail -n 30 "$TMP/plain.log" >&2
      fail note_plain "the unencrypted stack did not start"
      NOTE_PLAIN_PID=
      return 0
    fi
    sleep 0.2
  done
  local p_url p_ca p_db p_host p_port
  p_url=$(. "$TMP/plain.env"; echo "$BENCH_URL")
  p_ca=$(. "$TMP/plain.env"; echo "$BENCH_CA")
  p_db=$(. "$TMP/plain.env"; echo "$BENCH_DATABASE_URL")
  p_host=$(. "$TMP/plain.env"; echo "$BENCH_PGHOST")
  p_port=$(. "$TMP/plain.env"; echo "$BENCH_PGPORT")
  echo "  unencrypted stack at $p_url, ready in $((SECONDS - t0)) s"
  out="$TMP/plain-signin.out"
  if ! BENCH_URL=$p_url BENCH_CA=$p_ca python3 "$HERE/signin.py" 0 >"$out"; then
    fail note_plain "could not sign in on the unencrypted stack"
    s_note_plain_stop
    return 0
  fi
  local p_token
  p_token=$(. "$out"; echo "$BENCH_PEER_TOKEN")
  local saved_read=${NOTES_READ:-}
  NOTES_READ=
  # (s_wrk's checkpoint then settles this stack's cluster, as it does the first's)
  BENCH_URL=$p_url BENCH_CA=$p_ca BENCH_PGHOST=$p_host BENCH_PGPORT=$p_port \
    s_note_runs _plain "$p_token"
  BENCH_URL=$p_url BENCH_CA=$p_ca BENCH_PGHOST=$p_host BENCH_PGPORT=$p_port \
    s_note_read_run _plain "$p_token"
  NOTES_READ=$saved_read
  local clear
  clear=$(psql "$p_db user=postgres" -X -q -A -t -c \
            "SELECT count(*) FROM notes.notes WHERE body_enc LIKE 'clear:%'" 2>/dev/null || echo 0)
  echo "  $clear notes stored unencrypted on this stack (removed with its state at exit)"
  [ "$clear" != 0 ] || fail note_plain "the second stack encrypted its notes: not a comparison"
  s_note_plain_stop
}
