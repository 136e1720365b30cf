/* The protobuf exposition (LM_FORMAT_PROTOBUF), decoded back with
 * protobuf-c: a stream of length-prefixed MetricFamily messages holding
 * every family the text exposition shows, in the same order, with the
 * same samples (counters, gauges, each classic bucket, _sum, _count); a
 * histogram with native buckets carries them (schema, zero threshold and
 * count, spans and deltas equal to what lm__native_read gives) and its
 * count equals the native total; exemplars on counters, classic buckets
 * (+Inf only when it has one) and in the native list, with timestamps; a
 * native histogram with a zero threshold of 0 and nothing observed gets
 * the no-op span; text and OpenMetrics bodies are byte for byte what the
 * same registry without native buckets gives. Every unit and every
 * allocation made to fail in turn cuts the stream at a message boundary,
 * a prefix of the complete one, and says so. */
#include "core.h"
#include "expo_pb.h"
#include "lm_capture.h"
#include "lm_test.h"
#include "pb_check.h"

#include <math.h>
#include <stdlib.h>

#define T0 1700000000123000000LL

static lm_str S(const char *s)
{
    return (lm_str){s, strlen(s)};
}

/* ----------------------------------------------------------- decoding */

typedef pb_families decoded;

static char *scrape(lm_registry *reg, lm_format fmt, unsigned flags, size_t *len)
{
    capture c = {0};
    lm_error err;
    CHECK(lm_expo_write(reg, fmt, flags, capture_write, &c, &err) == LM_OK);
    *len = c.len;
    return c.p;
}

static const pb_family *find(const decoded *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->f[i]->name, name) == 0)
            return d->f[i];
    return NULL;
}

/* --------------------------------------------------- text equivalence */

/* Appends `name{labels} value` lines of the decoded protobuf in the text
 * format's order and spelling, so it can be compared with the text body's
 * sample lines. */
static void put_sample(char **out, size_t *len, const char *name, const char *suffix,
                       const Io__Prometheus__Client__Metric *m, const char *le, double v)
{
    char line[1024];
    size_t n = (size_t)snprintf(line, sizeof line, "%s%s", name, suffix);
    if (m->n_label > 0 || le) {
        n += (size_t)snprintf(line + n, sizeof line - n, "{");
        for (size_t i = 0; i < m->n_label; i++)
            n += (size_t)snprintf(line + n, sizeof line - n, "%s%s=\"%s\"", i ? "," : "",
                                  m->label[i]->name, m->label[i]->value);
        if (le)
            n += (size_t)snprintf(line + n, sizeof line - n, "%sle=\"%s\"",
                                  m->n_label ? "," : "", le);
        n += (size_t)snprintf(line + n, sizeof line - n, "}");
    }
    char num[64];
    lm__fmt_double(num, v);
    n += (size_t)snprintf(line + n, sizeof line - n, " %s\n", num);
    *out = realloc(*out, *len + n + 1);
    memcpy(*out + *len, line, n + 1);
    *len += n;
}

static char *pb_as_text(const decoded *d)
{
    char *out = NULL;
    size_t len = 0;
    for (size_t i = 0; i < d->n; i++) {
        const pb_family *f = d->f[i];
        for (size_t j = 0; j < f->n_metric; j++) {
            const Io__Prometheus__Client__Metric *m = f->metric[j];
            if (m->counter)
                put_sample(&out, &len, f->name, "", m, NULL, m->counter->value);
            else if (m->gauge)
                put_sample(&out, &len, f->name, "", m, NULL, m->gauge->value);
            else if (m->histogram) {
                const pb_histogram *h = m->histogram;
                for (size_t k = 0; k < h->n_bucket; k++) {
                    if (isinf(h->bucket[k]->upper_bound))
                        continue;
                    char le[48];
                    lm__fmt_double(le, h->bucket[k]->upper_bound);
                    put_sample(&out, &len, f->name, "_bucket", m, le,
                               (double)h->bucket[k]->cumulative_count);
                }
                put_sample(&out, &len, f->name, "_bucket", m, "+Inf", (double)h->sample_count);
                put_sample(&out, &len, f->name, "_sum", m, NULL, h->sample_sum);
                put_sample(&out, &len, f->name, "_count", m, NULL, (double)h->sample_count);
            }
        }
    }
    return out ? out : calloc(1, 1);
}

