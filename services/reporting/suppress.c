/*  suppress: small-cell suppression (see the header). */
#include "suppress.h"

static void s_column(rp_cell_t *cells, size_t rows, size_t cols, size_t c, bool additive,
                     bool has_total, int64_t threshold)
{
    for (size_t r = 0; r < rows; r++) {
        rp_cell_t *cell = &cells[r * cols + c];
        if (cell->count > 0 && cell->count < threshold)
            cell->suppressed = true;
    }
    if (!has_total || !additive || rows < 1)
        return;
    size_t data = rows - 1;
    rp_cell_t *total = &cells[data * cols + c];
    if (total->suppressed)
        return; /* every non-zero cell is below the threshold too, and hidden */
    for (;;) {
        int64_t hidden = 0;
        size_t nhidden = 0;
        for (size_t r = 0; r < data; r++)
            if (cells[r * cols + c].suppressed) {
                hidden += cells[r * cols + c].count;
                nhidden++;
            }
        if (nhidden == 0 || hidden >= threshold)
            return;
        rp_cell_t *pick = NULL;
        for (size_t r = 0; r < data; r++) {
            rp_cell_t *cell = &cells[r * cols + c];
            if (!cell->suppressed && cell->count > 0 && (!pick || cell->count < pick->count))
                pick = cell;
        }
        if (!pick) {
            total->suppressed = true;
            return;
        }
        pick->suppressed = true;
    }
}

void rp_suppress(rp_cell_t *cells, size_t rows, size_t cols, const rp_column_t *columns,
                 bool has_total, int64_t threshold)
{
    if (threshold < 2)
        return;
    for (size_t c = 0; c < cols; c++) {
        int f = columns[c].follows;
        if (f >= 0 && (size_t)f < c) {
            for (size_t r = 0; r < rows; r++)
                cells[r * cols + c].suppressed = cells[r * cols + (size_t)f].suppressed;
            continue;
        }
        s_column(cells, rows, cols, c, columns[c].additive, has_total, threshold);
    }
}
