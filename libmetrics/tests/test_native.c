/* Native histogram buckets: the key of every value equals a plain
 * reimplementation of client_golang's (math.Frexp + sort.SearchFloat64s
 * over the copied tables) at every schema, on every table bound, its
 * neighbours and random values; the tables nest; every int64 observation
 * (zero, negative, 1, INT64_MIN/MAX, random) is counted exactly in the
 * bucket that reference gives; the exposed schema is the largest that fits
 * the bucket limit; a full arena falls back to schema -4 and stays exact;
 * spans and deltas follow client_golang's makeBuckets; what
 * lm_family_replace may and may not change. */
#include "core.h"
#include "lm_test.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* client_golang's key, written as plainly as its Go source. */
static int32_t ref_key(int schema, double v)
{
    int exp;
    double frac = frexp(fabs(v), &exp);
    if (schema > 0) {
        const double *b = lm__native_bounds(schema);
        int n = 1 << schema, i = 0;
        while (i < n && b[i] < frac)
            i++;
        return i + (exp - 1) * n;
    }
    int key = exp;
    if (frac == 0.5)
        key--;
    int d = -schema;
    int off = (1 << d) - 1;
    int k = key + off;
    return k >= 0 ? k >> d : -((-k + (1 << d) - 1) >> d); /* floor division */
}

static struct lm_native *make_native(lm_registry *reg, int schema, double scale)
{
    struct lm_native *n = lm__native_new(reg, schema, LM_NATIVE_DEFAULT_ZERO_THRESHOLD, scale);
    CHECK(n != NULL);
    return n;
}

static void check_key(const struct lm_native *n, double x, int *bad)
{
    if (!(x > 0) || !isfinite(x) || x < DBL_MIN)
        return;
    int32_t got = lm__native_key(n, x), want = ref_key(n->schema, x);
    if (got != want && (*bad)++ < 5)
        fprintf(stderr, "schema %d: key(%.17g) = %d, client_golang's %d\n", n->schema, x, got,
                want);
}

static void test_keys(lm_registry *reg)
{
    for (int s = LM_NATIVE_SCHEMA_MIN; s <= LM_NATIVE_SCHEMA_MAX; s++) {
        struct lm_native *n = make_native(reg, s, 1e9);
        int bad = 0;
        /* Every bound of every schema's table (finer tables hold the
         * coarser bounds too) times powers of two, and its neighbours. */
        const double *b8 = lm__native_bounds(8);
        for (int j = 0; j < 256; j++)
            for (int e = -40; e <= 40; e += 3) {
                double x = ldexp(b8[j], e);
                check_key(n, x, &bad);
                check_key(n, nextafter(x, 0), &bad);
                check_key(n, nextafter(x, INFINITY), &bad);
            }
        for (int e = -1021; e <= 1023; e++)
            check_key(n, ldexp(1, e), &bad);
        check_key(n, DBL_MAX, &bad);
        check_key(n, DBL_MIN, &bad);
        for (int i = 0; i < 200000; i++) {
            uint64_t r = next_rand();
            int64_t v = (int64_t)(r >> (r & 63)); /* every magnitude */
            check_key(n, fabs((double)v / 1e9), &bad);
            double x;
            uint64_t bits = next_rand() & 0x7fffffffffffffffull;
            memcpy(&x, &bits, sizeof x);
            check_key(n, x, &bad);
        }
        CHECK(bad == 0);
        lm__native_free(n);
    }
}

/* Schema s's key is the schema-8 key halved 8 - s times (rounding up),
 * which is what makes exposing a coarser schema exact. */
