/*  bc_log: structured JSON-lines logging (one write(2) per line). */
#include "bc_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bc_util.h"

static char s_service[64] = "beacon";
static bc_log_level_t s_level = BC_LOG_INFO;
static _Thread_local char s_request[128];

static const char *const s_level_names[] = {"debug", "info", "warn", "error", "off"};

int bc_log_parse_level(const char *name, bc_log_level_t *out)
{
    for (int i = 0; i <= BC_LOG_OFF; i++) {
        if (name && !strcmp(name, s_level_names[i])) {
            *out = (bc_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

int bc_log_init(const char *service, const char *level)
{
    snprintf(s_service, sizeof s_service, "%s", service);
    return level ? bc_log_parse_level(level, &s_level) : 0;
}

int bc_log_enabled(bc_log_level_t level)
{
    return level >= s_level && level != BC_LOG_OFF;
}

void bc_log_set_request(const char *request_id)
{
    snprintf(s_request, sizeof s_request, "%s", request_id ? request_id : "");
}

const char *bc_log_request(void)
{
    return s_request;
}

static void s_emit(bc_log_level_t level, json_t *fields, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char ts[32];
    bc_format_time_ms(bc_now_ms(), ts);
    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(s_level_names[level]));
    json_object_set_new(line, "svc", json_string(s_service));
    json_object_set_new(line, "pid", json_integer(getpid()));
    if (s_request[0])
        json_object_set_new(line, "req", json_string(s_request));
    /* Invalid UTF-8 in a message must not lose the line: jansson refuses it,
     * so fall back to a marker. */
    json_t *m = json_string(msg);
    json_object_set_new(line, "msg", m ? m : json_string("(message not valid UTF-8)"));
    if (fields) {
        json_object_update_missing(line, fields);
        json_decref(fields);
    }
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (!text)
        return;
    size_t n = strlen(text);
    text[n] = '\n';
    ssize_t rc = write(STDERR_FILENO, text, n + 1);
    (void)rc;
    free(text);
}

void bc_log(bc_log_level_t level, const char *fmt, ...)
{
    if (!bc_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    s_emit(level, NULL, fmt, ap);
    va_end(ap);
}

void bc_log_fields(bc_log_level_t level, json_t *fields, const char *fmt, ...)
{
    if (!bc_log_enabled(level)) {
        json_decref(fields);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    s_emit(level, fields, fmt, ap);
    va_end(ap);
}
