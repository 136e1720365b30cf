/* Registry options, family registration (validation tables with the exact
 * error code and the offending value named in the message), bucket scaling
 * and le strings, re-registration and replacement, series resolution,
 * cardinality folding, the growing series index and capacity limits. */
#include "core.h"
#include "lm_test.h"
#include "lm_capture.h"

#include <math.h>
#include <stdlib.h>

static lm_str S(const char *s)
{
    return (lm_str){s, strlen(s)};
}

static const char *const L1[] = {"a"};
static const char *const L2[] = {"a", "b"};

static lm_family *reg_counter(lm_registry *r, const char *name, size_t nl, size_t max_series,
                              lm_error *e)
{
    lm_family_options o = {.type = LM_COUNTER, .name = name, .help = "h",
                           .label_names = nl == 1 ? L1 : L2, .nlabels = nl,
                           .max_series = max_series};
    return lm_family_register(r, &o, e);
}

static void test_registry(void)
{
    lm_error e = {0};
    lm_registry *r = lm_registry_new(NULL, &e);
    CHECK(r != NULL);
    CHECK_EQ_U64(r->opts.max_families, 256);
    CHECK_EQ_U64(r->opts.slot_capacity, (size_t)1 << 21);
    CHECK_EQ_U64(r->opts.max_shards, 64);
    CHECK_EQ_U64(r->opts.max_label_value_len, 256);
    CHECK(r->created_mono_ns > 0);
    lm_registry_free(r);
    lm_registry_free(NULL);

    lm_registry_options o = {.max_families = 3, .slot_capacity = 100, .max_shards = 2,
                             .max_label_value_len = 5};
    r = lm_registry_new(&o, &e);
    CHECK(r != NULL);
    CHECK_EQ_U64(r->opts.max_families, 3);
    CHECK_EQ_U64(r->opts.slot_capacity, 100);
    CHECK_EQ_U64(r->opts.max_shards, 2);
    lm_registry_free(r);

    o = (lm_registry_options){.slot_capacity = (size_t)UINT32_MAX + 1};
    CHECK(lm_registry_new(&o, &e) == NULL);
    CHECK(e.code == LM_ERR_INVALID);
    CHECK(strstr(e.message, "4294967296") != NULL);
    o = (lm_registry_options){.max_shards = 100000};
    CHECK(lm_registry_new(&o, &e) == NULL);
    CHECK(e.code == LM_ERR_INVALID && strstr(e.message, "100000") != NULL);
    CHECK(lm_registry_new(&o, NULL) == NULL); /* NULL err is fine */

    size_t n = 0;
    const double *b = lm_default_latency_bounds(&n);
    CHECK_EQ_U64(n, 14);
    CHECK(b[0] == 0.001 && b[n - 1] == 10);
    for (size_t i = 1; i < n; i++)
        CHECK(b[i] > b[i - 1]);
    CHECK(lm_default_latency_bounds(NULL) == b);
}

/* Each row: options that must fail with code, and a substring of the message. */
static void expect_fail(lm_registry *r, const lm_family_options *o, lm_status code,
                        const char *needle, int line)
{
    lm_error e = {0};
    lm_family *f = lm_family_register(r, o, &e);
    lm_test_checks++;
    if (f != NULL || e.code != code || strstr(e.message, needle) == NULL) {
        lm_test_failures++;
        fprintf(stderr, "test_family.c:%d: want code %d with \"%s\"; got %p code %d: %s\n", line,
                code, needle, (void *)f, e.code, e.message);
    }
}
#define FAIL(o, code, needle) expect_fail(r, o, code, needle, __LINE__)

