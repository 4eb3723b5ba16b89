/*  bc_audit: the tamper-evident audit log (HIPAA, 42 CFR Part 2).
 *
 *  Every read and write of a client's record, every export and disclosure,
 *  logins and break-glass access are recorded in audit.events
 *  (common/migrations/001_audit.sql) in the same transaction as the work: if
 *  the audit row cannot be written, the work is rolled back and the data is
 *  not returned (fail closed).
 *
 *  Chains, not one sequence. Each writer (a worker thread with its own
 *  connection) owns a chain, "<service>:<16 hex random>:<worker>", registered
 *  in audit.chains before its first event. The writer keeps the chain's head
 *  (seq, hash) in memory, so an append is one prepared INSERT and writers
 *  never contend on a shared row or sequence. Row n of a chain carries
 *  prev_hash = hash of row n-1 (32 zero bytes for row 1) and
 *
 *      hash = SHA-256( "beacon-audit-v1" 0x00
 *                      || prev_hash                      32 bytes
 *                      || str(chain) || i64(seq) || i64(at_us)
 *                      || str(request_id) || str(actor_staff_id)
 *                      || str(actor_api_key_id) || str(agency_id)
 *                      || str(site_id) || str(action) || str(resource_type)
 *                      || str(resource_id) || str(client_id) || str(purpose)
 *                      || str(outcome) || str(detail) )
 *
 *  where i64(x) is 8 bytes big-endian two's complement, str(NULL) is the one
 *  byte 0x00 and str(s) is 0x01, the byte length of s as 4 bytes big-endian,
 *  then the bytes of s. Every field has a fixed position and an explicit
 *  length, so no two different rows encode alike. at_us is the event time in
 *  microseconds since the Unix epoch, taken in C (not by the server) and
 *  stored exactly (timestamptz has microsecond resolution); the verifier
 *  reads it back as extract(epoch ...) * 1e6. Text is stored verbatim (ids as
 *  text, detail as json, which keeps its exact text), so the verifier
 *  recomputes every hash from the row alone.
 *
 *  Every N events or T milliseconds (whichever comes first, checked on
 *  append) the append also writes the new head into audit.anchors, in the
 *  same statement. Deleting the newest rows of a chain is then detected when
 *  an anchor covers them; bc_audit_chain_anchor() anchors the head at a
 *  clean shutdown so a stopped chain is fully covered.
 *
 *  Batches. bc_audit_append_batch writes n events as n consecutive rows in
 *  one statement (one round trip; outside a transaction it commits on its
 *  own, so the commit rides on the same round trip). Hashes and anchors are
 *  computed in C exactly as n appends would, so the rows, and what the
 *  verifier sees, do not depend on how events were grouped. The batch goes
 *  in whole or not at all, with the same out-of-step check and single retry
 *  as an append. The group-commit writer (bc_audit_writer.h) uses it.
 *
 *  What this detects and what it does not. Editing, deleting or reordering
 *  rows, and deleting a tail covered by an anchor, are reported as the first
 *  broken link of the chain. Someone able to write the tables as their owner
 *  and who knows this encoding can recompute a chain's tail and its anchors
 *  consistently: for that, copies of the anchors must live outside the
 *  database (anchors are logged at debug level; shipping them to a separate
 *  store is the deployment's job).
 *
 *  Transactions. bc_audit_append inserts inside the caller's current
 *  transaction. The chain keeps a committed head and a pending head; call
 *  bc_audit_commit(chain) after the caller's COMMIT succeeded and
 *  bc_audit_rollback(chain) after a ROLLBACK (or a failed COMMIT). These only
 *  keep the in-memory head exact: correctness never depends on them. Each
 *  INSERT checks that its predecessor row (seq - 1 with the expected hash)
 *  is visible and that seq is free (ON CONFLICT DO NOTHING); when that fails
 *  (a rolled-back transaction nobody reported, a commit whose outcome was
 *  unknown) the chain re-reads its head from the table and retries once, in
 *  the same transaction. So the chain never gets a gap or a fork from the
 *  application side, whatever happened to earlier transactions (a ROLLBACK
 *  TO SAVEPOINT that undid an append included); forgetting to report costs
 *  one extra round trip on the next append, never a broken chain.
 *
 *  Threads: a chain is used by one thread at a time, with one connection at
 *  a time, like bc_db_t.
 */
#ifndef BC_AUDIT_H
#define BC_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_db.h"
#include "bc_error.h"

