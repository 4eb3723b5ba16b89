/*  appointments: one-on-one meetings between a staff member and a client,
 *  their status workflow (FHIR Appointment.status), rescheduling with
 *  history, and completion, which records the encounter notes and billing
 *  build on.
 *
 *  Double bookings. Booking or moving a meeting first takes transaction
 *  advisory locks on the staff member, the client and the room (in a fixed
 *  order, so two bookings cannot deadlock), then looks for anything that
 *  blocks them in the time: the staff member's, the client's or the room's
 *  blocking appointments and group meetings (one the staff member
 *  facilitates, the client is on the roster of, the room holds), at any
 *  site, including ones the caller may not see (the check runs under the
 *  conflict_check purpose, whose row policies admit the agency's meetings
 *  for that one statement); the staff
 *  member's time off, and hours outside their working hours at the site
 *  (when they have any). Each is named in the refusal; a supervisor may
 *  book over them with a reason, which is kept on the appointment. Meetings
 *  last under 24 hours, so each check is a bounded index range scan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"
#include "scheduling.h"

#define S_REASON_MIN 3

const char *const sched_modes[] = {"in_person", "community", "telehealth_video", "telephone",
                                      NULL};

bool sched_one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(v, *set))
            return true;
    return false;
}

char *sched_time_value(bc_call_t *call, PGresult *res, int row, int col)
{
    char buf[32];
    sched_format_instant(sched_us_value(res, row, col), buf);
    return bc_arena_strdup(call->arena, buf);
}

Beacon__Scheduling__Appointment *sched_appointment_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Scheduling__Appointment *a = bc_arena_alloc(call->arena, sizeof *a);
    beacon__scheduling__appointment__init(a);
    char **text[] = {&a->id,        &a->client_id,  &a->staff_id, &a->site_id, &a->location_id,
                     NULL,          NULL,           &a->time_zone, &a->start_local, &a->mode,
                     &a->purpose,   &a->status,     &a->status_reason, &a->override_reason};
    for (int c = 0; c < (int)(sizeof text / sizeof *text); c++)
        if (text[c])
            *text[c] = bc_arena_strdup(call->arena, PQgetvalue(res, row, c));
    a->start = sched_time_value(call, res, row, 5);
    a->end = sched_time_value(call, res, row, 6);
    a->version = atoi(PQgetvalue(res, row, 14));
    a->created_at = sched_time_value(call, res, row, 15);
    a->updated_at = sched_time_value(call, res, row, 16);
    a->encounter_id = bc_arena_strdup(call->arena, PQgetvalue(res, row, 17));
    return a;
}

bc_audit_event_t sched_appointment_event(const Beacon__Scheduling__Appointment *a, const char *action)
{
    return (bc_audit_event_t){.site_id = a->site_id, .action = action,
                              .resource_type = "appointment", .resource_id = a->id,
                              .client_id = a->client_id, .purpose = "treatment"};
}

/* One of scheduling's events about a; e (NULL for none) is the encounter
 * its completion recorded. */
static int s_emit(bc_call_t *call, const char *topic, const Beacon__Scheduling__Appointment *a,
                  const char *reason, const Beacon__Scheduling__Encounter *e)
{
    Beacon__Scheduling__SchedulingEvent ev = BEACON__SCHEDULING__SCHEDULING_EVENT__INIT;
    ev.appointment_id = a->id;
    ev.agency_id = (char *)call->principal->agency_id;
    ev.site_id = a->site_id;
    ev.client_id = a->client_id;
    ev.staff_id = a->staff_id;
    ev.start = e ? e->start : a->start;
    ev.end = e ? e->end : a->end;
    ev.status = a->status;
    ev.reason = (char *)(reason ? reason : "");
    ev.mode = e ? e->mode : a->mode;
    if (e) {
        ev.encounter_id = e->id;
        ev.minutes = e->minutes;
        ev.place_of_service = e->place_of_service;
        ev.is_group = e->is_group;
    }
    return bc_call_emit(call, topic, &ev.base);
}

