/*  metrics: the gateway's own figures and GET /metrics.
 *
 *  Every HTTP response is counted by route template (never the raw path: no
 *  identifier reaches a label), method and status class, and its time from
 *  the request's arrival observed in a histogram per route; problem
 *  responses by status; TLS handshakes that ended in a fatal alert.
 *
 *  GET /metrics (deny by default): without the metrics_token setting it
 *  answers 404 like any unknown path; with it, only a request carrying
 *  "Authorization: Bearer <metrics_token>" (compared in constant time) gets
 *  the text, anything else 401 problem+json. The scrape asks every service
 *  (and identity, in this process) for its Metrics in parallel, each within
 *  metrics_timeout_ms, and merges their texts with the gateway's own, so
 *  that each family appears once; beacon_up{service} says which services
 *  answered, and one that did not is 0 rather than a failed scrape.
 */
#include <string.h>

#include "bc_auth.h"
#include "bc_log.h"
#include "bc_metrics.h"
#include "bc_service.h"
#include "bc_util.h"
#include "gateway.h"
#include "types.pb-c.h"

/* Methods a label may name; anything else is "other". */
static const char *const s_methods[] = {"GET",   "HEAD",   "POST",    "PUT",
                                        "PATCH", "DELETE", "OPTIONS", "other"};
#define S_NMETHODS (sizeof s_methods / sizeof s_methods[0])
/* Paths outside the route table, each a label of its own. */
enum { S_HEALTHZ, S_METRICS, S_UNMATCHED, S_NSPECIAL };
static const char *const s_special[] = {"/healthz", "/metrics", "unmatched"};
static const char *const s_classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
#define S_NCLASSES 5
#define S_PROBLEM_MIN 400
#define S_PROBLEM_MAX 599

struct gw_metrics {
    bc_metrics_t *registry;
    bool on;
    size_t nslots;             /* gw_nroutes + S_NSPECIAL * S_NMETHODS */
    bc_counter_t **requests;   /* [slot][class] */
    bc_histogram_t **duration; /* [slot] */
    bc_counter_t *problems[S_PROBLEM_MAX - S_PROBLEM_MIN + 1];
    bc_counter_t *handshake_failures;
    bc_counter_t *plaintext_refused;
    char token_hash[BC_TOKEN_HASH_LEN + 1]; /* of metrics_token; "" when unset */
    int64_t timeout_ms;
};

static size_t s_method_index(h2o_iovec_t m)
{
    for (size_t i = 0; i + 1 < S_NMETHODS; i++)
        if (h2o_memis(m.base, m.len, s_methods[i], strlen(s_methods[i])))
            return i;
    return S_NMETHODS - 1;
}

gw_metrics_t *gw_metrics_new(const bc_config_t *config, bc_error_t *err)
{
    const char *token = bc_config_str(config, "metrics_token");
    if (*token && (strlen(token) < 16 || strlen(token) > 256)) {
        bc_error_set(err, BC_INVALID_ARGUMENT, "metrics_token",
                     "metrics_token must be 16 to 256 characters (a random secret)");
        return NULL;
    }
    gw_metrics_t *self = bc_calloc(1, sizeof *self);
    self->registry = bc_metrics_new("gateway");
    self->on = bc_config_bool(config, "metrics");
    self->timeout_ms = bc_config_int(config, "metrics_timeout_ms");
    if (*token)
        bc_token_hash(token, self->token_hash);
    self->nslots = gw_nroutes + S_NSPECIAL * S_NMETHODS;
    self->requests = bc_calloc(self->nslots * S_NCLASSES, sizeof *self->requests);
    self->duration = bc_calloc(self->nslots, sizeof *self->duration);
    for (size_t s = 0; s < self->nslots; s++) {
        const char *route, *method;
        if (s < gw_nroutes) {
            route = gw_routes[s].key.pattern;
            method = gw_routes[s].key.method;
        } else {
            route = s_special[(s - gw_nroutes) / S_NMETHODS];
            method = s_methods[(s - gw_nroutes) % S_NMETHODS];
        }
        for (size_t c = 0; c < S_NCLASSES; c++) {
            const char *labels[] = {"route", route, "method", method, "status", s_classes[c], NULL};
            self->requests[s * S_NCLASSES + c] =
                bc_metrics_counter(self->registry, "beacon_http_requests_total",
                                   "HTTP responses by route template, method and status class",
                                   labels, BC_METRIC_HIDE_ZERO);
        }
    }
    for (size_t s = 0; s < self->nslots; s++) {
        const char *route =
            s < gw_nroutes ? gw_routes[s].key.pattern : s_special[(s - gw_nroutes) / S_NMETHODS];
        const char *method =
            s < gw_nroutes ? gw_routes[s].key.method : s_methods[(s - gw_nroutes) % S_NMETHODS];
        const char *labels[] = {"route", route, "method", method, NULL};
        self->duration[s] = bc_metrics_histogram(
            self->registry, "beacon_http_request_duration_seconds",
            "Time from a request's arrival at the gateway to its response, by route template",
            labels, bc_metrics_latency_buckets, bc_metrics_latency_nbuckets, BC_METRIC_HIDE_ZERO);
    }
    for (int st = S_PROBLEM_MIN; st <= S_PROBLEM_MAX; st++) {
        char status[12];
        snprintf(status, sizeof status, "%d", st);
        const char *labels[] = {"status", status, NULL};
        self->problems[st - S_PROBLEM_MIN] = bc_metrics_counter(
            self->registry, "beacon_http_problems_total",
            "application/problem+json responses, by HTTP status", labels, BC_METRIC_HIDE_ZERO);
    }
    self->handshake_failures = bc_metrics_counter(
        self->registry, "beacon_tls_handshake_failures_total",
        "TLS handshakes that ended in a fatal alert (old protocol version, no shared cipher, "
        "bad record...)",
        NULL, 0);
    self->plaintext_refused = bc_metrics_counter(
        self->registry, "beacon_tls_plaintext_refused_total",
        "Connections refused because they did not open with a TLS handshake", NULL, 0);
    bc_metrics_add_process(self->registry);
    return self;
}