static void test_nesting(lm_registry *reg)
{
    struct lm_native *n8 = make_native(reg, 8, 1);
    int bad = 0;
    for (int s = LM_NATIVE_SCHEMA_MIN; s < 8; s++) {
        struct lm_native *n = make_native(reg, s, 1);
        for (int i = 0; i < 50000; i++) {
            double x = fabs((double)(int64_t)(next_rand() >> (next_rand() & 63)) / 1e9);
            if (x < DBL_MIN)
                continue;
            if (lm__native_key(n, x) != lm__native_coarser(lm__native_key(n8, x), 8 - s))
                bad++;
        }
        lm__native_free(n);
    }
    CHECK(bad == 0);
    lm__native_free(n8);
    CHECK(lm__native_coarser(-3, 1) == -1 && lm__native_coarser(-4, 1) == -2);
    CHECK(lm__native_coarser(3, 1) == 2 && lm__native_coarser(0, 5) == 0);
    CHECK(lm__native_coarser(-1, 4) == 0 && lm__native_coarser(17, 4) == 2);
}

/* The record path's integer lookup (lm__native_rel, zmax) equals the
 * float definition at every step it tabulates, one either side of it, and
 * at random magnitudes, for every schema and several unit scales and zero
 * thresholds. */
static void test_lookup(lm_registry *reg)
{
    static const double scales[] = {1e9, 1, 1e3, 3, 1e-3, 1e6 / 7, 0x1p40};
    static const double zts[] = {LM_NATIVE_DEFAULT_ZERO_THRESHOLD, 0, 1e-6, 0.37};
    int bad = 0, checked = 0;
    for (int s = LM_NATIVE_SCHEMA_MIN; s <= LM_NATIVE_SCHEMA_MAX; s++)
        for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
            double zt = zts[(size_t)s & 3];
            struct lm_native *n = lm__native_new(reg, s, zt, scales[si]);
            CHECK(n != NULL);
            if (n == NULL)
                continue;
            for (int p = 0; p < 64; p++)
                for (int j = 0; j < n->stride; j++) {
                    uint64_t t = n->thr[p * n->stride + j];
                    for (int d = -1; d <= 1; d++) {
                        uint64_t a = t + (uint64_t)(int64_t)d;
                        if (a == 0 || a > (uint64_t)1 << 63)
                            continue;
                        double x = (double)a / scales[si];
                        bool zero = !(x > zt);
                        checked++;
                        if (zero != (a <= n->zmax) ||
                            (!zero && (int32_t)lm__native_rel(n, a) + n->kmin != ref_key(s, x))) {
                            if (bad++ < 5)
                                fprintf(stderr, "schema %d scale %g: |v| %llu\n", s, scales[si],
                                        (unsigned long long)a);
                        }
                    }
                }
            for (int i = 0; i < 20000; i++) {
                uint64_t a = next_rand() >> (1 + next_rand() % 63); /* |v| <= 2^63 */
                if (a == 0)
                    continue;
                double x = (double)a / scales[si];
                checked++;
                if (x > zt && (int32_t)lm__native_rel(n, a) + n->kmin != ref_key(s, x))
                    bad++;
            }
            lm__native_free(n);
        }
    CHECK(bad == 0);
    CHECK(checked > 100000);
}

/* ---------------------------------------------------------- reference */

#define MAXREF 40000
typedef struct ref_hist {
    int32_t key[2][MAXREF];
    uint64_t count[2][MAXREF];
    size_t n[2];
    uint64_t zero;
} ref_hist;

static void ref_add(ref_hist *r, int schema, double zt, double scale, int64_t v)
{
    double x = (double)v / scale;
    if (!(x > zt || x < -zt)) {
        r->zero++;
        return;
    }
    int sign = x < 0;
    int32_t k = ref_key(schema, x);
    size_t i = 0;
    while (i < r->n[sign] && r->key[sign][i] < k)
        i++;
    if (i < r->n[sign] && r->key[sign][i] == k) {
        r->count[sign][i]++;
        return;
    }
    memmove(&r->key[sign][i + 1], &r->key[sign][i], (r->n[sign] - i) * sizeof(int32_t));
    memmove(&r->count[sign][i + 1], &r->count[sign][i], (r->n[sign] - i) * sizeof(uint64_t));
    r->key[sign][i] = k;
    r->count[sign][i] = 1;
    r->n[sign]++;
}

