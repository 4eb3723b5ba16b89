/*  bc_rpc: the asynchronous ZeroMQ client with correlation ids and
 *  deadlines, the bounded-depth protobuf unpacker and common socket options.
 *
 *  Pending calls live in a ring indexed by sequence number (slot = seq &
 *  mask), so matching a reply is O(1) and a full ring means too many calls in
 *  flight. Deadlines sit in a binary min-heap; cancelled or answered calls
 *  leave stale heap entries that are skipped when they reach the top.
 */
#include "bc_rpc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bc_log.h"
#include "bc_mem.h"
#include "bc_util.h"

#define S_RING_SIZE 16384 /* calls in flight per client, a power of two */

/* ---- bounded-depth unpack ------------------------------------------------ */

static int s_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return -1;
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Walks the wire format without recursion, descending only into fields the
 * descriptor says are messages, and fails past max_depth levels. */
static int s_check_depth(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                         int max_depth)
{
    struct {
        const ProtobufCMessageDescriptor *desc;
        size_t end;
    } stack[BC_PB_MAX_DEPTH + 1];
    if (max_depth > BC_PB_MAX_DEPTH)
        max_depth = BC_PB_MAX_DEPTH;
    int depth = 0;
    size_t pos = 0;
    stack[0].desc = desc;
    stack[0].end = len;
    for (;;) {
        while (pos == stack[depth].end) {
            if (depth == 0)
                return 0;
            depth--;
        }
        uint64_t key, n;
        if (s_varint(data, stack[depth].end, &pos, &key) < 0)
            return -1;
        uint32_t number = (uint32_t)(key >> 3);
        switch (key & 7) {
        case 0:
            if (s_varint(data, stack[depth].end, &pos, &n) < 0)
                return -1;
            break;
        case 1:
            if (stack[depth].end - pos < 8)
                return -1;
            pos += 8;
            break;
        case 5:
            if (stack[depth].end - pos < 4)
                return -1;
            pos += 4;
            break;
        case 2: {
            if (s_varint(data, stack[depth].end, &pos, &n) < 0 || n > stack[depth].end - pos)
                return -1;
            const ProtobufCFieldDescriptor *f =
                protobuf_c_message_descriptor_get_field(stack[depth].desc, number);
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (depth + 1 >= max_depth)
                    return -1;
                depth++;
                stack[depth].desc = f->descriptor;
                stack[depth].end = pos + (size_t)n;
            } else {
                pos += (size_t)n;
            }
            break;
        }
        default:
            return -1; /* groups are not used by proto3 */
        }
    }
}

ProtobufCMessage *bc_pb_unpack(const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *alloc,
                               const uint8_t *data, size_t len, int max_depth, bc_error_t *err)
{
    if (s_check_depth(desc, data, len, max_depth) < 0) {
        bc_error_set(err, BC_INVALID_ARGUMENT, "", "malformed or too deeply nested %s",
                     desc->short_name);
        return NULL;
    }
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, alloc, len, data);
    if (!msg)
        bc_error_set(err, BC_INVALID_ARGUMENT, "", "malformed %s", desc->short_name);
    return msg;
}

int bc_zmq_socket_setup(void *socket, int max_msg_bytes, int heartbeat_ms)
{
    int64_t maxmsg = max_msg_bytes;
    int linger = 1000, one = 1;
    int hb_timeout = heartbeat_ms * 3;
    if (zmq_setsockopt(socket, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) < 0 ||
        zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
        zmq_setsockopt(socket, ZMQ_IMMEDIATE, &one, sizeof one) < 0)
        return -1;
    if (heartbeat_ms > 0 &&
        (zmq_setsockopt(socket, ZMQ_HEARTBEAT_IVL, &heartbeat_ms, sizeof heartbeat_ms) < 0 ||
         zmq_setsockopt(socket, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout) < 0 ||
         zmq_setsockopt(socket, ZMQ_HEARTBEAT_TTL, &hb_timeout, sizeof hb_timeout) < 0))
        return -1;
    return 0;
}

