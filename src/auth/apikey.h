/* API keys: their wire format, generation, and the Argon2id hash of the
 * secret part.
 *
 * A key as a client holds it: "gh_" + <key id> + "_" + <secret>, where the
 * key id is 16 base62 characters (public: it names the key in logs, the
 * admin API and the store) and the secret is 32 random bytes written in
 * base62 (43 characters). The store keeps the id and an Argon2id PHC string
 * of the secret, never the secret. */
#ifndef GH_AUTH_APIKEY_H
#define GH_AUTH_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

#define GH_APIKEY_ID_LEN     16
#define GH_APIKEY_SECRET_LEN 43
#define GH_APIKEY_LEN        (3 + GH_APIKEY_ID_LEN + 1 + GH_APIKEY_SECRET_LEN) /* 63 */
#define GH_APIKEY_PHC_MAX    160

struct gh_argon2_params {
    uint32_t memory_kib;  /* default 19456 (19 MiB) */
    uint32_t iterations;  /* default 2 */
    uint32_t parallelism; /* default 1 */
};

/* Splits <key> into its id and secret parts (slices into <key>). Returns
 * true only for the exact format: right prefix, lengths and alphabet. */
bool gh_apikey_parse(gh_str key, gh_str *id, gh_str *secret);

/* Writes a new key id (16 base62 chars + NUL) into <out>. Returns 0 or -1
 * (no randomness available). */
int gh_apikey_new_id(char out[GH_APIKEY_ID_LEN + 1]);

/* Generates a key for <id>: fills <key> (GH_APIKEY_LEN + 1 bytes) and the
 * PHC string of its secret's Argon2id hash in <phc>. Returns 0 or -1. The
 * caller shows <key> once and wipes it (gh_apikey_wipe). */
int gh_apikey_generate(const char *id, const struct gh_argon2_params *p,
                       char key[GH_APIKEY_LEN + 1], char phc[GH_APIKEY_PHC_MAX]);

/* Verifies <secret> against <phc> (Argon2id; ~20 ms with the defaults: never
 * on a worker loop). Returns true when it matches. */
bool gh_apikey_verify(const char *phc, gh_str secret);

/* Zeroes <n> bytes at <p> in a way the compiler keeps. */
void gh_apikey_wipe(void *p, size_t n);

#endif
