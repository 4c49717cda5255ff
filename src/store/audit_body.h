/* The compact form of a stored audit body: a canonical event body
 * (audit/event.h, gh_audit_canonical) begins with the members a row's columns
 * hold already, {"v":..,"chain":..,"seq":..,"id":..,"time_us":..,"tenant":..,
 * "actor":..,"action":..,"resource":..,"outcome":..; an engine may store the
 * rest only (it begins with ',') and put the front back from the columns on
 * reading. The PostgreSQL store does (pg_audit.c): those 230 bytes of 445 in
 * a request's event were about a tenth of the server's work per event.
 *
 * A body is stored compact only when the front built from its row's
 * columns, byte for byte, is how the body begins, and that front needs no
 * escaping (no '"', '\\' or control byte in a value): so putting it back
 * gives the same bytes, and the chain's hash, which covers every byte of
 * the body, still proves the columns. Any other body is stored whole (it
 * begins with '{'), as is every body written before. */
#ifndef GH_STORE_AUDIT_BODY_H
#define GH_STORE_AUDIT_BODY_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

/* Where the stored part of <row>'s body begins: after the front its
 * columns give, or 0 when the body is to be stored whole. */
size_t gh_store__audit_body_cut(const struct gh_store_audit_row *row);

/* Sets <row>'s body from <stored> (<len> bytes, as an engine read it) and
 * its columns: the compact form gets its front back. False when it cannot
 * (a column that needs escaping, a body over GH_STORE_AUDIT_BODY_MAX): the
 * body is then <stored> as far as it fits, and the row was not written so. */
bool gh_store__audit_body_expand(struct gh_store_audit_row *row, const char *stored, size_t len);

/* The same in SQL, for anyone reading the table rather than the store: the
 * view audit_events_canonical (migration 12 of both engines) has the columns
 * of audit_events, each event's canonical body in body, by this expression,
 * whichever form it is stored in. A migration's text never changes: a new
 * form needs a new one. */
/* clang-format off */
#define GH_STORE_AUDIT_BODY_SQL                                                                    \
    "CASE WHEN substr(body, 1, 1) = ',' THEN "                                                     \
    "'{\"v\":' || CASE WHEN node <> '' THEN '2' ELSE '1' END || "                                  \
    "',\"chain\":\"' || chain || '\",\"seq\":' || seq || ',\"id\":\"' || id || "                   \
    "'\",\"time_us\":' || time_us || ',\"tenant\":\"' || tenant_id || "                            \
    "'\",\"actor\":\"' || actor || '\",\"action\":\"' || action || "                               \
    "'\",\"resource\":\"' || resource || '\",\"outcome\":\"' || outcome || '\"' || body "          \
    "ELSE body END"
/* clang-format on */
#define GH_STORE_AUDIT_CANONICAL_COLS                                                              \
    "rowid AS rowid, chain, seq, id, time_us, tenant_id, actor, action, resource, outcome, "       \
    "request_id, hash, node, " GH_STORE_AUDIT_BODY_SQL " AS body"

#endif
