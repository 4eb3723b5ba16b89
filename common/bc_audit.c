/*  bc_audit: the tamper-evident audit log: writer chains.
 *
 *  The design (chains per writer, the hash encoding, the transaction
 *  contract) is in bc_audit.h; the verifier is in bc_audit_verify.c; the tables are in
 *  common/migrations/001_audit.sql.
 *
 *  Writer. A chain holds two heads: `head` (what is known committed) and
 *  `pend` (including appends of the caller's open transaction). An append
 *  hashes from pend and sends one prepared statement:
 *
 *      INSERT INTO audit.events ... SELECT ... WHERE seq = 1 OR EXISTS
 *        (row seq - 1 of this chain with hash = prev_hash)
 *      ON CONFLICT (chain, seq) DO NOTHING
 *
 *  (inside a data-modifying WITH that also inserts the anchor when one is
 *  due). It inserts nothing, without raising an error, when the in-memory
 *  head is out of step with the table in either direction; the chain then
 *  reads the head back (one query) and retries once. An error would abort
 *  the caller's transaction; "nothing inserted" does not, which is what
 *  makes the retry possible. The predecessor probe is one primary-key
 *  lookup of a page the previous append just touched.
 *
 *  Batches. bc_audit_append_batch sends n rows as one INSERT ... SELECT
 *  FROM unnest() over parallel arrays (one text array literal per column,
 *  built here with every value quoted and escaped; still parameters, never
 *  SQL text), the hashes precomputed in C from the pending head. Only the
 *  first row is checked against the table, in its own INSERT with ON
 *  CONFLICT DO NOTHING; the others are inserted by a second INSERT in the
 *  same statement only if the first went in, and the due anchors by a
 *  third. So a batch is all or nothing without ever raising an error for an
 *  out-of-step head, and the retry works as for one append (n INSERTs in a
 *  pipeline would commit the rows before one that found nothing to do,
 *  unless that case raised an error, which rules out retrying inside a
 *  caller's transaction). Measured against BEGIN, n appends and COMMIT, and
 *  against the n INSERTs sent in one libpq pipeline: one statement was the
 *  fastest from 8 events up (one plan and one executor start for the whole
 *  batch); a batch of one uses the single-row statement, cheaper still.
 *
 *  Verifier. One REPEATABLE READ, READ ONLY transaction gives a consistent
 *  snapshot of chains, events and anchors, read through three cursors in
 *  (chain, seq) order, FETCH_ROWS at a time, and merged by chain id in byte
 *  order (chain is COLLATE "C", so the server's order is strcmp's). Memory
 *  stays constant whatever the size of the log; only the breaks found are
 *  kept.
 */
#include "bc_audit.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bc_log.h"
#include "bc_mem.h"
#include "bc_util.h"

#define S_DOMAIN "beacon-audit-v1" /* hashed with its NUL */
#define S_TIME_LEN 96 /* "YYYY-MM-DD HH:MM:SS.uuuuuu+00" with room for what gcc imagines */

struct bc_audit_chain {
    char id[BC_AUDIT_CHAIN_MAX + 1];
    int64_t seq; /* committed head */
    uint8_t hash[BC_AUDIT_HASH_LEN];
    int64_t pend_seq; /* head including the open transaction's appends */
    uint8_t pend_hash[BC_AUDIT_HASH_LEN];
    int64_t anchor_seq, anchor_us; /* last anchor known committed */
    int64_t pend_anchor_seq, pend_anchor_us;
    int64_t anchor_every, anchor_ms;
};

/* ---- Hashing ------------------------------------------------------------ */

static EVP_MD *s_sha256;
static pthread_once_t s_sha256_once = PTHREAD_ONCE_INIT;

/* Fetching once avoids OpenSSL 3's implicit fetch on every digest. */
static void s_sha256_init(void)
{
    s_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!s_sha256)
        abort();
}

static void s_put_i64(EVP_MD_CTX *ctx, int64_t v)
{
    uint64_t u = (uint64_t)v;
    uint8_t b[8];
    for (int i = 7; i >= 0; i--, u >>= 8)
        b[i] = (uint8_t)(u & 0xff);
    EVP_DigestUpdate(ctx, b, sizeof b);
}

static void s_put_str(EVP_MD_CTX *ctx, const char *s)
{
    if (!s || !*s) {
        uint8_t absent = 0;
        EVP_DigestUpdate(ctx, &absent, 1);
        return;
    }
    size_t len = strlen(s);
    uint8_t b[5] = {1, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                    (uint8_t)len};
    EVP_DigestUpdate(ctx, b, sizeof b);
    EVP_DigestUpdate(ctx, s, len);
}

