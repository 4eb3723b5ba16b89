/*  bc_service: configuration, migrations, the ROUTER front end, the request
 *  queue and the worker threads every back-end service runs.
 *  The dispatcher (envelope checks, handler table) is in bc_dispatch.c.
 */
#include "bc_version.h"
#include "bc_service.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
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
    {"max_queued_requests", BC_CFG_INT, "1024", 1, 1000000,
     "requests waiting for a free worker before new ones are refused as overloaded"},
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

/* A request taken off the ROUTER, handed to a worker and back. */
typedef struct s_job {
    struct s_job *next;
    zmq_msg_t client; /* the caller's routing identity */
    zmq_msg_t body;   /* packed Beacon__Request */
    uint8_t *reply;   /* packed Beacon__Reply, malloc'd by the worker */
    size_t reply_len;
} s_job_t;

/* The hand-off between the socket thread and the workers: a FIFO of
 * requests (workers take the next one whenever they are free, so a slow
 * query holds up one worker only) and a FIFO of replies, with an eventfd that
 * wakes the socket thread. Only the socket thread touches ZeroMQ sockets. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    s_job_t *in_head, *in_tail;
    s_job_t *out_head, *out_tail;
    size_t queued, busy;
    bool closing;
    int wake_fd;
} s_queue_t;

typedef struct {
    const bc_service_def_t *def;
    const bc_config_t *config;
    bc_dispatcher_t *dispatcher;
    s_queue_t *queue;
    int index;
    pthread_t thread;
} s_worker_t;

static void s_job_free(s_job_t *job)
{
    zmq_msg_close(&job->client);
    zmq_msg_close(&job->body);
    free(job->reply);
    free(job);
}

/* Puts a finished job on the reply list. The socket thread is woken only
 * when the list was empty: it takes the whole list at once, so one wake-up
 * (one syscall) serves every reply that piles up meanwhile. */
static void s_push_reply(s_queue_t *q, s_job_t *job, bool from_worker)
{
    pthread_mutex_lock(&q->lock);
    job->next = NULL;
    bool wake = q->out_head == NULL;
    if (q->out_tail)
        q->out_tail->next = job;
    else
        q->out_head = job;
    q->out_tail = job;
    if (from_worker)
        q->busy--;
    pthread_mutex_unlock(&q->lock);
    if (wake) {
        uint64_t one = 1;
        ssize_t rc = write(q->wake_fd, &one, sizeof one);
        (void)rc;
    }
}

static void *s_worker_main(void *arg)
{
    s_worker_t *w = arg;
    s_queue_t *q = w->queue;
    char name[64];
    snprintf(name, sizeof name, "beacon-%s-%d", w->def->name, w->index);
    bc_db_t *db = bc_db_new(bc_config_str(w->config, "database_url"), name);
    bc_error_t err;
    if (bc_db_connect(db, 2000, &err) < 0)
        bc_warn("worker %d: database not reachable yet (%s); will retry per request", w->index,
                err.detail);
    bc_arena_t *arena = bc_arena_new(16384);
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (!q->in_head && !q->closing)
            pthread_cond_wait(&q->ready, &q->lock);
        s_job_t *job = q->in_head;
        if (!job) {
            pthread_mutex_unlock(&q->lock);
            break; /* closing and nothing left */
        }
        q->in_head = job->next;
        if (!q->in_head)
            q->in_tail = NULL;
        q->queued--;
        q->busy++;
        pthread_mutex_unlock(&q->lock);

        job->reply_len = bc_dispatch(w->dispatcher, db, arena, zmq_msg_data(&job->body),
                                     zmq_msg_size(&job->body), bc_now_ms(), &job->reply);
        bc_arena_reset(arena);

        s_push_reply(q, job, true);
    }
    bc_arena_destroy(&arena);
    bc_db_destroy(&db);
    return NULL;
}

/* Sends every finished reply back through the ROUTER. */
static void s_send_replies(s_queue_t *q, void *frontend)
{
    uint64_t n;
    ssize_t rc = read(q->wake_fd, &n, sizeof n);
    (void)rc;
    pthread_mutex_lock(&q->lock);
    s_job_t *job = q->out_head;
    q->out_head = q->out_tail = NULL;
    pthread_mutex_unlock(&q->lock);
    while (job) {
        s_job_t *next = job->next;
        zmq_msg_t out;
        zmq_msg_init_size(&out, job->reply_len);
        memcpy(zmq_msg_data(&out), job->reply, job->reply_len);
        /* A caller that went away makes the ROUTER drop the reply: fine. */
        if (zmq_msg_send(&job->client, frontend, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_send(frontend, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_msg_send(&out, frontend, ZMQ_DONTWAIT) < 0)
            zmq_msg_close(&out);
        s_job_free(job);
        job = next;
    }
}

/* Takes every waiting request off the ROUTER into the queue. Requests past
 * max_queued are answered at once with RESOURCE_EXHAUSTED (shed load rather
 * than let every caller time out). */
static int s_take_requests(s_queue_t *q, void *frontend, size_t max_queued, bool refuse)
{
    int taken = 0;
    for (;;) {
        zmq_msg_t parts[3];
        int n = 0, total = 0, more = 1;
        while (more) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, frontend, total == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                zmq_msg_close(&part);
                break;
            }
            total++;
            more = zmq_msg_more(&part);
            if (n < 3)
                parts[n++] = part;
            else
                zmq_msg_close(&part); /* surplus frames: malformed */
        }
        if (total == 0)
            return taken; /* nothing more waiting */
        taken++;
        if (total != 3 || zmq_msg_size(&parts[1]) != 0) {
            bc_warn("dropped a malformed request envelope (%d frames)", total);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            continue;
        }
        s_job_t *job = bc_calloc(1, sizeof *job);
        job->client = parts[0];
        job->body = parts[2];
        zmq_msg_close(&parts[1]);
        pthread_mutex_lock(&q->lock);
        bool full = refuse || q->queued >= max_queued;
        if (!full) {
            if (q->in_tail)
                q->in_tail->next = job;
            else
                q->in_head = job;
            q->in_tail = job;
            q->queued++;
            pthread_cond_signal(&q->ready);
        }
        pthread_mutex_unlock(&q->lock);
        if (full) {
            job->reply_len = bc_dispatch_reject(
                zmq_msg_data(&job->body), zmq_msg_size(&job->body),
                refuse ? BC_UNAVAILABLE : BC_RESOURCE_EXHAUSTED,
                refuse ? "service is shutting down, try again" : "service is overloaded, try again",
                &job->reply);
            s_push_reply(q, job, false);
        }
    }
}