/* ---- client --------------------------------------------------------------- */

typedef struct {
    uint64_t seq; /* 0 = free */
    int64_t deadline_ms;
    bc_rpc_cb cb;
    void *arg;
} s_pending_t;

typedef struct {
    int64_t deadline_ms;
    uint64_t seq;
} s_timer_t;

struct bc_rpc_client {
    void *socket;
    char *service;
    char prefix[17]; /* random per client: ids from another client never match */
    uint64_t next_seq;
    int max_msg_bytes;
    s_pending_t *ring;
    size_t pending;
    s_timer_t *heap;
    size_t heap_len, heap_cap;
};

bc_rpc_client_t *bc_rpc_client_new(void *zctx, const char *service, const char *endpoints,
                                   int max_msg_bytes, int heartbeat_ms, bc_error_t *err)
{
    void *socket = zmq_socket(zctx, ZMQ_DEALER);
    if (!socket) {
        bc_error_set(err, BC_INTERNAL, "", "cannot create socket for %s", service);
        bc_error_detail(err, "%s", zmq_strerror(errno));
        return NULL;
    }
    if (bc_zmq_socket_setup(socket, max_msg_bytes, heartbeat_ms) < 0) {
        bc_error_set(err, BC_INTERNAL, "", "cannot configure socket for %s", service);
        zmq_close(socket);
        return NULL;
    }
    char *list = bc_strdup(endpoints), *save = NULL;
    int connected = 0;
    for (char *ep = strtok_r(list, ", ", &save); ep; ep = strtok_r(NULL, ", ", &save)) {
        if (zmq_connect(socket, ep) < 0) {
            bc_error_set(err, BC_INVALID_ARGUMENT, "", "bad endpoint '%s' for %s", ep, service);
            bc_error_detail(err, "%s", zmq_strerror(errno));
            free(list);
            zmq_close(socket);
            return NULL;
        }
        connected++;
    }
    free(list);
    if (!connected) {
        bc_error_set(err, BC_INVALID_ARGUMENT, "", "no endpoint configured for %s", service);
        zmq_close(socket);
        return NULL;
    }
    bc_rpc_client_t *self = bc_calloc(1, sizeof *self);
    self->socket = socket;
    self->service = bc_strdup(service);
    unsigned char rnd[8];
    bc_random_bytes(rnd, sizeof rnd);
    bc_hex(rnd, sizeof rnd, self->prefix);
    self->next_seq = 1;
    self->max_msg_bytes = max_msg_bytes;
    self->ring = bc_calloc(S_RING_SIZE, sizeof *self->ring);
    return self;
}

void bc_rpc_client_destroy(bc_rpc_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bc_rpc_client_t *self = *self_p;
    int linger = 0;
    zmq_setsockopt(self->socket, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(self->socket);
    free(self->service);
    free(self->ring);
    free(self->heap);
    free(self);
    *self_p = NULL;
}

const char *bc_rpc_client_service(const bc_rpc_client_t *self)
{
    return self->service;
}

int bc_rpc_client_fd(bc_rpc_client_t *self)
{
    int fd = -1;
    size_t sz = sizeof fd;
    zmq_getsockopt(self->socket, ZMQ_FD, &fd, &sz);
    return fd;
}

size_t bc_rpc_client_pending(const bc_rpc_client_t *self)
{
    return self->pending;
}

static void s_heap_push(bc_rpc_client_t *self, int64_t deadline, uint64_t seq)
{
    if (self->heap_len == self->heap_cap) {
        self->heap_cap = self->heap_cap ? self->heap_cap * 2 : 256;
        self->heap = bc_realloc(self->heap, self->heap_cap * sizeof *self->heap);
    }
    size_t i = self->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (self->heap[parent].deadline_ms <= deadline)
            break;
        self->heap[i] = self->heap[parent];
        i = parent;
    }
    self->heap[i].deadline_ms = deadline;
    self->heap[i].seq = seq;
}

