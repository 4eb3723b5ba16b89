/*  billing_stage: a chunk's claims stored in billing.claims, exactly once.
 *
 *  The claims of a chunk (held ones included, with their reasons) are
 *  made into COPY text for a temporary stage as their Medicaid IDs are
 *  sealed (associated data billing.claims.medicaid_id:<claim id>), work of
 *  the service alone; then copied in, and one statement takes them into
 *  billing.claims, sent without waiting: the batch decides the next chunk
 *  while the database stores this one. The unique index
 *  claims_one_original refuses a second original claim for an encounter,
 *  whatever the payer. A batch holds its agency's batch lock, so no other
 *  one writes original claims meanwhile: a chunk none of whose claims is
 *  stored yet goes in with a plain insert (a conflict would fail the batch
 *  whole, never bill twice); otherwise held claims are updated in place
 *  and an encounter with another original claim is left out, so the batch
 *  writes to its file only the rows the database took.
 *
 *  Also the growing text buffer the batch's files are written with.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_crypt.h"
#include "bc_util.h"
#include "billing_internal.h"

/* Staged claims go to the database in pieces of this size as they are
 * made. */
#define S_COPY_SEND_BYTES (64 * 1024)

void billing_buf_add(billing_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = bc_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void billing_buf_str(billing_buf_t *b, const char *s)
{
    billing_buf_add(b, s, strlen(s));
}

/* Appends v to a COPY text row, escaped (backslash, tab, newline, CR). */
static void s_copy_text(billing_buf_t *b, const char *v)
{
    for (;;) {
        size_t plain = strcspn(v, "\\\t\n\r");
        billing_buf_add(b, v, plain); /* the run needing no escape, at once */
        v += plain;
        switch (*v++) {
        case '\0': return;
        case '\\': billing_buf_add(b, "\\\\", 2); break;
        case '\t': billing_buf_add(b, "\\t", 2); break;
        case '\n': billing_buf_add(b, "\\n", 2); break;
        default: billing_buf_add(b, "\\r", 2); break;
        }
    }
}

static void s_copy_col(billing_buf_t *b, const char *v, bool last)
{
    if (!v)
        billing_buf_add(b, "\\N", 2);
    else
        s_copy_text(b, v);
    billing_buf_add(b, last ? "\n" : "\t", 1);
}

/* A text[] literal of n strings ("{\"a\",\"b\"}"), quotes and backslashes escaped. */
static char *s_array(bc_arena_t *arena, const char *const *v, int n)
{
    billing_buf_t b = {0};
    billing_buf_add(&b, "{", 1);
    for (int i = 0; i < n; i++) {
        billing_buf_add(&b, i ? ",\"" : "\"", i ? 2 : 1);
        for (const char *p = v[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                billing_buf_add(&b, "\\", 1);
            billing_buf_add(&b, p, 1);
        }
        billing_buf_add(&b, "\"", 1);
    }
    billing_buf_add(&b, "}", 1);
    char *out = bc_arena_strdup(arena, b.p);
    free(b.p);
    return out;
}

/* Empties the stage and starts copying a chunk's claims into it. */
static int s_copy_begin(bc_call_t *call)
{
    bc_error_t err;
    if (bc_db_command(call->db, "TRUNCATE billing_stage", 0, NULL, &err) < 0) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    PGconn *conn = bc_db_conn(call->db);
    PGresult *res = PQexec(conn, "COPY billing_stage FROM STDIN");
    int rc = PQresultStatus(res) == PGRES_COPY_IN ? 0 : -1;
    PQclear(res);
    if (rc < 0) {
        bc_call_fail(call, BC_INTERNAL, "", "claims cannot be staged");
        bc_error_detail(&call->err, "%s", PQerrorMessage(conn));
    }
    return rc;
}

/* Ends the copy (aborting it when ok is false). 0, or -1 with call->err
 * set unless it already was. */
static int s_copy_end(bc_call_t *call, bool ok)
{
    PGconn *conn = bc_db_conn(call->db);
    bool sent = PQputCopyEnd(conn, ok ? NULL : "the claims could not be sealed") == 1;
    int rc = ok && sent ? 0 : -1;
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = -1;
        PQclear(res);
    }
    if (rc < 0 && ok) {
        bc_call_fail(call, BC_INTERNAL, "", "claims cannot be staged");
        bc_error_detail(&call->err, "%s", PQerrorMessage(conn));
    }
    return rc;
}

/* The stage's claims into billing.claims ($1 agency, $2 payer, $3 batch). */
#define S_CLAIMS_INSERT                                                                            \
    "INSERT INTO billing.claims AS c (id, agency_id, site_id, payer_id, encounter_id, "          \
    "  client_id, frequency, status, hold_reasons, service_date, minutes, place_of_service, "    \
    "  procedure, modifiers, units, charge_cents, diagnoses, subscriber_last, "                  \
    "  subscriber_first, subscriber_dob, subscriber_sex, subscriber_address, "                   \
    "  subscriber_city, subscriber_state, subscriber_postal, medicaid_id_enc, "                  \
    "  medicaid_id_last4, consent_id, batch_id) "                                                \
    "SELECT s.id, $1, s.site_id, $2, s.encounter_id, s.client_id, '1', s.status, "              \
    "  s.hold_reasons, s.service_date, s.minutes, s.place_of_service, s.procedure, "            \
    "  s.modifiers, s.units, s.charge_cents, s.diagnoses, s.subscriber_last, "                  \
    "  s.subscriber_first, s.subscriber_dob, s.subscriber_sex, s.subscriber_address, "          \
    "  s.subscriber_city, s.subscriber_state, s.subscriber_postal, s.medicaid_id_enc, "         \
    "  s.medicaid_id_last4, s.consent_id, "                                                     \
    "  CASE WHEN s.status = 'submitted' THEN $3::uuid END FROM billing_stage s "

#define S_CLAIMS_HELD                                                                              \
    "ON CONFLICT (encounter_id) WHERE frequency = '1' DO UPDATE SET "                           \
    "  payer_id = excluded.payer_id, status = excluded.status, "                                 \
    "  hold_reasons = excluded.hold_reasons, service_date = excluded.service_date, "             \
    "  minutes = excluded.minutes, place_of_service = excluded.place_of_service, "               \
    "  procedure = excluded.procedure, modifiers = excluded.modifiers, "                         \
    "  units = excluded.units, charge_cents = excluded.charge_cents, "                           \
    "  diagnoses = excluded.diagnoses, subscriber_last = excluded.subscriber_last, "             \
    "  subscriber_first = excluded.subscriber_first, "                                           \
    "  subscriber_dob = excluded.subscriber_dob, subscriber_sex = excluded.subscriber_sex, "     \
    "  subscriber_address = excluded.subscriber_address, "                                       \
    "  subscriber_city = excluded.subscriber_city, "                                             \
    "  subscriber_state = excluded.subscriber_state, "                                           \
    "  subscriber_postal = excluded.subscriber_postal, "                                         \
    "  medicaid_id_enc = excluded.medicaid_id_enc, "                                             \
    "  medicaid_id_last4 = excluded.medicaid_id_last4, consent_id = excluded.consent_id, "       \
    "  batch_id = excluded.batch_id, updated_at = now() "                                        \
    "WHERE c.status = 'held' AND c.id = excluded.id "                                            \
    "RETURNING c.encounter_id::text"

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int billing_stage_create(bc_call_t *call)
{
    bc_error_t err;
    if (bc_db_command(call->db,
                      "CREATE TEMP TABLE IF NOT EXISTS billing_stage (id uuid, site_id uuid, "
                      "  encounter_id uuid, client_id uuid, status text, hold_reasons text[], "
                      "  service_date date, minutes int, place_of_service text, procedure text, "
                      "  modifiers text[], units int, charge_cents bigint, diagnoses text[], "
                      "  subscriber_last text, subscriber_first text, subscriber_dob date, "
                      "  subscriber_sex text, subscriber_address text, subscriber_city text, "
                      "  subscriber_state text, subscriber_postal text, medicaid_id_enc text, "
                      "  medicaid_id_last4 text, consent_id uuid) ON COMMIT DROP",
                      0, NULL, &err) < 0) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    return 0;
}

int billing_row_text(bc_call_t *call, const billing_claim_t *c, const char *claim_id,
                     billing_row_text_t *t)
{
    snprintf(t->minutes, sizeof t->minutes, "%d", c->minutes);
    snprintf(t->units, sizeof t->units, "%d", c->units);
    snprintf(t->cents, sizeof t->cents, "%lld", (long long)c->charge_cents);
    size_t mlen = strlen(c->medicaid_id);
    t->last4 = mlen > 4 ? c->medicaid_id + mlen - 4 : c->medicaid_id;
    t->medicaid_enc = NULL;
    if (!mlen)
        return 0;
    char aad[96];
    bc_error_t err;
    snprintf(aad, sizeof aad, "billing.claims.medicaid_id:%s", claim_id);
    if (bc_field_encrypt(billing_keys(call), c->medicaid_id, mlen, aad, &t->medicaid_enc,
                         &err) < 0) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    return 0;
}

void billing_row_text_free(billing_row_text_t *t)
{
    free(t->medicaid_enc);
    t->medicaid_enc = NULL;
}

int billing_stage_rows(bc_call_t *call, bc_arena_t *arena, const billing_claim_t *claims,
                       const billing_reasons_t *why, int n, billing_buf_t *rows)
{
    rows->len = 0;
    for (int i = 0; i < n; i++) {
        const billing_claim_t *c = &claims[i];
        billing_row_text_t t;
        if (billing_row_text(call, c, c->id, &t) < 0)
            return -1;
        const char *cols[] = {
            c->id, c->site_id, c->encounter_id, c->client_id,
            why[i].n ? "held" : "submitted",
            s_array(arena, why[i].reasons, why[i].n),
            c->service_date, t.minutes, c->place_of_service, c->procedure,
            s_array(arena, (const char *const *)c->modifiers, c->n_modifiers), t.units, t.cents,
            s_array(arena, (const char *const *)c->diagnoses, c->n_diagnoses),
            c->last ? c->last : "", c->first ? c->first : "", c->dob ? c->dob : NULL,
            c->sex, c->address ? c->address : "", c->city ? c->city : "",
            c->state ? c->state : "", c->postal ? c->postal : "", t.medicaid_enc, t.last4,
            c->consent_id};
        int ncols = (int)(sizeof cols / sizeof cols[0]);
        for (int k = 0; k < ncols; k++)
            s_copy_col(rows, cols[k], k == ncols - 1);
        billing_row_text_free(&t);
    }
    return 0;
}

/* Sends rows in pieces (the database parses one while the next is read). */
static bool s_copy_rows(bc_call_t *call, const billing_buf_t *rows)
{
    PGconn *conn = bc_db_conn(call->db);
    for (size_t off = 0; off < rows->len; off += S_COPY_SEND_BYTES) {
        size_t len = rows->len - off < S_COPY_SEND_BYTES ? rows->len - off : S_COPY_SEND_BYTES;
        if (PQputCopyData(conn, rows->p + off, (int)len) != 1) {
            bc_call_fail(call, BC_INTERNAL, "", "claims cannot be staged");
            bc_error_detail(&call->err, "%s", PQerrorMessage(conn));
            return false;
        }
    }
    return true;
}

int billing_stage_send(bc_call_t *call, const char *payer_id, const char *batch_id,
                       const billing_buf_t *rows, bool fresh)
{
    if (s_copy_begin(call) < 0)
        return -1;
    if (s_copy_end(call, s_copy_rows(call, rows)) < 0)
        return -1;
    const char *params[] = {call->principal->agency_id, payer_id, batch_id};
    PGconn *conn = bc_db_conn(call->db);
    /* Fresh (no claim of the chunk stored yet, and no other batch of the
     * agency running: its lock): a plain insert takes every row, without
     * probing claims_one_original for a conflict first; the index still
     * refuses a second original (the batch then fails whole). Otherwise
     * held claims are updated in place. */
    if (PQsendQueryParams(conn, fresh ? S_CLAIMS_INSERT : S_CLAIMS_INSERT S_CLAIMS_HELD, 3, NULL,
                          params, NULL, NULL, 0) != 1) {
        bc_call_fail(call, BC_INTERNAL, "", "claims cannot be stored");
        bc_error_detail(&call->err, "%s", PQerrorMessage(conn));
        return -1;
    }
    return 0;
}

int billing_stage_taken(bc_call_t *call, bc_arena_t *arena, int n, char ***ids_out)
{
    PGconn *conn = bc_db_conn(call->db);
    PGresult *res, *last = NULL;
    bool failed = false;
    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && !failed) {
            failed = true;
            bc_call_fail(call, BC_INTERNAL, "", "claims cannot be stored");
            bc_error_detail(&call->err, "%s", PQresultErrorMessage(res));
        }
        PQclear(last);
        last = res;
    }
    *ids_out = NULL;
    if (failed || !last) {
        PQclear(last);
        return -1;
    }
    if (PQresultStatus(last) == PGRES_COMMAND_OK) { /* fresh: every row */
        PQclear(last);
        return n;
    }
    int taken = PQntuples(last);
    char **ids = bc_arena_alloc(arena, ((size_t)taken + 1) * sizeof(char *));
    for (int i = 0; i < taken; i++)
        ids[i] = bc_arena_strdup(arena, PQgetvalue(last, i, 0));
    PQclear(last);
    qsort(ids, (size_t)taken, sizeof *ids, s_cmp_str);
    *ids_out = ids;
    return taken;
}