/* The text body's sample lines with each value re-rendered as the
 * nearest double (an exact decimal _sum becomes what protobuf carries). */
static char *text_samples(const char *body)
{
    char *out = NULL;
    size_t len = 0;
    for (const char *l = body; *l; l = strchr(l, '\n') + 1) {
        const char *e = strchr(l, '\n');
        if (*l != '#') {
            const char *sp = e;
            while (sp > l && sp[-1] != ' ')
                sp--;
            char num[64];
            size_t n = lm__fmt_double(num, strtod(sp, NULL));
            size_t head = (size_t)(sp - l);
            out = realloc(out, len + head + n + 2);
            memcpy(out + len, l, head);
            memcpy(out + len + head, num, n);
            len += head + n;
            out[len++] = '\n';
            out[len] = '\0';
        }
    }
    return out ? out : calloc(1, 1);
}

/* ------------------------------------------------------------ registry */

static const char *const L2[] = {"route", "code"};
static const lm_native_options N3 = {.schema = 3, .max_buckets = 160};

static lm_registry *build(bool native)
{
    lm_error e = {0};
    lm_registry *r = lm_registry_new(NULL, &e);
    lm_family *c = lm_family_register(
        r, &(lm_family_options){.type = LM_COUNTER, .name = "p_requests_total", .help = "Req.",
                                .label_names = L2, .nlabels = 2, .max_series = 4},
        &e);
    lm_family *h = lm_family_register(
        r, &(lm_family_options){.type = LM_HISTOGRAM, .name = "p_latency_seconds", .help = "Lat.",
                                .label_names = L2, .nlabels = 2, .max_series = 4,
                                .unit_scale = 1e9, .native = native ? &N3 : NULL},
        &e);
    lm_family *g = lm_family_register(
        r, &(lm_family_options){.type = LM_GAUGE, .name = "p_temp", .help = ""}, &e);
    char rt[16];
    for (int i = 0; i < 6; i++) { /* two of them fold into the overflow series */
        snprintf(rt, sizeof rt, "r%d", i);
        lm_str v[2] = {S(rt), S(i % 2 ? "200" : "500")};
        lm_counter_add(lm_series_get(c, v, &e), (uint64_t)i + 1);
        lm_series *hs = lm_series_get(h, v, &e);
        for (int k = 0; k < 40; k++)
            lm_histogram_observe(hs, (int64_t)(i + 1) * 300000 * (k + 1) - 2000000);
    }
    lm_gauge_set(lm_series_get(g, NULL, &e), -7);
    lm_http *http =
        lm_http_register(r, &(lm_http_options){.prefix = "p_", .native = native ? &N3 : NULL}, &e);
    lm_route *route = lm_http_route(http, S("api"), &e);
    lm_exemplar ex = {"request_id", S("abc"), T0};
    lm_request_record rec = {.method = LM_METHOD_GET, .status = 200, .duration_ns = 4000000,
                             .exemplar = &ex};
    lm_route_record_ex(route, &rec);
    rec.duration_ns = 60000000000; /* above every bound: an exemplar on +Inf */
    ex.unix_ns = T0 + 1000000;
    lm_route_record_ex(route, &rec);
    return r;
}

