/* Tests for the Redis client (src/limits/redis.c, src/limits/redis_script.c)
 * against a real redis-server started here on a free 127.0.0.1 port, in a
 * temporary folder: round trips, pipelining, EVALSHA with NOSCRIPT, per
 * command timeouts, cancellation, DOWN and reconnect, AUTH.
 *
 * Servers are killed by PID in the group teardown (which cmocka runs even
 * when an assertion fails), and get PR_SET_PDEATHSIG in case the test
 * process itself dies. Loop waits have ceilings, so a broken client fails a
 * test instead of hanging it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "core/err.h"
#include "limits/redis.h"
#include "limits/redis_script.h"

#define REDIS_BIN "/usr/bin/redis-server"

/* ---- servers ---- */

struct server {
    pid_t pid;
    uint16_t port;
    char dir[64];
    char pass[32]; /* empty: no requirepass */
    bool tls;      /* TLS only, with dir/cert.pem and dir/key.pem */
};

struct env {
    struct server main;  /* shared by most tests */
    struct server auth;  /* --requirepass secret */
    struct server other; /* stopped, killed and restarted by test_down_and_reconnect */
    struct server tls;   /* TLS only, self-signed certificate for IP 127.0.0.1 */
    struct event_base *base;
};

static uint16_t free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint16_t port = 0;

    if (fd < 0) return 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static bool accepts(uint16_t port)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

    if (fd >= 0) close(fd);
    return ok;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts redis-server for <s> (port and dir already set); waits up to 3 s
 * until it accepts. Returns 0 or -1. */
static int server_start(struct server *s)
{
    char port[8], cert[96], key[96];
    const char *argv[32];
    int n = 0;

    snprintf(port, sizeof(port), "%u", (unsigned)s->port);
    snprintf(cert, sizeof(cert), "%s/cert.pem", s->dir);
    snprintf(key, sizeof(key), "%s/key.pem", s->dir);
    argv[n++] = REDIS_BIN;
    if (s->tls) {
        argv[n++] = "--port";
        argv[n++] = "0";
        argv[n++] = "--tls-port";
        argv[n++] = port;
        argv[n++] = "--tls-cert-file";
        argv[n++] = cert;
        argv[n++] = "--tls-key-file";
        argv[n++] = key;
        argv[n++] = "--tls-ca-cert-file";
        argv[n++] = cert;
        argv[n++] = "--tls-auth-clients";
        argv[n++] = "no";
    } else {
        argv[n++] = "--port";
        argv[n++] = port;
    }
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = s->dir;
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--enable-debug-command";
    argv[n++] = "yes";
    if (s->pass[0]) {
        argv[n++] = "--requirepass";
        argv[n++] = s->pass;
    }
    argv[n] = NULL;

    s->pid = fork();
    if (s->pid < 0) return -1;
    if (s->pid == 0) {
        int null = open("/dev/null", O_RDWR);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (null >= 0) {
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
        }
        execv(REDIS_BIN, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 300; i++) {
        if (accepts(s->port)) return 0;
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
        sleep_ms(10);
    }
    return -1;
}

static void server_kill(struct server *s)
{
    if (s->pid <= 0) return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* A self-signed P-256 certificate for IP 127.0.0.1 in dir/cert.pem and
 * dir/key.pem. Returns 0 or -1. */
static int write_cert(const char *dir)
{
    char path[96];
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext = NULL;
    FILE *f;
    int rc = -1;

    if (k == NULL || x == NULL) goto out;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"gatehouse test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, k);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
    if (ext == NULL || X509_add_ext(x, ext, -1) != 1) goto out;
    if (X509_sign(x, k, EVP_sha256()) == 0) goto out;
    snprintf(path, sizeof(path), "%s/cert.pem", dir);
    if ((f = fopen(path, "w")) == NULL) goto out;
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(path, sizeof(path), "%s/key.pem", dir);
    if ((f = fopen(path, "w")) == NULL) goto out;
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    rc = 0;
out:
    X509_EXTENSION_free(ext);
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

static int server_init(struct server *s, const char *pass, bool tls)
{
    snprintf(s->dir, sizeof(s->dir), "/tmp/gh-redis-test-XXXXXX");
    if (mkdtemp(s->dir) == NULL) return -1;
    s->tls = tls;
    if (tls && write_cert(s->dir) != 0) return -1;
    snprintf(s->pass, sizeof(s->pass), "%s", pass ? pass : "");
    s->port = free_port();
    if (s->port == 0) return -1;
    return server_start(s);
}

static void server_cleanup(struct server *s)
{
    char path[96];

    server_kill(s);
    if (s->dir[0] == '\0') return;
    snprintf(path, sizeof(path), "%s/cert.pem", s->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/key.pem", s->dir);
    unlink(path);
    rmdir(s->dir); /* otherwise empty: --save '' and no AOF */
}

static int group_setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));

    if (e == NULL) return -1;
    *state = e;
    signal(SIGPIPE, SIG_IGN);
    e->base = event_base_new();
    if (e->base == NULL) return -1;
    if (server_init(&e->main, NULL, false) != 0) return -1;
    if (server_init(&e->auth, "secret", false) != 0) return -1;
    if (server_init(&e->other, NULL, false) != 0) return -1;
    if (server_init(&e->tls, "secret", true) != 0) return -1;
    return 0;
}

static int group_teardown(void **state)
{
    struct env *e = *state;

    if (e == NULL) return 0;
    server_cleanup(&e->main);
    server_cleanup(&e->auth);
    server_cleanup(&e->other);
    server_cleanup(&e->tls);
    if (e->base) event_base_free(e->base);
    free(e);
    return 0;
}

/* ---- loop and callbacks ---- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Runs the loop until *flag becomes non-zero (when flag is not NULL) or
 * <ms> pass. Returns whether the flag was set. */
static bool run_until(struct event_base *base, const int *flag, unsigned ms)
{
    uint64_t end = gh_now_ns() + (uint64_t)ms * 1000000ull;
    struct timeval tv = {0, 1000};
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);

    event_add(tick, &tv);
    while ((flag == NULL || *flag == 0) && gh_now_ns() < end)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    return flag == NULL || *flag != 0;
}

