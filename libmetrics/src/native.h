/*
 * Native histogram buckets (the public contract: lm_native_options in
 * libmetrics.h).
 *
 * Storage. A bucket is identified by its key at the family's recording
 * schema r (client_golang's "index": bucket k holds (b^(k-1), b^k] with b =
 * 2^(2^-r)) and its sign. Every key an int64 observation can reach lies in
 * [kmin, kmin + nkeys): |v| goes from 1 to 2^63 recorded units. Keys are
 * grouped in chunks of 2^chunk_shift consecutive keys; a series owns a
 * directory of 2 x nchunks entries (positive chunks, then negative), each
 * 0 or the offset of the chunk's cells in the registry's native arena.
 * The arena is one more region of every shard (cells [slot_capacity,
 * slot_capacity + native_capacity)), so a chunk, like a series slot, has
 * the same offset in every shard and is summed over shards when scraped.
 *
 * Recording (lm__native_add) is a key computation, one directory load and
 * the usual cell update of the thread's shard (plain load + store on an
 * exclusive shard, fetch_add on the shared one). The first observation of
 * a chunk carves it: a CAS loop on reg->native_used reserves the cells, a
 * CAS publishes the offset in the directory (a thread that loses that race
 * uses the winner's chunk; its own reservation stays unused). No lock, no
 * malloc; the arena pages are zero from mmap, so a chunk needs no
 * initialisation and relaxed ordering suffices. Should the arena be full,
 * the observation counts in the series' fallback cells at schema -4 (two
 * short dense rows in its fixed slot range), and that series is exposed at
 * schema -4 from then on: coarse, still exact.
 *
 * Fixed cells of a series (after its classic ones, at hc0.slot + hc0.nb +
 * 3): the zero bucket, then the fallback rows (positive, negative).
 *
 * Consistency with the classic buckets (one Histogram message carries both
 * and one sample_count): a record adds to the native cells BEFORE it
 * release-stores the classic bucket, and the scraper acquire-loads the
 * classic buckets BEFORE it reads the native cells, so every observation a
 * scrape counts in the classic buckets is in the native ones it reads
 * after: classic cumulative counts <= the native total, which is the
 * exposed count (Prometheus requires count == sum of native buckets).
 */
#ifndef LM_NATIVE_H
#define LM_NATIVE_H

#include "internal.h"

#include <string.h>

#define LM_NATIVE_DEFAULT_ZERO_THRESHOLD 0x1p-128
/* Fallback keys per sign: schema -4 buckets span 2^16, and |v| from 1 to
 * 2^63 spans 64 powers of two, so 6 at most. */
#define LM_NATIVE_FB_MAX 8
/* Arena cells never handed out, so that offset 0 means "no chunk". */
#define LM_NATIVE_ARENA_RESERVED 8

struct lm_native {
    /* Read by every record: the key as a lookup on the integer |v| (see
     * lm__native_add): the largest |v| of the zero bucket; per power of two
     * 2^p <= |v| < 2^(p+1), where to start (seg, by the K bits below the
     * leading one: an index into thr), the largest |v| of each key from
     * there (thr, stride entries per p, the first for the key of 2^p), and
     * what turns a thr index of p into the key relative to kmin (kadj). */
    uint64_t zmax;
    const uint16_t *seg;
    const uint64_t *thr;
    int32_t kadj[64];
    uint8_t seg_bits;       /* K */
    uint16_t stride;
    uint32_t arena;         /* first arena cell: reg->opts.slot_capacity */
    int8_t schema;          /* recording schema */
    uint8_t chunk_shift;
    uint16_t nchunks;       /* per sign */
    int32_t kmin;
    /* The definition the lookup is computed from (lm__native_key). */
    double unit_scale;
    double zero_threshold;  /* resolved: >= 0 */
    /* schema > 0: client_golang's table (2^schema entries, copied as they
     * are) and 1.0 after them, above every frac, so a search that starts
     * at the end stays there; and the search start per top mantissa bits. */
    const double *bounds;
    const uint16_t *lo;
    uint32_t nkeys;
    int32_t fb_kmin;        /* fallback keys at schema -4 */
    uint32_t fb_n;
    lm_registry *reg;
    /* thr (64 x stride), then for schema > 0 the bounds (2^schema + 1),
     * then seg (64 << K) and lo (1 << (schema + 2)). */
    uint64_t tables[];
};

