/*  bc_json: the one JSON <-> protobuf converter (mapping in bc_json.h).
 *
 *  Both directions walk protobuf-c descriptors; the table s_types holds each
 *  scalar type's name, element size and range, so no per-message code exists.
 *  bc_json_to_pb allocates every string, buffer, array and sub-message through
 *  the caller's allocator, keeping the message consistent after each step so
 *  that on error protobuf_c_message_free_unpacked frees what was built.
 *  Recursion in both directions stops at BC_JSON_MAX_DEPTH levels of JSON
 *  nesting (an object or array is one level; the top-level object is 1).
 *
 *  Choices the header leaves open:
 *  - Integer fields take JSON integers only (1.0 and 1e3 are refused).
 *  - Input numbers must be finite. On output a NaN or infinite float/double is
 *    written as the string "NaN", "Infinity" or "-Infinity" (as protobuf's
 *    JSON mapping does); input refuses those strings.
 *  - A float is written as the shortest decimal that reads back as the same
 *    float (0.1f gives 0.1, not 0.10000000149011612).
 *  - An enum value with no name (an open proto3 enum from a newer peer) is
 *    written as its number; input still takes names only.
 *  - With BC_JSON_EMIT_DEFAULTS an unset sub-message is written as null and
 *    empty repeated fields as []; oneof members not set are never written.
 *  - BC_JSON_STRINGS converts strings to numbers and bools only (never to
 *    enums by number); repeated fields still need a JSON array.
 *  - Errors in bc_pb_to_json (invalid UTF-8, NULL elements, too deep) are
 *    BC_INTERNAL: the message came from our own code.
 */
#include "bc_json.h"

#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#define S_MAX_SAFE_INT (INT64_C(1) << 53) /* larger int64s are written as strings */
#define S_FLOAT_LIMIT 0x1.ffffffp+127     /* FLT_MAX + half an ulp: rounds to infinity */

typedef struct {
    const char *name; /* for messages: "value out of range for int32" */
    size_t size;      /* bytes per element in a repeated array */
    bool is_unsigned;
    int64_t min; /* integer types only */
    uint64_t max;
} s_type_t;

static const s_type_t s_types[] = {
    [PROTOBUF_C_TYPE_INT32] = {"int32", 4, false, INT32_MIN, INT32_MAX},
    [PROTOBUF_C_TYPE_SINT32] = {"sint32", 4, false, INT32_MIN, INT32_MAX},
    [PROTOBUF_C_TYPE_SFIXED32] = {"sfixed32", 4, false, INT32_MIN, INT32_MAX},
    [PROTOBUF_C_TYPE_INT64] = {"int64", 8, false, INT64_MIN, INT64_MAX},
    [PROTOBUF_C_TYPE_SINT64] = {"sint64", 8, false, INT64_MIN, INT64_MAX},
    [PROTOBUF_C_TYPE_SFIXED64] = {"sfixed64", 8, false, INT64_MIN, INT64_MAX},
    [PROTOBUF_C_TYPE_UINT32] = {"uint32", 4, true, 0, UINT32_MAX},
    [PROTOBUF_C_TYPE_FIXED32] = {"fixed32", 4, true, 0, UINT32_MAX},
    [PROTOBUF_C_TYPE_UINT64] = {"uint64", 8, true, 0, UINT64_MAX},
    [PROTOBUF_C_TYPE_FIXED64] = {"fixed64", 8, true, 0, UINT64_MAX},
    [PROTOBUF_C_TYPE_FLOAT] = {"float", sizeof(float)},
    [PROTOBUF_C_TYPE_DOUBLE] = {"double", sizeof(double)},
    [PROTOBUF_C_TYPE_BOOL] = {"bool", sizeof(protobuf_c_boolean)},
    [PROTOBUF_C_TYPE_ENUM] = {"enum", sizeof(int)},
    [PROTOBUF_C_TYPE_STRING] = {"string", sizeof(char *)},
    [PROTOBUF_C_TYPE_BYTES] = {"bytes", sizeof(ProtobufCBinaryData)},
    [PROTOBUF_C_TYPE_MESSAGE] = {"message", sizeof(ProtobufCMessage *)},
};

static const char s_base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* One step of the path to the value being converted: a key or an index. */
typedef struct {
    const char *key; /* NULL: an array index */
    size_t index;
} s_step_t;