static bool wait_up(struct event_base *base, struct gh_redis *r, unsigned ms)
{
    uint64_t end = gh_now_ns() + (uint64_t)ms * 1000000ull;

    while (!gh_redis_is_up(r) && gh_now_ns() < end)
        run_until(base, NULL, 2);
    return gh_redis_is_up(r);
}

/* What one callback saw. */
struct result {
    int done; /* number of calls */
    int status;
    int type;
    long long integer;
    char str[512];
    uint64_t at_ns;
};

static void result_cb(void *arg, const redisReply *reply, int status)
{
    struct result *res = arg;

    res->done++;
    res->status = status;
    res->at_ns = gh_now_ns();
    res->type = reply ? reply->type : 0;
    res->integer = reply ? reply->integer : 0;
    res->str[0] = '\0';
    if (reply && reply->str) snprintf(res->str, sizeof(res->str), "%s", reply->str);
}

static struct gh_redis *client(struct env *e, uint16_t port, const char *user, const char *pass,
                               uint32_t timeout_ms)
{
    struct gh_redis_opts o = {
        .host = "127.0.0.1",
        .port = port,
        .username = user,
        .password = pass,
        .timeout_ms = timeout_ms,
        .backoff_min_ms = 20,
        .backoff_max_ms = 200,
        .log_name = "test",
    };
    struct gh_redis *r = gh_redis_new(e->base, &o);

    assert_non_null(r);
    return r;
}

static int cmd(struct gh_redis *r, struct result *res, const char *a0, const char *a1,
               const char *a2, uint32_t *handle)
{
    const char *argv[3] = {a0, a1, a2};
    size_t lens[3] = {strlen(a0), a1 ? strlen(a1) : 0, a2 ? strlen(a2) : 0};
    int argc = a2 ? 3 : a1 ? 2 : 1;

    memset(res, 0, sizeof(*res));
    return gh_redis_command(r, argc, argv, lens, result_cb, res, handle);
}

/* Sends one command and waits for its callback (1 s ceiling). */
static void call(struct env *e, struct gh_redis *r, struct result *res, const char *a0,
                 const char *a1, const char *a2)
{
    assert_int_equal(cmd(r, res, a0, a1, a2, NULL), GH_OK);
    assert_true(run_until(e->base, &res->done, 1000));
    assert_int_equal(res->done, 1);
}

/* ---- tests ---- */

