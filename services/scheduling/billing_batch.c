/*  billing_batch: claims built from completed encounters and sent as a
 *  batch (POST /api/v1/billing/batches): one X12 837P file plus a CSV of the
 *  same claims.
 *
 *  Claims are built at batch time, streamed: the encounters of the payer's
 *  date range (service dates in the site's zone) that have no claim yet or
 *  only a held one are read through a cursor 2,000 at a time, client by
 *  client (so a client's subscriber details are asked for and disclosed
 *  once or twice per batch, not once per chunk it has an encounter in),
 *  and evaluated (billing_evaluate.c). For each chunk the service asks
 *  intake (BillingSubjects: subscriber details, the decrypted Medicaid ID,
 *  episodes, diagnoses, consent to disclose to the payer for payment) and
 *  notes (BillingNoteStatus: signed, co-signed) once each, over ZeroMQ, as
 *  the caller (role billing, its sites), sending both for the next chunk
 *  before storing the current one, and counts the units already billed to
 *  the chunk's clients (billing_units.c). Each encounter is then billable
 *  or held with every reason that applies (held claims are evaluated again
 *  by the next batch). The chunk's claims are copied into billing.claims in
 *  one statement (billing_stage.c), and while the database runs it the
 *  service decides the next chunk; the database refuses a second original
 *  claim for an encounter (claims_one_original), and only the rows it took
 *  are written to the file, so an encounter is never billed twice. Batches
 *  of one agency run one at a time (a transaction-level advisory lock): a
 *  second waits for the first and then reads only what is left. Replacement
 *  (7) and void (8) claims queued for the payer go into the same file
 *  first.
 *
 *  The file is written as it is built and stored in parts of about
 *  billing_part_bytes (a part closes at the first claim past the size)
 *  (billing.batch_parts, sealed with the field keys: it holds Medicaid
 *  IDs), so memory stays flat however many encounters there are. A batch
 *  with no billable claim is refused (422) after its holds are recorded.
 *  The whole batch is one transaction: it is stored completely or not at
 *  all; asking for the file again returns the stored bytes.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_crypt.h"
#include "bc_log.h"
#include "bc_util.h"
#include "billing.h"
#include "billing_internal.h"
#include "scheduling.h"

#define S_CHUNK_TEXT "2000"
#define S_MAX_RANGE_DAYS 400

/* ---- parts: the stored file ------------------------------------------------------- */

typedef struct {
    bc_call_t *call;
    const char *batch_id;
    int parts[2]; /* 837p, csv */
    int64_t bytes;
    int64_t *us; /* time spent, added to */
} s_store_t;

static int s_store_part(s_store_t *st, int kind, const char *data, size_t len)
{
    bc_call_t *call = st->call;
    const char *kind_name = kind == 0 ? "837p" : "csv";
    int64_t t0 = bc_mono_us();
    char part[16], aad[128];
    snprintf(part, sizeof part, "%d", ++st->parts[kind]);
    snprintf(aad, sizeof aad, "billing.batch_parts:%s:%s:%s", st->batch_id, kind_name, part);
    char *enc = NULL;
    bc_error_t err;
    if (bc_field_encrypt(billing_keys(call), data, len, aad, &enc, &err) < 0) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    const char *params[] = {st->batch_id, kind_name, part, enc, call->principal->agency_id};
    PGresult *res = bc_db_prepared(call->db, "billing_part_add",
                                   "INSERT INTO billing.batch_parts (batch_id, kind, part, "
                                   "body_enc, agency_id) VALUES ($1, $2, $3::int, $4, $5)",
                                   5, params, &err);
    free(enc);
    if (!res) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    PQclear(res);
    if (kind == 0)
        st->bytes += (int64_t)len;
    *st->us += bc_mono_us() - t0;
    return 0;
}

