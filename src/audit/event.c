/* Audit events: their ids (UUIDv7), the setters that keep every string valid
 * UTF-8 and bounded, the canonical form of docs/audit-format.md, the chain
 * hash and the checkpoint message. Pure functions: no allocation, no global
 * state, so any thread (a worker included) may fill an event. */
#include "audit/event.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* SHA256_Init and friends are deprecated in OpenSSL 3 in favour of EVP, but
 * EVP allocates a context and looks the digest up in a provider on every
 * call; the low-level functions run the same assembly with neither, which
 * keeps these functions allocation-free and the verifier fast. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "audit/audit_int.h"

static const char hexd[] = "0123456789abcdef";

/* ---- UTF-8 and escaping ------------------------------------------------------ */

size_t gh_audit__utf8_len(const unsigned char *p, size_t n, size_t *bad)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    size_t need;

    *bad = 1;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0) lo = 0xa0; /* no overlong forms */
        if (c == 0xed) hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0) lo = 0x90; /* no overlong forms */
        if (c == 0xf4) hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        return 0; /* a continuation byte, C0, C1 or F5..FF: one U+FFFD */
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) {
            *bad = i;
            return 0;
        }
        if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xbf)) {
            *bad = i; /* the valid prefix is the maximal subpart */
            return 0;
        }
    }
    return need;
}

/* Runs of bytes that need no escape are found first and copied whole:
 * field values hardly ever hold one, and the audit writer escapes every
 * field of every event it chains. */
size_t gh_audit__escape(const char *s, size_t n, char *out)
{
    char *o = out;
    size_t i = 0;

    while (i < n) {
        size_t run = i;
        while (run < n && gh_audit__esc_len((unsigned char)s[run]) == 1)
            run++;
        memcpy(o, s + i, run - i);
        o += run - i;
        if (run == n) break;
        unsigned char c = (unsigned char)s[run];
        i = run + 1;
        if (c < 0x20 || c == 0x7f) {
            memcpy(o, "\\u00", 4);
            o[4] = hexd[c >> 4];
            o[5] = hexd[c & 15];
            o += 6;
        } else {
            *o++ = '\\';
            *o++ = (char)c;
        }
    }
    return (size_t)(o - out);
}

/* ---- Events ------------------------------------------------------------------ */

void gh_audit_event_init(struct gh_audit_event *ev, int64_t now_us, const uint8_t rand[10])
{
    uint64_t ms = now_us > 0 ? (uint64_t)now_us / 1000 : 0;
    uint8_t u[16];
    size_t o = 0;

    memset(ev, 0, sizeof(*ev));
    /* RFC 9562 §5.7: unix_ts_ms (48 bits, big-endian), ver = 7, rand_a (12
     * bits), var = 0b10, rand_b (62 bits). */
    for (int i = 0; i < 6; i++)
        u[i] = (uint8_t)(ms >> (40 - 8 * i));
    u[6] = (uint8_t)(0x70 | (rand[0] & 0x0f));
    u[7] = rand[1];
    u[8] = (uint8_t)(0x80 | (rand[2] & 0x3f));
    memcpy(u + 9, rand + 3, 7);
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) ev->id[o++] = '-';
        ev->id[o++] = hexd[u[i] >> 4];
        ev->id[o++] = hexd[u[i] & 15];
    }
    ev->id[o] = '\0';
    ev->time_us = now_us;
    gh_audit_params_begin(ev);
}

void gh_audit_set(char *dst, size_t size, gh_str s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0, o = 0, canon = 0, bad;

    if (size == 0) return;
    /* <o> counts the bytes copied, <canon> what they take in the canonical
     * form (escapes included): the clip is on <canon>, so the form of every
     * field is bounded by its size, and o <= canon. */
    while (i < s.len) {
        size_t n = gh_audit__utf8_len(p + i, s.len - i, &bad), cost;

        if (n == 1 && p[i] == 0) n = 0; /* NUL: replaced like an invalid byte */
        if (n == 0) {
            if (canon + 3 > size - 1) break; /* U+FFFD: 3 bytes, no escape */
            memcpy(dst + o, "\xef\xbf\xbd", 3);
            o += 3;
            canon += 3;
            i += p[i] == 0 ? 1 : bad;
            continue;
        }
        cost = n == 1 ? gh_audit__esc_len(p[i]) : n;
        if (canon + cost > size - 1) break;
        memcpy(dst + o, p + i, n);
        o += n;
        canon += cost;
        i += n;
    }
    dst[o] = '\0';
}

const char *gh_audit_chain_of(const struct gh_audit_event *ev)
{
    return ev->tenant[0] != '\0' ? ev->tenant : "system";
}

const char *gh_audit_outcome_name(enum gh_audit_outcome o)
{
    switch (o) {
    case GH_AUDIT_SUCCESS: return "success";
    case GH_AUDIT_DENIED: return "denied";
    default: return "failed";
    }
}

/* ---- The canonical form ------------------------------------------------------ */

struct canon {
    char *out;
    size_t len;
    bool overflow;
};

