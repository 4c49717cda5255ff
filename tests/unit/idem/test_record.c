/* Tests of src/idem/record.c: keys are validated as the draft's printable
 * ASCII, record digests and fingerprints are the SHA-256 that Python's
 * hashlib gives (so every node, whatever its build, names a record alike),
 * Redis keys never hold the raw key, and values round-trip while malformed
 * ones are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "idem/record.h"

static void hex_of(const uint8_t d[GH_IDEM_DIGEST], char out[65])
{
    gh_idem_hex(d, GH_IDEM_DIGEST, out);
    out[64] = '\0';
}

static void test_key_validity(void **state)
{
    char k[300];
    (void)state;

    memset(k, 'a', sizeof(k));
    assert_int_equal(gh_idem_key_valid("a", 1), 1);
    assert_int_equal(gh_idem_key_valid("with space ~!", 13), 1);
    assert_int_equal(gh_idem_key_valid(k, 255), 1);
    assert_int_equal(gh_idem_key_valid(k, 256), 0);
    assert_int_equal(gh_idem_key_valid("", 0), 0);
    assert_int_equal(gh_idem_key_valid("tab\there", 8), 0);
    assert_int_equal(gh_idem_key_valid("caf\xc3\xa9", 5), 0);
    assert_int_equal(gh_idem_key_valid("del\x7f", 4), 0);
}

static void test_digest_and_fingerprint_are_sha256(void **state)
{
    uint8_t d[GH_IDEM_DIGEST];
    char hex[65];
    (void)state;

    /* python3: hashlib.sha256(b"acme\0pay\0order-1").hexdigest() */
    assert_int_equal(gh_idem_digest("acme", "pay", "order-1", 7, d), GH_OK);
    hex_of(d, hex);
    assert_string_equal(hex, "562ae68404b71e02305f3cb81f6434da3f63418c8356ffbea3e63ea46e536162");
    assert_int_equal(gh_idem_digest("", "", "", 0, d), GH_OK);
    hex_of(d, hex);
    assert_string_equal(hex, "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7");
    /* Tenants are apart: the same route and key under another tenant. */
    {
        uint8_t e[GH_IDEM_DIGEST];
        assert_int_equal(gh_idem_digest("other", "pay", "order-1", 7, e), GH_OK);
        assert_int_equal(gh_idem_digest("acme", "pay", "order-1", 7, d), GH_OK);
        assert_memory_not_equal(d, e, GH_IDEM_DIGEST);
    }
    /* hashlib.sha256(b"POST\0/v1/pay?x=1\0{}") and (b"POST\0/v1/pay\0") */
    assert_int_equal(gh_idem_fingerprint("POST", 4, "/v1/pay", 7, "x=1", 3, "{}", 2, d), GH_OK);
    hex_of(d, hex);
    assert_string_equal(hex, "4bf37ecb2beb3ba71025f14a8cf251fa4196c211b06976e0202ea19cac1e57ff");
    assert_int_equal(gh_idem_fingerprint("POST", 4, "/v1/pay", 7, "", 0, "", 0, d), GH_OK);
    hex_of(d, hex);
    assert_string_equal(hex, "1b63110e42f9b4b101efa32d3ce72cfb591ecf3e4ba04d786f24a6f0160f7560");
}

static void test_redis_key_is_the_digest_under_a_bounded_prefix(void **state)
{
    uint8_t d[GH_IDEM_DIGEST];
    char out[GH_IDEM_REDIS_KEY], prefix[200];
    size_t n;
    (void)state;

    assert_int_equal(gh_idem_digest("acme", "pay", "order-1", 7, d), GH_OK);
    n = gh_idem_redis_key("gh:", d, out);
    assert_string_equal(out,
                        "gh:idem:562ae68404b71e02305f3cb81f6434da3f63418c8356ffbea3e63ea46e536162");
    assert_int_equal(n, strlen(out));
    assert_null(strstr(out, "order-1"));
    memset(prefix, 'p', sizeof(prefix) - 1);
    prefix[sizeof(prefix) - 1] = '\0';
    n = gh_idem_redis_key(prefix, d, out);
    assert_int_equal(n, GH_IDEM_REDIS_KEY - 1);
    assert_int_equal(strlen(out), n);
    assert_int_equal(gh_idem_redis_key(NULL, d, out), 5 + 64);
}

static void test_values_round_trip(void **state)
{
    uint8_t fp[GH_IDEM_DIGEST];
    char inflight[GH_IDEM_INFLIGHT], *v;
    size_t len;
    struct gh_idem_record rec;
    static const char hdrs[] = "Content-Type: application/json\r\nETag: \"v1\"\r\n";
    static const char body[] = "{\"id\": 7}\n\0binary";
    (void)state;

    for (int i = 0; i < GH_IDEM_DIGEST; i++)
        fp[i] = (uint8_t)(i * 7);
    gh_idem_encode_inflight(fp, "0123456789abcdef0123456789abcdef", inflight);
    assert_int_equal(gh_idem_decode(inflight, sizeof(inflight), &rec), GH_OK);
    assert_false(rec.done);
    assert_memory_equal(rec.fp, fp, GH_IDEM_DIGEST);

    assert_int_equal(
        gh_idem_encode_done(fp, 201, hdrs, sizeof(hdrs) - 1, body, sizeof(body) - 1, &v, &len),
        GH_OK);
    assert_int_equal(gh_idem_decode(v, len, &rec), GH_OK);
    assert_true(rec.done);
    assert_int_equal(rec.status, 201);
    assert_memory_equal(rec.fp, fp, GH_IDEM_DIGEST);
    assert_int_equal(rec.hlen, sizeof(hdrs) - 1);
    assert_memory_equal(rec.headers, hdrs, rec.hlen);
    assert_int_equal(rec.blen, sizeof(body) - 1);
    assert_memory_equal(rec.body, body, rec.blen);

    /* Cut anywhere inside its head or its header lines (a header length
     * past the end), a value is refused rather than read out of bounds. */
    {
        size_t keep = len - rec.blen;
        for (size_t cut = 0; cut < keep; cut++)
            assert_int_equal(gh_idem_decode(v, cut, &rec), GH_ERROR);
    }
    free(v);
    assert_int_equal(gh_idem_encode_done(fp, 200, "", 0, "", 0, &v, &len), GH_OK);
    assert_int_equal(gh_idem_decode(v, len, &rec), GH_OK);
    assert_int_equal(rec.blen, 0);
    v[len - 2] = '9'; /* "... 200 9\n": 9 header bytes that are not there */
    assert_int_equal(gh_idem_decode(v, len, &rec), GH_ERROR);
    free(v);
    assert_int_equal(gh_idem_encode_done(fp, 99, "", 0, "", 0, &v, &len), GH_ERROR);
    assert_int_equal(gh_idem_encode_done(fp, 200, hdrs, GH_IDEM_HEADERS_MAX + 1, "", 0, &v, &len),
                     GH_ERROR);
    assert_int_equal(gh_idem_decode("X1 nothing", 10, &rec), GH_ERROR);
    inflight[10] = 'Z'; /* not hex */
    assert_int_equal(gh_idem_decode(inflight, sizeof(inflight), &rec), GH_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_validity),
        cmocka_unit_test(test_digest_and_fingerprint_are_sha256),
        cmocka_unit_test(test_redis_key_is_the_digest_under_a_bounded_prefix),
        cmocka_unit_test(test_values_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
