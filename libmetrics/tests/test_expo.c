/* Exposition: a registry with known contents rendered in both formats and
 * compared to exact golden text; the same bytes whatever the read size;
 * lm_expo_write chunking and error paths; process metrics plausible; the
 * documented behaviour for series and families created mid-scrape, retired
 * and empty families, overflow folding, worst-case escaping, and built-in
 * names shadowed by user families. Every body also passes expo_check. */
#include "expo_check.h"
#include "libmetrics.h"
#include "lm_capture.h"
#include "lm_test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define S(lit) ((lm_str){(lit), sizeof(lit) - 1})

/* ------------------------------------------------------------ helpers */

/* Whole body via lm_expo_write; caller frees. */
static char *render(lm_registry *reg, lm_format fmt, unsigned flags, size_t *len)
{
    capture s = {.full = 16384};
    lm_error err;
    lm_status st = lm_expo_write(reg, fmt, flags, capture_write, &s, &err);
    CHECK(st == LM_OK);
    if (st != LM_OK)
        fprintf(stderr, "lm_expo_write: %s\n", err.message);
    CHECK(s.max_chunk <= 16384);
    CHECK(s.short_chunks == 0); /* every chunk but the last is full */
    if (!s.p)
        s.p = calloc(1, 1);
    *len = s.len;
    return s.p;
}

/* Whole body via lm_expo_read with a fixed cap; caller frees. */
static char *read_all(lm_registry *reg, lm_format fmt, unsigned flags, size_t cap, size_t *len)
{
    lm_error err;
    lm_expo *e = lm_expo_begin(reg, fmt, flags, &err);
    CHECK(e != NULL);
    size_t total = 0, bcap = 1024;
    char *out = malloc(bcap);
    char *chunk = malloc(cap);
    size_t n;
    while (e && (n = lm_expo_read(e, chunk, cap)) > 0) {
        CHECK(n <= cap);
        if (total + n + 1 > bcap) {
            bcap = (total + n + 1) * 2;
            out = realloc(out, bcap);
        }
        memcpy(out + total, chunk, n);
        total += n;
    }
    if (e)
        CHECK(lm_expo_read(e, chunk, cap) == 0); /* stays complete */
    lm_expo_end(e);
    free(chunk);
    out[total] = '\0';
    *len = total;
    return out;
}

static void check_valid(const char *body, size_t len, lm_format fmt, const char *what)
{
    char msg[512];
    expo_check_stats st;
    int rc = expo_check(body, len, fmt, NULL, NULL, &st, msg, sizeof msg);
    CHECK(rc == 0);
    if (rc != 0)
        fprintf(stderr, "%s (%s) rejected by expo_check: %s\n", what,
                fmt == LM_FORMAT_TEXT ? "text" : "openmetrics", msg);
}

static void check_golden(const char *got, const char *want, const char *what)
{
    lm_test_checks++;
    if (strcmp(got, want) == 0)
        return;
    lm_test_failures++;
    size_t i = 0;
    while (got[i] && got[i] == want[i])
        i++;
    size_t from = i > 60 ? i - 60 : 0;
    fprintf(stderr, "%s: golden mismatch at byte %zu\n  got:  ...%.120s\n  want: ...%.120s\n",
            what, i, got + from, want + from);
}

static lm_family *fam(lm_registry *reg, lm_family_options o)
{
    lm_error err;
    lm_family *f = lm_family_register(reg, &o, &err);
    if (!f)
        fprintf(stderr, "register %s: %s\n", o.name, err.message);
    CHECK(f != NULL);
    return f;
}

static lm_series *ser(lm_family *f, const lm_str *v)
{
    lm_error err;
    lm_series *s = f ? lm_series_get(f, v, &err) : NULL;
    if (f && !s)
        fprintf(stderr, "series: %s\n", err.message);
    CHECK(s != NULL);
    return s;
}

/* --------------------------------------------------- golden registry */

