/* Tests for the JWKS source (src/auth/jwks_source.c): a file picked up when
 * it changes, a URL served by a tiny HTTP/1.1 server started here on
 * 127.0.0.1 (plain sockets, one connection at a time), rotation on kick(),
 * rate limiting, redirects, size limits, failures that keep the last good
 * set, and a prompt stop during a hung transfer.
 *
 * Waits poll with a 2 s ceiling, so a broken source fails the test instead
 * of hanging it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/jwks.h"
#include "auth/jwks_source.h"
#include "core/clock.h"

/* ---- key sets ---- */

/* A JWKS text with one fresh Ed25519 key named <kid>; free with free(). */
static char *jwks_text(const char *kid)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    struct gh_jwks *set = gh_jwks_new();
    struct gh_err err;
    char *text;

    assert_non_null(k);
    assert_int_equal(gh_jwks_add(set, k, kid, GH_JWA_EDDSA, &err), GH_OK);
    text = gh_jwks_to_json(set, &err);
    assert_non_null(text);
    gh_jwks_release(set);
    EVP_PKEY_free(k);
    return text;
}

static bool has_kid(struct gh_jwks_source *src, const char *kid)
{
    struct gh_jwks *set = gh_jwks_source_acquire(src);
    bool found = gh_jwks_find(set, kid, strlen(kid)) != NULL;

    gh_jwks_release(set);
    return found;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls until <kid> is in the current set, at most <ms>. */
static bool wait_kid(struct gh_jwks_source *src, const char *kid, unsigned ms)
{
    for (unsigned waited = 0; waited <= ms; waited += 20) {
        if (has_kid(src, kid)) return true;
        sleep_ms(20);
    }
    return false;
}

static bool wait_failures(struct gh_jwks_source *src, uint32_t n, unsigned ms)
{
    struct gh_jwks_source_status st;

    for (unsigned waited = 0; waited <= ms; waited += 20) {
        gh_jwks_source_status(src, &st);
        if (st.failures >= n) return true;
        sleep_ms(20);
    }
    return false;
}

/* What the report callback saw. */
struct reports {
    atomic_int ok, failed;
    pthread_mutex_t lock;
    char last[256];
};

static void on_report(void *arg, bool ok, const char *msg)
{
    struct reports *r = arg;

    atomic_fetch_add(ok ? &r->ok : &r->failed, 1);
    pthread_mutex_lock(&r->lock);
    snprintf(r->last, sizeof(r->last), "%s", msg);
    pthread_mutex_unlock(&r->lock);
}

/* ---- file source ---- */

static void write_file(const char *path, const char *text, int mtime_bump)
{
    FILE *f = fopen(path, "w");
    struct timespec times[2];

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    /* Same-second rewrites can share an mtime on coarse file systems. */
    clock_gettime(CLOCK_REALTIME, &times[0]);
    times[0].tv_sec += mtime_bump;
    times[1] = times[0];
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

static void test_file_source(void **state)
{
    char path[] = "/tmp/gh-jwks-XXXXXX";
    int fd = mkstemp(path);
    char *a = jwks_text("k1"), *b = jwks_text("k2");
    struct reports rep = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct gh_jwks_source_opts opts = {
        .location = path,
        .refresh_ms = 50,
        .min_refresh_ms = 50,
        .report = on_report,
        .report_arg = &rep,
    };
    struct gh_jwks_source_status st;
    struct gh_jwks_source *src;
    struct gh_jwks *old;
    struct gh_err err;
    uint64_t gen;

    assert_true(fd >= 0);
    close(fd);
    write_file(path, a, 0);
    src = gh_jwks_source_new(&opts, &err);
    assert_non_null(src);
    assert_int_equal(gh_jwks_source_wait(src, 0), GH_OK);
    assert_int_equal(gh_jwks_source_generation(src), 1);
    assert_true(has_kid(src, "k1"));

    /* A reader keeps its set across a swap. */
    old = gh_jwks_source_acquire(src);
    gen = gh_jwks_source_generation(src);
    write_file(path, b, 10);
    assert_true(wait_kid(src, "k2", 2000));
    assert_false(has_kid(src, "k1"));
    assert_true(gh_jwks_source_generation(src) > gen);
    assert_non_null(gh_jwks_find(old, "k1", 2));
    gh_jwks_release(old);

    /* The same bytes again (new mtime): nothing changes. */
    gen = gh_jwks_source_generation(src);
    write_file(path, b, 20);
    sleep_ms(300);
    assert_int_equal(gh_jwks_source_generation(src), gen);

    /* A bad file is reported once and the last good set stays. */
    write_file(path, "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}", 30);
    assert_true(wait_failures(src, 1, 2000));
    sleep_ms(300);
    gh_jwks_source_status(src, &st);
    assert_int_equal(st.failures, 1);
    assert_non_null(strstr(st.last_error, "oct"));
    assert_int_equal(st.nkeys, 1);
    assert_true(has_kid(src, "k2"));
    assert_int_equal(atomic_load(&rep.failed), 1);
    assert_true(atomic_load(&rep.ok) >= 1);

    /* A file that goes away: the same. */
    unlink(path);
    assert_true(wait_failures(src, 2, 2000));
    assert_true(has_kid(src, "k2"));
    gh_jwks_source_status(src, &st);
    assert_non_null(strstr(st.last_error, "No such file"));

    /* And comes back good. */
    write_file(path, a, 40);
    assert_true(wait_kid(src, "k1", 2000));
    gh_jwks_source_status(src, &st);
    assert_int_equal(st.failures, 0);
    assert_string_equal(st.last_error, "");

    gh_jwks_source_free(src);
    unlink(path);

    /* At start, a missing or bad file is an error. */
    assert_null(gh_jwks_source_new(&opts, &err));
    assert_non_null(strstr(err.msg, "No such file"));
    write_file(path, "{\"keys\":[]}", 0);
    assert_null(gh_jwks_source_new(&opts, &err));
    assert_non_null(strstr(err.msg, "no usable key"));
    unlink(path);
    opts.location = "ftp://example.com/jwks";
    assert_null(gh_jwks_source_new(&opts, &err));
    opts.location = "";
    assert_null(gh_jwks_source_new(&opts, &err));
    free(a);
    free(b);
}

/* ---- a tiny HTTP server ---- */

struct server {
    int fd, port;
    pthread_t thread;
    atomic_bool stop;
    atomic_int requests;
    pthread_mutex_t lock;
    char *body;  /* served at /jwks; owned */
    int status;  /* for /jwks */
    int hung[8]; /* connections of /hang, never answered */
    int nhung;
};

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static void reply(int fd, int status, const char *extra, const char *body, size_t len)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n%s\r\n",
                     status, len, extra);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

static void serve(struct server *s, int c)
{
    char req[4096], path[256] = "";
    size_t got = 0;

    while (got < sizeof(req) - 1 && memmem(req, got, "\r\n\r\n", 4) == NULL) {
        struct pollfd p = {c, POLLIN, 0};
        ssize_t n;
        if (poll(&p, 1, 1000) <= 0) break;
        n = recv(c, req + got, sizeof(req) - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    req[got] = '\0';
    sscanf(req, "GET %255s ", path);
    atomic_fetch_add(&s->requests, 1);
    if (strcmp(path, "/hang") == 0 && s->nhung < 8) {
        s->hung[s->nhung++] = c;
        return;
    }
    if (strcmp(path, "/jwks") == 0) {
        pthread_mutex_lock(&s->lock);
        reply(c, s->status, "", s->body, strlen(s->body));
        pthread_mutex_unlock(&s->lock);
    } else if (strcmp(path, "/redirect") == 0) {
        reply(c, 302, "Location: /jwks\r\n", "", 0);
    } else if (strcmp(path, "/loop") == 0) {
        reply(c, 302, "Location: /loop\r\n", "", 0);
    } else if (strcmp(path, "/big") == 0) {
        /* No Content-Length: the cap must hold while streaming. */
        static char chunk[65536];
        const char *head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
        memset(chunk, ' ', sizeof(chunk));
        send_all(c, head, strlen(head));
        for (int i = 0; i < 32; i++)
            send_all(c, chunk, sizeof(chunk));
    } else {
        reply(c, 404, "", "{}", 2);
    }
    close(c);
}

static void *server_main(void *arg)
{
    struct server *s = arg;

    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->fd, POLLIN, 0};
        int c;
        if (poll(&p, 1, 20) <= 0) continue;
        c = accept(s->fd, NULL, NULL);
        if (c >= 0) serve(s, c);
    }
    return NULL;
}

static void server_start(struct server *s, const char *body)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->body = strdup(body);
    s->status = 200;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_set(struct server *s, int status, const char *body)
{
    pthread_mutex_lock(&s->lock);
    s->status = status;
    if (body != NULL) {
        free(s->body);
        s->body = strdup(body);
    }
    pthread_mutex_unlock(&s->lock);
}

/* Stops accepting and closes the port: connections are refused after this. */
static void server_stop(struct server *s)
{
    if (s->fd < 0) return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->fd);
    s->fd = -1;
    for (int i = 0; i < s->nhung; i++)
        close(s->hung[i]);
    free(s->body);
    s->body = NULL;
    pthread_mutex_destroy(&s->lock);
}

