/*  test_recurrence: civil dates and group-session recurrence rules
 *  (services/scheduling/recurrence.c), pure logic.
 *
 *  Dates are checked against known weekdays and over every day of
 *  1900..2200; rules against hand-computed series (weekly, every other
 *  week, 2nd Tuesday, last Friday, ...), against every refusal of
 *  sched_rule_make and against a day-by-day reference expansion written
 *  here independently of the module's week and month arithmetic, over
 *  pseudo-random rules and windows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../services/scheduling/recurrence.h" /* not on the include path */

#define MAX_OUT 2000

/* ---- Helpers ------------------------------------------------------------ */

static sched_date_t s_date(const char *text)
{
    sched_date_t d;
    assert_int_equal(sched_date_parse(text, &d), 0);
    return d;
}

/* Expands rule over [from, to] and checks the dates against expected, a
 * space-separated list of YYYY-MM-DD ("" for none). */
static void s_expect(const sched_rule_t *rule, const char *from, const char *to,
                     const char *expected)
{
    sched_date_t out[MAX_OUT];
    int n = sched_rule_expand(rule, s_date(from), s_date(to), out, MAX_OUT);
    char got[MAX_OUT * 11 + 1] = "";
    for (int i = 0; i < n; i++) {
        char date[11];
        sched_date_format(out[i], date);
        if (i)
            strcat(got, " ");
        strcat(got, date);
    }
    assert_true(n >= 0);
    assert_string_equal(got, expected);
}

/* A rule from request fields that must be accepted. */
static sched_rule_t s_make(const sched_rule_input_t *in)
{
    sched_rule_t rule;
    char field[SCHED_FIELD_SIZE] = "", message[SCHED_MESSAGE_SIZE] = "";
    int rc = sched_rule_make(in, &rule, field, message);
    if (rc != 0)
        fail_msg("refused: %s: %s", field, message);
    return rule;
}

/* Request fields of a rule: interval 0, days NULL, month_week 0, until NULL
 * and count 0 stand for absent; days is a list like "MO,TH". The day codes
 * live in static storage until the next call. */
static sched_rule_input_t s_input(const char *freq, int interval, const char *days, int month_week,
                                  const char *start, const char *until, int count)
{
    static char codes[8][3];
    static const char *by_day[8];
    sched_rule_input_t in = {.freq = freq, .start = start, .until = until};
    in.has_interval = interval != 0, in.interval = interval;
    in.has_month_week = month_week != 0, in.month_week = month_week;
    in.has_count = count != 0, in.count = count;
    for (const char *p = days; p && in.by_day_count < 8; p += 3) {
        memcpy(codes[in.by_day_count], p, 2);
        codes[in.by_day_count][2] = '\0';
        by_day[in.by_day_count] = codes[in.by_day_count];
        in.by_day = by_day;
        in.by_day_count++;
        if (p[2] != ',')
            break;
    }
    return in;
}

static sched_rule_t s_weekly(int interval, const char *days, const char *start, const char *until,
                             int count)
{
    sched_rule_input_t in = s_input("weekly", interval, days, 0, start, until, count);
    return s_make(&in);
}

static sched_rule_t s_monthly(int interval, int month_week, const char *start, const char *until,
                              int count)
{
    sched_rule_input_t in = s_input("monthly", interval, NULL, month_week, start, until, count);
    return s_make(&in);
}

/* The day after *d, by calendar rules alone (no day numbers). */
static void s_next_day(sched_date_t *d)
{
    if (++d->day > sched_date_month_days(d->year, d->month))
        d->day = 1, d->month++;
    if (d->month > 12)
        d->month = 1, d->year++;
}

/* ---- Dates -------------------------------------------------------------- */

