/* Tests of src/hooks/ssrf.c: a table of addresses and their class, the
 * allow-list, and endpoint URLs accepted or refused at creation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "hooks/ssrf.h"

/* Builds a sockaddr from text, IPv4 or IPv6. */
static const struct sockaddr *sa_of(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
        s6->sin6_family = AF_INET6;
    }
    return (const struct sockaddr *)ss;
}

static void test_classes(void **state)
{
    static const struct {
        const char *addr;
        const char *why; /* NULL: public */
    } cases[] = {
        {"0.0.0.0", "unspecified"},
        {"0.1.2.3", "unspecified"},
        {"10.1.2.3", "private"},
        {"100.64.0.1", "shared"},
        {"100.127.255.255", "shared"},
        {"100.128.0.1", NULL},
        {"127.0.0.1", "loopback"},
        {"127.255.255.254", "loopback"},
        {"169.254.169.254", "metadata"},
        {"169.254.1.1", "link_local"},
        {"172.15.255.255", NULL},
        {"172.16.0.1", "private"},
        {"172.31.255.255", "private"},
        {"172.32.0.1", NULL},
        {"192.168.1.1", "private"},
        {"192.169.1.1", NULL},
        {"224.0.0.1", "multicast"},
        {"239.255.255.255", "multicast"},
        {"240.0.0.1", "reserved"},
        {"255.255.255.255", "reserved"},
        {"8.8.8.8", NULL},
        {"93.184.216.34", NULL},
        {"::", "unspecified"},
        {"::1", "loopback"},
        {"fc00::1", "unique_local"},
        {"fd12:3456::1", "unique_local"},
        {"fe80::1", "link_local"},
        {"febf::1", "link_local"},
        {"fec0::1", "site_local"},
        {"192.0.0.8", "reserved"},
        {"192.0.2.10", "documentation"},
        {"198.51.100.7", "documentation"},
        {"203.0.113.9", "documentation"},
        {"198.18.0.1", "benchmarking"},
        {"198.19.255.255", "benchmarking"},
        {"198.20.0.1", NULL},
        {"192.0.1.1", NULL},
        {"2002:7f00:1::", "loopback"}, /* 6to4 of 127.0.0.1 */
        {"2002:0a00:0001::1", "private"},
        {"2002:0808:0808::1", NULL},
        {"2001:0:4136:e378::1", "tunnel"}, /* Teredo */
        {"64:ff9b:1::1", "reserved"},
        {"2001:db8::1", "documentation"},
        {"100::1", "reserved"},
        {"::ffff:0:7f00:1", "loopback"}, /* SIIT-translated 127.0.0.1 */
        {"ff02::1", "multicast"},
        {"fd00:ec2::254", "metadata"},
        {"::ffff:127.0.0.1", "loopback"},
        {"::ffff:10.0.0.1", "private"},
        {"::ffff:169.254.169.254", "metadata"},
        {"::ffff:8.8.8.8", NULL},
        {"::127.0.0.1", "loopback"},
        {"64:ff9b::a9fe:a9fe", "metadata"},
        {"64:ff9b::808:808", NULL},
        {"2001:4860:4860::8888", NULL},
    };
    struct sockaddr_storage ss;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = gh_hooks_addr_blocked(sa_of(cases[i].addr, &ss), NULL, 0);
        if (cases[i].why == NULL) {
            if (got) fail_msg("%s: blocked as %s, want public", cases[i].addr, got);
        } else if (got == NULL || strcmp(got, cases[i].why) != 0) {
            fail_msg("%s: %s, want %s", cases[i].addr, got ? got : "public", cases[i].why);
        }
    }
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_string_equal(gh_hooks_addr_blocked(&un, NULL, 0), "not_ip");
}

static void test_cidr_parse(void **state)
{
    static const char *const good[] = {"127.0.0.1", "10.0.0.0/8", "0.0.0.0/0",     "::1",
                                       "fd00::/8",  "::/0",       "192.168.1.0/24"};
    static const char *const bad[] = {"",   "10.0.0.1/8", "10.0.0.0/33", "::1/129", "10.0.0.0/",
                                      "/8", "localhost",  "10.0.0.0/x",  "1.2.3"};
    struct gh_hooks_cidr c;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (gh_hooks_cidr_parse(good[i], &c) != 0) fail_msg("refused %s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (gh_hooks_cidr_parse(bad[i], &c) == 0) fail_msg("accepted %s", bad[i]);
    assert_int_equal(gh_hooks_cidr_parse("10.0.0.0/8", &c), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.bits, 8);
}

static void test_allow_list(void **state)
{
    struct gh_hooks_cidr allow[2];
    struct sockaddr_storage ss;

    assert_int_equal(gh_hooks_cidr_parse("127.0.0.1", &allow[0]), 0);
    assert_int_equal(gh_hooks_cidr_parse("10.0.0.0/8", &allow[1]), 0);
    assert_null(gh_hooks_addr_blocked(sa_of("127.0.0.1", &ss), allow, 2));
    assert_string_equal(gh_hooks_addr_blocked(sa_of("127.0.0.2", &ss), allow, 2), "loopback");
    assert_null(gh_hooks_addr_blocked(sa_of("10.200.1.1", &ss), allow, 2));
    /* An IPv4-mapped address matches its IPv4 entry. */
    assert_null(gh_hooks_addr_blocked(sa_of("::ffff:127.0.0.1", &ss), allow, 2));
    /* ::1 is not 127.0.0.1. */
    assert_string_equal(gh_hooks_addr_blocked(sa_of("::1", &ss), allow, 2), "loopback");
    assert_string_equal(gh_hooks_addr_blocked(sa_of("169.254.169.254", &ss), allow, 2), "metadata");
}

static void test_url_check(void **state)
{
    static const struct {
        const char *url;
        bool ok;
    } cases[] = {
        {"https://hooks.example.com/in", true},
        {"http://hooks.example.com:8080/a?b=c", true},
        {"HTTPS://HOOKS.EXAMPLE.COM/", true},
        {"http://localhost:9000/", true}, /* a name: checked at delivery */
        {"http://8.8.8.8/", true},
        {"http://127.0.0.1:9000/", false},
        {"http://127.1/", false},
        {"http://0x7f.0.0.1/", false},
        {"http://2130706433/", false},
        {"http://10.1.2.3/", false},
        {"http://169.254.169.254/latest/meta-data", false},
        {"http://[::1]:80/", false},
        {"http://[::ffff:127.0.0.1]/", false},
        {"http://[fd00:ec2::254]/", false},
        {"http://0.0.0.0/", false},
        {"ftp://example.com/", false},
        {"file:///etc/passwd", false},
        {"gopher://example.com/", false},
        {"//example.com/", false},
        {"example.com", false},
        {"http://user:pass@example.com/", false},
        {"http://user@example.com/", false},
        {"http:///path", false},
        {"http://example.com/#frag", false},
        {"http://exa mple.com/", false},
        {"", false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = gh_hooks_url_check(cases[i].url, NULL, 0);
        if (cases[i].ok && why) fail_msg("%s refused: %s", cases[i].url, why);
        if (!cases[i].ok && why == NULL) fail_msg("%s accepted", cases[i].url);
    }
    struct gh_hooks_cidr allow;
    assert_int_equal(gh_hooks_cidr_parse("127.0.0.1", &allow), 0);
    assert_null(gh_hooks_url_check("http://127.0.0.1:9000/", &allow, 1));
    assert_non_null(gh_hooks_url_check("http://10.1.2.3/", &allow, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_url_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
