/*  intake: handlers of the intake service, one file per resource. */
#ifndef INTAKE_H
#define INTAKE_H

#include <stdbool.h>

#include "bc_service.h"
#include "intake.pb-c.h"

extern const bc_service_def_t intake_service;

/* The columns intake_client_from_row reads, in order. */
/* The role of the principal the referral service builds to check consent
 * before a disclosure to a partner (migration 015): never an account's. */
#define INTAKE_ROLE_REFERRAL_DISCLOSURE "referral_disclosure"
#define INTAKE_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define INTAKE_CLIENT_COLUMNS                                                                      \
    "id, given_name, family_name, coalesce(preferred_name, ''), coalesce(pronouns, ''), "          \
    "to_char(date_of_birth, 'YYYY-MM-DD'), coalesce(preferred_language, ''), status, "             \
    INTAKE_TIME("created_at") ", " INTAKE_TIME("updated_at") ", "                                 \
    "site_id::text, coalesce(assigned_staff_id::text, ''), version, coalesce(phone, ''), "        \
    "coalesce(email, ''), preferred_contact_method, do_not_contact, "                            \
    "array_to_json(address_lines)::text, city, state, postal_code, emergency_contact_name, "       \
    "emergency_contact_relationship, emergency_contact_phone, coalesce(medicaid_id_enc, ''), coalesce(merged_into::text, '')"
#define INTAKE_CLIENT_NCOLUMNS 26

/* What intake loads at start (call->state). */
typedef struct {
    struct instrument_registry *instruments;
    struct bc_keyring *keys;
} intake_state_t;

/* clients.c */
const struct bc_keyring *intake_keys(const bc_call_t *call);
/* NULL (call->err set, DATA_LOSS) when an encrypted field does not decrypt. */
Beacon__Intake__Client *intake_client_from_row(bc_call_t *call, PGresult *res, int row);
/* intake.in_scope in C: the caller's ordinary scope covers client c (of the
 * caller's agency); false when only break-glass let it through. */
bool intake_in_scope(const bc_call_t *call, const Beacon__Intake__Client *c);
bc_code_t clients_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t clients_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t clients_update(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* caseload.c */
bc_code_t caseload_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t caseload_assign(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t caseload_history(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t caseload_merge(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* break_glass.c */
bc_code_t break_glass_open(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t break_glass_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* Writes one of intake's events (payload IntakeEvent; agency filled in) in
 * the handler's transaction. -1 with call->err set. */
int intake_emit(bc_call_t *call, const char *topic, Beacon__Intake__IntakeEvent *ev);
/* Writes client.assigned: the client's site, status and assigned staff
 * member (NULL or empty: none) as they stand after the change. */
int intake_emit_assignment(bc_call_t *call, const char *client_id, const char *site_id,
                           const char *staff_id, const char *status);

/* A read of a client's record (or a part of it) that found no such client
 * in the caller's scope: audited as refused (ev, outcome set here), then
 * answered 404 exactly like an id that never existed. */
bc_code_t intake_not_found(bc_call_t *call, bc_audit_event_t *ev, const char *client_id);

/* The end of every change to a client's record: audits it (action on
 * resource_type/resource_id of client_id at site_id, purpose treatment,
 * detail JSON or NULL) in the open transaction, commits, and answers msg. */
bc_code_t intake_commit_change(bc_call_t *call, const char *action, const char *resource_type,
                               const char *resource_id, const char *client_id,
                               const char *site_id, const char *detail, ProtobufCMessage *msg,
                               ProtobufCMessage **out);

/* Starts an audited read of part of client_id's record (resource_type:
 * "goal", "assessment"...): fills ev and finds the client's site in the
 * caller's scope. BC_OK, or the refusal already recorded (404, audited). */
bc_code_t intake_read_scope(bc_call_t *call, const char *client_id, const char *resource_type,
                            bc_audit_event_t *ev);

/* A NULL parameter for an empty string. */
#define S_NULL_EMPTY(s) (*(s) ? (s) : NULL)

/* enrollments.c */
bc_code_t enrollments_enroll(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t enrollments_discharge(bc_call_t *call, const ProtobufCMessage *in,
                                ProtobufCMessage **out);
bc_code_t enrollments_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* consents.c */
bc_code_t consents_record(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t consents_revoke(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t consents_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t consents_check(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* diagnoses.c */
bc_code_t diagnoses_record(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t diagnoses_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
/* BillingSubjects: the billing service's batched read (file header). */
bc_code_t diagnoses_billing_subjects(bc_call_t *call, const ProtobufCMessage *in,
                                     ProtobufCMessage **out);

/* goals.c */
bc_code_t goals_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t goals_progress(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t goals_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* assessments.c */
int intake_start(const bc_config_t *config, void **state, bc_error_t *err);
void intake_stop(void *state);
bc_code_t assessments_instruments(bc_call_t *call, const ProtobufCMessage *in,
                                  ProtobufCMessage **out);
bc_code_t assessments_record(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t assessments_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

#endif
