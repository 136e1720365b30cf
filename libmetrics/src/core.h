/*
 * Hidden helpers shared by the core's translation units (registry, family,
 * shard, record, http, text). Kept apart from internal.h so the structures
 * stay the one shared contract; nothing here is exported.
 */
#ifndef LM_CORE_H
#define LM_CORE_H

#include "internal.h"
#include "native.h"

#define LM_LIKELY(x) __builtin_expect(!!(x), 1)
#define LM_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Limits beside the defaults libmetrics.h defines (LM_DEFAULT_*). */
#define LM_MAX_SERIES_LIMIT ((size_t)1 << 22)
#define LM_MAX_HTTP 16

/* family.c: the public calls' bodies, for callers that already hold
 * reg->lock (lm_http_register registers four families as one step). A
 * bucket change that grows a histogram's bound union releases the lock
 * while it publishes the series' new cells and takes it again before
 * returning (hist_grow_locked): callers must not rely on state read under
 * the lock before the call. */
LM_HIDDEN lm_family *lm__family_register_locked(lm_registry *reg, const lm_family_options *opts,
                                                bool replace, lm_error *err);
LM_HIDDEN lm_series *lm__series_get_locked(lm_family *fam, const lm_str *values, lm_error *err);
/* The overflow series of fam, made visible (it is preallocated). */
LM_HIDDEN lm_series *lm__family_overflow_locked(lm_family *fam);
LM_HIDDEN void lm__family_free(lm_family *fam);
/* 0 if a family may hold max_series series, else -1 with "<subject>:
 * max_series ... exceeds ..." in err (subject: `family "x"`, `http prefix
 * "x_"`, `http metrics`). */
LM_HIDDEN int lm__max_series_check(const char *subject, size_t max_series,
                                   lm_error *err);

/* http.c */
LM_HIDDEN void lm__http_free(lm_http *http);

/* http.c's four families of a prefix, as a built-in a host family may
 * clash with (lm_builtin_clash's contract, for a name valid for its
 * type). */
LM_HIDDEN bool lm__http_builtin_clash(lm_type type, const char *name, const char *prefix,
                                      char *builtin, size_t cap);

/* Index of the bucket that counts v: the first i with v <= ub[i], or n for
 * +Inf. Up to 16 bounds a linear scan with early exit: latencies crowd the
 * low buckets, the exit branch is well predicted, and lm_bench measured it
 * faster than a binary search for the 14 default bounds even with values
 * spread log-uniformly over every bucket (bench/RESULTS.md, "Measurements
 * behind design choices in the code"). Beyond that, a binary search whose
 * trip count depends only on n. n >= 1. */
static inline size_t lm__bucket_index(const int64_t *ub, size_t n, int64_t v)
{
    if (n <= 16) {
        size_t i = 0;
        while (i < n && v > ub[i])
            i++;
        return i;
    }
    const int64_t *base = ub;
    size_t len = n;
    while (len > 1) {
        size_t half = len / 2;
        base += (base[half - 1] < v) ? half : 0;
        len -= half;
    }
    return (size_t)(base - ub) + (*base < v);
}

/* One observation into histogram cells c of shard sh: its bucket +1 and
 * the 128-bit sum (lo, hi) += v. The high word moves only when the low word
 * wraps (or for negative v that does not wrap it), so in practice it is a
 * bucket store and a sum store. The bucket store releases the series'
 * native cells written just before (native.h); on x86 that is still a
 * plain store. */
static inline void lm__hcells_add(const lm_shard *sh, const lm_hcells *c, int64_t v)
{
    size_t nb = c->nb;
    uint32_t base = c->slot;
    lm_cell *cells = sh->cells;
    lm_cell *bucket = &cells[base + lm__bucket_index(c->ub, nb, v)];
    lm_cell *lo = &cells[base + nb + 1];
    lm_cell *hi = &cells[base + nb + 2];
    uint64_t u = (uint64_t)v;
    uint64_t sign = v < 0 ? UINT64_MAX : 0; /* sign extension into the high word */

    if (LM_LIKELY(sh->exclusive)) {
        atomic_store_explicit(bucket, atomic_load_explicit(bucket, memory_order_relaxed) + 1,
                              memory_order_release);
        uint64_t old = atomic_load_explicit(lo, memory_order_relaxed);
        uint64_t nlo = old + u;
        atomic_store_explicit(lo, nlo, memory_order_relaxed);
        uint64_t dh = sign + (nlo < old);
        if (LM_UNLIKELY(dh != 0))
            atomic_store_explicit(hi, atomic_load_explicit(hi, memory_order_relaxed) + dh,
                                  memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(bucket, 1, memory_order_release);
        uint64_t old = atomic_fetch_add_explicit(lo, u, memory_order_relaxed);
        uint64_t dh = sign + (old + u < old);
        if (dh != 0)
            atomic_fetch_add_explicit(hi, dh, memory_order_relaxed);
    }
}

/* The cells a histogram series records into now. Acquire: a growth
 * initialises new cells before publishing them. */
static inline const lm_hcells *lm__hcells(const lm_series *s)
{
    return atomic_load_explicit(&((lm_series *)s)->hc, memory_order_acquire);
}

static inline void lm__histogram_add(const lm_shard *sh, const lm_series *s, int64_t v)
{
    lm__native_add(sh, s, v); /* before the classic bucket's release */
    lm__hcells_add(sh, lm__hcells(s), v);
}

#endif /* LM_CORE_H */
