/*  goals: the recovery plan. Goals across life domains with ordered steps,
 *  target dates and a lifecycle (proposed -> active -> on-hold / completed
 *  / cancelled; completed and cancelled are final), and progress entries
 *  that also keep the status history. Written only within the caller's
 *  ordinary scope; read as the client is; audited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bc_util.h"
#include "intake.h"

#define S_MAX_STEPS 50

static const char *const s_domains[] = {
    "recovery", "housing",  "employment", "education", "health", "mental_health",
    "relationships", "family", "finances", "legal", "community", "other", NULL};

static bool s_in(const char *const *list, const char *v)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], v))
            return true;
    return false;
}

/* Whether a goal may go from `from` to `to`. */
static bool s_transition(const char *from, const char *to)
{
    static const struct {
        const char *from, *to;
    } allowed[] = {
        {"proposed", "active"}, {"proposed", "cancelled"}, {"active", "on-hold"},
        {"active", "completed"}, {"active", "cancelled"}, {"on-hold", "active"},
        {"on-hold", "cancelled"},
    };
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (!strcmp(allowed[i].from, from) && !strcmp(allowed[i].to, to))
            return true;
    return false;
}

static bool s_date(const char *s)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%d", &tm);
    if (!end || *end || strlen(s) != 10)
        return false;
    struct tm check = tm;
    (void)timegm(&check);
    return check.tm_mday == tm.tm_mday && check.tm_mon == tm.tm_mon && tm.tm_year + 1900 >= 1900;
}

/* One goal per row: id, client, domain, description, target, status,
 * steps json, progress json, created_by, created_at, updated_at, site. */
#define S_GOAL_SELECT                                                                           \
    "SELECT g.id::text, g.client_id::text, g.domain, g.description, "                          \
    "coalesce(to_char(g.target_date, 'YYYY-MM-DD'), ''), g.status, "                           \
    "coalesce((SELECT json_agg(json_build_object('position', s.position, 'description', "      \
    "  s.description, 'target_date', coalesce(to_char(s.target_date, 'YYYY-MM-DD'), ''), "     \
    "  'done_on', coalesce(to_char(s.done_on, 'YYYY-MM-DD'), '')) ORDER BY s.position) "       \
    "  FROM intake.goal_steps s WHERE s.goal_id = g.id), '[]')::text, "                        \
    "coalesce((SELECT json_agg(json_build_object('note', p.note, 'from_status', "              \
    "  coalesce(p.from_status, ''), 'to_status', coalesce(p.to_status, ''), 'step_done', "     \
    "  coalesce(p.step_done, 0), 'recorded_by', p.recorded_by::text, 'recorded_at', "          \
    "  " INTAKE_TIME("p.recorded_at") ") ORDER BY p.recorded_at, p.id) "                        \
    "  FROM intake.goal_progress p WHERE p.goal_id = g.id), '[]')::text, "                     \
    "g.created_by::text, " INTAKE_TIME("g.created_at") ", " INTAKE_TIME("g.updated_at") ", "   \
    "c.site_id::text FROM intake.goals g JOIN intake.clients c ON c.id = g.client_id "

static const char *s_str(bc_call_t *call, json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return bc_arena_strdup(call->arena, v ? v : "");
}

static Beacon__Intake__Goal *s_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Intake__Goal *g = bc_arena_alloc(call->arena, sizeof *g);
    beacon__intake__goal__init(g);
    char **f[] = {&g->id, &g->client_id, &g->domain, &g->description, &g->target_date,
                  &g->status};
    for (int i = 0; i < 6; i++)
        *f[i] = bc_arena_strdup(call->arena, PQgetvalue(res, row, i));
    json_t *steps = json_loads(PQgetvalue(res, row, 6), 0, NULL);
    g->steps = bc_arena_alloc(call->arena, (json_array_size(steps) + 1) * sizeof(void *));
    size_t i;
    json_t *v;
    json_array_foreach(steps, i, v)
    {
        Beacon__Intake__GoalStep *s = bc_arena_alloc(call->arena, sizeof *s);
        beacon__intake__goal_step__init(s);
        s->position = (int32_t)json_integer_value(json_object_get(v, "position"));
        s->description = (char *)s_str(call, v, "description");
        s->target_date = (char *)s_str(call, v, "target_date");
        s->done_on = (char *)s_str(call, v, "done_on");
        g->steps[g->n_steps++] = s;
    }
    json_decref(steps);
    json_t *prog = json_loads(PQgetvalue(res, row, 7), 0, NULL);
    g->progress = bc_arena_alloc(call->arena, (json_array_size(prog) + 1) * sizeof(void *));
    json_array_foreach(prog, i, v)
    {
        Beacon__Intake__GoalProgress *p = bc_arena_alloc(call->arena, sizeof *p);
        beacon__intake__goal_progress__init(p);
        p->note = (char *)s_str(call, v, "note");
        p->from_status = (char *)s_str(call, v, "from_status");
        p->to_status = (char *)s_str(call, v, "to_status");
        p->step_done = (int32_t)json_integer_value(json_object_get(v, "step_done"));
        p->recorded_by = (char *)s_str(call, v, "recorded_by");
        p->recorded_at = (char *)s_str(call, v, "recorded_at");
        g->progress[g->n_progress++] = p;
    }
    json_decref(prog);
    g->created_by = bc_arena_strdup(call->arena, PQgetvalue(res, row, 8));
    g->created_at = bc_arena_strdup(call->arena, PQgetvalue(res, row, 9));
    g->updated_at = bc_arena_strdup(call->arena, PQgetvalue(res, row, 10));
    return g;
}

