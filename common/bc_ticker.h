/*  bc_ticker: a background job of a service, run every interval on a thread
 *  of its own with a PostgreSQL connection of its own (reminder scans,
 *  re-encryption after a key rotation). The first run is at start; a run
 *  that finds the database down is logged and tried again at the next tick.
 *  Stopping waits for the run in progress: a long run checks
 *  bc_ticker_stopping between steps.
 */
#ifndef BC_TICKER_H
#define BC_TICKER_H

#include <stdbool.h>
#include <stdint.h>

#include "bc_db.h"
#include "bc_error.h"

typedef struct bc_ticker bc_ticker_t;
/* One run, on the ticker's thread, with its connection (connected). */
typedef void (*bc_tick_fn)(bc_ticker_t *ticker, bc_db_t *db, void *arg);

/* Starts the thread; name labels the connection and the log lines. NULL
 * with err set when the thread cannot start. */
bc_ticker_t *bc_ticker_start(const char *conninfo, const char *name, int64_t interval_ms,
                             bc_tick_fn fn, void *arg, bc_error_t *err);
/* True once bc_ticker_stop has been called (for runs to end early). */
bool bc_ticker_stopping(const bc_ticker_t *self);
/* Opens a run's transaction for a job that one instance at a time may do:
 * takes the transaction advisory lock named job (not waiting) and sets
 * beacon.purpose (which the job's row policies admit) for the transaction.
 * 1: go ahead; 0: another instance holds it (rolled back); -1: err set
 * (rolled back). */
int bc_ticker_begin(bc_db_t *db, const char *job, const char *purpose, bc_error_t *err);
/* Stops the thread (after the run in progress) and closes the connection.
 * NULL is fine. */
void bc_ticker_stop(bc_ticker_t **self);

#endif
