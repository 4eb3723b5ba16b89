/*  billing_units: the units counted against a payer's limits while claims
 *  are built (per client and day, per client and enrollment episode), and
 *  where the units already billed come from.
 *
 *  A table of units per key ("client|day", "client|episode start") lives in
 *  the arena of one chunk of encounters. A batch reads the units billed
 *  before it began through a cursor of its own (billing_prior_open), in
 *  client order like its encounters, so each chunk takes just the rows of
 *  its clients and the database is read once however many chunks there
 *  are; the units of the batch's own claims are counted in the table as
 *  they are decided, and those of the chunk's last client (whose encounters
 *  may go on in the next chunk) carried over. The rows a chunk needs are
 *  fetched when it is read (billing_prior_prefetch), so that deciding it
 *  later needs no database while the connection stores the chunk before. (Asking the database per
 *  chunk instead, PostgreSQL planned the read, without statistics on a
 *  table the batch itself fills, through claims_status: every claim of the
 *  agency read for each chunk, 5.4 of the 16.4 s of a batch of 90,000.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_log.h"
#include "bc_util.h"
#include "billing_internal.h"

/* ---- the table ---------------------------------------------------------------------- */

typedef struct {
    char *key;
    int units;
} s_slot_t;

struct billing_units {
    s_slot_t *slots;
    size_t cap, used;
    bc_arena_t *arena;
};

static size_t s_hash(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

billing_units_t *billing_units_new(bc_arena_t *arena, size_t expect)
{
    billing_units_t *t = bc_arena_calloc(arena, sizeof *t);
    t->arena = arena;
    t->cap = 64;
    while (t->cap < expect * 2)
        t->cap <<= 1;
    t->slots = bc_arena_calloc(arena, t->cap * sizeof *t->slots);
    return t;
}

static s_slot_t *s_probe(s_slot_t *slots, size_t cap, const char *key)
{
    size_t i = s_hash(key) & (cap - 1);
    while (slots[i].key && strcmp(slots[i].key, key))
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* The table doubles when half full, so a probe always ends. */
int *billing_units_at(billing_units_t *t, const char *a, const char *b)
{
    char key[96];
    snprintf(key, sizeof key, "%s|%s", a, b);
    s_slot_t *slot = s_probe(t->slots, t->cap, key);
    if (slot->key)
        return &slot->units;
    if (2 * (t->used + 1) > t->cap) {
        size_t cap = t->cap * 2;
        s_slot_t *slots = bc_arena_calloc(t->arena, cap * sizeof *slots);
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].key)
                *s_probe(slots, cap, t->slots[i].key) = t->slots[i];
        t->slots = slots;
        t->cap = cap;
        slot = s_probe(t->slots, t->cap, key);
    }
    slot->key = bc_arena_strdup(t->arena, key);
    slot->units = 0;
    t->used++;
    return &slot->units;
}

/* ---- the units billed before a batch ------------------------------------------------ */

typedef struct {
    char key[96];
    int units;
} s_carried_t;

struct billing_prior {
    PGresult **queue; /* the rows fetched and not yet taken, oldest first, */
    int row;          /* the first of them at queue[0]'s row */
    size_t n, cap;
    bool end;
    char client[37];     /* the client whose units are carried */
    s_carried_t *carried;
    size_t n_carried, cap_carried;
};

#define S_PRIOR_FETCH "FETCH 4000 FROM billing_prior_units"

billing_prior_t *billing_prior_open(bc_call_t *call, const char *agency_id, const char *from,
                                    const char *to, bool whole_history)
{
    /* Originals and replacements that went or are going out, of the
     * clients with encounters in the range (the range's days only, unless
     * an episode limit needs their whole history). Declared after the
     * batch took its corrections and before it stores a claim: its
     * snapshot holds exactly what was billed before. */
    const char *params[] = {agency_id, from, to, whole_history ? "t" : "f"};
    bc_error_t err;
    PGresult *res = bc_db_query(
        call->db,
        "DECLARE billing_prior_units NO SCROLL CURSOR FOR "
        "SELECT c.client_id::text, to_char(c.service_date, 'YYYY-MM-DD'), sum(c.units)::int "
        "FROM billing.claims c WHERE c.agency_id = $1 AND c.frequency IN ('1', '7') "
        "AND c.status IN ('ready', 'submitted', 'accepted', 'paid') "
        "AND ($4::bool OR c.service_date BETWEEN $2::date AND $3::date) "
        "AND c.client_id IN (SELECT e.client_id FROM scheduling.encounters e "
        "  WHERE e.agency_id = $1 "
        "  AND e.starts_at >= ($2::date - 1)::timestamp AT TIME ZONE 'UTC' "
        "  AND e.starts_at < ($3::date + 2)::timestamp AT TIME ZONE 'UTC') "
        "GROUP BY c.client_id, c.service_date ORDER BY c.client_id, c.service_date",
        4, params, &err);
    if (!res) {
        bc_call_fail_err(call, &err);
        return NULL;
    }
    PQclear(res);
    return bc_calloc(1, sizeof(billing_prior_t));
}

