/*  beacon-reporting-check: recomputes the reporting rollups from the source
 *  tables of every service and prints each difference.
 *
 *      beacon-reporting-check [--check_database_url=CONNINFO] [--wait_seconds=30]
 *
 *  The reporting service builds its rollups from events only
 *  (services/reporting/consumer.c). This tool rebuilds the same figures from
 *  what the events describe (intake enrollments and assessments, scheduling
 *  encounters and no-shows, signed and overdue notes, referrals) with the
 *  same rules (the day in the site's zone, units, loop-closure seconds), and
 *  compares every row of reporting.site_rollup, agency_rollup,
 *  staff_rollup, outcome_rollup and barc_sites, and the staff, their sites
 *  and credentials (reporting.staff, staff_sites, staff_credentials) with
 *  identity's, and the staff load (client_assignments, overdue_work,
 *  open_referrals) with intake's clients, notes' overdue notices and
 *  referral's open referrals, and the people served (served_sites,
 *  served_agencies) with the distinct clients of scheduling's encounters.
 *
 *  It first waits (up to wait_seconds) until the consumer has applied
 *  every event published so far and nothing waits in an outbox, then
 *  compares inside one read-only, repeatable-read transaction, so the
 *  sources and the rollups are seen at the same instant. It reads other
 *  services' tables without their row policies: connect as a role that may
 *  (the schema owner, as for migrations); the transaction is READ ONLY.
 *
 *  Exit status: 0 no difference; 1 differences (each printed on stdout as
 *  "table key: expected ... actual ..."); 2 the consumer did not catch up,
 *  or a database error.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "bc_service.h"
#include "bc_util.h"

static const bc_setting_t s_settings[] = {
    {"check_database_url", BC_CFG_STRING, "", 0, 0,
     "connection string of a role that reads every service's tables past their row policies "
     "(default: migration_database_url, else database_url)"},
    {"wait_seconds", BC_CFG_INT, "30", 0, 3600,
     "how long to wait for the consumer to apply every published event before comparing"},
    BC_SETTINGS_END,
};

static void s_on_signal(int sig)
{
    (void)sig;
}

/* Every fact an event records, as (agency, site, staff, day, 15 measures). */
#define S_FACTS                                                                                 \
    "facts (agency_id, site_id, staff_id, day, encounters, encounter_minutes, units, "          \
    "group_attendance, group_sessions, noshows, enrollments, discharges, active_delta, "        \
    "notes_signed, notes_late, notes_overdue, referrals_made, referrals_closed, "               \
    "closure_seconds) AS ("                                                                     \
    " SELECT e.agency_id, e.site_id, e.staff_id, reporting.local_day(e.site_id, e.starts_at), " \
    "  1, e.minutes, reporting.units(e.minutes), e.is_group::int, 0, 0, 0, 0, 0, 0, 0, 0, 0, "  \
    "  0, 0::bigint FROM scheduling.encounters e"                                              \
    " UNION ALL"                                                                                \
    " SELECT * FROM (SELECT DISTINCT ON (e.group_occurrence_id) e.agency_id, e.site_id, "       \
    "  NULL::uuid, reporting.local_day(e.site_id, e.starts_at), 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, " \
    "  0, 0, 0, 0, 0::bigint FROM scheduling.encounters e WHERE e.is_group "                    \
    "  ORDER BY e.group_occurrence_id, e.client_id) g"                                          \
    " UNION ALL"                                                                                \
    " SELECT c.agency_id, c.site_id, c.staff_id, reporting.local_day(c.site_id, c.changed_at), " \
    "  0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0 FROM scheduling.appointment_changes c "     \
    "  WHERE c.kind = 'status' AND c.to_status = 'noshow'"                                      \
    " UNION ALL"                                                                                \
    " SELECT c.agency_id, c.site_id, NULL, e.started_on, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, "  \
    "  0, 0, 0 FROM intake.enrollments e JOIN intake.clients c ON c.id = e.client_id"           \
    " UNION ALL"                                                                                \
    " SELECT c.agency_id, c.site_id, NULL, e.discharged_on, 0, 0, 0, 0, 0, 0, 0, 1, -1, 0, 0, " \
    "  0, 0, 0, 0 FROM intake.enrollments e JOIN intake.clients c ON c.id = e.client_id "       \
    "  WHERE e.discharged_on IS NOT NULL"                                                       \
    " UNION ALL"                                                                                \
    " SELECT n.agency_id, n.site_id, n.author_id, "                                             \
    "  reporting.local_day(n.site_id, coalesce(n.cosigned_at, n.signed_at)), 0, 0, 0, 0, 0, "   \
    "  0, 0, 0, 0, 1, n.late_entry::int, 0, 0, 0, 0 FROM notes.notes n WHERE n.status = 'signed'" \
    " UNION ALL"                                                                                \
    " SELECT o.agency_id, o.site_id, o.staff_id, reporting.local_day(o.site_id, o.noticed_at), " \
    "  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 FROM notes.overdue_notices o"                \
    " UNION ALL"                                                                                \
    " SELECT r.agency_id, r.site_id, r.referred_by, reporting.local_day(r.site_id, r.created_at), " \
    "  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0 FROM referral.referrals r"                    \
    " UNION ALL"                                                                                \
    " SELECT r.agency_id, r.site_id, NULL, reporting.local_day(r.site_id, r.closed_at), 0, 0, " \
    "  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, "                                                    \
    "  floor(extract(epoch FROM r.closed_at - r.created_at))::bigint "                          \
    "  FROM referral.referrals r WHERE r.closed_at IS NOT NULL), "                              \
    "graded AS (SELECT f.*, g.grain, g.period FROM facts f CROSS JOIN LATERAL (VALUES "         \
    "  ('d'::\"char\", f.day), ('w'::\"char\", date_trunc('week', f.day)::date), "              \
    "  ('m'::\"char\", date_trunc('month', f.day)::date)) g (grain, period)) "

