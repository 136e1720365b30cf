/*
 * Test and fuzzer helper: an lm_write_fn that captures everything written
 * into one growing, always NUL-terminated buffer (the checkers and strstr
 * scan it as a string), with the writer-contract figures tests assert on.
 */
#ifndef LM_CAPTURE_H
#define LM_CAPTURE_H

#include "libmetrics.h"

#include <stddef.h>

typedef struct capture {
    char *p;           /* NUL-terminated once anything was written; may be NULL */
    size_t len, cap;
    size_t calls;      /* writer calls, failed ones included */
    size_t max_chunk;  /* longest chunk accepted */
    size_t fail_after; /* nonzero: this call (1-based) and every later one fail */
    size_t full;       /* nonzero: count chunks shorter than this ... */
    size_t short_chunks; /* ... that were followed by another chunk */
    size_t last_len;
} capture;

/* lm_write_fn for a capture *ctx: 0, or 1 when told to fail or out of memory. */
int capture_write(void *ctx, const char *buf, size_t len);

/* Forgets the content and counters but keeps the buffer (for repeated scrapes). */
void capture_clear(capture *c);

/* Frees the buffer and zeroes everything, fail_after and full included. */
void capture_free(capture *c);

/* Reads cursor x to its end in reads of `step` bytes (so units span
 * reads); returns the bytes (NUL-terminated, caller frees) and their
 * number in *len. */
char *capture_drain(lm_expo *x, size_t step, size_t *len);

#endif /* LM_CAPTURE_H */
