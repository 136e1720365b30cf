/* Bucket changes under load (also run under TSan): recorder threads feed
 * the routes of an lm_http set with known durations while another thread
 * changes the namespace's buckets, mostly among lists already in the bound
 * union and a few times to lists that grow it, and a scraper renders the
 * exposition all along. Asserted: every exposition is valid (expo_check:
 * le increasing, buckets cumulative, +Inf == _count); no sample ever goes
 * down, neither between two scrapes nor across scrapes that did not show it
 * (a bucket of one list reappears with at least its last value); and at the
 * end every series' _count and _sum, and its cumulative count at every
 * bound of the starting union, equal exactly what was recorded, whatever
 * layout each record met. LM_TEST_SMALL=1 shrinks it for valgrind. */
#include "core.h"
#include "expo_check.h"
#include "lm_capture.h"
#include "lm_test.h"

#include <stdlib.h>
#include <time.h>

#define ROUTES 40
#define THREADS 3
#define NVALS 8
#define FLIPS 30 /* bucket changes, whatever the speed of the machine */

static lm_str S(const char *s)
{
    return (lm_str){s, strlen(s)};
}

/* Durations recorded, in ns: spread over the default buckets and the
 * lists below, some exactly on a bound. */
static const int64_t vals[NVALS] = {300000, 2000000, 5000000, 40000000,
                                    200000000, 900000000, 3000000000, 20000000000};

/* Bucket lists the reloader moves through: the defaults, a subset of them,
 * two lists that grow the union on first use, and later a third. */
static const double l_sub[] = {0.005, 0.05, 0.5, 5};
static const double l_g1[] = {0.003, 0.03, 0.3, 3};
static const double l_g2[] = {0.0015, 0.015, 0.15, 1.5, 15};
static const double l_g3[] = {0.006, 0.06};

typedef struct tally {
    uint64_t n[ROUTES][NVALS]; /* records per route and duration */
} tally;

typedef struct world {
    lm_registry *reg;
    lm_http *http;
    lm_route *routes[ROUTES];
    long m; /* records per thread */
    tally per_thread[THREADS];
    _Atomic int recorders_left;
    _Atomic int flips_done;
    _Atomic long scrapes, flips, growths;
    _Atomic int bad;
} world;

typedef struct worker {
    world *w;
    int id;
} worker;

static int route_of(long i, int t)
{
    return (int)((i * 7 + t) % ROUTES);
}

static void *recorder(void *arg)
{
    worker *k = arg;
    world *w = k->w;
    tally *t = &w->per_thread[k->id];
    /* at least m records, and on until every bucket change was made */
    for (long i = 0; i < w->m || !atomic_load_explicit(&w->flips_done, memory_order_relaxed); i++) {
        int r = route_of(i, k->id), v = (int)(i % NVALS);
        lm_route_record(w->routes[r], i % 2 ? LM_METHOD_GET : LM_METHOD_POST,
                        i % 3 ? 200 : 404, vals[v], 1, NULL, 0);
        t->n[r][v]++;
    }
    atomic_fetch_sub(&w->recorders_left, 1);
    return NULL;
}

