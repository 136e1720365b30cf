/*
 * Reading a registry back through the public API (libmetrics.h, "reading it
 * back"): what the status report and tests need to walk families, series,
 * routes and values without reaching into the structures. Every read is a
 * relaxed or acquire load of something published with release, as in the
 * exposition; nothing here takes reg->lock except lm_http_find.
 * lm_registry_families lives in family.c beside the retired-flag snapshot
 * it shares with the exposition.
 */
#include "core.h"

#include <string.h>

static lm_str str_of(const lm_text *t)
{
    return (lm_str){t->ptr, t->len};
}

int64_t lm_registry_created_ns(const lm_registry *reg)
{
    return reg != NULL ? reg->created_mono_ns : 0;
}

void lm_family_describe(const lm_family *fam, lm_family_info *out)
{
    memset(out, 0, sizeof *out);
    if (fam == NULL)
        return;
    lm_family *f = (lm_family *)fam; /* atomic loads want non-const */
    out->type = f->type;
    out->kind = atomic_load_explicit(&f->kind, memory_order_relaxed);
    out->name = str_of(&f->name);
    out->help = str_of(lm__family_help(f));
    out->nlabels = f->nlabels;
    out->max_series = f->max_series;
    out->nseries = atomic_load_explicit(&f->nseries, memory_order_acquire);
    if (f->type == LM_HISTOGRAM) {
        /* A projection is never changed or freed while the registry lives,
         * so these stay valid even if a reload exposes other buckets. */
        const lm_hproj *p = lm__family_proj(f);
        out->bounds = p->bounds;
        out->nbounds = p->n;
        out->unit_scale = f->unit_scale;
    }
    out->folded = atomic_load_explicit(&f->folded, memory_order_relaxed);
}

lm_str lm_family_label_name(const lm_family *fam, size_t i)
{
    if (fam == NULL || i >= fam->nlabels)
        return (lm_str){NULL, 0};
    return str_of(&fam->label_names[i]);
}

lm_series *lm_family_series(lm_family *fam, size_t i)
{
    if (fam == NULL || i >= atomic_load_explicit(&fam->nseries, memory_order_acquire))
        return NULL;
    return fam->series[i];
}

lm_series *lm_family_overflow(lm_family *fam)
{
    return fam != NULL ? atomic_load_explicit(&fam->overflow, memory_order_acquire) : NULL;
}

lm_str lm_series_label_value(const lm_series *s, size_t i)
{
    if (s == NULL || i >= s->family->nlabels)
        return (lm_str){NULL, 0};
    return str_of(&s->values[i]);
}

int64_t lm_gauge_value(const lm_series *s)
{
    if (s == NULL || s->family->type != LM_GAUGE)
        return 0;
    return atomic_load_explicit(&((lm_series *)s)->gauge, memory_order_relaxed);
}

size_t lm_histogram_buckets(const lm_series *s, uint64_t *buckets, size_t cap)
{
    if (s == NULL || s->family->type != LM_HISTOGRAM)
        return 0;
    uint64_t b[LM_MAX_BOUNDS + 1], count, lo;
    int64_t hi;
    const lm_hproj *p = lm__family_proj(s->family);
    size_t n = p->n + 1;
    lm__histogram_read_proj(s, p, b, &count, &hi, &lo);
    if (buckets != NULL)
        memcpy(buckets, b, (cap < n ? cap : n) * sizeof *b);
    return n;
}

lm_http *lm_http_find(lm_registry *reg, const char *prefix)
{
    if (reg == NULL)
        return NULL;
    const char *p = prefix != NULL ? prefix : "";
    lm_http *found = NULL;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->nhttp && found == NULL; i++)
        if (strcmp(reg->https[i]->prefix.ptr, p) == 0)
            found = reg->https[i];
    pthread_mutex_unlock(&reg->lock);
    return found;
}

lm_family *lm_http_family_get(lm_http *http, lm_http_family which)
{
    if (http == NULL)
        return NULL;
    switch (which) {
    case LM_HTTP_REQUESTS:
        return http->requests;
    case LM_HTTP_DURATION:
        return atomic_load_explicit(&http->duration, memory_order_acquire);
    case LM_HTTP_BYTES:
        return http->bytes;
    case LM_HTTP_INFLIGHT:
        return http->inflight;
    case LM_HTTP_REQUEST_BYTES:
        return http->request_bytes;
    }
    return NULL;
}

lm_route *lm_http_route_at(lm_http *http, size_t i)
{
    if (http == NULL || i >= atomic_load_explicit(&http->nroutes, memory_order_acquire))
        return NULL;
    return http->routes[i];
}

lm_str lm_route_name(const lm_route *route)
{
    return route != NULL ? str_of(&route->name) : (lm_str){NULL, 0};
}
