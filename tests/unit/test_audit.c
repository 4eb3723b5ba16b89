/*  test_audit: the tamper-evident audit log against a real PostgreSQL.
 *
 *  BEACON_TEST_DATABASE_URL names a database where the tests may create
 *  schemas; without it the run fails. The group setup applies
 *  common/migrations as pseudo-service "common" (as every service does at
 *  start). Each test writes chains under a service name of its own
 *  ("t_audit_<random>") and verifies only chains with that prefix, so tests
 *  need no order and other writers on the same database do not disturb
 *  them. The log is append-only, so teardown removes the test's rows the way
 *  a tamperer would: as the table owner, with the triggers disabled inside
 *  one transaction (the tests connect as the owner). The tamper tests edit,
 *  delete and reorder rows the same way and check that the verifier names
 *  the right seq; the last test runs the beacon-audit-verify binary.
 *  Batches (bc_audit_append_batch) are checked to write exactly the rows,
 *  hashes and anchors that as many appends would, all or nothing, and to
 *  heal an out-of-step head like appends do.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bc_audit.h"
#include "bc_db.h"
#include "bc_migrate.h"
#include "bc_util.h"

static const char *s_url;

typedef struct {
    bc_db_t *db;
    char service[64];                   /* unique per test */
    char prefix[72];                    /* service + ":" : every chain of this test */
    const struct s_tamper_case *tamper; /* test_tamper's case, or NULL */
} fixture_t;

/* ---- Helpers -------------------------------------------------------------- */

static bc_db_t *s_connect_as(const char *url)
{
    bc_db_t *db = bc_db_new(url, "test_audit");
    bc_error_t err = {0};
    if (bc_db_connect(db, 5000, &err))
        fail_msg("cannot connect to BEACON_TEST_DATABASE_URL: %s", err.detail);
    return db;
}

static void s_run(bc_db_t *db, const char *sql, int nparams, const char *const *params)
{
    bc_error_t err = {0};
    if (bc_db_command(db, sql, nparams, params, &err))
        fail_msg("%s: %s", sql, err.detail);
}

/* The single value of a one-row, one-column query as an integer. */
static int64_t s_int(bc_db_t *db, const char *sql, int nparams, const char *const *params)
{
    bc_error_t err = {0};
    PGresult *res = bc_db_query(db, sql, nparams, params, &err);
    if (!res)
        fail_msg("%s: %s", sql, err.detail);
    assert_int_equal(PQntuples(res), 1);
    int64_t v = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

/* Runs sql with the append-only triggers of all three tables disabled, in
 * one transaction, as the owner: what a tamperer with owner rights does. */
static void s_tamper(bc_db_t *db, const char *sql, int nparams, const char *const *params)
{
    static const char *const tables[][2] = {{"events", "events_append_only"},
                                            {"chains", "chains_append_only"},
                                            {"anchors", "anchors_append_only"}};
    bc_error_t err = {0};
    assert_int_equal(bc_db_begin(db, &err), 0);
    char ddl[160];
    for (size_t i = 0; i < 3; i++) {
        snprintf(ddl, sizeof ddl, "ALTER TABLE audit.%s DISABLE TRIGGER %s", tables[i][0],
                 tables[i][1]);
        s_run(db, ddl, 0, NULL);
    }
    s_run(db, sql, nparams, params);
    for (size_t i = 0; i < 3; i++) {
        snprintf(ddl, sizeof ddl, "ALTER TABLE audit.%s ENABLE TRIGGER %s", tables[i][0],
                 tables[i][1]);
        s_run(db, ddl, 0, NULL);
    }
    if (bc_db_commit(db, &err))
        fail_msg("tamper commit: %s", err.detail);
}

static bc_audit_chain_t *s_chain(fixture_t *fx, bc_db_t *db, int worker)
{
    bc_error_t err = {0};
    bc_audit_chain_t *chain = bc_audit_chain_new(db, fx->service, worker, &err);
    if (!chain)
        fail_msg("bc_audit_chain_new: %s (%s)", err.message, err.detail);
    return chain;
}

/* A typical read event; n makes each one different. */
static bc_audit_event_t s_event(int n, char *buf, size_t size)
{
    snprintf(buf, size, "req-%d", n);
    return (bc_audit_event_t){
        .request_id = buf,
        .actor_staff_id = "7f1c0e1e-7d4a-4c36-9d2b-5b2f1d3e4a11",
        .agency_id = "agency-1",
        .site_id = "site-2",
        .action = BC_AUDIT_READ,
        .resource_type = "client",
        .resource_id = "0b5e1c7a-0000-4000-8000-000000000001",
        .client_id = "0b5e1c7a-0000-4000-8000-000000000001",
        .purpose = "treatment",
        .outcome = BC_AUDIT_OK,
    };
}

/* Appends n events, each in its own committed transaction. */
static void s_append_n(bc_audit_chain_t *chain, bc_db_t *db, int n)
{
    bc_error_t err = {0};
    for (int i = 0; i < n; i++) {
        char buf[32];
        bc_audit_event_t ev = s_event(i, buf, sizeof buf);
        assert_int_equal(bc_db_begin(db, &err), 0);
        if (bc_audit_append(chain, db, &ev, &err))
            fail_msg("append: %s (%s)", err.message, err.detail);
        assert_int_equal(bc_db_commit(db, &err), 0);
        bc_audit_commit(chain);
    }
}

static void s_verify(fixture_t *fx, bc_audit_report_t *report)
{
    bc_error_t err = {0};
    if (bc_audit_verify(fx->db, fx->prefix, report, &err))
        fail_msg("bc_audit_verify: %s (%s)", err.message, err.detail);
}

static void s_expect_intact(fixture_t *fx, int64_t chains, int64_t events)
{
    bc_audit_report_t report;
    s_verify(fx, &report);
    if (report.broken)
        fail_msg("chain %s broken at seq %" PRId64 ": %s (%s)", report.breaks[0].chain,
                 report.breaks[0].seq, bc_audit_break_name(report.breaks[0].kind),
                 report.breaks[0].detail);
    assert_int_equal(report.nbreaks, 0);
    assert_int_equal(report.chains, chains);
    assert_int_equal(report.events, events);
    bc_audit_report_clear(&report);
}

/* Exactly one broken chain, broken at seq for the reason kind. */
static void s_expect_break(fixture_t *fx, const char *chain, int64_t seq,
                           bc_audit_break_kind_t kind)
{
    bc_audit_report_t report;
    s_verify(fx, &report);
    assert_int_equal(report.broken, 1);
    assert_int_equal(report.nbreaks, 1);
    const bc_audit_break_t *b = &report.breaks[0];
    if (strcmp(b->chain, chain) || b->seq != seq || b->kind != kind)
        fail_msg("expected %s at %s seq %" PRId64 ", got %s at %s seq %" PRId64 " (%s)",
                 bc_audit_break_name(kind), chain, seq, bc_audit_break_name(b->kind), b->chain,
                 b->seq, b->detail);
    assert_true(b->detail[0] != '\0');
    bc_audit_report_clear(&report);
}

/* ---- Fixture -------------------------------------------------------------- */

/* common/migrations from the repository root (the tests' working directory)
 * or relative to this binary (build[/san]/tests/test_audit). */
static int s_migrations_dir(char out[PATH_MAX])
{
    struct stat st;
    if (stat("common/migrations", &st) == 0 && S_ISDIR(st.st_mode))
        return realpath("common/migrations", out) ? 0 : -1;
    char exe[PATH_MAX], path[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    const char *ups[] = {"/../../common/migrations", "/../../../common/migrations"};
    char *dir = dirname(exe);
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s%s", dir, ups[i]);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return realpath(path, out) ? 0 : -1;
    }
    return -1;
}

static int s_group_setup(void **state)
{
    (void)state;
    s_url = getenv("BEACON_TEST_DATABASE_URL");
    if (!s_url || !*s_url) {
        fprintf(stderr, "test_audit: BEACON_TEST_DATABASE_URL is not set; tests/run.sh sets it "
                        "(or deploy/pg-cluster.sh init DIR PORT --throwaway)\n");
        return -1;
    }
    char dir[PATH_MAX];
    if (s_migrations_dir(dir)) {
        fprintf(stderr, "test_audit: cannot find common/migrations\n");
        return -1;
    }
    bc_db_t *db = bc_db_new(s_url, "test_audit");
    bc_error_t err = {0};
    int rc = bc_db_connect(db, 5000, &err);
    if (rc == 0)
        rc = bc_migrate_apply(db, "common", dir, &err) < 0 ? -1 : 0;
    if (rc)
        fprintf(stderr, "test_audit: %s (%s)\n", err.message, err.detail);
    bc_db_destroy(&db);
    return rc;
}

/* *state holds the test's initial state (a tamper case, or NULL). */
static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    fx->tamper = *state;
    unsigned char rnd[6];
    char hex[13];
    bc_random_bytes(rnd, sizeof rnd);
    bc_hex(rnd, sizeof rnd, hex);
    snprintf(fx->service, sizeof fx->service, "t_audit_%s", hex);
    snprintf(fx->prefix, sizeof fx->prefix, "%s:", fx->service);
    fx->db = s_connect_as(s_url);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    bc_db_rollback(fx->db);
    const char *params[] = {fx->prefix};
    s_tamper(fx->db,
             "WITH e AS (DELETE FROM audit.events WHERE starts_with(chain, $1)),"
             " a AS (DELETE FROM audit.anchors WHERE starts_with(chain, $1))"
             " DELETE FROM audit.chains WHERE starts_with(chain, $1)",
             1, params);
    bc_db_destroy(&fx->db);
    free(fx);
    return 0;
}

