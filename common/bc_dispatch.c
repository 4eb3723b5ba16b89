/*  bc_dispatch: one dispatcher for every service (DESIGN decision 3).
 *
 *  Validates the envelope, finds the handler by method name through the
 *  protobuf-c service descriptor, unpacks the payload as the method's input
 *  type (bounded depth), runs the handler and packs its output into a Reply.
 *  Handlers never see sockets or bytes. Health and Metrics are answered
 *  here. Every request is counted by method and outcome code and its time in
 *  the dispatcher observed (bc_metrics: a few atomic adds, no allocation);
 *  the Metrics method returns the service's registry as exposition text.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "bc_version.h"
#include "bc_log.h"
#include "bc_metrics.h"
#include "bc_rpc.h"
#include "bc_service.h"
#include "bc_util.h"
#include "types.pb-c.h"

struct bc_dispatcher {
    const bc_service_def_t *def;
    const bc_config_t *config;
    void *state;
    bc_handler_fn *handlers; /* indexed like def->descriptor->methods */
    int64_t started_ms;
    bc_metrics_t *metrics;
    bool metrics_on;
    /* [method][code], method n_methods standing for an unknown one */
    bc_counter_t **requests;
    bc_histogram_t **latency; /* [method] */
};

static bc_code_t s_health(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
static bc_code_t s_metrics(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* What one dispatch came to, for the metrics. */
typedef struct {
    size_t method; /* index in the descriptor, n_methods when unknown */
    bc_code_t code;
} s_outcome_t;

bc_code_t bc_call_fail(bc_call_t *call, bc_code_t code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bc_error_set(&call->err, code, field, "%s", msg);
    return code;
}

bc_code_t bc_call_fail_err(bc_call_t *call, const bc_error_t *err)
{
    call->err = *err;
    return err->code;
}

/* The caller idempotency keys belong to (staff member or API key), or NULL. */
static const char *s_caller(const Beacon__Principal *p)
{
    if (p->staff_id && *p->staff_id)
        return p->staff_id;
    if (p->api_key_id && *p->api_key_id)
        return p->api_key_id;
    return NULL;
}

/* SHA-256 over method, a zero byte and the packed request payload. */
static void s_request_hash(const Beacon__Request *req, unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, req->method, strlen(req->method) + 1);
    EVP_DigestUpdate(ctx, req->payload.data, req->payload.len);
    EVP_DigestFinal_ex(ctx, out, NULL);
    EVP_MD_CTX_free(ctx);
}

typedef enum { S_IDEM_NONE, S_IDEM_REPLAY, S_IDEM_MISMATCH } s_idem_t;

/* Looks up the caller's key: a stored reply for this very request
 * (*payload set, arena memory), a key used for another request, or none. */
static s_idem_t s_idem_find(bc_db_t *db, bc_arena_t *arena, const char *service,
                            const Beacon__Request *req, const char *caller,
                            ProtobufCBinaryData *payload, bc_error_t *err, bool *failed)
{
    unsigned char hash[32];
    char hex[65];
    s_request_hash(req, hash);
    bc_hex(hash, sizeof hash, hex);
    const char *params[] = {service, caller, req->idempotency_key};
    PGresult *res = bc_db_prepared(
        db, "bc_idempotency_find",
        "SELECT method, encode(request_hash, 'hex'), reply FROM rpc.idempotency "
        "WHERE service = $1 AND caller = $2 AND key = $3 "
        "AND created_at > now() - interval '24 hours'",
        3, params, err);
    *failed = res == NULL;
    if (!res)
        return S_IDEM_NONE;
    s_idem_t r = S_IDEM_NONE;
    if (PQntuples(res) == 1) {
        if (strcmp(PQgetvalue(res, 0, 0), req->method) || strcmp(PQgetvalue(res, 0, 1), hex)) {
            r = S_IDEM_MISMATCH;
        } else {
            size_t n = 0;
            unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 2), &n);
            payload->len = n;
            payload->data = bc_arena_alloc(arena, n ? n : 1);
            if (raw && n)
                memcpy(payload->data, raw, n);
            PQfreemem(raw);
            r = S_IDEM_REPLAY;
        }
    }
    PQclear(res);
    return r;
}

