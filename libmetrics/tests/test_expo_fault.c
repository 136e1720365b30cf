/* A failed exposition never passes for a complete one. Through the
 * registry's test-only fault hook, every point where the cursor can fail
 * is made to fail in turn: each line about to be rendered, each allocation
 * (at begin and, after a family's help grew mid-scrape, while streaming),
 * and the /proc read. Each time, the bytes already returned are whole lines,
 * a prefix of the complete body; every later read returns 0; and
 * lm_expo_status (and lm_expo_write) report the failure with the number of
 * bytes that got out. Without a fault the same cursor ends with LM_OK.
 * Run under ASan/UBSan and valgrind by tests/c.sh: no leak on any path. */
#include "core.h"
#include "lm_capture.h"
#include "lm_test.h"

#include <stdlib.h>

static lm_str S(const char *s)
{
    return (lm_str){s, strlen(s)};
}

/* Fails the `at`-th call (1-based) for `site`, counting all of them. */
typedef struct fault {
    int site;
    long at;
    long calls;
} fault;

static bool fault_fn(void *ctx, int site)
{
    fault *f = ctx;
    if (site != f->site)
        return false;
    return ++f->calls == f->at;
}

static const char *const L2[] = {"route", "code"};

static lm_registry *build(void)
{
    lm_error e = {0};
    lm_registry *r = lm_registry_new(NULL, &e);
    lm_family *c = lm_family_register(
        r, &(lm_family_options){.type = LM_COUNTER, .name = "f_requests_total", .help = "Req.",
                                .label_names = L2, .nlabels = 2},
        &e);
    lm_family *h = lm_family_register(
        r, &(lm_family_options){.type = LM_HISTOGRAM, .name = "f_latency_seconds", .help = "Lat.",
                                .label_names = L2, .nlabels = 2, .unit_scale = 1e9},
        &e);
    lm_family *g = lm_family_register(
        r, &(lm_family_options){.type = LM_GAUGE, .name = "f_temp", .help = "Temp."}, &e);
    char rt[16];
    for (int i = 0; i < 5; i++) {
        snprintf(rt, sizeof rt, "r%d", i);
        lm_str v[2] = {S(rt), S(i % 2 ? "200" : "500")};
        lm_counter_add(lm_series_get(c, v, &e), (uint64_t)i + 1);
        lm_histogram_observe(lm_series_get(h, v, &e), (int64_t)i * 3000000);
    }
    lm_gauge_set(lm_series_get(g, NULL, &e), 7);
    lm_http *http = lm_http_register(r, &(lm_http_options){.prefix = "f_"}, &e);
    lm_route *route = lm_http_route(http, S("api"), &e);
    lm_exemplar ex = {"request_id", S("abc"), 1700000000000000000LL};
    lm_request_record rec = {.method = LM_METHOD_GET, .status = 200, .duration_ns = 4000000,
                             .exemplar = &ex};
    lm_route_record_ex(route, &rec);
    return r;
}

static void check_cut(const char *full, size_t full_len, const char *got, size_t n,
                      lm_expo *x, const char *what, long k)
{
    char buf[8];
    lm_error e = {0};
    bool prefix = n < full_len && memcmp(full, got, n) == 0;
    bool whole_lines = n == 0 || got[n - 1] == '\n';
    lm_status st = lm_expo_status(x, &e);
    char want[64];
    snprintf(want, sizeof want, "output cut after %zu bytes", n);
    bool said = st == LM_ERR_NOMEM && e.code == LM_ERR_NOMEM && strstr(e.message, want);
    bool stays = lm_expo_read(x, buf, sizeof buf) == 0 && lm_expo_status(x, NULL) == st;
    CHECK(prefix && whole_lines && said && stays);
    if (!(prefix && whole_lines && said && stays))
        fprintf(stderr, "  %s fault %ld: %zu of %zu bytes, status %d \"%s\"\n", what, k, n,
                full_len, (int)st, e.message);
}

static void test_every_unit(lm_format fmt)
{
    lm_registry *r = build();
    lm_error e = {0};
    fault f = {.site = LM__FAULT_UNIT, .at = 0};
    r->fault = fault_fn;
    r->fault_ctx = &f;

    lm_expo *x = lm_expo_begin(r, fmt, 0, &e);
    size_t full_len;
    char *full = capture_drain(x, 7, &full_len);
    CHECK(lm_expo_status(x, &e) == LM_OK && full_len > 1000);
    lm_expo_end(x);
    long units = f.calls;
    CHECK(units > 50);

    for (long k = 1; k <= units - 1; k++) { /* the last call finds the end */
        f = (fault){.site = LM__FAULT_UNIT, .at = k};
        x = lm_expo_begin(r, fmt, 0, &e);
        size_t n;
        char *got = capture_drain(x, 7, &n);
        check_cut(full, full_len, got, n, x, "unit", k);
        free(got);
        lm_expo_end(x);

        /* lm_expo_write says so too, and wrote exactly that prefix */
        f = (fault){.site = LM__FAULT_UNIT, .at = k};
        capture c = {0};
        lm_status st = lm_expo_write(r, fmt, 0, capture_write, &c, &e);
        bool ok = st == LM_ERR_NOMEM && c.len < full_len &&
                  (c.len == 0 || memcmp(c.p, full, c.len) == 0);
        CHECK(ok);
        capture_free(&c);
    }
    free(full);
    r->fault = NULL;
    lm_registry_free(r);
}

