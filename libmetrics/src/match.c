/*
 * Route template matcher (libmetrics.h, "route template matcher"): a
 * segment trie compiled once. Each node has at most one child per
 * convertor and any number of literal children, found through one hash
 * table shared by the whole trie and keyed by (parent node, segment bytes),
 * so a lookup costs one hash of the segment whatever the fan-out. Matching
 * is a depth-first search in precedence order (literal, int, float, uuid,
 * str, path) bounded by the most literal segments still reachable below a
 * node: the first template found at the highest literal count is the
 * answer, and a branch that cannot beat it is never entered.
 */
#include "core.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QCAP 96

/* Segment kinds in precedence order; K_LIT is an edge of the hash table,
 * the others are the node's param[] children. */
enum { K_LIT = 0, K_INT, K_FLOAT, K_UUID, K_STR, K_PATH, K_NKIND };
#define NPARAM (K_NKIND - 1)

typedef struct mnode {
    uint32_t param[NPARAM]; /* child node per convertor K_INT.., 0: none */
    uint32_t term;          /* template index + 1 ending here, 0: none */
    uint32_t maxlit;        /* most literal segments below this node */
    uint32_t kinds;         /* bit K_LIT: has literal children; bit k for
                               K_INT..K_STR: param[k - 1] is set */
} mnode;

typedef struct medge {
    uint64_t last;          /* last_word() of the literal */
    uint32_t parent, child; /* child 0: empty slot (the root is no child) */
    uint32_t off, len;      /* the literal, in the matcher's bytes */
} medge;

struct lm_matcher {
    mnode *nodes;
    size_t nnodes, capnodes;
    medge *table;
    size_t mask; /* table size - 1, a power of two */
    size_t nedges;
    char *bytes;
    size_t nbytes, capbytes;
    unsigned maxdepth; /* most segments of any template */
};

/* --------------------------------------------------------------- hashing */

/* Segments are hashed a word at a time (a byte-serial hash such as FNV
 * spends a multiply's latency on every byte): each full 8-byte word, then
 * the zero-padded tail, then the length. The matcher computes the same
 * value while it scans for the segment's end (scan_segment). */
static inline uint64_t mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0xbf58476d1ce4e5b9u;
    return h ^ (h >> 31);
}

#define HASH_SEED 0x9e3779b97f4a7c15u

static inline uint64_t tail_word(const char *s, size_t n)
{
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)(unsigned char)s[i] << (8 * i);
    return w;
}

static inline uint64_t seg_hash(const char *s, size_t n)
{
    uint64_t h = HASH_SEED;
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = mix(h, w);
    }
    if (i < n)
        h = mix(h, tail_word(s + i, n - i));
    return h ^ n;
}

/* h is already mixed (mix() ends every segment hash), so one multiply
 * spreads the parent over it. */
static inline size_t slot_of(uint64_t h, uint32_t parent, size_t mask)
{
    uint64_t x = h ^ ((uint64_t)parent * 0x9e3779b97f4a7c15u);
    return (size_t)(x ^ (x >> 29)) & mask;
}

/* The literal's bytes after its full 8-byte words, zero-padded (its last
 * full word if it has no such tail): with the length, it settles most
 * lookups without touching the bytes, and the scan has it for free. */
static inline uint64_t last_word(const char *s, size_t n)
{
    size_t full = n & ~(size_t)7;
    if (full < n)
        return tail_word(s + full, n - full);
    uint64_t w = 0;
    if (n >= 8)
        memcpy(&w, s + n - 8, 8);
    return w;
}

/* The first nwords 8-byte words of a and b are equal (the rest of a
 * literal is compared through last_word); inline, as segments are short
 * and a call to memcmp costs more than the compare. */
static inline bool words_equal(const char *a, const char *b, size_t nwords)
{
    for (size_t i = 0; i < nwords; i++) {
        uint64_t x, y;
        memcpy(&x, a + 8 * i, 8);
        memcpy(&y, b + 8 * i, 8);
        if (x != y)
            return false;
    }
    return true;
}

