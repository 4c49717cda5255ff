/* AES-256-GCM seal and open (envelope.h), on OpenSSL's EVP interface. */
#include "secrets/envelope.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define AAD_TAG "gatehouse-secret-v1"
#define AAD_MAX (sizeof(AAD_TAG) + 32 + 129)

int gh_envelope_aead_seal(const uint8_t key[GH_ENVELOPE_KEY_LEN],
                          const uint8_t nonce[GH_ENVELOPE_NONCE_LEN], const void *aad,
                          size_t aad_len, const void *pt, size_t len, uint8_t *ct,
                          uint8_t tag[GH_ENVELOPE_TAG_LEN], struct gh_err *err)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, rc = GH_ERROR;

    if (c == NULL || len > INT_MAX || aad_len > INT_MAX) goto out;
    if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, GH_ENVELOPE_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) != 1)
        goto out;
    if (aad_len > 0 && EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len) != 1) goto out;
    if (len > 0 && EVP_EncryptUpdate(c, ct, &n, pt, (int)len) != 1) goto out;
    if (EVP_EncryptFinal_ex(c, ct + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, GH_ENVELOPE_TAG_LEN, tag) != 1)
        goto out;
    rc = GH_OK;
out:
    EVP_CIPHER_CTX_free(c); /* cleanses the key schedule */
    if (rc != GH_OK) gh_err_set(err, NULL, 0, 0, "secrets: AES-256-GCM encryption failed");
    return rc;
}

int gh_envelope_aead_open(const uint8_t key[GH_ENVELOPE_KEY_LEN],
                          const uint8_t nonce[GH_ENVELOPE_NONCE_LEN], const void *aad,
                          size_t aad_len, const uint8_t *ct, size_t len,
                          const uint8_t tag[GH_ENVELOPE_TAG_LEN], void *pt, struct gh_err *err)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t tagbuf[GH_ENVELOPE_TAG_LEN];
    int n = 0, fin = 0, rc = GH_ERROR;

    memcpy(tagbuf, tag, sizeof(tagbuf)); /* the ctrl takes a non-const pointer */
    if (c == NULL || len > INT_MAX || aad_len > INT_MAX) goto out;
    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, GH_ENVELOPE_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(c, NULL, NULL, key, nonce) != 1)
        goto out;
    if (aad_len > 0 && EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) != 1) goto out;
    if (len > 0 && EVP_DecryptUpdate(c, pt, &n, ct, (int)len) != 1) goto out;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, GH_ENVELOPE_TAG_LEN, tagbuf) != 1 ||
        EVP_DecryptFinal_ex(c, (uint8_t *)pt + n, &fin) != 1)
        goto out;
    rc = GH_OK;
out:
    EVP_CIPHER_CTX_free(c);
    if (rc != GH_OK) {
        if (len > 0) OPENSSL_cleanse(pt, len); /* never hand out unauthenticated bytes */
        gh_err_set(err, NULL, 0, 0, "secrets: the ciphertext does not authenticate");
    }
    return rc;
}

/* "gatehouse-secret-v1" NUL tenant NUL name NUL into <aad>; returns its
 * length, 0 when the names are too long. */
static size_t build_aad(uint8_t aad[AAD_MAX], const char *tenant, const char *name)
{
    size_t tl = strlen(tenant), nl = strlen(name), n = 0;

    if (tl > 31 || nl > 128) return 0;
    memcpy(aad + n, AAD_TAG, sizeof(AAD_TAG)); /* with its NUL */
    n += sizeof(AAD_TAG);
    memcpy(aad + n, tenant, tl + 1);
    n += tl + 1;
    memcpy(aad + n, name, nl + 1);
    n += nl + 1;
    return n;
}

int gh_envelope_seal(const uint8_t dek[GH_ENVELOPE_KEY_LEN], const char *tenant, const char *name,
                     const void *value, size_t len, uint8_t nonce[GH_ENVELOPE_NONCE_LEN],
                     uint8_t *out, struct gh_err *err)
{
    uint8_t aad[AAD_MAX];
    size_t aad_len = build_aad(aad, tenant, name);

    if (aad_len == 0 || len == 0 || len > 8192)
        return gh_err_set(err, NULL, 0, 0, "secrets: bad name or size");
    /* A random 96-bit nonce per value, under a data key used once: no
     * nonce is ever reused under one key. */
    if (RAND_bytes(nonce, GH_ENVELOPE_NONCE_LEN) != 1)
        return gh_err_set(err, NULL, 0, 0, "secrets: the CSPRNG failed");
    return gh_envelope_aead_seal(dek, nonce, aad, aad_len, value, len, out, out + len, err);
}

int gh_envelope_open(const uint8_t dek[GH_ENVELOPE_KEY_LEN], const char *tenant, const char *name,
                     const uint8_t nonce[GH_ENVELOPE_NONCE_LEN], const uint8_t *ct, size_t ct_len,
                     void *out, size_t cap, size_t *len, struct gh_err *err)
{
    uint8_t aad[AAD_MAX];
    size_t aad_len = build_aad(aad, tenant, name);
    size_t n;

    *len = 0;
    if (aad_len == 0 || ct_len <= GH_ENVELOPE_TAG_LEN)
        return gh_err_set(err, NULL, 0, 0, "secrets: the ciphertext does not authenticate");
    n = ct_len - GH_ENVELOPE_TAG_LEN;
    if (n > cap) return gh_err_set(err, NULL, 0, 0, "secrets: the value does not fit the buffer");
    if (gh_envelope_aead_open(dek, nonce, aad, aad_len, ct, n, ct + n, out, err) != GH_OK)
        return GH_ERROR;
    *len = n;
    return GH_OK;
}
