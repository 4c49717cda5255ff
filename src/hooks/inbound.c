/* Signature checks for inbound webhooks (Standard Webhooks, GitHub, Stripe):
 * strict header parsers, the MAC over the signed content, and the constant
 * time comparison. See inbound.h for the contract. */
#include "hooks/inbound.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

#define MAC_LEN 32

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Exactly 64 hex digits -> 32 bytes. */
static bool hex32(gh_str s, unsigned char out[MAC_LEN])
{
    if (s.len != 2 * MAC_LEN) return false;
    for (size_t i = 0; i < MAC_LEN; i++) {
        int hi = hexval((unsigned char)s.ptr[2 * i]), lo = hexval((unsigned char)s.ptr[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Strict standard base64 (RFC 4648 §4) with padding: a length that is a
 * multiple of 4, '=' only at the end, unused bits zero. Returns the decoded
 * length, or -1 (also when it would pass <cap>). The existing
 * gh_b64url_decode is base64url (RFC 4648 §5), which these formats do not use. */
static long b64_decode(gh_str s, unsigned char *out, size_t cap)
{
    size_t pad = 0, n = 0;

    if (s.len == 0 || s.len % 4 != 0) return -1;
    if (s.ptr[s.len - 1] == '=') pad++;
    if (s.ptr[s.len - 2] == '=') pad++;
    if ((s.len / 4) * 3 - pad > cap) return -1;
    for (size_t i = 0; i < s.len; i += 4) {
        int v[4];
        for (size_t k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s.ptr[i + k];
            bool tail = i + 4 == s.len && k >= 4 - pad;
            v[k] = tail ? (c == '=' ? 0 : -1) : b64val(c);
            if (v[k] < 0) return -1;
        }
        unsigned long w = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
                          (unsigned long)v[2] << 6 | (unsigned long)v[3];
        out[n++] = (unsigned char)(w >> 16);
        if (i + 4 < s.len || pad < 2) out[n++] = (unsigned char)(w >> 8);
        if (i + 4 < s.len || pad < 1) out[n++] = (unsigned char)w;
        if (i + 4 == s.len && ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff))))
            return -1; /* non-canonical: bits set past the data */
    }
    return (long)n;
}

enum gh_wh_result gh_wh_parse_timestamp(gh_str s, int64_t *out)
{
    int64_t v = 0;

    if (s.len == 0 || s.len > 12) return GH_WH_MALFORMED;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9') return GH_WH_MALFORMED;
        v = v * 10 + (s.ptr[i] - '0');
    }
    *out = v;
    return GH_WH_OK;
}

/* Visible ASCII, 1..GH_WH_MAX_ID_LEN bytes: ids go into the signed content
 * and the replay key, so nothing that could split or hide. */
static bool valid_id(gh_str s)
{
    if (s.len == 0 || s.len > GH_WH_MAX_ID_LEN) return false;
    for (size_t i = 0; i < s.len; i++)
        if ((unsigned char)s.ptr[i] <= 0x20 || (unsigned char)s.ptr[i] >= 0x7f) return false;
    return true;
}

/* The next element of <rest> up to <sep>; false at the end. An empty
 * element (two separators, or one at either end) comes back empty. */
static bool next_elem(gh_str *rest, char sep, gh_str *e)
{
    const char *p;

    if (rest->ptr == NULL) return false;
    p = memchr(rest->ptr, sep, rest->len);
    if (p == NULL) {
        *e = *rest;
        rest->ptr = NULL;
        rest->len = 0;
        return true;
    }
    *e = gh_str_make(rest->ptr, (size_t)(p - rest->ptr));
    rest->len -= (size_t)(p - rest->ptr) + 1;
    rest->ptr = p + 1;
    return true;
}

enum gh_wh_result gh_wh_parse_standard(gh_str header, struct gh_wh_sigs *out)
{
    gh_str rest = header, e;
    size_t entries = 0;

    out->n = out->ned = 0;
    if (header.len == 0 || header.len > GH_WH_MAX_SIG_HEADER) return GH_WH_MALFORMED;
    while (next_elem(&rest, ' ', &e)) {
        const char *comma = memchr(e.ptr, ',', e.len);
        size_t vlen;
        if (e.len == 0 || comma == NULL || comma == e.ptr) return GH_WH_MALFORMED;
        if (++entries > GH_WH_MAX_ENTRIES) return GH_WH_MALFORMED;
        vlen = (size_t)(comma - e.ptr);
        gh_str b64 = gh_str_make(comma + 1, e.len - vlen - 1);
        if (vlen == 2 && memcmp(e.ptr, "v1", 2) == 0) {
            if (b64_decode(b64, out->mac[out->n], MAC_LEN) != MAC_LEN) return GH_WH_MALFORMED;
            out->n++;
        } else if (vlen == 3 && memcmp(e.ptr, "v1a", 3) == 0) {
            /* Bounded: each one costs an Ed25519 check per public key. */
            if (out->ned == GH_WH_MAX_ED || b64_decode(b64, out->ed[out->ned], 64) != 64)
                return GH_WH_MALFORMED;
            out->ned++;
        }
        /* Later versions are skipped. */
    }
    return out->n + out->ned ? GH_WH_OK : GH_WH_MALFORMED;
}