static void url_of(char *buf, size_t size, const struct server *s, const char *path)
{
    snprintf(buf, size, "http://127.0.0.1:%d%s", s->port, path);
}

/* ---- URL source ---- */

static void test_url_rotation(void **state)
{
    char *a = jwks_text("k1"), *b = jwks_text("k2"), *c = jwks_text("k3"), url[128];
    struct reports rep = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct server srv;
    struct gh_jwks_source_opts opts = {
        .refresh_ms = 60000,
        .min_refresh_ms = 300,
        .backoff_min_ms = 100,
        .backoff_max_ms = 400,
        .report = on_report,
        .report_arg = &rep,
    };
    struct gh_jwks_source_status st;
    struct gh_jwks_source *src;
    struct gh_err err;
    uint64_t gen;
    int before;

    server_start(&srv, a);
    url_of(url, sizeof(url), &srv, "/jwks");
    opts.location = url;
    src = gh_jwks_source_new(&opts, &err);
    assert_non_null(src);
    assert_int_equal(gh_jwks_source_wait(src, 2000), GH_OK);
    assert_true(has_kid(src, "k1"));
    assert_int_equal(atomic_load(&srv.requests), 1);

    /* The issuer rotates; a token with the new kid kicks a refresh. */
    server_set(&srv, 200, b);
    gen = gh_jwks_source_generation(src);
    gh_jwks_source_kick(src);
    assert_true(wait_kid(src, "k2", 2000));
    assert_false(has_kid(src, "k1"));
    assert_true(gh_jwks_source_generation(src) == gen + 1);

    /* A storm of kicks costs at most one fetch per min_refresh. */
    sleep_ms(350);
    before = atomic_load(&srv.requests);
    for (int i = 0; i < 1000; i++)
        gh_jwks_source_kick(src);
    sleep_ms(200);
    for (int i = 0; i < 1000; i++)
        gh_jwks_source_kick(src);
    sleep_ms(200);
    assert_true(atomic_load(&srv.requests) - before >= 1);
    assert_true(atomic_load(&srv.requests) - before <= 2);
    /* Same bytes: no new generation. */
    assert_int_equal(gh_jwks_source_generation(src), gen + 1);

    /* Errors keep the last good set, back off, and recover. */
    server_set(&srv, 500, NULL);
    sleep_ms(350);
    gh_jwks_source_kick(src);
    assert_true(wait_failures(src, 2, 2000)); /* retried after the backoff */
    gh_jwks_source_status(src, &st);
    assert_non_null(strstr(st.last_error, "HTTP status 500"));
    assert_true(has_kid(src, "k2"));
    server_set(&srv, 200, c);
    assert_true(wait_kid(src, "k3", 2000)); /* the next retry, within backoff_max */
    gh_jwks_source_status(src, &st);
    assert_int_equal(st.failures, 0);
    assert_true(st.last_ok_ms > 0);

    /* The server goes away: the last good set stays. */
    gen = gh_jwks_source_generation(src);
    server_stop(&srv);
    gh_jwks_source_kick(src);
    assert_true(wait_failures(src, 1, 2000));
    assert_true(has_kid(src, "k3"));
    assert_int_equal(gh_jwks_source_generation(src), gen);
    gh_jwks_source_status(src, &st);
    assert_int_equal(st.nkeys, 1);
    assert_true(atomic_load(&rep.failed) >= 3);
    assert_true(atomic_load(&rep.ok) >= 3);

    gh_jwks_source_free(src);
    free(a);
    free(b);
    free(c);
}

