/*
 * The status report: numbers against hand-computed values, sort order,
 * error split, escaping of hostile names in both Markdown and HTML, writer
 * failures, chunk bounds, the HTML truncation bound, and one section per
 * family kind (Server-Timing apart from business counters).
 */
#include "libmetrics_report.h"
#include "lm_capture.h"
#include "lm_test.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000LL /* recorded units are nanoseconds */

/* ------------------------------------------------------------ helpers */

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

/* The Markdown table row whose second cell is exactly `name`, split into
 * cells at unescaped pipes (the same rule the HTML renderer uses). Returns
 * the number of cells, 0 when no such row exists. */
#define MAX_CELLS 16
static size_t find_row(const char *md, const char *name, char cells[MAX_CELLS][256])
{
    for (const char *line = md; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (line[0] != '|')
            continue;
        size_t n = 0, k = 0;
        const char *p = line + 1;
        while (*p && *p != '\n' && n < MAX_CELLS) {
            if (*p == '\\' && p[1] && p[1] != '\n') {
                if (k < 254) {
                    cells[n][k++] = p[0];
                    cells[n][k++] = p[1];
                }
                p += 2;
                continue;
            }
            if (*p == '|') {
                cells[n][k] = '\0';
                n++;
                k = 0;
                p++;
                continue;
            }
            if (k < 255)
                cells[n][k++] = *p;
            p++;
        }
        /* trim */
        for (size_t i = 0; i < n; i++) {
            char *c = cells[i];
            size_t len = strlen(c);
            while (len && c[len - 1] == ' ')
                c[--len] = '\0';
            size_t a = 0;
            while (c[a] == ' ')
                a++;
            memmove(c, c + a, len - a + 1);
        }
        if (n >= 2 && strcmp(cells[1], name) == 0)
            return n;
    }
    return 0;
}

enum { C_STATE, C_ROUTE, C_REQ, C_RATE, C_5XX, C_4XX, C_P50, C_P95, C_P99, C_INFLIGHT, C_BAR };

static void record_n(lm_route *r, int n, int status, int64_t ns)
{
    for (int i = 0; i < n; i++)
        lm_route_record(r, LM_METHOD_GET, status, ns, 100, NULL, 0);
}

/* -------------------------------------------------------------- fixture */

/* Buckets (ms): <=10, <=20, <=50, <=100, +Inf. */
static const double bounds[] = {0.010, 0.020, 0.050, 0.100};

static const char hostile1[] = "/<script>alert(1)</script>";
/* pipe, backticks, newline, invalid UTF-8 (0xFF), a leading list marker */
static const char hostile2[] = "- pipe|tick`x`\nnl\xff" "end";

