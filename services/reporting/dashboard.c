/*  dashboard: the site, agency and region dashboards and their CSV export.
 *
 *  Each reads the rollups the consumer keeps (migration 003) for the
 *  requested grain: one row per site and period through an index, never raw
 *  events, so a dashboard reads a few thousand rows at most: a site over
 *  three years by week is 157 rows (and its staff's); agencies and regions
 *  read the agency rollups (a region of 5 agencies over three years by
 *  month: 180 rows for the time series, 180 for the breakdown by agency).
 *
 *  Who sees what (deny by default):
 *  - site: the site's supervisors and the agency's admins, identified (staff
 *    breakdown by staff id); the agency's analysts, de-identified.
 *  - agency: the caller's agency; agency admins identified, analysts
 *    de-identified.
 *  - region: agencies grouped in reporting.regions (regions.c); an agency
 *    admin or analyst of a member agency (one that accepted); always
 *    de-identified, since it shows other agencies.
 *  De-identified: no staff breakdown, no client or staff ids anywhere, small
 *  cells suppressed (suppress.h). Every dashboard read or export is audited.
 *  People served (served.c) and the staff tables (staff_tables.c) are built
 *  in their own files and appended here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_util.h"
#include "reporting.h"
#include "dashboard.h"
#include "suppress.h"

/* ---- dates ------------------------------------------------------------------ */

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t s_days(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void s_civil(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* Parses YYYY-MM-DD (a real date, years 1900-9999) into days. */
static bool s_parse_date(const char *s, int64_t *out)
{
    int y, m, d;
    char tail;
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
        sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || y < 1900 || m < 1 || m > 12 ||
        d < 1)
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    int64_t z = s_days(y, m, d);
    int yy, mm, dd;
    s_civil(z, &yy, &mm, &dd);
    if (yy != y || mm != m || dd != d)
        return false; /* 2026-02-30 */
    *out = z;
    return true;
}

static void s_format_date(int64_t z, char out[11])
{
    int y, m, d;
    s_civil(z, &y, &m, &d);
    snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
}

/* The start of the period holding day z. */
static int64_t s_trunc(int64_t z, char grain)
{
    if (grain == 'w')
        return z - ((z % 7 + 7 + 3) % 7); /* 1970-01-01 was a Thursday */
    if (grain == 'm') {
        int y, m, d;
        s_civil(z, &y, &m, &d);
        return s_days(y, m, 1);
    }
    return z;
}

/* The last day of the period starting at z. */
static int64_t s_period_end(int64_t z, char grain)
{
    if (grain == 'w')
        return z + 6;
    if (grain == 'm') {
        int y, m, d;
        s_civil(z, &y, &m, &d);
        return (m == 12 ? s_days(y + 1, 1, 1) : s_days(y, m + 1, 1)) - 1;
    }
    return z;
}

/* ---- the request -------------------------------------------------------------- */

static const char *const s_scope_names[] = {"site", "agency", "region"};


static bool s_has(const bc_call_t *call, const char *role)
{
    return bc_call_has_role(call, role);
}

/* Checks dates and grain; fills q. */
static bc_code_t s_dates(bc_call_t *call, const Beacon__Reporting__DashboardRequest *req,
                         rp_query_t *q)
{
    const char *g = req->grain && *req->grain ? req->grain : "week";
    if (!strcmp(g, "day"))
        q->grain = 'd', q->interval = "1 day";
    else if (!strcmp(g, "week"))
        q->grain = 'w', q->interval = "1 week";
    else if (!strcmp(g, "month"))
        q->grain = 'm', q->interval = "1 month";
    else
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "grain", "grain must be day, week or month");
    q->grain_name = g;
    int64_t to, from;
    if (req->to && *req->to) {
        if (!s_parse_date(req->to, &to))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "to", "to must be a date (YYYY-MM-DD)");
    } else {
        to = bc_now_ms() / 86400000;
    }
    if (req->from && *req->from) {
        if (!s_parse_date(req->from, &from))
            return bc_call_fail(call, BC_INVALID_ARGUMENT, "from",
                                "from must be a date (YYYY-MM-DD)");
    } else {
        from = to - 89;
    }
    if (from > to)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "from",
                            "the date range is inverted: from is after to");
    int64_t max_days = bc_config_int(call->config, "dashboard_max_days");
    if (to - from + 1 > max_days)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "to",
                            "the date range is longer than %lld days", (long long)max_days);
    int64_t first = s_trunc(from, q->grain);
    int64_t last = s_trunc(to, q->grain);
    int64_t periods = q->grain == 'd' ? last - first + 1 : q->grain == 'w' ? (last - first) / 7 + 1 : 0;
    if (q->grain == 'm') {
        int y1, m1, d1, y2, m2, d2;
        s_civil(first, &y1, &m1, &d1);
        s_civil(last, &y2, &m2, &d2);
        periods = (y2 - y1) * 12 + (m2 - m1) + 1;
    }
    int64_t max_periods = bc_config_int(call->config, "dashboard_max_periods");
    if (periods > max_periods)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "grain",
                            "%lld periods of a %s are more than %lld: choose a longer grain",
                            (long long)periods, g, (long long)max_periods);
    s_format_date(from, q->from);
    s_format_date(to, q->to);
    s_format_date(first, q->first);
    s_format_date(s_period_end(last, q->grain), q->end);
    return BC_OK;
}

