/*  recurrence: civil-date arithmetic and recurrence rules of group sessions.
 *
 *  Dates convert to and from a day number (days since 1970-01-01) with
 *  Howard Hinnant's days_from_civil / civil_from_days, so comparisons, weekday
 *  and week arithmetic are integer operations. Expansion never walks day by
 *  day: a weekly rule jumps from active week to active week (week index from
 *  the Monday of start's week), a monthly rule from active month to active
 *  month, and the number of occurrences before the window (for count limits)
 *  is computed in closed form. So the work is proportional to the
 *  occurrences written, however far the window lies from start.
 */
#include "recurrence.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const s_day_codes[7] = {"MO", "TU", "WE", "TH", "FR", "SA", "SU"};

/* ---- Civil dates --------------------------------------------------------- */

static bool s_leap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int sched_date_month_days(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    return month == 2 && s_leap(year) ? 29 : days[month - 1];
}

bool sched_date_valid(sched_date_t d)
{
    return d.month >= 1 && d.month <= 12 && d.day >= 1 &&
           d.day <= sched_date_month_days(d.year, d.month);
}

/* The value of n decimal digits at text, or -1 when one is not a digit. */
static int s_digits(const char *text, int n)
{
    int value = 0;
    for (int i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

int sched_date_parse(const char *text, sched_date_t *out)
{
    if (!text || strlen(text) != 10 || text[4] != '-' || text[7] != '-')
        return -1;
    sched_date_t d = {s_digits(text, 4), s_digits(text + 5, 2), s_digits(text + 8, 2)};
    if (d.year < SCHED_DATE_MIN_YEAR || d.year > SCHED_DATE_MAX_YEAR || !sched_date_valid(d))
        return -1;
    *out = d;
    return 0;
}

/* Writes value as n decimal digits (value must fit). */
static void s_put_digits(char *out, int value, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

void sched_date_format(sched_date_t d, char out[11])
{
    if (d.year < 0 || d.year > 9999 || !sched_date_valid(d))
        d = (sched_date_t){0, 0, 0};
    s_put_digits(out, d.year, 4);
    out[4] = '-';
    s_put_digits(out + 5, d.month, 2);
    out[7] = '-';
    s_put_digits(out + 8, d.day, 2);
    out[10] = '\0';
}

int64_t sched_date_days(sched_date_t d)
{
    int64_t y = (int64_t)d.year - (d.month <= 2);
    int64_t m = d.month;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                       /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d.day - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;               /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

sched_date_t sched_date_from_days(int64_t days)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    return (sched_date_t){(int)y, (int)m, (int)(doy - (153 * mp + 2) / 5 + 1)};
}

/* ISO weekday of a day number (1970-01-01 was a Thursday). */
static int s_weekday(int64_t days)
{
    return (int)(((days % 7) + 7 + 3) % 7);
}

int sched_date_weekday(sched_date_t d)
{
    return s_weekday(sched_date_days(d));
}

int sched_date_cmp(sched_date_t a, sched_date_t b)
{
    if (a.year != b.year)
        return a.year < b.year ? -1 : 1;
    if (a.month != b.month)
        return a.month < b.month ? -1 : 1;
    if (a.day != b.day)
        return a.day < b.day ? -1 : 1;
    return 0;
}

/* ---- Rule validation ----------------------------------------------------- */

/* The weekday mask in effect: the rule's, or start's weekday when 0. */
static unsigned s_weekdays(const sched_rule_t *rule)
{
    return rule->weekdays ? rule->weekdays : 1u << sched_date_weekday(rule->start);
}

/* The month week in effect: the rule's, or start's position (1..5) when 0. */
static int s_month_week(const sched_rule_t *rule)
{
    return rule->month_week ? rule->month_week : (rule->start.day - 1) / 7 + 1;
}

bool sched_rule_valid(const sched_rule_t *rule)
{
    if (!rule || rule->interval < 1 || rule->interval > SCHED_RULE_MAX_INTERVAL)
        return false;
    if (rule->freq == SCHED_FREQ_WEEKLY) {
        if (rule->weekdays > 0x7f || rule->month_week != 0)
            return false;
    } else if (rule->freq == SCHED_FREQ_MONTHLY) {
        int week = s_month_week(rule);
        if (rule->weekdays != 0 || week < -1 || week == 0 || week > 4)
            return false;
    } else {
        return false;
    }
    if (!sched_date_valid(rule->start) || rule->start.year < SCHED_DATE_MIN_YEAR ||
        rule->start.year > SCHED_DATE_MAX_YEAR)
        return false;
    if (rule->until.year != 0 &&
        (!sched_date_valid(rule->until) || sched_date_cmp(rule->until, rule->start) < 0))
        return false;
    return rule->count >= 0 && rule->count <= SCHED_RULE_MAX_COUNT;
}

/* Fills field and message and returns -1. */
static int s_refuse(char field[SCHED_FIELD_SIZE], char message[SCHED_MESSAGE_SIZE],
                    const char *name, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int s_refuse(char field[SCHED_FIELD_SIZE], char message[SCHED_MESSAGE_SIZE],
                    const char *name, const char *fmt, ...)
{
    snprintf(field, SCHED_FIELD_SIZE, "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, SCHED_MESSAGE_SIZE, fmt, ap);
    va_end(ap);
    return -1;
}

/* The weekday (0..6) of a day code "MO".."SU", or -1. */
static int s_day_code(const char *code)
{
    for (int i = 0; code && i < 7; i++)
        if (strcmp(code, s_day_codes[i]) == 0)
            return i;
    return -1;
}

int sched_rule_make(const sched_rule_input_t *in, sched_rule_t *out, char field[SCHED_FIELD_SIZE],
                    char message[SCHED_MESSAGE_SIZE])
{
    static const char *const ordinals[] = {"", "1st", "2nd", "3rd", "4th", "5th"};
    static const char *const day_names[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                            "Friday", "Saturday", "Sunday"};
    memset(out, 0, sizeof *out);
    if (in->freq && strcmp(in->freq, "weekly") == 0)
        out->freq = SCHED_FREQ_WEEKLY;
    else if (in->freq && strcmp(in->freq, "monthly") == 0)
        out->freq = SCHED_FREQ_MONTHLY;
    else if (!in->freq)
        return s_refuse(field, message, "freq", "freq is required (\"weekly\" or \"monthly\")");
    else
        return s_refuse(field, message, "freq", "freq must be \"weekly\" or \"monthly\"");

    out->interval = 1;
    if (in->has_interval) {
        if (in->interval < 1 || in->interval > SCHED_RULE_MAX_INTERVAL)
            return s_refuse(field, message, "interval", "interval must be between 1 and %d",
                            SCHED_RULE_MAX_INTERVAL);
        out->interval = (int)in->interval;
    }

    if (in->by_day) {
        if (out->freq != SCHED_FREQ_WEEKLY)
            return s_refuse(field, message, "by_day",
                            "by_day applies to weekly rules only (a monthly rule takes "
                            "month_week and the start date's weekday)");
        if (in->by_day_count == 0 || in->by_day_count > 7)
            return s_refuse(field, message, "by_day",
                            "by_day must list 1 to 7 distinct days (\"MO\" to \"SU\")");
        for (size_t i = 0; i < in->by_day_count; i++) {
            char name[SCHED_FIELD_SIZE];
            snprintf(name, sizeof name, "by_day[%zu]", i);
            int day = s_day_code(in->by_day[i]);
            if (day < 0)
                return s_refuse(field, message, name,
                                "%s must be one of MO, TU, WE, TH, FR, SA, SU", name);
            if (out->weekdays & (1u << day))
                return s_refuse(field, message, name, "%s repeats %s", name, s_day_codes[day]);
            out->weekdays |= 1u << day;
        }
    }

    if (in->has_month_week) {
        if (out->freq != SCHED_FREQ_MONTHLY)
            return s_refuse(field, message, "month_week",
                            "month_week applies to monthly rules only");
        if (in->month_week != -1 && (in->month_week < 1 || in->month_week > 4))
            return s_refuse(field, message, "month_week",
                            "month_week must be 1, 2, 3, 4 (first to fourth) or -1 (last)");
        out->month_week = (int)in->month_week;
    }

    if (!in->start)
        return s_refuse(field, message, "start", "start is required (YYYY-MM-DD)");
    if (sched_date_parse(in->start, &out->start) != 0)
        return s_refuse(field, message, "start",
                        "start must be a date YYYY-MM-DD between %d and %d", SCHED_DATE_MIN_YEAR,
                        SCHED_DATE_MAX_YEAR);

    if (in->until && in->has_count)
        return s_refuse(field, message, "until", "give either until or count, not both");
    if (!in->until && !in->has_count)
        return s_refuse(field, message, "until",
                        "a series must end: give until (last date) or count");
    if (in->until) {
        if (sched_date_parse(in->until, &out->until) != 0)
            return s_refuse(field, message, "until",
                            "until must be a date YYYY-MM-DD between %d and %d",
                            SCHED_DATE_MIN_YEAR, SCHED_DATE_MAX_YEAR);
        if (sched_date_cmp(out->until, out->start) < 0)
            return s_refuse(field, message, "until", "until must not be before start");
    } else {
        if (in->count < 1 || in->count > SCHED_RULE_MAX_COUNT)
            return s_refuse(field, message, "count", "count must be between 1 and %d",
                            SCHED_RULE_MAX_COUNT);
        out->count = (int)in->count;
    }

    /* A start on day 29..31 is the 5th of its weekday, which most months
     * lack: "last" or a fixed position must be said explicitly. */
    if (out->freq == SCHED_FREQ_MONTHLY && s_month_week(out) > 4) {
        char date[11];
        sched_date_format(out->start, date);
        return s_refuse(field, message, "month_week",
                        "start %s is the %s %s of its month; give month_week "
                        "(-1 for the last %s)",
                        date, ordinals[s_month_week(out)],
                        day_names[sched_date_weekday(out->start)],
                        day_names[sched_date_weekday(out->start)]);
    }
    return 0;
}

/* ---- Expansion ------------------------------------------------------------- */

/* Weekly: matching days in [monday0, x) ignoring start, where monday0 is the
 * Monday of start's week (week 0) and x >= monday0. */
static int64_t s_weekly_before(const sched_rule_t *rule, int64_t monday0, int64_t x)
{
    unsigned mask = s_weekdays(rule);
    int64_t offset = x - monday0, week = offset / 7, day = offset % 7;
    int64_t n = (week + rule->interval - 1) / rule->interval * __builtin_popcount(mask);
    if (week % rule->interval == 0)
        n += __builtin_popcount(mask & ((1u << day) - 1));
    return n;
}

/* Monthly: the day number of the occurrence in month index k (months since
 * start's month). */
static int64_t s_monthly_day(const sched_rule_t *rule, int64_t k)
{
    int64_t months = (int64_t)rule->start.year * 12 + (rule->start.month - 1) + k;
    sched_date_t first = {(int)(months / 12), (int)(months % 12) + 1, 1};
    int weekday = sched_date_weekday(rule->start);
    int week = s_month_week(rule);
    if (week > 0) {
        int64_t day1 = sched_date_days(first);
        return day1 + (weekday - s_weekday(day1) + 7) % 7 + (int64_t)(week - 1) * 7;
    }
    sched_date_t last = first;
    last.day = sched_date_month_days(first.year, first.month);
    int64_t end = sched_date_days(last);
    return end - (s_weekday(end) - weekday + 7) % 7;
}

/* Monthly: month index of day number x. */
static int64_t s_month_index(const sched_rule_t *rule, int64_t x)
{
    sched_date_t d = sched_date_from_days(x);
    return ((int64_t)d.year - rule->start.year) * 12 + (d.month - rule->start.month);
}

/* Monthly: occurrences in [first day of start's month, x), ignoring start;
 * x on or after that day. */
static int64_t s_monthly_before(const sched_rule_t *rule, int64_t x)
{
    int64_t k = s_month_index(rule, x);
    int64_t n = (k + rule->interval - 1) / rule->interval;
    if (k % rule->interval == 0 && s_monthly_day(rule, k) < x)
        n++;
    return n;
}

/* Appends day to out unless the count limit is reached; 1 when the series
 * ended, -1 when out is full, 0 otherwise. */
static int s_emit(const sched_rule_t *rule, int64_t day, int64_t *index, sched_date_t *out, int max,
                  int *n)
{
    if (rule->count && *index >= rule->count)
        return 1;
    if (*n >= max)
        return -1;
    out[(*n)++] = sched_date_from_days(day);
    (*index)++;
    return 0;
}

int sched_rule_expand(const sched_rule_t *rule, sched_date_t from, sched_date_t to,
                      sched_date_t *out, int max)
{
    if (!sched_rule_valid(rule) || !sched_date_valid(from) || !sched_date_valid(to))
        return -2;
    int64_t start = sched_date_days(rule->start);
    int64_t lo = sched_date_days(from), hi = sched_date_days(to);
    if (lo < start)
        lo = start;
    if (rule->until.year != 0 && sched_date_days(rule->until) < hi)
        hi = sched_date_days(rule->until);
    if (lo > hi)
        return 0;

    int n = 0, stop = 0;
    int64_t index; /* of the next occurrence in the whole series */
    if (rule->freq == SCHED_FREQ_WEEKLY) {
        unsigned mask = s_weekdays(rule);
        int64_t monday0 = start - sched_date_weekday(rule->start);
        index = s_weekly_before(rule, monday0, lo) - s_weekly_before(rule, monday0, start);
        int64_t week = (lo - monday0) / 7;
        if (week % rule->interval)
            week += rule->interval - week % rule->interval;
        for (; !stop && monday0 + week * 7 <= hi; week += rule->interval) {
            for (int b = 0; !stop && b < 7; b++) {
                int64_t day = monday0 + week * 7 + b;
                if (!(mask & (1u << b)) || day < lo)
                    continue;
                stop = day > hi ? 1 : s_emit(rule, day, &index, out, max, &n);
            }
        }
    } else {
        index = s_monthly_before(rule, lo) - s_monthly_before(rule, start);
        int64_t k = s_month_index(rule, lo);
        if (k % rule->interval)
            k += rule->interval - k % rule->interval;
        for (; !stop; k += rule->interval) {
            int64_t day = s_monthly_day(rule, k);
            if (day > hi)
                break;
            if (day >= lo)
                stop = s_emit(rule, day, &index, out, max, &n);
        }
    }
    return stop < 0 ? -1 : n;
}

int sched_rule_first(const sched_rule_t *rule, sched_date_t *out)
{
    if (!sched_rule_valid(rule))
        return -1;
    int64_t start = sched_date_days(rule->start), first;
    if (rule->freq == SCHED_FREQ_WEEKLY) {
        unsigned mask = s_weekdays(rule);
        int weekday = sched_date_weekday(rule->start);
        unsigned later = mask >> weekday; /* start's weekday and after, this week */
        if (later)
            first = start + __builtin_ctz(later);
        else
            first = start - weekday + (int64_t)rule->interval * 7 + __builtin_ctz(mask);
    } else {
        first = s_monthly_day(rule, 0);
        if (first < start)
            first = s_monthly_day(rule, rule->interval);
    }
    if (rule->until.year != 0 && first > sched_date_days(rule->until))
        return -1;
    *out = sched_date_from_days(first);
    return 0;
}

/* ---- RRULE --------------------------------------------------------------- */

int sched_rule_to_rrule(const sched_rule_t *rule, char *out, size_t size)
{
    if (size > 0)
        out[0] = '\0';
    if (!sched_rule_valid(rule) || size == 0)
        return -1;
    char text[160]; /* the longest rule takes about 90 */
    size_t len = 0;
    len += (size_t)snprintf(text + len, sizeof text - len, "FREQ=%s",
                            rule->freq == SCHED_FREQ_WEEKLY ? "WEEKLY" : "MONTHLY");
    if (rule->interval != 1)
        len += (size_t)snprintf(text + len, sizeof text - len, ";INTERVAL=%d", rule->interval);
    len += (size_t)snprintf(text + len, sizeof text - len, ";BYDAY=");
    if (rule->freq == SCHED_FREQ_WEEKLY) {
        unsigned mask = s_weekdays(rule);
        for (int b = 0; b < 7; b++)
            if (mask & (1u << b))
                len += (size_t)snprintf(text + len, sizeof text - len, "%s%s",
                                        (mask & ((1u << b) - 1)) ? "," : "", s_day_codes[b]);
    } else {
        len += (size_t)snprintf(text + len, sizeof text - len, "%d%s", s_month_week(rule),
                                s_day_codes[sched_date_weekday(rule->start)]);
    }
    if (rule->until.year != 0)
        len += (size_t)snprintf(text + len, sizeof text - len, ";UNTIL=%04d%02d%02d",
                                rule->until.year, rule->until.month, rule->until.day);
    if (rule->count)
        len += (size_t)snprintf(text + len, sizeof text - len, ";COUNT=%d", rule->count);
    if (len + 1 > size)
        return -1;
    memcpy(out, text, len + 1);
    return (int)len;
}
