/* Signed identity headers for upstreams. */
#include "auth/identity.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

void gh_identity_sign(const char *secret, const char *tenant, const char *subject,
                      const char *scopes, int64_t ts, gh_str method, gh_str target, char out[68])
{
    static const char hex[] = "0123456789abcdef";
    char canon[2048];
    unsigned char mac[32];
    unsigned int maclen = sizeof(mac);
    int n =
        snprintf(canon, sizeof(canon), "v1\n%s\n%s\n%s\n%lld\n%.*s\n%.*s", tenant, subject, scopes,
                 (long long)ts, (int)method.len, method.ptr, (int)target.len, target.ptr);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof(canon)) n = sizeof(canon) - 1;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)canon, (size_t)n, mac,
         &maclen);
    memcpy(out, "v1=", 3);
    for (int i = 0; i < 32; i++) {
        out[3 + 2 * i] = hex[mac[i] >> 4];
        out[4 + 2 * i] = hex[mac[i] & 15];
    }
    out[67] = '\0';
}

int gh_identity_headers(const struct gh_principal *p, const char *secret, gh_str method,
                        gh_str target, int64_t now_s, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "Gatehouse-Tenant: %s\r\nGatehouse-Subject: %s\r\nGatehouse-Scopes: %s\r\n"
                     "Gatehouse-Timestamp: %lld\r\n",
                     p->tenant, p->subject, p->scopes, (long long)now_s);
    if (n < 0 || (size_t)n >= cap) return -1;
    if (secret) {
        char sig[68];
        gh_identity_sign(secret, p->tenant, p->subject, p->scopes, now_s, method, target, sig);
        int m = snprintf(out + n, cap - (size_t)n, "Gatehouse-Signature: %s\r\n", sig);
        if (m < 0 || (size_t)m >= cap - (size_t)n) return -1;
        n += m;
    }
    return n;
}
