/*  bc_service: configuration, migrations, the ROUTER front end, the
 *  load-balancing proxy and the worker threads every back-end service runs.
 *  The dispatcher (envelope checks, handler table) is in bc_dispatch.c.
 */
#include "bc_service.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bc_log.h"
#include "bc_migrate.h"
#include "bc_rpc.h"
#include "bc_util.h"

const char *const bc_service_names[] = {"intake", "scheduling", "notes", "referral", "reporting",
                                        NULL};

const bc_setting_t bc_common_settings[] = {
    {"database_url", BC_CFG_STRING, "dbname=beacon", 0, 0,
     "libpq connection string (URI or key=value) for the Beacon database"},
    {"log_level", BC_CFG_STRING, "info", 0, 0, "minimum log level: debug, info, warn, error, off"},
    {"workers", BC_CFG_INT, "4", 1, 64,
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
    {"bind_endpoint", BC_CFG_STRING, "", 0, 0,
     "endpoint this service binds (default: the first of its endpoint_<name>)"},
    {"migrations_dir", BC_CFG_STRING, "services", 0, 0,
     "folder holding <service>/migrations/NNN_name.sql"},
    {"rpc_max_message_bytes", BC_CFG_INT, "4194304", 1024, 268435456,
     "largest ZeroMQ message accepted (ZMQ_MAXMSGSIZE)"},
    {"rpc_heartbeat_ms", BC_CFG_INT, "1000", 0, 60000,
     "ZMTP heartbeat interval; a peer silent for 3 intervals is dropped (0 = off)"},
    {"db_connect_timeout_ms", BC_CFG_INT, "30000", 0, 600000,
     "how long to keep retrying the first database connection at start"},
    {"shutdown_timeout_ms", BC_CFG_INT, "10000", 0, 600000,
     "on SIGTERM, how long requests in progress may take to finish"},
    BC_SETTINGS_END,
};

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

typedef struct {
    const bc_service_def_t *def;
    const bc_config_t *config;
    void *zctx;
    bc_dispatcher_t *dispatcher;
    const char *backend;
    int index;
    pthread_t thread;
} s_worker_t;

/* A worker: a REQ socket to the proxy ("READY" first, then one request, one
 * reply, strictly alternating) and its own database connection. */
static void *s_worker_main(void *arg)
{
    s_worker_t *w = arg;
    char name[64];
    snprintf(name, sizeof name, "beacon-%s-%d", w->def->name, w->index);
    bc_db_t *db = bc_db_new(bc_config_str(w->config, "database_url"), name);
    bc_error_t err;
    if (bc_db_connect(db, 2000, &err) < 0)
        bc_warn("worker %d: database not reachable yet (%s); will retry per request", w->index,
                err.detail);
    bc_arena_t *arena = bc_arena_new(16384);
    void *sock = zmq_socket(w->zctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(sock, w->backend) < 0 || zmq_send(sock, "READY", 5, 0) < 0) {
        bc_err("worker %d cannot reach the proxy: %s", w->index, zmq_strerror(errno));
        goto done;
    }
    for (;;) {
        zmq_msg_t client, empty, body;
        zmq_msg_init(&client);
        zmq_msg_init(&empty);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&client, sock, 0) < 0 || zmq_msg_recv(&empty, sock, 0) < 0 ||
            zmq_msg_recv(&body, sock, 0) < 0) {
            zmq_msg_close(&client);
            zmq_msg_close(&empty);
            zmq_msg_close(&body);
            break; /* ETERM: the context is shutting down */
        }
        uint8_t *reply = NULL;
        size_t n = bc_dispatch(w->dispatcher, db, arena, zmq_msg_data(&body), zmq_msg_size(&body),
                               bc_now_ms(), &reply);
        zmq_msg_close(&body);
        zmq_msg_close(&empty);
        zmq_msg_t out;
        zmq_msg_init_size(&out, n);
        memcpy(zmq_msg_data(&out), reply, n);
        free(reply);
        int rc = zmq_msg_send(&client, sock, ZMQ_SNDMORE);
        if (rc >= 0)
            rc = zmq_send(sock, "", 0, ZMQ_SNDMORE);
        if (rc >= 0)
            rc = zmq_msg_send(&out, sock, 0);
        if (rc < 0) {
            zmq_msg_close(&client);
            zmq_msg_close(&out);
            break;
        }
        bc_arena_reset(arena);
    }