bc_code_t sched_client(bc_call_t *call, const char *client_id, sched_client_t *c)
{
    if (!bc_is_uuid(client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    const char *params[] = {client_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "sched_client_ref",
                                   "SELECT site_id::text, status, coalesce(merged_into::text, '') "
                                   "FROM intake.client_ref($1)",
                                   1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return bc_call_fail(call, BC_NOT_FOUND, "client_id", "no client with id %s", client_id);
    }
    snprintf(c->site_id, sizeof c->site_id, "%s", PQgetvalue(res, 0, 0));
    snprintf(c->status, sizeof c->status, "%s", PQgetvalue(res, 0, 1));
    char merged[40];
    snprintf(merged, sizeof merged, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    if (!strcmp(c->status, "merged"))
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "client_id",
                            "this record was merged into client %s: book with that one", merged);
    if (!strcmp(c->status, "discharged"))
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "client_id",
                            "the client is discharged: re-enroll them before booking");
    return BC_OK;
}

/* The meeting's people and room, locked, then checked for anything that
 * blocks the time. BC_OK when free (or overridden), else CONFLICT naming
 * what collides. Inside the caller's transaction. */
typedef struct {
    const char *staff_id, *client_id, *location_id, *site_id, *zone, *exclude_id;
    int64_t start_us, end_us;
    bool override;
} s_slot_t;

static bc_code_t s_check_slot(bc_call_t *call, const s_slot_t *s)
{
    char keys[200];
    snprintf(keys, sizeof keys, "{\"client:%s\",\"staff:%s\"%s%s%s}", s->client_id, s->staff_id,
             s->location_id ? ",\"location:" : "", s->location_id ? s->location_id : "",
             s->location_id ? "\"" : "");
    const char *lp[] = {keys};
    const char *on[] = {"beacon.purpose", "conflict_check"}, *off[] = {"beacon.purpose", ""};
    bc_error_t err;
    if (bc_db_defer(call->db, "sched_lock",
                    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                    "FROM unnest($1::text[]) k ORDER BY k",
                    1, lp, NULL, NULL, &err) < 0 ||
        bc_db_defer(call->db, "sched_purpose", "SELECT set_config($1, $2, true)", 2, on, NULL,
                    NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    char start[40], end[40];
    sched_sql_instant(s->start_us, start);
    sched_sql_instant(s->end_us, end);
    const char *params[] = {s->staff_id, s->client_id, s->location_id, start, end,
                            s->exclude_id, s->site_id, s->zone};
#define S_OVERLAP(alias)                                                                          \
    " AND scheduling.blocking(" alias ".status) AND " alias ".starts_at < $5::timestamptz"        \
    " AND " alias ".starts_at > $4::timestamptz - interval '24 hours'"                            \
    " AND " alias ".ends_at > $4::timestamptz AND " alias ".id IS DISTINCT FROM $6::uuid"
#define S_GROUP_OVERLAP                                                                           \
    " AND x.starts_at < $5::timestamptz AND x.starts_at > $4::timestamptz - interval '24 hours'" \
    " AND x.ends_at > $4::timestamptz"
    PGresult *res = bc_db_prepared(
        call->db, "sched_conflicts",
        "SELECT what, coalesce(id::text, ''), " SCHED_US("s") ", " SCHED_US("e") " FROM ("
        " (SELECT 'staff' AS what, a.id, a.starts_at AS s, a.ends_at AS e"
        "  FROM scheduling.appointments a WHERE a.staff_id = $1::uuid" S_OVERLAP("a") " LIMIT 3)"
        " UNION ALL"
        " (SELECT 'client', a.id, a.starts_at, a.ends_at"
        "  FROM scheduling.appointments a WHERE a.client_id = $2::uuid" S_OVERLAP("a") " LIMIT 3)"
        " UNION ALL"
        " (SELECT 'room', a.id, a.starts_at, a.ends_at FROM scheduling.appointments a"
        "  WHERE a.location_id = $3::uuid AND a.location_id IS NOT NULL" S_OVERLAP("a") " LIMIT 3)"
        " UNION ALL"
        " (SELECT 'staff_group', x.id, x.starts_at, x.ends_at FROM scheduling.group_occurrences x"
        "  WHERE x.facilitator_ids @> ARRAY[$1::uuid] AND x.status <> 'cancelled'" S_GROUP_OVERLAP
        "  LIMIT 3)"
        " UNION ALL"
        " (SELECT 'client_group', x.id, x.starts_at, x.ends_at FROM scheduling.group_roster r"
        "  JOIN scheduling.group_occurrences x ON x.group_id = r.group_id"
        "  WHERE r.client_id = $2::uuid AND r.left_at IS NULL AND x.status = 'scheduled'"
        S_GROUP_OVERLAP " LIMIT 3)"
        " UNION ALL"
        " (SELECT 'room_group', x.id, x.starts_at, x.ends_at FROM scheduling.group_occurrences x"
        "  WHERE x.location_id = $3::uuid AND x.status <> 'cancelled'" S_GROUP_OVERLAP " LIMIT 3)"
        " UNION ALL"
        " (SELECT 'time_off', t.id, t.starts_at, t.ends_at FROM scheduling.time_off t"
        "  WHERE t.staff_id = $1::uuid AND t.ends_at > $4::timestamptz"
        "  AND t.starts_at < $5::timestamptz LIMIT 1)"
        " UNION ALL"
        " (SELECT 'hours', NULL, $4::timestamptz, $5::timestamptz"
        "  WHERE EXISTS (SELECT FROM scheduling.working_hours w"
        "                WHERE w.staff_id = $1::uuid AND w.site_id = $7::uuid)"
        "  AND NOT EXISTS (SELECT FROM scheduling.working_hours w"
        "    WHERE w.staff_id = $1::uuid AND w.site_id = $7::uuid"
        "    AND w.weekday = extract(isodow FROM $4::timestamptz AT TIME ZONE $8)::int - 1"
        "    AND w.starts <= ($4::timestamptz AT TIME ZONE $8)::time"
        "    AND w.ends >= ($5::timestamptz AT TIME ZONE $8)::time"
        "    AND ($4::timestamptz AT TIME ZONE $8)::date"
        "        = (($5::timestamptz - interval '1 microsecond') AT TIME ZONE $8)::date))"
        ") c ORDER BY s, what",
        8, params, &err);
#undef S_OVERLAP
#undef S_GROUP_OVERLAP
    if (!res)
        return bc_call_fail_err(call, &err);
    int rows = PQntuples(res);
    char found[900] = "";
    size_t used = 0;
    for (int i = 0; i < rows; i++) {
        const char *what = PQgetvalue(res, i, 0), *id = PQgetvalue(res, i, 1);
        char from[32], to[32];
        sched_format_instant(sched_us_value(res, i, 2), from);
        sched_format_instant(sched_us_value(res, i, 3), to);
        const char *label = !strcmp(what, "staff")          ? "the staff member is booked"
                            : !strcmp(what, "client")       ? "the client is booked"
                            : !strcmp(what, "room")         ? "the room is booked"
                            : !strcmp(what, "staff_group")  ? "the staff member runs a group"
                            : !strcmp(what, "client_group") ? "the client's group meets"
                            : !strcmp(what, "room_group")   ? "the room holds a group"
                            : !strcmp(what, "time_off")     ? "the staff member is off"
                                                            : "outside the staff member's working hours";
        const char *kind = !strcmp(what, "time_off")  ? "time off"
                           : strstr(what, "_group")   ? "group occurrence"
                                                      : "appointment";
        int w = !strcmp(what, "hours")
                    ? snprintf(found + used, sizeof found - used, "%s%s", used ? "; " : "", label)
                    : snprintf(found + used, sizeof found - used, "%s%s %s to %s (%s %s)",
                               used ? "; " : "", label, from, to, kind, id);
        if (w > 0 && (size_t)w < sizeof found - used)
            used += (size_t)w;
    }
    PQclear(res);
    if (bc_db_defer(call->db, "sched_purpose", "SELECT set_config($1, $2, true)", 2, off, NULL,
                    NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    if (rows && !s->override)
        return bc_call_fail(call, BC_CONFLICT, "override_conflicts",
                            "the time is not free: %s. Choose another time, or a supervisor "
                            "may book over it with override_conflicts and override_reason",
                            found);
    return BC_OK;
}

/* override_conflicts/override_reason: only supervisors, always with a reason. */
bc_code_t sched_check_override(bc_call_t *call, bool override, const char *reason)
{
    if (!override) {
        if (*reason)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "override_reason",
                                "override_reason goes with override_conflicts: true");
        return BC_OK;
    }
    if (!bc_call_has_role(call, "supervisor"))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "override_conflicts",
                            "only a supervisor may book over a conflict");
    const char *problem = bc_text_problem(reason, true, 500);
    if (problem || strlen(reason) < S_REASON_MIN)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "override_reason",
                            "override_reason %s", problem ? problem : "must say why");
    return BC_OK;
}

/* The location, when given: one of the site's active ones. */
bc_code_t sched_check_location(bc_call_t *call, const char *location_id, const char *site_id)
{
    if (!bc_is_uuid(location_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "location_id",
                            "location_id must be a UUID");
    const char *params[] = {location_id, site_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "sched_location_at_site",
                                   "SELECT 1 FROM scheduling.locations "
                                   "WHERE id = $1 AND site_id = $2 AND active",
                                   2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bool found = PQntuples(res) == 1;
    PQclear(res);
    if (!found)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "location_id",
                            "no active location %s at the appointment's site", location_id);
    return BC_OK;
}

int sched_max_minutes(const bc_call_t *call)
{
    return (int)bc_config_int(call->config, "max_appointment_minutes");
}

/* Records a change of the appointment (deferred: it rides with the next
 * statement). */
static int s_record_change(bc_call_t *call, const Beacon__Scheduling__Appointment *a,
                           const char *kind, const char *from_start, const char *from_end,
                           const char *from_status, const char *reason)
{
    const char *params[] = {a->id,     call->principal->agency_id, a->site_id, a->staff_id,
                            call->principal->staff_id, kind, from_start, from_end, a->start,
                            a->end,    from_status, a->status, reason && *reason ? reason : NULL};
    bc_error_t err;
    if (bc_db_defer(call->db, "sched_change",
                    "INSERT INTO scheduling.appointment_changes (appointment_id, agency_id, "
                    "site_id, staff_id, changed_by, kind, from_starts_at, from_ends_at, "
                    "to_starts_at, to_ends_at, from_status, to_status, reason) VALUES ($1, $2, "
                    "$3, $4, $5, $6, $7::timestamptz, $8::timestamptz, $9::timestamptz, "
                    "$10::timestamptz, $11, $12, $13)",
                    13, params, NULL, NULL, &err) < 0) {
        bc_call_fail_err(call, &err);
        return -1;
    }
    return 0;
}

bc_code_t appointments_book(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__BookAppointmentRequest *req =
        (const Beacon__Scheduling__BookAppointmentRequest *)in;
    const char *mode = *req->mode ? req->mode : "in_person";
    if (!sched_one_of(mode, sched_modes))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "mode",
                            "mode must be one of in_person, community, telehealth_video, "
                            "telephone");
    const char *status = *req->status ? req->status : "booked";
    if (strcmp(status, "booked") && strcmp(status, "proposed"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "a new appointment is booked or proposed");
    const char *problem = bc_text_problem(req->purpose, false, 500);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "purpose", "purpose %s", problem);
    bc_code_t code = sched_check_override(call, req->override_conflicts, req->override_reason);
    if (code != BC_OK)
        return code;
    const char *staff = sched_staff_arg(call, req->staff_id, "staff_id");
    if (!staff)
        return call->err.code;
    sched_client_t client;
    if ((code = sched_client(call, req->client_id, &client)) != BC_OK)
        return code;
    const char *site = *req->site_id ? req->site_id : client.site_id;
    if (!bc_is_uuid(site))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    if (!bc_call_has_site(call, site))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "site_id",
                            "you can book only at your own sites");
    char zone[SCHED_ZONE_MAX];
    if ((code = sched_site_zone(call, site, zone)) != BC_OK)
        return code;
    int at_site = sched_staff_at_site(call, staff, site);
    if (at_site < 0)
        return call->err.code;
    if (!at_site)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "staff_id",
                            "staff member %s does not work at site %s", staff, site);
    const char *location = *req->location_id ? req->location_id : NULL;
    if (location && (code = sched_check_location(call, location, site)) != BC_OK)
        return code;
    int64_t start_us, end_us;
    if ((code = sched_meeting_times(call, zone, "", req->start, req->end, req->start_local,
                                    req->end_local, sched_max_minutes(call), &start_us, &end_us)) !=
        BC_OK)
        return code;

    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    s_slot_t slot = {staff, req->client_id, location, site, zone, NULL, start_us, end_us,
                     req->override_conflicts};
    if ((code = s_check_slot(call, &slot)) != BC_OK)
        return code; /* the dispatcher rolls back */
    char start[40], end[40];
    sched_sql_instant(start_us, start);
    sched_sql_instant(end_us, end);
    const char *params[] = {call->principal->agency_id, site,   req->client_id, staff,
                            location,                   start,  end,            mode,
                            *req->purpose ? req->purpose : NULL, status,
                            req->override_conflicts ? req->override_reason : NULL,
                            call->principal->staff_id};
    PGresult *res = bc_db_prepared(
        call->db, "sched_book",
        "WITH a AS (INSERT INTO scheduling.appointments (agency_id, site_id, client_id, "
        "staff_id, location_id, starts_at, ends_at, mode, purpose, status, override_reason, "
        "created_by, updated_by) VALUES ($1, $2, $3, $4, $5::uuid, $6::timestamptz, "
        "$7::timestamptz, $8, $9, $10, $11, $12, $12) RETURNING *) "
        "SELECT " SCHED_APPT_COLUMNS " FROM a" SCHED_APPT_JOINS,
        12, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Scheduling__Appointment *a = sched_appointment_from_row(call, res, 0);
    PQclear(res);
    bc_audit_event_t ev = sched_appointment_event(a, BC_AUDIT_CREATE);
    if (s_record_change(call, a, "booked", NULL, NULL, NULL, req->override_reason) < 0 ||
        s_emit(call, "appointment.booked", a, NULL, NULL) < 0 || bc_call_audit_write(call, &ev) < 0 ||
        bc_call_commit(call) < 0)
        return call->err.code;
    *out = &a->base;
    return BC_OK;
}

/* The appointment in the caller's scope, locked for change when lock. */
static Beacon__Scheduling__Appointment *s_load(bc_call_t *call, const char *id, bool lock)
{
    if (!bc_is_uuid(id)) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
        return NULL;
    }
    const char *params[] = {id, call->principal->agency_id};
    bc_error_t err;
    PGresult *res =
        lock ? bc_db_prepared(call->db, "sched_appt_lock",
                              "SELECT " SCHED_APPT_COLUMNS " FROM scheduling.appointments a" SCHED_APPT_JOINS
                              " WHERE a.id = $1 AND a.agency_id = $2 FOR UPDATE OF a",
                              2, params, &err)
             : bc_db_prepared(call->db, "sched_appt_get",
                              "SELECT " SCHED_APPT_COLUMNS " FROM scheduling.appointments a" SCHED_APPT_JOINS
                              " WHERE a.id = $1 AND a.agency_id = $2",
                              2, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_call_fail(call, BC_NOT_FOUND, "", "no appointment with id %s", id);
        return NULL;
    }
    Beacon__Scheduling__Appointment *a = sched_appointment_from_row(call, res, 0);
    PQclear(res);
    return a;
}