static const char *const path_label[] = {"path"};
static const char *const route_label[] = {"route"};
static const char *const k_label[] = {"k"};
static const char *const user_label[] = {"user"};

static lm_registry *golden_registry(void)
{
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);

    lm_family *req = fam(reg, (lm_family_options){.type = LM_COUNTER,
                                                  .name = "t_requests_total",
                                                  .help = "Requests \"quoted\" \\ back\nslash.",
                                                  .label_names = path_label,
                                                  .nlabels = 1});
    lm_counter_add(ser(req, (lm_str[]){S("/plain")}), 3);
    lm_counter_add(ser(req, (lm_str[]){S("a\"b")}), 1);
    lm_counter_add(ser(req, (lm_str[]){S("c\\d")}), 2);
    lm_counter_add(ser(req, (lm_str[]){S("e\nf")}), 4);
    lm_counter_add(ser(req, (lm_str[]){S("bad\xff")}), 5);
    lm_counter_add(ser(req, (lm_str[]){S("g\0h")}), 6);
    lm_counter_add(ser(req, (lm_str[]){S("")}), UINT64_MAX);

    /* A family without series and a retired one are not exposed (a
     * replacement with other labels retires; one with other buckets only
     * would change the family in place, see test_family). */
    fam(reg, (lm_family_options){.type = LM_GAUGE, .name = "t_empty", .help = "Nothing."});
    lm_family *old = fam(reg, (lm_family_options){.type = LM_HISTOGRAM,
                                                  .name = "t_replaced_seconds",
                                                  .help = "Replaced.",
                                                  .bounds = (const double[]){1},
                                                  .nbounds = 1});
    lm_histogram_observe(ser(old, NULL), 1);
    lm_family *repl = lm_family_replace(reg,
                                        &(lm_family_options){.type = LM_HISTOGRAM,
                                                             .name = "t_replaced_seconds",
                                                             .help = "Replaced.",
                                                             .label_names = k_label,
                                                             .nlabels = 1,
                                                             .bounds = (const double[]){2},
                                                             .nbounds = 1},
                                        &err);
    CHECK(repl != NULL && repl != old);
    ser(repl, (lm_str[]){S("x")}); /* the replacement has a series, still at zero */

    lm_family *temp = fam(reg, (lm_family_options){.type = LM_GAUGE, .name = "t_temp", .help = ""});
    lm_gauge_set(ser(temp, NULL), -3);

    lm_family *lat = fam(reg, (lm_family_options){.type = LM_HISTOGRAM,
                                                  .name = "t_latency_seconds",
                                                  .help = "Latency.",
                                                  .label_names = route_label,
                                                  .nlabels = 1,
                                                  .bounds = (const double[]){0.005, 0.25, 1},
                                                  .nbounds = 3,
                                                  .unit_scale = 1e9});
    lm_series *home = ser(lat, (lm_str[]){S("home")});
    lm_histogram_observe(home, 1000000);    /* 1 ms */
    lm_histogram_observe(home, 5000000);    /* 5 ms: on the bound, counts in le=0.005 */
    lm_histogram_observe(home, 100000000);  /* 100 ms */
    lm_histogram_observe(home, 2000000000); /* 2 s */
    lm_series *big = ser(lat, (lm_str[]){S("big")});
    for (int i = 0; i < 4; i++) /* sum 4 * (2^63-1) ns: beyond 64 bits, exact */
        lm_histogram_observe(big, INT64_MAX);
    lm_series *neg = ser(lat, (lm_str[]){S("neg")});
    lm_histogram_observe(neg, -1500000000); /* OpenMetrics: buckets only */

    lm_family *delta = fam(reg, (lm_family_options){.type = LM_HISTOGRAM,
                                                    .name = "t_delta",
                                                    .help = "Negative bounds.",
                                                    .bounds = (const double[]){-1, 0.5},
                                                    .nbounds = 2});
    lm_histogram_observe(ser(delta, NULL), -2);
    lm_histogram_observe(ser(delta, NULL), 3);

    lm_family *capped = fam(reg, (lm_family_options){.type = LM_COUNTER,
                                                     .name = "t_logins_total",
                                                     .help = "Capped.",
                                                     .label_names = user_label,
                                                     .nlabels = 1,
                                                     .max_series = 2});
    lm_counter_add(ser(capped, (lm_str[]){S("ann")}), 1);
    lm_counter_add(ser(capped, (lm_str[]){S("bob")}), 1);
    lm_counter_add(ser(capped, (lm_str[]){S("cid")}), 1);
    lm_counter_add(ser(capped, (lm_str[]){S("dan")}), 1);
    return reg;
}

