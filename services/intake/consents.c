/*  consents: 42 CFR Part 2 consents to disclose, their revocation, and
 *  consent.check (CheckConsent), which other services call before any
 *  disclosure.
 *
 *  Every element section 2.31 requires is a required field here and a NOT
 *  NULL / CHECK column in migrations/008_consents.sql, so an incomplete
 *  consent can neither be recorded through the API nor written around it.
 *  A general designation of recipients ("*") is accepted only for
 *  treatment, payment and health care operations. Status is derived at read
 *  time: revoked (effective the moment the revocation is recorded),
 *  expired (past expires_on), else active. CheckConsent queries the table
 *  on every call: no answer is cached, so none can outlive a revocation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bc_util.h"
#include "intake.h"

static const char *const s_purposes[] = {"treatment",         "payment",
                                         "health_care_operations", "referral",
                                         "care_coordination", "benefits_enrollment",
                                         "legal",             "other",
                                         NULL};

static bool s_in(const char *const *list, const char *v)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], v))
            return true;
    return false;
}

#define S_CONSENT_COLUMNS                                                                       \
    "k.id::text, k.client_id::text, k.disclosing_party, k.information_description, "           \
    "array_to_json(k.recipients)::text, array_to_json(k.purposes)::text, "                      \
    "k.purpose_description, k.right_to_revoke_explained, k.revocation_instructions, "           \
    "coalesce(to_char(k.expires_on, 'YYYY-MM-DD'), ''), coalesce(k.expiry_event, ''), "         \
    "k.signed_by, k.signer_relationship, k.signature_method, "                                  \
    "to_char(k.signed_on, 'YYYY-MM-DD'), "                                                      \
    "CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked' "                                        \
    "     WHEN k.expires_on < (now() AT TIME ZONE 'UTC')::date THEN 'expired' "                 \
    "     ELSE 'active' END, "                                                                  \
    "coalesce(" INTAKE_TIME("k.revoked_at") ", ''), "                                           \
    "coalesce(to_char(k.revocation_received_on, 'YYYY-MM-DD'), ''), k.recorded_by::text, "      \
    INTAKE_TIME("k.created_at") ", c.site_id::text"

static char **s_strings(bc_call_t *call, const char *json_text, size_t *n)
{
    json_t *a = json_loads(json_text, 0, NULL);
    *n = json_array_size(a);
    char **out = bc_arena_alloc(call->arena, (*n + 1) * sizeof(char *));
    for (size_t i = 0; i < *n; i++) {
        const char *v = json_string_value(json_array_get(a, i));
        out[i] = bc_arena_strdup(call->arena, v ? v : "");
    }
    json_decref(a);
    return out;
}

static Beacon__Intake__Consent *s_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Intake__Consent *k = bc_arena_alloc(call->arena, sizeof *k);
    beacon__intake__consent__init(k);
    char **f[] = {&k->id, &k->client_id, &k->disclosing_party, &k->information_description};
    for (int i = 0; i < 4; i++)
        *f[i] = bc_arena_strdup(call->arena, PQgetvalue(res, row, i));
    k->recipients = s_strings(call, PQgetvalue(res, row, 4), &k->n_recipients);
    k->purposes = s_strings(call, PQgetvalue(res, row, 5), &k->n_purposes);
    k->purpose_description = bc_arena_strdup(call->arena, PQgetvalue(res, row, 6));
    k->right_to_revoke_explained = PQgetvalue(res, row, 7)[0] == 't';
    char **g[] = {&k->revocation_instructions, &k->expires_on, &k->expiry_event, &k->signed_by,
                  &k->signer_relationship, &k->signature_method, &k->signed_on, &k->status,
                  &k->revoked_at, &k->revocation_received_on, &k->recorded_by, &k->created_at};
    for (int i = 0; i < 12; i++)
        *g[i] = bc_arena_strdup(call->arena, PQgetvalue(res, row, 8 + i));
    return k;
}

static bool s_day(const char *s, bool allow_future)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%d", &tm);
    if (!end || *end || strlen(s) != 10)
        return false;
    struct tm check = tm;
    time_t t = timegm(&check);
    return check.tm_mday == tm.tm_mday && check.tm_mon == tm.tm_mon &&
           tm.tm_year + 1900 >= 1900 && (allow_future || t <= time(NULL));
}

static char *s_json_strings(char *const *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(items[i]));
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return text;
}

static bc_code_t s_check(bc_call_t *call, const Beacon__Intake__RecordConsentRequest *req)
{
    struct {
        const char *field, *problem;
    } checks[] = {
        {"disclosing_party", bc_text_problem(req->disclosing_party, true, 200)},
        {"information_description", bc_text_problem(req->information_description, true, 2000)},
        {"purpose_description", bc_text_problem(req->purpose_description, false, 1000)},
        {"revocation_instructions", bc_text_problem(req->revocation_instructions, true, 1000)},
        {"expiry_event", bc_text_problem(req->expiry_event, false, 500)},
        {"signed_by", bc_text_problem(req->signed_by, true, 200)},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].problem)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, checks[i].field, "%s %s",
                                checks[i].field, checks[i].problem);
    if (strlen(req->information_description) < 10)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "information_description",
                            "information_description must say explicitly what substance use "
                            "disorder information may be disclosed");
    if (req->n_recipients < 1 || req->n_recipients > 50)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "recipients",
                            "recipients must name 1 to 50 recipients");
    bool general = false;
    for (size_t i = 0; i < req->n_recipients; i++) {
        const char *p = bc_text_problem(req->recipients[i], true, 200);
        if (p)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "recipients", "recipients[%zu] %s",
                                i, p);
        general |= !strcmp(req->recipients[i], "*");
    }
    if (req->n_purposes < 1 || req->n_purposes > 10)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "purposes",
                            "purposes must name 1 to 10 purposes");
    for (size_t i = 0; i < req->n_purposes; i++) {
        if (!s_in(s_purposes, req->purposes[i]))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "purposes",
                                "purposes[%zu] must be one of treatment, payment, "
                                "health_care_operations, referral, care_coordination, "
                                "benefits_enrollment, legal, other",
                                i);
        if (general && strcmp(req->purposes[i], "treatment") &&
            strcmp(req->purposes[i], "payment") &&
            strcmp(req->purposes[i], "health_care_operations"))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "recipients",
                                "a general designation (\"*\") is allowed only for treatment, "
                                "payment and health care operations");
    }
    if (!req->right_to_revoke_explained)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "right_to_revoke_explained",
                            "the consent must state the right to revoke (true)");
    if (!*req->expires_on && !*req->expiry_event)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "expires_on",
                            "a consent needs an expiry date or an expiry event");
    if (*req->expires_on && !s_day(req->expires_on, true))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "expires_on",
                            "expires_on must be a date as YYYY-MM-DD");
    if (!s_day(req->signed_on, false))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "signed_on",
                            "signed_on must be a date as YYYY-MM-DD, not in the future");
    if (*req->expires_on && strcmp(req->expires_on, req->signed_on) < 0)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "expires_on",
                            "expires_on must not be before signed_on");
    static const char *const rel[] = {"self", "guardian", "personal_representative", NULL};
    static const char *const method[] = {"wet", "electronic", NULL};
    if (!s_in(rel, req->signer_relationship))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "signer_relationship",
                            "signer_relationship must be self, guardian or "
                            "personal_representative");
    if (!s_in(method, req->signature_method))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "signature_method",
                            "signature_method must be wet or electronic");
    return BC_OK;
}

static bc_code_t s_audit_write(bc_call_t *call, Beacon__Intake__Consent *k, const char *site,
                               const char *action, ProtobufCMessage **out)
{
    Beacon__Intake__IntakeEvent e = BEACON__INTAKE__INTAKE_EVENT__INIT;
    e.client_id = k->client_id;
    e.site_id = (char *)site;
    e.consent_id = k->id;
    if (intake_emit(call, !strcmp(action, "consent_given") ? "consent.given" : "consent.revoked",
                    &e) < 0)
        return call->err.code;
    return intake_commit_change(call, action, "consent", k->id, k->client_id, site, NULL,
                                &k->base, out);
}

bc_code_t consents_record(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__RecordConsentRequest *req =
        (const Beacon__Intake__RecordConsentRequest *)in;
    if (!bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    bc_code_t code = s_check(call, req);
    if (code != BC_OK)
        return code;
    if (!bc_is_uuid(call->principal->staff_id) || !bc_is_uuid(call->principal->agency_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "only staff record consents");
    char *recipients = s_json_strings(req->recipients, req->n_recipients);
    char *purposes = s_json_strings(req->purposes, req->n_purposes);
    const char *params[] = {req->client_id,
                            call->principal->agency_id,
                            req->disclosing_party,
                            req->information_description,
                            recipients,
                            purposes,
                            req->purpose_description,
                            req->revocation_instructions,
                            S_NULL_EMPTY(req->expires_on),
                            S_NULL_EMPTY(req->expiry_event),
                            req->signed_by,
                            req->signer_relationship,
                            req->signature_method,
                            req->signed_on,
                            call->principal->staff_id};
    bc_error_t err;
    PGresult *res = NULL;
    if (bc_db_begin(call->db, &err) == 0)
        res = bc_db_prepared(
            call->db, "intake_consent_insert",
            "WITH k AS (INSERT INTO intake.consents (client_id, disclosing_party, "
            "  information_description, recipients, purposes, purpose_description, "
            "  right_to_revoke_explained, revocation_instructions, expires_on, expiry_event, "
            "  signed_by, signer_relationship, signature_method, signed_on, recorded_by) "
            "  SELECT c.id, $3, $4, ARRAY(SELECT json_array_elements_text($5::json)), "
            "  ARRAY(SELECT json_array_elements_text($6::json)), $7, true, $8, $9::date, $10, "
            "  $11, $12, $13, $14::date, $15::uuid FROM intake.clients c "
            "  WHERE c.id = $1 AND c.agency_id = $2 "
            "  AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id) RETURNING *) "
            "SELECT " S_CONSENT_COLUMNS " FROM k JOIN intake.clients c ON c.id = k.client_id",
            15, params, &err);
    free(recipients);
    free(purposes);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_NOT_FOUND, "", "no client with id %s in your scope",
                            req->client_id);
    }
    Beacon__Intake__Consent *k = s_from_row(call, res, 0);
    char *site = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 20));
    PQclear(res);
    return s_audit_write(call, k, site, "consent_given", out);
}

bc_code_t consents_revoke(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__RevokeConsentRequest *req =
        (const Beacon__Intake__RevokeConsentRequest *)in;
    if (!bc_is_uuid(req->client_id) || !bc_is_uuid(req->id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "ids must be UUIDs");
    if (*req->received_on && !s_day(req->received_on, false))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "received_on",
                            "received_on must be a date as YYYY-MM-DD, not in the future");
    const char *problem = bc_text_problem(req->note, false, 1000);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "note", "note %s", problem);
    if (!bc_is_uuid(call->principal->staff_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "only staff record revocations");
    const char *params[] = {req->id, req->client_id, S_NULL_EMPTY(req->received_on),
                            S_NULL_EMPTY(req->note), call->principal->staff_id};
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(
        call->db, "intake_consent_revoke",
        "WITH k AS (UPDATE intake.consents SET revoked_at = now(), revoked_by = $5::uuid, "
        "  revocation_received_on = coalesce($3::date, (now() AT TIME ZONE 'UTC')::date), "
        "  revocation_note = $4 WHERE id = $1 AND client_id = $2 AND revoked_at IS NULL "
        "  RETURNING *) "
        "SELECT " S_CONSENT_COLUMNS " FROM k JOIN intake.clients c ON c.id = k.client_id",
        5, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_NOT_FOUND, "",
                            "no unrevoked consent %s of client %s in your scope", req->id,
                            req->client_id);
    }
    Beacon__Intake__Consent *k = s_from_row(call, res, 0);
    char *site = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 20));
    PQclear(res);
    return s_audit_write(call, k, site, "consent_revoked", out);
}

bc_code_t consents_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__ListConsentsRequest *req =
        (const Beacon__Intake__ListConsentsRequest *)in;
    if (!bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    bc_audit_event_t ev;
    bc_code_t code = intake_read_scope(call, req->client_id, "consent", &ev);
    if (code != BC_OK)
        return code;
    const char *params[] = {req->client_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "intake_consents",
                                   "SELECT " S_CONSENT_COLUMNS " FROM intake.consents k "
                                   "JOIN intake.clients c ON c.id = k.client_id "
                                   "WHERE k.client_id = $1 ORDER BY k.created_at",
                                   1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Intake__ListConsentsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__intake__list_consents_reply__init(r);
    r->n_consents = (size_t)PQntuples(res);
    r->consents = bc_arena_alloc(call->arena, (r->n_consents + 1) * sizeof(void *));
    for (size_t i = 0; i < r->n_consents; i++)
        r->consents[i] = s_from_row(call, res, (int)i);
    PQclear(res);
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}

bc_code_t consents_check(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__CheckConsentRequest *req =
        (const Beacon__Intake__CheckConsentRequest *)in;
    if (!bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    const char *problem = bc_text_problem(req->recipient, true, 200);
    if (problem || !strcmp(req->recipient, "*"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "recipient",
                            "recipient must name one recipient");
    if (!s_in(s_purposes, req->purpose))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "purpose", "purpose is not known");
    bool disclosure = bc_call_has_role(call, INTAKE_ROLE_REFERRAL_DISCLOSURE);
    if (disclosure && (strcmp(req->purpose, "referral") || !req->with_client))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "purpose",
                            "a referral disclosure checks consent for the purpose referral");
    const char *params[] = {req->client_id, call->principal->agency_id, req->recipient,
                            req->purpose, req->with_client ? "t" : "f"};
    bc_error_t err;
    /* A referral disclosure reads the client under the policy of migration
     * 014, which holds only inside this transaction (beacon.purpose). */
    if (disclosure && (bc_db_begin(call->db, &err) < 0 ||
                       bc_db_set_local(call->db, "beacon.purpose", "referral_disclosure", &err) < 0))
        return bc_call_fail_err(call, &err);
    /* Newest valid consent naming the recipient (or, for treatment, payment
     * and operations, a general designation) for this purpose. Read now,
     * every time. With with_client, the client's card and de-identified
     * facts come from the same snapshot. */
    PGresult *res = bc_db_prepared(
        call->db, "intake_consent_check",
        "SELECT c.site_id::text, k.id::text, "
        "CASE WHEN $5 THEN c.given_name END, CASE WHEN $5 THEN c.family_name END, "
        "CASE WHEN $5 THEN coalesce(c.preferred_name, '') END, "
        "CASE WHEN $5 THEN coalesce(c.pronouns, '') END, "
        "CASE WHEN $5 THEN coalesce(c.phone, '') END, CASE WHEN $5 THEN coalesce(c.email, '') END, "
        "CASE WHEN $5 THEN c.preferred_contact_method END, CASE WHEN $5 THEN c.do_not_contact END, "
        "CASE WHEN $5 THEN coalesce(c.preferred_language, '') END, "
        "CASE WHEN NOT $5 THEN '' "
        "  WHEN a.y < 18 THEN 'under 18' WHEN a.y < 25 THEN '18-24' WHEN a.y < 35 THEN '25-34' "
        "  WHEN a.y < 45 THEN '35-44' WHEN a.y < 55 THEN '45-54' WHEN a.y < 65 THEN '55-64' "
        "  ELSE '65+' END, "
        "coalesce(k.information_description, '') FROM intake.clients c "
        "CROSS JOIN LATERAL (SELECT extract(year FROM age((now() AT TIME ZONE 'UTC')::date, "
        "  c.date_of_birth))::int AS y) a "
        "LEFT JOIN LATERAL (SELECT id, information_description FROM intake.consents k "
        "  WHERE k.client_id = c.id "
        "  AND k.revoked_at IS NULL "
        "  AND (k.expires_on IS NULL OR k.expires_on >= (now() AT TIME ZONE 'UTC')::date) "
        "  AND $4 = ANY (k.purposes) "
        "  AND ($3 = ANY (k.recipients) OR ('*' = ANY (k.recipients) "
        "       AND $4 IN ('treatment', 'payment', 'health_care_operations'))) "
        "  ORDER BY k.created_at DESC LIMIT 1) k ON true "
        "WHERE c.id = $1 AND c.agency_id = $2",
        5, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bc_audit_event_t ev = {.action = "consent_check", .resource_type = "client",
                           .resource_id = req->client_id, .client_id = req->client_id,
                           .purpose = req->purpose};
    if (PQntuples(res) == 0) {
        PQclear(res);
        return intake_not_found(call, &ev, req->client_id);
    }
    Beacon__Intake__CheckConsentReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__intake__check_consent_reply__init(r);
    ev.site_id = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 0));
    r->allowed = !PQgetisnull(res, 0, 1);
    r->consent_id = bc_arena_strdup(call->arena, r->allowed ? PQgetvalue(res, 0, 1) : "");
    r->reason = r->allowed ? ""
                           : "no active consent names this recipient for this purpose "
                             "(none given, revoked or expired)";
    if (req->with_client) {
        r->age_band = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 11));
        r->preferred_language = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 10));
        r->consent_scope = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 12));
    }
    if (req->with_client && r->allowed) {
        Beacon__Intake__DisclosedClient *c = bc_arena_alloc(call->arena, sizeof *c);
        beacon__intake__disclosed_client__init(c);
        char **text[] = {&c->given_name, &c->family_name, &c->preferred_name, &c->pronouns,
                         &c->phone,      &c->email,       &c->preferred_contact_method};
        for (int i = 0; i < 7; i++)
            *text[i] = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 2 + i));
        c->do_not_contact = PQgetvalue(res, 0, 9)[0] == 't';
        r->client = c;
    }
    PQclear(res);
    if (disclosure)
        bc_db_rollback(call->db); /* read only: nothing to keep */
    char detail[512];
    json_t *d = json_pack("{s:s, s:b, s:b}", "recipient", req->recipient, "allowed", r->allowed,
                          "with_client", req->with_client);
    char *dt = json_dumps(d, JSON_COMPACT);
    snprintf(detail, sizeof detail, "%s", dt);
    free(dt);
    json_decref(d);
    ev.detail = detail;
    ev.resource_type = "consent";
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}
