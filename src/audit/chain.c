/* Chaining an event into a store row (chain.h). */
#include "audit/chain.h"

#include <stdio.h>
#include <string.h>

static const char hexd[] = "0123456789abcdef";

/* Every event field fits its row column: nothing is clipped on the way. */
#define FITS(f, c)                                                                                 \
    _Static_assert(sizeof(((struct gh_audit_event *)0)->f) <=                                      \
                       sizeof(((struct gh_store_audit_row *)0)->c),                                \
                   #f " fits " #c)
FITS(chain, chain);
FITS(id, id);
FITS(tenant, tenant_id);
FITS(actor, actor);
FITS(action, action);
FITS(resource, resource);
FITS(request_id, request_id);
FITS(node, node);
_Static_assert(GH_AUDIT_CANON_MAX <= GH_STORE_AUDIT_BODY_MAX, "a canonical form fits a body");

void gh_audit_hex(const uint8_t in[32], char out[65])
{
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hexd[in[i] >> 4];
        out[2 * i + 1] = hexd[in[i] & 15];
    }
    out[64] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int gh_audit_unhex(const char *in, uint8_t out[32])
{
    for (int i = 0; i < 32; i++) {
        int hi = nibble(in[2 * i]), lo = hi < 0 ? -1 : nibble(in[2 * i + 1]);
        if (hi < 0 || lo < 0) return GH_ERROR;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return in[64] == '\0' ? GH_OK : GH_ERROR;
}

/* Copies <s> into a row field of <size> bytes; the event's fields are never
 * longer than the row's (same sizes), so nothing is clipped in practice. */
static void copy(char *dst, size_t size, const char *s)
{
    size_t n = strnlen(s, size - 1);

    memcpy(dst, s, n);
    dst[n] = '\0';
}

int gh_audit_chain_event(struct gh_audit_event *ev, uint64_t seq, const uint8_t prev[32],
                         struct gh_store_audit_row *row)
{
    size_t n;

    copy(ev->chain, sizeof(ev->chain), gh_audit_chain_of(ev));
    ev->seq = seq;
    memcpy(ev->prev_hash, prev, 32);
    n = gh_audit_canonical(ev, row->body);
    if (n == 0) return GH_ERROR;
    gh_audit_chain_hash(prev, row->body, n, ev->hash);
    row->body[n] = '\0';
    row->body_len = n;
    row->rowid = 0;
    copy(row->chain, sizeof(row->chain), ev->chain);
    row->seq = seq;
    copy(row->id, sizeof(row->id), ev->id);
    row->time_us = ev->time_us > 0 ? ev->time_us : 0;
    copy(row->tenant_id, sizeof(row->tenant_id), ev->tenant);
    copy(row->actor, sizeof(row->actor), ev->actor);
    copy(row->action, sizeof(row->action), ev->action);
    copy(row->resource, sizeof(row->resource), ev->resource);
    copy(row->outcome, sizeof(row->outcome), gh_audit_outcome_name(ev->outcome));
    copy(row->request_id, sizeof(row->request_id), ev->request_id);
    copy(row->node, sizeof(row->node), ev->node);
    gh_audit_hex(ev->hash, row->hash);
    gh_audit_hex(prev, row->prev_hash);
    return GH_OK;
}
