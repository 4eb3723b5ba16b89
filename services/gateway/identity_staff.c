/*  identity_staff: staff accounts, their roles, sites and credentials.
 *
 *  agency_admin manages every account of its agency. site_admin manages
 *  accounts whose sites are all among its own and whose roles are all
 *  site-level (peer_specialist, supervisor, site_admin), and can grant only
 *  those roles at its own sites. Nobody changes their own roles or sites or
 *  disables themselves (no accidental lock-out, no self-promotion). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "bc_auth.h"
#include "bc_util.h"
#include "identity.h"

#define S_MAX_SITES 200

int identity_staff_insert(bc_call_t *call, const char *agency_id, const identity_new_staff_t *s,
                          char id[37], bc_error_t *err)
{
    size_t n = s->n_credentials;
    char **kinds = bc_arena_alloc(call->arena, sizeof(char *) * (n + 1));
    char **numbers = bc_arena_alloc(call->arena, sizeof(char *) * (n + 1));
    char **issued = bc_arena_alloc(call->arena, sizeof(char *) * (n + 1));
    char **expires = bc_arena_alloc(call->arena, sizeof(char *) * (n + 1));
    for (size_t i = 0; i < n; i++) {
        kinds[i] = s->credentials[i]->kind;
        numbers[i] = s->credentials[i]->number;
        issued[i] = s->credentials[i]->issued_on;
        expires[i] = s->credentials[i]->expires_on;
    }
    const char *params[] = {
        agency_id,
        s->given_name,
        s->family_name,
        s->email,
        s->npi,
        s->password_hash,
        identity_pg_array(call, s->roles, s->n_roles),
        identity_pg_array(call, s->site_ids, s->n_site_ids),
        identity_pg_array(call, kinds, n),
        identity_pg_array(call, numbers, n),
        identity_pg_array(call, issued, n),
        identity_pg_array(call, expires, n),
        s->organization_id && *s->organization_id ? s->organization_id : NULL,
    };
    PGresult *res = bc_db_prepared(
        call->db, "identity_staff_insert",
        "WITH s AS (INSERT INTO identity.staff (agency_id, given_name, family_name, email, npi, "
        "  password_hash, organization_id) VALUES ($1, $2, $3, $4, nullif($5, ''), $6, $13) "
        "  RETURNING id, agency_id), "
        "r AS (INSERT INTO identity.staff_roles (staff_id, role) "
        "  SELECT s.id, x.role FROM s, (SELECT DISTINCT unnest($7::text[]) AS role) x), "
        "ss AS (INSERT INTO identity.staff_sites (staff_id, site_id, agency_id) "
        "  SELECT s.id, x.site, s.agency_id FROM s, "
        "  (SELECT DISTINCT unnest($8::uuid[]) AS site) x), "
        "c AS (INSERT INTO identity.credentials (staff_id, kind, number, issued_on, expires_on) "
        "  SELECT s.id, x.k, x.n, nullif(x.i, '')::date, nullif(x.e, '')::date "
        "  FROM s, unnest($9::text[], $10::text[], $11::text[], $12::text[]) AS x(k, n, i, e)) "
        "SELECT id FROM s",
        13, params, err);
    if (!res) {
        if (err->code == BC_ALREADY_EXISTS && strstr(err->detail, "staff_npi"))
            bc_error_set(err, BC_ALREADY_EXISTS, "npi",
                         "a staff member with this NPI already exists");
        else if (err->code == BC_ALREADY_EXISTS)
            bc_error_set(err, BC_ALREADY_EXISTS, "email",
                         "a staff member with this email already exists");
        return -1;
    }
    snprintf(id, 37, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return identity_staff_emit(call, id, err);
}

int identity_staff_load(bc_call_t *call, const char *agency_id, const char *id,
                        Beacon__Identity__Staff **out, bc_error_t *err)
{
    *out = NULL;
    const char *params[] = {agency_id, id};
    PGresult *res = bc_db_prepared(
        call->db, "identity_staff_load",
        "SELECT st.id, st.agency_id, st.given_name, st.family_name, st.email, "
        "coalesce(st.npi, ''), st.status, st.totp_secret IS NOT NULL, st.failed_logins, "
        "identity.rfc3339(CASE WHEN st.locked_until > now() THEN st.locked_until END), "
        "identity.rfc3339(st.created_at), "
        "coalesce((SELECT string_agg(role, ',' ORDER BY role) FROM identity.staff_roles "
        "          WHERE staff_id = st.id), ''), "
        "coalesce((SELECT string_agg(site_id::text, ',' ORDER BY site_id) "
        "          FROM identity.staff_sites WHERE staff_id = st.id), ''), "
        "coalesce(st.organization_id::text, '') "
        "FROM identity.staff st WHERE st.agency_id = $1 AND st.id = $2",
        2, params, err);
    if (!res)
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    Beacon__Identity__Staff *s = bc_arena_alloc(call->arena, sizeof *s);
    beacon__identity__staff__init(s);
    char **text[] = {&s->id,    &s->agency_id, &s->given_name, &s->family_name,
                     &s->email, &s->npi,       &s->status};
    for (int i = 0; i < 7; i++)
        *text[i] = identity_col(call, res, i);
    s->totp_enrolled = PQgetvalue(res, 0, 7)[0] == 't';
    s->failed_logins = atoi(PQgetvalue(res, 0, 8));
    s->locked_until = identity_col(call, res, 9);
    s->created_at = identity_col(call, res, 10);
    s->roles = identity_split(call, PQgetvalue(res, 0, 11), &s->n_roles);
    s->site_ids = identity_split(call, PQgetvalue(res, 0, 12), &s->n_site_ids);
    s->organization_id = identity_col(call, res, 13);
    PQclear(res);

    const char *cparams[] = {id};
    res = bc_db_prepared(call->db, "identity_credentials_load",
                         "SELECT kind, number, coalesce(to_char(issued_on, 'YYYY-MM-DD'), ''), "
                         "coalesce(to_char(expires_on, 'YYYY-MM-DD'), '') "
                         "FROM identity.credentials WHERE staff_id = $1 "
                         "ORDER BY kind, expires_on NULLS LAST, number",
                         1, cparams, err);
    if (!res)
        return -1;
    int n = PQntuples(res);
    s->credentials = bc_arena_alloc(call->arena, sizeof(*s->credentials) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        Beacon__Identity__Credential *c = bc_arena_alloc(call->arena, sizeof *c);
        beacon__identity__credential__init(c);
        c->kind = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        c->number = bc_arena_strdup(call->arena, PQgetvalue(res, i, 1));
        c->issued_on = bc_arena_strdup(call->arena, PQgetvalue(res, i, 2));
        c->expires_on = bc_arena_strdup(call->arena, PQgetvalue(res, i, 3));
        s->credentials[s->n_credentials++] = c;
    }
    PQclear(res);
    *out = s;
    return 0;
}

/* Checks a set of roles and sites the caller wants someone to hold: valid
 * roles, site-level roles only with sites, a site_admin only within its own
 * sites and site-level roles, and every site one of the agency's. */
