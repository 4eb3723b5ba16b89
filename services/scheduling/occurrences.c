/*  occurrences: the meetings of a group session. One can be moved, given
 *  another room or stand-in facilitators, cancelled or restored on its own
 *  (it is then "edited" and later changes to the series leave it alone);
 *  attendance is taken per occurrence for clients on the roster; completing
 *  it records an encounter per attending client (present, late, left early),
 *  with the minutes each was there. Views list occurrences by site, group or
 *  facilitator over a window of up to 92 days.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"
#include "recurrence.h"
#include "scheduling.h"

#define S_ATTENDANCE_MAX 200
#define S_LIST_DEFAULT 500
#define S_LIST_MAX 5000
#define S_WINDOW_MAX_DAYS 92
/* Attendance other than "excused" is taken from shortly before the start. */
#define S_EARLY_US (INT64_C(15) * 60 * 1000000)

static const char *const s_attendance[] = {"present", "late", "left_early", "absent", "excused",
                                           NULL};

#define S_OCC_COLUMNS                                                                             \
    "o.id::text, o.group_id::text, o.site_id::text, g.title, g.topic, o.local_date::text, "       \
    SCHED_US("o.starts_at") ", " SCHED_US("o.ends_at") ", "                                        \
    "to_char(o.starts_at AT TIME ZONE d.time_zone, 'YYYY-MM-DD\"T\"HH24:MI'), d.time_zone, "      \
    "coalesce(o.location_id::text, ''), o.facilitator_ids::text, g.mode, o.status, "              \
    "coalesce(o.status_reason, ''), o.edited, o.version, g.capacity"
/* ... and the series' facilitators, for who may run it */
#define S_OCC_COLUMNS_FULL S_OCC_COLUMNS ", g.facilitator_ids::text"
#define S_OCC_FROM                                                                                \
    " FROM scheduling.group_occurrences o JOIN scheduling.groups g ON g.id = o.group_id"          \
    " JOIN identity.site_directory d ON d.site_id = o.site_id"

typedef struct {
    Beacon__Scheduling__GroupOccurrence *o;
    char **series_facilitators; /* the series', for who runs it */
    size_t n_series_facilitators;
} s_occ_t;

static Beacon__Scheduling__GroupOccurrence *s_from_row(bc_call_t *call, PGresult *res, int row,
                                                       s_occ_t *full)
{
    Beacon__Scheduling__GroupOccurrence *o = bc_arena_alloc(call->arena, sizeof *o);
    beacon__scheduling__group_occurrence__init(o);
    char **text[] = {&o->id,   &o->group_id, &o->site_id, &o->title, &o->topic, &o->date,
                     NULL,     NULL,         &o->start_local, &o->time_zone, &o->location_id};
    for (int c = 0; c < (int)(sizeof text / sizeof *text); c++)
        if (text[c])
            *text[c] = bc_arena_strdup(call->arena, PQgetvalue(res, row, c));
    o->start = sched_time_value(call, res, row, 6);
    o->end = sched_time_value(call, res, row, 7);
    o->facilitator_ids = sched_uuid_array(call, PQgetvalue(res, row, 11), &o->n_facilitator_ids);
    o->mode = bc_arena_strdup(call->arena, PQgetvalue(res, row, 12));
    o->status = bc_arena_strdup(call->arena, PQgetvalue(res, row, 13));
    o->status_reason = bc_arena_strdup(call->arena, PQgetvalue(res, row, 14));
    o->edited = PQgetvalue(res, row, 15)[0] == 't';
    o->version = atoi(PQgetvalue(res, row, 16));
    o->capacity = atoi(PQgetvalue(res, row, 17));
    if (full) {
        full->o = o;
        full->series_facilitators =
            sched_uuid_array(call, PQgetvalue(res, row, 18), &full->n_series_facilitators);
    }
    return o;
}

/* The occurrence in the caller's scope; for a change (lock) also the
 * transaction, the row lock, the version and the right to run it. */