static void test_every_alloc(void)
{
    lm_registry *r = build();
    lm_error e = {0};
    fault f = {.site = LM__FAULT_ALLOC, .at = 0};
    r->fault = fault_fn;
    r->fault_ctx = &f;
    lm_expo *x = lm_expo_begin(r, LM_FORMAT_TEXT, 0, &e);
    size_t len;
    free(capture_drain(x, 7, &len));
    lm_expo_end(x);
    long allocs = f.calls;
    CHECK(allocs >= 4);
    for (long k = 1; k <= allocs; k++) {
        f = (fault){.site = LM__FAULT_ALLOC, .at = k};
        e = (lm_error){0};
        x = lm_expo_begin(r, LM_FORMAT_TEXT, 0, &e);
        CHECK(x == NULL && e.code == LM_ERR_NOMEM);
        lm_expo_end(x);
        f = (fault){.site = LM__FAULT_ALLOC, .at = k};
        capture c = {0};
        CHECK(lm_expo_write(r, LM_FORMAT_TEXT, 0, capture_write, &c, &e) == LM_ERR_NOMEM &&
              c.len == 0);
        capture_free(&c);
    }

    /* A help text that grew after begin makes the cursor grow its buffer
     * mid-stream: that works, and when that allocation fails the stream is
     * cut and says so. */
    char big[4096];
    memset(big, 'h', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    lm_family_options o = {.type = LM_GAUGE, .name = "f_temp", .help = big};
    for (int fail_it = 0; fail_it < 2; fail_it++) {
        r->fault = NULL;
        o.help = "Temp.";
        CHECK(lm_family_replace(r, &o, &e) != NULL);
        x = lm_expo_begin(r, LM_FORMAT_TEXT, 0, &e); /* sized for the short help */
        char head[8];
        CHECK(lm_expo_read(x, head, sizeof head) == sizeof head);
        o.help = big;
        CHECK(lm_family_replace(r, &o, &e) != NULL);
        f = (fault){.site = LM__FAULT_ALLOC, .at = 1};
        r->fault = fail_it ? fault_fn : NULL;
        char *rest = capture_drain(x, 7, &len);
        if (fail_it) {
            CHECK(lm_expo_status(x, &e) == LM_ERR_NOMEM && strstr(rest, "# HELP f_temp") == NULL);
            CHECK(len > 0 && rest[len - 1] == '\n');
            CHECK(f.calls == 1); /* the growth is what failed */
        } else {
            CHECK(lm_expo_status(x, &e) == LM_OK && strstr(rest, "# HELP f_temp hhhh") != NULL);
        }
        free(rest);
        lm_expo_end(x);
    }
    r->fault = NULL;
    lm_registry_free(r);
}

static void test_proc(void)
{
    lm_registry *r = build();
    lm_error e = {0};
    fault f = {.site = LM__FAULT_PROC, .at = 1};
    r->fault = fault_fn;
    r->fault_ctx = &f;
    CHECK(lm_expo_begin(r, LM_FORMAT_TEXT, LM_EXPO_PROCESS, &e) == NULL);
    CHECK(e.code == LM_ERR_IO && strstr(e.message, "cannot read the process figures"));
    f = (fault){.site = LM__FAULT_PROC, .at = 1};
    capture c = {0};
    CHECK(lm_expo_write(r, LM_FORMAT_OPENMETRICS, LM_EXPO_PROCESS, capture_write, &c, &e) ==
              LM_ERR_IO &&
          c.len == 0);
    capture_free(&c);
    /* without the fault, and without the flag, all is well */
    f = (fault){.site = LM__FAULT_PROC, .at = 0};
    lm_expo *x = lm_expo_begin(r, LM_FORMAT_TEXT, LM_EXPO_PROCESS, &e);
    size_t len;
    char *body = capture_drain(x, 7, &len);
    CHECK(lm_expo_status(x, &e) == LM_OK && strstr(body, "process_open_fds "));
    free(body);
    lm_expo_end(x);
    r->fault = NULL;
    lm_registry_free(r);
}

int main(void)
{
    test_every_unit(LM_FORMAT_TEXT);
    test_every_unit(LM_FORMAT_OPENMETRICS);
    test_every_alloc();
    test_proc();
    CHECK(lm_expo_status(NULL, NULL) == LM_ERR_INVALID);
    TEST_MAIN_END();
}
