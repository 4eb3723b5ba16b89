/*  test_identity: the identity service's handlers through bc_dispatch
 *  against the real PostgreSQL named by BEACON_TEST_DATABASE_URL.
 *
 *  The group setup applies the common and gateway migrations as the owner,
 *  then calls every handler on a connection as beacon_app (when the role
 *  exists), so the migration's GRANTs are tested too. The owner connection
 *  is for what tests do behind the service's back (ageing sessions and
 *  attempts, reading stored hashes). Every test builds its own agency with
 *  names and emails carrying a per-run random tag, so runs can share a
 *  database. Argon2 costs ~25 ms per hash: the admin principals are made up
 *  (as the gateway would pass them) rather than logged in, except where the
 *  login itself is under test. Audit events go to a chain of the test's;
 *  the last test verifies it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <argon2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_auth.h"
#include "bc_migrate.h"
#include "bc_util.h"
#include "../../services/gateway/identity.h" /* not on the include path */

#define PASSWORD "correct horse battery staple"
#define D(type) (&beacon__identity__##type##__descriptor)
#define EXPECT(call, code) assert_int_equal((call), BEACON__CODE__##code)

static bc_db_t *s_owner, *s_app;
static char *s_app_conninfo; /* what s_app connected with */
static bc_dispatcher_t *s_disp;
static bc_audit_chain_t *s_chain;
static bc_arena_t *s_arena; /* replies of the current test */
static char s_run[9];       /* random tag of this run */
static char s_msg[256];     /* message of the last failed call */

/* ---- Helpers ------------------------------------------------------------ */

/* Calls method as who (NULL: no principal) on db; on OK unpacks the reply
 * into *outp (arena of the test; NULL from other threads). Writes the error
 * message into msg. Returns the status code. */
static int s_call_on(bc_db_t *db, const char *method, const Beacon__Principal *who, const void *in,
                     const ProtobufCMessageDescriptor *od, void *outp, char msg[256])
{
    const ProtobufCMessage *m = in;
    Beacon__Request req = BEACON__REQUEST__INIT;
    req.id = "t";
    req.service = "identity";
    req.method = (char *)method;
    req.principal = (Beacon__Principal *)who;
    req.request_id = "test-identity";
    req.payload.len = protobuf_c_message_get_packed_size(m);
    req.payload.data = malloc(req.payload.len + 1);
    protobuf_c_message_pack(m, req.payload.data);
    size_t len = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *buf = malloc(len), *reply = NULL;
    protobuf_c_message_pack(&req.base, buf);
    bc_arena_t *arena = bc_arena_new(8192);
    bc_worker_ctx_t ctx = {.db = db, .arena = arena, .audit_chain = s_chain};
    size_t n = bc_dispatch_ctx(s_disp, &ctx, buf, len, bc_now_ms(), &reply);
    Beacon__Reply *r =
        (Beacon__Reply *)protobuf_c_message_unpack(&beacon__reply__descriptor, NULL, n, reply);
    assert_non_null(r);
    int status = r->status;
    snprintf(msg, 256, "%s", r->error ? r->error->message : "");
    if (status == BEACON__CODE__OK && outp) {
        *(ProtobufCMessage **)outp = protobuf_c_message_unpack(od, bc_arena_allocator(s_arena),
                                                               r->payload.len, r->payload.data);
        assert_non_null(*(ProtobufCMessage **)outp);
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    free(reply);
    free(buf);
    free(req.payload.data);
    bc_arena_destroy(&arena);
    return status;
}

static int s_call(const char *method, const Beacon__Principal *who, const void *in,
                  const ProtobufCMessageDescriptor *od, void *outp)
{
    return s_call_on(s_app, method, who, in, od, outp, s_msg);
}

/* Comma-separated text as an arena array (for the made-up principals). */
static char **s_list(const char *csv, size_t *n)
{
    char **out = bc_arena_calloc(s_arena, sizeof(char *) * 8);
    *n = 0;
    char *copy = bc_arena_strdup(s_arena, csv), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && *n < 8; t = strtok_r(NULL, ",", &save))
        out[(*n)++] = t;
    return out;
}

static Beacon__Principal *s_who(const char *staff, const char *agency, const char *roles,
                                const char *sites)
{
    Beacon__Principal *p = bc_arena_alloc(s_arena, sizeof *p);
    beacon__principal__init(p);
    p->staff_id = bc_arena_strdup(s_arena, staff);
    p->agency_id = bc_arena_strdup(s_arena, agency);
    p->roles = s_list(roles, &p->n_roles);
    p->site_ids = s_list(sites, &p->n_site_ids);
    return p;
}

static bool s_has(char **items, size_t n, const char *item)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(items[i], item))
            return true;
    return false;
}

static char *s_uuid(void)
{
    char *u = bc_arena_alloc(s_arena, 37);
    bc_uuid_v4(u);
    return u;
}

