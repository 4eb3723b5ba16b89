/*  The group-committing audit writer against a real PostgreSQL: events from
 *  several threads become one intact chain; invalid events are refused at
 *  submit; a dropped connection is survived; when the database refuses the
 *  rows, every ticket of the batch reports FAILED (so the data they guard is
 *  withheld), and so do all the tickets of a batch holding one event the
 *  server refuses, while nothing of that batch is written; under load the
 *  commit delay gathers events that arrive one by one into one commit.
 *  BEACON_TEST_DATABASE_URL names a database the owner role may
 *  migrate; clusters from deploy/pg-cluster.sh also have beacon_app. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "bc_audit_writer.h"
#include "bc_migrate.h"
#include "bc_util.h"

static const char *s_url;
static char s_app_url[1024];

static bc_db_t *s_owner(void)
{
    bc_db_t *db = bc_db_new(s_url, "test_audit_writer");
    bc_error_t err;
    if (bc_db_connect(db, 5000, &err) < 0)
        fail_msg("cannot connect: %s", err.detail);
    return db;
}

static void s_exec(bc_db_t *db, const char *sql)
{
    bc_error_t err;
    if (bc_db_command(db, sql, 0, NULL, &err) < 0)
        fail_msg("%s: %s", sql, err.detail);
}

typedef struct {
    bc_audit_writer_t *w;
    uint64_t tickets[250];
    int thread;
} s_worker_t;

static void *s_submit_many(void *arg)
{
    s_worker_t *sw = arg;
    for (int i = 0; i < 250; i++) {
        char client[64], req[64];
        snprintf(client, sizeof client, "client-%d-%d", sw->thread, i);
        snprintf(req, sizeof req, "req-%d-%d", sw->thread, i);
        bc_audit_event_t ev = {.request_id = req, .actor_staff_id = "staff-1",
                               .action = BC_AUDIT_READ, .resource_type = "client",
                               .resource_id = client, .client_id = client,
                               .outcome = BC_AUDIT_OK};
        bc_error_t err;
        sw->tickets[i] = bc_audit_writer_submit(sw->w, &ev, &err);
    }
    return NULL;
}

static void test_many_threads_one_intact_chain(void **state)
{
    (void)state;
    bc_error_t err;
    bc_audit_writer_t *w = bc_audit_writer_new(s_app_url, "testwriter", 900, NULL, NULL, &err);
    assert_non_null(w);
    s_worker_t workers[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        workers[t].w = w;
        workers[t].thread = t;
        pthread_create(&th[t], NULL, s_submit_many, &workers[t]);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 250; i++) {
            assert_true(workers[t].tickets[i] > 0);
            assert_int_equal(bc_audit_writer_wait(w, workers[t].tickets[i], 10000),
                             BC_AUDIT_DURABLE);
        }
    char chain[128];
    snprintf(chain, sizeof chain, "%s", bc_audit_writer_chain(w));
    bc_audit_writer_destroy(&w);
    assert_null(w);

    bc_db_t *db = s_owner();
    bc_audit_report_t report = {0};
    assert_int_equal(bc_audit_verify(db, chain, &report, &err), 0);
    assert_int_equal(report.chains, 1);
    assert_int_equal(report.events, 1000);
    assert_int_equal(report.broken, 0);
    assert_true(report.anchors >= 1); /* the final anchor at destroy */
    bc_audit_report_clear(&report);
    bc_db_destroy(&db);
}

static void test_invalid_event_refused_at_submit(void **state)
{
    (void)state;
    bc_error_t err;
    bc_audit_writer_t *w = bc_audit_writer_new(s_app_url, "testwriter", 901, NULL, NULL, &err);
    assert_non_null(w);
    bc_audit_event_t bad = {.action = "Read!", .outcome = BC_AUDIT_OK};
    assert_int_equal(bc_audit_writer_submit(w, &bad, &err), 0);
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_string_equal(err.field, "action");
    bc_audit_event_t bad2 = {.action = BC_AUDIT_READ, .outcome = "maybe"};
    assert_int_equal(bc_audit_writer_submit(w, &bad2, &err), 0);
    assert_int_equal(bc_audit_writer_state(w, 0), BC_AUDIT_PENDING);
    bc_audit_writer_destroy(&w);
}

static int s_settled_calls;
static void s_on_settled(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&s_settled_calls, 1, __ATOMIC_SEQ_CST);
}

