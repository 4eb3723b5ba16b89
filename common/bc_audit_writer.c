/*  bc_audit_writer: one thread, one connection, one audit chain; events
 *  from many requests committed together (see the header). */
#include "bc_audit_writer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_log.h"
#include "bc_mem.h"
#include "bc_util.h"

#define S_BATCH_MAX 256      /* events per batch (one statement) */
#define S_LINGER_BATCH 8     /* batches this large mean load: wait for more */
#define S_FAILED_RANGES 256  /* failed batches remembered */
#define S_RECONNECT_MS 1000  /* back-off budget when the connection is gone */

_Static_assert(S_BATCH_MAX <= BC_AUDIT_BATCH_MAX, "a batch must fit bc_audit_append_batch");

typedef struct s_item {
    struct s_item *next;
    uint64_t ticket;
    bc_audit_event_t ev; /* strings point into text */
    char *text;
} s_item_t;

struct bc_audit_writer {
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* events queued, or stopping */
    pthread_cond_t settled; /* a batch settled */
    pthread_t thread;
    bool started, stopping;
    s_item_t *head, *tail;
    uint64_t next_ticket;
    uint64_t settled_upto; /* every ticket <= this has settled */
    struct {
        uint64_t first, last;
    } failed[S_FAILED_RANGES];
    unsigned nfailed; /* total failed batches; ring index = n % size */
    bc_db_t *db;
    bc_audit_chain_t *chain;
    int64_t delay_us;  /* commit delay under load (0: none) */
    uint64_t last_batch; /* events in the last batch written */
    size_t queued;     /* events waiting */
    bool lingering;    /* waiting for more events: submit need not wake us */
    bc_audit_event_t evs[S_BATCH_MAX]; /* the batch being written (writer thread) */
    bc_audit_settled_fn notify;
    void *notify_arg;
};

/* One allocation per event: the struct and every string after it. */
static s_item_t *s_item_new(const bc_audit_event_t *ev)
{
    const char *const *fields[] = {&ev->request_id, &ev->actor_staff_id, &ev->actor_api_key_id,
                                   &ev->agency_id,  &ev->site_id,        &ev->action,
                                   &ev->resource_type, &ev->resource_id, &ev->client_id,
                                   &ev->purpose,    &ev->outcome,        &ev->detail};
    size_t n = sizeof fields / sizeof fields[0], total = 0;
    for (size_t i = 0; i < n; i++)
        total += *fields[i] ? strlen(*fields[i]) + 1 : 0;
    s_item_t *it = bc_calloc(1, sizeof *it);
    it->text = bc_malloc(total ? total : 1);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    it->ev.at_us = ev->at_us ? ev->at_us : (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    const char **dst[] = {&it->ev.request_id, &it->ev.actor_staff_id, &it->ev.actor_api_key_id,
                          &it->ev.agency_id,  &it->ev.site_id,        &it->ev.action,
                          &it->ev.resource_type, &it->ev.resource_id, &it->ev.client_id,
                          &it->ev.purpose,    &it->ev.outcome,        &it->ev.detail};
    char *p = it->text;
    for (size_t i = 0; i < n; i++) {
        if (!*fields[i])
            continue;
        size_t len = strlen(*fields[i]);
        memcpy(p, *fields[i], len + 1);
        *dst[i] = p;
        p += len + 1;
    }
    return it;
}

static void s_items_free(s_item_t *it)
{
    while (it) {
        s_item_t *next = it->next;
        free(it->text);
        free(it);
        it = next;
    }
}

/* Writes one batch: one statement outside any transaction, so the rows and
 * their commit take one round trip (bc_audit_append_batch; all rows or
 * none). On failure the batch is tried once more on a fresh connection (a
 * dropped connection is the common cause; if the lost statement did commit,
 * the retry finds the head out of step, re-reads it and writes the events
 * again after it: recorded twice, never missing). */
static bool s_write(bc_audit_writer_t *self, s_item_t *batch)
{
    size_t n = 0;
    for (s_item_t *it = batch; it && n < S_BATCH_MAX; it = it->next)
        self->evs[n++] = it->ev;
    for (int attempt = 0; attempt < 2; attempt++) {
        bc_error_t err;
        if (!bc_db_ok(self->db) && bc_db_connect(self->db, S_RECONNECT_MS, &err) < 0)
            continue;
        if (bc_audit_append_batch(self->chain, self->db, self->evs, n, &err) == 0)
            return true;
        bc_audit_rollback(self->chain); /* nothing of it was written */
        bc_warn("audit batch not written (attempt %d): %s (%s)", attempt + 1, err.message,
                err.detail);
    }
    return false;
}

static void *s_run(void *arg)
{
    bc_audit_writer_t *self = arg;
    for (;;) {
        pthread_mutex_lock(&self->lock);
        while (!self->head && !self->stopping)
            pthread_cond_wait(&self->wake, &self->lock);
        if (!self->head) {
            pthread_mutex_unlock(&self->lock);
            break; /* stopping, nothing left */
        }
        /* Under load (the last batch held S_LINGER_BATCH events or more)
         * wait up to delay_us for more events, or until a full batch is
         * queued: one commit (one WAL flush) then serves many reads. Below
         * that, events are written at once: their latency matters more
         * than the flushes saved. */
        if (self->delay_us > 0 && self->last_batch >= S_LINGER_BATCH &&
            self->queued < S_BATCH_MAX &&
            !self->stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += (long)(self->delay_us % 1000000) * 1000L;
            until.tv_sec += self->delay_us / 1000000 + until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            self->lingering = true;
            while (self->queued < S_BATCH_MAX && !self->stopping &&
                   pthread_cond_timedwait(&self->wake, &self->lock, &until) == 0)
                ;
            self->lingering = false;
        }
        /* Take up to S_BATCH_MAX events; later ones wait for the next batch. */
        s_item_t *batch = self->head, *last = batch;
        size_t n = 1;
        for (; n < S_BATCH_MAX && last->next; n++)
            last = last->next;
        self->head = last->next;
        if (!self->head)
            self->tail = NULL;
        last->next = NULL;
        self->queued -= n;
        self->last_batch = n;
        pthread_mutex_unlock(&self->lock);

        bool ok = s_write(self, batch);

        pthread_mutex_lock(&self->lock);
        if (!ok) {
            unsigned slot = self->nfailed++ % S_FAILED_RANGES;
            self->failed[slot].first = batch->ticket;
            self->failed[slot].last = last->ticket;
            bc_err("audit: %llu event(s) could not be written; their data is withheld",
                   (unsigned long long)(last->ticket - batch->ticket + 1));
        }
        self->settled_upto = last->ticket;
        pthread_cond_broadcast(&self->settled);
        pthread_mutex_unlock(&self->lock);
        s_items_free(batch);
        if (self->notify)
            self->notify(self->notify_arg);
    }
    return NULL;
}

bc_audit_writer_t *bc_audit_writer_new(const char *conninfo, const char *service, int index,
                                       bc_audit_settled_fn settled, void *arg, bc_error_t *err)
{
    bc_audit_writer_t *self = bc_calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->settled, NULL);
    self->next_ticket = 1;
    self->notify = settled;
    self->notify_arg = arg;
    char name[96];
    snprintf(name, sizeof name, "beacon-%s-audit", service);
    self->db = bc_db_new(conninfo, name);
    if (bc_db_connect(self->db, 5000, err) < 0 ||
        !(self->chain = bc_audit_chain_new(self->db, service, index, err))) {
        bc_audit_writer_destroy(&self);
        return NULL;
    }
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) {
        bc_error_set(err, BC_INTERNAL, "", "cannot start the audit writer");
        bc_audit_writer_destroy(&self);
        return NULL;
    }
    self->started = true;
    return self;
}

