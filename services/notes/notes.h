/*  notes: handlers of the notes service, one file per resource
 *  (templates.c, notes.c: notes and addenda, review.c: supervision, reviews
 *  and overdue documentation), the sealing of note text (crypt.c) and the
 *  pure logic they share (note_logic.c). */
#ifndef NOTES_H
#define NOTES_H

#include <stdbool.h>

#include "bc_service.h"
#include "note_logic.h"
#include "notes.pb-c.h"

extern const bc_service_def_t notes_service;

/* What the service loads at start (call->state). */
typedef struct {
    struct bc_keyring *keys;
    bc_arena_t *arena;           /* the shipped templates' strings */
    note_template_t *shipped;    /* GIRP, DAP, SOAP, ... from templates_dir */
    size_t nshipped;
    bool plaintext;              /* bench_plaintext_notes: benchmarks only */
    struct notes_rewrap *rewrap; /* re-encryption after rotation */
    struct notes_overdue *overdue; /* note.overdue by the clock */
} notes_state_t;

int notes_start(const bc_config_t *config, void **state, bc_error_t *err);
void notes_stop(void *state);

/* ---- crypt.c: note text at rest ------------------------------------------ */

/* Seals plaintext (a note body, an addendum, review comments) for row
 * row_id of client_id; what names the column ("body", "addendum",
 * "comments"). The associated data binds the envelope to the column, the
 * row, the client and the key id. The envelope is in call->arena; NULL with
 * call->err set. */
char *notes_seal(bc_call_t *call, const char *what, const char *row_id, const char *client_id,
                 const char *plaintext);
/* Opens an envelope made by notes_seal with the same what, row and client.
 * The plaintext is in call->arena (the libcrypto copy is wiped). NULL when
 * it does not authenticate (tampered, moved, unknown key): the caller
 * reports the record as damaged; call->err is set (DATA_LOSS). */
char *notes_open(bc_call_t *call, const char *what, const char *row_id, const char *client_id,
                 const char *envelope);

/* Re-seals an envelope under the keyring's active key (the associated data
 * then names the new key id), wiping the plaintext in between. *out is
 * malloc'd (free()). 0, or -1 with err (DATA_LOSS when it does not open). */
int notes_rewrap_value(const struct bc_keyring *keys, const char *what, const char *row_id,
                       const char *client_id, const char *envelope, char **out, bc_error_t *err);

/* ---- notes.c: a note's row and body, shared with signing.c ----------------- */

/* The columns of a note as notes_from_row reads them (n: notes.notes). */
#define NOTES_TIME(col) "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"
#define NOTES_COLUMNS                                                                                  \
    "n.id::text, n.client_id::text, n.site_id::text, n.author_id::text, "                          \
    "coalesce(n.encounter_id::text, ''), coalesce(n.group_occurrence_id::text, ''), n.kind, "    \
    "coalesce(n.contact_kind, ''), n.template_id, n.category, n.part2, "                          \
    "array_to_string(n.tags, ','), n.status, n.review_status, n.version, " NOTES_TIME("n.occurred_at") \
    ", " NOTES_TIME("n.created_at") ", " NOTES_TIME("n.updated_at") ", coalesce(n.signed_by::text, ''), " \
    NOTES_TIME("n.signed_at") ", coalesce(n.attestation, ''), coalesce(n.content_hash, ''), "         \
    "n.late_entry, coalesce(n.cosigned_by::text, ''), " NOTES_TIME("n.cosigned_at") ", n.body_enc"
#define NOTES_NCOLUMNS 26

Beacon__Notes__Note *notes_from_row(bc_call_t *call, PGresult *res, int row);
/* Puts the sections on the note (arena strings). */
void notes_set_sections(bc_call_t *call, Beacon__Notes__Note *n, const note_section_t *s,
                        size_t count);
/* Opens the sealed body into sections; false (call->err set) when it is
 * damaged. */
bool notes_open_body(bc_call_t *call, const Beacon__Notes__Note *n, const char *body_enc,
                     note_section_t **s, size_t *count);
/* Tags (up to 20 of 1-40 a-z 0-9 _ -) as a text[] literal, or NULL with
 * call->err set. */
const char *notes_tags(bc_call_t *call, char *const *tags, size_t n);
/* The request's sections checked against template t, in template order,
 * into out (t->nsections entries; signing: required ones filled). */
bc_code_t notes_sections(bc_call_t *call, const note_template_t *t,
                         Beacon__Notes__Section *const *in, size_t n, bool signing,
                         note_section_t *out);

/* ---- overdue.c: note.overdue announced by the clock ------------------------ */

typedef struct notes_overdue notes_overdue_t;
/* Starts the scanner (its own connection). NULL with err set when the
 * thread cannot start. */
notes_overdue_t *notes_overdue_start(const bc_config_t *config, bc_error_t *err);
/* Stops the scanner and frees; NULL allowed. */
void notes_overdue_stop(notes_overdue_t *self);

/* ---- rewrap.c: background re-encryption after a key rotation ---------------- */

typedef struct notes_rewrap notes_rewrap_t;
/* Starts the thread (its own connection) unless rewrap_scan_seconds is 0.
 * keys must outlive it. NULL with err set when the thread cannot start. */
notes_rewrap_t *notes_rewrap_start(const bc_config_t *config, const struct bc_keyring *keys,
                                   bc_error_t *err);
/* Stops the thread and frees; NULL allowed. */
void notes_rewrap_stop(notes_rewrap_t *self);

/* ---- templates.c ------------------------------------------------------------ */

/* The template id (shipped, or the caller's agency's) into *t (strings in
 * call->arena for an agency's). BC_OK, or NOT_FOUND / a database error. */
bc_code_t notes_template(bc_call_t *call, const char *id, note_template_t *t);

/* ---- notes.c: shared with review.c ------------------------------------------ */

/* The note in the caller's scope (NOT_FOUND otherwise), FOR UPDATE when
 * lock; its sealed body in *body_enc (call->arena). Text not opened. */
Beacon__Notes__Note *notes_load(bc_call_t *call, const char *id, bool lock, char **body_enc);
/* Opens body_enc into n->sections (n->damaged when it does not
 * authenticate: no text then) and reads its addenda and reviews. */
bc_code_t notes_fill(bc_call_t *call, Beacon__Notes__Note *n, const char *body_enc);
/* The setting's value. */
int notes_setting(const bc_call_t *call, const char *name);
/* The audit event of a note (resource "note", the client's record). */
bc_audit_event_t notes_event(const Beacon__Notes__Note *n, const char *action);
/* Writes one of the service's events (agency filled in). -1, call->err set. */
int notes_emit(bc_call_t *call, const char *topic, Beacon__Notes__NoteEvent *ev);
/* Repeated strings copied for a message. */
char **notes_strings(bc_call_t *call, char *const *in, size_t n);

/* ---- handlers ------------------------------------------------------------------- */
bc_code_t templates_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t templates_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t notes_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t notes_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t notes_save_draft(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t notes_sign(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t notes_add_addendum(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t notes_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t notes_create_group(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t review_queue(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t review_note(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t review_set_supervision(bc_call_t *call, const ProtobufCMessage *in,
                                 ProtobufCMessage **out);
bc_code_t review_overdue(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* billing.c: BillingNoteStatus (signed / co-signed per encounter, no text). */
bc_code_t billing_note_status(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

#endif