#define REQ_SAMPLES(SUFFIX)                                                                      \
    "t_requests" SUFFIX "{path=\"/plain\"} 3\n"                                                  \
    "t_requests" SUFFIX "{path=\"a\\\"b\"} 1\n"                                                  \
    "t_requests" SUFFIX "{path=\"c\\\\d\"} 2\n"                                                  \
    "t_requests" SUFFIX "{path=\"e\\nf\"} 4\n"                                                   \
    "t_requests" SUFFIX "{path=\"bad\xef\xbf\xbd\"} 5\n"                                         \
    "t_requests" SUFFIX "{path=\"g\xef\xbf\xbdh\"} 6\n"                                          \
    "t_requests" SUFFIX "{path=\"\"} 18446744073709551615\n"

#define LAT_BUCKETS                                                                              \
    "t_latency_seconds_bucket{route=\"home\",le=\"0.005\"} 2\n"                                  \
    "t_latency_seconds_bucket{route=\"home\",le=\"0.25\"} 3\n"                                   \
    "t_latency_seconds_bucket{route=\"home\",le=\"1.0\"} 3\n"                                    \
    "t_latency_seconds_bucket{route=\"home\",le=\"+Inf\"} 4\n"                                   \
    "t_latency_seconds_sum{route=\"home\"} 2.106\n"                                              \
    "t_latency_seconds_count{route=\"home\"} 4\n"                                                \
    "t_latency_seconds_bucket{route=\"big\",le=\"0.005\"} 0\n"                                   \
    "t_latency_seconds_bucket{route=\"big\",le=\"0.25\"} 0\n"                                    \
    "t_latency_seconds_bucket{route=\"big\",le=\"1.0\"} 0\n"                                     \
    "t_latency_seconds_bucket{route=\"big\",le=\"+Inf\"} 4\n"                                    \
    "t_latency_seconds_sum{route=\"big\"} 36893488147.419103228\n"                               \
    "t_latency_seconds_count{route=\"big\"} 4\n"                                                 \
    "t_latency_seconds_bucket{route=\"neg\",le=\"0.005\"} 1\n"                                   \
    "t_latency_seconds_bucket{route=\"neg\",le=\"0.25\"} 1\n"                                    \
    "t_latency_seconds_bucket{route=\"neg\",le=\"1.0\"} 1\n"                                     \
    "t_latency_seconds_bucket{route=\"neg\",le=\"+Inf\"} 1\n"

#define DELTA_BUCKETS                                                                            \
    "t_delta_bucket{le=\"-1.0\"} 1\n"                                                            \
    "t_delta_bucket{le=\"0.5\"} 1\n"                                                             \
    "t_delta_bucket{le=\"+Inf\"} 2\n"

#define FOLDED_SAMPLES                                                                           \
    "libmetrics_series_folded_total{family=\"t_requests_total\"} 0\n"                            \
    "libmetrics_series_folded_total{family=\"t_replaced_seconds\"} 0\n"                          \
    "libmetrics_series_folded_total{family=\"t_temp\"} 0\n"                                      \
    "libmetrics_series_folded_total{family=\"t_latency_seconds\"} 0\n"                           \
    "libmetrics_series_folded_total{family=\"t_delta\"} 0\n"                                     \
    "libmetrics_series_folded_total{family=\"t_logins_total\"} 2\n"

