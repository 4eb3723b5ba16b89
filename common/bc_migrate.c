/*  bc_migrate: the schema migrations runner.
 *
 *  bc_migrate_apply takes a session advisory lock (S_LOCK_KEY) so that
 *  instances starting together apply each file once, creates
 *  public.beacon_schema_migrations if absent, checks every applied file's
 *  SHA-256 against its row, then applies the pending files in numeric order,
 *  each as BEGIN; <file>; INSERT row; COMMIT. The lock is released on every
 *  path; if the connection drops the server releases it, and the run stops
 *  rather than continue unlocked on a new connection.
 *
 *  File names: NNN_name.sql (three or more digits, then [a-z0-9_]+). Other
 *  names that look like migrations (starting with a digit or ending in .sql,
 *  e.g. 01_x.sql, 001-x.sql, 001_X.sql) are errors; anything else (README.md)
 *  and hidden files are ignored.
 *
 *  Decision on gaps: a file whose version is below the newest applied one
 *  but was never applied (a branch merged late) is applied, in order, with a
 *  warning in the log, rather than blocking start-up. A recorded version
 *  whose file is gone is logged as a warning, not an error.
 */
#include "bc_migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "bc_log.h"
#include "bc_mem.h"
#include "bc_util.h"

/* Key for pg_advisory_lock: "BeaconMi" in ASCII, fixed for all services so
 * that creating the shared table is serialized too. */
#define S_LOCK_KEY "4784337258850176361"
#define S_MAX_FILE_BYTES (16 * 1024 * 1024)

#define S_CREATE_TABLE                                                                             \
    "CREATE TABLE IF NOT EXISTS public.beacon_schema_migrations ("                                 \
    " service text NOT NULL,"                                                                      \
    " version integer NOT NULL,"                                                                   \
    " name text NOT NULL,"                                                                         \
    " checksum text NOT NULL,"                                                                     \
    " applied_at timestamptz NOT NULL DEFAULT now(),"                                              \
    " PRIMARY KEY (service, version))"

/* One recorded row of beacon_schema_migrations. */
typedef struct {
    int version;
    char name[128];
    char checksum[65];
} s_applied_t;

/* 1 for NNN_name.sql, 0 for a name to ignore, -1 for a malformed migration
 * name. *version is set for 1. */
static int s_classify(const char *name, int *version)
{
    size_t len = strlen(name);
    bool sql_suffix = len >= 4 && !strcasecmp(name + len - 4, ".sql");
    if (name[0] == '.' || (!isdigit((unsigned char)name[0]) && !sql_suffix))
        return 0;
    size_t digits = strspn(name, "0123456789");
    if (digits < 3 || name[digits] != '_' || len < digits + 6 || strcmp(name + len - 4, ".sql"))
        return -1;
    const char *word = name + digits + 1;
    size_t word_len = len - digits - 1 - 4;
    if (strspn(word, "abcdefghijklmnopqrstuvwxyz0123456789_") != word_len)
        return -1;
    /* Leading zeros do not count against the int range. */
    const char *v = name;
    while (*v == '0' && v < name + digits - 1)
        v++;
    if (name + digits - v > 9)
        return -1;
    *version = atoi(v);
    return 1;
}

static int s_by_version(const void *a, const void *b)
{
    int va = ((const bc_migration_t *)a)->version, vb = ((const bc_migration_t *)b)->version;
    return (va > vb) - (va < vb);
}

int bc_migrate_list(const char *dir, bc_migration_t **out, bc_error_t *err)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        bc_error_set(err, e == ENOENT ? BC_NOT_FOUND : BC_INTERNAL, NULL,
                     "cannot read migrations directory");
        bc_error_detail(err, "%s: %s", dir, strerror(e));
        return -1;
    }
    bc_migration_t *list = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    struct dirent *ent;
    while (rc == 0 && (ent = readdir(d)) != NULL) {
        int version = 0;
        int kind = s_classify(ent->d_name, &version);
        if (kind == 0)
            continue;
        if (kind < 0 || strlen(ent->d_name) >= sizeof list->name ||
            strlen(dir) + strlen(ent->d_name) + 2 > sizeof list->path) {
            rc = bc_error_set(err, BC_FAILED_PRECONDITION, NULL, "malformed migration file name %s",
                              ent->d_name);
            bc_error_detail(err, "%s/%s: expected NNN_name.sql (3+ digits, [a-z0-9_])", dir,
                            ent->d_name);
            break;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            list = bc_realloc(list, cap * sizeof *list);
        }
        bc_migration_t *m = &list[count++];
        m->version = version;
        memcpy(m->name, ent->d_name, strlen(ent->d_name) + 1); /* length checked above */
        snprintf(m->path, sizeof m->path, "%s/%s", dir, ent->d_name);
        struct stat st;
        if (stat(m->path, &st) || !S_ISREG(st.st_mode)) {
            rc = bc_error_set(err, BC_FAILED_PRECONDITION, NULL,
                              "migration %s is not a regular file", m->name);
            bc_error_detail(err, "%s", m->path);
        }
    }
    closedir(d);
    if (rc == 0 && count)
        qsort(list, count, sizeof *list, s_by_version);
    for (size_t i = 1; rc == 0 && i < count; i++) {
        if (list[i].version == list[i - 1].version) {
            rc = bc_error_set(err, BC_FAILED_PRECONDITION, NULL, "duplicate migration version %d",
                              list[i].version);
            bc_error_detail(err, "%s and %s in %s", list[i - 1].name, list[i].name, dir);
        }
    }
    if (rc) {
        free(list);
        return -1;
    }
    *out = list;
    return (int)count;
}

