/* The growable output buffer of the OTLP encoders, and the strict UTF-8
 * check they use so that a hostile string from a request (a path, a user
 * agent) cannot make an export payload that a collector refuses. */
#include "telemetry/otlp_int.h"

#include "core/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN_CAP 1024

int gh_otlp__reserve(struct gh_otlp_buf *b, size_t n)
{
    if (n > SIZE_MAX - b->len) return -1;
    size_t need = b->len + n;
    if (b->max != 0 && need > b->max) return -1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap < MIN_CAP ? MIN_CAP : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->max != 0 && cap > b->max) cap = b->max;
    char *p = realloc(b->data, cap);
    if (p == NULL) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

size_t gh_otlp__utf8_size_slow(const unsigned char *p, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n;) {
        size_t k = gh_otlp__ascii_prefix(p + i, n - i);
        out += k;
        i += k;
        if (i == n) break;
        k = gh_utf8_seq(p + i, n - i);
        out += k > 0 ? k : GH_OTLP_REPLACEMENT_LEN;
        i += k > 0 ? k : 1;
    }
    return out;
}

size_t gh_otlp__utf8_copy(unsigned char *dst, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char *d = dst;
    for (size_t i = 0; i < n;) {
        size_t k = gh_otlp__ascii_prefix(p + i, n - i);
        if (k == 0) k = gh_utf8_seq(p + i, n - i);
        if (k > 0) {
            memcpy(d, p + i, k);
            d += k;
            i += k;
        } else {
            memcpy(d, GH_OTLP_REPLACEMENT, GH_OTLP_REPLACEMENT_LEN);
            d += GH_OTLP_REPLACEMENT_LEN;
            i++;
        }
    }
    return (size_t)(d - dst);
}