static void test_dropped_connection_then_refused_rows(void **state)
{
    (void)state;
    bc_error_t err;
    s_settled_calls = 0;
    bc_audit_writer_t *w =
        bc_audit_writer_new(s_app_url, "testwriter", 902, s_on_settled, NULL, &err);
    assert_non_null(w);
    bc_audit_event_t ev = {.action = BC_AUDIT_READ, .resource_type = "client",
                           .resource_id = "c1", .client_id = "c1", .outcome = BC_AUDIT_OK};
    uint64_t t1 = bc_audit_writer_submit(w, &ev, &err);
    assert_int_equal(bc_audit_writer_wait(w, t1, 10000), BC_AUDIT_DURABLE);
    /* The settle notice follows the wake-up of waiters: give it a moment. */
    for (int i = 0; i < 500 && __atomic_load_n(&s_settled_calls, __ATOMIC_SEQ_CST) < 1; i++)
        usleep(10000);
    assert_true(__atomic_load_n(&s_settled_calls, __ATOMIC_SEQ_CST) >= 1);

    /* The server ends the writer's session: the next batch reconnects.
     * (Ending another role's session takes the superuser, which clusters
     * made by pg-cluster.sh let in on their private socket.) */
    bc_db_t *db = s_owner();
    char admin_url[1100];
    snprintf(admin_url, sizeof admin_url, "%s user=postgres", s_url);
    bc_db_t *admin = bc_db_new(admin_url, "test_audit_writer_admin");
    assert_int_equal(bc_db_connect(admin, 5000, &err), 0);
    s_exec(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE application_name = 'beacon-testwriter-audit'");
    bc_db_destroy(&admin);
    uint64_t t2 = bc_audit_writer_submit(w, &ev, &err);
    assert_int_equal(bc_audit_writer_wait(w, t2, 10000), BC_AUDIT_DURABLE);

    /* The database refuses the rows: the tickets fail, later ones recover. */
    s_exec(db, "REVOKE INSERT ON audit.events FROM beacon_service");
    uint64_t t3 = bc_audit_writer_submit(w, &ev, &err);
    uint64_t t4 = bc_audit_writer_submit(w, &ev, &err);
    bc_audit_state_t s3 = bc_audit_writer_wait(w, t3, 10000);
    bc_audit_state_t s4 = bc_audit_writer_wait(w, t4, 10000);
    s_exec(db, "GRANT INSERT ON audit.events TO beacon_service");
    assert_int_equal(s3, BC_AUDIT_FAILED);
    assert_int_equal(s4, BC_AUDIT_FAILED);
    assert_int_equal(bc_audit_writer_state(w, t1), BC_AUDIT_DURABLE);
    uint64_t t5 = bc_audit_writer_submit(w, &ev, &err);
    assert_int_equal(bc_audit_writer_wait(w, t5, 10000), BC_AUDIT_DURABLE);

    char chain[128];
    snprintf(chain, sizeof chain, "%s", bc_audit_writer_chain(w));
    bc_audit_writer_destroy(&w);
    bc_audit_report_t report = {0};
    assert_int_equal(bc_audit_verify(db, chain, &report, &err), 0);
    assert_int_equal(report.events, 3); /* t1, t2, t5: nothing of the failed batch */
    assert_int_equal(report.broken, 0);
    bc_audit_report_clear(&report);
    bc_db_destroy(&db);
}

/* The number of sessions waiting for a lock on audit.events. */
static long s_lock_waiters(bc_db_t *db)
{
    bc_error_t err;
    PGresult *res = bc_db_query(db,
                                "SELECT count(*) FROM pg_locks WHERE NOT granted"
                                " AND relation = 'audit.events'::regclass",
                                0, NULL, &err);
    if (!res)
        fail_msg("pg_locks: %s", err.detail);
    long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

/* A batch is one statement: an event the server refuses (detail is not
 * JSON, which the C checks let through) fails every ticket of its batch and
 * writes none of them; the batches before and after it are durable and the
 * chain stays intact. The batches are made deterministic by holding a lock
 * on audit.events: the writer blocks on a, and b and c queue up meanwhile,
 * so they form the next batch together. */
static void test_refused_event_fails_its_whole_batch(void **state)
{
    (void)state;
    bc_error_t err;
    bc_audit_writer_t *w = bc_audit_writer_new(s_app_url, "testbatch", 903, NULL, NULL, &err);
    assert_non_null(w);
    bc_audit_event_t good = {.action = BC_AUDIT_READ,
                             .resource_type = "client",
                             .resource_id = "c1",
                             .client_id = "c1",
                             .outcome = BC_AUDIT_OK};
    bc_audit_event_t bad = good;
    bad.detail = "{\"fields\": [\"name\"";
    bc_db_t *db = s_owner();
    assert_int_equal(bc_db_begin(db, &err), 0);
    s_exec(db, "LOCK TABLE audit.events IN EXCLUSIVE MODE");
    uint64_t a = bc_audit_writer_submit(w, &good, &err);
    assert_true(a > 0);
    for (int i = 0; i < 1000 && s_lock_waiters(db) == 0; i++)
        usleep(10000);
    assert_true(s_lock_waiters(db) > 0);
    uint64_t b = bc_audit_writer_submit(w, &bad, &err);
    uint64_t c = bc_audit_writer_submit(w, &good, &err);
    assert_true(b > 0 && c > 0);
    bc_db_rollback(db); /* releases the lock */
    assert_int_equal(bc_audit_writer_wait(w, a, 10000), BC_AUDIT_DURABLE);
    assert_int_equal(bc_audit_writer_wait(w, b, 10000), BC_AUDIT_FAILED);
    assert_int_equal(bc_audit_writer_wait(w, c, 10000), BC_AUDIT_FAILED);
    uint64_t d = bc_audit_writer_submit(w, &good, &err);
    assert_int_equal(bc_audit_writer_wait(w, d, 10000), BC_AUDIT_DURABLE);

    char chain[128];
    snprintf(chain, sizeof chain, "%s", bc_audit_writer_chain(w));
    bc_audit_writer_destroy(&w);
    bc_audit_report_t report = {0};
    assert_int_equal(bc_audit_verify(db, chain, &report, &err), 0);
    assert_int_equal(report.events, 2); /* a and d */
    assert_int_equal(report.broken, 0);
    bc_audit_report_clear(&report);
    bc_db_destroy(&db);
}

/* The commit delay: once a batch of 8 or more has been written, the writer
 * waits for more events (up to the delay) and commits them together. */
static void test_commit_delay_groups_events_under_load(void **state)
{
    (void)state;
    bc_error_t err;
    bc_audit_writer_t *w = bc_audit_writer_new(s_app_url, "testdelay", 904, NULL, NULL, &err);
    assert_non_null(w);
    /* Long enough that the submits below always fall inside it. */
    bc_audit_writer_set_commit_delay(w, 2000000);
    bc_audit_event_t ev = {.action = BC_AUDIT_READ,
                           .resource_type = "client",
                           .resource_id = "c1",
                           .client_id = "c1",
                           .outcome = BC_AUDIT_OK};
    /* Load: the writer is stuck behind a lock while 10 events queue. */
    bc_db_t *db = s_owner();
    assert_int_equal(bc_db_begin(db, &err), 0);
    s_exec(db, "LOCK TABLE audit.events IN EXCLUSIVE MODE");
    uint64_t first = bc_audit_writer_submit(w, &ev, &err);
    for (int i = 0; i < 1000 && s_lock_waiters(db) == 0; i++)
        usleep(10000);
    assert_true(s_lock_waiters(db) > 0);
    uint64_t t = 0;
    for (int i = 0; i < 10; i++)
        t = bc_audit_writer_submit(w, &ev, &err);
    bc_db_rollback(db);
    assert_int_equal(bc_audit_writer_wait(w, first, 10000), BC_AUDIT_DURABLE);
    assert_int_equal(bc_audit_writer_wait(w, t, 10000), BC_AUDIT_DURABLE);
    /* The last batch held 10: these five, submitted one by one, are
     * written together. */
    uint64_t five[5];
    for (int i = 0; i < 5; i++) {
        five[i] = bc_audit_writer_submit(w, &ev, &err);
        usleep(1000);
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(bc_audit_writer_wait(w, five[i], 10000), BC_AUDIT_DURABLE);
    const char *params[] = {bc_audit_writer_chain(w)};
    PGresult *res = bc_db_query(db,
                                "SELECT count(*), count(DISTINCT xmin::text) FROM audit.events "
                                "WHERE chain = $1 AND seq > 11",
                                1, params, &err);
    assert_non_null(res);
    assert_string_equal(PQgetvalue(res, 0, 0), "5");
    assert_string_equal(PQgetvalue(res, 0, 1), "1"); /* one transaction */
    PQclear(res);
    bc_audit_writer_destroy(&w);
    bc_db_destroy(&db);
}

int main(void)
{
    s_url = getenv("BEACON_TEST_DATABASE_URL");
    if (!s_url) {
        fprintf(stderr, "FAILED: BEACON_TEST_DATABASE_URL is not set (run through tests/run.sh)\n");
        return 1;
    }
    /* The writer runs as the services do: as beacon_app, which may only add
     * rows. */
    snprintf(s_app_url, sizeof s_app_url, "%s user=beacon_app", s_url);
    bc_db_t *db = s_owner();
    bc_error_t err;
    if (bc_migrate_apply(db, "common", "common/migrations", &err) < 0) {
        fprintf(stderr, "FAILED: migrations: %s (%s)\n", err.message, err.detail);
        return 1;
    }
    bc_db_destroy(&db);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_threads_one_intact_chain),
        cmocka_unit_test(test_invalid_event_refused_at_submit),
        cmocka_unit_test(test_dropped_connection_then_refused_rows),
        cmocka_unit_test(test_refused_event_fails_its_whole_batch),
        cmocka_unit_test(test_commit_delay_groups_events_under_load),
    };
    return cmocka_run_group_tests_name("audit_writer", tests, NULL, NULL);
}
