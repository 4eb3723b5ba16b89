/*  bc_audit_verify: checks the audit log's hash chains (bc_audit.h,
 *  "Verification"). Streams chains, events and anchors in (chain, seq)
 *  order through three cursors of one REPEATABLE READ snapshot, recomputes
 *  every row's hash with bc_audit_hash and records the first broken link of
 *  each chain. */
#include "bc_audit.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_mem.h"
#include "bc_util.h"

#define S_FETCH_ROWS "2000"
#define S_FETCH_ROWS_N 2000

/* ---- Verifier ----------------------------------------------------------- */

const char *bc_audit_break_name(bc_audit_break_kind_t kind)
{
    switch (kind) {
    case BC_AUDIT_BREAK_MISSING:
        return "missing";
    case BC_AUDIT_BREAK_LINK:
        return "link";
    case BC_AUDIT_BREAK_HASH:
        return "hash";
    case BC_AUDIT_BREAK_ANCHOR:
        return "anchor";
    case BC_AUDIT_BREAK_TRUNCATED:
        return "truncated";
    case BC_AUDIT_BREAK_UNREGISTERED:
        return "unregistered";
    }
    return "unknown";
}

void bc_audit_report_clear(bc_audit_report_t *report)
{
    if (!report)
        return;
    free(report->breaks);
    *report = (bc_audit_report_t){0};
}

/* A server-side cursor read FETCH_ROWS rows at a time. */
typedef struct {
    bc_db_t *db;
    const char *fetch;
    PGresult *res;
    int row, nrows;
    bool last_batch; /* the current batch was short: nothing follows */
    bool done;
} s_cursor_t;

/* Moves to the next row: 1, 0 at the end, -1 on error. */
static int s_cursor_next(s_cursor_t *c, bc_error_t *err)
{
    if (c->done)
        return 0;
    if (c->res && ++c->row < c->nrows)
        return 1;
    PQclear(c->res);
    c->res = NULL;
    if (!c->last_batch) {
        c->res = bc_db_query(c->db, c->fetch, 0, NULL, err);
        if (!c->res)
            return -1;
        c->nrows = PQntuples(c->res);
        c->row = 0;
        c->last_batch = c->nrows < S_FETCH_ROWS_N;
        if (c->nrows > 0)
            return 1;
        PQclear(c->res);
        c->res = NULL;
    }
    c->done = true;
    return 0;
}

/* Column col of the current row; NULL for SQL NULL. */
static const char *s_col(const s_cursor_t *c, int col)
{
    return PQgetisnull(c->res, c->row, col) ? NULL : PQgetvalue(c->res, c->row, col);
}

/* The chain id of the current row ("" if NULL: only a damaged table has
 * one, and the merge must not crash on it). */
static const char *s_chain_of(const s_cursor_t *c)
{
    const char *chain = s_col(c, 0);
    return chain ? chain : "";
}

/* True when the cursor's current row belongs to chain. */
static bool s_in_chain(const s_cursor_t *c, const char *chain)
{
    return !c->done && !strcmp(s_chain_of(c), chain);
}

static int64_t s_col_i64(const s_cursor_t *c, int col)
{
    const char *v = s_col(c, col);
    return v ? strtoll(v, NULL, 10) : 0;
}

/* The state of the chain being checked. */
typedef struct {
    bc_audit_report_t *report;
    const char *chain;
    bool broken;
} s_check_t;

static void s_break(s_check_t *ck, int64_t seq, bc_audit_break_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records the chain's first broken link; later ones are ignored. */
static void s_break(s_check_t *ck, int64_t seq, bc_audit_break_kind_t kind, const char *fmt, ...)
{
    if (ck->broken)
        return;
    ck->broken = true;
    bc_audit_report_t *r = ck->report;
    r->broken++;
    if (r->nbreaks >= BC_AUDIT_REPORT_MAX_BREAKS)
        return;
    r->breaks = bc_realloc(r->breaks, (r->nbreaks + 1) * sizeof *r->breaks);
    bc_audit_break_t *b = &r->breaks[r->nbreaks++];
    *b = (bc_audit_break_t){.seq = seq, .kind = kind};
    snprintf(b->chain, sizeof b->chain, "%s", ck->chain);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->detail, sizeof b->detail, fmt, ap);
    va_end(ap);
}

/* Column layout of the events cursor. */
enum {
    S_EV_CHAIN,
    S_EV_SEQ,
    S_EV_AT_US,
    S_EV_REQUEST_ID,
    S_EV_STAFF,
    S_EV_API_KEY,
    S_EV_AGENCY,
    S_EV_SITE,
    S_EV_ACTION,
    S_EV_RESOURCE_TYPE,
    S_EV_RESOURCE_ID,
    S_EV_CLIENT,
    S_EV_PURPOSE,
    S_EV_OUTCOME,
    S_EV_DETAIL,
    S_EV_PREV_HASH,
    S_EV_HASH,
};

