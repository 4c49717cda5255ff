/* The OTLP/HTTP JSON encoding of an ExportTraceServiceRequest
 * (opentelemetry-proto docs/specification.md, "JSON Protobuf Encoding"):
 * the proto3 JSON mapping with lowerCamelCase keys, trace and span ids as
 * hex strings rather than base64, enums as integers, and 64-bit integers as
 * decimal strings (JSON numbers lose precision past 2^53).
 *
 * Most strings need no escape and are ASCII: str() checks 8 bytes at a
 * time for a byte that needs care and copies such a string at once. */
#include <string.h>

#include "core/utf8.h"
#include "telemetry/otlp_int.h"

/* Writes into <b> and remembers the first failure, so that the encoder
 * reads as the JSON it writes and checks once at the end. */
struct jw {
    struct gh_otlp_buf *b;
    bool failed;
};

/* Room for <n> more bytes, or false (and <w> failed). The buffer never
 * grows past its cap, so room within it is room under out->max too. */
static bool room(struct jw *w, size_t n)
{
    if (w->failed) return false;
    if (w->b->cap - w->b->len >= n) return true;
    if (gh_otlp__reserve(w->b, n) == 0) return true;
    w->failed = true;
    return false;
}

static void raw(struct jw *w, const char *p, size_t n)
{
    if (n == 0 || !room(w, n)) return;
    memcpy(w->b->data + w->b->len, p, n);
    w->b->len += n;
}

#define lit(w, s) raw((w), (s), sizeof(s) - 1)

/* Whether none of the 8 bytes in <v> needs care in a JSON string: no byte
 * >= 0x80, < 0x20, '"' or '\\'. */
static bool plain8(uint64_t v)
{
    return ((v & GH_SWAR_HIGHS) | gh_swar_below(v, 0x20) | gh_swar_has(v, '"') |
            gh_swar_has(v, '\\')) == 0;
}

static bool plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Length of the run of plain bytes <p> (<n> bytes) starts with. */
static size_t plain_prefix(const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        if (!plain8(gh_swar_load8(p + i))) break;
    while (i < n && plain(p[i]))
        i++;
    return i;
}

/* Whether no byte of <p> (<n> bytes) needs care: whole words, the last
 * one overlapping the one before. */
static bool all_plain(const unsigned char *p, size_t n)
{
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8)
            if (!plain8(gh_swar_load8(p + i))) return false;
        return plain8(gh_swar_load8(p + n - 8));
    }
    for (size_t i = 0; i < n; i++)
        if (!plain(p[i])) return false;
    return true;
}

/* <s> as a JSON string (RFC 8259 §7): '"', '\\' and control characters
 * escaped, valid UTF-8 copied, each invalid byte written as \ufffd. */
static void str(struct jw *w, gh_str s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0, run = 0;

    if (all_plain(p, s.len)) {
        if (!room(w, s.len + 2)) return;
        char *d = w->b->data + w->b->len;
        d[0] = '"';
        if (s.len > 0) memcpy(d + 1, s.ptr, s.len);
        d[s.len + 1] = '"';
        w->b->len += s.len + 2;
        return;
    }
    lit(w, "\"");
    while (i < s.len) {
        unsigned char c = p[i];
        size_t n = plain(c) ? plain_prefix(p + i, s.len - i) : 0;
        if (n == 0 && c >= 0x80) n = gh_utf8_seq(p + i, s.len - i);
        if (n > 0) {
            i += n;
            run += n;
            continue;
        }
        raw(w, (const char *)p + i - run, run);
        run = 0;
        i++;
        if (c == '"')
            lit(w, "\\\"");
        else if (c == '\\')
            lit(w, "\\\\");
        else if (c == '\n')
            lit(w, "\\n");
        else if (c == '\r')
            lit(w, "\\r");
        else if (c == '\t')
            lit(w, "\\t");
        else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            raw(w, esc, sizeof(esc));
        } else
            lit(w, "\\ufffd");
    }
    raw(w, (const char *)p + i - run, run);
    lit(w, "\"");
}

static void key(struct jw *w, const struct gh_span_attr *a)
{
    str(w, a->key_len > 0 ? gh_str_make(a->key, a->key_len) : gh_str_cstr(a->key));
}

/* The decimal digits of <v>, '-' first when <neg>, optionally in quotes,
 * written from the end of a small buffer. */