static void test_url_limits(void **state)
{
    char *a = jwks_text("k1"), url[128];
    struct server srv;
    struct gh_jwks_source_opts opts = {.refresh_ms = 60000, .backoff_min_ms = 60000};
    struct gh_jwks_source_status st;
    struct gh_jwks_source *src;
    struct gh_err err;
    uint64_t t0;

    server_start(&srv, a);

    /* A redirect to the set is followed. */
    url_of(url, sizeof(url), &srv, "/redirect");
    opts.location = url;
    src = gh_jwks_source_new(&opts, &err);
    assert_non_null(src);
    assert_int_equal(gh_jwks_source_wait(src, 2000), GH_OK);
    assert_true(has_kid(src, "k1"));
    gh_jwks_source_free(src);

    /* A redirect loop stops after 3. */
    url_of(url, sizeof(url), &srv, "/loop");
    src = gh_jwks_source_new(&opts, &err);
    assert_true(wait_failures(src, 1, 2000));
    assert_int_equal(gh_jwks_source_wait(src, 0), GH_AGAIN);
    assert_null(gh_jwks_source_acquire(src));
    gh_jwks_source_status(src, &st);
    assert_non_null(strstr(st.last_error, "redirect"));
    gh_jwks_source_free(src);

    /* A body over max_bytes is refused while streaming. */
    url_of(url, sizeof(url), &srv, "/big");
    src = gh_jwks_source_new(&opts, &err);
    assert_true(wait_failures(src, 1, 2000));
    gh_jwks_source_status(src, &st);
    assert_non_null(strstr(st.last_error, "over 1048576 bytes"));
    gh_jwks_source_free(src);

    /* 404. */
    url_of(url, sizeof(url), &srv, "/nothing");
    src = gh_jwks_source_new(&opts, &err);
    assert_true(wait_failures(src, 1, 2000));
    gh_jwks_source_status(src, &st);
    assert_non_null(strstr(st.last_error, "HTTP status 404"));
    gh_jwks_source_free(src);

    /* Stopping during a transfer that never ends is prompt. */
    url_of(url, sizeof(url), &srv, "/hang");
    src = gh_jwks_source_new(&opts, &err);
    sleep_ms(200);
    t0 = gh_now_ns();
    gh_jwks_source_free(src);
    assert_true(gh_now_ns() - t0 < 200000000ull); /* 200 ms, generous for sanitizers */

    /* Nothing listening: wait() times out, nothing published. */
    server_stop(&srv);
    src = gh_jwks_source_new(&opts, &err);
    assert_non_null(src);
    assert_int_equal(gh_jwks_source_wait(src, 300), GH_AGAIN);
    assert_int_equal(gh_jwks_source_generation(src), 0);
    gh_jwks_source_free(src);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_source),
        cmocka_unit_test(test_url_rotation),
        cmocka_unit_test(test_url_limits),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
