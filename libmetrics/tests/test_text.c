/* Text hygiene: the UTF-8 sanitiser against a table of well-formed and
 * ill-formed inputs (one U+FFFD per maximal subpart, as Python's and ICU's
 * decoders do), truncation on character boundaries, the one UTF-8 decoder
 * against an independent one over every 1- to 3-byte sequence and the
 * 4-byte ones' first three bytes, name validators, the error helpers and
 * the error-message quoting. */
#include "core.h"
#include "lm_test.h"

#include <stdlib.h>

#define R "\xEF\xBF\xBD" /* U+FFFD */

static void check_text(const char *in, size_t inlen, size_t max, const char *want, int line)
{
    lm_text t;
    int rc = lm__text_from((lm_str){in, inlen}, max, &t);
    CHECK(rc == LM_OK);
    if (rc != LM_OK)
        return;
    lm_test_checks++;
    if (t.len != strlen(want) || memcmp(t.ptr, want, t.len) != 0 || t.ptr[t.len] != '\0') {
        lm_test_failures++;
        fprintf(stderr, "test_text.c:%d: sanitise(max %zu) gave %zu bytes:", line, max, t.len);
        for (size_t i = 0; i < t.len; i++)
            fprintf(stderr, " %02x", (unsigned char)t.ptr[i]);
        fprintf(stderr, "\n");
    }
    lm__text_free(&t);
    CHECK(t.ptr == NULL && t.len == 0);
}

#define T(in, want) check_text(in, sizeof(in) - 1, 0, want, __LINE__)
#define TM(in, max, want) check_text(in, sizeof(in) - 1, max, want, __LINE__)

static void test_sanitise(void)
{
    /* kept as is */
    T("", "");
    T("plain ascii /api/v1?x=1", "plain ascii /api/v1?x=1");
    T("tab\tand\nnewline", "tab\tand\nnewline");
    T("\x7f", "\x7f");                              /* DEL is not C0 */
    T("caf\xC3\xA9", "caf\xC3\xA9");                /* 2-byte */
    T("\xE2\x82\xAC", "\xE2\x82\xAC");              /* 3-byte euro */
    T("\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80");      /* 4-byte emoji */
    T("\xC2\x80", "\xC2\x80");                      /* U+0080, lowest 2-byte */
    T("\xE0\xA0\x80", "\xE0\xA0\x80");              /* U+0800, lowest 3-byte */
    T("\xED\x9F\xBF", "\xED\x9F\xBF");              /* U+D7FF, below surrogates */
    T("\xEE\x80\x80", "\xEE\x80\x80");              /* U+E000, above surrogates */
    T("\xEF\xBF\xBD", R);                           /* U+FFFD itself */
    T("\xF0\x90\x80\x80", "\xF0\x90\x80\x80");      /* U+10000 */
    T("\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF");      /* U+10FFFF, the last */

    /* controls */
    T("a\0b", "a" R "b");
    T("\x01\x1f", R R);
    T("\r\n", R "\n");
    T("\x1b[31m", R "[31m"); /* terminal escapes defused */

    /* ill-formed: one U+FFFD per maximal subpart */
    T("\x80", R);                       /* lone continuation */
    T("\xBF\x80", R R);
    T("\xC0\x80", R R);                 /* overlong NUL */
    T("\xC1\xBF", R R);                 /* overlong */
    T("\xE0\x80\x80", R R R);           /* overlong 3-byte */
    T("\xE0\x9F\xBF", R R R);
    T("\xF0\x80\x80\x80", R R R R);     /* overlong 4-byte */
    T("\xF0\x8F\xBF\xBF", R R R R);
    T("\xED\xA0\x80", R R R);           /* high surrogate U+D800 */
    T("\xED\xBF\xBF", R R R);           /* low surrogate U+DFFF */
    T("\xF4\x90\x80\x80", R R R R);     /* U+110000 */
    T("\xF5\x80\x80\x80", R R R R);
    T("\xFE\xFF", R R);
    T("\xE2\x82", R);                   /* truncated at end: one subpart */
    T("\xE2\x82" "A", R "A");           /* truncated, then valid */
    T("\xF0\x9F\x98", R);
    T("\xF0\x9F\x98" "\xC3\xA9", R "\xC3\xA9");
    T("\xC3" "A\xC3\xA9", R "A\xC3\xA9");
    T("a\xFF" "b\xC3\xA9" "c", "a" R "b\xC3\xA9" "c");

    /* truncation: never half a character */
    TM("abcdef", 3, "abc");
    TM("abcdef", 6, "abcdef");
    TM("abcdef", 100, "abcdef");
    TM("a\xC3\xA9", 2, "a");
    TM("a\xC3\xA9", 3, "a\xC3\xA9");
    TM("\xE2\x82\xAC", 2, "");
    TM("\xF0\x9F\x98\x80" "x", 4, "\xF0\x9F\x98\x80");
    TM("\xF0\x9F\x98\x80" "x", 3, "");
    TM("a\xFF", 3, "a");                /* the replacement is 3 bytes */
    TM("a\xFF", 4, "a" R);
    TM("\xFF\xFF\xFF", 7, R R);

    /* a long value: output never exceeds the limit */
    {
        char big[3000];
        for (size_t i = 0; i < sizeof big; i++)
            big[i] = (i % 3 == 0) ? (char)0xFF : 'x';
        lm_text t;
        CHECK(lm__text_from((lm_str){big, sizeof big}, 256, &t) == LM_OK);
        CHECK(t.len <= 256);
        CHECK(t.len >= 254);
        CHECK(strlen(t.ptr) == t.len);
        lm__text_free(&t);
        CHECK(lm__text_from((lm_str){big, sizeof big}, 0, &t) == LM_OK);
        CHECK_EQ_U64(t.len, 1000 * 3 + 2000); /* 1000 replacements, 2000 'x' */
        lm__text_free(&t);
    }

    /* NULL pointer: fine when empty, an error otherwise */
    lm_text t;
    CHECK(lm__text_from((lm_str){NULL, 0}, 0, &t) == LM_OK);
    CHECK(t.ptr != NULL && t.len == 0 && t.ptr[0] == '\0');
    lm__text_free(&t);
    CHECK(lm__text_from((lm_str){NULL, 3}, 0, &t) == LM_ERR_INVALID);
    CHECK(t.ptr == NULL);
    lm__text_free(NULL);
}

