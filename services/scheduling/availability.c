/*  availability: a staff member's weekly working hours at each site (in the
 *  site's local time) and their time off. Booking checks both
 *  (appointments.c): time off always blocks; hours block only for someone
 *  who has hours at that site. Staff set their own; supervisors anyone's
 *  at their sites. Not client data: changes are not audited as PHI. Also
 *  who may be scheduled: the staff_id a request names (sched_staff_arg) and
 *  whether they work at a site (sched_staff_at_site). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"
#include "scheduling.h"

static const char *const s_days[] = {"monday", "tuesday", "wednesday", "thursday",
                                     "friday", "saturday", "sunday"};

static int s_weekday(const char *name)
{
    for (int i = 0; i < 7; i++)
        if (!strcmp(name, s_days[i]))
            return i;
    return -1;
}

/* "HH:MM" (00:00-24:00) into minutes, or -1. */
static int s_clock(const char *text)
{
    if (strlen(text) != 5 || text[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (text[i] < '0' || text[i] > '9'))
            return -1;
    int h = (text[0] - '0') * 10 + text[1] - '0', m = (text[3] - '0') * 10 + text[4] - '0';
    if (m > 59 || h > 24 || (h == 24 && m))
        return -1;
    return h * 60 + m;
}

const char *sched_staff_arg(bc_call_t *call, const char *staff_id, const char *field)
{
    const char *me = call->principal->staff_id;
    if (!*staff_id || !strcmp(staff_id, "me") || !strcmp(staff_id, me)) {
        if (!bc_is_uuid(me)) {
            bc_call_fail(call, BC_PERMISSION_DENIED, field, "only staff members have schedules");
            return NULL;
        }
        return me;
    }
    if (!bc_is_uuid(staff_id)) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, field, "%s must be a UUID or \"me\"", field);
        return NULL;
    }
    if (!bc_call_has_role(call, "supervisor")) {
        bc_call_fail(call, BC_PERMISSION_DENIED, field,
                     "only a supervisor manages another staff member's schedule");
        return NULL;
    }
    return staff_id;
}

