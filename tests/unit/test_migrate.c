/*  test_migrate: the migrations runner against a real, throwaway PostgreSQL.
 *
 *  BEACON_TEST_DATABASE_URL names a database where the tests may create
 *  schemas; without it the run fails. The sets in migrations_fixture/ are
 *  copied into a temporary directory with @SCHEMA@ replaced by a schema name
 *  unique to the test, and applied under a service name unique to the test;
 *  teardown drops the schemas, deletes the service's rows from
 *  public.beacon_schema_migrations and removes the copies.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bc_db.h"
#include "bc_log.h"
#include "bc_migrate.h"
#include "bc_util.h"

static const char *s_url;
static char s_fixtures[PATH_MAX];

typedef struct {
    bc_db_t *db;
    char service[2][64]; /* two services, each with its own schema */
    char schema[2][64];
    char dir[2][64]; /* staged copies ("" when unused) */
} fixture_t;

static bc_db_t *s_connect(void)
{
    bc_db_t *db = bc_db_new(s_url, "test_migrate");
    bc_error_t err = {0};
    if (bc_db_connect(db, 5000, &err))
        fail_msg("cannot connect to BEACON_TEST_DATABASE_URL: %s", err.detail);
    return db;
}

/* The fixture directory, from the source tree (cwd at the repository root)
 * or relative to this binary (build/tests/test_migrate). */
static int s_find_fixtures(void)
{
    struct stat st;
    const char *rel = "tests/unit/migrations_fixture";
    if (stat(rel, &st) == 0 && S_ISDIR(st.st_mode))
        return realpath(rel, s_fixtures) ? 0 : -1;
    char exe[PATH_MAX], path[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(path, sizeof path, "%s/../../%s", exe, rel);
    return realpath(path, s_fixtures) ? 0 : -1;
}

static void s_write(const char *dir, const char *name, const char *text, const char *mode)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, mode);
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void s_remove(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(unlink(path), 0);
}

/* Copies fixture set (a subdirectory) to fx->dir[i], replacing @SCHEMA@. */
static const char *s_stage(fixture_t *fx, int i, const char *set)
{
    snprintf(fx->dir[i], sizeof fx->dir[i], "/tmp/bc-migrate-XXXXXX");
    assert_non_null(mkdtemp(fx->dir[i]));
    if (!set)
        return fx->dir[i];
    char src_dir[PATH_MAX + 64];
    snprintf(src_dir, sizeof src_dir, "%s/%s", s_fixtures, set);
    DIR *d = opendir(src_dir);
    assert_non_null(d);
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        char src[PATH_MAX + 320], text[8192], out[16384];
        snprintf(src, sizeof src, "%s/%s", src_dir, ent->d_name);
        FILE *f = fopen(src, "r");
        assert_non_null(f);
        size_t len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[len] = '\0';
        size_t used = 0;
        for (const char *c = text; *c && used + 100 < sizeof out;) {
            if (!strncmp(c, "@SCHEMA@", 8)) {
                used += (size_t)snprintf(out + used, sizeof out - used, "%s", fx->schema[i]);
                c += 8;
            } else {
                out[used++] = *c++;
            }
        }
        out[used] = '\0';
        s_write(fx->dir[i], ent->d_name, out, "w");
    }
    closedir(d);
    return fx->dir[i];
}

static void s_unstage(const char *dir)
{
    if (!dir[0])
        return;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *ent;
        while ((ent = readdir(d)) != NULL)
            if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, ".."))
                s_remove(dir, ent->d_name);
        closedir(d);
    }
    rmdir(dir);
}

