/* Strict HTTP/1.1 message-head parser (RFC 9110, RFC 9112), request and
 * response mode, zero-copy: every gh_str it fills points into the caller's
 * buffer and lives as long as that buffer.
 *
 * Incremental use: call gh_http_parse_request() each time more bytes arrive,
 * with the same <state>; it scans only the new bytes for the end of the head
 * and returns GH_AGAIN until the head is complete, then parses the whole head
 * once. Limits are checked as bytes arrive (an over-long request line gives
 * 414 before the head is complete).
 *
 * The parser refuses every ambiguous framing that enables request smuggling
 * (see gh_http_parse_request) and reports errors as an HTTP status plus a
 * short machine-readable code, e.g. {400, "ambiguous_framing"}. */
#ifndef GH_HTTP_PARSER_H
#define GH_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

#define GH_HTTP_MAX_HEADERS 256

struct gh_http_header {
    gh_str name;
    gh_str value; /* without leading/trailing whitespace */
};

struct gh_http_limits {
    uint32_t max_request_line; /* request line (or status line) bytes, without CRLF */
    uint32_t max_header_bytes; /* whole head including the final CRLF CRLF */
    uint32_t max_headers;      /* field lines; at most GH_HTTP_MAX_HEADERS */
};

enum gh_http_body {
    GH_BODY_NONE,    /* no body (or Content-Length: 0) */
    GH_BODY_LENGTH,  /* exactly content_length bytes */
    GH_BODY_CHUNKED, /* chunked transfer coding (RFC 9112 §7.1) */
    GH_BODY_CLOSE,   /* response only: until the connection closes */
};

enum gh_http_target_form {
    GH_TARGET_ORIGIN,    /* "/path?query" */
    GH_TARGET_ABSOLUTE,  /* "http://authority/path?query" */
    GH_TARGET_AUTHORITY, /* "host:port" (CONNECT) */
    GH_TARGET_ASTERISK,  /* "*" (OPTIONS) */
};

/* Well-known methods, so later stages compare integers, not strings. */
enum gh_http_method {
    GH_HTTP_GET,
    GH_HTTP_HEAD,
    GH_HTTP_POST,
    GH_HTTP_PUT,
    GH_HTTP_DELETE,
    GH_HTTP_PATCH,
    GH_HTTP_OPTIONS,
    GH_HTTP_TRACE,
    GH_HTTP_CONNECT,
    GH_HTTP_OTHER,
};

/* Facts about the framing and connection that the parser derives from the
 * headers, so no later stage parses them again. */
struct gh_http_framing {
    enum gh_http_body body;
    uint64_t content_length; /* valid when body == GH_BODY_LENGTH */
    bool keep_alive;         /* after this message, per version and Connection */
    bool conn_close;         /* "Connection: close" was present */
    bool conn_upgrade;       /* "Connection: upgrade" was present */
};

struct gh_http_request {
    gh_str method;
    enum gh_http_method method_id;
    gh_str target; /* as sent */
    enum gh_http_target_form target_form;
    gh_str path;          /* origin/absolute form: from '/' up to '?' or end; "*" for asterisk;
                           * an absolute-form target with an empty path gives a static "/" */
    gh_str query;         /* without the '?'; empty when none */
    gh_str authority;     /* absolute form: the authority of the target; else the Host value */
    int minor_version;    /* 0 or 1 */
    bool expect_continue; /* "Expect: 100-continue" (HTTP/1.1 only) */
    struct gh_http_framing framing;
    struct gh_http_header *headers; /* caller's array (see gh_http_parse_request) */
    uint32_t nheaders;
    uint32_t head_len; /* bytes of the head including the final CRLF CRLF */
};

struct gh_http_response {
    int status;
    gh_str reason;
    int minor_version;
    struct gh_http_framing framing;
    struct gh_http_header *headers;
    uint32_t nheaders;
    uint32_t head_len;
};

/* Scan state kept between calls for one message head. Zero it (or call
 * gh_http_state_reset) before the first call for each message. */
struct gh_http_state {
    uint32_t scanned;    /* bytes already searched for line ends */
    uint32_t line_start; /* offset where the current line begins */
    uint32_t first_line; /* offset of the start line (after skipped empty lines) */
    uint32_t nlines;     /* lines seen, including the start line */
};

static inline void gh_http_state_reset(struct gh_http_state *st)
{
    st->scanned = 0;
    st->line_start = 0;
    st->first_line = 0;
    st->nlines = 0;
}

struct gh_http_error {
    int status;       /* 400, 413, 414, 417, 431, 501, 505; 502 for a bad upstream response */
    const char *code; /* static string, e.g. "ambiguous_framing"; safe to show to clients */
};

