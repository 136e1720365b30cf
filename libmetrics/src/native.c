/*
 * Native histogram buckets: parameters, chunk carving, and reading a
 * series back as the exposition shows it. Storage and recording: native.h.
 */
#include "native.h"
#include "core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* unit_scale bounds for native buckets: every |x| = |v| / unit_scale with
 * 1 <= |v| <= 2^63 is then a finite normal double (2^-960 .. 2^1023). */
#define SCALE_MIN 0x1p-960
#define SCALE_MAX 0x1p960

int lm__native_validate(const lm_native_options *o, double unit_scale, const char *q,
                        double *zero_threshold, lm_error *err)
{
    if (o->schema < LM_NATIVE_SCHEMA_MIN || o->schema > LM_NATIVE_SCHEMA_MAX) {
        lm__set_error(err, LM_ERR_INVALID,
                      "histogram %s: native schema %d must be from %d to %d", q, o->schema,
                      LM_NATIVE_SCHEMA_MIN, LM_NATIVE_SCHEMA_MAX);
        return -1;
    }
    if (!isfinite(o->zero_threshold)) {
        lm__set_error(err, LM_ERR_INVALID,
                      "histogram %s: native zero_threshold %g must be finite", q,
                      o->zero_threshold);
        return -1;
    }
    if (!(unit_scale >= SCALE_MIN && unit_scale <= SCALE_MAX)) {
        lm__set_error(err, LM_ERR_INVALID,
                      "histogram %s: native buckets need a unit_scale from 2^-960 to 2^960, "
                      "not %g",
                      q, unit_scale);
        return -1;
    }
    *zero_threshold = o->zero_threshold == 0  ? LM_NATIVE_DEFAULT_ZERO_THRESHOLD
                      : o->zero_threshold < 0 ? 0
                                              : o->zero_threshold;
    return 0;
}

/* sort.SearchFloat64s: the first i with b[i] >= x, or n. */
static uint32_t search(const double *b, uint32_t n, double x)
{
    uint32_t i = 0;
    while (i < n && b[i] < x)
        i++;
    return i;
}

/* The key of integer magnitude a >= 1: lm__native_key of (double)a /
 * unit_scale, client_golang's for the observation +-a. */
static int32_t key_of(const struct lm_native *n, uint64_t a)
{
    return lm__native_key(n, (double)a / n->unit_scale);
}

/* The largest a in [lo, hi] with key_of(a) <= k, given key_of(lo) <= k
 * (bisection: the key never decreases as a grows). */
static uint64_t last_with_key(const struct lm_native *n, uint64_t lo, uint64_t hi, int32_t k)
{
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        if (key_of(n, mid) <= k)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Fills the lookup lm__native_add uses (see there): 0, or -1 if a slice
 * held two key steps (it cannot: see the header; checked anyway). */
static int build_lookup(struct lm_native *n, uint64_t *thr, uint16_t *seg)
{
    unsigned k = n->seg_bits;
    uint32_t nseg = 1u << k;
    /* zmax: the largest a with a / unit_scale <= zero_threshold. */
    uint64_t lo = 0, hi = (uint64_t)1 << 63;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        if ((double)mid / n->unit_scale <= n->zero_threshold)
            lo = mid;
        else
            hi = mid - 1;
    }
    n->zmax = lo;
    for (int p = 0; p < 64; p++) {
        uint64_t first = (uint64_t)1 << p;
        uint64_t last = p == 63 ? first : (first << 1) - 1; /* |v| <= 2^63 */
        int32_t k0 = key_of(n, first), ktop = key_of(n, last);
        if (ktop - k0 >= n->stride)
            return -1;
        /* key - kmin = (k0 + j) - kmin for thr index p * stride + j */
        n->kadj[p] = k0 - n->kmin - p * (int32_t)n->stride;
        uint64_t *t = thr + (size_t)p * n->stride;
        /* t[j]: the largest a of this power of two with key <= k0 + j
         * (never below the one for j - 1, where the key is <= k0 + j too;
         * a key no integer has gets its predecessor's threshold). */
        uint64_t from = first;
        for (int32_t j = 0; j < n->stride; j++) {
            t[j] = k0 + j >= ktop ? last : last_with_key(n, from, last, k0 + j);
            from = t[j];
        }
        for (uint32_t sl = 0; sl < nseg; sl++) {
            /* The integers of slice sl: those whose K bits under the
             * leading one are sl (one integer, or none, when p < K). */
            uint64_t a0, a1;
            if ((unsigned)p >= k) {
                a0 = first + ((uint64_t)sl << (p - k));
                a1 = a0 + ((uint64_t)1 << (p - k)) - 1;
            } else {
                a0 = a1 = first + (sl >> (k - p));
            }
            if (a0 > last)
                a0 = a1 = last; /* beyond 2^63: never looked up */
            if (a1 > last)
                a1 = last;
            int32_t j0 = key_of(n, a0) - k0;
            if (key_of(n, a1) - k0 > j0 + 1)
                return -1;
            seg[((size_t)p << k) + sl] = (uint16_t)((uint32_t)p * n->stride + (uint32_t)j0);
        }
    }
    return 0;
}

