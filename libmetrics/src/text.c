/*
 * Text hygiene: everything that reaches an exposition as a label value or
 * help text passes through lm__text_from, so the formatters may assume valid
 * UTF-8 without NUL or C0 controls (other than '\n' and '\t', which they
 * escape). Also the library's one UTF-8 decoder (lm__utf8_seq: the
 * sanitiser, exemplar validation and the report's Markdown escaper all
 * decode through it) and the error helpers.
 */
#include "util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* U+FFFD REPLACEMENT CHARACTER */
static const char lm_replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

size_t lm__utf8_seq(const unsigned char *p, size_t n, size_t *bad)
{
    unsigned char c = p[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        *bad = 1; /* continuation byte, C0/C1 overlong lead, F5..FF */
        return 0;
    }
    for (size_t i = 1; i <= need; i++) {
        unsigned char min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xBF;
        if (i >= n || p[i] < min || p[i] > max) {
            *bad = i;
            return 0;
        }
    }
    return need + 1;
}

/* Like lm__utf8_seq, but C0 controls other than '\n' and '\t' are
 * ill-formed too: one byte, one U+FFFD. */
static size_t text_seq(const unsigned char *p, size_t n, size_t *bad)
{
    if (p[0] < 0x20 && p[0] != '\n' && p[0] != '\t') {
        *bad = 1;
        return 0;
    }
    return lm__utf8_seq(p, n, bad);
}

int lm__text_from(lm_str in, size_t max_len, lm_text *out)
{
    out->ptr = NULL;
    out->len = 0;
    if (in.ptr == NULL && in.len != 0)
        return LM_ERR_INVALID;

    /* Worst case every byte becomes a 3-byte U+FFFD. */
    size_t cap = in.len > (SIZE_MAX - 1) / 3 ? SIZE_MAX - 1 : in.len * 3;
    if (max_len != 0 && max_len < cap)
        cap = max_len;
    char *buf = malloc(cap + 1);
    if (buf == NULL)
        return LM_ERR_NOMEM;

    const unsigned char *p = (const unsigned char *)in.ptr;
    size_t i = 0, o = 0;
    while (i < in.len) {
        size_t bad = 0;
        size_t n = text_seq(p + i, in.len - i, &bad);
        const char *src = n ? (const char *)p + i : lm_replacement;
        size_t w = n ? n : sizeof lm_replacement;
        if (o + w > cap)
            break; /* cut before a character that does not fit whole */
        memcpy(buf + o, src, w);
        o += w;
        i += n ? n : bad;
    }
    buf[o] = '\0';
    if (o < cap) {
        char *shrunk = realloc(buf, o + 1);
        if (shrunk != NULL)
            buf = shrunk;
    }
    out->ptr = buf;
    out->len = o;
    return LM_OK;
}

void lm__text_free(lm_text *t)
{
    if (t == NULL)
        return;
    free(t->ptr);
    t->ptr = NULL;
    t->len = 0;
}

void lm__set_error(lm_error *err, lm_status code, const char *fmt, ...)
{
    if (err == NULL)
        return;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

const char *lm__quote(char *buf, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap < 8) {
        if (cap)
            buf[0] = '\0';
        return buf;
    }
    if (s == NULL) {
        snprintf(buf, cap, "(null)");
        return buf;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[4];
        size_t w;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            w = 2;
        } else if (c < 0x20 || c >= 0x7F) {
            /* Bytes, not characters: the message must stay plain ASCII
             * whatever the value was. */
            tmp[0] = '\\';
            tmp[1] = 'x';
            tmp[2] = hex[c >> 4];
            tmp[3] = hex[c & 15];
            w = 4;
        } else {
            tmp[0] = (char)c;
            w = 1;
        }
        /* keep room for `..."` and the NUL */
        if (o + w + 5 > cap) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, tmp, w);
        o += w;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
