/*  bc_json: the one JSON <-> protobuf converter (mapping in bc_json.h): JSON
 *  read into messages here, messages written as JSON in bc_json_write.c.
 *
 *  Both directions walk protobuf-c descriptors; the table bc_json_types holds
 *  each scalar type's name, element size and range, so no per-message code
 *  exists.
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
#include "bc_crypt.h"
#include "bc_json_private.h"

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

#define S_FLOAT_LIMIT 0x1.ffffffp+127     /* FLT_MAX + half an ulp: rounds to infinity */


const bc_json_type_t bc_json_types[] = {
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


/* ---------------------------------------------------------------------------
 * Shared helpers: errors, field paths, allocation, field storage */

/* The path as text; one too long for out is truncated. */
static void s_path_text(const bc_json_ctx_t *ctx, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    size_t n = ctx->nsteps < BC_JSON_STEPS_MAX ? ctx->nsteps : BC_JSON_STEPS_MAX;
    for (size_t i = 0; i < n && len < size; i++) {
        const bc_json_step_t *st = &ctx->steps[i];
        int w = st->key ? snprintf(out + len, size - len, "%s%s", len ? "." : "", st->key)
                        : snprintf(out + len, size - len, "[%zu]", st->index);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

int bc_json_fail(bc_json_ctx_t *ctx, const char *fmt, ...)
{
    char message[256], path[256];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    s_path_text(ctx, path, sizeof path);
    return bc_error_set(ctx->err, ctx->code, path, "%s", message);
}

int bc_json_fail_depth(bc_json_ctx_t *ctx)
{
    return bc_json_fail(ctx, "nesting deeper than %d levels", BC_JSON_MAX_DEPTH);
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
static void *s_alloc(bc_json_ctx_t *ctx, size_t size)
{
    void *ptr = ctx->allocator->alloc(ctx->allocator->allocator_data, size ? size : 1);
    if (!ptr)
        abort();
    return ptr;
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

/* Standard base64 with padding, canonical (unused low bits zero). */
static int s_base64_decode(bc_json_ctx_t *ctx, const char *s, size_t len, ProtobufCBinaryData *out)
{
    out->len = 0;
    out->data = NULL;
    if (len == 0)
        return 0;
    long n = bc_base64_length(s, len);
    if (n < 0)
        return -1;
    unsigned char *data = s_alloc(ctx, (size_t)n);
    bc_base64_decode(s, len, data);
    out->data = data;
    out->len = (size_t)n;
    return 0;
}

/* ---------------------------------------------------------------------------
 * JSON -> protobuf */

static ProtobufCMessage *s_message_from_json(bc_json_ctx_t *ctx, const json_t *json,
                                             const ProtobufCMessageDescriptor *desc, int depth);

static int s_int_from_json(bc_json_ctx_t *ctx, ProtobufCType type, const json_t *json, void *out)
{
    const bc_json_type_t *t = &bc_json_types[type];
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
            return bc_json_fail(ctx, "expected an integer");
        if (rc > 0)
            return bc_json_fail(ctx, "value out of range for %s", t->name);
    } else
        return bc_json_fail(ctx, "expected an integer");

    if (magnitude == 0)
        negative = false; /* "-0" */
    uint64_t negative_limit = t->min < 0 ? (uint64_t)(-(t->min + 1)) + 1 : 0;
    if (magnitude > (negative ? negative_limit : t->max))
        return bc_json_fail(ctx, "value out of range for %s", t->name);

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

static int s_real_from_json(bc_json_ctx_t *ctx, ProtobufCType type, const json_t *json, void *out)
{
    double d;
    if (json_is_number(json))
        d = json_number_value(json);
    else if (json_is_string(json) && (ctx->flags & BC_JSON_STRINGS)) {
        if (s_parse_real(json_string_value(json), json_string_length(json), &d) < 0)
            return bc_json_fail(ctx, "expected a number");
    } else
        return bc_json_fail(ctx, "expected a number");

    if (!isfinite(d) || (type == PROTOBUF_C_TYPE_FLOAT && fabs(d) >= S_FLOAT_LIMIT))
        return bc_json_fail(ctx, "value out of range for %s", bc_json_types[type].name);
    if (type == PROTOBUF_C_TYPE_FLOAT)
        *(float *)out = (float)d;
    else
        *(double *)out = d;
    return 0;
}

static int s_bool_from_json(bc_json_ctx_t *ctx, const json_t *json, protobuf_c_boolean *out)
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
    return bc_json_fail(ctx, "expected true or false");
}

static int s_enum_from_json(bc_json_ctx_t *ctx, const ProtobufCEnumDescriptor *desc, const json_t *json,
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
    return bc_json_fail(ctx, "expected one of %s", names);
}

static int s_string_from_json(bc_json_ctx_t *ctx, const json_t *json, char **out)
{
    if (!json_is_string(json))
        return bc_json_fail(ctx, "expected a string");
    const char *s = json_string_value(json);
    size_t len = json_string_length(json);
    if (memchr(s, '\0', len))
        return bc_json_fail(ctx, "must not contain NUL characters");
    char *copy = s_alloc(ctx, len + 1);
    memcpy(copy, s, len + 1);
    *out = copy;
    return 0;
}

/* Converts one value (not an array) into the storage at out. depth is the
 * nesting level of the JSON container holding json. */
static int s_value_from_json(bc_json_ctx_t *ctx, const ProtobufCFieldDescriptor *field,
                             const json_t *json, void *out, int depth)
{
    if (bc_json_is_integer(field->type))
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
            return bc_json_fail(ctx, "expected a base64 string");
        if (s_base64_decode(ctx, json_string_value(json), json_string_length(json), out) < 0)
            return bc_json_fail(ctx, "invalid base64 (standard alphabet, padded)");
        return 0;
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (!json_is_object(json))
            return bc_json_fail(ctx, "expected an object");
        ProtobufCMessage *sub = s_message_from_json(ctx, json, field->descriptor, depth + 1);
        if (!sub)
            return -1;
        *(ProtobufCMessage **)out = sub;
        return 0;
    }
    default:
        return bc_json_fail(ctx, "unsupported field type %d", (int)field->type);
    }
}

static int s_repeated_from_json(bc_json_ctx_t *ctx, ProtobufCMessage *msg,
                                const ProtobufCFieldDescriptor *field, const json_t *json,
                                int depth)
{
    if (!json_is_array(json))
        return bc_json_fail(ctx, "expected an array");
    if (depth + 1 > BC_JSON_MAX_DEPTH)
        return bc_json_fail_depth(ctx);
    size_t n = json_array_size(json);
    if (n == 0)
        return 0;
    size_t size = bc_json_types[field->type].size;
    char *array = s_alloc(ctx, n * size);
    memset(array, 0, n * size);
    /* count only holds converted elements, so free_unpacked can clean up */
    size_t *count = BC_JSON_MEMBER(size_t, msg, field->quantifier_offset);
    *BC_JSON_MEMBER(void *, msg, field->offset) = array;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t saved = bc_json_path_index(ctx, i);
        int rc =
            s_value_from_json(ctx, field, json_array_get(json, i), array + i * size, depth + 1);
        bc_json_path_pop(ctx, saved);
        if (rc < 0)
            return -1;
        (*count)++;
    }
    return 0;
}

static int s_oneof_conflict(bc_json_ctx_t *ctx, const ProtobufCMessageDescriptor *desc,
                            const ProtobufCFieldDescriptor *field)
{
    char names[200] = "";
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *other = &desc->fields[i];
        if (bc_json_is_oneof(other) && other->quantifier_offset == field->quantifier_offset)
            s_list_append(names, sizeof names, other->name);
    }
    return bc_json_fail(ctx, "only one of %s may be set", names);
}

