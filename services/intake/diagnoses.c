/*  diagnoses: ICD-10-CM diagnoses on a client's record, and BillingSubjects,
 *  what the billing service needs about many clients at once.
 *
 *  The care team records diagnoses (code as written, "F11.20"; onset,
 *  recorded and resolved dates) and reads them with the rest of the record.
 *
 *  BillingSubjects answers the scheduling service's billing (batched: up to
 *  S_MAX_SUBJECTS clients per call, never one call per encounter) for a
 *  principal holding the billing role: for each client of the caller's
 *  sites, the 837P subscriber's details (the Medicaid ID decrypted here,
 *  the only place its key is used for billing), the enrollment episodes,
 *  the diagnoses on file and whether an active 42 CFR Part 2 consent lets
 *  the records go to the payer for payment (the same rule as CheckConsent:
 *  the newest unrevoked, unexpired consent naming the payer, or a general
 *  designation, for the purpose payment). Clients are read under the
 *  billing policy of migration 016, which holds only inside this call's
 *  transaction (beacon.purpose = billing). Each client answered is audited
 *  (action disclose, purpose payment) before anything is returned.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bc_crypt.h"
#include "bc_util.h"
#include "intake.h"

#define S_MAX_SUBJECTS 5000

#define S_DIAGNOSIS_COLUMNS                                                                     \
    "d.id::text, d.client_id::text, d.code, d.description, "                                    \
    "coalesce(to_char(d.onset_on, 'YYYY-MM-DD'), ''), to_char(d.recorded_on, 'YYYY-MM-DD'), "   \
    "coalesce(to_char(d.resolved_on, 'YYYY-MM-DD'), ''), d.recorded_by::text, "                 \
    INTAKE_TIME("d.created_at")

static Beacon__Intake__Diagnosis *s_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Intake__Diagnosis *d = bc_arena_alloc(call->arena, sizeof *d);
    beacon__intake__diagnosis__init(d);
    char **f[] = {&d->id,          &d->client_id,   &d->code,        &d->description,
                  &d->onset_on,    &d->recorded_on, &d->resolved_on, &d->recorded_by,
                  &d->created_at};
    for (int i = 0; i < 9; i++)
        *f[i] = bc_arena_strdup(call->arena, PQgetvalue(res, row, i));
    return d;
}

/* A date as YYYY-MM-DD that exists ("" allowed). */
static bool s_date(const char *s)
{
    if (!*s)
        return true;
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%d", &tm);
    if (!end || *end || strlen(s) != 10 || tm.tm_year + 1900 < 1900)
        return false;
    struct tm check = tm;
    timegm(&check);
    return check.tm_mday == tm.tm_mday && check.tm_mon == tm.tm_mon;
}

/* ICD-10-CM as written: a letter, a digit, a letter or digit, then
 * optionally a dot and one to four letters or digits ("F11.20", "F17210"
 * is refused: the dot is where the category ends). Upper-cased in place. */
static bool s_icd10(char *code)
{
    size_t n = strlen(code);
    if (n < 3 || n > 8)
        return false;
    for (size_t i = 0; i < n; i++)
        if (code[i] >= 'a' && code[i] <= 'z')
            code[i] = (char)(code[i] - 'a' + 'A');
    if (code[0] < 'A' || code[0] > 'Z' || code[1] < '0' || code[1] > '9')
        return false;
    bool alnum2 = (code[2] >= '0' && code[2] <= '9') || (code[2] >= 'A' && code[2] <= 'Z');
    if (!alnum2)
        return false;
    if (n == 3)
        return true;
    if (code[3] != '.' || n == 4)
        return false;
    for (size_t i = 4; i < n; i++)
        if (!((code[i] >= '0' && code[i] <= '9') || (code[i] >= 'A' && code[i] <= 'Z')))
            return false;
    return true;
}

