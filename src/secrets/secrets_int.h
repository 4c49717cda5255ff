/* Private to src/secrets: the handle that secrets.c and rotate.c share. */
#ifndef GH_SECRETS_SECRETS_INT_H
#define GH_SECRETS_SECRETS_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

struct gh_store;
struct gh_kms;

struct gh_secrets {
    struct gh_store *store; /* not owned */
    struct gh_kms *kms;     /* owned: closed with the handle */
    char place[320];        /* "file PATH" or "token LABEL", for messages */
    /* The highest master key version compared with the store's check by
     * this handle: a newer current version (another process rotated, or a
     * copy of the file gained one) is compared before it seals anything. */
    _Atomic uint32_t checked;
    /* The store's version in use when this handle last compared the
     * version it seals under: when it changes, the comparison is made
     * again (a prepared check can be forgotten and made anew with another
     * key by `rotate-master --unprepare` and `--prepare`, so one made while
     * it was prepared no longer holds once a rotation puts it in use). */
    _Atomic uint32_t in_use_seen;
    /* A version whose key this handle made and the store refused, and that
     * the provider destroyed (gh_kms_ops.discard): 0 when none. An open
     * compares again once, for a token shared with the process whose key
     * the store took. */
    uint32_t discarded;
};

/* Master key checks (docs/secrets.md): the store keeps, per master key
 * version, a constant wrapped by the first key that opened it under that
 * version. Compares the provider's key <version> with it, recording ours
 * when the store has none; *newest gets the highest version the store has
 * a check of. GH_STORE_CONFLICT with a message when the key is another
 * one; GH_STORE_NOT_FOUND when the provider cannot wrap under <version>
 * (it no longer holds it); store errors as they come. Every open checks versions
 * 1..current before anything is sealed; a rotation checks its new version
 * as soon as the provider has it. A check this call records is recorded
 * as prepared (not in use) when <prepared>. A refused key this handle
 * made itself is destroyed where the provider can (a token's: it would
 * share the label with the store's key), and noted in s->discarded. */
int gh_secrets__check_version(struct gh_secrets *s, uint32_t version, bool prepared,
                              uint32_t *newest, struct gh_err *err);

#endif
