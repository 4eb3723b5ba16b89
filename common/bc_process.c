/*  bc_process: what every Beacon process shares at start (the common
 *  settings, logging, signals) and the main() of a back-end service. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "bc_log.h"
#include "bc_metrics.h"
#include "bc_service.h"

const char *const bc_service_names[] = {"intake", "scheduling", "notes", "referral", "reporting",
                                        NULL};

const bc_setting_t bc_common_settings[] = {
    {"database_url", BC_CFG_STRING, "dbname=beacon", 0, 0,
     "libpq connection string (URI or key=value) for the Beacon database"},
    {"migration_database_url", BC_CFG_STRING, "", 0, 0,
     "connection string of the schema owner, used only to apply migrations "
     "(default: database_url); services then connect as a role that owns nothing, "
     "so row-level security applies to them"},
    {"log_level", BC_CFG_STRING, "info", 0, 0, "minimum log level: debug, info, warn, error, off"},
    /* A worker spends most of a request waiting on PostgreSQL round trips
     * and the commit's WAL flush, so twice the cores of a small machine
     * keeps the database busy: 8 against 4 gave 15-30% more registrations
     * per second on 2 cores (bench client_create, side by side). */
    {"workers", BC_CFG_INT, "8", 1, 64,
     "worker threads per service, each with its own PostgreSQL connection"},
    {"endpoint_intake", BC_CFG_STRING, "tcp://127.0.0.1:7101", 0, 0,
     "ZeroMQ endpoint(s) of the intake service (comma-separated instances)"},
    {"endpoint_scheduling", BC_CFG_STRING, "tcp://127.0.0.1:7102", 0, 0,
     "ZeroMQ endpoint(s) of the scheduling service"},
    {"endpoint_notes", BC_CFG_STRING, "tcp://127.0.0.1:7103", 0, 0,
     "ZeroMQ endpoint(s) of the notes service"},
    {"endpoint_referral", BC_CFG_STRING, "tcp://127.0.0.1:7104", 0, 0,
     "ZeroMQ endpoint(s) of the referral service"},
    {"endpoint_reporting", BC_CFG_STRING, "tcp://127.0.0.1:7105", 0, 0,
     "ZeroMQ endpoint(s) of the reporting service"},
    {"endpoint_identity", BC_CFG_STRING, "", 0, 0,
     "ZeroMQ endpoint on which the gateway answers identity's ReplayEvents (and nothing "
     "else: identity's other methods stay in-process); empty: not served, and subscribers "
     "of identity's events cannot catch up on what they missed"},
    {"bind_endpoint", BC_CFG_STRING, "", 0, 0,
     "endpoint this service binds (default: the first of its endpoint_<name>)"},
    {"migrations_dir", BC_CFG_STRING, "services", 0, 0,
     "folder holding <service>/migrations/NNN_name.sql"},
    {"common_migrations_dir", BC_CFG_STRING, "common/migrations", 0, 0,
     "folder holding the shared NNN_name.sql migrations (audit log), applied by every service"},
    {"rpc_max_message_bytes", BC_CFG_INT, "4194304", 1024, 268435456,
     "largest ZeroMQ message accepted (ZMQ_MAXMSGSIZE)"},
    {"rpc_heartbeat_ms", BC_CFG_INT, "1000", 0, 60000,
     "ZMTP heartbeat interval; a peer silent for 3 intervals is dropped (0 = off)"},
    {"db_connect_timeout_ms", BC_CFG_INT, "30000", 0, 600000,
     "how long to keep retrying the first database connection at start"},
    {"audit_writers", BC_CFG_INT, "1", 1, 64,
     "group-committing audit writers per service instance (each its own connection and chain)"},
    {"audit_commit_delay_us", BC_CFG_INT, "500", 0, 100000,
     "under load (batches of 8 or more), how long an audit writer waits for more reads to "
     "audit before committing: fewer WAL flushes (measured at 64 concurrent callers: 10 reads "
     "per commit became 18 to 21, and 5.3-6.2k audited reads/s became 6.3-6.9k); 0 commits "
     "at once"},
    {"field_keys_file", BC_CFG_STRING, "var/keys/field.keys", 0, 0,
     "key file for encryption at rest of client identifiers and note text: AES-256-GCM keys "
     "(the active one and older ones kept for rotation) and the blind-index key; format in "
     "common/bc_crypt.h; must be mode 0600 and kept outside the database and its backups "
     "(deploy/gen-keys.sh DIR creates DIR/field.keys)"},
    {"events_bind_endpoint", BC_CFG_STRING, "", 0, 0,
     "ZeroMQ endpoint on which this service publishes its events (PUB, numbered for "
     "ReplayEvents); empty: events wait in the outbox, unpublished"},
    {"max_queued_requests", BC_CFG_INT, "1024", 1, 1000000,
     "requests waiting for a free worker before new ones are refused as overloaded"},
    {"shutdown_timeout_ms", BC_CFG_INT, "10000", 0, 600000,
     "on SIGTERM, how long requests in progress may take to finish"},
    {"metrics", BC_CFG_BOOL, "true", 0, 0,
     "count and time requests for the Metrics method and the gateway's /metrics (false: "
     "they are not recorded and read zero)"},
    BC_SETTINGS_END,
};

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static const char *s_bind_endpoint(const bc_service_def_t *def, const bc_config_t *config,
                                   char *buf, size_t len)
{
    const char *bind = bc_config_str(config, "bind_endpoint");
    if (*bind)
        return bind;
    char key[64];
    snprintf(key, sizeof key, "endpoint_%s", def->name);
    snprintf(buf, len, "%s", bc_config_str(config, key));
    buf[strcspn(buf, ", ")] = '\0';
    return buf;
}