static void *reloader(void *arg)
{
    world *w = arg;
    size_t nd;
    const double *def = lm_default_latency_bounds(&nd);
    struct {
        const double *b;
        size_t n;
    } lists[] = {{def, nd}, {l_sub, 4}, {l_g1, 4}, {l_g2, 5}, {def, nd}, {l_g1, 4}, {l_sub, 4}};
    lm_family *d = atomic_load(&w->http->duration);
    for (long k = 0; k < FLIPS; k++) {
        size_t pick = (size_t)k % (sizeof lists / sizeof *lists);
        size_t before = d->layout->n;
        lm_http_options o = {.bounds = lists[pick].b, .nbounds = lists[pick].n};
        if (k == 23) /* a growth long after the first ones */
            o = (lm_http_options){.bounds = l_g3, .nbounds = 2};
        lm_error e;
        if (lm_http_register(w->reg, &o, &e) != w->http) {
            fprintf(stderr, "flip %ld: %s\n", k, e.message);
            atomic_fetch_add(&w->bad, 1);
        }
        atomic_fetch_add(&w->flips, 1);
        if (d->layout->n != before)
            atomic_fetch_add(&w->growths, 1);
        struct timespec ts = {0, 300000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&w->flips_done, 1);
    return NULL;
}

/* Every sample value ever seen, by name and raw label text (le included):
 * open addressing, keys owned. */
typedef struct seen {
    char **key;
    double *v;
    size_t mask;
} seen;

static uint64_t key_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

typedef struct scrape_ctx {
    seen *s;
    world *w;
} scrape_ctx;

static void on_sample(void *ctx, const expo_sample *smp)
{
    scrape_ctx *c = ctx;
    if (smp->family_len < 4 || memcmp(smp->family, "http_request_duration_seconds", smp->family_len) != 0)
        return;
    char key[1024];
    int n = snprintf(key, sizeof key, "%.*s{%.*s}", (int)smp->name_len, smp->name,
                     (int)smp->labels_len, smp->labels);
    if (n < 0 || (size_t)n >= sizeof key)
        return;
    size_t i = key_hash(key, (size_t)n) & c->s->mask;
    for (; c->s->key[i] != NULL; i = (i + 1) & c->s->mask) {
        if (strcmp(c->s->key[i], key) == 0) {
            if (smp->v < c->s->v[i]) {
                if (atomic_fetch_add(&c->w->bad, 1) < 5)
                    fprintf(stderr, "%s went down from %g to %g\n", key, c->s->v[i], smp->v);
            }
            c->s->v[i] = smp->v;
            return;
        }
    }
    c->s->key[i] = strdup(key);
    c->s->v[i] = smp->v;
}

static void *scraper(void *arg)
{
    world *w = arg;
    seen s = {calloc(1 << 16, sizeof(char *)), calloc(1 << 16, sizeof(double)), (1 << 16) - 1};
    scrape_ctx ctx = {&s, w};
    long n = 0;
    while (atomic_load(&w->recorders_left) > 0 || n < 3) {
        capture c = {0};
        lm_error e;
        lm_format fmt = n % 2 ? LM_FORMAT_OPENMETRICS : LM_FORMAT_TEXT;
        if (lm_expo_write(w->reg, fmt, 0, capture_write, &c, &e) != LM_OK) {
            atomic_fetch_add(&w->bad, 1);
        } else {
            char msg[256];
            if (expo_check(c.p, c.len, fmt, on_sample, &ctx, NULL, msg, sizeof msg) != 0) {
                if (atomic_fetch_add(&w->bad, 1) < 5)
                    fprintf(stderr, "scrape %ld invalid: %s\n", n, msg);
            }
        }
        capture_free(&c);
        n++;
    }
    atomic_store(&w->scrapes, n);
    for (size_t i = 0; i <= s.mask; i++)
        free(s.key[i]);
    free(s.key);
    free(s.v);
    return NULL;
}

int main(void)
{
    static world w;
    w.m = getenv("LM_TEST_SMALL") ? 20000 : 400000;
    lm_error e = {0};
    w.reg = lm_registry_new(NULL, &e);
    w.http = lm_http_register(w.reg, NULL, &e);
    CHECK(w.reg && w.http);
    for (int r = 0; r < ROUTES; r++) {
        char name[16];
        snprintf(name, sizeof name, "r%d", r);
        w.routes[r] = lm_http_route(w.http, S(name), &e);
    }
    atomic_store(&w.recorders_left, THREADS);

    pthread_t th[THREADS + 2];
    worker wk[THREADS];
    for (int t = 0; t < THREADS; t++) {
        wk[t] = (worker){&w, t};
        pthread_create(&th[t], NULL, recorder, &wk[t]);
    }
    pthread_create(&th[THREADS], NULL, reloader, &w);
    pthread_create(&th[THREADS + 1], NULL, scraper, &w);
    for (int t = 0; t < THREADS + 2; t++)
        pthread_join(th[t], NULL);
    CHECK_EQ_U64(atomic_load(&w.bad), 0);
    CHECK(atomic_load(&w.flips) == FLIPS && atomic_load(&w.growths) == 3);
    fprintf(stderr, "%ld flips (%ld grew the union), %ld scrapes\n", atomic_load(&w.flips),
            atomic_load(&w.growths), atomic_load(&w.scrapes));

    /* Exactness, in the default buckets (all in the starting union). */
    size_t nd;
    const double *def = lm_default_latency_bounds(&nd);
    CHECK(lm_http_register(w.reg, &(lm_http_options){.bounds = def, .nbounds = nd}, &e) ==
          w.http);
    lm_family *d = atomic_load(&w.http->duration);
    uint64_t want_n[ROUTES] = {0}, want_le[ROUTES][LM_MAX_BOUNDS + 1] = {{0}};
    unsigned __int128 want_sum[ROUTES] = {0};
    for (int t = 0; t < THREADS; t++)
        for (int r = 0; r < ROUTES; r++)
            for (int v = 0; v < NVALS; v++) {
                uint64_t n = w.per_thread[t].n[r][v];
                want_n[r] += n;
                want_sum[r] += (unsigned __int128)n * (uint64_t)vals[v];
                for (size_t b = 0; b <= nd; b++)
                    if (b == nd || (double)vals[v] <= def[b] * 1e9)
                        want_le[r][b] += n;
            }
    uint64_t got_n[ROUTES] = {0}, got_le[ROUTES][LM_MAX_BOUNDS + 1] = {{0}};
    unsigned __int128 got_sum[ROUTES] = {0};
    size_t ns = atomic_load(&d->nseries);
    for (size_t i = 0; i < ns; i++) {
        const lm_series *s = d->series[i];
        int r = atoi(s->values[1].ptr + 1);
        uint64_t b[LM_MAX_BOUNDS + 1], count, lo, cum = 0;
        int64_t hi;
        lm__histogram_read(s, b, &count, &hi, &lo);
        got_n[r] += count;
        got_sum[r] += ((unsigned __int128)(uint64_t)hi << 64) | lo;
        for (size_t k = 0; k <= nd; k++)
            got_le[r][k] += (cum += b[k]);
    }
    int wrong = 0;
    for (int r = 0; r < ROUTES; r++) {
        wrong += got_n[r] != want_n[r] || got_sum[r] != want_sum[r];
        for (size_t k = 0; k <= nd; k++)
            wrong += got_le[r][k] != want_le[r][k];
    }
    CHECK_EQ_U64(wrong, 0);
    CHECK(d->layout->n == 14 + 4 + 5 + 2);
    lm_registry_free(w.reg);
    TEST_MAIN_END();
}
