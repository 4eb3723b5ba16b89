/*  billing_claims: claims as the billing role sees them, their status from
 *  the payer (by hand or a remittance CSV), corrections (replacement 7,
 *  void 8). The batches' stored files are read in billing_files.c.
 *
 *  What a claim shows: ids, codes, units, amounts, dates, hold reasons, the
 *  subscriber's name as billed and the last four characters of the Medicaid
 *  ID; never note text (billing never receives any). Every claim read is
 *  audited (purpose payment), as is every change.
 *
 *  Status: a submitted claim becomes accepted or rejected (the payer's
 *  front end), then paid or denied (adjudication); paid and denied may
 *  also come straight from a remittance. Corrections: a claim that went out
 *  (submitted, accepted, rejected, paid, denied) may be replaced: the
 *  encounter is evaluated again now (note, diagnoses, consent, limits, the
 *  payer's current configuration) and, when billable, a replacement claim
 *  (frequency 7, REF*F8 naming what it replaces: the payer's claim number
 *  when known, else our claim id) waits for the next batch; the claim it
 *  replaces becomes replaced. A void (8) repeats what was billed and marks
 *  the claim voided. At most one correction of a claim waits at a time
 *  (unique index).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bc_crypt.h"
#include "bc_util.h"
#include "billing.h"
#include "billing_internal.h"
#include "scheduling.h"

#define S_NULL(s) (*(s) ? (s) : NULL)

void billing_claim_finish_ids(bc_arena_t *arena, billing_claim_t *c)
{
    (void)arena;
    billing_x12_id(c->id, c->x12_id, sizeof c->x12_id);
    snprintf(c->service_date8, sizeof c->service_date8, "%.4s%.2s%.2s", c->service_date,
             c->service_date + 5, c->service_date + 8);
}

static char **s_json_strings(bc_arena_t *arena, const char *text, size_t *n, size_t max)
{
    json_t *a = json_loads(text, 0, NULL);
    *n = json_array_size(a);
    if (*n > max)
        *n = max;
    char **out = bc_arena_alloc(arena, (*n + 1) * sizeof(char *));
    for (size_t i = 0; i < *n; i++) {
        const char *v = json_string_value(json_array_get(a, i));
        out[i] = bc_arena_strdup(arena, v ? v : "");
    }
    json_decref(a);
    return out;
}

static char *s_val(bc_call_t *call, PGresult *res, int row, int col)
{
    return bc_arena_strdup(call->arena, PQgetvalue(res, row, col));
}

int billing_claim_from_row(bc_call_t *call, PGresult *res, int row, billing_claim_t *c)
{
    memset(c, 0, sizeof *c);
    c->id = s_val(call, res, row, BC_ID);
    c->encounter_id = s_val(call, res, row, BC_ENCOUNTER);
    c->client_id = s_val(call, res, row, BC_CLIENT);
    c->site_id = s_val(call, res, row, BC_SITE);
    c->status = s_val(call, res, row, BC_STATUS);
    c->frequency = s_val(call, res, row, BC_FREQUENCY);
    c->original_id = s_val(call, res, row, BC_ORIGINAL);
    c->original_ref = s_val(call, res, row, BC_ORIGINAL_REF);
    c->service_date = s_val(call, res, row, BC_DATE);
    c->minutes = atoi(PQgetvalue(res, row, BC_MINUTES));
    c->place_of_service = s_val(call, res, row, BC_POS);
    c->procedure = s_val(call, res, row, BC_PROCEDURE);
    size_t n;
    char **mods = s_json_strings(call->arena, PQgetvalue(res, row, BC_MODIFIERS), &n, 4);
    for (size_t i = 0; i < n; i++)
        c->modifiers[c->n_modifiers++] = mods[i];
    c->units = atoi(PQgetvalue(res, row, BC_UNITS));
    c->charge_cents = atoll(PQgetvalue(res, row, BC_CHARGE));
    char **dx = s_json_strings(call->arena, PQgetvalue(res, row, BC_DIAGNOSES), &n, 12);
    for (size_t i = 0; i < n; i++)
        c->diagnoses[c->n_diagnoses++] = dx[i];
    c->last = s_val(call, res, row, BC_LAST);
    c->first = s_val(call, res, row, BC_FIRST);
    c->dob = s_val(call, res, row, BC_DOB);
    c->dob8 = bc_arena_printf(call->arena, "%.4s%.2s%.2s", c->dob, c->dob + 5, c->dob + 8);
    c->sex = s_val(call, res, row, BC_SEX);
    c->address = s_val(call, res, row, BC_ADDRESS);
    c->city = s_val(call, res, row, BC_CITY);
    c->state = s_val(call, res, row, BC_STATE);
    c->postal = s_val(call, res, row, BC_POSTAL);
    c->consent_id = s_val(call, res, row, BC_CONSENT);
    billing_claim_finish_ids(call->arena, c);
    c->medicaid_id = "";
    const char *enc = PQgetvalue(res, row, BC_MEDICAID);
    if (*enc) {
        char aad[96], *plain = NULL;
        size_t len = 0;
        bc_error_t err;
        snprintf(aad, sizeof aad, "billing.claims.medicaid_id:%s", c->id);
        if (bc_field_decrypt(billing_keys(call), enc, aad, &plain, &len, &err) < 0) {
            bc_call_fail(call, BC_DATA_LOSS, "", "the Medicaid ID billed on claim %s cannot be "
                                                 "read", c->id);
            return -1;
        }
        c->medicaid_id = bc_arena_strdup(call->arena, plain);
        bc_field_plaintext_free(&plain, len);
    }
    return 0;
}

Beacon__Billing__Claim *billing_claim_message(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Billing__Claim *m = bc_arena_alloc(call->arena, sizeof *m);
    beacon__billing__claim__init(m);
    m->id = s_val(call, res, row, BC_ID);
    m->encounter_id = s_val(call, res, row, BC_ENCOUNTER);
    m->client_id = s_val(call, res, row, BC_CLIENT);
    m->site_id = s_val(call, res, row, BC_SITE);
    m->payer_id = s_val(call, res, row, BC_PAYER);
    m->status = s_val(call, res, row, BC_STATUS);
    m->frequency = s_val(call, res, row, BC_FREQUENCY);
    m->original_claim_id = s_val(call, res, row, BC_ORIGINAL);
    m->hold_reasons = s_json_strings(call->arena, PQgetvalue(res, row, BC_REASONS),
                                     &m->n_hold_reasons, 64);
    Beacon__Billing__ClaimLine *l = bc_arena_alloc(call->arena, sizeof *l);
    beacon__billing__claim_line__init(l);
    l->procedure = s_val(call, res, row, BC_PROCEDURE);
    l->modifiers = s_json_strings(call->arena, PQgetvalue(res, row, BC_MODIFIERS),
                                  &l->n_modifiers, 4);
    l->units = atoi(PQgetvalue(res, row, BC_UNITS));
    l->charge_cents = atoi(PQgetvalue(res, row, BC_CHARGE));
    l->service_date = s_val(call, res, row, BC_DATE);
    l->place_of_service = s_val(call, res, row, BC_POS);
    m->line = l;
    m->diagnoses = s_json_strings(call->arena, PQgetvalue(res, row, BC_DIAGNOSES),
                                  &m->n_diagnoses, 12);
    m->batch_id = s_val(call, res, row, BC_BATCH);
    m->paid_cents = atoi(PQgetvalue(res, row, BC_PAID));
    m->payer_claim_number = s_val(call, res, row, BC_PAYER_NUMBER);
    m->status_reason = s_val(call, res, row, BC_STATUS_REASON);
    const char *last = PQgetvalue(res, row, BC_LAST), *first = PQgetvalue(res, row, BC_FIRST);
    m->subscriber_name =
        *last ? bc_arena_printf(call->arena, "%s, %s", last, first) : bc_arena_strdup(call->arena, "");
    m->medicaid_id_last4 = s_val(call, res, row, BC_LAST4);
    m->created_at = s_val(call, res, row, BC_CREATED);
    m->updated_at = s_val(call, res, row, BC_UPDATED);
    m->minutes = s_val(call, res, row, BC_MINUTES);
    return m;
}

Beacon__Billing__Batch *billing_batch_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Billing__Batch *b = bc_arena_alloc(call->arena, sizeof *b);
    beacon__billing__batch__init(b);
    b->id = s_val(call, res, row, 0);
    b->payer_id = s_val(call, res, row, 1);
    b->from = s_val(call, res, row, 2);
    b->to = s_val(call, res, row, 3);
    b->interchange_control_number = atoll(PQgetvalue(res, row, 4));
    b->claim_count = atoi(PQgetvalue(res, row, 5));
    b->total_cents = atoi(PQgetvalue(res, row, 6));
    b->held_count = atoi(PQgetvalue(res, row, 7));
    b->parts = atoi(PQgetvalue(res, row, 8));
    b->csv_parts = atoi(PQgetvalue(res, row, 9));
    b->bytes = atoll(PQgetvalue(res, row, 10));
    b->created_at = s_val(call, res, row, 11);
    b->created_by = s_val(call, res, row, 12);
    b->replacement_count = atoi(PQgetvalue(res, row, 13));
    b->void_count = atoi(PQgetvalue(res, row, 14));
    return b;
}

bc_code_t billing_need_role(bc_call_t *call)
{
    if (!bc_call_has_role(call, "billing"))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "claims are for billing staff");
    return BC_OK;
}

/* Audits reading claims (each its client's record, purpose payment). */
static int s_audit_claims(bc_call_t *call, PGresult *res, const char *action)
{
    for (int i = 0; i < PQntuples(res); i++) {
        bc_audit_event_t ev = {.action = action,
                               .resource_type = "claim",
                               .resource_id = PQgetvalue(res, i, BC_ID),
                               .client_id = PQgetvalue(res, i, BC_CLIENT),
                               .site_id = PQgetvalue(res, i, BC_SITE),
                               .purpose = "payment"};
        if (!strcmp(action, BC_AUDIT_READ) ? bc_call_audit_read(call, &ev) < 0
                                           : bc_call_audit_write(call, &ev) < 0)
            return -1;
    }
    return 0;
}

