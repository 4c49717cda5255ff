/* Private to src/secrets: the handle that secrets.c and rotate.c share. */
#ifndef GH_SECRETS_SECRETS_INT_H
#define GH_SECRETS_SECRETS_INT_H

struct gh_store;
struct gh_kms;

struct gh_secrets {
    struct gh_store *store; /* not owned */
    struct gh_kms *kms;     /* owned: closed with the handle */
};

#endif
