/*  import: HSDS 3.0 JSON files and CSV packages into the agency's directory.
 *
 *  Each file holds one record or an array of records of the kind its name
 *  says; a record may hold the records it links to, as HSDS's "full"
 *  documents do (s_links). Reading the files checks every record on its own
 *  (hsds_check, and against the same record met earlier) and lists it in a
 *  plan in the order met: records it refers to (a service's organization)
 *  before it, records it holds (its phones) after it. A bad record is
 *  reported with its file, JSON pointer (or CSV line) and field, the records
 *  nested in it are skipped, and every other record is still taken; the
 *  plan is then written set-wise in one transaction (import_write.c), which
 *  also refuses dangling references. Writing a record that is already
 *  stored with the same values changes nothing, so importing the same files
 *  twice changes nothing. A record may appear several times (HSDS "full"
 *  documents repeat what they link to), each time with the link of the
 *  record holding it: the optional links add up (hsds.c), and a repeat that
 *  says something else than where the record was first met (files in the
 *  order of hsds_tables) is reported and not written. Nested collections
 *  Beacon does not keep (contacts, funding, programs, cost options, ...) are
 *  passed over. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_log.h"
#include "referral.h"

#define S_MAX_FILES 50
#define S_MAX_PROBLEMS 500
#define S_MAX_DEPTH 12

/* A link between an HSDS record and one it holds under key: before (an
 * object written first, whose id fills column in the holder) or after (an
 * array of records written next, whose column takes the holder's id). */
typedef struct {
    const char *owner, *key, *entity, *column;
    bool before;
} s_link_t;

static const s_link_t s_links[] = {
    {"service", "organization", "organization", "organization_id", true},
    {"service_at_location", "service", "service", "service_id", true},
    {"service_at_location", "location", "location", "location_id", true},
    {"taxonomy_term", "taxonomy_detail", "taxonomy", "taxonomy_id", true},
    {"attribute", "taxonomy_term", "taxonomy_term", "taxonomy_term_id", true},
    {"organization", "services", "service", "organization_id", false},
    {"organization", "locations", "location", "organization_id", false},
    {"organization", "phones", "phone", "organization_id", false},
    {"organization", "attributes", "attribute", "link_id", false},
    {"service", "phones", "phone", "service_id", false},
    {"service", "schedules", "schedule", "service_id", false},
    {"service", "service_at_locations", "service_at_location", "service_id", false},
    {"service", "languages", "language", "service_id", false},
    {"service", "attributes", "attribute", "link_id", false},
    {"location", "addresses", "address", "location_id", false},
    {"location", "phones", "phone", "location_id", false},
    {"location", "schedules", "schedule", "location_id", false},
    {"location", "languages", "language", "location_id", false},
    {"location", "accessibility", "accessibility", "location_id", false},
    {"location", "attributes", "attribute", "link_id", false},
    {"service_at_location", "phones", "phone", "service_at_location_id", false},
    {"service_at_location", "schedules", "schedule", "service_at_location_id", false},
    {"service_at_location", "attributes", "attribute", "link_id", false},
    {"phone", "languages", "language", "phone_id", false},
};
#define S_NLINKS (sizeof s_links / sizeof s_links[0])

/* A record already met in this import: its first slot, and its optional
 * links as they add up over its repeats. */
typedef struct {
    char *key; /* "<table index>:<id>" */
    int slot;
    char **links;
} s_met_t;

/* The records met so far, in an open-addressing hash table. */
typedef struct {
    s_met_t *slots;
    size_t cap, n;
} s_seen_t;

typedef struct {
    bc_call_t *call;
    const char *file;
    import_plan_t plan;
    s_seen_t seen;
    int holder; /* the slot of the record whose collection is being read, or -1 */
    bool item;  /* reading an element of that collection */
} s_ctx_t;

static size_t s_hash(const char *s)
{
    size_t h = (size_t)1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * (size_t)1099511628211ULL;
    return h;
}

/* The entry for key, or NULL. */
static s_met_t *s_seen_find(const s_seen_t *self, const char *key)
{
    if (!self->cap)
        return NULL;
    for (size_t j = s_hash(key) & (self->cap - 1); self->slots[j].key; j = (j + 1) & (self->cap - 1))
        if (!strcmp(self->slots[j].key, key))
            return &self->slots[j];
    return NULL;
}

