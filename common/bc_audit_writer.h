/*  bc_audit_writer: group-committed audit records for reads.
 *
 *  A read of a client's record must be audited before its data leaves the
 *  service, but an audit INSERT in the reader's own transaction turns every
 *  read into a committed write (measured on this machine: a prepared
 *  primary-key SELECT alone 67k/s with 4 clients; with a one-row audit
 *  INSERT and COMMIT, fsync on, 4.6k/s). The writer instead owns one audit
 *  chain and one connection, takes the events of many requests at once (up
 *  to 256) and commits them in one statement, so one network round trip per
 *  batch whatever its size (bc_audit_append_batch; BEGIN, one INSERT per
 *  event and COMMIT cost N + 2 round trips, which dominated the latency a
 *  held reply waits for). Each submitted event gets a ticket; the
 *  reply that depends on it is held until the ticket is durable, and turned
 *  into an error if its batch could not be written (fail closed: data is
 *  never returned without its audit record). Batches settle in ticket order.
 *
 *  Writes keep auditing inside their own transaction (bc_audit_append), so a
 *  change and its record commit or vanish together.
 */
#ifndef BC_AUDIT_WRITER_H
#define BC_AUDIT_WRITER_H

#include <stdint.h>

#include "bc_audit.h"
#include "bc_error.h"

typedef struct bc_audit_writer bc_audit_writer_t;

typedef enum {
    BC_AUDIT_PENDING = 0, /* not yet written */
    BC_AUDIT_DURABLE,     /* committed */
    BC_AUDIT_FAILED,      /* its batch could not be written: withhold the data */
} bc_audit_state_t;

/* Called on the writer's thread each time a batch settles (committed or
 * failed): typically writes an eventfd the reply thread polls. */
typedef void (*bc_audit_settled_fn)(void *arg);

/* Connects with conninfo, opens a chain for service (worker number `index`
 * in the chain id) and starts the writer thread. NULL with err when the
 * database or the chain cannot be reached. */
bc_audit_writer_t *bc_audit_writer_new(const char *conninfo, const char *service, int index,
                                       bc_audit_settled_fn settled, void *arg, bc_error_t *err);
/* Writes what is queued, anchors the chain, stops the thread and frees
 * everything; *self is set to NULL. NULL allowed. */
void bc_audit_writer_destroy(bc_audit_writer_t **self);
/* Queues a copy of ev (strings copied; at_us taken now when 0). Returns its
 * ticket (> 0), or 0 with err when ev is invalid or the writer is stopping.
 * Thread-safe. */
uint64_t bc_audit_writer_submit(bc_audit_writer_t *self, const bc_audit_event_t *ev,
                                bc_error_t *err);
/* The state of ticket. Thread-safe. */
bc_audit_state_t bc_audit_writer_state(bc_audit_writer_t *self, uint64_t ticket);
/* Waits until ticket settles or timeout_ms passes (then PENDING). */
bc_audit_state_t bc_audit_writer_wait(bc_audit_writer_t *self, uint64_t ticket, int timeout_ms);
/* Under load (its last batch held 8 events or more) the writer waits up
 * to delay_us for more events before writing, so that one commit serves
 * more reads (PostgreSQL's commit_delay, applied where the batches form).
 * 0 (the default) writes at once. */
void bc_audit_writer_set_commit_delay(bc_audit_writer_t *self, int64_t delay_us);
/* The chain id, for tests and logs. */
const char *bc_audit_writer_chain(const bc_audit_writer_t *self);

#endif
