/* Audit checkpoints: Ed25519 (RFC 8032) signatures over the checkpoint
 * message, and the audit key they are made with (checkpoint.h). */
#include "audit/checkpoint.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "audit/chain.h"
#include "audit/event.h"

/* Writes the PEM of <key> (private or public half) into <out> of <cap>. */
static int pem_of(EVP_PKEY *key, bool private_half, char *out, size_t cap)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;
    int rc = GH_ERROR;

    if (bio == NULL) return GH_ERROR;
    if ((private_half ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
                      : PEM_write_bio_PUBKEY(bio, key)) == 1 &&
        (n = BIO_get_mem_data(bio, &data)) > 0 && (size_t)n < cap) {
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
        rc = GH_OK;
    }
    BIO_free(bio);
    return rc;
}

int gh_audit_key_generate(struct gh_store_audit_key *out, struct gh_err *err)
{
    EVP_PKEY *key;
    int rc = GH_ERROR;

    memset(out, 0, sizeof(*out));
    if (gh_store_random_base62(out->key_id, 16, err) != GH_OK) return GH_ERROR;
    key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (key == NULL) {
        ERR_clear_error();
        return gh_err_set(err, NULL, 0, 0, "audit: Ed25519 key generation failed");
    }
    if (pem_of(key, false, out->public_pem, sizeof(out->public_pem)) == GH_OK &&
        pem_of(key, true, out->private_pem, sizeof(out->private_pem)) == GH_OK)
        rc = GH_OK;
    else
        gh_err_set(err, NULL, 0, 0, "audit: cannot write the key as PEM");
    EVP_PKEY_free(key);
    return rc;
}

EVP_PKEY *gh_audit_key_load(const char *pem, bool private_half, struct gh_err *err)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = NULL;

    if (bio != NULL)
        key = private_half ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                           : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (key != NULL && !EVP_PKEY_is_a(key, "ED25519")) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    if (key == NULL) {
        ERR_clear_error();
        gh_err_set(err, NULL, 0, 0, "audit: not an Ed25519 %s key in PEM",
                   private_half ? "private" : "public");
    }
    return key;
}

int gh_audit_checkpoint_sign(EVP_PKEY *key, const char *key_id, const char *chain, uint64_t seq,
                             const uint8_t hash[32], int64_t time_ms,
                             struct gh_store_audit_checkpoint *out, struct gh_err *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char sig[64];
    size_t siglen = sizeof(sig);
    char msg[256];
    size_t n = gh_audit_checkpoint_message(chain, seq, hash, time_ms, msg);
    int rc = GH_ERROR;

    memset(out, 0, sizeof(*out));
    /* Ed25519 signs the message itself (no digest: NULL md, one shot). */
    if (ctx != NULL && n > 0 && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)msg, n) == 1 && siglen == 64) {
        snprintf(out->chain, sizeof(out->chain), "%s", chain);
        out->seq = seq;
        gh_audit_hex(hash, out->hash);
        out->time_ms = time_ms;
        snprintf(out->key_id, sizeof(out->key_id), "%s", key_id);
        EVP_EncodeBlock((unsigned char *)out->signature, sig, 64);
        rc = GH_OK;
    } else {
        ERR_clear_error();
        gh_err_set(err, NULL, 0, 0, "audit: cannot sign the checkpoint");
    }
    EVP_MD_CTX_free(ctx);
    return rc;
}

bool gh_audit_checkpoint_verify(EVP_PKEY *pub, const struct gh_store_audit_checkpoint *cp)
{
    EVP_MD_CTX *ctx;
    unsigned char sig[66]; /* EVP_DecodeBlock writes 66 bytes for 88 characters */
    uint8_t hash[32];
    char msg[256];
    size_t n;
    bool ok = false;

    if (strlen(cp->signature) != 88 || gh_audit_unhex(cp->hash, hash) != GH_OK) return false;
    if (EVP_DecodeBlock(sig, (const unsigned char *)cp->signature, 88) != 66) return false;
    n = gh_audit_checkpoint_message(cp->chain, cp->seq, hash, cp->time_ms, msg);
    ctx = EVP_MD_CTX_new();
    if (ctx != NULL && n > 0 && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1)
        ok = EVP_DigestVerify(ctx, sig, 64, (const unsigned char *)msg, n) == 1;
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    return ok;
}
