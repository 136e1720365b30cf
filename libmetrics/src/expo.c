/*
 * Exposition: a resumable cursor that renders the registry as Prometheus
 * text 0.0.4 or OpenMetrics 1.0.0 one unit (one line) at a time into a
 * small staging buffer, then copies it out across lm_expo_read calls. The
 * body is never built in memory, whatever the number of series (the same
 * shape as HAProxy's promex applet: a state machine that resumes where the
 * output buffer filled up).
 *
 * What one pass sees:
 *  - Families: reg->nfamilies and every family's retired flag are sampled
 *    ONCE in lm_expo_begin, between two equal even values of the
 *    registry's retire_seq (lm__families_snapshot), so the snapshot holds
 *    exactly one live family per name even while a reload swaps them.
 *    Families registered after begin show up in the next scrape.
 *  - Series: each family's nseries is acquire-loaded when the cursor reaches
 *    the family; series created before that point are included, later ones
 *    wait for the next scrape. The family's overflow series (never in
 *    series[]) comes last if it exists when the cursor gets there.
 *  - Histograms: each series is read once (lm__histogram_read) when the
 *    cursor starts it, so its buckets are cumulative and +Inf equals _count
 *    even while writers record.
 *
 * Order of the body: user families (registration order, skipping retired
 * ones and ones without series), then libmetrics_series_folded_total with
 * one sample per family exposed above, then process_* (LM_EXPO_PROCESS),
 * then "# EOF" for OpenMetrics.
 *
 * LM_FORMAT_PROTOBUF walks the same phases, but a unit is a whole family:
 * one length-prefixed MetricFamily message (expo_pb.c), packed into the
 * staging buffer behind 10 bytes of room for the varint prefix, which is
 * written right-aligned there once the length is known (the unit then
 * starts at `off`). The buffer grows to the largest family's message.
 */
#include "internal.h"
#include "exemplar.h"
#include "expo_pb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LM_EXPO_CHUNK (16 * 1024)
#define FOLDED_NAME "libmetrics_series_folded_total"
#define FOLDED_HELP "Label sets folded into a family's overflow series because its series cap was reached"
/* Longest rendered number: lm__fmt_scaled's exact form is at most 60 bytes. */
#define NUM_MAX 64
#define LE_MAX 40 /* sizeof lm_hproj.le[i] */

enum phase {
    PH_FAMILY,       /* find the next family to expose */
    PH_FAMILY_META,  /* its HELP/TYPE lines */
    PH_SERIES,       /* its series, one line (histograms: several) per unit */
    PH_FOLDED_META,  /* libmetrics_series_folded_total HELP/TYPE */
    PH_FOLDED,       /* one sample per exposed family */
    PH_PROCESS,      /* process_* metrics: meta lines and a sample each */
    PH_EOF,
    PH_DONE
};

/* client_golang's process collector names and help texts, so existing
 * dashboards and alerts work unchanged. */
enum proc_value { P_CPU, P_RESIDENT, P_VIRTUAL, P_OPEN_FDS, P_MAX_FDS, P_START, P_THREADS, P_COUNT };
static const struct {
    const char *name;
    lm_type type;
    const char *help;
} k_process[P_COUNT] = {
    [P_CPU] = {"process_cpu_seconds_total", LM_COUNTER,
               "Total user and system CPU time spent in seconds."},
    [P_RESIDENT] = {"process_resident_memory_bytes", LM_GAUGE, "Resident memory size in bytes."},
    [P_VIRTUAL] = {"process_virtual_memory_bytes", LM_GAUGE, "Virtual memory size in bytes."},
    [P_OPEN_FDS] = {"process_open_fds", LM_GAUGE, "Number of open file descriptors."},
    [P_MAX_FDS] = {"process_max_fds", LM_GAUGE, "Maximum number of open file descriptors."},
    [P_START] = {"process_start_time_seconds", LM_GAUGE,
                 "Start time of the process since unix epoch in seconds."},
    [P_THREADS] = {"process_threads", LM_GAUGE, "Number of OS threads in the process."},
};

/* Per family of the snapshot. */
enum { FAM_SKIP = 0, FAM_LIVE = 1, FAM_EXPOSED = 2 };

struct lm_expo {
    lm_registry *reg;
    lm_format fmt;
    unsigned flags;
    bool failed;            /* the stream was cut: see fail_code */
    lm_status fail_code;    /* LM_ERR_NOMEM (growing the buffer) or LM_ERR_LIMIT (a bug) */
    uint64_t out;           /* bytes handed out by lm_expo_read */
    enum phase phase;
    unsigned step;          /* meta line index, or unit index within a histogram series */

