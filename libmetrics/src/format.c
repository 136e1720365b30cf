/*
 * Canonical number rendering and per-format escaping for the exposition.
 *
 * Doubles follow the OpenMetrics "canonical numbers" rule, which is Go's
 * strconv.FormatFloat(v, 'g', -1, 64) plus ".0" when the result would read
 * as an integer: shortest round-trip digits, exponent form when the decimal
 * exponent is < -4 or >= 6 ("1e+06", "1e-05"), two-digit minimum exponent.
 * Histogram sums are kept as exact 128-bit integers of recorded units and
 * rendered exactly when the scale is a power of ten, so a sum of
 * nanoseconds exposed in seconds never picks up binary rounding noise.
 */
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t lm__fmt_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

size_t lm__fmt_i64(char *buf, int64_t v)
{
    if (v >= 0)
        return lm__fmt_u64(buf, (uint64_t)v);
    buf[0] = '-';
    /* Negate in unsigned arithmetic: -INT64_MIN overflows int64. */
    return 1 + lm__fmt_u64(buf + 1, 0 - (uint64_t)v);
}

/* Shortest decimal digits of a finite non-zero |v| that read back as v:
 * fills digits (no point, no sign, no trailing zeros) and returns their
 * count; *exp10 is the decimal exponent of the first digit. glibc's printf
 * rounds correctly, so "%.*e" with p digits yields the closest p-digit
 * decimal, and round-tripping is monotonic in p: a binary search finds the
 * shortest. The separator printf uses depends on LC_NUMERIC, so the parse
 * below skips any non-digit between the mantissa's digits. */
static size_t shortest_digits(double v, char digits[20], int *exp10)
{
    char tmp[40];
    int lo = 0, hi = 16; /* precision = significant digits - 1 */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        snprintf(tmp, sizeof tmp, "%.*e", mid, v);
        if (strtod(tmp, NULL) == v)
            hi = mid;
        else
            lo = mid + 1;
    }
    snprintf(tmp, sizeof tmp, "%.*e", lo, v);
    size_t nd = 0;
    const char *p = tmp;
    if (*p == '-')
        p++;
    for (; *p && *p != 'e' && *p != 'E'; p++)
        if (*p >= '0' && *p <= '9' && nd < 19)
            digits[nd++] = *p;
    *exp10 = (*p == 'e' || *p == 'E') ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    return nd;
}

size_t lm__fmt_double(char *buf, double v)
{
    if (isnan(v))
        return (size_t)(memcpy(buf, "NaN", 4), 3);
    if (isinf(v)) {
        memcpy(buf, v > 0 ? "+Inf" : "-Inf", 5);
        return 4;
    }
    size_t n = 0;
    if (signbit(v))
        buf[n++] = '-';
    if (v == 0) {
        memcpy(buf + n, "0.0", 4);
        return n + 3;
    }
    char d[20];
    int e;
    size_t nd = shortest_digits(v, d, &e);
    if (e < -4 || e >= 6) {
        buf[n++] = d[0];
        if (nd > 1) {
            buf[n++] = '.';
            memcpy(buf + n, d + 1, nd - 1);
            n += nd - 1;
        }
        buf[n++] = 'e';
        buf[n++] = e < 0 ? '-' : '+';
        unsigned ae = (unsigned)(e < 0 ? -e : e);
        if (ae >= 100)
            buf[n++] = (char)('0' + ae / 100);
        buf[n++] = (char)('0' + ae / 10 % 10);
        buf[n++] = (char)('0' + ae % 10);
    } else if (e < 0) { /* 0.000ddd */
        buf[n++] = '0';
        buf[n++] = '.';
        for (int i = -1; i > e; i--)
            buf[n++] = '0';
        memcpy(buf + n, d, nd);
        n += nd;
    } else { /* ddd.ddd, padded with zeros, at least one fractional digit */
        size_t ip = (size_t)e + 1;
        for (size_t i = 0; i < ip; i++)
            buf[n++] = i < nd ? d[i] : '0';
        buf[n++] = '.';
        if (nd > ip) {
            memcpy(buf + n, d + ip, nd - ip);
            n += nd - ip;
        } else {
            buf[n++] = '0';
        }
    }
    buf[n] = '\0';
    return n;
}

/* ----------------------------------------------------- exact 128-bit sums */

/* Decimal digits of the unsigned 128-bit hi:lo, most significant first,
 * without leading zeros ("0" for zero). Works on 32-bit limbs so it needs no
 * compiler 128-bit type. Returns the digit count (at most 39). */