static void test_round_trip(void **state)
{
    struct env *e = *state;
    struct gh_redis *r = client(e, e->main.port, NULL, NULL, 200);
    struct result res;

    /* Queued during the first connect: goes out after the hello PING. */
    assert_int_equal(cmd(r, &res, "PING", NULL, NULL, NULL), GH_OK);
    assert_true(run_until(e->base, &res.done, 1000));
    assert_int_equal(res.status, GH_REDIS_OK);
    assert_int_equal(res.type, REDIS_REPLY_STATUS);
    assert_string_equal(res.str, "PONG");
    assert_true(gh_redis_is_up(r));

    call(e, r, &res, "SET", "gh:k", "hello");
    assert_int_equal(res.status, GH_REDIS_OK);
    assert_string_equal(res.str, "OK");
    call(e, r, &res, "GET", "gh:k", NULL);
    assert_int_equal(res.type, REDIS_REPLY_STRING);
    assert_string_equal(res.str, "hello");
    call(e, r, &res, "GET", "gh:missing", NULL);
    assert_int_equal(res.type, REDIS_REPLY_NIL);
    call(e, r, &res, "NOSUCHCOMMAND", NULL, NULL);
    assert_int_equal(res.status, GH_REDIS_OK);
    assert_int_equal(res.type, REDIS_REPLY_ERROR);
    assert_true(gh_redis_is_up(r)); /* an error reply is an answer */
    gh_redis_free(r);
}

struct order {
    int next; /* the index the next callback must have */
    int bad;
};

struct pipe_item {
    struct order *o;
    int i;
};

static void order_cb(void *arg, const redisReply *reply, int status)
{
    struct pipe_item *it = arg;
    char want[16];

    snprintf(want, sizeof(want), "%d", it->i);
    if (status != GH_REDIS_OK || it->i != it->o->next || reply->type != REDIS_REPLY_STRING ||
        strcmp(reply->str, want) != 0)
        it->o->bad++;
    it->o->next++;
}

static void test_pipelining(void **state)
{
    struct env *e = *state;
    struct gh_redis *r = client(e, e->main.port, NULL, NULL, 2000);
    struct pipe_item items[1000];
    char bufs[1000][16];
    struct order o = {0, 0};
    struct gh_redis_stats st;
    int all = 0;

    assert_true(wait_up(e->base, r, 1000));
    for (int i = 0; i < 1000; i++) {
        const char *argv[2] = {"ECHO", bufs[i]};
        size_t lens[2];
        lens[0] = 4;
        lens[1] = (size_t)snprintf(bufs[i], sizeof(bufs[i]), "%d", i);
        items[i] = (struct pipe_item){&o, i};
        assert_int_equal(gh_redis_command(r, 2, argv, lens, order_cb, &items[i], NULL), GH_OK);
    }
    gh_redis_stats(r, &st);
    assert_int_equal(st.pending, 1000);
    for (uint64_t end = gh_now_ns() + 3000000000ull; o.next < 1000 && gh_now_ns() < end;)
        run_until(e->base, &all, 5);
    assert_int_equal(o.next, 1000);
    assert_int_equal(o.bad, 0);
    gh_redis_stats(r, &st);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.timeouts, 0);
    gh_redis_free(r);
}

static void test_evalsha(void **state)
{
    struct env *e = *state;
    struct gh_redis *r = client(e, e->main.port, NULL, NULL, 500);
    struct gh_redis_script s;
    struct gh_redis_stats st0, st1;
    struct result res, flush;
    const char *keys[1] = {"gh:counter"};
    size_t keylens[1] = {10};
    const char *args[1] = {"5"};
    size_t arglens[1] = {1};

    gh_redis_script_init(&s, "return redis.call('INCRBY', KEYS[1], ARGV[1])");
    assert_int_equal(strlen(s.sha1_hex), 40);
    assert_true(wait_up(e->base, r, 1000));
    call(e, r, &flush, "SCRIPT", "FLUSH", NULL);
    call(e, r, &flush, "DEL", "gh:counter", NULL);

    /* First use: NOSCRIPT, then SCRIPT LOAD and EVALSHA again (3 commands). */
    gh_redis_stats(r, &st0);
    memset(&res, 0, sizeof(res));
    assert_int_equal(
        gh_redis_evalsha(r, &s, 1, keys, keylens, 1, args, arglens, result_cb, &res, NULL), GH_OK);
    assert_true(run_until(e->base, &res.done, 1000));
    run_until(e->base, NULL, 20); /* no second callback */
    assert_int_equal(res.done, 1);
    assert_int_equal(res.status, GH_REDIS_OK);
    assert_int_equal(res.type, REDIS_REPLY_INTEGER);
    assert_int_equal(res.integer, 5);
    gh_redis_stats(r, &st1);
    assert_int_equal(st1.commands - st0.commands, 3);

    /* Cached: one command. */
    memset(&res, 0, sizeof(res));
    assert_int_equal(
        gh_redis_evalsha(r, &s, 1, keys, keylens, 1, args, arglens, result_cb, &res, NULL), GH_OK);
    assert_true(run_until(e->base, &res.done, 1000));
    assert_int_equal(res.integer, 10);
    gh_redis_stats(r, &st0);
    assert_int_equal(st0.commands - st1.commands, 1);

    /* After SCRIPT FLUSH it loads again by itself. */
    call(e, r, &flush, "SCRIPT", "FLUSH", NULL);
    gh_redis_stats(r, &st1);
    memset(&res, 0, sizeof(res));
    assert_int_equal(
        gh_redis_evalsha(r, &s, 1, keys, keylens, 1, args, arglens, result_cb, &res, NULL), GH_OK);
    assert_true(run_until(e->base, &res.done, 1000));
    assert_int_equal(res.status, GH_REDIS_OK);
    assert_int_equal(res.integer, 15);
    gh_redis_stats(r, &st0);
    assert_int_equal(st0.commands - st1.commands, 3);

    /* A script that does not load: the NOSCRIPT error comes back, once. */
    struct gh_redis_script bad;
    gh_redis_script_init(&bad, "this is not lua");
    memset(&res, 0, sizeof(res));
    assert_int_equal(gh_redis_evalsha(r, &bad, 0, NULL, NULL, 0, NULL, NULL, result_cb, &res, NULL),
                     GH_OK);
    assert_true(run_until(e->base, &res.done, 1000));
    run_until(e->base, NULL, 20);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.type, REDIS_REPLY_ERROR);
    assert_memory_equal(res.str, "NOSCRIPT", 8);
    gh_redis_free(r);
}

