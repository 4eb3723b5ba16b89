/*  Unit tests for bc_metrics: the exposition text (HELP/TYPE, labels and
 *  their escaping, histogram buckets, _sum and _count), hidden zero series,
 *  merging several processes' texts, and exact counts under concurrent
 *  updates while the registry is rendered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "bc_metrics.h"

/* The value of the sample line that starts with prefix (name and labels),
 * or -1 when there is none. */
static double s_sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, prefix, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

static int s_count_lines(const char *text, const char *prefix)
{
    int count = 0;
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, prefix, n))
            count++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return count;
}

static void test_counter_text(void **state)
{
    (void)state;
    bc_metrics_t *m = bc_metrics_new("intake");
    const char *labels[] = {"method", "GetClient", "code", "OK", NULL};
    bc_counter_t *c =
        bc_metrics_counter(m, "beacon_rpc_requests_total", "Requests answered", labels, 0);
    assert_ptr_equal(
        c, bc_metrics_counter(m, "beacon_rpc_requests_total", "Requests answered", labels, 0));
    bc_counter_add(c, 3);
    bc_counter_add(c, 2);
    assert_int_equal(bc_counter_value(c), 5);
    size_t len;
    char *text = bc_metrics_render(m, &len);
    assert_int_equal(len, strlen(text));
    assert_string_equal(text, "# HELP beacon_rpc_requests_total Requests answered\n"
                              "# TYPE beacon_rpc_requests_total counter\n"
                              "beacon_rpc_requests_total{service=\"intake\",method=\"GetClient\","
                              "code=\"OK\"} 5\n");
    free(text);
    bc_metrics_destroy(&m);
    assert_null(m);
    bc_metrics_destroy(&m); /* NULL is fine */
}

static void test_label_escaping(void **state)
{
    (void)state;
    bc_metrics_t *m = bc_metrics_new(NULL);
    const char *labels[] = {"path", "a\"b\\c\nd", NULL};
    bc_counter_add(bc_metrics_counter(m, "x_total", "Help with a \\ backslash", labels, 0), 1);
    bc_counter_add(bc_metrics_counter(m, "y_total", "No labels", NULL, 0), 7);
    char *text = bc_metrics_render(m, NULL);
    assert_string_equal(text, "# HELP x_total Help with a \\\\ backslash\n"
                              "# TYPE x_total counter\n"
                              "x_total{path=\"a\\\"b\\\\c\\nd\"} 1\n"
                              "# HELP y_total No labels\n"
                              "# TYPE y_total counter\n"
                              "y_total 7\n");
    free(text);
    bc_metrics_destroy(&m);

    char out[16];
    assert_int_equal(bc_metrics_escape_label("plain", out, sizeof out), 5);
    assert_string_equal(out, "plain");
    assert_int_equal(bc_metrics_escape_label("q\"", out, sizeof out), 3);
    assert_string_equal(out, "q\\\"");
    assert_int_equal(bc_metrics_escape_label("0123456789abcdef", out, sizeof out), -1);
    assert_string_equal(out, "");
    assert_int_equal(bc_metrics_escape_label("0123456789\"\"\"", out, sizeof out), -1);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    bc_metrics_t *m = bc_metrics_new("notes");
    const double bounds[] = {0.001, 0.01, 0.1};
    const char *labels[] = {"method", "GetNote", NULL};
    bc_histogram_t *h = bc_metrics_histogram(m, "lat_seconds", "Latency", labels, bounds, 3, 0);
    bc_histogram_observe_us(h, 100);     /* 0.0001 s: first bucket */
    bc_histogram_observe_us(h, 1000);    /* exactly 0.001: bounds are inclusive */
    bc_histogram_observe_us(h, 1001);    /* just over: second bucket */
    bc_histogram_observe_us(h, 50000);   /* third */
    bc_histogram_observe_us(h, 2500000); /* over every bound: +Inf only */
    bc_histogram_observe_us(h, -5);      /* a clock step back counts as 0 */
    assert_int_equal(bc_histogram_count(h), 6);
    assert_int_equal(bc_histogram_sum_us(h), 100 + 1000 + 1001 + 50000 + 2500000);
    char *text = bc_metrics_render(m, NULL);
    assert_string_equal(text,
                        "# HELP lat_seconds Latency\n"
                        "# TYPE lat_seconds histogram\n"
                        "lat_seconds_bucket{service=\"notes\",method=\"GetNote\",le=\"0.001\"} 3\n"
                        "lat_seconds_bucket{service=\"notes\",method=\"GetNote\",le=\"0.01\"} 4\n"
                        "lat_seconds_bucket{service=\"notes\",method=\"GetNote\",le=\"0.1\"} 5\n"
                        "lat_seconds_bucket{service=\"notes\",method=\"GetNote\",le=\"+Inf\"} 6\n"
                        "lat_seconds_sum{service=\"notes\",method=\"GetNote\"} 2.552101\n"
                        "lat_seconds_count{service=\"notes\",method=\"GetNote\"} 6\n");
    free(text);
    bc_metrics_destroy(&m);
}

