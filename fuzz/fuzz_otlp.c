/* libFuzzer harness for the OTLP encoders (src/telemetry/otlp_proto.c,
 * otlp_json.c, otlp_buf.c), above all their fast paths for strings that are
 * ASCII or need no escape. The Makefile links them (FUZZ_LIBS_fuzz_otlp).
 *
 * The input is split at NUL bytes into pieces; the pieces, in turn, are the
 * name, trace state, status message and attribute keys and values of up to
 * four spans (the first byte of a piece picks the attribute's type and
 * whether its key comes with key_len). Then:
 * 1. both encoders succeed (the protobuf encoder aborts by itself if its
 *    sizing and writing disagree);
 * 2. the JSON parses with jansson, which refuses invalid UTF-8;
 * 3. the protobuf's outer lengths add up, and each span's name, read from
 *    the protobuf, is the JSON's "name" of that span, byte for byte. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_check.h"

#include "telemetry/otlp.h"

struct rd {
    const uint8_t *p, *end;
};

static uint64_t varint(struct rd *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        CHECK(r->p < r->end);
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) return v;
    }
    CHECK(!"varint too long");
    return 0;
}

/* The next field; LEN payloads in <sub>. Returns 0 at the end. */
static unsigned field(struct rd *r, struct rd *sub)
{
    if (r->p == r->end) return 0;
    uint64_t tag = varint(r);
    switch (tag & 7) {
    case 0: varint(r); break;
    case 1:
        CHECK(r->end - r->p >= 8);
        r->p += 8;
        break;
    case 5:
        CHECK(r->end - r->p >= 4);
        r->p += 4;
        break;
    case 2: {
        uint64_t n = varint(r);
        CHECK(n <= (uint64_t)(r->end - r->p));
        *sub = (struct rd){r->p, r->p + n};
        r->p += n;
        break;
    }
    default: CHECK(!"bad wire type");
    }
    return (unsigned)(tag >> 3) << 3 | (unsigned)(tag & 7);
}

/* The only field <num> (LEN) of <r>, which must have one. */
static struct rd only(struct rd r, unsigned num)
{
    struct rd sub = {0}, out = {0};
    unsigned f;
    int seen = 0;
    while ((f = field(&r, &sub)) != 0)
        if (f == (num << 3 | 2)) {
            out = sub;
            seen++;
        }
    CHECK(seen == 1);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct gh_span spans[4];
    static const struct gh_otlp_resource res = {
        .service_name = GH_STR_LIT("gatehouse"),
        .scope_name = GH_STR_LIT("gatehouse"),
    };
    char *buf = malloc(size + 1);
    gh_str pieces[64];
    size_t np = 0, start = 0;

    if (buf == NULL) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    for (size_t i = 0; i <= size && np < 64; i++)
        if (i == size || buf[i] == '\0') {
            pieces[np++] = gh_str_make(buf + start, i - start);
            start = i + 1;
        }

    size_t ns = 0, k = 0;
    memset(spans, 0, sizeof(spans));
    while (k < np && ns < 4) {
        struct gh_span *s = &spans[ns++];
        s->span_id[0] = (uint8_t)ns;
        s->kind = GH_SPAN_SERVER;
        s->start_unix_ns = 1;
        s->end_unix_ns = 2;
        s->name = pieces[k++];
        if (k < np) s->trace_state = pieces[k++];
        if (k < np) s->status_message = pieces[k++];
        s->status = s->status_message.len > 0 ? GH_SPAN_STATUS_ERROR : GH_SPAN_STATUS_UNSET;
        while (k + 1 < np && s->nattrs < GH_SPAN_MAX_ATTRS) {
            gh_str key = pieces[k], val = pieces[k + 1];
            k += 2;
            unsigned sel = key.len > 0 ? (unsigned char)key.ptr[0] : 0;
            struct gh_span_attr *a = &s->attrs[s->nattrs++];
            /* Each piece is NUL-terminated in <buf>: a key without
             * key_len is measured with strlen. */
            *a = (struct gh_span_attr){.key = key.ptr, .key_len = sel & 1 ? key.len : 0};
            a->type = sel % 5 == 1 ? GH_ATTR_INT : sel % 5 == 2 ? GH_ATTR_BOOL : GH_ATTR_STR;
            a->s = val;
            a->i = (int64_t)(val.len * 0x9e3779b97f4a7c15u);
            if (sel == 0x7f) break;
        }
    }

    struct gh_otlp_buf pb = {0}, js = {0};
    CHECK(gh_otlp_encode_proto(&pb, &res, spans, ns) == 0);
    CHECK(gh_otlp_encode_json(&js, &res, spans, ns) == 0);

    json_error_t err;
    json_t *j = json_loadb(js.data, js.len, 0, &err);
    if (j == NULL) fprintf(stderr, "JSON: %s\n", err.text);
    CHECK(j != NULL);
    json_t *jspans = json_object_get(
        json_array_get(
            json_object_get(json_array_get(json_object_get(j, "resourceSpans"), 0), "scopeSpans"),
            0),
        "spans");
    CHECK(json_array_size(jspans) == ns);

    struct rd r = {(const uint8_t *)pb.data, (const uint8_t *)pb.data + pb.len}, sub;
    struct rd scope_spans = only(only(r, 1), 2);
    size_t idx = 0;
    unsigned f;
    while ((f = field(&scope_spans, &sub)) != 0) {
        if (f != (2 << 3 | 2)) continue;
        CHECK(idx < ns);
        json_t *name = json_object_get(json_array_get(jspans, idx), "name");
        CHECK(json_is_string(name));
        struct rd span = sub, nm = {0};
        unsigned g;
        struct rd x;
        while ((g = field(&span, &x)) != 0)
            if (g == (5 << 3 | 2)) nm = x;
        CHECK((size_t)(nm.end - nm.p) == json_string_length(name));
        CHECK(json_string_length(name) == 0 ||
              memcmp(nm.p, json_string_value(name), json_string_length(name)) == 0);
        idx++;
    }
    CHECK(idx == ns);
    json_decref(j);
    free(pb.data);
    free(js.data);
    free(buf);
    return 0;
}