    size_t nfam;            /* families in the snapshot */
    unsigned char *famstate;
    size_t fi;              /* current family (PH_FAMILY..PH_SERIES, PH_FOLDED) */
    const lm_family *fam;
    size_t nseries;         /* fam's series count, loaded when fam was reached */
    size_t si;              /* next series; == nseries: the overflow series */
    const lm_series *cur;   /* series being rendered (histograms span units) */
    size_t nexposed;
    const lm_hproj *proj;   /* histograms: fam's exposed buckets, loaded once per family */

    /* The current histogram series, read once. */
    const lm_hcells *hc;    /* its current cells (exemplars) */
    size_t uj;              /* next union bucket of hc whose exemplar may show */
    uint64_t buckets[LM_MAX_BOUNDS + 1];
    uint64_t cumulative;
    uint64_t hcount;
    int64_t sum_hi;
    uint64_t sum_lo;
    bool with_sum;          /* expose _sum and _count (see start_histogram) */

    lm_process_stats proc;
    unsigned proc_mask;     /* process metrics to expose (not shadowed) */
    unsigned pi;            /* current process metric */

    char *buf;              /* staging buffer: one unit */
    size_t cap, len, off;

    lm_pb *pb;              /* LM_FORMAT_PROTOBUF: message scratch */

    /* The current series' escaped label pairs (`a="x",b="y"`, no braces),
     * rendered once when the series starts and copied into each of its
     * lines: a histogram has nbounds + 3 of them, and re-reading and
     * re-escaping the values for each was half the scrape. */
    char *labels;
    size_t labels_cap, labels_len;
};

const char *lm_format_content_type(lm_format fmt)
{
    switch (fmt) {
    case LM_FORMAT_TEXT:
        return "text/plain; version=0.0.4; charset=utf-8";
    case LM_FORMAT_OPENMETRICS:
        return "application/openmetrics-text; version=1.0.0; charset=utf-8";
    case LM_FORMAT_PROTOBUF:
        return "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
               "encoding=delimited";
    }
    return NULL; /* not a format: the caller passed a value outside the enum */
}

/* ------------------------------------------------------ bounded writer */

/* Every allocation of the cursor: realloc, or NULL where the registry's
 * test-only fault hook says this one fails. */
static void *expo_realloc(const lm_registry *reg, void *p, size_t n)
{
    return lm__fault(reg, LM__FAULT_ALLOC) ? NULL : realloc(p, n);
}

static void *expo_calloc(const lm_registry *reg, size_t n, size_t size)
{
    return lm__fault(reg, LM__FAULT_ALLOC) ? NULL : calloc(n, size);
}

/* expo_realloc for the protobuf scratch (lm_pb_alloc). */
static void *pb_alloc(void *reg, void *p, size_t n)
{
    return expo_realloc(reg, p, n);
}

/* Cuts the stream: the unit being rendered is dropped and every later
 * lm_expo_read returns 0; lm_expo_status tells why. */
static void fail(lm_expo *e, lm_status code)
{
    if (!e->failed)
        e->fail_code = code;
    e->failed = true;
}

/* Makes room for a unit of up to `need` bytes. lm_expo_begin sizes the
 * buffer from the registry's limits so this does not allocate in practice;
 * it is the guarantee that a value longer than those limits (should the
 * core ever admit one) still renders whole instead of being cut. */
static void ensure(lm_expo *e, size_t need)
{
    if (need <= e->cap || e->failed)
        return;
    char *nb = expo_realloc(e->reg, e->buf, need);
    if (nb == NULL) {
        fail(e, LM_ERR_NOMEM);
        return;
    }
    e->buf = nb;
    e->cap = need;
}

/* Appends refuse (and mark the cursor failed) instead of overrunning;
 * ensure() before each unit makes that unreachable. */
static void overrun(lm_expo *e)
{
    fail(e, LM_ERR_LIMIT);
}

static void put(lm_expo *e, const char *s, size_t n)
{
    if (n > e->cap - e->len) {
        overrun(e);
        return;
    }
    memcpy(e->buf + e->len, s, n);
    e->len += n;
}

static void puts_(lm_expo *e, const char *s)
{
    put(e, s, strlen(s));
}

static void put_label_value(lm_expo *e, const char *s, size_t n)
{
    if (n > (e->cap - e->len) / 2) {
        overrun(e);
        return;
    }
    e->len += lm__escape_label(e->buf + e->len, s, n);
}

static void put_help(lm_expo *e, const char *s, size_t n)
{
    if (n > (e->cap - e->len) / 2) {
        overrun(e);
        return;
    }
    e->len += lm__escape_help(e->buf + e->len, s, n, e->fmt);
}

