/*  api: one handler for every HTTP request. Routes the request, builds the
 *  method's request message from path parameters, query parameters and the
 *  JSON body, calls the service asynchronously and answers when the reply or
 *  the deadline arrives. If the client goes away first, the pending call is
 *  cancelled when h2o frees the request's pool.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "bc_auth.h"
#include "bc_json.h"
#include "bc_log.h"
#include "bc_util.h"
#include "gateway.h"
#include "identity.pb-c.h"

typedef struct {
    h2o_req_t *req;
    gw_thread_t *thread;
    const gw_route_t *route;
    const ProtobufCMethodDescriptor *method;
    bc_rpc_client_t *client;
    uint64_t handle; /* nonzero while the call is pending */
    int64_t started_us;
    char request_id[72];
    char peer[64];
    char idem[256];
    uint8_t *payload; /* the method's request, packed (request pool) */
    size_t payload_len;
    int64_t deadline_ms;
    char token_hash[BC_TOKEN_HASH_LEN + 1]; /* of the bearer token, for the session cache */
    uint64_t cache_epoch;                   /* the cache's epoch when identity was asked */
} s_call_t;

/* Runs when the request's pool is freed (response done or client gone). */
static void s_on_dispose(void *p)
{
    s_call_t *c = p;
    if (c->handle) {
        bc_rpc_client_cancel(c->client, c->handle);
        c->handle = 0;
        c->thread->inflight--;
    }
}

/* The call's route as an index in gw_routes, -1 before it is known. */
static int s_route_index(const s_call_t *c)
{
    return c->route ? (int)(c->route - gw_routes) : -1;
}

static void s_problem(s_call_t *c, bc_code_t code, const char *detail, const char *field)
{
    gw_common_headers(c->req, c->request_id);
    gw_send_problem(c->req, c->request_id, code, detail, field);
    gw_access_log_route(c->req, c->request_id, s_route_index(c), bc_code_http_status(code),
                        c->started_us);
}

/* A problem that belongs to HTTP itself (405, 415), not to a service code. */
static void s_http_problem(s_call_t *c, int status, const char *slug, const char *title,
                           const char *detail)
{
    gw_common_headers(c->req, c->request_id);
    gw_send_http_problem(c->req, c->request_id, status, slug, title, detail, NULL);
    gw_access_log_route(c->req, c->request_id, s_route_index(c), status, c->started_us);
}

/* The caller's X-Request-Id when it is a short token, else a new UUID. */
static void s_request_id(h2o_req_t *req, char *out, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        int ok = v.len > 0 && v.len < 64;
        for (size_t k = 0; ok && k < v.len; k++)
            ok = isalnum((unsigned char)v.base[k]) || strchr("-_.:", v.base[k]);
        if (ok && v.len < len) {
            memcpy(out, v.base, v.len);
            out[v.len] = '\0';
            return;
        }
    }
    char uuid[37];
    bc_uuid_v4(uuid);
    snprintf(out, len, "%s", uuid);
}

/* The peer's address as text ("" when unknown). */
static void s_peer(h2o_req_t *req, char *out, size_t len)
{
    struct sockaddr_storage ss;
    out[0] = '\0';
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (sl == 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)len);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)len);
}

/* The token of "Authorization: Bearer <token>" (pool memory), or NULL. */
static const char *s_bearer(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0)
        return NULL;
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len <= 7 || !h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")))
        return NULL;
    size_t start = 7;
    while (start < v.len && v.base[start] == ' ')
        start++;
    if (start == v.len || v.len - start > 256)
        return NULL;
    return h2o_strdup(&req->pool, v.base + start, v.len - start).base;
}

/* Percent-decodes a query component ('+' is a space). Returns a new JSON
 * string, or NULL for a bad escape or invalid UTF-8. */