/* Adds an entry for key (not there yet; the strings must outlive the table). */
static void s_seen_add(s_seen_t *self, const s_met_t *met)
{
    if (self->n * 2 >= self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 1024;
        s_met_t *slots = calloc(cap, sizeof *slots);
        if (!slots)
            abort();
        for (size_t i = 0; i < self->cap; i++)
            if (self->slots[i].key) {
                size_t j = s_hash(self->slots[i].key) & (cap - 1);
                while (slots[j].key)
                    j = (j + 1) & (cap - 1);
                slots[j] = self->slots[i];
            }
        free(self->slots);
        self->slots = slots;
        self->cap = cap;
    }
    size_t j = s_hash(met->key) & (self->cap - 1);
    while (self->slots[j].key)
        j = (j + 1) & (self->cap - 1);
    self->slots[j] = *met;
    self->n++;
}


/* A problem found while reading: a slot of its own (t: the record's table, or
 * NULL for one that is no record). */
static import_slot_t *s_problem(s_ctx_t *ctx, int line, const char *at, const char *field,
                                const char *message)
{
    bc_arena_t *arena = ctx->call->arena;
    import_slot_t *p = import_plan_add(&ctx->plan);
    p->file = ctx->file;
    p->line = line;
    p->at = bc_arena_strdup(arena, at);
    p->field = bc_arena_strdup(arena, field ? field : "");
    p->message = bc_arena_strdup(arena, message);
    p->holder = ctx->holder;
    p->item = ctx->item;
    p->walked = IMPORT_REFUSED;
    return p;
}

/* Records nested in obj (of entity) that a refusal leaves unwritten. */
static int s_nested(const char *entity, json_t *obj, int depth)
{
    int n = 0;
    if (depth > S_MAX_DEPTH || !json_is_object(obj))
        return 0;
    for (size_t l = 0; l < S_NLINKS; l++) {
        if (s_links[l].before || strcmp(s_links[l].owner, entity))
            continue;
        json_t *arr = json_object_get(obj, s_links[l].key), *item;
        size_t i;
        if (json_is_array(arr))
            json_array_foreach(arr, i, item) n += 1 + s_nested(s_links[l].entity, item, depth + 1);
    }
    return n;
}

/* The text of a JSON scalar for a column, or NULL (null); false for a value
 * that cannot be one (an object, an array, true/false). */
static bool s_scalar(bc_arena_t *arena, json_t *v, char **out)
{
    char buf[64];
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (json_is_string(v)) {
        *out = bc_arena_strdup(arena, json_string_value(v));
        return true;
    }
    if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
    else
        return false;
    *out = bc_arena_strdup(arena, buf);
    return true;
}

typedef enum {
    S_TAKEN,      /* to be written, or met before saying the same */
    S_REFUSED,    /* reported; nothing written */
    S_KEPT_FIRST, /* met earlier in this import saying something else: reported, the first kept */
} s_take_t;

/* An optional reference to another record: repeats add these up. */
static bool s_link_column(const hsds_col_t *col)
{
    return col->type == HSDS_UUID && !col->required && strcmp(col->name, "id");
}

/* Checks row of table t (from a JSON or a CSV file: `at` and line say where),
 * compares it with the same record met earlier in this import and lists it in
 * the plan (*slot: its slot's number). The validation every format shares. */
