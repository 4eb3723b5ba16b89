/*  instrument: loads assessment instrument definitions (JSON files) into an
 *  immutable registry and scores response sets against them.
 *
 *  The definition format is documented in instrument.h. Loading treats every
 *  file as hostile: it is opened non-blocking and must be a regular file of
 *  at most INSTRUMENT_MAX_FILE_BYTES, parsed by jansson with duplicate keys
 *  refused, and then walked by hand against the format (unknown keys, wrong
 *  types, limits, cross-references), so the first problem is reported with
 *  the file name and the JSON path of the offending field. Everything a
 *  registry holds lives in one arena freed by instrument_registry_destroy().
 *
 *  Scoring allocates nothing: at most INSTRUMENT_MAX_ITEMS items means the
 *  per-item bookkeeping fits on the stack, and an answer list longer than
 *  the item list is refused at the first repeated or unknown item.
 */
#include "instrument.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bc_mem.h"
#include "bc_util.h"

#define S_MAX_TEXT_CHARS 1000
#define S_MAX_LONG_TEXT_CHARS 2000
#define S_MAX_VERSION_CHARS 32
#define S_SCALE_LIMIT 1000 /* scale values lie in -S_SCALE_LIMIT..S_SCALE_LIMIT */
#define S_FIELD_MAX 128

struct instrument {
    const char *file; /* base name of the definition file */
    const char *id;
    const char *version;
    const char *title;
    const char *citation;
    const char *instructions;
    size_t item_count;
    instrument_item_t *items;
    size_t scale_count;
    instrument_scale_point_t *scale;
    int scale_min, scale_max;
    size_t subscale_count;
    instrument_subscale_t *subscales;
    size_t band_count;
    instrument_band_t *bands;
    int total_min, total_max;
};

struct instrument_registry {
    bc_arena_t *arena;
    size_t count;
    instrument_t *instruments[INSTRUMENT_MAX_FILES]; /* sorted by id */
};

/* What a definition is being checked in: where errors go and where the
 * instrument's memory comes from. */
typedef struct {
    const char *file; /* base name, for messages */
    const char *path; /* full path, for the detail */
    bc_arena_t *arena;
    bc_error_t *err;
} s_ctx_t;

/* ---- Errors ----------------------------------------------------------------- */

/* Fills the error as "file: field: problem" (or "file: problem" without a
 * field) and returns -1. */
static int s_fail(s_ctx_t *ctx, bc_code_t code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_fail(s_ctx_t *ctx, bc_code_t code, const char *field, const char *fmt, ...)
{
    char problem[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    if (field && *field)
        bc_error_set(ctx->err, code, field, "%s: %s: %s", ctx->file, field, problem);
    else
        bc_error_set(ctx->err, code, "", "%s: %s", ctx->file, problem);
    bc_error_detail(ctx->err, "instrument definition %s", ctx->path);
    return -1;
}

/* Writes a field path into out[S_FIELD_MAX]. A path longer than that (a
 * hostile key) is cut short, which still points at the field. */
static const char *s_path(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const char *s_path(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, S_FIELD_MAX, fmt, ap);
    va_end(ap);
    return out;
}

/* Writes "prefix.key" (or "key" for the root) into out[S_FIELD_MAX]. */
static const char *s_field(char *out, const char *prefix, const char *key)
{
    return prefix && *prefix ? s_path(out, "%s.%s", prefix, key) : s_path(out, "%s", key);
}

/* ---- Typed getters ------------------------------------------------------------ */

/* Refuses any key of obj not in allowed (NULL-terminated). */
static int s_check_keys(s_ctx_t *ctx, json_t *obj, const char *prefix, const char *const *allowed)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        (void)value;
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, key) == 0;
        if (!known) {
            char f[S_FIELD_MAX];
            return s_fail(ctx, BC_INVALID_ARGUMENT, s_field(f, prefix, key),
                          "unknown key \"%.64s\"", key);
        }
    }
    return 0;
}

/* obj[key] as a text (at most max_chars characters, no control characters)
 * copied into the arena; "" when optional and absent. */
