/* Address classification, allow-list CIDRs and endpoint URL checks for
 * outbound webhooks (see ssrf.h). */
#include "hooks/ssrf.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define URL_MAX 2048

int gh_hooks_cidr_parse(const char *text, struct gh_hooks_cidr *out)
{
    char buf[64];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    unsigned max;

    if (alen == 0 || alen >= sizeof(buf)) return GH_ERROR;
    memcpy(buf, text, alen);
    buf[alen] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return GH_ERROR;
    }
    out->bits = max;
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end || b < 0 || b > (long)max) return GH_ERROR;
        out->bits = (unsigned)b;
    }
    /* "10.0.0.1/8" is a typo for one of two things: refuse it. */
    for (unsigned i = out->bits; i < max; i++)
        if (out->addr[i / 8] & (0x80u >> (i % 8))) return GH_ERROR;
    return GH_OK;
}

static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, net, full) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static bool allowed(int family, const uint8_t *a, const struct gh_hooks_cidr *allow, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (allow[i].family == family && prefix_match(a, allow[i].addr, allow[i].bits)) return true;
    return false;
}

/* The class of an IPv4 address (network order), NULL when public. */
static const char *v4_class(const uint8_t a[4])
{
    if (a[0] == 0) return "unspecified";
    if (a[0] == 10) return "private";
    if (a[0] == 100 && (a[1] & 0xc0) == 64) return "shared"; /* RFC 6598 CGNAT */
    if (a[0] == 127) return "loopback";
    if (a[0] == 169 && a[1] == 254) return a[2] == 169 && a[3] == 254 ? "metadata" : "link_local";
    if (a[0] == 172 && (a[1] & 0xf0) == 16) return "private";
    if (a[0] == 192 && a[1] == 168) return "private";
    if (a[0] == 192 && a[1] == 0 && a[2] == 0) return "reserved"; /* RFC 6890 protocol space */
    if ((a[0] == 192 && a[1] == 0 && a[2] == 2) || (a[0] == 198 && a[1] == 51 && a[2] == 100) ||
        (a[0] == 203 && a[1] == 0 && a[2] == 113))
        return "documentation"; /* RFC 5737: never routed, so never a real receiver */
    if (a[0] == 198 && (a[1] & 0xfe) == 18) return "benchmarking"; /* RFC 2544 */
    if (a[0] >= 224 && a[0] < 240) return "multicast";
    if (a[0] >= 240) return "reserved";
    return NULL;
}

static const char *v6_class(const uint8_t a[16], const uint8_t **v4)
{
    static const uint8_t zero[16] = {0};
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0}; /* SIIT */
    static const uint8_t ec2[16] = {0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};

    *v4 = NULL;
    if (memcmp(a, zero, 16) == 0) return "unspecified";
    if (memcmp(a, zero, 15) == 0 && a[15] == 1) return "loopback";
    if (memcmp(a, ec2, 16) == 0) return "metadata";
    /* Forms that carry an IPv4 address: judged as that address. */
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0 || memcmp(a, zero, 12) == 0 ||
        memcmp(a, translated, 12) == 0) {
        *v4 = a + 12;
        return v4_class(a + 12);
    }
    /* 6to4 (2002::/16) carries its IPv4 address in bytes 2-5. */
    if (a[0] == 0x20 && a[1] == 0x02) {
        *v4 = a + 2;
        return v4_class(a + 2);
    }
    /* Tunnels and translators whose far end is not what the address says,
     * and ranges that are never a real receiver. */
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) return "tunnel"; /* Teredo */
    if (a[0] == 0 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0 && a[5] == 1)
        return "reserved"; /* 64:ff9b:1::/48, local-use NAT64 (RFC 8215) */
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) return "documentation";
    if (a[0] == 0x01 && a[1] == 0 && memcmp(a + 2, zero, 6) == 0) return "reserved"; /* 100::/64 */
    if ((a[0] & 0xfe) == 0xfc) return "unique_local";
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) return "site_local"; /* fec0::/10, deprecated */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return "link_local";
    if (a[0] == 0xff) return "multicast";
    return NULL;
}

const char *gh_hooks_addr_blocked(const struct sockaddr *sa, const struct gh_hooks_cidr *allow,
                                  size_t nallow)
{
    if (sa->sa_family == AF_INET) {
        const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        const char *why = v4_class(a);
        return why && !allowed(AF_INET, a, allow, nallow) ? why : NULL;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        const uint8_t *v4;
        const char *why = v6_class(a, &v4);
        if (why == NULL) return NULL;
        if (allowed(AF_INET6, a, allow, nallow)) return NULL;
        if (v4 && allowed(AF_INET, v4, allow, nallow)) return NULL;
        return why;
    }
    return "not_ip";
}

/* Is <host> (as the URL parser gives it) a literal address? Fills <ss>. */
static bool literal(const char *host, struct sockaddr_storage *ss)
{
    char buf[64];
    size_t n = strlen(host);

    memset(ss, 0, sizeof(*ss));
    if (host[0] == '[' && n > 2 && n - 2 < sizeof(buf) && host[n - 1] == ']') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        const char *pct;
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        pct = strchr(buf, '%'); /* a zone id: judge the address */
        if (pct) buf[pct - buf] = '\0';
        s6->sin6_family = AF_INET6;
        return inet_pton(AF_INET6, buf, &s6->sin6_addr) == 1;
    }
    /* inet_aton reads every spelling a resolver would ("127.1", "0x7f.1",
     * "2130706433"), so none of them slips past as a "name". */
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    return inet_aton(host, &s4->sin_addr) != 0;
}

const char *gh_hooks_url_check(const char *url, const struct gh_hooks_cidr *allow, size_t nallow)
{
    static const char *const refusals[] = {
        NULL,
        "url must be an absolute http:// or https:// URL",
        "url must not carry user information",
        "url must name a host",
        "url must not have a fragment",
        "url points to a blocked address (loopback, private, link-local or metadata); an "
        "operator may allow it with webhooks.allow_private",
    };
    CURLU *u;
    char *scheme = NULL, *host = NULL, *user = NULL, *frag = NULL;
    struct sockaddr_storage ss;
    int why = 0;

    if (strlen(url) > URL_MAX) return "url has more than 2048 bytes";
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        return refusals[1];
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '\\') return refusals[1];
    /* curl reads "http:///x" as host "x"; a URL without a host is refused. */
    if (strstr(url, ":///") != NULL) return "url must name a host";
    u = curl_url();
    if (u == NULL) return "out of memory";
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        why = 1;
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &frag, 0) == CURLUE_OK) {
        why = 2;
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
        why = 3;
        goto out;
    }
    if (curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
        why = 4;
        goto out;
    }
    if (literal(host, &ss) && gh_hooks_addr_blocked((struct sockaddr *)&ss, allow, nallow)) why = 5;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(frag);
    curl_url_cleanup(u);
    return refusals[why];
}
