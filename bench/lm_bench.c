/*
 * libmetrics micro-benchmark: ns per recording call on one thread, the
 * aggregate on two threads (same series and different series) against the
 * one-thread figure, a plain shared atomic as the reference point, and the
 * time to render 1k / 10k / 100k series with lm_expo_write. Native
 * histograms (schema 3, 160 buckets) beside classic ones: observe and
 * request cost, protobuf against text rendering, memory per series.
 *
 * Every figure is the median of REPS repetitions (min and max beside it),
 * each repetition timing a whole loop with CLOCK_MONOTONIC. Only public API
 * calls through the shared library are timed.
 *
 * Usage: lm_bench [reps]          (reps >= 5, default 7)
 * Env:   LM_BENCH_SCALE=0.1       shrink loop sizes (quick look, noisier)
 *        LM_BENCH_ONLY=scrape     only the exposition and memory sections
 */
#include "bench_clock.h"
#include "libmetrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef LM_BENCH_BUILD_TYPE
#define LM_BENCH_BUILD_TYPE "unknown"
#define LM_BENCH_COMPILER "unknown"
#define LM_BENCH_OPT_FLAGS ""
#endif
#ifndef LM_BENCH_SANITIZE
#define LM_BENCH_SANITIZE ""
#endif

#define MAX_REPS 50
#define NDUR 4096 /* durations cycled through, so bucket choice varies */

static int reps = 7;
static double scale = 1.0;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}


typedef struct stats {
    double med, min, max;
} stats;

static stats summarize(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    stats s = {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0], v[n - 1]};
    return s;
}

static long scaled(long n)
{
    long s = (long)((double)n * scale);
    return s < 1000 ? 1000 : s;
}

/* ------------------------------------------------------------ fixture */

typedef struct fixture {
    lm_registry *reg;
    lm_series *counter[2]; /* two series of one family */
    lm_series *hist;
    lm_series *gauge;
    lm_series *biz[2];
    lm_route *route[2];
    /* lm_route_record_ex: an upstream latency histogram, a Server-Timing
     * counter and histogram (what the Caddy plugin feeds per request). */
    lm_series *up, *dbq, *dbd;
    /* The same with native buckets (schema 3, 160): a histogram series
     * and routes of an lm_http set that has them. */
    lm_series *nhist;
    lm_route *nroute[2];
    int64_t dur[NDUR];
} fixture;

static const lm_native_options k_native = {.schema = 3, .max_buckets = 160};

static void die(const char *what, const lm_error *e)
{
    fprintf(stderr, "lm_bench: %s: %s\n", what, e->message);
    exit(1);
}

static lm_str S(const char *s)
{
    return (lm_str){s, strlen(s)};
}

static void fixture_init(fixture *f)
{
    lm_error e = {0};
    f->reg = lm_registry_new(NULL, &e);
    if (!f->reg)
        die("registry", &e);
    static const char *const lbl[] = {"kind"};
    lm_family *c = lm_family_register(
        f->reg, &(lm_family_options){.type = LM_COUNTER, .name = "bench_ops_total",
                                     .label_names = lbl, .nlabels = 1},
        &e);
    lm_family *h = lm_family_register(
        f->reg, &(lm_family_options){.type = LM_HISTOGRAM, .name = "bench_latency_seconds",
                                     .label_names = lbl, .nlabels = 1, .unit_scale = 1e9},
        &e);
    lm_family *g = lm_family_register(
        f->reg, &(lm_family_options){.type = LM_GAUGE, .name = "bench_level"}, &e);
    lm_family *nh = lm_family_register(
        f->reg, &(lm_family_options){.type = LM_HISTOGRAM, .name = "bench_native_seconds",
                                     .label_names = lbl, .nlabels = 1, .unit_scale = 1e9,
                                     .native = &k_native},
        &e);
    if (!c || !h || !g || !nh)
        die("families", &e);
    f->nhist = lm_series_get(nh, (lm_str[]){S("a")}, &e);
    lm_http *nhttp =
        lm_http_register(f->reg, &(lm_http_options){.prefix = "n_", .native = &k_native}, &e);
    if (!f->nhist || !nhttp)
        die("native", &e);
    f->nroute[0] = lm_http_route(nhttp, S("/api/a"), &e);
    f->nroute[1] = lm_http_route(nhttp, S("/api/b"), &e);
    f->counter[0] = lm_series_get(c, (lm_str[]){S("a")}, &e);
    f->counter[1] = lm_series_get(c, (lm_str[]){S("b")}, &e);
    f->biz[0] = lm_series_get(c, (lm_str[]){S("biz1")}, &e);
    f->biz[1] = lm_series_get(c, (lm_str[]){S("biz2")}, &e);
    f->hist = lm_series_get(h, (lm_str[]){S("a")}, &e);
    f->up = lm_series_get(h, (lm_str[]){S("upstream")}, &e);
    f->dbd = lm_series_get(h, (lm_str[]){S("db")}, &e);
    f->dbq = lm_series_get(c, (lm_str[]){S("db")}, &e);
    f->gauge = lm_series_get(g, NULL, &e);
    lm_http *http = lm_http_register(f->reg, NULL, &e);
    if (!http)
        die("http", &e);
    f->route[0] = lm_http_route(http, S("/api/a"), &e);
    f->route[1] = lm_http_route(http, S("/api/b"), &e);
    if (!f->counter[0] || !f->hist || !f->gauge || !f->route[0] || !f->route[1])
        die("series", &e);
    /* Log-uniform 50 us .. 20 s: every bucket of the default layout sees
     * traffic, so the bucket search is not trained on one answer. */
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < NDUR; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double u = (double)(x >> 11) / 9007199254740992.0;
        f->dur[i] = (int64_t)exp(log(50e3) + u * (log(20e9) - log(50e3)));
    }
}

