/*  bc_log: structured JSON-lines logging to stderr.
 *
 *  One line per event: {"ts":"...Z","level":"info","svc":"intake","pid":1,
 *  "req":"<request id>","msg":"...", extra fields}. The request id is held per
 *  thread (bc_log_set_request) so handlers need not pass it around. Writes are
 *  single write(2) calls, so lines from several threads never interleave.
 */
#ifndef BC_LOG_H
#define BC_LOG_H

#include <jansson.h>

typedef enum { BC_LOG_DEBUG = 0, BC_LOG_INFO, BC_LOG_WARN, BC_LOG_ERROR, BC_LOG_OFF } bc_log_level_t;

/* Sets the service name and minimum level ("debug", "info", "warn", "error",
 * "off"). Returns -1 for an unknown level name. Call once at start. */
int bc_log_init(const char *service, const char *level);
int bc_log_parse_level(const char *name, bc_log_level_t *out);
int bc_log_enabled(bc_log_level_t level);
/* Request id included in this thread's log lines; NULL clears it. The string
 * is copied. */
void bc_log_set_request(const char *request_id);
const char *bc_log_request(void);

void bc_log(bc_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As bc_log, with extra fields merged into the line. Steals the reference to
 * fields (NULL allowed). */
void bc_log_fields(bc_log_level_t level, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define bc_debug(...) do { if (bc_log_enabled(BC_LOG_DEBUG)) bc_log(BC_LOG_DEBUG, __VA_ARGS__); } while (0)
#define bc_info(...) bc_log(BC_LOG_INFO, __VA_ARGS__)
#define bc_warn(...) bc_log(BC_LOG_WARN, __VA_ARGS__)
#define bc_err(...) bc_log(BC_LOG_ERROR, __VA_ARGS__)

#endif
