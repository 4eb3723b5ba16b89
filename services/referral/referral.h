/*  The referral service's definition (service.c), the HSDS 3.0 model of its
 *  directory (hsds.c) and its CSV form (hsds_csv.c), and its handlers:
 *  directory search (directory.c), import (import.c, with zip packages
 *  opened by package.c), export (export.c), referrals (referrals.c) and the
 *  partner side of referrals with the consent gate (partner.c). */
#ifndef REFERRAL_H
#define REFERRAL_H

#include <stdbool.h>
#include <stddef.h>

#include "bc_service.h"
#include "bc_util.h"
#include "referral.pb-c.h"

extern const bc_service_def_t referral_service;

/* ---- the HSDS 3.0 tables (hsds.c) ---------------------------------------------- */

typedef enum {
    HSDS_TEXT,
    HSDS_UUID,
    HSDS_INT,
    HSDS_NUM,
    HSDS_DATE,
    HSDS_TIME,
    HSDS_TIMESTAMP,
    HSDS_LATITUDE,
    HSDS_LONGITUDE,
} hsds_type_t;

typedef struct {
    const char *name; /* the HSDS field name and the column's */
    hsds_type_t type;
    bool required;
    const char *fallback;       /* the value when none is given, or NULL */
    const char *const *allowed; /* NULL-terminated list of the values allowed, or NULL */
} hsds_col_t;

typedef struct {
    const char *entity; /* HSDS name of one record: "service" */
    const char *table;  /* the table in schema referral: "services" */
    const hsds_col_t *cols; /* cols[0] is "id" */
    size_t ncols;
} hsds_table_t;

#define HSDS_NTABLES 12
#define HSDS_MAX_COLS 32
/* In the order a dataset is best written (what is referred to comes first). */
extern const hsds_table_t hsds_tables[HSDS_NTABLES];

/* The table of an entity ("service") or table name ("services"), or NULL. */
const hsds_table_t *hsds_table(const char *entity);
/* The index of column name in t, or -1. */
int hsds_column(const hsds_table_t *t, const char *name);

/* One record: a text value per column of its table (NULL: none). The values
 * belong to the caller (the call's arena); hsds_write may lower UUIDs in place. */
typedef struct {
    char *values[HSDS_MAX_COLS];
} hsds_row_t;

typedef enum {
    HSDS_CREATED,
    HSDS_UPDATED,
    HSDS_UNCHANGED,
    HSDS_REFUSED,
    HSDS_FAILED,
} hsds_outcome_t;

/* Checks row against its table and brings its values to one spelling (UUIDs
 * lowered, times with seconds; new strings from arena). On the first fault
 * fills field and message (size bytes) and returns false. */
bool hsds_check(bc_arena_t *arena, const hsds_table_t *t, hsds_row_t *row, const char **field,
                char *message, size_t size);

/* Writes row, checked by hsds_check, into the caller's agency inside call->db's open
 * transaction, in a savepoint of its own. HSDS_REFUSED: the record is bad
 * (field and message say why; message has size bytes) and nothing of it was
 * written; the transaction goes on. HSDS_FAILED: the database failed
 * (call->err is set): the import must stop and roll back. */
hsds_outcome_t hsds_write(bc_call_t *call, const hsds_table_t *t, hsds_row_t *row,
                          const char **field, char *message, size_t size);

/* The table column c of t refers to (a foreign key within the agency, as
 * migration 003 has them), or NULL. */
const hsds_table_t *hsds_refers(const hsds_table_t *t, size_t c);
/* The PostgreSQL type a column of this type is written as. */
const char *hsds_sql_type(hsds_type_t type);
/* An optional reference to another record (not the record's own id): a
 * record arriving without it keeps the stored one. */
bool hsds_col_merged(const hsds_col_t *col);

/* ---- many records of one table at once (hsds_batch.c) ------------------------- */

/* Writes rows[0..n) (each its t->ncols values) of table t (each checked by hsds_check; no id twice) with one
 * statement in a savepoint of its own, in call->db's open transaction: the same
 * upsert as hsds_write, outcomes[i] saying what became of rows[i]. 0: written.
 * 1: the database refused the statement and nothing of it was written (the
 * transaction goes on): write the rows one by one with hsds_write to learn which
 * is at fault. -1: the database failed (call->err is set). */
int hsds_write_many(bc_call_t *call, const hsds_table_t *t, char **const *rows, size_t n,
                    hsds_outcome_t *outcomes);
/* A PostgreSQL array literal being built: each value quoted, NULL as NULL. */
typedef struct {
    char *p;
    size_t len, cap;
} hsds_array_t;
void hsds_array_add(hsds_array_t *a, const char *value);
/* The literal ("{}" when nothing was added), in the arena. */
char *hsds_array_text(bc_arena_t *arena, const hsds_array_t *a);
void hsds_array_free(hsds_array_t *a);

/* Which of ids[0..n) (UUIDs in lower case) the agency's table t holds: *found
 * (in the arena, *nfound of them). 0, or -1 with call->err set. */
