/* Tests of the route key `idempotency` and the top-level `idempotency:`
 * block in src/config/config.c: defaults, the store's resolution, and
 * errors with their file:line:col. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

#define HEAD                                                                                       \
    "listen: [{address: \"127.0.0.1:8080\"}]\n"                                                    \
    "upstreams: {app: {endpoints: [\"127.0.0.1:9000\"]}}\n"                                        \
    "routes:\n"                                                                                    \
    "  - path: /pay\n"                                                                             \
    "    upstream: app\n"

static int load(const char *yaml, struct gh_config **cfg, struct gh_err *err)
{
    memset(err, 0, sizeof(*err));
    *cfg = NULL;
    return gh_config_load_buffer("gatehouse.yaml", yaml, strlen(yaml), cfg, err);
}

static void test_defaults(void **state)
{
    struct gh_config *cfg;
    struct gh_err err;
    const struct gh_config_route_idempotency *ri;
    (void)state;

    assert_int_equal(load(HEAD, &cfg, &err), GH_OK);
    assert_false(cfg->routes[0].idempotency.enabled);
    assert_int_equal(cfg->idempotency.keys, 16384);
    assert_int_equal(cfg->idempotency.max_memory, 64 << 20);
    assert_false(cfg->idempotency.redis);
    assert_true(cfg->idempotency.redis_deny); /* on_redis_error: deny */
    gh_config_free(cfg);

    assert_int_equal(load(HEAD "    idempotency: {}\n", &cfg, &err), GH_OK);
    ri = &cfg->routes[0].idempotency;
    assert_true(ri->enabled);
    assert_int_equal(ri->ttl_ms, 86400000);
    assert_int_equal(ri->methods, GH_METHOD_POST | GH_METHOD_PATCH);
    assert_false(ri->required);
    assert_int_equal(ri->max_body, 1 << 20);
    assert_int_equal(ri->max_response, 1 << 20);
    gh_config_free(cfg);

    assert_int_equal(load(HEAD "    idempotency: {ttl: 10m, methods: [PUT], required: true, "
                               "max_body: 4KiB, max_response: 512KiB}\n",
                          &cfg, &err),
                     GH_OK);
    ri = &cfg->routes[0].idempotency;
    assert_int_equal(ri->ttl_ms, 600000);
    assert_int_equal(ri->methods, GH_METHOD_PUT);
    assert_true(ri->required);
    assert_int_equal(ri->max_body, 4096);
    assert_int_equal(ri->max_response, 512 << 10);
    gh_config_free(cfg);
}

/* idempotency.store: Redis by default where `redis:` is set. */
static void test_store(void **state)
{
    static const struct {
        const char *yaml;
        bool redis, deny;
    } cases[] = {
        /* on_redis_error: deny by default (a duplicate never reaches the
         * upstream while Redis is out of reach). */
        {HEAD "redis: {url: \"redis://127.0.0.1:6379\"}\n", true, true},
        {HEAD "redis: {url: \"redis://127.0.0.1:6379\"}\n"
              "idempotency: {store: local, on_redis_error: local}\n",
         false, false},
        {HEAD "redis: {url: \"redis://127.0.0.1:6379\"}\n"
              "idempotency: {store: redis, on_redis_error: deny}\n",
         true, true},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gh_config *cfg;
        struct gh_err err;
        if (load(cases[i].yaml, &cfg, &err) != GH_OK) fail_msg("case %zu: %s", i, err.msg);
        if (cfg->idempotency.redis != cases[i].redis ||
            cfg->idempotency.redis_deny != cases[i].deny)
            fail_msg("case %zu: redis %d deny %d", i, cfg->idempotency.redis,
                     cfg->idempotency.redis_deny);
        gh_config_free(cfg);
    }
}

static void test_bad(void **state)
{
    static const struct {
        const char *yaml;
        int line, col;
        const char *msg;
    } cases[] = {
        {HEAD "    idempotency: {ttl: 500ms}\n", 6, 24, "in routes[0].idempotency.ttl"},
        {HEAD "    idempotency: {methods: [BREW]}\n", 6, 29, "BREW"},
        {HEAD "    idempotency: {max_response: 2MiB}\n", 6, 33,
         "in routes[0].idempotency.max_response"},
        {HEAD "    idempotency: {required: maybe}\n", 6, 29, "in routes[0].idempotency.required"},
        {HEAD "    idempotency: {color: blue}\n", 6, 19, "color"},
        {HEAD "    idempotency: true\n", 6, 18, "expected a mapping"},
        {HEAD "idempotency: {store: redis}\n", 6, 22,
         "in idempotency.store: `store: redis` needs a top-level `redis:"},
        {HEAD "idempotency: {keys: 10}\n", 6, 21, "in idempotency.keys"},
        {HEAD "redis: {url: \"redis://127.0.0.1:6379\"}\nidempotency: {on_redis_error: allow}\n", 7,
         31, "must be one of local, deny"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gh_config *cfg;
        struct gh_err err;
        char buf[1024];
        if (load(cases[i].yaml, &cfg, &err) != GH_ERROR) {
            gh_config_free(cfg);
            fail_msg("case %zu loaded, but should fail with \"%s\"", i, cases[i].msg);
        }
        gh_err_format(&err, buf, sizeof(buf));
        if (err.line != cases[i].line || err.col != cases[i].col ||
            strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %zu: got %s\nwant gatehouse.yaml:%d:%d: ...%s...", i, buf, cases[i].line,
                     cases[i].col, cases[i].msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
