/* PostgreSQL array literals ({"a","b"}) built as one statement parameter,
 * so that a batch of rows reaches the server as a few array parameters of
 * one prepared statement (unnest) in one round trip, instead of one round
 * trip per row: the audit writer's group commit on PostgreSQL depends on it.
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

/* The input of `COPY ... FROM STDIN` in the text format, built in the same
 * growing buffer: fields separated by a tab, rows ended by a newline, and
 * in each field `\`, tab, newline and carriage return escaped (`\\`, `\t`,
 * `\n`, `\r`), so any text but NUL goes in byte for byte. The fastest way
 * to hand PostgreSQL many rows: no statement per row, no literal to parse. */
void gh_pg_copy_reset(struct gh_pg_array *a);
/* A text field (<last>: the row's last one, ended by a newline). */
void gh_pg_copy_text(struct gh_pg_array *a, const char *s, size_t len, bool last);
void gh_pg_copy_i64(struct gh_pg_array *a, int64_t v, bool last);
/* The bytes so far (not NUL-terminated), or NULL when an allocation failed;
 * their length in a->len. */
const char *gh_pg_copy_data(const struct gh_pg_array *a);

#endif
