/*  bc_json_write: messages written as JSON text (the mapping is in
 *  bc_json.h; reading is bc_json.c).
 *
 *  Written straight into one growing buffer, not built as a jansson tree and
 *  then dumped: a reply of thousands of rows would otherwise cost a malloc
 *  per value and a second pass over the whole document. The text is what
 *  jansson would print with JSON_COMPACT, keys in field order. Choices:
 *  - integers beyond 2^53 are written as strings (a JSON reader would lose
 *    digits); a NaN or infinite float/double as "NaN", "Infinity" or
 *    "-Infinity";
 *  - a float or double as the shortest decimal that reads back as the same
 *    value, always with a '.' or an exponent (so it reads back as a real);
 *  - an enum value with no name (an open proto3 enum from a newer peer) as
 *    its number;
 *  - with BC_JSON_EMIT_DEFAULTS an unset sub-message is null and an empty
 *    repeated field []; oneof members not set are never written;
 *  - errors (invalid UTF-8, NULL elements, too deep) are BC_INTERNAL: the
 *    message came from our own code.
 */
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "bc_json_private.h"

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

static int s_out_bytes(bc_json_ctx_t *ctx, s_out_t *out, const ProtobufCBinaryData *bytes)
{
    if (bytes->len > (size_t)INT_MAX / 4 * 3)
        return bc_json_fail(ctx, "bytes value too large");
    size_t len = (bytes->len + 2) / 3 * 4;
    s_out_reserve(out, len + 2);
    out->data[out->len++] = '"';
    if (bytes->len)
        EVP_EncodeBlock((unsigned char *)out->data + out->len, bytes->data, (int)bytes->len);
    out->len += len;
    out->data[out->len++] = '"';
    return 0;
}

static int s_message_out(bc_json_ctx_t *ctx, s_out_t *out, const ProtobufCMessage *msg, int depth);

/* An integer in decimal (printf is a tenth of a reply's cost otherwise);
 * beyond 2^53 quoted, as a JSON reader would lose digits. */
static void s_out_integer(s_out_t *out, bool negative, uint64_t magnitude)
{
    char buf[24];
    char *p = buf + sizeof buf;
    bool quoted = magnitude > (uint64_t)BC_JSON_MAX_SAFE_INT;
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
static int s_value_out(bc_json_ctx_t *ctx, s_out_t *out, const ProtobufCFieldDescriptor *field,
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
            return bc_json_fail(ctx, "string is not valid UTF-8");
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
        return bc_json_fail(ctx, "unsupported field type %d", (int)field->type);
    }
}

static int s_repeated_out(bc_json_ctx_t *ctx, s_out_t *out, const ProtobufCMessage *msg,
                          const ProtobufCFieldDescriptor *field, int depth)
{
    if (depth + 1 > BC_JSON_MAX_DEPTH)
        return bc_json_fail_depth(ctx);
    size_t n = *BC_JSON_MEMBER(const size_t, msg, field->quantifier_offset);
    const char *array = *BC_JSON_MEMBER(char *const, msg, field->offset);
    size_t size = bc_json_types[field->type].size;
    bool pointers = field->type == PROTOBUF_C_TYPE_STRING || field->type == PROTOBUF_C_TYPE_MESSAGE;
    if (n > 0 && !array)
        return bc_json_fail(ctx, "malformed message: %zu elements but no array", n);
    s_out_char(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            s_out_char(out, ',');
        size_t saved = bc_json_path_index(ctx, i);
        int rc = pointers && !*(void *const *)(array + i * size)
                     ? bc_json_fail(ctx, "malformed message: NULL element")
                     : s_value_out(ctx, out, field, array + i * size, depth + 1);
        if (rc < 0)
            return -1;
        bc_json_path_pop(ctx, saved);
    }
    s_out_char(out, ']');
    return 0;
}

static bool s_is_default(const ProtobufCFieldDescriptor *field, const void *ptr)
{
    if (bc_json_is_integer(field->type))
        return bc_json_types[field->type].size == 4 ? *(const uint32_t *)ptr == 0
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
    const void *ptr = BC_JSON_MEMBER(const void, msg, field->offset);
    if (bc_json_is_oneof(field))
        return *BC_JSON_MEMBER(const uint32_t, msg, field->quantifier_offset) == field->id;
    switch (field->label) {
    case PROTOBUF_C_LABEL_REQUIRED:
        return true;
    case PROTOBUF_C_LABEL_OPTIONAL:
        if (field->type == PROTOBUF_C_TYPE_STRING || field->type == PROTOBUF_C_TYPE_MESSAGE)
            return *(void *const *)ptr != NULL;
        return *BC_JSON_MEMBER(const protobuf_c_boolean, msg, field->quantifier_offset);
    case PROTOBUF_C_LABEL_REPEATED:
        return emit_defaults || *BC_JSON_MEMBER(const size_t, msg, field->quantifier_offset) > 0;
    default:
        return emit_defaults || !s_is_default(field, ptr);
    }
}

static int s_message_out(bc_json_ctx_t *ctx, s_out_t *out, const ProtobufCMessage *msg, int depth)
{
    if (depth > BC_JSON_MAX_DEPTH)
        return bc_json_fail_depth(ctx);
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
        size_t saved = bc_json_path_key(ctx, field->name);
        int rc = field->label == PROTOBUF_C_LABEL_REPEATED
                     ? s_repeated_out(ctx, out, msg, field, depth)
                     : s_value_out(ctx, out, field, BC_JSON_MEMBER(const void, msg, field->offset),
                                   depth);
        if (rc < 0)
            return -1;
        bc_json_path_pop(ctx, saved);
    }
    s_out_char(out, '}');
    return 0;
}

char *bc_pb_to_json_text(const ProtobufCMessage *msg, int flags, size_t *len, bc_error_t *err)
{
    assert(msg && msg->descriptor);
    /* (writing allocates nothing through the context) */
    bc_json_ctx_t ctx = {.allocator = NULL, .flags = flags, .code = BC_INTERNAL, .err = err};
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