bc_code_t diagnoses_record(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__RecordDiagnosisRequest *req =
        (const Beacon__Intake__RecordDiagnosisRequest *)in;
    if (!bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    if (!bc_is_uuid(call->principal->staff_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "only staff record diagnoses");
    char *code = bc_arena_strdup(call->arena, req->code);
    if (!s_icd10(code))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "code",
                            "code must be an ICD-10-CM code as written, such as F11.20");
    const char *problem = bc_text_problem(req->description, false, 300);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "description", "description %s", problem);
    const char *dates[] = {req->onset_on, req->recorded_on, req->resolved_on};
    const char *names[] = {"onset_on", "recorded_on", "resolved_on"};
    for (int i = 0; i < 3; i++)
        if (!s_date(dates[i]))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, names[i],
                                "%s must be a date as YYYY-MM-DD", names[i]);
    if (*req->onset_on && *req->resolved_on && strcmp(req->resolved_on, req->onset_on) < 0)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "resolved_on",
                            "resolved_on must not be before onset_on");
    const char *params[] = {req->client_id,
                            call->principal->agency_id,
                            code,
                            req->description,
                            S_NULL_EMPTY(req->onset_on),
                            S_NULL_EMPTY(req->recorded_on),
                            S_NULL_EMPTY(req->resolved_on),
                            call->principal->staff_id};
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(
        call->db, "intake_diagnosis_record",
        "WITH d AS (INSERT INTO intake.diagnoses (client_id, code, description, onset_on, "
        "           recorded_on, resolved_on, recorded_by) "
        "           SELECT c.id, $3, $4, $5::date, "
        "           coalesce($6::date, (now() AT TIME ZONE 'UTC')::date), $7::date, $8::uuid "
        "           FROM intake.clients c WHERE c.id = $1 AND c.agency_id = $2 "
        "           AND c.status <> 'merged' "
        "           AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id) "
        "           RETURNING *) "
        "SELECT " S_DIAGNOSIS_COLUMNS ", c.site_id::text FROM d JOIN intake.clients c "
        "ON c.id = d.client_id",
        8, params, &err);
    if (!res) {
        if (err.code == BC_FAILED_PRECONDITION)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "resolved_on",
                                "resolved_on must not be before onset_on");
        return bc_call_fail_err(call, &err);
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_NOT_FOUND, "", "no client with id %s in your scope",
                            req->client_id);
    }
    Beacon__Intake__Diagnosis *d = s_from_row(call, res, 0);
    char *site = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 9));
    PQclear(res);
    char detail[64];
    snprintf(detail, sizeof detail, "{\"code\":\"%s\"}", d->code); /* checked: [A-Z0-9.] */
    return intake_commit_change(call, BC_AUDIT_CREATE, "diagnosis", d->id, d->client_id, site,
                                detail, &d->base, out);
}