static s_take_t s_take(s_ctx_t *ctx, const hsds_table_t *t, hsds_row_t *row, int line,
                       const char *at, int *slot)
{
    bc_arena_t *arena = ctx->call->arena;
    const char *field = "";
    char message[300];
    *slot = (int)ctx->plan.n;
    if (!hsds_check(arena, t, row, &field, message, sizeof message)) {
        s_problem(ctx, line, at, field, message)->t = t;
        return S_REFUSED;
    }
    /* A record met again (HSDS "full" documents repeat what they link to)
     * must say the same as where it was first met, links to its holders
     * apart (those add up, see hsds.c); otherwise the first is kept and the
     * repeat reported. */
    char *key = bc_arena_printf(arena, "%d:%s", (int)(t - hsds_tables), row->values[0]);
    s_met_t *met = s_seen_find(&ctx->seen, key);
    bool adds = false;
    if (met) {
        const import_slot_t *first = &ctx->plan.slots[met->slot];
        for (size_t c = 1; c < t->ncols; c++) {
            const hsds_col_t *col = &t->cols[c];
            const char *a = first->values[c], *b = row->values[c];
            if (s_link_column(col)) {
                if (b && (!met->links[c] || strcmp(met->links[c], b))) {
                    adds = true;
                    met->links[c] = row->values[c];
                }
                continue;
            }
            if ((a || b) && (!a || !b || strcmp(a, b))) {
                snprintf(message, sizeof message,
                         "%s differs from the same record met earlier in this import (%.60s%s%.80s); "
                         "the first is kept",
                         col->name, first->file, *first->at ? " at " : "", first->at);
                import_slot_t *p = s_problem(ctx, line, at, col->name, message);
                p->t = t;
                p->walked = IMPORT_KEPT_FIRST;
                return S_KEPT_FIRST;
            }
        }
    }
    import_slot_t *s = import_plan_add(&ctx->plan);
    s->t = t;
    s->values = bc_arena_alloc(arena, t->ncols * sizeof *s->values);
    memcpy(s->values, row->values, t->ncols * sizeof *s->values);
    s->key = key;
    s->file = ctx->file;
    s->line = line;
    s->at = bc_arena_strdup(arena, at);
    s->holder = ctx->holder;
    s->item = ctx->item;
    if (met) {
        s->walked = IMPORT_REPEAT;
        s->first = met->slot;
        s->adds = adds;
    } else {
        s->walked = IMPORT_QUEUED;
        s_met_t entry = {key, *slot, bc_arena_alloc(arena, t->ncols * sizeof(char *))};
        memcpy(entry.links, row->values, t->ncols * sizeof(char *));
        s_seen_add(&ctx->seen, &entry);
    }
    return S_TAKEN;
}

/* Lists the record obj of table t found at `at` and what it holds; where it
 * sits (its holder, whether it is an element of the holder's collection) is
 * in ctx. link (with its value) is the column that refers to the record
 * holding it. The record's id goes to *id (NULL if it has none). */
static void s_record(s_ctx_t *ctx, const hsds_table_t *t, json_t *obj, const char *at,
                     const char *link, const char *link_value, const char *holder, int depth,
                     const char **id)
{
    bc_arena_t *arena = ctx->call->arena;
    *id = NULL;
    if (!json_is_object(obj)) {
        s_problem(ctx, 0, at, "", "expected an object (one HSDS record)");
        return;
    }
    if (depth > S_MAX_DEPTH) {
        s_problem(ctx, 0, at, "", "records nested too deeply");
        return;
    }
    hsds_row_t row = {{0}};
    for (size_t c = 0; c < t->ncols; c++) {
        if (!s_scalar(arena, json_object_get(obj, t->cols[c].name), &row.values[c])) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s must be a text, a number or null", t->cols[c].name);
            import_slot_t *p = s_problem(ctx, 0, at, t->cols[c].name, msg);
            p->nested = s_nested(t->entity, obj, depth);
            return;
        }
    }
    /* What the record refers to, listed first, where the record itself sits. */
    bool item = ctx->item;
    for (size_t l = 0; l < S_NLINKS; l++) {
        const s_link_t *k = &s_links[l];
        json_t *held = json_object_get(obj, k->key);
        if (!k->before || strcmp(k->owner, t->entity) || !held || json_is_null(held))
            continue;
        char *where = bc_arena_printf(arena, "%s/%s", at, k->key);
        const char *held_id = NULL;
        ctx->item = false;
        s_record(ctx, hsds_table(k->entity), held, where, NULL, NULL, NULL, depth + 1, &held_id);
        /* Refused, it is still what the holder refers to: the holder is then
         * refused for the dangling reference, not for a missing one. */
        if (!held_id && json_is_object(held))
            held_id = json_string_value(json_object_get(held, "id"));
        int c = hsds_column(t, k->column);
        if (held_id && c >= 0 && !row.values[c])
            row.values[c] = bc_arena_strdup(arena, held_id);
    }
    ctx->item = item;
    if (link) {
        int c = hsds_column(t, link);
        if (c >= 0 && (!row.values[c] || !strcmp(link, "link_id")))
            row.values[c] = bc_arena_strdup(arena, link_value);
        /* Where an attribute sits says what it is linked to. */
        int e = hsds_column(t, "link_entity");
        if (e >= 0 && holder)
            row.values[e] = (char *)holder;
    }
    int slot;
    switch (s_take(ctx, t, &row, 0, at, &slot)) {
    case S_REFUSED: ctx->plan.slots[slot].nested = s_nested(t->entity, obj, depth); return;
    case S_TAKEN:
    case S_KEPT_FIRST: *id = row.values[0]; break; /* what it holds refers to the record kept */
    }
    /* What the record holds, listed next, each an element of its collection. */
    int outer = ctx->holder;
    ctx->holder = slot;
    for (size_t l = 0; l < S_NLINKS; l++) {
        const s_link_t *k = &s_links[l];
        json_t *arr = json_object_get(obj, k->key), *el;
        if (k->before || strcmp(k->owner, t->entity) || !arr || json_is_null(arr))
            continue;
        char *where = bc_arena_printf(arena, "%s/%s", at, k->key);
        if (!json_is_array(arr)) {
            ctx->item = false;
            s_problem(ctx, 0, where, k->key, "expected an array of records");
            continue;
        }
        size_t i;
        json_array_foreach(arr, i, el)
        {
            const char *child_id;
            ctx->item = true;
            s_record(ctx, hsds_table(k->entity), el, bc_arena_printf(arena, "%s/%zu", where, i),
                     k->column, *id, t->entity, depth + 1, &child_id);
        }
    }
    ctx->holder = outer;
    ctx->item = item;
}

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The table a file's name names ("service_full.json", "services.json"), or NULL. */
static const hsds_table_t *s_file_table(bc_arena_t *arena, const char *name)
{
    const char *base = strrchr(name, '/');
    char *stem = bc_arena_strdup(arena, base ? base + 1 : name);
    size_t n = strlen(stem);
    if (n > 5 && !strcmp(stem + n - 5, ".json"))
        stem[n -= 5] = '\0';
    else if (n > 4 && !strcmp(stem + n - 4, ".csv"))
        stem[n -= 4] = '\0';
    if (n > 5 && !strcmp(stem + n - 5, "_full"))
        stem[n -= 5] = '\0';
    const hsds_table_t *t = hsds_table(stem);
    if (!t && n > 1 && stem[n - 1] == 's') {
        stem[n - 1] = '\0';
        t = hsds_table(stem);
    }
    return t;
}

