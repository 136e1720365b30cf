/* The buffered writer behind the reports (outbuf.h). */
#include "outbuf.h"

#include <string.h>

void lm__out_init(lm_outbuf *o, lm_write_fn fn, void *ctx)
{
    o->fn = fn;
    o->ctx = ctx;
    o->failed = false;
    o->len = 0;
}

void lm__out_flush(lm_outbuf *o)
{
    if (o->len && !o->failed && o->fn(o->ctx, o->buf, o->len) != 0)
        o->failed = true;
    o->len = 0;
}

void lm__out_put(lm_outbuf *o, const char *s, size_t n)
{
    while (n && !o->failed) {
        size_t k = LM_OUTBUF_CAP - o->len;
        if (k > n)
            k = n;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
        if (o->len == LM_OUTBUF_CAP)
            lm__out_flush(o);
    }
}

void lm__out_str(lm_outbuf *o, const char *s)
{
    lm__out_put(o, s, strlen(s));
}

void lm__out_u64(lm_outbuf *o, uint64_t v)
{
    char b[48];
    lm__out_put(o, b, lm__fmt_u64(b, v));
}

void lm__out_i64(lm_outbuf *o, int64_t v)
{
    char b[48];
    lm__out_put(o, b, lm__fmt_i64(b, v));
}