static double s_seven(void *arg)
{
    (void)arg;
    return 7;
}

static double s_fraction(void *arg)
{
    return *(double *)arg;
}

static void test_hidden_zero_and_gauges(void **state)
{
    (void)state;
    bc_metrics_t *m = bc_metrics_new(NULL);
    const char *ok[] = {"code", "OK", NULL}, *bad[] = {"code", "INTERNAL", NULL};
    bc_counter_t *a = bc_metrics_counter(m, "r_total", "R", ok, 0);
    bc_counter_t *b = bc_metrics_counter(m, "r_total", "R", bad, BC_METRIC_HIDE_ZERO);
    bc_histogram_t *h = bc_metrics_histogram(m, "d_seconds", "D", NULL, bc_metrics_latency_buckets,
                                             bc_metrics_latency_nbuckets, BC_METRIC_HIDE_ZERO);
    bc_gauge_t *g = bc_metrics_gauge(m, "g", "G", NULL);
    double frac = 0.25;
    bc_metrics_gauge_fn(m, "f", "F", NULL, s_seven, NULL);
    bc_metrics_gauge_fn(m, "f2", "F2", NULL, s_fraction, &frac);
    bc_gauge_set(g, 10);
    bc_gauge_add(g, -3);
    char *text = bc_metrics_render(m, NULL);
    assert_true(s_sample(text, "r_total{code=\"OK\"}") == 0);
    assert_int_equal(s_count_lines(text, "r_total{code=\"INTERNAL\"}"), 0);
    assert_int_equal(s_count_lines(text, "d_seconds_"), 0);
    assert_int_equal(s_count_lines(text, "# TYPE d_seconds histogram"), 1);
    assert_true(s_sample(text, "g") == 7);
    assert_true(s_sample(text, "f") == 7);
    assert_true(s_sample(text, "f2") == 0.25);
    assert_int_equal(s_count_lines(text, "# TYPE f gauge"), 1);
    free(text);
    bc_counter_add(a, 1);
    bc_counter_add(b, 2);
    bc_histogram_observe_us(h, 300);
    text = bc_metrics_render(m, NULL);
    assert_true(s_sample(text, "r_total{code=\"OK\"}") == 1);
    assert_true(s_sample(text, "r_total{code=\"INTERNAL\"}") == 2);
    assert_true(s_sample(text, "d_seconds_bucket{le=\"0.0005\"}") == 1);
    assert_true(s_sample(text, "d_seconds_count") == 1);
    free(text);
    /* NULL series (a disabled metric) are ignored. */
    bc_counter_add(NULL, 1);
    bc_histogram_observe_us(NULL, 1);
    bc_gauge_set(NULL, 1);
    bc_metrics_destroy(&m);
}

static double s_forty_two(void *arg)
{
    (void)arg;
    return 42;
}

static void test_computed_counter_and_process(void **state)
{
    (void)state;
    bc_metrics_t *m = bc_metrics_new("p");
    bc_metrics_counter_fn(m, "ext_total", "External", NULL, s_forty_two, NULL);
    bc_metrics_add_process(m);
    char *text = bc_metrics_render(m, NULL);
    assert_int_equal(s_count_lines(text, "# TYPE ext_total counter"), 1);
    assert_true(s_sample(text, "ext_total{service=\"p\"}") == 42);
    assert_int_equal(s_count_lines(text, "# TYPE process_cpu_seconds_total counter"), 1);
    assert_true(s_sample(text, "process_cpu_seconds_total{service=\"p\"}") >= 0);
    assert_true(s_sample(text, "process_resident_memory_bytes{service=\"p\"}") > 1 << 20);
    assert_true(s_sample(text, "process_open_fds{service=\"p\"}") >= 3);
    assert_true(s_sample(text, "process_start_time_seconds{service=\"p\"}") > 1.7e9);
    free(text);
    bc_metrics_destroy(&m);
}

static void test_merge(void **state)
{
    (void)state;
    const char *a = "# HELP req_total Requests\n# TYPE req_total counter\n"
                    "req_total{service=\"gateway\"} 1\n"
                    "# HELP only_a A\n# TYPE only_a gauge\nonly_a 3\n";
    const char *b = "# HELP req_total Requests\n# TYPE req_total counter\n"
                    "req_total{service=\"intake\"} 2\n"
                    "req_total{service=\"intake\",code=\"X\"} 4\n"
                    "# HELP only_b B\n# TYPE only_b histogram\n"
                    "only_b_bucket{le=\"+Inf\"} 1\nonly_b_sum 0.5\nonly_b_count 1\n";
    const char *texts[] = {a, b};
    size_t lens[] = {strlen(a), strlen(b)};
    size_t len;
    char *out = bc_metrics_merge(texts, lens, 2, &len);
    assert_int_equal(len, strlen(out));
    assert_string_equal(out, "# HELP req_total Requests\n# TYPE req_total counter\n"
                             "req_total{service=\"gateway\"} 1\n"
                             "req_total{service=\"intake\"} 2\n"
                             "req_total{service=\"intake\",code=\"X\"} 4\n"
                             "# HELP only_a A\n# TYPE only_a gauge\nonly_a 3\n"
                             "# HELP only_b B\n# TYPE only_b histogram\n"
                             "only_b_bucket{le=\"+Inf\"} 1\nonly_b_sum 0.5\nonly_b_count 1\n");
    free(out);
    out = bc_metrics_merge(NULL, NULL, 0, &len);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    free(out);
}