struct cancel_later {
    struct gh_redis *r;
    uint32_t handle;
    int done;
};

static void cancel_later_cb(void *arg, const redisReply *reply, int status)
{
    struct cancel_later *c = arg;

    gh_redis_cancel(c->r, c->handle);
    c->done = 1;
}

/* Cancelled after NOSCRIPT arrived, while the retry is in flight. */
static void test_evalsha_cancel_across_retry(void **state)
{
    struct env *e = *state;
    struct gh_redis *r = client(e, e->main.port, NULL, NULL, 500);
    struct gh_redis_script s;
    struct gh_redis_stats st0, st1;
    struct result res, flush, after;
    struct cancel_later cl = {r, 0, 0};
    const char *ping[1] = {"PING"};
    size_t pinglen[1] = {4};

    gh_redis_script_init(&s, "return 42");
    assert_true(wait_up(e->base, r, 1000));
    call(e, r, &flush, "SCRIPT", "FLUSH", NULL);
    gh_redis_stats(r, &st0);
    memset(&res, 0, sizeof(res));
    assert_int_equal(
        gh_redis_evalsha(r, &s, 0, NULL, NULL, 0, NULL, NULL, result_cb, &res, &cl.handle), GH_OK);
    /* The PING's reply follows NOSCRIPT and precedes the retry's. */
    assert_int_equal(gh_redis_command(r, 1, ping, pinglen, cancel_later_cb, &cl, NULL), GH_OK);
    assert_true(run_until(e->base, &cl.done, 1000));
    gh_redis_stats(r, &st1);
    assert_int_equal(st1.commands - st0.commands, 4); /* the retry was sent */
    call(e, r, &after, "PING", NULL, NULL);
    assert_int_equal(res.done, 0);
    gh_redis_free(r);
}

static void test_timeout(void **state)
{
    struct env *e = *state;
    struct gh_redis *r = client(e, e->main.port, NULL, NULL, 5);
    struct result res;
    struct gh_redis_stats st;
    uint64_t t0, ms;

    assert_true(wait_up(e->base, r, 1000));
    t0 = gh_now_ns();
    assert_int_equal(cmd(r, &res, "DEBUG", "SLEEP", "0.05", NULL), GH_OK);
    assert_true(run_until(e->base, &res.done, 1000));
    ms = (res.at_ns - t0) / 1000000;
    assert_int_equal(res.status, GH_REDIS_TIMEOUT);
    assert_true(ms >= 4 && ms <= 30);
    /* The late reply is read and dropped; the connection stays up. */
    run_until(e->base, NULL, 80);
    assert_int_equal(res.done, 1);
    assert_true(gh_redis_is_up(r));
    call(e, r, &res, "PING", NULL, NULL);
    assert_int_equal(res.status, GH_REDIS_OK);
    assert_string_equal(res.str, "PONG");
    gh_redis_stats(r, &st);
    assert_int_equal(st.timeouts, 1);
    gh_redis_free(r);
}

