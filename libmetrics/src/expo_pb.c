/*
 * Protobuf MetricFamily messages for the exposition (design: expo_pb.h).
 * Every byte of a message is encoded by protobuf-c; only the delimited
 * framing's length prefix (a varint) is written here.
 */
#include "expo_pb.h"
#include "core.h"
#include "exemplar.h"
#include "native.h"

#include "io/prometheus/client/metrics.pb-c.h"

#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef Io__Prometheus__Client__MetricFamily pb_family;
typedef Io__Prometheus__Client__Metric pb_metric;
typedef Io__Prometheus__Client__LabelPair pb_label;
typedef Io__Prometheus__Client__Counter pb_counter;
typedef Io__Prometheus__Client__Gauge pb_gauge;
typedef Io__Prometheus__Client__Histogram pb_histogram;
typedef Io__Prometheus__Client__Bucket pb_bucket;
typedef Io__Prometheus__Client__BucketSpan pb_span;
typedef Io__Prometheus__Client__Exemplar pb_exemplar;
typedef Google__Protobuf__Timestamp pb_timestamp;

#define NCLASSIC (LM_MAX_BOUNDS + 1) /* classic buckets with +Inf */
/* An exemplar's label name and value, each NUL-terminated. */
#define EX_TEXT (LM_EXEMPLAR_MAX_BYTES + 2)

/* One exemplar as a message, with the storage it points to. */
typedef struct pb_ex {
    pb_exemplar msg;
    pb_label label;
    pb_label *label_ptr;
    pb_timestamp ts;
} pb_ex;

/* A native histogram's row as messages. */
typedef struct pb_row {
    pb_span *spans;
    pb_span **span_ptrs;
    int32_t *off;
    uint32_t *len;
    int64_t *deltas;
    size_t cap; /* populated buckets the arrays hold */
} pb_row;

struct lm_pb {
    lm_pb_alloc alloc;
    void *ctx;
    locale_t c_locale; /* sums are parsed from lm__fmt_scaled's decimals */

    pb_metric metric;
    pb_metric *metric_ptr;
    pb_label labels[LM_MAX_LABELS];
    pb_label *label_ptrs[LM_MAX_LABELS];
    pb_counter counter;
    pb_gauge gauge;
    pb_histogram hist;
    pb_bucket buckets[NCLASSIC];
    pb_bucket *bucket_ptrs[NCLASSIC];

    pb_ex ex[NCLASSIC];              /* a counter's, or one per classic bucket */
    pb_exemplar *ex_ptrs[NCLASSIC];  /* a native histogram's list */
    char (*ex_text)[EX_TEXT];        /* NCLASSIC of them, on the first exemplar */

    uint64_t classic[NCLASSIC];
    lm_native_scratch ns;
    pb_row rows[2];
    pb_span noop;
    pb_span *noop_ptr;
};

static void *grow(lm_pb *pb, void *p, size_t bytes)
{
    return pb->alloc(pb->ctx, p, bytes);
}

lm_pb *lm__pb_new(lm_pb_alloc alloc, void *ctx)
{
    lm_pb *pb = alloc(ctx, NULL, sizeof *pb);
    if (pb == NULL)
        return NULL;
    memset(pb, 0, sizeof *pb);
    pb->alloc = alloc;
    pb->ctx = ctx;
    pb->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (pb->c_locale == (locale_t)0) {
        free(pb);
        return NULL;
    }
    return pb;
}

void lm__pb_free(lm_pb *pb)
{
    if (pb == NULL)
        return;
    freelocale(pb->c_locale);
    free(pb->ex_text);
    lm__native_scratch_free(&pb->ns);
    for (int i = 0; i < 2; i++) {
        pb_row *r = &pb->rows[i];
        free(r->spans);
        free(r->span_ptrs);
        free(r->off);
        free(r->len);
        free(r->deltas);
    }
    free(pb);
}

size_t lm__pb_varint(uint64_t v, uint8_t *out)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* Packs message m at the end of the unit. */
static int pack(const ProtobufCMessage *m, lm_pbout out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *p = out.reserve(out.ctx, n);
    if (p == NULL)
        return -1;
    return protobuf_c_message_pack(m, p) == n ? 0 : -1;
}

/* The exact decimal of hi:lo / unit_scale, read back as the nearest
 * double (what the text exposition prints, as close as a double gets). */
static double scaled(const lm_pb *pb, int64_t hi, uint64_t lo, double unit_scale)
{
    char buf[64];
    lm__fmt_scaled(buf, sizeof buf, hi, lo, unit_scale);
    return strtod_l(buf, NULL, pb->c_locale);
}

