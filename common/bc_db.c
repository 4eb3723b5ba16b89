/*  bc_db: one PostgreSQL connection through libpq, owned by one thread.
 *
 *  Every call first makes sure the connection is usable (s_ready): a handle
 *  that was never connected, or whose connection libpq found broken, is
 *  reconnected with a short bounded back-off; an idle connection is probed
 *  without a round trip (poll + PQconsumeInput) so a backend the server
 *  already closed is noticed before anything is sent. Inside a transaction a
 *  lost connection is never replaced behind the caller's back: the
 *  transaction is marked lost, every call fails with BC_UNAVAILABLE, commit
 *  fails, and rollback resets the handle.
 *
 *  Statements go through PQexecParams / PQexecPrepared only; bc_db_script
 *  (trusted migration files) uses PQsendQuery so one call can run several
 *  statements. Every PGresult is cleared on every path.
 *
 *  Fewer round trips inside a transaction. bc_db_begin sends nothing: BEGIN
 *  waits for the transaction's first statement. Statements whose rows are
 *  not needed may be deferred (bc_db_defer): they wait for the next
 *  statement or the COMMIT. Whatever waits goes out with that statement in
 *  one libpq pipeline (BEGIN, deferred statements in order, the statement,
 *  one Sync), so a transaction of "begin, read, insert, insert, commit"
 *  costs two round trips instead of five. The first statement of the
 *  pipeline that fails is the error the caller sees; the server skips the
 *  rest, and the transaction is then failed as it would be without the
 *  pipeline.
 */
#include "bc_db.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_log.h"
#include "bc_mem.h"
#include "bc_util.h"

#define S_BACKOFF_FIRST_MS 100
#define S_BACKOFF_CAP_MS 2000
/* Total back-off when a later call finds the connection broken. */
#define S_RECONNECT_BUDGET_MS 2000

/* A statement waiting for the next round trip. Its parameters are copies. */
typedef struct {
    const char *name; /* prepared statement name and sql: literals */
    const char *sql;
    int nparams;
    char **values;
    int *lengths;
    int *formats;
} s_deferred_t;

struct bc_db {
    char *conninfo;
    char *application_name;
    PGconn *conn;
    unsigned long connections; /* successful connects so far */
    bool in_tx;                /* BEGIN issued through bc_db_begin */
    bool tx_lost;              /* the connection dropped inside that transaction */
    bool server_closing;       /* the server sent FATAL outside a query */
    bc_db_connect_hook hook;   /* run after every successful connect */
    void *hook_arg;
    char **prepared;           /* statement names prepared on this connection */
    size_t nprepared;
    size_t prepared_cap;
    bool begin_pending;        /* in_tx, but BEGIN not sent yet */
    s_deferred_t *deferred;    /* bc_db_defer statements not sent yet, in order */
    size_t ndeferred;
    size_t deferred_cap;
    bool events;               /* the open transaction wrote outbox events */
};

/* Run after a transaction that wrote events commits (bc_relay's wake). */
static void (*_Atomic s_events_hook)(void);

void bc_db_on_events_committed(void (*hook)(void))
{
    s_events_hook = hook;
}

void bc_db_note_events(bc_db_t *self)
{
    self->events = true;
}

bc_db_t *bc_db_new(const char *conninfo, const char *application_name)
{
    bc_db_t *self = bc_calloc(1, sizeof *self);
    self->conninfo = bc_strdup(conninfo ? conninfo : "");
    self->application_name = bc_strdup(application_name ? application_name : "beacon");
    return self;
}

static void s_forget_prepared(bc_db_t *self)
{
    for (size_t i = 0; i < self->nprepared; i++)
        free(self->prepared[i]);
    self->nprepared = 0;
}