#define S_STEPS_MAX 72 /* two per level of nesting, and some */

/* One conversion: where it allocates, how it reports and where it is. The
 * path ("address.lines[2]") is kept as steps and written out only for an
 * error: formatting it for every field was a tenth of a large reply's cost. */
typedef struct {
    ProtobufCAllocator *allocator;
    int flags;
    bc_code_t code; /* code for errors in this direction */
    bc_error_t *err;
    s_step_t steps[S_STEPS_MAX];
    size_t nsteps; /* may exceed S_STEPS_MAX: the steps beyond are not kept */
} s_ctx_t;

/* ---------------------------------------------------------------------------
 * Shared helpers: errors, field paths, allocation, field storage */

/* The path as text; one too long for out is truncated. */
static void s_path_text(const s_ctx_t *ctx, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    size_t n = ctx->nsteps < S_STEPS_MAX ? ctx->nsteps : S_STEPS_MAX;
    for (size_t i = 0; i < n && len < size; i++) {
        const s_step_t *st = &ctx->steps[i];
        int w = st->key ? snprintf(out + len, size - len, "%s%s", len ? "." : "", st->key)
                        : snprintf(out + len, size - len, "[%zu]", st->index);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

static int s_fail(s_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int s_fail(s_ctx_t *ctx, const char *fmt, ...)
{
    char message[256], path[256];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    s_path_text(ctx, path, sizeof path);
    return bc_error_set(ctx->err, ctx->code, path, "%s", message);
}

static int s_fail_depth(s_ctx_t *ctx)
{
    return s_fail(ctx, "nesting deeper than %d levels", BC_JSON_MAX_DEPTH);
}

/* Appends ".key" (or "key" at the top) to the path; returns what to restore
 * with s_path_pop. key must outlive the step. */
static size_t s_path_key(s_ctx_t *ctx, const char *key)
{
    if (ctx->nsteps < S_STEPS_MAX)
        ctx->steps[ctx->nsteps] = (s_step_t){key, 0};
    return ctx->nsteps++;
}

static size_t s_path_index(s_ctx_t *ctx, size_t index)
{
    if (ctx->nsteps < S_STEPS_MAX)
        ctx->steps[ctx->nsteps] = (s_step_t){NULL, index};
    return ctx->nsteps++;
}

static void s_path_pop(s_ctx_t *ctx, size_t saved)
{
    ctx->nsteps = saved;
}

/* Appends name to a ", "-separated list in buf, ending it with "..." when
 * the next name does not fit. */
static void s_list_append(char *buf, size_t size, const char *name)
{
    size_t used = strlen(buf);
    if (used >= 3 && strcmp(buf + used - 3, "...") == 0)
        return;
    const char *sep = used ? ", " : "";
    if (used + strlen(sep) + strlen(name) + sizeof ", ..." > size)
        snprintf(buf + used, size - used, "%s...", sep);
    else
        snprintf(buf + used, size - used, "%s%s", sep, name);
}

/* Out of memory aborts, as everywhere in Beacon (bc_mem.h). */
static void *s_alloc(s_ctx_t *ctx, size_t size)
{
    void *ptr = ctx->allocator->alloc(ctx->allocator->allocator_data, size ? size : 1);
    if (!ptr)
        abort();
    return ptr;
}

static void s_free(s_ctx_t *ctx, void *ptr)
{
    ctx->allocator->free(ctx->allocator->allocator_data, ptr);
}

/* protobuf-c's own default allocator is not exported; this one is
 * interchangeable with it (free_unpacked with NULL calls free()). */
static void *s_system_alloc(void *data, size_t size)
{
    (void)data;
    return malloc(size);
}

static void s_system_free(void *data, void *ptr)
{
    (void)data;
    free(ptr);
}

static ProtobufCAllocator s_system_allocator = {s_system_alloc, s_system_free, NULL};

#define S_MEMBER(type, msg, offset) ((type *)((char *)(msg) + (offset)))

static bool s_is_oneof(const ProtobufCFieldDescriptor *field)
{
    return (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
}

static bool s_is_integer(ProtobufCType type)
{
    return type <= PROTOBUF_C_TYPE_FIXED64;
}

/* ---------------------------------------------------------------------------
 * Strict parsers for strings */

/* "-123" / "123": optional minus, then one or more decimal digits and nothing
 * else. Returns 0, -1 on bad syntax, 1 when the magnitude exceeds 64 bits. */
static int s_parse_decimal(const char *s, size_t len, bool *negative, uint64_t *magnitude)
{
    size_t i = (len > 0 && s[0] == '-') ? 1 : 0;
    bool overflow = false;
    *negative = i == 1;
    *magnitude = 0;
    if (i == len)
        return -1;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned digit = (unsigned)(s[i] - '0');
        if (*magnitude > (UINT64_MAX - digit) / 10)
            overflow = true;
        else
            *magnitude = *magnitude * 10 + digit;
    }
    return overflow ? 1 : 0;
}

/* A JSON-like number: starts with a digit or '-', holds only number
 * characters (so no spaces, "inf", "nan" or hex) and parses whole.
 * jansson strings are NUL-terminated, which strtod needs. Assumes the C
 * locale for the decimal point, as the rest of Beacon does. */
static int s_parse_real(const char *s, size_t len, double *out)
{
    if (len == 0 || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
        return -1;
    if (strspn(s, "0123456789+-.eE") != len)
        return -1;
    char *end;
    *out = strtod(s, &end);
    if (end != s + len)
        return -1;
    return 0;
}

static const char *s_base64_find(char c)
{
    return c ? strchr(s_base64_alphabet, c) : NULL;
}

/* Standard base64 with padding, canonical (unused low bits zero). */
static int s_base64_decode(s_ctx_t *ctx, const char *s, size_t len, ProtobufCBinaryData *out)
{
    out->len = 0;
    out->data = NULL;
    if (len == 0)
        return 0;
    if (len % 4 != 0 || len > INT_MAX)
        return -1;
    size_t pad = s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < len - pad; i++)
        if (!s_base64_find(s[i]))
            return -1;
    if (pad) {
        size_t last = (size_t)(s_base64_find(s[len - pad - 1]) - s_base64_alphabet);
        if (last & (pad == 1 ? 0x3 : 0xf))
            return -1;
    }
    unsigned char *data = s_alloc(ctx, len / 4 * 3);
    int n = EVP_DecodeBlock(data, (const unsigned char *)s, (int)len);
    if (n < 0 || (size_t)n != len / 4 * 3) {
        s_free(ctx, data);
        return -1;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes */
    out->data = data;
    out->len = (size_t)n - pad;
    return 0;
}

/* ---------------------------------------------------------------------------
 * JSON -> protobuf */

static ProtobufCMessage *s_message_from_json(s_ctx_t *ctx, const json_t *json,
                                             const ProtobufCMessageDescriptor *desc, int depth);

static int s_int_from_json(s_ctx_t *ctx, ProtobufCType type, const json_t *json, void *out)
{
    const s_type_t *t = &s_types[type];
    bool negative = false;
    uint64_t magnitude = 0;
    if (json_is_integer(json)) {
        json_int_t v = json_integer_value(json);
        negative = v < 0;
        magnitude = negative ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    } else if (json_is_string(json) && (t->size == 8 || (ctx->flags & BC_JSON_STRINGS))) {
        int rc = s_parse_decimal(json_string_value(json), json_string_length(json), &negative,
                                 &magnitude);
        if (rc < 0)
            return s_fail(ctx, "expected an integer");
        if (rc > 0)
            return s_fail(ctx, "value out of range for %s", t->name);
    } else
        return s_fail(ctx, "expected an integer");

    if (magnitude == 0)
        negative = false; /* "-0" */
    uint64_t negative_limit = t->min < 0 ? (uint64_t)(-(t->min + 1)) + 1 : 0;
    if (magnitude > (negative ? negative_limit : t->max))
        return s_fail(ctx, "value out of range for %s", t->name);

    if (t->is_unsigned) {
        if (t->size == 4)
            *(uint32_t *)out = (uint32_t)magnitude;
        else
            *(uint64_t *)out = magnitude;
    } else {
        int64_t v = negative ? -(int64_t)(magnitude - 1) - 1 : (int64_t)magnitude;
        if (t->size == 4)
            *(int32_t *)out = (int32_t)v;
        else
            *(int64_t *)out = v;
    }
    return 0;
}

static int s_real_from_json(s_ctx_t *ctx, ProtobufCType type, const json_t *json, void *out)
{
    double d;
    if (json_is_number(json))
        d = json_number_value(json);
    else if (json_is_string(json) && (ctx->flags & BC_JSON_STRINGS)) {
        if (s_parse_real(json_string_value(json), json_string_length(json), &d) < 0)
            return s_fail(ctx, "expected a number");
    } else
        return s_fail(ctx, "expected a number");

    if (!isfinite(d) || (type == PROTOBUF_C_TYPE_FLOAT && fabs(d) >= S_FLOAT_LIMIT))
        return s_fail(ctx, "value out of range for %s", s_types[type].name);
    if (type == PROTOBUF_C_TYPE_FLOAT)
        *(float *)out = (float)d;
    else
        *(double *)out = d;
    return 0;
}

static int s_bool_from_json(s_ctx_t *ctx, const json_t *json, protobuf_c_boolean *out)
{
    if (json_is_boolean(json)) {
        *out = json_is_true(json);
        return 0;
    }
    if (json_is_string(json) && (ctx->flags & BC_JSON_STRINGS)) {
        const char *s = json_string_value(json);
        size_t len = json_string_length(json);
        if (len == 4 && memcmp(s, "true", 4) == 0) {
            *out = 1;
            return 0;
        }
        if (len == 5 && memcmp(s, "false", 5) == 0) {
            *out = 0;
            return 0;
        }
    }
    return s_fail(ctx, "expected true or false");
}

static int s_enum_from_json(s_ctx_t *ctx, const ProtobufCEnumDescriptor *desc, const json_t *json,
                            int *out)
{
    if (json_is_string(json)) {
        const char *name = json_string_value(json);
        const ProtobufCEnumValue *value = protobuf_c_enum_descriptor_get_value_by_name(desc, name);
        if (value && strlen(name) == json_string_length(json)) {
            *out = value->value;
            return 0;
        }
    }
    char names[200] = "";
    for (unsigned i = 0; i < desc->n_values; i++)
        s_list_append(names, sizeof names, desc->values[i].name);
    return s_fail(ctx, "expected one of %s", names);
}

static int s_string_from_json(s_ctx_t *ctx, const json_t *json, char **out)
{
    if (!json_is_string(json))
        return s_fail(ctx, "expected a string");
    const char *s = json_string_value(json);
    size_t len = json_string_length(json);
    if (memchr(s, '\0', len))
        return s_fail(ctx, "must not contain NUL characters");
    char *copy = s_alloc(ctx, len + 1);
    memcpy(copy, s, len + 1);
    *out = copy;
    return 0;
}

/* Converts one value (not an array) into the storage at out. depth is the
 * nesting level of the JSON container holding json. */
static int s_value_from_json(s_ctx_t *ctx, const ProtobufCFieldDescriptor *field,
                             const json_t *json, void *out, int depth)
{
    if (s_is_integer(field->type))
        return s_int_from_json(ctx, field->type, json, out);
    switch (field->type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return s_real_from_json(ctx, field->type, json, out);
    case PROTOBUF_C_TYPE_BOOL:
        return s_bool_from_json(ctx, json, out);
    case PROTOBUF_C_TYPE_ENUM:
        return s_enum_from_json(ctx, field->descriptor, json, out);
    case PROTOBUF_C_TYPE_STRING:
        return s_string_from_json(ctx, json, out);
    case PROTOBUF_C_TYPE_BYTES:
        if (!json_is_string(json))
            return s_fail(ctx, "expected a base64 string");
        if (s_base64_decode(ctx, json_string_value(json), json_string_length(json), out) < 0)
            return s_fail(ctx, "invalid base64 (standard alphabet, padded)");
        return 0;
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (!json_is_object(json))
            return s_fail(ctx, "expected an object");
        ProtobufCMessage *sub = s_message_from_json(ctx, json, field->descriptor, depth + 1);
        if (!sub)
            return -1;
        *(ProtobufCMessage **)out = sub;
        return 0;
    }
    default:
        return s_fail(ctx, "unsupported field type %d", (int)field->type);
    }
}

static int s_repeated_from_json(s_ctx_t *ctx, ProtobufCMessage *msg,
                                const ProtobufCFieldDescriptor *field, const json_t *json,
                                int depth)
{
    if (!json_is_array(json))
        return s_fail(ctx, "expected an array");
    if (depth + 1 > BC_JSON_MAX_DEPTH)
        return s_fail_depth(ctx);
    size_t n = json_array_size(json);
    if (n == 0)
        return 0;
    size_t size = s_types[field->type].size;
    char *array = s_alloc(ctx, n * size);
    memset(array, 0, n * size);
    /* count only holds converted elements, so free_unpacked can clean up */
    size_t *count = S_MEMBER(size_t, msg, field->quantifier_offset);
    *S_MEMBER(void *, msg, field->offset) = array;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t saved = s_path_index(ctx, i);
        int rc =
            s_value_from_json(ctx, field, json_array_get(json, i), array + i * size, depth + 1);
        s_path_pop(ctx, saved);
        if (rc < 0)
            return -1;
        (*count)++;
    }
    return 0;
}

static int s_oneof_conflict(s_ctx_t *ctx, const ProtobufCMessageDescriptor *desc,
                            const ProtobufCFieldDescriptor *field)
{
    char names[200] = "";
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *other = &desc->fields[i];
        if (s_is_oneof(other) && other->quantifier_offset == field->quantifier_offset)
            s_list_append(names, sizeof names, other->name);
    }
    return s_fail(ctx, "only one of %s may be set", names);
}

static int s_field_from_json(s_ctx_t *ctx, ProtobufCMessage *msg,
                             const ProtobufCFieldDescriptor *field, const json_t *json, int depth)
{
    if (field->label == PROTOBUF_C_LABEL_REPEATED)
        return s_repeated_from_json(ctx, msg, field, json, depth);
    uint32_t *oneof_case = NULL;
    if (s_is_oneof(field)) {
        oneof_case = S_MEMBER(uint32_t, msg, field->quantifier_offset);
        if (*oneof_case != 0)
            return s_oneof_conflict(ctx, msg->descriptor, field);
    }
    /* the value is stored only once complete, so a failure leaves nothing */
    if (s_value_from_json(ctx, field, json, S_MEMBER(void, msg, field->offset), depth) < 0)
        return -1;
    if (oneof_case)
        *oneof_case = field->id;
    else if (field->label == PROTOBUF_C_LABEL_OPTIONAL && field->type != PROTOBUF_C_TYPE_STRING &&
             field->type != PROTOBUF_C_TYPE_MESSAGE)
        *S_MEMBER(protobuf_c_boolean, msg, field->quantifier_offset) = 1;
    return 0;
}

static ProtobufCMessage *s_message_from_json(s_ctx_t *ctx, const json_t *json,
                                             const ProtobufCMessageDescriptor *desc, int depth)
{
    if (depth > BC_JSON_MAX_DEPTH) {
        s_fail_depth(ctx);
        return NULL;
    }
    ProtobufCMessage *msg = s_alloc(ctx, desc->sizeof_message);
    protobuf_c_message_init(desc, msg);
    /* jansson's iterators take non-const objects but do not modify them */
    json_t *object = (json_t *)json;
    for (void *it = json_object_iter(object); it; it = json_object_iter_next(object, it)) {
        const char *key = json_object_iter_key(it);
        const json_t *value = json_object_iter_value(it);
        const ProtobufCFieldDescriptor *field = NULL;
        if (strlen(key) == json_object_iter_key_len(it))
            field = protobuf_c_message_descriptor_get_field_by_name(desc, key);
        size_t saved = s_path_key(ctx, key);
        int rc = 0;
        if (!field)
            rc = s_fail(ctx, "unknown field");
        else if (!json_is_null(value))
            rc = s_field_from_json(ctx, msg, field, value, depth);
        s_path_pop(ctx, saved);
        if (rc < 0) {
            protobuf_c_message_free_unpacked(msg, ctx->allocator);
            return NULL;
        }
    }
    return msg;
}

ProtobufCMessage *bc_json_to_pb(const json_t *json, const ProtobufCMessageDescriptor *desc,
                                ProtobufCAllocator *allocator, int flags, bc_error_t *err)
{
    assert(desc);
    s_ctx_t ctx = {.allocator = allocator ? allocator : &s_system_allocator,
                   .flags = flags,
                   .code = BC_INVALID_ARGUMENT,
                   .err = err};
    if (!json_is_object(json)) {
        s_fail(&ctx, "expected a JSON object");
        return NULL;
    }
    return s_message_from_json(&ctx, json, desc, 1);
}

/* ---------------------------------------------------------------------------
 * protobuf -> JSON
 *
 * Written straight into one growing buffer, not built as a jansson tree and
 * then dumped: a reply of thousands of rows would otherwise cost a malloc per
 * value and a second pass over the whole document. The text is what jansson
 * would print with JSON_COMPACT, keys in field order. */

typedef struct {
    char *data;
    size_t len, cap;
} s_out_t;

static void s_out_reserve(s_out_t *out, size_t more)
{
    if (out->len + more + 1 <= out->cap)
        return;
    size_t cap = out->cap ? out->cap : 1024;
    while (cap < out->len + more + 1)
        cap *= 2;
    out->data = realloc(out->data, cap);
    if (!out->data)
        abort();
    out->cap = cap;
}

static void s_out_put(s_out_t *out, const char *s, size_t n)
{
    s_out_reserve(out, n);
    memcpy(out->data + out->len, s, n);
    out->len += n;
}

static void s_out_char(s_out_t *out, char c)
{
    s_out_reserve(out, 1);
    out->data[out->len++] = c;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), 0 when it is not one. */
static size_t s_utf8_length(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* A JSON string: quotes, backslashes and control characters escaped,
 * everything else copied in runs. -1 when s is not valid UTF-8. */
static int s_out_string(s_out_t *out, const char *str, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str;
    s_out_reserve(out, len + 2);
    out->data[out->len++] = '"';
    size_t run = 0, i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = s_utf8_length(s + i, len - i);
            if (!n)
                return -1;
            i += n;
            continue;
        }
        s_out_put(out, str + run, i - run);
        char esc[6] = {'\\', 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        s_out_put(out, esc, n);
        run = ++i;
    }
    s_out_put(out, str + run, len - run);
    s_out_char(out, '"');
    return 0;
}

static void s_out_real(s_out_t *out, double d, bool is_float)
{
    if (isnan(d)) {
        s_out_put(out, "\"NaN\"", 5);
        return;
    }
    if (isinf(d)) {
        if (d > 0)
            s_out_put(out, "\"Infinity\"", 10);
        else
            s_out_put(out, "\"-Infinity\"", 11);
        return;
    }
    /* the shortest decimal that reads back as the same float or double */
    char buf[40];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(buf, sizeof buf, "%.*g", precision, d);
        double back = strtod(buf, NULL);
        if (is_float ? (float)back == (float)d : back == d)
            break;
    }
    /* a number with no '.' or exponent would read back as an integer */
    if (!strpbrk(buf, ".e"))
        strcat(buf, ".0");
    s_out_put(out, buf, strlen(buf));
}

