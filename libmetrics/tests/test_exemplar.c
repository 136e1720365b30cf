/* lm_route_record_ex and exemplars: exact counts and sums for every part of
 * a record (request, business counters, histogram and counter
 * observations, series of another registry, ignored NULL/gauge/negative
 * entries); lm_route_record equal to lm_route_record_ex without extras;
 * exemplars rendered exactly (request counter and the latency bucket the
 * request fell in, flagged observations), only in OpenMetrics, latest one
 * wins, the 128-character limit counted in characters (kept at 128, dropped
 * at 129), invalid IDs dropped rather than altered, escaping decoded back by
 * the checker, the clock read when no time is given, and exemplars after a
 * bucket change landing in the new histogram. Every body passes
 * expo_check. */
#include "core.h"
#include "exemplar.h"
#include "expo_check.h"
#include "lm_capture.h"
#include "lm_test.h"

#include <stdlib.h>
#include <time.h>

#define T0 1700000000123000000LL /* 1700000000.123 s */

static lm_str S(const char *s)
{
    return (lm_str){s, strlen(s)};
}

typedef struct seen {
    int with_exemplar;
    int on_wrong_sample;
} seen;

static void count_exemplars(void *ctx, const expo_sample *s)
{
    seen *sn = ctx;
    if (s->exemplar)
        sn->with_exemplar++;
}

/* Renders fmt, checks it with expo_check and returns the body (caller
 * frees); *nex gets the number of samples carrying an exemplar. */
static char *render(lm_registry *reg, lm_format fmt, int *nex)
{
    capture o = {0};
    lm_error err;
    CHECK(lm_expo_write(reg, fmt, 0, capture_write, &o, &err) == LM_OK);
    char msg[256];
    seen sn = {0};
    int rc = expo_check(o.p, o.len, fmt, count_exemplars, &sn, NULL, msg, sizeof msg);
    CHECK(rc == 0);
    if (rc != 0)
        fprintf(stderr, "expo_check (%s): %s\n--- body ---\n%s\n",
                fmt == LM_FORMAT_TEXT ? "text" : "openmetrics", msg, o.p);
    if (nex)
        *nex = sn.with_exemplar;
    return o.p;
}