/* ---- concurrency ---------------------------------------------------------- */

#define S_THREADS 4
#define S_ROUNDS 100000

typedef struct {
    bc_counter_t *counter;
    bc_histogram_t *hist;
    int index;
} s_worker_arg_t;

static void *s_worker(void *p)
{
    s_worker_arg_t *w = p;
    for (int i = 0; i < S_ROUNDS; i++) {
        bc_counter_add(w->counter, 1);
        /* Spread over the buckets: 0..9999 us. */
        bc_histogram_observe_us(w->hist, (i * 7 + w->index) % 10000);
    }
    return NULL;
}

/* Checks every rendered histogram line: buckets cumulative (never
 * decreasing) and _count equal to the +Inf bucket. */
static void s_check_cumulative(const char *text)
{
    double prev = -1, inf = -1;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        if (!strncmp(p, "h_seconds_bucket", 16)) {
            double v = strtod(strchr(p, ' ') + 1, NULL);
            assert_true(v >= prev);
            prev = v;
            if (strstr(p, "le=\"+Inf\"") && strstr(p, "le=\"+Inf\"") < nl)
                inf = v;
        } else if (!strncmp(p, "h_seconds_count", 15)) {
            assert_true(strtod(strchr(p, ' ') + 1, NULL) == inf);
        }
        p = nl ? nl + 1 : p + strlen(p);
    }
    assert_true(inf >= 0);
}

static void test_concurrent_updates_are_exact(void **state)
{
    (void)state;
    bc_metrics_t *m = bc_metrics_new("t");
    bc_counter_t *c = bc_metrics_counter(m, "c_total", "C", NULL, 0);
    bc_histogram_t *h = bc_metrics_histogram(m, "h_seconds", "H", NULL, bc_metrics_latency_buckets,
                                             bc_metrics_latency_nbuckets, 0);
    pthread_t threads[S_THREADS];
    s_worker_arg_t args[S_THREADS];
    for (int i = 0; i < S_THREADS; i++) {
        args[i] = (s_worker_arg_t){c, h, i};
        assert_int_equal(pthread_create(&threads[i], NULL, s_worker, &args[i]), 0);
    }
    /* Render while they run: every snapshot is internally consistent. */
    for (int i = 0; i < 50; i++) {
        char *text = bc_metrics_render(m, NULL);
        s_check_cumulative(text);
        free(text);
    }
    for (int i = 0; i < S_THREADS; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(bc_counter_value(c), (uint64_t)S_THREADS * S_ROUNDS);
    assert_int_equal(bc_histogram_count(h), (uint64_t)S_THREADS * S_ROUNDS);
    uint64_t sum = 0;
    for (int w = 0; w < S_THREADS; w++)
        for (int i = 0; i < S_ROUNDS; i++)
            sum += (uint64_t)((i * 7 + w) % 10000);
    assert_int_equal(bc_histogram_sum_us(h), sum);
    char *text = bc_metrics_render(m, NULL);
    s_check_cumulative(text);
    assert_true(s_sample(text, "c_total{service=\"t\"}") == S_THREADS * S_ROUNDS);
    assert_true(s_sample(text, "h_seconds_count{service=\"t\"}") == S_THREADS * S_ROUNDS);
    /* 0..500 us fall in the first bucket: 501 of every 10,000 values. */
    assert_true(s_sample(text, "h_seconds_bucket{service=\"t\",le=\"0.0005\"}") ==
                S_THREADS * S_ROUNDS / 10000 * 501);
    free(text);
    bc_metrics_destroy(&m);
}

/* Series registered while another thread renders (the relay registers its
 * figures after the workers started). */
static void *s_registrar(void *p)
{
    bc_metrics_t *m = p;
    for (int i = 0; i < 200; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const char *labels[] = {"n", v, NULL};
        bc_counter_add(bc_metrics_counter(m, "late_total", "Late", labels, 0), 1);
    }
    return NULL;
}

static void test_register_while_rendering(void **state)
{
    (void)state;
    bc_metrics_t *m = bc_metrics_new(NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_registrar, m), 0);
    for (int i = 0; i < 20; i++)
        free(bc_metrics_render(m, NULL));
    pthread_join(t, NULL);
    char *text = bc_metrics_render(m, NULL);
    assert_int_equal(s_count_lines(text, "late_total{"), 200);
    assert_int_equal(s_count_lines(text, "# TYPE late_total counter"), 1);
    free(text);
    bc_metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_text),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_hidden_zero_and_gauges),
        cmocka_unit_test(test_computed_counter_and_process),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_concurrent_updates_are_exact),
        cmocka_unit_test(test_register_while_rendering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
