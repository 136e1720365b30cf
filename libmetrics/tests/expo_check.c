/* The exposition structure checker (see expo_check.h). Independent of the
 * library's renderer: it parses the bytes as an ingestor would, so it must
 * not share code with expo.c. Stops at the first problem. */
#include "expo_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_LABELS 64

/* ----------------------------------------------- byte-string hash map */

typedef struct map_slot {
    char *key; /* NULL: empty */
    size_t len;
    size_t val;
} map_slot;

typedef struct strmap {
    map_slot *s;
    size_t cap, count;
} strmap;

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static map_slot *map_find(const strmap *m, const char *k, size_t n)
{
    if (m->cap == 0)
        return NULL;
    size_t i = (size_t)hash_bytes(k, n) & (m->cap - 1);
    while (m->s[i].key) {
        if (m->s[i].len == n && memcmp(m->s[i].key, k, n) == 0)
            return &m->s[i];
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}

static bool map_get(const strmap *m, const char *k, size_t n, size_t *val)
{
    map_slot *s = map_find(m, k, n);
    if (s && val)
        *val = s->val;
    return s != NULL;
}

static int map_grow(strmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    map_slot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->s[i].key)
            continue;
        size_t j = (size_t)hash_bytes(m->s[i].key, m->s[i].len) & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = m->s[i];
    }
    free(m->s);
    m->s = ns;
    m->cap = ncap;
    return 0;
}

/* Inserts (or overwrites) k -> val; -1 when out of memory. */
static int map_put(strmap *m, const char *k, size_t n, size_t val)
{
    map_slot *s = map_find(m, k, n);
    if (s) {
        s->val = val;
        return 0;
    }
    if ((m->count + 1) * 2 > m->cap && map_grow(m) != 0)
        return -1;
    char *copy = malloc(n ? n : 1);
    if (!copy)
        return -1;
    memcpy(copy, k, n);
    size_t i = (size_t)hash_bytes(k, n) & (m->cap - 1);
    while (m->s[i].key)
        i = (i + 1) & (m->cap - 1);
    m->s[i] = (map_slot){copy, n, val};
    m->count++;
    return 0;
}

static void map_clear(strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->s[i].key);
    free(m->s);
    *m = (strmap){0};
}

/* --------------------------------------------------------- the checker */

typedef struct fam {
    const char *name;
    size_t len;
    expo_type type;
    bool has_type, has_help, has_unit, has_samples;
    size_t line;
} fam;

typedef struct hgroup {
    bool active;
    char *key; /* canonical labels without le */
    size_t keylen;
    size_t line;
    size_t nbuckets;
    double last_le, last_v;
    bool inf, negative_le;
    double inf_v;
    bool has_count, has_sum;
    double count_v, sum_v;
    size_t count_line, sum_line;
} hgroup;

typedef struct label {
    const char *name;
    size_t nlen;
    size_t voff, vlen; /* decoded value in ck.vals */
} label;

typedef struct ck {
    lm_format fmt;
    bool om;
    size_t line;
    char *msg;
    size_t msgcap;
    bool failed;
    fam *fams;
    size_t nfams, capfams;
    long cur;
    strmap fam_index; /* family name -> index */
    strmap claims;    /* names owned by closed families -> index */
    strmap series;    /* canonical series keys */
    strmap groups;    /* histogram series of the current family */
    hgroup g;
    char *buf; /* scratch: decoded label values, then canonical keys */
    size_t bufcap;
    expo_check_stats st;
} ck;

__attribute__((format(printf, 2, 3))) static int fail(ck *c, const char *fmt, ...)
{
    if (c->failed)
        return -1;
    c->failed = true;
    int n = 0;
    if (c->line)
        n = snprintf(c->msg, c->msgcap, "line %zu: ", c->line);
    if (n < 0 || (size_t)n >= c->msgcap)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg + n, c->msgcap - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int reserve(ck *c, size_t need)
{
    if (need <= c->bufcap)
        return 0;
    size_t ncap = c->bufcap ? c->bufcap : 256;
    while (ncap < need)
        ncap *= 2;
    char *nb = realloc(c->buf, ncap);
    if (!nb)
        return fail(c, "out of memory");
    c->buf = nb;
    c->bufcap = ncap;
    return 0;
}

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF.
 * Returns the offset of the first bad byte, or len. */
static size_t utf8_bad(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char b = s[i];
        size_t n;
        uint32_t cp;
        if (b < 0x80) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            n = 1, cp = b & 0x1F;
        } else if (b >= 0xE0 && b <= 0xEF) {
            n = 2, cp = b & 0x0F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            n = 3, cp = b & 0x07;
        } else {
            return i;
        }
        if (i + n >= len)
            return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n + 1;
    }
    return len;
}

