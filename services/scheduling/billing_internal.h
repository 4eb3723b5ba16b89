/*  billing_internal: what the billing files of the scheduling service share
 *  (the claim as built and stored, the configuration, the state). */
#ifndef BILLING_INTERNAL_H
#define BILLING_INTERNAL_H

#include <stdint.h>

#include "bc_crypt.h"
#include "bc_service.h"
#include "billing.h"

typedef struct billing_state billing_state_t;

/* The scheduling service's state (call->state). */
typedef struct {
    struct sched_reminders *reminders;
    billing_state_t *billing;
} sched_state_t;

/* Loads the field keys and prepares the callers of intake and notes. NULL
 * with err set when the key file cannot be read. */
billing_state_t *billing_start(const bc_config_t *config, bc_error_t *err);
void billing_stop(billing_state_t *st);
billing_state_t *billing_state(const bc_call_t *call);
const bc_keyring_t *billing_keys(const bc_call_t *call);
/* The billing_part_bytes setting. */
size_t billing_part_bytes(const bc_call_t *call);

/* ---- billing_config.c ---- */
bool billing_payer_id_valid(const char *s);
/* The caller's agency's configuration for payer_id in call->arena;
 * NULL with call->err set (NOT_FOUND when there is none). */
Beacon__Billing__BillingConfig *billing_config_load(bc_call_t *call, const char *payer_id);

/* Names of the envelope as X12 text (upper case, separators removed). */
typedef struct {
    char *submitter_name, *contact_name, *receiver_name, *provider_name, *line1, *line2, *city,
        *payer_name, *payer_id, *supervising_last, *supervising_first;
} billing_envelope_strings_t;
void billing_envelope_prepare(bc_arena_t *arena, const Beacon__Billing__BillingConfig *cfg,
                              billing_envelope_strings_t *out);
/* in as X12 text of at most max characters, in arena. */
char *billing_x12_dup(bc_arena_t *arena, const char *in, size_t max);

/* ---- claims ---- */
#define BILLING_MAX_REASONS 16

typedef struct {
    const char *reasons[BILLING_MAX_REASONS];
    int n;
} billing_reasons_t;

typedef struct {
    char *id, *encounter_id, *client_id, *site_id, *service_date;
    char service_date8[9];
    char x12_id[33]; /* CLM01: the id without dashes */
    int minutes;
    char *place_of_service;
    const char *frequency;
    char *original_id;  /* 7 and 8: the original claim */
    char *original_ref; /* 7 and 8: REF*F8 */
    const char *procedure;
    char *modifiers[4];
    int n_modifiers;
    int units;
    int64_t charge_cents;
    char *diagnoses[12];
    int n_diagnoses;
    char *last, *first, *address, *city, *state, *postal, *medicaid_id;
    const char *dob; /* YYYY-MM-DD */
    char *dob8;
    const char *sex;
    const char *consent_id;
    const char *status;
    bool stored; /* already in billing.claims, held: a batch updates it in place */
} billing_claim_t;

/* Fills x12_id and service_date8 from id and service_date. */
void billing_claim_finish_ids(bc_arena_t *arena, billing_claim_t *c);

/* Days since 1970-01-01 of YYYY-MM-DD, or INT32_MIN. */
int32_t billing_day(const char *s);

/* The encounter columns evaluation reads, from scheduling.encounters e
 * joined with identity.site_directory d; the query adds the existing
 * original claim's id (or ''). */
#define BILLING_ENCOUNTER_COLUMNS                                                                  \
    "e.id::text, e.client_id::text, e.site_id::text, "                                          \
    "to_char(e.starts_at AT TIME ZONE d.time_zone, 'YYYY-MM-DD'), "                             \
    "to_char((e.ends_at - interval '1 microsecond') AT TIME ZONE d.time_zone, 'YYYY-MM-DD'), "  \
    "e.minutes, e.place_of_service, e.mode, e.is_group"

/* ---- billing_units.c ---- */
/* Units per client and day or episode, in an arena. */
typedef struct billing_units billing_units_t;
billing_units_t *billing_units_new(bc_arena_t *arena, size_t expect);
/* The units counted under client a and day or episode start b (created at
 * 0): a pointer valid until the next call. */
int *billing_units_at(billing_units_t *t, const char *a, const char *b);
/* The units billed before a batch began, read in client order. */
typedef struct billing_prior billing_prior_t;
/* Declares the batch's cursor over them (the clients with encounters of
 * agency_id from..to; those days only unless whole_history). The caller
 * owns the result; NULL with call->err set. */
billing_prior_t *billing_prior_open(bc_call_t *call, const char *agency_id, const char *from,
                                    const char *to, bool whole_history);
void billing_prior_close(billing_prior_t **self);
/* Called for each row taken: n units billed to client on day. */
typedef void (*billing_prior_add_fn)(void *arg, const char *client, const char *day, int n);
/* Adds to units what the previous chunk carried, then passes to add the
 * rows of clients (n, sorted, distinct, after every client of earlier
 * calls but the last one) and skips those of clients in between. 0, or -1
 * with call->err set. */
