/*  served: the people_served table of the dashboards (README "Reporting";
 *  migration 010): per period, the clients with at least one contact in it,
 *  each counted once however many contacts they had. The total row is the
 *  number of distinct clients over the whole range (from the month rows of
 *  the months inside it and the day rows at either end), not the sum of the
 *  periods: someone seen in two weeks is one person of the range. A region
 *  adds its agencies (a client belongs to one agency). De-identified, cells
 *  of 1 to 10 people are suppressed; the total is not a sum, so nothing is
 *  recovered from it by subtraction. */
#include <stdlib.h>

#include "dashboard.h"

#define S_SERIES_SQL(TABLE, COL)                                                                \
    "WITH p AS (SELECT generate_series($3::date, $4::date, $5::interval)::date AS period), "   \
    "r AS (SELECT period, sum(people) AS people FROM " TABLE " WHERE " COL                     \
    " = ANY ($1::uuid[]) AND grain = $2::\"char\" AND period BETWEEN $3::date AND $4::date "   \
    "GROUP BY period) "                                                                         \
    "SELECT to_char(p.period, 'YYYY-MM-DD'), coalesce(r.people, 0) FROM p LEFT JOIN r "       \
    "USING (period) ORDER BY p.period"

#define S_DISTINCT_SQL(TABLE, COL)                                                              \
    "WITH " RP_SPAN_CTE("$2", "$3") ", "                                                        \
    "r AS (" RP_SPAN_ROWS(TABLE, "s." COL " = ANY ($1::uuid[])") ") "                           \
    "SELECT count(DISTINCT (" COL ", client_id)) FROM r"

rp_table_t *rp_people_served(bc_call_t *call, const rp_query_t *q)
{
    static const char *const measures[] = {"people_served"};
    bool by_site = q->scope == RP_SITE;
    char grain[2] = {q->grain, 0};
    const char *params[] = {q->ids, grain, q->first, q->to, q->interval};
    PGresult *res =
        by_site ? rp_run(call, "rp_served_site", S_SERIES_SQL("reporting.served_sites", "site_id"),
                         5, params)
                : rp_run(call, "rp_served_agency",
                         S_SERIES_SQL("reporting.served_agencies", "agency_id"), 5, params);
    if (!res)
        return NULL;
    rp_table_t *t = rp_table_new(call, "people_served", "period", measures, 1,
                                 (size_t)PQntuples(res), true);
    for (int i = 0; i < PQntuples(res); i++) {
        t->keys[i] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        int64_t v = atoll(PQgetvalue(res, i, 1));
        rp_table_set(t, (size_t)i, 0, (double)v, v);
    }
    PQclear(res);
    const char *dp[] = {q->ids, q->first, q->end};
    res = by_site ? rp_run(call, "rp_served_site_total",
                           S_DISTINCT_SQL("reporting.served", "site_id"), 3, dp)
                  : rp_run(call, "rp_served_agency_total",
                           S_DISTINCT_SQL("reporting.served_agency", "agency_id"), 3, dp);
    if (!res)
        return NULL;
    int64_t people = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    rp_table_set(t, t->rows, 0, (double)people, people);
    if (q->deidentified) {
        rp_column_t cols[] = {{.follows = -1, .additive = false}};
        rp_suppress(t->cells, t->rows + 1, 1, cols, true, 11);
    }
    return t;
}
