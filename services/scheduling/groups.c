/*  groups: group sessions as series (topic, facilitators, capacity, place,
 *  recurrence rule): setting one up, changing and cancelling it, reading
 *  and listing them. Rosters are in roster.c, the meetings in
 *  occurrences.c.
 *
 *  Laying out. A series' rule (recurrence.c) is expanded into the site's
 *  local dates, bounded by max_group_occurrences, and PostgreSQL turns each
 *  date and the series' local start time into an instant in the site's zone,
 *  so a 6 pm group stays at 6 pm local across daylight-saving changes (a
 *  start time the clocks skip that day moves forward by the gap, as RFC 5545
 *  reads it). Creating a series lays out every date; changing it lays out
 *  again from now on: future occurrences that were not edited on their own
 *  move to the new time, place and facilitators, dates the rule no longer
 *  has are removed (unless attendance was already taken), new dates added.
 *  Past occurrences and edited ones stay as they are. The laid-out future
 *  meetings are then checked for double bookings (group_conflicts.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"
#include "recurrence.h"
#include "scheduling.h"

#define S_MAX_FACILITATORS 5
#define S_MAX_CAPACITY 200
#define S_MIN_MINUTES 5

static const char *const s_topics[] = {"coping_strategies", "relapse_prevention", "goal_setting",
                                       "self_care", "custom", NULL};
static const char *const s_topic_titles[] = {"Coping strategies", "Relapse prevention",
                                             "Goal setting", "Self-care", NULL};
static const char *const s_group_modes[] = {"in_person", "community", "telehealth_video", NULL};
static const char *const s_day_codes[] = {"MO", "TU", "WE", "TH", "FR", "SA", "SU"};

/* ---- rows ---------------------------------------------------------------- */

char **sched_uuid_array(bc_call_t *call, const char *text, size_t *n)
{
    /* PostgreSQL's text form of uuid[]: "{a,b}" (uuids need no quotes). */
    size_t len = strlen(text), count = 0;
    for (size_t i = 0; i < len; i++)
        count += text[i] == ',';
    char **out = bc_arena_alloc(call->arena, (count + 1) * sizeof *out);
    *n = 0;
    if (len <= 2)
        return out;
    char *copy = bc_arena_strdup(call->arena, text + 1);
    copy[len - 2] = '\0';
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        out[(*n)++] = tok;
    return out;
}

/* Fills the rule fields of a series row (columns from col on: freq, every,
 * weekdays, month_week, start_date, until, count) into *rule. */
static void s_rule_from_row(PGresult *res, int row, int col, sched_rule_t *rule)
{
    memset(rule, 0, sizeof *rule);
    rule->freq = !strcmp(PQgetvalue(res, row, col), "monthly") ? SCHED_FREQ_MONTHLY
                                                               : SCHED_FREQ_WEEKLY;
    rule->interval = atoi(PQgetvalue(res, row, col + 1));
    rule->weekdays = (unsigned)atoi(PQgetvalue(res, row, col + 2));
    rule->month_week = atoi(PQgetvalue(res, row, col + 3));
    sched_date_parse(PQgetvalue(res, row, col + 4), &rule->start);
    if (!PQgetisnull(res, row, col + 5))
        sched_date_parse(PQgetvalue(res, row, col + 5), &rule->until);
    rule->count = PQgetisnull(res, row, col + 6) ? 0 : atoi(PQgetvalue(res, row, col + 6));
}

#define S_GROUP_COLUMNS                                                                           \
    "g.id::text, g.site_id::text, g.topic, g.title, coalesce(g.description, ''), "               \
    "g.facilitator_ids::text, g.capacity, g.enrolled, coalesce(g.location_id::text, ''), g.mode, " \
    "to_char(g.start_time, 'HH24:MI'), g.minutes, d.time_zone, g.freq, g.every, g.weekdays, "     \
    "g.month_week, g.start_date::text, g.until_date::text, g.occurrence_count, g.status, "        \
    "coalesce(g.status_reason, ''), coalesce(g.override_reason, ''), g.version, "                 \
    SCHED_US("g.created_at") ", " SCHED_US("g.updated_at") ", "                                   \
    "(SELECT count(*) FROM scheduling.group_occurrences o WHERE o.group_id = g.id"                \
    "  AND o.status = 'scheduled' AND o.starts_at > now()), "                                      \
    "coalesce((SELECT " SCHED_US("min(o.starts_at)") " FROM scheduling.group_occurrences o"       \
    "  WHERE o.group_id = g.id AND o.status = 'scheduled' AND o.starts_at > now()), 0)"
