/*
 * libmetrics_report: the status report of a libmetrics registry, as
 * CommonMark (lm_report_markdown) or as a self-contained HTML page rendered
 * by libcmark (lm_report_html).
 *
 * A separate library (libmetrics_report.so, pkg-config libmetrics-report)
 * so that a program that only records and exposes metrics links
 * libmetrics alone and never libcmark. It reads the registry through the
 * public read-back calls of libmetrics.h only, so it works with any
 * libmetrics of the same major version.
 *
 * Every public symbol starts with `lm_report` or `LM_REPORT`; thread-safety
 * and error reporting are as in libmetrics.h.
 */
#ifndef LIBMETRICS_REPORT_H
#define LIBMETRICS_REPORT_H

#include "libmetrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A page a person can read during an incident, without Grafana: per route
 * requests, average rate since the registry was created, 5xx and 4xx share,
 * p50/p95/p99 latency estimated from the histogram buckets exactly as
 * Prometheus's histogram_quantile() does, requests in flight and a small
 * latency distribution bar; routes worst first (highest 5xx share, then
 * highest p99). Then one section per family kind (lm_family_kind):
 * "Business counters" (counters of LM_KIND_BUSINESS, except the runtime's
 * own libmetrics_*, process_* and go_* names), "Server-Timing" (families of
 * LM_KIND_SERVER_TIMING: counters with their values, histograms with count
 * and p50/p95/p99; left out when there are none), "Runtime" (counters of
 * LM_KIND_RUNTIME, the host's own; left out when there are none), and
 * process resources.
 * Everything that came from a request or a configuration (route names,
 * label values, help, the title) is escaped, so it can never become
 * markup. */

typedef struct lm_report_options {
    const char *http_prefix;  /* which lm_http set (its prefix); NULL: "" */
    const char *title;        /* any text, sanitised and escaped; NULL: "libmetrics" */
    unsigned refresh_seconds; /* HTML only: auto-refresh period, 0: none */
} lm_report_options;

/* lm_report_html renders from the whole Markdown document in memory (the
 * renderer, cmark, needs it); it keeps at most this many bytes of it. A
 * longer report (tens of thousands of business counter series) is cut at a
 * line boundary and says so on the page. Peak memory of lm_report_html is
 * about this bound plus one rendered table cell or paragraph. */
#define LM_REPORT_HTML_MARKDOWN_MAX ((size_t)4 << 20)

/* CommonMark with GitHub-style pipe tables, streamed through fn in chunks of
 * at most 4 KiB. Memory: O(routes x buckets) for sorting, never the whole
 * document. opts may be NULL for all defaults. Returns LM_ERR_IO when fn
 * aborts. */
LM_API lm_status lm_report_markdown(lm_registry *reg, const lm_report_options *opts,
                                    lm_write_fn fn, void *ctx, lm_error *err);

/* A complete, self-contained HTML page (<!doctype html>, inline CSS, no
 * scripts, no external resources) rendered from the Markdown above by cmark
 * in safe mode. The page's refresh links are relative ("?format=html&refresh=N"),
 * so the host should serve it at the URL that honours those parameters. */
LM_API lm_status lm_report_html(lm_registry *reg, const lm_report_options *opts, lm_write_fn fn,
                                void *ctx, lm_error *err);

#ifdef __cplusplus
}
#endif

#endif /* LIBMETRICS_REPORT_H */
