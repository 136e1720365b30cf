/* Native buckets under concurrency. Writer threads (more than max_shards,
 * so the shared atomic shard is used too) observe values spread over every
 * magnitude and sign (so they race to carve the same chunks) into native
 * histograms, directly and through the HTTP fast path, while the main
 * thread renders the protobuf exposition repeatedly and decodes it: in
 * every scrape each native histogram's zero count plus its buckets equals
 * its sample_count, and no classic cumulative count exceeds it (the
 * release/acquire order between native and classic cells, native.h).
 * After the writers stop, every series equals a single-threaded replay
 * bucket for bucket. A second round does the same with an arena too
 * small for the run: what no chunk could take is counted at schema -4,
 * exactly. Runs under TSan (label "concurrency"); LM_TEST_SMALL=1 shrinks
 * it for valgrind. */
#include "core.h"
#include "lm_capture.h"
#include "lm_test.h"
#include "pb_check.h"

#include <pthread.h>
#include <stdlib.h>

#define WRITERS 4
#define SERIES 3

typedef struct shared {
    lm_registry *reg;
    lm_series *s[SERIES];
    lm_route *route;
    atomic_int finished;
    unsigned long iters;
} shared;

typedef struct writer_arg {
    shared *sh;
    int w;
} writer_arg;

/* The deterministic value of writer w's i-th observation. */
static int64_t op_value(int w, unsigned long i)
{
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)(w + 1) * 0xbf58476d1ce4e5b9ull;
    x ^= x >> 31;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 29;
    int64_t v = (int64_t)(x >> (x & 63));
    return (x & 0x100) ? -v : v;
}

static void *writer(void *p)
{
    writer_arg *a = p;
    shared *sh = a->sh;
    for (unsigned long i = 0; i < sh->iters; i++) {
        int64_t v = op_value(a->w, i);
        lm_histogram_observe(sh->s[i % SERIES], v);
        if (i % 4 == 0)
            lm_route_record(sh->route, LM_METHOD_GET, 200, v, 0, NULL, 0);
    }
    atomic_fetch_add(&sh->finished, 1);
    return NULL;
}

/* Checks one scrape: every native histogram is whole. Returns how many
 * native histograms it saw. */
static int check_scrape(const char *body, size_t len)
{
    pb_families d = pb_decode(body, len);
    CHECK(d.whole);
    int seen = 0;
    for (size_t i = 0; i < d.n; i++)
        for (size_t m = 0; m < d.f[i]->n_metric; m++) {
            const pb_histogram *h = d.f[i]->metric[m]->histogram;
            if (h == NULL || !h->has_schema)
                continue;
            seen++;
            CHECK(pb_native_total(h) == h->sample_count);
            for (size_t k = 0; k < h->n_bucket; k++)
                CHECK(h->bucket[k]->cumulative_count <= h->sample_count);
        }
    pb_families_free(&d);
    return seen;
}

static void *plain_alloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return realloc(p, n);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* One series' native histogram against the replay of its observations:
 * each value's (sign, key at the exposed schema), sorted and counted. */
static void check_exact(const lm_series *s, const int64_t *vals, size_t n, int schema)
{
    lm_native_scratch sc = {0};
    CHECK(lm__native_scratch_fit(&sc, s->nat, plain_alloc, NULL) == 0);
    lm_native_hist h;
    lm__native_read(s, (lm_native_view){true, s->nat->schema, 0}, &sc, &h);
    CHECK(h.schema == schema);
    CHECK_EQ_U64(h.count, n);
    unsigned d = (unsigned)(s->nat->schema - schema);
    int64_t *keys = malloc((n ? n : 1) * sizeof *keys);
    size_t nk = 0;
    uint64_t zero = 0;
    for (size_t i = 0; i < n; i++) {
        double x = (double)vals[i] / s->nat->unit_scale;
        if (!(x > s->nat->zero_threshold || x < -s->nat->zero_threshold)) {
            zero++;
            continue;
        }
        int64_t k = lm__native_coarser(lm__native_key(s->nat, x < 0 ? -x : x), d);
        keys[nk++] = (x < 0 ? (int64_t)1 << 40 : 0) + k; /* negatives after positives */
    }
    qsort(keys, nk, sizeof *keys, cmp_i64);
    CHECK_EQ_U64(h.zero, zero);
    size_t j = 0, bad = 0;
    for (int sign = 0; sign < 2; sign++)
        for (size_t r = 0; r < h.row[sign].n; r++) {
            int64_t want = (sign ? (int64_t)1 << 40 : 0) + h.row[sign].key[r];
            uint64_t c = 0;
            while (j < nk && keys[j] == want) {
                c++;
                j++;
            }
            bad += c != h.row[sign].count[r];
        }
    CHECK(bad == 0 && j == nk);
    free(keys);
    lm__native_scratch_free(&sc);
}

