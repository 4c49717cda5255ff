/* Webhook signing keys: where they are kept (the secrets module, as
 * (tenant, "webhook/<endpoint id>/<version>")) and the dispatcher's cache
 * of opened keys, so that a delivery costs no store read nor KMS call. A
 * rotation makes a new version, drawn at random (gh_hooks_key_version_new),
 * so a cached key is stale only with odds of 2^-31 per rotation.
 *
 * The cache belongs to one thread (the dispatcher); it holds at most <cap>
 * keys, forgets the oldest first, and wipes every key it drops and all of
 * them when freed. Keys never reach a log. */
#ifndef GH_HOOKS_KEYCACHE_H
#define GH_HOOKS_KEYCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "hooks/sign.h"

struct gh_secrets;
struct gh_hooks_keycache;

#define GH_HOOKS_SECRET_NAME_SIZE 64

/* Writes "webhook/<endpoint_id>/<version>" into <out>. */
int gh_hooks_secret_name(char *out, size_t cap, const char *endpoint_id, uint32_t version);

/* Draws the version a new key of an endpoint is sealed under, other than
 * its keys <current> and <previous>: at random (1..2^31-1), so that two
 * rotations of one endpoint at once seal under one name (and a cached key
 * goes stale) only with odds of 2^-31; each seals its own key, and the one
 * whose update of the endpoint comes second applies over the first's. */
int gh_hooks_key_version_new(uint32_t current, uint32_t previous, uint32_t *out);

/* NULL when out of memory. <sec> must outlive the cache. */
struct gh_hooks_keycache *gh_hooks_keycache_new(struct gh_secrets *sec, size_t cap);
void gh_hooks_keycache_free(struct gh_hooks_keycache *kc);

/* Sets *key (GH_HOOKS_KEY_MAX bytes, valid until the next call) and *len to
 * key <version> of endpoint <endpoint_id> of <tenant>, opening it through
 * the secrets module on a miss. The codes of gh_secrets_get(). */
int gh_hooks_keycache_get(struct gh_hooks_keycache *kc, const char *tenant, const char *endpoint_id,
                          uint32_t version, const uint8_t **key, size_t *len, struct gh_err *err);

#endif
