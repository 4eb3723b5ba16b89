/*  ical: writes an RFC 5545 iCalendar feed (a staff member's schedule).
 *
 *  A growable text buffer: sched_ical_new() opens the VCALENDAR, each
 *  sched_ical_add() appends one VEVENT, sched_ical_finish() closes it and
 *  hands the text over. Pure logic, no I/O; the caller fetches the events
 *  (instants already computed by PostgreSQL) and serves the text as
 *  text/calendar.
 *
 *  Output is what calendar clients import without complaint: CRLF line
 *  endings, content lines folded at 75 octets (continuation lines start with
 *  one space) without ever splitting a UTF-8 sequence, TEXT values escaped
 *  (\\ \; \, and \n for a newline; CR dropped), other control characters
 *  except TAB dropped, and bytes that are not valid UTF-8 replaced by U+FFFD.
 */
#ifndef SCHED_ICAL_H
#define SCHED_ICAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct sched_ical sched_ical_t;

typedef struct {
    const char *uid;         /* required, e.g. "<uuid>@beacon" */
    int64_t start_us;        /* instants, microseconds since the epoch, written */
    int64_t end_us;          /* as UTC "YYYYMMDDTHHMMSSZ" (fraction dropped) */
    int64_t stamp_us;        /* DTSTAMP: when this version was last changed */
    const char *summary;     /* NULL or "" = omitted */
    const char *location;    /* NULL or "" = omitted */
    const char *description; /* NULL or "" = omitted */
    const char *status;      /* "CONFIRMED" | "TENTATIVE" | "CANCELLED", NULL = omitted */
    int sequence;            /* SEQUENCE (raised by each reschedule), >= 0 */
    const char *rrule;       /* RRULE value (sched_rule_to_rrule), NULL or "" = none */
    const char *categories;  /* one category, NULL or "" = omitted; a comma in it
                                is escaped, so it stays part of the one name */
} sched_ical_event_t;

/* A new calendar holding BEGIN:VCALENDAR, VERSION:2.0, PRODID (NULL or ""
 * = "-//Beacon//Scheduling//EN"), CALSCALE:GREGORIAN, METHOD:PUBLISH and
 * X-WR-CALNAME (the name clients show; NULL or "" = omitted). Owned by the
 * caller: sched_ical_finish() or sched_ical_destroy(). Never NULL. */
sched_ical_t *sched_ical_new(const char *prodid, const char *calname);

/* Appends ev as a VEVENT. Returns 0, or -1 and appends nothing when ev is
 * not writable: uid NULL or "", an instant outside years 1970..9999 (none
 * of our data is older, so an instant before the epoch means a bug), end
 * before start, a negative sequence or a status other than the three. */
int sched_ical_add(sched_ical_t *self, const sched_ical_event_t *ev);

/* Ends the calendar (END:VCALENDAR) and hands over the text: NUL-terminated,
 * owned by the caller (free()); *len (when len is not NULL) is its length
 * without the NUL. *self_p is destroyed and set to NULL. Returns NULL when
 * *self_p is NULL. */
char *sched_ical_finish(sched_ical_t **self_p, size_t *len);

/* Frees the calendar unfinished; *self_p is set to NULL. NULL allowed. */
void sched_ical_destroy(sched_ical_t **self_p);

#endif
