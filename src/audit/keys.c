/* The gateway's Ed25519 audit key for the writer: the newest one in the
 * store, or a new one made and stored at the first start, as the token
 * signing keys are (src/auth/service.c). The private half is sealed under
 * the master key (secrets.h, "own private keys"): the audit_keys row keeps
 * "secret:audit-key/<id>". Key material and signatures are checkpoint.c's. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "audit/checkpoint.h"
#include "audit/writer_int.h"
#include "core/log.h"
#include "secrets/secrets.h"
#include "store/store.h"

void gh_audit_service_set_secrets(struct gh_audit_service *s, struct gh_secrets *secrets)
{
    s->secrets = secrets;
}

int gh_audit_key_load_(struct gh_audit_service *s, struct gh_err *err)
{
    struct gh_store_audit_key k;
    char pem[sizeof(k.private_pem)], name[64];
    size_t count = 0;
    int rc = GH_ERROR;

    memset(&k, 0, sizeof(k));
    pem[0] = '\0';
    if (gh_store_audit_keys_list(s->store, &k, 1, &count, err) != GH_OK) return GH_ERROR;
    if (count == 0) {
        if (gh_audit_key_generate(&k, err) != GH_OK) goto out;
        /* Sealed before the row exists: the PEM never reaches the table. */
        snprintf(name, sizeof(name), "audit-key/%s", k.key_id);
        snprintf(pem, sizeof(pem), "%s", k.private_pem);
        if (s->secrets != NULL && gh_secrets_seal_ref(s->secrets, name, pem, k.private_pem,
                                                      sizeof(k.private_pem), err) != GH_OK)
            goto out;
        if (gh_store_audit_key_insert(s->store, &k, err) != GH_OK) goto out;
        gh_log_info("audit: new signing key %s (Ed25519%s)", k.key_id,
                    s->secrets ? ", sealed" : "");
    } else if (gh_secrets_open_ref(s->secrets, k.private_pem, pem, sizeof(pem), err) != GH_OK) {
        goto out;
    }
    s->key = gh_audit_key_load(pem, true, err);
    if (s->key == NULL) goto out;
    snprintf(s->key_id, sizeof(s->key_id), "%s", k.key_id);
    rc = GH_OK;
out:
    OPENSSL_cleanse(k.private_pem, sizeof(k.private_pem));
    OPENSSL_cleanse(pem, sizeof(pem));
    return rc;
}
