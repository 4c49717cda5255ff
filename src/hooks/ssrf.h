/* SSRF rules for outbound webhooks (docs/webhooks.md, "Addresses"): which
 * addresses a delivery may connect to, the operator's allow-list, and the
 * checks on an endpoint URL when it is created or changed.
 *
 * Blocked (unless the allow-list has an entry covering the address):
 * IPv4 0/8, 10/8, 100.64/10, 127/8, 169.254/16 (the cloud metadata address
 * 169.254.169.254 among them), 172.16/12, 192.168/16, 224/4 and everything
 * above (multicast, reserved, broadcast); IPv6 ::, ::1, fc00::/7,
 * fe80::/10, ff00::/8, fd00:ec2::254 (a metadata address), and the
 * IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64
 * (64:ff9b::/96) forms of a blocked IPv4 address.
 *
 * The address checked is the one a connection is about to use, after DNS
 * (the dispatcher's open-socket hook), so a name that resolves to a blocked
 * address, or is rebound to one after the endpoint was created, is refused
 * every time. Pure functions; no allocation, no logging. */
#ifndef GH_HOOKS_SSRF_H
#define GH_HOOKS_SSRF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* One allow-list entry: an address or a CIDR, IPv4 or IPv6. */
struct gh_hooks_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned bits; /* prefix length: 0..32 or 0..128 */
};

/* Parses "127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8". GH_ERROR for
 * anything else, or bits set after the prefix ("10.0.0.1/8"). */
int gh_hooks_cidr_parse(const char *text, struct gh_hooks_cidr *out);

/* NULL when <sa> may be connected to: not blocked, or covered by an entry
 * of <allow> (<nallow> entries; an IPv4-mapped IPv6 address also matches an
 * IPv4 entry). Otherwise a short reason for the attempt history:
 * "loopback", "private", "link_local", "metadata", "multicast", "reserved",
 * "unspecified", "shared", "unique_local", "not_ip". */
const char *gh_hooks_addr_blocked(const struct sockaddr *sa, const struct gh_hooks_cidr *allow,
                                  size_t nallow);

/* The checks on an endpoint URL at creation and update. NULL when <url> is
 * acceptable; otherwise a message naming the rule, for a 422: not an
 * absolute http:// or https:// URL, longer than 2048 bytes, user
 * information ("user:pass@"), no host, a fragment, or a host that is a
 * literal blocked address not covered by <allow> (any spelling inet_aton
 * reads: "127.1", "0x7f.0.0.1", "2130706433"). A name is accepted here and
 * checked at delivery. */
const char *gh_hooks_url_check(const char *url, const struct gh_hooks_cidr *allow, size_t nallow);

#endif