struct lm_native *lm__native_new(lm_registry *reg, int schema, double zero_threshold,
                                 double unit_scale)
{
    /* A power of two of |v| spans a factor 2 of x: at most 2^schema + 1
     * buckets (2 at schema <= 0), and 2^(schema + 2) slices of it are each
     * narrower than a bucket (2^(2^-schema) - 1 > 2^-(schema + 1)). */
    unsigned k = schema > 0 ? (unsigned)schema + 2 : 0;
    size_t stride = schema > 0 ? ((size_t)1 << schema) + 1 : 2;
    size_t nb = schema > 0 ? ((size_t)1 << schema) + 1 : 0;
    size_t nlo = schema > 0 ? (size_t)1 << (schema + 2) : 0;
    size_t words = 64 * stride + nb + (((64 << k) + nlo) * sizeof(uint16_t) + 7) / 8;
    struct lm_native *n = calloc(1, sizeof *n + words * sizeof(uint64_t));
    if (n == NULL)
        return NULL;
    n->unit_scale = unit_scale;
    n->zero_threshold = zero_threshold;
    n->schema = (int8_t)schema;
    n->reg = reg;
    n->arena = (uint32_t)reg->opts.slot_capacity;
    n->seg_bits = (uint8_t)k;
    n->stride = (uint16_t)stride;
    uint64_t *thr = n->tables;
    double *bounds = (double *)(thr + 64 * stride);
    uint16_t *seg = (uint16_t *)(bounds + nb);
    if (schema > 0) {
        memcpy(bounds, lm__native_bounds(schema), (nb - 1) * sizeof(double));
        bounds[nb - 1] = 1.0;
        n->bounds = bounds;
        uint16_t *lo = seg + ((size_t)64 << k);
        /* Slice t of [0.5, 1) starts at 0.5 * (1 + t / nlo) (exact). */
        for (size_t t = 0; t < nlo; t++)
            lo[t] = (uint16_t)search(n->bounds, 1u << schema, 0.5 + (double)t * (0.5 / (double)nlo));
        n->lo = lo;
    }
    /* Every |v| from 1 to 2^63 (INT64_MIN's magnitude; INT64_MAX rounds to
     * it) gives x in [1 / scale, 2^63 / scale], and the key is monotonic. */
    int32_t kmin = key_of(n, 1);
    int32_t kmax = key_of(n, (uint64_t)1 << 63);
    n->kmin = kmin;
    n->nkeys = (uint32_t)(kmax - kmin + 1);
    /* A chunk is one power of two of buckets at schema 3 (8 keys), at most
     * 64 keys (512 bytes per shard) at finer schemas: latencies spread
     * over a few powers of two touch a few chunks. */
    n->chunk_shift = (uint8_t)(schema <= 3 ? 3 : schema >= 6 ? 6 : schema);
    n->nchunks = (uint16_t)((n->nkeys + (1u << n->chunk_shift) - 1) >> n->chunk_shift);
    unsigned d = (unsigned)(schema + 4);
    n->fb_kmin = lm__native_coarser(kmin, d);
    n->fb_n = (uint32_t)(lm__native_coarser(kmax, d) - n->fb_kmin + 1);
    /* 2^63 spans 64 powers of two: 6 fallback keys at most. */
    if (n->fb_n > LM_NATIVE_FB_MAX || build_lookup(n, thr, seg) != 0) {
        free(n);
        return NULL;
    }
    n->seg = seg;
    n->thr = thr;
    return n;
}