static json_t *s_decode_component(const char *s, size_t len)
{
    char buf[1024];
    if (len >= sizeof buf)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            if (i + 2 >= len)
                return NULL;
            int a = bc_hexval(s[i + 1]), b = bc_hexval(s[i + 2]);
            if (a < 0 || b < 0)
                return NULL;
            buf[o++] = (char)(a * 16 + b);
            i += 2;
        } else {
            buf[o++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    if (!bc_utf8_valid(buf, o))
        return NULL;
    return json_stringn(buf, o);
}

/* Adds key=value pairs of the query string to obj (a repeated key becomes
 * an array). Returns 0, or -1 with err set. */
static int s_parse_query(const char *q, size_t len, json_t *obj, bc_error_t *err)
{
    const char *end = q + len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        if (!amp)
            amp = end;
        if (amp > q) {
            const char *eq = memchr(q, '=', (size_t)(amp - q));
            const char *kend = eq ? eq : amp;
            json_t *k = s_decode_component(q, (size_t)(kend - q));
            json_t *v = eq ? s_decode_component(eq + 1, (size_t)(amp - eq - 1)) : json_string("");
            if (!k || !v || !*json_string_value(k)) {
                json_decref(k);
                json_decref(v);
                return bc_error_set(err, BC_INVALID_ARGUMENT, "", "malformed query string");
            }
            const char *key = json_string_value(k);
            json_t *prev = json_object_get(obj, key);
            if (!prev) {
                json_object_set_new(obj, key, v);
            } else if (json_is_array(prev)) {
                json_array_append_new(prev, v);
            } else {
                json_object_set_new(obj, key, json_pack("[Oo]", prev, v));
            }
            json_decref(k);
        }
        q = amp + 1;
    }
    return 0;
}

/* A header value from a service: 1 to 127 printable ASCII characters. */
static bool s_header_value_ok(const char *v)
{
    size_t n = strlen(v);
    bool ok = n >= 1 && n <= 127;
    for (size_t i = 0; ok && i < n; i++)
        ok = v[i] >= 0x20 && v[i] < 0x7f;
    return ok;
}

/* A download name that is safe inside a quoted Content-Disposition and on
 * any file system: letters, digits, '.', '-' and '_' kept, other bytes
 * (quotes, slashes, controls, non-ASCII) replaced by '_', no leading dot,
 * at most 100 characters; "download" when nothing is left. */
static void s_attachment_name(const char *name, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = name; *p && o + 1 < len && o < 100; p++) {
        char ch = *p;
        bool keep = isalnum((unsigned char)ch) || ch == '.' || ch == '-' || ch == '_';
        if (o == 0 && ch == '.')
            continue;
        out[o++] = keep ? ch : '_';
    }
    out[o] = '\0';
    if (o == 0)
        snprintf(out, len, "download");
}

/* A GW_ROUTE_FILE reply (beacon.FileReply): its body as it is, with its
 * content type, as a download. */
static void s_send_file(s_call_t *c, const Beacon__Reply *reply)
{
    bc_error_t e;
    Beacon__FileReply *f = NULL;
    if (c->method->output == &beacon__file_reply__descriptor)
        f = (Beacon__FileReply *)bc_pb_unpack(&beacon__file_reply__descriptor, NULL,
                                              reply->payload.data, reply->payload.len,
                                              BC_PB_MAX_DEPTH, &e);
    if (!f || !s_header_value_ok(f->content_type)) {
        bc_err("cannot serve %s reply as a file", c->route->rpc);
        if (f)
            protobuf_c_message_free_unpacked(&f->base, NULL);
        s_problem(c, BC_INTERNAL, "the service sent a reply the gateway could not read", NULL);
        return;
    }
    char name[128], disposition[160];
    s_attachment_name(f->filename, name, sizeof name);
    int n = snprintf(disposition, sizeof disposition, "attachment; filename=\"%s\"", name);
    gw_common_headers(c->req, c->request_id);
    h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_CONTENT_DISPOSITION, NULL,
                   h2o_strdup(&c->req->pool, disposition, (size_t)n).base, (size_t)n);
    gw_send_bytes(c->req, c->route->success_status, f->content_type, f->body.data, f->body.len);
    protobuf_c_message_free_unpacked(&f->base, NULL);
    gw_access_log_route(c->req, c->request_id, s_route_index(c), c->route->success_status,
                        c->started_us);
}

/* A reply's top-level integer "version" (a record's optimistic-lock
 * version), sent as its ETag; 0 when it has none. */
static int64_t s_version(const ProtobufCMessage *msg)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, "version");
    if (!f || f->label == PROTOBUF_C_LABEL_REPEATED)
        return 0;
    const void *ptr = (const char *)msg + f->offset;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return *(const int32_t *)ptr;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return *(const uint32_t *)ptr;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return *(const int64_t *)ptr;
    default:
        return 0;
    }
}