static lm_registry *fixture(void)
{
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return NULL;
    lm_http_options ho = {.prefix = "", .bounds = bounds, .nbounds = 4};
    lm_http *http = lm_http_register(reg, &ho, &err);
    CHECK(http != NULL);
    if (!http)
        return reg;
#define ROUTE(s) lm_http_route(http, (lm_str){s, sizeof s - 1}, &err)
    lm_route *home = ROUTE("home"), *api = ROUTE("api"), *slow = ROUTE("slow"),
             *contact = ROUTE("contact"), *idle = ROUTE("idle"), *h1 = ROUTE(hostile1),
             *h2 = ROUTE(hostile2);
    CHECK(home && api && slow && contact && idle && h1 && h2);
    if (!(home && api && slow && contact && idle && h1 && h2))
        return reg;

    /* home: 100 x 200. 40 at 5 ms, 40 at 15 ms, 15 at 40 ms, 5 at 80 ms.
     * Cumulative counts (<=10, <=20, <=50, <=100, +Inf) = 40, 80, 95, 100, 100.
     *   p50: rank 0.5*100 = 50; first cum >= 50 is <=20 (80); inside it
     *        10 + (20-10) * (50-40)/(80-40) = 10 + 10*0.25 = 12.5 ms
     *   p95: rank 95; first cum >= 95 is <=50 (95);
     *        20 + (50-20) * (95-80)/(95-80) = 50 ms
     *   p99: rank 99; first cum >= 99 is <=100 (100);
     *        50 + (100-50) * (99-95)/(100-95) = 50 + 50*0.8 = 90 ms */
    record_n(home, 40, 200, 5 * MS);
    record_n(home, 40, 200, 15 * MS);
    record_n(home, 15, 200, 40 * MS);
    record_n(home, 5, 200, 80 * MS);

    /* api: 20 requests, 15 x 200, 3 x 500, 2 x 404, all at 30 ms, so every
     * observation sits in (20, 50]; cum = 0, 0, 20, 20, 20.
     *   5xx = 3/20 = 15 %, 4xx = 2/20 = 10 %
     *   p50: rank 10 -> 20 + 30 * 10/20   = 35 ms
     *   p95: rank 19 -> 20 + 30 * 19/20   = 48.5 ms
     *   p99: rank 19.8 -> 20 + 30 * 19.8/20 = 49.7 ms */
    record_n(api, 15, 200, 30 * MS);
    record_n(api, 3, 500, 30 * MS);
    record_n(api, 2, 404, 30 * MS);
    int64_t *inflight = lm_route_inflight_cell(api);
    __atomic_add_fetch(inflight, 2, __ATOMIC_RELAXED);

    /* slow: 10 x 200, 2 at 5 ms and 8 at 500 ms (+Inf bucket);
     * cum = 2, 2, 2, 2, 10. Ranks 5, 9.5, 9.9 all exceed every finite
     * cumulative count (2), so histogram_quantile returns the upper bound
     * of the last finite bucket: 100 ms, shown as "≥ 100". */
    record_n(slow, 2, 200, 5 * MS);
    record_n(slow, 8, 200, 500 * MS);

    /* contact: 200 requests, 199 x 200 and 1 x 503 (0.5 % 5xx: warn, not
     * FAIL), all at 1 ms: cum = 200 in the first bucket, interpolated
     * from 0: p50 = 10 * 100/200 = 5 ms, p95 = 10 * 190/200 = 9.5 ms,
     * p99 = 10 * 198/200 = 9.9 ms. */
    record_n(contact, 199, 200, 1 * MS);
    record_n(contact, 1, 503, 1 * MS);

    /* hostile names: one request each at 1 ms (p99 = 10 * 0.99 = 9.9 ms). */
    record_n(h1, 1, 200, 1 * MS);
    record_n(h2, 1, 200, 1 * MS);

    /* Business counters: one kept, the excluded kinds beside it. */
    const char *kind[] = {"kind"};
    lm_family_options fo = {.type = LM_COUNTER,
                            .name = "orders_total",
                            .help = "Orders <b>placed</b> | *bold* [x](javascript:alert(1))",
                            .label_names = kind,
                            .nlabels = 1};
    lm_family *orders = lm_family_register(reg, &fo, &err);
    CHECK(orders != NULL);
    if (orders) {
        lm_str v1 = {"<img src=x onerror=alert(1)>", 28}, v2 = {"book", 4};
        lm_counter_add(lm_series_get(orders, &v1, &err), 7);
        lm_counter_add(lm_series_get(orders, &v2, &err), 3);
    }
    static const char *const excluded[] = {"libmetrics_internal_total", "process_extra_total",
                                           "go_things_total"};
    for (size_t i = 0; i < 3; i++) {
        lm_family_options x = {.type = LM_COUNTER, .name = excluded[i], .help = "x"};
        lm_family *f = lm_family_register(reg, &x, &err);
        CHECK(f != NULL);
        if (f)
            lm_counter_add(lm_series_get(f, NULL, &err), 1);
    }
    lm_family_options g = {.type = LM_GAUGE, .name = "queue_depth", .help = "gauge"};
    CHECK(lm_family_register(reg, &g, &err) != NULL);
    return reg;
}

/* ---------------------------------------------------------------- tests */

