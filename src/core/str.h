/* Byte slices: a pointer and a length, never NUL-terminated by contract.
 * The HTTP parser hands out slices into the connection's read buffer instead
 * of copies; a slice lives as long as the buffer it points into. */
#ifndef GH_CORE_STR_H
#define GH_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

typedef struct gh_str {
    const char *ptr;
    size_t len;
} gh_str;

#define GH_STR_LIT(s) ((gh_str){(s), sizeof(s) - 1})
#define GH_STR_NULL   ((gh_str){NULL, 0})

static inline gh_str gh_str_make(const char *p, size_t n)
{
    return (gh_str){p, n};
}

static inline gh_str gh_str_cstr(const char *s)
{
    return (gh_str){s, s ? strlen(s) : 0};
}

static inline bool gh_str_eq(gh_str a, gh_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ASCII case-insensitive comparison: header names and tokens (RFC 9110 §5.1). */
/* Two optional C strings: equal when both are NULL or both hold the same
 * bytes (a config's unset key against a set one). */
static inline bool gh_cstr_same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static inline bool gh_str_caseeq(gh_str a, gh_str b)
{
    return a.len == b.len && (a.len == 0 || strncasecmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool gh_str_caseeq_lit(gh_str a, const char *lit)
{
    return gh_str_caseeq(a, gh_str_cstr(lit));
}

static inline bool gh_str_has_prefix(gh_str s, gh_str prefix)
{
    return s.len >= prefix.len && memcmp(s.ptr, prefix.ptr, prefix.len) == 0;
}

/* Writes <v> in decimal at the end of <out> (no NUL) and returns where it
 * starts: the digits are out[start..20). No snprintf: hot paths use it. */
static inline size_t gh_u64_dec(uint64_t v, char out[20])
{
    size_t i = 20;
    do {
        out[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return i;
}

/* A reading position in the bytes [p, end), for readers that match a
 * known layout in place (the audit verifier's and the store's compact
 * form's readings of a canonical body). */
struct gh_cursor {
    const char *p, *end;
};

/* Whether the bytes at <c> begin with <s> (<n> bytes): if so, <c> moves
 * past them. */
static inline bool gh_cursor_take(struct gh_cursor *c, const char *s, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0) return false;
    c->p += n;
    return true;
}

#define GH_CURSOR_TAKE_LIT(c, lit) gh_cursor_take((c), (lit), sizeof(lit) - 1)

/* The same for <v> in decimal (gh_u64_dec). */
static inline bool gh_cursor_take_u64(struct gh_cursor *c, uint64_t v)
{
    char d[20];
    size_t start = gh_u64_dec(v, d);

    return gh_cursor_take(c, d + start, 20 - start);
}

/* <s> cut to fit <size> bytes (NUL included) on a UTF-8 character
 * boundary, so a message quoting client input stays valid UTF-8 (jansson
 * refuses anything else). Returns <s> itself when it fits, else <buf>. */
static inline const char *gh_utf8_clip(const char *s, char *buf, size_t size)
{
    size_t n = strlen(s);
    if (n < size) return s;
    n = size - 1;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

#endif
