/* libFuzzer harness for gh_http_parse_request(), and for the chunked decoder
 * on whatever follows a chunked request head.
 *
 * For each of a few limit sets the input is parsed one-shot, then again
 * incrementally with the same state (split at points derived from the data,
 * and byte by byte). The two must agree: the parser's verdict may not depend
 * on how the bytes arrived. Every prefix is an exact-size heap copy, so ASan
 * sees any read past the length given; slices are compared by offset.
 * A successful parse must satisfy the contract in http/parser.h: slices
 * inside the head, the limits, and no ambiguous framing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#include "core/err.h"
#include "http/parser.h"

static const struct gh_http_limits limit_sets[] = {
    {8192, 32768, 100}, /* the gateway's defaults */
    {40, 160, 4},       /* small: short inputs reach every limit */
    {16, 48, 1},
};

struct result {
    int rc;
    struct gh_http_error err;
    struct gh_http_request req;
    struct gh_http_header hdrs[GH_HTTP_MAX_HEADERS];
    char *buf;  /* what the slices point into */
    size_t len; /* bytes given in the last call */
};

static char *dup_exact(const uint8_t *p, size_t n)
{
    char *b = malloc(n ? n : 1);
    if (b == NULL) abort();
    if (n) memcpy(b, p, n);
    return b;
}