/* ---- The hash ------------------------------------------------------------- */

/* Pins the encoding documented in bc_audit.h: the expected values were
 * computed by an independent implementation of that text (Python hashlib). */
static void test_hash_known_answer(void **state)
{
    (void)state;
    uint8_t prev[BC_AUDIT_HASH_LEN], out[BC_AUDIT_HASH_LEN];
    char hex[2 * BC_AUDIT_HASH_LEN + 1];
    for (int i = 0; i < BC_AUDIT_HASH_LEN; i++)
        prev[i] = (uint8_t)i;
    bc_audit_event_t ev = {
        .at_us = INT64_C(1767225600123456),
        .request_id = "req-1",
        .actor_staff_id = "7f1c0e1e-7d4a-4c36-9d2b-5b2f1d3e4a11",
        .actor_api_key_id = NULL,
        .agency_id = "a1",
        .site_id = "s1",
        .action = "read",
        .resource_type = "client",
        .resource_id = "c-9",
        .client_id = "c-9",
        .purpose = "treatment",
        .outcome = "ok",
        .detail = "{\"fields\":[\"name\",\"dob\"],\"note\":\"\xc3\xa9\"}",
    };
    bc_audit_hash(prev, "intake:0123456789abcdef:3", 42, &ev, out);
    bc_hex(out, sizeof out, hex);
    assert_string_equal(hex, "3a097408c5f829e4ccc9aa5e3efe6ffc986da0f907f3ff8be9b4357df695ed71");

    /* "" is NULL. */
    ev.actor_api_key_id = "";
    bc_audit_hash(prev, "intake:0123456789abcdef:3", 42, &ev, out);
    bc_hex(out, sizeof out, hex);
    assert_string_equal(hex, "3a097408c5f829e4ccc9aa5e3efe6ffc986da0f907f3ff8be9b4357df695ed71");

    uint8_t zero[BC_AUDIT_HASH_LEN] = {0};
    bc_audit_event_t login = {.at_us = 1, .action = "login", .outcome = "denied"};
    bc_audit_hash(zero, "x:0:0", 1, &login, out);
    bc_hex(out, sizeof out, hex);
    assert_string_equal(hex, "9d73bd8315bbb4a000022760e62577d8a6d5ec3dc64715e2f7e31a65ebcd805b");
}

/* Moving bytes between fields, or between a field and its neighbour, always
 * changes the hash (length prefixes, presence bytes). */
static void test_hash_is_unambiguous(void **state)
{
    (void)state;
    uint8_t zero[BC_AUDIT_HASH_LEN] = {0}, a[BC_AUDIT_HASH_LEN], b[BC_AUDIT_HASH_LEN];
    bc_audit_event_t e1 = {
        .at_us = 5, .action = "read", .outcome = "ok", .site_id = "ab", .resource_type = "c"};
    bc_audit_event_t e2 = e1;
    e2.site_id = "a";
    e2.resource_type = "bc";
    bc_audit_hash(zero, "s:1:0", 1, &e1, a);
    bc_audit_hash(zero, "s:1:0", 1, &e2, b);
    assert_memory_not_equal(a, b, sizeof a);

    e2 = e1;
    e2.site_id = NULL;
    e2.agency_id = "ab"; /* same bytes, neighbouring field */
    bc_audit_hash(zero, "s:1:0", 1, &e2, b);
    assert_memory_not_equal(a, b, sizeof a);

    bc_audit_hash(zero, "s:1:0", 2, &e1, b); /* seq counts */
    assert_memory_not_equal(a, b, sizeof a);
    bc_audit_hash(zero, "s:1:1", 1, &e1, b); /* so does the chain */
    assert_memory_not_equal(a, b, sizeof a);
    b[0] = 1;
    uint8_t c[BC_AUDIT_HASH_LEN];
    bc_audit_hash(b, "s:1:0", 1, &e1, c); /* and the previous hash */
    assert_memory_not_equal(a, c, sizeof a);
}

/* ---- Writing -------------------------------------------------------------- */

static void test_chain_new_checks_arguments(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    assert_null(bc_audit_chain_new(fx->db, "Bad Name", 0, &err));
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_null(bc_audit_chain_new(fx->db, "", 0, &err));
    assert_null(bc_audit_chain_new(fx->db, fx->service, -1, &err));
    assert_string_equal(err.field, "worker");
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_null(bc_audit_chain_new(fx->db, fx->service, 0, &err));
    assert_int_equal(err.code, BC_INTERNAL);
    bc_db_rollback(fx->db);

    bc_audit_chain_t *chain = s_chain(fx, fx->db, 7);
    const char *id = bc_audit_chain_id(chain);
    /* service ':' 16 hex ':' worker */
    assert_int_equal(strncmp(id, fx->prefix, strlen(fx->prefix)), 0);
    assert_int_equal(strlen(id), strlen(fx->prefix) + 16 + 2);
    assert_string_equal(id + strlen(id) - 2, ":7");
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 0);
    const char *params[] = {id};
    assert_int_equal(s_int(fx->db, "SELECT worker FROM audit.chains WHERE chain = $1", 1, params),
                     7);
    /* A registered chain without rows is intact. */
    s_expect_intact(fx, 1, 0);
    bc_audit_chain_destroy(&chain);
    assert_null(chain);
    bc_audit_chain_destroy(&chain);
}