static void s_deferred_clear(bc_db_t *self)
{
    for (size_t i = 0; i < self->ndeferred; i++) {
        s_deferred_t *d = &self->deferred[i];
        for (int k = 0; k < d->nparams; k++)
            free(d->values[k]);
        free(d->values);
        free(d->lengths);
        free(d->formats);
    }
    self->ndeferred = 0;
}

static void s_close(bc_db_t *self)
{
    if (self->conn)
        PQfinish(self->conn);
    self->conn = NULL;
    self->server_closing = false;
    s_forget_prepared(self);
}

void bc_db_destroy(bc_db_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bc_db_t *self = *self_p;
    s_close(self);
    s_deferred_clear(self);
    free(self->deferred);
    free(self->prepared);
    free(self->conninfo);
    free(self->application_name);
    free(self);
    *self_p = NULL;
}

/* Server messages that arrive outside a query: notices and warnings (e.g.
 * "schema already exists, skipping") go to the debug log instead of libpq's
 * default of printing to stderr. A FATAL one means the server is closing
 * this session (pg_terminate_backend, shutdown): the connection is treated
 * as gone before anything else is sent on it. */
static void s_notice(void *arg, const PGresult *res)
{
    bc_db_t *self = arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (severity && (!strcmp(severity, "FATAL") || !strcmp(severity, "PANIC")))
        self->server_closing = true;
    const char *message = PQresultErrorMessage(res);
    size_t len = strlen(message);
    while (len && message[len - 1] == '\n')
        len--;
    bc_debug("postgres: %.*s", (int)len, message);
}

/* libpq's error text on one line (it may hold several, newline-ended). */
static void s_conn_detail(PGconn *conn, bc_error_t *err)
{
    const char *text = conn ? PQerrorMessage(conn) : "out of memory";
    char line[400];
    size_t len = 0;
    for (const char *c = text; *c && len < sizeof line - 1; c++) {
        bool space = *c == '\n' || *c == '\t' || *c == ' ';
        if (!space)
            line[len++] = *c;
        else if (len && line[len - 1] != ' ')
            line[len++] = ' ';
    }
    while (len && line[len - 1] == ' ')
        len--;
    line[len] = '\0';
    bc_error_detail(err, "%s", line);
}

static void s_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1)
        ;
}

/* One connection attempt. Keyword order matters: values listed after dbname
 * override what the conninfo string says, values before it are defaults. */
static int s_connect_once(bc_db_t *self, int64_t remaining_ms, bc_error_t *err)
{
    s_close(self);
    int64_t secs = (remaining_ms + 999) / 1000;
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", (int)(secs < 2 ? 2 : secs > 10 ? 10 : secs));
    const char *keys[] = {"connect_timeout", "dbname", "application_name", "client_encoding", NULL};
    const char *values[] = {timeout, self->conninfo, self->application_name, "UTF8", NULL};
    self->conn = PQconnectdbParams(keys, values, 1);
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK) {
        PQsetNoticeReceiver(self->conn, s_notice, self);
        self->connections++;
        if (!self->hook || self->hook(self->conn, self->hook_arg) == 0)
            return 0;
        bc_error_set(err, BC_UNAVAILABLE, NULL, "database unavailable");
        bc_error_detail(err, "session set-up after connect failed");
        s_close(self);
        return -1;
    }
    bc_error_set(err, BC_UNAVAILABLE, NULL, "database unavailable");
    s_conn_detail(self->conn, err);
    s_close(self);
    return -1;
}

/* Connects with exponential back-off until it works or budget_ms is spent. */
static int s_connect_backoff(bc_db_t *self, int budget_ms, bc_error_t *err)
{
    int64_t deadline = bc_mono_ms() + (budget_ms > 0 ? budget_ms : 0);
    int64_t delay = S_BACKOFF_FIRST_MS;
    for (;;) {
        if (s_connect_once(self, deadline - bc_mono_ms(), err) == 0)
            return 0;
        int64_t remaining = deadline - bc_mono_ms();
        if (remaining <= 0)
            return -1;
        s_sleep_ms(delay < remaining ? delay : remaining);
        delay = delay * 2 > S_BACKOFF_CAP_MS ? S_BACKOFF_CAP_MS : delay * 2;
    }
}