static void put_u64(lm_expo *e, uint64_t v)
{
    char num[NUM_MAX];
    put(e, num, lm__fmt_u64(num, v));
}

/* Appends an exemplar copied from a slot, between a sample's value and its
 * line feed. */
static void put_exemplar_copy(lm_expo *e, const lm_exemplar_copy *c, double unit_scale)
{
    ensure(e, e->len + LM_EXEMPLAR_RENDER_MAX);
    if (e->failed)
        return;
    if (LM_EXEMPLAR_RENDER_MAX > e->cap - e->len) {
        overrun(e);
        return;
    }
    e->len += lm__exemplar_render(e->buf + e->len, c, unit_scale);
}

/* OpenMetrics only: a counter's latest exemplar. Text 0.0.4 has no
 * exemplars. */
static void put_counter_exemplar(lm_expo *e, const lm_series *s)
{
    lm_exemplar_home h = {&((lm_series *)s)->exemplars, 1};
    lm_exemplar_copy c;
    if (e->fmt == LM_FORMAT_OPENMETRICS &&
        atomic_load_explicit(h.slots, memory_order_relaxed) != NULL && lm__exemplar_load(h, 0, &c))
        put_exemplar_copy(e, &c, 0);
}

/* OpenMetrics only: the newest exemplar among the union buckets of the
 * current histogram series' cells that exposed bucket k adds up (each
 * within k's range). Cells of another layout than the projection's (a
 * growth raced this scrape) show none this time. */
static void put_bucket_exemplar(lm_expo *e, size_t k)
{
    lm_exemplar_copy best;
    if (e->fmt == LM_FORMAT_OPENMETRICS && lm__exemplar_bucket(e->hc, e->proj, k, &e->uj, &best))
        put_exemplar_copy(e, &best, e->fam->unit_scale);
}

/* ----------------------------------------------------------- rendering */

static bool is_om(const lm_expo *e)
{
    return e->fmt == LM_FORMAT_OPENMETRICS;
}

/* The family name in HELP/TYPE lines: OpenMetrics names a counter without
 * its "_total" (the core guarantees the suffix; a name without it is used
 * as is and the sample gets "_total" appended). */
static size_t meta_name_len(const lm_expo *e, const char *name, size_t len, lm_type type)
{
    if (is_om(e) && type == LM_COUNTER && len > 6 && memcmp(name + len - 6, "_total", 6) == 0)
        return len - 6;
    return len;
}

/* Counter sample name in OpenMetrics when the registered name lacks
 * "_total" (defensive; see meta_name_len). */
static const char *counter_suffix(const lm_expo *e, const char *name, size_t len, lm_type type)
{
    if (is_om(e) && type == LM_COUNTER && !(len > 6 && memcmp(name + len - 6, "_total", 6) == 0))
        return "_total";
    return "";
}

/* Meta line number `step` (0 or 1) of a family: text puts HELP first as
 * client_golang does, OpenMetrics recommends TYPE, UNIT, HELP. An empty
 * help renders no HELP line (OpenMetrics treats an empty one as absent). */
static void render_meta(lm_expo *e, unsigned step, const char *name, size_t len, lm_type type,
                        const char *help, size_t hlen)
{
    bool help_line = is_om(e) ? step == 1 : step == 0;
    size_t mlen = meta_name_len(e, name, len, type);
    ensure(e, sizeof "# HELP  histogram\n" + mlen + 2 * hlen);
    if (help_line) {
        if (hlen == 0)
            return;
        puts_(e, "# HELP ");
        put(e, name, mlen);
        put(e, " ", 1);
        put_help(e, help, hlen);
        put(e, "\n", 1);
    } else {
        puts_(e, "# TYPE ");
        put(e, name, mlen);
        put(e, " ", 1);
        puts_(e, lm__type_name(type));
        put(e, "\n", 1);
    }
}

/* Renders s's label pairs into e->labels. lm_expo_begin sizes that buffer
 * from the registry's limits; growing it is the same guarantee as
 * ensure()'s. */
static void start_labels(lm_expo *e, const lm_family *f, const lm_series *s)
{
    size_t need = 0;
    for (size_t i = 0; i < f->nlabels; i++)
        need += f->label_names[i].len + sizeof ",=\"\"" + 2 * s->values[i].len;
    e->labels_len = 0;
    if (need > e->labels_cap) {
        char *nb = expo_realloc(e->reg, e->labels, need);
        if (nb == NULL) {
            fail(e, LM_ERR_NOMEM);
            return;
        }
        e->labels = nb;
        e->labels_cap = need;
    }
    char *p = e->labels;
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i)
            *p++ = ',';
        memcpy(p, f->label_names[i].ptr, f->label_names[i].len);
        p += f->label_names[i].len;
        *p++ = '=';
        *p++ = '"';
        p += lm__escape_label(p, s->values[i].ptr, s->values[i].len);
        *p++ = '"';
    }
    e->labels_len = (size_t)(p - e->labels);
}

