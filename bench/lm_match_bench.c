/*
 * Route template matcher benchmark: ns per lm_matcher_match at 10, 100,
 * 1,000 and 10,000 templates of a REST-shaped API, on a mix of paths (hits
 * on literal and parameterised templates, a {name:path} catch-all, misses,
 * deep paths), and the number of heap allocations made while matching
 * (counted by this program's own malloc family, which the shared library's
 * calls resolve to).
 *
 * Every figure is the median of REPS repetitions (min and max beside it) of
 * thread CPU time over a whole loop. Only the public API through the shared
 * library is timed.
 *
 * Usage: lm_match_bench [reps]     (reps >= 5, default 7)
 * Env:   LM_BENCH_SCALE=any         1% of the loops (a quick look, or under
 *                                   callgrind to count instructions)
 */
#include "bench_clock.h"
#include "libmetrics.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------- allocation counting */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static atomic_long allocs;

void *malloc(size_t n)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }

/* ------------------------------------------------------------- timing */

#define MAX_REPS 50
#define NPATHS 4096


/* A REST-shaped API of n templates over n/6 resources (at least one):
 * /v1/<res>, /v1/<res>/me, /v1/<res>/{id}, /v1/<res>/{id}/items,
 * /v1/<res>/{id}/items/{item_id:int}, /v1/<res>/files/{file_path:path}. */
static char **make_templates(size_t n)
{
    static const char *const shapes[6] = {
        "/v1/%s",       "/v1/%s/me", "/v1/%s/{id}", "/v1/%s/{id}/items", "/v1/%s/{id}/items/{item_id:int}",
        "/v1/%s/files/{file_path:path}"};
    char **t = __libc_malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) {
        char res[32], buf[96];
        snprintf(res, sizeof res, "resource%zu", i / 6);
        snprintf(buf, sizeof buf, shapes[i % 6], res);
        t[i] = strdup(buf);
    }
    return t;
}

/* Paths of the mix, over the resources that exist (nres of them). */
static char **make_paths(size_t nres, unsigned seed)
{
    char **p = __libc_malloc(NPATHS * sizeof *p);
    for (size_t i = 0; i < NPATHS; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        size_t res = r % nres;
        char buf[256];
        switch (r % 10) {
        case 0: /* literal hit */
            snprintf(buf, sizeof buf, "/v1/resource%zu", res);
            break;
        case 1:
            snprintf(buf, sizeof buf, "/v1/resource%zu/me", res);
            break;
        case 2:
        case 3:
            snprintf(buf, sizeof buf, "/v1/resource%zu/%u", res, r % 100000);
            break;
        case 4:
            snprintf(buf, sizeof buf, "/v1/resource%zu/c-%u/items", res, r % 1000);
            break;
        case 5:
            snprintf(buf, sizeof buf, "/v1/resource%zu/%u/items/%u", res, r % 1000, r % 77);
            break;
        case 6: /* catch-all, deep */
            snprintf(buf, sizeof buf, "/v1/resource%zu/files/a/b/c/d/e/report.pdf", res);
            break;
        case 7: /* miss: unknown resource */
            snprintf(buf, sizeof buf, "/v1/nosuchresource%u/%u", r % 1000, r % 10);
            break;
        case 8: /* miss: too deep */
            snprintf(buf, sizeof buf, "/v1/resource%zu/1/items/2/x/y/z/w", res);
            break;
        default: /* miss: bad int, then too short */
            snprintf(buf, sizeof buf, r & 1 ? "/v1/resource%zu/1/items/x" : "/v2", res);
            break;
        }
        p[i] = strdup(buf);
    }
    return p;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    if (reps < 5 || reps > MAX_REPS) {
        fprintf(stderr, "usage: %s [reps 5..%d]\n", argv[0], MAX_REPS);
        return 2;
    }
    printf("route template matcher benchmark (lm_matcher_match)\n");
    printf("reproduce: cmake -S <repo> -B build/bench -DCMAKE_BUILD_TYPE=RelWithDebInfo "
           "-DLM_BUILD_TESTS=OFF && cmake --build build/bench --target lm_match_bench && "
           "build/bench/bench/lm_match_bench %d\n",
           reps);
    printf("method: median of %d repetitions [min .. max] of thread CPU time over %d paths x "
           "loops;\n        mix: 10%% literal, 10%% /me, 20%% {id}, 10%% {id}/items, 10%% "
           "{item_id:int},\n        10%% {file_path:path} (8 segments), 30%% misses\n\n",
           reps, NPATHS);
    printf("  templates  ns/match [min .. max]      hits   allocations while matching\n");
    size_t sizes[] = {10, 100, 1000, 10000};
    for (size_t si = 0; si < 4; si++) {
        size_t n = sizes[si];
        char **t = make_templates(n);
        lm_str *v = __libc_malloc(n * sizeof *v);
        for (size_t i = 0; i < n; i++)
            v[i] = (lm_str){t[i], strlen(t[i])};
        lm_error e;
        lm_matcher *m = lm_matcher_new(v, n, NULL, &e);
        if (m == NULL) {
            fprintf(stderr, "lm_matcher_new: %s\n", e.message);
            return 1;
        }
        size_t nres = (n + 5) / 6;
        char **p = make_paths(nres, 42);
        lm_str ps[NPATHS];
        for (size_t i = 0; i < NPATHS; i++)
            ps[i] = (lm_str){p[i], strlen(p[i])};
        const long loops = getenv("LM_BENCH_SCALE") ? 6 : 600;
        double samples[MAX_REPS];
        size_t hits = 0;
        long before = atomic_load(&allocs);
        for (int r = 0; r < reps; r++) {
            size_t h = 0;
            double t0 = cpu_ns();
            for (long l = 0; l < loops; l++)
                for (size_t i = 0; i < NPATHS; i++)
                    h += lm_matcher_match(m, ps[i]) != LM_MATCH_NONE;
            samples[r] = (cpu_ns() - t0) / ((double)loops * NPATHS);
            hits = h / (size_t)loops;
        }
        long during = atomic_load(&allocs) - before;
        qsort(samples, (size_t)reps, sizeof samples[0], cmp_double);
        printf("  %9zu  %6.1f [%6.1f .. %6.1f]  %4.0f%%   %ld\n", n, samples[reps / 2],
               samples[0], samples[reps - 1], 100.0 * (double)hits / NPATHS, during);
        lm_matcher_free(m);
        for (size_t i = 0; i < NPATHS; i++)
            free(p[i]);
        for (size_t i = 0; i < n; i++)
            free(t[i]);
        __libc_free(p);
        __libc_free(t);
        __libc_free(v);
    }
    return 0;
}
