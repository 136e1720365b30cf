/*
 * Per-thread shards (see the memory model at the top of internal.h) and the
 * scrape-side sums over them.
 */
#include "core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static lm_cell *map_cells(size_t ncells)
{
    /* NORESERVE + lazily touched pages: a shard costs address space, and
     * memory only for the pages its thread's series actually live in. */
    void *p = mmap(NULL, ncells * sizeof(lm_cell), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : (lm_cell *)p;
}

/* Key destructor, run by glibc when a thread that recorded exits. The
 * release store pairs with the next claimer's acquire CAS, so that claimer's
 * load+store continues from this thread's last values. */
static void shard_release(void *p)
{
    lm_shard *sh = p;
    if (sh->exclusive)
        atomic_store_explicit(&sh->owned, false, memory_order_release);
}

int lm__shards_init(lm_registry *reg, lm_error *err)
{
    unsigned n = reg->opts.max_shards;
    reg->shards = calloc(n, sizeof *reg->shards);
    if (reg->shards == NULL) {
        lm__set_error(err, LM_ERR_NOMEM, "out of memory allocating %u shard descriptors", n);
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        reg->shards[i].exclusive = true;
        reg->shards[i].reg = reg;
        atomic_init(&reg->shards[i].owned, false);
    }
    /* The shared shard is mapped now rather than on first use: the scraper
     * reads its pointer without a lock, and a mapping that never changes
     * needs no publication protocol. Untouched, it costs no memory. */
    reg->shared.exclusive = false;
    reg->shared.reg = reg;
    atomic_init(&reg->shared.owned, false);
    reg->shared.cells = map_cells(reg->opts.slot_capacity + reg->opts.native_capacity);
    if (reg->shared.cells == NULL) {
        lm__set_error(err, LM_ERR_NOMEM, "cannot reserve %zu bytes for the shared shard (%s)",
                      (reg->opts.slot_capacity + reg->opts.native_capacity) * sizeof(lm_cell),
                      strerror(errno));
        free(reg->shards);
        return -1;
    }
    atomic_init(&reg->shards_used, 0);
    int rc = pthread_key_create(&reg->key, shard_release);
    if (rc != 0) {
        lm__set_error(err, LM_ERR_LIMIT, "cannot create the per-thread shard key (%s)",
                      strerror(rc));
        munmap(reg->shared.cells,
               (reg->opts.slot_capacity + reg->opts.native_capacity) * sizeof(lm_cell));
        free(reg->shards);
        return -1;
    }
    return 0;
}

void lm__shards_free(lm_registry *reg)
{
    pthread_key_delete(reg->key);
    size_t bytes = (reg->opts.slot_capacity + reg->opts.native_capacity) * sizeof(lm_cell);
    unsigned used = atomic_load_explicit(&reg->shards_used, memory_order_relaxed);
    for (unsigned i = 0; i < used; i++)
        if (reg->shards[i].cells != NULL)
            munmap(reg->shards[i].cells, bytes);
    munmap(reg->shared.cells, bytes);
    free(reg->shards);
}

/* Once per thread per registry. Claims are serialised by reg->lock so that
 * shards are mapped strictly in index order: shards [0, shards_used) are
 * always mapped, and a scraper that acquire-loads shards_used only ever
 * reads pointers written before it was raised. */
lm_shard *lm__shard_claim(lm_registry *reg)
{
    lm_shard *sh = NULL;
    pthread_mutex_lock(&reg->lock);
    unsigned used = atomic_load_explicit(&reg->shards_used, memory_order_relaxed);
    for (unsigned i = 0; i < reg->opts.max_shards; i++) {
        bool expect = false;
        if (!atomic_compare_exchange_strong_explicit(&reg->shards[i].owned, &expect, true,
                                                     memory_order_acquire, memory_order_relaxed))
            continue;
        if (i >= used) { /* i == used: the lowest never-used shard */
            lm_cell *cells = map_cells(reg->opts.slot_capacity + reg->opts.native_capacity);
            if (cells == NULL) {
                atomic_store_explicit(&reg->shards[i].owned, false, memory_order_relaxed);
                break; /* out of address space: fall back to the shared shard */
            }
            reg->shards[i].cells = cells;
            atomic_store_explicit(&reg->shards_used, i + 1, memory_order_release);
        }
        sh = &reg->shards[i];
        break;
    }
    pthread_mutex_unlock(&reg->lock);

    if (sh == NULL)
        sh = &reg->shared;
    if (pthread_setspecific(reg->key, sh) != 0 && sh->exclusive) {
        /* Without the key no destructor would ever free the shard: give it
         * back and use the shared one (exact, just slower; the next record
         * tries again). */
        atomic_store_explicit(&sh->owned, false, memory_order_release);
        sh = &reg->shared;
    }
    return sh;
}

uint64_t lm__cell_total(const lm_registry *creg, uint32_t cell)
{
    lm_registry *reg = (lm_registry *)creg; /* atomic loads want non-const */
    unsigned n = atomic_load_explicit(&reg->shards_used, memory_order_acquire);
    uint64_t total = atomic_load_explicit(&reg->shared.cells[cell], memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        total += atomic_load_explicit(&reg->shards[i].cells[cell], memory_order_relaxed);
    return total;
}

static void add_shard(const lm_cell *ccells, uint32_t base, size_t nb, uint64_t *buckets,
                      uint64_t *lo, uint64_t *hi)
{
    lm_cell *cells = (lm_cell *)ccells;
    /* Acquire: pairs with the record's release store of its bucket, so
     * the native cells read after this count at least what these do
     * (native.h). */
    for (size_t j = 0; j <= nb; j++)
        buckets[j] += atomic_load_explicit(&cells[base + j], memory_order_acquire);
    uint64_t slo = atomic_load_explicit(&cells[base + nb + 1], memory_order_relaxed);
    uint64_t shi = atomic_load_explicit(&cells[base + nb + 2], memory_order_relaxed);
    uint64_t nlo = *lo + slo;
    *hi += shi + (nlo < *lo);
    *lo = nlo;
}

/* Adds one cells' non-cumulative union buckets (tmp, c->nb + 1 of them)
 * into p's exposed buckets: through p's precomputed map when c is of the
 * layout p was made for, else by comparing bounds (older layouts; a newer
 * one that a growth published after p was loaded). */
static void fold_into(const lm_hproj *p, const lm_hcells *c, const uint64_t *tmp,
                      uint64_t *buckets)
{
    size_t nb = c->nb;
    if (c->ub == p->lay_ub && nb == p->lay_n) {
        for (size_t j = 0; j <= nb; j++)
            buckets[p->map[j]] += tmp[j];
        return;
    }
    size_t k = 0;
    for (size_t j = 0; j < nb; j++) {
        while (k < p->n && p->ub[k] < c->ub[j])
            k++;
        buckets[k] += tmp[j];
    }
    buckets[p->n] += tmp[nb];
}

const lm_hcells *lm__histogram_read_proj(const lm_series *s, const lm_hproj *p,
                                         uint64_t *buckets, uint64_t *count, int64_t *sum_hi,
                                         uint64_t *sum_lo)
{
    lm_registry *reg = s->family->reg;
    uint64_t lo = 0, hi = 0;
    uint64_t tmp[LM_MAX_UNION_BOUNDS + 1];
    memset(buckets, 0, (p->n + 1) * sizeof *buckets);

    unsigned n = atomic_load_explicit(&reg->shards_used, memory_order_acquire);
    const lm_hcells *cur = lm__hcells(s);
    for (const lm_hcells *c = cur; c != NULL; c = c->prev) {
        memset(tmp, 0, ((size_t)c->nb + 1) * sizeof *tmp);
        add_shard(reg->shared.cells, c->slot, c->nb, tmp, &lo, &hi);
        for (unsigned i = 0; i < n; i++)
            add_shard(reg->shards[i].cells, c->slot, c->nb, tmp, &lo, &hi);
        fold_into(p, c, tmp, buckets);
    }

    /* _count is the sum of the buckets read in this same pass, so the +Inf
     * bucket equals _count whatever the writers do meanwhile. */
    uint64_t total = 0;
    for (size_t j = 0; j <= p->n; j++)
        total += buckets[j];
    *count = total;
    *sum_lo = lo;
    *sum_hi = (int64_t)hi;
    return cur;
}

void lm__histogram_read(const lm_series *s, uint64_t *buckets, uint64_t *count, int64_t *sum_hi,
                        uint64_t *sum_lo)
{
    lm__histogram_read_proj(s, lm__family_proj(s->family), buckets, count, sum_hi, sum_lo);
}
