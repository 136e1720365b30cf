/* expo_dump: writes the exposition of a rich, deterministic registry to
 * stdout, for independent checkers (promtool, prometheus_client's strict
 * OpenMetrics parser, tests/tools/check_exposition.py).
 *
 * usage: expo_dump text|openmetrics [--no-process]
 *
 * The registry holds every shape the exposition has to get right: hostile
 * label values (quotes, backslashes, newlines, invalid UTF-8, NUL, C0
 * controls, a value longer than the cap), hostile help text, counters,
 * gauges (negative too), histograms with default and custom buckets,
 * negative bucket bounds, a negative sum, a series cap reached (overflow
 * series and folded counter), a replaced (retired) family, a family
 * without series, the HTTP fast path, and the process metrics. */
#include "libmetrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) ((lm_str){(lit), sizeof(lit) - 1})

static int write_stdout(void *ctx, const char *buf, size_t len)
{
    (void)ctx;
    return fwrite(buf, 1, len, stdout) == len ? 0 : -1;
}

static lm_family *must_family(lm_registry *reg, const lm_family_options *o)
{
    lm_error err;
    lm_family *f = lm_family_register(reg, o, &err);
    if (f == NULL) {
        fprintf(stderr, "expo_dump: registering %s: %s\n", o->name, err.message);
        exit(2);
    }
    return f;
}