static int s_out_bytes(s_ctx_t *ctx, s_out_t *out, const ProtobufCBinaryData *bytes)
{
    if (bytes->len > (size_t)INT_MAX / 4 * 3)
        return s_fail(ctx, "bytes value too large");
    size_t len = (bytes->len + 2) / 3 * 4;
    s_out_reserve(out, len + 2);
    out->data[out->len++] = '"';
    if (bytes->len)
        EVP_EncodeBlock((unsigned char *)out->data + out->len, bytes->data, (int)bytes->len);
    out->len += len;
    out->data[out->len++] = '"';
    return 0;
}

static int s_message_out(s_ctx_t *ctx, s_out_t *out, const ProtobufCMessage *msg, int depth);

/* An integer in decimal (printf is a tenth of a reply's cost otherwise);
 * beyond 2^53 quoted, as a JSON reader would lose digits. */
static void s_out_integer(s_out_t *out, bool negative, uint64_t magnitude)
{
    char buf[24];
    char *p = buf + sizeof buf;
    bool quoted = magnitude > (uint64_t)S_MAX_SAFE_INT;
    if (quoted)
        *--p = '"';
    do {
        *--p = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (negative)
        *--p = '-';
    if (quoted)
        *--p = '"';
    s_out_put(out, p, (size_t)(buf + sizeof buf - p));
}

static void s_out_int64(s_out_t *out, int64_t v)
{
    s_out_integer(out, v < 0, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

/* One value (not an array) at ptr. -1 with ctx's error set. */
static int s_value_out(s_ctx_t *ctx, s_out_t *out, const ProtobufCFieldDescriptor *field,
                       const void *ptr, int depth)
{
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        s_out_int64(out, *(const int32_t *)ptr);
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        s_out_integer(out, false, *(const uint32_t *)ptr);
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        s_out_int64(out, *(const int64_t *)ptr);
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        s_out_integer(out, false, *(const uint64_t *)ptr);
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
        s_out_real(out, *(const float *)ptr, true);
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        s_out_real(out, *(const double *)ptr, false);
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (*(const protobuf_c_boolean *)ptr)
            s_out_put(out, "true", 4);
        else
            s_out_put(out, "false", 5);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)ptr;
        const ProtobufCEnumValue *value =
            protobuf_c_enum_descriptor_get_value(field->descriptor, v);
        if (value)
            return s_out_string(out, value->name, strlen(value->name));
        s_out_int64(out, v);
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *str = *(char *const *)ptr;
        if (str && s_out_string(out, str, strlen(str)) < 0)
            return s_fail(ctx, "string is not valid UTF-8");
        if (!str)
            s_out_put(out, "\"\"", 2);
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return s_out_bytes(ctx, out, ptr);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)ptr;
        if (sub)
            return s_message_out(ctx, out, sub, depth + 1);
        s_out_put(out, "null", 4);
        return 0;
    }
    default:
        return s_fail(ctx, "unsupported field type %d", (int)field->type);
    }
}