/* Who may see this dashboard, and how (see the file header). */
static bc_code_t s_access(bc_call_t *call, const Beacon__Reporting__DashboardRequest *req,
                          rp_scope_t scope, rp_query_t *q)
{
    const Beacon__Principal *p = call->principal;
    bool analyst = s_has(call, "analyst"), admin = s_has(call, "agency_admin");
    q->scope = scope;
    bc_error_t err;
    if (!bc_is_uuid(p->agency_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "", "dashboards need an agency");
    if (scope == RP_SITE) {
        if (!bc_is_uuid(req->site_id))
            return bc_call_fail(call, BC_NOT_FOUND, "site_id", "no site %s", req->site_id);
        const char *params[] = {req->site_id, p->agency_id};
        PGresult *res = bc_db_prepared(call->db, "rp_site_agency",
                                       "SELECT 1 FROM identity.site_directory "
                                       "WHERE site_id = $1::uuid AND agency_id = $2::uuid",
                                       2, params, &err);
        if (!res)
            return bc_call_fail_err(call, &err);
        bool ours = PQntuples(res) == 1;
        PQclear(res);
        bool supervisor = s_has(call, "supervisor") && bc_call_has_site(call, req->site_id);
        if (!ours || !(supervisor || admin || analyst))
            return bc_call_fail(call, BC_NOT_FOUND, "site_id", "no site %s in your scope",
                                req->site_id);
        q->deidentified = !(supervisor || admin);
        q->scope_id = req->site_id;
        snprintf(q->ids, sizeof q->ids, "{%s}", req->site_id);
        return BC_OK;
    }
    if (scope == RP_AGENCY) {
        if (!admin && !analyst)
            return bc_call_fail(call, BC_PERMISSION_DENIED, "", "agency dashboards are for "
                                "agency admins and analysts");
        q->deidentified = !admin;
        q->scope_id = p->agency_id;
        snprintf(q->ids, sizeof q->ids, "{%s}", p->agency_id);
        return BC_OK;
    }
    if (!admin && !analyst)
        return bc_call_fail(call, BC_PERMISSION_DENIED, "",
                            "region dashboards are for agency admins and analysts");
    if (!bc_is_uuid(req->region_id))
        return bc_call_fail(call, BC_NOT_FOUND, "region_id", "no region %s", req->region_id);
    const char *params[] = {req->region_id, p->agency_id};
    PGresult *res = bc_db_prepared(
        call->db, "rp_region",
        "SELECT '{' || string_agg(agency_id::text, ',' ORDER BY agency_id) || '}' "
        "FROM reporting.region_agencies WHERE region_id = $1::uuid AND accepted "
        "HAVING bool_or(agency_id = $2::uuid) AND count(*) <= 100",
        2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    if (PQntuples(res) != 1) {
        PQclear(res);
        return bc_call_fail(call, BC_NOT_FOUND, "region_id",
                            "no region %s that your agency belongs to", req->region_id);
    }
    snprintf(q->ids, sizeof q->ids, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    q->deidentified = true;
    q->scope_id = req->region_id;
    return BC_OK;
}

/* ---- tables --------------------------------------------------------------------- */

/* The measures of the activity and sites tables, in the order the queries
 * return them after the key. */
static const char *const s_activity_measures[] = {
    "encounters",     "encounter_minutes", "units",           "group_attendance",
    "group_sessions", "noshows",           "enrollments",     "discharges",
    "active_caseload", "notes_signed",     "notes_late",      "notes_overdue",
    "referrals_made", "referrals_closed",  "loop_closure_days_avg"};
#define S_NACT 15
#define S_ACTIVE 8
#define S_CLOSED 13
#define S_AVG 14

/* Raw columns after the key: 14 sums (active as its end-of-period value)
 * then closure_seconds. */
#define S_SUMS                                                                                  \
    "sum(encounters) AS encounters, sum(encounter_minutes) AS encounter_minutes, "               \
    "sum(units) AS units, sum(group_attendance) AS group_attendance, "                          \
    "sum(group_sessions) AS group_sessions, sum(noshows) AS noshows, "                          \
    "sum(enrollments) AS enrollments, sum(discharges) AS discharges, "                          \
    "sum(active_delta) AS active_delta, sum(notes_signed) AS notes_signed, "                    \
    "sum(notes_late) AS notes_late, sum(notes_overdue) AS notes_overdue, "                      \
    "sum(referrals_made) AS referrals_made, sum(referrals_closed) AS referrals_closed, "         \
    "sum(closure_seconds) AS closure_seconds "

#define S_ACTIVITY_SQL(TABLE, COL)                                                                     \
    "WITH p AS (SELECT generate_series($3::date, $4::date, $5::interval)::date AS period), "   \
    "r AS (SELECT period, " S_SUMS "FROM " TABLE " WHERE " COL                      \
    " = ANY ($1::uuid[]) AND grain = $2::\"char\" AND period BETWEEN $3::date AND $4::date "   \
    "GROUP BY period), "                                                                        \
    "b AS (SELECT (SELECT coalesce(sum(active_delta), 0) FROM " TABLE " "          \
    "WHERE " COL " = ANY ($1::uuid[]) AND grain = 'm' AND period < "                            \
    "date_trunc('month', $3::date)::date) + (SELECT coalesce(sum(active_delta), 0) "            \
    "FROM " TABLE " WHERE " COL " = ANY ($1::uuid[]) AND grain = 'd' AND period "   \
    ">= date_trunc('month', $3::date)::date AND period < $3::date) AS base) "                   \
    "SELECT to_char(p.period, 'YYYY-MM-DD'), coalesce(encounters, 0), "                         \
    "coalesce(encounter_minutes, 0), coalesce(units, 0), coalesce(group_attendance, 0), "       \
    "coalesce(group_sessions, 0), coalesce(noshows, 0), coalesce(enrollments, 0), "             \
    "coalesce(discharges, 0), b.base + sum(coalesce(active_delta, 0)) OVER (ORDER BY p.period), " \
    "coalesce(notes_signed, 0), coalesce(notes_late, 0), coalesce(notes_overdue, 0), "          \
    "coalesce(referrals_made, 0), coalesce(referrals_closed, 0), coalesce(closure_seconds, 0) " \
    "FROM p LEFT JOIN r USING (period) CROSS JOIN b ORDER BY p.period"

#define S_BREAKDOWN_SQL(TABLE, KEY, COL)                                                                        \
    "SELECT s." KEY "::text, " S_SUMS ", (SELECT coalesce(sum(a.active_delta), 0) "             \
    "FROM " TABLE " a WHERE a." KEY " = s." KEY " AND a.grain = 'm' AND "           \
    "a.period < date_trunc('month', $5::date)::date) + (SELECT coalesce(sum(a.active_delta), "  \
    "0) FROM " TABLE " a WHERE a." KEY " = s." KEY " AND a.grain = 'd' AND "        \
    "a.period >= date_trunc('month', $5::date)::date AND a.period <= $5::date) "                \
    "FROM " TABLE " s WHERE s." COL " = ANY ($1::uuid[]) AND s.grain = "            \
    "$2::\"char\" AND s.period BETWEEN $3::date AND $4::date GROUP BY s." KEY " ORDER BY 1"

#define S_OUTCOMES_SQL(COL)                                                                     \
    "SELECT outcome, sum(referrals) FROM reporting.outcome_rollup WHERE " COL                   \
    " = ANY ($1::uuid[]) AND grain = $2::\"char\" AND period BETWEEN $3::date AND $4::date "   \
    "GROUP BY outcome ORDER BY outcome"

#define S_BARC_SQL(COL)                                                                         \
    "SELECT site_id::text, clients_assessed, clients_reassessed, change_sum "                   \
    "FROM reporting.barc_sites WHERE " COL " = ANY ($1::uuid[]) ORDER BY 1"


rp_table_t *rp_table_new(bc_call_t *call, const char *name, const char *key,
                              const char *const *measures, size_t nmeasures, size_t rows,
                              bool has_total)
{
    rp_table_t *t = bc_arena_alloc(call->arena, sizeof *t);
    memset(t, 0, sizeof *t);
    t->name = name;
    t->key = key;
    t->measures = measures;
    t->nmeasures = nmeasures;
    t->rows = rows;
    t->has_total = has_total;
    size_t all = rows + (has_total ? 1 : 0);
    t->cells = bc_arena_alloc(call->arena, (all ? all : 1) * nmeasures * sizeof *t->cells);
    memset(t->cells, 0, (all ? all : 1) * nmeasures * sizeof *t->cells);
    t->keys = bc_arena_alloc(call->arena, (all ? all : 1) * sizeof *t->keys);
    if (has_total)
        t->keys[rows] = "total";
    return t;
}

void rp_table_labels(bc_call_t *call, rp_table_t *t, const char *const *labels, size_t n)
{
    size_t all = t->rows + (t->has_total ? 1 : 0);
    t->labels = labels;
    t->nlabels = n;
    t->row_labels = bc_arena_alloc(call->arena, (all ? all : 1) * sizeof *t->row_labels);
    for (size_t r = 0; r < all; r++) {
        t->row_labels[r] = bc_arena_alloc(call->arena, n * sizeof **t->row_labels);
        for (size_t k = 0; k < n; k++)
            t->row_labels[r][k] = "";
    }
}

rp_cell_t *rp_table_cell(rp_table_t *t, size_t row, size_t col)
{
    return &t->cells[row * t->nmeasures + col];
}

void rp_table_set(rp_table_t *t, size_t row, size_t col, double value, int64_t count)
{
    rp_cell_t *c = rp_table_cell(t, row, col);
    c->value = value;
    c->count = count;
}

/* Fills an activity-shaped row (15 measures) from res columns 1..15. */
static void s_fill_activity(rp_table_t *t, size_t row, PGresult *res, int i)
{
    for (int c = 0; c < S_AVG; c++) {
        int64_t v = atoll(PQgetvalue(res, i, c + 1));
        rp_table_set(t, row, (size_t)c, (double)v, v);
    }
    int64_t closed = atoll(PQgetvalue(res, i, S_CLOSED + 1));
    double secs = atof(PQgetvalue(res, i, S_AVG + 1));
    rp_table_set(t, row, S_AVG, closed ? secs / closed / 86400.0 : 0, closed);
}

/* The total row of an activity-shaped table: sums, the end value of the
 * caseload (time series) or its sum (sites), and the overall average. */
static void s_total_activity(rp_table_t *t, bool caseload_is_sum)
{
    size_t tr = t->rows;
    double closure = 0;
    for (size_t c = 0; c < S_AVG; c++) {
        int64_t sum = 0;
        for (size_t r = 0; r < tr; r++)
            sum += rp_table_cell(t, r, c)->count;
        if (c == S_ACTIVE && !caseload_is_sum)
            sum = tr ? rp_table_cell(t, tr - 1, c)->count : 0;
        rp_table_set(t, tr, c, (double)sum, sum);
    }
    for (size_t r = 0; r < tr; r++)
        closure += rp_table_cell(t, r, S_AVG)->value * (double)rp_table_cell(t, r, S_CLOSED)->count;
    int64_t closed = rp_table_cell(t, tr, S_CLOSED)->count;
    rp_table_set(t, tr, S_AVG, closed ? closure / (double)closed : 0, closed);
}

static void s_suppress_activity(const rp_query_t *q, rp_table_t *t, bool caseload_is_sum)
{
    rp_column_t cols[S_NACT];
    for (int c = 0; c < S_NACT; c++)
        cols[c] = (rp_column_t){.follows = -1, .additive = true};
    cols[1].follows = cols[2].follows = 0; /* minutes and units: of the encounters */
    cols[S_ACTIVE].additive = caseload_is_sum;
    cols[S_AVG].follows = S_CLOSED;
    cols[S_AVG].additive = false;
    if (q->deidentified)
        rp_suppress(t->cells, t->rows + 1, S_NACT, cols, true, 11);
}

PGresult *rp_run(bc_call_t *call, const char *name, const char *sql, int n,
                       const char *const *params)
{
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, name, sql, n, params, &err);
    if (!res)
        bc_call_fail_err(call, &err);
    return res;
}

/* Builds every table of the dashboard q. NULL on failure (call->err set). */
static rp_table_t **s_tables(bc_call_t *call, const rp_query_t *q, size_t *ntables)
{
    bool by_site = q->scope == RP_SITE;
    char grain[2] = {q->grain, 0};
    const char *params[] = {q->ids, grain, q->first, q->to, q->interval};
    rp_table_t **tables = bc_arena_alloc(call->arena, 9 * sizeof *tables);
    size_t n = 0;

    PGresult *res =
        by_site ? rp_run(call, "rp_activity_site",
                        S_ACTIVITY_SQL("reporting.site_rollup", "site_id"), 5, params)
                : rp_run(call, "rp_activity_agency",
                        S_ACTIVITY_SQL("reporting.agency_rollup", "agency_id"), 5, params);
    if (!res)
        return NULL;
    rp_table_t *t = rp_table_new(call, "activity", "period", s_activity_measures, S_NACT,
                               (size_t)PQntuples(res), true);
    for (int i = 0; i < PQntuples(res); i++) {
        t->keys[i] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        s_fill_activity(t, (size_t)i, res, i);
    }
    PQclear(res);
    s_total_activity(t, false);
    s_suppress_activity(q, t, false);
    tables[n++] = t;

    if (!by_site) {
        const char *sp[] = {q->ids, grain, q->first, q->to, q->end};
        /* An agency by site; a region by agency. */
        bool region = q->scope == RP_REGION;
        res = region ? rp_run(call, "rp_agencies",
                             S_BREAKDOWN_SQL("reporting.agency_rollup", "agency_id", "agency_id"),
                             5, sp)
                     : rp_run(call, "rp_sites",
                             S_BREAKDOWN_SQL("reporting.site_rollup", "site_id", "agency_id"), 5,
                             sp);
        if (!res)
            return NULL;
        t = rp_table_new(call, region ? "agencies" : "sites", region ? "agency_id" : "site_id",
                        s_activity_measures, S_NACT, (size_t)PQntuples(res), true);
        for (int i = 0; i < PQntuples(res); i++) {
            t->keys[i] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
            /* Columns: 14 sums with active_delta at 9, closure at 15, the
             * caseload at the end at 16. */
            s_fill_activity(t, (size_t)i, res, i);
            int64_t active = atoll(PQgetvalue(res, i, 16));
            rp_table_set(t, (size_t)i, S_ACTIVE, (double)active, active);
        }
        PQclear(res);
        s_total_activity(t, true);
        s_suppress_activity(q, t, true);
        tables[n++] = t;
    } else if (!q->deidentified) {
        static const char *const staff_measures[] = {
            "encounters",   "encounter_minutes", "units",         "noshows",
            "notes_signed", "notes_late",        "notes_overdue", "referrals_made"};
        /* The staff's totals over the series' whole periods, from the
         * month rows of the months inside them and the day rows of the
         * days at either end: three years by week is 36 x staff rows,
         * not 157 x staff. */
        const char *sp[] = {q->scope_id, q->first, q->end};
        res = rp_run(call, "rp_staff",
                    "WITH " RP_SPAN_CTE("$2", "$3") ", "
                    "r AS (" RP_SPAN_ROWS("reporting.staff_rollup", "s.site_id = $1::uuid") ") "
                    "SELECT staff_id::text, sum(encounters), sum(encounter_minutes), sum(units), "
                    "sum(noshows), sum(notes_signed), sum(notes_late), sum(notes_overdue), "
                    "sum(referrals_made) FROM r GROUP BY staff_id ORDER BY 1",
                    3, sp);
        if (!res)
            return NULL;
        t = rp_table_new(call, "staff", "staff_id", staff_measures, 8, (size_t)PQntuples(res),
                        false);
        for (int i = 0; i < PQntuples(res); i++) {
            t->keys[i] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
            for (int c = 0; c < 8; c++) {
                int64_t v = atoll(PQgetvalue(res, i, c + 1));
                rp_table_set(t, (size_t)i, (size_t)c, (double)v, v);
            }
        }
        PQclear(res);
        tables[n++] = t;
    }

    static const char *const outcome_measures[] = {"referrals_closed"};
    res = by_site ? rp_run(call, "rp_outcomes_site", S_OUTCOMES_SQL("site_id"), 4, params)
                  : rp_run(call, "rp_outcomes_agency", S_OUTCOMES_SQL("agency_id"), 4, params);
    if (!res)
        return NULL;
    t = rp_table_new(call, "referral_outcomes", "outcome", outcome_measures, 1,
                    (size_t)PQntuples(res), true);
    int64_t sum = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        t->keys[i] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        int64_t v = atoll(PQgetvalue(res, i, 1));
        rp_table_set(t, (size_t)i, 0, (double)v, v);
        sum += v;
    }
    PQclear(res);
    rp_table_set(t, t->rows, 0, (double)sum, sum);
    if (q->deidentified) {
        rp_column_t cols[] = {{.follows = -1, .additive = true}};
        rp_suppress(t->cells, t->rows + 1, 1, cols, true, 11);
    }
    tables[n++] = t;

    static const char *const barc_measures[] = {"clients_assessed", "clients_reassessed",
                                                "mean_change"};
    const char *bp[] = {q->ids};
    res = by_site ? rp_run(call, "rp_barc_site", S_BARC_SQL("site_id"), 1, bp)
                  : rp_run(call, "rp_barc_agency", S_BARC_SQL("agency_id"), 1, bp);
    if (!res)
        return NULL;
    t = rp_table_new(call, "barc10", "site_id", barc_measures, 3, (size_t)PQntuples(res), true);
    int64_t assessed = 0, reassessed = 0, change = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        t->keys[i] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        int64_t a = atoll(PQgetvalue(res, i, 1)), r = atoll(PQgetvalue(res, i, 2)),
                ch = atoll(PQgetvalue(res, i, 3));
        rp_table_set(t, (size_t)i, 0, (double)a, a);
        rp_table_set(t, (size_t)i, 1, (double)r, r);
        rp_table_set(t, (size_t)i, 2, r ? (double)ch / (double)r : 0, r);
        assessed += a, reassessed += r, change += ch;
    }
    PQclear(res);
    rp_table_set(t, t->rows, 0, (double)assessed, assessed);
    rp_table_set(t, t->rows, 1, (double)reassessed, reassessed);
    rp_table_set(t, t->rows, 2, reassessed ? (double)change / (double)reassessed : 0, reassessed);
    if (q->deidentified) {
        rp_column_t cols[] = {{.follows = -1, .additive = true},
                              {.follows = -1, .additive = true},
                              {.follows = 1, .additive = false}};
        rp_suppress(t->cells, t->rows + 1, 3, cols, true, 11);
    }
    tables[n++] = t;
    if (!(tables[n++] = rp_people_served(call, q)))
        return NULL;
    if (rp_staff_tables(call, q, tables, &n) < 0)
        return NULL;
    *ntables = n;
    return tables;
}