/* One CSV field, RFC 4180 quoting when needed. */
static void s_csv_field(billing_buf_t *b, const char *v, bool last)
{
    if (strpbrk(v, ",\"\r\n")) {
        billing_buf_add(b, "\"", 1);
        for (const char *p = v; *p; p++) {
            if (*p == '"')
                billing_buf_add(b, "\"", 1);
            billing_buf_add(b, p, 1);
        }
        billing_buf_add(b, "\"", 1);
    } else {
        billing_buf_str(b, v);
    }
    billing_buf_add(b, last ? "\r\n" : ",", last ? 2 : 1);
}

static const char S_CSV_HEADER[] =
    "claim_id,frequency,original_claim_id,encounter_id,client_id,subscriber_last,"
    "subscriber_first,medicaid_id,date_of_birth,service_date,procedure,modifiers,units,"
    "charge,place_of_service,diagnoses\r\n";

/* ---- the writer of one batch ------------------------------------------------------- */

typedef struct {
    bc_call_t *call;
    const Beacon__Billing__BillingConfig *cfg;
    billing_x12_t *x12;
    billing_buf_t csv;
    s_store_t store;
    int64_t claims, total_cents, replacements, voids, held;
    int64_t seen;
    billing_timing_t t; /* where the time went, for the log */
} s_batch_t;

static int s_flush(s_batch_t *b, bool all)
{
    size_t len;
    const char *text = billing_x12_pending(b->x12, &len);
    size_t part_bytes = billing_part_bytes(b->call);
    if (len > 0 && (all || len >= part_bytes)) {
        if (s_store_part(&b->store, 0, text, len) < 0)
            return -1;
        billing_x12_take(b->x12);
    }
    if (b->csv.len > 0 && (all || b->csv.len >= part_bytes)) {
        if (s_store_part(&b->store, 1, b->csv.p, b->csv.len) < 0)
            return -1;
        b->csv.len = 0;
    }
    return 0;
}

/* Writes one claim to the file and the CSV. */
static int s_write(s_batch_t *b, const billing_claim_t *c)
{
    billing_x12_claim_t x = {
        .claim_id = c->x12_id,
        .frequency = c->frequency,
        .original_ref = c->original_ref,
        .last = c->last,
        .first = c->first,
        .medicaid_id = c->medicaid_id,
        .address = c->address,
        .city = c->city,
        .state = c->state,
        .postal = c->postal,
        .dob = c->dob8,
        .sex = c->sex,
        .place_of_service = c->place_of_service,
        .n_diagnoses = c->n_diagnoses,
        .procedure = c->procedure,
        .n_modifiers = c->n_modifiers,
        .units = c->units,
        .charge_cents = c->charge_cents,
        .service_date = c->service_date8,
    };
    for (int i = 0; i < c->n_diagnoses; i++)
        x.diagnoses[i] = c->diagnoses[i];
    for (int i = 0; i < c->n_modifiers; i++)
        x.modifiers[i] = c->modifiers[i];
    billing_x12_claim(b->x12, &x);
    char units[16], amount[32], mods[16] = "", dx[12 * 9] = "";
    snprintf(units, sizeof units, "%d", c->units);
    billing_amount(c->charge_cents, amount);
    for (int i = 0; i < c->n_modifiers; i++)
        snprintf(mods + strlen(mods), sizeof mods - strlen(mods), "%s%s", i ? ":" : "",
                 c->modifiers[i]);
    for (int i = 0; i < c->n_diagnoses; i++)
        snprintf(dx + strlen(dx), sizeof dx - strlen(dx), "%s%s", i ? ":" : "", c->diagnoses[i]);
    const char *fields[] = {c->id,          c->frequency,        c->original_id,
                            c->encounter_id, c->client_id,       c->last,
                            c->first,       c->medicaid_id,      c->dob,
                            c->service_date, c->procedure,       mods,
                            units,          amount,              c->place_of_service,
                            dx};
    int n = (int)(sizeof fields / sizeof fields[0]);
    for (int i = 0; i < n; i++)
        s_csv_field(&b->csv, fields[i] ? fields[i] : "", i == n - 1);
    b->claims++;
    b->total_cents += c->charge_cents;
    if (!strcmp(c->frequency, "7"))
        b->replacements++;
    else if (!strcmp(c->frequency, "8"))
        b->voids++;
    return s_flush(b, false);
}

