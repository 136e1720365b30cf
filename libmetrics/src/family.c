/*
 * Families and series: validation, registration (idempotent for reloads),
 * replacement, the label-set index and cardinality folding. Everything here
 * is configure-time work under reg->lock; recording never comes here.
 */
#include "core.h"

#include <sched.h>
#include "exemplar.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QCAP 96 /* quoted names in messages: long enough to recognise */
#define LM_INDEX_MIN 8 /* slots of a new family's series index (a power of two) */

static const double lm_default_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25,  0.5,    0.75,  1,    2.5,   5,    10};

const double *lm_default_latency_bounds(size_t *nbounds)
{
    if (nbounds != NULL)
        *nbounds = sizeof lm_default_bounds / sizeof lm_default_bounds[0];
    return lm_default_bounds;
}

const char *lm__type_name(lm_type t)
{
    switch (t) {
    case LM_COUNTER:
        return "counter";
    case LM_GAUGE:
        return "gauge";
    case LM_HISTOGRAM:
        return "histogram";
    }
    return "unknown";
}

/* ------------------------------------------------------------ validation */

/* Options with defaults resolved, validated, ready to compare or build. */
typedef struct shape {
    lm_type type;
    lm_family_kind kind;
    const char *name;
    lm_text help; /* owned until moved into a family */
    size_t nlabels;
    const char *const *labels;
    size_t max_series;
    const double *bounds;
    size_t nbounds;
    double unit_scale;
    int64_t ubounds[LM_MAX_BOUNDS];
    bool has_native;            /* native buckets asked for (lm_native_options) */
    lm_native_view native;      /* ... and how they are to be exposed */
    double native_zt;           /* resolved zero threshold */
} shape;

/* floor(bound * scale), except that a product within a few ulps of an
 * integer is taken as that integer: 0.29 * 100 is 28.999999999999996 in
 * binary, but the user meant the bound 29 recorded units, and flooring
 * would silently move observations of exactly 29 into the next bucket. */
static int scale_bound(double bound, double scale, int64_t *out)
{
    double x = bound * scale;
    if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0))
        return -1;
    double r = nearbyint(x);
    double f = fabs(x - r) <= fabs(x) * 4 * DBL_EPSILON ? r : floor(x);
    if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0))
        return -1;
    *out = (int64_t)f;
    return 0;
}

int lm__max_series_check(const char *subject, size_t max_series, lm_error *err)
{
    if (max_series <= LM_MAX_SERIES_LIMIT)
        return 0;
    lm__set_error(err, LM_ERR_INVALID, "%s: max_series %zu exceeds the maximum of %zu", subject,
                  max_series, LM_MAX_SERIES_LIMIT);
    return -1;
}

static int validate(const lm_family_options *o, shape *sh, lm_error *err)
{
    char q[QCAP], q2[QCAP];
    memset(sh, 0, sizeof *sh);

    if (o->type != LM_COUNTER && o->type != LM_GAUGE && o->type != LM_HISTOGRAM) {
        lm__set_error(err, LM_ERR_INVALID,
                      "family type %d is not LM_COUNTER, LM_GAUGE or LM_HISTOGRAM", (int)o->type);
        return -1;
    }
    if (o->name == NULL) {
        lm__set_error(err, LM_ERR_INVALID, "metric name is NULL");
        return -1;
    }
    if (!lm__valid_metric_name(o->name)) {
        lm__set_error(err, LM_ERR_INVALID, "metric name %s must match [a-zA-Z_:][a-zA-Z0-9_:]*",
                      lm__quote(q, QCAP, o->name, strlen(o->name)));
        return -1;
    }
    if (o->type == LM_COUNTER && !lm__valid_counter_suffix(o->name)) {
        lm__set_error(err, LM_ERR_INVALID,
                      "counter name %s must end in \"_total\" after a non-empty base name",
                      lm__quote(q, QCAP, o->name, strlen(o->name)));
        return -1;
    }
    lm__quote(q, QCAP, o->name, strlen(o->name));

    if (o->nlabels > LM_MAX_LABELS) {
        lm__set_error(err, LM_ERR_INVALID, "family %s has %zu labels; at most %d are allowed", q,
                      o->nlabels, LM_MAX_LABELS);
        return -1;
    }
    if (o->nlabels > 0 && o->label_names == NULL) {
        lm__set_error(err, LM_ERR_INVALID, "family %s: label_names is NULL but nlabels is %zu", q,
                      o->nlabels);
        return -1;
    }
    for (size_t i = 0; i < o->nlabels; i++) {
        const char *l = o->label_names[i];
        if (l == NULL) {
            lm__set_error(err, LM_ERR_INVALID, "family %s: label name %zu is NULL", q, i);
            return -1;
        }
        lm__quote(q2, QCAP, l, strlen(l));
        if (!lm__valid_label_name(l)) {
            lm__set_error(err, LM_ERR_INVALID,
                          "label name %s of family %s must match [a-zA-Z_][a-zA-Z0-9_]*", q2, q);
            return -1;
        }
        if (l[0] == '_' && l[1] == '_') {
            lm__set_error(err, LM_ERR_INVALID,
                          "label name %s of family %s must not start with \"__\" (reserved)", q2,
                          q);
            return -1;
        }
        if (o->type == LM_HISTOGRAM && strcmp(l, "le") == 0) {
            lm__set_error(err, LM_ERR_INVALID,
                          "label name \"le\" is reserved for the buckets of histogram %s", q);
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(o->label_names[j], l) == 0) {
                lm__set_error(err, LM_ERR_INVALID, "label name %s appears twice in family %s",
                              q2, q);
                return -1;
            }
        }
    }

    if (o->kind != LM_KIND_BUSINESS && o->kind != LM_KIND_HTTP &&
        o->kind != LM_KIND_SERVER_TIMING && o->kind != LM_KIND_RUNTIME) {
        lm__set_error(err, LM_ERR_INVALID,
                      "family %s: kind %d is not LM_KIND_BUSINESS, LM_KIND_HTTP, "
                      "LM_KIND_SERVER_TIMING or LM_KIND_RUNTIME",
                      q, (int)o->kind);
        return -1;
    }

    size_t max_series = o->max_series ? o->max_series : LM_DEFAULT_MAX_SERIES;
    char subject[QCAP + 8];
    snprintf(subject, sizeof subject, "family %s", q);
    if (lm__max_series_check(subject, max_series, err) != 0)
        return -1;

    sh->type = o->type;
    sh->kind = o->kind;
    sh->name = o->name;
    sh->nlabels = o->nlabels;
    sh->labels = o->label_names;
    sh->max_series = max_series;

    if (o->type != LM_HISTOGRAM) {
        if (o->bounds != NULL || o->nbounds != 0 || o->unit_scale != 0 || o->native != NULL) {
            lm__set_error(err, LM_ERR_INVALID,
                          "family %s is a %s; bounds, nbounds, unit_scale and native apply to "
                          "histograms only and must be zero",
                          q, lm__type_name(o->type));
            return -1;
        }
    } else {
        const double *b = o->bounds;
        size_t nb = o->nbounds;
        if (b == NULL && nb != 0) {
            lm__set_error(err, LM_ERR_INVALID, "histogram %s: bounds is NULL but nbounds is %zu",
                          q, nb);
            return -1;
        }
        if (b == NULL || nb == 0)
            b = lm_default_latency_bounds(&nb);
        if (nb > LM_MAX_BOUNDS) {
            lm__set_error(err, LM_ERR_INVALID,
                          "histogram %s has %zu bounds; at most %d are allowed", q, nb,
                          LM_MAX_BOUNDS);
            return -1;
        }
        double scale = o->unit_scale == 0 ? 1 : o->unit_scale;
        if (!isfinite(scale) || scale <= 0) {
            lm__set_error(err, LM_ERR_INVALID,
                          "histogram %s: unit_scale %g must be finite and greater than 0", q,
                          o->unit_scale);
            return -1;
        }
        for (size_t i = 0; i < nb; i++) {
            if (!isfinite(b[i])) {
                lm__set_error(err, LM_ERR_INVALID,
                              "histogram %s: bound %zu (%g) is not finite; +Inf is implicit", q,
                              i, b[i]);
                return -1;
            }
            if (i > 0 && !(b[i] > b[i - 1])) {
                lm__set_error(err, LM_ERR_INVALID,
                              "histogram %s: bounds must be strictly increasing, but bound %zu "
                              "(%.17g) follows %.17g",
                              q, i, b[i], b[i - 1]);
                return -1;
            }
            if (scale_bound(b[i], scale, &sh->ubounds[i]) != 0) {
                lm__set_error(err, LM_ERR_INVALID,
                              "histogram %s: bound %.17g x unit_scale %g does not fit a 64-bit "
                              "integer",
                              q, b[i], scale);
                return -1;
            }
            if (i > 0 && sh->ubounds[i] <= sh->ubounds[i - 1]) {
                lm__set_error(err, LM_ERR_INVALID,
                              "histogram %s: bounds %.17g and %.17g collide after scaling by "
                              "unit_scale %g (both %lld recorded units); observations are "
                              "integers, so pick a finer unit (e.g. unit_scale 1e9 for "
                              "nanoseconds when bounds are seconds)",
                              q, b[i - 1], b[i], scale, (long long)sh->ubounds[i]);
                return -1;
            }
        }
        sh->bounds = b;
        sh->nbounds = nb;
        sh->unit_scale = scale;
        if (o->native != NULL) {
            if (lm__native_validate(o->native, scale, q, &sh->native_zt, err) != 0)
                return -1;
            sh->has_native = true;
            sh->native = (lm_native_view){true, o->native->schema, o->native->max_buckets};
        }
    }

    const char *help = o->help ? o->help : "";
    if (lm__text_from((lm_str){help, strlen(help)}, 0, &sh->help) != LM_OK) {
        lm__set_error(err, LM_ERR_NOMEM, "out of memory copying the help of family %s", q);
        return -1;
    }
    return 0;
}

