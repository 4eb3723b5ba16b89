/*  rewrap: background re-encryption of note text after a key rotation.
 *
 *  Rotation (common/bc_crypt.h): a new key is added to the field key file
 *  and made active, and the services restart; new text is sealed under the
 *  new key at once, old envelopes still open because every envelope names
 *  its key. This thread then walks note bodies, addenda and review comments
 *  every rewrap_scan_seconds, on its own connection, in batches of S_BATCH
 *  rows each in its own transaction (rows locked, those in use by a request
 *  skipped and taken on the next pass), and seals each value under the
 *  active key (the associated data names the new key id). One instance
 *  works at a time (a transaction advisory lock). Once a pass finds nothing
 *  under an old key, the old key line may leave the key file; the service
 *  logs how many values it re-sealed and how many remain.
 *
 *  A value that does not open (tampered) is left as it is and counted: it is
 *  reported as damaged when read, and re-sealing must not launder it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_crypt.h"
#include "bc_log.h"
#include "bc_mem.h"
#include "bc_ticker.h"
#include "notes.h"

#define S_BATCH 200

struct notes_rewrap {
    bc_ticker_t *ticker;
    bc_db_t *db; /* the ticker's, during a pass */
    const bc_keyring_t *keys;
};

typedef struct {
    const char *what; /* the associated data's column name */
    const char *select_name, *select_sql, *update_name, *update_sql;
} s_column_t;

#define S_SELECT(cols, from, col, id)                                                              \
    "SELECT " cols " FROM " from " WHERE " col " LIKE 'v1:%' AND NOT starts_with(" col ", $1) "    \
    "AND " id " > $2::uuid ORDER BY " id " LIMIT 200 FOR UPDATE OF x SKIP LOCKED"

static const s_column_t s_columns[] = {
    {"body", "notes_rewrap_notes",
     S_SELECT("x.id::text, x.client_id::text, x.body_enc", "notes.notes x", "x.body_enc", "x.id"),
     "notes_rewrap_notes_set", "UPDATE notes.notes SET body_enc = $2 WHERE id = $1"},
    {"addendum", "notes_rewrap_addenda",
     S_SELECT("x.id::text, x.client_id::text, x.body_enc", "notes.addenda x", "x.body_enc",
              "x.id"),
     "notes_rewrap_addenda_set", "UPDATE notes.addenda SET body_enc = $2 WHERE id = $1"},
    {"comments", "notes_rewrap_reviews",
     S_SELECT("x.id::text, n.client_id::text, x.comments_enc",
              "notes.reviews x JOIN notes.notes n ON n.id = x.note_id", "x.comments_enc", "x.id"),
     "notes_rewrap_reviews_set", "UPDATE notes.reviews SET comments_enc = $2 WHERE id = $1"},
};

/* One batch of column c after id *after: re-sealed rows added to *done,
 * ones that do not open to *damaged. Returns the rows seen (0: the column
 * is finished), or -1 with err. */
static int s_batch(notes_rewrap_t *self, const s_column_t *c, char after[40], int *done,
                   int *damaged, bc_error_t *err)
{
    bc_db_t *db = self->db;
    int mine = bc_ticker_begin(db, "notes.rewrap", "note_rewrap", err);
    if (mine <= 0)
        return mine; /* 0: another instance is at it */
    char prefix[BC_KEY_ID_MAX + 8];
    snprintf(prefix, sizeof prefix, "v1:%s:", bc_keyring_active_id(self->keys));
    const char *params[] = {prefix, after};
    PGresult *res = bc_db_prepared(db, c->select_name, c->select_sql, 2, params, err);
    if (!res) {
        bc_db_rollback(db);
        return -1;
    }
    int rows = PQntuples(res);
    for (int i = 0; i < rows; i++) {
        const char *id = PQgetvalue(res, i, 0);
        char *sealed = NULL;
        bc_error_t e;
        snprintf(after, 40, "%s", id);
        if (notes_rewrap_value(self->keys, c->what, id, PQgetvalue(res, i, 1),
                               PQgetvalue(res, i, 2), &sealed, &e) < 0) {
            (*damaged)++;
            continue;
        }
        const char *up[] = {id, sealed};
        PGresult *u = bc_db_prepared(db, c->update_name, c->update_sql, 2, up, err);
        free(sealed);
        if (!u) {
            PQclear(res);
            bc_db_rollback(db);
            return -1;
        }
        PQclear(u);
        (*done)++;
    }
    PQclear(res);
    if (bc_db_commit(db, err) < 0)
        return -1;
    return rows;
}

static void s_pass(notes_rewrap_t *self)
{
    int done = 0, damaged = 0;
    size_t ncolumns = sizeof s_columns / sizeof *s_columns;
    for (size_t k = 0; k < ncolumns && !bc_ticker_stopping(self->ticker); k++) {
        char after[40] = "00000000-0000-0000-0000-000000000000";
        int rows = 0;
        bc_error_t err;
        while (!bc_ticker_stopping(self->ticker) &&
               (rows = s_batch(self, &s_columns[k], after, &done, &damaged, &err)) == S_BATCH)
            ;
        if (rows < 0) {
            bc_log(BC_LOG_WARN, "rewrap: %s: %s (%s)", s_columns[k].what, err.message, err.detail);
            return;
        }
    }
    if (done || damaged)
        bc_log(BC_LOG_INFO, "rewrap: %d value(s) sealed again under key %s, %d damaged left as "
                            "they are",
               done, bc_keyring_active_id(self->keys), damaged);
}

static void s_tick(bc_ticker_t *ticker, bc_db_t *db, void *arg)
{
    notes_rewrap_t *self = arg;
    self->ticker = ticker;
    self->db = db;
    s_pass(self);
}

notes_rewrap_t *notes_rewrap_start(const bc_config_t *config, const bc_keyring_t *keys,
                                   bc_error_t *err)
{
    notes_rewrap_t *self = bc_calloc(1, sizeof *self);
    self->keys = keys;
    self->ticker = bc_ticker_start(bc_config_str(config, "database_url"), "notes-rewrap",
                                   bc_config_int(config, "rewrap_scan_seconds") * 1000, s_tick,
                                   self, err);
    if (!self->ticker) {
        free(self);
        return NULL;
    }
    return self;
}

void notes_rewrap_stop(notes_rewrap_t *self)
{
    if (!self)
        return;
    bc_ticker_stop(&self->ticker);
    free(self);
}
