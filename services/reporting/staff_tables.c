/*  staff_tables: staff certifications and, on site dashboards, staff load
 *  (staff_load: see s_staff_load) on the dashboards (README
 *  "Reporting"), from what identity's staff.changed events left in
 *  reporting.staff, staff_sites and staff_credentials (migration 008).
 *
 *  certifications: per credential kind, the credentials of active staff
 *  that expire within the next 60 days (today to today + 60, today being
 *  the UTC date) and those already expired, with a total row (their sum).
 *  A site counts the staff who work there (a staff member at two sites
 *  counts at both), an agency or region every staff member of its agencies.
 *  De-identified viewers get the counts with cells of 1 to 10 suppressed
 *  like every other table.
 *
 *  staff_certifications (identified viewers only: a site's supervisors and
 *  agency admins): one row per such credential, keyed by staff id, with its
 *  kind and expiry date and the days left (negative: expired), soonest
 *  first. */
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"

#define S_HORIZON_DAYS "60"

/* The active staff in the dashboard's scope ($1: the site, or agencies). */
#define S_STAFF_AT_SITES                                                                        \
    "s AS (SELECT st.staff_id FROM reporting.staff st JOIN reporting.staff_sites x "            \
    "      USING (staff_id) WHERE x.site_id = ANY ($1::uuid[]) AND st.status = 'active' "       \
    "      GROUP BY st.staff_id)"
#define S_STAFF_OF_AGENCIES                                                                     \
    "s AS (SELECT st.staff_id FROM reporting.staff st "                                         \
    "      WHERE st.agency_id = ANY ($1::uuid[]) AND st.status = 'active')"

#define S_DUE                                                                                   \
    ", d AS (SELECT (now() AT TIME ZONE 'UTC')::date AS today), "                               \
    "due AS (SELECT c.staff_id, c.kind, c.expires_on, c.expires_on - d.today AS days_left "     \
    "        FROM reporting.staff_credentials c JOIN s USING (staff_id) CROSS JOIN d "          \
    "        WHERE c.expires_on <= d.today + " S_HORIZON_DAYS ") "

#define S_BY_KIND                                                                               \
    "SELECT kind, count(*) FILTER (WHERE days_left >= 0), count(*) FILTER (WHERE days_left < 0) " \
    "FROM due GROUP BY kind ORDER BY kind"

#define S_BY_STAFF                                                                              \
    "SELECT staff_id::text, kind, to_char(expires_on, 'YYYY-MM-DD'), days_left FROM due "       \
    "ORDER BY expires_on, staff_id, kind LIMIT 5000"

#define S_LOAD_SQL                                                                              \
    "WITH d AS (SELECT (now() AT TIME ZONE 'UTC')::date AS today), "                            \
    "k AS (SELECT staff_id, count(*) AS n FROM reporting.client_assignments "                   \
    "      WHERE site_id = $1::uuid AND status = 'active' AND staff_id IS NOT NULL "            \
    "      GROUP BY staff_id), "                                                                \
    "o AS (SELECT staff_id, count(*) AS n FROM reporting.overdue_work WHERE site_id = $1::uuid " \
    "      GROUP BY staff_id), "                                                                \
    "r AS (SELECT staff_id, count(*) AS n FROM reporting.open_referrals, d "                    \
    "      WHERE site_id = $1::uuid AND follow_up_on < d.today GROUP BY staff_id) "             \
    "SELECT staff_id::text, coalesce(k.n, 0), coalesce(o.n, 0), coalesce(r.n, 0) "              \
    "FROM k FULL JOIN o USING (staff_id) FULL JOIN r USING (staff_id) ORDER BY 1"

/* staff_load (site dashboards): per staff member, now, their active
 * clients, encounters whose note is overdue and unsigned, and open
 * referrals past their follow-up date, with a total row; de-identified,
 * the total row alone, suppressed below 11. */
