/*
 * Internal structures shared by the library's translation units. Nothing
 * here is exported: the library is built with -fvisibility=hidden and only
 * LM_API symbols from libmetrics.h are visible.
 *
 * Memory model of recording (why it is exact and lock-free):
 *  - Every series owns `width` consecutive cells (slots) at the same offset
 *    in every shard. A shard is one lazily-touched mmap of slot_capacity
 *    64-bit cells.
 *  - An exclusive shard belongs to one OS thread at a time (claimed through
 *    a pthread key owned by the registry, released by the key destructor
 *    when the thread exits, and then reusable by another thread: its values
 *    stay and keep being summed). Its single writer updates cells with a
 *    relaxed atomic load + relaxed atomic store: a plain `mov` on x86/arm64,
 *    no lock prefix, yet no torn reads for the scraper and no data race in
 *    the C11 sense (so TSan is quiet).
 *  - Threads beyond max_shards use the registry's shared shard, updated
 *    with atomic fetch_add. Slower, still exact.
 *  - A scrape sums cells over shards [0, shards_used) plus the shared one.
 */
#ifndef LM_INTERNAL_H
#define LM_INTERNAL_H

#include "libmetrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define LM_HIDDEN __attribute__((visibility("hidden")))
#define LM_CACHELINE 64
#define LM_MAX_LABELS 16
#define LM_MAX_BOUNDS 64
#define LM_STATUS_MIN 100
#define LM_STATUS_MAX 599
/* Status slots per method in a route: 100..599 plus one for "other". */
#define LM_STATUS_SLOTS (LM_STATUS_MAX - LM_STATUS_MIN + 2)
#define LM_OVERFLOW_VALUE "_overflow"

typedef _Atomic uint64_t lm_cell;

struct lm_exemplars; /* exemplar.h */

typedef struct lm_shard {
    lm_cell *cells;     /* slot_capacity cells; NULL until first claimed */
    bool exclusive;     /* single writer: plain load+store; else fetch_add */
    atomic_bool owned;  /* exclusive shards: claimed by a live thread */
    lm_registry *reg;   /* for the pthread key destructor */
} lm_shard;

/* A sanitised string: valid UTF-8, NUL-terminated, len excludes the NUL. */
typedef struct lm_text {
    char *ptr;
    size_t len;
} lm_text;

struct lm_series {
    lm_family *family;
    uint32_t slot;        /* first cell of this series in every shard */
    bool is_overflow;
    lm_text *values;      /* family->nlabels sanitised label values */
    uint64_t hash;        /* of the sanitised values, for the index */
    /* Latest exemplar per bucket (histograms) or of the sample (counters),
     * allocated on the first exemplar; NULL until then (exemplar.h). */
    _Atomic(struct lm_exemplars *) exemplars;
    /* Gauges only: one shared cell, alone on its line (in-flight gauges are
     * hit by every request on every core). */
    _Alignas(LM_CACHELINE) _Atomic int64_t gauge;
};

struct lm_family {
    lm_registry *reg;
    lm_type type;
    lm_text name;          /* as registered; counters end in "_total" */
    lm_text help;          /* sanitised */
    size_t nlabels;
    lm_text *label_names;
    size_t max_series;
    /* Histograms: bucket i (0..nbounds-1) counts v <= ubounds[i] (recorded
     * units, v in ((ubounds[i-1], ubounds[i]]); bucket nbounds is +Inf.
     * Cells of a histogram series: [0..nbounds] non-cumulative bucket
     * counts, [nbounds+1] sum low 64 bits, [nbounds+2] sum high 64 bits
     * (two's complement 128-bit sum of int64 observations). */
    size_t nbounds;
    double *bounds;        /* exposed units, as given */
    int64_t *ubounds;      /* recorded units: floor(bounds[i] * unit_scale) */
    double unit_scale;
    char (*le)[40];        /* canonical le strings, e.g. "0.005", "1.0" */
    uint32_t width;        /* cells per series: counter 1, gauge 0, histogram nbounds+3 */
    atomic_bool retired;   /* replaced by lm_family_replace: not exposed */
    lm_series **series;    /* max_series slots, filled in creation order */
    _Atomic size_t nseries;             /* published with release */
    _Atomic(lm_series *) overflow;      /* created on first fold */
    /* The overflow series, allocated with its cells at registration so a
     * fold can never fail; published into `overflow` on the first fold. */
    lm_series *overflow_spare;
    _Atomic uint64_t folded;            /* lookups folded into overflow */
    /* Open-addressing index (power of two, at least twice the series it
     * holds, doubled as series are created), read and written only under
     * reg->lock. */
    lm_series **index;
    size_t index_mask;
};

/* One (method, status) cell of a route: the three series it updates. */
typedef struct lm_route_slot {
    lm_series *requests;
    _Atomic(lm_series *) duration; /* swapped when the histogram is replaced */
    lm_series *bytes;
} lm_route_slot;

struct lm_route {
    lm_http *http;
    lm_text name;
    lm_series *inflight;
    /* [method][status - 100], last status slot is "other"; published with
     * release, read with acquire; created under reg->lock. */
    _Atomic(lm_route_slot *) (*slots)[LM_STATUS_SLOTS];
};

struct lm_http {
    lm_registry *reg;
    lm_text prefix;
    unsigned flags; /* LM_HTTP_*, fixed at registration */
    size_t max_routes;
    lm_family *requests;
    _Atomic(lm_family *) duration;
    lm_family *bytes;
    lm_family *inflight;
    lm_route **routes;     /* max_routes */
    _Atomic size_t nroutes;
};

