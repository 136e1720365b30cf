/*
 * The HTTP request fast path: five families per prefix, route handles
 * resolved once by name, and lm_route_record, which turns one finished
 * request into a handful of plain stores into the calling thread's shard.
 */
#include "core.h"
#include "exemplar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define QCAP 96
#define LM_MAX_ROUTES_LIMIT ((size_t)1 << 20)

static const char *const method_names[LM_METHOD_COUNT] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER"};

static const char *const http_labels[3] = {"method", "endpoint", "status"};
#define LM_HTTP_FLAGS (LM_HTTP_STATUS_CLASSES | LM_HTTP_DURATION_NO_STATUS)
static const char *const inflight_labels[1] = {"endpoint"};

lm_method lm_method_parse(lm_str m)
{
    if (m.ptr == NULL)
        return LM_METHOD_OTHER;
    for (int i = 0; i < LM_METHOD_OTHER; i++)
        if (strlen(method_names[i]) == m.len && memcmp(method_names[i], m.ptr, m.len) == 0)
            return (lm_method)i;
    return LM_METHOD_OTHER;
}

/* ------------------------------------------------------------ register */

typedef struct http_names {
    char *requests, *duration, *bytes, *request_bytes, *inflight;
} http_names;

static void names_free(http_names *n)
{
    free(n->requests);
    free(n->duration);
    free(n->bytes);
    free(n->request_bytes);
    free(n->inflight);
}

static char *join(const char *prefix, const char *name)
{
    size_t a = strlen(prefix), b = strlen(name);
    char *s = malloc(a + b + 1);
    if (s != NULL) {
        memcpy(s, prefix, a);
        memcpy(s + a, name, b + 1);
    }
    return s;
}

/* The five families: names after the prefix, and types. */
static const struct {
    const char *name;
    lm_type type;
} http_families[5] = {
    [LM_HTTP_REQUESTS] = {"http_requests_total", LM_COUNTER},
    [LM_HTTP_DURATION] = {"http_request_duration_seconds", LM_HISTOGRAM},
    [LM_HTTP_BYTES] = {"http_response_size_bytes_total", LM_COUNTER},
    [LM_HTTP_INFLIGHT] = {"http_requests_in_progress", LM_GAUGE},
    [LM_HTTP_REQUEST_BYTES] = {"http_request_size_bytes_total", LM_COUNTER},
};

static int names_make(const char *prefix, http_names *n)
{
    n->requests = join(prefix, http_families[LM_HTTP_REQUESTS].name);
    n->duration = join(prefix, http_families[LM_HTTP_DURATION].name);
    n->bytes = join(prefix, http_families[LM_HTTP_BYTES].name);
    n->request_bytes = join(prefix, http_families[LM_HTTP_REQUEST_BYTES].name);
    n->inflight = join(prefix, http_families[LM_HTTP_INFLIGHT].name);
    return n->requests && n->duration && n->bytes && n->request_bytes && n->inflight ? 0 : -1;
}

bool lm__http_builtin_clash(lm_type type, const char *name, const char *prefix, char *builtin,
                            size_t cap)
{
    for (size_t i = 0; i < sizeof http_families / sizeof *http_families; i++) {
        char *full = join(prefix, http_families[i].name);
        /* Out of memory: a clash cannot be ruled out, so report one. */
        bool hit = full == NULL ||
                   lm__names_clash(type, name, http_families[i].type, full, NULL, 0);
        if (hit && cap > 0)
            snprintf(builtin, cap, "%s%s", prefix, http_families[i].name);
        free(full);
        if (hit)
            return true;
    }
    return false;
}

static lm_family_options counter_opts(const char *name, const char *help, size_t max_series)
{
    return (lm_family_options){.type = LM_COUNTER,
                               .name = name,
                               .help = help,
                               .label_names = http_labels,
                               .nlabels = 3,
                               .max_series = max_series,
                               .kind = LM_KIND_HTTP};
}

static lm_family_options duration_opts(const char *name, const double *bounds, size_t nbounds,
                                       size_t max_series, unsigned flags,
                                       const lm_native_options *native)
{
    return (lm_family_options){
        .type = LM_HISTOGRAM,
        .name = name,
        .help = "Time from the start of a request until its response was written, in seconds.",
        .label_names = http_labels, /* method, endpoint [, status] */
        .nlabels = flags & LM_HTTP_DURATION_NO_STATUS ? 2 : 3,
        .max_series = max_series,
        .bounds = bounds,
        .nbounds = nbounds,
        /* Observations are nanoseconds: sums stay exact integers. */
        .unit_scale = 1e9,
        .kind = LM_KIND_HTTP,
        .native = native};
}