void bc_audit_writer_destroy(bc_audit_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bc_audit_writer_t *self = *self_p;
    if (self->started) {
        pthread_mutex_lock(&self->lock);
        self->stopping = true;
        pthread_cond_broadcast(&self->wake);
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->thread, NULL);
    }
    if (self->chain) {
        bc_error_t err;
        if (bc_db_ok(self->db) && bc_audit_chain_anchor(self->chain, self->db, &err) < 0)
            bc_warn("audit: final anchor not written: %s", err.detail);
        bc_audit_chain_destroy(&self->chain);
    }
    s_items_free(self->head);
    bc_db_destroy(&self->db);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->wake);
    pthread_cond_destroy(&self->settled);
    free(self);
    *self_p = NULL;
}

uint64_t bc_audit_writer_submit(bc_audit_writer_t *self, const bc_audit_event_t *ev,
                                bc_error_t *err)
{
    if (bc_audit_event_check(ev, err) < 0)
        return 0;
    s_item_t *it = s_item_new(ev);
    pthread_mutex_lock(&self->lock);
    if (self->stopping) {
        pthread_mutex_unlock(&self->lock);
        s_items_free(it);
        bc_error_set(err, BC_UNAVAILABLE, "", "audit writer is stopping");
        return 0;
    }
    uint64_t ticket = it->ticket = self->next_ticket++;
    if (self->tail)
        self->tail->next = it;
    else
        self->head = it;
    self->tail = it;
    self->queued++;
    /* A lingering writer is woken only by a full batch (or its timeout). */
    if (!self->lingering || self->queued >= S_BATCH_MAX)
        pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    return ticket; /* not it->ticket: once unlocked, the writer may have freed it */
}

static bc_audit_state_t s_state_locked(bc_audit_writer_t *self, uint64_t ticket)
{
    if (ticket == 0 || ticket > self->settled_upto)
        return BC_AUDIT_PENDING;
    unsigned n = self->nfailed < S_FAILED_RANGES ? self->nfailed : S_FAILED_RANGES;
    for (unsigned i = 0; i < n; i++)
        if (ticket >= self->failed[i].first && ticket <= self->failed[i].last)
            return BC_AUDIT_FAILED;
    return BC_AUDIT_DURABLE;
}

bc_audit_state_t bc_audit_writer_state(bc_audit_writer_t *self, uint64_t ticket)
{
    pthread_mutex_lock(&self->lock);
    bc_audit_state_t st = s_state_locked(self, ticket);
    pthread_mutex_unlock(&self->lock);
    return st;
}

bc_audit_state_t bc_audit_writer_wait(bc_audit_writer_t *self, uint64_t ticket, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&self->lock);
    bc_audit_state_t st;
    while ((st = s_state_locked(self, ticket)) == BC_AUDIT_PENDING &&
           pthread_cond_timedwait(&self->settled, &self->lock, &until) == 0)
        ;
    pthread_mutex_unlock(&self->lock);
    return st;
}

void bc_audit_writer_set_commit_delay(bc_audit_writer_t *self, int64_t delay_us)
{
    pthread_mutex_lock(&self->lock);
    self->delay_us = delay_us > 0 ? delay_us : 0;
    pthread_mutex_unlock(&self->lock);
}

const char *bc_audit_writer_chain(const bc_audit_writer_t *self)
{
    return bc_audit_chain_id(self->chain);
}
