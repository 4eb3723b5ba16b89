/*  calendar: the views of the schedule. A specialist's day or week, a site's
 *  calendar, a client's upcoming and past appointments (and no-show history,
 *  status=noshow), and the encounters recorded. Every list is scope-filtered
 *  twice (the handlers' filters, row security underneath) and every listed
 *  appointment or encounter is audited as a read of the client's record.
 *
 *  Windows. "from" is an instant, or a date read in the site's time zone
 *  (the site_id filter's, else the caller's first site's); view=day or week
 *  sets "to" one or seven local days later, so a week that crosses a
 *  daylight-saving change still runs midnight to midnight. A calendar window
 *  is at most 62 days; a client's list up to ten years (by default the year
 *  either side of now); a list at most 500 rows (truncated says more exist).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"
#include "recurrence.h"
#include "scheduling.h"

#define S_LIST_DEFAULT 200
#define S_LIST_MAX 500
#define S_WINDOW_MAX_DAYS 62
#define S_CLIENT_WINDOW_MAX_DAYS 3660
#define S_CLIENT_DEFAULT_DAYS 365

/* One end of a window: an instant (*us set, *date empty) or a local date. */
static int s_end(const char *text, int64_t *us, char date[11])
{
    sched_date_t d;
    date[0] = '\0';
    if (!*text)
        return 0;
    if (sched_date_parse(text, &d) == 0) {
        sched_date_format(d, date);
        return 0;
    }
    return sched_parse_instant(text, us);
}

bc_code_t sched_window(bc_call_t *call, const char *site_id, const char *from, const char *to,
                       int days, int max_days, int64_t win[2])
{
    char from_date[11], to_date[11];
    if (s_end(from, &win[0], from_date))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "from",
                            "from must be a date (YYYY-MM-DD) or an RFC 3339 time");
    if (s_end(to, &win[1], to_date))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "to",
                            "to must be a date (YYYY-MM-DD) or an RFC 3339 time");
    if (*from && !*from_date && *to && !*to_date) {
        /* two instants: no zone needed */
    } else {
        /* Local midnights and days, through the site's zone. */
        const char *site = *site_id ? site_id
                           : call->principal->n_site_ids ? call->principal->site_ids[0]
                                                        : "";
        if (!bc_is_uuid(site))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id",
                                "say which site's calendar (site_id)");
        char start[40] = "", end[40] = "", n[8];
        if (*from && !*from_date)
            sched_sql_instant(win[0], start);
        if (*to && !*to_date)
            sched_sql_instant(win[1], end);
        snprintf(n, sizeof n, "%d", days);
        const char *params[] = {site,     *from_date ? from_date : NULL, *start ? start : NULL,
                                *to_date ? to_date : NULL, *end ? end : NULL, n,
                                call->principal->agency_id};
        bc_error_t err;
        /* The site's zone and both ends in one round trip. */
        PGresult *res = bc_db_prepared(
            call->db, "sched_window",
            "WITH z AS (SELECT time_zone AS tz FROM identity.site_directory "
            "           WHERE site_id = $1::uuid AND agency_id = $7::uuid), "
            "f AS (SELECT tz, coalesce($3::timestamptz, coalesce($2::date, "
            "  (now() AT TIME ZONE tz)::date)::timestamp AT TIME ZONE tz) AS t FROM z) "
            "SELECT " SCHED_US("f.t") ", " SCHED_US(
                "coalesce($5::timestamptz, $4::date::timestamp AT TIME ZONE f.tz, "
                "((f.t AT TIME ZONE f.tz) + $6::int * interval '1 day') AT TIME ZONE f.tz)")
            " FROM f",
            7, params, &err);
        if (!res)
            return bc_call_fail_err(call, &err);
        if (PQntuples(res) != 1) {
            PQclear(res);
            return bc_call_fail(call, BC_NOT_FOUND, "site_id", "no site with id %s", site);
        }
        win[0] = sched_us_value(res, 0, 0);
        win[1] = sched_us_value(res, 0, 1);
        PQclear(res);
    }
    if (win[1] <= win[0])
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "to", "to must be after from");
    if (win[1] - win[0] > max_days * SCHED_US_PER_DAY)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "to", "a window is at most %d days",
                            max_days);
    return BC_OK;
}