void bc_audit_hash(const uint8_t prev[BC_AUDIT_HASH_LEN], const char *chain, int64_t seq,
                   const bc_audit_event_t *ev, uint8_t out[BC_AUDIT_HASH_LEN])
{
    pthread_once(&s_sha256_once, s_sha256_init);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    if (!ctx || !EVP_DigestInit_ex(ctx, s_sha256, NULL))
        abort();                                      /* out of memory */
    EVP_DigestUpdate(ctx, S_DOMAIN, sizeof S_DOMAIN); /* with the NUL */
    EVP_DigestUpdate(ctx, prev, BC_AUDIT_HASH_LEN);
    s_put_str(ctx, chain);
    s_put_i64(ctx, seq);
    s_put_i64(ctx, ev->at_us);
    s_put_str(ctx, ev->request_id);
    s_put_str(ctx, ev->actor_staff_id);
    s_put_str(ctx, ev->actor_api_key_id);
    s_put_str(ctx, ev->agency_id);
    s_put_str(ctx, ev->site_id);
    s_put_str(ctx, ev->action);
    s_put_str(ctx, ev->resource_type);
    s_put_str(ctx, ev->resource_id);
    s_put_str(ctx, ev->client_id);
    s_put_str(ctx, ev->purpose);
    s_put_str(ctx, ev->outcome);
    s_put_str(ctx, ev->detail);
    if (!EVP_DigestFinal_ex(ctx, out, &len) || len != BC_AUDIT_HASH_LEN)
        abort();
    EVP_MD_CTX_free(ctx);
}

/* "\x" + hex, the bytea input form (independent of bytea_output). */
static void s_bytea_param(const uint8_t h[BC_AUDIT_HASH_LEN], char out[2 * BC_AUDIT_HASH_LEN + 3])
{
    out[0] = '\\';
    out[1] = 'x';
    bc_hex(h, BC_AUDIT_HASH_LEN, out + 2);
}

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* at_us (> 0) as timestamptz input, exact to the microsecond. */
static void s_format_us(int64_t at_us, char out[S_TIME_LEN])
{
    time_t secs = (time_t)(at_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, S_TIME_LEN, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(at_us % 1000000));
}

/* ---- Writer ------------------------------------------------------------- */

#define S_EVENT_INSERT                                                                             \
    "INSERT INTO audit.events (chain, seq, at, request_id, actor_staff_id, actor_api_key_id,"      \
    " agency_id, site_id, action, resource_type, resource_id, client_id, purpose, outcome,"        \
    " detail, prev_hash, hash)"                                                                    \
    " SELECT $1::text, $2::bigint, $3::timestamptz, $4::text, $5::text, $6::text, $7::text,"       \
    " $8::text, $9::text, $10::text, $11::text, $12::text, $13::text, $14::text, $15::json,"       \
    " $16::bytea, $17::bytea"                                                                      \
    " WHERE $2::bigint = 1 OR EXISTS (SELECT FROM audit.events p WHERE p.chain = $1::text"         \
    " AND p.seq = $2::bigint - 1 AND p.hash = $16::bytea)"                                         \
    " ON CONFLICT (chain, seq) DO NOTHING"

static const char S_APPEND[] = S_EVENT_INSERT;

/* The same, writing the anchor too; returns one row: how many events went in. */
static const char S_APPEND_ANCHOR[] =
    "WITH e AS (" S_EVENT_INSERT " RETURNING chain, seq, hash, at),"
    " a AS (INSERT INTO audit.anchors (chain, seq, hash, at)"
    " SELECT chain, seq, hash, at FROM e ON CONFLICT (chain, seq) DO NOTHING)"
    " SELECT count(*) FROM e";

/* The newest row and the newest anchor of a chain. */
static const char S_HEAD[] =
    "SELECT e.seq, encode(e.hash, 'hex'),"
    " (SELECT max(a.seq) FROM audit.anchors a WHERE a.chain = $1::text)"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT seq, hash FROM audit.events"
    " WHERE chain = $1::text ORDER BY seq DESC LIMIT 1) e ON true";

static const char S_ANCHOR[] =
    "INSERT INTO audit.anchors (chain, seq, hash, at)"
    " SELECT $1::text, $2::bigint, $3::bytea, $4::timestamptz"
    " WHERE EXISTS (SELECT FROM audit.events WHERE chain = $1::text AND seq = $2::bigint"
    " AND hash = $3::bytea)"
    " ON CONFLICT (chain, seq) DO NOTHING";