/* Checks one event row against the chain so far. */
static void s_check_event(s_check_t *ck, const s_cursor_t *ev, int64_t seq, int64_t expected,
                          const uint8_t prev[BC_AUDIT_HASH_LEN], const uint8_t *stored_hash)
{
    uint8_t stored_prev[BC_AUDIT_HASH_LEN];
    if (seq != expected) {
        s_break(ck, expected, BC_AUDIT_BREAK_MISSING,
                "seq %" PRId64 " missing (next row is seq %" PRId64 ")", expected, seq);
        return;
    }
    if (!bc_unhex(s_col(ev, S_EV_PREV_HASH), BC_AUDIT_HASH_LEN, stored_prev) ||
        memcmp(stored_prev, prev, BC_AUDIT_HASH_LEN)) {
        s_break(ck, seq, BC_AUDIT_BREAK_LINK,
                seq == 1 ? "prev_hash of the first row is not zero"
                         : "prev_hash is not the hash of the row before");
        return;
    }
    bc_audit_event_t e = {
        .at_us = s_col_i64(ev, S_EV_AT_US),
        .request_id = s_col(ev, S_EV_REQUEST_ID),
        .actor_staff_id = s_col(ev, S_EV_STAFF),
        .actor_api_key_id = s_col(ev, S_EV_API_KEY),
        .agency_id = s_col(ev, S_EV_AGENCY),
        .site_id = s_col(ev, S_EV_SITE),
        .action = s_col(ev, S_EV_ACTION),
        .resource_type = s_col(ev, S_EV_RESOURCE_TYPE),
        .resource_id = s_col(ev, S_EV_RESOURCE_ID),
        .client_id = s_col(ev, S_EV_CLIENT),
        .purpose = s_col(ev, S_EV_PURPOSE),
        .outcome = s_col(ev, S_EV_OUTCOME),
        .detail = s_col(ev, S_EV_DETAIL),
    };
    uint8_t computed[BC_AUDIT_HASH_LEN];
    bc_audit_hash(stored_prev, ck->chain, seq, &e, computed);
    if (!stored_hash || memcmp(computed, stored_hash, BC_AUDIT_HASH_LEN))
        s_break(ck, seq, BC_AUDIT_BREAK_HASH, "row content does not match its hash");
}

/* Checks every event and anchor of one chain; the cursors are left on the
 * first rows of the next chain. */
static int s_check_chain(s_check_t *ck, s_cursor_t *ev, s_cursor_t *an, bc_error_t *err)
{
    int64_t expected = 1, last = 0;
    uint8_t prev[BC_AUDIT_HASH_LEN] = {0};
    while (s_in_chain(ev, ck->chain)) {
        int64_t seq = s_col_i64(ev, S_EV_SEQ);
        uint8_t hash[BC_AUDIT_HASH_LEN];
        bool hash_ok = bc_unhex(s_col(ev, S_EV_HASH), BC_AUDIT_HASH_LEN, hash);
        if (!ck->broken)
            s_check_event(ck, ev, seq, expected, prev, hash_ok ? hash : NULL);
        /* Anchors up to this row: the one naming it must carry its hash. */
        while (s_in_chain(an, ck->chain) && s_col_i64(an, 1) <= seq) {
            int64_t aseq = s_col_i64(an, 1);
            uint8_t ahash[BC_AUDIT_HASH_LEN];
            if (aseq < seq)
                s_break(ck, aseq, BC_AUDIT_BREAK_ANCHOR,
                        "anchor names seq %" PRId64 ", which has no row", aseq);
            else if (!hash_ok || !bc_unhex(s_col(an, 2), BC_AUDIT_HASH_LEN, ahash) ||
                     memcmp(ahash, hash, BC_AUDIT_HASH_LEN))
                s_break(ck, seq, BC_AUDIT_BREAK_ANCHOR, "anchor hash differs from the row's hash");
            ck->report->anchors++;
            if (s_cursor_next(an, err) < 0)
                return -1;
        }
        ck->report->events++;
        last = seq;
        expected = seq + 1;
        memcpy(prev, hash, sizeof prev);
        if (s_cursor_next(ev, err) < 0)
            return -1;
    }
    /* Anchors past the last row: the tail was deleted. */
    while (s_in_chain(an, ck->chain)) {
        s_break(ck, last + 1, BC_AUDIT_BREAK_TRUNCATED,
                "anchor at seq %" PRId64 " but the chain ends at seq %" PRId64, s_col_i64(an, 1),
                last);
        ck->report->anchors++;
        if (s_cursor_next(an, err) < 0)
            return -1;
    }
    return 0;
}