static const char golden_text[] =
    "# HELP t_requests_total Requests \"quoted\" \\\\ back\\nslash.\n"
    "# TYPE t_requests_total counter\n" REQ_SAMPLES("_total")
    "# HELP t_replaced_seconds Replaced.\n"
    "# TYPE t_replaced_seconds histogram\n"
    "t_replaced_seconds_bucket{k=\"x\",le=\"2.0\"} 0\n"
    "t_replaced_seconds_bucket{k=\"x\",le=\"+Inf\"} 0\n"
    "t_replaced_seconds_sum{k=\"x\"} 0.0\n"
    "t_replaced_seconds_count{k=\"x\"} 0\n"
    "# TYPE t_temp gauge\n"
    "t_temp -3\n"
    "# HELP t_latency_seconds Latency.\n"
    "# TYPE t_latency_seconds histogram\n" LAT_BUCKETS
    "t_latency_seconds_sum{route=\"neg\"} -1.5\n"
    "t_latency_seconds_count{route=\"neg\"} 1\n"
    "# HELP t_delta Negative bounds.\n"
    "# TYPE t_delta histogram\n" DELTA_BUCKETS
    "t_delta_sum 1.0\n"
    "t_delta_count 2\n"
    "# HELP t_logins_total Capped.\n"
    "# TYPE t_logins_total counter\n"
    "t_logins_total{user=\"ann\"} 1\n"
    "t_logins_total{user=\"bob\"} 1\n"
    "t_logins_total{user=\"_overflow\"} 2\n"
    "# HELP libmetrics_series_folded_total Label sets folded into a family's overflow series "
    "because its series cap was reached\n"
    "# TYPE libmetrics_series_folded_total counter\n" FOLDED_SAMPLES;

static const char golden_om[] =
    "# TYPE t_requests counter\n"
    "# HELP t_requests Requests \\\"quoted\\\" \\\\ back\\nslash.\n" REQ_SAMPLES("_total")
    "# TYPE t_replaced_seconds histogram\n"
    "# HELP t_replaced_seconds Replaced.\n"
    "t_replaced_seconds_bucket{k=\"x\",le=\"2.0\"} 0\n"
    "t_replaced_seconds_bucket{k=\"x\",le=\"+Inf\"} 0\n"
    "t_replaced_seconds_sum{k=\"x\"} 0.0\n"
    "t_replaced_seconds_count{k=\"x\"} 0\n"
    "# TYPE t_temp gauge\n"
    "t_temp -3\n"
    "# TYPE t_latency_seconds histogram\n"
    "# HELP t_latency_seconds Latency.\n" LAT_BUCKETS
    "# TYPE t_delta histogram\n"
    "# HELP t_delta Negative bounds.\n" DELTA_BUCKETS
    "# TYPE t_logins counter\n"
    "# HELP t_logins Capped.\n"
    "t_logins_total{user=\"ann\"} 1\n"
    "t_logins_total{user=\"bob\"} 1\n"
    "t_logins_total{user=\"_overflow\"} 2\n"
    "# TYPE libmetrics_series_folded counter\n"
    "# HELP libmetrics_series_folded Label sets folded into a family's overflow series because "
    "its series cap was reached\n" FOLDED_SAMPLES "# EOF\n";

static void test_golden(void)
{
    lm_registry *reg = golden_registry();
    for (int f = 0; f < 2; f++) {
        lm_format fmt = f ? LM_FORMAT_OPENMETRICS : LM_FORMAT_TEXT;
        const char *want = f ? golden_om : golden_text;
        size_t len;
        char *body = render(reg, fmt, 0, &len);
        check_golden(body, want, f ? "golden OpenMetrics" : "golden text");
        CHECK_EQ_U64(len, strlen(want));
        check_valid(body, len, fmt, "golden");
        /* Identical bytes whatever the read size. */
        const size_t caps[] = {1, 7, 64, 16384, 100000};
        for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
            size_t rl;
            char *r = read_all(reg, fmt, 0, caps[c], &rl);
            lm_test_checks++;
            if (rl != len || memcmp(r, body, len) != 0) {
                lm_test_failures++;
                fprintf(stderr, "read with cap %zu differs from lm_expo_write (%zu vs %zu bytes)\n",
                        caps[c], rl, len);
            }
            free(r);
        }
        free(body);
    }
    lm_registry_free(reg);
}