static Io__Prometheus__Client__MetricType pb_type(lm_type t)
{
    switch (t) {
    case LM_COUNTER:
        return IO__PROMETHEUS__CLIENT__METRIC_TYPE__COUNTER;
    case LM_GAUGE:
        return IO__PROMETHEUS__CLIENT__METRIC_TYPE__GAUGE;
    case LM_HISTOGRAM:
        break;
    }
    return IO__PROMETHEUS__CLIENT__METRIC_TYPE__HISTOGRAM;
}

static int pack_head(const char *name, const char *help, lm_type type, lm_pbout out)
{
    pb_family head = IO__PROMETHEUS__CLIENT__METRIC_FAMILY__INIT;
    head.name = (char *)name;
    if (help != NULL && help[0] != '\0')
        head.help = (char *)help;
    head.has_type = 1;
    head.type = pb_type(type);
    return pack(&head.base, out);
}

/* The current Metric as a MetricFamily holding only it. */
static int pack_metric(lm_pb *pb, lm_pbout out)
{
    pb_family one = IO__PROMETHEUS__CLIENT__METRIC_FAMILY__INIT;
    pb->metric_ptr = &pb->metric;
    one.n_metric = 1;
    one.metric = &pb->metric_ptr;
    return pack(&one.base, out);
}

static void start_metric(lm_pb *pb, size_t nlabels)
{
    pb_metric m = IO__PROMETHEUS__CLIENT__METRIC__INIT;
    pb->metric = m;
    for (size_t i = 0; i < nlabels; i++) {
        pb_label l = IO__PROMETHEUS__CLIENT__LABEL_PAIR__INIT;
        pb->labels[i] = l;
        pb->label_ptrs[i] = &pb->labels[i];
    }
    pb->metric.n_label = nlabels;
    pb->metric.label = nlabels ? pb->label_ptrs : NULL;
}

/* Exemplar slot i as a message in *out: c's label, value (recorded units
 * / unit_scale for histograms, 0: a counter's increment) and time. -1 when
 * the text storage cannot be had. */
static int exemplar(lm_pb *pb, size_t i, const lm_exemplar_copy *c, double unit_scale,
                    pb_exemplar **out)
{
    if (pb->ex_text == NULL) {
        pb->ex_text = grow(pb, NULL, NCLASSIC * sizeof *pb->ex_text);
        if (pb->ex_text == NULL)
            return -1;
    }
    char *t = pb->ex_text[i];
    memcpy(t, c->text, c->name_len);
    t[c->name_len] = '\0';
    memcpy(t + c->name_len + 1, c->text + c->name_len, c->value_len);
    t[c->name_len + 1 + c->value_len] = '\0';

    pb_ex *x = &pb->ex[i];
    pb_exemplar m = IO__PROMETHEUS__CLIENT__EXEMPLAR__INIT;
    pb_label l = IO__PROMETHEUS__CLIENT__LABEL_PAIR__INIT;
    pb_timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    x->msg = m;
    x->label = l;
    x->ts = ts;
    x->label.name = t;
    x->label.value = t + c->name_len + 1;
    x->label_ptr = &x->label;
    x->msg.n_label = 1;
    x->msg.label = &x->label_ptr;
    x->msg.has_value = 1;
    x->msg.value = unit_scale == 0 ? (double)c->value
                                   : scaled(pb, c->value < 0 ? -1 : 0, (uint64_t)c->value,
                                            unit_scale);
    x->ts.seconds = c->unix_ns / 1000000000;
    x->ts.nanos = (int32_t)(c->unix_ns % 1000000000);
    if (x->ts.nanos < 0) { /* a host-supplied time before 1970 */
        x->ts.nanos += 1000000000;
        x->ts.seconds--;
    }
    x->msg.timestamp = &x->ts;
    *out = &x->msg;
    return 0;
}

/* Room for a native row of n populated buckets (3n deltas: gaps of up to
 * two empty buckets are spelled out). */
static int row_fit(lm_pb *pb, pb_row *r, size_t n)
{
    if (n <= r->cap)
        return 0;
    pb_span *sp = grow(pb, r->spans, n * sizeof *sp);
    if (sp != NULL)
        r->spans = sp;
    pb_span **pp = grow(pb, r->span_ptrs, n * sizeof *pp);
    if (pp != NULL)
        r->span_ptrs = pp;
    int32_t *off = grow(pb, r->off, n * sizeof *off);
    if (off != NULL)
        r->off = off;
    uint32_t *len = grow(pb, r->len, n * sizeof *len);
    if (len != NULL)
        r->len = len;
    int64_t *d = grow(pb, r->deltas, 3 * n * sizeof *d);
    if (d != NULL)
        r->deltas = d;
    if (sp == NULL || pp == NULL || off == NULL || len == NULL || d == NULL)
        return -1;
    r->cap = n;
    return 0;
}

