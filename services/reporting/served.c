/*  served: the people_served table of the dashboards (README "Reporting";
 *  migration 010): per period, the clients with at least one contact in it,
 *  each counted once however many contacts they had (served_sites and
 *  served_agencies hold the counts, kept in step by the consumer, so the
 *  series reads one row per period). A region adds its agencies (a client
 *  belongs to one agency). De-identified, cells of 1 to 10 people are
 *  suppressed.
 *
 *  There is no total row: the number of distinct people over the whole
 *  range is not the sum of its periods, and counting it exactly per request
 *  means visiting every client's periods. Measured with a region's shape at
 *  10,000,000 encounters (100,000 clients, 36 months each): 12 s for the
 *  region and 0.3 s for a site from the month rows, 0.4 s and 0.06 s from a
 *  per-client bit mask of months, against the 50 ms a dashboard has. An
 *  exact range total needs a rollup of its own (counts of each month's new
 *  clients by the month they were last seen before: a range's total is the
 *  sum over its months of those last seen before it began). */
#include <stdlib.h>

#include "dashboard.h"

#define S_SERIES_SQL(TABLE, COL)                                                                \
    "WITH p AS (SELECT generate_series($3::date, $4::date, $5::interval)::date AS period), "   \
    "r AS (SELECT period, sum(people) AS people FROM " TABLE " WHERE " COL                     \
    " = ANY ($1::uuid[]) AND grain = $2::\"char\" AND period BETWEEN $3::date AND $4::date "   \
    "GROUP BY period) "                                                                         \
    "SELECT to_char(p.period, 'YYYY-MM-DD'), coalesce(r.people, 0) FROM p LEFT JOIN r "       \
    "USING (period) ORDER BY p.period"

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
                                 (size_t)PQntuples(res), false);
    for (int i = 0; i < PQntuples(res); i++) {
        t->keys[i] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        int64_t v = atoll(PQgetvalue(res, i, 1));
        rp_table_set(t, (size_t)i, 0, (double)v, v);
    }
    PQclear(res);
    if (q->deidentified) {
        rp_column_t cols[] = {{.follows = -1, .additive = false}};
        rp_suppress(t->cells, t->rows, 1, cols, false, 11);
    }
    return t;
}