/* Parses a request head from <buf> (<len> bytes received so far).
 * <headers> is the caller's array with room for <limits>->max_headers entries.
 * Returns GH_OK with <req> filled when the head is complete and valid,
 * GH_AGAIN when more bytes are needed (nothing in <req> is valid yet), or
 * GH_ERROR with <err> filled; the connection must then be answered with
 * err->status and closed.
 *
 * Refused with 400: bare CR or LF, NUL or other control bytes, obs-fold,
 * whitespace before a colon or in a field name, invalid token characters,
 * HTTP/1.0 messages with Transfer-Encoding, Transfer-Encoding together with
 * Content-Length, more than one Content-Length (even if equal) or a malformed
 * one, Transfer-Encoding whose final coding is not "chunked" (or "chunked"
 * given twice), a missing or repeated Host in HTTP/1.1, invalid targets.
 * 414: request line over the limit. 431: head over the byte or count limit.
 * 501: transfer codings other than chunked, CONNECT. 505: HTTP versions
 * other than 1.0 and 1.1. 417: an Expect other than 100-continue. */
int gh_http_parse_request(const char *buf, size_t len, struct gh_http_state *state,
                          const struct gh_http_limits *limits, struct gh_http_header *headers,
                          struct gh_http_request *req, struct gh_http_error *err);

/* Parses a response head, same contract as the request parser. <req_method>
 * and the status decide the body: HEAD, 1xx, 204 and 304 have none (RFC 9112
 * §6.3). Errors use status 502 (the upstream sent something we refuse),
 * among them transfer codings other than a lone "chunked", which a proxy
 * could only forward corrupted. */
int gh_http_parse_response(const char *buf, size_t len, struct gh_http_state *state,
                           const struct gh_http_limits *limits, enum gh_http_method req_method,
                           struct gh_http_header *headers, struct gh_http_response *resp,
                           struct gh_http_error *err);

/* Returns the first header named <name> (case-insensitive), or NULL. */
const struct gh_http_header *gh_http_find_header(const struct gh_http_header *headers, uint32_t n,
                                                 const char *name);

/* True for the headers a proxy must not forward (RFC 9110 §7.6.1): Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
 * Proxy-Authenticate, Proxy-Authorization. Fields named in Connection are
 * checked separately with gh_http_connection_lists(). */
bool gh_http_is_hop_by_hop(gh_str name);

/* True when the Connection header values in <headers> list <name>. */
bool gh_http_connection_lists(const struct gh_http_header *headers, uint32_t n, gh_str name);

/* ---- chunked transfer coding (RFC 9112 §7.1) ---- */

enum gh_chunk_event {
    GH_CHUNK_NEED_MORE, /* all input consumed; call again with more */
    GH_CHUNK_DATA,      /* <span> is body data (points into the input) */
    GH_CHUNK_TRAILER,   /* <span> is one trailer field line without its CRLF */
    GH_CHUNK_DONE,      /* the last chunk and trailer section are complete */
    GH_CHUNK_ERROR,     /* malformed; see err */
};

struct gh_chunked {
    uint8_t state;
    uint8_t digits;    /* hex digits in the current size */
    uint16_t line_len; /* bytes of the current size line or trailer line */
    uint32_t trailer_bytes;
    uint32_t max_trailer_bytes;
    uint64_t remaining; /* data bytes left in the current chunk */
    uint64_t total;     /* data bytes decoded so far */
    char line[512];     /* a trailer line being assembled; longer lines get 431 */
};

/* <max_trailer_bytes> caps the trailer section (431 beyond it). */
void gh_chunked_init(struct gh_chunked *c, uint32_t max_trailer_bytes);

/* Decodes from <in> (<len> bytes). Sets *consumed to the bytes used; on
 * DATA and TRAILER fills <span>. Call in a loop until NEED_MORE, DONE or
 * ERROR. A trailer <span> may point into <c> itself (valid until the next
 * call). Refused (400): a size that is empty, not hex, longer than 16 digits
 * or overflowing; chunk extensions that are not `;name[=token|quoted]`;
 * data not followed by CRLF; bare CR or LF; malformed trailer fields. */
enum gh_chunk_event gh_chunked_next(struct gh_chunked *c, const char *in, size_t len,
                                    size_t *consumed, gh_str *span, struct gh_http_error *err);

/* Character classes (RFC 9110 §5.6.2 tchar, field-vchar), shared with other parsers. */
extern const uint8_t gh_http_tchar[256];
static inline bool gh_http_is_tchar(unsigned char c)
{
    return gh_http_tchar[c] != 0;
}

#endif
