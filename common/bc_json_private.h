/*  bc_json_private.h: what the two halves of the JSON <-> protobuf converter
 *  share (bc_json.c reads JSON into messages, bc_json_write.c writes
 *  messages as JSON): the scalar type table, the conversion context with its
 *  field path, error reporting. Not for use outside them.
 */
#ifndef BC_JSON_PRIVATE_H
#define BC_JSON_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_json.h"

#define BC_JSON_MAX_SAFE_INT (INT64_C(1) << 53) /* larger int64s are written as strings */

typedef struct {
    const char *name; /* for messages: "value out of range for int32" */
    size_t size;      /* bytes per element in a repeated array */
    bool is_unsigned;
    int64_t min; /* integer types only */
    uint64_t max;
} bc_json_type_t;

/* Indexed by ProtobufCType. */
extern const bc_json_type_t bc_json_types[];

/* One step of the path to the value being converted: a key or an index. */
typedef struct {
    const char *key; /* NULL: an array index */
    size_t index;
} bc_json_step_t;

#define BC_JSON_STEPS_MAX 72 /* two per level of nesting, and some */

/* One conversion: where it allocates, how it reports and where it is. The
 * path ("address.lines[2]") is kept as steps and written out only for an
 * error: formatting it for every field was a tenth of a large reply's cost. */
typedef struct {
    ProtobufCAllocator *allocator;
    int flags;
    bc_code_t code; /* code for errors in this direction */
    bc_error_t *err;
    bc_json_step_t steps[BC_JSON_STEPS_MAX];
    size_t nsteps; /* may exceed BC_JSON_STEPS_MAX: the steps beyond are not kept */
} bc_json_ctx_t;

/* Sets ctx's error (its code, the path so far as the field) and returns -1. */
int bc_json_fail(bc_json_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int bc_json_fail_depth(bc_json_ctx_t *ctx);

/* Appends ".key" (or "key" at the top) to the path; returns what to restore
 * with bc_json_path_pop. key must outlive the step. */
static inline size_t bc_json_path_key(bc_json_ctx_t *ctx, const char *key)
{
    if (ctx->nsteps < BC_JSON_STEPS_MAX)
        ctx->steps[ctx->nsteps] = (bc_json_step_t){key, 0};
    return ctx->nsteps++;
}

static inline size_t bc_json_path_index(bc_json_ctx_t *ctx, size_t index)
{
    if (ctx->nsteps < BC_JSON_STEPS_MAX)
        ctx->steps[ctx->nsteps] = (bc_json_step_t){NULL, index};
    return ctx->nsteps++;
}

static inline void bc_json_path_pop(bc_json_ctx_t *ctx, size_t saved)
{
    ctx->nsteps = saved;
}

static inline bool bc_json_is_oneof(const ProtobufCFieldDescriptor *field)
{
    return (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
}

static inline bool bc_json_is_integer(ProtobufCType type)
{
    return type <= PROTOBUF_C_TYPE_FIXED64;
}

#define BC_JSON_MEMBER(type, msg, offset) ((type *)((char *)(msg) + (offset)))

#endif
