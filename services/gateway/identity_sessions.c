/*  identity_sessions: turning a bearer token into a principal
 *  (Authenticate), ending a session (Logout) and enrolling a second factor
 *  (EnrollTotp, ConfirmTotp).
 *
 *  Tokens are looked up by their SHA-256 only. A session is live while it
 *  is not revoked, its idle and absolute expiries are in the future and its
 *  staff member is active; each Authenticate at least a minute after the
 *  last one pushes the idle expiry forward (never past the absolute one), so
 *  a busy session costs one write a minute, not one per request. A session
 *  opened without a second factor carries no roles and no sites when the
 *  account holds a role that needs one: it can only enrol a factor or log
 *  out. Authenticate failures are not audited (every request would then cost
 *  a write, which a flood of bad tokens could turn against us); logins,
 *  logouts and factor changes are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "bc_auth.h"
#include "bc_log.h"
#include "bc_util.h"
#include "identity.h"

#define S_IDLE "interval '" IDENTITY_STR(IDENTITY_SESSION_IDLE_S) " seconds'"
#define S_TOUCH "interval '" IDENTITY_STR(IDENTITY_SESSION_TOUCH_S) " seconds'"

static Beacon__Identity__AuthenticateReply *s_reply_new(bc_call_t *call)
{
    Beacon__Identity__AuthenticateReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__identity__authenticate_reply__init(r);
    r->principal = bc_arena_alloc(call->arena, sizeof *r->principal);
    beacon__principal__init(r->principal);
    return r;
}

static bc_code_t s_session(bc_call_t *call, const char *token_hash,
                           Beacon__Identity__AuthenticateReply **out)
{
    const char *params[] = {token_hash};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "identity_session_auth",
        "WITH s AS (SELECT se.id, se.staff_id, se.mfa, se.idle_expires_at, "
        "    se.absolute_expires_at, se.last_seen_at, st.agency_id, st.organization_id "
        "  FROM identity.sessions se JOIN identity.staff st ON st.id = se.staff_id "
        "  WHERE se.token_hash = $1 AND se.revoked_at IS NULL AND se.idle_expires_at > now() "
        "    AND se.absolute_expires_at > now() AND st.status = 'active'), "
        "t AS (UPDATE identity.sessions u SET last_seen_at = now(), "
        "    idle_expires_at = least(now() + " S_IDLE ", s.absolute_expires_at) "
        "  FROM s WHERE u.id = s.id AND s.last_seen_at < now() - " S_TOUCH " "
        "  RETURNING u.idle_expires_at) "
        "SELECT s.id, s.staff_id, s.agency_id, s.mfa, "
        "identity.rfc3339(coalesce((SELECT idle_expires_at FROM t), s.idle_expires_at)), "
        "identity.rfc3339(s.absolute_expires_at), "
        "coalesce((SELECT string_agg(role, ',' ORDER BY role) FROM identity.staff_roles "
        "          WHERE staff_id = s.staff_id), ''), "
        "coalesce((SELECT string_agg(site_id::text, ',' ORDER BY site_id) "
        "          FROM identity.staff_sites WHERE staff_id = s.staff_id), ''), "
        "coalesce((SELECT string_agg(ss.site_id::text, ',' ORDER BY ss.site_id) "
        "          FROM identity.staff_sites ss JOIN identity.sites si ON si.id = ss.site_id "
        "          WHERE ss.staff_id = s.staff_id AND si.allow_site_caseload), ''), "
        "CASE WHEN EXISTS (SELECT FROM identity.staff_roles WHERE staff_id = s.staff_id "
        "    AND role = 'partner') THEN coalesce(s.organization_id::text, '') ELSE '' END "
        "FROM s",
        1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return bc_call_fail(call, BC_UNAUTHENTICATED, "", IDENTITY_BAD_TOKEN);
    }
    Beacon__Identity__AuthenticateReply *r = s_reply_new(call);
    Beacon__Principal *p = r->principal;
    r->session_id = p->session_id = identity_col(call, res, 0);
    p->staff_id = identity_col(call, res, 1);
    p->agency_id = identity_col(call, res, 2);
    bool mfa = PQgetvalue(res, 0, 3)[0] == 't';
    r->idle_expires_at = identity_col(call, res, 4);
    r->expires_at = identity_col(call, res, 5);
    p->roles = identity_split(call, PQgetvalue(res, 0, 6), &p->n_roles);
    p->site_ids = identity_split(call, PQgetvalue(res, 0, 7), &p->n_site_ids);
    p->caseload_site_ids = identity_split(call, PQgetvalue(res, 0, 8), &p->n_caseload_site_ids);
    p->organization_id = identity_col(call, res, 9);
    PQclear(res);
    bool withheld = false;
    for (size_t i = 0; i < p->n_roles && !mfa; i++)
        withheld |= identity_role_needs_mfa(p->roles[i]);
    if (withheld) {
        p->n_roles = 0;
        p->n_site_ids = 0;
        p->n_caseload_site_ids = 0;
    }
    *out = r;
    return BC_OK;
}

static bc_code_t s_api_key(bc_call_t *call, const char *token_hash,
                           Beacon__Identity__AuthenticateReply **out)
{
    const char *params[] = {token_hash};
    bc_error_t err;
    PGresult *res =
        bc_db_prepared(call->db, "identity_api_key_auth",
                       "WITH k AS (SELECT id, agency_id, role, last_used_at, organization_id "
                       "  FROM identity.api_keys "
                       "  WHERE key_hash = $1 AND revoked_at IS NULL), "
                       "t AS (UPDATE identity.api_keys u SET last_used_at = now() FROM k "
                       "  WHERE u.id = k.id AND (k.last_used_at IS NULL "
                       "    OR k.last_used_at < now() - " S_TOUCH ")) "
                       "SELECT k.id, k.agency_id, k.role, "
                       "coalesce((SELECT string_agg(site_id::text, ',' ORDER BY site_id) "
                       "          FROM identity.api_key_sites WHERE api_key_id = k.id), ''), "
                       "coalesce(k.organization_id::text, '') "
                       "FROM k",
                       1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return bc_call_fail(call, BC_UNAUTHENTICATED, "", IDENTITY_BAD_TOKEN);
    }
    Beacon__Identity__AuthenticateReply *r = s_reply_new(call);
    Beacon__Principal *p = r->principal;
    p->api_key_id = identity_col(call, res, 0);
    p->agency_id = identity_col(call, res, 1);
    p->roles = bc_arena_alloc(call->arena, sizeof(char *));
    p->roles[0] = identity_col(call, res, 2);
    p->n_roles = 1;
    p->site_ids = identity_split(call, PQgetvalue(res, 0, 3), &p->n_site_ids);
    p->organization_id = identity_col(call, res, 4);
    PQclear(res);
    *out = r;
    return BC_OK;
}

bc_code_t identity_principal_for(bc_call_t *call, const char *token, const char *token_hash,
                                 Beacon__Identity__AuthenticateReply **out)
{
    if (bc_token_valid(token, BC_TOKEN_SESSION_PREFIX))
        return s_session(call, token_hash, out);
    if (bc_token_valid(token, BC_TOKEN_API_KEY_PREFIX))
        return s_api_key(call, token_hash, out);
    return bc_call_fail(call, BC_UNAUTHENTICATED, "", IDENTITY_BAD_TOKEN);
}

IDENTITY_HANDLER(identity_authenticate)
{
    const Beacon__Identity__AuthenticateRequest *req =
        (const Beacon__Identity__AuthenticateRequest *)in;
    if (strlen(req->token) >= BC_TOKEN_MAX)
        return bc_call_fail(call, BC_UNAUTHENTICATED, "", IDENTITY_BAD_TOKEN);
    char hash[BC_TOKEN_HASH_LEN + 1];
    bc_token_hash(req->token, hash);
    Beacon__Identity__AuthenticateReply *r = NULL;
    bc_code_t code = identity_principal_for(call, req->token, hash, &r);
    if (code != BC_OK)
        return code;
    *out = &r->base;
    return BC_OK;
}

IDENTITY_HANDLER(identity_logout)
{
    const Beacon__Identity__LogoutRequest *req = (const Beacon__Identity__LogoutRequest *)in;
    const Beacon__Principal *p = call->principal;
    Beacon__Identity__LogoutReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__identity__logout_reply__init(r);
    *out = &r->base;
    PGresult *res;
    bc_error_t err;
    if (identity_begin(call, &err) < 0)
        return bc_call_fail_err(call, &err);
    if (*req->token) {
        if (!bc_token_valid(req->token, BC_TOKEN_SESSION_PREFIX)) {
            identity_rollback(call);
            return BC_OK; /* nothing that could be a session: nothing to end */
        }
        char hash[BC_TOKEN_HASH_LEN + 1];
        bc_token_hash(req->token, hash);
        const char *params[] = {hash};
        res = bc_db_prepared(call->db, "identity_logout_token",
                             "UPDATE identity.sessions s SET revoked_at = now() "
                             "FROM identity.staff st WHERE s.token_hash = $1 "
                             "AND s.revoked_at IS NULL AND st.id = s.staff_id "
                             "RETURNING s.id, s.staff_id, st.agency_id",
                             1, params, &err);
    } else if (bc_is_uuid(p->session_id) && bc_is_uuid(p->staff_id)) {
        const char *params[] = {p->session_id, p->staff_id};
        res = bc_db_prepared(call->db, "identity_logout_session",
                             "UPDATE identity.sessions s SET revoked_at = now() "
                             "FROM identity.staff st WHERE s.id = $1 AND s.staff_id = $2 "
                             "AND s.revoked_at IS NULL AND st.id = s.staff_id "
                             "RETURNING s.id, s.staff_id, st.agency_id",
                             2, params, &err);
    } else {
        identity_rollback(call);
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "token", "token is required");
    }
    if (!res)
        return identity_fail(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        identity_rollback(call);
        return BC_OK;
    }
    r->session_id = identity_col(call, res, 0);
    char *staff_id = identity_col(call, res, 1), *agency_id = identity_col(call, res, 2);
    PQclear(res);
    bc_audit_event_t ev = {.action = BC_AUDIT_LOGOUT,
                           .actor_staff_id = staff_id,
                           .agency_id = agency_id,
                           .resource_type = "session",
                           .resource_id = r->session_id,
                           .outcome = BC_AUDIT_OK};
    if (identity_notify(call, "session", r->session_id, &err) < 0 ||
        identity_audit(call, &ev, &err) < 0 || identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    return BC_OK;
}

