/*  test_db: bc_db against a real, throwaway PostgreSQL.
 *
 *  BEACON_TEST_DATABASE_URL names a database where the tests may create
 *  schemas; without it the run fails (a database test that silently passes
 *  tests nothing). Each test works in its own schema with a random name and
 *  drops it afterwards, so tests need no order and leave nothing behind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bc_db.h"
#include "bc_util.h"

static const char *s_url;

typedef struct {
    bc_db_t *db;
    char schema[64];
    char sql[1024];
} fixture_t;

static bc_db_t *s_connect(void)
{
    bc_db_t *db = bc_db_new(s_url, "test_db");
    bc_error_t err = {0};
    if (bc_db_connect(db, 5000, &err))
        fail_msg("cannot connect to BEACON_TEST_DATABASE_URL: %s", err.detail);
    return db;
}

/* SQL text with the fixture's schema name in place of each "@S". */
static const char *s_sql(fixture_t *fx, const char *text)
{
    size_t used = 0;
    for (const char *c = text; *c && used + sizeof fx->schema < sizeof fx->sql; c++) {
        if (c[0] == '@' && c[1] == 'S') {
            used += (size_t)snprintf(fx->sql + used, sizeof fx->sql - used, "%s", fx->schema);
            c++;
        } else {
            fx->sql[used++] = *c;
        }
    }
    fx->sql[used] = '\0';
    return fx->sql;
}

static void s_run(bc_db_t *db, const char *sql)
{
    bc_error_t err = {0};
    if (bc_db_command(db, sql, 0, NULL, &err))
        fail_msg("%s: %s", sql, err.detail);
}

/* The single value of a one-row query, copied into out ("<null>" for NULL). */
static void s_value(bc_db_t *db, const char *sql, int nparams, const char *const *params, char *out,
                    size_t size)
{
    bc_error_t err = {0};
    PGresult *res = bc_db_query(db, sql, nparams, params, &err);
    if (!res)
        fail_msg("%s: %s", sql, err.detail);
    assert_int_equal(PQntuples(res), 1);
    snprintf(out, size, "%s", PQgetisnull(res, 0, 0) ? "<null>" : PQgetvalue(res, 0, 0));
    PQclear(res);
}

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    unsigned char rnd[6];
    char hex[13];
    bc_random_bytes(rnd, sizeof rnd);
    bc_hex(rnd, sizeof rnd, hex);
    snprintf(fx->schema, sizeof fx->schema, "t_db_%s", hex);
    fx->db = s_connect();
    s_run(fx->db, s_sql(fx, "CREATE SCHEMA @S"));
    s_run(fx->db,
          s_sql(fx, "CREATE TABLE @S.people (id integer PRIMARY KEY, name text, note text)"));
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    bc_db_rollback(fx->db);
    s_run(fx->db, s_sql(fx, "DROP SCHEMA @S CASCADE"));
    bc_db_destroy(&fx->db);
    assert_null(fx->db);
    free(fx);
    return 0;
}

static void test_connect_bad_socket_is_unavailable_within_timeout(void **state)
{
    (void)state;
    bc_db_t *db = bc_db_new("host=/nonexistent/beacon-test port=5 dbname=x user=x", "test_db");
    bc_error_t err = {0};
    int64_t t0 = bc_mono_ms();
    assert_int_equal(bc_db_connect(db, 600, &err), -1);
    int64_t took = bc_mono_ms() - t0;
    assert_int_equal(err.code, BC_UNAVAILABLE);
    assert_true(took >= 500); /* it retried with back-off ... */
    assert_true(took < 1600); /* ... and gave up near the timeout */
    assert_true(err.detail[0] != '\0');
    assert_null(strstr(err.message, "nonexistent"));
    assert_false(bc_db_ok(db));

    /* A later call tries once more, briefly, then fails the same way. */
    t0 = bc_mono_ms();
    assert_null(bc_db_query(db, "SELECT 1", 0, NULL, &err));
    assert_int_equal(err.code, BC_UNAVAILABLE);
    assert_true(bc_mono_ms() - t0 < 3000);
    bc_db_destroy(&db);
    bc_db_destroy(&db); /* NULL is allowed */
    bc_db_destroy(NULL);
}