done:
    zmq_close(sock);
    bc_arena_destroy(&arena);
    bc_db_destroy(&db);
    return NULL;
}

/* Receives all frames of one message (at most max; surplus is dropped).
 * Returns the count, or -1 when interrupted or on error. */
static int s_recv_frames(void *sock, zmq_msg_t *frames, int max)
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&frames[i]);
            return -1;
        }
        more = zmq_msg_more(&part);
        if (n < max)
            frames[n++] = part;
        else
            zmq_msg_close(&part);
    }
    return n;
}

/* Sends frames[from..n) as one message and releases all n frames. */
static int s_send_frames(void *sock, zmq_msg_t *frames, int from, int n)
{
    int rc = 0;
    for (int i = from; i < n; i++) {
        if (rc == 0 && zmq_msg_send(&frames[i], sock, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
            rc = -1;
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
    return rc;
}

typedef struct {
    zmq_msg_t *ids; /* identities of idle workers, FIFO */
    int head, count, cap;
} s_idle_t;

static void s_idle_push(s_idle_t *q, zmq_msg_t *id)
{
    zmq_msg_t *slot = &q->ids[(q->head + q->count) % q->cap];
    zmq_msg_init(slot);
    zmq_msg_move(slot, id);
    q->count++;
}

/* The lbbroker loop: requests go only to idle workers; while none is idle
 * the front end is not read, so requests wait in ZeroMQ's queue. Returns when
 * a stop signal arrived and every busy worker has answered (or the shutdown
 * timeout passed). */
static void s_proxy(void *frontend, void *backend, int nworkers, int64_t shutdown_ms)
{
    s_idle_t idle = {.ids = bc_calloc((size_t)nworkers, sizeof(zmq_msg_t)), .cap = nworkers};
    int ready_seen = 0;
    int64_t stop_deadline = 0;
    for (;;) {
        if (s_stop && !stop_deadline) {
            stop_deadline = bc_mono_ms() + shutdown_ms;
            bc_info("stopping: finishing %d request(s) in progress", ready_seen - idle.count);
        }
        if (stop_deadline && (idle.count == ready_seen || bc_mono_ms() > stop_deadline))
            break;
        zmq_pollitem_t items[2] = {{backend, 0, ZMQ_POLLIN, 0}, {frontend, 0, ZMQ_POLLIN, 0}};
        int nitems = (idle.count > 0 && !s_stop) ? 2 : 1;
        if (zmq_poll(items, nitems, 200) < 0) {
            if (errno == EINTR)
                continue;
            bc_err("poll failed: %s", zmq_strerror(errno));
            break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            zmq_msg_t f[5];
            int n = s_recv_frames(backend, f, 5);
            if (n == 3) { /* [worker][empty][READY] */
                s_idle_push(&idle, &f[0]);
                ready_seen++;
                s_send_frames(backend, f, 3, 3);
            } else if (n == 5) { /* [worker][empty][client][empty][reply] */
                s_idle_push(&idle, &f[0]);
                s_send_frames(frontend, f, 2, 5);
            } else if (n > 0) {
                s_send_frames(backend, f, n, n);
            }
        }
        if (nitems == 2 && (items[1].revents & ZMQ_POLLIN)) {
            zmq_msg_t f[4];
            int n = s_recv_frames(frontend, f, 4);
            if (n == 3 && zmq_msg_size(&f[1]) == 0) { /* [client][empty][request] */
                zmq_msg_t *worker = &idle.ids[idle.head];
                idle.head = (idle.head + 1) % idle.cap;
                idle.count--;
                zmq_msg_t out[5];
                zmq_msg_init(&out[0]);
                zmq_msg_move(&out[0], worker);
                zmq_msg_close(worker);
                zmq_msg_init(&out[1]);
                zmq_msg_init(&out[2]);
                zmq_msg_move(&out[2], &f[0]);
                zmq_msg_init(&out[3]);
                zmq_msg_init(&out[4]);
                zmq_msg_move(&out[4], &f[2]);
                s_send_frames(backend, out, 0, 5);
                s_send_frames(backend, f, n, n);
            } else if (n > 0) {
                bc_warn("dropped a malformed request envelope (%d frames)", n);
                s_send_frames(frontend, f, n, n);
            }
        }
    }
    for (int i = 0; i < idle.count; i++)
        zmq_msg_close(&idle.ids[(idle.head + i) % idle.cap]);
    free(idle.ids);
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

int bc_service_main(const bc_service_def_t *def, int argc, char **argv)
{
    char program[64];
    snprintf(program, sizeof program, "beacon-%s", def->name);
    bc_config_t *config = bc_config_new(program);
    bc_config_add(config, bc_common_settings);
    if (def->settings)
        bc_config_add(config, def->settings);
    bc_error_t err;
    int rc = bc_config_load(config, argc, argv, &err);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "%s: %s\n", program, err.message);
        bc_config_destroy(&config);
        return rc < 0 ? 2 : 0;
    }
    if (bc_log_init(def->name, bc_config_str(config, "log_level")) < 0) {
        fprintf(stderr, "%s: unknown log_level '%s'\n", program, bc_config_str(config, "log_level"));
        bc_config_destroy(&config);
        return 2;
    }

    struct sigaction sa = {0};
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    void *state = NULL;
    bc_dispatcher_t *dispatcher = NULL;
    void *zctx = NULL, *frontend = NULL, *backend = NULL;
    s_worker_t *workers = NULL;
    int nworkers = (int)bc_config_int(config, "workers"), started = 0;

    /* Migrations first, with the service's own connection. */
    bc_db_t *db = bc_db_new(bc_config_str(config, "database_url"), program);
    if (bc_db_connect(db, (int)bc_config_int(config, "db_connect_timeout_ms"), &err) < 0) {
        bc_err("cannot connect to the database: %s (%s)", err.message, err.detail);
        goto out;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s/migrations", bc_config_str(config, "migrations_dir"),
             def->name);
    int applied = bc_migrate_apply(db, def->name, dir, &err);
    if (applied < 0) {
        bc_err("migrations failed: %s (%s)", err.message, err.detail);
        goto out;
    }
    bc_db_destroy(&db);
    if (applied > 0)
        bc_info("applied %d migration(s) from %s", applied, dir);

    if (def->start && def->start(config, &state, &err) < 0) {
        bc_err("start failed: %s (%s)", err.message, err.detail);
        goto out;
    }
    dispatcher = bc_dispatcher_new(def, config, state, &err);
    if (!dispatcher) {
        bc_err("dispatch table: %s", err.message);
        goto out;
    }

    zctx = zmq_ctx_new();
    frontend = zmq_socket(zctx, ZMQ_ROUTER);
    backend = zmq_socket(zctx, ZMQ_ROUTER);
    bc_zmq_socket_setup(frontend, (int)bc_config_int(config, "rpc_max_message_bytes"),
                        (int)bc_config_int(config, "rpc_heartbeat_ms"));
    char epbuf[512], backend_ep[128];
    const char *endpoint = s_bind_endpoint(def, config, epbuf, sizeof epbuf);
    snprintf(backend_ep, sizeof backend_ep, "inproc://%s-workers", def->name);
    if (zmq_bind(frontend, endpoint) < 0) {
        bc_err("cannot bind %s: %s", endpoint, zmq_strerror(errno));
        goto out;
    }
    if (zmq_bind(backend, backend_ep) < 0) {
        bc_err("cannot bind %s: %s", backend_ep, zmq_strerror(errno));
        goto out;
    }
    workers = bc_calloc((size_t)nworkers, sizeof *workers);
    for (; started < nworkers; started++) {
        s_worker_t *w = &workers[started];
        *w = (s_worker_t){def, config, zctx, dispatcher, backend_ep, started, 0};
        if (pthread_create(&w->thread, NULL, s_worker_main, w) != 0) {
            bc_err("cannot start worker %d", started);
            s_stop = 1;
            break;
        }
    }
    bc_info("%s %s listening on %s with %d worker(s)", program, BEACON_VERSION, endpoint, started);
    s_proxy(frontend, backend, started, bc_config_int(config, "shutdown_timeout_ms"));
    status = 0;

out:
    if (frontend) {
        /* Let replies already queued reach their callers. */
        int linger = 1000;
        zmq_setsockopt(frontend, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(frontend);
    }
    if (zctx)
        zmq_ctx_shutdown(zctx); /* wakes workers blocked in recv with ETERM */
    for (int i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    if (backend) {
        int linger = 0;
        zmq_setsockopt(backend, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(backend);
    }
    if (zctx)
        zmq_ctx_term(zctx);
    free(workers);
    bc_dispatcher_destroy(&dispatcher);
    if (def->stop && state)
        def->stop(state);
    bc_db_destroy(&db);
    bc_info("%s stopped", program);
    bc_config_destroy(&config);
    return status;
}