static bool s_service_name_ok(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    return len >= 1 && len <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == len;
}

bc_audit_chain_t *bc_audit_chain_new(bc_db_t *db, const char *service, int worker, bc_error_t *err)
{
    if (!s_service_name_ok(service) || worker < 0) {
        bc_error_set(err, BC_INVALID_ARGUMENT, worker < 0 ? "worker" : "service",
                     "bad audit chain owner");
        return NULL;
    }
    if (bc_db_in_transaction(db)) {
        bc_error_set(err, BC_INTERNAL, NULL, "audit chain registration inside a transaction");
        return NULL;
    }
    bc_audit_chain_t *self = bc_calloc(1, sizeof *self);
    self->anchor_every = BC_AUDIT_ANCHOR_EVENTS;
    self->anchor_ms = BC_AUDIT_ANCHOR_MS;
    self->anchor_us = self->pend_anchor_us = s_now_us();

    char worker_s[16], pid_s[16], host[256] = "";
    snprintf(worker_s, sizeof worker_s, "%d", worker);
    snprintf(pid_s, sizeof pid_s, "%d", (int)getpid());
    if (gethostname(host, sizeof host - 1) != 0 || !bc_utf8_valid(host, strlen(host)))
        host[0] = '\0';
    /* A clash of 64 random bits is next to impossible; if it happens the
     * primary key says so and another id is drawn. */
    int rc = -1;
    for (int attempt = 0; rc < 0 && attempt < 3; attempt++) {
        uint8_t rnd[8];
        char hex[17];
        bc_random_bytes(rnd, sizeof rnd);
        bc_hex(rnd, sizeof rnd, hex);
        snprintf(self->id, sizeof self->id, "%s:%s:%d", service, hex, worker);
        const char *params[] = {self->id, service, worker_s, host, pid_s};
        rc = bc_db_command(db,
                           "INSERT INTO audit.chains (chain, service, worker, host, pid)"
                           " VALUES ($1, $2, $3::int, $4, $5::int)",
                           5, params, err);
        if (rc < 0 && (!err || err->code != BC_ALREADY_EXISTS))
            break;
    }
    if (rc < 0) {
        free(self);
        return NULL;
    }
    bc_debug("audit chain %s started", self->id);
    return self;
}