/* name + suffix + {labels[,le="..."]} + " " (the value follows), the
 * labels from start_labels. */
static void render_sample_head(lm_expo *e, const lm_family *f, const char *suffix, const char *le)
{
    size_t slen = strlen(suffix);
    ensure(e, f->name.len + slen + e->labels_len + sizeof "{,le=\"\"} \n" + LE_MAX + NUM_MAX);
    put(e, f->name.ptr, f->name.len);
    put(e, suffix, slen);
    if (f->nlabels > 0 || le) {
        put(e, "{", 1);
        put(e, e->labels, e->labels_len);
        if (le) {
            if (f->nlabels)
                put(e, ",", 1);
            put(e, "le=\"", 4);
            puts_(e, le);
            put(e, "\"", 1);
        }
        put(e, "}", 1);
    }
    put(e, " ", 1);
}

/* OpenMetrics histograms: a sum is a counter, so it must not be negative,
 * and a family with negative bucket bounds must not expose one at all;
 * the parser then also refuses a _count without _sum. Such series expose
 * their buckets only (the +Inf bucket carries the count). Text 0.0.4 has no
 * such rule and always gets _sum and _count. */
static void start_histogram(lm_expo *e, const lm_series *s)
{
    e->hc = lm__histogram_read_proj(s, e->proj, e->buckets, &e->hcount, &e->sum_hi, &e->sum_lo);
    e->uj = 0;
    e->cumulative = 0;
    bool negative_bounds = e->proj->n > 0 && e->proj->bounds[0] < 0;
    e->with_sum = !is_om(e) || (!negative_bounds && e->sum_hi >= 0);
}

/* One unit of the current histogram series; false when it is finished. */
static bool render_histogram_unit(lm_expo *e)
{
    const lm_family *f = e->fam;
    size_t nb = e->proj->n;
    char num[NUM_MAX];
    if (e->step <= nb) {
        e->cumulative += e->buckets[e->step];
        render_sample_head(e, f, "_bucket", e->step < nb ? e->proj->le[e->step] : "+Inf");
        put_u64(e, e->cumulative);
        put_bucket_exemplar(e, e->step);
        put(e, "\n", 1);
        e->step++;
        return true;
    }
    if (!e->with_sum || e->step > nb + 2)
        return false;
    if (e->step == nb + 1) {
        render_sample_head(e, f, "_sum", NULL);
        put(e, num, lm__fmt_scaled(num, sizeof num, e->sum_hi, e->sum_lo, f->unit_scale));
    } else {
        render_sample_head(e, f, "_count", NULL);
        put_u64(e, e->hcount);
    }
    put(e, "\n", 1);
    e->step++;
    return true;
}

/* The next series of the current family, in creation order, then the
 * overflow series; NULL when the family is done. */
static const lm_series *next_series(lm_expo *e)
{
    if (e->si < e->nseries) {
        /* Series structs and their value arrays are separate allocations,
         * so a large family is a pointer chase through cold lines: fetch the
         * struct two ahead and the values of the next one (whose struct the
         * previous call fetched) while this one renders. */
        lm_series *const *ser = e->fam->series;
        if (e->si + 2 < e->nseries)
            __builtin_prefetch(ser[e->si + 2]);
        if (e->si + 1 < e->nseries)
            __builtin_prefetch(ser[e->si + 1]->values);
        return ser[e->si++];
    }
    if (e->si == e->nseries) {
        e->si++;
        return atomic_load_explicit(&((lm_family *)e->fam)->overflow, memory_order_acquire);
    }
    return NULL;
}

/* One unit of the current family's series; false when the family is done. */
static bool render_series_unit(lm_expo *e)
{
    const lm_family *f = e->fam;
    for (;;) {
        if (e->cur == NULL) {
            e->cur = next_series(e);
            if (e->cur == NULL)
                return false;
            e->step = 0;
            start_labels(e, f, e->cur);
            if (f->type == LM_HISTOGRAM)
                start_histogram(e, e->cur);
        }
        if (f->type == LM_HISTOGRAM) {
            if (render_histogram_unit(e))
                return true;
            e->cur = NULL;
            continue;
        }
        char num[NUM_MAX];
        size_t n;
        if (f->type == LM_COUNTER) {
            render_sample_head(e, f, counter_suffix(e, f->name.ptr, f->name.len, f->type),
                               NULL);
            n = lm__fmt_u64(num, lm__cell_total(f->reg, e->cur->slot));
        } else {
            render_sample_head(e, f, "", NULL);
            n = lm__fmt_i64(num, atomic_load_explicit(&((lm_series *)e->cur)->gauge,
                                                      memory_order_relaxed));
        }
        put(e, num, n);
        if (f->type == LM_COUNTER)
            put_counter_exemplar(e, e->cur);
        put(e, "\n", 1);
        e->cur = NULL;
        return true;
    }
}

