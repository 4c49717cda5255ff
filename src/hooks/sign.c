/* Standard Webhooks signatures and key encodings (see sign.h). */
#include "hooks/sign.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "store/store.h"

/* "<id>.<ts>.": the start of the signed content; the body follows it. */
static int signed_prefix(const char *msg_id, int64_t ts, char *out, size_t cap, size_t *len)
{
    int n = snprintf(out, cap, "%s.%lld.", msg_id, (long long)ts);
    if (n < 0 || (size_t)n >= cap) return GH_ERROR;
    *len = (size_t)n;
    return GH_OK;
}

/* "<tag>," + base64 of <raw>. EVP_EncodeBlock writes the standard alphabet
 * with padding, as in the specification's examples. */
static int put_sig(const char *tag, const uint8_t *raw, size_t n, char *out, size_t cap)
{
    size_t tl = strlen(tag);
    if (cap < tl + 1 + 4 * ((n + 2) / 3) + 1) return GH_ERROR;
    memcpy(out, tag, tl);
    out[tl] = ',';
    EVP_EncodeBlock((unsigned char *)out + tl + 1, raw, (int)n);
    return GH_OK;
}

int gh_hooks_sign_v1(const uint8_t *key, size_t keylen, const char *msg_id, int64_t ts,
                     const void *body, size_t len, char *out, size_t cap)
{
    char prefix[128];
    uint8_t mac[EVP_MAX_MD_SIZE];
    size_t plen, maclen = 0;
    EVP_MAC *alg = NULL;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    int rc = GH_ERROR;

    if (signed_prefix(msg_id, ts, prefix, sizeof(prefix), &plen) != GH_OK) return GH_ERROR;
    /* EVP_MAC rather than one-shot HMAC(): the prefix and the body are in
     * two buffers, and copying a body to join them costs more than this. */
    alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
    if (ctx == NULL || !EVP_MAC_init(ctx, key, keylen, params) ||
        !EVP_MAC_update(ctx, (const unsigned char *)prefix, plen) ||
        !EVP_MAC_update(ctx, body, len) || !EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)))
        goto out;
    rc = put_sig("v1", mac, maclen, out, cap);
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(alg);
    return rc;
}

int gh_hooks_sign_v1a(const uint8_t seed[GH_HOOKS_KEY_LEN], const char *msg_id, int64_t ts,
                      const void *body, size_t len, char *out, size_t cap)
{
    char prefix[128];
    size_t plen, siglen = 64;
    uint8_t sig[64];
    unsigned char *content = NULL;
    EVP_PKEY *pk = NULL;
    EVP_MD_CTX *md = NULL;
    int rc = GH_ERROR;

    if (signed_prefix(msg_id, ts, prefix, sizeof(prefix), &plen) != GH_OK) return GH_ERROR;
    /* Ed25519 is one-shot (RFC 8032 PureEdDSA hashes the message twice):
     * the content must be in one buffer. */
    content = OPENSSL_malloc(plen + len + 1);
    if (content == NULL) goto out;
    memcpy(content, prefix, plen);
    if (len) memcpy(content + plen, body, len);
    pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, GH_HOOKS_KEY_LEN);
    md = EVP_MD_CTX_new();
    if (pk == NULL || md == NULL || EVP_DigestSignInit(md, NULL, NULL, NULL, pk) != 1 ||
        EVP_DigestSign(md, sig, &siglen, content, plen + len) != 1)
        goto out;
    rc = put_sig("v1a", sig, siglen, out, cap);
out:
    OPENSSL_free(content);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
    return rc;
}

int gh_hooks_ed25519_public(const uint8_t seed[GH_HOOKS_KEY_LEN], uint8_t pub[GH_HOOKS_KEY_LEN])
{
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, GH_HOOKS_KEY_LEN);
    size_t n = GH_HOOKS_KEY_LEN;
    int ok = pk != NULL && EVP_PKEY_get_raw_public_key(pk, pub, &n) == 1 && n == GH_HOOKS_KEY_LEN;

    EVP_PKEY_free(pk);
    return ok ? GH_OK : GH_ERROR;
}

int gh_hooks_key_random(uint8_t key[GH_HOOKS_KEY_LEN])
{
    return RAND_bytes(key, GH_HOOKS_KEY_LEN) == 1 ? GH_OK : GH_ERROR;
}

int gh_hooks_key_encode(enum gh_hooks_key_kind kind, const uint8_t *key, size_t len, char *out,
                        size_t cap)
{
    const char *prefix = kind == GH_HOOKS_KEY_SECRET    ? "whsec_"
                         : kind == GH_HOOKS_KEY_PRIVATE ? "whsk_"
                                                        : "whpk_";
    size_t pl = strlen(prefix);

    if (len > GH_HOOKS_KEY_MAX || cap < pl + 4 * ((len + 2) / 3) + 1) return GH_ERROR;
    memcpy(out, prefix, pl);
    EVP_EncodeBlock((unsigned char *)out + pl, key, (int)len);
    return GH_OK;
}

int gh_hooks_secret_decode(const char *text, uint8_t *key, size_t *len)
{
    uint8_t buf[GH_HOOKS_KEY_MAX + 3];
    size_t tl, pad = 0;
    int n;

    if (strncmp(text, "whsec_", 6) == 0) text += 6;
    tl = strlen(text);
    if (tl == 0 || tl % 4 != 0 || tl > 4 * ((GH_HOOKS_KEY_MAX + 2) / 3)) return GH_ERROR;
    /* EVP_DecodeBlock counts padding as zero bytes: take them off. */
    if (text[tl - 1] == '=') pad++;
    if (tl > 1 && text[tl - 2] == '=') pad++;
    n = EVP_DecodeBlock(buf, (const unsigned char *)text, (int)tl);
    if (n < 0 || (size_t)n < pad) return GH_ERROR;
    n -= (int)pad;
    if (n < GH_HOOKS_KEY_MIN || n > GH_HOOKS_KEY_MAX) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return GH_ERROR;
    }
    memcpy(key, buf, (size_t)n);
    *len = (size_t)n;
    OPENSSL_cleanse(buf, sizeof(buf));
    return GH_OK;
}

int gh_hooks_msg_id(char *out, size_t cap)
{
    if (cap < GH_HOOKS_MSG_ID_SIZE) return GH_ERROR;
    memcpy(out, "msg_", 4);
    return gh_store_random_base62(out + 4, GH_HOOKS_MSG_ID_RAND, NULL);
}
