/* The OTLP/HTTP binary encoding of an ExportTraceServiceRequest: protobuf
 * wire format (protobuf.dev/programming-guides/encoding) written by hand
 * for the few messages we send. Every length prefix is computed before its
 * message is written (size_* next to put_*), so the whole request is sized
 * first, the buffer reserved once, and nothing is moved or patched after.
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

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t tag_size(unsigned field)
{
    return varint_size((uint64_t)field << 3);
}

/* Bytes of <s> once each invalid UTF-8 byte is replaced by U+FFFD: proto3
 * string fields must be valid UTF-8 and parsers refuse the message if not. */
static size_t utf8_size(gh_str s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t n = 0;
    for (size_t i = 0; i < s.len;) {
        size_t k = gh_otlp__utf8_seq(p + i, s.len - i);
        n += k > 0 ? k : GH_OTLP_REPLACEMENT_LEN;
        i += k > 0 ? k : 1;
    }
    return n;
}

/* A length-delimited field whose payload is <len> bytes. */
static size_t len_field_size(unsigned field, size_t len)
{
    return tag_size(field) + varint_size(len) + len;
}

static size_t str_field_size(unsigned field, gh_str s)
{
    return s.len > 0 ? len_field_size(field, utf8_size(s)) : 0;
}

static size_t anyvalue_size(const struct gh_span_attr *a)
{
    /* A oneof member is written even when it holds its zero value: that is
     * how a reader tells "" or false or 0 from no value at all. */
    switch (a->type) {
    case GH_ATTR_INT: return tag_size(ANY_INT) + varint_size((uint64_t)a->i);
    case GH_ATTR_BOOL: return tag_size(ANY_BOOL) + 1;
    case GH_ATTR_STR:
    default: return len_field_size(ANY_STRING, utf8_size(a->s));
    }
}

static size_t keyvalue_size(const struct gh_span_attr *a)
{
    return str_field_size(KV_KEY, gh_str_cstr(a->key)) + len_field_size(KV_VALUE, anyvalue_size(a));
}

static size_t nattrs(const struct gh_span *s)
{
    return s->nattrs < GH_SPAN_MAX_ATTRS ? s->nattrs : GH_SPAN_MAX_ATTRS;
}

static size_t status_size(const struct gh_span *s)
{
    size_t n = str_field_size(STATUS_MESSAGE, s->status_message);
    if (s->status != 0) n += tag_size(STATUS_CODE) + varint_size((uint64_t)s->status);
    return n;
}

static size_t span_size(const struct gh_span *s)
{
    size_t n = len_field_size(SPAN_TRACE_ID, 16) + len_field_size(SPAN_SPAN_ID, 8);
    n += str_field_size(SPAN_TRACE_STATE, s->trace_state);
    if (s->has_parent) n += len_field_size(SPAN_PARENT_SPAN_ID, 8);
    n += str_field_size(SPAN_NAME, s->name);
    if (s->kind != 0) n += tag_size(SPAN_KIND) + varint_size((uint64_t)s->kind);
    if (s->start_unix_ns != 0) n += tag_size(SPAN_START) + 8;
    if (s->end_unix_ns != 0) n += tag_size(SPAN_END) + 8;
    for (size_t i = 0; i < nattrs(s); i++)
        n += len_field_size(SPAN_ATTRIBUTES, keyvalue_size(&s->attrs[i]));
    size_t st = status_size(s);
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
    size_t n = 0;
    for (size_t i = 0; i < nattr; i++)
        n += len_field_size(RES_ATTRIBUTES, keyvalue_size(&attrs[i]));
    return n;
}

static size_t scope_size(const struct gh_otlp_resource *res)
{
    return str_field_size(SCOPE_NAME, res->scope_name) +
           str_field_size(SCOPE_VERSION, res->scope_version);
}

static size_t scope_spans_size(const struct gh_otlp_resource *res, const struct gh_span *spans,
                               size_t n)
{
    size_t sz = len_field_size(SS_SCOPE, scope_size(res));
    for (size_t i = 0; i < n; i++)
        sz += len_field_size(SS_SPANS, span_size(&spans[i]));
    return sz;
}

static size_t resource_spans_size(size_t resource_sz, size_t scope_spans_sz)
{
    return len_field_size(RS_RESOURCE, resource_sz) +
           len_field_size(RS_SCOPE_SPANS, scope_spans_sz);
}

/* ---- writing, into room reserved beforehand ---- */

static void put_bytes(struct gh_otlp_buf *b, const void *p, size_t n)
{
    if (n == 0) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_varint(struct gh_otlp_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        b->data[b->len++] = (char)((v & 0x7f) | 0x80);
        v >>= 7;
    }
    b->data[b->len++] = (char)v;
}

static void put_tag(struct gh_otlp_buf *b, unsigned field, enum wire type)
{
    put_varint(b, (uint64_t)field << 3 | type);
}

