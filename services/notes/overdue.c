/*  overdue: note.overdue announced by the clock, not only when a list is
 *  opened.
 *
 *  A thread of the notes service (bc_ticker, every overdue_scan_seconds, on
 *  its own connection) looks for encounters that ended more than
 *  overdue_hours ago, have no signed note (none, or a draft) and were not
 *  announced yet, and for each records the announcement in
 *  notes.overdue_notices and writes note.overdue to the outbox, in one
 *  transaction: once per encounter, whichever of this scan and the overdue
 *  list (review.c) sees it first. One instance scans at a time (a
 *  transaction advisory lock). It acts for no user: under the
 *  note_overdue_scan purpose its row policies admit encounter ids and note
 *  ids and statuses, never text.
 *
 *  The scan reads encounters that ended within S_WINDOW_DAYS before the
 *  overdue line (an index range, not the whole history on every tick);
 *  one recorded later than that after the meeting, or missed while the
 *  service was down longer, is still shown by the overdue list, which
 *  announces it then.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_log.h"
#include "bc_mem.h"
#include "bc_ticker.h"
#include "notes.h"

#define S_BATCH 500
#define S_WINDOW_DAYS 14

struct notes_overdue {
    bc_ticker_t *ticker;
    int hours;
};

/* One scan: returns how many encounters were announced, or -1 with err. */
static int s_scan(notes_overdue_t *self, bc_db_t *db, bc_error_t *err)
{
    int mine = bc_ticker_begin(db, "notes.overdue_scan", "note_overdue_scan", err);
    if (mine <= 0)
        return mine; /* 0: another instance is scanning */
    char hours[16], days[16], batch[16];
    snprintf(hours, sizeof hours, "%d", self->hours);
    snprintf(days, sizeof days, "%d", S_WINDOW_DAYS);
    snprintf(batch, sizeof batch, "%d", S_BATCH);
    const char *params[] = {hours, days, batch};
    PGresult *res = bc_db_prepared(
        db, "notes_overdue_scan",
        "WITH due AS (SELECT e.id, e.agency_id, e.site_id, e.client_id, e.staff_id,"
        "  coalesce((SELECT n.id::text FROM notes.notes n WHERE n.encounter_id = e.id), '')"
        "  AS note_id"
        "  FROM scheduling.encounters e"
        "  WHERE e.ends_at < now() - make_interval(hours => $1::int)"
        "  AND e.ends_at >= now() - make_interval(hours => $1::int, days => $2::int)"
        "  AND NOT EXISTS (SELECT FROM notes.notes n WHERE n.encounter_id = e.id"
        "                  AND n.status <> 'draft')"
        "  AND NOT EXISTS (SELECT FROM notes.overdue_notices x WHERE x.encounter_id = e.id)"
        "  ORDER BY e.ends_at LIMIT $3::int) "
        "INSERT INTO notes.overdue_notices (encounter_id, agency_id, site_id, staff_id) "
        "SELECT id, agency_id, site_id, staff_id FROM due ON CONFLICT DO NOTHING "
        "RETURNING encounter_id::text, agency_id::text, site_id::text, staff_id::text, "
        "(SELECT client_id::text FROM due WHERE due.id = encounter_id), "
        "(SELECT note_id FROM due WHERE due.id = encounter_id)",
        3, params, err);
    if (!res) {
        bc_db_rollback(db);
        return -1;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        Beacon__Notes__NoteEvent ev = BEACON__NOTES__NOTE_EVENT__INIT;
        ev.encounter_id = PQgetvalue(res, i, 0);
        ev.agency_id = PQgetvalue(res, i, 1);
        ev.site_id = PQgetvalue(res, i, 2);
        ev.staff_id = PQgetvalue(res, i, 3);
        ev.client_id = PQgetvalue(res, i, 4);
        ev.note_id = PQgetvalue(res, i, 5);
        if (bc_outbox_emit(db, "notes", "note.overdue", &ev.base, NULL, err) < 0) {
            PQclear(res);
            bc_db_rollback(db);
            return -1;
        }
    }
    PQclear(res);
    if (bc_db_commit(db, err) < 0)
        return -1;
    return n;
}

static void s_tick(bc_ticker_t *ticker, bc_db_t *db, void *arg)
{
    (void)ticker;
    bc_error_t err;
    int n = s_scan(arg, db, &err);
    if (n < 0)
        bc_warn("overdue notes: scan failed: %s (%s)", err.message, err.detail);
    else if (n > 0)
        bc_info("overdue notes: %d encounter(s) announced", n);
}

notes_overdue_t *notes_overdue_start(const bc_config_t *config, bc_error_t *err)
{
    notes_overdue_t *self = bc_calloc(1, sizeof *self);
    self->hours = (int)bc_config_int(config, "overdue_hours");
    self->ticker = bc_ticker_start(bc_config_str(config, "database_url"), "notes-overdue",
                                   bc_config_int(config, "overdue_scan_seconds") * 1000, s_tick,
                                   self, err);
    if (!self->ticker) {
        free(self);
        return NULL;
    }
    return self;
}

void notes_overdue_stop(notes_overdue_t *self)
{
    if (!self)
        return;
    bc_ticker_stop(&self->ticker);
    free(self);
}
