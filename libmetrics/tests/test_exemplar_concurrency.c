/* Exemplars written from many threads while the main thread scrapes.
 *
 * Writers (more than max_shards, so the shared atomic shard is used too)
 * hammer the SAME route, status and buckets with lm_route_record_ex, each
 * request carrying an exemplar whose ID encodes (writer, iteration) and
 * whose time and duration are functions of that pair, plus a flagged
 * upstream observation. Every scrape is parsed by expo_check and every
 * exemplar in it must be internally consistent: the ID parses, the value
 * is the duration (or 1 on the counter) and the timestamp is the time that
 * ID was recorded with. A torn copy (half of one writer's slot and half of
 * another's) would break that relation, so this is what proves the seqlock
 * read. After the writers stop, the counts are exact and each slot holds
 * an exemplar. Runs under TSan (label "concurrency"); LM_TEST_SMALL=1
 * shrinks it for valgrind. */
#include "expo_check.h"
#include "libmetrics.h"
#include "lm_capture.h"
#include "lm_test.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define WRITERS 4
#define T0 1700000000000000000LL

/* Away from every default bound, so bucket placement is unambiguous. */
static const int64_t values_ns[4] = {300000, 30000000, 300000000, 3000000000};

typedef struct shared {
    lm_route *route;
    lm_series *up;
    unsigned long iters;
    atomic_int started;
    atomic_int finished;
} shared;

typedef struct warg {
    shared *sh;
    int w;
} warg;

static int64_t dur_of(int w, unsigned long i)
{
    return values_ns[(i + (unsigned long)w) % 4];
}

/* Iterations LM_EXEMPLAR_MIN_INTERVAL_NS apart, writers interleaved
 * within one interval: a writer's next exemplar is always due, the others'
 * race with it. */
static int64_t time_of(int w, unsigned long i)
{
    return T0 + (int64_t)i * LM_EXEMPLAR_MIN_INTERVAL_NS + (int64_t)w * 1000;
}

static void *writer(void *p)
{
    warg *a = p;
    shared *sh = a->sh;
    char id[48];
    lm_exemplar ex = {.label_name = "request_id"};
    lm_observation obs = {.series = sh->up, .flags = LM_OBS_EXEMPLAR};
    lm_request_record rec = {.method = LM_METHOD_GET,
                             .status = 200,
                             .response_bytes = 1,
                             .observations = &obs,
                             .nobservations = 1,
                             .exemplar = &ex};
    atomic_fetch_add(&sh->started, 1);
    for (unsigned long i = 0; i < sh->iters; i++) {
        /* IDs of varying length, so a torn copy also mixes lengths. */
        int n = snprintf(id, sizeof id, "w%d-%lu%.*s", a->w, i, (int)(i % 7), "xxxxxxx");
        ex.label_value = (lm_str){id, (size_t)n};
        ex.unix_ns = time_of(a->w, i);
        rec.duration_ns = dur_of(a->w, i);
        obs.value = rec.duration_ns / 2;
        lm_route_record_ex(sh->route, &rec);
    }
    atomic_fetch_add(&sh->finished, 1);
    return NULL;
}

typedef struct seen {
    unsigned long iters;
    int exemplars;
    int bad;
} seen;

static void bad(seen *s, const expo_sample *x, const char *why)
{
    if (s->bad++ < 5)
        fprintf(stderr, "inconsistent exemplar (%s) on line %zu: %.*s # {%.*s} ...\n", why,
                x->line, (int)x->name_len, x->name, (int)x->exemplar_len, x->exemplar);
}

