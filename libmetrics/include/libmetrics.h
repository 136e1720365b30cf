/*
 * libmetrics: a C11 metrics core for servers.
 *
 * Design in one paragraph: a registry owns metric families; a family owns
 * series; a series is resolved from its label values ONCE (configure time)
 * and then updated through its handle with no hashing, formatting, locking or
 * allocation. Every OS thread that records gets its own preallocated shard of
 * cells (single writer, plain load+store, no lock prefix); a scrape sums the
 * shards. Threads beyond `max_shards` share one shard updated with atomic
 * read-modify-write, so no increment is ever lost. Exposition is streamed
 * through a resumable cursor into caller-supplied buffers; the body is never
 * built in memory.
 *
 * Every public symbol starts with `lm_` (types, functions) or `LM_` (macros,
 * enum constants). Nothing here aborts the host process: functions that can
 * fail return NULL or an lm_status and fill an lm_error the caller owns.
 *
 * Threading: all functions are thread-safe unless stated otherwise, except
 * lm_registry_free(), which must not race with any other call on the same
 * registry.
 */
#ifndef LIBMETRICS_H
#define LIBMETRICS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LM_API __attribute__((visibility("default")))
#else
#define LM_API
#endif

#define LM_VERSION_MAJOR 1
#define LM_VERSION_MINOR 2
#define LM_VERSION_PATCH 0
#define LM_VERSION_STRING "1.2.0"

/* ---------------------------------------------------------------- errors */

typedef enum lm_status {
    LM_OK = 0,
    LM_ERR_INVALID = 1, /* bad argument: name, label count, bucket list, ... */
    LM_ERR_NOMEM = 2,   /* allocation failed */
    LM_ERR_EXISTS = 3,  /* same name already registered with another shape */
    LM_ERR_LIMIT = 4,   /* a configured capacity is exhausted */
    LM_ERR_IO = 5       /* the writer callback reported failure */
} lm_status;

/* Filled by any call that fails; `message` is a NUL-terminated sentence
 * naming the offending value, e.g. `metric name "9x" must match
 * [a-zA-Z_:][a-zA-Z0-9_:]*`. Pass NULL if you do not want it. */
typedef struct lm_error {
    lm_status code;
    char message[256];
} lm_error;

LM_API const char *lm_status_string(lm_status code);
LM_API const char *lm_version(void);

/* A byte string that need not be NUL-terminated nor valid UTF-8. Label
 * values and route names arrive this way because they may come from
 * requests. Invalid UTF-8 is replaced by U+FFFD, NUL and other C0 control
 * bytes except '\n' and '\t' by U+FFFD as well; values longer than the
 * registry's max_label_value_len are cut on a character boundary. The
 * result is what the exposition shows (escaped per format). */
typedef struct lm_str {
    const char *ptr;
    size_t len;
} lm_str;

/* -------------------------------------------------------------- registry */

typedef struct lm_registry lm_registry;

typedef struct lm_registry_options {
    size_t max_families;        /* 0: 256 */
    size_t slot_capacity;       /* 64-bit cells per shard, 0: 1<<21. Reserved
                                   virtual memory; pages are touched lazily. */
    unsigned max_shards;        /* exclusive per-thread shards, 0: 64 */
    size_t max_label_value_len; /* bytes after sanitising, 0: 256 */
    size_t native_capacity;     /* 64-bit cells per shard for native histogram
                                   buckets (lm_native_options), 0: 1<<22.
                                   Reserved address space like slot_capacity. */
} lm_registry_options;

/* opts may be NULL for all defaults. */
LM_API lm_registry *lm_registry_new(const lm_registry_options *opts, lm_error *err);
LM_API void lm_registry_free(lm_registry *reg);

/* ---------------------------------------------------------------- family */

typedef struct lm_family lm_family;
typedef struct lm_series lm_series;

typedef enum lm_type {
    LM_COUNTER = 1,  /* monotonic uint64; name must end in "_total" */
    LM_GAUGE = 2,    /* int64, one shared atomic cell per series */
    LM_HISTOGRAM = 3 /* int64 observations in recorded units, see unit_scale */
} lm_type;

