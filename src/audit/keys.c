/* The gateway's Ed25519 audit key: loaded from the store at start (the
 * newest one), or made and stored when there is none, as the token signing
 * keys are (src/auth/service.c). Checkpoints are signed with it. */
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

#include "audit/writer_int.h"
#include "core/log.h"
#include "store/store.h"

/* Makes a key, stores it, and keeps it in <s>. */
static int make_key(struct gh_audit_service *s, struct gh_err *err)
{
    struct gh_store_audit_key k;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    EVP_PKEY *pkey = NULL;
    BIO *priv = BIO_new(BIO_s_mem()), *pub = BIO_new(BIO_s_mem());
    char *p;
    long n;
    int rc = GH_ERROR;

    memset(&k, 0, sizeof(k));
    if (pc == NULL || priv == NULL || pub == NULL || EVP_PKEY_keygen_init(pc) != 1 ||
        EVP_PKEY_keygen(pc, &pkey) != 1) {
        gh_err_set(err, NULL, 0, 0, "audit: cannot generate an Ed25519 key");
        goto out;
    }
    if (gh_store_random_base62(k.key_id, 16, err) != GH_OK) goto out; /* 16 base62 */
    k.key_id[16] = '\0';
    if (PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        (n = BIO_get_mem_data(priv, &p)) <= 0 || (size_t)n >= sizeof(k.private_pem)) {
        gh_err_set(err, NULL, 0, 0, "audit: cannot encode the key");
        goto out;
    }
    memcpy(k.private_pem, p, (size_t)n);
    if (PEM_write_bio_PUBKEY(pub, pkey) != 1 || (n = BIO_get_mem_data(pub, &p)) <= 0 ||
        (size_t)n >= sizeof(k.public_pem)) {
        gh_err_set(err, NULL, 0, 0, "audit: cannot encode the public key");
        goto out;
    }
    memcpy(k.public_pem, p, (size_t)n);
    if (gh_store_audit_key_insert(s->store, &k, err) != GH_OK) goto out;
    gh_log_info("audit: new signing key %s (Ed25519)", k.key_id);
    snprintf(s->key_id, sizeof(s->key_id), "%s", k.key_id);
    s->key = pkey;
    pkey = NULL;
    rc = GH_OK;
out:
    OPENSSL_cleanse(k.private_pem, sizeof(k.private_pem));
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pc);
    BIO_free(priv);
    BIO_free(pub);
    return rc;
}

int gh_audit_key_load_(struct gh_audit_service *s, struct gh_err *err)
{
    struct gh_store_audit_key k;
    size_t count = 0;
    BIO *bio;
    int rc;

    memset(&k, 0, sizeof(k));
    if (gh_store_audit_keys_list(s->store, &k, 1, &count, err) != GH_OK) return GH_ERROR;
    if (count == 0) return make_key(s, err);
    bio = BIO_new_mem_buf(k.private_pem, -1);
    s->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(k.private_pem, sizeof(k.private_pem));
    if (s->key == NULL || EVP_PKEY_get_id(s->key) != EVP_PKEY_ED25519) {
        rc = gh_err_set(err, NULL, 0, 0, "audit: key %s in the store is not an Ed25519 key",
                        k.key_id);
        EVP_PKEY_free(s->key);
        s->key = NULL;
        return rc;
    }
    snprintf(s->key_id, sizeof(s->key_id), "%s", k.key_id);
    return GH_OK;
}

int gh_audit_sign_(struct gh_audit_service *s, const char *msg, size_t len, char sig_b64[89])
{
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    unsigned char sig[64];
    size_t siglen = sizeof(sig);
    int rc = GH_ERROR;

    /* Ed25519 signs the message itself (no digest: NULL md). */
    if (mc && EVP_DigestSignInit(mc, NULL, NULL, NULL, s->key) == 1 &&
        EVP_DigestSign(mc, sig, &siglen, (const unsigned char *)msg, len) == 1 && siglen == 64) {
        EVP_EncodeBlock((unsigned char *)sig_b64, sig, 64); /* 88 characters and a NUL */
        rc = GH_OK;
    }
    EVP_MD_CTX_free(mc);
    return rc;
}