lm_status lm_family_check(const lm_family_options *opts, lm_error *err)
{
    shape sh;
    if (opts == NULL) {
        lm__set_error(err, LM_ERR_INVALID, "options are NULL");
        return LM_ERR_INVALID;
    }
    if (validate(opts, &sh, err) != 0)
        return err != NULL ? err->code : LM_ERR_INVALID;
    lm__text_free(&sh.help);
    return LM_OK;
}

static const char *kind_name(lm_family_kind k)
{
    switch (k) {
    case LM_KIND_BUSINESS:
        return "LM_KIND_BUSINESS";
    case LM_KIND_HTTP:
        return "LM_KIND_HTTP";
    case LM_KIND_SERVER_TIMING:
        return "LM_KIND_SERVER_TIMING";
    case LM_KIND_RUNTIME:
        return "LM_KIND_RUNTIME";
    }
    return "unknown";
}

static bool bounds_differ(const lm_family *f, const shape *sh, char *msg, size_t cap);
static bool native_differs(const lm_family *f, const shape *sh, char *msg, size_t cap);

/* Describes the first difference between an existing family and a new
 * shape into msg; returns false if there is none. */
static bool shape_differs(const lm_family *f, const shape *sh, char *msg, size_t cap)
{
    if (f->type != sh->type) {
        snprintf(msg, cap, "it is a %s, this call asks for a %s", lm__type_name(f->type),
                 lm__type_name(sh->type));
        return true;
    }
    lm_family_kind kind = atomic_load_explicit(&((lm_family *)f)->kind, memory_order_relaxed);
    if (kind != sh->kind) {
        snprintf(msg, cap, "it is of kind %s, this call asks for kind %s", kind_name(kind),
                 kind_name(sh->kind));
        return true;
    }
    const lm_text *help = lm__family_help(f);
    if (help->len != sh->help.len || memcmp(help->ptr, sh->help.ptr, sh->help.len) != 0) {
        snprintf(msg, cap, "its help text differs");
        return true;
    }
    if (f->nlabels != sh->nlabels) {
        snprintf(msg, cap, "it has %zu labels, this call asks for %zu", f->nlabels, sh->nlabels);
        return true;
    }
    for (size_t i = 0; i < sh->nlabels; i++) {
        if (strcmp(f->label_names[i].ptr, sh->labels[i]) != 0) {
            char a[QCAP], b[QCAP];
            snprintf(msg, cap, "its label %zu is %s, this call asks for %s", i,
                     lm__quote(a, QCAP, f->label_names[i].ptr, f->label_names[i].len),
                     lm__quote(b, QCAP, sh->labels[i], strlen(sh->labels[i])));
            return true;
        }
    }
    if (f->max_series != sh->max_series) {
        snprintf(msg, cap, "its max_series is %zu, this call asks for %zu", f->max_series,
                 sh->max_series);
        return true;
    }
    if (f->type == LM_HISTOGRAM && bounds_differ(f, sh, msg, cap))
        return true;
    if (f->type == LM_HISTOGRAM && f->unit_scale != sh->unit_scale) {
        snprintf(msg, cap, "its unit_scale is %g, this call asks for %g", f->unit_scale,
                 sh->unit_scale);
        return true;
    }
    if (f->type == LM_HISTOGRAM && native_differs(f, sh, msg, cap))
        return true;
    return false;
}

