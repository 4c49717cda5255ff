/* The `pkcs11` KMS provider: master keys are AES-256 secret keys on a
 * PKCS#11 token (an HSM, a cloud HSM, SoftHSM2), labelled
 * "<key_label>-v<N>", made on the token (C_GenerateKey) as sensitive and
 * not extractable: they never leave it. Data keys are wrapped with
 * C_Encrypt under CKM_AES_GCM (PKCS#11 v2.40 §2.12.3; SoftHSM2 2.6 supports
 * it): blob = IV (12 random bytes) | encrypted data key (32) | tag (16), the
 * additional data "gatehouse-kek-v1" NUL version (4 bytes big endian) as
 * in the local provider, so a blob does not open under another version.
 *
 * The module is loaded with dlopen and reached only through the function
 * list it returns (C_GetFunctionList); p11-kit's pkcs11.h gives the types,
 * nothing is linked. One session, logged in as the user, serves every call
 * under one mutex: simple, and correct whatever the module's own threading.
 *
 * NEEDSWORK: a session the token drops (an HSM restarted, a network HSM's
 * connection lost: CKR_SESSION_HANDLE_INVALID, CKR_DEVICE_REMOVED) is not
 * opened again; every call fails until the gateway restarts. Reopening the
 * session and logging in again once per failed call would settle it; it
 * needs a token that can be made to drop sessions in the tests. */
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>

#include "secrets/kms.h"

#define KEK_AAD    "gatehouse-kek-v1"
#define IV_LEN     12
#define TAG_LEN    16
#define BLOB_LEN   (IV_LEN + GH_KMS_DEK_LEN + TAG_LEN)
#define CACHE_MAX  32
#define LABEL_MAX  64
#define FIND_BATCH 64

struct key_slot {
    uint32_t version;
    CK_OBJECT_HANDLE handle;
};

struct kms_p11 {
    struct gh_kms base; /* first */
    pthread_mutex_t lock;
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    bool finalize; /* we initialised the module */
    CK_SESSION_HANDLE session;
    bool have_session, logged_in;
    char key_label[LABEL_MAX];
    struct key_slot cache[CACHE_MAX]; /* versions seen; a key is never deleted by us */
    size_t ncache;
};

static const char *rv_name(CK_RV rv)
{
    switch (rv) {
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_MECHANISM_PARAM_INVALID: return "CKR_MECHANISM_PARAM_INVALID";
    case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
    case CKR_KEY_HANDLE_INVALID: return "CKR_KEY_HANDLE_INVALID";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
    case CKR_BUFFER_TOO_SMALL: return "CKR_BUFFER_TOO_SMALL";
    default: return "error";
    }
}

static int p11_fail(const char *call, CK_RV rv, struct gh_err *err)
{
    return gh_err_set(err, NULL, 0, 0, "pkcs11: %s: %s (0x%lx)", call, rv_name(rv),
                      (unsigned long)rv);
}

static void version_label(const struct kms_p11 *k, uint32_t version, char *out, size_t size)
{
    snprintf(out, size, "%s-v%" PRIu32, k->key_label, version);
}

/* Finds the key of <version> on the token (locked); 0 when absent. */
static CK_OBJECT_HANDLE find_key(struct kms_p11 *k, uint32_t version, struct gh_err *err)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    char label[LABEL_MAX + 16];
    CK_ATTRIBUTE tmpl[2];
    CK_OBJECT_HANDLE h = 0;
    CK_ULONG n = 0;
    CK_RV rv;

    for (size_t i = 0; i < k->ncache; i++)
        if (k->cache[i].version == version) return k->cache[i].handle;
    version_label(k, version, label, sizeof(label));
    tmpl[0] = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
    tmpl[1] = (CK_ATTRIBUTE){CKA_LABEL, label, strlen(label)};
    rv = k->f->C_FindObjectsInit(k->session, tmpl, 2);
    if (rv != CKR_OK) {
        p11_fail("C_FindObjectsInit", rv, err);
        return 0;
    }
    rv = k->f->C_FindObjects(k->session, &h, 1, &n);
    k->f->C_FindObjectsFinal(k->session);
    if (rv != CKR_OK) {
        p11_fail("C_FindObjects", rv, err);
        return 0;
    }
    if (n == 0) {
        gh_err_set(err, NULL, 0, 0, "pkcs11: master key %s is not on the token", label);
        return 0;
    }
    if (k->ncache < CACHE_MAX) k->cache[k->ncache++] = (struct key_slot){version, h};
    return h;
}

/* The highest N of the secret keys labelled "<key_label>-v<N>" (locked);
 * 0 when there is none. */