int bc_db_connect(bc_db_t *self, int timeout_ms, bc_error_t *err)
{
    if (bc_db_ok(self))
        return 0;
    if (self->in_tx)
        self->tx_lost = true;
    return s_connect_backoff(self, timeout_ms, err);
}

void bc_db_on_connect(bc_db_t *self, bc_db_connect_hook hook, void *arg)
{
    self->hook = hook;
    self->hook_arg = arg;
}

bool bc_db_ok(const bc_db_t *self)
{
    return self && self->conn && PQstatus(self->conn) == CONNECTION_OK && !self->server_closing;
}

unsigned long bc_db_connections(const bc_db_t *self)
{
    return self->connections;
}

PGconn *bc_db_conn(bc_db_t *self)
{
    return self->conn;
}

bool bc_db_in_transaction(const bc_db_t *self)
{
    return self->in_tx;
}

/* Reads whatever the server sent while we were idle, without blocking. A
 * backend that was terminated has sent its FATAL message and closed the
 * socket; reading that marks the connection bad before we send anything. */
static void s_probe(bc_db_t *self)
{
    for (int i = 0; i < 4 && bc_db_ok(self); i++) {
        struct pollfd pfd = {.fd = PQsocket(self->conn), .events = POLLIN};
        if (pfd.fd < 0 || poll(&pfd, 1, 0) <= 0)
            return;
        if (!PQconsumeInput(self->conn))
            return;
        (void)PQisBusy(self->conn); /* parses what was read: runs s_notice */
    }
}

/* Makes the connection usable for the next statement, or explains why not. */
static int s_ready(bc_db_t *self, bc_error_t *err)
{
    s_probe(self);
    if (self->in_tx) {
        if (!bc_db_ok(self))
            self->tx_lost = true;
        if (self->tx_lost) {
            bc_error_set(err, BC_UNAVAILABLE, NULL, "database connection lost");
            bc_error_detail(err, "connection lost inside a transaction; roll back and retry");
            return -1;
        }
        return 0;
    }
    if (bc_db_ok(self))
        return 0;
    if (self->conn)
        bc_warn("database connection lost; reconnecting");
    return s_connect_backoff(self, S_RECONNECT_BUDGET_MS, err);
}

/* A safe message for each code: never SQL text, never values. */
static const char *s_public_message(bc_code_t code)
{
    switch (code) {
    case BC_ALREADY_EXISTS:
        return "a record with the same key already exists";
    case BC_INVALID_ARGUMENT:
        return "a value is not valid";
    case BC_FAILED_PRECONDITION:
        return "the change conflicts with related records";
    case BC_CONFLICT:
        return "the change conflicted with a concurrent one; retry";
    case BC_PERMISSION_DENIED:
        return "not permitted";
    case BC_DEADLINE_EXCEEDED:
        return "the database did not answer in time";
    case BC_RESOURCE_EXHAUSTED:
        return "the database is overloaded";
    case BC_UNAVAILABLE:
        return "database unavailable";
    default:
        return "database error";
    }
}

/* Leaves COPY mode if a statement started it; such statements are not
 * supported here and would otherwise wedge the connection. */
static void s_abandon_copy(PGconn *conn, ExecStatusType status)
{
    if (status == PGRES_COPY_IN) {
        PQputCopyEnd(conn, "COPY FROM STDIN is not supported by bc_db");
    } else if (status == PGRES_COPY_OUT) {
        char *buf;
        while (PQgetCopyData(conn, &buf, 0) > 0)
            PQfreemem(buf);
    }
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL)
        PQclear(res);
}

/* Turns a finished statement into a result or an error. Takes res (may be
 * NULL); returns it when it succeeded, else clears it and fills err. */