struct lm_registry {
    lm_registry_options opts; /* defaults resolved */
    pthread_mutex_t lock;     /* registration and series creation only */
    pthread_key_t key;        /* thread -> lm_shard * */
    lm_shard *shards;         /* opts.max_shards exclusive shards */
    lm_shard shared;          /* overflow shard for extra threads */
    _Atomic unsigned shards_used; /* high-water mark of shards ever claimed */
    size_t slots_used;        /* bump allocator, under lock */
    lm_family **families;     /* opts.max_families */
    _Atomic size_t nfamilies; /* published with release */
    /* Sequence around changes of families' retired flags (odd while a
     * replacement swaps which family of a name is live): a scrape samples
     * the flags between two equal even values, so it never sees two live
     * families of one name nor none. Written under lock. */
    _Atomic unsigned retire_seq;
    lm_http **https;          /* one per prefix, at most 16 */
    size_t nhttp;
    /* CLOCK_MONOTONIC nanoseconds, set once in lm_registry_new and read-only
     * afterwards: reports divide counts by the time since then to show
     * rates (requests/s since the registry was created). */
    int64_t created_mono_ns;
};

/* ----------------------------------------------------------- family.c */
/* Fills live[i] (i < *nfam) with whether family i is exposed, from one
 * consistent view of the retired flags; live has room for max_families. */
LM_HIDDEN void lm__families_snapshot(lm_registry *reg, bool *live, size_t *nfam);

/* ------------------------------------------------------------ shard.c */
LM_HIDDEN lm_shard *lm__shard_claim(lm_registry *reg);
LM_HIDDEN int lm__shards_init(lm_registry *reg, lm_error *err);
LM_HIDDEN void lm__shards_free(lm_registry *reg);

static inline lm_shard *lm__shard(lm_registry *reg)
{
    lm_shard *s = (lm_shard *)pthread_getspecific(reg->key);
    return s ? s : lm__shard_claim(reg);
}

static inline void lm__cell_add(const lm_shard *sh, uint32_t cell, uint64_t v)
{
    lm_cell *c = &sh->cells[cell];
    if (sh->exclusive)
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* Sum of one cell over every shard that may hold data. */
LM_HIDDEN uint64_t lm__cell_total(const lm_registry *reg, uint32_t cell);

/* Consistent-enough read of a histogram series for exposition: buckets[0..
 * nbounds] non-cumulative counts, *count their sum (so +Inf == _count by
 * construction), *sum_hi:*sum_lo the 128-bit sum in recorded units. */
LM_HIDDEN void lm__histogram_read(const lm_series *s, uint64_t *buckets, uint64_t *count,
                                  int64_t *sum_hi, uint64_t *sum_lo);

/* ----------------------------------------------------------- family.c */
/* "counter", "gauge", "histogram" (the exposition's TYPE word, also used in
 * error messages); "unknown" for a value outside the enum. */
LM_HIDDEN const char *lm__type_name(lm_type t);

/* ------------------------------------------------------------- text.c */
/* Sanitises bytes into valid UTF-8 (see lm_str in libmetrics.h), cutting at
 * max_len bytes on a character boundary (0: no limit). */
LM_HIDDEN int lm__text_from(lm_str in, size_t max_len, lm_text *out);
LM_HIDDEN void lm__text_free(lm_text *t);
LM_HIDDEN bool lm__valid_metric_name(const char *s);
LM_HIDDEN bool lm__valid_label_name(const char *s);
LM_HIDDEN void lm__set_error(lm_error *err, lm_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------ format.c */
/* Canonical number rendering shared by exposition and reports. Each writes
 * a NUL-terminated string into buf (>= 48 bytes) and returns its length. */
LM_HIDDEN size_t lm__fmt_u64(char *buf, uint64_t v);
LM_HIDDEN size_t lm__fmt_i64(char *buf, int64_t v);
/* Shortest round-trip decimal of a finite double, always with a '.' or an
 * exponent ("1.0", "0.005", "1e+21"); "+Inf", "-Inf", "NaN" otherwise. */
LM_HIDDEN size_t lm__fmt_double(char *buf, double v);
/* Exact decimal of the 128-bit integer hi:lo divided by scale_pow10 (a
 * power of ten as integer, e.g. 1000000000), trailing zeros trimmed, at
 * least one fractional digit; used for histogram sums. Falls back to a
 * double division when unit_scale is not a power of ten. */
LM_HIDDEN size_t lm__fmt_scaled(char *buf, size_t cap, int64_t hi, uint64_t lo, double unit_scale);
/* Escapers for the exposition: dst must hold 2*len bytes (not terminated);
 * return the bytes written. Both always escape '\\' and '\n' (no raw
 * newline ever reaches a value). HELP: text 0.0.4 escapes only those two,
 * OpenMetrics also '"'. Label values: '\\', '"', '\n' in both formats. */
LM_HIDDEN size_t lm__escape_help(char *dst, const char *src, size_t len, lm_format fmt);
LM_HIDDEN size_t lm__escape_label(char *dst, const char *src, size_t len);

/* ------------------------------------------------------------ procfs.c */
typedef struct lm_process_stats {
    double cpu_seconds;
    double resident_bytes;
    double virtual_bytes;
    double open_fds;
    double max_fds;
    double start_time_seconds;
    double threads;
    bool ok; /* false if /proc could not be read: metrics are then omitted */
} lm_process_stats;

LM_HIDDEN void lm__process_read(lm_process_stats *out);

#endif /* LM_INTERNAL_H */