static size_t u128_digits(uint64_t hi, uint64_t lo, char out[40])
{
    uint32_t limb[4] = {(uint32_t)(hi >> 32), (uint32_t)hi, (uint32_t)(lo >> 32), (uint32_t)lo};
    char rev[40];
    size_t n = 0;
    for (;;) {
        /* Divide by 10^9, collecting the remainder as nine digits. */
        uint64_t rem = 0;
        bool zero = true;
        for (int i = 0; i < 4; i++) {
            uint64_t cur = (rem << 32) | limb[i];
            limb[i] = (uint32_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
            if (limb[i])
                zero = false;
        }
        for (int k = 0; k < 9; k++) {
            rev[n++] = (char)('0' + rem % 10);
            rem /= 10;
            if (zero && rem == 0)
                break;
        }
        if (zero)
            break;
    }
    while (n > 1 && rev[n - 1] == '0')
        n--;
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* |hi:lo| of a two's complement 128-bit value; -2^127 maps to 2^127, which
 * fits unsigned. Returns whether the value was negative. */
static bool i128_magnitude(int64_t hi, uint64_t lo, uint64_t *mhi, uint64_t *mlo)
{
    *mhi = (uint64_t)hi;
    *mlo = lo;
    if (hi >= 0)
        return false;
    *mhi = ~*mhi;
    *mlo = ~*mlo + 1;
    if (*mlo == 0)
        (*mhi)++;
    return true;
}

/* Exponent k with scale == 10^k exactly as a double (the literal's nearest
 * double), for -18 <= k <= 38; returns false otherwise. 10^38 is the
 * largest power of ten below 2^127, so every quotient digit is meaningful. */
static bool pow10_exponent(double scale, int *k)
{
    static const double pos[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
                                 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
                                 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29,
                                 1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38};
    static const double neg[] = {1e-1,  1e-2,  1e-3,  1e-4,  1e-5,  1e-6,
                                 1e-7,  1e-8,  1e-9,  1e-10, 1e-11, 1e-12,
                                 1e-13, 1e-14, 1e-15, 1e-16, 1e-17, 1e-18};
    for (int i = 0; i < (int)(sizeof pos / sizeof pos[0]); i++)
        if (scale == pos[i]) {
            *k = i;
            return true;
        }
    for (int i = 0; i < (int)(sizeof neg / sizeof neg[0]); i++)
        if (scale == neg[i]) {
            *k = -(i + 1);
            return true;
        }
    return false;
}

static size_t fmt_scaled_double(char *buf, size_t cap, int64_t hi, uint64_t lo, double scale)
{
    char tmp[48];
    /* From the magnitude, so that e.g. -3 (hi = -1, lo = 2^64 - 3) does not
     * cancel to 0 in a double. */
    uint64_t mhi, mlo;
    bool neg = i128_magnitude(hi, lo, &mhi, &mlo);
    double m = (double)mhi * 18446744073709551616.0 + (double)mlo;
    double v = (neg ? -m : m) / scale;
    size_t n = lm__fmt_double(tmp, v);
    if (n >= cap)
        n = cap - 1; /* cannot happen for cap >= 48; never overrun */
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return n;
}

size_t lm__fmt_scaled(char *buf, size_t cap, int64_t hi, uint64_t lo, double unit_scale)
{
    if (unit_scale == 0)
        unit_scale = 1;
    int k;
    if (!pow10_exponent(unit_scale, &k))
        return fmt_scaled_double(buf, cap, hi, lo, unit_scale);

    uint64_t mhi, mlo;
    bool neg = i128_magnitude(hi, lo, &mhi, &mlo);
    /* Digits left-padded with zeros so at least one integer digit precedes
     * the k fractional ones: 1500000000 / 10^9 -> "1500000000" -> "1.5";
     * 5 / 10^3 -> "0005" -> "0.005". */
    char d[80];
    size_t uk = k > 0 ? (size_t)k : 0;
    char raw[40];
    size_t nraw = u128_digits(mhi, mlo, raw);
    size_t pad = nraw <= uk ? uk + 1 - nraw : 0;
    memset(d, '0', pad);
    memcpy(d + pad, raw, nraw);
    size_t nd = pad + nraw;
    bool is_zero = nraw == 1 && raw[0] == '0';
    size_t zeros = (k < 0 && !is_zero) ? (size_t)-k : 0; /* scale below one multiplies */

    /* sign + digits + zeros + ".0": at most 1 + 39 + 18 + 2 = 60 bytes; with a
     * small cap fall back to the double rather than truncate a number. */
    if (neg + nd + zeros + 2 + 1 > cap)
        return fmt_scaled_double(buf, cap, hi, lo, unit_scale);

    size_t n = 0;
    if (neg)
        buf[n++] = '-';
    memcpy(buf + n, d, nd - uk);
    n += nd - uk;
    memset(buf + n, '0', zeros);
    n += zeros;
    buf[n++] = '.';
    if (uk == 0) {
        buf[n++] = '0';
    } else {
        size_t last = nd; /* trim trailing zeros, keep one fractional digit */
        while (last > nd - uk + 1 && d[last - 1] == '0')
            last--;
        memcpy(buf + n, d + nd - uk, last - (nd - uk));
        n += last - (nd - uk);
    }
    buf[n] = '\0';
    return n;
}

/* ---------------------------------------------------------------- escaping */

static size_t escape(char *dst, const char *src, size_t len, bool quote)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '\\') {
            dst[n++] = '\\';
            dst[n++] = '\\';
        } else if (c == '\n') {
            dst[n++] = '\\';
            dst[n++] = 'n';
        } else if (c == '"' && quote) {
            dst[n++] = '\\';
            dst[n++] = '"';
        } else {
            dst[n++] = c;
        }
    }
    return n;
}

size_t lm__escape_help(char *dst, const char *src, size_t len, lm_format fmt)
{
    /* Text 0.0.4 defines only \\ and \n in HELP (a \" there would be shown
     * literally); OpenMetrics uses one escaped-string grammar everywhere. */
    return escape(dst, src, len, fmt == LM_FORMAT_OPENMETRICS);
}

size_t lm__escape_label(char *dst, const char *src, size_t len)
{
    return escape(dst, src, len, true);
}
