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

int gh_identity_headers(const struct gh_principal *p, const char *secret, gh_str method,
                        gh_str path, gh_str query, int64_t now_s, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "Gatehouse-Tenant: %s\r\nGatehouse-Subject: %s\r\nGatehouse-Scopes: %s\r\n"
                     "Gatehouse-Timestamp: %lld\r\n",
                     p->tenant, p->subject, p->scopes, (long long)now_s);
    if (n < 0 || (size_t)n >= cap) return -1;
    if (secret) {
        char sig[68];
        gh_identity_sign(secret, p->tenant, p->subject, p->scopes, now_s, method, path, query, sig);
        if (sig[0] == '\0') return -1;
        int m = snprintf(out + n, cap - (size_t)n, "Gatehouse-Signature: %s\r\n", sig);
        if (m < 0 || (size_t)m >= cap - (size_t)n) return -1;
        n += m;
    }
    return n;
}