static lm_series *must_series(lm_family *f, const lm_str *v)
{
    lm_error err;
    lm_series *s = lm_series_get(f, v, &err);
    if (s == NULL) {
        fprintf(stderr, "expo_dump: series: %s\n", err.message);
        exit(2);
    }
    return s;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "text") != 0 && strcmp(argv[1], "openmetrics") != 0)) {
        fprintf(stderr, "usage: expo_dump text|openmetrics [--no-process]\n");
        return 2;
    }
    lm_format fmt = strcmp(argv[1], "text") == 0 ? LM_FORMAT_TEXT : LM_FORMAT_OPENMETRICS;
    unsigned flags = (argc > 2 && strcmp(argv[2], "--no-process") == 0) ? 0 : LM_EXPO_PROCESS;

    lm_error err;
    lm_registry_options ro = {.max_label_value_len = 32};
    lm_registry *reg = lm_registry_new(&ro, &err);
    if (reg == NULL) {
        fprintf(stderr, "expo_dump: %s\n", err.message);
        return 2;
    }

    /* Counter with hostile label values. */
    const char *const req_labels[] = {"method", "path"};
    lm_family *req = must_family(
        reg, &(lm_family_options){.type = LM_COUNTER,
                                  .name = "app_requests_total",
                                  .help = "Requests with \"hostile\" labels: back\\slash, new\nline.",
                                  .label_names = req_labels,
                                  .nlabels = 2});
    const lm_str hostile[][2] = {
        {S("GET"), S("/plain")},
        {S("POST"), S("/q\"uote")},
        {S("PUT"), S("C:\\back\\slash\\")},
        {S("GET"), S("/new\nline\n")},
        {S("GET"), S("/bad\xff\xfe utf8 \xc3(")},
        {S("GET"), S("/nul\0byte")},
        {S("GET"), S("/ctl\x01\x1b\x7f\ttab")},
        {S("GET"), S("/unicode caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")},
        {S("GET"), S("/a-value-much-longer-than-the-thirty-two-byte-cap-\xc3\xa9\xc3\xa9")},
        {S(""), S("")},
        {S("{}=,#"), S("\\\"\n")},
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++)
        lm_counter_add(must_series(req, hostile[i]), i * 7 + 1);

    /* Gauges: labelled, unlabelled, negative, and one without series. */
    const char *const temp_labels[] = {"room"};
    lm_family *temp = must_family(reg, &(lm_family_options){.type = LM_GAUGE,
                                                            .name = "app_temperature_celsius",
                                                            .help = "Room temperature.",
                                                            .label_names = temp_labels,
                                                            .nlabels = 1});
    lm_gauge_set(must_series(temp, (lm_str[]){S("kitchen")}), 21);
    lm_gauge_set(must_series(temp, (lm_str[]){S("freezer")}), -18);
    lm_family *up = must_family(
        reg, &(lm_family_options){.type = LM_GAUGE, .name = "app_up", .help = "Always 1."});
    lm_gauge_set(must_series(up, NULL), 1);
    must_family(reg, &(lm_family_options){.type = LM_GAUGE,
                                          .name = "app_never_used",
                                          .help = "Has no series, so is not exposed."});

    /* Histogram in seconds from nanoseconds, default buckets. */
    const char *const route_labels[] = {"route"};
    lm_family *lat = must_family(reg, &(lm_family_options){.type = LM_HISTOGRAM,
                                                           .name = "app_latency_seconds",
                                                           .help = "Latency.",
                                                           .label_names = route_labels,
                                                           .nlabels = 1,
                                                           .unit_scale = 1e9});
    lm_series *home = must_series(lat, (lm_str[]){S("home")});
    lm_series *api = must_series(lat, (lm_str[]){S("api \"v2\"")});
    const int64_t ns[] = {500000, 1000000, 4999999, 5000000, 30000000, 250000000, 1500000000,
                          9999999999, 10000000000, 60000000000};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        lm_histogram_observe(home, ns[i]);
        if (i % 3 == 0)
            lm_histogram_observe(api, ns[i]);
    }
    must_series(lat, (lm_str[]){S("idle")}); /* zero observations */

    /* Custom buckets, unlabelled, recorded in bytes. */
    lm_family *size = must_family(
        reg, &(lm_family_options){.type = LM_HISTOGRAM,
                                  .name = "app_body_size_bytes",
                                  .help = "Body sizes.",
                                  .bounds = (const double[]){100, 1000, 10000, 1e6},
                                  .nbounds = 4});
    lm_series *sz = must_series(size, NULL);
    for (int64_t v = 1; v <= 2000000; v *= 3)
        lm_histogram_observe(sz, v);

    /* Negative bounds (OpenMetrics: buckets only) and a negative sum. */
    lm_family *delta = must_family(
        reg, &(lm_family_options){.type = LM_HISTOGRAM,
                                  .name = "app_temperature_delta_celsius",
                                  .help = "Temperature change.",
                                  .bounds = (const double[]){-10, -1, 0, 1, 10},
                                  .nbounds = 5});
    lm_series *d = must_series(delta, NULL);
    const int64_t deltas[] = {-20, -5, -1, 0, 0, 2, 3, 50};
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++)
        lm_histogram_observe(d, deltas[i]);
    lm_family *skew = must_family(reg, &(lm_family_options){.type = LM_HISTOGRAM,
                                                            .name = "app_clock_skew_seconds",
                                                            .help = "Clock skew, may be negative.",
                                                            .label_names = route_labels,
                                                            .nlabels = 1,
                                                            .bounds = (const double[]){0.001, 0.1},
                                                            .nbounds = 2,
                                                            .unit_scale = 1e3});
    lm_histogram_observe(must_series(skew, (lm_str[]){S("behind")}), -1500);
    lm_histogram_observe(must_series(skew, (lm_str[]){S("ahead")}), 50);

    /* A capped family: three series, then everything folds into the
     * overflow series. */
    const char *const user_labels[] = {"user"};
    lm_family *capped = must_family(reg, &(lm_family_options){.type = LM_COUNTER,
                                                              .name = "app_logins_total",
                                                              .help = "Logins per user (capped).",
                                                              .label_names = user_labels,
                                                              .nlabels = 1,
                                                              .max_series = 3});
    for (int i = 0; i < 8; i++) {
        char u[16];
        snprintf(u, sizeof u, "user%d", i);
        lm_counter_add(must_series(capped, (lm_str[]){{u, strlen(u)}}), 1);
    }

    /* A family replaced with other buckets: the old one is retired. */
    lm_family *old = must_family(reg, &(lm_family_options){.type = LM_HISTOGRAM,
                                                           .name = "app_queue_wait_seconds",
                                                           .help = "Queue wait.",
                                                           .bounds = (const double[]){1, 2},
                                                           .nbounds = 2});
    lm_histogram_observe(must_series(old, NULL), 1);
    lm_family *repl = lm_family_replace(
        reg, &(lm_family_options){.type = LM_HISTOGRAM,
                                  .name = "app_queue_wait_seconds",
                                  .help = "Queue wait.",
                                  .bounds = (const double[]){0.5, 1, 2.5},
                                  .nbounds = 3},
        &err);
    if (repl == NULL) {
        fprintf(stderr, "expo_dump: replace: %s\n", err.message);
        return 2;
    }
    lm_histogram_observe(must_series(repl, NULL), 2);

    /* The HTTP fast path, with a business counter. */
    lm_http *http = lm_http_register(reg, &(lm_http_options){.prefix = "web_"}, &err);
    if (http == NULL) {
        fprintf(stderr, "expo_dump: http: %s\n", err.message);
        return 2;
    }
    lm_route *rh = lm_http_route(http, S("home"), &err);
    lm_route *ra = lm_http_route(http, S("api/\"x\"\n"), &err);
    if (rh == NULL || ra == NULL) {
        fprintf(stderr, "expo_dump: route: %s\n", err.message);
        return 2;
    }
    const char *const src_labels[] = {"source"};
    lm_family *signup = must_family(reg, &(lm_family_options){.type = LM_COUNTER,
                                                              .name = "web_signups_total",
                                                              .help = "Signups.",
                                                              .label_names = src_labels,
                                                              .nlabels = 1});
    lm_series *biz = must_series(signup, (lm_str[]){S("website")});
    lm_route_record(rh, LM_METHOD_GET, 200, 1200000, 512, NULL, 0);
    lm_route_record(rh, LM_METHOD_GET, 200, 80000000, 1024, NULL, 0);
    lm_route_record(rh, LM_METHOD_HEAD, 404, 300000, 0, NULL, 0);
    lm_route_record(ra, LM_METHOD_POST, 201, 45000000, 64, &biz, 1);
    lm_route_record(ra, LM_METHOD_OTHER, 999, -5, 0, NULL, 0);
    (*lm_route_inflight_cell(rh))++;

    lm_status st = lm_expo_write(reg, fmt, flags, write_stdout, NULL, &err);
    lm_registry_free(reg);
    if (st != LM_OK) {
        fprintf(stderr, "expo_dump: %s\n", err.message);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