/* Whether histogram f's native buckets (recorded and exposed) differ from
 * what sh asks for (described into msg). */
static bool native_differs(const lm_family *f, const shape *sh, char *msg, size_t cap)
{
    lm_native_view v = lm__native_view_unpack(
        atomic_load_explicit(&((lm_family *)f)->native_view, memory_order_relaxed));
    bool shown = f->native != NULL && v.on;
    if (shown != sh->has_native) {
        snprintf(msg, cap, "it has %snative buckets, this call asks for %s", shown ? "" : "no ",
                 sh->has_native ? "some" : "none");
        return true;
    }
    if (!shown)
        return false;
    if (v.schema != sh->native.schema || v.max_buckets != sh->native.max_buckets ||
        f->native->zero_threshold != sh->native_zt) {
        snprintf(msg, cap,
                 "its native buckets have schema %d, max_buckets %u, zero threshold %g; this "
                 "call asks for %d, %u, %g",
                 v.schema, v.max_buckets, f->native->zero_threshold, sh->native.schema,
                 sh->native.max_buckets, sh->native_zt);
        return true;
    }
    return false;
}

/* Whether histogram f exposes other bounds than sh lists (described into
 * msg). */
static bool bounds_differ(const lm_family *f, const shape *sh, char *msg, size_t cap)
{
    const lm_hproj *p = lm__family_proj(f);
    if (p->n != sh->nbounds) {
        snprintf(msg, cap, "it has %zu bucket bounds, this call asks for %zu", p->n, sh->nbounds);
        return true;
    }
    for (size_t i = 0; i < sh->nbounds; i++) {
        if (p->bounds[i] != sh->bounds[i]) {
            snprintf(msg, cap, "its bound %zu is %.17g, this call asks for %.17g", i,
                     p->bounds[i], sh->bounds[i]);
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------- exposed name clashes */

/* An exposed name as base + suffix, without building strings. */
typedef struct claim {
    const char *base;
    size_t blen;
    const char *suf;
} claim;

/* Every name a family puts into an exposition, in either format: the
 * OpenMetrics family name (a counter's without "_total") and its samples. */
static size_t family_claims(lm_type type, const char *name, claim out[5])
{
    size_t len = strlen(name);
    switch (type) {
    case LM_COUNTER:
        out[0] = (claim){name, len - 6, ""};
        out[1] = (claim){name, len - 6, "_total"};
        out[2] = (claim){name, len - 6, "_created"};
        return 3;
    case LM_GAUGE:
        out[0] = (claim){name, len, ""};
        return 1;
    case LM_HISTOGRAM:
        out[0] = (claim){name, len, ""};
        out[1] = (claim){name, len, "_bucket"};
        out[2] = (claim){name, len, "_count"};
        out[3] = (claim){name, len, "_sum"};
        out[4] = (claim){name, len, "_created"};
        return 5;
    }
    return 0;
}

static bool claim_eq(claim a, claim b)
{
    size_t an = a.blen + strlen(a.suf), bn = b.blen + strlen(b.suf);
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++) {
        char ca = i < a.blen ? a.base[i] : a.suf[i - a.blen];
        char cb = i < b.blen ? b.base[i] : b.suf[i - b.blen];
        if (ca != cb)
            return false;
    }
    return true;
}

bool lm__names_clash(lm_type ta, const char *a, lm_type tb, const char *b, char *exposed,
                     size_t cap)
{
    claim ca[5], cb[5];
    size_t na = family_claims(ta, a, ca), nb = family_claims(tb, b, cb);
    for (size_t i = 0; i < na; i++) {
        for (size_t j = 0; j < nb; j++) {
            if (!claim_eq(ca[i], cb[j]))
                continue;
            if (cap > 0)
                snprintf(exposed, cap, "%.*s%s", (int)ca[i].blen, ca[i].base, ca[i].suf);
            return true;
        }
    }
    return false;
}

/* 0 if the new family's exposed names collide with no live family (nor
 * with the exposition's own libmetrics_series_folded_total). */
static int check_clashes(lm_registry *reg, const shape *sh, const lm_family *skip, lm_error *err)
{
    size_t nf = atomic_load_explicit(&reg->nfamilies, memory_order_relaxed);
    char q[QCAP], q2[QCAP], exposed[2 * QCAP];

    for (size_t i = 0; i <= nf; i++) {
        lm_type t;
        const char *name;
        if (i == nf) {
            t = LM_COUNTER;
            name = "libmetrics_series_folded_total";
        } else {
            const lm_family *f = reg->families[i];
            if (f == skip || atomic_load_explicit(&f->retired, memory_order_relaxed))
                continue;
            t = f->type;
            name = f->name.ptr;
        }
        if (!lm__names_clash(sh->type, sh->name, t, name, exposed, sizeof exposed))
            continue;
        lm__set_error(err, LM_ERR_EXISTS, "%s %s would expose \"%s\", which %s %s%s already exposes",
                      lm__type_name(sh->type), lm__quote(q, QCAP, sh->name, strlen(sh->name)),
                      exposed, lm__type_name(t), lm__quote(q2, QCAP, name, strlen(name)),
                      i == nf ? " (built into the exposition)" : "");
        return -1;
    }
    return 0;
}

/* -------------------------------------------------------------- building */

static lm_series *series_alloc(lm_family *fam, size_t nvalues)
{
    /* lm_series is cache-line aligned for its gauge cell, so its size is a
     * multiple of the alignment as aligned_alloc requires. */
    lm_series *s = aligned_alloc(LM_CACHELINE, sizeof *s);
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof *s);
    s->family = fam;
    atomic_init(&s->gauge, 0);
    atomic_init(&s->hc, &s->hc0);
    atomic_init(&s->hc0.exemplars, NULL);
    if (fam->native != NULL) {
        s->nat = fam->native;
        if ((s->ndir = lm__native_dir_new(fam->native)) == NULL) {
            free(s);
            return NULL;
        }
    }
    if (nvalues > 0) {
        s->values = calloc(nvalues, sizeof *s->values);
        if (s->values == NULL) {
            free((void *)s->ndir);
            free(s);
            return NULL;
        }
    }
    return s;
}

static void series_free(lm_series *s, size_t nvalues)
{
    if (s == NULL)
        return;
    if (s->values != NULL)
        for (size_t i = 0; i < nvalues; i++)
            lm__text_free(&s->values[i]);
    free(s->values);
    lm__exemplars_free(&s->exemplars);
    lm__exemplars_free(&s->hc0.exemplars);
    free((void *)s->ndir);
    free(s);
}

/* Places s's cells at slot; a histogram series' go to the family's
 * current layout. Before s is published (nseries or overflow, release). */
static void series_place(lm_series *s, const lm_family *f, uint32_t slot)
{
    s->slot = slot;
    if (f->type != LM_HISTOGRAM)
        return;
    s->hc0.slot = slot;
    s->hc0.nb = (uint32_t)f->layout->n;
    s->hc0.ub = f->layout->ub;
    s->hc0.prev = NULL;
    atomic_store_explicit(&s->hc, &s->hc0, memory_order_relaxed);
}

static void layouts_free(lm_hlayout *l)
{
    while (l != NULL) {
        lm_hlayout *prev = l->prev;
        for (size_t i = 0; i < l->ncells; i++)
            lm__exemplars_free(&l->cells[i].exemplars);
        free(l->cells);
        free(l->ub);
        free(l);
        l = prev;
    }
}

void lm__family_free(lm_family *f)
{
    if (f == NULL)
        return;
    size_t n = atomic_load_explicit(&f->nseries, memory_order_relaxed);
    for (size_t i = 0; i < n; i++)
        series_free(f->series[i], f->nlabels);
    series_free(f->overflow_spare, f->nlabels);
    if (f->label_names != NULL)
        for (size_t i = 0; i < f->nlabels; i++)
            lm__text_free(&f->label_names[i]);
    free(f->label_names);
    lm__text_free(&f->name);
    for (lm_help *h = f->helps, *o; h; h = o) {
        o = h->next;
        lm__text_free(&h->text);
        free(h);
    }
    layouts_free(f->layout);
    for (lm_hproj *p = f->projs, *o; p; p = o) {
        o = p->next;
        free(p);
    }
    lm__native_free(f->native);
    free(f->series);
    free(f->index);
    free(f);
}

static uint32_t family_width(const shape *sh)
{
    switch (sh->type) {
    case LM_COUNTER:
        return 1;
    case LM_GAUGE:
        return 0;
    case LM_HISTOGRAM:
        return (uint32_t)sh->nbounds + 3;
    }
    return 0;
}

/* ------------------------------------------- histogram bounds over time */

/* out = the sorted union of a and b (each strictly increasing); returns
 * its length (out holds na + nb). */
static size_t union_merge(const int64_t *a, size_t na, const int64_t *b, size_t nb, int64_t *out)
{
    size_t i = 0, j = 0, n = 0;
    while (i < na || j < nb) {
        if (j == nb || (i < na && a[i] < b[j]))
            out[n++] = a[i++];
        else if (i == na || b[j] < a[i])
            out[n++] = b[j++];
        else {
            out[n++] = a[i++];
            j++;
        }
    }
    return n;
}

static lm_hlayout *layout_new(const int64_t *ub, size_t n, size_t ncells)
{
    lm_hlayout *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->ub = malloc((n ? n : 1) * sizeof *l->ub);
    l->cells = ncells ? calloc(ncells, sizeof *l->cells) : NULL;
    if (l->ub == NULL || (ncells && l->cells == NULL)) {
        free(l->ub);
        free(l->cells);
        free(l);
        return NULL;
    }
    memcpy(l->ub, ub, n * sizeof *ub);
    l->n = n;
    l->ncells = ncells;
    return l;
}

/* Fills p with sh's bounds, and how layout lay's buckets fold into them:
 * union bucket j goes to the first exposed bucket whose bound is >= its
 * own (every exposed bound is in the union, so that is exact). */
static void proj_fill(lm_hproj *p, const shape *sh, const lm_hlayout *lay, const lm_hproj *others)
{
    p->n = sh->nbounds;
    memcpy(p->bounds, sh->bounds, sh->nbounds * sizeof *p->bounds);
    memcpy(p->ub, sh->ubounds, sh->nbounds * sizeof *p->ub);
    const lm_hproj *prev = NULL; /* a projection with this bound's le already */
    for (size_t i = 0; i < sh->nbounds; i++) {
        /* Shortest round-trip formatting costs a few printf/strtod rounds
         * per bound; bucket changes mostly go back to lists seen before. */
        size_t k = 0;
        for (prev = others; prev != NULL; prev = prev->next) {
            for (k = 0; k < prev->n && prev->bounds[k] != sh->bounds[i]; k++)
                ;
            if (k < prev->n)
                break;
        }
        if (prev != NULL) {
            memcpy(p->le[i], prev->le[k], sizeof p->le[i]);
            continue;
        }
        char tmp[48];
        size_t n = lm__fmt_double(tmp, sh->bounds[i]);
        if (n >= sizeof p->le[i])
            n = sizeof p->le[i] - 1; /* a finite double is at most 24 chars */
        memcpy(p->le[i], tmp, n);
        p->le[i][n] = '\0';
    }
    p->lay_ub = lay->ub;
    p->lay_n = lay->n;
    size_t k = 0;
    for (size_t j = 0; j < lay->n; j++) {
        while (k < p->n && p->ub[k] < lay->ub[j])
            k++;
        p->map[j] = (uint8_t)k;
    }
    p->map[lay->n] = (uint8_t)p->n;
}

/* Grows histogram f's union to u[0..nu): every series (and the overflow
 * spare) gets cells in the new layout, linked to its old ones, each
 * published with one pointer store; the old cells stay and are summed.
 * Called under reg->lock, which it releases while it publishes: that loop
 * touches every series of the family (a cache miss each, about 0.1-0.2 ms
 * per thousand series on a busy machine), and requests whose first record
 * of a (method, status) needs the lock must not wait for it. What the lock
 * protects meanwhile: the layout and width are switched before it is
 * released (series created in the window get the new layout directly), the
 * cells of the existing series were reserved, series[0..n) never change,
 * and f->growing keeps another bucket change of f out (it waits on
 * reg->grown). Nothing changes on failure. */
static int hist_grow_locked(lm_family *f, const int64_t *u, size_t nu, const char *q,
                            lm_error *err)
{
    lm_registry *reg = f->reg;
    size_t n = atomic_load_explicit(&f->nseries, memory_order_relaxed);
    size_t count = n + 1;
    uint64_t width = (uint64_t)nu + 3;
    uint64_t need = (uint64_t)count * width;
    if (need > reg->opts.slot_capacity - reg->slots_used) {
        lm__set_error(err, LM_ERR_LIMIT,
                      "cannot change the buckets of histogram %s: its %zu series need %llu new "
                      "cells for %zu distinct bounds and only %zu of slot_capacity are left",
                      q, n, (unsigned long long)need, nu,
                      reg->opts.slot_capacity - reg->slots_used);
        return -1;
    }
    lm_hlayout *lay = layout_new(u, nu, count);
    if (lay == NULL) {
        lm__set_error(err, LM_ERR_NOMEM, "out of memory changing the buckets of histogram %s", q);
        return -1;
    }
    lay->prev = f->layout;
    uint64_t first = reg->slots_used;
    reg->slots_used += need;
    f->layout = lay;
    /* Series created from now on: the new layout's cells, then their
     * native fixed cells (existing series keep theirs after hc0). */
    f->width = (uint32_t)width + lm__native_fixed_cells(f->native);
    f->growing = true;
    pthread_mutex_unlock(&reg->lock);

    for (size_t i = 0; i < count; i++) {
        lm_series *s = i < n ? f->series[i] : f->overflow_spare;
        if (i + 8 < n) /* series are separate allocations: a miss each */
            __builtin_prefetch(&f->series[i + 8]->hc, 1);
        lm_hcells *c = &lay->cells[i];
        c->slot = (uint32_t)(first + i * width);
        c->nb = (uint32_t)nu;
        c->ub = lay->ub;
        c->prev = atomic_load_explicit(&s->hc, memory_order_relaxed);
        atomic_init(&c->exemplars, NULL);
        atomic_store_explicit(&s->hc, c, memory_order_release);
    }

    pthread_mutex_lock(&reg->lock);
    f->growing = false;
    pthread_cond_broadcast(&reg->grown);
    return 0;
}

/* Makes histogram f expose sh's bounds. Bounds already in its union: only
 * the exposed projection changes (one pointer store, no cell moves). New
 * bounds: the union grows first (hist_grow_locked). Under reg->lock. */
static int hist_rebucket_locked(lm_family *f, const shape *sh, const char *q, lm_error *err)
{
    while (f->growing) /* another thread's growth of f is publishing */
        pthread_cond_wait(&f->reg->grown, &f->reg->lock);
    int64_t u[LM_MAX_UNION_BOUNDS + LM_MAX_BOUNDS];
    size_t nu = union_merge(f->layout->ub, f->layout->n, sh->ubounds, sh->nbounds, u);
    if (nu > LM_MAX_UNION_BOUNDS) {
        lm__set_error(err, LM_ERR_LIMIT,
                      "histogram %s: these buckets make %zu distinct bounds since start, more "
                      "than the %d kept so that bucket changes lose no count; reuse earlier "
                      "bounds or restart",
                      q, nu, LM_MAX_UNION_BOUNDS);
        return -1;
    }
    if (nu == f->layout->n) {
        /* Back to a list exposed before over this same layout: publish its
         * projection again, so flipping allocates nothing. */
        for (lm_hproj *o = f->projs; o != NULL; o = o->next) {
            if (o->lay_ub == f->layout->ub && o->n == sh->nbounds &&
                memcmp(o->bounds, sh->bounds, sh->nbounds * sizeof *sh->bounds) == 0) {
                atomic_store_explicit(&f->proj, o, memory_order_release);
                return 0;
            }
        }
    }
    lm_hproj *p = calloc(1, sizeof *p);
    if (p == NULL) {
        lm__set_error(err, LM_ERR_NOMEM, "out of memory changing the buckets of histogram %s", q);
        return -1;
    }
    if (nu > f->layout->n && hist_grow_locked(f, u, nu, q, err) != 0) {
        free(p);
        return -1;
    }
    /* Only now, with every series counting in the grown union, may a new
     * bound be exposed. */
    proj_fill(p, sh, f->layout, f->projs);
    p->next = f->projs;
    f->projs = p;
    atomic_store_explicit(&f->proj, p, memory_order_release);
    return 0;
}

static int copy_cstr(const char *s, lm_text *out)
{
    return lm__text_from((lm_str){s, strlen(s)}, 0, out);
}

/* Builds a family from a validated shape; takes ownership of sh->help. */
static lm_family *family_build(lm_registry *reg, shape *sh)
{
    lm_family *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->reg = reg;
    f->type = sh->type;
    atomic_init(&f->kind, sh->kind);
    f->nlabels = sh->nlabels;
    f->max_series = sh->max_series;
    f->width = family_width(sh);
    atomic_init(&f->retired, false);
    atomic_init(&f->nseries, 0);
    atomic_init(&f->overflow, NULL);
    atomic_init(&f->folded, 0);

    /* The index starts small and doubles with the series (index_grow), so
     * a family with a large cap and few series costs a few lines, not
     * 2 x max_series pointers spread over pages by hashing. */
    size_t isize = LM_INDEX_MIN;
    f->index_mask = isize - 1;

    lm_help *help = calloc(1, sizeof *help);
    if (help == NULL)
        goto fail;
    help->text = sh->help;
    sh->help = (lm_text){0};
    atomic_init(&f->help, help);
    f->helps = help;
    if (copy_cstr(sh->name, &f->name) != LM_OK)
        goto fail;
    if (sh->nlabels > 0) {
        f->label_names = calloc(sh->nlabels, sizeof *f->label_names);
        if (f->label_names == NULL)
            goto fail;
        for (size_t i = 0; i < sh->nlabels; i++)
            if (copy_cstr(sh->labels[i], &f->label_names[i]) != LM_OK)
                goto fail;
    }
    f->series = calloc(sh->max_series, sizeof *f->series);
    f->index = calloc(isize, sizeof *f->index);
    if (f->series == NULL || f->index == NULL)
        goto fail;

    if (sh->type == LM_HISTOGRAM) {
        f->unit_scale = sh->unit_scale;
        f->layout = layout_new(sh->ubounds, sh->nbounds, 0);
        lm_hproj *p = calloc(1, sizeof *p);
        if (f->layout == NULL || p == NULL) {
            free(p);
            goto fail;
        }
        proj_fill(p, sh, f->layout, NULL);
        atomic_init(&f->proj, p);
        f->projs = p;
        atomic_init(&f->native_view, 0);
        if (sh->has_native) {
            f->native = lm__native_new(reg, sh->native.schema, sh->native_zt, sh->unit_scale);
            if (f->native == NULL)
                goto fail;
            atomic_init(&f->native_view, lm__native_view_pack(sh->native));
            f->width += lm__native_fixed_cells(f->native);
        }
    }

    f->overflow_spare = series_alloc(f, sh->nlabels);
    if (f->overflow_spare == NULL)
        goto fail;
    f->overflow_spare->is_overflow = true;
    for (size_t i = 0; i < sh->nlabels; i++)
        if (copy_cstr(LM_OVERFLOW_VALUE, &f->overflow_spare->values[i]) != LM_OK)
            goto fail;
    return f;

fail:
    lm__family_free(f);
    return NULL;
}

static lm_family *find_live(lm_registry *reg, const char *name)
{
    size_t nf = atomic_load_explicit(&reg->nfamilies, memory_order_relaxed);
    for (size_t i = 0; i < nf; i++) {
        lm_family *f = reg->families[i];
        if (!atomic_load_explicit(&f->retired, memory_order_relaxed) &&
            strcmp(f->name.ptr, name) == 0)
            return f;
    }
    return NULL;
}

/* Same type and label names: the family exposes the same series (name and
 * label set) as the shape would. */
static bool same_series_names(const lm_family *f, const shape *sh)
{
    if (f->type != sh->type || f->nlabels != sh->nlabels)
        return false;
    for (size_t i = 0; i < sh->nlabels; i++)
        if (strcmp(f->label_names[i].ptr, sh->labels[i]) != 0)
            return false;
    return true;
}

/* ... and the same cap and unit: a replacement may then change the help and
 * buckets in place (update_in_place). */
static bool same_identity(const lm_family *f, const shape *sh)
{
    return same_series_names(f, sh) && f->max_series == sh->max_series &&
           (f->type != LM_HISTOGRAM || f->unit_scale == sh->unit_scale);
}

/* A retired family of this name and identity: a replacement that goes
 * back to it gets it back rather than a new family, so flipping between
 * shapes costs no family and no cells. While retired it exposed nothing and
 * no other family exposed its series (one family per identity), so its
 * counts may continue where they stopped. */
static lm_family *find_retired(lm_registry *reg, const shape *sh)
{
    size_t nf = atomic_load_explicit(&reg->nfamilies, memory_order_relaxed);
    for (size_t i = 0; i < nf; i++) {
        lm_family *f = reg->families[i];
        if (atomic_load_explicit(&f->retired, memory_order_relaxed) &&
            strcmp(f->name.ptr, sh->name) == 0 && same_identity(f, sh))
            return f;
    }
    return NULL;
}

/* What histogram f exposes of its native buckets when sh replaces its
 * shape, packed into *view: any max_buckets, a schema down to -4, or none;
 * but not finer or other buckets than it has recorded since it was made
 * (LM_ERR_EXISTS: past observations cannot be split). */
static int native_view_for(const lm_family *f, const shape *sh, const char *q, uint64_t *view,
                           lm_error *err)
{
    if (!sh->has_native) {
        lm_native_view v = lm__native_view_unpack(
            atomic_load_explicit(&((lm_family *)f)->native_view, memory_order_relaxed));
        v.on = false; /* recording goes on; shown again by a later replace */
        *view = f->native != NULL ? lm__native_view_pack(v) : 0;
        return 0;
    }
    const char *why = NULL;
    char buf[128];
    if (f->native == NULL) {
        why = "it was created without native buckets";
    } else if (sh->native.schema > f->native->schema) {
        snprintf(buf, sizeof buf, "it records native buckets at schema %d, not finer",
                 f->native->schema);
        why = buf;
    } else if (sh->native_zt != f->native->zero_threshold) {
        snprintf(buf, sizeof buf, "its native zero threshold is %g", f->native->zero_threshold);
        why = buf;
    }
    if (why != NULL) {
        lm__set_error(err, LM_ERR_EXISTS,
                      "histogram %s cannot change to native schema %d with zero threshold %g: "
                      "%s, and the observations made so far cannot be split finer (restart the "
                      "process to change it)",
                      q, sh->native.schema, sh->native_zt, why);
        return -1;
    }
    *view = lm__native_view_pack(sh->native);
    return 0;
}

/* Gives f (same identity as sh) sh's help text and buckets. The series
 * stay the same series: a histogram keeps counting every observation
 * across any sequence of bucket changes (hist_rebucket_locked). Takes
 * sh->help when it is used. */
static int update_in_place(lm_family *f, shape *sh, const char *q, lm_error *err)
{
    lm_help *nh = NULL, *seen = NULL;
    const lm_text *cur = lm__family_help(f);
    if (cur->len != sh->help.len || memcmp(cur->ptr, sh->help.ptr, cur->len) != 0) {
        /* A help text used before is published again (configs that flip
         * allocate nothing); the family owns all it ever had (f->helps). */
        for (seen = f->helps; seen != NULL; seen = seen->next)
            if (seen->text.len == sh->help.len &&
                memcmp(seen->text.ptr, sh->help.ptr, sh->help.len) == 0)
                break;
        if (seen == NULL && (nh = calloc(1, sizeof *nh)) == NULL) {
            lm__set_error(err, LM_ERR_NOMEM, "out of memory replacing the help of family %s", q);
            return -1;
        }
    }
    char why[160];
    uint64_t view = 0;
    if (f->type == LM_HISTOGRAM && native_view_for(f, sh, q, &view, err) != 0) {
        free(nh);
        return -1;
    }
    if (f->type == LM_HISTOGRAM && bounds_differ(f, sh, why, sizeof why) &&
        hist_rebucket_locked(f, sh, q, err) != 0) {
        free(nh);
        return -1;
    }
    if (f->type == LM_HISTOGRAM)
        atomic_store_explicit(&f->native_view, view, memory_order_release);
    if (nh != NULL) {
        nh->text = sh->help;
        sh->help = (lm_text){0};
        nh->next = f->helps;
        f->helps = nh;
        seen = nh;
    }
    if (seen != NULL)
        atomic_store_explicit(&f->help, seen, memory_order_release);
    atomic_store_explicit(&f->kind, sh->kind, memory_order_relaxed);
    return 0;
}

/* Makes `next` the live family of its name in place of `prev` (either may be
 * NULL) inside one retire_seq write section. */
static void swap_live(lm_registry *reg, lm_family *prev, lm_family *next)
{
    unsigned s = atomic_load_explicit(&reg->retire_seq, memory_order_relaxed);
    atomic_store_explicit(&reg->retire_seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    if (prev != NULL)
        atomic_store_explicit(&prev->retired, true, memory_order_relaxed);
    if (next != NULL)
        atomic_store_explicit(&next->retired, false, memory_order_relaxed);
    atomic_store_explicit(&reg->retire_seq, s + 2, memory_order_release);
}

/* One consistent view of the retired flags (read between two equal even
 * values of retire_seq): live[i] for each family when live is not NULL, the
 * live families into out[0..cap). Returns the number of live families and
 * sets *nfam to the number of families. */
static size_t snapshot(lm_registry *reg, bool *live, lm_family **out, size_t cap, size_t *nfam)
{
    for (;;) {
        unsigned s1 = atomic_load_explicit(&reg->retire_seq, memory_order_acquire);
        if (s1 & 1u) {
            sched_yield(); /* a replacement is mid-swap under reg->lock: brief */
            continue;
        }
        size_t nf = atomic_load_explicit(&reg->nfamilies, memory_order_acquire), nlive = 0;
        for (size_t i = 0; i < nf; i++) {
            bool l = !atomic_load_explicit(&reg->families[i]->retired, memory_order_relaxed);
            if (live != NULL)
                live[i] = l;
            if (l && nlive < cap)
                out[nlive] = reg->families[i];
            nlive += l;
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&reg->retire_seq, memory_order_relaxed) == s1) {
            *nfam = nf;
            return nlive;
        }
    }
}

void lm__families_snapshot(lm_registry *reg, bool *live, size_t *nfam)
{
    snapshot(reg, live, NULL, 0, nfam);
}

size_t lm_registry_families(lm_registry *reg, lm_family **out, size_t cap)
{
    size_t nf;
    if (reg == NULL)
        return 0;
    return snapshot(reg, NULL, out, out != NULL ? cap : 0, &nf);
}

lm_family *lm__family_register_locked(lm_registry *reg, const lm_family_options *opts,
                                      bool replace, lm_error *err)
{
    shape sh;
    char q[QCAP];
    if (validate(opts, &sh, err) != 0)
        return NULL;
    lm__quote(q, QCAP, sh.name, strlen(sh.name));

    lm_family *old = find_live(reg, sh.name);
    if (old != NULL) {
        char why[160];
        if (!shape_differs(old, &sh, why, sizeof why)) {
            lm__text_free(&sh.help);
            return old; /* a reload: same family, counters continue */
        }
        if (!replace) {
            lm__set_error(err, LM_ERR_EXISTS,
                          "family %s is already registered with another shape: %s", q, why);
            lm__text_free(&sh.help);
            return NULL;
        }
        if (same_series_names(old, &sh)) {
            /* The same series under another help or buckets: they must
             * keep counting, never be swapped for other counts. */
            if (!same_identity(old, &sh)) {
                lm__set_error(err, LM_ERR_EXISTS,
                              "family %s cannot be replaced with the same labels: %s (a "
                              "replacement may change its help text and buckets only)",
                              q, why);
                goto fail;
            }
            if (update_in_place(old, &sh, q, err) != 0)
                goto fail;
            lm__text_free(&sh.help);
            return old;
        }
    }
    if (check_clashes(reg, &sh, old, err) != 0)
        goto fail;
    if (old != NULL) {
        lm_family *back = find_retired(reg, &sh);
        if (back != NULL) {
            if (update_in_place(back, &sh, q, err) != 0)
                goto fail;
            swap_live(reg, old, back);
            lm__text_free(&sh.help);
            return back;
        }
    }

    size_t nf = atomic_load_explicit(&reg->nfamilies, memory_order_relaxed);
    if (nf >= reg->opts.max_families) {
        lm__set_error(err, LM_ERR_LIMIT,
                      "cannot register family %s: the registry's max_families (%zu) is reached "
                      "(replaced families keep their place)",
                      q, reg->opts.max_families);
        goto fail;
    }
    lm_family *f = family_build(reg, &sh);
    if (f == NULL) {
        lm__set_error(err, LM_ERR_NOMEM, "out of memory registering family %s", q);
        goto fail;
    }
    uint32_t width = f->width; /* family_width and the native fixed cells */
    if (reg->opts.slot_capacity - reg->slots_used < width) {
        lm__set_error(err, LM_ERR_LIMIT,
                      "cannot register family %s: slot_capacity (%zu cells) is exhausted", q,
                      reg->opts.slot_capacity);
        lm__family_free(f);
        goto fail;
    }
    series_place(f->overflow_spare, f, (uint32_t)reg->slots_used);
    reg->slots_used += width;

    /* Retire before publishing, inside a retire_seq section: a concurrent
     * exposition never shows the name twice. The release store of
     * nfamilies orders the retirement before the new family is visible. */
    if (old != NULL)
        swap_live(reg, old, NULL);
    reg->families[nf] = f;
    atomic_store_explicit(&reg->nfamilies, nf + 1, memory_order_release);
    return f;

fail:
    lm__text_free(&sh.help);
    return NULL;
}

static lm_family *register_public(lm_registry *reg, const lm_family_options *opts, bool replace,
                                  lm_error *err)
{
    if (reg == NULL || opts == NULL) {
        lm__set_error(err, LM_ERR_INVALID, "%s is NULL", reg == NULL ? "registry" : "options");
        return NULL;
    }
    pthread_mutex_lock(&reg->lock);
    lm_family *f = lm__family_register_locked(reg, opts, replace, err);
    pthread_mutex_unlock(&reg->lock);
    return f;
}

lm_family *lm_family_register(lm_registry *reg, const lm_family_options *opts, lm_error *err)
{
    return register_public(reg, opts, false, err);
}

lm_family *lm_family_replace(lm_registry *reg, const lm_family_options *opts, lm_error *err)
{
    return register_public(reg, opts, true, err);
}

/* ---------------------------------------------------------------- series */

/* FNV-1a 64 over each value preceded by its length, so ("ab","c") and
 * ("a","bc") differ. */
static uint64_t values_hash(const lm_text *v, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        uint64_t len = v[i].len;
        for (int b = 0; b < 8; b++) {
            h ^= (unsigned char)(len >> (8 * b));
            h *= 0x100000001b3ULL;
        }
        for (size_t j = 0; j < v[i].len; j++) {
            h ^= (unsigned char)v[i].ptr[j];
            h *= 0x100000001b3ULL;
        }
    }
    return h;
}