enum gh_wh_result gh_wh_parse_github(gh_str header, struct gh_wh_sigs *out)
{
    static const char prefix[] = "sha256=";

    out->n = out->ned = 0;
    if (header.len != sizeof(prefix) - 1 + 2 * MAC_LEN ||
        memcmp(header.ptr, prefix, sizeof(prefix) - 1) != 0)
        return GH_WH_MALFORMED;
    if (!hex32(gh_str_make(header.ptr + 7, 2 * MAC_LEN), out->mac[0])) return GH_WH_MALFORMED;
    out->n = 1;
    return GH_WH_OK;
}

enum gh_wh_result gh_wh_parse_stripe(gh_str header, struct gh_wh_sigs *out)
{
    gh_str rest = header, e;
    size_t items = 0;
    bool have_t = false;

    out->n = out->ned = 0;
    if (header.len == 0 || header.len > GH_WH_MAX_SIG_HEADER) return GH_WH_MALFORMED;
    while (next_elem(&rest, ',', &e)) {
        const char *eq = memchr(e.ptr, '=', e.len);
        gh_str k, val;
        if (e.len == 0 || eq == NULL || eq == e.ptr) return GH_WH_MALFORMED;
        if (++items > GH_WH_MAX_ENTRIES + 2) return GH_WH_MALFORMED;
        k = gh_str_make(e.ptr, (size_t)(eq - e.ptr));
        val = gh_str_make(eq + 1, e.len - k.len - 1);
        if (k.len == 1 && k.ptr[0] == 't') {
            if (have_t || gh_wh_parse_timestamp(val, &out->t) != GH_WH_OK) return GH_WH_MALFORMED;
            out->t_text = val;
            have_t = true;
        } else if (k.len == 2 && memcmp(k.ptr, "v1", 2) == 0) {
            if (out->n == GH_WH_MAX_ENTRIES || !hex32(val, out->mac[out->n]))
                return GH_WH_MALFORMED;
            out->n++;
        }
        /* v0 (test mode's scheme) and keys Stripe may add later are skipped. */
    }
    return have_t && out->n ? GH_WH_OK : GH_WH_MALFORMED;
}

/* ---- setup ---- */

int gh_wh_verifier_init(struct gh_wh_verifier *v, enum gh_wh_format format,
                        const char *const *secrets, size_t n, int64_t tolerance_s,
                        struct gh_err *err)
{
    memset(v, 0, sizeof(*v));
    v->format = format;
    v->tolerance_s = tolerance_s;
    if (n == 0 || n > GH_WH_MAX_SECRETS)
        return gh_err_set(err, NULL, 0, 0, "between 1 and %d secrets", GH_WH_MAX_SECRETS);
    for (size_t i = 0; i < n; i++) {
        gh_str s = gh_str_cstr(secrets[i]);
        if (format == GH_WH_STANDARD && gh_str_has_prefix(s, GH_STR_LIT("whpk_"))) {
            unsigned char raw[32];
            EVP_PKEY *pk = NULL;
            if (b64_decode(gh_str_make(s.ptr + 5, s.len - 5), raw, sizeof(raw)) == 32)
                pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, sizeof(raw));
            if (pk == NULL) {
                gh_wh_verifier_release(v);
                return gh_err_set(err, NULL, 0, 0,
                                  "secret %zu is not whpk_ followed by the base64 of a 32-byte "
                                  "Ed25519 public key",
                                  i + 1);
            }
            v->pub[v->npub++] = pk;
        } else if (format == GH_WH_STANDARD) {
            long len;
            if (gh_str_has_prefix(s, GH_STR_LIT("whsec_"))) s = gh_str_make(s.ptr + 6, s.len - 6);
            len = b64_decode(s, v->keys[v->nkeys].bytes, GH_WH_MAX_SECRET_LEN);
            if (len <= 0) {
                gh_wh_verifier_release(v);
                return gh_err_set(err, NULL, 0, 0,
                                  "secret %zu is not whsec_ followed by base64 (at most %d bytes)",
                                  i + 1, GH_WH_MAX_SECRET_LEN);
            }
            v->keys[v->nkeys++].len = (size_t)len;
        } else {
            if (s.len == 0 || s.len > GH_WH_MAX_SECRET_LEN) {
                gh_wh_verifier_release(v);
                return gh_err_set(err, NULL, 0, 0, "secret %zu must have 1 to %d bytes", i + 1,
                                  GH_WH_MAX_SECRET_LEN);
            }
            memcpy(v->keys[v->nkeys].bytes, s.ptr, s.len);
            v->keys[v->nkeys++].len = s.len;
        }
    }
    return GH_OK;
}

