/*
 * Test and fuzzer helper: a protobuf exposition (LM_FORMAT_PROTOBUF) read
 * back with protobuf-c, message by message.
 */
#ifndef LM_PB_CHECK_H
#define LM_PB_CHECK_H

#include "io/prometheus/client/metrics.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef Io__Prometheus__Client__MetricFamily pb_family;
typedef Io__Prometheus__Client__Histogram pb_histogram;

typedef struct pb_families {
    pb_family **f;
    size_t n;
    bool whole; /* every byte belonged to a complete, decodable message */
} pb_families;

/* Decodes body: a sequence of varint-length-prefixed MetricFamily
 * messages. Stops at the first that is cut or does not decode. */
pb_families pb_decode(const char *body, size_t len);
void pb_families_free(pb_families *d);

/* A native histogram's zero count plus every bucket its spans' deltas
 * give; Prometheus requires it to equal sample_count. */
uint64_t pb_native_total(const pb_histogram *h);

#endif /* LM_PB_CHECK_H */
