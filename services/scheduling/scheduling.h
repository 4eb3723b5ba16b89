/*  scheduling: handlers of the scheduling service, one file per resource
 *  (locations.c, availability.c, appointments.c, calendar.c, feed.c), and
 *  the time handling they share (times.c). */
#ifndef SCHEDULING_H
#define SCHEDULING_H

#include <stdbool.h>
#include <stdint.h>

#include "bc_service.h"
#include "scheduling.pb-c.h"

extern const bc_service_def_t scheduling_service;

/* ---- times.c ----------------------------------------------------------- */

/* Longest zone name accepted from identity.site_directory. */
#define SCHED_ZONE_MAX 64

/* Parses an RFC 3339 instant ("2027-03-14T15:30:00Z", "...T10:30:00-05:00",
 * seconds and fraction optional) strictly: a real calendar date, hours
 * 0-23, offset within +-18:00. 0 with *us (microseconds since the epoch), or
 * -1. */
int sched_parse_instant(const char *text, int64_t *us);
/* "2027-03-14T15:30:00Z" (whole seconds; UTC). */
void sched_format_instant(int64_t us, char out[32]);
/* The instant as PostgreSQL timestamptz input ("2027-03-14 15:30:00.000000+00"). */
void sched_sql_instant(int64_t us, char out[40]);
/* Parses a wall-clock time "YYYY-MM-DDTHH:MM[:SS]" (no offset) strictly
 * into PostgreSQL timestamp input ("2027-03-14 10:30:00"); 0 or -1. */
int sched_parse_local(const char *text, char out[24]);

/* The time zone of one of the caller's agency's sites (identity's
 * site_directory), or NOT_FOUND. */
bc_code_t sched_site_zone(bc_call_t *call, const char *site_id, char zone[SCHED_ZONE_MAX]);

/* The start and end of a meeting from a request: start/end (instants) or
 * start_local/end_local (wall-clock in zone), not both and not a mix.
 * Refuses, naming the field: malformed times, a local time that does not
 * exist in zone (skipped by a daylight-saving change), end not after start,
 * longer than max_minutes. prefix names the fields ("" or "actual_"). */
bc_code_t sched_meeting_times(bc_call_t *call, const char *zone, const char *prefix,
                              const char *start, const char *end, const char *start_local,
                              const char *end_local, int max_minutes, int64_t *start_us,
                              int64_t *end_us);

/* Reads a bigint column holding epoch microseconds. */
int64_t sched_us_value(PGresult *res, int row, int col);

/* ---- calendar.c: windows of the schedule -------------------------------- */

#define SCHED_US_PER_DAY (INT64_C(86400) * 1000000)

/* The window [from, to) in microseconds (win[0], win[1]) from a request's
 * from and to: each an RFC 3339 instant or a date (YYYY-MM-DD, local
 * midnight in the zone of site_id, or of the caller's first site when
 * site_id is ""). from "" is today's local midnight; to "" is days local
 * days after from (so across a daylight-saving change still midnight to
 * midnight). Refuses, naming the field: malformed ends, to not after from,
 * a window longer than max_days; NOT_FOUND for an unknown site. */
bc_code_t sched_window(bc_call_t *call, const char *site_id, const char *from, const char *to,
                       int days, int max_days, int64_t win[2]);
/* The window of a list: sched_window, with view=day or week setting "to"
 * one or seven local days after "from" (a day without either). */
bc_code_t sched_view_window(bc_call_t *call, const char *site_id, const char *from, const char *to,
                            const char *view, int max_days, int64_t win[2]);

/* ---- availability.c: who may be scheduled ----------------------------- */

/* staff_id from a request: "" or "me" is the caller. NULL (call->err set)
 * when malformed, or when it names someone else and the caller is not a
 * supervisor (only supervisors act for others). */
const char *sched_staff_arg(bc_call_t *call, const char *staff_id, const char *field);
/* True when staff_id is an active staff member at site_id (identity's
 * staff_site_directory). -1 with call->err set on a database error. */