int billing_prior_take(billing_prior_t *self, bc_call_t *call, char *const *clients, int n,
                       billing_units_t *units, billing_prior_add_fn add, void *arg);
/* Fetches (and keeps) the rows up to and just past client, so that
 * billing_prior_take for chunks up to client needs no database. 0, or -1
 * with call->err set. */
int billing_prior_prefetch(billing_prior_t *self, bc_call_t *call, const char *client);
/* Keeps what units holds for client (the chunk's last, whose encounters
 * may go on in the next chunk) for the next billing_prior_take. */
void billing_prior_carry(billing_prior_t *self, const billing_units_t *units, const char *client);

/* A chunk's questions to intake (BillingSubjects) and notes
 * (BillingNoteStatus), sent and not yet answered; lives in the chunk's
 * arena. */
typedef struct billing_ask billing_ask_t;
/* Sends both questions about the encounters of res (BILLING_ENCOUNTER_COLUMNS
 * plus the claim id; at least one row) without waiting for the answers, so
 * that the caller can work meanwhile. res and arena must outlive the ask.
 * NULL with call->err set. */
billing_ask_t *billing_ask(bc_call_t *call, const Beacon__Billing__BillingConfig *cfg,
                           bc_arena_t *arena, PGresult *res);
/* Forgets an ask that will not be evaluated (its answers are dropped).
 * NULL allowed; *ask is set to NULL. */
void billing_ask_abandon(billing_ask_t **ask);
/* Where a batch's time goes, in microseconds (for its log line). */
typedef struct {
    int64_t fetch;    /* reading the encounters */
    int64_t answers;  /* waiting for intake and notes */
    int64_t prior;    /* reading the units already billed */
    int64_t evaluate; /* deciding each encounter */
    int64_t stage;    /* sealing Medicaid IDs, making the stage's rows */
    int64_t copy;     /* copying them into the stage */
    int64_t insert;   /* waiting while they go into billing.claims */
    int64_t write;    /* formatting the 837P and the CSV */
    int64_t parts;    /* sealing and storing the parts */
} billing_timing_t;

/* ---- billing_stage.c ---- */
/* A growing text buffer (p NUL-terminated; {0} is empty). */
typedef struct {
    char *p;
    size_t len, cap;
} billing_buf_t;
void billing_buf_add(billing_buf_t *b, const char *s, size_t n);
void billing_buf_str(billing_buf_t *b, const char *s);
/* What a claim row stores beside its text columns: its numbers as text,
 * the last four characters of its Medicaid ID and the ID sealed for claim
 * claim_id (associated data billing.claims.medicaid_id:<claim id>; NULL
 * when there is none; freed by billing_row_text_free). */
typedef struct {
    char minutes[16], units[16], cents[24];
    const char *last4;
    char *medicaid_enc;
} billing_row_text_t;
/* 0, or -1 with call->err set. */
int billing_row_text(bc_call_t *call, const billing_claim_t *c, const char *claim_id,
                     billing_row_text_t *t);
void billing_row_text_free(billing_row_text_t *t);
/* Creates the batch transaction's stage (dropped at its end). 0, or -1
 * with call->err set. */
int billing_stage_create(bc_call_t *call);
/* A chunk's n claims (why: their hold reasons; none = submitted) as the
 * stage's COPY text in rows (emptied first), their Medicaid IDs sealed;
 * pure work of the service, no database. 0, or -1 with call->err set. */
int billing_stage_rows(bc_call_t *call, bc_arena_t *arena, const billing_claim_t *claims,
                       const billing_reasons_t *why, int n, billing_buf_t *rows);
/* Copies rows into the stage and sends, without waiting for it, the
 * statement that stores them for payer_id (submitted ones in batch_id):
 * when fresh (no claim of them stored yet) a plain insert; otherwise held
 * ones are updated and those whose encounter has another original claim
 * left out. The caller holds the agency's batch lock (billing_batch.c)
 * and sends nothing else on the connection until billing_stage_taken.
 * 0, or -1 with call->err set. */
int billing_stage_send(bc_call_t *call, const char *payer_id, const char *batch_id,
                       const billing_buf_t *rows, bool fresh);
/* Waits for the statement billing_stage_send sent: how many of the n
 * claims the database took, their encounter ids sorted in *ids (in
 * arena), or *ids NULL when it took all n; -1 with call->err set. */
int billing_stage_taken(bc_call_t *call, bc_arena_t *arena, int n, char ***ids);

/* Waits for the answers of *ask (taken: *ask is set to NULL), reads the
 * units already billed to its clients (from prior, or the database when
 * NULL) and evaluates every encounter
 * against cfg: claims and their hold reasons (none: billable) in the ask's
 * arena; adds to timing (NULL allowed). 0, or -1 with call->err set. */
