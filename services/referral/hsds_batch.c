/*  hsds_batch: writing many records of one HSDS table in one statement, and
 *  asking which records are stored, for the importer (import.c).
 *
 *  A chunk of records goes to the database as one array per column and one
 *  INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE ... WHERE (the
 *  row changed): the same upsert as hsds_write's, so a stored row with the
 *  same values is left alone and an optional reference the record arrives
 *  without keeps the stored one. The statement runs in a savepoint: when the
 *  database refuses it (a bound, a malformed date, a dangling reference),
 *  nothing of the chunk is written, the transaction goes on, and the caller
 *  writes the chunk's records one by one with hsds_write to learn which one
 *  is at fault. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "referral.h"

static char *s_many_sql[HSDS_NTABLES], *s_stored_sql[HSDS_NTABLES];
static char s_many_names[HSDS_NTABLES][48], s_stored_names[HSDS_NTABLES][48];
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static const char *s_sql_type(hsds_type_t type)
{
    switch (type) {
    case HSDS_UUID: return "uuid";
    case HSDS_INT: return "integer";
    case HSDS_NUM: return "numeric";
    case HSDS_DATE: return "date";
    case HSDS_TIME: return "time";
    case HSDS_TIMESTAMP: return "timestamptz";
    case HSDS_LATITUDE:
    case HSDS_LONGITUDE: return "double precision";
    default: return "text";
    }
}

/* An optional reference to another record (not the record's own id): the
 * stored one is kept when the record arrives without it (see hsds.c). */
static bool s_merged(const hsds_col_t *col)
{
    return col->type == HSDS_UUID && !col->required && strcmp(col->name, "id");
}

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
            S_ADD("%s$%zu::%s[]", c ? ", " : "", c + 3, s_sql_type(t->cols[c].type));
        S_ADD(") AS u(");
        for (size_t c = 0; c < t->ncols; c++)
            S_ADD("%sc%zu", c ? ", " : "", c);
        S_ADD(") ON CONFLICT (agency_id, id) DO UPDATE SET (updated_by, updated_at");
        for (size_t c = 1; c < t->ncols; c++)
            S_ADD(", \"%s\"", t->cols[c].name);
        S_ADD(") = ROW(EXCLUDED.updated_by, now()");
        for (size_t c = 1; c < t->ncols; c++)
            S_ADD(s_merged(&t->cols[c]) ? ", coalesce(EXCLUDED.\"%s\", t.\"%s\")"
                                        : ", EXCLUDED.\"%s\"",
                  t->cols[c].name, t->cols[c].name);
        S_ADD(") WHERE ROW(");
        for (size_t c = 1; c < t->ncols; c++)
            S_ADD("%st.\"%s\"", c > 1 ? ", " : "", t->cols[c].name);
        S_ADD(") IS DISTINCT FROM ROW(");
        for (size_t c = 1; c < t->ncols; c++)
            S_ADD(s_merged(&t->cols[c]) ? "%scoalesce(EXCLUDED.\"%s\", t.\"%s\")"
                                        : "%sEXCLUDED.\"%s\"",
                  c > 1 ? ", " : "", t->cols[c].name, t->cols[c].name);
        S_ADD(") RETURNING t.id, (t.xmax = 0)");
#undef S_ADD
        if (len >= cap)
            abort(); /* the table outgrew the buffer: a programmer error */
        s_many_sql[i] = sql;
        snprintf(s_many_names[i], sizeof s_many_names[i], "hsds_many_%s", t->table);
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

/* Appends value to an array literal being built in *buf: quoted, with quotes
 * and backslashes escaped; NULL as NULL. */
static void s_element(char **buf, size_t *len, size_t *cap, const char *value)
{
    size_t need = value ? 2 * strlen(value) + 4 : 6;
    if (*len + need + 2 > *cap) {
        *cap = (*cap + need + 2) * 2;
        *buf = bc_realloc(*buf, *cap);
    }
    char *p = *buf + *len;
    if (*len > 1)
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
    *p = '\0';
    *len = (size_t)(p - *buf);
}