void gw_metrics_destroy(gw_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_metrics_t *self = *self_p;
    bc_metrics_destroy(&self->registry);
    free(self->requests);
    free(self->duration);
    free(self);
    *self_p = NULL;
}

bc_counter_t *gw_metrics_handshake_failures(gw_metrics_t *self)
{
    return self ? self->handshake_failures : NULL;
}

void gw_metrics_plaintext_refused(gw_metrics_t *self)
{
    if (self && self->on)
        bc_counter_add(self->plaintext_refused, 1);
}

void gw_metrics_problem(gw_metrics_t *self, int status)
{
    if (self && self->on && status >= S_PROBLEM_MIN && status <= S_PROBLEM_MAX)
        bc_counter_add(self->problems[status - S_PROBLEM_MIN], 1);
}

/* The label slot of a request: its route, or a special path with its
 * method. */
static size_t s_slot(const h2o_req_t *req, int route)
{
    h2o_iovec_t path = req->path_normalized;
    size_t special;
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/healthz"))) {
        special = S_HEALTHZ;
    } else if (h2o_memis(path.base, path.len, H2O_STRLIT("/metrics"))) {
        special = S_METRICS;
    } else {
        if (route < 0) {
            bc_route_param_t params[BC_ROUTE_MAX_PARAMS];
            int nparams, known;
            char allow[8];
            route = bc_route_match(gw_routes, gw_nroutes, sizeof gw_routes[0], req->method.base,
                                   req->method.len, path.base, path.len, params, &nparams, &known,
                                   allow, sizeof allow);
        }
        if (route >= 0 && (size_t)route < gw_nroutes)
            return (size_t)route;
        special = S_UNMATCHED;
    }
    return gw_nroutes + special * S_NMETHODS + s_method_index(req->method);
}

void gw_metrics_request(gw_metrics_t *self, const h2o_req_t *req, int route, int status, int64_t us)
{
    if (!self || !self->on)
        return;
    size_t slot = s_slot(req, route);
    int cls = status / 100 - 1;
    if (cls < 0 || cls >= S_NCLASSES)
        cls = S_NCLASSES - 1;
    bc_counter_add(self->requests[slot * S_NCLASSES + (size_t)cls], 1);
    bc_histogram_observe_us(self->duration[slot], us);
}

/* ---- GET /metrics ----------------------------------------------------------- */

typedef struct s_scrape s_scrape_t;

typedef struct {
    s_scrape_t *scrape;
    int index;
    uint64_t handle;
    bc_rpc_client_t *client;
    char *text; /* the service's text (malloc'd), or NULL */
    size_t len;
} s_source_t;

struct s_scrape {
    h2o_req_t *req;
    gw_thread_t *thread;
    char request_id[72];
    int64_t started_us;
    int remaining;
    s_source_t sources[GW_NCLIENTS];
};

static void s_scrape_dispose(void *p)
{
    s_scrape_t *s = p;
    for (int i = 0; i < GW_NCLIENTS; i++) {
        if (s->sources[i].handle) {
            bc_rpc_client_cancel(s->sources[i].client, s->sources[i].handle);
            s->sources[i].handle = 0;
            s->thread->inflight--;
        }
        free(s->sources[i].text);
        s->sources[i].text = NULL;
    }
}

static const char *s_source_name(int i)
{
    return i < GW_NSERVICES ? bc_service_names[i] : GW_IDENTITY;
}

