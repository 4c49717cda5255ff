/* libFuzzer harness for the compact form of stored audit bodies
 * (src/store/audit_body.c; the Makefile links it with
 * FUZZ_LIBS_fuzz_audit_body). What an engine reads back is hostile input:
 * anyone with the database can write any bytes into body and the columns.
 *
 * Input: the first byte is flags, the next 8 give seq and time_us, then
 * NUL-separated values for chain, id, tenant_id, actor, action, resource,
 * outcome, request_id and node; the rest is the body. With flag bit 0 the
 * harness puts the front those columns give (written here the plain way,
 * with snprintf) before the body, so that most inputs take the compact path.
 * Then:
 * 1. the stored form is the body itself or a compact form (begins with ',',
 *    shorter than the body, holds no more than one of each mark), and it
 *    reads back as exactly the body;
 * 2. the body's bytes read as stored bytes (an engine's row, whatever it
 *    holds) give a body of at most GH_STORE_AUDIT_BODY_MAX bytes, NUL
 *    terminated, and, when expanding says it could, one that stores back
 *    as the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#include "store/audit_body.h"

/* The next NUL-terminated value of the input into <dst> (<cap> bytes). */
static void take(const uint8_t **p, const uint8_t *end, char *dst, size_t cap)
{
    const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
    size_t n = (size_t)((nul ? nul : end) - *p);

    if (n >= cap) n = cap - 1;
    memcpy(dst, *p, n);
    dst[n] = '\0';
    *p = nul ? nul + 1 : end;
}

static size_t count(const char *s, size_t n, char c)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += s[i] == c;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct gh_store_audit_row row, back;
    static char scratch[GH_STORE_AUDIT_BODY_MAX];
    const uint8_t *p = data, *end = data + size;
    const char *stored;
    size_t len, n = 0;
    uint8_t flags;

    if (size < 9) return 0;
    memset(&row, 0, sizeof(row));
    flags = *p++;
    row.seq = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
    row.time_us = (int64_t)((uint64_t)p[4] | (uint64_t)p[5] << 8 | (uint64_t)p[6] << 16 |
                            (uint64_t)p[7] << 24) -
                  0x1000;
    p += 8;
    take(&p, end, row.chain, sizeof(row.chain));
    take(&p, end, row.id, sizeof(row.id));
    take(&p, end, row.tenant_id, sizeof(row.tenant_id));
    take(&p, end, row.actor, sizeof(row.actor));
    take(&p, end, row.action, sizeof(row.action));
    take(&p, end, row.resource, sizeof(row.resource));
    take(&p, end, row.outcome, sizeof(row.outcome));
    take(&p, end, row.request_id, sizeof(row.request_id));
    take(&p, end, row.node, sizeof(row.node));
    if (flags & 1) {
        int k = snprintf(row.body, sizeof(row.body),
                         "{\"v\":%c,\"chain\":\"%s\",\"seq\":%llu,\"id\":\"%s\",\"time_us\":%lld,"
                         "\"tenant\":\"%s\",\"actor\":\"%s\",\"action\":\"%s\",\"resource\":\"%s\","
                         "\"outcome\":\"%s\"",
                         row.node[0] ? '2' : '1', row.chain, (unsigned long long)row.seq, row.id,
                         (long long)row.time_us, row.tenant_id, row.actor, row.action, row.resource,
                         row.outcome);
        if (k < 0 || (size_t)k >= sizeof(row.body)) return 0;
        n = (size_t)k;
    }
    if ((size_t)(end - p) > GH_STORE_AUDIT_BODY_MAX - n) return 0;
    memcpy(row.body + n, p, (size_t)(end - p));
    row.body_len = n + (size_t)(end - p);
    if (row.body_len == 0) return 0;

    /* 1. Stored, then read back. */
    stored = gh_store__audit_body_stored(&row, scratch, &len);
    if (stored == row.body) {
        CHECK(len == row.body_len);
    } else {
        CHECK(stored == scratch && len > 0 && len < row.body_len && stored[0] == ',');
        CHECK(count(stored, len, GH_STORE_AUDIT_MARK_REQUEST) <= 1);
        CHECK(count(stored, len, GH_STORE_AUDIT_MARK_NODE) <= 1);
        back = row;
        memset(back.body, 0x55, sizeof(back.body));
        CHECK(gh_store__audit_body_expand(&back, stored, len));
        CHECK(back.body_len == row.body_len);
        CHECK(memcmp(back.body, row.body, row.body_len) == 0);
    }

    /* 2. Any stored bytes. */
    back = row;
    if (gh_store__audit_body_expand(&back, row.body, row.body_len)) {
        const char *again = gh_store__audit_body_stored(&back, scratch, &len);
        /* A whole body that happens to begin with '{' and its front, or a
         * compact one put back: storing it again gives bytes that read
         * back the same. */
        static struct gh_store_audit_row third;
        third = back;
        CHECK(gh_store__audit_body_expand(&third, again, len));
        CHECK(third.body_len == back.body_len && memcmp(third.body, back.body, back.body_len) == 0);
    }
    CHECK(back.body_len <= GH_STORE_AUDIT_BODY_MAX && back.body[back.body_len] == '\0');
    return 0;
}