static void test_append_in_transaction_then_verify(void **state)
{
    fixture_t *fx = *state;
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    bc_error_t err = {0};
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    char buf[32];
    bc_audit_event_t ev = s_event(1, buf, sizeof buf);
    ev.detail = "{\"fields\": [\"name\", \"dob\"],  \"note\": \"caf\xc3\xa9 \\u0000\"}";
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    bc_audit_event_t login = {.action = BC_AUDIT_LOGIN_FAILED,
                              .outcome = BC_AUDIT_DENIED,
                              .request_id = "",
                              .purpose = "it's \"quoted\"; DROP TABLE x; --",
                              .at_us = INT64_C(946684799999999)};
    assert_int_equal(bc_audit_append(chain, fx->db, &login, &err), 0);
    ev.at_us = INT64_C(4102444800000001); /* 2100-01-01, one microsecond past */
    ev.actor_staff_id = NULL;
    ev.actor_api_key_id = "bak-key-1";
    ev.action = BC_AUDIT_EXPORT;
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    /* Not visible as committed until the caller says so. */
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 0);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    bc_audit_commit(chain);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 3);

    /* Stored as given: exact microseconds, "" as NULL, json text verbatim. */
    const char *params[] = {bc_audit_chain_id(chain)};
    assert_int_equal(s_int(fx->db,
                           "SELECT (extract(epoch FROM at) * 1000000)::bigint FROM audit.events"
                           " WHERE chain = $1 AND seq = 2",
                           1, params),
                     INT64_C(946684799999999));
    assert_int_equal(s_int(fx->db,
                           "SELECT count(*) FROM audit.events WHERE chain = $1 AND seq = 2"
                           " AND request_id IS NULL AND actor_staff_id IS NULL",
                           1, params),
                     1);
    assert_int_equal(s_int(fx->db,
                           "SELECT count(*) FROM audit.events WHERE chain = $1 AND seq = 1"
                           " AND detail::text LIKE '%,  \"note\"%'",
                           1, params),
                     1);
    s_expect_intact(fx, 1, 3);
    bc_audit_chain_destroy(&chain);
}

static void test_append_outside_transaction_commits(void **state)
{
    fixture_t *fx = *state;
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    bc_error_t err = {0};
    bc_audit_event_t ev = {.action = BC_AUDIT_LOGOUT, .outcome = BC_AUDIT_OK};
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 2);
    s_expect_intact(fx, 1, 2);
    bc_audit_chain_destroy(&chain);
}

static void test_bad_events_refused_before_the_database(void **state)
{
    fixture_t *fx = *state;
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    bc_error_t err = {0};
    char long_id[200];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    struct {
        bc_audit_event_t ev;
        const char *field;
    } cases[] = {
        {{.outcome = "ok"}, "action"},
        {{.action = "Read", .outcome = "ok"}, "action"},
        {{.action = "read;drop", .outcome = "ok"}, "action"},
        {{.action = "read"}, "outcome"},
        {{.action = "read", .outcome = "maybe"}, "outcome"},
        {{.action = "read", .outcome = "ok", .client_id = long_id}, "client_id"},
        {{.action = "read", .outcome = "ok", .purpose = "bad \xff utf8"}, "purpose"},
        {{.action = "read", .outcome = "ok", .at_us = -5}, "at_us"},
    };
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(bc_audit_append(chain, fx->db, &cases[i].ev, &err), -1);
        assert_int_equal(err.code, BC_INVALID_ARGUMENT);
        assert_string_equal(err.field, cases[i].field);
    }
    /* Nothing reached the server: the transaction is still usable. */
    bc_audit_event_t ok = {.action = "read", .outcome = "ok"};
    assert_int_equal(bc_audit_append(chain, fx->db, &ok, &err), 0);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    bc_audit_commit(chain);
    s_expect_intact(fx, 1, 1);
    bc_audit_chain_destroy(&chain);
}

static void test_rollback_leaves_no_gap(void **state)
{
    fixture_t *fx = *state;
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    bc_error_t err = {0};
    s_append_n(chain, fx->db, 2);
    uint8_t before[BC_AUDIT_HASH_LEN], after[BC_AUDIT_HASH_LEN];
    assert_int_equal(bc_audit_chain_seq(chain, before), 2);

    /* The work failed after the audit row: both roll back. */
    char buf[32];
    bc_audit_event_t ev = s_event(3, buf, sizeof buf);
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    bc_db_rollback(fx->db);
    bc_audit_rollback(chain);
    assert_int_equal(bc_audit_chain_seq(chain, after), 2);
    assert_memory_equal(before, after, sizeof before);

    s_append_n(chain, fx->db, 1);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 3);
    const char *params[] = {bc_audit_chain_id(chain)};
    assert_int_equal(s_int(fx->db, "SELECT count(*) FROM audit.events WHERE chain = $1", 1, params),
                     3);
    assert_int_equal(s_int(fx->db, "SELECT max(seq) FROM audit.events WHERE chain = $1", 1, params),
                     3);
    s_expect_intact(fx, 1, 3);
    bc_audit_chain_destroy(&chain);
}

/* Callers that forget to report the outcome (or cannot know it) never break
 * the chain: the next append finds the head out of step and re-reads it. */
static void test_unreported_outcomes_heal(void **state)
{
    fixture_t *fx = *state;
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    bc_error_t err = {0};
    char buf[32];
    bc_audit_event_t ev = s_event(1, buf, sizeof buf);
    s_append_n(chain, fx->db, 1);

    /* Rolled back, not reported: the pending head is ahead of the table. */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    bc_db_rollback(fx->db);
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    bc_audit_commit(chain);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 2);

    /* Committed, but reported as rolled back (a COMMIT whose outcome was
     * unknown): the head is behind the table. */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    bc_audit_rollback(chain);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 2);
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    bc_audit_commit(chain);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 5);

    /* A savepoint rolled back over an append, inside one transaction. */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    s_run(fx->db, "SAVEPOINT before_work", 0, NULL);
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    s_run(fx->db, "ROLLBACK TO SAVEPOINT before_work", 0, NULL);
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    bc_audit_commit(chain);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 7);
    s_expect_intact(fx, 1, 7);
    bc_audit_chain_destroy(&chain);
}

static void test_anchors_by_count_and_time(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    bc_audit_chain_set_anchor(chain, 3, 0);
    s_append_n(chain, fx->db, 10);
    const char *params[] = {bc_audit_chain_id(chain)};
    assert_int_equal(s_int(fx->db,
                           "SELECT string_agg(seq::text, '')::bigint FROM"
                           " (SELECT seq FROM audit.anchors WHERE chain = $1 ORDER BY seq) s",
                           1, params),
                     369); /* anchors at 3, 6, 9 */
    /* The anchor carries the row's hash. */
    assert_int_equal(s_int(fx->db,
                           "SELECT count(*) FROM audit.anchors a JOIN audit.events e"
                           " USING (chain, seq) WHERE chain = $1 AND a.hash = e.hash",
                           1, params),
                     3);
    /* At shutdown the head is anchored; a second call has nothing to do. */
    assert_int_equal(bc_audit_chain_anchor(chain, fx->db, &err), 0);
    assert_int_equal(bc_audit_chain_anchor(chain, fx->db, &err), 0);
    assert_int_equal(
        s_int(fx->db, "SELECT max(seq) FROM audit.anchors WHERE chain = $1", 1, params), 10);

    /* By time: events 4 s apart, an anchor at least every 10 s. */
    bc_audit_chain_t *timed = s_chain(fx, fx->db, 1);
    bc_audit_chain_set_anchor(timed, 1000, 10000);
    int64_t t = bc_now_ms() * 1000 + 60 * INT64_C(1000000);
    for (int i = 0; i < 6; i++) {
        bc_audit_event_t ev = {.action = "read", .outcome = "ok", .at_us = t + i * 4000000};
        assert_int_equal(bc_audit_append(timed, fx->db, &ev, &err), 0);
    }
    const char *timed_params[] = {bc_audit_chain_id(timed)};
    assert_int_equal(s_int(fx->db,
                           "SELECT string_agg(seq::text, '')::bigint FROM"
                           " (SELECT seq FROM audit.anchors WHERE chain = $1 ORDER BY seq) s",
                           1, timed_params),
                     14); /* seq 1: 60 s after the chain started; seq 4: 12 s after seq 1 */
    s_expect_intact(fx, 2, 16);
    bc_audit_chain_destroy(&chain);
    bc_audit_chain_destroy(&timed);
}