static void test_validation(void)
{
    lm_registry *r = lm_registry_new(NULL, NULL);
    lm_error e;
    static const char *const le[] = {"le"};
    static const char *const dunder[] = {"__x"};
    static const char *const dup[] = {"a", "b", "a"};
    static const char *const badl[] = {"ok", "9bad"};
    static const char *const nulll[] = {"ok", NULL};
    static const char *const many[17] = {"a", "b", "c", "d", "e", "f", "g", "h", "i",
                                         "j", "k", "l", "m", "n", "o", "p", "q"};

    FAIL(NULL, LM_ERR_INVALID, "options is NULL");
    CHECK(lm_family_register(NULL, &(lm_family_options){.type = LM_GAUGE, .name = "g"}, &e) ==
          NULL);
    CHECK(e.code == LM_ERR_INVALID && strstr(e.message, "registry is NULL"));
    FAIL(&((lm_family_options){.type = 0, .name = "x"}), LM_ERR_INVALID, "type 0");
    FAIL(&((lm_family_options){.type = 7, .name = "x"}), LM_ERR_INVALID, "type 7");
    FAIL(&((lm_family_options){.type = LM_GAUGE}), LM_ERR_INVALID, "metric name is NULL");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "9x"}), LM_ERR_INVALID,
         "metric name \"9x\" must match [a-zA-Z_:][a-zA-Z0-9_:]*");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = ""}), LM_ERR_INVALID, "\"\" must match");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "a-b"}), LM_ERR_INVALID, "\"a-b\"");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "a\nb"}), LM_ERR_INVALID,
         "\"a\\x0ab\"");
    FAIL(&((lm_family_options){.type = LM_COUNTER, .name = "requests"}), LM_ERR_INVALID,
         "counter name \"requests\" must end in \"_total\"");
    FAIL(&((lm_family_options){.type = LM_COUNTER, .name = "_total"}), LM_ERR_INVALID,
         "non-empty base");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "g", .label_names = many, .nlabels = 17}),
         LM_ERR_INVALID, "17 labels; at most 16");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "g", .nlabels = 2}), LM_ERR_INVALID,
         "label_names is NULL but nlabels is 2");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "g", .label_names = nulll, .nlabels = 2}),
         LM_ERR_INVALID, "label name 1 is NULL");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "g", .label_names = badl, .nlabels = 2}),
         LM_ERR_INVALID, "label name \"9bad\" of family \"g\" must match");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "g", .label_names = dunder, .nlabels = 1}),
         LM_ERR_INVALID, "\"__x\" of family \"g\" must not start with \"__\"");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "g", .label_names = dup, .nlabels = 3}),
         LM_ERR_INVALID, "label name \"a\" appears twice");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h", .label_names = le,
                               .nlabels = 1}),
         LM_ERR_INVALID, "\"le\" is reserved");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "g", .max_series = (size_t)1 << 40}),
         LM_ERR_INVALID, "max_series 1099511627776 exceeds");

    /* "le" is fine outside histograms, 16 labels are fine */
    lm_family_options ok = {.type = LM_GAUGE, .name = "g_le", .label_names = le, .nlabels = 1};
    CHECK(lm_family_register(r, &ok, NULL) != NULL);
    ok = (lm_family_options){.type = LM_GAUGE, .name = "g16", .label_names = many, .nlabels = 16};
    CHECK(lm_family_register(r, &ok, NULL) != NULL);

    /* bounds */
    double nan_b[] = {0.1, NAN};
    double inf_b[] = {0.1, INFINITY};
    double dec_b[] = {0.1, 0.5, 0.2};
    double eq_b[] = {1, 1};
    double collide[] = {0.1, 0.1000000001};
    double huge[] = {1e300};
    double b65[65];
    for (int i = 0; i < 65; i++)
        b65[i] = i + 1;
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h", .bounds = nan_b, .nbounds = 2}),
         LM_ERR_INVALID, "bound 1 (nan) is not finite");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h", .bounds = inf_b, .nbounds = 2}),
         LM_ERR_INVALID, "bound 1 (inf) is not finite; +Inf is implicit");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h", .bounds = dec_b, .nbounds = 3,
                               .unit_scale = 1000}),
         LM_ERR_INVALID, "strictly increasing, but bound 2 (0.20000000000000001) follows 0.5");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h", .bounds = eq_b, .nbounds = 2}),
         LM_ERR_INVALID, "strictly increasing");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h", .bounds = b65, .nbounds = 65}),
         LM_ERR_INVALID, "65 bounds; at most 64");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h", .nbounds = 3}), LM_ERR_INVALID,
         "bounds is NULL but nbounds is 3");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h", .bounds = collide,
                               .nbounds = 2}),
         LM_ERR_INVALID, "collide after scaling by unit_scale 1 (both 0 recorded units); observations are integers");
    /* the default bounds are seconds: unit_scale 1 (integer seconds) collapses them */
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h"}), LM_ERR_INVALID,
         "bounds 0.001 and 0.0025000000000000001 collide");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h", .bounds = huge, .nbounds = 1,
                               .unit_scale = 1e9}),
         LM_ERR_INVALID, "does not fit a 64-bit integer");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h", .unit_scale = -1}),
         LM_ERR_INVALID, "unit_scale -1 must be finite and greater than 0");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h", .unit_scale = NAN}),
         LM_ERR_INVALID, "unit_scale nan");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "h", .unit_scale = INFINITY}),
         LM_ERR_INVALID, "unit_scale inf");
    FAIL(&((lm_family_options){.type = LM_COUNTER, .name = "c_total", .bounds = huge,
                               .nbounds = 1}),
         LM_ERR_INVALID, "apply to histograms only");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "g2", .unit_scale = 1}),
         LM_ERR_INVALID, "apply to histograms only");

    /* names that would expose the same sample or family name */
    lm_family_options h = {.type = LM_HISTOGRAM, .name = "lat", .unit_scale = 1e9};
    CHECK(lm_family_register(r, &h, NULL) != NULL);
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "lat_count"}), LM_ERR_EXISTS,
         "gauge \"lat_count\" would expose \"lat_count\", which histogram \"lat\"");
    FAIL(&((lm_family_options){.type = LM_COUNTER, .name = "lat_total"}), LM_ERR_EXISTS,
         "would expose \"lat\"");
    lm_family_options c = {.type = LM_COUNTER, .name = "jobs_total"};
    CHECK(lm_family_register(r, &c, NULL) != NULL);
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "jobs"}), LM_ERR_EXISTS,
         "which counter \"jobs_total\"");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "jobs_total", .unit_scale = 1e3}),
         LM_ERR_EXISTS, "it is a counter, this call asks for a histogram");
    FAIL(&((lm_family_options){.type = LM_HISTOGRAM, .name = "jobs", .unit_scale = 1e3}),
         LM_ERR_EXISTS, "histogram \"jobs\" would expose \"jobs\", which counter");
    FAIL(&((lm_family_options){.type = LM_COUNTER, .name = "libmetrics_series_folded_total"}),
         LM_ERR_EXISTS, "built into the exposition");
    FAIL(&((lm_family_options){.type = LM_GAUGE, .name = "libmetrics_series_folded"}),
         LM_ERR_EXISTS, "built into the exposition");

    /* a help with bad bytes is sanitised, not rejected */
    lm_family_options hb = {.type = LM_GAUGE, .name = "helpy", .help = "a\x01\xff"};
    lm_family *f = lm_family_register(r, &hb, NULL);
    CHECK(f != NULL);
    if (f)
        CHECK_STR(lm__family_help(f)->ptr, "a\xEF\xBF\xBD\xEF\xBF\xBD");
    lm_family_options nh = {.type = LM_GAUGE, .name = "nohelp"};
    f = lm_family_register(r, &nh, NULL);
    CHECK(f != NULL && lm__family_help(f)->len == 0);
    lm_registry_free(r);
}