static void test_markdown_numbers(lm_registry *reg)
{
    capture s = {0};
    lm_error err;
    lm_report_options o = {.http_prefix = "", .title = "Shop <script>x</script>"};
    CHECK(lm_report_markdown(reg, &o, capture_write, &s, &err) == LM_OK);
    if (!s.p)
        return;
    char c[MAX_CELLS][256];

    CHECK(find_row(s.p, "home", c) == 11);
    CHECK_STR(c[C_STATE], "ok");
    CHECK_STR(c[C_REQ], "100");
    CHECK_STR(c[C_5XX], "0");
    CHECK_STR(c[C_4XX], "0");
    CHECK_STR(c[C_P50], "12.5");
    CHECK_STR(c[C_P95], "50");
    CHECK_STR(c[C_P99], "90");
    CHECK_STR(c[C_INFLIGHT], "0");
    /* 40, 40, 15, 5, 0 against the max 40: levels 1+7*c/40 -> 8, 8, 3, 1,
     * empty: █ █ ▃ ▁ · */
    CHECK_STR(c[C_BAR], "`\xE2\x96\x88\xE2\x96\x88\xE2\x96\x83\xE2\x96\x81\xC2\xB7`");

    CHECK(find_row(s.p, "api", c) == 11);
    CHECK_STR(c[C_STATE], "**FAIL**");
    CHECK_STR(c[C_REQ], "20");
    CHECK_STR(c[C_5XX], "15");
    CHECK_STR(c[C_4XX], "10");
    CHECK_STR(c[C_P50], "35");
    CHECK_STR(c[C_P95], "48.5");
    CHECK_STR(c[C_P99], "49.7");
    CHECK_STR(c[C_INFLIGHT], "2");

    CHECK(find_row(s.p, "slow", c) == 11);
    CHECK_STR(c[C_P50], "\xE2\x89\xA5 100");
    CHECK_STR(c[C_P99], "\xE2\x89\xA5 100");

    CHECK(find_row(s.p, "contact", c) == 11);
    CHECK_STR(c[C_STATE], "warn");
    CHECK_STR(c[C_5XX], "0.5");
    CHECK_STR(c[C_4XX], "0");
    CHECK_STR(c[C_P50], "5");
    CHECK_STR(c[C_P95], "9.5");
    CHECK_STR(c[C_P99], "9.9");

    CHECK(find_row(s.p, "idle", c) == 11);
    CHECK_STR(c[C_STATE], "idle");
    CHECK_STR(c[C_REQ], "0");
    CHECK_STR(c[C_5XX], "\xE2\x80\x93");
    CHECK_STR(c[C_P99], "\xE2\x80\x93");

    /* Worst first: 5xx share (api 15 % > contact 0.5 % > the rest 0 %),
     * then p99 (slow 100 > home 90 > hostile ones 9.9), idle last. */
    const char *order[] = {"| **FAIL** | api |", "| warn | contact |", "| ok | slow |",
                           "| ok | home |", "| idle | idle |"};
    const char *prev = s.p;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *at = strstr(s.p, order[i]);
        CHECK(at != NULL && at > prev);
        if (at)
            prev = at;
    }
    CHECK(strstr(s.p, "7 routes") != NULL);
    /* Totals: 100+20+10+200+1+1 = 332 requests; 5xx 3+1 = 4 -> 1.2 %;
     * 4xx 2 -> 0.602 % shown as 0.6. */
    CHECK(strstr(s.p, "332 requests \xC2\xB7 1.2 % 5xx \xC2\xB7 0.6 % 4xx \xC2\xB7 2 in flight") !=
          NULL);
    CHECK(strstr(s.p, "1 failing") != NULL);
    CHECK(strstr(s.p, "histogram_quantile") != NULL);
    CHECK(strstr(s.p, "upper bounds in ms: 10, 20, 50, 100, +Inf.") != NULL);

    /* Business counters: orders only, escaped; the excluded kinds absent. */
    CHECK(strstr(s.p, "### orders\\_total") != NULL);
    CHECK(strstr(s.p, "| kind=\"book\" | 3 |") != NULL);
    CHECK(strstr(s.p, "| kind=\"&lt;img src=x onerror=alert(1)&gt;\" | 7 |") != NULL);
    CHECK(strstr(s.p, "Orders &lt;b&gt;placed&lt;/b&gt; \\| \\*bold\\* \\[x\\](javascript:alert(1))") !=
          NULL);
    CHECK(strstr(s.p, "libmetrics\\_internal") == NULL);
    CHECK(strstr(s.p, "process\\_extra") == NULL);
    CHECK(strstr(s.p, "go\\_things") == NULL);
    CHECK(strstr(s.p, "queue\\_depth") == NULL);
    CHECK(strstr(s.p, "http\\_requests") == NULL);
    CHECK(strstr(s.p, "## Process") != NULL);
    CHECK(strstr(s.p, "| Resident memory | ") != NULL);

    /* Escaping in the Markdown itself: nothing from outside as markup. */
    CHECK(!contains_ci(s.p, "<script"));
    CHECK(!contains_ci(s.p, "<img"));
    CHECK(!contains_ci(s.p, "<b>"));
    CHECK(strstr(s.p, "# Shop &lt;script&gt;x&lt;/script&gt;\n") != NULL);
    CHECK(find_row(s.p, "/&lt;script&gt;alert(1)&lt;/script&gt;", c) == 11);
    /* The leading "-" escaped (no list), pipe and backticks escaped, the
     * newline a visible ↵, 0xFF replaced by U+FFFD: still one cell. */
    CHECK(find_row(s.p, "\\- pipe\\|tick\\`x\\`\xE2\x86\xB5nl\xEF\xBF\xBD" "end", c) == 11);
    CHECK(s.max_chunk <= 4096);
    capture_free(&s);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_html(lm_registry *reg)
{
    capture s = {0};
    lm_error err;
    lm_report_options o = {.http_prefix = "", .title = "Shop <script>x</script>", .refresh_seconds = 5};
    CHECK(lm_report_html(reg, &o, capture_write, &s, &err) == LM_OK);
    if (!s.p)
        return;
    CHECK(strncmp(s.p, "<!doctype html>\n", 16) == 0);
    CHECK(strstr(s.p, "<meta charset=\"utf-8\">") != NULL);
    CHECK(strstr(s.p, "<meta http-equiv=\"refresh\" content=\"5\">") != NULL);
    CHECK(strstr(s.p, "<a href=\"?format=html&amp;refresh=5\" aria-current=\"true\">5 s</a>") != NULL);
    CHECK(strstr(s.p, "<title>Shop &lt;script&gt;x&lt;/script&gt;</title>") != NULL);
    CHECK(strstr(s.p, "</html>\n") != NULL);

    /* Belt and braces: no markup from outside survives, the escaped text
     * is there for a person to read. */
    CHECK(!contains_ci(s.p, "<script"));
    CHECK(!contains_ci(s.p, "<img"));
    CHECK(!contains_ci(s.p, "<b>"));
    CHECK(!contains_ci(s.p, "href=\"javascript"));
    CHECK(!contains_ci(s.p, "<a href=\"x\""));
    CHECK(strstr(s.p, "<td>/&lt;script&gt;alert(1)&lt;/script&gt;</td>") != NULL);
    CHECK(strstr(s.p, "<td>- pipe|tick`x`\xE2\x86\xB5nl\xEF\xBF\xBD" "end</td>") != NULL);
    CHECK(strstr(s.p, "kind=&quot;&lt;img src=x onerror=alert(1)&gt;&quot;") != NULL);
    CHECK(strstr(s.p, "Orders &lt;b&gt;placed&lt;/b&gt; | *bold* [x](javascript:alert(1))") != NULL);
    CHECK(strstr(s.p, "<h1>Shop &lt;script&gt;x&lt;/script&gt;</h1>") != NULL);

    /* Table structure: the routes table has a header and 7 rows of 11
     * cells each (a pipe in a name did not split a cell). */
    const char *tb = strstr(s.p, "<table>");
    const char *te = tb ? strstr(tb, "</table>") : NULL;
    CHECK(tb && te);
    if (tb && te) {
        size_t n = (size_t)(te - tb);
        char *t = malloc(n + 1);
        memcpy(t, tb, n);
        t[n] = '\0';
        CHECK_EQ_U64(count(t, "<tr"), 8);
        CHECK_EQ_U64(count(t, "<th>") + count(t, "<th class="), 11);
        CHECK_EQ_U64(count(t, "<td"), 77);
        CHECK_EQ_U64(count(t, "<th class=\"num\">"), 8);
        free(t);
    }
    CHECK(strstr(s.p, "<tr class=\"fail\"><td><strong>FAIL</strong></td><td>api</td>") != NULL);
    CHECK(strstr(s.p, "<tr class=\"warn\"><td>warn</td><td>contact</td>") != NULL);
    CHECK(strstr(s.p, "<tr class=\"idle\"><td>idle</td><td>idle</td>") != NULL);
    CHECK(strstr(s.p, "<tr class=\"ok\"><td>ok</td><td>home</td>") != NULL);
    CHECK(strstr(s.p, "<td class=\"num\">12.5</td>") != NULL);
    CHECK(strstr(s.p, "<td class=\"num\">\xE2\x89\xA5 100</td>") != NULL);
    CHECK(!contains_ci(s.p, "raw HTML omitted")); /* nothing even tried */
    capture_free(&s);

    o.refresh_seconds = 0;
    CHECK(lm_report_html(reg, &o, capture_write, &s, &err) == LM_OK);
    CHECK(s.p && strstr(s.p, "http-equiv") == NULL);
    CHECK(s.p && strstr(s.p, "refresh=0\" aria-current=\"true\">off</a>") != NULL);
    capture_free(&s);

    o.refresh_seconds = 42;
    CHECK(lm_report_html(reg, &o, capture_write, &s, &err) == LM_OK);
    CHECK(s.p && strstr(s.p, "refresh=42\" aria-current=\"true\">42 s</a>") != NULL);
    capture_free(&s);
}

