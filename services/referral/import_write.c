/*  import_write: writing an import's records once every file is read.
 *
 *  Reading the files (import.c) checks each record on its own and lists it
 *  in a plan, in the order met. Here the plan is settled, then written:
 *
 *  1. References. A record's reference to another record holds when that
 *     record was taken earlier in the import or is stored; the stored ones
 *     are asked for in one statement per table referred to (only for ids
 *     the import does not take first). A dangling reference refuses the
 *     record, and the records nested in it (its phones, its schedules) are
 *     skipped, as the record-by-record import would have it. These checks
 *     are the directory's only ones between its large tables (migration
 *     010 dropped their foreign keys; nothing deletes from the directory).
 *     Before each table is written, its records referring to a record the
 *     database refused while an earlier table was written (or skipped with
 *     its holder) are refused too, unless that record was stored before.
 *  2. Writes. Each table in the order of hsds_tables (what is referred to
 *     first), its records in chunks written by one statement each
 *     (hsds_write_many). A chunk the database refuses (a bound, a calendar
 *     date) is written again one record at a time, each in its savepoint
 *     (hsds_write), so the bad record is reported with its file, place and
 *     field and the others are taken. A record met again that brings a link
 *     to another holder is written on its own after its table's chunks.
 *  3. The report: counts and problems in the order met, leaving out the
 *     problems of records nested in one refused after the files were read
 *     (those count as skipped, as when their holder is refused at once). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_mem.h"
#include "referral.h"

/* Records of one table per statement. */
#define S_CHUNK 1000

static size_t s_hash(const char *s)
{
    size_t h = (size_t)1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * (size_t)1099511628211ULL;
    return h;
}

int import_map_get(const import_map_t *self, const char *key)
{
    if (!self->cap)
        return -1;
    for (size_t j = s_hash(key) & (self->cap - 1); self->keys[j]; j = (j + 1) & (self->cap - 1))
        if (!strcmp(self->keys[j], key))
            return self->values[j];
    return -1;
}

void import_map_put(import_map_t *self, const char *key, int value)
{
    if ((self->n + 1) * 2 >= self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 1024;
        const char **keys = bc_calloc(cap, sizeof *keys);
        int *values = bc_calloc(cap, sizeof *values);
        for (size_t i = 0; i < self->cap; i++) {
            if (!self->keys[i])
                continue;
            size_t j = s_hash(self->keys[i]) & (cap - 1);
            while (keys[j])
                j = (j + 1) & (cap - 1);
            keys[j] = self->keys[i];
            values[j] = self->values[i];
        }
        free(self->keys);
        free(self->values);
        self->keys = keys;
        self->values = values;
        self->cap = cap;
    }
    size_t j = s_hash(key) & (self->cap - 1);
    while (self->keys[j] && strcmp(self->keys[j], key))
        j = (j + 1) & (self->cap - 1);
    if (!self->keys[j])
        self->n++;
    self->keys[j] = key;
    self->values[j] = value;
}

void import_map_clear(import_map_t *self)
{
    free(self->keys);
    free(self->values);
    memset(self, 0, sizeof *self);
}

import_slot_t *import_plan_add(import_plan_t *plan)
{
    if (plan->n == plan->cap) {
        plan->cap = plan->cap ? plan->cap * 2 : 1024;
        plan->slots = bc_realloc(plan->slots, plan->cap * sizeof *plan->slots);
    }
    import_slot_t *s = &plan->slots[plan->n++];
    memset(s, 0, sizeof *s);
    s->holder = s->first = -1;
    return s;
}

void import_plan_free(import_plan_t *plan)
{
    free(plan->slots);
    memset(plan, 0, sizeof *plan);
}

/* Whether the slot's holders (the records whose collections hold it) are all
 * still going to be written: false once one is refused or skipped. */
static bool s_alive(const import_plan_t *plan, const import_slot_t *s)
{
    for (int h = s->holder; h >= 0; h = plan->slots[h].holder) {
        import_state_t st = plan->slots[h].state;
        if (st == IMPORT_REFUSED || st == IMPORT_SKIPPED)
            return false;
    }
    return true;
}

typedef struct {
    bc_call_t *call;
    import_plan_t *plan;
    import_map_t taken;  /* key -> the slot written for it (first taken) */
    import_map_t stored; /* key -> 1 stored, 0 asked and not stored */
    /* keys to ask the database about, per table referred to */
    const char **ask[HSDS_NTABLES];
    size_t nask[HSDS_NTABLES], capask[HSDS_NTABLES];
    /* records of each table refused or skipped while writing (step 2) */
    size_t lost[HSDS_NTABLES];
} s_writer_t;