static void test_buckets(void)
{
    lm_registry *r = lm_registry_new(NULL, NULL);
    lm_family_options o = {.type = LM_HISTOGRAM, .name = "d", .unit_scale = 1e9};
    lm_family *f = lm_family_register(r, &o, NULL);
    CHECK(f != NULL);
    static const char *const want_le[14] = {"0.001", "0.0025", "0.005", "0.01", "0.025",
                                            "0.05",  "0.1",    "0.25",  "0.5",  "0.75",
                                            "1.0",   "2.5",    "5.0",   "10.0"};
    static const int64_t want_ub[14] = {1000000,   2500000,   5000000,    10000000,  25000000,
                                        50000000,  100000000, 250000000,  500000000, 750000000,
                                        1000000000, 2500000000, 5000000000, 10000000000};
    CHECK_EQ_U64(lm__family_proj(f)->n, 14);
    CHECK_EQ_U64(f->width, 17);
    for (int i = 0; i < 14; i++) {
        CHECK_STR(lm__family_proj(f)->le[i], want_le[i]);
        CHECK_EQ_U64(lm__family_proj(f)->ub[i], want_ub[i]);
    }
    CHECK(f->unit_scale == 1e9);

    /* the decimal the user meant survives binary rounding (0.29*100 is
     * 28.999999999999996), true fractions are floored, negatives work */
    double b[] = {-2.5, -1, 0, 0.29, 1.5, 7};
    o = (lm_family_options){.type = LM_HISTOGRAM, .name = "s", .bounds = b, .nbounds = 6,
                            .unit_scale = 100};
    f = lm_family_register(r, &o, NULL);
    CHECK(f != NULL);
    int64_t ub[] = {-250, -100, 0, 29, 150, 700};
    for (int i = 0; i < 6; i++)
        CHECK_EQ_U64(lm__family_proj(f)->ub[i], ub[i]);
    CHECK_STR(lm__family_proj(f)->le[0], "-2.5");
    CHECK_STR(lm__family_proj(f)->le[2], "0.0");
    CHECK_STR(lm__family_proj(f)->le[3], "0.29");
    double frac[] = {0.5, 1.25, 2.75};
    o = (lm_family_options){.type = LM_HISTOGRAM, .name = "fr", .bounds = frac, .nbounds = 3};
    f = lm_family_register(r, &o, NULL);
    CHECK(f != NULL && lm__family_proj(f)->ub[0] == 0 && lm__family_proj(f)->ub[1] == 1 && lm__family_proj(f)->ub[2] == 2);
    CHECK(f->unit_scale == 1);

    /* the bucket search agrees with a linear scan everywhere near the edges */
    int bad = 0;
    for (int64_t v = -300; v <= 800; v++) {
        const lm_family *fs = r->families[1];
        size_t lin = 0;
        while (lin < lm__family_proj(fs)->n && v > lm__family_proj(fs)->ub[lin])
            lin++;
        if (lm__bucket_index(lm__family_proj(fs)->ub, lm__family_proj(fs)->n, v) != lin)
            bad++;
    }
    CHECK_EQ_U64(bad, 0);
    for (size_t n = 1; n <= 64; n++) { /* every size, every boundary */
        int64_t u[64];
        for (size_t i = 0; i < n; i++)
            u[i] = (int64_t)i * 10;
        for (int64_t v = -5; v <= (int64_t)n * 10 + 5; v++) {
            size_t lin = 0;
            while (lin < n && v > u[lin])
                lin++;
            if (lm__bucket_index(u, n, v) != lin)
                bad++;
        }
    }
    CHECK_EQ_U64(bad, 0);
    int64_t ext[] = {INT64_MIN, 0, INT64_MAX - 1};
    CHECK_EQ_U64(lm__bucket_index(ext, 3, INT64_MIN), 0);
    CHECK_EQ_U64(lm__bucket_index(ext, 3, INT64_MAX), 3);
    lm_registry_free(r);
}

