/* The OTLP/HTTP binary encoding of an ExportTraceServiceRequest: protobuf
 * wire format (protobuf.dev/programming-guides/encoding) written by hand
 * for the few messages we send. Every length prefix is computed before its
 * message is written (size_* next to put_*), so the whole request is sized
 * first, the buffer reserved once, and nothing is moved or patched after.
 *
 * Sizing is the costly part: a length prefix at each nesting level needs
 * the size of what it holds, and every string must be checked for UTF-8.
 * So the sizing pass measures each span once, remembering its size and
 * whether all its strings were valid UTF-8 (nearly always: then they are
 * written with memcpy, their lengths taken as they are), and the writing
 * pass recomputes only the small sizes inside a span from those lengths.
 *
 * Field numbers, from opentelemetry-proto:
 *   collector/trace/v1  ExportTraceServiceRequest: resource_spans 1
 *   trace/v1            ResourceSpans: resource 1, scope_spans 2
 *                       ScopeSpans: scope 1, spans 2
 *                       Span: trace_id 1, span_id 2, trace_state 3,
 *                         parent_span_id 4, name 5, kind 6 (enum),
 *                         start_time_unix_nano 7 (fixed64),
 *                         end_time_unix_nano 8 (fixed64), attributes 9,
 *                         status 15, flags 16 (fixed32)
 *                       Status: message 2, code 3 (enum)
 *   resource/v1         Resource: attributes 1
 *   common/v1           InstrumentationScope: name 1, version 2
 *                       KeyValue: key 1, value 2
 *                       AnyValue: string_value 1, bool_value 2,
 *                         int_value 3 (int64) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/otlp_int.h"

enum wire { VARINT = 0, I64 = 1, LEN = 2, I32 = 5 };

/* Field numbers, named after the .proto fields. */
enum {
    REQ_RESOURCE_SPANS = 1,
    RS_RESOURCE = 1,
    RS_SCOPE_SPANS = 2,
    SS_SCOPE = 1,
    SS_SPANS = 2,
    RES_ATTRIBUTES = 1,
    SCOPE_NAME = 1,
    SCOPE_VERSION = 2,
    SPAN_TRACE_ID = 1,
    SPAN_SPAN_ID = 2,
    SPAN_TRACE_STATE = 3,
    SPAN_PARENT_SPAN_ID = 4,
    SPAN_NAME = 5,
    SPAN_KIND = 6,
    SPAN_START = 7,
    SPAN_END = 8,
    SPAN_ATTRIBUTES = 9,
    SPAN_STATUS = 15,
    SPAN_FLAGS = 16,
    STATUS_MESSAGE = 2,
    STATUS_CODE = 3,
    KV_KEY = 1,
    KV_VALUE = 2,
    ANY_STRING = 1,
    ANY_BOOL = 2,
    ANY_INT = 3,
};

/* ---- sizes ---- */

/* Bytes of the minimal varint for <v>: one per 7 significant bits. */
static size_t varint_size(uint64_t v)
{
    unsigned bits = 64 - (unsigned)__builtin_clzll(v | 1);
    return (bits * 9 + 64) / 64;
}

static size_t tag_size(unsigned field)
{
    return varint_size((uint64_t)field << 3);
}

/* How the strings of one span are sized: measured (each invalid UTF-8 byte
 * counts as a 3-byte U+FFFD, since proto3 string fields must be valid UTF-8
 * and parsers refuse the message if not), or, once a span is known to hold
 * only valid UTF-8, taken at their own length. */
struct strs {
    bool known_valid; /* in: every string of the span is valid UTF-8 */
    bool valid;       /* out, when measuring: no string needed a U+FFFD */
};

static size_t str_size(gh_str s, struct strs *ss)
{
    if (ss->known_valid) return s.len;
    size_t n = gh_otlp__utf8_size(s.ptr, s.len);
    if (n != s.len) ss->valid = false;
    return n;
}

static gh_str attr_key(const struct gh_span_attr *a)
{
    if (a->key_len > 0) return gh_str_make(a->key, a->key_len);
    return gh_str_cstr(a->key);
}

/* A length-delimited field whose payload is <len> bytes. */
static size_t len_field_size(unsigned field, size_t len)
{
    return tag_size(field) + varint_size(len) + len;
}