static inline uint32_t lit_child(const lm_matcher *m, uint32_t parent, uint64_t h, uint64_t last,
                                 const char *s, size_t n)
{
    for (size_t i = slot_of(h, parent, m->mask);; i = (i + 1) & m->mask) {
        const medge *e = &m->table[i];
        if (e->child == 0)
            return 0;
        if (e->last == last && e->parent == parent && e->len == n &&
            (n <= 8 || words_equal(m->bytes + e->off, s, (n - 1) / 8)))
            return e->child;
    }
}

static int table_put(medge *table, size_t mask, const medge *e, uint64_t h)
{
    size_t i = slot_of(h, e->parent, mask);
    while (table[i].child != 0)
        i = (i + 1) & mask;
    table[i] = *e;
    return 0;
}

/* Keeps the table at most half full. */
static int table_grow(lm_matcher *m)
{
    if ((m->nedges + 1) * 2 <= m->mask + 1)
        return 0;
    size_t size = (m->mask + 1) * 2;
    medge *t = calloc(size, sizeof *t);
    if (t == NULL)
        return -1;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->table[i].child != 0)
            table_put(t, size - 1, &m->table[i],
                      seg_hash(m->bytes + m->table[i].off, m->table[i].len));
    free(m->table);
    m->table = t;
    m->mask = size - 1;
    return 0;
}

/* ------------------------------------------------------------- convertors */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool conv_int(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

static bool conv_float(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_digit(s[i]))
        i++;
    if (i == 0)
        return false;
    if (i == n)
        return true;
    if (s[i] != '.' || i + 1 == n)
        return false;
    return conv_int(s + i + 1, n - i - 1);
}

/* [0-9a-fA-F]{8}-?{4}-?{4}-?{4}-?{12}, as Starlette's UUIDConvertor. */
static bool conv_uuid(const char *s, size_t n)
{
    static const unsigned groups[5] = {8, 4, 4, 4, 12};
    size_t i = 0;
    for (int g = 0; g < 5; g++) {
        if (g > 0 && i < n && s[i] == '-')
            i++;
        for (unsigned k = 0; k < groups[g]; k++, i++)
            if (i >= n || !is_hex(s[i]))
                return false;
    }
    return i == n;
}

static bool conv_ok(int kind, const char *s, size_t n)
{
    switch (kind) {
    case K_INT:
        return conv_int(s, n);
    case K_FLOAT:
        return conv_float(s, n);
    case K_UUID:
        return conv_uuid(s, n);
    case K_STR:
        return n > 0;
    default:
        return true; /* K_PATH: anything, handled by the caller */
    }
}

/* ---------------------------------------------------------------- parsing */

typedef struct tseg {
    int kind;
    const char *lit; /* K_LIT: the literal; otherwise the parameter name */
    size_t len;
} tseg;

static bool name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool name_char(char c) { return name_start(c) || is_digit(c); }

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || !name_start(s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!name_char(s[i]))
            return false;
    return true;
}

static int conv_kind(const char *s, size_t n)
{
    static const struct {
        const char *name;
        int kind;
    } convs[] = {{"str", K_STR}, {"int", K_INT}, {"float", K_FLOAT}, {"uuid", K_UUID},
                 {"path", K_PATH}};
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++)
        if (strlen(convs[i].name) == n && memcmp(convs[i].name, s, n) == 0)
            return convs[i].kind;
    return -1;
}

/* Splits template t into segs (at most LM_MATCHER_MAX_SEGMENTS); returns
 * the count, or -1 with err filled. */
