/* libFuzzer harness for JWT verification (src/auth/jwt.c) and JWKS parsing
 * (src/auth/jwks.c).
 *
 * Self-contained: the Makefile links fuzzers against the HTTP parser files
 * only, so this harness includes the two .c files (and reaches their static
 * functions). It links with -lcrypto -ljansson.
 *
 * Every input is used three ways:
 * 1. as a token, verified against a fixed JWKS (RSA-2048, P-256, P-384,
 *    Ed25519; the seed corpus holds valid tokens for each alg) under a policy
 *    with every check on, and through the JWS layer alone. The two must agree
 *    on every failure up to the signature, and a success must come with
 *    NUL-terminated, printable claims;
 * 2. as a claims object, read by jwt.c's JSON reader (checked against
 *    jansson) and run through the claim checks and mapping directly (a
 *    fuzzer cannot forge signatures, so this is how it reaches them);
 * 3. as a JWKS, parsed; a set that parses must write out and parse back to
 *    the same keys.
 * Also, base64url decoding must be canonical: whatever decodes encodes back
 * to the same text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#include "../src/auth/jwks.c"
#include "../src/auth/jwt.c"

#define NOW 1700000000

/* Public keys only; the seed tokens were signed with their private halves,
 * which are not kept anywhere. */
static const char fixed_jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"rsa\",\"n\":\"yiOs1cSdlS86OxYzMLXiY-"
    "XrUoHC0"
    "E2rKlCgSmZEU9qkDqFTdXQqzmI4QcZunSDiqnX2JgE8WWMTnfNy2447ON97HzSrZaBR8UPOp4rvlYSZW"
    "uQJAPNdzoXPq-X-Cae6tayqb4f6V71HzeiDGHfbXXgXz_Bre37OWtiAd5kJ3SJ9zW4fudxOIW1Rr43jF"
    "I3j9fILXol4-yA0szkGBaWEqLLL4aOlezdLpT7famlbED8LOpKisNJDYHJsZUCNcMkkvEvZEmzTKgEP4"
    "SkUrrfIKbB6ml6JZdCYd75NmqpP8G0HrqOC0u4UFrCFwdjWnbxtE3ie-CnaARz4jVWR1RjDww\",\"e\":\""
    "AQAB\"},{\"kty\":\"EC\",\"use\":\"sig\",\"alg\":\"ES256\",\"kid\":\"p256\",\"crv\":\"P-256\","
    "\"x\":\"DxA"
    "0ffWK0TBZyNYpLQUp8EUHDbOvSege3ENzSdXmX7E\",\"y\":\"VqRVEyqICram-P-W_JzGTWw9BHspZbesx"
    "BJnubIoe1Y\"},{\"kty\":\"EC\",\"use\":\"sig\",\"kid\":\"p384\",\"crv\":\"P-384\",\"x\":"
    "\"KQz56ZfNskV"
    "LhhrAxNh5T4Lp7aD-vvv39ZXAAMTHTlvJZ2V4I5Fq3eJRKM5lLqEJ\",\"y\":\"TJLvKHDBT1yrrl_yQrXD"
    "9VaEzDsz2hUxVtKxSCinWM6ePlI_gT9oNjgyfzk3wwZB\"},{\"kty\":\"OKP\",\"use\":\"sig\",\"alg\":\"E"
    "dDSA\",\"kid\":\"ed\",\"crv\":\"Ed25519\",\"x\":\"5bi-petQNk7fm5RRxgWGyjSBxuLmJl2lWVpq95dces"
    "4\"}]}";

static struct gh_jwks *keys;
static struct gh_jwt_verifier *verifier;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const struct gh_jwt_policy policy = {
        .leeway_s = 60,
        .issuer = "https://issuer.example",
        .audiences = {"api://gatehouse"},
        .naudiences = 1,
        .tenant_claim = "org_id",
        .roles_claim = "roles",
    };
    struct gh_err err;

    keys = gh_jwks_parse(fixed_jwks, sizeof(fixed_jwks) - 1, &err);
    verifier = gh_jwt_verifier_new(&policy, &err);
    CHECK(keys != NULL && keys->nkeys == 4 && verifier != NULL);
    return 0;
}

static void check_str(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    CHECK(n < cap);
    CHECK(printable(s, n));
}

static void as_token(const uint8_t *data, size_t size)
{
    gh_str tok = gh_str_make((const char *)data, size);
    struct gh_jwt_claims out;
    struct gh_jws_info info;
    enum gh_jwt_result r = gh_jwt_verify(verifier, keys, tok, NOW, &out);
    enum gh_jwt_result rj = gh_jwt_verify_jws(verifier, keys, tok, &info);

    CHECK((int)r >= 0 && r < GH_JWT_RESULT_COUNT);
    CHECK(gh_jwt_result_str(r) != NULL);
    if (rj != GH_JWT_OK) {
        CHECK(r == rj);
        return;
    }
    CHECK(info.key != NULL && key_fits(info.key, info.alg));
    CHECK(info.payload_b64.ptr >= tok.ptr &&
          info.payload_b64.ptr + info.payload_b64.len <= tok.ptr + size);
    if (r != GH_JWT_OK) {
        CHECK(r >= GH_JWT_BAD_PAYLOAD && r <= GH_JWT_WRONG_AUDIENCE);
        return;
    }
    CHECK(out.alg == info.alg);
    check_str(out.kid, sizeof(out.kid));
    check_str(out.tenant, sizeof(out.tenant));
    check_str(out.subject, sizeof(out.subject));
    check_str(out.jti, sizeof(out.jti));
    check_str(out.scopes, sizeof(out.scopes));
    CHECK(out.tenant[0] != '\0' && out.nroles <= GH_JWT_ROLES_MAX);
    for (size_t i = 0; i < out.nroles; i++)
        check_str(out.roles[i], sizeof(out.roles[i]));
}