/* cmark in safe mode must drop raw HTML even if the Markdown writer ever
 * let some through: render a route name made only of entity-looking text
 * and check the entity is shown, not decoded into markup. */
static void test_entities_not_decoded(void)
{
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    lm_http *http = lm_http_register(reg, NULL, &err);
    const char name[] = "&lt;script&gt;&#60;b&#62;";
    lm_route *r = http ? lm_http_route(http, (lm_str){name, sizeof name - 1}, &err) : NULL;
    CHECK(r != NULL);
    if (r)
        record_n(r, 1, 200, MS);
    capture s = {0};
    CHECK(lm_report_html(reg, NULL, capture_write, &s, &err) == LM_OK);
    CHECK(s.p && !contains_ci(s.p, "<script") && !contains_ci(s.p, "<b>"));
    CHECK(s.p && strstr(s.p, "<td>&amp;lt;script&amp;gt;&amp;#60;b&amp;#62;</td>") != NULL);
    capture_free(&s);
    lm_registry_free(reg);
}

static void test_errors(lm_registry *reg)
{
    capture s = {0};
    lm_error err;
    CHECK(lm_report_markdown(NULL, NULL, capture_write, &s, &err) == LM_ERR_INVALID);
    CHECK(strstr(err.message, "registry") != NULL);
    CHECK(lm_report_html(reg, NULL, NULL, NULL, &err) == LM_ERR_INVALID);
    CHECK(strstr(err.message, "writer") != NULL);

    s.fail_after = 1;
    CHECK(lm_report_markdown(reg, NULL, capture_write, &s, &err) == LM_ERR_IO);
    CHECK(err.code == LM_ERR_IO);
    capture_free(&s);
    s.fail_after = 2;
    CHECK(lm_report_html(reg, NULL, capture_write, &s, &err) == LM_ERR_IO);
    capture_free(&s);

    /* A prefix with no HTTP set: the page still renders and says so. */
    lm_report_options o = {.http_prefix = "nope_"};
    CHECK(lm_report_markdown(reg, &o, capture_write, &s, &err) == LM_OK);
    CHECK(s.p && strstr(s.p, "No HTTP metrics are registered with the prefix \"nope\\_\"") != NULL);
    CHECK(s.p && strstr(s.p, "### orders\\_total") != NULL);
    capture_free(&s);
}