#define BC_AUDIT_HASH_LEN 32
/* Longest chain id: service (64) + ':' + 16 hex + ':' + worker. */
#define BC_AUDIT_CHAIN_MAX 96
/* Default anchor schedule. */
#define BC_AUDIT_ANCHOR_EVENTS 1000
#define BC_AUDIT_ANCHOR_MS 10000
/* Most events in one bc_audit_append_batch. */
#define BC_AUDIT_BATCH_MAX 1024

/* Actions (the column is any [a-z][a-z0-9_]{0,31}; these are the ones the
 * services use). */
#define BC_AUDIT_READ "read"
#define BC_AUDIT_CREATE "create"
#define BC_AUDIT_UPDATE "update"
#define BC_AUDIT_DELETE "delete"
#define BC_AUDIT_EXPORT "export"
#define BC_AUDIT_DISCLOSE "disclose"
#define BC_AUDIT_LOGIN "login"
#define BC_AUDIT_LOGOUT "logout"
#define BC_AUDIT_LOGIN_FAILED "login_failed"
#define BC_AUDIT_BREAK_GLASS "break_glass"
/* Outcomes (exactly these three). */
#define BC_AUDIT_OK "ok"
#define BC_AUDIT_DENIED "denied"
#define BC_AUDIT_ERROR "error"

/* One audited action. Strings are borrowed for the duration of the call.
 * NULL and "" both mean "none" and are stored as SQL NULL. All text must be
 * valid UTF-8. Limits (bytes): ids 128, resource_type 64, purpose 512,
 * detail 8192. */
typedef struct {
    int64_t at_us;                /* microseconds since the epoch; 0 = now */
    const char *request_id;       /* the HTTP request id */
    const char *actor_staff_id;   /* who: a staff member ... */
    const char *actor_api_key_id; /* ... or an integration's API key */
    const char *agency_id;
    const char *site_id;       /* the site the access was made under */
    const char *action;        /* required: BC_AUDIT_READ, ... */
    const char *resource_type; /* "client", "note", "referral", ... */
    const char *resource_id;
    const char *client_id; /* whose record (for "who accessed X") */
    const char *purpose;   /* treatment, payment, break-glass reason, ... */
    const char *outcome;   /* required: BC_AUDIT_OK, _DENIED, _ERROR */
    const char *detail;    /* JSON text (an object), or NULL */
} bc_audit_event_t;

typedef struct bc_audit_chain bc_audit_chain_t;

/* Starts a new chain for (service, worker) and registers it in audit.chains
 * (its own statement: db must not be in a transaction). service is
 * [a-z0-9_-], 1..64 bytes; worker >= 0. Returns the chain (caller destroys)
 * or NULL with err set (INVALID_ARGUMENT, or the database error). */
bc_audit_chain_t *bc_audit_chain_new(bc_db_t *db, const char *service, int worker, bc_error_t *err);
/* Frees the chain (writes nothing); *self is set to NULL. NULL allowed. */
void bc_audit_chain_destroy(bc_audit_chain_t **self);
/* Anchor every `events` appends (>= 1) or when `ms` milliseconds (0 = never
 * by time) have passed since the last anchor, whichever comes first. */
void bc_audit_chain_set_anchor(bc_audit_chain_t *self, int64_t events, int64_t ms);
/* The chain id (owned by the chain). */
const char *bc_audit_chain_id(const bc_audit_chain_t *self);
/* The committed head's seq (0 before the first event) and, if hash is not
 * NULL, its hash. */
int64_t bc_audit_chain_seq(const bc_audit_chain_t *self, uint8_t hash[BC_AUDIT_HASH_LEN]);

/* Appends ev to the chain inside db's current transaction (outside one, the
 * row commits on its own and the head advances at once). One round trip;
 * when an anchor is due, the same statement writes it. Returns 0, or -1 with
 * err set: INVALID_ARGUMENT for a bad event (nothing sent), or the database
 * error; then the caller's transaction must be rolled back and the work not
 * returned. */
int bc_audit_append(bc_audit_chain_t *self, bc_db_t *db, const bc_audit_event_t *ev,
                    bc_error_t *err);