/* *o = *in (NULL: all defaults) with every default resolved (prefix "",
 * the default latency bounds, max_routes, max_series), and q its quoted
 * prefix for messages; 0 if lm_http_register would accept it, else -1 with
 * the reason (lm_http_options_check), as registry.c's resolve_options does
 * for a registry. Bucket lists are checked where the histogram is made. */
static int resolve_options(const lm_http_options *in, lm_http_options *o, char q[QCAP],
                           lm_error *err)
{
    *o = in != NULL ? *in : (lm_http_options){0};
    if (o->prefix == NULL)
        o->prefix = "";
    lm__quote(q, QCAP, o->prefix, strlen(o->prefix));
    if (o->prefix[0] != '\0' && !lm_valid_metric_name(o->prefix)) {
        lm__set_error(err, LM_ERR_INVALID,
                      "http prefix %s must match [a-zA-Z_:][a-zA-Z0-9_:]* (or be empty)", q);
        return -1;
    }
    /* Without a prefix there is nothing to name: a caller checking limits
     * that every namespace will get passes none. */
    char subject[QCAP + 16];
    if (o->prefix[0] != '\0')
        snprintf(subject, sizeof subject, "http prefix %s", q);
    else
        snprintf(subject, sizeof subject, "http metrics");
    if (o->bounds == NULL && o->nbounds != 0) {
        lm__set_error(err, LM_ERR_INVALID, "%s: bounds is NULL but nbounds is %zu", subject,
                      o->nbounds);
        return -1;
    }
    if (o->bounds == NULL || o->nbounds == 0)
        o->bounds = lm_default_latency_bounds(&o->nbounds);
    if (o->max_routes == 0)
        o->max_routes = LM_DEFAULT_MAX_ROUTES;
    if (o->max_routes > LM_MAX_ROUTES_LIMIT) {
        lm__set_error(err, LM_ERR_INVALID, "%s: max_routes %zu exceeds the maximum of %zu",
                      subject, o->max_routes, LM_MAX_ROUTES_LIMIT);
        return -1;
    }
    if (o->max_series == 0)
        o->max_series = LM_DEFAULT_HTTP_MAX_SERIES;
    if (lm__max_series_check(subject, o->max_series, err) != 0)
        return -1;
    if (o->flags & ~LM_HTTP_FLAGS) {
        lm__set_error(err, LM_ERR_INVALID, "%s: unknown flags 0x%x", subject,
                      o->flags & ~LM_HTTP_FLAGS);
        return -1;
    }
    return 0;
}

int lm_http_options_check(const lm_http_options *opts, lm_error *err)
{
    lm_http_options o;
    char q[QCAP];
    return resolve_options(opts, &o, q, err);
}