/* Doubles fam's index and reinserts its n series (the index holds exactly
 * series[0..n); the overflow series is never in it). Under reg->lock like
 * every index access. -1 (index unchanged) when out of memory. */
static int index_grow(lm_family *fam, size_t n)
{
    size_t isize = (fam->index_mask + 1) * 2;
    lm_series **idx = calloc(isize, sizeof *idx);
    if (idx == NULL)
        return -1;
    size_t mask = isize - 1;
    for (size_t k = 0; k < n; k++) {
        lm_series *s = fam->series[k];
        size_t i = s->hash & mask;
        while (idx[i] != NULL)
            i = (i + 1) & mask;
        idx[i] = s;
    }
    free(fam->index);
    fam->index = idx;
    fam->index_mask = mask;
    return 0;
}

static bool values_eq(const lm_text *a, const lm_text *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].len != b[i].len || memcmp(a[i].ptr, b[i].ptr, a[i].len) != 0)
            return false;
    return true;
}

lm_series *lm__family_overflow_locked(lm_family *fam)
{
    lm_series *o = atomic_load_explicit(&fam->overflow, memory_order_relaxed);
    if (o == NULL) {
        o = fam->overflow_spare;
        atomic_store_explicit(&fam->overflow, o, memory_order_release);
    }
    return o;
}