static void test_connection_settings(void **state)
{
    fixture_t *fx = *state;
    char value[64];
    assert_true(bc_db_ok(fx->db));
    assert_int_equal(bc_db_connections(fx->db), 1);
    assert_int_equal(bc_db_ping(fx->db, NULL), 0);
    s_value(fx->db, "SELECT current_setting('client_encoding')", 0, NULL, value, sizeof value);
    assert_string_equal(value, "UTF8");
    s_value(fx->db, "SELECT current_setting('application_name')", 0, NULL, value, sizeof value);
    assert_string_equal(value, "test_db");
    assert_non_null(bc_db_conn(fx->db));
}

static void test_query_text_and_null_params(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    const char *row[] = {"1", "Zoë Ñandú", NULL};
    assert_int_equal(
        bc_db_command(fx->db, s_sql(fx, "INSERT INTO @S.people VALUES ($1, $2, $3)"), 3, row, &err),
        0);
    const char *id[] = {"1"};
    PGresult *res = bc_db_query(
        fx->db, s_sql(fx, "SELECT name, note, note IS NULL FROM @S.people WHERE id = $1"), 1, id,
        &err);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), "Zoë Ñandú");
    assert_true(PQgetisnull(res, 0, 1));
    assert_string_equal(PQgetvalue(res, 0, 2), "t");
    PQclear(res);
}

static void test_injection_parameter_is_stored_literally(void **state)
{
    fixture_t *fx = *state;
    char evil[256], value[256];
    snprintf(evil, sizeof evil, "x'); DROP TABLE %s.people; -- \\' \" $1 %%s", fx->schema);
    const char *row[] = {"7", evil, "'; SELECT pg_sleep(10); --"};
    assert_int_equal(
        bc_db_command(fx->db, s_sql(fx, "INSERT INTO @S.people VALUES ($1, $2, $3)"), 3, row, NULL),
        0);
    const char *by_name[] = {evil};
    s_value(fx->db, s_sql(fx, "SELECT count(*) FROM @S.people WHERE name = $1"), 1, by_name, value,
            sizeof value);
    assert_string_equal(value, "1");
    s_value(fx->db, s_sql(fx, "SELECT name FROM @S.people WHERE id = 7"), 0, NULL, value,
            sizeof value);
    assert_string_equal(value, evil);

    /* Two statements in one query are refused by the extended protocol. */
    bc_error_t err = {0};
    assert_null(bc_db_query(fx->db, "SELECT 1; SELECT 2", 0, NULL, &err));
    assert_null(strstr(err.message, "SELECT"));
    assert_int_equal(bc_db_ping(fx->db, NULL), 0);
}

static void test_unique_violation_is_already_exists(void **state)
{
    fixture_t *fx = *state;
    const char *row[] = {"1", "a", NULL};
    const char *sql = s_sql(fx, "INSERT INTO @S.people VALUES ($1, $2, $3)");
    assert_int_equal(bc_db_command(fx->db, sql, 3, row, NULL), 0);
    bc_error_t err = {0};
    assert_int_equal(bc_db_command(fx->db, sql, 3, row, &err), -1);
    assert_int_equal(err.code, BC_ALREADY_EXISTS);
    assert_non_null(strstr(err.detail, "23505"));
    assert_null(strstr(err.message, "people"));
    assert_null(strstr(err.message, "INSERT"));
    assert_int_equal(bc_db_ping(fx->db, NULL), 0); /* still usable */
}

static void test_invalid_uuid_is_invalid_argument(void **state)
{
    fixture_t *fx = *state;
    const char *bad[] = {"not-a-uuid"};
    bc_error_t err = {0};
    assert_null(bc_db_query(fx->db, "SELECT $1::uuid", 1, bad, &err));
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_non_null(strstr(err.detail, "22P02"));
    assert_null(strstr(err.message, "not-a-uuid"));
    assert_null(strstr(err.message, "uuid"));
}

