/*  bc_relay: the outbox publisher (see the header). */
#include "bc_relay.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <zmq.h>

#include "bc_db.h"
#include "bc_log.h"
#include "bc_mem.h"
#include "bc_util.h"
#include "types.pb-c.h"

#define S_BATCH 200
#define S_BATCH_TEXT "200"
#define S_RETRY_MS 1000
#define S_BACKLOG_MS 1000

/* Event lag buckets, seconds: a relay woken at commit publishes within
 * milliseconds; a stalled one shows up in the upper buckets. */
static const double s_lag_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                       1,     2.5,  5,     10,   30,  60,  300};

struct bc_relay {
    void *pub;
    char *conninfo, *producer;
    pthread_t thread;
    bool started;
    volatile sig_atomic_t stop;
    PGconn *conn;
    bc_counter_t *published, *failures;
    bc_histogram_t *lag;
    bc_gauge_t *backlog;
    int64_t backlog_at; /* next backlog count (bc_mono_ms) */
};

/* The relay thread's wake (an eventfd): written when a transaction of this
 * process that wrote events commits (bc_db_on_events_committed). One relay
 * per process; -1 when none runs. */
static _Atomic int s_wake_fd = -1;

static void s_wake(void)
{
    int fd = s_wake_fd;
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full, the thread is awake anyway */
    }
}