/* Stores the reply under the key in the handler's open transaction, then
 * commits. -1 with err (rolled back) when either fails. */
static int s_idem_commit(bc_call_t *call, const char *service, const ProtobufCBinaryData *payload,
                         bc_error_t *err)
{
    const Beacon__Request *req = call->request;
    unsigned char hash[32];
    s_request_hash(req, hash);
    const char *caller = s_caller(call->principal);
    const char *values[] = {service, caller, req->idempotency_key, req->method, (char *)hash,
                            (char *)payload->data};
    int lengths[] = {0, 0, 0, 0, 32, (int)payload->len};
    int formats[] = {0, 0, 0, 0, 1, 1};
    PGresult *res = bc_db_prepared_binary(
        call->db, "bc_idempotency_store",
        "WITH gone AS (DELETE FROM rpc.idempotency WHERE service = $1 AND caller = $2 "
        "              AND key = $3 AND created_at <= now() - interval '24 hours') "
        "INSERT INTO rpc.idempotency (service, caller, key, method, request_hash, reply) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING 1",
        6, values, lengths, formats, err);
    bool stored = res && PQntuples(res) == 1;
    if (res)
        PQclear(res);
    if (!stored) {
        bc_db_rollback(call->db);
        if (call->audit_chain)
            bc_audit_rollback(call->audit_chain);
        if (res) /* someone else committed this key meanwhile */
            bc_error_set(err, BC_CONFLICT, "",
                         "a request with this Idempotency-Key was just made: repeat it to get "
                         "its answer");
        return -1;
    }
    if (bc_db_commit(call->db, err) < 0) {
        if (call->audit_chain)
            bc_audit_rollback(call->audit_chain);
        return -1;
    }
    if (call->audit_chain)
        bc_audit_commit(call->audit_chain);
    return 0;
}

/* Fills who and which request from the call where the handler left them. */
static void s_audit_actor(bc_call_t *call, bc_audit_event_t *ev)
{
    const Beacon__Principal *p = call->principal;
    if (!ev->request_id)
        ev->request_id = call->request->request_id;
    if (!ev->actor_staff_id)
        ev->actor_staff_id = p->staff_id;
    if (!ev->actor_api_key_id)
        ev->actor_api_key_id = p->api_key_id;
    if (!ev->agency_id)
        ev->agency_id = p->agency_id;
    if (!ev->outcome)
        ev->outcome = BC_AUDIT_OK;
}

int bc_outbox_emit(bc_db_t *db, const char *producer, const char *topic,
                   const ProtobufCMessage *msg, const char *request_id, bc_error_t *err)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *payload = bc_malloc(len ? len : 1);
    protobuf_c_message_pack(msg, payload);
    char version[16];
    snprintf(version, sizeof version, "%d", BC_EVENT_SCHEMA_VERSION);
    const char *values[] = {producer, topic, (const char *)payload,
                            request_id ? request_id : "", version};
    int lengths[] = {0, 0, (int)len, 0, 0};
    int formats[] = {0, 0, 1, 0, 0};
    /* Deferred (the values are copied): it reaches the server with the
     * transaction's next statement, whose failure then fails the caller.
     * The relay is woken in this process when the transaction commits
     * (bc_db_note_events), not by NOTIFY: PostgreSQL serialises the commits
     * of all transactions that notify (one lock on the notification queue
     * held through each commit's WAL flush), which capped registrations at
     * one per flush once each wrote an event (314/s against 857/s). */
    int rc = bc_db_defer(db, "bc_outbox_emit_i",
                         "INSERT INTO events.outbox (producer, topic, payload, request_id, "
                         "schema_version) VALUES ($1, $2, $3, nullif($4, ''), $5::int)",
                         5, values, lengths, formats, err);
    free(payload);
    if (rc == 0)
        bc_db_note_events(db);
    return rc;
}