void bc_audit_chain_destroy(bc_audit_chain_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

void bc_audit_chain_set_anchor(bc_audit_chain_t *self, int64_t events, int64_t ms)
{
    self->anchor_every = events >= 1 ? events : 1;
    self->anchor_ms = ms > 0 ? ms : 0;
}

const char *bc_audit_chain_id(const bc_audit_chain_t *self)
{
    return self->id;
}

int64_t bc_audit_chain_seq(const bc_audit_chain_t *self, uint8_t hash[BC_AUDIT_HASH_LEN])
{
    if (hash)
        memcpy(hash, self->hash, BC_AUDIT_HASH_LEN);
    return self->seq;
}

void bc_audit_commit(bc_audit_chain_t *self)
{
    self->seq = self->pend_seq;
    memcpy(self->hash, self->pend_hash, BC_AUDIT_HASH_LEN);
    self->anchor_seq = self->pend_anchor_seq;
    self->anchor_us = self->pend_anchor_us;
}

void bc_audit_rollback(bc_audit_chain_t *self)
{
    self->pend_seq = self->seq;
    memcpy(self->pend_hash, self->hash, BC_AUDIT_HASH_LEN);
    self->pend_anchor_seq = self->anchor_seq;
    self->pend_anchor_us = self->anchor_us;
}

/* NULL for NULL or "", else s. */
static const char *s_opt(const char *s)
{
    return s && *s ? s : NULL;
}

/* Checks an optional text field: UTF-8, at most max bytes. */
static int s_check_text(const char *value, const char *field, size_t max, bc_error_t *err)
{
    if (!value)
        return 0;
    size_t len = strlen(value);
    if (len > max)
        return bc_error_set(err, BC_INVALID_ARGUMENT, field, "audit %s longer than %zu bytes",
                            field, max);
    if (!bc_utf8_valid(value, len))
        return bc_error_set(err, BC_INVALID_ARGUMENT, field, "audit %s is not valid UTF-8", field);
    return 0;
}

/* Copies ev into *out with "" as NULL and the time filled in, and checks it
 * against the table's constraints so that a bad event never reaches (and
 * aborts) the caller's transaction. */
static int s_normalize(const bc_audit_event_t *ev, bc_audit_event_t *out, bc_error_t *err)
{
    *out = (bc_audit_event_t){
        .at_us = ev->at_us ? ev->at_us : s_now_us(),
        .request_id = s_opt(ev->request_id),
        .actor_staff_id = s_opt(ev->actor_staff_id),
        .actor_api_key_id = s_opt(ev->actor_api_key_id),
        .agency_id = s_opt(ev->agency_id),
        .site_id = s_opt(ev->site_id),
        .action = s_opt(ev->action),
        .resource_type = s_opt(ev->resource_type),
        .resource_id = s_opt(ev->resource_id),
        .client_id = s_opt(ev->client_id),
        .purpose = s_opt(ev->purpose),
        .outcome = s_opt(ev->outcome),
        .detail = s_opt(ev->detail),
    };
    /* Up to year 9999: timestamptz's range, and what s_format_us prints. */
    if (out->at_us <= 0 || out->at_us >= INT64_C(253402300800000000))
        return bc_error_set(err, BC_INVALID_ARGUMENT, "at_us", "audit time out of range");
    const char *a = out->action;
    size_t alen = a ? strlen(a) : 0;
    if (alen < 1 || alen > 32 || a[0] < 'a' || a[0] > 'z' ||
        strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789_") != alen)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "action",
                            "audit action must be [a-z][a-z0-9_]{0,31}");
    const char *o = out->outcome;
    if (!o || (strcmp(o, BC_AUDIT_OK) && strcmp(o, BC_AUDIT_DENIED) && strcmp(o, BC_AUDIT_ERROR)))
        return bc_error_set(err, BC_INVALID_ARGUMENT, "outcome",
                            "audit outcome must be ok, denied or error");
    if (s_check_text(out->request_id, "request_id", 128, err) ||
        s_check_text(out->actor_staff_id, "actor_staff_id", 128, err) ||
        s_check_text(out->actor_api_key_id, "actor_api_key_id", 128, err) ||
        s_check_text(out->agency_id, "agency_id", 128, err) ||
        s_check_text(out->site_id, "site_id", 128, err) ||
        s_check_text(out->resource_type, "resource_type", 64, err) ||
        s_check_text(out->resource_id, "resource_id", 128, err) ||
        s_check_text(out->client_id, "client_id", 128, err) ||
        s_check_text(out->purpose, "purpose", 512, err) ||
        s_check_text(out->detail, "detail", 8192, err))
        return -1;
    return 0;
}

int bc_audit_event_check(const bc_audit_event_t *ev, bc_error_t *err)
{
    bc_audit_event_t tmp;
    return s_normalize(ev, &tmp, err) < 0 ? -1 : 0;
}

/* Reads the chain's head back from the table into the pending head (and
 * the committed one outside a transaction). Inside the caller's transaction
 * its own appends count, as they will commit or roll back together. */
static int s_resync(bc_audit_chain_t *self, bc_db_t *db, bc_error_t *err)
{
    const char *params[] = {self->id};
    PGresult *res = bc_db_prepared(db, "bc_audit_head", S_HEAD, 1, params, err);
    if (!res)
        return -1;
    int64_t seq = 0, anchor_seq = 0;
    uint8_t hash[BC_AUDIT_HASH_LEN] = {0};
    bool ok = PQntuples(res) == 1;
    if (ok && !PQgetisnull(res, 0, 0)) {
        seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        ok = bc_unhex(PQgetvalue(res, 0, 1), BC_AUDIT_HASH_LEN, hash);
    }
    if (ok && !PQgetisnull(res, 0, 2))
        anchor_seq = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);
    if (!ok) {
        bc_error_set(err, BC_DATA_LOSS, NULL, "audit log unreadable");
        bc_error_detail(err, "audit chain %s: malformed head row", self->id);
        return -1;
    }
    if (seq < self->seq)
        bc_warn("audit chain %s: the table ends at seq %" PRId64 " but seq %" PRId64
                " was committed: rows were removed",
                self->id, seq, self->seq);
    else
        bc_debug("audit chain %s resynchronised at seq %" PRId64 " (in memory %" PRId64 ")",
                 self->id, seq, self->pend_seq);
    self->pend_seq = seq;
    memcpy(self->pend_hash, hash, sizeof hash);
    self->pend_anchor_seq = anchor_seq;
    /* Inside a transaction what was read may include its own rows, which
     * are not committed yet: only the pending head may move. */
    if (!bc_db_in_transaction(db)) {
        self->seq = seq;
        memcpy(self->hash, hash, sizeof hash);
        self->anchor_seq = anchor_seq;
    }
    return 0;
}