#define S_SITE_COLS                                                                             \
    "encounters, encounter_minutes, units, group_attendance, group_sessions, noshows, "         \
    "enrollments, discharges, active_delta, notes_signed, notes_late, notes_overdue, "          \
    "referrals_made, referrals_closed, closure_seconds"

#define S_SITE_SUMS                                                                             \
    "sum(encounters)::bigint, sum(encounter_minutes)::bigint, sum(units)::bigint, "             \
    "sum(group_attendance)::bigint, sum(group_sessions)::bigint, sum(noshows)::bigint, "        \
    "sum(enrollments)::bigint, sum(discharges)::bigint, sum(active_delta)::bigint, "            \
    "sum(notes_signed)::bigint, sum(notes_late)::bigint, sum(notes_overdue)::bigint, "          \
    "sum(referrals_made)::bigint, sum(referrals_closed)::bigint, sum(closure_seconds)::bigint"

#define S_STAFF_COLS                                                                            \
    "encounters, encounter_minutes, units, noshows, notes_signed, notes_late, notes_overdue, "  \
    "referrals_made"

#define S_STAFF_SUMS                                                                            \
    "sum(encounters)::bigint, sum(encounter_minutes)::bigint, sum(units)::bigint, "             \
    "sum(noshows)::bigint, sum(notes_signed)::bigint, sum(notes_late)::bigint, "                \
    "sum(notes_overdue)::bigint, sum(referrals_made)::bigint"

/* Each query returns (table, key, side, values) for rows found on one side
 * only: side "expected" (from the sources) or "actual" (the rollup). */
