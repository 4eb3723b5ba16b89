/*  bc_metrics: counters, gauges and histograms in Prometheus text format
 *  (see the header). Registration and rendering take the registry's mutex;
 *  updates touch only the series' atomics.
 */
#include "bc_metrics.h"

#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "bc_mem.h"

#define S_MAX_BUCKETS 32

const double bc_metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t bc_metrics_latency_nbuckets =
    sizeof bc_metrics_latency_buckets / sizeof bc_metrics_latency_buckets[0];

struct bc_counter {
    _Atomic uint64_t value;
};

struct bc_gauge {
    _Atomic int64_t value;
};

struct bc_histogram {
    size_t nbounds;
    uint64_t bound_us[S_MAX_BUCKETS]; /* upper bounds, inclusive */
    double bound_s[S_MAX_BUCKETS];
    _Atomic uint64_t buckets[S_MAX_BUCKETS + 1]; /* per bucket (not cumulative); last: +Inf */
    _Atomic uint64_t sum_us;
};

typedef enum { S_COUNTER, S_GAUGE, S_GAUGE_FN, S_HISTOGRAM } s_kind_t;

typedef struct s_series {
    struct s_series *next;
    char *labels; /* rendered and escaped: a="x",b="y" (or "") */
    int flags;
    void *value; /* bc_counter_t, bc_gauge_t or bc_histogram_t */
    double (*fn)(void *);
    void *arg;
} s_series_t;

typedef struct s_family {
    struct s_family *next;
    char *name, *help;
    s_kind_t kind;
    s_series_t *head, *tail;
} s_family_t;

struct bc_metrics {
    pthread_mutex_t lock;
    char *service; /* rendered service="..." label, or NULL */
    s_family_t *head, *tail;
};

/* ---- text buffer --------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} s_buf_t;

static void s_reserve(s_buf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->p = bc_realloc(b->p, cap);
    b->cap = cap;
}

static void s_append(s_buf_t *b, const char *s, size_t n)
{
    s_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void s_printf(s_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_printf(s_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    s_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static char *s_finish(s_buf_t *b, size_t *len)
{
    if (!b->p) { /* nothing appended: an empty string */
        s_reserve(b, 0);
        b->p[0] = '\0';
    }
    if (len)
        *len = b->len;
    return b->p;
}

/* ---- names and labels ---------------------------------------------------- */

