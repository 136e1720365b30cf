#include "lm_capture.h"

#include <stdlib.h>
#include <string.h>

int capture_write(void *ctx, const char *buf, size_t len)
{
    capture *c = ctx;
    c->calls++;
    if (c->fail_after && c->calls >= c->fail_after)
        return 1;
    if (c->calls > 1 && c->full && c->last_len < c->full)
        c->short_chunks++;
    c->last_len = len;
    if (len > c->max_chunk)
        c->max_chunk = len;
    if (c->len + len + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + len + 1)
            cap *= 2;
        char *p = realloc(c->p, cap);
        if (p == NULL)
            return 1;
        c->p = p;
        c->cap = cap;
    }
    memcpy(c->p + c->len, buf, len);
    c->len += len;
    c->p[c->len] = '\0';
    return 0;
}

void capture_clear(capture *c)
{
    c->len = 0;
    if (c->p)
        c->p[0] = '\0';
    c->calls = c->max_chunk = c->short_chunks = c->last_len = 0;
}

void capture_free(capture *c)
{
    free(c->p);
    memset(c, 0, sizeof *c);
}

char *capture_drain(lm_expo *x, size_t step, size_t *len)
{
    size_t cap = 1 << 16, n = 0, k;
    char *out = malloc(cap);
    while ((k = lm_expo_read(x, out + n, step)) > 0) {
        n += k;
        if (cap - n < step + 1)
            out = realloc(out, cap *= 2);
    }
    out[n] = '\0';
    *len = n;
    return out;
}