/* What the exposition shows, packed in one word (lm_family.native_view). */
typedef struct lm_native_view {
    bool on;
    int schema;
    uint32_t max_buckets;
} lm_native_view;

static inline uint64_t lm__native_view_pack(lm_native_view v)
{
    return (uint64_t)v.on << 40 | (uint64_t)(uint8_t)(v.schema + 16) << 32 | v.max_buckets;
}

static inline lm_native_view lm__native_view_unpack(uint64_t w)
{
    return (lm_native_view){.on = (w >> 40) & 1,
                            .schema = (int)((w >> 32) & 0xff) - 16,
                            .max_buckets = (uint32_t)w};
}

/* native_bounds.c: client_golang's table for schema 1..8, else NULL. */
LM_HIDDEN const double *lm__native_bounds(int schema);

/* ------------------------------------------------------------ native.c */

/* The zero threshold options ask for, resolved (0: 2^-128, < 0: 0); -1 if
 * options are invalid (err filled, naming family q). Checks the schema,
 * the threshold and that unit_scale keeps every x finite and normal. */
LM_HIDDEN int lm__native_validate(const lm_native_options *o, double unit_scale, const char *q,
                                  double *zero_threshold, lm_error *err);
/* Recording parameters for a family of reg; NULL when out of memory. */
LM_HIDDEN struct lm_native *lm__native_new(lm_registry *reg, int schema, double zero_threshold,
                                           double unit_scale);
LM_HIDDEN void lm__native_free(struct lm_native *n);
/* Cells a series needs in its fixed slot range: zero bucket + fallback. */
static inline uint32_t lm__native_fixed_cells(const struct lm_native *n)
{
    return n ? 1 + 2 * n->fb_n : 0;
}
/* A series' directory (zeroed), or NULL when out of memory. */
LM_HIDDEN _Atomic uint32_t *lm__native_dir_new(const struct lm_native *n);

/* Carves a chunk for directory entry d (cold path of lm__native_add);
 * returns its arena offset, or 0 when the arena is full. */
LM_HIDDEN uint32_t lm__native_chunk(const struct lm_native *n, _Atomic uint32_t *d);

/* ceil(k / 2^d): the key at a schema d steps coarser. */
static inline int32_t lm__native_coarser(int32_t k, unsigned d)
{
    return k >= 0 ? (int32_t)(((uint32_t)k + ((1u << d) - 1)) >> d)
                  : -(int32_t)((uint32_t)(-(int64_t)k) >> d);
}

/* client_golang's key of ax > 0 (finite, normal) at n's schema:
 * frac, exp = Frexp(ax); schema > 0: SearchFloat64s(bounds, frac) + (exp -
 * 1) * len(bounds); else exp (minus 1 if frac == 0.5) rounded up to a
 * multiple of 2^-schema. The search starts where the top schema + 2
 * mantissa bits say (lo) and takes at most one step: such a slice of
 * [0.5, 1) is narrower than a bucket, so at most one bound lies in it
 * (test_native checks it against a plain search over every bound and its
 * neighbours). */
static inline int32_t lm__native_key(const struct lm_native *n, double ax)
{
    uint64_t b;
    memcpy(&b, &ax, sizeof b);
    int32_t exp = (int32_t)(b >> 52) - 1022; /* ax = frac * 2^exp, frac in [0.5, 1) */
    uint64_t mant = b & 0xfffffffffffffull;
    int s = n->schema;
    if (s > 0) {
        uint64_t fb = mant | (uint64_t)1022 << 52;
        double frac;
        memcpy(&frac, &fb, sizeof frac);
        uint32_t i = n->lo[mant >> (52 - (s + 2))];
        i += n->bounds[i] < frac; /* bounds[2^s] is 1.0: never below frac */
        return (int32_t)i + (exp - 1) * (int32_t)(1u << s);
    }
    int32_t k = exp - (mant == 0); /* frac == 0.5: the bucket below */
    return lm__native_coarser(k, (unsigned)-s);
}

/* One observation v (recorded units) into series s's native buckets in
 * shard sh. Before the classic bucket's release store (see above).
 *
 * The key is lm__native_key's of x = (double)v / unit_scale, found without
 * floating point: that key is a non-decreasing function of the integer
 * a = |v| (conversion and division round monotonically, IEEE rounding is
 * symmetric in sign, the key is monotonic in |x|), so it is fixed by the
 * integers where it steps up. lm__native_new finds each of them with that
 * very float computation (bisection) and tabulates them per power of two
 * of a; here a's leading bit p and the K bits below it pick a start key,
 * and one comparison with the step's threshold finishes, because a slice
 * of 2^-K of a power of two is narrower than any bucket (lm__native_new
 * checks every slice). The zero bucket is a <= zmax, likewise.
 * lm__native_rel: the key of a (1 <= a <= 2^63, a > zmax) minus kmin. */
