/* libFuzzer harness for audit params and the canonical form
 * (src/audit/redact.c, event.c, parse.c; the Makefile links them with
 * FUZZ_LIBS_fuzz_audit_params).
 *
 * The first byte picks the input's meaning: odd, the rest is a query string
 * for gh_audit_params_from_query; even, the rest is name NUL value NUL name
 * NUL value ... for gh_audit_params_add, and the first name also fills the
 * path and user agent through gh_audit_set. Bit 1 of the first byte gives
 * the event a node (format version 2). Then:
 * 1. the canonical form is not empty and is valid JSON (jansson) with the
 *    20 members (21 with a node);
 * 2. it parses back (gh_audit_canonical_parse) into an event whose canonical
 *    form is the same bytes;
 * 3. no value that the rules redact (decoded here by a second, plainer
 *    decoder for the query case) appears in any of its decoded strings but
 *    the parameters' names, when the value is long enough (> 16 bytes) not
 *    to be a prefix by chance, has no '"' and is not part of a recorded
 *    name (the first name also fills path and user agent). Decoded, not in
 *    the JSON text: there a name of six backslashes reads as twelve, which
 *    hold a value of ten (a false alarm the fuzzer found);
 * 4. the raw input, read as a body, is either refused by the strict parser
 *    or is exactly the canonical form of what it parsed into (the parser
 *    accepts canonical forms only). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_check.h"

#include "audit/event.h"

#define MAX_PAIRS 64

struct pair {
    gh_str name, value;
};

static int hv(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A second form decoder, written plainly: into a malloc'd copy. */
static gh_str decode(const char *p, size_t n)
{
    char *out = malloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] == '+') {
            out[o++] = ' ';
        } else if (p[i] == '%' && i + 2 < n && hv(p[i + 1]) >= 0 && hv(p[i + 2]) >= 0) {
            out[o++] = (char)(hv(p[i + 1]) * 16 + hv(p[i + 2]));
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    return gh_str_make(out, o);
}

static bool contains(gh_str hay, gh_str needle)
{
    if (needle.len == 0 || needle.len > hay.len) return false;
    return memmem(hay.ptr, hay.len, needle.ptr, needle.len) != NULL;
}

static bool string_contains(const json_t *v, gh_str needle)
{
    return json_is_string(v) &&
           contains(gh_str_make(json_string_value(v), json_string_length(v)), needle);
}

/* Whether <needle> is in a decoded string of canonical form <doc> other
 * than a parameter's name: the members, then each parameter's sha256,
 * prefix and redaction kind. */
static bool leaks(json_t *doc, gh_str needle)
{
    const char *key;
    json_t *v, *param;
    size_t i;

    json_object_foreach(doc, key, v)
    {
        if (string_contains(v, needle)) return true;
    }
    json_array_foreach(json_object_get(doc, "params"), i, param)
    {
        json_object_foreach(param, key, v)
        {
            if (strcmp(key, "name") != 0 && string_contains(v, needle)) return true;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct gh_audit_event ev, back;
    static char out[GH_AUDIT_CANON_MAX], again[GH_AUDIT_CANON_MAX];
    static const uint8_t rnd[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    struct pair pairs[MAX_PAIRS];
    size_t npairs = 0, n;
    bool query, with_node;
    const char *p;
    json_error_t e;
    json_t *doc;

    if (size == 0) return 0;
    /* 4. */
    if (gh_audit_canonical_parse((const char *)data, size, &back) == GH_OK) {
        CHECK(gh_audit_canonical(&back, again) == size);
        CHECK(memcmp(again, data, size) == 0);
    }
    query = data[0] & 1;
    with_node = data[0] & 2;
    p = (const char *)data + 1;
    size--;
    gh_audit_event_init(&ev, 1763782800123456, rnd);
    GH_AUDIT_SET(&ev, tenant, GH_STR_LIT("tn_abcdefghijklmnopqrst"));
    snprintf(ev.chain, sizeof(ev.chain), "%s", gh_audit_chain_of(&ev));
    ev.seq = 7;
    if (with_node) GH_AUDIT_SET(&ev, node, GH_STR_LIT("gw-1.eu_west-2"));
    if (query) {
        gh_audit_params_from_query(&ev, gh_str_make(p, size), 4);
        for (size_t i = 0; i < size && npairs < MAX_PAIRS;) {
            const char *amp = memchr(p + i, '&', size - i);
            size_t len = amp ? (size_t)(amp - (p + i)) : size - i;
            const char *eq = memchr(p + i, '=', len);
            size_t nl = eq ? (size_t)(eq - (p + i)) : len;
            if (len > 0) {
                pairs[npairs].name = decode(p + i, nl);
                pairs[npairs].value = eq ? decode(eq + 1, len - nl - 1) : decode("", 0);
                npairs++;
            }
            i += len + 1;
        }
    } else {
        for (size_t i = 0; i < size && npairs < MAX_PAIRS;) {
            const char *z = memchr(p + i, 0, size - i);
            size_t nl = z ? (size_t)(z - (p + i)) : size - i;
            gh_str name = gh_str_make(p + i, nl), value = GH_STR_NULL;
            i += nl + 1;
            if (i < size) {
                z = memchr(p + i, 0, size - i);
                value = gh_str_make(p + i, z ? (size_t)(z - (p + i)) : size - i);
                i += value.len + 1;
            }
            if (npairs == 0) {
                GH_AUDIT_SET(&ev, path, name);
                GH_AUDIT_SET(&ev, user_agent, name);
            }
            gh_audit_params_add(&ev, name, value, 4);
            pairs[npairs].name = name;
            pairs[npairs].value = value;
            npairs++;
        }
    }
    gh_audit_params_end(&ev);

    /* 1. valid JSON, 20 members */
    n = gh_audit_canonical(&ev, out);
    CHECK(n > 0);
    doc = json_loadb(out, n, JSON_ALLOW_NUL, &e);
    if (doc == NULL) fprintf(stderr, "%s: %.*s\n", e.text, (int)n, out);
    CHECK(doc != NULL);
    CHECK(json_object_size(doc) == (with_node ? 21u : 20u));
    CHECK(json_is_array(json_object_get(doc, "params")));

    /* 2. parses back to the same bytes */
    CHECK(gh_audit_canonical_parse(out, n, &back) == GH_OK);
    CHECK(gh_audit_canonical(&back, again) == n);
    CHECK(memcmp(out, again, n) == 0);

    /* 3. no redacted value in it */
    for (size_t i = 0; i < npairs; i++) {
        bool redacted = pairs[i].value.len > GH_AUDIT_QUERY_VALUE_MAX ||
                        pairs[i].name.len > GH_AUDIT_QUERY_VALUE_MAX ||
                        gh_audit_redaction(pairs[i].name, pairs[i].value) != NULL;
        bool in_name = false;

        /* A value is looked for in the decoded strings (leaks()): in a
         * name (skipped), a prefix (too short), or a leak. */
        if (!redacted || pairs[i].value.len <= 16 ||
            memchr(pairs[i].value.ptr, '"', pairs[i].value.len) != NULL)
            continue;
        for (size_t k = 0; k < npairs; k++)
            in_name = in_name || contains(pairs[k].name, pairs[i].value);
        if (!in_name && leaks(doc, pairs[i].value)) {
            fprintf(stderr, "redacted value %zu found in %.*s\n", i, (int)n, out);
            abort();
        }
    }
    json_decref(doc);
    if (query)
        for (size_t i = 0; i < npairs; i++) {
            free((void *)pairs[i].name.ptr);
            free((void *)pairs[i].value.ptr);
        }
    return 0;
}
