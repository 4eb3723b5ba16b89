/*  bc_metrics: counters, gauges and latency histograms, rendered in the
 *  Prometheus text exposition format 0.0.4.
 *
 *  A registry holds metric families (name, help, type) in the order they
 *  were first registered, each with its series (one per label set). Every
 *  series is registered up front (at start, under the registry's lock) and
 *  the caller keeps the pointer it got back; the hot path then only adds to
 *  atomics (relaxed ordering): no lock, no allocation, no lookup. Histograms
 *  have fixed buckets and count whole microseconds, so an observation is one
 *  short bucket scan and three atomic adds.
 *
 *  A registry made with a service name puts service="<name>" first on every
 *  series, so the texts of several processes can be merged into one scrape
 *  (bc_metrics_merge) without their series colliding. Label values are
 *  chosen by the program (route templates, method names, code names), never
 *  taken from a request: no identifier or other PHI ever becomes a label.
 */
#ifndef BC_METRICS_H
#define BC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The Content-Type of the text this module renders. */
#define BC_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct bc_metrics bc_metrics_t;
typedef struct bc_counter bc_counter_t;
typedef struct bc_gauge bc_gauge_t;
typedef struct bc_histogram bc_histogram_t;

/* A series that is left out of the text while its value is zero (sparse
 * label combinations such as a method's rarer error codes). */
#define BC_METRIC_HIDE_ZERO 1

/* Latency buckets in seconds, 0.5 ms to 10 s, for request durations. */
extern const double bc_metrics_latency_buckets[];
extern const size_t bc_metrics_latency_nbuckets;

/* A new, empty registry; service (NULL or "": none) becomes a constant
 * service label on every series. */
bc_metrics_t *bc_metrics_new(const char *service);
/* Frees the registry and every series; NULL allowed. No series pointer may
 * be used afterwards. */
void bc_metrics_destroy(bc_metrics_t **self);

/* Registration: name is a valid metric name, help one line of text, labels
 * NULL or {"name", "value", ..., NULL} (valid label names; values any
 * UTF-8). A name registered again must keep its type and help (programmer
 * error otherwise: asserted). Registering the same name and labels twice
 * returns the same series. The pointers stay valid until destroy. */
bc_counter_t *bc_metrics_counter(bc_metrics_t *self, const char *name, const char *help,
                                 const char *const *labels, int flags);
bc_gauge_t *bc_metrics_gauge(bc_metrics_t *self, const char *name, const char *help,
                             const char *const *labels);
/* A gauge whose value fn(arg) computes when the text is rendered (queue
 * depths and the like); fn runs under the registry's lock and must not
 * register series. */
void bc_metrics_gauge_fn(bc_metrics_t *self, const char *name, const char *help,
                         const char *const *labels, double (*fn)(void *arg), void *arg);
/* A counter whose value fn(arg) computes when the text is rendered (a
 * figure another module keeps, such as CPU time); same rules as
 * bc_metrics_gauge_fn. */
void bc_metrics_counter_fn(bc_metrics_t *self, const char *name, const char *help,
                           const char *const *labels, double (*fn)(void *arg), void *arg);
/* The process's own figures under their customary names, read from /proc
 * when rendered: process_cpu_seconds_total, process_resident_memory_bytes,
 * process_open_fds, process_start_time_seconds. One registry per process
 * should have them. */
void bc_metrics_add_process(bc_metrics_t *self);
/* bounds: upper bounds in seconds, strictly increasing, at most 32; +Inf is
 * implied. With BC_METRIC_HIDE_ZERO the series is left out until its first
 * observation. */
bc_histogram_t *bc_metrics_histogram(bc_metrics_t *self, const char *name, const char *help,
                                     const char *const *labels, const double *bounds,
                                     size_t nbounds, int flags);

/* The hot path: lock-free, allocation-free; NULL series are ignored (a
 * disabled metric). */
void bc_counter_add(bc_counter_t *c, uint64_t n);
void bc_gauge_set(bc_gauge_t *g, int64_t v);
void bc_gauge_add(bc_gauge_t *g, int64_t delta);
/* Records one observation of us microseconds (negative counts as 0). */
void bc_histogram_observe_us(bc_histogram_t *h, int64_t us);

/* Current values, for tests and for code that reports them elsewhere. */
uint64_t bc_counter_value(const bc_counter_t *c);
int64_t bc_gauge_value(const bc_gauge_t *g);
/* Observations so far and their sum in microseconds. */
uint64_t bc_histogram_count(const bc_histogram_t *h);
uint64_t bc_histogram_sum_us(const bc_histogram_t *h);

/* The registry as exposition text: per family a # HELP and a # TYPE line,
 * then its series (a histogram as cumulative _bucket{le=...} lines, _sum
 * and _count). Returns a malloc'd NUL-terminated string (caller frees);
 * *len (may be NULL) gets its length. */
char *bc_metrics_render(bc_metrics_t *self, size_t *len);

/* Merges n exposition texts (as rendered here, by several processes) into
 * one in which each family appears once: its first # HELP and # TYPE, then
 * the samples of every text in order. Families keep the order in which they
 * first appear. Returns a malloc'd string (caller frees) and its length. */
char *bc_metrics_merge(const char *const *texts, const size_t *lens, size_t n, size_t *len);

/* Appends value to out (out_size bytes) escaped as a label value
 * (backslash, double quote and line feed). Returns the length written, or
 * -1 when it does not fit (out is then ""). */
int bc_metrics_escape_label(const char *value, char *out, size_t out_size);

#endif