/* Reads goal id back, audits the change and commits. */
static bc_code_t s_reply_goal(bc_call_t *call, const char *id, const char *action,
                              ProtobufCMessage **out)
{
    bc_error_t err;
    const char *params[] = {id};
    PGresult *res = bc_db_prepared(call->db, "intake_goal_one", S_GOAL_SELECT "WHERE g.id = $1",
                                   1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return bc_call_fail(call, BC_INTERNAL, "", "the goal vanished");
    }
    Beacon__Intake__Goal *g = s_from_row(call, res, 0);
    char *site = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 11));
    PQclear(res);
    char detail[96];
    snprintf(detail, sizeof detail, "{\"status\":\"%s\"}", g->status);
    return intake_commit_change(call, action, "goal", g->id, g->client_id, site, detail, &g->base,
                                out);
}

bc_code_t goals_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__CreateGoalRequest *req = (const Beacon__Intake__CreateGoalRequest *)in;
    if (!bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    if (!s_in(s_domains, req->domain))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "domain",
                            "domain must be one of recovery, housing, employment, education, "
                            "health, mental_health, relationships, family, finances, legal, "
                            "community, other");
    const char *problem = bc_text_problem(req->description, true, 1000);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "description", "description %s", problem);
    if (*req->target_date && !s_date(req->target_date))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "target_date",
                            "target_date must be a date as YYYY-MM-DD");
    if (*req->status && strcmp(req->status, "proposed") && strcmp(req->status, "active"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "a new goal is proposed or active");
    if (req->n_steps > S_MAX_STEPS)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "steps", "at most %d steps",
                            S_MAX_STEPS);
    for (size_t i = 0; i < req->n_steps; i++) {
        const char *p = bc_text_problem(req->steps[i]->description, true, 500);
        if (p)
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "steps", "steps[%zu].description %s",
                                i, p);
        if (*req->steps[i]->target_date && !s_date(req->steps[i]->target_date))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "steps",
                                "steps[%zu].target_date must be a date as YYYY-MM-DD", i);
    }
    if (!bc_is_uuid(call->principal->staff_id) || !bc_is_uuid(call->principal->agency_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "only staff write recovery plans");
    json_t *steps = json_array();
    for (size_t i = 0; i < req->n_steps; i++)
        json_array_append_new(steps, json_pack("{s:i, s:s, s:s}", "position", (int)i + 1,
                                               "description", req->steps[i]->description,
                                               "target_date", req->steps[i]->target_date));
    char *steps_text = json_dumps(steps, JSON_COMPACT);
    json_decref(steps);
    const char *params[] = {req->client_id,          call->principal->agency_id, req->domain,
                            req->description,        S_NULL_EMPTY(req->target_date),
                            *req->status ? req->status : "proposed", call->principal->staff_id};
    bc_error_t err;
    PGresult *res = NULL;
    if (bc_db_begin(call->db, &err) == 0)
        res = bc_db_prepared(
            call->db, "intake_goal_insert",
            "INSERT INTO intake.goals (client_id, domain, description, target_date, status, "
            "created_by) SELECT c.id, $3, $4, $5::date, $6, $7::uuid "
            "FROM intake.clients c WHERE c.id = $1 AND c.agency_id = $2 "
            "AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id) RETURNING id::text",
            7, params, &err);
    if (!res) {
        free(steps_text);
        return bc_call_fail_err(call, &err);
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        free(steps_text);
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_NOT_FOUND, "", "no client with id %s in your scope",
                            req->client_id);
    }
    char *id = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 0));
    PQclear(res);
    /* A statement of its own: the steps' row policy must see the goal. */
    const char *sp[] = {id, steps_text};
    int rc = bc_db_defer(call->db, "intake_goal_steps_insert",
                         "INSERT INTO intake.goal_steps (goal_id, position, description, "
                         "target_date) SELECT $1::uuid, (x->>'position')::int, "
                         "x->>'description', nullif(x->>'target_date', '')::date "
                         "FROM json_array_elements($2::json) x",
                         2, sp, NULL, NULL, &err);
    free(steps_text);
    if (rc < 0)
        return bc_call_fail_err(call, &err);
    return s_reply_goal(call, id, BC_AUDIT_CREATE, out);
}

