/*  partner: the receiving end of a referral. A partner account (role
 *  partner, a staff member or an API key) acts for one organisation of the
 *  agency's directory (principal.organization_id); row security (migration
 *  005) shows it the referrals sent to that organisation's services and
 *  nothing else, so the handlers below reuse the care team's queries
 *  (referrals.c) and only decide what of each row leaves.
 *
 *  The consent gate. Before anything about the client goes to a partner,
 *  this service asks intake, over ZeroMQ (CheckConsent, endpoint_intake),
 *  whether an active consent names the organisation (by its directory name)
 *  as recipient for the purpose "referral", now. Nothing is cached: every
 *  read asks again, so a revocation counts from the next read. With a
 *  consent the partner gets the client's name and contact details, the
 *  reason and the notes for the receiver; without, a de-identified request
 *  (age band, language, urgency, reason category) and contact_withheld.
 *  Either way the reply carries the 42 CFR 2.32 notice and an audit record
 *  (action disclose: who, which client, which consent). If intake does not
 *  answer within consent_check_timeout_ms the read fails closed with 503 and
 *  nothing is disclosed (a de-identified answer would tell the partner that
 *  there is no consent when there may be one).
 *
 *  The RPC carries a principal built for it: the partner's ids for the
 *  record, its agency, the referral's site as the only site and the role
 *  referral_disclosure, which no account can hold (intake migration 015).
 *  Lists and status changes say nothing about the client and need no check.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "bc_log.h"
#include "bc_rpc.h"
#include "intake.pb-c.h"
#include "referral.h"

/* The role of the principal for the consent check (intake migration 015). */
#define S_DISCLOSURE_ROLE "referral_disclosure"

const char referral_part2_notice[] =
    "This record which has been disclosed to you is protected by Federal confidentiality rules "
    "(42 CFR part 2). These rules prohibit you from using or disclosing this record, or "
    "testimony that describes the information contained in this record, in any civil, "
    "criminal, administrative, or legislative proceedings by any Federal, State, or local "
    "authority, against the patient, unless authorized by the consent of the patient, except as "
    "provided at 42 CFR 2.12(c)(5) or as authorized by a court in accordance with 42 CFR 2.64 "
    "or 2.65. In addition, the Federal rules prohibit you from making any other use or "
    "disclosure of this record unless at least one of the following applies: (i) Further use "
    "or disclosure is expressly permitted by the written consent of the individual whose "
    "information is being disclosed in this record or as otherwise permitted by 42 CFR part 2. "
    "(ii) You are a covered entity or business associate and have received the record for "
    "treatment, payment, or health care operations, or (iii) You have received the record from "
    "a covered entity or business associate as permitted by 45 CFR part 164, subparts A and E. "
    "A general authorization for the release of medical or other information is NOT sufficient "
    "to meet the required elements of written consent to further use or redisclose the record "
    "(see 42 CFR 2.31).";

const bc_setting_t referral_settings[] = {
    {"consent_check_timeout_ms", BC_CFG_INT, "3000", 100, 60000,
     "how long a partner's read waits for intake's consent check (then 503, nothing disclosed)"},
    BC_SETTINGS_END,
};

/* ---- the intake client ------------------------------------------------------ */

/* One DEALER per worker thread (a client belongs to one thread), made on
 * first use and kept; all are closed at stop, after the workers ended. */
typedef struct {
    void *zctx;
    char *endpoints;
    int max_msg_bytes;
    int heartbeat_ms;
    int64_t timeout_ms;
    pthread_mutex_t lock;
    bc_rpc_client_t **clients;
    size_t n_clients;
    upkeep_t *upkeep; /* the search table's VACUUM after imports (upkeep.c), or NULL */
} s_state_t;

static _Thread_local bc_rpc_client_t *s_intake;

int referral_start(const bc_config_t *config, void **state, bc_error_t *err)
{
    (void)err;
    s_state_t *st = bc_calloc(1, sizeof *st);
    st->zctx = zmq_ctx_new();
    st->endpoints = bc_strdup(bc_config_str(config, "endpoint_intake"));
    st->max_msg_bytes = (int)bc_config_int(config, "rpc_max_message_bytes");
    st->heartbeat_ms = (int)bc_config_int(config, "rpc_heartbeat_ms");
    st->timeout_ms = bc_config_int(config, "consent_check_timeout_ms");
    /* The tables' owner, as for migrations (empty: database_url is it). */
    const char *owner = bc_config_str(config, "migration_database_url");
    st->upkeep = upkeep_new(*owner ? owner : bc_config_str(config, "database_url"));
    pthread_mutex_init(&st->lock, NULL);
    *state = st;
    return 0;
}

void referral_stop(void *state)
{
    s_state_t *st = state;
    for (size_t i = 0; i < st->n_clients; i++)
        bc_rpc_client_destroy(&st->clients[i]);
    free(st->clients);
    zmq_ctx_term(st->zctx);
    pthread_mutex_destroy(&st->lock);
    free(st->endpoints);
    upkeep_destroy(&st->upkeep);
    free(st);
}