static void s_on_reply(void *arg, const Beacon__Reply *reply, const bc_error_t *err)
{
    s_call_t *c = arg;
    c->handle = 0;
    c->thread->inflight--;
    if (err) {
        s_problem(c, err->code, err->message, err->field);
        return;
    }
    if (c->route->flags & GW_ROUTE_FILE) {
        s_send_file(c, reply);
        return;
    }
    bc_error_t e;
    /* Unpacked into the thread's arena: a list of thousands of records is
     * then a few block allocations, not one per string. */
    bc_arena_t *arena = c->thread->reply_arena;
    ProtobufCMessage *out =
        bc_pb_unpack(c->method->output, bc_arena_allocator(arena), reply->payload.data,
                     reply->payload.len, BC_PB_MAX_DEPTH, &e);
    size_t len = 0;
    char *text = out ? bc_pb_to_json_text(out, BC_JSON_EMIT_DEFAULTS, &len, &e) : NULL;
    int64_t version = text ? s_version(out) : 0;
    bc_arena_reset(arena);
    if (c->route->flags & GW_ROUTE_REVOKES)
        gw_sessions_flush(c->thread->sessions);
    if (!text) {
        bc_err("cannot convert %s reply: %s", c->route->rpc, e.message);
        s_problem(c, BC_INTERNAL, "the service sent a reply the gateway could not read", NULL);
        return;
    }
    gw_common_headers(c->req, c->request_id);
    if (version) {
        char etag[32];
        int n = snprintf(etag, sizeof etag, "\"%lld\"", (long long)version);
        h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_ETAG, NULL,
                       h2o_strdup(&c->req->pool, etag, (size_t)n).base, (size_t)n);
    }
    gw_send_bytes(c->req, c->route->success_status, "application/json", text, len);
    free(text);
    gw_access_log_route(c->req, c->request_id, s_route_index(c), c->route->success_status,
                        c->started_us);
}

/* True when the request declares a JSON body (parameters after ';' allowed). */
static int s_is_json(h2o_req_t *req)
{
    ssize_t ct = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (ct < 0)
        return 0;
    h2o_iovec_t v = req->headers.entries[ct].value;
    size_t base_len = v.len;
    for (size_t i = 0; i < v.len; i++)
        if (v.base[i] == ';' || v.base[i] == ' ') {
            base_len = i;
            break;
        }
    return h2o_lcstris(v.base, base_len, H2O_STRLIT("application/json"));
}

static int s_has_body_method(h2o_iovec_t m)
{
    return h2o_memis(m.base, m.len, H2O_STRLIT("POST")) ||
           h2o_memis(m.base, m.len, H2O_STRLIT("PUT")) ||
           h2o_memis(m.base, m.len, H2O_STRLIT("PATCH"));
}

/* Packs the request message for c from path params, query and body into
 * *bytes (malloc'd). Path and query values are strings converted by field
 * type; the body is strict JSON. Both are packed and concatenated, which
 * protobuf defines as a merge; a body field that repeats a path parameter is
 * refused rather than silently overridden. */