#define S_GROUP_FROM                                                                              \
    " FROM scheduling.groups g JOIN identity.site_directory d ON d.site_id = g.site_id"

static Beacon__Scheduling__GroupSession *s_group_from_row(bc_call_t *call, PGresult *res, int row)
{
    Beacon__Scheduling__GroupSession *g = bc_arena_alloc(call->arena, sizeof *g);
    beacon__scheduling__group_session__init(g);
    char **text[] = {&g->id, &g->site_id, &g->topic, &g->title, &g->description};
    for (int c = 0; c < 5; c++)
        *text[c] = bc_arena_strdup(call->arena, PQgetvalue(res, row, c));
    g->facilitator_ids = sched_uuid_array(call, PQgetvalue(res, row, 5), &g->n_facilitator_ids);
    g->capacity = atoi(PQgetvalue(res, row, 6));
    g->enrolled = atoi(PQgetvalue(res, row, 7));
    g->location_id = bc_arena_strdup(call->arena, PQgetvalue(res, row, 8));
    g->mode = bc_arena_strdup(call->arena, PQgetvalue(res, row, 9));
    g->start_time = bc_arena_strdup(call->arena, PQgetvalue(res, row, 10));
    g->minutes = atoi(PQgetvalue(res, row, 11));
    g->time_zone = bc_arena_strdup(call->arena, PQgetvalue(res, row, 12));

    sched_rule_t rule;
    s_rule_from_row(res, row, 13, &rule);
    Beacon__Scheduling__GroupRule *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__scheduling__group_rule__init(r);
    r->freq = rule.freq == SCHED_FREQ_MONTHLY ? "monthly" : "weekly";
    r->interval = rule.interval;
    r->by_day = bc_arena_alloc(call->arena, 7 * sizeof *r->by_day);
    for (int d = 0; d < 7; d++)
        if (rule.weekdays & (1u << d))
            r->by_day[r->n_by_day++] = (char *)s_day_codes[d];
    r->month_week = rule.month_week;
    r->start_date = bc_arena_strdup(call->arena, PQgetvalue(res, row, 17));
    r->until = bc_arena_strdup(call->arena, PQgetvalue(res, row, 18));
    r->count = rule.count;
    char rrule[160];
    if (sched_rule_to_rrule(&rule, rrule, sizeof rrule) >= 0)
        r->rrule = bc_arena_strdup(call->arena, rrule);
    g->rule = r;

    g->status = bc_arena_strdup(call->arena, PQgetvalue(res, row, 20));
    g->status_reason = bc_arena_strdup(call->arena, PQgetvalue(res, row, 21));
    g->override_reason = bc_arena_strdup(call->arena, PQgetvalue(res, row, 22));
    g->version = atoi(PQgetvalue(res, row, 23));
    g->created_at = sched_time_value(call, res, row, 24);
    g->updated_at = sched_time_value(call, res, row, 25);
    g->occurrences = atoi(PQgetvalue(res, row, 26));
    g->next_start = sched_us_value(res, row, 27) ? sched_time_value(call, res, row, 27) : "";
    return g;
}

Beacon__Scheduling__GroupSession *sched_group_load(bc_call_t *call, const char *id, bool lock)
{
    if (!bc_is_uuid(id)) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "id", "id must be a UUID");
        return NULL;
    }
    const char *params[] = {id, call->principal->agency_id};
    bc_error_t err;
    PGresult *res =
        lock ? bc_db_prepared(call->db, "sched_group_lock",
                              "SELECT " S_GROUP_COLUMNS S_GROUP_FROM
                              " WHERE g.id = $1 AND g.agency_id = $2 FOR UPDATE OF g",
                              2, params, &err)
             : bc_db_prepared(call->db, "sched_group_get",
                              "SELECT " S_GROUP_COLUMNS S_GROUP_FROM
                              " WHERE g.id = $1 AND g.agency_id = $2",
                              2, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    Beacon__Scheduling__GroupSession *g =
        PQntuples(res) ? s_group_from_row(call, res, 0) : NULL;
    PQclear(res);
    if (!g)
        bc_call_fail(call, BC_NOT_FOUND, "id", "no group session with id %s", id);
    return g;
}

