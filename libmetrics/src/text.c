/*
 * Text hygiene: everything that reaches an exposition as a label value or
 * help text passes through lm__text_from, so the formatters may assume valid
 * UTF-8 without NUL or C0 controls (other than '\n' and '\t', which they
 * escape). Also the name validators and the error helpers.
 */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* U+FFFD REPLACEMENT CHARACTER */
static const char lm_replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Length of the well-formed UTF-8 sequence starting at p (at most n bytes
 * available), or 0 if the sequence is ill-formed; in that case *bad is set
 * to the length of its maximal subpart (at least 1), which becomes a single
 * U+FFFD. That is the Unicode-recommended practice (what Python, ICU and
 * WHATWG decoders do), so one stray byte never swallows valid text after it. */
static size_t utf8_seq(const unsigned char *p, size_t n, size_t *bad)
{
    unsigned char c = p[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */

    if (c < 0x80) {
        if (c < 0x20 && c != '\n' && c != '\t') {
            *bad = 1;
            return 0;
        }
        return 1;
    }
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
        size_t n = utf8_seq(p + i, in.len - i, &bad);
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

static bool is_alpha_(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

bool lm__valid_metric_name(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    if (!is_alpha_((unsigned char)s[0]) && s[0] != ':')
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!is_alpha_((unsigned char)*p) && !is_digit((unsigned char)*p) && *p != ':')
            return false;
    return true;
}

/* Only the pattern; the reserved "__" prefix is checked by the caller so its
 * message can say why. */
bool lm__valid_label_name(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    if (!is_alpha_((unsigned char)s[0]))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!is_alpha_((unsigned char)*p) && !is_digit((unsigned char)*p))
            return false;
    return true;
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
