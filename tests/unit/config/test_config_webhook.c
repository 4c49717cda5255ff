/* Tests of the route key `webhook_verify` in src/config/config.c: defaults,
 * rotation lists, secrets from the environment, and errors with their
 * file:line:col (kept apart from test_config.c, which other keys share). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "hooks/inbound.h"

#define HEAD                                                                                       \
    "listen: [{address: \"127.0.0.1:8080\"}]\n"                                                    \
    "upstreams: {app: {endpoints: [\"127.0.0.1:9000\"]}}\n"                                        \
    "routes:\n"                                                                                    \
    "  - path: /hook\n"                                                                            \
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
    const struct gh_config_webhook_verify *w;
    (void)state;

    assert_int_equal(load(HEAD "    webhook_verify: {format: github, secret: \"It's a Secret to "
                               "Everybody\"}\n",
                          &cfg, &err),
                     GH_OK);
    w = &cfg->routes[0].webhook_verify;
    assert_true(w->enabled);
    assert_int_equal(w->format_id, GH_WH_GITHUB);
    assert_string_equal(w->secret, "It's a Secret to Everybody");
    assert_int_equal(w->nsecrets, 0);
    assert_int_equal(w->tolerance_ms, 300000);
    assert_int_equal(w->replay_window_ms, 600000);
    assert_int_equal(w->max_body, 1 << 20);
    assert_int_equal(cfg->inbound_webhooks.replay_keys, 262144);
    /* The literal is warned about, offering only what this key takes. */
    assert_int_equal(cfg->nwarnings, 1);
    assert_string_equal(cfg->warnings[0].msg,
                        "literal secret in routes[0].webhook_verify.secret; use env:NAME or "
                        "file:PATH");
    gh_config_free(cfg);

    /* A route without the key verifies nothing. */
    assert_int_equal(load(HEAD, &cfg, &err), GH_OK);
    assert_false(cfg->routes[0].webhook_verify.enabled);
    gh_config_free(cfg);
}

