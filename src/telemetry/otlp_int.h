/* Private to the OTLP encoders (otlp_json.c, otlp_proto.c): the output
 * buffer and the UTF-8 check both encodings share. Most strings are plain
 * ASCII, so the checks look at 8 bytes at a time first and go byte by byte
 * only from the first byte >= 0x80. */
#ifndef GH_TELEMETRY_OTLP_INT_H
#define GH_TELEMETRY_OTLP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/swar.h"
#include "telemetry/otlp.h"

/* Makes room for <n> more bytes in <b>. Returns 0, or -1 when out of memory
 * or when b->max is set and would be passed (then <b> is unchanged). */
int gh_otlp__reserve(struct gh_otlp_buf *b, size_t n);

/* What the encoders write for each byte that is not valid UTF-8. */
#define GH_OTLP_REPLACEMENT     "\xef\xbf\xbd" /* U+FFFD */
#define GH_OTLP_REPLACEMENT_LEN 3

/* Length of the run of ASCII bytes (< 0x80) that <p> (<n> bytes) starts
 * with: <n> when all of it is ASCII. */
static inline size_t gh_otlp__ascii_prefix(const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        if (gh_swar_load8(p + i) & GH_SWAR_HIGHS) break;
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

/* Whether all <n> bytes at <p> are ASCII: whole words, the last one
 * overlapping the one before, so that no byte is looked at alone unless
 * <n> < 4. */
static inline bool gh_otlp__is_ascii(const unsigned char *p, size_t n)
{
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8)
            if (gh_swar_load8(p + i) & GH_SWAR_HIGHS) return false;
        return (gh_swar_load8(p + n - 8) & GH_SWAR_HIGHS) == 0;
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        return ((a | b) & 0x80808080u) == 0;
    }
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc < 0x80;
}

/* Bytes of <p> (<n> bytes) once each byte that gh_utf8_seq() (core/utf8.h) refuses
 * is replaced by U+FFFD: <n> exactly when <p> is valid UTF-8. */
size_t gh_otlp__utf8_size_slow(const unsigned char *p, size_t n);

static inline size_t gh_otlp__utf8_size(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    return gh_otlp__is_ascii(p, n) ? n : gh_otlp__utf8_size_slow(p, n);
}

/* Copies <s> (<n> bytes) to <dst> with each invalid byte replaced by
 * U+FFFD, and returns the bytes written (gh_otlp__utf8_size() of them);
 * <dst> has room for that many. */
size_t gh_otlp__utf8_copy(unsigned char *dst, const char *s, size_t n);

#endif