/* The merge of the three cursors, chain by chain. */
static int s_verify_all(s_cursor_t *ch, s_cursor_t *ev, s_cursor_t *an, bc_audit_report_t *report,
                        bc_error_t *err)
{
    if (s_cursor_next(ch, err) < 0 || s_cursor_next(ev, err) < 0 || s_cursor_next(an, err) < 0)
        return -1;
    while (!ch->done || !ev->done || !an->done) {
        const char *first = NULL;
        s_cursor_t *all[] = {ch, ev, an};
        for (int i = 0; i < 3; i++)
            if (!all[i]->done && (!first || strcmp(s_chain_of(all[i]), first) < 0))
                first = s_chain_of(all[i]);
        char *chain = bc_strdup(first); /* the cursors move on below */
        s_check_t ck = {.report = report, .chain = chain};
        report->chains++;
        bool registered = false;
        int rc = 0;
        while (rc == 0 && s_in_chain(ch, chain)) {
            registered = true;
            rc = s_cursor_next(ch, err) < 0 ? -1 : 0;
        }
        if (!registered)
            s_break(&ck, 0, BC_AUDIT_BREAK_UNREGISTERED, "chain has rows but is not registered");
        if (rc == 0)
            rc = s_check_chain(&ck, ev, an, err);
        free(chain);
        if (rc)
            return -1;
    }
    return 0;
}

/* The smallest string greater than every string starting with prefix, in
 * byte order, into out; false when there is none (all 0xff, or empty). */
static bool s_prefix_end(const char *prefix, char *out, size_t size)
{
    size_t len = strlen(prefix);
    if (len + 1 > size)
        return false;
    memcpy(out, prefix, len + 1);
    while (len && (unsigned char)out[len - 1] == 0xff)
        out[--len] = '\0';
    if (!len)
        return false;
    out[len - 1] = (char)((unsigned char)out[len - 1] + 1);
    return true;
}

#define S_RANGE " WHERE chain >= $1::text AND ($2::text IS NULL OR chain < $2::text) ORDER BY chain"

int bc_audit_verify(bc_db_t *db, const char *chain_prefix, bc_audit_report_t *report,
                    bc_error_t *err)
{
    *report = (bc_audit_report_t){0};
    if (bc_db_in_transaction(db)) {
        bc_error_set(err, BC_INTERNAL, NULL, "audit verification inside a transaction");
        return -1;
    }
    const char *prefix = chain_prefix ? chain_prefix : "";
    char end[512];
    const char *range[] = {prefix, s_prefix_end(prefix, end, sizeof end) ? end : NULL};
    s_cursor_t ch = {.db = db, .fetch = "FETCH FORWARD " S_FETCH_ROWS " FROM bc_audit_chains"};
    s_cursor_t ev = {.db = db, .fetch = "FETCH FORWARD " S_FETCH_ROWS " FROM bc_audit_events"};
    s_cursor_t an = {.db = db, .fetch = "FETCH FORWARD " S_FETCH_ROWS " FROM bc_audit_anchors"};
    int rc = bc_db_begin(db, err);
    if (rc == 0)
        rc = bc_db_command(db, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0,
                           NULL, err);
    if (rc == 0)
        rc = bc_db_command(db,
                           "DECLARE bc_audit_chains NO SCROLL CURSOR FOR"
                           " SELECT chain FROM audit.chains" S_RANGE,
                           2, range, err);
    if (rc == 0)
        rc = bc_db_command(
            db,
            "DECLARE bc_audit_events NO SCROLL CURSOR FOR"
            " SELECT chain, seq,"
            " CASE WHEN isfinite(at) THEN (extract(epoch FROM at) * 1000000)::bigint END,"
            " request_id, actor_staff_id, actor_api_key_id, agency_id, site_id,"
            " action, resource_type, resource_id, client_id, purpose, outcome,"
            " detail::text, encode(prev_hash, 'hex'), encode(hash, 'hex')"
            " FROM audit.events" S_RANGE ", seq",
            2, range, err);
    if (rc == 0)
        rc = bc_db_command(db,
                           "DECLARE bc_audit_anchors NO SCROLL CURSOR FOR"
                           " SELECT chain, seq, encode(hash, 'hex') FROM audit.anchors" S_RANGE
                           ", seq",
                           2, range, err);
    if (rc == 0)
        rc = s_verify_all(&ch, &ev, &an, report, err);
    PQclear(ch.res);
    PQclear(ev.res);
    PQclear(an.res);
    bc_db_rollback(db); /* read only: nothing to commit; closes the cursors */
    return rc;
}