static void test_same_samples_as_text(void)
{
    lm_registry *r = build(true);
    size_t tl, pl;
    char *text = scrape(r, LM_FORMAT_TEXT, LM_EXPO_PROCESS, &tl);
    char *body = scrape(r, LM_FORMAT_PROTOBUF, LM_EXPO_PROCESS, &pl);
    decoded d = pb_decode(body, pl);
    CHECK(d.whole && d.n > 5);
    char *a = text_samples(text), *b = pb_as_text(&d);
    /* process_* figures move between the two scrapes: compare up to them */
    char *pa = strstr(a, "\nprocess_"), *pbp = strstr(b, "\nprocess_");
    CHECK(pa != NULL && pbp != NULL);
    if (pa && pbp) {
        pa[1] = pbp[1] = '\0';
        CHECK_STR(b, a);
    }
    /* Family names and types, in the text's order. */
    size_t k = 0;
    for (const char *l = text; (l = strstr(l, "# TYPE ")) != NULL; l++, k++) {
        char name[128], type[32];
        sscanf(l, "# TYPE %127s %31s", name, type);
        CHECK(k < d.n && strcmp(d.f[k]->name, name) == 0);
        int want = strcmp(type, "counter") == 0 ? IO__PROMETHEUS__CLIENT__METRIC_TYPE__COUNTER
                   : strcmp(type, "gauge") == 0 ? IO__PROMETHEUS__CLIENT__METRIC_TYPE__GAUGE
                                                 : IO__PROMETHEUS__CLIENT__METRIC_TYPE__HISTOGRAM;
        CHECK(k < d.n && d.f[k]->has_type && (int)d.f[k]->type == want);
    }
    CHECK(k == d.n);
    const pb_family *rq = find(&d, "p_requests_total");
    CHECK(rq && rq->help && strcmp(rq->help, "Req.") == 0);
    const pb_family *g = find(&d, "p_temp");
    CHECK(g && g->help == NULL); /* no HELP line in text either */
    CHECK(find(&d, "libmetrics_series_folded_total") != NULL);
    CHECK(find(&d, "process_cpu_seconds_total") != NULL);
    free(a);
    free(b);
    pb_families_free(&d);
    free(text);
    free(body);
    lm_registry_free(r);
}

/* Spans and deltas back to (key, count) rows. */
static size_t expand(const Io__Prometheus__Client__BucketSpan *const *sp, size_t nsp,
                     const int64_t *d, size_t nd, int32_t *key, uint64_t *cnt)
{
    size_t n = 0, di = 0;
    int32_t idx = 0;
    int64_t c = 0;
    for (size_t i = 0; i < nsp; i++) {
        idx += sp[i]->offset;
        for (uint32_t j = 0; j < sp[i]->length && di < nd; j++) {
            c += d[di++];
            if (c != 0) {
                key[n] = idx;
                cnt[n++] = (uint64_t)c;
            }
            idx++;
        }
    }
    return di == nd ? n : (size_t)-1;
}

static void *plain_alloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return realloc(p, n);
}

