/*  referrals: sending a client to a service of the directory (or to a
 *  resource outside it) and closing the loop, through the FHIR Task
 *  lifecycle (migration 004). Every read of a referral is audited (it names
 *  a client and why they need help); every change is kept in
 *  referral_changes, audited and announced (referral.created,
 *  referral.status_changed, referral.closed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "referral.h"

#define S_TIME(col) "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"
#define S_COLUMNS                                                                                  \
    "r.id, r.client_id, r.site_id, coalesce(r.service_id::text, ''), coalesce(s.name, ''), "       \
    "coalesce(o.name, ''), coalesce(r.external_resource, ''), r.reason, r.urgency, "               \
    "coalesce(r.notes_for_receiver, ''), r.referred_by, coalesce(r.follow_up_on::text, ''), "      \
    "r.status, coalesce(r.outcome, ''), coalesce(r.outcome_note, ''), r.version, "                 \
    S_TIME("r.created_at") ", " S_TIME("r.updated_at") ", r.updated_by, " S_TIME("r.closed_at") \
    ", coalesce(r.organization_id::text, ''), r.reason_category"
#define S_NCOLUMNS 22
#define S_JOINS                                                                                    \
    " LEFT JOIN referral.services s ON s.agency_id = r.agency_id AND s.id = r.service_id"          \
    " LEFT JOIN referral.organizations o ON o.agency_id = s.agency_id AND o.id = s.organization_id"
#define S_LIST_MAX 200

/* ---- the lifecycle ------------------------------------------------------------ */

static const char *const s_terminal[] = {"rejected", "completed", "cancelled", "failed", NULL};
static const char *const s_outcomes[] = {"got_help",          "not_eligible",
                                         "no_capacity",       "could_not_contact",
                                         "no_longer_interested", "referred_elsewhere", NULL};
static const char *const s_urgencies[] = {"routine", "urgent", "asap", "stat", NULL};
static const char *const s_categories[] = {"housing",     "employment",     "treatment",
                                           "mental_health", "harm_reduction", "benefits",
                                           "food",        "legal",          "transportation",
                                           "health_care", "other",          NULL};

/* Each status and where it may go next (FHIR Task's state machine). */
static const struct {
    const char *from;
    const char *const to[7];
} s_moves[] = {
    {"requested", {"received", "accepted", "rejected", "cancelled", "failed", NULL}},
    {"received", {"accepted", "rejected", "cancelled", "failed", NULL}},
    {"accepted", {"in-progress", "on-hold", "completed", "cancelled", "failed", NULL}},
    {"in-progress", {"on-hold", "completed", "cancelled", "failed", NULL}},
    {"on-hold", {"in-progress", "cancelled", "failed", NULL}},
    {"rejected", {NULL}},
    {"completed", {NULL}},
    {"cancelled", {NULL}},
    {"failed", {NULL}},
};

static bool s_in(const char *const *list, const char *v)
{
    for (; *list; list++)
        if (!strcmp(*list, v))
            return true;
    return false;
}

bool referral_status_known(const char *status)
{
    for (size_t i = 0; i < sizeof s_moves / sizeof s_moves[0]; i++)
        if (!strcmp(s_moves[i].from, status))
            return true;
    return false;
}

bool referral_status_terminal(const char *status)
{
    return s_in(s_terminal, status);
}

bool referral_move_allowed(const char *from, const char *to)
{
    for (size_t i = 0; i < sizeof s_moves / sizeof s_moves[0]; i++)
        if (!strcmp(s_moves[i].from, from))
            return s_in(s_moves[i].to, to);
    return false;
}

/* ---- rows ---------------------------------------------------------------------- */

