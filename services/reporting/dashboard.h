/*  dashboard: what the dashboard builders share (dashboard.c builds the
 *  activity, breakdown, outcome and BARC-10 tables, replies and CSV;
 *  staff_tables.c the staff certification tables). */
#ifndef RP_DASHBOARD_H
#define RP_DASHBOARD_H

#include <libpq-fe.h>

#include "reporting.h"
#include "suppress.h"

typedef enum { RP_SITE, RP_AGENCY, RP_REGION } rp_scope_t;

/* A CTE "b" splitting the days LO..HI (statement parameters, dates) into
 * the whole months m_lo (inclusive) to m_hi (exclusive) and the days at
 * either end: month rows for the one, day rows for the others. */
#define RP_SPAN_CTE(LO, HI)                                                                     \
    "b AS (SELECT " LO "::date AS lo, " HI "::date AS hi, "                                     \
    "  CASE WHEN date_trunc('month', " LO "::date)::date = " LO "::date THEN " LO "::date "     \
    "       ELSE (date_trunc('month', " LO "::date) + interval '1 month')::date END "           \
    "    AS m_lo, date_trunc('month', " HI "::date + 1)::date AS m_hi) "
/* The rows of TABLE (with grain and period) in span b, WHERE COND. */
#define RP_SPAN_ROWS(TABLE, COND)                                                               \
    "SELECT s.* FROM " TABLE " s, b WHERE " COND " AND s.grain = 'm' AND s.period >= b.m_lo "   \
    "  AND s.period < b.m_hi "                                                                  \
    "UNION ALL SELECT s.* FROM " TABLE " s, b WHERE " COND " AND s.grain = 'd' "                \
    "  AND s.period >= b.lo AND s.period < least(b.m_lo, b.hi + 1) "                            \
    "UNION ALL SELECT s.* FROM " TABLE " s, b WHERE " COND " AND s.grain = 'd' "                \
    "  AND s.period >= greatest(b.m_hi, b.m_lo) AND s.period <= b.hi"

/* A checked dashboard request. */
typedef struct {
    rp_scope_t scope;
    const char *scope_id;
    char ids[4096];  /* uuid[] literal: the site, or the agencies */
    bool deidentified;
    char grain;      /* d, w, m */
    const char *grain_name, *interval;
    char from[11], to[11], first[11], end[11];
} rp_query_t;

/* One table of the reply: rows of cells (one per measure), each row with
 * its key and, when the table has labels, that many text columns. */
typedef struct {
    const char *name, *key;
    const char *const *measures;
    size_t nmeasures;
    size_t rows; /* data rows; a total row follows when has_total */
    bool has_total;
    rp_cell_t *cells;
    char **keys;
    const char *const *labels; /* names of the text columns, or NULL */
    size_t nlabels;
    char ***row_labels;        /* per row, nlabels strings (when nlabels) */
} rp_table_t;

/* A table of rows data rows (plus a total row keyed "total" when
 * has_total), every cell zero, in the call's arena. */
rp_table_t *rp_table_new(bc_call_t *call, const char *name, const char *key,
                         const char *const *measures, size_t nmeasures, size_t rows,
                         bool has_total);
/* Gives t text columns after the key (names: labels), empty for now. */
void rp_table_labels(bc_call_t *call, rp_table_t *t, const char *const *labels, size_t n);
rp_cell_t *rp_table_cell(rp_table_t *t, size_t row, size_t col);
void rp_table_set(rp_table_t *t, size_t row, size_t col, double value, int64_t count);
/* A prepared statement of the call's connection; NULL with call->err set. */
PGresult *rp_run(bc_call_t *call, const char *name, const char *sql, int n,
                 const char *const *params);

/* The staff tables of q appended to tables (room for three more):
 * certifications (by kind, counts; suppressed when de-identified), on site
 * dashboards staff_load (per staff member; de-identified the total only)
 * and, for identified viewers, staff_certifications (one row per
 * credential). -1 with call->err set. */
int rp_staff_tables(bc_call_t *call, const rp_query_t *q, rp_table_t **tables, size_t *n);
/* The people_served table of q (served.c). NULL with call->err set. */
rp_table_t *rp_people_served(bc_call_t *call, const rp_query_t *q);

#endif