static int highest(struct kms_p11 *k, uint32_t *version, struct gh_err *err)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE tmpl = {CKA_CLASS, &cls, sizeof(cls)};
    CK_OBJECT_HANDLE hs[FIND_BATCH];
    size_t plen = strlen(k->key_label);
    CK_ULONG n;
    CK_RV rv;

    *version = 0;
    rv = k->f->C_FindObjectsInit(k->session, &tmpl, 1);
    if (rv != CKR_OK) return p11_fail("C_FindObjectsInit", rv, err);
    do {
        rv = k->f->C_FindObjects(k->session, hs, FIND_BATCH, &n);
        if (rv != CKR_OK) break;
        for (CK_ULONG i = 0; i < n; i++) {
            char label[LABEL_MAX + 16];
            CK_ATTRIBUTE a = {CKA_LABEL, label, sizeof(label) - 1};
            unsigned long v;
            char *end;

            if (k->f->C_GetAttributeValue(k->session, hs[i], &a, 1) != CKR_OK ||
                a.ulValueLen >= sizeof(label))
                continue;
            label[a.ulValueLen] = '\0';
            if (strncmp(label, k->key_label, plen) != 0 || strncmp(label + plen, "-v", 2) != 0 ||
                label[plen + 2] < '1' || label[plen + 2] > '9')
                continue;
            v = strtoul(label + plen + 2, &end, 10);
            if (*end == '\0' && v <= INT32_MAX && v > *version) *version = (uint32_t)v;
        }
    } while (n == FIND_BATCH);
    k->f->C_FindObjectsFinal(k->session);
    if (rv != CKR_OK) return p11_fail("C_FindObjects", rv, err);
    return GH_OK;
}

/* Makes "<key_label>-v<version>" on the token (locked). */
static int generate(struct kms_p11 *k, uint32_t version, struct gh_err *err)
{
    CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ULONG len = 32;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    char label[LABEL_MAX + 16];
    CK_OBJECT_HANDLE h = 0;
    CK_RV rv;

    version_label(k, version, label, sizeof(label));
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &type, sizeof(type)},
        {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_LABEL, label, strlen(label)},
        {CKA_TOKEN, &yes, sizeof(yes)},     {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)}, {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},   {CKA_DECRYPT, &yes, sizeof(yes)},
        {CKA_WRAP, &no, sizeof(no)},        {CKA_UNWRAP, &no, sizeof(no)},
    };
    rv = k->f->C_GenerateKey(k->session, &mech, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &h);
    if (rv != CKR_OK) return p11_fail("C_GenerateKey", rv, err);
    if (k->ncache < CACHE_MAX) k->cache[k->ncache++] = (struct key_slot){version, h};
    return GH_OK;
}

static void gcm_params(CK_GCM_PARAMS *p, uint8_t *iv, uint8_t aad[sizeof(KEK_AAD) + 4],
                       uint32_t version)
{
    memcpy(aad, KEK_AAD, sizeof(KEK_AAD));
    aad[sizeof(KEK_AAD)] = (uint8_t)(version >> 24);
    aad[sizeof(KEK_AAD) + 1] = (uint8_t)(version >> 16);
    aad[sizeof(KEK_AAD) + 2] = (uint8_t)(version >> 8);
    aad[sizeof(KEK_AAD) + 3] = (uint8_t)version;
    memset(p, 0, sizeof(*p));
    p->pIv = iv;
    p->ulIvLen = IV_LEN;
    p->ulIvBits = IV_LEN * 8;
    p->pAAD = aad;
    p->ulAADLen = sizeof(KEK_AAD) + 4;
    p->ulTagBits = TAG_LEN * 8;
}