/* The reference reduced d steps, and its bucket count. */
static void ref_coarsen(ref_hist *r, unsigned d)
{
    for (int sign = 0; sign < 2; sign++) {
        size_t m = 0;
        for (size_t i = 0; i < r->n[sign]; i++) {
            int32_t k = lm__native_coarser(r->key[sign][i], d);
            if (m > 0 && r->key[sign][m - 1] == k) {
                r->count[sign][m - 1] += r->count[sign][i];
            } else {
                r->key[sign][m] = k;
                r->count[sign][m++] = r->count[sign][i];
            }
        }
        r->n[sign] = m;
    }
}

static bool same(const ref_hist *r, const lm_native_hist *h)
{
    if (r->zero != h->zero)
        return false;
    uint64_t total = r->zero;
    for (int sign = 0; sign < 2; sign++) {
        if (r->n[sign] != h->row[sign].n)
            return false;
        for (size_t i = 0; i < r->n[sign]; i++) {
            if (r->key[sign][i] != h->row[sign].key[i] || r->count[sign][i] != h->row[sign].count[i])
                return false;
            total += r->count[sign][i];
        }
    }
    return total == h->count;
}

static void *plain_alloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return realloc(p, n);
}

static lm_native_hist read_series(lm_series *s, lm_native_view v, lm_native_scratch *sc)
{
    lm_native_hist h;
    CHECK(lm__native_scratch_fit(sc, s->nat, plain_alloc, NULL) == 0);
    lm__native_read(s, v, sc, &h);
    return h;
}

static lm_series *native_series(lm_registry *reg, const char *name, int schema, uint32_t max,
                                double zt)
{
    lm_native_options no = {.schema = schema, .max_buckets = max, .zero_threshold = zt};
    lm_family_options o = {.type = LM_HISTOGRAM, .name = name, .unit_scale = 1e9, .native = &no};
    lm_error err;
    lm_family *f = lm_family_register(reg, &o, &err);
    CHECK(f != NULL);
    if (f == NULL) {
        fprintf(stderr, "%s\n", err.message);
        return NULL;
    }
    return lm_series_get(f, NULL, &err);
}

static int64_t random_value(void)
{
    uint64_t r = next_rand();
    switch (r % 16) {
    case 0:
        return 0;
    case 1:
        return 1;
    case 2:
        return -1;
    case 3:
        return INT64_MAX;
    case 4:
        return INT64_MIN;
    case 5: /* latency-like: 100 us .. 10 s */
    case 6:
    case 7:
    case 8:
        return 100000 + (int64_t)(next_rand() % 10000000000ull);
    default: { /* any magnitude, either sign */
        int64_t v = (int64_t)(next_rand() >> (next_rand() & 63));
        return (r & 32) ? -v : v;
    }
    }
}

static ref_hist ref;

static void test_exact(void)
{
    for (int schema = LM_NATIVE_SCHEMA_MIN; schema <= LM_NATIVE_SCHEMA_MAX; schema++) {
        lm_registry *reg = lm_registry_new(NULL, NULL);
        double zts[3] = {0, -1, 1e-6};
        for (int z = 0; z < 3; z++) {
            char name[32];
            snprintf(name, sizeof name, "h_%d", z);
            lm_series *s = native_series(reg, name, schema, 0, zts[z]);
            if (s == NULL)
                continue;
            memset(&ref, 0, sizeof ref);
            double zt = s->nat->zero_threshold;
            for (int i = 0; i < 3000; i++) {
                int64_t v = random_value();
                lm_histogram_observe(s, v);
                ref_add(&ref, schema, zt, 1e9, v);
            }
            lm_native_scratch sc = {0};
            lm_native_hist h = read_series(s, (lm_native_view){true, schema, 0}, &sc);
            CHECK(h.schema == schema);
            CHECK(h.zero_threshold == zt);
            CHECK(same(&ref, &h));
            CHECK_EQ_U64(h.count, lm_series_count(s));
            /* Every coarser view is the reference halved. */
            for (int v = schema - 1; v >= LM_NATIVE_SCHEMA_MIN; v--) {
                h = read_series(s, (lm_native_view){true, v, 0}, &sc);
                ref_coarsen(&ref, 1);
                CHECK(h.schema == v);
                CHECK(same(&ref, &h));
            }
            lm__native_scratch_free(&sc);
        }
        lm_registry_free(reg);
    }
}

