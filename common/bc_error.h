/*  bc_error: error codes and error values shared by every module.
 *
 *  A failing function returns -1 (or NULL) and fills a bc_error_t the caller
 *  passed (may be NULL): a code, a human message, the offending field if any
 *  and a detail (PostgreSQL ereport with SQLSTATE). The gateway maps codes to
 *  HTTP statuses and RFC 9457 problem types through the one table here.
 *  Numeric values equal proto/beacon.proto's enum Code.
 */
#ifndef BC_ERROR_H
#define BC_ERROR_H

typedef enum {
    BC_OK = 0,
    BC_INVALID_ARGUMENT = 1,
    BC_NOT_FOUND = 2,
    BC_ALREADY_EXISTS = 3,
    BC_FAILED_PRECONDITION = 4,
    BC_CONFLICT = 5,
    BC_PERMISSION_DENIED = 6,
    BC_UNAUTHENTICATED = 7,
    BC_RESOURCE_EXHAUSTED = 8,
    BC_PAYLOAD_TOO_LARGE = 9,
    BC_DEADLINE_EXCEEDED = 10,
    BC_UNAVAILABLE = 11,
    BC_UNIMPLEMENTED = 12,
    BC_INTERNAL = 13,
    BC_DATA_LOSS = 14,
    BC_STALE = 15, /* the record changed since the caller read it (If-Match): 412 */
    BC_CODE_COUNT
} bc_code_t;

typedef struct {
    bc_code_t code;
    char message[256]; /* safe to show to the caller */
    char field[128];   /* offending input field ("" if none), e.g. "address.city" */
    char detail[512];  /* for logs: SQLSTATE, errno text; never shown to callers */
} bc_error_t;

/* Fills err (if not NULL) and returns -1 so callers can `return bc_error_set(...)`. */
int bc_error_set(bc_error_t *err, bc_code_t code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds a detail line to an error already set. */
void bc_error_detail(bc_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bc_error_clear(bc_error_t *err);

/* "INVALID_ARGUMENT"; "UNKNOWN" for out-of-range values. */
const char *bc_code_name(bc_code_t code);
/* HTTP status for the code (400, 404, 503, ...). */
int bc_code_http_status(bc_code_t code);
/* Short title for problem+json ("Invalid argument"). */
const char *bc_code_title(bc_code_t code);
/* Slug for the problem type URI ("invalid-argument"). */
const char *bc_code_slug(bc_code_t code);
/* Maps a PostgreSQL SQLSTATE (5 chars, NULL allowed) to a code. */
bc_code_t bc_code_from_sqlstate(const char *sqlstate);

#endif
