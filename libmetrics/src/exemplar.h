/*
 * Exemplar storage: the latest (request ID, value, time) per histogram
 * bucket and per counter, kept OUTSIDE the per-thread shards.
 *
 * Why not in the shards: an exemplar is "the latest one", not a sum. Shards
 * would need one copy per thread and the scraper would have to pick the
 * newest across all of them; one shared slot per bucket is smaller and
 * needs no merge.
 *
 * Why a sequence lock and a skip instead of a lock: the writer is a request
 * on the hot path and must never wait. It claims a slot by moving its
 * sequence number from even to odd with one compare-and-swap; if the slot is
 * already odd (another writer is in it) or the CAS loses (another writer
 * just finished: its exemplar is as fresh as ours), it SKIPS: losing one
 * "latest" exemplar is harmless. The scraper never blocks writers either: it
 * copies the slot and keeps the copy only if the sequence was even and
 * unchanged around it (a seqlock read), retrying a few times, else it shows
 * no exemplar for that bucket this time. Every field is an atomic accessed
 * with relaxed loads and stores plus the seqlock's fences, so the copy is
 * free of data races in the C11 sense (TSan-clean), and a torn copy is
 * always detected and discarded.
 *
 * Rate: a slot takes a new exemplar only if its time is at least
 * LM_EXEMPLAR_MIN_INTERVAL_NS (100 us) after the stored one's. Without
 * that, every request to a hot bucket would write the same shared cache
 * line from every core, several times the CPU per record of two threads
 * on one route (lm_bench; bench/RESULTS.md, "Measurements behind design
 * choices in the code"); with it most requests only read the slot's
 * time. Prometheus scrapes every few seconds, so "latest within 100 us" is
 * as good as latest.
 *
 * Memory: slots are allocated per series on its first exemplar (never for
 * series that get none), one 576-byte cache-line-aligned slot per union
 * bucket of a histogram's current cells (lm_hcells: nb + 1; the cells a
 * growth of the bound union gives a series start without exemplars) or per
 * counter. 512 bytes hold any label set that
 * OpenMetrics allows (128 characters of at most 4 bytes).
 */
#ifndef LM_EXEMPLAR_H
#define LM_EXEMPLAR_H

#include "internal.h"

/* Label name + value bytes: 128 characters of up to 4 UTF-8 bytes. */
#define LM_EXEMPLAR_MAX_BYTES (4 * LM_EXEMPLAR_MAX_CHARS)
#define LM_EXEMPLAR_WORDS (LM_EXEMPLAR_MAX_BYTES / 8)
/* Longest rendered exemplar: " # {" name "=\"" escaped value "\"} " value
 * " " timestamp. Escaping at most doubles the value. */
#define LM_EXEMPLAR_RENDER_MAX (16 + 2 * LM_EXEMPLAR_MAX_BYTES + 2 * 64)

/* A validated exemplar, packed once per request and copied into each slot
 * it is attached to. */
typedef struct lm_exemplar_prep {
    uint32_t lens;  /* name bytes << 16 | value bytes */
    uint32_t nwords;
    int64_t unix_ns;
    uint64_t words[LM_EXEMPLAR_WORDS]; /* name then value, zero padded */
} lm_exemplar_prep;

/* A slot as the scraper copied it. */
typedef struct lm_exemplar_copy {
    size_t name_len, value_len;
    int64_t value;   /* recorded units (histograms) or the increment (counters) */
    int64_t unix_ns;
    char text[LM_EXEMPLAR_MAX_BYTES]; /* name then value, not terminated */
} lm_exemplar_copy;

/* Where exemplars of one series live and how many slots they have: a
 * counter's one slot in the series, a histogram's one per union bucket of
 * its current cells. */
typedef struct lm_exemplar_home {
    _Atomic(struct lm_exemplars *) *slots;
    size_t n;
} lm_exemplar_home;

/* The home of series s for an observation of v, and the slot v goes to
 * (*idx): a histogram's current cells and the union bucket of v, a
 * counter's single slot; n == 0 for gauges. */
LM_HIDDEN lm_exemplar_home lm__exemplar_home(lm_series *s, int64_t v, size_t *idx);

/* The exemplar's time: ex->unix_ns, or CLOCK_REALTIME when that is <= 0. */
LM_HIDDEN int64_t lm__exemplar_time(const lm_exemplar *ex);

/* Validates and packs ex observed at unix_ns (rules in libmetrics.h:
 * dropped, never altered); false if it must not be recorded. */
LM_HIDDEN bool lm__exemplar_prepare(const lm_exemplar *ex, int64_t unix_ns,
                                    lm_exemplar_prep *out);

/* Whether slot idx of home h would take an exemplar at unix_ns (see Rate):
 * one load, so a request can skip preparing an exemplar no slot wants. */
LM_HIDDEN bool lm__exemplar_due(lm_exemplar_home h, size_t idx, int64_t unix_ns);

/* Stores p with value v as the latest exemplar of slot idx of h. Wait-free:
 * skips when the slot is busy or the stored exemplar is too recent (see
 * Rate above); allocates h's slots on its first exemplar (skips if that
 * fails). Out-of-range indices are ignored. */
LM_HIDDEN void lm__exemplar_store(lm_exemplar_home h, size_t idx, const lm_exemplar_prep *p,
                                  int64_t v);

/* Copies the latest exemplar of slot idx of h; false if there is none or
 * it kept changing while being copied. */
LM_HIDDEN bool lm__exemplar_load(lm_exemplar_home h, size_t idx, lm_exemplar_copy *out);

/* The newest exemplar among the union buckets of histogram cells c that
 * exposed bucket k of projection p adds up (each within k's range), into
 * *best; false if none. *uj is the next union bucket to look at: start at
 * 0 and call for k = 0, 1, ... in order. Cells of another layout than p's
 * (a growth raced the scrape) show none this time. */
LM_HIDDEN bool lm__exemplar_bucket(const lm_hcells *c, const lm_hproj *p, size_t k, size_t *uj,
                                   lm_exemplar_copy *best);

/* Renders " # {name=\"value\"} v ts" (OpenMetrics) into dst, which holds
 * LM_EXEMPLAR_RENDER_MAX bytes; returns the length. unit_scale: recorded
 * units per exposed unit for histogram values, 0 for counters (integer). */
LM_HIDDEN size_t lm__exemplar_render(char *dst, const lm_exemplar_copy *c, double unit_scale);

/* Frees the slots a home pointer holds (series teardown). */
LM_HIDDEN void lm__exemplars_free(_Atomic(struct lm_exemplars *) *slots);

#endif /* LM_EXEMPLAR_H */
