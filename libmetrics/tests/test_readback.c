/*
 * Reading a registry back through the public API (libmetrics.h, "reading
 * it back"), the calls the status report is built on: families in order
 * and without retired ones, shapes, label names and values as exposed,
 * series with the overflow one apart, gauge and histogram values, the HTTP
 * families and routes, and the family kind. Public API only, so this links
 * the shipped shared library.
 */
#include "libmetrics.h"
#include "lm_test.h"

#include <string.h>
#include <time.h>

static bool str_is(lm_str s, const char *want)
{
    return s.ptr != NULL && s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0 &&
           s.ptr[s.len] == '\0';
}

static void test_families(void)
{
    lm_error err;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t before = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t after = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    CHECK(lm_registry_created_ns(reg) >= before && lm_registry_created_ns(reg) <= after);
    CHECK(lm_registry_families(reg, NULL, 0) == 0);

    static const double b1[] = {0.1, 1}, b2[] = {0.5, 1, 2};
    lm_family_options a = {.type = LM_COUNTER, .name = "a_total", .help = "A\x01help"};
    lm_family_options h1 = {.type = LM_HISTOGRAM, .name = "h_seconds", .bounds = b1, .nbounds = 2,
                            .unit_scale = 1e9};
    lm_family_options g = {.type = LM_GAUGE, .name = "g"};
    lm_family *fa = lm_family_register(reg, &a, &err);
    lm_family *fh = lm_family_register(reg, &h1, &err);
    lm_family *fg = lm_family_register(reg, &g, &err);
    CHECK(fa && fh && fg);

    lm_family *out[8] = {0};
    CHECK(lm_registry_families(reg, out, 8) == 3);
    CHECK(out[0] == fa && out[1] == fh && out[2] == fg && out[3] == NULL);
    memset(out, 0, sizeof out);
    CHECK(lm_registry_families(reg, out, 2) == 3); /* the count, though only 2 fit */
    CHECK(out[0] == fa && out[1] == fh && out[2] == NULL);

    /* Replacing a histogram's buckets keeps the family (its series keep
     * counting), listed once in its place, with the new buckets. */
    lm_family_options h2 = h1;
    h2.bounds = b2;
    h2.nbounds = 3;
    lm_family *fh2 = lm_family_replace(reg, &h2, &err);
    CHECK(fh2 != NULL && fh2 == fh);
    memset(out, 0, sizeof out);
    CHECK(lm_registry_families(reg, out, 8) == 3);
    CHECK(out[0] == fa && out[1] == fh2 && out[2] == fg);

    lm_family_info fi;
    lm_family_describe(fa, &fi);
    CHECK(fi.type == LM_COUNTER && fi.kind == LM_KIND_BUSINESS);
    CHECK(str_is(fi.name, "a_total"));
    CHECK(str_is(fi.help, "A\xEF\xBF\xBDhelp")); /* sanitised as exposed */
    CHECK(fi.nlabels == 0 && fi.max_series == LM_DEFAULT_MAX_SERIES && fi.nseries == 0);
    CHECK(fi.bounds == NULL && fi.nbounds == 0 && fi.folded == 0);
    lm_family_describe(fh2, &fi);
    CHECK(fi.type == LM_HISTOGRAM && fi.nbounds == 3 && fi.unit_scale == 1e9);
    CHECK(fi.bounds && fi.bounds[0] == 0.5 && fi.bounds[2] == 2);
    lm_family_describe(NULL, &fi);
    CHECK(fi.name.ptr == NULL && fi.nlabels == 0);
    lm_registry_free(reg);
}