typedef struct lm_family_options {
    lm_type type;
    const char *name;               /* [a-zA-Z_:][a-zA-Z0-9_:]* */
    const char *help;               /* any text; sanitised like lm_str */
    const char *const *label_names; /* [a-zA-Z_][a-zA-Z0-9_]*, no "__" prefix,
                                       no duplicates, not "le" for histograms */
    size_t nlabels;                 /* at most 16 */
    size_t max_series;              /* cardinality cap, 0: 2000 */
    /* Histograms only. bounds: finite, strictly increasing upper bounds in
     * exposed units (e.g. seconds), at most 64; NULL/0 selects
     * lm_default_latency_bounds. unit_scale: recorded units per exposed
     * unit, e.g. 1e9 when observations are nanoseconds and the exposition is
     * seconds; 0 means 1. Sums are kept as exact integers of recorded units
     * and divided only when rendered. */
    const double *bounds;
    size_t nbounds;
    double unit_scale;
    /* Histograms only: also keep Prometheus native buckets (see
     * lm_native_options below); NULL: classic buckets only. */
    const struct lm_native_options *native;
} lm_family_options;

/* ------------------------------------------------- native histograms */
/* A histogram family may keep, beside its classic buckets, the buckets of a
 * Prometheus native histogram: exponential buckets whose boundaries are the
 * powers of 2^(2^-schema) (schema 3: each bucket 2^(1/8) ~ 1.09 times
 * wider than the one before, 8 per power of two), a zero bucket for
 * |value| <= zero_threshold, negative buckets for negative values, only the
 * populated buckets stored and exposed. Every observation then counts in
 * both: the text and OpenMetrics expositions show the classic buckets
 * exactly as without native ones, LM_FORMAT_PROTOBUF shows both in one
 * Histogram message (what Prometheus negotiates for native histograms).
 *
 * The bucket of an observation v (recorded units, an int64) is the one
 * prometheus/client_golang computes for the float64 x = (double)v /
 * unit_scale (one IEEE conversion, one IEEE division, round to nearest):
 * the same math.Frexp decomposition, the same bounds tables (copied into
 * native_bounds.c) and the same search, so both agree bit for bit. An int64
 * is never NaN or infinite; unit_scale is limited so that x is always a
 * finite normal double (or zero). Counts are exact for every int64: the
 * buckets live in fixed-size chunks carved lazily from the registry's
 * native arena (native_capacity cells per shard, shared offsets like series
 * slots); should the arena run out, a series counts what no chunk can take
 * at schema -4 and is exposed at schema -4 from then on (exact, coarse).
 *
 * Bucket limit (max_buckets): client_golang halves the resolution (schema -
 * 1) whenever an observation leaves more than max_buckets populated
 * buckets, one step per observation, so its schema depends on the order of
 * the observations. libmetrics records at the configured schema and picks
 * the exposed schema when it renders: the largest sigma <= schema whose
 * populated bucket count (positive and negative, not the zero bucket) is
 * <= max_buckets, or -4 if none is. Relation to client_golang (zero
 * threshold fixed, no reset or zero-bucket widening configured there), for
 * the same observations S in any order:
 *   Let B_s(S) be S's populated buckets at schema s. Halving maps bucket i
 *   to ceil(i/2), so B_{s-1}(S) is the image of B_s(S): |B_{s-1}(S)| <=
 *   |B_s(S)|, and "fits" (|B_s(S)| <= max_buckets) holds for every schema
 *   below one that fits. client_golang's state after any prefix P of S is
 *   exactly P's histogram at its current schema c (a halving turns B_c(P)
 *   into B_{c-1}(P); later observations land at c-1). It halves c only when
 *   |B_c(P)| > max_buckets, and B_c(P) is a subset of B_c(S), so only from a
 *   schema that does not fit S; hence its final schema c_f >= sigma.
 *   (a) If client_golang ends with at most max_buckets buckets, c_f fits,
 *       so c_f <= sigma, so c_f == sigma: both expose S at sigma, identical
 *       spans, deltas, zero count and count.
 *   (b) Otherwise (sparse streams: a halving may not reduce the count, and
 *       each observation halves at most once) c_f does not fit. If some
 *       schema fits, sigma does and c_f > sigma: libmetrics exposes
 *       client_golang's histogram halved further, down to sigma, within
 *       the limit. If none fits (not even -4), sigma = -4 = c_f (neither
 *       goes below -4): both expose S at -4, identical, over the limit.
 * The differential test (caddymodule/native_diff_test.go) asserts exactly
 * this split on random streams. Both keep the zero count and the total
 * count exactly; the sum here is an exact integer of recorded units
 * (client_golang's a float64 running sum).
 *
 * The recording schema and zero threshold are fixed when the family is
 * created; lm_family_replace may change what is exposed (max_buckets, a
 * schema at or below the recording one, native buckets shown or not: NULL
 * hides them, recording goes on) but refuses a finer schema, another zero
 * threshold or native buckets for a family created without them
 * (LM_ERR_EXISTS: the past observations cannot be split finer). */