/* Reads a migration file into a new NUL-terminated string and its hex
 * SHA-256 into checksum. */
static char *s_read_file(const bc_migration_t *m, char checksum[65], bc_error_t *err)
{
    FILE *f = fopen(m->path, "rb");
    if (!f) {
        bc_error_set(err, BC_INTERNAL, NULL, "cannot read migration %s", m->name);
        bc_error_detail(err, "%s: %s", m->path, strerror(errno));
        return NULL;
    }
    size_t len = 0, cap = 8192;
    char *buf = bc_malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len > S_MAX_FILE_BYTES)
            break;
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = bc_realloc(buf, cap);
        }
    }
    bool failed = ferror(f);
    fclose(f);
    buf[len] = '\0';
    if (failed || len > S_MAX_FILE_BYTES || memchr(buf, '\0', len)) {
        bc_error_set(err, BC_FAILED_PRECONDITION, NULL, "cannot use migration %s", m->name);
        bc_error_detail(err, "%s: %s", m->path,
                        failed ? "read error" : "too large or contains NUL bytes");
        free(buf);
        return NULL;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_Digest(buf, len, md, &md_len, EVP_sha256(), NULL) || md_len != 32) {
        bc_error_set(err, BC_INTERNAL, NULL, "cannot checksum migration %s", m->name);
        free(buf);
        return NULL;
    }
    bc_hex(md, md_len, checksum);
    return buf;
}

/* The run's state, so that every exit goes through one unlock path. */
typedef struct {
    bc_db_t *db;
    const char *service;
    unsigned long session; /* bc_db_connections() when the lock was taken */
    bc_migration_t *files;
    int nfiles;
    s_applied_t *applied;
    int napplied;
} s_run_t;

/* Fails if the handle reconnected since the lock was taken: the lock went
 * with the old session and nothing may run unlocked. */
static int s_still_locked(s_run_t *run, bc_error_t *err)
{
    if (bc_db_connections(run->db) == run->session && bc_db_ok(run->db))
        return 0;
    bc_error_set(err, BC_UNAVAILABLE, NULL, "database connection lost during migrations");
    bc_error_detail(err, "service %s: the advisory lock was lost with the session", run->service);
    return -1;
}

static int s_load_applied(s_run_t *run, bc_error_t *err)
{
    const char *params[] = {run->service};
    PGresult *res =
        bc_db_query(run->db,
                    "SELECT version, name, checksum FROM public.beacon_schema_migrations"
                    " WHERE service = $1 ORDER BY version",
                    1, params, err);
    if (!res)
        return -1;
    run->napplied = PQntuples(res);
    run->applied = bc_calloc(run->napplied ? (size_t)run->napplied : 1, sizeof *run->applied);
    for (int i = 0; i < run->napplied; i++) {
        s_applied_t *a = &run->applied[i];
        a->version = atoi(PQgetvalue(res, i, 0));
        snprintf(a->name, sizeof a->name, "%s", PQgetvalue(res, i, 1));
        snprintf(a->checksum, sizeof a->checksum, "%s", PQgetvalue(res, i, 2));
    }
    PQclear(res);
    return 0;
}

static const s_applied_t *s_find_applied(const s_run_t *run, int version)
{
    for (int i = 0; i < run->napplied; i++)
        if (run->applied[i].version == version)
            return &run->applied[i];
    return NULL;
}

static const bc_migration_t *s_find_file(const s_run_t *run, int version)
{
    for (int i = 0; i < run->nfiles; i++)
        if (run->files[i].version == version)
            return &run->files[i];
    return NULL;
}

/* Refuses to go on if an applied file was edited; warns about rows without
 * a file. Runs before anything is applied. */