void gh_wh_verifier_release(struct gh_wh_verifier *v)
{
    OPENSSL_cleanse(v->keys, sizeof(v->keys));
    v->nkeys = 0;
    for (size_t i = 0; i < v->npub; i++)
        EVP_PKEY_free(v->pub[i]);
    v->npub = 0;
}

static EVP_MAC_CTX *mac_new(void)
{
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };

    EVP_MAC_free(m); /* the context keeps its own reference */
    if (ctx && !EVP_MAC_CTX_set_params(ctx, params)) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

int gh_wh_keyed_init(struct gh_wh_keyed *k, const struct gh_wh_verifier *v)
{
    memset(k, 0, sizeof(*k));
    for (size_t i = 0; i < v->nkeys; i++) {
        k->ctx[i] = mac_new();
        if (k->ctx[i] == NULL || !EVP_MAC_init(k->ctx[i], v->keys[i].bytes, v->keys[i].len, NULL)) {
            k->n = i + 1;
            gh_wh_keyed_release(k);
            return GH_ERROR;
        }
    }
    k->n = v->nkeys;
    return GH_OK;
}

void gh_wh_keyed_release(struct gh_wh_keyed *k)
{
    for (size_t i = 0; i < k->n; i++)
        EVP_MAC_CTX_free(k->ctx[i]);
    memset(k, 0, sizeof(*k));
}

/* ---- verification ---- */

/* HMAC-SHA256 of the concatenation of <parts> with the key <ctx> holds
 * (EVP_MAC_init with a NULL key reuses it: no key schedule, no allocation). */
static bool mac_parts(EVP_MAC_CTX *ctx, const gh_str *parts, size_t nparts,
                      unsigned char out[MAC_LEN])
{
    size_t outlen = 0;

    if (!EVP_MAC_init(ctx, NULL, 0, NULL)) return false;
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].len && !EVP_MAC_update(ctx, (const unsigned char *)parts[i].ptr, parts[i].len))
            return false;
    return EVP_MAC_final(ctx, out, &outlen, MAC_LEN) && outlen == MAC_LEN;
}

static bool stale(const struct gh_wh_verifier *v, int64_t ts, int64_t now_s)
{
    int64_t d = now_s > ts ? now_s - ts : ts - now_s;
    return d > v->tolerance_s;
}

/* Any entry of <sigs> equal to the MAC of <parts> under any key. Every key
 * and entry is tried, so the time taken does not tell which one matched.
 * <first> gets the MAC under the first key, whichever key matched: the
 * message's replay identity must not depend on which of its signatures a
 * sender (or a replayer, keeping only the old one during a rotation) sent. */