static bool name_start(char ch, bool metric)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || (metric && ch == ':');
}

static bool name_char(char ch, bool metric)
{
    return name_start(ch, metric) || (ch >= '0' && ch <= '9');
}

/* Length of the metric (or label) name at p[0..n), 0 if none. */
static size_t scan_name(const char *p, size_t n, bool metric)
{
    if (n == 0 || !name_start(p[0], metric))
        return 0;
    size_t i = 1;
    while (i < n && name_char(p[i], metric))
        i++;
    return i;
}

static bool eq(const char *a, size_t an, const char *b)
{
    return strlen(b) == an && memcmp(a, b, an) == 0;
}

/* A number per the OpenMetrics ABNF (also what the text format's Go parser
 * accepts from us): [sign] digits [. digits] [e [sign] digits], or
 * [sign] inf/infinity, or nan (case-insensitive). */
static bool parse_number(const char *p, size_t n, double *out)
{
    char tmp[72];
    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    size_t i = 0;
    if (tmp[i] == '+' || tmp[i] == '-')
        i++;
    if (strcasecmp(tmp + i, "inf") == 0 || strcasecmp(tmp + i, "infinity") == 0) {
        *out = tmp[0] == '-' ? -INFINITY : INFINITY;
        return true;
    }
    if (strcasecmp(tmp, "nan") == 0) {
        *out = NAN;
        return true;
    }
    size_t d0 = i;
    while (tmp[i] >= '0' && tmp[i] <= '9')
        i++;
    size_t idigits = i - d0, fdigits = 0;
    if (tmp[i] == '.') {
        i++;
        size_t f0 = i;
        while (tmp[i] >= '0' && tmp[i] <= '9')
            i++;
        fdigits = i - f0;
    }
    if (idigits + fdigits == 0)
        return false;
    if (tmp[i] == 'e' || tmp[i] == 'E') {
        i++;
        if (tmp[i] == '+' || tmp[i] == '-')
            i++;
        size_t e0 = i;
        while (tmp[i] >= '0' && tmp[i] <= '9')
            i++;
        if (i == e0)
            return false;
    }
    if (i != n)
        return false;
    *out = strtod(tmp, NULL);
    return true;
}

/* Validates (and decodes into c->buf at *off) an escaped string at p[0..n):
 * stops at an unescaped '"' when quoted (returning its index in *end), else
 * consumes everything. Text HELP defines \\ and \n only; label values and
 * all OpenMetrics strings also \". */
static int unescape(ck *c, const char *p, size_t n, bool quoted, size_t *end, size_t *off,
                    size_t *vlen, const char *what)
{
    bool quote_escape = quoted || c->om;
    bool decode = off != NULL;
    if (decode && reserve(c, *off + n + 1) != 0)
        return -1;
    size_t o = decode ? *off : 0, start = o;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '\\') {
            if (i + 1 >= n)
                return fail(c, "%s ends with a lone backslash", what);
            char e = p[++i];
            char dch;
            if (e == '\\')
                dch = '\\';
            else if (e == 'n')
                dch = '\n';
            else if (e == '"' && quote_escape)
                dch = '"';
            else
                return fail(c, "%s has the undefined escape sequence \\%c", what, e);
            if (decode)
                c->buf[o++] = dch;
            continue;
        }
        if (ch == '"') {
            if (quoted) {
                *end = i;
                if (decode) {
                    *vlen = o - start;
                    *off = o;
                }
                return 0;
            }
            if (c->om)
                return fail(c, "%s has an unescaped double quote", what);
        }
        if (decode)
            c->buf[o++] = ch;
    }
    if (quoted)
        return fail(c, "%s is not terminated by a double quote", what);
    if (end)
        *end = n;
    return 0;
}

