/* libFuzzer target for the exposition: the input is cut into registry
 * limits, families (type, name, help, label names, bucket bounds, unit
 * scale, native histogram options), series (raw label values: any bytes,
 * NUL and invalid UTF-8 included), recordings and an HTTP block; whatever
 * registers (errors are fine, crashes are not) is rendered in all three
 * formats with lm_expo_write. Text and OpenMetrics must pass the shared
 * structure checker (libmetrics/tests/expo_check.c); protobuf must decode
 * (protobuf-c) into the same families in the same order, every native
 * histogram's zero count plus buckets equal to its count, no classic
 * cumulative count above it. Without process metrics, reading through
 * lm_expo_read with a small buffer must give the very same bytes. The
 * registry is freed after every input, so leak detection reports only real
 * leaks.
 *
 * Input layout (a byte reader that yields zeros once exhausted):
 *   limits: max_label_value_len, max_series
 *   nfam, then per family:
 *     ctl (type, replace?, native?), name, help, nlabels + label names,
 *     nbounds + bounds, unit scale, [native: schema, max_buckets, zero
 *     threshold], nseries + per series label values and up to 7
 *     recordings
 *   http?: prefix, [native], 2 route names, records
 *   render flags, read buffer size
 * Names are either picked from a dictionary of valid and nearly valid
 * names (so registrations succeed often enough to reach the renderer) or
 * taken raw. */
#include "expo_check.h"
#include "fuzz_input.h"
#include "libmetrics.h"
#include "lm_capture.h"
#include "pb_check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *const k_names[] = {
    "a_total", "b_total", "g", "h_seconds", "h_seconds_bucket", "h_seconds_count", "h_seconds_sum",
    "h_seconds_created", "a", "a_created", "g_total", "process_open_fds", "process_cpu_seconds",
    "process_cpu_seconds_total", "process_threads_total", "libmetrics_series_folded_total",
    "libmetrics_series_folded", "web_http_requests_total", "x:y_total", "_total", "__g", "le", ":",
    "9bad", "",
};

static const char *const k_labels[] = {"le", "route", "method", "a", "b", "__x", "_", "9", "", "family"};

/* A NUL-terminated name: dictionary entry (+ optional digit) or raw bytes. */
static void name(rd *r, char *out, size_t cap, const char *const *dict, size_t ndict)
{
    uint8_t sel = u8(r);
    if (sel < 192) {
        const char *base = dict[sel % ndict];
        uint8_t d = u8(r);
        snprintf(out, cap, "%s%s", base, d < 128 ? "" : (const char *[]){"1", "_x", "total"}[d % 3]);
        return;
    }
    size_t n = raw(r, out, cap - 1);
    out[n] = '\0';
}