static int s_build_payload(s_call_t *c, const bc_route_param_t *params, int nparams,
                           uint8_t **bytes, size_t *len, bc_error_t *err)
{
    h2o_req_t *req = c->req;
    const ProtobufCMessageDescriptor *in = c->method->input;
    json_t *url = json_object();
    for (int i = 0; i < nparams; i++) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)params[i].name_len, params[i].name);
        json_t *v = s_decode_component(params[i].value, params[i].value_len);
        if (!v) {
            json_decref(url);
            return bc_error_set(err, BC_INVALID_ARGUMENT, name, "malformed path parameter");
        }
        json_object_set_new(url, name, v);
    }
    if (c->route->bearer_field) {
        const char *token = s_bearer(req);
        json_t *v = token ? json_string(token) : NULL;
        if (!v) {
            json_decref(url);
            return bc_error_set(err, BC_UNAUTHENTICATED, "",
                                "send the session token as Authorization: Bearer <token>");
        }
        json_object_set_new(url, c->route->bearer_field, v);
    }
    if (c->route->if_match_field) {
        ssize_t im = h2o_find_header(&req->headers, H2O_TOKEN_IF_MATCH, -1);
        if (im >= 0) {
            h2o_iovec_t v = req->headers.entries[im].value;
            size_t i = 0, n = v.len;
            if (n >= 2 && v.base[0] == 'W' && v.base[1] == '/')
                i = 2;
            char digits[12];
            size_t d = 0;
            bool ok = n - i >= 3 && v.base[i] == '"' && v.base[n - 1] == '"';
            for (size_t k = i + 1; ok && k < n - 1; k++) {
                ok = v.base[k] >= '0' && v.base[k] <= '9' && d < sizeof digits - 1;
                if (ok)
                    digits[d++] = v.base[k];
            }
            if (!ok || d == 0) {
                json_decref(url);
                return bc_error_set(err, BC_INVALID_ARGUMENT, "If-Match",
                                    "If-Match must be the ETag of the record you read, "
                                    "such as \"3\"");
            }
            digits[d] = '\0';
            json_object_set_new(url, c->route->if_match_field, json_string(digits));
        }
    }
    if (req->query_at != SIZE_MAX &&
        s_parse_query(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, url,
                      err) < 0) {
        json_decref(url);
        return -1;
    }
    json_t *body = NULL;
    if (s_has_body_method(req->method)) {
        json_error_t jerr;
        body = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!body || !json_is_object(body)) {
            json_decref(url);
            json_decref(body);
            if (!body)
                return bc_error_set(err, BC_INVALID_ARGUMENT, "",
                                    "request body is not valid JSON: %s (line %d, column %d)",
                                    jerr.text, jerr.line, jerr.column);
            return bc_error_set(err, BC_INVALID_ARGUMENT, "", "request body must be a JSON object");
        }
        const char *key;
        json_t *val;
        json_object_foreach(url, key, val)
        {
            (void)val;
            if (json_object_get(body, key)) {
                json_decref(url);
                json_decref(body);
                return bc_error_set(err, BC_INVALID_ARGUMENT, key,
                                    "%s is given by the URL and must not be in the body", key);
            }
        }
    }
    ProtobufCMessage *a = bc_json_to_pb(url, in, NULL, BC_JSON_STRINGS, err);
    json_decref(url);
    ProtobufCMessage *b = NULL;
    if (a && body)
        b = bc_json_to_pb(body, in, NULL, 0, err);
    json_decref(body);
    if (!a || (s_has_body_method(req->method) && !b)) {
        if (a)
            protobuf_c_message_free_unpacked(a, NULL);
        return -1;
    }
    size_t la = protobuf_c_message_get_packed_size(a);
    size_t lb = b ? protobuf_c_message_get_packed_size(b) : 0;
    *bytes = malloc(la + lb + 1);
    protobuf_c_message_pack(a, *bytes);
    if (b)
        protobuf_c_message_pack(b, *bytes + la);
    *len = la + lb;
    protobuf_c_message_free_unpacked(a, NULL);
    if (b)
        protobuf_c_message_free_unpacked(b, NULL);
    return 0;
}

/* Sends the route's call as principal, with the peer address as seen here
 * (never one the caller or identity supplied). */
static void s_send(s_call_t *c, const Beacon__Principal *principal)
{
    Beacon__Principal who = *principal; /* shallow: principal stays its owner's */
    who.remote_addr = c->peer;
    bc_rpc_call_t call = {
        .principal = &who,
        .method = c->route->rpc,
        .payload_bytes = c->payload,
        .payload_len = c->payload_len,
        .deadline_ms = c->deadline_ms,
        .idempotency_key = c->idem,
        .request_id = c->request_id,
    };
    bc_error_t err;
    c->client = gw_client(c->thread, c->route->service);
    c->handle = bc_rpc_client_send(c->client, &call, s_on_reply, c, &err);
    if (!c->handle) {
        s_problem(c, err.code, err.message, NULL);
        return;
    }
    c->thread->inflight++;
}

/* True when one of the principal's roles is in the comma-separated list
 * ("*": any signed-in caller). */
static bool s_role_allowed(const char *list, const Beacon__Principal *p)
{
    if (!list)
        return false;
    if (!strcmp(list, "*"))
        return true;
    for (size_t i = 0; i < p->n_roles; i++) {
        size_t n = strlen(p->roles[i]);
        for (const char *s = list; *s;) {
            const char *e = strchr(s, ',');
            size_t len = e ? (size_t)(e - s) : strlen(s);
            if (len == n && !memcmp(s, p->roles[i], n))
                return true;
            s += len + (e ? 1 : 0);
        }
    }
    return false;
}

