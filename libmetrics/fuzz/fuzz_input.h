/*
 * The fuzzers' reader of their input: bytes are consumed front to back and
 * an exhausted input reads as zeros, so every input decodes to some case.
 */
#ifndef LM_FUZZ_INPUT_H
#define LM_FUZZ_INPUT_H

#include <stdint.h>
#include <string.h>

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static inline uint8_t u8(rd *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static inline uint64_t u64(rd *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | u8(r);
    return v;
}

/* Up to len raw bytes into out; returns how many the input still had. */
static inline size_t raw_n(rd *r, char *out, size_t len)
{
    if (len > r->n)
        len = r->n;
    memcpy(out, r->p, len);
    r->p += len;
    r->n -= len;
    return len;
}

/* Up to max raw bytes, length-prefixed by one input byte. */
static inline size_t raw(rd *r, char *out, size_t max)
{
    return raw_n(r, out, u8(r) % (max + 1));
}

#endif /* LM_FUZZ_INPUT_H */
