/*  feed: a staff member's schedule as an iCalendar (RFC 5545) file, for
 *  calendar applications (GET /api/v1/staff/{staff_id}/calendar.ics; the
 *  gateway serves the FileReply as text/calendar).
 *
 *  The file leaves Beacon, so it carries the minimum necessary: each meeting
 *  names the client by initials only ("Meeting with J.D. (telephone)"), the
 *  place by the location's name; no purpose, no names, no reasons. One VEVENT
 *  per appointment in the window, UID "<id>@beacon", SEQUENCE the number of
 *  changes (version - 1), DTSTAMP the last change; proposed meetings are
 *  TENTATIVE, cancelled ones CANCELLED (so a subscribed calendar drops
 *  them), no-shows and records entered in error are left out. The group
 *  meetings they facilitate follow, one VEVENT each, named by the group's
 *  title (no client data).
 *
 *  Who: oneself ("me"), or, for a supervisor, a staff member who works at
 *  one of their sites; row security shows only meetings at the caller's
 *  sites. The export is audited once per client in it (action export)
 *  before the file is returned; no audit record, no file.
 *
 *  Window: from/to as in ListAppointments (an instant, or a date in the
 *  site's zone), by default 30 days back to 180 days ahead, at most 400
 *  days and S_MAX_EVENTS meetings (more is refused: narrow the window).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"
#include "ical.h"
#include "scheduling.h"

#define S_MAX_EVENTS 2000
#define S_MAX_DAYS 400
#define S_DAYS_BEFORE 30
#define S_DAYS_AFTER 180

/* Columns of one meeting: only what the file shows, the audit and the
 * client's count in it (window functions, so one statement answers all). */
// clang-format off
#define S_FEED_COLUMNS                                                                            \
    "a.id::text, a.client_id::text, a.site_id::text, " SCHED_US("a.starts_at") ", "             \
    SCHED_US("a.ends_at") ", " SCHED_US("a.updated_at") ", a.version, a.status, a.mode, "       \
    "coalesce(l.name, ''), coalesce(regexp_replace(c.initials, '(.)', '\\1.', 'g'), ''), "      \
    "row_number() OVER (PARTITION BY a.client_id ORDER BY a.starts_at, a.id), "                 \
    "count(*) OVER (PARTITION BY a.client_id)"
enum { S_ID, S_CLIENT, S_SITE, S_START, S_END, S_STAMP, S_VERSION, S_STATUS, S_MODE, S_LOCATION,
       S_INITIALS, S_NTH, S_COUNT };
// clang-format on

/* STATUS of an appointment status (FHIR); NULL for those left out. */
static const char *s_ical_status(const char *status)
{
    if (!strcmp(status, "proposed"))
        return "TENTATIVE";
    if (!strcmp(status, "cancelled"))
        return "CANCELLED";
    if (!strcmp(status, "booked") || !strcmp(status, "arrived") || !strcmp(status, "checked_in") ||
        !strcmp(status, "fulfilled"))
        return "CONFIRMED";
    return NULL;
}

static const char *s_mode_words(const char *mode)
{
    if (!strcmp(mode, "in_person"))
        return "in person";
    if (!strcmp(mode, "community"))
        return "in the community";
    if (!strcmp(mode, "telehealth_video"))
        return "video";
    if (!strcmp(mode, "telephone"))
        return "telephone";
    return mode;
}

/* Whose feed: the caller, or for a supervisor a staff member at one of
 * their sites. *site is the site whose zone reads dates: the caller's
 * first, or the first they share. NULL with call->err set when refused. */
static const char *s_whose(bc_call_t *call, const char *staff_id, const char **site)
{
    const char *staff = sched_staff_arg(call, staff_id, "staff_id");
    if (!staff)
        return NULL;
    const Beacon__Principal *p = call->principal;
    *site = "";
    if (!strcmp(staff, p->staff_id))
        return staff;
    for (size_t i = 0; i < p->n_site_ids; i++) {
        int at = sched_staff_at_site(call, staff, p->site_ids[i]);
        if (at < 0)
            return NULL;
        if (at) {
            *site = p->site_ids[i];
            return staff;
        }
    }
    bc_call_fail(call, BC_NOT_FOUND, "staff_id", "no staff member %s at your sites", staff);
    return NULL;
}

