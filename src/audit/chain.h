/* Chaining an event into a store row: what the audit writer does to each
 * event before gh_store_audit_append, and what tests and benchmarks use to
 * build chains. docs/audit-format.md defines the hash. */
#ifndef GH_AUDIT_CHAIN_H
#define GH_AUDIT_CHAIN_H

#include <stdint.h>

#include "audit/event.h"
#include "store/store.h"

/* Sets ev->chain (gh_audit_chain_of), ev->seq = <seq>, ev->prev_hash =
 * <prev> (32 zero bytes for seq 1) and ev->hash = SHA-256(prev ||
 * canonical), and fills every field of <row> but rowid (the canonical form
 * into row->body). GH_OK, or GH_ERROR when the canonical form does not fit
 * (only fields written without gh_audit_set can cause it); the event is then
 * not chained and must not be stored. No allocation. */
int gh_audit_chain_event(struct gh_audit_event *ev, uint64_t seq, const uint8_t prev[32],
                         struct gh_store_audit_row *row);

/* 32 bytes as 64 lowercase hex characters and a NUL. */
void gh_audit_hex(const uint8_t in[32], char out[65]);

/* The reverse: GH_OK when <in> is exactly 64 lowercase hex characters. */
int gh_audit_unhex(const char *in, uint8_t out[32]);

#endif