static int parse_template(lm_str t, size_t index, tseg *segs, lm_error *err)
{
    char q[QCAP];
#define Q lm__quote(q, QCAP, t.ptr, t.len)
    if (t.len == 0) {
        lm__set_error(err, LM_ERR_INVALID, "template #%zu is empty; a template starts with '/'",
                      index);
        return -1;
    }
    if (t.ptr[0] != '/') {
        lm__set_error(err, LM_ERR_INVALID, "template %s must start with '/'", Q);
        return -1;
    }
    if (t.len > LM_MATCHER_MAX_TEMPLATE_LEN) {
        lm__set_error(err, LM_ERR_INVALID, "template %s is %zu bytes long; the limit is %d", Q,
                      t.len, LM_MATCHER_MAX_TEMPLATE_LEN);
        return -1;
    }
    for (size_t i = 0; i < t.len; i++) {
        unsigned char c = (unsigned char)t.ptr[i];
        if (c < 0x20 || c == 0x7f) {
            lm__set_error(err, LM_ERR_INVALID,
                          "template %s contains a control byte (0x%02x) at offset %zu", Q, c, i);
            return -1;
        }
    }
    int n = 0;
    size_t pos = 1;
    for (;;) {
        const char *s = t.ptr + pos;
        const char *slash = memchr(s, '/', t.len - pos);
        size_t len = slash ? (size_t)(slash - s) : t.len - pos;
        if (n == LM_MATCHER_MAX_SEGMENTS) {
            lm__set_error(err, LM_ERR_INVALID, "template %s has more than %d segments", Q,
                          LM_MATCHER_MAX_SEGMENTS);
            return -1;
        }
        tseg *g = &segs[n++];
        bool open = memchr(s, '{', len) != NULL, close = memchr(s, '}', len) != NULL;
        if (!open && !close) {
            *g = (tseg){K_LIT, s, len};
        } else {
            if (len < 2 || s[0] != '{' || s[len - 1] != '}' || memchr(s + 1, '{', len - 2) ||
                memchr(s + 1, '}', len - 2)) {
                lm__set_error(err, LM_ERR_INVALID,
                              "template %s: segment %d: a parameter is a whole segment, "
                              "{name} or {name:convertor} (unbalanced brace or text beside it)",
                              Q, n);
                return -1;
            }
            const char *name = s + 1, *colon = memchr(name, ':', len - 2);
            size_t nlen = colon ? (size_t)(colon - name) : len - 2;
            if (!valid_name(name, nlen)) {
                lm__set_error(err, LM_ERR_INVALID,
                              "template %s: segment %d: parameter name must match "
                              "[a-zA-Z_][a-zA-Z0-9_]*",
                              Q, n);
                return -1;
            }
            int kind = K_STR;
            if (colon) {
                kind = conv_kind(colon + 1, (size_t)(s + len - 1 - colon - 1));
                if (kind < 0) {
                    char cq[QCAP];
                    lm__set_error(err, LM_ERR_INVALID,
                                  "template %s: unsupported convertor %s (str, int, float, "
                                  "uuid or path)",
                                  Q, lm__quote(cq, QCAP, colon + 1, (size_t)(s + len - 2 - colon)));
                    return -1;
                }
            }
            for (int k = 0; k < n - 1; k++) {
                if (segs[k].kind != K_LIT && segs[k].len == nlen &&
                    memcmp(segs[k].lit, name, nlen) == 0) {
                    char nq[QCAP];
                    lm__set_error(err, LM_ERR_INVALID, "template %s: parameter %s appears twice",
                                  Q, lm__quote(nq, QCAP, name, nlen));
                    return -1;
                }
            }
            *g = (tseg){kind, name, nlen};
            if (kind == K_PATH && slash != NULL) {
                lm__set_error(err, LM_ERR_INVALID,
                              "template %s: a {name:path} parameter takes the rest of the path "
                              "and must be the last segment",
                              Q);
                return -1;
            }
        }
        if (slash == NULL)
            break;
        pos += len + 1;
    }
    return n;
#undef Q
}

/* --------------------------------------------------------------- building */

