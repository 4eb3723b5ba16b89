/*  test_hsds_csv: the CSV reader and field writer of the HSDS tabular
 *  package (services/referral/hsds_csv.c): rows, empty fields, RFC 4180
 *  quoting, the physical line each row starts on (LF, CRLF, blank lines,
 *  line breaks inside quoted fields), broken quoting, and fields written
 *  back reading as they were. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/referral/referral.h" /* not on the include path */

typedef struct {
    int lines[16];
    char *rows[16];
    size_t n;
    int stop_after;
} s_seen_t;

/* Each row as "a|b|<null>|..." with its line. */
static int s_row(void *arg, char **fields, size_t n, int line)
{
    s_seen_t *s = arg;
    char buf[512] = "";
    for (size_t i = 0; i < n; i++) {
        strcat(buf, i ? "|" : "");
        strcat(buf, fields[i] ? fields[i] : "<null>");
    }
    s->lines[s->n] = line;
    s->rows[s->n++] = strdup(buf);
    return s->stop_after && (int)s->n == s->stop_after ? -1 : 0;
}

static void s_free(s_seen_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->rows[i]);
}

static int s_read(const char *text, s_seen_t *s, int *bad)
{
    bc_arena_t *arena = bc_arena_new(4096);
    memset(s, 0, sizeof *s);
    int rc = hsds_csv_read(arena, text, strlen(text), s_row, s, bad);
    bc_arena_destroy(&arena);
    return rc;
}

static void test_rows_and_lines(void **state)
{
    (void)state;
    s_seen_t s;
    int bad;
    const char *text = "\xEF\xBB\xBFid,name,note\r\n"
                       "1,Ann,\r\n"
                       "\r\n"
                       "2,\"Bo, \"\"B\"\"\",\"two\nlines\"\r\n"
                       "3,Cy,x";
    assert_int_equal(s_read(text, &s, &bad), 0);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.rows[0], "id|name|note");
    assert_string_equal(s.rows[1], "1|Ann|<null>");
    assert_string_equal(s.rows[2], "2|Bo, \"B\"|two\nlines");
    assert_string_equal(s.rows[3], "3|Cy|x");
    int want[] = {1, 2, 4, 6};
    for (int i = 0; i < 4; i++)
        assert_int_equal(s.lines[i], want[i]);
    s_free(&s);
}

static void test_lf_only_and_stop(void **state)
{
    (void)state;
    s_seen_t s;
    int bad;
    memset(&s, 0, sizeof s);
    bc_arena_t *arena = bc_arena_new(4096);
    s.stop_after = 2;
    const char *text = "a\n\nb\nc\n";
    assert_int_equal(hsds_csv_read(arena, text, strlen(text), s_row, &s, &bad), -1);
    assert_int_equal(bad, 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.lines[1], 3);
    s_free(&s);
    bc_arena_destroy(&arena);
}

static void test_broken_quoting(void **state)
{
    (void)state;
    s_seen_t s;
    int bad;
    assert_int_equal(s_read("id,name\n1,ok\n2,\"open\n3,x\n", &s, &bad), -1);
    assert_int_equal(s.n, 2); /* the rows before the fault */
    assert_true(bad >= 3);
    s_free(&s);
    assert_int_equal(s_read("id,name\n1,a\"b\n", &s, &bad), -1);
    assert_int_equal(bad, 2);
    s_free(&s);
}

static void test_fields_round_trip(void **state)
{
    (void)state;
    bc_arena_t *arena = bc_arena_new(4096);
    const char *values[] = {"plain", "with, comma", "say \"hi\"", "two\r\nlines", " pad ", ""};
    assert_string_equal(hsds_csv_field(arena, "plain"), "plain");
    assert_string_equal(hsds_csv_field(arena, NULL), "");
    assert_string_equal(hsds_csv_field(arena, "say \"hi\""), "\"say \"\"hi\"\"\"");
    char line[512] = "";
    for (size_t i = 0; i < 6; i++) {
        strcat(line, i ? "," : "");
        strcat(line, hsds_csv_field(arena, values[i]));
    }
    s_seen_t s;
    int bad;
    assert_int_equal(s_read(line, &s, &bad), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.rows[0], "plain|with, comma|say \"hi\"|two\r\nlines| pad |<null>");
    s_free(&s);
    bc_arena_destroy(&arena);
}

/* Found by fuzz_hsds_csv: libcsv trims tabs as well as spaces around an
 * unquoted field, and the reader skips a byte order mark at the start of
 * the text; such values are quoted so that they read back whole. */
static void test_fields_with_tabs_or_a_leading_mark_round_trip(void **state)
{
    (void)state;
    bc_arena_t *arena = bc_arena_new(4096);
    assert_string_equal(hsds_csv_field(arena, "\xfc\t"), "\"\xfc\t\"");
    assert_string_equal(hsds_csv_field(arena, "\tx"), "\"\tx\"");
    const char *first = hsds_csv_field(arena, "\xEF\xBB\xBF-");
    assert_string_equal(first, "\"\xEF\xBB\xBF-\"");
    char line[64];
    snprintf(line, sizeof line, "%s,%s", first, hsds_csv_field(arena, "b\t"));
    s_seen_t s;
    int bad;
    assert_int_equal(s_read(line, &s, &bad), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.rows[0], "\xEF\xBB\xBF-|b\t");
    s_free(&s);
    bc_arena_destroy(&arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_and_lines),
        cmocka_unit_test(test_lf_only_and_stop),
        cmocka_unit_test(test_broken_quoting),
        cmocka_unit_test(test_fields_round_trip),
        cmocka_unit_test(test_fields_with_tabs_or_a_leading_mark_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
