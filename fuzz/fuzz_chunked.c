/* libFuzzer harness for the chunked decoder (gh_chunked_next) alone.
 *
 * The input is a chunked body. It is decoded whole, byte by byte, and in
 * pieces whose sizes are derived from the data, with a roomy and a tight
 * trailer limit. Every way must give the same decoded bytes, the same
 * trailer lines, the same final event (and error status and code), and the
 * same number of bytes consumed. Each piece is an exact-size heap copy, so
 * ASan sees any read past the length given; every DATA span must lie in the
 * piece just given and end where the decoder says it stopped. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#include "core/err.h"
#include "http/parser.h"

struct outcome {
    enum gh_chunk_event last; /* DONE, ERROR, or NEED_MORE when the input ran out */
    struct gh_http_error err;
    size_t consumed; /* bytes used, up to and including the end of the body */
    uint64_t total;
    char *body;
    size_t body_len;
    char *trailers; /* trailer lines, each followed by '\n' */
    size_t trailers_len;
    size_t events;
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

static bool inside(gh_str s, const void *buf, size_t len)
{
    uintptr_t p = (uintptr_t)s.ptr, b = (uintptr_t)buf;
    if (s.ptr == NULL) return s.len == 0;
    return p >= b && p <= b + len && s.len <= b + len - p;
}

/* mode 0: whole; 1: byte by byte; 2: pieces of 1..64 bytes from <seed>. */
static void run(const uint8_t *data, size_t size, uint32_t max_trailer, int mode, uint64_t seed,
                struct outcome *o)
{
    struct gh_chunked c;
    size_t pos = 0, avail = 0;
    uint64_t rng = seed | 1;

    memset(o, 0, sizeof(*o));
    o->body = malloc(size + 1);
    o->trailers = malloc(2 * size + 1);
    if (o->body == NULL || o->trailers == NULL) abort();
    o->last = GH_CHUNK_NEED_MORE;
    gh_chunked_init(&c, max_trailer);

    for (;;) {
        enum gh_chunk_event ev;
        size_t consumed = (size_t)-1, n;
        gh_str span = GH_STR_NULL;
        char *piece;

        if (pos == avail) {
            if (avail == size) break;
            if (mode == 0)
                avail = size;
            else if (mode == 1)
                avail++;
            else {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                avail += 1 + (size_t)(rng % 64);
                if (avail > size) avail = size;
            }
        }
        n = avail - pos;
        piece = dup_exact(data + pos, n);
        ev = gh_chunked_next(&c, piece, n, &consumed, &span, &o->err);
        o->events++;
        CHECK(o->events <= 4 * size + 8); /* progress on every call */
        if (ev == GH_CHUNK_ERROR) {
            free(piece);
            o->last = ev;
            CHECK(o->err.status == 400 || o->err.status == 431);
            CHECK(o->err.code != NULL && o->err.code[0] != '\0');
            break;
        }
        CHECK(consumed <= n);
        if (ev == GH_CHUNK_DATA) {
            CHECK(span.len > 0 && inside(span, piece, n));
            CHECK(span.ptr + span.len == piece + consumed);
            CHECK(o->body_len + span.len <= size);
            memcpy(o->body + o->body_len, span.ptr, span.len);
            o->body_len += span.len;
        } else if (ev == GH_CHUNK_TRAILER) {
            CHECK(inside(span, piece, n) || inside(span, &c, sizeof(c)));
            CHECK(o->trailers_len + span.len + 1 <= 2 * size + 1);
            memcpy(o->trailers + o->trailers_len, span.ptr, span.len);
            o->trailers_len += span.len;
            o->trailers[o->trailers_len++] = '\n';
        } else if (ev == GH_CHUNK_NEED_MORE) {
            CHECK(consumed == n);
        } else {
            CHECK(ev == GH_CHUNK_DONE);
        }
        free(piece);
        pos += consumed;
        if (ev == GH_CHUNK_DONE) {
            o->last = ev;
            break;
        }
    }
    o->consumed = pos;
    o->total = c.total;
    CHECK(o->total == o->body_len);

    /* DONE is final: another call consumes nothing. */
    if (o->last == GH_CHUNK_DONE) {
        size_t consumed = 1;
        gh_str span = GH_STR_NULL;
        struct gh_http_error err = {0, NULL};
        CHECK(gh_chunked_next(&c, "x", 1, &consumed, &span, &err) == GH_CHUNK_DONE);
        CHECK(consumed == 0);
    }
}

static void agree(const struct outcome *a, const struct outcome *b, const char *how)
{
    bool same = a->last == b->last && a->body_len == b->body_len &&
                memcmp(a->body, b->body, a->body_len) == 0 && a->trailers_len == b->trailers_len &&
                memcmp(a->trailers, b->trailers, a->trailers_len) == 0 && a->total == b->total;
    if (same && a->last == GH_CHUNK_ERROR)
        same = a->err.status == b->err.status && strcmp(a->err.code, b->err.code) == 0;
    if (same && a->last != GH_CHUNK_ERROR) same = a->consumed == b->consumed;
    if (!same) {
        fprintf(stderr,
                "whole vs %s: last %d/%d, error %d %s / %d %s, body %zu/%zu bytes, trailers "
                "%zu/%zu bytes, consumed %zu/%zu\n",
                how, a->last, b->last, a->err.status, a->err.code ? a->err.code : "-",
                b->err.status, b->err.code ? b->err.code : "-", a->body_len, b->body_len,
                a->trailers_len, b->trailers_len, a->consumed, b->consumed);
        abort();
    }
}

static void release(struct outcome *o)
{
    free(o->body);
    free(o->trailers);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t max_trailers[] = {4096, 20};
    uint64_t h = mix(data, size);

    if (size > 65536) return 0;
    for (size_t t = 0; t < sizeof(max_trailers) / sizeof(max_trailers[0]); t++) {
        struct outcome whole, bytes, pieces;

        run(data, size, max_trailers[t], 0, 0, &whole);
        run(data, size, max_trailers[t], 1, 0, &bytes);
        run(data, size, max_trailers[t], 2, h + t, &pieces);
        agree(&whole, &bytes, "byte by byte");
        agree(&whole, &pieces, "pieces");
        release(&whole);
        release(&bytes);
        release(&pieces);
    }
    return 0;
}
