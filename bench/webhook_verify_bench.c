/* Micro-benchmark of inbound webhook verification (src/hooks/inbound.c):
 * one gh_wh_verify of a 1 KiB body per format, with the header parse, the
 * timestamp check, one HMAC-SHA256 and the constant-time comparison, on
 * contexts keyed once, as the verify stage keeps them per worker and route.
 * For the choice of that design it also times the HMAC alone four ways: one
 * context re-keyed per call, a context keyed once and re-initialised with
 * its own key (what gh_wh_verify does), EVP_MAC_CTX_dup of a context keyed
 * once (allocations per call), and the one-shot HMAC(). Last, one
 * gh_replay_check_add on a 262,144-slot replay table kept 25% full (a
 * GitHub delivery makes two: its id and its MAC).
 *
 *   make bench-verify            (or build/webhook_verify_bench [runs])
 *
 * Prints "name ns_per_op=X" lines: the median of <runs> (default 7) runs
 * of 200,000 operations each. Pin it (taskset -c 1) for stable figures. */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "hooks/inbound.h"
#include "hooks/replay.h"

enum { OPS = 200000, BODY = 1024, MAXRUNS = 31 };

static char body[BODY];
static volatile unsigned sink;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef void (*op_fn)(void *arg);

static double median_ns(op_fn f, void *arg, int runs)
{
    uint64_t t[MAXRUNS];
    for (int r = 0; r < runs; r++) {
        uint64_t t0 = gh_now_ns();
        for (int i = 0; i < OPS; i++)
            f(arg);
        t[r] = gh_now_ns() - t0;
    }
    qsort(t, (size_t)runs, sizeof(t[0]), cmp_u64);
    return (double)t[runs / 2] / OPS;
}

struct vcase {
    struct gh_wh_verifier v;
    struct gh_wh_headers h;
    struct gh_wh_keyed keys;
    int64_t now;
};

static void op_verify(void *arg)
{
    struct vcase *c = arg;
    sink += gh_wh_verify(&c->v, &c->keys, &c->h, gh_str_make(body, BODY), c->now, NULL);
}

/* The replay table at a steady 25% load: each key lives for capacity/4
 * inserts, as at a constant rate of webhooks ("seconds" are inserts). */
struct rcase {
    struct gh_replay *t;
    long i, live;
};

static void op_replay(void *arg)
{
    struct rcase *c = arg;
    char k[48];
    int n = snprintf(k, sizeof(k), "delivery-%ld-0123456789abcdef", c->i);
    sink += gh_replay_check_add(c->t, k, (size_t)n, c->i, c->i + c->live);
    c->i++;
}

static const unsigned char key[32] = "0123456789abcdef0123456789abcdef";

static void op_rekey(void *arg)
{
    unsigned char out[32];
    size_t n;
    EVP_MAC_CTX *ctx = arg;
    EVP_MAC_init(ctx, key, sizeof(key), NULL);
    EVP_MAC_update(ctx, (const unsigned char *)body, BODY);
    EVP_MAC_final(ctx, out, &n, sizeof(out));
    sink += out[0];
}

static void op_reinit(void *arg)
{
    unsigned char out[32];
    size_t n;
    EVP_MAC_CTX *ctx = arg;
    EVP_MAC_init(ctx, NULL, 0, NULL); /* the key it holds */
    EVP_MAC_update(ctx, (const unsigned char *)body, BODY);
    EVP_MAC_final(ctx, out, &n, sizeof(out));
    sink += out[0];
}

static void op_dup(void *arg)
{
    unsigned char out[32];
    size_t n;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(arg);
    EVP_MAC_update(ctx, (const unsigned char *)body, BODY);
    EVP_MAC_final(ctx, out, &n, sizeof(out));
    EVP_MAC_CTX_free(ctx);
    sink += out[0];
}

static void op_oneshot(void *arg)
{
    unsigned char out[32];
    unsigned int n = 32;
    (void)arg;
    HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)body, BODY, out, &n);
    sink += out[0];
}

static EVP_MAC_CTX *mac_new(void)
{
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(m);
    OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                      OSSL_PARAM_construct_end()};
    EVP_MAC_free(m);
    EVP_MAC_CTX_set_params(ctx, p);
    return ctx;
}