/* jwt.c's JSON reader against jansson: what jansson accepts (duplicates
 * refused at every level) we accept unless a limit of ours is hit; what we
 * accept, jansson accepts too, or refuses for reasons outside our contract
 * (integers beyond long long, duplicates below the top level). Top-level
 * strings and integers must read the same. */
static void reader_vs_jansson(const uint8_t *data, size_t size, enum jres r, const struct jobj *o)
{
    json_error_t e;
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &e), *lax;

    /* jansson 2.14 takes a raw NUL right after a number ("1\0,"); RFC 8259
     * does not, nor do we. */
    if (json_is_object(j) && memchr(data, 0, size) == NULL) CHECK(r == JR_OK || r == JR_LIMIT);
    if (j == NULL && r == JR_OK) {
        lax = json_loadb((const char *)data, size, 0, &e);
        /* Refused only for a nested duplicate: the top level has no dup. */
        if (lax != NULL)
            CHECK(json_object_size(lax) == o->n);
        else
            CHECK(strstr(e.text, "too big") != NULL || strstr(e.text, "overflow") != NULL);
        json_decref(lax);
    }
    if (json_is_object(j) && r == JR_OK) {
        CHECK(json_object_size(j) == o->n);
        for (size_t i = 0; i < o->n; i++) {
            char name[JSON_MAX_NAME], val[8192];
            size_t nlen, vlen;
            json_t *jv;
            CHECK(junescape(o->m[i].name, o->m[i].name_esc, name, sizeof(name), &nlen));
            jv = json_object_getn(j, name, nlen);
            CHECK(jv != NULL);
            if (o->m[i].val.type == J_STRING) {
                CHECK(json_is_string(jv));
                if (junescape(o->m[i].val.raw, o->m[i].val.esc, val, sizeof(val), &vlen))
                    CHECK(vlen == json_string_length(jv) &&
                          memcmp(val, json_string_value(jv), vlen) == 0);
            } else if (json_is_integer(jv)) {
                int64_t t;
                CHECK(o->m[i].val.type == J_NUMBER);
                if (jnum_int(o->m[i].val.raw, &t)) CHECK(t == (int64_t)json_integer_value(jv));
            }
        }
    }
    json_decref(j);
}

static void as_claims(const uint8_t *data, size_t size)
{
    struct jobj c;
    struct gh_jwt_claims out;
    enum gh_jwt_result r;
    enum jres jr = jobj_read(data, size, &c);

    reader_vs_jansson(data, size, jr, &c);
    if (jr != JR_OK) return;
    memset(&out, 0, sizeof(out));
    if ((r = check_times(verifier, &c, NOW, &out)) == GH_JWT_OK &&
        (r = check_iss_aud(verifier, &c, &out)) == GH_JWT_OK)
        r = map_claims(verifier, &c, &out);
    if (r == GH_JWT_OK) {
        check_str(out.tenant, sizeof(out.tenant));
        check_str(out.subject, sizeof(out.subject));
        check_str(out.jti, sizeof(out.jti));
        check_str(out.scopes, sizeof(out.scopes));
        CHECK(out.nroles <= GH_JWT_ROLES_MAX);
        for (size_t i = 0; i < out.nroles; i++)
            CHECK(gh_jwt_claims_has_role(&out, out.roles[i], strlen(out.roles[i])));
        /* Every mapped scope is found again. */
        for (const char *p = out.scopes; *p;) {
            const char *sp = strchr(p, ' ');
            size_t n = sp ? (size_t)(sp - p) : strlen(p);
            CHECK(gh_jwt_claims_has_scope(&out, p, n));
            p += n + (sp ? 1 : 0);
        }
    } else {
        CHECK(out.failed_claim != NULL);
    }
}

static void as_jwks(const uint8_t *data, size_t size)
{
    struct gh_err err;
    struct gh_jwks *set = gh_jwks_parse((const char *)data, size, &err), *again;
    char *text;

    if (set == NULL) {
        CHECK(strncmp(err.msg, "jwks: ", 6) == 0);
        return;
    }
    text = gh_jwks_to_json(set, &err);
    CHECK(text != NULL);
    again = gh_jwks_parse(text, strlen(text), &err);
    CHECK(again != NULL && again->nkeys == set->nkeys && again->nskipped == 0);
    for (size_t i = 0; i < set->nkeys; i++)
        CHECK(EVP_PKEY_eq(set->keys[i].pkey, again->keys[i].pkey) == 1);
    free(text);
    gh_jwks_release(again);
    gh_jwks_release(set);
}

static void b64_canonical(const uint8_t *data, size_t size)
{
    unsigned char dec[4096];
    char enc[6000];
    size_t n;

    if (size > 5000 || gh_b64url_decode((const char *)data, size, dec, sizeof(dec), &n) != GH_OK)
        return;
    CHECK(gh_b64url_encode(dec, n, enc, sizeof(enc)) == size);
    CHECK(memcmp(enc, data, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 20000) return 0;
    as_token(data, size);
    as_claims(data, size);
    as_jwks(data, size);
    b64_canonical(data, size);
    return 0;
}