/* A value that starts a line (help text) must not open a block of its own:
 * four leading spaces are an indented code block in CommonMark. Found by
 * fuzz_report. */
static void test_leading_spaces(void)
{
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    lm_family_options fo = {.type = LM_COUNTER, .name = "indent_total", .help = "      code? <x>"};
    lm_family *f = lm_family_register(reg, &fo, &err);
    CHECK(f != NULL);
    if (f)
        lm_counter_add(lm_series_get(f, NULL, &err), 1);
    capture s = {0};
    lm_report_options o = {.title = "    t"};
    CHECK(lm_report_html(reg, &o, capture_write, &s, &err) == LM_OK);
    CHECK(s.p && strstr(s.p, "<pre") == NULL);
    CHECK(s.p && strstr(s.p, "<p>      code? &lt;x&gt;</p>") != NULL);
    CHECK(s.p && strstr(s.p, "<h1>    t</h1>") != NULL);
    capture_free(&s);
    CHECK(lm_report_markdown(reg, &o, capture_write, &s, &err) == LM_OK);
    CHECK(s.p && strstr(s.p, "\n&#32;     code? &lt;x&gt;\n") != NULL);
    capture_free(&s);
    lm_registry_free(reg);
}

/* Many routes stream in chunks of at most 4 KiB; HTML of a report longer
 * than LM_REPORT_HTML_MARKDOWN_MAX is cut at a line and says so. */