static Beacon__Referral__ClientReferral *s_from_row(bc_call_t *call, PGresult *res, int i)
{
    Beacon__Referral__ClientReferral *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__referral__client_referral__init(r);
    char **text[] = {&r->id,           &r->client_id,          &r->site_id,
                     &r->service_id,   &r->service_name,       &r->organization_name,
                     &r->external_resource, &r->reason,        &r->urgency,
                     &r->notes_for_receiver, &r->referred_by,  &r->follow_up_on,
                     &r->status,       &r->outcome,            &r->outcome_note};
    int c = 0;
    for (; c < (int)(sizeof text / sizeof text[0]); c++)
        *text[c] = bc_arena_strdup(call->arena, PQgetvalue(res, i, c));
    r->version = atoi(PQgetvalue(res, i, c++));
    r->created_at = bc_arena_strdup(call->arena, PQgetvalue(res, i, c++));
    r->updated_at = bc_arena_strdup(call->arena, PQgetvalue(res, i, c++));
    r->updated_by = bc_arena_strdup(call->arena, PQgetvalue(res, i, c++));
    r->closed_at = bc_arena_strdup(call->arena, PQgetvalue(res, i, c++));
    r->organization_id = bc_arena_strdup(call->arena, PQgetvalue(res, i, c++));
    r->reason_category = bc_arena_strdup(call->arena, PQgetvalue(res, i, c++));
    return r;
}

const char *referral_actor(const bc_call_t *call)
{
    return *call->principal->staff_id ? call->principal->staff_id : call->principal->api_key_id;
}

static bc_audit_event_t s_event(const Beacon__Referral__ClientReferral *r, const char *action)
{
    return (bc_audit_event_t){.site_id = r->site_id, .action = action,
                              .resource_type = "referral", .resource_id = r->id,
                              .client_id = r->client_id, .purpose = "treatment"};
}

static int s_emit(bc_call_t *call, const char *topic, const Beacon__Referral__ClientReferral *r,
                  const char *from)
{
    Beacon__Referral__ReferralEvent ev = BEACON__REFERRAL__REFERRAL_EVENT__INIT;
    ev.referral_id = r->id;
    ev.agency_id = (char *)call->principal->agency_id;
    ev.site_id = r->site_id;
    ev.client_id = r->client_id;
    ev.referred_by = r->referred_by;
    ev.service_id = r->service_id;
    ev.status = r->status;
    ev.from_status = (char *)(from ? from : "");
    ev.outcome = r->outcome;
    ev.changed_by = (char *)referral_actor(call);
    ev.follow_up_on = r->follow_up_on;
    return bc_call_emit(call, topic, &ev.base);
}