static const char *const *owned_suffixes(const ck *c, expo_type t)
{
    static const char *const none[] = {"", NULL};
    static const char *const text_hist[] = {"_bucket", "_sum", "_count", NULL};
    static const char *const om_hist[] = {"_bucket", "_sum", "_count", "_created", NULL};
    static const char *const text_sum[] = {"", "_sum", "_count", NULL};
    static const char *const om_sum[] = {"", "_sum", "_count", "_created", NULL};
    static const char *const om_counter[] = {"_total", "_created", NULL};
    switch (t) {
    case EXPO_COUNTER:
        return c->om ? om_counter : none;
    case EXPO_HISTOGRAM:
        return c->om ? om_hist : text_hist;
    case EXPO_SUMMARY:
        return c->om ? om_sum : text_sum;
    default:
        return none;
    }
}

static int finish_group(ck *c)
{
    hgroup *g = &c->g;
    if (!g->active)
        return 0;
    g->active = false;
    size_t saved = c->line;
    c->line = g->line;
    int rc = 0;
    if (g->nbuckets == 0)
        rc = fail(c, "histogram series without buckets");
    else if (!g->inf)
        rc = fail(c, "histogram series does not end with an le=\"+Inf\" bucket");
    else if (!c->om && (!g->has_count || !g->has_sum))
        rc = fail(c, "histogram series lacks _%s", g->has_count ? "sum" : "count");
    else if (c->om && g->has_count != g->has_sum)
        rc = fail(c, "histogram series has _%s without _%s", g->has_count ? "count" : "sum",
                  g->has_count ? "sum" : "count");
    else if (g->has_count && g->count_v != g->inf_v)
        rc = fail(c, "histogram _count %.17g != +Inf bucket %.17g", g->count_v, g->inf_v);
    else if (c->om && g->has_sum && g->negative_le)
        rc = fail(c, "histogram _sum with negative bucket thresholds (OpenMetrics)");
    else if (c->om && g->has_sum && g->sum_v < 0)
        rc = fail(c, "histogram _sum %.17g is negative (OpenMetrics: a counter)", g->sum_v);
    c->line = saved;
    c->st.histogram_series++;
    return rc;
}

static int close_family(ck *c)
{
    if (c->cur < 0)
        return 0;
    fam *f = &c->fams[c->cur];
    if (finish_group(c) != 0)
        return -1;
    map_clear(&c->groups);
    /* Names the family owns; OpenMetrics parsers also reserve the bare
     * family name. A clash makes the body ambiguous. */
    const char *const *sfx = owned_suffixes(c, f->type);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; sfx[i]; i++) {
            /* Own scratch: c->buf may hold the decoded labels of the sample
             * that is starting the next family. */
            size_t sl = strlen(sfx[i]);
            char *name = malloc(f->len + sl + 1);
            if (!name)
                return fail(c, "out of memory");
            memcpy(name, f->name, f->len);
            memcpy(name + f->len, sfx[i], sl);
            size_t other;
            int rc = 0;
            if (map_get(&c->claims, name, f->len + sl, &other) && other != (size_t)c->cur)
                rc = fail(c, "family %.*s clashes with family %.*s on the name %.*s", (int)f->len,
                          f->name, (int)c->fams[other].len, c->fams[other].name,
                          (int)(f->len + sl), name);
            else if (map_put(&c->claims, name, f->len + sl, (size_t)c->cur) != 0)
                rc = fail(c, "out of memory");
            free(name);
            if (rc)
                return rc;
        }
        static const char *const bare[] = {"", NULL};
        sfx = bare;
    }
    c->cur = -1;
    return 0;
}