static bc_code_t s_check_assignment(bc_call_t *call, identity_scope_t scope, char *const *roles,
                                    size_t n_roles, char *const *sites, size_t n_sites)
{
    if (n_roles == 0 || n_roles > 8)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "roles", "roles: one to eight roles");
    bool needs_site = false;
    for (size_t i = 0; i < n_roles; i++) {
        if (!identity_role_valid(roles[i]))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "roles", "roles[%zu] is not a role", i);
        needs_site |= identity_role_site_level(roles[i]);
        if (scope == IDENTITY_SCOPE_SITES && !identity_role_site_level(roles[i]))
            return bc_call_fail(call, BC_PERMISSION_DENIED, "roles",
                                "a site_admin cannot grant the role %s", roles[i]);
    }
    bc_code_t code = identity_check_uuids(call, "site_ids", sites, n_sites, S_MAX_SITES);
    if (code != BC_OK)
        return code;
    if (needs_site && n_sites == 0)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_ids",
                            "site_ids: these roles need at least one site");
    if (scope == IDENTITY_SCOPE_SITES && !identity_sites_within(call->principal, sites, n_sites))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "site_ids",
                            "a site_admin can assign only its own sites");
    return identity_check_sites_exist(call, sites, n_sites);
}

/* A site_admin may act on an account only when all of its sites are the
 * admin's and all of its roles are site-level. */