/* ---- reading claims --------------------------------------------------------------- */

static const char *const s_statuses[] = {"held",    "ready",  "submitted", "accepted", "rejected",
                                         "paid",    "denied", "replaced",  "voided",   NULL};

bc_code_t billing_claims_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Billing__ListClaimsRequest *req = (const Beacon__Billing__ListClaimsRequest *)in;
    bc_code_t code = billing_need_role(call);
    if (code != BC_OK)
        return code;
    if (*req->status && !sched_one_of(req->status, s_statuses))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "status must be one of held, ready, submitted, accepted, rejected, "
                            "paid, denied, replaced, voided");
    if (*req->payer_id && !billing_payer_id_valid(req->payer_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "payer_id", "payer_id is malformed");
    const char *uuids[] = {req->batch_id, req->encounter_id, req->cursor};
    const char *uuid_names[] = {"batch_id", "encounter_id", "cursor"};
    for (int i = 0; i < 3; i++)
        if (*uuids[i] && !bc_is_uuid(uuids[i]))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, uuid_names[i], "%s must be a UUID",
                                uuid_names[i]);
    int limit = req->limit ? req->limit : 100;
    if (limit < 1 || limit > 500)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "limit", "limit must be 1 to 500");
    char fetch[16];
    snprintf(fetch, sizeof fetch, "%d", limit + 1);
    const char *params[] = {call->principal->agency_id, S_NULL(req->status),
                            S_NULL(req->payer_id),      S_NULL(req->batch_id),
                            S_NULL(req->encounter_id),  S_NULL(req->cursor),
                            fetch};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "billing_claims_list",
        "SELECT " BILLING_CLAIM_COLUMNS " FROM billing.claims c WHERE c.agency_id = $1 "
        "AND ($2::text IS NULL OR c.status = $2) AND ($3::text IS NULL OR c.payer_id = $3) "
        "AND ($4::uuid IS NULL OR c.batch_id = $4) AND ($5::uuid IS NULL OR c.encounter_id = $5) "
        "AND ($6::uuid IS NULL OR (c.created_at, c.id) > "
        "     (SELECT k.created_at, k.id FROM billing.claims k WHERE k.id = $6)) "
        "ORDER BY c.created_at, c.id LIMIT $7::int",
        7, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    Beacon__Billing__ListClaimsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__billing__list_claims_reply__init(r);
    r->n_claims = (size_t)(rows > limit ? limit : rows);
    r->claims = bc_arena_alloc(call->arena, (r->n_claims + 1) * sizeof *r->claims);
    for (size_t i = 0; i < r->n_claims; i++)
        r->claims[i] = billing_claim_message(call, res, (int)i);
    r->next_cursor = rows > limit ? r->claims[limit - 1]->id : "";
    /* Each claim returned (not the one fetched to see if there are more) is
     * a read of its client's record. */
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < r->n_claims; i++) {
        bc_audit_event_t ev = {.action = BC_AUDIT_READ, .resource_type = "claim",
                               .resource_id = r->claims[i]->id,
                               .client_id = r->claims[i]->client_id,
                               .site_id = r->claims[i]->site_id, .purpose = "payment"};
        rc = bc_call_audit_read(call, &ev);
    }
    PQclear(res);
    if (rc < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}