static bool has_line(const char *body, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = body; (p = strstr(p, line)) != NULL; p++)
        if ((p == body || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

#define CHECK_LINE(body, line)                                                               \
    do {                                                                                     \
        bool ok_ = has_line(body, line);                                                     \
        CHECK(ok_);                                                                          \
        if (!ok_)                                                                            \
            fprintf(stderr, "  missing line: %s\n", line);                                   \
    } while (0)

typedef struct fixture {
    lm_registry *reg;
    lm_http *http;
    lm_route *api;
    lm_family *up, *db, *q;
    lm_series *up_a, *db_sel, *q_sel, *biz;
} fixture;

static void fixture_init(fixture *f)
{
    lm_error err;
    memset(f, 0, sizeof *f);
    f->reg = lm_registry_new(NULL, &err);
    f->http = lm_http_register(f->reg, NULL, &err);
    f->api = lm_http_route(f->http, S("api"), &err);
    static const char *const ul[] = {"endpoint", "upstream"};
    static const char *const ol[] = {"endpoint", "operation"};
    f->up = lm_family_register(f->reg,
                               &(lm_family_options){.type = LM_HISTOGRAM,
                                                    .name = "http_upstream_duration_seconds",
                                                    .help = "upstream",
                                                    .label_names = ul,
                                                    .nlabels = 2,
                                                    .unit_scale = 1e9},
                               &err);
    f->db = lm_family_register(f->reg,
                               &(lm_family_options){.type = LM_HISTOGRAM,
                                                    .name = "db_query_duration_seconds",
                                                    .help = "db",
                                                    .label_names = ol,
                                                    .nlabels = 2,
                                                    .unit_scale = 1e9},
                               &err);
    f->q = lm_family_register(f->reg,
                              &(lm_family_options){.type = LM_COUNTER,
                                                   .name = "db_queries_total",
                                                   .help = "queries",
                                                   .label_names = ol,
                                                   .nlabels = 2},
                              &err);
    lm_family *b = lm_family_register(
        f->reg, &(lm_family_options){.type = LM_COUNTER, .name = "biz_total", .help = "b"}, &err);
    f->up_a = lm_series_get(f->up, (lm_str[]){S("api"), S("127.0.0.1:8081")}, &err);
    f->db_sel = lm_series_get(f->db, (lm_str[]){S("api"), S("select")}, &err);
    f->q_sel = lm_series_get(f->q, (lm_str[]){S("api"), S("select")}, &err);
    f->biz = lm_series_get(b, NULL, &err);
    CHECK(f->api && f->up_a && f->db_sel && f->q_sel && f->biz);
}

static lm_family *fam(lm_registry *r, const char *name)
{
    size_t n = atomic_load(&r->nfamilies);
    for (size_t i = 0; i < n; i++)
        if (!atomic_load(&r->families[i]->retired) && strcmp(r->families[i]->name.ptr, name) == 0)
            return r->families[i];
    return NULL;
}

static lm_series *http_series(lm_registry *r, const char *family, const char *method,
                              const char *endpoint, const char *status)
{
    lm_family *f = fam(r, family);
    if (f == NULL)
        return NULL;
    size_t n = atomic_load(&f->nseries);
    for (size_t i = 0; i < n; i++) {
        lm_series *s = f->series[i];
        if (strcmp(s->values[0].ptr, method) == 0 && strcmp(s->values[1].ptr, endpoint) == 0 &&
            strcmp(s->values[2].ptr, status) == 0)
            return s;
    }
    return NULL;
}

/* ------------------------------------------------------------- counts */

static void test_record_ex_counts(void)
{
    fixture f;
    fixture_init(&f);
    lm_error err;
    lm_registry *other = lm_registry_new(NULL, &err);
    lm_family *ofam = lm_family_register(
        other, &(lm_family_options){.type = LM_COUNTER, .name = "other_total", .help = "o"}, &err);
    lm_family *ohist = lm_family_register(
        other,
        &(lm_family_options){
            .type = LM_HISTOGRAM, .name = "other_seconds", .help = "o", .unit_scale = 1e9},
        &err);
    lm_family *gfam = lm_family_register(
        f.reg, &(lm_family_options){.type = LM_GAUGE, .name = "g", .help = "g"}, &err);
    lm_series *oc = lm_series_get(ofam, NULL, &err), *oh = lm_series_get(ohist, NULL, &err);
    lm_series *g = lm_series_get(gfam, NULL, &err);
    CHECK(oc && oh && g);

    lm_series *counters[] = {f.biz, NULL, f.biz};
    lm_observation obs[] = {
        {f.up_a, 2500000, 0},   /* 2.5 ms upstream */
        {f.db_sel, 3200000, 0}, /* Server-Timing dur=3.2 */
        {f.db_sel, 7500000, 0},
        {f.q_sel, 2, 0},        /* counter += 2 */
        {f.q_sel, -5, 0},       /* negative: ignored */
        {g, 7, 0},              /* gauge: ignored */
        {NULL, 1, 0},           /* ignored */
        {oc, 3, 0},             /* another registry: its own path */
        {oh, 42, 0},
    };
    lm_request_record rec = {.method = LM_METHOD_GET,
                             .status = 200,
                             .duration_ns = 54000000,
                             .response_bytes = 100,
                             .counters = counters,
                             .ncounters = 3,
                             .observations = obs,
                             .nobservations = sizeof obs / sizeof *obs};
    long n = getenv("LM_TEST_SMALL") ? 100 : 10000;
    for (long i = 0; i < n; i++)
        lm_route_record_ex(f.api, &rec);
    /* The compatibility wrapper records the same request. */
    lm_route_record(f.api, LM_METHOD_GET, 200, 54000000, 100, counters, 3);
    lm_route_record_ex(f.api, NULL); /* ignored */
    lm_route_record_ex(NULL, &rec);  /* ignored */
    lm_request_record bare = {.method = LM_METHOD_POST, .status = 201, .duration_ns = -5,
                              .nobservations = 3}; /* NULL array with a count: ignored */
    lm_route_record_ex(f.api, &bare);

    lm_series *rq = http_series(f.reg, "http_requests_total", "GET", "api", "200");
    lm_series *du = http_series(f.reg, "http_request_duration_seconds", "GET", "api", "200");
    lm_series *by = http_series(f.reg, "http_response_size_bytes_total", "GET", "api", "200");
    CHECK(rq && du && by);
    CHECK_EQ_U64(lm_series_count(rq), n + 1);
    CHECK_EQ_U64(lm_series_count(du), n + 1);
    CHECK_EQ_U64(lm_series_count(by), 100 * (n + 1));
    CHECK_EQ_U64(lm_series_count(f.biz), 2 * (n + 1)); /* listed twice, NULL skipped */
    CHECK_EQ_U64(lm_series_count(f.up_a), n);
    CHECK_EQ_U64(lm_series_count(f.db_sel), 2 * n);
    CHECK_EQ_U64(lm_series_count(f.q_sel), 2 * n);
    CHECK_EQ_U64(lm_series_count(g), 0);
    CHECK_EQ_U64(lm_series_count(oc), 3 * n);
    CHECK_EQ_U64(lm_series_count(oh), n);
    CHECK_EQ_U64(lm_series_count(http_series(f.reg, "http_requests_total", "POST", "api", "201")),
                 1);

    /* Sums to the nanosecond: (3.2 + 7.5) ms per request. */
    uint64_t b[LM_MAX_BOUNDS + 1], cnt, lo;
    int64_t hi;
    lm__histogram_read(f.db_sel, b, &cnt, &hi, &lo);
    CHECK_EQ_U64(lo, (uint64_t)n * 10700000);
    CHECK(hi == 0);
    lm__histogram_read(f.up_a, b, &cnt, &hi, &lo);
    CHECK_EQ_U64(lo, (uint64_t)n * 2500000);
    /* No exemplar was asked for, so none was allocated. */
    CHECK(atomic_load(&rq->exemplars) == NULL && atomic_load(&du->hc0.exemplars) == NULL);

    int nex = -1;
    free(render(f.reg, LM_FORMAT_OPENMETRICS, &nex));
    CHECK(nex == 0);
    lm_registry_free(other);
    lm_registry_free(f.reg);
}

/* ---------------------------------------------------------- rendering */

static void test_exemplar_rendering(void)
{
    fixture f;
    fixture_init(&f);
    lm_exemplar ex = {"request_id", S("abc"), T0};
    lm_observation obs[] = {
        {f.up_a, 2500000, LM_OBS_EXEMPLAR},
        {f.db_sel, 3200000, 0}, /* not flagged: no exemplar */
        {f.q_sel, 1, LM_OBS_EXEMPLAR},
    };
    lm_request_record rec = {.method = LM_METHOD_GET,
                             .status = 200,
                             .duration_ns = 54000000,
                             .response_bytes = 10,
                             .observations = obs,
                             .nobservations = 3,
                             .exemplar = &ex};
    lm_route_record_ex(f.api, &rec);
    /* A second request without an ID: counts, but keeps the exemplar. */
    rec.exemplar = NULL;
    lm_route_record_ex(f.api, &rec);

    int nex;
    char *om = render(f.reg, LM_FORMAT_OPENMETRICS, &nex);
    CHECK_LINE(om, "http_requests_total{method=\"GET\",endpoint=\"api\",status=\"200\"} 2 # "
                   "{request_id=\"abc\"} 1 1700000000.123");
    CHECK_LINE(om, "http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"api\","
                   "status=\"200\",le=\"0.1\"} 2 # {request_id=\"abc\"} 0.054 1700000000.123");
    CHECK_LINE(om, "http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"api\","
                   "status=\"200\",le=\"0.05\"} 0");
    CHECK_LINE(om, "http_upstream_duration_seconds_bucket{endpoint=\"api\",upstream=\"127.0.0.1:"
                   "8081\",le=\"0.0025\"} 2 # {request_id=\"abc\"} 0.0025 1700000000.123");
    CHECK_LINE(om, "db_query_duration_seconds_bucket{endpoint=\"api\",operation=\"select\","
                   "le=\"0.005\"} 2");
    CHECK_LINE(om, "db_queries_total{endpoint=\"api\",operation=\"select\"} 2 # "
                   "{request_id=\"abc\"} 1 1700000000.123");
    /* Bytes counter and _count/_sum carry none. */
    CHECK_LINE(om, "http_response_size_bytes_total{method=\"GET\",endpoint=\"api\","
                   "status=\"200\"} 20");
    CHECK(nex == 4);
    free(om);

    char *text = render(f.reg, LM_FORMAT_TEXT, &nex);
    CHECK(nex == 0);
    CHECK(strstr(text, "abc") == NULL);
    CHECK(strstr(text, " # ") == NULL);
    free(text);

    /* Latest wins; a new bucket gets its own exemplar, the old one stays. */
    lm_exemplar ex2 = {"request_id", S("def"), T0 + 1000000000};
    rec.exemplar = &ex2;
    rec.duration_ns = 2000000000; /* 2 s: le="2.5" */
    rec.nobservations = 0;
    lm_route_record_ex(f.api, &rec);
    om = render(f.reg, LM_FORMAT_OPENMETRICS, &nex);
    CHECK_LINE(om, "http_requests_total{method=\"GET\",endpoint=\"api\",status=\"200\"} 3 # "
                   "{request_id=\"def\"} 1 1700000001.123");
    CHECK_LINE(om, "http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"api\","
                   "status=\"200\",le=\"0.1\"} 2 # {request_id=\"abc\"} 0.054 1700000000.123");
    CHECK_LINE(om, "http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"api\","
                   "status=\"200\",le=\"2.5\"} 3 # {request_id=\"def\"} 2.0 1700000001.123");
    free(om);

    /* Above every bound: the +Inf bucket. Negative durations count as 0. */
    lm_exemplar ex3 = {"trace_id", S("z"), T0};
    rec.exemplar = &ex3;
    rec.duration_ns = 60000000000LL;
    lm_route_record_ex(f.api, &rec);
    rec.duration_ns = -7;
    rec.status = 204;
    lm_route_record_ex(f.api, &rec);
    om = render(f.reg, LM_FORMAT_OPENMETRICS, &nex);
    CHECK_LINE(om, "http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"api\","
                   "status=\"200\",le=\"+Inf\"} 4 # {trace_id=\"z\"} 60.0 1700000000.123");
    CHECK_LINE(om, "http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"api\","
                   "status=\"204\",le=\"0.001\"} 1 # {trace_id=\"z\"} 0.0 1700000000.123");
    free(om);
    lm_registry_free(f.reg);
}

/* ------------------------------------------------------------- limits */

/* Records one request with an exemplar (name, value) on a fresh registry
 * and returns the OpenMetrics counter line's exemplar part, "" if none. */
static void exemplar_of(const char *name, lm_str value, char *out, size_t cap)
{
    fixture f;
    fixture_init(&f);
    lm_exemplar ex = {name, value, T0};
    lm_request_record rec = {.method = LM_METHOD_GET, .status = 200, .exemplar = &ex};
    lm_route_record_ex(f.api, &rec);
    char *om = render(f.reg, LM_FORMAT_OPENMETRICS, NULL);
    const char *head = "http_requests_total{method=\"GET\",endpoint=\"api\",status=\"200\"} 1";
    const char *p = strstr(om, head);
    out[0] = '\0';
    CHECK(p != NULL);
    if (p) {
        p += strlen(head);
        size_t n = strcspn(p, "\n");
        snprintf(out, cap, "%.*s", (int)n, p);
    }
    free(om);
    lm_registry_free(f.reg);
}

static void repeat(char *dst, const char *unit, int times)
{
    dst[0] = '\0';
    for (int i = 0; i < times; i++)
        strcat(dst, unit);
}

static void test_exemplar_limits(void)
{
    char got[2048], id[1024], want[2048];

    /* 10 + 118 = 128 characters: kept. 129: dropped, not cut. */
    repeat(id, "a", 118);
    exemplar_of("request_id", S(id), got, sizeof got);
    snprintf(want, sizeof want, " # {request_id=\"%s\"} 1 1700000000.123", id);
    CHECK_STR(got, want);
    repeat(id, "a", 119);
    exemplar_of("request_id", S(id), got, sizeof got);
    CHECK_STR(got, "");

    /* Characters, not bytes: 118 two-byte and 118 four-byte characters
     * still fit; one more does not. */
    repeat(id, "\xc3\xa9", 118);
    exemplar_of("request_id", S(id), got, sizeof got);
    snprintf(want, sizeof want, " # {request_id=\"%s\"} 1 1700000000.123", id);
    CHECK_STR(got, want);
    repeat(id, "\xf0\x9f\x98\x80", 118);
    exemplar_of("request_id", S(id), got, sizeof got);
    snprintf(want, sizeof want, " # {request_id=\"%s\"} 1 1700000000.123", id);
    CHECK_STR(got, want);
    repeat(id, "\xf0\x9f\x98\x80", 119);
    exemplar_of("request_id", S(id), got, sizeof got);
    CHECK_STR(got, "");

    /* Escaped, and the checker decodes it back (render() runs it). */
    exemplar_of("request_id", S("a\"b\\c}{,=# x"), got, sizeof got);
    CHECK_STR(got, " # {request_id=\"a\\\"b\\\\c}{,=# x\"} 1 1700000000.123");
    /* 64 quotes: 128 escaped bytes, still 74 characters. */
    repeat(id, "\"", 64);
    exemplar_of("request_id", S(id), got, sizeof got);
    CHECK(strlen(got) > 128);

    /* Dropped, never altered. */
    static const struct {
        const char *name;
        const char *value;
        size_t len;
    } bad[] = {
        {"request_id", "", 0},
        {"request_id", "a\nb", 3},
        {"request_id", "a\tb", 3},
        {"request_id", "a\x7f", 2},
        {"request_id", "a\0b", 3},
        {"request_id", "\xff", 1},
        {"request_id", "\xc3", 1},              /* truncated sequence */
        {"request_id", "\xc0\xaf", 2},          /* overlong */
        {"request_id", "\xed\xa0\x80", 3},      /* surrogate */
        {"request_id", "\xf4\x90\x80\x80", 4},  /* above U+10FFFF */
        {"__request_id", "a", 1},
        {"9id", "a", 1},
        {"request-id", "a", 1},
        {"", "a", 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        exemplar_of(bad[i].name, (lm_str){bad[i].value, bad[i].len}, got, sizeof got);
        CHECK_STR(got, "");
    }
    exemplar_of(NULL, S("a"), got, sizeof got);
    CHECK_STR(got, "");
    exemplar_of("request_id", (lm_str){NULL, 3}, got, sizeof got);
    CHECK_STR(got, "");
    /* A 128-character label name leaves no room for a value. */
    repeat(id, "n", 127);
    exemplar_of(id, S("v"), got, sizeof got);
    snprintf(want, sizeof want, " # {%s=\"v\"} 1 1700000000.123", id);
    CHECK_STR(got, want);
    repeat(id, "n", 128);
    exemplar_of(id, S("v"), got, sizeof got);
    CHECK_STR(got, "");

    /* A bad byte anywhere, inside an 8-byte block or in the tail, drops
     * the ID; the printable extremes are kept. */
    for (size_t pos = 0; pos < 41; pos++) {
        static const struct {
            unsigned char b;
            bool ok;
        } probe[] = {{0x1f, false}, {0x00, false}, {0x7f, false}, {0x80, false}, {0xff, false},
                     {0x20, true},  {0x7e, true},  {0x21, true}};
        for (size_t k = 0; k < sizeof probe / sizeof *probe; k++) {
            char buf[41];
            memset(buf, 'q', sizeof buf);
            buf[pos] = (char)probe[k].b;
            lm_exemplar_prep pp;
            bool ok = lm__exemplar_prepare(&(lm_exemplar){"id", {buf, sizeof buf}, 1}, 1, &pp);
            CHECK(ok == probe[k].ok);
            if (ok != probe[k].ok)
                fprintf(stderr, "  byte 0x%02x at %zu: %s\n", probe[k].b, pos, ok ? "kept" : "dropped");
        }
    }

    /* Prepared text is what the slot stores, bytes exactly. */
    lm_exemplar_prep p;
    CHECK(lm__exemplar_prepare(&(lm_exemplar){"id", S("x\xc3\xa9"), 5}, 5, &p));
    CHECK(p.lens == (2u << 16 | 3u) && p.nwords == 1 && p.unix_ns == 5);
    CHECK(memcmp(p.words, "idx\xc3\xa9\0\0\0", 8) == 0);
}

static void test_exemplar_clock(void)
{
    fixture f;
    fixture_init(&f);
    struct timespec a, b;
    clock_gettime(CLOCK_REALTIME, &a);
    lm_exemplar ex = {"request_id", S("t"), 0};
    lm_request_record rec = {.method = LM_METHOD_GET, .status = 200, .exemplar = &ex};
    lm_route_record_ex(f.api, &rec);
    clock_gettime(CLOCK_REALTIME, &b);
    lm_series *rq = http_series(f.reg, "http_requests_total", "GET", "api", "200");
    lm_exemplar_copy c;
    CHECK(rq && lm__exemplar_load((lm_exemplar_home){&rq->exemplars, 1}, 0, &c));
    int64_t ta = (int64_t)a.tv_sec * 1000000000 + a.tv_nsec;
    int64_t tb = (int64_t)b.tv_sec * 1000000000 + b.tv_nsec;
    CHECK(c.unix_ns >= ta && c.unix_ns <= tb);
    CHECK(c.value == 1 && c.name_len == 10 && c.value_len == 1);
    /* Index out of range, gauge: nothing. */
    CHECK(!lm__exemplar_load((lm_exemplar_home){&rq->exemplars, 1}, 1, &c));
    lm_registry_free(f.reg);
}

/* Changing the buckets keeps the histogram: a bucket shows the newest
 * exemplar among the union buckets it adds up; after the union grows, the
 * new cells start without exemplars and take the next ones. */
static void test_exemplar_after_bucket_change(void)
{
    fixture f;
    fixture_init(&f);
    lm_exemplar ex = {"request_id", S("before"), T0};
    lm_request_record rec = {.method = LM_METHOD_GET, .status = 200, .duration_ns = 54000000,
                             .exemplar = &ex};
    lm_route_record_ex(f.api, &rec);
    lm_error err;
    double bounds[] = {0.01, 1};
    CHECK(lm_http_register(f.reg, &(lm_http_options){.bounds = bounds, .nbounds = 2}, &err) ==
          f.http);
    ex.label_value = S("after");
    ex.unix_ns = T0 + 1000000000;
    lm_route_record_ex(f.api, &rec);
    char *om = render(f.reg, LM_FORMAT_OPENMETRICS, NULL);
    /* The same histogram with other buckets: both observations count, and
     * the bucket shows the newest exemplar of the union buckets it adds up. */
    CHECK(strstr(om, "before\"} 0.054") == NULL);
    CHECK_LINE(om, "http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"api\","
                   "status=\"200\",le=\"1.0\"} 2 # {request_id=\"after\"} 0.054 1700000001.123");
    CHECK_LINE(om, "http_requests_total{method=\"GET\",endpoint=\"api\",status=\"200\"} 2 # "
                   "{request_id=\"after\"} 1 1700000001.123");
    free(om);

    double grown[] = {0.03, 0.06, 1}; /* 0.03 and 0.06 are new to the union */
    CHECK(lm_http_register(f.reg, &(lm_http_options){.bounds = grown, .nbounds = 3}, &err) ==
          f.http);
    om = render(f.reg, LM_FORMAT_OPENMETRICS, NULL);
    CHECK_LINE(om, "http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"api\","
                   "status=\"200\",le=\"0.06\"} 0");
    CHECK_LINE(om, "http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"api\","
                   "status=\"200\",le=\"1.0\"} 2");
    free(om);
    ex.label_value = S("grown");
    ex.unix_ns = T0 + 2000000000;
    lm_route_record_ex(f.api, &rec);
    om = render(f.reg, LM_FORMAT_OPENMETRICS, NULL);
    /* 54 ms before the growth counted in (50 ms, 100 ms], above the new
     * bound 60 ms (a lower estimate there); from now on exact */
    CHECK_LINE(om, "http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"api\","
                   "status=\"200\",le=\"0.06\"} 1 # {request_id=\"grown\"} 0.054 1700000002.123");
    CHECK_LINE(om, "http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"api\","
                   "status=\"200\",le=\"1.0\"} 3");
    free(om);
    lm_registry_free(f.reg);
}

/* A slot takes a new exemplar only LM_EXEMPLAR_MIN_INTERVAL_NS after the
 * stored one, never an older one, unless the clock went back by more than a
 * second. */
static void test_exemplar_rate(void)
{
    fixture f;
    fixture_init(&f);
    lm_series *rq = NULL;
    static const struct {
        int64_t t;
        const char *id;
        const char *want;
    } steps[] = {
        {T0, "a", "a"},
        {T0 + LM_EXEMPLAR_MIN_INTERVAL_NS - 1, "b", "a"}, /* too soon */
        {T0 + LM_EXEMPLAR_MIN_INTERVAL_NS, "c", "c"},
        {T0 - 500000000, "d", "c"},                       /* older: not latest */
        {T0 - 2000000000, "e", "e"},                      /* clock stepped back */
        {INT64_MAX, "f", "f"},
        {INT64_MAX, "g", "f"},
        {1, "h", "h"},                                    /* far back again */
    };
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        lm_exemplar ex = {"request_id", S(steps[i].id), steps[i].t};
        lm_request_record rec = {.method = LM_METHOD_GET, .status = 200, .exemplar = &ex};
        lm_route_record_ex(f.api, &rec);
        rq = rq ? rq : http_series(f.reg, "http_requests_total", "GET", "api", "200");
        lm_exemplar_copy c;
        CHECK(rq && lm__exemplar_load((lm_exemplar_home){&rq->exemplars, 1}, 0, &c));
        CHECK(c.value_len == 1 && c.text[c.name_len] == steps[i].want[0]);
    }
    lm_registry_free(f.reg);
}

/* The checker itself must refuse broken exemplars, or the tests above prove
 * nothing. */
static void test_checker_rejects_bad_exemplars(void)
{
    static const struct {
        lm_format fmt;
        const char *body;
    } bad[] = {
        {LM_FORMAT_TEXT, "# TYPE a_total counter\na_total 1 # {x=\"y\"} 1\n"},
        {LM_FORMAT_OPENMETRICS, "# TYPE g gauge\ng 1 # {x=\"y\"} 1\n# EOF\n"},
        {LM_FORMAT_OPENMETRICS,
         "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1 # {x=\"y\"} 1\nh_sum 1\n# EOF\n"},
        {LM_FORMAT_OPENMETRICS, "# TYPE a counter\na_total 1 # {x=\"y\"}\n# EOF\n"},
        {LM_FORMAT_OPENMETRICS, "# TYPE a counter\na_total 1 # {x=\"y\"} abc\n# EOF\n"},
        {LM_FORMAT_OPENMETRICS, "# TYPE a counter\na_total 1 # {x=\"y\"} 1 nan\n# EOF\n"},
        {LM_FORMAT_OPENMETRICS, "# TYPE a counter\na_total 1 # {x=\"y} 1\n# EOF\n"},
        {LM_FORMAT_OPENMETRICS, "# TYPE a counter\na_total 1 # {x=\"\\q\"} 1\n# EOF\n"},
        {LM_FORMAT_OPENMETRICS, "# TYPE a counter\na_total 1 # {x=\"1\",x=\"2\"} 1\n# EOF\n"},
        {LM_FORMAT_OPENMETRICS, "# TYPE a counter\na_total 1 # {9=\"1\"} 1\n# EOF\n"},
        {LM_FORMAT_OPENMETRICS, "# TYPE a counter\na_total 1 #{x=\"1\"} 1\n# EOF\n"},
        {LM_FORMAT_OPENMETRICS, "# TYPE a counter\na_total 1 # x\n# EOF\n"},
        {LM_FORMAT_OPENMETRICS,
         "# TYPE h histogram\nh_bucket{le=\"1.0\"} 1 # {x=\"y\"} 2.5\nh_bucket{le=\"+Inf\"} 1\n"
         "h_count 1\nh_sum 2.5\n# EOF\n"},
    };
    char msg[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = expo_check(bad[i].body, strlen(bad[i].body), bad[i].fmt, NULL, NULL, NULL, msg,
                            sizeof msg);
        CHECK(rc != 0);
        if (rc == 0)
            fprintf(stderr, "  accepted: %s", bad[i].body);
    }
    /* 129 characters: refused; 128: accepted; multibyte counted once. */
    char body[1024], id[600];
    repeat(id, "a", 118);
    snprintf(body, sizeof body, "# TYPE a counter\na_total 1 # {request_id=\"%s\"} 1\n# EOF\n", id);
    CHECK(expo_check(body, strlen(body), LM_FORMAT_OPENMETRICS, NULL, NULL, NULL, msg,
                     sizeof msg) == 0);
    repeat(id, "\xc3\xa9", 118);
    snprintf(body, sizeof body, "# TYPE a counter\na_total 1 # {request_id=\"%s\"} 1\n# EOF\n", id);
    CHECK(expo_check(body, strlen(body), LM_FORMAT_OPENMETRICS, NULL, NULL, NULL, msg,
                     sizeof msg) == 0);
    repeat(id, "a", 119);
    snprintf(body, sizeof body, "# TYPE a counter\na_total 1 # {request_id=\"%s\"} 1\n# EOF\n", id);
    CHECK(expo_check(body, strlen(body), LM_FORMAT_OPENMETRICS, NULL, NULL, NULL, msg,
                     sizeof msg) != 0);
    /* Accepted forms: empty label set, timestamp before the exemplar. */
    const char *ok = "# TYPE a counter\na_total 1 123 # {} 1 1.5\n# TYPE h histogram\n"
                     "h_bucket{le=\"1.0\"} 1 # {a=\"\",b=\"x\"} 0.5\nh_bucket{le=\"+Inf\"} 1\n"
                     "h_count 1\nh_sum 0.5\n# EOF\n";
    int rc = expo_check(ok, strlen(ok), LM_FORMAT_OPENMETRICS, NULL, NULL, NULL, msg, sizeof msg);
    CHECK(rc == 0);
    if (rc != 0)
        fprintf(stderr, "  refused: %s\n", msg);
}

int main(void)
{
    test_record_ex_counts();
    test_exemplar_rendering();
    test_exemplar_limits();
    test_exemplar_clock();
    test_exemplar_after_bucket_change();
    test_exemplar_rate();
    test_checker_rejects_bad_exemplars();
    TEST_MAIN_END();
}