/* The native half of the current Histogram message. */
static int fill_native(lm_pb *pb, const lm_native_hist *nh)
{
    pb_histogram *h = &pb->hist;
    h->has_schema = 1;
    h->schema = nh->schema;
    h->has_zero_threshold = 1;
    h->zero_threshold = nh->zero_threshold;
    h->has_zero_count = 1;
    h->zero_count = nh->zero;
    for (int sign = 0; sign < 2; sign++) {
        const lm_native_row *nr = &nh->row[sign];
        pb_row *r = &pb->rows[sign];
        if (row_fit(pb, r, nr->n) != 0)
            return -1;
        size_t nspans = 0;
        size_t nd = lm__native_spans(nr, r->off, r->len, &nspans, r->deltas);
        for (size_t i = 0; i < nspans; i++) {
            pb_span sp = IO__PROMETHEUS__CLIENT__BUCKET_SPAN__INIT;
            sp.has_offset = sp.has_length = 1;
            sp.offset = r->off[i];
            sp.length = r->len[i];
            r->spans[i] = sp;
            r->span_ptrs[i] = &r->spans[i];
        }
        if (sign == 0) {
            h->n_positive_span = nspans;
            h->positive_span = nspans ? r->span_ptrs : NULL;
            h->n_positive_delta = nd;
            h->positive_delta = nd ? r->deltas : NULL;
        } else {
            h->n_negative_span = nspans;
            h->negative_span = nspans ? r->span_ptrs : NULL;
            h->n_negative_delta = nd;
            h->negative_delta = nd ? r->deltas : NULL;
        }
    }
    /* metrics.proto: without any span, zero threshold or zero count a
     * native histogram would look classic; a no-op span says it is not. */
    if (nh->zero_threshold == 0 && nh->zero == 0 && h->n_positive_span == 0 &&
        h->n_negative_span == 0) {
        pb_span sp = IO__PROMETHEUS__CLIENT__BUCKET_SPAN__INIT;
        sp.has_offset = sp.has_length = 1;
        pb->noop = sp;
        pb->noop_ptr = &pb->noop;
        h->n_positive_span = 1;
        h->positive_span = &pb->noop_ptr;
    }
    return 0;
}

/* Histogram series s: classic buckets read first (acquire), then the
 * native ones, so the native total, the exposed count, is at least every
 * classic cumulative count (native.h). */
static int fill_histogram(lm_pb *pb, const lm_family *f, const lm_series *s, const lm_hproj *p,
                          lm_native_view v)
{
    pb_histogram hm = IO__PROMETHEUS__CLIENT__HISTOGRAM__INIT;
    pb->hist = hm;
    pb_histogram *h = &pb->hist;
    uint64_t count;
    int64_t hi;
    uint64_t lo;
    const lm_hcells *hc = lm__histogram_read_proj(s, p, pb->classic, &count, &hi, &lo);

    size_t uj = 0, nex = 0, nb = 0;
    uint64_t cum = 0;
    lm_exemplar_copy c;
    for (size_t k = 0; k <= p->n; k++) {
        cum += pb->classic[k];
        pb_exemplar *x = NULL;
        if (lm__exemplar_bucket(hc, p, k, &uj, &c)) {
            if (exemplar(pb, nb, &c, f->unit_scale, &x) != 0)
                return -1;
            pb->ex_ptrs[nex++] = x;
        }
        if (k == p->n && x == NULL)
            break; /* +Inf is implicit (sample_count) unless it has an exemplar */
        pb_bucket b = IO__PROMETHEUS__CLIENT__BUCKET__INIT;
        b.has_cumulative_count = b.has_upper_bound = 1;
        b.cumulative_count = cum;
        b.upper_bound = k < p->n ? p->bounds[k] : INFINITY;
        b.exemplar = x;
        pb->buckets[nb] = b;
        pb->bucket_ptrs[nb] = &pb->buckets[nb];
        nb++;
    }
    h->n_bucket = nb;
    h->bucket = nb ? pb->bucket_ptrs : NULL;
    h->has_sample_sum = 1;
    h->sample_sum = scaled(pb, hi, lo, f->unit_scale);
    h->has_sample_count = 1;
    h->sample_count = count;
    if (s->nat != NULL && v.on) {
        lm_native_hist nh;
        lm__native_read(s, v, &pb->ns, &nh);
        if (fill_native(pb, &nh) != 0)
            return -1;
        h->sample_count = nh.count;
        h->n_exemplars = nex;
        h->exemplars = nex ? pb->ex_ptrs : NULL;
    }
    if (nb > p->n) /* the explicit +Inf bucket counts everything */
        pb->buckets[p->n].cumulative_count = h->sample_count;
    pb->metric.histogram = h;
    return 0;
}