static void s_ask(s_writer_t *w, size_t table, const char *key)
{
    import_map_put(&w->stored, key, -2); /* asked for in the next round */
    if (w->nask[table] == w->capask[table]) {
        w->capask[table] = w->capask[table] ? w->capask[table] * 2 : 64;
        w->ask[table] = bc_realloc(w->ask[table], w->capask[table] * sizeof *w->ask[table]);
    }
    w->ask[table][w->nask[table]++] = key;
}

static void s_refuse_dangling(bc_arena_t *arena, import_slot_t *s, const char *field)
{
    s->state = IMPORT_REFUSED;
    s->field = field;
    s->message = bc_arena_printf(arena,
                                 "%s refers to a record that is neither in the directory nor "
                                 "taken from this import",
                                 field);
}

/* One round of step 1 over the whole plan, from what reading found. Keys it
 * cannot decide yet (neither taken before nor asked) are queued for the
 * database; returns how many. */
static size_t s_settle(s_writer_t *w)
{
    import_plan_t *plan = w->plan;
    bc_arena_t *arena = w->call->arena;
    size_t unknown = 0;
    import_map_clear(&w->taken);
    for (size_t i = 0; i < plan->n; i++) {
        import_slot_t *s = &plan->slots[i];
        s->state = s->walked;
        if (s->walked != IMPORT_QUEUED && s->walked != IMPORT_REPEAT)
            continue;
        if (!s_alive(plan, s)) {
            s->state = IMPORT_SKIPPED;
            continue;
        }
        const char *refusal = NULL;
        for (size_t c = 1; c < s->t->ncols && !refusal; c++) {
            const hsds_table_t *to = hsds_refers(s->t, c);
            if (!to || !s->values[c])
                continue;
            char *key = bc_arena_printf(arena, "%d:%s", (int)(to - hsds_tables), s->values[c]);
            int j = import_map_get(&w->taken, key);
            if (j >= 0 || (to == s->t && !strcmp(s->values[c], s->values[0])))
                continue; /* taken before (or itself) */
            int st = import_map_get(&w->stored, key);
            if (st == 1)
                continue;
            if (st == -1) {
                s_ask(w, (size_t)(to - hsds_tables), key);
                unknown++;
                continue; /* decided in the next round */
            }
            if (st == -2) {
                unknown++;
                continue;
            }
            refusal = s->t->cols[c].name;
        }
        if (refusal) {
            s_refuse_dangling(arena, s, refusal);
            continue;
        }
        /* The first of its key taken is the one written; a repeat whose first
         * was refused stands in for it. */
        if (import_map_get(&w->taken, s->key) < 0) {
            import_map_put(&w->taken, s->key, (int)i);
            s->state = IMPORT_QUEUED;
        } else {
            s->state = IMPORT_REPEAT;
        }
    }
    return unknown;
}

/* Asks the database which of the queued keys it holds. */
static int s_ask_database(s_writer_t *w)
{
    for (size_t t = 0; t < HSDS_NTABLES; t++) {
        if (!w->nask[t])
            continue;
        const char **ids = bc_arena_alloc(w->call->arena, w->nask[t] * sizeof *ids);
        for (size_t i = 0; i < w->nask[t]; i++) {
            ids[i] = strchr(w->ask[t][i], ':') + 1;
            import_map_put(&w->stored, w->ask[t][i], 0);
        }
        char **found;
        size_t nfound;
        if (hsds_stored(w->call, &hsds_tables[t], ids, w->nask[t], &found, &nfound) < 0)
            return -1;
        for (size_t k = 0; k < nfound; k++)
            import_map_put(&w->stored, bc_arena_printf(w->call->arena, "%zu:%s", t, found[k]), 1);
        w->nask[t] = 0;
    }
    return 0;
}

/* Writes one record on its own (hsds_write, in its savepoint). */
static int s_write_one(s_writer_t *w, import_slot_t *s)
{
    hsds_row_t row;
    memcpy(row.values, s->values, s->t->ncols * sizeof *s->values);
    const char *field = "";
    char message[300];
    switch (hsds_write(w->call, s->t, &row, &field, message, sizeof message)) {
    case HSDS_FAILED: return -1;
    case HSDS_REFUSED:
        s->state = IMPORT_REFUSED;
        w->lost[s->t - hsds_tables]++;
        s->field = field;
        s->message = bc_arena_strdup(w->call->arena, message);
        break;
    case HSDS_CREATED: s->state = IMPORT_CREATED; break;
    case HSDS_UPDATED: s->state = IMPORT_UPDATED; break;
    case HSDS_UNCHANGED: s->state = IMPORT_UNCHANGED; break;
    }
    return 0;
}