static inline uint32_t lm__native_rel(const struct lm_native *n, uint64_t a)
{
    int p = 63 - __builtin_clzll(a);
    uint64_t below = a << (63 - p) << 1; /* the bits under the leading one */
    unsigned k = n->seg_bits;
    uint32_t i = n->seg[((uint32_t)p << k) + (uint32_t)((below >> 1) >> (63 - k))];
    i += a > n->thr[i];
    return (uint32_t)(n->kadj[p] + (int32_t)i);
}

static inline void lm__native_add(const lm_shard *sh, const lm_series *s, int64_t v)
{
    const struct lm_native *n = s->nat;
    if (n == NULL)
        return;
    uint32_t cell = s->hc0.slot + s->hc0.nb + 3; /* the zero bucket */
    uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    if (a > n->zmax) {
        unsigned neg = v < 0;
        uint32_t rel = lm__native_rel(n, a);
        _Atomic uint32_t *d = &s->ndir[neg * n->nchunks + (rel >> n->chunk_shift)];
        uint32_t off = atomic_load_explicit(d, memory_order_relaxed);
        if (__builtin_expect(off == 0, 0))
            off = lm__native_chunk(n, d);
        if (__builtin_expect(off != 0, 1))
            cell = n->arena + off + (rel & ((1u << n->chunk_shift) - 1));
        else /* arena full: the schema -4 fallback row of this sign */
            cell += 1 + neg * n->fb_n +
                    (uint32_t)(lm__native_coarser((int32_t)rel + n->kmin,
                                                  (unsigned)(n->schema + 4)) -
                               n->fb_kmin);
    }
    lm_cell *c = &sh->cells[cell];
    if (sh->exclusive)
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ----------------------------------------------------------- reading */

/* One sign of a native histogram: populated buckets, keys ascending. */
typedef struct lm_native_row {
    int32_t *key;
    uint64_t *count;
    size_t n;
} lm_native_row;

/* A series' native histogram as read by a scrape, then as exposed. */
typedef struct lm_native_hist {
    int schema;
    double zero_threshold;
    uint64_t zero;
    lm_native_row row[2]; /* positive, negative */
    uint64_t count;       /* zero + every bucket */
} lm_native_hist;

/* Scratch for reading one series at a time: rows sized for the family
 * with the most keys seen so far. */
typedef struct lm_native_scratch {
    int32_t *key[2];
    uint64_t *count[2];
    size_t cap;
    uint64_t *chunk; /* one chunk's sums */
    size_t chunk_cap;
} lm_native_scratch;

/* Sizes sc for family parameters n; -1 when out of memory (then sc keeps
 * what it had). alloc is realloc or a stand-in that may fail (tests). */
LM_HIDDEN int lm__native_scratch_fit(lm_native_scratch *sc, const struct lm_native *n,
                                     void *(*alloc)(void *ctx, void *p, size_t bytes),
                                     void *ctx);
LM_HIDDEN void lm__native_scratch_free(lm_native_scratch *sc);

/* Reads series s (its family records native buckets) into h over sc's
 * rows, summed over every shard, and reduces it to what view v exposes:
 * the largest schema <= min(v.schema, recording schema) whose populated
 * bucket count fits v.max_buckets (0: no limit), or -4 (always -4 once
 * the series used its fallback rows). */
LM_HIDDEN void lm__native_read(const lm_series *s, lm_native_view v, lm_native_scratch *sc,
                               lm_native_hist *h);

/* client_golang's makeBuckets for one row: spans (offset: gap to the
 * previous span's end, the first one's start index; length) and deltas
 * (count minus the previous bucket's), gaps of one or two empty buckets
 * kept inside a span as zero-count buckets. span_off/span_len hold r->n
 * entries, deltas 3 * r->n. Returns the number of deltas. */
LM_HIDDEN size_t lm__native_spans(const lm_native_row *r, int32_t *span_off, uint32_t *span_len,
                                  size_t *nspans, int64_t *deltas);

#endif /* LM_NATIVE_H */