static void decimal(struct jw *w, uint64_t v, bool neg, bool quoted)
{
    char num[24], *e = num + sizeof(num), *d = e;
    if (quoted) *--d = '"';
    do {
        *--d = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (neg) *--d = '-';
    if (quoted) *--d = '"';
    raw(w, d, (size_t)(e - d));
}

/* proto3 JSON: int64, uint64 and fixed64 are written as strings. */
static void u64_string(struct jw *w, uint64_t v)
{
    decimal(w, v, false, true);
}

static void i64_string(struct jw *w, int64_t v)
{
    /* The magnitude in uint64_t: INT64_MIN has no int64_t negation. */
    decimal(w, v < 0 ? -(uint64_t)v : (uint64_t)v, v < 0, true);
}

/* Enums, fixed32 and int32 are JSON numbers. */
static void u32_number(struct jw *w, uint32_t v)
{
    decimal(w, v, false, false);
}

/* OTLP/JSON: "traceId and spanId ... MUST be represented as case-
 * insensitive hex-encoded strings"; we write lowercase. */
static void hex_id(struct jw *w, const uint8_t *id, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char s[2 * 16 + 2];
    s[0] = '"';
    for (size_t i = 0; i < n; i++) {
        s[1 + 2 * i] = hex[id[i] >> 4];
        s[2 + 2 * i] = hex[id[i] & 15];
    }
    s[1 + 2 * n] = '"';
    raw(w, s, 2 * n + 2);
}

/* A KeyValue: {"key":..,"value":{"stringValue":..}} (or intValue as a
 * string, or boolValue). */
static void attr(struct jw *w, const struct gh_span_attr *a)
{
    lit(w, "{\"key\":");
    key(w, a);
    switch (a->type) {
    case GH_ATTR_INT:
        lit(w, ",\"value\":{\"intValue\":");
        i64_string(w, a->i);
        break;
    case GH_ATTR_BOOL:
        lit(w, ",\"value\":{\"boolValue\":");
        if (a->i != 0)
            lit(w, "true");
        else
            lit(w, "false");
        break;
    case GH_ATTR_STR:
    default:
        lit(w, ",\"value\":{\"stringValue\":");
        str(w, a->s);
        break;
    }
    lit(w, "}}");
}

/* A resource attribute with a string value, left out when empty. */
static void resource_attr(struct jw *w, const char *key, gh_str v, bool *first)
{
    if (v.len == 0) return;
    struct gh_span_attr a = {.key = key, .type = GH_ATTR_STR, .s = v};
    if (!*first) lit(w, ",");
    *first = false;
    attr(w, &a);
}

static void span(struct jw *w, const struct gh_span *s)
{
    lit(w, "{\"traceId\":");
    hex_id(w, s->trace_id, sizeof(s->trace_id));
    lit(w, ",\"spanId\":");
    hex_id(w, s->span_id, sizeof(s->span_id));
    if (s->has_parent) {
        lit(w, ",\"parentSpanId\":");
        hex_id(w, s->parent_id, sizeof(s->parent_id));
    }
    if (s->trace_state.len > 0) {
        lit(w, ",\"traceState\":");
        str(w, s->trace_state);
    }
    lit(w, ",\"name\":");
    str(w, s->name);
    lit(w, ",\"kind\":");
    u32_number(w, (uint32_t)s->kind);
    lit(w, ",\"startTimeUnixNano\":");
    u64_string(w, s->start_unix_ns);
    lit(w, ",\"endTimeUnixNano\":");
    u64_string(w, s->end_unix_ns);
    lit(w, ",\"attributes\":[");
    for (size_t i = 0; i < s->nattrs && i < GH_SPAN_MAX_ATTRS; i++) {
        if (i > 0) lit(w, ",");
        attr(w, &s->attrs[i]);
    }
    lit(w, "],\"status\":{\"code\":");
    u32_number(w, (uint32_t)s->status);
    if (s->status_message.len > 0) {
        lit(w, ",\"message\":");
        str(w, s->status_message);
    }
    lit(w, "},\"flags\":");
    u32_number(w, s->flags);
    lit(w, "}");
}

int gh_otlp_encode_json(struct gh_otlp_buf *out, const struct gh_otlp_resource *res,
                        const struct gh_span *spans, size_t n)
{
    struct jw w = {out, false};
    size_t len0 = out->len;
    bool first = true;

    lit(&w, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    resource_attr(&w, "service.name", res->service_name, &first);
    resource_attr(&w, "service.version", res->service_version, &first);
    resource_attr(&w, "service.instance.id", res->instance_id, &first);
    lit(&w, "]},\"scopeSpans\":[{\"scope\":{\"name\":");
    str(&w, res->scope_name);
    if (res->scope_version.len > 0) {
        lit(&w, ",\"version\":");
        str(&w, res->scope_version);
    }
    lit(&w, "},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0) lit(&w, ",");
        span(&w, &spans[i]);
    }
    lit(&w, "]}]}]}");
    if (w.failed) {
        out->len = len0;
        return -1;
    }
    return 0;
}
