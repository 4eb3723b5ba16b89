/*  bc_service: hosting a service: migrations, the ROUTER front end, the
 *  request queue and the worker threads. The dispatcher (envelope checks,
 *  handler table) is in bc_dispatch.c; process start-up and main() are in
 *  bc_process.c.
 */
#include "bc_version.h"
#include "bc_relay.h"
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
#include "bc_metrics.h"
#include "bc_migrate.h"
#include "bc_rpc.h"
#include "bc_util.h"

/* A request taken off the ROUTER, handed to a worker and back. */
typedef struct s_job {
    struct s_job *next;
    zmq_msg_t client; /* the caller's routing identity */
    zmq_msg_t body;   /* packed Beacon__Request */
    uint8_t *reply;   /* packed Beacon__Reply, malloc'd by the worker */
    size_t reply_len;
    uint64_t audit_ticket; /* the reply waits until this audit record is durable */
    int audit_writer;      /* ... in this writer */
    int64_t taken_us;      /* when the socket thread took it (bc_mono_us) */
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
    bool out_unwoken; /* the out list holds a reply nobody woke the socket thread for */
    s_job_t *held_head, *held_tail; /* replies waiting for their audit record (socket thread) */
    bc_audit_writer_t **audit; /* group writers for reads; worker i uses i % naudit */
    int naudit;
    size_t queued, busy;
    bool closing;
    int wake_fd;
    bc_histogram_t *queue_wait; /* NULL when metrics are off */
    bc_counter_t *shed;         /* refused at once: queue full or stopping */
    bc_gauge_t *db_up;          /* workers whose connection is up */
    bc_counter_t *db_connects;  /* connections the workers made (first and re-) */
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
/* Queues a finished reply for the socket thread. A reply that waits for its
 * audit record does not wake the thread: the writer's settle notice will
 * (it comes after the record is durable, and this reply is queued before we
 * look), which saves a wake-up and a scan per audited read. If the record
 * settled before we looked, we wake it ourselves. */
static void s_push_reply(s_queue_t *q, s_job_t *job, bool from_worker)
{
    pthread_mutex_lock(&q->lock);
    job->next = NULL;
    bool wake = q->out_head == NULL || q->out_unwoken;
    if (q->out_tail)
        q->out_tail->next = job;
    else
        q->out_head = job;
    q->out_tail = job;
    if (from_worker)
        q->busy--;
    if (wake && job->audit_ticket &&
        bc_audit_writer_state(q->audit[job->audit_writer], job->audit_ticket) ==
            BC_AUDIT_PENDING) {
        wake = false;
        q->out_unwoken = true;
    } else if (wake) {
        q->out_unwoken = false;
    }
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
    /* The pool's figures, updated after each request when they change. */
    bool db_up = bc_db_ok(db);
    unsigned long connects = bc_db_connections(db);
    bc_gauge_add(q->db_up, db_up);
    bc_counter_add(q->db_connects, connects);
    /* This worker's audit chain for writes (reads go to the group writer).
     * If the database is down now, it is opened on a later request. */
    bc_audit_chain_t *chain = bc_audit_chain_new(db, w->def->name, w->index, &err);
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
        if (q->queue_wait)
            bc_histogram_observe_us(q->queue_wait, bc_mono_us() - job->taken_us);

        if (!chain)
            chain = bc_audit_chain_new(db, w->def->name, w->index, &err);
        int writer = w->index % q->naudit;
        bc_worker_ctx_t ctx = {.db = db, .arena = arena, .audit_chain = chain,
                               .audit_writer = q->audit[writer]};
        job->reply_len = bc_dispatch_ctx(w->dispatcher, &ctx, zmq_msg_data(&job->body),
                                         zmq_msg_size(&job->body), bc_now_ms(), &job->reply);
        job->audit_ticket = ctx.audit_ticket;
        job->audit_writer = writer;
        bc_arena_reset(arena);
        if (bc_db_ok(db) != db_up) {
            db_up = !db_up;
            bc_gauge_add(q->db_up, db_up ? 1 : -1);
        }
        if (bc_db_connections(db) != connects) {
            bc_counter_add(q->db_connects, bc_db_connections(db) - connects);
            connects = bc_db_connections(db);
        }

        s_push_reply(q, job, true);
    }
    if (chain && bc_db_ok(db) && bc_audit_chain_anchor(chain, db, &err) < 0)
        bc_warn("worker %d: final audit anchor not written: %s", w->index, err.detail);
    bc_gauge_add(q->db_up, db_up ? -1 : 0);
    bc_audit_chain_destroy(&chain);
    bc_arena_destroy(&arena);
    bc_db_destroy(&db);
    return NULL;
}