static void test_cancel(void **state)
{
    struct env *e = *state;
    struct gh_redis *r = client(e, e->main.port, NULL, NULL, 500);
    struct result cancelled, later, after;
    uint32_t h1 = 0, h2 = 0;

    assert_true(wait_up(e->base, r, 1000));
    assert_int_equal(cmd(r, &cancelled, "GET", "gh:k", NULL, &h1), GH_OK);
    assert_int_equal(cmd(r, &later, "PING", NULL, NULL, &h2), GH_OK);
    assert_int_not_equal(h1, 0);
    assert_int_not_equal(h1, h2);
    gh_redis_cancel(r, h1);
    gh_redis_cancel(r, 0xdeadbeef); /* unknown: ignored */
    assert_true(run_until(e->base, &later.done, 1000));
    call(e, r, &after, "PING", NULL, NULL);
    assert_int_equal(cancelled.done, 0);
    assert_int_equal(later.status, GH_REDIS_OK);
    gh_redis_cancel(r, h2); /* finished: ignored */
    gh_redis_free(r);
}

static void test_down_and_reconnect(void **state)
{
    struct env *e = *state;
    struct gh_redis *r = client(e, e->other.port, NULL, NULL, 20);
    struct result res[3], after;
    struct gh_redis_stats st;
    uint64_t t0;

    assert_true(wait_up(e->base, r, 1000));
    call(e, r, &after, "PING", NULL, NULL);
    assert_int_equal(after.status, GH_REDIS_OK);

    /* A stopped server: three timeouts in a row declare it down. */
    assert_int_equal(kill(e->other.pid, SIGSTOP), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cmd(r, &res[i], "PING", NULL, NULL, NULL), GH_OK);
    assert_true(run_until(e->base, &res[2].done, 1000));
    for (int i = 0; i < 3; i++)
        assert_int_equal(res[i].status, GH_REDIS_TIMEOUT);
    assert_false(gh_redis_is_up(r));
    t0 = gh_now_ns();
    assert_int_equal(cmd(r, &after, "PING", NULL, NULL, NULL), GH_ERROR);
    assert_true(gh_now_ns() - t0 < 1000000ull); /* at once */
    run_until(e->base, NULL, 10);
    assert_int_equal(after.done, 0); /* refused: no callback */

    /* Killed and restarted on the same port: back by itself. */
    server_kill(&e->other);
    run_until(e->base, NULL, 50);
    assert_false(gh_redis_is_up(r));
    assert_int_equal(server_start(&e->other), 0);
    assert_true(wait_up(e->base, r, 1500));
    call(e, r, &after, "PING", NULL, NULL);
    assert_int_equal(after.status, GH_REDIS_OK);
    gh_redis_stats(r, &st);
    assert_true(st.reconnects >= 1);
    assert_true(st.up);
    assert_true(st.errors >= 1);

    /* Freed with commands pending: their callbacks are dropped silently. */
    assert_int_equal(cmd(r, &res[0], "PING", NULL, NULL, NULL), GH_OK);
    gh_redis_free(r);
    run_until(e->base, NULL, 10);
    assert_int_equal(res[0].done, 0);

    /* The server goes away: waiting commands get IOERR. */
    r = client(e, e->other.port, NULL, NULL, 500);
    assert_true(wait_up(e->base, r, 1000));
    server_kill(&e->other);
    assert_int_equal(cmd(r, &res[0], "PING", NULL, NULL, NULL), GH_OK);
    assert_true(run_until(e->base, &res[0].done, 1000));
    assert_int_equal(res[0].status, GH_REDIS_IOERR);
    assert_false(gh_redis_is_up(r));
    assert_int_equal(cmd(r, &res[0], "PING", NULL, NULL, NULL), GH_ERROR);
    gh_redis_free(r);
}

/* ---- a DNS server for one name, on the test's loop ---- */

/* Answers A queries for any name with <a> (0: NXDOMAIN), AAAA and others
 * with no answer; counts the queries. */
struct dns {
    int fd;
    uint16_t port;
    uint32_t a;  /* network order; 0: NXDOMAIN */
    bool silent; /* queries are kept (held[]), not answered, until dns_answer_held */
    uint8_t held[4][512];
    size_t held_len[4];
    struct sockaddr_storage held_from[4];
    socklen_t held_fromlen[4];
    int nheld;
    int queries;
    char last[64]; /* the first label of the last query */
    struct event *ev;
};

static void dns_reply(struct dns *d, const uint8_t *q, ssize_t n, struct sockaddr_storage *from,
                      socklen_t flen);