static int p11_wrap(struct gh_kms *base, uint32_t version, const uint8_t dek[GH_KMS_DEK_LEN],
                    uint8_t *blob, size_t cap, size_t *len, struct gh_err *err)
{
    struct kms_p11 *k = (struct kms_p11 *)base;
    uint8_t aad[sizeof(KEK_AAD) + 4], in[GH_KMS_DEK_LEN];
    CK_GCM_PARAMS gp;
    CK_MECHANISM mech = {CKM_AES_GCM, &gp, sizeof(gp)};
    CK_ULONG outlen = GH_KMS_DEK_LEN + TAG_LEN;
    CK_OBJECT_HANDLE h;
    CK_RV rv;
    int rc = GH_ERROR;

    *len = 0;
    if (cap < BLOB_LEN) return gh_err_set(err, NULL, 0, 0, "pkcs11: blob buffer too small");
    if (RAND_bytes(blob, IV_LEN) != 1) return gh_err_set(err, NULL, 0, 0, "the CSPRNG failed");
    memcpy(in, dek, sizeof(in)); /* C_Encrypt takes a non-const pointer */
    pthread_mutex_lock(&k->lock);
    h = find_key(k, version, err);
    if (h == 0) goto out;
    gcm_params(&gp, blob, aad, version);
    rv = k->f->C_EncryptInit(k->session, &mech, h);
    if (rv != CKR_OK) {
        p11_fail("C_EncryptInit (CKM_AES_GCM)", rv, err);
        goto out;
    }
    rv = k->f->C_Encrypt(k->session, in, sizeof(in), blob + IV_LEN, &outlen);
    if (rv != CKR_OK || outlen != GH_KMS_DEK_LEN + TAG_LEN) {
        p11_fail("C_Encrypt", rv != CKR_OK ? rv : CKR_GENERAL_ERROR, err);
        goto out;
    }
    *len = BLOB_LEN;
    rc = GH_OK;
out:
    pthread_mutex_unlock(&k->lock);
    OPENSSL_cleanse(in, sizeof(in));
    return rc;
}

static int p11_unwrap(struct gh_kms *base, uint32_t version, const uint8_t *blob, size_t len,
                      uint8_t dek[GH_KMS_DEK_LEN], struct gh_err *err)
{
    struct kms_p11 *k = (struct kms_p11 *)base;
    uint8_t aad[sizeof(KEK_AAD) + 4], iv[IV_LEN], ct[GH_KMS_DEK_LEN + TAG_LEN], out[64];
    CK_GCM_PARAMS gp;
    CK_MECHANISM mech = {CKM_AES_GCM, &gp, sizeof(gp)};
    CK_ULONG outlen = sizeof(out);
    CK_OBJECT_HANDLE h;
    CK_RV rv;
    int rc = GH_ERROR;

    if (len != BLOB_LEN)
        return gh_err_set(err, NULL, 0, 0, "pkcs11: a wrapped data key has the wrong size");
    memcpy(iv, blob, IV_LEN);
    memcpy(ct, blob + IV_LEN, sizeof(ct));
    pthread_mutex_lock(&k->lock);
    /* A version made by another process since is found by its label. */
    h = find_key(k, version, err);
    if (h == 0) goto out;
    gcm_params(&gp, iv, aad, version);
    rv = k->f->C_DecryptInit(k->session, &mech, h);
    if (rv != CKR_OK) {
        p11_fail("C_DecryptInit (CKM_AES_GCM)", rv, err);
        goto out;
    }
    rv = k->f->C_Decrypt(k->session, ct, sizeof(ct), out, &outlen);
    if (rv != CKR_OK || outlen != GH_KMS_DEK_LEN) {
        gh_err_set(err, NULL, 0, 0,
                   "a data key does not open under master key version %" PRIu32
                   " on the token (a changed row, or another token)",
                   version);
        goto out;
    }
    memcpy(dek, out, GH_KMS_DEK_LEN);
    rc = GH_OK;
out:
    pthread_mutex_unlock(&k->lock);
    OPENSSL_cleanse(out, sizeof(out));
    return rc;
}

static int p11_current(struct gh_kms *base, uint32_t *version, struct gh_err *err)
{
    struct kms_p11 *k = (struct kms_p11 *)base;
    int rc;

    pthread_mutex_lock(&k->lock);
    rc = highest(k, version, err);
    pthread_mutex_unlock(&k->lock);
    return rc;
}

static int p11_create_version(struct gh_kms *base, uint32_t version, struct gh_err *err)
{
    struct kms_p11 *k = (struct kms_p11 *)base;
    uint32_t cur = 0;
    int rc;

    pthread_mutex_lock(&k->lock);
    rc = highest(k, &cur, err);
    if (rc == GH_OK && version <= cur) {
        rc = find_key(k, version, err) != 0 ? GH_OK : GH_ERROR; /* made before: resume */
    } else if (rc == GH_OK && version != cur + 1) {
        rc = gh_err_set(err, NULL, 0, 0,
                        "master key version %" PRIu32 " cannot follow version %" PRIu32, version,
                        cur);
    } else if (rc == GH_OK) {
        rc = generate(k, version, err);
    }
    pthread_mutex_unlock(&k->lock);
    return rc;
}

