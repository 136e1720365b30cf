/* Scrapes while writers record. Writer threads (more than max_shards, so
 * the shared atomic shard is used too) observe histograms, add to counters,
 * create new series mid-run and feed the HTTP fast path, while the main
 * thread renders OpenMetrics repeatedly with lm_expo_write and parses each
 * body with expo_check: every histogram series must have +Inf == _count and
 * cumulative buckets in every scrape, and no counter, bucket or count may
 * go down between scrapes. After the writers stop, one more scrape must
 * show the exact totals, sums to the nanosecond. Runs under TSan (label
 * "concurrency"); LM_TEST_SMALL=1 shrinks it for valgrind. */
#include "expo_check.h"
#include "libmetrics.h"
#include "lm_capture.h"
#include "lm_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define WRITERS 4
#define BASE_ROUTES 8
#define EXTRA_ROUTES 16
#define ROUTES (BASE_ROUTES + EXTRA_ROUTES)
#define EXTRA_EVERY 256
#define MAX_BOUNDS 16

/* Away from every default bound, so bucket placement is unambiguous. */
static const int64_t values_ns[6] = {300000, 3000000, 30000000, 300000000, 3000000000, 30000000000};

typedef struct shared {
    lm_registry *reg;
    lm_family *lat, *req;
    lm_route *http_routes[WRITERS];
    atomic_int scrapes;
    atomic_int finished;
    unsigned long min_iters;
    int min_scrapes;
    unsigned long iters[WRITERS]; /* written by each writer before it exits */
} shared;

typedef struct writer_arg {
    shared *sh;
    int w;
} writer_arg;

static lm_series *route_series(lm_family *f, int r)
{
    char name[16];
    snprintf(name, sizeof name, "r%d", r);
    lm_str v = {name, strlen(name)};
    return lm_series_get(f, &v, NULL);
}

/* The deterministic sequence both the writers and the expected-totals
 * replay walk. */
static int op_route(int w, unsigned long i)
{
    return (int)((i + (unsigned long)w) % BASE_ROUTES);
}

static int64_t op_value(int w, unsigned long i)
{
    return values_ns[(i * 7 + (unsigned long)w) % 6];
}

static bool op_extra(int w, unsigned long i, int *route)
{
    if (w != 0 || i % EXTRA_EVERY != 0 || i / EXTRA_EVERY >= EXTRA_ROUTES)
        return false;
    *route = BASE_ROUTES + (int)(i / EXTRA_EVERY);
    return true;
}

static void *writer(void *p)
{
    writer_arg *a = p;
    shared *sh = a->sh;
    lm_series *lat[BASE_ROUTES], *req[BASE_ROUTES];
    for (int r = 0; r < BASE_ROUTES; r++) {
        lat[r] = route_series(sh->lat, r);
        req[r] = route_series(sh->req, r);
    }
    unsigned long i = 0;
    /* At least min_iters, and keep going until enough scrapes overlapped. */
    for (; i < sh->min_iters || atomic_load(&sh->scrapes) < sh->min_scrapes; i++) {
        int r = op_route(a->w, i);
        lm_histogram_observe(lat[r], op_value(a->w, i));
        lm_counter_add(req[r], 1);
        int extra;
        if (op_extra(a->w, i, &extra)) { /* a new series while scrapes run */
            lm_histogram_observe(route_series(sh->lat, extra), values_ns[0]);
            lm_counter_add(route_series(sh->req, extra), 1);
        }
        lm_route_record(sh->http_routes[a->w], LM_METHOD_GET, 200 + (int)(i % 5),
                        op_value(a->w, i), 100, NULL, 0);
    }
    sh->iters[a->w] = i;
    atomic_fetch_add(&sh->finished, 1);
    return NULL;
}

/* ------------------------------------------------------------ scraping */

typedef struct seen {
    int nbounds;
    double bounds[MAX_BOUNDS];
    /* Previous scrape's values, to check monotonicity. */
    uint64_t counter[ROUTES], hcount[ROUTES], bucket[ROUTES][MAX_BOUNDS + 1];
    /* This scrape. */
    char sum[ROUTES][64];
    bool have_counter[ROUTES], have_hist[ROUTES];
    uint64_t http_requests, http_count;
    int problems;
} seen;

