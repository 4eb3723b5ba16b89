/*  clients: register and read client records.
 *
 *  Scope: a client belongs to an agency and a primary site, and may be on a
 *  peer specialist's caseload. Who sees what is decided twice: the handlers
 *  only ask for what the caller's principal allows, and PostgreSQL's
 *  row-level security (migrations/003_scope.sql, intake.in_scope) enforces
 *  the same rules on the session scope the dispatcher set. A record outside
 *  the caller's scope reads exactly like one that does not exist (404).
 *
 *  Audit: every read (found or not) goes to the group audit writer and the
 *  reply waits until the record is durable; every registration is audited
 *  in its own transaction. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "bc_util.h"
#include "intake.h"

#define S_CLIENT_COLUMNS                                                                           \
    "id, given_name, family_name, coalesce(preferred_name, ''), coalesce(pronouns, ''), "          \
    "to_char(date_of_birth, 'YYYY-MM-DD'), coalesce(preferred_language, ''), status, "             \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "                \
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "                \
    "site_id::text, coalesce(assigned_staff_id::text, '')"


/* Builds a Client from row 0 of res (columns as S_CLIENT_COLUMNS), copying
 * every value into the call's arena. */
static Beacon__Intake__Client *s_client_from_row(bc_call_t *call, PGresult *res)
{
    Beacon__Intake__Client *c = bc_arena_alloc(call->arena, sizeof *c);
    beacon__intake__client__init(c);
    char **fields[] = {&c->id,
                       &c->given_name,
                       &c->family_name,
                       &c->preferred_name,
                       &c->pronouns,
                       &c->date_of_birth,
                       &c->preferred_language,
                       &c->status,
                       &c->created_at,
                       &c->updated_at,
                       &c->site_id,
                       &c->assigned_staff_id};
    for (int i = 0; i < (int)(sizeof fields / sizeof fields[0]); i++)
        *fields[i] = bc_arena_strdup(call->arena, PQgetvalue(res, 0, i));
    return c;
}

/* intake.in_scope (migrations/003_scope.sql) for a client the caller's
 * agency holds: true when the caller's ordinary scope covers it, false when
 * only a break-glass grant let the row through. */
static bool s_in_scope(const bc_call_t *call, const Beacon__Intake__Client *c)
{
    const Beacon__Principal *p = call->principal;
    if (!bc_call_has_site(call, c->site_id))
        return false;
    if (bc_call_has_role(call, "supervisor"))
        return true;
    if (!bc_call_has_role(call, "peer_specialist"))
        return false;
    if (*c->assigned_staff_id && !strcmp(c->assigned_staff_id, p->staff_id))
        return true;
    for (size_t i = 0; i < p->n_caseload_site_ids; i++)
        if (!strcmp(p->caseload_site_ids[i], c->site_id))
            return true;
    return false;
}

/* YYYY-MM-DD, a real calendar date, not before 1900 and not in the future. */
static const char *s_check_birth_date(const char *value)
{
    if (!*value)
        return "is required";
    struct tm tm = {0};
    const char *end = strptime(value, "%Y-%m-%d", &tm);
    if (!end || *end || strlen(value) != 10)
        return "must be a date as YYYY-MM-DD";
    struct tm check = tm;
    time_t t = timegm(&check);
    if (check.tm_mday != tm.tm_mday || check.tm_mon != tm.tm_mon)
        return "is not a valid calendar date";
    if (tm.tm_year + 1900 < 1900)
        return "must not be before 1900-01-01";
    if (t > time(NULL))
        return "must not be in the future";
    return NULL;
}

