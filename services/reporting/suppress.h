/*  suppress: small-cell suppression of a dashboard table for de-identified
 *  views (pure functions, no I/O; tests/unit/test_suppress.c).
 *
 *  Primary suppression: a cell counting 1 to threshold-1 people or events
 *  (CMS cell-size policy: threshold 11) is hidden. Zero is shown: it names
 *  nobody.
 *
 *  Complementary suppression: in a column whose last row is the total of
 *  the rows above (additive), hidden cells could be recovered by
 *  subtracting the shown cells from the total. So while the hidden cells of
 *  such a column add up to fewer than threshold, the shown cell with the
 *  smallest non-zero count is hidden too; if none is left, the total is
 *  hidden. The hidden cells then add up to threshold or more (or their sum
 *  cannot be computed), so no single small cell, nor a small sum of them,
 *  can be derived from the table.
 *
 *  Derived columns (minutes or units of encounters, an average loop-closure
 *  time) do not judge their own counts: they follow the column they are
 *  derived from, hiding exactly the cells it hides, so the two cannot be
 *  set against each other.
 */
#ifndef RP_SUPPRESS_H
#define RP_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    double value;
    int64_t count; /* how many people or events the cell counts */
    bool suppressed;
} rp_cell_t;

typedef struct {
    int follows;   /* -1: judged on its own counts; else the column it follows (an earlier one) */
    bool additive; /* with a total row: the total is the sum of the rows above */
} rp_column_t;

/* Suppresses cells (rows x cols, row-major) in place. With has_total the
 * last row is the total row. columns[c].follows must name a column before
 * c. threshold < 2 suppresses nothing. */
void rp_suppress(rp_cell_t *cells, size_t rows, size_t cols, const rp_column_t *columns,
                 bool has_total, int64_t threshold);

#endif
