/*  test_suppress: small-cell suppression of de-identified dashboards
 *  (services/reporting/suppress.c), pure logic: primary suppression of 1-10,
 *  complementary suppression so that no hidden cell (nor a hidden sum under
 *  11) can be recovered from a total, derived columns following their
 *  counts, and an exhaustive check that subtraction never reveals a small
 *  cell. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/reporting/suppress.h" /* not on the include path */

#define T 11

/* One column of counts with its total as the last row. */
static void s_column(rp_cell_t *cells, const int64_t *counts, size_t n)
{
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        cells[i] = (rp_cell_t){.value = (double)counts[i], .count = counts[i]};
        sum += counts[i];
    }
    cells[n] = (rp_cell_t){.value = (double)sum, .count = sum};
}

static void test_primary_hides_one_to_ten_not_zero(void **state)
{
    (void)state;
    rp_cell_t cells[4];
    int64_t counts[] = {0, 10, 11};
    s_column(cells, counts, 3);
    rp_column_t col = {.follows = -1, .additive = false}; /* no complementary pass */
    rp_suppress(cells, 4, 1, &col, true, T);
    assert_false(cells[0].suppressed);
    assert_true(cells[1].suppressed);
    assert_false(cells[2].suppressed);
    assert_false(cells[3].suppressed); /* 21 */
}

static void test_single_hidden_cell_gets_a_complement(void **state)
{
    (void)state;
    /* 3 alone would be total - 40 - 25 - 0. */
    rp_cell_t cells[5];
    int64_t counts[] = {40, 3, 25, 0};
    s_column(cells, counts, 4);
    rp_column_t col = {.follows = -1, .additive = true};
    rp_suppress(cells, 5, 1, &col, true, T);
    assert_true(cells[1].suppressed);
    assert_true(cells[2].suppressed);   /* the smallest non-zero shown cell */
    assert_false(cells[0].suppressed);
    assert_false(cells[3].suppressed);  /* a zero reveals nobody */
    assert_false(cells[4].suppressed);
}

static void test_hidden_cells_summing_under_threshold_get_more(void **state)
{
    (void)state;
    /* 2 + 3 hidden: the total gives their sum, 5, a small group: hide 12 too. */
    rp_cell_t cells[5];
    int64_t counts[] = {2, 3, 12, 50};
    s_column(cells, counts, 4);
    rp_column_t col = {.follows = -1, .additive = true};
    rp_suppress(cells, 5, 1, &col, true, T);
    assert_true(cells[0].suppressed && cells[1].suppressed && cells[2].suppressed);
    assert_false(cells[3].suppressed);
    assert_false(cells[4].suppressed);
}

static void test_no_complement_left_hides_the_total(void **state)
{
    (void)state;
    rp_cell_t cells[3];
    int64_t counts[] = {4, 0};
    s_column(cells, counts, 2);
    rp_column_t col = {.follows = -1, .additive = true};
    rp_suppress(cells, 3, 1, &col, true, T);
    assert_true(cells[0].suppressed);
    assert_true(cells[2].suppressed); /* the total, 4, is small itself */
    int64_t more[] = {30, 0, 0};
    rp_cell_t c2[4];
    s_column(c2, more, 3);
    rp_suppress(c2, 4, 1, &col, true, T);
    assert_false(c2[0].suppressed || c2[3].suppressed);
}

static void test_derived_columns_follow_their_counts(void **state)
{
    (void)state;
    /* Columns: encounters, minutes (follows 0), an average (follows 0). */
    rp_column_t cols[] = {{.follows = -1, .additive = true},
                          {.follows = 0, .additive = true},
                          {.follows = 0, .additive = false}};
    rp_cell_t cells[3 * 3] = {
        {.value = 5, .count = 5},   {.value = 250, .count = 250}, {.value = 50, .count = 5},
        {.value = 30, .count = 30}, {.value = 900, .count = 900}, {.value = 30, .count = 30},
        {.value = 35, .count = 35}, {.value = 1150, .count = 1150}, {.value = 33, .count = 35},
    };
    rp_suppress(cells, 3, 3, cols, true, T);
    for (int r = 0; r < 3; r++)
        for (int c = 1; c < 3; c++)
            assert_int_equal(cells[r * 3 + c].suppressed, cells[r * 3].suppressed);
    assert_true(cells[0].suppressed && cells[3].suppressed); /* 5, and its complement */
    assert_true(cells[2 * 3].suppressed == false);
}

static void test_threshold_below_two_suppresses_nothing(void **state)
{
    (void)state;
    rp_cell_t cells[3];
    int64_t counts[] = {1, 2};
    s_column(cells, counts, 2);
    rp_column_t col = {.follows = -1, .additive = true};
    rp_suppress(cells, 3, 1, &col, true, 1);
    assert_false(cells[0].suppressed || cells[1].suppressed || cells[2].suppressed);
}

/* Every column of up to 5 cells with counts from a small set: after
 * suppression no shown cell is 1-10, and when the total is shown the hidden
 * cells are none, or at least two adding up to 11 or more, so subtracting the
 * shown cells from the total never gives a small cell or a small group. */
static void test_exhaustive_no_recovery_by_subtraction(void **state)
{
    (void)state;
    static const int64_t values[] = {0, 1, 5, 10, 11, 12, 40};
    const size_t nv = sizeof values / sizeof *values;
    rp_column_t col = {.follows = -1, .additive = true};
    long checked = 0;
    for (size_t n = 1; n <= 5; n++) {
        size_t combos = 1;
        for (size_t i = 0; i < n; i++)
            combos *= nv;
        for (size_t k = 0; k < combos; k++) {
            int64_t counts[5];
            size_t x = k;
            for (size_t i = 0; i < n; i++) {
                counts[i] = values[x % nv];
                x /= nv;
            }
            rp_cell_t cells[6];
            s_column(cells, counts, n);
            rp_suppress(cells, n + 1, 1, &col, true, T);
            int64_t hidden = 0;
            size_t nhidden = 0;
            for (size_t i = 0; i <= n; i++) {
                if (!cells[i].suppressed)
                    assert_false(cells[i].count > 0 && cells[i].count < T);
                if (i < n && cells[i].suppressed) {
                    hidden += cells[i].count;
                    nhidden++;
                }
            }
            if (!cells[n].suppressed && nhidden > 0) {
                assert_true(nhidden >= 2);
                assert_true(hidden >= T);
            }
            checked++;
        }
    }
    assert_true(checked > 19000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_primary_hides_one_to_ten_not_zero),
        cmocka_unit_test(test_single_hidden_cell_gets_a_complement),
        cmocka_unit_test(test_hidden_cells_summing_under_threshold_get_more),
        cmocka_unit_test(test_no_complement_left_hides_the_total),
        cmocka_unit_test(test_derived_columns_follow_their_counts),
        cmocka_unit_test(test_threshold_below_two_suppresses_nothing),
        cmocka_unit_test(test_exhaustive_no_recovery_by_subtraction),
    };
    return cmocka_run_group_tests_name("suppress", tests, NULL, NULL);
}