void billing_prior_close(billing_prior_t **self)
{
    if (!self || !*self)
        return;
    for (size_t i = 0; i < (*self)->n; i++)
        PQclear((*self)->queue[i]);
    free((*self)->queue);
    free((*self)->carried);
    free(*self);
    *self = NULL;
}

/* Fetches the cursor's next rows onto the queue: false at the end or on
 * failure (then -1 in *rc with call->err set). */
static bool s_fetch(billing_prior_t *self, bc_call_t *call, int *rc)
{
    if (self->end)
        return false;
    bc_error_t err;
    PGresult *res = bc_db_query(call->db, S_PRIOR_FETCH, 0, NULL, &err);
    if (!res || PQntuples(res) == 0) {
        self->end = true;
        if (!res) {
            *rc = -1;
            bc_call_fail_err(call, &err);
        }
        PQclear(res);
        return false;
    }
    if (self->n == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 4;
        self->queue = bc_realloc(self->queue, self->cap * sizeof *self->queue);
    }
    self->queue[self->n++] = res;
    return true;
}

/* The client of the next row, fetching when needed; NULL at the end or on
 * failure (then -1 in *rc with call->err set). */
static const char *s_next_client(billing_prior_t *self, bc_call_t *call, int *rc)
{
    for (;;) {
        if (self->n > 0 && self->row < PQntuples(self->queue[0]))
            return PQgetvalue(self->queue[0], self->row, 0);
        if (self->n > 0) {
            PQclear(self->queue[0]);
            memmove(self->queue, self->queue + 1, --self->n * sizeof *self->queue);
            self->row = 0;
        } else if (!s_fetch(self, call, rc)) {
            return NULL;
        }
    }
}

int billing_prior_prefetch(billing_prior_t *self, bc_call_t *call, const char *client)
{
    int rc = 0;
    for (;;) {
        if (self->n > 0) {
            PGresult *tail = self->queue[self->n - 1];
            if (strcmp(PQgetvalue(tail, PQntuples(tail) - 1, 0), client) > 0)
                break;
        }
        if (!s_fetch(self, call, &rc))
            break;
    }
    return rc;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int billing_prior_take(billing_prior_t *self, bc_call_t *call, char *const *clients, int n,
                       billing_units_t *units, billing_prior_add_fn add, void *arg)
{
    /* What the previous chunk counted for its last client first. */
    if (n > 0 && !strcmp(self->client, clients[0]))
        for (size_t i = 0; i < self->n_carried; i++) {
            s_carried_t *c = &self->carried[i];
            char *bar = strchr(c->key, '|');
            *bar = '\0';
            *billing_units_at(units, c->key, bar + 1) += c->units;
            *bar = '|';
        }
    self->n_carried = 0;
    self->client[0] = '\0';
    if (n == 0)
        return 0;
    const char *last = clients[n - 1], *client;
    int rc = 0;
    while ((client = s_next_client(self, call, &rc)) && strcmp(client, last) <= 0) {
        if (bsearch(&client, clients, (size_t)n, sizeof *clients, s_cmp_str))
            add(arg, client, PQgetvalue(self->queue[0], self->row, 1),
                atoi(PQgetvalue(self->queue[0], self->row, 2)));
        self->row++;
    }
    return rc;
}

void billing_prior_carry(billing_prior_t *self, const billing_units_t *units, const char *client)
{
    size_t len = strlen(client);
    snprintf(self->client, sizeof self->client, "%s", client);
    self->n_carried = 0;
    for (size_t i = 0; i < units->cap; i++) {
        const s_slot_t *s = &units->slots[i];
        if (!s->key || strncmp(s->key, client, len) || s->key[len] != '|')
            continue;
        if (self->n_carried == self->cap_carried) {
            self->cap_carried = self->cap_carried ? self->cap_carried * 2 : 64;
            self->carried = bc_realloc(self->carried, self->cap_carried * sizeof *self->carried);
        }
        s_carried_t *c = &self->carried[self->n_carried++];
        snprintf(c->key, sizeof c->key, "%s", s->key);
        c->units = s->units;
    }
}