/* One value from the owner's connection ("" for no row). */
static char *s_sql(const char *sql, const char *p1, const char *p2)
{
    bc_error_t err;
    const char *params[] = {p1, p2};
    PGresult *res = bc_db_query(s_owner, sql, p2 ? 2 : p1 ? 1 : 0, params, &err);
    if (!res)
        fail_msg("%s: %s %s", sql, err.message, err.detail);
    char *v = bc_arena_strdup(s_arena, PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return v;
}

static char *s_email(const char *who)
{
    return bc_arena_printf(s_arena, "%s-%s@example.org", who, s_run);
}

/* An agency with sites A and B and a real agency_admin. */
typedef struct {
    char *agency, *site_a, *site_b, *admin_id;
    Beacon__Principal *admin, *operator;
} s_org_t;

static Beacon__Identity__Site *s_site(Beacon__Principal *who, const char *name, const char *tz)
{
    Beacon__Identity__CreateSiteRequest in = BEACON__IDENTITY__CREATE_SITE_REQUEST__INIT;
    in.name = (char *)name;
    in.time_zone = (char *)tz;
    Beacon__Identity__Site *site = NULL;
    EXPECT(s_call("CreateSite", who, &in, D(site), &site), OK);
    return site;
}

/* Creates a staff member; returns the code and the new id in *id. */
static int s_staff(Beacon__Principal *who, const char *email, const char *roles, const char *sites,
                   char **id)
{
    Beacon__Identity__CreateStaffRequest in = BEACON__IDENTITY__CREATE_STAFF_REQUEST__INIT;
    in.given_name = "Pat";
    in.family_name = "Rivera";
    in.email = (char *)email;
    in.password = PASSWORD;
    in.roles = s_list(roles, &in.n_roles);
    in.site_ids = s_list(sites, &in.n_site_ids);
    Beacon__Identity__Staff *s = NULL;
    int code = s_call("CreateStaff", who, &in, D(staff), &s);
    if (id)
        *id = code == 0 ? s->id : NULL;
    return code;
}

static void s_org(s_org_t *o, const char *tag)
{
    Beacon__Identity__CreateAgencyRequest in = BEACON__IDENTITY__CREATE_AGENCY_REQUEST__INIT;
    in.name = bc_arena_printf(s_arena, "Agency %s %s", tag, s_run);
    Beacon__Identity__Agency *a = NULL;
    Beacon__Principal *op = s_who("", "", IDENTITY_ROLE_OPERATOR, "");
    EXPECT(s_call("CreateAgency", op, &in, D(agency), &a), OK);
    o->agency = a->id;
    o->operator= s_who("", a->id, IDENTITY_ROLE_OPERATOR, "");
    o->site_a = s_site(o->operator, "Site A", "America/Chicago")->id;
    o->site_b = s_site(o->operator, "Site B", "America/Los_Angeles")->id;
    char *sites = bc_arena_printf(s_arena, "%s,%s", o->site_a, o->site_b);
    char *email = s_email(bc_arena_printf(s_arena, "admin-%s", tag));
    EXPECT(s_staff(o->operator, email, "agency_admin", sites, &o->admin_id), OK);
    o->admin = s_who(o->admin_id, o->agency, "agency_admin", sites);
}

static int s_login(const char *email, const char *password, const char *code, const char *addr,
                   Beacon__Identity__LoginReply **r)
{
    Beacon__Identity__LoginRequest in = BEACON__IDENTITY__LOGIN_REQUEST__INIT;
    in.email = (char *)email;
    in.password = (char *)password;
    in.totp_code = (char *)(code ? code : "");
    in.remote_addr = (char *)addr;
    return s_call("Login", NULL, &in, D(login_reply), r);
}

static int s_auth(const char *token, Beacon__Identity__AuthenticateReply **r)
{
    Beacon__Identity__AuthenticateRequest in = BEACON__IDENTITY__AUTHENTICATE_REQUEST__INIT;
    in.token = (char *)token;
    return s_call("Authenticate", NULL, &in, D(authenticate_reply), r);
}

/* A per-run address, so throttling counts only this run's attempts. */
static const char *s_addr(int n)
{
    return bc_arena_printf(s_arena, "2001:db8:%.4s:%.4s::%d", s_run, s_run + 4, n);
}

static char *s_totp(const uint8_t *key, size_t len, int64_t step)
{
    return bc_arena_printf(s_arena, "%06d", bc_hotp(key, len, (uint64_t)step, 6));
}

/* A valid NPI of this run: 9 random digits and the Luhn check digit over
 * "80840" + them (tests the validator against an independent computation). */
static char *s_npi(void)
{
    uint8_t r[9];
    bc_random_bytes(r, sizeof r);
    char *npi = bc_arena_alloc(s_arena, 11), full[16];
    for (int i = 0; i < 9; i++)
        npi[i] = (char)('0' + r[i] % 10);
    npi[0] = '1';
    for (int check = 0; check < 10; check++) {
        npi[9] = (char)('0' + check);
        npi[10] = '\0';
        snprintf(full, sizeof full, "80840%s", npi);
        int sum = 0;
        for (int i = 14; i >= 0; i--) {
            int d = (full[i] - '0') * ((14 - i) % 2 ? 2 : 1);
            sum += d > 9 ? d - 9 : d;
        }
        if (sum % 10 == 0)
            return npi;
    }
    fail_msg("no check digit");
    return NULL;
}

static int s_audited(const char *action, const char *staff_id)
{
    return atoi(s_sql("SELECT count(*) FROM audit.events WHERE action = $1 "
                      "AND actor_staff_id = $2",
                      action, staff_id));
}

/* ---- Tests -------------------------------------------------------------- */

static void test_bootstrap_once(void **state)
{
    (void)state;
    bool empty = s_sql("SELECT EXISTS (SELECT 1 FROM identity.staff)", NULL, NULL)[0] == 'f';
    Beacon__Identity__BootstrapRequest in = BEACON__IDENTITY__BOOTSTRAP_REQUEST__INIT;
    in.agency_name = bc_arena_printf(s_arena, "Bootstrap %s", s_run);
    in.site_name = "Main Street";
    in.time_zone = "America/New_York";
    in.admin_email = s_email("boot");
    in.admin_given_name = "Ada";
    in.admin_family_name = "Admin";
    in.admin_password = PASSWORD;
    Beacon__Identity__BootstrapReply *r = NULL;
    int code = s_call("Bootstrap", NULL, &in, D(bootstrap_reply), &r);
    if (empty && code == 0) {
        assert_string_equal(r->site->time_zone, "America/New_York");
        assert_string_equal(r->admin->agency_id, r->agency->id);
        assert_int_equal(r->admin->n_roles, 1);
        assert_string_equal(r->admin->roles[0], "agency_admin");
        assert_int_equal(r->admin->n_site_ids, 1);
        assert_string_equal(r->admin->site_ids[0], r->site->id);
    } else {
        /* A reused database (or a concurrent run got there first). */
        print_message("staff existed already: only the refusal is checked\n");
        EXPECT(code, FAILED_PRECONDITION);
    }
    in.admin_email = s_email("boot2");
    in.agency_name = bc_arena_printf(s_arena, "Bootstrap again %s", s_run);
    EXPECT(s_call("Bootstrap", NULL, &in, NULL, NULL), FAILED_PRECONDITION);
}

static void test_login_and_authenticate(void **state)
{
    (void)state;
    s_org_t o;
    s_org(&o, "login");
    Beacon__Identity__CreateStaffRequest in = BEACON__IDENTITY__CREATE_STAFF_REQUEST__INIT;
    Beacon__Identity__Credential cred = BEACON__IDENTITY__CREDENTIAL__INIT, *creds[] = {&cred};
    cred.kind = "certified_peer_specialist";
    cred.number = "CPS-1";
    cred.issued_on = "2024-01-31";
    cred.expires_on = "2026-01-31";
    in.given_name = "Lee";
    in.family_name = "Chen";
    in.email = s_email("Lee.Chen");
    in.npi = s_npi();
    in.password = PASSWORD;
    in.roles = s_list("peer_specialist,supervisor", &in.n_roles);
    in.site_ids = s_list(o.site_a, &in.n_site_ids);
    in.credentials = creds;
    in.n_credentials = 1;
    Beacon__Identity__Staff *s = NULL;
    EXPECT(s_call("CreateStaff", o.admin, &in, D(staff), &s), OK);
    assert_string_equal(s->npi, in.npi);
    assert_null(identity_check_npi("1234567893")); /* the CMS example */
    assert_non_null(identity_check_npi("1234567890"));
    assert_int_equal(s->n_credentials, 1);
    assert_string_equal(s->credentials[0]->expires_on, "2026-01-31");
    assert_false(s->totp_enrolled);

    /* Email is matched without regard to case. */
    char *upper = bc_arena_strdup(s_arena, in.email);
    upper[0] = 'l', upper[4] = 'c';
    Beacon__Identity__LoginReply *l = NULL;
    EXPECT(s_login(upper, PASSWORD, NULL, s_addr(1), &l), OK);
    assert_false(l->mfa_required);
    assert_true(bc_token_valid(l->token, BC_TOKEN_SESSION_PREFIX));
    assert_string_equal(l->principal->staff_id, s->id);
    assert_string_equal(l->principal->agency_id, o.agency);
    assert_string_equal(l->principal->session_id, l->session_id);

    Beacon__Identity__AuthenticateReply *a = NULL;
    EXPECT(s_auth(l->token, &a), OK);
    Beacon__Principal *p = a->principal;
    assert_string_equal(p->staff_id, s->id);
    assert_string_equal(p->agency_id, o.agency);
    assert_string_equal(a->session_id, l->session_id);
    assert_int_equal(p->n_roles, 2);
    assert_true(s_has(p->roles, p->n_roles, "peer_specialist"));
    assert_true(s_has(p->roles, p->n_roles, "supervisor"));
    assert_int_equal(p->n_site_ids, 1);
    assert_string_equal(p->site_ids[0], o.site_a);
    assert_string_not_equal(a->idle_expires_at, "");
    assert_string_equal(p->api_key_id, "");

    /* Only the hash is stored. */
    char hash[BC_TOKEN_HASH_LEN + 1];
    bc_token_hash(l->token, hash);
    assert_string_equal(
        s_sql("SELECT count(*) FROM identity.sessions WHERE token_hash = $1", l->token, NULL), "0");
    assert_string_equal(
        s_sql("SELECT count(*) FROM identity.sessions WHERE token_hash = $1", hash, NULL), "1");
    /* Anything else is refused alike. */
    char forged[BC_TOKEN_MAX];
    bc_token_new(BC_TOKEN_SESSION_PREFIX, forged, sizeof forged);
    EXPECT(s_auth(forged, NULL), UNAUTHENTICATED);
    EXPECT(s_auth("", NULL), UNAUTHENTICATED);
    EXPECT(s_auth("Bearer x", NULL), UNAUTHENTICATED);
    assert_int_equal(s_audited("login", s->id), 1);

    /* The staff member reads their own record; nobody reads it unsigned. */
    Beacon__Identity__GetStaffRequest g = BEACON__IDENTITY__GET_STAFF_REQUEST__INIT;
    g.id = s->id;
    EXPECT(s_call("GetStaff", p, &g, D(staff), &s), OK);
    assert_string_equal(s->email, in.email);
    EXPECT(s_call("GetStaff", NULL, &g, NULL, NULL), UNAUTHENTICATED);
}

static void test_wrong_password_is_generic(void **state)
{
    (void)state;
    s_org_t o;
    s_org(&o, "wrong");
    char *email = s_email("wrong"), *id = NULL;
    EXPECT(s_staff(o.admin, email, "peer_specialist", o.site_a, &id), OK);
    int64_t t0 = bc_mono_us();
    EXPECT(s_login(email, "not the password at all", NULL, s_addr(2), NULL), UNAUTHENTICATED);
    int64_t known_us = bc_mono_us() - t0;
    char wrong_msg[256];
    snprintf(wrong_msg, sizeof wrong_msg, "%s", s_msg);
    t0 = bc_mono_us();
    EXPECT(s_login(s_email("nobody"), PASSWORD, NULL, s_addr(2), NULL), UNAUTHENTICATED);
    int64_t unknown_us = bc_mono_us() - t0;
    assert_string_equal(wrong_msg, s_msg);
    assert_string_equal(s_msg, IDENTITY_BAD_CREDENTIALS);
    /* The unknown email paid for a hash too. */
    assert_true(unknown_us * 3 > known_us);
    assert_int_equal(s_audited("login_failed", id), 1);
    assert_string_equal(s_sql("SELECT detail->>'reason' FROM audit.events WHERE action = "
                              "'login_failed' AND actor_staff_id = $1",
                              id, NULL),
                        "bad_password");
}

static void test_lockout_after_five_failures(void **state)
{
    (void)state;
    s_org_t o;
    s_org(&o, "lock");
    char *email = s_email("lock"), *ghost = s_email("ghost"), *id = NULL;
    EXPECT(s_staff(o.admin, email, "peer_specialist", o.site_a, &id), OK);
    for (int i = 0; i < IDENTITY_ACCOUNT_MAX_FAILURES; i++) {
        EXPECT(s_login(email, "wrong password number x", NULL, s_addr(3), NULL), UNAUTHENTICATED);
        EXPECT(s_login(ghost, "wrong password number x", NULL, s_addr(3), NULL), UNAUTHENTICATED);
    }
    /* Locked, even with the right password; an unknown email alike. */
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(4), NULL), RESOURCE_EXHAUSTED);
    EXPECT(s_login(ghost, PASSWORD, NULL, s_addr(4), NULL), RESOURCE_EXHAUSTED);
    Beacon__Identity__GetStaffRequest g = BEACON__IDENTITY__GET_STAFF_REQUEST__INIT;
    g.id = id;
    Beacon__Identity__Staff *s = NULL;
    EXPECT(s_call("GetStaff", o.admin, &g, D(staff), &s), OK);
    assert_int_equal(s->failed_logins, IDENTITY_ACCOUNT_MAX_FAILURES);
    assert_string_not_equal(s->locked_until, "");
    /* Fifteen minutes later (the attempts aged as the owner) it opens. */
    s_sql("UPDATE identity.login_attempts SET at = at - interval '16 minutes' "
          "WHERE email_key = lower($1)",
          email, NULL);
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(4), NULL), OK);
    EXPECT(s_call("GetStaff", o.admin, &g, D(staff), &s), OK);
    assert_int_equal(s->failed_logins, 0);
    assert_string_equal(s->locked_until, "");
}

