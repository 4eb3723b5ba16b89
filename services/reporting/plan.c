/*  plan: what one event means for the rollups (see plan.h). */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_rpc.h"
#include "bc_service.h"
#include "bc_util.h"
#include "identity.pb-c.h"
#include "intake.pb-c.h"
#include "notes.pb-c.h"
#include "referral.pb-c.h"
#include "reporting.h"
#include "scheduling.pb-c.h"

static const ProtobufCMessageDescriptor *const s_payloads[RP_NPRODUCERS] = {
    &beacon__intake__intake_event__descriptor,
    &beacon__scheduling__scheduling_event__descriptor,
    &beacon__notes__note_event__descriptor,
    &beacon__referral__referral_event__descriptor,
    &beacon__identity__staff_event__descriptor,
};

/* Checks an RFC 3339 instant enough for PostgreSQL not to refuse it. */
static bool s_instant(const char *s)
{
    if (!s || strlen(s) < 20 || strlen(s) > 40)
        return false;
    for (const char *c = s; *c; c++)
        if (!strchr("0123456789-:T.Z+", *c))
            return false;
    return s[4] == '-' && s[7] == '-' && s[10] == 'T';
}

static bool s_date(const char *s)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    return true;
}

static bool s_code(const char *s)
{
    if (!s || !*s || strlen(s) > 40)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || *c == '_'))
            return false;
    return true;
}



/* Billable units: one per 15 minutes, a remainder of 8 or more counting one
 * more (the same rule as reporting.units(), which the check uses). */
static int64_t s_units(int minutes)
{
    return minutes / 15 + (minutes % 15 >= 8 ? 1 : 0);
}

static void s_plan_add(rp_plan_t *plan, const char *agency, const char *site, const char *staff,
                       const char *at, const char *day)
{
    plan->add = true;
    plan->agency = agency;
    plan->site = site;
    plan->staff = staff;
    plan->at = at;
    plan->day = day;
}

static void s_plan_intake(const Beacon__Event *ev, const Beacon__Intake__IntakeEvent *m,
                          rp_plan_t *plan)
{
    const char *site = m->site_id, *agency = m->agency_id;
    bool enrolled = !strcmp(ev->topic, "client.enrolled");
    if (enrolled || !strcmp(ev->topic, "client.discharged")) {
        if (!bc_is_uuid(agency) || !bc_is_uuid(site) || !s_date(m->on_date)) {
            plan->reject = "payload lacks agency, site or date";
            return;
        }
        s_plan_add(plan, agency, site, NULL, NULL, m->on_date);
        plan->m[enrolled ? RP_ENROLLMENTS : RP_DISCHARGES] = 1;
        plan->m[RP_ACTIVE_DELTA] = enrolled ? 1 : -1;
    } else if (!strcmp(ev->topic, "assessment.completed") && !strcmp(m->instrument_id, "barc10")) {
        if (!bc_is_uuid(agency) || !bc_is_uuid(site) || !bc_is_uuid(m->client_id)) {
            plan->reject = "payload lacks agency, site or client";
            return;
        }
        snprintf(plan->text[0], sizeof plan->text[0], "%d", m->total);
        plan->sql = "SELECT reporting.on_barc($1::uuid, $2::uuid, $3::uuid, $4::int)";
        plan->params[0] = agency;
        plan->params[1] = site;
        plan->params[2] = m->client_id;
        plan->params[3] = plan->text[0];
        plan->n = 4;
    } else if (!strcmp(ev->topic, "client.assigned")) {
        const char *st = m->to_status;
        if (!bc_is_uuid(agency) || !bc_is_uuid(site) || !bc_is_uuid(m->client_id) ||
            (*m->staff_id && !bc_is_uuid(m->staff_id)) ||
            (strcmp(st, "active") && strcmp(st, "inactive") && strcmp(st, "discharged") &&
             strcmp(st, "merged"))) {
            plan->reject = "payload lacks agency, site, client or status, or has a bad staff id";
            return;
        }
        plan->sql = "INSERT INTO reporting.client_assignments AS a VALUES ($1::uuid, $2::uuid, "
                    "$3::uuid, nullif($4, '')::uuid, $5) ON CONFLICT (client_id) DO UPDATE SET "
                    "agency_id = excluded.agency_id, site_id = excluded.site_id, "
                    "staff_id = excluded.staff_id, status = excluded.status";
        plan->params[0] = m->client_id;
        plan->params[1] = agency;
        plan->params[2] = site;
        plan->params[3] = m->staff_id;
        plan->params[4] = st;
        plan->n = 5;
    }
}