static void test_reregister(void)
{
    lm_registry *r = lm_registry_new(NULL, NULL);
    lm_error e = {0};
    double b1[] = {0.1, 1}, b2[] = {0.1, 2};
    lm_family_options h = {.type = LM_HISTOGRAM, .name = "lat", .help = "x", .label_names = L1,
                           .nlabels = 1, .bounds = b1, .nbounds = 2};
    lm_family *f = lm_family_register(r, &h, &e);
    CHECK(f != NULL);
    lm_family_options same = h;
    double b1copy[] = {0.1, 1};
    same.bounds = b1copy; /* equal values, other array */
    CHECK(lm_family_register(r, &same, &e) == f);
    CHECK_EQ_U64(atomic_load(&r->nfamilies), 1);

    /* every kind of difference is refused and named */
    struct {
        lm_family_options o;
        const char *needle;
    } diffs[] = {
        {{.type = LM_GAUGE, .name = "lat", .help = "x", .label_names = L1, .nlabels = 1},
         "it is a histogram, this call asks for a gauge"},
        {{.type = LM_HISTOGRAM, .name = "lat", .help = "y", .label_names = L1, .nlabels = 1,
          .bounds = b1, .nbounds = 2},
         "help text differs"},
        {{.type = LM_HISTOGRAM, .name = "lat", .help = "x", .label_names = L2, .nlabels = 2,
          .bounds = b1, .nbounds = 2},
         "it has 1 labels, this call asks for 2"},
        {{.type = LM_HISTOGRAM, .name = "lat", .help = "x", .label_names = (const char *const[]){"z"},
          .nlabels = 1, .bounds = b1, .nbounds = 2},
         "its label 0 is \"a\", this call asks for \"z\""},
        {{.type = LM_HISTOGRAM, .name = "lat", .help = "x", .label_names = L1, .nlabels = 1,
          .max_series = 5, .bounds = b1, .nbounds = 2},
         "max_series is 2000, this call asks for 5"},
        {{.type = LM_HISTOGRAM, .name = "lat", .help = "x", .label_names = L1, .nlabels = 1,
          .bounds = b2, .nbounds = 2},
         "its bound 1 is 1, this call asks for 2"},
        {{.type = LM_HISTOGRAM, .name = "lat", .help = "x", .label_names = L1, .nlabels = 1,
          .unit_scale = 1000},
         "it has 2 bucket bounds, this call asks for 14"},
        {{.type = LM_HISTOGRAM, .name = "lat", .help = "x", .label_names = L1, .nlabels = 1,
          .bounds = b1, .nbounds = 2, .unit_scale = 1000},
         "its unit_scale is 1, this call asks for 1000"},
    };
    for (size_t i = 0; i < sizeof diffs / sizeof *diffs; i++) {
        e = (lm_error){0};
        CHECK(lm_family_register(r, &diffs[i].o, &e) == NULL);
        CHECK(e.code == LM_ERR_EXISTS);
        if (!strstr(e.message, diffs[i].needle) ||
            !strstr(e.message, "family \"lat\" is already registered with another shape")) {
            lm_test_failures++;
            fprintf(stderr, "diff %zu: message \"%s\" lacks \"%s\"\n", i, e.message,
                    diffs[i].needle);
        }
    }
    CHECK_EQ_U64(atomic_load(&r->nfamilies), 1);

    /* replace with other buckets: the same family in place, its series
     * and handles the same, still counting */
    lm_series *old_s = lm_series_get(f, (lm_str[]){S("x")}, NULL);
    lm_histogram_observe(old_s, 1);
    lm_family_options h2 = h;
    h2.bounds = b2;
    lm_family *g = lm_family_replace(r, &h2, &e);
    CHECK(g == f && !atomic_load(&f->retired));
    CHECK_EQ_U64(atomic_load(&r->nfamilies), 1);
    CHECK(lm__family_proj(f)->n == 2 && lm__family_proj(f)->bounds[1] == 2);
    lm_histogram_observe(old_s, 1);
    CHECK_EQ_U64(lm_series_count(old_s), 2);
    CHECK(lm_series_get(f, (lm_str[]){S("x")}, NULL) == old_s);
    /* identical to what it exposes now: returned as is, by both calls */
    CHECK(lm_family_replace(r, &h2, &e) == g);
    CHECK(lm_family_register(r, &h2, &e) == g);
    /* the old buckets are now "another shape" to lm_family_register */
    CHECK(lm_family_register(r, &h, &e) == NULL && e.code == LM_ERR_EXISTS);
    /* the help changes in place as well */
    lm_family_options h3 = h2;
    h3.help = "new help";
    CHECK(lm_family_replace(r, &h3, &e) == f);
    CHECK_STR(lm__family_help(f)->ptr, "new help");
    CHECK(lm_family_register(r, &h3, &e) == f);
    for (int i = 0; i < 10; i++) /* flipping help texts allocates nothing more */
        CHECK(lm_family_replace(r, i % 2 ? &h3 : &h2, &e) == f);
    CHECK(f->helps && f->helps->next && !f->helps->next->next);
    /* the same labels with another cap or unit: refused, nothing changes */
    lm_family_options h4 = h3;
    h4.unit_scale = 1000;
    CHECK(lm_family_replace(r, &h4, &e) == NULL && e.code == LM_ERR_EXISTS);
    CHECK(strstr(e.message, "its unit_scale is 1, this call asks for 1000") &&
          strstr(e.message, "help text and buckets only"));
    h4 = h3;
    h4.max_series = 7;
    CHECK(lm_family_replace(r, &h4, &e) == NULL && e.code == LM_ERR_EXISTS);
    CHECK(!atomic_load(&f->retired) && lm__family_proj(f)->bounds[1] == 2);
    /* replace with an invalid shape fails and changes nothing */
    lm_family_options bad = h3;
    bad.unit_scale = -5;
    CHECK(lm_family_replace(r, &bad, &e) == NULL && e.code == LM_ERR_INVALID);
    CHECK(!atomic_load(&g->retired));
    /* replace of a new name is a plain registration */
    lm_family_options n = {.type = LM_GAUGE, .name = "fresh"};
    CHECK(lm_family_replace(r, &n, &e) != NULL);
    /* replace across types retires (the name is what is replaced)... */
    lm_family_options as_gauge = {.type = LM_GAUGE, .name = "lat"};
    lm_family *k = lm_family_replace(r, &as_gauge, &e);
    CHECK(k != NULL && k->type == LM_GAUGE && atomic_load(&g->retired));
    /* ...and going back revives the histogram, which exposed nothing and
     * was fed by nothing meanwhile, with the buckets and help asked for */
    CHECK(lm_family_replace(r, &h, &e) == f && atomic_load(&k->retired));
    CHECK(lm__family_proj(f)->bounds[1] == 1 && strcmp(lm__family_help(f)->ptr, "x") == 0);
    CHECK_EQ_U64(lm_series_count(old_s), 2);
    CHECK(lm_family_replace(NULL, &n, &e) == NULL && e.code == LM_ERR_INVALID);
    lm_registry_free(r);
}

