/*  enrollments: episodes of a client's participation in a program.
 *
 *  A client is enrolled on a pathway: "brief" (check-ins) or
 *  "comprehensive", which requires an intake assessment and an initial
 *  recovery plan (a first goal) within comprehensive_requirements_days of
 *  the start; each episode reports when they are due, whether they are done
 *  and whether they are overdue (computed at
 *  read time from the assessments, so it can never go stale). Discharge
 *  closes the episode with a reason; re-enrollment opens a new one. The
 *  client's status follows: active while enrolled, discharged after.
 *  Enrolling and discharging need the client in the caller's ordinary
 *  scope; both are audited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_util.h"
#include "intake.h"

int intake_emit(bc_call_t *call, const char *topic, Beacon__Intake__IntakeEvent *ev)
{
    ev->agency_id = (char *)call->principal->agency_id;
    return bc_call_emit(call, topic, &ev->base);
}

int intake_emit_assignment(bc_call_t *call, const char *client_id, const char *site_id,
                           const char *staff_id, const char *status)
{
    Beacon__Intake__IntakeEvent ev = BEACON__INTAKE__INTAKE_EVENT__INIT;
    ev.client_id = (char *)client_id;
    ev.site_id = (char *)site_id;
    ev.staff_id = (char *)(staff_id ? staff_id : "");
    ev.to_status = (char *)status;
    return intake_emit(call, "client.assigned", &ev);
}

static const char *const s_reasons[] = {"goals_met",    "completed", "moved",
                                        "transferred",  "lost_contact", "declined",
                                        "incarcerated", "deceased",  "other",
                                        NULL};

#define S_ENROLLMENT_COLUMNS                                                                    \
    "e.id::text, e.client_id::text, e.program, e.pathway, to_char(e.started_on, 'YYYY-MM-DD'), " \
    "coalesce(to_char(e.discharged_on, 'YYYY-MM-DD'), ''), coalesce(e.discharge_reason, ''), "   \
    "e.enrolled_by::text, coalesce(e.discharged_by::text, ''), "                                 \
    "CASE WHEN e.pathway = 'comprehensive' "                                                     \
    "     THEN to_char(e.started_on + $2::int, 'YYYY-MM-DD') ELSE '' END, "                      \
    "EXISTS (SELECT FROM intake.assessments a WHERE a.client_id = e.client_id "                 \
    "        AND a.administered_on >= e.started_on "                                            \
    "        AND (e.discharged_on IS NULL OR a.administered_on <= e.discharged_on)), "          \
    INTAKE_TIME("e.created_at") ", c.site_id::text, "                                           \
    "EXISTS (SELECT FROM intake.goals g WHERE g.client_id = e.client_id "                       \
    "        AND (g.created_at AT TIME ZONE 'UTC')::date >= e.started_on "                      \
    "        AND (e.discharged_on IS NULL OR (g.created_at AT TIME ZONE 'UTC')::date "           \
    "             <= e.discharged_on))"

static Beacon__Intake__Enrollment *s_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Intake__Enrollment *e = bc_arena_alloc(call->arena, sizeof *e);
    beacon__intake__enrollment__init(e);
    char **f[] = {&e->id,           &e->client_id,        &e->program,     &e->pathway,
                  &e->started_on,   &e->discharged_on,    &e->discharge_reason,
                  &e->enrolled_by,  &e->discharged_by,    &e->assessment_due_on};
    for (int i = 0; i < 10; i++)
        *f[i] = bc_arena_strdup(call->arena, PQgetvalue(res, row, i));
    e->assessment_done = PQgetvalue(res, row, 10)[0] == 't';
    e->created_at = bc_arena_strdup(call->arena, PQgetvalue(res, row, 11));
    char today[11];
    time_t now = time(NULL);
    strftime(today, sizeof today, "%Y-%m-%d", gmtime(&now));
    e->assessment_overdue = *e->assessment_due_on && !e->assessment_done &&
                            !*e->discharged_on && strcmp(today, e->assessment_due_on) > 0;
    /* The initial recovery plan is due on the same day as the assessment. */
    e->plan_due_on = e->assessment_due_on;
    e->plan_done = PQgetvalue(res, row, 13)[0] == 't';
    e->plan_overdue = *e->plan_due_on && !e->plan_done && !*e->discharged_on &&
                      strcmp(today, e->plan_due_on) > 0;
    return e;
}