/* ---------------------------------------------------------- the loops */

typedef enum op {
    OP_COUNTER,
    OP_GAUGE,
    OP_HIST_CONST,
    OP_HIST_VARIED,
    OP_NHIST_CONST,  /* the same into a histogram with native buckets */
    OP_NHIST_VARIED,
    OP_ROUTE,
    OP_NROUTE,       /* lm_route_record into a set with native buckets */
    OP_ROUTE_BIZ2,
    OP_ROUTE_EX,      /* lm_route_record_ex, no extras */
    OP_ROUTE_EX_OBS3, /* + upstream, Server-Timing counter and histogram */
    OP_ROUTE_EX_EXEMPLAR, /* + an exemplar, records LM_EXEMPLAR_MIN_INTERVAL_NS
                           * apart: every exemplar is written (worst case) */
    OP_ROUTE_EX_EXEMPLAR_HOT, /* + an exemplar, records 1 us apart: most skip */
    OP_ATOMIC, /* reference: one C11 atomic fetch_add cell */
} op;

typedef struct job {
    const fixture *f;
    op op;
    int which;             /* series/route index: 0 for "same", thread id for "different" */
    long n;
    _Atomic uint64_t *cell; /* OP_ATOMIC */
    pthread_barrier_t *bar;
    double t0, t1, c0, c1;
    /* Overlap tracking: after each chunk of CHUNK calls a thread publishes
     * its progress and looks at its peer's; a sample where the peer moved
     * means both were running in that interval. */
    _Alignas(64) _Atomic long progress;
    struct job *peer;
    long last_peer, samples, overlapped;
} job;

#define CHUNK 4096

