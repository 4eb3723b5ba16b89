/*  export: the agency's directory as an HSDS 3.0 tabular data package.
 *
 *  One zip file (what integrators and the Open Referral tools exchange, and
 *  what ImportDirectory takes back file by file): datapackage.json (a
 *  Frictionless data package naming each resource, its path and its
 *  fields) and one CSV file per table Beacon keeps, named as HSDS names
 *  them (organizations.csv, services.csv, ...), each with a header row of
 *  HSDS field names and one record per row, ordered by id so that the same
 *  directory always gives the same files. Values are written as text
 *  (timestamps in RFC 3339 UTC, times as HH:MM:SS), none as an empty field.
 *  The zip is made with libarchive and held in memory: a directory whose
 *  package would not fit in one reply (rpc_max_message_bytes) is refused
 *  with PAYLOAD_TOO_LARGE (413). Not PHI; audited as an export all the same. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "referral.h"

/* A growing buffer the zip is written into. */
typedef struct {
    unsigned char *data;
    size_t len, cap, max;
} s_sink_t;

static la_ssize_t s_sink_write(struct archive *a, void *arg, const void *buf, size_t n)
{
    s_sink_t *s = arg;
    if (s->len + n > s->max) {
        archive_set_error(a, ENOSPC, "the package is larger than one reply");
        return -1;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 65536;
        while (cap < s->len + n)
            cap *= 2;
        s->data = bc_realloc(s->data, cap);
        s->cap = cap;
    }
    memcpy(s->data + s->len, buf, n);
    s->len += n;
    return (la_ssize_t)n;
}

static int s_add(struct archive *a, const char *name, const char *data, size_t len, time_t now)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, now, 0);
    int rc = archive_write_header(a, e);
    if (rc == ARCHIVE_OK && len && archive_write_data(a, data, len) != (la_ssize_t)len)
        rc = ARCHIVE_FATAL;
    archive_entry_free(e);
    return rc == ARCHIVE_OK ? 0 : -1;
}

/* The SELECT list of t's columns as HSDS text. Column names come from the
 * table model (hsds.c), never from a request. */
