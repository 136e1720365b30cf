/* lm_http_options.flags, the cardinality levers: status classes in every
 * family, a latency histogram without the status label, both together,
 * what the exposition shows, and that another shape for an existing prefix
 * is refused while the same one is given back. */
#include "libmetrics.h"
#include "lm_capture.h"
#include "lm_test.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static lm_str S(const char *s) { return (lm_str){s, strlen(s)}; }

static char *expo(lm_registry *r)
{
    capture c = {0};
    lm_error e;
    CHECK(lm_expo_write(r, LM_FORMAT_TEXT, 0, capture_write, &c, &e) == LM_OK);
    return c.p;
}

static bool has(const char *body, const char *line)
{
    if (strstr(body, line) == NULL) {
        fprintf(stderr, "missing line: %s\n", line);
        return false;
    }
    return true;
}

static void record_mix(lm_route *rt)
{
    int statuses[] = {200, 200, 201, 204, 307, 404, 404, 422, 500, 503, 42};
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++)
        lm_route_record(rt, LM_METHOD_GET, statuses[i], 1000000, 10, NULL, 0);
}

static void test_shape(unsigned flags)
{
    lm_error e;
    lm_registry *r = lm_registry_new(NULL, &e);
    lm_http_options o = {.prefix = "s_", .flags = flags};
    lm_http *h = lm_http_register(r, &o, &e);
    CHECK(h != NULL);
    lm_route *rt = lm_http_route(h, S("/items/{id}"), &e);
    record_mix(rt);
    char *b = expo(r);
    if (flags & LM_HTTP_STATUS_CLASSES) {
        CHECK(has(b, "s_http_requests_total{method=\"GET\",endpoint=\"/items/{id}\",status=\"2xx\"} 4\n"));
        CHECK(has(b, "s_http_requests_total{method=\"GET\",endpoint=\"/items/{id}\",status=\"3xx\"} 1\n"));
        CHECK(has(b, "s_http_requests_total{method=\"GET\",endpoint=\"/items/{id}\",status=\"4xx\"} 3\n"));
        CHECK(has(b, "s_http_requests_total{method=\"GET\",endpoint=\"/items/{id}\",status=\"5xx\"} 2\n"));
        CHECK(has(b, "s_http_response_size_bytes_total{method=\"GET\",endpoint=\"/items/{id}\",status=\"4xx\"} 30\n"));
        CHECK(strstr(b, "status=\"200\"") == NULL);
    } else {
        CHECK(has(b, "s_http_requests_total{method=\"GET\",endpoint=\"/items/{id}\",status=\"200\"} 2\n"));
        CHECK(strstr(b, "status=\"2xx\"") == NULL);
    }
    CHECK(has(b, "status=\"other\"} 1\n"));
    if (flags & LM_HTTP_DURATION_NO_STATUS) {
        CHECK(has(b, "s_http_request_duration_seconds_count{method=\"GET\",endpoint=\"/items/{id}\"} 11\n"));
        CHECK(has(b, "s_http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"/items/{id}\",le=\"+Inf\"} 11\n"));
        CHECK(strstr(b, "s_http_request_duration_seconds_count{method=\"GET\",endpoint=\"/items/{id}\",status") == NULL);
    } else {
        CHECK(strstr(b, "s_http_request_duration_seconds_count{method=\"GET\",endpoint=\"/items/{id}\",status=") != NULL);
    }
    free(b);

    /* Same shape: the same handle; new bounds change the exposed buckets,
     * keep the labels, and the histogram keeps counting (one more request). */
    CHECK(lm_http_register(r, &o, &e) == h);
    double bounds[] = {0.5, 1};
    lm_http_options ob = o;
    ob.bounds = bounds;
    ob.nbounds = 2;
    CHECK(lm_http_register(r, &ob, &e) == h);
    lm_route_record(rt, LM_METHOD_GET, 200, 1000000, 0, NULL, 0);
    b = expo(r);
    CHECK(has(b, flags & LM_HTTP_DURATION_NO_STATUS
                     ? "s_http_request_duration_seconds_count{method=\"GET\",endpoint=\"/items/{id}\"} 12\n"
                     : (flags & LM_HTTP_STATUS_CLASSES
                            ? "s_http_request_duration_seconds_count{method=\"GET\",endpoint=\"/items/{id}\",status=\"2xx\"} 5\n"
                            : "s_http_request_duration_seconds_count{method=\"GET\",endpoint=\"/items/{id}\",status=\"200\"} 3\n")));
    free(b);

    /* Another shape for the prefix: refused, saying why. */
    for (unsigned other = 0; other < 4; other++) {
        if (other == flags)
            continue;
        lm_http_options x = {.prefix = "s_", .flags = other};
        e.message[0] = 0;
        CHECK(lm_http_register(r, &x, &e) == NULL);
        CHECK(e.code == LM_ERR_EXISTS);
        CHECK(strstr(e.message, "cannot change in place") != NULL);
    }
    lm_http_options bad = {.prefix = "t_", .flags = 0x80};
    CHECK(lm_http_register(r, &bad, &e) == NULL && e.code == LM_ERR_INVALID);
    lm_registry_free(r);
}

int main(void)
{
    for (unsigned f = 0; f < 4; f++)
        test_shape(f);
    TEST_MAIN_END();
}