static bc_code_t s_check_version(bc_call_t *call, const Beacon__Scheduling__Appointment *a,
                                 int expected)
{
    if (expected && expected != a->version)
        return bc_call_fail(call, BC_STALE, "expected_version",
                            "the appointment was changed since you read it (now version %d)",
                            a->version);
    return BC_OK;
}

/* Opens the change's transaction and reads the appointment locked: NULL
 * (call->err set) when it is not in the caller's scope or, with
 * expected_version, was changed meanwhile. */
static Beacon__Scheduling__Appointment *s_open_for_change(bc_call_t *call, const char *id,
                                                          int expected_version)
{
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    Beacon__Scheduling__Appointment *a = s_load(call, id, true);
    if (a && s_check_version(call, a, expected_version) != BC_OK)
        return NULL;
    return a;
}

static bc_code_t s_history(bc_call_t *call, Beacon__Scheduling__Appointment *a)
{
    const char *params[] = {a->id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "sched_history",
        "SELECT " SCHED_US("changed_at") ", changed_by::text, kind, "
        "coalesce(" SCHED_US("from_starts_at") ", 0), coalesce(" SCHED_US("from_ends_at") ", 0), "
        "coalesce(" SCHED_US("to_starts_at") ", 0), coalesce(" SCHED_US("to_ends_at") ", 0), "
        "coalesce(from_status, ''), coalesce(to_status, ''), coalesce(reason, '') "
        "FROM scheduling.appointment_changes WHERE appointment_id = $1 ORDER BY id",
        1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    a->n_history = (size_t)PQntuples(res);
    a->history = bc_arena_alloc(call->arena, (a->n_history ? a->n_history : 1) * sizeof(void *));
    for (size_t i = 0; i < a->n_history; i++) {
        Beacon__Scheduling__AppointmentChange *c = bc_arena_alloc(call->arena, sizeof *c);
        beacon__scheduling__appointment_change__init(c);
        int r = (int)i;
        c->at = sched_time_value(call, res, r, 0);
        c->by_staff_id = bc_arena_strdup(call->arena, PQgetvalue(res, r, 1));
        c->kind = bc_arena_strdup(call->arena, PQgetvalue(res, r, 2));
        char **times[] = {&c->from_start, &c->from_end, &c->to_start, &c->to_end};
        for (int k = 0; k < 4; k++)
            *times[k] = sched_us_value(res, r, 3 + k) ? sched_time_value(call, res, r, 3 + k) : "";
        c->from_status = bc_arena_strdup(call->arena, PQgetvalue(res, r, 7));
        c->to_status = bc_arena_strdup(call->arena, PQgetvalue(res, r, 8));
        c->reason = bc_arena_strdup(call->arena, PQgetvalue(res, r, 9));
        a->history[i] = c;
    }
    PQclear(res);
    return BC_OK;
}

bc_code_t appointments_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__GetAppointmentRequest *req =
        (const Beacon__Scheduling__GetAppointmentRequest *)in;
    Beacon__Scheduling__Appointment *a = s_load(call, req->id, false);
    if (!a)
        return call->err.code;
    bc_code_t code = s_history(call, a);
    if (code != BC_OK)
        return code;
    bc_audit_event_t ev = sched_appointment_event(a, BC_AUDIT_READ);
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &a->base;
    return BC_OK;
}

