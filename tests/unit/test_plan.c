/*  test_plan: what the reporting consumer makes of one event
 *  (services/reporting/plan.c), pure logic: identity's staff.changed becomes
 *  reporting.on_staff with array literals, intake's client.assigned an upsert
 *  of the client's assignment, notes' overdue and signed notes the overdue
 *  work, an encounter's client the people served; payloads lacking what
 *  their topic needs are rejected, never applied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../services/reporting/plan.h" /* not on the include path */
#include "bc_service.h"
#include "identity.pb-c.h"
#include "intake.pb-c.h"
#include "notes.pb-c.h"
#include "referral.pb-c.h"
#include "scheduling.pb-c.h"

enum { P_INTAKE, P_SCHEDULING, P_NOTES, P_REFERRAL, P_IDENTITY };

#define A "0b0b0b0b-0000-4000-8000-000000000001"
#define S1 "0b0b0b0b-0000-4000-8000-000000000002"
#define S2 "0b0b0b0b-0000-4000-8000-000000000003"
#define P "0b0b0b0b-0000-4000-8000-000000000004"
#define C "0b0b0b0b-0000-4000-8000-000000000005"

typedef struct {
    uint8_t buf[4096];
    Beacon__Event ev;
    ProtobufCMessage *m;
    rp_plan_t plan;
} s_case_t;

/* Plans topic with payload msg as producer p's event. */
static rp_plan_t *s_plan(s_case_t *c, int p, const char *topic, const ProtobufCMessage *msg)
{
    beacon__event__init(&c->ev);
    c->ev.producer = "test";
    c->ev.seq = 1;
    c->ev.topic = (char *)topic;
    c->ev.occurred_at = "2026-03-02T15:00:00.000000Z";
    c->ev.schema_version = BC_EVENT_SCHEMA_VERSION;
    c->ev.payload.len = protobuf_c_message_pack(msg, c->buf);
    c->ev.payload.data = c->buf;
    rp_plan(p, &c->ev, &c->m, &c->plan);
    return &c->plan;
}

static void s_done(s_case_t *c)
{
    if (c->m)
        protobuf_c_message_free_unpacked(c->m, NULL);
    rp_plan_free(&c->plan);
}

static void test_staff_changed_becomes_on_staff(void **state)
{
    (void)state;
    Beacon__Identity__Credential c1 = BEACON__IDENTITY__CREDENTIAL__INIT,
                                 c2 = BEACON__IDENTITY__CREDENTIAL__INIT;
    c1.kind = "certified_peer_specialist";
    c1.issued_on = "2025-01-01";
    c1.expires_on = "2026-03-01";
    c2.kind = "cpr_first_aid";
    c2.expires_on = "2026-04-01";
    Beacon__Identity__Credential *creds[] = {&c1, &c2};
    char *sites[] = {S1, S2};
    Beacon__Identity__StaffEvent e = BEACON__IDENTITY__STAFF_EVENT__INIT;
    e.staff_id = P;
    e.agency_id = A;
    e.status = "active";
    e.site_ids = sites;
    e.n_site_ids = 2;
    e.credentials = creds;
    e.n_credentials = 2;
    s_case_t c;
    rp_plan_t *plan = s_plan(&c, P_IDENTITY, "staff.changed", &e.base);
    assert_null(plan->reject);
    assert_false(plan->add);
    assert_non_null(strstr(plan->sql, "reporting.on_staff"));
    assert_int_equal(plan->n, 7);
    assert_string_equal(plan->params[0], P);
    assert_string_equal(plan->params[2], "active");
    assert_string_equal(plan->params[3], "{" S1 "," S2 "}");
    assert_string_equal(plan->params[4], "{certified_peer_specialist,cpr_first_aid}");
    assert_string_equal(plan->params[5], "{2025-01-01,NULL}");
    assert_string_equal(plan->params[6], "{2026-03-01,2026-04-01}");
    s_done(&c);

    /* No sites and no credentials: empty arrays, still applied. */
    e.n_site_ids = 0;
    e.n_credentials = 0;
    e.status = "disabled";
    plan = s_plan(&c, P_IDENTITY, "staff.changed", &e.base);
    assert_null(plan->reject);
    assert_string_equal(plan->params[3], "{}");
    assert_string_equal(plan->params[6], "{}");
    s_done(&c);
}

