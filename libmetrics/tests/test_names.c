/*
 * The name rules and defaults a host can ask the library for instead of
 * repeating them (libmetrics.h, "names and shapes"): each call agrees with
 * what registration actually does, and the exported defaults are the ones
 * a zero option selects. Public API only, so this links the shipped
 * shared library.
 */
#include "libmetrics.h"
#include "lm_test.h"

#include <stdlib.h>
#include <string.h>

/* The patterns themselves are tested in detail in test_text.c (the hidden
 * functions behind these); here, that the exported calls give the same
 * answers, and that label names add the reserved "__" prefix. */
static void test_name_patterns(void)
{
    CHECK(lm_valid_metric_name("http_requests_total") && lm_valid_metric_name("a:b"));
    CHECK(lm_valid_metric_name("__x") && lm_valid_metric_name(":"));
    CHECK(!lm_valid_metric_name("9x") && !lm_valid_metric_name("a-b") &&
          !lm_valid_metric_name(""));
    CHECK(!lm_valid_metric_name(NULL));

    static const char *const label_ok[] = {"a", "_", "method", "Endpoint", "x9", "_a_b", "le"};
    static const char *const label_bad[] = {"", "9", "a:b", ":", "a-b", "a b", "\xC3\xA9", "le{",
                                            "__name__", "__x", "__"};
    for (size_t i = 0; i < sizeof label_ok / sizeof *label_ok; i++)
        CHECK(lm_valid_label_name(label_ok[i]));
    for (size_t i = 0; i < sizeof label_bad / sizeof *label_bad; i++)
        CHECK(!lm_valid_label_name(label_bad[i]));
    CHECK(!lm_valid_label_name(NULL));
}

/* lm_valid_label_name is the rule registration applies to a label: a name
 * it accepts registers, one it refuses fails with LM_ERR_INVALID. */
static void test_label_rule_matches_registration(void)
{
    static const char *const names[] = {"a", "_", "x9", "__x", "a-b", "9", "", "__"};
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char fam[32];
        snprintf(fam, sizeof fam, "lbl%zu_total", i);
        const char *labels[] = {names[i]};
        lm_family_options o = {.type = LM_COUNTER, .name = fam, .label_names = labels,
                               .nlabels = 1};
        lm_family *f = lm_family_register(reg, &o, &err);
        CHECK((f != NULL) == lm_valid_label_name(names[i]));
        CHECK((lm_family_check(&o, NULL) == LM_OK) == lm_valid_label_name(names[i]));
    }
    lm_registry_free(reg);
}

/* lm_family_check says what lm_family_register would say, without
 * registering anything. */
static void test_family_check(void)
{
    static const double bad_bounds[] = {1, 0.5};
    const char *dup[] = {"a", "a"}, *le[] = {"le"};
    const lm_family_options cases[] = {
        {.type = LM_GAUGE, .name = "9x"},
        {.type = LM_COUNTER, .name = "requests"},
        {.type = LM_COUNTER, .name = "_total"},
        {.type = LM_GAUGE, .name = "g", .label_names = dup, .nlabels = 2},
        {.type = LM_HISTOGRAM, .name = "h", .label_names = le, .nlabels = 1},
        {.type = LM_HISTOGRAM, .name = "h", .bounds = bad_bounds, .nbounds = 2},
        {.type = LM_GAUGE, .name = "g", .nlabels = LM_MAX_LABELS + 1, .label_names = dup},
        {.type = LM_GAUGE, .name = "g", .kind = (lm_family_kind)7},
        {.type = LM_GAUGE, .name = "g", .kind = (lm_family_kind)(LM_KIND_RUNTIME + 1)},
        {.type = (lm_type)9, .name = "g"},
    };
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lm_error check = {0}, reg_err = {0};
        CHECK(lm_family_check(&cases[i], &check) == LM_ERR_INVALID);
        CHECK(lm_family_register(reg, &cases[i], &reg_err) == NULL);
        CHECK(check.code == LM_ERR_INVALID && reg_err.code == LM_ERR_INVALID);
        CHECK_STR(check.message, reg_err.message);
    }
    lm_error e = {0};
    CHECK(lm_family_check(&cases[1], &e) == LM_ERR_INVALID);
    CHECK(strstr(e.message, "counter name \"requests\" must end in \"_total\"") != NULL);
    CHECK(lm_family_check(NULL, &e) == LM_ERR_INVALID);

    lm_family_options good = {.type = LM_COUNTER, .name = "ok_total", .help = "fine"};
    CHECK(lm_family_check(&good, &e) == LM_OK);
    CHECK(lm_registry_families(reg, NULL, 0) == 0); /* a dry run registered nothing */
    CHECK(lm_family_register(reg, &good, &e) != NULL);
    lm_registry_free(reg);
}

