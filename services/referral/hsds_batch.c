/*  hsds_batch: writing many records of one HSDS table in one statement, and
 *  asking which records are stored, for the importer (import_write.c).
 *
 *  A chunk of records goes to the database as one array per column: first
 *  a plain INSERT ... SELECT FROM unnest(...) of those not stored yet, then,
 *  for the others, the same upsert as hsds_write's (INSERT ... ON CONFLICT
 *  DO UPDATE ... WHERE the row changed), so a stored row with the same
 *  values is left alone and an optional reference the record arrives
 *  without keeps the stored one. Both run in one savepoint: when the
 *  database refuses either (a bound, a malformed date, a dangling
 *  reference within organizations or taxonomy terms, a record another
 *  import stored meanwhile), nothing of the
 *  chunk is written, the transaction goes on, and the caller writes the
 *  chunk's records one by one with hsds_write to learn which one is at
 *  fault. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "referral.h"

static char *s_many_sql[HSDS_NTABLES], *s_new_sql[HSDS_NTABLES], *s_stored_sql[HSDS_NTABLES];
static char s_many_names[HSDS_NTABLES][48], s_new_names[HSDS_NTABLES][48],
    s_stored_names[HSDS_NTABLES][48];
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_build(void)
{
    for (size_t i = 0; i < HSDS_NTABLES; i++) {
        const hsds_table_t *t = &hsds_tables[i];
        size_t cap = 12288, len = 0;
        char *sql = malloc(cap);
        if (!sql)
            abort();
#define S_ADD(...) (len += (size_t)snprintf(sql + len, len < cap ? cap - len : 0, __VA_ARGS__))
        S_ADD("INSERT INTO referral.%s AS t (agency_id, updated_by", t->table);
        for (size_t c = 0; c < t->ncols; c++)
            S_ADD(", \"%s\"", t->cols[c].name);
        S_ADD(") SELECT $1::uuid, $2::uuid");
        for (size_t c = 0; c < t->ncols; c++)
            S_ADD(", u.c%zu", c);
        S_ADD(" FROM unnest(");
        for (size_t c = 0; c < t->ncols; c++)
            S_ADD("%s$%zu::%s[]", c ? ", " : "", c + 3, hsds_sql_type(t->cols[c].type));
        S_ADD(") AS u(");
        for (size_t c = 0; c < t->ncols; c++)
            S_ADD("%sc%zu", c ? ", " : "", c);
        /* Up to here the statement is also the plain INSERT of the new records. */
        size_t common = len;
        S_ADD(") ON CONFLICT (agency_id, id) DO UPDATE SET (updated_by, updated_at");
        for (size_t c = 1; c < t->ncols; c++)
            S_ADD(", \"%s\"", t->cols[c].name);
        S_ADD(") = ROW(EXCLUDED.updated_by, now()");
        for (size_t c = 1; c < t->ncols; c++)
            S_ADD(hsds_col_merged(&t->cols[c]) ? ", coalesce(EXCLUDED.\"%s\", t.\"%s\")"
                                        : ", EXCLUDED.\"%s\"",
                  t->cols[c].name, t->cols[c].name);
        S_ADD(") WHERE ROW(");
        for (size_t c = 1; c < t->ncols; c++)
            S_ADD("%st.\"%s\"", c > 1 ? ", " : "", t->cols[c].name);
        S_ADD(") IS DISTINCT FROM ROW(");
        for (size_t c = 1; c < t->ncols; c++)
            S_ADD(hsds_col_merged(&t->cols[c]) ? "%scoalesce(EXCLUDED.\"%s\", t.\"%s\")"
                                        : "%sEXCLUDED.\"%s\"",
                  c > 1 ? ", " : "", t->cols[c].name, t->cols[c].name);
        S_ADD(") RETURNING t.id, (t.xmax = 0)");