static void test_series(void)
{
    lm_registry_options ro = {.max_label_value_len = 8};
    lm_registry *r = lm_registry_new(&ro, NULL);
    lm_error e = {0};
    lm_family *f = reg_counter(r, "c_total", 2, 100, &e);
    CHECK(f != NULL);

    lm_series *a = lm_series_get(f, (lm_str[]){S("x"), S("y")}, &e);
    lm_series *b = lm_series_get(f, (lm_str[]){S("x"), S("y")}, &e);
    lm_series *c = lm_series_get(f, (lm_str[]){S("xy"), S("")}, &e);
    lm_series *d = lm_series_get(f, (lm_str[]){S("x"), S("y\xff")}, &e);
    lm_series *d2 = lm_series_get(f, (lm_str[]){S("x"), S("y\xfe")}, &e); /* same once sanitised */
    lm_series *t1 = lm_series_get(f, (lm_str[]){S("abcdefgh_1"), S("")}, &e);
    lm_series *t2 = lm_series_get(f, (lm_str[]){S("abcdefgh_2"), S("")}, &e); /* cut to 8 */
    CHECK(a != NULL && a == b);
    CHECK(c != NULL && c != a);
    CHECK(d != NULL && d != a && d == d2);
    CHECK(t1 != NULL && t1 == t2);
    CHECK_EQ_U64(t1->values[0].len, 8);
    CHECK_STR(d->values[1].ptr, "y\xEF\xBF\xBD");
    CHECK_EQ_U64(atomic_load(&f->nseries), 4);
    CHECK(f->series[0] == a && f->series[1] == c && f->series[2] == d && f->series[3] == t1);
    CHECK(a->slot != c->slot);
    CHECK(!a->is_overflow);

    /* bad arguments */
    CHECK(lm_series_get(NULL, (lm_str[]){S("x")}, &e) == NULL && e.code == LM_ERR_INVALID);
    CHECK(lm_series_get(f, NULL, &e) == NULL && e.code == LM_ERR_INVALID);
    CHECK(strstr(e.message, "has 2 labels but label_values is NULL"));
    CHECK(lm_series_get(f, (lm_str[]){S("x"), {NULL, 4}}, &e) == NULL);
    CHECK(e.code == LM_ERR_INVALID && strstr(e.message, "label value 1 has a NULL pointer"));
    CHECK(lm_series_get(f, (lm_str[]){S("x"), {NULL, 0}}, &e) != NULL); /* empty is fine */

    /* no labels: one series, values may be NULL */
    lm_family_options go = {.type = LM_GAUGE, .name = "up"};
    lm_family *g = lm_family_register(r, &go, &e);
    lm_series *g1 = lm_series_get(g, NULL, &e);
    CHECK(g1 != NULL && g1 == lm_series_get(g, NULL, &e));
    CHECK(((uintptr_t)&g1->gauge % LM_CACHELINE) == 0);
    lm_registry_free(r);
}

