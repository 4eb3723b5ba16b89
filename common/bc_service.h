/*  bc_service: the common skeleton of every back-end service.
 *
 *  bc_service_main() parses settings, connects to PostgreSQL, applies the
 *  service's migrations, binds its ZeroMQ ROUTER and runs N worker threads,
 *  each with its own PostgreSQL connection. One thread owns the socket and
 *  hands requests to the workers through an in-process queue; a free worker
 *  takes the next request, so one slow query holds up one worker, not the
 *  service. (This replaced an inproc lbbroker proxy: half the message
 *  operations per request and no extra socket hop; the service's CPU per
 *  request fell accordingly.) A full queue answers RESOURCE_EXHAUSTED at
 *  once. SIGTERM/SIGINT stop it cleanly: no new requests are taken, queued
 *  and running requests finish, connections close.
 *
 *  The dispatcher validates each envelope (size, service, method known,
 *  deadline not past), unpacks the payload with the method's input type from
 *  the protobuf-c service descriptor, calls the handler from the table and
 *  packs its output. Handlers never touch sockets. Health and Metrics are
 *  built in.
 */
#ifndef BC_SERVICE_H
#define BC_SERVICE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include "beacon.pb-c.h"
#include "bc_audit.h"
#include "bc_audit_writer.h"
#include "bc_config.h"
#include "bc_db.h"
#include "bc_error.h"
#include "bc_mem.h"

/* Settings every process shares (database_url, log_level, workers,
 * endpoint_<service>, migrations_dir, rpc limits). */
extern const bc_setting_t bc_common_settings[];
/* Names of the back-end services, NULL-terminated. */
extern const char *const bc_service_names[];

typedef struct {
    const Beacon__Request *request;
    const Beacon__Principal *principal; /* never NULL (empty when none) */
    bc_db_t *db;                        /* this worker's connection */
    bc_arena_t *arena;                  /* freed after the reply is sent */
    ProtobufCAllocator *alloc;          /* arena-backed, for output messages */
    const bc_config_t *config;
    void *state;                     /* the service's own state (from start) */
    bc_error_t err;                  /* filled by bc_call_fail */
    bc_audit_chain_t *audit_chain;   /* this worker's chain, for writes (may be NULL) */
    bc_audit_writer_t *audit_writer; /* the service's group writer, for reads (may be NULL) */
    uint64_t audit_ticket;           /* the reply waits until this record is durable */
    bool commit_deferred; /* bc_call_commit left the COMMIT to the dispatcher (idempotency) */
} bc_call_t;

/* Audits a read of PHI: the event (actor, agency and request id filled in
 * from the call) goes to the group writer, and the reply is held until the
 * record is durable, or replaced by UNAVAILABLE if it cannot be written. A
 * handler calls it before returning the data; -1 (with call->err set) means
 * the data must not be returned. */
int bc_call_audit_read(bc_call_t *call, bc_audit_event_t *ev);
/* Audits a change inside the handler's open transaction (bc_db_begin): the
 * record commits or vanishes with the change. After the handler's COMMIT,
 * bc_call_commit() reports it to the chain. -1 (call->err set): roll back. */
int bc_call_audit_write(bc_call_t *call, bc_audit_event_t *ev);
/* Commits the handler's transaction and tells the audit chain; on failure
 * rolls back and returns -1 with call->err set. When the request carries an
 * Idempotency-Key the COMMIT is left to the dispatcher, which first stores
 * the handler's reply under the key in the same transaction (a repeat then
 * gets that reply, never a second change); the handler cannot tell. */
int bc_call_commit(bc_call_t *call);

/* The schema version every event is written with (beacon.Event
 * schema_version; common migration 006). Raise it when a payload's meaning
 * changes; consumers refuse versions they do not know. */
#define BC_EVENT_SCHEMA_VERSION 1

/* Writes an event (topic, the packed msg as payload) to the outbox inside
 * the handler's open transaction, so it commits or vanishes with the
 * change; the service's relay publishes it (DESIGN.md, transactional
 * outbox). -1 with call->err set: roll back. */
int bc_call_emit(bc_call_t *call, const char *topic, const ProtobufCMessage *msg);
/* The same for code that runs outside a request (a background job): msg as
 * producer's event topic, written to the outbox in db's transaction. */
int bc_outbox_emit(bc_db_t *db, const char *producer, const char *topic,
                   const ProtobufCMessage *msg, const char *request_id, bc_error_t *err);
/* A handler for ReplayEvents (beacon.ReplayEventsRequest -> ReplyEventsReply):
 * the service's published events after a sequence number, for subscribers
 * that saw a gap or are starting. */