/* The claim id in the caller's scope, locked when lock; NULL with
 * call->err set (NOT_FOUND). */
static PGresult *s_claim(bc_call_t *call, const char *id, bool lock)
{
    return lock ? billing_row(call, "billing_claim_lock",
                              "SELECT " BILLING_CLAIM_COLUMNS " FROM billing.claims c "
                              "WHERE c.id = $1 AND c.agency_id = $2 FOR UPDATE",
                              id, "claim")
                : billing_row(call, "billing_claim_get",
                              "SELECT " BILLING_CLAIM_COLUMNS " FROM billing.claims c "
                              "WHERE c.id = $1 AND c.agency_id = $2",
                              id, "claim");
}

bc_code_t billing_claim_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Billing__GetClaimRequest *req = (const Beacon__Billing__GetClaimRequest *)in;
    bc_code_t code = billing_need_role(call);
    if (code != BC_OK)
        return code;
    PGresult *res = s_claim(call, req->id, false);
    if (!res)
        return call->err.code;
    Beacon__Billing__Claim *m = billing_claim_message(call, res, 0);
    int rc = s_audit_claims(call, res, BC_AUDIT_READ);
    PQclear(res);
    if (rc < 0)
        return call->err.code;
    *out = &m->base;
    return BC_OK;
}