/* The exposed schema is the largest whose populated buckets fit. */
static void test_limit(void)
{
    lm_registry *reg = lm_registry_new(NULL, NULL);
    lm_series *s = native_series(reg, "lim", 5, 0, 0);
    memset(&ref, 0, sizeof ref);
    for (int i = 0; i < 2000; i++) {
        int64_t v = 1000 + (int64_t)(next_rand() % 100000000000ull);
        lm_histogram_observe(s, v);
        ref_add(&ref, 5, s->nat->zero_threshold, 1e9, v);
    }
    lm_native_scratch sc = {0};
    size_t full = ref.n[0] + ref.n[1];
    uint32_t limits[] = {1, 2, 5, 10, 20, 40, 80, 160, (uint32_t)full, (uint32_t)full - 1};
    for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
        uint32_t lim = limits[li];
        lm_native_hist h = read_series(s, (lm_native_view){true, 5, lim}, &sc);
        /* Reference: halve until it fits, or down to -4. */
        ref_hist *r = malloc(sizeof *r);
        memcpy(r, &ref, sizeof *r);
        int sigma = 5;
        while (sigma > LM_NATIVE_SCHEMA_MIN && r->n[0] + r->n[1] > lim) {
            ref_coarsen(r, 1);
            sigma--;
        }
        CHECK(h.schema == sigma);
        CHECK(same(r, &h));
        CHECK(h.row[0].n + h.row[1].n <= lim || sigma == LM_NATIVE_SCHEMA_MIN);
        free(r);
    }
    lm__native_scratch_free(&sc);
    lm_registry_free(reg);
}

/* A full arena: what no chunk can take counts at schema -4, exactly. */
static void test_fallback(void)
{
    lm_registry_options ro = {.native_capacity = LM_NATIVE_ARENA_RESERVED + 3 * 8};
    lm_registry *reg = lm_registry_new(&ro, NULL);
    lm_series *s = native_series(reg, "fb", 3, 160, 0);
    lm_series *other = native_series(reg, "fb2", 3, 160, 0);
    memset(&ref, 0, sizeof ref);
    lm_native_scratch sc = {0};
    /* Two chunks (8 keys each = one power of two at schema 3) fit. */
    lm_histogram_observe(s, 1000000);
    lm_histogram_observe(s, 3000000);
    ref_add(&ref, 3, s->nat->zero_threshold, 1e9, 1000000);
    ref_add(&ref, 3, s->nat->zero_threshold, 1e9, 3000000);
    lm_native_hist h = read_series(s, (lm_native_view){true, 3, 160}, &sc);
    CHECK(h.schema == 3 && same(&ref, &h));
    for (int i = 0; i < 500; i++) {
        int64_t v = random_value();
        lm_histogram_observe(s, v);
        ref_add(&ref, 3, s->nat->zero_threshold, 1e9, v);
    }
    lm_histogram_observe(other, 5); /* the arena is full for every series */
    h = read_series(s, (lm_native_view){true, 3, 160}, &sc);
    CHECK(h.schema == LM_NATIVE_SCHEMA_MIN);
    ref_coarsen(&ref, 7);
    CHECK(same(&ref, &h));
    CHECK_EQ_U64(h.count, 502);
    h = read_series(other, (lm_native_view){true, 3, 160}, &sc);
    CHECK(h.schema == LM_NATIVE_SCHEMA_MIN && h.count == 1 && h.row[0].n == 1);
    lm__native_scratch_free(&sc);
    lm_registry_free(reg);
}