static void s_plan_scheduling(const Beacon__Event *ev,
                              const Beacon__Scheduling__SchedulingEvent *m, rp_plan_t *plan)
{
    bool encounter = !strcmp(ev->topic, "encounter.completed");
    if (!encounter && strcmp(ev->topic, "appointment.noshow"))
        return;
    if (!bc_is_uuid(m->agency_id) || !bc_is_uuid(m->site_id) || !bc_is_uuid(m->staff_id)) {
        plan->reject = "payload lacks agency, site or staff";
        return;
    }
    if (!encounter) {
        s_plan_add(plan, m->agency_id, m->site_id, m->staff_id, ev->occurred_at, NULL);
        plan->m[RP_NOSHOWS] = 1;
        return;
    }
    if (!s_instant(m->start) || m->minutes < 0 || m->minutes > 24 * 60 ||
        (m->is_group && !bc_is_uuid(m->occurrence_id))) {
        plan->reject = "payload lacks the encounter's start, minutes or group meeting";
        return;
    }
    s_plan_add(plan, m->agency_id, m->site_id, m->staff_id, m->start, NULL);
    plan->client = bc_is_uuid(m->client_id) ? m->client_id : NULL;
    plan->m[RP_ENCOUNTERS] = 1;
    plan->m[RP_MINUTES] = m->minutes;
    plan->m[RP_UNITS] = s_units(m->minutes);
    plan->m[RP_GROUP_ATTENDANCE] = m->is_group ? 1 : 0;
    if (m->is_group) {
        plan->sql = "SELECT reporting.on_group_held($1::uuid, $2::uuid, $3::timestamptz, $4::uuid)";
        plan->params[0] = m->agency_id;
        plan->params[1] = m->site_id;
        plan->params[2] = m->start;
        plan->params[3] = m->occurrence_id;
        plan->n = 4;
    }
}

static void s_plan_notes(const Beacon__Event *ev, const Beacon__Notes__NoteEvent *m,
                         rp_plan_t *plan)
{
    bool signed_ = !strcmp(ev->topic, "note.signed");
    if (!signed_ && strcmp(ev->topic, "note.overdue"))
        return;
    const char *staff = signed_ ? m->author_id : m->staff_id;
    if (!bc_is_uuid(m->agency_id) || !bc_is_uuid(m->site_id) || !bc_is_uuid(staff)) {
        plan->reject = "payload lacks agency, site or staff";
        return;
    }
    s_plan_add(plan, m->agency_id, m->site_id, staff, ev->occurred_at, NULL);
    if (signed_) {
        plan->m[RP_NOTES_SIGNED] = 1;
        plan->m[RP_NOTES_LATE] = m->late_entry ? 1 : 0;
    } else {
        plan->m[RP_NOTES_OVERDUE] = 1;
    }
    /* The encounter's note is overdue until it is signed (staff load). */
    if (!bc_is_uuid(m->encounter_id))
        return;
    plan->params[0] = m->encounter_id;
    plan->n = 1;
    if (signed_) {
        plan->sql = "DELETE FROM reporting.overdue_work WHERE encounter_id = $1::uuid";
        return;
    }
    plan->sql = "INSERT INTO reporting.overdue_work VALUES ($1::uuid, $2::uuid, $3::uuid, "
                "$4::uuid) ON CONFLICT DO NOTHING";
    plan->params[1] = m->agency_id;
    plan->params[2] = m->site_id;
    plan->params[3] = staff;
    plan->n = 4;
}

static void s_plan_referral(const Beacon__Event *ev, const Beacon__Referral__ReferralEvent *m,
                            rp_plan_t *plan)
{
    bool created = !strcmp(ev->topic, "referral.created");
    if (!created && strcmp(ev->topic, "referral.closed"))
        return;
    if (!bc_is_uuid(m->agency_id) || !bc_is_uuid(m->site_id) || !bc_is_uuid(m->referral_id) ||
        (created && !bc_is_uuid(m->referred_by)) || (!created && !s_code(m->outcome)) ||
        (*m->follow_up_on && !s_date(m->follow_up_on))) {
        plan->reject = "payload lacks agency, site, referral, referrer or outcome";
        return;
    }
    if (created) {
        s_plan_add(plan, m->agency_id, m->site_id, m->referred_by, ev->occurred_at, NULL);
        plan->m[RP_REFERRALS_MADE] = 1;
        plan->sql = "INSERT INTO reporting.open_referrals (referral_id, created_at, agency_id, "
                    "site_id, staff_id, follow_up_on) VALUES ($1::uuid, $2::timestamptz, "
                    "$3::uuid, $4::uuid, $5::uuid, nullif($6, '')::date) ON CONFLICT DO NOTHING";
        plan->params[0] = m->referral_id;
        plan->params[1] = ev->occurred_at;
        plan->params[2] = m->agency_id;
        plan->params[3] = m->site_id;
        plan->params[4] = m->referred_by;
        plan->params[5] = m->follow_up_on;
        plan->n = 6;
    } else {
        plan->sql = "SELECT reporting.on_referral_closed($1::uuid, $2::uuid, $3::uuid, $4, "
                    "$5::timestamptz)";
        plan->params[0] = m->agency_id;
        plan->params[1] = m->site_id;
        plan->params[2] = m->referral_id;
        plan->params[3] = m->outcome;
        plan->params[4] = ev->occurred_at;
        plan->n = 5;
    }
}

