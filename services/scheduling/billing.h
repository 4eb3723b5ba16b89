/*  billing: Medicaid billing of peer support, served by the scheduling
 *  service (which owns encounters) from the schema billing.
 *
 *  billing_rules.c  pure rules: units from minutes, X12-safe text, NPI and
 *                   other identifier checks (unit-tested without a database)
 *  billing_x12.c    the X12 837P 005010X222A1 writer, streamed in parts
 *  billing_config.c per-payer configuration (SetBillingConfig, ...)
 *  billing_batch.c  claims built from encounters and written as a batch
 *  billing_claims.c claims, status, corrections, remittance, batch files
 */
#ifndef BILLING_H
#define BILLING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "billing.pb-c.h"

/* ---- billing_rules.c --------------------------------------------------- */

/* How minutes become units (configuration, not code: states differ). */
typedef struct {
    int unit_minutes;           /* one unit per this many minutes (15) */
    int first_unit_min_minutes; /* fewer minutes than this bill nothing (8) */
    const char *rounding;       /* the part-unit after whole units: "nearest" (half or
                                   more counts), "down", "up" */
} billing_unit_rule_t;

/* Units for an encounter of minutes: whole units of unit_minutes, the
 * remainder rounded as the rule says; at least one unit once
 * first_unit_min_minutes is reached; 0 below it. With unit 15, first 8 and
 * nearest this is the CMS "8-minute rule": 8-22 minutes 1 unit, 23-37 2. */
int billing_units(const billing_unit_rule_t *rule, int minutes);

/* Copies in to out (cap bytes, NUL included) as X12 data: ASCII letters
 * upper-cased; digits, space and & ' ( ) + , - . / ; ? = # kept; the
 * separators * : ~ ^, control characters and anything else become a space;
 * runs of spaces collapse; trimmed. X12 has no escaping, so this is the only
 * safe way. Returns the length written. */
size_t billing_x12_text(const char *in, char *out, size_t cap);
/* The same keeping only letters and digits (identifiers, codes). */
size_t billing_x12_id(const char *in, char *out, size_t cap);

/* True for a 10-digit NPI whose check digit is right (Luhn over 80840 and
 * the first nine digits). */
bool billing_npi_valid(const char *npi);
/* ICD-10-CM code without the dot ("F11.20" -> "F1120") into out (8 bytes);
 * false when it is not a code. */
bool billing_icd10_undot(const char *code, char out[8]);
/* True when code starts with one of the prefixes (an empty list: true). */
bool billing_dx_matches(const char *code_undotted, char *const *prefixes, size_t n);
/* Formats cents as an X12 amount ("12.5", "40", "0.25") into out (32 bytes). */
void billing_amount(int64_t cents, char out[32]);

/* ---- billing_x12.c ------------------------------------------------------ */

/* The envelope and the sender's side, the same for every claim of a file. */
typedef struct {
    int64_t control_number; /* ISA13 and GS06, 1..999999999 */
    const char *date8;      /* CCYYMMDD of creation */
    const char *time4;      /* HHMM */
    bool test;              /* ISA15 T, else P */
    const char *reference;  /* BHT03: the batch id without dashes */
    const char *submitter_id, *submitter_name, *contact_name, *contact_phone;
    const char *receiver_id, *receiver_name;
    const char *provider_name, *provider_npi, *provider_taxonomy, *provider_tax_id;
    const char *provider_line1, *provider_line2, *provider_city, *provider_state,
        *provider_postal;
    const char *payer_name, *payer_id;
    /* 2310D supervising provider (NM1*DQ), or NULL last name for none. */
    const char *supervising_last, *supervising_first, *supervising_npi;
    int claims_per_transaction; /* a new ST-SE after this many claims (5000) */
} billing_x12_envelope_t;

/* One claim of one service line (one encounter). Text fields X12-safe
 * already (billing_x12_text); dates CCYYMMDD. */
typedef struct {
    const char *claim_id;   /* CLM01, at most 38 characters */
    const char *frequency;  /* 1, 7, 8 */
    const char *original_ref; /* REF*F8 for 7 and 8 */
    const char *last, *first, *medicaid_id, *address, *city, *state, *postal, *dob, *sex;
    const char *place_of_service;
    const char *diagnoses[12]; /* without the dot */
    int n_diagnoses;
    const char *procedure;
    const char *modifiers[4];
    int n_modifiers;
    int units;
    int64_t charge_cents;
    const char *service_date;
} billing_x12_claim_t;

typedef struct billing_x12 billing_x12_t;
/* A writer whose text accumulates in memory until taken (billing_x12_take);
 * the envelope's strings must outlive it. */
billing_x12_t *billing_x12_new(const billing_x12_envelope_t *env);
void billing_x12_destroy(billing_x12_t **self);
/* Appends one claim (opening ISA/GS/ST and the provider loop as needed). */
void billing_x12_claim(billing_x12_t *self, const billing_x12_claim_t *c);
/* Closes the open transaction set, the group and the interchange. */
void billing_x12_finish(billing_x12_t *self);
/* The text written since the last take; *len its length. The pointer is
 * valid until the next call on the writer. */
const char *billing_x12_pending(const billing_x12_t *self, size_t *len);
/* Forgets the pending text (after it was stored). */
void billing_x12_take(billing_x12_t *self);
/* Claims written so far. */
int64_t billing_x12_claims(const billing_x12_t *self);

#endif
