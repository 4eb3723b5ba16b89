/*  The dispatcher puts each caller's scope into the worker's database
 *  session before the handler runs (what row-level security policies read),
 *  never leaves the previous caller's scope in place, survives a reconnect,
 *  and refuses to run a handler when the scope cannot be set. Runs against
 *  the real PostgreSQL named by BEACON_TEST_DATABASE_URL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bc_service.h"
#include "bc_util.h"
#include "testsvc.pb-c.h"

/* Echo answers with the scope the database session holds. */
static bc_code_t s_echo(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    (void)in;
    bc_error_t err;
    PGresult *res = bc_db_query(call->db,
                                "SELECT current_setting('beacon.staff_id', true) || '|' || "
                                "current_setting('beacon.site_ids', true) || '|' || "
                                "current_setting('beacon.roles', true)",
                                0, NULL, &err);
    if (!res)
        return bc_call_fail_err(call, &err);
    Beacon__Testsvc__EchoReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__testsvc__echo_reply__init(r);
    r->text = bc_arena_strdup(call->arena, PQgetvalue(res, 0, 0));
    PQclear(res);
    *out = &r->base;
    return BC_OK;
}

static bc_code_t s_fail(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    (void)in;
    (void)out;
    return bc_call_fail(call, BC_INTERNAL, "", "must not run");
}

static const bc_method_t s_methods[] = {{"Echo", s_echo}, {"Fail", s_fail}, {NULL, NULL}};
static const bc_service_def_t s_def = {
    .name = "testsvc", .descriptor = &beacon__testsvc__test_svc__descriptor, .methods = s_methods};

/* Calls Echo as a principal; returns the reply text (static) or the code. */
static const char *s_call(bc_dispatcher_t *d, bc_db_t *db, const char *staff, char **sites,
                          size_t nsites, char **roles, size_t nroles, int *code)
{
    static char text[256];
    Beacon__Principal who = BEACON__PRINCIPAL__INIT;
    who.staff_id = (char *)staff;
    who.site_ids = sites;
    who.n_site_ids = nsites;
    who.roles = roles;
    who.n_roles = nroles;
    Beacon__Testsvc__EchoRequest in = BEACON__TESTSVC__ECHO_REQUEST__INIT;
    uint8_t pbuf[64];
    Beacon__Request req = BEACON__REQUEST__INIT;
    req.id = "r";
    req.service = "testsvc";
    req.method = "Echo";
    req.principal = &who;
    req.payload.len = protobuf_c_message_pack(&in.base, pbuf);
    req.payload.data = pbuf;
    uint8_t buf[2048];
    size_t len = protobuf_c_message_pack(&req.base, buf);
    bc_arena_t *arena = bc_arena_new(4096);
    uint8_t *out = NULL;
    size_t n = bc_dispatch(d, db, arena, buf, len, bc_now_ms(), &out);
    Beacon__Reply *r = (Beacon__Reply *)protobuf_c_message_unpack(&beacon__reply__descriptor, NULL,
                                                                  n, out);
    *code = r->status;
    text[0] = '\0';
    if (r->status == BEACON__CODE__OK) {
        Beacon__Testsvc__EchoReply *e = (Beacon__Testsvc__EchoReply *)protobuf_c_message_unpack(
            &beacon__testsvc__echo_reply__descriptor, NULL, r->payload.len, r->payload.data);
        snprintf(text, sizeof text, "%s", e->text);
        protobuf_c_message_free_unpacked(&e->base, NULL);
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    free(out);
    bc_arena_destroy(&arena);
    return text;
}

static void test_scope_follows_each_caller(void **state)
{
    (void)state;
    const char *url = getenv("BEACON_TEST_DATABASE_URL");
    bc_db_t *db = bc_db_new(url, "test_scope");
    bc_error_t err;
    assert_int_equal(bc_db_connect(db, 5000, &err), 0);
    bc_dispatcher_t *d = bc_dispatcher_new(&s_def, NULL, NULL, &err);
    assert_non_null(d);
    int code;
    char *sites[] = {"11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"};
    char *roles[] = {"peer_specialist", "supervisor"};
    assert_string_equal(s_call(d, db, "staff-a", sites, 2, roles, 2, &code),
                        "staff-a|11111111-1111-4111-8111-111111111111,"
                        "22222222-2222-4222-8222-222222222222|peer_specialist,supervisor");
    assert_int_equal(code, BEACON__CODE__OK);
    /* The next caller never inherits the previous one's sites. */
    assert_string_equal(s_call(d, db, "staff-b", sites + 1, 1, NULL, 0, &code),
                        "staff-b|22222222-2222-4222-8222-222222222222|");
    assert_string_equal(s_call(d, db, "", NULL, 0, NULL, 0, &code), "||");
    /* Same caller twice: same answer (the cached scope is still right). */
    assert_string_equal(s_call(d, db, "staff-a", sites, 1, roles, 1, &code),
                        "staff-a|11111111-1111-4111-8111-111111111111|peer_specialist");
    assert_string_equal(s_call(d, db, "staff-a", sites, 1, roles, 1, &code),
                        "staff-a|11111111-1111-4111-8111-111111111111|peer_specialist");

    /* The server drops the connection: after the reconnect the settings are
     * gone, so the dispatcher must set them again even for the same caller. */
    bc_db_t *killer = bc_db_new(url, "test_scope_killer");
    assert_int_equal(bc_db_connect(killer, 5000, &err), 0);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", PQbackendPID(bc_db_conn(db)));
    const char *params[] = {pid};
    PGresult *res = bc_db_query(killer, "SELECT pg_terminate_backend($1::int)", 1, params, &err);
    assert_non_null(res);
    PQclear(res);
    const char *text = "";
    for (int i = 0; i < 3 && (code != BEACON__CODE__OK || !*text); i++) {
        text = s_call(d, db, "staff-a", sites, 1, roles, 1, &code);
        code = code == BEACON__CODE__OK && !*text ? -1 : code;
    }
    assert_int_equal(code, BEACON__CODE__OK);
    assert_string_equal(text, "staff-a|11111111-1111-4111-8111-111111111111|peer_specialist");
    bc_db_destroy(&killer);
    bc_db_destroy(&db);

    /* No database: the handler must not run without its scope. */
    bc_db_t *dead = bc_db_new("host=/nonexistent port=1 dbname=x connect_timeout=2", "test_scope");
    s_call(d, dead, "staff-a", sites, 1, roles, 1, &code);
    assert_int_equal(code, BEACON__CODE__UNAVAILABLE);
    bc_db_destroy(&dead);
    bc_dispatcher_destroy(&d);
}

int main(void)
{
    if (!getenv("BEACON_TEST_DATABASE_URL")) {
        fprintf(stderr, "FAILED: BEACON_TEST_DATABASE_URL is not set (run through tests/run.sh)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_scope_follows_each_caller)};
    return cmocka_run_group_tests_name("scope", tests, NULL, NULL);
}
