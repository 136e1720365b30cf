/*
 * Reports rendered while other threads record requests, create routes and
 * register business counters (the TSan build runs this): no data race, no
 * crash, and once the writers have joined the page shows exact totals.
 */
#include "libmetrics_report.h"
#include "lm_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct shared {
    lm_registry *reg;
    lm_http *http;
    lm_route *hot;
    int records;
    int routes;
} shared;

static int discard(void *ctx, const char *buf, size_t len)
{
    (void)buf;
    *(size_t *)ctx += len;
    return 0;
}

static void *recorder(void *arg)
{
    shared *s = arg;
    for (int i = 0; i < s->records; i++)
        lm_route_record(s->hot, LM_METHOD_GET, i % 10 ? 200 : 503, (int64_t)(i % 100) * 100000, 1,
                        NULL, 0);
    return NULL;
}

static void *creator(void *arg)
{
    shared *s = arg;
    char name[32];
    lm_error err;
    for (int i = 0; i < s->routes; i++) {
        int n = snprintf(name, sizeof name, "/new/%d", i);
        lm_route *r = lm_http_route(s->http, (lm_str){name, (size_t)n}, &err);
        if (r)
            lm_route_record(r, LM_METHOD_POST, 201, 1000000, 1, NULL, 0);
        if (i % 16 == 0) {
            n = snprintf(name, sizeof name, "biz_%d_total", i);
            lm_family_options fo = {.type = LM_COUNTER, .name = name, .help = "b"};
            lm_family *f = lm_family_register(s->reg, &fo, &err);
            if (f)
                lm_counter_add(lm_series_get(f, NULL, &err), 1);
        }
    }
    return NULL;
}

static int memstream_write(void *ctx, const char *buf, size_t len)
{
    return fwrite(buf, 1, len, ctx) == len ? 0 : 1;
}

int main(void)
{
    bool small = getenv("LM_TEST_SMALL") != NULL;
    lm_error err;
    shared s = {.records = small ? 2000 : 50000, .routes = small ? 64 : 400};
    s.reg = lm_registry_new(NULL, &err);
    CHECK(s.reg != NULL);
    if (!s.reg)
        TEST_MAIN_END();
    s.http = lm_http_register(s.reg, NULL, &err);
    s.hot = s.http ? lm_http_route(s.http, (lm_str){"hot", 3}, &err) : NULL;
    CHECK(s.hot != NULL);
    if (!s.hot) {
        lm_registry_free(s.reg);
        TEST_MAIN_END();
    }

    pthread_t t[3];
    pthread_create(&t[0], NULL, recorder, &s);
    pthread_create(&t[1], NULL, recorder, &s);
    pthread_create(&t[2], NULL, creator, &s);
    int reports = small ? 4 : 30;
    for (int i = 0; i < reports; i++) {
        size_t n = 0;
        CHECK(lm_report_markdown(s.reg, NULL, discard, &n, &err) == LM_OK);
        CHECK(n > 0);
        n = 0;
        CHECK(lm_report_html(s.reg, NULL, discard, &n, &err) == LM_OK);
        CHECK(n > 0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);

    /* Quiet now: the page must show exact totals. hot: 2 x records, one
     * in ten 503 -> 10 % 5xx, FAIL. */
    char *md = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&md, &len);
    CHECK(f != NULL);
    if (f) {
        CHECK(lm_report_markdown(s.reg, NULL, memstream_write, f, &err) == LM_OK);
        fclose(f);
        char want[96];
        snprintf(want, sizeof want, "| **FAIL** | hot | %d | ", 2 * s.records);
        CHECK(md && strstr(md, want) != NULL);
        snprintf(want, sizeof want, "%d routes", s.routes + 1);
        CHECK(md && strstr(md, want) != NULL);
        snprintf(want, sizeof want, "| ok | /new/%d | 1 | ", s.routes - 1);
        CHECK(md && strstr(md, want) != NULL);
        CHECK(md && strstr(md, "### biz\\_0\\_total") != NULL);
        free(md);
    }
    lm_registry_free(s.reg);
    TEST_MAIN_END();
}