/* A BCP 47 language tag: letters, digits and hyphens, 2 to 35 characters. */
static const char *s_check_language(const char *value)
{
    size_t len = strlen(value);
    if (len == 0)
        return NULL;
    if (len < 2 || len > 35)
        return "must be a BCP 47 language tag such as \"en\" or \"es-MX\"";
    for (const char *p = value; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-')
            return "must be a BCP 47 language tag such as \"en\" or \"es-MX\"";
    return NULL;
}

bc_code_t clients_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__CreateClientRequest *req =
        (const Beacon__Intake__CreateClientRequest *)in;
    struct {
        const char *field, *problem;
    } checks[] = {
        {"given_name", bc_text_problem(req->given_name, true, 200)},
        {"family_name", bc_text_problem(req->family_name, true, 200)},
        {"date_of_birth", s_check_birth_date(req->date_of_birth)},
        {"preferred_name", bc_text_problem(req->preferred_name, false, 200)},
        {"pronouns", bc_text_problem(req->pronouns, false, 50)},
        {"preferred_language", s_check_language(req->preferred_language)},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].problem)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, checks[i].field, "%s %s",
                                checks[i].field, checks[i].problem);

    if (!*call->principal->staff_id)
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "only staff register clients");
    const char *site = req->site_id;
    if (!*site) {
        if (call->principal->n_site_ids != 1)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id",
                                "site_id is required: say which of your sites the client "
                                "attends");
        site = call->principal->site_ids[0];
    } else if (!bc_is_uuid(site)) {
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    } else if (!bc_call_has_site(call, site)) {
        return bc_call_fail(call, BC_PERMISSION_DENIED, "site_id",
                            "you can register clients only at your own sites");
    }
    /* A peer specialist's new client starts on their own caseload. */
    const char *assigned =
        bc_call_has_role(call, "peer_specialist") ? call->principal->staff_id : NULL;
    const char *params[] = {
        req->given_name,
        req->family_name,
        *req->preferred_name ? req->preferred_name : NULL,
        *req->pronouns ? req->pronouns : NULL,
        req->date_of_birth,
        *req->preferred_language ? req->preferred_language : NULL,
        call->principal->staff_id,
        call->principal->agency_id,
        site,
        assigned,
    };
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(call->db, "intake_client_insert",
                                   "INSERT INTO intake.clients (given_name, family_name, "
                                   "preferred_name, pronouns, date_of_birth, preferred_language, "
                                   "created_by, agency_id, site_id, assigned_staff_id) "
                                   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                                   "RETURNING " S_CLIENT_COLUMNS,
                                   10, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err); /* the dispatcher rolls back */
    Beacon__Intake__Client *c = s_client_from_row(call, res);
    PQclear(res);
    bc_audit_event_t ev = {
        .site_id = c->site_id,
        .action = BC_AUDIT_CREATE,
        .resource_type = "client",
        .resource_id = c->id,
        .client_id = c->id,
        .purpose = "treatment",
    };
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &c->base;
    return BC_OK;
}

bc_code_t clients_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__GetClientRequest *req = (const Beacon__Intake__GetClientRequest *)in;
    if (!bc_is_uuid(req->id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
    /* A row the policy lets through only by a break-glass grant is read,
     * and audited, for that reason (s_in_scope). */
    if (!bc_is_uuid(call->principal->agency_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "no agency in the caller's scope");
    /* The agency filter is the handler's own; sites, caseloads and
     * break-glass grants are the row policy's (clients_read). */
    const char *params[] = {req->id, call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "intake_client_get",
        "SELECT " S_CLIENT_COLUMNS " FROM intake.clients WHERE id = $1 AND agency_id = $2",
        2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bc_audit_event_t ev = {
        .action = BC_AUDIT_READ,
        .resource_type = "client",
        .resource_id = req->id,
        .client_id = req->id,
    };
    if (PQntuples(res) == 0) {
        PQclear(res);
        /* Not there, or not the caller's to see: the same answer either
         * way, and the attempt is on record. */
        ev.outcome = BC_AUDIT_DENIED;
        if (bc_call_audit_read(call, &ev) < 0)
            return call->err.code;
        return bc_call_fail(call, BC_NOT_FOUND, "", "no client with id %s", req->id);
    }
    Beacon__Intake__Client *c = s_client_from_row(call, res);
    bool break_glass = !s_in_scope(call, c);
    PQclear(res);
    ev.site_id = c->site_id;
    ev.purpose = break_glass ? "break_glass" : "treatment";
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &c->base;
    return BC_OK;
}
