/* Private to src/audit: the UTF-8 reader and the canonical string escaping
 * that the event, params and parser code share. */
#ifndef GH_AUDIT_AUDIT_INT_H
#define GH_AUDIT_AUDIT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The length of the valid UTF-8 sequence at <p> (<n> > 0 bytes left): 1..4.
 * When the bytes there are not valid UTF-8 (RFC 3629 §4: no overlong forms,
 * no surrogates, nothing above U+10FFFF), returns 0 and sets *<bad> to the
 * length of the maximal invalid subpart (Unicode §3.9), which one U+FFFD
 * replaces. */
size_t gh_audit__utf8_len(const unsigned char *p, size_t n, size_t *bad);

/* Bytes that byte <c> takes in a canonical string: 6 for \u00XX (0x00-0x1F,
 * 0x7F), 2 for \" and \\, else 1. */
static inline size_t gh_audit__esc_len(unsigned char c)
{
    if (c < 0x20 || c == 0x7f) return 6;
    if (c == '"' || c == '\\') return 2;
    return 1;
}

/* Writes <n> bytes of <s> escaped for a canonical string (without quotes)
 * at <out>; returns the bytes written. The caller made room. */
size_t gh_audit__escape(const char *s, size_t n, char *out);

#endif
