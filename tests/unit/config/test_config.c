/* Tests of src/config: the loader on good and bad files (each bad one checked
 * for its line, column and message), and the duration, size and address
 * parsers, as tables of input -> expected output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "config/config.h"
#include "hooks/ssrf.h"

/* Pieces of a valid file, for bad files that differ in one place. */
#define LISTEN_OK    "listen: [{address: \"127.0.0.1:8080\"}]\n"
#define UPSTREAMS_OK "upstreams: {app: {endpoints: [\"127.0.0.1:9000\"]}}\n"
#define ROUTES_OK    "routes: [{path: /, upstream: app}]\n"
#define VALID_TAIL   LISTEN_OK UPSTREAMS_OK ROUTES_OK
/* A regular file that exists (the tests run from the repo root), for a
 * certificate, key or CA file that must be readable (only the TLS module
 * reads their contents); its nine bytes are counted in BAD_CASES' columns. */
#define READABLE_FILE "README.md"

static const char minimal_yaml[] = "workers: 1\n"
                                   "listen:\n"
                                   "  - address: 127.0.0.1:8080\n"
                                   "admin:\n"
                                   "  address: 127.0.0.1:9901\n"
                                   "upstreams:\n"
                                   "  app:\n"
                                   "    endpoints: [\"127.0.0.1:9000\"]\n"
                                   "routes:\n"
                                   "  - path: /\n"
                                   "    upstream: app\n";

static struct gh_config *load_ok(const char *yaml)
{
    struct gh_config *cfg = NULL;
    struct gh_err err;
    char buf[1024];

    memset(&err, 0, sizeof(err));
    if (gh_config_load_buffer("test.yaml", yaml, strlen(yaml), &cfg, &err) != GH_OK)
        fail_msg("unexpected error: %s", gh_err_format(&err, buf, sizeof(buf)));
    assert_non_null(cfg);
    return cfg;
}

/* ---- Good files ---------------------------------------------------------- */

static void test_minimal_defaults(void **state)
{
    struct gh_config *cfg = load_ok(minimal_yaml);
    const struct gh_config_upstream *up;
    const struct gh_config_route *r;

    assert_string_equal(cfg->file, "test.yaml");
    assert_int_equal(cfg->workers, 1);
    assert_string_equal(cfg->log_level, "info");
    assert_int_equal(cfg->shutdown_timeout_ms, 10000);

    assert_int_equal(cfg->nlistens, 1);
    assert_string_equal(cfg->listens[0].addr.text, "127.0.0.1:8080");
    assert_string_equal(cfg->listens[0].addr.host, "127.0.0.1");
    assert_int_equal(cfg->listens[0].addr.port, 8080);
    assert_int_equal(cfg->listens[0].addr.ss.ss_family, AF_INET);
    assert_false(cfg->listens[0].tls);
    assert_int_equal(cfg->listens[0].ncerts, 0);
    assert_int_equal(cfg->listens[0].pos.line, 3);
    assert_int_equal(cfg->listens[0].pos.col, 5);

    assert_int_equal(cfg->metrics.top_tenants, 20);
    assert_false(cfg->metrics.require_auth);

    assert_true(cfg->admin.enabled);
    assert_string_equal(cfg->admin.addr.text, "127.0.0.1:9901");
    assert_int_equal(cfg->admin.addr.port, 9901);

    assert_int_equal(cfg->nupstreams, 1);
    up = &cfg->upstreams[0];
    assert_string_equal(up->name, "app");
    assert_int_equal(up->nendpoints, 1);
    assert_string_equal(up->endpoints[0].text, "127.0.0.1:9000");
    assert_int_equal(up->endpoints[0].port, 9000);
    assert_int_equal(up->connect_timeout_ms, 2000);
    assert_int_equal(up->response_timeout_ms, 30000);
    assert_int_equal(up->idle_timeout_ms, 60000);
    assert_int_equal(up->request_timeout_ms, 0);
    assert_int_equal(up->keepalive, 512);
    assert_int_equal(up->keepalive_timeout_ms, 60000);
    assert_int_equal(up->max_connections, 0);
    assert_false(up->tls.enabled);
    assert_true(up->tls.verify);
    assert_null(up->tls.ca_file);
    assert_null(up->tls.sni);
    assert_null(up->tls.cert_file);
    assert_null(up->tls.key_file);
    assert_int_equal(up->pos.line, 7);
    assert_int_equal(up->pos.col, 3);

    assert_int_equal(cfg->nroutes, 1);
    r = &cfg->routes[0];
    assert_string_equal(r->name, "/");
    assert_null(r->host);
    assert_false(r->host_wildcard);
    assert_string_equal(r->path, "/");
    assert_int_equal(r->methods, 0);
    assert_string_equal(r->upstream, "app");
    assert_int_equal(r->upstream_index, 0);
    assert_int_equal(r->pos.line, 10);
    assert_int_equal(r->pos.col, 5);

    assert_int_equal(cfg->limits.max_request_line, 8192);
    assert_int_equal(cfg->limits.max_header_bytes, 32768);
    assert_int_equal(cfg->limits.max_headers, 100);
    assert_int_equal(cfg->limits.max_body_bytes, UINT64_C(1) << 30);
    assert_int_equal(cfg->limits.header_timeout_ms, 10000);
    assert_int_equal(cfg->limits.body_timeout_ms, 30000);
    assert_int_equal(cfg->limits.keepalive_timeout_ms, 75000);
    assert_int_equal(cfg->limits.send_timeout_ms, 60000);
    assert_int_equal(cfg->limits.keepalive_requests, 10000);
    assert_int_equal(cfg->limits.max_connections, 100000);

    assert_true(cfg->access_log.enabled);
    assert_string_equal(cfg->access_log.path, "stdout");
    gh_config_free(cfg);
}

static void test_workers_auto(void **state)
{
    struct gh_config *cfg = load_ok("workers: auto\n" VALID_TAIL);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    assert_int_equal(cfg->workers, cpus < 1 ? 1 : cpus > 1024 ? 1024 : cpus);
    gh_config_free(cfg);
    cfg = load_ok(VALID_TAIL); /* auto is the default */
    assert_int_equal(cfg->workers, cpus < 1 ? 1 : cpus > 1024 ? 1024 : cpus);
    gh_config_free(cfg);
    cfg = load_ok("workers: 1024\n" VALID_TAIL);
    assert_int_equal(cfg->workers, 1024);
    gh_config_free(cfg);
}

/* A scratch directory with a certificate and key (contents do not matter:
 * only the TLS module reads them). */