static void test_rotation_and_env(void **state)
{
    struct gh_config *cfg;
    struct gh_err err;
    const struct gh_config_webhook_verify *w;
    (void)state;

    setenv("GH_TEST_WHSEC", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
    assert_int_equal(
        load(HEAD
             "    webhook_verify:\n"
             "      format: standard\n"
             "      secrets: [env:GH_TEST_WHSEC, \"whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24=\"]\n"
             "      tolerance: 2m\n"
             "      max_body: 64KiB\n",
             &cfg, &err),
        GH_OK);
    w = &cfg->routes[0].webhook_verify;
    assert_int_equal(w->format_id, GH_WH_STANDARD);
    assert_null(w->secret);
    assert_int_equal(w->nsecrets, 2);
    assert_string_equal(w->secrets[0], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_int_equal(w->tolerance_ms, 120000);
    assert_int_equal(w->max_body, 65536);
    gh_config_free(cfg);
}

/* inbound_webhooks.replay_store: Redis by default where `redis:` is set. */
static void test_replay_store(void **state)
{
    static const struct {
        const char *yaml;
        bool redis, deny;
    } cases[] = {
        {HEAD, false, false},
        {HEAD "redis: {url: \"redis://127.0.0.1:6379\"}\n", true, false},
        {HEAD "redis: {url: \"redis://127.0.0.1:6379\"}\n"
              "inbound_webhooks: {replay_store: local}\n",
         false, false},
        {HEAD "redis: {url: \"redis://127.0.0.1:6379\"}\n"
              "inbound_webhooks: {replay_store: redis, on_redis_error: deny}\n",
         true, true},
        {HEAD "inbound_webhooks: {replay_store: local, on_redis_error: local}\n", false, false},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gh_config *cfg;
        struct gh_err err;
        if (load(cases[i].yaml, &cfg, &err) != GH_OK) fail_msg("case %zu: %s", i, err.msg);
        if (cfg->inbound_webhooks.replay_redis != cases[i].redis ||
            cfg->inbound_webhooks.redis_deny != cases[i].deny)
            fail_msg("case %zu: replay_redis %d redis_deny %d", i,
                     cfg->inbound_webhooks.replay_redis, cfg->inbound_webhooks.redis_deny);
        gh_config_free(cfg);
    }
}

struct bad {
    const char *yaml;
    int line, col;
    const char *msg;
};

static void test_bad(void **state)
{
    static const struct bad cases[] = {
        {HEAD "    webhook_verify: {secret: \"0123456789abcdef0\"}\n", 6, 21, "format is required"},
        {HEAD "    webhook_verify: {format: gitlab, secret: \"0123456789abcdef0\"}\n", 6, 30,
         "must be one of standard, github, stripe"},
        {HEAD "    webhook_verify: {format: stripe}\n", 6, 21, "needs a secret"},
        {HEAD "    webhook_verify: {format: stripe, secret: short}\n", 6, 46,
         "a secret must have at least 16 bytes"},
        {HEAD "    webhook_verify: {format: standard, secret: \"whsec_not*base64*at*all\"}\n", 6,
         21, "secret 1 is not whsec_ followed by base64"},
        {HEAD "    webhook_verify: {format: github, secrets: [\"0123456789abcdef0\", "
              "\"0123456789abcdef1\", \"0123456789abcdef2\", \"0123456789abcdef3\"], secret: "
              "\"0123456789abcdef4\"}\n",
         6, 21, "at most 4 secrets"},
        {HEAD "    webhook_verify: {format: github, secret: \"0123456789abcdef0\", max_body: "
              "1GiB}\n",
         6, 77, "in routes[0].webhook_verify.max_body"},
        {HEAD
         "    webhook_verify: {format: stripe, secret: \"0123456789abcdef0\", tolerance: 0s}\n",
         6, 78, "in routes[0].webhook_verify.tolerance"},
        {HEAD "inbound_webhooks: {replay_keys: 100}\n", 6, 33,
         "in inbound_webhooks.replay_keys: must be between 2048 and"},
        {HEAD "inbound_webhooks: {replay_store: redis}\n", 6, 34,
         "in inbound_webhooks.replay_store: `replay_store: redis` needs a top-level `redis:"},
        {HEAD "inbound_webhooks: {replay_store: memcached}\n", 6, 34,
         "must be one of local, redis"},
        {HEAD "redis: {url: \"redis://127.0.0.1:6379\"}\n"
              "inbound_webhooks: {on_redis_error: allow}\n",
         7, 36, "must be one of local, deny"},
        {HEAD "    webhook_verify: {format: stripe, secrets: []}\n", 6, 47,
         "must have at least 1 entry"},
        {HEAD "    webhook_verify: {format: stripe, secret: env:GH_TEST_NOT_SET_ANYWHERE}\n", 6, 46,
         "environment variable GH_TEST_NOT_SET_ANYWHERE is not set"},
        {HEAD "    webhook_verify: {format: stripe, secret: \"env:\"}\n", 6, 46,
         "env:NAME needs the variable's name"},
        /* Checked as the file is read: no sealed secret yet (it read as
         * missing, "needs a secret"). */
        {HEAD "    webhook_verify: {format: stripe, secret: secret:hook-secret}\n", 6, 46,
         "secret:NAME cannot be used here (the value is checked as the file is read"},
        {HEAD "    webhook_verify: {format: stripe, secrets: [secret:hook-secret]}\n", 6, 48,
         "in routes[0].webhook_verify.secrets[0]: secret:NAME cannot be used here"},
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
        /* The message never shows a secret. */
        assert_null(strstr(buf, "0123456789abcdef"));
        assert_null(strstr(buf, "not*base64"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_rotation_and_env),
        cmocka_unit_test(test_replay_store),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
