/*  bc_relay: publishes a service's outbox (DESIGN.md, transactional outbox).
 *
 *  One thread with its own PostgreSQL connection and a ZeroMQ PUB socket.
 *  It wakes when a transaction of this process that wrote events commits
 *  (bc_db_note_events, which bc_call_emit calls), on NOTIFY beacon_events
 *  (from another instance or a tool), or every 200 ms, and in one
 *  transaction, holding a per-producer advisory
 *  lock so that only one instance of a service relays at a time: takes the
 *  oldest unpublished events of its producer (up to 200), numbers them
 *  after the producer's last published number (1, 2, 3... without gaps, in
 *  the order published), commits, then sends each as two frames: the topic
 *  (subscribers filter on it) and a packed beacon.Event.
 *
 *  Delivery is at least once and may skip on a crash between commit and
 *  send, or when a subscriber is slow (PUB drops): subscribers keep the last
 *  seq they applied and ask ReplayEvents for the rest when they see a gap
 *  or start. Events stay in the table after publication for that.
 */
#ifndef BC_RELAY_H
#define BC_RELAY_H

#include "bc_error.h"
#include "bc_metrics.h"

typedef struct bc_relay bc_relay_t;

/* Binds bind_endpoint in zctx and starts relaying producer's events. NULL
 * with err when the socket cannot be bound. The database may be down: the
 * relay retries every second. With metrics (may be NULL) it records there
 * the events published, their lag (outbox created_at to publication), the
 * backlog of unpublished events (counted about once a second) and its
 * database failures. */
bc_relay_t *bc_relay_start(void *zctx, const char *conninfo, const char *producer,
                           const char *bind_endpoint, bc_metrics_t *metrics, bc_error_t *err);
/* Publishes what is ready, stops the thread, closes everything. NULL ok. */
void bc_relay_stop(bc_relay_t **self);

#endif