static int s_audit(bc_call_t *call, const rp_query_t *q, const char *action, const char *table)
{
    char detail[400];
    snprintf(detail, sizeof detail,
             "{\"scope\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"grain\":\"%s\","
             "\"deidentified\":%s,\"table\":\"%s\"}",
             s_scope_names[q->scope], q->from, q->to, q->grain_name,
             q->deidentified ? "true" : "false", table ? table : "");
    bc_audit_event_t ev = {.site_id = q->scope == RP_SITE ? q->scope_id : NULL,
                           .action = action,
                           .resource_type = "dashboard",
                           .resource_id = q->scope_id,
                           .purpose = "operations",
                           .detail = detail};
    return bc_call_audit_read(call, &ev);
}

static Beacon__Reporting__Dashboard *s_reply(bc_call_t *call, const rp_query_t *q,
                                            rp_table_t **tables, size_t ntables)
{
    Beacon__Reporting__Dashboard *d = bc_arena_alloc(call->arena, sizeof *d);
    beacon__reporting__dashboard__init(d);
    d->scope = (char *)s_scope_names[q->scope];
    d->scope_id = (char *)q->scope_id;
    d->from = bc_arena_strdup(call->arena, q->from);
    d->to = bc_arena_strdup(call->arena, q->to);
    d->grain = (char *)q->grain_name;
    d->deidentified = q->deidentified;
    d->tables = bc_arena_alloc(call->arena, ntables * sizeof *d->tables);
    for (size_t k = 0; k < ntables; k++) {
        rp_table_t *t = tables[k];
        Beacon__Reporting__DashboardTable *dt = bc_arena_alloc(call->arena, sizeof *dt);
        beacon__reporting__dashboard_table__init(dt);
        dt->name = (char *)t->name;
        dt->key = (char *)t->key;
        dt->measures = (char **)t->measures;
        dt->n_measures = t->nmeasures;
        dt->labels = (char **)t->labels;
        dt->n_labels = t->nlabels;
        size_t all = t->rows + (t->has_total ? 1 : 0);
        dt->rows = bc_arena_alloc(call->arena, (all ? all : 1) * sizeof *dt->rows);
        Beacon__Reporting__Cell *cells =
            bc_arena_alloc(call->arena, (all ? all : 1) * t->nmeasures * sizeof *cells);
        Beacon__Reporting__Cell **cellp =
            bc_arena_alloc(call->arena, (all ? all : 1) * t->nmeasures * sizeof *cellp);
        Beacon__Reporting__DashboardRow *rows =
            bc_arena_alloc(call->arena, (all ? all : 1) * sizeof *rows);
        for (size_t r = 0; r < all; r++) {
            Beacon__Reporting__DashboardRow *row = &rows[r];
            beacon__reporting__dashboard_row__init(row);
            row->key = t->keys[r];
            row->cells = &cellp[r * t->nmeasures];
            row->n_cells = t->nmeasures;
            if (t->nlabels) {
                row->labels = t->row_labels[r];
                row->n_labels = t->nlabels;
            }
            for (size_t c = 0; c < t->nmeasures; c++) {
                Beacon__Reporting__Cell *cell = &cells[r * t->nmeasures + c];
                beacon__reporting__cell__init(cell);
                const rp_cell_t *src = rp_table_cell(t, r, c);
                cell->suppressed = src->suppressed;
                cell->value = src->suppressed ? 0 : src->value;
                row->cells[c] = cell;
            }
            dt->rows[dt->n_rows++] = row;
        }
        d->tables[d->n_tables++] = dt;
    }
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "rp_positions",
        "SELECT coalesce(sum(last_seq), 0), coalesce(to_char(max(applied_at) AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') FROM reporting.positions",
        0, NULL, &err);
    if (res) {
        d->events_applied = atoll(PQgetvalue(res, 0, 0));
        d->as_of = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 1));
        PQclear(res);
    } else {
        d->as_of = "";
    }
    return d;
}

