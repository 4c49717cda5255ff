/* Archive segment files (docs/audit-format.md, "Archives"): zstd-compressed
 * JSON lines, one event a line as {"event":<canonical body>,"hash":"<hex>"}.
 * The writer and the reader both stream (bounded buffers, never the whole
 * file) and hash the file's bytes (the compressed ones) as they go, so the
 * archiver records and the verifier checks a segment's SHA-256 in the same
 * pass that writes or reads it. */
#ifndef GH_AUDIT_SEGMENT_H
#define GH_AUDIT_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct gh_audit_segment_writer;

/* Creates <path> (mode 0600, O_EXCL: it must not exist). NULL with <err>. */
struct gh_audit_segment_writer *gh_audit_segment_create(const char *path, struct gh_err *err);

/* Appends one line for <body> (<len> bytes, a canonical event) and <hash> (64
 * lowercase hex). GH_OK or GH_ERROR (then only _abort is allowed). */
int gh_audit_segment_add(struct gh_audit_segment_writer *w, const char *body, size_t len,
                         const char hash[65], struct gh_err *err);

/* Ends the zstd frame, fsyncs and closes the file, sets <sha256> (hex of the
 * file's bytes) and frees <w>, whatever the outcome. GH_OK or GH_ERROR. */
int gh_audit_segment_finish(struct gh_audit_segment_writer *w, char sha256[65], struct gh_err *err);

/* Closes, removes the file and frees <w>. NULL is fine. */
void gh_audit_segment_abort(struct gh_audit_segment_writer *w);

/* Called for each line of a segment, in order: the body (not terminated)
 * and the hash as written. Returning anything but GH_OK stops the read. */
typedef int (*gh_audit_segment_line_cb)(const char *body, size_t len, const char hash[65],
                                        void *arg);

/* Reads segment <path> line by line into <cb>, and sets <sha256> to the hex
 * SHA-256 of the whole file (read to its end even when <cb> stops, so the
 * hash is always the file's). Returns GH_OK; GH_STORE-like codes from <cb>;
 * GH_DECLINED when the file is missing (ENOENT, ENOTDIR); GH_ERROR when
 * it cannot be opened otherwise (EACCES: another user's); GH_AGAIN when its content is not a
 * well-formed segment (bad compression, a line not of the form above, a truncated frame), with
 * <err> saying where (<err>->msg, line number). */
int gh_audit_segment_read(const char *path, gh_audit_segment_line_cb cb, void *arg, char sha256[65],
                          struct gh_err *err);

#endif
