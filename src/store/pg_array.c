/* PostgreSQL array literals for batch parameters (see pg_array.h). */
#include "store/pg_array.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for <more> bytes plus the closing "}" and NUL. */
static bool reserve(struct gh_pg_array *a, size_t more)
{
    size_t need;
    char *p;

    if (a->oom) return false;
    need = a->len + more + 2;
    if (need <= a->cap) return true;
    size_t cap = a->cap ? a->cap : 4096;
    while (cap < need)
        cap *= 2;
    p = realloc(a->p, cap);
    if (p == NULL) {
        a->oom = true;
        return false;
    }
    a->p = p;
    a->cap = cap;
    return true;
}

void gh_pg_array_reset(struct gh_pg_array *a)
{
    a->len = 0;
    a->n = 0;
    a->oom = false;
    if (reserve(a, 1)) a->p[a->len++] = '{';
}

void gh_pg_array_text(struct gh_pg_array *a, const char *s, size_t len)
{
    /* Worst case: every byte escaped, two quotes and a comma. */
    if (!reserve(a, 2 * len + 3)) return;
    if (a->n++ > 0) a->p[a->len++] = ',';
    a->p[a->len++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') a->p[a->len++] = '\\';
        a->p[a->len++] = s[i];
    }
    a->p[a->len++] = '"';
}

void gh_pg_array_i64(struct gh_pg_array *a, int64_t v)
{
    char num[24];
    int k = snprintf(num, sizeof(num), "%" PRId64, v);

    if (!reserve(a, (size_t)k + 1)) return;
    if (a->n++ > 0) a->p[a->len++] = ',';
    memcpy(a->p + a->len, num, (size_t)k);
    a->len += (size_t)k;
}

const char *gh_pg_array_end(struct gh_pg_array *a)
{
    if (!reserve(a, 0)) return NULL;
    a->p[a->len++] = '}';
    a->p[a->len] = '\0';
    return a->p;
}

void gh_pg_array_free(struct gh_pg_array *a)
{
    free(a->p);
    memset(a, 0, sizeof(*a));
}

void gh_pg_copy_reset(struct gh_pg_array *a)
{
    a->len = 0;
    a->n = 0;
    a->oom = false;
}

static bool copy_special(char ch)
{
    return ch == '\\' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* Runs without a special byte are found with a local cursor and copied
 * whole: an audit body is a kilobyte with hardly an escape, and writing
 * byte by byte through a->p[a->len++] made the compiler reload and store
 * a->len for every byte (a char store may alias it), a fifth of the audit
 * writer's time on PostgreSQL while the server waited for the COPY. */
void gh_pg_copy_text(struct gh_pg_array *a, const char *s, size_t len, bool last)
{
    char *out;
    size_t i = 0;

    if (!reserve(a, 2 * len + 1)) return;
    out = a->p + a->len;
    while (i < len) {
        size_t run = i;
        while (run < len && !copy_special(s[run]))
            run++;
        memcpy(out, s + i, run - i);
        out += run - i;
        i = run;
        if (i < len) {
            char ch = s[i++];
            *out++ = '\\';
            *out++ = ch == '\t' ? 't' : ch == '\n' ? 'n' : ch == '\r' ? 'r' : ch;
        }
    }
    *out++ = last ? '\n' : '\t';
    a->len = (size_t)(out - a->p);
}

void gh_pg_copy_i64(struct gh_pg_array *a, int64_t v, bool last)
{
    char num[24];
    int k = snprintf(num, sizeof(num), "%" PRId64, v);

    gh_pg_copy_text(a, num, (size_t)k, last);
}

const char *gh_pg_copy_data(const struct gh_pg_array *a)
{
    return a->oom ? NULL : (a->p ? a->p : "");
}
