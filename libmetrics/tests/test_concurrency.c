/* Exactness under threads (also run under TSan): N threads x M updates on
 * one shared series and on per-thread series give exactly N*M for counters,
 * histogram counts and sums, route records and gauges; the same with more
 * threads than exclusive shards (the atomic shared shard takes the rest);
 * threads that exit hand their shard, values included, to the next ones;
 * concurrent first lookups resolve to one series / one route / one slot;
 * and a scraper running alongside never sees _count differ from the sum of
 * the buckets nor any counter or bucket go down. */
#include "core.h"
#include "lm_test.h"

#include <stdlib.h>

static lm_str S(const char *s)
{
    return (lm_str){s, strlen(s)};
}

static int M; /* updates per thread; set in main (LM_TEST_SMALL shrinks it) */

typedef struct world {
    lm_registry *reg;
    lm_series *counter, *hist, *gauge;
    lm_family *cfam, *hfam;
    lm_route *route;
    lm_http *http;
    pthread_barrier_t start;
    _Atomic int done;
    _Atomic int scraper_bad;
    _Atomic long scrapes;
} world;

typedef struct worker {
    world *w;
    int id;
    lm_series *own_counter, *own_hist; /* different-series case */
    lm_series *resolved;               /* concurrent lookup result */
    lm_route *resolved_route;
} worker;

/* Observation j of any thread: spread over all buckets, some negative. */
static int64_t obs(int j)
{
    return (int64_t)(j % 97) * 1000003 - 5000000;
}

static __int128 obs_sum(int m)
{
    __int128 s = 0;
    for (int j = 0; j < m; j++)
        s += obs(j);
    return s;
}

static __int128 hist_sum(const lm_series *s, uint64_t *count)
{
    uint64_t b[LM_MAX_BOUNDS + 1], lo;
    int64_t hi;
    lm__histogram_read(s, b, count, &hi, &lo);
    return (__int128)(((unsigned __int128)(uint64_t)hi << 64) | lo);
}

static void *writer(void *arg)
{
    worker *k = arg;
    world *w = k->w;
    /* Claim a shard before the barrier, so all threads hold one at once:
     * with fewer shards than threads, the rest must share. */
    lm_counter_add(k->own_counter, 0);
    pthread_barrier_wait(&w->start);
    lm_series *const biz[] = {w->counter};
    for (int j = 0; j < M; j++) {
        lm_counter_add(w->counter, 1);
        lm_histogram_observe(w->hist, obs(j));
        lm_gauge_add(w->gauge, 1);
        lm_counter_add(k->own_counter, 2);
        lm_histogram_observe(k->own_hist, obs(j));
        lm_route_record(w->route, (lm_method)(j % 3), 200 + (j % 4), obs(j) < 0 ? 0 : obs(j),
                        (uint64_t)j, biz, 1);
    }
    return NULL;
}

/* Reads everything repeatedly while writers run. */
static void *scraper(void *arg)
{
    world *w = arg;
    lm_family *hf = w->hfam;
    size_t nb = lm__family_proj(hf)->n;
    uint64_t last_counter = 0, last_count = 0, last_b[LM_MAX_BOUNDS + 1] = {0};
    long n = 0;
    while (!atomic_load_explicit(&w->done, memory_order_acquire) || n < 3) {
        uint64_t c = lm_series_count(w->counter);
        if (c < last_counter)
            atomic_fetch_add(&w->scraper_bad, 1);
        last_counter = c;

        uint64_t b[LM_MAX_BOUNDS + 1], count, lo;
        int64_t hi;
        lm__histogram_read(w->hist, b, &count, &hi, &lo);
        uint64_t s = 0;
        for (size_t i = 0; i <= nb; i++) {
            s += b[i];
            if (b[i] < last_b[i])
                atomic_fetch_add(&w->scraper_bad, 1);
            last_b[i] = b[i];
        }
        if (s != count || count < last_count)
            atomic_fetch_add(&w->scraper_bad, 1);
        last_count = count;

        /* every family's series, as an exposition would walk them */
        size_t nf = atomic_load_explicit(&w->reg->nfamilies, memory_order_acquire);
        for (size_t f = 0; f < nf; f++) {
            lm_family *fam = w->reg->families[f];
            size_t ns = atomic_load_explicit(&fam->nseries, memory_order_acquire);
            for (size_t i = 0; i < ns; i++)
                (void)lm_series_count(fam->series[i]);
        }
        n++;
    }
    atomic_store(&w->scrapes, n);
    return NULL;
}

