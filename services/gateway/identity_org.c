/*  identity_org: the organisation. Bootstrap (the first agency, site and
 *  agency_admin of an empty deployment), agencies (operator only) and sites
 *  (each with an IANA time zone and an address). */
#include <stdio.h>
#include <string.h>

#include "bc_auth.h"
#include "bc_util.h"
#include "identity.h"

#define S_AGENCY_COLUMNS "id, name, identity.rfc3339(created_at)"
#define S_SITE_COLUMNS                                                                             \
    "id, agency_id, name, time_zone, array_to_json(address_lines)::text, city, state, "            \
    "postal_code, allow_site_caseload, identity.rfc3339(created_at)"

static Beacon__Identity__Agency *s_agency_from_row(bc_call_t *call, PGresult *res)
{
    Beacon__Identity__Agency *a = bc_arena_alloc(call->arena, sizeof *a);
    beacon__identity__agency__init(a);
    a->id = identity_col(call, res, 0);
    a->name = identity_col(call, res, 1);
    a->created_at = identity_col(call, res, 2);
    return a;
}

static Beacon__Identity__Site *s_site_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Identity__Site *s = bc_arena_alloc(call->arena, sizeof *s);
    beacon__identity__site__init(s);
    char **text[] = {&s->id, &s->agency_id, &s->name, &s->time_zone};
    for (int i = 0; i < 4; i++)
        *text[i] = bc_arena_strdup(call->arena, PQgetvalue(res, row, i));
    json_t *lines = json_loads(PQgetvalue(res, row, 4), 0, NULL);
    size_t n = json_is_array(lines) ? json_array_size(lines) : 0;
    s->address_lines = bc_arena_alloc(call->arena, sizeof(char *) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        const char *line = json_string_value(json_array_get(lines, i));
        s->address_lines[s->n_address_lines++] = bc_arena_strdup(call->arena, line ? line : "");
    }
    json_decref(lines);
    s->city = bc_arena_strdup(call->arena, PQgetvalue(res, row, 5));
    s->state = bc_arena_strdup(call->arena, PQgetvalue(res, row, 6));
    s->postal_code = bc_arena_strdup(call->arena, PQgetvalue(res, row, 7));
    s->allow_site_caseload = PQgetvalue(res, row, 8)[0] == 't';
    s->created_at = bc_arena_strdup(call->arena, PQgetvalue(res, row, 9));
    return s;
}

/* Checks a site's fields; fails call and returns the code when one is bad. */
static bc_code_t s_check_site(bc_call_t *call, const Beacon__Identity__CreateSiteRequest *req)
{
    const char *tz = req->time_zone;
    const char *tz_problem =
        !*tz ? "is required"
        : strlen(tz) > 64 || strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789/_+-") != strlen(tz)
            ? "must be an IANA time zone name such as \"America/Chicago\""
            : NULL;
    struct {
        const char *field, *problem;
    } checks[] = {
        {"name", identity_check_text(req->name, true, 200)},
        {"time_zone", tz_problem},
        {"address_lines", req->n_address_lines > 4 ? "at most 4 lines" : NULL},
        {"city", identity_check_text(req->city, false, 100)},
        {"state", identity_check_text(req->state, false, 100)},
        {"postal_code", identity_check_text(req->postal_code, false, 20)},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].problem)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, checks[i].field, "%s %s",
                                checks[i].field, checks[i].problem);
    for (size_t i = 0; i < req->n_address_lines; i++) {
        const char *problem = identity_check_text(req->address_lines[i], true, 200);
        if (problem)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "address_lines", "address_lines[%zu] %s",
                                i, problem);
    }
    return BC_OK;
}

int identity_site_insert(bc_call_t *call, const char *agency_id,
                         const Beacon__Identity__CreateSiteRequest *req,
                         Beacon__Identity__Site **out, bc_error_t *err)
{
    const char *params[] = {
        agency_id,        req->name,
        req->time_zone,   identity_pg_array(call, req->address_lines, req->n_address_lines),
        req->city,        req->state,
        req->postal_code, req->allow_site_caseload ? "true" : "false",
    };
    /* The time zone must be one the server knows (pg_timezone_names lists
     * the IANA database PostgreSQL uses to convert times). */
    PGresult *res = bc_db_prepared(
        call->db, "identity_site_insert",
        "INSERT INTO identity.sites (agency_id, name, time_zone, address_lines, city, state, "
        "postal_code, allow_site_caseload) SELECT $1, $2, $3, $4::text[], $5, $6, $7, $8::boolean "
        "WHERE EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $3) "
        "RETURNING " S_SITE_COLUMNS,
        8, params, err);
    if (!res) {
        if (err->code == BC_ALREADY_EXISTS)
            bc_error_set(err, BC_ALREADY_EXISTS, "name", "a site with this name already exists");
        return -1;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return bc_error_set(err, BC_INVALID_ARGUMENT, "time_zone",
                            "time_zone is not a known IANA time zone");
    }
    *out = s_site_from_row(call, res, 0);
    PQclear(res);
    return 0;
}

