/*
 * How long can a reload that changes a namespace's latency buckets hold up
 * requests? A default lm_http set with 1,000 routes, each with 6 (method,
 * status) slots populated (6,000 series per family), is recorded into by
 * one thread without pause while the main thread changes the buckets:
 *
 *   baseline  no bucket changes (what the machine's scheduling alone does)
 *   flip      every 5 ms between the defaults and a subset of them (bounds
 *             the histogram already counts in: only what is exposed changes)
 *   growth    every 20 ms to a list with two bounds the histogram never had
 *             (the union grows: every series gets new cells), 10 times
 *
 * Every lm_route_record is timed (CLOCK_MONOTONIC around the call). Two
 * kinds of record: into a populated slot (the hot path: lock-free), and,
 * every 256th record, the first record of a new (method, status) on a route,
 * which takes the registry lock once and so waits for a reload holding it.
 * A second thread probes the lock alone: lm_series_get of an existing
 * series (lock, hash lookup, unlock) every 20 us. Printed per phase: p50,
 * p99, p99.9 and max latency of each, and how long each bucket change
 * (lm_http_register) took in wall and CPU time. Target: no record waits
 * more than 1 ms because of a reload. On a shared machine every maximum
 * also holds the time a thread was descheduled: compare with the baseline
 * phase, which has no reload.
 *
 * Only public API calls through the shared library are used, so the same
 * source measures any libmetrics version.
 *
 * Usage: lm_reload_bench [seconds per phase, default 2]
 */
#include "libmetrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ROUTES 1000
#define NEW_SLOT_EVERY 256
/* Latency histogram: 64 powers of two, 16 linear steps each (within 6 %). */
#define SUB 16
#define NBINS (64 * SUB)

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct lat {
    uint64_t bins[NBINS];
    uint64_t n;
    int64_t max;
} lat;

static int bin_of(int64_t v)
{
    if (v < SUB)
        return v < 0 ? 0 : (int)v;
    int e = 63 - __builtin_clzll((unsigned long long)v); /* v in [2^e, 2^(e+1)) */
    int s = (int)((v >> (e - 4)) & (SUB - 1));           /* 4 = log2(SUB) */
    return (e - 3) * SUB + s;
}

static int64_t bin_upper(int b)
{
    if (b < SUB)
        return b;
    int e = b / SUB + 3, s = b % SUB;
    return ((int64_t)(SUB + s + 1) << (e - 4)) - 1;
}

static void lat_add(lat *l, int64_t v)
{
    l->bins[bin_of(v)]++;
    l->n++;
    if (v > l->max)
        l->max = v;
}

/* Upper edge of the bin holding quantile q (so within 6 % above). */
static int64_t lat_q(const lat *l, double q)
{
    uint64_t rank = (uint64_t)ceil(q * (double)l->n), c = 0;
    for (int b = 0; b < NBINS; b++)
        if ((c += l->bins[b]) >= rank && rank > 0)
            return bin_upper(b);
    return l->max;
}

typedef struct world {
    lm_registry *reg;
    lm_http *http;
    lm_route *routes[ROUTES];
    _Atomic int phase; /* index into the phase's histograms; -1: stop */
    lat existing[3], fresh[3], probe[3];
    lm_family *probed; /* a family of its own: lm_series_get takes the same lock */
    unsigned next_status[ROUTES];
} world;

static const int populated[6][2] = {{LM_METHOD_GET, 200}, {LM_METHOD_GET, 404},
                                    {LM_METHOD_GET, 500}, {LM_METHOD_POST, 200},
                                    {LM_METHOD_POST, 404}, {LM_METHOD_POST, 500}};

