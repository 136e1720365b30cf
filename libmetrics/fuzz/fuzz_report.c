/* libFuzzer target for the status report: whatever bytes arrive as the
 * title, the HTTP prefix, route names, counter help and label values (NUL,
 * invalid UTF-8, markup, Markdown punctuation, line breaks included), the
 * HTML page may only contain the page's own markup, and the Markdown none
 * from outside:
 *  - Markdown: no '<' except the "<0.01" of a tiny number;
 *  - HTML: every tag is one of the template's or cmark's inline/table set,
 *    no block element inside a table cell (a value never became a heading,
 *    list or paragraph), every table row has as many cells as its header
 *    (a value never split or merged cells), every link is one of the
 *    page's own "?format=" links, and cmark never had to omit raw HTML
 *    (it leaves an HTML comment where it does).
 *
 * Input layout (a byte reader that yields zeros once exhausted): title,
 * prefix selector (+ raw prefix), up to 4 routes (raw name, up to 7
 * records of status and duration), counter help and 2 label values. */
#include "fuzz_input.h"
#include "libmetrics_report.h"
#include "lm_capture.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c)                                                                        \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            fprintf(stderr, "fuzz_report: %s failed\n", #c);                              \
            __builtin_trap();                                                             \
        }                                                                                 \
    } while (0)

static const char *const allowed_tags[] = {
    "!doctype", "html", "head", "meta", "title", "style", "body", "nav", "span", "a", "main",
    "h1", "h2", "h3", "p", "table", "thead", "tbody", "tr", "th", "td", "code", "strong", "em"};

static size_t tag_name(const char *p, char *name, size_t cap)
{
    size_t n = 0;
    while (p[n] && p[n] != '>' && p[n] != ' ' && p[n] != '/' && p[n] != '\n' && n + 1 < cap) {
        name[n] = p[n] >= 'A' && p[n] <= 'Z' ? (char)(p[n] + 32) : p[n];
        n++;
    }
    name[n] = '\0';
    return n;
}

static void check_html(const char *h)
{
    REQUIRE(strstr(h, "<!--") == NULL); /* cmark's "raw HTML omitted" marker */
    bool in_cell = false;
    long header_cells = -1, row_cells = 0;
    bool in_head = false;
    for (const char *p = strchr(h, '<'); p; p = strchr(p + 1, '<')) {
        bool closing = p[1] == '/';
        char name[16];
        tag_name(p + 1 + closing, name, sizeof name);
        bool ok = false;
        for (size_t i = 0; i < sizeof allowed_tags / sizeof allowed_tags[0]; i++)
            ok |= strcmp(name, allowed_tags[i]) == 0;
        if (!ok)
            fprintf(stderr, "fuzz_report: unexpected tag <%s> at: %.80s\n", name, p);
        REQUIRE(ok);
        if (!closing && strcmp(name, "a") == 0)
            REQUIRE(strncmp(p, "<a href=\"?format=", 17) == 0);
        if (strcmp(name, "td") == 0 || strcmp(name, "th") == 0) {
            in_cell = !closing;
            if (!closing)
                row_cells++;
        } else if (in_cell) {
            /* Inside a cell only inline markup. */
            REQUIRE(strcmp(name, "code") == 0 || strcmp(name, "strong") == 0 ||
                    strcmp(name, "em") == 0);
        }
        if (strcmp(name, "thead") == 0)
            in_head = !closing;
        if (strcmp(name, "table") == 0 && !closing)
            header_cells = -1;
        if (strcmp(name, "tr") == 0 && !closing)
            row_cells = 0;
        if (strcmp(name, "tr") == 0 && closing) {
            if (in_head)
                header_cells = row_cells;
            else
                REQUIRE(row_cells == header_cells);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd r = {data, size};
    lm_registry_options ro = {.slot_capacity = 1 << 14, .max_shards = 2};
    lm_registry *reg = lm_registry_new(&ro, NULL);
    if (!reg)
        return 0;
    char title[256], prefix[64], name[256], help[256], v1[256], v2[256];
    title[raw(&r, title, sizeof title - 1)] = '\0';
    size_t np = 0;
    if (u8(&r) >= 128)
        np = raw(&r, prefix, sizeof prefix - 1);
    prefix[np] = '\0';

    lm_http_options ho = {.prefix = prefix};
    lm_http *http = lm_http_register(reg, &ho, NULL);
    if (!http) {
        prefix[0] = '\0';
        http = lm_http_register(reg, &ho, NULL);
    }
    unsigned nroutes = u8(&r) % 5;
    for (unsigned i = 0; http && i < nroutes; i++) {
        size_t n = raw(&r, name, sizeof name);
        lm_route *rt = lm_http_route(http, (lm_str){name, n}, NULL);
        unsigned nrec = u8(&r) % 8;
        for (unsigned k = 0; rt && k < nrec; k++) {
            int status = (int)(((unsigned)u8(&r) << 8 | u8(&r)) % 700);
            int64_t ns = (int64_t)u8(&r) << (u8(&r) % 40);
            lm_route_record(rt, LM_METHOD_GET, status, ns, 1, NULL, 0);
        }
    }
    help[raw(&r, help, sizeof help - 1)] = '\0';
    const char *labels[] = {"v"};
    lm_family_options fo = {.type = LM_COUNTER, .name = "fuzz_total", .help = help,
                            .label_names = labels, .nlabels = 1};
    lm_family *f = lm_family_register(reg, &fo, NULL);
    if (f) {
        lm_str a = {v1, raw(&r, v1, sizeof v1)}, b = {v2, raw(&r, v2, sizeof v2)};
        lm_counter_add(lm_series_get(f, &a, NULL), 1);
        lm_counter_add(lm_series_get(f, &b, NULL), 2);
    }

    lm_report_options o = {.http_prefix = prefix, .title = title, .refresh_seconds = u8(&r) % 3 * 5};
    capture md = {0}, html = {0};
    REQUIRE(lm_report_markdown(reg, &o, capture_write, &md, NULL) == LM_OK);
    REQUIRE(lm_report_html(reg, &o, capture_write, &html, NULL) == LM_OK);
    for (const char *p = strchr(md.p, '<'); p; p = strchr(p + 1, '<'))
        REQUIRE(p[1] == '0');
    check_html(html.p);
    capture_free(&md);
    capture_free(&html);
    lm_registry_free(reg);
    return 0;
}