/* ------------------------------------------------------ process metrics */

static double sample_value(const char *body, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ')
            return strtod(p + nl + 1, NULL);
    }
    return NAN;
}

static int count_lines_starting(const char *body, const char *prefix)
{
    int n = 0;
    size_t pl = strlen(prefix);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        n += strncmp(p, prefix, pl) == 0;
    return n;
}

static void test_process(void)
{
    lm_registry *reg = lm_registry_new(NULL, NULL);
    for (int f = 0; f < 2; f++) {
        lm_format fmt = f ? LM_FORMAT_OPENMETRICS : LM_FORMAT_TEXT;
        size_t len;
        char *body = render(reg, fmt, LM_EXPO_PROCESS, &len);
        check_valid(body, len, fmt, "process");
        double now = (double)time(NULL);
        CHECK(sample_value(body, "process_resident_memory_bytes") > 0);
        CHECK(sample_value(body, "process_virtual_memory_bytes") >=
              sample_value(body, "process_resident_memory_bytes"));
        CHECK(sample_value(body, "process_open_fds") >= 3);
        CHECK(sample_value(body, "process_max_fds") >= sample_value(body, "process_open_fds"));
        double start = sample_value(body, "process_start_time_seconds");
        CHECK(start <= now + 1 && start > now - 86400);
        CHECK(sample_value(body, "process_cpu_seconds_total") >= 0);
        CHECK(sample_value(body, "process_threads") >= 1);
        CHECK(count_lines_starting(body, "# TYPE process_") == 7);
        /* With an empty registry there is no folded family. */
        CHECK(strstr(body, "libmetrics_series_folded") == NULL);
        if (f) {
            CHECK(strstr(body, "# TYPE process_cpu_seconds counter\n") != NULL);
            CHECK(len >= 6 && strcmp(body + len - 6, "# EOF\n") == 0);
        } else {
            CHECK(strstr(body, "# TYPE process_cpu_seconds_total counter\n") != NULL);
        }
        free(body);
        body = render(reg, fmt, 0, &len);
        CHECK(strstr(body, "process_") == NULL);
        CHECK(len == (f ? 6u : 0u)); /* empty registry: nothing, or just "# EOF\n" */
        free(body);
    }
    /* A user family named like a process metric wins; the built-in is left
     * out instead of exposed twice. */
    lm_family *g = fam(reg, (lm_family_options){.type = LM_GAUGE,
                                                .name = "process_open_fds",
                                                .help = "The host's own count."});
    lm_gauge_set(ser(g, NULL), 12345);
    lm_family *c = fam(reg, (lm_family_options){.type = LM_COUNTER,
                                                .name = "process_threads_total",
                                                .help = "Threads started."});
    lm_counter_add(ser(c, NULL), 1);
    for (int f = 0; f < 2; f++) {
        lm_format fmt = f ? LM_FORMAT_OPENMETRICS : LM_FORMAT_TEXT;
        size_t len;
        char *body = render(reg, fmt, LM_EXPO_PROCESS, &len);
        check_valid(body, len, fmt, "shadowed process");
        CHECK(count_lines_starting(body, "# TYPE process_open_fds ") == 1);
        CHECK(sample_value(body, "process_open_fds") == 12345);
        CHECK(count_lines_starting(body, "process_threads ") == 0);
        CHECK(count_lines_starting(body, "# TYPE process_") == 5 + 2);
        free(body);
    }
    lm_registry_free(reg);
}