static uint32_t node_new(lm_matcher *m)
{
    if (m->nnodes == m->capnodes) {
        size_t cap = m->capnodes ? m->capnodes * 2 : 64;
        mnode *p = realloc(m->nodes, cap * sizeof *p);
        if (p == NULL)
            return 0;
        m->nodes = p;
        m->capnodes = cap;
    }
    memset(&m->nodes[m->nnodes], 0, sizeof m->nodes[0]);
    return (uint32_t)m->nnodes++;
}

static uint32_t lit_add(lm_matcher *m, uint32_t parent, const char *s, size_t n)
{
    uint64_t h = seg_hash(s, n), last = last_word(s, n);
    uint32_t c = lit_child(m, parent, h, last, s, n);
    if (c != 0)
        return c;
    if (m->nbytes + n > m->capbytes) {
        size_t cap = m->capbytes;
        while (cap < m->nbytes + n)
            cap *= 2;
        char *p = realloc(m->bytes, cap);
        if (p == NULL)
            return 0;
        m->bytes = p;
        m->capbytes = cap;
    }
    if (table_grow(m) != 0 || (c = node_new(m)) == 0)
        return 0;
    if (n > 0)
        memcpy(m->bytes + m->nbytes, s, n);
    medge e = {last, parent, c, (uint32_t)m->nbytes, (uint32_t)n};
    m->nbytes += n;
    table_put(m->table, m->mask, &e, h);
    m->nedges++;
    m->nodes[parent].kinds |= 1u << K_LIT;
    return c;
}

lm_matcher *lm_matcher_new(const lm_str *templates, size_t ntemplates, size_t *bad_index,
                           lm_error *err)
{
    if (bad_index != NULL)
        *bad_index = LM_MATCH_NONE;
    if (ntemplates == 0 || ntemplates > LM_MATCHER_MAX_TEMPLATES || templates == NULL) {
        lm__set_error(err, LM_ERR_INVALID, "a matcher takes 1 to %d templates, got %zu%s",
                      LM_MATCHER_MAX_TEMPLATES, ntemplates,
                      templates == NULL && ntemplates ? " (NULL array)" : "");
        return NULL;
    }
    lm_matcher *m = calloc(1, sizeof *m);
    tseg *segs = malloc(LM_MATCHER_MAX_SEGMENTS * sizeof *segs);
    if (m == NULL || segs == NULL || (m->table = calloc(64, sizeof *m->table)) == NULL ||
        (m->bytes = malloc(1024)) == NULL || node_new(m) != 0 /* the root */) {
        free(segs);
        lm_matcher_free(m);
        lm__set_error(err, LM_ERR_NOMEM, "out of memory compiling %zu templates", ntemplates);
        return NULL;
    }
    m->mask = 63;
    m->capbytes = 1024;
    size_t t;
    for (t = 0; t < ntemplates; t++) {
        lm_str tpl = templates[t];
        if (tpl.ptr == NULL) {
            lm__set_error(err, LM_ERR_INVALID, "template #%zu has a NULL pointer", t);
            goto fail;
        }
        int n = parse_template(tpl, t, segs, err);
        if (n < 0)
            goto fail;
        uint32_t node = 0;
        for (int i = 0; i < n; i++) {
            uint32_t c;
            if (segs[i].kind == K_LIT) {
                c = lit_add(m, node, segs[i].lit, segs[i].len);
            } else {
                c = m->nodes[node].param[segs[i].kind - 1];
                if (c == 0 && (c = node_new(m)) != 0) {
                    m->nodes[node].param[segs[i].kind - 1] = c;
                    if (segs[i].kind != K_PATH)
                        m->nodes[node].kinds |= 1u << segs[i].kind;
                }
            }
            if (c == 0) {
                lm__set_error(err, LM_ERR_NOMEM, "out of memory compiling %zu templates",
                              ntemplates);
                goto fail;
            }
            node = c;
        }
        if (m->nodes[node].term != 0) {
            char q[QCAP], p[QCAP];
            lm_str prev = templates[m->nodes[node].term - 1];
            lm__set_error(err, LM_ERR_INVALID,
                          "template %s has the same shape as %s (only parameter names differ), "
                          "so it could never match",
                          lm__quote(q, QCAP, tpl.ptr, tpl.len),
                          lm__quote(p, QCAP, prev.ptr, prev.len));
            goto fail;
        }
        m->nodes[node].term = (uint32_t)t + 1;
        if ((unsigned)n > m->maxdepth)
            m->maxdepth = (unsigned)n;
        /* maxlit along the way: literals in the segments after each node. */
        uint32_t after = 0;
        for (int i = 0; i < n; i++)
            after += segs[i].kind == K_LIT;
        node = 0;
        for (int i = 0; i < n; i++) {
            if (m->nodes[node].maxlit < after)
                m->nodes[node].maxlit = after;
            node = segs[i].kind == K_LIT
                       ? lit_child(m, node, seg_hash(segs[i].lit, segs[i].len),
                                   last_word(segs[i].lit, segs[i].len), segs[i].lit, segs[i].len)
                       : m->nodes[node].param[segs[i].kind - 1];
            after -= segs[i].kind == K_LIT;
        }
    }
    free(segs);
    return m;
fail:
    if (bad_index != NULL)
        *bad_index = t;
    free(segs);
    lm_matcher_free(m);
    return NULL;
}

