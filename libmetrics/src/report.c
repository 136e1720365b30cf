/*
 * The status report as Markdown (CommonMark plus GitHub pipe tables), for a
 * person reading it during an incident.
 *
 * Memory stays bounded: the only allocation is one row per route (plus its
 * merged latency buckets), needed because routes are sorted worst first;
 * everything else streams through a 4 KiB buffer to the caller's writer.
 *
 * Escaping: every byte that came from a request or a configuration goes
 * through md_escape, which emits valid UTF-8 only, turns < > & into entity
 * references (so the Markdown itself never contains markup from outside,
 * whatever renders it), backslash-escapes the punctuation that can start
 * inline markup anywhere, the characters that start a block when they lead
 * a value, and pipes (table cells); line breaks become visible symbols so a
 * value always stays on its one line and in its one cell.
 *
 * The registry is read through libmetrics.h's read-back calls only (this
 * file is part of libmetrics_report, not of the core).
 */
#include "libmetrics_report.h"
#include "outbuf.h"
#include "report.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TITLE_MAX 200
#define FFFD "\xEF\xBF\xBD"
/* Routes and families created while a report is being rendered show on the
 * next one; this many may appear between counting and collecting them. */
#define ROUTE_SLACK 16
#define FAMILY_SLACK 16

/* ----------------------------------------------------------- escaping */

static void md_escape(lm_outbuf *o, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    /* Where a value's first non-blank character is, for block starters
     * ("# h", "- item", "+ item", "=== ", "1. item", "1) item"): a cell or
     * list item is parsed as blocks when rendered. */
    size_t lead = 0, digits;
    while (lead < n && p[lead] == ' ')
        lead++;
    digits = lead;
    while (digits < n && p[digits] >= '0' && p[digits] <= '9')
        digits++;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c >= 0x80) {
            size_t bad, k = lm__utf8_seq(p + i, n - i, &bad);
            if (k) {
                lm__out_put(o, s + i, k);
                i += k;
            } else {
                lm__out_str(o, FFFD);
                i++;
            }
            continue;
        }
        switch (c) {
        case ' ':
            /* Four leading spaces would open an indented code block where
             * a value starts a line (help text); an entity is text. */
            lm__out_str(o, i == 0 ? "&#32;" : " ");
            break;
        case '<':
            lm__out_str(o, "&lt;");
            break;
        case '>':
            lm__out_str(o, "&gt;");
            break;
        case '&':
            lm__out_str(o, "&amp;");
            break;
        /* Arrows rather than the control pictures (U+240A...): common
         * fonts (DejaVu) have glyphs for these. */
        case '\n':
        case '\r':
            lm__out_str(o, "\xE2\x86\xB5"); /* U+21B5 ↵ */
            break;
        case '\t':
            lm__out_str(o, "\xE2\x87\xA5"); /* U+21E5 ⇥ */
            break;
        case '\\': case '`': case '*': case '_': case '[': case ']': case '|': case '~':
        case '!':
            lm__out_put(o, "\\", 1);
            lm__out_put(o, s + i, 1);
            break;
        case '#': case '-': case '+': case '=':
            if (i == lead)
                lm__out_put(o, "\\", 1);
            lm__out_put(o, s + i, 1);
            break;
        case '.': case ')':
            if (i == digits && digits > lead)
                lm__out_put(o, "\\", 1);
            lm__out_put(o, s + i, 1);
            break;
        default:
            if (c < 0x20 || c == 0x7F)
                lm__out_str(o, FFFD);
            else
                lm__out_put(o, s + i, 1);
        }
        i++;
    }
}

static void md_text(lm_outbuf *o, lm_str t)
{
    md_escape(o, t.ptr, t.len);
}

/* ------------------------------------------------------------ numbers */

/* v rounded to `sig` significant digits but at most `maxdec` decimals,
 * without a trailing ".0": what a person wants to read, not what a parser
 * wants. The digits come from the exposition's canonical formatters. */