static void test_series_and_values(void)
{
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    const char *labels[] = {"route", "op"};
    lm_family_options c = {.type = LM_COUNTER, .name = "c_total", .label_names = labels,
                           .nlabels = 2, .max_series = 2};
    lm_family *fc = lm_family_register(reg, &c, &err);
    CHECK(fc != NULL);
    if (!fc) {
        lm_registry_free(reg);
        return;
    }
    CHECK(str_is(lm_family_label_name(fc, 0), "route"));
    CHECK(str_is(lm_family_label_name(fc, 1), "op"));
    CHECK(lm_family_label_name(fc, 2).ptr == NULL);
    CHECK(lm_family_series(fc, 0) == NULL && lm_family_overflow(fc) == NULL);

    lm_str v1[] = {{"home", 4}, {"get\xFF", 4}}, v2[] = {{"api", 3}, {"x", 1}},
           v3[] = {{"new", 3}, {"y", 1}};
    lm_series *s1 = lm_series_get(fc, v1, &err), *s2 = lm_series_get(fc, v2, &err);
    lm_counter_add(s1, 5);
    CHECK(lm_family_series(fc, 0) == s1 && lm_family_series(fc, 1) == s2);
    CHECK(lm_family_series(fc, 2) == NULL && lm_family_overflow(fc) == NULL);
    CHECK(str_is(lm_series_label_value(s1, 0), "home"));
    CHECK(str_is(lm_series_label_value(s1, 1), "get\xEF\xBF\xBD"));
    CHECK(lm_series_label_value(s1, 2).ptr == NULL);
    CHECK(lm_series_count(s1) == 5);

    /* The cap is 2: a third label set folds into the overflow series. */
    lm_series *s3 = lm_series_get(fc, v3, &err);
    lm_family_info fi;
    lm_family_describe(fc, &fi);
    CHECK(fi.nseries == 2 && fi.folded == 1);
    CHECK(lm_family_overflow(fc) == s3 && lm_family_series(fc, 2) == NULL);
    CHECK(str_is(lm_series_label_value(s3, 0), "_overflow"));
    CHECK(str_is(lm_series_label_value(s3, 1), "_overflow"));

    lm_family_options g = {.type = LM_GAUGE, .name = "g"};
    lm_series *gs = lm_series_get(lm_family_register(reg, &g, &err), NULL, &err);
    lm_gauge_set(gs, -5);
    CHECK(lm_gauge_value(gs) == -5);
    CHECK(lm_gauge_value(s1) == 0 && lm_gauge_value(NULL) == 0);

    static const double b[] = {0.001, 0.01};
    lm_family_options h = {.type = LM_HISTOGRAM, .name = "h_seconds", .bounds = b, .nbounds = 2,
                           .unit_scale = 1e9};
    lm_series *hs = lm_series_get(lm_family_register(reg, &h, &err), NULL, &err);
    lm_histogram_observe(hs, 500000);   /* 0.5 ms: bucket 0 */
    lm_histogram_observe(hs, 1000000);  /* 1 ms: bucket 0 (le is inclusive) */
    lm_histogram_observe(hs, 5000000);  /* bucket 1 */
    lm_histogram_observe(hs, 20000000); /* +Inf */
    uint64_t bk[4] = {9, 9, 9, 9};
    CHECK(lm_histogram_buckets(hs, bk, 4) == 3);
    CHECK(bk[0] == 2 && bk[1] == 1 && bk[2] == 1 && bk[3] == 9);
    CHECK(bk[0] + bk[1] + bk[2] == lm_series_count(hs));
    uint64_t one[1] = {0};
    CHECK(lm_histogram_buckets(hs, one, 1) == 3 && one[0] == 2);
    CHECK(lm_histogram_buckets(hs, NULL, 0) == 3);
    CHECK(lm_histogram_buckets(s1, bk, 4) == 0 && lm_histogram_buckets(NULL, bk, 4) == 0);
    lm_registry_free(reg);
}

