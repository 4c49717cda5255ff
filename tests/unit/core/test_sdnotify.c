/* Tests of systemd's readiness protocol (src/core/sdnotify.c): datagrams
 * reach a socket named by a path or in the abstract namespace ("@name"),
 * $NOTIFY_SOCKET is unset once read (a program the gateway starts must not
 * take it), and without a usable value nothing is sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/sdnotify.h"

/* A datagram socket bound to <name> (a path, or "@..." abstract). */
static int listener(const char *name)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memcpy(a.sun_path, name, len);
    if (name[0] == '@') a.sun_path[0] = '\0';
    assert_int_equal(
        bind(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)),
        0);
    return fd;
}

static void expect(int fd, const char *want)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void round_trip(const char *name)
{
    struct gh_sdnotify n;
    int fd = listener(name);

    setenv("NOTIFY_SOCKET", name, 1);
    gh_sdnotify_open(&n);
    assert_null(getenv("NOTIFY_SOCKET"));
    assert_true(n.fd >= 0);
    gh_sdnotify_send(&n, "READY=1\nSTATUS=serving");
    expect(fd, "READY=1\nSTATUS=serving");
    gh_sdnotify_reloading(&n);
    {
        char buf[128];
        ssize_t got = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        assert_true(got > 0);
        buf[got] = '\0';
        assert_memory_equal(buf, "RELOADING=1\nMONOTONIC_USEC=", 27);
        assert_true(strtoull(buf + 27, NULL, 10) > 0);
    }
    gh_sdnotify_close(&n);
    close(fd);
}

static void test_a_path(void **state)
{
    char path[64];

    (void)state;
    snprintf(path, sizeof(path), "/tmp/gh-sdnotify-%d.sock", (int)getpid());
    unlink(path);
    round_trip(path);
    unlink(path);
}

static void test_the_abstract_namespace(void **state)
{
    char name[64];

    (void)state;
    snprintf(name, sizeof(name), "@gh-sdnotify-%d", (int)getpid());
    round_trip(name);
}

static void test_nothing_without_a_usable_value(void **state)
{
    struct gh_sdnotify n;
    char long_path[200];

    (void)state;
    unsetenv("NOTIFY_SOCKET");
    gh_sdnotify_open(&n);
    assert_int_equal(n.fd, -1);
    gh_sdnotify_send(&n, "READY=1"); /* a no-op */
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    gh_sdnotify_open(&n);
    assert_int_equal(n.fd, -1);
    assert_null(getenv("NOTIFY_SOCKET"));
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    setenv("NOTIFY_SOCKET", long_path, 1);
    gh_sdnotify_open(&n);
    assert_int_equal(n.fd, -1);
    gh_sdnotify_close(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_path),
        cmocka_unit_test(test_the_abstract_namespace),
        cmocka_unit_test(test_nothing_without_a_usable_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