int hsds_stored(bc_call_t *call, const hsds_table_t *t, const char *const *ids, size_t n,
                char ***found, size_t *nfound);

/* ---- the distance search's table (search_rows.c, migration 007) ----------------- */

/* A map from text keys to slot numbers (open addressing; the keys must outlive it). */
typedef struct {
    const char **keys;
    int *values;
    size_t cap, n;
} import_map_t;
/* The value of key, or -1. */
int import_map_get(const import_map_t *self, const char *key);
/* Sets key to value (adds it, or replaces its value). */
void import_map_put(import_map_t *self, const char *key, int value);
void import_map_clear(import_map_t *self);

/* What an import changed that the search rows of services depend on, kept
 * until search_rows_refresh:
 * - the stored services it changed or linked something to, and the stored
 *   places and category terms it changed (their services are looked up), as
 *   lists of ids, each id once;
 * - the services it created, whose rows are written from what the import
 *   itself linked to them (only records of the same import can link to a
 *   created service): their places, category terms and language codes and
 *   names, as pairs of lists. A place or term the import created is not
 *   listed: only records of the same import can link to it, and those list
 *   their service.
 * The map keys point into the rows noted. */
enum {
    SEARCH_STORED,     /* stored services */
    SEARCH_PLACES,     /* stored places */
    SEARCH_TERMS,      /* stored category terms */
    SEARCH_AT_SERVICE, /* created service (then its place) */
    SEARCH_AT_PLACE,
    SEARCH_TERM_SERVICE, /* created service (then a term it is attributed) */
    SEARCH_TERM,
    SEARCH_LANG_SERVICE, /* created service (then a language code or name) */
    SEARCH_LANG,
    SEARCH_LISTS
};
typedef struct {
    hsds_array_t lists[SEARCH_LISTS];
    import_map_t seen[3];   /* what the first three lists hold */
    import_map_t created;   /* the services the import created */
} search_touched_t;

/* Notes that row of table t was written: created (true) or changed. Within
 * an import, services are noted before what links to them. */
void search_rows_note(search_touched_t *self, const hsds_table_t *t, const hsds_row_t *row,
                      bool created);
/* Rewrites the search rows of every service noted, in call->db's open
 * transaction, and forgets the notes; -1 with err set when the database fails. */
int search_rows_refresh(bc_call_t *call, search_touched_t *self, bc_error_t *err);
/* Forgets the notes without writing. */
void search_rows_forget(search_touched_t *self);

/* ---- an import's records, checked then written set-wise (import_write.c) ---------- */


typedef enum {
    IMPORT_QUEUED,     /* checked: to be written */
    IMPORT_REPEAT,     /* met before saying the same (links to its holders apart) */
    IMPORT_REFUSED,    /* reported */
    IMPORT_KEPT_FIRST, /* met before saying something else: reported, the first kept */
    IMPORT_SKIPPED,    /* nested in a record refused once the files were read */
    IMPORT_CREATED,
    IMPORT_UPDATED,
    IMPORT_UNCHANGED,
} import_state_t;

/* One record met in the files, or one problem that is no record (a file that
 * cannot be read, a collection that is not an array), in the order met. */
typedef struct {
    const hsds_table_t *t; /* NULL: a problem that is no record */
    char **values;         /* t->ncols values, checked by hsds_check (in the arena) */
    const char *key;       /* "<table index>:<id>" */
    const char *file, *at, *field, *message;
    int line;
    int holder;   /* the slot of the record whose collection holds this one, or -1 */
    int first;    /* IMPORT_REPEAT: the slot of the same record met first */
    int nested;   /* records nested in this refused one, not attempted */
    bool item;    /* an element of its holder's collection (skipped with it) */
    bool adds;    /* IMPORT_REPEAT: brings a link to a holder not met before */
    import_state_t walked; /* what reading the files found */
    import_state_t state;  /* what became of it */
} import_slot_t;

typedef struct {
    import_slot_t *slots;
    size_t n, cap;
} import_plan_t;

/* A new slot at the end of plan (zeroed but holder = first = -1). */
import_slot_t *import_plan_add(import_plan_t *plan);
void import_plan_free(import_plan_t *plan);

/* Writes the records of plan in call->db's open transaction: checks each
 * reference against the records taken before it and those stored (refusing
 * dangling ones), writes each table in chunks of one statement (one by one
 * where the database refuses a chunk), notes in touched what the search rows
 * depend on, and fills r (counts and problems, at most max_problems). 0, or -1
 * with call->err set when the database failed. */
int import_write(bc_call_t *call, import_plan_t *plan, search_touched_t *touched,
                 Beacon__Referral__ImportDirectoryReply *r, size_t max_problems);

/* ---- CSV (hsds_csv.c) ----------------------------------------------------------- */

/* Called for each row of a CSV file with its fields (NULL for an empty one;
 * the strings are in the arena) and the line it starts on; -1 stops reading. */
typedef int (*hsds_csv_row_fn)(void *arg, char **fields, size_t n, int line);
/* Reads RFC 4180 CSV text (a UTF-8 byte order mark is skipped; blank lines are
 * not rows). -1 when the text is not valid CSV (*bad_line: where, else 0) or fn
 * stopped; rows before the fault were handed to fn. */