/* ------------------------------------------------------------ edge cases */

static int fail_writer(void *ctx, const char *b, size_t n)
{
    (void)b;
    (void)n;
    int *calls = ctx;
    return ++*calls == 2 ? -7 : 0;
}

static void test_errors(void)
{
    lm_error err;
    CHECK_STR(lm_format_content_type(LM_FORMAT_TEXT), "text/plain; version=0.0.4; charset=utf-8");
    CHECK_STR(lm_format_content_type(LM_FORMAT_OPENMETRICS),
              "application/openmetrics-text; version=1.0.0; charset=utf-8");
    CHECK(lm_format_content_type((lm_format)9) == NULL);

    CHECK(lm_expo_begin(NULL, LM_FORMAT_TEXT, 0, &err) == NULL);
    CHECK(err.code == LM_ERR_INVALID);
    lm_registry *reg = lm_registry_new(NULL, NULL);
    CHECK(lm_expo_begin(reg, (lm_format)5, 0, &err) == NULL);
    CHECK(err.code == LM_ERR_INVALID && strstr(err.message, "5") != NULL);
    CHECK(lm_expo_begin(reg, LM_FORMAT_TEXT, 0x10, &err) == NULL);
    CHECK(err.code == LM_ERR_INVALID && strstr(err.message, "0x10") != NULL);
    CHECK(lm_expo_write(reg, LM_FORMAT_TEXT, 0, NULL, NULL, &err) == LM_ERR_INVALID);
    CHECK(lm_expo_write(NULL, LM_FORMAT_TEXT, 0, capture_write, NULL, &err) == LM_ERR_INVALID);
    CHECK(lm_expo_write(reg, (lm_format)3, 0, capture_write, NULL, NULL) == LM_ERR_INVALID);
    lm_expo_end(NULL);
    CHECK(lm_expo_read(NULL, (char[4]){0}, 4) == 0);

    /* A body of several chunks; the writer fails on the second one. */
    const char *const l[] = {"id"};
    lm_family *f = fam(reg, (lm_family_options){.type = LM_COUNTER,
                                                .name = "many_total",
                                                .help = "Many series.",
                                                .label_names = l,
                                                .nlabels = 1});
    for (int i = 0; i < 1500; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        lm_counter_add(ser(f, (lm_str[]){{v, strlen(v)}}), (uint64_t)i);
    }
    int calls = 0;
    CHECK(lm_expo_write(reg, LM_FORMAT_OPENMETRICS, 0, fail_writer, &calls, &err) == LM_ERR_IO);
    CHECK(calls == 2);
    CHECK(err.code == LM_ERR_IO && strstr(err.message, "-7") != NULL &&
          strstr(err.message, "16384") != NULL);
    capture s = {.full = 16384};
    CHECK(lm_expo_write(reg, LM_FORMAT_OPENMETRICS, 0, capture_write, &s, &err) == LM_OK);
    CHECK(s.calls >= 3 && s.max_chunk == 16384 && s.short_chunks == 0);
    check_valid(s.p, s.len, LM_FORMAT_OPENMETRICS, "many");
    capture_free(&s);
    lm_registry_free(reg);
}

/* Worst-case escaping: 16 labels with values that double when escaped, at
 * a large max_label_value_len, and a help text that doubles too. */