static uint64_t mix(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static bool inside(gh_str s, const char *buf, size_t len)
{
    uintptr_t p = (uintptr_t)s.ptr, b = (uintptr_t)buf;
    if (s.ptr == NULL) return s.len == 0;
    return p >= b && p <= b + len && s.len <= b + len - p;
}

/* Same slice: same offset and length when both point into their buffers
 * (an empty slice may be NULL), else same bytes. */
static bool same_slice(gh_str a, const struct result *ra, gh_str b, const struct result *rb)
{
    bool ia = a.ptr != NULL && inside(a, ra->buf, ra->len);
    bool ib = b.ptr != NULL && inside(b, rb->buf, rb->len);

    if (a.len != b.len) return false;
    if (a.ptr == NULL || b.ptr == NULL) return a.ptr == b.ptr;
    if (ia && ib) return a.ptr - ra->buf == b.ptr - rb->buf;
    if (ia != ib) return false;
    return a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0;
}

static bool all_tchar(gh_str s)
{
    if (s.len == 0) return false;
    for (size_t i = 0; i < s.len; i++)
        if (!gh_http_is_tchar((unsigned char)s.ptr[i])) return false;
    return true;
}

/* field-vchar / SP / HTAB / obs-text, trimmed. */
static bool valid_value(gh_str v)
{
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        if (!(c == '\t' || (c >= 0x20 && c != 0x7f))) return false;
    }
    if (v.len && (v.ptr[0] == ' ' || v.ptr[0] == '\t')) return false;
    if (v.len && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t')) return false;
    return true;
}

static int count_fields(const struct gh_http_header *h, uint32_t n, const char *name)
{
    int c = 0;
    for (uint32_t i = 0; i < n; i++)
        if (gh_str_caseeq_lit(h[i].name, name)) c++;
    return c;
}

/* Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2): a non-empty
 * reg-name or a bracketed IP literal, then optionally ':' and digits. */
static bool valid_authority(gh_str h)
{
    size_t i = 0;

    if (h.len == 0) return false;
    if (h.ptr[0] == '[') {
        while (i < h.len && h.ptr[i] != ']')
            i++;
        if (i == h.len || i == 1) return false;
        i++;
    } else {
        while (i < h.len && h.ptr[i] != ':') {
            if (h.ptr[i] == '[' || h.ptr[i] == ']' || h.ptr[i] == '@') return false;
            i++;
        }
        if (i == 0) return false;
    }
    if (i == h.len) return true;
    if (h.ptr[i] != ':') return false;
    for (i++; i < h.len; i++)
        if (h.ptr[i] < '0' || h.ptr[i] > '9') return false;
    return true;
}

static void parse_oneshot(const uint8_t *data, size_t size, const struct gh_http_limits *lim,
                          struct result *r)
{
    struct gh_http_state st;

    gh_http_state_reset(&st);
    r->buf = dup_exact(data, size);
    r->len = size;
    r->err.status = 0;
    r->err.code = NULL;
    r->rc = gh_http_parse_request(r->buf, size, &st, lim, r->hdrs, &r->req, &r->err);
    CHECK(r->rc == GH_OK || r->rc == GH_ERROR || r->rc == GH_AGAIN);
}

/* Feeds growing prefixes ending at cuts[0..n-1] (non-decreasing, the last
 * is <size>) with the same state, each as a fresh exact-size copy. */
static void parse_incremental(const uint8_t *data, size_t size, const size_t *cuts, size_t n,
                              const struct gh_http_limits *lim, struct result *r)
{
    struct gh_http_state st;

    gh_http_state_reset(&st);
    r->buf = NULL;
    r->rc = GH_AGAIN;
    r->err.status = 0;
    r->err.code = NULL;
    for (size_t i = 0; i < n && r->rc == GH_AGAIN; i++) {
        CHECK(cuts[i] <= size);
        free(r->buf);
        r->buf = dup_exact(data, cuts[i]);
        r->len = cuts[i];
        r->rc = gh_http_parse_request(r->buf, cuts[i], &st, lim, r->hdrs, &r->req, &r->err);
    }
}

static void report(const char *what, const struct result *a, const struct result *b)
{
    fprintf(stderr, "%s: one-shot rc=%d status=%d code=%s | incremental rc=%d status=%d code=%s\n",
            what, a->rc, a->err.status, a->err.code ? a->err.code : "-", b->rc, b->err.status,
            b->err.code ? b->err.code : "-");
}

#define AGREE(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            report(#cond, one, inc);                                                               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void compare(const struct result *one, const struct result *inc)
{
    const struct gh_http_request *a = &one->req, *b = &inc->req;

    AGREE(one->rc == inc->rc);
    if (one->rc == GH_ERROR) AGREE(one->err.status == inc->err.status);
    if (one->rc != GH_OK) return;
    AGREE(same_slice(a->method, one, b->method, inc));
    AGREE(same_slice(a->target, one, b->target, inc));
    AGREE(same_slice(a->path, one, b->path, inc));
    AGREE(same_slice(a->query, one, b->query, inc));
    AGREE(same_slice(a->authority, one, b->authority, inc));
    AGREE(a->method_id == b->method_id);
    AGREE(a->target_form == b->target_form);
    AGREE(a->minor_version == b->minor_version);
    AGREE(a->expect_continue == b->expect_continue);
    AGREE(a->framing.body == b->framing.body);
    AGREE(a->framing.content_length == b->framing.content_length);
    AGREE(a->framing.keep_alive == b->framing.keep_alive);
    AGREE(a->framing.conn_close == b->framing.conn_close);
    AGREE(a->framing.conn_upgrade == b->framing.conn_upgrade);
    AGREE(a->head_len == b->head_len);
    AGREE(a->nheaders == b->nheaders);
    for (uint32_t i = 0; i < a->nheaders; i++) {
        AGREE(same_slice(a->headers[i].name, one, b->headers[i].name, inc));
        AGREE(same_slice(a->headers[i].value, one, b->headers[i].value, inc));
    }
}

/* What the contract promises about a request the parser accepted. */
static void check_accepted(const struct result *r, const struct gh_http_limits *lim)
{
    const struct gh_http_request *q = &r->req;
    const struct gh_http_header *h = q->headers;
    int te, cl, host;
    size_t line_len;

    CHECK(q->head_len >= 4 && q->head_len <= r->len);
    CHECK(q->head_len <= lim->max_header_bytes);
    CHECK(memcmp(r->buf + q->head_len - 4, "\r\n\r\n", 4) == 0);
    CHECK(h == r->hdrs);
    CHECK(q->nheaders <= lim->max_headers && q->nheaders <= GH_HTTP_MAX_HEADERS);
    for (uint32_t i = 0; i < q->nheaders; i++) {
        CHECK(inside(h[i].name, r->buf, q->head_len));
        CHECK(inside(h[i].value, r->buf, q->head_len));
        CHECK(all_tchar(h[i].name));
        CHECK(valid_value(h[i].value));
    }

    /* the request line */
    CHECK(inside(q->method, r->buf, q->head_len) && all_tchar(q->method));
    CHECK(inside(q->target, r->buf, q->head_len) && q->target.len > 0);
    CHECK(q->target.ptr == q->method.ptr + q->method.len + 1);
    line_len = (size_t)(q->target.ptr + q->target.len - q->method.ptr) + 9;
    CHECK(line_len <= lim->max_request_line);
    CHECK(memcmp(q->target.ptr + q->target.len, " HTTP/1.", 8) == 0);
    CHECK(q->minor_version == 0 || q->minor_version == 1);
    CHECK(q->target.ptr[q->target.len + 8] == '0' + q->minor_version);
    for (size_t i = 0; i < q->target.len; i++) {
        unsigned char c = (unsigned char)q->target.ptr[i];
        CHECK(c > 0x20 && c < 0x7f && c != '#');
    }
    CHECK(q->method_id != GH_HTTP_CONNECT);
    CHECK(inside(q->query, r->buf, q->head_len));
    CHECK(inside(q->authority, r->buf, q->head_len));
    if (q->target_form == GH_TARGET_ABSOLUTE && q->path.len == 1 && q->path.ptr[0] == '/')
        ; /* an empty path is handed out as the literal "/" */
    else
        CHECK(inside(q->path, r->buf, q->head_len));
    if (q->target_form == GH_TARGET_ORIGIN) CHECK(q->target.ptr[0] == '/');
    if (q->target_form == GH_TARGET_ASTERISK) CHECK(q->method_id == GH_HTTP_OPTIONS);
    CHECK(q->target_form != GH_TARGET_AUTHORITY);
    CHECK(q->path.len > 0);

    /* framing: never ambiguous (RFC 9112 §6.3) */
    te = count_fields(h, q->nheaders, "transfer-encoding");
    cl = count_fields(h, q->nheaders, "content-length");
    host = count_fields(h, q->nheaders, "host");
    CHECK(cl <= 1);
    if (te > 0) {
        CHECK(cl == 0);
        CHECK(q->minor_version == 1);
        CHECK(q->framing.body == GH_BODY_CHUNKED);
    }
    switch (q->framing.body) {
    case GH_BODY_NONE: CHECK(te == 0 && (cl == 0 || q->framing.content_length == 0)); break;
    case GH_BODY_CHUNKED: CHECK(te > 0); break;
    case GH_BODY_LENGTH: {
        const struct gh_http_header *f = gh_http_find_header(h, q->nheaders, "Content-Length");
        uint64_t v = 0;
        CHECK(f != NULL && f->value.len > 0 && f->value.len <= 19);
        for (size_t i = 0; i < f->value.len; i++) {
            CHECK(f->value.ptr[i] >= '0' && f->value.ptr[i] <= '9');
            v = v * 10 + (uint64_t)(f->value.ptr[i] - '0');
        }
        CHECK(v == q->framing.content_length && v > 0);
        break;
    }
    default: CHECK(!"close-delimited request");
    }
    CHECK(q->minor_version == 0 ? host <= 1 : host == 1);
    if (host == 1) CHECK(valid_authority(gh_http_find_header(h, q->nheaders, "Host")->value));
    if (q->target_form == GH_TARGET_ABSOLUTE) CHECK(valid_authority(q->authority));
    if (q->expect_continue) CHECK(q->minor_version == 1);
    for (uint32_t i = 0; i < q->nheaders; i++)
        if (gh_str_caseeq_lit(h[i].name, "expect"))
            CHECK(gh_str_caseeq_lit(h[i].value, "100-continue"));
    if (q->framing.keep_alive) CHECK(!q->framing.conn_close);
}

static void check_error(const struct result *r)
{
    int s = r->err.status;
    CHECK(s == 400 || s == 413 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505);
    CHECK(r->err.code != NULL && r->err.code[0] != '\0');
}

/* Decodes the bytes after a chunked head; every span must lie in the input
 * and the decoder's count must match the data handed out. */
static void decode_body(const uint8_t *data, size_t size)
{
    struct gh_chunked c;
    struct gh_http_error err = {0, NULL};
    char *in = dup_exact(data, size);
    size_t pos = 0;
    uint64_t bytes = 0;

    gh_chunked_init(&c, 1024);
    for (;;) {
        size_t consumed = 0;
        gh_str span = GH_STR_NULL;
        enum gh_chunk_event ev = gh_chunked_next(&c, in + pos, size - pos, &consumed, &span, &err);

        if (ev == GH_CHUNK_ERROR) {
            CHECK(err.status == 400 || err.status == 431);
            CHECK(err.code != NULL);
            break;
        }
        CHECK(consumed <= size - pos);
        if (ev == GH_CHUNK_DATA) {
            CHECK(span.len > 0 && inside(span, in + pos, consumed));
            CHECK(span.ptr + span.len == in + pos + consumed);
            bytes += span.len;
        } else if (ev == GH_CHUNK_TRAILER) {
            CHECK(inside(span, in + pos, consumed) || inside(span, (const char *)&c, sizeof(c)));
        }
        pos += consumed;
        if (ev == GH_CHUNK_DONE) break;
        if (ev == GH_CHUNK_NEED_MORE) {
            CHECK(pos == size);
            break;
        }
    }
    CHECK(c.total == bytes && bytes <= size);
    free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct result one, inc;
    static size_t cuts[4096];
    uint64_t h = mix(data, size);
    size_t c1, c2, n;

    if (size > 65536) return 0;
    c1 = (size_t)(h % (size + 1));
    c2 = c1 + (size_t)((h >> 24) % (size - c1 + 1));

    for (size_t l = 0; l < sizeof(limit_sets) / sizeof(limit_sets[0]); l++) {
        const struct gh_http_limits *lim = &limit_sets[l];

        parse_oneshot(data, size, lim, &one);
        if (one.rc == GH_OK) check_accepted(&one, lim);
        if (one.rc == GH_ERROR) check_error(&one);

        /* split at two points derived from the data */
        cuts[0] = c1;
        cuts[1] = c2;
        cuts[2] = size;
        parse_incremental(data, size, cuts, 3, lim, &inc);
        compare(&one, &inc);
        free(inc.buf);

        /* byte by byte (in steps for long inputs) */
        n = 0;
        for (size_t k = 1, step = size <= 1024 ? 1 : size / 1024 + 1; k < size; k += step)
            cuts[n++] = k;
        cuts[n++] = size;
        parse_incremental(data, size, cuts, n, lim, &inc);
        compare(&one, &inc);
        if (inc.rc == GH_OK) check_accepted(&inc, lim);
        free(inc.buf);

        if (one.rc == GH_OK && one.req.framing.body == GH_BODY_CHUNKED && l == 0)
            decode_body(data + one.req.head_len, size - one.req.head_len);
        free(one.buf);
    }
    return 0;
}