static void dns_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dns *d = arg;
    uint8_t q[512];
    struct sockaddr_storage from;
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &flen);
    (void)what;

    if (n < 17) return;
    if (d->silent) {
        if (d->nheld < 4) {
            memcpy(d->held[d->nheld], q, (size_t)n);
            d->held_len[d->nheld] = (size_t)n;
            d->held_from[d->nheld] = from;
            d->held_fromlen[d->nheld] = flen;
            d->nheld++;
        }
        d->queries++;
        return;
    }
    dns_reply(d, q, n, &from, flen);
}

/* Answers the queries held while silent. */
static void dns_answer_held(struct dns *d)
{
    d->silent = false;
    for (int i = 0; i < d->nheld; i++) {
        d->queries--; /* counted once, when held */
        dns_reply(d, d->held[i], (ssize_t)d->held_len[i], &d->held_from[i], d->held_fromlen[i]);
    }
    d->nheld = 0;
}

static void dns_reply(struct dns *d, const uint8_t *q, ssize_t n, struct sockaddr_storage *from,
                      socklen_t flen)
{
    uint8_t out[600];
    size_t end = 12, o;
    uint16_t qtype;
    bool a_rec;

    while (end < (size_t)n && q[end] != 0)
        end += 1u + q[end];
    if (end + 5 > (size_t)n) return;
    end++; /* the root label */
    qtype = (uint16_t)(q[end] << 8 | q[end + 1]);
    end += 4;
    d->queries++;
    snprintf(d->last, sizeof(d->last), "%.*s", q[12] < 63 ? q[12] : 63, (const char *)q + 13);
    a_rec = qtype == 1 && d->a != 0;
    memcpy(out, q, end);
    out[2] = 0x80 | (q[2] & 0x01);       /* QR, RD copied */
    out[3] = 0x80 | (d->a == 0 ? 3 : 0); /* RA; NXDOMAIN or NOERROR */
    out[6] = 0;
    out[7] = a_rec ? 1 : 0; /* ANCOUNT */
    memset(out + 8, 0, 4);
    o = end;
    if (a_rec) {
        static const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4};
        memcpy(out + o, rr, sizeof(rr));
        o += sizeof(rr);
        memcpy(out + o, &d->a, 4);
        o += 4;
    }
    sendto(d->fd, out, o, 0, (struct sockaddr *)from, flen);
}

static void dns_start(struct env *e, struct dns *d)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    memset(d, 0, sizeof(*d));
    d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(d->fd >= 0);
    assert_int_equal(bind(d->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(d->fd, (struct sockaddr *)&a, &len), 0);
    d->port = ntohs(a.sin_port);
    d->ev = event_new(e->base, d->fd, EV_READ | EV_PERSIST, dns_cb, d);
    assert_non_null(d->ev);
    event_add(d->ev, NULL);
}

static void dns_stop(struct dns *d)
{
    event_free(d->ev);
    close(d->fd);
}

static struct gh_redis *named_client(struct env *e, const char *host, uint16_t port,
                                     const char *resolver)
{
    struct gh_redis_opts o = {
        .host = host,
        .port = port,
        .resolver = resolver,
        .timeout_ms = 200,
        .connect_timeout_ms = 100,
        .backoff_min_ms = 20,
        .backoff_max_ms = 100,
        .log_name = "test",
    };
    struct gh_redis *r = gh_redis_new(e->base, &o);

    assert_non_null(r);
    return r;
}

/* A host name: /etc/hosts answers "localhost" (no query leaves the machine);
 * with a resolver, the name is asked of it at every attempt, so one that
 * did not resolve at first is followed once it does, and a client freed
 * with a lookup in flight cancels it. */