static void test_prepared_statement_is_reused(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    const char *names[] = {"ann", "bob"};
    for (int i = 0; i < 2; i++) {
        const char *params[] = {names[i]};
        PGresult *res =
            bc_db_prepared(fx->db, "test_greet", "SELECT 'hi ' || $1::text", 1, params, &err);
        assert_non_null(res);
        assert_string_equal(PQgetvalue(res, 0, 0), i ? "hi bob" : "hi ann");
        PQclear(res);
    }
    char count[16];
    s_value(fx->db, "SELECT count(*) FROM pg_prepared_statements WHERE name = 'test_greet'", 0,
            NULL, count, sizeof count);
    assert_string_equal(count, "1");

    /* An error from a prepared statement maps like any other and leaves the
     * statement usable. */
    const char *bad[] = {"nope"};
    assert_null(bc_db_prepared(fx->db, "test_uuid", "SELECT $1::uuid", 1, bad, &err));
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    const char *good[] = {"7f1f5cf4-8a43-4b1c-9d5e-3c2b1a0f9e8d"};
    PGresult *res = bc_db_prepared(fx->db, "test_uuid", "SELECT $1::uuid", 1, good, &err);
    assert_non_null(res);
    PQclear(res);
}

/* Waits until the server no longer lists backend pid: by then it has sent
 * its FATAL message to the client. */
static void s_wait_backend_gone(bc_db_t *other, int pid)
{
    char pid_text[16], count[16];
    snprintf(pid_text, sizeof pid_text, "%d", pid);
    const char *params[] = {pid_text};
    for (int i = 0; i < 500; i++) {
        s_value(other, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", 1, params,
                count, sizeof count);
        if (!strcmp(count, "0"))
            return;
        usleep(10 * 1000);
    }
    fail_msg("backend %d did not exit", pid);
}

static void test_reconnects_after_server_kills_connection(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    const char *params[] = {"x"};
    PGresult *res = bc_db_prepared(fx->db, "test_echo", "SELECT $1::text", 1, params, &err);
    assert_non_null(res);
    PQclear(res);
    int pid = PQbackendPID(bc_db_conn(fx->db));

    bc_db_t *other = s_connect();
    char pid_text[16], killed[8];
    snprintf(pid_text, sizeof pid_text, "%d", pid);
    const char *kill[] = {pid_text};
    s_value(other, "SELECT pg_terminate_backend($1::int)", 1, kill, killed, sizeof killed);
    assert_string_equal(killed, "t");
    s_wait_backend_gone(other, pid);

    /* The next call notices, reconnects and prepares the statement again. */
    res = bc_db_prepared(fx->db, "test_echo", "SELECT $1::text", 1, params, &err);
    if (!res)
        fail_msg("after reconnect: %s", err.detail);
    assert_string_equal(PQgetvalue(res, 0, 0), "x");
    PQclear(res);
    assert_int_not_equal(PQbackendPID(bc_db_conn(fx->db)), pid);
    assert_int_equal(bc_db_connections(fx->db), 2);
    char count[16];
    s_value(fx->db, "SELECT count(*) FROM pg_prepared_statements WHERE name = 'test_echo'", 0, NULL,
            count, sizeof count);
    assert_string_equal(count, "1");
    bc_db_destroy(&other);
}

static void test_connection_lost_during_query_is_not_retried(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    assert_null(
        bc_db_query(fx->db, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL, &err));
    assert_int_equal(err.code, BC_UNAVAILABLE);
    assert_false(bc_db_ok(fx->db));
    assert_int_equal(bc_db_connections(fx->db), 1);
    assert_int_equal(bc_db_ping(fx->db, &err), 0); /* the next call reconnects */
    assert_int_equal(bc_db_connections(fx->db), 2);
}