/* Integral gauges (bytes, descriptors, threads) as integers; anything else
 * (fractions, RLIM_INFINITY's 2^64-1) as a canonical double. */
static void put_process_value(lm_expo *e, double v)
{
    char num[NUM_MAX];
    if (v >= 0 && v < 9007199254740992.0 && v == (double)(uint64_t)v)
        put(e, num, lm__fmt_u64(num, (uint64_t)v));
    else
        put(e, num, lm__fmt_double(num, v));
}

static double process_value(const lm_process_stats *p, unsigned i)
{
    switch ((enum proc_value)i) {
    case P_CPU:
        return p->cpu_seconds;
    case P_RESIDENT:
        return p->resident_bytes;
    case P_VIRTUAL:
        return p->virtual_bytes;
    case P_OPEN_FDS:
        return p->open_fds;
    case P_MAX_FDS:
        return p->max_fds;
    case P_START:
        return p->start_time_seconds;
    case P_THREADS:
    case P_COUNT:
        break;
    }
    return p->threads;
}

/* ------------------------------------------------------------ protobuf */

static bool is_pb(const lm_expo *e)
{
    return e->fmt == LM_FORMAT_PROTOBUF;
}

/* Varint room in front of a protobuf unit (any length fits in 10). */
#define PB_PREFIX 10

static uint8_t *pb_reserve(void *ctx, size_t n)
{
    lm_expo *e = ctx;
    ensure(e, e->len + n);
    if (e->failed || n > e->cap - e->len)
        return NULL;
    uint8_t *p = (uint8_t *)e->buf + e->len;
    e->len += n;
    return p;
}

/* What a protobuf unit renders. */
enum pb_unit { PB_FAMILY, PB_FOLDED, PB_PROCESS };

/* One length-prefixed MetricFamily as the current unit. */
static void pb_unit(lm_expo *e, enum pb_unit what)
{
    ensure(e, PB_PREFIX);
    if (e->failed)
        return;
    e->len = PB_PREFIX;
    lm_pbout out = {e, pb_reserve};
    int rc;
    switch (what) {
    case PB_FAMILY:
        rc = lm__pb_family(e->pb, e->fam, e->nseries, e->proj, out);
        break;
    case PB_FOLDED:
        rc = lm__pb_folded(e->pb, FOLDED_NAME, FOLDED_HELP, e->reg, e->famstate, FAM_EXPOSED,
                           e->nfam, out);
        break;
    case PB_PROCESS:
    default:
        rc = lm__pb_single(e->pb, k_process[e->pi].name, k_process[e->pi].type,
                           k_process[e->pi].help, process_value(&e->proc, e->pi), out);
        break;
    }
    if (rc != 0) {
        fail(e, LM_ERR_NOMEM);
        return;
    }
    uint8_t prefix[PB_PREFIX];
    size_t n = lm__pb_varint(e->len - PB_PREFIX, prefix);
    memcpy(e->buf + PB_PREFIX - n, prefix, n);
    e->off = PB_PREFIX - n;
}

/* Renders the next unit into the staging buffer; false when the
 * exposition is complete or failed (then nothing of the unit is kept).
 * Steps that render nothing (an empty HELP, a family without series) just
 * advance. */