/* ---- corrections queued for the payer ---------------------------------------------- */

static int s_corrections(s_batch_t *b, const char *batch_id)
{
    bc_call_t *call = b->call;
    const char *params[] = {call->principal->agency_id, b->cfg->payer_id, batch_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "billing_corrections_take",
        "UPDATE billing.claims c SET status = 'submitted', batch_id = $3::uuid, updated_at = now() "
        "WHERE c.agency_id = $1 AND c.payer_id = $2 AND c.frequency <> '1' "
        "AND c.status = 'ready' RETURNING " BILLING_CLAIM_COLUMNS,
        3, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        billing_claim_t c;
        if (billing_claim_from_row(call, res, i, &c) < 0)
            rc = -1;
        else
            rc = s_write(b, &c);
    }
    PQclear(res);
    return rc;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One chunk of encounters on its way: its rows, the questions asked about
 * them, the arena holding both answers and claims, and the claims. */
typedef struct {
    PGresult *res;
    billing_ask_t *ask;
    bc_arena_t *arena;
    billing_claim_t *claims;
    billing_reasons_t *why;
    int n;
} s_chunk_t;

/* Writes the chunk's claims the database took (ids: their encounters,
 * sorted; NULL: all), in the chunk's order. */
static int s_write_chunk(s_batch_t *b, const s_chunk_t *k, char **ids, int taken)
{
    int64_t parts0 = b->t.parts, t0 = bc_mono_us();
    for (int i = 0; i < k->n; i++) {
        char *key = k->claims[i].encounter_id;
        bool took = !ids || bsearch(&key, ids, (size_t)taken, sizeof *ids, s_cmp_str) != NULL;
        if (!took)
            continue; /* another original claim exists: never twice */
        if (k->why[i].n) {
            b->held++;
            continue;
        }
        if (s_write(b, &k->claims[i]) < 0)
            return -1;
    }
    b->t.write += bc_mono_us() - t0 - (b->t.parts - parts0);
    return 0;
}

static void s_chunk_drop(s_chunk_t *k)
{
    billing_ask_abandon(&k->ask);
    PQclear(k->res);
    k->res = NULL;
    k->claims = NULL;
    k->why = NULL;
    k->n = 0;
    bc_arena_reset(k->arena);
}

/* Fetches the next chunk into k, the units billed before to its clients,
 * and sends its questions to intake and notes. 1 when there is one, 0 at
 * the end, -1 with call->err set. */
static int s_chunk_fetch(s_batch_t *b, billing_prior_t *prior, s_chunk_t *k)
{
    bc_error_t err;
    int64_t t0 = bc_mono_us();
    k->res = bc_db_query(b->call->db, "FETCH " S_CHUNK_TEXT " FROM billing_encounters", 0,
                         NULL, &err);
    b->t.fetch += bc_mono_us() - t0;
    if (!k->res) {
        bc_call_fail_err(b->call, &err);
        return -1;
    }
    k->n = PQntuples(k->res);
    if (k->n == 0) {
        s_chunk_drop(k);
        return 0;
    }
    b->seen += k->n;
    k->ask = billing_ask(b->call, b->cfg, k->arena, k->res);
    if (!k->ask)
        return -1;
    /* Rows are in client order: the last row names the chunk's last
     * client. Fetched now, while the connection is free. */
    int64_t t2 = bc_mono_us();
    if (billing_prior_prefetch(prior, b->call, PQgetvalue(k->res, k->n - 1, 1)) < 0)
        return -1;
    b->t.prior += bc_mono_us() - t2;
    return 1;
}

/* Decides the chunk's claims (waiting for intake's and notes' answers)
 * and makes their stage rows: work of the service alone, no database. */
static int s_chunk_decide(s_batch_t *b, s_chunk_t *k, billing_prior_t *prior, int32_t today,
                          billing_buf_t *rows)
{
    if (billing_evaluate_answers(b->call, b->cfg, &k->ask, prior, today, &k->claims, &k->why,
                                 &b->t) < 0)
        return -1;
    int64_t t0 = bc_mono_us();
    int rc = billing_stage_rows(b->call, k->arena, k->claims, k->why, k->n, rows);
    b->t.stage += bc_mono_us() - t0;
    return rc;
}

/* Chunks on their way at once: the one being stored, the one being
 * decided, and the one whose questions intake and notes are answering. */
#define S_CHUNKS 3

/* Reads every encounter of the cursor a chunk at a time. While the
 * database stores a chunk's claims, the service decides the next chunk's
 * and seals their Medicaid IDs (intake and notes were asked about it a
 * chunk earlier, and are asked about the one after it now); then it
 * writes the stored chunk's claims to the file. */
static int s_chunks(s_batch_t *b, billing_prior_t *prior, int32_t today, const char *batch_id)
{
    s_chunk_t k[S_CHUNKS];
    for (int i = 0; i < S_CHUNKS; i++)
        k[i] = (s_chunk_t){.arena = bc_arena_new(256 * 1024)};
    billing_buf_t rows = {0};
    int cur = 0;
    int rc = s_chunk_fetch(b, prior, &k[0]);
    if (rc > 0 && s_chunk_decide(b, &k[0], prior, today, &rows) < 0)
        rc = -1;
    int more = rc > 0 ? s_chunk_fetch(b, prior, &k[1]) : 0;
    if (more < 0)
        rc = -1;
    while (rc > 0) {
        s_chunk_t *now = &k[cur], *next = &k[(cur + 1) % S_CHUNKS];
        s_chunk_t *after = &k[(cur + 2) % S_CHUNKS];
        int further = more > 0 ? s_chunk_fetch(b, prior, after) : 0;
        if (further < 0) {
            rc = -1;
            break;
        }
        bool fresh = true;
        for (int i = 0; fresh && i < now->n; i++)
            fresh = !now->claims[i].stored;
        int64_t t0 = bc_mono_us();
        if (billing_stage_send(b->call, b->cfg->payer_id, batch_id, &rows, fresh) < 0) {
            rc = -1;
            break;
        }
        b->t.copy += bc_mono_us() - t0;
        int decided = more > 0 ? s_chunk_decide(b, next, prior, today, &rows) : 0;
        t0 = bc_mono_us();
        char **ids;
        int taken = billing_stage_taken(b->call, now->arena, now->n, &ids);
        b->t.insert += bc_mono_us() - t0;
        if (decided < 0 || taken < 0 || s_write_chunk(b, now, ids, taken) < 0) {
            rc = -1;
            break;
        }
        s_chunk_drop(now);
        cur = (cur + 1) % S_CHUNKS;
        rc = more;
        more = further;
    }
    free(rows.p);
    for (int i = 0; i < S_CHUNKS; i++) {
        s_chunk_drop(&k[i]);
        bc_arena_destroy(&k[i].arena);
    }
    return rc;
}

/* ---- CreateBillingBatch -------------------------------------------------------------- */

static bc_code_t s_fail_batch(s_batch_t *b, bc_code_t code)
{
    billing_x12_destroy(&b->x12);
    free(b->csv.p);
    bc_db_rollback(b->call->db);
    return code;
}

static bc_code_t s_batch_create(bc_call_t *call, const ProtobufCMessage *in,
                                ProtobufCMessage **out)
{
    const Beacon__Billing__CreateBatchRequest *req =
        (const Beacon__Billing__CreateBatchRequest *)in;
    if (!bc_call_has_role(call, "billing"))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "batches are for billing staff");
    if (!billing_payer_id_valid(req->payer_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "payer_id",
                            "payer_id must be 1 to 80 letters, digits and dashes");
    int32_t from = billing_day(req->from), to = billing_day(req->to);
    if (from == INT32_MIN)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "from", "from must be a date (YYYY-MM-DD)");
    if (to == INT32_MIN)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "to", "to must be a date (YYYY-MM-DD)");
    if (to < from)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "to", "to must not be before from");
    if (to - from >= S_MAX_RANGE_DAYS)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "to",
                            "a batch covers at most %d days of service", S_MAX_RANGE_DAYS);
    int32_t today = (int32_t)(bc_now_ms() / 1000 / 86400);
    if (from > today)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "from",
                            "from is in the future: nothing can have happened yet");
    const char *actor = *call->principal->staff_id ? call->principal->staff_id
                                                   : call->principal->api_key_id;
    bc_error_t err;
    /* One batch of an agency at a time (a second waits for the first to
     * end, then reads what is left): no other transaction then writes
     * original claims of the agency's encounters while this one does, so
     * new claims go in with plain inserts (billing_stage.c). */
    const char *lock_params[] = {call->principal->agency_id};
    if (bc_db_begin(call->db, &err) < 0 ||
        bc_db_set_local(call->db, "beacon.purpose", "billing", &err) < 0 ||
        bc_db_command(call->db,
                      "SELECT pg_advisory_xact_lock(hashtextextended('billing.batch:' || $1, 0))",
                      1, lock_params, &err) < 0) {
        bc_db_rollback(call->db);
        return bc_call_fail_err(call, &err);
    }
    Beacon__Billing__BillingConfig *cfg = billing_config_load(call, req->payer_id);
    if (!cfg) {
        bc_db_rollback(call->db);
        if (call->err.code == BC_NOT_FOUND)
            call->err.code = BC_FAILED_PRECONDITION;
        return call->err.code;
    }
    char batch_id[37];
    bc_uuid_v4(batch_id);
    PGresult *res = bc_db_prepared(call->db, "billing_control",
                                   "SELECT nextval('billing.interchange_control'), "
                                   "to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD'), "
                                   "to_char(now() AT TIME ZONE 'UTC', 'HH24MI')",
                                   0, NULL, &err);
    if (!res) {
        bc_db_rollback(call->db);
        return bc_call_fail_err(call, &err);
    }
    int64_t control = atoll(PQgetvalue(res, 0, 0));
    char date8[9], time4[5];
    snprintf(date8, sizeof date8, "%s", PQgetvalue(res, 0, 1));
    snprintf(time4, sizeof time4, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);

    billing_envelope_strings_t names;
    billing_envelope_prepare(call->arena, cfg, &names);
    char reference[33];
    billing_x12_id(batch_id, reference, sizeof reference);
    billing_x12_envelope_t env = {
        .control_number = control,
        .date8 = date8,
        .time4 = time4,
        .test = cfg->usage_indicator_test,
        .reference = reference,
        .submitter_id = cfg->submitter_id,
        .submitter_name = names.submitter_name,
        .contact_name = names.contact_name,
        .contact_phone = cfg->submitter_contact_phone,
        .receiver_id = cfg->receiver_id,
        .receiver_name = names.receiver_name,
        .provider_name = names.provider_name,
        .provider_npi = cfg->billing_provider_npi,
        .provider_taxonomy = cfg->billing_provider_taxonomy,
        .provider_tax_id = cfg->billing_provider_tax_id,
        .provider_line1 = names.line1,
        .provider_line2 = names.line2,
        .provider_city = names.city,
        .provider_state = cfg->billing_provider_address->state,
        .provider_postal = cfg->billing_provider_address->postal_code,
        .payer_name = names.payer_name,
        .payer_id = names.payer_id,
        .supervising_last = names.supervising_last,
        .supervising_first = names.supervising_first,
        .supervising_npi = cfg->supervising_npi,
        .claims_per_transaction = 5000,
    };
    s_batch_t b = {.call = call, .cfg = cfg, .x12 = billing_x12_new(&env)};
    b.store.call = call;
    b.store.batch_id = batch_id;
    b.store.us = &b.t.parts;
    billing_buf_str(&b.csv, S_CSV_HEADER);

    if (s_corrections(&b, batch_id) < 0)
        return s_fail_batch(&b, call->err.code);

    char from_s[11], to_s[11];
    snprintf(from_s, sizeof from_s, "%s", req->from);
    snprintf(to_s, sizeof to_s, "%s", req->to);
    const char *params[] = {call->principal->agency_id, from_s, to_s};
    if (billing_stage_create(call) < 0)
        return s_fail_batch(&b, call->err.code);
    /* The cursor is read to the end: plan it for the whole result, and
     * never as a nested loop, which (with billing.claims estimated small)
     * scanned the claims once per encounter, the claims this batch adds
     * included: quadratic. A hash join reads them once. */
    if (bc_db_set_local(call->db, "cursor_tuple_fraction", "1", &err) < 0 ||
        bc_db_set_local(call->db, "enable_nestloop", "off", &err) < 0)
        return s_fail_batch(&b, bc_call_fail_err(call, &err));
    /* The encounters of the range at the caller's sites (row security:
     * billing's policy, this transaction only) with no claim or a held
     * one. Service dates are the site's local dates. Client by client:
     * a chunk then names a few dozen clients instead of up to 2,000, and
     * the units billed before are read alongside in the same order. */
    res = bc_db_query(
        call->db,
        "DECLARE billing_encounters NO SCROLL CURSOR FOR "
        "SELECT " BILLING_ENCOUNTER_COLUMNS ", coalesce(c.id::text, '') "
        "FROM scheduling.encounters e "
        "JOIN identity.site_directory d ON d.site_id = e.site_id "
        "LEFT JOIN billing.claims c ON c.encounter_id = e.id AND c.frequency = '1' "
        "WHERE e.agency_id = $1 "
        "AND e.starts_at >= ($2::date - 1)::timestamp AT TIME ZONE 'UTC' "
        "AND e.starts_at < ($3::date + 2)::timestamp AT TIME ZONE 'UTC' "
        "AND (e.starts_at AT TIME ZONE d.time_zone)::date BETWEEN $2::date AND $3::date "
        "AND (c.id IS NULL OR c.status = 'held') "
        "ORDER BY e.client_id, e.starts_at, e.id",
        3, params, &err);
    if (!res)
        return s_fail_batch(&b, bc_call_fail_err(call, &err));
    PQclear(res);
    billing_prior_t *prior =
        billing_prior_open(call, call->principal->agency_id, from_s, to_s,
                           cfg->max_units_per_authorization > 0);
    if (!prior)
        return s_fail_batch(&b, call->err.code);
    int rc = s_chunks(&b, prior, today, batch_id);
    billing_prior_close(&prior);
    if (rc < 0)
        return s_fail_batch(&b, call->err.code);
    int64_t seen = b.seen;
    res = bc_db_query(call->db, "CLOSE billing_encounters", 0, NULL, &err);
    if (res)
        PQclear(res);

    if (b.claims == 0) {
        /* Nothing to send: keep the holds (they say what is missing). */
        int64_t held = b.held;
        billing_x12_destroy(&b.x12);
        free(b.csv.p);
        if (held > 0 && bc_call_commit(call) < 0)
            return call->err.code;
        if (held == 0)
            bc_db_rollback(call->db);
        if (seen == 0)
            return bc_call_fail(call, BC_FAILED_PRECONDITION, "from",
                                "nothing to bill: no encounter of %s to %s at your sites is "
                                "waiting for a claim, and no correction is queued",
                                from_s, to_s);
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "from",
                            "nothing to bill: every one of the %lld encounters of %s to %s "
                            "is held (GET /api/v1/billing/claims?status=held says why)",
                            (long long)held, from_s, to_s);
    }
    bc_info("billing batch %s: %lld claims, %lld held of %lld encounters; in ms: reading "
            "them %lld, waiting for intake and notes %lld, reading units billed %lld, "
            "evaluating %lld, sealing claims %lld, copying them %lld, waiting for their insert "
            "%lld, writing the file %lld, sealing and storing its parts %lld",
            batch_id, (long long)b.claims, (long long)b.held, (long long)seen,
            (long long)(b.t.fetch / 1000), (long long)(b.t.answers / 1000),
            (long long)(b.t.prior / 1000), (long long)(b.t.evaluate / 1000),
            (long long)(b.t.stage / 1000), (long long)(b.t.copy / 1000),
            (long long)(b.t.insert / 1000),
            (long long)(b.t.write / 1000), (long long)(b.t.parts / 1000));
    billing_x12_finish(b.x12);
    if (s_flush(&b, true) < 0)
        return s_fail_batch(&b, call->err.code);
    char control_s[24], claims_s[24], total_s[24], held_s[24], parts_s[16], csv_s[16],
        bytes_s[24], repl_s[24], void_s[24];
    snprintf(control_s, sizeof control_s, "%lld", (long long)control);
    snprintf(claims_s, sizeof claims_s, "%lld", (long long)b.claims);
    snprintf(total_s, sizeof total_s, "%lld", (long long)b.total_cents);
    snprintf(held_s, sizeof held_s, "%lld", (long long)b.held);
    snprintf(parts_s, sizeof parts_s, "%d", b.store.parts[0]);
    snprintf(csv_s, sizeof csv_s, "%d", b.store.parts[1]);
    snprintf(bytes_s, sizeof bytes_s, "%lld", (long long)b.store.bytes);
    snprintf(repl_s, sizeof repl_s, "%lld", (long long)b.replacements);
    snprintf(void_s, sizeof void_s, "%lld", (long long)b.voids);
    billing_x12_destroy(&b.x12);
    free(b.csv.p);
    const char *bparams[] = {batch_id, call->principal->agency_id, req->payer_id, from_s, to_s,
                             control_s, claims_s, total_s, held_s, parts_s, csv_s, bytes_s,
                             actor, repl_s, void_s};
    res = bc_db_prepared(
        call->db, "billing_batch_add",
        "INSERT INTO billing.batches (id, agency_id, payer_id, from_date, to_date, "
        "  control_number, claim_count, total_cents, held_count, parts, csv_parts, bytes, "
        "  site_ids, created_by, replacement_count, void_count) "
        "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
        "  coalesce((SELECT array_agg(DISTINCT site_id) FROM billing.claims "
        "            WHERE batch_id = $1::uuid), '{}'), $13, $14, $15 "
        "RETURNING " BILLING_BATCH_COLUMNS,
        15, bparams, &err);
    if (!res) {
        bc_db_rollback(call->db);
        return bc_call_fail_err(call, &err);
    }
    Beacon__Billing__Batch *batch = billing_batch_from_row(call, res, 0);
    PQclear(res);
    char detail[256];
    snprintf(detail, sizeof detail,
             "{\"payer_id\":\"%s\",\"claims\":%lld,\"control_number\":%lld}", req->payer_id,
             (long long)b.claims, (long long)control);
    bc_audit_event_t ev = {.action = BC_AUDIT_EXPORT, .resource_type = "billing_batch",
                           .resource_id = batch_id, .purpose = "payment", .detail = detail};
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &batch->base;
    return BC_OK;
}

bc_code_t billing_batch_create(bc_call_t *call, const ProtobufCMessage *in,
                               ProtobufCMessage **out)
{
    bc_code_t code = s_batch_create(call, in, out);
    /* A batch works in some 12 MB whatever its size (two chunks of rows and
     * answers, a part of the 837P and of the CSV, each sealed), freed when
     * it ends. The process keeps up to 32 MB free in each thread's heap for
     * the next request (bc_process.c), which suits requests that come all
     * the time; batches are rare, and one served by another worker thread
     * than the last would add its 12 MB to what that one kept: the peak
     * grew with every worker that had run a batch (28 to 101 MB over five
     * batches). Handing the free memory back after each batch keeps the
     * service's peak where one batch takes it. */
    malloc_trim(0);
    return code;
}