/* Whether the row (seq, at_us) gets an anchor, the last one being at
 * (anchor_seq, anchor_us): every anchor_every events or anchor_ms ms. */
static bool s_anchor_due(const bc_audit_chain_t *self, int64_t seq, int64_t at_us,
                         int64_t anchor_seq, int64_t anchor_us)
{
    return seq - anchor_seq >= self->anchor_every ||
           (self->anchor_ms > 0 && at_us - anchor_us >= self->anchor_ms * 1000);
}

/* One attempt at inserting ev after the pending head. Returns 1 when the row
 * went in (pending head advanced), 0 when the head was out of step (nothing
 * written, transaction intact), -1 on error. */
static int s_insert(bc_audit_chain_t *self, bc_db_t *db, const bc_audit_event_t *ev,
                    bc_error_t *err)
{
    int64_t seq = self->pend_seq + 1;
    uint8_t hash[BC_AUDIT_HASH_LEN];
    bc_audit_hash(self->pend_hash, self->id, seq, ev, hash);
    bool anchor = s_anchor_due(self, seq, ev->at_us, self->pend_anchor_seq, self->pend_anchor_us);

    char seq_s[24], at_s[S_TIME_LEN], prev_s[2 * BC_AUDIT_HASH_LEN + 3],
        hash_s[2 * BC_AUDIT_HASH_LEN + 3];
    snprintf(seq_s, sizeof seq_s, "%" PRId64, seq);
    s_format_us(ev->at_us, at_s);
    s_bytea_param(self->pend_hash, prev_s);
    s_bytea_param(hash, hash_s);
    const char *params[] = {self->id,
                            seq_s,
                            at_s,
                            ev->request_id,
                            ev->actor_staff_id,
                            ev->actor_api_key_id,
                            ev->agency_id,
                            ev->site_id,
                            ev->action,
                            ev->resource_type,
                            ev->resource_id,
                            ev->client_id,
                            ev->purpose,
                            ev->outcome,
                            ev->detail,
                            prev_s,
                            hash_s};
    PGresult *res =
        anchor ? bc_db_prepared(db, "bc_audit_append_anchor", S_APPEND_ANCHOR, 17, params, err)
               : bc_db_prepared(db, "bc_audit_append", S_APPEND, 17, params, err);
    if (!res)
        return -1;
    const char *n = anchor ? (PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "0") : PQcmdTuples(res);
    bool inserted = !strcmp(n, "1");
    PQclear(res);
    if (!inserted)
        return 0;
    self->pend_seq = seq;
    memcpy(self->pend_hash, hash, sizeof hash);
    if (anchor) {
        self->pend_anchor_seq = seq;
        self->pend_anchor_us = ev->at_us;
        bc_debug("audit anchor %s seq %" PRId64 " hash %s", self->id, seq, hash_s + 2);
    }
    return 1;
}

int bc_audit_append(bc_audit_chain_t *self, bc_db_t *db, const bc_audit_event_t *ev,
                    bc_error_t *err)
{
    bc_audit_event_t e;
    if (s_normalize(ev, &e, err))
        return -1;
    int rc = s_insert(self, db, &e, err);
    if (rc == 0) {
        /* Out of step (see the file header): re-read the head, try again. */
        if (s_resync(self, db, err))
            return -1;
        rc = s_insert(self, db, &e, err);
        if (rc == 0) {
            bc_error_set(err, BC_INTERNAL, NULL, "audit record could not be written");
            bc_error_detail(err, "audit chain %s: seq %" PRId64 " refused after resync", self->id,
                            self->pend_seq + 1);
            return -1;
        }
    }
    if (rc < 0)
        return -1;
    if (!bc_db_in_transaction(db))
        bc_audit_commit(self); /* autocommit: the row is in */
    return 0;
}

/* ---- Batches ------------------------------------------------------------ */

/* The columns a batch fills, in the order of S_APPEND_BATCH's arrays. */
#define S_BATCH_COLUMNS                                                                            \
    "seq, at, request_id, actor_staff_id, actor_api_key_id, agency_id, site_id, action,"           \
    " resource_type, resource_id, client_id, purpose, outcome, detail, prev_hash, hash"

