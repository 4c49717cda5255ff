/* What the PostgreSQL store sends in bulk, built in one growing buffer:
 * array literals (below), COPY's binary input (gh_pg_copy_*) and SQL text
 * with quoted values (gh_pg_sql_*).
 *
 * Array literals ({"a","b"}) are built as one statement parameter, so that
 * a batch of rows reaches the server as a few array parameters of one
 * prepared statement (unnest) in one round trip, instead of one round trip
 * per row: the audit writer's group commit on PostgreSQL depends on it.
 *
 * Every element is written quoted, with `\` and `"` escaped, which the
 * array input function reads back byte for byte: the text may hold any
 * byte but NUL (the server checks the encoding, as for any text parameter).
 *
 * The buffer grows as needed; a failed allocation is remembered and
 * reported by gh_pg_array_end() (NULL), so a caller appends without
 * checking each step. A literal is reused across batches (reset keeps the
 * allocation); gh_pg_array_free() releases it. */
#ifndef GH_STORE_PG_ARRAY_H
#define GH_STORE_PG_ARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gh_pg_array {
    char *p;
    size_t len, cap;
    size_t n; /* elements so far */
    bool oom;
};

/* Starts an empty literal ("{"), keeping the allocation. */
void gh_pg_array_reset(struct gh_pg_array *a);
/* Appends the <len> bytes at <s> (no NUL inside) as one element. */
void gh_pg_array_text(struct gh_pg_array *a, const char *s, size_t len);
/* Appends <v> in decimal as one element. */
void gh_pg_array_i64(struct gh_pg_array *a, int64_t v);
/* Closes the literal ("}"); returns it NUL-terminated, or NULL when an
 * allocation failed on the way. */
const char *gh_pg_array_end(struct gh_pg_array *a);
void gh_pg_array_free(struct gh_pg_array *a);

/* The input of `COPY ... FROM STDIN (FORMAT binary)`, built in the same
 * growing buffer: the 19-byte header, then per row a 16-bit field count
 * and per field a 32-bit length and its bytes (integers in network order),
 * then the trailer. Nothing is escaped and nothing is parsed back out of
 * text: the server takes each field's bytes as they are (a text field's
 * encoding is still checked, so NUL is refused), which is what makes many
 * audit rows cheap to hand it (a kilobyte body is one memcpy here and one
 * there, where the text format scanned every byte on both sides). */
void gh_pg_copy_reset(struct gh_pg_array *a);
/* Starts a row of <nfields> fields; exactly that many must follow. */
void gh_pg_copy_row(struct gh_pg_array *a, unsigned nfields);
/* A text field of <len> bytes (the column's type must take text's binary
 * form: text, or varchar). */
void gh_pg_copy_text(struct gh_pg_array *a, const char *s, size_t len);
/* An int8 (bigint) field. */
void gh_pg_copy_i64(struct gh_pg_array *a, int64_t v);
/* Adds the trailer; returns the input (its length in a->len, not
 * NUL-terminated), or NULL when an allocation failed on the way or a field
 * was too long for the format. */
const char *gh_pg_copy_end(struct gh_pg_array *a);

/* SQL text with values as string constants, in the same growing buffer:
 * for a script sent as one simple query, which binds no parameters (the
 * audit append's, pg_audit.c). The SQL pieces are the caller's constants;
 * a value goes in only through gh_pg_sql_quote or gh_pg_sql_i64. */
void gh_pg_sql_reset(struct gh_pg_array *a);
/* Appends constant SQL <s> as it is. */
void gh_pg_sql_raw(struct gh_pg_array *a, const char *s);
/* Appends <s> as a string constant, E'...' with every \ and ' doubled:
 * read back byte for byte whatever standard_conforming_strings says (in
 * UTF-8, the client encoding, no byte of a multibyte character is either;
 * invalid UTF-8 is refused by the server, not misread). */
void gh_pg_sql_quote(struct gh_pg_array *a, const char *s);
/* Appends <v> in decimal. */
void gh_pg_sql_i64(struct gh_pg_array *a, int64_t v);
/* The text, NUL-terminated, or NULL when an allocation failed on the way. */
const char *gh_pg_sql_end(struct gh_pg_array *a);

#endif
