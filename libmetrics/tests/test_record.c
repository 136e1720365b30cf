/* Recording through handles on one thread: counters, gauges (and their raw
 * cell), histogram buckets at and around every edge, exact 128-bit sums
 * (checked against __int128), lm_series_count for each type, and misuse
 * (NULL handles, wrong types) being harmless. */
#include "core.h"
#include "lm_test.h"

#include <stdlib.h>

static lm_str S(const char *s)
{
    return (lm_str){s, strlen(s)};
}

static void test_counter_gauge(void)
{
    lm_registry *r = lm_registry_new(NULL, NULL);
    lm_family *c = lm_family_register(r, &(lm_family_options){.type = LM_COUNTER,
                                                              .name = "c_total"}, NULL);
    lm_series *cs = lm_series_get(c, NULL, NULL);
    CHECK_EQ_U64(lm_series_count(cs), 0);
    lm_counter_add(cs, 1);
    lm_counter_add(cs, 41);
    lm_counter_add(cs, 0);
    CHECK_EQ_U64(lm_series_count(cs), 42);
    CHECK_EQ_U64(lm__cell_total(r, cs->slot), 42);
    lm_counter_add(cs, UINT64_MAX - 42);
    CHECK_EQ_U64(lm_series_count(cs), UINT64_MAX); /* the full range, no saturation games */

    lm_family *g = lm_family_register(r, &(lm_family_options){.type = LM_GAUGE, .name = "g"},
                                      NULL);
    lm_series *gs = lm_series_get(g, NULL, NULL);
    lm_gauge_add(gs, 5);
    lm_gauge_add(gs, -7);
    CHECK((int64_t)lm_series_count(gs) == -2);
    lm_gauge_set(gs, 100);
    CHECK_EQ_U64(lm_series_count(gs), 100);
    int64_t *cell = lm_gauge_cell(gs);
    CHECK(cell != NULL && ((uintptr_t)cell % 8) == 0);
    __atomic_fetch_add(cell, 3, __ATOMIC_RELAXED); /* as a host's own atomics would */
    CHECK_EQ_U64(lm_series_count(gs), 103);
    lm_gauge_set(gs, INT64_MIN);
    lm_gauge_add(gs, -1); /* wraps like any two's complement atomic, no UB */
    CHECK((int64_t)lm_series_count(gs) == INT64_MAX);

    /* wrong types and NULL do nothing */
    lm_counter_add(gs, 1);
    lm_histogram_observe(gs, 1);
    lm_gauge_add(cs, 1);
    lm_gauge_set(cs, 1);
    CHECK(lm_gauge_cell(cs) == NULL);
    CHECK_EQ_U64(lm_series_count(cs), UINT64_MAX);
    CHECK((int64_t)lm_series_count(gs) == INT64_MAX);
    lm_counter_add(NULL, 1);
    lm_gauge_add(NULL, 1);
    lm_gauge_set(NULL, 1);
    lm_histogram_observe(NULL, 1);
    CHECK(lm_gauge_cell(NULL) == NULL);
    CHECK_EQ_U64(lm_series_count(NULL), 0);

    /* the thread took exactly one exclusive shard */
    CHECK_EQ_U64(atomic_load(&r->shards_used), 1);
    CHECK(pthread_getspecific(r->key) == &r->shards[0]);
    lm_registry_free(r);
}

static void read_hist(const lm_series *s, uint64_t *b, uint64_t *count, __int128 *sum)
{
    int64_t hi;
    uint64_t lo;
    lm__histogram_read(s, b, count, &hi, &lo);
    *sum = (__int128)(((unsigned __int128)(uint64_t)hi << 64) | lo);
}

