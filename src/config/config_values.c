/* The scalar value formats of the configuration: durations, sizes and socket
 * addresses. Kept apart from the YAML walker (config.c) so the CLI and the
 * admin API can parse the same formats without pulling in libyaml. */
#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Reads the leading decimal digits of <s> into *<out>; returns the number of
 * digits read, 0 when there are none, or -1 on overflow of uint64_t. Signs and
 * spaces are not digits: "-1" and " 1" read nothing. */
static int read_digits(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    int n = 0;

    for (; isdigit((unsigned char)s[n]); n++) {
        unsigned d = (unsigned)(s[n] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return n;
}

/* Multiplies <v> by <mul> into *<out>, refusing to wrap around. */
static int mul_checked(uint64_t v, uint64_t mul, uint64_t *out)
{
    if (mul != 0 && v > UINT64_MAX / mul) return GH_ERROR;
    *out = v * mul;
    return GH_OK;
}

int gh_config_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {
        {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    uint64_t v;
    int n;

    if (s == NULL) return GH_ERROR;
    n = read_digits(s, &v);
    if (n <= 0) return GH_ERROR;
    /* Units are case-sensitive on purpose: "M" would be ambiguous with months
     * and "MS" reads like a typo; one spelling per unit keeps configs alike. */
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(s + n, units[i].unit) == 0) return mul_checked(v, units[i].ms, out_ms);
    return GH_ERROR;
}

int gh_config_parse_size(const char *s, uint64_t *out_bytes)
{
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1024},
        {"kb", 1024},
        {"kib", 1024},
        {"m", 1024 * 1024},
        {"mb", 1024 * 1024},
        {"mib", 1024 * 1024},
        {"g", 1024 * 1024 * 1024},
        {"gb", 1024 * 1024 * 1024},
        {"gib", 1024 * 1024 * 1024},
    };
    uint64_t v;
    int n;

    if (s == NULL) return GH_ERROR;
    n = read_digits(s, &v);
    if (n <= 0) return GH_ERROR;
    /* Every multiple is binary: "1MB" meaning 1,000,000 bytes would surprise
     * anyone sizing a buffer, and no limit here needs decimal precision. */
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcasecmp(s + n, units[i].unit) == 0) return mul_checked(v, units[i].mul, out_bytes);
    return GH_ERROR;
}

void gh_config_addr_release(struct gh_config_addr *a)
{
    if (a == NULL) return;
    free(a->text);
    free(a->host);
    memset(a, 0, sizeof(*a));
}

/* Parses the port after the last ':' of an address; 1..65535, digits only. */
static int parse_port(const char *s, uint16_t *out)
{
    uint64_t v;
    int n = read_digits(s, &v);

    if (n <= 0 || s[n] != '\0' || v < 1 || v > 65535) return GH_ERROR;
    *out = (uint16_t)v;
    return GH_OK;
}

/* Resolves <host> once with getaddrinfo. A name with both IPv4 and IPv6
 * addresses ("localhost") gets the IPv4 one: upstreams and test setups
 * overwhelmingly listen on 127.0.0.1, and ::1 is not always configured. */
static int resolve(const char *host, uint16_t port, bool v6_literal, struct gh_config_addr *out,
                   char *why, size_t whylen)
{
    struct addrinfo hints, *res = NULL, *pick;
    char portstr[8];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = v6_literal ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (v6_literal ? AI_NUMERICHOST : 0);
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        if (v6_literal)
            snprintf(why, whylen, "invalid address \"%s\": not an IPv6 address", out->text);
        else
            snprintf(why, whylen, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return GH_ERROR;
    }
    pick = res;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    }
    if (pick->ai_addrlen > sizeof(out->ss)) {
        freeaddrinfo(res);
        snprintf(why, whylen, "cannot resolve \"%s\": address too long", host);
        return GH_ERROR;
    }
    memcpy(&out->ss, pick->ai_addr, pick->ai_addrlen);
    out->sslen = (socklen_t)pick->ai_addrlen;
    freeaddrinfo(res);
    return GH_OK;
}

/* A name of letters, digits, '-', '_' and '.', as DNS and /etc/hosts have
 * them. */
static bool plain_name(const char *h)
{
    if (h[0] == '\0' || h[0] == '-' || h[0] == '.') return false;
    for (; *h; h++)
        if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
              *h == '-' || *h == '_' || *h == '.'))
            return false;
    return true;
}

