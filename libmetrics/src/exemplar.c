/*
 * Exemplars: validation, the wait-free slot writer, the seqlock reader and
 * OpenMetrics rendering. Design and memory ordering: exemplar.h.
 */
#include "exemplar.h"
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct lm_exemplar_slot {
    /* Even: stable (0: never written); odd: a writer is in the slot. */
    _Alignas(LM_CACHELINE) _Atomic uint32_t seq;
    _Atomic uint32_t lens; /* name bytes << 16 | value bytes */
    _Atomic int64_t value;
    _Atomic int64_t unix_ns;
    _Atomic uint64_t words[LM_EXEMPLAR_WORDS];
} lm_exemplar_slot;

struct lm_exemplars {
    size_t n;
    lm_exemplar_slot slot[]; /* n slots, each on its own cache lines */
};

/* ------------------------------------------------------------ validation */

/* True if the 8 bytes of w are printable ASCII (0x20..0x7E): no high bit,
 * no byte below 0x20 ("has less than" bit trick, exact for bytes < 0x80),
 * no 0x7F. Request IDs are ASCII, so this checks them 8 bytes at a time. */
static inline bool printable_ascii8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    if (w & high)
        return false;
    uint64_t below20 = (w - ones * 0x20) & ~w & high;
    uint64_t x = w ^ (ones * 0x7F);
    uint64_t is7f = (x - ones) & ~x & high;
    return (below20 | is7f) == 0;
}

/* Characters in s[0..n) if it is strict UTF-8 (no overlongs, surrogates or
 * code points above U+10FFFF) without control characters; -1 otherwise. */
static long utf8_chars(const unsigned char *s, size_t n)
{
    long chars = 0;
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (printable_ascii8(w)) {
                i += 8;
                chars += 8;
                continue;
            }
        }
        unsigned char b = s[i];
        chars++;
        if (b < 0x20 || b == 0x7f)
            return -1;
        size_t bad, k = lm__utf8_seq(s + i, n - i, &bad);
        if (k == 0)
            return -1;
        i += k;
    }
    return chars;
}

