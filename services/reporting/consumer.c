/*  consumer: the reporting service's subscriber to every producer's events.
 *
 *  One thread with its own PostgreSQL connection, a ZeroMQ SUB socket
 *  connected to each producer's event endpoint (events_endpoint_<producer>)
 *  and an RPC client per producer for ReplayEvents. Exactly-once effect from
 *  at-least-once delivery (DESIGN.md, transactional outbox):
 *
 *  - reporting.positions holds, per producer, the last seq applied. Events
 *    are applied in seq order, in transactions that update the rollups and
 *    the position together: a crash anywhere loses both or neither.
 *  - seq <= position: a duplicate (a replay overlapping the live stream, a
 *    resent message), skipped. seq > position + 1: a gap (the PUB socket
 *    dropped messages, the relay crashed between commit and send, we were
 *    down): the producer is asked to replay from the position first.
 *  - On start, and every consumer_poll_ms, each producer is asked for what
 *    follows the position, so a lost last message is caught up too.
 *  - An event from a producer we do not know, with a schema version we do
 *    not know, or whose payload does not decode or lacks what its topic
 *    needs, is never applied: it is written to reporting.rejects and
 *    counted. For a known producer the position still moves past it, so the
 *    stream does not stall on it.
 *
 *  Only one consumer applies at a time (a session advisory lock); another
 *  instance of the service waits as a standby. Commits are asynchronous
 *  (synchronous_commit off): a crash may lose the last applied events, and
 *  their positions with them, so they are applied again; never twice.
 */
#include "reporting.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <zmq.h>

#include "bc_log.h"
#include "bc_rpc.h"
#include "bc_util.h"
#include "plan.h"
#include "types.pb-c.h"

#define S_REPLAY_LIMIT 500
#define S_DRAIN_MAX 500
#define S_RETRY_MS 1000

const char *const rp_producers[RP_NPRODUCERS] = {"intake", "scheduling", "notes", "referral",
                                                 "identity"};


struct rp_consumer {
    char *conninfo;
    char *endpoints[RP_NPRODUCERS]; /* events (SUB) */
    char *rpc[RP_NPRODUCERS];       /* endpoint_<producer> (ReplayEvents) */
    int64_t poll_ms;
    int max_msg;
    void *zctx, *sub;
    bc_rpc_client_t *replay[RP_NPRODUCERS];
    PGconn *conn;
    int64_t pos[RP_NPRODUCERS];
    pthread_t thread;
    bool started;
    volatile sig_atomic_t stop;
    /* counters, for the log */
    int64_t applied, duplicates, rejected;
};

int rp_producer_index(const char *name)
{
    for (int i = 0; i < RP_NPRODUCERS; i++)
        if (name && !strcmp(name, rp_producers[i]))
            return i;
    return -1;
}