static void test_connection_lost_inside_transaction(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    const char *row[] = {"1", "lost", NULL};
    const char *insert = s_sql(fx, "INSERT INTO @S.people VALUES ($1, $2, $3)");
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_command(fx->db, insert, 3, row, &err), 0);
    assert_null(
        bc_db_query(fx->db, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL, &err));
    assert_int_equal(err.code, BC_UNAVAILABLE);
    assert_true(bc_db_in_transaction(fx->db));
    /* No silent reconnect inside the transaction: later calls fail ... */
    assert_int_equal(bc_db_ping(fx->db, &err), -1);
    assert_int_equal(err.code, BC_UNAVAILABLE);
    assert_int_equal(bc_db_connections(fx->db), 1);
    /* ... and so does commit, which ends the transaction. */
    assert_int_equal(bc_db_commit(fx->db, &err), -1);
    assert_int_equal(err.code, BC_UNAVAILABLE);
    assert_false(bc_db_in_transaction(fx->db));
    bc_db_rollback(fx->db);

    /* Same again, ended with rollback, which resets the handle. */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_connections(fx->db), 2);
    assert_null(
        bc_db_query(fx->db, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL, &err));
    bc_db_rollback(fx->db);
    assert_false(bc_db_in_transaction(fx->db));
    char count[16];
    s_value(fx->db, s_sql(fx, "SELECT count(*) FROM @S.people"), 0, NULL, count, sizeof count);
    assert_string_equal(count, "0");
    assert_int_equal(bc_db_connections(fx->db), 3);
}

static void test_transaction_commit_and_rollback(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    char count[16], insert[256];
    snprintf(insert, sizeof insert, "%s", s_sql(fx, "INSERT INTO @S.people VALUES ($1, $2, $3)"));
    const char *one[] = {"1", "rolled back", NULL}, *two[] = {"2", "committed", NULL};

    assert_false(bc_db_in_transaction(fx->db));
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_true(bc_db_in_transaction(fx->db));
    assert_int_equal(bc_db_begin(fx->db, &err), -1); /* no nesting */
    assert_int_equal(bc_db_command(fx->db, insert, 3, one, &err), 0);
    bc_db_rollback(fx->db);
    assert_false(bc_db_in_transaction(fx->db));
    bc_db_rollback(fx->db); /* safe when none is open */

    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_command(fx->db, insert, 3, two, &err), 0);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    assert_false(bc_db_in_transaction(fx->db));
    assert_int_equal(bc_db_commit(fx->db, &err), -1); /* none open */

    s_value(fx->db, s_sql(fx, "SELECT string_agg(name, ',') FROM @S.people"), 0, NULL, count,
            sizeof count);
    assert_string_equal(count, "committed");

    /* A failed statement dooms the transaction: commit reports it. */
    const char *three[] = {"3", "doomed", NULL};
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_command(fx->db, insert, 3, three, &err), 0);
    assert_int_equal(bc_db_command(fx->db, insert, 3, two, &err), -1);
    assert_int_equal(err.code, BC_ALREADY_EXISTS);
    assert_int_equal(bc_db_commit(fx->db, &err), -1);
    assert_int_equal(err.code, BC_FAILED_PRECONDITION);
    assert_false(bc_db_in_transaction(fx->db));
    s_value(fx->db, s_sql(fx, "SELECT count(*) FROM @S.people"), 0, NULL, count, sizeof count);
    assert_string_equal(count, "1");
}

static void test_set_local_is_transaction_scoped(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    char value[64];
    const char *get = "SELECT coalesce(current_setting('beacon.site_id', true), '')";
    assert_int_equal(bc_db_set_local(fx->db, "beacon.site_id", "s1", &err), -1);

    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_set_local(fx->db, "beacon.site_id", "site-42'; --", &err), 0);
    s_value(fx->db, get, 0, NULL, value, sizeof value);
    assert_string_equal(value, "site-42'; --");
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    s_value(fx->db, get, 0, NULL, value, sizeof value);
    assert_string_equal(value, "");

    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_set_local(fx->db, "beacon.site_id", "s2", &err), 0);
    bc_db_rollback(fx->db);
    s_value(fx->db, get, 0, NULL, value, sizeof value);
    assert_string_equal(value, "");
}