static void test_builtin_clash(void)
{
    char b[64];
    /* libmetrics_series_folded_total, whatever the type's exposed names. */
    CHECK(lm_builtin_clash(LM_COUNTER, "libmetrics_series_folded_total", NULL, b, sizeof b));
    CHECK_STR(b, "libmetrics_series_folded_total");
    CHECK(lm_builtin_clash(LM_GAUGE, "libmetrics_series_folded", NULL, b, sizeof b));
    CHECK(lm_builtin_clash(LM_GAUGE, "libmetrics_series_folded_created", NULL, b, sizeof b));
    CHECK(!lm_builtin_clash(LM_GAUGE, "libmetrics_series", NULL, b, sizeof b));
    /* process_*: a counter x_total is family x. */
    CHECK(lm_builtin_clash(LM_COUNTER, "process_threads_total", NULL, b, sizeof b));
    CHECK_STR(b, "process_threads");
    CHECK(lm_builtin_clash(LM_GAUGE, "process_cpu_seconds", NULL, b, sizeof b));
    CHECK_STR(b, "process_cpu_seconds_total");
    CHECK(lm_builtin_clash(LM_HISTOGRAM, "process_open_fds", NULL, b, sizeof b));
    CHECK(!lm_builtin_clash(LM_GAUGE, "process_other", NULL, b, sizeof b));
    CHECK(!lm_builtin_clash(LM_GAUGE, "go_goroutines", NULL, b, sizeof b)); /* the host's, not ours */
    /* The HTTP families only for the prefix asked about. */
    CHECK(!lm_builtin_clash(LM_COUNTER, "http_requests_total", NULL, b, sizeof b));
    CHECK(lm_builtin_clash(LM_COUNTER, "http_requests_total", "", b, sizeof b));
    CHECK_STR(b, "http_requests_total");
    CHECK(!lm_builtin_clash(LM_COUNTER, "http_requests_total", "shop_", b, sizeof b));
    CHECK(lm_builtin_clash(LM_COUNTER, "shop_http_requests_total", "shop_", b, sizeof b));
    CHECK_STR(b, "shop_http_requests_total");
    CHECK(lm_builtin_clash(LM_COUNTER, "shop_http_request_duration_seconds_total", "shop_", b,
                           sizeof b));
    CHECK_STR(b, "shop_http_request_duration_seconds");
    CHECK(lm_builtin_clash(LM_GAUGE, "shop_http_request_duration_seconds_bucket", "shop_", b,
                           sizeof b));
    CHECK(lm_builtin_clash(LM_HISTOGRAM, "shop_http_requests_in_progress", "shop_", b, sizeof b));
    CHECK_STR(b, "shop_http_requests_in_progress");
    CHECK(lm_builtin_clash(LM_COUNTER, "http_response_size_bytes_total", "", NULL, 0));
    /* Cut to fit, still NUL-terminated. */
    char small[8];
    CHECK(lm_builtin_clash(LM_COUNTER, "http_requests_total", "", small, sizeof small));
    CHECK_STR(small, "http_re");
    /* Invalid names clash with nothing. */
    CHECK(!lm_builtin_clash(LM_COUNTER, "process_threads", NULL, b, sizeof b));
    CHECK(!lm_builtin_clash(LM_GAUGE, "9process_threads", "", b, sizeof b));
    CHECK(!lm_builtin_clash(LM_GAUGE, NULL, "", b, sizeof b));
}

/* The rule lm_builtin_clash applies, for any two families. */
static void test_names_clash(void)
{
    char b[64];
    /* A counter x_total is family x: it clashes with a gauge x. */
    CHECK(lm_names_clash(LM_COUNTER, "go_goroutines_total", LM_GAUGE, "go_goroutines", b,
                         sizeof b));
    CHECK_STR(b, "go_goroutines");
    CHECK(lm_names_clash(LM_GAUGE, "go_goroutines", LM_COUNTER, "go_goroutines_total", NULL, 0));
    /* A histogram's samples: x_bucket, x_count, x_sum. */
    CHECK(lm_names_clash(LM_GAUGE, "up_seconds_count", LM_HISTOGRAM, "up_seconds", b, sizeof b));
    CHECK_STR(b, "up_seconds_count");
    CHECK(lm_names_clash(LM_HISTOGRAM, "up_seconds", LM_HISTOGRAM, "up_seconds", NULL, 0));
    CHECK(!lm_names_clash(LM_HISTOGRAM, "up_seconds", LM_HISTOGRAM, "down_seconds", b, sizeof b));
    CHECK(!lm_names_clash(LM_GAUGE, "go_threads", LM_GAUGE, "go_goroutines", b, sizeof b));
    /* Invalid names clash with nothing. */
    CHECK(!lm_names_clash(LM_COUNTER, "go_goroutines", LM_GAUGE, "go_goroutines", b, sizeof b));
    CHECK(!lm_names_clash(LM_GAUGE, "9x", LM_GAUGE, "9x", b, sizeof b));
    CHECK(!lm_names_clash(LM_GAUGE, NULL, LM_GAUGE, "x", b, sizeof b));
    CHECK(!lm_names_clash((lm_type)9, "x", LM_GAUGE, "x", b, sizeof b));
    /* Where it says two names clash, registration refuses the second. */
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    lm_family_options g = {.type = LM_GAUGE, .name = "jobs"}, c = {.type = LM_COUNTER,
                                                                    .name = "jobs_total"};
    CHECK(lm_names_clash(c.type, c.name, g.type, g.name, NULL, 0));
    CHECK(lm_family_register(reg, &g, &err) != NULL);
    CHECK(lm_family_register(reg, &c, &err) == NULL && err.code == LM_ERR_EXISTS);
    lm_registry_free(reg);
}