/* The 1-based line of the first byte that is not valid UTF-8, or 0. */
static int s_bad_utf8_line(const char *s, size_t len)
{
    int line = 1;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '\n') {
            if (!bc_utf8_valid(s + start, i - start))
                return line;
            line++;
            start = i + 1;
        }
    }
    return 0;
}

static void s_file(s_ctx_t *ctx, const Beacon__Referral__ImportFile *f, const hsds_table_t *t)
{
    const char *text = (const char *)f->content.data;
    size_t len = f->content.len;
    int bad = s_bad_utf8_line(text ? text : "", len);
    if (bad) {
        s_problem(ctx, bad, "", "", "the file is not valid UTF-8 (HSDS files are UTF-8)");
        return;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        char msg[300];
        snprintf(msg, sizeof msg, "not valid JSON: %s (column %d)", jerr.text, jerr.column);
        s_problem(ctx, jerr.line > 0 ? jerr.line : 1, "", "", msg);
        return;
    }
    const char *id;
    if (json_is_array(doc)) {
        size_t i;
        json_t *item;
        json_array_foreach(doc, i, item)
        {
            s_record(ctx, t, item, bc_arena_printf(ctx->call->arena, "/%zu", i), NULL, NULL,
                     NULL, 0, &id);
        }
    } else {
        s_record(ctx, t, doc, "", NULL, NULL, NULL, 0, &id);
    }
    json_decref(doc);
}


/* ---- the tabular package: one CSV file per table ------------------------------ */

/* Files of an HSDS tabular package that hold what Beacon does not keep (or
 * describe the package): passed over, and named in the reply. */
static const char *const s_not_kept[] = {
    "datapackage.json", "contacts.csv",  "cost_options.csv", "funding.csv",
    "metadata.csv",     "meta_table_descriptions.csv", "organization_identifiers.csv",
    "programs.csv",     "required_documents.csv",      "service_areas.csv", NULL};

static bool s_is_csv(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcmp(name + n - 4, ".csv");
}