/* The caller is who a (fresh or cached) identity answer says: check the
 * route's roles, then send the call as them. */
static void s_authorized(s_call_t *c, const Beacon__Identity__AuthenticateReply *a)
{
    if (!s_role_allowed(c->route->roles, a->principal))
        s_problem(c, BC_PERMISSION_DENIED, "your role does not allow this", NULL);
    else
        s_send(c, a->principal);
}

static void s_on_authenticated(void *arg, const Beacon__Reply *reply, const bc_error_t *err)
{
    s_call_t *c = arg;
    c->handle = 0;
    c->thread->inflight--;
    if (err) {
        /* A refused token is 401 whatever identity's reason; anything else
         * (identity unavailable) keeps its own status. */
        s_problem(c,
                  err->code == BC_UNAUTHENTICATED || err->code == BC_NOT_FOUND ? BC_UNAUTHENTICATED
                                                                               : err->code,
                  err->code == BC_UNAUTHENTICATED || err->code == BC_NOT_FOUND
                      ? "the session token is not valid (signed out, expired or unknown)"
                      : err->message,
                  NULL);
        return;
    }
    bc_error_t e;
    Beacon__Identity__AuthenticateReply *a = (Beacon__Identity__AuthenticateReply *)bc_pb_unpack(
        &beacon__identity__authenticate_reply__descriptor, NULL, reply->payload.data,
        reply->payload.len, BC_PB_MAX_DEPTH, &e);
    if (!a || !a->principal) {
        if (a)
            protobuf_c_message_free_unpacked(&a->base, NULL);
        s_problem(c, BC_INTERNAL, "identity sent an unreadable reply", NULL);
        return;
    }
    gw_sessions_put(c->thread->sessions, c->token_hash, c->cache_epoch, a, bc_now_ms());
    s_authorized(c, a);
    protobuf_c_message_free_unpacked(&a->base, NULL);
}

/* Finds who the bearer token belongs to, from the session cache or by
 * asking identity (s_on_authenticated), then sends the route's call as
 * them. */
static void s_authenticate(s_call_t *c)
{
    const char *token = s_bearer(c->req);
    if (!token) {
        s_problem(c, BC_UNAUTHENTICATED, "sign in and send Authorization: Bearer <token>", NULL);
        return;
    }
    bc_token_hash(token, c->token_hash);
    Beacon__Identity__AuthenticateReply *cached = NULL;
    if (gw_sessions_get(c->thread->sessions, c->token_hash, bc_now_ms(), &cached)) {
        s_authorized(c, cached);
        protobuf_c_message_free_unpacked(&cached->base, NULL);
        return;
    }
    c->cache_epoch = gw_sessions_epoch(c->thread->sessions);
    Beacon__Identity__AuthenticateRequest in = BEACON__IDENTITY__AUTHENTICATE_REQUEST__INIT;
    in.token = (char *)token;
    Beacon__Principal anonymous = BEACON__PRINCIPAL__INIT;
    anonymous.remote_addr = c->peer;
    bc_rpc_call_t call = {
        .principal = &anonymous,
        .method = "Authenticate",
        .payload = &in.base,
        .deadline_ms = c->deadline_ms,
        .request_id = c->request_id,
    };
    bc_error_t err;
    c->client = gw_client(c->thread, GW_IDENTITY);
    c->handle = bc_rpc_client_send(c->client, &call, s_on_authenticated, c, &err);
    if (!c->handle) {
        s_problem(c, err.code, err.message, NULL);
        return;
    }
    c->thread->inflight++;
}