static void p11_close(struct gh_kms *base)
{
    struct kms_p11 *k = (struct kms_p11 *)base;

    if (k == NULL) return;
    if (k->f != NULL) {
        if (k->logged_in) k->f->C_Logout(k->session);
        if (k->have_session) k->f->C_CloseSession(k->session);
        if (k->finalize) k->f->C_Finalize(NULL);
    }
    if (k->dl != NULL) dlclose(k->dl);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

static const struct gh_kms_ops p11_ops = {
    .name = "pkcs11",
    .wrap = p11_wrap,
    .unwrap = p11_unwrap,
    .current = p11_current,
    .create_version = p11_create_version,
    .close = p11_close,
};

/* The slot whose token has label <label> (token labels are 32 bytes,
 * padded with spaces). */
static int find_slot(struct kms_p11 *k, const char *label, CK_SLOT_ID *slot, struct gh_err *err)
{
    CK_SLOT_ID *slots = NULL;
    CK_ULONG n = 0;
    size_t ll = strlen(label);
    CK_RV rv;
    int rc = GH_ERROR;

    rv = k->f->C_GetSlotList(CK_TRUE, NULL, &n);
    if (rv != CKR_OK) return p11_fail("C_GetSlotList", rv, err);
    slots = calloc(n ? n : 1, sizeof(*slots));
    if (slots == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    rv = k->f->C_GetSlotList(CK_TRUE, slots, &n);
    if (rv != CKR_OK) {
        p11_fail("C_GetSlotList", rv, err);
        goto out;
    }
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        size_t tl = sizeof(ti.label);

        if (k->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK) continue;
        while (tl > 0 && ti.label[tl - 1] == ' ')
            tl--;
        if (tl == ll && memcmp(ti.label, label, ll) == 0) {
            *slot = slots[i];
            rc = GH_OK;
            goto out;
        }
    }
    gh_err_set(err, NULL, 0, 0, "pkcs11: no token labelled \"%s\" (of %lu with a token)", label,
               (unsigned long)n);
out:
    free(slots);
    return rc;
}

struct gh_kms *gh_kms_pkcs11_open(const struct gh_kms_pkcs11_params *p, bool create_first,
                                  struct gh_err *err)
{
    struct kms_p11 *k = calloc(1, sizeof(*k));
    CK_C_GetFunctionList get_list;
    CK_C_INITIALIZE_ARGS args;
    CK_SLOT_ID slot = 0;
    uint32_t cur = 0;
    CK_RV rv;

    if (k == NULL) {
        gh_err_set(err, NULL, 0, 0, "out of memory");
        return NULL;
    }
    k->base.ops = &p11_ops;
    pthread_mutex_init(&k->lock, NULL);
    if (p->key_label == NULL || strlen(p->key_label) == 0 ||
        strlen(p->key_label) >= sizeof(k->key_label)) {
        gh_err_set(err, NULL, 0, 0, "pkcs11: key_label must have 1-63 characters");
        goto fail;
    }
    snprintf(k->key_label, sizeof(k->key_label), "%s", p->key_label);
    k->dl = dlopen(p->module, RTLD_NOW | RTLD_LOCAL);
    if (k->dl == NULL) {
        gh_err_set(err, NULL, 0, 0, "pkcs11: cannot load module %s: %s", p->module, dlerror());
        goto fail;
    }
    *(void **)&get_list = dlsym(k->dl, "C_GetFunctionList");
    if (get_list == NULL || get_list(&k->f) != CKR_OK || k->f == NULL) {
        k->f = NULL;
        gh_err_set(err, NULL, 0, 0, "pkcs11: %s has no usable C_GetFunctionList", p->module);
        goto fail;
    }
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK; /* we call from several threads (under our mutex) */
    rv = k->f->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        p11_fail("C_Initialize", rv, err);
        goto fail;
    }
    k->finalize = rv == CKR_OK;
    if (find_slot(k, p->token_label, &slot, err) != GH_OK) goto fail;
    rv = k->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &k->session);
    if (rv != CKR_OK) {
        p11_fail("C_OpenSession", rv, err);
        goto fail;
    }
    k->have_session = true;
    rv = k->f->C_Login(k->session, CKU_USER, (CK_UTF8CHAR_PTR)(uintptr_t)p->pin, strlen(p->pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        p11_fail("C_Login", rv, err);
        goto fail;
    }
    k->logged_in = rv == CKR_OK;
    if (highest(k, &cur, err) != GH_OK) goto fail;
    if (cur == 0 && create_first) {
        if (generate(k, 1, err) != GH_OK) goto fail;
    } else if (cur == 0) {
        gh_err_set(err, NULL, 0, 0,
                   "pkcs11: token \"%s\" has no master key %s-v<N> (make one with `gatehouse "
                   "secrets init`)",
                   p->token_label, k->key_label);
        goto fail;
    }
    return &k->base;
fail:
    p11_close(&k->base);
    return NULL;
}