static void on_sample(void *ctx, const expo_sample *x)
{
    seen *s = ctx;
    if (!x->exemplar)
        return;
    s->exemplars++;
    int w;
    unsigned long i;
    int consumed = 0;
    char tail[16] = "";
    if (sscanf(x->exemplar, "request_id=\"w%d-%lu%n", &w, &i, &consumed) != 2 || w < 0 ||
        w >= WRITERS || i >= s->iters) {
        bad(s, x, "id");
        return;
    }
    /* The rest of the ID is i % 7 x's and the closing quote, nothing else. */
    int xs = (int)(i % 7);
    snprintf(tail, sizeof tail, "%.*s\"", xs, "xxxxxxx");
    if ((size_t)consumed + strlen(tail) != x->exemplar_len ||
        memcmp(x->exemplar + consumed, tail, strlen(tail)) != 0) {
        bad(s, x, "id tail");
        return;
    }
    /* Value: 1 on the counter, the duration (or half of it on the upstream
     * histogram) in seconds on a bucket. */
    bool counter = x->name_len > 6 && memcmp(x->name + x->name_len - 6, "_total", 6) == 0;
    bool upstream = x->family_len == strlen("up_seconds") && memcmp(x->family, "up_seconds", 10) == 0;
    double want = counter ? 1 : (double)dur_of(w, i) / (upstream ? 2e9 : 1e9);
    if (x->exemplar_v != want) {
        bad(s, x, "value");
        return;
    }
    /* Timestamp: after "} value ". */
    const char *p = x->exemplar + x->exemplar_len + 2;
    p = strchr(p, ' ');
    int64_t t = time_of(w, i);
    char ts[48];
    snprintf(ts, sizeof ts, " %" PRId64 ".%09" PRId64, t / 1000000000, t % 1000000000);
    /* Rendered with trailing zeros trimmed (at least one digit kept). */
    size_t tl = strlen(ts);
    while (tl > 0 && ts[tl - 1] == '0' && ts[tl - 2] != '.')
        tl--;
    if (p == NULL || strncmp(p, ts, tl) != 0 || p[tl] != '\n')
        bad(s, x, "timestamp");
}

int main(void)
{
    bool small = getenv("LM_TEST_SMALL") != NULL;
    lm_error err;
    lm_registry *reg = lm_registry_new(&(lm_registry_options){.max_shards = 2}, &err);
    lm_http *http = lm_http_register(reg, NULL, &err);
    static const char *const lbl[] = {"endpoint"};
    lm_family *upf = lm_family_register(reg,
                                        &(lm_family_options){.type = LM_HISTOGRAM,
                                                             .name = "up_seconds",
                                                             .help = "u",
                                                             .label_names = lbl,
                                                             .nlabels = 1,
                                                             .unit_scale = 1e9},
                                        &err);
    shared sh = {.route = lm_http_route(http, (lm_str){"api", 3}, &err),
                 .up = lm_series_get(upf, (lm_str[]){{"api", 3}}, &err),
                 .iters = small ? 3000 : 60000};
    CHECK(sh.route && sh.up);
    atomic_init(&sh.started, 0);
    atomic_init(&sh.finished, 0);

    pthread_t t[WRITERS];
    warg args[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        args[w] = (warg){&sh, w};
        pthread_create(&t[w], NULL, writer, &args[w]);
    }
    seen s = {.iters = sh.iters};
    int scrapes = 0;
    capture b = {0};
    char msg[256];
    while (atomic_load(&sh.started) < WRITERS)
        ;
    while (atomic_load(&sh.finished) < WRITERS || scrapes < 3) {
        capture_clear(&b);
        CHECK(lm_expo_write(reg, LM_FORMAT_OPENMETRICS, 0, capture_write, &b, &err) == LM_OK);
        int rc = expo_check(b.p, b.len, LM_FORMAT_OPENMETRICS, on_sample, &s, NULL, msg,
                            sizeof msg);
        CHECK(rc == 0);
        if (rc != 0) {
            fprintf(stderr, "scrape %d: %s\n", scrapes, msg);
            break;
        }
        scrapes++;
    }
    for (int w = 0; w < WRITERS; w++)
        pthread_join(t[w], NULL);
    CHECK(s.bad == 0);
    CHECK(s.exemplars > 0);

    /* Quiet now: exact totals, and every touched bucket shows an exemplar
     * (one per duration bucket, the counter, and the upstream buckets). */
    s.exemplars = 0;
    capture_clear(&b);
    CHECK(lm_expo_write(reg, LM_FORMAT_OPENMETRICS, 0, capture_write, &b, &err) == LM_OK);
    CHECK(expo_check(b.p, b.len, LM_FORMAT_OPENMETRICS, on_sample, &s, NULL, msg, sizeof msg) ==
          0);
    CHECK(s.bad == 0);
    CHECK(s.exemplars == 1 + 4 + 4);
    char want[160];
    snprintf(want, sizeof want,
             "\nhttp_requests_total{method=\"GET\",endpoint=\"api\",status=\"200\"} %lu # ",
             WRITERS * sh.iters);
    CHECK(memmem(b.p, b.len, want, strlen(want)) != NULL);
    snprintf(want, sizeof want, "\nup_seconds_count{endpoint=\"api\"} %lu\n", WRITERS * sh.iters);
    CHECK(memmem(b.p, b.len, want, strlen(want)) != NULL);
    printf("%d scrapes during the run\n", scrapes);
    capture_free(&b);
    lm_registry_free(reg);
    TEST_MAIN_END();
}