/* ---- Two writers ---------------------------------------------------------- */

typedef struct {
    fixture_t *fx;
    int worker;
    int committed;
    char error[900];
} s_writer_t;

static void *s_writer_main(void *arg)
{
    s_writer_t *w = arg;
    bc_db_t *db = bc_db_new(s_url, "test_audit_writer");
    bc_error_t err = {0};
    bc_audit_chain_t *chain = NULL;
    if (bc_db_connect(db, 5000, &err) == 0)
        chain = bc_audit_chain_new(db, w->fx->service, w->worker, &err);
    if (chain)
        bc_audit_chain_set_anchor(chain, 7, 0);
    for (int tx = 0; chain && tx < 150; tx++) {
        int events = 1 + tx % 3;
        bool rollback = tx % 10 == 9;
        int rc = bc_db_begin(db, &err);
        char bufs[3][32];
        bc_audit_event_t evs[3];
        for (int i = 0; i < events; i++)
            evs[i] = s_event(tx * 10 + i, bufs[i], sizeof bufs[i]);
        if (w->worker % 2 && rc == 0) /* odd workers write each transaction as one batch */
            rc = bc_audit_append_batch(chain, db, evs, (size_t)events, &err);
        for (int i = 0; !(w->worker % 2) && rc == 0 && i < events; i++)
            rc = bc_audit_append(chain, db, &evs[i], &err);
        if (rc == 0 && !rollback) {
            rc = bc_db_commit(db, &err);
            if (rc == 0) {
                bc_audit_commit(chain);
                w->committed += events;
            }
        } else {
            bc_db_rollback(db);
            bc_audit_rollback(chain);
        }
        if (rc) {
            snprintf(w->error, sizeof w->error, "worker %d: %s (%s)", w->worker, err.message,
                     err.detail);
            break;
        }
    }
    if (!chain)
        snprintf(w->error, sizeof w->error, "worker %d: %s (%s)", w->worker, err.message,
                 err.detail);
    bc_audit_chain_destroy(&chain);
    bc_db_destroy(&db);
    return NULL;
}

static void test_two_writers_concurrently(void **state)
{
    fixture_t *fx = *state;
    s_writer_t w[2] = {{fx, 0, 0, ""}, {fx, 1, 0, ""}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, s_writer_main, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        if (w[i].error[0])
            fail_msg("%s", w[i].error);
    assert_true(w[0].committed > 200);
    s_expect_intact(fx, 2, w[0].committed + w[1].committed);
}

/* ---- Append-only ------------------------------------------------------------ */

/* sql fails with PERMISSION_DENIED and a detail containing why. */
static void s_expect_refused(bc_db_t *db, const char *sql, const char *const *params,
                             const char *why)
{
    bc_error_t err = {0};
    if (bc_db_command(db, sql, params && strstr(sql, "$1") ? 1 : 0, params, &err) == 0)
        fail_msg("not refused: %s", sql);
    assert_int_equal(err.code, BC_PERMISSION_DENIED);
    if (!strstr(err.detail, why))
        fail_msg("%s: expected \"%s\" in %s", sql, why, err.detail);
}

/* Even the owner cannot change the log without first disabling triggers.
 * TRUNCATE runs in a transaction that is rolled back anyway, so a failure
 * here cannot empty the log. */
static void test_update_delete_truncate_refused(void **state)
{
    static const char *const refused[] = {
        "UPDATE audit.events SET purpose = 'x' WHERE chain = $1",
        "DELETE FROM audit.events WHERE chain = $1",
        "UPDATE audit.chains SET worker = 9 WHERE chain = $1",
        "DELETE FROM audit.chains WHERE chain = $1",
        "UPDATE audit.anchors SET seq = 1 WHERE chain = $1",
        "DELETE FROM audit.anchors WHERE chain = $1",
        "TRUNCATE audit.events",
        "TRUNCATE audit.chains",
        "TRUNCATE audit.anchors",
    };
    fixture_t *fx = *state;
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    bc_audit_chain_set_anchor(chain, 2, 0);
    s_append_n(chain, fx->db, 3);
    const char *params[] = {bc_audit_chain_id(chain)};
    bc_error_t err = {0};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(bc_db_begin(fx->db, &err), 0);
        s_expect_refused(fx->db, refused[i], params, "append-only");
        bc_db_rollback(fx->db);
    }
    s_expect_intact(fx, 1, 3);
    bc_audit_chain_destroy(&chain);
}

/* As the services' role (beacon_app, a member of beacon_service, made by
 * deploy/pg-cluster.sh): append and verify work, changes are refused by
 * privileges. Skipped when the role does not exist or the URL cannot be
 * pointed at it. */
static void test_application_role_can_append_not_change(void **state)
{
    fixture_t *fx = *state;
    if (s_int(fx->db, "SELECT count(*) FROM pg_roles WHERE rolname = 'beacon_app'", 0, NULL) != 1 ||
        strstr(s_url, "://")) {
        skip();
        return;
    }
    char url[1024];
    snprintf(url, sizeof url, "%s user=beacon_app", s_url);
    bc_db_t *app = bc_db_new(url, "test_audit_app");
    bc_error_t err = {0};
    if (bc_db_connect(app, 2000, &err)) {
        bc_db_destroy(&app);
        skip();
        return;
    }
    assert_int_equal(s_int(app,
                           "SELECT count(*) FROM pg_roles WHERE rolname = current_user"
                           " AND NOT rolsuper AND rolname = 'beacon_app'",
                           0, NULL),
                     1);
    bc_audit_chain_t *chain = s_chain(fx, app, 0);
    bc_audit_chain_set_anchor(chain, 2, 0);
    s_append_n(chain, app, 3);
    assert_int_equal(bc_audit_chain_anchor(chain, app, &err), 0);
    const char *params[] = {bc_audit_chain_id(chain)};
    s_expect_refused(app, "UPDATE audit.events SET purpose = 'x' WHERE chain = $1", params,
                     "permission denied");
    s_expect_refused(app, "DELETE FROM audit.anchors WHERE chain = $1", params,
                     "permission denied");
    s_expect_refused(app, "TRUNCATE audit.events", NULL, "permission denied");
    s_expect_refused(app, "ALTER TABLE audit.events DISABLE TRIGGER events_append_only", NULL,
                     "must be owner");
    bc_audit_report_t report;
    assert_int_equal(bc_audit_verify(app, fx->prefix, &report, &err), 0);
    assert_int_equal(report.broken, 0);
    assert_int_equal(report.events, 3);
    assert_int_equal(report.anchors, 2);
    bc_audit_report_clear(&report);
    bc_audit_chain_destroy(&chain);
    bc_db_destroy(&app);
}

/* ---- Tampering -------------------------------------------------------------- */

/* Two chains of 10 events, anchors every 4 (at 4 and 8); the first is the
 * victim. The second must stay intact whatever happens to the first. */
static bc_audit_chain_t *s_victim(fixture_t *fx, bc_audit_chain_t **bystander)
{
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    *bystander = s_chain(fx, fx->db, 1);
    bc_audit_chain_set_anchor(chain, 4, 0);
    bc_audit_chain_set_anchor(*bystander, 4, 0);
    for (int i = 0; i < 10; i++) {
        s_append_n(chain, fx->db, 1);
        s_append_n(*bystander, fx->db, 1);
    }
    s_expect_intact(fx, 2, 20);
    return chain;
}