/* Applies an update whose SET clause is fixed by name/sql, then reloads. */
static Beacon__Scheduling__Appointment *s_update(bc_call_t *call, const char *name,
                                                 const char *sql, int n, const char *const *p)
{
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, name, sql, n, p, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    Beacon__Scheduling__Appointment *a = PQntuples(res) ? sched_appointment_from_row(call, res, 0) : NULL;
    PQclear(res);
    if (!a)
        bc_call_fail(call, BC_PERMISSION_DENIED, "", "you cannot change this appointment");
    return a;
}

bc_code_t appointments_reschedule(bc_call_t *call, const ProtobufCMessage *in,
                                  ProtobufCMessage **out)
{
    const Beacon__Scheduling__RescheduleAppointmentRequest *req =
        (const Beacon__Scheduling__RescheduleAppointmentRequest *)in;
    bc_code_t code = sched_check_override(call, req->override_conflicts, req->override_reason);
    if (code != BC_OK)
        return code;
    const char *problem = bc_text_problem(req->reason, false, 500);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason", "reason %s", problem);
    Beacon__Scheduling__Appointment *a = s_open_for_change(call, req->id, req->expected_version);
    if (!a)
        return call->err.code;
    if (strcmp(a->status, "proposed") && strcmp(a->status, "booked"))
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "id",
                            "only a proposed or booked appointment can be moved (this one is %s)",
                            a->status);
    const char *location = *req->location_id ? req->location_id
                           : *a->location_id  ? a->location_id
                                              : NULL;
    if (*req->location_id && (code = sched_check_location(call, location, a->site_id)) != BC_OK)
        return code;
    int64_t start_us, end_us;
    if ((code = sched_meeting_times(call, a->time_zone, "", req->start, req->end, req->start_local,
                                    req->end_local, sched_max_minutes(call), &start_us, &end_us)) !=
        BC_OK)
        return code;
    s_slot_t slot = {a->staff_id, a->client_id, location, a->site_id, a->time_zone, a->id,
                     start_us, end_us, req->override_conflicts};
    if ((code = s_check_slot(call, &slot)) != BC_OK)
        return code;
    char start[40], end[40];
    sched_sql_instant(start_us, start);
    sched_sql_instant(end_us, end);
    const char *params[] = {a->id, start, end, location, call->principal->staff_id,
                            req->override_conflicts ? req->override_reason : NULL};
    const char *from_start = a->start, *from_end = a->end;
    Beacon__Scheduling__Appointment *b = s_update(
        call, "sched_reschedule",
        "WITH a AS (UPDATE scheduling.appointments SET starts_at = $2::timestamptz, "
        "ends_at = $3::timestamptz, location_id = $4::uuid, "
        "override_reason = coalesce($6, override_reason), version = version + 1, "
        "updated_by = $5, updated_at = now() WHERE id = $1 RETURNING *) "
        "SELECT " SCHED_APPT_COLUMNS " FROM a" SCHED_APPT_JOINS,
        6, params);
    if (!b)
        return call->err.code;
    bc_audit_event_t ev = sched_appointment_event(b, BC_AUDIT_UPDATE);
    if (s_record_change(call, b, "rescheduled", from_start, from_end, NULL, req->reason) < 0 ||
        s_emit(call, "appointment.rescheduled", b, req->reason, NULL) < 0 ||
        bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &b->base;
    return BC_OK;
}