static void test_folding(void)
{
    lm_registry *r = lm_registry_new(NULL, NULL);
    lm_error e = {0};
    lm_family *f = reg_counter(r, "req_total", 1, 3, &e);
    CHECK(f != NULL);
    CHECK(atomic_load(&f->overflow) == NULL); /* not exposed before the first fold */
    CHECK(f->overflow_spare != NULL);
    lm_series *s[10];
    uint64_t total = 0;
    for (int i = 0; i < 10; i++) {
        char v[8];
        snprintf(v, sizeof v, "v%d", i);
        s[i] = lm_series_get(f, (lm_str[]){S(v)}, &e);
        CHECK(s[i] != NULL);
        lm_counter_add(s[i], (uint64_t)i + 1);
        total += (uint64_t)i + 1;
    }
    CHECK_EQ_U64(atomic_load(&f->nseries), 3);
    CHECK_EQ_U64(atomic_load(&f->folded), 7);
    lm_series *ov = atomic_load(&f->overflow);
    CHECK(ov != NULL && ov->is_overflow);
    CHECK_STR(ov->values[0].ptr, "_overflow");
    for (int i = 3; i < 10; i++)
        CHECK(s[i] == ov);
    for (int i = 0; i < 3; i++)
        CHECK(s[i] != ov && s[i] == f->series[i]);
    /* nothing lost: the series plus overflow add up to every add */
    uint64_t sum = lm_series_count(ov);
    for (size_t i = 0; i < atomic_load(&f->nseries); i++)
        sum += lm_series_count(f->series[i]);
    CHECK_EQ_U64(sum, total);
    CHECK_EQ_U64(lm_series_count(ov), 4 + 5 + 6 + 7 + 8 + 9 + 10);
    /* existing label sets still resolve to their series when full */
    CHECK(lm_series_get(f, (lm_str[]){S("v1")}, &e) == s[1]);
    CHECK_EQ_U64(atomic_load(&f->folded), 7);
    /* each folded lookup counts */
    CHECK(lm_series_get(f, (lm_str[]){S("v9")}, &e) == ov);
    CHECK_EQ_U64(atomic_load(&f->folded), 8);

    /* a label set spelling the overflow's own values is the overflow series,
     * never a duplicate of it */
    lm_family *g = reg_counter(r, "g_total", 2, 10, &e);
    lm_series *o2 = lm_series_get(g, (lm_str[]){S("_overflow"), S("_overflow")}, &e);
    CHECK(o2 != NULL && o2->is_overflow && o2 == atomic_load(&g->overflow));
    CHECK_EQ_U64(atomic_load(&g->nseries), 0);
    CHECK_EQ_U64(atomic_load(&g->folded), 0);
    CHECK(lm_series_get(g, (lm_str[]){S("_overflow"), S("x")}, &e) != o2);
    lm_registry_free(r);
}

/* The series index starts at 8 slots and doubles as series are created:
 * across every growth step each label set keeps resolving to the series it
 * first got, the index never exceeds what sizing for the cap up front gave,
 * and at the cap new label sets fold as before. */
static void test_index_growth(void)
{
    const size_t cap = getenv("LM_TEST_SMALL") ? 200 : 1000;
    lm_registry *r = lm_registry_new(NULL, NULL);
    lm_error e = {0};
    lm_family *f = reg_counter(r, "grow_total", 2, cap, &e);
    CHECK(f != NULL);
    CHECK_EQ_U64(f->index_mask + 1, 8);
    lm_series **made = calloc(cap, sizeof *made);
    size_t grown = 0, last_size = f->index_mask + 1;
    for (size_t i = 0; i < cap; i++) {
        char a[24], b[24];
        snprintf(a, sizeof a, "route-%zu", i);
        snprintf(b, sizeof b, "%zu", i % 7);
        made[i] = lm_series_get(f, (lm_str[]){S(a), S(b)}, &e);
        CHECK(made[i] != NULL && !made[i]->is_overflow);
        lm_counter_add(made[i], i + 1);
        size_t size = f->index_mask + 1;
        CHECK(size >= 2 * (i + 1)); /* load factor stays at most 1/2 */
        if (size != last_size) {
            grown++;
            last_size = size;
            for (size_t k = 0; k <= i; k++) { /* after each rehash, all still found */
                snprintf(a, sizeof a, "route-%zu", k);
                snprintf(b, sizeof b, "%zu", k % 7);
                CHECK(lm_series_get(f, (lm_str[]){S(a), S(b)}, &e) == made[k]);
            }
        }
    }
    CHECK(grown >= 5);
    size_t upfront = 8;
    while (upfront < 2 * cap)
        upfront <<= 1;
    CHECK(f->index_mask + 1 <= upfront);
    CHECK_EQ_U64(atomic_load(&f->nseries), cap);
    for (size_t k = 0; k < cap; k++) {
        char a[24], b[24];
        snprintf(a, sizeof a, "route-%zu", k);
        snprintf(b, sizeof b, "%zu", k % 7);
        CHECK(lm_series_get(f, (lm_str[]){S(a), S(b)}, &e) == made[k]);
        CHECK(f->series[k] == made[k]);
        CHECK_EQ_U64(lm_series_count(made[k]), k + 1);
    }
    /* at the cap: a new label set folds, known ones still resolve */
    CHECK_EQ_U64(atomic_load(&f->folded), 0);
    lm_series *ov = lm_series_get(f, (lm_str[]){S("route-new"), S("0")}, &e);
    CHECK(ov != NULL && ov->is_overflow && ov == atomic_load(&f->overflow));
    CHECK_EQ_U64(atomic_load(&f->folded), 1);
    CHECK_EQ_U64(atomic_load(&f->nseries), cap);
    CHECK(lm_series_get(f, (lm_str[]){S("route-0"), S("0")}, &e) == made[0]);
    CHECK_EQ_U64(atomic_load(&f->folded), 1);

    /* a family with a large cap and few series keeps a small index */
    lm_family *g = reg_counter(r, "few_total", 1, 100000, &e);
    CHECK(g != NULL);
    for (int i = 0; i < 3; i++) {
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        CHECK(lm_series_get(g, (lm_str[]){S(v)}, &e) != NULL);
    }
    CHECK_EQ_U64(g->index_mask + 1, 8);
    free(made);
    lm_registry_free(r);
}