int bc_call_emit(bc_call_t *call, const char *topic, const ProtobufCMessage *msg)
{
    bc_error_t err;
    if (bc_outbox_emit(call->db, call->request->service, topic, msg, call->request->request_id,
                       &err) < 0) {
        bc_err("event %s not written: %s (%s)", topic, err.message, err.detail);
        bc_call_fail_err(call, &err);
        return -1;
    }
    return 0;
}

bc_code_t bc_replay_events(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__ReplayEventsRequest *req = (const Beacon__ReplayEventsRequest *)in;
    if (req->after_seq < 0)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "after_seq", "after_seq must be >= 0");
    if (req->limit < 0 || req->limit > 1000)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "limit", "limit must be 1 to 1000");
    char after[24], limit[16];
    snprintf(after, sizeof after, "%lld", (long long)req->after_seq);
    snprintf(limit, sizeof limit, "%d", req->limit ? req->limit : 500);
    const char *params[] = {call->request->service, after, limit};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "bc_outbox_replay_v",
        "SELECT published_seq, topic, payload, coalesce(request_id, ''), "
        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
        "schema_version FROM events.outbox WHERE producer = $1 AND published_seq > $2::bigint "
        "ORDER BY published_seq LIMIT $3::int",
        3, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__ReplayEventsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__replay_events_reply__init(r);
    int rows = PQntuples(res);
    r->events = bc_arena_alloc(call->arena, (size_t)(rows ? rows : 1) * sizeof(void *));
    for (int i = 0; i < rows; i++) {
        Beacon__Event *e = bc_arena_alloc(call->arena, sizeof *e);
        beacon__event__init(e);
        e->producer = (char *)call->request->service;
        e->seq = atoll(PQgetvalue(res, i, 0));
        e->topic = bc_arena_strdup(call->arena, PQgetvalue(res, i, 1));
        size_t n = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &n);
        e->payload.data = bc_arena_alloc(call->arena, n ? n : 1);
        if (raw && n)
            memcpy(e->payload.data, raw, n);
        e->payload.len = raw ? n : 0;
        PQfreemem(raw);
        e->request_id = bc_arena_strdup(call->arena, PQgetvalue(res, i, 3));
        e->occurred_at = bc_arena_strdup(call->arena, PQgetvalue(res, i, 4));
        e->schema_version = atoi(PQgetvalue(res, i, 5));
        r->events[r->n_events++] = e;
    }
    PQclear(res);
    *out = &r->base;
    return BC_OK;
}

static bool s_in(char *const *items, size_t n, const char *value)
{
    for (size_t i = 0; value && i < n; i++)
        if (!strcmp(items[i], value))
            return true;
    return false;
}

bool bc_call_has_role(const bc_call_t *call, const char *role)
{
    return s_in(call->principal->roles, call->principal->n_roles, role);
}

bool bc_call_has_site(const bc_call_t *call, const char *site_id)
{
    return s_in(call->principal->site_ids, call->principal->n_site_ids, site_id);
}

int bc_call_audit_read(bc_call_t *call, bc_audit_event_t *ev)
{
    s_audit_actor(call, ev);
    bc_error_t err;
    if (!call->audit_writer) {
        bc_call_fail(call, BC_UNAVAILABLE, "", "audit log unavailable");
        return -1;
    }
    uint64_t ticket = bc_audit_writer_submit(call->audit_writer, ev, &err);
    if (!ticket) {
        bc_err("audit record refused: %s", err.message);
        bc_call_fail(call, BC_UNAVAILABLE, "", "audit log unavailable");
        return -1;
    }
    if (ticket > call->audit_ticket)
        call->audit_ticket = ticket;
    return 0;
}

int bc_call_audit_write(bc_call_t *call, bc_audit_event_t *ev)
{
    s_audit_actor(call, ev);
    bc_error_t err;
    if (!call->audit_chain) {
        bc_call_fail(call, BC_UNAVAILABLE, "", "audit log unavailable");
        return -1;
    }
    if (bc_audit_append(call->audit_chain, call->db, ev, &err) < 0) {
        bc_err("audit record not written: %s (%s)", err.message, err.detail);
        bc_call_fail(call, BC_UNAVAILABLE, "", "audit log unavailable");
        return -1;
    }
    return 0;
}

