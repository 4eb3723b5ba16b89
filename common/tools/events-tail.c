/*  beacon-events-tail: prints a service's events as JSON lines.
 *
 *      beacon-events-tail --events_endpoint=tcp://127.0.0.1:7201
 *                         [--producer=intake] [--replay_after=N] [--count=N]
 *
 *  With replay_after >= 0 it first asks the producer (endpoint_<producer>)
 *  for the events numbered after N (ReplayEvents), then follows new ones on
 *  the PUB socket, skipping any it already printed: exactly what a consumer
 *  of the bus does on start. One line per event, on stdout:
 *
 *      {"producer":"intake","seq":7,"topic":"client.enrolled",
 *       "occurred_at":"...","request_id":"...","payload":{...}}
 *
 *  payload is decoded for intake (beacon.intake.IntakeEvent) and shown as
 *  base64 bytes otherwise. Stops after count events (0: on SIGTERM/SIGINT).
 *  Exit status: 0, or 2 for bad usage or an unreachable producer.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zmq.h>

#include "bc_json.h"
#include "bc_log.h"
#include "bc_rpc.h"
#include "bc_service.h"
#include "bc_util.h"
#include "intake.pb-c.h"
#include "types.pb-c.h"

static const bc_setting_t s_settings[] = {
    {"events_endpoint", BC_CFG_STRING, "tcp://127.0.0.1:7201", 0, 0,
     "the producer's event endpoint (its events_bind_endpoint)"},
    {"producer", BC_CFG_STRING, "intake", 0, 0, "the service whose events to read"},
    {"replay_after", BC_CFG_INT, "-1", -1, INT64_MAX,
     "first replay the events numbered after this (-1: only new events)"},
    {"count", BC_CFG_INT, "0", 0, 1000000000, "stop after this many events (0: never)"},
    BC_SETTINGS_END,
};

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int64_t s_last = -1; /* highest seq printed */
static int64_t s_printed;

static void s_print(const Beacon__Event *ev)
{
    if (ev->seq <= s_last)
        return; /* already printed (replay and live overlap) */
    s_last = ev->seq;
    json_t *payload = NULL;
    if (!strcmp(ev->producer, "intake")) {
        bc_error_t err;
        ProtobufCMessage *m =
            bc_pb_unpack(&beacon__intake__intake_event__descriptor, NULL, ev->payload.data,
                         ev->payload.len, BC_PB_MAX_DEPTH, &err);
        if (m) {
            payload = bc_pb_to_json(m, 0, &err);
            protobuf_c_message_free_unpacked(m, NULL);
        }
    }
    json_t *line = json_pack("{s:s, s:I, s:s, s:s, s:s, s:o}", "producer", ev->producer, "seq",
                             (json_int_t)ev->seq, "topic", ev->topic, "occurred_at",
                             ev->occurred_at, "request_id", ev->request_id, "payload",
                             payload ? payload : json_null());
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    puts(text);
    fflush(stdout);
    free(text);
    json_decref(line);
    s_printed++;
}

static int s_replay(void *zctx, const bc_config_t *config, int64_t after)
{
    char key[96];
    const char *producer = bc_config_str(config, "producer");
    snprintf(key, sizeof key, "endpoint_%s", producer);
    const char *endpoint = bc_config_str(config, key);
    if (!endpoint) {
        fprintf(stderr, "beacon-events-tail: unknown producer %s\n", producer);
        return -1;
    }
    bc_error_t err;
    bc_rpc_client_t *client = bc_rpc_client_new(zctx, producer, endpoint, 16 << 20, 0, &err);
    if (!client) {
        fprintf(stderr, "beacon-events-tail: %s\n", err.message);
        return -1;
    }
    for (;;) {
        Beacon__ReplayEventsRequest req = BEACON__REPLAY_EVENTS_REQUEST__INIT;
        req.after_seq = after;
        req.limit = 500;
        bc_rpc_call_t call = {.method = "ReplayEvents", .payload = &req.base,
                              .deadline_ms = bc_now_ms() + 10000};
        Beacon__ReplayEventsReply *r = (Beacon__ReplayEventsReply *)bc_rpc_client_call(
            client, &call, &beacon__replay_events_reply__descriptor, NULL, &err);
        if (!r) {
            fprintf(stderr, "beacon-events-tail: replay: %s\n", err.message);
            bc_rpc_client_destroy(&client);
            return -1;
        }
        size_t n = r->n_events;
        for (size_t i = 0; i < n; i++) {
            s_print(r->events[i]);
            after = r->events[i]->seq;
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
        if (n < 500)
            break;
    }
    bc_rpc_client_destroy(&client);
    return 0;
}

int main(int argc, char **argv)
{
    int exit_code = 0;
    bc_config_t *config =
        bc_process_start("events-tail", s_settings, argc, argv, s_on_signal, &exit_code);
    if (!config)
        return exit_code;
    void *zctx = zmq_ctx_new();
    void *sub = zmq_socket(zctx, ZMQ_SUB);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    int status = 0;
    /* Subscribe before replaying, so nothing falls between the two. */
    if (zmq_connect(sub, bc_config_str(config, "events_endpoint")) != 0) {
        fprintf(stderr, "beacon-events-tail: cannot connect: %s\n", zmq_strerror(zmq_errno()));
        status = 2;
    }
    int64_t count = bc_config_int(config, "count");
    int64_t after = bc_config_int(config, "replay_after");
    if (!status && after >= 0 && s_replay(zctx, config, after) < 0)
        status = 2;
    while (!status && !s_stop && (count == 0 || s_printed < count)) {
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 200) <= 0)
            continue;
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&topic, sub, 0) >= 0 && zmq_msg_more(&topic) &&
            zmq_msg_recv(&body, sub, 0) >= 0) {
            bc_error_t err;
            Beacon__Event *ev = (Beacon__Event *)bc_pb_unpack(
                &beacon__event__descriptor, NULL, zmq_msg_data(&body), zmq_msg_size(&body),
                BC_PB_MAX_DEPTH, &err);
            if (ev) {
                s_print(ev);
                protobuf_c_message_free_unpacked(&ev->base, NULL);
            }
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
    }
    int linger = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(sub);
    zmq_ctx_term(zctx);
    bc_config_destroy(&config);
    return status;
}
