/*  ical: the iCalendar writer behind a staff member's schedule feed.
 *
 *  Each content line is first built whole in a scratch buffer (property
 *  name, ':' and the value, escaped and cleaned), then copied into the
 *  calendar folded: 75 octets on the first physical line, a space and 74 on
 *  each continuation, cutting only in front of a UTF-8 lead byte. Because
 *  values are cleaned to valid UTF-8 before folding, a cut never lands inside
 *  a character. Dates come from recurrence.c's civil_from_days, so no time
 *  zone or libc time function is involved.
 */
#include "ical.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_mem.h"
#include "recurrence.h"

#define S_FOLD_OCTETS 75
#define S_US_PER_SECOND INT64_C(1000000)
#define S_SECONDS_PER_DAY INT64_C(86400)
#define S_MAX_US (INT64_C(253402300799) * S_US_PER_SECOND) /* 9999-12-31T23:59:59Z */

struct sched_ical {
    char *text; /* the calendar so far */
    size_t len, cap;
    char *line; /* the content line being built, unfolded */
    size_t line_len, line_cap;
};

/* ---- Buffers --------------------------------------------------------------- */

/* Makes room for more bytes after *len (and a NUL). */
static void s_reserve(char **buf, size_t *cap, size_t len, size_t more)
{
    if (len + more + 1 <= *cap)
        return;
    size_t want = *cap ? *cap : 256;
    while (want < len + more + 1)
        want *= 2;
    *buf = bc_realloc(*buf, want);
    *cap = want;
}

static void s_line_bytes(sched_ical_t *self, const char *bytes, size_t n)
{
    s_reserve(&self->line, &self->line_cap, self->line_len, n);
    memcpy(self->line + self->line_len, bytes, n);
    self->line_len += n;
}

static void s_text_bytes(sched_ical_t *self, const char *bytes, size_t n)
{
    s_reserve(&self->text, &self->cap, self->len, n);
    memcpy(self->text + self->len, bytes, n);
    self->len += n;
    self->text[self->len] = '\0';
}

/* ---- Cleaning and escaping ----------------------------------------------- */

/* Length of the valid UTF-8 sequence (RFC 3629: no overlongs, surrogates or
 * code points past U+10FFFF) starting at a byte >= 0x80, or 0. */
static size_t s_utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* Appends value to the line cleaned: control characters other than TAB
 * (and, for TEXT, LF) dropped, C1 controls dropped, invalid UTF-8 replaced
 * by U+FFFD. As TEXT (escape true) backslash, semicolon and comma are
 * escaped and LF written as \n. */
static void s_line_value(sched_ical_t *self, const char *value, bool escape)
{
    const unsigned char *s = (const unsigned char *)value;
    while (*s) {
        unsigned char c = *s;
        if (c >= 0x80) {
            size_t n = s_utf8_len(s);
            if (n == 0)
                s_line_bytes(self, "\xef\xbf\xbd", 3);
            else if (!(c == 0xc2 && s[1] < 0xa0)) /* U+0080..U+009F: C1 controls */
                s_line_bytes(self, (const char *)s, n);
            s += n ? n : 1;
            continue;
        }
        if (escape && (c == '\\' || c == ';' || c == ',')) {
            char pair[2] = {'\\', (char)c};
            s_line_bytes(self, pair, 2);
        } else if (escape && c == '\n') {
            s_line_bytes(self, "\\n", 2);
        } else if ((c >= 0x20 && c != 0x7f) || c == '\t') {
            s_line_bytes(self, (const char *)s, 1);
        }
        s++;
    }
}

/* ---- Content lines ------------------------------------------------------- */

/* Copies the built line into the calendar, folded, with CRLF; empties it. */
static void s_line_end(sched_ical_t *self)
{
    const char *p = self->line;
    size_t left = self->line_len, room = S_FOLD_OCTETS;
    while (left > room) {
        size_t cut = room;
        while ((p[cut] & 0xc0) == 0x80) /* never inside a character */
            cut--;
        s_text_bytes(self, p, cut);
        s_text_bytes(self, "\r\n ", 3);
        p += cut;
        left -= cut;
        room = S_FOLD_OCTETS - 1;
    }
    s_text_bytes(self, p, left);
    s_text_bytes(self, "\r\n", 2);
    self->line_len = 0;
}