static void s_heap_pop(bc_rpc_client_t *self)
{
    s_timer_t last = self->heap[--self->heap_len];
    size_t i = 0, n = self->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && self->heap[c + 1].deadline_ms < self->heap[c].deadline_ms)
            c++;
        if (last.deadline_ms <= self->heap[c].deadline_ms)
            break;
        self->heap[i] = self->heap[c];
        i = c;
    }
    if (n)
        self->heap[i] = last;
}

/* Drops heap entries whose call is no longer pending. */
static void s_heap_trim(bc_rpc_client_t *self)
{
    while (self->heap_len) {
        s_timer_t *t = &self->heap[0];
        s_pending_t *p = &self->ring[t->seq & (S_RING_SIZE - 1)];
        if (p->seq == t->seq)
            return;
        s_heap_pop(self);
    }
}

static void *s_pack(const ProtobufCMessage *msg, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = bc_malloc(*len);
    protobuf_c_message_pack(msg, buf);
    return buf;
}

static void s_free_msg(void *data, void *hint)
{
    (void)hint;
    free(data);
}

uint64_t bc_rpc_client_send(bc_rpc_client_t *self, const bc_rpc_call_t *call, bc_rpc_cb cb,
                            void *arg, bc_error_t *err)
{
    if (call->deadline_ms && call->deadline_ms <= bc_now_ms()) {
        bc_error_set(err, BC_DEADLINE_EXCEEDED, "", "deadline passed before calling %s",
                     self->service);
        return 0;
    }
    uint64_t seq = self->next_seq;
    s_pending_t *slot = &self->ring[seq & (S_RING_SIZE - 1)];
    if (slot->seq != 0) {
        bc_error_set(err, BC_RESOURCE_EXHAUSTED, "", "too many calls in flight to %s",
                     self->service);
        return 0;
    }
    char id[48];
    snprintf(id, sizeof id, "%s-%" PRIx64, self->prefix, seq);

    Beacon__Request req = BEACON__REQUEST__INIT;
    req.id = id;
    req.service = self->service;
    req.method = (char *)call->method;
    req.principal = (Beacon__Principal *)call->principal;
    req.deadline_unix_ms = call->deadline_ms;
    req.idempotency_key = (char *)(call->idempotency_key ? call->idempotency_key : "");
    req.request_id = (char *)(call->request_id ? call->request_id : "");
    void *payload = NULL;
    if (call->payload) {
        payload = s_pack(call->payload, &req.payload.len);
        req.payload.data = payload;
    } else if (call->payload_bytes) {
        req.payload.data = (uint8_t *)call->payload_bytes;
        req.payload.len = call->payload_len;
    }
    size_t len;
    void *buf = s_pack(&req.base, &len);
    free(payload);
    if (len > (size_t)self->max_msg_bytes) {
        free(buf);
        bc_error_set(err, BC_PAYLOAD_TOO_LARGE, "", "request to %s is too large", self->service);
        return 0;
    }
    zmq_msg_t msg;
    zmq_msg_init_data(&msg, buf, len, s_free_msg, NULL);
    if (zmq_send(self->socket, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_msg_send(&msg, self->socket, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(&msg);
        bc_error_set(err, BC_UNAVAILABLE, "", "service %s is not reachable", self->service);
        bc_error_detail(err, "%s", zmq_strerror(e));
        return 0;
    }
    self->next_seq++;
    slot->seq = seq;
    slot->deadline_ms = call->deadline_ms;
    slot->cb = cb;
    slot->arg = arg;
    self->pending++;
    if (call->deadline_ms)
        s_heap_push(self, call->deadline_ms, seq);
    return seq;
}

void bc_rpc_client_cancel(bc_rpc_client_t *self, uint64_t handle)
{
    s_pending_t *slot = &self->ring[handle & (S_RING_SIZE - 1)];
    if (handle && slot->seq == handle) {
        slot->seq = 0;
        self->pending--;
    }
}

/* Takes a pending call out of the ring and runs its callback. */
static void s_complete(bc_rpc_client_t *self, s_pending_t *slot, const Beacon__Reply *reply,
                       const bc_error_t *err)
{
    bc_rpc_cb cb = slot->cb;
    void *arg = slot->arg;
    slot->seq = 0;
    self->pending--;
    cb(arg, reply, err);
}

static void s_handle_reply(bc_rpc_client_t *self, const uint8_t *data, size_t len)
{
    bc_error_t err;
    Beacon__Reply *reply = (Beacon__Reply *)bc_pb_unpack(&beacon__reply__descriptor, NULL, data,
                                                         len, BC_PB_MAX_DEPTH, &err);
    if (!reply) {
        bc_warn("dropped malformed reply from %s", self->service);
        return;
    }
    const char *id = reply->id;
    size_t plen = strlen(self->prefix);
    char *end = NULL;
    uint64_t seq = 0;
    if (!strncmp(id, self->prefix, plen) && id[plen] == '-')
        seq = strtoull(id + plen + 1, &end, 16);
    s_pending_t *slot = &self->ring[seq & (S_RING_SIZE - 1)];
    if (seq == 0 || !end || *end || slot->seq != seq) {
        bc_debug("late or unknown reply %s from %s dropped", id, self->service);
    } else if (reply->status == BEACON__CODE__OK) {
        s_complete(self, slot, reply, NULL);
    } else {
        bc_error_t e;
        bc_error_set(&e, (bc_code_t)reply->status, "", "%s",
                     reply->error && reply->error->message[0] ? reply->error->message
                                                              : bc_code_title((bc_code_t)reply->status));
        if (reply->error && reply->error->n_fields)
            snprintf(e.field, sizeof e.field, "%s", reply->error->fields[0]->field);
        s_complete(self, slot, reply, &e);
    }
    protobuf_c_message_free_unpacked(&reply->base, NULL);
}

int bc_rpc_client_process(bc_rpc_client_t *self, int64_t now_ms)
{
    int ran = 0;
    for (;;) {
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(self->socket, ZMQ_EVENTS, &events, &sz) < 0 || !(events & ZMQ_POLLIN))
            break;
        zmq_msg_t frames[2];
        int nframes = 0, more = 1;
        while (more) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, self->socket, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&part);
                break;
            }
            more = zmq_msg_more(&part);
            if (nframes < 2)
                frames[nframes++] = part;
            else
                zmq_msg_close(&part); /* surplus frames: malformed, dropped below */
        }
        size_t before = self->pending;
        if (nframes == 2 && zmq_msg_size(&frames[0]) == 0)
            s_handle_reply(self, zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1]));
        else
            bc_warn("dropped malformed message from %s", self->service);
        ran += before > self->pending;
        for (int i = 0; i < nframes; i++)
            zmq_msg_close(&frames[i]);
    }
    for (;;) {
        s_heap_trim(self);
        if (!self->heap_len || self->heap[0].deadline_ms > now_ms)
            break;
        s_pending_t *slot = &self->ring[self->heap[0].seq & (S_RING_SIZE - 1)];
        s_heap_pop(self);
        bc_error_t e;
        bc_error_set(&e, BC_DEADLINE_EXCEEDED, "", "service %s did not answer in time",
                     self->service);
        s_complete(self, slot, NULL, &e);
        ran++;
    }
    return ran;
}