int sched_staff_at_site(bc_call_t *call, const char *staff_id, const char *site_id);

/* ---- appointments.c: rows, messages and the checks groups share -------- */

/* Meeting modes (NULL-terminated) and the CMS places of service Beacon knows. */
extern const char *const sched_modes[];
extern const char *const sched_places[];
bool sched_one_of(const char *value, const char *const *set);
/* The max_appointment_minutes setting. */
int sched_max_minutes(const bc_call_t *call);
/* The kind of a location ("" for none or "" location_id); NULL with
 * call->err set on a database error. */
const char *sched_location_kind(bc_call_t *call, const char *location_id);
/* CMS place of service from how and where a meeting took place. */
const char *sched_place_of_service(const char *mode, const char *location_kind);
/* override_conflicts/override_reason: only supervisors, always with a reason. */
bc_code_t sched_check_override(bc_call_t *call, bool override, const char *reason);
/* location_id: one of site_id's active locations. */
bc_code_t sched_check_location(bc_call_t *call, const char *location_id, const char *site_id);

/* What intake says about a client, read with the caller's scope (a client
 * the caller may not see is NOT_FOUND); merged and discharged clients are
 * refused (FAILED_PRECONDITION). */
typedef struct {
    char site_id[37];
    char status[16];
} sched_client_t;
bc_code_t sched_client(bc_call_t *call, const char *client_id, sched_client_t *c);

/* Epoch microseconds of a timestamptz column, as read by sched_us_value. */
#define SCHED_US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"
#define SCHED_APPT_COLUMNS                                                                            \
    "a.id::text, a.client_id::text, a.staff_id::text, a.site_id::text, "                          \
    "coalesce(a.location_id::text, ''), " SCHED_US("a.starts_at") ", " SCHED_US("a.ends_at") ", "        \
    "d.time_zone, to_char(a.starts_at AT TIME ZONE d.time_zone, 'YYYY-MM-DD\"T\"HH24:MI'), "      \
    "a.mode, coalesce(a.purpose, ''), a.status, coalesce(a.status_reason, ''), "                 \
    "coalesce(a.override_reason, ''), a.version, " SCHED_US("a.created_at") ", "                      \
    SCHED_US("a.updated_at") ", coalesce(e.id::text, '')"
#define SCHED_APPT_JOINS                                                                              \
    " JOIN identity.site_directory d ON d.site_id = a.site_id"                                    \
    " LEFT JOIN scheduling.encounters e ON e.appointment_id = a.id"

/* An appointment row (SCHED_APPT_COLUMNS, from appointments a with
 * SCHED_APPT_JOINS) as a message in call->arena; history left empty. */
Beacon__Scheduling__Appointment *sched_appointment_from_row(bc_call_t *call, PGresult *res,
                                                            int row);
/* The audit event of reading (action BC_AUDIT_READ) or changing an
 * appointment: it is part of the client's record. */
bc_audit_event_t sched_appointment_event(const Beacon__Scheduling__Appointment *a,
                                         const char *action);
#define SCHED_ENCOUNTER_COLUMNS                                                                        \
    "e.id::text, coalesce(e.appointment_id::text, ''), e.client_id::text, e.staff_id::text, "     \
    "e.site_id::text, " SCHED_US("e.starts_at") ", " SCHED_US("e.ends_at") ", e.minutes, e.mode, "        \
    "e.place_of_service, e.is_group, " SCHED_US("e.recorded_at") ", "                            \
    "coalesce(e.group_occurrence_id::text, '')"

/* An encounter row (SCHED_ENCOUNTER_COLUMNS, from encounters e). */
Beacon__Scheduling__Encounter *sched_encounter_from_row(bc_call_t *call, PGresult *res, int row);
/* A microseconds column as "2027-03-14T15:30:00Z" in call->arena. */
char *sched_time_value(bc_call_t *call, PGresult *res, int row, int col);