static int s_load(bc_call_t *call, const char *id, bool lock, int expected_version, s_occ_t *out)
{
    if (!bc_is_uuid(id)) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
        return -1;
    }
    bc_error_t err;
    if (lock && bc_db_begin(call->db, &err) < 0) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    const char *params[] = {id, call->principal->agency_id};
    PGresult *res =
        lock ? bc_db_prepared(call->db, "sched_occ_lock",
                              "SELECT " S_OCC_COLUMNS_FULL S_OCC_FROM
                              " WHERE o.id = $1 AND o.agency_id = $2 FOR UPDATE OF o",
                              2, params, &err)
             : bc_db_prepared(call->db, "sched_occ_get",
                              "SELECT " S_OCC_COLUMNS_FULL S_OCC_FROM
                              " WHERE o.id = $1 AND o.agency_id = $2",
                              2, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    bool found = PQntuples(res) == 1;
    if (found)
        s_from_row(call, res, 0, out);
    PQclear(res);
    if (!found && lock && s_load(call, id, false, 0, out) == 0) {
        /* Readable but not changeable by the caller (row security's
         * UPDATE policy also filters SELECT ... FOR UPDATE). */
        bc_call_fail(call, BC_PERMISSION_DENIED, "id",
                     "only the group's facilitators and supervisors run its sessions");
        return -1;
    }
    if (!found) {
        bc_call_fail(call, BC_NOT_FOUND, "id", "no group occurrence with id %s", id);
        return -1;
    }
    if (!lock)
        return 0;
    if (!sched_runs_group(call, out->o->facilitator_ids, out->o->n_facilitator_ids) &&
        !sched_runs_group(call, out->series_facilitators, out->n_series_facilitators)) {
        bc_call_fail(call, BC_PERMISSION_DENIED, "id",
                     "only the group's facilitators and supervisors run its sessions");
        return -1;
    }
    if (expected_version && expected_version != out->o->version) {
        bc_call_fail(call, BC_STALE, "expected_version",
                     "the occurrence was changed since you read it (now version %d)",
                     out->o->version);
        return -1;
    }
    return 0;
}

/* The attendance the caller may see, each row audited as a read. */
static bc_code_t s_attendance_rows(bc_call_t *call, Beacon__Scheduling__GroupOccurrence *o)
{
    const char *params[] = {o->id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "sched_attendance",
        "SELECT a.client_id::text, a.status, coalesce(" SCHED_US("a.arrived_at") ", 0), "
        "coalesce(" SCHED_US("a.left_at") ", 0), coalesce(e.id::text, ''), "
        SCHED_US("a.recorded_at") ", a.recorded_by::text "
        "FROM scheduling.group_attendance a LEFT JOIN scheduling.encounters e "
        "ON e.group_occurrence_id = a.occurrence_id AND e.client_id = a.client_id "
        "WHERE a.occurrence_id = $1 ORDER BY a.client_id",
        1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int n = PQntuples(res);
    o->attendance = bc_arena_alloc(call->arena, (size_t)(n ? n : 1) * sizeof *o->attendance);
    o->n_attendance = 0;
    for (int i = 0; i < n; i++) {
        Beacon__Scheduling__Attendance *a = bc_arena_alloc(call->arena, sizeof *a);
        beacon__scheduling__attendance__init(a);
        a->client_id = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        a->status = bc_arena_strdup(call->arena, PQgetvalue(res, i, 1));
        a->arrived = sched_us_value(res, i, 2) ? sched_time_value(call, res, i, 2) : "";
        a->left = sched_us_value(res, i, 3) ? sched_time_value(call, res, i, 3) : "";
        a->encounter_id = bc_arena_strdup(call->arena, PQgetvalue(res, i, 4));
        a->recorded_at = sched_time_value(call, res, i, 5);
        a->recorded_by = bc_arena_strdup(call->arena, PQgetvalue(res, i, 6));
        o->attendance[o->n_attendance++] = a;
    }
    PQclear(res);
    for (size_t i = 0; i < o->n_attendance; i++) {
        bc_audit_event_t ev = {.site_id = o->site_id, .action = BC_AUDIT_READ,
                               .resource_type = "group_attendance", .resource_id = o->id,
                               .client_id = o->attendance[i]->client_id, .purpose = "treatment"};
        if (bc_call_audit_read(call, &ev) < 0)
            return call->err.code;
    }
    return BC_OK;
}

/* Re-reads the occurrence (inside the change's transaction) with its
 * attendance, for the reply. */
static Beacon__Scheduling__GroupOccurrence *s_reload(bc_call_t *call, const char *id)
{
    s_occ_t occ;
    if (s_load(call, id, false, 0, &occ) < 0 || s_attendance_rows(call, occ.o) != BC_OK)
        return NULL;
    return occ.o;
}

bc_code_t occurrences_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__GetGroupOccurrenceRequest *req =
        (const Beacon__Scheduling__GetGroupOccurrenceRequest *)in;
    Beacon__Scheduling__GroupOccurrence *o = s_reload(call, req->id);
    if (!o)
        return call->err.code;
    *out = &o->base;
    return BC_OK;
}

