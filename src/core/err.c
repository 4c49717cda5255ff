/* Error values with a file:line:col place. */
#include "core/err.h"

#include <stdio.h>
#include <string.h>

int gh_err_set(struct gh_err *err, const char *file, int line, int col, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL) return GH_ERROR;
    snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
    err->line = line;
    err->col = col;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return GH_ERROR;
}

const char *gh_err_format(const struct gh_err *err, char *buf, size_t size)
{
    if (err->file[0] && err->line > 0 && err->col > 0)
        snprintf(buf, size, "%s:%d:%d: %s", err->file, err->line, err->col, err->msg);
    else if (err->file[0] && err->line > 0)
        snprintf(buf, size, "%s:%d: %s", err->file, err->line, err->msg);
    else if (err->file[0])
        snprintf(buf, size, "%s: %s", err->file, err->msg);
    else
        snprintf(buf, size, "%s", err->msg);
    return buf;
}
