/*  caseload: listing the clients a caller works with, and who holds each
 *  client on their caseload (assignment, with history).
 *
 *  Lists are scope-filtered twice like every read (the filters here, row
 *  security underneath) and paginated by a cursor: the position (created_at
 *  in microseconds, id) of the last client of the page, so pages stay
 *  stable while clients are added. Every listed client is audited as read.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bc_util.h"
#include "intake.h"

#define S_LIST_MAX 200
#define S_LIST_DEFAULT 50

/* "<microseconds>.<uuid>" into its parts; false when malformed. */
static bool s_parse_cursor(const char *cursor, char us[24], char id[40])
{
    const char *dot = strchr(cursor, '.');
    size_t n = dot ? (size_t)(dot - cursor) : 0;
    if (!dot || n == 0 || n > 20 || !bc_is_uuid(dot + 1))
        return false;
    for (size_t i = 0; i < n; i++)
        if (cursor[i] < '0' || cursor[i] > '9')
            return false;
    memcpy(us, cursor, n);
    us[n] = '\0';
    snprintf(id, 40, "%s", dot + 1);
    return true;
}

bc_code_t caseload_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__ListClientsRequest *req =
        (const Beacon__Intake__ListClientsRequest *)in;
    const Beacon__Principal *p = call->principal;
    if (!bc_is_uuid(p->agency_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "no agency in the caller's scope");
    if (*req->site_id && !bc_is_uuid(req->site_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    if (*req->site_id && !bc_call_has_site(call, req->site_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "site_id", "not one of your sites");
    const char *assigned = req->assigned_staff_id;
    if (!strcmp(assigned, "me"))
        assigned = p->staff_id;
    if (*assigned && !bc_is_uuid(assigned))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "assigned_staff_id",
                            "assigned_staff_id must be a UUID or \"me\"");
    if (*req->status && strcmp(req->status, "active") && strcmp(req->status, "inactive") &&
        strcmp(req->status, "discharged") && strcmp(req->status, "merged"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "status must be one of active, inactive, discharged, merged");
    if (req->limit < 0 || req->limit > S_LIST_MAX)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "limit", "limit must be 1 to %d",
                            S_LIST_MAX);
    int limit = req->limit ? req->limit : S_LIST_DEFAULT;
    char us[24] = "", after[40] = "";
    if (*req->cursor && !s_parse_cursor(req->cursor, us, after))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "cursor",
                            "cursor must be a next_cursor this API returned");
    /* One more row than the page: is there a next page? The row count is
     * written into the statement, rounded up to one of a few sizes (the
     * extra rows are not returned): a LIMIT given as a parameter is planned
     * as if it kept a tenth of the table, which makes the generic plan look
     * a hundred times dearer than it is, so PostgreSQL would plan every
     * execution afresh. */
    int fetch = limit + 1 <= 26 ? 26 : limit + 1 <= 51 ? 51 : limit + 1 <= 101 ? 101 : S_LIST_MAX + 1;
    /* One statement per combination of filters, each naming only the filters
     * it has: a statement with "$2 IS NULL OR site_id = $2" for every
     * optional filter gets a custom plan each time (planning, with the row
     * policies' functions inlined, cost more than running the page), while
     * these keep one generic plan per connection. The text comes from the
     * fixed fragments below only; every value is a parameter. */
    const char *params[6] = {p->agency_id};
    int n = 1;
    unsigned mask = 0;
    char where[512] = "";
    size_t w = 0;
    if (*req->site_id) {
        params[n++] = req->site_id;
        w += (size_t)snprintf(where + w, sizeof where - w, " AND site_id = $%d::uuid", n);
        mask |= 1;
    }
    if (*assigned) {
        params[n++] = assigned;
        w += (size_t)snprintf(where + w, sizeof where - w, " AND assigned_staff_id = $%d::uuid", n);
        mask |= 2;
    }
    if (*req->status) {
        params[n++] = req->status;
        w += (size_t)snprintf(where + w, sizeof where - w, " AND status = $%d", n);
        mask |= 4;
    } else {
        w += (size_t)snprintf(where + w, sizeof where - w, " AND status <> 'merged'");
    }
    if (*us) {
        params[n++] = us;
        params[n++] = after;
        w += (size_t)snprintf(where + w, sizeof where - w,
                              " AND (created_at, id) < (timestamptz 'epoch' + $%d::bigint"
                              " * interval '1 microsecond', $%d::uuid)",
                              n - 1, n);
        mask |= 8;
    }
    char name[48], sql[2048];
    snprintf(name, sizeof name, "intake_caseload_list_%u_%d", mask, fetch);
    snprintf(sql, sizeof sql,
             "SELECT " INTAKE_CLIENT_COLUMNS ", "
             "(extract(epoch FROM created_at) * 1000000)::bigint::text "
             "FROM intake.clients WHERE agency_id = $1::uuid%s "
             "ORDER BY created_at DESC, id DESC LIMIT %d",
             where, fetch);
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, name, sql, n, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    Beacon__Intake__ListClientsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__intake__list_clients_reply__init(r);
    r->n_clients = (size_t)(rows > limit ? limit : rows);
    r->clients = bc_arena_alloc(call->arena, (r->n_clients ? r->n_clients : 1) * sizeof(void *));
    for (size_t i = 0; i < r->n_clients; i++)
        if (!(r->clients[i] = intake_client_from_row(call, res, (int)i))) {
            PQclear(res);
            return call->err.code;
        }
    if (rows > limit) {
        char next[80];
        snprintf(next, sizeof next, "%s.%s", PQgetvalue(res, limit - 1, INTAKE_CLIENT_NCOLUMNS),
                 r->clients[limit - 1]->id);
        r->next_cursor = bc_arena_strdup(call->arena, next);
    }
    PQclear(res);
    for (size_t i = 0; i < r->n_clients; i++) {
        const Beacon__Intake__Client *c = r->clients[i];
        bc_audit_event_t ev = {
            .site_id = c->site_id,
            .action = BC_AUDIT_READ,
            .resource_type = "client",
            .resource_id = c->id,
            .client_id = c->id,
            .purpose = intake_in_scope(call, c) ? "treatment" : "break_glass",
            .detail = "{\"via\":\"caseload_list\"}",
        };
        if (bc_call_audit_read(call, &ev) < 0)
            return call->err.code;
    }
    *out = &r->base;
    return BC_OK;
}

bc_code_t caseload_assign(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__AssignClientRequest *req =
        (const Beacon__Intake__AssignClientRequest *)in;
    if (!bc_is_uuid(req->id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
    if (*req->staff_id && !bc_is_uuid(req->staff_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "staff_id",
                            "staff_id must be a UUID, or empty to unassign");
    const char *problem = bc_text_problem(req->reason, false, 500);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason", "reason %s", problem);
    if (!bc_call_has_role(call, "supervisor") || !bc_is_uuid(call->principal->staff_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "",
                            "a supervisor assigns clients to caseloads");
    char version[16];
    snprintf(version, sizeof version, "%d", req->expected_version);
    const char *params[] = {req->id, call->principal->agency_id,
                            *req->staff_id ? req->staff_id : NULL,
                            req->expected_version ? version : NULL, call->principal->staff_id};
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(
        call->db, "intake_client_assign",
        "WITH prior AS (SELECT id AS prior_id, assigned_staff_id AS prior_staff "
        "               FROM intake.clients WHERE id = $1 AND agency_id = $2 FOR UPDATE) "
        "UPDATE intake.clients SET assigned_staff_id = $3::uuid, version = version + 1, "
        "updated_at = now(), updated_by = $5 FROM prior "
        "WHERE id = prior_id AND ($4::int IS NULL OR version = $4::int) "
        "AND assigned_staff_id IS DISTINCT FROM $3::uuid "
        "RETURNING " INTAKE_CLIENT_COLUMNS ", prior_staff::text",
        5, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        res = bc_db_prepared(call->db, "intake_client_assigned",
                             "SELECT version, coalesce(assigned_staff_id::text, '') "
                             "FROM intake.clients WHERE id = $1 AND agency_id = $2",
                             2, params, &err);
        if (!res)
            return bc_call_fail_err(call, &err);
        bool exists = PQntuples(res) > 0;
        int current = exists ? atoi(PQgetvalue(res, 0, 0)) : 0;
        bool same = exists && !strcmp(PQgetvalue(res, 0, 1), req->staff_id);
        PQclear(res);
        bc_db_rollback(call->db);
        if (!exists)
            return bc_call_fail(call, BC_NOT_FOUND, "", "no client with id %s", req->id);
        if (same)
            return bc_call_fail(call, BC_FAILED_PRECONDITION, "staff_id",
                                "the client is already assigned so");
        if (req->expected_version && current != req->expected_version)
            return bc_call_fail(call, BC_STALE, "expected_version",
                                "the client was changed since you read it (now version %d)",
                                current);
        return bc_call_fail(call, BC_PERMISSION_DENIED, "",
                            "you cannot change this client's assignment");
    }
    Beacon__Intake__Client *c = intake_client_from_row(call, res, 0);
    const char *prior = PQgetisnull(res, 0, INTAKE_CLIENT_NCOLUMNS)
                            ? NULL
                            : bc_arena_strdup(call->arena, PQgetvalue(res, 0, INTAKE_CLIENT_NCOLUMNS));
    PQclear(res);
    if (!c)
        return call->err.code;
    /* The registration assignment becomes history now, before it ends. */
    const char *kp[] = {req->id, prior};
    if (bc_db_defer(call->db, "intake_keep_registration_closed",
                    "SELECT intake.keep_registration_assignment($1, $2, now())", 2, kp, NULL,
                    NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    const char *hp[] = {req->id, *req->staff_id ? req->staff_id : NULL,
                        call->principal->staff_id, req->reason};
    if (bc_db_defer(call->db, "intake_assignment_next",
                    "WITH e AS (UPDATE intake.client_assignments SET ended_at = now() "
                    "           WHERE client_id = $1 AND ended_at IS NULL) "
                    "INSERT INTO intake.client_assignments (client_id, staff_id, "
                    "assigned_by, reason) VALUES ($1, $2::uuid, $3, $4)",
                    4, hp, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    if (intake_emit_assignment(call, c->id, c->site_id, c->assigned_staff_id, c->status) < 0)
        return call->err.code;
    char detail[160];
    snprintf(detail, sizeof detail, "{\"assigned_staff_id\":\"%s\"}", req->staff_id);
    bc_audit_event_t ev = {
        .site_id = c->site_id,
        .action = BC_AUDIT_UPDATE,
        .resource_type = "client_assignment",
        .resource_id = c->id,
        .client_id = c->id,
        .purpose = "operations",
        .detail = detail,
    };
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &c->base;
    return BC_OK;
}

bc_code_t caseload_history(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__ListAssignmentsRequest *req =
        (const Beacon__Intake__ListAssignmentsRequest *)in;
    if (!bc_is_uuid(req->id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
    const char *params[] = {req->id, call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "intake_assignment_history",
        "SELECT coalesce(a.staff_id::text, ''), a.assigned_by::text, "
        INTAKE_TIME("a.assigned_at") ", coalesce(" INTAKE_TIME("a.ended_at") ", ''), a.reason, "
        "c.site_id::text FROM intake.clients c "
        "LEFT JOIN LATERAL ("
        "  SELECT id, staff_id, assigned_by::text, assigned_at, ended_at, reason "
        "  FROM intake.client_assignments WHERE client_id = c.id "
        "  UNION ALL " /* no history yet: the registration assignment, from the client */
        "  SELECT NULL, c.assigned_staff_id, c.created_by, c.created_at, NULL, "
        "         'registered the client' "
        "  WHERE c.assigned_staff_id IS NOT NULL "
        "    AND NOT EXISTS (SELECT FROM intake.client_assignments h WHERE h.client_id = c.id)"
        ") a ON true "
        "WHERE c.id = $1 AND c.agency_id = $2 ORDER BY a.assigned_at, a.id",
        2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bc_audit_event_t ev = {
        .action = BC_AUDIT_READ,
        .resource_type = "client_assignment",
        .resource_id = req->id,
        .client_id = req->id,
        .purpose = "treatment",
    };
    int rows = PQntuples(res);
    if (rows == 0) {
        PQclear(res);
        return intake_not_found(call, &ev, req->id);
    }
    Beacon__Intake__ListAssignmentsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__intake__list_assignments_reply__init(r);
    r->assignments = bc_arena_alloc(call->arena, (size_t)rows * sizeof(void *));
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, 2))
            continue; /* the client, without any assignment yet */
        Beacon__Intake__Assignment *a = bc_arena_alloc(call->arena, sizeof *a);
        beacon__intake__assignment__init(a);
        char **f[] = {&a->staff_id, &a->assigned_by, &a->assigned_at, &a->ended_at, &a->reason};
        for (int k = 0; k < 5; k++)
            *f[k] = bc_arena_strdup(call->arena, PQgetvalue(res, i, k));
        r->assignments[r->n_assignments++] = a;
    }
    ev.site_id = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 5));
    PQclear(res);
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}

bc_code_t caseload_merge(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__MergeClientsRequest *req =
        (const Beacon__Intake__MergeClientsRequest *)in;
    if (!bc_is_uuid(req->id) || !bc_is_uuid(req->duplicate_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "duplicate_id", "ids must be UUIDs");
    if (!strcasecmp(req->id, req->duplicate_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "duplicate_id",
                            "a client cannot be merged into itself");
    const char *problem = bc_text_problem(req->reason, true, 500);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason", "reason %s", problem);
    if (!bc_call_has_role(call, "supervisor") || !bc_is_uuid(call->principal->staff_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "a supervisor merges duplicates");
    const char *params[] = {req->id, req->duplicate_id, call->principal->agency_id};
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    /* Both in the caller's ordinary scope and not already merged; locked
     * for the move. */
    PGresult *res = bc_db_prepared(
        call->db, "intake_merge_lock",
        "SELECT id::text, status, site_id::text, coalesce(assigned_staff_id::text, '') "
        "FROM intake.clients WHERE id IN ($1::uuid, $2::uuid) "
        "AND agency_id = $3 AND intake.in_scope(agency_id, site_id, assigned_staff_id) "
        "ORDER BY id FOR UPDATE",
        3, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int found = PQntuples(res);
    bool merged = false;
    const char *dup_site = "", *dup_staff = "";
    for (int i = 0; i < found; i++) {
        merged |= !strcmp(PQgetvalue(res, i, 1), "merged");
        if (!strcasecmp(PQgetvalue(res, i, 0), req->duplicate_id)) {
            dup_site = bc_arena_strdup(call->arena, PQgetvalue(res, i, 2));
            dup_staff = bc_arena_strdup(call->arena, PQgetvalue(res, i, 3));
        }
    }
    PQclear(res);
    if (found != 2) {
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_NOT_FOUND, "", "both clients must exist in your scope");
    }
    if (merged) {
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "duplicate_id",
                            "one of the clients was already merged");
    }
    /* Registration assignments become history before the history moves. */
    if (bc_db_defer(call->db, "intake_keep_registration_open",
                    "SELECT intake.keep_registration_assignment(id, assigned_staff_id, NULL) "
                    "FROM intake.clients WHERE id IN ($1::uuid, $2::uuid)",
                    2, params, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    res = bc_db_prepared(
        call->db, "intake_merge_move",
        "WITH e AS (UPDATE intake.enrollments SET client_id = $1 WHERE client_id = $2 RETURNING 1), "
        "k AS (UPDATE intake.consents SET client_id = $1 WHERE client_id = $2 RETURNING 1), "
        "a AS (UPDATE intake.assessments SET client_id = $1 WHERE client_id = $2 RETURNING 1), "
        "g AS (UPDATE intake.goals SET client_id = $1 WHERE client_id = $2 RETURNING 1), "
        "h AS (UPDATE intake.client_assignments SET client_id = $1 WHERE client_id = $2 "
        "      RETURNING 1) "
        "SELECT json_build_object('enrollments', (SELECT count(*) FROM e), "
        "  'consents', (SELECT count(*) FROM k), 'assessments', (SELECT count(*) FROM a), "
        "  'goals', (SELECT count(*) FROM g), 'assignments', (SELECT count(*) FROM h))::text",
        2, params, &err);
    if (!res) {
        if (err.code == BC_ALREADY_EXISTS)
            return bc_call_fail(call, BC_FAILED_PRECONDITION, "duplicate_id",
                                "both clients have an open enrollment: discharge one first");
        return bc_call_fail_err(call, &err);
    }
    char *moved = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *mp[] = {req->id, req->duplicate_id, call->principal->staff_id, req->reason, moved};
    res = bc_db_prepared(
        call->db, "intake_merge_mark",
        "WITH d AS (UPDATE intake.clients SET status = 'merged', merged_into = $1::uuid, "
        "           version = version + 1, updated_at = now(), updated_by = $3 "
        "           WHERE id = $2::uuid RETURNING 1), "
        "x AS (DELETE FROM intake.client_match_keys WHERE client_id = $2::uuid), "
        "m AS (INSERT INTO intake.client_merges (survivor_id, duplicate_id, merged_by, reason, "
        "      moved) VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5::jsonb) RETURNING 1) "
        "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM m)",
        5, mp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    PQclear(res);
    const char *gp[] = {req->id, call->principal->agency_id};
    res = bc_db_prepared(call->db, "intake_merge_survivor",
                         "SELECT " INTAKE_CLIENT_COLUMNS " FROM intake.clients "
                         "WHERE id = $1 AND agency_id = $2",
                         2, gp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Intake__Client *c = PQntuples(res) ? intake_client_from_row(call, res, 0) : NULL;
    PQclear(res);
    if (!c)
        return call->err.code ? call->err.code
                              : bc_call_fail(call, BC_INTERNAL, "", "the survivor vanished");
    if (intake_emit_assignment(call, req->duplicate_id, dup_site, dup_staff, "merged") < 0)
        return call->err.code;
    char detail[300];
    snprintf(detail, sizeof detail, "{\"duplicate_id\":\"%s\",\"moved\":%s}", req->duplicate_id,
             moved);
    bc_audit_event_t ev = {.site_id = c->site_id, .action = "merge", .resource_type = "client",
                           .resource_id = c->id, .client_id = c->id, .purpose = "operations",
                           .detail = detail};
    bc_audit_event_t ev2 = ev;
    ev2.resource_id = req->duplicate_id;
    ev2.client_id = req->duplicate_id;
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_audit_write(call, &ev2) < 0 ||
        bc_call_commit(call) < 0)
        return call->err.code;
    *out = &c->base;
    return BC_OK;
}
