/*  upkeep: statistics for the directory and vacuuming the distance search's
 *  table after imports, in the background.
 *
 *  Each round first analyses the directory tables whose statistics are
 *  missing or stale (referral.analyze_directory, migration 008), so that
 *  searches over a directory an import grew are planned with them; this
 *  was on the import's path (about 5% of a 100,000-service import) and now
 *  runs beside the next import.
 *
 *  Right after an import commits, the search rows it wrote are not yet
 *  marked visible to everyone (only VACUUM sets the visibility map), so the
 *  index-only scans of the distance search visit the table for each of
 *  them: after an import of 100,000 services, ~4,000 visits per search
 *  (EXPLAIN: 40 to 90 ms a search, 8 to 15 once vacuumed, and the first
 *  search a second while it sets hint bits), until autovacuum comes a minute
 *  or more later. An import therefore nudges this thread when it commits;
 *  the thread vacuums the table when more than 5% of its pages (and 8) were
 *  written since it was last vacuumed. Nudges that come while it works are
 *  folded into one more round, so a series of imports costs a few VACUUMs of
 *  the new pages only (VACUUM skips the pages already all-visible), none of
 *  them on the import's own path.
 *
 *  VACUUM needs the table's owner and runs outside any transaction: the
 *  thread has its own connection as migration_database_url, which it uses
 *  for nothing else (three fixed statements, no input); without that setting,
 *  database_url, as for migrations (a VACUUM by a role that does not own the
 *  table is skipped with a warning, and autovacuum does the work later). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bc_db.h"
#include "bc_log.h"
#include "bc_mem.h"
#include "referral.h"

struct upkeep {
    char *owner_url;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool nudged, stopping;
};

static const char s_unvisible_sql[] =
    "SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint - c.relallvisible "
    "       > greatest(8, pg_relation_size(c.oid) / current_setting('block_size')::bigint / 20) "
    "FROM pg_class c WHERE c.oid = 'referral.service_search'::regclass";

static void s_round(bc_db_t *db)
{
    bc_error_t err;
    if (bc_db_command(db, "SELECT referral.analyze_directory()", 0, NULL, &err) < 0)
        bc_warn("upkeep: directory statistics not refreshed: %s", err.detail);
    PGresult *res = bc_db_query(db, s_unvisible_sql, 0, NULL, &err);
    if (!res) {
        bc_warn("upkeep: search table not checked: %s", err.detail);
        return;
    }
    bool needed = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    if (needed && bc_db_command(db, "VACUUM referral.service_search", 0, NULL, &err) < 0)
        bc_warn("upkeep: search table not vacuumed: %s", err.detail);
}

static void *s_main(void *arg)
{
    upkeep_t *self = arg;
    bc_db_t *db = bc_db_new(self->owner_url, "beacon-referral-upkeep");
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (!self->nudged && !self->stopping)
            pthread_cond_wait(&self->wake, &self->lock);
        if (self->stopping)
            break;
        self->nudged = false;
        pthread_mutex_unlock(&self->lock);
        s_round(db); /* connects (again) on first use or after a loss */
        pthread_mutex_lock(&self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    bc_db_destroy(&db);
    return NULL;
}

upkeep_t *upkeep_new(const char *owner_url)
{
    if (!owner_url || !*owner_url)
        return NULL;
    upkeep_t *self = bc_calloc(1, sizeof *self);
    self->owner_url = bc_strdup(owner_url);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    if (pthread_create(&self->thread, NULL, s_main, self) != 0) {
        bc_warn("upkeep: no thread; autovacuum keeps the search table");
        pthread_cond_destroy(&self->wake);
        pthread_mutex_destroy(&self->lock);
        free(self->owner_url);
        free(self);
        return NULL;
    }
    return self;
}

void upkeep_nudge(upkeep_t *self)
{
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->nudged = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
}

void upkeep_destroy(upkeep_t **self_p)
{
    upkeep_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self->owner_url);
    free(self);
    *self_p = NULL;
}
