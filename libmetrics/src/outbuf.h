/*
 * A bounded output buffer in front of an lm_write_fn, for the writers that
 * emit many small pieces (the Markdown and HTML reports): the caller's
 * writer sees chunks of at most LM_OUTBUF_CAP bytes, and after its first
 * failure nothing more is written (the caller reads `failed` once at the
 * end instead of checking every piece).
 */
#ifndef LM_OUTBUF_H
#define LM_OUTBUF_H

#include "util.h"

#define LM_OUTBUF_CAP 4096

typedef struct lm_outbuf {
    lm_write_fn fn;
    void *ctx;
    bool failed;
    size_t len;
    char buf[LM_OUTBUF_CAP];
} lm_outbuf;

LM_HIDDEN void lm__out_init(lm_outbuf *o, lm_write_fn fn, void *ctx);
LM_HIDDEN void lm__out_flush(lm_outbuf *o);
LM_HIDDEN void lm__out_put(lm_outbuf *o, const char *s, size_t n);
LM_HIDDEN void lm__out_str(lm_outbuf *o, const char *s);
LM_HIDDEN void lm__out_u64(lm_outbuf *o, uint64_t v);
LM_HIDDEN void lm__out_i64(lm_outbuf *o, int64_t v);

#endif /* LM_OUTBUF_H */
