/* Signed identity headers for upstreams. */
#include "auth/identity.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gh_identity_sign(const char *secret, const char *tenant, const char *subject,
                      const char *scopes, int64_t ts, gh_str method, gh_str path, gh_str query,
                      char out[68])
{
    static const char hex[] = "0123456789abcdef";
    char stack[8192], *canon = stack;
    unsigned char mac[32];
    unsigned int maclen = sizeof(mac);
    size_t need =
        strlen(tenant) + strlen(subject) + strlen(scopes) + method.len + path.len + query.len + 64;
    int n;

    /* The whole target is signed, however long: a verifier must be able to
     * rebuild exactly this string. */
    if (need > sizeof(stack) && (canon = malloc(need)) == NULL) {
        memset(out, 0, 68);
        return;
    }
    n = snprintf(canon, need > sizeof(stack) ? need : sizeof(stack),
                 "v1\n%s\n%s\n%s\n%lld\n%.*s\n%.*s%s%.*s", tenant, subject, scopes, (long long)ts,
                 (int)method.len, method.ptr, (int)path.len, path.ptr, query.len ? "?" : "",
                 (int)query.len, query.ptr);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)canon,
         n > 0 ? (size_t)n : 0, mac, &maclen);
    if (canon != stack) free(canon);
    memcpy(out, "v1=", 3);
    for (int i = 0; i < 32; i++) {
        out[3 + 2 * i] = hex[mac[i] >> 4];
        out[4 + 2 * i] = hex[mac[i] & 15];
    }
    out[67] = '\0';
}

/* Appends <n> bytes; false when they do not fit. */
static bool put(char *out, size_t cap, size_t *len, const char *p, size_t n)
{
    if (n > cap - *len) return false;
    memcpy(out + *len, p, n);
    *len += n;
    return true;
}

int gh_identity_headers(const struct gh_principal *p, const char *secret, gh_str method,
                        gh_str path, gh_str query, int64_t now_s, char *out, size_t cap)
{
    /* Once per authenticated request: plain copies, no formatting. */
    char ts[24];
    size_t tl = 0, len = 0;
    uint64_t v = (uint64_t)(now_s < 0 ? 0 : now_s);

    do {
        ts[sizeof(ts) - 1 - tl++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (!put(out, cap, &len, "Gatehouse-Tenant: ", 18) ||
        !put(out, cap, &len, p->tenant, strlen(p->tenant)) ||
        !put(out, cap, &len, "\r\nGatehouse-Subject: ", 21) ||
        !put(out, cap, &len, p->subject, strlen(p->subject)) ||
        !put(out, cap, &len, "\r\nGatehouse-Scopes: ", 20) ||
        !put(out, cap, &len, p->scopes, strlen(p->scopes)) ||
        !put(out, cap, &len, "\r\nGatehouse-Timestamp: ", 23) ||
        !put(out, cap, &len, ts + sizeof(ts) - tl, tl) || !put(out, cap, &len, "\r\n", 2))
        return -1;
    if (secret) {
        char sig[68];
        gh_identity_sign(secret, p->tenant, p->subject, p->scopes, now_s, method, path, query, sig);
        if (sig[0] == '\0' || !put(out, cap, &len, "Gatehouse-Signature: ", 21) ||
            !put(out, cap, &len, sig, 67) || !put(out, cap, &len, "\r\n", 2))
            return -1;
    }
    return (int)len;
}
