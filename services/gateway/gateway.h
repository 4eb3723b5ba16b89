/*  gateway: the HTTPS/JSON edge. Terminates TLS, routes METHOD /path to
 *  service.method, converts JSON <-> protobuf with the generic converter,
 *  calls the service over ZeroMQ and answers with JSON (or, for a file
 *  route, the file the service made) or application/problem+json (RFC 9457).
 *
 *  Each gateway thread runs its own h2o event loop, its own listening socket
 *  (SO_REUSEPORT) and its own ZeroMQ clients, so threads share nothing but
 *  the read-only configuration, the TLS context and the route table.
 */
#ifndef GATEWAY_H
#define GATEWAY_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#define H2O_USE_EPOLL 1
#include <h2o.h>
#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "bc_config.h"
#include "bc_error.h"
#include "bc_mem.h"
#include "bc_route.h"
#include "bc_rpc.h"

#define GW_NSERVICES 5                 /* back-end services, as in bc_service_names */
#define GW_NCLIENTS (GW_NSERVICES + 1) /* ... and identity, in this process */
#define GW_IDENTITY "identity"
#define GW_IDENTITY_ENDPOINT "inproc://identity"

typedef struct {
    bc_route_key_t key;                           /* method + pattern */
    const char *service;                          /* "intake" */
    const ProtobufCServiceDescriptor *descriptor; /* the service's descriptor */
    const char *rpc;                              /* "CreateClient" */
    int success_status;                           /* 200, 201, 204 */
    const char *summary;                          /* one line, for the API listing */
    const char *bearer_field; /* request field filled from "Authorization: Bearer", or NULL */
    int flags;                /* GW_ROUTE_* */
    /* With GW_ROUTE_AUTH: roles allowed, comma-separated, or "*" for any
     * signed-in caller. Deny by default: an auth route without roles
     * admits nobody. */
    const char *roles;
    /* Request field filled from "If-Match: \"<version>\"" (optimistic
     * concurrency), or NULL. Replies carrying a top-level "version" get it
     * back as ETag. */
    const char *if_match_field;
} gw_route_t;

/* Served only when the allow_bootstrap setting is on (first start). */
#define GW_ROUTE_BOOTSTRAP 1
/* Needs "Authorization: Bearer <token>", checked by identity.Authenticate;
 * the caller's principal then travels in the envelope. */
#define GW_ROUTE_AUTH 2
/* A successful reply may have revoked sessions or keys (logout, staff
 * change, key revocation): this gateway's session cache is flushed before
 * the reply goes out. */
#define GW_ROUTE_REVOKES 4
/* If-Match is required (428 without it). */
#define GW_ROUTE_IF_MATCH 8
/* The reply is a file, not JSON: the method returns beacon.FileReply and
 * the gateway sends its body as it is, with its content_type, as a
 * download (Content-Disposition: attachment; the filename sanitised) and
 * the headers every response carries. Errors stay problem+json. */
#define GW_ROUTE_FILE 16

extern const gw_route_t gw_routes[];
extern const size_t gw_nroutes;

typedef struct gw_thread gw_thread_t;

/* metrics.c: the gateway's figures and GET /metrics (see the file header). */
typedef struct gw_metrics gw_metrics_t;
struct bc_counter;
/* NULL with err for a bad metrics_token. */
gw_metrics_t *gw_metrics_new(const bc_config_t *config, bc_error_t *err);
void gw_metrics_destroy(gw_metrics_t **self);
/* Counts one response: route is the index in gw_routes, or -1 to find it
 * from the request (special paths and unmatched ones get labels of their
 * own). us: since the request arrived. */
void gw_metrics_request(gw_metrics_t *self, const h2o_req_t *req, int route, int status,
                        int64_t us);
void gw_metrics_problem(gw_metrics_t *self, int status);
void gw_metrics_plaintext_refused(gw_metrics_t *self);
/* The counter tls.c adds failed handshakes to. */
struct bc_counter *gw_metrics_handshake_failures(gw_metrics_t *self);
/* GET /metrics: token check, then every service's Metrics merged. */
void gw_metrics_serve(gw_thread_t *t, h2o_req_t *req, const char *request_id, int64_t started_us);

