/*  session_cache: the gateway's memory of recently authenticated tokens, so
 *  that a signed-in user's requests do not each cost an identity round trip
 *  and a database query.
 *
 *  Keyed by the token's SHA-256 (the token itself is never kept). An entry
 *  holds the packed AuthenticateReply identity gave and lives until the
 *  earliest of: ttl_ms after it was cached (at most 60 s), the session's
 *  idle expiry, the session's absolute expiry. The idle expiry identity
 *  extends on each Authenticate therefore still moves while a user works:
 *  a cached session goes back to identity at least once a TTL.
 *
 *  Revocation is immediate, not eventual:
 *   - identity sends NOTIFY beacon_identity, '<kind>:<id>' in the same
 *     transaction as every logout, staff change or disable and key
 *     revocation (services/gateway/identity_common.c). A thread here LISTENs
 *     on its own connection and evicts the entries of that session, staff
 *     member or key; every gateway process does this, so a revocation made
 *     through one gateway reaches all of them as the transaction commits.
 *   - while that connection is down (or not yet up) nothing is cached and
 *     nothing is served from the cache: every request asks identity. After a
 *     reconnect the cache starts empty (notifications may have been missed).
 *   - the routes that revoke flush this gateway's cache as soon as their
 *     reply arrives (gw_sessions_flush), before the caller can send the next
 *     request, so the caller's own gateway never depends on the notification
 *     arriving first.
 *   - every eviction bumps an epoch. A request notes the epoch before it asks
 *     identity and its answer is cached only if no eviction happened
 *     meanwhile: an answer read just before a revocation committed can never
 *     be cached after the revocation's eviction.
 *
 *  Threads: any gateway thread calls get/put/flush (one mutex; a lookup is a
 *  hash probe and a copy); the listener thread evicts.
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "bc_auth.h"
#include "bc_log.h"
#include "bc_mem.h"
#include "bc_util.h"
#include "gateway.h"
#include "identity.pb-c.h"

#define S_CHANNEL "beacon_identity"
#define S_RETRY_MS 1000

typedef struct s_entry {
    struct s_entry *next;
    char key[BC_TOKEN_HASH_LEN + 1];
    int64_t expires_ms; /* wall clock */
    char *session_id, *staff_id, *api_key_id;
    uint8_t *packed;
    size_t packed_len;
} s_entry_t;

struct gw_sessions {
    pthread_mutex_t lock;
    s_entry_t **buckets;
    size_t nbuckets, count, max_entries;
    int64_t ttl_ms;
    uint64_t epoch;
    bool live; /* the LISTEN connection is up */
    uint64_t hits, misses;
    char *conninfo;
    pthread_t thread;
    bool started;
    volatile sig_atomic_t stop;
};

static size_t s_bucket(const gw_sessions_t *self, const char *key)
{
    /* The key is a SHA-256 in hex: its first 16 digits are already uniform. */
    uint64_t h = 0;
    for (int i = 0; i < 16 && key[i]; i++)
        h = h * 16 + (uint64_t)(key[i] <= '9' ? key[i] - '0' : key[i] - 'a' + 10);
    return (size_t)(h % self->nbuckets);
}

static void s_entry_free(s_entry_t *e)
{
    free(e->session_id);
    free(e->staff_id);
    free(e->api_key_id);
    free(e->packed);
    free(e);
}

/* Removes every entry for which match(e, arg) holds; caller holds the lock. */
static size_t s_evict_locked(gw_sessions_t *self, bool (*match)(const s_entry_t *, const void *),
                             const void *arg)
{
    size_t n = 0;
    for (size_t b = 0; b < self->nbuckets; b++) {
        s_entry_t **pp = &self->buckets[b];
        while (*pp) {
            s_entry_t *e = *pp;
            if (match(e, arg)) {
                *pp = e->next;
                s_entry_free(e);
                self->count--;
                n++;
            } else {
                pp = &e->next;
            }
        }
    }
    self->epoch++;
    return n;
}

static bool s_match_all(const s_entry_t *e, const void *arg)
{
    (void)e;
    (void)arg;
    return true;
}

static bool s_match_expired(const s_entry_t *e, const void *arg)
{
    return e->expires_ms <= *(const int64_t *)arg;
}

typedef struct {
    const char *kind, *id;
} s_target_t;

static bool s_match_target(const s_entry_t *e, const void *arg)
{
    const s_target_t *t = arg;
    if (!strcmp(t->kind, "session"))
        return !strcmp(e->session_id, t->id);
    if (!strcmp(t->kind, "staff"))
        return !strcmp(e->staff_id, t->id);
    if (!strcmp(t->kind, "api_key"))
        return !strcmp(e->api_key_id, t->id);
    return true; /* an unknown kind: be safe, forget everything */
}

