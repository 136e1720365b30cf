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
 * The status report (a Markdown or HTML page for people) is a separate
 * library with its own header, libmetrics_report.h, so recording and
 * exposition need nothing beyond libc, libpthread and libm.
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

#include <stdbool.h>
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

/* 2.1.0: lm_registry_options_check and lm_http_options_check.
 * 2.0.0: lm_request_record gained request_bytes (its layout changed, so
 * the ABI of lm_route_record_ex did; soname libmetrics.so.2). New:
 * lm_route_record_sized and <prefix>http_request_size_bytes_total.
 * Native histograms (lm_native_options; lm_family_options.native,
 * lm_http_options.native, lm_registry_options.native_capacity appended)
 * and LM_FORMAT_PROTOBUF, in the same soname.
 * 1.1.0 added lm_expo_status. */
#define LM_VERSION_MAJOR 2
#define LM_VERSION_MINOR 1
#define LM_VERSION_PATCH 0
#define LM_VERSION_STRING "2.1.0"

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

/* The defaults a zero option selects. */
#define LM_DEFAULT_MAX_FAMILIES 256
#define LM_DEFAULT_SLOT_CAPACITY ((size_t)1 << 21)
#define LM_DEFAULT_MAX_SHARDS 64
#define LM_DEFAULT_MAX_LABEL_VALUE_LEN 256
#define LM_DEFAULT_NATIVE_CAPACITY ((size_t)1 << 22)

typedef struct lm_registry_options {
    size_t max_families;        /* 0: LM_DEFAULT_MAX_FAMILIES */
    size_t slot_capacity;       /* 64-bit cells per shard, 0: LM_DEFAULT_SLOT_CAPACITY.
                                   Reserved virtual memory; pages are touched
                                   lazily. */
    unsigned max_shards;        /* exclusive per-thread shards, 0: LM_DEFAULT_MAX_SHARDS */
    size_t max_label_value_len; /* bytes after sanitising, 0: LM_DEFAULT_MAX_LABEL_VALUE_LEN */
    size_t native_capacity;     /* 64-bit cells per shard for native histogram
                                   buckets (lm_native_options), 0:
                                   LM_DEFAULT_NATIVE_CAPACITY. Reserved address
                                   space like slot_capacity. */
} lm_registry_options;

/* opts may be NULL for all defaults. */
LM_API lm_registry *lm_registry_new(const lm_registry_options *opts, lm_error *err);

/* 0 if lm_registry_new would accept opts' values (NULL: the defaults), else
 * -1 with the reason in err (LM_ERR_INVALID): the same checks, made without
 * creating anything, so a configuration can be refused where it is
 * written. lm_registry_new may still fail for memory. */
LM_API int lm_registry_options_check(const lm_registry_options *opts, lm_error *err);
LM_API void lm_registry_free(lm_registry *reg);

/* ---------------------------------------------------------------- family */

typedef struct lm_family lm_family;
typedef struct lm_series lm_series;

typedef enum lm_type {
    LM_COUNTER = 1,  /* monotonic uint64; name must end in "_total" */
    LM_GAUGE = 2,    /* int64, one shared atomic cell per series */
    LM_HISTOGRAM = 3 /* int64 observations in recorded units, see unit_scale */
} lm_type;

/* What a family measures, for the status report (libmetrics_report.h),
 * which gives each kind its own section; the exposition ignores it. Part of
 * a family's shape: the same name registered with another kind is another
 * shape. */
typedef enum lm_family_kind {
    LM_KIND_BUSINESS = 0,     /* the host's own metrics (the default) */
    LM_KIND_HTTP = 1,         /* set by lm_http_register on its four families */
    LM_KIND_SERVER_TIMING = 2, /* timings an application reported in Server-Timing
                                  response headers, and their bookkeeping */
    LM_KIND_RUNTIME = 3        /* the host's own operation, not its traffic: its
                                  runtime (e.g. a garbage collector) and how its
                                  metrics are served (refused or failed scrapes) */
} lm_family_kind;

#define LM_MAX_LABELS 16          /* labels per family */
#define LM_MAX_BOUNDS 64          /* histogram upper bounds, +Inf not counted */
#define LM_DEFAULT_MAX_SERIES 2000 /* lm_family_options.max_series 0 */

