/* Inbound webhook verification: is this request signed by the sender whose
 * secret the route holds? Pure: no I/O, no clock (the caller passes the
 * time), no allocation per call.
 *
 * Three formats:
 * - Standard Webhooks 1.0: `webhook-id`, `webhook-timestamp` (decimal
 *   seconds), `webhook-signature` (space-separated `v1,<base64>` and
 *   `v1a,<base64>` entries; other versions are skipped). v1: HMAC-SHA256 of
 *   "<id>.<timestamp>.<body>" keyed with the base64-decoded `whsec_`
 *   secret; v1a: an Ed25519 signature of the same content, checked with a
 *   `whpk_` public key (base64 of its 32 raw bytes).
 * - GitHub: `X-Hub-Signature-256: sha256=<64 hex>`, HMAC-SHA256 of the body
 *   keyed with the secret's bytes as given. The format has no timestamp, so
 *   "stale" never applies; replays are caught by `X-GitHub-Delivery` and,
 *   since that id is not signed, by the body's MAC as well.
 * - Stripe: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>...]` (v0 and
 *   unknown keys skipped), HMAC-SHA256 of "<t>.<body>" keyed with the
 *   secret string as given (`whsec_...` bytes included, as Stripe's own
 *   libraries do).
 *
 * Headers are parsed strictly with bounded lengths; a signature matches when
 * any entry equals the MAC under any of the route's secrets (rotation),
 * compared with CRYPTO_memcmp. The timestamp is checked before the MAC, both
 * ways (a clock ahead of ours by more than the tolerance is refused too).
 * Replay protection is not here: on success the caller gets the replay key
 * (gh_wh_verified) and records it in the shared table (replay.h) only then,
 * so forged requests cannot poison ids. */
#ifndef GH_HOOKS_INBOUND_H
#define GH_HOOKS_INBOUND_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "core/str.h"

enum gh_wh_format { GH_WH_STANDARD, GH_WH_GITHUB, GH_WH_STRIPE };

enum gh_wh_result {
    GH_WH_OK,
    GH_WH_MISSING,       /* a required header is absent or empty */
    GH_WH_MALFORMED,     /* a header does not parse */
    GH_WH_STALE,         /* timestamp outside the tolerance */
    GH_WH_BAD_SIGNATURE, /* no entry matches any secret */
    GH_WH_REPLAYED,      /* seen before (set by the caller, from replay.h) */
};

#define GH_WH_MAX_SECRETS    4    /* rotation: the new secret and a few old ones */
#define GH_WH_MAX_SECRET_LEN 256  /* key bytes after decoding */
#define GH_WH_MAX_ID_LEN     256  /* webhook-id, X-GitHub-Delivery */
#define GH_WH_MAX_SIG_HEADER 2048 /* a signature header longer than this is refused */
#define GH_WH_MAX_ENTRIES    8    /* signatures per header we look at; more: refused */
#define GH_WH_MAX_ED         2    /* v1a entries: each costs ~0.1 ms per public key */
#define GH_WH_KEY_MAX        (1 + GH_WH_MAX_ID_LEN)

/* A route's verification settings; immutable after gh_wh_verifier_init, so
 * any thread may verify with it at once. */
struct gh_wh_verifier {
    enum gh_wh_format format;
    int64_t tolerance_s; /* Standard and Stripe timestamps */
    size_t nkeys;        /* HMAC secrets */
    struct {
        unsigned char bytes[GH_WH_MAX_SECRET_LEN];
        size_t len;
    } keys[GH_WH_MAX_SECRETS];
    size_t npub; /* Standard: Ed25519 public keys (`whpk_`), for v1a entries */
    EVP_PKEY *pub[GH_WH_MAX_SECRETS];
};