int bc_call_commit(bc_call_t *call)
{
    if (*call->request->idempotency_key && s_caller(call->principal)) {
        call->commit_deferred = true;
        return 0;
    }
    bc_error_t err;
    if (bc_db_commit(call->db, &err) < 0) {
        if (call->audit_chain)
            bc_audit_rollback(call->audit_chain);
        bc_call_fail_err(call, &err);
        return -1;
    }
    if (call->audit_chain)
        bc_audit_commit(call->audit_chain);
    return 0;
}

bc_dispatcher_t *bc_dispatcher_new(const bc_service_def_t *def, const bc_config_t *config,
                                   void *state, bc_error_t *err)
{
    const ProtobufCServiceDescriptor *sd = def->descriptor;
    bc_handler_fn *handlers = bc_calloc(sd->n_methods, sizeof *handlers);
    for (const bc_method_t *m = def->methods; m && m->method; m++) {
        unsigned i;
        for (i = 0; i < sd->n_methods; i++)
            if (!strcmp(sd->methods[i].name, m->method))
                break;
        if (i == sd->n_methods) {
            bc_error_set(err, BC_INTERNAL, "", "handler %s is not a method of %s", m->method,
                         sd->name);
            free(handlers);
            return NULL;
        }
        handlers[i] = m->handler;
    }
    for (unsigned i = 0; i < sd->n_methods; i++) {
        if (!strcmp(sd->methods[i].name, "Health") && !handlers[i])
            handlers[i] = s_health;
        if (!strcmp(sd->methods[i].name, "Metrics") && !handlers[i])
            handlers[i] = s_metrics;
        if (!handlers[i]) {
            bc_error_set(err, BC_INTERNAL, "", "method %s.%s has no handler", sd->name,
                         sd->methods[i].name);
            free(handlers);
            return NULL;
        }
    }
    bc_dispatcher_t *self = bc_calloc(1, sizeof *self);
    self->def = def;
    self->config = config;
    self->state = state;
    self->handlers = handlers;
    self->started_ms = bc_mono_ms();
    self->metrics = bc_metrics_new(def->name);
    self->metrics_on = !config || bc_config_bool(config, "metrics");
    size_t nm = sd->n_methods + 1;
    self->requests = bc_calloc(nm * BC_CODE_COUNT, sizeof *self->requests);
    self->latency = bc_calloc(nm, sizeof *self->latency);
    for (size_t i = 0; i < nm; i++) {
        const char *method = i < sd->n_methods ? sd->methods[i].name : "(unknown)";
        for (int c = 0; c < BC_CODE_COUNT; c++) {
            const char *labels[] = {"method", method, "code", bc_code_name((bc_code_t)c), NULL};
            /* Each known method's OK line is always there (a dashboard
             * lists every method); error codes appear once they happen. */
            self->requests[i * BC_CODE_COUNT + (size_t)c] = bc_metrics_counter(
                self->metrics, "beacon_rpc_requests_total",
                "Requests a service answered, by method and outcome code", labels,
                c == BC_OK && i < sd->n_methods ? 0 : BC_METRIC_HIDE_ZERO);
        }
    }
    for (size_t i = 0; i < nm; i++) {
        const char *labels[] = {"method", i < sd->n_methods ? sd->methods[i].name : "(unknown)",
                                NULL};
        self->latency[i] = bc_metrics_histogram(
            self->metrics, "beacon_rpc_duration_seconds",
            "Time from a request's dispatch to its packed reply, by method", labels,
            bc_metrics_latency_buckets, bc_metrics_latency_nbuckets, BC_METRIC_HIDE_ZERO);
    }
    return self;
}

bc_metrics_t *bc_dispatcher_metrics(bc_dispatcher_t *self)
{
    return self->metrics;
}

