/*  roster: who is on a group session's roster. Enrolling (capacity
 *  permitting, counted on the series row under its lock, as the caller may
 *  not see every member), leaving with a reason, and the roster as the
 *  caller may see it (row security: the site's supervisors, the group's
 *  facilitators, whoever may read the client in intake). Rosters are client
 *  data: every change is audited as a write of the client's record and
 *  every roster shown as a read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"
#include "scheduling.h"

bc_code_t sched_roster_read(bc_call_t *call, Beacon__Scheduling__GroupSession *g)
{
    const char *params[] = {g->id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "sched_roster",
        "SELECT client_id::text, " SCHED_US("enrolled_at") ", enrolled_by::text, "
        "coalesce(" SCHED_US("left_at") ", 0), coalesce(left_reason, ''), "
        "coalesce(override_reason, '') "
        "FROM scheduling.group_roster WHERE group_id = $1 ORDER BY left_at NULLS FIRST, enrolled_at",
        1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int n = PQntuples(res);
    g->roster = bc_arena_alloc(call->arena, (size_t)(n ? n : 1) * sizeof *g->roster);
    for (int i = 0; i < n; i++) {
        Beacon__Scheduling__RosterEntry *r = bc_arena_alloc(call->arena, sizeof *r);
        beacon__scheduling__roster_entry__init(r);
        r->client_id = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        r->enrolled_at = sched_time_value(call, res, i, 1);
        r->enrolled_by = bc_arena_strdup(call->arena, PQgetvalue(res, i, 2));
        r->left_at = sched_us_value(res, i, 3) ? sched_time_value(call, res, i, 3) : "";
        r->left_reason = bc_arena_strdup(call->arena, PQgetvalue(res, i, 4));
        r->override_reason = bc_arena_strdup(call->arena, PQgetvalue(res, i, 5));
        g->roster[g->n_roster++] = r;
    }
    PQclear(res);
    for (size_t i = 0; i < g->n_roster; i++) {
        bc_audit_event_t ev = {.site_id = g->site_id, .action = BC_AUDIT_READ,
                               .resource_type = "group_roster", .resource_id = g->id,
                               .client_id = g->roster[i]->client_id, .purpose = "treatment"};
        if (bc_call_audit_read(call, &ev) < 0)
            return call->err.code;
    }
    return BC_OK;
}

/* The client's roster row (*out NULL when there is none), or -1 with
 * call->err set. */
static int s_roster_entry(bc_call_t *call, const char *group_id, const char *client_id,
                          Beacon__Scheduling__RosterEntry **out)
{
    const char *params[] = {group_id, client_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "sched_roster_entry",
        "SELECT client_id::text, " SCHED_US("enrolled_at") ", enrolled_by::text, "
        "coalesce(" SCHED_US("left_at") ", 0), coalesce(left_reason, ''), "
        "coalesce(override_reason, '') "
        "FROM scheduling.group_roster WHERE group_id = $1 AND client_id = $2",
        2, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    Beacon__Scheduling__RosterEntry *r = NULL;
    if (PQntuples(res)) {
        r = bc_arena_alloc(call->arena, sizeof *r);
        beacon__scheduling__roster_entry__init(r);
        r->client_id = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 0));
        r->enrolled_at = sched_time_value(call, res, 0, 1);
        r->enrolled_by = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 2));
        r->left_at = sched_us_value(res, 0, 3) ? sched_time_value(call, res, 0, 3) : "";
        r->left_reason = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 4));
        r->override_reason = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 5));
    }
    PQclear(res);
    *out = r;
    return 0;
}

/* The series locked for a roster change (any care-team member at its site
 * may enrol a client they may see). */
static Beacon__Scheduling__GroupSession *s_open_roster(bc_call_t *call, const char *group_id,
                                                       const char *client_id)
{
    if (!bc_is_uuid(client_id)) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
        return NULL;
    }
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    Beacon__Scheduling__GroupSession *g = sched_group_load(call, group_id, true);
    if (g && strcmp(g->status, "active")) {
        bc_call_fail(call, BC_FAILED_PRECONDITION, "group_id", "the group session is %s",
                     g->status);
        return NULL;
    }
    return g;
}

/* A roster change (name/sql with n params), the series' count moved by
 * delta, the audit record, and the entry as it now reads for the reply. */