/* Second-factor enrolment is for people signed in with a session. */
static bc_code_t s_require_staff(bc_call_t *call)
{
    const Beacon__Principal *p = call->principal;
    if (*p->api_key_id)
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "API keys have no second factor");
    if (!bc_is_uuid(p->staff_id) || !bc_is_uuid(p->agency_id))
        return bc_call_fail(call, BC_UNAUTHENTICATED, "", "authentication required");
    return BC_OK;
}

IDENTITY_HANDLER(identity_totp_enroll)
{
    (void)in;
    bc_code_t code = s_require_staff(call);
    if (code != BC_OK)
        return code;
    uint8_t secret[BC_TOTP_SECRET_LEN];
    bc_totp_secret_new(secret);
    char hex[BC_TOTP_SECRET_LEN * 2 + 1];
    bc_hex(secret, sizeof secret, hex);
    const char *params[] = {call->principal->staff_id, call->principal->agency_id, hex};
    bc_error_t err;
    if (identity_begin(call, &err) < 0)
        return bc_call_fail_err(call, &err);
    /* A new pending secret replaces an unconfirmed one; an enrolled factor
     * is never replaced from a session (a stolen session must not be able
     * to take over the second factor). */
    PGresult *res = bc_db_prepared(
        call->db, "identity_totp_enroll",
        "UPDATE identity.staff SET totp_pending_secret = decode($3, 'hex'), updated_at = now() "
        "WHERE id = $1 AND agency_id = $2 AND status = 'active' AND totp_secret IS NULL "
        "RETURNING email",
        3, params, &err);
    OPENSSL_cleanse(hex, sizeof hex);
    if (!res) {
        OPENSSL_cleanse(secret, sizeof secret);
        return identity_fail(call, &err);
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        OPENSSL_cleanse(secret, sizeof secret);
        identity_rollback(call);
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "",
                            "a second factor is already enrolled for this account");
    }
    char uri[BC_TOTP_URI_MAX];
    int rc = bc_totp_uri(secret, sizeof secret, PQgetvalue(res, 0, 0), uri, sizeof uri, &err);
    PQclear(res);
    OPENSSL_cleanse(secret, sizeof secret);
    bc_audit_event_t ev = {.action = BC_AUDIT_UPDATE,
                           .resource_type = "staff",
                           .resource_id = call->principal->staff_id,
                           .outcome = BC_AUDIT_OK,
                           .detail = "{\"totp\":\"enrolment_started\"}"};
    if (rc < 0 || identity_audit(call, &ev, &err) < 0 || identity_commit(call, &err) < 0) {
        OPENSSL_cleanse(uri, sizeof uri);
        return identity_fail(call, &err);
    }
    Beacon__Identity__EnrollTotpReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__identity__enroll_totp_reply__init(r);
    r->otpauth_uri = bc_arena_strdup(call->arena, uri);
    OPENSSL_cleanse(uri, sizeof uri);
    *out = &r->base;
    return BC_OK;
}