static void problem(seen *s, const expo_sample *x, const char *what)
{
    if (s->problems++ < 10)
        fprintf(stderr, "line %zu: %.*s{%.*s} %.*s: %s\n", x->line, (int)x->name_len, x->name,
                (int)x->labels_len, x->labels, (int)x->value_len, x->value, what);
}

static bool name_is(const expo_sample *x, const char *n)
{
    return x->name_len == strlen(n) && memcmp(x->name, n, x->name_len) == 0;
}

static void on_sample(void *ctx, const expo_sample *x)
{
    seen *s = ctx;
    uint64_t v = (uint64_t)x->v;
    if (name_is(x, "web_http_requests_total")) {
        s->http_requests += v;
        return;
    }
    if (name_is(x, "web_http_request_duration_seconds_count")) {
        s->http_count += v;
        return;
    }
    int r;
    char le[32], labels[128]; /* the sample's fields point into the body: not terminated */
    snprintf(labels, sizeof labels, "%.*s", (int)x->labels_len, x->labels);
    if (sscanf(labels, "route=\"r%d\"", &r) != 1 || r < 0 || r >= ROUTES)
        return;
    if (name_is(x, "c_requests_total")) {
        if (v < s->counter[r])
            problem(s, x, "counter went down between scrapes");
        s->counter[r] = v;
        s->have_counter[r] = true;
    } else if (name_is(x, "c_latency_seconds_count")) {
        if (v < s->hcount[r])
            problem(s, x, "histogram count went down between scrapes");
        s->hcount[r] = v;
        s->have_hist[r] = true;
    } else if (name_is(x, "c_latency_seconds_sum")) {
        snprintf(s->sum[r], sizeof s->sum[r], "%.*s", (int)x->value_len, x->value);
    } else if (name_is(x, "c_latency_seconds_bucket") &&
               sscanf(labels, "route=\"r%*d\",le=\"%31[^\"]\"", le) == 1) {
        int j = s->nbounds;
        for (int k = 0; k < s->nbounds; k++)
            if (strtod(le, NULL) == s->bounds[k])
                j = k;
        if (j == s->nbounds && strcmp(le, "+Inf") != 0) {
            problem(s, x, "unknown le");
            return;
        }
        if (v < s->bucket[r][j])
            problem(s, x, "bucket went down between scrapes");
        s->bucket[r][j] = v;
    }
}

/* One scrape, checked; returns 0 if the body was valid. */
static int scrape(lm_registry *reg, seen *s, capture *o)
{
    capture_clear(o);
    lm_error err;
    lm_status st = lm_expo_write(reg, LM_FORMAT_OPENMETRICS, LM_EXPO_PROCESS, capture_write, o, &err);
    CHECK(st == LM_OK);
    if (st != LM_OK)
        return -1;
    char msg[512];
    s->http_requests = s->http_count = 0;
    memset(s->have_counter, 0, sizeof s->have_counter);
    memset(s->have_hist, 0, sizeof s->have_hist);
    int rc = expo_check(o->p, o->len, LM_FORMAT_OPENMETRICS, on_sample, s, NULL, msg, sizeof msg);
    if (rc != 0)
        fprintf(stderr, "scrape rejected: %s\n", msg);
    return rc;
}