static void run_range(job *j, long from, long n)
{
    const fixture *f = j->f;
    switch (j->op) {
    case OP_COUNTER: {
        lm_series *s = f->counter[j->which];
        for (long i = from; i < n; i++)
            lm_counter_add(s, 1);
        break;
    }
    case OP_GAUGE:
        for (long i = from; i < n; i++)
            lm_gauge_add(f->gauge, 1);
        break;
    case OP_HIST_CONST:
    case OP_NHIST_CONST: {
        lm_series *s = j->op == OP_NHIST_CONST ? f->nhist : f->hist;
        for (long i = from; i < n; i++)
            lm_histogram_observe(s, 3000000);
        break;
    }
    case OP_HIST_VARIED:
    case OP_NHIST_VARIED: {
        lm_series *s = j->op == OP_NHIST_VARIED ? f->nhist : f->hist;
        for (long i = from; i < n; i++)
            lm_histogram_observe(s, f->dur[i & (NDUR - 1)]);
        break;
    }
    case OP_ROUTE:
    case OP_NROUTE: {
        lm_route *r = (j->op == OP_NROUTE ? f->nroute : f->route)[j->which];
        for (long i = from; i < n; i++)
            lm_route_record(r, LM_METHOD_GET, 200, f->dur[i & (NDUR - 1)], 512, NULL, 0);
        break;
    }
    case OP_ROUTE_BIZ2: {
        lm_route *r = f->route[j->which];
        for (long i = from; i < n; i++)
            lm_route_record(r, LM_METHOD_GET, 200, f->dur[i & (NDUR - 1)], 512, f->biz, 2);
        break;
    }
    case OP_ROUTE_EX:
    case OP_ROUTE_EX_OBS3:
    case OP_ROUTE_EX_EXEMPLAR:
    case OP_ROUTE_EX_EXEMPLAR_HOT: {
        /* As the plugin does it: the record and its arrays are reused, the
         * ID is a 36-character UUID, the time is passed in (Go has it). The
         * time follows the call index, so it advances across chunks and two
         * threads present the same times, as concurrent requests do. */
        static const char id[] = "0f8fad5b-d9cb-469f-a165-70867728950e";
        const int64_t t0 = 1700000000123456789LL;
        const int64_t step = j->op == OP_ROUTE_EX_EXEMPLAR_HOT ? 1000 : LM_EXEMPLAR_MIN_INTERVAL_NS;
        lm_exemplar ex = {"request_id", {id, sizeof id - 1}, t0};
        lm_observation obs[3] = {{f->up, 0, LM_OBS_EXEMPLAR}, {f->dbq, 1, 0}, {f->dbd, 3200000, 0}};
        lm_request_record rec = {.method = LM_METHOD_GET,
                                 .status = 200,
                                 .response_bytes = 512,
                                 .observations = obs,
                                 .nobservations = j->op == OP_ROUTE_EX ? 0 : 3,
                                 .exemplar = j->op == OP_ROUTE_EX ? NULL : j->op == OP_ROUTE_EX_OBS3 ? NULL : &ex};
        lm_route *r = f->route[j->which];
        for (long i = from; i < n; i++) {
            rec.duration_ns = f->dur[i & (NDUR - 1)];
            obs[0].value = rec.duration_ns / 2;
            ex.unix_ns = t0 + i * step;
            lm_route_record_ex(r, &rec);
        }
        break;
    }
    case OP_ATOMIC:
        for (long i = from; i < n; i++)
            atomic_fetch_add_explicit(j->cell, 1, memory_order_relaxed);
        break;
    }
}

static void run(job *j, bool track)
{
    for (long i = 0; i < j->n; i += CHUNK) {
        long e = i + CHUNK < j->n ? i + CHUNK : j->n;
        run_range(j, i, e);
        if (!track || j->peer == NULL)
            continue;
        atomic_store_explicit(&j->progress, e, memory_order_relaxed);
        long p = atomic_load_explicit(&j->peer->progress, memory_order_relaxed);
        if (p < j->peer->n) { /* a finished peer cannot overlap */
            j->samples++;
            j->overlapped += p != j->last_peer;
            j->last_peer = p;
        }
    }
}

static void *thread_main(void *arg)
{
    job *j = arg;
    run(j, false); /* warm: claims the shard, creates route slots, faults pages */
    pthread_barrier_wait(j->bar);
    j->t0 = now_ns();
    j->c0 = cpu_ns();
    run(j, true);
    j->c1 = cpu_ns();
    j->t1 = now_ns();
    return NULL;
}

/* One repetition with nthreads threads. wall: ns per op in aggregate (wall
 * time from the first start to the last end, divided by all ops); cpu: the
 * mean over threads of each thread's CPU ns per op. */
typedef struct sample {
    double wall, cpu;
    long samples, overlapped;
} sample;

