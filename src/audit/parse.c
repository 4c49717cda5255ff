/* Reading a canonical form back into an event, for the verifier: a strict
 * parser of exactly what gh_audit_canonical writes (members in their order,
 * the three escapes, integers without sign or leading zeros), so that any
 * other spelling of the same JSON is refused rather than read. No
 * allocation: the verifier parses a million bodies a second. */
#include <string.h>

#include "audit/audit_int.h"
#include "audit/event.h"

struct rd {
    const unsigned char *p;
    size_t n, i;
};

static bool lit(struct rd *r, const char *s, size_t n)
{
    if (r->n - r->i < n || memcmp(r->p + r->i, s, n) != 0) return false;
    r->i += n;
    return true;
}

#define LIT(r, s) lit((r), (s), sizeof(s) - 1)

static int hex_lower(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Printable ASCII but '"' and '\\': bytes a canonical string holds as they are. */
static bool plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* A canonical string into <dst> (<cap> bytes with the NUL; NULL: skip it).
 * Runs of plain bytes are copied at once: most strings are nothing else. */
static bool str(struct rd *r, char *dst, size_t cap)
{
    size_t o = 0, bad;

    if (!LIT(r, "\"")) return false;
    while (r->i < r->n) {
        size_t start = r->i, len;
        unsigned char c;

        while (r->i < r->n && plain(r->p[r->i]))
            r->i++;
        if (r->i > start && dst != NULL) {
            if (o + (r->i - start) >= cap) return false;
            memcpy(dst + o, r->p + start, r->i - start);
            o += r->i - start;
        }
        if (r->i >= r->n) return false;
        c = r->p[r->i];
        len = 1;
        if (c == '"') {
            r->i++;
            if (dst != NULL) dst[o] = '\0';
            return true;
        }
        if (c == '\\') {
            unsigned char e;
            if (r->n - r->i < 2) return false;
            e = r->p[r->i + 1];
            if (e == '"' || e == '\\') {
                c = e;
                r->i += 2;
            } else if (e == 'u' && r->n - r->i >= 6 && r->p[r->i + 2] == '0' &&
                       r->p[r->i + 3] == '0' && hex_lower(r->p[r->i + 4]) >= 0 &&
                       hex_lower(r->p[r->i + 5]) >= 0) {
                c = (unsigned char)(hex_lower(r->p[r->i + 4]) * 16 + hex_lower(r->p[r->i + 5]));
                if (c >= 0x20 && c != 0x7f) return false; /* only control bytes are escaped */
                if (c == 0 && dst != NULL) return false;  /* a field cannot hold a NUL */
                r->i += 6;
            } else {
                return false;
            }
            if (dst != NULL) {
                if (o + 1 >= cap) return false;
                dst[o++] = (char)c;
            }
            continue;
        }
        if (c < 0x80) return false; /* a control byte that must have been escaped */
        len = gh_audit__utf8_len(r->p + r->i, r->n - r->i, &bad);
        if (len == 0) return false;
        if (dst != NULL) {
            if (o + len >= cap) return false;
            memcpy(dst + o, r->p + r->i, len);
            o += len;
        }
        r->i += len;
    }
    return false;
}

static bool u64(struct rd *r, uint64_t max, uint64_t *v)
{
    size_t start = r->i;
    uint64_t x = 0;

    while (r->i < r->n && r->p[r->i] >= '0' && r->p[r->i] <= '9') {
        unsigned d = r->p[r->i] - '0';
        if (x > (max - d) / 10) return false;
        x = x * 10 + d;
        r->i++;
    }
    if (r->i == start || (r->p[start] == '0' && r->i - start > 1)) return false;
    *v = x;
    return true;
}

/* A params array: objects whose members are strings or integers. */
static bool params(struct rd *r)
{
    uint64_t v;

    if (!LIT(r, "[")) return false;
    if (LIT(r, "]")) return true;
    do {
        if (!LIT(r, "{")) return false;
        do {
            if (!str(r, NULL, 0) || !LIT(r, ":")) return false;
            if (r->i < r->n && r->p[r->i] == '"') {
                if (!str(r, NULL, 0)) return false;
            } else if (!u64(r, UINT64_MAX, &v)) {
                return false;
            }
        } while (LIT(r, ","));
        if (!LIT(r, "}")) return false;
    } while (LIT(r, ","));
    return LIT(r, "]");
}

#define FIELD(r, name, ev, fld) (LIT(r, name) && str((r), (ev)->fld, sizeof((ev)->fld)))

int gh_audit_canonical_parse(const char *body, size_t len, struct gh_audit_event *ev)
{
    struct rd r = {(const unsigned char *)body, len, 0};
    char outcome[8];
    uint64_t seq, time_us, status, latency;
    size_t pstart, pend;
    bool v2;

    if (LIT(&r, "{\"v\":1,"))
        v2 = false;
    else if (LIT(&r, "{\"v\":2,"))
        v2 = true;
    else
        return GH_ERROR;
    if (!LIT(&r, "\"chain\":") || !str(&r, ev->chain, sizeof(ev->chain)) || !LIT(&r, ",\"seq\":") ||
        !u64(&r, UINT64_MAX, &seq) || !FIELD(&r, ",\"id\":", ev, id) || !LIT(&r, ",\"time_us\":") ||
        !u64(&r, INT64_MAX, &time_us) || !FIELD(&r, ",\"tenant\":", ev, tenant) ||
        !FIELD(&r, ",\"actor\":", ev, actor) || !FIELD(&r, ",\"action\":", ev, action) ||
        !FIELD(&r, ",\"resource\":", ev, resource) || !LIT(&r, ",\"outcome\":") ||
        !str(&r, outcome, sizeof(outcome)) || !FIELD(&r, ",\"reason\":", ev, reason) ||
        !FIELD(&r, ",\"method\":", ev, method) || !FIELD(&r, ",\"path\":", ev, path) ||
        !LIT(&r, ",\"status\":") || !u64(&r, UINT16_MAX, &status) ||
        !FIELD(&r, ",\"request_id\":", ev, request_id) ||
        !FIELD(&r, ",\"trace_id\":", ev, trace_id) ||
        !FIELD(&r, ",\"client_ip\":", ev, client_ip) ||
        !FIELD(&r, ",\"user_agent\":", ev, user_agent) || !LIT(&r, ",\"latency_us\":") ||
        !u64(&r, UINT64_MAX, &latency) || !LIT(&r, ",\"params\":"))
        return GH_ERROR;
    pstart = r.i;
    if (!params(&r) || r.i - pstart >= sizeof(ev->params)) return GH_ERROR;
    pend = r.i;
    ev->node[0] = '\0';
    /* Version 2 and only it has the node, never empty (an event without
     * one is written as version 1: one form per event). */
    if (v2 && (!FIELD(&r, ",\"node\":", ev, node) || ev->node[0] == '\0')) return GH_ERROR;
    if (!LIT(&r, "}") || r.i != r.n) return GH_ERROR;
    memcpy(ev->params, body + pstart, pend - pstart);
    ev->params_len = (uint16_t)(pend - pstart);
    ev->params[ev->params_len] = '\0';
    ev->params_kept = 0; /* not built here: params_add would start over */
    ev->params_truncated = 0;
    if (strcmp(outcome, "success") == 0)
        ev->outcome = GH_AUDIT_SUCCESS;
    else if (strcmp(outcome, "denied") == 0)
        ev->outcome = GH_AUDIT_DENIED;
    else if (strcmp(outcome, "failed") == 0)
        ev->outcome = GH_AUDIT_FAILED;
    else
        return GH_ERROR;
    ev->seq = seq;
    ev->time_us = (int64_t)time_us;
    ev->status = (uint16_t)status;
    ev->latency_us = latency;
    return GH_OK;
}
