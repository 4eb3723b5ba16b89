/*  Unit tests for the RPC layer and the dispatcher: the bounded-depth
 *  unpacker, envelope validation, the handler table, and the asynchronous
 *  client against a real ZeroMQ ROUTER answering through bc_dispatch (replies
 *  out of order, deadlines, cancellation, an absent peer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>
#include <cmocka.h>

#include "bc_rpc.h"
#include "bc_service.h"
#include "bc_util.h"
#include "testsvc.pb-c.h"
#include "types.pb-c.h"

static bc_code_t s_echo(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Testsvc__EchoRequest *req = (const Beacon__Testsvc__EchoRequest *)in;
    if (req->delay_ms > 0)
        usleep((useconds_t)req->delay_ms * 1000);
    Beacon__Testsvc__EchoReply *r = bc_arena_alloc(call->arena, sizeof *r);
    beacon__testsvc__echo_reply__init(r);
    r->text = bc_arena_printf(call->arena, "%s/%s", req->text, call->principal->staff_id);
    *out = &r->base;
    return BC_OK;
}

static bc_code_t s_fail(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    (void)in;
    (void)out;
    return bc_call_fail(call, BC_NOT_FOUND, "text", "nothing called that");
}

static const bc_method_t s_methods[] = {{"Echo", s_echo}, {"Fail", s_fail}, {NULL, NULL}};
static const bc_service_def_t s_def = {
    .name = "testsvc", .descriptor = &beacon__testsvc__test_svc__descriptor, .methods = s_methods};

/* ---- dispatcher without sockets ------------------------------------------- */

static Beacon__Reply *s_dispatch(bc_dispatcher_t *d, const char *service, const char *method,
                                 const ProtobufCMessage *payload, int64_t deadline)
{
    Beacon__Request req = BEACON__REQUEST__INIT;
    req.id = "req-1";
    req.service = (char *)service;
    req.method = (char *)method;
    req.deadline_unix_ms = deadline;
    uint8_t pbuf[4096];
    if (payload) {
        req.payload.len = protobuf_c_message_pack(payload, pbuf);
        req.payload.data = pbuf;
    }
    uint8_t buf[8192];
    size_t len = protobuf_c_message_pack(&req.base, buf);
    bc_arena_t *arena = bc_arena_new(4096);
    uint8_t *out = NULL;
    size_t n = bc_dispatch(d, NULL, arena, buf, len, bc_now_ms(), &out);
    Beacon__Reply *r = (Beacon__Reply *)protobuf_c_message_unpack(&beacon__reply__descriptor, NULL,
                                                                  n, out);
    free(out);
    bc_arena_destroy(&arena);
    return r;
}

static void test_dispatch_echo(void **state)
{
    (void)state;
    bc_dispatcher_t *d = bc_dispatcher_new(&s_def, NULL, NULL, NULL);
    assert_non_null(d);
    Beacon__Testsvc__EchoRequest in = BEACON__TESTSVC__ECHO_REQUEST__INIT;
    in.text = "hi";
    Beacon__Reply *r = s_dispatch(d, "testsvc", "Echo", &in.base, 0);
    assert_string_equal(r->id, "req-1");
    assert_int_equal(r->status, BEACON__CODE__OK);
    Beacon__Testsvc__EchoReply *e = (Beacon__Testsvc__EchoReply *)protobuf_c_message_unpack(
        &beacon__testsvc__echo_reply__descriptor, NULL, r->payload.len, r->payload.data);
    assert_string_equal(e->text, "hi/");
    protobuf_c_message_free_unpacked(&e->base, NULL);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    bc_dispatcher_destroy(&d);
}

/* The built-in Metrics method: requests counted by method and outcome, an
 * unknown method under "(unknown)" (never the caller's text), durations
 * observed. */