static PGresult *s_exec(PGconn *conn, const char *sql, int n, const char *const *params,
                        ExecStatusType want)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != want) {
        bc_warn("event relay: %s", PQresultErrorMessage(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

static bool s_connect(bc_relay_t *self)
{
    self->conn = PQconnectdb(self->conninfo);
    if (PQstatus(self->conn) != CONNECTION_OK) {
        bc_warn("event relay: cannot connect: %s", PQerrorMessage(self->conn));
        PQfinish(self->conn);
        self->conn = NULL;
        return false;
    }
    PGresult *res = s_exec(self->conn, "LISTEN beacon_events", 0, NULL, PGRES_COMMAND_OK);
    if (!res) {
        PQfinish(self->conn);
        self->conn = NULL;
        return false;
    }
    PQclear(res);
    return true;
}

typedef struct {
    long long seq;
    int row;
} s_order_t;

static int s_by_seq(const void *a, const void *b)
{
    long long x = ((const s_order_t *)a)->seq, y = ((const s_order_t *)b)->seq;
    return x < y ? -1 : x > y;
}

/* One batch: numbers and publishes up to S_BATCH events. Returns how many
 * were published, or -1 when the connection failed. */
static int s_publish(bc_relay_t *self)
{
    const char *params[] = {self->producer};
    PGresult *res = s_exec(self->conn, "BEGIN", 0, NULL, PGRES_COMMAND_OK);
    if (!res)
        return -1;
    PQclear(res);
    res = s_exec(self->conn, "SELECT pg_try_advisory_xact_lock(hashtext('beacon-outbox:' || $1))",
                 1, params, PGRES_TUPLES_OK);
    bool mine = res && PQgetvalue(res, 0, 0)[0] == 't';
    if (res)
        PQclear(res);
    if (!mine) { /* another instance relays (or the query failed) */
        PQclear(PQexecParams(self->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0));
        return res ? 0 : -1;
    }
    res = s_exec(
        self->conn,
        "WITH next AS (SELECT id FROM events.outbox WHERE producer = $1 "
        "              AND published_seq IS NULL ORDER BY id LIMIT " S_BATCH_TEXT " FOR UPDATE), "
        "numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM next), "
        "base AS (SELECT coalesce(max(published_seq), 0) AS b FROM events.outbox "
        "         WHERE producer = $1) "
        "UPDATE events.outbox o SET published_seq = base.b + numbered.n, published_at = now() "
        "FROM numbered, base WHERE o.id = numbered.id "
        "RETURNING o.published_seq, o.topic, o.payload, coalesce(o.request_id, ''), "
        "to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
        "o.schema_version, "
        "(extract(epoch FROM clock_timestamp() - o.created_at) * 1000000)::bigint",
        1, params, PGRES_TUPLES_OK);
    if (!res) {
        PQclear(PQexecParams(self->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0));
        return PQstatus(self->conn) == CONNECTION_OK ? 0 : -1;
    }
    PGresult *commit = s_exec(self->conn, "COMMIT", 0, NULL, PGRES_COMMAND_OK);
    if (!commit) {
        PQclear(res);
        return -1;
    }
    PQclear(commit);
    int rows = PQntuples(res);
    s_order_t *order = bc_calloc((size_t)(rows ? rows : 1), sizeof *order);
    for (int i = 0; i < rows; i++) {
        order[i].seq = atoll(PQgetvalue(res, i, 0));
        order[i].row = i;
    }
    qsort(order, (size_t)rows, sizeof *order, s_by_seq);
    for (int k = 0; k < rows; k++) {
        int i = order[k].row;
        Beacon__Event ev = BEACON__EVENT__INIT;
        size_t n = 0;
        unsigned char *payload = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &n);
        ev.producer = self->producer;
        ev.seq = order[k].seq;
        ev.topic = PQgetvalue(res, i, 1);
        ev.payload.data = payload;
        ev.payload.len = payload ? n : 0;
        ev.request_id = PQgetvalue(res, i, 3);
        ev.occurred_at = PQgetvalue(res, i, 4);
        ev.schema_version = atoi(PQgetvalue(res, i, 5));
        size_t len = protobuf_c_message_get_packed_size(&ev.base);
        uint8_t *buf = bc_malloc(len ? len : 1);
        protobuf_c_message_pack(&ev.base, buf);
        /* PUB never blocks: a subscriber that is not keeping up loses
         * messages and replays them (see the header). */
        zmq_send(self->pub, ev.topic, strlen(ev.topic), ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(self->pub, buf, len, ZMQ_DONTWAIT);
        free(buf);
        PQfreemem(payload);
        bc_histogram_observe_us(self->lag, atoll(PQgetvalue(res, i, 6)));
    }
    bc_counter_add(self->published, (uint64_t)rows);
    free(order);
    PQclear(res);
    if (rows)
        bc_debug("event relay: published %d event(s) of %s", rows, self->producer);
    return rows;
}

/* Counts the producer's unpublished events (the partial index
 * outbox_unpublished holds exactly those). -1 when the query failed. */
static int s_count_backlog(bc_relay_t *self)
{
    const char *params[] = {self->producer};
    PGresult *res = s_exec(self->conn,
                           "SELECT count(*) FROM events.outbox WHERE producer = $1 "
                           "AND published_seq IS NULL",
                           1, params, PGRES_TUPLES_OK);
    if (!res)
        return PQstatus(self->conn) == CONNECTION_OK ? 0 : -1;
    bc_gauge_set(self->backlog, atoll(PQgetvalue(res, 0, 0)));
    PQclear(res);
    return 0;
}

static void *s_main(void *arg)
{
    bc_relay_t *self = arg;
    int64_t retry_at = 0;
    while (!self->stop) {
        if (!self->conn) {
            if (bc_mono_ms() < retry_at || !s_connect(self)) {
                if (bc_mono_ms() >= retry_at)
                    retry_at = bc_mono_ms() + S_RETRY_MS;
                poll(NULL, 0, 100);
                continue;
            }
        }
        int n = s_publish(self);
        if (n >= 0 && self->backlog && bc_mono_ms() >= self->backlog_at) {
            self->backlog_at = bc_mono_ms() + S_BACKLOG_MS;
            if (s_count_backlog(self) < 0)
                n = -1;
        }
        if (n < 0) {
            bc_counter_add(self->failures, 1);
            PQfinish(self->conn);
            self->conn = NULL;
            retry_at = bc_mono_ms() + S_RETRY_MS;
            continue;
        }
        if (n == S_BATCH)
            continue; /* more may be waiting */
        /* Woken by a commit of this process, a NOTIFY beacon_events from
         * elsewhere (another instance, a tool), or after 200 ms. */
        struct pollfd pfd[2] = {{.fd = PQsocket(self->conn), .events = POLLIN},
                                {.fd = s_wake_fd, .events = POLLIN}};
        if (poll(pfd, pfd[1].fd >= 0 ? 2 : 1, 200) > 0) {
            if (pfd[0].revents) {
                PQconsumeInput(self->conn);
                PGnotify *note;
                while ((note = PQnotifies(self->conn)) != NULL)
                    PQfreemem(note);
            }
            uint64_t wakes;
            if (pfd[1].revents && read(pfd[1].fd, &wakes, sizeof wakes) < 0) {
                /* EAGAIN: read by an earlier round */
            }
        }
    }
    if (self->conn) {
        s_publish(self); /* what committed while we were stopping */
        PQfinish(self->conn);
        self->conn = NULL;
    }
    return NULL;
}

bc_relay_t *bc_relay_start(void *zctx, const char *conninfo, const char *producer,
                           const char *bind_endpoint, bc_metrics_t *metrics, bc_error_t *err)
{
    bc_relay_t *self = bc_calloc(1, sizeof *self);
    if (metrics) {
        self->published = bc_metrics_counter(metrics, "beacon_events_published_total",
                                             "Outbox events the relay published", NULL, 0);
        self->failures = bc_metrics_counter(
            metrics, "beacon_events_relay_failures_total",
            "Times the relay lost its database connection or could not publish", NULL, 0);
        self->lag = bc_metrics_histogram(
            metrics, "beacon_events_lag_seconds",
            "Seconds from an event's outbox row (created_at) to its publication", NULL,
            s_lag_buckets, sizeof s_lag_buckets / sizeof s_lag_buckets[0], 0);
        self->backlog = bc_metrics_gauge(metrics, "beacon_events_unpublished",
                                         "Events in the outbox not yet published", NULL);
    }
    self->conninfo = bc_strdup(conninfo);
    self->producer = bc_strdup(producer);
    self->pub = zmq_socket(zctx, ZMQ_PUB);
    int linger = 500;
    zmq_setsockopt(self->pub, ZMQ_LINGER, &linger, sizeof linger);
    if (!self->pub || zmq_bind(self->pub, bind_endpoint) != 0) {
        bc_error_set(err, BC_UNAVAILABLE, "", "cannot bind the event endpoint");
        bc_error_detail(err, "%s: %s", bind_endpoint, zmq_strerror(zmq_errno()));
        bc_relay_stop(&self);
        return NULL;
    }
    if (s_wake_fd < 0) {
        s_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (s_wake_fd >= 0)
            bc_db_on_events_committed(s_wake);
    }
    if (pthread_create(&self->thread, NULL, s_main, self) != 0) {
        bc_error_set(err, BC_INTERNAL, "", "cannot start the event relay");
        zmq_close(self->pub);
        self->pub = NULL;
        bc_relay_stop(&self);
        return NULL;
    }
    self->started = true;
    bc_info("publishing %s events on %s", producer, bind_endpoint);
    return self;
}

void bc_relay_stop(bc_relay_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bc_relay_t *self = *self_p;
    if (self->started) {
        self->stop = 1;
        pthread_join(self->thread, NULL);
    }
    if (self->pub)
        zmq_close(self->pub);
    if (self->started && s_wake_fd >= 0) {
        bc_db_on_events_committed(NULL);
        int fd = s_wake_fd;
        s_wake_fd = -1;
        close(fd);
    }
    free(self->conninfo);
    free(self->producer);
    free(self);
    *self_p = NULL;
}