/* The array literal of column c of rows[0..n), in the arena. */
static char *s_array(bc_arena_t *arena, char **const *rows, size_t n, size_t c)
{
    size_t cap = 64 + n * 40, len = 1;
    char *buf = bc_malloc(cap);
    buf[0] = '{';
    buf[1] = '\0';
    for (size_t i = 0; i < n; i++)
        s_element(&buf, &len, &cap, rows[i][c]);
    if (len + 2 > cap)
        buf = bc_realloc(buf, cap = len + 2);
    buf[len++] = '}';
    buf[len] = '\0';
    char *out = bc_arena_strndup(arena, buf, len);
    free(buf);
    return out;
}

int hsds_write_many(bc_call_t *call, const hsds_table_t *t, char **const *rows, size_t n,
                    hsds_outcome_t *outcomes)
{
    pthread_once(&s_once, s_build);
    size_t ti = (size_t)(t - hsds_tables);
    const char *params[2 + HSDS_MAX_COLS];
    params[0] = call->principal->agency_id;
    params[1] = call->principal->staff_id;
    for (size_t c = 0; c < t->ncols; c++)
        params[2 + c] = s_array(call->arena, rows, n, c);
    bc_error_t err;
    if (bc_db_defer(call->db, NULL, "SAVEPOINT hsds_chunk", 0, NULL, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err), -1;
    PGresult *res = bc_db_prepared(call->db, s_many_names[ti], s_many_sql[ti],
                                   (int)(2 + t->ncols), params, &err);
    if (!res) {
        if (!bc_db_ok(call->db) || err.code == BC_UNAVAILABLE)
            return bc_call_fail_err(call, &err), -1;
        bc_error_t err2;
        if (bc_db_command(call->db, "ROLLBACK TO SAVEPOINT hsds_chunk", 0, NULL, &err2) < 0)
            return bc_call_fail_err(call, &err2), -1;
        return 1;
    }
    /* The rows written come back by id; the others were stored the same. */
    for (size_t i = 0; i < n; i++)
        outcomes[i] = HSDS_UNCHANGED;
    int back = PQntuples(res);
    size_t guess = 0;
    for (int k = 0; k < back; k++) {
        const char *id = PQgetvalue(res, k, 0);
        bool created = !strcmp(PQgetvalue(res, k, 1), "t");
        /* Rows come back in the order sent, most often: look there first. */
        size_t i = guess < n && !strcmp(rows[guess][0], id) ? guess : n;
        for (size_t j = 0; i == n && j < n; j++)
            if (!strcmp(rows[j][0], id))
                i = j;
        if (i < n) {
            outcomes[i] = created ? HSDS_CREATED : HSDS_UPDATED;
            guess = i + 1;
        }
    }
    PQclear(res);
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
    size_t cap = 64 + n * 40, len = 1;
    char *buf = bc_malloc(cap);
    buf[0] = '{';
    buf[1] = '\0';
    for (size_t i = 0; i < n; i++)
        s_element(&buf, &len, &cap, ids[i]);
    if (len + 2 > cap)
        buf = bc_realloc(buf, cap = len + 2);
    buf[len++] = '}';
    buf[len] = '\0';
    const char *params[] = {call->principal->agency_id, buf};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, s_stored_names[ti], s_stored_sql[ti], 2, params,
                                   &err);
    free(buf);
    if (!res)
        return bc_call_fail_err(call, &err), -1;
    int rows = PQntuples(res);
    *found = bc_arena_alloc(call->arena, (size_t)(rows ? rows : 1) * sizeof **found);
    for (int k = 0; k < rows; k++)
        (*found)[(*nfound)++] = bc_arena_strdup(call->arena, PQgetvalue(res, k, 0));
    PQclear(res);
    return 0;
}