static void test_host_names(void **state)
{
    struct env *e = *state;
    struct gh_redis *r = named_client(e, "localhost", e->main.port, NULL);
    struct result res;
    struct dns d;
    char resolver[32];
    int before;

    assert_true(wait_up(e->base, r, 1000));
    call(e, r, &res, "PING", NULL, NULL);
    assert_int_equal(res.status, GH_REDIS_OK);
    gh_redis_free(r);

    dns_start(e, &d);
    snprintf(resolver, sizeof(resolver), "127.0.0.1:%u", (unsigned)d.port);
    r = named_client(e, "redis.gatehouse.test", e->main.port, resolver);
    run_until(e->base, NULL, 150);
    assert_false(gh_redis_is_up(r));
    assert_true(d.queries >= 1);
    assert_int_equal(strcasecmp(d.last, "redis"), 0); /* evdns mixes the case (0x20 bits) */
    assert_int_equal(cmd(r, &res, "PING", NULL, NULL, NULL), GH_ERROR); /* down: refused */

    d.a = htonl(INADDR_LOOPBACK); /* the name appears */
    before = d.queries;
    assert_true(wait_up(e->base, r, 1500));
    assert_true(d.queries > before);
    call(e, r, &res, "PING", NULL, NULL);
    assert_int_equal(res.status, GH_REDIS_OK);
    gh_redis_free(r);

    /* A resolver that never answers: freed while the lookup waits. */
    event_del(d.ev);
    before = d.queries;
    r = named_client(e, "redis.gatehouse.test", e->main.port, resolver);
    run_until(e->base, NULL, 30);
    assert_false(gh_redis_is_up(r));
    gh_redis_free(r);
    run_until(e->base, NULL, 30);
    assert_int_equal(d.queries, before);
    dns_stop(&d);
}

/* A server that becomes a replica answers writes READONLY: the caller gets
 * the error reply, and the client reconnects (to look for the primary)
 * instead of keeping a connection that refuses every write. Its next hello
 * asks ROLE: while the server stays a replica the client stays down, its
 * backoff growing (a replica answers the rest of the hello too, so without
 * it the client would be up and down again every 20 ms); once the server is
 * a primary again, the client is up at the next try. */
static void test_readonly_reconnects(void **state)
{
    struct env *e = *state;
    struct gh_redis *r = client(e, e->other.port, NULL, NULL, 500);
    struct gh_redis *admin = client(e, e->other.port, NULL, NULL, 500);
    struct gh_redis_stats st;
    struct result res;
    uint64_t before;
    char port[8];

    assert_true(wait_up(e->base, r, 1000));
    assert_true(wait_up(e->base, admin, 1000));
    snprintf(port, sizeof(port), "%u", (unsigned)e->main.port);
    call(e, admin, &res, "REPLICAOF", "127.0.0.1", port);
    assert_string_equal(res.str, "OK");
    call(e, r, &res, "SET", "gh:ro", "x");
    assert_int_equal(res.status, GH_REDIS_OK);
    assert_int_equal(res.type, REDIS_REPLY_ERROR);
    assert_true(strncmp(res.str, "READONLY ", 9) == 0);
    assert_false(gh_redis_is_up(r));
    gh_redis_stats(r, &st);
    before = st.reconnects;
    /* 600 ms with the server still a replica: down throughout, and the
     * backoff (20 ms doubling to 200 ms here) gives about 5 tries. */
    {
        uint64_t end = gh_now_ns() + 600000000ull;
        bool ever_up = false;
        while (gh_now_ns() < end) {
            run_until(e->base, NULL, 2);
            ever_up |= gh_redis_is_up(r);
        }
        assert_false(ever_up);
    }
    gh_redis_stats(r, &st);
    assert_true(st.reconnects - before >= 2);
    if (st.reconnects - before > 8)
        fail_msg("%llu reconnects in 600 ms to a replica",
                 (unsigned long long)(st.reconnects - before));
    /* A primary again (asked on the admin client's own connection, which
     * never wrote and so stays up): the client is back at its next try. */
    call(e, admin, &res, "REPLICAOF", "NO", "ONE");
    assert_string_equal(res.str, "OK");
    assert_true(wait_up(e->base, r, 1000));
    call(e, r, &res, "SET", "gh:ro", "x");
    assert_string_equal(res.str, "OK");
    gh_redis_free(admin);
    gh_redis_free(r);
}

/* Commands queued while the name is looked up go out behind the hello
 * (SELECT here): a SET made then lands in the configured db. */