/* Writes the chunk's slots: one statement, or one by one if it is refused (inside the
 * chunk's savepoint, rolled back to and then released). */
static int s_write_chunk(s_writer_t *w, const hsds_table_t *t, import_slot_t **chunk, size_t n)
{
    bc_arena_t *arena = w->call->arena;
    char ***rows = bc_arena_alloc(arena, n * sizeof *rows);
    hsds_outcome_t *outcomes = bc_arena_alloc(arena, n * sizeof *outcomes);
    for (size_t i = 0; i < n; i++)
        rows[i] = chunk[i]->values;
    int rc = hsds_write_many(w->call, t, rows, n, outcomes);
    if (rc < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (rc == 1) {
            if (s_write_one(w, chunk[i]) < 0)
                return -1;
            continue;
        }
        chunk[i]->state = outcomes[i] == HSDS_CREATED   ? IMPORT_CREATED
                          : outcomes[i] == HSDS_UPDATED ? IMPORT_UPDATED
                                                        : IMPORT_UNCHANGED;
    }
    bc_error_t err;
    if (rc == 1 && bc_db_defer(w->call->db, NULL, "RELEASE SAVEPOINT hsds_chunk", 0, NULL, NULL,
                               NULL, &err) < 0)
        return bc_call_fail_err(w->call, &err), -1;
    return 0;
}

static bool s_written(import_state_t st)
{
    return st == IMPORT_CREATED || st == IMPORT_UPDATED || st == IMPORT_UNCHANGED;
}

/* The column of slot s that refers to a record of an earlier table which
 * this import took but then could not write (the database refused it, or
 * its holder), and which was not stored before either; NULL when every
 * reference still holds. With ask, a stored state not known yet is queued
 * for the database instead (and NULL returned). */
static const char *s_reference_lost(s_writer_t *w, const import_slot_t *s, bool ask)
{
    for (size_t c = 1; c < s->t->ncols; c++) {
        const hsds_table_t *to = hsds_refers(s->t, c);
        if (!to || to == s->t || !s->values[c] || !w->lost[to - hsds_tables])
            continue;
        char *key = bc_arena_printf(w->call->arena, "%d:%s", (int)(to - hsds_tables),
                                    s->values[c]);
        int j = import_map_get(&w->taken, key);
        if (j < 0 || s_written(w->plan->slots[j].state))
            continue; /* stored (settled in step 1), or written */
        int st = import_map_get(&w->stored, key);
        if (ask && st == -1)
            s_ask(w, (size_t)(to - hsds_tables), key);
        else if (!ask && st != 1)
            return s->t->cols[c].name;
    }
    return NULL;
}

/* Before table t is written: its records that refer to a record the
 * import lost while writing an earlier table are refused, as the foreign
 * keys of the database would have refused them (migration 010: the
 * references between the directory's tables are the import's to check). */
static int s_refuse_lost_references(s_writer_t *w, const hsds_table_t *t)
{
    bool any = false;
    for (size_t k = 0; k < HSDS_NTABLES && !any; k++)
        any = w->lost[k] > 0;
    if (!any)
        return 0;
    import_plan_t *plan = w->plan;
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < plan->n; i++) {
            import_slot_t *s = &plan->slots[i];
            if (s->t != t || (s->state != IMPORT_QUEUED && s->state != IMPORT_REPEAT))
                continue;
            const char *field = s_reference_lost(w, s, round == 0);
            if (!field)
                continue;
            s_refuse_dangling(w->call->arena, s, field);
            w->lost[t - hsds_tables]++;
        }
        if (round == 0 && s_ask_database(w) < 0)
            return -1;
    }
    return 0;
}

