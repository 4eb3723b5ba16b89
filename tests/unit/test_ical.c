/*  test_ical: the iCalendar feed writer (services/scheduling/ical.c).
 *
 *  One calendar is compared byte for byte; the rest check the rules every
 *  feed must keep whatever the data: CRLF only, physical lines of at most
 *  75 octets that unfold to the original, no UTF-8 character cut in two,
 *  TEXT escaping, control characters and invalid UTF-8 cleaned away, and
 *  events that cannot be written refused without touching the calendar. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/scheduling/ical.h" /* not on the include path */
#include "../../services/scheduling/recurrence.h"

#define US(seconds) ((int64_t)(seconds)*1000000)
#define T_2027_01_12_1800 US(1799776800) /* 2027-01-12T18:00:00Z */
#define T_2027_01_12_1930 US(1799782200)
#define T_2026_12_01_091542 US(1796116542)

#define HEAD                                                                                       \
    "BEGIN:VCALENDAR\r\n"                                                                          \
    "VERSION:2.0\r\n"                                                                              \
    "PRODID:-//Beacon//Scheduling//EN\r\n"                                                         \
    "CALSCALE:GREGORIAN\r\n"                                                                       \
    "METHOD:PUBLISH\r\n"

/* ---- Helpers ------------------------------------------------------------ */

static sched_ical_event_t s_event(void)
{
    return (sched_ical_event_t){.uid = "7d1c9a52-3f1e-4c1b-9a57-0c4e2d8b6f10@beacon",
                                .start_us = T_2027_01_12_1800,
                                .end_us = T_2027_01_12_1930,
                                .stamp_us = T_2026_12_01_091542};
}

/* The finished text of a calendar holding ev alone (caller frees). */
static char *s_calendar_of(const sched_ical_event_t *ev)
{
    sched_ical_t *cal = sched_ical_new(NULL, NULL);
    assert_int_equal(sched_ical_add(cal, ev), 0);
    size_t len = 0;
    char *text = sched_ical_finish(&cal, &len);
    assert_null(cal);
    assert_int_equal(len, strlen(text));
    return text;
}

/* Length of the valid UTF-8 character at s (s[0] >= 0x80), or 0. A
 * simple reading of RFC 3629 for checking, not the writer's. */
static size_t s_utf8_char(const unsigned char *s, size_t left)
{
    size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || s[0] > 0xf4 || n > left)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* Checks the physical lines of text: each ends in CRLF, holds no other CR
 * or LF, has at most 75 octets and is valid UTF-8 on its own (so no
 * character was cut by a fold). Returns the number of continuation lines. */
static int s_check_lines(const char *text)
{
    int folds = 0;
    const char *p = text;
    while (*p) {
        const char *end = strstr(p, "\r\n");
        assert_non_null(end);
        size_t len = (size_t)(end - p);
        if (len > 75)
            fail_msg("line of %zu octets: %.*s", len, (int)len, p);
        for (size_t i = 0; i < len;) {
            const unsigned char *c = (const unsigned char *)p + i;
            assert_true(*c != '\r' && *c != '\n');
            size_t n = *c < 0x80 ? 1 : s_utf8_char(c, len - i);
            if (n == 0)
                fail_msg("cut or invalid UTF-8 at octet %zu of: %.*s", i, (int)len, p);
            i += n;
        }
        folds += *p == ' ';
        p = end + 2;
    }
    return folds;
}

/* text unfolded (every CRLF followed by a space removed); caller frees. */
static char *s_unfold(const char *text)
{
    char *out = malloc(strlen(text) + 1), *o = out;
    for (const char *p = text; *p; p++) {
        if (p[0] == '\r' && p[1] == '\n' && p[2] == ' ')
            p += 2;
        else
            *o++ = *p;
    }
    *o = '\0';
    return out;
}