typedef struct lm_family_options {
    lm_type type;
    const char *name;               /* [a-zA-Z_:][a-zA-Z0-9_:]* */
    const char *help;               /* any text; sanitised like lm_str */
    const char *const *label_names; /* [a-zA-Z_][a-zA-Z0-9_]*, no "__" prefix,
                                       no duplicates, not "le" for histograms */
    size_t nlabels;                 /* at most LM_MAX_LABELS */
    size_t max_series;              /* cardinality cap, 0: LM_DEFAULT_MAX_SERIES */
    /* Histograms only. bounds: finite, strictly increasing upper bounds in
     * exposed units (e.g. seconds), at most LM_MAX_BOUNDS; NULL/0 selects
     * lm_default_latency_bounds. unit_scale: recorded units per exposed
     * unit, e.g. 1e9 when observations are nanoseconds and the exposition is
     * seconds; 0 means 1. Sums are kept as exact integers of recorded units
     * and divided only when rendered. */
    const double *bounds;
    size_t nbounds;
    double unit_scale;
    lm_family_kind kind;            /* 0: LM_KIND_BUSINESS */
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

/* ----------------------------------------------------- names and shapes */
/* The rules registration applies, for a host that checks its configuration
 * before registering anything (so it can point at the line that is wrong)
 * without keeping a copy of them. */

/* name matches [a-zA-Z_:][a-zA-Z0-9_:]* (a metric name). Also the test for
 * a metric name prefix, such as lm_http_options.prefix when not empty. */
LM_API bool lm_valid_metric_name(const char *name);
/* name matches [a-zA-Z_][a-zA-Z0-9_]* and does not start with "__"
 * (reserved by Prometheus): a label name a family or an exemplar may use. */
LM_API bool lm_valid_label_name(const char *name);

/* LM_OK if lm_family_register would accept opts as a shape: type, name
 * (and a counter's "_total"), help, labels, max_series, bounds and
 * unit_scale, with the same sentence in err otherwise. A dry run: nothing is
 * registered, and whether the name clashes with a family already in some
 * registry is not checked (lm_builtin_clash covers the library's own). */
LM_API lm_status lm_family_check(const lm_family_options *opts, lm_error *err);

/* Whether a family of this type and name would expose a name (in either
 * format: a counter's base, base_total and base_created; a histogram's
 * name with _bucket, _count, _sum, _created; a gauge's name) that one of
 * the library's own families exposes: libmetrics_series_folded_total
 * (registration refuses such a family), the process_* metrics of
 * LM_EXPO_PROCESS (such a family hides the built-in one), and, unless
 * http_prefix is NULL, the four families lm_http_register creates for that
 * prefix ("" for none; registration refuses another shape). If so, writes
 * the built-in family's name (e.g. "shop_http_requests_total") into
 * builtin, cap bytes NUL-terminated and cut to fit (builtin may be NULL
 * when cap is 0), and returns true. A name that is not valid for its type
 * (a metric name; a counter's ending in "_total") clashes with nothing. */
LM_API bool lm_builtin_clash(lm_type type, const char *name, const char *http_prefix,
                             char *builtin, size_t cap);

/* Whether families (ta, a) and (tb, b) would expose a name in common, by the
 * same rule registration and lm_builtin_clash apply: for a host's own
 * families that libmetrics does not know, so its configuration check and
 * its registrations read one table. If so, writes the first name both would
 * expose into exposed (cap bytes, NUL-terminated, cut to fit; exposed may
 * be NULL when cap is 0) and returns true. A name that is not valid for its
 * type clashes with nothing. */
LM_API bool lm_names_clash(lm_type ta, const char *a, lm_type tb, const char *b, char *exposed,
                           size_t cap);

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
 * the response and request bytes counters for (route, method, status). */

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

#define LM_DEFAULT_MAX_ROUTES 1000
#define LM_DEFAULT_HTTP_MAX_SERIES 10000

typedef struct lm_http_options {
    const char *prefix;     /* prepended to every name, e.g. "myapp_"; NULL: "" */
    const double *bounds;   /* latency buckets in seconds; NULL: default */
    size_t nbounds;
    size_t max_routes;      /* 0: LM_DEFAULT_MAX_ROUTES */
    size_t max_series;      /* cap per family, 0: LM_DEFAULT_HTTP_MAX_SERIES */
    unsigned flags;         /* LM_HTTP_* below, 0: the shape shown below */
    /* The duration histogram's native buckets (lm_native_options); NULL:
     * classic only. Changed like the bounds on a later call. */
    const struct lm_native_options *native;
} lm_http_options;

/* lm_http_options.flags: cardinality levers. Each route costs up to
 * methods x statuses series in every family, and the histogram
 * (nbounds + 3) lines per series; these trade detail for fewer series.
 * STATUS_CLASSES: the status label is the class, "1xx" .. "5xx" (still
 * "other" outside 100..599), in all three families. DURATION_NO_STATUS: the
 * latency histogram is labelled {method, endpoint} only, as
 * prometheus-fastapi-instrumentator's is. */
#define LM_HTTP_STATUS_CLASSES 0x1u
#define LM_HTTP_DURATION_NO_STATUS 0x2u

/* Families created (kind LM_KIND_HTTP), named <prefix> + :
 *   http_requests_total{method,endpoint,status}             counter
 *   http_request_duration_seconds{method,endpoint,status}   histogram
 *   http_response_size_bytes_total{method,endpoint,status}  counter
 *   http_request_size_bytes_total{method,endpoint,status}   counter
 *   http_requests_in_progress{endpoint}                     gauge
 * (the status label and the histogram's labels as lm_http_options.flags
 * say). Calling again with the same prefix returns the same lm_http; if the
 * bounds differ, the duration histogram exposes them from now on and keeps
 * counting every request, as lm_family_replace describes (routes keep their
 * series; nothing is moved or scanned when the bounds were seen before).
 * Other flags than the first registration's fail with LM_ERR_EXISTS: a
 * family's label set (or what its status values mean) cannot change in
 * place, so that takes a new registry (a restart). */
LM_API lm_http *lm_http_register(lm_registry *reg, const lm_http_options *opts, lm_error *err);

/* 0 if lm_http_register would accept opts' values (prefix, max_routes,
 * max_series, flags), else -1 with the reason in err, without a registry
 * (as lm_registry_options_check). Bucket lists are checked when the
 * histogram is made; what a registry already holds (another shape under
 * the same prefix) only lm_http_register can tell. */
LM_API int lm_http_options_check(const lm_http_options *opts, lm_error *err);

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
 * feeds. Request bytes are not recorded (see lm_route_record_sized). */
LM_API void lm_route_record(lm_route *route, lm_method method, int status, int64_t duration_ns,
                            uint64_t response_bytes, lm_series *const *counters,
                            size_t ncounters);

/* lm_route_record that also adds request_bytes (bytes of the request body
 * the host read) to http_request_size_bytes_total, in the same call. */
LM_API void lm_route_record_sized(lm_route *route, lm_method method, int status,
                                  int64_t duration_ns, uint64_t request_bytes,
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
    uint64_t request_bytes;  /* added to http_request_size_bytes_total */
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
 * skipped). lm_route_record_sized(r, m, s, d, q, b, c, n) is
 * lm_route_record_ex with no observations and no exemplar. */
LM_API void lm_route_record_ex(lm_route *route, const lm_request_record *rec);

/* ------------------------------------------------ route template matcher */
/* Resolves a request path to one of a set of route templates, the way a
 * Starlette/FastAPI app routes it, so a host can label requests by the
 * app's own route ("/items/{item_id}") instead of a raw, unbounded path.
 * The set is compiled once into an immutable matcher; matching takes no
 * lock, never allocates and is safe from any number of threads.
 *
 * Template syntax (Starlette's): a template starts with '/' and is split
 * into segments at '/'. A segment is either literal text (matched byte for
 * byte) or, as a whole, a parameter `{name}` or `{name:convertor}`, name
 * matching [a-zA-Z_][a-zA-Z0-9_]*, unique within the template. Convertors:
 *   str    (the default) one non-empty segment: [^/]+
 *   int    one segment of ASCII digits: [0-9]+
 *   float  [0-9]+(\.[0-9]+)?
 *   uuid   32 hex digits, optionally grouped 8-4-4-4-12 by '-'
 *   path   the rest of the path, '/' included, possibly empty: .*
 *          (only as the last segment)
 * A parameter inside a segment ("/a/{x}.json"), an unknown convertor, an
 * unbalanced brace, a control byte, a template longer than
 * LM_MATCHER_MAX_TEMPLATE_LEN bytes or LM_MATCHER_MAX_SEGMENTS segments, and
 * two templates of the same shape (equal but for parameter names, so the
 * second could never match) are errors.
 *
 * The path is matched as given: the host passes the percent-DECODED path
 * the application routes on (Starlette matches the decoded path: "x%2Fy"
 * is two segments there). No normalisation: "//" has an empty segment (no
 * `{p}` matches it), "/./" a literal "." segment, a trailing '/' one more,
 * empty segment; a path that does not start with '/' matches nothing.
 *
 * Precedence, when several templates match (a total order, so the result
 * never depends on declaration order):
 *   1. more literal segments first (so a template without parameters beats
 *      every template with parameters: "/users/me" before
 *      "/users/{user_id}", as OpenAPI requires);
 *   2. then, comparing segment by segment from the left, the first segment
 *      that differs decides: literal before int, before float, before uuid,
 *      before str, before path. */

typedef struct lm_matcher lm_matcher;

/* lm_matcher_match's "no template matched". */
#define LM_MATCH_NONE ((size_t)-1)
#define LM_MATCHER_MAX_TEMPLATES 65536
#define LM_MATCHER_MAX_TEMPLATE_LEN 2048
#define LM_MATCHER_MAX_SEGMENTS 64

/* Compiles ntemplates templates (1..LM_MATCHER_MAX_TEMPLATES; the bytes are
 * copied). On failure returns NULL, sets *bad_index (if not NULL) to the
 * index of the offending template (for a duplicate shape, the later one)
 * and fills err with a sentence quoting it. */
LM_API lm_matcher *lm_matcher_new(const lm_str *templates, size_t ntemplates, size_t *bad_index,
                                  lm_error *err);
LM_API void lm_matcher_free(lm_matcher *m);

/* Index of the template path resolves to, or LM_MATCH_NONE. Cost depends on
 * the path's depth and the templates' parameters at each level, not on how
 * many templates there are. m NULL or path.ptr NULL: LM_MATCH_NONE. */
LM_API size_t lm_matcher_match(const lm_matcher *m, lm_str path);

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

/* ----------------------------------------------------- reading it back */
/* What a registry holds, for reports (libmetrics_report builds its status
 * page from these calls alone) and tests. Reads never block recording;
 * values are sums over shards taken the way a scrape takes them. Strings
 * and bounds returned stay valid until lm_registry_free. */

/* Writes the live (not retired) families, in registration order, to
 * out[0..cap) from one consistent view (never two live families of one
 * name) and returns how many there are, which may exceed cap: call with
 * cap 0 to size out, and allow for families registered in between. */
LM_API size_t lm_registry_families(lm_registry *reg, lm_family **out, size_t cap);

/* CLOCK_MONOTONIC nanoseconds at lm_registry_new: counts divided by the
 * time since give average rates since the metrics began. */
LM_API int64_t lm_registry_created_ns(const lm_registry *reg);

typedef struct lm_family_info {
    lm_type type;
    lm_family_kind kind;
    lm_str name;          /* as registered */
    lm_str help;          /* sanitised, as exposed */
    size_t nlabels;
    size_t max_series;
    const double *bounds; /* histograms: upper bounds in exposed units, +Inf
                             not included; NULL otherwise */
    size_t nbounds;
    double unit_scale;    /* histograms: recorded units per exposed unit */
    size_t nseries;       /* series created so far, the overflow one not counted */
    uint64_t folded;      /* lookups folded into the overflow series so far */
} lm_family_info;

/* Fills *out with fam's shape and fold count (all zero if fam is NULL). */
LM_API void lm_family_describe(const lm_family *fam, lm_family_info *out);
/* Label name i of fam, sanitised; {NULL, 0} when i >= nlabels. */
LM_API lm_str lm_family_label_name(const lm_family *fam, size_t i);

/* Series i of fam in creation order, i < lm_family_info.nseries (series
 * are never removed, so an index once valid stays valid); NULL otherwise. */
LM_API lm_series *lm_family_series(lm_family *fam, size_t i);
/* The family's overflow series (every label value "_overflow"), or NULL
 * until it is first used (a fold, or a lookup of exactly its label set). */
LM_API lm_series *lm_family_overflow(lm_family *fam);
/* Label value i of s, sanitised as exposed; {NULL, 0} when out of range. */
LM_API lm_str lm_series_label_value(const lm_series *s, size_t i);
/* A gauge's current value; 0 for other types. */
LM_API int64_t lm_gauge_value(const lm_series *s);
/* Reads a histogram series once: buckets[i] the count of bucket i (not
 * cumulative) for each finite bound, then the +Inf bucket, at most cap
 * entries. Returns nbounds + 1, or 0 if s is not a histogram. Their sum is
 * the series' count, whatever writers do meanwhile. The bounds are the ones
 * the family exposes at the time of the call: a reload that changes a
 * histogram's buckets (lm_family_replace) may change them after an
 * lm_family_describe, so a caller that must not mix two bucket lists
 * compares the result with the nbounds + 1 it described. */
LM_API size_t lm_histogram_buckets(const lm_series *s, uint64_t *buckets, size_t cap);

/* The HTTP families registered with prefix (NULL: ""), or NULL. */
LM_API lm_http *lm_http_find(lm_registry *reg, const char *prefix);

typedef enum lm_http_family {
    LM_HTTP_REQUESTS = 0, /* <prefix>http_requests_total */
    LM_HTTP_DURATION,     /* <prefix>http_request_duration_seconds (the live one) */
    LM_HTTP_BYTES,        /* <prefix>http_response_size_bytes_total */
    LM_HTTP_INFLIGHT,     /* <prefix>http_requests_in_progress */
    LM_HTTP_REQUEST_BYTES /* <prefix>http_request_size_bytes_total */
} lm_http_family;

/* One of the five families of http; NULL for another value of which. */
LM_API lm_family *lm_http_family_get(lm_http *http, lm_http_family which);
/* Route i of http in creation order, NULL past the last. */
LM_API lm_route *lm_http_route_at(lm_http *http, size_t i);
/* A route's name (its endpoint label value), sanitised. */
LM_API lm_str lm_route_name(const lm_route *route);

#ifdef __cplusplus
}
#endif

#endif /* LIBMETRICS_H */
