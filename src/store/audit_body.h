/* The compact form of a stored audit body: a canonical event body
 * (audit/event.h, gh_audit_canonical) holds members whose values its row's
 * columns hold already; an engine may store the body without them and put
 * them back from the columns on reading. The PostgreSQL store does
 * (pg_audit.c): the server's work per event grows with the row, and those
 * members are about 290 of a request event's 445 bytes.
 *
 * The compact form, which begins with ',':
 *  - the front, {"v":..,"chain":..,"seq":..,"id":..,"time_us":..,"tenant":..,
 *    "actor":..,"action":..,"resource":..,"outcome":.., is left out;
 *  - the first ,"request_id":"<request_id column>" of the rest is the byte
 *    GH_STORE_AUDIT_MARK_REQUEST (0x01) instead, and the first
 *    ,"node":"<node column>" (format version 2) is GH_STORE_AUDIT_MARK_NODE
 *    (0x02). Builds before schema version 13 left out the front only: such
 *    a body has no mark and reads as before.
 * A canonical body never holds those bytes (JSON escapes every control
 * byte), so a mark can only be one. A body is stored compact only when the
 * front built from its row's columns, byte for byte, is how the body
 * begins, and no value put back needs escaping (no '"', '\\' or control
 * byte): so putting them back gives the same bytes, and the chain's hash,
 * which covers every byte of the body, still proves the columns. Any other
 * body is stored whole (it begins with '{'). */
#ifndef GH_STORE_AUDIT_BODY_H
#define GH_STORE_AUDIT_BODY_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

#define GH_STORE_AUDIT_MARK_REQUEST '\x01'
#define GH_STORE_AUDIT_MARK_NODE    '\x02'

/* The bytes an engine stores for <row>'s body: its compact form, written in
 * <scratch> (GH_STORE_AUDIT_BODY_MAX bytes), or the body itself when it is
 * to be stored whole. *len gets their length. */
const char *gh_store__audit_body_stored(const struct gh_store_audit_row *row, char *scratch,
                                        size_t *len);

/* Sets <row>'s body from <stored> (<len> bytes, as an engine read it) and
 * its columns: the compact form gets its members back. False when it
 * cannot (a column that needs escaping, a body over GH_STORE_AUDIT_BODY_MAX):
 * the body is then <stored> as far as it fits, and the row was not written
 * so. */
bool gh_store__audit_body_expand(struct gh_store_audit_row *row, const char *stored, size_t len);

/* The same in SQL, for anyone reading the table rather than the store: the
 * view audit_events_canonical has the columns of audit_events, each event's
 * canonical body in body, whichever form it is stored in. A migration's
 * text never changes, so each form has its own: migration 12 of both
 * engines made the view with GH_STORE_AUDIT_CANONICAL_COLS (the front
 * only), migration 13 makes it again with GH_STORE_AUDIT_CANONICAL_COLS_13
 * (the front and the marks; CHR is the engine's function from a code to a
 * character: chr in PostgreSQL, char in SQLite). */
/* clang-format off */
#define GH_STORE_AUDIT_FRONT_SQL                                                                   \
    "'{\"v\":' || CASE WHEN node <> '' THEN '2' ELSE '1' END || "                                  \
    "',\"chain\":\"' || chain || '\",\"seq\":' || seq || ',\"id\":\"' || id || "                   \
    "'\",\"time_us\":' || time_us || ',\"tenant\":\"' || tenant_id || "                            \
    "'\",\"actor\":\"' || actor || '\",\"action\":\"' || action || "                               \
    "'\",\"resource\":\"' || resource || '\",\"outcome\":\"' || outcome || '\"' || "
#define GH_STORE_AUDIT_BODY_SQL                                                                    \
    "CASE WHEN substr(body, 1, 1) = ',' THEN " GH_STORE_AUDIT_FRONT_SQL "body "                    \
    "ELSE body END"
#define GH_STORE_AUDIT_BODY_SQL_13(CHR)                                                            \
    "CASE WHEN substr(body, 1, 1) = ',' THEN " GH_STORE_AUDIT_FRONT_SQL                            \
    "replace(replace(body, " CHR "(1), ',\"request_id\":\"' || request_id || '\"'), "                \
    CHR "(2), ',\"node\":\"' || node || '\"') "                                                    \
    "ELSE body END"
/* clang-format on */
#define GH_STORE_AUDIT_CANONICAL_COLS                                                              \
    "rowid AS rowid, chain, seq, id, time_us, tenant_id, actor, action, resource, outcome, "       \
    "request_id, hash, node, " GH_STORE_AUDIT_BODY_SQL " AS body"
#define GH_STORE_AUDIT_CANONICAL_COLS_13(CHR)                                                      \
    "rowid AS rowid, chain, seq, id, time_us, tenant_id, actor, action, resource, outcome, "       \
    "request_id, hash, node, " GH_STORE_AUDIT_BODY_SQL_13(CHR) " AS body"

#endif