void bc_dispatcher_destroy(bc_dispatcher_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->handlers);
    free((*self_p)->requests);
    free((*self_p)->latency);
    bc_metrics_destroy(&(*self_p)->metrics);
    free(*self_p);
    *self_p = NULL;
}

static size_t s_reply(const char *id, bc_code_t code, const bc_error_t *err,
                      const ProtobufCBinaryData *payload, uint8_t **out)
{
    Beacon__Reply reply = BEACON__REPLY__INIT;
    Beacon__ErrorDetail detail = BEACON__ERROR_DETAIL__INIT;
    Beacon__FieldViolation violation = BEACON__FIELD_VIOLATION__INIT;
    Beacon__FieldViolation *violations[1] = {&violation};
    reply.id = (char *)(id ? id : "");
    reply.status = (Beacon__Code)code;
    if (code != BC_OK) {
        detail.message = (char *)(err && err->message[0] ? err->message : bc_code_title(code));
        detail.detail = (char *)"";
        if (err && err->field[0]) {
            violation.field = (char *)err->field;
            violation.message = detail.message;
            detail.fields = violations;
            detail.n_fields = 1;
        }
        reply.error = &detail;
    } else if (payload) {
        reply.payload = *payload;
    }
    size_t len = protobuf_c_message_get_packed_size(&reply.base);
    *out = bc_malloc(len);
    protobuf_c_message_pack(&reply.base, *out);
    return len;
}

size_t bc_dispatch_reject(const uint8_t *data, size_t len, bc_code_t code, const char *message,
                          uint8_t **reply)
{
    bc_error_t err;
    Beacon__Request *req = (Beacon__Request *)bc_pb_unpack(&beacon__request__descriptor, NULL, data,
                                                           len, BC_PB_MAX_DEPTH, &err);
    bc_error_set(&err, code, "", "%s", message);
    size_t n = s_reply(req ? req->id : NULL, code, &err, NULL, reply);
    if (req)
        protobuf_c_message_free_unpacked(&req->base, NULL);
    return n;
}

static const Beacon__Principal s_no_principal = BEACON__PRINCIPAL__INIT;

/* The scope of the request this thread is handling, and the one last set on
 * its connection (bc_db_connections changes on every reconnect, and a new
 * session starts without the settings). */
typedef struct {
    char sites[4096], roles[512], caseload[4096];
    const char *params[7]; /* staff, agency, sites, roles, api key, caseload sites, organisation */
    char key[9216];        /* all of them, to compare */
} s_scope_t;

static _Thread_local s_scope_t s_scope;
static _Thread_local char s_scope_set[9216];
static _Thread_local const bc_db_t *s_scope_db;
static _Thread_local unsigned long s_scope_conn;

#define S_SCOPE_SQL                                                                                \
    "SELECT set_config('beacon.staff_id', $1, false), set_config('beacon.agency_id', $2, false), " \
    "set_config('beacon.site_ids', $3, false), set_config('beacon.roles', $4, false), "            \
    "set_config('beacon.api_key_id', $5, false), "                                                 \
    "set_config('beacon.caseload_site_ids', $6, false), "                                          \
    "set_config('beacon.organization_id', $7, false)"

/* Joins items with commas into out; -1 when they do not fit. */
static int s_join(char *out, size_t len, char *const *items, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + used, len - used, "%s%s", i ? "," : "", items[i]);
        if (w < 0 || (size_t)w >= len - used)
            return -1;
        used += (size_t)w;
    }
    return 0;
}

/* After a reconnect (which may happen inside a handler's own query), the new
 * session gets the current request's scope before anything else runs. */