upkeep_t *referral_upkeep(const bc_call_t *call)
{
    const s_state_t *st = call->state;
    return st ? st->upkeep : NULL;
}

static bc_rpc_client_t *s_intake_client(s_state_t *st, bc_error_t *err)
{
    if (s_intake)
        return s_intake;
    bc_rpc_client_t *c = bc_rpc_client_new(st->zctx, "intake", st->endpoints, st->max_msg_bytes,
                                           st->heartbeat_ms, err);
    if (!c)
        return NULL;
    pthread_mutex_lock(&st->lock);
    st->clients = bc_realloc(st->clients, (st->n_clients + 1) * sizeof *st->clients);
    st->clients[st->n_clients++] = c;
    pthread_mutex_unlock(&st->lock);
    return s_intake = c;
}

/* intake.CheckConsent for r's client, recipient (the organisation's name),
 * purpose referral, with the client's card. NULL with call->err set
 * (UNAVAILABLE when intake cannot answer). */
static Beacon__Intake__CheckConsentReply *s_check_consent(bc_call_t *call,
                                                         const Beacon__Referral__ClientReferral *r)
{
    s_state_t *st = call->state;
    bc_error_t err;
    bc_rpc_client_t *client = s_intake_client(st, &err);
    if (!client) {
        bc_call_fail(call, BC_UNAVAILABLE, "", "the consent check is unavailable: try again");
        return NULL;
    }
    const Beacon__Principal *me = call->principal;
    char *site = r->site_id;
    char *role = S_DISCLOSURE_ROLE;
    Beacon__Principal who = BEACON__PRINCIPAL__INIT;
    who.staff_id = me->staff_id;
    who.api_key_id = me->api_key_id;
    who.agency_id = me->agency_id;
    who.organization_id = me->organization_id;
    who.remote_addr = me->remote_addr;
    who.site_ids = &site;
    who.n_site_ids = 1;
    who.roles = &role;
    who.n_roles = 1;
    Beacon__Intake__CheckConsentRequest req = BEACON__INTAKE__CHECK_CONSENT_REQUEST__INIT;
    req.client_id = r->client_id;
    req.recipient = r->organization_name;
    req.purpose = "referral";
    req.with_client = true;
    int64_t deadline = bc_now_ms() + st->timeout_ms;
    if (call->request->deadline_unix_ms && call->request->deadline_unix_ms < deadline)
        deadline = call->request->deadline_unix_ms;
    bc_rpc_call_t rpc = {.method = "CheckConsent",
                         .principal = &who,
                         .payload = &req.base,
                         .deadline_ms = deadline,
                         .request_id = call->request->request_id};
    Beacon__Intake__CheckConsentReply *reply = (Beacon__Intake__CheckConsentReply *)
        bc_rpc_client_call(client, &rpc, &beacon__intake__check_consent_reply__descriptor,
                           call->alloc, &err);
    if (!reply) {
        bc_warn("consent check for referral %s failed: %s", r->id, err.message);
        bc_call_fail(call, BC_UNAVAILABLE, "",
                     "the consent check is unavailable, so nothing about the client can be "
                     "shown: try again");
    }
    return reply;
}

/* ---- what a partner sees ------------------------------------------------------ */

/* r without anything about the client. */
static Beacon__Referral__PartnerReferral *s_summary(bc_call_t *call,
                                                   const Beacon__Referral__ClientReferral *r)
{
    Beacon__Referral__PartnerReferral *p = bc_arena_alloc(call->arena, sizeof *p);
    beacon__referral__partner_referral__init(p);
    p->id = r->id;
    p->service_id = r->service_id;
    p->service_name = r->service_name;
    p->organization_id = r->organization_id;
    p->organization_name = r->organization_name;
    p->status = r->status;
    p->urgency = r->urgency;
    p->reason_category = r->reason_category;
    p->outcome = r->outcome;
    p->outcome_note = r->outcome_note;
    p->version = r->version;
    p->created_at = r->created_at;
    p->updated_at = r->updated_at;
    p->closed_at = r->closed_at;
    p->contact_withheld = true;
    p->withheld_reason = "read the referral to see what the client's consent allows";
    return p;
}

/* The reads below see only what row security shows a partner, and a partner
 * without an organisation sees nothing; this says so plainly. */
static bc_code_t s_require_partner(bc_call_t *call)
{
    if (!bc_call_has_role(call, "partner") || !bc_is_uuid(call->principal->organization_id))
        return bc_call_fail(call, BC_PERMISSION_DENIED, "",
                            "only a partner account linked to an organisation works referrals "
                            "here");
    return BC_OK;
}