/* client_golang's makeBuckets: a new span after a gap of more than two
 * empty buckets, zero-count buckets inside a span otherwise. */
static void test_spans(void)
{
    int32_t key[] = {-7, -6, -4, -1, 0, 5, 6};
    uint64_t cnt[] = {3, 1, 4, 1, 5, 9, 2};
    lm_native_row r = {key, cnt, 7};
    int32_t off[7];
    uint32_t len[7];
    int64_t d[21];
    size_t ns;
    size_t nd = lm__native_spans(&r, off, len, &ns, d);
    /* -7 -6 (-5) -4 (-3 -2) -1 0 | gap 4 | 5 6 */
    CHECK(ns == 2);
    CHECK(off[0] == -7 && len[0] == 8);
    CHECK(off[1] == 4 && len[1] == 2);
    int64_t want[] = {3, -2, -1, 4, -4, 0, 1, 4, 4, -7};
    CHECK(nd == 10);
    for (size_t i = 0; i < 10 && i < nd; i++)
        CHECK(d[i] == want[i]);
    r.n = 0;
    CHECK(lm__native_spans(&r, off, len, &ns, d) == 0 && ns == 0);
}

/* What a replacement may change in place, and what it must refuse. */
static void test_replace(void)
{
    lm_registry *reg = lm_registry_new(NULL, NULL);
    lm_error err;
    lm_native_options n3 = {.schema = 3, .max_buckets = 160};
    lm_family_options o = {.type = LM_HISTOGRAM, .name = "r", .unit_scale = 1e9, .native = &n3};
    lm_family *f = lm_family_register(reg, &o, &err);
    lm_series *s = lm_series_get(f, NULL, &err);
    for (int i = 1; i <= 100; i++)
        lm_histogram_observe(s, i * 7000000);
    CHECK(lm_family_register(reg, &o, &err) == f);

    lm_native_options n2 = {.schema = 2, .max_buckets = 20};
    o.native = &n2;
    CHECK(lm_family_register(reg, &o, &err) == NULL && err.code == LM_ERR_EXISTS);
    CHECK(lm_family_replace(reg, &o, &err) == f);
    lm_native_view v = lm__native_view_unpack(atomic_load(&f->native_view));
    CHECK(v.on && v.schema == 2 && v.max_buckets == 20);

    lm_native_options n4 = {.schema = 4, .max_buckets = 160};
    o.native = &n4;
    CHECK(lm_family_replace(reg, &o, &err) == NULL && err.code == LM_ERR_EXISTS);
    CHECK(strstr(err.message, "schema 3, not finer") != NULL);
    lm_native_options z = {.schema = 3, .zero_threshold = 1e-3};
    o.native = &z;
    CHECK(lm_family_replace(reg, &o, &err) == NULL && err.code == LM_ERR_EXISTS);

    o.native = NULL; /* hidden, still recorded */
    CHECK(lm_family_replace(reg, &o, &err) == f);
    v = lm__native_view_unpack(atomic_load(&f->native_view));
    CHECK(!v.on);
    lm_histogram_observe(s, 5);
    o.native = &n3;
    CHECK(lm_family_replace(reg, &o, &err) == f);
    lm_native_scratch sc = {0};
    lm_native_hist h = read_series(s, lm__native_view_unpack(atomic_load(&f->native_view)), &sc);
    CHECK_EQ_U64(h.count, 101);
    lm__native_scratch_free(&sc);

    /* A histogram created without native buckets cannot get them. */
    lm_family_options c = {.type = LM_HISTOGRAM, .name = "classic", .unit_scale = 1e9};
    lm_family *fc = lm_family_register(reg, &c, &err);
    CHECK(fc != NULL);
    c.native = &n3;
    CHECK(lm_family_replace(reg, &c, &err) == NULL && err.code == LM_ERR_EXISTS);
    CHECK(strstr(err.message, "created without native buckets") != NULL);

    /* Invalid options. */
    lm_native_options bad = {.schema = 9};
    c.name = "bad";
    c.native = &bad;
    CHECK(lm_family_register(reg, &c, &err) == NULL && err.code == LM_ERR_INVALID);
    bad = (lm_native_options){.schema = -5};
    CHECK(lm_family_register(reg, &c, &err) == NULL && err.code == LM_ERR_INVALID);
    bad = (lm_native_options){.schema = 0, .zero_threshold = NAN};
    CHECK(lm_family_register(reg, &c, &err) == NULL && err.code == LM_ERR_INVALID);
    bad = (lm_native_options){.schema = 0};
    c.unit_scale = 1e300;
    CHECK(lm_family_register(reg, &c, &err) == NULL && err.code == LM_ERR_INVALID);
    lm_family_options g = {.type = LM_GAUGE, .name = "g", .native = &n3};
    CHECK(lm_family_register(reg, &g, &err) == NULL && err.code == LM_ERR_INVALID);
    lm_registry_free(reg);
}