static int s_scope_on_connect(PGconn *conn, void *arg)
{
    (void)arg;
    PGresult *res = PQexecParams(conn, S_SCOPE_SQL, 7, NULL, s_scope.params, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    if (ok)
        snprintf(s_scope_set, sizeof s_scope_set, "%s", s_scope.key);
    return ok ? 0 : -1;
}

/* Puts the caller's scope into the connection's settings, where row-level
 * security policies read it (current_setting('beacon.site_ids') etc.). The
 * settings are session-level and set before every request whose scope
 * differs from the last one on this session, so a request never sees the
 * previous caller's scope; a repeat caller costs no round trip. */
static int s_apply_scope(bc_db_t *db, const Beacon__Principal *p, bc_error_t *err)
{
    s_scope_t *sc = &s_scope;
    if (s_join(sc->sites, sizeof sc->sites, p->site_ids, p->n_site_ids) < 0 ||
        s_join(sc->roles, sizeof sc->roles, p->roles, p->n_roles) < 0 ||
        s_join(sc->caseload, sizeof sc->caseload, p->caseload_site_ids, p->n_caseload_site_ids) < 0)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "", "principal too large");
    int n = snprintf(sc->key, sizeof sc->key, "%s|%s|%s|%s|%s|%s|%s", p->staff_id, p->agency_id,
                     sc->sites, sc->roles, p->api_key_id, sc->caseload, p->organization_id);
    if (n < 0 || (size_t)n >= sizeof sc->key)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "", "principal too large");
    sc->params[0] = p->staff_id;
    sc->params[1] = p->agency_id;
    sc->params[2] = sc->sites;
    sc->params[3] = sc->roles;
    sc->params[4] = p->api_key_id;
    sc->params[5] = sc->caseload;
    sc->params[6] = p->organization_id;
    if (s_scope_db != db) {
        bc_db_on_connect(db, s_scope_on_connect, NULL);
        s_scope_db = db;
        s_scope_conn = 0;
    }
    if (bc_db_ok(db) && s_scope_conn == bc_db_connections(db) && !strcmp(sc->key, s_scope_set))
        return 0;
    PGresult *res = bc_db_prepared(db, "bc_scope", S_SCOPE_SQL, 7, sc->params, err);
    if (!res) {
        s_scope_set[0] = '\0';
        return -1;
    }
    PQclear(res);
    snprintf(s_scope_set, sizeof s_scope_set, "%s", sc->key);
    s_scope_conn = bc_db_connections(db);
    return 0;
}

size_t bc_dispatch(bc_dispatcher_t *self, bc_db_t *db, bc_arena_t *arena, const uint8_t *data,
                   size_t len, int64_t now_ms, uint8_t **reply)
{
    bc_worker_ctx_t ctx = {.db = db, .arena = arena};
    return bc_dispatch_ctx(self, &ctx, data, len, now_ms, reply);
}

static size_t s_dispatch(bc_dispatcher_t *self, bc_worker_ctx_t *ctx, const uint8_t *data,
                         size_t len, int64_t now_ms, uint8_t **reply, s_outcome_t *o);

size_t bc_dispatch_ctx(bc_dispatcher_t *self, bc_worker_ctx_t *ctx, const uint8_t *data, size_t len,
                       int64_t now_ms, uint8_t **reply)
{
    if (!self->metrics_on) {
        s_outcome_t o;
        return s_dispatch(self, ctx, data, len, now_ms, reply, &o);
    }
    int64_t t0 = bc_mono_us();
    s_outcome_t o = {self->def->descriptor->n_methods, BC_INTERNAL};
    size_t n = s_dispatch(self, ctx, data, len, now_ms, reply, &o);
    if ((unsigned)o.code >= BC_CODE_COUNT)
        o.code = BC_INTERNAL;
    bc_counter_add(self->requests[o.method * BC_CODE_COUNT + (size_t)o.code], 1);
    bc_histogram_observe_us(self->latency[o.method], bc_mono_us() - t0);
    return n;
}

/* s_reply, noting the outcome. */
static size_t s_out(s_outcome_t *o, const char *id, bc_code_t code, const bc_error_t *err,
                    const ProtobufCBinaryData *payload, uint8_t **out)
{
    o->code = code;
    return s_reply(id, code, err, payload, out);
}