/* Where registration refuses, lm_builtin_clash says so: the folded family
 * and the HTTP families of a registered prefix. Where it says nothing, the
 * name registers beside them. */
static void test_builtin_clash_matches_registration(void)
{
    static const struct {
        lm_type type;
        const char *name;
    } cases[] = {
        {LM_GAUGE, "libmetrics_series_folded"},
        {LM_COUNTER, "shop_http_requests_in_progress_total"},
        {LM_GAUGE, "shop_http_request_duration_seconds_count"},
        {LM_HISTOGRAM, "shop_http_response_size_bytes"},
        {LM_COUNTER, "shop_http_orders_total"},
        {LM_GAUGE, "shop_http_request_duration"},
    };
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    lm_http_options ho = {.prefix = "shop_"};
    CHECK(reg && lm_http_register(reg, &ho, &err) != NULL);
    if (!reg)
        return;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lm_family_options o = {.type = cases[i].type, .name = cases[i].name, .help = "x",
                               .unit_scale = cases[i].type == LM_HISTOGRAM ? 1e9 : 0};
        bool clash = lm_builtin_clash(cases[i].type, cases[i].name, "shop_", NULL, 0);
        lm_family *f = lm_family_register(reg, &o, &err);
        CHECK(clash == (f == NULL));
        if (!f)
            CHECK(err.code == LM_ERR_EXISTS);
    }
    lm_registry_free(reg);
}

/* The LM_DEFAULT_* macros are what a zero option selects. */
static void test_defaults(void)
{
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    lm_family_options c = {.type = LM_COUNTER, .name = "d_total"};
    lm_family_info fi;
    lm_family_describe(lm_family_register(reg, &c, &err), &fi);
    CHECK_EQ_U64(fi.max_series, LM_DEFAULT_MAX_SERIES);

    lm_http *http = lm_http_register(reg, NULL, &err);
    CHECK(http != NULL);
    lm_family_describe(lm_http_family_get(http, LM_HTTP_REQUESTS), &fi);
    CHECK_EQ_U64(fi.max_series, LM_DEFAULT_HTTP_MAX_SERIES);
    size_t nb;
    lm_default_latency_bounds(&nb);
    lm_family_describe(lm_http_family_get(http, LM_HTTP_DURATION), &fi);
    CHECK_EQ_U64(fi.nbounds, nb);
    CHECK(nb <= LM_MAX_BOUNDS);

    /* LM_DEFAULT_MAX_ROUTES routes fit, one more does not. */
    lm_route *r = NULL;
    for (int i = 0; i <= LM_DEFAULT_MAX_ROUTES; i++) {
        char name[16];
        int n = snprintf(name, sizeof name, "r%d", i);
        r = lm_http_route(http, (lm_str){name, (size_t)n}, &err);
        if (i < LM_DEFAULT_MAX_ROUTES)
            CHECK(r != NULL);
    }
    CHECK(r == NULL && err.code == LM_ERR_LIMIT);
    lm_registry_free(reg);

    /* LM_DEFAULT_MAX_FAMILIES families fit, one more does not. */
    reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    lm_family *f = NULL;
    for (int i = 0; i <= LM_DEFAULT_MAX_FAMILIES; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%d_total", i);
        lm_family_options o = {.type = LM_COUNTER, .name = name};
        f = lm_family_register(reg, &o, &err);
        if (i < LM_DEFAULT_MAX_FAMILIES)
            CHECK(f != NULL);
    }
    CHECK(f == NULL && err.code == LM_ERR_LIMIT);
    lm_registry_free(reg);

    /* LM_DEFAULT_MAX_LABEL_VALUE_LEN bytes of a label value are kept. */
    reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    const char *l[] = {"v"};
    lm_family_options g = {.type = LM_GAUGE, .name = "long_values", .label_names = l, .nlabels = 1};
    lm_family *gf = lm_family_register(reg, &g, &err);
    char *big = malloc(LM_DEFAULT_MAX_LABEL_VALUE_LEN + 100);
    if (big && gf) {
        memset(big, 'x', LM_DEFAULT_MAX_LABEL_VALUE_LEN + 100);
        lm_str v = {big, LM_DEFAULT_MAX_LABEL_VALUE_LEN + 100};
        lm_series *s = lm_series_get(gf, &v, &err);
        CHECK_EQ_U64(lm_series_label_value(s, 0).len, LM_DEFAULT_MAX_LABEL_VALUE_LEN);
    }
    free(big);
    lm_registry_free(reg);
}

int main(void)
{
    test_name_patterns();
    test_label_rule_matches_registration();
    test_family_check();
    test_builtin_clash();
    test_names_clash();
    test_builtin_clash_matches_registration();
    test_defaults();
    TEST_MAIN_END();
}
