/* libFuzzer harness for W3C Trace Context parsing (gh_tracectx_parse,
 * src/telemetry/tracectx.c). The Makefile links src/telemetry/tracectx.c
 * (FUZZ_LIBS_fuzz_tracectx).
 *
 * The input is a list of header values, one a line: a line that starts
 * with 'P' is a traceparent value (the rest of the line), any other line a
 * tracestate value (the line without its first byte), so the fuzzer can
 * send none, one or several of each. Then:
 * 1. a context is either valid, with non-zero ids and a single traceparent,
 *    or not, with zero ids and flags and no tracestate;
 * 2. a one-header version 00 value is valid exactly when it is 55
 *    characters of the right shape after trimming OWS (a second, plainer
 *    reading of §3.2.2);
 * 3. the propagated tracestate fits GH_TRACESTATE_MAX, is NUL-terminated,
 *    has at most 32 members joined by single commas, each "key=value" in
 *    the allowed characters, with no OWS around them;
 * 4. what the gateway would send (gh_traceparent_format and the kept
 *    tracestate) parses back to the same context and the same tracestate. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#include "telemetry/tracectx.h"

#define MAX_TP 4
#define MAX_TS 48

static bool zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0) return false;
    return true;
}

static bool lchex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Rule 2: version 00, read the plain way. */
static bool v00_valid(gh_str v)
{
    while (v.len > 0 && (v.ptr[0] == ' ' || v.ptr[0] == '\t')) {
        v.ptr++;
        v.len--;
    }
    while (v.len > 0 && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
        v.len--;
    if (v.len != GH_TRACEPARENT_LEN) return false;
    bool trace_nz = false, parent_nz = false;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.ptr[i];
        if (i == 2 || i == 35 || i == 52) {
            if (c != '-') return false;
        } else if (!lchex(c))
            return false;
        else if (i < 2 && c != '0')
            return false;
        else if (i >= 3 && i < 35 && c != '0')
            trace_nz = true;
        else if (i >= 36 && i < 52 && c != '0')
            parent_nz = true;
    }
    return trace_nz && parent_nz;
}

static bool keyc(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' ||
           c == '/' || c == '@';
}

/* Rule 3. */
static void check_state(const struct gh_tracectx *tc)
{
    CHECK(tc->state_len <= GH_TRACESTATE_MAX);
    CHECK(tc->state[tc->state_len] == '\0');
    CHECK(strlen(tc->state) == tc->state_len);
    if (tc->state_len == 0) return;

    size_t members = 0;
    const char *p = tc->state, *end = tc->state + tc->state_len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        CHECK(eq != NULL && eq > p && eq + 1 < stop);
        for (const char *k = p; k < eq; k++)
            CHECK(keyc(*k));
        for (const char *v = eq + 1; v < stop; v++)
            CHECK(*v >= 0x20 && *v <= 0x7e && *v != '=');
        CHECK(stop[-1] != ' ');
        members++;
        CHECK(comma == NULL || comma + 1 < end); /* no trailing comma */
        p = comma ? comma + 1 : end;
    }
    CHECK(members <= GH_TRACESTATE_MEMBERS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gh_str tp[MAX_TP], ts[MAX_TS];
    size_t ntp = 0, nts = 0;
    const char *p = (const char *)data, *end = p + size;
    struct gh_tracectx tc, again;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if (stop > p) {
            gh_str v = gh_str_make(p + 1, (size_t)(stop - p - 1));
            if (*p == 'P' && ntp < MAX_TP)
                tp[ntp++] = v;
            else if (*p != 'P' && nts < MAX_TS)
                ts[nts++] = v;
        }
        p = nl ? nl + 1 : end;
    }

    memset(&tc, 0xa5, sizeof(tc));
    gh_tracectx_parse(&tc, tp, ntp, ts, nts);

    /* Rule 1. */
    if (tc.valid) {
        CHECK(ntp == 1);
        CHECK(!zero(tc.trace_id, 16) && !zero(tc.parent_id, 8));
    } else {
        CHECK(zero(tc.trace_id, 16) && zero(tc.parent_id, 8) && tc.flags == 0);
        CHECK(tc.state_len == 0);
    }
    /* Rule 2. */
    if (ntp == 1 && tp[0].len >= 2 && tp[0].ptr[0] == '0' && tp[0].ptr[1] == '0')
        CHECK(tc.valid == v00_valid(tp[0]));
    check_state(&tc);
    if (!tc.valid) return 0;

    /* Rule 4. */
    char out[GH_TRACEPARENT_LEN + 1];
    gh_traceparent_format(out, tc.trace_id, tc.parent_id, tc.flags);
    CHECK(strlen(out) == GH_TRACEPARENT_LEN);
    gh_str o = gh_str_make(out, GH_TRACEPARENT_LEN), st = gh_str_make(tc.state, tc.state_len);
    gh_tracectx_parse(&again, &o, 1, &st, tc.state_len > 0 ? 1 : 0);
    CHECK(again.valid);
    CHECK(memcmp(again.trace_id, tc.trace_id, 16) == 0);
    CHECK(memcmp(again.parent_id, tc.parent_id, 8) == 0);
    CHECK(again.flags == tc.flags);
    CHECK(again.state_len == tc.state_len && memcmp(again.state, tc.state, tc.state_len) == 0);
    return 0;
}