static int s_get_text(s_ctx_t *ctx, json_t *obj, const char *prefix, const char *key, bool required,
                      size_t max_chars, const char **out)
{
    char f[S_FIELD_MAX];
    s_field(f, prefix, key);
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return s_fail(ctx, BC_INVALID_ARGUMENT, f, "is required");
        *out = "";
        return 0;
    }
    if (!json_is_string(v))
        return s_fail(ctx, BC_INVALID_ARGUMENT, f, "must be a string");
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return s_fail(ctx, BC_INVALID_ARGUMENT, f, "must not contain NUL characters");
    const char *problem = bc_text_problem(s, true, max_chars);
    if (problem)
        return s_fail(ctx, BC_INVALID_ARGUMENT, f, "%s", problem);
    *out = bc_arena_strdup(ctx->arena, s);
    return 0;
}

/* v as an identifier: 1 to INSTRUMENT_MAX_ID_CHARS of [a-z0-9_-]. */
static int s_id_value(s_ctx_t *ctx, json_t *v, const char *field, const char **out)
{
    if (!v)
        return s_fail(ctx, BC_INVALID_ARGUMENT, field, "is required");
    if (!json_is_string(v))
        return s_fail(ctx, BC_INVALID_ARGUMENT, field, "must be a string");
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    bool ok = len >= 1 && len <= INSTRUMENT_MAX_ID_CHARS && strlen(s) == len;
    for (size_t i = 0; ok && i < len; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    }
    if (!ok)
        return s_fail(ctx, BC_INVALID_ARGUMENT, field,
                      "must be 1 to %d characters of a-z, 0-9, '_' and '-'",
                      INSTRUMENT_MAX_ID_CHARS);
    *out = bc_arena_strdup(ctx->arena, s);
    return 0;
}

static int s_get_id(s_ctx_t *ctx, json_t *obj, const char *prefix, const char *key,
                    const char **out)
{
    char f[S_FIELD_MAX];
    return s_id_value(ctx, json_object_get(obj, key), s_field(f, prefix, key), out);
}

/* obj[key] as an integer within lo..hi. */
static int s_get_int(s_ctx_t *ctx, json_t *obj, const char *prefix, const char *key, int lo, int hi,
                     int *out)
{
    char f[S_FIELD_MAX];
    s_field(f, prefix, key);
    json_t *v = json_object_get(obj, key);
    if (!v)
        return s_fail(ctx, BC_INVALID_ARGUMENT, f, "is required");
    if (!json_is_integer(v))
        return s_fail(ctx, BC_INVALID_ARGUMENT, f, "must be an integer");
    json_int_t n = json_integer_value(v);
    if (n < lo || n > hi)
        return s_fail(ctx, BC_INVALID_ARGUMENT, f, "must be between %d and %d", lo, hi);
    *out = (int)n;
    return 0;
}

/* obj[key] as an array of min..max elements; NULL (and 0) when optional and
 * absent. */
static int s_get_array(s_ctx_t *ctx, json_t *obj, const char *prefix, const char *key,
                       bool required, size_t min, size_t max, json_t **out)
{
    char f[S_FIELD_MAX];
    s_field(f, prefix, key);
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v)
        return required ? s_fail(ctx, BC_INVALID_ARGUMENT, f, "is required") : 0;
    if (!json_is_array(v))
        return s_fail(ctx, BC_INVALID_ARGUMENT, f, "must be an array");
    size_t n = json_array_size(v);
    if (n < min)
        return s_fail(ctx, BC_INVALID_ARGUMENT, f, "must have at least %zu entries", min);
    if (n > max)
        return s_fail(ctx, BC_INVALID_ARGUMENT, f, "has %zu entries; at most %zu are allowed", n,
                      max);
    *out = v;
    return 0;
}

/* The i-th element of arr, which must be an object with only allowed keys;
 * writes its path ("items[3]") into field. */
static json_t *s_array_object(s_ctx_t *ctx, json_t *arr, const char *key, size_t i,
                              const char *const *allowed, char field[S_FIELD_MAX])
{
    s_path(field, "%s[%zu]", key, i);
    json_t *o = json_array_get(arr, i);
    if (!json_is_object(o)) {
        s_fail(ctx, BC_INVALID_ARGUMENT, field, "must be an object");
        return NULL;
    }
    if (s_check_keys(ctx, o, field, allowed) < 0)
        return NULL;
    return o;
}

/* ---- Sections ------------------------------------------------------------------ */

