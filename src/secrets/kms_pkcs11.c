/* The `pkcs11` KMS provider: not implemented yet in this commit (the next
 * one brings it); opening it fails with a clear error. */
#include "secrets/kms.h"

struct gh_kms *gh_kms_pkcs11_open(const struct gh_kms_pkcs11_params *p, bool create_first,
                                  struct gh_err *err)
{
    (void)p;
    (void)create_first;
    gh_err_set(err, NULL, 0, 0, "secrets: provider pkcs11 is not available in this build yet");
    return NULL;
}
