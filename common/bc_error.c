/*  bc_error: error values and the one table mapping codes to names, HTTP
 *  statuses and problem types. */
#include "bc_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int http;
    const char *title;
    const char *slug;
} s_code_info_t;

static const s_code_info_t s_codes[BC_CODE_COUNT] = {
    [BC_OK] = {"OK", 200, "OK", "ok"},
    [BC_INVALID_ARGUMENT] = {"INVALID_ARGUMENT", 400, "Invalid request", "invalid-argument"},
    [BC_NOT_FOUND] = {"NOT_FOUND", 404, "Not found", "not-found"},
    [BC_ALREADY_EXISTS] = {"ALREADY_EXISTS", 409, "Already exists", "already-exists"},
    [BC_FAILED_PRECONDITION] = {"FAILED_PRECONDITION", 422, "Cannot be done in the current state",
                                "failed-precondition"},
    [BC_CONFLICT] = {"CONFLICT", 409, "Conflict", "conflict"},
    [BC_PERMISSION_DENIED] = {"PERMISSION_DENIED", 403, "Forbidden", "permission-denied"},
    [BC_UNAUTHENTICATED] = {"UNAUTHENTICATED", 401, "Authentication required", "unauthenticated"},
    [BC_RESOURCE_EXHAUSTED] = {"RESOURCE_EXHAUSTED", 429, "Too many requests", "resource-exhausted"},
    [BC_PAYLOAD_TOO_LARGE] = {"PAYLOAD_TOO_LARGE", 413, "Request body too large",
                              "payload-too-large"},
    [BC_DEADLINE_EXCEEDED] = {"DEADLINE_EXCEEDED", 503, "Service did not answer in time",
                              "deadline-exceeded"},
    [BC_UNAVAILABLE] = {"UNAVAILABLE", 503, "Service unavailable", "unavailable"},
    [BC_UNIMPLEMENTED] = {"UNIMPLEMENTED", 501, "Not implemented", "unimplemented"},
    [BC_INTERNAL] = {"INTERNAL", 500, "Internal error", "internal"},
    [BC_DATA_LOSS] = {"DATA_LOSS", 500, "Stored data is damaged", "data-loss"},
    [BC_STALE] = {"STALE", 412, "The record has changed since you read it", "stale"},
};

static const s_code_info_t *s_info(bc_code_t code)
{
    if ((int)code < 0 || code >= BC_CODE_COUNT)
        return &s_codes[BC_INTERNAL];
    return &s_codes[code];
}

int bc_error_set(bc_error_t *err, bc_code_t code, const char *field, const char *fmt, ...)
{
    if (!err)
        return -1;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->detail[0] = '\0';
    return -1;
}

void bc_error_detail(bc_error_t *err, const char *fmt, ...)
{
    if (!err)
        return;
    size_t used = strlen(err->detail);
    if (used && used + 2 < sizeof err->detail) {
        err->detail[used++] = ';';
        err->detail[used++] = ' ';
        err->detail[used] = '\0';
    }
    if (used >= sizeof err->detail - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail + used, sizeof err->detail - used, fmt, ap);
    va_end(ap);
}

void bc_error_clear(bc_error_t *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}

const char *bc_code_name(bc_code_t code)
{
    if ((int)code < 0 || code >= BC_CODE_COUNT)
        return "UNKNOWN";
    return s_codes[code].name;
}

int bc_code_http_status(bc_code_t code)
{
    return s_info(code)->http;
}

const char *bc_code_title(bc_code_t code)
{
    return s_info(code)->title;
}

const char *bc_code_slug(bc_code_t code)
{
    return s_info(code)->slug;
}

bc_code_t bc_code_from_sqlstate(const char *sqlstate)
{
    if (!sqlstate || strlen(sqlstate) != 5)
        return BC_INTERNAL;
    /* Specific states first, then classes (PostgreSQL errcodes appendix). */
    if (!strcmp(sqlstate, "23505"))
        return BC_ALREADY_EXISTS;  /* unique_violation */
    if (!strcmp(sqlstate, "23503") || !strcmp(sqlstate, "23514") || !strcmp(sqlstate, "23P01"))
        return BC_FAILED_PRECONDITION; /* foreign key, check, exclusion */
    if (!strcmp(sqlstate, "23502"))
        return BC_INVALID_ARGUMENT; /* not_null_violation */
    if (!strcmp(sqlstate, "40001") || !strcmp(sqlstate, "40P01"))
        return BC_CONFLICT; /* serialization failure, deadlock: retryable */
    if (!strcmp(sqlstate, "42501"))
        return BC_PERMISSION_DENIED; /* insufficient_privilege (incl. RLS) */
    if (!strcmp(sqlstate, "57014"))
        return BC_DEADLINE_EXCEEDED; /* query_canceled (statement_timeout) */
    if (!strcmp(sqlstate, "53300") || !strncmp(sqlstate, "53", 2))
        return BC_RESOURCE_EXHAUSTED;
    if (!strncmp(sqlstate, "08", 2) || !strcmp(sqlstate, "57P01") || !strcmp(sqlstate, "57P02") ||
        !strcmp(sqlstate, "57P03"))
        return BC_UNAVAILABLE; /* connection exception, admin/crash shutdown */
    if (!strncmp(sqlstate, "22", 2))
        return BC_INVALID_ARGUMENT; /* data exception: bad text for a type, range */
    if (!strcmp(sqlstate, "XX001") || !strcmp(sqlstate, "XX002"))
        return BC_DATA_LOSS;
    return BC_INTERNAL;
}