/* The unfolded content line of text starting with prefix (caller frees). */
static char *s_find_line(const char *text, const char *prefix)
{
    char *unfolded = s_unfold(text);
    char *line = strstr(unfolded, prefix);
    assert_non_null(line);
    assert_true(line == unfolded || line[-1] == '\n');
    *strstr(line, "\r\n") = '\0';
    char *copy = strdup(line);
    free(unfolded);
    return copy;
}

/* ---- Tests -------------------------------------------------------------- */

static void test_one_event(void **state)
{
    (void)state;
    sched_ical_t *cal = sched_ical_new("-//Beacon//Scheduling//EN", "Dana's sessions");
    sched_ical_event_t ev = s_event();
    ev.summary = "Recovery group";
    ev.location = "Room 2";
    ev.description = "";
    ev.status = "CONFIRMED";
    assert_int_equal(sched_ical_add(cal, &ev), 0);
    size_t len;
    char *text = sched_ical_finish(&cal, &len);
    assert_null(cal);
    const char *want = HEAD "X-WR-CALNAME:Dana's sessions\r\n"
                            "BEGIN:VEVENT\r\n"
                            "UID:7d1c9a52-3f1e-4c1b-9a57-0c4e2d8b6f10@beacon\r\n"
                            "DTSTAMP:20261201T091542Z\r\n"
                            "DTSTART:20270112T180000Z\r\n"
                            "DTEND:20270112T193000Z\r\n"
                            "SEQUENCE:0\r\n"
                            "STATUS:CONFIRMED\r\n"
                            "SUMMARY:Recovery group\r\n"
                            "LOCATION:Room 2\r\n"
                            "END:VEVENT\r\n"
                            "END:VCALENDAR\r\n";
    assert_string_equal(text, want);
    assert_int_equal(len, strlen(want));
    free(text);
}

static void test_empty_calendar(void **state)
{
    (void)state;
    sched_ical_t *cal = sched_ical_new("", "");
    char *text = sched_ical_finish(&cal, NULL);
    assert_string_equal(text, HEAD "END:VCALENDAR\r\n");
    free(text);
    /* NULL and unfinished calendars */
    assert_null(sched_ical_finish(&cal, NULL));
    sched_ical_destroy(&cal);
    sched_ical_destroy(NULL);
    cal = sched_ical_new("-//Other//EN", NULL);
    sched_ical_event_t ev = s_event();
    assert_int_equal(sched_ical_add(cal, &ev), 0);
    sched_ical_destroy(&cal);
    assert_null(cal);
}