static size_t s_dispatch(bc_dispatcher_t *self, bc_worker_ctx_t *ctx, const uint8_t *data,
                         size_t len, int64_t now_ms, uint8_t **reply, s_outcome_t *o)
{
    bc_db_t *db = ctx->db;
    bc_arena_t *arena = ctx->arena;
    ctx->audit_ticket = 0;
    bc_error_t err;
    ProtobufCAllocator *alloc = bc_arena_allocator(arena);
    Beacon__Request *req = (Beacon__Request *)bc_pb_unpack(&beacon__request__descriptor, alloc,
                                                           data, len, BC_PB_MAX_DEPTH, &err);
    if (!req) {
        bc_warn("malformed request envelope (%zu bytes)", len);
        return s_out(o, NULL, BC_INVALID_ARGUMENT, &err, NULL, reply);
    }
    bc_log_set_request(req->request_id);
    const ProtobufCServiceDescriptor *sd = self->def->descriptor;
    if (strcmp(req->service, self->def->name) != 0) {
        bc_error_set(&err, BC_INVALID_ARGUMENT, "", "request for service '%s' reached %s",
                     req->service, self->def->name);
        return s_out(o, req->id, err.code, &err, NULL, reply);
    }
    const ProtobufCMethodDescriptor *md =
        protobuf_c_service_descriptor_get_method_by_name(sd, req->method);
    if (!md) {
        bc_error_set(&err, BC_UNIMPLEMENTED, "", "%s has no method '%s'", self->def->name,
                     req->method);
        return s_out(o, req->id, err.code, &err, NULL, reply);
    }
    o->method = (size_t)(md - sd->methods);
    if (req->deadline_unix_ms && req->deadline_unix_ms <= now_ms) {
        /* The caller has given up; doing the work now would only waste it. */
        bc_error_set(&err, BC_DEADLINE_EXCEEDED, "", "deadline passed before work started");
        return s_out(o, req->id, err.code, &err, NULL, reply);
    }
    ProtobufCMessage *in =
        bc_pb_unpack(md->input, alloc, req->payload.data, req->payload.len, BC_PB_MAX_DEPTH, &err);
    if (!in)
        return s_out(o, req->id, err.code, &err, NULL, reply);

    bc_call_t call = {
        .request = req,
        .principal = req->principal ? req->principal : &s_no_principal,
        .db = db,
        .arena = arena,
        .alloc = alloc,
        .config = self->config,
        .state = self->state,
        .audit_chain = ctx->audit_chain,
        .audit_writer = ctx->audit_writer,
    };
    bc_error_clear(&call.err);
    int64_t t0 = bc_mono_us();
    ProtobufCMessage *out = NULL;
    size_t method_index = (size_t)(md - sd->methods);
    bool health =
        self->handlers[method_index] == s_health || self->handlers[method_index] == s_metrics;
    call.state = health ? (void *)self : self->state;
    /* Fail closed: no handler runs on a connection whose scope is not the
     * caller's. */
    bc_code_t code;
    bool idem = !health && db && *req->idempotency_key && s_caller(call.principal);
    if (!health && db && s_apply_scope(db, call.principal, &call.err) < 0) {
        code = call.err.code;
    } else if (idem) {
        ProtobufCBinaryData stored = {0};
        bool failed = false;
        s_idem_t found =
            s_idem_find(db, arena, self->def->name, req, s_caller(call.principal), &stored,
                        &call.err, &failed);
        if (failed)
            code = call.err.code;
        else if (found == S_IDEM_REPLAY) {
            bc_debug("%s: Idempotency-Key seen before, the stored reply answers", req->method);
            size_t n = s_out(o, req->id, BC_OK, NULL, &stored, reply);
            bc_log_set_request(NULL);
            return n;
        } else if (found == S_IDEM_MISMATCH)
            code = bc_call_fail(&call, BC_FAILED_PRECONDITION, "Idempotency-Key",
                                "this Idempotency-Key was used for a different request");
        else
            code = self->handlers[method_index](&call, in, &out);
    } else {
        code = self->handlers[method_index](&call, in, &out);
    }
    if (call.commit_deferred && code != BC_OK)
        call.commit_deferred = false;
    if (db && bc_db_in_transaction(db) && !call.commit_deferred) {
        bc_db_rollback(db); /* a handler that forgot to finish must not leak a transaction */
        if (call.audit_chain)
            bc_audit_rollback(call.audit_chain);
    }
    ctx->audit_ticket = code == BC_OK ? call.audit_ticket : 0;
    int64_t took = bc_mono_us() - t0;
    if (code != BC_OK) {
        bc_log_level_t lvl = (code == BC_INTERNAL || code == BC_DATA_LOSS) ? BC_LOG_ERROR
                             : code == BC_UNAVAILABLE                      ? BC_LOG_WARN
                                                                           : BC_LOG_DEBUG;
        if (bc_log_enabled(lvl))
            bc_log_fields(lvl,
                          json_pack("{s:s, s:s, s:s, s:I}", "method", req->method, "code",
                                    bc_code_name(code), "detail", call.err.detail, "us",
                                    (json_int_t)took),
                          "%s failed: %s", req->method, call.err.message);
        size_t n = s_out(o, req->id, code, &call.err, NULL, reply);
        bc_log_set_request(NULL);
        return n;
    }
    if (!out || out->descriptor != md->output) {
        bc_err("%s returned %s instead of %s", req->method, out ? out->descriptor->name : "nothing",
               md->output->name);
        if (call.commit_deferred) {
            bc_db_rollback(db);
            if (call.audit_chain)
                bc_audit_rollback(call.audit_chain);
        }
        bc_error_set(&err, BC_INTERNAL, "", "internal error");
        return s_out(o, req->id, BC_INTERNAL, &err, NULL, reply);
    }
    ProtobufCBinaryData payload;
    payload.len = protobuf_c_message_get_packed_size(out);
    payload.data = bc_arena_alloc(arena, payload.len);
    protobuf_c_message_pack(out, payload.data);
    if (call.commit_deferred && s_idem_commit(&call, self->def->name, &payload, &err) < 0) {
        bc_warn("%s: not committed: %s (%s)", req->method, err.message, err.detail);
        size_t n = s_out(o, req->id, err.code, &err, NULL, reply);
        bc_log_set_request(NULL);
        return n;
    }
    bc_debug("%s ok in %lld us", req->method, (long long)took);
    size_t n = s_out(o, req->id, BC_OK, NULL, &payload, reply);
    bc_log_set_request(NULL);
    return n;
}