void lm_matcher_free(lm_matcher *m)
{
    if (m == NULL)
        return;
    free(m->nodes);
    free(m->table);
    free(m->bytes);
    free(m);
}

/* --------------------------------------------------------------- matching */

typedef struct msearch {
    const lm_matcher *m;
    const char *p;
    size_t plen;
    size_t pos;       /* where the next unparsed segment starts */
    bool ended;       /* the last segment is parsed */
    unsigned nparsed; /* segments parsed so far (lazily, as the search deepens) */
    uint32_t start[LM_MATCHER_MAX_SEGMENTS + 1];
    uint32_t len[LM_MATCHER_MAX_SEGMENTS + 1];
    uint64_t hash[LM_MATCHER_MAX_SEGMENTS + 1];
    uint64_t last[LM_MATCHER_MAX_SEGMENTS + 1]; /* last_word() of each */
    size_t best;
    uint32_t bestlit;
} msearch;

/* Bytes of w equal to '/' get their top bit set; bits above the first such
 * byte may be wrong, so only the lowest one is used. */
static inline uint64_t slash_bytes(uint64_t w)
{
    uint64_t x = w ^ 0x2f2f2f2f2f2f2f2fu;
    return (x - 0x0101010101010101u) & ~x & 0x8080808080808080u;
}

/* Parses the next segment: its end and seg_hash, a word at a time. */
static inline void scan_segment(msearch *s)
{
    const char *p = s->p;
    size_t a = s->pos, i = a, end = s->plen;
    uint64_t h = HASH_SEED, last = 0;
    for (;;) {
        if (end - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            uint64_t sl = slash_bytes(w);
            if (sl == 0) {
                h = mix(h, w);
                last = w;
                i += 8;
                continue;
            }
            unsigned k = (unsigned)__builtin_ctzll(sl) >> 3;
            if (k > 0) {
                last = w & ((UINT64_C(1) << (8 * k)) - 1);
                h = mix(h, last);
            }
            i += k;
        } else if (end >= 8) {
            /* Under 8 bytes left: the path's last word, shifted so they
             * come first and zeros (never a '/') follow. */
            size_t r = end - i;
            uint64_t w = 0;
            if (r > 0) {
                memcpy(&w, p + end - 8, 8);
                w >>= 8 * (8 - r);
            }
            uint64_t sl = slash_bytes(w);
            unsigned k = sl ? (unsigned)__builtin_ctzll(sl) >> 3 : (unsigned)r;
            if (k > 0) {
                last = w & ((UINT64_C(1) << (8 * k)) - 1);
                h = mix(h, last);
            }
            i += k;
        } else {
            size_t b = i;
            while (b < end && p[b] != '/')
                b++;
            if (b > i) {
                last = tail_word(p + i, b - i);
                h = mix(h, last);
            }
            i = b;
        }
        break;
    }
    unsigned d = s->nparsed++;
    s->start[d] = (uint32_t)a;
    s->len[d] = (uint32_t)(i - a);
    s->hash[d] = h ^ (i - a);
    s->last[d] = last;
    if (i == end)
        s->ended = true;
    else
        s->pos = i + 1;
}

