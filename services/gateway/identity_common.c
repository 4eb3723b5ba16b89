/*  identity_common: what every identity handler shares. The access rules
 *  (roles, administrative scope), input validation, small text helpers and
 *  the transaction + audit plumbing: every change commits together with its
 *  audit event, or not at all. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bc_auth.h"
#include "bc_util.h"
#include "identity.h"

/* ---- Access rules ------------------------------------------------------- */

static const char *const s_roles[] = {"peer_specialist", "supervisor", "site_admin",
                                      "agency_admin",    "billing",    "analyst",
                                      "partner",         "auditor",    NULL};

static bool s_in(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (!strcmp(*list, s))
            return true;
    return false;
}

bool identity_role_valid(const char *role)
{
    return s_in(s_roles, role);
}

bool identity_role_site_level(const char *role)
{
    static const char *const site_level[] = {"peer_specialist", "supervisor", "site_admin", NULL};
    return s_in(site_level, role);
}

bool identity_role_needs_mfa(const char *role)
{
    static const char *const mfa[] = {IDENTITY_ROLE_AGENCY_ADMIN, IDENTITY_ROLE_SITE_ADMIN, NULL};
    return s_in(mfa, role);
}

bool identity_has_role(const Beacon__Principal *p, const char *role)
{
    for (size_t i = 0; i < p->n_roles; i++)
        if (!strcmp(p->roles[i], role))
            return true;
    return false;
}

identity_scope_t identity_admin_scope(const Beacon__Principal *p)
{
    if (!bc_is_uuid(p->agency_id))
        return IDENTITY_SCOPE_NONE;
    if (identity_has_role(p, IDENTITY_ROLE_AGENCY_ADMIN) ||
        identity_has_role(p, IDENTITY_ROLE_OPERATOR))
        return IDENTITY_SCOPE_AGENCY;
    if (identity_has_role(p, IDENTITY_ROLE_SITE_ADMIN) && p->n_site_ids > 0)
        return IDENTITY_SCOPE_SITES;
    return IDENTITY_SCOPE_NONE;
}

bool identity_sites_within(const Beacon__Principal *p, char *const *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < p->n_site_ids && !found; j++)
            found = !strcasecmp(ids[i], p->site_ids[j]);
        if (!found)
            return false;
    }
    return true;
}

bc_code_t identity_require_caller(bc_call_t *call)
{
    const Beacon__Principal *p = call->principal;
    if (!*p->staff_id && !*p->api_key_id && !identity_has_role(p, IDENTITY_ROLE_OPERATOR))
        return bc_call_fail(call, BC_UNAUTHENTICATED, "", "authentication required");
    if (!bc_is_uuid(p->agency_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "not allowed");
    return BC_OK;
}

bc_code_t identity_require_admin(bc_call_t *call, identity_scope_t *scope)
{
    bc_code_t code = identity_require_caller(call);
    if (code != BC_OK)
        return code;
    *scope = identity_admin_scope(call->principal);
    if (*scope == IDENTITY_SCOPE_NONE)
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "not allowed");
    return BC_OK;
}

/* ---- Validation --------------------------------------------------------- */

const char *identity_check_text(const char *value, bool required, size_t max_chars)
{
    return bc_text_problem(value, required, max_chars);
}

const char *identity_check_email(const char *value)
{
    size_t len = strlen(value);
    if (len == 0)
        return "is required";
    if (len < 3 || len > 254 || !bc_utf8_valid(value, len))
        return "must be an email address of at most 254 bytes";
    const char *at = strchr(value, '@');
    if (!at || at == value || !at[1] || strchr(at + 1, '@'))
        return "must be an email address (name@domain)";
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return "must not contain spaces or control characters";
    return NULL;
}