struct scratch {
    char dir[64];
    char cert[128];
    char key[128];
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void scratch_make(struct scratch *s)
{
    char certs[128];

    snprintf(s->dir, sizeof(s->dir), "/tmp/gh_config_test.XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(certs, sizeof(certs), "%s/certs", s->dir);
    assert_int_equal(mkdir(certs, 0700), 0);
    snprintf(s->cert, sizeof(s->cert), "%s/certs/site.pem", s->dir);
    snprintf(s->key, sizeof(s->key), "%s/certs/site.key", s->dir);
    write_file(s->cert, "-----BEGIN CERTIFICATE-----\n");
    write_file(s->key, "-----BEGIN PRIVATE KEY-----\n");
}

static void scratch_remove(struct scratch *s, const char *extra)
{
    char path[160];

    unlink(s->cert);
    unlink(s->key);
    if (extra != NULL) {
        snprintf(path, sizeof(path), "%s/%s", s->dir, extra);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/certs", s->dir);
    rmdir(path);
    rmdir(s->dir);
}

/* The example of the brief, with every key, as a buffer. */
static void test_full_example(void **state)
{
    static const char fmt[] =
        "workers: auto\n"
        "log_level: warn\n"
        "shutdown_timeout: 15s\n"
        "listen:\n"
        "  - address: 127.0.0.1:8080\n"
        "  - address: 0.0.0.0:8443\n"
        "    tls:\n"
        "      certificates:\n"
        "        - cert: %s\n"
        "          key: %s\n"
        "          names: [api.Example.com, \"*.example.com\"]\n"
        "admin:\n"
        "  address: 127.0.0.1:9902\n"
        "  enabled: true\n"
        "upstreams:\n"
        "  app:\n"
        "    endpoints: [\"127.0.0.1:9000\", \"127.0.0.1:9001\"]\n"
        "    connect_timeout: 3s\n"
        "    response_timeout: 31s\n"
        "    idle_timeout: 61s\n"
        "    request_timeout: 0\n"
        "    keepalive: 256\n"
        "    keepalive_timeout: 2m\n"
        "    max_connections: 7\n"
        "    tls: { enabled: false, ca_file: ca.pem, sni: app.internal, verify: true, "
        "cert: client.pem, key: client.key }\n"
        "  other:\n"
        "    endpoints: [\"localhost:9100\"]\n"
        "routes:\n"
        "  - name: api\n"
        "    host: \"*.Example.com\"\n"
        "    path: /api\n"
        "    methods: [GET, POST]\n"
        "    upstream: app\n"
        "  - host: www.example.com\n"
        "    path: /static\n"
        "    upstream: other\n"
        "limits:\n"
        "  max_request_line: 4KiB\n"
        "  max_header_bytes: 64k\n"
        "  max_headers: 50\n"
        "  max_body_size: 0\n"
        "  header_timeout: 5s\n"
        "  body_timeout: 20s\n"
        "  keepalive_timeout: 70s\n"
        "  send_timeout: 1m\n"
        "  keepalive_requests: 0\n"
        "  max_connections: 1000\n"
        "access_log:\n"
        "  enabled: false\n"
        "  path: stderr\n";
    struct scratch s;
    char yaml[4096], cwd[PATH_MAX], want[PATH_MAX + 32];
    struct gh_config *cfg;
    const struct gh_config_listen *l;
    const struct gh_config_upstream *up;

    scratch_make(&s);
    snprintf(yaml, sizeof(yaml), fmt, s.cert, s.key);
    cfg = load_ok(yaml);
    assert_non_null(getcwd(cwd, sizeof(cwd)));

    assert_string_equal(cfg->log_level, "warn");
    assert_int_equal(cfg->shutdown_timeout_ms, 15000);
    assert_int_equal(cfg->nlistens, 2);
    l = &cfg->listens[1];
    assert_true(l->tls);
    assert_int_equal(l->addr.port, 8443);
    assert_string_equal(l->addr.host, "0.0.0.0");
    assert_int_equal(l->ncerts, 1);
    assert_string_equal(l->certs[0].cert_file, s.cert);
    assert_string_equal(l->certs[0].key_file, s.key);
    assert_int_equal(l->certs[0].nnames, 2);
    assert_string_equal(l->certs[0].names[0], "api.example.com");
    assert_string_equal(l->certs[0].names[1], "*.example.com");
    assert_int_equal(l->certs[0].pos.line, 9);
    assert_int_equal(l->certs[0].pos.col, 11);
    assert_int_equal(cfg->admin.addr.port, 9902);

    assert_int_equal(cfg->nupstreams, 2);
    up = &cfg->upstreams[0];
    assert_int_equal(up->nendpoints, 2);
    assert_int_equal(up->endpoints[1].port, 9001);
    assert_int_equal(up->connect_timeout_ms, 3000);
    assert_int_equal(up->response_timeout_ms, 31000);
    assert_int_equal(up->idle_timeout_ms, 61000);
    assert_int_equal(up->request_timeout_ms, 0);
    assert_int_equal(up->keepalive, 256);
    assert_int_equal(up->keepalive_timeout_ms, 120000);
    assert_int_equal(up->max_connections, 7);
    assert_false(up->tls.enabled);
    assert_true(up->tls.verify);
    assert_string_equal(up->tls.sni, "app.internal");
    /* load_buffer: relative paths are relative to the working directory. */
    snprintf(want, sizeof(want), "%s/ca.pem", cwd);
    assert_string_equal(up->tls.ca_file, want);
    snprintf(want, sizeof(want), "%s/client.key", cwd);
    assert_string_equal(up->tls.key_file, want);
    assert_string_equal(cfg->upstreams[1].name, "other");
    assert_string_equal(cfg->upstreams[1].endpoints[0].host, "localhost");

    assert_int_equal(cfg->nroutes, 2);
    assert_string_equal(cfg->routes[0].name, "api");
    assert_string_equal(cfg->routes[0].host, ".example.com");
    assert_true(cfg->routes[0].host_wildcard);
    assert_string_equal(cfg->routes[0].path, "/api");
    assert_int_equal(cfg->routes[0].methods, GH_METHOD_GET | GH_METHOD_POST);
    assert_int_equal(cfg->routes[0].upstream_index, 0);
    assert_string_equal(cfg->routes[1].name, "www.example.com/static");
    assert_false(cfg->routes[1].host_wildcard);
    assert_int_equal(cfg->routes[1].upstream_index, 1);

    assert_int_equal(cfg->limits.max_request_line, 4096);
    assert_int_equal(cfg->limits.max_header_bytes, 65536);
    assert_int_equal(cfg->limits.max_headers, 50);
    assert_int_equal(cfg->limits.max_body_bytes, 0);
    assert_int_equal(cfg->limits.header_timeout_ms, 5000);
    assert_int_equal(cfg->limits.body_timeout_ms, 20000);
    assert_int_equal(cfg->limits.keepalive_timeout_ms, 70000);
    assert_int_equal(cfg->limits.send_timeout_ms, 60000);
    assert_int_equal(cfg->limits.keepalive_requests, 0);
    assert_int_equal(cfg->limits.max_connections, 1000);
    assert_false(cfg->access_log.enabled);
    assert_string_equal(cfg->access_log.path, "stderr");
    gh_config_free(cfg);
    scratch_remove(&s, NULL);
}

static void test_route_defaults(void **state)
{
    struct gh_config *cfg =
        load_ok(LISTEN_OK UPSTREAMS_OK "routes:\n"
                                       "  - {host: \"*.Example.COM\", path: /v1, upstream: app}\n"
                                       "  - {host: API.example.com, upstream: app}\n"
                                       "  - {path: /x, methods: [DELETE, PATCH, OPTIONS, TRACE,"
                                       " HEAD, PUT], upstream: app}\n"
                                       "  - {path: /x, upstream: app}\n");

    assert_string_equal(cfg->routes[0].name, "*.example.com/v1");
    assert_string_equal(cfg->routes[0].host, ".example.com");
    assert_true(cfg->routes[0].host_wildcard);
    assert_string_equal(cfg->routes[1].name, "api.example.com/");
    assert_string_equal(cfg->routes[1].host, "api.example.com");
    assert_string_equal(cfg->routes[1].path, "/");
    assert_string_equal(cfg->routes[2].name, "/x");
    assert_int_equal(cfg->routes[2].methods, GH_METHOD_DELETE | GH_METHOD_PATCH |
                                                 GH_METHOD_OPTIONS | GH_METHOD_TRACE |
                                                 GH_METHOD_HEAD | GH_METHOD_PUT);
    assert_int_equal(cfg->routes[3].methods, 0); /* differs from routes[2]: not a duplicate */
    gh_config_free(cfg);
}

/* `audit:` at the top and on routes: defaults, `true`, and the mapping. */
static void test_webhooks_keys(void **state)
{
    struct gh_config *cfg = load_ok(VALID_TAIL);
    const struct gh_config_webhooks *w = &cfg->webhooks;
    static const uint64_t dflt[] = {0,       5000,     300000,   1800000,
                                    7200000, 18000000, 36000000, 36000000};
    (void)state;

    assert_int_equal(w->nallow_private, 0);
    assert_int_equal(w->timeout_ms, 15000);
    assert_int_equal(w->nschedule_ms, 8);
    assert_memory_equal(w->schedule_ms, dflt, sizeof(dflt));
    assert_true(w->jitter > 0.099 && w->jitter < 0.101);
    assert_true(w->disable_after_ms == 5ull * 86400000);
    assert_int_equal(w->concurrency, 64);
    assert_true(w->rotation_grace_ms == 86400000);
    assert_int_equal(w->max_payload, 64 * 1024);
    assert_true(w->retention_ms == 30ull * 86400000);
    gh_config_free(cfg);

    cfg = load_ok(VALID_TAIL "webhooks:\n"
                             "  allow_private: [\"127.0.0.1\", \"10.0.0.0/8\", \"::1\"]\n"
                             "  schedule: [0s, 200ms, 400ms]\n"
                             "  timeout: 2s\n"
                             "  jitter: 0\n"
                             "  concurrency: 8\n"
                             "  retention: 7d\n");
    w = &cfg->webhooks;
    assert_true(w->retention_ms == 7ull * 86400000);
    assert_int_equal(w->nallow_private, 3);
    assert_int_equal(w->allow[1].bits, 8);
    assert_int_equal(w->nschedule_ms, 3);
    assert_true(w->schedule_ms[0] == 0 && w->schedule_ms[1] == 200 && w->schedule_ms[2] == 400);
    assert_int_equal(w->timeout_ms, 2000);
    assert_int_equal(w->concurrency, 8);
    gh_config_free(cfg);
}

static void test_audit_keys(void **state)
{
    struct gh_config *cfg = load_ok(VALID_TAIL);
    (void)state;

    assert_true(cfg->audit.enabled);
    assert_false(cfg->audit.strict);
    assert_int_equal(cfg->audit.queue_size, 4096);
    assert_int_equal(cfg->audit.batch_max, 512);
    assert_int_equal(cfg->audit.checkpoint_every, 1000);
    assert_int_equal(cfg->audit.checkpoint_interval_ms, 60000);
    assert_int_equal(cfg->audit.param_prefix, 4);
    assert_true(cfg->audit.events.auth_failures && cfg->audit.events.admin &&
                cfg->audit.events.limits && cfg->audit.events.reloads);
    assert_false(cfg->routes[0].audit.enabled);
    assert_true(cfg->audit.retention_ms == 90ull * 86400000);
    assert_int_equal(cfg->audit.archive_interval_ms, 3600000);
    assert_non_null(strstr(cfg->audit.archive_dir, "audit-archive"));
    gh_config_free(cfg);

    cfg = load_ok(VALID_TAIL
                  "plans: {gold: {audit_retention: 365d}, silver: {}}\n"
                  "audit: {retention: 30d, archive_dir: /var/arc, archive_interval: 5m}\n");
    assert_true(cfg->plans[0].audit_retention_ms == 365ull * 86400000);
    assert_true(cfg->plans[1].audit_retention_ms == 0);
    assert_true(cfg->audit.retention_ms == 30ull * 86400000);
    assert_string_equal(cfg->audit.archive_dir, "/var/arc");
    assert_int_equal(cfg->audit.archive_interval_ms, 300000);
    gh_config_free(cfg);

    cfg = load_ok(LISTEN_OK UPSTREAMS_OK
                  "audit: {mode: strict, checkpoint_interval: 5s, events: {limits: false}}\n"
                  "routes:\n"
                  "  - {path: /a, upstream: app, audit: true}\n"
                  "  - {path: /b, upstream: app, audit: false}\n"
                  "  - path: /c\n    upstream: app\n"
                  "    audit: {methods: [POST, DELETE], path_prefix: /c/admin, mode: async}\n"
                  "  - {path: /d, upstream: app, audit: {}}\n");
    assert_true(cfg->audit.strict);
    assert_int_equal(cfg->audit.checkpoint_interval_ms, 5000);
    assert_false(cfg->audit.events.limits);
    assert_true(cfg->audit.events.admin);
    assert_true(cfg->routes[0].audit.enabled);
    assert_int_equal(cfg->routes[0].audit.strict, -1);
    assert_false(cfg->routes[1].audit.enabled);
    assert_true(cfg->routes[2].audit.enabled);
    assert_int_equal(cfg->routes[2].audit.methods, GH_METHOD_POST | GH_METHOD_DELETE);
    assert_string_equal(cfg->routes[2].audit.path_prefix, "/c/admin");
    assert_int_equal(cfg->routes[2].audit.strict, 0);
    assert_true(cfg->routes[3].audit.enabled);
    assert_int_equal(cfg->routes[3].audit.strict, -1);
    assert_null(cfg->routes[3].audit.path_prefix);
    gh_config_free(cfg);
}

/* store: the SQLite default, or PostgreSQL alone (the default file dropped). */
static void test_store_engines(void **state)
{
    struct gh_config *cfg = load_ok(VALID_TAIL);

    assert_non_null(cfg->store.sqlite);
    assert_null(cfg->store.postgres);
    gh_config_free(cfg);
    cfg = load_ok(VALID_TAIL "store:\n  postgres: \"postgresql://gh@127.0.0.1:5432/gh\"\n");
    assert_null(cfg->store.sqlite);
    assert_string_equal(cfg->store.postgres, "postgresql://gh@127.0.0.1:5432/gh");
    assert_int_equal(cfg->store.pool, 8);
    gh_config_free(cfg);
    cfg = load_ok(VALID_TAIL "store: {postgres: \"postgres://gh@db1,db2/gh\", pool: 2}\n");
    assert_int_equal(cfg->store.pool, 2);
    assert_int_equal(cfg->nwarnings, 0); /* no password: nothing secret in the file */
    gh_config_free(cfg);
    /* A password in the URL, either way libpq takes one: `gatehouse check`
     * warns, as for any literal secret. */
    cfg = load_ok(VALID_TAIL "store: {postgres: \"postgresql://gh:pw@db1/gh\"}\n");
    assert_int_equal(cfg->nwarnings, 1);
    assert_non_null(strstr(cfg->warnings[0].msg, "literal secret in store.postgres"));
    /* The store's URL opens the secrets, so the warning offers only what
     * may stand there (secret:NAME is refused: test_secret_refs). */
    assert_non_null(strstr(cfg->warnings[0].msg, "; use env:NAME or file:PATH"));
    assert_null(strstr(cfg->warnings[0].msg, "secret:NAME"));
    gh_config_free(cfg);
    cfg = load_ok(VALID_TAIL "store: {postgres: \"postgresql://gh@db1/gh?password=pw\"}\n");
    assert_int_equal(cfg->nwarnings, 1);
    gh_config_free(cfg);
}

static void test_upstream_tls_block(void **state)
{
    struct gh_config *cfg = load_ok(
        LISTEN_OK ROUTES_OK "upstreams:\n"
                            "  app: {endpoints: [\"127.0.0.1:9000\"], tls: {sni: a.b}}\n"
                            "  b: {endpoints: [\"127.0.0.1:9001\"], tls: {verify: no}}\n"
                            "  c: {endpoints: [\"127.0.0.1:9002\"], tls: {enabled: off,"
                            " ca_file: /nonexistent/ca.pem}}\n"
                            "  d: {endpoints: [\"127.0.0.1:9003\"], tls: {ca_file: " READABLE_FILE
                            ", cert: " READABLE_FILE ", key: " READABLE_FILE "}}\n");

    /* A tls block means TLS unless it says enabled: false. */
    assert_true(cfg->upstreams[0].tls.enabled);
    assert_true(cfg->upstreams[0].tls.verify);
    assert_string_equal(cfg->upstreams[0].tls.sni, "a.b");
    assert_true(cfg->upstreams[1].tls.enabled);
    assert_false(cfg->upstreams[1].tls.verify);
    assert_false(cfg->upstreams[2].tls.enabled);
    assert_string_equal(cfg->upstreams[2].tls.ca_file, "/nonexistent/ca.pem");
    assert_true(cfg->upstreams[3].tls.enabled);
    assert_non_null(strstr(cfg->upstreams[3].tls.cert_file, "/" READABLE_FILE));
    gh_config_free(cfg);
}

static void test_null_values_and_admin_off(void **state)
{
    struct gh_config *cfg = load_ok(VALID_TAIL "admin: {enabled: false}\nlimits:\naccess_log: ~\n");

    assert_false(cfg->admin.enabled);
    assert_string_equal(cfg->admin.addr.text, "127.0.0.1:9901");
    assert_int_equal(cfg->limits.max_headers, 100);
    assert_string_equal(cfg->access_log.path, "stdout");
    gh_config_free(cfg);

    /* With admin off, its address may be reused by a listener. */
    cfg = load_ok("listen: [{address: \"127.0.0.1:9901\"}]\n" UPSTREAMS_OK ROUTES_OK
                  "admin: {enabled: false}\n");
    gh_config_free(cfg);
}

static void test_relative_paths_buffer(void **state)
{
    struct gh_config *cfg = load_ok(VALID_TAIL "access_log: {path: logs/access.log}\n");
    char cwd[PATH_MAX], want[PATH_MAX + 32];

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(want, sizeof(want), "%s/logs/access.log", cwd);
    assert_string_equal(cfg->access_log.path, want);
    gh_config_free(cfg);
}

/* gh_config_load on a real file: paths relative to the file's directory,
 * the SHA-256 of its bytes, and errors naming the file. */
static void test_load_file(void **state)
{
    static const char text[] = "listen:\n"
                               "  - address: 127.0.0.1:8443\n"
                               "    tls:\n"
                               "      certificates:\n"
                               "        - {cert: certs/site.pem, key: ./certs/site.key}\n"
                               "upstreams: {app: {endpoints: [\"127.0.0.1:9000\"]}}\n"
                               "routes: [{path: /, upstream: app}]\n"
                               "access_log: {path: access.log}\n";
    struct scratch s;
    char path[160], real[PATH_MAX], want[PATH_MAX + 32], buf[1024];
    unsigned char sha[32];
    struct gh_config *cfg = NULL;
    struct gh_err err;

    scratch_make(&s);
    snprintf(path, sizeof(path), "%s/gatehouse.yaml", s.dir);
    write_file(path, text);
    assert_non_null(realpath(s.dir, real));

    if (gh_config_load(path, &cfg, &err) != GH_OK)
        fail_msg("unexpected error: %s", gh_err_format(&err, buf, sizeof(buf)));
    assert_string_equal(cfg->file, path);
    snprintf(want, sizeof(want), "%s/certs/site.pem", real);
    assert_string_equal(cfg->listens[0].certs[0].cert_file, want);
    snprintf(want, sizeof(want), "%s/./certs/site.key", real);
    assert_string_equal(cfg->listens[0].certs[0].key_file, want);
    snprintf(want, sizeof(want), "%s/access.log", real);
    assert_string_equal(cfg->access_log.path, want);
    assert_true(EVP_Digest(text, strlen(text), sha, NULL, EVP_sha256(), NULL));
    assert_memory_equal(cfg->sha256, sha, 32);
    gh_config_free(cfg);

    /* Same file without the key: the error names the file, line and column. */
    unlink(s.key);
    cfg = NULL;
    assert_int_equal(gh_config_load(path, &cfg, &err), GH_ERROR);
    assert_null(cfg);
    assert_string_equal(err.file, path);
    assert_int_equal(err.line, 5);
    assert_int_equal(err.col, 39);
    assert_non_null(strstr(err.msg, "in listen[0].tls.certificates[0].key: cannot read"));

    scratch_remove(&s, "gatehouse.yaml");
    assert_int_equal(gh_config_load(path, &cfg, &err), GH_ERROR);
    assert_null(cfg);
    assert_string_equal(err.file, path);
    assert_non_null(strstr(err.msg, "cannot open"));
}

/* The shipped example must load as it stands (tests run from the repo root). */
static void test_example_file(void **state)
{
    struct gh_config *cfg = NULL;
    struct gh_err err;
    char buf[1024];

    if (gh_config_load("gatehouse.example.yaml", &cfg, &err) != GH_OK)
        fail_msg("gatehouse.example.yaml: %s", gh_err_format(&err, buf, sizeof(buf)));
    assert_true(cfg->nlistens >= 1);
    assert_true(cfg->nroutes >= 1);
    gh_config_free(cfg);
}

static void test_error_format(void **state)
{
    static const char yaml[] = LISTEN_OK UPSTREAMS_OK "routes:\n"
                                                      "  - {path: /a, upstream: app}\n"
                                                      "  - {path: /b, upstream: app}\n"
                                                      "  - path: /c\n"
                                                      "    upstream: ap\n";
    struct gh_config *cfg = NULL;
    struct gh_err err;
    char buf[1024];

    assert_int_equal(gh_config_load_buffer("gatehouse.yaml", yaml, strlen(yaml), &cfg, &err),
                     GH_ERROR);
    assert_null(cfg);
    assert_string_equal(gh_err_format(&err, buf, sizeof(buf)),
                        "gatehouse.yaml:7:15: in routes[2].upstream: unknown upstream \"ap\" "
                        "(did you mean \"app\"?)");
}

static void test_demo(void **state)
{
    struct gh_config *cfg = NULL;
    struct gh_err err;

    assert_int_equal(gh_config_demo("127.0.0.1:8080", NULL, 9000, &cfg, &err), GH_OK);
    assert_true(cfg->workers >= 1);
    assert_string_equal(cfg->log_level, "info");
    assert_int_equal(cfg->nlistens, 1);
    assert_int_equal(cfg->listens[0].addr.port, 8080);
    assert_true(cfg->admin.enabled);
    assert_int_equal(cfg->admin.addr.port, 9901);
    assert_int_equal(cfg->nupstreams, 1);
    assert_string_equal(cfg->upstreams[0].name, "demo");
    assert_string_equal(cfg->upstreams[0].endpoints[0].text, "127.0.0.1:9000");
    assert_int_equal(cfg->upstreams[0].connect_timeout_ms, 2000);
    assert_int_equal(cfg->upstreams[0].keepalive, 512);
    assert_false(cfg->upstreams[0].tls.enabled);
    assert_int_equal(cfg->nroutes, 3);
    assert_string_equal(cfg->routes[0].path, "/");
    assert_string_equal(cfg->routes[0].name, "/");
    assert_string_equal(cfg->routes[0].upstream, "demo");
    assert_int_equal(cfg->routes[0].upstream_index, 0);
    assert_int_equal(cfg->routes[0].auth_mode, GH_ROUTE_AUTH_NONE);
    assert_string_equal(cfg->routes[1].path, "/orders");
    assert_int_equal(cfg->routes[1].auth_mode, GH_ROUTE_AUTH_API_KEY);
    assert_int_equal(cfg->routes[1].nscopes, 1);
    assert_string_equal(cfg->routes[1].scopes[0], "orders:read");
    assert_string_equal(cfg->routes[2].path, "/webhooks/github");
    assert_true(cfg->routes[2].webhook_verify.enabled);
    assert_string_equal(cfg->routes[2].webhook_verify.format, "github");
    assert_int_equal(cfg->routes[2].webhook_verify.tolerance_ms, 5 * 60 * 1000);
    assert_true(cfg->routes[2].webhook_verify.max_body > 0);
    assert_int_equal(cfg->webhooks.nallow_private, 1);
    assert_int_equal(cfg->limits.max_headers, 100);
    assert_int_equal(cfg->limits.max_body_bytes, UINT64_C(1) << 30);
    assert_string_equal(cfg->access_log.path, "stdout");
    gh_config_free(cfg);

    assert_int_equal(gh_config_demo("127.0.0.1:8080", "127.0.0.1:9911", 9000, &cfg, &err), GH_OK);
    assert_int_equal(cfg->admin.addr.port, 9911);
    gh_config_free(cfg);

    cfg = NULL;
    assert_int_equal(gh_config_demo("nonsense", NULL, 9000, &cfg, &err), GH_ERROR);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, "missing port"));
    assert_int_equal(gh_config_demo("127.0.0.1:9901", NULL, 9000, &cfg, &err), GH_ERROR);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, "is also admin.address"));
}