int64_t lm__exemplar_time(const lm_exemplar *ex)
{
    if (ex->unix_ns > 0)
        return ex->unix_ns;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool lm__exemplar_prepare(const lm_exemplar *ex, int64_t unix_ns, lm_exemplar_prep *out)
{
    if (ex == NULL || ex->label_name == NULL || ex->label_value.ptr == NULL ||
        ex->label_value.len == 0)
        return false;
    const char *name = ex->label_name;
    size_t nl = strnlen(name, LM_EXEMPLAR_MAX_CHARS + 1);
    if (nl > LM_EXEMPLAR_MAX_CHARS || !lm_valid_label_name(name))
        return false;
    size_t vl = ex->label_value.len;
    /* Cheap bound first: more bytes than 128 characters can ever need. */
    if (vl > LM_EXEMPLAR_MAX_BYTES - nl)
        return false;
    long vc = utf8_chars((const unsigned char *)ex->label_value.ptr, vl);
    if (vc < 0 || (size_t)vc + nl > LM_EXEMPLAR_MAX_CHARS)
        return false;

    size_t total = nl + vl;
    out->lens = (uint32_t)(nl << 16 | vl);
    out->nwords = (uint32_t)((total + 7) / 8);
    out->words[out->nwords - 1] = 0; /* zero padding of the last word */
    memcpy(out->words, name, nl);
    memcpy((char *)out->words + nl, ex->label_value.ptr, vl);

    out->unix_ns = unix_ns;
    return true;
}

/* ------------------------------------------------------------- the slots */

lm_exemplar_home lm__exemplar_home(lm_series *s, int64_t v, size_t *idx)
{
    *idx = 0;
    switch (s->family->type) {
    case LM_HISTOGRAM: {
        lm_hcells *c = (lm_hcells *)lm__hcells(s);
        *idx = lm__bucket_index(c->ub, c->nb, v);
        return (lm_exemplar_home){&c->exemplars, (size_t)c->nb + 1};
    }
    case LM_COUNTER:
        return (lm_exemplar_home){&s->exemplars, 1};
    case LM_GAUGE:
        break;
    }
    return (lm_exemplar_home){&s->exemplars, 0};
}

/* First exemplar of a home: allocate its slots and publish them with one
 * CAS; a thread that loses the race frees its copy and uses the winner's. */
__attribute__((noinline, cold)) static struct lm_exemplars *exemplars_create(lm_exemplar_home h)
{
    size_t n = h.n;
    if (n == 0)
        return NULL;
    size_t bytes = sizeof(struct lm_exemplars) + n * sizeof(lm_exemplar_slot);
    bytes = (bytes + LM_CACHELINE - 1) / LM_CACHELINE * LM_CACHELINE;
    struct lm_exemplars *ex = aligned_alloc(LM_CACHELINE, bytes);
    if (ex == NULL)
        return NULL;
    ex->n = n;
    for (size_t i = 0; i < n; i++) {
        lm_exemplar_slot *sl = &ex->slot[i];
        atomic_init(&sl->seq, 0);
        atomic_init(&sl->lens, 0);
        atomic_init(&sl->value, 0);
        atomic_init(&sl->unix_ns, 0);
        for (size_t w = 0; w < LM_EXEMPLAR_WORDS; w++)
            atomic_init(&sl->words[w], 0);
    }
    struct lm_exemplars *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(h.slots, &expected, ex, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(ex);
        return expected;
    }
    return ex;
}

/* Whether an exemplar at time now may replace the one stored at last (0:
 * none yet). Not within LM_EXEMPLAR_MIN_INTERVAL_NS after it, and not
 * older unless by more than a second (the wall clock was stepped back;
 * waiting for it to catch up could freeze the slot for hours). Unsigned
 * differences: the times come from the host and may be anything. */
static inline bool exemplar_due(int64_t now, int64_t last)
{
    if (last == 0)
        return true;
    if (now >= last)
        return (uint64_t)now - (uint64_t)last >= LM_EXEMPLAR_MIN_INTERVAL_NS;
    return (uint64_t)last - (uint64_t)now > 1000000000u;
}

bool lm__exemplar_due(lm_exemplar_home h, size_t idx, int64_t unix_ns)
{
    struct lm_exemplars *ex = atomic_load_explicit(h.slots, memory_order_acquire);
    if (ex == NULL)
        return h.n > idx; /* first exemplar of the home */
    if (idx >= ex->n)
        return false;
    return exemplar_due(unix_ns,
                        atomic_load_explicit(&ex->slot[idx].unix_ns, memory_order_relaxed));
}

void lm__exemplar_store(lm_exemplar_home h, size_t idx, const lm_exemplar_prep *p, int64_t v)
{
    struct lm_exemplars *ex = atomic_load_explicit(h.slots, memory_order_acquire);
    if (LM_UNLIKELY(ex == NULL) && (ex = exemplars_create(h)) == NULL)
        return;
    if (idx >= ex->n)
        return;
    lm_exemplar_slot *sl = &ex->slot[idx];
    /* A read, not a write, for most requests to a hot bucket: the slot's
     * line stays shared between cores instead of bouncing on every
     * request (measured in lm_bench's two-thread exemplar rows). */
    if (!exemplar_due(p->unix_ns, atomic_load_explicit(&sl->unix_ns, memory_order_relaxed)))
        return;
    uint32_t q = atomic_load_explicit(&sl->seq, memory_order_relaxed);
    if (q & 1u)
        return; /* another writer is in the slot: skip, it is only "latest" */
    if (!atomic_compare_exchange_strong_explicit(&sl->seq, &q, q + 1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return; /* someone wrote a newer one meanwhile */
    /* The odd sequence must be visible before any of the data: a reader
     * that sees new data then sees the odd (or a later) sequence. */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&sl->lens, p->lens, memory_order_relaxed);
    atomic_store_explicit(&sl->value, v, memory_order_relaxed);
    atomic_store_explicit(&sl->unix_ns, p->unix_ns, memory_order_relaxed);
    for (uint32_t w = 0; w < p->nwords; w++)
        atomic_store_explicit(&sl->words[w], p->words[w], memory_order_relaxed);
    atomic_store_explicit(&sl->seq, q + 2, memory_order_release);
}

bool lm__exemplar_load(lm_exemplar_home h, size_t idx, lm_exemplar_copy *out)
{
    struct lm_exemplars *ex = atomic_load_explicit(h.slots, memory_order_acquire);
    if (ex == NULL || idx >= ex->n)
        return false;
    lm_exemplar_slot *sl = &ex->slot[idx];
    for (int attempt = 0; attempt < 4; attempt++) {
        uint32_t q1 = atomic_load_explicit(&sl->seq, memory_order_acquire);
        if (q1 == 0)
            return false; /* never written */
        if (q1 & 1u)
            continue;
        uint32_t lens = atomic_load_explicit(&sl->lens, memory_order_relaxed);
        size_t nl = lens >> 16, vl = lens & 0xFFFFu;
        if (nl + vl > LM_EXEMPLAR_MAX_BYTES) /* torn: the check below rejects it */
            nl = vl = 0;
        out->value = atomic_load_explicit(&sl->value, memory_order_relaxed);
        out->unix_ns = atomic_load_explicit(&sl->unix_ns, memory_order_relaxed);
        size_t nw = (nl + vl + 7) / 8;
        for (size_t w = 0; w < nw; w++) {
            uint64_t word = atomic_load_explicit(&sl->words[w], memory_order_relaxed);
            size_t k = nl + vl - w * 8 < 8 ? nl + vl - w * 8 : 8;
            memcpy(out->text + w * 8, &word, k);
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&sl->seq, memory_order_relaxed) == q1 && nl > 0) {
            out->name_len = nl;
            out->value_len = vl;
            return true;
        }
    }
    return false; /* written to continuously: show none this time */
}

bool lm__exemplar_bucket(const lm_hcells *c, const lm_hproj *p, size_t k, size_t *uj,
                         lm_exemplar_copy *best)
{
    lm_exemplar_home h = {(_Atomic(struct lm_exemplars *) *)&c->exemplars, (size_t)c->nb + 1};
    if (c->ub != p->lay_ub || c->nb != p->lay_n ||
        atomic_load_explicit(h.slots, memory_order_relaxed) == NULL)
        return false;
    lm_exemplar_copy cand;
    bool have = false;
    for (; *uj <= c->nb && p->map[*uj] == k; (*uj)++) {
        if (lm__exemplar_load(h, *uj, have ? &cand : best)) {
            if (have && cand.unix_ns > best->unix_ns)
                *best = cand;
            have = true;
        }
    }
    return have;
}

/* ------------------------------------------------------------- rendering */

size_t lm__exemplar_render(char *dst, const lm_exemplar_copy *c, double unit_scale)
{
    size_t n = 0;
    memcpy(dst + n, " # {", 4);
    n += 4;
    memcpy(dst + n, c->text, c->name_len);
    n += c->name_len;
    memcpy(dst + n, "=\"", 2);
    n += 2;
    n += lm__escape_label(dst + n, c->text + c->name_len, c->value_len);
    memcpy(dst + n, "\"} ", 3);
    n += 3;
    if (unit_scale == 0)
        n += lm__fmt_i64(dst + n, c->value);
    else
        n += lm__fmt_scaled(dst + n, 64, c->value < 0 ? -1 : 0, (uint64_t)c->value, unit_scale);
    dst[n++] = ' ';
    /* Seconds since the epoch, exact to the nanosecond (OpenMetrics
     * timestamps are seconds). */
    n += lm__fmt_scaled(dst + n, 64, 0, (uint64_t)c->unix_ns, 1e9);
    return n;
}

void lm__exemplars_free(_Atomic(struct lm_exemplars *) *slots)
{
    free(atomic_load_explicit(slots, memory_order_relaxed));
}