static int s_staff_load(bc_call_t *call, const rp_query_t *q, rp_table_t **tables, size_t *n)
{
    static const char *const measures[] = {"active_clients", "notes_overdue",
                                           "referrals_past_follow_up"};
    const char *params[] = {q->scope_id};
    PGresult *res = rp_run(call, "rp_staff_load", S_LOAD_SQL, 1, params);
    if (!res)
        return -1;
    size_t rows = q->deidentified ? 0 : (size_t)PQntuples(res);
    rp_table_t *t = rp_table_new(call, "staff_load", "staff_id", measures, 3, rows, true);
    int64_t sums[3] = {0, 0, 0};
    for (int i = 0; i < PQntuples(res); i++) {
        if (!q->deidentified)
            t->keys[i] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        for (int c = 0; c < 3; c++) {
            int64_t v = atoll(PQgetvalue(res, i, c + 1));
            if (!q->deidentified)
                rp_table_set(t, (size_t)i, (size_t)c, (double)v, v);
            sums[c] += v;
        }
    }
    PQclear(res);
    for (int c = 0; c < 3; c++)
        rp_table_set(t, rows, (size_t)c, (double)sums[c], sums[c]);
    if (q->deidentified) {
        rp_column_t cols[] = {{.follows = -1, .additive = true},
                              {.follows = -1, .additive = true},
                              {.follows = -1, .additive = true}};
        rp_suppress(t->cells, 1, 3, cols, true, 11);
    }
    tables[(*n)++] = t;
    return 0;
}

int rp_staff_tables(bc_call_t *call, const rp_query_t *q, rp_table_t **tables, size_t *n)
{
    static const char *const measures[] = {"expiring_within_60_days", "expired"};
    bool by_site = q->scope == RP_SITE;
    const char *params[] = {q->ids};
    PGresult *res = by_site ? rp_run(call, "rp_certs_site", "WITH " S_STAFF_AT_SITES S_DUE S_BY_KIND,
                                     1, params)
                            : rp_run(call, "rp_certs_agency",
                                     "WITH " S_STAFF_OF_AGENCIES S_DUE S_BY_KIND, 1, params);
    if (!res)
        return -1;
    rp_table_t *t = rp_table_new(call, "certifications", "kind", measures, 2,
                                 (size_t)PQntuples(res), true);
    int64_t sums[2] = {0, 0};
    for (int i = 0; i < PQntuples(res); i++) {
        t->keys[i] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        for (int c = 0; c < 2; c++) {
            int64_t v = atoll(PQgetvalue(res, i, c + 1));
            rp_table_set(t, (size_t)i, (size_t)c, (double)v, v);
            sums[c] += v;
        }
    }
    PQclear(res);
    for (int c = 0; c < 2; c++)
        rp_table_set(t, t->rows, (size_t)c, (double)sums[c], sums[c]);
    if (q->deidentified) {
        rp_column_t cols[] = {{.follows = -1, .additive = true},
                              {.follows = -1, .additive = true}};
        rp_suppress(t->cells, t->rows + 1, 2, cols, true, 11);
    }
    tables[(*n)++] = t;
    if (q->scope == RP_SITE && s_staff_load(call, q, tables, n) < 0)
        return -1;
    if (q->deidentified)
        return 0;

    static const char *const staff_measures[] = {"days_left"};
    static const char *const labels[] = {"kind", "expires_on"};
    res = by_site ? rp_run(call, "rp_staff_certs_site", "WITH " S_STAFF_AT_SITES S_DUE S_BY_STAFF,
                           1, params)
                  : rp_run(call, "rp_staff_certs_agency",
                           "WITH " S_STAFF_OF_AGENCIES S_DUE S_BY_STAFF, 1, params);
    if (!res)
        return -1;
    t = rp_table_new(call, "staff_certifications", "staff_id", staff_measures, 1,
                     (size_t)PQntuples(res), false);
    rp_table_labels(call, t, labels, 2);
    for (int i = 0; i < PQntuples(res); i++) {
        t->keys[i] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 0));
        t->row_labels[i][0] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 1));
        t->row_labels[i][1] = bc_arena_strdup(call->arena, PQgetvalue(res, i, 2));
        int64_t days = atoll(PQgetvalue(res, i, 3));
        rp_table_set(t, (size_t)i, 0, (double)days, 1);
    }
    PQclear(res);
    tables[(*n)++] = t;
    return 0;
}