/* A batch of n events as one statement. $1 chain, $2 the first seq, $3..$15
 * one array per column (n elements each), $16 the n + 1 hashes end to end
 * (the pending head's, then each row's: row o has prev_hash = hash o - 1 and
 * hash = hash o), $17 the seqs that get an anchor. The first row alone is
 * checked against the table (its predecessor is visible with the expected
 * hash, its seq is free); the others follow it in the same statement, and
 * are inserted only if it was. So the statement inserts all n rows, or none
 * without raising an error (the head was out of step: resync and retry, the
 * caller's transaction intact), or fails as a whole (a bad value; or a later
 * row colliding with a concurrent writer of the same chain, which the
 * contract rules out: a unique violation, never a partial batch). The
 * predecessor probe uses only parameters, so it runs once (a one-time
 * filter, one primary-key lookup), never as a scan of the chain; correlated
 * with t, the planner made it a hashed subplan reading the whole chain.
 * Returns one row: the number of rows inserted. */
static const char S_APPEND_BATCH[] =
    "WITH t AS (SELECT $2::bigint + u.o - 1 AS seq, u.at, u.request_id, u.actor_staff_id,"
    " u.actor_api_key_id, u.agency_id, u.site_id, u.action, u.resource_type, u.resource_id,"
    " u.client_id, u.purpose, u.outcome, u.detail,"
    " substring($16::bytea FROM (u.o::int - 1) * 32 + 1 FOR 32) AS prev_hash,"
    " substring($16::bytea FROM u.o::int * 32 + 1 FOR 32) AS hash, u.o"
    " FROM unnest($3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],"
    " $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],"
    " $15::json[]) WITH ORDINALITY AS u(at, request_id, actor_staff_id, actor_api_key_id,"
    " agency_id, site_id, action, resource_type, resource_id, client_id, purpose, outcome,"
    " detail, o)),"
    " e1 AS (INSERT INTO audit.events (chain, " S_BATCH_COLUMNS ")"
    " SELECT $1::text, " S_BATCH_COLUMNS " FROM t WHERE t.o = 1"
    " AND ($2::bigint = 1 OR EXISTS (SELECT FROM audit.events p WHERE p.chain = $1::text"
    " AND p.seq = $2::bigint - 1 AND p.hash = substring($16::bytea FROM 1 FOR 32)))"
    " ON CONFLICT (chain, seq) DO NOTHING RETURNING seq),"
    " en AS (INSERT INTO audit.events (chain, " S_BATCH_COLUMNS ")"
    " SELECT $1::text, " S_BATCH_COLUMNS " FROM t WHERE t.o > 1 AND EXISTS (SELECT FROM e1)"
    " RETURNING seq),"
    " a AS (INSERT INTO audit.anchors (chain, seq, hash, at)"
    " SELECT $1::text, t.seq, t.hash, t.at FROM t WHERE t.seq = ANY ($17::bigint[])"
    " AND EXISTS (SELECT FROM e1) ON CONFLICT (chain, seq) DO NOTHING)"
    " SELECT (SELECT count(*) FROM e1) + (SELECT count(*) FROM en)";

/* The text fields of an event in the order of $4..$15. */
static const size_t S_BATCH_FIELDS[] = {
    offsetof(bc_audit_event_t, request_id),       offsetof(bc_audit_event_t, actor_staff_id),
    offsetof(bc_audit_event_t, actor_api_key_id), offsetof(bc_audit_event_t, agency_id),
    offsetof(bc_audit_event_t, site_id),          offsetof(bc_audit_event_t, action),
    offsetof(bc_audit_event_t, resource_type),    offsetof(bc_audit_event_t, resource_id),
    offsetof(bc_audit_event_t, client_id),        offsetof(bc_audit_event_t, purpose),
    offsetof(bc_audit_event_t, outcome),          offsetof(bc_audit_event_t, detail),
};
#define S_NFIELDS (sizeof S_BATCH_FIELDS / sizeof S_BATCH_FIELDS[0])

static const char *s_field(const bc_audit_event_t *ev, size_t i)
{
    return *(const char *const *)((const char *)ev + S_BATCH_FIELDS[i]);
}

/* A growing string. */
typedef struct {
    char *p;
    size_t len, cap;
} s_buf_t;

static void s_buf_add(s_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = bc_realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* One element of an array literal: NULL, or v in double quotes with " and \
 * escaped, which the array parser turns back into exactly v (the value is
 * still a parameter: it never becomes SQL text). */