/* Step 2 for table t. */
static int s_write_table(s_writer_t *w, const hsds_table_t *t, search_touched_t *touched)
{
    import_plan_t *plan = w->plan;
    if (s_refuse_lost_references(w, t) < 0)
        return -1;
    import_slot_t **chunk = bc_arena_alloc(w->call->arena, S_CHUNK * sizeof *chunk);
    size_t n = 0;
    for (size_t i = 0; i <= plan->n; i++) {
        import_slot_t *s = i < plan->n ? &plan->slots[i] : NULL;
        if (s && (s->t != t || s->state != IMPORT_QUEUED))
            continue;
        if (s && !s_alive(plan, s)) { /* a holder was refused by the database */
            s->state = IMPORT_SKIPPED;
            w->lost[s->t - hsds_tables]++;
            continue;
        }
        if (s)
            chunk[n++] = s;
        if (n && (n == S_CHUNK || !s)) {
            if (s_write_chunk(w, t, chunk, n) < 0)
                return -1;
            n = 0;
        }
    }
    /* Repeats: one that brings a link is written on its own, as is one whose
     * first was not written; the others change nothing. */
    for (size_t i = 0; i < plan->n; i++) {
        import_slot_t *s = &plan->slots[i];
        if (s->t != t || s->state != IMPORT_REPEAT)
            continue;
        if (!s_alive(plan, s)) {
            s->state = IMPORT_SKIPPED;
            w->lost[t - hsds_tables]++;
            continue;
        }
        int first = import_map_get(&w->taken, s->key);
        bool first_written = first >= 0 && s_written(plan->slots[first].state);
        if (!first_written || s->adds) {
            if (s_write_one(w, s) < 0)
                return -1;
            if (!first_written && s_written(s->state))
                import_map_put(&w->taken, s->key, (int)i);
        } else {
            s->state = IMPORT_UNCHANGED;
        }
    }
    for (size_t i = 0; i < plan->n; i++) {
        import_slot_t *s = &plan->slots[i];
        if (s->t == t && (s->state == IMPORT_CREATED || s->state == IMPORT_UPDATED)) {
            hsds_row_t row;
            memcpy(row.values, s->values, t->ncols * sizeof *s->values);
            search_rows_note(touched, t, &row, s->state == IMPORT_CREATED);
        }
    }
    return 0;
}

static void s_report(bc_call_t *call, const import_slot_t *s,
                     Beacon__Referral__ImportDirectoryReply *r, size_t max)
{
    if (r->n_problems >= max) {
        r->problems_truncated = true;
        return;
    }
    bc_arena_t *arena = call->arena;
    Beacon__Referral__ImportProblem *p = bc_arena_alloc(arena, sizeof *p);
    beacon__referral__import_problem__init(p);
    p->file = (char *)(s->file ? s->file : "");
    p->line = s->line;
    p->at = (char *)(s->at ? s->at : "");
    p->field = (char *)(s->field ? s->field : "");
    p->message = (char *)(s->message ? s->message : "");
    r->problems[r->n_problems++] = p;
}

int import_write(bc_call_t *call, import_plan_t *plan, search_touched_t *touched,
                 Beacon__Referral__ImportDirectoryReply *r, size_t max_problems)
{
    s_writer_t w = {.call = call, .plan = plan};
    int rc = -1;
    /* Step 1: rounds until every reference is decided (two at most, unless a
     * refusal uncovers a reference that was taken before). */
    while (s_settle(&w))
        if (s_ask_database(&w) < 0)
            goto done;
    /* Step 2. */
    for (size_t t = 0; t < HSDS_NTABLES; t++)
        if (s_write_table(&w, &hsds_tables[t], touched) < 0)
            goto done;
    /* Step 3. */
    for (size_t i = 0; i < plan->n; i++) {
        import_slot_t *s = &plan->slots[i];
        bool alive = s_alive(plan, s);
        switch (s->state) {
        case IMPORT_REFUSED:
        case IMPORT_KEPT_FIRST:
            if (!alive) {
                r->skipped += s->item + s->nested;
                break;
            }
            r->refused++;
            r->skipped += s->nested;
            s_report(call, s, r, max_problems);
            break;
        case IMPORT_SKIPPED:
        case IMPORT_QUEUED:
        case IMPORT_REPEAT: r->skipped += s->item; break;
        case IMPORT_CREATED: r->created++, r->taken++; break;
        case IMPORT_UPDATED: r->updated++, r->taken++; break;
        case IMPORT_UNCHANGED: r->unchanged++, r->taken++; break;
        }
    }
    rc = 0;
done:
    import_map_clear(&w.taken);
    import_map_clear(&w.stored);
    for (size_t t = 0; t < HSDS_NTABLES; t++)
        free(w.ask[t]);
    return rc;
}