/* Guesses sent at once, each worker with its own connection as in the
 * service: still no more than IDENTITY_ACCOUNT_MAX_FAILURES are checked. */
typedef struct {
    const char *email, *addr;
    int unauthenticated, exhausted, accepted;
} s_guesser_t;

static void *s_guess(void *arg)
{
    s_guesser_t *g = arg;
    bc_db_t *db = bc_db_new(s_app_conninfo, "test_identity_guess");
    bc_error_t err;
    if (bc_db_connect(db, 10000, &err) == 0) {
        Beacon__Identity__LoginRequest in = BEACON__IDENTITY__LOGIN_REQUEST__INIT;
        in.email = (char *)g->email;
        in.password = "a guess that is wrong";
        in.remote_addr = (char *)g->addr;
        char msg[256];
        for (int i = 0; i < 3; i++) {
            int code = s_call_on(db, "Login", NULL, &in, NULL, NULL, msg);
            g->unauthenticated += code == BEACON__CODE__UNAUTHENTICATED;
            g->exhausted += code == BEACON__CODE__RESOURCE_EXHAUSTED;
            g->accepted += code == BEACON__CODE__OK;
        }
    }
    bc_db_destroy(&db);
    return NULL;
}

static void test_concurrent_guesses(void **state)
{
    (void)state;
    s_org_t o;
    s_org(&o, "race");
    char *email = s_email("race");
    EXPECT(s_staff(o.admin, email, "peer_specialist", o.site_a, NULL), OK);
    s_guesser_t g[4] = {{0}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        g[i].email = email;
        g[i].addr = s_addr(20 + i);
        assert_int_equal(pthread_create(&t[i], NULL, s_guess, &g[i]), 0);
    }
    int unauthenticated = 0, exhausted = 0, accepted = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        unauthenticated += g[i].unauthenticated;
        exhausted += g[i].exhausted;
        accepted += g[i].accepted;
    }
    /* Never more password checks than the limit, and nothing let in. A
     * guess that lost a race may be refused with another code (a conflict
     * between the concurrent transactions): still refused. */
    assert_int_equal(accepted, 0);
    assert_true(unauthenticated >= 1 && unauthenticated <= IDENTITY_ACCOUNT_MAX_FAILURES);
    assert_true(exhausted >= 12 - IDENTITY_ACCOUNT_MAX_FAILURES - 2);
}

