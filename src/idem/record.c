/* Idempotency records: digests and the value format (record.h). */
#include "idem/record.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static const char hexdigits[] = "0123456789abcdef";

int gh_idem_key_valid(const char *key, size_t len)
{
    if (len == 0 || len > GH_IDEM_KEY_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] > 0x7e) return 0;
    return 1;
}

/* SHA-256 over <n> pieces. Fails only with a broken OpenSSL (or out of
 * memory): the caller then refuses, as zeros would make keys collide. */
static int sha256_parts(const void *const *p, const size_t *len, size_t n,
                        uint8_t out[GH_IDEM_DIGEST])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int mdlen = 0;
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;

    for (size_t i = 0; ok && i < n; i++)
        ok = len[i] == 0 || EVP_DigestUpdate(ctx, p[i], len[i]) == 1;
    if (ok) ok = EVP_DigestFinal_ex(ctx, out, &mdlen) == 1 && mdlen == GH_IDEM_DIGEST;
    EVP_MD_CTX_free(ctx);
    return ok ? GH_OK : GH_ERROR;
}

int gh_idem_digest(const char *tenant, const char *route, const char *key, size_t klen,
                   uint8_t out[GH_IDEM_DIGEST])
{
    const void *p[5] = {tenant, "", route, "", key};
    size_t l[5] = {strlen(tenant), 1, strlen(route), 1, klen};
    return sha256_parts(p, l, 5, out);
}

int gh_idem_fingerprint(const char *method, size_t mlen, const char *path, size_t plen,
                        const char *query, size_t qlen, const char *body, size_t blen,
                        uint8_t out[GH_IDEM_DIGEST])
{
    const void *p[7] = {method, "", path, "?", query, "", body};
    size_t l[7] = {mlen, 1, plen, qlen ? 1 : 0, qlen, 1, blen};
    return sha256_parts(p, l, 7, out);
}

void gh_idem_hex(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdigits[in[i] >> 4];
        out[2 * i + 1] = hexdigits[in[i] & 15];
    }
}

size_t gh_idem_redis_key(const char *prefix, const uint8_t digest[GH_IDEM_DIGEST],
                         char out[GH_IDEM_REDIS_KEY])
{
    size_t plen = prefix ? strlen(prefix) : 0;

    if (plen > GH_IDEM_PREFIX) plen = GH_IDEM_PREFIX;
    if (plen) memcpy(out, prefix, plen);
    memcpy(out + plen, "idem:", 5);
    gh_idem_hex(digest, GH_IDEM_DIGEST, out + plen + 5);
    out[plen + 5 + 64] = '\0';
    return plen + 5 + 64;
}

void gh_idem_encode_inflight(const uint8_t fp[GH_IDEM_DIGEST], const char token[GH_IDEM_TOKEN],
                             char out[GH_IDEM_INFLIGHT])
{
    memcpy(out, "I1 ", 3);
    gh_idem_hex(fp, GH_IDEM_DIGEST, out + 3);
    out[67] = ' ';
    memcpy(out + 68, token, GH_IDEM_TOKEN);
}

int gh_idem_encode_done(const uint8_t fp[GH_IDEM_DIGEST], int status, const char *headers,
                        size_t hlen, const char *body, size_t blen, char **out, size_t *olen)
{
    char head[96];
    int n;
    char *v;

    *out = NULL;
    *olen = 0;
    if (hlen > GH_IDEM_HEADERS_MAX || status < 100 || status > 599) return GH_ERROR;
    memcpy(head, "D1 ", 3);
    gh_idem_hex(fp, GH_IDEM_DIGEST, head + 3);
    n = snprintf(head + 67, sizeof(head) - 67, " %03d %zu\n", status, hlen);
    if (n < 0 || (size_t)n >= sizeof(head) - 67) return GH_ERROR;
    n += 67;
    if ((v = malloc((size_t)n + hlen + blen + 1)) == NULL) return GH_ERROR;
    memcpy(v, head, (size_t)n);
    if (hlen) memcpy(v + n, headers, hlen);
    if (blen) memcpy(v + n + hlen, body, blen);
    *out = v;
    *olen = (size_t)n + hlen + blen;
    return GH_OK;
}

static int unhex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int gh_idem_decode(const char *v, size_t len, struct gh_idem_record *out)
{
    size_t i, hlen = 0;

    memset(out, 0, sizeof(*out));
    if (len < 68 || (v[0] != 'I' && v[0] != 'D') || v[1] != '1' || v[2] != ' ' || v[67] != ' ')
        return GH_ERROR;
    for (i = 0; i < GH_IDEM_DIGEST; i++) {
        int hi = unhex(v[3 + 2 * i]), lo = unhex(v[4 + 2 * i]);
        if (hi < 0 || lo < 0) return GH_ERROR;
        out->fp[i] = (uint8_t)(hi << 4 | lo);
    }
    if (v[0] == 'I') return len == GH_IDEM_INFLIGHT ? GH_OK : GH_ERROR;
    /* "D1 <fp> SSS <hlen>\n" */
    if (len < 73 || v[71] != ' ') return GH_ERROR;
    for (i = 68; i < 71; i++)
        if (v[i] < '0' || v[i] > '9') return GH_ERROR;
    out->status = (v[68] - '0') * 100 + (v[69] - '0') * 10 + (v[70] - '0');
    for (i = 72; i < len && v[i] != '\n'; i++) {
        if (v[i] < '0' || v[i] > '9' || i > 72 + 5) return GH_ERROR;
        hlen = hlen * 10 + (size_t)(v[i] - '0');
    }
    if (i == 72 || i >= len || hlen > GH_IDEM_HEADERS_MAX || hlen > len - i - 1) return GH_ERROR;
    if (out->status < 100 || out->status > 599) return GH_ERROR;
    out->done = true;
    out->headers = v + i + 1;
    out->hlen = hlen;
    out->body = v + i + 1 + hlen;
    out->blen = len - i - 1 - hlen;
    return GH_OK;
}
