/*
 * Native histogram buckets: parameters, chunk carving, and reading a
 * series back as the exposition shows it. Storage and recording: native.h.
 */
#include "native.h"
#include "core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

struct lm_native *lm__native_new(lm_registry *reg, int schema, double zero_threshold,
                                 double unit_scale)
{
    size_t nlo = schema > 0 ? (size_t)1 << (schema + 2) : 0;
    struct lm_native *n = calloc(1, sizeof *n + nlo * sizeof n->lo_table[0]);
    if (n == NULL)
        return NULL;
    n->unit_scale = unit_scale;
    n->zero_threshold = zero_threshold;
    n->schema = (int8_t)schema;
    n->reg = reg;
    n->arena = (uint32_t)reg->opts.slot_capacity;
    if (schema > 0) {
        n->bounds = lm__native_bounds(schema);
        /* Slice t of [0.5, 1) starts at 0.5 * (1 + t / nlo) (exact). */
        for (size_t t = 0; t < nlo; t++)
            n->lo_table[t] = (uint16_t)search(n->bounds, 1u << schema,
                                              0.5 + (double)t * (0.5 / (double)nlo));
        n->lo = n->lo_table;
    }
    /* Every |v| from 1 to 2^63 (INT64_MIN's magnitude; INT64_MAX rounds to
     * it) gives x in [1 / scale, 2^63 / scale], and the key is monotonic. */
    int32_t kmin = lm__native_key(n, 1.0 / unit_scale);
    int32_t kmax = lm__native_key(n, 0x1p63 / unit_scale);
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
    if (n->fb_n > LM_NATIVE_FB_MAX) { /* 2^63 spans 64 powers of two: 6 at most */
        free(n);
        return NULL;
    }
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