bc_code_t bc_replay_events(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* True when the caller holds role / works at site_id. */
bool bc_call_has_role(const bc_call_t *call, const char *role);
bool bc_call_has_site(const bc_call_t *call, const char *site_id);

/* A handler reads in (already unpacked) and sets *out to a message it built
 * (from call->arena) on BC_OK, or returns bc_call_fail(...). */
typedef bc_code_t (*bc_handler_fn)(bc_call_t *call, const ProtobufCMessage *in,
                                   ProtobufCMessage **out);

typedef struct {
    const char *method; /* as in the .proto service */
    bc_handler_fn handler;
} bc_method_t;

typedef struct {
    const char *name; /* "intake" */
    const char *home; /* folder under migrations_dir holding migrations/ and the name
                         they are recorded under; NULL = name (identity lives in gateway) */
    const ProtobufCServiceDescriptor *descriptor; /* generated by protoc-c */
    const bc_method_t *methods;                   /* ends with {NULL, NULL} */
    const bc_setting_t *settings;                 /* extra settings, or NULL */
    /* Serves none of the service's events even when events_bind_endpoint is
     * set: a second host of some of the service's methods in the same process
     * (the gateway's IdentityEvents beside identity). */
    bool no_relay;
    /* Worker threads; 0: the workers setting. */
    int workers;
    /* Optional: builds the service's state once settings are loaded. */
    int (*start)(const bc_config_t *config, void **state, bc_error_t *err);
    void (*stop)(void *state);
} bc_service_def_t;

/* Records an error for the reply and returns code. */
bc_code_t bc_call_fail(bc_call_t *call, bc_code_t code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Records err (from a common module) and returns its code. */
bc_code_t bc_call_fail_err(bc_call_t *call, const bc_error_t *err);

/* The common start of every Beacon process: loads the common settings plus
 * extra (NULL allowed), starts logging as name, sends SIGTERM/SIGINT to
 * on_stop and ignores SIGPIPE. Returns the config (caller destroys), or NULL
 * with *exit_code set: 0 after --help, 2 for a bad setting. */
bc_config_t *bc_process_start(const char *name, const bc_setting_t *extra, int argc, char **argv,
                              void (*on_stop)(int), int *exit_code);

/* A service hosted in this process: migrations applied, dispatcher built,
 * ROUTER bound on endpoint (tcp://, ipc:// or inproc:// in zctx), workers
 * started. NULL with err on failure. The gateway hosts identity this way. */
typedef struct bc_service bc_service_t;
bc_service_t *bc_service_new(const bc_service_def_t *def, const bc_config_t *config, void *zctx,
                             const char *endpoint, bc_error_t *err);
/* Serves until *stop becomes nonzero, then drains (see the file header). */
void bc_service_run(bc_service_t *self, volatile sig_atomic_t *stop);
/* Stops the workers and frees everything; NULL allowed. */
void bc_service_destroy(bc_service_t **self);

/* The service's metrics registry (its dispatcher's). */
struct bc_metrics *bc_service_metrics(bc_service_t *self);

/* Runs the service until SIGTERM/SIGINT. Returns the process exit status. */
int bc_service_main(const bc_service_def_t *def, int argc, char **argv);

/* The dispatcher on its own, for tests without sockets. */
typedef struct bc_dispatcher bc_dispatcher_t;
/* Checks every method in the descriptor has a handler (Health and Metrics
 * are built in)
 * and every handler names a method. NULL with err on a mismatch. */
bc_dispatcher_t *bc_dispatcher_new(const bc_service_def_t *def, const bc_config_t *config,
                                   void *state, bc_error_t *err);
void bc_dispatcher_destroy(bc_dispatcher_t **self);
/* The dispatcher's metrics registry (requests by method and code, their
 * durations), which the Metrics method renders; the service host adds its
 * queue and relay figures to it. Owned by the dispatcher. */
struct bc_metrics;
struct bc_metrics *bc_dispatcher_metrics(bc_dispatcher_t *self);
/* What one worker brings to a request. */
typedef struct {
    bc_db_t *db; /* may be NULL (Health then reports the database down) */
    bc_arena_t *arena;
    bc_audit_chain_t *audit_chain;   /* may be NULL: audited writes then fail closed */
    bc_audit_writer_t *audit_writer; /* may be NULL: audited reads then fail closed */
    uint64_t audit_ticket;           /* out: the audit record the reply depends on, or 0 */
} bc_worker_ctx_t;

/* Handles one packed Beacon__Request and returns the packed Beacon__Reply in
 * *reply (malloc'd, caller frees) and its length. */
size_t bc_dispatch_ctx(bc_dispatcher_t *self, bc_worker_ctx_t *ctx, const uint8_t *data, size_t len,
                       int64_t now_ms, uint8_t **reply);
/* The same without audit facilities (tests, fuzzing). */
size_t bc_dispatch(bc_dispatcher_t *self, bc_db_t *db, bc_arena_t *arena, const uint8_t *data,
                   size_t len, int64_t now_ms, uint8_t **reply);

/* A packed Reply refusing the packed Request in data with code and message
 * (its id copied when the envelope is readable). *reply is malloc'd. */
size_t bc_dispatch_reject(const uint8_t *data, size_t len, bc_code_t code, const char *message,
                          uint8_t **reply);

#endif
