/* Private to the OTLP encoders (otlp_json.c, otlp_proto.c): the output
 * buffer and the UTF-8 check both encodings share. */
#ifndef GH_TELEMETRY_OTLP_INT_H
#define GH_TELEMETRY_OTLP_INT_H

#include <stddef.h>

#include "telemetry/otlp.h"

/* Makes room for <n> more bytes in <b>. Returns 0, or -1 when out of memory
 * or when b->max is set and would be passed (then <b> is unchanged). */
int gh_otlp__reserve(struct gh_otlp_buf *b, size_t n);

/* Length of the well-formed UTF-8 sequence at <p> (at most <n> bytes, n >
 * 0): 1 for ASCII, 2-4 for a valid multi-byte character, 0 when the byte at
 * <p> does not start one (overlong forms, surrogates and code points above
 * U+10FFFF included, as RFC 3629 §3 says). */
size_t gh_otlp__utf8_seq(const unsigned char *p, size_t n);

/* What the encoders write for each byte that is not valid UTF-8. */
#define GH_OTLP_REPLACEMENT     "\xef\xbf\xbd" /* U+FFFD */
#define GH_OTLP_REPLACEMENT_LEN 3

#endif