static int s_agency_insert(bc_call_t *call, const char *name, Beacon__Identity__Agency **out,
                           bc_error_t *err)
{
    const char *params[] = {name};
    PGresult *res = bc_db_prepared(call->db, "identity_agency_insert",
                                   "INSERT INTO identity.agencies (name) VALUES ($1) "
                                   "RETURNING " S_AGENCY_COLUMNS,
                                   1, params, err);
    if (!res) {
        if (err->code == BC_ALREADY_EXISTS)
            bc_error_set(err, BC_ALREADY_EXISTS, "name", "an agency with this name already exists");
        return -1;
    }
    *out = s_agency_from_row(call, res);
    PQclear(res);
    return 0;
}

IDENTITY_HANDLER(identity_agency_create)
{
    const Beacon__Identity__CreateAgencyRequest *req =
        (const Beacon__Identity__CreateAgencyRequest *)in;
    if (!identity_has_role(call->principal, IDENTITY_ROLE_OPERATOR))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "not allowed");
    const char *problem = identity_check_text(req->name, true, 200);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "name", "name %s", problem);
    bc_error_t err;
    Beacon__Identity__Agency *agency = NULL;
    if (identity_begin(call, &err) < 0 || s_agency_insert(call, req->name, &agency, &err) < 0)
        return identity_fail(call, &err);
    bc_audit_event_t ev = {.action = BC_AUDIT_CREATE,
                           .resource_type = "agency",
                           .resource_id = agency->id,
                           .agency_id = agency->id,
                           .outcome = BC_AUDIT_OK,
                           .detail = "{\"actor\":\"operator\"}"};
    if (identity_audit(call, &ev, &err) < 0 || identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    *out = &agency->base;
    return BC_OK;
}

IDENTITY_HANDLER(identity_site_create)
{
    const Beacon__Identity__CreateSiteRequest *req =
        (const Beacon__Identity__CreateSiteRequest *)in;
    identity_scope_t scope;
    bc_code_t code = identity_require_admin(call, &scope);
    if (code != BC_OK)
        return code;
    if (scope != IDENTITY_SCOPE_AGENCY)
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "only an agency_admin creates sites");
    if ((code = s_check_site(call, req)) != BC_OK)
        return code;
    bc_error_t err;
    Beacon__Identity__Site *site = NULL;
    if (identity_begin(call, &err) < 0 ||
        identity_site_insert(call, call->principal->agency_id, req, &site, &err) < 0)
        return identity_fail(call, &err);
    bc_audit_event_t ev = {.action = BC_AUDIT_CREATE,
                           .resource_type = "site",
                           .resource_id = site->id,
                           .site_id = site->id,
                           .outcome = BC_AUDIT_OK};
    if (identity_audit(call, &ev, &err) < 0 || identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    *out = &site->base;
    return BC_OK;
}

IDENTITY_HANDLER(identity_sites_list)
{
    (void)in;
    bc_code_t code = identity_require_caller(call);
    if (code != BC_OK)
        return code;
    const Beacon__Principal *p = call->principal;
    /* Agency admins see every site of the agency; everyone else their own. */
    bool all = identity_admin_scope(p) == IDENTITY_SCOPE_AGENCY;
    const char *params[] = {p->agency_id, all ? "true" : "false",
                            identity_pg_array(call, p->site_ids, p->n_site_ids)};
    bc_error_t err;
    PGresult *res =
        bc_db_prepared(call->db, "identity_sites_list",
                       "SELECT " S_SITE_COLUMNS " FROM identity.sites "
                       "WHERE agency_id = $1 AND ($2::boolean OR id::text = ANY($3::text[])) "
                       "ORDER BY lower(name), id",
                       3, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Identity__ListSitesReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__identity__list_sites_reply__init(r);
    int n = PQntuples(res);
    r->sites = bc_arena_alloc(call->arena, sizeof(*r->sites) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++)
        r->sites[r->n_sites++] = s_site_from_row(call, res, i);
    PQclear(res);
    *out = &r->base;
    return BC_OK;
}

/* ---- Bootstrap ---------------------------------------------------------- */

static bc_code_t s_no_staff_yet(bc_call_t *call)
{
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "identity_bootstrap_check",
                                   "SELECT EXISTS (SELECT 1 FROM identity.staff)", 0, NULL, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bool exists = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (exists)
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "",
                            "Beacon is already set up: sign in as an administrator");
    return BC_OK;
}