static void s_scrape_finish(s_scrape_t *s)
{
    gw_metrics_t *m = s->thread->metrics;
    size_t own_len = 0;
    char *own = bc_metrics_render(m->registry, &own_len);
    /* Whether each service answered, as a family of its own. */
    char up[2048];
    size_t up_len = (size_t)snprintf(
        up, sizeof up,
        "# HELP beacon_up Whether the service answered this scrape's Metrics call within "
        "metrics_timeout_ms (1) or not (0)\n# TYPE beacon_up gauge\n");
    for (int i = 0; i < GW_NCLIENTS && up_len < sizeof up; i++)
        up_len +=
            (size_t)snprintf(up + up_len, sizeof up - up_len, "beacon_up{service=\"%s\"} %d\n",
                             s_source_name(i), s->sources[i].text ? 1 : 0);
    const char *texts[GW_NCLIENTS + 2] = {own, up};
    size_t lens[GW_NCLIENTS + 2] = {own_len, up_len};
    size_t n = 2;
    for (int i = 0; i < GW_NCLIENTS; i++)
        if (s->sources[i].text) {
            texts[n] = s->sources[i].text;
            lens[n++] = s->sources[i].len;
        }
    size_t len = 0;
    char *text = bc_metrics_merge(texts, lens, n, &len);
    free(own);
    gw_common_headers(s->req, s->request_id);
    gw_send_bytes(s->req, 200, BC_METRICS_CONTENT_TYPE, text, len);
    free(text);
    gw_access_log(s->req, s->request_id, 200, s->started_us);
}

static void s_source_done(s_source_t *src)
{
    if (--src->scrape->remaining == 0)
        s_scrape_finish(src->scrape);
}

static void s_on_metrics(void *arg, const Beacon__Reply *reply, const bc_error_t *err)
{
    s_source_t *src = arg;
    src->handle = 0;
    src->scrape->thread->inflight--;
    if (err) {
        bc_debug("metrics: %s did not answer: %s", s_source_name(src->index), err->message);
    } else {
        bc_error_t e;
        Beacon__MetricsReply *r = (Beacon__MetricsReply *)bc_pb_unpack(
            &beacon__metrics_reply__descriptor, NULL, reply->payload.data, reply->payload.len,
            BC_PB_MAX_DEPTH, &e);
        if (r && bc_utf8_valid(r->text, strlen(r->text))) {
            src->len = strlen(r->text);
            src->text = bc_strndup(r->text, src->len);
        } else {
            bc_warn("metrics: unreadable Metrics reply from %s", s_source_name(src->index));
        }
        if (r)
            protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    s_source_done(src);
}

/* Authorization: Bearer <metrics_token>, compared as SHA-256 hashes in
 * constant time (the length of the secret does not show either). */
static bool s_authorized(const gw_metrics_t *m, h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len <= 7 || v.len > 7 + 256 || !h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")))
        return false;
    char token[300];
    memcpy(token, v.base + 7, v.len - 7);
    token[v.len - 7] = '\0';
    char hash[BC_TOKEN_HASH_LEN + 1];
    bc_token_hash(token, hash);
    return bc_ct_equal(hash, m->token_hash, BC_TOKEN_HASH_LEN);
}

static void s_refuse(h2o_req_t *req, const char *request_id, int64_t started_us, bc_code_t code,
                     const char *detail)
{
    gw_common_headers(req, request_id);
    gw_send_problem(req, request_id, code, detail, NULL);
    gw_access_log(req, request_id, bc_code_http_status(code), started_us);
}

void gw_metrics_serve(gw_thread_t *t, h2o_req_t *req, const char *request_id, int64_t started_us)
{
    gw_metrics_t *m = t->metrics;
    if (!m || !m->token_hash[0]) {
        s_refuse(req, request_id, started_us, BC_NOT_FOUND, "no such resource");
        return;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
        gw_common_headers(req, request_id);
        gw_send_http_problem(req, request_id, 405, "method-not-allowed", "Method not allowed",
                             "use GET for /metrics", NULL);
        gw_access_log(req, request_id, 405, started_us);
        return;
    }
    if (!s_authorized(m, req)) {
        s_refuse(req, request_id, started_us, BC_UNAUTHENTICATED,
                 "send the metrics token as Authorization: Bearer <token>");
        return;
    }
    s_scrape_t *s = h2o_mem_alloc_shared(&req->pool, sizeof *s, s_scrape_dispose);
    memset(s, 0, sizeof *s);
    s->req = req;
    s->thread = t;
    s->started_us = started_us;
    snprintf(s->request_id, sizeof s->request_id, "%s", request_id);
    s->remaining = GW_NCLIENTS;
    Beacon__MetricsRequest in = BEACON__METRICS_REQUEST__INIT;
    for (int i = 0; i < GW_NCLIENTS; i++) {
        s_source_t *src = &s->sources[i];
        src->scrape = s;
        src->index = i;
        src->client = t->clients[i];
        bc_rpc_call_t call = {
            .method = "Metrics",
            .payload = &in.base,
            .deadline_ms = bc_now_ms() + m->timeout_ms,
            .request_id = s->request_id,
        };
        bc_error_t err;
        src->handle = bc_rpc_client_send(src->client, &call, s_on_metrics, src, &err);
        if (src->handle)
            t->inflight++;
        else
            s_source_done(src); /* down now: up 0; the answer goes once all are in */
    }
}