static const char *const s_checks[] = {
    "WITH " S_FACTS ", "
    "exp AS (SELECT site_id, grain, period, agency_id, " S_SITE_SUMS " FROM graded "
    "        GROUP BY site_id, grain, period, agency_id), "
    "act AS (SELECT site_id, grain, period, agency_id, " S_SITE_COLS " FROM reporting.site_rollup "
    "        WHERE (" S_SITE_COLS ") IS DISTINCT FROM (0,0,0,0,0,0,0,0,0,0,0,0,0,0,0)), "
    "only_exp AS (SELECT * FROM exp EXCEPT ALL SELECT * FROM act), "
    "only_act AS (SELECT * FROM act EXCEPT ALL SELECT * FROM exp) "
    "SELECT 'site_rollup', x.site_id || ' ' || x.grain::text || ' ' || x.period, 'expected', "
    "       row(x.*)::text FROM only_exp x "
    "UNION ALL SELECT 'site_rollup', y.site_id || ' ' || y.grain::text || ' ' || y.period, 'actual', "
    "       row(y.*)::text FROM only_act y ORDER BY 2, 3",

    "WITH " S_FACTS ", "
    "exp AS (SELECT agency_id, grain, period, " S_SITE_SUMS " FROM graded "
    "        GROUP BY agency_id, grain, period), "
    "act AS (SELECT agency_id, grain, period, " S_SITE_COLS " FROM reporting.agency_rollup "
    "        WHERE (" S_SITE_COLS ") IS DISTINCT FROM (0,0,0,0,0,0,0,0,0,0,0,0,0,0,0)), "
    "only_exp AS (SELECT * FROM exp EXCEPT ALL SELECT * FROM act), "
    "only_act AS (SELECT * FROM act EXCEPT ALL SELECT * FROM exp) "
    "SELECT 'agency_rollup', x.agency_id || ' ' || x.grain::text || ' ' || x.period, "
    "       'expected', row(x.*)::text FROM only_exp x "
    "UNION ALL SELECT 'agency_rollup', y.agency_id || ' ' || y.grain::text || ' ' || y.period, "
    "       'actual', row(y.*)::text FROM only_act y ORDER BY 2, 3",

    "WITH " S_FACTS ", "
    "exp AS (SELECT site_id, grain, period, staff_id, agency_id, " S_STAFF_SUMS " FROM graded "
    "        WHERE staff_id IS NOT NULL AND (encounters, noshows, notes_signed, notes_overdue, "
    "        referrals_made) IS DISTINCT FROM (0,0,0,0,0) "
    "        GROUP BY site_id, grain, period, staff_id, agency_id), "
    "act AS (SELECT site_id, grain, period, staff_id, agency_id, " S_STAFF_COLS
    "        FROM reporting.staff_rollup), "
    "only_exp AS (SELECT * FROM exp EXCEPT ALL SELECT * FROM act), "
    "only_act AS (SELECT * FROM act EXCEPT ALL SELECT * FROM exp) "
    "SELECT 'staff_rollup', x.site_id || ' ' || x.grain::text || ' ' || x.period || ' ' || x.staff_id, "
    "       'expected', row(x.*)::text FROM only_exp x "
    "UNION ALL SELECT 'staff_rollup', y.site_id || ' ' || y.grain::text || ' ' || y.period || ' ' || "
    "       y.staff_id, 'actual', row(y.*)::text FROM only_act y ORDER BY 2, 3",

    "WITH closed AS (SELECT r.agency_id, r.site_id, r.outcome, "
    "        reporting.local_day(r.site_id, r.closed_at) AS day FROM referral.referrals r "
    "        WHERE r.closed_at IS NOT NULL), "
    "exp AS (SELECT c.site_id, g.grain, g.period, c.outcome, c.agency_id, count(*)::bigint "
    "        FROM closed c CROSS JOIN LATERAL (VALUES ('d'::\"char\", c.day), "
    "        ('w'::\"char\", date_trunc('week', c.day)::date), "
    "        ('m'::\"char\", date_trunc('month', c.day)::date)) g (grain, period) "
    "        GROUP BY 1, 2, 3, 4, 5), "
    "act AS (SELECT site_id, grain, period, outcome, agency_id, referrals "
    "        FROM reporting.outcome_rollup), "
    "only_exp AS (SELECT * FROM exp EXCEPT ALL SELECT * FROM act), "
    "only_act AS (SELECT * FROM act EXCEPT ALL SELECT * FROM exp) "
    "SELECT 'outcome_rollup', x.site_id || ' ' || x.grain::text || ' ' || x.period || ' ' || x.outcome, "
    "       'expected', row(x.*)::text FROM only_exp x "
    "UNION ALL SELECT 'outcome_rollup', y.site_id || ' ' || y.grain::text || ' ' || y.period || ' ' || "
    "       y.outcome, 'actual', row(y.*)::text FROM only_act y ORDER BY 2, 3",

    "WITH a AS (SELECT a.client_id, a.total, c.agency_id, c.site_id, "
    "        row_number() OVER (PARTITION BY a.client_id ORDER BY a.created_at, a.id) AS n, "
    "        count(*) OVER (PARTITION BY a.client_id) AS k, "
    "        first_value(a.total) OVER (PARTITION BY a.client_id ORDER BY a.created_at, a.id) "
    "          AS first_total "
    "        FROM intake.assessments a JOIN intake.clients c ON c.id = a.client_id "
    "        WHERE a.instrument_id = 'barc10'), "
    "per_client AS (SELECT client_id, agency_id, site_id, k, total - first_total AS change "
    "        FROM a WHERE n = k), "
    "exp AS (SELECT site_id, agency_id, count(*)::bigint, count(*) FILTER (WHERE k > 1)::bigint, "
    "        coalesce(sum(change) FILTER (WHERE k > 1), 0)::bigint FROM per_client "
    "        GROUP BY site_id, agency_id), "
    "act AS (SELECT site_id, agency_id, clients_assessed, clients_reassessed, change_sum "
    "        FROM reporting.barc_sites), "
    "only_exp AS (SELECT * FROM exp EXCEPT ALL SELECT * FROM act), "
    "only_act AS (SELECT * FROM act EXCEPT ALL SELECT * FROM exp) "
    "SELECT 'barc_sites', x.site_id::text, 'expected', row(x.*)::text FROM only_exp x "
    "UNION ALL SELECT 'barc_sites', y.site_id::text, 'actual', row(y.*)::text FROM only_act y "
    "ORDER BY 2, 3",

    /* Staff certifications: what identity holds now, as staff.changed
     * carried it (no credential numbers). */
    "WITH exp AS (SELECT 'staff' AS t, id AS staff_id, agency_id::text || ' ' || status AS v "
    "        FROM identity.staff "
    "        UNION ALL SELECT 'staff_sites', staff_id, site_id::text FROM identity.staff_sites "
    "        UNION ALL SELECT 'staff_credentials', staff_id, kind || ' ' || "
    "        coalesce(issued_on::text, '-') || ' ' || coalesce(expires_on::text, '-') "
    "        FROM identity.credentials), "
    "act AS (SELECT 'staff' AS t, staff_id, agency_id::text || ' ' || status AS v "
    "        FROM reporting.staff "
    "        UNION ALL SELECT 'staff_sites', staff_id, site_id::text FROM reporting.staff_sites "
    "        UNION ALL SELECT 'staff_credentials', staff_id, kind || ' ' || "
    "        coalesce(issued_on::text, '-') || ' ' || coalesce(expires_on::text, '-') "
    "        FROM reporting.staff_credentials), "
    "only_exp AS (SELECT * FROM exp EXCEPT ALL SELECT * FROM act), "
    "only_act AS (SELECT * FROM act EXCEPT ALL SELECT * FROM exp) "
    "SELECT x.t, x.staff_id::text, 'expected', x.v FROM only_exp x "
    "UNION ALL SELECT y.t, y.staff_id::text, 'actual', y.v FROM only_act y ORDER BY 1, 2, 3",

    /* Staff load: clients' assignments, overdue unsigned notes, open
     * referrals and their follow-up dates, as they stand. */
    "WITH exp AS (SELECT 'client_assignments' AS t, id AS k, agency_id::text || ' ' || "
    "        site_id || ' ' || coalesce(assigned_staff_id::text, '-') || ' ' || status AS v "
    "        FROM intake.clients "
    "        UNION ALL SELECT 'overdue_work', o.encounter_id, o.agency_id::text || ' ' || "
    "        o.site_id || ' ' || o.staff_id FROM notes.overdue_notices o WHERE NOT EXISTS "
    "        (SELECT FROM notes.notes n WHERE n.encounter_id = o.encounter_id "
    "         AND n.status = 'signed') "
    "        UNION ALL SELECT 'open_referrals', r.id, r.agency_id::text || ' ' || r.site_id || "
    "        ' ' || r.referred_by || ' ' || coalesce(r.follow_up_on::text, '-') "
    "        FROM referral.referrals r WHERE r.closed_at IS NULL), "
    "act AS (SELECT 'client_assignments' AS t, client_id AS k, agency_id::text || ' ' || "
    "        site_id || ' ' || coalesce(staff_id::text, '-') || ' ' || status AS v "
    "        FROM reporting.client_assignments "
    "        UNION ALL SELECT 'overdue_work', encounter_id, agency_id::text || ' ' || site_id || "
    "        ' ' || staff_id FROM reporting.overdue_work "
    "        UNION ALL SELECT 'open_referrals', referral_id, agency_id::text || ' ' || "
    "        site_id || ' ' || staff_id || ' ' || coalesce(follow_up_on::text, '-') "
    "        FROM reporting.open_referrals), "
    "only_exp AS (SELECT * FROM exp EXCEPT ALL SELECT * FROM act), "
    "only_act AS (SELECT * FROM act EXCEPT ALL SELECT * FROM exp) "
    "SELECT x.t, x.k::text, 'expected', x.v FROM only_exp x "
    "UNION ALL SELECT y.t, y.k::text, 'actual', y.v FROM only_act y ORDER BY 1, 2, 3",

    /* People served: distinct clients with an encounter per period, per site
     * and per agency. */
    "WITH seen AS (SELECT DISTINCT e.agency_id, e.site_id, e.client_id, g.grain, g.period "
    "        FROM scheduling.encounters e "
    "        CROSS JOIN LATERAL (SELECT reporting.local_day(e.site_id, e.starts_at) AS d) l "
    "        CROSS JOIN LATERAL (VALUES ('d'::\"char\", l.d), "
    "        ('w'::\"char\", date_trunc('week', l.d)::date), "
    "        ('m'::\"char\", date_trunc('month', l.d)::date)) g (grain, period)), "
    "exp AS (SELECT 'served_sites' AS t, site_id || ' ' || grain::text || ' ' || period AS k, "
    "        agency_id || ' ' || count(*) AS v FROM seen GROUP BY site_id, grain, period, "
    "        agency_id "
    "        UNION ALL SELECT 'served_agencies', agency_id || ' ' || grain::text || ' ' || "
    "        period, count(DISTINCT client_id)::text FROM seen GROUP BY agency_id, grain, "
    "        period), "
    "act AS (SELECT 'served_sites' AS t, site_id || ' ' || grain::text || ' ' || period AS k, "
    "        agency_id || ' ' || people AS v FROM reporting.served_sites "
    "        UNION ALL SELECT 'served_agencies', agency_id || ' ' || grain::text || ' ' || "
    "        period, people::text FROM reporting.served_agencies), "
    "only_exp AS (SELECT * FROM exp EXCEPT ALL SELECT * FROM act), "
    "only_act AS (SELECT * FROM act EXCEPT ALL SELECT * FROM exp) "
    "SELECT x.t, x.k, 'expected', x.v FROM only_exp x "
    "UNION ALL SELECT y.t, y.k, 'actual', y.v FROM only_act y ORDER BY 1, 2, 3",
};