static bool render_unit(lm_expo *e)
{
    e->len = e->off = 0;
    if (!e->failed && e->phase != PH_DONE && lm__fault(e->reg, LM__FAULT_UNIT))
        fail(e, LM_ERR_NOMEM);
    while (e->len == 0 && !e->failed) {
        switch (e->phase) {
        case PH_FAMILY:
            for (; e->fi < e->nfam; e->fi++) {
                if (e->famstate[e->fi] == FAM_SKIP)
                    continue;
                const lm_family *f = e->reg->families[e->fi];
                size_t n = atomic_load_explicit(&((lm_family *)f)->nseries, memory_order_acquire);
                if (n == 0)
                    continue; /* nothing to show; the overflow needs a full family */
                e->famstate[e->fi] = FAM_EXPOSED;
                e->nexposed++;
                e->fam = f;
                e->proj = f->type == LM_HISTOGRAM ? lm__family_proj(f) : NULL;
                e->nseries = n;
                e->si = 0;
                e->cur = NULL;
                e->step = 0;
                e->phase = PH_FAMILY_META;
                if (is_pb(e)) { /* the whole family is this unit */
                    pb_unit(e, PB_FAMILY);
                    e->fi++;
                    e->phase = PH_FAMILY;
                }
                break;
            }
            if (e->phase == PH_FAMILY && e->fi >= e->nfam) {
                e->phase = PH_FOLDED_META;
                e->step = 0;
            }
            break;
        case PH_FAMILY_META:
            if (e->step < 2) {
                const lm_text *help = lm__family_help(e->fam);
                render_meta(e, e->step, e->fam->name.ptr, e->fam->name.len, e->fam->type,
                            help->ptr, help->len);
                e->step++;
            } else {
                e->phase = PH_SERIES;
            }
            break;
        case PH_SERIES:
            if (!render_series_unit(e)) {
                e->fi++;
                e->phase = PH_FAMILY;
            }
            break;
        case PH_FOLDED_META:
            if (is_pb(e)) {
                if (e->nexposed)
                    pb_unit(e, PB_FOLDED);
                e->phase = PH_PROCESS;
                e->pi = 0;
                e->step = 0;
            } else if (e->nexposed == 0 || e->step >= 2) {
                e->phase = e->nexposed ? PH_FOLDED : PH_PROCESS;
                e->fi = 0;
                e->pi = 0;
                e->step = 0;
            } else {
                render_meta(e, e->step++, FOLDED_NAME, strlen(FOLDED_NAME), LM_COUNTER,
                            FOLDED_HELP, strlen(FOLDED_HELP));
            }
            break;
        case PH_FOLDED:
            while (e->fi < e->nfam && e->famstate[e->fi] != FAM_EXPOSED)
                e->fi++;
            if (e->fi == e->nfam) {
                e->phase = PH_PROCESS;
                e->pi = 0;
                e->step = 0;
                break;
            }
            {
                const lm_family *f = e->reg->families[e->fi++];
                ensure(e, sizeof FOLDED_NAME "{family=\"\"} \n" + 2 * f->name.len + NUM_MAX);
                puts_(e, FOLDED_NAME "{family=\"");
                put_label_value(e, f->name.ptr, f->name.len);
                puts_(e, "\"} ");
                put_u64(e, atomic_load_explicit(&((lm_family *)f)->folded, memory_order_relaxed));
                put(e, "\n", 1);
            }
            break;
        case PH_PROCESS:
            while (e->pi < P_COUNT && !(e->proc_mask & (1u << e->pi)))
                e->pi++;
            if (e->pi == P_COUNT) {
                e->phase = PH_EOF;
                break;
            }
            if (is_pb(e)) {
                pb_unit(e, PB_PROCESS);
                e->pi++;
                break;
            }
            {
                const char *name = k_process[e->pi].name;
                lm_type type = k_process[e->pi].type;
                if (e->step < 2) {
                    render_meta(e, e->step++, name, strlen(name), type, k_process[e->pi].help,
                                strlen(k_process[e->pi].help));
                } else {
                    puts_(e, name);
                    puts_(e, counter_suffix(e, name, strlen(name), type));
                    put(e, " ", 1);
                    put_process_value(e, process_value(&e->proc, e->pi));
                    put(e, "\n", 1);
                    e->pi++;
                    e->step = 0;
                }
            }
            break;
        case PH_EOF:
            if (is_om(e))
                puts_(e, "# EOF\n");
            e->phase = PH_DONE;
            break;
        case PH_DONE:
            return false;
        }
    }
    if (e->failed) {
        e->len = e->off = 0;
        e->phase = PH_DONE;
        return false;
    }
    return true;
}

/* ------------------------------------------------------------- sizing */

/* Longest label block (start_labels) of a series of f, by the same limits
 * as family_unit_bound. */
static size_t family_labels_bound(const lm_registry *reg, const lm_family *f)
{
    size_t vmax = reg->opts.max_label_value_len;
    if (vmax < 16)
        vmax = 16;
    size_t n = 0;
    for (size_t i = 0; i < f->nlabels; i++)
        n += f->label_names[i].len + sizeof ",=\"\"" + 2 * vmax;
    return n;
}

/* Longest unit a family of the snapshot can produce, from its fixed parts
 * and the registry's label value limit (values are cut to
 * max_label_value_len bytes when sanitised; fixed values such as
 * "_overflow" or an HTTP method are short). Escaping at most doubles a
 * value. ensure() covers anything longer. */