/* The allocator's footing for a server. By default glibc hands memory back
 * to the kernel as soon as 128 KB lie free at the top of a heap, and serves
 * blocks over 128 KB (growing with use) straight from mmap. A worker that
 * builds a large reply (a quarter's calendar is a megabyte of rows, then of
 * protobuf) then returns and re-faults every page of it on each request:
 * measured as a fifth of the scheduling service's CPU time. These settings
 * keep up to 32 MB free per heap for the next request and take blocks up
 * to 8 MB from the heap, where they are reused. */
static void s_malloc_setup(void)
{
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
    mallopt(M_TOP_PAD, 1 << 20);
}

bc_config_t *bc_process_start(const char *name, const bc_setting_t *extra, int argc, char **argv,
                              void (*on_stop)(int), int *exit_code)
{
    s_malloc_setup();
    char program[64];
    snprintf(program, sizeof program, "beacon-%s", name);
    bc_config_t *config = bc_config_new(program);
    bc_config_add(config, bc_common_settings);
    if (extra)
        bc_config_add(config, extra);
    bc_error_t err;
    int rc = bc_config_load(config, argc, argv, &err);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "%s: %s\n", program, err.message);
        bc_config_destroy(&config);
        *exit_code = rc < 0 ? 2 : 0;
        return NULL;
    }
    if (bc_log_init(name, bc_config_str(config, "log_level")) < 0) {
        fprintf(stderr, "%s: unknown log_level '%s'\n", program, bc_config_str(config, "log_level"));
        bc_config_destroy(&config);
        *exit_code = 2;
        return NULL;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return config;
}

int bc_service_main(const bc_service_def_t *def, int argc, char **argv)
{
    int exit_code = 0;
    bc_config_t *config = bc_process_start(def->name, def->settings, argc, argv, s_on_signal,
                                           &exit_code);
    if (!config)
        return exit_code;
    char epbuf[512];
    const char *endpoint = s_bind_endpoint(def, config, epbuf, sizeof epbuf);
    void *zctx = zmq_ctx_new();
    bc_error_t err;
    bc_service_t *service = bc_service_new(def, config, zctx, endpoint, &err);
    if (service) {
        bc_metrics_add_process(bc_service_metrics(service));
        bc_service_run(service, &s_stop);
        bc_service_destroy(&service);
        exit_code = 0;
    } else {
        bc_err("%s failed to start: %s (%s)", def->name, err.message, err.detail);
        exit_code = 1;
    }
    zmq_ctx_term(zctx);
    bc_info("beacon-%s stopped", def->name);
    bc_config_destroy(&config);
    return exit_code;
}
