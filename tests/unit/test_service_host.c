/*  A service hosted in-process (bc_service_new/run/destroy, as the gateway
 *  will host identity) answering over a real ZeroMQ socket, with a real
 *  PostgreSQL: a handler's audited read is released only once its audit
 *  record is durable, and is replaced by UNAVAILABLE when the record cannot
 *  be written. Needs BEACON_TEST_DATABASE_URL (the owner) and the beacon_app
 *  role that deploy/pg-cluster.sh creates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>
#include <cmocka.h>

#include "bc_rpc.h"
#include "bc_service.h"
#include "bc_util.h"
#include "testsvc.pb-c.h"

/* Echo reads "a record" named by text: audited, then returned. */
static bc_code_t s_echo(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Testsvc__EchoRequest *req = (const Beacon__Testsvc__EchoRequest *)in;
    bc_audit_event_t ev = {.action = BC_AUDIT_READ, .resource_type = "client",
                           .resource_id = req->text, .client_id = req->text};
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    Beacon__Testsvc__EchoReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__testsvc__echo_reply__init(r);
    r->text = bc_arena_strdup(call->arena, req->text);
    *out = &r->base;
    return BC_OK;
}

static bc_code_t s_fail(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    (void)in;
    (void)out;
    return bc_call_fail(call, BC_NOT_FOUND, "", "nothing");
}

static const bc_method_t s_methods[] = {{"Echo", s_echo}, {"Fail", s_fail}, {NULL, NULL}};
static const bc_service_def_t s_def = {
    .name = "testsvc", .descriptor = &beacon__testsvc__test_svc__descriptor, .methods = s_methods};

static volatile sig_atomic_t s_stop;

static void *s_serve(void *arg)
{
    bc_service_run(arg, &s_stop);
    return NULL;
}

static bc_db_t *s_owner;

static void s_exec(const char *sql)
{
    bc_error_t err;
    if (bc_db_command(s_owner, sql, 0, NULL, &err) < 0)
        fail_msg("%s: %s", sql, err.detail);
}

static char *s_query1(const char *sql, const char *param)
{
    bc_error_t err;
    const char *params[] = {param};
    PGresult *res = bc_db_query(s_owner, sql, 1, params, &err);
    if (!res)
        fail_msg("%s: %s", sql, err.detail);
    char *v = strdup(PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return v;
}

static ProtobufCMessage *s_echo_call(bc_rpc_client_t *c, const char *text, bc_error_t *err)
{
    Beacon__Principal who = BEACON__PRINCIPAL__INIT;
    who.staff_id = "staff-host-test";
    Beacon__Testsvc__EchoRequest in = BEACON__TESTSVC__ECHO_REQUEST__INIT;
    in.text = (char *)text;
    bc_rpc_call_t call = {.method = "Echo", .principal = &who, .payload = &in.base,
                          .deadline_ms = bc_now_ms() + 10000, .request_id = "req-host-test"};
    return bc_rpc_client_call(c, &call, &beacon__testsvc__echo_reply__descriptor, NULL, err);
}

static void test_audited_reads_released_only_when_durable(void **state)
{
    (void)state;
    const char *url = getenv("BEACON_TEST_DATABASE_URL");
    char app_url[1024], dir[] = "/tmp/bc-host-XXXXXX", mig[256];
    snprintf(app_url, sizeof app_url, "%s user=beacon_app", url);
    assert_non_null(mkdtemp(dir));
    snprintf(mig, sizeof mig, "%s/testsvc", dir);
    mkdir(mig, 0700);
    snprintf(mig, sizeof mig, "%s/testsvc/migrations", dir);
    mkdir(mig, 0700);

    bc_config_t *config = bc_config_new("test");
    bc_config_add(config, bc_common_settings);
    char *argv[] = {"test", NULL};
    bc_error_t err;
    assert_int_equal(bc_config_load(config, 1, argv, &err), 0);
    assert_int_equal(bc_config_set(config, "database_url", app_url, &err), 0);
    assert_int_equal(bc_config_set(config, "migration_database_url", url, &err), 0);
    assert_int_equal(bc_config_set(config, "migrations_dir", dir, &err), 0);
    assert_int_equal(bc_config_set(config, "workers", "2", &err), 0);

    void *zctx = zmq_ctx_new();
    bc_service_t *svc = bc_service_new(&s_def, config, zctx, "inproc://testsvc-host", &err);
    if (!svc)
        fail_msg("service did not start: %s (%s)", err.message, err.detail);
    s_stop = 0;
    pthread_t th;
    pthread_create(&th, NULL, s_serve, svc);
    bc_rpc_client_t *c = bc_rpc_client_new(zctx, "testsvc", "inproc://testsvc-host", 1 << 20, 0,
                                           &err);
    assert_non_null(c);

    char record[64];
    char uuid[37];
    bc_uuid_v4(uuid);
    snprintf(record, sizeof record, "host-%s", uuid);
    ProtobufCMessage *m = s_echo_call(c, record, &err);
    if (!m)
        fail_msg("Echo failed: %s", err.message);
    assert_string_equal(((Beacon__Testsvc__EchoReply *)m)->text, record);
    protobuf_c_message_free_unpacked(m, NULL);
    /* The reply came back only after its audit record committed. */
    char *who = s_query1("SELECT actor_staff_id || '|' || request_id || '|' || action || '|' || "
                         "outcome FROM audit.events WHERE client_id = $1",
                         record);
    assert_string_equal(who, "staff-host-test|req-host-test|read|ok");
    free(who);

    /* The audit log refuses the record: the data is withheld. */
    snprintf(record, sizeof record, "withheld-%s", uuid);
    s_exec("REVOKE INSERT ON audit.events FROM beacon_service");
    m = s_echo_call(c, record, &err);
    s_exec("GRANT INSERT ON audit.events TO beacon_service");
    assert_null(m);
    assert_int_equal(err.code, BC_UNAVAILABLE);
    char *n = s_query1("SELECT count(*)::text FROM audit.events WHERE client_id = $1", record);
    assert_string_equal(n, "0");
    free(n);

    /* And it recovers. */
    snprintf(record, sizeof record, "again-%s", uuid);
    m = s_echo_call(c, record, &err);
    assert_non_null(m);
    protobuf_c_message_free_unpacked(m, NULL);

    bc_rpc_client_destroy(&c);
    s_stop = 1;
    pthread_join(th, NULL);
    bc_service_destroy(&svc);
    assert_null(svc);
    zmq_ctx_term(zctx);
    bc_config_destroy(&config);
    rmdir(mig);
    snprintf(mig, sizeof mig, "%s/testsvc", dir);
    rmdir(mig);
    rmdir(dir);
}

int main(void)
{
    const char *url = getenv("BEACON_TEST_DATABASE_URL");
    if (!url) {
        fprintf(stderr, "FAILED: BEACON_TEST_DATABASE_URL is not set (run through tests/run.sh)\n");
        return 1;
    }
    s_owner = bc_db_new(url, "test_service_host");
    bc_error_t err;
    if (bc_db_connect(s_owner, 5000, &err) < 0) {
        fprintf(stderr, "FAILED: %s\n", err.detail);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audited_reads_released_only_when_durable),
    };
    int rc = cmocka_run_group_tests_name("service_host", tests, NULL, NULL);
    bc_db_destroy(&s_owner);
    return rc;
}