/* ---- status ------------------------------------------------------------------------- */

/* Applies a status from the payer to the locked claim (row 0 of res) in the
 * open transaction. 0 changed, 1 unchanged (the same status again), -1
 * refused (call->err set). */
static int s_apply_status(bc_call_t *call, PGresult *res, const char *status, int64_t paid_cents,
                          const char *payer_number, const char *reason)
{
    const char *id = PQgetvalue(res, 0, BC_ID), *now = PQgetvalue(res, 0, BC_STATUS);
    if (strcmp(status, "accepted") && strcmp(status, "rejected") && strcmp(status, "paid") &&
        strcmp(status, "denied")) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                     "status must be accepted, rejected, paid or denied");
        return -1;
    }
    if (paid_cents < 0 || paid_cents > INT64_C(100000000000)) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "paid_cents", "paid_cents is out of range");
        return -1;
    }
    if (strcmp(status, "paid") && paid_cents) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "paid_cents", "only a paid claim has paid_cents");
        return -1;
    }
    const char *problem = bc_text_problem(reason, false, 500);
    if (problem) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "reason", "reason %s", problem);
        return -1;
    }
    problem = bc_text_problem(payer_number, false, 50);
    if (problem) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "payer_claim_number", "payer_claim_number %s",
                     problem);
        return -1;
    }
    char paid[24];
    snprintf(paid, sizeof paid, "%lld", (long long)paid_cents);
    if (!strcmp(now, status) && !strcmp(PQgetvalue(res, 0, BC_PAID), paid))
        return 1;
    /* Only a claim that went out hears back: submitted or accepted; a paid
     * or denied claim may still be corrected by the payer's next notice. */
    bool from_ok = !strcmp(now, "submitted") || !strcmp(now, "accepted") ||
                   ((!strcmp(now, "paid") || !strcmp(now, "denied")) &&
                    (!strcmp(status, "paid") || !strcmp(status, "denied")));
    if (!from_ok) {
        bc_call_fail(call, BC_FAILED_PRECONDITION, "status",
                     "claim %s is %s: a status from the payer applies to a claim that was sent "
                     "(submitted or accepted)",
                     id, now);
        return -1;
    }
    const char *params[] = {id, status, paid, payer_number, reason};
    bc_error_t err;
    PGresult *up = bc_db_prepared(
        call->db, "billing_claim_set_status",
        "UPDATE billing.claims SET status = $2, paid_cents = $3::bigint, "
        "payer_claim_number = CASE WHEN $4 = '' THEN payer_claim_number ELSE $4 END, "
        "status_reason = $5, updated_at = now() WHERE id = $1",
        5, params, &err);
    if (!up) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    PQclear(up);
    char detail[128];
    snprintf(detail, sizeof detail, "{\"from\":\"%s\",\"to\":\"%s\",\"paid_cents\":%s}", now,
             status, paid);
    bc_audit_event_t ev = {.action = BC_AUDIT_UPDATE, .resource_type = "claim", .resource_id = id,
                           .client_id = PQgetvalue(res, 0, BC_CLIENT),
                           .site_id = PQgetvalue(res, 0, BC_SITE), .purpose = "payment",
                           .detail = detail};
    return bc_call_audit_write(call, &ev) < 0 ? -1 : 0;
}

