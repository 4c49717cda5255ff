/* W3C Trace Context: the request's traceparent and tracestate read as the
 * Recommendation says (https://www.w3.org/TR/trace-context/ §3.2, §3.3),
 * and the traceparent the gateway sends on. Works on the header slices in
 * place: the only copy is the tracestate kept in the caller's struct. */
#include "telemetry/tracectx.h"

#include <string.h>

/* §3.3.1.3.1 key and §3.3.1.3.2 value limits. */
#define KEY_MAX       256
#define TENANT_MAX    241
#define SYSTEM_MAX    14
#define VALUE_MAX     256
#define LONG_ENTRY    128 /* §3.3.1.5: entries above this go first */
#define TP_TRACE_AT   3
#define TP_PARENT_AT  36
#define TP_FLAGS_AT   53
#define TP_VERSION_FF 0xff

static const char hexdig[] = "0123456789abcdef";

/* §3.2.2: HEXDIGLC; uppercase hex is not a valid traceparent. */
static int lchex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decodes <2n> lowercase hex characters at <p> into <n> bytes. */
static bool unhex(const char *p, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = lchex(p[2 * i]), lo = lchex(p[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0) return false;
    return true;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 §5.5: a field value excludes its leading and trailing OWS; the
 * W3C test suite sends " 00-..." and expects it accepted. */
static gh_str trim_ows(gh_str s)
{
    while (s.len > 0 && is_ows(s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && is_ows(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

/* §3.2.2 and §3.2.4 (versioning): version 00 is exactly 55 characters; a
 * higher version is read as far as 00 defines it, needs at least 55
 * characters and, when longer, a '-' right after the flags. Fills the ids
 * and flags of <tc> only when the value is valid. */
static bool parse_traceparent(struct gh_tracectx *tc, gh_str v)
{
    uint8_t version, trace_id[16], parent_id[8], flags;

    v = trim_ows(v);
    if (v.len < GH_TRACEPARENT_LEN) return false;
    /* RFC 9110 §5.3: a comma is what joining two header lines leaves;
     * traceparent is a single value, so this is a duplicated header. */
    if (memchr(v.ptr, ',', v.len) != NULL) return false;
    if (!unhex(v.ptr, 1, &version) || v.ptr[2] != '-') return false;
    if (version == TP_VERSION_FF) return false;
    if (version == 0 && v.len != GH_TRACEPARENT_LEN) return false;
    if (v.len > GH_TRACEPARENT_LEN && v.ptr[GH_TRACEPARENT_LEN] != '-') return false;
    if (v.ptr[TP_PARENT_AT - 1] != '-' || v.ptr[TP_FLAGS_AT - 1] != '-') return false;
    if (!unhex(v.ptr + TP_TRACE_AT, 16, trace_id) || !unhex(v.ptr + TP_PARENT_AT, 8, parent_id) ||
        !unhex(v.ptr + TP_FLAGS_AT, 1, &flags))
        return false;
    /* §3.2.2.3, §3.2.2.4: all-zero ids are invalid, whatever the version. */
    if (all_zero(trace_id, 16) || all_zero(parent_id, 8)) return false;

    memcpy(tc->trace_id, trace_id, 16);
    memcpy(tc->parent_id, parent_id, 8);
    tc->flags = flags;
    return true;
}

static bool lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool keychar(char c)
{
    return lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

/* One part of a key: 1..<max> keychars, the first a lowercase letter (or
 * also a digit when <digit_first>). */
static bool key_part(const char *p, size_t n, size_t max, bool digit_first)
{
    if (n == 0 || n > max) return false;
    if (!lcalpha(p[0]) && !(digit_first && digit(p[0]))) return false;
    for (size_t i = 1; i < n; i++)
        if (!keychar(p[i])) return false;
    return true;
}

/* §3.3.1.3.1: key = simple-key / multi-tenant-key, where
 *   simple-key       = lcalpha 0*255(keychar)
 *   multi-tenant-key = tenant-id "@" system-id
 *   tenant-id        = (lcalpha / DIGIT) 0*240(keychar)
 *   system-id        = lcalpha 0*13(keychar)
 * keychar has no '@', so a second '@' fails the system-id. */
static bool valid_key(const char *p, size_t n)
{
    const char *at = memchr(p, '@', n);
    if (at == NULL) return key_part(p, n, KEY_MAX, false);
    size_t tn = (size_t)(at - p);
    return key_part(p, tn, TENANT_MAX, true) && key_part(at + 1, n - tn - 1, SYSTEM_MAX, false);
}

/* §3.3.1.3.2: value = 0*255(chr) nblk-chr; chr is 0x20-0x7E without ',' and
 * '='. Trailing spaces were trimmed as OWS before we get here; leading
 * spaces belong to the value and are kept. */
static bool valid_value(const char *p, size_t n)
{
    if (n == 0 || n > VALUE_MAX || p[n - 1] == ' ') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
    }
    return true;
}

struct member {
    const char *p; /* "key=value", inside a header value */
    uint16_t len;
    uint16_t keylen;
};

struct members {
    struct member m[GH_TRACESTATE_MEMBERS];
    size_t n;
};

/* Adds one list-member (already trimmed, non-empty) to <ms>. Returns false
 * when it is malformed, a duplicated key, or the 33rd member: any of these
 * drops the whole tracestate (the W3C test suite's strict level). */
static bool add_member(struct members *ms, gh_str s)
{
    const char *eq = memchr(s.ptr, '=', s.len);
    if (eq == NULL) return false;
    size_t keylen = (size_t)(eq - s.ptr);
    if (!valid_key(s.ptr, keylen) || !valid_value(eq + 1, s.len - keylen - 1)) return false;
    /* §3.3.1.3: "There can be a maximum of 32 list-members". Empty members
     * are not counted: they are what joining an empty header leaves. */
    if (ms->n == GH_TRACESTATE_MEMBERS) return false;
    /* §3.3.1.4: only one entry per key is allowed. */
    for (size_t i = 0; i < ms->n; i++)
        if (ms->m[i].keylen == keylen && memcmp(ms->m[i].p, s.ptr, keylen) == 0) return false;
    ms->m[ms->n++] = (struct member){s.ptr, (uint16_t)s.len, (uint16_t)keylen};
    return true;
}

/* Splits the values of all tracestate headers into <ms>. Several headers
 * are one list joined with ',' (RFC 9110 §5.3), so splitting each header
 * on ',' gives the same members without copying them together. */
static bool split_tracestate(struct members *ms, const gh_str *vals, size_t nvals)
{
    ms->n = 0;
    for (size_t h = 0; h < nvals; h++) {
        if (vals[h].len == 0) continue; /* §3.3.1.3: empty headers are accepted */
        const char *p = vals[h].ptr, *end = vals[h].ptr + vals[h].len;
        while (p != NULL) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma != NULL ? comma : end;
            gh_str m = trim_ows(gh_str_make(p, (size_t)(stop - p)));
            /* A member longer than key, '=' and value can be is malformed;
             * checking here keeps the lengths in struct member small. */
            if (m.len > KEY_MAX + 1 + VALUE_MAX) return false;
            if (m.len > 0 && !add_member(ms, m)) return false;
            p = comma != NULL ? comma + 1 : NULL;
        }
    }
    return true;
}

/* §3.3.1.5: when the list does not fit GH_TRACESTATE_MAX, whole entries go:
 * those longer than 128 characters first, then from the end. We remove the
 * long ones from the end too and stop as soon as the rest fits, so that as
 * little as possible is lost. Returns the joined length of what is kept. */
static size_t fit_tracestate(const struct members *ms, bool keep[])
{
    size_t total = 0, kept = ms->n;
    for (size_t i = 0; i < ms->n; i++) {
        keep[i] = true;
        total += ms->m[i].len;
    }
    total += kept > 0 ? kept - 1 : 0; /* commas */

    for (size_t i = ms->n; i-- > 0 && total > GH_TRACESTATE_MAX;) {
        if (ms->m[i].len <= LONG_ENTRY) continue;
        keep[i] = false;
        total -= ms->m[i].len + (--kept > 0 ? 1 : 0);
    }
    for (size_t i = ms->n; i-- > 0 && total > GH_TRACESTATE_MAX;) {
        if (!keep[i]) continue;
        keep[i] = false;
        total -= ms->m[i].len + (--kept > 0 ? 1 : 0);
    }
    return total;
}

static void parse_tracestate(struct gh_tracectx *tc, const gh_str *vals, size_t nvals)
{
    struct members ms;
    bool keep[GH_TRACESTATE_MEMBERS];
    size_t len = 0;

    if (!split_tracestate(&ms, vals, nvals)) return;
    fit_tracestate(&ms, keep);
    /* Propagated without OWS (§3.3.1.3.2 allows dropping it). */
    for (size_t i = 0; i < ms.n; i++) {
        if (!keep[i]) continue;
        if (len > 0) tc->state[len++] = ',';
        memcpy(tc->state + len, ms.m[i].p, ms.m[i].len);
        len += ms.m[i].len;
    }
    tc->state[len] = '\0';
    tc->state_len = (uint16_t)len;
}

void gh_tracectx_parse(struct gh_tracectx *tc, const gh_str *traceparent, size_t ntp,
                       const gh_str *tracestate, size_t nts)
{
    memset(tc->trace_id, 0, sizeof(tc->trace_id));
    memset(tc->parent_id, 0, sizeof(tc->parent_id));
    tc->flags = 0;
    tc->state_len = 0;
    tc->state[0] = '\0';
    /* §3.2: one traceparent; none, or more than one, starts a new trace. */
    tc->valid = ntp == 1 && parse_traceparent(tc, traceparent[0]);
    /* §3.3: "If the vendor failed to parse traceparent, it MUST NOT attempt
     * to parse tracestate." */
    if (tc->valid) parse_tracestate(tc, tracestate, nts);
}

void gh_trace_hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[p[i] >> 4];
        out[2 * i + 1] = hexdig[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void gh_traceparent_format(char out[GH_TRACEPARENT_LEN + 1], const uint8_t trace_id[16],
                           const uint8_t span_id[8], uint8_t flags)
{
    /* §3.2.4: we always send the highest version we know, 00. */
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    gh_trace_hex(out + TP_TRACE_AT, trace_id, 16);
    out[TP_PARENT_AT - 1] = '-';
    gh_trace_hex(out + TP_PARENT_AT, span_id, 8);
    out[TP_FLAGS_AT - 1] = '-';
    gh_trace_hex(out + TP_FLAGS_AT, &flags, 1);
}