/* The window: sched_window's, with the feed's defaults and bound. */
static bc_code_t s_feed_window(bc_call_t *call, const char *site,
                               const Beacon__Scheduling__GetCalendarFeedRequest *req,
                               int64_t win[2])
{
    int64_t now = bc_now_ms() * 1000;
    const char *from = req->from, *to = req->to;
    char default_from[32], default_to[32];
    if (!*from) {
        sched_format_instant(now - S_DAYS_BEFORE * SCHED_US_PER_DAY, default_from);
        from = default_from;
        if (!*to) {
            sched_format_instant(now + S_DAYS_AFTER * SCHED_US_PER_DAY, default_to);
            to = default_to;
        }
    }
    /* A from without a to: the default window's length after it. */
    return sched_window(call, site, from, to, S_DAYS_BEFORE + S_DAYS_AFTER, S_MAX_DAYS, win);
}

/* The file's name: the window's (UTC) dates, to exclusive; nothing about
 * anyone. */
static char *s_filename(bc_call_t *call, const int64_t win[2])
{
    char a[32], b[32];
    sched_format_instant(win[0], a);
    sched_format_instant(win[1], b);
    return bc_arena_printf(call->arena, "beacon-schedule-%.4s%.2s%.2s-%.4s%.2s%.2s.ics", a, a + 5,
                           a + 8, b, b + 5, b + 8);
}

/* Audits the export once per client in res (the row numbered 1 of each),
 * before anything is returned. */
static int s_audit(bc_call_t *call, PGresult *res, const char *staff, const int64_t win[2])
{
    char from[32], to[32];
    sched_format_instant(win[0], from);
    sched_format_instant(win[1], to);
    for (int i = 0; i < PQntuples(res); i++) {
        if (strcmp(PQgetvalue(res, i, S_NTH), "1") != 0)
            continue;
        char *detail = bc_arena_printf(
            call->arena,
            "{\"via\":\"calendar_feed\",\"appointments\":%s,\"from\":\"%s\",\"to\":\"%s\"}",
            PQgetvalue(res, i, S_COUNT), from, to);
        bc_audit_event_t ev = {.site_id = PQgetvalue(res, i, S_SITE),
                               .action = BC_AUDIT_EXPORT,
                               .resource_type = "calendar",
                               .resource_id = staff,
                               .client_id = PQgetvalue(res, i, S_CLIENT),
                               .purpose = "treatment",
                               .detail = detail};
        if (bc_call_audit_read(call, &ev) < 0)
            return -1;
    }
    return 0;
}

/* The group meetings the staff member facilitates in the window, one
 * VEVENT each (an occurrence edited on its own keeps its own time, so no
 * RRULE): the group's title, no client data. params as the feed query's. */
static int s_add_groups(bc_call_t *call, sched_ical_t *ical, const char *const params[5])
{
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "sched_feed_groups",
        "SELECT o.id::text, " SCHED_US("o.starts_at") ", " SCHED_US("o.ends_at") ", "
        SCHED_US("o.updated_at") ", o.version, o.status, g.title, coalesce(l.name, '') "
        "FROM scheduling.group_occurrences o JOIN scheduling.groups g ON g.id = o.group_id "
        "LEFT JOIN scheduling.locations l ON l.id = o.location_id "
        "WHERE o.agency_id = $1 AND $2::uuid = ANY (o.facilitator_ids) "
        "AND o.starts_at >= $3::timestamptz AND o.starts_at < $4::timestamptz "
        "ORDER BY o.starts_at, o.id LIMIT $5::int",
        5, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    int rows = PQntuples(res), rc = 0;
    if (rows > S_MAX_EVENTS)
        rc = -1, bc_call_fail(call, BC_INVALID_ARGUMENT, "to",
                              "more than %d group meetings between from and to: ask for a "
                              "shorter window (from, to)",
                              S_MAX_EVENTS);
    for (int i = 0; rc == 0 && i < rows; i++) {
        const char *status = PQgetvalue(res, i, 5);
        sched_ical_event_t ev = {
            .uid = bc_arena_printf(call->arena, "%s@beacon", PQgetvalue(res, i, 0)),
            .start_us = sched_us_value(res, i, 1),
            .end_us = sched_us_value(res, i, 2),
            .stamp_us = sched_us_value(res, i, 3),
            .summary = bc_arena_printf(call->arena, "Group: %s", PQgetvalue(res, i, 6)),
            .location = PQgetvalue(res, i, 7),
            .status = !strcmp(status, "cancelled") ? "CANCELLED" : "CONFIRMED",
            .sequence = atoi(PQgetvalue(res, i, 4)) - 1,
            .categories = "Group session",
        };
        if (sched_ical_add(ical, &ev) < 0)
            rc = -1, bc_call_fail(call, BC_INTERNAL, "", "group meeting %s cannot be written",
                                  ev.uid);
    }
    PQclear(res);
    return rc;
}