static void test_date_parse_format(void **state)
{
    (void)state;
    const char *good[] = {"2024-02-29", "2000-02-29", "1900-01-01",
                          "2200-12-31", "2027-01-12", "2023-12-31"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char text[11];
        sched_date_format(s_date(good[i]), text);
        assert_string_equal(text, good[i]);
    }
    sched_date_t d = s_date("2027-01-12");
    assert_true(d.year == 2027 && d.month == 1 && d.day == 12);

    const char *bad[] = {"2023-02-29",  "1900-02-29",  "2100-02-29", "2024-02-30", "2024-13-01",
                         "2024-00-10",  "2024-04-31",  "2024-01-00", "2024-2-3",   "2024-02-03x",
                         "2024-02-03 ", " 2024-02-03", "2024/02/03", "20240203",   "",
                         "1899-12-31",  "2201-01-01",  "+024-02-03", "2024-0a-03", "2024--2-03"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sched_date_t untouched = {1, 2, 3};
        if (sched_date_parse(bad[i], &untouched) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(untouched.year, 1);
    }
    assert_int_equal(sched_date_parse(NULL, &d), -1);

    char text[11];
    sched_date_format((sched_date_t){2023, 2, 29}, text);
    assert_string_equal(text, "0000-00-00");
    sched_date_format((sched_date_t){10000, 1, 1}, text);
    assert_string_equal(text, "0000-00-00");
}

static void test_date_weekday(void **state)
{
    (void)state;
    struct {
        const char *date;
        int weekday;
    } known[] = {{"1900-01-01", 0}, {"1970-01-01", 3}, {"1969-12-31", 2},
                 {"2000-01-01", 5}, {"2024-02-29", 3}, {"2027-01-12", 1},
                 {"2200-12-31", 2}, {"2027-01-29", 4}, {"2027-01-10", 6}};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        assert_int_equal(sched_date_weekday(s_date(known[i].date)), known[i].weekday);
    assert_int_equal(sched_date_days(s_date("1970-01-01")), 0);
    assert_int_equal(sched_date_days(s_date("1969-12-31")), -1);
    assert_int_equal(sched_date_days(s_date("2000-03-01")), 11017);
    assert_true(sched_date_cmp(s_date("2027-01-12"), s_date("2027-01-12")) == 0 &&
                sched_date_cmp(s_date("2027-01-12"), s_date("2027-02-01")) == -1 &&
                sched_date_cmp(s_date("2028-01-01"), s_date("2027-12-31")) == 1 &&
                sched_date_cmp(s_date("2027-01-13"), s_date("2027-01-12")) == 1);
}

/* Every day of 1900..2200: day numbers are consecutive, round trip, and
 * format/parse round trip; the weekday advances by one each day. */
static void test_date_days_round_trip(void **state)
{
    (void)state;
    sched_date_t d = s_date("1900-01-01");
    int64_t days = sched_date_days(d);
    int weekday = 0, seen = 0;
    while (d.year <= 2200) {
        assert_int_equal(sched_date_days(d), days);
        sched_date_t back = sched_date_from_days(days);
        assert_int_equal(sched_date_cmp(back, d), 0);
        assert_int_equal(sched_date_weekday(d), weekday);
        char text[11];
        sched_date_format(d, text);
        sched_date_t parsed;
        assert_int_equal(sched_date_parse(text, &parsed), 0);
        assert_int_equal(sched_date_cmp(parsed, d), 0);
        s_next_day(&d);
        days++;
        weekday = (weekday + 1) % 7;
        seen++;
    }
    assert_int_equal(seen, 301 * 365 + 73); /* 73 leap years in 1900..2200 */
    /* far outside the parse range, too */
    for (int64_t x = -1000000; x <= 1000000; x += 997)
        assert_int_equal(sched_date_days(sched_date_from_days(x)), x);
}

/* ---- Expansion ---------------------------------------------------------- */

static void test_weekly(void **state)
{
    (void)state;
    /* single day: the start's own weekday (Monday) */
    sched_rule_t rule = s_weekly(0, NULL, "2027-01-04", "2027-02-01", 0);
    assert_int_equal(rule.weekdays, 0);
    s_expect(&rule, "2027-01-01", "2027-01-31", "2027-01-04 2027-01-11 2027-01-18 2027-01-25");
    /* until is inclusive */
    s_expect(&rule, "2027-01-01", "2027-12-31",
             "2027-01-04 2027-01-11 2027-01-18 2027-01-25 2027-02-01");
    s_expect(&rule, "2027-02-02", "2027-12-31", "");
    s_expect(&rule, "2026-01-01", "2027-01-03", "");

    /* several days; a start on a Wednesday is not itself an occurrence */
    rule = s_weekly(0, "TH,MO", "2027-01-06", NULL, 50);
    assert_int_equal(rule.weekdays, 0x9);
    s_expect(&rule, "2027-01-01", "2027-01-17", "2027-01-07 2027-01-11 2027-01-14");

    /* every 2 weeks, counted from the week (Monday) holding the start */
    rule = s_weekly(2, "MO,TH", "2027-01-07", "2027-06-30", 0);
    s_expect(&rule, "2027-01-01", "2027-02-05",
             "2027-01-07 2027-01-18 2027-01-21 2027-02-01 2027-02-04");
    s_expect(&rule, "2027-01-08", "2027-01-17", ""); /* an off week */
    s_expect(&rule, "2027-01-12", "2027-01-31", "2027-01-18 2027-01-21");
}

/* Count limits (occurrences before the window count) and far windows. */
static void test_weekly_count(void **state)
{
    (void)state;
    /* series: 01-04 01-06 01-11 01-13 01-18 */
    sched_rule_t rule = s_weekly(0, "MO,WE", "2027-01-04", NULL, 5);
    s_expect(&rule, "2027-01-01", "2027-12-31",
             "2027-01-04 2027-01-06 2027-01-11 2027-01-13 2027-01-18");
    s_expect(&rule, "2027-01-10", "2027-02-28", "2027-01-11 2027-01-13 2027-01-18");
    s_expect(&rule, "2027-01-14", "2027-02-28", "2027-01-18");
    s_expect(&rule, "2027-01-19", "2027-02-28", "");

    /* every other week from a Wednesday: 01-06, 01-18, 01-20, 02-01 */
    rule = s_weekly(2, "MO,WE", "2027-01-06", NULL, 4);
    s_expect(&rule, "2027-01-19", "2027-12-31", "2027-01-20 2027-02-01");

    /* the 1000th Monday from 2027-01-04 is 999 weeks later */
    rule = s_weekly(0, NULL, "2027-01-04", NULL, 1000);
    s_expect(&rule, "2046-02-01", "2046-03-31", "2046-02-05 2046-02-12 2046-02-19 2046-02-26");

    /* a window far from the start (a Tuesday) */
    rule = s_weekly(0, NULL, "2027-01-05", "2199-12-31", 0);
    s_expect(&rule, "2150-03-01", "2150-03-31",
             "2150-03-03 2150-03-10 2150-03-17 2150-03-24 2150-03-31");
    rule.interval = 52;
    /* week 6448 = 124 * 52 from 2027-01-04 is the one of Monday 2150-08-03 */
    s_expect(&rule, "2150-01-01", "2150-12-31", "2150-08-04");
    /* a window before the start and one after until */
    s_expect(&rule, "1990-01-01", "2027-01-04", "");
    s_expect(&rule, "2200-01-01", "2200-12-31", "");
}

static void test_monthly(void **state)
{
    (void)state;
    /* 2nd Tuesday, position taken from the start */
    sched_rule_t rule = s_monthly(0, 0, "2027-01-12", NULL, 6);
    assert_int_equal(rule.month_week, 0);
    s_expect(&rule, "2027-01-01", "2027-12-31",
             "2027-01-12 2027-02-09 2027-03-09 2027-04-13 2027-05-11 2027-06-08");
    s_expect(&rule, "2027-03-10", "2027-12-31", "2027-04-13 2027-05-11 2027-06-08");
    s_expect(&rule, "2027-02-10", "2027-03-08", "");

    /* last Friday (2027-01-29 is the 5th Friday, so it must be asked for) */
    rule = s_monthly(0, -1, "2027-01-29", "2027-06-30", 0);
    s_expect(&rule, "2026-01-01", "2030-12-31",
             "2027-01-29 2027-02-26 2027-03-26 2027-04-30 2027-05-28 2027-06-25");

    /* every 3 months */
    rule = s_monthly(3, 0, "2027-01-12", "2027-12-31", 0);
    s_expect(&rule, "2027-01-01", "2027-12-31", "2027-01-12 2027-04-13 2027-07-13 2027-10-12");
    s_expect(&rule, "2027-02-01", "2027-06-30", "2027-04-13");

    /* an explicit first Wednesday from a 3rd Wednesday: January's is gone */
    rule = s_monthly(0, 1, "2027-01-20", NULL, 2);
    s_expect(&rule, "2027-01-01", "2027-12-31", "2027-02-03 2027-03-03");
    sched_date_t first;
    assert_int_equal(sched_rule_first(&rule, &first), 0);
    assert_int_equal(sched_date_cmp(first, s_date("2027-02-03")), 0);
}

static void test_month_week_derivation(void **state)
{
    (void)state;
    const char *cases[][2] = {{"2027-01-01", "FREQ=MONTHLY;BYDAY=1FR;COUNT=3"},
                              {"2027-01-12", "FREQ=MONTHLY;BYDAY=2TU;COUNT=3"},
                              {"2027-01-21", "FREQ=MONTHLY;BYDAY=3TH;COUNT=3"},
                              {"2027-01-28", "FREQ=MONTHLY;BYDAY=4TH;COUNT=3"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sched_rule_t rule = s_monthly(0, 0, cases[i][0], NULL, 3);
        char rrule[100];
        assert_true(sched_rule_to_rrule(&rule, rrule, sizeof rrule) > 0);
        assert_string_equal(rrule, cases[i][1]);
    }
    /* a hand-built rule with month_week 0 expands the same way */
    sched_rule_t rule = {.freq = SCHED_FREQ_MONTHLY, .interval = 1, .count = 3};
    rule.start = s_date("2027-01-28");
    s_expect(&rule, "2027-01-01", "2027-12-31", "2027-01-28 2027-02-25 2027-03-25");
    /* on day 29..31 the position is a 5th: refused, also by expand */
    rule.start = s_date("2027-01-29");
    sched_date_t out[4];
    assert_int_equal(sched_rule_expand(&rule, rule.start, rule.start, out, 4), -2);
    sched_rule_input_t in = s_input("monthly", 0, NULL, 0, "2027-01-29", NULL, 3);
    char field[SCHED_FIELD_SIZE], message[SCHED_MESSAGE_SIZE];
    assert_int_equal(sched_rule_make(&in, &rule, field, message), -1);
    assert_string_equal(field, "month_week");
    assert_string_equal(message, "start 2027-01-29 is the 5th Friday of its month; give "
                                 "month_week (-1 for the last Friday)");
}

/* sched_rule_expand over [from, to] of rule into out (room for max). */
static int s_count(const sched_rule_t *rule, const char *from, const char *to, int max)
{
    sched_date_t out[400];
    assert_true(max <= 400);
    return sched_rule_expand(rule, s_date(from), s_date(to), out, max);
}

static void test_bounds(void **state)
{
    (void)state;
    sched_rule_t rule = s_weekly(0, "MO,TU,WE,TH,FR,SA,SU", "2027-01-01", "2027-12-31", 0);
    assert_int_equal(rule.weekdays, 0x7f);
    assert_int_equal(s_count(&rule, "2027-01-01", "2027-12-31", 365), 365);
    assert_int_equal(s_count(&rule, "2027-01-01", "2027-12-31", 364), -1);
    assert_int_equal(s_count(&rule, "2027-01-01", "2027-12-31", 0), -1);
    assert_int_equal(s_count(&rule, "2028-01-01", "2028-12-31", 0), 0);
    /* a window ending before it starts is empty */
    assert_int_equal(s_count(&rule, "2027-03-01", "2027-02-01", 10), 0);
    /* rules that sched_rule_make would never produce */
    sched_rule_t bad[5] = {rule, rule, rule, rule, rule};
    bad[0].interval = 0;
    bad[1].weekdays = 0x80;
    bad[2].month_week = 2;
    bad[3].freq = 3;
    bad[4].until = s_date("2026-12-31");
    for (int i = 0; i < 5; i++)
        assert_int_equal(s_count(&bad[i], "2027-01-01", "2027-12-31", 365), -2);
    assert_false(sched_rule_valid(NULL));
}

/* ---- Requests ------------------------------------------------------------- */

static void test_make_refusals(void **state)
{
    (void)state;
    const char *null_code[] = {NULL};
    const sched_rule_input_t weekly = s_input("weekly", 0, NULL, 0, "2027-01-04", NULL, 4);
    const sched_rule_input_t monthly = s_input("monthly", 0, NULL, 0, "2027-01-04", NULL, 4);
    s_make(&weekly);
    s_make(&monthly);
    sched_rule_input_t in;
    sched_rule_t rule;
    char field[SCHED_FIELD_SIZE], message[SCHED_MESSAGE_SIZE];
    /* base with one change must be refused naming name, with a message */
#define REFUSED(base, change, name)                                                                \
    do {                                                                                           \
        in = (base);                                                                               \
        change;                                                                                    \
        message[0] = '\0';                                                                         \
        assert_int_equal(sched_rule_make(&in, &rule, field, message), -1);                         \
        assert_string_equal(field, name);                                                          \
        assert_true(strlen(message) > 10);                                                         \
    } while (0)
#define BY_DAY(days) (in.by_day = s_input("weekly", 0, days, 0, "", NULL, 0).by_day)
    REFUSED(weekly, in.freq = NULL, "freq");
    REFUSED(weekly, in.freq = "daily", "freq");
    REFUSED(weekly, in.freq = "Weekly", "freq");
    REFUSED(weekly, (in.has_interval = true, in.interval = 0), "interval");
    REFUSED(weekly, (in.has_interval = true, in.interval = 53), "interval");
    REFUSED(weekly, (in.has_interval = true, in.interval = -1), "interval");
    REFUSED(weekly, (in.has_interval = true, in.interval = INT64_C(4294967297)), "interval");
    REFUSED(weekly, (BY_DAY("MO,XX"), in.by_day_count = 2), "by_day[1]");
    REFUSED(weekly, (BY_DAY("mo"), in.by_day_count = 1), "by_day[0]");
    REFUSED(weekly, (in.by_day = null_code, in.by_day_count = 1), "by_day[0]");
    REFUSED(weekly, (BY_DAY("MO,TU,MO"), in.by_day_count = 3), "by_day[2]");
    REFUSED(weekly, (BY_DAY("MO"), in.by_day_count = 0), "by_day");
    REFUSED(weekly, (BY_DAY("MO,TU,WE,TH,FR,SA,SU,MO"), in.by_day_count = 8), "by_day");
    REFUSED(monthly, (BY_DAY("MO"), in.by_day_count = 1), "by_day");
    REFUSED(monthly, (in.has_month_week = true, in.month_week = 0), "month_week");
    REFUSED(monthly, (in.has_month_week = true, in.month_week = 5), "month_week");
    REFUSED(monthly, (in.has_month_week = true, in.month_week = -2), "month_week");
    REFUSED(weekly, (in.has_month_week = true, in.month_week = 1), "month_week");
    REFUSED(weekly, in.start = NULL, "start");
    REFUSED(weekly, in.start = "2027-1-4", "start");
    REFUSED(weekly, in.start = "2023-02-29", "start");
    REFUSED(weekly, in.until = "2027-06-30", "until"); /* and count */
    REFUSED(weekly, in.has_count = false, "until");    /* neither */
    REFUSED(weekly, (in.has_count = false, in.until = "2027-01-03"), "until");
    REFUSED(weekly, (in.has_count = false, in.until = "2027-02-30"), "until");
    REFUSED(weekly, in.count = 0, "count");
    REFUSED(weekly, in.count = -3, "count");
    REFUSED(weekly, in.count = SCHED_RULE_MAX_COUNT + 1, "count");
    REFUSED(monthly, in.start = "2027-01-31", "month_week"); /* a 5th Sunday */
#undef BY_DAY
#undef REFUSED

    /* the edges that are accepted */
    s_weekly(0, NULL, "2027-01-04", "2027-01-04", 0);
    s_weekly(SCHED_RULE_MAX_INTERVAL, NULL, "2027-01-04", NULL, SCHED_RULE_MAX_COUNT);

    in = s_input("weekly", 0, "MO,XX", 0, "2027-01-04", NULL, 4);
    sched_rule_make(&in, &rule, field, message);
    assert_string_equal(message, "by_day[1] must be one of MO, TU, WE, TH, FR, SA, SU");
}

static void test_rrule(void **state)
{
    (void)state;
    sched_rule_t rule = s_weekly(2, "TH,MO", "2027-01-04", "2027-06-30", 0);
    char out[100];
    const char *want = "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;UNTIL=20270630";
    assert_int_equal(sched_rule_to_rrule(&rule, out, sizeof out), (int)strlen(want));
    assert_string_equal(out, want);
    /* exactly fitting, and one byte short */
    assert_int_equal(sched_rule_to_rrule(&rule, out, strlen(want) + 1), (int)strlen(want));
    assert_int_equal(sched_rule_to_rrule(&rule, out, strlen(want)), -1);
    assert_string_equal(out, "");
    assert_int_equal(sched_rule_to_rrule(&rule, out, 0), -1);

    struct {
        sched_rule_t rule;
        const char *rrule;
    } cases[] = {{s_monthly(0, -1, "2027-01-26", NULL, 6), "FREQ=MONTHLY;BYDAY=-1TU;COUNT=6"},
                 {s_weekly(0, NULL, "2027-01-06", NULL, 10), "FREQ=WEEKLY;BYDAY=WE;COUNT=10"},
                 {s_weekly(52, "SU,SA,FR,TH,WE,TU,MO", "2027-01-06", NULL, 1000),
                  "FREQ=WEEKLY;INTERVAL=52;BYDAY=MO,TU,WE,TH,FR,SA,SU;COUNT=1000"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int len = sched_rule_to_rrule(&cases[i].rule, out, sizeof out);
        assert_string_equal(out, cases[i].rrule);
        assert_int_equal(len, (int)strlen(cases[i].rrule));
    }
    rule.interval = 0;
    assert_int_equal(sched_rule_to_rrule(&rule, out, sizeof out), -1);
}

/* ---- Against a day-by-day reference ------------------------------------- */

/* Does d (on or after the start) match rule? By the rule's definition, with
 * month positions found by looking at the day of the month. */
static int s_ref_matches(const sched_rule_t *rule, sched_date_t d, int64_t days_from_start,
                         int weekday)
{
    int start_weekday = sched_date_weekday(rule->start);
    if (rule->freq == SCHED_FREQ_WEEKLY) {
        unsigned mask = rule->weekdays ? rule->weekdays : 1u << start_weekday;
        int64_t week = (days_from_start + start_weekday) / 7;
        return week % rule->interval == 0 && (mask & (1u << weekday));
    }
    int months = (d.year - rule->start.year) * 12 + d.month - rule->start.month;
    if (months % rule->interval || weekday != start_weekday)
        return 0;
    int week = rule->month_week ? rule->month_week : (rule->start.day - 1) / 7 + 1;
    if (week == -1)
        return d.day + 7 > sched_date_month_days(d.year, d.month);
    return (d.day - 1) / 7 + 1 == week;
}

static int s_ref_expand(const sched_rule_t *rule, sched_date_t from, sched_date_t to,
                        sched_date_t *out, int max)
{
    sched_date_t d = rule->start;
    int weekday = sched_date_weekday(d), n = 0, index = 0;
    for (int64_t i = 0; sched_date_cmp(d, to) <= 0; i++) {
        if (rule->until.year && sched_date_cmp(d, rule->until) > 0)
            break;
        if (rule->count && index >= rule->count)
            break;
        if (s_ref_matches(rule, d, i, weekday)) {
            index++;
            if (sched_date_cmp(d, from) >= 0) {
                if (n >= max)
                    return -1;
                out[n++] = d;
            }
        }
        s_next_day(&d);
        weekday = (weekday + 1) % 7;
    }
    return n;
}

static uint32_t s_rand(uint32_t *seed)
{
    *seed = *seed * 1664525u + 1013904223u;
    return *seed >> 8;
}

/* A pseudo-random valid rule starting in 2026..2027. */
static sched_rule_t s_random_rule(uint32_t *seed)
{
    sched_rule_t rule = {.interval = 1 + (int)(s_rand(seed) % 5)};
    if (s_rand(seed) % 8 == 0)
        rule.interval = 1 + (int)(s_rand(seed) % SCHED_RULE_MAX_INTERVAL);
    rule.start =
        sched_date_from_days(sched_date_days((sched_date_t){2026, 1, 1}) + s_rand(seed) % 730);
    if (s_rand(seed) % 2) {
        rule.freq = SCHED_FREQ_WEEKLY;
        rule.weekdays = s_rand(seed) % 128;
    } else {
        rule.freq = SCHED_FREQ_MONTHLY;
        static const int weeks[] = {-1, 0, 1, 2, 3, 4};
        rule.month_week = weeks[s_rand(seed) % 6];
        if (rule.month_week == 0 && rule.start.day > 28)
            rule.start.day -= 7;
    }
    if (s_rand(seed) % 2)
        rule.count = 1 + (int)(s_rand(seed) % 120);
    else
        rule.until = sched_date_from_days(sched_date_days(rule.start) + s_rand(seed) % 1500);
    return rule;
}

static void test_against_reference(void **state)
{
    (void)state;
    uint32_t seed = 20270112;
    static sched_date_t got[MAX_OUT], want[MAX_OUT];
    for (int i = 0; i < 3000; i++) {
        sched_rule_t rule = s_random_rule(&seed);
        assert_true(sched_rule_valid(&rule));
        int64_t base = sched_date_days(rule.start) - 100;
        sched_date_t from = sched_date_from_days(base + s_rand(&seed) % 1600);
        sched_date_t to = sched_date_from_days(sched_date_days(from) + s_rand(&seed) % 400);
        int n = sched_rule_expand(&rule, from, to, got, MAX_OUT);
        int m = s_ref_expand(&rule, from, to, want, MAX_OUT);
        if (n != m)
            fail_msg("rule %d: %d occurrences, reference %d", i, n, m);
        for (int k = 0; k < n; k++)
            assert_int_equal(sched_date_cmp(got[k], want[k]), 0);
        if (n > 0)
            assert_int_equal(sched_rule_expand(&rule, from, to, got, n - 1), -1);
        /* the first occurrence is the reference's first from the start */
        sched_date_t first;
        int whole = s_ref_expand(&rule, rule.start, sched_date_from_days(base + 3000), want, 1);
        assert_int_equal(sched_rule_first(&rule, &first), whole == 0 ? -1 : 0);
        if (whole != 0)
            assert_int_equal(sched_date_cmp(first, want[0]), 0);
    }
}

/* 200 weekly groups over one quarter: the counts a schedule page shows. */
static void test_quarter_of_200_rules(void **state)
{
    (void)state;
    sched_date_t from = s_date("2027-01-01"), to = s_date("2027-03-31"), out[100], ref[100];
    int64_t june = sched_date_days(s_date("2026-06-01"));
    for (int i = 0; i < 200; i++) {
        sched_rule_t rule = {SCHED_FREQ_WEEKLY, 1 + i % 4, (unsigned)(1 + (i * 37) % 127)};
        rule.start = sched_date_from_days(june + (i * 13) % 300);
        if (i % 3 == 0)
            rule.count = 10 + i;
        else
            rule.until = s_date("2028-12-31");
        int n = sched_rule_expand(&rule, from, to, out, 100);
        assert_int_equal(n, s_ref_expand(&rule, from, to, ref, 100));
        for (int k = 0; k < n; k++)
            assert_int_equal(sched_date_cmp(out[k], ref[k]), 0);
    }
    /* 200 Monday groups started before the quarter: 13 Mondays each */
    sched_rule_t monday = s_weekly(0, NULL, "2026-09-07", "2027-12-31", 0);
    int total = 0;
    for (int i = 0; i < 200; i++)
        total += sched_rule_expand(&monday, from, to, out, 100);
    assert_int_equal(total, 200 * 13);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_date_parse_format),     cmocka_unit_test(test_date_weekday),
        cmocka_unit_test(test_date_days_round_trip),  cmocka_unit_test(test_weekly),
        cmocka_unit_test(test_weekly_count),          cmocka_unit_test(test_monthly),
        cmocka_unit_test(test_month_week_derivation), cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_make_refusals),         cmocka_unit_test(test_rrule),
        cmocka_unit_test(test_against_reference),     cmocka_unit_test(test_quarter_of_200_rules),
    };
    return cmocka_run_group_tests_name("recurrence", tests, NULL, NULL);
}