int billing_evaluate_answers(bc_call_t *call, const Beacon__Billing__BillingConfig *cfg,
                             billing_ask_t **ask, billing_prior_t *prior, int32_t today,
                             billing_claim_t **claims, billing_reasons_t **why,
                             billing_timing_t *timing);
/* Evaluates every encounter of res (BILLING_ENCOUNTER_COLUMNS plus the claim
 * id) against cfg, asking intake and notes once each: claims and their hold
 * reasons (none: billable) in arena. 0, or -1 with call->err set. */
int billing_evaluate_rows(bc_call_t *call, const Beacon__Billing__BillingConfig *cfg,
                          bc_arena_t *arena, PGresult *res, int32_t today,
                          billing_claim_t **claims, billing_reasons_t **why);

/* A stored claim (BILLING_CLAIM_COLUMNS from billing.claims c). */
#define BILLING_CLAIM_COLUMNS                                                                      \
    "c.id::text, c.encounter_id::text, c.client_id::text, c.site_id::text, c.payer_id, "        \
    "c.status, c.frequency, coalesce(c.original_claim_id::text, ''), "                          \
    "array_to_json(c.hold_reasons)::text, to_char(c.service_date, 'YYYY-MM-DD'), c.minutes, "   \
    "c.place_of_service, c.procedure, array_to_json(c.modifiers)::text, c.units, "              \
    "c.charge_cents, array_to_json(c.diagnoses)::text, c.subscriber_last, c.subscriber_first, " \
    "coalesce(to_char(c.subscriber_dob, 'YYYY-MM-DD'), ''), c.subscriber_sex, "                 \
    "c.subscriber_address, c.subscriber_city, c.subscriber_state, c.subscriber_postal, "        \
    "coalesce(c.medicaid_id_enc, ''), c.medicaid_id_last4, coalesce(c.batch_id::text, ''), "    \
    "c.paid_cents, c.payer_claim_number, c.status_reason, "                                     \
    "to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "              \
    "to_char(c.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "              \
    "c.original_ref, coalesce(c.consent_id::text, '')"
enum {
    BC_ID, BC_ENCOUNTER, BC_CLIENT, BC_SITE, BC_PAYER, BC_STATUS, BC_FREQUENCY, BC_ORIGINAL,
    BC_REASONS, BC_DATE, BC_MINUTES, BC_POS, BC_PROCEDURE, BC_MODIFIERS, BC_UNITS, BC_CHARGE,
    BC_DIAGNOSES, BC_LAST, BC_FIRST, BC_DOB, BC_SEX, BC_ADDRESS, BC_CITY, BC_STATE, BC_POSTAL,
    BC_MEDICAID, BC_LAST4, BC_BATCH, BC_PAID, BC_PAYER_NUMBER, BC_STATUS_REASON, BC_CREATED,
    BC_UPDATED, BC_ORIGINAL_REF, BC_CONSENT
};
/* A stored claim for writing (the Medicaid ID opened), in call->arena. -1
 * with call->err set (DATA_LOSS when the sealed ID does not open). */
int billing_claim_from_row(bc_call_t *call, PGresult *res, int row, billing_claim_t *c);
/* BC_OK when the caller has the billing role, else fails the call (403). */
bc_code_t billing_need_role(bc_call_t *call);
/* The row of prepared statement name/sql ($1 the id, $2 the caller's agency)
 * for id, a UUID; NULL with call->err set: 400 for a malformed id, 404 ("no
 * <what> <id>") when there is none. */
PGresult *billing_row(bc_call_t *call, const char *name, const char *sql, const char *id,
                      const char *what);
/* A stored claim as the API shows it (last four of the Medicaid ID only). */
Beacon__Billing__Claim *billing_claim_message(bc_call_t *call, PGresult *res, int row);

#define BILLING_BATCH_COLUMNS                                                                      \
    "id::text, payer_id, to_char(from_date, 'YYYY-MM-DD'), to_char(to_date, 'YYYY-MM-DD'), "    \
    "control_number, claim_count, total_cents, held_count, parts, csv_parts, bytes, "           \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), created_by, "      \
    "replacement_count, void_count"
Beacon__Billing__Batch *billing_batch_from_row(bc_call_t *call, PGresult *res, int row);

/* ---- handlers ---- */
bc_code_t billing_config_set(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t billing_config_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t billing_config_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t billing_batch_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t billing_batch_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t billing_batch_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t billing_batch_file(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t billing_batch_csv(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t billing_claims_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t billing_claim_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t billing_claim_status(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t billing_claim_replace(bc_call_t *call, const ProtobufCMessage *in,
                                ProtobufCMessage **out);
bc_code_t billing_claim_void(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t billing_remittance_import(bc_call_t *call, const ProtobufCMessage *in,
                                    ProtobufCMessage **out);

#endif