int sched_staff_at_site(bc_call_t *call, const char *staff_id, const char *site_id)
{
    const char *params[] = {staff_id, site_id, call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "sched_staff_at_site",
                                   "SELECT 1 FROM identity.staff_site_directory "
                                   "WHERE staff_id = $1 AND site_id = $2 AND agency_id = $3",
                                   3, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    int found = PQntuples(res) > 0;
    PQclear(res);
    return found;
}

static bc_code_t s_reply(bc_call_t *call, const char *staff_id, ProtobufCMessage **out)
{
    const char *params[] = {staff_id, call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "sched_hours_get",
        "SELECT w.site_id::text, d.time_zone, w.weekday, to_char(w.starts, 'HH24:MI'), "
        "CASE WHEN w.ends = '24:00' THEN '24:00' ELSE to_char(w.ends, 'HH24:MI') END "
        "FROM scheduling.working_hours w JOIN identity.site_directory d ON d.site_id = w.site_id "
        "WHERE w.staff_id = $1 AND w.agency_id = $2 ORDER BY w.site_id, w.weekday, w.starts",
        2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Scheduling__Availability *a = bc_arena_alloc(call->arena, sizeof *a);
    beacon__scheduling__availability__init(a);
    a->staff_id = bc_arena_strdup(call->arena, staff_id);
    int rows = PQntuples(res);
    a->sites = bc_arena_alloc(call->arena, (rows ? rows : 1) * sizeof(void *));
    Beacon__Scheduling__Availability__SiteHours *cur = NULL;
    for (int i = 0; i < rows; i++) {
        if (!cur || strcmp(cur->site_id, PQgetvalue(res, i, 0))) {
            cur = bc_arena_alloc(call->arena, sizeof *cur);
            beacon__scheduling__availability__site_hours__init(cur);
            cur->site_id = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
            cur->time_zone = bc_arena_strdup(call->arena, PQgetvalue(res, i, 1));
            cur->hours = bc_arena_alloc(call->arena, (size_t)rows * sizeof(void *));
            a->sites[a->n_sites++] = cur;
        }
        Beacon__Scheduling__WorkingHours *h = bc_arena_alloc(call->arena, sizeof *h);
        beacon__scheduling__working_hours__init(h);
        h->weekday = (char *)s_days[atoi(PQgetvalue(res, i, 2)) % 7];
        h->start = bc_arena_strdup(call->arena, PQgetvalue(res, i, 3));
        h->end = bc_arena_strdup(call->arena, PQgetvalue(res, i, 4));
        cur->hours[cur->n_hours++] = h;
    }
    PQclear(res);
    res = bc_db_prepared(call->db, "sched_time_off_get",
                         "SELECT id::text, " SCHED_US("starts_at") ", " SCHED_US("ends_at")
                         ", kind, coalesce(note, '') FROM scheduling.time_off "
                         "WHERE staff_id = $1 AND agency_id = $2 AND ends_at > now() "
                         "ORDER BY starts_at LIMIT 200",
                         2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    a->n_time_off = (size_t)PQntuples(res);
    a->time_off = bc_arena_alloc(call->arena, (a->n_time_off ? a->n_time_off : 1) * sizeof(void *));
    for (size_t i = 0; i < a->n_time_off; i++) {
        Beacon__Scheduling__TimeOff *t = bc_arena_alloc(call->arena, sizeof *t);
        beacon__scheduling__time_off__init(t);
        int r = (int)i;
        t->id = bc_arena_strdup(call->arena, PQgetvalue(res, r, 0));
        t->start = sched_time_value(call, res, r, 1);
        t->end = sched_time_value(call, res, r, 2);
        t->kind = bc_arena_strdup(call->arena, PQgetvalue(res, r, 3));
        t->note = bc_arena_strdup(call->arena, PQgetvalue(res, r, 4));
        a->time_off[i] = t;
    }
    PQclear(res);
    *out = &a->base;
    return BC_OK;
}

bc_code_t availability_set_hours(bc_call_t *call, const ProtobufCMessage *in,
                                 ProtobufCMessage **out)
{
    const Beacon__Scheduling__SetWorkingHoursRequest *req =
        (const Beacon__Scheduling__SetWorkingHoursRequest *)in;
    const char *staff = sched_staff_arg(call, req->staff_id, "staff_id");
    if (!staff)
        return call->err.code;
    if (!bc_is_uuid(req->site_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    if (!bc_call_has_site(call, req->site_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "site_id", "not one of your sites");
    if (req->n_hours > 28)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "hours", "at most 28 periods a week");
    /* Periods of one day must not overlap. */
    int span[28][3];
    for (size_t i = 0; i < req->n_hours; i++) {
        const Beacon__Scheduling__WorkingHours *h = req->hours[i];
        char field[32];
        int day = s_weekday(h->weekday), from = s_clock(h->start), to = s_clock(h->end);
        snprintf(field, sizeof field, "hours[%zu]", i);
        if (day < 0)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, field,
                                "weekday must be monday to sunday");
        if (from < 0 || to < 0 || to <= from)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, field,
                                "start and end must be HH:MM with end after start");
        for (size_t k = 0; k < i; k++)
            if (span[k][0] == day && from < span[k][2] && span[k][1] < to)
                return bc_call_fail(call, BC_INVALID_ARGUMENT, field,
                                    "overlaps another period on %s", h->weekday);
        span[i][0] = day;
        span[i][1] = from;
        span[i][2] = to;
    }
    int at_site = sched_staff_at_site(call, staff, req->site_id);
    if (at_site < 0)
        return call->err.code;
    if (!at_site)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "staff_id",
                            "staff member %s does not work at site %s", staff, req->site_id);
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    const char *dp[] = {staff, req->site_id};
    if (bc_db_defer(call->db, "sched_hours_clear",
                    "DELETE FROM scheduling.working_hours WHERE staff_id = $1 AND site_id = $2",
                    2, dp, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    for (size_t i = 0; i < req->n_hours; i++) {
        char day[16], from[24], to[24];
        snprintf(day, sizeof day, "%d", span[i][0]);
        snprintf(from, sizeof from, "%02d:%02d", span[i][1] / 60, span[i][1] % 60);
        snprintf(to, sizeof to, "%02d:%02d", span[i][2] / 60, span[i][2] % 60);
        const char *ip[] = {call->principal->agency_id, staff, req->site_id, day, from, to,
                            call->principal->staff_id};
        if (bc_db_defer(call->db, "sched_hours_add",
                        "INSERT INTO scheduling.working_hours (agency_id, staff_id, site_id, "
                        "weekday, starts, ends, set_by) VALUES ($1, $2, $3, $4::smallint, "
                        "$5::time, $6::time, $7)",
                        7, ip, NULL, NULL, &err) < 0)
            return bc_call_fail_err(call, &err);
    }
    if (bc_call_commit(call) < 0)
        return call->err.code;
    return s_reply(call, staff, out);
}

bc_code_t availability_add_time_off(bc_call_t *call, const ProtobufCMessage *in,
                                    ProtobufCMessage **out)
{
    const Beacon__Scheduling__AddTimeOffRequest *req =
        (const Beacon__Scheduling__AddTimeOffRequest *)in;
    const char *staff = sched_staff_arg(call, req->staff_id, "staff_id");
    if (!staff)
        return call->err.code;
    const char *kind = *req->kind ? req->kind : "leave";
    if (strcmp(kind, "leave") && strcmp(kind, "sick") && strcmp(kind, "training") &&
        strcmp(kind, "other"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "kind",
                            "kind must be one of leave, sick, training, other");
    const char *problem = bc_text_problem(req->note, false, 500);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "note", "note %s", problem);
    int64_t t[2];
    const char *v[] = {req->start, req->end}, *f[] = {"start", "end"};
    for (int i = 0; i < 2; i++)
        if (sched_parse_instant(v[i], &t[i]))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, f[i],
                                "%s must be an RFC 3339 time with its offset", f[i]);
    if (t[1] <= t[0])
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "end", "the end must be after the start");
    if (t[1] - t[0] > INT64_C(366) * 86400 * 1000000)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "end", "time off lasts at most a year");
    char start[40], end[40];
    sched_sql_instant(t[0], start);
    sched_sql_instant(t[1], end);
    const char *params[] = {call->principal->agency_id, staff, start, end, kind,
                            *req->note ? req->note : NULL, call->principal->staff_id};
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0 ||
        bc_db_defer(call->db, "sched_time_off_add",
                    "INSERT INTO scheduling.time_off (agency_id, staff_id, starts_at, ends_at, "
                    "kind, note, created_by) VALUES ($1, $2, $3::timestamptz, $4::timestamptz, "
                    "$5, $6, $7)",
                    7, params, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    if (bc_call_commit(call) < 0)
        return call->err.code;
    return s_reply(call, staff, out);
}

bc_code_t availability_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__GetAvailabilityRequest *req =
        (const Beacon__Scheduling__GetAvailabilityRequest *)in;
    const char *me = call->principal->staff_id;
    const char *staff = !*req->staff_id || !strcmp(req->staff_id, "me") ? me : req->staff_id;
    if (!bc_is_uuid(staff))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "staff_id",
                            "staff_id must be a UUID or \"me\"");
    return s_reply(call, staff, out);
}