bool sched_runs_group(const bc_call_t *call, char *const *facilitators, size_t n)
{
    if (bc_call_has_role(call, "supervisor"))
        return true;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(facilitators[i], call->principal->staff_id))
            return true;
    return false;
}

/* ---- checks -------------------------------------------------------------- */

/* "HH:MM" (00:00-23:59) as PostgreSQL time input, or -1. */
static int s_start_time(const char *text)
{
    if (strlen(text) != 5 || text[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (text[i] < '0' || text[i] > '9'))
            return -1;
    int h = (text[0] - '0') * 10 + text[1] - '0', m = (text[3] - '0') * 10 + text[4] - '0';
    return h < 24 && m < 60 ? 0 : -1;
}

/* The rule of a request, validated; field names are prefixed "rule.". */
static bc_code_t s_rule(bc_call_t *call, const Beacon__Scheduling__GroupRule *r, sched_rule_t *out)
{
    if (!r)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "rule",
                            "rule is required: when the group meets (freq, start_date, and "
                            "until or count)");
    sched_rule_input_t in = {
        .freq = *r->freq ? r->freq : NULL,
        .has_interval = r->interval != 0,
        .interval = r->interval,
        .by_day = r->n_by_day ? (const char *const *)r->by_day : NULL,
        .by_day_count = r->n_by_day,
        .has_month_week = r->month_week != 0,
        .month_week = r->month_week,
        .start = *r->start_date ? r->start_date : NULL,
        .until = *r->until ? r->until : NULL,
        .has_count = r->count != 0,
        .count = r->count,
    };
    char field[SCHED_FIELD_SIZE], message[SCHED_MESSAGE_SIZE], name[48];
    if (sched_rule_make(&in, out, field, message) < 0) {
        snprintf(name, sizeof name, "rule.%s", !strcmp(field, "start") ? "start_date" : field);
        return bc_call_fail(call, BC_INVALID_ARGUMENT, bc_arena_strdup(call->arena, name), "%s",
                            message);
    }
    return BC_OK;
}

/* The dates of the series as a PostgreSQL date[] literal, bounded by
 * max_group_occurrences; *n their number. */
static char *s_dates(bc_call_t *call, const sched_rule_t *rule, int *n)
{
    int max = (int)bc_config_int(call->config, "max_group_occurrences");
    sched_date_t *dates = bc_arena_alloc(call->arena, (size_t)(max + 1) * sizeof *dates);
    sched_date_t last = rule->until.year ? rule->until
                                         : (sched_date_t){SCHED_DATE_MAX_YEAR, 12, 31};
    int got = sched_rule_expand(rule, rule->start, last, dates, max);
    if (got < 0) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, rule->count ? "rule.count" : "rule.until",
                     "the series would meet more than %d times: end it sooner (a new series "
                     "can follow it)",
                     max);
        return NULL;
    }
    if (got == 0) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "rule.until",
                     "the rule has no date on or before until");
        return NULL;
    }
    char *text = bc_arena_alloc(call->arena, (size_t)got * 11 + 3), *p = text;
    *p++ = '{';
    for (int i = 0; i < got; i++) {
        if (i)
            *p++ = ',';
        sched_date_format(dates[i], p);
        p += 10;
    }
    *p++ = '}';
    *p = '\0';
    *n = got;
    return text;
}

char *sched_facilitators(bc_call_t *call, char *const *ids, size_t n, const char *site_id,
                         bool include_caller)
{
    const char *me = call->principal->staff_id;
    if (n == 0) {
        if (!bc_is_uuid(me)) {
            bc_call_fail(call, BC_INVALID_ARGUMENT, "facilitator_ids",
                         "facilitator_ids is required");
            return NULL;
        }
        ids = (char *const *)&me;
        n = 1;
    }
    if (n > S_MAX_FACILITATORS) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "facilitator_ids",
                     "a group has at most %d facilitators", S_MAX_FACILITATORS);
        return NULL;
    }
    char *text = bc_arena_alloc(call->arena, n * 37 + 3), *p = text;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (!bc_is_uuid(ids[i])) {
            bc_call_fail(call, BC_INVALID_ARGUMENT, "facilitator_ids",
                         "facilitator_ids must be UUIDs");
            return NULL;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcasecmp(ids[i], ids[j])) {
                bc_call_fail(call, BC_INVALID_ARGUMENT, "facilitator_ids",
                             "facilitator %s is listed twice", ids[i]);
                return NULL;
            }
        p += sprintf(p, "%s%s", i ? "," : "", ids[i]);
    }
    *p++ = '}';
    *p = '\0';
    if (include_caller && !sched_runs_group(call, ids, n)) {
        bc_call_fail(call, BC_PERMISSION_DENIED, "facilitator_ids",
                     "only a supervisor sets up a group others facilitate: include yourself");
        return NULL;
    }
    const char *params[] = {text, site_id, call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "sched_facilitators_at_site",
        "SELECT f::text FROM unnest($1::uuid[]) f WHERE NOT EXISTS ("
        " SELECT FROM identity.staff_site_directory s"
        " WHERE s.staff_id = f AND s.site_id = $2 AND s.agency_id = $3) LIMIT 1",
        3, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    if (PQntuples(res)) {
        bc_call_fail(call, BC_INVALID_ARGUMENT, "facilitator_ids",
                     "staff member %s does not work at site %s", PQgetvalue(res, 0, 0), site_id);
        PQclear(res);
        return NULL;
    }
    PQclear(res);
    return text;
}

