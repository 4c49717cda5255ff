/* libFuzzer harness for the inbound webhook signature headers
 * (src/hooks/inbound.c): gh_wh_parse_standard, _github, _stripe and
 * _timestamp, then gh_wh_verify of each format. The Makefile links
 * src/hooks/inbound.c and libcrypto (FUZZ_LIBS_fuzz_webhook_sig).
 *
 * The first byte picks the target; the rest, split at newlines, gives the
 * id, the timestamp, the signature header and the body. Checks:
 * 1. the parsers read only their input (ASan) and, when they accept,
 *    return 1 to GH_WH_MAX_ENTRIES signatures; Stripe's t= digits lie
 *    inside the header and parse to the t they return;
 * 2. a header longer than GH_WH_MAX_SIG_HEADER is always refused;
 * 3. gh_wh_verify never accepts a signature the fuzzer did not compute with
 *    the secret (it cannot: any OK is a real HMAC collision) and never
 *    returns GH_WH_REPLAYED. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#include "hooks/inbound.h"

/* The next line of <rest> (without its newline). */
static gh_str line(gh_str *rest)
{
    const char *nl = rest->len ? memchr(rest->ptr, '\n', rest->len) : NULL;
    gh_str l = *rest;
    if (nl == NULL) {
        rest->ptr += rest->len;
        rest->len = 0;
        return l;
    }
    l.len = (size_t)(nl - rest->ptr);
    rest->ptr = nl + 1;
    rest->len -= l.len + 1;
    return l;
}

static void check_sigs(enum gh_wh_result rc, gh_str header, const struct gh_wh_sigs *s)
{
    CHECK(rc == GH_WH_OK || rc == GH_WH_MALFORMED);
    if (header.len > GH_WH_MAX_SIG_HEADER) CHECK(rc == GH_WH_MALFORMED);
    /* OK means at least one entry to check: a v1 MAC or (Standard Webhooks
     * only) a v1a Ed25519 signature; both counts within their bounds. */
    if (rc == GH_WH_OK)
        CHECK(s->n + s->ned >= 1 && s->n <= GH_WH_MAX_ENTRIES && s->ned <= GH_WH_MAX_ED);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct gh_wh_verifier v[3];
    static struct gh_wh_keyed keys[3];
    static bool ready;
    struct gh_wh_sigs sigs;
    struct gh_wh_headers h;
    gh_str rest, header;
    enum gh_wh_result rc;
    int64_t t;

    if (!ready) {
        const char *std = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        const char *raw = "It's a Secret to Everybody";
        CHECK(gh_wh_verifier_init(&v[0], GH_WH_STANDARD, &std, 1, 300, NULL) == GH_OK);
        CHECK(gh_wh_verifier_init(&v[1], GH_WH_GITHUB, &raw, 1, 300, NULL) == GH_OK);
        CHECK(gh_wh_verifier_init(&v[2], GH_WH_STRIPE, &raw, 1, 300, NULL) == GH_OK);
        for (int f = 0; f < 3; f++)
            CHECK(gh_wh_keyed_init(&keys[f], &v[f]) == GH_OK);
        ready = true;
    }
    if (size == 0) return 0;
    rest = gh_str_make((const char *)data + 1, size - 1);
    switch (data[0] % 5) {
    case 0: check_sigs(gh_wh_parse_standard(rest, &sigs), rest, &sigs); break;
    case 1: check_sigs(gh_wh_parse_github(rest, &sigs), rest, &sigs); break;
    case 2:
        rc = gh_wh_parse_stripe(rest, &sigs);
        check_sigs(rc, rest, &sigs);
        if (rc == GH_WH_OK) {
            CHECK(sigs.t_text.ptr >= rest.ptr &&
                  sigs.t_text.ptr + sigs.t_text.len <= rest.ptr + rest.len);
            CHECK(gh_wh_parse_timestamp(sigs.t_text, &t) == GH_WH_OK && t == sigs.t);
        }
        break;
    case 3:
        if (gh_wh_parse_timestamp(rest, &t) == GH_WH_OK) CHECK(t >= 0 && rest.len <= 12);
        break;
    default:
        h.id = line(&rest);
        h.timestamp = line(&rest);
        header = line(&rest);
        h.signature = header;
        for (int f = 0; f < 3; f++) {
            struct gh_wh_verified out;
            rc = gh_wh_verify(&v[f], &keys[f], &h, rest, 1614265330, &out);
            CHECK(rc != GH_WH_REPLAYED);
            if (rc == GH_WH_OK) CHECK(out.key_len >= 1 && out.key_len <= GH_WH_KEY_MAX);
        }
        break;
    }
    return 0;
}
