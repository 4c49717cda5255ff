/* Durable files: what every part that writes a file which must survive a
 * crash needs (audit archives, backups, key files). Each call either does
 * all of its work or reports the errno text in <err>, prefixed by <what>
 * (e.g. "audit archive", "backup"), and never leaves a half-written file
 * under the final name. */
#ifndef GH_CORE_FILE_H
#define GH_CORE_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"

/* fsync of a file or a folder, by name. */
int gh_file_fsync(const char *what, const char *path, struct gh_err *err);

/* fsync of a folder: makes the names created or renamed in it durable. */
int gh_file_fsync_dir(const char *what, const char *path, struct gh_err *err);

/* fsync of the folder that holds <path> ("." for a bare name): the file's
 * name is then durable. */
int gh_file_fsync_parent(const char *what, const char *path, struct gh_err *err);

/* mkdir with mode 0700; an existing folder is fine. */
int gh_file_make_dir(const char *what, const char *path, struct gh_err *err);

/* Writes <len> bytes to "<path>.tmp" (created with <mode>), fsyncs it, and
 * renames it to <path>. The folder itself is not fsync'd: callers that
 * need the name durable call gh_file_fsync_dir() (once for many files). */
int gh_file_write_atomic(const char *what, const char *path, const void *data, size_t len,
                         mode_t mode, struct gh_err *err);

/* The SHA-256 of a file's content as 64 lowercase hex digits, and its size
 * (may be NULL). Reads in blocks: memory does not grow with the file. */
int gh_file_sha256(const char *what, const char *path, char hex[65], uint64_t *size,
                   struct gh_err *err);

#endif