bc_code_t sched_view_window(bc_call_t *call, const char *site_id, const char *from, const char *to,
                          const char *view, int max_days, int64_t win[2])
{
    int days = !*view ? 0 : !strcmp(view, "day") ? 1 : !strcmp(view, "week") ? 7 : -1;
    if (days < 0)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "view", "view must be day or week");
    if (days && *to)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "to", "give view or to, not both");
    if (!days && !*to)
        days = 1; /* a day's calendar unless told otherwise */
    return sched_window(call, site_id, from, to, days, max_days, win);
}

static bc_code_t s_limit(bc_call_t *call, int limit, int *out)
{
    if (limit < 0 || limit > S_LIST_MAX)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "limit", "limit must be 1 to %d",
                            S_LIST_MAX);
    *out = limit ? limit : S_LIST_DEFAULT;
    return BC_OK;
}

#define S_WHERE_TAIL                                                                              \
    " AND a.starts_at >= $3::timestamptz AND a.starts_at < $4::timestamptz"                        \
    " AND ($5::text IS NULL OR a.status = $5) ORDER BY a.starts_at, a.id LIMIT $6::int"

bc_code_t appointments_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__ListAppointmentsRequest *req =
        (const Beacon__Scheduling__ListAppointmentsRequest *)in;
    static const char *const s_statuses[] = {"proposed",  "booked",  "arrived", "checked_in",
                                             "fulfilled", "cancelled", "noshow",
                                             "entered_in_error", NULL};
    if (*req->status) {
        bool known = false;
        for (const char *const *s = s_statuses; *s; s++)
            known = known || !strcmp(*s, req->status);
        if (!known)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "status", "unknown status %s",
                                req->status);
    }
    if (*req->site_id && !bc_is_uuid(req->site_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    if (*req->client_id && !bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    int limit = S_LIST_DEFAULT;
    bc_code_t code = s_limit(call, req->limit, &limit);
    if (code != BC_OK)
        return code;
    /* One filter leads (and picks the index); without any, the caller's own. */
    const char *lead = NULL, *name = NULL, *sql = NULL;
    if (*req->client_id) {
        lead = req->client_id;
        name = "sched_list_client";
        sql = "SELECT " SCHED_APPT_COLUMNS " FROM scheduling.appointments a" SCHED_APPT_JOINS
              " WHERE a.agency_id = $1 AND a.client_id = $2::uuid" S_WHERE_TAIL;
    } else if (*req->site_id && !*req->staff_id) {
        if (!bc_call_has_site(call, req->site_id))
            return bc_call_fail(call, BC_PERMISSION_DENIED, "site_id", "not one of your sites");
        lead = req->site_id;
        name = "sched_list_site";
        sql = "SELECT " SCHED_APPT_COLUMNS " FROM scheduling.appointments a" SCHED_APPT_JOINS
              " WHERE a.agency_id = $1 AND a.site_id = $2::uuid" S_WHERE_TAIL;
    } else {
        const char *me = call->principal->staff_id;
        lead = !*req->staff_id || !strcmp(req->staff_id, "me") ? me : req->staff_id;
        if (!bc_is_uuid(lead))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "staff_id",
                                "staff_id must be a UUID or \"me\"");
        name = "sched_list_staff";
        sql = "SELECT " SCHED_APPT_COLUMNS " FROM scheduling.appointments a" SCHED_APPT_JOINS
              " WHERE a.agency_id = $1 AND a.staff_id = $2::uuid" S_WHERE_TAIL;
    }
    /* A client's list spans years (upcoming and past, no-show history); by
     * default the year before and after now. A calendar spans weeks. */
    int64_t win[2], now = bc_now_ms() * 1000;
    bool by_client = *req->client_id;
    if (by_client && !*req->from && !*req->to && !*req->view) {
        win[0] = now - S_CLIENT_DEFAULT_DAYS * SCHED_US_PER_DAY;
        win[1] = now + S_CLIENT_DEFAULT_DAYS * SCHED_US_PER_DAY;
    } else if ((code = sched_view_window(call, req->site_id, req->from, req->to, req->view,
                                by_client ? S_CLIENT_WINDOW_MAX_DAYS : S_WINDOW_MAX_DAYS, win)) !=
               BC_OK) {
        return code;
    }
    char from[40], to[40], fetch[16];
    sched_sql_instant(win[0], from);
    sched_sql_instant(win[1], to);
    snprintf(fetch, sizeof fetch, "%d", limit + 1);
    const char *params[] = {call->principal->agency_id, lead, from, to,
                            *req->status ? req->status : NULL, fetch};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, name, sql, 6, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    Beacon__Scheduling__ListAppointmentsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__scheduling__list_appointments_reply__init(r);
    r->truncated = rows > limit;
    r->n_appointments = (size_t)(rows > limit ? limit : rows);
    r->appointments =
        bc_arena_alloc(call->arena, (r->n_appointments ? r->n_appointments : 1) * sizeof(void *));
    for (size_t i = 0; i < r->n_appointments; i++)
        r->appointments[i] = sched_appointment_from_row(call, res, (int)i);
    PQclear(res);
    char buf[32];
    sched_format_instant(win[0], buf);
    r->from = bc_arena_strdup(call->arena, buf);
    sched_format_instant(win[1], buf);
    r->to = bc_arena_strdup(call->arena, buf);
    for (size_t i = 0; i < r->n_appointments; i++) {
        bc_audit_event_t ev = sched_appointment_event(r->appointments[i], BC_AUDIT_READ);
        ev.detail = "{\"via\":\"appointment_list\"}";
        if (bc_call_audit_read(call, &ev) < 0)
            return call->err.code;
    }
    *out = &r->base;
    return BC_OK;
}

bc_code_t encounters_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__ListEncountersRequest *req =
        (const Beacon__Scheduling__ListEncountersRequest *)in;
    if (*req->client_id && !bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    int limit = S_LIST_DEFAULT;
    bc_code_t code = s_limit(call, req->limit, &limit);
    if (code != BC_OK)
        return code;
    const char *lead = req->client_id, *name = "sched_encounters_client",
               *sql = "SELECT " SCHED_ENCOUNTER_COLUMNS " FROM scheduling.encounters e"
                      " WHERE e.agency_id = $1 AND e.client_id = $2::uuid"
                      " AND e.starts_at >= $3::timestamptz AND e.starts_at < $4::timestamptz"
                      " ORDER BY e.starts_at DESC, e.id LIMIT $5::int";
    if (!*req->client_id) {
        lead = !*req->staff_id || !strcmp(req->staff_id, "me") ? call->principal->staff_id
                                                                : req->staff_id;
        if (!bc_is_uuid(lead))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "staff_id",
                                "staff_id must be a UUID or \"me\"");
        name = "sched_encounters_staff";
        sql = "SELECT " SCHED_ENCOUNTER_COLUMNS " FROM scheduling.encounters e"
              " WHERE e.agency_id = $1 AND e.staff_id = $2::uuid"
              " AND e.starts_at >= $3::timestamptz AND e.starts_at < $4::timestamptz"
              " ORDER BY e.starts_at DESC, e.id LIMIT $5::int";
    }
    int64_t win[2] = {INT64_C(0), bc_now_ms() * 1000 + SCHED_US_PER_DAY};
    if (*req->from && sched_parse_instant(req->from, &win[0]))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "from", "from must be an RFC 3339 time");
    if (*req->to && sched_parse_instant(req->to, &win[1]))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "to", "to must be an RFC 3339 time");
    char from[40], to[40], fetch[16];
    sched_sql_instant(win[0], from);
    sched_sql_instant(win[1], to);
    snprintf(fetch, sizeof fetch, "%d", limit);
    const char *params[] = {call->principal->agency_id, lead, from, to, fetch};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, name, sql, 5, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Scheduling__ListEncountersReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__scheduling__list_encounters_reply__init(r);
    r->n_encounters = (size_t)PQntuples(res);
    r->encounters =
        bc_arena_alloc(call->arena, (r->n_encounters ? r->n_encounters : 1) * sizeof(void *));
    for (size_t i = 0; i < r->n_encounters; i++)
        r->encounters[i] = sched_encounter_from_row(call, res, (int)i);
    PQclear(res);
    for (size_t i = 0; i < r->n_encounters; i++) {
        const Beacon__Scheduling__Encounter *e = r->encounters[i];
        bc_audit_event_t ev = {.site_id = e->site_id, .action = BC_AUDIT_READ,
                               .resource_type = "encounter", .resource_id = e->id,
                               .client_id = e->client_id, .purpose = "treatment"};
        if (bc_call_audit_read(call, &ev) < 0)
            return call->err.code;
    }
    *out = &r->base;
    return BC_OK;
}