/* Records the change from `from` (NULL at creation) to r's status. */
static int s_record_change(bc_call_t *call, const Beacon__Referral__ClientReferral *r, const char *from,
                           const char *note)
{
    /* A partner's change is marked with its organisation. */
    const char *org = *call->principal->organization_id ? call->principal->organization_id : NULL;
    const char *params[] = {r->id,     call->principal->agency_id, r->site_id, r->client_id,
                            r->referred_by, from, r->status, *r->outcome ? r->outcome : NULL,
                            note && *note ? note : NULL, referral_actor(call), org};
    bc_error_t err;
    if (bc_db_command(call->db,
                      "INSERT INTO referral.referral_changes (referral_id, agency_id, site_id, "
                      "client_id, referred_by, from_status, to_status, outcome, note, changed_by, "
                      "organization_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                      11, params, &err) < 0) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    return 0;
}

/* The referral with id as the caller may see it, or NULL (call->err set:
 * NOT_FOUND for one that does not exist or is out of scope). */
static Beacon__Referral__ClientReferral *s_load(bc_call_t *call, const char *id, bool for_update)
{
    if (!bc_is_uuid(id)) {
        bc_call_fail(call, BC_NOT_FOUND, "id", "no referral with id %.40s", id);
        return NULL;
    }
    const char *params[] = {id};
    bc_error_t err;
    PGresult *res =
        for_update ? bc_db_prepared(call->db, "referral_load_update",
                                    "SELECT " S_COLUMNS " FROM referral.referrals r" S_JOINS
                                    " WHERE r.id = $1 FOR NO KEY UPDATE OF r",
                                    1, params, &err)
                   : bc_db_prepared(call->db, "referral_load",
                                    "SELECT " S_COLUMNS " FROM referral.referrals r" S_JOINS
                                    " WHERE r.id = $1",
                                    1, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_call_fail(call, BC_NOT_FOUND, "id", "no referral with id %s", id);
        return NULL;
    }
    Beacon__Referral__ClientReferral *r = s_from_row(call, res, 0);
    PQclear(res);
    return r;
}

/* Fills r->changes, oldest first. */
static bc_code_t s_changes(bc_call_t *call, Beacon__Referral__ClientReferral *r)
{
    const char *params[] = {r->id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "referral_changes",
        "SELECT coalesce(from_status, ''), to_status, coalesce(outcome, ''), coalesce(note, ''), "
        "changed_by, " S_TIME("changed_at") " FROM referral.referral_changes "
        "WHERE referral_id = $1 ORDER BY id",
        1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    r->changes = bc_arena_alloc(call->arena, (size_t)(rows ? rows : 1) * sizeof *r->changes);
    for (int i = 0; i < rows; i++) {
        Beacon__Referral__ReferralChange *c = bc_arena_alloc(call->arena, sizeof *c);
        beacon__referral__referral_change__init(c);
        char **text[] = {&c->from_status, &c->to_status, &c->outcome,
                         &c->note,        &c->changed_by, &c->changed_at};
        for (int k = 0; k < 6; k++)
            *text[k] = bc_arena_strdup(call->arena, PQgetvalue(res, i, k));
        r->changes[r->n_changes++] = c;
    }
    PQclear(res);
    return BC_OK;
}

/* ---- handlers -------------------------------------------------------------------- */

static bool s_date_ok(const char *s)
{
    int y, m, d;
    char tail;
    return strlen(s) == 10 && sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) == 3 && m >= 1 &&
           m <= 12 && d >= 1 && d <= 31 && y >= 2000 && y <= 2200;
}

bc_code_t referrals_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Referral__CreateReferralRequest *req =
        (const Beacon__Referral__CreateReferralRequest *)in;
    if (!bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    bool svc = *req->service_id, ext = *req->external_resource;
    if (svc == ext)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, svc ? "external_resource" : "service_id",
                            "a referral goes to a service of the directory (service_id) or to "
                            "a resource outside it (external_resource), one of the two");
    if (svc && !bc_is_uuid(req->service_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "service_id", "service_id must be a UUID");
    if (ext && (strlen(req->external_resource) > 500 ||
                !bc_utf8_valid(req->external_resource, strlen(req->external_resource))))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "external_resource",
                            "external_resource is 1 to 500 characters");
    size_t reason = strlen(req->reason);
    if (reason == 0 || reason > 2000)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason", "reason is 1 to 2000 characters");
    const char *urgency = *req->urgency ? req->urgency : "routine";
    if (!s_in(s_urgencies, urgency))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "urgency",
                            "urgency is routine, urgent, asap or stat");
    const char *category = *req->reason_category ? req->reason_category : "other";
    if (!s_in(s_categories, category))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason_category",
                            "reason_category is housing, employment, treatment, mental_health, "
                            "harm_reduction, benefits, food, legal, transportation, health_care "
                            "or other");
    if (strlen(req->notes_for_receiver) > 4000)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "notes_for_receiver",
                            "notes_for_receiver is at most 4000 characters");
    if (*req->follow_up_on && !s_date_ok(req->follow_up_on))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "follow_up_on",
                            "follow_up_on is a date (YYYY-MM-DD)");

    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    /* The client, with the caller's scope: out of scope is not found. */
    const char *cp[] = {req->client_id};
    PGresult *res = bc_db_prepared(call->db, "referral_client_ref",
                                   "SELECT site_id::text, status FROM intake.client_ref($1)", 1,
                                   cp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return bc_call_fail(call, BC_NOT_FOUND, "client_id", "no client with id %s",
                            req->client_id);
    }
    char *site = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 0));
    bool merged = !strcmp(PQgetvalue(res, 0, 1), "merged");
    PQclear(res);
    if (merged)
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "client_id",
                            "this client was merged into another record: refer that one");
    if (!bc_call_has_site(call, site))
        return bc_call_fail(call, BC_NOT_FOUND, "client_id", "no client with id %s",
                            req->client_id);
    if (svc) {
        const char *sp[] = {call->principal->agency_id, req->service_id};
        res = bc_db_prepared(call->db, "referral_service_status",
                             "SELECT status FROM referral.services WHERE agency_id = $1 AND id = $2",
                             2, sp, &err);
        if (!res)
            return bc_call_fail_err(call, &err);
        bool found = PQntuples(res) > 0;
        bool active = found && !strcmp(PQgetvalue(res, 0, 0), "active");
        PQclear(res);
        if (!found)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "service_id",
                                "no service with id %s in the directory", req->service_id);
        if (!active)
            return bc_call_fail(call, BC_FAILED_PRECONDITION, "service_id",
                                "the service is not active: choose another");
    }
    char id[37];
    bc_uuid_v4(id);
