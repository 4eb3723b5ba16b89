/*  bc_rpc: the ZeroMQ request/reply layer (DESIGN decision 1).
 *
 *  Wire: a caller's DEALER sends [empty][Beacon__Request]; the service's
 *  ROUTER hands it to a worker, and the reply comes back as
 *  [empty][Beacon__Reply] with the same id. No broker: a client's DEALER
 *  connects to every configured instance of one service and ZeroMQ spreads
 *  requests across them. Every socket sets ZMQ_MAXMSGSIZE, ZMTP heartbeats
 *  and ZMQ_IMMEDIATE (a call to a service with no live connection fails at
 *  once with BC_UNAVAILABLE instead of queueing).
 *
 *  The client is asynchronous: calls carry correlation ids and absolute
 *  deadlines; bc_rpc_client_process() (run when the ZMQ_FD is readable and
 *  after each turn of the caller's event loop) matches replies to calls and
 *  fails calls whose deadline has passed. A blocking wrapper serves
 *  service-to-service calls. A client belongs to one thread.
 */
#ifndef BC_RPC_H
#define BC_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include "beacon.pb-c.h"
#include "bc_error.h"

/* Largest nesting accepted when unpacking bytes from a peer (protobuf-c
 * itself recurses without a bound). */
#define BC_PB_MAX_DEPTH 32

/* Unpacks data into a message of type desc after checking, without
 * recursion, that it nests no deeper than max_depth. Returns NULL with err
 * (BC_INVALID_ARGUMENT) on malformed or too deep input. */
ProtobufCMessage *bc_pb_unpack(const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *alloc,
                               const uint8_t *data, size_t len, int max_depth, bc_error_t *err);
/* Sets socket options every Beacon ZeroMQ socket uses. */
int bc_zmq_socket_setup(void *socket, int max_msg_bytes, int heartbeat_ms);

typedef struct bc_rpc_client bc_rpc_client_t;

typedef struct {
    const char *method;                   /* "CreateClient" */
    const Beacon__Principal *principal;   /* NULL = none */
    const ProtobufCMessage *payload;      /* packed by the client; NULL = empty */
    const uint8_t *payload_bytes;         /* or already packed bytes */
    size_t payload_len;
    int64_t deadline_ms;                  /* absolute, bc_now_ms() clock */
    const char *idempotency_key;          /* NULL = none */
    const char *request_id;               /* NULL = none */
} bc_rpc_call_t;

/* Called once per call. reply is the service's answer (its status may be an
 * error) and is valid only during the callback; on transport failure reply is
 * NULL and err->code is BC_UNAVAILABLE or BC_DEADLINE_EXCEEDED. */
typedef void (*bc_rpc_cb)(void *arg, const Beacon__Reply *reply, const bc_error_t *err);

/* A client for service reaching the comma-separated endpoints. zctx is a
 * ZeroMQ context shared by the process. */
bc_rpc_client_t *bc_rpc_client_new(void *zctx, const char *service, const char *endpoints,
                                   int max_msg_bytes, int heartbeat_ms, bc_error_t *err);
/* Closes the socket; pending calls are dropped without callbacks. */
void bc_rpc_client_destroy(bc_rpc_client_t **self);
const char *bc_rpc_client_service(const bc_rpc_client_t *self);
/* The socket's ZMQ_FD, for an event loop (edge-like: always drain with
 * bc_rpc_client_process). */
int bc_rpc_client_fd(bc_rpc_client_t *self);
/* Sends a call. Returns a handle (never 0) to cancel it with, or 0 with err
 * set: BC_UNAVAILABLE (no live peer), BC_RESOURCE_EXHAUSTED (too many calls
 * in flight), BC_DEADLINE_EXCEEDED (deadline already past). cb is not called
 * when 0 is returned. */
uint64_t bc_rpc_client_send(bc_rpc_client_t *self, const bc_rpc_call_t *call, bc_rpc_cb cb,
                            void *arg, bc_error_t *err);
/* Forgets a pending call: its callback will not run; a late reply is dropped. */
void bc_rpc_client_cancel(bc_rpc_client_t *self, uint64_t handle);
/* Receives every waiting reply and expires calls past their deadline,
 * running callbacks. Returns how many callbacks ran. */
int bc_rpc_client_process(bc_rpc_client_t *self, int64_t now_ms);
/* Milliseconds until the earliest pending deadline (0 if already due), or -1
 * when nothing is pending. */
int64_t bc_rpc_client_next_timeout(bc_rpc_client_t *self, int64_t now_ms);
size_t bc_rpc_client_pending(const bc_rpc_client_t *self);
/* Blocking call: waits for the reply or the deadline. On BC_OK returns the
 * reply payload unpacked as out_desc (allocated with alloc; NULL = malloc).
 * On failure returns NULL with err set from the reply or the transport. */
ProtobufCMessage *bc_rpc_client_call(bc_rpc_client_t *self, const bc_rpc_call_t *call,
                                     const ProtobufCMessageDescriptor *out_desc,
                                     ProtobufCAllocator *alloc, bc_error_t *err);

/* A call sent and not yet answered (bc_rpc_client_start). */
typedef struct bc_rpc_wait bc_rpc_wait_t;
/* Sends a call as bc_rpc_client_call does (waiting, within the deadline,
 * for a connection) but returns without waiting for the reply, so a caller
 * can ask several services at once and work meanwhile. Returns the wait,
 * owned by the caller until bc_rpc_client_finish or _abandon, or NULL with
 * err set. alloc must outlive the wait. */
bc_rpc_wait_t *bc_rpc_client_start(bc_rpc_client_t *self, const bc_rpc_call_t *call,
                                   const ProtobufCMessageDescriptor *out_desc,
                                   ProtobufCAllocator *alloc, bc_error_t *err);
/* Waits for the reply of *wait (taking it; *wait is set to NULL) and
 * returns it as bc_rpc_client_call does. */
ProtobufCMessage *bc_rpc_client_finish(bc_rpc_client_t *self, bc_rpc_wait_t **wait,
                                       bc_error_t *err);
/* Forgets *wait: its reply, if it comes, is dropped. NULL allowed. */
void bc_rpc_client_abandon(bc_rpc_client_t *self, bc_rpc_wait_t **wait);
#endif