static int enter_family(ck *c, const char *name, size_t len)
{
    if (c->cur >= 0 && c->fams[c->cur].len == len && memcmp(c->fams[c->cur].name, name, len) == 0)
        return 0;
    if (map_get(&c->fam_index, name, len, NULL))
        return fail(c, "family %.*s appears again after other families (interleaved)", (int)len,
                    name);
    if (close_family(c) != 0)
        return -1;
    size_t other;
    if (map_get(&c->claims, name, len, &other))
        return fail(c, "family %.*s uses a name owned by family %.*s", (int)len, name,
                    (int)c->fams[other].len, c->fams[other].name);
    if (c->nfams == c->capfams) {
        size_t ncap = c->capfams ? c->capfams * 2 : 32;
        fam *nf = realloc(c->fams, ncap * sizeof *nf);
        if (!nf)
            return fail(c, "out of memory");
        c->fams = nf;
        c->capfams = ncap;
    }
    c->fams[c->nfams] = (fam){.name = name, .len = len, .line = c->line};
    if (map_put(&c->fam_index, name, len, c->nfams) != 0)
        return fail(c, "out of memory");
    c->cur = (long)c->nfams++;
    c->st.families++;
    return 0;
}

static int metadata(ck *c, const char *p, size_t n)
{
    /* "# KIND name[ rest]" */
    const char *kinds[] = {"HELP", "TYPE", "UNIT"};
    int kind = -1;
    for (int k = 0; k < 3; k++)
        if (n >= 7 && memcmp(p, "# ", 2) == 0 && memcmp(p + 2, kinds[k], 4) == 0 && p[6] == ' ')
            kind = k;
    if (kind < 0 || (kind == 2 && !c->om)) {
        if (c->om)
            return fail(c, "comment line that is not HELP, TYPE, UNIT or EOF");
        return 0; /* a plain comment in text 0.0.4 */
    }
    const char *q = p + 7;
    size_t rest = n - 7;
    size_t nl = scan_name(q, rest, true);
    if (nl == 0)
        return fail(c, "%s line without a valid metric name", kinds[kind]);
    bool has_arg = nl < rest;
    if (has_arg && q[nl] != ' ')
        return fail(c, "%s line: metric name followed by '%c'", kinds[kind], q[nl]);
    const char *arg = has_arg ? q + nl + 1 : q + nl;
    size_t alen = has_arg ? rest - nl - 1 : 0;
    if (enter_family(c, q, nl) != 0)
        return -1;
    fam *f = &c->fams[c->cur];
    if (f->has_samples)
        return fail(c, "%s for %.*s after its samples", kinds[kind], (int)nl, q);
    if (kind == 0) {
        if (f->has_help)
            return fail(c, "second HELP for %.*s", (int)nl, q);
        if (c->om && !has_arg)
            return fail(c, "HELP for %.*s lacks the space before its text", (int)nl, q);
        f->has_help = true;
        return unescape(c, arg, alen, false, NULL, NULL, NULL, "HELP text");
    }
    if (kind == 2) {
        if (f->has_unit)
            return fail(c, "second UNIT for %.*s", (int)nl, q);
        f->has_unit = true;
        if (alen && !(nl > alen + 1 && q[nl - alen - 1] == '_' &&
                      memcmp(q + nl - alen, arg, alen) == 0))
            return fail(c, "UNIT %.*s is not a suffix of %.*s", (int)alen, arg, (int)nl, q);
        return 0;
    }
    if (f->has_type)
        return fail(c, "second TYPE for %.*s", (int)nl, q);
    f->has_type = true;
    if (eq(arg, alen, "counter"))
        f->type = EXPO_COUNTER;
    else if (eq(arg, alen, "gauge"))
        f->type = EXPO_GAUGE;
    else if (eq(arg, alen, "histogram"))
        f->type = EXPO_HISTOGRAM;
    else if (eq(arg, alen, "summary"))
        f->type = EXPO_SUMMARY;
    else if (eq(arg, alen, c->om ? "unknown" : "untyped"))
        f->type = EXPO_UNTYPED;
    else if (c->om && (eq(arg, alen, "gaugehistogram") || eq(arg, alen, "stateset") ||
                       eq(arg, alen, "info")))
        f->type = EXPO_OTHER;
    else
        return fail(c, "TYPE %.*s has the unknown type \"%.*s\"", (int)nl, q, (int)alen, arg);
    return 0;
}