static PGresult *s_exec(rp_consumer_t *self, const char *sql, int n, const char *const *params,
                        bool quiet)
{
    PGresult *res = PQexecParams(self->conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        if (!quiet)
            bc_warn("reporting consumer: %s", PQresultErrorMessage(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

static bool s_cmd(rp_consumer_t *self, const char *sql)
{
    PGresult *res = s_exec(self, sql, 0, NULL, false);
    if (res)
        PQclear(res);
    return res != NULL;
}

static void s_disconnect(rp_consumer_t *self)
{
    if (self->conn)
        PQfinish(self->conn);
    self->conn = NULL;
}

/* Connects, becomes the one consumer (or stays standby: false) and reads
 * the positions. */
static bool s_connect(rp_consumer_t *self)
{
    self->conn = PQconnectdb(self->conninfo);
    if (PQstatus(self->conn) != CONNECTION_OK) {
        bc_debug("reporting consumer: cannot connect: %s", PQerrorMessage(self->conn));
        s_disconnect(self);
        return false;
    }
    PGresult *res = s_exec(self, "SELECT pg_try_advisory_lock(hashtext('beacon-reporting-consumer'))",
                           0, NULL, false);
    bool mine = res && PQgetvalue(res, 0, 0)[0] == 't';
    if (res)
        PQclear(res);
    if (!mine || !s_cmd(self, "SET synchronous_commit = off") ||
        !s_cmd(self, "SET application_name = 'beacon-reporting-consumer'")) {
        s_disconnect(self);
        return false;
    }
    res = s_exec(self, "SELECT producer, last_seq FROM reporting.positions", 0, NULL, false);
    if (!res) {
        s_disconnect(self);
        return false;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        int p = rp_producer_index(PQgetvalue(res, i, 0));
        if (p >= 0)
            self->pos[p] = atoll(PQgetvalue(res, i, 1));
    }
    PQclear(res);
    bc_info("reporting consumer: applying events (intake %lld, scheduling %lld, notes %lld, "
            "referral %lld, identity %lld applied so far)",
            (long long)self->pos[0], (long long)self->pos[1], (long long)self->pos[2],
            (long long)self->pos[3], (long long)self->pos[4]);
    return true;
}

/* Text that may go into the database: valid UTF-8, at most max bytes. */
static const char *s_clean(const char *s, char *buf, size_t max)
{
    if (!s)
        return "";
    size_t n = strlen(s);
    if (n > max || !bc_utf8_valid(s, n)) {
        snprintf(buf, max + 1, "(unreadable)");
        return buf;
    }
    return s;
}

static int s_reject(rp_consumer_t *self, const Beacon__Event *ev, const char *reason)
{
    char prod[65], topic[129];
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", (long long)ev->seq);
    const char *params[] = {s_clean(ev->producer, prod, 64), seq, s_clean(ev->topic, topic, 128),
                            reason};
    PGresult *res = s_exec(self,
                           "INSERT INTO reporting.rejects (producer, seq, topic, reason) "
                           "VALUES ($1, $2::bigint, $3, left($4, 500)) ON CONFLICT DO NOTHING",
                           4, params, false);
    if (!res)
        return -1;
    PQclear(res);
    self->rejected++;
    bc_warn("reporting consumer: event %s/%s (%s) rejected: %s", params[0], seq, params[2],
            reason);
    return 0;
}

/* The additive measures of a run of events, as PostgreSQL array literals
 * (every element is a uuid, a date, an RFC 3339 instant, a number or NULL:
 * none needs quoting), sent in one statement. */
typedef struct {
    char *col[RP_NCOLS];
    size_t len[RP_NCOLS], cap[RP_NCOLS];
    int n;
    int clients; /* rows with a client */
} s_batch_t;

static void s_col_put(s_batch_t *b, int c, const char *v)
{
    size_t need = strlen(v) + 3;
    if (b->len[c] + need > b->cap[c]) {
        size_t cap = b->cap[c] ? b->cap[c] * 2 : 1024;
        while (cap < b->len[c] + need)
            cap *= 2;
        b->col[c] = bc_realloc(b->col[c], cap);
        b->cap[c] = cap;
    }
    if (b->len[c] == 0)
        b->col[c][b->len[c]++] = '{';
    else
        b->col[c][b->len[c]++] = ',';
    memcpy(b->col[c] + b->len[c], v, strlen(v));
    b->len[c] += strlen(v);
    b->col[c][b->len[c]] = '\0';
}

static void s_batch_add(s_batch_t *b, const rp_plan_t *plan)
{
    const char *ids[5] = {plan->agency, plan->site, plan->staff, plan->at, plan->day};
    for (int c = 0; c < 5; c++)
        s_col_put(b, c, ids[c] ? ids[c] : "NULL");
    for (int k = 0; k < RP_NMEASURES; k++) {
        char num[24];
        snprintf(num, sizeof num, "%lld", (long long)plan->m[k]);
        s_col_put(b, 5 + k, num);
    }
    s_col_put(b, RP_COL_CLIENT, plan->client ? plan->client : "NULL");
    b->clients += plan->client ? 1 : 0;
    b->n++;
}

static void s_batch_reset(s_batch_t *b)
{
    for (int c = 0; c < RP_NCOLS; c++)
        b->len[c] = 0;
    b->n = 0;
    b->clients = 0;
}

static void s_batch_free(s_batch_t *b)
{
    for (int c = 0; c < RP_NCOLS; c++)
        free(b->col[c]);
}

/* Sends the batch (inside the open transaction) and empties it. */
static int s_batch_flush(rp_consumer_t *self, s_batch_t *b, bool quiet)
{
    if (!b->n)
        return 0;
    const char *params[RP_NCOLS];
    for (int c = 0; c < RP_NCOLS; c++) {
        b->col[c][b->len[c]] = '}';
        b->col[c][b->len[c] + 1] = '\0';
        params[c] = b->col[c];
    }
    PGresult *res = s_exec(self,
                           "SELECT reporting.bump_many($1::uuid[], $2::uuid[], $3::uuid[], "
                           "$4::timestamptz[], $5::date[], $6::bigint[], $7::bigint[], "
                           "$8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], "
                           "$12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], "
                           "$16::bigint[], $17::bigint[])",
                           RP_COL_CLIENT, params, quiet);
    if (res && b->clients) {
        /* The clients seen, once per period (migration 010). */
        PQclear(res);
        const char *sp[] = {params[0], params[1], params[3], params[RP_COL_CLIENT]};
        res = s_exec(self,
                     "SELECT reporting.served_many($1::uuid[], $2::uuid[], $3::timestamptz[], "
                     "$4::uuid[])",
                     4, sp, quiet);
    }
    s_batch_reset(b);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

/* Applies one event inside the open transaction: its stateful statement at
 * once, its measures into batch. 0, or -1 when a statement failed (the
 * transaction is then aborted). With careful, the event is applied alone
 * (its measures flushed at once) under a savepoint: a failing statement is
 * undone and the event rejected. */
static int s_apply_one(rp_consumer_t *self, int p, const Beacon__Event *ev, bool careful,
                       s_batch_t *batch)
{
    ProtobufCMessage *m;
    rp_plan_t plan;
    rp_plan(p, ev, &m, &plan);
    int rc = 0;
    if (plan.reject) {
        rc = s_reject(self, ev, plan.reject);
    } else if (plan.sql || plan.add) {
        if (careful && !s_cmd(self, "SAVEPOINT rp_event")) {
            rc = -1;
        } else {
            bool ok = true;
            if (plan.sql) {
                PGresult *res = s_exec(self, plan.sql, plan.n, plan.params, careful);
                ok = res != NULL;
                if (res)
                    PQclear(res);
            }
            if (ok && plan.add) {
                s_batch_add(batch, &plan);
                if (careful)
                    ok = s_batch_flush(self, batch, true) == 0;
            }
            if (ok) {
                if (careful && !s_cmd(self, "RELEASE SAVEPOINT rp_event"))
                    rc = -1;
            } else if (careful && PQstatus(self->conn) == CONNECTION_OK &&
                       s_cmd(self, "ROLLBACK TO SAVEPOINT rp_event")) {
                char reason[300];
                snprintf(reason, sizeof reason, "not applicable: %s",
                         PQerrorMessage(self->conn));
                rc = s_reject(self, ev, reason);
            } else {
                rc = -1;
            }
        }
    }
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    rp_plan_free(&plan);
    if (rc == 0)
        self->applied++;
    return rc;
}

/* Applies the events of producer p that follow its position, in order, in
 * one transaction, stopping at a gap. Returns 1 when a gap was met, 0 when
 * done, -1 when the database failed. */
static int s_apply_run(rp_consumer_t *self, int p, Beacon__Event *const *evs, size_t n,
                       bool careful)
{
    if (!s_cmd(self, "BEGIN"))
        return -1;
    const char *lp[] = {rp_producers[p]};
    PGresult *res = s_exec(self,
                           "SELECT last_seq FROM reporting.positions WHERE producer = $1 "
                           "FOR UPDATE",
                           1, lp, false);
    if (!res || PQntuples(res) != 1) {
        if (res)
            PQclear(res);
        s_cmd(self, "ROLLBACK");
        return -1;
    }
    int64_t last = atoll(PQgetvalue(res, 0, 0)), start = last;
    PQclear(res);
    int gap = 0;
    s_batch_t batch = {0};
    for (size_t i = 0; i < n; i++) {
        const Beacon__Event *ev = evs[i];
        if (ev->seq <= last) {
            self->duplicates++;
            continue;
        }
        if (ev->seq != last + 1) {
            gap = 1;
            break;
        }
        if (s_apply_one(self, p, ev, careful, &batch) < 0) {
            s_batch_free(&batch);
            s_cmd(self, "ROLLBACK");
            return -1;
        }
        last = ev->seq;
    }
    int flushed = s_batch_flush(self, &batch, false);
    s_batch_free(&batch);
    if (flushed < 0) {
        s_cmd(self, "ROLLBACK");
        return -1;
    }
    if (last != start) {
        char seq[24];
        snprintf(seq, sizeof seq, "%lld", (long long)last);
        const char *up[] = {rp_producers[p], seq};
        res = s_exec(self,
                     "UPDATE reporting.positions SET last_seq = $2::bigint, applied_at = now() "
                     "WHERE producer = $1",
                     2, up, false);
        if (!res) {
            s_cmd(self, "ROLLBACK");
            return -1;
        }
        PQclear(res);
    }
    if (!s_cmd(self, "COMMIT"))
        return -1;
    self->pos[p] = last;
    return gap;
}

/* As s_apply_run; when a statement fails on a live connection, the run is
 * tried again event by event so that only the event at fault is rejected. */
static int s_apply(rp_consumer_t *self, int p, Beacon__Event *const *evs, size_t n)
{
    int rc = s_apply_run(self, p, evs, n, false);
    if (rc < 0 && self->conn && PQstatus(self->conn) == CONNECTION_OK)
        rc = s_apply_run(self, p, evs, n, true);
    if (rc < 0 && self->conn && PQstatus(self->conn) != CONNECTION_OK)
        s_disconnect(self);
    return rc;
}

/* Asks producer p for every event after the position and applies them.
 * Returns 0, or -1 when the producer or the database failed. */
static int s_catch_up(rp_consumer_t *self, int p)
{
    if (!self->rpc[p] || !*self->rpc[p])
        return 0;
    bc_error_t err;
    if (!self->replay[p]) {
        self->replay[p] = bc_rpc_client_new(self->zctx, rp_producers[p], self->rpc[p],
                                            self->max_msg, 0, &err);
        if (!self->replay[p])
            return -1;
    }
    for (int rounds = 0; rounds < 1000 && !self->stop && self->conn; rounds++) {
        Beacon__ReplayEventsRequest req = BEACON__REPLAY_EVENTS_REQUEST__INIT;
        req.after_seq = self->pos[p];
        req.limit = S_REPLAY_LIMIT;
        bc_rpc_call_t call = {.method = "ReplayEvents", .payload = &req.base,
                              .deadline_ms = bc_now_ms() + 5000};
        Beacon__ReplayEventsReply *r = (Beacon__ReplayEventsReply *)bc_rpc_client_call(
            self->replay[p], &call, &beacon__replay_events_reply__descriptor, NULL, &err);
        if (!r) {
            bc_debug("reporting consumer: replay from %s: %s", rp_producers[p], err.message);
            return -1;
        }
        size_t n = r->n_events;
        int rc = 0;
        /* A replay answers for its own producer only. */
        for (size_t i = 0; i < n && rc == 0; i++)
            if (!r->events[i]->producer || strcmp(r->events[i]->producer, rp_producers[p]))
                r->events[i]->producer = (char *)rp_producers[p];
        if (n)
            rc = s_apply(self, p, r->events, n);
        protobuf_c_message_free_unpacked(&r->base, NULL);
        if (rc < 0)
            return -1;
        if (n < S_REPLAY_LIMIT)
            return 0;
    }
    return 0;
}

/* Reads what the SUB socket holds (up to S_DRAIN_MAX events, waiting at
 * most wait_ms for the first), and applies it per producer. */
static void s_drain(rp_consumer_t *self, int wait_ms)
{
    Beacon__Event *evs[S_DRAIN_MAX];
    size_t n = 0;
    zmq_pollitem_t item = {self->sub, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, wait_ms) <= 0)
        return;
    while (n < S_DRAIN_MAX) {
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&topic, self->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&topic);
            zmq_msg_close(&body);
            break;
        }
        bool ok = zmq_msg_more(&topic) && zmq_msg_recv(&body, self->sub, ZMQ_DONTWAIT) >= 0;
        /* A message of more than two frames is not an event: drop it all. */
        bool more = ok && zmq_msg_more(&body);
        while (more) {
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            more = zmq_msg_recv(&extra, self->sub, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&extra);
            zmq_msg_close(&extra);
            ok = false;
        }
        if (ok) {
            bc_error_t err;
            Beacon__Event *ev = (Beacon__Event *)bc_pb_unpack(
                &beacon__event__descriptor, NULL, zmq_msg_data(&body), zmq_msg_size(&body),
                BC_PB_MAX_DEPTH, &err);
            if (ev)
                evs[n++] = ev;
            else
                bc_warn("reporting consumer: an event envelope that does not decode, dropped");
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
    }
    bool gap[RP_NPRODUCERS] = {false};
    for (int p = 0; p < RP_NPRODUCERS && self->conn; p++) {
        Beacon__Event *mine[S_DRAIN_MAX];
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (evs[i] && !strcmp(evs[i]->producer, rp_producers[p]))
                mine[k++] = evs[i];
        if (k && s_apply(self, p, mine, k) == 1)
            gap[p] = true;
    }
    for (size_t i = 0; i < n && self->conn; i++)
        if (rp_producer_index(evs[i]->producer) < 0)
            s_reject(self, evs[i], "unknown producer");
    for (size_t i = 0; i < n; i++)
        protobuf_c_message_free_unpacked(&evs[i]->base, NULL);
    for (int p = 0; p < RP_NPRODUCERS && self->conn; p++)
        if (gap[p])
            s_catch_up(self, p);
}

static void *s_main(void *arg)
{
    rp_consumer_t *self = arg;
    int64_t retry_at = 0, poll_at = 0, report_at = bc_mono_ms() + 60000;
    while (!self->stop) {
        if (!self->conn) {
            /* Down or standby: events wait in the producers' outboxes. */
            if (bc_mono_ms() < retry_at || !s_connect(self)) {
                if (bc_mono_ms() >= retry_at)
                    retry_at = bc_mono_ms() + S_RETRY_MS;
                poll(NULL, 0, 100);
                continue;
            }
            poll_at = 0;
        }
        if (bc_mono_ms() >= poll_at) {
            for (int p = 0; p < RP_NPRODUCERS && self->conn; p++)
                s_catch_up(self, p);
            poll_at = bc_mono_ms() + self->poll_ms;
        }
        if (self->conn)
            s_drain(self, 100);
        if (bc_mono_ms() >= report_at) {
            bc_info("reporting consumer: %lld applied, %lld duplicates skipped, %lld rejected",
                    (long long)self->applied, (long long)self->duplicates,
                    (long long)self->rejected);
            report_at = bc_mono_ms() + 60000;
        }
    }
    s_disconnect(self);
    return NULL;
}

rp_consumer_t *rp_consumer_start(const bc_config_t *config, bc_error_t *err)
{
    rp_consumer_t *self = bc_calloc(1, sizeof *self);
    self->conninfo = bc_strdup(bc_config_str(config, "database_url"));
    self->poll_ms = bc_config_int(config, "consumer_poll_ms");
    self->max_msg = (int)bc_config_int(config, "rpc_max_message_bytes");
    self->zctx = zmq_ctx_new();
    self->sub = zmq_socket(self->zctx, ZMQ_SUB);
    bc_zmq_socket_setup(self->sub, self->max_msg, (int)bc_config_int(config, "rpc_heartbeat_ms"));
    zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, "", 0);
    int hwm = 100000;
    zmq_setsockopt(self->sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    for (int p = 0; p < RP_NPRODUCERS; p++) {
        char key[64];
        snprintf(key, sizeof key, "events_endpoint_%s", rp_producers[p]);
        self->endpoints[p] = bc_strdup(bc_config_str(config, key));
        snprintf(key, sizeof key, "endpoint_%s", rp_producers[p]);
        self->rpc[p] = bc_strdup(bc_config_str(config, key));
        /* Subscribe before the first replay, so nothing falls between. Every
         * instance of a producer may relay (one at a time): connect to all. */
        char *list = bc_strdup(self->endpoints[p]), *save = NULL;
        for (char *ep = strtok_r(list, ", ", &save); ep; ep = strtok_r(NULL, ", ", &save)) {
            if (zmq_connect(self->sub, ep) != 0) {
                snprintf(key, sizeof key, "events_endpoint_%s", rp_producers[p]);
                bc_error_set(err, BC_INVALID_ARGUMENT, key, "cannot connect to the event endpoint");
                bc_error_detail(err, "%s: %s", ep, zmq_strerror(zmq_errno()));
                free(list);
                rp_consumer_stop(&self);
                return NULL;
            }
        }
        free(list);
    }
    if (pthread_create(&self->thread, NULL, s_main, self) != 0) {
        bc_error_set(err, BC_INTERNAL, "", "cannot start the event consumer");
        rp_consumer_stop(&self);
        return NULL;
    }
    self->started = true;
    return self;
}

void rp_consumer_stop(rp_consumer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rp_consumer_t *self = *self_p;
    if (self->started) {
        self->stop = 1;
        pthread_join(self->thread, NULL);
    }
    for (int p = 0; p < RP_NPRODUCERS; p++) {
        bc_rpc_client_destroy(&self->replay[p]);
        free(self->endpoints[p]);
        free(self->rpc[p]);
    }
    if (self->sub) {
        int linger = 0;
        zmq_setsockopt(self->sub, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(self->sub);
    }
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    free(self->conninfo);
    free(self);
    *self_p = NULL;
}
