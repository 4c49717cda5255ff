/* UTF-8 as RFC 3629 defines it, the one check every part uses: the JSON
 * writer (what it may copy unescaped), the JWT scanner, the OTLP encoders
 * (what they replace with U+FFFD) and the admin API's query values (which
 * PostgreSQL refuses, as an error, when they are not valid text).
 *
 * Header-only: the callers are on request paths and call it only for bytes
 * of 0x80 and above, after a scan of ASCII. */
#ifndef GH_CORE_UTF8_H
#define GH_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid sequence at <p> (at most <n> bytes, n >= 1): 1 for
 * ASCII, 2 to 4, or 0 when the bytes there are not UTF-8. The second byte's
 * range depends on the first (RFC 3629 §4): that rules out overlong forms
 * (c0, c1; e0 80..9f; f0 80..8f), surrogates (ed a0..bf) and code points
 * past U+10FFFF (f4 90..bf, f5..ff). */
static inline size_t gh_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t len;

    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
    if (len > n || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    return len;
}

/* Whether the <n> bytes at <s> are all valid UTF-8 (NUL counts as text). */
static inline bool gh_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < n;) {
        size_t k = gh_utf8_seq(p + i, n - i);
        if (k == 0) return false;
        i += k;
    }
    return true;
}

#endif