static int s_field_from_json(bc_json_ctx_t *ctx, ProtobufCMessage *msg,
                             const ProtobufCFieldDescriptor *field, const json_t *json, int depth)
{
    if (field->label == PROTOBUF_C_LABEL_REPEATED)
        return s_repeated_from_json(ctx, msg, field, json, depth);
    uint32_t *oneof_case = NULL;
    if (bc_json_is_oneof(field)) {
        oneof_case = BC_JSON_MEMBER(uint32_t, msg, field->quantifier_offset);
        if (*oneof_case != 0)
            return s_oneof_conflict(ctx, msg->descriptor, field);
    }
    /* the value is stored only once complete, so a failure leaves nothing */
    if (s_value_from_json(ctx, field, json, BC_JSON_MEMBER(void, msg, field->offset), depth) < 0)
        return -1;
    if (oneof_case)
        *oneof_case = field->id;
    else if (field->label == PROTOBUF_C_LABEL_OPTIONAL && field->type != PROTOBUF_C_TYPE_STRING &&
             field->type != PROTOBUF_C_TYPE_MESSAGE)
        *BC_JSON_MEMBER(protobuf_c_boolean, msg, field->quantifier_offset) = 1;
    return 0;
}

static ProtobufCMessage *s_message_from_json(bc_json_ctx_t *ctx, const json_t *json,
                                             const ProtobufCMessageDescriptor *desc, int depth)
{
    if (depth > BC_JSON_MAX_DEPTH) {
        bc_json_fail_depth(ctx);
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
        size_t saved = bc_json_path_key(ctx, key);
        int rc = 0;
        if (!field)
            rc = bc_json_fail(ctx, "unknown field");
        else if (!json_is_null(value))
            rc = s_field_from_json(ctx, msg, field, value, depth);
        bc_json_path_pop(ctx, saved);
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
    bc_json_ctx_t ctx = {.allocator = allocator ? allocator : &s_system_allocator,
                   .flags = flags,
                   .code = BC_INVALID_ARGUMENT,
                   .err = err};
    if (!json_is_object(json)) {
        bc_json_fail(&ctx, "expected a JSON object");
        return NULL;
    }
    return s_message_from_json(&ctx, json, desc, 1);
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