bc_code_t feed_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__GetCalendarFeedRequest *req =
        (const Beacon__Scheduling__GetCalendarFeedRequest *)in;
    const char *site = "";
    const char *staff = s_whose(call, req->staff_id, &site);
    if (!staff)
        return call->err.code;
    int64_t win[2];
    bc_code_t code = s_feed_window(call, site, req, win);
    if (code != BC_OK)
        return code;
    char from[40], to[40], fetch[16];
    sched_sql_instant(win[0], from);
    sched_sql_instant(win[1], to);
    snprintf(fetch, sizeof fetch, "%d", S_MAX_EVENTS + 1);
    const char *params[] = {call->principal->agency_id, staff, from, to, fetch};
    bc_error_t err;
    /* Initials through intake's client_ref, with the caller's scope: a
     * client the caller may no longer read shows as a plain "Meeting". */
    PGresult *res =
        bc_db_prepared(call->db, "sched_feed",
                       "SELECT " S_FEED_COLUMNS " FROM scheduling.appointments a"
                       " LEFT JOIN scheduling.locations l ON l.id = a.location_id"
                       " LEFT JOIN LATERAL intake.client_ref(a.client_id) c ON true"
                       " WHERE a.agency_id = $1 AND a.staff_id = $2::uuid"
                       " AND a.starts_at >= $3::timestamptz AND a.starts_at < $4::timestamptz"
                       " AND a.status NOT IN ('noshow', 'entered_in_error')"
                       " ORDER BY a.starts_at, a.id LIMIT $5::int",
                       5, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    if (rows > S_MAX_EVENTS) {
        PQclear(res);
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "to",
                            "more than %d meetings between from and to: ask for a shorter "
                            "window (from, to)",
                            S_MAX_EVENTS);
    }
    sched_ical_t *ical = sched_ical_new(NULL, "Beacon schedule");
    for (int i = 0; i < rows; i++) {
        const char *initials = PQgetvalue(res, i, S_INITIALS);
        const char *mode = s_mode_words(PQgetvalue(res, i, S_MODE));
        char *summary = *initials
                            ? bc_arena_printf(call->arena, "Meeting with %s (%s)", initials, mode)
                            : bc_arena_printf(call->arena, "Meeting (%s)", mode);
        sched_ical_event_t ev = {
            .uid = bc_arena_printf(call->arena, "%s@beacon", PQgetvalue(res, i, S_ID)),
            .start_us = sched_us_value(res, i, S_START),
            .end_us = sched_us_value(res, i, S_END),
            .stamp_us = sched_us_value(res, i, S_STAMP),
            .summary = summary,
            .location = PQgetvalue(res, i, S_LOCATION),
            .status = s_ical_status(PQgetvalue(res, i, S_STATUS)),
            .sequence = atoi(PQgetvalue(res, i, S_VERSION)) - 1,
        };
        if (!ev.status || sched_ical_add(ical, &ev) < 0) {
            sched_ical_destroy(&ical);
            PQclear(res);
            return bc_call_fail(call, BC_INTERNAL, "", "appointment %s cannot be written", ev.uid);
        }
    }
    if (s_add_groups(call, ical, params) < 0) {
        sched_ical_destroy(&ical);
        PQclear(res);
        return call->err.code;
    }
    if (s_audit(call, res, staff, win) < 0) {
        sched_ical_destroy(&ical);
        PQclear(res);
        return call->err.code;
    }
    PQclear(res);
    size_t len = 0;
    char *text = sched_ical_finish(&ical, &len);
    Beacon__FileReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__file_reply__init(r);
    r->content_type = "text/calendar; charset=utf-8";
    r->filename = s_filename(call, win);
    r->body.len = len;
    r->body.data = bc_arena_alloc(call->arena, len ? len : 1);
    memcpy(r->body.data, text, len);
    free(text);
    *out = &r->base;
    return BC_OK;
}