static bool s_manageable(const bc_call_t *call, identity_scope_t scope,
                         const Beacon__Identity__Staff *s)
{
    if (scope == IDENTITY_SCOPE_AGENCY)
        return true;
    if (s->n_site_ids == 0 || !identity_sites_within(call->principal, s->site_ids, s->n_site_ids))
        return false;
    for (size_t i = 0; i < s->n_roles; i++)
        if (!identity_role_site_level(s->roles[i]))
            return false;
    return true;
}

static bool s_shares_site(const bc_call_t *call, const Beacon__Identity__Staff *s)
{
    for (size_t i = 0; i < s->n_site_ids; i++)
        if (identity_sites_within(call->principal, &s->site_ids[i], 1))
            return true;
    return false;
}

static json_t *s_strings(char *const *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

IDENTITY_HANDLER(identity_staff_create)
{
    const Beacon__Identity__CreateStaffRequest *req =
        (const Beacon__Identity__CreateStaffRequest *)in;
    identity_scope_t scope;
    bc_code_t code = identity_require_admin(call, &scope);
    if (code != BC_OK)
        return code;
    bc_error_t err;
    struct {
        const char *field, *problem;
    } checks[] = {
        {"given_name", identity_check_text(req->given_name, true, 200)},
        {"family_name", identity_check_text(req->family_name, true, 200)},
        {"email", identity_check_email(req->email)},
        {"npi", identity_check_npi(req->npi)},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].problem)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, checks[i].field, "%s %s",
                                checks[i].field, checks[i].problem);
    const char *problem = identity_check_password(req->password, req->email, &err);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "password", "%s", problem);
    if ((code = identity_check_credentials(call, req->credentials, req->n_credentials)) != BC_OK ||
        (code = s_check_assignment(call, scope, req->roles, req->n_roles, req->site_ids,
                                   req->n_site_ids)) != BC_OK ||
        (code = identity_check_partner_organization(call, req->roles, req->n_roles,
                                                    req->organization_id)) != BC_OK)
        return code;
    char hash[BC_PASSWORD_HASH_MAX];
    if (bc_password_hash(req->password, hash, sizeof hash, &err) < 0)
        return bc_call_fail_err(call, &err);
    identity_new_staff_t s = {.given_name = req->given_name,
                              .family_name = req->family_name,
                              .email = req->email,
                              .npi = req->npi,
                              .password_hash = hash,
                              .roles = req->roles,
                              .n_roles = req->n_roles,
                              .site_ids = req->site_ids,
                              .n_site_ids = req->n_site_ids,
                              .credentials = req->credentials,
                              .n_credentials = req->n_credentials,
                              .organization_id = req->organization_id};
    char id[37];
    if (identity_begin(call, &err) < 0 ||
        identity_staff_insert(call, call->principal->agency_id, &s, id, &err) < 0)
        return identity_fail(call, &err);
    bc_audit_event_t ev = {
        .action = BC_AUDIT_CREATE,
        .resource_type = "staff",
        .resource_id = id,
        .outcome = BC_AUDIT_OK,
        .detail = identity_json(call, json_pack("{s:o, s:o}", "roles",
                                                s_strings(req->roles, req->n_roles), "site_ids",
                                                s_strings(req->site_ids, req->n_site_ids)))};
    if (identity_audit(call, &ev, &err) < 0 || identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    Beacon__Identity__Staff *staff = NULL;
    if (identity_staff_load(call, call->principal->agency_id, id, &staff, &err) < 0 || !staff)
        return bc_call_fail(call, BC_INTERNAL, "", "staff member vanished after creation");
    *out = &staff->base;
    return BC_OK;
}

