/* libFuzzer harness for gh_http_parse_response(), and for the chunked decoder
 * on whatever follows a chunked response head.
 *
 * Each input is parsed as the response to a few request methods (HEAD and
 * the 1xx/204/304 statuses have no body) and with a few limit sets: one-shot,
 * then incrementally with the same state (split at points derived from the
 * data, and byte by byte). The two must agree. Every prefix is an exact-size
 * heap copy, so ASan sees any read past the length given. An accepted
 * response must satisfy the contract in http/parser.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#include "core/err.h"
#include "http/parser.h"

static const struct gh_http_limits limit_sets[] = {
    {8192, 32768, 100}, /* the gateway's defaults */
    {24, 96, 3},        /* small: short inputs reach every limit */
};

struct result {
    int rc;
    struct gh_http_error err;
    struct gh_http_response resp;
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

static void parse_oneshot(const uint8_t *data, size_t size, const struct gh_http_limits *lim,
                          enum gh_http_method m, struct result *r)
{
    struct gh_http_state st;

    gh_http_state_reset(&st);
    r->buf = dup_exact(data, size);
    r->len = size;
    r->err.status = 0;
    r->err.code = NULL;
    r->rc = gh_http_parse_response(r->buf, size, &st, lim, m, r->hdrs, &r->resp, &r->err);
    CHECK(r->rc == GH_OK || r->rc == GH_ERROR || r->rc == GH_AGAIN);
}

/* Feeds growing prefixes ending at cuts[0..n-1] (non-decreasing, the last
 * is <size>) with the same state, each as a fresh exact-size copy. */
static void parse_incremental(const uint8_t *data, size_t size, const size_t *cuts, size_t n,
                              const struct gh_http_limits *lim, enum gh_http_method m,
                              struct result *r)
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
        r->rc = gh_http_parse_response(r->buf, cuts[i], &st, lim, m, r->hdrs, &r->resp, &r->err);
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
    const struct gh_http_response *a = &one->resp, *b = &inc->resp;

    AGREE(one->rc == inc->rc);
    if (one->rc == GH_ERROR) AGREE(one->err.status == inc->err.status);
    if (one->rc != GH_OK) return;
    AGREE(a->status == b->status);
    AGREE(same_slice(a->reason, one, b->reason, inc));
    AGREE(a->minor_version == b->minor_version);
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

/* What the contract promises about a response the parser accepted. */
static void check_accepted(const struct result *r, const struct gh_http_limits *lim,
                           enum gh_http_method m)
{
    const struct gh_http_response *p = &r->resp;
    const struct gh_http_header *h = p->headers;
    bool no_body = m == GH_HTTP_HEAD || p->status < 200 || p->status == 204 || p->status == 304;
    int te, cl;

    CHECK(p->head_len >= 4 && p->head_len <= r->len);
    CHECK(p->head_len <= lim->max_header_bytes);
    CHECK(memcmp(r->buf + p->head_len - 4, "\r\n\r\n", 4) == 0);
    CHECK(h == r->hdrs);
    CHECK(p->nheaders <= lim->max_headers && p->nheaders <= GH_HTTP_MAX_HEADERS);
    for (uint32_t i = 0; i < p->nheaders; i++) {
        CHECK(inside(h[i].name, r->buf, p->head_len));
        CHECK(inside(h[i].value, r->buf, p->head_len));
        CHECK(all_tchar(h[i].name));
        CHECK(valid_value(h[i].value));
    }
    CHECK(p->status >= 100 && p->status <= 999);
    CHECK(p->minor_version == 0 || p->minor_version == 1);
    CHECK(inside(p->reason, r->buf, p->head_len));
    for (size_t i = 0; i < p->reason.len; i++) {
        unsigned char c = (unsigned char)p->reason.ptr[i];
        CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
    }

    te = count_fields(h, p->nheaders, "transfer-encoding");
    cl = count_fields(h, p->nheaders, "content-length");
    if (no_body) {
        CHECK(p->framing.body == GH_BODY_NONE);
    } else {
        /* RFC 9112 §6.3: never both, never two lengths */
        CHECK(!(te > 0 && cl > 0));
        CHECK(cl <= 1);
        if (te > 0) CHECK(p->framing.body == GH_BODY_CHUNKED || p->framing.body == GH_BODY_CLOSE);
        if (p->framing.body == GH_BODY_CHUNKED) CHECK(te > 0 && p->minor_version == 1);
        if (p->framing.body == GH_BODY_LENGTH) CHECK(cl == 1 && p->framing.content_length > 0);
        if (p->framing.body == GH_BODY_NONE) CHECK(cl == 1 && p->framing.content_length == 0);
        if (p->framing.body == GH_BODY_CLOSE) CHECK(cl == 0);
    }
    if (p->framing.body == GH_BODY_CLOSE) CHECK(!p->framing.keep_alive);
    if (p->framing.keep_alive) CHECK(!p->framing.conn_close);
}

static void check_error(const struct result *r)
{
    CHECK(r->err.status == 502);
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
    enum gh_http_method methods[3] = {GH_HTTP_GET, GH_HTTP_HEAD, GH_HTTP_GET};
    size_t c1, c2, n;

    if (size > 65536) return 0;
    c1 = (size_t)(h % (size + 1));
    c2 = c1 + (size_t)((h >> 24) % (size - c1 + 1));
    methods[2] = (enum gh_http_method)((h >> 48) % (GH_HTTP_OTHER + 1));

    for (size_t l = 0; l < sizeof(limit_sets) / sizeof(limit_sets[0]); l++) {
        const struct gh_http_limits *lim = &limit_sets[l];
        for (size_t mi = 0; mi < 3; mi++) {
            enum gh_http_method m = methods[mi];

            parse_oneshot(data, size, lim, m, &one);
            if (one.rc == GH_OK) check_accepted(&one, lim, m);
            if (one.rc == GH_ERROR) check_error(&one);

            cuts[0] = c1;
            cuts[1] = c2;
            cuts[2] = size;
            parse_incremental(data, size, cuts, 3, lim, m, &inc);
            compare(&one, &inc);
            free(inc.buf);

            if (mi == 0) {
                n = 0;
                for (size_t k = 1, step = size <= 1024 ? 1 : size / 1024 + 1; k < size; k += step)
                    cuts[n++] = k;
                cuts[n++] = size;
                parse_incremental(data, size, cuts, n, lim, m, &inc);
                compare(&one, &inc);
                if (inc.rc == GH_OK) check_accepted(&inc, lim, m);
                free(inc.buf);
            }

            if (one.rc == GH_OK && one.resp.framing.body == GH_BODY_CHUNKED && l == 0)
                decode_body(data + one.resp.head_len, size - one.resp.head_len);
            free(one.buf);
        }
    }
    return 0;
}
