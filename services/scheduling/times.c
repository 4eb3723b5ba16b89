/*  times: reading and writing the times scheduling requests carry.
 *
 *  Instants are parsed here, strictly (RFC 3339), and kept as microseconds
 *  since the epoch; PostgreSQL gets them back in UTC. Wall-clock times are
 *  checked here and resolved in the site's zone by PostgreSQL, whose tz
 *  database also decides daylight-saving questions: a local time that comes
 *  back different after the round trip (local -> instant -> local) does not
 *  exist (a spring-forward gap) and is refused; an ambiguous one (the
 *  repeated fall-back hour) resolves to its first occurrence.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_util.h"
#include "recurrence.h"
#include "scheduling.h"

#define S_US_PER_S INT64_C(1000000)

/* n decimal digits at s into *out; false unless all are digits. */
static bool s_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* "YYYY-MM-DDTHH:MM[:SS[.frac]]" at text: the date, seconds of the day,
 * microseconds, and where parsing stopped. */
static const char *s_parse_wall(const char *text, sched_date_t *date, int *secs, int *micros)
{
    char day[11];
    if (strlen(text) < 16 || (text[10] != 'T' && text[10] != 't' && text[10] != ' '))
        return NULL;
    memcpy(day, text, 10);
    day[10] = '\0';
    int h, m, s = 0, us = 0;
    if (sched_date_parse(day, date) || !s_digits(text + 11, 2, &h) || text[13] != ':' ||
        !s_digits(text + 14, 2, &m) || h > 23 || m > 59)
        return NULL;
    const char *p = text + 16;
    if (*p == ':') {
        if (!s_digits(p + 1, 2, &s) || s > 59)
            return NULL;
        p += 3;
        if (*p == '.') {
            p++;
            int n = 0, scale = 100000;
            while (*p >= '0' && *p <= '9') {
                if (n++ < 6) {
                    us += (*p - '0') * scale;
                    scale /= 10;
                }
                p++;
            }
            if (n == 0 || n > 9)
                return NULL;
        }
    }
    *secs = h * 3600 + m * 60 + s;
    *micros = us;
    return p;
}

int sched_parse_instant(const char *text, int64_t *us)
{
    sched_date_t date;
    int secs, micros;
    const char *p = s_parse_wall(text, &date, &secs, &micros);
    if (!p)
        return -1;
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!s_digits(p + 1, 2, &oh) || p[3] != ':' || !s_digits(p + 4, 2, &om) || oh > 18 ||
            om > 59 || oh * 60 + om > 18 * 60)
            return -1;
        offset = (*p == '-' ? -1 : 1) * (oh * 3600 + om * 60);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    *us = (sched_date_days(date) * 86400 + secs - offset) * S_US_PER_S + micros;
    return 0;
}

static void s_split(int64_t us, sched_date_t *date, int *secs, int *micros)
{
    int64_t s = us / S_US_PER_S, rem = us % S_US_PER_S;
    if (rem < 0) {
        rem += S_US_PER_S;
        s--;
    }
    int64_t days = s / 86400, sod = s % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    *date = sched_date_from_days(days);
    *secs = (int)sod;
    *micros = (int)rem;
}

void sched_format_instant(int64_t us, char out[32])
{
    sched_date_t d;
    int secs, micros;
    s_split(us, &d, &secs, &micros);
    char buf[80];
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", d.year, d.month, d.day,
             secs / 3600, secs / 60 % 60, secs % 60);
    snprintf(out, 32, "%.31s", buf);
}

void sched_sql_instant(int64_t us, char out[40])
{
    sched_date_t d;
    int secs, micros;
    s_split(us, &d, &secs, &micros);
    char buf[96];
    snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", d.year, d.month, d.day,
             secs / 3600, secs / 60 % 60, secs % 60, micros);
    snprintf(out, 40, "%.39s", buf);
}

int sched_parse_local(const char *text, char out[24])
{
    sched_date_t d;
    int secs, micros;
    const char *p = s_parse_wall(text, &d, &secs, &micros);
    if (!p || *p || micros)
        return -1;
    char buf[64]; /* the fields are in range: 19 characters */
    snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", d.year, d.month, d.day,
             secs / 3600, secs / 60 % 60, secs % 60);
    snprintf(out, 24, "%.19s", buf);
    return 0;
}