static void test_histogram(void)
{
    lm_registry *r = lm_registry_new(NULL, NULL);
    double bounds[] = {-1, 0, 0.5, 1, 2.5};
    lm_family *h = lm_family_register(
        r, &(lm_family_options){.type = LM_HISTOGRAM, .name = "h", .bounds = bounds, .nbounds = 5,
                                .unit_scale = 10, .label_names = (const char *const[]){"k"},
                                .nlabels = 1},
        NULL);
    CHECK(h != NULL);
    /* ubounds: -10, 0, 5, 10, 25 */
    lm_series *s = lm_series_get(h, (lm_str[]){S("a")}, NULL);
    struct {
        int64_t v;
        size_t bucket;
    } obs[] = {{INT64_MIN, 0}, {-11, 0}, {-10, 0}, {-9, 1}, {0, 1}, {1, 2},  {5, 2},
               {6, 3},         {10, 3},  {11, 4},  {25, 4}, {26, 5}, {INT64_MAX, 5}};
    size_t n = sizeof obs / sizeof *obs;
    uint64_t want[6] = {0};
    __int128 want_sum = 0;
    for (size_t i = 0; i < n; i++) {
        lm_histogram_observe(s, obs[i].v);
        want[obs[i].bucket]++;
        want_sum += obs[i].v;
    }
    uint64_t b[6], count;
    __int128 sum;
    read_hist(s, b, &count, &sum);
    for (int i = 0; i < 6; i++)
        CHECK_EQ_U64(b[i], want[i]);
    CHECK_EQ_U64(count, n);
    CHECK(sum == want_sum);
    CHECK_EQ_U64(lm_series_count(s), n);

    /* the 128-bit sum is exact far beyond 64 bits, both ways */
    lm_series *big = lm_series_get(h, (lm_str[]){S("big")}, NULL);
    __int128 ws = 0;
    for (int i = 0; i < 1000; i++) {
        lm_histogram_observe(big, INT64_MAX);
        ws += INT64_MAX;
    }
    read_hist(big, b, &count, &sum);
    CHECK(sum == ws);
    CHECK(sum > (__int128)UINT64_MAX);
    lm_series *neg = lm_series_get(h, (lm_str[]){S("neg")}, NULL);
    ws = 0;
    for (int i = 0; i < 1000; i++) {
        lm_histogram_observe(neg, INT64_MIN);
        lm_histogram_observe(neg, 3);
        ws += (__int128)INT64_MIN + 3;
    }
    read_hist(neg, b, &count, &sum);
    CHECK(sum == ws);
    CHECK(sum < -(__int128)UINT64_MAX);
    CHECK_EQ_U64(count, 2000);
    /* mixed signs crossing zero many times end exact */
    lm_series *mix = lm_series_get(h, (lm_str[]){S("mix")}, NULL);
    ws = 0;
    unsigned seed = 7;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        uint64_t u = ((uint64_t)seed << 32) ^ (uint64_t)(seed * 2654435761u);
        if (seed & 1)
            u = 0 - u;
        int64_t v = (int64_t)u;
        lm_histogram_observe(mix, v);
        ws += v;
    }
    read_hist(mix, b, &count, &sum);
    CHECK(sum == ws);
    uint64_t bsum = 0;
    for (int i = 0; i < 6; i++)
        bsum += b[i];
    CHECK_EQ_U64(bsum, count);

    /* the cells of neighbouring series never mix */
    read_hist(s, b, &count, &sum);
    CHECK_EQ_U64(count, n);
    CHECK(sum == want_sum);

    /* the shared shard (atomic path) sums identically */
    lm_shard *sh = &r->shared;
    lm_series *sv = lm_series_get(h, (lm_str[]){S("shared")}, NULL);
    ws = 0;
    for (int i = 0; i < 100; i++) {
        lm__histogram_add(sh, sv, INT64_MIN + i);
        lm__histogram_add(sh, sv, 7);
        ws += (__int128)INT64_MIN + i + 7;
    }
    lm_histogram_observe(sv, 26); /* plus the exclusive shard */
    ws += 26;
    read_hist(sv, b, &count, &sum);
    CHECK(sum == ws);
    CHECK_EQ_U64(count, 201);
    CHECK_EQ_U64(b[0], 100);
    CHECK_EQ_U64(b[3], 100);
    CHECK_EQ_U64(b[5], 1);
    lm_registry_free(r);
}

int main(void)
{
    test_counter_gauge();
    test_histogram();
    TEST_MAIN_END();
}