static bc_code_t s_dashboard(bc_call_t *call, const ProtobufCMessage *in, rp_scope_t scope,
                             rp_query_t *q, rp_table_t ***tables, size_t *ntables)
{
    const Beacon__Reporting__DashboardRequest *req = (const Beacon__Reporting__DashboardRequest *)in;
    memset(q, 0, sizeof *q);
    bc_code_t code = s_access(call, req, scope, q);
    if (code != BC_OK)
        return code;
    if ((code = s_dates(call, req, q)) != BC_OK)
        return code;
    *tables = s_tables(call, q, ntables);
    return *tables ? BC_OK : call->err.code;
}

static bc_code_t s_serve(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out,
                         rp_scope_t scope)
{
    rp_query_t q;
    rp_table_t **tables;
    size_t n;
    bc_code_t code = s_dashboard(call, in, scope, &q, &tables, &n);
    if (code != BC_OK)
        return code;
    if (s_audit(call, &q, BC_AUDIT_READ, NULL) < 0)
        return call->err.code;
    *out = &s_reply(call, &q, tables, n)->base;
    return BC_OK;
}

bc_code_t dashboard_site(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    return s_serve(call, in, out, RP_SITE);
}

bc_code_t dashboard_agency(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    return s_serve(call, in, out, RP_AGENCY);
}