#define LM_NATIVE_SCHEMA_MIN (-4)
#define LM_NATIVE_SCHEMA_MAX 8

typedef struct lm_native_options {
    int schema;            /* LM_NATIVE_SCHEMA_MIN..LM_NATIVE_SCHEMA_MAX */
    uint32_t max_buckets;  /* populated buckets exposed at most; 0: no limit */
    double zero_threshold; /* exposed units, finite: |x| <= it counts in the
                              zero bucket. 0: 2^-128 (client_golang's
                              default); < 0: exactly 0 */
} lm_native_options;

/* Web latency buckets in seconds: 1ms .. 10s, 14 bounds. */
LM_API const double *lm_default_latency_bounds(size_t *nbounds);

/* Registers a family, or returns the existing one if a family of that name
 * has exactly the same type, help, labels, cap, bounds and native options
 * (so a host that reloads its configuration gets its counters back). Another shape under the
 * same name fails with LM_ERR_EXISTS. */
LM_API lm_family *lm_family_register(lm_registry *reg, const lm_family_options *opts,
                                     lm_error *err);

/* Like lm_family_register, but for reloads that change a family's shape.
 *
 * Same type and label names, other help text or histogram bounds: the SAME
 * family is changed in place and returned. Its series stay the same series
 * (handles too) and keep counting, so every sample Prometheus stores for
 * them stays one continuous counter. A histogram counts into the union of
 * every bound list ever configured for its name, and exposes the list
 * configured now, each cumulative count being an exact sum of union
 * buckets; so across any sequence of bucket changes (A, B, A, B...) the
 * _count, _sum, +Inf and every bound present in several lists never lose
 * or invent an observation. Changing to bounds already in the union only
 * changes what is exposed (no cells move; O(bounds) under the registry
 * lock). A bound new to the union grows it: every series gets new cells
 * (its old ones stay and are summed), and from then on the bound counts
 * exactly; its first value counts the observations made before at or below
 * the union bound under it (a lower estimate, which only this first value
 * carries). A record that read the old cells just before a growth (a
 * window of a few instructions) counts at the old bounds. At most 128
 * distinct bounds per name are kept: a list that would exceed that fails
 * with LM_ERR_LIMIT and nothing changes (restart the process to start
 * afresh). Growth needs (series + 1) x (union + 3) cells of slot_capacity
 * (LM_ERR_LIMIT otherwise).
 *
 * Same type and label names but another max_series or unit_scale:
 * LM_ERR_EXISTS (the same series cannot be re-scaled in place).
 *
 * Another type or other label names: the live family is retired (no longer
 * exposed, memory kept until the registry is freed, handles into it stay
 * valid and harmless) and a new family takes its place, or the retired one
 * of that type and labels comes back (with the help and bounds asked for),
 * its counts where they stopped: while retired, nothing exposed its series.
 */
LM_API lm_family *lm_family_replace(lm_registry *reg, const lm_family_options *opts,
                                    lm_error *err);