/* Parses segment d (the next one) if needed; false if the path has no
 * segment d. Called with d <= maxdepth only, so the arrays suffice. */
static inline bool segment(msearch *s, unsigned d)
{
    /* The search deepens one level at a time: d <= nparsed. */
    if (d < s->nparsed)
        return true;
    if (s->ended)
        return false;
    scan_segment(s);
    return true;
}

/* A branch reaching `lit` literal segments at most is worth entering. */
static inline bool beats(const msearch *s, uint32_t lit)
{
    return s->best == LM_MATCH_NONE || lit > s->bestlit;
}

/* The search. Children are tried in precedence order; the last viable one
 * is continued in this loop rather than by a call (most nodes have one),
 * unless a {name:path} child must still be weighed after every other. */
static void visit(msearch *s, uint32_t node, unsigned depth, uint32_t lit)
{
    const lm_matcher *m = s->m;
    for (;;) {
        const mnode *n = &m->nodes[node];
        if (!segment(s, depth)) {
            if (n->term != 0 && beats(s, lit)) {
                s->best = n->term - 1;
                s->bestlit = lit;
            }
            return; /* every child needs one more segment */
        }
        if (depth >= m->maxdepth)
            return; /* no template is deeper */
        const char *seg = s->p + s->start[depth];
        size_t len = s->len[depth];
        uint32_t next = 0, nextlit = 0, c;
        if ((n->kinds & (1u << K_LIT)) &&
            (c = lit_child(m, node, s->hash[depth], s->last[depth], seg, len)) != 0 &&
            beats(s, lit + 1 + m->nodes[c].maxlit)) {
            next = c;
            nextlit = lit + 1;
        }
        for (uint32_t kinds = n->kinds & ~(1u << K_LIT); kinds != 0; kinds &= kinds - 1) {
            int k = __builtin_ctz(kinds);
            c = n->param[k - 1];
            if (beats(s, lit + m->nodes[c].maxlit) && conv_ok(k, seg, len)) {
                if (next != 0)
                    visit(s, next, depth + 1, nextlit);
                next = c;
                nextlit = lit;
            }
        }
        uint32_t path = n->param[K_PATH - 1];
        if (path == 0 && next != 0) {
            node = next;
            lit = nextlit;
            depth++;
            continue;
        }
        if (next != 0 && beats(s, nextlit + m->nodes[next].maxlit))
            visit(s, next, depth + 1, nextlit);
        if (path != 0 && beats(s, lit)) {
            s->best = m->nodes[path].term - 1; /* the rest, whatever it is */
            s->bestlit = lit;
        }
        return;
    }
}

size_t lm_matcher_match(const lm_matcher *m, lm_str path)
{
    if (m == NULL || path.ptr == NULL || path.len == 0 || path.ptr[0] != '/' ||
        path.len > UINT32_MAX)
        return LM_MATCH_NONE; /* (a 4 GiB path is no route) */
    msearch s;
    s.m = m;
    s.p = path.ptr;
    s.plen = path.len;
    s.pos = 1;
    s.ended = false;
    s.nparsed = 0;
    s.best = LM_MATCH_NONE;
    s.bestlit = 0;
    visit(&s, 0, 0, 0);
    return s.best;
}