#undef S_ADD
        if (len >= cap)
            abort(); /* the table outgrew the buffer: a programmer error */
        s_many_sql[i] = sql;
        snprintf(s_many_names[i], sizeof s_many_names[i], "hsds_many_%s", t->table);
        /* The records not stored yet: a plain INSERT, cheaper than the
         * upsert's speculative insertion. Which of the chunk's ids are
         * stored is asked once, by one scan of the key for all of them (id =
         * ANY), whose few rows are hashed: a probe per record as a subplan
         * (NOT EXISTS) cost its executor set-up for each record (7% of the
         * database's time in an import). */
        char tail[320];
        int m = snprintf(tail, sizeof tail,
                         ") WHERE u.c0 NOT IN (SELECT x.id FROM referral.%s x WHERE x.agency_id "
                         "= $1::uuid AND x.id = ANY ($3::uuid[])) RETURNING t.id",
                         t->table);
        s_new_sql[i] = bc_malloc(common + (size_t)m + 1);
        memcpy(s_new_sql[i], sql, common);
        memcpy(s_new_sql[i] + common, tail, (size_t)m + 1);
        snprintf(s_new_names[i], sizeof s_new_names[i], "hsds_new_%s", t->table);
        char buf[512];
        snprintf(buf, sizeof buf,
                 /* A probe per id (LATERAL ... OFFSET 0), never a hash of the table. */
                 "SELECT t.id FROM unnest($2::uuid[]) AS u(id) CROSS JOIN LATERAL "
                 "(SELECT t.id FROM referral.%s t WHERE t.agency_id = $1::uuid AND t.id = u.id "
                 "OFFSET 0) t",
                 t->table);
        s_stored_sql[i] = bc_strdup(buf);
        snprintf(s_stored_names[i], sizeof s_stored_names[i], "hsds_stored_%s", t->table);
    }
}

void hsds_array_add(hsds_array_t *a, const char *value)
{
    size_t need = value ? 2 * strlen(value) + 4 : 6;
    if (a->len + need + 3 > a->cap) {
        a->cap = (a->cap + need + 3) * 2;
        a->p = bc_realloc(a->p, a->cap);
    }
    if (!a->len)
        a->p[a->len++] = '{';
    char *p = a->p + a->len;
    if (a->len > 1)
        *p++ = ',';
    if (!value) {
        memcpy(p, "NULL", 4);
        p += 4;
    } else {
        *p++ = '"';
        for (const char *v = value; *v; v++) {
            if (*v == '"' || *v == '\\')
                *p++ = '\\';
            *p++ = *v;
        }
        *p++ = '"';
    }
    a->len = (size_t)(p - a->p);
}

char *hsds_array_text(bc_arena_t *arena, const hsds_array_t *a)
{
    if (!a->len)
        return bc_arena_strdup(arena, "{}");
    char *out = bc_arena_alloc(arena, a->len + 2);
    memcpy(out, a->p, a->len);
    out[a->len] = '}';
    out[a->len + 1] = '\0';
    return out;
}

void hsds_array_free(hsds_array_t *a)
{
    free(a->p);
    memset(a, 0, sizeof *a);
}

/* The array literal of column c of rows[0..n), in the arena. */
static char *s_array(bc_arena_t *arena, char **const *rows, size_t n, size_t c)
{
    hsds_array_t a = {.cap = 64 + n * 40};
    a.p = bc_malloc(a.cap);
    for (size_t i = 0; i < n; i++)
        hsds_array_add(&a, rows[i][c]);
    char *out = hsds_array_text(arena, &a);
    hsds_array_free(&a);
    return out;
}

/* Where id is among rows[0..n), looking at *guess first (rows come back in
 * the order sent, most often); n if nowhere. */
static size_t s_find(char **const *rows, size_t n, const char *id, size_t *guess)
{
    size_t i = *guess < n && !strcmp(rows[*guess][0], id) ? *guess : n;
    for (size_t j = 0; i == n && j < n; j++)
        if (!strcmp(rows[j][0], id))
            i = j;
    if (i < n)
        *guess = i + 1;
    return i;
}

/* Runs statement name/sql over rows[0..n); NULL with *failed set when it
 * fails (-1: the database failed, call->err set; 1: it refused the statement). */