static int s_repeated_out(s_ctx_t *ctx, s_out_t *out, const ProtobufCMessage *msg,
                          const ProtobufCFieldDescriptor *field, int depth)
{
    if (depth + 1 > BC_JSON_MAX_DEPTH)
        return s_fail_depth(ctx);
    size_t n = *S_MEMBER(const size_t, msg, field->quantifier_offset);
    const char *array = *S_MEMBER(char *const, msg, field->offset);
    size_t size = s_types[field->type].size;
    bool pointers = field->type == PROTOBUF_C_TYPE_STRING || field->type == PROTOBUF_C_TYPE_MESSAGE;
    if (n > 0 && !array)
        return s_fail(ctx, "malformed message: %zu elements but no array", n);
    s_out_char(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            s_out_char(out, ',');
        size_t saved = s_path_index(ctx, i);
        int rc = pointers && !*(void *const *)(array + i * size)
                     ? s_fail(ctx, "malformed message: NULL element")
                     : s_value_out(ctx, out, field, array + i * size, depth + 1);
        if (rc < 0)
            return -1;
        s_path_pop(ctx, saved);
    }
    s_out_char(out, ']');
    return 0;
}

static bool s_is_default(const ProtobufCFieldDescriptor *field, const void *ptr)
{
    if (s_is_integer(field->type))
        return s_types[field->type].size == 4 ? *(const uint32_t *)ptr == 0
                                              : *(const uint64_t *)ptr == 0;
    switch (field->type) {
    case PROTOBUF_C_TYPE_FLOAT: /* bits, as protobuf-c does: -0.0 is not the default */
        return *(const uint32_t *)ptr == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const uint64_t *)ptr == 0;
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)ptr;
    case PROTOBUF_C_TYPE_ENUM:
        return *(const int *)ptr == 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)ptr;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)ptr)->len == 0;
    default:
        return *(ProtobufCMessage *const *)ptr == NULL;
    }
}