int hsds_csv_read(bc_arena_t *arena, const char *text, size_t len, hsds_csv_row_fn fn, void *arg,
                  int *bad_line);
/* value as one CSV field (quoted when it must be; NULL as empty), in the arena. */
char *hsds_csv_field(bc_arena_t *arena, const char *value);

/* ---- handlers ---------------------------------------------------------------------- */

/* GET /api/v1/directory/services: the agency's directory filtered by keyword, taxonomy
 * term, distance, age and language, nearest first when a point is given; not audited
 * (no PHI). */
bc_code_t directory_search(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* POST /api/v1/directory/import: HSDS 3.0 JSON files into the agency's directory
 * (agency admins); a bad record is reported with its file, place and field and the
 * rest are taken; importing the same files again changes nothing. Audited. */
bc_code_t directory_import(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* The files of an import with every zip archive among them replaced by the plain files
 * it holds ("pkg.zip/services.csv"), at most max in all (package.c). BC_OK, or a
 * failure of call: an unreadable archive, links or devices in it, more than max
 * files or too many bytes unpacked. */
bc_code_t directory_unpack(bc_call_t *call, Beacon__Referral__ImportFile *const *files, size_t n,
                           size_t max, Beacon__Referral__ImportFile ***out, size_t *nout);

/* GET /api/v1/directory/export: the agency's directory as an HSDS 3.0 tabular data
 * package (a zip of datapackage.json and one CSV file per table; export.c). Audited. */
bc_code_t directory_export(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* ---- referrals (referrals.c) ---------------------------------------------------- */

/* The FHIR Task lifecycle: whether status is one of its nine, whether it
 * closes the referral (rejected, completed, cancelled, failed), and whether a
 * referral that is `from` may become `to`. */
bool referral_status_known(const char *status);
bool referral_status_terminal(const char *status);
bool referral_move_allowed(const char *from, const char *to);

/* POST /api/v1/referrals: a client in the caller's scope to a service of the directory
 * or an external resource; starts requested. Audited, referral.created. */
bc_code_t referrals_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
/* GET /api/v1/referrals/{id}: with its changes, oldest first. Audited. */
bc_code_t referrals_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
/* GET /api/v1/referrals: newest first (client_id, status, referred_by). Each audited. */
bc_code_t referrals_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
/* POST /api/v1/referrals/{id}/status: one step of the lifecycle; a closing status needs an
 * outcome. Audited, referral.status_changed (and referral.closed). */
bc_code_t referrals_change_status(bc_call_t *call, const ProtobufCMessage *in,
                                  ProtobufCMessage **out);
/* Who acts: the caller's staff id, or its API key's id (an integration). */
const char *referral_actor(const bc_call_t *call);
/* GET /api/v1/referral-follow-ups: live referrals past their follow-up date (one's own;
 * supervisors anyone's at their sites) and loop-closure times. Each listed read audited. */
bc_code_t referrals_follow_ups(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* ---- partners (partner.c) -------------------------------------------------------- */

/* The referral service's own state: how it reaches intake for consent checks. */
int referral_start(const bc_config_t *config, void **state, bc_error_t *err);
void referral_stop(void *state);

/* ---- upkeep (upkeep.c) ----------------------------------------------------------- */

/* A background thread that vacuums referral.service_search when imports have
 * written many new pages of it, connected as owner_url (the tables' owner);
 * NULL (nothing done) when owner_url is empty. */
typedef struct upkeep upkeep_t;
upkeep_t *upkeep_new(const char *owner_url);
/* Asks for a round soon (an import committed); NULL allowed. */
void upkeep_nudge(upkeep_t *self);
/* Stops the thread (after its round in progress); *self is set to NULL. */
void upkeep_destroy(upkeep_t **self);
/* The service's upkeep (its state's), or NULL. */
upkeep_t *referral_upkeep(const bc_call_t *call);
extern const bc_setting_t referral_settings[];

/* 42 CFR 2.32: the notice that goes with every disclosure to a partner. */
extern const char referral_part2_notice[];

/* GET /api/v1/partner/referrals: the partner organisation's referrals, newest first,
 * de-identified (no client, reason or notes). Each audited. */
bc_code_t partner_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
/* GET /api/v1/partner/referrals/{id}: one referral as its partner may see it now: after
 * intake's consent check (an RPC, every time), identified with an active consent for
 * the organisation and the purpose referral, else de-identified; the Part 2 notice
 * always. Audited as a disclosure (who, client, consent). 503 when intake cannot
 * answer: nothing is disclosed. */
bc_code_t partner_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
/* POST /api/v1/partner/referrals/{id}/status: the partner receives, accepts, declines
 * (rejected, with an outcome), starts, holds or completes (with an outcome) a referral
 * sent to it. Attributed, audited, announced; answered de-identified. */
bc_code_t partner_change_status(bc_call_t *call, const ProtobufCMessage *in,
                                ProtobufCMessage **out);

#endif
