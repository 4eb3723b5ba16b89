/*  bc_db: one PostgreSQL connection through libpq, owned by one thread.
 *
 *  Parameterized queries only (PQexecParams / prepared statements, as in
 *  PostgreSQL's testlibpq3.c). A lost connection is re-established with
 *  exponential back-off on the next call; prepared statements are prepared
 *  again on the new connection. A query that fails because the connection
 *  dropped outside a transaction is not retried automatically (the outcome
 *  may be unknown): it fails with BC_UNAVAILABLE and the caller decides.
 *  Errors carry a code mapped from SQLSTATE and the server's message in
 *  err->detail.
 */
#ifndef BC_DB_H
#define BC_DB_H

#include <stdbool.h>
#include <libpq-fe.h>
#include "bc_error.h"

typedef struct bc_db bc_db_t;

/* A handle for conninfo (a URI or key=value string). Does not connect yet.
 * application_name is reported to the server (pg_stat_activity). */
bc_db_t *bc_db_new(const char *conninfo, const char *application_name);
/* Closes the connection; *self is set to NULL. NULL allowed. */
void bc_db_destroy(bc_db_t **self);
/* Connects, retrying with back-off (100 ms doubling to 2 s) for up to
 * timeout_ms. Returns 0 or -1 with err set (BC_UNAVAILABLE). */
int bc_db_connect(bc_db_t *self, int timeout_ms, bc_error_t *err);
/* Runs hook on the raw connection after every successful connect (the
 * first and each reconnect), before anything else is sent; a hook returning
 * -1 makes the connect fail. For per-session settings that must never be
 * missing, such as the caller's scope. One hook per handle. */
typedef int (*bc_db_connect_hook)(PGconn *conn, void *arg);
void bc_db_on_connect(bc_db_t *self, bc_db_connect_hook hook, void *arg);

/* True when the connection is up (does not touch the network). */
bool bc_db_ok(const bc_db_t *self);
/* How many times this handle has connected successfully. It changes when the
 * handle reconnects, so code relying on session state (advisory locks,
 * session settings) can tell that state was lost. */
unsigned long bc_db_connections(const bc_db_t *self);
/* Round trip to the server ("SELECT 1"); reconnects if needed. */
int bc_db_ping(bc_db_t *self, bc_error_t *err);

/* Runs sql with text parameters ($1..$n; NULL entries are SQL NULL).
 * Returns a result with status PGRES_TUPLES_OK or PGRES_COMMAND_OK that the
 * caller must PQclear, or NULL with err set. */
PGresult *bc_db_query(bc_db_t *self, const char *sql, int nparams, const char *const *params,
                      bc_error_t *err);
/* As bc_db_query, through a prepared statement called name (prepared on first
 * use on each connection). name and sql must be string literals or otherwise
 * outlive the handle; the same name must always come with the same sql. */
PGresult *bc_db_prepared(bc_db_t *self, const char *name, const char *sql, int nparams,
                         const char *const *params, bc_error_t *err);
/* As bc_db_prepared with per-parameter lengths and formats (1 = binary,
 * e.g. bytea); NULL arrays mean all text. */
PGresult *bc_db_prepared_binary(bc_db_t *self, const char *name, const char *sql, int nparams,
                                const char *const *params, const int *lengths,
                                const int *formats, bc_error_t *err);
/* Queues a statement whose rows are not needed, inside a transaction, as a
 * copy (name and sql as for bc_db_prepared; lengths and formats as for
 * bc_db_prepared_binary, or NULL). It is sent with the transaction's next
 * statement or its COMMIT, in one round trip; if it fails, that statement or
 * the commit fails with its error, and the transaction is lost as usual.
 * Rollback discards it. Returns 0, or -1 outside a transaction. */
int bc_db_defer(bc_db_t *self, const char *name, const char *sql, int nparams,
                const char *const *params, const int *lengths, const int *formats,
                bc_error_t *err);
/* Runs sql and clears the result; for statements whose rows are not needed. */
int bc_db_command(bc_db_t *self, const char *sql, int nparams, const char *const *params,
                  bc_error_t *err);

/* Transactions. begin fails if one is already open; it sends nothing: BEGIN
 * goes out with the transaction's first statement (a transaction that runs
 * none costs no round trip). rollback is safe to call when none is open. */
int bc_db_begin(bc_db_t *self, bc_error_t *err);
int bc_db_commit(bc_db_t *self, bc_error_t *err);
void bc_db_rollback(bc_db_t *self);
/* Marks the open transaction as one that wrote outbox events: when it
 * commits, the hook set with bc_db_on_events_committed runs (in the
 * committing thread). */
void bc_db_note_events(bc_db_t *self);
/* Sets that hook for the whole process (NULL: none). bc_relay sets it to
 * wake its thread. */
void bc_db_on_events_committed(void (*hook)(void));
bool bc_db_in_transaction(const bc_db_t *self);
/* SET LOCAL for the current transaction through set_config($1, $2, true). */
int bc_db_set_local(bc_db_t *self, const char *name, const char *value, bc_error_t *err);

/* Runs a trusted multi-statement SQL script (migration files only: never
 * anything that came from outside). */
int bc_db_script(bc_db_t *self, const char *sql, bc_error_t *err);

/* The raw connection, for code that needs libpq directly. May be NULL.
 * Inside a transaction, BEGIN and deferred statements may not have been sent
 * yet: run a statement through bc_db first. */
PGconn *bc_db_conn(bc_db_t *self);

#endif