/* The FHIR workflow: which status may follow which (fulfilled only through
 * CompleteAppointment, which records the encounter). */
static bool s_may_follow(const char *from, const char *to)
{
    static const struct {
        const char *to, *from;
    } s_steps[] = {
        {"booked", "proposed"},
        {"arrived", "booked"},
        {"checked_in", "booked,arrived"},
        {"cancelled", "proposed,booked,arrived,checked_in"},
        {"noshow", "booked"},
        {"entered_in_error", "proposed,booked,arrived,checked_in,fulfilled,cancelled,noshow"},
    };
    for (size_t i = 0; i < sizeof s_steps / sizeof *s_steps; i++) {
        if (strcmp(s_steps[i].to, to))
            continue;
        size_t n = strlen(from);
        for (const char *p = s_steps[i].from; *p;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (len == n && !strncmp(p, from, n))
                return true;
            p += len + (comma ? 1 : 0);
        }
    }
    return false;
}

bc_code_t appointments_change_status(bc_call_t *call, const ProtobufCMessage *in,
                                     ProtobufCMessage **out)
{
    const Beacon__Scheduling__ChangeAppointmentStatusRequest *req =
        (const Beacon__Scheduling__ChangeAppointmentStatusRequest *)in;
    static const char *const s_targets[] = {"booked", "arrived", "checked_in", "cancelled",
                                            "noshow", "entered_in_error", NULL};
    if (!sched_one_of(req->status, s_targets))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "status must be one of booked, arrived, checked_in, cancelled, "
                            "noshow, entered_in_error (fulfilled: complete the appointment)");
    bool needs_reason =
        !strcmp(req->status, "cancelled") || !strcmp(req->status, "entered_in_error");
    const char *problem = bc_text_problem(req->reason, needs_reason, 500);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason", "reason %s%s", problem,
                            needs_reason ? " (cancelling or marking in error needs a reason)"
                                         : "");
    Beacon__Scheduling__Appointment *a = s_open_for_change(call, req->id, req->expected_version);
    if (!a)
        return call->err.code;
    if (!s_may_follow(a->status, req->status))
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "status",
                            "an appointment that is %s cannot become %s", a->status, req->status);
    int64_t start_us;
    sched_parse_instant(a->start, &start_us);
    if (!strcmp(req->status, "noshow") && start_us > bc_now_ms() * 1000)
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "status",
                            "a no-show is recorded after the appointment's start");
    const char *from_status = a->status;
    const char *params[] = {a->id, req->status, *req->reason ? req->reason : NULL,
                            call->principal->staff_id};
    Beacon__Scheduling__Appointment *b = s_update(
        call, "sched_status",
        "WITH a AS (UPDATE scheduling.appointments SET status = $2, "
        "status_reason = coalesce($3, status_reason), version = version + 1, updated_by = $4, "
        "updated_at = now() WHERE id = $1 RETURNING *) "
        "SELECT " SCHED_APPT_COLUMNS " FROM a" SCHED_APPT_JOINS,
        4, params);
    if (!b)
        return call->err.code;
    const char *topic = !strcmp(b->status, "cancelled") ? "appointment.cancelled"
                        : !strcmp(b->status, "noshow")  ? "appointment.noshow"
                                                        : NULL;
    bc_audit_event_t ev = sched_appointment_event(b, BC_AUDIT_UPDATE);
    if (s_record_change(call, b, "status", NULL, NULL, from_status, req->reason) < 0 ||
        (topic && s_emit(call, topic, b, req->reason, NULL) < 0) ||
        bc_call_audit_write(call, &ev) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &b->base;
    return BC_OK;
}