static size_t str_field_size(unsigned field, gh_str s, struct strs *ss)
{
    return s.len > 0 ? len_field_size(field, str_size(s, ss)) : 0;
}

/* <value_len>: the string value's encoded length (GH_ATTR_STR). */
static size_t anyvalue_size(const struct gh_span_attr *a, size_t value_len)
{
    /* A oneof member is written even when it holds its zero value: that is
     * how a reader tells "" or false or 0 from no value at all. */
    switch (a->type) {
    case GH_ATTR_INT: return tag_size(ANY_INT) + varint_size((uint64_t)a->i);
    case GH_ATTR_BOOL: return tag_size(ANY_BOOL) + 1;
    case GH_ATTR_STR:
    default: return len_field_size(ANY_STRING, value_len);
    }
}

/* The sizes inside one KeyValue, computed once for sizing and writing. */
struct kv_sizes {
    size_t key;   /* encoded key, 0 when empty (the field is left out) */
    size_t value; /* encoded string value (GH_ATTR_STR) */
    size_t any;   /* the AnyValue message */
    size_t kv;    /* the KeyValue message */
};

static void keyvalue_sizes(const struct gh_span_attr *a, struct strs *ss, struct kv_sizes *z)
{
    gh_str key = attr_key(a);
    z->key = key.len > 0 ? str_size(key, ss) : 0;
    z->value = a->type == GH_ATTR_STR || (a->type != GH_ATTR_INT && a->type != GH_ATTR_BOOL)
                   ? str_size(a->s, ss)
                   : 0;
    z->any = anyvalue_size(a, z->value);
    z->kv = (key.len > 0 ? len_field_size(KV_KEY, z->key) : 0) + len_field_size(KV_VALUE, z->any);
}

static size_t nattrs(const struct gh_span *s)
{
    return s->nattrs < GH_SPAN_MAX_ATTRS ? s->nattrs : GH_SPAN_MAX_ATTRS;
}

static size_t status_size(const struct gh_span *s, struct strs *ss)
{
    size_t n = str_field_size(STATUS_MESSAGE, s->status_message, ss);
    if (s->status != 0) n += tag_size(STATUS_CODE) + varint_size((uint64_t)s->status);
    return n;
}

static size_t span_size(const struct gh_span *s, struct strs *ss)
{
    size_t n = len_field_size(SPAN_TRACE_ID, 16) + len_field_size(SPAN_SPAN_ID, 8);
    n += str_field_size(SPAN_TRACE_STATE, s->trace_state, ss);
    if (s->has_parent) n += len_field_size(SPAN_PARENT_SPAN_ID, 8);
    n += str_field_size(SPAN_NAME, s->name, ss);
    if (s->kind != 0) n += tag_size(SPAN_KIND) + varint_size((uint64_t)s->kind);
    if (s->start_unix_ns != 0) n += tag_size(SPAN_START) + 8;
    if (s->end_unix_ns != 0) n += tag_size(SPAN_END) + 8;
    for (size_t i = 0; i < nattrs(s); i++) {
        struct kv_sizes z;
        keyvalue_sizes(&s->attrs[i], ss, &z);
        n += len_field_size(SPAN_ATTRIBUTES, z.kv);
    }
    size_t st = status_size(s, ss);
    if (st > 0) n += len_field_size(SPAN_STATUS, st);
    if (s->flags != 0) n += tag_size(SPAN_FLAGS) + 4;
    return n;
}

/* Resource attributes, as gh_span_attr so they size and write like span
 * attributes; those with an empty value are left out. */
static size_t resource_attrs(const struct gh_otlp_resource *res, struct gh_span_attr out[3])
{
    const char *keys[3] = {"service.name", "service.version", "service.instance.id"};
    const gh_str vals[3] = {res->service_name, res->service_version, res->instance_id};
    size_t n = 0;
    for (size_t i = 0; i < 3; i++)
        if (vals[i].len > 0) out[n++] = (struct gh_span_attr){.key = keys[i], .s = vals[i]};
    return n;
}