/* The location when given: active at the site and, when its capacity is
 * stated, large enough for the group. */
static bc_code_t s_location(bc_call_t *call, const char *location_id, const char *site_id,
                            int capacity)
{
    bc_code_t code = sched_check_location(call, location_id, site_id);
    if (code != BC_OK)
        return code;
    const char *params[] = {location_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "sched_location_capacity",
                                   "SELECT coalesce(capacity, 0) FROM scheduling.locations "
                                   "WHERE id = $1",
                                   1, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    int room = PQntuples(res) ? atoi(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    if (room && capacity > room)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "capacity",
                            "the location holds %d people: capacity %d does not fit", room,
                            capacity);
    return BC_OK;
}

/* Lays the series' dates out as occurrences starting after cutoff (a
 * timestamptz; "-infinity" for all). */
typedef struct {
    const char *group_id, *site_id, *zone, *start_time, *location_id, *facilitators, *dates,
        *cutoff;
    int minutes;
} s_layout_t;

static bc_code_t s_layout(bc_call_t *call, const s_layout_t *l)
{
    char minutes[16];
    snprintf(minutes, sizeof minutes, "%d", l->minutes);
    const char *dp[] = {l->group_id, l->dates, l->cutoff};
    const char *ip[] = {l->group_id,   call->principal->agency_id, l->site_id,
                        l->start_time, l->zone,                   minutes,
                        l->location_id, l->facilitators,          call->principal->staff_id,
                        l->dates,      l->cutoff};
    bc_error_t err;
    if (bc_db_defer(call->db, "sched_layout_prune",
                    "DELETE FROM scheduling.group_occurrences o WHERE o.group_id = $1"
                    " AND NOT o.edited AND o.status = 'scheduled' AND o.starts_at > $3::timestamptz"
                    " AND o.local_date <> ALL ($2::date[])"
                    " AND NOT EXISTS (SELECT FROM scheduling.group_attendance a"
                    "                 WHERE a.occurrence_id = o.id)",
                    3, dp, NULL, NULL, &err) < 0 ||
        bc_db_defer(
            call->db, "sched_layout",
            "INSERT INTO scheduling.group_occurrences AS o (group_id, agency_id, site_id, "
            "local_date, starts_at, ends_at, location_id, facilitator_ids, updated_by) "
            "SELECT $1, $2, $3, d, t, t + make_interval(mins => $6::int), $7::uuid, $8::uuid[], "
            "$9 FROM unnest($10::date[]) d, "
            "LATERAL (SELECT (d + $4::time) AT TIME ZONE $5 AS t0) z, "
            /* a repeated local time means the first; a skipped one stays
             * PostgreSQL's reading (forward by the gap) */
            "LATERAL (SELECT coalesce(min(c), z.t0) AS t FROM (VALUES (z.t0), "
            "(z.t0 - interval '1 hour'), (z.t0 - interval '30 minutes')) v(c) "
            "WHERE (c AT TIME ZONE $5) = d + $4::time) x "
            "WHERE t > $11::timestamptz "
            "ON CONFLICT (group_id, local_date) DO UPDATE SET starts_at = excluded.starts_at, "
            "ends_at = excluded.ends_at, location_id = excluded.location_id, "
            "facilitator_ids = excluded.facilitator_ids, version = o.version + 1, "
            "updated_by = excluded.updated_by, updated_at = now() "
            "WHERE NOT o.edited AND o.status = 'scheduled' AND o.starts_at > $11::timestamptz "
            "AND (o.starts_at, o.ends_at, o.location_id, o.facilitator_ids) IS DISTINCT FROM "
            "(excluded.starts_at, excluded.ends_at, excluded.location_id, excluded.facilitator_ids)",
            11, ip, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    return BC_OK;
}

/* ---- series -------------------------------------------------------------- */

static bc_code_t s_check_minutes(bc_call_t *call, int minutes)
{
    int max = sched_max_minutes(call);
    if (minutes < S_MIN_MINUTES || minutes > max)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "minutes",
                            "a session lasts %d to %d minutes", S_MIN_MINUTES, max);
    return BC_OK;
}

static bc_code_t s_check_capacity(bc_call_t *call, int capacity)
{
    if (capacity < 1 || capacity > S_MAX_CAPACITY)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "capacity",
                            "capacity must be 1 to %d people", S_MAX_CAPACITY);
    return BC_OK;
}

static const char *s_rule_param(char buf[16], int v)
{
    snprintf(buf, 16, "%d", v);
    return buf;
}

/* Writes the rule into the series row's columns ($n.. in the caller's SQL). */
typedef struct {
    char every[16], weekdays[16], month_week[16], count[16], start[11], until[11];
    const char *freq;
} s_rule_cols_t;

static void s_rule_cols(const sched_rule_t *r, s_rule_cols_t *c)
{
    c->freq = r->freq == SCHED_FREQ_MONTHLY ? "monthly" : "weekly";
    s_rule_param(c->every, r->interval);
    s_rule_param(c->weekdays, (int)r->weekdays);
    s_rule_param(c->month_week, r->month_week);
    s_rule_param(c->count, r->count);
    sched_date_format(r->start, c->start);
    if (r->until.year)
        sched_date_format(r->until, c->until);
    else
        c->until[0] = '\0';
}

bc_code_t groups_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__CreateGroupSessionRequest *req =
        (const Beacon__Scheduling__CreateGroupSessionRequest *)in;
    int topic = -1;
    for (int i = 0; s_topics[i]; i++)
        if (!strcmp(req->topic, s_topics[i]))
            topic = i;
    if (topic < 0)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "topic",
                            "topic must be one of coping_strategies, relapse_prevention, "
                            "goal_setting, self_care, custom");
    const char *title = *req->title ? req->title : s_topic_titles[topic];
    if (!title)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "title", "a custom group needs a title");
    const char *problem = bc_text_problem(title, true, 200);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "title", "title %s", problem);
    if ((problem = bc_text_problem(req->description, false, 2000)))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "description", "description %s", problem);
    const char *mode = *req->mode ? req->mode : "in_person";
    if (!sched_one_of(mode, s_group_modes))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "mode",
                            "a group meets in_person, community or telehealth_video");
    bc_code_t code;
    if ((code = s_check_capacity(call, req->capacity)) != BC_OK ||
        (code = s_check_minutes(call, req->minutes)) != BC_OK)
        return code;
    if (s_start_time(req->start_time))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "start_time",
                            "start_time must be a local time HH:MM, e.g. 18:00");
    sched_rule_t rule;
    if ((code = s_rule(call, req->rule, &rule)) != BC_OK ||
        (code = sched_check_override(call, req->override_conflicts, req->override_reason)) !=
            BC_OK)
        return code;
    int n_dates;
    const char *dates = s_dates(call, &rule, &n_dates);
    if (!dates)
        return call->err.code;
    const char *site = req->site_id;
    if (!*site && call->principal->n_site_ids == 1)
        site = call->principal->site_ids[0];
    if (!bc_is_uuid(site))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    if (!bc_call_has_site(call, site))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "site_id",
                            "you can set up groups only at your own sites");
    char zone[SCHED_ZONE_MAX];
    if ((code = sched_site_zone(call, site, zone)) != BC_OK)
        return code;
    const char *facilitators =
        sched_facilitators(call, req->facilitator_ids, req->n_facilitator_ids, site, true);
    if (!facilitators)
        return call->err.code;
    const char *location = *req->location_id ? req->location_id : NULL;
    if (location && (code = s_location(call, location, site, req->capacity)) != BC_OK)
        return code;

    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0)
        return bc_call_fail_err(call, &err);
    s_rule_cols_t rc;
    s_rule_cols(&rule, &rc);
    char capacity[16], minutes[16];
    const char *params[] = {call->principal->agency_id,
                            site,
                            req->topic,
                            title,
                            *req->description ? req->description : NULL,
                            facilitators,
                            s_rule_param(capacity, req->capacity),
                            location,
                            mode,
                            req->start_time,
                            s_rule_param(minutes, req->minutes),
                            rc.freq,
                            rc.every,
                            rc.weekdays,
                            rc.month_week,
                            rc.start,
                            *rc.until ? rc.until : NULL,
                            rule.count ? rc.count : NULL,
                            req->override_conflicts ? req->override_reason : NULL,
                            call->principal->staff_id};
    PGresult *res = bc_db_prepared(
        call->db, "sched_group_insert",
        "INSERT INTO scheduling.groups (agency_id, site_id, topic, title, description, "
        "facilitator_ids, capacity, location_id, mode, start_time, minutes, freq, every, "
        "weekdays, month_week, start_date, until_date, occurrence_count, override_reason, "
        "created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $6::uuid[], $7::int, $8::uuid, $9, "
        "$10::time, $11::int, $12, $13::int, $14::int, $15::int, $16::date, $17::date, $18::int, "
        "$19, $20, $20) RETURNING id::text",
        20, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    char id[40];
    snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    s_layout_t layout = {id,       site,     zone,  req->start_time, location, facilitators,
                         dates,    "-infinity", req->minutes};
    if ((code = s_layout(call, &layout)) != BC_OK ||
        (code = sched_group_conflicts(call, id, NULL, req->override_conflicts)) != BC_OK)
        return code;
    Beacon__Scheduling__GroupSession *g = sched_group_load(call, id, false);
    if (!g || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &g->base;
    return BC_OK;
}

/* Opens a change of the series: transaction, the row locked, version and
 * permission checked, and the series still active. */
static Beacon__Scheduling__GroupSession *s_open_for_change(bc_call_t *call, const char *id,
                                                           int expected_version)
{
    bc_error_t err;
    if (bc_db_begin(call->db, &err) < 0) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    Beacon__Scheduling__GroupSession *g = sched_group_load(call, id, true);
    if (!g && call->err.code == BC_NOT_FOUND && sched_group_load(call, id, false))
        /* Readable but not changeable by the caller (row security's UPDATE
         * policy also filters SELECT ... FOR UPDATE). */
        bc_call_fail(call, BC_PERMISSION_DENIED, "id",
                     "only the group's facilitators and supervisors change the series");
    if (!g)
        return NULL;
    if (!sched_runs_group(call, g->facilitator_ids, g->n_facilitator_ids)) {
        bc_call_fail(call, BC_PERMISSION_DENIED, "id",
                     "only the group's facilitators and supervisors change the series");
        return NULL;
    }
    if (expected_version && expected_version != g->version) {
        bc_call_fail(call, BC_STALE, "expected_version",
                     "the group session was changed since you read it (now version %d)",
                     g->version);
        return NULL;
    }
    if (strcmp(g->status, "active")) {
        bc_call_fail(call, BC_FAILED_PRECONDITION, "id", "the group session is %s", g->status);
        return NULL;
    }
    return g;
}

bc_code_t groups_update(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__UpdateGroupSessionRequest *req =
        (const Beacon__Scheduling__UpdateGroupSessionRequest *)in;
    const char *problem;
    if (*req->title && (problem = bc_text_problem(req->title, true, 200)))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "title", "title %s", problem);
    if ((problem = bc_text_problem(req->description, false, 2000)))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "description", "description %s", problem);
    bc_code_t code;
    if ((req->capacity && (code = s_check_capacity(call, req->capacity)) != BC_OK) ||
        (req->minutes && (code = s_check_minutes(call, req->minutes)) != BC_OK))
        return code;
    if (*req->start_time && s_start_time(req->start_time))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "start_time",
                            "start_time must be a local time HH:MM, e.g. 18:00");
    sched_rule_t rule;
    if ((req->rule && (code = s_rule(call, req->rule, &rule)) != BC_OK) ||
        (code = sched_check_override(call, req->override_conflicts, req->override_reason)) !=
            BC_OK)
        return code;
    Beacon__Scheduling__GroupSession *g = s_open_for_change(call, req->id, req->expected_version);
    if (!g)
        return call->err.code;
    if (!req->rule) {
        /* The stored rule, as it was made. */
        const char *params[] = {g->id};
        bc_error_t err;
        PGresult *res = bc_db_prepared(call->db, "sched_group_rule",
                                       "SELECT freq, every, weekdays, month_week, start_date, "
                                       "until_date, occurrence_count FROM scheduling.groups "
                                       "WHERE id = $1",
                                       1, params, &err);
        if (!res)
            return bc_call_fail_err(call, &err);
        s_rule_from_row(res, 0, 0, &rule);
        PQclear(res);
    }
    int capacity = req->capacity ? req->capacity : g->capacity;
    if (capacity < g->enrolled)
        return bc_call_fail(call, BC_FAILED_PRECONDITION, "capacity",
                            "%d clients are on the roster: capacity cannot go below that",
                            g->enrolled);
    const char *location = *req->location_id ? req->location_id
                           : *g->location_id  ? g->location_id
                                              : NULL;
    if (location && (*req->location_id || req->capacity) &&
        (code = s_location(call, location, g->site_id, capacity)) != BC_OK)
        return code;
    const char *facilitators;
    if (req->n_facilitator_ids) {
        if (!(facilitators =
                  sched_facilitators(call, req->facilitator_ids, req->n_facilitator_ids, g->site_id,
                                     true)))
            return call->err.code;
    } else {
        size_t len = 3;
        for (size_t i = 0; i < g->n_facilitator_ids; i++)
            len += strlen(g->facilitator_ids[i]) + 1;
        char *text = bc_arena_alloc(call->arena, len), *p = text;
        *p++ = '{';
        for (size_t i = 0; i < g->n_facilitator_ids; i++)
            p += sprintf(p, "%s%s", i ? "," : "", g->facilitator_ids[i]);
        strcpy(p, "}");
        facilitators = text;
    }
    int n_dates;
    const char *dates = s_dates(call, &rule, &n_dates);
    if (!dates)
        return call->err.code;
    const char *start_time = *req->start_time ? req->start_time : g->start_time;
    int minutes = req->minutes ? req->minutes : g->minutes;
    s_rule_cols_t rc;
    s_rule_cols(&rule, &rc);
    char cap[16], mins[16];
    const char *params[] = {g->id,
                            *req->title ? req->title : NULL,
                            *req->description ? req->description : NULL,
                            facilitators,
                            s_rule_param(cap, capacity),
                            location,
                            start_time,
                            s_rule_param(mins, minutes),
                            rc.freq,
                            rc.every,
                            rc.weekdays,
                            rc.month_week,
                            rc.start,
                            *rc.until ? rc.until : NULL,
                            rule.count ? rc.count : NULL,
                            req->override_conflicts ? req->override_reason : NULL,
                            call->principal->staff_id};
    bc_error_t err;
    if (bc_db_defer(call->db, "sched_group_update",
                    "UPDATE scheduling.groups SET title = coalesce($2, title), "
                    "description = coalesce($3, description), facilitator_ids = $4::uuid[], "
                    "capacity = $5::int, location_id = $6::uuid, start_time = $7::time, "
                    "minutes = $8::int, freq = $9, every = $10::int, weekdays = $11::int, "
                    "month_week = $12::int, start_date = $13::date, until_date = $14::date, "
                    "occurrence_count = $15::int, override_reason = coalesce($16, "
                    "override_reason), version = version + 1, updated_by = $17, "
                    "updated_at = now() WHERE id = $1",
                    17, params, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    s_layout_t layout = {g->id,    g->site_id,   g->time_zone, start_time, location,
                         facilitators, dates,    "now",        minutes};
    if ((code = s_layout(call, &layout)) != BC_OK ||
        (code = sched_group_conflicts(call, g->id, NULL, req->override_conflicts)) != BC_OK)
        return code;
    Beacon__Scheduling__GroupSession *b = sched_group_load(call, g->id, false);
    if (!b || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &b->base;
    return BC_OK;
}

bc_code_t groups_cancel(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__CancelGroupSessionRequest *req =
        (const Beacon__Scheduling__CancelGroupSessionRequest *)in;
    const char *problem = bc_text_problem(req->reason, true, 500);
    if (problem)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "reason",
                            "reason %s (cancelling a series needs a reason)", problem);
    Beacon__Scheduling__GroupSession *g = s_open_for_change(call, req->id, req->expected_version);
    if (!g)
        return call->err.code;
    const char *params[] = {g->id, req->reason, call->principal->staff_id};
    bc_error_t err;
    if (bc_db_defer(call->db, "sched_group_cancel",
                    "UPDATE scheduling.groups SET status = 'cancelled', status_reason = $2, "
                    "version = version + 1, updated_by = $3, updated_at = now() WHERE id = $1",
                    3, params, NULL, NULL, &err) < 0 ||
        bc_db_defer(call->db, "sched_group_cancel_occurrences",
                    "UPDATE scheduling.group_occurrences SET status = 'cancelled', "
                    "status_reason = $2, version = version + 1, updated_by = $3, "
                    "updated_at = now() WHERE group_id = $1 AND status = 'scheduled' "
                    "AND starts_at > now()",
                    3, params, NULL, NULL, &err) < 0)
        return bc_call_fail_err(call, &err);
    Beacon__Scheduling__SchedulingEvent ev = BEACON__SCHEDULING__SCHEDULING_EVENT__INIT;
    ev.agency_id = (char *)call->principal->agency_id;
    ev.site_id = g->site_id;
    ev.group_id = g->id;
    ev.status = "cancelled";
    ev.reason = req->reason;
    if (bc_call_emit(call, "group_session.cancelled", &ev.base) < 0)
        return call->err.code;
    Beacon__Scheduling__GroupSession *b = sched_group_load(call, g->id, false);
    if (!b || bc_call_commit(call) < 0)
        return call->err.code;
    *out = &b->base;
    return BC_OK;
}

bc_code_t groups_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__GetGroupSessionRequest *req =
        (const Beacon__Scheduling__GetGroupSessionRequest *)in;
    Beacon__Scheduling__GroupSession *g = sched_group_load(call, req->id, false);
    if (!g)
        return call->err.code;
    bc_code_t code = sched_roster_read(call, g);
    if (code != BC_OK)
        return code;
    *out = &g->base;
    return BC_OK;
}

