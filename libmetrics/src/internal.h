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
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define LM_CACHELINE 64
/* Distinct bounds a histogram name may collect over the registry's life
 * (the union of every bound list configured for it, see lm_hlayout). */
#define LM_MAX_UNION_BOUNDS 128
#define LM_STATUS_MIN 100
#define LM_STATUS_MAX 599
/* Status slots per method in a route: 100..599 plus one for "other". */
#define LM_STATUS_SLOTS (LM_STATUS_MAX - LM_STATUS_MIN + 2)
#define LM_OVERFLOW_VALUE "_overflow"

typedef _Atomic uint64_t lm_cell;

struct lm_exemplars; /* exemplar.h */
struct lm_native;    /* native.h */

typedef struct lm_shard {
    lm_cell *cells;     /* slot_capacity cells; NULL until first claimed */
    bool exclusive;     /* single writer: plain load+store; else fetch_add */
    atomic_bool owned;  /* exclusive shards: claimed by a live thread */
    lm_registry *reg;   /* for the pthread key destructor */
} lm_shard;

/* Where a histogram series records in one bound layout: its first cell
 * in every shard and that layout's bounds. Immutable once published
 * through lm_series.hc, except for the exemplar slots. Histogram cells:
 * [0..nb] non-cumulative counts per union bucket (bucket i counts v <=
 * ub[i], v in (ub[i-1], ub[i]]; bucket nb is +Inf), [nb+1] sum low 64 bits,
 * [nb+2] sum high 64 bits (two's complement 128-bit sum of int64
 * observations). */
typedef struct lm_hcells {
    uint32_t slot;
    uint32_t nb;
    const int64_t *ub;            /* the layout's union bounds, recorded units */
    /* The cells this series recorded into before the union last grew, or
     * NULL: they stay, are never written again except by a record that read
     * the old pointer just before the growth, and are summed by every
     * scrape. */
    const struct lm_hcells *prev;
    /* Latest exemplar per union bucket (nb + 1 slots), allocated on the
     * first one (exemplar.h). */
    _Atomic(struct lm_exemplars *) exemplars;
} lm_hcells;

struct lm_series {
    lm_family *family;
    uint32_t slot;        /* first cell of this series in every shard (histograms: hc0's) */
    bool is_overflow;
    lm_text *values;      /* family->nlabels sanitised label values */
    uint64_t hash;        /* of the sanitised values, for the index */
    /* Counters: the latest exemplar of the sample, allocated on the first
     * one; NULL until then (exemplar.h). Histograms keep theirs in hc. */
    _Atomic(struct lm_exemplars *) exemplars;
    /* Gauges only: one shared cell, alone on its line (in-flight gauges are
     * hit by every request on every core). */
    _Alignas(LM_CACHELINE) _Atomic int64_t gauge;
    /* Histograms only (the gauge is unused then, so a record reads this one
     * line of its series): the cells recording goes to now, &hc0 until the
     * family's bound union grows and a growth publishes new cells here. */
    _Atomic(const lm_hcells *) hc;
    lm_hcells hc0;
    /* Histograms with native buckets (native.h), else NULL: the family's
     * native parameters and this series' chunk directory, on the same line
     * as hc so a record reads one line of its series. */
    const struct lm_native *nat;
    _Atomic uint32_t *ndir;
};

/* A histogram name counts into the union of every bound list ever
 * configured for it, so that changing the exposed buckets on a reload and
 * back never loses or invents an observation: every exposed sample
 * (cumulative count at a bound, +Inf, _sum, _count) is a sum of union
 * cells and keeps counting across any sequence of bucket changes. A layout
 * is one version of that union; the family keeps them all (older ones are
 * still summed through lm_hcells.prev). */
typedef struct lm_hlayout {
    size_t n;                /* finite bounds, strictly increasing */
    int64_t *ub;             /* recorded units */
    lm_hcells *cells;        /* the cells the growth to this layout gave the */
    size_t ncells;           /* series existing then (NULL/0 for the first) */
    struct lm_hlayout *prev;
} lm_hlayout;