static void test_escaping(void **state)
{
    (void)state;
    sched_ical_event_t ev = s_event();
    ev.summary = "Back\\slash; semi, comma\nnew line\r\nCRLF";
    ev.location = "Tab\there, bell\a esc\x1b del\x7f nul-free \xc2\x85(NEL) \xc3\xa9t\xc3\xa9";
    ev.description = "bad \xff byte, cut \xe2\x82 and overlong \xc0\xaf, surrogate \xed\xa0\x80.";
    ev.categories = "Group, peer-led";
    ev.rrule = "FREQ=WEEKLY;BYDAY=MO,TH;COUNT=4\r\n";
    char *text = s_calendar_of(&ev);
    s_check_lines(text);
    char *line = s_find_line(text, "SUMMARY:");
    assert_string_equal(line, "SUMMARY:Back\\\\slash\\; semi\\, comma\\nnew line\\nCRLF");
    free(line);
    line = s_find_line(text, "LOCATION:");
    assert_string_equal(line,
                        "LOCATION:Tab\there\\, bell esc del nul-free (NEL) \xc3\xa9t\xc3\xa9");
    free(line);
    line = s_find_line(text, "DESCRIPTION:");
    assert_string_equal(line,
                        "DESCRIPTION:bad \xef\xbf\xbd byte\\, cut \xef\xbf\xbd\xef\xbf\xbd and "
                        "overlong \xef\xbf\xbd\xef\xbf\xbd\\, surrogate "
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd.");
    free(line);
    line = s_find_line(text, "CATEGORIES:");
    assert_string_equal(line, "CATEGORIES:Group\\, peer-led");
    free(line);
    /* RRULE is a RECUR value: commas and semicolons are its syntax */
    line = s_find_line(text, "RRULE:");
    assert_string_equal(line, "RRULE:FREQ=WEEKLY;BYDAY=MO,TH;COUNT=4");
    free(line);
    free(text);

    /* PRODID and the calendar name are TEXT too */
    sched_ical_t *cal = sched_ical_new("-//Beacon, Inc//EN", "A;B");
    text = sched_ical_finish(&cal, NULL);
    assert_non_null(strstr(text, "\r\nPRODID:-//Beacon\\, Inc//EN\r\n"));
    assert_non_null(strstr(text, "\r\nX-WR-CALNAME:A\\;B\r\n"));
    free(text);
}

static void test_fold_ascii(void **state)
{
    (void)state;
    char value[400];
    for (size_t i = 0; i < sizeof value - 1; i++)
        value[i] = (char)('a' + i % 26);
    value[sizeof value - 1] = '\0';
    sched_ical_event_t ev = s_event();
    ev.description = value;
    char *text = s_calendar_of(&ev);
    /* "DESCRIPTION:" + 399 = 411 octets: 75 + 5 x 74 = 445, so 5 folds */
    assert_int_equal(s_check_lines(text), 5);
    char *line = s_find_line(text, "DESCRIPTION:");
    assert_string_equal(line + strlen("DESCRIPTION:"), value);
    free(line);
    /* the first physical line is exactly 75 octets */
    const char *first = strstr(text, "DESCRIPTION:");
    assert_int_equal(strstr(first, "\r\n") - first, 75);
    free(text);

    /* a content line of exactly 75 octets is not folded; 76 is */
    char exact[80];
    memset(exact, 'x', sizeof exact);
    exact[75 - strlen("SUMMARY:")] = '\0';
    ev = s_event();
    ev.summary = exact;
    text = s_calendar_of(&ev);
    assert_int_equal(s_check_lines(text), 0);
    free(text);
    exact[75 - strlen("SUMMARY:")] = 'x';
    exact[76 - strlen("SUMMARY:")] = '\0';
    text = s_calendar_of(&ev);
    assert_int_equal(s_check_lines(text), 1);
    assert_non_null(strstr(text, "x\r\n x\r\n"));
    free(text);
}

static void test_fold_multibyte(void **state)
{
    (void)state;
    /* 2-, 3- and 4-octet characters, shifted against the fold points by a
     * growing ASCII prefix so that every cut position is tried */
    static const char *chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    for (size_t c = 0; c < 3; c++) {
        for (size_t shift = 0; shift < 4; shift++) {
            char value[1200] = "";
            for (size_t i = 0; i < shift; i++)
                strcat(value, "a");
            for (int i = 0; i < 200; i++)
                strcat(value, chars[c]);
            sched_ical_event_t ev = s_event();
            ev.summary = value;
            char *text = s_calendar_of(&ev);
            assert_true(s_check_lines(text) >= 5);
            char *line = s_find_line(text, "SUMMARY:");
            assert_string_equal(line + strlen("SUMMARY:"), value);
            free(line);
            free(text);
        }
    }
    /* escapes and multi-byte characters together */
    char value[2000] = "";
    for (int i = 0; i < 60; i++)
        strcat(value, "\xc3\xa9,\xe2\x82\xac;\n");
    sched_ical_event_t ev = s_event();
    ev.description = value;
    char *text = s_calendar_of(&ev);
    s_check_lines(text);
    char *line = s_find_line(text, "DESCRIPTION:");
    char want[4000] = "DESCRIPTION:";
    for (int i = 0; i < 60; i++)
        strcat(want, "\xc3\xa9\\,\xe2\x82\xac\\;\\n");
    assert_string_equal(line, want);
    free(line);
    free(text);
}

static void test_cancelled_with_rrule(void **state)
{
    (void)state;
    sched_rule_input_t in = {
        .freq = "monthly", .start = "2027-01-12", .has_count = true, .count = 6};
    sched_rule_t rule;
    char field[SCHED_FIELD_SIZE], message[SCHED_MESSAGE_SIZE], rrule[100];
    assert_int_equal(sched_rule_make(&in, &rule, field, message), 0);
    assert_true(sched_rule_to_rrule(&rule, rrule, sizeof rrule) > 0);

    sched_ical_event_t ev = s_event();
    ev.summary = "Family support group";
    ev.status = "CANCELLED";
    ev.sequence = 3;
    ev.rrule = rrule;
    char *text = s_calendar_of(&ev);
    const char *want = "DTEND:20270112T193000Z\r\n"
                       "RRULE:FREQ=MONTHLY;BYDAY=2TU;COUNT=6\r\n"
                       "SEQUENCE:3\r\n"
                       "STATUS:CANCELLED\r\n"
                       "SUMMARY:Family support group\r\n"
                       "END:VEVENT\r\n";
    assert_non_null(strstr(text, want));
    free(text);

    ev.status = "TENTATIVE";
    ev.rrule = "";
    text = s_calendar_of(&ev);
    assert_non_null(strstr(text, "\r\nSTATUS:TENTATIVE\r\n"));
    assert_null(strstr(text, "RRULE"));
    free(text);
}

static void test_times(void **state)
{
    (void)state;
    struct {
        int64_t us;
        const char *utc;
    } cases[] = {
        {0, "19700101T000000Z"},
        {US(951868799) + 999999, "20000229T235959Z"}, /* the fraction is dropped */
        {US(951868800), "20000301T000000Z"},
        {US(253402300799), "99991231T235959Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sched_ical_event_t ev = s_event();
        ev.start_us = ev.end_us = ev.stamp_us = cases[i].us;
        char *text = s_calendar_of(&ev);
        char *line = s_find_line(text, "DTSTART:");
        assert_string_equal(line + strlen("DTSTART:"), cases[i].utc);
        free(line);
        free(text);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    sched_ical_t *cal = sched_ical_new(NULL, "x");
    sched_ical_event_t ev;
#define REFUSED(change)                                                                            \
    do {                                                                                           \
        ev = s_event();                                                                            \
        change;                                                                                    \
        assert_int_equal(sched_ical_add(cal, &ev), -1);                                            \
    } while (0)
    REFUSED(ev.uid = NULL);
    REFUSED(ev.uid = "");
    REFUSED(ev.start_us = -1); /* before 1970 */
    REFUSED(ev.stamp_us = INT64_MIN);
    REFUSED(ev.end_us = US(253402300800)); /* year 10000 */
    REFUSED(ev.end_us = INT64_MAX);
    REFUSED(ev.end_us = ev.start_us - 1);
    REFUSED(ev.sequence = -1);
    REFUSED(ev.status = "DONE");
    REFUSED(ev.status = "confirmed");
#undef REFUSED
    /* nothing was written; a zero-length event is fine */
    ev = s_event();
    ev.end_us = ev.start_us;
    assert_int_equal(sched_ical_add(cal, &ev), 0);
    char *text = sched_ical_finish(&cal, NULL);
    char *p = text;
    int events = 0;
    while ((p = strstr(p, "BEGIN:VEVENT")) != NULL)
        events++, p++;
    assert_int_equal(events, 1);
    assert_null(strstr(text, "STATUS"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_event),      cmocka_unit_test(test_empty_calendar),
        cmocka_unit_test(test_escaping),       cmocka_unit_test(test_fold_ascii),
        cmocka_unit_test(test_fold_multibyte), cmocka_unit_test(test_cancelled_with_rrule),
        cmocka_unit_test(test_times),          cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests_name("ical", tests, NULL, NULL);
}