static char *s_select(bc_arena_t *arena, const hsds_table_t *t)
{
    char *sql = bc_arena_strdup(arena, "SELECT ");
    for (size_t c = 0; c < t->ncols; c++) {
        const char *name = t->cols[c].name, *expr;
        if (t->cols[c].type == HSDS_TIMESTAMP)
            expr = bc_arena_printf(arena,
                                   "to_char(\"%s\" AT TIME ZONE 'UTC', "
                                   "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                                   name);
        else
            expr = bc_arena_printf(arena, "\"%s\"::text", name);
        sql = bc_arena_printf(arena, "%s%s%s", sql, c ? ", " : "", expr);
    }
    return bc_arena_printf(arena, "%s FROM referral.\"%s\" WHERE agency_id = $1 ORDER BY id",
                           sql, t->table);
}

/* The rows of t as CSV text (header first) in *out; -1 with call->err set. */
static int s_table_csv(bc_call_t *call, const hsds_table_t *t, char **out, size_t *len,
                       int *rows)
{
    const char *params[] = {call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_query(call->db, s_select(call->arena, t), 1, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    /* Sized in one pass over the fields, then written. */
    int n = PQntuples(res);
    char ***cells = bc_arena_alloc(call->arena, (size_t)(n + 1) * sizeof *cells);
    size_t total = 0;
    for (int i = -1; i < n; i++) {
        char **line = cells[i + 1] = bc_arena_alloc(call->arena, t->ncols * sizeof(char *));
        for (size_t c = 0; c < t->ncols; c++) {
            const char *v = i < 0 ? t->cols[c].name
                            : PQgetisnull(res, i, (int)c) ? NULL
                                                           : PQgetvalue(res, i, (int)c);
            line[c] = hsds_csv_field(call->arena, v);
            total += strlen(line[c]) + 1;
        }
        total += 1; /* CRLF: the comma of the last field becomes CR */
    }
    PQclear(res);
    char *text = bc_arena_alloc(call->arena, total + 1), *p = text;
    for (int i = 0; i <= n; i++) {
        for (size_t c = 0; c < t->ncols; c++) {
            size_t l = strlen(cells[i][c]);
            memcpy(p, cells[i][c], l);
            p += l;
            *p++ = c + 1 < t->ncols ? ',' : '\r';
        }
        *p++ = '\n';
    }
    *out = text;
    *len = (size_t)(p - text);
    *rows = n;
    return 0;
}

static const char *s_field_type(hsds_type_t type)
{
    switch (type) {
    case HSDS_INT: return "integer";
    case HSDS_NUM:
    case HSDS_LATITUDE:
    case HSDS_LONGITUDE: return "number";
    case HSDS_DATE: return "date";
    case HSDS_TIME: return "time";
    case HSDS_TIMESTAMP: return "datetime";
    default: return "string";
    }
}

bc_code_t directory_export(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    (void)in;
    bc_error_t err;
    /* One snapshot for every table: the files agree with each other. */
    if (bc_db_begin(call->db, &err) < 0 ||
        bc_db_command(call->db, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", 0,
                      NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    s_sink_t sink = {.max = (size_t)bc_config_int(call->config, "rpc_max_message_bytes") - 65536};
    struct archive *a = archive_write_new();
    archive_write_set_format_zip(a);
    archive_write_set_bytes_in_last_block(a, 1);
    time_t now = time(NULL);
    json_t *resources = json_array();
    int total_rows = 0;
    bool ok = archive_write_open2(a, &sink, NULL, s_sink_write, NULL, NULL) == ARCHIVE_OK;
    for (size_t k = 0; ok && k < HSDS_NTABLES; k++) {
        const hsds_table_t *t = &hsds_tables[k];
        char *csv;
        size_t len;
        int rows;
        if (s_table_csv(call, t, &csv, &len, &rows) < 0) {
            archive_write_free(a);
            free(sink.data);
            json_decref(resources);
            return call->err.code;
        }
        total_rows += rows;
        char *path = bc_arena_printf(call->arena, "%s.csv", t->table);
        ok = s_add(a, path, csv, len, now) == 0;
        json_t *fields = json_array();
        for (size_t c = 0; c < t->ncols; c++)
            json_array_append_new(fields, json_pack("{s:s, s:s}", "name", t->cols[c].name, "type",
                                                    s_field_type(t->cols[c].type)));
        json_array_append_new(resources,
                              json_pack("{s:s, s:s, s:s, s:s, s:{s:o, s:s}}", "name", t->table,
                                        "path", path, "format", "csv", "encoding", "utf-8",
                                        "schema", "fields", fields, "primaryKey", "id"));
    }
    json_t *package = json_pack("{s:s, s:s, s:s, s:o}", "name", "hsds-directory", "profile",
                                "tabular-data-package", "version", "3.0", "resources", resources);
    char *dp = json_dumps(package, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(package);
    ok = ok && s_add(a, "datapackage.json", dp, strlen(dp), now) == 0;
    free(dp);
    ok = ok && archive_write_close(a) == ARCHIVE_OK;
    archive_write_free(a);
    if (!ok) {
        free(sink.data);
        return bc_call_fail(call, BC_PAYLOAD_TOO_LARGE, "",
                            "the directory's package is larger than one reply "
                            "(rpc_max_message_bytes)");
    }
    bc_audit_event_t ev = {.action = BC_AUDIT_EXPORT, .resource_type = "directory",
                           .purpose = "hsds_export", .outcome = BC_AUDIT_OK,
                           .detail = bc_arena_printf(call->arena,
                                                     "{\"records\":%d,\"bytes\":%zu}",
                                                     total_rows, sink.len)};
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0) {
        free(sink.data);
        return call->err.code;
    }
    Beacon__FileReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__file_reply__init(r);
    r->content_type = "application/zip";
    r->filename = "hsds-directory.zip";
    r->body.len = sink.len;
    r->body.data = bc_arena_alloc(call->arena, sink.len ? sink.len : 1);
    memcpy(r->body.data, sink.data, sink.len);
    free(sink.data);
    *out = &r->base;
    return BC_OK;
}