lm_series *lm__series_get_locked(lm_family *fam, const lm_str *values, lm_error *err)
{
    lm_registry *reg = fam->reg;
    size_t nl = fam->nlabels;
    lm_text tmp[LM_MAX_LABELS];
    lm_series *s = NULL;
    char q[QCAP];

    if (nl > 0 && values == NULL) {
        lm__set_error(err, LM_ERR_INVALID, "family %s has %zu labels but label_values is NULL",
                      lm__quote(q, QCAP, fam->name.ptr, fam->name.len), nl);
        return NULL;
    }
    size_t done = 0;
    for (; done < nl; done++) {
        int rc = lm__text_from(values[done], reg->opts.max_label_value_len, &tmp[done]);
        if (rc != LM_OK) {
            if (rc == LM_ERR_INVALID)
                lm__set_error(err, LM_ERR_INVALID,
                              "family %s: label value %zu has a NULL pointer and length %zu",
                              lm__quote(q, QCAP, fam->name.ptr, fam->name.len), done,
                              values[done].len);
            else
                lm__set_error(err, LM_ERR_NOMEM, "out of memory copying a label value");
            goto out;
        }
    }

    bool all_overflow = nl > 0;
    for (size_t i = 0; i < nl && all_overflow; i++)
        all_overflow = strcmp(tmp[i].ptr, LM_OVERFLOW_VALUE) == 0;
    if (all_overflow) {
        /* Would duplicate the overflow series' label set: it is that series. */
        s = lm__family_overflow_locked(fam);
        goto out;
    }

    uint64_t h = values_hash(tmp, nl);
    size_t i = h & fam->index_mask;
    for (lm_series *e; (e = fam->index[i]) != NULL; i = (i + 1) & fam->index_mask) {
        if (e->hash == h && values_eq(e->values, tmp, nl)) {
            s = e;
            goto out;
        }
    }

    size_t n = atomic_load_explicit(&fam->nseries, memory_order_relaxed);
    if (n >= fam->max_series) {
        atomic_fetch_add_explicit(&fam->folded, 1, memory_order_relaxed);
        s = lm__family_overflow_locked(fam);
        goto out;
    }
    if (reg->opts.slot_capacity - reg->slots_used < fam->width) {
        lm__set_error(err, LM_ERR_LIMIT,
                      "cannot create a series of family %s: slot_capacity (%zu cells) is "
                      "exhausted",
                      lm__quote(q, QCAP, fam->name.ptr, fam->name.len), reg->opts.slot_capacity);
        goto out;
    }
    s = series_alloc(fam, 0);
    if (s == NULL) {
        lm__set_error(err, LM_ERR_NOMEM, "out of memory creating a series");
        goto out;
    }
    if (nl > 0) {
        s->values = malloc(nl * sizeof *s->values);
        if (s->values == NULL) {
            free(s);
            s = NULL;
            lm__set_error(err, LM_ERR_NOMEM, "out of memory creating a series");
            goto out;
        }
        memcpy(s->values, tmp, nl * sizeof *tmp);
        done = 0; /* ownership moved */
    }
    /* Load factor at most 1/2 after this insert, as when the index was
     * sized for the cap up front. Should doubling fail while a free slot
     * remains, the probe still terminates: carry on denser. */
    if (2 * (n + 1) > fam->index_mask + 1) {
        if (index_grow(fam, n) == 0) {
            i = h & fam->index_mask;
            while (fam->index[i] != NULL)
                i = (i + 1) & fam->index_mask;
        } else if (n + 2 > fam->index_mask + 1) {
            series_free(s, nl);
            s = NULL;
            lm__set_error(err, LM_ERR_NOMEM, "out of memory growing a series index");
            goto out;
        }
    }
    s->hash = h;
    series_place(s, fam, (uint32_t)reg->slots_used);
    reg->slots_used += fam->width;
    fam->index[i] = s;
    fam->series[n] = s;
    atomic_store_explicit(&fam->nseries, n + 1, memory_order_release);

out:
    for (size_t k = 0; k < done; k++)
        lm__text_free(&tmp[k]);
    return s;
}

lm_series *lm_series_get(lm_family *fam, const lm_str *label_values, lm_error *err)
{
    if (fam == NULL) {
        lm__set_error(err, LM_ERR_INVALID, "family is NULL");
        return NULL;
    }
    lm_registry *reg = fam->reg;
    pthread_mutex_lock(&reg->lock);
    lm_series *s = lm__series_get_locked(fam, label_values, err);
    pthread_mutex_unlock(&reg->lock);
    return s;
}