/* Reads the claim again after a change, as the reply. */
static bc_code_t s_reply_claim(bc_call_t *call, const char *id, ProtobufCMessage **out)
{
    PGresult *res = s_claim(call, id, false);
    if (!res) {
        bc_db_rollback(call->db);
        return call->err.code;
    }
    Beacon__Billing__Claim *m = billing_claim_message(call, res, 0);
    PQclear(res);
    if (bc_call_commit(call) < 0)
        return call->err.code;
    *out = &m->base;
    return BC_OK;
}

bc_code_t billing_claim_status(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Billing__ClaimStatusRequest *req =
        (const Beacon__Billing__ClaimStatusRequest *)in;
    bc_code_t code = billing_need_role(call);
    if (code != BC_OK)
        return code;
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = s_claim(call, req->id, true);
    if (!res) {
        bc_db_rollback(call->db);
        return call->err.code;
    }
    int rc = s_apply_status(call, res, req->status, req->paid_cents, req->payer_claim_number,
                            req->reason);
    PQclear(res);
    if (rc < 0) {
        bc_db_rollback(call->db);
        return call->err.code;
    }
    return s_reply_claim(call, req->id, out);
}

/* ---- corrections ------------------------------------------------------------------- */

static const char *s_correctable(const char *status)
{
    static const char *const ok[] = {"submitted", "accepted", "rejected", "paid", "denied", NULL};
    return sched_one_of(status, ok) ? status : NULL;
}

/* Inserts a correction (frequency 7 or 8) of the claim in res (row 0),
 * from c as billed now, and marks the corrected claim replaced or voided. */
static int s_insert_correction(bc_call_t *call, PGresult *res, const billing_claim_t *c,
                               const char *frequency, const char *payer_id, char new_id[37])
{
    const char *old_id = PQgetvalue(res, 0, BC_ID);
    const char *root = *PQgetvalue(res, 0, BC_ORIGINAL) ? PQgetvalue(res, 0, BC_ORIGINAL) : old_id;
    const char *payer_number = PQgetvalue(res, 0, BC_PAYER_NUMBER);
    char ref[40];
    if (*payer_number)
        billing_x12_id(payer_number, ref, sizeof ref);
    else
        billing_x12_id(old_id, ref, sizeof ref);
    bc_uuid_v4(new_id);
    billing_row_text_t t;
    if (billing_row_text(call, c, new_id, &t) < 0)
        return -1;
    bc_error_t err;
    json_t *mods = json_array(), *dx = json_array();
    for (int i = 0; i < c->n_modifiers; i++)
        json_array_append_new(mods, json_string(c->modifiers[i]));
    for (int i = 0; i < c->n_diagnoses; i++)
        json_array_append_new(dx, json_string(c->diagnoses[i]));
    char *mods_s = json_dumps(mods, JSON_COMPACT), *dx_s = json_dumps(dx, JSON_COMPACT);
    json_decref(mods);
    json_decref(dx);
    const char *params[] = {new_id,        call->principal->agency_id,
                            c->site_id,    payer_id,
                            c->encounter_id, c->client_id,
                            frequency,     root,
                            ref,           c->service_date,
                            t.minutes,     c->place_of_service,
                            c->procedure,  mods_s,
                            t.units,       t.cents,
                            dx_s,          c->last,
                            c->first,      *c->dob ? c->dob : NULL,
                            c->sex,        c->address,
                            c->city,       c->state,
                            c->postal,     t.medicaid_enc,
                            t.last4,       c->consent_id && *c->consent_id ? c->consent_id : NULL,
                            old_id,        !strcmp(frequency, "7") ? "replaced" : "voided"};
    PGresult *ins = bc_db_prepared(
        call->db, "billing_correction_add",
        "WITH old AS (UPDATE billing.claims SET status = $30, updated_at = now() "
        "             WHERE id = $29::uuid RETURNING id) "
        "INSERT INTO billing.claims (id, agency_id, site_id, payer_id, encounter_id, client_id, "
        "  frequency, original_claim_id, original_ref, status, service_date, minutes, "
        "  place_of_service, procedure, modifiers, units, charge_cents, diagnoses, "
        "  subscriber_last, subscriber_first, subscriber_dob, subscriber_sex, "
        "  subscriber_address, subscriber_city, subscriber_state, subscriber_postal, "
        "  medicaid_id_enc, medicaid_id_last4, consent_id) "
        "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'ready', $10, $11::int, $12, $13, "
        "  ARRAY(SELECT json_array_elements_text($14::json)), $15::int, $16::bigint, "
        "  ARRAY(SELECT json_array_elements_text($17::json)), $18, $19, $20::date, $21, $22, "
        "  $23, $24, $25, $26, $27, $28 FROM old",
        30, params, &err);
    free(mods_s);
    free(dx_s);
    billing_row_text_free(&t);
    if (!ins) {
        if (err.code == BC_ALREADY_EXISTS || err.code == BC_CONFLICT)
            bc_call_fail(call, BC_CONFLICT, "id",
                         "a correction of this claim is already waiting for the next batch");
        else
            bc_call_fail_err(call, &err);
        return -1;
    }
    PQclear(ins);
    char detail[96];
    snprintf(detail, sizeof detail, "{\"frequency\":\"%s\",\"corrects\":\"%s\"}", frequency,
             old_id);
    bc_audit_event_t ev = {.action = BC_AUDIT_CREATE, .resource_type = "claim",
                           .resource_id = new_id, .client_id = c->client_id,
                           .site_id = c->site_id, .purpose = "payment", .detail = detail};
    return bc_call_audit_write(call, &ev);
}