static void round_(size_t native_capacity, int expect_schema)
{
    bool small = getenv("LM_TEST_SMALL") != NULL;
    shared sh = {.iters = small ? 3000 : 40000};
    lm_registry_options ro = {.max_shards = 2, .native_capacity = native_capacity};
    sh.reg = lm_registry_new(&ro, NULL);
    lm_native_options no = {.schema = 3, .max_buckets = 0};
    static const char *const lab[] = {"k"};
    lm_family *f = lm_family_register(sh.reg,
                                      &(lm_family_options){.type = LM_HISTOGRAM, .name = "n",
                                                           .label_names = lab, .nlabels = 1,
                                                           .unit_scale = 1e9, .native = &no},
                                      NULL);
    for (int k = 0; k < SERIES; k++) {
        char v[8];
        snprintf(v, sizeof v, "s%d", k);
        sh.s[k] = lm_series_get(f, &(lm_str){v, strlen(v)}, NULL);
    }
    lm_http *http = lm_http_register(sh.reg, &(lm_http_options){.native = &no}, NULL);
    sh.route = lm_http_route(http, (lm_str){"api", 3}, NULL);
    atomic_init(&sh.finished, 0);

    pthread_t th[WRITERS];
    writer_arg args[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        args[w] = (writer_arg){&sh, w};
        pthread_create(&th[w], NULL, writer, &args[w]);
    }
    int scrapes = 0, hists = 0;
    capture c = {0};
    while (atomic_load(&sh.finished) < WRITERS || scrapes < 3) {
        capture_clear(&c);
        CHECK(lm_expo_write(sh.reg, LM_FORMAT_PROTOBUF, 0, capture_write, &c, NULL) == LM_OK);
        hists += check_scrape(c.p, c.len);
        scrapes++;
    }
    for (int w = 0; w < WRITERS; w++)
        pthread_join(th[w], NULL);
    CHECK(scrapes > 0 && hists > 0);

    /* Exact, per series, against a replay. */
    size_t per = (size_t)WRITERS * sh.iters;
    int64_t *vals = malloc(per * sizeof *vals);
    for (int k = 0; k < SERIES; k++) {
        size_t n = 0;
        for (int w = 0; w < WRITERS; w++)
            for (unsigned long i = (unsigned long)k; i < sh.iters; i += SERIES)
                vals[n++] = op_value(w, i);
        check_exact(sh.s[k], vals, n, expect_schema);
    }
    size_t n = 0;
    for (int w = 0; w < WRITERS; w++)
        for (unsigned long i = 0; i < sh.iters; i += 4) {
            int64_t v = op_value(w, i);
            vals[n++] = v < 0 ? 0 : v; /* the request path records negative as 0 */
        }
    lm_family *dur = atomic_load(&http->duration);
    check_exact(dur->series[0], vals, n, expect_schema);
    free(vals);
    capture_clear(&c);
    CHECK(lm_expo_write(sh.reg, LM_FORMAT_PROTOBUF, 0, capture_write, &c, NULL) == LM_OK);
    CHECK(check_scrape(c.p, c.len) == SERIES + 1);
    capture_free(&c);
    lm_registry_free(sh.reg);
}

int main(void)
{
    round_(0, 3);                                 /* default arena: room for all */
    round_(LM_NATIVE_ARENA_RESERVED + 40 * 8, -4); /* full mid-run: schema -4 */
    TEST_MAIN_END();
}
