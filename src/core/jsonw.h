/* A small JSON writer into a caller's fixed buffer, for the hot path (access
 * log lines, error bodies). It never allocates; when the buffer is too small
 * it sets <overflow> and stops writing, and the caller decides what to do.
 * Parsing JSON is jansson's job (later parts), not this file's. */
#ifndef GH_CORE_JSONW_H
#define GH_CORE_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

struct gh_jsonw {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
};

static inline void gh_jsonw_init(struct gh_jsonw *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = false;
}

/* Appends bytes as they are (punctuation, keys known to be safe). */
void gh_jsonw_raw(struct gh_jsonw *w, const char *p, size_t n);
#define gh_jsonw_lit(w, s) gh_jsonw_raw((w), (s), sizeof(s) - 1)
/* Appends <s> as a quoted JSON string, escaping '"', '\\' and control
 * bytes; bytes >= 0x80 that are not valid UTF-8 are written as \u00XX so
 * the output is always valid JSON. */
void gh_jsonw_str(struct gh_jsonw *w, gh_str s);
void gh_jsonw_u64(struct gh_jsonw *w, uint64_t v);
/* Appends <ns> nanoseconds as milliseconds with three decimals ("12.345"). */
void gh_jsonw_ms3(struct gh_jsonw *w, uint64_t ns);

#endif
