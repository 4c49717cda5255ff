/* libFuzzer harness for what the webhooks module reads from people and
 * receivers: endpoint URLs (gh_hooks_url_check), allow-list entries
 * (gh_hooks_cidr_parse) and Retry-After values (gh_hooks_retry_after),
 * src/hooks/ssrf.c and src/hooks/schedule.c (FUZZ_LIBS_fuzz_hooks).
 *
 * The first byte picks the parser ('U', 'C' or 'R'; others: all three), the
 * rest is the text. Checks:
 * 1. an accepted URL is at most 2048 bytes and starts with http:// or
 *    https:// (any case), without control bytes;
 * 2. a parsed CIDR has a family, a prefix length within it and no bit set
 *    past it, and its own network address is allowed by an allow-list
 *    holding only it;
 * 3. a Retry-After delay is at most 24 h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_check.h"

#include "hooks/schedule.h"
#include "hooks/ssrf.h"

static void url(const char *s)
{
    if (gh_hooks_url_check(s, NULL, 0) != NULL) return;
    CHECK(strlen(s) <= 2048);
    CHECK(strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0);
    for (const char *p = s; *p; p++)
        CHECK((unsigned char)*p > 0x20 && *p != 0x7f);
}

static void cidr(const char *s)
{
    struct gh_hooks_cidr c;
    struct sockaddr_storage ss;

    if (gh_hooks_cidr_parse(s, &c) != 0) return;
    CHECK(c.family == AF_INET || c.family == AF_INET6);
    unsigned max = c.family == AF_INET ? 32 : 128;
    CHECK(c.bits <= max);
    for (unsigned i = c.bits; i < max; i++)
        CHECK((c.addr[i / 8] & (0x80u >> (i % 8))) == 0);
    memset(&ss, 0, sizeof(ss));
    if (c.family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, c.addr, 4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, c.addr, 16);
    }
    CHECK(gh_hooks_addr_blocked((struct sockaddr *)&ss, &c, 1) == NULL);
}

static void retry_after(const char *s)
{
    uint64_t d = 0;

    if (gh_hooks_retry_after(s, 1700000000000LL, &d)) CHECK(d <= 24ull * 3600 * 1000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size == 0 || size > 4096) return 0;
    s = malloc(size);
    if (s == NULL) return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    switch (data[0]) {
    case 'U': url(s); break;
    case 'C': cidr(s); break;
    case 'R': retry_after(s); break;
    default:
        url(s);
        cidr(s);
        retry_after(s);
    }
    free(s);
    return 0;
}