static void test_address_throttling(void **state)
{
    (void)state;
    s_org_t o;
    s_org(&o, "addr");
    char *email = s_email("addr");
    EXPECT(s_staff(o.admin, email, "billing", "", NULL), OK);
    for (int i = 0; i < IDENTITY_ADDR_MAX_FAILURES; i++) {
        char *guess = s_email(bc_arena_printf(s_arena, "spray%d", i));
        EXPECT(s_login(guess, PASSWORD, NULL, s_addr(5), NULL), UNAUTHENTICATED);
    }
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(5), NULL), RESOURCE_EXHAUSTED);
    /* The account itself is fine from elsewhere. */
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(6), NULL), OK);
}

static void test_totp_for_admins(void **state)
{
    (void)state;
    s_org_t o;
    s_org(&o, "totp");
    char *email = s_email("siteadmin"), *id = NULL;
    EXPECT(s_staff(o.admin, email, "site_admin", o.site_a, &id), OK);

    /* No factor yet: a session that can only enrol one. */
    Beacon__Identity__LoginReply *l = NULL;
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(7), &l), OK);
    assert_true(l->totp_enrollment_required);
    assert_int_equal(l->principal->n_roles, 0);
    Beacon__Identity__AuthenticateReply *a = NULL;
    EXPECT(s_auth(l->token, &a), OK);
    assert_int_equal(a->principal->n_roles, 0);
    assert_int_equal(a->principal->n_site_ids, 0);
    EXPECT(s_staff(a->principal, s_email("x"), "peer_specialist", o.site_a, NULL),
           PERMISSION_DENIED);

    Beacon__Identity__EnrollTotpRequest e = BEACON__IDENTITY__ENROLL_TOTP_REQUEST__INIT;
    Beacon__Identity__EnrollTotpReply *er = NULL;
    EXPECT(s_call("EnrollTotp", a->principal, &e, D(enroll_totp_reply), &er), OK);
    assert_non_null(strstr(er->otpauth_uri, "otpauth://totp/Beacon:"));
    char b32[128];
    assert_int_equal(sscanf(strstr(er->otpauth_uri, "secret=") + 7, "%127[^&]", b32), 1);
    uint8_t key[64];
    size_t klen = 0;
    bc_error_t err;
    assert_int_equal(bc_base32_decode(b32, key, sizeof key, &klen, &err), 0);
    int64_t step = time(NULL) / BC_TOTP_PERIOD;
    char *now_code = s_totp(key, klen, step), *next_code = s_totp(key, klen, step + 1);

    Beacon__Identity__ConfirmTotpRequest c = BEACON__IDENTITY__CONFIRM_TOTP_REQUEST__INIT;
    c.code = bc_arena_printf(s_arena, "%06d", (atoi(now_code) + 1) % 1000000);
    EXPECT(s_call("ConfirmTotp", a->principal, &c, NULL, NULL), INVALID_ARGUMENT);
    c.code = now_code;
    EXPECT(s_call("ConfirmTotp", a->principal, &c, NULL, NULL), OK);
    /* An enrolled factor is not replaced from a session. */
    EXPECT(s_call("EnrollTotp", a->principal, &e, NULL, NULL), FAILED_PRECONDITION);

    /* From now on a code is needed, works once, and a wrong one says no more
     * than a wrong password. */
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(7), &l), OK);
    assert_true(l->mfa_required);
    assert_string_equal(l->token, "");
    EXPECT(s_login(email, PASSWORD, now_code, s_addr(7), NULL),
           UNAUTHENTICATED); /* used by ConfirmTotp */
    assert_string_equal(s_msg, IDENTITY_BAD_CREDENTIALS);
    EXPECT(s_login(email, PASSWORD, "12345x", s_addr(7), NULL), UNAUTHENTICATED);
    EXPECT(s_login(email, PASSWORD, next_code, s_addr(7), &l), OK);
    assert_false(l->totp_enrollment_required);
    EXPECT(s_auth(l->token, &a), OK);
    assert_int_equal(a->principal->n_roles, 1);
    assert_string_equal(a->principal->roles[0], "site_admin");
    assert_string_equal(a->principal->site_ids[0], o.site_a);
    EXPECT(s_login(email, PASSWORD, next_code, s_addr(7), NULL), UNAUTHENTICATED);
    assert_string_equal(s_sql("SELECT detail->>'reason' FROM audit.events WHERE actor_staff_id = $1"
                              " AND action = 'login_failed' ORDER BY at DESC LIMIT 1",
                              id, NULL),
                        "totp_replay");
}