static int s_verify_applied(s_run_t *run, bc_error_t *err)
{
    for (int i = 0; i < run->napplied; i++) {
        const s_applied_t *a = &run->applied[i];
        const bc_migration_t *m = s_find_file(run, a->version);
        if (!m) {
            bc_warn("migration %s version %d (%s) is recorded as applied but its file is gone",
                    run->service, a->version, a->name);
            continue;
        }
        char checksum[65];
        char *sql = s_read_file(m, checksum, err);
        if (!sql)
            return -1;
        free(sql);
        if (strcmp(checksum, a->checksum)) {
            bc_error_set(err, BC_FAILED_PRECONDITION, NULL, "applied migration %s was changed",
                         m->name);
            bc_error_detail(err,
                            "service %s, %s: checksum %s, recorded %s; add a new migration"
                            " instead of editing an applied one",
                            run->service, m->path, checksum, a->checksum);
            return -1;
        }
        if (strcmp(m->name, a->name))
            bc_warn("migration %s version %d was applied as %s and is now named %s", run->service,
                    a->version, a->name, m->name);
    }
    return 0;
}

/* Applies one file and records it, in one transaction. */
static int s_apply_one(s_run_t *run, const bc_migration_t *m, bc_error_t *err)
{
    char checksum[65];
    char *sql = s_read_file(m, checksum, err);
    if (!sql)
        return -1;
    bc_error_t db_err = {0};
    int rc = bc_db_begin(run->db, &db_err);
    if (rc == 0 && (rc = s_still_locked(run, &db_err)) == 0)
        rc = bc_db_script(run->db, sql, &db_err);
    if (rc == 0 && PQtransactionStatus(bc_db_conn(run->db)) != PQTRANS_INTRANS) {
        rc = bc_error_set(&db_err, BC_FAILED_PRECONDITION, NULL, "migration ended its transaction");
        bc_error_detail(&db_err, "migrations must not contain COMMIT or ROLLBACK");
    }
    if (rc == 0) {
        char version[16];
        snprintf(version, sizeof version, "%d", m->version);
        const char *params[] = {run->service, version, m->name, checksum};
        rc = bc_db_command(run->db,
                           "INSERT INTO public.beacon_schema_migrations"
                           " (service, version, name, checksum) VALUES ($1, $2::int, $3, $4)",
                           4, params, &db_err);
    }
    if (rc == 0)
        rc = bc_db_commit(run->db, &db_err);
    free(sql);
    if (rc == 0)
        return 0;
    bc_db_rollback(run->db);
    bc_error_set(err, db_err.code, NULL, "migration %s failed", m->name);
    bc_error_detail(err, "service %s, %s: %s", run->service, m->name,
                    db_err.detail[0] ? db_err.detail : db_err.message);
    return -1;
}

/* Everything between lock and unlock. Returns the number applied or -1. */
static int s_run_locked(s_run_t *run, bc_error_t *err)
{
    if (s_still_locked(run, err) || bc_db_command(run->db, S_CREATE_TABLE, 0, NULL, err) ||
        s_still_locked(run, err) || s_load_applied(run, err) || s_verify_applied(run, err))
        return -1;
    int newest = run->napplied ? run->applied[run->napplied - 1].version : 0;
    int applied = 0;
    for (int i = 0; i < run->nfiles; i++) {
        const bc_migration_t *m = &run->files[i];
        if (s_find_applied(run, m->version))
            continue;
        if (m->version < newest)
            bc_warn("migration %s %s is older than the newest applied version %d;"
                    " applying it out of order",
                    run->service, m->name, newest);
        if (s_apply_one(run, m, err))
            return -1;
        bc_info("migration %s %s applied", run->service, m->name);
        applied++;
    }
    return applied;
}

int bc_migrate_apply(bc_db_t *db, const char *service, const char *dir, bc_error_t *err)
{
    if (!service || !*service)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "service", "service name is required");
    if (bc_db_in_transaction(db)) {
        bc_error_set(err, BC_INTERNAL, NULL, "migrations cannot run inside a transaction");
        return -1;
    }
    s_run_t run = {.db = db, .service = service};
    run.nfiles = bc_migrate_list(dir, &run.files, err);
    if (run.nfiles < 0)
        return -1;
    const char *lock[] = {S_LOCK_KEY};
    int rc = bc_db_command(db, "SELECT pg_advisory_lock($1::bigint)", 1, lock, err);
    if (rc == 0) {
        run.session = bc_db_connections(db);
        rc = s_run_locked(&run, err);
        /* After a reconnect the lock is already gone with the old session. */
        if (bc_db_connections(db) == run.session && bc_db_ok(db)) {
            bc_error_t unlock_err = {0};
            if (bc_db_command(db, "SELECT pg_advisory_unlock($1::bigint)", 1, lock, &unlock_err))
                bc_warn("migrations: advisory unlock failed: %s", unlock_err.detail);
        }
    }
    free(run.files);
    free(run.applied);
    return rc;
}
