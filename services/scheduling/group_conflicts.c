/*  group_conflicts: the double-booking check of group meetings. The
 *  meetings concerned (a series' scheduled future ones, or one) have their
 *  facilitators and room locked with the advisory locks one-on-one booking
 *  takes, then are checked, under the conflict_check purpose, against the
 *  facilitators' appointments, other group meetings, time off and working
 *  hours (when they have any at the site), the room's bookings, and the
 *  appointments of clients on the roster.
 *  Enrolling one client checks that client alone: the group's coming
 *  meetings against their appointments and their other groups' meetings.
 */
#include <stdio.h>
#include <string.h>

#include "scheduling.h"

/* What a conflict row (what, id, start, end, the session's start) is
 * called: *label for the sentence, *kind for the item in brackets. */
typedef void (*s_label_fn)(const char *what, const char **label, const char **kind);

/* Reads the conflict rows, restores the purpose, and refuses with CONFLICT
 * ("<lead>: the session at ...: <label> <from> to <to> (<kind> <id>); ...
 * <advice>") when there are any and no override. Frees res. */
static bc_code_t s_refuse_conflicts(bc_call_t *call, PGresult *res, s_label_fn name,
                                    bool override, const char *lead, const char *advice)
{
    int rows = PQntuples(res);
    char found[1200] = "";
    size_t used = 0;
    for (int i = 0; i < rows; i++) {
        const char *label, *kind;
        name(PQgetvalue(res, i, 0), &label, &kind);
        char from[32], to[32], at[32];
        sched_format_instant(sched_us_value(res, i, 2), from);
        sched_format_instant(sched_us_value(res, i, 3), to);
        sched_format_instant(sched_us_value(res, i, 4), at);
        int w = snprintf(found + used, sizeof found - used, "%sthe session at %s: %s %s to %s (%s %s)",
                         used ? "; " : "", at, label, from, to, kind, PQgetvalue(res, i, 1));
        if (w > 0 && (size_t)w < sizeof found - used)
            used += (size_t)w;
    }
    PQclear(res);
    const char *off[] = {"beacon.purpose", ""};
    bc_error_t err;
    if (bc_db_defer(call->db, "sched_purpose", "SELECT set_config($1, $2, true)", 2, off, NULL,
                    NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    if (rows && !override)
        return bc_call_fail(call, BC_CONFLICT, "override_conflicts", "%s: %s%s. %s", lead, found,
                            rows == 5 ? " (and perhaps more)" : "", advice);
    return BC_OK;
}

static void s_group_label(const char *what, const char **label, const char **kind)
{
    *label = !strcmp(what, "staff")         ? "a facilitator has an appointment"
             : !strcmp(what, "staff_group") ? "a facilitator runs another group"
             : !strcmp(what, "room")        ? "the room is booked"
             : !strcmp(what, "room_group")  ? "the room holds another group"
             : !strcmp(what, "time_off")    ? "a facilitator is off"
             : !strcmp(what, "hours")       ? "a facilitator's working hours do not cover"
                                            : "a client on the roster has an appointment";
    *kind = !strcmp(what, "hours")                                      ? "staff member"
            : !strcmp(what, "time_off")                                 ? "time off"
            : !strcmp(what, "staff_group") || !strcmp(what, "room_group") ? "group occurrence"
                                                                        : "appointment";
}

static void s_enrol_label(const char *what, const char **label, const char **kind)
{
    bool group = strcmp(what, "appointment") != 0;
    *label = group ? "the client is in another group" : "the client is booked";
    *kind = group ? "group occurrence" : "appointment";
}

bc_code_t sched_group_conflicts(bc_call_t *call, const char *group_id, const char *occurrence_id,
                                bool override)
{
    /* The occurrences concerned: one, or the series' scheduled future ones. */
#define S_OCC                                                                                     \
    "SELECT id, group_id, site_id, starts_at, ends_at, location_id, facilitator_ids"              \
    " FROM scheduling.group_occurrences WHERE status = 'scheduled' AND CASE WHEN $2::uuid IS NULL" \
    " THEN group_id = $1::uuid AND starts_at > now() ELSE id = $2::uuid END"
    const char *params[] = {group_id, occurrence_id};
    const char *on[] = {"beacon.purpose", "conflict_check"};
    bc_error_t err;
    if (bc_db_defer(call->db, "sched_group_lock_people",
                    "WITH o AS (" S_OCC ") "
                    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM ("
                    " SELECT 'staff:' || f AS k FROM o, unnest(o.facilitator_ids) f"
                    " UNION SELECT 'location:' || location_id FROM o"
                    " WHERE location_id IS NOT NULL) k ORDER BY k",
                    2, params, NULL, NULL, &err) < 0 ||
        bc_db_defer(call->db, "sched_purpose", "SELECT set_config($1, $2, true)", 2, on, NULL,
                    NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
#define S_OVERLAP(x)                                                                              \
    " AND " x ".starts_at < o.ends_at AND " x ".starts_at > o.starts_at - interval '24 hours'"    \
    " AND " x ".ends_at > o.starts_at"
    PGresult *res = bc_db_prepared(
        call->db, "sched_group_conflicts",
        "WITH o AS (" S_OCC ") "
        "SELECT what, id, " SCHED_US("s") ", " SCHED_US("e") ", " SCHED_US("os") " FROM ("
        " SELECT 'staff' AS what, a.id::text AS id, a.starts_at AS s, a.ends_at AS e,"
        "  o.starts_at AS os FROM o JOIN scheduling.appointments a"
        "  ON a.staff_id = ANY (o.facilitator_ids) AND scheduling.blocking(a.status)" S_OVERLAP("a")
        " UNION ALL"
        " SELECT 'staff_group', x.id::text, x.starts_at, x.ends_at, o.starts_at FROM o"
        "  JOIN scheduling.group_occurrences x ON x.facilitator_ids && o.facilitator_ids"
        "  AND x.status <> 'cancelled' AND x.id <> o.id" S_OVERLAP("x")
        " UNION ALL"
        " SELECT 'room', a.id::text, a.starts_at, a.ends_at, o.starts_at FROM o"
        "  JOIN scheduling.appointments a ON a.location_id = o.location_id"
        "  AND scheduling.blocking(a.status)" S_OVERLAP("a")
        " UNION ALL"
        " SELECT 'room_group', x.id::text, x.starts_at, x.ends_at, o.starts_at FROM o"
        "  JOIN scheduling.group_occurrences x ON x.location_id = o.location_id"
        "  AND x.status <> 'cancelled' AND x.id <> o.id" S_OVERLAP("x")
        " UNION ALL"
        " SELECT 'time_off', t.id::text, t.starts_at, t.ends_at, o.starts_at FROM o"
        "  JOIN scheduling.time_off t ON t.staff_id = ANY (o.facilitator_ids)"
        "  AND t.ends_at > o.starts_at AND t.starts_at < o.ends_at"
        " UNION ALL"
        /* a facilitator with working hours at the site, none covering it */
        " SELECT 'hours', f::text, o.starts_at, o.ends_at, o.starts_at FROM o"
        "  CROSS JOIN LATERAL unnest(o.facilitator_ids) f"
        "  JOIN identity.site_directory d ON d.site_id = o.site_id"
        "  WHERE EXISTS (SELECT FROM scheduling.working_hours w"
        "                WHERE w.staff_id = f AND w.site_id = o.site_id)"
        "  AND NOT EXISTS (SELECT FROM scheduling.working_hours w"
        "    WHERE w.staff_id = f AND w.site_id = o.site_id"
        "    AND w.weekday = extract(isodow FROM o.starts_at AT TIME ZONE d.time_zone)::int - 1"
        "    AND w.starts <= (o.starts_at AT TIME ZONE d.time_zone)::time"
        "    AND w.ends >= (o.ends_at AT TIME ZONE d.time_zone)::time"
        "    AND (o.starts_at AT TIME ZONE d.time_zone)::date"
        "        = ((o.ends_at - interval '1 microsecond') AT TIME ZONE d.time_zone)::date)"
        " UNION ALL"
        " SELECT 'client', a.id::text, a.starts_at, a.ends_at, o.starts_at FROM o"
        "  JOIN scheduling.group_roster r ON r.group_id = o.group_id AND r.left_at IS NULL"
        "  JOIN scheduling.appointments a ON a.client_id = r.client_id"
        "  AND scheduling.blocking(a.status)" S_OVERLAP("a")
        ") c ORDER BY os, s, what LIMIT 5",
        2, params, &err);
#undef S_OVERLAP
#undef S_OCC
    if (!res)
        return bc_call_fail_err(call, &err);
    return s_refuse_conflicts(call, res, s_group_label, override, "the time is not free",
                              "Choose another time, or a supervisor may go ahead with "
                              "override_conflicts and override_reason");
}

bc_code_t sched_enrol_conflicts(bc_call_t *call, const char *group_id, const char *client_id,
                                bool override)
{
    char key[64];
    snprintf(key, sizeof key, "client:%s", client_id);
    const char *lock[] = {key};
    const char *params[] = {group_id, client_id};
    const char *on[] = {"beacon.purpose", "conflict_check"};
    bc_error_t err;
    /* The key one-on-one booking takes for the client: a booking and this
     * enrolment cannot both pass their checks at once. */
    if (bc_db_defer(call->db, "sched_lock_one", "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    1, lock, NULL, NULL, &err) < 0 ||
        bc_db_defer(call->db, "sched_purpose", "SELECT set_config($1, $2, true)", 2, on, NULL,
                    NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
#define S_OVERLAP(x)                                                                              \
    " AND " x ".starts_at < o.ends_at AND " x ".starts_at > o.starts_at - interval '24 hours'"    \
    " AND " x ".ends_at > o.starts_at"
    PGresult *res = bc_db_prepared(
        call->db, "sched_enrol_conflicts",
        "WITH o AS (SELECT starts_at, ends_at FROM scheduling.group_occurrences"
        "  WHERE group_id = $1::uuid AND status = 'scheduled' AND starts_at > now()) "
        "SELECT what, id, " SCHED_US("s") ", " SCHED_US("e") ", " SCHED_US("os") " FROM ("
        " SELECT 'appointment' AS what, a.id::text AS id, a.starts_at AS s, a.ends_at AS e,"
        "  o.starts_at AS os FROM o JOIN scheduling.appointments a ON a.client_id = $2::uuid"
        "  AND scheduling.blocking(a.status)" S_OVERLAP("a")
        " UNION ALL"
        " SELECT 'group occurrence', x.id::text, x.starts_at, x.ends_at, o.starts_at FROM o"
        "  JOIN scheduling.group_roster r ON r.client_id = $2::uuid AND r.left_at IS NULL"
        "  AND r.group_id <> $1::uuid"
        "  JOIN scheduling.group_occurrences x ON x.group_id = r.group_id"
        "  AND x.status = 'scheduled'" S_OVERLAP("x")
        ") c ORDER BY os, s LIMIT 5",
        2, params, &err);
#undef S_OVERLAP
    if (!res)
        return bc_call_fail_err(call, &err);
    return s_refuse_conflicts(call, res, s_enrol_label, override,
                              "the client is not free for this group",
                              "Move those meetings, or a supervisor may enrol them anyway with "
                              "override_conflicts and override_reason");
}