static size_t family_unit_bound(const lm_registry *reg, const lm_family *f)
{
    size_t vmax = reg->opts.max_label_value_len;
    if (vmax < 16) /* "_overflow", HTTP methods and statuses are not cut */
        vmax = 16;
    size_t meta = sizeof "# HELP  \n" + f->name.len + 2 * lm__family_help(f)->len;
    size_t type = sizeof "# TYPE  histogram\n" + f->name.len;
    size_t sample = f->name.len + sizeof "_bucket{}" + sizeof ",le=\"\"" + LE_MAX + 1 + NUM_MAX + 1;
    if (f->type != LM_GAUGE)
        sample += LM_EXEMPLAR_RENDER_MAX; /* OpenMetrics exemplar of a bucket or counter */
    for (size_t i = 0; i < f->nlabels; i++)
        sample += f->label_names[i].len + sizeof ",=\"\"" + 2 * vmax;
    size_t folded = sizeof FOLDED_NAME "{family=\"\"} \n" + 2 * f->name.len + NUM_MAX;
    size_t m = meta > type ? meta : type;
    m = m > sample ? m : sample;
    return m > folded ? m : folded;
}

/* Whether a user family already exposes the name a built-in metric would
 * use: the same exposed names the core refuses between user families. The
 * built-in is then left out rather than exposed twice. */
static bool name_taken(const lm_family *f, const char *name, lm_type type)
{
    return lm__names_clash(f->type, f->name.ptr, type, name, NULL, 0);
}

bool lm__expo_builtin_clash(lm_type type, const char *name, char *builtin, size_t cap)
{
    const char *hit = NULL;
    if (lm__names_clash(type, name, LM_COUNTER, FOLDED_NAME, NULL, 0))
        hit = FOLDED_NAME;
    for (unsigned p = 0; p < P_COUNT && hit == NULL; p++)
        if (lm__names_clash(type, name, k_process[p].type, k_process[p].name, NULL, 0))
            hit = k_process[p].name;
    if (hit != NULL && cap > 0)
        snprintf(builtin, cap, "%s", hit);
    return hit != NULL;
}

/* -------------------------------------------------------------- public */

static lm_status expo_open(lm_registry *reg, lm_format fmt, unsigned flags, lm_expo **out,
                           lm_error *err);

lm_expo *lm_expo_begin(lm_registry *reg, lm_format fmt, unsigned flags, lm_error *err)
{
    lm_expo *e = NULL;
    expo_open(reg, fmt, flags, &e, err);
    return e;
}

static lm_status expo_open(lm_registry *reg, lm_format fmt, unsigned flags, lm_expo **out,
                           lm_error *err)
{
    *out = NULL;
    if (reg == NULL) {
        lm__set_error(err, LM_ERR_INVALID, "registry is NULL");
        return LM_ERR_INVALID;
    }
    if (fmt != LM_FORMAT_TEXT && fmt != LM_FORMAT_OPENMETRICS && fmt != LM_FORMAT_PROTOBUF) {
        lm__set_error(err, LM_ERR_INVALID,
                      "exposition format %d is not LM_FORMAT_TEXT (0), LM_FORMAT_OPENMETRICS (1) "
                      "or LM_FORMAT_PROTOBUF (2)",
                      (int)fmt);
        return LM_ERR_INVALID;
    }
    if (flags & ~LM_EXPO_PROCESS) {
        lm__set_error(err, LM_ERR_INVALID, "exposition flags 0x%x contain unknown bits 0x%x",
                      flags, flags & ~LM_EXPO_PROCESS);
        return LM_ERR_INVALID;
    }
    lm_expo *e = expo_calloc(reg, 1, sizeof *e);
    if (e == NULL) {
        lm__set_error(err, LM_ERR_NOMEM, "out of memory allocating an exposition cursor");
        return LM_ERR_NOMEM;
    }
    e->reg = reg;
    e->fmt = fmt;
    e->flags = flags;
    e->phase = PH_FAMILY;
    bool *live = expo_calloc(reg, reg->opts.max_families, sizeof *live);
    e->famstate = expo_calloc(reg, reg->opts.max_families, 1);
    if (live != NULL && e->famstate != NULL) {
        lm__families_snapshot(reg, live, &e->nfam);
    } else { /* reported as out of memory below */
        free(e->famstate);
        e->famstate = NULL;
    }

    /* Process metrics and the end line are short fixed strings. */
    size_t cap = 512, lcap = 64;
    for (size_t i = 0; i < e->nfam && e->famstate; i++) {
        const lm_family *f = reg->families[i];
        if (!live[i])
            continue;
        e->famstate[i] = FAM_LIVE;
        size_t b = family_unit_bound(reg, f);
        if (b > cap)
            cap = b;
        b = family_labels_bound(reg, f);
        if (b > lcap)
            lcap = b;
    }
    free(live);
    if (flags & LM_EXPO_PROCESS) {
        errno = 0;
        if (lm__fault(reg, LM__FAULT_PROC))
            e->proc = (lm_process_stats){0};
        else
            lm__process_read(&e->proc);
        if (!e->proc.ok && !e->proc.unavailable) {
            /* A body without process_* would look complete and set off
             * absence alerts: fail the scrape instead. (A system without
             * /proc never has them, which is no failure.) */
            lm__set_error(err, LM_ERR_IO,
                          "cannot read the process figures from /proc/self (%s); the "
                          "exposition was not started",
                          strerror(errno ? errno : EIO));
            lm_expo_end(e);
            return LM_ERR_IO;
        }
        if (e->proc.ok)
            for (unsigned p = 0; p < P_COUNT; p++) {
                bool taken = false;
                for (size_t i = 0; i < e->nfam && !taken && e->famstate; i++)
                    taken = e->famstate[i] != FAM_SKIP &&
                            name_taken(reg->families[i], k_process[p].name, k_process[p].type);
                if (!taken)
                    e->proc_mask |= 1u << p;
            }
    }
    e->cap = cap;
    e->buf = e->famstate ? expo_realloc(reg, NULL, cap) : NULL;
    e->labels_cap = lcap;
    e->labels = e->buf ? expo_realloc(reg, NULL, lcap) : NULL;
    if (e->labels != NULL && fmt == LM_FORMAT_PROTOBUF &&
        (e->pb = lm__pb_new(pb_alloc, reg)) == NULL) {
        free(e->labels);
        e->labels = NULL;
    }
    if (e->labels == NULL) {
        lm__set_error(err, LM_ERR_NOMEM, "out of memory allocating a %zu-byte exposition buffer",
                      cap + lcap);
        lm_expo_end(e);
        return LM_ERR_NOMEM;
    }
    *out = e;
    return LM_OK;
}