static void test_script_runs_several_statements(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    char count[16];
    assert_int_equal(bc_db_script(fx->db,
                                  s_sql(fx, "CREATE TABLE @S.a (id int);"
                                            " INSERT INTO @S.a VALUES (1), (2);"
                                            " SELECT count(*) FROM @S.a;"),
                                  &err),
                     0);
    s_value(fx->db, s_sql(fx, "SELECT count(*) FROM @S.a"), 0, NULL, count, sizeof count);
    assert_string_equal(count, "2");

    /* A failing script reports the server error; outside a transaction the
     * statements before the failure are undone too (one implicit transaction). */
    assert_int_equal(bc_db_script(fx->db,
                                  s_sql(fx, "CREATE TABLE @S.b (id int);"
                                            " INSERT INTO @S.missing VALUES (1);"
                                            " CREATE TABLE @S.c (id int);"),
                                  &err),
                     -1);
    assert_non_null(strstr(err.detail, "42P01"));
    s_value(fx->db, s_sql(fx, "SELECT count(*) FROM pg_tables WHERE schemaname = '@S'"), 0, NULL,
            count, sizeof count);
    assert_string_equal(count, "2"); /* people and a */
    assert_int_equal(bc_db_ping(fx->db, &err), 0);
}

/* Deferred statements and the lazy BEGIN: they go out with the next
 * statement (in one pipeline) and take effect in the transaction's order. */
static void test_deferred_statements_run_in_order(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    char value[64], insert[256], count_sql[256];
    snprintf(insert, sizeof insert, "%s", s_sql(fx, "INSERT INTO @S.people VALUES ($1, $2, $3)"));
    snprintf(count_sql, sizeof count_sql, "%s",
             s_sql(fx, "SELECT string_agg(name, ',' ORDER BY id) FROM @S.people"));
    const char *one[] = {"1", "one", NULL};
    assert_int_equal(bc_db_defer(fx->db, "t_ins", insert, 3, one, NULL, NULL, &err), -1);

    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_defer(fx->db, "t_ins", insert, 3, one, NULL, NULL, &err), 0);
    /* the parameters are copies: the caller's buffers may change at once */
    char id[4] = "2", name[8] = "two";
    const char *mine[] = {id, name, "b"};
    assert_int_equal(bc_db_defer(fx->db, "t_ins", insert, 3, mine, NULL, NULL, &err), 0);
    snprintf(id, sizeof id, "9");
    snprintf(name, sizeof name, "changed");
    /* a statement of the transaction sees what was deferred before it */
    s_value(fx->db, count_sql, 0, NULL, value, sizeof value);
    assert_string_equal(value, "one,two");
    /* binary parameters keep their bytes, NUL included */
    const char bytes[] = {'a', '\0', 'b'};
    const char *bp[] = {"3", bytes};
    const int lengths[] = {0, 3}, formats[] = {0, 1};
    const char *bin = s_sql(fx, "INSERT INTO @S.people VALUES ($1, encode($2::bytea, 'hex'))");
    assert_int_equal(bc_db_defer(fx->db, "t_bin", bin, 2, bp, lengths, formats, &err), 0);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    assert_false(bc_db_in_transaction(fx->db));
    s_value(fx->db, count_sql, 0, NULL, value, sizeof value);
    assert_string_equal(value, "one,two,610062");

    /* the statement prepared inside a pipeline is prepared for good */
    const char *four[] = {"4", "four", NULL};
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_defer(fx->db, "t_ins", insert, 3, four, NULL, NULL, &err), 0);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    s_value(fx->db, "SELECT count(*) FROM pg_prepared_statements WHERE name IN ('t_ins', 't_bin')",
            0, NULL, value, sizeof value);
    assert_string_equal(value, "2");
}