static int cmp_label(const void *a, const void *b)
{
    const label *x = a, *y = b;
    size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
    int r = memcmp(x->name, y->name, n);
    return r ? r : (x->nlen > y->nlen) - (x->nlen < y->nlen);
}

/* Canonical key of labels (sorted by name) into c->buf after `at`,
 * skipping le when skip_le; returns its length. */
static int canonical(ck *c, const label *ls, size_t n, size_t at, bool skip_le, size_t *klen)
{
    size_t need = at;
    for (size_t i = 0; i < n; i++)
        need += ls[i].nlen + ls[i].vlen + 2;
    if (reserve(c, need) != 0)
        return -1;
    size_t o = at;
    for (size_t i = 0; i < n; i++) {
        if (skip_le && eq(ls[i].name, ls[i].nlen, "le"))
            continue;
        memcpy(c->buf + o, ls[i].name, ls[i].nlen);
        o += ls[i].nlen;
        c->buf[o++] = '\0';
        memmove(c->buf + o, c->buf + ls[i].voff, ls[i].vlen);
        o += ls[i].vlen;
        c->buf[o++] = '\0';
    }
    *klen = o - at;
    return 0;
}

/* An OpenMetrics exemplar at p[0..n) (" # {labels} value [timestamp]", to
 * the end of the line). Label values are decoded into c->buf after `at`
 * (scratch only). On success, ex and exlen give the raw label text between the
 * braces and exv the value. */
static int exemplar(ck *c, const char *p, size_t n, size_t at, const char **ex, size_t *exlen,
                    double *exv)
{
    if (n < 4 || memcmp(p, " # {", 4) != 0)
        return fail(c, "expected \" # {\" (an exemplar) after the value");
    size_t i = 4, chars = 0, off = at;
    label ls[MAX_LABELS];
    size_t nls = 0;
    *ex = p + i;
    bool first = true;
    for (;;) {
        if (i < n && p[i] == '}') {
            i++;
            break;
        }
        if (!first) {
            if (i >= n || p[i] != ',')
                return fail(c, "expected ',' or '}' in the exemplar's labels");
            i++;
        }
        first = false;
        size_t ln = scan_name(p + i, n - i, false);
        if (ln == 0)
            return fail(c, "bad label name in an exemplar");
        if (nls == MAX_LABELS)
            return fail(c, "more than %d exemplar labels", MAX_LABELS);
        const char *lname = p + i;
        i += ln;
        if (n - i < 2 || p[i] != '=' || p[i + 1] != '"')
            return fail(c, "expected =\" after exemplar label %.*s", (int)ln, lname);
        i += 2;
        size_t end, vlen, voff = off;
        if (unescape(c, p + i, n - i, true, &end, &off, &vlen, "exemplar label value") != 0)
            return -1;
        i += end + 1;
        for (size_t k = 0; k < nls; k++)
            if (ls[k].nlen == ln && memcmp(ls[k].name, lname, ln) == 0)
                return fail(c, "duplicate exemplar label %.*s", (int)ln, lname);
        ls[nls++] = (label){lname, ln, voff, vlen};
        /* The body is valid UTF-8 (checked first): characters are the bytes
         * that do not continue a sequence. */
        chars += ln;
        for (size_t k = 0; k < vlen; k++)
            chars += ((unsigned char)c->buf[voff + k] & 0xC0) != 0x80;
    }
    *exlen = (size_t)(p + i - 1 - *ex);
    if (chars > 128)
        return fail(c, "exemplar label set has %zu characters, more than OpenMetrics' 128", chars);
    if (i >= n || p[i] != ' ')
        return fail(c, "expected one space before the exemplar's value");
    i++;
    size_t vl = 0;
    while (i + vl < n && p[i + vl] != ' ')
        vl++;
    if (!parse_number(p + i, vl, exv))
        return fail(c, "exemplar value \"%.*s\" is not a number", (int)vl, p + i);
    i += vl;
    if (i < n) {
        i++;
        double ts;
        if (!parse_number(p + i, n - i, &ts) || !isfinite(ts))
            return fail(c, "bad exemplar timestamp \"%.*s\"", (int)(n - i), p + i);
    }
    return 0;
}