static bc_code_t s_correct(bc_call_t *call, const Beacon__Billing__CorrectClaimRequest *req,
                           bool replace, ProtobufCMessage **out)
{
    bc_code_t code = billing_need_role(call);
    if (code != BC_OK)
        return code;
    const char *problem = bc_text_problem(req->reason, false, 500);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason", "reason %s", problem);
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0 ||
        bc_db_set_local(call->db, "beacon.purpose", "billing", &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = s_claim(call, req->id, true);
    if (!res) {
        bc_db_rollback(call->db);
        return call->err.code;
    }
    const char *status = PQgetvalue(res, 0, BC_STATUS);
    if (!s_correctable(status) || !strcmp(PQgetvalue(res, 0, BC_FREQUENCY), "8")) {
        bc_call_fail(call, BC_FAILED_PRECONDITION, "id",
                     "claim %s is %s: only a claim that was sent (submitted, accepted, "
                     "rejected, paid or denied), and not a void, can be corrected",
                     req->id, status);
        PQclear(res);
        bc_db_rollback(call->db);
        return call->err.code;
    }
    char *payer_id = bc_arena_strdup(call->arena, PQgetvalue(res, 0, BC_PAYER));
    billing_claim_t c;
    if (billing_claim_from_row(call, res, 0, &c) < 0) {
        PQclear(res);
        bc_db_rollback(call->db);
        return call->err.code;
    }
    if (replace) {
        /* The corrected claim stops counting against the limits first, then
         * the encounter is evaluated as it stands now. */
        const char *params[] = {req->id};
        PGresult *up = bc_db_prepared(call->db, "billing_claim_superseded",
                                      "UPDATE billing.claims SET status = 'replaced' "
                                      "WHERE id = $1",
                                      1, params, &err);
        if (!up) {
            PQclear(res);
            bc_db_rollback(call->db);
            return bc_call_fail_err(call, &err);
        }
        PQclear(up);
        Beacon__Billing__BillingConfig *cfg = billing_config_load(call, payer_id);
        if (!cfg) {
            PQclear(res);
            bc_db_rollback(call->db);
            if (call->err.code == BC_NOT_FOUND)
                call->err.code = BC_FAILED_PRECONDITION;
            return call->err.code;
        }
        const char *eparams[] = {c.encounter_id};
        PGresult *enc = bc_db_prepared(
            call->db, "billing_encounter_one",
            "SELECT " BILLING_ENCOUNTER_COLUMNS ", '' FROM scheduling.encounters e "
            "JOIN identity.site_directory d ON d.site_id = e.site_id WHERE e.id = $1",
            1, eparams, &err);
        if (!enc || PQntuples(enc) != 1) {
            if (enc)
                PQclear(enc);
            PQclear(res);
            bc_db_rollback(call->db);
            return enc ? bc_call_fail(call, BC_NOT_FOUND, "", "the claim's encounter is gone")
                       : bc_call_fail_err(call, &err);
        }
        bc_arena_t *arena = bc_arena_new(64 * 1024);
        billing_claim_t *claims;
        billing_reasons_t *why;
        int32_t today = (int32_t)(bc_now_ms() / 1000 / 86400);
        int rc = billing_evaluate_rows(call, cfg, arena, enc, today, &claims, &why);
        PQclear(enc);
        if (rc == 0 && why[0].n > 0) {
            /* Not billable as it stands: say why, change nothing. */
            char list[2048] = "";
            for (int i = 0; i < why[0].n; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "; " : "",
                         why[0].reasons[i]);
            bc_call_fail(call, BC_FAILED_PRECONDITION, "id",
                         "the encounter is not billable as it stands: %s", list);
            rc = -1;
        }
        if (rc == 0) {
            /* Keep the evaluated claim; its strings move to the call's arena. */
            billing_claim_t *n = &claims[0];
            c.minutes = n->minutes;
            c.service_date = bc_arena_strdup(call->arena, n->service_date);
            c.place_of_service = bc_arena_strdup(call->arena, n->place_of_service);
            c.procedure = bc_arena_strdup(call->arena, n->procedure);
            c.n_modifiers = n->n_modifiers;
            for (int i = 0; i < n->n_modifiers; i++)
                c.modifiers[i] = bc_arena_strdup(call->arena, n->modifiers[i]);
            c.units = n->units;
            c.charge_cents = n->charge_cents;
            c.n_diagnoses = n->n_diagnoses;
            for (int i = 0; i < n->n_diagnoses; i++)
                c.diagnoses[i] = bc_arena_strdup(call->arena, n->diagnoses[i]);
            c.last = bc_arena_strdup(call->arena, n->last);
            c.first = bc_arena_strdup(call->arena, n->first);
            c.dob = bc_arena_strdup(call->arena, n->dob);
            c.sex = bc_arena_strdup(call->arena, n->sex);
            c.address = bc_arena_strdup(call->arena, n->address);
            c.city = bc_arena_strdup(call->arena, n->city);
            c.state = bc_arena_strdup(call->arena, n->state);
            c.postal = bc_arena_strdup(call->arena, n->postal);
            c.medicaid_id = bc_arena_strdup(call->arena, n->medicaid_id);
            c.consent_id = n->consent_id ? bc_arena_strdup(call->arena, n->consent_id) : NULL;
        }
        bc_arena_destroy(&arena);
        if (rc < 0) {
            PQclear(res);
            bc_db_rollback(call->db);
            return call->err.code;
        }
    }
    char new_id[37];
    int rc = s_insert_correction(call, res, &c, replace ? "7" : "8", payer_id, new_id);
    PQclear(res);
    if (rc < 0) {
        bc_db_rollback(call->db);
        return call->err.code;
    }
    return s_reply_claim(call, bc_arena_strdup(call->arena, new_id), out);
}

bc_code_t billing_claim_replace(bc_call_t *call, const ProtobufCMessage *in,
                                ProtobufCMessage **out)
{
    return s_correct(call, (const Beacon__Billing__CorrectClaimRequest *)in, true, out);
}

bc_code_t billing_claim_void(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    return s_correct(call, (const Beacon__Billing__CorrectClaimRequest *)in, false, out);
}

/* ---- remittance CSV ------------------------------------------------------------- */

#define S_MAX_REMIT_ROWS 10000

/* Splits one CSV record (RFC 4180: quoted fields, "" inside quotes) from *p
 * into up to max fields in arena; advances *p past its line end. Returns
 * the number of fields, or -1 for an unterminated quote. */
static int s_csv_record(bc_arena_t *arena, const char **p, char **fields, int max)
{
    const char *s = *p;
    int n = 0;
    for (;;) {
        char *buf = bc_arena_alloc(arena, strlen(s) + 1);
        size_t len = 0;
        if (*s == '"') {
            s++;
            for (;;) {
                if (!*s)
                    return -1;
                if (*s == '"' && s[1] == '"') {
                    buf[len++] = '"';
                    s += 2;
                } else if (*s == '"') {
                    s++;
                    break;
                } else {
                    buf[len++] = *s++;
                }
            }
        }
        while (*s && *s != ',' && *s != '\n' && *s != '\r')
            buf[len++] = *s++;
        buf[len] = '\0';
        if (n < max)
            fields[n] = buf;
        n++;
        if (*s == ',') {
            s++;
            continue;
        }
        if (*s == '\r')
            s++;
        if (*s == '\n')
            s++;
        break;
    }
    *p = s;
    return n;
}

/* "12.34" or "12" -> cents; -1 when malformed. */
static int64_t s_cents(const char *v)
{
    if (!*v)
        return 0;
    int64_t whole = 0, frac = 0;
    int digits = 0, fdigits = 0;
    const char *p = v;
    for (; *p >= '0' && *p <= '9'; p++, digits++)
        if (digits < 12)
            whole = whole * 10 + (*p - '0');
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, fdigits++)
            if (fdigits < 2)
                frac = frac * 10 + (*p - '0');
    }
    if (*p || digits == 0 || digits > 11 || fdigits > 2)
        return -1;
    if (fdigits == 1)
        frac *= 10;
    return whole * 100 + frac;
}

