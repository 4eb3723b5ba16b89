/*  metrics_cost: what recording one request's metrics costs, in nanoseconds,
 *  measured on the real bc_metrics code (tests/bench/metrics.sh builds it
 *  against the build's libbeacon.a and runs it).
 *
 *  One "request" is what the hot path does per HTTP request when metrics
 *  are on: in the service's dispatcher two clock reads, a counter (method x
 *  code) and a histogram (method); at the gateway one clock read, a counter
 *  (route x status class) and a histogram (route). Measured on one thread,
 *  then on THREADS threads all updating the same series (the worst case for
 *  the atomics: one cache line bouncing between cores). The figure is the
 *  process's CPU time per request (CLOCK_PROCESS_CPUTIME_ID), so other work
 *  on a shared machine does not inflate it. Prints
 *
 *      COST ns_single=<ns> ns_contended=<ns> threads=<n> requests=<n>
 *
 *  Usage: metrics_cost [REQUESTS_PER_THREAD] [THREADS]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bc_metrics.h"
#include "bc_util.h"

#define S_METHODS 32
#define S_CODES 16

typedef struct {
    bc_counter_t *rpc[S_METHODS * S_CODES];
    bc_histogram_t *rpc_latency[S_METHODS];
    bc_counter_t *http[S_METHODS * 5];
    bc_histogram_t *http_latency[S_METHODS];
    long n;
    int spread; /* 1: requests spread over methods; 0: all on one series */
} s_load_t;

static void *s_run(void *arg)
{
    const s_load_t *l = arg;
    int64_t sink = 0;
    for (long i = 0; i < l->n; i++) {
        size_t m = l->spread ? (size_t)i % S_METHODS : 0;
        int64_t t0 = bc_mono_us(); /* dispatcher: start */
        bc_counter_add(l->rpc[m * S_CODES], 1);
        bc_histogram_observe_us(l->rpc_latency[m], bc_mono_us() - t0);
        int64_t us = bc_mono_us() - t0; /* gateway: access log */
        bc_counter_add(l->http[m * 5 + 1], 1);
        bc_histogram_observe_us(l->http_latency[m], us);
        sink += us;
    }
    return (void *)(intptr_t)(sink & 1);
}

/* CPU time of the process (not wall time: on a shared machine other work
 * would be counted too). */
static double s_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* CPU time per request, threads threads each recording l->n requests. */
static double s_measure(s_load_t *l, int threads)
{
    pthread_t t[64];
    double t0 = s_cpu_ns();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, s_run, l) != 0)
            exit(1);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return (s_cpu_ns() - t0) / ((double)l->n * threads);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (n < 1 || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: metrics_cost [REQUESTS_PER_THREAD] [THREADS (1..64)]\n");
        return 2;
    }
    bc_metrics_t *m = bc_metrics_new("bench");
    s_load_t l = {.n = n, .spread = 1};
    char method[16], code[16];
    for (int i = 0; i < S_METHODS; i++) {
        snprintf(method, sizeof method, "M%d", i);
        for (int c = 0; c < S_CODES; c++) {
            snprintf(code, sizeof code, "C%d", c);
            const char *labels[] = {"method", method, "code", code, NULL};
            l.rpc[i * S_CODES + c] = bc_metrics_counter(m, "rpc_total", "R", labels, 0);
        }
        const char *labels[] = {"method", method, NULL};
        l.rpc_latency[i] = bc_metrics_histogram(m, "rpc_seconds", "R", labels,
                                                bc_metrics_latency_buckets,
                                                bc_metrics_latency_nbuckets, 0);
        for (int c = 0; c < 5; c++) {
            snprintf(code, sizeof code, "%dxx", c + 1);
            const char *hl[] = {"route", method, "status", code, NULL};
            l.http[i * 5 + c] = bc_metrics_counter(m, "http_total", "H", hl, 0);
        }
        l.http_latency[i] = bc_metrics_histogram(m, "http_seconds", "H", labels,
                                                 bc_metrics_latency_buckets,
                                                 bc_metrics_latency_nbuckets, 0);
    }
    s_measure(&l, 1); /* warm-up */
    double single = s_measure(&l, 1);
    l.spread = 0;
    double contended = s_measure(&l, threads);
    printf("COST ns_single=%.1f ns_contended=%.1f threads=%d requests=%ld\n", single, contended,
           threads, n);
    bc_metrics_destroy(&m);
    return 0;
}