/* The header values a verification reads (slices; empty: absent). */
struct gh_wh_headers {
    gh_str id;        /* webhook-id | X-GitHub-Delivery | unused */
    gh_str timestamp; /* webhook-timestamp | unused | unused */
    gh_str signature; /* webhook-signature | X-Hub-Signature-256 | Stripe-Signature */
};

/* What a successful verification hands to the replay table. */
struct gh_wh_verified {
    unsigned char key[GH_WH_KEY_MAX]; /* format byte, then the id or t + MAC */
    size_t key_len;
    /* GitHub only: the body's MAC. Its delivery id is not signed, so a
     * replay with a fresh id would pass on the id alone. 0 when unused. */
    unsigned char key2[1 + 32];
    size_t key2_len;
    int64_t timestamp; /* the signed timestamp; 0 for GitHub */
};

/* Sets up <v> for <format> with <n> secrets (1..GH_WH_MAX_SECRETS) and a
 * tolerance of <tolerance_s> seconds. Standard secrets are `whsec_<base64>`
 * or bare base64 (HMAC keys), or `whpk_<base64>` Ed25519 public keys, and
 * are decoded here. Returns GH_OK, or GH_ERROR with a
 * message in <err> that never shows a secret. */
int gh_wh_verifier_init(struct gh_wh_verifier *v, enum gh_wh_format format,
                        const char *const *secrets, size_t n, int64_t tolerance_s,
                        struct gh_err *err);
/* Wipes the keys and frees the public keys. */
void gh_wh_verifier_release(struct gh_wh_verifier *v);

/* One thread's HMAC-SHA256 contexts for one verifier, each keyed once with
 * one of its secrets. A check re-initialises them with the key they hold,
 * which costs nothing for the key and allocates nothing (bench/README.md:
 * about 20% less than re-keying one context per check). Not shared between
 * threads: a context is mutable state. */
struct gh_wh_keyed {
    EVP_MAC_CTX *ctx[GH_WH_MAX_SECRETS];
    size_t n;
};

/* Keys one context per secret of <v>. Returns GH_OK, or GH_ERROR (out of
 * memory) with nothing left to release. */
int gh_wh_keyed_init(struct gh_wh_keyed *k, const struct gh_wh_verifier *v);
void gh_wh_keyed_release(struct gh_wh_keyed *k);

/* Verifies <body> against <h> at wall time <now_s>, with <keys> made from
 * <v> by the calling thread. On GH_WH_OK fills <out> (may be NULL). Never
 * returns GH_WH_REPLAYED. */
enum gh_wh_result gh_wh_verify(const struct gh_wh_verifier *v, struct gh_wh_keyed *keys,
                               const struct gh_wh_headers *h, gh_str body, int64_t now_s,
                               struct gh_wh_verified *out);

/* Parsers, exposed for the fuzzer and the tests. Each returns GH_WH_OK or
 * GH_WH_MALFORMED and never reads past <in>. */
struct gh_wh_sigs {
    unsigned char mac[GH_WH_MAX_ENTRIES][32];
    size_t n; /* HMAC entries (v1) */
    unsigned char ed[GH_WH_MAX_ED][64];
    size_t ned;    /* Standard: Ed25519 entries (v1a) */
    int64_t t;     /* Stripe: t= */
    gh_str t_text; /* Stripe: the digits of t=, signed as they came */
};
enum gh_wh_result gh_wh_parse_standard(gh_str header, struct gh_wh_sigs *out);
enum gh_wh_result gh_wh_parse_github(gh_str header, struct gh_wh_sigs *out);
enum gh_wh_result gh_wh_parse_stripe(gh_str header, struct gh_wh_sigs *out);
/* Decimal seconds: 1 to 12 digits, nothing else. */
enum gh_wh_result gh_wh_parse_timestamp(gh_str s, int64_t *out);

/* The name of a result for error bodies and metrics labels: "ok",
 * "missing_signature", "invalid_signature", "stale_timestamp", "replayed". */
const char *gh_wh_result_code(enum gh_wh_result r);

#endif