/* Resolves a series from nlabels label values (slow path: hash + lock on
 * first sight, hash lookup afterwards). When the family already holds
 * max_series series, a new label set folds into the family's single
 * overflow series, whose every label value is "_overflow", and the family's
 * folded counter (exposed as libmetrics_series_folded_total{family="..."}) grows
 * by one per folded lookup. Returns NULL only for bad arguments, memory or
 * slot exhaustion. */
LM_API lm_series *lm_series_get(lm_family *fam, const lm_str *label_values, lm_error *err);

/* ------------------------------------------------------------- recording */
/* All recording calls are wait-free and never allocate after the calling
 * thread's first record on this registry (which claims its shard). */

LM_API void lm_counter_add(lm_series *s, uint64_t v);
LM_API void lm_gauge_add(lm_series *s, int64_t delta);
LM_API void lm_gauge_set(lm_series *s, int64_t v);
/* The gauge's cell, for hosts that update it with their own atomic RMW
 * (e.g. Go's sync/atomic) to avoid a foreign-function call. 8-byte aligned,
 * alone on its cache line, valid until lm_registry_free. */
LM_API int64_t *lm_gauge_cell(lm_series *s);
/* v in recorded units (see unit_scale). */
LM_API void lm_histogram_observe(lm_series *s, int64_t v);

/* Reads back a series' current total (sum over shards): counter value,
 * gauge value, histogram count. For tests and reports. */
LM_API uint64_t lm_series_count(const lm_series *s);

/* ---------------------------------------------- HTTP request fast path */
/* One call per request records requests_total, the latency histogram and
 * the response bytes counter for (route, method, status). */

typedef struct lm_http lm_http;
typedef struct lm_route lm_route;

/* Method indices; the host maps the request method to one of these. */
typedef enum lm_method {
    LM_METHOD_GET = 0,
    LM_METHOD_HEAD,
    LM_METHOD_POST,
    LM_METHOD_PUT,
    LM_METHOD_DELETE,
    LM_METHOD_CONNECT,
    LM_METHOD_OPTIONS,
    LM_METHOD_TRACE,
    LM_METHOD_PATCH,
    LM_METHOD_OTHER,
    LM_METHOD_COUNT
} lm_method;

/* Maps a method token to its index (exact, case-sensitive as HTTP is);
 * anything else is LM_METHOD_OTHER. */
LM_API lm_method lm_method_parse(lm_str method);

typedef struct lm_http_options {
    const char *prefix;     /* prepended to every name, e.g. "myapp_"; NULL: "" */
    const double *bounds;   /* latency buckets in seconds; NULL: default */
    size_t nbounds;
    size_t max_routes;      /* 0: 1000 */
    size_t max_series;      /* cap per family, 0: 10000 */
    /* The duration histogram's native buckets (lm_native_options); NULL:
     * classic only. Changed like the bounds on a later call. */
    const lm_native_options *native;
} lm_http_options;

/* Families created, named <prefix> + :
 *   http_requests_total{method,endpoint,status}             counter
 *   http_request_duration_seconds{method,endpoint,status}   histogram
 *   http_response_size_bytes_total{method,endpoint,status}  counter
 *   http_requests_in_progress{endpoint}                     gauge
 * Calling again with the same prefix returns the same lm_http; if the
 * bounds differ, the duration histogram exposes them from now on and keeps
 * counting every request, as lm_family_replace describes (routes keep their
 * series; nothing is moved or scanned when the bounds were seen before). */
LM_API lm_http *lm_http_register(lm_registry *reg, const lm_http_options *opts, lm_error *err);

/* A route handle, resolved once by name (the `endpoint` label value). The
 * same name returns the same handle. */
LM_API lm_route *lm_http_route(lm_http *http, lm_str name, lm_error *err);

/* The route's in-flight gauge cell (see lm_gauge_cell): add 1 when a request
 * enters the route and subtract 1 when it leaves, atomically. */
LM_API int64_t *lm_route_inflight_cell(lm_route *route);