int64_t sched_us_value(PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

bc_code_t sched_site_zone(bc_call_t *call, const char *site_id, char zone[SCHED_ZONE_MAX])
{
    const char *params[] = {site_id, call->principal->agency_id};
    bc_error_t err;
    PGresult *res = bc_db_prepared(call->db, "sched_site_zone",
                                   "SELECT time_zone FROM identity.site_directory "
                                   "WHERE site_id = $1 AND agency_id = $2",
                                   2, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    bool found = PQntuples(res) == 1;
    if (found)
        snprintf(zone, SCHED_ZONE_MAX, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!found)
        return bc_call_fail(call, BC_NOT_FOUND, "site_id", "no site with id %s", site_id);
    return BC_OK;
}

/* Both wall-clock times as instants in zone, through PostgreSQL: the first
 * instant that reads back as the same wall-clock time, or none (a gap). */
static bc_code_t s_resolve_local(bc_call_t *call, const char *zone, const char *local[2],
                                 const char *const field[2], int64_t out[2])
{
    const char *params[] = {zone, local[0], local[1]};
    bc_error_t err;
    PGresult *res = bc_db_prepared(
        call->db, "sched_resolve_local",
        "SELECT (SELECT (extract(epoch FROM min(c)) * 1000000)::bigint "
        "        FROM (VALUES (t), (t - interval '1 hour'), (t - interval '30 minutes')) v(c) "
        "        WHERE (c AT TIME ZONE $1) = l) "
        "FROM (VALUES (1, $2::timestamp), (2, $3::timestamp)) x(i, l), "
        "     LATERAL (SELECT l AT TIME ZONE $1 AS t) r ORDER BY i",
        3, params, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    for (int i = 0; i < 2; i++) {
        if (PQgetisnull(res, i, 0)) {
            PQclear(res);
            return bc_call_fail(call, BC_INVALID_ARGUMENT, field[i],
                                "%s does not exist in %s: the clocks skip that hour when "
                                "daylight saving time starts",
                                field[i], zone);
        }
        out[i] = sched_us_value(res, i, 0);
    }
    PQclear(res);
    return BC_OK;
}

bc_code_t sched_meeting_times(bc_call_t *call, const char *zone, const char *prefix,
                              const char *start, const char *end, const char *start_local,
                              const char *end_local, int max_minutes, int64_t *start_us,
                              int64_t *end_us)
{
    char names[4][32];
    const char *bare[] = {"start", "end", "start_local", "end_local"};
    for (int i = 0; i < 4; i++)
        snprintf(names[i], sizeof names[i], "%s%s", prefix, bare[i]);
    bool instants = *start || *end, locals = *start_local || *end_local;
    if (instants && locals)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, names[0],
                            "give start and end, or start_local and end_local, not both");
    int64_t t[2];
    const char *end_field = names[1];
    if (instants || !locals) {
        const char *v[] = {start, end};
        for (int i = 0; i < 2; i++) {
            if (!*v[i])
                return bc_call_fail(call, BC_INVALID_ARGUMENT, names[i], "%s is required",
                                    names[i]);
            if (sched_parse_instant(v[i], &t[i]))
                return bc_call_fail(call, BC_INVALID_ARGUMENT, names[i],
                                    "%s must be an RFC 3339 time with its offset, e.g. "
                                    "2027-03-14T15:30:00Z",
                                    names[i]);
        }
    } else {
        const char *v[] = {start_local, end_local}, *f[] = {names[2], names[3]};
        char norm[2][24];
        for (int i = 0; i < 2; i++) {
            if (!*v[i])
                return bc_call_fail(call, BC_INVALID_ARGUMENT, f[i], "%s is required", f[i]);
            if (sched_parse_local(v[i], norm[i]))
                return bc_call_fail(call, BC_INVALID_ARGUMENT, f[i],
                                    "%s must be a date and time without offset, e.g. "
                                    "2027-03-14T10:30",
                                    f[i]);
        }
        const char *local[] = {norm[0], norm[1]};
        bc_code_t code = s_resolve_local(call, zone, local, f, t);
        if (code != BC_OK)
            return code;
        end_field = names[3];
    }
    if (t[1] <= t[0])
        return bc_call_fail(call, BC_INVALID_ARGUMENT, end_field, "the end must be after the start");
    if (t[1] - t[0] > (int64_t)max_minutes * 60 * S_US_PER_S)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, end_field,
                            "a meeting lasts at most %d minutes", max_minutes);
    *start_us = t[0];
    *end_us = t[1];
    return BC_OK;
}