bc_code_t goals_progress(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__RecordProgressRequest *req =
        (const Beacon__Intake__RecordProgressRequest *)in;
    if (!bc_is_uuid(req->client_id) || !bc_is_uuid(req->id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "ids must be UUIDs");
    const char *problem = bc_text_problem(req->note, true, 2000);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "note", "note %s", problem);
    if (req->step_done < 0 || req->step_done > S_MAX_STEPS)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "step_done", "no such step");
    if (!bc_is_uuid(call->principal->staff_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "only staff write recovery plans");
    const char *params[] = {req->id, req->client_id};
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    PGresult *res = bc_db_prepared(
        call->db, "intake_goal_lock",
        "SELECT g.status FROM intake.goals g JOIN intake.clients c ON c.id = g.client_id "
        "WHERE g.id = $1 AND g.client_id = $2 "
        "AND intake.in_scope(c.agency_id, c.site_id, c.assigned_staff_id) FOR UPDATE OF g",
        2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) == 0) {
        PQclear(res);
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_NOT_FOUND, "", "no goal %s of client %s in your scope",
                            req->id, req->client_id);
    }
    char from[16];
    snprintf(from, sizeof from, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (*req->status && strcmp(req->status, from) && !s_transition(from, req->status)) {
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "status",
                            "a goal that is %s cannot become %.16s", from, req->status);
    }
    bool change = *req->status && strcmp(req->status, from);
    char step[16];
    snprintf(step, sizeof step, "%d", req->step_done);
    const char *pp[] = {req->id,
                        req->note,
                        change ? from : NULL,
                        change ? req->status : NULL,
                        req->step_done ? step : NULL,
                        call->principal->staff_id};
    res = bc_db_prepared(
        call->db, "intake_goal_progress",
        "WITH s AS (UPDATE intake.goal_steps SET done_on = (now() AT TIME ZONE 'UTC')::date "
        "           WHERE goal_id = $1 AND position = $5::int AND done_on IS NULL RETURNING 1), "
        "u AS (UPDATE intake.goals SET status = coalesce($4, status), updated_at = now() "
        "      WHERE id = $1) "
        "INSERT INTO intake.goal_progress (goal_id, note, from_status, to_status, step_done, "
        "recorded_by) SELECT $1, $2, $3, $4, $5::int, $6::uuid "
        "WHERE $5::int IS NULL OR EXISTS (SELECT FROM s) RETURNING 1",
        6, pp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bool written = PQntuples(res) == 1;
    PQclear(res);
    if (!written) {
        bc_db_rollback(call->db);
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "step_done",
                            "step %d does not exist or is already done", req->step_done);
    }
    if (change) {
        Beacon__Intake__IntakeEvent e = BEACON__INTAKE__INTAKE_EVENT__INIT;
        e.client_id = (char *)req->client_id;
        e.goal_id = (char *)req->id;
        e.from_status = from;
        e.to_status = (char *)req->status;
        if (intake_emit(call, "goal.status_changed", &e) < 0)
            return call->err.code;
    }
    return s_reply_goal(call, req->id, BC_AUDIT_UPDATE, out);
}

bc_code_t goals_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Intake__ListGoalsRequest *req = (const Beacon__Intake__ListGoalsRequest *)in;
    if (!bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    bc_audit_event_t ev;
    bc_code_t code = intake_read_scope(call, req->client_id, "goal", &ev);
    if (code != BC_OK)
        return code;
    const char *cp[] = {req->client_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "intake_goals", S_GOAL_SELECT
                         "WHERE g.client_id = $1 ORDER BY g.created_at, g.id",
                         1, cp, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Intake__ListGoalsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__intake__list_goals_reply__init(r);
    r->n_goals = (size_t)PQntuples(res);
    r->goals = bc_arena_alloc(call->arena, (r->n_goals + 1) * sizeof(void *));
    for (size_t i = 0; i < r->n_goals; i++)
        r->goals[i] = s_from_row(call, res, (int)i);
    PQclear(res);
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &r->base;
    return BC_OK;
}
