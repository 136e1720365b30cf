/* Number rendering and escaping: tables of exact expected strings, the
 * OpenMetrics canonical-number examples, a round-trip property over many
 * doubles, and a 128-bit oracle (__int128) for the exact histogram sums. */
#include "internal.h"
#include "lm_test.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static void test_integers(void)
{
    char b[48];
    static const struct { uint64_t v; const char *want; } u[] = {
        {0, "0"}, {1, "1"}, {9, "9"}, {10, "10"}, {1000000, "1000000"},
        {UINT64_MAX, "18446744073709551615"}, {(uint64_t)INT64_MAX + 1, "9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        size_t n = lm__fmt_u64(b, u[i].v);
        CHECK_STR(b, u[i].want);
        CHECK_EQ_U64(n, strlen(u[i].want));
    }
    static const struct { int64_t v; const char *want; } s[] = {
        {0, "0"}, {-1, "-1"}, {42, "42"}, {-1000, "-1000"},
        {INT64_MAX, "9223372036854775807"}, {INT64_MIN, "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        size_t n = lm__fmt_i64(b, s[i].v);
        CHECK_STR(b, s[i].want);
        CHECK_EQ_U64(n, strlen(s[i].want));
    }
}

static void test_doubles(void)
{
    char b[48];
    static const struct { double v; const char *want; } t[] = {
        {0.0, "0.0"}, {-0.0, "-0.0"}, {1.0, "1.0"}, {-1.5, "-1.5"}, {10.0, "10.0"},
        {0.005, "0.005"}, {0.1, "0.1"}, {0.95, "0.95"}, {2.5, "2.5"}, {1.7, "1.7"},
        {1e21, "1e+21"}, {1e6, "1e+06"}, {100000.0, "100000.0"}, {999999.0, "999999.0"},
        {1234567.0, "1.234567e+06"}, {123456.789, "123456.789"}, {0.0001, "0.0001"},
        {0.00012, "0.00012"}, {1e-5, "1e-05"}, {1.5e-5, "1.5e-05"}, {1e-10, "1e-10"},
        {1e100, "1e+100"}, {1.5e300, "1.5e+300"}, {-2.5e-300, "-2.5e-300"},
        {0.1 + 0.2, "0.30000000000000004"}, {1.0 / 3.0, "0.3333333333333333"},
        {DBL_MAX, "1.7976931348623157e+308"}, {DBL_MIN, "2.2250738585072014e-308"},
        {5e-324, "5e-324"}, {9007199254740992.0, "9.007199254740992e+15"},
        {1732269123.45, "1.73226912345e+09"}, {INFINITY, "+Inf"}, {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        size_t n = lm__fmt_double(b, t[i].v);
        CHECK_STR(b, t[i].want);
        CHECK_EQ_U64(n, strlen(t[i].want));
    }

    /* OpenMetrics "Canonical Numbers": 0.0 up to 10.0 in 0.001 steps render
     * as their short decimal, and the listed powers of ten. */
    int bad = 0;
    for (int i = 0; i <= 10000; i++) {
        char want[32];
        int ip = i / 1000, fp = i % 1000;
        if (fp == 0)
            snprintf(want, sizeof want, "%d.0", ip);
        else if (fp % 100 == 0)
            snprintf(want, sizeof want, "%d.%d", ip, fp / 100);
        else if (fp % 10 == 0)
            snprintf(want, sizeof want, "%d.%02d", ip, fp / 10);
        else
            snprintf(want, sizeof want, "%d.%03d", ip, fp);
        lm__fmt_double(b, i / 1000.0);
        if (strcmp(b, want) != 0 && bad++ < 5)
            fprintf(stderr, "canonical %d/1000: got %s want %s\n", i, b, want);
    }
    CHECK(bad == 0);
    static const char *const pow10s[] = {"1e-10", "1e-09", "1e-08", "1e-07", "1e-06", "1e-05",
                                         "0.0001", "0.001", "0.01", "0.1", "1.0", "10.0",
                                         "100.0", "1000.0", "10000.0", "100000.0", "1e+06",
                                         "1e+07", "1e+08", "1e+09", "1e+10"};
    for (int e = -10; e <= 10; e++) {
        lm__fmt_double(b, strtod(pow10s[e + 10], NULL));
        CHECK_STR(b, pow10s[e + 10]);
    }

    /* Round trip, always a '.' or an exponent, never longer than 17 digits
     * (shortest), over a deterministic spread of bit patterns. */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int fails = 0;
    int rounds = getenv("LM_TEST_SMALL") ? 20000 : 200000;
    for (int i = 0; i < rounds; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (!isfinite(v))
            continue;
        size_t n = lm__fmt_double(b, v);
        int digits = 0;
        for (const char *p = b; *p && *p != 'e'; p++)
            digits += *p >= '0' && *p <= '9';
        bool ok = strtod(b, NULL) == v && n < 48 && (strchr(b, '.') || strchr(b, 'e')) &&
                  (digits <= 17 || strchr(b, 'e') == NULL);
        if (!ok && fails++ < 5)
            fprintf(stderr, "round trip failed for %.17g: %s\n", v, b);
    }
    CHECK(fails == 0);
}

static void check_scaled(int64_t hi, uint64_t lo, double scale, const char *want, int line)
{
    char b[48];
    size_t n = lm__fmt_scaled(b, sizeof b, hi, lo, scale);
    lm_test_checks++;
    if (strcmp(b, want) != 0 || n != strlen(want)) {
        lm_test_failures++;
        fprintf(stderr, "%s:%d: fmt_scaled(%lld:%llu / %g) = \"%s\" (%zu), want \"%s\"\n",
                __FILE__, line, (long long)hi, (unsigned long long)lo, scale, b, n, want);
    }
}
#define SCALED(hi, lo, scale, want) check_scaled((hi), (lo), (scale), (want), __LINE__)

/* The 128-bit value v as hi:lo. */
#define HI(v) ((int64_t)((__int128)(v) >> 64))
#define LO(v) ((uint64_t)(unsigned __int128)(v))

static void test_scaled(void)
{
    SCALED(0, 1500000000, 1e9, "1.5");
    SCALED(0, 0, 1e9, "0.0");
    SCALED(0, 0, 1, "0.0");
    SCALED(0, 0, 0, "0.0");
    SCALED(0, 5, 1, "5.0");
    SCALED(0, 5, 0, "5.0"); /* 0 means 1 */
    SCALED(0, 5, 1e3, "0.005");
    SCALED(0, 1000000000, 1e9, "1.0");
    SCALED(0, 1000000001, 1e9, "1.000000001");
    SCALED(0, 999999999, 1e9, "0.999999999");
    SCALED(0, 10, 10, "1.0");
    SCALED(0, 1234, 100, "12.34");
    SCALED(0, 1200, 1e3, "1.2");
    SCALED(HI(-1500000000), LO(-1500000000), 1e9, "-1.5");
    SCALED(-1, UINT64_MAX, 1e9, "-0.000000001");
    SCALED(-1, UINT64_MAX, 1, "-1.0");
    SCALED(0, UINT64_MAX, 1, "18446744073709551615.0");
    SCALED(1, 0, 1, "18446744073709551616.0");
    SCALED(1, 0, 1e9, "18446744073.709551616");
    SCALED(INT64_MAX, UINT64_MAX, 1, "170141183460469231731687303715884105727.0");
    SCALED(INT64_MAX, UINT64_MAX, 1e9, "170141183460469231731687303715.884105727");
    SCALED(INT64_MAX, UINT64_MAX, 1e38, "1.70141183460469231731687303715884105727");
    SCALED(INT64_MIN, 0, 1, "-170141183460469231731687303715884105728.0");
    SCALED(INT64_MIN, 0, 1e38, "-1.70141183460469231731687303715884105728");
    SCALED(0, 1, 1e38, "0.00000000000000000000000000000000000001");
    SCALED(0, 5, 1e-3, "5000.0");     /* scale below one multiplies exactly */
    SCALED(HI(-7), LO(-7), 0.01, "-700.0");
    SCALED(0, 0, 1e-3, "0.0");
    /* Not a power of ten: double division, canonical double. */
    SCALED(0, 1536, 1024, "1.5");
    SCALED(0, 1, 3, "0.3333333333333333");
    SCALED(HI(-3), LO(-3), 2, "-1.5");
    SCALED(0, 1, 1e39, "1.0000000000000001e-39"); /* beyond 10^38: double */
    SCALED(0, 1000, 1e9 + 1, "9.99999999e-07");
    /* Too long for the buffer even though exact: falls back to the double
     * rather than truncating. */
    SCALED(INT64_MIN, 0, 1e-18, "-1.701411834604692e+56");

    /* cap smaller than the exact text: still NUL-terminated, still a number */
    char small[24];
    size_t n = lm__fmt_scaled(small, sizeof small, INT64_MAX, UINT64_MAX, 1);
    CHECK(n < sizeof small && n == strlen(small));
    CHECK(strtod(small, NULL) > 1.7e38);

    /* Oracle: __int128 division for a spread of values and scales. */
    uint64_t x = 88172645463325252ull;
    int fails = 0;
    int oracle_rounds = getenv("LM_TEST_SMALL") ? 10000 : 100000;
    for (int i = 0; i < oracle_rounds; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t y = x * 0x2545F4914F6CDD1Dull;
        __int128 v = (__int128)(((unsigned __int128)(x >> (i % 64)) << 64) | y);
        if (i % 3 == 0)
            v = -v;
        if (i % 5 == 0)
            v >>= 64 + i % 60;
        int k = i % 20;
        unsigned __int128 p = 1;
        for (int j = 0; j < k; j++)
            p *= 10;
        unsigned __int128 m = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
        unsigned __int128 ip = m / p, fp = m % p;
        char want[96], ibuf[48], fbuf[48];
        int ni = 0;
        do {
            ibuf[ni++] = (char)('0' + (int)(ip % 10));
            ip /= 10;
        } while (ip);
        int nf = 0;
        for (int j = 0; j < k; j++) {
            fbuf[nf++] = (char)('0' + (int)(fp % 10));
            fp /= 10;
        }
        size_t w = 0;
        if (v < 0)
            want[w++] = '-';
        while (ni)
            want[w++] = ibuf[--ni];
        want[w++] = '.';
        size_t fs = w;
        while (nf)
            want[w++] = fbuf[--nf];
        if (k == 0)
            want[w++] = '0';
        while (w > fs + 1 && want[w - 1] == '0')
            w--;
        want[w] = '\0';
        char lit[8];
        snprintf(lit, sizeof lit, "1e%d", k);
        double scale = strtod(lit, NULL);
        char got[48];
        lm__fmt_scaled(got, sizeof got, HI(v), LO(v), scale);
        if (strcmp(got, want) != 0 && fails++ < 5)
            fprintf(stderr, "scaled oracle: k=%d got %s want %s\n", k, got, want);
    }
    CHECK(fails == 0);
}

static void check_escape(const char *in, size_t len, const char *want_text_help,
                         const char *want_om_help, const char *want_label, int line)
{
    char out[256];
    struct { size_t n; const char *want; const char *what; } r[3];
    r[0].n = lm__escape_help(out, in, len, LM_FORMAT_TEXT);
    out[r[0].n] = '\0';
    char a[256];
    memcpy(a, out, r[0].n + 1);
    r[1].n = lm__escape_help(out, in, len, LM_FORMAT_OPENMETRICS);
    out[r[1].n] = '\0';
    char o[256];
    memcpy(o, out, r[1].n + 1);
    r[2].n = lm__escape_label(out, in, len);
    out[r[2].n] = '\0';
    const char *got[3] = {a, o, out};
    const char *want[3] = {want_text_help, want_om_help, want_label};
    const char *what[3] = {"text HELP", "OpenMetrics HELP", "label value"};
    for (int i = 0; i < 3; i++) {
        lm_test_checks++;
        if (r[i].n != strlen(want[i]) || memcmp(got[i], want[i], r[i].n) != 0 ||
            r[i].n > 2 * len) {
            lm_test_failures++;
            fprintf(stderr, "%s:%d: %s escape: got \"%s\" want \"%s\"\n", __FILE__, line,
                    what[i], got[i], want[i]);
        }
        lm_test_checks++;
        if (memchr(got[i], '\n', r[i].n)) {
            lm_test_failures++;
            fprintf(stderr, "%s:%d: raw newline in %s\n", __FILE__, line, what[i]);
        }
    }
}
#define ESC(in, th, oh, lv) check_escape((in), sizeof(in) - 1, (th), (oh), (lv), __LINE__)

static void test_escape(void)
{
    ESC("", "", "", "");
    ESC("plain text", "plain text", "plain text", "plain text");
    ESC("a\\b", "a\\\\b", "a\\\\b", "a\\\\b");
    ESC("say \"hi\"", "say \"hi\"", "say \\\"hi\\\"", "say \\\"hi\\\"");
    ESC("two\nlines", "two\\nlines", "two\\nlines", "two\\nlines");
    ESC("\\n", "\\\\n", "\\\\n", "\\\\n"); /* a literal backslash-n stays two chars */
    ESC("\"\\\n", "\"\\\\\\n", "\\\"\\\\\\n", "\\\"\\\\\\n");
    ESC("tab\there", "tab\there", "tab\there", "tab\there");
    ESC("caf\xc3\xa9 \xef\xbf\xbd", "caf\xc3\xa9 \xef\xbf\xbd", "caf\xc3\xa9 \xef\xbf\xbd",
        "caf\xc3\xa9 \xef\xbf\xbd");
    ESC("\n\n\n\n", "\\n\\n\\n\\n", "\\n\\n\\n\\n", "\\n\\n\\n\\n"); /* worst case: 2x */
    ESC("{}=,#", "{}=,#", "{}=,#", "{}=,#");
}

int main(void)
{
    test_integers();
    test_doubles();
    test_scaled();
    test_escape();
    TEST_MAIN_END();
}