static bc_code_t s_roster_write(bc_call_t *call, const Beacon__Scheduling__GroupSession *g,
                                const char *client_id, const char *action, const char *name,
                                const char *sql, int n, const char *const *params,
                                const char *delta, ProtobufCMessage **out)
{
    const char *count[] = {g->id, delta, call->principal->staff_id};
    bc_error_t err;
    if (bc_db_defer(call->db, name, sql, n, params, NULL, NULL, &err) < 0 ||
        bc_db_defer(call->db, "sched_roster_count",
                    "UPDATE scheduling.groups SET enrolled = enrolled + $2::int, "
                    "updated_by = $3, updated_at = now() WHERE id = $1",
                    3, count, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    bc_audit_event_t ev = {.site_id = g->site_id, .action = action,
                           .resource_type = "group_roster", .resource_id = g->id,
                           .client_id = client_id, .purpose = "treatment"};
    Beacon__Scheduling__RosterEntry *r;
    if (bc_call_audit_write(call, &ev) < 0 || s_roster_entry(call, g->id, client_id, &r) < 0)
        return call->err.code;
    if (!r)
        return bc_call_fail(call, BC_PERMISSION_DENIED, "client_id",
                            "you may not see this client's place on the roster");
    if (bc_call_commit(call) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}

bc_code_t groups_enroll(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__RosterRequest *req = (const Beacon__Scheduling__RosterRequest *)in;
    bc_code_t code = sched_check_override(call, req->override_conflicts, req->override_reason);
    if (code != BC_OK)
        return code;
    Beacon__Scheduling__GroupSession *g = s_open_roster(call, req->group_id, req->client_id);
    if (!g)
        return call->err.code;
    sched_client_t client;
    if ((code = sched_client(call, req->client_id, &client)) != BC_OK)
        return code;
    Beacon__Scheduling__RosterEntry *r;
    if (s_roster_entry(call, g->id, req->client_id, &r) < 0)
        return call->err.code;
    if (r && !*r->left_at)
        return bc_call_fail(call, BC_CONFLICT, "client_id", "the client is already on the roster");
    if (g->enrolled >= g->capacity)
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "group_id",
                            "the group is full (capacity %d): raise its capacity or choose "
                            "another group",
                            g->capacity);
    if ((code = sched_enrol_conflicts(call, g->id, req->client_id, req->override_conflicts)) !=
        BC_OK)
        return code;
    const char *params[] = {g->id, req->client_id, call->principal->agency_id, g->site_id,
                            call->principal->staff_id,
                            req->override_conflicts ? req->override_reason : NULL};
    return s_roster_write(call, g, req->client_id, BC_AUDIT_CREATE, "sched_roster_enroll",
                          "INSERT INTO scheduling.group_roster (group_id, client_id, agency_id, "
                          "site_id, enrolled_by, override_reason) VALUES ($1, $2, $3, $4, $5, $6) "
                          "ON CONFLICT (group_id, client_id) DO UPDATE SET enrolled_by = $5, "
                          "enrolled_at = now(), left_by = NULL, left_at = NULL, "
                          "left_reason = NULL, override_reason = $6",
                          6, params, "1", out);
}

bc_code_t groups_leave(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__RosterRequest *req = (const Beacon__Scheduling__RosterRequest *)in;
    const char *problem = bc_text_problem(req->reason, false, 500);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason", "reason %s", problem);
    Beacon__Scheduling__GroupSession *g = s_open_roster(call, req->group_id, req->client_id);
    if (!g)
        return call->err.code;
    Beacon__Scheduling__RosterEntry *r;
    if (s_roster_entry(call, g->id, req->client_id, &r) < 0)
        return call->err.code;
    if (!r || *r->left_at)
        return bc_call_fail(call, BC_NOT_FOUND, "client_id", "the client is not on the roster");
    const char *params[] = {g->id, req->client_id, call->principal->staff_id,
                            *req->reason ? req->reason : NULL};
    return s_roster_write(call, g, req->client_id, BC_AUDIT_UPDATE, "sched_roster_leave",
                          "UPDATE scheduling.group_roster SET left_by = $3, left_at = now(), "
                          "left_reason = $4 WHERE group_id = $1 AND client_id = $2",
                          4, params, "-1", out);
}
