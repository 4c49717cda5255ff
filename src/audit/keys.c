/* The gateway's Ed25519 audit key for the writer: the newest one in the
 * store, or a new one made and stored at the first start, as the token
 * signing keys are (src/auth/service.c). Key material and signatures are
 * checkpoint.c's. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "audit/checkpoint.h"
#include "audit/writer_int.h"
#include "core/log.h"
#include "store/store.h"

int gh_audit_key_load_(struct gh_audit_service *s, struct gh_err *err)
{
    struct gh_store_audit_key k;
    size_t count = 0;
    int rc = GH_ERROR;

    memset(&k, 0, sizeof(k));
    if (gh_store_audit_keys_list(s->store, &k, 1, &count, err) != GH_OK) return GH_ERROR;
    if (count == 0) {
        if (gh_audit_key_generate(&k, err) != GH_OK ||
            gh_store_audit_key_insert(s->store, &k, err) != GH_OK)
            goto out;
        gh_log_info("audit: new signing key %s (Ed25519)", k.key_id);
    }
    s->key = gh_audit_key_load(k.private_pem, true, err);
    if (s->key == NULL) goto out;
    snprintf(s->key_id, sizeof(s->key_id), "%s", k.key_id);
    rc = GH_OK;
out:
    OPENSSL_cleanse(k.private_pem, sizeof(k.private_pem));
    return rc;
}