/* The buckets a histogram exposes now: a configured bound list and how the
 * union buckets of one layout add up to it. Published by one pointer swap;
 * never changed or freed while the registry lives. */
typedef struct lm_hproj {
    size_t n;                        /* exposed finite bounds */
    double bounds[LM_MAX_BOUNDS];    /* as configured, exposed units */
    int64_t ub[LM_MAX_BOUNDS];       /* recorded units */
    char le[LM_MAX_BOUNDS][40];      /* canonical le strings, e.g. "0.005", "1.0" */
    const int64_t *lay_ub;           /* the layout `map` was computed for */
    size_t lay_n;
    /* Union bucket j of that layout (0..lay_n, lay_n: +Inf) -> exposed
     * bucket map[j] (0..n, n: +Inf). */
    uint8_t map[LM_MAX_UNION_BOUNDS + 1];
    struct lm_hproj *next;           /* the family's other projections (lm_family.projs) */
} lm_hproj;

/* A family's help text; replaced in place by lm_family_replace, every text
 * kept (a scrape may be rendering it) until the family is freed. */
typedef struct lm_help {
    lm_text text;
    struct lm_help *next; /* the family's other texts (lm_family.helps) */
} lm_help;

struct lm_family {
    lm_registry *reg;
    lm_type type;
    /* For reports only; a replacement may change it (update_in_place). */
    _Atomic(lm_family_kind) kind;
    lm_text name;          /* as registered; counters end in "_total" */
    _Atomic(lm_help *) help; /* sanitised; see lm_help */
    lm_help *helps;          /* every text it had, under reg->lock */
    size_t nlabels;
    lm_text *label_names;
    size_t max_series;
    /* Histograms: the bound union (lm_hlayout; changed under reg->lock)
     * and the exposed buckets (lm_hproj). Bounds in recorded units are
     * floor(bound * unit_scale). */
    double unit_scale;
    lm_hlayout *layout;
    _Atomic(lm_hproj *) proj;
    lm_hproj *projs;       /* every projection made, newest first; under reg->lock */
    bool growing;          /* a growth is publishing new cells (hist_grow_locked) */
    /* Native buckets (native.h): recording parameters fixed at creation,
     * NULL for none; what the exposition shows, replaced in place. */
    struct lm_native *native;
    _Atomic uint64_t native_view;
    uint32_t width;        /* cells of a new series: counter 1, gauge 0,
                              histogram layout->n + 3 (+ lm__native_fixed_cells) */
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

/* One (method, status) cell of a route: the series it updates. */
typedef struct lm_route_slot {
    lm_series *requests;
    lm_series *duration; /* keeps counting across bucket changes (lm_hcells) */
    lm_series *bytes;
    lm_series *request_bytes;
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
    _Atomic(lm_family *) duration; /* never replaced: bucket changes are in place */
    lm_family *bytes;
    lm_family *request_bytes;
    lm_family *inflight;
    lm_route **routes;     /* max_routes */
    _Atomic size_t nroutes;
};

struct lm_registry {
    lm_registry_options opts; /* defaults resolved */
    pthread_mutex_t lock;     /* registration and series creation only */
    pthread_cond_t grown;     /* with lock: a histogram growth finished */
    pthread_key_t key;        /* thread -> lm_shard * */
    lm_shard *shards;         /* opts.max_shards exclusive shards */
    lm_shard shared;          /* overflow shard for extra threads */
    _Atomic unsigned shards_used; /* high-water mark of shards ever claimed */
    size_t slots_used;        /* bump allocator, under lock */
    /* Native histogram chunks: cells [slot_capacity, slot_capacity +
     * native_capacity) of every shard, carved without the lock (native.c). */
    _Atomic uint32_t native_used;
    lm_family **families;     /* opts.max_families */
    _Atomic size_t nfamilies; /* published with release */
    /* Sequence around changes of families' retired flags (odd while a
     * replacement swaps which family of a name is live): a scrape samples
     * the flags between two equal even values, so it never sees two live
     * families of one name nor none. Written under lock. */
    _Atomic unsigned retire_seq;
    lm_http **https;          /* one per prefix, at most 16 */
    size_t nhttp;
    /* Test-only fault injection, NULL in every registry the public API
     * makes: tests of the static library set it to make the exposition fail
     * at a chosen point as its real failure would (lm__fault_site). */
    bool (*fault)(void *ctx, int site);
    void *fault_ctx;
    /* CLOCK_MONOTONIC nanoseconds, set once in lm_registry_new and read-only
     * afterwards: reports divide counts by the time since then to show
     * rates (requests/s since the registry was created). */
    int64_t created_mono_ns;
};

/* Where reg->fault is asked. */
enum lm__fault_site {
    LM__FAULT_ALLOC = 1, /* an allocation of the exposition cursor */
    LM__FAULT_UNIT = 2,  /* rendering the next unit (line) of an exposition */
    LM__FAULT_PROC = 3   /* reading the process figures from /proc */
};

static inline bool lm__fault(const lm_registry *reg, int site)
{
    return __builtin_expect(reg->fault != NULL, 0) && reg->fault(reg->fault_ctx, site);
}

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

/* Consistent-enough read of a histogram series for exposition, in the
 * buckets of projection p (of s's family): buckets[0..p->n] non-cumulative
 * counts, *count their sum (so +Inf == _count by construction),
 * *sum_hi:*sum_lo the 128-bit sum in recorded units. Sums every cells s
 * ever had (lm_hcells.prev); returns the current ones (for exemplars). A
 * union bucket of an older layout that straddles an exposed bound (one
 * the union gained later) counts at the bound above it. */
LM_HIDDEN const lm_hcells *lm__histogram_read_proj(const lm_series *s, const lm_hproj *p,
                                                   uint64_t *buckets, uint64_t *count,
                                                   int64_t *sum_hi, uint64_t *sum_lo);
/* The same in the family's current projection (buckets holds
 * LM_MAX_BOUNDS + 1). */
LM_HIDDEN void lm__histogram_read(const lm_series *s, uint64_t *buckets, uint64_t *count,
                                  int64_t *sum_hi, uint64_t *sum_lo);
/* The exposed buckets of histogram family f now. */
static inline const lm_hproj *lm__family_proj(const lm_family *f)
{
    return atomic_load_explicit(&((lm_family *)f)->proj, memory_order_acquire);
}
static inline const lm_text *lm__family_help(const lm_family *f)
{
    return &atomic_load_explicit(&((lm_family *)f)->help, memory_order_acquire)->text;
}

/* ----------------------------------------------------------- family.c */
/* "counter", "gauge", "histogram" (the exposition's TYPE word, also used in
 * error messages); "unknown" for a value outside the enum. */
LM_HIDDEN const char *lm__type_name(lm_type t);
/* Whether families (ta, a) and (tb, b), both names valid for their type,
 * would expose a name in common (the names each type exposes are listed at
 * lm_builtin_clash); if so the first such name is written to exposed (cap
 * bytes, NUL-terminated, cut to fit) when cap > 0. */
LM_HIDDEN bool lm__names_clash(lm_type ta, const char *a, lm_type tb, const char *b,
                               char *exposed, size_t cap);

/* ------------------------------------------------------------- expo.c */
/* libmetrics_series_folded_total and the process_* metrics, as built-ins a
 * host family may clash with (lm_builtin_clash's contract, for a name
 * valid for its type). */
LM_HIDDEN bool lm__expo_builtin_clash(lm_type type, const char *name, char *builtin, size_t cap);

/* ------------------------------------------------------------- names.c */
/* The name patterns alone: [a-zA-Z_:][a-zA-Z0-9_:]* and [a-zA-Z_][a-zA-Z0-9_]*
 * (lm_valid_label_name adds the reserved "__" prefix; registration checks
 * that separately so its message can say why). */
LM_HIDDEN bool lm__valid_metric_name(const char *s);
LM_HIDDEN bool lm__valid_label_name(const char *s);
/* A counter's name ends in "_total" after a non-empty base name. */
LM_HIDDEN bool lm__valid_counter_suffix(const char *name);

#endif /* LM_INTERNAL_H */