/* Writes "NAME:value", the value as TEXT (escape) or as is (cleaned). */
static void s_property(sched_ical_t *self, const char *name, const char *value, bool escape)
{
    s_line_bytes(self, name, strlen(name));
    s_line_bytes(self, ":", 1);
    s_line_value(self, value, escape);
    s_line_end(self);
}

/* s_property for an optional TEXT value: nothing when NULL or "". */
static void s_property_text(sched_ical_t *self, const char *name, const char *value)
{
    if (value && *value)
        s_property(self, name, value, true);
}

/* Writes "NAME:YYYYMMDDTHHMMSSZ" for an instant in 0..S_MAX_US. */
static void s_property_time(sched_ical_t *self, const char *name, int64_t us)
{
    int64_t seconds = us / S_US_PER_SECOND;
    int64_t of_day = seconds % S_SECONDS_PER_DAY;
    sched_date_t d = sched_date_from_days(seconds / S_SECONDS_PER_DAY);
    char value[32];
    snprintf(value, sizeof value, "%04d%02d%02dT%02d%02d%02dZ", d.year, d.month, d.day,
             (int)(of_day / 3600), (int)(of_day / 60 % 60), (int)(of_day % 60));
    s_property(self, name, value, false);
}

/* ---- Calendar -------------------------------------------------------------- */

sched_ical_t *sched_ical_new(const char *prodid, const char *calname)
{
    sched_ical_t *self = bc_calloc(1, sizeof *self);
    s_property(self, "BEGIN", "VCALENDAR", false);
    s_property(self, "VERSION", "2.0", false);
    s_property(self, "PRODID", prodid && *prodid ? prodid : "-//Beacon//Scheduling//EN", true);
    s_property(self, "CALSCALE", "GREGORIAN", false);
    s_property(self, "METHOD", "PUBLISH", false);
    s_property_text(self, "X-WR-CALNAME", calname);
    return self;
}

static bool s_instant_ok(int64_t us)
{
    return us >= 0 && us <= S_MAX_US;
}

int sched_ical_add(sched_ical_t *self, const sched_ical_event_t *ev)
{
    if (!ev->uid || !*ev->uid || !s_instant_ok(ev->start_us) || !s_instant_ok(ev->end_us) ||
        !s_instant_ok(ev->stamp_us) || ev->end_us < ev->start_us || ev->sequence < 0)
        return -1;
    if (ev->status && strcmp(ev->status, "CONFIRMED") != 0 &&
        strcmp(ev->status, "TENTATIVE") != 0 && strcmp(ev->status, "CANCELLED") != 0)
        return -1;

    s_property(self, "BEGIN", "VEVENT", false);
    s_property(self, "UID", ev->uid, true);
    s_property_time(self, "DTSTAMP", ev->stamp_us);
    s_property_time(self, "DTSTART", ev->start_us);
    s_property_time(self, "DTEND", ev->end_us);
    if (ev->rrule && *ev->rrule)
        s_property(self, "RRULE", ev->rrule, false);
    char sequence[16];
    snprintf(sequence, sizeof sequence, "%d", ev->sequence);
    s_property(self, "SEQUENCE", sequence, false);
    if (ev->status)
        s_property(self, "STATUS", ev->status, false);
    s_property_text(self, "SUMMARY", ev->summary);
    s_property_text(self, "LOCATION", ev->location);
    s_property_text(self, "DESCRIPTION", ev->description);
    s_property_text(self, "CATEGORIES", ev->categories);
    s_property(self, "END", "VEVENT", false);
    return 0;
}

char *sched_ical_finish(sched_ical_t **self_p, size_t *len)
{
    if (!self_p || !*self_p)
        return NULL;
    sched_ical_t *self = *self_p;
    s_property(self, "END", "VCALENDAR", false);
    char *text = self->text;
    if (len)
        *len = self->len;
    self->text = NULL;
    sched_ical_destroy(self_p);
    return text;
}

void sched_ical_destroy(sched_ical_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sched_ical_t *self = *self_p;
    free(self->text);
    free(self->line);
    free(self);
    *self_p = NULL;
}