static void world_init(world *w, const lm_registry_options *ro, int nthreads, worker *ks)
{
    memset(w, 0, sizeof *w);
    lm_error e = {0};
    w->reg = lm_registry_new(ro, &e);
    CHECK(w->reg != NULL);
    w->cfam = lm_family_register(
        w->reg, &(lm_family_options){.type = LM_COUNTER, .name = "c_total",
                                     .label_names = (const char *const[]){"t"}, .nlabels = 1},
        &e);
    w->hfam = lm_family_register(
        w->reg, &(lm_family_options){.type = LM_HISTOGRAM, .name = "h", .unit_scale = 1e9,
                                     .label_names = (const char *const[]){"t"}, .nlabels = 1},
        &e);
    lm_family *g = lm_family_register(w->reg, &(lm_family_options){.type = LM_GAUGE, .name = "g"},
                                      &e);
    w->counter = lm_series_get(w->cfam, (lm_str[]){S("shared")}, &e);
    w->hist = lm_series_get(w->hfam, (lm_str[]){S("shared")}, &e);
    w->gauge = lm_series_get(g, NULL, &e);
    w->http = lm_http_register(w->reg, NULL, &e);
    w->route = lm_http_route(w->http, S("/r"), &e);
    CHECK(w->counter && w->hist && w->gauge && w->route);
    for (int i = 0; i < nthreads; i++) {
        char v[16];
        snprintf(v, sizeof v, "t%d", i);
        ks[i] = (worker){.w = w, .id = i};
        ks[i].own_counter = lm_series_get(w->cfam, (lm_str[]){S(v)}, &e);
        ks[i].own_hist = lm_series_get(w->hfam, (lm_str[]){S(v)}, &e);
    }
    pthread_barrier_init(&w->start, NULL, (unsigned)nthreads);
}

static void check_world(world *w, worker *ks, int nthreads, uint64_t rounds)
{
    uint64_t nm = (uint64_t)nthreads * (uint64_t)M * rounds;
    /* same series: every update counted once (plus one per record as a
     * business counter) */
    CHECK_EQ_U64(lm_series_count(w->counter), 2 * nm);
    uint64_t count;
    __int128 sum = hist_sum(w->hist, &count);
    CHECK_EQ_U64(count, nm);
    CHECK(sum == obs_sum(M) * (__int128)nthreads * (__int128)rounds);
    CHECK_EQ_U64(lm_series_count(w->gauge), nm);
    /* different series: each thread's own */
    for (int i = 0; i < nthreads; i++) {
        CHECK_EQ_U64(lm_series_count(ks[i].own_counter), 2 * (uint64_t)M * rounds);
        __int128 s = hist_sum(ks[i].own_hist, &count);
        CHECK_EQ_U64(count, (uint64_t)M * rounds);
        CHECK(s == obs_sum(M) * (__int128)rounds);
    }
    /* route records: requests, bytes, histogram counts over all slots */
    uint64_t req = 0, bytes = 0, dcount = 0;
    __int128 dsum = 0;
    lm_family *d = atomic_load(&w->http->duration);
    for (size_t i = 0; i < atomic_load(&w->http->requests->nseries); i++)
        req += lm_series_count(w->http->requests->series[i]);
    for (size_t i = 0; i < atomic_load(&w->http->bytes->nseries); i++)
        bytes += lm_series_count(w->http->bytes->series[i]);
    for (size_t i = 0; i < atomic_load(&d->nseries); i++) {
        uint64_t c;
        dsum += hist_sum(d->series[i], &c);
        dcount += c;
    }
    CHECK_EQ_U64(atomic_load(&w->http->requests->nseries), 12); /* 3 methods x 4 statuses */
    CHECK_EQ_U64(req, nm);
    CHECK_EQ_U64(dcount, nm);
    uint64_t bytes_per_thread = (uint64_t)M * (uint64_t)(M - 1) / 2;
    CHECK_EQ_U64(bytes, bytes_per_thread * (uint64_t)nthreads * rounds);
    __int128 pos = 0;
    for (int j = 0; j < M; j++)
        pos += obs(j) < 0 ? 0 : obs(j);
    CHECK(dsum == pos * (__int128)nthreads * (__int128)rounds);
}

static void run_threads(world *w, worker *ks, int nthreads, bool with_scraper)
{
    pthread_t t[64], sc;
    if (with_scraper)
        pthread_create(&sc, NULL, scraper, w);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, writer, &ks[i]);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    if (with_scraper) {
        atomic_store_explicit(&w->done, 1, memory_order_release);
        pthread_join(sc, NULL);
    }
}

static void test_exact(int nthreads, unsigned max_shards)
{
    world w;
    worker ks[64];
    lm_registry_options ro = {.max_shards = max_shards};
    world_init(&w, &ro, nthreads, ks);
    run_threads(&w, ks, nthreads, true);
    check_world(&w, ks, nthreads, 1);
    CHECK_EQ_U64(atomic_load(&w.scraper_bad), 0);
    CHECK(atomic_load(&w.scrapes) >= 3);
    unsigned used = atomic_load(&w.reg->shards_used);
    CHECK(used <= (max_shards ? max_shards : 64));
    CHECK(used <= (unsigned)nthreads);
    if (max_shards && (unsigned)nthreads > max_shards) {
        /* the extra threads really went through the shared shard */
        CHECK(atomic_load(&w.reg->shared.cells[w.counter->slot]) > 0);
    }
    pthread_barrier_destroy(&w.start);
    lm_registry_free(w.reg);
}