/* The single value of a one-row query ("<null>" for NULL). */
static void s_value(bc_db_t *db, const char *sql, const char *param, char *out, size_t size)
{
    bc_error_t err = {0};
    const char *params[] = {param};
    PGresult *res = bc_db_query(db, sql, param ? 1 : 0, param ? params : NULL, &err);
    if (!res)
        fail_msg("%s: %s", sql, err.detail);
    assert_int_equal(PQntuples(res), 1);
    snprintf(out, size, "%s", PQgetisnull(res, 0, 0) ? "<null>" : PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* Applied versions of service as "1,2,10" ("" when none). */
static void s_versions(fixture_t *fx, int i, char *out, size_t size)
{
    s_value(fx->db,
            "SELECT coalesce(string_agg(version::text, ',' ORDER BY version), '')"
            " FROM public.beacon_schema_migrations WHERE service = $1",
            fx->service[i], out, size);
}

/* True when relation (schema-qualified, e.g. "s.items") exists. */
static bool s_exists(fixture_t *fx, int i, const char *table)
{
    char name[160], value[16];
    snprintf(name, sizeof name, "%s.%s", fx->schema[i], table);
    s_value(fx->db, "SELECT to_regclass($1) IS NOT NULL", name, value, sizeof value);
    return !strcmp(value, "t");
}

/* The run released its advisory lock (no advisory lock held by db). */
static void s_assert_unlocked(bc_db_t *db)
{
    char value[16];
    s_value(db,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND pid = pg_backend_pid()",
            NULL, value, sizeof value);
    assert_string_equal(value, "0");
}

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    unsigned char rnd[6];
    char hex[13];
    bc_random_bytes(rnd, sizeof rnd);
    bc_hex(rnd, sizeof rnd, hex);
    for (int i = 0; i < 2; i++) {
        snprintf(fx->service[i], sizeof fx->service[i], "test_%s_%c", hex, 'a' + i);
        snprintf(fx->schema[i], sizeof fx->schema[i], "t_mig_%s_%c", hex, 'a' + i);
    }
    fx->db = s_connect();
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    for (int i = 0; i < 2; i++) {
        char sql[160];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", fx->schema[i]);
        if (bc_db_command(fx->db, sql, 0, NULL, &err))
            fail_msg("%s: %s", sql, err.detail);
        /* The table is absent if nothing was ever applied in this database. */
        char exists[16];
        s_value(fx->db, "SELECT to_regclass('public.beacon_schema_migrations') IS NOT NULL", NULL,
                exists, sizeof exists);
        const char *params[] = {fx->service[i]};
        if (!strcmp(exists, "t") &&
            bc_db_command(fx->db, "DELETE FROM public.beacon_schema_migrations WHERE service = $1",
                          1, params, &err))
            fail_msg("cleanup: %s", err.detail);
        s_unstage(fx->dir[i]);
    }
    bc_db_destroy(&fx->db);
    free(fx);
    return 0;
}

static void test_list_orders_numerically_and_ignores_other_files(void **state)
{
    (void)state;
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/basic", s_fixtures);
    bc_migration_t *list = NULL;
    bc_error_t err = {0};
    int n = bc_migrate_list(dir, &list, &err);
    assert_int_equal(n, 5); /* README.md ignored */
    const int versions[] = {1, 2, 10, 99, 100};
    for (int i = 0; i < n; i++)
        assert_int_equal(list[i].version, versions[i]);
    assert_string_equal(list[3].name, "099_create_log.sql");
    assert_string_equal(list[4].name, "0100_alter_log.sql");
    assert_non_null(strstr(list[4].path, "/basic/0100_alter_log.sql"));
    free(list);

    assert_int_equal(bc_migrate_list("/nonexistent/migrations", &list, &err), -1);
    assert_int_equal(err.code, BC_NOT_FOUND);
    assert_null(list);
}

static void test_list_refuses_malformed_names(void **state)
{
    fixture_t *fx = *state;
    const char *dir = s_stage(fx, 0, NULL);
    s_write(dir, "001_good.sql", "SELECT 1;\n", "w");
    s_write(dir, "README", "x\n", "w");
    s_write(dir, "notes.txt", "x\n", "w");
    s_write(dir, ".001_hidden.sql.swp", "x\n", "w");
    bc_migration_t *list = NULL;
    bc_error_t err = {0};
    assert_int_equal(bc_migrate_list(dir, &list, &err), 1);
    free(list);

    const char *bad[] = {"01_x.sql",  "001-x.sql", "001_X.sql",      "001_.sql",
                         "001_x.SQL", "x.sql",     "001_x.sql.orig", "1234567890_big.sql"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s_write(dir, bad[i], "SELECT 1;\n", "w");
        list = NULL;
        assert_int_equal(bc_migrate_list(dir, &list, &err), -1);
        assert_null(list);
        assert_int_equal(err.code, BC_FAILED_PRECONDITION);
        if (!strstr(err.message, bad[i]))
            fail_msg("error for %s does not name it: %s", bad[i], err.message);
        s_remove(dir, bad[i]);
    }

    s_write(dir, "0001_same_version.sql", "SELECT 1;\n", "w");
    assert_int_equal(bc_migrate_list(dir, &list, &err), -1);
    assert_int_equal(err.code, BC_FAILED_PRECONDITION);
    assert_non_null(strstr(err.detail, "001_good.sql"));
    assert_non_null(strstr(err.detail, "0001_same_version.sql"));

    /* apply refuses too, before touching the database */
    assert_int_equal(bc_migrate_apply(fx->db, fx->service[0], dir, &err), -1);
    assert_int_equal(err.code, BC_FAILED_PRECONDITION);
}

static void s_sha256_hex(const char *path, char out[65])
{
    char text[8192];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    unsigned char md[32];
    unsigned int md_len = 0;
    assert_int_equal(EVP_Digest(text, len, md, &md_len, EVP_sha256(), NULL), 1);
    bc_hex(md, md_len, out);
}

static void test_apply_twice_applies_once_in_numeric_order(void **state)
{
    fixture_t *fx = *state;
    const char *dir = s_stage(fx, 0, "basic");
    bc_error_t err = {0};
    int n = bc_migrate_apply(fx->db, fx->service[0], dir, &err);
    if (n < 0)
        fail_msg("%s: %s", err.message, err.detail);
    assert_int_equal(n, 5);
    assert_int_equal(bc_migrate_apply(fx->db, fx->service[0], dir, &err), 0);
    s_assert_unlocked(fx->db);

    char value[128], sql[256];
    s_versions(fx, 0, value, sizeof value);
    assert_string_equal(value, "1,2,10,99,100");
    /* 0100 altered the table 099 created; 002's function body kept its ';'. */
    snprintf(sql, sizeof sql, "SELECT %s.item_count()", fx->schema[0]);
    s_value(fx->db, sql, NULL, value, sizeof value);
    assert_string_equal(value, "2");
    snprintf(sql, sizeof sql, "SELECT label FROM %s.items WHERE id = 2", fx->schema[0]);
    s_value(fx->db, sql, NULL, value, sizeof value);
    assert_string_equal(value, "two; with a semicolon");
    snprintf(sql, sizeof sql, "INSERT INTO %s.log (message) VALUES ('x') RETURNING at IS NOT NULL",
             fx->schema[0]);
    s_value(fx->db, sql, NULL, value, sizeof value);
    assert_string_equal(value, "t");

    char path[PATH_MAX], expected[65];
    snprintf(path, sizeof path, "%s/002_seed_items.sql", dir);
    s_sha256_hex(path, expected);
    s_value(fx->db,
            "SELECT name || ' ' || checksum || ' ' || (applied_at <= now())"
            " FROM public.beacon_schema_migrations WHERE version = 2 AND service = $1",
            fx->service[0], value, sizeof value);
    snprintf(sql, sizeof sql, "002_seed_items.sql %s true", expected);
    assert_string_equal(value, sql);
}

static void test_two_services_share_the_table(void **state)
{
    fixture_t *fx = *state;
    bc_error_t err = {0};
    assert_int_equal(bc_migrate_apply(fx->db, fx->service[0], s_stage(fx, 0, "basic"), &err), 5);
    assert_int_equal(bc_migrate_apply(fx->db, fx->service[1], s_stage(fx, 1, "other"), &err), 2);
    char value[64];
    s_versions(fx, 0, value, sizeof value);
    assert_string_equal(value, "1,2,10,99,100");
    s_versions(fx, 1, value, sizeof value);
    assert_string_equal(value, "1,2");
    assert_true(s_exists(fx, 0, "items"));
    assert_true(s_exists(fx, 1, "things"));
    assert_int_equal(bc_migrate_apply(fx->db, fx->service[1], fx->dir[1], &err), 0);
}

static void test_changed_checksum_is_refused(void **state)
{
    fixture_t *fx = *state;
    const char *dir = s_stage(fx, 0, "basic");
    bc_error_t err = {0};
    assert_int_equal(bc_migrate_apply(fx->db, fx->service[0], dir, &err), 5);
    s_write(dir, "002_seed_items.sql", "-- edited after it was applied\n", "a");
    s_write(dir, "200_later.sql", "SELECT 1;\n", "w");

    assert_int_equal(bc_migrate_apply(fx->db, fx->service[0], dir, &err), -1);
    assert_int_equal(err.code, BC_FAILED_PRECONDITION);
    assert_non_null(strstr(err.message, "002_seed_items.sql"));
    assert_non_null(strstr(err.detail, "002_seed_items.sql"));
    char value[64];
    s_versions(fx, 0, value, sizeof value);
    assert_string_equal(value, "1,2,10,99,100"); /* 200 was not applied */
    s_assert_unlocked(fx->db);
}

static void test_failing_migration_leaves_nothing_behind(void **state)
{
    fixture_t *fx = *state;
    const char *dir = s_stage(fx, 0, "failing");
    bc_error_t err = {0};
    for (int attempt = 0; attempt < 2; attempt++) {
        assert_int_equal(bc_migrate_apply(fx->db, fx->service[0], dir, &err), -1);
        assert_non_null(strstr(err.message, "002_broken.sql"));
        assert_non_null(strstr(err.detail, "002_broken.sql"));
        assert_non_null(strstr(err.detail, "42P01")); /* undefined_table, from the server */
        assert_false(bc_db_in_transaction(fx->db));
        s_assert_unlocked(fx->db);
        char value[64];
        s_versions(fx, 0, value, sizeof value);
        assert_string_equal(value, "1"); /* 001 stays applied: its own transaction */
        assert_false(s_exists(fx, 0, "half_done"));
        assert_false(s_exists(fx, 0, "never_reached"));
    }
    /* Fixed file (never applied, so it may change): applies. */
    char text[256];
    snprintf(text, sizeof text, "CREATE TABLE %s.half_done (id int);\n", fx->schema[0]);
    s_write(dir, "002_broken.sql", text, "w");
    assert_int_equal(bc_migrate_apply(fx->db, fx->service[0], dir, &err), 1);
    assert_true(s_exists(fx, 0, "half_done"));
}

static void test_malformed_name_blocks_apply(void **state)
{
    fixture_t *fx = *state;
    const char *dir = s_stage(fx, 0, "basic");
    s_write(dir, "01_sneaky.sql", "SELECT 1;\n", "w");
    bc_error_t err = {0};
    assert_int_equal(bc_migrate_apply(fx->db, fx->service[0], dir, &err), -1);
    assert_non_null(strstr(err.message, "01_sneaky.sql"));
    char value[16];
    s_value(fx->db, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", fx->schema[0], value,
            sizeof value);
    assert_string_equal(value, "0");
}

static void test_gap_is_applied_and_missing_file_tolerated(void **state)
{
    fixture_t *fx = *state;
    const char *dir = s_stage(fx, 0, "basic");
    bc_error_t err = {0};
    char saved[PATH_MAX + 32], held[PATH_MAX + 32];
    snprintf(saved, sizeof saved, "%s/010_add_notes.sql", dir);
    snprintf(held, sizeof held, "%s/held.txt", dir); /* a name the runner ignores */
    assert_int_equal(rename(saved, held), 0);
    assert_int_equal(bc_migrate_apply(fx->db, fx->service[0], dir, &err), 4);
    assert_int_equal(rename(held, saved), 0);
    /* 010 is older than the newest applied (100): applied, with a warning. */
    assert_int_equal(bc_migrate_apply(fx->db, fx->service[0], dir, &err), 1);
    char value[64];
    s_versions(fx, 0, value, sizeof value);
    assert_string_equal(value, "1,2,10,99,100");
    /* A recorded migration whose file is gone is reported, not fatal. */
    s_remove(dir, "0100_alter_log.sql");
    assert_int_equal(bc_migrate_apply(fx->db, fx->service[0], dir, &err), 0);
}

static void test_migration_must_not_commit(void **state)
{
    fixture_t *fx = *state;
    const char *dir = s_stage(fx, 0, NULL);
    char text[256];
    snprintf(text, sizeof text, "CREATE SCHEMA %s;\nCOMMIT;\n", fx->schema[0]);
    s_write(dir, "001_commits.sql", text, "w");
    bc_error_t err = {0};
    assert_int_equal(bc_migrate_apply(fx->db, fx->service[0], dir, &err), -1);
    assert_int_equal(err.code, BC_FAILED_PRECONDITION);
    assert_non_null(strstr(err.message, "001_commits.sql"));
    char value[64];
    s_versions(fx, 0, value, sizeof value);
    assert_string_equal(value, "");
    s_assert_unlocked(fx->db);
}

typedef struct {
    const char *dir;
    const char *service;
    pthread_barrier_t *start;
    int applied;
    bc_error_t err;
} worker_t;

static void *s_worker(void *arg)
{
    worker_t *w = arg;
    bc_db_t *db = bc_db_new(s_url, "test_migrate_worker");
    pthread_barrier_wait(w->start);
    w->applied = bc_migrate_apply(db, w->service, w->dir, &w->err);
    bc_db_destroy(&db);
    return NULL;
}

static void test_concurrent_apply_applies_each_once(void **state)
{
    fixture_t *fx = *state;
    const char *dir = s_stage(fx, 0, "basic");
    /* A slow migration keeps the lock held while the other runner waits. */
    s_write(dir, "150_slow.sql", "SELECT pg_sleep(0.3);\n", "w");
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    worker_t w[2] = {{.dir = dir, .service = fx->service[0], .start = &start},
                     {.dir = dir, .service = fx->service[0], .start = &start}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, s_worker, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < 2; i++)
        if (w[i].applied < 0)
            fail_msg("runner %d: %s: %s", i, w[i].err.message, w[i].err.detail);
    assert_int_equal(w[0].applied + w[1].applied, 6);
    char value[64];
    s_versions(fx, 0, value, sizeof value);
    assert_string_equal(value, "1,2,10,99,100,150");
}

int main(void)
{
    s_url = getenv("BEACON_TEST_DATABASE_URL");
    if (!s_url || !*s_url) {
        fprintf(stderr, "test_migrate: FAILED: BEACON_TEST_DATABASE_URL is not set; these tests "
                        "need a throwaway PostgreSQL database (see deploy/pg-cluster.sh)\n");
        return 1;
    }
    if (s_find_fixtures()) {
        fprintf(stderr, "test_migrate: FAILED: tests/unit/migrations_fixture not found "
                        "(run from the repository root)\n");
        return 1;
    }
    bc_log_init("test_migrate", "warn"); /* keep the expected warnings, not every "applied" */
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_list_orders_numerically_and_ignores_other_files),
        T(test_list_refuses_malformed_names),
        T(test_apply_twice_applies_once_in_numeric_order),
        T(test_two_services_share_the_table),
        T(test_changed_checksum_is_refused),
        T(test_failing_migration_leaves_nothing_behind),
        T(test_malformed_name_blocks_apply),
        T(test_gap_is_applied_and_missing_file_tolerated),
        T(test_migration_must_not_commit),
        T(test_concurrent_apply_applies_each_once),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
