/*  libFuzzer target for bc_metrics: label escaping (a value escaped and
 *  read back is the value), rendering a registry whose label values come
 *  from the input, and merging texts split from the input (what the gateway
 *  does with the services' Metrics replies). Run with `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc_metrics.h"

/* Reads an escaped label value back; -1 on a bad escape. */
static int s_unescape(const char *in, char *out)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        if (*p == '"')
            return -1; /* must have been escaped */
        if (*p != '\\') {
            out[o++] = *p;
            continue;
        }
        p++;
        if (*p == 'n')
            out[o++] = '\n';
        else if (*p == '\\' || *p == '"')
            out[o++] = *p;
        else
            return -1;
    }
    out[o] = '\0';
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = malloc(size + 1);
    memcpy(value, data, size);
    value[size] = '\0'; /* up to the first NUL byte */
    size_t cap = 2 * size + 1;
    char *esc = malloc(cap), *back = malloc(size + 1);
    if (bc_metrics_escape_label(value, esc, cap) < 0 || strchr(esc, '\n') ||
        s_unescape(esc, back) < 0 || strcmp(back, value) != 0)
        abort();

    bc_metrics_t *m = bc_metrics_new(value);
    const char *labels[] = {"v", value, NULL};
    bc_counter_add(bc_metrics_counter(m, "fuzz_total", "Fuzz", labels, 0), size);
    bc_histogram_observe_us(bc_metrics_histogram(m, "fuzz_seconds", "Fuzz", labels,
                                                 bc_metrics_latency_buckets,
                                                 bc_metrics_latency_nbuckets, 0),
                            (int64_t)size);
    size_t len;
    char *text = bc_metrics_render(m, &len);
    /* Every line of the text is one line: escaped values hold no line feed. */
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    if (lines != 2 + 1 + 2 + bc_metrics_latency_nbuckets + 1 + 2)
        abort();
    free(text);
    bc_metrics_destroy(&m);

    /* Merge: the input as two texts, split at its middle. */
    const char *texts[] = {(const char *)data, (const char *)data + size / 2};
    size_t lens[] = {size / 2, size - size / 2};
    char *merged = bc_metrics_merge(texts, lens, 2, &len);
    if (strlen(merged) > len || len > size + 2 * 2 + size)
        abort();
    free(merged);
    free(value);
    free(esc);
    free(back);
    return 0;
}