/* Someone who edits a row and recomputes its hash breaks the next link. */
static void test_tamper_edit_with_rehash_detected(void **state)
{
    fixture_t *fx = *state;
    bc_audit_chain_t *other, *chain = s_victim(fx, &other);
    const char *id = bc_audit_chain_id(chain);
    const char *params[] = {id};
    bc_error_t err = {0};
    PGresult *res = bc_db_query(fx->db,
                                "SELECT (extract(epoch FROM at) * 1000000)::bigint,"
                                " encode(prev_hash, 'hex'), encode(hash, 'hex') FROM audit.events"
                                " WHERE chain = $1 AND seq = 5",
                                1, params, &err);
    assert_non_null(res);
    char buf[32];
    bc_audit_event_t ev = s_event(0, buf, sizeof buf); /* what s_victim wrote in every row */
    ev.at_us = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    uint8_t prev[BC_AUDIT_HASH_LEN], hash[BC_AUDIT_HASH_LEN];
    const char *prev_hex = PQgetvalue(res, 0, 1);
    for (int i = 0; i < BC_AUDIT_HASH_LEN; i++)
        sscanf(prev_hex + 2 * i, "%2hhx", &prev[i]);
    /* The forger's recomputation is right (it reproduces the stored hash), so
     * only the link from row 6 can break. */
    char hex[2 * BC_AUDIT_HASH_LEN + 1];
    bc_audit_hash(prev, id, 5, &ev, hash);
    bc_hex(hash, sizeof hash, hex);
    assert_string_equal(hex, PQgetvalue(res, 0, 2));
    PQclear(res);
    ev.client_id = "0b5e1c7a-0000-4000-8000-00000000dead";
    bc_audit_hash(prev, id, 5, &ev, hash);
    char hash_hex[2 * BC_AUDIT_HASH_LEN + 3] = "\\x";
    bc_hex(hash, sizeof hash, hash_hex + 2);
    const char *tparams[] = {id, ev.client_id, hash_hex};
    s_tamper(fx->db,
             "UPDATE audit.events SET client_id = $2, hash = $3::bytea"
             " WHERE chain = $1 AND seq = 5",
             3, tparams);
    s_expect_break(fx, id, 6, BC_AUDIT_BREAK_LINK);
    bc_audit_chain_destroy(&chain);
    bc_audit_chain_destroy(&other);
}

/* The tamper cases: statements run as the owner with the triggers off ($1
 * is the victim chain, $2 the bystander), and where the verifier must point. */
typedef struct s_tamper_case {
    const char *name;
    const char *sql[3];
    bool anchor_head; /* the victim anchors its head first (clean shutdown) */
    int64_t seq;
    bc_audit_break_kind_t kind;
} s_tamper_case_t;

static const s_tamper_case_t s_tamper_cases[] = {
    {"tamper: edit a field of a middle row",
     {"UPDATE audit.events SET purpose = 'marketing' WHERE chain = $1 AND seq = 5"},
     false,
     5,
     BC_AUDIT_BREAK_HASH},
    {"tamper: move a row's time by one microsecond",
     {"UPDATE audit.events SET at = at + interval '1 microsecond' WHERE chain = $1 AND seq = 7"},
     false,
     7,
     BC_AUDIT_BREAK_HASH},
    {"tamper: delete a middle row",
     {"DELETE FROM audit.events WHERE chain = $1 AND seq = 6"},
     false,
     6,
     BC_AUDIT_BREAK_MISSING},
    {"tamper: delete the first row",
     {"DELETE FROM audit.events WHERE chain = $1 AND seq = 1"},
     false,
     1,
     BC_AUDIT_BREAK_MISSING},
    {"tamper: delete a row and renumber the rest to close the gap",
     {"DELETE FROM audit.events WHERE chain = $1 AND seq = 3",
      "UPDATE audit.events SET seq = seq + 1000 WHERE chain = $1 AND seq > 3",
      "UPDATE audit.events SET seq = seq - 1001 WHERE chain = $1 AND seq > 1000"},
     false,
     3,
     BC_AUDIT_BREAK_LINK},
    /* Through a free number: the key is checked row by row. */
    {"tamper: swap two rows (reorder)",
     {"UPDATE audit.events SET seq = 1000 WHERE chain = $1 AND seq = 5",
      "UPDATE audit.events SET seq = 5 WHERE chain = $1 AND seq = 6",
      "UPDATE audit.events SET seq = 6 WHERE chain = $1 AND seq = 1000"},
     false,
     5,
     BC_AUDIT_BREAK_LINK},
    {"tamper: replace rows with another chain's",
     {"DELETE FROM audit.events WHERE chain = $1 AND seq >= 3",
      "INSERT INTO audit.events SELECT $1, seq, at, request_id, actor_staff_id,"
      " actor_api_key_id, agency_id, site_id, action, resource_type, resource_id, client_id,"
      " purpose, outcome, detail, prev_hash, hash FROM audit.events WHERE chain = $2 AND seq = 3"},
     false,
     3,
     BC_AUDIT_BREAK_LINK},
    /* Rows 7..10; the anchor at 8 covers 7 and 8. */
    {"tamper: delete the newest rows after an anchor",
     {"DELETE FROM audit.events WHERE chain = $1 AND seq >= 7"},
     false,
     7,
     BC_AUDIT_BREAK_TRUNCATED},
    /* Rows after the last periodic anchor are covered once the chain anchors
     * its head at shutdown. */
    {"tamper: delete the newest row after the shutdown anchor",
     {"DELETE FROM audit.events WHERE chain = $1 AND seq = 10"},
     true,
     10,
     BC_AUDIT_BREAK_TRUNCATED},
    {"tamper: delete every row of a chain",
     {"DELETE FROM audit.events WHERE chain = $1"},
     false,
     1,
     BC_AUDIT_BREAK_TRUNCATED},
    {"tamper: edit an anchor",
     {"UPDATE audit.anchors SET hash = sha256(hash) WHERE chain = $1 AND seq = 4"},
     false,
     4,
     BC_AUDIT_BREAK_ANCHOR},
    {"tamper: delete a chain's registration",
     {"DELETE FROM audit.chains WHERE chain = $1"},
     false,
     0,
     BC_AUDIT_BREAK_UNREGISTERED},
};

/* Runs the case the fixture was set up with (see main). */
static void test_tamper(void **state)
{
    fixture_t *fx = *state;
    const s_tamper_case_t *tc = fx->tamper;
    assert_non_null(tc);
    bc_error_t err = {0};
    bc_audit_chain_t *other, *chain = s_victim(fx, &other);
    if (tc->anchor_head)
        assert_int_equal(bc_audit_chain_anchor(chain, fx->db, &err), 0);
    const char *params[] = {bc_audit_chain_id(chain), bc_audit_chain_id(other)};
    for (size_t i = 0; i < 3 && tc->sql[i]; i++)
        s_tamper(fx->db, tc->sql[i], strstr(tc->sql[i], "$2") ? 2 : 1, params);
    s_expect_break(fx, params[0], tc->seq, tc->kind);
    bc_audit_chain_destroy(&chain);
    bc_audit_chain_destroy(&other);
}

/* More rows than one FETCH, over several chains, so the merge crosses batch
 * boundaries; a break deep in the log is still found at its seq. */
