/*  reminders: "reminder.due" events before booked meetings and scheduled
 *  group meetings, for a notification channel to deliver (Beacon itself
 *  sends no messages).
 *
 *  A thread of the scheduling service scans every reminder_scan_seconds,
 *  on its own connection, in one transaction: it takes a transaction
 *  advisory lock so that one instance of the service scans at a time, reads
 *  (under the reminder_scan purpose, whose row policies admit ids and times
 *  only to this statement) the meetings starting within the largest
 *  reminder_minutes whose reminder is due, and for each writes a row in
 *  scheduling.reminders_sent and the event into the outbox, so an event is
 *  emitted exactly once per meeting, offset and start time, and a moved
 *  meeting is reminded again for its new time. A reminder is due from
 *  start - offset until the start, but only when it fell due after the
 *  meeting was last changed: a meeting booked for an hour from now gets no
 *  "24 hours before", while a scanner that was down catches up late rather
 *  than never. The payload carries ids and times, never names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_log.h"
#include "bc_mem.h"
#include "bc_ticker.h"
#include "bc_util.h"
#include "scheduling.h"

#define S_MAX_OFFSETS 4
#define S_BATCH 500

struct sched_reminders {
    bc_ticker_t *ticker; /* NULL: reminders off */
    char offsets[64];    /* int[] literal */
};

int sched_reminder_offsets(const char *text, char out[64], bc_error_t *err)
{
    int n = 0, used = snprintf(out, 64, "{");
    const char *p = text;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || v < 5 || v > 10080 || n == S_MAX_OFFSETS)
            return bc_error_set(err, BC_INVALID_ARGUMENT, "reminder_minutes",
                                "reminder_minutes must list up to %d whole minutes of 5 to "
                                "10080 separated by commas, such as 1440,120",
                                S_MAX_OFFSETS);
        used += snprintf(out + used, (size_t)(64 - used), "%s%ld", n ? "," : "", v);
        n++;
        p = *end ? end + 1 : end;
    }
    snprintf(out + used, (size_t)(64 - used), "}");
    return n;
}

/* One scan: the reminders due now, each recorded and emitted. Returns how
 * many, or -1. */
static int s_scan(sched_reminders_t *self, bc_db_t *db, bc_error_t *err)
{
    int mine = bc_ticker_begin(db, "scheduling.reminders", "reminder_scan", err);
    if (mine <= 0)
        return mine; /* 0: another instance is scanning */
    char batch[16];
    snprintf(batch, sizeof batch, "%d", S_BATCH);
    const char *params[] = {self->offsets, batch};
#define S_DUE(t, changed)                                                                         \
    " " t ".starts_at > now() AND " t ".starts_at <= now() + make_interval(mins => m)"            \
    " AND " t ".starts_at - make_interval(mins => m) > " changed                                  \
    " AND NOT EXISTS (SELECT FROM scheduling.reminders_sent s WHERE s.item_id = " t ".id"         \
    " AND s.minutes = m AND s.starts_at = " t ".starts_at)"
    PGresult *res = bc_db_prepared(
        db, "sched_reminders_due",
        "SELECT kind, id::text, agency_id::text, site_id::text, client_id, staff_id::text, "
        "group_id, " SCHED_US("starts_at") ", " SCHED_US("ends_at") ", mode, m, "
        "starts_at::text FROM ("
        " SELECT 'appointment' AS kind, a.id, a.agency_id, a.site_id, a.client_id::text,"
        "  a.staff_id, '' AS group_id, a.starts_at, a.ends_at, a.mode, m"
        "  FROM unnest($1::int[]) m JOIN scheduling.appointments a ON a.status = 'booked' AND"
        S_DUE("a", "a.updated_at") " UNION ALL"
        " SELECT 'group_occurrence', o.id, o.agency_id, o.site_id, '', o.facilitator_ids[1],"
        "  o.group_id::text, o.starts_at, o.ends_at, g.mode, m"
        "  FROM unnest($1::int[]) m JOIN scheduling.group_occurrences o"
        "  ON o.status = 'scheduled' AND" S_DUE("o", "o.updated_at")
        "  JOIN scheduling.groups g ON g.id = o.group_id"
        ") r ORDER BY starts_at, id, m LIMIT $2::int",
        2, params, err);
#undef S_DUE
    if (!res) {
        bc_db_rollback(db);
        return -1;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        bool appointment = !strcmp(PQgetvalue(res, i, 0), "appointment");
        char start[32], end[32];
        sched_format_instant(sched_us_value(res, i, 7), start);
        sched_format_instant(sched_us_value(res, i, 8), end);
        Beacon__Scheduling__SchedulingEvent ev = BEACON__SCHEDULING__SCHEDULING_EVENT__INIT;
        if (appointment)
            ev.appointment_id = PQgetvalue(res, i, 1);
        else
            ev.occurrence_id = PQgetvalue(res, i, 1);
        ev.agency_id = PQgetvalue(res, i, 2);
        ev.site_id = PQgetvalue(res, i, 3);
        ev.client_id = PQgetvalue(res, i, 4);
        ev.staff_id = PQgetvalue(res, i, 5);
        ev.group_id = PQgetvalue(res, i, 6);
        ev.start = start;
        ev.end = end;
        ev.status = appointment ? "booked" : "scheduled";
        ev.mode = PQgetvalue(res, i, 9);
        ev.is_group = !appointment;
        ev.reminder_minutes = atoi(PQgetvalue(res, i, 10));
        const char *sent[] = {PQgetvalue(res, i, 1), PQgetvalue(res, i, 10),
                              PQgetvalue(res, i, 11), PQgetvalue(res, i, 0)};
        if (bc_db_defer(db, "sched_reminder_sent",
                        "INSERT INTO scheduling.reminders_sent (item_id, minutes, starts_at, kind) "
                        "VALUES ($1, $2::int, $3::timestamptz, $4)",
                        4, sent, NULL, NULL, err) < 0 ||
            bc_outbox_emit(db, "scheduling", "reminder.due", &ev.base, NULL, err) < 0) {
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
        bc_warn("reminders: scan failed: %s (%s)", err.message, err.detail);
    else if (n > 0)
        bc_info("reminders: %d due", n);
}

sched_reminders_t *sched_reminders_start(const bc_config_t *config, bc_error_t *err)
{
    sched_reminders_t *self = bc_calloc(1, sizeof *self);
    int n = sched_reminder_offsets(bc_config_str(config, "reminder_minutes"), self->offsets, err);
    if (n < 0) {
        free(self);
        return NULL;
    }
    if (n == 0) /* reminders off */
        return self;
    self->ticker = bc_ticker_start(bc_config_str(config, "database_url"), "scheduling-reminders",
                                   bc_config_int(config, "reminder_scan_seconds") * 1000, s_tick,
                                   self, err);
    if (!self->ticker) {
        free(self);
        return NULL;
    }
    return self;
}

void sched_reminders_stop(sched_reminders_t *self)
{
    if (!self)
        return;
    bc_ticker_stop(&self->ticker);
    free(self);
}