static void hex(const unsigned char *m, char *out)
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", m[i]);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 7;
    const int64_t now = 1700000000;
    static char sigbuf[3][256];
    struct vcase c[3];
    const char *names[3] = {"standard", "github", "stripe"};
    unsigned char m[32];
    unsigned int mlen = 32;

    if (runs < 1 || runs > MAXRUNS) runs = 7;
    memset(body, 'b', sizeof(body));
    memset(c, 0, sizeof(c));

    /* Standard: secret whsec_ + base64 of <key>, content "id.ts.body". */
    {
        const char *s = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        char msg[BODY + 64];
        int n = snprintf(msg, sizeof(msg), "msg_bench.1700000000.");
        memcpy(msg + n, body, BODY);
        HMAC(EVP_sha256(), key, 32, (unsigned char *)msg, (size_t)n + BODY, m, &mlen);
        memcpy(sigbuf[0], "v1,", 3);
        EVP_EncodeBlock((unsigned char *)sigbuf[0] + 3, m, 32);
        gh_wh_verifier_init(&c[0].v, GH_WH_STANDARD, &s, 1, 300, NULL);
        c[0].h = (struct gh_wh_headers){GH_STR_LIT("msg_bench"), GH_STR_LIT("1700000000"),
                                        gh_str_cstr(sigbuf[0])};
    }
    /* GitHub: the raw secret, content the body. */
    {
        const char *s = "0123456789abcdef0123456789abcdef";
        HMAC(EVP_sha256(), s, 32, (unsigned char *)body, BODY, m, &mlen);
        memcpy(sigbuf[1], "sha256=", 7);
        hex(m, sigbuf[1] + 7);
        gh_wh_verifier_init(&c[1].v, GH_WH_GITHUB, &s, 1, 300, NULL);
        c[1].h = (struct gh_wh_headers){GH_STR_LIT("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                                        GH_STR_NULL, gh_str_cstr(sigbuf[1])};
    }
    /* Stripe: the secret string, content "t.body". */
    {
        const char *s = "whsec_0123456789abcdef0123456789ab";
        char msg[BODY + 64];
        int n = snprintf(msg, sizeof(msg), "1700000000.");
        memcpy(msg + n, body, BODY);
        HMAC(EVP_sha256(), s, strlen(s), (unsigned char *)msg, (size_t)n + BODY, m, &mlen);
        n = snprintf(sigbuf[2], sizeof(sigbuf[2]), "t=1700000000,v1=");
        hex(m, sigbuf[2] + n);
        gh_wh_verifier_init(&c[2].v, GH_WH_STRIPE, &s, 1, 300, NULL);
        c[2].h = (struct gh_wh_headers){GH_STR_NULL, GH_STR_NULL, gh_str_cstr(sigbuf[2])};
    }
    for (int i = 0; i < 3; i++) {
        gh_wh_keyed_init(&c[i].keys, &c[i].v);
        c[i].now = now;
        if (gh_wh_verify(&c[i].v, &c[i].keys, &c[i].h, gh_str_make(body, BODY), now, NULL) !=
            GH_WH_OK) {
            fprintf(stderr, "%s: the bench's signature does not verify\n", names[i]);
            return 1;
        }
    }
    for (int i = 0; i < 3; i++)
        printf("verify_%s_1KiB ns_per_op=%.0f\n", names[i], median_ns(op_verify, &c[i], runs));

    EVP_MAC_CTX *scratch = mac_new(), *keyed = mac_new();
    EVP_MAC_init(keyed, key, sizeof(key), NULL);
    printf("hmac_rekeyed_ctx_1KiB ns_per_op=%.0f\n", median_ns(op_rekey, scratch, runs));
    printf("hmac_reinit_keyed_ctx_1KiB ns_per_op=%.0f\n", median_ns(op_reinit, keyed, runs));
    printf("hmac_dup_keyed_ctx_1KiB ns_per_op=%.0f\n", median_ns(op_dup, keyed, runs));
    printf("hmac_oneshot_1KiB ns_per_op=%.0f\n", median_ns(op_oneshot, NULL, runs));
    {
        struct rcase rc = {gh_replay_new(262144), 0, 262144 / 4};
        for (long i = 0; i < rc.live; i++) /* fill to the steady state first */
            op_replay(&rc);
        printf("replay_check_add_262144_slots ns_per_op=%.0f\n", median_ns(op_replay, &rc, runs));
        gh_replay_free(rc.t);
    }
    EVP_MAC_CTX_free(scratch);
    EVP_MAC_CTX_free(keyed);
    for (int i = 0; i < 3; i++) {
        gh_wh_keyed_release(&c[i].keys);
        gh_wh_verifier_release(&c[i].v);
    }
    return 0;
}