/* CMS place of service from how and where a meeting took place. */
const char *sched_place_of_service(const char *mode, const char *location_kind)
{
    if (!strcmp(mode, "telehealth_video") || !strcmp(mode, "telephone"))
        return "02";
    if (!strcmp(mode, "community"))
        return "99";
    return !strcmp(location_kind, "community") ? "99" : "11";
}

const char *sched_location_kind(bc_call_t *call, const char *location_id)
{
    if (!*location_id)
        return "";
    const char *params[] = {location_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "sched_location_kind",
                                   "SELECT kind FROM scheduling.locations WHERE id = $1", 1,
                                   params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    const char *kind = PQntuples(res) ? bc_arena_strdup(call->arena, PQgetvalue(res, 0, 0)) : "";
    PQclear(res);
    return kind;
}

const char *const sched_places[] = {"02", "10", "11", "12", "53", "57", "99", NULL};

Beacon__Scheduling__Encounter *sched_encounter_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Scheduling__Encounter *e = bc_arena_alloc(call->arena, sizeof *e);
    beacon__scheduling__encounter__init(e);
    char **text[] = {&e->id, &e->appointment_id, &e->client_id, &e->staff_id, &e->site_id};
    for (int c = 0; c < 5; c++)
        *text[c] = bc_arena_strdup(call->arena, PQgetvalue(res, row, c));
    e->start = sched_time_value(call, res, row, 5);
    e->end = sched_time_value(call, res, row, 6);
    e->minutes = atoi(PQgetvalue(res, row, 7));
    e->mode = bc_arena_strdup(call->arena, PQgetvalue(res, row, 8));
    e->place_of_service = bc_arena_strdup(call->arena, PQgetvalue(res, row, 9));
    e->is_group = PQgetvalue(res, row, 10)[0] == 't';
    e->recorded_at = sched_time_value(call, res, row, 11);
    e->group_occurrence_id = bc_arena_strdup(call->arena, PQgetvalue(res, row, 12));
    return e;
}