/* A past or present date as YYYY-MM-DD ("" allowed: today). */
static bool s_valid_day(const char *s)
{
    if (!*s)
        return true;
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%d", &tm);
    if (!end || *end || strlen(s) != 10)
        return false;
    struct tm check = tm;
    time_t t = timegm(&check);
    return check.tm_mday == tm.tm_mday && check.tm_mon == tm.tm_mon &&
           tm.tm_year + 1900 >= 1900 && t <= time(NULL);
}

static bc_code_t s_need_staff(bc_call_t *call, const char *client_id)
{
    if (!bc_is_uuid(client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    if (!bc_is_uuid(call->principal->staff_id) || !bc_is_uuid(call->principal->agency_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "only staff enroll clients");
    return BC_OK;
}

static const char *s_days(bc_call_t *call, char buf[16])
{
    snprintf(buf, 16, "%lld",
             (long long)bc_config_int(call->config, "comprehensive_requirements_days"));
    return buf;
}

/* Sets the client's status (and version) to match its episodes; a change
 * is announced as client.assigned (the caseloads count active clients). */
static int s_client_status(bc_call_t *call, const char *client_id, const char *status,
                           bc_error_t *err)
{
    const char *params[] = {client_id, status, call->principal->staff_id};
    PGresult *res = bc_db_prepared(call->db, "intake_client_status",
                                   "UPDATE intake.clients SET status = $2, version = version + 1, "
                                   "updated_at = now(), updated_by = $3 "
                                   "WHERE id = $1 AND status <> $2 "
                                   "RETURNING site_id::text, coalesce(assigned_staff_id::text, '')",
                                   3, params, err);
    if (!res)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 1 &&
        intake_emit_assignment(call, client_id, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                               status) < 0) {
        *err = call->err;
        rc = -1;
    }
    PQclear(res);
    return rc;
}

static bc_code_t s_finish(bc_call_t *call, Beacon__Intake__Enrollment *e, const char *site,
                          const char *what, ProtobufCMessage **out)
{
    /* Only values from closed lists go into the detail (it must stay JSON). */
    char detail[200];
    snprintf(detail, sizeof detail, "{\"event\":\"%s\",\"pathway\":\"%s\",\"reason\":\"%s\"}",
             what, e->pathway, e->discharge_reason);
    return intake_commit_change(call, BC_AUDIT_UPDATE, "enrollment", e->id, e->client_id, site,
                                detail, &e->base, out);
}

bc_code_t enrollments_enroll(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__EnrollRequest *req = (const Beacon__Intake__EnrollRequest *)in;
    bc_code_t code = s_need_staff(call, req->client_id);
    if (code != BC_OK)
        return code;
    const char *problem = bc_text_problem(req->program, true, 100);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "program", "program %s", problem);
    if (strcmp(req->pathway, "brief") && strcmp(req->pathway, "comprehensive"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "pathway",
                            "pathway must be brief or comprehensive");
    if (!s_valid_day(req->started_on))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "started_on",
                            "started_on must be a date as YYYY-MM-DD, not in the future");
    char days[16];
    const char *params[] = {req->client_id,     s_days(call, days),        req->program,
                            req->pathway,       S_NULL_EMPTY(req->started_on),
                            call->principal->staff_id, call->principal->agency_id};
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(
        call->db, "intake_enroll",
        "WITH e AS (INSERT INTO intake.enrollments (client_id, program, pathway, started_on, "
        "           enrolled_by) SELECT c.id, $3, $4, "
        "           coalesce($5::date, (now() AT TIME ZONE 'UTC')::date), $6::uuid "
        "           FROM intake.clients c WHERE c.id = $1 AND c.agency_id = $7 "
        "           AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id) "
        "           RETURNING *) "
        "SELECT " S_ENROLLMENT_COLUMNS " FROM e JOIN intake.clients c ON c.id = e.client_id",
        7, params, &err);
    if (!res) {
        if (err.code == BC_ALREADY_EXISTS)
            return bc_call_fail(call, BC_CONFLICT, "client_id",
                                "the client is already enrolled: discharge the open episode "
                                "before enrolling again");
        return bc_call_fail_err(call, &err);
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_NOT_FOUND, "", "no client with id %s in your scope",
                            req->client_id);
    }
    Beacon__Intake__Enrollment *e = s_from_row(call, res, 0);
    char *site = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 12));
    PQclear(res);
    if (s_client_status(call, e->client_id, "active", &err) < 0)
        return bc_call_fail_err(call, &err);
    Beacon__Intake__IntakeEvent ev = BEACON__INTAKE__INTAKE_EVENT__INIT;
    ev.client_id = e->client_id;
    ev.site_id = site;
    ev.enrollment_id = e->id;
    ev.pathway = e->pathway;
    ev.on_date = e->started_on;
    if (intake_emit(call, "client.enrolled", &ev) < 0)
        return call->err.code;
    return s_finish(call, e, site, "enrolled", out);
}