/* Whether the field is written: set oneof members, present optionals,
 * non-default proto3 values (all of them with emit_defaults). */
static bool s_field_is_written(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field,
                               bool emit_defaults)
{
    const void *ptr = S_MEMBER(const void, msg, field->offset);
    if (s_is_oneof(field))
        return *S_MEMBER(const uint32_t, msg, field->quantifier_offset) == field->id;
    switch (field->label) {
    case PROTOBUF_C_LABEL_REQUIRED:
        return true;
    case PROTOBUF_C_LABEL_OPTIONAL:
        if (field->type == PROTOBUF_C_TYPE_STRING || field->type == PROTOBUF_C_TYPE_MESSAGE)
            return *(void *const *)ptr != NULL;
        return *S_MEMBER(const protobuf_c_boolean, msg, field->quantifier_offset);
    case PROTOBUF_C_LABEL_REPEATED:
        return emit_defaults || *S_MEMBER(const size_t, msg, field->quantifier_offset) > 0;
    default:
        return emit_defaults || !s_is_default(field, ptr);
    }
}

static int s_message_out(s_ctx_t *ctx, s_out_t *out, const ProtobufCMessage *msg, int depth)
{
    if (depth > BC_JSON_MAX_DEPTH)
        return s_fail_depth(ctx);
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    s_out_char(out, '{');
    bool first = true;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *field = &desc->fields[i];
        if (!s_field_is_written(msg, field, ctx->flags & BC_JSON_EMIT_DEFAULTS))
            continue;
        if (!first)
            s_out_char(out, ',');
        first = false;
        /* .proto field names are ASCII identifiers: nothing to escape */
        size_t name_len = strlen(field->name);
        s_out_reserve(out, name_len + 3);
        out->data[out->len++] = '"';
        memcpy(out->data + out->len, field->name, name_len);
        out->len += name_len;
        memcpy(out->data + out->len, "\":", 2);
        out->len += 2;
        size_t saved = s_path_key(ctx, field->name);
        int rc = field->label == PROTOBUF_C_LABEL_REPEATED
                     ? s_repeated_out(ctx, out, msg, field, depth)
                     : s_value_out(ctx, out, field, S_MEMBER(const void, msg, field->offset),
                                   depth);
        if (rc < 0)
            return -1;
        s_path_pop(ctx, saved);
    }
    s_out_char(out, '}');
    return 0;
}