static void s_array_elem(s_buf_t *b, size_t index, const char *v)
{
    if (index > 0)
        s_buf_add(b, ",", 1);
    if (!v) {
        s_buf_add(b, "NULL", 4);
        return;
    }
    s_buf_add(b, "\"", 1);
    for (const char *run = v;;) {
        size_t len = strcspn(run, "\"\\");
        s_buf_add(b, run, len);
        if (!run[len])
            break;
        s_buf_add(b, "\\", 1);
        s_buf_add(b, run + len, 1);
        run += len + 1;
    }
    s_buf_add(b, "\"", 1);
}

/* One attempt at inserting evs[0..n) after the pending head, in one
 * statement. Returns 1 when every row went in (pending head advanced), 0
 * when the head was out of step (nothing written, transaction intact), -1
 * on error (nothing written). */
static int s_insert_batch(bc_audit_chain_t *self, bc_db_t *db, const bc_audit_event_t *evs,
                          size_t n, bc_error_t *err)
{
    int64_t first = self->pend_seq + 1;
    /* The hashes, sequentially from the pending head, exactly as n appends
     * would compute them; the same for the anchor schedule. */
    uint8_t *hashes = bc_malloc((n + 1) * BC_AUDIT_HASH_LEN);
    bool *anchor = bc_calloc(n, sizeof *anchor);
    memcpy(hashes, self->pend_hash, BC_AUDIT_HASH_LEN);
    int64_t anchor_seq = self->pend_anchor_seq, anchor_us = self->pend_anchor_us;
    for (size_t i = 0; i < n; i++) {
        int64_t seq = first + (int64_t)i;
        bc_audit_hash(hashes + i * BC_AUDIT_HASH_LEN, self->id, seq, &evs[i],
                      hashes + (i + 1) * BC_AUDIT_HASH_LEN);
        if (s_anchor_due(self, seq, evs[i].at_us, anchor_seq, anchor_us)) {
            anchor[i] = true;
            anchor_seq = seq;
            anchor_us = evs[i].at_us;
        }
    }

    /* The arrays, one after another in one buffer: offsets first, since
     * the buffer moves while it grows. */
    s_buf_t b = {0};
    size_t off[1 + S_NFIELDS + 1];
    char at_s[S_TIME_LEN], num[24];
    off[0] = b.len;
    s_buf_add(&b, "{", 1);
    for (size_t i = 0; i < n; i++) {
        s_format_us(evs[i].at_us, at_s);
        s_array_elem(&b, i, at_s);
    }
    s_buf_add(&b, "}", 2); /* with its NUL: the next array starts after it */
    for (size_t f = 0; f < S_NFIELDS; f++) {
        off[1 + f] = b.len;
        s_buf_add(&b, "{", 1);
        for (size_t i = 0; i < n; i++)
            s_array_elem(&b, i, s_field(&evs[i], f));
        s_buf_add(&b, "}", 2);
    }
    off[1 + S_NFIELDS] = b.len;
    s_buf_add(&b, "{", 1);
    for (size_t i = 0, k = 0; i < n; i++) {
        if (!anchor[i])
            continue;
        int len = snprintf(num, sizeof num, "%s%" PRId64, k++ ? "," : "", first + (int64_t)i);
        s_buf_add(&b, num, (size_t)len);
    }
    s_buf_add(&b, "}", 1);
    char *hashes_s = bc_malloc(2 * (n + 1) * BC_AUDIT_HASH_LEN + 3);
    hashes_s[0] = '\\';
    hashes_s[1] = 'x';
    bc_hex(hashes, (n + 1) * BC_AUDIT_HASH_LEN, hashes_s + 2);
    char first_s[24];
    snprintf(first_s, sizeof first_s, "%" PRId64, first);

    const char *params[17] = {self->id, first_s};
    for (size_t a = 0; a < 1 + S_NFIELDS; a++)
        params[2 + a] = b.p + off[a];
    params[15] = hashes_s;
    params[16] = b.p + off[1 + S_NFIELDS];
    PGresult *res = bc_db_prepared(db, "bc_audit_append_batch", S_APPEND_BATCH, 17, params, err);
    free(hashes_s);
    free(b.p);
    int rc = -1;
    if (res) {
        long long inserted = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
        PQclear(res);
        if (inserted == 0) {
            rc = 0;
        } else if (inserted == (long long)n) {
            rc = 1;
        } else {
            /* Cannot happen: the rows after the first depend on it. */
            bc_error_set(err, BC_INTERNAL, NULL, "audit record could not be written");
            bc_error_detail(err, "audit chain %s: batch of %zu inserted %lld rows", self->id, n,
                            inserted);
        }
    }
    if (rc == 1) {
        self->pend_seq = first + (int64_t)n - 1;
        memcpy(self->pend_hash, hashes + n * BC_AUDIT_HASH_LEN, BC_AUDIT_HASH_LEN);
        self->pend_anchor_seq = anchor_seq;
        self->pend_anchor_us = anchor_us;
        char hex[2 * BC_AUDIT_HASH_LEN + 1];
        for (size_t i = 0; i < n; i++) {
            if (!anchor[i])
                continue;
            bc_hex(hashes + (i + 1) * BC_AUDIT_HASH_LEN, BC_AUDIT_HASH_LEN, hex);
            bc_debug("audit anchor %s seq %" PRId64 " hash %s", self->id, first + (int64_t)i, hex);
        }
    }
    free(anchor);
    free(hashes);
    return rc;
}