#define S_OPT(v) (*(v) ? (v) : NULL)
    const char *params[] = {id, call->principal->agency_id, site, req->client_id,
                            S_OPT(req->service_id), S_OPT(req->external_resource), req->reason,
                            urgency, S_OPT(req->notes_for_receiver), call->principal->staff_id,
                            S_OPT(req->follow_up_on), category};
#undef S_OPT
    /* The service's organisation is recorded with the referral: it is the
     * partner that receives it (migration 005). */
    res = bc_db_prepared(
        call->db, "referral_create",
        "WITH r AS (INSERT INTO referral.referrals (id, agency_id, site_id, client_id, service_id, "
        "external_resource, reason, urgency, notes_for_receiver, referred_by, follow_up_on, "
        "updated_by, reason_category, organization_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
        "$9, $10, $11, $10, $12, (SELECT organization_id FROM referral.services "
        "WHERE agency_id = $2 AND id = $5)) RETURNING *) "
        "SELECT " S_COLUMNS " FROM r" S_JOINS,
        12, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Referral__ClientReferral *r = s_from_row(call, res, 0);
    PQclear(res);
    bc_audit_event_t ev = s_event(r, BC_AUDIT_CREATE);
    if (s_record_change(call, r, NULL, NULL) < 0 || s_emit(call, "referral.created", r, NULL) < 0 ||
        bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}

bc_code_t referrals_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Referral__GetReferralRequest *req =
        (const Beacon__Referral__GetReferralRequest *)in;
    Beacon__Referral__ClientReferral *r = s_load(call, req->id, false);
    if (!r)
        return call->err.code;
    bc_code_t code = s_changes(call, r);
    if (code != BC_OK)
        return code;
    bc_audit_event_t ev = s_event(r, BC_AUDIT_READ);
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}

bc_code_t referrals_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Referral__ListReferralsRequest *req =
        (const Beacon__Referral__ListReferralsRequest *)in;
    const char *by = !strcmp(req->referred_by, "me") ? call->principal->staff_id : req->referred_by;
    if (*req->client_id && !bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    if (*by && !bc_is_uuid(by))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "referred_by",
                            "referred_by is me or a staff id");
    if (*req->status && !referral_status_known(req->status))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "status is one of FHIR Task's: requested, received, accepted, "
                            "rejected, in-progress, on-hold, completed, cancelled, failed");
    if (req->limit < 0 || req->limit > S_LIST_MAX)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "limit", "limit is 1 to %d", S_LIST_MAX);
    char limit[16];
    snprintf(limit, sizeof limit, "%d", req->limit ? req->limit : 50);
#define S_OPT(v) (*(v) ? (v) : NULL)
    const char *params[] = {call->principal->agency_id, S_OPT(req->client_id), S_OPT(req->status),
                            S_OPT(by), limit};