static void put(struct canon *c, const char *s, size_t n)
{
    if (c->overflow || n > GH_AUDIT_CANON_MAX - c->len) {
        c->overflow = true;
        return;
    }
    memcpy(c->out + c->len, s, n);
    c->len += n;
}

static void put_str(struct canon *c, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap), room;

    if (c->overflow) return;
    room = GH_AUDIT_CANON_MAX - c->len;
    /* An escape is at most six bytes for one: only a string that might not
     * fit is measured byte by byte (none does: event.h). */
    if (6 * n + 2 > room) {
        size_t need = 2;
        for (size_t i = 0; i < n; i++)
            need += gh_audit__esc_len((unsigned char)s[i]);
        if (need > room) {
            c->overflow = true;
            return;
        }
    }
    c->out[c->len++] = '"';
    c->len += gh_audit__escape(s, n, c->out + c->len);
    c->out[c->len++] = '"';
}

static void put_u64(struct canon *c, uint64_t v)
{
    char d[20];
    size_t start = gh_u64_dec(v, d);

    put(c, d + start, 20 - start);
}

#define PUT_LIT(c, lit)            put((c), (lit), sizeof(lit) - 1)
#define PUT_FIELD(c, lit, ev, fld) (PUT_LIT(c, lit), put_str((c), (ev)->fld, sizeof((ev)->fld)))

size_t gh_audit_canonical(const struct gh_audit_event *ev, char *out)
{
    struct canon c = {out, 0, false};
    size_t plen = ev->params_len < sizeof(ev->params) ? ev->params_len : 0;
    bool v2 = ev->node[0] != '\0';

    if (v2)
        PUT_FIELD(&c, "{\"v\":2,\"chain\":", ev, chain);
    else
        PUT_FIELD(&c, "{\"v\":1,\"chain\":", ev, chain);
    PUT_LIT(&c, ",\"seq\":");
    put_u64(&c, ev->seq);
    PUT_FIELD(&c, ",\"id\":", ev, id);
    PUT_LIT(&c, ",\"time_us\":");
    put_u64(&c, ev->time_us > 0 ? (uint64_t)ev->time_us : 0);
    PUT_FIELD(&c, ",\"tenant\":", ev, tenant);
    PUT_FIELD(&c, ",\"actor\":", ev, actor);
    PUT_FIELD(&c, ",\"action\":", ev, action);
    PUT_FIELD(&c, ",\"resource\":", ev, resource);
    PUT_LIT(&c, ",\"outcome\":\"");
    put(&c, gh_audit_outcome_name(ev->outcome), strlen(gh_audit_outcome_name(ev->outcome)));
    PUT_FIELD(&c, "\",\"reason\":", ev, reason);
    PUT_FIELD(&c, ",\"method\":", ev, method);
    PUT_FIELD(&c, ",\"path\":", ev, path);
    PUT_LIT(&c, ",\"status\":");
    put_u64(&c, ev->status);
    PUT_FIELD(&c, ",\"request_id\":", ev, request_id);
    PUT_FIELD(&c, ",\"trace_id\":", ev, trace_id);
    PUT_FIELD(&c, ",\"client_ip\":", ev, client_ip);
    PUT_FIELD(&c, ",\"user_agent\":", ev, user_agent);
    PUT_LIT(&c, ",\"latency_us\":");
    put_u64(&c, ev->latency_us);
    PUT_LIT(&c, ",\"params\":");
    /* params is built by gh_audit_params_*; an event that never had them
     * set (params_len 0) has none. */
    if (plen >= 2)
        put(&c, ev->params, plen);
    else
        PUT_LIT(&c, "[]");
    /* Version 2: the node last, so that a version-1 form is a prefix of
     * the same event's version-2 form up to its final "}". */
    if (v2) PUT_FIELD(&c, ",\"node\":", ev, node);
    PUT_LIT(&c, "}");
    return c.overflow ? 0 : c.len;
}

/* ---- Hashes and checkpoints -------------------------------------------------- */

void gh_audit_chain_hash(const uint8_t prev[32], const char *canon, size_t len, uint8_t out[32])
{
    SHA256_CTX ctx;

    SHA256_Init(&ctx);
    SHA256_Update(&ctx, prev, 32);
    SHA256_Update(&ctx, canon, len);
    SHA256_Final(out, &ctx);
}

size_t gh_audit_checkpoint_message(const char *chain, uint64_t seq, const uint8_t hash[32],
                                   int64_t time_ms, char *out)
{
    char hex[65];
    int n;

    for (int i = 0; i < 32; i++) {
        hex[2 * i] = hexd[hash[i] >> 4];
        hex[2 * i + 1] = hexd[hash[i] & 15];
    }
    hex[64] = '\0';
    /* chain is at most 31 bytes: the message is at most 30 + 32 + 21 + 65 +
     * 20 bytes, well within 256. */
    n = snprintf(out, 256, "gatehouse-audit-checkpoint:v1\n%.31s\n%" PRIu64 "\n%s\n%" PRId64, chain,
                 seq, hex, time_ms);
    return n > 0 && n < 256 ? (size_t)n : 0;
}