static void test_verify_streams_large_log(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    bc_audit_chain_t *chains[3];
    for (int c = 0; c < 3; c++) {
        chains[c] = s_chain(fx, fx->db, c);
        bc_audit_chain_set_anchor(chains[c], 1000, 0);
        assert_int_equal(bc_db_begin(fx->db, &err), 0);
        for (int i = 0; i < 1700; i++) {
            char buf[32];
            bc_audit_event_t ev = s_event(i, buf, sizeof buf);
            if (bc_audit_append(chains[c], fx->db, &ev, &err))
                fail_msg("append: %s", err.detail);
        }
        assert_int_equal(bc_db_commit(fx->db, &err), 0);
        bc_audit_commit(chains[c]);
    }
    bc_audit_report_t report;
    s_verify(fx, &report);
    assert_int_equal(report.broken, 0);
    assert_int_equal(report.chains, 3);
    assert_int_equal(report.events, 5100);
    assert_int_equal(report.anchors, 3); /* every 1000 events */
    bc_audit_report_clear(&report);

    const char *params[] = {bc_audit_chain_id(chains[1])};
    s_tamper(fx->db, "UPDATE audit.events SET outcome = 'denied' WHERE chain = $1 AND seq = 1234",
             1, params);
    s_expect_break(fx, params[0], 1234, BC_AUDIT_BREAK_HASH);
    for (int c = 0; c < 3; c++)
        bc_audit_chain_destroy(&chains[c]);
}

/* ---- The command ------------------------------------------------------------ */

/* build[/san]/bin/beacon-audit-verify beside this binary's tests/ folder. */
static void s_tool_path(char out[PATH_MAX])
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    snprintf(out, PATH_MAX, "%.*s/../bin/beacon-audit-verify", PATH_MAX - 64, dirname(exe));
    if (access(out, X_OK) != 0)
        fail_msg("%s not built (make build/bin/beacon-audit-verify)", out);
}

/* Runs the tool with args (no shell: the conninfo has spaces), its stdout
 * into out; returns the exit status. */
static int s_run_tool(const char *const *args, char *out, size_t size)
{
    char path[PATH_MAX];
    s_tool_path(path);
    const char *argv[12] = {path};
    size_t argc = 1;
    for (; args[argc - 1] && argc < 11; argc++)
        argv[argc] = args[argc - 1];
    argv[argc] = NULL;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY); /* its log and usage errors */
        dup2(fds[1], 1);
        dup2(null, 2);
        close(fds[0]);
        close(fds[1]);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t used = 0;
    ssize_t got;
    while ((got = read(fds[0], out + used, size - 1 - used)) > 0)
        used += (size_t)got;
    out[used] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_cli_exit_codes(void **state)
{
    fixture_t *fx = *state;
    char url_arg[1100], prefix_arg[128], out[8192];
    snprintf(url_arg, sizeof url_arg, "--database_url=%s", s_url);
    snprintf(prefix_arg, sizeof prefix_arg, "--chain_prefix=%s", fx->prefix);
    const char *args[] = {url_arg, prefix_arg, "--log_level=off", NULL};

    bc_audit_chain_t *other, *chain = s_victim(fx, &other);
    assert_int_equal(s_run_tool(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"intact\":true"));
    assert_non_null(strstr(out, "\"chains\":2,\"events\":20,"));
    assert_null(strchr(strchr(out, '\n') + 1, '\n')); /* one line */

    const char *params[] = {bc_audit_chain_id(chain)};
    s_tamper(fx->db, "DELETE FROM audit.events WHERE chain = $1 AND seq = 4", 1, params);
    assert_int_equal(s_run_tool(args, out, sizeof out), 1);
    char expect[256];
    snprintf(expect, sizeof expect, "{\"chain\":\"%s\",\"seq\":4,\"reason\":\"missing\"",
             params[0]);
    assert_non_null(strstr(out, expect));
    assert_non_null(strstr(out, "\"intact\":false"));
    assert_non_null(strstr(out, "\"broken\":1"));

    const char *bad_db[] = {"--database_url=host=/nonexistent/beacon port=5 dbname=x user=x",
                            "--db_connect_timeout_ms=0", "--log_level=off", NULL};
    assert_int_equal(s_run_tool(bad_db, out, sizeof out), 2);
    assert_non_null(strstr(out, "\"error\""));
    const char *bad_usage[] = {"--no_such_setting=1", NULL};
    assert_int_equal(s_run_tool(bad_usage, out, sizeof out), 2);
    bc_audit_chain_destroy(&chain);
    bc_audit_chain_destroy(&other);
}

/* ---- Batches ----------------------------------------------------------------- */

/* Values the batch's array literals must carry through byte for byte. */
static const char *const s_awkward[] = {
    "NULL",   "null",     "\"quoted\"",  "back\\slash", "\\\"",      "{braces}",
    "a,b",    " padded ", "caf\xc3\xa9", "tab\there",   "new\nline", "it's",
    "{\"a\"", "}",        "\\x00",       "x",
};
#define S_NAWKWARD (sizeof s_awkward / sizeof s_awkward[0])
static const char *const s_details[] = {
    NULL,
    "{}",
    "{\"q\": \"a \\\" b \\\\ c\", \"u\": \"\\u00e9\", \"n\": null}",
    "  {\"pad\" : [1,  2]}  ",
    "",
};

/* Event i of a batch: the fields cycle through awkward values, "" and NULL. */
static bc_audit_event_t s_batch_event(int i, int64_t at_us)
{
    return (bc_audit_event_t){
        .at_us = at_us,
        .request_id = s_awkward[i % S_NAWKWARD],
        .actor_staff_id = i % 3 ? "staff-1" : NULL,
        .actor_api_key_id = i % 3 ? NULL : s_awkward[(i + 1) % S_NAWKWARD],
        .agency_id = "agency-1",
        .site_id = i % 5 ? "" : s_awkward[(i + 2) % S_NAWKWARD],
        .action = i % 7 ? BC_AUDIT_READ : BC_AUDIT_EXPORT,
        .resource_type = "client",
        .resource_id = s_awkward[(i + 3) % S_NAWKWARD],
        .client_id = s_awkward[(i + 5) % S_NAWKWARD],
        .purpose = s_awkward[(i + 7) % S_NAWKWARD],
        .outcome = i % 11 ? BC_AUDIT_OK : BC_AUDIT_DENIED,
        .detail = s_details[i % 5],
    };
}

static void s_batch(bc_audit_chain_t *chain, bc_db_t *db, const bc_audit_event_t *evs, size_t n)
{
    bc_error_t err = {0};
    if (bc_audit_append_batch(chain, db, evs, n, &err))
        fail_msg("batch of %zu: %s (%s)", n, err.message, err.detail);
}

/* The text value of a one-row, one-column query into out ("" for NULL). */
static void s_text(bc_db_t *db, const char *sql, int nparams, const char *const *params, char *out,
                   size_t size)
{
    bc_error_t err = {0};
    PGresult *res = bc_db_query(db, sql, nparams, params, &err);
    if (!res)
        fail_msg("%s: %s", sql, err.detail);
    assert_int_equal(PQntuples(res), 1);
    snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static int64_t s_rows(fixture_t *fx, const bc_audit_chain_t *chain)
{
    const char *params[] = {bc_audit_chain_id(chain)};
    return s_int(fx->db, "SELECT count(*) FROM audit.events WHERE chain = $1", 1, params);
}

static void test_batch_of_one(void **state)
{
    fixture_t *fx = *state;
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    bc_error_t err = {0};
    char buf[32];
    bc_audit_event_t ev = s_event(1, buf, sizeof buf);
    ev.at_us = INT64_C(1767225600123456);

    /* Outside a transaction it commits on its own. */
    s_batch(chain, fx->db, &ev, 1);
    uint8_t zero[BC_AUDIT_HASH_LEN] = {0}, want[BC_AUDIT_HASH_LEN], head[BC_AUDIT_HASH_LEN];
    bc_audit_hash(zero, bc_audit_chain_id(chain), 1, &ev, want);
    assert_int_equal(bc_audit_chain_seq(chain, head), 1);
    assert_memory_equal(head, want, sizeof want);

    /* Inside one it is pending until the caller reports the commit. */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    s_batch(chain, fx->db, &ev, 1);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 1);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    bc_audit_commit(chain);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 2);

    /* An empty batch does nothing; batches and appends mix on one chain. */
    assert_int_equal(bc_audit_append_batch(chain, fx->db, NULL, 0, &err), 0);
    assert_int_equal(bc_audit_append(chain, fx->db, &ev, &err), 0);
    s_batch(chain, fx->db, &ev, 1);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 4);
    assert_int_equal(s_rows(fx, chain), 4);
    s_expect_intact(fx, 1, 4);
    bc_audit_chain_destroy(&chain);
}