/* One attempt at the whole batch (as s_insert_batch). A batch of one is the
 * single-row statement: the same one round trip, and measurably cheaper for
 * the server than the batch statement (no arrays, no CTEs); it is the common
 * case when the writer is lightly loaded, where latency matters most. */
static int s_insert_some(bc_audit_chain_t *self, bc_db_t *db, const bc_audit_event_t *evs, size_t n,
                         bc_error_t *err)
{
    return n == 1 ? s_insert(self, db, evs, err) : s_insert_batch(self, db, evs, n, err);
}

int bc_audit_append_batch(bc_audit_chain_t *self, bc_db_t *db, const bc_audit_event_t *evs,
                          size_t n, bc_error_t *err)
{
    if (n == 0)
        return 0;
    if (n > BC_AUDIT_BATCH_MAX)
        return bc_error_set(err, BC_INVALID_ARGUMENT, "n", "audit batch of more than %d events",
                            BC_AUDIT_BATCH_MAX);
    /* Every event is checked (and its time fixed) before anything is sent,
     * and kept for the retry, which must send the same rows. */
    bc_audit_event_t *norm = bc_malloc(n * sizeof *norm);
    for (size_t i = 0; i < n; i++) {
        if (s_normalize(&evs[i], &norm[i], err)) {
            bc_error_detail(err, "event %zu of a batch of %zu", i, n);
            free(norm);
            return -1;
        }
    }
    int rc = s_insert_some(self, db, norm, n, err);
    if (rc == 0) {
        /* Out of step (see the file header): re-read the head, try again. */
        if (s_resync(self, db, err) == 0) {
            rc = s_insert_some(self, db, norm, n, err);
            if (rc == 0) {
                bc_error_set(err, BC_INTERNAL, NULL, "audit record could not be written");
                bc_error_detail(err,
                                "audit chain %s: batch at seq %" PRId64 " refused after resync",
                                self->id, self->pend_seq + 1);
                rc = -1;
            }
        } else {
            rc = -1;
        }
    }
    free(norm);
    if (rc < 0)
        return -1;
    if (!bc_db_in_transaction(db))
        bc_audit_commit(self); /* autocommit: the rows are in */
    return 0;
}

int bc_audit_chain_anchor(bc_audit_chain_t *self, bc_db_t *db, bc_error_t *err)
{
    if (self->seq == 0 || self->anchor_seq >= self->seq)
        return 0;
    char seq_s[24], at_s[S_TIME_LEN], hash_s[2 * BC_AUDIT_HASH_LEN + 3];
    int64_t now = s_now_us();
    snprintf(seq_s, sizeof seq_s, "%" PRId64, self->seq);
    s_format_us(now, at_s);
    s_bytea_param(self->hash, hash_s);
    const char *params[] = {self->id, seq_s, hash_s, at_s};
    PGresult *res = bc_db_prepared(db, "bc_audit_anchor", S_ANCHOR, 4, params, err);
    if (!res)
        return -1;
    PQclear(res);
    /* Inside a transaction this becomes pending like an append; the head
     * itself is committed, so the anchor is right whenever it commits. */
    if (self->pend_anchor_seq < self->seq) {
        self->pend_anchor_seq = self->seq;
        self->pend_anchor_us = now;
    }
    if (!bc_db_in_transaction(db)) {
        self->anchor_seq = self->seq;
        self->anchor_us = now;
    }
    bc_debug("audit anchor %s seq %" PRId64 " hash %s", self->id, self->seq, hash_s + 2);
    return 0;
}