static double bound(rd *r)
{
    static const double table[] = {-1e300, -10, -1, -0.0, 0, 1e-9, 0.001, 0.0025, 0.005, 0.1,
                                   0.25, 1, 2.5, 10, 1e6, 1e21, 1e300, INFINITY, NAN, 5e-324};
    uint8_t sel = u8(r);
    if (sel < 200)
        return table[sel % (sizeof table / sizeof table[0])];
    uint64_t bits = u64(r);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static double scale(rd *r)
{
    static const double table[] = {0, 1, 1e3, 1e9, 3, 1e-3, 1e38, 1e39, -1, NAN, 1024, 0.5};
    return table[u8(r) % (sizeof table / sizeof table[0])];
}

static int64_t value(rd *r)
{
    static const int64_t table[] = {0, 1, -1, 1000, 5000000, 999999999, 1000000000, INT64_MAX,
                                    INT64_MIN, 7};
    uint8_t sel = u8(r);
    return sel < 160 ? table[sel % (sizeof table / sizeof table[0])] : (int64_t)u64(r);
}

/* Native options: mostly valid, sometimes not (schema out of range, a
 * threshold that is not finite). */
static lm_native_options native(rd *r)
{
    static const uint32_t limits[] = {0, 1, 2, 3, 10, 160, 4096, UINT32_MAX};
    static const double zeros[] = {0, -1, 1e-9, 0.001, 1e300, INFINITY, NAN, -0.0};
    lm_native_options o;
    o.schema = (int)(u8(r) % 15) - 5;
    o.max_buckets = limits[u8(r) % 8];
    o.zero_threshold = zeros[u8(r) % 8];
    return o;
}

static void record(rd *r, lm_series *s, lm_type t)
{
    int nrec = u8(r) % 8;
    for (int k = 0; k < nrec; k++) {
        int64_t v = value(r);
        if (t == LM_COUNTER)
            lm_counter_add(s, (uint64_t)v);
        else if (t == LM_GAUGE)
            (k & 1) ? lm_gauge_add(s, v) : lm_gauge_set(s, v);
        else
            lm_histogram_observe(s, v);
    }
}

/* The family names of a text body's TYPE lines, in order, "\n"-joined. */
static char *type_names(const char *body, size_t len)
{
    char *out = calloc(1, len + 1);
    size_t n = 0;
    for (const char *l = body; l && l < body + len; l = memchr(l, '\n', (size_t)(body + len - l))) {
        if (*l == '\n')
            l++;
        if (l + 7 <= body + len && memcmp(l, "# TYPE ", 7) == 0) {
            const char *e = memchr(l + 7, ' ', (size_t)(body + len - l - 7));
            memcpy(out + n, l + 7, (size_t)(e - l - 7));
            n += (size_t)(e - l - 7);
            out[n++] = '\n';
        }
    }
    out[n] = '\0';
    return out;
}

/* Decodes a protobuf body: every message whole, native histograms whole;
 * returns its family names like type_names. */
static char *check_protobuf(const char *body, size_t len)
{
    pb_families d = pb_decode(body, len);
    if (!d.whole) {
        fprintf(stderr, "protobuf body does not decode after %zu families\n", d.n);
        abort();
    }
    char *out = calloc(1, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < d.n; i++) {
        const pb_family *f = d.f[i];
        if (f->name == NULL || f->n_metric == 0)
            abort();
        for (size_t k = 0; k < f->n_metric; k++) {
            const pb_histogram *h = f->metric[k]->histogram;
            if (h == NULL)
                continue;
            for (size_t b = 0; b < h->n_bucket; b++)
                if (h->bucket[b]->cumulative_count > h->sample_count)
                    abort();
            if (h->has_schema && (h->schema < -4 || h->schema > 8 ||
                                  pb_native_total(h) != h->sample_count)) {
                fprintf(stderr, "%s: native histogram not whole\n", f->name);
                abort();
            }
        }
        size_t nl = strlen(f->name);
        memcpy(out + n, f->name, nl);
        n += nl;
        out[n++] = '\n';
    }
    out[n] = '\0';
    pb_families_free(&d);
    return out;
}

static void render_and_check(lm_registry *reg, unsigned flags, size_t readcap)
{
    char *text_names = NULL;
    for (int f = 0; f < 3; f++) {
        lm_format fmt = f == 0 ? LM_FORMAT_TEXT : f == 1 ? LM_FORMAT_OPENMETRICS : LM_FORMAT_PROTOBUF;
        capture o = {0};
        lm_error err;
        if (lm_expo_write(reg, fmt, flags, capture_write, &o, &err) != LM_OK) {
            fprintf(stderr, "lm_expo_write failed: %s\n", err.message);
            abort();
        }
        if (getenv("LM_FUZZ_DUMP")) /* to see what an input builds */
            fprintf(stderr, "---- %s\n%.*s", f ? "OpenMetrics" : "text", (int)o.len,
                    o.p ? o.p : "");
        char msg[512];
        if (fmt == LM_FORMAT_TEXT) {
            text_names = type_names(o.p ? o.p : "", o.len);
        } else if (fmt == LM_FORMAT_PROTOBUF) {
            char *names = check_protobuf(o.p ? o.p : "", o.len);
            if (strcmp(names, text_names) != 0) {
                fprintf(stderr, "protobuf families\n%s\ntext families\n%s\n", names, text_names);
                abort();
            }
            free(names);
        } else if (expo_check(o.p ? o.p : "", o.len, fmt, NULL, NULL, NULL, msg, sizeof msg) != 0) {
            fprintf(stderr, "invalid %s exposition: %s\n----\n%.*s\n----\n",
                    f ? "OpenMetrics" : "text", msg, (int)(o.len > 20000 ? 20000 : o.len),
                    o.p ? o.p : "");
            abort();
        }
        if (!(flags & LM_EXPO_PROCESS)) { /* process values move between two renders */
            lm_expo *e = lm_expo_begin(reg, fmt, flags, &err);
            if (!e)
                abort();
            char *chunk = malloc(readcap);
            size_t pos = 0, n;
            while ((n = lm_expo_read(e, chunk, readcap)) > 0) {
                if (n > readcap || pos + n > o.len || memcmp(o.p + pos, chunk, n) != 0) {
                    fprintf(stderr, "lm_expo_read(cap %zu) differs at byte %zu\n", readcap, pos);
                    abort();
                }
                pos += n;
            }
            if (pos != o.len) {
                fprintf(stderr, "lm_expo_read gave %zu bytes, lm_expo_write %zu\n", pos, o.len);
                abort();
            }
            free(chunk);
            lm_expo_end(e);
        }
        capture_free(&o);
    }
    free(text_names);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd r = {data, size};
    lm_registry_options ro = {.max_families = 16,
                              .slot_capacity = 1u << 12,
                              .max_shards = 1,
                              .max_label_value_len = 1 + u8(&r) % 48,
                              .native_capacity = 1u << 12}; /* small: the fallback gets reached */
    size_t max_series = 1 + u8(&r) % 5;
    lm_registry *reg = lm_registry_new(&ro, NULL);
    if (!reg)
        return 0;

    int nfam = u8(&r) % 9;
    for (int i = 0; i < nfam; i++) {
        uint8_t ctl = u8(&r);
        lm_type type = (lm_type)(ctl % 3 + 1);
        char fname[64], help[96], lnames[4][24];
        const char *lptr[4];
        name(&r, fname, sizeof fname, k_names, sizeof k_names / sizeof k_names[0]);
        size_t hl = raw(&r, help, sizeof help - 1);
        help[hl] = '\0';
        size_t nlabels = u8(&r) % 4;
        for (size_t k = 0; k < nlabels; k++) {
            name(&r, lnames[k], sizeof lnames[k], k_labels, sizeof k_labels / sizeof k_labels[0]);
            lptr[k] = lnames[k];
        }
        double bounds[6];
        size_t nb = u8(&r) % 7;
        for (size_t k = 0; k < nb; k++)
            bounds[k] = bound(&r);
        lm_family_options o = {.type = type,
                               .name = fname,
                               .help = help,
                               .label_names = lptr,
                               .nlabels = nlabels,
                               .max_series = max_series,
                               .bounds = nb ? bounds : NULL,
                               .nbounds = nb,
                               .unit_scale = scale(&r)};
        lm_native_options no;
        if (ctl & 0x40) {
            no = native(&r);
            o.native = &no;
        }
        lm_family *f = (ctl & 0x80) ? lm_family_replace(reg, &o, NULL)
                                    : lm_family_register(reg, &o, NULL);
        int nser = u8(&r) % 7;
        for (int s = 0; s < nser; s++) {
            char vb[4][64];
            lm_str vals[4];
            for (size_t k = 0; k < nlabels; k++)
                vals[k] = (lm_str){vb[k], raw(&r, vb[k], sizeof vb[k])};
            lm_series *se = f ? lm_series_get(f, vals, NULL) : NULL;
            if (se)
                record(&r, se, type);
            else
                u8(&r);
        }
    }

    if (u8(&r) & 1) {
        char prefix[24], rn[2][48];
        name(&r, prefix, sizeof prefix, (const char *const[]){"", "web_", "a_", "9", "x:"}, 5);
        double hb[4];
        size_t nhb = u8(&r) % 5;
        for (size_t k = 0; k < nhb; k++)
            hb[k] = bound(&r);
        lm_http_options ho = {.prefix = prefix,
                              .bounds = nhb ? hb : NULL,
                              .nbounds = nhb,
                              .max_routes = 1 + u8(&r) % 3,
                              .max_series = max_series};
        lm_native_options hno;
        if (u8(&r) & 1) {
            hno = native(&r);
            ho.native = &hno;
        }
        lm_http *h = lm_http_register(reg, &ho, NULL);
        for (int k = 0; h && k < 2; k++) {
            lm_route *rt = lm_http_route(h, (lm_str){rn[k], raw(&r, rn[k], sizeof rn[k])}, NULL);
            int nrec = u8(&r) % 6;
            for (int j = 0; rt && j < nrec; j++) {
                int hi = u8(&r), lo = u8(&r);
                int status = (int)(int16_t)(uint16_t)(hi << 8 | lo);
                lm_route_record(rt, (lm_method)(u8(&r) % LM_METHOD_COUNT), status, value(&r),
                                (uint64_t)value(&r), NULL, 0);
            }
        }
    }

    unsigned flags = (u8(&r) & 1) ? LM_EXPO_PROCESS : 0;
    size_t readcap = 1 + u8(&r) % 97;
    render_and_check(reg, flags, readcap);
    lm_registry_free(reg);
    return 0;
}