static void test_hello_before_commands_queued_during_lookup(void **state)
{
    struct env *e = *state;
    struct gh_redis_opts o = {
        .host = "redis.gatehouse.test",
        .port = e->main.port,
        .db = 3,
        .timeout_ms = 1000,
        .connect_timeout_ms = 500,
        .log_name = "test",
    };
    struct gh_redis *r, *check;
    struct result res;
    struct dns d;
    char resolver[32];

    dns_start(e, &d);
    d.a = htonl(INADDR_LOOPBACK);
    d.silent = true;
    snprintf(resolver, sizeof(resolver), "127.0.0.1:%u", (unsigned)d.port);
    o.resolver = resolver;
    r = gh_redis_new(e->base, &o);
    assert_non_null(r);
    run_until(e->base, NULL, 20);
    assert_true(d.nheld >= 1); /* the lookup waits */
    assert_int_equal(cmd(r, &res, "SET", "gh:db3", "queued-during-lookup", NULL), GH_OK);
    dns_answer_held(&d);
    assert_true(run_until(e->base, &res.done, 1000));
    assert_int_equal(res.status, GH_REDIS_OK);
    assert_string_equal(res.str, "OK");
    gh_redis_free(r);

    o.host = "127.0.0.1";
    o.resolver = NULL;
    check = gh_redis_new(e->base, &o); /* db 3, by address */
    assert_non_null(check);
    call(e, check, &res, "GET", "gh:db3", NULL);
    assert_string_equal(res.str, "queued-during-lookup");
    call(e, check, &res, "DEL", "gh:db3", NULL);
    gh_redis_free(check);
    dns_stop(&d);
}

static void test_auth(void **state)
{
    struct env *e = *state;
    struct gh_redis *r = client(e, e->auth.port, NULL, "secret", 500);
    struct result res;

    assert_true(wait_up(e->base, r, 1000));
    call(e, r, &res, "PING", NULL, NULL);
    assert_int_equal(res.status, GH_REDIS_OK);
    assert_string_equal(res.str, "PONG");
    gh_redis_free(r);

    /* Redis 6 form: AUTH <username> <password>. */
    r = client(e, e->auth.port, "default", "secret", 500);
    assert_true(wait_up(e->base, r, 1000));
    call(e, r, &res, "PING", NULL, NULL);
    assert_int_equal(res.status, GH_REDIS_OK);
    gh_redis_free(r);

    /* Wrong password: DOWN, commands refused at once. A command queued
     * during the first connect fails with IOERR rather than NOAUTH. */
    r = client(e, e->auth.port, NULL, "wrong", 500);
    assert_int_equal(cmd(r, &res, "PING", NULL, NULL, NULL), GH_OK);
    assert_true(run_until(e->base, &res.done, 1000));
    assert_int_equal(res.status, GH_REDIS_IOERR);
    assert_false(gh_redis_is_up(r));
    assert_int_equal(cmd(r, &res, "PING", NULL, NULL, NULL), GH_ERROR);
    run_until(e->base, NULL, 100); /* a retry or two, still refused */
    assert_false(gh_redis_is_up(r));
    gh_redis_free(r);

    /* No password at all: the hello PING gets NOAUTH. */
    r = client(e, e->auth.port, NULL, NULL, 500);
    run_until(e->base, NULL, 100);
    assert_false(gh_redis_is_up(r));
    gh_redis_free(r);
}

static void test_tls(void **state)
{
    struct env *e = *state;
    char ca[96];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX *other = SSL_CTX_new(TLS_client_method());
    struct gh_redis_opts o = {.host = "127.0.0.1",
                              .port = e->tls.port,
                              .tls = true,
                              .tls_ctx = ctx,
                              .password = "secret",
                              .db = 3,
                              .timeout_ms = 500,
                              .log_name = "tls"};
    struct gh_redis *r;
    struct result res;

    assert_non_null(ctx);
    assert_non_null(other);
    snprintf(ca, sizeof(ca), "%s/cert.pem", e->tls.dir);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    r = gh_redis_new(e->base, &o);
    assert_non_null(r);
    assert_true(wait_up(e->base, r, 1000));
    call(e, r, &res, "SET", "gh:tls", "yes");
    call(e, r, &res, "CLIENT", "INFO", NULL);
    assert_int_equal(res.type, REDIS_REPLY_STRING);
    assert_non_null(strstr(res.str, " db=3 ")); /* SELECT went first */
    gh_redis_free(r);

    /* A context that does not trust the certificate: DOWN. */
    SSL_CTX_set_verify(other, SSL_VERIFY_PEER, NULL);
    o.tls_ctx = other;
    r = gh_redis_new(e->base, &o);
    assert_non_null(r);
    assert_int_equal(cmd(r, &res, "PING", NULL, NULL, NULL), GH_OK);
    assert_true(run_until(e->base, &res.done, 1000));
    assert_int_equal(res.status, GH_REDIS_IOERR);
    assert_false(gh_redis_is_up(r));
    gh_redis_free(r);
    SSL_CTX_free(ctx);
    SSL_CTX_free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_evalsha),
        cmocka_unit_test(test_evalsha_cancel_across_retry),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_host_names),
        cmocka_unit_test(test_hello_before_commands_queued_during_lookup),
        cmocka_unit_test(test_readonly_reconnects),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_down_and_reconnect),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