static void test_limits(void)
{
    lm_error e = {0};
    /* families */
    lm_registry_options o = {.max_families = 2};
    lm_registry *r = lm_registry_new(&o, NULL);
    CHECK(lm_family_register(r, &(lm_family_options){.type = LM_GAUGE, .name = "a"}, &e));
    CHECK(lm_family_register(r, &(lm_family_options){.type = LM_GAUGE, .name = "b"}, &e));
    CHECK(lm_family_register(r, &(lm_family_options){.type = LM_GAUGE, .name = "c"}, &e) == NULL);
    CHECK(e.code == LM_ERR_LIMIT && strstr(e.message, "\"c\"") && strstr(e.message, "(2)"));
    /* re-registering an existing one still works when full */
    CHECK(lm_family_register(r, &(lm_family_options){.type = LM_GAUGE, .name = "a"}, &e));
    lm_registry_free(r);

    /* slots: 10 cells; a counter family reserves 1 for its overflow */
    o = (lm_registry_options){.slot_capacity = 10};
    r = lm_registry_new(&o, NULL);
    lm_family *f = reg_counter(r, "c_total", 1, 100, &e);
    CHECK(f != NULL);
    int made = 0;
    lm_series *last = NULL;
    for (int i = 0; i < 20; i++) {
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        lm_series *s = lm_series_get(f, (lm_str[]){S(v)}, &e);
        if (s == NULL)
            break;
        last = s;
        made++;
    }
    CHECK_EQ_U64(made, 9);
    CHECK(e.code == LM_ERR_LIMIT && strstr(e.message, "slot_capacity (10 cells)"));
    lm_counter_add(last, 5);
    CHECK_EQ_U64(lm_series_count(last), 5); /* the last cell works */
    /* a histogram needs nbounds + 3 cells for its overflow */
    CHECK(lm_family_register(r, &(lm_family_options){.type = LM_HISTOGRAM, .name = "h",
                                                      .unit_scale = 1e9},
                             &e) == NULL);
    CHECK(e.code == LM_ERR_LIMIT);
    /* gauges need no cells */
    lm_family *g = lm_family_register(r, &(lm_family_options){.type = LM_GAUGE, .name = "g",
                                                              .label_names = L1, .nlabels = 1},
                                      &e);
    CHECK(g != NULL);
    CHECK(lm_series_get(g, (lm_str[]){S("x")}, &e) != NULL);
    lm_registry_free(r);
}

/* Cumulative count of series s at exposed bound index i (i == n: +Inf). */
static uint64_t cum_at(const lm_series *s, size_t i, uint64_t *count, uint64_t *sum_lo)
{
    uint64_t b[LM_MAX_BOUNDS + 1], c = 0, lo;
    int64_t hi;
    lm__histogram_read(s, b, count, &hi, &lo);
    for (size_t k = 0; k <= i; k++)
        c += b[k];
    if (sum_lo)
        *sum_lo = lo;
    return c;
}

/* Flipping a histogram between bucket lists (reloads that go back and
 * forth) keeps one family whose union counts everything: every exposed
 * sample is exact at every step and only ever grows, no family or cell is
 * consumed by a flip among lists already seen, and every exposition shows
 * the name once. */
