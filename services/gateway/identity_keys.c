/*  identity_keys: API keys for integrations (billing systems, dashboards,
 *  partner organisations). A key acts for its agency with one integration
 *  role (billing, analyst, partner, auditor: never an admin role, which
 *  would be a bearer token worth a second factor without one) and a set of
 *  sites (none = no site's data). The token "bak_..." is shown once and
 *  stored as its SHA-256; revocation is immediate for Authenticate.
 *  Only an agency_admin (a person: the key records who made it) creates and
 *  revokes keys. */
#include <string.h>

#include "bc_auth.h"
#include "bc_util.h"
#include "identity.h"

#define S_KEY_COLUMNS                                                                              \
    "k.id, k.agency_id, k.name, k.role, k.created_by, identity.rfc3339(k.created_at), "            \
    "identity.rfc3339(k.revoked_at), identity.rfc3339(k.last_used_at), "                          \
    "coalesce(k.organization_id::text, '')"

static const char *const s_key_roles[] = {"billing", "analyst", "partner", "auditor", NULL};

static Beacon__Identity__ApiKey *s_key_from_row(bc_call_t *call, PGresult *res, const char *sites)
{
    Beacon__Identity__ApiKey *k = bc_arena_alloc(call->arena, sizeof *k);
    beacon__identity__api_key__init(k);
    char **text[] = {&k->id,         &k->agency_id,  &k->name,       &k->role,
                     &k->created_by, &k->created_at, &k->revoked_at, &k->last_used_at};
    for (int i = 0; i < 8; i++)
        *text[i] = identity_col(call, res, i);
    k->organization_id = identity_col(call, res, 8);
    k->site_ids = identity_split(call, sites, &k->n_site_ids);
    return k;
}

/* Key management is for an agency_admin signed in as a person. */
static bc_code_t s_require_agency_admin(bc_call_t *call)
{
    identity_scope_t scope;
    bc_code_t code = identity_require_admin(call, &scope);
    if (code != BC_OK)
        return code;
    if (scope != IDENTITY_SCOPE_AGENCY || !bc_is_uuid(call->principal->staff_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "",
                            "only an agency_admin manages API keys");
    return BC_OK;
}

IDENTITY_HANDLER(identity_api_key_create)
{
    const Beacon__Identity__CreateApiKeyRequest *req =
        (const Beacon__Identity__CreateApiKeyRequest *)in;
    bc_code_t code = s_require_agency_admin(call);
    if (code != BC_OK)
        return code;
    const char *problem = identity_check_text(req->name, true, 200);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "name", "name %s", problem);
    bool role_ok = false;
    for (const char *const *r = s_key_roles; *r; r++)
        role_ok |= !strcmp(*r, req->role);
    if (!role_ok)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "role",
                            "role must be billing, analyst, partner or auditor");
    if ((code = identity_check_uuids(call, "site_ids", req->site_ids, req->n_site_ids, 200)) !=
            BC_OK ||
        (code = identity_check_sites_exist(call, req->site_ids, req->n_site_ids)) != BC_OK ||
        (code = identity_check_partner_organization(call, (char *const *)&req->role, 1,
                                                    req->organization_id)) != BC_OK)
        return code;

    char token[BC_TOKEN_MAX], hash[BC_TOKEN_HASH_LEN + 1];
    bc_token_new(BC_TOKEN_API_KEY_PREFIX, token, sizeof token);
    bc_token_hash(token, hash);
    const char *params[] = {hash,
                            req->name,
                            call->principal->agency_id,
                            req->role,
                            call->principal->staff_id,
                            identity_pg_array(call, req->site_ids, req->n_site_ids),
                            *req->organization_id ? req->organization_id : NULL};
    bc_error_t err;
    if (identity_begin(call, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(
        call->db, "identity_api_key_insert",
        "WITH k AS (INSERT INTO identity.api_keys (key_hash, name, agency_id, role, created_by, "
        "  organization_id) VALUES ($1, $2, $3, $4, $5, $7) RETURNING *), "
        "s AS (INSERT INTO identity.api_key_sites (api_key_id, site_id, agency_id) "
        "  SELECT k.id, u.site, k.agency_id FROM k, "
        "  (SELECT DISTINCT unnest($6::uuid[]) AS site) u) "
        "SELECT " S_KEY_COLUMNS " FROM k",
        7, params, &err);
    if (!res)
        return identity_fail(call, &err);
    /* The statement cannot see the sites it inserted: read them back below. */
    Beacon__Identity__ApiKey *key = s_key_from_row(call, res, "");
    PQclear(res);
    bc_audit_event_t ev = {.action = BC_AUDIT_CREATE,
                           .resource_type = "api_key",
                           .resource_id = key->id,
                           .outcome = BC_AUDIT_OK,
                           .detail = identity_json(call, json_pack("{s:s, s:s}", "name", req->name,
                                                                   "role", req->role))};
    if (identity_audit(call, &ev, &err) < 0)
        return identity_fail(call, &err);
    const char *kp[] = {key->id};
    res = bc_db_prepared(call->db, "identity_api_key_sites",
                         "SELECT coalesce(string_agg(site_id::text, ',' ORDER BY site_id), '') "
                         "FROM identity.api_key_sites WHERE api_key_id = $1",
                         1, kp, &err);
    if (!res)
        return identity_fail(call, &err);
    key->site_ids = identity_split(call, PQgetvalue(res, 0, 0), &key->n_site_ids);
    PQclear(res);
    if (identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    Beacon__Identity__CreateApiKeyReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__identity__create_api_key_reply__init(r);
    r->api_key = key;
    r->token = bc_arena_strdup(call->arena, token);
    *out = &r->base;
    return BC_OK;
}

IDENTITY_HANDLER(identity_api_key_revoke)
{
    const Beacon__Identity__RevokeApiKeyRequest *req =
        (const Beacon__Identity__RevokeApiKeyRequest *)in;
    bc_code_t code = s_require_agency_admin(call);
    if (code != BC_OK)
        return code;
    if (!bc_is_uuid(req->id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
    const char *params[] = {req->id, call->principal->agency_id};
    bc_error_t err;
    if (identity_begin(call, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res =
        bc_db_prepared(call->db, "identity_api_key_revoke",
                       "UPDATE identity.api_keys k SET revoked_at = coalesce(k.revoked_at, now()) "
                       "WHERE k.id = $1 AND k.agency_id = $2 RETURNING " S_KEY_COLUMNS ", "
                       "coalesce((SELECT string_agg(site_id::text, ',' ORDER BY site_id) "
                       "  FROM identity.api_key_sites WHERE api_key_id = k.id), '')",
                       2, params, &err);
    if (!res)
        return identity_fail(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        identity_rollback(call);
        return bc_call_fail(call, BC_NOT_FOUND, "id", "no API key with id %s", req->id);
    }
    Beacon__Identity__ApiKey *key = s_key_from_row(call, res, PQgetvalue(res, 0, 9));
    PQclear(res);
    bc_audit_event_t ev = {.action = BC_AUDIT_UPDATE,
                           .resource_type = "api_key",
                           .resource_id = key->id,
                           .outcome = BC_AUDIT_OK,
                           .detail = "{\"revoked\":true}"};
    if (identity_notify(call, "api_key", key->id, &err) < 0 ||
        identity_audit(call, &ev, &err) < 0 || identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    *out = &key->base;
    return BC_OK;
}