static int sample(ck *c, const char *p, size_t n, expo_sample_fn fn, void *ctx)
{
    size_t nl = scan_name(p, n, true);
    if (nl == 0)
        return fail(c, "sample line does not start with a metric name");
    size_t i = nl;
    label ls[MAX_LABELS];
    size_t nls = 0, vals = 0; /* decoded values go to c->buf[0..vals) */
    const char *lraw = "";
    size_t lraw_len = 0;
    if (i < n && p[i] == '{') {
        i++;
        lraw = p + i;
        bool first = true;
        for (;;) {
            if (i < n && p[i] == '}') {
                i++;
                break;
            }
            if (!first) {
                if (i >= n || p[i] != ',')
                    return fail(c, "expected ',' or '}' in the labels of %.*s", (int)nl, p);
                i++;
                if (!c->om && i < n && p[i] == '}') {
                    i++;
                    break;
                }
            }
            first = false;
            size_t ln = scan_name(p + i, n - i, false);
            if (ln == 0)
                return fail(c, "bad label name in %.*s", (int)nl, p);
            if (nls == MAX_LABELS)
                return fail(c, "more than %d labels", MAX_LABELS);
            const char *lname = p + i;
            i += ln;
            if (n - i < 2 || p[i] != '=' || p[i + 1] != '"')
                return fail(c, "expected =\" after label %.*s", (int)ln, lname);
            i += 2;
            size_t end, vlen, voff = vals;
            if (unescape(c, p + i, n - i, true, &end, &vals, &vlen, "label value") != 0)
                return -1;
            i += end + 1;
            if (ln >= 2 && lname[0] == '_' && lname[1] == '_')
                return fail(c, "reserved label name %.*s", (int)ln, lname);
            for (size_t k = 0; k < nls; k++)
                if (ls[k].nlen == ln && memcmp(ls[k].name, lname, ln) == 0)
                    return fail(c, "duplicate label %.*s", (int)ln, lname);
            ls[nls++] = (label){lname, ln, voff, vlen};
        }
        lraw_len = (size_t)(p + i - 1 - lraw);
    }
    if (i >= n || p[i] != ' ')
        return fail(c, "expected one space before the value of %.*s", (int)nl, p);
    i++;
    const char *val = p + i;
    size_t vl = 0;
    while (i + vl < n && p[i + vl] != ' ')
        vl++;
    double v;
    if (!parse_number(val, vl, &v))
        return fail(c, "value \"%.*s\" of %.*s is not a number", (int)vl, val, (int)nl, p);
    i += vl;
    if (i < n && !(c->om && n - i >= 3 && memcmp(p + i, " # ", 3) == 0)) { /* timestamp */
        i++;
        size_t tl = 0;
        while (i + tl < n && p[i + tl] != ' ')
            tl++;
        double ts;
        if (!parse_number(p + i, tl, &ts) || !isfinite(ts))
            return fail(c, "bad timestamp after the value of %.*s", (int)nl, p);
        i += tl;
    }
    const char *ex = NULL;
    size_t exlen = 0;
    double exv = 0;
    if (i < n) {
        if (!c->om)
            return fail(c, "unexpected text after the value of %.*s (text 0.0.4 has no exemplars)",
                        (int)nl, p);
        if (exemplar(c, p + i, n - i, vals, &ex, &exlen, &exv) != 0)
            return -1;
    }

    /* Family membership. */
    fam *f = c->cur >= 0 ? &c->fams[c->cur] : NULL;
    bool member = false;
    if (f && nl >= f->len && memcmp(p, f->name, f->len) == 0) {
        const char *const *sfx = owned_suffixes(c, f->type);
        for (size_t k = 0; sfx[k] && !member; k++)
            member = eq(p + f->len, nl - f->len, sfx[k]);
    }
    if (!member) {
        size_t other;
        if (map_get(&c->claims, p, nl, &other))
            return fail(c, "sample %.*s belongs to family %.*s, which already ended (interleaved)",
                        (int)nl, p, (int)c->fams[other].len, c->fams[other].name);
        if (enter_family(c, p, nl) != 0)
            return -1;
        f = &c->fams[c->cur];
    }
    f->has_samples = true;
    c->st.samples++;
    const char *suffix = p + f->len;
    size_t suffix_len = nl - f->len;

    /* Duplicate series: name + sorted labels. */
    label sorted[MAX_LABELS];
    memcpy(sorted, ls, nls * sizeof *ls);
    qsort(sorted, nls, sizeof *sorted, cmp_label);
    size_t klen;
    if (reserve(c, vals + nl + 1) != 0)
        return -1;
    memcpy(c->buf + vals, p, nl);
    c->buf[vals + nl] = '\0';
    if (canonical(c, sorted, nls, vals + nl + 1, false, &klen) != 0)
        return -1;
    if (map_get(&c->series, c->buf + vals, nl + 1 + klen, NULL))
        return fail(c, "duplicate series %.*s{%.*s}", (int)nl, p, (int)lraw_len, lraw);
    if (map_put(&c->series, c->buf + vals, nl + 1 + klen, 1) != 0)
        return fail(c, "out of memory");

    bool hist = f->type == EXPO_HISTOGRAM;
    bool is_bucket = hist && eq(suffix, suffix_len, "_bucket");
    if (ex && !((f->type == EXPO_COUNTER && eq(suffix, suffix_len, "_total")) || is_bucket ||
                (f->type == EXPO_OTHER && eq(suffix, suffix_len, "_bucket"))))
        return fail(c, "exemplar on %.*s: only counter _total and histogram _bucket samples may "
                       "have one",
                    (int)nl, p);
    bool is_count = hist && eq(suffix, suffix_len, "_count");
    bool is_sum = hist && eq(suffix, suffix_len, "_sum");
    const label *le = NULL;
    for (size_t k = 0; k < nls; k++)
        if (eq(ls[k].name, ls[k].nlen, "le"))
            le = &ls[k];
    /* le is an ordinary label elsewhere; in a histogram it belongs to the
     * buckets alone (the series' own labels must not include it). */
    if (le && hist && !is_bucket)
        return fail(c, "label le on %.*s, which is not a histogram bucket", (int)nl, p);
    bool counter_like = f->type == EXPO_COUNTER || is_bucket || is_count || is_sum;
    if (counter_like && isnan(v))
        return fail(c, "%.*s is NaN but counter-like", (int)nl, p);
    if ((f->type == EXPO_COUNTER || is_bucket || is_count) && v < 0)
        return fail(c, "%.*s is negative (%.*s) but counter-like", (int)nl, p, (int)vl, val);
    if ((is_bucket || is_count) && (!isfinite(v) || v != floor(v)))
        return fail(c, "%.*s value %.*s is not an integer", (int)nl, p, (int)vl, val);

    if (fn) {
        expo_sample s = {f->name, f->len, f->type, p, nl, lraw, lraw_len, val, vl, v, c->line,
                         ex, exlen, exv};
        fn(ctx, &s);
    }
    if (!hist)
        return 0;

    /* Histogram series: contiguous, then bucket order and cumulativeness. */
    size_t gk;
    if (canonical(c, sorted, nls, vals, true, &gk) != 0)
        return -1;
    hgroup *g = &c->g;
    if (!g->active || g->keylen != gk || memcmp(g->key, c->buf + vals, gk) != 0) {
        if (finish_group(c) != 0)
            return -1;
        if (map_get(&c->groups, c->buf + vals, gk, NULL))
            return fail(c, "histogram series {%.*s} of %.*s interleaved with another series",
                        (int)lraw_len, lraw, (int)f->len, f->name);
        if (map_put(&c->groups, c->buf + vals, gk, 1) != 0)
            return fail(c, "out of memory");
        char *key = g->key;
        size_t kcap_need = gk ? gk : 1;
        key = realloc(key, kcap_need);
        if (!key)
            return fail(c, "out of memory");
        memcpy(key, c->buf + vals, gk);
        *g = (hgroup){.active = true, .key = key, .keylen = gk, .line = c->line};
    }
    if (is_bucket) {
        if (!le)
            return fail(c, "%.*s without an le label", (int)nl, p);
        if (g->has_count || g->has_sum)
            return fail(c, "bucket after the _sum or _count of its series");
        if (g->inf)
            return fail(c, "bucket after the +Inf bucket");
        double b;
        const char *lv = c->buf + le->voff;
        if (!parse_number(lv, le->vlen, &b) || isnan(b))
            return fail(c, "le=\"%.*s\" is not a number", (int)le->vlen, lv);
        if (g->nbuckets && !(b > g->last_le))
            return fail(c, "le=\"%.*s\" does not increase", (int)le->vlen, lv);
        if (g->nbuckets && v < g->last_v)
            return fail(c, "bucket le=\"%.*s\" (%.*s) below the previous one: not cumulative",
                        (int)le->vlen, lv, (int)vl, val);
        /* An exemplar belongs to its bucket: not above le (allowing for
         * the last digit of two independently rounded decimals). */
        if (ex && !isinf(b) && !(exv <= b || exv - b <= fabs(b) * 1e-15))
            return fail(c, "exemplar value %.17g above its bucket le=\"%.*s\"", exv,
                        (int)le->vlen, lv);
        if (b < 0)
            g->negative_le = true;
        if (isinf(b) && b > 0) {
            if (c->om && !eq(lv, le->vlen, "+Inf"))
                return fail(c, "+Inf bucket spelled \"%.*s\"", (int)le->vlen, lv);
            g->inf = true;
            g->inf_v = v;
        }
        g->nbuckets++;
        g->last_le = b;
        g->last_v = v;
    } else if (is_count) {
        if (g->has_count)
            return fail(c, "second _count");
        g->has_count = true;
        g->count_v = v;
    } else if (is_sum) {
        if (g->has_sum)
            return fail(c, "second _sum");
        g->has_sum = true;
        g->sum_v = v;
    }
    return 0;
}