void lm__native_free(struct lm_native *n)
{
    free(n);
}

_Atomic uint32_t *lm__native_dir_new(const struct lm_native *n)
{
    _Atomic uint32_t *d = calloc(2 * (size_t)n->nchunks, sizeof *d);
    if (d != NULL)
        for (size_t i = 0; i < 2 * (size_t)n->nchunks; i++)
            atomic_init(&d[i], 0);
    return d;
}

uint32_t lm__native_chunk(const struct lm_native *n, _Atomic uint32_t *d)
{
    lm_registry *reg = n->reg;
    uint32_t size = 1u << n->chunk_shift;
    uint32_t cap = (uint32_t)reg->opts.native_capacity;
    uint32_t used = atomic_load_explicit(&reg->native_used, memory_order_relaxed);
    do {
        if (used > cap || cap - used < size)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&reg->native_used, &used, used + size,
                                                    memory_order_relaxed, memory_order_relaxed));
    uint32_t expect = 0;
    if (!atomic_compare_exchange_strong_explicit(d, &expect, used, memory_order_relaxed,
                                                 memory_order_relaxed))
        return expect; /* another thread carved this chunk first: use its cells */
    return used;
}

/* ------------------------------------------------------------ reading */

int lm__native_scratch_fit(lm_native_scratch *sc, const struct lm_native *n,
                           void *(*alloc)(void *ctx, void *p, size_t bytes), void *ctx)
{
    size_t chunk = (size_t)1 << n->chunk_shift;
    if (chunk > sc->chunk_cap) {
        uint64_t *c = alloc(ctx, sc->chunk, chunk * sizeof *c);
        if (c == NULL)
            return -1;
        sc->chunk = c;
        sc->chunk_cap = chunk;
    }
    /* nkeys covers a row at the recording schema; the fallback keys (at
     * schema -4) are fewer than the keys they cover. */
    size_t need = (size_t)n->nchunks << n->chunk_shift;
    for (int sign = 0; sign < 2 && need > sc->cap; sign++) {
        int32_t *k = alloc(ctx, sc->key[sign], need * sizeof *k);
        if (k == NULL)
            return -1;
        sc->key[sign] = k;
        uint64_t *c = alloc(ctx, sc->count[sign], need * sizeof *c);
        if (c == NULL)
            return -1;
        sc->count[sign] = c;
    }
    if (need > sc->cap)
        sc->cap = need;
    return 0;
}

void lm__native_scratch_free(lm_native_scratch *sc)
{
    for (int sign = 0; sign < 2; sign++) {
        free(sc->key[sign]);
        free(sc->count[sign]);
    }
    free(sc->chunk);
    *sc = (lm_native_scratch){0};
}

/* Populated buckets at a schema d steps coarser than row r's. */
static size_t distinct_at(const lm_native_row *r, unsigned d)
{
    size_t m = 0;
    int32_t prev = 0;
    for (size_t i = 0; i < r->n; i++) {
        int32_t k = lm__native_coarser(r->key[i], d);
        if (m == 0 || k != prev)
            m++;
        prev = k;
    }
    return m;
}

/* Merges row r in place into the buckets d steps coarser. */
static void coarsen(lm_native_row *r, unsigned d)
{
    if (d == 0)
        return;
    size_t m = 0;
    for (size_t i = 0; i < r->n; i++) {
        int32_t k = lm__native_coarser(r->key[i], d);
        if (m > 0 && r->key[m - 1] == k) {
            r->count[m - 1] += r->count[i];
        } else {
            r->key[m] = k;
            r->count[m] = r->count[i];
            m++;
        }
    }
    r->n = m;
}

/* Adds fallback row fb (keys fb_kmin.., schema -4) into r, which is at
 * schema -4 already, so its keys lie in the same fb_n slots. */
static void add_fallback(lm_native_row *r, const uint64_t *fb, int32_t fb_kmin, uint32_t fb_n)
{
    uint64_t acc[LM_NATIVE_FB_MAX];
    memcpy(acc, fb, fb_n * sizeof *acc);
    for (size_t i = 0; i < r->n; i++)
        acc[r->key[i] - fb_kmin] += r->count[i];
    r->n = 0;
    for (uint32_t j = 0; j < fb_n; j++)
        if (acc[j] != 0) {
            r->key[r->n] = fb_kmin + (int32_t)j;
            r->count[r->n] = acc[j];
            r->n++;
        }
}