static PGresult *s_check(bc_db_t *self, PGresult *res, bc_error_t *err)
{
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        return res;
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT)
        s_abandon_copy(self->conn, status);
    if (!bc_db_ok(self)) {
        if (self->in_tx)
            self->tx_lost = true;
        bc_error_set(err, BC_UNAVAILABLE, NULL, "%s", s_public_message(BC_UNAVAILABLE));
        s_conn_detail(self->conn, err);
    } else if (status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR) {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        bc_code_t code = bc_code_from_sqlstate(state);
        bc_error_set(err, code, NULL, "%s", s_public_message(code));
        if (primary)
            bc_error_detail(err, "SQLSTATE %s: %s", state ? state : "?????", primary);
        else
            s_conn_detail(self->conn, err);
    } else {
        bc_error_set(err, BC_INTERNAL, NULL, "%s", s_public_message(BC_INTERNAL));
        bc_error_detail(err, "unexpected result status %s", PQresStatus(status));
    }
    PQclear(res);
    return NULL;
}

static bool s_is_prepared(const bc_db_t *self, const char *name)
{
    for (size_t i = 0; i < self->nprepared; i++)
        if (!strcmp(self->prepared[i], name))
            return true;
    return false;
}

static void s_remember_prepared(bc_db_t *self, const char *name)
{
    if (self->nprepared == self->prepared_cap) {
        self->prepared_cap = self->prepared_cap ? self->prepared_cap * 2 : 16;
        self->prepared = bc_realloc(self->prepared, self->prepared_cap * sizeof *self->prepared);
    }
    self->prepared[self->nprepared++] = bc_strdup(name);
}

/* One statement: prepared under name, or unnamed when name is NULL. */
typedef struct {
    const char *name;
    const char *sql;
    int nparams;
    const char *const *values;
    const int *lengths;
    const int *formats;
} s_stmt_t;

/* What each result of a pipeline answers, in the order sent. */
typedef enum { S_BEGIN, S_PREPARE, S_DEFERRED, S_MAIN } s_kind_t;
typedef struct {
    s_kind_t kind;
    const char *name; /* S_PREPARE: the statement name */
} s_expect_t;

static bool s_prepare_sent(const s_expect_t *ex, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (ex[i].kind == S_PREPARE && !strcmp(ex[i].name, name))
            return true;
    return false;
}

/* Queues st (with its Prepare the first time) on the pipeline. */
static bool s_send(bc_db_t *self, const s_stmt_t *st, s_kind_t kind, s_expect_t *ex, size_t *n)
{
    PGconn *c = self->conn;
    if (!st->name) {
        ex[(*n)++] = (s_expect_t){kind, NULL};
        return PQsendQueryParams(c, st->sql, st->nparams, NULL, st->values, st->lengths,
                                 st->formats, 0);
    }
    if (!s_is_prepared(self, st->name) && !s_prepare_sent(ex, *n, st->name)) {
        ex[(*n)++] = (s_expect_t){S_PREPARE, st->name};
        if (!PQsendPrepare(c, st->name, st->sql, st->nparams, NULL))
            return false;
    }
    ex[(*n)++] = (s_expect_t){kind, NULL};
    return PQsendQueryPrepared(c, st->name, st->nparams, st->values, st->lengths, st->formats, 0);
}

/* The connection is in an unknown state (a send failed, or the results
 * stopped before the Sync): drop it. Inside a transaction that loses the
 * transaction, as any lost connection does. */
static void s_abandon(bc_db_t *self, bc_error_t *err)
{
    bc_error_set(err, BC_UNAVAILABLE, NULL, "%s", s_public_message(BC_UNAVAILABLE));
    s_conn_detail(self->conn, err);
    if (self->in_tx)
        self->tx_lost = true;
    s_close(self);
}

/* Sends the pending BEGIN, the deferred statements and then main (NULL: none)
 * as one pipeline, and reads every result. Returns 0 with main's result in
 * *out (when main), or -1 with err set from the first statement that
 * failed. */