/* The socket thread: reads requests and returns replies. On a stop signal
 * it unbinds (no new connections), answers requests that still arrive with
 * UNAVAILABLE at once (callers retry elsewhere instead of waiting for their
 * deadline), lets queued and running requests finish, and returns once all
 * is answered and no request has arrived for 100 ms, or after shutdown_ms. */
static void s_serve(s_queue_t *q, void *frontend, const char *endpoint, size_t max_queued,
                    int64_t shutdown_ms)
{
    int64_t stop_deadline = 0, last_request = 0;
    for (;;) {
        int64_t now = bc_mono_ms();
        if (s_stop && !stop_deadline) {
            stop_deadline = now + shutdown_ms;
            last_request = now;
            zmq_unbind(frontend, endpoint);
            pthread_mutex_lock(&q->lock);
            bc_info("stopping: finishing %zu queued and %zu running request(s)", q->queued,
                    q->busy);
            pthread_mutex_unlock(&q->lock);
        }
        if (stop_deadline) {
            pthread_mutex_lock(&q->lock);
            bool idle = q->queued == 0 && q->busy == 0 && !q->out_head;
            pthread_mutex_unlock(&q->lock);
            if ((idle && now - last_request >= 100) || now > stop_deadline)
                return;
        }
        zmq_pollitem_t items[2] = {{NULL, q->wake_fd, ZMQ_POLLIN, 0},
                                   {frontend, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, stop_deadline ? 20 : 200) < 0) {
            if (errno == EINTR)
                continue;
            bc_err("poll failed: %s", zmq_strerror(errno));
            return;
        }
        if (items[0].revents & ZMQ_POLLIN)
            s_send_replies(q, frontend);
        if ((items[1].revents & ZMQ_POLLIN) &&
            s_take_requests(q, frontend, max_queued, stop_deadline != 0) > 0)
            last_request = bc_mono_ms();
    }
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

bc_config_t *bc_process_start(const char *name, const bc_setting_t *extra, int argc, char **argv,
                              void (*on_stop)(int), int *exit_code)
{
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
    char program[64];
    snprintf(program, sizeof program, "beacon-%s", def->name);
    bc_error_t err;

    int status = 1;
    void *state = NULL;
    bc_dispatcher_t *dispatcher = NULL;
    void *zctx = NULL, *frontend = NULL;
    s_worker_t *workers = NULL;
    s_queue_t queue = {.wake_fd = -1};
    pthread_mutex_init(&queue.lock, NULL);
    pthread_cond_init(&queue.ready, NULL);
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
    bc_zmq_socket_setup(frontend, (int)bc_config_int(config, "rpc_max_message_bytes"),
                        (int)bc_config_int(config, "rpc_heartbeat_ms"));
    char epbuf[512];
    const char *endpoint = s_bind_endpoint(def, config, epbuf, sizeof epbuf);
    if (zmq_bind(frontend, endpoint) < 0) {
        bc_err("cannot bind %s: %s", endpoint, zmq_strerror(errno));
        goto out;
    }
    queue.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    workers = bc_calloc((size_t)nworkers, sizeof *workers);
    for (; started < nworkers; started++) {
        s_worker_t *w = &workers[started];
        *w = (s_worker_t){def, config, dispatcher, &queue, started, 0};
        if (pthread_create(&w->thread, NULL, s_worker_main, w) != 0) {
            bc_err("cannot start worker %d", started);
            s_stop = 1;
            break;
        }
    }
    bc_info("%s %s listening on %s with %d worker(s)", program, BEACON_VERSION, endpoint, started);
    s_serve(&queue, frontend, endpoint, (size_t)bc_config_int(config, "max_queued_requests"),
            bc_config_int(config, "shutdown_timeout_ms"));
    status = 0;

out:
    if (frontend) {
        /* Let replies already queued reach their callers. */
        int linger = 1000;
        zmq_setsockopt(frontend, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(frontend);
    }
    pthread_mutex_lock(&queue.lock);
    queue.closing = true;
    pthread_cond_broadcast(&queue.ready);
    pthread_mutex_unlock(&queue.lock);
    for (int i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    while (queue.in_head) { /* left over only when the shutdown timeout passed */
        s_job_t *next = queue.in_head->next;
        s_job_free(queue.in_head);
        queue.in_head = next;
    }
    while (queue.out_head) {
        s_job_t *next = queue.out_head->next;
        s_job_free(queue.out_head);
        queue.out_head = next;
    }
    if (queue.wake_fd >= 0)
        close(queue.wake_fd);
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