static size_t fmt_num(char *buf, double v, int sig, int maxdec)
{
    if (!isfinite(v))
        return lm__fmt_double(buf, v);
    if (v == 0)
        return (size_t)(memcpy(buf, "0", 2), 1);
    int dec = sig - 1 - (int)floor(log10(fabs(v)));
    if (dec > maxdec)
        dec = maxdec;
    if (dec < 0)
        dec = 0;
    double m = pow(10, dec);
    double r = round(v * m) / m;
    if (r == 0) { /* too small to show at this precision: "<0.01" */
        buf[0] = '<';
        return 1 + fmt_num(buf + 1, 1 / m, 1, maxdec);
    }
    if (fabs(r) < 9.2e18 && r == floor(r))
        return lm__fmt_i64(buf, (int64_t)r);
    size_t n = lm__fmt_double(buf, r);
    if (n > 2 && buf[n - 2] == '.' && buf[n - 1] == '0')
        buf[n -= 2] = '\0';
    return n;
}

static void out_num(lm_outbuf *o, double v, int sig, int maxdec)
{
    char b[64];
    lm__out_put(o, b, fmt_num(b, v, sig, maxdec));
}

static void out_duration(lm_outbuf *o, double seconds)
{
    static const struct {
        const char *unit;
        uint64_t secs;
    } parts[] = {{"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}};
    if (!(seconds >= 0) || seconds > 1e15) {
        lm__out_str(o, "\xE2\x80\x93"); /* en dash: unknown */
        return;
    }
    /* The two most significant units: "3d 4h", "2h 3m", "5m 7s", "42s". */
    uint64_t s = (uint64_t)seconds;
    size_t i = 0;
    while (i < 3 && s < parts[i].secs)
        i++;
    lm__out_u64(o, s / parts[i].secs);
    lm__out_str(o, parts[i].unit);
    if (i < 3) {
        lm__out_str(o, " ");
        lm__out_u64(o, s % parts[i].secs / parts[i + 1].secs);
        lm__out_str(o, parts[i + 1].unit);
    }
}

static void out_utc(lm_outbuf *o, double unix_seconds)
{
    char b[64];
    struct tm tm;
    time_t t = (time_t)unix_seconds;
    if (gmtime_r(&t, &tm) && strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S UTC", &tm))
        lm__out_str(o, b);
    else
        lm__out_str(o, "\xE2\x80\x93");
}

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ----------------------------------------------------------- quantile */

/* Prometheus's histogram_quantile (promql bucketQuantile) over one
 * histogram: bounds[0..nb) finite and increasing, buckets[0..nb] its
 * non-cumulative counts, the last one +Inf. Same cumulative counts, same
 * rank = q * total, same search for the first bucket whose cumulative count
 * reaches the rank, same linear interpolation inside it (from 0 for the
 * first bucket when its bound is positive). A rank in the +Inf bucket
 * returns the upper bound of the last finite bucket, as Prometheus does;
 * *clamped tells the caller so the page can say "at least". NaN when the
 * histogram is empty. */
static double bucket_quantile(double q, const double *bounds, size_t nb, const uint64_t *buckets,
                              bool *clamped)
{
    uint64_t total = 0;
    *clamped = false;
    for (size_t i = 0; i <= nb; i++)
        total += buckets[i];
    if (nb < 1 || total == 0)
        return NAN;
    double rank = q * (double)total;
    uint64_t cum = 0, prev = 0;
    size_t b;
    for (b = 0; b < nb; b++) {
        prev = cum;
        cum += buckets[b];
        if ((double)cum >= rank)
            break;
    }
    if (b == nb) {
        *clamped = true;
        return bounds[nb - 1];
    }
    if (b == 0 && bounds[0] <= 0)
        return bounds[0];
    double start = b > 0 ? bounds[b - 1] : 0;
    double count = (double)cum - (double)prev;
    rank -= (double)prev;
    return start + (bounds[b] - start) * (rank / count);
}

/* ------------------------------------------------------------- routes */

static const double quantiles[3] = {0.5, 0.95, 0.99};

typedef struct row {
    lm_str name;
    uint64_t requests, s5xx, s4xx;
    int64_t inflight;
    uint64_t *buckets; /* nb+1 non-cumulative, merged over methods and statuses */
    double q[3];       /* seconds, NaN when no observation */
    bool clamped[3];
    double share5; /* 5xx percent; -1 when idle, so idle routes sort last */
} row;

typedef struct table {
    row *rows;
    size_t n, cap;
    size_t *index; /* open addressing by name: row index + 1, 0 empty */
    size_t mask;
    const double *bounds;
    size_t nb;
    uint64_t *buckets;
} table;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int table_init(table *t, size_t cap, const lm_family_info *duration)
{
    size_t slots = 4;
    memset(t, 0, sizeof *t);
    while (slots < 2 * cap)
        slots <<= 1;
    t->cap = cap;
    t->mask = slots - 1;
    t->bounds = duration->bounds;
    t->nb = duration->nbounds;
    t->rows = calloc(cap, sizeof *t->rows);
    t->index = calloc(slots, sizeof *t->index);
    t->buckets = calloc(cap * (t->nb + 1), sizeof *t->buckets);
    return t->rows && t->index && t->buckets ? 0 : -1;
}

static void table_free(table *t)
{
    free(t->rows);
    free(t->index);
    free(t->buckets);
}

/* The row for a route name, created on first sight; NULL when the table is
 * full (a route born during this rendering). */
static row *table_row(table *t, lm_str name)
{
    size_t i = (size_t)hash_bytes(name.ptr, name.len) & t->mask;
    for (; t->index[i]; i = (i + 1) & t->mask) {
        row *r = &t->rows[t->index[i] - 1];
        if (r->name.len == name.len && memcmp(r->name.ptr, name.ptr, name.len) == 0)
            return r;
    }
    if (t->n == t->cap)
        return NULL;
    row *r = &t->rows[t->n];
    r->name = name;
    r->buckets = t->buckets + t->n * (t->nb + 1);
    t->index[i] = ++t->n;
    return r;
}

static long label_index(const lm_family *f, const char *name)
{
    lm_str l;
    for (size_t i = 0; (l = lm_family_label_name(f, i)).ptr; i++)
        if (strcmp(l.ptr, name) == 0)
            return (long)i;
    return -1;
}

/* Calls fn for every series of f, the overflow series last. */
static void each_series(lm_family *f, void (*fn)(table *, const lm_series *, long, long),
                        table *t, long ep, long st)
{
    lm_family_info fi;
    lm_family_describe(f, &fi);
    for (size_t i = 0; i < fi.nseries; i++)
        fn(t, lm_family_series(f, i), ep, st);
    lm_series *ov = lm_family_overflow(f);
    if (ov)
        fn(t, ov, ep, st);
}

static void add_requests(table *t, const lm_series *s, long ep, long st)
{
    row *r = table_row(t, lm_series_label_value(s, (size_t)ep));
    if (!r)
        return;
    uint64_t v = lm_series_count(s);
    lm_str status = lm_series_label_value(s, (size_t)st);
    r->requests += v;
    /* "other" (status outside 100..599) counts in the total only. */
    if (status.len == 3 && status.ptr[0] == '5')
        r->s5xx += v;
    else if (status.len == 3 && status.ptr[0] == '4')
        r->s4xx += v;
}

static void add_duration(table *t, const lm_series *s, long ep, long st)
{
    (void)st;
    row *r = table_row(t, lm_series_label_value(s, (size_t)ep));
    uint64_t b[LM_MAX_BOUNDS + 1];
    if (!r || lm_histogram_buckets(s, b, LM_MAX_BOUNDS + 1) != t->nb + 1)
        return;
    for (size_t i = 0; i <= t->nb; i++)
        r->buckets[i] += b[i];
}

static void add_inflight(table *t, const lm_series *s, long ep, long st)
{
    (void)st;
    row *r = table_row(t, lm_series_label_value(s, (size_t)ep));
    if (r)
        r->inflight += lm_gauge_value(s);
}

static int row_cmp(const void *pa, const void *pb)
{
    const row *a = pa, *b = pb;
    if (a->share5 != b->share5)
        return a->share5 > b->share5 ? -1 : 1;
    double qa = isnan(a->q[2]) ? -INFINITY : a->q[2];
    double qb = isnan(b->q[2]) ? -INFINITY : b->q[2];
    if (qa != qb)
        return qa > qb ? -1 : 1;
    if (a->requests != b->requests)
        return a->requests > b->requests ? -1 : 1;
    size_t n = a->name.len < b->name.len ? a->name.len : b->name.len;
    int c = memcmp(a->name.ptr, b->name.ptr, n);
    return c ? c : (a->name.len > b->name.len) - (a->name.len < b->name.len);
}

/* Fills t from one HTTP set: every registered route (idle ones too), plus
 * any endpoint value found only in the series (the "_overflow" fold). */
static int collect_routes(lm_http *http, table *t)
{
    lm_family *requests = lm_http_family_get(http, LM_HTTP_REQUESTS);
    lm_family *duration = lm_http_family_get(http, LM_HTTP_DURATION);
    lm_family *inflight = lm_http_family_get(http, LM_HTTP_INFLIGHT);
    lm_family_info di;
    lm_family_describe(duration, &di);
    size_t nroutes = 0;
    while (lm_http_route_at(http, nroutes))
        nroutes++;
    if (table_init(t, nroutes + ROUTE_SLACK, &di) != 0)
        return -1;
    for (size_t i = 0; i < nroutes; i++)
        table_row(t, lm_route_name(lm_http_route_at(http, i)));
    long ep = label_index(requests, "endpoint"), st = label_index(requests, "status");
    if (ep >= 0 && st >= 0)
        each_series(requests, add_requests, t, ep, st);
    if (duration && (ep = label_index(duration, "endpoint")) >= 0)
        each_series(duration, add_duration, t, ep, -1);
    if (inflight && (ep = label_index(inflight, "endpoint")) >= 0)
        each_series(inflight, add_inflight, t, ep, -1);
    for (size_t i = 0; i < t->n; i++) {
        row *r = &t->rows[i];
        for (int k = 0; k < 3; k++)
            r->q[k] = bucket_quantile(quantiles[k], t->bounds, t->nb, r->buckets, &r->clamped[k]);
        r->share5 = r->requests ? 100.0 * (double)r->s5xx / (double)r->requests : -1;
    }
    qsort(t->rows, t->n, sizeof *t->rows, row_cmp);
    return 0;
}

/* ----------------------------------------------------------- sections */

#define DASH "\xE2\x80\x93"

static void out_percent(lm_outbuf *o, uint64_t part, uint64_t whole)
{
    if (!whole)
        lm__out_str(o, DASH);
    else
        out_num(o, 100.0 * (double)part / (double)whole, 3, 2);
}

static void out_rate(lm_outbuf *o, double count, double elapsed_s)
{
    if (!(elapsed_s > 0.001))
        lm__out_str(o, DASH);
    else
        out_num(o, count / elapsed_s, 3, 2);
}

static void out_latency_ms(lm_outbuf *o, double seconds, bool clamped)
{
    if (isnan(seconds)) {
        lm__out_str(o, DASH);
        return;
    }
    if (clamped)
        lm__out_str(o, "\xE2\x89\xA5 "); /* "≥ " */
    out_num(o, seconds * 1000, 3, 3);
}

/* One block character per bucket, height relative to the fullest bucket;
 * a middle dot marks an empty bucket so the bar's extent stays visible. */
static void out_bar(lm_outbuf *o, const uint64_t *b, size_t n)
{
    static const char *const blocks[8] = {
        "\xE2\x96\x81", "\xE2\x96\x82", "\xE2\x96\x83", "\xE2\x96\x84",
        "\xE2\x96\x85", "\xE2\x96\x86", "\xE2\x96\x87", "\xE2\x96\x88"};
    uint64_t max = 0;
    for (size_t i = 0; i < n; i++)
        if (b[i] > max)
            max = b[i];
    if (!max) {
        lm__out_str(o, DASH);
        return;
    }
    lm__out_str(o, "`");
    for (size_t i = 0; i < n; i++) {
        if (!b[i]) {
            lm__out_str(o, "\xC2\xB7");
            continue;
        }
        int level = (int)(7.0 * (double)b[i] / (double)max);
        lm__out_str(o, blocks[level > 7 ? 7 : level]);
    }
    lm__out_str(o, "`");
}

static const char *row_state(const row *r)
{
    if (!r->requests)
        return LM__REPORT_STATE_IDLE;
    if (r->share5 >= LM__REPORT_FAIL_5XX_PERCENT)
        return LM__REPORT_STATE_FAIL;
    return r->s5xx ? LM__REPORT_STATE_WARN : LM__REPORT_STATE_OK;
}

static void write_routes(lm_outbuf *o, lm_http *http, const table *t, double elapsed_s)
{
    uint64_t total = 0, s5 = 0, s4 = 0;
    int64_t inflight = 0;
    size_t failing = 0;
    for (size_t i = 0; i < t->n; i++) {
        total += t->rows[i].requests;
        s5 += t->rows[i].s5xx;
        s4 += t->rows[i].s4xx;
        inflight += t->rows[i].inflight;
        failing += strcmp(row_state(&t->rows[i]), LM__REPORT_STATE_FAIL) == 0;
    }
    lm__out_str(o, "## Routes, worst first\n\n");
    lm__out_u64(o, t->n);
    lm__out_str(o, t->n == 1 ? " route" : " routes");
    lm__out_str(o, " \xC2\xB7 ");
    lm__out_u64(o, failing);
    lm__out_str(o, " failing \xC2\xB7 ");
    lm__out_u64(o, total);
    lm__out_str(o, " requests \xC2\xB7 ");
    out_percent(o, s5, total);
    lm__out_str(o, " % 5xx \xC2\xB7 ");
    out_percent(o, s4, total);
    lm__out_str(o, " % 4xx \xC2\xB7 ");
    lm__out_i64(o, inflight);
    lm__out_str(o, " in flight\n\n");

    lm_family_info ri;
    lm_family_describe(lm_http_family_get(http, LM_HTTP_REQUESTS), &ri);
    uint64_t folded = ri.folded;
    if (folded) {
        lm__out_str(o, "**Cardinality cap reached:** ");
        lm__out_u64(o, folded);
        lm__out_str(o, " route/method/status lookups were folded into the `_overflow` row "
                   "(max_series of the HTTP families).\n\n");
    }
    if (!t->n) {
        lm__out_str(o, "No routes have been registered yet.\n\n");
        return;
    }

    lm__out_str(o, "| State | Route | Requests | Req/s | 5xx % | 4xx % | p50 ms | p95 ms | p99 ms "
               "| In flight | Latency buckets |\n"
               "| :-- | :-- | --: | --: | --: | --: | --: | --: | --: | --: | :-- |\n");
    for (size_t i = 0; i < t->n && !o->failed; i++) {
        const row *r = &t->rows[i];
        lm__out_str(o, "| ");
        lm__out_str(o, row_state(r));
        lm__out_str(o, " | ");
        if (r->name.len)
            md_text(o, r->name);
        else
            lm__out_str(o, "*(empty name)*");
        lm__out_str(o, " | ");
        lm__out_u64(o, r->requests);
        lm__out_str(o, " | ");
        out_rate(o, (double)r->requests, elapsed_s);
        lm__out_str(o, " | ");
        out_percent(o, r->s5xx, r->requests);
        lm__out_str(o, " | ");
        out_percent(o, r->s4xx, r->requests);
        for (int k = 0; k < 3; k++) {
            lm__out_str(o, " | ");
            out_latency_ms(o, r->q[k], r->clamped[k]);
        }
        lm__out_str(o, " | ");
        lm__out_i64(o, r->inflight);
        lm__out_str(o, " | ");
        out_bar(o, r->buckets, t->nb + 1);
        lm__out_str(o, " |\n");
    }

    lm__out_str(o, "\n**Worst first** means the highest share of 5xx responses first, then the "
               "highest p99 latency. **State:** FAIL when at least ");
    out_num(o, LM__REPORT_FAIL_5XX_PERCENT, 3, 2);
    lm__out_str(o, " % of requests ended in 5xx, warn when any did, idle without requests. "
               "**Req/s** is the average since the metrics began ");
    out_duration(o, elapsed_s);
    lm__out_str(o, " ago, not a current rate.\n\n"
               "**Latency percentiles** are estimated from the histogram buckets by linear "
               "interpolation within the bucket that holds the rank, exactly as Prometheus's "
               "`histogram_quantile()` does; \xE2\x89\xA5 marks a percentile that fell in the "
               "+Inf bucket, where `histogram_quantile()` returns the upper bound of the last "
               "finite bucket. **Latency buckets** show one bar per bucket, height relative to "
               "the fullest, \xC2\xB7 when empty; upper bounds in ms: ");
    for (size_t i = 0; i < t->nb; i++) {
        out_num(o, t->bounds[i] * 1000, 6, 6);
        lm__out_str(o, ", ");
    }
    lm__out_str(o, "+Inf.\n\n");
}

static bool has_prefix(lm_str t, const char *p)
{
    size_t n = strlen(p);
    return t.len >= n && memcmp(t.ptr, p, n) == 0;
}

static void write_labels(lm_outbuf *o, const lm_family *f, size_t nlabels, const lm_series *s)
{
    if (!nlabels)
        lm__out_str(o, "*(no labels)*");
    for (size_t j = 0; j < nlabels; j++) {
        if (j)
            lm__out_str(o, ", ");
        md_text(o, lm_family_label_name(f, j));
        lm__out_str(o, "=\"");
        md_text(o, lm_series_label_value(s, j));
        lm__out_str(o, "\"");
    }
}

/* One series as a table row: counters their value and average rate,
 * histograms their count, rate and estimated percentiles (in ms: the
 * bounds are seconds). */
static void write_series_row(lm_outbuf *o, const lm_family *f, const lm_family_info *fi,
                             const lm_series *s, double elapsed_s)
{
    uint64_t b[LM_MAX_BOUNDS + 1];
    uint64_t v = lm_series_count(s);
    bool hist = fi->type == LM_HISTOGRAM && lm_histogram_buckets(s, b, LM_MAX_BOUNDS + 1) ==
                                                 fi->nbounds + 1;
    if (hist) { /* the count of this one read, so the percentiles agree with it */
        v = 0;
        for (size_t i = 0; i <= fi->nbounds; i++)
            v += b[i];
    }
    lm__out_str(o, "| ");
    write_labels(o, f, fi->nlabels, s);
    lm__out_str(o, " | ");
    lm__out_u64(o, v);
    lm__out_str(o, " | ");
    out_rate(o, (double)v, elapsed_s);
    for (int k = 0; hist && k < 3; k++) {
        bool clamped;
        double q = bucket_quantile(quantiles[k], fi->bounds, fi->nbounds, b, &clamped);
        lm__out_str(o, " | ");
        out_latency_ms(o, q, clamped);
    }
    lm__out_str(o, " |\n");
}

/* A family as a "###" heading, its help and one row per series (the
 * overflow series last). */
static void write_family(lm_outbuf *o, lm_family *f, double elapsed_s)
{
    lm_family_info fi;
    lm_family_describe(f, &fi);
    lm__out_str(o, "### ");
    md_text(o, fi.name);
    lm__out_str(o, "\n\n");
    if (fi.help.len) {
        md_text(o, fi.help);
        lm__out_str(o, "\n\n");
    }
    lm_series *ov = lm_family_overflow(f);
    if (!fi.nseries && !ov) {
        lm__out_str(o, "No series yet.\n\n");
        return;
    }
    if (fi.type == LM_HISTOGRAM)
        lm__out_str(o, "| Labels | Count | Per second | p50 ms | p95 ms | p99 ms |\n"
                       "| :-- | --: | --: | --: | --: | --: |\n");
    else
        lm__out_str(o, "| Labels | Value | Per second |\n| :-- | --: | --: |\n");
    for (size_t j = 0; j < fi.nseries && !o->failed; j++)
        write_series_row(o, f, &fi, lm_family_series(f, j), elapsed_s);
    if (ov)
        write_series_row(o, f, &fi, ov, elapsed_s);
    lm__out_str(o, "\n");
}

/* The host's own counters; the runtime's (libmetrics_*, process_*, go_*)
 * are not business. */
static bool is_business(const lm_family_info *fi)
{
    return fi->kind == LM_KIND_BUSINESS && fi->type == LM_COUNTER &&
           !has_prefix(fi->name, "libmetrics_") && !has_prefix(fi->name, "process_") &&
           !has_prefix(fi->name, "go_");
}

static bool is_server_timing(const lm_family_info *fi)
{
    return fi->kind == LM_KIND_SERVER_TIMING && fi->type != LM_GAUGE;
}

/* Counters only: a gauge's rate since start means nothing. */
static bool is_runtime(const lm_family_info *fi)
{
    return fi->kind == LM_KIND_RUNTIME && fi->type == LM_COUNTER;
}

/* Whether pick selects any family of fams. */
static bool any_family(lm_family *const *fams, size_t n, bool (*pick)(const lm_family_info *))
{
    for (size_t i = 0; i < n; i++) {
        lm_family_info fi;
        lm_family_describe(fams[i], &fi);
        if (pick(&fi))
            return true;
    }
    return false;
}

/* Every family of fams that `pick` selects; returns how many. */
static size_t write_families(lm_outbuf *o, lm_family *const *fams, size_t n,
                             bool (*pick)(const lm_family_info *), double elapsed_s)
{
    size_t shown = 0;
    for (size_t i = 0; i < n && !o->failed; i++) {
        lm_family_info fi;
        lm_family_describe(fams[i], &fi);
        if (!pick(&fi))
            continue;
        shown++;
        write_family(o, fams[i], elapsed_s);
    }
    return shown;
}

static void write_counters(lm_outbuf *o, lm_family *const *fams, size_t n, double elapsed_s)
{
    lm__out_str(o, "## Business counters\n\n");
    if (!write_families(o, fams, n, is_business, elapsed_s))
        lm__out_str(o, "None registered.\n\n");
}

/* Only when there is something to show: most registries have no
 * Server-Timing families. */
static void write_server_timing(lm_outbuf *o, lm_family *const *fams, size_t n, double elapsed_s)
{
    if (!any_family(fams, n, is_server_timing))
        return;
    lm__out_str(o, "## Server-Timing\n\n"
                   "What the application reported in its Server-Timing response headers. "
                   "**Percentiles** (ms) are estimated from each histogram's buckets exactly as "
                   "Prometheus's `histogram_quantile()` does; \xE2\x89\xA5 marks one in the +Inf "
                   "bucket.\n\n");
    write_families(o, fams, n, is_server_timing, elapsed_s);
}

/* The host's own counters, after what its traffic did: during an incident
 * they answer "are the scrapes failing or refused?" (a gap in a dashboard)
 * without being mistaken for business figures. Only when there are any. */
static void write_runtime(lm_outbuf *o, lm_family *const *fams, size_t n, double elapsed_s)
{
    if (!any_family(fams, n, is_runtime))
        return;
    lm__out_str(o, "## Runtime\n\n"
                   "The host's own counters: its runtime and how its metrics are served "
                   "(refused or failed scrapes), not its traffic.\n\n");
    write_families(o, fams, n, is_runtime, elapsed_s);
}

static void write_process(lm_outbuf *o, const lm_process_stats *ps, double now_s)
{
    lm__out_str(o, "## Process\n\n");
    if (!ps->ok) {
        lm__out_str(o, "/proc could not be read; process figures are unavailable.\n");
        return;
    }
    double up = now_s - ps->start_time_seconds;
    lm__out_str(o, "| Resource | Value |\n| :-- | --: |\n| CPU time | ");
    out_num(o, ps->cpu_seconds, 3, 2);
    lm__out_str(o, " s");
    if (up > 0.001) {
        lm__out_str(o, " (");
        out_num(o, ps->cpu_seconds / up, 2, 2);
        lm__out_str(o, " cores on average since start)");
    }
    lm__out_str(o, " |\n| Resident memory | ");
    out_num(o, ps->resident_bytes / (1024.0 * 1024.0), 3, 1);
    lm__out_str(o, " MiB |\n| Open file descriptors | ");
    out_num(o, ps->open_fds, 20, 0);
    if (ps->max_fds > 0) {
        lm__out_str(o, " of ");
        out_num(o, ps->max_fds, 20, 0);
    }
    lm__out_str(o, " |\n| Threads | ");
    out_num(o, ps->threads, 20, 0);
    lm__out_str(o, " |\n| Started | ");
    out_utc(o, ps->start_time_seconds);
    lm__out_str(o, " |\n");
}

/* ------------------------------------------------------------- driver */

/* The live families, in an array the caller frees; NULL when out of
 * memory. Families registered while this runs show on the next report. */
static lm_family **live_families(lm_registry *reg, size_t *n)
{
    size_t cap = lm_registry_families(reg, NULL, 0) + FAMILY_SLACK;
    lm_family **fams = malloc(cap * sizeof *fams);
    if (!fams)
        return NULL;
    *n = lm_registry_families(reg, fams, cap);
    if (*n > cap)
        *n = cap;
    return fams;
}

lm_status lm_report_markdown(lm_registry *reg, const lm_report_options *opts, lm_write_fn fn,
                             void *ctx, lm_error *err)
{
    static const lm_report_options defaults = {NULL, NULL, 0};
    if (!reg || !fn) {
        lm__set_error(err, LM_ERR_INVALID, "lm_report_markdown: %s is NULL",
                      !reg ? "registry" : "writer");
        return LM_ERR_INVALID;
    }
    if (!opts)
        opts = &defaults;
    const char *prefix = opts->http_prefix ? opts->http_prefix : "";
    const char *title = opts->title ? opts->title : "libmetrics";

    lm_outbuf *o = malloc(sizeof *o);
    lm_text ttl = {0};
    table t;
    memset(&t, 0, sizeof t);
    size_t nfams = 0;
    lm_family **fams = NULL;
    if (!o || lm__text_from((lm_str){title, strlen(title)}, TITLE_MAX, &ttl) != 0)
        goto nomem;
    lm__out_init(o, fn, ctx);

    lm_http *http = lm_http_find(reg, prefix);
    if ((http && collect_routes(http, &t) != 0) || !(fams = live_families(reg, &nfams)))
        goto nomem;

    lm_process_stats ps;
    lm__process_read(&ps);
    double now_s = (double)clock_ns(CLOCK_REALTIME) / 1e9;
    int64_t created_ns = lm_registry_created_ns(reg);
    double elapsed_s = created_ns > 0
                           ? (double)(clock_ns(CLOCK_MONOTONIC) - created_ns) / 1e9
                           : NAN;

    lm__out_str(o, "# ");
    md_text(o, (lm_str){ttl.ptr, ttl.len});
    lm__out_str(o, "\n\nGenerated ");
    out_utc(o, now_s);
    if (ps.ok) {
        lm__out_str(o, " \xC2\xB7 process up ");
        out_duration(o, now_s - ps.start_time_seconds);
    }
    lm__out_str(o, " \xC2\xB7 metrics since ");
    out_duration(o, elapsed_s);
    lm__out_str(o, " ago\n\n");

    if (http) {
        write_routes(o, http, &t, elapsed_s);
    } else {
        lm__out_str(o, "## Routes\n\nNo HTTP metrics are registered with the prefix \"");
        md_escape(o, prefix, strlen(prefix));
        lm__out_str(o, "\".\n\n");
    }
    write_counters(o, fams, nfams, elapsed_s);
    write_server_timing(o, fams, nfams, elapsed_s);
    write_runtime(o, fams, nfams, elapsed_s);
    write_process(o, &ps, now_s);
    lm__out_flush(o);

    lm_status st = o->failed ? LM_ERR_IO : LM_OK;
    if (st != LM_OK)
        lm__set_error(err, LM_ERR_IO, "lm_report_markdown: the writer callback aborted");
    free(o);
    free(fams);
    lm__text_free(&ttl);
    table_free(&t);
    return st;

nomem:
    free(o);
    free(fams);
    lm__text_free(&ttl);
    table_free(&t);
    lm__set_error(err, LM_ERR_NOMEM, "lm_report_markdown: out of memory");
    return LM_ERR_NOMEM;
}