static int s_parse_scale(s_ctx_t *ctx, json_t *root, instrument_t *ins)
{
    static const char *const keys[] = {"value", "label", NULL};
    json_t *arr;
    if (s_get_array(ctx, root, "", "scale", true, 2, INSTRUMENT_MAX_SCALE_POINTS, &arr) < 0)
        return -1;
    ins->scale_count = json_array_size(arr);
    ins->scale = bc_arena_calloc(ctx->arena, ins->scale_count * sizeof *ins->scale);
    for (size_t i = 0; i < ins->scale_count; i++) {
        char f[S_FIELD_MAX];
        json_t *o = s_array_object(ctx, arr, "scale", i, keys, f);
        instrument_scale_point_t *p = &ins->scale[i];
        if (!o || s_get_int(ctx, o, f, "value", -S_SCALE_LIMIT, S_SCALE_LIMIT, &p->value) < 0 ||
            s_get_text(ctx, o, f, "label", true, S_MAX_TEXT_CHARS, &p->label) < 0)
            return -1;
        if (i > 0 && p->value != ins->scale[i - 1].value + 1) {
            char vf[S_FIELD_MAX];
            return s_fail(ctx, BC_INVALID_ARGUMENT, s_field(vf, f, "value"),
                          "scale values must be contiguous ascending integers (expected %d, "
                          "found %d)",
                          ins->scale[i - 1].value + 1, p->value);
        }
    }
    ins->scale_min = ins->scale[0].value;
    ins->scale_max = ins->scale[ins->scale_count - 1].value;
    return 0;
}

static int s_item_index(const instrument_t *ins, size_t count, const char *id)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(ins->items[i].id, id) == 0)
            return (int)i;
    return -1;
}

static int s_parse_items(s_ctx_t *ctx, json_t *root, instrument_t *ins)
{
    static const char *const keys[] = {"id", "text", "reverse", NULL};
    json_t *arr;
    if (s_get_array(ctx, root, "", "items", true, 1, INSTRUMENT_MAX_ITEMS, &arr) < 0)
        return -1;
    ins->item_count = json_array_size(arr);
    ins->items = bc_arena_calloc(ctx->arena, ins->item_count * sizeof *ins->items);
    for (size_t i = 0; i < ins->item_count; i++) {
        char f[S_FIELD_MAX], kf[S_FIELD_MAX];
        json_t *o = s_array_object(ctx, arr, "items", i, keys, f);
        instrument_item_t *item = &ins->items[i];
        if (!o || s_get_id(ctx, o, f, "id", &item->id) < 0)
            return -1;
        if (s_item_index(ins, i, item->id) >= 0)
            return s_fail(ctx, BC_INVALID_ARGUMENT, s_field(kf, f, "id"),
                          "duplicate item id \"%s\"", item->id);
        if (s_get_text(ctx, o, f, "text", true, S_MAX_TEXT_CHARS, &item->text) < 0)
            return -1;
        json_t *rev = json_object_get(o, "reverse");
        if (rev && !json_is_boolean(rev))
            return s_fail(ctx, BC_INVALID_ARGUMENT, s_field(kf, f, "reverse"),
                          "must be true or false");
        item->reverse = rev && json_is_true(rev);
    }
    return 0;
}