static void s_free_reply(void *data, void *hint)
{
    (void)hint;
    free(data);
}

static void s_send_one(void *frontend, s_job_t *job)
{
    /* The reply buffer is handed to ZeroMQ, not copied (a list reply can
     * be a megabyte); it frees it once sent. */
    zmq_msg_t out;
    if (zmq_msg_init_data(&out, job->reply, job->reply_len, s_free_reply, NULL) == 0)
        job->reply = NULL;
    else
        zmq_msg_init_size(&out, 0);
    /* A caller that went away makes the ROUTER drop the reply: fine. */
    if (zmq_msg_send(&job->client, frontend, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(frontend, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_msg_send(&out, frontend, ZMQ_DONTWAIT) < 0)
        zmq_msg_close(&out);
    s_job_free(job);
}

static void s_hold(s_queue_t *q, s_job_t *job)
{
    job->next = NULL;
    if (q->held_tail)
        q->held_tail->next = job;
    else
        q->held_head = job;
    q->held_tail = job;
}

/* Sends a reply whose audit record is durable; holds one still pending;
 * replaces one whose record could not be written by UNAVAILABLE (the data
 * is never sent unaudited). */
static void s_release(s_queue_t *q, void *frontend, s_job_t *job)
{
    bc_audit_state_t st = job->audit_ticket
                              ? bc_audit_writer_state(q->audit[job->audit_writer], job->audit_ticket)
                              : BC_AUDIT_DURABLE;
    if (st == BC_AUDIT_PENDING) {
        s_hold(q, job);
        return;
    }
    if (st == BC_AUDIT_FAILED) {
        free(job->reply);
        job->reply = NULL;
        job->reply_len = bc_dispatch_reject(zmq_msg_data(&job->body), zmq_msg_size(&job->body),
                                            BC_UNAVAILABLE, "audit log unavailable, try again",
                                            &job->reply);
    }
    s_send_one(frontend, job);
}

/* Sends every finished reply back through the ROUTER (in order: held ones
 * first, then new ones). */
static void s_send_replies(s_queue_t *q, void *frontend)
{
    uint64_t n;
    ssize_t rc = read(q->wake_fd, &n, sizeof n);
    (void)rc;
    pthread_mutex_lock(&q->lock);
    s_job_t *job = q->out_head;
    q->out_head = q->out_tail = NULL;
    q->out_unwoken = false;
    pthread_mutex_unlock(&q->lock);
    s_job_t *held = q->held_head;
    q->held_head = q->held_tail = NULL;
    while (held) {
        s_job_t *next = held->next;
        s_release(q, frontend, held);
        held = next;
    }
    while (job) {
        s_job_t *next = job->next;
        s_release(q, frontend, job);
        job = next;
    }
}

/* The audit writer settled a batch: wake the socket thread to release the
 * replies that waited for it. */
static void s_on_audit_settled(void *arg)
{
    s_queue_t *q = arg;
    uint64_t one = 1;
    ssize_t rc = write(q->wake_fd, &one, sizeof one);
    (void)rc;
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
        job->taken_us = q->queue_wait ? bc_mono_us() : 0;
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
            bc_counter_add(q->shed, 1);
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
                    int64_t shutdown_ms, volatile sig_atomic_t *stop)
{
    int64_t stop_deadline = 0, last_request = 0;
    for (;;) {
        int64_t now = bc_mono_ms();
        if (*stop && !stop_deadline) {
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
            bool idle = q->queued == 0 && q->busy == 0 && !q->out_head && !q->held_head;
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

/* The audit writer's number in its chain id (workers are 0..N-1). */
#define S_AUDIT_WRITER_INDEX 1000

struct bc_service {
    const bc_service_def_t *def;
    const bc_config_t *config;
    void *state;
    bc_dispatcher_t *dispatcher;
    void *frontend;
    char endpoint[512];
    s_queue_t queue;
    s_worker_t *workers;
    int started;
    bc_relay_t *relay; /* publishes the outbox, when events_bind_endpoint is set */
};

static double s_gauge_queued(void *arg)
{
    s_queue_t *q = arg;
    pthread_mutex_lock(&q->lock);
    double v = (double)q->queued;
    pthread_mutex_unlock(&q->lock);
    return v;
}

static double s_gauge_busy(void *arg)
{
    s_queue_t *q = arg;
    pthread_mutex_lock(&q->lock);
    double v = (double)q->busy;
    pthread_mutex_unlock(&q->lock);
    return v;
}

/* The host's own figures, beside the dispatcher's: the queue in front of
 * the workers and how busy they are. */
static void s_register_metrics(bc_service_t *self, bc_metrics_t *m, int nworkers)
{
    s_queue_t *q = &self->queue;
    bc_metrics_gauge_fn(m, "beacon_rpc_queued_requests",
                        "Requests waiting for a free worker thread", NULL, s_gauge_queued, q);
    bc_metrics_gauge_fn(m, "beacon_workers_busy", "Worker threads handling a request now", NULL,
                        s_gauge_busy, q);
    bc_gauge_set(bc_metrics_gauge(m, "beacon_workers",
                                  "Worker threads, each with its own PostgreSQL connection", NULL),
                 nworkers);
    q->db_up = bc_metrics_gauge(m, "beacon_db_connections_up",
                                "Worker threads whose PostgreSQL connection is up (as of their "
                                "last request)",
                                NULL);
    q->db_connects = bc_metrics_counter(
        m, "beacon_db_connects_total",
        "PostgreSQL connections the workers opened (more than beacon_workers: reconnects)", NULL,
        0);
    q->shed = bc_metrics_counter(m, "beacon_rpc_shed_total",
                                 "Requests refused at once because the queue was full (or the "
                                 "service stopping)",
                                 NULL, 0);
    if (bc_config_bool(self->config, "metrics"))
        q->queue_wait = bc_metrics_histogram(
            m, "beacon_rpc_queue_wait_seconds",
            "Time a request waited in the queue for a free worker", NULL,
            bc_metrics_latency_buckets, bc_metrics_latency_nbuckets, 0);
}

/* Applies <root>/<name>/migrations for name ("common": <root> itself holds
 * the files). */
static int s_apply_migrations(bc_db_t *db, const char *name, const char *root, bc_error_t *err)
{
    char dir[1024];
    if (!strcmp(name, "common"))
        snprintf(dir, sizeof dir, "%s", root);
    else
        snprintf(dir, sizeof dir, "%s/%s/migrations", root, name);
    int applied = bc_migrate_apply(db, name, dir, err);
    if (applied > 0)
        bc_info("applied %d migration(s) from %s", applied, dir);
    return applied < 0 ? -1 : 0;
}

bc_service_t *bc_service_new(const bc_service_def_t *def, const bc_config_t *config, void *zctx,
                             const char *endpoint, bc_error_t *err)
{
    bc_service_t *self = bc_calloc(1, sizeof *self);
    self->def = def;
    self->config = config;
    self->queue.wake_fd = -1;
    pthread_mutex_init(&self->queue.lock, NULL);
    pthread_cond_init(&self->queue.ready, NULL);
    char program[64];
    snprintf(program, sizeof program, "beacon-%s", def->name);

    /* Migrations first, with a connection of their own: shared
     * infrastructure (the audit log), then the service's own schema. */
    const char *owner_url = bc_config_str(config, "migration_database_url");
    bc_db_t *db = bc_db_new(*owner_url ? owner_url : bc_config_str(config, "database_url"), program);
    int rc = bc_db_connect(db, (int)bc_config_int(config, "db_connect_timeout_ms"), err);
    if (rc == 0)
        rc = s_apply_migrations(db, "common", bc_config_str(config, "common_migrations_dir"), err);
    if (rc == 0)
        rc = s_apply_migrations(db, def->home ? def->home : def->name,
                                bc_config_str(config, "migrations_dir"), err);
    bc_db_destroy(&db);
    if (rc < 0)
        goto fail;
    if (def->start && def->start(config, &self->state, err) < 0)
        goto fail;
    self->dispatcher = bc_dispatcher_new(def, config, self->state, err);
    if (!self->dispatcher)
        goto fail;

    self->frontend = zmq_socket(zctx, ZMQ_ROUTER);
    bc_zmq_socket_setup(self->frontend, (int)bc_config_int(config, "rpc_max_message_bytes"),
                        (int)bc_config_int(config, "rpc_heartbeat_ms"));
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    if (zmq_bind(self->frontend, self->endpoint) < 0) {
        bc_error_set(err, BC_UNAVAILABLE, "", "cannot bind %s", self->endpoint);
        bc_error_detail(err, "%s", zmq_strerror(errno));
        goto fail;
    }
    self->queue.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    /* Group-committing audit writers for reads. Several, so that one's
     * COMMIT (an fsync) overlaps the others' inserts and PostgreSQL groups
     * their flushes; each owns a chain, so they never contend. */
    self->queue.naudit = (int)bc_config_int(config, "audit_writers");
    self->queue.audit = bc_calloc((size_t)self->queue.naudit, sizeof *self->queue.audit);
    for (int i = 0; i < self->queue.naudit; i++) {
        self->queue.audit[i] = bc_audit_writer_new(bc_config_str(config, "database_url"),
                                                   def->name, S_AUDIT_WRITER_INDEX + i,
                                                   s_on_audit_settled, &self->queue, err);
        if (!self->queue.audit[i])
            goto fail;
        bc_audit_writer_set_commit_delay(self->queue.audit[i],
                                         bc_config_int(config, "audit_commit_delay_us"));
    }
    int nworkers = def->workers > 0 ? def->workers : (int)bc_config_int(config, "workers");
    s_register_metrics(self, bc_dispatcher_metrics(self->dispatcher), nworkers);
    self->workers = bc_calloc((size_t)nworkers, sizeof *self->workers);
    for (; self->started < nworkers; self->started++) {
        s_worker_t *w = &self->workers[self->started];
        *w = (s_worker_t){def, config, self->dispatcher, &self->queue, self->started, 0};
        if (pthread_create(&w->thread, NULL, s_worker_main, w) != 0) {
            bc_error_set(err, BC_INTERNAL, "", "cannot start worker %d", self->started);
            goto fail;
        }
    }
    const char *events = bc_config_str(config, "events_bind_endpoint");
    if (*events && !def->no_relay && !(self->relay = bc_relay_start(zctx, bc_config_str(config, "database_url"),
                                                  def->name, events,
                                                  bc_dispatcher_metrics(self->dispatcher), err)))
        goto fail;
    bc_info("%s %s listening on %s with %d worker(s)", program, BEACON_VERSION, self->endpoint,
            self->started);
    return self;
fail:
    bc_service_destroy(&self);
    return NULL;
}

bc_metrics_t *bc_service_metrics(bc_service_t *self)
{
    return bc_dispatcher_metrics(self->dispatcher);
}

void bc_service_run(bc_service_t *self, volatile sig_atomic_t *stop)
{
    s_serve(&self->queue, self->frontend, self->endpoint,
            (size_t)bc_config_int(self->config, "max_queued_requests"),
            bc_config_int(self->config, "shutdown_timeout_ms"), stop);
}

void bc_service_destroy(bc_service_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bc_service_t *self = *self_p;
    s_queue_t *q = &self->queue;
    if (self->frontend) {
        /* Let replies already queued reach their callers. */
        int linger = 1000;
        zmq_setsockopt(self->frontend, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(self->frontend);
    }
    pthread_mutex_lock(&q->lock);
    q->closing = true;
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < self->started; i++)
        pthread_join(self->workers[i].thread, NULL);
    /* After the workers: their last events are committed and get out. */
    bc_relay_stop(&self->relay);
    while (q->in_head) { /* left over only when the shutdown timeout passed */
        s_job_t *next = q->in_head->next;
        s_job_free(q->in_head);
        q->in_head = next;
    }
    while (q->out_head) {
        s_job_t *next = q->out_head->next;
        s_job_free(q->out_head);
        q->out_head = next;
    }
    while (q->held_head) {
        s_job_t *next = q->held_head->next;
        s_job_free(q->held_head);
        q->held_head = next;
    }
    for (int i = 0; i < q->naudit; i++)
        bc_audit_writer_destroy(&q->audit[i]);
    free(q->audit);
    if (q->wake_fd >= 0)
        close(q->wake_fd);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->ready);
    free(self->workers);
    bc_dispatcher_destroy(&self->dispatcher);
    if (self->def->stop && self->state)
        self->def->stop(self->state);
    free(self);
    *self_p = NULL;
}