char *bc_pb_to_json_text(const ProtobufCMessage *msg, int flags, size_t *len, bc_error_t *err)
{
    assert(msg && msg->descriptor);
    s_ctx_t ctx = {
        .allocator = &s_system_allocator, .flags = flags, .code = BC_INTERNAL, .err = err};
    s_out_t out = {0};
    if (s_message_out(&ctx, &out, msg, 1) < 0) {
        free(out.data);
        return NULL;
    }
    out.data[out.len] = '\0';
    if (len)
        *len = out.len;
    return out.data;
}

json_t *bc_pb_to_json(const ProtobufCMessage *msg, int flags, bc_error_t *err)
{
    size_t len;
    char *text = bc_pb_to_json_text(msg, flags, &len, err);
    if (!text)
        return NULL;
    json_error_t jerr;
    json_t *json = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    free(text);
    if (!json)
        bc_error_set(err, BC_INTERNAL, "", "written JSON does not read back: %s", jerr.text);
    return json;
}

/* ---------------------------------------------------------------------------
 * Depth */

typedef struct {
    json_t *node;
    void *iter;   /* objects */
    size_t index; /* arrays */
} s_frame_t;

static s_frame_t s_frame(json_t *node)
{
    return (s_frame_t){node, json_is_object(node) ? json_object_iter(node) : NULL, 0};
}