typedef struct {
    s_ctx_t *ctx;
    const hsds_table_t *t;
    int *column;    /* per CSV column: the table's column, or -1 (not kept) */
    size_t ncolumns; /* 0 until the header is read */
    bool header_refused;
} s_sheet_t;

/* The header: which column is which. -1 refuses the whole file. */
static int s_csv_header(s_sheet_t *sh, char **fields, size_t n)
{
    s_ctx_t *ctx = sh->ctx;
    bool seen[HSDS_MAX_COLS] = {false};
    sh->column = bc_arena_alloc(ctx->call->arena, n * sizeof *sh->column);
    for (size_t i = 0; i < n; i++) {
        int c = fields[i] ? hsds_column(sh->t, fields[i]) : -1;
        if (c >= 0 && seen[c]) {
            char msg[160];
            snprintf(msg, sizeof msg, "the header names the column %s twice", fields[i]);
            s_problem(ctx, 1, "", fields[i], msg);
            return -1;
        }
        if (c >= 0)
            seen[c] = true;
        sh->column[i] = c;
    }
    for (size_t c = 0; c < sh->t->ncols; c++)
        if (sh->t->cols[c].required && !sh->t->cols[c].fallback && !seen[c]) {
            char msg[160];
            snprintf(msg, sizeof msg, "the header lacks the column %s, which every %s has",
                     sh->t->cols[c].name, sh->t->entity);
            s_problem(ctx, 1, "", sh->t->cols[c].name, msg);
            return -1;
        }
    sh->ncolumns = n;
    return 0;
}

static int s_csv_row(void *arg, char **fields, size_t n, int line)
{
    s_sheet_t *sh = arg;
    s_ctx_t *ctx = sh->ctx;
    if (!sh->ncolumns) {
        if (s_csv_header(sh, fields, n) < 0) {
            sh->header_refused = true;
            return -1;
        }
        return 0;
    }
    if (n != sh->ncolumns) {
        char msg[160];
        snprintf(msg, sizeof msg, "the row has %zu fields where the header has %zu", n,
                 sh->ncolumns);
        s_problem(ctx, line, "", "", msg);
        return 0;
    }
    hsds_row_t row = {{0}};
    for (size_t i = 0; i < n; i++) {
        int c = sh->column[i];
        if (c < 0 || !fields[i] || !*fields[i])
            continue; /* not kept, or empty: none */
        if (!bc_utf8_valid(fields[i], strlen(fields[i]))) {
            s_problem(ctx, line, "", sh->t->cols[c].name,
                      "the value is not valid UTF-8 (HSDS files are UTF-8)");
            return 0;
        }
        row.values[c] = fields[i];
    }
    int slot;
    s_take(ctx, sh->t, &row, line, "", &slot);
    return 0;
}

static void s_csv_file(s_ctx_t *ctx, const Beacon__Referral__ImportFile *f, const hsds_table_t *t)
{
    s_sheet_t sh = {.ctx = ctx, .t = t};
    int bad_line;
    if (hsds_csv_read(ctx->call->arena, (const char *)f->content.data, f->content.len, s_csv_row,
                      &sh, &bad_line) < 0 && !sh.header_refused && bad_line)
        s_problem(ctx, bad_line, "", "",
                  "not valid CSV (RFC 4180): a quote out of place or a quoted field left open; "
                  "the rows after it were not read");
    if (!sh.ncolumns && !bad_line && !sh.header_refused)
        s_problem(ctx, 1, "", "", "the file is empty: a CSV file starts with its header");
}