bc_code_t partner_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    const Beacon__Referral__PartnerListReferralsRequest *req =
        (const Beacon__Referral__PartnerListReferralsRequest *)in;
    if (s_require_partner(call) != BC_OK)
        return call->err.code;
    Beacon__Referral__ListReferralsRequest list = BEACON__REFERRAL__LIST_REFERRALS_REQUEST__INIT;
    list.status = req->status;
    list.limit = req->limit;
    ProtobufCMessage *got = NULL;
    bc_code_t code = referrals_list(call, &list.base, &got);
    if (code != BC_OK)
        return code;
    const Beacon__Referral__ListReferralsReply *all = (const Beacon__Referral__ListReferralsReply *)got;
    Beacon__Referral__PartnerListReferralsReply *reply = bc_arena_alloc(call->arena, sizeof *reply);
    beacon__referral__partner_list_referrals_reply__init(reply);
    reply->referrals =
        bc_arena_alloc(call->arena, (all->n_referrals ? all->n_referrals : 1) * sizeof(void *));
    for (size_t i = 0; i < all->n_referrals; i++)
        reply->referrals[reply->n_referrals++] = s_summary(call, all->referrals[i]);
    *out = &reply->base;
    return BC_OK;
}

bc_code_t partner_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    if (s_require_partner(call) != BC_OK)
        return call->err.code;
    ProtobufCMessage *got = NULL;
    bc_code_t code = referrals_get(call, in, &got);
    if (code != BC_OK)
        return code;
    Beacon__Referral__ClientReferral *r = (Beacon__Referral__ClientReferral *)got;
    Beacon__Referral__PartnerReferral *p = s_summary(call, r);
    p->part2_notice = (char *)referral_part2_notice;
    bc_audit_event_t ev = {.site_id = r->site_id, .action = BC_AUDIT_DISCLOSE,
                           .resource_type = "referral", .resource_id = r->id,
                           .client_id = r->client_id, .purpose = "referral"};
    Beacon__Intake__CheckConsentReply *consent = s_check_consent(call, r);
    if (!consent) {
        ev.outcome = BC_AUDIT_ERROR;
        ev.detail = bc_arena_printf(call->arena,
                                    "{\"organization_id\":\"%s\",\"consent_check\":\"unavailable\"}",
                                    r->organization_id);
        bc_error_t keep = call->err;
        bc_call_audit_read(call, &ev);
        call->err = keep;
        return keep.code;
    }
    p->age_band = consent->age_band;
    p->language = consent->preferred_language;
    if (consent->allowed && consent->client) {
        p->contact_withheld = false;
        p->withheld_reason = "";
        p->client = consent->client;
        p->reason = r->reason;
        p->notes_for_receiver = r->notes_for_receiver;
        p->consent_id = consent->consent_id;
        p->consent_scope = consent->consent_scope;
    }
    /* The history, with the care team's notes on it only under consent. */
    p->changes = r->changes;
    p->n_changes = r->n_changes;
    for (size_t i = 0; p->contact_withheld && i < r->n_changes; i++)
        r->changes[i]->note = "";
    if (p->contact_withheld) {
        p->withheld_reason = "no active consent of the client names this organisation for "
                             "referral: only a de-identified request is shown";
    }
    ev.detail = bc_arena_printf(call->arena,
                                "{\"organization_id\":\"%s\",\"identified\":%s,\"consent_id\":%s%s%s}",
                                r->organization_id, p->contact_withheld ? "false" : "true",
                                *p->consent_id ? "\"" : "", *p->consent_id ? p->consent_id : "null",
                                *p->consent_id ? "\"" : "");
    if (bc_call_audit_read(call, &ev) < 0)
        return call->err.code;
    *out = &p->base;
    return BC_OK;
}

/* What a partner may make of a referral: never cancelled or failed, which are
 * the referrer's to say. */
static const char *const s_partner_moves[] = {"received", "accepted",  "rejected",
                                              "in-progress", "on-hold", "completed", NULL};

bc_code_t partner_change_status(bc_call_t *call, const ProtobufCMessage *in,
                                ProtobufCMessage **out)
{
    const Beacon__Referral__ChangeReferralStatusRequest *req =
        (const Beacon__Referral__ChangeReferralStatusRequest *)in;
    if (s_require_partner(call) != BC_OK)
        return call->err.code;
    bool allowed = false;
    for (const char *const *m = s_partner_moves; *m; m++)
        allowed |= !strcmp(*m, req->status);
    if (!allowed)
        return bc_call_fail(call, BC_INVALID_ARGUMENT, "status",
                            "a partner sets received, accepted, rejected (declined, with an "
                            "outcome), in-progress, on-hold or completed (with an outcome)");
    ProtobufCMessage *got = NULL;
    bc_code_t code = referrals_change_status(call, in, &got);
    if (code != BC_OK)
        return code;
    *out = &s_summary(call, (const Beacon__Referral__ClientReferral *)got)->base;
    return BC_OK;
}