static int s_parse_subscales(s_ctx_t *ctx, json_t *root, instrument_t *ins)
{
    static const char *const keys[] = {"id", "title", "items", NULL};
    json_t *arr;
    if (s_get_array(ctx, root, "", "subscales", false, 0, INSTRUMENT_MAX_SUBSCALES, &arr) < 0)
        return -1;
    ins->subscale_count = arr ? json_array_size(arr) : 0;
    ins->subscales =
        bc_arena_calloc(ctx->arena, (ins->subscale_count + 1) * sizeof *ins->subscales);
    for (size_t i = 0; i < ins->subscale_count; i++) {
        char f[S_FIELD_MAX], kf[S_FIELD_MAX];
        json_t *o = s_array_object(ctx, arr, "subscales", i, keys, f);
        instrument_subscale_t *sub = &ins->subscales[i];
        if (!o || s_get_id(ctx, o, f, "id", &sub->id) < 0)
            return -1;
        if (strcmp(sub->id, "total") == 0)
            return s_fail(ctx, BC_INVALID_ARGUMENT, s_field(kf, f, "id"),
                          "\"total\" is reserved for the total score");
        for (size_t j = 0; j < i; j++)
            if (strcmp(ins->subscales[j].id, sub->id) == 0)
                return s_fail(ctx, BC_INVALID_ARGUMENT, s_field(kf, f, "id"),
                              "duplicate subscale id \"%s\"", sub->id);
        json_t *refs;
        if (s_get_text(ctx, o, f, "title", true, S_MAX_TEXT_CHARS, &sub->title) < 0 ||
            s_get_array(ctx, o, f, "items", true, 1, ins->item_count, &refs) < 0)
            return -1;
        sub->item_count = json_array_size(refs);
        size_t *idx = bc_arena_calloc(ctx->arena, sub->item_count * sizeof *idx);
        for (size_t j = 0; j < sub->item_count; j++) {
            char rf[S_FIELD_MAX];
            s_path(rf, "%s.items[%zu]", f, j);
            const char *ref;
            if (s_id_value(ctx, json_array_get(refs, j), rf, &ref) < 0)
                return -1;
            int k = s_item_index(ins, ins->item_count, ref);
            if (k < 0)
                return s_fail(ctx, BC_INVALID_ARGUMENT, rf, "unknown item \"%s\"", ref);
            for (size_t m = 0; m < j; m++)
                if (idx[m] == (size_t)k)
                    return s_fail(ctx, BC_INVALID_ARGUMENT, rf, "item \"%s\" is listed twice", ref);
            idx[j] = (size_t)k;
        }
        sub->items = idx;
        sub->min = (int)sub->item_count * ins->scale_min;
        sub->max = (int)sub->item_count * ins->scale_max;
    }
    return 0;
}

static int s_parse_scoring(s_ctx_t *ctx, json_t *root, instrument_t *ins)
{
    static const char *const keys[] = {"method", "min", "max", NULL};
    json_t *o = json_object_get(root, "scoring");
    if (!o)
        return s_fail(ctx, BC_INVALID_ARGUMENT, "scoring", "is required");
    if (!json_is_object(o))
        return s_fail(ctx, BC_INVALID_ARGUMENT, "scoring", "must be an object");
    const char *method;
    if (s_check_keys(ctx, o, "scoring", keys) < 0 ||
        s_get_id(ctx, o, "scoring", "method", &method) < 0)
        return -1;
    if (strcmp(method, "sum") != 0)
        return s_fail(ctx, BC_INVALID_ARGUMENT, "scoring.method",
                      "unknown method \"%s\" (only \"sum\" is supported)", method);
    int lo = (int)ins->item_count * ins->scale_min;
    int hi = (int)ins->item_count * ins->scale_max;
    const int limit = INSTRUMENT_MAX_ITEMS * S_SCALE_LIMIT;
    if (s_get_int(ctx, o, "scoring", "min", -limit, limit, &ins->total_min) < 0 ||
        s_get_int(ctx, o, "scoring", "max", -limit, limit, &ins->total_max) < 0)
        return -1;
    if (ins->total_min != lo)
        return s_fail(ctx, BC_INVALID_ARGUMENT, "scoring.min",
                      "must be %d (%zu items x scale minimum %d), not %d", lo, ins->item_count,
                      ins->scale_min, ins->total_min);
    if (ins->total_max != hi)
        return s_fail(ctx, BC_INVALID_ARGUMENT, "scoring.max",
                      "must be %d (%zu items x scale maximum %d), not %d", hi, ins->item_count,
                      ins->scale_max, ins->total_max);
    return 0;
}

