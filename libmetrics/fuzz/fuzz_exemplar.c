/* libFuzzer target for exemplars: arbitrary label names and IDs (any bytes:
 * NUL, controls, invalid and over-long UTF-8, quotes, backslashes, braces,
 * up to 700 bytes), arbitrary durations, statuses and timestamps, a
 * histogram with fuzzed bounds and unit scale fed through flagged
 * observations, all through lm_route_record_ex. Both formats are rendered
 * and must pass the shared checker (which validates exemplars: syntax,
 * 128-character limit, only on _total and _bucket, value not above le);
 * text must carry no exemplar; and an exemplar must appear on the request
 * counter exactly when this file's own, independent reading of the rules
 * says the ID is acceptable, carrying exactly the ID's bytes once the
 * escapes are undone.
 *
 * Input layout (a byte reader that yields zeros once exhausted):
 *   name selector [+ raw name], ID length (2 bytes) + ID bytes,
 *   histogram: nbounds + bounds, unit scale,
 *   nrec, per record: status (2 bytes), method, duration, observation
 *   value, flags, timestamp selector [+ 8 bytes] */
#include "expo_check.h"
#include "fuzz_input.h"
#include "libmetrics.h"
#include "lm_capture.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double bound(rd *r)
{
    static const double table[] = {-1, 0, 1e-9, 0.001, 0.0025, 0.1, 0.25, 1, 2.5, 10, 1e6, 1e21};
    uint8_t sel = u8(r);
    if (sel < 220)
        return table[sel % (sizeof table / sizeof table[0])];
    uint64_t bits = u64(r);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static int64_t value(rd *r)
{
    static const int64_t table[] = {0, 1, -1, 1000, 54000000, 999999999, 1000000000, INT64_MAX,
                                    INT64_MIN, 2500000};
    uint8_t sel = u8(r);
    return sel < 200 ? table[sel % (sizeof table / sizeof table[0])] : (int64_t)u64(r);
}

/* ------------------------------------------ the rules, read independently */

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || (n >= 2 && s[0] == '_' && s[1] == '_'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* Code points of s if it is strict UTF-8 without C0 controls or DEL, else
 * -1. Decodes each sequence to its code point and re-checks its minimal
 * length, unlike the library's table of lead bytes. */
static long chars_ok(const unsigned char *s, size_t n)
{
    long count = 0;
    for (size_t i = 0; i < n;) {
        unsigned b = s[i];
        size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n)
            return -1;
        uint32_t cp = len == 1 ? b : b & (0x7Fu >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return -1;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        uint32_t min = len == 1 ? 0 : len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp < 0x20 ||
            cp == 0x7F)
            return -1;
        i += len;
        count++;
    }
    return count;
}

/* ------------------------------------------------------------- checking */

typedef struct expect {
    const char *name;
    const char *id;
    size_t id_len;
    bool found;      /* the request counter carries our exemplar */
    int exemplars;
} expect;

/* Undoes the label escapes of the exemplar's single value. */
static size_t unescape(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            i++;
            out[o++] = s[i] == 'n' ? '\n' : s[i];
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

static void on_sample(void *ctx, const expo_sample *s)
{
    expect *e = ctx;
    if (!s->exemplar)
        return;
    e->exemplars++;
    static const char head[] = "http_requests_total";
    if (s->name_len != sizeof head - 1 || memcmp(s->name, head, sizeof head - 1) != 0)
        return;
    size_t nl = strlen(e->name);
    /* name="value" */
    if (s->exemplar_len < nl + 3 || memcmp(s->exemplar, e->name, nl) != 0 ||
        memcmp(s->exemplar + nl, "=\"", 2) != 0 || s->exemplar[s->exemplar_len - 1] != '"') {
        fprintf(stderr, "exemplar label is not %s=\"...\": %.*s\n", e->name,
                (int)s->exemplar_len, s->exemplar);
        abort();
    }
    char dec[2048];
    size_t dl = unescape(s->exemplar + nl + 2, s->exemplar_len - nl - 3, dec);
    if (dl != e->id_len || memcmp(dec, e->id, dl) != 0) {
        fprintf(stderr, "exemplar carries %zu bytes that are not the ID's %zu\n", dl, e->id_len);
        abort();
    }
    if (s->exemplar_v != 1) {
        fprintf(stderr, "request counter exemplar value %g, want 1\n", s->exemplar_v);
        abort();
    }
    e->found = true;
}

static void render_and_check(lm_registry *reg, expect *ex, bool want)
{
    for (int f = 0; f < 2; f++) {
        lm_format fmt = f ? LM_FORMAT_OPENMETRICS : LM_FORMAT_TEXT;
        capture o = {0};
        lm_error err;
        if (lm_expo_write(reg, fmt, 0, capture_write, &o, &err) != LM_OK) {
            fprintf(stderr, "lm_expo_write failed: %s\n", err.message);
            abort();
        }
        if (getenv("LM_FUZZ_DUMP"))
            fprintf(stderr, "---- %s\n%.*s", f ? "OpenMetrics" : "text", (int)o.len,
                    o.p ? o.p : "");
        char msg[512];
        ex->found = false;
        ex->exemplars = 0;
        if (expo_check(o.p ? o.p : "", o.len, fmt, on_sample, ex, NULL, msg, sizeof msg) != 0) {
            fprintf(stderr, "invalid %s exposition: %s\n----\n%.*s\n----\n",
                    f ? "OpenMetrics" : "text", msg, (int)(o.len > 20000 ? 20000 : o.len),
                    o.p ? o.p : "");
            abort();
        }
        if (!f && ex->exemplars != 0) {
            fprintf(stderr, "text 0.0.4 body carries %d exemplars\n", ex->exemplars);
            abort();
        }
        if (f && ex->found != want) {
            fprintf(stderr, "ID (%zu bytes) %s, but the exemplar is %s\n", ex->id_len,
                    want ? "is acceptable" : "must be dropped", ex->found ? "there" : "missing");
            abort();
        }
        capture_free(&o);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd r = {data, size};
    static const char *const names[] = {"request_id", "trace_id", "a", "_", "__x", "9x",
                                        "request-id", "", "x\xc3\xa9"};
    char name[160];
    uint8_t sel = u8(&r);
    if (sel < 224) {
        snprintf(name, sizeof name, "%s", names[sel % (sizeof names / sizeof names[0])]);
    } else {
        size_t nl = raw_n(&r, name, u8(&r) % 140);
        name[nl] = '\0';
    }
    char id[700];
    size_t idl = (size_t)(u8(&r) << 8 | u8(&r)) % sizeof id;
    idl = raw_n(&r, id, idl);

    lm_registry *reg = lm_registry_new(
        &(lm_registry_options){.max_families = 16, .slot_capacity = 1u << 12, .max_shards = 1},
        NULL);
    if (!reg)
        return 0;
    lm_http *http = lm_http_register(reg, NULL, NULL);
    lm_route *route = http ? lm_http_route(http, (lm_str){"api", 3}, NULL) : NULL;
    double bounds[6];
    size_t nb = u8(&r) % 7;
    for (size_t k = 0; k < nb; k++)
        bounds[k] = bound(&r);
    static const double scales[] = {0, 1, 1e3, 1e9, 3, 1e-3, 0.5};
    lm_family *hf = lm_family_register(
        reg,
        &(lm_family_options){.type = LM_HISTOGRAM,
                             .name = "obs_seconds",
                             .help = "h",
                             .bounds = nb ? bounds : NULL,
                             .nbounds = nb,
                             .unit_scale = scales[u8(&r) % (sizeof scales / sizeof scales[0])]},
        NULL);
    lm_family *cf = lm_family_register(
        reg, &(lm_family_options){.type = LM_COUNTER, .name = "obs_total", .help = "c"}, NULL);
    lm_series *hs = hf ? lm_series_get(hf, NULL, NULL) : NULL;
    lm_series *cs = cf ? lm_series_get(cf, NULL, NULL) : NULL;
    if (!route || !cs) {
        lm_registry_free(reg);
        return 0;
    }

    lm_exemplar ex = {.label_name = name, .label_value = {id, idl}};
    long ch = chars_ok((const unsigned char *)id, idl);
    bool acceptable = name_ok(name) && idl > 0 && ch >= 0 &&
                      (size_t)ch + strlen(name) <= LM_EXEMPLAR_MAX_CHARS;
    int nrec = 1 + u8(&r) % 6;
    bool counted_200 = false;
    for (int j = 0; j < nrec; j++) {
        int hi = u8(&r), lo = u8(&r);
        int status = j == 0 ? 200 : (int)(int16_t)(uint16_t)(hi << 8 | lo);
        lm_method m = j == 0 ? LM_METHOD_GET : (lm_method)(u8(&r) % LM_METHOD_COUNT);
        uint8_t flags = u8(&r);
        uint8_t tsel = u8(&r);
        ex.unix_ns = tsel < 128 ? 1700000000123000000LL : tsel < 192 ? 0 : (int64_t)u64(&r);
        lm_observation obs[2] = {{hs, value(&r), flags & 1 ? LM_OBS_EXEMPLAR : 0},
                                 {cs, value(&r), flags & 2 ? LM_OBS_EXEMPLAR : 0}};
        lm_request_record rec = {.method = m,
                                 .status = status,
                                 .duration_ns = value(&r),
                                 .response_bytes = 1,
                                 .observations = obs,
                                 .nobservations = 2,
                                 .exemplar = (flags & 4) && j > 0 ? NULL : &ex};
        lm_route_record_ex(route, &rec);
        counted_200 |= m == LM_METHOD_GET && status == 200;
    }
    expect e = {.name = name, .id = id, .id_len = idl};
    render_and_check(reg, &e, acceptable && counted_200);
    lm_registry_free(reg);
    return 0;
}