/* RFC 3339 UTC as identity writes it (YYYY-MM-DDTHH:MM:SS.mmmZ) in ms, or
 * -1 when it cannot be read. */
static int64_t s_parse_time(const char *s)
{
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!end)
        return -1;
    int64_t ms = 0;
    if (*end == '.') {
        int digits = 0;
        for (end++; *end >= '0' && *end <= '9'; end++)
            if (digits < 3) {
                ms = ms * 10 + (*end - '0');
                digits++;
            }
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (*end != 'Z')
        return -1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

gw_sessions_t *gw_sessions_new(const char *conninfo, int64_t ttl_ms, size_t max_entries)
{
    gw_sessions_t *self = bc_calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->ttl_ms = ttl_ms;
    self->max_entries = max_entries ? max_entries : 1;
    self->nbuckets = self->max_entries;
    self->buckets = bc_calloc(self->nbuckets, sizeof *self->buckets);
    self->conninfo = conninfo ? bc_strdup(conninfo) : NULL;
    return self;
}

bool gw_sessions_get(gw_sessions_t *self, const char *token_hash, int64_t now_ms,
                     Beacon__Identity__AuthenticateReply **out)
{
    *out = NULL;
    if (!self || self->ttl_ms <= 0)
        return false;
    uint8_t *copy = NULL;
    size_t len = 0;
    pthread_mutex_lock(&self->lock);
    if (self->live) {
        for (s_entry_t *e = self->buckets[s_bucket(self, token_hash)]; e; e = e->next)
            if (!strcmp(e->key, token_hash)) {
                if (e->expires_ms > now_ms) {
                    copy = bc_malloc(e->packed_len ? e->packed_len : 1);
                    memcpy(copy, e->packed, e->packed_len);
                    len = e->packed_len;
                }
                break;
            }
    }
    if (copy)
        self->hits++;
    else
        self->misses++;
    pthread_mutex_unlock(&self->lock);
    if (!copy)
        return false;
    *out = (Beacon__Identity__AuthenticateReply *)protobuf_c_message_unpack(
        &beacon__identity__authenticate_reply__descriptor, NULL, len, copy);
    free(copy);
    return *out != NULL;
}

uint64_t gw_sessions_epoch(gw_sessions_t *self)
{
    if (!self)
        return 0;
    pthread_mutex_lock(&self->lock);
    uint64_t e = self->epoch;
    pthread_mutex_unlock(&self->lock);
    return e;
}

void gw_sessions_put(gw_sessions_t *self, const char *token_hash, uint64_t epoch,
                     const Beacon__Identity__AuthenticateReply *reply, int64_t now_ms)
{
    if (!self || self->ttl_ms <= 0 || !reply->principal)
        return;
    int64_t expires = now_ms + self->ttl_ms;
    const char *times[] = {reply->idle_expires_at, reply->expires_at};
    for (int i = 0; i < 2; i++) {
        if (!times[i] || !*times[i])
            continue; /* API keys have no expiry */
        int64_t t = s_parse_time(times[i]);
        if (t < 0)
            return; /* unreadable: do not guess */
        if (t < expires)
            expires = t;
    }
    if (expires <= now_ms)
        return;
    s_entry_t *e = bc_calloc(1, sizeof *e);
    snprintf(e->key, sizeof e->key, "%s", token_hash);
    e->expires_ms = expires;
    e->session_id = bc_strdup(reply->principal->session_id ? reply->principal->session_id : "");
    e->staff_id = bc_strdup(reply->principal->staff_id ? reply->principal->staff_id : "");
    e->api_key_id = bc_strdup(reply->principal->api_key_id ? reply->principal->api_key_id : "");
    e->packed_len = protobuf_c_message_get_packed_size(&reply->base);
    e->packed = bc_malloc(e->packed_len ? e->packed_len : 1);
    protobuf_c_message_pack(&reply->base, e->packed);

    pthread_mutex_lock(&self->lock);
    if (!self->live || self->epoch != epoch) {
        pthread_mutex_unlock(&self->lock);
        s_entry_free(e);
        return;
    }
    if (self->count >= self->max_entries) {
        s_evict_locked(self, s_match_expired, &now_ms);
        if (self->count >= self->max_entries)
            s_evict_locked(self, s_match_all, NULL);
        /* Eviction moved the epoch; this answer is still current. */
    }
    size_t b = s_bucket(self, token_hash);
    for (s_entry_t **pp = &self->buckets[b]; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->key, token_hash)) {
            s_entry_t *old = *pp;
            *pp = old->next;
            s_entry_free(old);
            self->count--;
            break;
        }
    e->next = self->buckets[b];
    self->buckets[b] = e;
    self->count++;
    pthread_mutex_unlock(&self->lock);
}