static int s_parse_bands(s_ctx_t *ctx, json_t *root, instrument_t *ins)
{
    static const char *const keys[] = {"id", "label", "score", "min", "max", NULL};
    json_t *arr;
    if (s_get_array(ctx, root, "", "bands", false, 0, INSTRUMENT_MAX_BANDS, &arr) < 0)
        return -1;
    ins->band_count = arr ? json_array_size(arr) : 0;
    ins->bands = bc_arena_calloc(ctx->arena, (ins->band_count + 1) * sizeof *ins->bands);
    for (size_t i = 0; i < ins->band_count; i++) {
        char f[S_FIELD_MAX], kf[S_FIELD_MAX];
        json_t *o = s_array_object(ctx, arr, "bands", i, keys, f);
        instrument_band_t *b = &ins->bands[i];
        if (!o || s_get_id(ctx, o, f, "id", &b->id) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(ins->bands[j].id, b->id) == 0)
                return s_fail(ctx, BC_INVALID_ARGUMENT, s_field(kf, f, "id"),
                              "duplicate band id \"%s\"", b->id);
        if (s_get_text(ctx, o, f, "label", true, S_MAX_TEXT_CHARS, &b->label) < 0 ||
            s_get_id(ctx, o, f, "score", &b->score) < 0)
            return -1;
        int lo = ins->total_min, hi = ins->total_max;
        b->subscale = -1;
        if (strcmp(b->score, "total") != 0) {
            for (size_t j = 0; j < ins->subscale_count && b->subscale < 0; j++)
                if (strcmp(ins->subscales[j].id, b->score) == 0)
                    b->subscale = (int)j;
            if (b->subscale < 0)
                return s_fail(ctx, BC_INVALID_ARGUMENT, s_field(kf, f, "score"),
                              "must be \"total\" or a subscale id, not \"%s\"", b->score);
            lo = ins->subscales[b->subscale].min;
            hi = ins->subscales[b->subscale].max;
        }
        if (s_get_int(ctx, o, f, "min", lo, hi, &b->min) < 0 ||
            s_get_int(ctx, o, f, "max", lo, hi, &b->max) < 0)
            return -1;
        if (b->min > b->max)
            return s_fail(ctx, BC_INVALID_ARGUMENT, s_field(kf, f, "min"),
                          "must not be greater than max (%d > %d)", b->min, b->max);
    }
    return 0;
}

/* Checks one parsed definition against the format; returns the instrument
 * (in the arena) or NULL with the error filled. */
static instrument_t *s_parse(s_ctx_t *ctx, json_t *root)
{
    static const char *const keys[] = {"id",           "version", "title", "citation",
                                       "instructions", "scale",   "items", "subscales",
                                       "scoring",      "bands",   NULL};
    if (!json_is_object(root)) {
        s_fail(ctx, BC_INVALID_ARGUMENT, "", "the definition must be a JSON object");
        return NULL;
    }
    instrument_t *ins = bc_arena_calloc(ctx->arena, sizeof *ins);
    ins->file = bc_arena_strdup(ctx->arena, ctx->file);
    if (s_check_keys(ctx, root, "", keys) < 0 || s_get_id(ctx, root, "", "id", &ins->id) < 0 ||
        s_get_text(ctx, root, "", "version", true, S_MAX_VERSION_CHARS, &ins->version) < 0 ||
        s_get_text(ctx, root, "", "title", true, S_MAX_TEXT_CHARS, &ins->title) < 0 ||
        s_get_text(ctx, root, "", "citation", true, S_MAX_LONG_TEXT_CHARS, &ins->citation) < 0 ||
        s_get_text(ctx, root, "", "instructions", false, S_MAX_LONG_TEXT_CHARS,
                   &ins->instructions) < 0 ||
        s_parse_scale(ctx, root, ins) < 0 || s_parse_items(ctx, root, ins) < 0 ||
        s_parse_subscales(ctx, root, ins) < 0 || s_parse_scoring(ctx, root, ins) < 0 ||
        s_parse_bands(ctx, root, ins) < 0)
        return NULL;
    return ins;
}

/* ---- Files ------------------------------------------------------------------------ */

/* Reads a regular file of at most INSTRUMENT_MAX_FILE_BYTES into a new
 * buffer (caller frees); NULL with the error filled. */
static char *s_read_file(s_ctx_t *ctx, size_t *len_out)
{
    /* Non-blocking so a FIFO planted in the directory cannot hang the
     * service; anything but a regular file is then refused. */
    int fd = open(ctx->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        s_fail(ctx, BC_NOT_FOUND, "", "cannot be opened");
        bc_error_detail(ctx->err, "%s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        s_fail(ctx, BC_INVALID_ARGUMENT, "", "is not a regular file");
        return NULL;
    }
    char *buf = bc_malloc(INSTRUMENT_MAX_FILE_BYTES + 1);
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, INSTRUMENT_MAX_FILE_BYTES + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            free(buf);
            s_fail(ctx, BC_INVALID_ARGUMENT, "", "cannot be read");
            bc_error_detail(ctx->err, "%s", strerror(e));
            return NULL;
        }
        len += (size_t)r;
        if (r == 0 || len > INSTRUMENT_MAX_FILE_BYTES)
            break;
    }
    close(fd);
    if (len > INSTRUMENT_MAX_FILE_BYTES) {
        free(buf);
        s_fail(ctx, BC_PAYLOAD_TOO_LARGE, "", "is larger than %d bytes", INSTRUMENT_MAX_FILE_BYTES);
        return NULL;
    }
    *len_out = len;
    return buf;
}