/* 256 awkward events in one batch: the chain's head is the hash the test
 * computes over the events as given, and the verifier recomputes every
 * row's hash from what was stored, so both agree only if every byte went
 * through. The rows equal those of 256 appends of the same events. */
static void test_batch_of_256(void **state)
{
    fixture_t *fx = *state;
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    bc_audit_chain_t *single = s_chain(fx, fx->db, 1);
    bc_error_t err = {0};
    enum { N = 256 };
    bc_audit_event_t evs[N];
    int64_t t = bc_now_ms() * 1000;
    uint8_t prev[BC_AUDIT_HASH_LEN] = {0}, head[BC_AUDIT_HASH_LEN];
    for (int i = 0; i < N; i++) {
        evs[i] = s_batch_event(i, t + i * 7);
        bc_audit_hash(prev, bc_audit_chain_id(chain), i + 1, &evs[i], prev);
    }
    s_batch(chain, fx->db, evs, N);
    assert_int_equal(bc_audit_chain_seq(chain, head), N);
    assert_memory_equal(head, prev, sizeof prev);
    for (int i = 0; i < N; i++)
        assert_int_equal(bc_audit_append(single, fx->db, &evs[i], &err), 0);
    const char *params[] = {bc_audit_chain_id(chain), bc_audit_chain_id(single)};
    assert_int_equal(
        s_int(fx->db,
              "SELECT count(*) FROM audit.events a JOIN audit.events b USING (seq)"
              " WHERE a.chain = $1 AND b.chain = $2 AND (a.at, a.request_id, a.actor_staff_id,"
              " a.actor_api_key_id, a.agency_id, a.site_id, a.action, a.resource_type,"
              " a.resource_id, a.client_id, a.purpose, a.outcome, a.detail::text)"
              " IS NOT DISTINCT FROM (b.at, b.request_id, b.actor_staff_id, b.actor_api_key_id,"
              " b.agency_id, b.site_id, b.action, b.resource_type, b.resource_id, b.client_id,"
              " b.purpose, b.outcome, b.detail::text)",
              2, params),
        N);
    /* "NULL" is text, "" is NULL: i % 16 == 0 and i % 5 != 0, 12 of them. */
    assert_int_equal(s_int(fx->db,
                           "SELECT count(*) FROM audit.events WHERE chain = $1"
                           " AND request_id = 'NULL' AND site_id IS NULL",
                           1, params),
                     12);
    s_expect_intact(fx, 2, 2 * N);

    /* More than BC_AUDIT_BATCH_MAX is refused before anything is sent. */
    bc_audit_event_t *many = calloc(BC_AUDIT_BATCH_MAX + 1, sizeof *many);
    for (int i = 0; i <= BC_AUDIT_BATCH_MAX; i++)
        many[i] = evs[i % N];
    assert_int_equal(bc_audit_append_batch(chain, fx->db, many, BC_AUDIT_BATCH_MAX + 1, &err), -1);
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    s_batch(chain, fx->db, many, BC_AUDIT_BATCH_MAX);
    free(many);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), N + BC_AUDIT_BATCH_MAX);
    s_expect_intact(fx, 2, 2 * N + BC_AUDIT_BATCH_MAX);
    bc_audit_chain_destroy(&chain);
    bc_audit_chain_destroy(&single);
}

/* A batch writes the anchors n appends would, in the same statement: by
 * count across batch boundaries, and by time inside one batch. */
static void test_batch_crossing_anchor_boundaries(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    bc_audit_chain_set_anchor(chain, 10, 0);
    s_append_n(chain, fx->db, 7);
    bc_audit_event_t evs[25];
    for (int i = 0; i < 25; i++)
        evs[i] = s_batch_event(i, 0);
    s_batch(chain, fx->db, evs, 25); /* 8..32: anchors at 10, 20, 30 */
    s_batch(chain, fx->db, evs, 3);  /* 33..35: none */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    s_batch(chain, fx->db, evs, 5); /* 36..40 rolled back: no anchor at 40 */
    bc_db_rollback(fx->db);
    bc_audit_rollback(chain);
    s_batch(chain, fx->db, evs, 6); /* 36..41: anchor at 40 */
    const char *params[] = {bc_audit_chain_id(chain)};
    char seqs[128];
    s_text(fx->db,
           "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM audit.anchors WHERE chain = $1", 1,
           params, seqs, sizeof seqs);
    assert_string_equal(seqs, "10,20,30,40");
    assert_int_equal(s_int(fx->db,
                           "SELECT count(*) FROM audit.anchors a JOIN audit.events e"
                           " USING (chain, seq) WHERE chain = $1 AND a.hash = e.hash"
                           " AND a.at = e.at",
                           1, params),
                     4);
    /* The shutdown anchor covers the rest. */
    assert_int_equal(bc_audit_chain_anchor(chain, fx->db, &err), 0);
    assert_int_equal(
        s_int(fx->db, "SELECT max(seq) FROM audit.anchors WHERE chain = $1", 1, params), 41);

    /* By time, as in test_anchors_by_count_and_time, but in one batch. */
    bc_audit_chain_t *timed = s_chain(fx, fx->db, 1);
    bc_audit_chain_set_anchor(timed, 1000, 10000);
    int64_t t = bc_now_ms() * 1000 + 60 * INT64_C(1000000);
    bc_audit_event_t tevs[6];
    for (int i = 0; i < 6; i++)
        tevs[i] = (bc_audit_event_t){.action = "read", .outcome = "ok", .at_us = t + i * 4000000};
    s_batch(timed, fx->db, tevs, 6);
    const char *timed_params[] = {bc_audit_chain_id(timed)};
    s_text(fx->db,
           "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM audit.anchors WHERE chain = $1", 1,
           timed_params, seqs, sizeof seqs);
    assert_string_equal(seqs, "1,4");
    s_expect_intact(fx, 2, 47);
    bc_audit_chain_destroy(&chain);
    bc_audit_chain_destroy(&timed);
}

/* A batch whose head is out of step re-reads it and goes in after it, as
 * an append does: never a gap, never a fork. */