bc_code_t groups_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Scheduling__ListGroupSessionsRequest *req =
        (const Beacon__Scheduling__ListGroupSessionsRequest *)in;
    if (*req->site_id && !bc_is_uuid(req->site_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "site_id", "site_id must be a UUID");
    if (*req->client_id && !bc_is_uuid(req->client_id))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "client_id", "client_id must be a UUID");
    const char *staff = NULL;
    if (*req->staff_id) {
        if (!strcmp(req->staff_id, "me"))
            staff = call->principal->staff_id;
        else if (bc_is_uuid(req->staff_id))
            staff = req->staff_id;
        else
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "staff_id",
                                "staff_id must be a UUID or \"me\"");
    }
    const char *status = *req->status ? req->status : "active";
    if (strcmp(status, "active") && strcmp(status, "cancelled") && strcmp(status, "all"))
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "status must be active, cancelled or all");
    const char *params[] = {call->principal->agency_id, *req->site_id ? req->site_id : NULL,
                            staff, *req->client_id ? req->client_id : NULL,
                            strcmp(status, "all") ? status : NULL};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "sched_groups_list",
        "SELECT " S_GROUP_COLUMNS S_GROUP_FROM " WHERE g.agency_id = $1"
        " AND ($2::uuid IS NULL OR g.site_id = $2::uuid)"
        " AND ($3::uuid IS NULL OR $3::uuid = ANY (g.facilitator_ids))"
        " AND ($4::uuid IS NULL OR EXISTS (SELECT FROM scheduling.group_roster r"
        "      WHERE r.group_id = g.id AND r.client_id = $4::uuid AND r.left_at IS NULL))"
        " AND ($5::text IS NULL OR g.status = $5) ORDER BY g.title, g.id LIMIT 500",
        5, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Scheduling__ListGroupSessionsReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__scheduling__list_group_sessions_reply__init(r);
    int n = PQntuples(res);
    r->groups = bc_arena_alloc(call->arena, (size_t)(n ? n : 1) * sizeof *r->groups);
    for (int i = 0; i < n; i++)
        r->groups[r->n_groups++] = s_group_from_row(call, res, i);
    PQclear(res);
    /* Which groups a client attends is part of their record. */
    for (size_t i = 0; *req->client_id && i < r->n_groups; i++) {
        bc_audit_event_t ev = {.site_id = r->groups[i]->site_id, .action = BC_AUDIT_READ,
                               .resource_type = "group_roster", .resource_id = r->groups[i]->id,
                               .client_id = req->client_id, .purpose = "treatment"};
        if (bc_call_audit_read(call, &ev) < 0)
            return call->err.code;
    }
    *out = &r->base;
    return BC_OK;
}