lm_http *lm_http_register(lm_registry *reg, const lm_http_options *opts, lm_error *err)
{
    char q[QCAP];
    if (reg == NULL) {
        lm__set_error(err, LM_ERR_INVALID, "registry is NULL");
        return NULL;
    }
    lm_http_options o;
    if (resolve_options(opts, &o, q, err) != 0)
        return NULL;
    const char *prefix = o.prefix;
    const double *bounds = o.bounds;
    size_t nb = o.nbounds, max_routes = o.max_routes, max_series = o.max_series;
    http_names names = {0};
    if (names_make(prefix, &names) != 0) {
        names_free(&names);
        lm__set_error(err, LM_ERR_NOMEM, "out of memory building metric names");
        return NULL;
    }

    lm_http *h = NULL;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->nhttp; i++)
        if (strcmp(reg->https[i]->prefix.ptr, prefix) == 0)
            h = reg->https[i];

    if (h != NULL) {
        lm_family *dur = atomic_load_explicit(&h->duration, memory_order_relaxed);
        if (h->max_routes != max_routes || h->requests->max_series != max_series) {
            lm__set_error(err, LM_ERR_EXISTS,
                          "http metrics with prefix %s exist with max_routes %zu and max_series "
                          "%zu; this call asks for %zu and %zu, which needs a new registry",
                          q, h->max_routes, h->requests->max_series, max_routes, max_series);
            h = NULL;
        } else if (h->flags != o.flags) {
            lm__set_error(err, LM_ERR_EXISTS,
                          "http metrics with prefix %s exist with status %s and a latency "
                          "histogram %s the status label; this call asks for status %s, %s it: "
                          "a family's labels cannot change in place, which needs a new registry",
                          q, h->flags & LM_HTTP_STATUS_CLASSES ? "classes" : "codes",
                          h->flags & LM_HTTP_DURATION_NO_STATUS ? "without" : "with",
                          o.flags & LM_HTTP_STATUS_CLASSES ? "classes" : "codes",
                          o.flags & LM_HTTP_DURATION_NO_STATUS ? "without" : "with");
            h = NULL;
        } else {
            /* The same family, maybe with other exposed buckets (classic or
             * native): routes keep their series, which keep counting
             * (lm_family_replace; the same shape returns it unchanged). */
            lm_family_options d =
                duration_opts(names.duration, bounds, nb, max_series, h->flags, o.native);
            if (lm__family_register_locked(reg, &d, true, err) != dur)
                h = NULL;
        }
        goto out;
    }

    if (reg->nhttp >= LM_MAX_HTTP) {
        lm__set_error(err, LM_ERR_LIMIT,
                      "cannot register http metrics with prefix %s: at most %d prefixes per "
                      "registry",
                      q, LM_MAX_HTTP);
        goto out;
    }
    lm_family_options ro = counter_opts(
        names.requests, "HTTP requests completed, by method, endpoint and status.", max_series);
    lm_family_options dopt =
        duration_opts(names.duration, bounds, nb, max_series, o.flags, o.native);
    lm_family_options bo = counter_opts(
        names.bytes, "Bytes of HTTP response bodies sent, by method, endpoint and status.",
        max_series);
    lm_family_options qo = counter_opts(
        names.request_bytes,
        "Bytes of HTTP request bodies read by the handlers, by method, endpoint and status.",
        max_series);
    lm_family_options io = {.type = LM_GAUGE,
                            .name = names.inflight,
                            .help = "HTTP requests currently being handled, by endpoint.",
                            .label_names = inflight_labels,
                            .nlabels = 1,
                            .max_series = max_series,
                            .kind = LM_KIND_HTTP};
    lm_family *fr = lm__family_register_locked(reg, &ro, false, err);
    lm_family *fd = fr ? lm__family_register_locked(reg, &dopt, false, err) : NULL;
    lm_family *fb = fd ? lm__family_register_locked(reg, &bo, false, err) : NULL;
    lm_family *fq = fb ? lm__family_register_locked(reg, &qo, false, err) : NULL;
    lm_family *fi = fq ? lm__family_register_locked(reg, &io, false, err) : NULL;
    if (fi == NULL)
        goto out; /* families made so far stay: registering them again is idempotent */

    h = calloc(1, sizeof *h);
    if (h == NULL || lm__text_from((lm_str){prefix, strlen(prefix)}, 0, &h->prefix) != LM_OK ||
        (h->routes = calloc(max_routes, sizeof *h->routes)) == NULL) {
        lm__http_free(h);
        h = NULL;
        lm__set_error(err, LM_ERR_NOMEM, "out of memory registering http metrics");
        goto out;
    }
    h->reg = reg;
    h->flags = o.flags;
    h->max_routes = max_routes;
    h->requests = fr;
    atomic_init(&h->duration, fd);
    h->bytes = fb;
    h->request_bytes = fq;
    h->inflight = fi;
    atomic_init(&h->nroutes, 0);
    reg->https[reg->nhttp++] = h;

out:
    pthread_mutex_unlock(&reg->lock);
    names_free(&names);
    return h;
}

/* --------------------------------------------------------------- routes */

/* The (method, status) table of a route is 10 x 501 pointers, 40 KB, almost
 * all of them never used. An anonymous mapping leaves the untouched pages
 * unbacked: a route recording GET and POST costs two pages, not 40 KB
 * (calloc touched all of it; bench/RESULTS.md, "Measurements behind design
 * choices in the code"). */
#define LM_SLOTS_BYTES ((size_t)LM_METHOD_COUNT * LM_STATUS_SLOTS * sizeof(lm_route_slot *))