bc_code_t directory_import(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Referral__ImportDirectoryRequest *req =
        (const Beacon__Referral__ImportDirectoryRequest *)in;
    if (req->n_files < 1 || req->n_files > S_MAX_FILES)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "files", "files holds 1 to %d files",
                            S_MAX_FILES);
    /* A zip (a whole package) counts as the files it holds. */
    Beacon__Referral__ImportFile **files;
    size_t n_files;
    bc_code_t code = directory_unpack(call, req->files, req->n_files, S_MAX_FILES, &files,
                                      &n_files);
    if (code != BC_OK)
        return code;
    const hsds_table_t *tables[S_MAX_FILES];
    size_t passed_over = 0;
    for (size_t i = 0; i < n_files; i++) {
        tables[i] = s_file_table(call->arena, files[i]->name);
        const char *base = strrchr(files[i]->name, '/');
        base = base ? base + 1 : files[i]->name;
        bool not_kept = false;
        for (const char *const *k = s_not_kept; *k && !tables[i]; k++)
            not_kept |= !strcmp(*k, base);
        passed_over += not_kept;
        if (!tables[i] && !not_kept)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "files.name",
                                "file \"%.80s\": the name must say what it holds (organization, "
                                "service, location, service_at_location, taxonomy, "
                                "taxonomy_term, ...; .json, or a table of the tabular "
                                "package: organizations.csv, services.csv, ...)",
                                files[i]->name);
    }
    Beacon__Referral__ImportDirectoryReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__referral__import_directory_reply__init(r);
    r->problems = bc_arena_alloc(call->arena, S_MAX_PROBLEMS * sizeof *r->problems);
    r->passed_over = bc_arena_alloc(call->arena, (passed_over ? passed_over : 1) * sizeof(char *));
    for (size_t i = 0; i < n_files; i++)
        if (!tables[i])
            r->passed_over[r->n_passed_over++] = files[i]->name;
    s_ctx_t ctx = {.call = call, .file = "", .holder = -1};

    /* Read and check every file, in the order of the tables: what is
     * referred to comes first. */
    int64_t t0 = s_now_us();
    for (size_t k = 0; k < HSDS_NTABLES; k++)
        for (size_t i = 0; i < n_files; i++)
            if (tables[i] == &hsds_tables[k]) {
                ctx.file = files[i]->name;
                if (s_is_csv(ctx.file))
                    s_csv_file(&ctx, files[i], tables[i]);
                else
                    s_file(&ctx, files[i], tables[i]);
            }
    free(ctx.seen.slots);
    int64_t t1 = s_now_us();

    /* Write it all in one transaction. */
    bc_error_t err;
    search_touched_t touched;
    memset(&touched, 0, sizeof touched);
    /* Every statement of the import is a fixed chain of key probes over
     * arrays, whatever they hold: one generic plan each, not a plan per call
     * (pg_stat_statements: each chunk's INSERT was planned afresh, 0.5 to
     * 1.2 ms a call). */
    if (bc_db_begin(call->db, &err) < 0 ||
        bc_db_defer(call->db, NULL, "SET CONSTRAINTS ALL IMMEDIATE", 0, NULL, NULL, NULL, &err) < 0 ||
        bc_db_defer(call->db, NULL, "SET LOCAL plan_cache_mode = force_generic_plan", 0, NULL, NULL,
                    NULL, &err) < 0) {
        import_plan_free(&ctx.plan);
        return bc_call_fail_err(call, &err);
    }
    if (import_write(call, &ctx.plan, &touched, r, S_MAX_PROBLEMS) < 0) {
        import_plan_free(&ctx.plan);
        search_rows_forget(&touched);
        return call->err.code; /* the dispatcher rolls back */
    }
    size_t records = ctx.plan.n;
    import_plan_free(&ctx.plan);
    int64_t t2 = s_now_us();
    if (search_rows_refresh(call, &touched, &err) < 0)
        return bc_call_fail_err(call, &err);
    int64_t t3 = s_now_us();
    char *detail = bc_arena_printf(call->arena,
                                    "{\"files\":%zu,\"taken\":%d,\"created\":%d,\"updated\":%d,"
                                    "\"unchanged\":%d,\"refused\":%d,\"skipped\":%d}",
                                    n_files, r->taken, r->created, r->updated, r->unchanged,
                                    r->refused, r->skipped);
    bc_audit_event_t ev = {.action = BC_AUDIT_UPDATE, .resource_type = "directory",
                           .purpose = "hsds_import", .outcome = BC_AUDIT_OK, .detail = detail};
    if (bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    int64_t t4 = s_now_us();
    /* Fresh statistics for what the import grew and the search rows marked
     * visible, soon, off this path (upkeep.c). */
    if (r->created || r->updated)
        upkeep_nudge(referral_upkeep(call));
    bc_info("directory import: %zu records: read %.1f ms, write %.1f ms, search rows %.1f ms, "
            "commit %.1f ms",
            records, (t1 - t0) / 1e3, (t2 - t1) / 1e3, (t3 - t2) / 1e3, (t4 - t3) / 1e3);
    *out = &r->base;
    return BC_OK;
}