static void test_batch_stale_head_recovers(void **state)
{
    fixture_t *fx = *state;
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    bc_error_t err = {0};
    bc_audit_event_t evs[4];
    for (int i = 0; i < 4; i++)
        evs[i] = s_batch_event(i, 0);
    s_batch(chain, fx->db, evs, 3);

    /* Rolled back, not reported: the pending head is ahead of the table. */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    s_batch(chain, fx->db, evs, 4);
    bc_db_rollback(fx->db);
    s_batch(chain, fx->db, evs, 2);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 5);

    /* Committed, but reported as rolled back (a COMMIT whose outcome was
     * unknown): the head is behind the table. */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    s_batch(chain, fx->db, evs, 2);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    bc_audit_rollback(chain);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 5);
    s_batch(chain, fx->db, evs, 2);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 9);

    /* Another writer added row 10 on its own connection. */
    uint8_t h9[BC_AUDIT_HASH_LEN], h10[BC_AUDIT_HASH_LEN];
    assert_int_equal(bc_audit_chain_seq(chain, h9), 9);
    bc_audit_event_t other = {
        .at_us = INT64_C(1767225600000000), .action = "read", .outcome = "ok"};
    bc_audit_hash(h9, bc_audit_chain_id(chain), 10, &other, h10);
    char prev_s[2 * BC_AUDIT_HASH_LEN + 3] = "\\x", hash_s[2 * BC_AUDIT_HASH_LEN + 3] = "\\x";
    bc_hex(h9, sizeof h9, prev_s + 2);
    bc_hex(h10, sizeof h10, hash_s + 2);
    const char *params[] = {bc_audit_chain_id(chain), prev_s, hash_s};
    bc_db_t *db2 = s_connect_as(s_url);
    s_run(db2,
          "INSERT INTO audit.events (chain, seq, at, action, outcome, prev_hash, hash)"
          " VALUES ($1, 10, '2026-01-01 00:00:00+00', 'read', 'ok', $2::bytea, $3::bytea)",
          3, params);
    bc_db_destroy(&db2);
    s_batch(chain, fx->db, evs, 3);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 13);

    /* A savepoint rolled back over a batch, inside one transaction. */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    s_batch(chain, fx->db, evs, 2);
    s_run(fx->db, "SAVEPOINT before_work", 0, NULL);
    s_batch(chain, fx->db, evs, 2);
    s_run(fx->db, "ROLLBACK TO SAVEPOINT before_work", 0, NULL);
    s_batch(chain, fx->db, evs, 2);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    bc_audit_commit(chain);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 17);
    assert_int_equal(s_rows(fx, chain), 17);
    s_expect_intact(fx, 1, 17);
    bc_audit_chain_destroy(&chain);
}

/* One bad event fails the whole batch and nothing of it is written: an
 * invalid field before anything is sent (the caller's transaction goes
 * on), a value the server refuses with the statement as a whole. */
static void test_batch_bad_event_writes_nothing(void **state)
{
    fixture_t *fx = *state;
    bc_audit_chain_t *chain = s_chain(fx, fx->db, 0);
    bc_error_t err = {0};
    enum { N = 200 };
    bc_audit_event_t evs[N];
    for (int i = 0; i < N; i++)
        evs[i] = s_batch_event(i, 0);
    s_batch(chain, fx->db, evs, 2);

    char long_detail[8200];
    memset(long_detail, ' ', sizeof long_detail - 1);
    long_detail[sizeof long_detail - 1] = '\0';
    struct {
        size_t at;
        bc_audit_event_t ev;
        const char *field;
    } cases[] = {
        {100, {.action = "Read!", .outcome = "ok"}, "action"},
        {0, {.action = "read", .outcome = "maybe"}, "outcome"},
        {N - 1, {.action = "read", .outcome = "ok", .purpose = "bad \xff utf8"}, "purpose"},
        {57, {.action = "read", .outcome = "ok", .detail = long_detail}, "detail"},
    };
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bc_audit_event_t saved = evs[cases[c].at];
        evs[cases[c].at] = cases[c].ev;
        assert_int_equal(bc_audit_append_batch(chain, fx->db, evs, N, &err), -1);
        evs[cases[c].at] = saved;
        assert_int_equal(err.code, BC_INVALID_ARGUMENT);
        assert_string_equal(err.field, cases[c].field);
        char which[64];
        snprintf(which, sizeof which, "event %zu of a batch of %d", cases[c].at, N);
        assert_non_null(strstr(err.detail, which));
    }
    s_batch(chain, fx->db, evs, 2); /* the transaction is intact */
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    bc_audit_commit(chain);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 4);

    /* Valid for the C checks, refused by the server (not JSON): outside a
     * transaction and inside one, nothing of the batch is written. */
    evs[150].detail = "{\"not\": json";
    assert_int_equal(bc_audit_append_batch(chain, fx->db, evs, N, &err), -1);
    assert_int_equal(s_rows(fx, chain), 4);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 4);
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    s_batch(chain, fx->db, evs, 3);
    assert_int_equal(bc_audit_append_batch(chain, fx->db, evs, N, &err), -1);
    bc_db_rollback(fx->db);
    bc_audit_rollback(chain);
    assert_int_equal(s_rows(fx, chain), 4);
    evs[150] = s_batch_event(150, 0);
    s_batch(chain, fx->db, evs, N);
    assert_int_equal(bc_audit_chain_seq(chain, NULL), 4 + N);
    s_expect_intact(fx, 1, 4 + N);
    bc_audit_chain_destroy(&chain);
}

/* beacon-audit-verify finds chains written by batches intact. */
static void test_batch_cli_reports_intact(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    bc_audit_event_t evs[64];
    for (int i = 0; i < 64; i++)
        evs[i] = s_batch_event(i, 0);
    bc_audit_chain_t *chains[2];
    for (int c = 0; c < 2; c++) {
        chains[c] = s_chain(fx, fx->db, c);
        bc_audit_chain_set_anchor(chains[c], 50, 0);
        for (size_t n = 1; n <= 64; n *= 2)
            s_batch(chains[c], fx->db, evs, n); /* 127 rows, anchors at 50 and 100 */
        assert_int_equal(bc_audit_chain_anchor(chains[c], fx->db, &err), 0);
    }
    char url_arg[1100], prefix_arg[128], out[8192];
    snprintf(url_arg, sizeof url_arg, "--database_url=%s", s_url);
    snprintf(prefix_arg, sizeof prefix_arg, "--chain_prefix=%s", fx->prefix);
    const char *args[] = {url_arg, prefix_arg, "--log_level=off", NULL};
    assert_int_equal(s_run_tool(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"intact\":true"));
    assert_non_null(strstr(out, "\"chains\":2,\"events\":254,"));
    bc_audit_report_t report;
    s_verify(fx, &report);
    assert_int_equal(report.broken, 0);
    assert_int_equal(report.anchors, 6);
    bc_audit_report_clear(&report);
    for (int c = 0; c < 2; c++)
        bc_audit_chain_destroy(&chains[c]);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_hash_known_answer),
        cmocka_unit_test(test_hash_is_unambiguous),
        T(test_chain_new_checks_arguments),
        T(test_append_in_transaction_then_verify),
        T(test_append_outside_transaction_commits),
        T(test_bad_events_refused_before_the_database),
        T(test_rollback_leaves_no_gap),
        T(test_unreported_outcomes_heal),
        T(test_anchors_by_count_and_time),
        T(test_two_writers_concurrently),
        T(test_update_delete_truncate_refused),
        T(test_application_role_can_append_not_change),
        T(test_tamper_edit_with_rehash_detected),
        T(test_verify_streams_large_log),
        T(test_cli_exit_codes),
        T(test_batch_of_one),
        T(test_batch_of_256),
        T(test_batch_crossing_anchor_boundaries),
        T(test_batch_stale_head_recovers),
        T(test_batch_bad_event_writes_nothing),
        T(test_batch_cli_reports_intact),
    };
#undef T
    enum { NFIXED = sizeof fixed / sizeof fixed[0] };
    enum { NTAMPER = sizeof s_tamper_cases / sizeof s_tamper_cases[0] };
    struct CMUnitTest tests[NFIXED + NTAMPER];
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < NTAMPER; i++)
        tests[NFIXED + i] = (struct CMUnitTest){
            .name = s_tamper_cases[i].name,
            .test_func = test_tamper,
            .setup_func = s_setup,
            .teardown_func = s_teardown,
            .initial_state = (void *)&s_tamper_cases[i],
        };
    return cmocka_run_group_tests_name("audit", tests, s_group_setup, NULL);
}