/* session_cache.c: recently authenticated tokens (see the file header). */
typedef struct gw_sessions gw_sessions_t;
struct Beacon__Identity__AuthenticateReply;
/* ttl_ms 0 turns caching off. conninfo: where to LISTEN for revocations. */
gw_sessions_t *gw_sessions_new(const char *conninfo, int64_t ttl_ms, size_t max_entries);
/* Starts the revocation listener; nothing is cached until it is listening. */
int gw_sessions_start(gw_sessions_t *self);
void gw_sessions_destroy(gw_sessions_t **self);
/* A copy of the cached answer for token_hash (caller frees with
 * protobuf_c_message_free_unpacked), or false. */
bool gw_sessions_get(gw_sessions_t *self, const char *token_hash, int64_t now_ms,
                     struct Beacon__Identity__AuthenticateReply **out);
/* The epoch to note before asking identity, for gw_sessions_put. */
uint64_t gw_sessions_epoch(gw_sessions_t *self);
/* Caches identity's answer unless an eviction happened since epoch. */
void gw_sessions_put(gw_sessions_t *self, const char *token_hash, uint64_t epoch,
                     const struct Beacon__Identity__AuthenticateReply *reply, int64_t now_ms);
/* Forgets everything (a revoking route succeeded here). */
void gw_sessions_flush(gw_sessions_t *self);
/* Forgets what a revocation notice "<session|staff|api_key>:<id>" names. */
void gw_sessions_evict(gw_sessions_t *self, const char *what);
bool gw_sessions_live(gw_sessions_t *self);
void gw_sessions_stats(gw_sessions_t *self, uint64_t *hits, uint64_t *misses, size_t *entries,
                       bool *live);

struct gw_thread {
    h2o_context_t ctx; /* first: h2o hands handlers &ctx */
    h2o_accept_ctx_t accept_ctx;
    const bc_config_t *config;
    int index;
    pthread_t thread;
    void *zctx;
    bc_rpc_client_t *clients[GW_NCLIENTS]; /* back-end services, then identity */
    h2o_socket_t *zsocks[GW_NCLIENTS];
    h2o_socket_t *listener;
    h2o_timeout_t sniff_timeout; /* first bytes of a connection */
    size_t max_body;
    size_t max_header_bytes;
    int64_t request_timeout_ms;
    int64_t health_timeout_ms;
    size_t inflight; /* HTTP requests waiting on a service */
    bool allow_bootstrap;
    gw_sessions_t *sessions; /* shared by all threads */
    bc_arena_t *reply_arena; /* a service reply, unpacked, while it is written as JSON */
    gw_metrics_t *metrics;   /* shared by all threads */
};

/* server.c */
/* Runs one gateway thread until the stop flag is set. */
void *gw_thread_main(void *arg);
extern volatile sig_atomic_t gw_stop;
/* The client for a service name, or NULL. */
bc_rpc_client_t *gw_client(gw_thread_t *t, const char *service);

/* tls.c: the one place that configures OpenSSL. Failed handshakes are
 * added to handshake_failures (may be NULL). */
SSL_CTX *gw_tls_new(const char *cert_file, const char *key_file,
                    struct bc_counter *handshake_failures, bc_error_t *err);

/* api.c: the request handler registered for every path. */
int gw_on_req(h2o_handler_t *handler, h2o_req_t *req);

/* health.c: GET /healthz. */
void gw_health(gw_thread_t *t, h2o_req_t *req, const char *request_id);

/* problem.c: responses. */
/* Adds the headers every response carries (request id, no-store, HSTS...). */
void gw_common_headers(h2o_req_t *req, const char *request_id);
/* Sends json (reference stolen) with status and content type. */
void gw_send_json(h2o_req_t *req, int status, const char *content_type, json_t *json);
/* Sends len bytes of body (copied) with status and content type (copied). */
void gw_send_bytes(h2o_req_t *req, int status, const char *content_type, const void *body,
                   size_t len);
/* Sends an RFC 9457 problem built from err (message, field) and code. */
void gw_send_problem(h2o_req_t *req, const char *request_id, bc_code_t code, const char *detail,
                     const char *field);
/* Sends a problem with an explicit HTTP status and type slug. */
void gw_send_http_problem(h2o_req_t *req, const char *request_id, int status, const char *slug,
                          const char *title, const char *detail, const char *field);
/* The plain bytes of a problem response for a connection that did not speak
 * TLS; static storage. */
const char *gw_plaintext_rejection(size_t *len);
/* Logs one access line and counts the response in the metrics. */
void gw_access_log(h2o_req_t *req, const char *request_id, int status, int64_t started_us);
/* The same when the route (index in gw_routes, -1: unknown) is at hand. */
void gw_access_log_route(h2o_req_t *req, const char *request_id, int route, int status,
                         int64_t started_us);

#endif