static size_t resource_size(const struct gh_span_attr *attrs, size_t nattr)
{
    struct strs ss = {.known_valid = false};
    struct kv_sizes z;
    size_t n = 0;
    for (size_t i = 0; i < nattr; i++) {
        keyvalue_sizes(&attrs[i], &ss, &z);
        n += len_field_size(RES_ATTRIBUTES, z.kv);
    }
    return n;
}

static size_t scope_size(const struct gh_otlp_resource *res)
{
    struct strs ss = {.known_valid = false};
    return str_field_size(SCOPE_NAME, res->scope_name, &ss) +
           str_field_size(SCOPE_VERSION, res->scope_version, &ss);
}

/* What the sizing pass learns about each span, for the writing pass. */
struct span_info {
    size_t size; /* the Span message */
    bool valid;  /* all its strings are valid UTF-8 */
};

/* Sizes each span once into <info>, and returns the ScopeSpans size. */
static size_t scope_spans_size(const struct gh_otlp_resource *res, const struct gh_span *spans,
                               size_t n, struct span_info *info)
{
    size_t sz = len_field_size(SS_SCOPE, scope_size(res));
    for (size_t i = 0; i < n; i++) {
        struct strs ss = {.known_valid = false, .valid = true};
        info[i].size = span_size(&spans[i], &ss);
        info[i].valid = ss.valid;
        sz += len_field_size(SS_SPANS, info[i].size);
    }
    return sz;
}

static size_t resource_spans_size(size_t resource_sz, size_t scope_spans_sz)
{
    return len_field_size(RS_RESOURCE, resource_sz) +
           len_field_size(RS_SCOPE_SPANS, scope_spans_sz);
}

