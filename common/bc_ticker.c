/*  bc_ticker: a periodic background job (see the header). */
#include "bc_ticker.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bc_log.h"
#include "bc_mem.h"

#define S_STEP_MS 100 /* how often a sleeping ticker looks at the stop flag */

struct bc_ticker {
    pthread_t thread;
    volatile sig_atomic_t stop;
    bc_db_t *db;
    char name[64];
    int64_t interval_ms;
    bc_tick_fn fn;
    void *arg;
};

static void *s_run(void *arg)
{
    bc_ticker_t *self = arg;
    int64_t waited = self->interval_ms; /* a run at once on start */
    while (!self->stop) {
        if (waited >= self->interval_ms) {
            waited = 0;
            bc_error_t err;
            if (!bc_db_ok(self->db) && bc_db_connect(self->db, 1000, &err) < 0)
                bc_warn("%s: database unavailable: %s", self->name, err.message);
            else
                self->fn(self, self->db, self->arg);
        }
        struct timespec ts = {0, S_STEP_MS * 1000 * 1000};
        nanosleep(&ts, NULL);
        waited += S_STEP_MS;
    }
    return NULL;
}

bc_ticker_t *bc_ticker_start(const char *conninfo, const char *name, int64_t interval_ms,
                             bc_tick_fn fn, void *arg, bc_error_t *err)
{
    bc_ticker_t *self = bc_calloc(1, sizeof *self);
    snprintf(self->name, sizeof self->name, "%s", name);
    self->interval_ms = interval_ms > 0 ? interval_ms : S_STEP_MS;
    self->fn = fn;
    self->arg = arg;
    char label[96];
    snprintf(label, sizeof label, "beacon-%s", name);
    self->db = bc_db_new(conninfo, label);
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) {
        bc_db_destroy(&self->db);
        free(self);
        bc_error_set(err, BC_INTERNAL, "", "cannot start the %s thread", name);
        return NULL;
    }
    return self;
}

int bc_ticker_begin(bc_db_t *db, const char *job, const char *purpose, bc_error_t *err)
{
    if (bc_db_begin(db, err) < 0)
        return -1;
    const char *params[] = {job, purpose};
    PGresult *res = bc_db_prepared(
        db, "bc_ticker_begin",
        "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)), "
        "set_config('beacon.purpose', $2, true)",
        2, params, err);
    if (!res) {
        bc_db_rollback(db);
        return -1;
    }
    bool mine = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!mine)
        bc_db_rollback(db);
    return mine ? 1 : 0;
}

bool bc_ticker_stopping(const bc_ticker_t *self)
{
    return self->stop != 0;
}

void bc_ticker_stop(bc_ticker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bc_ticker_t *self = *self_p;
    self->stop = 1;
    pthread_join(self->thread, NULL);
    bc_db_destroy(&self->db);
    free(self);
    *self_p = NULL;
}
