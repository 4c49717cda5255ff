/* Tests of src/hooks/replay_redis.c without a server: the keys are the same
 * digests Python's hashlib gives (so every node, whatever its build, names a
 * message alike), cut inputs and long prefixes stay bounded, and replies map
 * to new / seen / unavailable. The scripts themselves run against a real
 * Redis in tests/integration/test_webhook_replay_redis.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "hooks/replay_redis.h"

static const char *key_of(const char *prefix, const char *name, size_t nlen, const void *k,
                          size_t klen, char out[GH_REPLAY_REDIS_KEY])
{
    uint8_t d[GH_REPLAY_REDIS_DIGEST];
    gh_replay_redis_digest(name, nlen, k, klen, d);
    gh_replay_redis_key(prefix, d, out);
    return out;
}

static void test_keys_are_truncated_sha256(void **state)
{
    static const struct {
        const char *prefix, *name, *key;
        size_t nlen, klen;
        const char *want; /* python3: hashlib.sha256(name + b"\0" + key).hexdigest()[:32] */
    } cases[] = {
        {"gh:", "std", "0msg_1", 3, 6, "gh:replay:5fa05adfc79ea8dd4d4d938649c2fd47"},
        {NULL, "", "", 0, 0, "replay:6e340b9cffb37a989ca544e6bb780a2c"},
    };
    char out[GH_REPLAY_REDIS_KEY];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(
            key_of(cases[i].prefix, cases[i].name, cases[i].nlen, cases[i].key, cases[i].klen, out),
            cases[i].want);
}

static void test_long_inputs_are_cut_and_bounded(void **state)
{
    char name[300], key[600], prefix[200], a[GH_REPLAY_REDIS_KEY], b[GH_REPLAY_REDIS_KEY];
    size_t n;
    (void)state;

    memset(name, 'r', sizeof(name));
    memset(key, 'k', sizeof(key));
    memset(prefix, 'p', sizeof(prefix) - 1);
    prefix[sizeof(prefix) - 1] = '\0';
    /* The name is cut at 256 bytes, the key at 511 - 256. */
    assert_string_equal(key_of("", name, sizeof(name), key, sizeof(key), a),
                        "replay:3dd0a14ae6833dc187c05200cd861f56");
    assert_string_equal(key_of("", name, 256, key, 255, b), a);
    /* A long prefix is cut too: the key always fits. */
    n = strlen(key_of(prefix, "r", 1, "k", 1, a));
    assert_int_equal(n, GH_REPLAY_REDIS_PREFIX + 7 + 32);
    assert_true(n < GH_REPLAY_REDIS_KEY);
}

static void test_results(void **state)
{
    redisReply ok = {.type = REDIS_REPLY_STATUS, .str = "OK", .len = 2};
    redisReply other = {.type = REDIS_REPLY_STATUS, .str = "QUEUED", .len = 6};
    redisReply nil = {.type = REDIS_REPLY_NIL};
    redisReply one = {.type = REDIS_REPLY_INTEGER, .integer = 1};
    redisReply zero = {.type = REDIS_REPLY_INTEGER, .integer = 0};
    redisReply two = {.type = REDIS_REPLY_INTEGER, .integer = 2};
    redisReply err = {.type = REDIS_REPLY_ERROR, .str = "READONLY", .len = 8};
    (void)state;

    assert_int_equal(gh_replay_redis_result(&ok), 1);
    assert_int_equal(gh_replay_redis_result(&one), 1);
    assert_int_equal(gh_replay_redis_result(&nil), 0);
    assert_int_equal(gh_replay_redis_result(&zero), 0);
    assert_int_equal(gh_replay_redis_result(&other), -1);
    assert_int_equal(gh_replay_redis_result(&two), -1);
    assert_int_equal(gh_replay_redis_result(&err), -1);
    assert_int_equal(gh_replay_redis_result(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_are_truncated_sha256),
        cmocka_unit_test(test_long_inputs_are_cut_and_bounded),
        cmocka_unit_test(test_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
