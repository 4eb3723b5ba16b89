/*  break_glass: emergency access to one client outside the caller's
 *  ordinary scope (a client of another site who turns up in crisis, a
 *  colleague's caseload out of hours).
 *
 *  Opening a grant needs a reason and is limited in time (the
 *  break_glass_default_minutes and break_glass_max_minutes settings, never
 *  beyond the 8 hours the table allows). It is audited as "break_glass" with
 *  the reason as purpose, and every read made through it is audited with
 *  purpose "break_glass". Supervisors list the grants made for the clients
 *  of their sites (ListBreakGlass).
 *
 *  Existence is not leaked: the grant is inserted first and the client then
 *  read through it; if that read finds nothing (no such client in the
 *  caller's agency) the whole transaction is rolled back and the answer is
 *  the same 404 as for an id that never existed.
 */
#include <stdbool.h>
#include <string.h>

#include "bc_util.h"
#include "intake.h"

#define S_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define S_GRANT_COLUMNS                                                                            \
    "id::text, client_id::text, staff_id::text, coalesce(site_id::text, ''), reason, " S_TIME(     \
        "granted_at") ", " S_TIME("expires_at")

static Beacon__Intake__BreakGlassGrant *s_grant_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Intake__BreakGlassGrant *g = bc_arena_alloc(call->arena, sizeof *g);
    beacon__intake__break_glass_grant__init(g);
    char **fields[] = {&g->id,     &g->client_id,  &g->staff_id,  &g->site_id,
                       &g->reason, &g->granted_at, &g->expires_at};
    for (int i = 0; i < (int)(sizeof fields / sizeof fields[0]); i++)
        *fields[i] = bc_arena_strdup(call->arena, PQgetvalue(res, row, i));
    return g;
}

/* Records a refused opening (after the rollback) and answers 404. */
static bc_code_t s_not_found(bc_call_t *call, const char *client_id, const char *reason)
{
    bc_audit_event_t ev = {
        .action = BC_AUDIT_BREAK_GLASS,
        .resource_type = "client",
        .resource_id = client_id,
        .client_id = client_id,
        .purpose = reason,
        .outcome = BC_AUDIT_DENIED,
    };
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    return bc_call_fail(call, BC_NOT_FOUND, "", "no client with id %s", client_id);
}

bc_code_t break_glass_open(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__OpenBreakGlassRequest *req =
        (const Beacon__Intake__OpenBreakGlassRequest *)in;
    int64_t max = bc_config_int(call->config, "break_glass_max_minutes");
    int64_t minutes =
        req->minutes ? req->minutes : bc_config_int(call->config, "break_glass_default_minutes");
    if (minutes > max)
        minutes = max;
    const char *problem = bc_text_problem(req->reason, true, 1000);
    if (!bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason", "reason %s", problem);
    if (strlen(req->reason) < 10)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason",
                            "reason must say why (at least 10 characters)");
    if (req->minutes < 0 || req->minutes > max)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "minutes",
                            "minutes must be between 1 and %lld", (long long)max);
    if (!*call->principal->staff_id)
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "only staff may break the glass");

    char mins[24];
    snprintf(mins, sizeof mins, "%lld", (long long)minutes);
    const char *params[] = {
        call->principal->agency_id, call->principal->staff_id, req->client_id, req->reason, mins,
        call->request->request_id};
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(
        call->db, "intake_break_glass_insert",
        "INSERT INTO intake.break_glass (agency_id, staff_id, client_id, reason, expires_at, "
        "request_id) VALUES ($1, $2, $3, $4, now() + make_interval(mins => $5::int), $6) "
        "RETURNING id::text",
        6, params, &err);
    if (!res) {
        bc_db_rollback(call->db);
        if (err.code == BC_FAILED_PRECONDITION) /* no such client at all */
            return s_not_found(call, req->client_id, req->reason);
        return bc_call_fail_err(call, &err);
    }
    char grant_id[40];
    snprintf(grant_id, sizeof grant_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    /* Through the new grant: found only if the client is in the caller's
     * agency. in_scope says whether the glass needed breaking at all. */
    res = bc_db_prepared(call->db, "intake_break_glass_client",
                         "SELECT site_id::text, coalesce(intake.in_scope(agency_id, site_id, "
                         "assigned_staff_id), false) FROM intake.clients WHERE id = $1",
                         1, (const char *[]){req->client_id}, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_db_rollback(call->db);
        return s_not_found(call, req->client_id, req->reason);
    }
    bool in_scope = PQgetvalue(res, 0, 1)[0] == 't';
    char site[40];
    snprintf(site, sizeof site, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (in_scope) {
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "client_id",
                            "this client is already in your scope: no break-glass needed");
    }
    res = bc_db_prepared(call->db, "intake_break_glass_place",
                         "UPDATE intake.break_glass SET site_id = $2 WHERE id = $1 "
                         "RETURNING " S_GRANT_COLUMNS,
                         2, (const char *[]){grant_id, site}, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Intake__BreakGlassGrant *g = s_grant_from_row(call, res, 0);
    PQclear(res);
    char detail[160];
    snprintf(detail, sizeof detail, "{\"grant_id\":\"%s\",\"expires_at\":\"%s\"}", g->id,
             g->expires_at);
    bc_audit_event_t ev = {
        .site_id = g->site_id,
        .action = BC_AUDIT_BREAK_GLASS,
        .resource_type = "client",
        .resource_id = g->client_id,
        .client_id = g->client_id,
        .purpose = g->reason,
        .detail = detail,
    };
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &g->base;
    return BC_OK;
}

bc_code_t break_glass_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__ListBreakGlassRequest *req =
        (const Beacon__Intake__ListBreakGlassRequest *)in;
    if (req->limit < 0 || req->limit > 500)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "limit", "limit must be 1 to 500");
    char limit[16];
    snprintf(limit, sizeof limit, "%d", req->limit ? req->limit : 100);
    const char *params[] = {*req->since ? req->since : NULL, limit};
    bc_error_t err;
    /* Row security shows the caller's own grants and, to supervisors, the
     * grants for clients of their sites. */
    PGresult *res =
        bc_db_prepared(call->db, "intake_break_glass_list",
                       "SELECT " S_GRANT_COLUMNS " FROM intake.break_glass "
                       "WHERE granted_at >= coalesce($1::timestamptz, now() - interval '30 days') "
                       "ORDER BY granted_at DESC, id LIMIT $2::int",
                       2, params, &err);
    if (!res) {
        if (err.code == BC_INVALID_ARGUMENT)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "since",
                                "since must be an RFC 3339 time");
        return bc_call_fail_err(call, &err);
    }
    Beacon__Intake__ListBreakGlassReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__intake__list_break_glass_reply__init(r);
    r->n_grants = (size_t)PQntuples(res);
    r->grants = bc_arena_alloc(call->arena, (r->n_grants ? r->n_grants : 1) * sizeof *r->grants);
    for (size_t i = 0; i < r->n_grants; i++)
        r->grants[i] = s_grant_from_row(call, res, (int)i);
    PQclear(res);
    char detail[64];
    snprintf(detail, sizeof detail, "{\"grants\":%zu}", r->n_grants);
    bc_audit_event_t ev = {
        .action = BC_AUDIT_READ,
        .resource_type = "break_glass_list",
        .purpose = "oversight",
        .detail = detail,
    };
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}