const char *identity_check_npi(const char *value)
{
    if (!*value)
        return NULL;
    if (strlen(value) != 10 || strspn(value, "0123456789") != 10)
        return "must be 10 digits";
    /* Luhn over "80840" + the 10 digits (the NPI standard's card-issuer
     * prefix), check digit included: the sum must end in 0. */
    char full[16];
    snprintf(full, sizeof full, "80840%s", value);
    int sum = 0;
    for (int i = 14, k = 0; i >= 0; i--, k++) {
        int d = full[i] - '0';
        if (k % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0 ? NULL : "is not a valid NPI (check digit)";
}

const char *identity_check_date(const char *value)
{
    if (!*value)
        return NULL;
    struct tm tm = {0};
    const char *end = strptime(value, "%Y-%m-%d", &tm);
    if (strlen(value) != 10 || !end || *end)
        return "must be a date as YYYY-MM-DD";
    struct tm check = tm;
    (void)timegm(&check);
    if (check.tm_mday != tm.tm_mday || check.tm_mon != tm.tm_mon || tm.tm_year + 1900 < 1900)
        return "is not a valid calendar date";
    return NULL;
}

const char *identity_check_password(const char *password, const char *email, bc_error_t *err)
{
    if (bc_password_policy(password, err) < 0)
        return err->message;
    char local[256];
    snprintf(local, sizeof local, "%s", email);
    local[strcspn(local, "@")] = '\0';
    if (!strcasecmp(password, email) || (strlen(local) >= 4 && strcasestr(password, local)))
        return "password must not contain the email address";
    return NULL;
}

bc_code_t identity_check_uuids(bc_call_t *call, const char *field, char *const *ids, size_t n,
                               size_t max)
{
    if (n > max)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, field, "%s: at most %zu", field, max);
    for (size_t i = 0; i < n; i++)
        if (!bc_is_uuid(ids[i]))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, field, "%s[%zu] must be a UUID", field,
                                i);
    return BC_OK;
}

bc_code_t identity_check_sites_exist(bc_call_t *call, char *const *sites, size_t n)
{
    if (n == 0)
        return BC_OK;
    const char *params[] = {call->principal->agency_id, identity_pg_array(call, sites, n)};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "identity_sites_exist",
                                   "SELECT (SELECT count(DISTINCT x) FROM unnest($2::uuid[]) x) = "
                                   "(SELECT count(*) FROM identity.sites "
                                   " WHERE agency_id = $1 AND id = ANY($2::uuid[]))",
                                   2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bool ok = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!ok)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_ids",
                            "site_ids names a site that does not exist");
    return BC_OK;
}

bc_code_t identity_check_partner_organization(bc_call_t *call, char *const *roles, size_t n,
                                              const char *organization_id)
{
    bool partner = false;
    for (size_t i = 0; i < n; i++)
        partner |= !strcmp(roles[i], "partner");
    if (!partner) {
        if (*organization_id)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "organization_id",
                                "organization_id belongs to partner accounts only");
        return BC_OK;
    }
    if (!bc_is_uuid(organization_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "organization_id",
                            "a partner account needs organization_id: the id of its "
                            "organisation in the resource directory");
    /* The directory belongs to the referral service; this is the one place
     * identity reads it (under the caller's scope: an agency_admin reads
     * the agency's directory). */
    const char *params[] = {call->principal->agency_id, organization_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "identity_partner_organization",
                                   "SELECT 1 FROM referral.organizations "
                                   "WHERE agency_id = $1 AND id = $2",
                                   2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bool found = PQntuples(res) > 0;
    PQclear(res);
    if (!found)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "organization_id",
                            "no organisation with id %s in the resource directory",
                            organization_id);
    return BC_OK;
}

bc_code_t identity_check_credentials(bc_call_t *call, Beacon__Identity__Credential *const *c,
                                     size_t n)
{
    if (n > 20)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "credentials", "at most 20 credentials");
    for (size_t i = 0; i < n; i++) {
        const char *k = c[i]->kind;
        size_t klen = strlen(k);
        bool kind_ok = klen >= 2 && klen <= 64 && islower((unsigned char)k[0]) &&
                       strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_") == klen;
        const char *problem = NULL, *what = NULL;
        if (!kind_ok)
            problem = "must be lower_snake_case", what = "kind";
        else if ((problem = identity_check_text(c[i]->number, false, 100)))
            what = "number";
        else if ((problem = identity_check_date(c[i]->issued_on)))
            what = "issued_on";
        else if ((problem = identity_check_date(c[i]->expires_on)))
            what = "expires_on";
        else if (*c[i]->issued_on && *c[i]->expires_on &&
                 strcmp(c[i]->expires_on, c[i]->issued_on) < 0)
            problem = "must not be before issued_on", what = "expires_on";
        if (problem) {
            char field[64];
            snprintf(field, sizeof field, "credentials[%zu].%s", i, what);
            return bc_call_fail(call, BC_INVALID_ARGUMENT, field, "%s %s", field, problem);
        }
    }
    return BC_OK;
}

