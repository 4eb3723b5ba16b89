/*  identity_login: email + password (+ TOTP code) -> a session.
 *
 *  1. Throttle, in one short transaction serialised per email and per
 *     address (advisory locks): an address with IDENTITY_ADDR_MAX_FAILURES
 *     failures in the window is refused (RESOURCE_EXHAUSTED -> 429); an
 *     email with IDENTITY_ACCOUNT_MAX_FAILURES failures in any window is
 *     locked for IDENTITY_LOCK_S after the last of them, whether or not an
 *     account has that email (so a lock reveals nothing). Otherwise the
 *     attempt is recorded as 'pending', which counts as a failure until it
 *     is settled: concurrent guesses cannot overrun the limits.
 *  2. Check the password outside any transaction (Argon2id, ~25 ms); an
 *     unknown email costs the same through bc_password_verify_dummy. A
 *     disabled account, a wrong password, a wrong or replayed code all get
 *     the same UNAUTHENTICATED "invalid email, password or code".
 *  3. Settle: a failure is recorded (and mirrored into staff.failed_logins /
 *     locked_until); a success claims the TOTP step (totp_last_step only
 *     grows, so a code works once even under concurrency), creates the
 *     session (token "bst_...", stored as its SHA-256), re-hashes the
 *     password when its parameters are outdated and clears the failures.
 *     Each outcome is audited in the same transaction.
 *
 *  Second factor: an account with TOTP enrolled must give a code (without
 *  one the reply is mfa_required, no token, not counted as a failure). An
 *  account holding agency_admin or site_admin without TOTP gets a session
 *  with totp_enrollment_required: Authenticate gives it no roles and no
 *  sites until the factor is enrolled and the user logs in again with a
 *  code (identity_sessions.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "bc_auth.h"
#include "bc_log.h"
#include "bc_util.h"
#include "identity.h"

#define S_SECS(n) "interval '" IDENTITY_STR(n) " seconds'"
#define S_WINDOW S_SECS(IDENTITY_LOGIN_WINDOW_S)
#define S_LOCK S_SECS(IDENTITY_LOCK_S)
#define S_IDLE S_SECS(IDENTITY_SESSION_IDLE_S)
#define S_ABSOLUTE S_SECS(IDENTITY_SESSION_ABSOLUTE_S)
#define S_ACCOUNT_MAX IDENTITY_STR(IDENTITY_ACCOUNT_MAX_FAILURES)
#define S_ADDR_MAX IDENTITY_STR(IDENTITY_ADDR_MAX_FAILURES)

/* Failures of email $1 since its last success (pending ones included), each
 * with the number of failures in the window ending at it. Older rows can
 * neither lock nor be counted, so both scans stay within the last
 * window + lock period (index login_attempts_email). */
#define S_FAILURES                                                                                 \
    "SELECT at, count(*) OVER (ORDER BY at RANGE BETWEEN " S_WINDOW " PRECEDING AND CURRENT "      \
    "ROW) AS n FROM identity.login_attempts WHERE email_key = lower($1) "                          \
    "AND outcome IN ('pending', 'failed') AND at > now() - " S_WINDOW " - " S_LOCK " "             \
    "AND at > coalesce((SELECT max(at) FROM identity.login_attempts "                              \
    "  WHERE email_key = lower($1) AND outcome = 'ok' "                                            \
    "  AND at > now() - " S_WINDOW " - " S_LOCK "), '-infinity')"
#define S_LOCKED_UNTIL "max(at) FILTER (WHERE n >= " S_ACCOUNT_MAX ") + " S_LOCK

/* What step 1 found. */
typedef struct {
    char *verdict; /* pending, locked, throttled */
    char *attempt_id, *staff_id, *agency_id, *password_hash, *status, *totp_hex, *roles;
    int64_t totp_last_step;
} s_account_t;