static void test_dispatch_metrics(void **state)
{
    (void)state;
    bc_dispatcher_t *d = bc_dispatcher_new(&s_def, NULL, NULL, NULL);
    Beacon__Testsvc__EchoRequest in = BEACON__TESTSVC__ECHO_REQUEST__INIT;
    in.text = "x";
    for (int i = 0; i < 3; i++)
        protobuf_c_message_free_unpacked(&s_dispatch(d, "testsvc", "Echo", &in.base, 0)->base,
                                          NULL);
    protobuf_c_message_free_unpacked(&s_dispatch(d, "testsvc", "Fail", &in.base, 0)->base, NULL);
    protobuf_c_message_free_unpacked(
        &s_dispatch(d, "testsvc", "Nope\"}", &in.base, 0)->base, NULL);
    Beacon__MetricsRequest mreq = BEACON__METRICS_REQUEST__INIT;
    Beacon__Reply *r = s_dispatch(d, "testsvc", "Metrics", &mreq.base, 0);
    assert_int_equal(r->status, BEACON__CODE__OK);
    Beacon__MetricsReply *m = (Beacon__MetricsReply *)protobuf_c_message_unpack(
        &beacon__metrics_reply__descriptor, NULL, r->payload.len, r->payload.data);
    assert_non_null(m);
    assert_string_equal(m->service, "testsvc");
    const char *text = m->text;
    assert_non_null(strstr(text, "# TYPE beacon_rpc_requests_total counter\n"));
    assert_non_null(strstr(text, "beacon_rpc_requests_total{service=\"testsvc\",method=\"Echo\","
                                 "code=\"OK\"} 3\n"));
    assert_non_null(strstr(text, "beacon_rpc_requests_total{service=\"testsvc\",method=\"Fail\","
                                 "code=\"NOT_FOUND\"} 1\n"));
    assert_non_null(strstr(text, "beacon_rpc_requests_total{service=\"testsvc\",method="
                                 "\"(unknown)\",code=\"UNIMPLEMENTED\"} 1\n"));
    assert_null(strstr(text, "Nope"));
    assert_non_null(strstr(text, "beacon_rpc_duration_seconds_count{service=\"testsvc\","
                                 "method=\"Echo\"} 3\n"));
    /* Methods not called yet show their OK line at 0 and no histogram. */
    assert_non_null(strstr(text, "beacon_rpc_requests_total{service=\"testsvc\",method=\"Health\","
                                 "code=\"OK\"} 0\n"));
    assert_null(strstr(text, "beacon_rpc_duration_seconds_count{service=\"testsvc\","
                             "method=\"Health\"}"));
    protobuf_c_message_free_unpacked(&m->base, NULL);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    bc_dispatcher_destroy(&d);
}

static void test_dispatch_errors(void **state)
{
    (void)state;
    bc_dispatcher_t *d = bc_dispatcher_new(&s_def, NULL, NULL, NULL);
    Beacon__Testsvc__EchoRequest in = BEACON__TESTSVC__ECHO_REQUEST__INIT;
    Beacon__Reply *r = s_dispatch(d, "testsvc", "Fail", &in.base, 0);
    assert_int_equal(r->status, BEACON__CODE__NOT_FOUND);
    assert_string_equal(r->error->message, "nothing called that");
    assert_int_equal(r->error->n_fields, 1);
    assert_string_equal(r->error->fields[0]->field, "text");
    protobuf_c_message_free_unpacked(&r->base, NULL);

    r = s_dispatch(d, "testsvc", "Nope", &in.base, 0);
    assert_int_equal(r->status, BEACON__CODE__UNIMPLEMENTED);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    r = s_dispatch(d, "intake", "Echo", &in.base, 0);
    assert_int_equal(r->status, BEACON__CODE__INVALID_ARGUMENT);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    r = s_dispatch(d, "testsvc", "Echo", &in.base, bc_now_ms() - 1);
    assert_int_equal(r->status, BEACON__CODE__DEADLINE_EXCEEDED);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* Health is built in; with no database it reports degraded. */
    Beacon__HealthRequest h = BEACON__HEALTH_REQUEST__INIT;
    r = s_dispatch(d, "testsvc", "Health", &h.base, 0);
    assert_int_equal(r->status, BEACON__CODE__OK);
    Beacon__HealthReply *hr = (Beacon__HealthReply *)protobuf_c_message_unpack(
        &beacon__health_reply__descriptor, NULL, r->payload.len, r->payload.data);
    assert_string_equal(hr->service, "testsvc");
    assert_string_equal(hr->status, "degraded");
    assert_false(hr->database_ok);
    protobuf_c_message_free_unpacked(&hr->base, NULL);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    bc_dispatcher_destroy(&d);
}