static sample rep_threads(const fixture *f, op o, int nthreads, bool same, long n,
                          _Atomic uint64_t *cell)
{
    pthread_t t[2];
    job jobs[2];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
    for (int i = 0; i < nthreads; i++) {
        jobs[i] = (job){.f = f, .op = o, .which = same ? 0 : i, .n = n, .cell = cell, .bar = &bar};
        atomic_init(&jobs[i].progress, 0);
    }
    for (int i = 0; i < nthreads; i++) {
        jobs[i].peer = nthreads == 2 ? &jobs[1 - i] : NULL;
        pthread_create(&t[i], NULL, thread_main, &jobs[i]);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
    double t0 = jobs[0].t0, t1 = jobs[0].t1, cpu = 0;
    long samples = 0, overlapped = 0;
    for (int i = 0; i < nthreads; i++) {
        samples += jobs[i].samples;
        overlapped += jobs[i].overlapped;
        if (jobs[i].t0 < t0)
            t0 = jobs[i].t0;
        if (jobs[i].t1 > t1)
            t1 = jobs[i].t1;
        cpu += (jobs[i].c1 - jobs[i].c0) / (double)n;
    }
    return (sample){(t1 - t0) / ((double)n * nthreads), cpu / nthreads, samples, overlapped};
}

typedef struct result {
    stats wall, cpu;
    double overlap; /* share of progress samples where both threads ran */
} result;

static result measure(const fixture *f, op o, int nthreads, bool same, long n)
{
    double w[MAX_REPS], c[MAX_REPS];
    _Atomic uint64_t cell[16] __attribute__((aligned(64)));
    atomic_init(&cell[0], 0);
    long samples = 0, overlapped = 0;
    for (int r = 0; r < reps; r++) {
        sample s = rep_threads(f, o, nthreads, same, n, &cell[0]);
        w[r] = s.wall;
        c[r] = s.cpu;
        samples += s.samples;
        overlapped += s.overlapped;
    }
    return (result){summarize(w, reps), summarize(c, reps),
                    samples ? (double)overlapped / (double)samples : 0};
}

static void print_row(const char *name, result r)
{
    printf("  %-42s %6.2f [%6.2f .. %6.2f]   %6.2f [%6.2f .. %6.2f]\n", name, r.cpu.med,
           r.cpu.min, r.cpu.max, r.wall.med, r.wall.min, r.wall.max);
}

/* ------------------------------------------------------------ exposition */

typedef struct sink {
    size_t bytes;
    unsigned check;
} sink;

static int discard(void *ctx, const char *buf, size_t len)
{
    sink *s = ctx;
    s->bytes += len;
    s->check += (unsigned char)buf[0] + (unsigned char)buf[len - 1];
    return 0;
}

static const char *fmt_name(lm_format fmt)
{
    return fmt == LM_FORMAT_TEXT ? "text" : fmt == LM_FORMAT_OPENMETRICS ? "openmetrics" : "protobuf";
}

static void time_expo(lm_registry *reg, lm_format fmt, size_t nseries, const char *type)
{
    lm_error e = {0};
    double v[MAX_REPS], c[MAX_REPS];
    sink sk = {0};
    lm_expo_write(reg, fmt, 0, discard, &sk, &e); /* warm */
    size_t bytes = sk.bytes;
    for (int r = 0; r < reps; r++) {
        sk.bytes = 0;
        double t0 = now_ns(), c0 = cpu_ns();
        lm_status st = lm_expo_write(reg, fmt, 0, discard, &sk, &e);
        double c1 = cpu_ns(), t1 = now_ns();
        if (st != LM_OK)
            die("lm_expo_write", &e);
        v[r] = (t1 - t0) / 1e6;
        c[r] = (c1 - c0) / 1e6;
    }
    stats s = summarize(v, reps), cs = summarize(c, reps);
    printf("  %6zu %-9s %-11s %8.2f [%8.2f .. %8.2f] %8.2f %7.0f %8.1f MB\n", nseries, type,
           fmt_name(fmt), cs.med, cs.min, cs.max, s.med, cs.med * 1e6 / (double)nseries,
           (double)bytes / 1e6);
}

/* A fresh registry with an lm_http set of nroutes routes named
 * /api/v1/item/<i> (max_series 0: the default cap; native buckets or
 * not), route i recorded `each` times by GET 200 with latency lat(i, k). */
static lm_registry *routes_registry(size_t nroutes, size_t max_series, bool native, int each,
                                    int64_t (*lat)(size_t i, int k))
{
    lm_error e = {0};
    lm_registry *reg = lm_registry_new(NULL, &e);
    lm_http *http = reg ? lm_http_register(reg,
                                           &(lm_http_options){.max_routes = nroutes,
                                                              .max_series = max_series,
                                                              .native = native ? &k_native : NULL},
                                           &e)
                        : NULL;
    if (!http)
        die("http registry", &e);
    for (size_t i = 0; i < nroutes; i++) {
        char v[48];
        snprintf(v, sizeof v, "/api/v1/item/%zu", i);
        lm_route *r = lm_http_route(http, S(v), &e);
        if (!r)
            die("route", &e);
        for (int k = 0; k < each; k++)
            lm_route_record(r, LM_METHOD_GET, 200, lat(i, k), 512, NULL, 0);
    }
    return reg;
}

static int64_t lat_spread(size_t i, int k)
{
    (void)k;
    return (int64_t)(i * 7919 % 3000000000ULL);
}

static int64_t lat_1ms(size_t i, int k)
{
    (void)i, (void)k;
    return 1000000;
}

/* 64 latencies per route, log-uniform over 1 ms .. 10 s (13 powers of
 * two), shifted per route. */
static int64_t lat_64(size_t i, int k)
{
    return (int64_t)(1e6 * exp((double)(((size_t)k * 37 + i) % 64) / 64.0 * log(1e4)));
}

/* The shape route_metrics produces: lm_route_record creates a request
 * counter, a latency histogram and a bytes counter series per (route,
 * method, status), three labels each, interleaved in memory. One series
 * here is one such tuple (three series plus the route's in-flight gauge). */
static void bench_expo_http(size_t ntuples, lm_format fmt, bool native)
{
    lm_registry *reg = routes_registry(ntuples, ntuples, native, 1, lat_spread);
    time_expo(reg, fmt, ntuples, native ? "http+nat" : "http");
    lm_registry_free(reg);
}

static void bench_expo(bool histograms, size_t nseries, lm_format fmt)
{
    lm_error e = {0};
    lm_registry *reg = lm_registry_new(NULL, &e);
    if (!reg)
        die("registry", &e);
    static const char *const lbl[] = {"endpoint"};
    lm_family_options o = {.type = histograms ? LM_HISTOGRAM : LM_COUNTER,
                           .name = histograms ? "render_latency_seconds" : "render_requests_total",
                           .help = "Series for the rendering benchmark.",
                           .label_names = lbl,
                           .nlabels = 1,
                           .max_series = nseries,
                           .unit_scale = histograms ? 1e9 : 0};
    lm_family *fam = lm_family_register(reg, &o, &e);
    if (!fam)
        die("render family", &e);
    for (size_t i = 0; i < nseries; i++) {
        char v[48];
        snprintf(v, sizeof v, "/api/v1/item/%zu", i);
        lm_series *s = lm_series_get(fam, (lm_str[]){S(v)}, &e);
        if (!s)
            die("render series", &e);
        if (histograms) {
            lm_histogram_observe(s, (int64_t)(i * 7919 % 3000000000ULL));
            lm_histogram_observe(s, 1234567);
        } else {
            lm_counter_add(s, i * 2654435761ULL % 1000000);
        }
    }
    time_expo(reg, fmt, nseries, histograms ? "histogram" : "counter");
    lm_registry_free(reg);
}

/* ---------------------------------------------------------------- memory */

static long resident_kib(void)
{
    long pages = -1, res = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = -1;
        fclose(f);
    }
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Resident memory a default lm_http registry (max_routes raised to nroutes)
 * adds with nroutes routes recorded `each` times (GET 200; once at 1 ms, or
 * 64 latencies spread over 1 ms .. 10 s, with native buckets or not: the
 * chunks a real route touches), measured in a fresh child process so no
 * earlier benchmark's freed heap hides it. Shards are mmapped and touched
 * lazily, so this counts the pages actually used. */
static void bench_memory(size_t nroutes, bool native, int each)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        long before = resident_kib();
        routes_registry(nroutes, 0, native, each, each == 1 ? lat_1ms : lat_64);
        long after = resident_kib();
        double per = nroutes ? (double)(after - before) * 1024 / (double)nroutes : 0;
        if (each == 1 && !native)
            printf("  %6zu routes  %8ld KiB resident added  %7.0f B per route\n", nroutes,
                   after - before, per);
        else
            printf("  %6zu routes, %d latencies each, %-15s %8ld KiB  %7.0f B per route\n",
                   nroutes, each, native ? "native schema 3" : "classic only", after - before,
                   per);
        fflush(stdout);
        _exit(0);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "lm_bench: memory child for %zu routes failed\n", nroutes);
}