static int s_pipeline(bc_db_t *self, const s_stmt_t *main, PGresult **out, bc_error_t *err)
{
    PGconn *c = self->conn;
    size_t cap = 2 + 2 * (self->ndeferred + 1), n = 0;
    s_expect_t *ex = bc_calloc(cap, sizeof *ex);
    bool sent = PQenterPipelineMode(c);
    if (sent && self->begin_pending) {
        ex[n++] = (s_expect_t){S_BEGIN, NULL};
        sent = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    }
    for (size_t i = 0; sent && i < self->ndeferred; i++) {
        const s_deferred_t *d = &self->deferred[i];
        s_stmt_t st = {d->name, d->sql, d->nparams, (const char *const *)d->values,
                       d->lengths, d->formats};
        sent = s_send(self, &st, S_DEFERRED, ex, &n);
    }
    if (sent && main)
        sent = s_send(self, main, S_MAIN, ex, &n);
    self->begin_pending = false; /* libpq holds copies of everything sent */
    s_deferred_clear(self);
    if (!sent || !PQpipelineSync(c)) {
        free(ex);
        s_abandon(self, err);
        return -1;
    }
    /* Each statement's result is followed by a NULL; after a failure the
     * rest come back PGRES_PIPELINE_ABORTED; the Sync's result ends it. */
    PGresult *failed = NULL, *result = NULL, *res;
    size_t k = 0;
    bool synced = false;
    int nulls = 0;
    while (!synced && nulls < 2) {
        if (!(res = PQgetResult(c))) {
            nulls++;
            continue;
        }
        nulls = 0;
        ExecStatusType status = PQresultStatus(res);
        if (status == PGRES_PIPELINE_SYNC) {
            synced = true;
        } else if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            if (status != PGRES_PIPELINE_ABORTED && !failed) {
                failed = res;
                res = NULL;
            }
        } else if (k < n && ex[k].kind == S_PREPARE) {
            s_remember_prepared(self, ex[k].name);
        } else if (k < n && ex[k].kind == S_MAIN) {
            result = res;
            res = NULL;
        }
        k++;
        PQclear(res);
    }
    free(ex);
    if (!synced || !PQexitPipelineMode(c)) {
        PQclear(failed);
        PQclear(result);
        s_abandon(self, err);
        return -1;
    }
    if (failed) {
        PQclear(result);
        s_check(self, failed, err); /* clears failed: never a success */
        return -1;
    }
    if (main && !result) {
        bc_error_set(err, BC_INTERNAL, NULL, "%s", s_public_message(BC_INTERNAL));
        bc_error_detail(err, "pipeline ended without the statement's result");
        return -1;
    }
    if (out)
        *out = result;
    else
        PQclear(result);
    return 0;
}

static PGresult *s_run(bc_db_t *self, const s_stmt_t *st, bc_error_t *err)
{
    if (s_ready(self, err))
        return NULL;
    if (self->begin_pending || self->ndeferred) {
        PGresult *res = NULL;
        return s_pipeline(self, st, &res, err) ? NULL : res;
    }
    if (!st->name)
        return s_check(self,
                       PQexecParams(self->conn, st->sql, st->nparams, NULL, st->values,
                                    st->lengths, st->formats, 0),
                       err);
    if (!s_is_prepared(self, st->name)) {
        /* Protocol-level PREPARE is not transactional: it survives a rollback. */
        PGresult *res =
            s_check(self, PQprepare(self->conn, st->name, st->sql, st->nparams, NULL), err);
        if (!res)
            return NULL;
        PQclear(res);
        s_remember_prepared(self, st->name);
    }
    return s_check(self,
                   PQexecPrepared(self->conn, st->name, st->nparams, st->values, st->lengths,
                                  st->formats, 0),
                   err);
}

