/*  recurrence: civil dates and the recurrence rules of group sessions.
 *
 *  Pure logic: no database, no allocation, no clock. Everything here works on
 *  local calendar dates (proleptic Gregorian); turning a date and a local
 *  time into an instant happens elsewhere (in PostgreSQL, with the program's
 *  time zone), so daylight-saving changes never move an occurrence to
 *  another day.
 *
 *  A rule is what the API receives for a recurring group session: weekly on
 *  some weekdays every N weeks, or monthly on the first..fourth or last
 *  weekday of the start date every N months, from a start date until a last
 *  date or for a number of occurrences (a series always ends).
 *  sched_rule_make() validates the raw request fields into a sched_rule_t;
 *  sched_rule_expand() lists the occurrence dates falling in a window in time
 *  proportional to the number of occurrences (never day by day), and
 *  sched_rule_to_rrule() writes the rule as an RFC 5545 RRULE for feeds.
 */
#ifndef SCHED_RECURRENCE_H
#define SCHED_RECURRENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCHED_DATE_MIN_YEAR 1900
#define SCHED_DATE_MAX_YEAR 2200
#define SCHED_RULE_MAX_INTERVAL 52
#define SCHED_RULE_MAX_COUNT 1000 /* occurrences of a count-limited series */
#define SCHED_FIELD_SIZE 32
#define SCHED_MESSAGE_SIZE 200

/* ---- Civil dates --------------------------------------------------------- */

typedef struct {
    int year, month, day; /* proleptic Gregorian */
} sched_date_t;

/* Parses strict "YYYY-MM-DD": exactly 10 characters, digits and dashes in
 * place, a real calendar date (2024-02-30 and 2023-02-29 are refused) with
 * year SCHED_DATE_MIN_YEAR..SCHED_DATE_MAX_YEAR. Returns 0 and fills *out,
 * or -1 (NULL text included) leaving *out untouched. */
int sched_date_parse(const char *text, sched_date_t *out);
/* Writes d as "YYYY-MM-DD" and a NUL into out. A date that is not a real
 * calendar date with year 0..9999 is written as "0000-00-00". */
void sched_date_format(sched_date_t d, char out[11]);
/* True when d is a real calendar date (any year). */
bool sched_date_valid(sched_date_t d);
/* Days in the month (1..12) of year. */
int sched_date_month_days(int year, int month);
/* Days since 1970-01-01 (negative before), by Howard Hinnant's
 * days_from_civil; d must be a real calendar date. */
int64_t sched_date_days(sched_date_t d);
/* The date that many days after 1970-01-01 (civil_from_days); inverse of
 * sched_date_days for any day whose year fits in an int (|days| < 7e11). */
sched_date_t sched_date_from_days(int64_t days);
/* ISO weekday: 0 = Monday .. 6 = Sunday. */
int sched_date_weekday(sched_date_t d);
/* -1, 0 or 1 as a is before, the same as or after b. */
int sched_date_cmp(sched_date_t a, sched_date_t b);

/* ---- Rules --------------------------------------------------------------- */

typedef enum { SCHED_FREQ_WEEKLY = 1, SCHED_FREQ_MONTHLY = 2 } sched_freq_t;

typedef struct {
    sched_freq_t freq;
    int interval;       /* every N weeks / N months, 1..SCHED_RULE_MAX_INTERVAL */
    unsigned weekdays;  /* WEEKLY: bit 0 = Monday .. bit 6 = Sunday; 0 means the
                           start date's weekday. MONTHLY: 0 */
    int month_week;     /* MONTHLY: 1..4 = first..fourth, -1 = last <weekday of
                           start>; 0 means the start date's own position (start
                           2027-01-12 is the 2nd Tuesday -> 2), which must then be
                           1..4 (a start on day 29..31 needs an explicit value).
                           WEEKLY: 0 */
    sched_date_t start; /* first date of the series (anchor; itself an
                           occurrence when it matches the rule) */
    sched_date_t until; /* last date inclusive; year 0 = none */
    int count;          /* total occurrences of the series from start, the
                           first being the first matching date >= start;
                           0 = none */
} sched_rule_t;

/* The request fields of a rule, as the API received them (already taken out
 * of the JSON body; the integers as JSON gave them, so that 2^32 + 1 is not
 * mistaken for 1). A NULL string or a false has_ flag means the field was
 * absent. */
typedef struct {
    const char *freq;          /* required: "weekly" | "monthly" */
    bool has_interval;         /* absent: 1 */
    int64_t interval;          /* 1..SCHED_RULE_MAX_INTERVAL */
    const char *const *by_day; /* weekly only, NULL = absent (the start date's
                                  weekday); 1..7 distinct codes "MO".."SU" */
    size_t by_day_count;
    bool has_month_week; /* monthly only; absent: the start's position */
    int64_t month_week;  /* -1, 1, 2, 3 or 4 */
    const char *start;   /* required: YYYY-MM-DD */
    const char *until;   /* YYYY-MM-DD, not before start */
    bool has_count;
    int64_t count; /* 1..SCHED_RULE_MAX_COUNT */
} sched_rule_input_t;

/* Validates the request fields into *out. Exactly one of until and count
 * must be given (a series must end). Returns 0, or -1 with field naming the
 * bad field ("freq", "interval", "by_day", "by_day[i]", "month_week",
 * "start", "until", "count") and message a sentence for the user; *out is
 * left unspecified on error. On success out->weekdays and out->month_week
 * keep 0 when by_day / month_week were absent (see sched_rule_t). */
int sched_rule_make(const sched_rule_input_t *in, sched_rule_t *out, char field[SCHED_FIELD_SIZE],
                    char message[SCHED_MESSAGE_SIZE]);

/* True when rule is one sched_rule_make() could have produced (every
 * constraint above, except that neither until nor count is required). */
bool sched_rule_valid(const sched_rule_t *rule);

/* Writes the occurrence dates of rule within [from, to] (inclusive) into
 * out, in order, at most max of them. Occurrences before from still count
 * towards a count limit. Returns the number written, -1 when the window
 * holds more than max occurrences (the caller reports "too many
 * occurrences"; out then holds the first max) or -2 when the rule is not
 * valid (sched_rule_valid). Time is proportional to the occurrences written,
 * however far the window lies from start. */
int sched_rule_expand(const sched_rule_t *rule, sched_date_t from, sched_date_t to,
                      sched_date_t *out, int max);

/* The first occurrence of the series (what an iCalendar DTSTART must be, as
 * RFC 5545 counts DTSTART as the first instance). Returns 0 and fills *out,
 * -1 when the series has no occurrence at all (until before the first
 * match) or the rule is not valid. */
int sched_rule_first(const sched_rule_t *rule, sched_date_t *out);

/* Writes the RFC 5545 RRULE value of rule and a NUL into out, e.g.
 * "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;UNTIL=20270630" or
 * "FREQ=MONTHLY;BYDAY=-1TU;COUNT=6": INTERVAL only when not 1, BYDAY always
 * (resolved from start when the rule leaves it 0), UNTIL as a DATE. The rule
 * is in local dates, so the RRULE is exact only next to a DTSTART in local
 * time: against a UTC DTSTART an evening session may fall on the next UTC
 * weekday and RFC 5545 wants UNTIL as a UTC instant. Returns the length, or
 * -1 when it does not fit in size bytes or the rule is not valid (out is
 * then "" when size > 0). */
int sched_rule_to_rrule(const sched_rule_t *rule, char *out, size_t size);

#endif
