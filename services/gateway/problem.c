/*  problem: JSON, RFC 9457 problem+json and file responses, the headers
 *  every response carries, and the access log. */
#include <stdio.h>
#include <string.h>

#include "bc_log.h"
#include "bc_util.h"
#include "gateway.h"

#define S_PROBLEM_TYPE "urn:beacon:problem:"

void gw_common_headers(h2o_req_t *req, const char *request_id)
{
    h2o_headers_t *h = &req->res.headers;
    h2o_add_header_by_str(&req->pool, h, H2O_STRLIT("x-request-id"), 0, NULL,
                          h2o_strdup(&req->pool, request_id, SIZE_MAX).base, strlen(request_id));
    /* Responses carry health information: never cache them anywhere. */
    h2o_add_header(&req->pool, h, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_add_header_by_str(&req->pool, h, H2O_STRLIT("x-content-type-options"), 0, NULL,
                          H2O_STRLIT("nosniff"));
    h2o_add_header(&req->pool, h, H2O_TOKEN_STRICT_TRANSPORT_SECURITY, NULL,
                   H2O_STRLIT("max-age=31536000"));
}

void gw_send_bytes(h2o_req_t *req, int status, const char *content_type, const void *body,
                   size_t len)
{
    req->res.status = status;
    req->res.reason = "";
    h2o_iovec_t type = h2o_strdup(&req->pool, content_type, SIZE_MAX);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type.base,
                   type.len);
    /* With a known length h2o keeps an HTTP/1.1 connection alive for every
     * status; without it, only 200 responses would be. */
    req->res.content_length = len;
    h2o_send_inline(req, len ? body : "", len); /* copies the body into the pool */
}

void gw_send_json(h2o_req_t *req, int status, const char *content_type, json_t *json)
{
    char *text = json_dumps(json, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(json);
    gw_send_bytes(req, status, content_type, text ? text : "", text ? strlen(text) : 0);
    free(text);
}

void gw_send_http_problem(h2o_req_t *req, const char *request_id, int status, const char *slug,
                          const char *title, const char *detail, const char *field)
{
    gw_metrics_problem(((gw_thread_t *)req->conn->ctx)->metrics, status);
    char type[96];
    snprintf(type, sizeof type, S_PROBLEM_TYPE "%s", slug);
    json_t *p = json_object();
    json_object_set_new(p, "type", json_string(type));
    json_object_set_new(p, "title", json_string(title));
    json_object_set_new(p, "status", json_integer(status));
    json_t *d = NULL;
    if (detail && *detail && field && *field && strncmp(detail, field, strlen(field)) != 0) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s: %s", field, detail);
        d = json_string(buf);
    } else if (detail && *detail) {
        d = json_string(detail);
    }
    if (d)
        json_object_set_new(p, "detail", d);
    /* The path only: a query string may carry search terms about a person. */
    h2o_iovec_t path = req->path_normalized.len ? req->path_normalized : h2o_iovec_init("/", 1);
    json_t *instance = json_stringn(path.base, path.len);
    if (instance)
        json_object_set_new(p, "instance", instance);
    json_object_set_new(p, "request_id", json_string(request_id));
    if (field && *field) {
        json_t *e = json_pack("{s:s, s:s?}", "field", field, "message", detail);
        if (e)
            json_object_set_new(p, "errors", json_pack("[o]", e));
    }
    gw_send_json(req, status, "application/problem+json", p);
}

void gw_send_problem(h2o_req_t *req, const char *request_id, bc_code_t code, const char *detail,
                     const char *field)
{
    if (code == BC_UNAUTHENTICATED)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                       H2O_STRLIT("Bearer realm=\"beacon\""));
    if (code == BC_UNAVAILABLE || code == BC_DEADLINE_EXCEEDED)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                       H2O_STRLIT("1"));
    gw_send_http_problem(req, request_id, bc_code_http_status(code), bc_code_slug(code),
                         bc_code_title(code), detail, field);
}

const char *gw_plaintext_rejection(size_t *len)
{
    static const char s_body[] =
        "{\"type\":\"urn:beacon:problem:tls-required\",\"title\":\"TLS required\",\"status\":400,"
        "\"detail\":\"This port speaks HTTPS only. Connect with https://.\"}\n";
    static char s_text[512];
    static size_t s_len;
    if (!s_len) /* built once by the main thread before any gateway thread runs */
        s_len = (size_t)snprintf(s_text, sizeof s_text,
                                 "HTTP/1.1 400 Bad Request\r\n"
                                 "Content-Type: application/problem+json\r\n"
                                 "Connection: close\r\n"
                                 "Content-Length: %zu\r\n\r\n%s",
                                 sizeof s_body - 1, s_body);
    *len = s_len;
    return s_text;
}

void gw_access_log(h2o_req_t *req, const char *request_id, int status, int64_t started_us)
{
    gw_access_log_route(req, request_id, -1, status, started_us);
}

void gw_access_log_route(h2o_req_t *req, const char *request_id, int route, int status,
                         int64_t started_us)
{
    int64_t us = bc_mono_us() - started_us;
    gw_metrics_request(((gw_thread_t *)req->conn->ctx)->metrics, req, route, status, us);
    if (!bc_log_enabled(BC_LOG_INFO))
        return;
    json_t *f = json_object();
    json_object_set_new(f, "req", json_string(request_id));
    json_object_set_new(f, "method", json_stringn(req->method.base, req->method.len));
    json_t *path = json_stringn(req->path_normalized.base, req->path_normalized.len);
    json_object_set_new(f, "path", path ? path : json_string("(invalid)"));
    json_object_set_new(f, "status", json_integer(status));
    json_object_set_new(f, "us", json_integer(us));
    bc_log_fields(BC_LOG_INFO, f, "request");
}