static int s_throttle(bc_call_t *call, const char *email, const char *addr, s_account_t *a,
                      bc_error_t *err)
{
    const char *params[] = {email, addr};
    /* Locks taken in key order, so two logins never wait on each other in
     * a cycle. */
    PGresult *res =
        bc_db_prepared(call->db, "identity_login_lock",
                       "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(ARRAY["
                       "hashtextextended('beacon.identity.login:' || lower($1), 0), "
                       "hashtextextended('beacon.identity.addr:' || $2, 0)]) AS k ORDER BY 1) keys",
                       2, params, err);
    if (!res)
        return -1;
    PQclear(res);
    res = bc_db_prepared(
        call->db, "identity_login_check",
        "WITH f AS (" S_FAILURES "), "
        "lk AS (SELECT " S_LOCKED_UNTIL " AS until FROM f), "
        "addr AS (SELECT count(*) AS n FROM identity.login_attempts "
        "  WHERE $2 <> '' AND remote_addr = $2 AND at > now() - " S_WINDOW " "
        "  AND outcome IN ('pending', 'failed', 'locked')), "
        "st AS (SELECT s.id, s.agency_id, s.password_hash, s.status, "
        "    encode(s.totp_secret, 'hex') AS totp, s.totp_last_step, "
        "    (SELECT string_agg(role, ',') FROM identity.staff_roles WHERE staff_id = s.id) "
        "    AS roles "
        "  FROM identity.staff s WHERE lower(s.email) = lower($1)), "
        "v AS (SELECT CASE WHEN (SELECT n FROM addr) >= " S_ADDR_MAX
        " THEN 'throttled' WHEN (SELECT until FROM lk) > now() THEN 'locked' "
        "  ELSE 'pending' END AS verdict), "
        "ins AS (INSERT INTO identity.login_attempts (email_key, remote_addr, staff_id, outcome) "
        "  SELECT lower($1), nullif($2, ''), (SELECT id FROM st), verdict FROM v "
        "  WHERE verdict <> 'throttled' RETURNING id) "
        "SELECT v.verdict, coalesce((SELECT id::text FROM ins), ''), coalesce(st.id::text, ''), "
        "coalesce(st.agency_id::text, ''), coalesce(st.password_hash, ''), "
        "coalesce(st.status, ''), coalesce(st.totp, ''), coalesce(st.totp_last_step, -1), "
        "coalesce(st.roles, '') FROM v LEFT JOIN st ON true",
        2, params, err);
    if (!res)
        return -1;
    char **text[] = {&a->verdict,       &a->attempt_id, &a->staff_id, &a->agency_id,
                     &a->password_hash, &a->status,     &a->totp_hex};
    for (int i = 0; i < 7; i++)
        *text[i] = identity_col(call, res, i);
    a->totp_last_step = atoll(PQgetvalue(res, 0, 7));
    a->roles = identity_col(call, res, 8);
    PQclear(res);
    return 0;
}

/* Audits a refused or failed login inside the open transaction. */
static int s_audit_failure(bc_call_t *call, const char *email, const char *addr,
                           const s_account_t *a, const char *action, const char *reason,
                           bc_error_t *err)
{
    bc_audit_event_t ev = {.action = action,
                           .actor_staff_id = a->staff_id,
                           .agency_id = a->agency_id,
                           .resource_type = "staff",
                           .resource_id = a->staff_id,
                           .outcome = BC_AUDIT_DENIED,
                           .detail =
                               identity_json(call, json_pack("{s:s, s:s, s:s}", "reason", reason,
                                                             "email", email, "remote_addr", addr))};
    return identity_audit(call, &ev, err);
}

/* Step 3 for a failure: settles the attempt, mirrors the count and lock into
 * the staff row (none for unknown emails), audits, commits. */