/* ---- groups.c, occurrences.c -------------------------------------------- */

/* PostgreSQL's text form of a uuid[] ("{a,b}") as strings in call->arena. */
char **sched_uuid_array(bc_call_t *call, const char *text, size_t *n);
/* The series in the caller's scope (NOT_FOUND otherwise), locked for
 * change when lock. */
Beacon__Scheduling__GroupSession *sched_group_load(bc_call_t *call, const char *id, bool lock);
/* Fills g->roster with the entries the caller may see, each audited as a
 * read of the client's record. */
bc_code_t sched_roster_read(bc_call_t *call, Beacon__Scheduling__GroupSession *g);
/* True when the caller is a supervisor or one of the facilitators. */
bool sched_runs_group(const bc_call_t *call, char *const *facilitators, size_t n);
/* Facilitators from a request as a uuid[] literal: distinct UUIDs, at most
 * five, each working at site_id; none means the caller. With
 * include_caller someone who is not a supervisor must be one of them.
 * NULL with call->err set. */
char *sched_facilitators(bc_call_t *call, char *const *ids, size_t n, const char *site_id,
                         bool include_caller);
/* Locks the facilitators and rooms of a series' scheduled future
 * occurrences (group_id) or of one occurrence (occurrence_id), then refuses
 * (CONFLICT, naming up to five) what collides with them, unless override. */
bc_code_t sched_group_conflicts(bc_call_t *call, const char *group_id, const char *occurrence_id,
                                bool override);
/* Enrolling client_id in group_id: CONFLICT naming the client's appointments
 * and other groups' meetings that collide with the group's coming meetings
 * (unless override). Inside the caller's transaction. */
bc_code_t sched_enrol_conflicts(bc_call_t *call, const char *group_id, const char *client_id,
                                bool override);

/* ---- reminders.c ---------------------------------------------------------- */

/* The reminder_minutes setting ("1440,120") as an int[] literal in out:
 * up to four offsets of 5 to 10080 minutes, "" for none. Returns how many,
 * or -1 with err set. */
int sched_reminder_offsets(const char *text, char out[64], bc_error_t *err);
/* Starts the reminder scanner (a thread with its own connection; none when
 * reminder_minutes is empty). NULL with err set on a bad setting. */
typedef struct sched_reminders sched_reminders_t;
sched_reminders_t *sched_reminders_start(const bc_config_t *config, bc_error_t *err);
/* Stops the thread and frees; NULL allowed. */
void sched_reminders_stop(sched_reminders_t *self);

/* ---- handlers ----------------------------------------------------------- */
bc_code_t locations_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t locations_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t availability_set_hours(bc_call_t *call, const ProtobufCMessage *in,
                                 ProtobufCMessage **out);
bc_code_t availability_add_time_off(bc_call_t *call, const ProtobufCMessage *in,
                                    ProtobufCMessage **out);
bc_code_t availability_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t appointments_book(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t appointments_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t appointments_reschedule(bc_call_t *call, const ProtobufCMessage *in,
                                  ProtobufCMessage **out);
bc_code_t appointments_change_status(bc_call_t *call, const ProtobufCMessage *in,
                                     ProtobufCMessage **out);
bc_code_t appointments_complete(bc_call_t *call, const ProtobufCMessage *in,
                                ProtobufCMessage **out);
bc_code_t appointments_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t encounters_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t groups_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t groups_update(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t groups_cancel(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t groups_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t groups_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t groups_enroll(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t groups_leave(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t occurrences_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t occurrences_update(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t occurrences_attendance(bc_call_t *call, const ProtobufCMessage *in,
                                 ProtobufCMessage **out);
bc_code_t occurrences_complete(bc_call_t *call, const ProtobufCMessage *in,
                               ProtobufCMessage **out);
bc_code_t occurrences_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
/* feed.c: GetCalendarFeed, a staff member's schedule as an iCalendar file
 * (beacon.FileReply). */
bc_code_t feed_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

#endif
