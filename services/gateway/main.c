/*  beacon-gateway: the HTTPS/JSON edge. Parses settings, loads the TLS
 *  certificate, starts the gateway threads and stops them on SIGTERM after
 *  requests in progress have been answered. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "bc_version.h"
#include "bc_log.h"
#include "bc_service.h"
#include "gateway.h"
#include "identity.h"

static const bc_setting_t s_settings[] = {
    {"listen_address", BC_CFG_STRING, "127.0.0.1", 0, 0, "IP address the HTTPS listener binds"},
    {"listen_port", BC_CFG_INT, "8443", 1, 65535, "TCP port of the HTTPS listener"},
    {"tls_cert", BC_CFG_STRING, "var/tls/cert.pem", 0, 0, "PEM certificate chain"},
    {"tls_key", BC_CFG_STRING, "var/tls/key.pem", 0, 0, "PEM private key"},
    {"max_body_bytes", BC_CFG_INT, "1048576", 1024, 67108864,
     "largest request body accepted (413 problem+json above it)"},
    {"max_header_bytes", BC_CFG_INT, "16384", 1024, 1048576,
     "largest request line plus headers accepted (431 problem+json above it)"},
    {"request_timeout_ms", BC_CFG_INT, "10000", 100, 600000,
     "how long a request may wait for a service before 503"},
    {"health_timeout_ms", BC_CFG_INT, "2000", 50, 60000, "deadline of each /healthz probe"},
    {"gateway_threads", BC_CFG_INT, "1", 1, 64, "event-loop threads (each its own listener)"},
    {"allow_bootstrap", BC_CFG_BOOL, "false", 0, 0,
     "serve POST /api/v1/bootstrap, which creates the first agency, site and agency_admin "
     "while no staff account exists; turn it off once that is done"},
    {"session_cache_ttl_ms", BC_CFG_INT, "30000", 0, 60000,
     "how long the gateway may reuse identity's answer for a token (0: ask identity on every "
     "request); revocations still take effect at once"},
    {"session_cache_entries", BC_CFG_INT, "100000", 1, 10000000,
     "most tokens the session cache holds"},
    {"idle_timeout_ms", BC_CFG_INT, "30000", 1000, 3600000,
     "close a keep-alive connection idle this long"},
    {"metrics_token", BC_CFG_STRING, "", 0, 0,
     "bearer token (16 to 256 characters, random) that GET /metrics requires; empty: "
     "/metrics answers 404"},
    {"metrics_timeout_ms", BC_CFG_INT, "1000", 50, 30000,
     "how long a /metrics scrape waits for each service's Metrics (beacon_up 0 after it)"},
    BC_SETTINGS_END,
};

/* Identity runs inside the gateway process: the same service host as the
 * back-end services, reached by the gateway threads over inproc. */
static void *s_identity_main(void *arg)
{
    bc_service_run(arg, &gw_stop);
    return NULL;
}

static void s_on_signal(int sig)
{
    (void)sig;
    gw_stop = 1;
}

/* --routes: the route table as JSON, one route per line (the access-matrix
 * test and the README's API listing are generated from it). */