int gw_on_req(h2o_handler_t *handler, h2o_req_t *req)
{
    (void)handler;
    gw_thread_t *t = (gw_thread_t *)req->conn->ctx;
    s_call_t *c = h2o_mem_alloc_shared(&req->pool, sizeof *c, s_on_dispose);
    memset(c, 0, sizeof *c);
    c->req = req;
    c->thread = t;
    c->started_us = bc_mono_us();
    s_request_id(req, c->request_id, sizeof c->request_id);

    /* h2o reads header blocks of any size; refuse large ones before any
     * work (and before a token in them is hashed or looked up). */
    size_t header_bytes = req->path.len;
    for (size_t i = 0; i < req->headers.size; i++)
        header_bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (header_bytes > t->max_header_bytes) {
        char msg[96];
        snprintf(msg, sizeof msg, "the request line and headers exceed %zu bytes",
                 t->max_header_bytes);
        s_http_problem(c, 431, "request-header-fields-too-large",
                       "Request header fields too large", msg);
        return 0;
    }
    h2o_iovec_t path = req->path_normalized;
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/healthz"))) {
        if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
            s_http_problem(c, 405, "method-not-allowed", "Method not allowed",
                           "use GET for /healthz");
            return 0;
        }
        gw_health(t, req, c->request_id);
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/metrics"))) {
        gw_metrics_serve(t, req, c->request_id, c->started_us);
        return 0;
    }
    bc_route_param_t params[BC_ROUTE_MAX_PARAMS];
    int nparams = 0, path_known = 0;
    char allow[128];
    int r = bc_route_match(gw_routes, gw_nroutes, sizeof gw_routes[0], req->method.base,
                           req->method.len, path.base, path.len, params, &nparams, &path_known,
                           allow, sizeof allow);
    if (r < 0) {
        if (path_known) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                           h2o_strdup(&req->pool, allow, SIZE_MAX).base, strlen(allow));
            s_http_problem(c, 405, "method-not-allowed", "Method not allowed",
                           "this method is not allowed on this resource");
        } else {
            s_problem(c, BC_NOT_FOUND, "no such resource", NULL);
        }
        return 0;
    }
    if ((gw_routes[r].flags & GW_ROUTE_BOOTSTRAP) && !t->allow_bootstrap) {
        s_problem(c, BC_NOT_FOUND, "no such resource", NULL);
        return 0;
    }
    c->route = &gw_routes[r];
    c->method =
        protobuf_c_service_descriptor_get_method_by_name(c->route->descriptor, c->route->rpc);
    if (req->entity.len > t->max_body) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body exceeds %zu bytes", t->max_body);
        s_problem(c, BC_PAYLOAD_TOO_LARGE, msg, NULL);
        return 0;
    }
    if (s_has_body_method(req->method) && !s_is_json(req)) {
        s_http_problem(c, 415, "unsupported-media-type", "Unsupported media type",
                       "the request body must be sent as Content-Type: application/json");
        return 0;
    }
    if ((c->route->flags & GW_ROUTE_IF_MATCH) &&
        h2o_find_header(&req->headers, H2O_TOKEN_IF_MATCH, -1) < 0) {
        s_http_problem(c, 428, "precondition-required", "Precondition required",
                       "send If-Match with the ETag of the record you read: changes are made "
                       "only to the version you saw");
        return 0;
    }
    bc_error_t err;
    uint8_t *payload = NULL;
    size_t len = 0;
    if (s_build_payload(c, params, nparams, &payload, &len, &err) < 0) {
        s_problem(c, err.code, err.message, err.field);
        return 0;
    }
    ssize_t ik = h2o_find_header_by_str(&req->headers, H2O_STRLIT("idempotency-key"), -1);
    if (ik >= 0) {
        /* Printable ASCII, 1 to 255 characters (a UUID is the usual choice):
         * anything else is refused, never truncated into another key. */
        h2o_iovec_t v = req->headers.entries[ik].value;
        bool ok = v.len >= 1 && v.len < sizeof c->idem;
        for (size_t i = 0; ok && i < v.len; i++)
            ok = v.base[i] > 0x20 && v.base[i] < 0x7f;
        if (!ok) {
            free(payload);
            s_problem(c, BC_INVALID_ARGUMENT,
                      "Idempotency-Key must be 1 to 255 printable characters without spaces",
                      "Idempotency-Key");
            return 0;
        }
        memcpy(c->idem, v.base, v.len);
        c->idem[v.len] = '\0';
    }
    s_peer(req, c->peer, sizeof c->peer);
    c->payload = h2o_mem_alloc_pool(&req->pool, len ? len : 1);
    if (len)
        memcpy(c->payload, payload, len);
    c->payload_len = len;
    free(payload);
    c->deadline_ms = bc_now_ms() + t->request_timeout_ms;
    if (c->route->flags & GW_ROUTE_AUTH) {
        s_authenticate(c);
        return 0;
    }
    /* Unauthenticated routes still say where the call came from (identity
     * throttles logins by it; the audit log records it). */
    Beacon__Principal anonymous = BEACON__PRINCIPAL__INIT;
    s_send(c, &anonymous);
    return 0;
}