/* --------------------------------------------------------------- main */

static void machine(void)
{
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    snprintf(model, sizeof model, "%s", c + 2);
                    model[strcspn(model, "\n")] = '\0';
                }
                break;
            }
        }
        fclose(f);
    }
    char load[128] = "unknown";
    f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fgets(load, sizeof load, f))
            load[strcspn(load, "\n")] = '\0';
        fclose(f);
    }
    printf("machine: nproc=%ld, cpu \"%s\", loadavg at start %s\n", sysconf(_SC_NPROCESSORS_ONLN),
           model, load);
    printf("build:   %s, %s, flags \"%s\"%s%s, libmetrics %s\n", LM_BENCH_BUILD_TYPE,
           LM_BENCH_COMPILER, LM_BENCH_OPT_FLAGS, LM_BENCH_SANITIZE[0] ? ", SANITIZED: " : "",
           LM_BENCH_SANITIZE, lm_version());
}

int main(int argc, char **argv)
{
    if (argc > 1)
        reps = atoi(argv[1]);
    if (reps < 5 || reps > MAX_REPS) {
        fprintf(stderr, "usage: %s [reps 5..%d]\n", argv[0], MAX_REPS);
        return 2;
    }
    const char *sc = getenv("LM_BENCH_SCALE");
    if (sc)
        scale = atof(sc);
    if (!(scale > 0))
        scale = 1;

    printf("libmetrics micro-benchmark\n");
    machine();
    printf("reproduce: cmake -S <repo> -B build/bench -DCMAKE_BUILD_TYPE=RelWithDebInfo "
           "-DLM_BUILD_TESTS=OFF && cmake --build build/bench --target lm_bench && "
           "build/bench/bench/lm_bench %d%s\n",
           reps, sc ? "   (with LM_BENCH_SCALE set)" : "");
    printf("method: median of %d repetitions [min .. max]; each repetition times a whole loop;\n"
           "        durations cycle through %d log-uniform values 50us..20s (all buckets hit)\n\n",
           reps, NDUR);

    /* First, while this process's heap is untouched: a child forked after
     * the big exposition registries were freed would reuse their already
     * resident pages and hide what a registry really costs. */
    printf("memory: resident KiB a default lm_http registry adds (forked child each)\n");
    size_t routes[] = {0, 100, 1000, 10000};
    for (size_t i = 0; i < 4; i++)
        bench_memory(routes[i], false, 1);
    printf("\n");

    const char *only = getenv("LM_BENCH_ONLY");
    if (only && strcmp(only, "scrape") == 0)
        goto scrape;

    fixture f;
    fixture_init(&f);
    const long N = scaled(20000000);

    printf("one thread, ns per call                     thread CPU time             "
           "wall time\n");
    struct {
        const char *name;
        op o;
        long n;
    } singles[] = {
        {"lm_counter_add", OP_COUNTER, N},
        {"lm_gauge_add (shared atomic cell)", OP_GAUGE, N / 2},
        {"lm_histogram_observe, constant value", OP_HIST_CONST, N / 2},
        {"lm_histogram_observe, varied values", OP_HIST_VARIED, N / 2},
        {"lm_route_record, varied durations", OP_ROUTE, N / 4},
        {"lm_route_record + 2 business counters", OP_ROUTE_BIZ2, N / 4},
        {"reference: C11 atomic_fetch_add, one cell", OP_ATOMIC, N / 2},
        {"lm_route_record_ex, no extras", OP_ROUTE_EX, N / 4},
        {"lm_route_record_ex + 3 observations", OP_ROUTE_EX_OBS3, N / 4},
        {"lm_route_record_ex + 3 obs + exemplar", OP_ROUTE_EX_EXEMPLAR, N / 4},
        {"  same, records 1 us apart (most skip)", OP_ROUTE_EX_EXEMPLAR_HOT, N / 4},
        /* Native buckets (schema 3) beside the classic ones, to compare
         * with rows 2, 3 and 4 above. */
        {"native: lm_histogram_observe, constant", OP_NHIST_CONST, N / 2},
        {"native: lm_histogram_observe, varied", OP_NHIST_VARIED, N / 2},
        {"native: lm_route_record, varied", OP_NROUTE, N / 4},
    };
    result one[14];
    for (size_t i = 0; i < sizeof singles / sizeof *singles; i++) {
        one[i] = measure(&f, singles[i].o, 1, true, singles[i].n);
        print_row(singles[i].name, one[i]);
    }

    printf("\ntwo threads: aggregate ns per call = wall time / all calls of both threads;\n"
           "ratio = two-thread throughput / one-thread throughput, both on wall time (2.00 is\n"
           "perfect scaling; only meaningful when both threads really ran together, see overlap);\n"
           "cpu = each thread's CPU ns per call, which grows when threads fight over cache lines\n");
    struct {
        const char *name;
        op o;
        bool same;
        long n;
        int base; /* index into one[] */
    } twos[] = {
        {"lm_counter_add, same series", OP_COUNTER, true, N, 0},
        {"lm_counter_add, different series", OP_COUNTER, false, N, 0},
        {"lm_histogram_observe, same series", OP_HIST_VARIED, true, N / 2, 3},
        {"lm_route_record, same route and status", OP_ROUTE, true, N / 4, 4},
        {"lm_route_record, different routes", OP_ROUTE, false, N / 4, 4},
        {"reference: atomic_fetch_add, same cell", OP_ATOMIC, true, N / 2, 6},
        /* Exemplar slots are shared, not sharded: this row shows what two
         * threads writing the same slots cost. */
        {"record_ex + exemplar, same route", OP_ROUTE_EX_EXEMPLAR, true, N / 4, 9},
        {"record_ex + exemplar, different routes", OP_ROUTE_EX_EXEMPLAR, false, N / 4, 9},
        {"record_ex + exemplar 1 us, same route", OP_ROUTE_EX_EXEMPLAR_HOT, true, N / 4, 10},
        {"native: lm_histogram_observe, same series", OP_NHIST_VARIED, true, N / 2, 12},
        {"native: lm_route_record, different routes", OP_NROUTE, false, N / 4, 13},
    };
    result r, atomic_r = {0};
    double min_overlap = 1;
    for (size_t i = 0; i < sizeof twos / sizeof *twos; i++) {
        r = measure(&f, twos[i].o, 2, twos[i].same, twos[i].n);
        printf("  %-42s %6.2f [%6.2f .. %6.2f]  ratio %.2f  cpu %6.2f  overlap %3.0f%%\n",
               twos[i].name, r.wall.med, r.wall.min, r.wall.max,
               one[twos[i].base].wall.med / r.wall.med, r.cpu.med, 100 * r.overlap);
        min_overlap = r.overlap < min_overlap ? r.overlap : min_overlap;
        if (twos[i].o == OP_ATOMIC)
            atomic_r = r;
    }
    /* Two threads only contend (and only scale) while both actually run.
     * On a busy machine they are time-sliced; the overlap column measures
     * how much of each run both threads made progress together. */
    printf("  overlap = share of %d-call chunks during which the other thread also made "
           "progress;\n  contended/uncontended atomic CPU per call = %.2fx\n",
           CHUNK, atomic_r.cpu.med / one[6].cpu.med);
    if (min_overlap < 0.8)
        printf("  WARNING: the two threads ran together only %.0f%% of the time in at least one "
               "row:\n  the machine is busy, and two-thread figures of that row are not a "
               "scaling measurement\n",
               100 * min_overlap);
    lm_registry_free(f.reg);

scrape:
    printf("\nexposition: lm_expo_write to a writer that discards, median of %d\n"
           "  series  type      format      CPU ms [min .. max]            wall ms  CPU ns/series "
           "body\n",
           reps);
    size_t sizes[] = {1000, 10000, 100000};
    for (int h = 0; h < 2; h++)
        for (size_t i = 0; i < 3; i++)
            bench_expo(h, sizes[i], LM_FORMAT_TEXT);
    bench_expo(false, 100000, LM_FORMAT_OPENMETRICS);
    bench_expo(true, 10000, LM_FORMAT_OPENMETRICS);
    printf("  (http: one row per (route, GET, 200) of a default lm_http: counter + histogram +\n"
           "   bytes counter + in-flight gauge, three labels; ns per tuple)\n");
    for (size_t i = 0; i < 3; i++)
        bench_expo_http(sizes[i], LM_FORMAT_TEXT, false);
    printf("  (native buckets, schema 3, 160: the same tuples, each route's histogram with native\n"
           "   buckets; text shows the classic buckets only, protobuf both)\n");
    for (size_t i = 0; i < 2; i++)
        for (int f = 0; f < 3; f += 2)
            bench_expo_http(sizes[i], f ? LM_FORMAT_PROTOBUF : LM_FORMAT_TEXT, true);
    bench_expo_http(sizes[1], LM_FORMAT_PROTOBUF, false);
    printf("\nmemory of native buckets: resident KiB added, per series, forked child each\n");
    for (size_t i = 1; i < 3; i++)
        for (int nat = 0; nat < 2; nat++)
            bench_memory(routes[i], nat, 64);
    return 0;
}