static void test_dispatch_garbage(void **state)
{
    (void)state;
    bc_dispatcher_t *d = bc_dispatcher_new(&s_def, NULL, NULL, NULL);
    bc_arena_t *arena = bc_arena_new(1024);
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    uint8_t *out = NULL;
    size_t n = bc_dispatch(d, NULL, arena, junk, sizeof junk, bc_now_ms(), &out);
    Beacon__Reply *r = (Beacon__Reply *)protobuf_c_message_unpack(&beacon__reply__descriptor, NULL,
                                                                  n, out);
    assert_int_equal(r->status, BEACON__CODE__INVALID_ARGUMENT);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    free(out);
    bc_arena_destroy(&arena);
    bc_dispatcher_destroy(&d);
}

static void test_dispatch_table_checked(void **state)
{
    (void)state;
    static const bc_method_t missing[] = {{"Echo", s_echo}, {NULL, NULL}};
    static const bc_method_t extra[] = {
        {"Echo", s_echo}, {"Fail", s_fail}, {"Bogus", s_fail}, {NULL, NULL}};
    bc_service_def_t def = s_def;
    bc_error_t err;
    def.methods = missing;
    assert_null(bc_dispatcher_new(&def, NULL, NULL, &err));
    assert_non_null(strstr(err.message, "Fail"));
    def.methods = extra;
    assert_null(bc_dispatcher_new(&def, NULL, NULL, &err));
    assert_non_null(strstr(err.message, "Bogus"));
}

/* Builds Nested chains `depth` deep and checks the unpacker's bound. */
static void test_unpack_depth(void **state)
{
    (void)state;
    enum { N = 40 };
    Beacon__Testsvc__Nested nodes[N];
    for (int i = 0; i < N; i++) {
        beacon__testsvc__nested__init(&nodes[i]);
        nodes[i].child = i + 1 < N ? &nodes[i + 1] : NULL;
    }
    uint8_t buf[1024];
    size_t len = protobuf_c_message_pack(&nodes[0].base, buf);
    bc_error_t err;
    assert_null(bc_pb_unpack(&beacon__testsvc__nested__descriptor, NULL, buf, len, 32, &err));
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    nodes[9].child = NULL; /* 10 levels */
    len = protobuf_c_message_pack(&nodes[0].base, buf);
    ProtobufCMessage *m = bc_pb_unpack(&beacon__testsvc__nested__descriptor, NULL, buf, len, 32,
                                       &err);
    assert_non_null(m);
    protobuf_c_message_free_unpacked(m, NULL);
    assert_null(bc_pb_unpack(&beacon__testsvc__nested__descriptor, NULL, buf, len, 5, &err));
    /* Truncated input is refused, not read past its end. */
    assert_null(bc_pb_unpack(&beacon__testsvc__nested__descriptor, NULL, buf, len - 1, 32, &err));
}

/* ---- client against a real ROUTER ----------------------------------------- */

typedef struct {
    void *zctx;
    char endpoint[64];
    int handled;
    volatile int stop;
} s_server_t;

/* Answers requests through bc_dispatch; holds each request that asks for a
 * delay and answers it after later ones, so replies come back out of order. */
static void *s_server(void *arg)
{
    s_server_t *s = arg;
    void *router = zmq_socket(s->zctx, ZMQ_ROUTER);
    bc_zmq_socket_setup(router, 1 << 20, 0);
    assert_int_equal(zmq_bind(router, s->endpoint), 0);
    bc_dispatcher_t *d = bc_dispatcher_new(&s_def, NULL, NULL, NULL);
    bc_arena_t *arena = bc_arena_new(4096);
    while (!s->stop) {
        zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        zmq_msg_t id, empty, body;
        zmq_msg_init(&id);
        zmq_msg_init(&empty);
        zmq_msg_init(&body);
        zmq_msg_recv(&id, router, 0);
        zmq_msg_recv(&empty, router, 0);
        zmq_msg_recv(&body, router, 0);
        uint8_t *out = NULL;
        size_t n = bc_dispatch(d, NULL, arena, zmq_msg_data(&body), zmq_msg_size(&body),
                               bc_now_ms(), &out);
        bc_arena_reset(arena);
        zmq_msg_send(&id, router, ZMQ_SNDMORE);
        zmq_send(router, "", 0, ZMQ_SNDMORE);
        zmq_send(router, out, n, 0);
        free(out);
        zmq_msg_close(&empty);
        zmq_msg_close(&body);
        s->handled++;
    }
    bc_arena_destroy(&arena);
    bc_dispatcher_destroy(&d);
    zmq_close(router);
    return NULL;
}