static bool s_valid_name(const char *s, bool colon)
{
    if (!s || !*s || isdigit((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || (colon && *s == ':')))
            return false;
    return true;
}

int bc_metrics_escape_label(const char *value, char *out, size_t out_size)
{
    size_t o = 0;
    for (const char *p = value; *p; p++) {
        const char *rep = NULL;
        if (*p == '\\')
            rep = "\\\\";
        else if (*p == '"')
            rep = "\\\"";
        else if (*p == '\n')
            rep = "\\n";
        size_t n = rep ? 2 : 1;
        if (o + n + 1 > out_size) {
            if (out_size)
                out[0] = '\0';
            return -1;
        }
        if (rep)
            memcpy(out + o, rep, 2);
        else
            out[o] = *p;
        o += n;
    }
    if (o + 1 > out_size)
        return -1;
    out[o] = '\0';
    return (int)o;
}

static void s_append_label(s_buf_t *b, const char *name, const char *value)
{
    size_t cap = strlen(value) * 2 + 1;
    char *esc = bc_malloc(cap);
    bc_metrics_escape_label(value, esc, cap);
    s_printf(b, "%s%s=\"%s\"", b->len ? "," : "", name, esc);
    free(esc);
}

/* The series' label text: the registry's service label, then labels. */
static char *s_labels(const bc_metrics_t *self, const char *const *labels)
{
    s_buf_t b = {0};
    if (self->service)
        s_append(&b, self->service, strlen(self->service));
    for (size_t i = 0; labels && labels[i]; i += 2) {
        assert(labels[i + 1] && "labels come in name, value pairs");
        assert(s_valid_name(labels[i], false) && strncmp(labels[i], "__", 2) != 0 &&
               strcmp(labels[i], "le") != 0);
        s_append_label(&b, labels[i], labels[i + 1]);
    }
    return s_finish(&b, NULL);
}

/* ---- registry ------------------------------------------------------------ */

bc_metrics_t *bc_metrics_new(const char *service)
{
    bc_metrics_t *self = bc_calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    if (service && *service) {
        s_buf_t b = {0};
        s_append_label(&b, "service", service);
        self->service = s_finish(&b, NULL);
    }
    return self;
}

void bc_metrics_destroy(bc_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bc_metrics_t *self = *self_p;
    for (s_family_t *f = self->head; f;) {
        s_family_t *fn = f->next;
        for (s_series_t *s = f->head; s;) {
            s_series_t *sn = s->next;
            free(s->labels);
            free(s->value);
            free(s);
            s = sn;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = fn;
    }
    free(self->service);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* Finds or adds the family and the series; returns the series (lock held
 * by the caller). *created tells whether it is new. */
static s_series_t *s_register(bc_metrics_t *self, const char *name, const char *help, s_kind_t kind,
                              const char *const *labels, bool *created)
{
    assert(s_valid_name(name, true));
    assert(help && !strchr(help, '\n'));
    s_family_t *f = self->head;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (!f) {
        f = bc_calloc(1, sizeof *f);
        f->name = bc_strdup(name);
        f->help = bc_strdup(help);
        f->kind = kind;
        if (self->tail)
            self->tail->next = f;
        else
            self->head = f;
        self->tail = f;
    }
    /* One family, one type: a gauge and a computed gauge are both gauges. */
    assert((f->kind == kind || (f->kind == S_GAUGE_FN && kind == S_GAUGE) ||
            (f->kind == S_GAUGE && kind == S_GAUGE_FN)) &&
           "a metric name keeps its type");
    char *text = s_labels(self, labels);
    for (s_series_t *s = f->head; s; s = s->next)
        if (!strcmp(s->labels, text)) {
            free(text);
            *created = false;
            return s;
        }
    s_series_t *s = bc_calloc(1, sizeof *s);
    s->labels = text;
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
    *created = true;
    return s;
}

bc_counter_t *bc_metrics_counter(bc_metrics_t *self, const char *name, const char *help,
                                 const char *const *labels, int flags)
{
    bool created;
    pthread_mutex_lock(&self->lock);
    s_series_t *s = s_register(self, name, help, S_COUNTER, labels, &created);
    if (created) {
        s->value = bc_calloc(1, sizeof(bc_counter_t));
        s->flags = flags;
    }
    pthread_mutex_unlock(&self->lock);
    return s->value;
}

bc_gauge_t *bc_metrics_gauge(bc_metrics_t *self, const char *name, const char *help,
                             const char *const *labels)
{
    bool created;
    pthread_mutex_lock(&self->lock);
    s_series_t *s = s_register(self, name, help, S_GAUGE, labels, &created);
    if (created)
        s->value = bc_calloc(1, sizeof(bc_gauge_t));
    pthread_mutex_unlock(&self->lock);
    assert(!s->fn && "a computed gauge has no value to set");
    return s->value;
}

void bc_metrics_gauge_fn(bc_metrics_t *self, const char *name, const char *help,
                         const char *const *labels, double (*fn)(void *arg), void *arg)
{
    bool created;
    pthread_mutex_lock(&self->lock);
    s_series_t *s = s_register(self, name, help, S_GAUGE_FN, labels, &created);
    assert((created || s->fn) && "a set gauge cannot become computed");
    s->fn = fn;
    s->arg = arg;
    pthread_mutex_unlock(&self->lock);
}

void bc_metrics_counter_fn(bc_metrics_t *self, const char *name, const char *help,
                           const char *const *labels, double (*fn)(void *arg), void *arg)
{
    bool created;
    pthread_mutex_lock(&self->lock);
    s_series_t *s = s_register(self, name, help, S_COUNTER, labels, &created);
    assert((created || s->fn) && "a counter cannot become computed");
    s->fn = fn;
    s->arg = arg;
    pthread_mutex_unlock(&self->lock);
}

bc_histogram_t *bc_metrics_histogram(bc_metrics_t *self, const char *name, const char *help,
                                     const char *const *labels, const double *bounds,
                                     size_t nbounds, int flags)
{
    assert(nbounds >= 1 && nbounds <= S_MAX_BUCKETS);
    bool created;
    pthread_mutex_lock(&self->lock);
    s_series_t *s = s_register(self, name, help, S_HISTOGRAM, labels, &created);
    if (created) {
        bc_histogram_t *h = bc_calloc(1, sizeof *h);
        h->nbounds = nbounds;
        for (size_t i = 0; i < nbounds; i++) {
            assert(bounds[i] > 0 && (i == 0 || bounds[i] > bounds[i - 1]));
            h->bound_s[i] = bounds[i];
            h->bound_us[i] = (uint64_t)(bounds[i] * 1e6 + 0.5);
        }
        s->value = h;
        s->flags = flags;
    }
    pthread_mutex_unlock(&self->lock);
    return s->value;
}

/* ---- hot path -------------------------------------------------------------- */

void bc_counter_add(bc_counter_t *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void bc_gauge_set(bc_gauge_t *g, int64_t v)
{
    if (g)
        atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

void bc_gauge_add(bc_gauge_t *g, int64_t delta)
{
    if (g)
        atomic_fetch_add_explicit(&g->value, delta, memory_order_relaxed);
}

void bc_histogram_observe_us(bc_histogram_t *h, int64_t us)
{
    if (!h)
        return;
    uint64_t v = us > 0 ? (uint64_t)us : 0;
    size_t i = 0;
    while (i < h->nbounds && v > h->bound_us[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, v, memory_order_relaxed);
}

uint64_t bc_counter_value(const bc_counter_t *c)
{
    return c ? atomic_load_explicit(&c->value, memory_order_relaxed) : 0;
}

int64_t bc_gauge_value(const bc_gauge_t *g)
{
    return g ? atomic_load_explicit(&g->value, memory_order_relaxed) : 0;
}

uint64_t bc_histogram_count(const bc_histogram_t *h)
{
    uint64_t n = 0;
    for (size_t i = 0; h && i <= h->nbounds; i++)
        n += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    return n;
}

uint64_t bc_histogram_sum_us(const bc_histogram_t *h)
{
    return h ? atomic_load_explicit(&h->sum_us, memory_order_relaxed) : 0;
}

/* ---- the process ----------------------------------------------------------- */

/* Field n (1-based, as in proc(5)) of /proc/self/stat, or -1. */
static double s_proc_stat(int n)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    char buf[1024];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    /* The command name (field 2) may hold spaces: count from its ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    for (int field = 3; field <= n; field++) {
        while (*p == ' ')
            p++;
        if (field == n)
            return strtod(p, NULL);
        while (*p && *p != ' ')
            p++;
    }
    return -1;
}

static double s_process_cpu(void *arg)
{
    (void)arg;
    double ticks = (double)sysconf(_SC_CLK_TCK);
    double user = s_proc_stat(14), sys = s_proc_stat(15);
    return user < 0 || sys < 0 || ticks <= 0 ? 0 : (user + sys) / ticks;
}

static double s_process_rss(void *arg)
{
    (void)arg;
    double pages = s_proc_stat(24);
    return pages < 0 ? 0 : pages * (double)sysconf(_SC_PAGESIZE);
}

static double s_process_fds(void *arg)
{
    (void)arg;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    double n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static double s_process_start(void *arg)
{
    return *(const double *)arg;
}

void bc_metrics_add_process(bc_metrics_t *self)
{
    static double started; /* one process, one start */
    if (started == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        started = (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000;
    }
    bc_metrics_counter_fn(self, "process_cpu_seconds_total",
                          "User and system CPU time the process spent, in seconds", NULL,
                          s_process_cpu, NULL);
    bc_metrics_gauge_fn(self, "process_resident_memory_bytes", "Resident memory size in bytes",
                        NULL, s_process_rss, NULL);
    bc_metrics_gauge_fn(self, "process_open_fds", "Open file descriptors", NULL, s_process_fds,
                        NULL);
    bc_metrics_gauge_fn(self, "process_start_time_seconds",
                        "When the process started its metrics, seconds since the Unix epoch", NULL,
                        s_process_start, &started);
}

/* ---- rendering ------------------------------------------------------------- */

static const char *s_type_name(s_kind_t k)
{
    switch (k) {
    case S_COUNTER:
        return "counter";
    case S_HISTOGRAM:
        return "histogram";
    default:
        return "gauge";
    }
}

/* name{labels[,extra]} */
static void s_sample_name(s_buf_t *b, const char *name, const char *suffix, const char *labels,
                          const char *extra)
{
    s_printf(b, "%s%s", name, suffix);
    if (*labels || extra)
        s_printf(b, "{%s%s%s}", labels, *labels && extra ? "," : "", extra ? extra : "");
}

static void s_format_double(char *out, size_t len, double v)
{
    if (v != v)
        snprintf(out, len, "NaN");
    else if (v > 1e300 * 1e10)
        snprintf(out, len, "+Inf");
    else if (v < -1e300 * 1e10)
        snprintf(out, len, "-Inf");
    else if (v == (double)(long long)v && v < 1e15 && v > -1e15)
        snprintf(out, len, "%lld", (long long)v);
    else
        snprintf(out, len, "%.9g", v);
}

static void s_render_histogram(s_buf_t *b, const char *name, const s_series_t *s)
{
    const bc_histogram_t *h = s->value;
    uint64_t counts[S_MAX_BUCKETS + 1];
    /* One pass over the buckets: the cumulative counts and _count are then
     * consistent with each other even while observations arrive. */
    for (size_t i = 0; i <= h->nbounds; i++)
        counts[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    uint64_t sum_us = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->nbounds; i++) {
        cum += counts[i];
        char le[48];
        if (i < h->nbounds)
            snprintf(le, sizeof le, "le=\"%g\"", h->bound_s[i]);
        else
            snprintf(le, sizeof le, "le=\"+Inf\"");
        s_sample_name(b, name, "_bucket", s->labels, le);
        s_printf(b, " %llu\n", (unsigned long long)cum);
    }
    s_sample_name(b, name, "_sum", s->labels, NULL);
    s_printf(b, " %llu.%06llu\n", (unsigned long long)(sum_us / 1000000),
             (unsigned long long)(sum_us % 1000000));
    s_sample_name(b, name, "_count", s->labels, NULL);
    s_printf(b, " %llu\n", (unsigned long long)cum);
}

static void s_append_help(s_buf_t *b, const char *name, const char *help)
{
    s_printf(b, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            s_append(b, "\\\\", 2);
        else
            s_append(b, p, 1);
    }
    s_append(b, "\n", 1);
}

char *bc_metrics_render(bc_metrics_t *self, size_t *len)
{
    s_buf_t b = {0};
    pthread_mutex_lock(&self->lock);
    for (const s_family_t *f = self->head; f; f = f->next) {
        s_append_help(&b, f->name, f->help);
        s_printf(&b, "# TYPE %s %s\n", f->name, s_type_name(f->kind));
        for (const s_series_t *s = f->head; s; s = s->next) {
            char num[64];
            if (s->fn) {
                s_format_double(num, sizeof num, s->fn(s->arg));
            } else if (f->kind == S_COUNTER) {
                uint64_t v = bc_counter_value(s->value);
                if (v == 0 && (s->flags & BC_METRIC_HIDE_ZERO))
                    continue;
                snprintf(num, sizeof num, "%llu", (unsigned long long)v);
            } else if (f->kind == S_HISTOGRAM) {
                if (!(s->flags & BC_METRIC_HIDE_ZERO) || bc_histogram_count(s->value))
                    s_render_histogram(&b, f->name, s);
                continue;
            } else {
                snprintf(num, sizeof num, "%lld", (long long)bc_gauge_value(s->value));
            }
            s_sample_name(&b, f->name, "", s->labels, NULL);
            s_printf(&b, " %s\n", num);
        }
    }
    pthread_mutex_unlock(&self->lock);
    return s_finish(&b, len);
}

/* ---- merging ----------------------------------------------------------------- */

typedef struct {
    char *name;
    char *help, *type; /* whole lines, with their line feed (or NULL) */
    s_buf_t samples;
} s_merged_t;

static s_merged_t *s_merged_get(s_merged_t **fams, size_t *n, size_t *cap, const char *name,
                                size_t name_len)
{
    for (size_t i = 0; i < *n; i++)
        if (strlen((*fams)[i].name) == name_len && !memcmp((*fams)[i].name, name, name_len))
            return &(*fams)[i];
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 32;
        *fams = bc_realloc(*fams, *cap * sizeof **fams);
    }
    s_merged_t *m = &(*fams)[(*n)++];
    memset(m, 0, sizeof *m);
    m->name = bc_strndup(name, name_len);
    return m;
}

/* The metric name at the start of a "# HELP name ..." / "# TYPE name ..."
 * comment or of a sample line. */
static size_t s_name_len(const char *p, const char *end)
{
    size_t n = 0;
    while (p + n < end && p[n] != ' ' && p[n] != '{' && p[n] != '\n')
        n++;
    return n;
}

char *bc_metrics_merge(const char *const *texts, const size_t *lens, size_t n, size_t *len)
{
    s_merged_t *fams = NULL;
    size_t nfams = 0, cap = 0;
    for (size_t t = 0; t < n; t++) {
        const char *p = texts[t], *end = texts[t] + lens[t];
        s_merged_t *current = NULL;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl ? nl : end;
            size_t line_len = (size_t)(stop - p);
            if (line_len == 0) {
                p = stop + 1;
                continue;
            }
            if (line_len > 7 && (!memcmp(p, "# HELP ", 7) || !memcmp(p, "# TYPE ", 7))) {
                const char *name = p + 7;
                size_t nlen = s_name_len(name, stop);
                current = s_merged_get(&fams, &nfams, &cap, name, nlen);
                char **slot = p[2] == 'H' ? &current->help : &current->type;
                if (!*slot) {
                    *slot = bc_malloc(line_len + 2);
                    memcpy(*slot, p, line_len);
                    memcpy(*slot + line_len, "\n", 2);
                }
            } else if (p[0] != '#') {
                if (!current) /* an untyped sample before any family: its own */
                    current = s_merged_get(&fams, &nfams, &cap, p, s_name_len(p, stop));
                s_append(&current->samples, p, line_len);
                s_append(&current->samples, "\n", 1);
            }
            p = stop + 1;
        }
    }
    s_buf_t out = {0};
    for (size_t i = 0; i < nfams; i++) {
        if (fams[i].help)
            s_append(&out, fams[i].help, strlen(fams[i].help));
        if (fams[i].type)
            s_append(&out, fams[i].type, strlen(fams[i].type));
        if (fams[i].samples.len)
            s_append(&out, fams[i].samples.p, fams[i].samples.len);
        free(fams[i].name);
        free(fams[i].help);
        free(fams[i].type);
        free(fams[i].samples.p);
    }
    free(fams);
    return s_finish(&out, len);
}