static int s_emit(bc_call_t *call, const char *topic, const Beacon__Scheduling__GroupOccurrence *o,
                  const char *reason, const Beacon__Scheduling__Encounter *e)
{
    Beacon__Scheduling__SchedulingEvent ev = BEACON__SCHEDULING__SCHEDULING_EVENT__INIT;
    ev.agency_id = (char *)call->principal->agency_id;
    ev.site_id = o->site_id;
    ev.group_id = o->group_id;
    ev.occurrence_id = o->id;
    ev.start = e ? e->start : o->start;
    ev.end = e ? e->end : o->end;
    ev.status = o->status;
    ev.reason = (char *)(reason ? reason : "");
    ev.mode = e ? e->mode : o->mode;
    ev.is_group = true;
    if (e) {
        ev.client_id = e->client_id;
        ev.staff_id = e->staff_id;
        ev.encounter_id = e->id;
        ev.minutes = e->minutes;
        ev.place_of_service = e->place_of_service;
    }
    return bc_call_emit(call, topic, &ev.base);
}

bc_code_t occurrences_update(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__UpdateGroupOccurrenceRequest *req =
        (const Beacon__Scheduling__UpdateGroupOccurrenceRequest *)in;
    if (*req->status && strcmp(req->status, "cancelled") && strcmp(req->status, "scheduled"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "status must be cancelled or scheduled (restore a cancelled one); "
                            "completed: complete the occurrence");
    bool cancel = !strcmp(req->status, "cancelled");
    const char *problem = bc_text_problem(req->reason, cancel, 500);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason", "reason %s%s", problem,
                            cancel ? " (cancelling needs a reason)" : "");
    bool moves = *req->start || *req->end || *req->start_local || *req->end_local;
    if (cancel && (moves || *req->location_id || req->n_facilitator_ids))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "cancel an occurrence on its own, without other changes");
    bc_code_t code = sched_check_override(call, req->override_conflicts, req->override_reason);
    if (code != BC_OK)
        return code;
    s_occ_t occ;
    if (s_load(call, req->id, true, req->expected_version, &occ) < 0)
        return call->err.code;
    Beacon__Scheduling__GroupOccurrence *o = occ.o;
    bool restore = !strcmp(req->status, "scheduled") && !strcmp(o->status, "cancelled");
    if (strcmp(o->status, "scheduled") && !restore)
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "id",
                            "only a scheduled occurrence can be changed (this one is %s)",
                            o->status);
    if (restore && (moves || *req->location_id || req->n_facilitator_ids))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "restore the occurrence first, then change it");
    int64_t start_us, end_us;
    sched_parse_instant(o->start, &start_us);
    sched_parse_instant(o->end, &end_us);
    if (moves && (code = sched_meeting_times(call, o->time_zone, "", req->start, req->end,
                                             req->start_local, req->end_local,
                                             sched_max_minutes(call), &start_us, &end_us)) !=
                     BC_OK)
        return code;
    int64_t now_us = bc_now_ms() * 1000;
    if ((moves || restore) && start_us <= now_us)
        return bc_call_fail(call, BC_FAILED_PRECONDITION, moves ? "start" : "status",
                            "an occurrence is moved or restored into the future only");
    const char *location = *req->location_id ? req->location_id
                           : *o->location_id  ? o->location_id
                                              : NULL;
    if (*req->location_id && (code = sched_check_location(call, location, o->site_id)) != BC_OK)
        return code;
    /* Stand-ins for this session: the caller need not be one of them. */
    char *facilitators = NULL;
    if (req->n_facilitator_ids &&
        !(facilitators = sched_facilitators(call, req->facilitator_ids, req->n_facilitator_ids,
                                            o->site_id, false)))
        return call->err.code;
    char start[40], end[40];
    sched_sql_instant(start_us, start);
    sched_sql_instant(end_us, end);
    const char *status = cancel ? "cancelled" : "scheduled";
    const char *params[] = {o->id,      start,  end,    location, facilitators,
                            status,     *req->reason ? req->reason : NULL,
                            call->principal->staff_id};
    bc_error_t err;
    if (bc_db_defer(call->db, "sched_occ_update",
                    "UPDATE scheduling.group_occurrences SET starts_at = $2::timestamptz, "
                    "ends_at = $3::timestamptz, location_id = $4::uuid, "
                    "facilitator_ids = coalesce($5::uuid[], facilitator_ids), status = $6, "
                    "status_reason = $7, edited = true, version = version + 1, updated_by = $8, "
                    "updated_at = now() WHERE id = $1",
                    8, params, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    if (!cancel && (code = sched_group_conflicts(call, NULL, o->id, req->override_conflicts)) !=
                       BC_OK)
        return code;
    Beacon__Scheduling__GroupOccurrence *b = s_reload(call, o->id);
    if (!b || (cancel && s_emit(call, "group_occurrence.cancelled", b, req->reason, NULL) < 0) ||
        bc_call_commit(call) < 0)
        return call->err.code;
    *out = &b->base;
    return BC_OK;
}

/* Appends v (NULL = SQL NULL) to a PostgreSQL array literal being built. */
static void s_array_add(char *buf, size_t size, size_t *used, const char *v)
{
    int w = snprintf(buf + *used, size - *used, "%s%s%s%s", *used > 1 ? "," : "",
                     v ? "\"" : "", v ? v : "NULL", v ? "\"" : "");
    if (w > 0)
        *used += (size_t)w;
}

bc_code_t occurrences_attendance(bc_call_t *call, const ProtobufCMessage *in,
                                 ProtobufCMessage **out)
{
    const Beacon__Scheduling__RecordAttendanceRequest *req =
        (const Beacon__Scheduling__RecordAttendanceRequest *)in;
    size_t n = req->n_attendance;
    if (n == 0)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "attendance",
                            "attendance is required: one entry per client");
    if (n > S_ATTENDANCE_MAX)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "attendance",
                            "at most %d entries at once", S_ATTENDANCE_MAX);
    bool only_excused = true;
    for (size_t i = 0; i < n; i++) {
        const Beacon__Scheduling__Attendance *a = req->attendance[i];
        char field[48];
        snprintf(field, sizeof field, "attendance[%zu]", i);
        const char *f = bc_arena_strdup(call->arena, field);
        if (!bc_is_uuid(a->client_id))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, f, "%s.client_id must be a UUID", f);
        for (size_t j = 0; j < i; j++)
            if (!strcasecmp(a->client_id, req->attendance[j]->client_id))
                return bc_call_fail(call, BC_INVALID_ARGUMENT, f, "client %s is listed twice",
                                    a->client_id);
        if (!sched_one_of(a->status, s_attendance))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, f,
                                "%s.status must be present, late, left_early, absent or excused",
                                f);
        if (*a->arrived && strcmp(a->status, "late"))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, f, "%s.arrived goes with late", f);
        if (*a->left && strcmp(a->status, "left_early"))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, f, "%s.left goes with left_early", f);
        int64_t t;
        if ((*a->arrived && sched_parse_instant(a->arrived, &t)) ||
            (*a->left && sched_parse_instant(a->left, &t)))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, f,
                                "%s: arrived and left are RFC 3339 times", f);
        if (strcmp(a->status, "excused"))
            only_excused = false;
    }
    s_occ_t occ;
    if (s_load(call, req->id, true, req->expected_version, &occ) < 0)
        return call->err.code;
    Beacon__Scheduling__GroupOccurrence *o = occ.o;
    if (strcmp(o->status, "scheduled"))
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "id",
                            "attendance is taken for a scheduled occurrence (this one is %s)",
                            o->status);
    int64_t start_us, end_us;
    sched_parse_instant(o->start, &start_us);
    sched_parse_instant(o->end, &end_us);
    if (!only_excused && bc_now_ms() * 1000 < start_us - S_EARLY_US)
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "attendance",
                            "the session has not started: only excused absences are recorded "
                            "ahead");
    /* Arrays for one statement: clients, statuses, arrival and leaving. */
    size_t size = n * 48 + 8;
    char *clients = bc_arena_alloc(call->arena, size), *statuses = bc_arena_alloc(call->arena, size),
         *arrived = bc_arena_alloc(call->arena, size), *left = bc_arena_alloc(call->arena, size);
    size_t uc = 1, us = 1, ua = 1, ul = 1;
    strcpy(clients, "{");
    strcpy(statuses, "{");
    strcpy(arrived, "{");
    strcpy(left, "{");
    for (size_t i = 0; i < n; i++) {
        const Beacon__Scheduling__Attendance *a = req->attendance[i];
        char f[48], sa[40] = "", sl[40] = "";
        snprintf(f, sizeof f, "attendance[%zu]", i);
        int64_t t;
        if (*a->arrived) {
            sched_parse_instant(a->arrived, &t);
            if (t < start_us || t >= end_us)
                return bc_call_fail(call, BC_INVALID_ARGUMENT, bc_arena_strdup(call->arena, f),
                                    "%s.arrived must fall within the session (%s to %s)", f,
                                    o->start, o->end);
            sched_sql_instant(t, sa);
        }
        if (*a->left) {
            sched_parse_instant(a->left, &t);
            if (t <= start_us || t > end_us)
                return bc_call_fail(call, BC_INVALID_ARGUMENT, bc_arena_strdup(call->arena, f),
                                    "%s.left must fall within the session (%s to %s)", f,
                                    o->start, o->end);
            sched_sql_instant(t, sl);
        }
        s_array_add(clients, size, &uc, a->client_id);
        s_array_add(statuses, size, &us, a->status);
        s_array_add(arrived, size, &ua, *sa ? sa : NULL);
        s_array_add(left, size, &ul, *sl ? sl : NULL);
    }
    strcat(clients, "}");
    strcat(statuses, "}");
    strcat(arrived, "}");
    strcat(left, "}");
    /* Only clients on the roster at the time of the session. */
    const char *rp[] = {o->group_id, clients, o->start};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "sched_attendance_roster",
        "SELECT c::text FROM unnest($2::uuid[]) c WHERE NOT EXISTS ("
        " SELECT FROM scheduling.group_roster r WHERE r.group_id = $1 AND r.client_id = c"
        " AND (r.left_at IS NULL OR r.left_at > $3::timestamptz)) LIMIT 1",
        3, rp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res)) {
        bc_code_t code = bc_call_fail(call, BC_FAILED_PRECONDITION, "attendance",
                                      "client %s is not on the group's roster for this session: "
                                      "enrol them first",
                                      PQgetvalue(res, 0, 0));
        PQclear(res);
        return code;
    }
    PQclear(res);
    const char *ap[] = {o->id,      o->group_id, call->principal->agency_id, o->site_id, clients,
                        statuses,   arrived,     left, call->principal->staff_id};
    const char *vp[] = {o->id, call->principal->staff_id};
    if (bc_db_defer(call->db, "sched_attendance_upsert",
                    "INSERT INTO scheduling.group_attendance AS a (occurrence_id, group_id, "
                    "agency_id, site_id, client_id, status, arrived_at, left_at, recorded_by) "
                    "SELECT $1, $2, $3, $4, c, s, ar, l, $9 FROM unnest($5::uuid[], $6::text[], "
                    "$7::timestamptz[], $8::timestamptz[]) x(c, s, ar, l) "
                    "ON CONFLICT (occurrence_id, client_id) DO UPDATE SET status = excluded.status, "
                    "arrived_at = excluded.arrived_at, left_at = excluded.left_at, "
                    "recorded_by = excluded.recorded_by, recorded_at = now()",
                    9, ap, NULL, NULL, &err) < 0 ||
        bc_db_defer(call->db, "sched_occ_touch",
                    "UPDATE scheduling.group_occurrences SET version = version + 1, "
                    "updated_by = $2, updated_at = now() WHERE id = $1",
                    2, vp, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    for (size_t i = 0; i < n; i++) {
        bc_audit_event_t ev = {.site_id = o->site_id, .action = BC_AUDIT_UPDATE,
                               .resource_type = "group_attendance", .resource_id = o->id,
                               .client_id = req->attendance[i]->client_id,
                               .purpose = "treatment"};
        if (bc_call_audit_write(call, &ev) < 0)
            return call->err.code;
    }
    Beacon__Scheduling__GroupOccurrence *b = s_reload(call, o->id);
    if (!b || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &b->base;
    return BC_OK;
}

bc_code_t occurrences_complete(bc_call_t *call, const ProtobufCMessage *in,
                               ProtobufCMessage **out)
{
    const Beacon__Scheduling__CompleteGroupOccurrenceRequest *req =
        (const Beacon__Scheduling__CompleteGroupOccurrenceRequest *)in;
    if (*req->place_of_service && !sched_one_of(req->place_of_service, sched_places))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "place_of_service",
                            "place_of_service must be a CMS code Beacon knows: 02, 10, 11, 12, "
                            "53, 57 or 99");
    s_occ_t occ;
    if (s_load(call, req->id, true, req->expected_version, &occ) < 0)
        return call->err.code;
    Beacon__Scheduling__GroupOccurrence *o = occ.o;
    if (strcmp(o->status, "scheduled"))
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "id",
                            "only a scheduled occurrence can be completed (this one is %s)",
                            o->status);
    int64_t start_us, end_us;
    bc_code_t code;
    if ((code = sched_meeting_times(call, o->time_zone, "actual_",
                                    *req->actual_start ? req->actual_start : o->start,
                                    *req->actual_end ? req->actual_end : o->end, "", "",
                                    sched_max_minutes(call), &start_us, &end_us)) != BC_OK)
        return code;
    if (end_us > (bc_now_ms() + 5 * 60 * 1000) * 1000)
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "actual_end",
                            "a session is completed once it has ended");
    char s_start[40], s_end[40];
    sched_sql_instant(start_us, s_start);
    sched_sql_instant(end_us, s_end);
    /* Everyone on the roster has attendance, and every attendee was there
     * for some of the actual session. */
    const char *cp[] = {o->id, o->group_id, s_start, s_end, o->start};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "sched_complete_check",
        "SELECT 'missing', r.client_id::text FROM scheduling.group_roster r"
        " WHERE r.group_id = $2 AND (r.left_at IS NULL OR r.left_at > $5::timestamptz)"
        " AND NOT EXISTS (SELECT FROM scheduling.group_attendance a"
        "                 WHERE a.occurrence_id = $1 AND a.client_id = r.client_id)"
        " UNION ALL "
        "SELECT 'outside', a.client_id::text FROM scheduling.group_attendance a"
        " WHERE a.occurrence_id = $1 AND a.status IN ('present', 'late', 'left_early')"
        " AND greatest(coalesce(a.arrived_at, $3::timestamptz), $3::timestamptz)"
        "  >= least(coalesce(a.left_at, $4::timestamptz), $4::timestamptz)"
        " LIMIT 1",
        5, cp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res)) {
        bool missing = !strcmp(PQgetvalue(res, 0, 0), "missing");
        code = bc_call_fail(call, BC_FAILED_PRECONDITION, "attendance",
                            missing ? "attendance is not recorded for client %s on the roster: "
                                      "record everyone's attendance first"
                                    : "client %s was not there during the actual session "
                                      "times: correct their attendance or the times",
                            PQgetvalue(res, 0, 1));
        PQclear(res);
        return code;
    }
    PQclear(res);
    const char *kind = sched_location_kind(call, o->location_id);
    if (!kind)
        return call->err.code;
    const char *pos = *req->place_of_service ? req->place_of_service
                                             : sched_place_of_service(o->mode, kind);
    /* The encounters' staff member: the caller when they ran it, else the
     * first facilitator. */
    const char *staff = o->facilitator_ids[0];
    for (size_t i = 0; i < o->n_facilitator_ids; i++)
        if (!strcmp(o->facilitator_ids[i], call->principal->staff_id))
            staff = o->facilitator_ids[i];
    for (size_t i = 0; i < occ.n_series_facilitators; i++)
        if (!strcmp(occ.series_facilitators[i], call->principal->staff_id))
            staff = occ.series_facilitators[i];
    const char *ep[] = {o->id, staff, s_start, s_end, o->mode, pos, call->principal->staff_id};
    res = bc_db_prepared(
        call->db, "sched_group_encounters",
        "WITH e AS (INSERT INTO scheduling.encounters (agency_id, site_id, client_id, staff_id, "
        "group_occurrence_id, starts_at, ends_at, mode, place_of_service, is_group, "
        "recorded_by) SELECT a.agency_id, a.site_id, a.client_id, $2, a.occurrence_id, "
        "greatest(coalesce(a.arrived_at, $3::timestamptz), $3::timestamptz), "
        "least(coalesce(a.left_at, $4::timestamptz), $4::timestamptz), $5, $6, true, $7 "
        "FROM scheduling.group_attendance a WHERE a.occurrence_id = $1 "
        "AND a.status IN ('present', 'late', 'left_early') RETURNING *) "
        "SELECT " SCHED_ENCOUNTER_COLUMNS " FROM e ORDER BY e.client_id",
        7, ep, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Scheduling__CompleteGroupOccurrenceReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__scheduling__complete_group_occurrence_reply__init(r);
    int n = PQntuples(res);
    r->encounters = bc_arena_alloc(call->arena, (size_t)(n ? n : 1) * sizeof *r->encounters);
    for (int i = 0; i < n; i++)
        r->encounters[r->n_encounters++] = sched_encounter_from_row(call, res, i);
    PQclear(res);
    const char *up[] = {o->id, call->principal->staff_id};
    if (bc_db_defer(call->db, "sched_occ_complete",
                    "UPDATE scheduling.group_occurrences SET status = 'completed', "
                    "version = version + 1, updated_by = $2, updated_at = now() WHERE id = $1",
                    2, up, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    o->status = "completed";
    for (size_t i = 0; i < r->n_encounters; i++) {
        const Beacon__Scheduling__Encounter *e = r->encounters[i];
        bc_audit_event_t ev = {.site_id = e->site_id, .action = BC_AUDIT_CREATE,
                               .resource_type = "encounter", .resource_id = e->id,
                               .client_id = e->client_id, .purpose = "treatment"};
        if (s_emit(call, "encounter.completed", o, NULL, e) < 0 ||
            bc_call_audit_write(call, &ev) < 0)
            return call->err.code;
    }
    if (!(r->occurrence = s_reload(call, o->id)) || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}

bc_code_t occurrences_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__ListGroupOccurrencesRequest *req =
        (const Beacon__Scheduling__ListGroupOccurrencesRequest *)in;
    if (*req->site_id && !bc_is_uuid(req->site_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    if (*req->group_id && !bc_is_uuid(req->group_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "group_id", "group_id must be a UUID");
    if (*req->site_id && !bc_call_has_site(call, req->site_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "site_id", "not one of your sites");
    const char *staff = NULL;
    if (*req->staff_id) {
        staff = !strcmp(req->staff_id, "me") ? call->principal->staff_id : req->staff_id;
        if (!bc_is_uuid(staff))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "staff_id",
                                "staff_id must be a UUID or \"me\"");
    }
    static const char *const statuses[] = {"scheduled", "cancelled", "completed", NULL};
    if (*req->status && !sched_one_of(req->status, statuses))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "status must be scheduled, cancelled or completed");
    if (req->limit < 0 || req->limit > S_LIST_MAX)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "limit", "limit must be 1 to %d",
                            S_LIST_MAX);
    int limit = req->limit ? req->limit : S_LIST_DEFAULT;
    int64_t win[2];
    bc_code_t code = sched_view_window(call, req->site_id, req->from, req->to, req->view,
                                       S_WINDOW_MAX_DAYS, win);
    if (code != BC_OK)
        return code;
    /* Every site of the caller unless one is named. */
    size_t sites_len = 3;
    for (size_t i = 0; i < call->principal->n_site_ids; i++)
        sites_len += strlen(call->principal->site_ids[i]) + 1;
    char *sites = bc_arena_alloc(call->arena, sites_len), *p = sites;
    *p++ = '{';
    if (*req->site_id)
        p += sprintf(p, "%s", req->site_id);
    else
        for (size_t i = 0; i < call->principal->n_site_ids; i++)
            p += sprintf(p, "%s%s", i ? "," : "", call->principal->site_ids[i]);
    strcpy(p, "}");
    char from[40], to[40], lim[16];
    sched_sql_instant(win[0], from);
    sched_sql_instant(win[1], to);
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {call->principal->agency_id, sites, from, to,
                            *req->group_id ? req->group_id : NULL, staff,
                            *req->status ? req->status : NULL, lim};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "sched_occ_list",
        "SELECT " S_OCC_COLUMNS S_OCC_FROM " WHERE o.agency_id = $1 AND o.site_id = ANY ($2::uuid[])"
        " AND o.starts_at >= $3::timestamptz AND o.starts_at < $4::timestamptz"
        " AND ($5::uuid IS NULL OR o.group_id = $5::uuid)"
        " AND ($6::uuid IS NULL OR $6::uuid = ANY (o.facilitator_ids))"
        " AND ($7::text IS NULL OR o.status = $7) ORDER BY o.starts_at, o.id LIMIT $8::int",
        8, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Scheduling__ListGroupOccurrencesReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__scheduling__list_group_occurrences_reply__init(r);
    int n = PQntuples(res);
    r->truncated = n > limit;
    if (r->truncated)
        n = limit;
    r->occurrences = bc_arena_alloc(call->arena, (size_t)(n ? n : 1) * sizeof *r->occurrences);
    for (int i = 0; i < n; i++)
        r->occurrences[r->n_occurrences++] = s_from_row(call, res, i, NULL);
    PQclear(res);
    r->from = bc_arena_alloc(call->arena, 32);
    r->to = bc_arena_alloc(call->arena, 32);
    sched_format_instant(win[0], r->from);
    sched_format_instant(win[1], r->to);
    *out = &r->base;
    return BC_OK;
}
