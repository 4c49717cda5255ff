/* Errors that carry a place: configuration and other parse-time errors come
 * back to the caller in a struct gh_err, never printed from deep inside. */
#ifndef GH_CORE_ERR_H
#define GH_CORE_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* Return codes used across the project. Functions return GH_OK (0) or a
 * negative code; GH_AGAIN means "not enough input yet, call again". */
enum {
    GH_OK = 0,
    GH_ERROR = -1,
    GH_AGAIN = -2,
    GH_DECLINED = -3,
};

struct gh_err {
    char file[256]; /* empty when the error has no file */
    int line;       /* 1-based; 0 when unknown */
    int col;        /* 1-based; 0 when unknown */
    char msg[512];
};

/* Fills <err> (which may be NULL) and returns GH_ERROR, so callers can write
 * `return gh_err_set(err, file, line, col, "...", ...);`. */
int gh_err_set(struct gh_err *err, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Formats <err> as "file:line:col: msg" (parts that are unknown are left out)
 * into <buf> of <size> bytes; returns <buf>. */
const char *gh_err_format(const struct gh_err *err, char *buf, size_t size);

#endif
