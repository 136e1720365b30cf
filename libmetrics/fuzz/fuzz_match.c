/* libFuzzer target for the route template matcher: a fuzzed template set
 * (mostly well-formed, built from a small segment alphabet so that
 * templates share prefixes and compete; sometimes raw bytes) and fuzzed
 * paths. The library's answer must equal this file's reference: a brute
 * force over every template with its own template reader, segment matcher
 * and the documented precedence (most literal segments, then the first
 * differing segment's kind: literal, int, float, uuid, str, path). Whether
 * a set compiles must agree with the reference reader too.
 *
 * Input layout (a byte reader that yields zeros once exhausted):
 *   ntemplates, per template: mode byte, then segments or raw bytes;
 *   npaths, per path: mode byte, then segments or raw bytes. */
#include "fuzz_input.h"
#include "libmetrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXT 24
#define MAXLEN 160

/* Segments both templates and paths draw from: literals that look like
 * each convertor's input, empties, dots, braces. */
static const char *const lits[] = {"a", "b", "ab", "", ".", "..", "12", "1.5", "7.",
                                   "123e4567-e89b-12d3-a456-426614174000",
                                   "123e4567e89b12d3a456426614174000", "me", "x y", "%2F"};
static const char *const params[] = {"{p}", "{q:str}", "{i:int}", "{f:float}", "{u:uuid}",
                                     "{r:path}", "{p:path}", "{x:slug}", "{1}", "{p",
                                     "p}", "{p}.json"};
#define NLITS (sizeof lits / sizeof lits[0])
#define NPARAMS (sizeof params / sizeof params[0])

static size_t gen(rd *r, char *out, bool tmpl)
{
    uint8_t mode = u8(r);
    if (mode >= 240) /* raw bytes, any content */
        return raw(r, out, MAXLEN);
    size_t n = 0, nseg = 1 + u8(r) % 5;
    if (mode >= 230)
        out[n++] = 'x'; /* no leading slash */
    for (size_t i = 0; i < nseg; i++) {
        out[n++] = '/';
        uint8_t c = u8(r);
        const char *s = (tmpl && c % 3 == 0) ? params[(c / 3) % NPARAMS] : lits[c % NLITS];
        size_t l = strlen(s);
        if (n + l + 1 >= MAXLEN)
            break;
        memcpy(out + n, s, l);
        n += l;
    }
    return n;
}

/* --------------------------------------------------------- the reference */

enum { R_LIT, R_INT, R_FLOAT, R_UUID, R_STR, R_PATH };

typedef struct rseg {
    int kind;
    const char *s; /* literal or name */
    size_t n;
} rseg;

typedef struct rtmpl {
    rseg seg[70];
    int nseg;
} rtmpl;

