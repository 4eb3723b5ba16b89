/*  health: GET /healthz asks every service for Health in parallel and
 *  answers 200 when all are up with their database, 503 otherwise, naming
 *  the ones that are not. */
#include <string.h>

#include "bc_version.h"
#include "bc_json.h"
#include "bc_log.h"
#include "bc_service.h"
#include "bc_util.h"
#include "gateway.h"
#include "types.pb-c.h"

typedef struct s_health s_health_t;

typedef struct {
    s_health_t *health;
    int index;
    uint64_t handle;
    bc_rpc_client_t *client;
} s_probe_t;

struct s_health {
    h2o_req_t *req;
    gw_thread_t *thread;
    char request_id[72];
    int64_t started_us;
    int remaining;
    bool all_ok;
    json_t *services;
    s_probe_t probes[GW_NSERVICES];
};

static void s_on_dispose(void *p)
{
    s_health_t *h = p;
    for (int i = 0; i < GW_NSERVICES; i++)
        if (h->probes[i].handle) {
            bc_rpc_client_cancel(h->probes[i].client, h->probes[i].handle);
            h->probes[i].handle = 0;
            h->thread->inflight--;
        }
    json_decref(h->services);
    h->services = NULL;
}

static void s_finish(s_health_t *h)
{
    int status = h->all_ok ? 200 : 503;
    json_t *doc = json_pack("{s:s, s:s, s:O}", "status", h->all_ok ? "ok" : "degraded", "version",
                            BEACON_VERSION, "services", h->services);
    gw_common_headers(h->req, h->request_id);
    gw_send_json(h->req, status, "application/json", doc);
    gw_access_log(h->req, h->request_id, status, h->started_us);
}

static void s_record(s_probe_t *p, json_t *entry, bool ok)
{
    s_health_t *h = p->health;
    json_object_set_new(h->services, bc_service_names[p->index], entry);
    if (!ok)
        h->all_ok = false;
    if (--h->remaining == 0)
        s_finish(h);
}

static void s_on_reply(void *arg, const Beacon__Reply *reply, const bc_error_t *err)
{
    s_probe_t *p = arg;
    p->handle = 0;
    p->health->thread->inflight--;
    if (err) {
        s_record(p, json_pack("{s:s, s:s}", "status", "unavailable", "detail", err->message),
                 false);
        return;
    }
    bc_error_t e;
    ProtobufCMessage *m = bc_pb_unpack(&beacon__health_reply__descriptor, NULL,
                                       reply->payload.data, reply->payload.len, BC_PB_MAX_DEPTH,
                                       &e);
    json_t *entry = m ? bc_pb_to_json(m, BC_JSON_EMIT_DEFAULTS, &e) : NULL;
    bool ok = m && ((Beacon__HealthReply *)m)->database_ok;
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    if (!entry)
        entry = json_pack("{s:s, s:s}", "status", "unavailable", "detail", "unreadable reply");
    s_record(p, entry, ok);
}

void gw_health(gw_thread_t *t, h2o_req_t *req, const char *request_id)
{
    s_health_t *h = h2o_mem_alloc_shared(&req->pool, sizeof *h, s_on_dispose);
    memset(h, 0, sizeof *h);
    h->req = req;
    h->thread = t;
    h->started_us = bc_mono_us();
    h->all_ok = true;
    h->services = json_object();
    h->remaining = GW_NSERVICES;
    snprintf(h->request_id, sizeof h->request_id, "%s", request_id);
    Beacon__HealthRequest in = BEACON__HEALTH_REQUEST__INIT;
    for (int i = 0; i < GW_NSERVICES; i++) {
        s_probe_t *p = &h->probes[i];
        p->health = h;
        p->index = i;
        p->client = t->clients[i];
        bc_rpc_call_t call = {
            .method = "Health",
            .payload = &in.base,
            .deadline_ms = bc_now_ms() + t->health_timeout_ms,
            .request_id = h->request_id,
        };
        bc_error_t err;
        p->handle = bc_rpc_client_send(p->client, &call, s_on_reply, p, &err);
        if (p->handle) {
            t->inflight++;
        } else {
            /* Recorded now; the response goes out once the last probe ends. */
            s_record(p, json_pack("{s:s, s:s}", "status", "unavailable", "detail", err.message),
                     false);
        }
    }
}