static void test_http(void)
{
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    CHECK(lm_http_find(reg, "") == NULL && lm_http_find(reg, NULL) == NULL);
    lm_http_options o = {.prefix = "shop_"};
    lm_http *shop = lm_http_register(reg, &o, &err);
    lm_http *plain = lm_http_register(reg, NULL, &err);
    CHECK(shop && plain && shop != plain);
    CHECK(lm_http_find(reg, "shop_") == shop);
    CHECK(lm_http_find(reg, "") == plain && lm_http_find(reg, NULL) == plain);
    CHECK(lm_http_find(reg, "other_") == NULL);

    static const char *const names[] = {"shop_http_requests_total",
                                        "shop_http_request_duration_seconds",
                                        "shop_http_response_size_bytes_total",
                                        "shop_http_requests_in_progress",
                                        "shop_http_request_size_bytes_total"};
    static const lm_http_family which[] = {LM_HTTP_REQUESTS, LM_HTTP_DURATION, LM_HTTP_BYTES,
                                           LM_HTTP_INFLIGHT, LM_HTTP_REQUEST_BYTES};
    for (size_t i = 0; i < 5; i++) {
        lm_family_info fi;
        lm_family_describe(lm_http_family_get(shop, which[i]), &fi);
        CHECK(str_is(fi.name, names[i]));
        CHECK(fi.kind == LM_KIND_HTTP);
    }
    CHECK(lm_http_family_get(shop, (lm_http_family)9) == NULL);
    CHECK(lm_http_family_get(NULL, LM_HTTP_REQUESTS) == NULL);

    CHECK(lm_http_route_at(shop, 0) == NULL);
    lm_route *r1 = lm_http_route(shop, (lm_str){"home", 4}, &err);
    lm_route *r2 = lm_http_route(shop, (lm_str){"a\nb", 3}, &err);
    CHECK(lm_http_route_at(shop, 0) == r1 && lm_http_route_at(shop, 1) == r2);
    CHECK(lm_http_route_at(shop, 2) == NULL);
    CHECK(str_is(lm_route_name(r1), "home"));
    CHECK(str_is(lm_route_name(r2), "a\nb"));
    CHECK(lm_route_name(NULL).ptr == NULL);

    /* New bounds change the duration histogram's exposed buckets in place. */
    lm_family *d1 = lm_http_family_get(shop, LM_HTTP_DURATION);
    static const double b[] = {0.5, 1};
    o.bounds = b;
    o.nbounds = 2;
    CHECK(lm_http_register(reg, &o, &err) == shop);
    lm_family *d2 = lm_http_family_get(shop, LM_HTTP_DURATION);
    lm_family_info fi;
    lm_family_describe(d2, &fi);
    CHECK(d2 == d1 && fi.nbounds == 2 && fi.bounds[0] == 0.5);
    lm_registry_free(reg);
}

/* The kind is part of a family's shape. */
static void test_kind(void)
{
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    lm_family_options st = {.type = LM_COUNTER, .name = "db_queries_total", .help = "q",
                            .kind = LM_KIND_SERVER_TIMING};
    lm_family *f = lm_family_register(reg, &st, &err);
    CHECK(f != NULL);
    CHECK(lm_family_register(reg, &st, &err) == f); /* same shape: the same family */
    lm_family_options biz = st;
    biz.kind = LM_KIND_BUSINESS;
    CHECK(lm_family_register(reg, &biz, &err) == NULL);
    CHECK(err.code == LM_ERR_EXISTS && strstr(err.message, "kind") != NULL);
    lm_family *f2 = lm_family_replace(reg, &biz, &err);
    lm_family_info fi;
    lm_family_describe(f2, &fi);
    /* The same series under another kind: the family stays (its counts must
     * not be swapped for another family's), its kind changes. */
    CHECK(f2 != NULL && f2 == f && fi.kind == LM_KIND_BUSINESS);

    lm_family_options rt = {.type = LM_COUNTER, .name = "scrape_errors_total", .help = "e",
                            .kind = LM_KIND_RUNTIME};
    lm_family *fr = lm_family_register(reg, &rt, &err);
    CHECK(fr != NULL);
    lm_family_describe(fr, &fi);
    CHECK(fi.kind == LM_KIND_RUNTIME);
    rt.kind = LM_KIND_BUSINESS;
    CHECK(lm_family_register(reg, &rt, &err) == NULL);
    CHECK(err.code == LM_ERR_EXISTS && strstr(err.message, "LM_KIND_RUNTIME") != NULL);
    lm_registry_free(reg);
}

int main(void)
{
    test_families();
    test_series_and_values();
    test_http();
    test_kind();
    TEST_MAIN_END();
}