int lm__pb_family(lm_pb *pb, const lm_family *f, size_t nseries, const lm_hproj *proj,
                  lm_pbout out)
{
    if (pack_head(f->name.ptr, lm__family_help(f)->ptr, f->type, out) != 0)
        return -1;
    lm_native_view v = {0};
    if (f->type == LM_HISTOGRAM && f->native != NULL) {
        v = lm__native_view_unpack(
            atomic_load_explicit(&((lm_family *)f)->native_view, memory_order_acquire));
        if (v.on && lm__native_scratch_fit(&pb->ns, f->native, pb->alloc, pb->ctx) != 0)
            return -1;
    }
    for (size_t i = 0;; i++) {
        const lm_series *s;
        if (i < nseries)
            s = f->series[i];
        else if (i > nseries ||
                 (s = atomic_load_explicit(&((lm_family *)f)->overflow, memory_order_acquire)) ==
                     NULL)
            break;
        start_metric(pb, f->nlabels);
        for (size_t j = 0; j < f->nlabels; j++) {
            pb->labels[j].name = f->label_names[j].ptr;
            pb->labels[j].value = s->values[j].ptr;
        }
        switch (f->type) {
        case LM_COUNTER: {
            pb_counter c = IO__PROMETHEUS__CLIENT__COUNTER__INIT;
            pb->counter = c;
            pb->counter.has_value = 1;
            pb->counter.value = (double)lm__cell_total(f->reg, s->slot);
            lm_exemplar_home h = {&((lm_series *)s)->exemplars, 1};
            lm_exemplar_copy ec;
            if (atomic_load_explicit(h.slots, memory_order_relaxed) != NULL &&
                lm__exemplar_load(h, 0, &ec) &&
                exemplar(pb, 0, &ec, 0, &pb->counter.exemplar) != 0)
                return -1;
            pb->metric.counter = &pb->counter;
            break;
        }
        case LM_GAUGE: {
            pb_gauge g = IO__PROMETHEUS__CLIENT__GAUGE__INIT;
            pb->gauge = g;
            pb->gauge.has_value = 1;
            pb->gauge.value = (double)atomic_load_explicit(&((lm_series *)s)->gauge,
                                                           memory_order_relaxed);
            pb->metric.gauge = &pb->gauge;
            break;
        }
        case LM_HISTOGRAM:
            if (fill_histogram(pb, f, s, proj, v) != 0)
                return -1;
            break;
        }
        if (pack_metric(pb, out) != 0)
            return -1;
    }
    return 0;
}

int lm__pb_single(lm_pb *pb, const char *name, lm_type type, const char *help, double value,
                  lm_pbout out)
{
    if (pack_head(name, help, type, out) != 0)
        return -1;
    start_metric(pb, 0);
    if (type == LM_COUNTER) {
        pb_counter c = IO__PROMETHEUS__CLIENT__COUNTER__INIT;
        pb->counter = c;
        pb->counter.has_value = 1;
        pb->counter.value = value;
        pb->metric.counter = &pb->counter;
    } else {
        pb_gauge g = IO__PROMETHEUS__CLIENT__GAUGE__INIT;
        pb->gauge = g;
        pb->gauge.has_value = 1;
        pb->gauge.value = value;
        pb->metric.gauge = &pb->gauge;
    }
    return pack_metric(pb, out);
}

int lm__pb_folded(lm_pb *pb, const char *name, const char *help, lm_registry *reg,
                  const unsigned char *famstate, unsigned char exposed, size_t nfam,
                  lm_pbout out)
{
    if (pack_head(name, help, LM_COUNTER, out) != 0)
        return -1;
    for (size_t i = 0; i < nfam; i++) {
        if (famstate[i] != exposed)
            continue;
        lm_family *f = reg->families[i];
        start_metric(pb, 1);
        pb->labels[0].name = "family";
        pb->labels[0].value = f->name.ptr;
        pb_counter c = IO__PROMETHEUS__CLIENT__COUNTER__INIT;
        pb->counter = c;
        pb->counter.has_value = 1;
        pb->counter.value = (double)atomic_load_explicit(&f->folded, memory_order_relaxed);
        pb->metric.counter = &pb->counter;
        if (pack_metric(pb, out) != 0)
            return -1;
    }
    return 0;
}