IDENTITY_HANDLER(identity_bootstrap)
{
    const Beacon__Identity__BootstrapRequest *req = (const Beacon__Identity__BootstrapRequest *)in;
    Beacon__Identity__CreateSiteRequest site_req = BEACON__IDENTITY__CREATE_SITE_REQUEST__INIT;
    site_req.name = req->site_name;
    site_req.time_zone = req->time_zone;
    bc_error_t err;
    struct {
        const char *field, *problem;
    } checks[] = {
        {"agency_name", identity_check_text(req->agency_name, true, 200)},
        {"site_name", identity_check_text(req->site_name, true, 200)},
        {"admin_email", identity_check_email(req->admin_email)},
        {"admin_given_name", identity_check_text(req->admin_given_name, true, 200)},
        {"admin_family_name", identity_check_text(req->admin_family_name, true, 200)},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].problem)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, checks[i].field, "%s %s",
                                checks[i].field, checks[i].problem);
    bc_code_t code = s_check_site(call, &site_req);
    if (code != BC_OK) {
        /* Report the bootstrap request's field names. */
        const char *field = !strcmp(call->err.field, "name") ? "site_name" : call->err.field;
        snprintf(call->err.field, sizeof call->err.field, "%s", field);
        return code;
    }
    const char *problem = identity_check_password(req->admin_password, req->admin_email, &err);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "admin_password", "%s", problem);
    /* Cheap refusal first: no hashing once the deployment is set up. */
    if ((code = s_no_staff_yet(call)) != BC_OK)
        return code;
    char hash[BC_PASSWORD_HASH_MAX];
    if (bc_password_hash(req->admin_password, hash, sizeof hash, &err) < 0)
        return bc_call_fail_err(call, &err);

    /* Serialised: two first starts at once make one agency, not two. */
    if (identity_begin(call, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(call->db, "identity_bootstrap_lock",
                                   "SELECT pg_advisory_xact_lock(hashtextextended("
                                   "'beacon.identity.bootstrap', 0))",
                                   0, NULL, &err);
    if (!res)
        return identity_fail(call, &err);
    PQclear(res);
    if ((code = s_no_staff_yet(call)) != BC_OK) {
        identity_rollback(call);
        return code;
    }
    Beacon__Identity__Agency *agency = NULL;
    Beacon__Identity__Site *site = NULL;
    if (s_agency_insert(call, req->agency_name, &agency, &err) < 0 ||
        identity_site_insert(call, agency->id, &site_req, &site, &err) < 0) {
        if (!strcmp(err.field, "name"))
            snprintf(err.field, sizeof err.field, "%s", site ? "site_name" : "agency_name");
        return identity_fail(call, &err);
    }
    char *roles[] = {IDENTITY_ROLE_AGENCY_ADMIN};
    char *sites[] = {site->id};
    identity_new_staff_t s = {.given_name = req->admin_given_name,
                              .family_name = req->admin_family_name,
                              .email = req->admin_email,
                              .npi = "",
                              .password_hash = hash,
                              .roles = roles,
                              .n_roles = 1,
                              .site_ids = sites,
                              .n_site_ids = 1};
    char staff_id[37];
    if (identity_staff_insert(call, agency->id, &s, staff_id, &err) < 0)
        return identity_fail(call, &err);
    bc_audit_event_t ev = {.action = BC_AUDIT_CREATE,
                           .resource_type = "staff",
                           .resource_id = staff_id,
                           .agency_id = agency->id,
                           .site_id = site->id,
                           .outcome = BC_AUDIT_OK,
                           .detail = "{\"bootstrap\":true,\"roles\":[\"agency_admin\"]}"};
    if (identity_audit(call, &ev, &err) < 0 || identity_commit(call, &err) < 0)
        return identity_fail(call, &err);

    Beacon__Identity__BootstrapReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__identity__bootstrap_reply__init(r);
    r->agency = agency;
    r->site = site;
    if (identity_staff_load(call, agency->id, staff_id, &r->admin, &err) < 0)
        return bc_call_fail_err(call, &err);
    *out = &r->base;
    return BC_OK;
}