#undef S_OPT
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "referral_list",
                                   "SELECT " S_COLUMNS " FROM referral.referrals r" S_JOINS
                                   " WHERE r.agency_id = $1 "
                                   "AND ($2::uuid IS NULL OR r.client_id = $2) "
                                   "AND ($3::text IS NULL OR r.status = $3) "
                                   "AND ($4::uuid IS NULL OR r.referred_by = $4) "
                                   "ORDER BY r.created_at DESC, r.id LIMIT $5::int",
                                   5, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    Beacon__Referral__ListReferralsReply *reply = bc_arena_alloc(call->arena, sizeof *reply);
    beacon__referral__list_referrals_reply__init(reply);
    reply->referrals = bc_arena_alloc(call->arena, (size_t)(rows ? rows : 1) * sizeof *reply->referrals);
    for (int i = 0; i < rows; i++)
        reply->referrals[reply->n_referrals++] = s_from_row(call, res, i);
    PQclear(res);
    for (size_t i = 0; i < reply->n_referrals; i++) {
        bc_audit_event_t ev = s_event(reply->referrals[i], BC_AUDIT_READ);
        ev.detail = "{\"list\":true}";
        if (bc_call_audit_read(call, &ev) < 0)
            return call->err.code;
    }
    *out = &reply->base;
    return BC_OK;
}

bc_code_t referrals_change_status(bc_call_t *call, const ProtobufCMessage *in,
                                  ProtobufCMessage **out)
{
    const Beacon__Referral__ChangeReferralStatusRequest *req =
        (const Beacon__Referral__ChangeReferralStatusRequest *)in;
    if (!referral_status_known(req->status))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "status is one of FHIR Task's: requested, received, accepted, "
                            "rejected, in-progress, on-hold, completed, cancelled, failed");
    bool terminal = referral_status_terminal(req->status);
    if (terminal && !*req->outcome)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "outcome",
                            "closing a referral (%s) needs an outcome: got_help, not_eligible, "
                            "no_capacity, could_not_contact, no_longer_interested or "
                            "referred_elsewhere",
                            req->status);
    if (*req->outcome && !s_in(s_outcomes, req->outcome))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "outcome",
                            "outcome is got_help, not_eligible, no_capacity, could_not_contact, "
                            "no_longer_interested or referred_elsewhere");
    if (!terminal && *req->outcome)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "outcome",
                            "only a closing status (rejected, completed, cancelled, failed) "
                            "takes an outcome");
    if (strlen(req->note) > 2000)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "note", "note is at most 2000 characters");
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    Beacon__Referral__ClientReferral *r = s_load(call, req->id, true);
    if (!r)
        return call->err.code;
    if (req->expected_version && req->expected_version != r->version)
        return bc_call_fail(call, BC_STALE, "", "the referral changed since it was read");
    if (!referral_move_allowed(r->status, req->status))
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "status",
                            "a referral that is %s cannot become %s%s", r->status, req->status,
                            referral_status_terminal(r->status) ? ": it is closed" : "");
    char *from = r->status;
    const char *params[] = {r->id, req->status, terminal ? req->outcome : NULL,
                            terminal && *req->note ? req->note : NULL, referral_actor(call)};
    PGresult *res = bc_db_prepared(
        call->db, "referral_change_status",
        "WITH r AS (UPDATE referral.referrals SET status = $2, outcome = $3, outcome_note = $4, "
        "version = version + 1, updated_by = $5, updated_at = now(), "
        "closed_at = CASE WHEN $3::text IS NULL THEN NULL ELSE now() END "
        "WHERE id = $1 RETURNING *) SELECT " S_COLUMNS " FROM r" S_JOINS,
        5, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return bc_call_fail(call, BC_NOT_FOUND, "id", "no referral with id %s", req->id);
    }
    Beacon__Referral__ClientReferral *n = s_from_row(call, res, 0);
    PQclear(res);
    bc_audit_event_t ev = s_event(n, BC_AUDIT_UPDATE);
    char *detail = bc_arena_printf(call->arena, "{\"from\":\"%s\",\"to\":\"%s\"}", from, n->status);
    ev.detail = detail;
    if (s_record_change(call, n, from, req->note) < 0 ||
        s_emit(call, "referral.status_changed", n, from) < 0 ||
        (terminal && s_emit(call, "referral.closed", n, from) < 0) ||
        bc_call_audit_write(call, &ev) < 0)
        return call->err.code;
    if (s_changes(call, n) != BC_OK || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &n->base;
    return BC_OK;
}