static void test_bad_staff_events_are_rejected(void **state)
{
    (void)state;
    Beacon__Identity__Credential cred = BEACON__IDENTITY__CREDENTIAL__INIT;
    Beacon__Identity__Credential *creds[] = {&cred};
    char *sites[] = {S1};
    struct {
        const char *staff, *status, *site, *kind, *expires;
    } bad[] = {
        {"abc", "active", S1, "cpss", ""},
        {P, "gone", S1, "cpss", ""},
        {P, "active", "x", "cpss", ""},
        {P, "active", S1, "CPSS", ""},
        {P, "active", S1, "cpss,x", ""},
        {P, "active", S1, "cpss", "2026-3-1"},
        {P, "active", S1, "cpss", "2026-03-01'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Beacon__Identity__StaffEvent e = BEACON__IDENTITY__STAFF_EVENT__INIT;
        e.staff_id = (char *)bad[i].staff;
        e.agency_id = A;
        e.status = (char *)bad[i].status;
        sites[0] = (char *)bad[i].site;
        e.site_ids = sites;
        e.n_site_ids = 1;
        cred.kind = (char *)bad[i].kind;
        cred.expires_on = (char *)bad[i].expires;
        e.credentials = creds;
        e.n_credentials = 1;
        s_case_t c;
        rp_plan_t *plan = s_plan(&c, P_IDENTITY, "staff.changed", &e.base);
        assert_non_null(plan->reject);
        assert_null(plan->sql);
        s_done(&c);
    }
    /* Another topic of identity's counts for nothing. */
    Beacon__Identity__StaffEvent e = BEACON__IDENTITY__STAFF_EVENT__INIT;
    s_case_t c;
    rp_plan_t *plan = s_plan(&c, P_IDENTITY, "staff.renamed", &e.base);
    assert_null(plan->reject);
    assert_null(plan->sql);
    assert_false(plan->add);
    s_done(&c);
}

static void test_client_assigned(void **state)
{
    (void)state;
    Beacon__Intake__IntakeEvent e = BEACON__INTAKE__INTAKE_EVENT__INIT;
    e.client_id = C;
    e.agency_id = A;
    e.site_id = S1;
    e.staff_id = P;
    e.to_status = "active";
    s_case_t c;
    rp_plan_t *plan = s_plan(&c, P_INTAKE, "client.assigned", &e.base);
    assert_null(plan->reject);
    assert_non_null(strstr(plan->sql, "reporting.client_assignments"));
    assert_int_equal(plan->n, 5);
    assert_string_equal(plan->params[3], P);
    assert_string_equal(plan->params[4], "active");
    s_done(&c);
    e.staff_id = ""; /* nobody's caseload */
    e.to_status = "merged";
    plan = s_plan(&c, P_INTAKE, "client.assigned", &e.base);
    assert_null(plan->reject);
    assert_string_equal(plan->params[3], "");
    s_done(&c);
    e.to_status = "archived";
    plan = s_plan(&c, P_INTAKE, "client.assigned", &e.base);
    assert_non_null(plan->reject);
    s_done(&c);
    e.to_status = "active";
    e.staff_id = "someone";
    plan = s_plan(&c, P_INTAKE, "client.assigned", &e.base);
    assert_non_null(plan->reject);
    s_done(&c);
}

static void test_overdue_work_and_people_served(void **state)
{
    (void)state;
    Beacon__Notes__NoteEvent n = BEACON__NOTES__NOTE_EVENT__INIT;
    n.agency_id = A;
    n.site_id = S1;
    n.staff_id = P;
    n.author_id = P;
    n.encounter_id = C; /* any uuid */
    s_case_t c;
    rp_plan_t *plan = s_plan(&c, P_NOTES, "note.overdue", &n.base);
    assert_null(plan->reject);
    assert_true(plan->add);
    assert_int_equal(plan->m[RP_NOTES_OVERDUE], 1);
    assert_non_null(strstr(plan->sql, "INSERT INTO reporting.overdue_work"));
    assert_int_equal(plan->n, 4);
    s_done(&c);
    plan = s_plan(&c, P_NOTES, "note.signed", &n.base);
    assert_int_equal(plan->m[RP_NOTES_SIGNED], 1);
    assert_non_null(strstr(plan->sql, "DELETE FROM reporting.overdue_work"));
    s_done(&c);
    n.encounter_id = ""; /* a contact note: signed, nothing overdue to clear */
    plan = s_plan(&c, P_NOTES, "note.signed", &n.base);
    assert_true(plan->add);
    assert_null(plan->sql);
    s_done(&c);

    Beacon__Scheduling__SchedulingEvent e = BEACON__SCHEDULING__SCHEDULING_EVENT__INIT;
    e.agency_id = A;
    e.site_id = S1;
    e.staff_id = P;
    e.client_id = C;
    e.start = "2026-03-02T15:00:00Z";
    e.minutes = 50;
    plan = s_plan(&c, P_SCHEDULING, "encounter.completed", &e.base);
    assert_true(plan->add);
    assert_string_equal(plan->client, C);
    assert_int_equal(plan->m[RP_UNITS], 3);
    s_done(&c);
    e.client_id = "";
    plan = s_plan(&c, P_SCHEDULING, "encounter.completed", &e.base);
    assert_true(plan->add);
    assert_null(plan->client);
    s_done(&c);
    plan = s_plan(&c, P_SCHEDULING, "appointment.noshow", &e.base);
    assert_null(plan->client); /* a no-show is no contact */
    s_done(&c);
}

static void test_referral_follow_up(void **state)
{
    (void)state;
    Beacon__Referral__ReferralEvent r = BEACON__REFERRAL__REFERRAL_EVENT__INIT;
    r.referral_id = C;
    r.agency_id = A;
    r.site_id = S1;
    r.referred_by = P;
    r.follow_up_on = "2026-03-09";
    s_case_t c;
    rp_plan_t *plan = s_plan(&c, P_REFERRAL, "referral.created", &r.base);
    assert_null(plan->reject);
    assert_int_equal(plan->n, 6);
    assert_string_equal(plan->params[4], P);
    assert_string_equal(plan->params[5], "2026-03-09");
    s_done(&c);
    r.follow_up_on = "next week";
    plan = s_plan(&c, P_REFERRAL, "referral.created", &r.base);
    assert_non_null(plan->reject);
    s_done(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_staff_changed_becomes_on_staff),
        cmocka_unit_test(test_bad_staff_events_are_rejected),
        cmocka_unit_test(test_client_assigned),
        cmocka_unit_test(test_overdue_work_and_people_served),
        cmocka_unit_test(test_referral_follow_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