bc_code_t enrollments_discharge(bc_call_t *call, const ProtobufCMessage *in,
                                ProtobufCMessage **out)
{
    const Beacon__Intake__DischargeRequest *req = (const Beacon__Intake__DischargeRequest *)in;
    bc_code_t code = s_need_staff(call, req->client_id);
    if (code != BC_OK)
        return code;
    if (!bc_is_uuid(req->id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
    bool known = false;
    for (int i = 0; s_reasons[i]; i++)
        known |= !strcmp(req->reason, s_reasons[i]);
    if (!known)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason",
                            "reason must be one of goals_met, completed, moved, transferred, "
                            "lost_contact, declined, incarcerated, deceased, other");
    if (!s_valid_day(req->discharged_on))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "discharged_on",
                            "discharged_on must be a date as YYYY-MM-DD, not in the future");
    char days[16];
    const char *params[] = {req->id, s_days(call, days), req->client_id,
                            S_NULL_EMPTY(req->discharged_on), req->reason,
                            call->principal->staff_id};
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(
        call->db, "intake_discharge",
        "WITH e AS (UPDATE intake.enrollments SET "
        "           discharged_on = coalesce($4::date, (now() AT TIME ZONE 'UTC')::date), "
        "           discharge_reason = $5, discharged_by = $6::uuid "
        "           WHERE id = $1 AND client_id = $3 AND discharged_on IS NULL RETURNING *) "
        "SELECT " S_ENROLLMENT_COLUMNS " FROM e JOIN intake.clients c ON c.id = e.client_id",
        6, params, &err);
    if (!res) {
        if (err.code == BC_FAILED_PRECONDITION)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "discharged_on",
                                "discharged_on must not be before the episode started");
        return bc_call_fail_err(call, &err);
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_NOT_FOUND, "",
                            "no open enrollment %s of client %s in your scope", req->id,
                            req->client_id);
    }
    Beacon__Intake__Enrollment *e = s_from_row(call, res, 0);
    char *site = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 12));
    PQclear(res);
    if (s_client_status(call, e->client_id, "discharged", &err) < 0)
        return bc_call_fail_err(call, &err);
    Beacon__Intake__IntakeEvent ev = BEACON__INTAKE__INTAKE_EVENT__INIT;
    ev.client_id = e->client_id;
    ev.site_id = site;
    ev.enrollment_id = e->id;
    ev.pathway = e->pathway;
    ev.discharge_reason = e->discharge_reason;
    ev.on_date = e->discharged_on;
    if (intake_emit(call, "client.discharged", &ev) < 0)
        return call->err.code;
    return s_finish(call, e, site, "discharged", out);
}

bc_code_t enrollments_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__ListEnrollmentsRequest *req =
        (const Beacon__Intake__ListEnrollmentsRequest *)in;
    if (!bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    bc_audit_event_t ev;
    bc_code_t code = intake_read_scope(call, req->client_id, "enrollment", &ev);
    if (code != BC_OK)
        return code;
    char days[16];
    const char *params[] = {req->client_id, s_days(call, days)};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "intake_enrollments",
                                   "SELECT " S_ENROLLMENT_COLUMNS " FROM intake.enrollments e "
                                   "JOIN intake.clients c ON c.id = e.client_id "
                                   "WHERE e.client_id = $1 ORDER BY e.started_on, e.created_at",
                                   2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Intake__ListEnrollmentsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__intake__list_enrollments_reply__init(r);
    r->n_enrollments = (size_t)PQntuples(res);
    r->enrollments = bc_arena_alloc(call->arena, (r->n_enrollments + 1) * sizeof(void *));
    for (size_t i = 0; i < r->n_enrollments; i++)
        r->enrollments[i] = s_from_row(call, res, (int)i);
    PQclear(res);
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}