IDENTITY_HANDLER(identity_staff_get)
{
    const Beacon__Identity__GetStaffRequest *req = (const Beacon__Identity__GetStaffRequest *)in;
    bc_code_t code = identity_require_caller(call);
    if (code != BC_OK)
        return code;
    if (!bc_is_uuid(req->id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
    identity_scope_t scope = identity_admin_scope(call->principal);
    bool self = !strcasecmp(req->id, call->principal->staff_id);
    if (scope == IDENTITY_SCOPE_NONE && !self)
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "not allowed");
    bc_error_t err;
    Beacon__Identity__Staff *s = NULL;
    if (identity_staff_load(call, call->principal->agency_id, req->id, &s, &err) < 0)
        return bc_call_fail_err(call, &err);
    if (!s || (!self && scope == IDENTITY_SCOPE_SITES && !s_shares_site(call, s)))
        return bc_call_fail(call, BC_NOT_FOUND, "id", "no staff member with id %s", req->id);
    *out = &s->base;
    return BC_OK;
}

/* The start of every change to an existing account: admin, valid id, not
 * oneself (when refuse_self), then BEGIN, lock the row and load it; NOT_FOUND
 * when it is outside the caller's sight, PERMISSION_DENIED when visible but
 * not the caller's to manage. On success a transaction is open. */
static bc_code_t s_begin_change(bc_call_t *call, const char *id, bool refuse_self,
                                identity_scope_t *scope, Beacon__Identity__Staff **s)
{
    bc_code_t code = identity_require_admin(call, scope);
    if (code != BC_OK)
        return code;
    if (!bc_is_uuid(id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
    if (refuse_self && !strcasecmp(id, call->principal->staff_id))
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "id",
                            "ask another administrator to change your own access");
    bc_error_t err;
    const char *params[] = {call->principal->agency_id, id};
    if (identity_begin(call, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(call->db, "identity_staff_lock",
                                   "SELECT 1 FROM identity.staff WHERE agency_id = $1 AND id = $2 "
                                   "FOR UPDATE",
                                   2, params, &err);
    if (!res)
        return identity_fail(call, &err);
    PQclear(res);
    if (identity_staff_load(call, call->principal->agency_id, id, s, &err) < 0)
        return identity_fail(call, &err);
    if (!*s || (*scope == IDENTITY_SCOPE_SITES && !s_shares_site(call, *s))) {
        identity_rollback(call);
        return bc_call_fail(call, BC_NOT_FOUND, "id", "no staff member with id %s", id);
    }
    if (!s_manageable(call, *scope, *s)) {
        identity_rollback(call);
        return bc_call_fail(call, BC_PERMISSION_DENIED, "id",
                            "this account works outside your sites or holds agency roles");
    }
    return BC_OK;
}

/* Replaces the rows of one join table for staff id from array $2. */
static int s_replace(bc_call_t *call, const char *name_del, const char *sql_del,
                     const char *name_ins, const char *sql_ins, int nparams,
                     const char *const *params, bc_error_t *err)
{
    PGresult *res = bc_db_prepared(call->db, name_del, sql_del, 1, params, err);
    if (!res)
        return -1;
    PQclear(res);
    res = bc_db_prepared(call->db, name_ins, sql_ins, nparams, params, err);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

IDENTITY_HANDLER(identity_staff_update)
{
    const Beacon__Identity__UpdateStaffRequest *req =
        (const Beacon__Identity__UpdateStaffRequest *)in;
    const char *problem = NULL, *field = NULL;
    if (*req->given_name && (problem = identity_check_text(req->given_name, true, 200)))
        field = "given_name";
    else if (*req->family_name && (problem = identity_check_text(req->family_name, true, 200)))
        field = "family_name";
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, field, "%s %s", field, problem);
    bc_code_t code;
    if (req->set_credentials &&
        (code = identity_check_credentials(call, req->credentials, req->n_credentials)) != BC_OK)
        return code;
    identity_scope_t scope;
    Beacon__Identity__Staff *s = NULL;
    bool access = req->set_roles || req->set_site_ids;
    if ((code = s_begin_change(call, req->id, access, &scope, &s)) != BC_OK)
        return code;
    char *const *roles = req->set_roles ? req->roles : s->roles;
    size_t n_roles = req->set_roles ? req->n_roles : s->n_roles;
    char *const *sites = req->set_site_ids ? req->site_ids : s->site_ids;
    size_t n_sites = req->set_site_ids ? req->n_site_ids : s->n_site_ids;
    if (access &&
        (code = s_check_assignment(call, scope, roles, n_roles, sites, n_sites)) != BC_OK) {
        identity_rollback(call);
        return code;
    }
    /* The organisation is chosen when a partner account is made; an account
     * made without one cannot become a partner. */
    if (req->set_roles && !*s->organization_id)
        for (size_t i = 0; i < n_roles; i++)
            if (!strcmp(roles[i], "partner")) {
                identity_rollback(call);
                return bc_call_fail(call, BC_INVALID_ARGUMENT, "roles",
                                    "a partner account is made with its organisation: create "
                                    "a new account with the partner role and organization_id");
            }
    bc_error_t err;
    const char *names[] = {s->id, req->given_name, req->family_name};
    PGresult *res =
        bc_db_prepared(call->db, "identity_staff_rename",
                       "UPDATE identity.staff SET given_name = coalesce(nullif($2, ''), "
                       "given_name), family_name = coalesce(nullif($3, ''), "
                       "family_name), updated_at = now() WHERE id = $1",
                       3, names, &err);
    if (!res)
        return identity_fail(call, &err);
    PQclear(res);
    const char *rp[] = {s->id, identity_pg_array(call, roles, n_roles)};
    const char *sp[] = {s->id, identity_pg_array(call, sites, n_sites)};
    if ((req->set_roles &&
         s_replace(call, "identity_roles_delete",
                   "DELETE FROM identity.staff_roles WHERE staff_id = $1", "identity_roles_insert",
                   "INSERT INTO identity.staff_roles (staff_id, role) "
                   "SELECT DISTINCT $1::uuid, unnest($2::text[])",
                   2, rp, &err) < 0) ||
        (req->set_site_ids &&
         s_replace(call, "identity_sites_delete",
                   "DELETE FROM identity.staff_sites WHERE staff_id = $1", "identity_sites_insert",
                   "INSERT INTO identity.staff_sites (staff_id, site_id, agency_id) "
                   "SELECT DISTINCT $1::uuid, unnest($2::uuid[]), "
                   "(SELECT agency_id FROM identity.staff WHERE id = $1)",
                   2, sp, &err) < 0))
        return identity_fail(call, &err);
    if (req->set_credentials) {
        size_t n = req->n_credentials;
        char **cols[4];
        for (int j = 0; j < 4; j++)
            cols[j] = bc_arena_alloc(call->arena, sizeof(char *) * (n + 1));
        for (size_t i = 0; i < n; i++) {
            cols[0][i] = req->credentials[i]->kind;
            cols[1][i] = req->credentials[i]->number;
            cols[2][i] = req->credentials[i]->issued_on;
            cols[3][i] = req->credentials[i]->expires_on;
        }
        const char *cp[] = {
            s->id, identity_pg_array(call, cols[0], n), identity_pg_array(call, cols[1], n),
            identity_pg_array(call, cols[2], n), identity_pg_array(call, cols[3], n)};
        if (s_replace(
                call, "identity_credentials_delete",
                "DELETE FROM identity.credentials WHERE staff_id = $1",
                "identity_credentials_insert",
                "INSERT INTO identity.credentials (staff_id, kind, number, issued_on, "
                "expires_on) SELECT $1::uuid, k, n, nullif(i, '')::date, nullif(e, '')::date "
                "FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS x(k, n, i, e)",
                5, cp, &err) < 0)
            return identity_fail(call, &err);
    }
    json_t *detail = json_object();
    if (req->set_roles)
        json_object_set_new(detail, "roles", s_strings(roles, n_roles));
    if (req->set_site_ids)
        json_object_set_new(detail, "site_ids", s_strings(sites, n_sites));
    if (req->set_credentials)
        json_object_set_new(detail, "credentials", json_integer((json_int_t)req->n_credentials));
    if (*req->given_name || *req->family_name)
        json_object_set_new(detail, "names", json_true());
    bc_audit_event_t ev = {.action = BC_AUDIT_UPDATE,
                           .resource_type = "staff",
                           .resource_id = s->id,
                           .outcome = BC_AUDIT_OK,
                           .detail = identity_json(call, detail)};
    if ((access && identity_notify(call, "staff", s->id, &err) < 0) ||
        ((req->set_site_ids || req->set_credentials) &&
         identity_staff_emit(call, s->id, &err) < 0) ||
        identity_audit(call, &ev, &err) < 0 || identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    if (identity_staff_load(call, call->principal->agency_id, s->id, &s, &err) < 0 || !s)
        return bc_call_fail(call, BC_INTERNAL, "", "staff member vanished after update");
    *out = &s->base;
    return BC_OK;
}

IDENTITY_HANDLER(identity_staff_disable)
{
    const Beacon__Identity__DisableStaffRequest *req =
        (const Beacon__Identity__DisableStaffRequest *)in;
    const char *problem = identity_check_text(req->reason, false, 500);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason", "reason %s", problem);
    identity_scope_t scope;
    Beacon__Identity__Staff *s = NULL;
    bc_code_t code = s_begin_change(call, req->id, true, &scope, &s);
    if (code != BC_OK)
        return code;
    /* Disabling ends every session of the account at once. */
    bc_error_t err;
    const char *params[] = {s->id};
    PGresult *res = bc_db_prepared(
        call->db, "identity_staff_disable",
        "WITH d AS (UPDATE identity.staff SET status = 'disabled', updated_at = now() "
        "           WHERE id = $1), "
        "r AS (UPDATE identity.sessions SET revoked_at = now() "
        "      WHERE staff_id = $1 AND revoked_at IS NULL RETURNING 1) "
        "SELECT count(*) FROM r",
        1, params, &err);
    if (!res)
        return identity_fail(call, &err);
    json_int_t revoked = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    bc_audit_event_t ev = {
        .action = BC_AUDIT_UPDATE,
        .resource_type = "staff",
        .resource_id = s->id,
        .outcome = BC_AUDIT_OK,
        .detail = identity_json(call, json_pack("{s:s, s:s, s:I}", "status", "disabled", "reason",
                                                req->reason, "sessions_revoked", revoked))};
    if (identity_notify(call, "staff", s->id, &err) < 0 ||
        identity_staff_emit(call, s->id, &err) < 0 || identity_audit(call, &ev, &err) < 0 ||
        identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    if (identity_staff_load(call, call->principal->agency_id, s->id, &s, &err) < 0 || !s)
        return bc_call_fail(call, BC_INTERNAL, "", "staff member vanished after update");
    *out = &s->base;
    return BC_OK;
}

/* ---- Passwords ------------------------------------------------------------ */

/* Sets staff id's password hash and revokes its sessions (all of them, or
 * all but keep_session); returns the number revoked, or -1 with err. */
static long long s_set_password(bc_call_t *call, const char *id, const char *hash,
                                const char *keep_session, bc_error_t *err)
{
    const char *params[] = {id, hash, keep_session && *keep_session ? keep_session : NULL};
    PGresult *res = bc_db_prepared(
        call->db, "identity_staff_password",
        "WITH p AS (UPDATE identity.staff SET password_hash = $2, failed_logins = 0, "
        "           locked_until = NULL, updated_at = now() WHERE id = $1), "
        "r AS (UPDATE identity.sessions SET revoked_at = now() "
        "      WHERE staff_id = $1 AND revoked_at IS NULL "
        "        AND id IS DISTINCT FROM $3::uuid RETURNING 1) "
        "SELECT count(*) FROM r",
        3, params, err);
    if (!res)
        return -1;
    long long n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

IDENTITY_HANDLER(identity_password_change)
{
    const Beacon__Identity__ChangePasswordRequest *req =
        (const Beacon__Identity__ChangePasswordRequest *)in;
    const Beacon__Principal *p = call->principal;
    if (!bc_is_uuid(p->staff_id) || !bc_is_uuid(p->agency_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "",
                            "only a signed-in staff member has a password to change");
    bc_error_t err;
    const char *params[] = {p->staff_id, p->agency_id};
    if (identity_begin(call, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(call->db, "identity_staff_password_load",
                                   "SELECT password_hash, email FROM identity.staff "
                                   "WHERE id = $1 AND agency_id = $2 AND status = 'active' "
                                   "FOR UPDATE",
                                   2, params, &err);
    if (!res)
        return identity_fail(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        identity_rollback(call);
        return bc_call_fail(call, BC_UNAUTHENTICATED, "", "authentication required");
    }
    char *current = identity_col(call, res, 0), *email = identity_col(call, res, 1);
    PQclear(res);
    bc_audit_event_t ev = {.action = "password_change", .resource_type = "staff",
                           .resource_id = p->staff_id};
    if (!bc_password_verify(current, req->current_password)) {
        identity_rollback(call);
        ev.outcome = BC_AUDIT_DENIED;
        if (identity_audit(call, &ev, &err) < 0)
            return identity_fail(call, &err);
        return bc_call_fail(call, BC_PERMISSION_DENIED, "current_password",
                            "current_password is not your current password");
    }
    const char *problem = identity_check_password(req->new_password, email, &err);
    if (problem) {
        identity_rollback(call);
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "new_password", "new_password: %s",
                            problem);
    }
    if (!strcmp(req->new_password, req->current_password)) {
        identity_rollback(call);
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "new_password",
                            "new_password must differ from the current one");
    }
    char hash[256];
    long long revoked;
    if (bc_password_hash(req->new_password, hash, sizeof hash, &err) < 0 ||
        (revoked = s_set_password(call, p->staff_id, hash, p->session_id, &err)) < 0)
        return identity_fail(call, &err);
    ev.outcome = BC_AUDIT_OK;
    ev.detail = identity_json(call, json_pack("{s:I}", "other_sessions_revoked",
                                              (json_int_t)revoked));
    if (identity_notify(call, "staff", p->staff_id, &err) < 0 ||
        identity_audit(call, &ev, &err) < 0 || identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    Beacon__Identity__ChangePasswordReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__identity__change_password_reply__init(r);
    r->other_sessions_revoked = (int32_t)revoked;
    *out = &r->base;
    return BC_OK;
}

IDENTITY_HANDLER(identity_password_reset)
{
    const Beacon__Identity__ResetPasswordRequest *req =
        (const Beacon__Identity__ResetPasswordRequest *)in;
    identity_scope_t scope;
    Beacon__Identity__Staff *s = NULL;
    /* Your own password: change it, knowing the current one. */
    bc_code_t code = s_begin_change(call, req->id, true, &scope, &s);
    if (code != BC_OK)
        return code;
    bc_error_t err;
    const char *problem = identity_check_password(req->new_password, s->email, &err);
    if (problem) {
        identity_rollback(call);
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "new_password", "new_password: %s",
                            problem);
    }
    char hash[256];
    long long revoked;
    if (bc_password_hash(req->new_password, hash, sizeof hash, &err) < 0 ||
        (revoked = s_set_password(call, s->id, hash, NULL, &err)) < 0)
        return identity_fail(call, &err);
    bc_audit_event_t ev = {
        .action = "password_reset",
        .resource_type = "staff",
        .resource_id = s->id,
        .outcome = BC_AUDIT_OK,
        .detail = identity_json(call, json_pack("{s:I}", "sessions_revoked", (json_int_t)revoked))};
    if (identity_notify(call, "staff", s->id, &err) < 0 || identity_audit(call, &ev, &err) < 0 ||
        identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    *out = &s->base;
    return BC_OK;
}