/* A credential kind as identity accepts it: lower_snake_case, 2-64. */
static bool s_kind(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 2 && n <= 64 && s[0] >= 'a' && s[0] <= 'z' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* A PostgreSQL array literal of n items (each a uuid, a kind, a date or
 * empty, which becomes NULL: none needs quoting), malloc'd. */
static char *s_array(char *const *items, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += (*items[i] ? strlen(items[i]) : 4) + 1;
    char *out = bc_malloc(len), *at = out;
    *at++ = '{';
    for (size_t i = 0; i < n; i++)
        at += sprintf(at, "%s%s", i ? "," : "", *items[i] ? items[i] : "NULL");
    strcpy(at, "}");
    return out;
}

/* staff.changed: the staff member's sites and credentials as they stand. */
static void s_plan_staff(const Beacon__Event *ev, const Beacon__Identity__StaffEvent *m,
                         rp_plan_t *plan)
{
    if (strcmp(ev->topic, "staff.changed"))
        return;
    bool ok = bc_is_uuid(m->staff_id) && bc_is_uuid(m->agency_id) &&
              (!strcmp(m->status, "active") || !strcmp(m->status, "disabled")) &&
              m->n_site_ids <= 1000 && m->n_credentials <= 100;
    for (size_t i = 0; ok && i < m->n_site_ids; i++)
        ok = bc_is_uuid(m->site_ids[i]);
    size_t n = m->n_credentials;
    char **cols[3];
    for (int j = 0; j < 3; j++)
        cols[j] = bc_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; ok && i < n; i++) {
        const Beacon__Identity__Credential *c = m->credentials[i];
        ok = s_kind(c->kind) && (!*c->issued_on || s_date(c->issued_on)) &&
             (!*c->expires_on || s_date(c->expires_on));
        cols[0][i] = c->kind;
        cols[1][i] = c->issued_on;
        cols[2][i] = c->expires_on;
    }
    if (!ok) {
        plan->reject = "payload lacks staff, agency or status, or has a bad site or credential";
    } else {
        plan->owned[0] = s_array(m->site_ids, m->n_site_ids);
        for (int j = 0; j < 3; j++)
            plan->owned[j + 1] = s_array(cols[j], n);
        plan->sql = "SELECT reporting.on_staff($1::uuid, $2::uuid, $3, $4::uuid[], $5::text[], "
                    "$6::date[], $7::date[])";
        plan->params[0] = m->staff_id;
        plan->params[1] = m->agency_id;
        plan->params[2] = m->status;
        for (int j = 0; j < 4; j++)
            plan->params[3 + j] = plan->owned[j];
        plan->n = 7;
    }
    for (int j = 0; j < 3; j++)
        free(cols[j]);
}

void rp_plan(int p, const Beacon__Event *ev, ProtobufCMessage **m, rp_plan_t *plan)
{
    memset(plan, 0, sizeof *plan);
    *m = NULL;
    if (ev->schema_version != BC_EVENT_SCHEMA_VERSION) {
        plan->reject = "unknown schema version";
        return;
    }
    if (!s_instant(ev->occurred_at)) {
        plan->reject = "occurred_at is not an RFC 3339 instant";
        return;
    }
    bc_error_t err;
    *m = bc_pb_unpack(s_payloads[p], NULL, ev->payload.data, ev->payload.len, BC_PB_MAX_DEPTH,
                      &err);
    if (!*m) {
        plan->reject = "payload does not decode";
        return;
    }
    switch (p) {
    case 0: s_plan_intake(ev, (Beacon__Intake__IntakeEvent *)*m, plan); break;
    case 1: s_plan_scheduling(ev, (Beacon__Scheduling__SchedulingEvent *)*m, plan); break;
    case 2: s_plan_notes(ev, (Beacon__Notes__NoteEvent *)*m, plan); break;
    case 3: s_plan_referral(ev, (Beacon__Referral__ReferralEvent *)*m, plan); break;
    default: s_plan_staff(ev, (Beacon__Identity__StaffEvent *)*m, plan); break;
    }
}

void rp_plan_free(rp_plan_t *plan)
{
    for (size_t i = 0; i < sizeof plan->owned / sizeof *plan->owned; i++) {
        free(plan->owned[i]);
        plan->owned[i] = NULL;
    }
}