static void test_native_fields(void)
{
    lm_registry *r = build(true);
    size_t pl;
    char *body = scrape(r, LM_FORMAT_PROTOBUF, 0, &pl);
    decoded d = pb_decode(body, pl);
    const pb_family *f = find(&d, "p_latency_seconds");
    lm_family *lf = r->families[1];
    CHECK(f != NULL && f->n_metric == 5); /* 4 series and the overflow */
    lm_native_scratch sc = {0};
    CHECK(lm__native_scratch_fit(&sc, lf->native, plain_alloc, NULL) == 0);
    for (size_t i = 0; f && i < f->n_metric; i++) {
        const pb_histogram *h = f->metric[i]->histogram;
        const lm_series *s = i < 4 ? lf->series[i] : atomic_load(&lf->overflow);
        lm_native_hist nh;
        lm__native_read(s, (lm_native_view){true, 3, 160}, &sc, &nh);
        CHECK(h->has_schema && h->schema == 3 && nh.schema == 3);
        CHECK(h->has_zero_threshold && h->zero_threshold == 0x1p-128);
        CHECK(h->has_zero_count && h->zero_count == nh.zero);
        CHECK(h->sample_count == nh.count && nh.count == lm_series_count(s));
        int32_t key[512];
        uint64_t cnt[512];
        for (int sign = 0; sign < 2; sign++) {
            size_t n = sign ? expand((void *)h->negative_span, h->n_negative_span,
                                     h->negative_delta, h->n_negative_delta, key, cnt)
                            : expand((void *)h->positive_span, h->n_positive_span,
                                     h->positive_delta, h->n_positive_delta, key, cnt);
            CHECK(n == nh.row[sign].n);
            for (size_t j = 0; j < n && j < nh.row[sign].n; j++)
                CHECK(key[j] == nh.row[sign].key[j] && cnt[j] == nh.row[sign].count[j]);
        }
        /* The observations below zero (-2 ms + ...) are negative buckets. */
        if (i == 0)
            CHECK(h->n_negative_span > 0);
    }
    /* The request histogram: exemplars on their buckets, +Inf explicit
     * because it has one, and the native list. */
    const pb_family *dur = find(&d, "p_http_request_duration_seconds");
    CHECK(dur != NULL && dur->n_metric == 1);
    if (dur) {
        const pb_histogram *h = dur->metric[0]->histogram;
        CHECK(h->sample_count == 2 && h->n_bucket == 15);
        const Io__Prometheus__Client__Bucket *inf = h->bucket[14];
        CHECK(isinf(inf->upper_bound) && inf->cumulative_count == 2 && inf->exemplar != NULL);
        CHECK(inf->exemplar && inf->exemplar->value == 60.0);
        CHECK(inf->exemplar && inf->exemplar->timestamp->seconds == 1700000000 &&
              inf->exemplar->timestamp->nanos == 124000000);
        const Io__Prometheus__Client__Bucket *b5 = h->bucket[2]; /* le 0.005 */
        CHECK(b5->upper_bound == 0.005 && b5->cumulative_count == 1 && b5->exemplar &&
              b5->exemplar->value == 0.004 && b5->exemplar->n_label == 1 &&
              strcmp(b5->exemplar->label[0]->name, "request_id") == 0 &&
              strcmp(b5->exemplar->label[0]->value, "abc") == 0);
        CHECK(h->n_exemplars == 2);
        CHECK(h->sample_sum == 60.004);
    }
    const pb_family *rq = find(&d, "p_http_requests_total");
    CHECK(rq && rq->metric[0]->counter->exemplar &&
          rq->metric[0]->counter->exemplar->value == 1 &&
          rq->metric[0]->counter->exemplar->timestamp->seconds == 1700000000);
    lm__native_scratch_free(&sc);
    pb_families_free(&d);
    free(body);
    lm_registry_free(r);
}

static void test_text_unchanged(void)
{
    lm_registry *with = build(true), *without = build(false);
    for (int om = 0; om < 2; om++) {
        lm_format fmt = om ? LM_FORMAT_OPENMETRICS : LM_FORMAT_TEXT;
        size_t a, b;
        char *x = scrape(with, fmt, 0, &a), *y = scrape(without, fmt, 0, &b);
        CHECK(a == b);
        CHECK_STR(x, y);
        free(x);
        free(y);
    }
    /* Without native buckets the protobuf histogram is classic only. */
    size_t pl;
    char *body = scrape(without, LM_FORMAT_PROTOBUF, 0, &pl);
    decoded d = pb_decode(body, pl);
    const pb_family *f = find(&d, "p_latency_seconds");
    CHECK(f && !f->metric[0]->histogram->has_schema && f->metric[0]->histogram->n_positive_span == 0);
    CHECK(f && f->metric[0]->histogram->sample_count == 40);
    pb_families_free(&d);
    free(body);
    lm_registry_free(with);
    lm_registry_free(without);
}