/* ---- Text helpers ------------------------------------------------------- */

char *identity_pg_array(bc_call_t *call, char *const *items, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += strlen(items[i]) * 2 + 3;
    char *out = bc_arena_alloc(call->arena, len), *p = out;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        *p++ = '"';
        for (const char *s = items[i]; *s; s++) {
            if (*s == '"' || *s == '\\')
                *p++ = '\\';
            *p++ = *s;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

char **identity_split(bc_call_t *call, const char *csv, size_t *n)
{
    size_t count = *csv ? 1 : 0;
    for (const char *p = csv; *p; p++)
        count += *p == ',';
    char **out = bc_arena_alloc(call->arena, sizeof(char *) * (count ? count : 1));
    *n = 0;
    const char *start = csv;
    while (count && *start) {
        size_t len = strcspn(start, ",");
        out[(*n)++] = bc_arena_strndup(call->arena, start, len);
        start += len + (start[len] == ',');
    }
    return out;
}

char *identity_json(bc_call_t *call, json_t *obj)
{
    if (!obj)
        return NULL;
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!text)
        return NULL;
    char *out = bc_arena_strdup(call->arena, text);
    free(text);
    return out;
}

char *identity_col(bc_call_t *call, PGresult *res, int col)
{
    return bc_arena_strdup(call->arena, PQgetvalue(res, 0, col));
}

/* ---- Transactions and audit --------------------------------------------- */

bc_audit_chain_t *identity_audit_chain(const bc_call_t *call)
{
    return call->audit_chain;
}

int identity_audit(bc_call_t *call, bc_audit_event_t *ev, bc_error_t *err)
{
    bc_audit_chain_t *chain = identity_audit_chain(call);
    if (!chain) /* fail closed: no change goes unrecorded */
        return bc_error_set(err, BC_UNAVAILABLE, "", "audit log unavailable");
    const Beacon__Principal *p = call->principal;
    if (!ev->request_id && call->request)
        ev->request_id = call->request->request_id;
    if (!ev->actor_staff_id && !ev->actor_api_key_id) {
        ev->actor_staff_id = p->staff_id;
        ev->actor_api_key_id = p->api_key_id;
    }
    if (!ev->agency_id)
        ev->agency_id = p->agency_id;
    return bc_audit_append(chain, call->db, ev, err);
}

int identity_begin(bc_call_t *call, bc_error_t *err)
{
    return bc_db_begin(call->db, err);
}

int identity_commit(bc_call_t *call, bc_error_t *err)
{
    bc_audit_chain_t *chain = identity_audit_chain(call);
    if (bc_db_commit(call->db, err) < 0) {
        if (chain)
            bc_audit_rollback(chain);
        return -1;
    }
    if (chain)
        bc_audit_commit(chain);
    return 0;
}

void identity_rollback(bc_call_t *call)
{
    bc_audit_chain_t *chain = identity_audit_chain(call);
    bc_db_rollback(call->db);
    if (chain)
        bc_audit_rollback(chain);
}

bc_code_t identity_fail(bc_call_t *call, const bc_error_t *err)
{
    identity_rollback(call);
    return bc_call_fail_err(call, err);
}

int identity_notify(bc_call_t *call, const char *kind, const char *id, bc_error_t *err)
{
    char payload[128];
    snprintf(payload, sizeof payload, "%s:%s", kind, id);
    const char *params[] = {payload};
    PGresult *res = bc_db_prepared(call->db, "identity_notify",
                                   "SELECT pg_notify('beacon_identity', $1)", 1, params, err);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}