static void test_bounds(bool small)
{
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    lm_http *http = lm_http_register(reg, NULL, &err);
    CHECK(http != NULL);
    size_t nroutes = small ? 200 : 1000;
    char name[32];
    for (size_t i = 0; http && i < nroutes; i++) {
        int n = snprintf(name, sizeof name, "/r/%zu", i);
        lm_route *r = lm_http_route(http, (lm_str){name, (size_t)n}, &err);
        CHECK(r != NULL);
        if (r)
            lm_route_record(r, LM_METHOD_GET, i % 7 ? 200 : 500, (int64_t)(i % 50) * MS, 1, NULL, 0);
    }
    capture s = {0};
    CHECK(lm_report_markdown(reg, NULL, capture_write, &s, &err) == LM_OK);
    CHECK(s.max_chunk <= 4096);
    CHECK(s.calls > 1);
    CHECK(s.p && strstr(s.p, small ? "200 routes" : "1000 routes") != NULL);
    capture_free(&s);

    /* Label values of 250 '<' become 1000 bytes of "&lt;" each: 5000
     * series make a Markdown document of about 5 MB > 4 MiB. */
    const char *lbl[] = {"v"};
    lm_family_options fo = {.type = LM_COUNTER, .name = "big_total", .help = "h",
                            .label_names = lbl, .nlabels = 1, .max_series = 6000};
    lm_family *big = lm_family_register(reg, &fo, &err);
    CHECK(big != NULL);
    char val[256];
    memset(val, '<', 250);
    for (size_t i = 0; big && i < 5000; i++) {
        int n = snprintf(val + 250, 6, "%zu", i);
        lm_str v = {val, 250 + (size_t)n};
        lm_counter_add(lm_series_get(big, &v, &err), 1);
    }
    CHECK(lm_report_markdown(reg, NULL, capture_write, &s, &err) == LM_OK);
    CHECK(s.len > LM_REPORT_HTML_MARKDOWN_MAX);
    capture_free(&s);
    CHECK(lm_report_html(reg, NULL, capture_write, &s, &err) == LM_OK);
    CHECK(s.p && strstr(s.p, "This page is truncated") != NULL);
    CHECK(s.p && strstr(s.p, "</html>\n") != NULL);
    CHECK(s.p && !contains_ci(s.p, "<script"));
    capture_free(&s);
    lm_registry_free(reg);
}

/* The text between heading `from` and the next "## " heading (or the end):
 * one section of the report, as a string the caller frees. */
static char *section(const char *md, const char *from)
{
    const char *a = strstr(md, from);
    if (!a)
        return NULL;
    const char *b = strstr(a + strlen(from), "\n## ");
    size_t n = b ? (size_t)(b - a) : strlen(a);
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, a, n);
        out[n] = '\0';
    }
    return out;
}

