#include "pb_check.h"

#include <stdlib.h>

pb_families pb_decode(const char *body, size_t len)
{
    pb_families d = {.whole = true};
    const uint8_t *p = (const uint8_t *)body;
    size_t i = 0, cap = 0;
    while (i < len) {
        uint64_t n = 0;
        int shift = 0;
        bool ended = false;
        while (i < len && shift < 64) {
            n |= (uint64_t)(p[i] & 0x7f) << shift;
            shift += 7;
            if (!(p[i++] & 0x80)) {
                ended = true;
                break;
            }
        }
        pb_family *f = ended && n <= len - i ? io__prometheus__client__metric_family__unpack(NULL, n, p + i) : NULL;
        if (f == NULL) {
            d.whole = false;
            break;
        }
        if (d.n == cap) {
            cap = cap ? 2 * cap : 16;
            pb_family **nf = realloc(d.f, cap * sizeof *nf);
            if (nf == NULL) {
                io__prometheus__client__metric_family__free_unpacked(f, NULL);
                d.whole = false;
                break;
            }
            d.f = nf;
        }
        d.f[d.n++] = f;
        i += n;
    }
    return d;
}

void pb_families_free(pb_families *d)
{
    for (size_t i = 0; i < d->n; i++)
        io__prometheus__client__metric_family__free_unpacked(d->f[i], NULL);
    free(d->f);
    *d = (pb_families){0};
}

uint64_t pb_native_total(const pb_histogram *h)
{
    uint64_t total = h->zero_count;
    int64_t c = 0;
    for (size_t k = 0; k < h->n_positive_delta; k++)
        total += (uint64_t)(c += h->positive_delta[k]);
    c = 0;
    for (size_t k = 0; k < h->n_negative_delta; k++)
        total += (uint64_t)(c += h->negative_delta[k]);
    return total;
}
