/*
 * The protobuf exposition's messages (LM_FORMAT_PROTOBUF): one
 * io.prometheus.client.MetricFamily per family, encoded by protobuf-c from
 * code generated out of client_model's metrics.proto (libmetrics/proto/).
 * expo.c drives the cursor and frames each message with its varint length;
 * this file fills and packs the messages.
 *
 * A family's message is built one series at a time: the family's name,
 * help and type are packed as a MetricFamily of their own, then every
 * series as a MetricFamily holding only that one Metric. Protobuf
 * concatenation merges them (a repeated field's elements append), so the
 * bytes are exactly one MetricFamily with every Metric, while only one
 * Metric's structures exist at a time. Memory: the packed family (the
 * cursor's unit buffer grows to the largest family's message) plus this
 * scratch, sized by the largest series (labels, classic and native
 * buckets, exemplars).
 */
#ifndef LM_EXPO_PB_H
#define LM_EXPO_PB_H

#include "internal.h"

#include <stdint.h>

typedef struct lm_pb lm_pb;

/* Every allocation of the protobuf scratch: realloc or a stand-in that may
 * fail (the cursor's fault hook). */
typedef void *(*lm_pb_alloc)(void *ctx, void *p, size_t bytes);

/* Where packed bytes go: room for n more bytes at the end of the current
 * unit, or NULL when that cannot grow (the cursor then fails). */
typedef struct lm_pbout {
    void *ctx;
    uint8_t *(*reserve)(void *ctx, size_t n);
} lm_pbout;

LM_HIDDEN lm_pb *lm__pb_new(lm_pb_alloc alloc, void *ctx);
LM_HIDDEN void lm__pb_free(lm_pb *pb);

/* Family f (series [0, nseries) then its overflow series, if any; proj:
 * a histogram's exposed classic buckets) as one MetricFamily. 0, or -1
 * when out of memory. */
LM_HIDDEN int lm__pb_family(lm_pb *pb, const lm_family *f, size_t nseries, const lm_hproj *proj,
                            lm_pbout out);

/* The exposition's own families: one unlabelled sample (process_*), and
 * libmetrics_series_folded_total with one sample per family whose
 * famstate[i] == exposed, labelled family="<name>". 0, or -1 when out of
 * memory. */
LM_HIDDEN int lm__pb_single(lm_pb *pb, const char *name, lm_type type, const char *help,
                            double value, lm_pbout out);
LM_HIDDEN int lm__pb_folded(lm_pb *pb, const char *name, const char *help, lm_registry *reg,
                            const unsigned char *famstate, unsigned char exposed, size_t nfam,
                            lm_pbout out);

/* Writes v as a protobuf varint into out (10 bytes hold any); returns its
 * length. The delimited framing's length prefix. */
LM_HIDDEN size_t lm__pb_varint(uint64_t v, uint8_t *out);

#endif /* LM_EXPO_PB_H */