static void test_logout_revokes(void **state)
{
    (void)state;
    s_org_t o;
    s_org(&o, "logout");
    char *email = s_email("logout"), *id = NULL;
    EXPECT(s_staff(o.admin, email, "analyst", "", &id), OK);
    Beacon__Identity__LoginReply *l = NULL;
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(8), &l), OK);
    Beacon__Identity__LogoutRequest in = BEACON__IDENTITY__LOGOUT_REQUEST__INIT;
    in.token = l->token;
    Beacon__Identity__LogoutReply *r = NULL;
    EXPECT(s_call("Logout", NULL, &in, D(logout_reply), &r), OK);
    assert_string_equal(r->session_id, l->session_id);
    EXPECT(s_auth(l->token, NULL), UNAUTHENTICATED);
    EXPECT(s_call("Logout", NULL, &in, D(logout_reply), &r), OK);
    assert_string_equal(r->session_id, "");
    /* Revoked, not deleted. */
    assert_string_equal(s_sql("SELECT revoked_at IS NOT NULL FROM identity.sessions WHERE id = $1",
                              l->session_id, NULL),
                        "t");
    assert_int_equal(s_audited("logout", id), 1);
    /* Logout of the caller's own session, from the principal. */
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(8), &l), OK);
    in.token = "";
    EXPECT(s_call("Logout", l->principal, &in, D(logout_reply), &r), OK);
    assert_string_equal(r->session_id, l->session_id);
    EXPECT(s_auth(l->token, NULL), UNAUTHENTICATED);
}

static void test_session_expiry(void **state)
{
    (void)state;
    s_org_t o;
    s_org(&o, "expiry");
    char *email = s_email("expiry");
    EXPECT(s_staff(o.admin, email, "peer_specialist", o.site_b, NULL), OK);
    Beacon__Identity__LoginReply *l1 = NULL, *l2 = NULL;
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(9), &l1), OK);
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(9), &l2), OK);
    /* Idle for too long. */
    s_sql("UPDATE identity.sessions SET idle_expires_at = now() - interval '1 second' "
          "WHERE id = $1",
          l1->session_id, NULL);
    EXPECT(s_auth(l1->token, NULL), UNAUTHENTICATED);
    /* In use, but past the absolute limit. */
    s_sql("UPDATE identity.sessions SET absolute_expires_at = now() - interval '1 second' "
          "WHERE id = $1",
          l1->session_id, NULL);
    s_sql("UPDATE identity.sessions SET idle_expires_at = now() + interval '1 hour' "
          "WHERE id = $1",
          l1->session_id, NULL);
    EXPECT(s_auth(l1->token, NULL), UNAUTHENTICATED);
    /* Activity pushes the idle expiry forward, at most once a minute and
     * never past the absolute expiry. */
    s_sql("UPDATE identity.sessions SET last_seen_at = now() - interval '5 minutes', "
          "idle_expires_at = now() + interval '1 minute' WHERE id = $1",
          l2->session_id, NULL);
    EXPECT(s_auth(l2->token, NULL), OK);
    assert_string_equal(s_sql("SELECT idle_expires_at > now() + interval '25 minutes' "
                              "FROM identity.sessions WHERE id = $1",
                              l2->session_id, NULL),
                        "t");
    s_sql("UPDATE identity.sessions SET last_seen_at = now() - interval '5 minutes', "
          "absolute_expires_at = now() + interval '3 minutes' WHERE id = $1",
          l2->session_id, NULL);
    EXPECT(s_auth(l2->token, NULL), OK);
    assert_string_equal(s_sql("SELECT idle_expires_at = absolute_expires_at "
                              "FROM identity.sessions WHERE id = $1",
                              l2->session_id, NULL),
                        "t");
}

static void test_disabled_staff(void **state)
{
    (void)state;
    s_org_t o;
    s_org(&o, "disabled");
    char *email = s_email("disabled"), *id = NULL;
    EXPECT(s_staff(o.admin, email, "supervisor", o.site_a, &id), OK);
    Beacon__Identity__LoginReply *l = NULL;
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(10), &l), OK);
    Beacon__Identity__DisableStaffRequest d = BEACON__IDENTITY__DISABLE_STAFF_REQUEST__INIT;
    d.id = o.admin_id;
    EXPECT(s_call("DisableStaff", o.admin, &d, NULL, NULL), FAILED_PRECONDITION); /* not oneself */
    d.id = id;
    d.reason = "left the agency";
    Beacon__Identity__Staff *s = NULL;
    EXPECT(s_call("DisableStaff", o.admin, &d, D(staff), &s), OK);
    assert_string_equal(s->status, "disabled");
    EXPECT(s_auth(l->token, NULL), UNAUTHENTICATED);
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(10), NULL), UNAUTHENTICATED);
    assert_string_equal(s_msg, IDENTITY_BAD_CREDENTIALS);
}

