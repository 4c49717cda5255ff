/* PostgreSQL array literals for batch parameters, COPY's binary input and
 * SQL text with quoted values (see pg_array.h). */
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

/* <v> in the <n> bytes at <p>, most significant first (network order). */
static void put_be(char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (char)(v & 0xff);
}

void gh_pg_copy_reset(struct gh_pg_array *a)
{
    /* Signature, then flags 0 (no OIDs) and no header extension. */
    static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

    a->len = 0;
    a->n = 0;
    a->oom = false;
    if (!reserve(a, sizeof(header))) return;
    memcpy(a->p, header, sizeof(header));
    a->len = sizeof(header);
}

void gh_pg_copy_row(struct gh_pg_array *a, unsigned nfields)
{
    if (!reserve(a, 2)) return;
    put_be(a->p + a->len, nfields, 2);
    a->len += 2;
    a->n++;
}

void gh_pg_copy_text(struct gh_pg_array *a, const char *s, size_t len)
{
    if (len > INT32_MAX) {
        a->oom = true; /* not representable: reported by gh_pg_copy_end */
        return;
    }
    if (!reserve(a, 4 + len)) return;
    put_be(a->p + a->len, len, 4);
    memcpy(a->p + a->len + 4, s, len);
    a->len += 4 + len;
}

void gh_pg_copy_i64(struct gh_pg_array *a, int64_t v)
{
    if (!reserve(a, 12)) return;
    put_be(a->p + a->len, 8, 4);
    put_be(a->p + a->len + 4, (uint64_t)v, 8);
    a->len += 12;
}

const char *gh_pg_copy_end(struct gh_pg_array *a)
{
    if (!reserve(a, 2)) return NULL;
    put_be(a->p + a->len, 0xffff, 2); /* a field count of -1 */
    a->len += 2;
    return a->p;
}

void gh_pg_sql_reset(struct gh_pg_array *a)
{
    a->len = 0;
    a->n = 0;
    a->oom = false;
    if (reserve(a, 0)) a->p[0] = '\0';
}

void gh_pg_sql_raw(struct gh_pg_array *a, const char *s)
{
    size_t len = strlen(s);

    if (!reserve(a, len)) return;
    memcpy(a->p + a->len, s, len);
    a->len += len;
    a->p[a->len] = '\0';
}

void gh_pg_sql_quote(struct gh_pg_array *a, const char *s)
{
    size_t len = strlen(s);

    /* Worst case: every byte doubled, E, two quotes. */
    if (!reserve(a, 2 * len + 3)) return;
    a->p[a->len++] = 'E';
    a->p[a->len++] = '\'';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' || s[i] == '\'') a->p[a->len++] = s[i];
        a->p[a->len++] = s[i];
    }
    a->p[a->len++] = '\'';
    a->p[a->len] = '\0';
}

void gh_pg_sql_i64(struct gh_pg_array *a, int64_t v)
{
    char num[24];

    snprintf(num, sizeof(num), "%" PRId64, v);
    gh_pg_sql_raw(a, num);
}

const char *gh_pg_sql_end(struct gh_pg_array *a)
{
    return reserve(a, 0) ? a->p : NULL;
}