static int s_print_routes(void)
{
    for (size_t i = 0; i < gw_nroutes; i++) {
        const gw_route_t *r = &gw_routes[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:s?}", "method",
                              r->key.method, "path", r->key.pattern, "service", r->service, "rpc",
                              r->rpc, "summary", r->summary, "auth", (r->flags & GW_ROUTE_AUTH) != 0,
                              "bootstrap", (r->flags & GW_ROUTE_BOOTSTRAP) != 0, "roles",
                              (r->flags & GW_ROUTE_AUTH) ? (r->roles ? r->roles : "") : NULL);
        char *text = json_dumps(o, JSON_COMPACT);
        puts(text);
        free(text);
        json_decref(o);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--routes"))
        return s_print_routes();
    int exit_code = 0;
    bc_config_t *config =
        bc_process_start("gateway", s_settings, argc, argv, s_on_signal, &exit_code);
    if (!config)
        return exit_code;
    bc_error_t err;
    gw_metrics_t *metrics = gw_metrics_new(config, &err);
    if (!metrics) {
        bc_err("%s", err.message);
        bc_config_destroy(&config);
        return 2;
    }
    SSL_CTX *ssl = gw_tls_new(bc_config_str(config, "tls_cert"), bc_config_str(config, "tls_key"),
                              gw_metrics_handshake_failures(metrics), &err);
    if (!ssl) {
        bc_err("%s (%s)", err.message, err.detail);
        gw_metrics_destroy(&metrics);
        bc_config_destroy(&config);
        return 1;
    }
    size_t plain_len;
    gw_plaintext_rejection(&plain_len); /* build the static text before threads start */

    size_t max_body = (size_t)bc_config_int(config, "max_body_bytes");
    h2o_globalconf_t globalconf;
    h2o_config_init(&globalconf);
    /* h2o answers bodies beyond its own limit with a plain 413 before our
     * handler runs; keep its limit above ours so callers normally get the
     * problem+json 413 from the handler. */
    globalconf.max_request_entity_size = max_body * 4;
    globalconf.http1.req_timeout = (uint64_t)bc_config_int(config, "idle_timeout_ms");
    globalconf.http2.idle_timeout = (uint64_t)bc_config_int(config, "idle_timeout_ms");
    globalconf.server_name = h2o_iovec_init(H2O_STRLIT("beacon"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof *handler);
    handler->on_req = gw_on_req;

    int nthreads = (int)bc_config_int(config, "gateway_threads");
    void *zctx = zmq_ctx_new();
    bc_service_t *identity =
        bc_service_new(&identity_service, config, zctx, GW_IDENTITY_ENDPOINT, &err);
    if (!identity) {
        bc_err("identity did not start: %s (%s)", err.message, err.detail);
        zmq_ctx_term(zctx);
        SSL_CTX_free(ssl);
        h2o_config_dispose(&globalconf);
        gw_metrics_destroy(&metrics);
        bc_config_destroy(&config);
        return 1;
    }
    pthread_t identity_thread;
    if (pthread_create(&identity_thread, NULL, s_identity_main, identity) != 0) {
        bc_err("cannot start the identity thread");
        gw_stop = 1;
        bc_service_destroy(&identity);
        zmq_ctx_term(zctx);
        SSL_CTX_free(ssl);
        h2o_config_dispose(&globalconf);
        gw_metrics_destroy(&metrics);
        bc_config_destroy(&config);
        return 1;
    }
    /* identity's ReplayEvents for subscribers on other hosts, when asked. */
    const char *replay_endpoint = bc_config_str(config, "endpoint_identity");
    bc_service_t *replay = NULL;
    pthread_t replay_thread;
    int replay_failed = 0;
    if (*replay_endpoint &&
        (!(replay = bc_service_new(&identity_events_service, config, zctx, replay_endpoint,
                                   &err)) ||
         pthread_create(&replay_thread, NULL, s_identity_main, replay) != 0)) {
        bc_err("identity's ReplayEvents did not start on %s: %s", replay_endpoint,
               replay ? "cannot start its thread" : err.message);
        bc_service_destroy(&replay);
        replay_failed = 1;
        gw_stop = 1; /* the gateway threads end at once; the exit status says why */
    }
    gw_sessions_t *sessions = gw_sessions_new(
        bc_config_str(config, "database_url"), bc_config_int(config, "session_cache_ttl_ms"),
        (size_t)bc_config_int(config, "session_cache_entries"));
    if (gw_sessions_start(sessions) < 0)
        bc_warn("session cache off: cannot start its listener thread");
    gw_thread_t *threads = calloc((size_t)nthreads, sizeof *threads);
    int started = 0;
    for (; started < nthreads; started++) {
        gw_thread_t *t = &threads[started];
        t->config = config;
        t->index = started;
        t->zctx = zctx;
        t->max_body = max_body;
        t->max_header_bytes = (size_t)bc_config_int(config, "max_header_bytes");
        t->request_timeout_ms = bc_config_int(config, "request_timeout_ms");
        t->health_timeout_ms = bc_config_int(config, "health_timeout_ms");
        t->allow_bootstrap = bc_config_bool(config, "allow_bootstrap");
        t->sessions = sessions;
        t->metrics = metrics;
        h2o_context_init(&t->ctx, h2o_evloop_create(), &globalconf);
        t->accept_ctx.ctx = &t->ctx;
        t->accept_ctx.hosts = globalconf.hosts;
        t->accept_ctx.ssl_ctx = ssl;
        if (pthread_create(&t->thread, NULL, gw_thread_main, t) != 0) {
            bc_err("cannot start gateway thread %d", started);
            gw_stop = 1;
            break;
        }
    }
    bc_info("beacon-gateway %s listening on https://%s:%lld/ with %d thread(s)", BEACON_VERSION,
            bc_config_str(config, "listen_address"),
            (long long)bc_config_int(config, "listen_port"), started);
    int status = 0;
    for (int i = 0; i < started; i++) {
        void *ret = NULL;
        pthread_join(threads[i].thread, &ret);
        if (ret)
            status = 1;
        h2o_evloop_t *loop = threads[i].ctx.loop;
        h2o_context_dispose(&threads[i].ctx);
        h2o_evloop_destroy(loop);
    }
    free(threads);
    gw_sessions_destroy(&sessions);
    gw_stop = 1; /* also when the threads ended on an error */
    pthread_join(identity_thread, NULL);
    if (replay)
        pthread_join(replay_thread, NULL);
    bc_service_destroy(&replay);
    bc_service_destroy(&identity);
    zmq_ctx_term(zctx);
    SSL_CTX_free(ssl);
    h2o_config_dispose(&globalconf);
    gw_metrics_destroy(&metrics);
    bc_info("beacon-gateway stopped");
    bc_config_destroy(&config);
    return status ? status : replay_failed;
}