static bc_code_t s_health(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    (void)in;
    bc_dispatcher_t *self = call->state;
    Beacon__HealthReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__health_reply__init(r);
    r->service = (char *)self->def->name;
    r->version = (char *)BEACON_VERSION;
    r->uptime_seconds = (bc_mono_ms() - self->started_ms) / 1000;
    r->workers = self->config ? (int32_t)bc_config_int(self->config, "workers") : 0;
    bc_error_t err;
    PGresult *res = NULL;
    if (call->db) {
        const char *params[1] = {self->def->home ? self->def->home : self->def->name};
        res = bc_db_prepared(call->db, "bc_health_migrations",
                             "SELECT name FROM public.beacon_schema_migrations WHERE service = $1 "
                             "ORDER BY version",
                             1, params, &err);
    }
    r->database_ok = res != NULL;
    if (res) {
        int n = PQntuples(res);
        r->n_migrations = (size_t)n;
        r->migrations = bc_arena_alloc(call->arena, sizeof(char *) * (size_t)(n ? n : 1));
        for (int i = 0; i < n; i++)
            r->migrations[i] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        PQclear(res);
    }
    r->status = (char *)(r->database_ok ? "ok" : "degraded");
    *out = &r->base;
    return BC_OK;
}

static bc_code_t s_metrics(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    (void)in;
    bc_dispatcher_t *self = call->state;
    Beacon__MetricsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__metrics_reply__init(r);
    r->service = (char *)self->def->name;
    size_t len = 0;
    char *text = bc_metrics_render(self->metrics, &len);
    r->text = bc_arena_strndup(call->arena, text, len);
    free(text);
    *out = &r->base;
    return BC_OK;
}