bc_code_t dashboard_region(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    return s_serve(call, in, out, RP_REGION);
}

/* ---- CSV --------------------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} s_buf_t;

static void s_put(bc_call_t *call, s_buf_t *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *bigger = bc_arena_alloc(call->arena, cap);
        if (b->len)
            memcpy(bigger, b->data, b->len);
        b->data = bigger;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

bc_code_t dashboard_export(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Reporting__DashboardRequest *req = (const Beacon__Reporting__DashboardRequest *)in;
    rp_scope_t scope = *req->site_id ? RP_SITE : *req->region_id ? RP_REGION : RP_AGENCY;
    rp_query_t q;
    rp_table_t **tables;
    size_t n;
    bc_code_t code = s_dashboard(call, in, scope, &q, &tables, &n);
    if (code != BC_OK)
        return code;
    const char *want = *req->table ? req->table : "activity";
    rp_table_t *t = NULL;
    for (size_t k = 0; k < n; k++)
        if (!strcmp(tables[k]->name, want))
            t = tables[k];
    if (!t)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "table",
                            "this dashboard has no table %s", want);
    s_buf_t b = {0};
    /* Every field is a fixed name, a date, a uuid, a code or a number: none
     * needs quoting, and none starts with a formula character. */
    s_put(call, &b, t->key);
    for (size_t k = 0; k < t->nlabels; k++) {
        s_put(call, &b, ",");
        s_put(call, &b, t->labels[k]);
    }
    for (size_t c = 0; c < t->nmeasures; c++) {
        s_put(call, &b, ",");
        s_put(call, &b, t->measures[c]);
    }
    s_put(call, &b, "\r\n");
    size_t all = t->rows + (t->has_total ? 1 : 0);
    for (size_t r = 0; r < all; r++) {
        s_put(call, &b, t->keys[r]);
        for (size_t k = 0; k < t->nlabels; k++) {
            s_put(call, &b, ",");
            s_put(call, &b, t->row_labels[r][k]);
        }
        for (size_t c = 0; c < t->nmeasures; c++) {
            const rp_cell_t *cell = rp_table_cell(t, r, c);
            char num[64];
            if (cell->suppressed)
                snprintf(num, sizeof num, ",suppressed");
            else if (cell->value == (double)(int64_t)cell->value)
                snprintf(num, sizeof num, ",%lld", (long long)cell->value);
            else
                snprintf(num, sizeof num, ",%.2f", cell->value);
            s_put(call, &b, num);
        }
        s_put(call, &b, "\r\n");
    }
    if (s_audit(call, &q, BC_AUDIT_EXPORT, t->name) < 0)
        return call->err.code;
    Beacon__FileReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__file_reply__init(r);
    r->content_type = "text/csv; charset=utf-8";
    r->filename = bc_arena_printf(call->arena, "beacon-%s-%s-%s-%s.csv", s_scope_names[q.scope],
                                  t->name, q.from, q.to);
    r->body.data = (uint8_t *)b.data;
    r->body.len = b.len;
    *out = &r->base;
    return BC_OK;
}