int64_t bc_rpc_client_next_timeout(bc_rpc_client_t *self, int64_t now_ms)
{
    s_heap_trim(self);
    if (!self->heap_len)
        return -1;
    int64_t d = self->heap[0].deadline_ms - now_ms;
    return d < 0 ? 0 : d;
}

struct bc_rpc_wait {
    uint64_t handle;
    bool done;
    const ProtobufCMessageDescriptor *out_desc;
    ProtobufCAllocator *alloc;
    ProtobufCMessage *out;
    bc_error_t err;
};

static void s_sync_cb(void *arg, const Beacon__Reply *reply, const bc_error_t *err)
{
    bc_rpc_wait_t *s = arg;
    s->done = true;
    if (err) {
        s->err = *err;
        return;
    }
    s->out = bc_pb_unpack(s->out_desc, s->alloc, reply->payload.data, reply->payload.len,
                          BC_PB_MAX_DEPTH, &s->err);
}

bc_rpc_wait_t *bc_rpc_client_start(bc_rpc_client_t *self, const bc_rpc_call_t *call,
                                   const ProtobufCMessageDescriptor *out_desc,
                                   ProtobufCAllocator *alloc, bc_error_t *err)
{
    bc_error_t local;
    if (!err)
        err = &local;
    bc_rpc_wait_t *s = bc_calloc(1, sizeof *s);
    s->out_desc = out_desc;
    s->alloc = alloc;
    uint64_t h = bc_rpc_client_send(self, call, s_sync_cb, s, err);
    /* A client made a moment ago may not have finished connecting (the socket
     * is ZMQ_IMMEDIATE, so nothing queues until it has): a blocking caller
     * waits for the connection, within its deadline, and sends once more. */
    while (!h && err->code == BC_UNAVAILABLE && call->deadline_ms) {
        int64_t left = call->deadline_ms - bc_now_ms();
        if (left <= 0)
            break;
        zmq_pollitem_t item = {self->socket, 0, ZMQ_POLLOUT, 0};
        int n = zmq_poll(&item, 1, left > 100 ? 100 : (long)left);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 || bc_now_ms() + 1 < call->deadline_ms)
            h = bc_rpc_client_send(self, call, s_sync_cb, s, err);
    }
    if (!h) {
        free(s);
        return NULL;
    }
    s->handle = h;
    return s;
}

