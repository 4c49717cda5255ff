/* Tests for the HTTP/1.1 head parser and the chunked decoder (src/http/).
 *
 * Data-driven: every table row below becomes one named cmocka test, so a
 * failure names the row. Each row is an input and what the parser must make
 * of it; the expectations follow RFC 9110/9112 and the contract in
 * http/parser.h, not whatever the implementation happens to do.
 *
 * Every input is copied into a heap buffer of exactly its length, so that
 * ASan reports any read past the bytes the parser was given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "http/parser.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define RAW(s)       .raw = (s), .raw_len = sizeof(s) - 1
#define BODY(s)      .body = (s), .body_len = sizeof(s) - 1
#define MAX_PAIRS    16

/* The gateway's defaults (docs: limits.*) and a tight set for limit tests. */
static const struct gh_http_limits default_limits = {8192, 32768, 100};
static const struct gh_http_limits small_limits = {32, 128, 4};

/* ---- helpers ---- */

/* Collects mismatches for one row so that all of them are reported at once. */
struct checker {
    const char *row;
    int failures;
};

__attribute__((format(printf, 2, 3))) static void mismatch(struct checker *ck, const char *fmt, ...)
{
    va_list ap;

    print_error("[%s] ", ck->row);
    va_start(ap, fmt);
    vprint_error(fmt, ap);
    va_end(ap);
    print_error("\n");
    ck->failures++;
}