/* Families of LM_KIND_SERVER_TIMING get their own section, after the
 * business counters; histograms there show count and percentiles. Counters
 * of LM_KIND_RUNTIME (the host's own) get theirs after that, gauges of that
 * kind none. A registry without such families has no such sections. */
static void test_sections_by_kind(void)
{
    lm_error err;
    lm_registry *reg = lm_registry_new(NULL, &err);
    CHECK(reg != NULL);
    if (!reg)
        return;
    lm_http *http = lm_http_register(reg, NULL, &err);
    lm_route *home = http ? lm_http_route(http, (lm_str){"home", 4}, &err) : NULL;
    CHECK(home != NULL);
    record_n(home, 3, 200, 2 * MS);

    capture s = {0};
    lm_family_options biz = {.type = LM_COUNTER, .name = "orders_total", .help = "Orders"};
    lm_family *orders = lm_family_register(reg, &biz, &err);
    CHECK(orders != NULL);
    lm_counter_add(lm_series_get(orders, NULL, &err), 4);
    CHECK(lm_report_markdown(reg, NULL, capture_write, &s, &err) == LM_OK);
    CHECK(s.p && strstr(s.p, "## Server-Timing") == NULL);
    CHECK(s.p && strstr(s.p, "## Runtime") == NULL);
    capture_free(&s);

    const char *reason[] = {"reason"};
    lm_family_options refused = {.type = LM_COUNTER, .name = "endpoint_refused_total",
                                 .help = "Refused scrapes", .label_names = reason,
                                 .nlabels = 1, .kind = LM_KIND_RUNTIME};
    lm_family_options threads = {.type = LM_GAUGE, .name = "host_threads", .help = "Threads",
                                 .kind = LM_KIND_RUNTIME};
    lm_family *fr = lm_family_register(reg, &refused, &err);
    lm_family *ft = lm_family_register(reg, &threads, &err);
    CHECK(fr && ft);
    lm_str addr[] = {{"address", 7}};
    lm_counter_add(lm_series_get(fr, addr, &err), 5);

    const char *st_labels[] = {"endpoint", "operation"}, *ep_label[] = {"endpoint"};
    lm_family_options q = {.type = LM_COUNTER, .name = "db_queries_total",
                           .help = "Server-Timing db entries", .label_names = st_labels,
                           .nlabels = 2, .kind = LM_KIND_SERVER_TIMING};
    static const double st_bounds[] = {0.001, 0.01, 0.1};
    lm_family_options d = {.type = LM_HISTOGRAM, .name = "db_query_duration_seconds",
                           .help = "Server-Timing db durations", .label_names = st_labels,
                           .nlabels = 2, .bounds = st_bounds, .nbounds = 3, .unit_scale = 1e9,
                           .kind = LM_KIND_SERVER_TIMING};
    lm_family_options m = {.type = LM_COUNTER, .name = "server_timing_malformed_total",
                           .help = "Malformed headers", .label_names = ep_label, .nlabels = 1,
                           .kind = LM_KIND_SERVER_TIMING};
    lm_family *fq = lm_family_register(reg, &q, &err);
    lm_family *fd = lm_family_register(reg, &d, &err);
    lm_family *fm = lm_family_register(reg, &m, &err);
    CHECK(fq && fd && fm);
    if (!fq || !fd || !fm) {
        lm_registry_free(reg);
        return;
    }
    lm_str sel[] = {{"home", 4}, {"select", 6}}, ep[] = {{"home", 4}};
    lm_counter_add(lm_series_get(fq, sel, &err), 10);
    lm_counter_add(lm_series_get(fm, ep, &err), 2);
    /* 10 durations: 5 at 0.5 ms, 4 at 5 ms, 1 at 50 ms. Cumulative 5, 9, 10:
     *   p50: rank 5 in (0, 1 ms]          -> 0 + 1 * 5/5            = 1 ms
     *   p95: rank 9.5 in (10 ms, 100 ms]  -> 10 + 90 * (9.5-9)/1    = 55 ms
     *   p99: rank 9.9                     -> 10 + 90 * 0.9          = 91 ms */
    lm_series *h = lm_series_get(fd, sel, &err);
    for (int i = 0; i < 5; i++)
        lm_histogram_observe(h, MS / 2);
    for (int i = 0; i < 4; i++)
        lm_histogram_observe(h, 5 * MS);
    lm_histogram_observe(h, 50 * MS);

    CHECK(lm_report_markdown(reg, NULL, capture_write, &s, &err) == LM_OK);
    char *biz_sec = s.p ? section(s.p, "## Business counters") : NULL;
    char *st_sec = s.p ? section(s.p, "## Server-Timing") : NULL;
    char *rt_sec = s.p ? section(s.p, "## Runtime") : NULL;
    CHECK(biz_sec && st_sec && rt_sec);
    if (biz_sec && st_sec && rt_sec) {
        CHECK(strstr(s.p, "## Business counters") < strstr(s.p, "## Server-Timing"));
        CHECK(strstr(s.p, "## Server-Timing") < strstr(s.p, "## Runtime"));
        CHECK(strstr(s.p, "## Runtime") < strstr(s.p, "## Process"));
        CHECK(strstr(biz_sec, "endpoint\\_refused") == NULL);
        CHECK(strstr(st_sec, "endpoint\\_refused") == NULL);
        CHECK(strstr(rt_sec, "### endpoint\\_refused\\_total") != NULL);
        CHECK(strstr(rt_sec, "| reason=\"address\" | 5 | ") != NULL);
        CHECK(strstr(s.p, "host\\_threads") == NULL);
        CHECK(strstr(rt_sec, "orders\\_total") == NULL);
        CHECK(strstr(rt_sec, "db\\_queries") == NULL);
        CHECK(strstr(biz_sec, "### orders\\_total") != NULL);
        CHECK(strstr(biz_sec, "db\\_queries") == NULL);
        CHECK(strstr(biz_sec, "server\\_timing\\_malformed") == NULL);
        CHECK(strstr(st_sec, "orders\\_total") == NULL);
        CHECK(strstr(st_sec, "### db\\_queries\\_total") != NULL);
        CHECK(strstr(st_sec, "| endpoint=\"home\", operation=\"select\" | 10 | ") != NULL);
        CHECK(strstr(st_sec, "### server\\_timing\\_malformed\\_total") != NULL);
        CHECK(strstr(st_sec, "| endpoint=\"home\" | 2 | ") != NULL);
        CHECK(strstr(st_sec, "### db\\_query\\_duration\\_seconds") != NULL);
        CHECK(strstr(st_sec, "| Labels | Count | Per second | p50 ms | p95 ms | p99 ms |") != NULL);
        const char *row = strstr(st_sec, "| endpoint=\"home\", operation=\"select\" | 10 | ");
        row = row ? strstr(row + 1, "| endpoint=\"home\", operation=\"select\" | 10 | ") : NULL;
        const char *eol = row ? strchr(row, '\n') : NULL, *tail = " | 1 | 55 | 91 |";
        CHECK(eol && (size_t)(eol - row) > strlen(tail) &&
              strncmp(eol - strlen(tail), tail, strlen(tail)) == 0);
    }
    free(biz_sec);
    free(st_sec);
    free(rt_sec);
    capture_free(&s);

    CHECK(lm_report_html(reg, NULL, capture_write, &s, &err) == LM_OK);
    CHECK(s.p && strstr(s.p, "<h2>Server-Timing</h2>") != NULL);
    CHECK(s.p && strstr(s.p, "<h2>Business counters</h2>") != NULL);
    CHECK(s.p && strstr(s.p, "<h2>Runtime</h2>") != NULL);
    capture_free(&s);
    lm_registry_free(reg);
}

int main(void)
{
    bool small = getenv("LM_TEST_SMALL") != NULL;
    lm_registry *reg = fixture();
    if (reg) {
        test_markdown_numbers(reg);
        test_html(reg);
        test_errors(reg);
        lm_registry_free(reg);
    }
    test_entities_not_decoded();
    test_leading_spaces();
    test_bounds(small);
    test_sections_by_kind();
    TEST_MAIN_END();
}