/* Appends evs[0..n) to the chain as consecutive rows, in one statement and
 * so one round trip (outside a transaction that includes the commit: the
 * rows commit on their own and the head advances at once; inside one, they
 * are pending like appends). The rows, their hashes and the anchors due
 * among them are exactly those of n calls to bc_audit_append; the batch goes
 * in whole or not at all. Every event is checked first: a bad one fails the
 * batch with INVALID_ARGUMENT naming the field (detail: which event) and
 * nothing is sent. When the head is out of step the chain re-reads it and
 * retries once, as bc_audit_append does. n is 0 (nothing to do) to
 * BC_AUDIT_BATCH_MAX. Returns 0, or -1 with err set; after a database error
 * nothing of the batch was written and a caller's transaction must be
 * rolled back. */
int bc_audit_append_batch(bc_audit_chain_t *self, bc_db_t *db, const bc_audit_event_t *evs,
                          size_t n, bc_error_t *err);
/* Checks ev as bc_audit_append would, without writing: 0 or -1 with err
 * (INVALID_ARGUMENT naming the field). */
int bc_audit_event_check(const bc_audit_event_t *ev, bc_error_t *err);
/* Tells the chain that the transaction holding its pending appends
 * committed, or was rolled back (or its COMMIT failed). */
void bc_audit_commit(bc_audit_chain_t *self);
void bc_audit_rollback(bc_audit_chain_t *self);
/* Writes an anchor for the committed head now if it is not anchored yet
 * (call at clean shutdown, or from an idle timer). Outside a transaction it
 * commits on its own. Returns 0 or -1 with err set. */
int bc_audit_chain_anchor(bc_audit_chain_t *self, bc_db_t *db, bc_error_t *err);

/* The row hash of the encoding above into out. Strings as in
 * bc_audit_event_t ("" = NULL); ev->at_us is used as given. */
void bc_audit_hash(const uint8_t prev[BC_AUDIT_HASH_LEN], const char *chain, int64_t seq,
                   const bc_audit_event_t *ev, uint8_t out[BC_AUDIT_HASH_LEN]);

/* ---- Verification ------------------------------------------------------- */

typedef enum {
    BC_AUDIT_BREAK_MISSING = 1,  /* a seq is missing: a row was deleted */
    BC_AUDIT_BREAK_LINK,         /* prev_hash is not the previous row's hash: reordered */
    BC_AUDIT_BREAK_HASH,         /* the row's content does not give its hash: edited */
    BC_AUDIT_BREAK_ANCHOR,       /* an anchor's hash differs from the row it names */
    BC_AUDIT_BREAK_TRUNCATED,    /* an anchor names a seq past the chain's end */
    BC_AUDIT_BREAK_UNREGISTERED, /* rows or anchors of a chain not in audit.chains */
} bc_audit_break_kind_t;

/* The first broken link of one chain. */
typedef struct {
    char chain[BC_AUDIT_CHAIN_MAX * 2 + 8]; /* truncated if a forged id is longer */
    int64_t seq; /* the first row that is wrong or missing (0: the chain itself) */
    bc_audit_break_kind_t kind;
    char detail[200];
} bc_audit_break_t;

#define BC_AUDIT_REPORT_MAX_BREAKS 10000

typedef struct {
    int64_t chains;           /* chains seen: registered, or with rows or anchors */
    int64_t events;           /* event rows read */
    int64_t anchors;          /* anchor rows read */
    int64_t broken;           /* chains with a broken link */
    bc_audit_break_t *breaks; /* the first BC_AUDIT_REPORT_MAX_BREAKS of them, in
                                 chain order; owned by the report */
    size_t nbreaks;
} bc_audit_report_t;

/* Verifies every chain whose id starts with chain_prefix (NULL or "" = all)
 * from one consistent snapshot (a REPEATABLE READ, READ ONLY transaction;
 * db must not be in a transaction). Streams events and anchors in (chain,
 * seq) order through cursors, recomputes each hash and records the first
 * broken link of each chain. A registered chain without rows is intact.
 * Returns 0 when the check ran (report->broken says whether anything is
 * wrong) or -1 with err set when it could not; report is reset first and
 * must be released with bc_audit_report_clear either way. */
int bc_audit_verify(bc_db_t *db, const char *chain_prefix, bc_audit_report_t *report,
                    bc_error_t *err);
/* Frees the breaks and zeroes the report. */
void bc_audit_report_clear(bc_audit_report_t *report);
/* "missing", "link", "hash", "anchor", "truncated", "unregistered". */
const char *bc_audit_break_name(bc_audit_break_kind_t kind);

#endif