/* Rounds of short-lived threads: shards are released at exit and reused,
 * and the values they held keep counting. */
static void test_churn(void)
{
    enum { K = 3, ROUNDS = 5 };
    world w;
    worker ks[K];
    world_init(&w, NULL, K, ks);
    for (int r = 0; r < ROUNDS; r++) {
        run_threads(&w, ks, K, r == 0);
        for (int i = 0; i < K; i++)
            CHECK(!atomic_load(&w.reg->shards[i].owned)); /* released by the destructor */
    }
    CHECK(atomic_load(&w.reg->shards_used) <= K); /* reused, not new ones per round */
    CHECK_EQ_U64(atomic_load(&w.reg->shared.cells[w.counter->slot]), 0);
    check_world(&w, ks, K, ROUNDS);
    CHECK_EQ_U64(atomic_load(&w.scraper_bad), 0);
    pthread_barrier_destroy(&w.start);
    lm_registry_free(w.reg);
}

/* Many threads resolving the same new label sets, routes and first
 * (method, status) slots at once. */
static void *resolver(void *arg)
{
    worker *k = arg;
    world *w = k->w;
    pthread_barrier_wait(&w->start);
    lm_error e;
    k->resolved = lm_series_get(w->cfam, (lm_str[]){S("same-new-label")}, &e);
    k->resolved_route = lm_http_route(w->http, S("/fresh"), &e);
    for (int j = 0; j < 100; j++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", j);
        lm_counter_add(lm_series_get(w->cfam, (lm_str[]){S(v)}, &e), 1);
        lm_route_record(k->resolved_route, LM_METHOD_GET, 200 + j % 50, 1, 1, NULL, 0);
    }
    return NULL;
}

static void test_resolve_race(void)
{
    enum { N = 6 };
    world w;
    worker ks[N];
    world_init(&w, NULL, N, ks);
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        pthread_create(&t[i], NULL, resolver, &ks[i]);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 1; i < N; i++) {
        CHECK(ks[i].resolved == ks[0].resolved);
        CHECK(ks[i].resolved_route == ks[0].resolved_route);
    }
    CHECK_EQ_U64(atomic_load(&w.http->nroutes), 2);
    CHECK_EQ_U64(atomic_load(&w.http->requests->nseries), 50);
    uint64_t req = 0;
    for (size_t i = 0; i < 50; i++)
        req += lm_series_count(w.http->requests->series[i]);
    CHECK_EQ_U64(req, N * 100);
    /* 2 + N own + 1 + 100 distinct counter series */
    CHECK_EQ_U64(atomic_load(&w.cfam->nseries), 1 + N + 1 + 100);
    pthread_barrier_destroy(&w.start);
    lm_registry_free(w.reg);
}

/* A thread still alive (with its shard in TLS) when the registry is freed,
 * and a new registry that may reuse the same key: the stale TLS value must
 * not be used, and the thread's exit must not touch freed memory. */
typedef struct {
    lm_registry *reg;
    lm_series *s;
    pthread_barrier_t b;
} stale_ctx;

static void *stale_thread(void *arg)
{
    stale_ctx *c = arg;
    lm_counter_add(c->s, 1);
    pthread_barrier_wait(&c->b); /* main frees the registry, makes a new one */
    pthread_barrier_wait(&c->b);
    lm_counter_add(c->s, 5);
    return NULL;
}

static void test_stale_key(void)
{
    stale_ctx c;
    pthread_barrier_init(&c.b, NULL, 2);
    c.reg = lm_registry_new(NULL, NULL);
    lm_family *f = lm_family_register(c.reg, &(lm_family_options){.type = LM_COUNTER,
                                                                  .name = "a_total"}, NULL);
    c.s = lm_series_get(f, NULL, NULL);
    pthread_t t;
    pthread_create(&t, NULL, stale_thread, &c);
    pthread_barrier_wait(&c.b);
    CHECK_EQ_U64(lm_series_count(c.s), 1);
    lm_registry_free(c.reg);
    c.reg = lm_registry_new(NULL, NULL);
    f = lm_family_register(c.reg, &(lm_family_options){.type = LM_COUNTER, .name = "a_total"},
                           NULL);
    c.s = lm_series_get(f, NULL, NULL);
    pthread_barrier_wait(&c.b);
    pthread_join(t, NULL);
    CHECK_EQ_U64(lm_series_count(c.s), 5);
    CHECK_EQ_U64(atomic_load(&c.reg->shards_used), 1);
    lm_registry_free(c.reg);
    pthread_barrier_destroy(&c.b);
}

int main(void)
{
    M = getenv("LM_TEST_SMALL") ? 2000 : 200000;
    test_exact(4, 0);  /* 4 threads, exclusive shards */
    test_exact(8, 2);  /* 8 threads, 2 exclusive shards, the rest shared */
    test_exact(3, 1);
    test_churn();
    test_resolve_race();
    test_stale_key();
    TEST_MAIN_END();
}