size_t lm_expo_read(lm_expo *e, char *buf, size_t cap)
{
    if (e == NULL || buf == NULL)
        return 0;
    size_t n = 0;
    while (n < cap) {
        if (e->off == e->len && !render_unit(e))
            break;
        size_t k = e->len - e->off;
        if (k > cap - n)
            k = cap - n;
        memcpy(buf + n, e->buf + e->off, k);
        e->off += k;
        n += k;
    }
    e->out += n;
    return n;
}

lm_status lm_expo_status(const lm_expo *e, lm_error *err)
{
    if (e == NULL) {
        lm__set_error(err, LM_ERR_INVALID, "exposition cursor is NULL");
        return LM_ERR_INVALID;
    }
    if (!e->failed)
        return LM_OK;
    if (e->fail_code == LM_ERR_NOMEM)
        lm__set_error(err, LM_ERR_NOMEM,
                      "out of memory rendering the exposition; output cut after %llu bytes",
                      (unsigned long long)e->out);
    else
        lm__set_error(err, e->fail_code,
                      "exposition line longer than its %zu-byte buffer (a libmetrics bug); "
                      "output cut after %llu bytes",
                      e->cap, (unsigned long long)e->out);
    return e->fail_code;
}

void lm_expo_end(lm_expo *e)
{
    if (e == NULL)
        return;
    free(e->buf);
    free(e->labels);
    free(e->famstate);
    lm__pb_free(e->pb);
    free(e);
}

lm_status lm_expo_write(lm_registry *reg, lm_format fmt, unsigned flags, lm_write_fn fn,
                        void *ctx, lm_error *err)
{
    if (fn == NULL) {
        lm__set_error(err, LM_ERR_INVALID, "writer callback is NULL");
        return LM_ERR_INVALID;
    }
    lm_expo *e;
    lm_status st = expo_open(reg, fmt, flags, &e, err);
    if (st != LM_OK)
        return st;
    char chunk[LM_EXPO_CHUNK];
    uint64_t total = 0;
    size_t n;
    while ((n = lm_expo_read(e, chunk, sizeof chunk)) > 0) {
        int rc = fn(ctx, chunk, n);
        if (rc != 0) {
            lm__set_error(err, LM_ERR_IO,
                          "exposition writer returned %d after %llu bytes had been written", rc,
                          (unsigned long long)total);
            st = LM_ERR_IO;
            break;
        }
        total += n;
    }
    if (st == LM_OK)
        st = lm_expo_status(e, err);
    lm_expo_end(e);
    return st;
}