typedef struct {
    int calls;
    bc_code_t code;
    char text[64];
} s_result_t;

static void s_on_reply(void *arg, const Beacon__Reply *reply, const bc_error_t *err)
{
    s_result_t *r = arg;
    r->calls++;
    r->code = err ? err->code : BC_OK;
    if (reply && !err) {
        Beacon__Testsvc__EchoReply *e = (Beacon__Testsvc__EchoReply *)protobuf_c_message_unpack(
            &beacon__testsvc__echo_reply__descriptor, NULL, reply->payload.len,
            reply->payload.data);
        snprintf(r->text, sizeof r->text, "%s", e->text);
        protobuf_c_message_free_unpacked(&e->base, NULL);
    }
}

static void s_wait(bc_rpc_client_t *c, int (*done)(void *), void *arg, int ms)
{
    int64_t end = bc_mono_ms() + ms;
    while (!done(arg) && bc_mono_ms() < end) {
        usleep(1000);
        bc_rpc_client_process(c, bc_now_ms());
    }
}

static int s_both_done(void *arg)
{
    s_result_t *r = arg;
    return r[0].calls && r[1].calls;
}

static void test_client_roundtrip(void **state)
{
    (void)state;
    s_server_t srv = {.zctx = zmq_ctx_new()};
    snprintf(srv.endpoint, sizeof srv.endpoint, "ipc:///tmp/bc-test-rpc-%d", getpid());
    pthread_t th;
    pthread_create(&th, NULL, s_server, &srv);
    bc_error_t err;
    bc_rpc_client_t *c = bc_rpc_client_new(srv.zctx, "testsvc", srv.endpoint, 1 << 20, 1000, &err);
    assert_non_null(c);
    assert_true(bc_rpc_client_fd(c) >= 0);
    /* ZMQ_IMMEDIATE refuses sends until the connection is up: wait for it
     * (bounded) with a Health call. */
    Beacon__HealthRequest hin = BEACON__HEALTH_REQUEST__INIT;
    bc_rpc_call_t probe = {.method = "Health", .payload = &hin.base};
    ProtobufCMessage *hr = NULL;
    for (int i = 0; i < 500 && !hr; i++) {
        probe.deadline_ms = bc_now_ms() + 1000;
        hr = bc_rpc_client_call(c, &probe, &beacon__health_reply__descriptor, NULL, &err);
        if (!hr) {
            assert_int_equal(err.code, BC_UNAVAILABLE);
            usleep(10000);
        }
    }
    assert_non_null(hr);
    protobuf_c_message_free_unpacked(hr, NULL);

    Beacon__Principal who = BEACON__PRINCIPAL__INIT;
    who.staff_id = "staff-7";
    Beacon__Testsvc__EchoRequest in = BEACON__TESTSVC__ECHO_REQUEST__INIT;
    s_result_t res[2] = {{0}};
    in.text = "one";
    bc_rpc_call_t call = {.method = "Echo", .principal = &who, .payload = &in.base,
                          .deadline_ms = bc_now_ms() + 5000};
    uint64_t h1 = bc_rpc_client_send(c, &call, s_on_reply, &res[0], &err);
    in.text = "two";
    uint64_t h2 = bc_rpc_client_send(c, &call, s_on_reply, &res[1], &err);
    assert_true(h1 && h2 && h1 != h2);
    assert_int_equal(bc_rpc_client_pending(c), 2);
    s_wait(c, s_both_done, res, 3000);
    assert_int_equal(res[0].calls, 1);
    assert_int_equal(res[1].calls, 1);
    assert_string_equal(res[0].text, "one/staff-7");
    assert_string_equal(res[1].text, "two/staff-7");
    assert_int_equal(bc_rpc_client_pending(c), 0);

    /* A service error arrives as err with the service's code. */
    s_result_t f = {0};
    call.method = "Fail";
    assert_true(bc_rpc_client_send(c, &call, s_on_reply, &f, &err));
    int64_t end = bc_mono_ms() + 3000;
    while (!f.calls && bc_mono_ms() < end) {
        usleep(1000);
        bc_rpc_client_process(c, bc_now_ms());
    }
    assert_int_equal(f.calls, 1);
    assert_int_equal(f.code, BC_NOT_FOUND);

    /* Blocking call. */
    call.method = "Echo";
    in.text = "sync";
    ProtobufCMessage *m = bc_rpc_client_call(c, &call, &beacon__testsvc__echo_reply__descriptor,
                                             NULL, &err);
    assert_non_null(m);
    assert_string_equal(((Beacon__Testsvc__EchoReply *)m)->text, "sync/staff-7");
    protobuf_c_message_free_unpacked(m, NULL);

    /* A slow call past its deadline fails once with DEADLINE_EXCEEDED; its
     * late reply is dropped; a cancelled call never calls back. */
    s_result_t slow = {0}, cancelled = {0};
    in.delay_ms = 300;
    call.deadline_ms = bc_now_ms() + 100;
    assert_true(bc_rpc_client_send(c, &call, s_on_reply, &slow, &err));
    in.delay_ms = 0;
    call.deadline_ms = bc_now_ms() + 5000;
    uint64_t hc = bc_rpc_client_send(c, &call, s_on_reply, &cancelled, &err);
    bc_rpc_client_cancel(c, hc);
    int64_t t = bc_rpc_client_next_timeout(c, bc_now_ms());
    assert_true(t >= 0 && t <= 100);
    end = bc_mono_ms() + 1000;
    while (bc_mono_ms() < end) {
        usleep(2000);
        bc_rpc_client_process(c, bc_now_ms());
    }
    assert_int_equal(slow.calls, 1);
    assert_int_equal(slow.code, BC_DEADLINE_EXCEEDED);
    assert_int_equal(cancelled.calls, 0);
    assert_int_equal(bc_rpc_client_pending(c), 0);
    assert_int_equal(bc_rpc_client_next_timeout(c, bc_now_ms()), -1);

    /* A deadline already past is refused at once. */
    call.deadline_ms = bc_now_ms() - 1;
    assert_int_equal(bc_rpc_client_send(c, &call, s_on_reply, &slow, &err), 0);
    assert_int_equal(err.code, BC_DEADLINE_EXCEEDED);

    bc_rpc_client_destroy(&c);
    assert_null(c);
    srv.stop = 1;
    pthread_join(th, NULL);
    zmq_ctx_term(srv.zctx);
    unlink(srv.endpoint + strlen("ipc://")); /* the socket file the bind left */
}

