/*  bc_json: one generic JSON <-> protobuf converter driven by protobuf-c
 *  descriptors (DESIGN decision 4). No message has hand-written JSON code.
 *
 *  Mapping (JSON names are the .proto field names, snake_case):
 *  - string: JSON string (valid UTF-8, jansson guarantees it).
 *  - bool: true/false. int32/uint32/sint32/fixed32/sfixed32: JSON integer in
 *    range. int64 family: JSON integer, or a string of digits (values beyond
 *    2^53 are written as strings). float/double: JSON number.
 *  - enum: the value's name as in the .proto ("ACTIVE"); numbers refused.
 *  - bytes: standard base64 string.
 *  - message: JSON object; repeated: JSON array; null = field absent.
 *  - Unknown fields, wrong types, out-of-range numbers, duplicate oneof
 *    members and nesting deeper than BC_JSON_MAX_DEPTH are errors with the
 *    field path ("address.lines[2]") in err->field and BC_INVALID_ARGUMENT.
 *  Output omits proto3 fields at their default value (empty string, 0, false,
 *  empty repeated) unless BC_JSON_EMIT_DEFAULTS is given.
 */
#ifndef BC_JSON_H
#define BC_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include "bc_error.h"

#define BC_JSON_MAX_DEPTH 32

enum {
    BC_JSON_EMIT_DEFAULTS = 1 << 0, /* to_json: write fields at default values too */
    BC_JSON_STRINGS = 1 << 1,       /* to_pb: accept scalars written as strings
                                       ("42", "true"): for URL path/query values */
};

/* Converts a JSON object into a new message of type desc, allocated with
 * allocator (NULL = malloc; free with protobuf_c_message_free_unpacked and the
 * same allocator). Returns NULL with err set. */
ProtobufCMessage *bc_json_to_pb(const json_t *json, const ProtobufCMessageDescriptor *desc,
                                ProtobufCAllocator *allocator, int flags, bc_error_t *err);
/* Writes a message as compact JSON text (keys in field order), malloc'd and
 * NUL-terminated, its length in *len (may be NULL). Returns NULL only on a
 * malformed message: invalid UTF-8, a NULL element, too deep (err set). */
char *bc_pb_to_json_text(const ProtobufCMessage *msg, int flags, size_t *len, bc_error_t *err);
/* The same as a new JSON object (caller owns the reference). */
json_t *bc_pb_to_json(const ProtobufCMessage *msg, int flags, bc_error_t *err);

/* Nesting depth of a JSON value (scalars 0, {} 1). Bounded by limit+1, so it
 * stops early on hostile input. */
int bc_json_depth(const json_t *json, int limit);

#endif