/* Records one finished request: requests_total += 1, the latency histogram
 * observes duration_ns (negative counts as 0), response bytes += bytes.
 * Status codes outside 100..599 are recorded under status="other", so the
 * label set stays bounded whatever the host passes. Wait-free; the first
 * record of a given (method, status) on a route takes a locked slow path
 * once. Does not touch the in-flight gauge. Each of the ncounters counter
 * series (business counters whose conditions the host found true; may be
 * NULL when ncounters is 0) is incremented by one in the same call, so a
 * request costs one foreign-function crossing however many counters it
 * feeds. */
LM_API void lm_route_record(lm_route *route, lm_method method, int status, int64_t duration_ns,
                            uint64_t response_bytes, lm_series *const *counters,
                            size_t ncounters);

/* ------------------------------------- extended request record, exemplars */

/* OpenMetrics limit on an exemplar's label set: label names plus values, in
 * UTF-8 characters. */
#define LM_EXEMPLAR_MAX_CHARS 128
/* Minimum spacing, in exemplar time, of two exemplars in one slot. */
#define LM_EXEMPLAR_MIN_INTERVAL_NS 100000

/* The request an observation came from, attached as an OpenMetrics exemplar
 * (`# {request_id="..."} value timestamp`) to the bucket the observation fell
 * in, or to a counter's sample. Exemplars appear only in LM_FORMAT_OPENMETRICS
 * output, never in text 0.0.4. Each histogram bucket and each counter keeps
 * the latest one only; a writer that finds the slot busy skips it, and so
 * does one whose unix_ns is less than LM_EXEMPLAR_MIN_INTERVAL_NS after the
 * stored exemplar's (or before it, unless by more than a second: a clock
 * stepped back), so a hot bucket is rewritten at most 10,000 times a second
 * and cores do not fight over its cache line.
 *
 * The label is dropped, never altered: an exemplar whose label name is not a
 * valid label name, or whose value is empty, not valid UTF-8, contains a
 * control character (U+0000..U+001F, U+007F), or makes the label set longer
 * than LM_EXEMPLAR_MAX_CHARS characters is not recorded, so an exemplar
 * always carries exactly the ID the request had ('\\' and '"' are escaped
 * when rendered). */
typedef struct lm_exemplar {
    const char *label_name; /* NUL-terminated, e.g. "request_id" */
    lm_str label_value;     /* e.g. the request ID */
    int64_t unix_ns;        /* wall-clock time of the observation; <= 0: the
                               library reads CLOCK_REALTIME */
} lm_exemplar;

/* lm_observation.flags: attach the record's exemplar to this observation. */
#define LM_OBS_EXEMPLAR 0x1u

/* One extra observation fed by a request: a histogram series observes value
 * (recorded units), a counter series grows by value (negative: ignored).
 * Other series types and NULL are ignored. */
typedef struct lm_observation {
    lm_series *series;
    int64_t value;
    unsigned flags;
} lm_observation;

typedef struct lm_request_record {
    lm_method method;
    int status;
    int64_t duration_ns;     /* negative counts as 0 */
    uint64_t response_bytes;
    lm_series *const *counters; /* each += 1, as in lm_route_record */
    size_t ncounters;
    const lm_observation *observations;
    size_t nobservations;
    /* NULL: no exemplar and no cost. Otherwise attached to the request
     * counter (value 1) and to the latency bucket the request fell in
     * (value: its duration in seconds), and to observations flagged
     * LM_OBS_EXEMPLAR. */
    const lm_exemplar *exemplar;
} lm_request_record;

/* lm_route_record generalised: everything one request feeds, in one call
 * (one foreign-function crossing for the host). Same guarantees: wait-free,
 * per-thread shard cells, no allocation except the first record of a
 * (method, status) on a route and the first exemplar of a series (which
 * allocates that series' exemplar slots once; if that fails the exemplar is
 * skipped). lm_route_record(r, m, s, d, b, c, n) is lm_route_record_ex with
 * no observations and no exemplar. */
LM_API void lm_route_record_ex(lm_route *route, const lm_request_record *rec);