int expo_check(const char *body, size_t len, lm_format fmt, expo_sample_fn fn, void *ctx,
               expo_check_stats *stats, char *msg, size_t msgcap)
{
    ck c = {.fmt = fmt, .om = fmt == LM_FORMAT_OPENMETRICS, .msg = msg, .msgcap = msgcap,
            .cur = -1};
    if (msgcap)
        msg[0] = '\0';
    int rc = 0;
    size_t bad = utf8_bad((const unsigned char *)body, len);
    if (bad < len) {
        size_t line = 1;
        for (size_t i = 0; i < bad; i++)
            line += body[i] == '\n';
        c.line = line;
        rc = fail(&c, "invalid UTF-8 at byte offset %zu", bad);
    }
    if (rc == 0 && memchr(body, '\r', len))
        rc = fail(&c, "carriage return in the body");
    bool eof = false;
    size_t pos = 0;
    while (rc == 0 && pos < len) {
        const char *nlp = memchr(body + pos, '\n', len - pos);
        size_t end = nlp ? (size_t)(nlp - body) : len;
        const char *p = body + pos;
        size_t n = end - pos;
        c.line++;
        if (eof) {
            rc = fail(&c, "content after \"# EOF\"");
            break;
        }
        if (!nlp && !(c.om && eq(p, n, "# EOF"))) {
            rc = fail(&c, "last line does not end with a line feed");
            break;
        }
        if (c.om && eq(p, n, "# EOF"))
            eof = true;
        else if (n == 0)
            rc = c.om ? fail(&c, "blank line") : 0;
        else if (p[0] == '#')
            rc = metadata(&c, p, n);
        else
            rc = sample(&c, p, n, fn, ctx);
        pos = end + 1;
    }
    if (rc == 0)
        rc = close_family(&c);
    if (rc == 0 && c.om && !eof) {
        c.line = 0;
        rc = fail(&c, "no \"# EOF\" line at the end");
    }
    if (stats)
        *stats = c.st;
    map_clear(&c.fam_index);
    map_clear(&c.claims);
    map_clear(&c.series);
    map_clear(&c.groups);
    free(c.g.key);
    free(c.fams);
    free(c.buf);
    return rc == 0 && !c.failed ? 0 : -1;
}