static void test_worst_case_line(void)
{
    lm_registry_options o = {.max_label_value_len = 600};
    lm_registry *reg = lm_registry_new(&o, NULL);
    const char *names[16];
    char nbuf[16][8];
    for (int i = 0; i < 16; i++) {
        snprintf(nbuf[i], sizeof nbuf[i], "l%02d", i);
        names[i] = nbuf[i];
    }
    char help[2001];
    for (int i = 0; i < 2000; i++)
        help[i] = "\\\n\""[i % 3];
    help[2000] = '\0';
    lm_family *f = fam(reg, (lm_family_options){.type = LM_HISTOGRAM,
                                                .name = "wide_seconds",
                                                .help = help,
                                                .label_names = names,
                                                .nlabels = 16,
                                                .unit_scale = 1e9});
    lm_str vals[16];
    char vbuf[16][600];
    for (int i = 0; i < 16; i++) {
        for (int k = 0; k < 600; k++)
            vbuf[i][k] = "\"\\\n"[(i + k) % 3];
        vals[i] = (lm_str){vbuf[i], 600};
    }
    lm_histogram_observe(ser(f, vals), 1);
    for (int fm = 0; fm < 2; fm++) {
        lm_format fmt = fm ? LM_FORMAT_OPENMETRICS : LM_FORMAT_TEXT;
        size_t len, rl;
        char *body = render(reg, fmt, 0, &len);
        check_valid(body, len, fmt, "worst case");
        /* The +Inf bucket line: 16 * (4 + 1200 + 4) label bytes and more. */
        const char *inf = strstr(body, "le=\"+Inf\"} 1\n");
        CHECK(inf != NULL);
        CHECK(len > 16 * 1200 * 17);
        char *r = read_all(reg, fmt, 0, 3, &rl);
        CHECK(rl == len && memcmp(r, body, len) == 0);
        free(r);
        free(body);
    }
    lm_registry_free(reg);
}

/* Series and families created while a cursor is part-way through: the
 * documented snapshot rules, and a valid body either way. */
static void test_mid_scrape(void)
{
    lm_registry *reg = lm_registry_new(NULL, NULL);
    const char *const l[] = {"k"};
    lm_family *a = fam(reg, (lm_family_options){.type = LM_COUNTER, .name = "a_total", .help = "A.",
                                                .label_names = l, .nlabels = 1});
    lm_family *b = fam(reg, (lm_family_options){.type = LM_COUNTER, .name = "b_total", .help = "B.",
                                                .label_names = l, .nlabels = 1});
    lm_counter_add(ser(a, (lm_str[]){S("1")}), 1);
    lm_counter_add(ser(b, (lm_str[]){S("1")}), 1);
    lm_expo *e = lm_expo_begin(reg, LM_FORMAT_OPENMETRICS, 0, NULL);
    char out[8192];
    size_t n = lm_expo_read(e, out, 40); /* inside family a */
    CHECK(n == 40);
    lm_counter_add(ser(a, (lm_str[]){S("2")}), 1); /* a's series count was already taken */
    lm_counter_add(ser(b, (lm_str[]){S("2")}), 1); /* b not reached yet: included */
    lm_family *c = fam(reg, (lm_family_options){.type = LM_GAUGE, .name = "c", .help = "C."});
    lm_gauge_set(ser(c, NULL), 1); /* registered after begin: next scrape */
    size_t k;
    while ((k = lm_expo_read(e, out + n, sizeof out - 1 - n)) > 0)
        n += k;
    out[n] = '\0';
    lm_expo_end(e);
    check_valid(out, n, LM_FORMAT_OPENMETRICS, "mid-scrape");
    CHECK(strstr(out, "a_total{k=\"1\"} 1\n") != NULL);
    CHECK(strstr(out, "a_total{k=\"2\"}") == NULL);
    CHECK(strstr(out, "b_total{k=\"2\"} 1\n") != NULL);
    CHECK(strstr(out, "\nc ") == NULL);
    size_t len;
    char *next = render(reg, LM_FORMAT_OPENMETRICS, 0, &len);
    CHECK(strstr(next, "a_total{k=\"2\"} 1\n") != NULL);
    CHECK(strstr(next, "\nc 1\n") != NULL);
    CHECK(strstr(next, "libmetrics_series_folded_total{family=\"c\"} 0\n") != NULL);
    free(next);
    lm_registry_free(reg);
}

int main(void)
{
    test_golden();
    test_process();
    test_errors();
    test_worst_case_line();
    test_mid_scrape();
    TEST_MAIN_END();
}