/* ---- writing, into room reserved beforehand ----
 *
 * Each put_* writes at <p> and returns the byte after what it wrote: a
 * local cursor, which the compiler keeps in a register. */

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
    if (n == 0) return p; /* <src> may be NULL (an empty gh_str) */
    memcpy(p, src, n);
    return p + n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)((v & 0x7f) | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put_tag(uint8_t *p, unsigned field, enum wire type)
{
    return put_varint(p, (uint64_t)field << 3 | type);
}

/* Little-endian, whatever the host (the wire format's fixed64/fixed32). */
static uint8_t *put_fixed(uint8_t *p, uint64_t v, size_t nbytes)
{
    for (size_t i = 0; i < nbytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + nbytes;
}

static uint8_t *put_len(uint8_t *p, unsigned field, size_t len)
{
    return put_varint(put_tag(p, field, LEN), len);
}

/* <s> as it was sized: copied when known valid, else with U+FFFD. */
static uint8_t *put_utf8(uint8_t *p, gh_str s, const struct strs *ss)
{
    if (ss->known_valid) return put_bytes(p, s.ptr, s.len);
    return p + gh_otlp__utf8_copy(p, s.ptr, s.len);
}

/* <len>: str_size() of <s>. */
static uint8_t *put_str_field(uint8_t *p, unsigned field, gh_str s, size_t len,
                              const struct strs *ss)
{
    if (s.len == 0) return p;
    return put_utf8(put_len(p, field, len), s, ss);
}

static uint8_t *put_keyvalue(uint8_t *p, unsigned field, const struct gh_span_attr *a,
                             const struct kv_sizes *z, const struct strs *ss)
{
    p = put_len(p, field, z->kv);
    p = put_str_field(p, KV_KEY, attr_key(a), z->key, ss);
    p = put_len(p, KV_VALUE, z->any);
    switch (a->type) {
    case GH_ATTR_INT:
        /* int64: a negative value is its two's complement, 10 bytes. */
        p = put_tag(p, ANY_INT, VARINT);
        return put_varint(p, (uint64_t)a->i);
    case GH_ATTR_BOOL: p = put_tag(p, ANY_BOOL, VARINT); return put_varint(p, a->i != 0);
    case GH_ATTR_STR:
    default: p = put_len(p, ANY_STRING, z->value); return put_utf8(p, a->s, ss);
    }
}

static uint8_t *put_span(uint8_t *p, const struct gh_span *s, const struct span_info *info)
{
    /* A span known valid is sized again by adding lengths up; one with a
     * bad byte is measured again, as it was in the sizing pass. */
    struct strs ss = {.known_valid = info->valid, .valid = true};

    p = put_len(p, SS_SPANS, info->size);
    p = put_len(p, SPAN_TRACE_ID, 16);
    p = put_bytes(p, s->trace_id, 16);
    p = put_len(p, SPAN_SPAN_ID, 8);
    p = put_bytes(p, s->span_id, 8);
    if (s->trace_state.len > 0)
        p = put_str_field(p, SPAN_TRACE_STATE, s->trace_state, str_size(s->trace_state, &ss), &ss);
    if (s->has_parent) {
        p = put_len(p, SPAN_PARENT_SPAN_ID, 8);
        p = put_bytes(p, s->parent_id, 8);
    }
    if (s->name.len > 0) p = put_str_field(p, SPAN_NAME, s->name, str_size(s->name, &ss), &ss);
    if (s->kind != 0) {
        p = put_tag(p, SPAN_KIND, VARINT);
        p = put_varint(p, (uint64_t)s->kind);
    }
    if (s->start_unix_ns != 0) {
        p = put_tag(p, SPAN_START, I64);
        p = put_fixed(p, s->start_unix_ns, 8);
    }
    if (s->end_unix_ns != 0) {
        p = put_tag(p, SPAN_END, I64);
        p = put_fixed(p, s->end_unix_ns, 8);
    }
    for (size_t i = 0; i < nattrs(s); i++) {
        struct kv_sizes z;
        keyvalue_sizes(&s->attrs[i], &ss, &z);
        p = put_keyvalue(p, SPAN_ATTRIBUTES, &s->attrs[i], &z, &ss);
    }
    size_t st = status_size(s, &ss);
    if (st > 0) {
        p = put_len(p, SPAN_STATUS, st);
        if (s->status_message.len > 0)
            p = put_str_field(p, STATUS_MESSAGE, s->status_message,
                              str_size(s->status_message, &ss), &ss);
        if (s->status != 0) {
            p = put_tag(p, STATUS_CODE, VARINT);
            p = put_varint(p, (uint64_t)s->status);
        }
    }
    if (s->flags != 0) {
        p = put_tag(p, SPAN_FLAGS, I32);
        p = put_fixed(p, s->flags, 4);
    }
    return p;
}

int gh_otlp_encode_proto(struct gh_otlp_buf *out, const struct gh_otlp_resource *res,
                         const struct gh_span *spans, size_t n)
{
    struct gh_span_attr rattrs[3];
    struct span_info *info = NULL;
    struct strs measure = {.known_valid = false};
    struct kv_sizes z;
    int rc = -1;

    if (n > 0 && (info = malloc(n * sizeof(*info))) == NULL) return -1;
    size_t nr = resource_attrs(res, rattrs);
    size_t res_sz = resource_size(rattrs, nr);
    size_t scope_sz = scope_size(res);
    size_t ss_sz = scope_spans_size(res, spans, n, info);
    size_t rs_sz = resource_spans_size(res_sz, ss_sz);
    size_t total = len_field_size(REQ_RESOURCE_SPANS, rs_sz);

    if (gh_otlp__reserve(out, total) != 0) goto out;
    uint8_t *start = (uint8_t *)out->data + out->len, *p = start;

    p = put_len(p, REQ_RESOURCE_SPANS, rs_sz);
    p = put_len(p, RS_RESOURCE, res_sz);
    for (size_t i = 0; i < nr; i++) {
        keyvalue_sizes(&rattrs[i], &measure, &z);
        p = put_keyvalue(p, RES_ATTRIBUTES, &rattrs[i], &z, &measure);
    }
    p = put_len(p, RS_SCOPE_SPANS, ss_sz);
    p = put_len(p, SS_SCOPE, scope_sz);
    p = put_str_field(p, SCOPE_NAME, res->scope_name, str_size(res->scope_name, &measure),
                      &measure);
    p = put_str_field(p, SCOPE_VERSION, res->scope_version, str_size(res->scope_version, &measure),
                      &measure);
    for (size_t i = 0; i < n; i++)
        p = put_span(p, &spans[i], &info[i]);
    /* The sizes above and the writes here must agree byte for byte. */
    if ((size_t)(p - start) != total) abort();
    out->len += total;
    rc = 0;
out:
    free(info);
    return rc;
}