void lm__native_read(const lm_series *s, lm_native_view v, lm_native_scratch *sc,
                     lm_native_hist *h)
{
    const struct lm_native *n = s->nat;
    lm_registry *reg = n->reg;
    uint32_t c = 1u << n->chunk_shift;
    uint32_t fixed = s->hc0.slot + s->hc0.nb + 3;
    unsigned nsh = atomic_load_explicit(&reg->shards_used, memory_order_acquire);
    uint64_t fb[2][LM_NATIVE_FB_MAX];
    bool fallback = false;

    h->zero = lm__cell_total(reg, fixed);
    for (int sign = 0; sign < 2; sign++) {
        lm_native_row *r = &h->row[sign];
        *r = (lm_native_row){sc->key[sign], sc->count[sign], 0};
        for (uint32_t ci = 0; ci < n->nchunks; ci++) {
            uint32_t off = atomic_load_explicit(&s->ndir[(uint32_t)sign * n->nchunks + ci],
                                                memory_order_relaxed);
            if (off == 0)
                continue;
            uint32_t base = n->arena + off;
            for (uint32_t i = 0; i < c; i++)
                sc->chunk[i] =
                    atomic_load_explicit(&reg->shared.cells[base + i], memory_order_relaxed);
            for (unsigned k = 0; k < nsh; k++) {
                lm_cell *cells = reg->shards[k].cells;
                for (uint32_t i = 0; i < c; i++)
                    sc->chunk[i] += atomic_load_explicit(&cells[base + i], memory_order_relaxed);
            }
            for (uint32_t i = 0; i < c; i++) {
                if (sc->chunk[i] == 0)
                    continue;
                r->key[r->n] = n->kmin + (int32_t)(ci * c + i);
                r->count[r->n] = sc->chunk[i];
                r->n++;
            }
        }
        for (uint32_t j = 0; j < n->fb_n; j++) {
            fb[sign][j] = lm__cell_total(reg, fixed + 1 + (uint32_t)sign * n->fb_n + j);
            fallback |= fb[sign][j] != 0;
        }
    }

    int top = v.schema < n->schema ? v.schema : n->schema;
    int sigma = top;
    if (fallback) {
        sigma = LM_NATIVE_SCHEMA_MIN;
    } else if (v.max_buckets != 0) {
        for (; sigma > LM_NATIVE_SCHEMA_MIN; sigma--) {
            unsigned d = (unsigned)(n->schema - sigma);
            if (distinct_at(&h->row[0], d) + distinct_at(&h->row[1], d) <= v.max_buckets)
                break;
        }
    }
    h->schema = sigma;
    h->zero_threshold = n->zero_threshold;
    h->count = h->zero;
    for (int sign = 0; sign < 2; sign++) {
        coarsen(&h->row[sign], (unsigned)(n->schema - sigma));
        if (fallback)
            add_fallback(&h->row[sign], fb[sign], n->fb_kmin, n->fb_n);
        for (size_t i = 0; i < h->row[sign].n; i++)
            h->count += h->row[sign].count[i];
    }
}

size_t lm__native_spans(const lm_native_row *r, int32_t *span_off, uint32_t *span_len,
                        size_t *nspans, int64_t *deltas)
{
    size_t ns = 0, nd = 0;
    int64_t prev = 0;
    int32_t next = 0;
    for (size_t j = 0; j < r->n; j++) {
        int32_t gap = r->key[j] - next;
        if (j == 0 || gap > 2) {
            span_off[ns] = gap;
            span_len[ns] = 0;
            ns++;
        } else {
            for (int32_t g = 0; g < gap; g++) {
                span_len[ns - 1]++;
                deltas[nd++] = -prev;
                prev = 0;
            }
        }
        span_len[ns - 1]++;
        deltas[nd++] = (int64_t)r->count[j] - prev;
        prev = (int64_t)r->count[j];
        next = r->key[j] + 1;
    }
    *nspans = ns;
    return nd;
}