static instrument_t *s_load_file(s_ctx_t *ctx)
{
    size_t len;
    char *text = s_read_file(ctx, &len);
    if (!text)
        return NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root) {
        s_fail(ctx, BC_INVALID_ARGUMENT, "", "invalid JSON at line %d, column %d: %s", jerr.line,
               jerr.column, jerr.text);
        return NULL;
    }
    instrument_t *ins = s_parse(ctx, root);
    json_decref(root);
    return ins;
}

static bool s_is_definition_name(const char *name)
{
    size_t len = strlen(name);
    return name[0] != '.' && len > 5 && strcmp(name + len - 5, ".json") == 0;
}

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int s_cmp_instruments(const void *a, const void *b)
{
    return strcmp((*(instrument_t *const *)a)->id, (*(instrument_t *const *)b)->id);
}

/* The definition file names of dir, sorted; count in *n. NULL with the
 * error filled. The caller frees each name and the array. */
static char **s_list_dir(const char *dir, size_t *n, bc_error_t *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        bc_error_set(err, BC_NOT_FOUND, "", "instrument directory %s cannot be opened", dir);
        bc_error_detail(err, "%s", strerror(errno));
        return NULL;
    }
    char **names = bc_calloc(INSTRUMENT_MAX_FILES, sizeof *names);
    size_t count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!s_is_definition_name(de->d_name))
            continue;
        if (count == INSTRUMENT_MAX_FILES) {
            bc_error_set(err, BC_RESOURCE_EXHAUSTED, "",
                         "instrument directory %s holds more than %d definitions", dir,
                         INSTRUMENT_MAX_FILES);
            for (size_t i = 0; i < count; i++)
                free(names[i]);
            free(names);
            closedir(d);
            return NULL;
        }
        names[count++] = bc_strdup(de->d_name);
    }
    closedir(d);
    qsort(names, count, sizeof *names, s_cmp_names);
    *n = count;
    return names;
}

/* ---- Registry ----------------------------------------------------------------------- */

instrument_registry_t *instrument_registry_load(const char *dir, bc_error_t *err)
{
    size_t n = 0;
    char **names = s_list_dir(dir, &n, err);
    if (!names)
        return NULL;
    instrument_registry_t *self = bc_calloc(1, sizeof *self);
    self->arena = bc_arena_new(16 * 1024);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[PATH_MAX];
        s_ctx_t ctx = {.file = names[i], .path = path, .arena = self->arena, .err = err};
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path) {
            rc = s_fail(&ctx, BC_INVALID_ARGUMENT, "", "path is too long");
            break;
        }
        instrument_t *ins = s_load_file(&ctx);
        if (!ins) {
            rc = -1;
            break;
        }
        for (size_t j = 0; j < self->count; j++)
            if (strcmp(self->instruments[j]->id, ins->id) == 0) {
                rc = s_fail(&ctx, BC_ALREADY_EXISTS, "id",
                            "instrument \"%s\" is already defined in %s", ins->id,
                            self->instruments[j]->file);
                break;
            }
        if (rc == 0)
            self->instruments[self->count++] = ins;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc < 0) {
        instrument_registry_destroy(&self);
        return NULL;
    }
    qsort(self->instruments, self->count, sizeof self->instruments[0], s_cmp_instruments);
    return self;
}

void instrument_registry_destroy(instrument_registry_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bc_arena_destroy(&(*self_p)->arena);
    bc_free(self_p);
}

size_t instrument_registry_count(const instrument_registry_t *self)
{
    return self->count;
}

const instrument_t *instrument_registry_at(const instrument_registry_t *self, size_t i)
{
    return i < self->count ? self->instruments[i] : NULL;
}

const instrument_t *instrument_find(const instrument_registry_t *self, const char *id)
{
    if (!id)
        return NULL;
    for (size_t i = 0; i < self->count; i++)
        if (strcmp(self->instruments[i]->id, id) == 0)
            return self->instruments[i];
    return NULL;
}