bc_code_t referrals_follow_ups(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Referral__FollowUpsRequest *req = (const Beacon__Referral__FollowUpsRequest *)in;
    const char *staff = !*req->staff_id || !strcmp(req->staff_id, "me") ? call->principal->staff_id
                        : !strcmp(req->staff_id, "all")                  ? NULL
                                                                          : req->staff_id;
    if (staff && !bc_is_uuid(staff))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "staff_id",
                            "staff_id is me, all or a staff id");
    if ((!staff || strcmp(staff, call->principal->staff_id)) &&
        !bc_call_has_role(call, "supervisor"))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "staff_id",
                            "only supervisors see others' follow-ups");
    if (*req->site_id && (!bc_is_uuid(req->site_id) || !bc_call_has_site(call, req->site_id)))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id",
                            "site_id is one of your sites");
    if (*req->on && !s_date_ok(req->on))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "on", "on is a date (YYYY-MM-DD)");
    if (req->limit < 0 || req->limit > S_LIST_MAX)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "limit", "limit is 1 to %d", S_LIST_MAX);
    char limit[16];
    snprintf(limit, sizeof limit, "%d", req->limit ? req->limit : 100);
    const char *params[] = {call->principal->agency_id, staff, *req->site_id ? req->site_id : NULL,
                            *req->on ? req->on : NULL, limit};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "referral_follow_ups",
        "SELECT " S_COLUMNS ", coalesce($4::date, (now() AT TIME ZONE 'UTC')::date) - r.follow_up_on "
        "FROM referral.referrals r" S_JOINS
        " WHERE r.agency_id = $1 AND ($2::uuid IS NULL OR r.referred_by = $2) "
        "AND ($3::uuid IS NULL OR r.site_id = $3) "
        "AND r.status NOT IN ('rejected', 'completed', 'cancelled', 'failed') "
        "AND r.follow_up_on < coalesce($4::date, (now() AT TIME ZONE 'UTC')::date) "
        "ORDER BY r.follow_up_on, r.created_at, r.id LIMIT $5::int",
        5, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    Beacon__Referral__FollowUpsReply *reply = bc_arena_alloc(call->arena, sizeof *reply);
    beacon__referral__follow_ups_reply__init(reply);
    reply->referrals = bc_arena_alloc(call->arena, (size_t)(rows ? rows : 1) * sizeof *reply->referrals);
    for (int i = 0; i < rows; i++) {
        Beacon__Referral__ClientReferral *r = s_from_row(call, res, i);
        r->days_past_follow_up = atoi(PQgetvalue(res, i, S_NCOLUMNS));
        reply->referrals[reply->n_referrals++] = r;
    }
    PQclear(res);
    /* Loop closure: referred to closed, over the last 90 days, same people. */
    const char *sp[] = {call->principal->agency_id, staff, *req->site_id ? req->site_id : NULL};
    res = bc_db_prepared(
        call->db, "referral_closure_times",
        "SELECT count(*), coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY d), 0), "
        "coalesce(percentile_cont(0.9) WITHIN GROUP (ORDER BY d), 0) FROM ("
        "SELECT extract(epoch FROM r.closed_at - r.created_at) / 86400 AS d "
        "FROM referral.referrals r WHERE r.agency_id = $1 "
        "AND ($2::uuid IS NULL OR r.referred_by = $2) AND ($3::uuid IS NULL OR r.site_id = $3) "
        "AND r.closed_at > now() - interval '90 days') c",
        3, sp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    reply->closed_last_90_days = atoi(PQgetvalue(res, 0, 0));
    reply->median_days_to_close = round(atof(PQgetvalue(res, 0, 1)) * 100) / 100;
    reply->p90_days_to_close = round(atof(PQgetvalue(res, 0, 2)) * 100) / 100;
    PQclear(res);
    for (size_t i = 0; i < reply->n_referrals; i++) {
        bc_audit_event_t ev = s_event(reply->referrals[i], BC_AUDIT_READ);
        ev.detail = "{\"follow_up\":true}";
        if (bc_call_audit_read(call, &ev) < 0)
            return call->err.code;
    }
    *out = &reply->base;
    return BC_OK;
}