/* Decodes hex of any even length up to 2 * max digits; the byte count or -1. */
static int s_unhex(const char *hex, uint8_t *out, size_t max)
{
    size_t len = strlen(hex);
    if (len % 2 || len / 2 > max || !bc_unhex(hex, len / 2, out))
        return -1;
    return (int)(len / 2);
}

IDENTITY_HANDLER(identity_totp_confirm)
{
    const Beacon__Identity__ConfirmTotpRequest *req =
        (const Beacon__Identity__ConfirmTotpRequest *)in;
    bc_code_t code = s_require_staff(call);
    if (code != BC_OK)
        return code;
    const char *params[] = {call->principal->staff_id, call->principal->agency_id};
    bc_error_t err;
    if (identity_begin(call, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(call->db, "identity_totp_pending",
                                   "SELECT encode(totp_pending_secret, 'hex'), totp_last_step "
                                   "FROM identity.staff WHERE id = $1 AND agency_id = $2 "
                                   "AND status = 'active' AND totp_pending_secret IS NOT NULL "
                                   "FOR UPDATE",
                                   2, params, &err);
    if (!res)
        return identity_fail(call, &err);
    uint8_t secret[64];
    int len = PQntuples(res) ? s_unhex(PQgetvalue(res, 0, 0), secret, sizeof secret) : -1;
    int64_t last = PQntuples(res) ? atoll(PQgetvalue(res, 0, 1)) : -1;
    PQclear(res);
    if (len <= 0) {
        identity_rollback(call);
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "", "call EnrollTotp first");
    }
    int64_t step = -1;
    bc_totp_result_t v = bc_totp_verify(secret, (size_t)len, req->code, time(NULL),
                                        IDENTITY_TOTP_WINDOW, last, &step);
    OPENSSL_cleanse(secret, sizeof secret);
    if (v != BC_TOTP_OK) {
        identity_rollback(call);
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "code",
                            "the code does not match: check the authenticator app's clock");
    }
    char step_text[24];
    snprintf(step_text, sizeof step_text, "%lld", (long long)step);
    const char *uparams[] = {call->principal->staff_id, step_text};
    res = bc_db_prepared(call->db, "identity_totp_confirm",
                         "UPDATE identity.staff SET totp_secret = totp_pending_secret, "
                         "totp_pending_secret = NULL, totp_last_step = $2, updated_at = now() "
                         "WHERE id = $1",
                         2, uparams, &err);
    if (!res)
        return identity_fail(call, &err);
    PQclear(res);
    bc_audit_event_t ev = {.action = BC_AUDIT_UPDATE,
                           .resource_type = "staff",
                           .resource_id = call->principal->staff_id,
                           .outcome = BC_AUDIT_OK,
                           .detail = "{\"totp\":\"enrolled\"}"};
    if (identity_notify(call, "staff", call->principal->staff_id, &err) < 0 ||
        identity_audit(call, &ev, &err) < 0 || identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    Beacon__Identity__ConfirmTotpReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__identity__confirm_totp_reply__init(r);
    r->enrolled = true;
    *out = &r->base;
    return BC_OK;
}