static void test_client_no_peer(void **state)
{
    (void)state;
    void *zctx = zmq_ctx_new();
    bc_error_t err;
    bc_rpc_client_t *c = bc_rpc_client_new(zctx, "testsvc", "tcp://127.0.0.1:1", 1 << 20, 0, &err);
    assert_non_null(c);
    bc_rpc_call_t call = {.method = "Echo", .deadline_ms = bc_now_ms() + 1000};
    s_result_t r = {0};
    assert_int_equal(bc_rpc_client_send(c, &call, s_on_reply, &r, &err), 0);
    assert_int_equal(err.code, BC_UNAVAILABLE);
    assert_int_equal(r.calls, 0);
    bc_rpc_client_destroy(&c);
    assert_null(bc_rpc_client_new(zctx, "testsvc", "nonsense://x", 1 << 20, 0, &err));
    assert_int_equal(err.code, BC_INVALID_ARGUMENT);
    assert_null(bc_rpc_client_new(zctx, "testsvc", " , ", 1 << 20, 0, &err));
    zmq_ctx_term(zctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_echo),  cmocka_unit_test(test_dispatch_errors),
        cmocka_unit_test(test_dispatch_metrics),
        cmocka_unit_test(test_dispatch_garbage), cmocka_unit_test(test_dispatch_table_checked),
        cmocka_unit_test(test_unpack_depth),   cmocka_unit_test(test_client_roundtrip),
        cmocka_unit_test(test_client_no_peer),
    };
    return cmocka_run_group_tests_name("rpc", tests, NULL, NULL);
}