static void test_replace_flips(void)
{
    lm_error e = {0};
    lm_registry_options ro = {.max_families = 4};
    lm_registry *r = lm_registry_new(&ro, &e);
    CHECK(r != NULL);
    static const double b1[] = {0.1, 1.0}, b2[] = {0.5, 1.0, 5.0}, b3[] = {0.01, 1.0};
    lm_family_options o1 = {.type = LM_HISTOGRAM, .name = "lat_seconds", .help = "h",
                            .label_names = L1, .nlabels = 1, .bounds = b1, .nbounds = 2,
                            .unit_scale = 1e9};
    lm_family_options o2 = o1, o3 = o1;
    o2.bounds = b2;
    o2.nbounds = 3;
    o3.bounds = b3;
    lm_str v[1] = {S("x")};

    lm_family *f1 = lm_family_register(r, &o1, &e);
    lm_series *s = lm_series_get(f1, v, &e);
    /* the truth, by value: observations of 0.05, 0.3, 0.7, 3 and 7 s */
    static const int64_t obs[5] = {50000000, 300000000, 700000000, 3000000000, 7000000000};
    uint64_t sent[5] = {0}, total = 0, sum = 0;
    lm_histogram_observe(s, obs[0]);
    sent[0]++, total++, sum += (uint64_t)obs[0];
    size_t slots_after_growth = 0;
    uint64_t last_inf = 0, last_le1 = 0;
    for (int flip = 0; flip < 200; flip++) {
        const lm_family_options *o = flip % 2 ? &o1 : &o2;
        lm_family *f = lm_family_replace(r, o, &e);
        CHECK(f == f1);
        if (f != f1) {
            fprintf(stderr, "flip %d: %s\n", flip, e.message);
            break;
        }
        CHECK(lm_series_get(f, v, &e) == s);
        for (int k = 0; k < 5; k++)
            if ((flip + k) % 3 == 0) {
                lm_histogram_observe(s, obs[k]);
                sent[k]++, total++, sum += (uint64_t)obs[k];
            }
        if (flip == 0)
            slots_after_growth = r->slots_used; /* 0.5 and 5 grew the union once */
        /* exact at every exposed bound: 1.0 is in both lists */
        uint64_t count, lo, le1 = cum_at(s, 1, &count, &lo); /* 1.0: index 1 in both */
        uint64_t want1 = sent[0] + sent[1] + sent[2];
        if (flip > 0) { /* the first 0.05 s predates 0.5 in the union, but 1.0 is exact */
            CHECK_EQ_U64(le1, want1);
        }
        CHECK_EQ_U64(count, total);
        CHECK_EQ_U64(lo, sum);
        CHECK(count >= last_inf && le1 >= last_le1);
        last_inf = count, last_le1 = le1;
        if (flip % 2 == 0) { /* o2: 0.5 exact, 5.0 exact */
            CHECK_EQ_U64(cum_at(s, 0, &count, NULL), sent[0] + sent[1]);
            CHECK_EQ_U64(cum_at(s, 2, &count, NULL), want1 + sent[3]);
        } else { /* o1: 0.1 exact */
            CHECK_EQ_U64(cum_at(s, 0, &count, NULL), sent[0]);
        }
    }
    CHECK_EQ_U64(atomic_load(&r->nfamilies), 1);
    CHECK_EQ_U64(r->slots_used, slots_after_growth);
    /* flips republish projections made before: o1 and o2 over the first
     * layout (o1 only) and over the grown one (o2, o1) */
    size_t nproj = 0;
    for (const lm_hproj *pj = f1->projs; pj; pj = pj->next)
        nproj++;
    CHECK_EQ_U64(nproj, 3);
    CHECK(f1->layout->n == 4 && f1->layout->prev != NULL && f1->layout->prev->prev == NULL);

    /* 200 flips end on o1 (flip 199 is odd) */
    capture c = {0};
    CHECK(lm_expo_write(r, LM_FORMAT_TEXT, 0, capture_write, &c, &e) == LM_OK && c.p != NULL);
    const char *p = c.p ? c.p : "", *q;
    int types = 0;
    while ((q = strstr(p, "# TYPE lat_seconds histogram")) != NULL) {
        types++;
        p = q + 1;
    }
    CHECK(types == 1);
    char want[96];
    snprintf(want, sizeof want, "lat_seconds_bucket{a=\"x\",le=\"1.0\"} %llu\n",
             (unsigned long long)(sent[0] + sent[1] + sent[2]));
    CHECK(strstr(c.p ? c.p : "", want) != NULL);
    capture_free(&c);

    /* a third list with a bound new to the union (0.01): it grows once
     * more; 0.01 starts at what the union knew below it (nothing: the
     * 0.05 s observations were counted in (0, 0.1]) and is exact after */
    CHECK(lm_family_replace(r, &o3, &e) == f1 && f1->layout->n == 5);
    uint64_t count;
    CHECK_EQ_U64(cum_at(s, 0, &count, NULL), 0);
    CHECK_EQ_U64(cum_at(s, 1, &count, NULL), sent[0] + sent[1] + sent[2]);
    lm_histogram_observe(s, 5000000); /* 5 ms */
    CHECK_EQ_U64(cum_at(s, 0, &count, NULL), 1);
    CHECK_EQ_U64(count, total + 1);
    lm_registry_free(r);
}

/* The union of bounds a name has counted in is capped; a list that would
 * pass the cap is refused with a message that says why and what to do, and
 * the histogram keeps exposing what it did. */
static void test_union_cap(void)
{
    lm_error e = {0};
    lm_registry *r = lm_registry_new(NULL, &e);
    double b[LM_MAX_BOUNDS];
    lm_family_options o = {.type = LM_HISTOGRAM, .name = "cap_seconds", .bounds = b,
                           .nbounds = LM_MAX_BOUNDS, .unit_scale = 1e9};
    for (int i = 0; i < LM_MAX_BOUNDS; i++)
        b[i] = 1 + i;
    lm_family *f = lm_family_register(r, &o, &e);
    lm_series *s = lm_series_get(f, NULL, &e);
    lm_histogram_observe(s, 1);
    for (int i = 0; i < LM_MAX_BOUNDS; i++)
        b[i] = 100 + i; /* 64 more: exactly the cap */
    CHECK(lm_family_replace(r, &o, &e) == f && f->layout->n == LM_MAX_UNION_BOUNDS);
    b[0] = 99.5; /* one more */
    CHECK(lm_family_replace(r, &o, &e) == NULL && e.code == LM_ERR_LIMIT);
    CHECK(strstr(e.message, "129 distinct bounds since start, more than the 128 kept") &&
          strstr(e.message, "restart"));
    CHECK(lm__family_proj(f)->bounds[0] == 100 && f->layout->n == LM_MAX_UNION_BOUNDS);
    /* lists within the union still switch */
    for (int i = 0; i < LM_MAX_BOUNDS; i++)
        b[i] = 1 + i;
    CHECK(lm_family_replace(r, &o, &e) == f && lm__family_proj(f)->bounds[0] == 1);
    lm_histogram_observe(s, 1);
    CHECK_EQ_U64(lm_series_count(s), 2);
    lm_registry_free(r);
}

int main(void)
{
    test_registry();
    test_validation();
    test_buckets();
    test_reregister();
    test_replace_flips();
    test_union_cap();
    test_series();
    test_folding();
    test_index_growth();
    test_limits();
    TEST_MAIN_END();
}