bc_code_t diagnoses_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__ListDiagnosesRequest *req =
        (const Beacon__Intake__ListDiagnosesRequest *)in;
    if (!bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    bc_audit_event_t ev;
    bc_code_t code = intake_read_scope(call, req->client_id, "diagnosis", &ev);
    if (code != BC_OK)
        return code;
    const char *params[] = {req->client_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "intake_diagnoses_list",
                                   "SELECT " S_DIAGNOSIS_COLUMNS " FROM intake.diagnoses d "
                                   "WHERE d.client_id = $1 ORDER BY d.recorded_on, d.created_at",
                                   1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Intake__ListDiagnosesReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__intake__list_diagnoses_reply__init(r);
    r->n_diagnoses = (size_t)PQntuples(res);
    r->diagnoses = bc_arena_alloc(call->arena, (r->n_diagnoses + 1) * sizeof *r->diagnoses);
    for (size_t i = 0; i < r->n_diagnoses; i++)
        r->diagnoses[i] = s_from_row(call, res, (int)i);
    PQclear(res);
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}

/* ---- BillingSubjects ------------------------------------------------------------ */

/* A JSON array of strings from PostgreSQL as strings in the arena. */
static char **s_strings(bc_call_t *call, json_t *a, size_t *n)
{
    *n = json_array_size(a);
    char **out = bc_arena_alloc(call->arena, (*n + 1) * sizeof(char *));
    for (size_t i = 0; i < *n; i++) {
        const char *v = json_string_value(json_array_get(a, i));
        out[i] = bc_arena_strdup(call->arena, v ? v : "");
    }
    return out;
}

static const char *s_json_str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

enum { S_ID, S_SITE, S_GIVEN, S_FAMILY, S_DOB, S_ADDRESS, S_CITY, S_STATE, S_POSTAL, S_MEDICAID,
       S_STATUS, S_CONSENT, S_EPISODES, S_DIAGNOSES };

static int s_subject(bc_call_t *call, PGresult *res, int row, Beacon__Intake__BillingSubject *s)
{
    beacon__intake__billing_subject__init(s);
    char **f[] = {&s->client_id, &s->site_id, &s->given_name, &s->family_name,
                  &s->date_of_birth};
    for (int i = 0; i < 5; i++)
        *f[i] = bc_arena_strdup(call->arena, PQgetvalue(res, row, i));
    s->sex = "U"; /* the record keeps no sex as billed: U (unknown) is what 837P DMG03 allows */
    json_t *lines = json_loads(PQgetvalue(res, row, S_ADDRESS), 0, NULL);
    s->address_lines = s_strings(call, lines, &s->n_address_lines);
    json_decref(lines);
    s->city = bc_arena_strdup(call->arena, PQgetvalue(res, row, S_CITY));
    s->state = bc_arena_strdup(call->arena, PQgetvalue(res, row, S_STATE));
    s->postal_code = bc_arena_strdup(call->arena, PQgetvalue(res, row, S_POSTAL));
    s->status = bc_arena_strdup(call->arena, PQgetvalue(res, row, S_STATUS));
    s->consent_allowed = !PQgetisnull(res, row, S_CONSENT);
    s->consent_id = bc_arena_strdup(call->arena, s->consent_allowed
                                                     ? PQgetvalue(res, row, S_CONSENT) : "");
    json_t *eps = json_loads(PQgetvalue(res, row, S_EPISODES), 0, NULL);
    s->n_episodes = json_array_size(eps);
    s->episodes = bc_arena_alloc(call->arena, (s->n_episodes + 1) * sizeof *s->episodes);
    for (size_t i = 0; i < s->n_episodes; i++) {
        json_t *o = json_array_get(eps, i);
        Beacon__Intake__BillingEpisode *e = bc_arena_alloc(call->arena, sizeof *e);
        beacon__intake__billing_episode__init(e);
        e->started_on = bc_arena_strdup(call->arena, s_json_str(o, "s"));
        e->discharged_on = bc_arena_strdup(call->arena, s_json_str(o, "d"));
        e->program = bc_arena_strdup(call->arena, s_json_str(o, "p"));
        s->episodes[i] = e;
    }
    json_decref(eps);
    json_t *dxs = json_loads(PQgetvalue(res, row, S_DIAGNOSES), 0, NULL);
    s->n_diagnoses = json_array_size(dxs);
    s->diagnoses = bc_arena_alloc(call->arena, (s->n_diagnoses + 1) * sizeof *s->diagnoses);
    for (size_t i = 0; i < s->n_diagnoses; i++) {
        json_t *o = json_array_get(dxs, i);
        Beacon__Intake__Diagnosis *d = bc_arena_alloc(call->arena, sizeof *d);
        beacon__intake__diagnosis__init(d);
        d->client_id = s->client_id;
        d->code = bc_arena_strdup(call->arena, s_json_str(o, "c"));
        d->onset_on = bc_arena_strdup(call->arena, s_json_str(o, "o"));
        d->recorded_on = bc_arena_strdup(call->arena, s_json_str(o, "r"));
        d->resolved_on = bc_arena_strdup(call->arena, s_json_str(o, "x"));
        s->diagnoses[i] = d;
    }
    json_decref(dxs);
    const char *enc = PQgetvalue(res, row, S_MEDICAID);
    s->medicaid_id = "";
    if (*enc) {
        char aad[96], *plain = NULL;
        size_t len = 0;
        bc_error_t err;
        snprintf(aad, sizeof aad, "intake.clients.medicaid_id:%s", s->client_id);
        if (bc_field_decrypt(intake_keys(call), enc, aad, &plain, &len, &err) < 0) {
            bc_call_fail(call, BC_DATA_LOSS, "", "a stored identifier of client %s cannot be "
                                                 "read", s->client_id);
            return -1;
        }
        s->medicaid_id = bc_arena_strdup(call->arena, plain);
        bc_field_plaintext_free(&plain, len);
    }
    return 0;
}

bc_code_t diagnoses_billing_subjects(bc_call_t *call, const ProtobufCMessage *in,
                                     ProtobufCMessage **out)
{
    const Beacon__Intake__BillingSubjectsRequest *req =
        (const Beacon__Intake__BillingSubjectsRequest *)in;
    if (!bc_call_has_role(call, "billing"))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "billing subjects are for billing");
    if (req->n_client_ids > S_MAX_SUBJECTS)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_ids",
                            "at most %d clients per call", S_MAX_SUBJECTS);
    const char *problem = bc_text_problem(req->payer_name, true, 200);
    if (problem || !strcmp(req->payer_name, "*"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "payer_name",
                            "payer_name must name the payer");
    /* The ids as a uuid[] literal, each checked first. */
    size_t cap = req->n_client_ids * 37 + 3;
    char *ids = bc_arena_alloc(call->arena, cap), *p = ids;
    *p++ = '{';
    for (size_t i = 0; i < req->n_client_ids; i++) {
        if (!bc_is_uuid(req->client_ids[i]))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_ids",
                                "client_ids[%zu] must be a UUID", i);
        if (i)
            *p++ = ',';
        memcpy(p, req->client_ids[i], 36);
        p += 36;
    }
    *p++ = '}';
    *p = '\0';
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0 ||
        bc_db_set_local(call->db, "beacon.purpose", "billing", &err) < 0)
        return bc_call_fail_err(call, &err);
    const char *params[] = {ids, call->principal->agency_id, req->payer_name};
    PGresult *res = bc_db_prepared(
        call->db, "intake_billing_subjects",
        "SELECT c.id::text, c.site_id::text, c.given_name, c.family_name, "
        "to_char(c.date_of_birth, 'YYYY-MM-DD'), array_to_json(c.address_lines)::text, c.city, "
        "c.state, c.postal_code, coalesce(c.medicaid_id_enc, ''), c.status, k.id::text, "
        "coalesce((SELECT json_agg(json_build_object('s', to_char(e.started_on, 'YYYY-MM-DD'), "
        "   'd', coalesce(to_char(e.discharged_on, 'YYYY-MM-DD'), ''), 'p', e.program) "
        "   ORDER BY e.started_on) FROM intake.enrollments e WHERE e.client_id = c.id), "
        "  '[]')::text, "
        "coalesce((SELECT json_agg(json_build_object('c', d.code, "
        "   'o', coalesce(to_char(d.onset_on, 'YYYY-MM-DD'), ''), "
        "   'r', to_char(d.recorded_on, 'YYYY-MM-DD'), "
        "   'x', coalesce(to_char(d.resolved_on, 'YYYY-MM-DD'), '')) "
        "   ORDER BY d.recorded_on, d.created_at) FROM intake.diagnoses d "
        "   WHERE d.client_id = c.id), '[]')::text "
        "FROM intake.clients c "
        "LEFT JOIN LATERAL (SELECT id FROM intake.consents k WHERE k.client_id = c.id "
        "  AND k.revoked_at IS NULL "
        "  AND (k.expires_on IS NULL OR k.expires_on >= (now() AT TIME ZONE 'UTC')::date) "
        "  AND 'payment' = ANY (k.purposes) "
        "  AND ($3 = ANY (k.recipients) OR '*' = ANY (k.recipients)) "
        "  ORDER BY k.created_at DESC LIMIT 1) k ON true "
        "WHERE c.id = ANY ($1::uuid[]) AND c.agency_id = $2",
        3, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Intake__BillingSubjectsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__intake__billing_subjects_reply__init(r);
    int rows = PQntuples(res);
    r->subjects = bc_arena_alloc(call->arena, ((size_t)rows + 1) * sizeof *r->subjects);
    for (int i = 0; i < rows; i++) {
        Beacon__Intake__BillingSubject *s = bc_arena_alloc(call->arena, sizeof *s);
        if (s_subject(call, res, i, s) < 0) {
            PQclear(res);
            bc_db_rollback(call->db);
            return call->err.code;
        }
        r->subjects[r->n_subjects++] = s;
    }
    PQclear(res);
    bc_db_rollback(call->db); /* read only: nothing to keep */
    for (size_t i = 0; i < r->n_subjects; i++) {
        const Beacon__Intake__BillingSubject *s = r->subjects[i];
        char detail[160];
        snprintf(detail, sizeof detail, "{\"via\":\"billing\",\"consent_id\":%s%s%s}",
                 *s->consent_id ? "\"" : "", *s->consent_id ? s->consent_id : "null",
                 *s->consent_id ? "\"" : "");
        bc_audit_event_t ev = {.action = BC_AUDIT_DISCLOSE,
                               .resource_type = "client",
                               .resource_id = s->client_id,
                               .client_id = s->client_id,
                               .site_id = s->site_id,
                               .purpose = "payment",
                               .detail = detail};
        if (bc_call_audit_read(call, &ev) < 0)
            return call->err.code;
    }
    *out = &r->base;
    return BC_OK;
}