static void test_api_keys(void **state)
{
    (void)state;
    s_org_t o, other;
    s_org(&o, "keys");
    s_org(&other, "keys-other");
    Beacon__Identity__CreateApiKeyRequest in = BEACON__IDENTITY__CREATE_API_KEY_REQUEST__INIT;
    in.name = "Billing export";
    in.role = "billing";
    in.site_ids = s_list(o.site_a, &in.n_site_ids);
    Beacon__Identity__CreateApiKeyReply *k = NULL;
    EXPECT(s_call("CreateApiKey", o.admin, &in, D(create_api_key_reply), &k), OK);
    assert_true(bc_token_valid(k->token, BC_TOKEN_API_KEY_PREFIX));
    assert_int_equal(k->api_key->n_site_ids, 1);
    assert_string_equal(k->api_key->created_by, o.admin_id);
    char hash[BC_TOKEN_HASH_LEN + 1];
    bc_token_hash(k->token, hash);
    assert_string_equal(s_sql("SELECT id FROM identity.api_keys WHERE key_hash = $1", hash, NULL),
                        k->api_key->id);

    Beacon__Identity__AuthenticateReply *a = NULL;
    EXPECT(s_auth(k->token, &a), OK);
    assert_string_equal(a->principal->api_key_id, k->api_key->id);
    assert_string_equal(a->principal->staff_id, "");
    assert_string_equal(a->principal->agency_id, o.agency);
    assert_int_equal(a->principal->n_roles, 1);
    assert_string_equal(a->principal->roles[0], "billing");
    assert_string_equal(a->principal->site_ids[0], o.site_a);

    /* No admin keys, no other agency's sites, no key from a non-admin. */
    in.role = "agency_admin";
    EXPECT(s_call("CreateApiKey", o.admin, &in, NULL, NULL), INVALID_ARGUMENT);
    in.role = "partner";
    in.site_ids = s_list(other.site_a, &in.n_site_ids);
    EXPECT(s_call("CreateApiKey", o.admin, &in, NULL, NULL), INVALID_ARGUMENT);
    Beacon__Principal *peer = s_who(s_uuid(), o.agency, "peer_specialist", o.site_a);
    EXPECT(s_call("CreateApiKey", peer, &in, NULL, NULL), PERMISSION_DENIED);

    Beacon__Identity__RevokeApiKeyRequest r = BEACON__IDENTITY__REVOKE_API_KEY_REQUEST__INIT;
    r.id = k->api_key->id;
    EXPECT(s_call("RevokeApiKey", other.admin, &r, NULL, NULL), NOT_FOUND);
    Beacon__Identity__ApiKey *key = NULL;
    EXPECT(s_call("RevokeApiKey", o.admin, &r, D(api_key), &key), OK);
    assert_string_not_equal(key->revoked_at, "");
    EXPECT(s_auth(k->token, NULL), UNAUTHENTICATED);
}

static void test_site_admin_scope(void **state)
{
    (void)state;
    s_org_t o, other;
    s_org(&o, "scope");
    s_org(&other, "scope-other");
    Beacon__Principal *sa = s_who(s_uuid(), o.agency, "site_admin", o.site_a);
    char *a_id = NULL, *ab_id = NULL, *b_id = NULL;
    EXPECT(s_staff(sa, s_email("at-a"), "peer_specialist", o.site_a, &a_id), OK);
    EXPECT(s_staff(sa, s_email("at-b"), "peer_specialist", o.site_b, NULL), PERMISSION_DENIED);
    EXPECT(s_staff(sa, s_email("boss"), "agency_admin", o.site_a, NULL), PERMISSION_DENIED);
    EXPECT(s_staff(sa, s_email("far"), "peer_specialist", other.site_a, NULL), PERMISSION_DENIED);
    /* A principal claiming another agency's site gets no further. */
    Beacon__Principal *liar = s_who(s_uuid(), o.agency, "site_admin", other.site_a);
    EXPECT(s_staff(liar, s_email("far2"), "peer_specialist", other.site_a, NULL), INVALID_ARGUMENT);
    EXPECT(s_staff(o.admin, s_email("far3"), "peer_specialist", other.site_a, NULL),
           INVALID_ARGUMENT);

    char *ab = bc_arena_printf(s_arena, "%s,%s", o.site_a, o.site_b);
    EXPECT(s_staff(o.admin, s_email("at-ab"), "supervisor", ab, &ab_id), OK);
    EXPECT(s_staff(o.admin, s_email("only-b"), "supervisor", o.site_b, &b_id), OK);
    Beacon__Identity__GetStaffRequest g = BEACON__IDENTITY__GET_STAFF_REQUEST__INIT;
    g.id = b_id;
    EXPECT(s_call("GetStaff", sa, &g, NULL, NULL), NOT_FOUND);
    g.id = a_id;
    EXPECT(s_call("GetStaff", other.admin, &g, NULL, NULL), NOT_FOUND);

    Beacon__Identity__UpdateStaffRequest u = BEACON__IDENTITY__UPDATE_STAFF_REQUEST__INIT;
    u.id = ab_id; /* works at B too: not the site_admin's to change */
    u.set_roles = true;
    u.roles = s_list("peer_specialist", &u.n_roles);
    EXPECT(s_call("UpdateStaff", sa, &u, NULL, NULL), PERMISSION_DENIED);
    u.id = a_id;
    u.roles = s_list("supervisor", &u.n_roles);
    Beacon__Identity__Staff *s = NULL;
    EXPECT(s_call("UpdateStaff", sa, &u, D(staff), &s), OK);
    assert_string_equal(s->roles[0], "supervisor");
    u.set_roles = false;
    u.set_site_ids = true;
    u.site_ids = s_list(o.site_b, &u.n_site_ids);
    EXPECT(s_call("UpdateStaff", sa, &u, NULL, NULL), PERMISSION_DENIED);
    u.site_ids = s_list(ab, &u.n_site_ids); /* the agency admin can */
    EXPECT(s_call("UpdateStaff", o.admin, &u, D(staff), &s), OK);
    assert_int_equal(s->n_site_ids, 2);

    Beacon__Identity__ListSitesRequest ls = BEACON__IDENTITY__LIST_SITES_REQUEST__INIT;
    Beacon__Identity__ListSitesReply *sites = NULL;
    EXPECT(s_call("ListSites", sa, &ls, D(list_sites_reply), &sites), OK);
    assert_int_equal(sites->n_sites, 1);
    assert_string_equal(sites->sites[0]->id, o.site_a);
    EXPECT(s_call("ListSites", o.admin, &ls, D(list_sites_reply), &sites), OK);
    assert_int_equal(sites->n_sites, 2);
}