/* The sanitiser's output is always valid: a property check over random
 * bytes biased towards UTF-8 lead/continuation bytes. */
static bool valid_utf8(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t need;
        unsigned cp;
        if (c < 0x80) {
            if (c < 0x20 && c != '\n' && c != '\t')
                return false;
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + need >= n)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        static const unsigned min[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

static void test_random(void)
{
    static const unsigned char pool[] = {'a', '\n', 0, 0x1f, 0x7f, 0x80, 0x9f, 0xa0, 0xbf,
                                         0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4,
                                         0xf5, 0xff};
    unsigned seed = 12345;
    int iters = getenv("LM_TEST_SMALL") ? 2000 : 50000;
    int bad = 0, over = 0;
    for (int it = 0; it < iters; it++) {
        unsigned char buf[24];
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % sizeof buf;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = pool[(seed >> 16) % sizeof pool];
        }
        size_t max = (seed >> 8) % 4 == 0 ? (seed >> 20) % 20 : 0;
        lm_text t;
        if (lm__text_from((lm_str){(const char *)buf, n}, max, &t) != LM_OK) {
            bad++;
            continue;
        }
        if (!valid_utf8((const unsigned char *)t.ptr, t.len) || strlen(t.ptr) != t.len)
            bad++;
        if (max && t.len > max)
            over++;
        /* sanitising is idempotent */
        lm_text u;
        if (lm__text_from((lm_str){t.ptr, t.len}, max, &u) == LM_OK) {
            if (u.len != t.len || memcmp(u.ptr, t.ptr, t.len) != 0)
                bad++;
            lm__text_free(&u);
        }
        lm__text_free(&t);
    }
    CHECK_EQ_U64(bad, 0);
    CHECK_EQ_U64(over, 0);
    /* the checker itself rejects what it must */
    CHECK(!valid_utf8((const unsigned char *)"\xED\xA0\x80", 3));
    CHECK(!valid_utf8((const unsigned char *)"\xC0\x80", 2));
    CHECK(!valid_utf8((const unsigned char *)"\xE2\x82", 2));
    CHECK(valid_utf8((const unsigned char *)"\xE2\x82\xAC", 3));
}

/* Length of the valid character at p by the reference decoder above, 0 if
 * none (ASCII controls count as characters here: the decoder leaves them to
 * its callers). */
static size_t ref_seq(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    for (size_t k = 2; k <= 4 && k <= n; k++)
        if (valid_utf8(p, k))
            return k;
    return 0;
}

static void check_seq(const unsigned char *p, size_t n, int *bad)
{
    size_t sub = 0, k = lm__utf8_seq(p, n, &sub);
    if (k != ref_seq(p, n) || (k == 0 && (sub < 1 || sub > n))) {
        if (*bad < 5)
            fprintf(stderr, "lm__utf8_seq(%02x %02x %02x %02x, %zu) = %zu (subpart %zu), "
                            "reference %zu\n",
                    p[0], n > 1 ? p[1] : 0, n > 2 ? p[2] : 0, n > 3 ? p[3] : 0, n, k, sub,
                    ref_seq(p, n));
        (*bad)++;
    }
}

/* The decoder every caller shares (text.c, exemplar.c, report.c) agrees
 * with the code-point-arithmetic reference on every 1-, 2- and 3-byte
 * input, and on 4-byte inputs for every first three bytes (the fourth from
 * a set covering the continuation range's edges and what lies beyond). */
static void test_decoder(void)
{
    static const unsigned char fourth[] = {0x00, 0x41, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    bool small = getenv("LM_TEST_SMALL") != NULL;
    int bad = 0;
    unsigned char p[4];
    for (unsigned a = 0; a < 256; a++) {
        p[0] = (unsigned char)a;
        check_seq(p, 1, &bad);
        for (unsigned b = 0; b < 256; b++) {
            p[1] = (unsigned char)b;
            check_seq(p, 2, &bad);
            if (a < 0xC0 || (small && b % 7 != 0 && b != 0x80 && b != 0xBF))
                continue; /* ASCII and stray continuation bytes end at the first byte */
            for (unsigned c = 0; c < 256; c++) {
                p[2] = (unsigned char)c;
                check_seq(p, 3, &bad);
                if (a < 0xF0)
                    continue;
                for (size_t d = 0; d < sizeof fourth; d++) {
                    p[3] = fourth[d];
                    check_seq(p, 4, &bad);
                }
            }
        }
    }
    CHECK_EQ_U64(bad, 0);
}

static void test_names(void)
{
    static const char *const metric_ok[] = {"a", "_", ":", "abc_def", "A1", "a:b:c", "_x9",
                                            "http_requests_total", "::x", "x_"};
    static const char *const metric_bad[] = {"", "9x", "a-b", "a b", "a.b", "é", "a\n",
                                             "x{}", "-", "a/b"};
    for (size_t i = 0; i < sizeof metric_ok / sizeof *metric_ok; i++)
        CHECK(lm__valid_metric_name(metric_ok[i]));
    for (size_t i = 0; i < sizeof metric_bad / sizeof *metric_bad; i++)
        CHECK(!lm__valid_metric_name(metric_bad[i]));
    CHECK(!lm__valid_metric_name(NULL));

    static const char *const label_ok[] = {"a", "_", "method", "Endpoint", "x9", "_a_b",
                                           "__reserved_but_matching"};
    static const char *const label_bad[] = {"", "9", "a:b", ":", "a-b", "a b", "é", "le{"};
    for (size_t i = 0; i < sizeof label_ok / sizeof *label_ok; i++)
        CHECK(lm__valid_label_name(label_ok[i]));
    for (size_t i = 0; i < sizeof label_bad / sizeof *label_bad; i++)
        CHECK(!lm__valid_label_name(label_bad[i]));
    CHECK(!lm__valid_label_name(NULL));
}

static void test_errors(void)
{
    lm_error e = {0};
    lm__set_error(&e, LM_ERR_LIMIT, "value %d of %s", 42, "x");
    CHECK(e.code == LM_ERR_LIMIT);
    CHECK_STR(e.message, "value 42 of x");
    lm__set_error(NULL, LM_ERR_LIMIT, "ignored %d", 1); /* must not crash */

    char longs[1000];
    memset(longs, 'z', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    lm__set_error(&e, LM_ERR_INVALID, "%s", longs);
    CHECK_EQ_U64(strlen(e.message), sizeof e.message - 1);

    char q[32];
    CHECK_STR(lm__quote(q, sizeof q, "abc", 3), "\"abc\"");
    CHECK_STR(lm__quote(q, sizeof q, "a\"b\\c", 5), "\"a\\\"b\\\\c\"");
    CHECK_STR(lm__quote(q, sizeof q, "a\nb\xff", 4), "\"a\\x0ab\\xff\"");
    CHECK_STR(lm__quote(q, sizeof q, NULL, 0), "(null)");
    CHECK_STR(lm__quote(q, sizeof q, "", 0), "\"\"");
    lm__quote(q, sizeof q, longs, strlen(longs));
    CHECK(strlen(q) < sizeof q);
    CHECK(strstr(q, "...\"") != NULL);
    /* the cut never splits an escape */
    char q2[12];
    lm__quote(q2, sizeof q2, "\x01\x02\x03\x04", 4);
    CHECK_STR(q2, "\"\\x01...\"");

    CHECK_STR(lm_status_string(LM_OK), "ok");
    CHECK_STR(lm_status_string(LM_ERR_LIMIT), "capacity exhausted");
    CHECK(lm_status_string((lm_status)99) != NULL);
    CHECK_STR(lm_version(), LM_VERSION_STRING);
}

int main(void)
{
    test_sanitise();
    test_random();
    test_decoder();
    test_names();
    test_errors();
    TEST_MAIN_END();
}