void gw_sessions_flush(gw_sessions_t *self)
{
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    s_evict_locked(self, s_match_all, NULL);
    pthread_mutex_unlock(&self->lock);
}

void gw_sessions_evict(gw_sessions_t *self, const char *what)
{
    if (!self)
        return;
    char kind[32];
    const char *colon = strchr(what, ':');
    size_t klen = colon ? (size_t)(colon - what) : 0;
    s_target_t t = {.kind = "", .id = colon ? colon + 1 : ""};
    if (colon && klen < sizeof kind) {
        memcpy(kind, what, klen);
        kind[klen] = '\0';
        t.kind = kind;
    }
    pthread_mutex_lock(&self->lock);
    size_t n = s_evict_locked(self, s_match_target, &t);
    pthread_mutex_unlock(&self->lock);
    bc_debug("session cache: %s revoked, %zu entr%s evicted", what, n, n == 1 ? "y" : "ies");
}

void gw_sessions_stats(gw_sessions_t *self, uint64_t *hits, uint64_t *misses, size_t *entries,
                       bool *live)
{
    pthread_mutex_lock(&self->lock);
    *hits = self->hits;
    *misses = self->misses;
    *entries = self->count;
    *live = self->live;
    pthread_mutex_unlock(&self->lock);
}

static void s_set_live(gw_sessions_t *self, bool live)
{
    pthread_mutex_lock(&self->lock);
    s_evict_locked(self, s_match_all, NULL);
    self->live = live;
    pthread_mutex_unlock(&self->lock);
}

/* Connects and LISTENs; NULL (logged) when it cannot. */
static PGconn *s_listen(gw_sessions_t *self)
{
    PGconn *conn = PQconnectdb(self->conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        bc_warn("session cache off: cannot connect to listen for revocations: %s",
                PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PGresult *res = PQexecParams(conn, "LISTEN " S_CHANNEL, 0, NULL, NULL, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        bc_warn("session cache off: LISTEN failed: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

static void *s_listener(void *arg)
{
    gw_sessions_t *self = arg;
    PGconn *conn = NULL;
    int64_t retry_at = 0;
    while (!self->stop) {
        if (!conn) {
            if (bc_mono_ms() < retry_at) {
                poll(NULL, 0, 100);
                continue;
            }
            conn = s_listen(self);
            if (!conn) {
                retry_at = bc_mono_ms() + S_RETRY_MS;
                continue;
            }
            s_set_live(self, true);
            bc_info("session cache on: listening for revocations");
        }
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        int r = poll(&pfd, 1, 200);
        bool broken = r < 0 || (r > 0 && !PQconsumeInput(conn)) || PQstatus(conn) != CONNECTION_OK;
        PGnotify *n;
        while (!broken && (n = PQnotifies(conn)) != NULL) {
            gw_sessions_evict(self, n->extra);
            PQfreemem(n);
        }
        if (broken) {
            /* Revocations may be missed from here on: stop trusting the cache. */
            s_set_live(self, false);
            bc_warn("session cache off: lost the revocation listener: %s", PQerrorMessage(conn));
            PQfinish(conn);
            conn = NULL;
            retry_at = bc_mono_ms() + S_RETRY_MS;
        }
    }
    s_set_live(self, false);
    PQfinish(conn);
    return NULL;
}

int gw_sessions_start(gw_sessions_t *self)
{
    if (!self->conninfo || self->ttl_ms <= 0)
        return 0; /* caching off: nothing to listen for */
    if (pthread_create(&self->thread, NULL, s_listener, self) != 0)
        return -1;
    self->started = true;
    return 0;
}

bool gw_sessions_live(gw_sessions_t *self)
{
    pthread_mutex_lock(&self->lock);
    bool live = self->live;
    pthread_mutex_unlock(&self->lock);
    return live;
}

void gw_sessions_destroy(gw_sessions_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_sessions_t *self = *self_p;
    if (self->started) {
        self->stop = 1;
        pthread_join(self->thread, NULL);
    }
    for (size_t b = 0; b < self->nbuckets; b++)
        while (self->buckets[b]) {
            s_entry_t *e = self->buckets[b];
            self->buckets[b] = e->next;
            s_entry_free(e);
        }
    free(self->buckets);
    free(self->conninfo);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}