static void test_deferred_failure_fails_the_transaction(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    char value[64], insert[256], count_sql[256];
    snprintf(insert, sizeof insert, "%s", s_sql(fx, "INSERT INTO @S.people VALUES ($1, $2, $3)"));
    snprintf(count_sql, sizeof count_sql, "%s", s_sql(fx, "SELECT count(*) FROM @S.people"));
    const char *one[] = {"1", "one", NULL};

    /* at commit: the commit fails with the statement's error, rolled back */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_command(fx->db, insert, 3, one, &err), 0);
    assert_int_equal(bc_db_defer(fx->db, "t_ins", insert, 3, one, NULL, NULL, &err), 0);
    assert_int_equal(bc_db_commit(fx->db, &err), -1);
    assert_int_equal(err.code, BC_ALREADY_EXISTS);
    assert_false(bc_db_in_transaction(fx->db));
    assert_int_equal(PQtransactionStatus(bc_db_conn(fx->db)), PQTRANS_IDLE);
    s_value(fx->db, count_sql, 0, NULL, value, sizeof value);
    assert_string_equal(value, "0");

    /* at the next statement: that statement fails, and so does commit */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_command(fx->db, insert, 3, one, &err), 0);
    assert_int_equal(bc_db_defer(fx->db, "t_ins", insert, 3, one, NULL, NULL, &err), 0);
    assert_null(bc_db_query(fx->db, "SELECT 1", 0, NULL, &err));
    assert_int_equal(err.code, BC_ALREADY_EXISTS);
    assert_int_equal(bc_db_commit(fx->db, &err), -1);
    assert_int_equal(err.code, BC_FAILED_PRECONDITION);
    s_value(fx->db, count_sql, 0, NULL, value, sizeof value);
    assert_string_equal(value, "0");

    /* a statement that does not even prepare: its error, nothing kept */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_null(bc_db_prepared(fx->db, "t_bad", "SELECT no_such_column", 0, NULL, &err));
    assert_non_null(strstr(err.detail, "42703"));
    bc_db_rollback(fx->db);
    s_value(fx->db, "SELECT count(*) FROM pg_prepared_statements WHERE name = 't_bad'", 0, NULL,
            value, sizeof value);
    assert_string_equal(value, "0");

    /* rollback discards what was deferred; an empty transaction sends nothing */
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_defer(fx->db, "t_ins", insert, 3, one, NULL, NULL, &err), 0);
    bc_db_rollback(fx->db);
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_commit(fx->db, &err), 0);
    s_value(fx->db, count_sql, 0, NULL, value, sizeof value);
    assert_string_equal(value, "0");
    assert_int_equal(bc_db_connections(fx->db), 1);
}

/* A connection lost with deferred statements waiting: nothing committed. */
static void test_deferred_with_connection_lost(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    char value[64], insert[256];
    snprintf(insert, sizeof insert, "%s", s_sql(fx, "INSERT INTO @S.people VALUES ($1, $2, $3)"));
    const char *one[] = {"1", "one", NULL};
    assert_int_equal(bc_db_begin(fx->db, &err), 0);
    assert_int_equal(bc_db_defer(fx->db, "t_ins", insert, 3, one, NULL, NULL, &err), 0);
    assert_null(
        bc_db_query(fx->db, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL, &err));
    assert_int_equal(err.code, BC_UNAVAILABLE);
    assert_int_equal(bc_db_commit(fx->db, &err), -1);
    assert_int_equal(err.code, BC_UNAVAILABLE);
    bc_db_rollback(fx->db);
    s_value(fx->db, s_sql(fx, "SELECT count(*) FROM @S.people"), 0, NULL, value, sizeof value);
    assert_string_equal(value, "0");
}

int main(void)
{
    s_url = getenv("BEACON_TEST_DATABASE_URL");
    if (!s_url || !*s_url) {
        fprintf(stderr, "test_db: FAILED: BEACON_TEST_DATABASE_URL is not set; these tests need "
                        "a throwaway PostgreSQL database (see deploy/pg-cluster.sh)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_bad_socket_is_unavailable_within_timeout),
        cmocka_unit_test_setup_teardown(test_connection_settings, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_query_text_and_null_params, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_injection_parameter_is_stored_literally, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_unique_violation_is_already_exists, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_uuid_is_invalid_argument, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_prepared_statement_is_reused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reconnects_after_server_kills_connection, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_connection_lost_during_query_is_not_retried, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_connection_lost_inside_transaction, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_transaction_commit_and_rollback, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_set_local_is_transaction_scoped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_script_runs_several_statements, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_deferred_statements_run_in_order, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_deferred_failure_fails_the_transaction, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_deferred_with_connection_lost, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