/* Little-endian, whatever the host (the wire format's fixed64/fixed32). */
static void put_fixed(struct gh_otlp_buf *b, uint64_t v, size_t nbytes)
{
    for (size_t i = 0; i < nbytes; i++)
        b->data[b->len++] = (char)(v >> (8 * i));
}

static void put_len(struct gh_otlp_buf *b, unsigned field, size_t len)
{
    put_tag(b, field, LEN);
    put_varint(b, len);
}

static void put_utf8(struct gh_otlp_buf *b, gh_str s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    for (size_t i = 0; i < s.len;) {
        size_t k = gh_otlp__utf8_seq(p + i, s.len - i);
        if (k > 0)
            put_bytes(b, p + i, k);
        else
            put_bytes(b, GH_OTLP_REPLACEMENT, GH_OTLP_REPLACEMENT_LEN);
        i += k > 0 ? k : 1;
    }
}

static void put_str_field(struct gh_otlp_buf *b, unsigned field, gh_str s)
{
    if (s.len == 0) return;
    put_len(b, field, utf8_size(s));
    put_utf8(b, s);
}

static void put_keyvalue(struct gh_otlp_buf *b, unsigned field, const struct gh_span_attr *a)
{
    put_len(b, field, keyvalue_size(a));
    put_str_field(b, KV_KEY, gh_str_cstr(a->key));
    put_len(b, KV_VALUE, anyvalue_size(a));
    switch (a->type) {
    case GH_ATTR_INT:
        /* int64: a negative value is its two's complement, 10 bytes. */
        put_tag(b, ANY_INT, VARINT);
        put_varint(b, (uint64_t)a->i);
        break;
    case GH_ATTR_BOOL:
        put_tag(b, ANY_BOOL, VARINT);
        put_varint(b, a->i != 0);
        break;
    case GH_ATTR_STR:
    default:
        put_len(b, ANY_STRING, utf8_size(a->s));
        put_utf8(b, a->s);
        break;
    }
}

static void put_span(struct gh_otlp_buf *b, const struct gh_span *s)
{
    put_len(b, SS_SPANS, span_size(s));
    put_len(b, SPAN_TRACE_ID, 16);
    put_bytes(b, s->trace_id, 16);
    put_len(b, SPAN_SPAN_ID, 8);
    put_bytes(b, s->span_id, 8);
    put_str_field(b, SPAN_TRACE_STATE, s->trace_state);
    if (s->has_parent) {
        put_len(b, SPAN_PARENT_SPAN_ID, 8);
        put_bytes(b, s->parent_id, 8);
    }
    put_str_field(b, SPAN_NAME, s->name);
    if (s->kind != 0) {
        put_tag(b, SPAN_KIND, VARINT);
        put_varint(b, (uint64_t)s->kind);
    }
    if (s->start_unix_ns != 0) {
        put_tag(b, SPAN_START, I64);
        put_fixed(b, s->start_unix_ns, 8);
    }
    if (s->end_unix_ns != 0) {
        put_tag(b, SPAN_END, I64);
        put_fixed(b, s->end_unix_ns, 8);
    }
    for (size_t i = 0; i < nattrs(s); i++)
        put_keyvalue(b, SPAN_ATTRIBUTES, &s->attrs[i]);
    size_t st = status_size(s);
    if (st > 0) {
        put_len(b, SPAN_STATUS, st);
        put_str_field(b, STATUS_MESSAGE, s->status_message);
        if (s->status != 0) {
            put_tag(b, STATUS_CODE, VARINT);
            put_varint(b, (uint64_t)s->status);
        }
    }
    if (s->flags != 0) {
        put_tag(b, SPAN_FLAGS, I32);
        put_fixed(b, s->flags, 4);
    }
}

int gh_otlp_encode_proto(struct gh_otlp_buf *out, const struct gh_otlp_resource *res,
                         const struct gh_span *spans, size_t n)
{
    struct gh_span_attr rattrs[3];
    size_t nr = resource_attrs(res, rattrs);
    size_t res_sz = resource_size(rattrs, nr);
    size_t ss_sz = scope_spans_size(res, spans, n);
    size_t rs_sz = resource_spans_size(res_sz, ss_sz);
    size_t total = len_field_size(REQ_RESOURCE_SPANS, rs_sz);

    if (gh_otlp__reserve(out, total) != 0) return -1;
    size_t start = out->len;

    put_len(out, REQ_RESOURCE_SPANS, rs_sz);
    put_len(out, RS_RESOURCE, res_sz);
    for (size_t i = 0; i < nr; i++)
        put_keyvalue(out, RES_ATTRIBUTES, &rattrs[i]);
    put_len(out, RS_SCOPE_SPANS, ss_sz);
    put_len(out, SS_SCOPE, scope_size(res));
    put_str_field(out, SCOPE_NAME, res->scope_name);
    put_str_field(out, SCOPE_VERSION, res->scope_version);
    for (size_t i = 0; i < n; i++)
        put_span(out, &spans[i]);
    /* The sizes above and the writes here must agree byte for byte. */
    if (out->len - start != total) abort();
    return 0;
}