static enum gh_wh_result match(struct gh_wh_keyed *keys, const struct gh_wh_sigs *sigs,
                               const gh_str *parts, size_t nparts, unsigned char first[MAC_LEN])
{
    unsigned char mac[MAC_LEN];
    int found = 0;

    for (size_t k = 0; k < keys->n; k++) {
        if (!mac_parts(keys->ctx[k], parts, nparts, mac)) return GH_WH_BAD_SIGNATURE;
        if (k == 0) memcpy(first, mac, MAC_LEN);
        for (size_t i = 0; i < sigs->n; i++)
            found |= CRYPTO_memcmp(mac, sigs->mac[i], MAC_LEN) == 0;
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    return found ? GH_WH_OK : GH_WH_BAD_SIGNATURE;
}

/* Any v1a entry of <sigs> that one of <v>'s public keys verifies over the
 * concatenation of <parts>. Ed25519 needs the message in one piece, so this
 * path copies it (an allocation: it is rare, and the check itself costs
 * ~0.1 ms, a hundred times the copy). */
static enum gh_wh_result match_ed(const struct gh_wh_verifier *v, const struct gh_wh_sigs *sigs,
                                  const gh_str *parts, size_t nparts)
{
    size_t len = 0, off = 0;
    unsigned char *msg;
    EVP_MD_CTX *md = NULL;
    enum gh_wh_result rc = GH_WH_BAD_SIGNATURE;

    for (size_t i = 0; i < nparts; i++)
        len += parts[i].len;
    msg = malloc(len ? len : 1);
    if (msg == NULL) return GH_WH_BAD_SIGNATURE;
    for (size_t i = 0; i < nparts; i++) {
        if (parts[i].len) memcpy(msg + off, parts[i].ptr, parts[i].len);
        off += parts[i].len;
    }
    md = EVP_MD_CTX_new();
    for (size_t k = 0; md && k < v->npub && rc != GH_WH_OK; k++)
        for (size_t i = 0; i < sigs->ned && rc != GH_WH_OK; i++)
            if (EVP_MD_CTX_reset(md) == 1 &&
                EVP_DigestVerifyInit(md, NULL, NULL, NULL, v->pub[k]) == 1 &&
                EVP_DigestVerify(md, sigs->ed[i], 64, msg, len) == 1)
                rc = GH_WH_OK;
    EVP_MD_CTX_free(md);
    free(msg);
    return rc;
}

enum gh_wh_result gh_wh_verify(const struct gh_wh_verifier *v, struct gh_wh_keyed *keys,
                               const struct gh_wh_headers *h, gh_str body, int64_t now_s,
                               struct gh_wh_verified *out)
{
    struct gh_wh_sigs sigs;
    unsigned char matched[MAC_LEN];
    gh_str parts[5];
    int64_t ts = 0;
    enum gh_wh_result rc;

    if (h->signature.len == 0) return GH_WH_MISSING;
    switch (v->format) {
    case GH_WH_STANDARD:
        if (h->id.len == 0 || h->timestamp.len == 0) return GH_WH_MISSING;
        if (!valid_id(h->id) || gh_wh_parse_timestamp(h->timestamp, &ts) != GH_WH_OK)
            return GH_WH_MALFORMED;
        if ((rc = gh_wh_parse_standard(h->signature, &sigs)) != GH_WH_OK) return rc;
        if (stale(v, ts, now_s)) return GH_WH_STALE;
        parts[0] = h->id;
        parts[1] = GH_STR_LIT(".");
        parts[2] = h->timestamp;
        parts[3] = GH_STR_LIT(".");
        parts[4] = body;
        rc = match(keys, &sigs, parts, 5, matched);
        if (rc != GH_WH_OK && sigs.ned && v->npub) rc = match_ed(v, &sigs, parts, 5);
        if (rc != GH_WH_OK) return rc;
        break;
    case GH_WH_GITHUB:
        if (h->id.len == 0) return GH_WH_MISSING;
        if (!valid_id(h->id)) return GH_WH_MALFORMED;
        if ((rc = gh_wh_parse_github(h->signature, &sigs)) != GH_WH_OK) return rc;
        if ((rc = match(keys, &sigs, &body, 1, matched)) != GH_WH_OK) return rc;
        break;
    case GH_WH_STRIPE:
        if ((rc = gh_wh_parse_stripe(h->signature, &sigs)) != GH_WH_OK) return rc;
        ts = sigs.t;
        if (stale(v, ts, now_s)) return GH_WH_STALE;
        parts[0] = sigs.t_text;
        parts[1] = GH_STR_LIT(".");
        parts[2] = body;
        if ((rc = match(keys, &sigs, parts, 3, matched)) != GH_WH_OK) return rc;
        break;
    default: return GH_WH_MALFORMED;
    }
    if (out) {
        /* Standard and GitHub: the sender's id (a retry with a new timestamp
         * is still the same message). Stripe has no id in the header: the
         * timestamp with the MAC under the first secret. */
        out->key[0] = (unsigned char)('0' + v->format);
        out->timestamp = ts;
        out->key2_len = 0;
        if (v->format == GH_WH_STRIPE) {
            memcpy(out->key + 1, &ts, sizeof(ts));
            memcpy(out->key + 1 + sizeof(ts), matched, MAC_LEN);
            out->key_len = 1 + sizeof(ts) + MAC_LEN;
        } else {
            memcpy(out->key + 1, h->id.ptr, h->id.len);
            out->key_len = 1 + h->id.len;
        }
        if (v->format == GH_WH_GITHUB) {
            out->key2[0] = 'm';
            memcpy(out->key2 + 1, matched, MAC_LEN);
            out->key2_len = 1 + MAC_LEN;
        }
    }
    return GH_WH_OK;
}

const char *gh_wh_result_code(enum gh_wh_result r)
{
    switch (r) {
    case GH_WH_OK: return "ok";
    case GH_WH_MISSING: return "missing_signature";
    case GH_WH_STALE: return "stale_timestamp";
    case GH_WH_REPLAYED: return "replayed";
    default: return "invalid_signature";
    }
}