int main(void)
{
    bool small = getenv("LM_TEST_SMALL") != NULL;
    lm_error err;
    lm_registry_options ro = {.max_shards = 2}; /* writers 3 and 4 share the atomic shard */
    shared sh = {.min_iters = small ? 3000 : 200000, .min_scrapes = small ? 5 : 100};
    sh.reg = lm_registry_new(&ro, &err);
    CHECK(sh.reg != NULL);
    const char *const rl[] = {"route"};
    sh.lat = lm_family_register(sh.reg,
                                &(lm_family_options){.type = LM_HISTOGRAM,
                                                     .name = "c_latency_seconds",
                                                     .help = "Latency.",
                                                     .label_names = rl,
                                                     .nlabels = 1,
                                                     .unit_scale = 1e9},
                                &err);
    sh.req = lm_family_register(sh.reg,
                                &(lm_family_options){.type = LM_COUNTER,
                                                     .name = "c_requests_total",
                                                     .help = "Requests.",
                                                     .label_names = rl,
                                                     .nlabels = 1},
                                &err);
    lm_http *http = lm_http_register(sh.reg, &(lm_http_options){.prefix = "web_"}, &err);
    CHECK(sh.lat && sh.req && http);
    for (int w = 0; w < WRITERS; w++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", w);
        sh.http_routes[w] = lm_http_route(http, (lm_str){name, strlen(name)}, &err);
        CHECK(sh.http_routes[w] != NULL);
    }

    seen s = {0};
    size_t nb;
    const double *b = lm_default_latency_bounds(&nb);
    CHECK(nb <= MAX_BOUNDS);
    s.nbounds = (int)nb;
    memcpy(s.bounds, b, nb * sizeof *b);

    pthread_t th[WRITERS];
    writer_arg args[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        args[w] = (writer_arg){&sh, w};
        CHECK(pthread_create(&th[w], NULL, writer, &args[w]) == 0);
    }
    capture o = {0};
    int bad = 0, nscrapes = 0;
    /* Scrape until every writer has stopped; writers in turn keep going
     * until at least three scrapes overlapped them. */
    while (atomic_load(&sh.finished) < WRITERS) {
        bad += scrape(sh.reg, &s, &o) != 0;
        nscrapes++;
        atomic_fetch_add(&sh.scrapes, 1);
    }
    for (int w = 0; w < WRITERS; w++)
        pthread_join(th[w], NULL);
    CHECK(bad == 0);
    CHECK(s.problems == 0);

    /* Final scrape: exact totals from a replay of the writers' sequence. */
    uint64_t count[ROUTES] = {0}, buckets[ROUTES][MAX_BOUNDS + 1];
    int64_t sum[ROUTES] = {0};
    memset(buckets, 0, sizeof buckets);
    uint64_t total_ops = 0;
    for (int w = 0; w < WRITERS; w++) {
        total_ops += sh.iters[w];
        for (unsigned long i = 0; i < sh.iters[w]; i++) {
            int rs[2] = {op_route(w, i), -1};
            int64_t vs[2] = {op_value(w, i), values_ns[0]};
            op_extra(w, i, &rs[1]);
            for (int k = 0; k < 2 && rs[k] >= 0; k++) {
                count[rs[k]]++;
                sum[rs[k]] += vs[k];
                int j = 0;
                while (j < s.nbounds && (double)vs[k] / 1e9 > s.bounds[j])
                    j++;
                buckets[rs[k]][j]++;
            }
        }
    }
    CHECK(scrape(sh.reg, &s, &o) == 0);
    CHECK(s.problems == 0);
    int wrong = 0;
    for (int r = 0; r < ROUTES; r++) {
        if (count[r] == 0) {
            CHECK(!s.have_counter[r] && !s.have_hist[r]);
            continue;
        }
        char want_sum[64];
        snprintf(want_sum, sizeof want_sum, "%lld.%09lld", (long long)(sum[r] / 1000000000),
                 (long long)(sum[r] % 1000000000));
        size_t n = strlen(want_sum);
        while (want_sum[n - 1] == '0' && want_sum[n - 2] != '.')
            want_sum[--n] = '\0';
        uint64_t cum = 0;
        bool ok = s.have_counter[r] && s.have_hist[r] && s.counter[r] == count[r] &&
                  s.hcount[r] == count[r] && strcmp(s.sum[r], want_sum) == 0;
        for (int j = 0; j <= s.nbounds; j++) {
            cum += buckets[r][j];
            ok = ok && s.bucket[r][j] == cum;
        }
        if (!ok && wrong++ < 5)
            fprintf(stderr,
                    "route r%d: counter %llu hist count %llu sum %s, want %llu and sum %s\n", r,
                    (unsigned long long)s.counter[r], (unsigned long long)s.hcount[r], s.sum[r],
                    (unsigned long long)count[r], want_sum);
    }
    CHECK(wrong == 0);
    CHECK_EQ_U64(s.http_requests, total_ops);
    CHECK_EQ_U64(s.http_count, total_ops);
    CHECK(nscrapes >= sh.min_scrapes);
    printf("%d scrapes during writes, %llu operations\n", nscrapes,
           (unsigned long long)total_ops);
    capture_free(&o);
    lm_registry_free(sh.reg);
    TEST_MAIN_END();
}