/* ---- Accessors ------------------------------------------------------------------------ */

const char *instrument_id(const instrument_t *self)
{
    return self->id;
}

const char *instrument_version(const instrument_t *self)
{
    return self->version;
}

const char *instrument_title(const instrument_t *self)
{
    return self->title;
}

const char *instrument_citation(const instrument_t *self)
{
    return self->citation;
}

const char *instrument_instructions(const instrument_t *self)
{
    return self->instructions;
}

int instrument_total_min(const instrument_t *self)
{
    return self->total_min;
}

int instrument_total_max(const instrument_t *self)
{
    return self->total_max;
}

size_t instrument_item_count(const instrument_t *self)
{
    return self->item_count;
}

const instrument_item_t *instrument_item(const instrument_t *self, size_t i)
{
    return i < self->item_count ? &self->items[i] : NULL;
}

size_t instrument_scale_count(const instrument_t *self)
{
    return self->scale_count;
}

const instrument_scale_point_t *instrument_scale_point(const instrument_t *self, size_t i)
{
    return i < self->scale_count ? &self->scale[i] : NULL;
}

size_t instrument_subscale_count(const instrument_t *self)
{
    return self->subscale_count;
}

const instrument_subscale_t *instrument_subscale(const instrument_t *self, size_t i)
{
    return i < self->subscale_count ? &self->subscales[i] : NULL;
}

size_t instrument_band_count(const instrument_t *self)
{
    return self->band_count;
}

const instrument_band_t *instrument_band(const instrument_t *self, size_t i)
{
    return i < self->band_count ? &self->bands[i] : NULL;
}

/* ---- Scoring ---------------------------------------------------------------------------- */

int instrument_score(const instrument_t *self, const instrument_answer_t *answers, size_t n,
                     instrument_score_t *out, bc_error_t *err)
{
    bool seen[INSTRUMENT_MAX_ITEMS] = {false};
    int scored[INSTRUMENT_MAX_ITEMS];
    /* Every answer past item_count is necessarily unknown or repeated, so
     * the loop stops there at the latest whatever n the caller passed. */
    for (size_t i = 0; i < n; i++) {
        const instrument_answer_t *a = &answers[i];
        char f[S_FIELD_MAX];
        s_path(f, "answers[%zu].item_id", i);
        int k = a->item_id ? s_item_index(self, self->item_count, a->item_id) : -1;
        if (k < 0)
            return bc_error_set(err, BC_INVALID_ARGUMENT, f, "%s has no item \"%.64s\"", self->id,
                                a->item_id ? a->item_id : "");
        const instrument_item_t *item = &self->items[k];
        if (seen[k])
            return bc_error_set(err, BC_INVALID_ARGUMENT, f, "item \"%s\" is answered twice",
                                item->id);
        if (a->value < self->scale_min || a->value > self->scale_max) {
            s_path(f, "answers[%zu].value", i);
            return bc_error_set(err, BC_INVALID_ARGUMENT, f,
                                "value %d for item \"%s\" is outside the scale %d..%d", a->value,
                                item->id, self->scale_min, self->scale_max);
        }
        seen[k] = true;
        scored[k] = item->reverse ? self->scale_min + self->scale_max - a->value : a->value;
    }
    out->total = 0;
    for (size_t k = 0; k < self->item_count; k++) {
        if (!seen[k])
            return bc_error_set(err, BC_INVALID_ARGUMENT, "answers", "item \"%s\" has no answer",
                                self->items[k].id);
        out->total += scored[k];
    }
    out->subscale_count = self->subscale_count;
    for (size_t s = 0; s < self->subscale_count; s++) {
        const instrument_subscale_t *sub = &self->subscales[s];
        out->subscales[s] = 0;
        for (size_t j = 0; j < sub->item_count; j++)
            out->subscales[s] += scored[sub->items[j]];
    }
    out->band_count = 0;
    for (size_t b = 0; b < self->band_count; b++) {
        const instrument_band_t *band = &self->bands[b];
        int score = band->subscale < 0 ? out->total : out->subscales[band->subscale];
        if (score >= band->min && score <= band->max)
            out->bands[out->band_count++] = band;
    }
    return 0;
}