static _Atomic(lm_route_slot *) (*slots_map(void))[LM_STATUS_SLOTS]
{
    void *p = mmap(NULL, LM_SLOTS_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void slots_unmap(_Atomic(lm_route_slot *) (*slots)[LM_STATUS_SLOTS])
{
    if (slots != NULL)
        munmap((void *)slots, LM_SLOTS_BYTES);
}

lm_route *lm_http_route(lm_http *h, lm_str name, lm_error *err)
{
    char q[QCAP];
    if (h == NULL) {
        lm__set_error(err, LM_ERR_INVALID, "http is NULL");
        return NULL;
    }
    lm_registry *reg = h->reg;
    lm_text t;
    int rc = lm__text_from(name, reg->opts.max_label_value_len, &t);
    if (rc != LM_OK) {
        lm__set_error(err, (lm_status)rc,
                      rc == LM_ERR_INVALID ? "route name has a NULL pointer and length %zu"
                                           : "out of memory copying a route name (%zu bytes)",
                      name.len);
        return NULL;
    }

    lm_route *r = NULL;
    pthread_mutex_lock(&reg->lock);
    size_t n = atomic_load_explicit(&h->nroutes, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        if (h->routes[i]->name.len == t.len && memcmp(h->routes[i]->name.ptr, t.ptr, t.len) == 0) {
            r = h->routes[i];
            goto out;
        }
    }
    if (n >= h->max_routes) {
        lm__set_error(err, LM_ERR_LIMIT, "route %s not registered: max_routes (%zu) is reached",
                      lm__quote(q, QCAP, t.ptr, t.len), h->max_routes);
        goto out;
    }
    lm_route *nr = calloc(1, sizeof *nr);
    if (nr == NULL || (nr->slots = slots_map()) == NULL) {
        free(nr);
        lm__set_error(err, LM_ERR_NOMEM, "out of memory creating route %s",
                      lm__quote(q, QCAP, t.ptr, t.len));
        goto out;
    }
    lm_str v = {t.ptr, t.len};
    nr->inflight = lm__series_get_locked(h->inflight, &v, err);
    if (nr->inflight == NULL) {
        slots_unmap(nr->slots);
        free(nr);
        goto out;
    }
    nr->http = h;
    nr->name = t;
    t = (lm_text){0};
    h->routes[n] = nr;
    atomic_store_explicit(&h->nroutes, n + 1, memory_order_release);
    r = nr;

out:
    pthread_mutex_unlock(&reg->lock);
    lm__text_free(&t);
    return r;
}

int64_t *lm_route_inflight_cell(lm_route *route)
{
    return route ? (int64_t *)&route->inflight->gauge : NULL;
}

static void route_free(lm_route *r)
{
    if (r == NULL)
        return;
    if (r->slots != NULL)
        for (int m = 0; m < LM_METHOD_COUNT; m++)
            for (int st = 0; st < LM_STATUS_SLOTS; st++)
                free(atomic_load_explicit(&r->slots[m][st], memory_order_relaxed));
    slots_unmap(r->slots);
    lm__text_free(&r->name);
    free(r);
}

void lm__http_free(lm_http *h)
{
    if (h == NULL)
        return;
    if (h->routes != NULL) {
        size_t n = atomic_load_explicit(&h->nroutes, memory_order_relaxed);
        for (size_t i = 0; i < n; i++)
            route_free(h->routes[i]);
    }
    free(h->routes);
    lm__text_free(&h->prefix);
    free(h);
}

/* -------------------------------------------------------------- record */

/* First request of a (method, status) on a route: resolves its series
 * once; afterwards the slot pointer is all the hot path needs. */
__attribute__((noinline, cold)) static lm_route_slot *slot_create(lm_route *r, unsigned m,
                                                                  unsigned st)
{
    lm_http *h = r->http;
    lm_registry *reg = h->reg;
    pthread_mutex_lock(&reg->lock);
    lm_route_slot *slot = atomic_load_explicit(&r->slots[m][st], memory_order_relaxed);
    if (slot == NULL) {
        char status[16];
        if (st == LM_STATUS_SLOTS - 1)
            snprintf(status, sizeof status, "other");
        else if (h->flags & LM_HTTP_STATUS_CLASSES)
            snprintf(status, sizeof status, "%uxx", (st + LM_STATUS_MIN) / 100);
        else
            snprintf(status, sizeof status, "%u", st + LM_STATUS_MIN);
        lm_str v[3] = {{method_names[m], strlen(method_names[m])},
                       {r->name.ptr, r->name.len},
                       {status, strlen(status)}};
        lm_family *dur = atomic_load_explicit(&h->duration, memory_order_relaxed);
        lm_series *rq = lm__series_get_locked(h->requests, v, NULL);
        lm_series *du = rq ? lm__series_get_locked(dur, v, NULL) : NULL;
        lm_series *by = du ? lm__series_get_locked(h->bytes, v, NULL) : NULL;
        lm_series *qb = by ? lm__series_get_locked(h->request_bytes, v, NULL) : NULL;
        if (qb != NULL && (slot = malloc(sizeof *slot)) != NULL) {
            slot->requests = rq;
            slot->duration = du;
            slot->bytes = by;
            slot->request_bytes = qb;
            atomic_store_explicit(&r->slots[m][st], slot, memory_order_release);
        }
        /* On failure (memory or slot_capacity) the request is not recorded
         * and the next one retries; series made so far stay and are reused. */
    }
    pthread_mutex_unlock(&reg->lock);
    return slot;
}

static inline void plain_add(lm_cell *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

/* The route's (method, status) slot, created on first sight; NULL only if
 * creating it failed (the request then goes unrecorded, see slot_create). */
static inline lm_route_slot *route_slot(lm_route *route, lm_method method, int status)
{
    unsigned m = (unsigned)method < LM_METHOD_COUNT ? (unsigned)method : LM_METHOD_OTHER;
    /* Unsigned wrap sends everything below 100 (negatives too) past the end. */
    unsigned st = (unsigned)status - LM_STATUS_MIN;
    if (st > LM_STATUS_MAX - LM_STATUS_MIN)
        st = LM_STATUS_SLOTS - 1;
    lm_route_slot *slot = atomic_load_explicit(&route->slots[m][st], memory_order_acquire);
    if (LM_UNLIKELY(slot == NULL))
        slot = slot_create(route, m, st);
    return slot;
}

/* requests_total += 1, the latency histogram, response and request bytes. */
static inline void record_request(const lm_shard *sh, const lm_route_slot *slot,
                                  int64_t duration_ns, uint64_t response_bytes,
                                  uint64_t request_bytes)
{
    uint32_t qb = slot->request_bytes->slot;
    lm_cell *cells = sh->cells;
    const lm_hcells *hc = lm__hcells(slot->duration);
    uint32_t rq = slot->requests->slot, by = slot->bytes->slot;
    uint64_t u = duration_ns < 0 ? 0 : (uint64_t)duration_ns;
    if (LM_LIKELY(sh->exclusive)) {
        /* The common case written out: one thread owns these cells, so
         * each update is a plain load + add + store. */
        size_t nb = hc->nb;
        lm_cell *c = &cells[hc->slot];
        plain_add(&cells[rq], 1);
        plain_add(&cells[by], response_bytes);
        plain_add(&cells[qb], request_bytes);
        lm__native_add(sh, slot->duration, (int64_t)u);
        lm_cell *b = &c[lm__bucket_index(hc->ub, nb, (int64_t)u)];
        /* Release: the native cells above are visible before this bucket
         * (native.h); still a plain store on x86. */
        atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1,
                              memory_order_release);
        uint64_t old = atomic_load_explicit(&c[nb + 1], memory_order_relaxed);
        atomic_store_explicit(&c[nb + 1], old + u, memory_order_relaxed);
        if (LM_UNLIKELY(old + u < old))
            plain_add(&c[nb + 2], 1); /* carry into the high word */
    } else {
        lm__cell_add(sh, rq, 1);
        lm__cell_add(sh, by, response_bytes);
        lm__cell_add(sh, qb, request_bytes);
        lm__native_add(sh, slot->duration, (int64_t)u);
        lm__hcells_add(sh, hc, (int64_t)u);
    }
}

static inline void record_counters(const lm_registry *reg, const lm_shard *sh,
                                   lm_series *const *counters, size_t ncounters)
{
    for (size_t i = 0; i < ncounters; i++) {
        lm_series *c = counters[i];
        if (LM_LIKELY(c != NULL && c->family->reg == reg && c->family->type == LM_COUNTER))
            lm__cell_add(sh, c->slot, 1);
        else
            lm_counter_add(c, 1); /* NULL, wrong type (ignored) or another registry */
    }
}

void lm_route_record_sized(lm_route *route, lm_method method, int status, int64_t duration_ns,
                           uint64_t request_bytes, uint64_t response_bytes,
                           lm_series *const *counters, size_t ncounters)
{
    if (LM_UNLIKELY(route == NULL))
        return;
    lm_registry *reg = route->http->reg;
    lm_shard *sh = lm__shard(reg);
    lm_route_slot *slot = route_slot(route, method, status);
    if (LM_LIKELY(slot != NULL))
        record_request(sh, slot, duration_ns, response_bytes, request_bytes);
    record_counters(reg, sh, counters, ncounters);
}

void lm_route_record(lm_route *route, lm_method method, int status, int64_t duration_ns,
                     uint64_t response_bytes, lm_series *const *counters, size_t ncounters)
{
    lm_route_record_sized(route, method, status, duration_ns, 0, response_bytes, counters,
                          ncounters);
}

/* An exemplar being attached to the slots of one record: validated and
 * packed only once a slot actually wants it (a hot bucket mostly does not,
 * see exemplar.h), so most requests pay a few loads. */
typedef struct exemplar_job {
    const lm_exemplar *ex;
    int64_t t;
    int state; /* 0: not prepared yet, 1: prepared, -1: refused */
    lm_exemplar_prep p;
} exemplar_job;

static bool attach(exemplar_job *j, lm_series *s, int64_t v)
{
    size_t idx;
    lm_exemplar_home home = lm__exemplar_home(s, v, &idx);
    if (!lm__exemplar_due(home, idx, j->t))
        return true;
    if (j->state == 0)
        j->state = lm__exemplar_prepare(j->ex, j->t, &j->p) ? 1 : -1;
    if (j->state < 0)
        return false; /* not a valid exemplar: nothing else gets it either */
    lm__exemplar_store(home, idx, &j->p, v);
    return true;
}

/* The exemplar part of a record, kept out of line so that records without
 * one pay nothing for its stack buffer. */
__attribute__((noinline)) static void record_exemplars(const lm_request_record *rec,
                                                       lm_route_slot *slot)
{
    exemplar_job j; /* not an initializer: that would zero the 512-byte text */
    j.ex = rec->exemplar;
    j.t = lm__exemplar_time(rec->exemplar);
    j.state = 0;
    if (slot != NULL) {
        int64_t d = rec->duration_ns < 0 ? 0 : rec->duration_ns;
        if (!attach(&j, slot->requests, 1) || !attach(&j, slot->duration, d))
            return;
    }
    for (size_t i = 0; rec->observations != NULL && i < rec->nobservations; i++) {
        const lm_observation *o = &rec->observations[i];
        lm_series *s = o->series;
        if (!(o->flags & LM_OBS_EXEMPLAR) || s == NULL)
            continue;
        bool ok = true;
        if (s->family->type == LM_HISTOGRAM || (s->family->type == LM_COUNTER && o->value > 0))
            ok = attach(&j, s, o->value);
        if (!ok)
            return;
    }
}

void lm_route_record_ex(lm_route *route, const lm_request_record *rec)
{
    if (LM_UNLIKELY(route == NULL || rec == NULL))
        return;
    lm_registry *reg = route->http->reg;
    lm_shard *sh = lm__shard(reg);
    lm_route_slot *slot = route_slot(route, rec->method, rec->status);
    if (LM_LIKELY(slot != NULL))
        record_request(sh, slot, rec->duration_ns, rec->response_bytes, rec->request_bytes);
    record_counters(reg, sh, rec->counters, rec->ncounters);
    const lm_observation *obs = rec->observations;
    for (size_t i = 0; obs != NULL && i < rec->nobservations; i++) {
        lm_series *s = obs[i].series;
        if (LM_UNLIKELY(s == NULL))
            continue;
        const lm_family *f = s->family;
        if (LM_UNLIKELY(f->reg != reg)) {
            /* Another registry's series: its own public path (own shard). */
            if (f->type == LM_HISTOGRAM)
                lm_histogram_observe(s, obs[i].value);
            else if (obs[i].value > 0)
                lm_counter_add(s, (uint64_t)obs[i].value);
        } else if (f->type == LM_HISTOGRAM) {
            lm__histogram_add(sh, s, obs[i].value);
        } else if (f->type == LM_COUNTER && obs[i].value > 0) {
            lm__cell_add(sh, s->slot, (uint64_t)obs[i].value);
        }
    }
    if (rec->exemplar != NULL)
        record_exemplars(rec, slot);
}