static void *recorder(void *arg)
{
    world *w = arg;
    uint64_t i = 0;
    int p;
    while ((p = atomic_load_explicit(&w->phase, memory_order_relaxed)) >= 0) {
        int r = (int)(i % ROUTES);
        bool fresh = i % NEW_SLOT_EVERY == NEW_SLOT_EVERY - 1;
        lm_method m;
        int status;
        if (fresh) {
            /* A (method, status) this route has not seen: PUT 100..599. */
            unsigned k = w->next_status[r]++;
            m = LM_METHOD_PUT;
            status = 100 + (int)(k % 500);
            if (k >= 500)
                fresh = false; /* all used: an existing slot after all */
        } else {
            m = (lm_method)populated[i % 6][0];
            status = populated[i % 6][1];
        }
        int64_t d = (int64_t)(i % 1000) * 100000; /* 0..100 ms */
        int64_t t0 = now_ns();
        lm_route_record(w->routes[r], m, status, d, 100, NULL, 0);
        int64_t dt = now_ns() - t0;
        lat_add(fresh ? &w->fresh[p] : &w->existing[p], dt);
        i++;
    }
    return NULL;
}

static void *prober(void *arg)
{
    world *w = arg;
    int p;
    lm_str v[1] = {{"x", 1}};
    while ((p = atomic_load_explicit(&w->phase, memory_order_relaxed)) >= 0) {
        int64_t t0 = now_ns();
        lm_series_get(w->probed, v, NULL);
        lat_add(&w->probe[p], now_ns() - t0);
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct calls {
    int64_t d[4096], cpu[4096];
    int n;
} calls;

static void change(world *w, const double *b, size_t nb, calls *c)
{
    lm_error e;
    int64_t c0 = cpu_ns(), t0 = now_ns();
    lm_http *h = lm_http_register(w->reg, &(lm_http_options){.bounds = b, .nbounds = nb,
                                                            .max_series = 200000},
                                  &e);
    int64_t dt = now_ns() - t0, dc = cpu_ns() - c0;
    if (h != w->http) {
        fprintf(stderr, "bucket change failed: %s\n", e.message);
        exit(1);
    }
    if (c->n < 4096) {
        c->cpu[c->n] = dc;
        c->d[c->n++] = dt;
    }
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(fmod(ms, 1000) * 1e6)};
    nanosleep(&ts, NULL);
}

static void print_lat(const char *phase, const char *kind, const lat *l)
{
    printf("  %-9s %-26s %9llu  %7.2f %8.2f %8.2f %9.2f\n", phase, kind,
           (unsigned long long)l->n, (double)lat_q(l, 0.5) / 1e3, (double)lat_q(l, 0.99) / 1e3,
           (double)lat_q(l, 0.999) / 1e3, (double)l->max / 1e3);
}

static void print_calls(const char *phase, calls *c)
{
    if (c->n == 0)
        return;
    qsort(c->d, (size_t)c->n, sizeof *c->d, cmp_i64);
    qsort(c->cpu, (size_t)c->n, sizeof *c->cpu, cmp_i64);
    printf("  %-9s %5d changes: wall median %8.1f us, max %8.1f us; CPU median %8.1f us, "
           "max %8.1f us\n",
           phase, c->n, (double)c->d[c->n / 2] / 1e3, (double)c->d[c->n - 1] / 1e3,
           (double)c->cpu[c->n / 2] / 1e3, (double)c->cpu[c->n - 1] / 1e3);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2;
    if (!(secs > 0 && secs <= 60)) {
        fprintf(stderr, "usage: %s [seconds per phase, 0 < s <= 60]\n", argv[0]);
        return 2;
    }
    char load[128] = "unknown";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fgets(load, sizeof load, f))
            load[strcspn(load, "\n")] = '\0';
        fclose(f);
    }
    printf("libmetrics reload stall benchmark, libmetrics %s, nproc=%ld, loadavg at start %s\n",
           lm_version(), sysconf(_SC_NPROCESSORS_ONLN), load);
    printf("reproduce: cmake -S <repo> -B build/bench -DCMAKE_BUILD_TYPE=RelWithDebInfo "
           "-DLM_BUILD_TESTS=OFF && cmake --build build/bench --target lm_reload_bench && "
           "build/bench/bench/lm_reload_bench %g\n",
           secs);

    static world w;
    lm_error e;
    /* Room for 10 growths of every series the run creates (each growth
     * allocates them new cells). The recorder opens a new (method, status)
     * series every NEW_SLOT_EVERY records, so a faster machine makes more
     * of them: a quiet 2-core run reached 68,500, which 1 << 24 cells could
     * not grow 10 times. The mapping is reserved, not touched, until used. */
    w.reg = lm_registry_new(&(lm_registry_options){.slot_capacity = (size_t)1 << 26}, &e);
    w.http = lm_http_register(w.reg, &(lm_http_options){.max_series = 200000}, &e);
    if (!w.reg || !w.http) {
        fprintf(stderr, "setup: %s\n", e.message);
        return 1;
    }
    for (int r = 0; r < ROUTES; r++) {
        char name[16];
        snprintf(name, sizeof name, "r%04d", r);
        w.routes[r] = lm_http_route(w.http, (lm_str){name, strlen(name)}, &e);
        for (int k = 0; k < 6; k++)
            lm_route_record(w.routes[r], (lm_method)populated[k][0], populated[k][1], 1, 1, NULL,
                            0);
    }
    static const char *const k[1] = {"k"};
    w.probed = lm_family_register(
        w.reg, &(lm_family_options){.type = LM_COUNTER, .name = "probe_total", .label_names = k,
                                    .nlabels = 1},
        &e);
    printf("setup: %d routes x 6 populated (method, status) slots, one recorder thread; "
           "%g s per phase\n\n",
           ROUTES, secs);

    size_t nd;
    const double *def = lm_default_latency_bounds(&nd);
    static const double subset[] = {0.005, 0.05, 0.5, 5};
    static calls c[3];

    pthread_t th, pr;
    atomic_store(&w.phase, 0);
    pthread_create(&th, NULL, recorder, &w);
    pthread_create(&pr, NULL, prober, &w);
    int64_t end = now_ns() + (int64_t)(secs * 1e9);
    while (now_ns() < end)
        sleep_ms(5);

    atomic_store(&w.phase, 1);
    end = now_ns() + (int64_t)(secs * 1e9);
    for (int k = 0; now_ns() < end; k++) {
        change(&w, k % 2 ? def : subset, k % 2 ? nd : 4, &c[1]);
        sleep_ms(5);
    }

    atomic_store(&w.phase, 2);
    end = now_ns() + (int64_t)(secs * 1e9);
    for (int k = 0; k < 10; k++) {
        /* the defaults plus two bounds never seen before: one between 1 and
         * 2.5 ms, one between 10 and 25 ms */
        double list[16];
        size_t n = 0;
        for (size_t i = 0; i < nd; i++) {
            list[n++] = def[i];
            if (def[i] == 0.001)
                list[n++] = 0.0011 + 0.0001 * k;
            if (def[i] == 0.01)
                list[n++] = 0.011 + 0.001 * k;
        }
        change(&w, list, n, &c[2]);
        sleep_ms(20);
    }
    while (now_ns() < end)
        sleep_ms(5);
    atomic_store(&w.phase, -1);
    pthread_join(th, NULL);
    pthread_join(pr, NULL);

    const char *names[3] = {"baseline", "flip", "growth"};
    printf("record latency, us (bins within 6 %%)       records      p50      p99    p99.9       max\n");
    for (int p = 0; p < 3; p++) {
        print_lat(names[p], "populated slot", &w.existing[p]);
        print_lat(names[p], "first record of a slot", &w.fresh[p]);
        print_lat(names[p], "lock probe (lm_series_get)", &w.probe[p]);
    }
    printf("\nbucket changes, lm_http_register (a flip holds the registry lock for about the\n"
           "whole call; a growth releases it while it gives every series its new cells; wall\n"
           "time includes any time the thread was descheduled, CPU time is the work itself):\n");
    for (int p = 1; p < 3; p++)
        print_calls(names[p], &c[p]);
    lm_registry_free(w.reg);
    return 0;
}
