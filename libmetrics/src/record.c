/*
 * Recording through series handles: the per-thread shard path for counters
 * and histograms, one shared atomic cell for gauges. A call with a NULL
 * handle or a handle of another type does nothing, so a host whose
 * registration failed keeps serving.
 */
#include "core.h"

void lm_counter_add(lm_series *s, uint64_t v)
{
    if (LM_UNLIKELY(s == NULL || s->family->type != LM_COUNTER))
        return;
    lm__cell_add(lm__shard(s->family->reg), s->slot, v);
}

void lm_gauge_add(lm_series *s, int64_t delta)
{
    if (LM_UNLIKELY(s == NULL || s->family->type != LM_GAUGE))
        return;
    atomic_fetch_add_explicit(&s->gauge, delta, memory_order_relaxed);
}

void lm_gauge_set(lm_series *s, int64_t v)
{
    if (LM_UNLIKELY(s == NULL || s->family->type != LM_GAUGE))
        return;
    atomic_store_explicit(&s->gauge, v, memory_order_relaxed);
}

int64_t *lm_gauge_cell(lm_series *s)
{
    if (s == NULL || s->family->type != LM_GAUGE)
        return NULL;
    return (int64_t *)&s->gauge;
}

void lm_histogram_observe(lm_series *s, int64_t v)
{
    if (LM_UNLIKELY(s == NULL || s->family->type != LM_HISTOGRAM))
        return;
    lm__histogram_add(lm__shard(s->family->reg), s, v);
}

uint64_t lm_series_count(const lm_series *s)
{
    if (s == NULL)
        return 0;
    const lm_family *f = s->family;
    switch (f->type) {
    case LM_COUNTER:
        return lm__cell_total(f->reg, s->slot);
    case LM_GAUGE:
        return (uint64_t)atomic_load_explicit(&((lm_series *)s)->gauge, memory_order_relaxed);
    case LM_HISTOGRAM: {
        uint64_t n = 0;
        for (const lm_hcells *c = lm__hcells(s); c != NULL; c = c->prev)
            for (uint32_t j = 0; j <= c->nb; j++)
                n += lm__cell_total(f->reg, c->slot + j);
        return n;
    }
    }
    return 0;
}