static int parse_addr(const char *text, bool lookup, struct gh_config_addr *out, char *why,
                      size_t whylen)
{
    const char *host_start, *host_end, *port_str;
    bool bracketed = false;
    char *host = NULL;
    size_t hostlen;

    memset(out, 0, sizeof(*out));
    if (text == NULL || text[0] == '\0') {
        snprintf(why, whylen, "empty address (use host:port, e.g. 127.0.0.1:8080)");
        return GH_ERROR;
    }
    out->text = strdup(text);
    if (out->text == NULL) goto nomem;

    if (text[0] == '[') {
        bracketed = true;
        host_start = text + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL || host_end[1] != ':') {
            snprintf(why, whylen, "invalid address \"%s\" (use [v6]:port, e.g. [::1]:8080)", text);
            goto fail;
        }
        port_str = host_end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL) {
            snprintf(why, whylen,
                     "invalid address \"%s\": missing port (use host:port, e.g. 127.0.0.1:8080)",
                     text);
            goto fail;
        }
        host_start = text;
        host_end = colon;
        port_str = colon + 1;
        if (memchr(host_start, ':', (size_t)(host_end - host_start)) != NULL) {
            snprintf(why, whylen,
                     "invalid address \"%s\": IPv6 addresses need brackets, e.g. [::1]:8080", text);
            goto fail;
        }
    }
    if (parse_port(port_str, &out->port) != GH_OK) {
        snprintf(why, whylen, "invalid address \"%s\": the port must be a number from 1 to 65535",
                 text);
        goto fail;
    }

    hostlen = (size_t)(host_end - host_start);
    for (size_t i = 0; i < hostlen; i++) {
        unsigned char c = (unsigned char)host_start[i];
        if (c <= ' ' || c == 0x7f || c == '[' || c == ']' || c == '/') {
            snprintf(why, whylen, "invalid address \"%s\": bad character in the host", text);
            goto fail;
        }
    }
    if (bracketed && hostlen == 0) {
        snprintf(why, whylen, "invalid address \"%s\": empty IPv6 address", text);
        goto fail;
    }

    if (!bracketed && (hostlen == 0 || (hostlen == 1 && host_start[0] == '*'))) {
        /* "*:8080" and ":8080" mean every IPv4 interface; "[::]:8080" is the
         * explicit form for IPv6. */
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
        out->host = strdup("");
        if (out->host == NULL) goto nomem;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(out->port);
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        out->sslen = sizeof(*sin);
        return GH_OK;
    }

    host = strndup(host_start, hostlen);
    if (host == NULL) goto nomem;
    if (!lookup && !bracketed && plain_name(host)) {
        struct in_addr v4;
        /* A name is left for its user to look up (out->sslen 0); an IPv4
         * address is still taken apart below. */
        if (inet_pton(AF_INET, host, &v4) != 1) {
            out->host = host;
            return GH_OK;
        }
    }
    if (resolve(host, out->port, bracketed, out, why, whylen) != GH_OK) goto fail;
    out->host = host;
    return GH_OK;

nomem:
    snprintf(why, whylen, "out of memory");
fail:
    free(host);
    gh_config_addr_release(out);
    return GH_ERROR;
}

int gh_config_parse_addr(const char *text, struct gh_config_addr *out, char *why, size_t whylen)
{
    return parse_addr(text, true, out, why, whylen);
}

int gh_config_parse_addr_name(const char *text, struct gh_config_addr *out, char *why,
                              size_t whylen)
{
    return parse_addr(text, false, out, why, whylen);
}

int gh_config_parse_rate(const char *s, struct gh_config_rate *out)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {
        {"ms", 1},         {"s", 1000},     {"sec", 1000},     {"second", 1000},
        {"m", 60000},      {"min", 60000},  {"minute", 60000}, {"h", 3600000},
        {"hour", 3600000}, {"d", 86400000}, {"day", 86400000},
    };
    uint64_t count, mult = 1;
    int n, m;
    const char *u;

    if (s == NULL) return GH_ERROR;
    n = read_digits(s, &count);
    if (n <= 0 || count == 0 || s[n] != '/') return GH_ERROR;
    u = s + n + 1;
    /* "100/2s": an optional multiple of the unit. */
    m = read_digits(u, &mult);
    if (m < 0 || (m > 0 && mult == 0)) return GH_ERROR;
    if (m == 0) mult = 1;
    u += m;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(u, units[i].unit) != 0) continue;
        if (mul_checked(mult, units[i].ms, &out->period_ms) != GH_OK) return GH_ERROR;
        /* A period over a year is a quota, not a rate. */
        if (out->period_ms > 366ull * 86400000) return GH_ERROR;
        out->count = count;
        return GH_OK;
    }
    return GH_ERROR;
}

const struct gh_config_plan *gh_config_plan_find(const struct gh_config *cfg, const char *name)
{
    if (name == NULL) return NULL;
    for (size_t i = 0; i < cfg->nplans; i++)
        if (strcmp(cfg->plans[i].name, name) == 0) return &cfg->plans[i];
    return NULL;
}