static bc_code_t s_failed(bc_call_t *call, const char *email, const char *addr,
                          const s_account_t *a, const char *reason)
{
    bc_error_t err;
    const char *params[] = {email, a->attempt_id, a->staff_id};
    if (identity_begin(call, &err) < 0)
        return bc_call_fail_err(call, &err);
    /* One snapshot: the attempt still reads as 'pending' in f, which counts
     * as a failure, so the count includes it. */
    PGresult *res = bc_db_prepared(
        call->db, "identity_login_failed",
        "WITH a AS (UPDATE identity.login_attempts SET outcome = 'failed' WHERE id = $2::uuid), "
        "f AS (" S_FAILURES "), "
        "w AS (SELECT count(*) FILTER (WHERE at > now() - " S_WINDOW ") AS n, "
        "  " S_LOCKED_UNTIL " AS until FROM f) "
        "UPDATE identity.staff s SET failed_logins = w.n, locked_until = w.until "
        "FROM w WHERE s.id = nullif($3, '')::uuid",
        3, params, &err);
    if (!res)
        return identity_fail(call, &err);
    PQclear(res);
    if (s_audit_failure(call, email, addr, a, BC_AUDIT_LOGIN_FAILED, reason, &err) < 0 ||
        identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    bc_debug("login failed: %s", reason);
    return bc_call_fail(call, BC_UNAUTHENTICATED, "", IDENTITY_BAD_CREDENTIALS);
}

/* Step 3 when the password was right but a code is needed. */
static bc_code_t s_mfa_required(bc_call_t *call, const char *email, const char *addr,
                                const s_account_t *a, ProtobufCMessage **out)
{
    bc_error_t err;
    const char *params[] = {a->attempt_id};
    if (identity_begin(call, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(call->db, "identity_login_mfa",
                                   "UPDATE identity.login_attempts SET outcome = 'mfa_required' "
                                   "WHERE id = $1",
                                   1, params, &err);
    if (!res)
        return identity_fail(call, &err);
    PQclear(res);
    if (s_audit_failure(call, email, addr, a, BC_AUDIT_LOGIN, "second_factor_required", &err) < 0 ||
        identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    Beacon__Identity__LoginReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__identity__login_reply__init(r);
    r->mfa_required = true;
    *out = &r->base;
    return BC_OK;
}

/* Step 3 for a success. Returns BC_OK with *replayed false and the session
 * committed, or *replayed true (nothing done) when another login used the
 * same TOTP step first, or an error. */
static bc_code_t s_succeeded(bc_call_t *call, const char *addr, const s_account_t *a, int64_t step,
                             bool mfa, const char *new_hash, bool enroll, char token[BC_TOKEN_MAX],
                             bool *replayed)
{
    bc_error_t err;
    *replayed = false;
    if (identity_begin(call, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res;
    if (step >= 0) {
        char step_text[24];
        snprintf(step_text, sizeof step_text, "%lld", (long long)step);
        const char *params[] = {a->staff_id, step_text};
        res = bc_db_prepared(call->db, "identity_login_totp_step",
                             "UPDATE identity.staff SET totp_last_step = $2 "
                             "WHERE id = $1 AND totp_last_step < $2",
                             2, params, &err);
        if (!res)
            return identity_fail(call, &err);
        *replayed = atoi(PQcmdTuples(res)) == 0;
        PQclear(res);
        if (*replayed) {
            identity_rollback(call);
            return BC_OK;
        }
    }
    bc_token_new(BC_TOKEN_SESSION_PREFIX, token, BC_TOKEN_MAX);
    char hash[BC_TOKEN_HASH_LEN + 1];
    bc_token_hash(token, hash);
    const char *params[] = {hash,          a->staff_id, addr, mfa ? "true" : "false",
                            a->attempt_id, new_hash};
    res = bc_db_prepared(
        call->db, "identity_login_ok",
        "WITH se AS (INSERT INTO identity.sessions (token_hash, staff_id, idle_expires_at, "
        "    absolute_expires_at, remote_addr, mfa) "
        "  VALUES ($1, $2, now() + least(" S_IDLE ", " S_ABSOLUTE "), now() + " S_ABSOLUTE ", "
        "    nullif($3, ''), $4::boolean) RETURNING id), "
        "la AS (UPDATE identity.login_attempts SET outcome = 'ok' WHERE id = $5::uuid), "
        "st AS (UPDATE identity.staff SET failed_logins = 0, locked_until = NULL, "
        "  password_hash = coalesce(nullif($6, ''), password_hash) WHERE id = $2) "
        "SELECT id FROM se",
        6, params, &err);
    if (!res)
        return identity_fail(call, &err);
    char *session_id = identity_col(call, res, 0);
    PQclear(res);
    bc_audit_event_t ev = {
        .action = BC_AUDIT_LOGIN,
        .actor_staff_id = a->staff_id,
        .agency_id = a->agency_id,
        .resource_type = "session",
        .resource_id = session_id,
        .outcome = BC_AUDIT_OK,
        .detail = identity_json(call, json_pack("{s:s, s:b, s:b, s:b}", "remote_addr", addr, "mfa",
                                                mfa, "totp_enrollment_required", enroll, "rehashed",
                                                *new_hash != '\0'))};
    if (identity_audit(call, &ev, &err) < 0 || identity_commit(call, &err) < 0)
        return identity_fail(call, &err);
    return BC_OK;
}

static bool s_any_needs_mfa(bc_call_t *call, const char *roles_csv)
{
    size_t n;
    char **roles = identity_split(call, roles_csv, &n);
    for (size_t i = 0; i < n; i++)
        if (identity_role_needs_mfa(roles[i]))
            return true;
    return false;
}

IDENTITY_HANDLER(identity_login)
{
    const Beacon__Identity__LoginRequest *req = (const Beacon__Identity__LoginRequest *)in;
    /* The address the gateway saw beats whatever the body claims. */
    const char *addr =
        *call->principal->remote_addr ? call->principal->remote_addr : req->remote_addr;
    size_t elen = strlen(req->email), alen = strlen(addr);
    if (!elen || elen > 254 || !bc_utf8_valid(req->email, elen))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "email",
                            "email is required (at most 254 bytes)");
    if (!*req->password)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "password", "password is required");
    if (alen > 64 || strspn(addr, "0123456789abcdefABCDEF.:%[]_-ghijklmnopqrstuvwxyz") != alen)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "remote_addr",
                            "remote_addr must be an IP address");

    /* 1. Throttle and record the attempt as pending. */
    bc_error_t err;
    s_account_t a;
    if (identity_begin(call, &err) < 0 || s_throttle(call, req->email, addr, &a, &err) < 0)
        return identity_fail(call, &err);
    if (strcmp(a.verdict, "pending") != 0) {
        bool throttled = !strcmp(a.verdict, "throttled");
        if (s_audit_failure(call, req->email, addr, &a, BC_AUDIT_LOGIN_FAILED,
                            throttled ? "address_throttled" : "account_locked", &err) < 0 ||
            identity_commit(call, &err) < 0)
            return identity_fail(call, &err);
        return bc_call_fail(call, BC_RESOURCE_EXHAUSTED, "",
                            throttled ? "too many failed sign-ins from this address; try later"
                                      : "too many failed sign-ins for this account; try later");
    }
    if (identity_commit(call, &err) < 0)
        return identity_fail(call, &err);

    /* 2. Password, then second factor. */
    bool known = *a.staff_id != '\0';
    bool ok = known ? bc_password_verify(a.password_hash, req->password)
                    : bc_password_verify_dummy(req->password);
    const char *reason = !known ? "unknown_email" : !ok ? "bad_password" : NULL;
    if (ok && strcmp(a.status, "active") != 0)
        ok = false, reason = "disabled";
    bool enrolled = *a.totp_hex != '\0', mfa = false;
    int64_t step = -1;
    if (ok && enrolled) {
        if (!*req->totp_code)
            return s_mfa_required(call, req->email, addr, &a, out);
        uint8_t key[64];
        size_t klen = 0;
        for (const char *h = a.totp_hex; h[0] && h[1] && klen < sizeof key; h += 2) {
            unsigned v;
            sscanf(h, "%2x", &v);
            key[klen++] = (uint8_t)v;
        }
        bc_totp_result_t v = bc_totp_verify(key, klen, req->totp_code, time(NULL),
                                            IDENTITY_TOTP_WINDOW, a.totp_last_step, &step);
        OPENSSL_cleanse(key, sizeof key);
        if (v != BC_TOTP_OK)
            ok = false, reason = v == BC_TOTP_REPLAY ? "totp_replay" : "totp_mismatch";
        mfa = ok;
    }
    if (!ok)
        return s_failed(call, req->email, addr, &a, reason);
    bool enroll = !enrolled && s_any_needs_mfa(call, a.roles);
    char new_hash[BC_PASSWORD_HASH_MAX] = "";
    if (bc_password_needs_rehash(a.password_hash) &&
        bc_password_hash(req->password, new_hash, sizeof new_hash, &err) < 0)
        new_hash[0] = '\0'; /* keep the old hash; try again next time */

    /* 3. Session. */
    char token[BC_TOKEN_MAX];
    bool replayed;
    bc_code_t code = s_succeeded(call, addr, &a, step, mfa, new_hash, enroll, token, &replayed);
    OPENSSL_cleanse(new_hash, sizeof new_hash);
    if (code != BC_OK)
        return code;
    if (replayed)
        return s_failed(call, req->email, addr, &a, "totp_replay");
    char hash[BC_TOKEN_HASH_LEN + 1];
    bc_token_hash(token, hash);
    Beacon__Identity__AuthenticateReply *auth = NULL;
    if ((code = identity_principal_for(call, token, hash, &auth)) != BC_OK)
        return code;
    Beacon__Identity__LoginReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__identity__login_reply__init(r);
    r->token = bc_arena_strdup(call->arena, token);
    OPENSSL_cleanse(token, sizeof token);
    r->expires_at = auth->expires_at;
    r->idle_expires_at = auth->idle_expires_at;
    r->session_id = auth->session_id;
    r->principal = auth->principal;
    r->principal->remote_addr = (char *)addr;
    r->totp_enrollment_required = enroll;
    *out = &r->base;
    return BC_OK;
}