bc_code_t billing_remittance_import(bc_call_t *call, const ProtobufCMessage *in,
                                    ProtobufCMessage **out)
{
    const Beacon__Billing__ImportRemittanceRequest *req =
        (const Beacon__Billing__ImportRemittanceRequest *)in;
    bc_code_t code = billing_need_role(call);
    if (code != BC_OK)
        return code;
    if (!bc_utf8_valid(req->content, strlen(req->content)))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "content", "content is not UTF-8");
    const char *p = req->content;
    char *f[6];
    int n = s_csv_record(call->arena, &p, f, 6);
    if (n < 5 || strcmp(f[0], "claim_id") || strcmp(f[1], "status") ||
        strcmp(f[2], "paid_amount") || strcmp(f[3], "payer_claim_number") || strcmp(f[4], "reason"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "content",
                            "the first line must be the header "
                            "claim_id,status,paid_amount,payer_claim_number,reason");
    Beacon__Billing__ImportRemittanceReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__billing__import_remittance_reply__init(r);
    r->problems = bc_arena_alloc(call->arena, 101 * sizeof *r->problems);
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    int line = 1;
    while (*p) {
        line++;
        if (line > S_MAX_REMIT_ROWS + 1) {
            bc_db_rollback(call->db);
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "content",
                                "at most %d rows per file", S_MAX_REMIT_ROWS);
        }
        const char *start = p;
        n = s_csv_record(call->arena, &p, f, 6);
        const char *problem = NULL, *claim = n >= 1 ? f[0] : "";
        if (n == 1 && !*f[0] && (p - start) <= 2)
            continue; /* a blank line */
        if (n < 0) {
            problem = "a quoted field is not closed";
            p += strlen(p);
        } else if (n != 5) {
            problem = "a row has five fields: claim_id,status,paid_amount,payer_claim_number,"
                      "reason";
        } else if (!bc_is_uuid(f[0])) {
            problem = "claim_id must be a UUID";
        } else if (s_cents(f[2]) < 0) {
            problem = "paid_amount must be an amount such as 12.34";
        }
        if (!problem) {
            /* Each row on its own: a bad row is reported, the others apply. */
            PGresult *sp = bc_db_query(call->db, "SAVEPOINT remit_row", 0, NULL, &err);
            if (!sp) {
                bc_db_rollback(call->db);
                return bc_call_fail_err(call, &err);
            }
            PQclear(sp);
            PGresult *res = s_claim(call, f[0], true);
            int rc = res ? s_apply_status(call, res, f[1], s_cents(f[2]), f[3], f[4]) : -1;
            if (res)
                PQclear(res);
            if (rc < 0) {
                if (call->err.code == BC_UNAVAILABLE || call->err.code == BC_INTERNAL) {
                    bc_db_rollback(call->db);
                    return call->err.code;
                }
                problem = bc_arena_strdup(call->arena, call->err.message);
                sp = bc_db_query(call->db, "ROLLBACK TO SAVEPOINT remit_row", 0, NULL, &err);
                if (!sp) {
                    bc_db_rollback(call->db);
                    return bc_call_fail_err(call, &err);
                }
                PQclear(sp);
                call->err = (bc_error_t){0};
            } else if (rc == 1) {
                r->unchanged++;
            } else {
                r->applied++;
            }
        }
        if (problem && r->n_problems < 100) {
            Beacon__Billing__RemittanceProblem *pr = bc_arena_alloc(call->arena, sizeof *pr);
            beacon__billing__remittance_problem__init(pr);
            pr->line = line;
            pr->claim_id = bc_arena_strdup(call->arena, bc_is_uuid(claim) ? claim : "");
            pr->message = bc_arena_strdup(call->arena, problem);
            r->problems[r->n_problems++] = pr;
        }
    }
    if (bc_call_commit(call) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}
