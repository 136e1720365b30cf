/*
 * Registry lifetime: resolves options, owns the lock, the shards and every
 * family and HTTP set, and frees them all at once.
 */
#include "core.h"
#include "native.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Slot indices are uint32_t; the whole reservation must also stay far below
 * the 47-bit user address space (every shard is one mapping). */
#define LM_MAX_RESERVATION ((uint64_t)1 << 44)
/* A claim scans the shards linearly; more shards than this is not a
 * thread count any server has. */
#define LM_MAX_SHARDS_LIMIT 4096

const char *lm_status_string(lm_status code)
{
    switch (code) {
    case LM_OK:
        return "ok";
    case LM_ERR_INVALID:
        return "invalid argument";
    case LM_ERR_NOMEM:
        return "out of memory";
    case LM_ERR_EXISTS:
        return "already registered with another shape";
    case LM_ERR_LIMIT:
        return "capacity exhausted";
    case LM_ERR_IO:
        return "writer failed";
    }
    return "unknown status";
}

const char *lm_version(void)
{
    return LM_VERSION_STRING;
}

static int resolve_options(const lm_registry_options *in, lm_registry_options *out, lm_error *err)
{
    lm_registry_options o = {0};
    if (in != NULL)
        o = *in;
    if (o.max_families == 0)
        o.max_families = LM_DEFAULT_MAX_FAMILIES;
    if (o.slot_capacity == 0)
        o.slot_capacity = LM_DEFAULT_SLOT_CAPACITY;
    if (o.max_shards == 0)
        o.max_shards = LM_DEFAULT_MAX_SHARDS;
    if (o.max_label_value_len == 0)
        o.max_label_value_len = LM_DEFAULT_MAX_LABEL_VALUE_LEN;
    if (o.native_capacity == 0)
        o.native_capacity = LM_DEFAULT_NATIVE_CAPACITY;

    /* Cell indices are uint32_t over both regions of a shard. */
    if (o.slot_capacity > UINT32_MAX || o.native_capacity > UINT32_MAX - o.slot_capacity) {
        lm__set_error(err, LM_ERR_INVALID,
                      "slot_capacity %zu + native_capacity %zu exceeds the maximum of %u cells",
                      o.slot_capacity, o.native_capacity, (unsigned)UINT32_MAX);
        return -1;
    }
    if ((uint64_t)(o.slot_capacity + o.native_capacity) * sizeof(lm_cell) *
            ((uint64_t)o.max_shards + 1) >
        LM_MAX_RESERVATION) {
        lm__set_error(err, LM_ERR_INVALID,
                      "(slot_capacity %zu + native_capacity %zu) x (max_shards %u + 1) x 8 "
                      "bytes exceeds the %llu GiB address space budget",
                      o.slot_capacity, o.native_capacity, o.max_shards,
                      (unsigned long long)(LM_MAX_RESERVATION >> 30));
        return -1;
    }
    if (o.max_shards > LM_MAX_SHARDS_LIMIT) {
        lm__set_error(err, LM_ERR_INVALID, "max_shards %u exceeds the maximum of %u", o.max_shards,
                      (unsigned)LM_MAX_SHARDS_LIMIT);
        return -1;
    }
    if (o.max_families > ((size_t)1 << 20)) {
        lm__set_error(err, LM_ERR_INVALID, "max_families %zu exceeds the maximum of %zu",
                      o.max_families, (size_t)1 << 20);
        return -1;
    }
    *out = o;
    return 0;
}

int lm_registry_options_check(const lm_registry_options *opts, lm_error *err)
{
    lm_registry_options o;
    return resolve_options(opts, &o, err);
}

lm_registry *lm_registry_new(const lm_registry_options *opts, lm_error *err)
{
    lm_registry_options o;
    if (resolve_options(opts, &o, err) != 0)
        return NULL;

    lm_registry *reg = calloc(1, sizeof *reg);
    if (reg == NULL)
        goto nomem;
    reg->opts = o;
    reg->families = calloc(o.max_families, sizeof *reg->families);
    reg->https = calloc(LM_MAX_HTTP, sizeof *reg->https);
    if (reg->families == NULL || reg->https == NULL) {
        free(reg->families);
        free(reg->https);
        free(reg);
        goto nomem;
    }
    if (pthread_mutex_init(&reg->lock, NULL) != 0) {
        free(reg->families);
        free(reg->https);
        free(reg);
        lm__set_error(err, LM_ERR_NOMEM, "cannot initialise the registry mutex");
        return NULL;
    }
    if (pthread_cond_init(&reg->grown, NULL) != 0) {
        pthread_mutex_destroy(&reg->lock);
        free(reg->families);
        free(reg->https);
        free(reg);
        lm__set_error(err, LM_ERR_NOMEM, "cannot initialise the registry condition variable");
        return NULL;
    }
    if (lm__shards_init(reg, err) != 0) {
        pthread_cond_destroy(&reg->grown);
        pthread_mutex_destroy(&reg->lock);
        free(reg->families);
        free(reg->https);
        free(reg);
        return NULL;
    }
    atomic_init(&reg->native_used, LM_NATIVE_ARENA_RESERVED);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    reg->created_mono_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    return reg;

nomem:
    lm__set_error(err, LM_ERR_NOMEM, "out of memory allocating a registry");
    return NULL;
}

void lm_registry_free(lm_registry *reg)
{
    if (reg == NULL)
        return;
    /* Shards first: deleting the key stops destructors, so threads that
     * outlive the registry never touch its memory. */
    lm__shards_free(reg);
    for (size_t i = 0; i < reg->nhttp; i++)
        lm__http_free(reg->https[i]);
    size_t nf = atomic_load_explicit(&reg->nfamilies, memory_order_relaxed);
    for (size_t i = 0; i < nf; i++)
        lm__family_free(reg->families[i]);
    free(reg->https);
    free(reg->families);
    pthread_cond_destroy(&reg->grown);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}