/* The request fast path feeds the native buckets too, across a union
 * growth of the classic bounds. */
static void test_http(void)
{
    lm_registry *reg = lm_registry_new(NULL, NULL);
    lm_error err;
    lm_native_options n = {.schema = 3, .max_buckets = 160};
    lm_http_options ho = {.native = &n};
    lm_http *h = lm_http_register(reg, &ho, &err);
    CHECK(h != NULL);
    lm_route *r = lm_http_route(h, (lm_str){"api", 3}, &err);
    for (int i = 0; i < 50; i++)
        lm_route_record(r, LM_METHOD_GET, 200, 1000000 * (i + 1), 10, NULL, 0);
    double b[] = {0.003, 0.1};
    ho.bounds = b;
    ho.nbounds = 2;
    CHECK(lm_http_register(reg, &ho, &err) == h);
    for (int i = 0; i < 50; i++)
        lm_route_record(r, LM_METHOD_GET, 200, -5, 10, NULL, 0); /* negative: 0 */
    lm_family *dur = atomic_load(&h->duration);
    lm_series *s = dur->series[0];
    lm_native_scratch sc = {0};
    lm_native_hist nh = read_series(s, lm__native_view_unpack(atomic_load(&dur->native_view)), &sc);
    CHECK_EQ_U64(nh.count, 100);
    CHECK_EQ_U64(nh.zero, 50);
    CHECK_EQ_U64(lm_series_count(s), 100);
    /* A series created after the growth keeps its zero cell apart. */
    lm_route_record(r, LM_METHOD_POST, 201, 0, 0, NULL, 0);
    lm_series *s2 = dur->series[1];
    nh = read_series(s2, lm__native_view_unpack(atomic_load(&dur->native_view)), &sc);
    CHECK_EQ_U64(nh.count, 1);
    CHECK_EQ_U64(nh.zero, 1);
    nh = read_series(s, lm__native_view_unpack(atomic_load(&dur->native_view)), &sc);
    CHECK_EQ_U64(nh.zero, 50);
    /* Turning native off for the set hides it; a registration without
     * native for a set made with it hides it too. */
    ho.native = NULL;
    CHECK(lm_http_register(reg, &ho, &err) == h);
    CHECK(!lm__native_view_unpack(atomic_load(&dur->native_view)).on);
    lm__native_scratch_free(&sc);
    lm_registry_free(reg);
}

int main(void)
{
    lm_registry *reg = lm_registry_new(NULL, NULL);
    test_keys(reg);
    test_nesting(reg);
    test_lookup(reg);
    lm_registry_free(reg);
    test_exact();
    test_limit();
    test_fallback();
    test_spans();
    test_replace();
    test_http();
    TEST_MAIN_END();
}