static void test_non_admins_denied(void **state)
{
    (void)state;
    s_org_t o;
    s_org(&o, "deny");
    const char *roles[] = {"peer_specialist", "supervisor", "billing",
                           "analyst",         "partner",    "auditor"};
    Beacon__Identity__CreateSiteRequest site = BEACON__IDENTITY__CREATE_SITE_REQUEST__INIT;
    site.name = "Nope";
    site.time_zone = "UTC";
    Beacon__Identity__UpdateStaffRequest u = BEACON__IDENTITY__UPDATE_STAFF_REQUEST__INIT;
    u.id = o.admin_id;
    u.given_name = "Mallory";
    Beacon__Identity__DisableStaffRequest d = BEACON__IDENTITY__DISABLE_STAFF_REQUEST__INIT;
    d.id = o.admin_id;
    Beacon__Identity__GetStaffRequest g = BEACON__IDENTITY__GET_STAFF_REQUEST__INIT;
    g.id = o.admin_id;
    Beacon__Identity__RevokeApiKeyRequest r = BEACON__IDENTITY__REVOKE_API_KEY_REQUEST__INIT;
    r.id = s_uuid();
    Beacon__Identity__CreateAgencyRequest ca = BEACON__IDENTITY__CREATE_AGENCY_REQUEST__INIT;
    ca.name = "Shadow agency";
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        Beacon__Principal *p = s_who(s_uuid(), o.agency, roles[i], o.site_a);
        EXPECT(s_call("CreateSite", p, &site, NULL, NULL), PERMISSION_DENIED);
        EXPECT(s_staff(p, s_email("sneaky"), "peer_specialist", o.site_a, NULL), PERMISSION_DENIED);
        EXPECT(s_call("UpdateStaff", p, &u, NULL, NULL), PERMISSION_DENIED);
        EXPECT(s_call("DisableStaff", p, &d, NULL, NULL), PERMISSION_DENIED);
        EXPECT(s_call("GetStaff", p, &g, NULL, NULL), PERMISSION_DENIED);
        EXPECT(s_call("RevokeApiKey", p, &r, NULL, NULL), PERMISSION_DENIED);
        EXPECT(s_call("CreateAgency", p, &ca, NULL, NULL), PERMISSION_DENIED);
    }
    EXPECT(s_call("CreateAgency", o.admin, &ca, NULL, NULL), PERMISSION_DENIED);
    EXPECT(s_staff(NULL, s_email("anon"), "peer_specialist", o.site_a, NULL), UNAUTHENTICATED);
    /* A site_admin creates no sites. */
    Beacon__Principal *sa = s_who(s_uuid(), o.agency, "site_admin", o.site_a);
    EXPECT(s_call("CreateSite", sa, &site, NULL, NULL), PERMISSION_DENIED);
}

static void test_hostile_and_bad_input(void **state)
{
    (void)state;
    s_org_t o;
    s_org(&o, "hostile");
    Beacon__Identity__Site *site =
        s_site(o.admin, "St. Mary's'); DROP TABLE identity.sites;--", "Europe/London");
    assert_string_equal(site->name, "St. Mary's'); DROP TABLE identity.sites;--");
    Beacon__Identity__CreateStaffRequest in = BEACON__IDENTITY__CREATE_STAFF_REQUEST__INIT;
    Beacon__Identity__Credential cred = BEACON__IDENTITY__CREDENTIAL__INIT, *creds[] = {&cred};
    cred.kind = "certified_peer_specialist";
    cred.number = "A'1;--\"{x,y}\\";
    in.given_name = "Robert'); DROP TABLE identity.staff;--";
    in.family_name = "O'Brien \"Bobby\" \\ %_ $1";
    in.email = bc_arena_printf(s_arena, "o'brien+\"x\";--%s@example.org", s_run);
    in.password = PASSWORD;
    in.roles = s_list("peer_specialist", &in.n_roles);
    in.site_ids = s_list(site->id, &in.n_site_ids);
    in.credentials = creds;
    in.n_credentials = 1;
    Beacon__Identity__Staff *s = NULL;
    EXPECT(s_call("CreateStaff", o.admin, &in, D(staff), &s), OK);
    assert_string_equal(s->given_name, in.given_name);
    assert_string_equal(s->family_name, in.family_name);
    assert_string_equal(s->email, in.email);
    assert_string_equal(s->credentials[0]->number, cred.number);
    EXPECT(s_login(in.email, PASSWORD, NULL, s_addr(11), NULL), OK);
    EXPECT(s_login(bc_arena_printf(s_arena, "' OR '1'='1' -- %s", s_run), "' OR '1'='1", NULL,
                   s_addr(11), NULL),
           UNAUTHENTICATED);

    /* Refused input, each with the field named. */
    char *email = in.email;
    in.email = s_email("bad");
    in.npi = "1234567890";
    EXPECT(s_call("CreateStaff", o.admin, &in, NULL, NULL), INVALID_ARGUMENT);
    in.npi = "";
    in.password = "short";
    EXPECT(s_call("CreateStaff", o.admin, &in, NULL, NULL), INVALID_ARGUMENT);
    in.password = PASSWORD;
    in.email = "no-at-sign";
    EXPECT(s_call("CreateStaff", o.admin, &in, NULL, NULL), INVALID_ARGUMENT);
    in.email = s_email("bad");
    in.roles = s_list("superuser", &in.n_roles);
    EXPECT(s_call("CreateStaff", o.admin, &in, NULL, NULL), INVALID_ARGUMENT);
    in.roles = s_list("peer_specialist", &in.n_roles);
    cred.expires_on = "2020-02-30";
    EXPECT(s_call("CreateStaff", o.admin, &in, NULL, NULL), INVALID_ARGUMENT);
    cred.expires_on = "";
    in.email = bc_arena_strdup(s_arena, email);
    in.email[0] = 'O'; /* same email, other case */
    EXPECT(s_call("CreateStaff", o.admin, &in, NULL, NULL), ALREADY_EXISTS);
    Beacon__Identity__CreateSiteRequest bad = BEACON__IDENTITY__CREATE_SITE_REQUEST__INIT;
    bad.name = "Olympus";
    bad.time_zone = "Mars/Olympus_Mons";
    EXPECT(s_call("CreateSite", o.admin, &bad, NULL, NULL), INVALID_ARGUMENT);
    bad.time_zone = "America/Chicago'; --";
    EXPECT(s_call("CreateSite", o.admin, &bad, NULL, NULL), INVALID_ARGUMENT);
    assert_string_equal(s_sql("SELECT to_regclass('identity.staff') IS NOT NULL", NULL, NULL), "t");
}