/* ---------------------------------------------------------- exposition */

typedef enum lm_format {
    LM_FORMAT_TEXT = 0,        /* Prometheus text 0.0.4 */
    LM_FORMAT_OPENMETRICS = 1, /* OpenMetrics 1.0.0, ends with "# EOF" */
    /* Prometheus protobuf: io.prometheus.client.MetricFamily messages
     * (client_model's metrics.proto), each preceded by its length as a
     * varint. Histograms carry their classic and native buckets together;
     * exemplars ride on counters and classic buckets, and on native
     * histograms as Histogram.exemplars. */
    LM_FORMAT_PROTOBUF = 2
} lm_format;

/* Content-Type header values for each format. */
LM_API const char *lm_format_content_type(lm_format fmt);

#define LM_EXPO_PROCESS 0x1u /* include process_* metrics read from /proc */

typedef struct lm_expo lm_expo;

/* A resumable cursor over one consistent pass of the registry: families in
 * registration order, series in creation order. Each histogram series is
 * read once, so its +Inf bucket always equals its _count (protobuf: its
 * native buckets sum to its sample_count, and every classic cumulative
 * count is at most that). Text and OpenMetrics are rendered a line at a
 * time; LM_FORMAT_PROTOBUF a family at a time, so the cursor holds the
 * largest family's encoded message. Returns NULL
 * (err filled) when the cursor cannot start: out of memory, or
 * LM_EXPO_PROCESS was asked and /proc/self could not be read (LM_ERR_IO; a
 * system without /proc at all simply has no process_* metrics). */
LM_API lm_expo *lm_expo_begin(lm_registry *reg, lm_format fmt, unsigned flags, lm_error *err);
/* Copies up to cap bytes of exposition into buf; returns the number copied.
 * cap must be >= 1. The bytes returned are always whole lines of a valid
 * exposition so far (LM_FORMAT_PROTOBUF: whole length-prefixed messages;
 * a unit larger than cap continues in the next read).
 *
 * 0 means the exposition is complete OR that it failed: ask
 * lm_expo_status. A failure (out of memory mid-stream, or a line longer
 * than the cursor's buffer, which would be a bug) cuts the stream at a line
 * boundary and every later read returns 0; the bytes already returned are
 * then a truncated body that must not reach a scraper as a good one (abort
 * the response instead, so the scrape fails visibly). */
LM_API size_t lm_expo_read(lm_expo *e, char *buf, size_t cap);
/* LM_OK while the cursor has not failed, so LM_OK after lm_expo_read
 * returned 0 means the exposition is complete. Otherwise the failure's
 * code (LM_ERR_NOMEM, LM_ERR_LIMIT) with err filled, naming how many bytes
 * were returned before the cut. */
LM_API lm_status lm_expo_status(const lm_expo *e, lm_error *err);
LM_API void lm_expo_end(lm_expo *e);

/* Writer callback: returns 0 on success, non-zero to abort. */
typedef int (*lm_write_fn)(void *ctx, const char *buf, size_t len);

/* Streams the whole exposition through fn in chunks of at most 16 KiB.
 * Returns LM_OK only if all of it was written; otherwise what failed:
 * starting (see lm_expo_begin), the cursor (see lm_expo_status), or fn
 * (LM_ERR_IO). */
LM_API lm_status lm_expo_write(lm_registry *reg, lm_format fmt, unsigned flags, lm_write_fn fn,
                               void *ctx, lm_error *err);

/* --------------------------------------------------------- status report */
/* A page a person can read during an incident, without Grafana: per route
 * requests, average rate since the registry was created, 5xx and 4xx share,
 * p50/p95/p99 latency estimated from the histogram buckets exactly as
 * Prometheus's histogram_quantile() does, requests in flight and a small
 * latency distribution bar; routes worst first (highest 5xx share, then
 * highest p99); then business counters and process resources. Everything
 * that came from a request or a configuration (route names, label values,
 * help, the title) is escaped, so it can never become markup. */

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

#endif /* LIBMETRICS_H */
