/*  hsds_csv: reading and writing the CSV files of an HSDS tabular data
 *  package, on top of libcsv (Debian libcsv-dev): RFC 4180 quoting, strict
 *  mode (a stray quote is an error, not a guess). This file only turns bytes
 *  into rows with their line numbers and values into quoted fields; what
 *  the rows mean is import.c's and export.c's business. */
#include <csv.h>
#include <string.h>

#include "referral.h"

typedef struct {
    bc_arena_t *arena;
    hsds_csv_row_fn fn;
    void *arg;
    char **fields;
    size_t n, cap;
    int line;     /* the physical line the current row started on */
    int extra;    /* line breaks inside the current row's quoted fields */
    bool after_cr; /* the last row ended with CR: a following LF ends nothing */
    bool stop;
} s_reader_t;

static void s_field(void *data, size_t len, void *arg)
{
    s_reader_t *r = arg;
    if (r->stop)
        return;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 32;
        char **fields = bc_arena_alloc(r->arena, cap * sizeof *fields);
        if (r->n)
            memcpy(fields, r->fields, r->n * sizeof *fields);
        r->fields = fields;
        r->cap = cap;
    }
    char *text = NULL;
    if (data) {
        text = bc_arena_alloc(r->arena, len + 1);
        memcpy(text, data, len);
        text[len] = '\0';
        for (size_t i = 0; i < len; i++)
            r->extra += text[i] == '\n';
    }
    r->fields[r->n++] = text;
    r->after_cr = false;
}

static void s_row_end(int c, void *arg)
{
    s_reader_t *r = arg;
    if (r->stop)
        return;
    if (r->n == 0) {
        /* A blank line (CR, LF or CRLF), or the LF of a CRLF whose CR ended
         * the line before. */
        if (c == '\r' || (c == '\n' && !r->after_cr))
            r->line++;
        r->after_cr = c == '\r';
        return;
    }
    if (r->fn(r->arg, r->fields, r->n, r->line) < 0)
        r->stop = true;
    r->line += 1 + r->extra;
    r->extra = 0;
    r->n = 0;
    r->after_cr = c == '\r';
}

int hsds_csv_read(bc_arena_t *arena, const char *text, size_t len, hsds_csv_row_fn fn, void *arg,
                  int *bad_line)
{
    struct csv_parser p;
    *bad_line = 0;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL | CSV_EMPTY_IS_NULL) != 0)
        return -1;
    s_reader_t r = {.arena = arena, .fn = fn, .arg = arg, .line = 1};
    /* A UTF-8 byte order mark is not part of the first column's name. */
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) {
        text += 3;
        len -= 3;
    }
    int rc = 0;
    if (csv_parse(&p, text, len, s_field, s_row_end, &r) != len ||
        csv_fini(&p, s_field, s_row_end, &r) != 0) {
        *bad_line = r.line + r.extra;
        rc = -1;
    }
    if (r.stop)
        rc = -1;
    csv_free(&p);
    return rc;
}

char *hsds_csv_field(bc_arena_t *arena, const char *value)
{
    if (!value)
        return bc_arena_strdup(arena, "");
    size_t len = strlen(value);
    /* libcsv trims spaces and tabs around an unquoted field, and a file's
     * leading byte order mark is skipped: a value that starts or ends with a
     * space or tab, or starts with the mark, is quoted, or it would read back
     * shorter. */
    bool edge = len && (strchr(" \t", value[0]) || strchr(" \t", value[len - 1]) ||
                        !strncmp(value, "\xEF\xBB\xBF", 3));
    bool plain = strcspn(value, ",\"\r\n") == len && !edge;
    if (plain)
        return bc_arena_strdup(arena, value);
    /* Quoted: at most twice the length plus the two quotes. */
    char *out = bc_arena_alloc(arena, 2 * len + 3);
    size_t n = csv_write(out, 2 * len + 3, value, len);
    out[n] = '\0';
    return out;
}