PGresult *bc_db_query(bc_db_t *self, const char *sql, int nparams, const char *const *params,
                      bc_error_t *err)
{
    s_stmt_t st = {NULL, sql, nparams, params, NULL, NULL};
    return s_run(self, &st, err);
}

PGresult *bc_db_prepared(bc_db_t *self, const char *name, const char *sql, int nparams,
                         const char *const *params, bc_error_t *err)
{
    return bc_db_prepared_binary(self, name, sql, nparams, params, NULL, NULL, err);
}

PGresult *bc_db_prepared_binary(bc_db_t *self, const char *name, const char *sql, int nparams,
                                const char *const *params, const int *lengths,
                                const int *formats, bc_error_t *err)
{
    s_stmt_t st = {name, sql, nparams, params, lengths, formats};
    return s_run(self, &st, err);
}

int bc_db_defer(bc_db_t *self, const char *name, const char *sql, int nparams,
                const char *const *params, const int *lengths, const int *formats,
                bc_error_t *err)
{
    if (!self->in_tx) {
        bc_error_set(err, BC_INTERNAL, NULL, "database error");
        bc_error_detail(err, "bc_db_defer(%s) outside a transaction", name);
        return -1;
    }
    if (self->ndeferred == self->deferred_cap) {
        self->deferred_cap = self->deferred_cap ? self->deferred_cap * 2 : 8;
        self->deferred = bc_realloc(self->deferred, self->deferred_cap * sizeof *self->deferred);
    }
    s_deferred_t *d = &self->deferred[self->ndeferred++];
    *d = (s_deferred_t){.name = name, .sql = sql, .nparams = nparams};
    d->values = bc_calloc((size_t)(nparams > 0 ? nparams : 1), sizeof *d->values);
    if (lengths && formats) {
        d->lengths = bc_calloc((size_t)nparams, sizeof *d->lengths);
        d->formats = bc_calloc((size_t)nparams, sizeof *d->formats);
        memcpy(d->lengths, lengths, (size_t)nparams * sizeof *lengths);
        memcpy(d->formats, formats, (size_t)nparams * sizeof *formats);
    }
    for (int k = 0; k < nparams; k++) {
        if (!params[k])
            continue;
        if (d->formats && d->formats[k] == 1) {
            d->values[k] = bc_malloc((size_t)d->lengths[k] + 1);
            memcpy(d->values[k], params[k], (size_t)d->lengths[k]);
        } else {
            d->values[k] = bc_strdup(params[k]);
        }
    }
    return 0;
}