static void test_rehash_on_login(void **state)
{
    (void)state;
    s_org_t o;
    s_org(&o, "rehash");
    char *email = s_email("rehash"), *id = NULL;
    EXPECT(s_staff(o.admin, email, "auditor", "", &id), OK);
    /* An older, cheaper hash of the same password. */
    char weak[256];
    const uint8_t salt[16] = "0123456789abcdef";
    assert_int_equal(argon2id_hash_encoded(1, 1024, 1, PASSWORD, strlen(PASSWORD), salt,
                                           sizeof salt, 32, weak, sizeof weak),
                     ARGON2_OK);
    s_sql("UPDATE identity.staff SET password_hash = $2 WHERE id = $1", id, weak);
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(12), NULL), OK);
    char *now = s_sql("SELECT password_hash FROM identity.staff WHERE id = $1", id, NULL);
    assert_string_not_equal(now, weak);
    assert_false(bc_password_needs_rehash(now));
    EXPECT(s_login(email, PASSWORD, NULL, s_addr(12), NULL), OK);
}

static void test_audit_chain_intact(void **state)
{
    (void)state;
    bc_error_t err;
    bc_audit_report_t report = {0};
    assert_int_equal(bc_audit_verify(s_owner, bc_audit_chain_id(s_chain), &report, &err), 0);
    assert_true(report.events > 0);
    assert_int_equal(report.broken, 0);
    bc_audit_report_clear(&report);
}

/* ---- Set-up ------------------------------------------------------------- */

/* The owner's conninfo with user=beacon_app, when that role exists. */
static char *s_app_url(const char *url)
{
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    if (!opts)
        return NULL;
    size_t len = strlen(url) * 2 + 64;
    char *out = calloc(1, len);
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = !strcmp(o->keyword, "user") ? "beacon_app" : o->val;
        if (!v || !strcmp(o->keyword, "password"))
            continue;
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s='", used ? " " : "", o->keyword);
        for (const char *c = v; *c && strlen(out) + 4 < len; c++) {
            used = strlen(out);
            snprintf(out + used, len - used, "%s%c", (*c == '\'' || *c == '\\') ? "\\" : "", *c);
        }
        strncat(out, "'", len - strlen(out) - 1);
    }
    PQconninfoFree(opts);
    return out;
}

static int s_setup(void **state)
{
    (void)state;
    const char *url = getenv("BEACON_TEST_DATABASE_URL");
    bc_error_t err;
    s_owner = bc_db_new(url, "test_identity_owner");
    if (bc_db_connect(s_owner, 10000, &err) < 0 ||
        bc_migrate_apply(s_owner, "common", "common/migrations", &err) < 0 ||
        bc_migrate_apply(s_owner, "gateway", "services/gateway/migrations", &err) < 0) {
        fprintf(stderr, "setup: %s (%s)\n", err.message, err.detail);
        return -1;
    }
    uint8_t r[4];
    bc_random_bytes(r, sizeof r);
    bc_hex(r, sizeof r, s_run);
    s_arena = bc_arena_new(65536);
    bool app =
        s_sql("SELECT count(*) FROM pg_roles WHERE rolname = 'beacon_app'", NULL, NULL)[0] == '1';
    char *app_url = app ? s_app_url(url) : NULL;
    if (!app_url)
        fprintf(stderr, "note: no beacon_app role: handlers run as the owner\n");
    s_app_conninfo = app_url ? app_url : strdup(url);
    s_app = bc_db_new(s_app_conninfo, "test_identity");
    if (bc_db_connect(s_app, 10000, &err) < 0) {
        fprintf(stderr, "setup: %s (%s)\n", err.message, err.detail);
        return -1;
    }
    PGresult *res = bc_db_query(s_app, "SELECT current_user", 0, NULL, &err);
    if (!res)
        return -1;
    fprintf(stderr, "handlers run as %s\n", PQgetvalue(res, 0, 0));
    PQclear(res);
    s_chain = bc_audit_chain_new(s_app, "identity", 0, &err);
    s_disp = bc_dispatcher_new(&identity_service, NULL, NULL, &err);
    if (!s_chain || !s_disp) {
        fprintf(stderr, "setup: %s (%s)\n", err.message, err.detail);
        return -1;
    }
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    bc_audit_chain_destroy(&s_chain);
    bc_dispatcher_destroy(&s_disp);
    bc_db_destroy(&s_app);
    bc_db_destroy(&s_owner);
    bc_arena_destroy(&s_arena);
    free(s_app_conninfo);
    return 0;
}

static int s_each_teardown(void **state)
{
    (void)state;
    bc_arena_reset(s_arena);
    return 0;
}

#define T(f) cmocka_unit_test_teardown(f, s_each_teardown)

int main(void)
{
    if (!getenv("BEACON_TEST_DATABASE_URL")) {
        fprintf(stderr, "FAILED: BEACON_TEST_DATABASE_URL is not set (run through tests/run.sh)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        T(test_bootstrap_once),
        T(test_login_and_authenticate),
        T(test_wrong_password_is_generic),
        T(test_lockout_after_five_failures),
        T(test_concurrent_guesses),
        T(test_address_throttling),
        T(test_totp_for_admins),
        T(test_logout_revokes),
        T(test_session_expiry),
        T(test_disabled_staff),
        T(test_api_keys),
        T(test_site_admin_scope),
        T(test_non_admins_denied),
        T(test_hostile_and_bad_input),
        T(test_rehash_on_login),
        T(test_audit_chain_intact),
    };
    return cmocka_run_group_tests_name("identity", tests, s_setup, s_teardown);
}