/* The producers whose events reporting applies (services/reporting). */
#define S_PRODUCERS "'intake', 'scheduling', 'notes', 'referral', 'identity'"

/* One statement through the extended protocol: nothing but that one
 * statement can run, whatever the text holds. */
static PGresult *s_query(PGconn *conn, const char *sql)
{
    return PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
}

/* Events published or waiting that the consumer has not applied; -1 on error. */
static long long s_behind(PGconn *conn)
{
    PGresult *res = s_query(
        conn,
        "SELECT coalesce((SELECT sum(greatest(o.m - coalesce(p.last_seq, 0), 0)) FROM "
        "  (SELECT producer, max(published_seq) AS m FROM events.outbox "
        "   WHERE producer IN (" S_PRODUCERS ") GROUP BY producer) o "
        "  LEFT JOIN reporting.positions p USING (producer)), 0) + "
        "(SELECT count(*) FROM events.outbox WHERE published_seq IS NULL "
        "  AND producer IN (" S_PRODUCERS "))");
    long long n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoll(PQgetvalue(res, 0, 0)) : -1;
    if (n < 0)
        fprintf(stderr, "beacon-reporting-check: %s", PQresultErrorMessage(res));
    PQclear(res);
    return n;
}

static bool s_ok(PGconn *conn, const char *sql)
{
    PGresult *res = s_query(conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "beacon-reporting-check: %s", PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

int main(int argc, char **argv)
{
    int exit_code = 0;
    bc_config_t *config =
        bc_process_start("reporting-check", s_settings, argc, argv, s_on_signal, &exit_code);
    if (!config)
        return exit_code;
    const char *url = bc_config_str(config, "check_database_url");
    if (!*url)
        url = bc_config_str(config, "migration_database_url");
    if (!*url)
        url = bc_config_str(config, "database_url");
    PGconn *conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "beacon-reporting-check: cannot connect: %s", PQerrorMessage(conn));
        PQfinish(conn);
        bc_config_destroy(&config);
        return 2;
    }
    int64_t deadline = bc_mono_ms() + bc_config_int(config, "wait_seconds") * 1000;
    int status = 0;
    long long behind;
    for (;;) {
        if (!s_ok(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")) {
            status = 2;
            break;
        }
        behind = s_behind(conn);
        if (behind == 0)
            break;
        s_ok(conn, "ROLLBACK");
        if (behind < 0 || bc_mono_ms() >= deadline) {
            if (behind > 0)
                fprintf(stderr, "beacon-reporting-check: the consumer is %lld event(s) behind\n",
                        behind);
            status = 2;
            break;
        }
        poll(NULL, 0, 200);
    }
    long long differences = 0, rows = 0;
    for (size_t i = 0; status == 0 && i < sizeof s_checks / sizeof *s_checks; i++) {
        PGresult *res = s_query(conn, s_checks[i]);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            fprintf(stderr, "beacon-reporting-check: %s", PQresultErrorMessage(res));
            status = 2;
        } else {
            for (int r = 0; r < PQntuples(res); r++)
                printf("%s %s: %s %s\n", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                       PQgetvalue(res, r, 2), PQgetvalue(res, r, 3));
            differences += PQntuples(res);
        }
        PQclear(res);
    }
    if (status == 0) {
        PGresult *res = PQexec(conn, "SELECT (SELECT count(*) FROM reporting.site_rollup) + "
                                     "(SELECT count(*) FROM reporting.agency_rollup) + "
                                     "(SELECT count(*) FROM reporting.staff_rollup) + "
                                     "(SELECT count(*) FROM reporting.outcome_rollup) + "
                                     "(SELECT count(*) FROM reporting.barc_sites) + "
                                     "(SELECT count(*) FROM reporting.staff) + "
                                     "(SELECT count(*) FROM reporting.staff_sites) + "
                                     "(SELECT count(*) FROM reporting.staff_credentials) + "
                                     "(SELECT count(*) FROM reporting.client_assignments) + "
                                     "(SELECT count(*) FROM reporting.overdue_work) + "
                                     "(SELECT count(*) FROM reporting.open_referrals) + "
                                     "(SELECT count(*) FROM reporting.served_sites) + "
                                     "(SELECT count(*) FROM reporting.served_agencies)");
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            rows = atoll(PQgetvalue(res, 0, 0));
        PQclear(res);
        s_ok(conn, "COMMIT");
        printf("%lld rollup rows checked, %lld difference(s)\n", rows, differences);
        status = differences ? 1 : 0;
    }
    PQfinish(conn);
    bc_config_destroy(&config);
    return status;
}