ProtobufCMessage *bc_rpc_client_finish(bc_rpc_client_t *self, bc_rpc_wait_t **wait,
                                       bc_error_t *err)
{
    bc_error_t local;
    if (!err)
        err = &local;
    bc_rpc_wait_t *s = *wait;
    *wait = NULL;
    while (!s->done) {
        int64_t now = bc_now_ms();
        bc_rpc_client_process(self, now);
        if (s->done)
            break;
        int64_t left = bc_rpc_client_next_timeout(self, now);
        zmq_pollitem_t item = {self->socket, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, left < 0 ? 1000 : (long)left) < 0 && errno != EINTR) {
            bc_rpc_client_cancel(self, s->handle);
            bc_error_set(err, BC_INTERNAL, "", "polling %s failed", self->service);
            free(s);
            return NULL;
        }
    }
    ProtobufCMessage *out = s->out;
    if (!out)
        *err = s->err;
    free(s);
    return out;
}

void bc_rpc_client_abandon(bc_rpc_client_t *self, bc_rpc_wait_t **wait)
{
    if (!wait || !*wait)
        return;
    if (!(*wait)->done)
        bc_rpc_client_cancel(self, (*wait)->handle);
    free(*wait);
    *wait = NULL;
}

ProtobufCMessage *bc_rpc_client_call(bc_rpc_client_t *self, const bc_rpc_call_t *call,
                                     const ProtobufCMessageDescriptor *out_desc,
                                     ProtobufCAllocator *alloc, bc_error_t *err)
{
    bc_error_t local;
    if (!err)
        err = &local;
    bc_rpc_wait_t *s = bc_rpc_client_start(self, call, out_desc, alloc, err);
    return s ? bc_rpc_client_finish(self, &s, err) : NULL;
}
