/* Micro-benchmark of the OTLP trace encoders (src/telemetry/otlp_proto.c,
 * otlp_json.c): batches of 512 spans shaped like those trace_spans.c makes
 * (a server span with 14 attributes, then a client span with 6), encoded
 * again and again into one reused buffer, as the exporter does.
 *
 *   make bench-otlp              (or build/otlp_bench [seconds])
 *
 * Prints one "encoding spans=N ns_per_span=X mb_per_s=Y bytes_per_span=Z"
 * line per encoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "telemetry/otlp.h"

enum { BATCH = 512 };

static const struct gh_otlp_resource resource = {
    .service_name = GH_STR_LIT("gatehouse"),
    .service_version = GH_STR_LIT("0.4.1-12-gabcdef0"),
    .instance_id = GH_STR_LIT("gw-eu-west-1a-7f9c"),
    .scope_name = GH_STR_LIT("gatehouse"),
    .scope_version = GH_STR_LIT("0.4.1"),
};

/* Backing store for the per-span strings that differ from span to span. */
struct strings {
    char path[BATCH][48];
    char id[BATCH][40];
    char peer[BATCH][16];
};

/* As trace_spans.c does: literal keys with their length. */
#define attr_str(s, key, v, n) attr_str_((s), "" key, sizeof("" key) - 1, (v), (n))
#define attr_int(s, key, v)    attr_int_((s), "" key, sizeof("" key) - 1, (v))

static void attr_str_(struct gh_span *s, const char *key, size_t key_len, const char *v, size_t n)
{
    s->attrs[s->nattrs++] = (struct gh_span_attr){
        .key = key, .key_len = key_len, .type = GH_ATTR_STR, .s = gh_str_make(v, n)};
}

static void attr_int_(struct gh_span *s, const char *key, size_t key_len, int64_t v)
{
    s->attrs[s->nattrs++] =
        (struct gh_span_attr){.key = key, .key_len = key_len, .type = GH_ATTR_INT, .i = v};
}

static void fill_id(uint8_t *id, size_t n, uint64_t *x)
{
    for (size_t i = 0; i < n; i++) {
        *x ^= *x << 13; /* xorshift64 */
        *x ^= *x >> 7;
        *x ^= *x << 17;
        id[i] = (uint8_t)*x;
    }
}

/* Span 2k is a request's server span, span 2k+1 its client span. */
static void make_spans(struct gh_span *spans, struct strings *st)
{
    static const char ua[] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
                             "Gecko) Chrome/120.0.0.0 Safari/537.36";
    uint64_t x = 0x9e3779b97f4a7c15, t = UINT64_C(1763770000000000000);

    memset(spans, 0, BATCH * sizeof(*spans));
    for (size_t i = 0; i < BATCH; i += 2) {
        struct gh_span *s = &spans[i], *c = &spans[i + 1];
        int pn = snprintf(st->path[i], sizeof(st->path[i]), "/v1/users/%zu/orders", 100000 + i);
        int in = snprintf(st->id[i], sizeof(st->id[i]), "01J%023zu", 7 * i);
        int an = snprintf(st->peer[i], sizeof(st->peer[i]), "10.1.%zu.%zu", i / 250, i % 250);

        fill_id(s->trace_id, 16, &x);
        fill_id(s->span_id, 8, &x);
        s->name = GH_STR_LIT("GET /v1/users/{id}/orders");
        s->kind = GH_SPAN_SERVER;
        s->start_unix_ns = t + i * 1000;
        s->end_unix_ns = s->start_unix_ns + 734211;
        s->flags = 1;
        attr_str(s, "http.request.method", "GET", 3);
        attr_str(s, "url.path", st->path[i], (size_t)pn);
        attr_str(s, "url.scheme", "https", 5);
        attr_str(s, "http.route", "/v1/users/{id}/orders", 21);
        attr_int(s, "http.response.status_code", 200);
        attr_str(s, "server.address", "api.example.com", 15);
        attr_int(s, "server.port", 443);
        attr_str(s, "network.peer.address", st->peer[i], (size_t)an);
        attr_int(s, "network.peer.port", 40000 + (int64_t)i);
        attr_str(s, "network.protocol.version", "1.1", 3);
        attr_str(s, "user_agent.original", ua, sizeof(ua) - 1);
        attr_str(s, "gatehouse.tenant", "acme-corp", 9);
        attr_str(s, "gatehouse.route", "users-api", 9);
        attr_str(s, "gatehouse.request_id", st->id[i], (size_t)in);

        memcpy(c->trace_id, s->trace_id, 16);
        fill_id(c->span_id, 8, &x);
        memcpy(c->parent_id, s->span_id, 8);
        c->has_parent = true;
        c->name = GH_STR_LIT("GET");
        c->kind = GH_SPAN_CLIENT;
        c->start_unix_ns = s->start_unix_ns + 52000;
        c->end_unix_ns = s->end_unix_ns - 21000;
        c->flags = 1;
        attr_str(c, "http.request.method", "GET", 3);
        attr_str(c, "server.address", "users.internal", 14);
        attr_int(c, "server.port", 8080);
        attr_str(c, "url.path", st->path[i], (size_t)pn);
        attr_int(c, "http.response.status_code", 200);
        attr_str(c, "gatehouse.upstream", "users", 5);
    }
}

typedef int (*encode_fn)(struct gh_otlp_buf *, const struct gh_otlp_resource *,
                         const struct gh_span *, size_t);

static void measure(const char *name, encode_fn enc, const struct gh_span *spans, double secs)
{
    struct gh_otlp_buf out = {0};
    uint64_t batches = 0, bytes = 0, t0 = gh_now_ns(), t1;

    /* Warm up: grows the buffer to its size once. */
    if (enc(&out, &resource, spans, BATCH) != 0) {
        fprintf(stderr, "otlp_bench: %s: encode failed\n", name);
        exit(1);
    }
    t0 = gh_now_ns();
    do {
        for (int k = 0; k < 16; k++) {
            out.len = 0;
            if (enc(&out, &resource, spans, BATCH) != 0) abort();
            bytes += out.len;
        }
        batches += 16;
        t1 = gh_now_ns();
    } while (t1 - t0 < (uint64_t)(secs * 1e9));
    double ns = (double)(t1 - t0);
    printf("%s spans=%d ns_per_span=%.1f mb_per_s=%.1f bytes_per_span=%.1f\n", name, BATCH,
           ns / (double)(batches * BATCH), (double)bytes / ns * 1e3,
           (double)out.len / (double)BATCH);
    free(out.data);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    struct gh_span *spans = calloc(BATCH, sizeof(*spans));
    struct strings *st = calloc(1, sizeof(*st));

    if (spans == NULL || st == NULL) {
        fprintf(stderr, "otlp_bench: out of memory\n");
        return 1;
    }
    make_spans(spans, st);
    measure("proto", gh_otlp_encode_proto, spans, secs);
    measure("json", gh_otlp_encode_json, spans, secs);
    free(spans);
    free(st);
    return 0;
}