/* Printable form of a byte string, for messages (a few rotating buffers). */
static const char *esc(const char *p, size_t n)
{
    static char bufs[4][600];
    static unsigned next;
    char *out = bufs[next++ % 4];
    size_t o = 0;

    for (size_t i = 0; i < n && o + 8 < sizeof(bufs[0]); i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r')
            o += (size_t)snprintf(out + o, 8, "\\r");
        else if (c == '\n')
            o += (size_t)snprintf(out + o, 8, "\\n");
        else if (c == '\\' || c == '"')
            o += (size_t)snprintf(out + o, 8, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            o += (size_t)snprintf(out + o, 8, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

static char *dup_exact(const char *p, size_t n)
{
    char *b = malloc(n ? n : 1);
    assert_non_null(b);
    if (n) memcpy(b, p, n);
    return b;
}

static void check_int(struct checker *ck, const char *what, long long got, long long want)
{
    if (got != want) mismatch(ck, "%s: got %lld, want %lld", what, got, want);
}

static void check_slice(struct checker *ck, const char *what, gh_str got, const char *want,
                        size_t want_len)
{
    if (got.len != want_len || (want_len && memcmp(got.ptr, want, want_len) != 0))
        mismatch(ck, "%s: got \"%s\", want \"%s\"", what, esc(got.ptr, got.len),
                 esc(want, want_len));
}

static void check_cstr(struct checker *ck, const char *what, gh_str got, const char *want)
{
    if (want != NULL) check_slice(ck, what, got, want, strlen(want));
}

/* The slice points into buf[0..len] (an empty slice may also be NULL). */
static bool inside(gh_str s, const char *buf, size_t len)
{
    uintptr_t p = (uintptr_t)s.ptr, b = (uintptr_t)buf;
    if (s.ptr == NULL) return s.len == 0;
    return p >= b && p + s.len <= b + len;
}

static void check_inside(struct checker *ck, const char *what, gh_str s, const char *buf,
                         size_t len)
{
    if (!inside(s, buf, len)) mismatch(ck, "%s does not point into the input", what);
}

static void check_error(struct checker *ck, const char *what, const struct gh_http_error *err,
                        int status, const char *code)
{
    if (err->status != status)
        mismatch(ck, "%s: status %d (%s), want %d (%s)", what, err->status,
                 err->code ? err->code : "(null)", status, code);
    else if (err->code == NULL || strcmp(err->code, code) != 0)
        mismatch(ck, "%s: code \"%s\", want \"%s\"", what, err->code ? err->code : "(null)", code);
}

static const char *rc_name(int rc)
{
    switch (rc) {
    case GH_OK: return "GH_OK";
    case GH_ERROR: return "GH_ERROR";
    case GH_AGAIN: return "GH_AGAIN";
    default: return "?";
    }
}

/* Deterministic PRNG for the random splits (xorshift32). */
static uint32_t rng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Where the next piece of input ends: everything (step 0), one more byte
 * (step 1), or 1..24 more bytes chosen by <rng>. */
static size_t next_cut(size_t have, size_t len, size_t step, uint32_t *rng)
{
    size_t add;
    if (step == 0) return len;
    add = step == 1 ? 1 : 1 + rng_next(rng) % 24;
    return have + add > len ? len : have + add;
}

/* ---- chunked decoding driver, shared by the request and decoder tests ---- */

struct decoded {
    enum gh_chunk_event last; /* DONE, ERROR, or NEED_MORE when the input ran out */
    struct gh_http_error err;
    size_t consumed; /* input bytes used up to and including DONE */
    char *body;
    size_t body_len;
    char trailers[2048]; /* trailer lines, each followed by '\n' */
    size_t trailers_len;
    uint64_t total;  /* the decoder's own count */
    int bad_spans;   /* spans outside the input given or the decoder */
    int bad_consume; /* NEED_MORE that did not use all the input */
};

/* Decodes <in> as it would arrive in pieces (see next_cut). Every piece is
 * copied to an exact-size buffer so that over-reads are caught. */
static void decode(const char *in, size_t len, uint32_t max_trailer, size_t step, uint32_t seed,
                   struct decoded *d)
{
    struct gh_chunked c;
    size_t pos = 0, avail = 0;
    uint32_t rng = seed ? seed : 1;

    memset(d, 0, sizeof(*d));
    d->body = malloc(len + 1);
    assert_non_null(d->body);
    d->last = GH_CHUNK_NEED_MORE;
    gh_chunked_init(&c, max_trailer);
    for (;;) {
        enum gh_chunk_event ev;
        size_t consumed = 0, n;
        gh_str span = GH_STR_NULL;
        char *piece;

        if (pos == avail) {
            if (avail == len) break;
            avail = next_cut(avail, len, step, &rng);
        }
        n = avail - pos;
        piece = dup_exact(in + pos, n);
        ev = gh_chunked_next(&c, piece, n, &consumed, &span, &d->err);
        if (ev == GH_CHUNK_DATA) {
            /* the data is the input right before what was consumed */
            if (!inside(span, piece, n) || span.len == 0 || consumed > n ||
                span.ptr + span.len != piece + consumed)
                d->bad_spans++;
            else {
                memcpy(d->body + d->body_len, span.ptr, span.len);
                d->body_len += span.len;
            }
        } else if (ev == GH_CHUNK_TRAILER) {
            if (!inside(span, piece, n) && !inside(span, (const char *)&c, sizeof(c)))
                d->bad_spans++;
            else if (d->trailers_len + span.len + 1 < sizeof(d->trailers)) {
                memcpy(d->trailers + d->trailers_len, span.ptr, span.len);
                d->trailers_len += span.len;
                d->trailers[d->trailers_len++] = '\n';
            }
        }
        free(piece);
        if (ev == GH_CHUNK_ERROR) {
            d->last = ev;
            break;
        }
        if (consumed > n) {
            d->bad_consume++;
            break;
        }
        pos += consumed;
        if (ev == GH_CHUNK_DONE) {
            d->last = ev;
            break;
        }
        if (ev == GH_CHUNK_NEED_MORE && pos != avail) {
            d->bad_consume++;
            break;
        }
    }
    d->consumed = pos;
    d->total = c.total;
}

static const char *event_name(enum gh_chunk_event ev)
{
    switch (ev) {
    case GH_CHUNK_NEED_MORE: return "NEED_MORE";
    case GH_CHUNK_DATA: return "DATA";
    case GH_CHUNK_TRAILER: return "TRAILER";
    case GH_CHUNK_DONE: return "DONE";
    case GH_CHUNK_ERROR: return "ERROR";
    }
    return "?";
}

/* ---- requests: valid ---- */

struct req_row {
    const char *name;
    const char *raw;
    size_t raw_len;
    enum gh_http_method method_id;
    const char *method;
    const char *target;
    enum gh_http_target_form form;
    const char *path, *query, *authority;
    int minor;
    bool expect_continue;
    enum gh_http_body body_kind;
    uint64_t content_length;
    bool keep_alive, conn_close, conn_upgrade;
    uint32_t head_len;                   /* 0: the whole input */
    const char *hdrs[2 * MAX_PAIRS + 1]; /* name, value, ..., NULL */
    const char *body;                    /* decoded body, when given */
    size_t body_len;
    const char *trailers; /* chunked: trailer lines each followed by "\n" */
};

static const struct req_row valid_requests[] = {
    {.name = "get_no_body",
     RAW("GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1.0\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .target = "/index.html",
     .path = "/index.html",
     .query = "",
     .authority = "example.com",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "example.com", "User-Agent", "t/1.0", NULL}},
    {.name = "get_query_and_port",
     RAW("GET /search?q=a+b&x=%20 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .target = "/search?q=a+b&x=%20",
     .path = "/search",
     .query = "q=a+b&x=%20",
     .authority = "example.com:8080",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "example.com:8080", NULL}},
    {.name = "query_with_question_marks",
     RAW("GET /a?b?c=/d HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/a",
     .query = "b?c=/d",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", NULL}},
    {.name = "empty_query",
     RAW("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/a",
     .query = "",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", NULL}},
    {.name = "double_slash_path",
     RAW("GET //x/../y HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "//x/../y",
     .query = "",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", NULL}},
    {.name = "post_content_length",
     RAW("POST /submit HTTP/1.1\r\nHost: a.example\r\nContent-Length: 11\r\n"
         "Content-Type: text/plain\r\n\r\nhello world"),
     .method_id = GH_HTTP_POST,
     .method = "POST",
     .path = "/submit",
     .query = "",
     .authority = "a.example",
     .minor = 1,
     .body_kind = GH_BODY_LENGTH,
     .content_length = 11,
     .keep_alive = true,
     .hdrs = {"Host", "a.example", "Content-Length", "11", "Content-Type", "text/plain", NULL},
     BODY("hello world")},
    {.name = "content_length_zero",
     RAW("PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
     .method_id = GH_HTTP_PUT,
     .method = "PUT",
     .path = "/x",
     .query = "",
     .authority = "a",
     .minor = 1,
     .body_kind = GH_BODY_NONE,
     .content_length = 0,
     .keep_alive = true,
     .hdrs = {"Host", "a", "Content-Length", "0", NULL}},
    {.name = "content_length_leading_zeros_ows",
     RAW("POST / HTTP/1.1\r\nHost: a\r\ncontent-length:\t007 \r\n\r\nabcdefg"),
     .method_id = GH_HTTP_POST,
     .method = "POST",
     .path = "/",
     .query = "",
     .authority = "a",
     .minor = 1,
     .body_kind = GH_BODY_LENGTH,
     .content_length = 7,
     .keep_alive = true,
     .hdrs = {"Host", "a", "content-length", "007", NULL},
     BODY("abcdefg")},
    {.name = "content_length_18_digits",
     RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n"),
     .method_id = GH_HTTP_POST,
     .method = "POST",
     .path = "/",
     .query = "",
     .authority = "a",
     .minor = 1,
     .body_kind = GH_BODY_LENGTH,
     .content_length = 999999999999999999ull,
     .keep_alive = true,
     .hdrs = {"Host", "a", "Content-Length", "999999999999999999", NULL}},
    {.name = "chunked",
     RAW("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
     .method_id = GH_HTTP_POST,
     .method = "POST",
     .path = "/up",
     .authority = "a",
     .minor = 1,
     .body_kind = GH_BODY_CHUNKED,
     .keep_alive = true,
     .head_len = 58,
     .hdrs = {"Host", "a", "Transfer-Encoding", "chunked", NULL},
     BODY("hello world"),
     .trailers = ""},
    {.name = "chunked_extensions_and_trailers",
     RAW("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
         "5;name=value;flag\r\nhello\r\n3 ; q=\"a \\\"b\\\"\"\r\nabc\r\n0;last\r\n"
         "X-Sum: 8\r\n\r\n"),
     .method_id = GH_HTTP_POST,
     .method = "POST",
     .path = "/up",
     .authority = "a",
     .minor = 1,
     .body_kind = GH_BODY_CHUNKED,
     .keep_alive = true,
     .head_len = 74,
     .hdrs = {"Host", "a", "Transfer-Encoding", "chunked", "Trailer", "X-Sum", NULL},
     BODY("helloabc"),
     .trailers = "X-Sum: 8\n"},
    {.name = "chunked_case_and_ows",
     RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:   CHUNKED  \r\n\r\n"),
     .method_id = GH_HTTP_POST,
     .method = "POST",
     .path = "/",
     .authority = "a",
     .minor = 1,
     .body_kind = GH_BODY_CHUNKED,
     .keep_alive = true,
     .hdrs = {"Host", "a", "Transfer-Encoding", "CHUNKED", NULL}},
    {.name = "http10_no_keep_alive",
     RAW("GET / HTTP/1.0\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/",
     .query = "",
     .authority = "",
     .minor = 0,
     .keep_alive = false,
     .hdrs = {NULL}},
    {.name = "http10_keep_alive",
     RAW("GET /k HTTP/1.0\r\nConnection: keep-alive\r\nHost: a\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/k",
     .authority = "a",
     .minor = 0,
     .keep_alive = true,
     .hdrs = {"Connection", "keep-alive", "Host", "a", NULL}},
    {.name = "http10_keep_alive_case_list",
     RAW("GET / HTTP/1.0\r\nConnection: X-Foo, Keep-Alive\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/",
     .minor = 0,
     .keep_alive = true,
     .hdrs = {"Connection", "X-Foo, Keep-Alive", NULL}},
    {.name = "http10_keep_alive_and_close",
     RAW("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/",
     .minor = 0,
     .keep_alive = false,
     .conn_close = true,
     .hdrs = {"Connection", "keep-alive, close", NULL}},
    {.name = "http10_content_length",
     RAW("POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"),
     .method_id = GH_HTTP_POST,
     .method = "POST",
     .path = "/",
     .minor = 0,
     .body_kind = GH_BODY_LENGTH,
     .content_length = 2,
     .keep_alive = false,
     .hdrs = {"Content-Length", "2", NULL},
     BODY("hi")},
    {.name = "http11_close",
     RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/",
     .authority = "a",
     .minor = 1,
     .keep_alive = false,
     .conn_close = true,
     .hdrs = {"Host", "a", "Connection", "close", NULL}},
    {.name = "connection_upgrade",
     RAW("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
         "Upgrade: websocket\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/ws",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .conn_upgrade = true,
     .hdrs = {"Host", "a", "Connection", "Upgrade, HTTP2-Settings", "Upgrade", "websocket", NULL}},
    {.name = "absolute_form",
     RAW("GET http://example.com:8080/p/q?x=1&y HTTP/1.1\r\nHost: other.example\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .target = "http://example.com:8080/p/q?x=1&y",
     .form = GH_TARGET_ABSOLUTE,
     .path = "/p/q",
     .query = "x=1&y",
     .authority = "example.com:8080",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "other.example", NULL}},
    {.name = "absolute_form_empty_path",
     RAW("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .form = GH_TARGET_ABSOLUTE,
     .path = "/",
     .query = "",
     .authority = "example.com",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "example.com", NULL}},
    {.name = "absolute_form_empty_path_query_https_upper",
     RAW("GET HTTPS://Example.COM?a=b HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .form = GH_TARGET_ABSOLUTE,
     .path = "/",
     .query = "a=b",
     .authority = "Example.COM",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "example.com", NULL}},
    {.name = "absolute_form_ipv6",
     RAW("DELETE http://[::1]:8080/r HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
     .method_id = GH_HTTP_DELETE,
     .method = "DELETE",
     .form = GH_TARGET_ABSOLUTE,
     .path = "/r",
     .query = "",
     .authority = "[::1]:8080",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "[::1]:8080", NULL}},
    {.name = "asterisk_options",
     RAW("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method_id = GH_HTTP_OPTIONS,
     .method = "OPTIONS",
     .target = "*",
     .form = GH_TARGET_ASTERISK,
     .path = "*",
     .query = "",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", NULL}},
    {.name = "leading_crlf",
     RAW("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", NULL}},
    {.name = "expect_100_continue",
     RAW("POST /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
     .method_id = GH_HTTP_POST,
     .method = "POST",
     .path = "/u",
     .authority = "a",
     .minor = 1,
     .expect_continue = true,
     .body_kind = GH_BODY_LENGTH,
     .content_length = 3,
     .keep_alive = true,
     .hdrs = {"Host", "a", "Expect", "100-continue", "Content-Length", "3", NULL}},
    {.name = "expect_100_continue_case",
     RAW("PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"),
     .method_id = GH_HTTP_PUT,
     .method = "PUT",
     .path = "/u",
     .authority = "a",
     .minor = 1,
     .expect_continue = true,
     .body_kind = GH_BODY_LENGTH,
     .content_length = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", "Expect", "100-Continue", "Content-Length", "1", NULL}},
    {.name = "expect_100_continue_http10_ignored",
     RAW("POST /u HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"),
     .method_id = GH_HTTP_POST,
     .method = "POST",
     .path = "/u",
     .minor = 0,
     .expect_continue = false,
     .body_kind = GH_BODY_LENGTH,
     .content_length = 1,
     .hdrs = {"Expect", "100-continue", "Content-Length", "1", NULL}},
    {.name = "pipelined_first",
     RAW("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/a",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .head_len = 28,
     .hdrs = {"Host", "a", NULL}},
    {.name = "value_trimming",
     RAW("GET / HTTP/1.1\r\nHost:a\r\nX-A:   spaced  value \t\r\nX-B:\r\nX-C: \t \r\n"
         "X-D:\tx\ty\t\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", "X-A", "spaced  value", "X-B", "", "X-C", "", "X-D", "x\ty", NULL}},
    {.name = "obs_text_in_values",
     RAW("GET / HTTP/1.1\r\nHost: a\r\nX-Latin: caf\xc3\xa9 \xff\r\nX-High: \x80\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", "X-Latin", "caf\xc3\xa9 \xff", "X-High", "\x80", NULL}},
    {.name = "all_tchars_in_name",
     RAW("GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09AZaz: v\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", "!#$%&'*+-.^_`|~09AZaz", "v", NULL}},
    {.name = "host_name_case",
     RAW("GET / HTTP/1.1\r\nHOST: My-Host_1.example:443\r\n\r\n"),
     .method_id = GH_HTTP_GET,
     .method = "GET",
     .path = "/",
     .authority = "My-Host_1.example:443",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"HOST", "My-Host_1.example:443", NULL}},
    {.name = "head",
     RAW("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method_id = GH_HTTP_HEAD,
     .method = "HEAD",
     .path = "/",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", NULL}},
    {.name = "patch",
     RAW("PATCH /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"),
     .method_id = GH_HTTP_PATCH,
     .method = "PATCH",
     .path = "/p",
     .authority = "a",
     .minor = 1,
     .body_kind = GH_BODY_LENGTH,
     .content_length = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", "Content-Length", "1", NULL},
     BODY("x")},
    {.name = "trace",
     RAW("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method_id = GH_HTTP_TRACE,
     .method = "TRACE",
     .path = "/",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", NULL}},
    {.name = "extension_method",
     RAW("M-SEARCH /ssdp HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method_id = GH_HTTP_OTHER,
     .method = "M-SEARCH",
     .path = "/ssdp",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", NULL}},
    {.name = "lowercase_method_is_a_token",
     RAW("get / HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method_id = GH_HTTP_OTHER,
     .method = "get",
     .path = "/",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", NULL}},
    {.name = "purge_other_method",
     RAW("PURGE /c HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method_id = GH_HTTP_OTHER,
     .method = "PURGE",
     .path = "/c",
     .authority = "a",
     .minor = 1,
     .keep_alive = true,
     .hdrs = {"Host", "a", NULL}},
};

/* The head ends where the row says, or before a Content-Length body, or at
 * the end of the input. */
static size_t expected_head_len(const struct req_row *row)
{
    if (row->head_len) return row->head_len;
    if (row->body && row->body_kind == GH_BODY_LENGTH) return row->raw_len - row->body_len;
    return row->raw_len;
}

/* Compares what the parser made of <buf> with the row. */
static void check_request(struct checker *ck, const struct req_row *row, const char *buf,
                          size_t len, const struct gh_http_request *req)
{
    size_t npairs = 0;

    check_int(ck, "method_id", req->method_id, row->method_id);
    check_cstr(ck, "method", req->method, row->method);
    check_cstr(ck, "target", req->target, row->target);
    check_int(ck, "target_form", req->target_form, row->form);
    check_cstr(ck, "path", req->path, row->path);
    check_cstr(ck, "query", req->query, row->query);
    check_cstr(ck, "authority", req->authority, row->authority);
    check_int(ck, "minor_version", req->minor_version, row->minor);
    check_int(ck, "expect_continue", req->expect_continue, row->expect_continue);
    check_int(ck, "framing.body", req->framing.body, row->body_kind);
    if (row->body_kind == GH_BODY_LENGTH)
        check_int(ck, "content_length", (long long)req->framing.content_length,
                  (long long)row->content_length);
    check_int(ck, "keep_alive", req->framing.keep_alive, row->keep_alive);
    check_int(ck, "conn_close", req->framing.conn_close, row->conn_close);
    check_int(ck, "conn_upgrade", req->framing.conn_upgrade, row->conn_upgrade);
    check_int(ck, "head_len", req->head_len, expected_head_len(row));

    check_inside(ck, "method", req->method, buf, len);
    check_inside(ck, "target", req->target, buf, len);
    check_inside(ck, "query", req->query, buf, len);
    check_inside(ck, "authority", req->authority, buf, len);
    /* An empty absolute-form path is reported as the literal "/". */
    if (!(req->target_form == GH_TARGET_ABSOLUTE && req->path.len == 1))
        check_inside(ck, "path", req->path, buf, len);

    while (row->hdrs[2 * npairs] != NULL)
        npairs++;
    check_int(ck, "nheaders", req->nheaders, (long long)npairs);
    for (size_t i = 0; i < npairs && i < req->nheaders; i++) {
        check_cstr(ck, "header name", req->headers[i].name, row->hdrs[2 * i]);
        check_cstr(ck, "header value", req->headers[i].value, row->hdrs[2 * i + 1]);
        check_inside(ck, "header name", req->headers[i].name, buf, req->head_len);
        check_inside(ck, "header value", req->headers[i].value, buf, req->head_len);
    }
}

static void check_request_body(struct checker *ck, const struct req_row *row, const char *buf,
                               const struct gh_http_request *req)
{
    size_t rest = row->raw_len - req->head_len;

    if (row->body == NULL || req->head_len > row->raw_len) return;
    if (req->framing.body == GH_BODY_LENGTH) {
        if (req->framing.content_length > rest)
            mismatch(ck, "content_length %llu beyond the input",
                     (unsigned long long)req->framing.content_length);
        else
            check_slice(ck, "body", gh_str_make(buf + req->head_len, req->framing.content_length),
                        row->body, row->body_len);
    } else if (req->framing.body == GH_BODY_CHUNKED) {
        struct decoded d;
        decode(buf + req->head_len, rest, 4096, 0, 0, &d);
        if (d.last != GH_CHUNK_DONE)
            mismatch(ck, "chunked body: %s (%s)", event_name(d.last),
                     d.err.code ? d.err.code : "-");
        check_slice(ck, "chunked body", gh_str_make(d.body, d.body_len), row->body, row->body_len);
        if (row->trailers)
            check_slice(ck, "trailers", gh_str_make(d.trailers, d.trailers_len), row->trailers,
                        strlen(row->trailers));
        check_int(ck, "consumed", (long long)d.consumed, (long long)rest);
        free(d.body);
    }
}

static void test_valid_request(void **state)
{
    const struct req_row *row = *state;
    struct checker ck = {row->name, 0};
    char *buf = dup_exact(row->raw, row->raw_len);
    struct gh_http_header hdrs[GH_HTTP_MAX_HEADERS];
    struct gh_http_request req;
    struct gh_http_error err = {0, NULL};
    struct gh_http_state st = {0, 0, 0, 0};
    int rc = gh_http_parse_request(buf, row->raw_len, &st, &default_limits, hdrs, &req, &err);

    if (rc != GH_OK) {
        mismatch(&ck, "%s (%d %s), want GH_OK", rc_name(rc), err.status, err.code ? err.code : "-");
    } else {
        check_request(&ck, row, buf, row->raw_len, &req);
        check_request_body(&ck, row, buf, &req);
    }
    free(buf);
    if (ck.failures) fail();
}

/* ---- requests: incremental feeding ---- */

/* Feeds a growing prefix of <buf> (same buffer, same state) until the parser
 * stops asking for more; returns the last result. */
static int feed_request(const char *buf, size_t len, const struct gh_http_limits *lim, size_t step,
                        uint32_t seed, struct gh_http_header *hdrs, struct gh_http_request *req,
                        struct gh_http_error *err)
{
    struct gh_http_state st;
    size_t have = 0;
    uint32_t rng = seed ? seed : 1;
    int rc = GH_AGAIN;

    gh_http_state_reset(&st);
    while (have < len) {
        have = next_cut(have, len, step, &rng);
        rc = gh_http_parse_request(buf, have, &st, lim, hdrs, req, err);
        if (rc != GH_AGAIN) break;
    }
    return rc;
}

static void compare_slices(struct checker *ck, const char *what, gh_str a, gh_str b)
{
    if (a.len != b.len || a.ptr != b.ptr)
        mismatch(ck, "%s differs: \"%s\" vs one-shot \"%s\"", what, esc(a.ptr, a.len),
                 esc(b.ptr, b.len));
}

static void compare_requests(struct checker *ck, const char *how, const struct gh_http_request *a,
                             const struct gh_http_request *b)
{
    int before = ck->failures;

    compare_slices(ck, "method", a->method, b->method);
    compare_slices(ck, "target", a->target, b->target);
    compare_slices(ck, "path", a->path, b->path);
    compare_slices(ck, "query", a->query, b->query);
    compare_slices(ck, "authority", a->authority, b->authority);
    check_int(ck, "method_id", a->method_id, b->method_id);
    check_int(ck, "target_form", a->target_form, b->target_form);
    check_int(ck, "minor_version", a->minor_version, b->minor_version);
    check_int(ck, "expect_continue", a->expect_continue, b->expect_continue);
    check_int(ck, "framing.body", a->framing.body, b->framing.body);
    check_int(ck, "content_length", (long long)a->framing.content_length,
              (long long)b->framing.content_length);
    check_int(ck, "keep_alive", a->framing.keep_alive, b->framing.keep_alive);
    check_int(ck, "conn_close", a->framing.conn_close, b->framing.conn_close);
    check_int(ck, "conn_upgrade", a->framing.conn_upgrade, b->framing.conn_upgrade);
    check_int(ck, "head_len", a->head_len, b->head_len);
    check_int(ck, "nheaders", a->nheaders, b->nheaders);
    for (uint32_t i = 0; i < a->nheaders && i < b->nheaders; i++) {
        compare_slices(ck, "header name", a->headers[i].name, b->headers[i].name);
        compare_slices(ck, "header value", a->headers[i].value, b->headers[i].value);
    }
    if (ck->failures != before) mismatch(ck, "(the differences above are for %s)", how);
}

static void test_incremental_request(void **state)
{
    const struct req_row *row = *state;
    struct checker ck = {row->name, 0};
    char *buf = dup_exact(row->raw, row->raw_len);
    struct gh_http_header h1[GH_HTTP_MAX_HEADERS], h2[GH_HTTP_MAX_HEADERS];
    struct gh_http_request one, inc;
    struct gh_http_error err = {0, NULL};
    struct gh_http_state st = {0, 0, 0, 0};
    int rc;

    rc = gh_http_parse_request(buf, row->raw_len, &st, &default_limits, h1, &one, &err);
    assert_int_equal(rc, GH_OK);

    /* Byte by byte: GH_AGAIN for every proper prefix of the head. */
    rc = feed_request(buf, row->raw_len, &default_limits, 1, 0, h2, &inc, &err);
    if (rc != GH_OK)
        mismatch(&ck, "byte by byte: %s (%d %s)", rc_name(rc), err.status, err.code);
    else
        compare_requests(&ck, "byte by byte", &inc, &one);

    for (uint32_t seed = 1; seed <= 8; seed++) {
        char how[64];
        snprintf(how, sizeof(how), "random split, seed %u", seed);
        rc =
            feed_request(buf, row->raw_len, &default_limits, 2, seed * 2654435761u, h2, &inc, &err);
        if (rc != GH_OK)
            mismatch(&ck, "%s: %s (%d %s)", how, rc_name(rc), err.status, err.code);
        else
            compare_requests(&ck, how, &inc, &one);
    }
    free(buf);
    if (ck.failures) fail();
}

/* ---- requests: malformed and smuggling attempts ---- */

struct bad_row {
    const char *name;
    const char *raw;
    size_t raw_len;
    int status;
    const char *code;
    const struct gh_http_limits *lim; /* NULL: the defaults */
};

#define H11   "GET / HTTP/1.1\r\nHost: a\r\n"
#define POST1 "POST / HTTP/1.1\r\nHost: a\r\n"

static const struct bad_row bad_requests[] = {
    /* framing: Content-Length and Transfer-Encoding (RFC 9112 §6) */
    {"te_then_cl", RAW(POST1 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400,
     "ambiguous_framing"},
    {"cl_then_te", RAW(POST1 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400,
     "ambiguous_framing"},
    {"te_and_invalid_cl", RAW(POST1 "Transfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n"), 400,
     "ambiguous_framing"},
    {"te_gzip_chunked_and_cl",
     RAW(POST1 "Content-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 400,
     "ambiguous_framing"},
    {"cl_twice_equal", RAW(POST1 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), 400,
     "duplicate_content_length"},
    {"cl_twice_different", RAW(POST1 "Content-Length: 5\r\ncontent-length: 6\r\n\r\n"), 400,
     "duplicate_content_length"},
    {"cl_comma_list", RAW(POST1 "Content-Length: 5, 5\r\n\r\n"), 400, "invalid_content_length"},
    {"cl_plus_sign", RAW(POST1 "Content-Length: +5\r\n\r\n"), 400, "invalid_content_length"},
    {"cl_minus_sign", RAW(POST1 "Content-Length: -5\r\n\r\n"), 400, "invalid_content_length"},
    {"cl_non_digit", RAW(POST1 "Content-Length: 5a\r\n\r\n"), 400, "invalid_content_length"},
    {"cl_hex", RAW(POST1 "Content-Length: 0x10\r\n\r\n"), 400, "invalid_content_length"},
    {"cl_decimal_point", RAW(POST1 "Content-Length: 5.0\r\n\r\n"), 400, "invalid_content_length"},
    {"cl_inner_space", RAW(POST1 "Content-Length: 1 0\r\n\r\n"), 400, "invalid_content_length"},
    {"cl_empty", RAW(POST1 "Content-Length:\r\n\r\n"), 400, "invalid_content_length"},
    {"cl_19_digits", RAW(POST1 "Content-Length: 1000000000000000000\r\n\r\n"), 400,
     "invalid_content_length"},
    {"te_gzip_final_not_chunked", RAW(POST1 "Transfer-Encoding: gzip\r\n\r\n"), 400,
     "invalid_transfer_encoding"},
    {"te_chunked_then_gzip", RAW(POST1 "Transfer-Encoding: chunked, gzip\r\n\r\n"), 400,
     "invalid_transfer_encoding"},
    {"te_chunked_twice_one_field", RAW(POST1 "Transfer-Encoding: chunked, chunked\r\n\r\n"), 400,
     "invalid_transfer_encoding"},
    {"te_chunked_twice_two_fields",
     RAW(POST1 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400,
     "invalid_transfer_encoding"},
    {"te_split_over_fields_chunked_first",
     RAW(POST1 "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"), 400,
     "invalid_transfer_encoding"},
    {"te_empty_element_trailing", RAW(POST1 "Transfer-Encoding: chunked,\r\n\r\n"), 400,
     "invalid_transfer_encoding"},
    {"te_empty_element_leading", RAW(POST1 "Transfer-Encoding: , chunked\r\n\r\n"), 400,
     "invalid_transfer_encoding"},
    {"te_empty_element_middle", RAW(POST1 "Transfer-Encoding: gzip,,chunked\r\n\r\n"), 400,
     "invalid_transfer_encoding"},
    {"te_empty_value", RAW(POST1 "Transfer-Encoding:\r\n\r\n"), 400, "invalid_transfer_encoding"},
    {"te_not_a_token", RAW(POST1 "Transfer-Encoding: \"chunked\"\r\n\r\n"), 400,
     "invalid_transfer_encoding"},
    {"te_chunked_junk_after", RAW(POST1 "Transfer-Encoding: chunked x\r\n\r\n"), 400,
     "invalid_transfer_encoding"},
    {"te_chunked_with_params", RAW(POST1 "Transfer-Encoding: chunked;foo=bar\r\n\r\n"), 400,
     "invalid_transfer_encoding"},
    {"te_in_http10", RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400,
     "transfer_encoding_http10"},
    {"te_gzip_chunked", RAW(POST1 "Transfer-Encoding: gzip, chunked\r\n\r\n"), 501,
     "transfer_coding_not_implemented"},
    {"te_gzip_params_chunked", RAW(POST1 "Transfer-Encoding: gzip;level=1, chunked\r\n\r\n"), 501,
     "transfer_coding_not_implemented"},
    {"te_two_fields_gzip_chunked",
     RAW(POST1 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"), 501,
     "transfer_coding_not_implemented"},

    /* field syntax (RFC 9112 §5) */
    {"obs_fold_space", RAW(H11 "X-A: a\r\n b\r\n\r\n"), 400, "obs_fold"},
    {"obs_fold_tab", RAW(H11 "X-A: a\r\n\tb\r\n\r\n"), 400, "obs_fold"},
    {"whitespace_after_request_line", RAW("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400, "obs_fold"},
    {"bare_cr_in_value", RAW(H11 "X-A: a\rb\r\n\r\n"), 400, "bare_cr"},
    {"bare_cr_end_of_value", RAW(H11 "X-A: a\r\r\n\r\n"), 400, "bare_cr"},
    {"bare_cr_in_request_line", RAW("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "bare_cr"},
    {"bare_lf_request_line", RAW("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400, "bare_lf"},
    {"bare_lf_field_line", RAW("GET / HTTP/1.1\r\nHost: a\n\r\n"), 400, "bare_lf"},
    {"bare_lf_final_line", RAW(H11 "\n"), 400, "bare_lf"},
    {"bare_lf_leading", RAW("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "bare_lf"},
    {"nul_in_value", RAW(H11 "X-A: a\0b\r\n\r\n"), 400, "invalid_header_value"},
    {"nul_in_name", RAW(H11 "X\0A: b\r\n\r\n"), 400, "invalid_header_name"},
    {"ctl_01_in_value",
     RAW(H11 "X-A: a\x01"
             "b\r\n\r\n"),
     400, "invalid_header_value"},
    {"escape_in_value", RAW(H11 "X-A: \x1b[31m\r\n\r\n"), 400, "invalid_header_value"},
    {"del_in_value",
     RAW(H11 "X-A: a\x7f"
             "b\r\n\r\n"),
     400, "invalid_header_value"},
    {"space_before_colon", RAW(H11 "X-A : b\r\n\r\n"), 400, "whitespace_before_colon"},
    {"tab_before_colon", RAW(POST1 "Content-Length\t: 5\r\n\r\n"), 400, "whitespace_before_colon"},
    {"space_in_name", RAW(H11 "X A: b\r\n\r\n"), 400, "whitespace_before_colon"},
    {"empty_name", RAW(H11 ": b\r\n\r\n"), 400, "invalid_header_name"},
    {"non_token_name", RAW(H11 "X(A): b\r\n\r\n"), 400, "invalid_header_name"},
    {"non_token_name_at", RAW(H11 "X@A: b\r\n\r\n"), 400, "invalid_header_name"},
    {"non_ascii_name", RAW(H11 "X\xc3\xa9: b\r\n\r\n"), 400, "invalid_header_name"},
    {"no_colon", RAW(H11 "X-A\r\n\r\n"), 400, "invalid_header"},

    /* request line (RFC 9112 §3) */
    {"invalid_method_char", RAW("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid_method"},
    {"non_ascii_method", RAW("G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid_method"},
    {"empty_method", RAW(" / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid_method"},
    {"tab_separator", RAW("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid_method"},
    {"two_spaces_after_method", RAW("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid_target"},
    {"two_spaces_before_version", RAW("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 400,
     "invalid_version"},
    {"space_after_version", RAW("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400, "invalid_version"},
    {"http09_no_version", RAW("GET /\r\n\r\n"), 400, "invalid_version"},
    {"http12", RAW("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505, "http_version_not_supported"},
    {"http20", RAW("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505, "http_version_not_supported"},
    {"http09_explicit", RAW("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), 505,
     "http_version_not_supported"},
    {"version_trailing_garbage", RAW("GET / HTTP/1.1x\r\nHost: a\r\n\r\n"), 400, "invalid_version"},
    {"version_no_minor", RAW("GET / HTTP/1\r\nHost: a\r\n\r\n"), 400, "invalid_version"},
    {"version_two_digit_minor", RAW("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400, "invalid_version"},
    {"version_lowercase", RAW("GET / http/1.1\r\nHost: a\r\n\r\n"), 400, "invalid_version"},
    {"version_no_dot", RAW("GET / HTTP/1_1\r\nHost: a\r\n\r\n"), 400, "invalid_version"},

    /* Host (RFC 9112 §3.2) */
    {"missing_host", RAW("GET / HTTP/1.1\r\n\r\n"), 400, "missing_host"},
    {"absolute_form_missing_host", RAW("GET http://a/ HTTP/1.1\r\n\r\n"), 400, "missing_host"},
    {"two_hosts", RAW(H11 "Host: b\r\n\r\n"), 400, "duplicate_host"},
    {"two_equal_hosts", RAW(H11 "host: a\r\n\r\n"), 400, "duplicate_host"},
    {"host_with_space", RAW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400, "invalid_host"},
    {"host_with_slash", RAW("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400, "invalid_host"},
    {"host_with_userinfo", RAW("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400, "invalid_host"},
    {"host_empty", RAW("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 400, "invalid_host"},
    {"host_port_not_digits", RAW("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n"), 400, "invalid_host"},
    {"host_two_ports", RAW("GET / HTTP/1.1\r\nHost: a:80:90\r\n\r\n"), 400, "invalid_host"},
    {"host_empty_name_with_port", RAW("GET / HTTP/1.1\r\nHost: :80\r\n\r\n"), 400, "invalid_host"},
    {"host_unbalanced_bracket", RAW("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), 400, "invalid_host"},
    {"host_brackets_in_name", RAW("GET / HTTP/1.1\r\nHost: a]b[\r\n\r\n"), 400, "invalid_host"},
    {"host_list_http10", RAW("GET / HTTP/1.0\r\nHost: a,b\r\n\r\n"), 400, "invalid_host"},

    /* targets (RFC 9112 §3.2) */
    {"absolute_userinfo", RAW("GET http://user:pw@a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400,
     "invalid_target"},
    {"absolute_unknown_scheme", RAW("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400,
     "invalid_target"},
    {"absolute_port_not_digits", RAW("GET http://a:b/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400,
     "invalid_target"},
    {"absolute_no_slashes", RAW("GET http:a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid_target"},
    {"absolute_empty_authority", RAW("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"), 400,
     "invalid_target"},
    {"fragment_in_target", RAW("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid_target"},
    {"space_in_target", RAW("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid_version"},
    {"non_ascii_in_target", RAW("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400,
     "invalid_target"},
    {"ctl_in_target",
     RAW("GET /a\x01"
         "b HTTP/1.1\r\nHost: a\r\n\r\n"),
     400, "invalid_target"},
    {"del_in_target",
     RAW("GET /a\x7f"
         "b HTTP/1.1\r\nHost: a\r\n\r\n"),
     400, "invalid_target"},
    {"asterisk_with_get", RAW("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid_target"},
    {"authority_form_with_get", RAW("GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid_target"},
    {"connect", RAW("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), 501, "connect_not_supported"},

    /* Expect (RFC 9110 §10.1.1) */
    {"expect_other", RAW(H11 "Expect: something-else\r\n\r\n"), 417, "expectation_failed"},
    {"expect_list", RAW(H11 "Expect: 100-continue, x\r\n\r\n"), 417, "expectation_failed"},

    /* limits (small_limits: request line 32, head 128, 4 fields) */
    {"request_line_too_long",
     RAW("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n"), 414,
     "request_line_too_long", &small_limits},
    {"head_too_large",
     RAW(H11 "X-Long: 0123456789012345678901234567890123456789012345678901234567890123456789"
             "0123456789012345678901234567890123456789\r\n\r\n"),
     431, "header_too_large", &small_limits},
    {"too_many_headers", RAW(H11 "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"), 431, "too_many_headers",
     &small_limits},
    /* The verdict may not depend on how the bytes arrive: byte by byte, the
     * limit is hit before the later error is seen, so one-shot must agree. */
    {"request_line_too_long_then_bare_lf",
     RAW("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\nHost: a\r\n\r\n"), 414,
     "request_line_too_long", &small_limits},
    {"bare_lf_beyond_head_limit",
     RAW(H11 "X-Long: 0123456789012345678901234567890123456789012345678901234567890123456789"
             "0123456789012345678901234567890123456789\n\r\n"),
     431, "header_too_large", &small_limits},
    {"bad_name_beyond_head_limit",
     RAW(H11 "X-Long: 0123456789012345678901234567890123456789012345678901234567890123456789"
             "0123456789012345678901234567890123456789\r\nBad Name: x\r\n\r\n"),
     431, "header_too_large", &small_limits},
};

static void test_bad_request(void **state)
{
    const struct bad_row *row = *state;
    const struct gh_http_limits *lim = row->lim ? row->lim : &default_limits;
    struct checker ck = {row->name, 0};
    char *buf = dup_exact(row->raw, row->raw_len);
    struct gh_http_header hdrs[GH_HTTP_MAX_HEADERS];
    struct gh_http_request req;
    struct gh_http_error err = {0, NULL};
    struct gh_http_state st = {0, 0, 0, 0};
    int rc;

    rc = gh_http_parse_request(buf, row->raw_len, &st, lim, hdrs, &req, &err);
    if (rc != GH_ERROR)
        mismatch(&ck, "one-shot: %s, want GH_ERROR %d %s", rc_name(rc), row->status, row->code);
    else
        check_error(&ck, "one-shot", &err, row->status, row->code);

    /* Byte by byte must end in the same status. */
    err.status = 0;
    err.code = NULL;
    rc = feed_request(buf, row->raw_len, lim, 1, 0, hdrs, &req, &err);
    if (rc != GH_ERROR)
        mismatch(&ck, "byte by byte: %s, want GH_ERROR %d", rc_name(rc), row->status);
    else if (err.status != row->status)
        mismatch(&ck, "byte by byte: status %d (%s), want %d", err.status, err.code, row->status);
    free(buf);
    if (ck.failures) fail();
}

/* ---- requests: limits and other single cases ---- */

/* "GET /" + padding + " HTTP/1.1": a request line of exactly <n> bytes. */
static size_t make_request_line(char *out, size_t n)
{
    size_t pad = n - strlen("GET / HTTP/1.1");
    memcpy(out, "GET /", 5);
    memset(out + 5, 'a', pad);
    memcpy(out + 5 + pad, " HTTP/1.1", 9);
    return n;
}

/* The input of the last parse_once(), which the slices it returned point
 * into; kept until the next call (or the end) so that a failed assertion does
 * not leak it. */
static char *parse_once_buf;

/* One-shot parse of a private, exact-size copy of <raw>. */
static int parse_once(const char *raw, size_t len, const struct gh_http_limits *lim,
                      struct gh_http_header *hdrs, struct gh_http_request *req,
                      struct gh_http_error *err)
{
    struct gh_http_state st;
    char *buf = dup_exact(raw, len);

    free(parse_once_buf);
    parse_once_buf = buf;
    gh_http_state_reset(&st);
    return gh_http_parse_request(buf, len, &st, lim, hdrs, req, err);
}

static void test_request_line_limit(void **state)
{
    struct gh_http_header hdrs[8];
    struct gh_http_request req;
    struct gh_http_error err = {0, NULL};
    char raw[256];
    size_t n;

    (void)state;
    /* exactly the limit: fine */
    n = make_request_line(raw, small_limits.max_request_line);
    memcpy(raw + n, "\r\nHost: a\r\n\r\n", 13);
    assert_int_equal(parse_once(raw, n + 13, &small_limits, hdrs, &req, &err), GH_OK);
    assert_int_equal(req.target.len, small_limits.max_request_line - 13);

    /* one byte over: 414 */
    n = make_request_line(raw, small_limits.max_request_line + 1);
    memcpy(raw + n, "\r\nHost: a\r\n\r\n", 13);
    assert_int_equal(parse_once(raw, n + 13, &small_limits, hdrs, &req, &err), GH_ERROR);
    assert_int_equal(err.status, 414);
    assert_string_equal(err.code, "request_line_too_long");
}

/* 414 comes as soon as the request line is known to be too long, before the
 * head (or even the line) is complete. */
static void test_request_line_too_long_early(void **state)
{
    struct gh_http_header hdrs[GH_HTTP_MAX_HEADERS];
    struct gh_http_request req;
    struct gh_http_error err = {0, NULL};
    struct gh_http_state st;
    size_t len = default_limits.max_request_line + 100, n;
    char *buf = malloc(len);
    int rc = GH_AGAIN;

    (void)state;
    assert_non_null(buf);
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', len - 5);
    gh_http_state_reset(&st);
    for (n = 1; n <= len; n++) {
        rc = gh_http_parse_request(buf, n, &st, &default_limits, hdrs, &req, &err);
        if (rc != GH_AGAIN) break;
    }
    free(buf);
    assert_int_equal(rc, GH_ERROR);
    assert_int_equal(err.status, 414);
    assert_string_equal(err.code, "request_line_too_long");
    /* the line (without CRLF) may reach max; one more byte can still be the CR */
    assert_true(n <= (size_t)default_limits.max_request_line + 2);
}

/* A head of exactly max_header_bytes is accepted, one byte more is 431,
 * whether the bytes arrive at once or one by one. */
static void test_head_size_limit(void **state)
{
    const struct gh_http_limits *lim = &small_limits;
    struct gh_http_header hdrs[8];
    struct gh_http_request req;
    struct gh_http_error err = {0, NULL};
    char raw[512];
    size_t fixed = strlen(H11 "X: \r\n\r\n");
    int rc;

    (void)state;
    for (size_t extra = 0; extra <= 1; extra++) {
        size_t vlen = lim->max_header_bytes - fixed + extra, n = 0;
        n += (size_t)snprintf(raw, sizeof(raw), H11 "X: ");
        memset(raw + n, 'v', vlen);
        n += vlen;
        memcpy(raw + n, "\r\n\r\n", 4);
        n += 4;
        assert_int_equal(n, lim->max_header_bytes + extra);

        rc = parse_once(raw, n, lim, hdrs, &req, &err);
        if (extra == 0) {
            assert_int_equal(rc, GH_OK);
            assert_int_equal(req.head_len, n);
        } else {
            if (rc != GH_ERROR)
                print_message("head of %zu bytes, limit %u, one-shot: %s\n", n,
                              lim->max_header_bytes, rc_name(rc));
            assert_int_equal(rc, GH_ERROR);
            assert_int_equal(err.status, 431);
            assert_string_equal(err.code, "header_too_large");
        }
        rc = feed_request(raw, n, lim, 1, 0, hdrs, &req, &err);
        assert_int_equal(rc, extra == 0 ? GH_OK : GH_ERROR);
        if (extra) assert_int_equal(err.status, 431);
    }
}

/* An incomplete head that already exceeds the limit is refused at once. */
static void test_head_too_large_early(void **state)
{
    struct gh_http_header hdrs[8];
    struct gh_http_request req;
    struct gh_http_error err = {0, NULL};
    struct gh_http_state st;
    char raw[300];
    int rc;

    (void)state;
    memset(raw, 'x', sizeof(raw));
    memcpy(raw, H11 "X-Long: ", strlen(H11 "X-Long: "));
    gh_http_state_reset(&st);
    rc = gh_http_parse_request(raw, small_limits.max_header_bytes - 1, &st, &small_limits, hdrs,
                               &req, &err);
    assert_int_equal(rc, GH_AGAIN);
    rc = gh_http_parse_request(raw, sizeof(raw), &st, &small_limits, hdrs, &req, &err);
    assert_int_equal(rc, GH_ERROR);
    assert_int_equal(err.status, 431);
    assert_string_equal(err.code, "header_too_large");
}

/* Builds a request with <n> field lines (Host plus X-H1..). */
static size_t make_many_headers(char *out, size_t cap, uint32_t n)
{
    size_t len = (size_t)snprintf(out, cap, "GET /many HTTP/1.1\r\nHost: many.example\r\n");
    for (uint32_t i = 1; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "X-H%u: value-%u\r\n", i, i);
    len += (size_t)snprintf(out + len, cap - len, "\r\n");
    assert_true(len < cap);
    return len;
}

static void test_many_headers(void **state)
{
    static char raw[16384];
    static struct gh_http_header hdrs[GH_HTTP_MAX_HEADERS];
    struct gh_http_limits lim = default_limits;
    struct gh_http_request req;
    struct gh_http_error err = {0, NULL};
    size_t len;

    (void)state;
    /* up to the limit */
    len = make_many_headers(raw, sizeof(raw), lim.max_headers);
    assert_int_equal(parse_once(raw, len, &lim, hdrs, &req, &err), GH_OK);
    assert_int_equal(req.nheaders, lim.max_headers);
    assert_true(gh_str_eq(req.authority, GH_STR_LIT("many.example")));
    for (uint32_t i = 1; i < req.nheaders; i++) {
        char name[32], value[32];
        snprintf(name, sizeof(name), "X-H%u", i);
        snprintf(value, sizeof(value), "value-%u", i);
        assert_true(gh_str_eq(req.headers[i].name, gh_str_cstr(name)));
        assert_true(gh_str_eq(req.headers[i].value, gh_str_cstr(value)));
    }
    assert_ptr_equal(gh_http_find_header(req.headers, req.nheaders, "x-h99"), &req.headers[99]);

    /* one over */
    len = make_many_headers(raw, sizeof(raw), lim.max_headers + 1);
    assert_int_equal(parse_once(raw, len, &lim, hdrs, &req, &err), GH_ERROR);
    assert_int_equal(err.status, 431);
    assert_string_equal(err.code, "too_many_headers");

    /* the absolute maximum */
    lim.max_headers = GH_HTTP_MAX_HEADERS;
    len = make_many_headers(raw, sizeof(raw), GH_HTTP_MAX_HEADERS);
    assert_int_equal(parse_once(raw, len, &lim, hdrs, &req, &err), GH_OK);
    assert_int_equal(req.nheaders, GH_HTTP_MAX_HEADERS);
    len = make_many_headers(raw, sizeof(raw), GH_HTTP_MAX_HEADERS + 1);
    assert_int_equal(parse_once(raw, len, &lim, hdrs, &req, &err), GH_ERROR);
    assert_int_equal(err.status, 431);
}

/* Two requests in one buffer: head_len says where the second begins. */
static void test_pipelined(void **state)
{
    static const char raw[] = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                              "GET /b?x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
                              "\r\nGET /c HTTP/1.0\r\n\r\n";
    char *buf = dup_exact(raw, sizeof(raw) - 1);
    size_t len = sizeof(raw) - 1, off = 0;
    struct gh_http_header hdrs[8];
    struct gh_http_request req;
    struct gh_http_error err = {0, NULL};
    struct gh_http_state st;

    (void)state;
    gh_http_state_reset(&st);
    assert_int_equal(gh_http_parse_request(buf, len, &st, &default_limits, hdrs, &req, &err),
                     GH_OK);
    assert_int_equal(req.method_id, GH_HTTP_POST);
    assert_int_equal(req.framing.body, GH_BODY_LENGTH);
    assert_int_equal(req.framing.content_length, 3);
    off = req.head_len + req.framing.content_length;
    assert_memory_equal(buf + req.head_len, "abc", 3);

    gh_http_state_reset(&st);
    assert_int_equal(
        gh_http_parse_request(buf + off, len - off, &st, &default_limits, hdrs, &req, &err), GH_OK);
    assert_true(gh_str_eq(req.path, GH_STR_LIT("/b")));
    assert_true(gh_str_eq(req.query, GH_STR_LIT("x")));
    assert_true(gh_str_eq(req.authority, GH_STR_LIT("b")));
    assert_false(req.framing.keep_alive);
    off += req.head_len;

    /* the third request starts with a CRLF left over from the second */
    gh_http_state_reset(&st);
    assert_int_equal(
        gh_http_parse_request(buf + off, len - off, &st, &default_limits, hdrs, &req, &err), GH_OK);
    assert_true(gh_str_eq(req.path, GH_STR_LIT("/c")));
    assert_int_equal(req.minor_version, 0);
    assert_int_equal(off + req.head_len, len);
    free(buf);
}

static void test_find_header(void **state)
{
    static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n";
    char *buf = dup_exact(raw, sizeof(raw) - 1);
    struct gh_http_header hdrs[8];
    struct gh_http_request req;
    struct gh_http_error err = {0, NULL};
    struct gh_http_state st;
    const struct gh_http_header *h;

    (void)state;
    gh_http_state_reset(&st);
    assert_int_equal(
        gh_http_parse_request(buf, sizeof(raw) - 1, &st, &default_limits, hdrs, &req, &err), GH_OK);
    h = gh_http_find_header(req.headers, req.nheaders, "X-DUP");
    assert_non_null(h);
    assert_true(gh_str_eq(h->value, GH_STR_LIT("1")));
    assert_null(gh_http_find_header(req.headers, req.nheaders, "X-Du"));
    assert_null(gh_http_find_header(req.headers, req.nheaders, "X-Dupe"));
    assert_null(gh_http_find_header(req.headers, 0, "Host"));
    free(buf);
}

/* ---- responses ---- */

struct resp_row {
    const char *name;
    const char *raw;
    size_t raw_len;
    enum gh_http_method req_method;
    int status;
    const char *reason;
    int minor;
    enum gh_http_body body_kind;
    uint64_t content_length;
    bool keep_alive, conn_close, conn_upgrade;
    uint32_t head_len; /* 0: the whole input */
    uint32_t nheaders;
};

static const struct resp_row valid_responses[] = {
    {"ok_content_length", RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), GH_HTTP_GET,
     200, "OK", 1, GH_BODY_LENGTH, 5, true, false, false, 38, 1},
    {"reason_with_spaces_and_obs_text",
     RAW("HTTP/1.1 404 Not \xe9 Found\r\nContent-Length: 0\r\n\r\n"), GH_HTTP_GET, 404,
     "Not \xe9 Found", 1, GH_BODY_NONE, 0, true, false, false, 0, 1},
    {"empty_reason", RAW("HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n"), GH_HTTP_GET, 200, "", 1,
     GH_BODY_LENGTH, 1, true, false, false, 0, 1},
    {"missing_final_space", RAW("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n"), GH_HTTP_GET, 200, "",
     1, GH_BODY_LENGTH, 1, true, false, false, 0, 1},
    {"continue_100", RAW("HTTP/1.1 100 Continue\r\n\r\n"), GH_HTTP_POST, 100, "Continue", 1,
     GH_BODY_NONE, 0, true, false, false, 0, 0},
    {"switching_101",
     RAW("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
     GH_HTTP_GET, 101, "Switching Protocols", 1, GH_BODY_NONE, 0, true, false, true, 0, 2},
    {"early_hints_103", RAW("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"),
     GH_HTTP_GET, 103, "Early Hints", 1, GH_BODY_NONE, 0, true, false, false, 0, 1},
    {"no_content_204_ignores_cl", RAW("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"),
     GH_HTTP_DELETE, 204, "No Content", 1, GH_BODY_NONE, 0, true, false, false, 0, 1},
    {"not_modified_304_ignores_te",
     RAW("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"), GH_HTTP_GET, 304,
     "Not Modified", 1, GH_BODY_NONE, 0, true, false, false, 0, 1},
    {"head_ignores_cl", RAW("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), GH_HTTP_HEAD, 200,
     "OK", 1, GH_BODY_NONE, 0, true, false, false, 0, 1},
    {"head_ignores_chunked", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
     GH_HTTP_HEAD, 200, "OK", 1, GH_BODY_NONE, 0, true, false, false, 0, 1},
    {"chunked", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
     GH_HTTP_GET, 200, "OK", 1, GH_BODY_CHUNKED, 0, true, false, false, 47, 1},
    {"close_delimited", RAW("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody..."),
     GH_HTTP_GET, 200, "OK", 1, GH_BODY_CLOSE, 0, false, false, false, 45, 1},
    {"http10_content_length_closes", RAW("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
     GH_HTTP_GET, 200, "OK", 0, GH_BODY_LENGTH, 2, false, false, false, 38, 1},
    {"http10_keep_alive",
     RAW("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n"), GH_HTTP_GET,
     200, "OK", 0, GH_BODY_LENGTH, 2, true, false, false, 0, 2},
    {"http10_keep_alive_close_delimited", RAW("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"),
     GH_HTTP_GET, 200, "OK", 0, GH_BODY_CLOSE, 0, false, false, false, 0, 1},
    {"http11_connection_close",
     RAW("HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
     GH_HTTP_POST, 500, "Internal Server Error", 1, GH_BODY_NONE, 0, false, true, false, 0, 2},
    {"status_599", RAW("HTTP/1.1 599 Custom\r\nContent-Length: 0\r\n\r\n"), GH_HTTP_GET, 599,
     "Custom", 1, GH_BODY_NONE, 0, true, false, false, 0, 1},
};

static void test_valid_response(void **state)
{
    const struct resp_row *row = *state;
    struct checker ck = {row->name, 0};
    char *buf = dup_exact(row->raw, row->raw_len);
    struct gh_http_header hdrs[GH_HTTP_MAX_HEADERS], h2[GH_HTTP_MAX_HEADERS];
    struct gh_http_response resp, inc;
    struct gh_http_error err = {0, NULL};
    struct gh_http_state st;
    int rc;

    gh_http_state_reset(&st);
    rc = gh_http_parse_response(buf, row->raw_len, &st, &default_limits, row->req_method, hdrs,
                                &resp, &err);
    if (rc != GH_OK) {
        mismatch(&ck, "%s (%d %s), want GH_OK", rc_name(rc), err.status, err.code ? err.code : "-");
        free(buf);
        fail();
    }
    check_int(&ck, "status", resp.status, row->status);
    check_cstr(&ck, "reason", resp.reason, row->reason);
    check_inside(&ck, "reason", resp.reason, buf, row->raw_len);
    check_int(&ck, "minor_version", resp.minor_version, row->minor);
    check_int(&ck, "framing.body", resp.framing.body, row->body_kind);
    if (row->body_kind == GH_BODY_LENGTH)
        check_int(&ck, "content_length", (long long)resp.framing.content_length,
                  (long long)row->content_length);
    check_int(&ck, "keep_alive", resp.framing.keep_alive, row->keep_alive);
    check_int(&ck, "conn_close", resp.framing.conn_close, row->conn_close);
    check_int(&ck, "conn_upgrade", resp.framing.conn_upgrade, row->conn_upgrade);
    check_int(&ck, "head_len", resp.head_len, row->head_len ? row->head_len : row->raw_len);
    check_int(&ck, "nheaders", resp.nheaders, row->nheaders);

    /* Byte by byte gives the same. */
    gh_http_state_reset(&st);
    rc = GH_AGAIN;
    for (size_t n = 1; n <= row->raw_len && rc == GH_AGAIN; n++)
        rc = gh_http_parse_response(buf, n, &st, &default_limits, row->req_method, h2, &inc, &err);
    if (rc != GH_OK) {
        mismatch(&ck, "byte by byte: %s", rc_name(rc));
    } else {
        check_int(&ck, "byte by byte: status", inc.status, resp.status);
        check_int(&ck, "byte by byte: head_len", inc.head_len, resp.head_len);
        check_int(&ck, "byte by byte: body", inc.framing.body, resp.framing.body);
        check_int(&ck, "byte by byte: keep_alive", inc.framing.keep_alive, resp.framing.keep_alive);
        check_int(&ck, "byte by byte: nheaders", inc.nheaders, resp.nheaders);
        if (inc.reason.ptr != resp.reason.ptr || inc.reason.len != resp.reason.len)
            mismatch(&ck, "byte by byte: reason differs");
    }
    free(buf);
    if (ck.failures) fail();
}

static const struct bad_row bad_responses[] = {
    /* Codings other than a lone chunked cannot be forwarded with the
     * hop-by-hop header removed: refused rather than corrupted. */
    {"te_gzip_refused", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), 502,
     "transfer_coding_not_implemented"},
    {"te_chunked_gzip_refused", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
     502, "transfer_coding_not_implemented"},
    {"te_gzip_chunked_refused", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
     502, "transfer_coding_not_implemented"},
    {"http10_te_refused", RAW("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 502,
     "transfer_encoding_http10"},
    {"te_then_cl",
     RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 502,
     "ambiguous_framing"},
    {"cl_then_te",
     RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 502,
     "ambiguous_framing"},
    {"duplicate_cl_equal", RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
     502, "duplicate_content_length"},
    {"duplicate_cl_different",
     RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n"), 502,
     "duplicate_content_length"},
    {"cl_list", RAW("HTTP/1.1 200 OK\r\nContent-Length: 5,5\r\n\r\n"), 502,
     "invalid_content_length"},
    {"cl_not_a_number", RAW("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"), 502,
     "invalid_content_length"},
    {"te_chunked_twice", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), 502,
     "invalid_transfer_encoding"},
    {"te_empty", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n"), 502,
     "invalid_transfer_encoding"},
    {"status_two_digits", RAW("HTTP/1.1 20 OK\r\n\r\n"), 502, "invalid_status_line"},
    {"status_four_digits", RAW("HTTP/1.1 2000 OK\r\n\r\n"), 502, "invalid_status_line"},
    {"status_no_space_before_reason", RAW("HTTP/1.1 200OK\r\n\r\n"), 502, "invalid_status_line"},
    {"status_below_100", RAW("HTTP/1.1 099 Low\r\n\r\n"), 502, "invalid_status_line"},
    {"status_not_digits", RAW("HTTP/1.1 2x0 OK\r\n\r\n"), 502, "invalid_status_line"},
    {"status_two_spaces", RAW("HTTP/1.1  200 OK\r\n\r\n"), 502, "invalid_status_line"},
    {"status_version_lowercase", RAW("http/1.1 200 OK\r\n\r\n"), 502, "invalid_status_line"},
    {"status_version_2", RAW("HTTP/2.0 200 OK\r\n\r\n"), 502, "invalid_status_line"},
    {"status_icy", RAW("ICY 200 OK\r\n\r\n"), 502, "invalid_status_line"},
    {"status_too_short", RAW("HTTP/1.1\r\n\r\n"), 502, "invalid_status_line"},
    {"reason_with_ctl", RAW("HTTP/1.1 200 O\x01K\r\n\r\n"), 502, "invalid_status_line"},
    {"bare_cr_in_status_line", RAW("HTTP/1.1 200 O\rK\r\n\r\n"), 502, "bare_cr"},
    {"obs_fold", RAW("HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n"), 502, "obs_fold"},
    {"bare_lf", RAW("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"), 502, "bare_lf"},
    {"space_before_colon", RAW("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"), 502,
     "whitespace_before_colon"},
    {"nul_in_value", RAW("HTTP/1.1 200 OK\r\nX-A: \0\r\n\r\n"), 502, "invalid_header_value"},
    {"status_line_too_long", RAW("HTTP/1.1 200 OKOKOKOKOKOKOKOKOKOKOKOK\r\n\r\n"), 502,
     "request_line_too_long", &small_limits},
    {"too_many_headers", RAW("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n"),
     502, "too_many_headers", &small_limits},
    {"head_too_large",
     RAW("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Long: 012345678901234567890123456789"
         "01234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n\r"
         "\n"),
     502, "header_too_large", &small_limits},
};

static void test_bad_response(void **state)
{
    const struct bad_row *row = *state;
    const struct gh_http_limits *lim = row->lim ? row->lim : &default_limits;
    struct checker ck = {row->name, 0};
    char *buf = dup_exact(row->raw, row->raw_len);
    struct gh_http_header hdrs[GH_HTTP_MAX_HEADERS];
    struct gh_http_response resp;
    struct gh_http_error err = {0, NULL};
    struct gh_http_state st;
    int rc;

    gh_http_state_reset(&st);
    rc = gh_http_parse_response(buf, row->raw_len, &st, lim, GH_HTTP_GET, hdrs, &resp, &err);
    if (rc != GH_ERROR)
        mismatch(&ck, "one-shot: %s, want GH_ERROR", rc_name(rc));
    else
        check_error(&ck, "one-shot", &err, row->status, row->code);

    gh_http_state_reset(&st);
    rc = GH_AGAIN;
    err.status = 0;
    for (size_t n = 1; n <= row->raw_len && rc == GH_AGAIN; n++)
        rc = gh_http_parse_response(buf, n, &st, lim, GH_HTTP_GET, hdrs, &resp, &err);
    if (rc != GH_ERROR || err.status != row->status)
        mismatch(&ck, "byte by byte: %s status %d, want GH_ERROR %d", rc_name(rc), err.status,
                 row->status);
    free(buf);
    if (ck.failures) fail();
}

/* ---- chunked decoder ---- */

struct chunk_row {
    const char *name;
    const char *raw;
    size_t raw_len;
    const char *body;
    size_t body_len;
    const char *trailers; /* each line followed by "\n" */
    size_t consumed;      /* 0: the whole input */
};

static const struct chunk_row valid_chunks[] = {
    {"single", RAW("5\r\nhello\r\n0\r\n\r\n"), BODY("hello"), ""},
    {"empty_body", RAW("0\r\n\r\n"), BODY(""), ""},
    {"multiple", RAW("5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"), BODY("hello world"), ""},
    {"uppercase_hex", RAW("A\r\n0123456789\r\n1F\r\nabcdefghijklmnopqrstuvwxyz01234\r\n0\r\n\r\n"),
     BODY("0123456789abcdefghijklmnopqrstuvwxyz01234"), ""},
    {"lowercase_hex", RAW("a\r\n0123456789\r\n0\r\n\r\n"), BODY("0123456789"), ""},
    {"leading_zeros", RAW("0005\r\nhello\r\n000\r\n\r\n"), BODY("hello"), ""},
    {"sixteen_digits", RAW("0000000000000003\r\nabc\r\n0\r\n\r\n"), BODY("abc"), ""},
    {"ext_token", RAW("5;name=value\r\nhello\r\n0;last\r\n\r\n"), BODY("hello"), ""},
    {"ext_flag_and_list", RAW("5;a;b=1;c\r\nhello\r\n0\r\n\r\n"), BODY("hello"), ""},
    {"ext_quoted", RAW("5;n=\"quoted value; with = signs\"\r\nhello\r\n0\r\n\r\n"), BODY("hello"),
     ""},
    {"ext_quoted_escapes", RAW("5;n=\"a\\\"b\\\\c\\d\"\r\nhello\r\n0\r\n\r\n"), BODY("hello"), ""},
    {"ext_quoted_obs_text", RAW("3;n=\"caf\xc3\xa9\"\r\nabc\r\n0\r\n\r\n"), BODY("abc"), ""},
    {"ext_bws", RAW("5 ; a = b ;c\t;d=\"x\" \r\nhello\r\n0\r\n\r\n"), BODY("hello"), ""},
    {"data_with_crlf_and_nul", RAW("6\r\n\r\n\0\r\n\r\r\n0\r\n\r\n"), BODY("\r\n\0\r\n\r"), ""},
    {"trailers", RAW("5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-Other:  v \r\n\r\n"), BODY("hello"),
     "X-Sum: abc\nX-Other:  v \n"},
    {"trailer_empty_value", RAW("0\r\nX-E:\r\n\r\n"), BODY(""), "X-E:\n"},
    {"data_after_done", RAW("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), BODY("abc"), "", 13},
};

static void test_valid_chunked(void **state)
{
    const struct chunk_row *row = *state;
    struct checker ck = {row->name, 0};
    size_t want_consumed = row->consumed ? row->consumed : row->raw_len;
    static const struct {
        const char *how;
        size_t step;
        uint32_t seed;
    } modes[] = {{"whole", 0, 0},     {"byte by byte", 1, 0}, {"random 1", 2, 1},
                 {"random 2", 2, 77}, {"random 3", 2, 4242},  {"random 4", 2, 0xdeadbeef}};

    for (size_t m = 0; m < ARRAY_LEN(modes); m++) {
        struct decoded d;
        decode(row->raw, row->raw_len, 4096, modes[m].step, modes[m].seed, &d);
        if (d.last != GH_CHUNK_DONE)
            mismatch(&ck, "%s: ended with %s (%d %s)", modes[m].how, event_name(d.last),
                     d.err.status, d.err.code ? d.err.code : "-");
        check_slice(&ck, modes[m].how, gh_str_make(d.body, d.body_len), row->body, row->body_len);
        check_slice(&ck, "trailers", gh_str_make(d.trailers, d.trailers_len), row->trailers,
                    strlen(row->trailers));
        check_int(&ck, "consumed", (long long)d.consumed, (long long)want_consumed);
        check_int(&ck, "total", (long long)d.total, (long long)row->body_len);
        check_int(&ck, "spans outside the input", d.bad_spans, 0);
        check_int(&ck, "NEED_MORE without consuming everything", d.bad_consume, 0);
        free(d.body);
    }
    if (ck.failures) fail();
}

struct chunk_bad_row {
    const char *name;
    const char *raw;
    size_t raw_len;
    int status;
    const char *code;
    uint32_t max_trailer; /* 0: 4096 */
};

static const struct chunk_bad_row bad_chunks[] = {
    {"empty_size", RAW("\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_size"},
    {"non_hex_size", RAW("g\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_size"},
    {"hex_prefix", RAW("0x5\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_size"},
    {"negative_size", RAW("-5\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_size"},
    {"leading_space", RAW(" 5\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_size"},
    {"seventeen_digits", RAW("00000000000000005\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_size"},
    {"overflowing_size", RAW("10000000000000000\r\n"), 400, "invalid_chunk_size"},
    {"size_space_then_cr", RAW("5 \r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_extension"},
    {"ext_bad_name_char", RAW("5;a@b\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_extension"},
    {"ext_empty_name", RAW("5;\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_extension"},
    {"ext_missing_value", RAW("5;a=\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_extension"},
    {"ext_value_two_tokens", RAW("5;a=b c\r\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_extension"},
    {"ext_unterminated_quote", RAW("5;a=\"b\r\nhello\r\n0\r\n\r\n"), 400,
     "invalid_chunk_extension"},
    {"ext_ctl_in_quoted", RAW("5;a=\"b\x01\"\r\nhello\r\n0\r\n\r\n"), 400,
     "invalid_chunk_extension"},
    {"ext_garbage_after_quoted", RAW("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n"), 400,
     "invalid_chunk_extension"},
    {"ext_bare_lf", RAW("5;a\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_extension"},
    {"data_too_long", RAW("5\r\nhelloX\r\n0\r\n\r\n"), 400, "missing_chunk_crlf"},
    {"data_then_lf_only", RAW("5\r\nhello\n0\r\n\r\n"), 400, "missing_chunk_crlf"},
    {"data_then_cr_only", RAW("5\r\nhello\r0\r\n\r\n"), 400, "missing_chunk_crlf"},
    {"bare_lf_after_size", RAW("5\nhello\r\n0\r\n\r\n"), 400, "invalid_chunk_size"},
    {"bare_cr_after_size", RAW("5\rhello\r\n0\r\n\r\n"), 400, "bare_cr"},
    {"bare_cr_after_last_chunk", RAW("0\r\r\n"), 400, "bare_cr"},
    {"trailer_without_colon", RAW("0\r\nX-Sum\r\n\r\n"), 400, "invalid_trailer"},
    {"trailer_space_before_colon", RAW("0\r\nX-Sum : 1\r\n\r\n"), 400, "invalid_trailer"},
    {"trailer_empty_name", RAW("0\r\n: 1\r\n\r\n"), 400, "invalid_trailer"},
    {"trailer_nul_in_value", RAW("0\r\nX-Sum: \0\r\n\r\n"), 400, "invalid_trailer"},
    {"trailer_obs_fold", RAW("0\r\nX-Sum: 1\r\n 2\r\n\r\n"), 400, "obs_fold"},
    {"trailer_bare_lf", RAW("0\r\nX-Sum: 1\n\r\n"), 400, "bare_lf"},
    {"trailer_bare_cr", RAW("0\r\nX-Sum: 1\r2\r\n\r\n"), 400, "bare_cr"},
    {"final_bare_cr", RAW("0\r\n\rX"), 400, "bare_cr"},
    {"trailer_too_large", RAW("0\r\nX-Long: 0123456789abcdef0123456789\r\n\r\n"), 431,
     "trailer_too_large", 16},
    {"trailers_too_large_together", RAW("0\r\nA: 1234567\r\nB: 1234567\r\n\r\n"), 431,
     "trailer_too_large", 16},
};

static void test_bad_chunked(void **state)
{
    const struct chunk_bad_row *row = *state;
    struct checker ck = {row->name, 0};
    uint32_t max_trailer = row->max_trailer ? row->max_trailer : 4096;
    struct decoded whole, bytes;

    decode(row->raw, row->raw_len, max_trailer, 0, 0, &whole);
    decode(row->raw, row->raw_len, max_trailer, 1, 0, &bytes);
    if (whole.last != GH_CHUNK_ERROR)
        mismatch(&ck, "whole: %s", event_name(whole.last));
    else
        check_error(&ck, "whole", &whole.err, row->status, row->code);
    if (bytes.last != GH_CHUNK_ERROR)
        mismatch(&ck, "byte by byte: %s", event_name(bytes.last));
    else
        check_error(&ck, "byte by byte", &bytes.err, row->status, row->code);
    check_slice(&ck, "data before the error", gh_str_make(bytes.body, bytes.body_len), whole.body,
                whole.body_len);
    free(whole.body);
    free(bytes.body);
    if (ck.failures) fail();
}

/* A size line longer than the decoder's bound (1024 bytes) is refused. */
static void test_chunk_line_too_long(void **state)
{
    char raw[1200];
    struct decoded d;

    (void)state;
    memset(raw, 'a', sizeof(raw));
    memcpy(raw, "5;", 2);
    decode(raw, sizeof(raw), 4096, 0, 0, &d);
    assert_int_equal(d.last, GH_CHUNK_ERROR);
    assert_int_equal(d.err.status, 400);
    assert_string_equal(d.err.code, "chunk_line_too_long");
    free(d.body);
    decode(raw, sizeof(raw), 4096, 1, 0, &d);
    assert_int_equal(d.last, GH_CHUNK_ERROR);
    assert_string_equal(d.err.code, "chunk_line_too_long");
    free(d.body);

    /* a long but bounded extension is fine */
    {
        char ok[600];
        size_t n = 0;
        n += (size_t)snprintf(ok, sizeof(ok), "1;x=");
        memset(ok + n, 'v', 500);
        n += 500;
        memcpy(ok + n, "\r\nZ\r\n0\r\n\r\n", 10);
        n += 10;
        decode(ok, n, 4096, 1, 0, &d);
        assert_int_equal(d.last, GH_CHUNK_DONE);
        assert_int_equal(d.body_len, 1);
        free(d.body);
    }
}

/* A huge declared chunk: data comes out as far as it goes, then NEED_MORE. */
static void test_chunk_partial_data(void **state)
{
    static const char raw[] = "FFFFFFFFFFFFFFFF\r\nabc";
    struct gh_chunked c;
    struct gh_http_error err = {0, NULL};
    gh_str span = GH_STR_NULL;
    size_t consumed = 0, len = sizeof(raw) - 1;
    char *buf = dup_exact(raw, len);

    (void)state;
    gh_chunked_init(&c, 4096);
    assert_int_equal(gh_chunked_next(&c, buf, len, &consumed, &span, &err), GH_CHUNK_DATA);
    assert_int_equal(consumed, len);
    assert_int_equal(span.len, 3);
    assert_ptr_equal(span.ptr, buf + 18);
    assert_int_equal(c.remaining, UINT64_MAX - 3);
    assert_int_equal(c.total, 3);
    assert_int_equal(gh_chunked_next(&c, buf + len, 0, &consumed, &span, &err), GH_CHUNK_NEED_MORE);
    assert_int_equal(consumed, 0);
    free(buf);
}

/* DONE is final: further calls consume nothing and say DONE again. */
static void test_chunk_done_is_sticky(void **state)
{
    static const char raw[] = "0\r\n\r\nXYZ";
    struct gh_chunked c;
    struct gh_http_error err = {0, NULL};
    gh_str span = GH_STR_NULL;
    size_t consumed = 0;

    (void)state;
    gh_chunked_init(&c, 4096);
    assert_int_equal(gh_chunked_next(&c, raw, 8, &consumed, &span, &err), GH_CHUNK_DONE);
    assert_int_equal(consumed, 5);
    assert_int_equal(gh_chunked_next(&c, raw + 5, 3, &consumed, &span, &err), GH_CHUNK_DONE);
    assert_int_equal(consumed, 0);
}

/* ---- hop-by-hop fields ---- */

static const struct hop_row {
    const char *name;
    bool hop;
} hop_rows[] = {
    {"Connection", true},
    {"connection", true},
    {"Keep-Alive", true},
    {"KEEP-ALIVE", true},
    {"Proxy-Connection", true},
    {"TE", true},
    {"te", true},
    {"Trailer", true},
    {"Transfer-Encoding", true},
    {"transfer-encoding", true},
    {"Upgrade", true},
    {"Proxy-Authenticate", true},
    {"Proxy-Authorization", true},
    {"Trailers", false},
    {"Content-Length", false},
    {"Host", false},
    {"Connectio", false},
    {"Connections", false},
    {"Keep-Alive2", false},
    {"Proxy-Authorizatio", false},
    {"X-Forwarded-For", false},
    {"T", false},
    {"", false},
};

static void test_hop_by_hop(void **state)
{
    struct checker ck = {"hop_by_hop", 0};

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(hop_rows); i++) {
        char *copy = dup_exact(hop_rows[i].name, strlen(hop_rows[i].name));
        bool got = gh_http_is_hop_by_hop(gh_str_make(copy, strlen(hop_rows[i].name)));
        if (got != hop_rows[i].hop)
            mismatch(&ck, "\"%s\": got %d, want %d", hop_rows[i].name, got, hop_rows[i].hop);
        free(copy);
    }
    if (ck.failures) fail();
}

static const struct conn_row {
    const char *label;
    const char *hdrs[2 * 4 + 1]; /* name, value, ..., NULL */
    const char *name;
    bool listed;
} conn_rows[] = {
    {"single", {"Connection", "close, X-Foo", NULL}, "x-foo", true},
    {"first_element", {"Connection", "X-Foo, close", NULL}, "X-FOO", true},
    {"keep_alive", {"Connection", "keep-alive", NULL}, "Keep-Alive", true},
    {"second_field", {"Connection", "close", "connection", " X-Bar ", NULL}, "X-Bar", true},
    {"empty_elements", {"Connection", " , ,X-Baz,, ", NULL}, "x-baz", true},
    {"tabs", {"Connection", "a,\tX-Tab\t,b", NULL}, "x-tab", true},
    {"not_listed", {"Connection", "close, X-Foo", NULL}, "X-Bar", false},
    {"prefix_only", {"Connection", "X-Foo-Bar", NULL}, "X-Foo", false},
    {"longer_name", {"Connection", "X-Foo", NULL}, "X-Foo-Bar", false},
    {"other_field", {"X-Connection", "X-Foo", "Keep-Alive", "X-Foo", NULL}, "X-Foo", false},
    {"no_fields", {NULL}, "close", false},
    {"empty_value", {"Connection", "", NULL}, "close", false},
};

static void test_connection_lists(void **state)
{
    struct checker ck = {"connection_lists", 0};

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(conn_rows); i++) {
        const struct conn_row *r = &conn_rows[i];
        struct gh_http_header hdrs[4];
        uint32_t n = 0;
        bool got;

        while (r->hdrs[2 * n] != NULL) {
            hdrs[n].name = gh_str_cstr(r->hdrs[2 * n]);
            hdrs[n].value = gh_str_cstr(r->hdrs[2 * n + 1]);
            n++;
        }
        got = gh_http_connection_lists(hdrs, n, gh_str_cstr(r->name));
        if (got != r->listed)
            mismatch(&ck, "%s: \"%s\": got %d, want %d", r->label, r->name, got, r->listed);
    }
    if (ck.failures) fail();
}

/* ---- main: one named test per table row ---- */

static struct CMUnitTest request_valid[ARRAY_LEN(valid_requests)];
static struct CMUnitTest request_incremental[ARRAY_LEN(valid_requests)];
static struct CMUnitTest request_malformed[ARRAY_LEN(bad_requests)];
static struct CMUnitTest response_valid[ARRAY_LEN(valid_responses)];
static struct CMUnitTest response_malformed[ARRAY_LEN(bad_responses)];
static struct CMUnitTest chunked_valid[ARRAY_LEN(valid_chunks)];
static struct CMUnitTest chunked_malformed[ARRAY_LEN(bad_chunks)];

#define FILL(tests, rows, fn)                                                                      \
    for (size_t i_ = 0; i_ < ARRAY_LEN(rows); i_++)                                                \
        tests[i_] = (struct CMUnitTest){rows[i_].name, fn, NULL, NULL, (void *)&rows[i_]};

int main(void)
{
    static const struct CMUnitTest single[] = {
        cmocka_unit_test(test_request_line_limit),
        cmocka_unit_test(test_request_line_too_long_early),
        cmocka_unit_test(test_head_size_limit),
        cmocka_unit_test(test_head_too_large_early),
        cmocka_unit_test(test_many_headers),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_find_header),
        cmocka_unit_test(test_chunk_line_too_long),
        cmocka_unit_test(test_chunk_partial_data),
        cmocka_unit_test(test_chunk_done_is_sticky),
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_connection_lists),
    };
    int failed = 0;

    FILL(request_valid, valid_requests, test_valid_request);
    FILL(request_incremental, valid_requests, test_incremental_request);
    FILL(request_malformed, bad_requests, test_bad_request);
    FILL(response_valid, valid_responses, test_valid_response);
    FILL(response_malformed, bad_responses, test_bad_response);
    FILL(chunked_valid, valid_chunks, test_valid_chunked);
    FILL(chunked_malformed, bad_chunks, test_bad_chunked);

    failed += cmocka_run_group_tests(request_valid, NULL, NULL);
    failed += cmocka_run_group_tests(request_incremental, NULL, NULL);
    failed += cmocka_run_group_tests(request_malformed, NULL, NULL);
    failed += cmocka_run_group_tests(response_valid, NULL, NULL);
    failed += cmocka_run_group_tests(response_malformed, NULL, NULL);
    failed += cmocka_run_group_tests(chunked_valid, NULL, NULL);
    failed += cmocka_run_group_tests(chunked_malformed, NULL, NULL);
    failed += cmocka_run_group_tests(single, NULL, NULL);
    free(parse_once_buf);
    return failed == 0 ? 0 : 1;
}
