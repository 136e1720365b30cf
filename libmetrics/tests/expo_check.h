/* In-process structure checker for text 0.0.4 and OpenMetrics 1.0.0
 * expositions: the C counterpart of tests/tools/check_exposition.py, shared
 * by the fuzzer and the concurrency test (one checker, not one per user).
 *
 * It checks: valid UTF-8, LF line ends and no CR; every line parses
 * (metadata, sample names, label names, escapes per format, numbers per
 * format); HELP/TYPE at most once per family and before its samples;
 * families not interleaved and no two families owning one name; no
 * duplicate series (name + label set, order-insensitive); counter-like
 * values non-negative and not NaN, bucket and count values integers;
 * histograms: each series contiguous, le strictly increasing and ending
 * with +Inf, buckets cumulative, +Inf == _count, _sum and _count present
 * (OpenMetrics: both or neither, no _sum with negative thresholds, no
 * negative _sum); OpenMetrics ends with exactly one "# EOF". Exemplars
 * (" # {labels} value [timestamp]"): OpenMetrics only, on counter _total and
 * histogram _bucket samples only, label names valid and not repeated,
 * escapes valid, names + values at most 128 UTF-8 characters, value a
 * number (not above the bucket's le), timestamp finite. */
#ifndef LM_EXPO_CHECK_H
#define LM_EXPO_CHECK_H

#include "libmetrics.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum expo_type {
    EXPO_UNTYPED = 0, /* no TYPE line (text "untyped", OpenMetrics "unknown") */
    EXPO_COUNTER,
    EXPO_GAUGE,
    EXPO_HISTOGRAM,
    EXPO_SUMMARY,
    EXPO_OTHER /* OpenMetrics gaugehistogram, stateset, info: accepted, not checked further */
} expo_type;

/* One sample as the checker saw it; pointers into the body. */
typedef struct expo_sample {
    const char *family;
    size_t family_len;
    expo_type type;
    const char *name; /* sample name, e.g. foo_bucket */
    size_t name_len;
    const char *labels; /* raw text between the braces (escaped); "" if none */
    size_t labels_len;
    const char *value; /* raw value text */
    size_t value_len;
    double v;
    size_t line;
    /* OpenMetrics exemplar: the raw text between the braces after " # {"
     * (escaped, may be empty) and its value; exemplar == NULL if none. */
    const char *exemplar;
    size_t exemplar_len;
    double exemplar_v;
} expo_sample;

typedef void (*expo_sample_fn)(void *ctx, const expo_sample *s);

typedef struct expo_check_stats {
    size_t families;
    size_t samples;
    size_t histogram_series;
} expo_check_stats;

/* Returns 0 if body is a valid exposition in fmt, else -1 with the first
 * problem ("line N: ...") in msg. fn (may be NULL) sees every sample in
 * order, before the checks that need the whole family. stats may be NULL. */
int expo_check(const char *body, size_t len, lm_format fmt, expo_sample_fn fn, void *ctx,
               expo_check_stats *stats, char *msg, size_t msgcap);

#endif
