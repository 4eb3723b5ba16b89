/*  clients: create and read client records (the skeleton's slice of intake;
 *  the intake issue adds search, identifiers, assignment and history). */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "bc_util.h"
#include "intake.h"

#define S_CLIENT_COLUMNS                                                                      \
    "id, given_name, family_name, coalesce(preferred_name, ''), coalesce(pronouns, ''), "     \
    "to_char(date_of_birth, 'YYYY-MM-DD'), coalesce(preferred_language, ''), status, "        \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "            \
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* Builds a Client from row 0 of res (columns as S_CLIENT_COLUMNS), copying
 * every value into the call's arena. */
static Beacon__Intake__Client *s_client_from_row(bc_call_t *call, PGresult *res)
{
    Beacon__Intake__Client *c = bc_arena_alloc(call->arena, sizeof *c);
    beacon__intake__client__init(c);
    char **fields[] = {&c->id,       &c->given_name,         &c->family_name, &c->preferred_name,
                       &c->pronouns, &c->date_of_birth,      &c->preferred_language,
                       &c->status,   &c->created_at,         &c->updated_at};
    for (int i = 0; i < (int)(sizeof fields / sizeof fields[0]); i++)
        *fields[i] = bc_arena_strdup(call->arena, PQgetvalue(res, 0, i));
    return c;
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

    const char *params[] = {
        req->given_name,
        req->family_name,
        *req->preferred_name ? req->preferred_name : NULL,
        *req->pronouns ? req->pronouns : NULL,
        req->date_of_birth,
        *req->preferred_language ? req->preferred_language : NULL,
        call->principal->staff_id,
    };
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "intake_client_insert",
                                   "INSERT INTO intake.clients (given_name, family_name, "
                                   "preferred_name, pronouns, date_of_birth, preferred_language, "
                                   "created_by) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                                   "RETURNING " S_CLIENT_COLUMNS,
                                   7, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    *out = &s_client_from_row(call, res)->base;
    PQclear(res);
    return BC_OK;
}

bc_code_t clients_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__GetClientRequest *req = (const Beacon__Intake__GetClientRequest *)in;
    if (!bc_is_uuid(req->id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
    const char *params[] = {req->id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "intake_client_get",
                                   "SELECT " S_CLIENT_COLUMNS " FROM intake.clients WHERE id = $1",
                                   1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return bc_call_fail(call, BC_NOT_FOUND, "", "no client with id %s", req->id);
    }
    *out = &s_client_from_row(call, res)->base;
    PQclear(res);
    return BC_OK;
}