int bc_db_command(bc_db_t *self, const char *sql, int nparams, const char *const *params,
                  bc_error_t *err)
{
    PGresult *res = bc_db_query(self, sql, nparams, params, err);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int bc_db_ping(bc_db_t *self, bc_error_t *err)
{
    return bc_db_command(self, "SELECT 1", 0, NULL, err);
}

int bc_db_begin(bc_db_t *self, bc_error_t *err)
{
    if (self->in_tx) {
        bc_error_set(err, BC_INTERNAL, NULL, "database error");
        bc_error_detail(err, "bc_db_begin: a transaction is already open");
        return -1;
    }
    if (s_ready(self, err))
        return -1;
    self->in_tx = self->begin_pending = true; /* sent with the first statement */
    self->tx_lost = false;
    return 0;
}

/* Ends the transaction either way: after commit returns, success or not, the
 * handle is outside any transaction (rollback is then a harmless no-op). */
int bc_db_commit(bc_db_t *self, bc_error_t *err)
{
    if (!self->in_tx) {
        bc_error_set(err, BC_INTERNAL, NULL, "database error");
        bc_error_detail(err, "bc_db_commit: no transaction is open");
        return -1;
    }
    if (self->begin_pending && !self->ndeferred) {
        self->in_tx = self->begin_pending = self->tx_lost = self->events = false; /* nothing sent */
        return 0;
    }
    if (self->tx_lost || !bc_db_ok(self)) {
        self->in_tx = self->tx_lost = self->events = false;
        bc_error_set(err, BC_UNAVAILABLE, NULL, "%s", s_public_message(BC_UNAVAILABLE));
        bc_error_detail(err, "connection lost inside the transaction; nothing was committed");
        return -1;
    }
    if (PQtransactionStatus(self->conn) == PQTRANS_INERROR) {
        /* COMMIT of a failed transaction "succeeds" as ROLLBACK: say so. */
        bc_db_rollback(self);
        bc_error_set(err, BC_FAILED_PRECONDITION, NULL, "the change could not be completed");
        bc_error_detail(err, "commit of a transaction in which a statement failed; rolled back");
        return -1;
    }
    const s_stmt_t commit = {NULL, "COMMIT", 0, NULL, NULL, NULL};
    PGresult *res = s_run(self, &commit, err);
    bool lost = !bc_db_ok(self);
    if (!res && !lost && PQtransactionStatus(self->conn) != PQTRANS_IDLE)
        bc_db_rollback(self); /* a deferred statement failed: the server skipped COMMIT */
    self->in_tx = self->tx_lost = false;
    bool events = self->events;
    self->events = false;
    if (!res) {
        if (lost)
            bc_error_detail(err, "connection lost during COMMIT: outcome unknown");
        return -1;
    }
    bool committed = !strcmp(PQcmdStatus(res), "COMMIT");
    PQclear(res);
    if (!committed) {
        bc_error_set(err, BC_FAILED_PRECONDITION, NULL, "the change could not be completed");
        bc_error_detail(err, "COMMIT ended in rollback");
        return -1;
    }
    void (*hook)(void) = s_events_hook;
    if (events && hook)
        hook();
    return 0;
}

void bc_db_rollback(bc_db_t *self)
{
    if (!self->in_tx)
        return;
    self->events = false;
    s_deferred_clear(self);
    if (self->begin_pending) {
        self->in_tx = self->begin_pending = self->tx_lost = false; /* nothing was sent */
        return;
    }
    if (!self->tx_lost && bc_db_ok(self))
        PQclear(PQexecParams(self->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0));
    self->in_tx = self->tx_lost = false;
}

int bc_db_set_local(bc_db_t *self, const char *name, const char *value, bc_error_t *err)
{
    if (!self->in_tx) {
        /* Outside a transaction the setting would vanish at once: refuse,
         * since callers rely on it (row-level security scope). */
        bc_error_set(err, BC_INTERNAL, NULL, "database error");
        bc_error_detail(err, "bc_db_set_local(%s) outside a transaction", name);
        return -1;
    }
    const char *params[] = {name, value};
    return bc_db_command(self, "SELECT set_config($1, $2, true)", 2, params, err);
}

int bc_db_script(bc_db_t *self, const char *sql, bc_error_t *err)
{
    if (s_ready(self, err))
        return -1;
    if ((self->begin_pending || self->ndeferred) && s_pipeline(self, NULL, NULL, err))
        return -1;
    if (!PQsendQuery(self->conn, sql)) {
        s_check(self, NULL, err);
        return -1;
    }
    /* The simple protocol returns one result per statement; keep the first
     * failure and drain the rest so the connection is ready again. */
    PGresult *failed = NULL, *res;
    while ((res = PQgetResult(self->conn)) != NULL) {
        ExecStatusType status = PQresultStatus(res);
        if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT) {
            PQclear(res);
            s_abandon_copy(self->conn, status);
            if (!failed)
                failed = PQmakeEmptyPGresult(self->conn, PGRES_FATAL_ERROR);
            break;
        }
        if (!failed && status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK &&
            status != PGRES_EMPTY_QUERY) {
            failed = res;
            continue;
        }
        PQclear(res);
    }
    if (!failed)
        return 0;
    s_check(self, failed, err); /* clears failed: its status is never a success */
    return -1;
}