static PGresult *s_run(bc_call_t *call, const hsds_table_t *t, const char *name, const char *sql,
                       char **const *rows, size_t n, int *failed)
{
    const char *params[2 + HSDS_MAX_COLS];
    params[0] = call->principal->agency_id;
    params[1] = call->principal->staff_id;
    for (size_t c = 0; c < t->ncols; c++)
        params[2 + c] = s_array(call->arena, rows, n, c);
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, name, sql, (int)(2 + t->ncols), params, &err);
    if (res)
        return res;
    if (!bc_db_ok(call->db) || err.code == BC_UNAVAILABLE) {
        bc_call_fail_err(call, &err);
        *failed = -1;
        return NULL;
    }
    if (bc_db_command(call->db, "ROLLBACK TO SAVEPOINT hsds_chunk", 0, NULL, &err) < 0) {
        bc_call_fail_err(call, &err);
        *failed = -1;
        return NULL;
    }
    *failed = 1;
    return NULL;
}

int hsds_write_many(bc_call_t *call, const hsds_table_t *t, char **const *rows, size_t n,
                    hsds_outcome_t *outcomes)
{
    pthread_once(&s_once, s_build);
    size_t ti = (size_t)(t - hsds_tables);
    bc_error_t err;
    if (bc_db_defer(call->db, NULL, "SAVEPOINT hsds_chunk", 0, NULL, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err), -1;
    /* First the records not stored yet, then the others (if any) through the
     * upsert, which leaves those stored the same alone. */
    int failed = 0;
    PGresult *res = s_run(call, t, s_new_names[ti], s_new_sql[ti], rows, n, &failed);
    if (!res)
        return failed;
    for (size_t i = 0; i < n; i++)
        outcomes[i] = HSDS_UNCHANGED;
    size_t guess = 0, created = 0;
    for (int k = 0; k < PQntuples(res); k++) {
        size_t i = s_find(rows, n, PQgetvalue(res, k, 0), &guess);
        if (i < n && outcomes[i] != HSDS_CREATED) {
            outcomes[i] = HSDS_CREATED;
            created++;
        }
    }
    PQclear(res);
    if (created < n) {
        char ***rest = bc_arena_alloc(call->arena, (n - created) * sizeof *rest);
        size_t *at = bc_arena_alloc(call->arena, (n - created) * sizeof *at), m = 0;
        for (size_t i = 0; i < n; i++)
            if (outcomes[i] != HSDS_CREATED) {
                at[m] = i;
                rest[m++] = rows[i];
            }
        res = s_run(call, t, s_many_names[ti], s_many_sql[ti], rest, m, &failed);
        if (!res)
            return failed;
        guess = 0;
        for (int k = 0; k < PQntuples(res); k++) {
            size_t j = s_find(rest, m, PQgetvalue(res, k, 0), &guess);
            if (j < m)
                outcomes[at[j]] = !strcmp(PQgetvalue(res, k, 1), "t") ? HSDS_CREATED
                                                                       : HSDS_UPDATED;
        }
        PQclear(res);
    }
    if (bc_db_defer(call->db, NULL, "RELEASE SAVEPOINT hsds_chunk", 0, NULL, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err), -1;
    return 0;
}

int hsds_stored(bc_call_t *call, const hsds_table_t *t, const char *const *ids, size_t n,
                char ***found, size_t *nfound)
{
    pthread_once(&s_once, s_build);
    size_t ti = (size_t)(t - hsds_tables);
    *found = NULL;
    *nfound = 0;
    if (!n)
        return 0;
    hsds_array_t a = {.cap = 64 + n * 40};
    a.p = bc_malloc(a.cap);
    for (size_t i = 0; i < n; i++)
        hsds_array_add(&a, ids[i]);
    const char *params[] = {call->principal->agency_id, hsds_array_text(call->arena, &a)};
    hsds_array_free(&a);
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, s_stored_names[ti], s_stored_sql[ti], 2, params,
                                   &err);
    if (!res)
        return bc_call_fail_err(call, &err), -1;
    int rows = PQntuples(res);
    *found = bc_arena_alloc(call->arena, (size_t)(rows ? rows : 1) * sizeof **found);
    for (int k = 0; k < rows; k++)
        (*found)[(*nfound)++] = bc_arena_strdup(call->arena, PQgetvalue(res, k, 0));
    PQclear(res);
    return 0;
}