int bc_json_depth(const json_t *json, int limit)
{
    if (!json_is_object(json) && !json_is_array(json))
        return 0;
    if (limit < 1)
        return 1;
    /* an explicit stack, so hostile nesting cannot exhaust the C stack */
    size_t capacity = 16, top = 0;
    s_frame_t *stack = malloc(capacity * sizeof *stack);
    if (!stack)
        abort();
    stack[0] = s_frame((json_t *)json);
    int depth = 1;
    for (;;) {
        s_frame_t *frame = &stack[top];
        json_t *child = NULL;
        if (json_is_object(frame->node) && frame->iter) {
            child = json_object_iter_value(frame->iter);
            frame->iter = json_object_iter_next(frame->node, frame->iter);
        } else if (json_is_array(frame->node) && frame->index < json_array_size(frame->node))
            child = json_array_get(frame->node, frame->index++);
        if (!child) {
            if (top == 0)
                break;
            top--;
            continue;
        }
        if (!json_is_object(child) && !json_is_array(child))
            continue;
        int child_depth = (int)top + 2;
        if (child_depth > limit) {
            depth = limit + 1;
            break;
        }
        if (child_depth > depth)
            depth = child_depth;
        if (++top == capacity) {
            capacity *= 2;
            stack = realloc(stack, capacity * sizeof *stack);
            if (!stack)
                abort();
        }
        stack[top] = s_frame(child);
    }
    free(stack);
    return depth;
}