static void test_noop_span(void)
{
    lm_registry *r = lm_registry_new(NULL, NULL);
    lm_native_options z = {.schema = 0, .zero_threshold = -1};
    lm_family *f = lm_family_register(
        r, &(lm_family_options){.type = LM_HISTOGRAM, .name = "z", .unit_scale = 1e9, .native = &z},
        NULL);
    lm_series *s = lm_series_get(f, NULL, NULL);
    size_t pl;
    char *body = scrape(r, LM_FORMAT_PROTOBUF, 0, &pl);
    decoded d = pb_decode(body, pl);
    CHECK(d.whole && d.n == 2);
    const pb_histogram *h = d.n ? d.f[0]->metric[0]->histogram : NULL;
    CHECK(h && h->has_schema && h->schema == 0 && h->zero_threshold == 0);
    CHECK(h && h->n_positive_span == 1 && h->positive_span[0]->has_offset &&
          h->positive_span[0]->offset == 0 && h->positive_span[0]->has_length &&
          h->positive_span[0]->length == 0 && h->n_positive_delta == 0);
    pb_families_free(&d);
    free(body);
    lm_histogram_observe(s, 0); /* exactly 0: the zero bucket, no span needed */
    body = scrape(r, LM_FORMAT_PROTOBUF, 0, &pl);
    d = pb_decode(body, pl);
    h = d.n ? d.f[0]->metric[0]->histogram : NULL;
    CHECK(h && h->zero_count == 1 && h->n_positive_span == 0 && h->sample_count == 1);
    pb_families_free(&d);
    free(body);
    lm_registry_free(r);
}

/* ----------------------------------------------------------- failures */

typedef struct fault {
    int site;
    long at, calls;
} fault;

static bool fault_fn(void *ctx, int site)
{
    fault *f = ctx;
    return site == f->site && ++f->calls == f->at;
}

static void test_faults(void)
{
    for (int site = LM__FAULT_ALLOC; site <= LM__FAULT_UNIT; site++) {
        lm_registry *r = build(true);
        fault f = {.site = site};
        r->fault = fault_fn;
        r->fault_ctx = &f;
        lm_error e;
        lm_expo *x = lm_expo_begin(r, LM_FORMAT_PROTOBUF, 0, &e);
        size_t full_len;
        char *full = capture_drain(x, 7, &full_len);
        CHECK(lm_expo_status(x, &e) == LM_OK);
        lm_expo_end(x);
        long n = f.calls;
        CHECK(n >= 3);
        int cut = 0, refused = 0;
        /* The last unit call finds the end: failing it cuts nothing. */
        long last = site == LM__FAULT_UNIT ? n - 1 : n;
        for (long k = 1; k <= last; k++) {
            f = (fault){.site = site, .at = k};
            x = lm_expo_begin(r, LM_FORMAT_PROTOBUF, 0, &e);
            if (x == NULL) {
                CHECK(e.code == LM_ERR_NOMEM);
                refused++;
                continue;
            }
            size_t len;
            char *got = capture_drain(x, 7, &len);
            lm_status st = lm_expo_status(x, &e);
            decoded d = pb_decode(got, len);
            bool ok = st == LM_ERR_NOMEM && len < full_len && memcmp(got, full, len) == 0 &&
                      d.whole;
            CHECK(ok);
            if (!ok)
                fprintf(stderr, "  fault site %d at %ld: %zu of %zu bytes, status %d\n", site, k,
                        len, full_len, (int)st);
            cut += st != LM_OK;
            pb_families_free(&d);
            free(got);
            lm_expo_end(x);
        }
        CHECK(cut > 0);
        if (site == LM__FAULT_ALLOC)
            CHECK(refused > 0 && cut > 0); /* at begin, and mid-stream (scratch) */
        free(full);
        r->fault = NULL;
        lm_registry_free(r);
    }
}

static void test_content_type(void)
{
    CHECK_STR(lm_format_content_type(LM_FORMAT_PROTOBUF),
              "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
              "encoding=delimited");
    uint8_t b[10];
    CHECK(lm__pb_varint(0, b) == 1 && b[0] == 0);
    CHECK(lm__pb_varint(300, b) == 2 && b[0] == 0xac && b[1] == 0x02);
    CHECK(lm__pb_varint(UINT64_MAX, b) == 10 && b[9] == 1);
}

int main(void)
{
    test_same_samples_as_text();
    test_native_fields();
    test_text_unchanged();
    test_noop_span();
    test_faults();
    test_content_type();
    TEST_MAIN_END();
}