static bool ident(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
              (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

/* Reads template t; false if the documented syntax rejects it. */
static bool ref_parse(const char *t, size_t len, rtmpl *out)
{
    if (len == 0 || t[0] != '/' || len > LM_MATCHER_MAX_TEMPLATE_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
            return false;
    out->nseg = 0;
    size_t a = 1;
    while (1) {
        size_t b = a;
        while (b < len && t[b] != '/')
            b++;
        if (out->nseg == LM_MATCHER_MAX_SEGMENTS)
            return false;
        rseg *g = &out->seg[out->nseg++];
        const char *s = t + a;
        size_t n = b - a;
        bool brace = false;
        for (size_t i = 0; i < n; i++)
            brace |= s[i] == '{' || s[i] == '}';
        if (!brace) {
            *g = (rseg){R_LIT, s, n};
        } else {
            if (n < 2 || s[0] != '{' || s[n - 1] != '}')
                return false;
            size_t colon = 0;
            for (size_t i = 1; i < n - 1; i++) {
                if (s[i] == '{' || s[i] == '}')
                    return false;
                if (s[i] == ':' && colon == 0)
                    colon = i;
            }
            size_t nend = colon ? colon : n - 1;
            if (!ident(s + 1, nend - 1))
                return false;
            int kind = R_STR;
            if (colon) {
                const char *c = s + colon + 1;
                size_t cn = n - 1 - colon - 1;
                static const char *const names[] = {"int", "float", "uuid", "str", "path"};
                kind = -1;
                for (int k = 0; k < 5; k++)
                    if (strlen(names[k]) == cn && memcmp(names[k], c, cn) == 0)
                        kind = R_INT + k;
                if (kind < 0)
                    return false;
            }
            for (int k = 0; k < out->nseg - 1; k++)
                if (out->seg[k].kind != R_LIT && out->seg[k].n == nend - 1 &&
                    memcmp(out->seg[k].s, s + 1, nend - 1) == 0)
                    return false;
            if (kind == R_PATH && b < len)
                return false;
            *g = (rseg){kind, s + 1, nend - 1};
        }
        if (b >= len)
            break;
        a = b + 1;
    }
    return true;
}

static bool same_shape(const rtmpl *x, const rtmpl *y)
{
    if (x->nseg != y->nseg)
        return false;
    for (int i = 0; i < x->nseg; i++) {
        if (x->seg[i].kind != y->seg[i].kind)
            return false;
        if (x->seg[i].kind == R_LIT &&
            (x->seg[i].n != y->seg[i].n || memcmp(x->seg[i].s, y->seg[i].s, x->seg[i].n) != 0))
            return false;
    }
    return true;
}

static bool all(const char *s, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++)
        if (strchr(set, s[i]) == NULL || s[i] == 0)
            return false;
    return true;
}

#define DIGITS "0123456789"
#define HEX "0123456789abcdefABCDEF"

static bool ref_conv(int kind, const char *s, size_t n)
{
    switch (kind) {
    case R_INT:
        return n > 0 && all(s, n, DIGITS);
    case R_FLOAT: {
        const char *dot = memchr(s, '.', n);
        if (dot == NULL)
            return n > 0 && all(s, n, DIGITS);
        size_t a = (size_t)(dot - s);
        return a > 0 && all(s, a, DIGITS) && n - a - 1 > 0 && all(dot + 1, n - a - 1, DIGITS);
    }
    case R_UUID: {
        /* strip the optional dashes at the four group boundaries, then 32 hex */
        char buf[40];
        size_t o = 0, i = 0;
        static const size_t ends[4] = {8, 12, 16, 20};
        for (int g = 0; g <= 4; g++) {
            size_t want = g == 0 ? 8 : g == 4 ? 12 : 4;
            for (size_t k = 0; k < want; k++) {
                if (i >= n || o >= sizeof buf)
                    return false;
                buf[o++] = s[i++];
            }
            if (g < 4 && i < n && s[i] == '-' && o == ends[g])
                i++;
        }
        return i == n && o == 32 && all(buf, 32, HEX);
    }
    case R_STR:
        return n > 0;
    }
    return false;
}

/* Does template t match path p? */
static bool ref_match(const rtmpl *t, const char *p, size_t len)
{
    if (len == 0 || p[0] != '/')
        return false;
    size_t a = 1;
    for (int i = 0; i < t->nseg; i++) {
        const rseg *g = &t->seg[i];
        if (a > len)
            return false; /* the path ran out of segments */
        if (g->kind == R_PATH)
            return true; /* the rest, whatever */
        size_t b = a;
        while (b < len && p[b] != '/')
            b++;
        const char *s = p + a;
        size_t n = b - a;
        if (g->kind == R_LIT) {
            if (n != g->n || memcmp(s, g->s, n) != 0)
                return false;
        } else if (!ref_conv(g->kind, s, n)) {
            return false;
        }
        a = b + 1; /* past the slash, or len + 1 at the end */
    }
    return a == len + 1;
}

static int nlit(const rtmpl *t)
{
    int n = 0;
    for (int i = 0; i < t->nseg; i++)
        n += t->seg[i].kind == R_LIT;
    return n;
}

/* < 0 if x takes precedence over y. */
static int cmp(const rtmpl *x, const rtmpl *y)
{
    int lx = nlit(x), ly = nlit(y);
    if (lx != ly)
        return ly - lx;
    for (int i = 0; i < x->nseg && i < y->nseg; i++)
        if (x->seg[i].kind != y->seg[i].kind)
            return x->seg[i].kind - y->seg[i].kind;
    return 0;
}

static char tbuf[MAXT][MAXLEN + 1];
static rtmpl ref[MAXT];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd r = {data, size};
    size_t nt = 1 + u8(&r) % MAXT;
    lm_str ts[MAXT];
    bool valid = true;
    for (size_t i = 0; i < nt; i++) {
        size_t n = gen(&r, tbuf[i], true);
        ts[i] = (lm_str){tbuf[i], n};
        if (valid && !ref_parse(tbuf[i], n, &ref[i]))
            valid = false;
        for (size_t j = 0; valid && j < i; j++)
            if (same_shape(&ref[i], &ref[j]))
                valid = false;
    }
    lm_error err;
    size_t bad;
    lm_matcher *m = lm_matcher_new(ts, nt, &bad, &err);
    if ((m != NULL) != valid) {
        fprintf(stderr, "compile disagrees: library %s, reference %s (%s)\n",
                m ? "accepted" : "refused", valid ? "accepts" : "refuses",
                m ? "" : err.message);
        abort();
    }
    if (m == NULL) {
        if (bad >= nt || err.message[0] == 0)
            abort();
        return 0;
    }
    size_t np = 1 + u8(&r) % 16;
    for (size_t k = 0; k < np; k++) {
        char p[MAXLEN + 1];
        size_t n = gen(&r, p, false);
        size_t want = LM_MATCH_NONE;
        for (size_t i = 0; i < nt; i++)
            if (ref_match(&ref[i], p, n) && (want == LM_MATCH_NONE || cmp(&ref[i], &ref[want]) < 0))
                want = i;
        size_t got = lm_matcher_match(m, (lm_str){p, n});
        if (got != want) {
            fprintf(stderr, "path \"%.*s\": library %zu, reference %zu\n", (int)n, p, got, want);
            abort();
        }
    }
    lm_matcher_free(m);
    return 0;
}