bc_code_t appointments_complete(bc_call_t *call, const ProtobufCMessage *in,
                                ProtobufCMessage **out)
{
    const Beacon__Scheduling__CompleteAppointmentRequest *req =
        (const Beacon__Scheduling__CompleteAppointmentRequest *)in;
    if (*req->mode && !sched_one_of(req->mode, sched_modes))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "mode",
                            "mode must be one of in_person, community, telehealth_video, "
                            "telephone");
    if (*req->place_of_service && !sched_one_of(req->place_of_service, sched_places))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "place_of_service",
                            "place_of_service must be a CMS code Beacon knows: 02, 10, 11, 12, "
                            "53, 57 or 99");
    bc_error_t err;
    Beacon__Scheduling__Appointment *a = s_open_for_change(call, req->id, req->expected_version);
    if (!a)
        return call->err.code;
    bc_code_t code;
    if (strcmp(a->status, "booked") && strcmp(a->status, "arrived") &&
        strcmp(a->status, "checked_in"))
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "id",
                            "only a booked, arrived or checked-in appointment can be completed "
                            "(this one is %s)",
                            a->status);
    int64_t start_us, end_us;
    const char *start = *req->actual_start ? req->actual_start : a->start;
    const char *end = *req->actual_end ? req->actual_end : a->end;
    if ((code = sched_meeting_times(call, a->time_zone, "actual_", start, end, "", "",
                                    sched_max_minutes(call), &start_us, &end_us)) != BC_OK)
        return code;
    if (end_us > (bc_now_ms() + 5 * 60 * 1000) * 1000)
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "actual_end",
                            "a meeting is completed once it has ended");
    const char *mode = *req->mode ? req->mode : a->mode;
    const char *kind;
    if (!(kind = sched_location_kind(call, a->location_id)))
        return call->err.code;
    PGresult *res;
    const char *pos = *req->place_of_service ? req->place_of_service
                                             : sched_place_of_service(mode, kind);
    char s_start[40], s_end[40];
    sched_sql_instant(start_us, s_start);
    sched_sql_instant(end_us, s_end);
    const char *ep[] = {call->principal->agency_id, a->site_id, a->client_id, a->staff_id, a->id,
                        s_start, s_end, mode, pos, call->principal->staff_id};
    res = bc_db_prepared(
        call->db, "sched_encounter_insert",
        "WITH e AS (INSERT INTO scheduling.encounters (agency_id, site_id, client_id, staff_id, "
        "appointment_id, starts_at, ends_at, mode, place_of_service, recorded_by) VALUES ($1, "
        "$2, $3, $4, $5, $6::timestamptz, $7::timestamptz, $8, $9, $10) RETURNING *) "
        "SELECT " SCHED_ENCOUNTER_COLUMNS " FROM e",
        10, ep, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Scheduling__Encounter *e = sched_encounter_from_row(call, res, 0);
    PQclear(res);
    const char *from_status = a->status;
    const char *sp[] = {a->id, "fulfilled", NULL, call->principal->staff_id};
    if (bc_db_defer(call->db, "sched_fulfil",
                    "UPDATE scheduling.appointments SET status = $2, version = version + 1, "
                    "updated_by = $4, updated_at = now(), status_reason = coalesce($3, "
                    "status_reason) WHERE id = $1",
                    4, sp, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    a->status = "fulfilled";
    bc_audit_event_t audit = {.site_id = e->site_id, .action = BC_AUDIT_CREATE,
                              .resource_type = "encounter", .resource_id = e->id,
                              .client_id = e->client_id, .purpose = "treatment"};
    if (s_record_change(call, a, "status", NULL, NULL, from_status, NULL) < 0 ||
        s_emit(call, "encounter.completed", a, NULL, e) < 0 ||
        bc_call_audit_write(call, &audit) < 0 || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &e->base;
    return BC_OK;
}