/* ---- file: secrets and the files a config names --------------------------- */

static int load_secret(const char *ref, struct gh_config **cfg, struct gh_err *err)
{
    char yaml[512];

    snprintf(yaml, sizeof(yaml),
             LISTEN_OK ROUTES_OK "upstreams:\n  app:\n    endpoints: [\"127.0.0.1:9000\"]\n"
                                 "    identity_secret: \"%s\"\n",
             ref);
    memset(err, 0, sizeof(*err));
    *cfg = NULL;
    return gh_config_load_buffer("gatehouse.yaml", yaml, strlen(yaml), cfg, err);
}

/* Fails unless `identity_secret: file:<path>` is refused at 6:22 with <msg>. */
static void secret_refused(const char *path, const char *msg)
{
    struct gh_config *cfg;
    struct gh_err err;
    char ref[300];

    snprintf(ref, sizeof(ref), "file:%s", path);
    if (load_secret(ref, &cfg, &err) != GH_ERROR) {
        gh_config_free(cfg);
        fail_msg("%s: loaded, but should fail with \"%s\"", path, msg);
    }
    assert_null(cfg);
    if (err.line != 6 || err.col != 22 || strstr(err.msg, msg) == NULL)
        fail_msg("%s: got %d:%d: %s, want 6:22: ...%s...", path, err.line, err.col, err.msg, msg);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* A file: secret is a regular file's whole content without its final line
 * breaks. A FIFO is refused, not opened (its open blocked `gatehouse check`
 * and `run` until a writer came), and so is a device (/dev/zero read as an
 * empty secret, /dev/urandom as a random one); a file over 4096 bytes or
 * with a NUL byte is refused instead of cut short. A certificate that is a
 * FIFO is refused too (OpenSSL's open of it blocked `gatehouse run`). */
static void test_secret_files(void **state)
{
    char dir[64], path[160], fifo[160], big[4098], yaml[512];
    struct gh_config *cfg;
    struct gh_err err;

    snprintf(dir, sizeof(dir), "/tmp/gh_config_secret.XXXXXX");
    assert_non_null(mkdtemp(dir));

    snprintf(path, sizeof(path), "%s/ok", dir);
    write_file(path, "0123456789abcdef0123\r\n");
    snprintf(yaml, sizeof(yaml), "file:%s", path);
    assert_int_equal(load_secret(yaml, &cfg, &err), GH_OK);
    assert_string_equal(cfg->upstreams[0].identity_secret, "0123456789abcdef0123");
    gh_config_free(cfg);

    memset(big, 'k', sizeof(big));
    write_bytes(path, big, 4096);
    assert_int_equal(load_secret(yaml, &cfg, &err), GH_OK);
    assert_int_equal(strlen(cfg->upstreams[0].identity_secret), 4096);
    gh_config_free(cfg);
    write_bytes(path, big, 4097);
    secret_refused(path, "is larger than 4096 bytes");
    write_bytes(path, "0123456789abcdef\0rest\n", 22);
    secret_refused(path, "contains a NUL byte");
    unlink(path);

    /* A symlink to a regular file is that file. */
    snprintf(fifo, sizeof(fifo), "%s/link", dir);
    write_file(path, "0123456789abcdef0123\n");
    assert_int_equal(symlink(path, fifo), 0);
    snprintf(yaml, sizeof(yaml), "file:%s", fifo);
    assert_int_equal(load_secret(yaml, &cfg, &err), GH_OK);
    assert_string_equal(cfg->upstreams[0].identity_secret, "0123456789abcdef0123");
    gh_config_free(cfg);
    unlink(fifo);
    unlink(path);

    /* Should the FIFO be opened after all, the test dies of SIGALRM
     * instead of hanging the unit run. */
    alarm(10);
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    secret_refused(fifo, "not a regular file");
    secret_refused(dir, "not a regular file");
    secret_refused("/dev/zero", "not a regular file");

    snprintf(yaml, sizeof(yaml),
             "listen:\n  - address: 127.0.0.1:8443\n    tls:\n      certificates:\n"
             "        - {cert: %s, key: " READABLE_FILE "}\n" UPSTREAMS_OK ROUTES_OK,
             fifo);
    memset(&err, 0, sizeof(err));
    assert_int_equal(gh_config_load_buffer("gatehouse.yaml", yaml, strlen(yaml), &cfg, &err),
                     GH_ERROR);
    assert_int_equal(err.line, 5);
    assert_int_equal(err.col, 18);
    assert_non_null(strstr(err.msg, "is not a regular file"));
    alarm(0);
    unlink(fifo);
    rmdir(dir);
}

/* ---- Bad files: each one's line, column and message -------------------- */

struct bad_case {
    const char *yaml;
    int line, col;
    const char *msg; /* a substring of err.msg */
};

/* X(name, yaml, line, col, message substring) */
/* 122 characters: one past GH_CONFIG_SECRET_REF_MAX. */
#define LONG_REF_NAME                                                                              \
    "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"                                \
    "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
#define BAD_CASES(X)                                                                               \
    X(unknown_top_key, "foo: 1\n" VALID_TAIL, 1, 1, "unknown key \"foo\"")                         \
    X(unknown_key_suggests, VALID_TAIL "limits: {max_header: 5}\n", 4, 10,                         \
      "unknown key \"max_header\" in limits (did you mean \"max_headers\"?)")                      \
    X(unknown_route_key,                                                                           \
      LISTEN_OK UPSTREAMS_OK "routes:\n  - path: /\n    upstream: app\n    foo: 1\n", 6, 5,        \
      "unknown key \"foo\" in routes[0]")                                                          \
    X(list_for_scalar, "workers: [1]\n" VALID_TAIL, 1, 10,                                         \
      "in workers: expected \"auto\" or a number, got a list")                                     \
    X(mapping_for_list, LISTEN_OK UPSTREAMS_OK "routes: {path: /}\n", 3, 9,                        \
      "in routes: expected a list, got a mapping")                                                 \
    X(scalar_for_mapping, VALID_TAIL "admin: yes\n", 4, 8,                                         \
      "in admin: expected a mapping, got a single value")                                          \
    X(scalar_list_item, "listen: [\"127.0.0.1:8080\"]\n" UPSTREAMS_OK ROUTES_OK, 1, 10,            \
      "in listen[0]: expected a mapping, got a single value")                                      \
    X(bad_duration,                                                                                \
      LISTEN_OK "upstreams:\n  app:\n    endpoints: [\"127.0.0.1:9000\"]\n"                        \
                "    connect_timeout: 5x\n" ROUTES_OK,                                             \
      5, 22, "in upstreams.app.connect_timeout: invalid duration \"5x\" (use e.g. 250ms, 5s, 2m)") \
    X(zero_duration, "shutdown_timeout: 0\n" VALID_TAIL, 1, 19,                                    \
      "in shutdown_timeout: must be greater than 0")                                               \
    X(duration_overflow, VALID_TAIL "limits: {header_timeout: 50d}\n", 4, 26,                      \
      "in limits.header_timeout: is too large (at most 4294967295ms)")                             \
    X(bad_size, VALID_TAIL "limits:\n  max_body_size: 12Q\n", 5, 18,                               \
      "in limits.max_body_size: invalid size \"12Q\"")                                             \
    X(size_overflow, VALID_TAIL "limits: {max_header_bytes: 8GiB}\n", 4, 28,                       \
      "in limits.max_header_bytes: is too large (at most 4294967295 bytes)")                       \
    X(number_overflow,                                                                             \
      LISTEN_OK ROUTES_OK "upstreams:\n  app:\n    endpoints: [\"127.0.0.1:9000\"]\n"              \
                          "    keepalive: 4294967296\n",                                           \
      6, 16, "in upstreams.app.keepalive: is too large (at most 4294967295)")                      \
    X(bad_number, VALID_TAIL "limits: {max_headers: ten}\n", 4, 23,                                \
      "in limits.max_headers: invalid number \"ten\"")                                             \
    X(max_headers_300, VALID_TAIL "limits:\n  max_headers: 300\n", 5, 16,                          \
      "in limits.max_headers: must be between 1 and 256")                                          \
    X(top_tenants_2000, VALID_TAIL "metrics:\n  top_tenants: 2000\n", 5, 16,                       \
      "in metrics.top_tenants: must be between 0 and 1000")                                        \
    X(metrics_unknown_key, VALID_TAIL "metrics: {top_tenant: 5}\n", 4, 11,                         \
      "unknown key \"top_tenant\" in metrics (did you mean \"top_tenants\"?)")                     \
    X(workers_0, "workers: 0\n" VALID_TAIL, 1, 10,                                                 \
      "in workers: must be \"auto\" or between 1 and 1024")                                        \
    X(workers_huge, VALID_TAIL "workers: 99999999999999999999999\n", 4, 10,                        \
      "must be \"auto\" or between 1 and 1024")                                                    \
    X(bad_log_level, "log_level: verbose\n" VALID_TAIL, 1, 12,                                     \
      "in log_level: must be one of debug, info, warn, error (got \"verbose\")")                   \
    X(bad_bool, VALID_TAIL "access_log: {enabled: maybe}\n", 4, 23,                                \
      "in access_log.enabled: expected true or false, got \"maybe\"")                              \
    X(unknown_upstream, LISTEN_OK UPSTREAMS_OK "routes:\n  - path: /\n    upstream: ap\n", 5, 15,  \
      "in routes[0].upstream: unknown upstream \"ap\"")                                            \
    X(missing_listen, UPSTREAMS_OK ROUTES_OK, 1, 1, "missing required key \"listen\"")             \
    X(missing_routes, LISTEN_OK UPSTREAMS_OK, 1, 1, "missing required key \"routes\"")             \
    X(missing_upstreams, LISTEN_OK ROUTES_OK, 1, 1, "missing required key \"upstreams\"")          \
    X(empty_listen, "listen: []\n" UPSTREAMS_OK ROUTES_OK, 1, 9,                                   \
      "in listen: must have at least 1 entry")                                                     \
    X(empty_routes, LISTEN_OK UPSTREAMS_OK "routes:\n", 3, 8,                                      \
      "in routes: must have at least 1 entry")                                                     \
    X(route_without_upstream, LISTEN_OK UPSTREAMS_OK "routes:\n  - path: /\n", 4, 5,               \
      "missing required key \"upstream\" in routes[0]")                                            \
    X(bad_path, LISTEN_OK UPSTREAMS_OK "routes: [{path: api, upstream: app}]\n", 3, 17,            \
      "in routes[0].path: must begin with '/' (got \"api\")")                                      \
    X(path_with_query, LISTEN_OK UPSTREAMS_OK "routes: [{path: \"/a?b\", upstream: app}]\n", 3,    \
      17, "in routes[0].path: must not contain")                                                   \
    X(bad_host_wildcard,                                                                           \
      LISTEN_OK UPSTREAMS_OK "routes:\n  - host: \"api.*.com\"\n    upstream: app\n", 4, 11,       \
      "in routes[0].host: invalid wildcard host \"api.*.com\"")                                    \
    X(bare_wildcard_host, LISTEN_OK UPSTREAMS_OK "routes: [{host: \"*\", upstream: app}]\n", 3,    \
      17, "invalid wildcard host \"*\"")                                                           \
    X(bad_host, LISTEN_OK UPSTREAMS_OK "routes: [{host: \"a..b\", upstream: app}]\n", 3, 17,       \
      "in routes[0].host: invalid host \"a..b\"")                                                  \
    X(unknown_method, LISTEN_OK UPSTREAMS_OK "routes: [{methods: [GET, FETCH], upstream: app}]\n", \
      3, 26, "in routes[0].methods[1]: unknown method \"FETCH\"")                                  \
    X(lower_case_method, LISTEN_OK UPSTREAMS_OK "routes: [{methods: [get], upstream: app}]\n", 3,  \
      21, "unknown method \"get\" (use upper case")                                                \
    X(empty_methods, LISTEN_OK UPSTREAMS_OK "routes: [{methods: [], upstream: app}]\n", 3, 20,     \
      "in routes[0].methods: must have at least 1 entry")                                          \
    X(duplicate_route,                                                                             \
      LISTEN_OK UPSTREAMS_OK "routes:\n  - {path: /a, upstream: app}\n"                            \
                             "  - {path: /a, upstream: app, name: again}\n",                       \
      5, 5, "in routes[1]: same host, path and methods as routes[0]")                              \
    X(duplicate_key, VALID_TAIL "workers: 2\nworkers: 3\n", 5, 1, "duplicate key \"workers\"")     \
    X(duplicate_nested_key,                                                                        \
      LISTEN_OK UPSTREAMS_OK "routes:\n  - path: /\n    upstream: app\n    path: /b\n", 6, 5,      \
      "duplicate key \"path\" in routes[0]")                                                       \
    X(duplicate_upstream,                                                                          \
      LISTEN_OK ROUTES_OK "upstreams:\n  app: {endpoints: [\"127.0.0.1:9000\"]}\n"                 \
                          "  app: {endpoints: [\"127.0.0.1:9001\"]}\n",                            \
      5, 3, "duplicate key \"app\" in upstreams")                                                  \
    X(bad_upstream_name,                                                                           \
      LISTEN_OK ROUTES_OK "upstreams: {\"my app\": {endpoints: [\"1.2.3.4:1\"]}}\n", 3, 13,        \
      "in upstreams: invalid name \"my app\"")                                                     \
    X(duplicate_listen,                                                                            \
      "listen:\n  - address: 127.0.0.1:8080\n  - address: 127.0.0.1:8080\n" UPSTREAMS_OK           \
          ROUTES_OK,                                                                               \
      3, 14, "in listen[1].address: duplicate listen address (same as listen[0])")                 \
    X(listen_is_admin, "listen: [{address: \"127.0.0.1:9901\"}]\n" UPSTREAMS_OK ROUTES_OK, 1, 20,  \
      "in listen[0].address: 127.0.0.1:9901 is also admin.address")                                \
    X(address_without_port, "listen: [{address: \"127.0.0.1\"}]\n" UPSTREAMS_OK ROUTES_OK, 1, 20,  \
      "in listen[0].address: invalid address \"127.0.0.1\": missing port")                         \
    X(port_out_of_range, VALID_TAIL "admin: {address: \"127.0.0.1:70000\"}\n", 4, 18,              \
      "in admin.address: invalid address \"127.0.0.1:70000\": the port must be")                   \
    X(ipv6_without_brackets, VALID_TAIL "admin: {address: \"::1:9901\"}\n", 4, 18,                 \
      "IPv6 addresses need brackets")                                                              \
    X(empty_endpoints, LISTEN_OK ROUTES_OK "upstreams: {app: {endpoints: []}}\n", 3, 30,           \
      "in upstreams.app.endpoints: must have at least 1 entry")                                    \
    X(missing_endpoints, LISTEN_OK ROUTES_OK "upstreams:\n  app:\n    keepalive: 1\n", 5, 5,       \
      "missing required key \"endpoints\" in upstreams.app")                                       \
    X(wildcard_endpoint, LISTEN_OK ROUTES_OK "upstreams: {app: {endpoints: [\"*:9000\"]}}\n", 3,   \
      31, "in upstreams.app.endpoints[0]: an endpoint needs a host")                               \
    X(tls_without_cert,                                                                            \
      "listen:\n  - address: 127.0.0.1:8443\n    tls:\n      certificates:\n"                      \
      "        - key: " READABLE_FILE "\n" UPSTREAMS_OK ROUTES_OK,                                 \
      5, 11, "missing required key \"cert\" in listen[0].tls.certificates[0]")                     \
    X(tls_without_certificates,                                                                    \
      "listen:\n  - address: 127.0.0.1:8443\n    tls: {}\n" UPSTREAMS_OK ROUTES_OK, 3, 10,         \
      "missing required key \"certificates\" in listen[0].tls")                                    \
    X(tls_empty_certificates,                                                                      \
      "listen:\n  - address: 127.0.0.1:8443\n    tls:\n      certificates: []\n" UPSTREAMS_OK      \
          ROUTES_OK,                                                                               \
      4, 21, "in listen[0].tls.certificates: must have at least 1 entry")                          \
    X(tls_unreadable_cert,                                                                         \
      "listen:\n  - address: 127.0.0.1:8443\n    tls:\n      certificates:\n"                      \
      "        - cert: /nonexistent/site.pem\n          key: " READABLE_FILE                       \
      "\n" UPSTREAMS_OK ROUTES_OK,                                                                 \
      5, 17, "in listen[0].tls.certificates[0].cert: cannot read \"/nonexistent/site.pem\"")       \
    X(tls_bad_name,                                                                                \
      "listen:\n  - address: 127.0.0.1:8443\n    tls:\n      certificates:\n"                      \
      "        - {cert: " READABLE_FILE ", key: " READABLE_FILE ", names: [ok.example, \"bad "     \
      "name\"]}\n" UPSTREAMS_OK ROUTES_OK,                                                         \
      5, 65, "in listen[0].tls.certificates[0].names[1]: invalid host \"bad name\"")               \
    X(upstream_tls_unreadable_ca,                                                                  \
      LISTEN_OK ROUTES_OK "upstreams:\n  app:\n    endpoints: [\"127.0.0.1:9000\"]\n"              \
                          "    tls: {ca_file: /nonexistent/ca.pem}\n",                             \
      6, 20, "in upstreams.app.tls.ca_file: cannot read \"/nonexistent/ca.pem\"")                  \
    X(tls_cert_device,                                                                             \
      "listen:\n  - address: 127.0.0.1:8443\n    tls:\n      certificates:\n"                      \
      "        - cert: /dev/zero\n          key: " READABLE_FILE "\n" UPSTREAMS_OK ROUTES_OK,      \
      5, 17, "in listen[0].tls.certificates[0].cert: \"/dev/zero\" is not a regular file")         \
    X(upstream_tls_cert_without_key,                                                               \
      LISTEN_OK ROUTES_OK "upstreams:\n  app:\n    endpoints: [\"127.0.0.1:9000\"]\n"              \
                          "    tls: {cert: " READABLE_FILE "}\n",                                  \
      6, 10, "in upstreams.app.tls: a client certificate needs both cert and key")                 \
    X(syntax_error_flow, VALID_TAIL "limits: {max_headers: 5\n", 5, 1, "YAML syntax error")        \
    X(syntax_error_indent, "listen:\n  - address: 127.0.0.1:8080\n bad: 1\n", 3, 2,                \
      "YAML syntax error")                                                                         \
    X(syntax_error_tab, "listen:\n\t- address: 127.0.0.1:8080\n", 2, 1, "YAML syntax error")       \
    /* Bytes that are not text: at their own line and column, not 1:1. */                          \
    X(reader_error_utf8, VALID_TAIL "log_level: \"\xff\"\n", 4, 13,                                \
      "YAML syntax error: invalid leading UTF-8 octet (0xFF)")                                     \
    X(reader_error_control, VALID_TAIL "log_level: \"\xc3\xa9\x01\"\n", 4, 14,                     \
      "YAML syntax error: control characters are not allowed (0x1)")                               \
    X(reader_error_crlf, "workers: 1\r\nlog_level: \"\x01\"\r\n" VALID_TAIL, 2, 13,                \
      "control characters are not allowed")                                                        \
    X(empty_file, "", 1, 1, "the configuration is empty")                                          \
    X(comments_only, "# nothing here\n", 1, 1, "the configuration is empty")                       \
    X(top_level_list, "- listen\n- routes\n", 1, 1, "the top level must be a mapping")             \
    X(top_level_scalar, "hello\n", 1, 1, "the top level must be a mapping")                        \
    X(two_documents, VALID_TAIL "---\nworkers: 1\n", 4, 1, "only one YAML document is allowed")    \
    X(audit_bad_mode, VALID_TAIL "audit: {mode: sync}\n", 4, 15,                                   \
      "in audit.mode: must be one of async, strict (got \"sync\")")                                \
    X(route_audit_list, LISTEN_OK UPSTREAMS_OK "routes: [{path: /, upstream: app, audit: [1]}]\n", \
      3, 42, "in routes[0].audit: expected true, false or a mapping, got a list")                  \
    X(route_audit_bad_key,                                                                         \
      LISTEN_OK UPSTREAMS_OK "routes: [{path: /, upstream: app, audit: {method: [GET]}}]\n", 3,    \
      43, "unknown key \"method\" in routes[0].audit (did you mean \"methods\"?)")                 \
    X(route_audit_word,                                                                            \
      LISTEN_OK UPSTREAMS_OK "routes: [{path: /, upstream: app, audit: maybe}]\n", 3, 42,          \
      "in routes[0].audit: expected true or false, got \"maybe\"")                                 \
    X(audit_retention_word, VALID_TAIL "audit: {retention: forever}\n", 4, 20,                     \
      "in audit.retention: invalid duration \"forever\"")                                          \
    X(audit_retention_short, VALID_TAIL "audit: {retention: 500ms}\n", 4, 20,                      \
      "in audit.retention: must be at least 1000ms")                                               \
    X(audit_archive_interval, VALID_TAIL "audit: {archive_interval: 8d}\n", 4, 27,                 \
      "in audit.archive_interval: must be between 1000ms and 604800000ms")                         \
    X(plan_audit_retention, VALID_TAIL "plans: {gold: {audit_retention: 1y}}\n", 4, 33,            \
      "in plans.gold.audit_retention: invalid duration \"1y\"")                                    \
    X(redis_resolver_name, VALID_TAIL "redis: {url: \"redis://r.test\", resolver: dns.test}\n", 4, \
      42,                                                                                          \
      "the resolver must be an IP address with an optional port (e.g. 127.0.0.1:8600), not a "     \
      "name")                                                                                      \
    X(redis_resolver_v6_brackets,                                                                  \
      VALID_TAIL "redis: {url: \"redis://r.test\", resolver: \"::1\"}\n", 4, 42,                   \
      "IPv6 addresses need brackets")                                                              \
    X(store_two_engines, VALID_TAIL "store: {sqlite: a.db, postgres: \"postgresql://u@h/d\"}\n",   \
      4, 8, "give exactly one of sqlite and postgres")                                             \
    X(store_postgres_scheme, VALID_TAIL "store: {postgres: \"mysql://u@h/d\"}\n", 4, 19,           \
      "the URL must begin with postgresql://")                                                     \
    X(store_pool_without_postgres, VALID_TAIL "store: {pool: 4}\n", 4, 15,                         \
      "`pool` is for `postgres`")                                                                  \
    X(store_timeout_without_postgres, VALID_TAIL "store: {statement_timeout: 2s}\n", 4, 28,        \
      "`statement_timeout` is for `postgres`")                                                     \
    X(store_lock_timeout_range,                                                                    \
      VALID_TAIL "store: {postgres: \"postgresql://u@h/d\", lock_timeout: 10ms}\n", 4, 55,         \
      "in store.lock_timeout")                                                                     \
    X(store_pool_range, VALID_TAIL "store: {postgres: \"postgresql://u@h/d\", pool: 65}\n", 4, 47, \
      "in store.pool")                                                                             \
    X(store_postgres_secret_ref, VALID_TAIL "store: {postgres: \"secret:pg-url\"}\n", 4, 19,       \
      "secret:NAME cannot be used here")                                                           \
    X(webhooks_allow_name, VALID_TAIL "webhooks: {allow_private: [127.0.0.1, localhost]}\n", 4,    \
      39, "in webhooks.allow_private[1]: \"localhost\" is not an address or a CIDR")               \
    X(webhooks_allow_bits, VALID_TAIL "webhooks: {allow_private: [10.0.0.1/8]}\n", 4, 28,          \
      "\"10.0.0.1/8\" is not an address or a CIDR")                                                \
    X(webhooks_schedule_word, VALID_TAIL "webhooks: {schedule: [0s, soon]}\n", 4, 27,              \
      "in webhooks.schedule[1]: \"soon\" is not a duration")                                       \
    X(webhooks_concurrency, VALID_TAIL "webhooks: {concurrency: 0}\n", 4, 25,                      \
      "in webhooks.concurrency: must be")                                                          \
    X(webhooks_retention_short, VALID_TAIL "webhooks: {retention: 500ms}\n", 4, 23,                \
      "in webhooks.retention: must be")                                                            \
    X(complex_key, VALID_TAIL "? [a, b]\n: 1\n", 4, 3, "keys must be plain names")                 \
    X(secrets_bad_provider, VALID_TAIL "secrets: {provider: vault}\n", 4, 21,                      \
      "in secrets.provider: must be one of local, pkcs11")                                         \
    X(secrets_pkcs11_no_block, VALID_TAIL "secrets: {provider: pkcs11}\n", 4, 10,                  \
      "provider pkcs11 needs a pkcs11 block")                                                      \
    X(secrets_pkcs11_no_pin,                                                                       \
      VALID_TAIL "secrets: {provider: pkcs11, pkcs11: {module: /x.so, token_label: t}}\n", 4, 37,  \
      "missing required key \"pin\"")                                                              \
    X(secrets_pin_ref,                                                                             \
      VALID_TAIL "secrets: {provider: pkcs11, pkcs11: {module: /x.so, token_label: t, "            \
                 "pin: secret:p}}\n",                                                              \
      4, 74, "in secrets.pkcs11.pin: secret:NAME cannot be used here")                             \
    X(secret_ref_bad_name,                                                                         \
      LISTEN_OK "upstreams: {app: {endpoints: [\"127.0.0.1:9000\"], identity_secret: "             \
                "\"secret:../x\"}}\n" ROUTES_OK,                                                   \
      2, 67, "in upstreams.app.identity_secret: secret:NAME needs a name")                         \
    X(secret_ref_long_name,                                                                        \
      LISTEN_OK "upstreams: {app: {endpoints: [\"127.0.0.1:9000\"], identity_secret: "             \
                "\"secret:" LONG_REF_NAME "\"}}\n" ROUTES_OK,                                      \
      2, 67, "secret:NAME needs a name of 1-121 characters")                                       \
    X(secret_form_case,                                                                            \
      LISTEN_OK "upstreams: {app: {endpoints: [\"127.0.0.1:9000\"], identity_secret: "             \
                "Secret:upstream-app}}\n" ROUTES_OK,                                               \
      2, 67,                                                                                       \
      "in upstreams.app.identity_secret: \"Secret:\" is not a form a secret takes: write "         \
      "\"secret:\"")                                                                               \
    X(secret_form_env_case,                                                                        \
      VALID_TAIL "redis: {url: \"redis://127.0.0.1:6379\", password: ENV:REDIS_PASSWORD}\n", 4,    \
      50, "in redis.password: \"ENV:\" is not a form a secret takes: write \"env:\"")              \
    X(node_id_space, VALID_TAIL "node: {id: \"gw 1\"}\n", 4, 12,                                   \
      "in node.id: a node id is 1 to 63 characters of [A-Za-z0-9._-] (got 4 bytes: \"gw 1\")")     \
    X(node_id_empty, VALID_TAIL "node:\n  id: \"\"\n", 5, 7, "in node.id: a node id is 1 to 63")   \
    X(node_id_long,                                                                                \
      VALID_TAIL "node: {id: "                                                                     \
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n",            \
      4, 12, "(got 64 bytes")                                                                      \
    X(node_id_unicode, VALID_TAIL "node: {id: \"gw-\xc3\xa9\"}\n", 4, 12, "(got 5 bytes)")         \
    X(node_id_env_unset, VALID_TAIL "node: {id: env:GH_TEST_NODE_UNSET}\n", 4, 12,                 \
      "in node.id: environment variable GH_TEST_NODE_UNSET is not set")                            \
    X(node_unknown_key, VALID_TAIL "node: {name: gw-1}\n", 4, 8, "unknown key \"name\" in node")

#define BAD_OBJ(id, y, l, c, m) static struct bad_case bad_##id = {y, l, c, m};
BAD_CASES(BAD_OBJ)

static void test_bad(void **state)
{
    const struct bad_case *bc = *state;
    struct gh_config *cfg = NULL;
    struct gh_err err;
    char buf[1024];

    memset(&err, 0, sizeof(err));
    if (gh_config_load_buffer("gatehouse.yaml", bc->yaml, strlen(bc->yaml), &cfg, &err) !=
        GH_ERROR) {
        gh_config_free(cfg);
        fail_msg("loaded, but should fail with \"%s\"", bc->msg);
    }
    assert_null(cfg);
    gh_err_format(&err, buf, sizeof(buf));
    assert_string_equal(err.file, "gatehouse.yaml");
    if (err.line != bc->line || err.col != bc->col || strstr(err.msg, bc->msg) == NULL)
        fail_msg("got   %s\nwant  gatehouse.yaml:%d:%d: ...%s...", buf, bc->line, bc->col, bc->msg);
}

/* ---- node.id --------------------------------------------------------------- */

/* The Redis URL's host: an address is parsed, a name is kept for the
 * client to look up at each connect (a name that does not resolve today is
 * no config error); `resolver` is an address, given port 53 by default. */
static void test_redis_names(void **state)
{
    static const struct {
        const char *block, *host, *resolver;
        uint16_t port;
    } cases[] = {
        {"redis: {url: \"redis://10.0.0.5\"}\n", "10.0.0.5", NULL, 6379},
        {"redis: {url: \"redis://no-such-host.invalid:6380\"}\n", "no-such-host.invalid", NULL,
         6380},
        {"redis: {url: \"redis://redis.service.consul\", resolver: 127.0.0.1}\n",
         "redis.service.consul", "127.0.0.1:53", 6379},
        {"redis: {url: \"redis://r.test:7000\", resolver: \"127.0.0.1:8600\"}\n", "r.test",
         "127.0.0.1:8600", 7000},
        {"redis: {url: \"redis://r.test\", resolver: \"[::1]:5353\"}\n", "r.test", "[::1]:5353",
         6379},
    };
    char yaml[512];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gh_config *cfg;
        snprintf(yaml, sizeof(yaml), "%s%s", VALID_TAIL, cases[i].block);
        cfg = load_ok(yaml);
        assert_string_equal(cfg->redis.host, cases[i].host);
        assert_int_equal(cfg->redis.port, cases[i].port);
        if (cases[i].resolver)
            assert_string_equal(cfg->redis.resolver, cases[i].resolver);
        else
            assert_null(cfg->redis.resolver);
        gh_config_free(cfg);
    }
}

static void test_node_id(void **state)
{
    struct gh_config *cfg;
    char host[256] = "";

    cfg = load_ok(VALID_TAIL "node: {id: gw-1.eu_west-2}\n");
    assert_string_equal(cfg->node.id, "gw-1.eu_west-2");
    assert_int_equal(cfg->node.pos.line, 4);
    gh_config_free(cfg);

    setenv("GH_TEST_NODE_ID", "pod-7", 1);
    cfg = load_ok(VALID_TAIL "node: {id: env:GH_TEST_NODE_ID}\n");
    assert_string_equal(cfg->node.id, "pod-7");
    gh_config_free(cfg);

    /* Absent: the host name, made valid. */
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    cfg = load_ok(VALID_TAIL);
    assert_true(gh_config_valid_node_id(cfg->node.id));
    assert_int_equal(strncmp(cfg->node.id, host, strlen(cfg->node.id)), 0);
    gh_config_free(cfg);

    assert_true(gh_config_valid_node_id("a"));
    assert_true(gh_config_valid_node_id("A.b_c-9"));
    assert_false(gh_config_valid_node_id(""));
    assert_false(gh_config_valid_node_id("a/b"));
    assert_false(gh_config_valid_node_id("a:b"));
    assert_false(gh_config_valid_node_id("a\"b"));
    assert_true(gh_config_valid_node_id(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 63 */
    assert_false(gh_config_valid_node_id(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 64 */
}

/* ---- Value parsers ------------------------------------------------------- */

static void test_durations(void **state)
{
    static const struct {
        const char *in;
        int ok;
        uint64_t ms;
    } cases[] = {
        {"0", 1, 0},
        {"250", 1, 250},
        {"250ms", 1, 250},
        {"5s", 1, 5000},
        {"2m", 1, 120000},
        {"1h", 1, 3600000},
        {"1d", 1, 86400000},
        {"007s", 1, 7000},
        {"18446744073709551615", 1, UINT64_MAX},
        {"", 0, 0},
        {"5x", 0, 0},
        {"s", 0, 0},
        {"-1", 0, 0},
        {"+1", 0, 0},
        {" 5s", 0, 0},
        {"5s ", 0, 0},
        {"5 s", 0, 0},
        {"5S", 0, 0},
        {"1.5s", 0, 0},
        {"5sec", 0, 0},
        {"1m30s", 0, 0},
        {"18446744073709551616", 0, 0},
        {"213503982334602d", 0, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 12345;
        int rc = gh_config_parse_duration_ms(cases[i].in, &v);
        if (rc != (cases[i].ok ? GH_OK : GH_ERROR) || (cases[i].ok && v != cases[i].ms))
            fail_msg("duration \"%s\": rc %d, value %llu", cases[i].in, rc, (unsigned long long)v);
    }
    assert_int_equal(gh_config_parse_duration_ms(NULL, &(uint64_t){0}), GH_ERROR);
}

static void test_sizes(void **state)
{
    static const struct {
        const char *in;
        int ok;
        uint64_t bytes;
    } cases[] = {
        {"0", 1, 0},
        {"512", 1, 512},
        {"10b", 1, 10},
        {"1k", 1, 1024},
        {"1K", 1, 1024},
        {"16KiB", 1, 16384},
        {"16KB", 1, 16384},
        {"16kib", 1, 16384},
        {"1M", 1, 1048576},
        {"1MiB", 1, 1048576},
        {"1MB", 1, 1048576},
        {"2GiB", 1, UINT64_C(2147483648)},
        {"1g", 1, UINT64_C(1073741824)},
        {"17179869183G", 1, UINT64_C(17179869183) << 30},
        {"", 0, 0},
        {"K", 0, 0},
        {"1T", 0, 0},
        {"1.5M", 0, 0},
        {"-1", 0, 0},
        {"1 K", 0, 0},
        {"1Ki", 0, 0},
        {"12Q", 0, 0},
        {"17179869184G", 0, 0},
        {"99999999999999999999", 0, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 12345;
        int rc = gh_config_parse_size(cases[i].in, &v);
        if (rc != (cases[i].ok ? GH_OK : GH_ERROR) || (cases[i].ok && v != cases[i].bytes))
            fail_msg("size \"%s\": rc %d, value %llu", cases[i].in, rc, (unsigned long long)v);
    }
}

static void test_addrs(void **state)
{
    static const struct {
        const char *in;
        const char *host; /* NULL: must fail */
        int family;
        const char *ip;
        uint16_t port;
        const char *why; /* a substring of the failure message */
    } cases[] = {
        {"127.0.0.1:8080", "127.0.0.1", AF_INET, "127.0.0.1", 8080, NULL},
        {"[::1]:8080", "::1", AF_INET6, "::1", 8080, NULL},
        {"[::]:443", "::", AF_INET6, "::", 443, NULL},
        {"*:8080", "", AF_INET, "0.0.0.0", 8080, NULL},
        {":8080", "", AF_INET, "0.0.0.0", 8080, NULL},
        {"localhost:8080", "localhost", AF_INET, "127.0.0.1", 8080, NULL},
        {"10.1.2.3:1", "10.1.2.3", AF_INET, "10.1.2.3", 1, NULL},
        {"0.0.0.0:65535", "0.0.0.0", AF_INET, "0.0.0.0", 65535, NULL},
        {"", NULL, 0, NULL, 0, "empty address"},
        {"127.0.0.1", NULL, 0, NULL, 0, "missing port"},
        {"127.0.0.1:", NULL, 0, NULL, 0, "the port must be"},
        {"127.0.0.1:0", NULL, 0, NULL, 0, "the port must be"},
        {"127.0.0.1:65536", NULL, 0, NULL, 0, "the port must be"},
        {"127.0.0.1:80x", NULL, 0, NULL, 0, "the port must be"},
        {"127.0.0.1:+80", NULL, 0, NULL, 0, "the port must be"},
        {"::1:8080", NULL, 0, NULL, 0, "need brackets"},
        {"[::1]8080", NULL, 0, NULL, 0, "use [v6]:port"},
        {"[::1]", NULL, 0, NULL, 0, "use [v6]:port"},
        {"[]:80", NULL, 0, NULL, 0, "empty IPv6"},
        {"[127.0.0.1]:80", NULL, 0, NULL, 0, "not an IPv6 address"},
        {"a b:80", NULL, 0, NULL, 0, "bad character"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gh_config_addr a;
        char why[256] = "", ip[INET6_ADDRSTRLEN] = "";
        int rc = gh_config_parse_addr(cases[i].in, &a, why, sizeof(why));

        if (cases[i].host == NULL) {
            if (rc != GH_ERROR || strstr(why, cases[i].why) == NULL)
                fail_msg("addr \"%s\": rc %d, why \"%s\"", cases[i].in, rc, why);
            assert_null(a.text);
            continue;
        }
        if (rc != GH_OK) fail_msg("addr \"%s\": %s", cases[i].in, why);
        assert_string_equal(a.text, cases[i].in);
        assert_string_equal(a.host, cases[i].host);
        assert_int_equal(a.port, cases[i].port);
        assert_int_equal(a.ss.ss_family, cases[i].family);
        if (a.ss.ss_family == AF_INET) {
            const struct sockaddr_in *sin = (const void *)&a.ss;
            assert_int_equal(a.sslen, sizeof(*sin));
            assert_int_equal(ntohs(sin->sin_port), cases[i].port);
            inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        } else {
            const struct sockaddr_in6 *sin6 = (const void *)&a.ss;
            assert_int_equal(a.sslen, sizeof(*sin6));
            assert_int_equal(ntohs(sin6->sin6_port), cases[i].port);
            inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        }
        assert_string_equal(ip, cases[i].ip);
        gh_config_addr_release(&a);
        assert_null(a.text);
        assert_null(a.host);
    }
    gh_config_addr_release(NULL);
}

#define BAD_TEST(id, y, l, c, m) {"bad_" #id, test_bad, NULL, NULL, &bad_##id},

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_minimal_defaults),
                                       cmocka_unit_test(test_workers_auto),
                                       cmocka_unit_test(test_full_example),
                                       cmocka_unit_test(test_route_defaults),
                                       cmocka_unit_test(test_upstream_tls_block),
                                       cmocka_unit_test(test_audit_keys),
                                       cmocka_unit_test(test_store_engines),
                                       cmocka_unit_test(test_webhooks_keys),
                                       cmocka_unit_test(test_null_values_and_admin_off),
                                       cmocka_unit_test(test_relative_paths_buffer),
                                       cmocka_unit_test(test_load_file),
                                       cmocka_unit_test(test_secret_files),
                                       cmocka_unit_test(test_example_file),
                                       cmocka_unit_test(test_error_format),
                                       cmocka_unit_test(test_demo),
                                       cmocka_unit_test(test_node_id),
                                       cmocka_unit_test(test_redis_names),
                                       cmocka_unit_test(test_durations),
                                       cmocka_unit_test(test_sizes),
                                       cmocka_unit_test(test_addrs),
                                       BAD_CASES(BAD_TEST)};

    return cmocka_run_group_tests(tests, NULL, NULL);
}
