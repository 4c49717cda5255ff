/* The compact form of a stored audit body (audit_body.h). */
#include <stdint.h>
#include <string.h>

#include "core/str.h"
#include "store/audit_body.h"

/* The front's literals and values: at most 130 + 31 + 20 + 36 + 20 + 31 +
 * 271 + 47 + 255 + 7 bytes. */
#define FRONT_MAX 1024

struct front {
    char *out;
    size_t len;
    bool bad; /* a value the canonical form would escape */
};

static void put(struct front *f, const char *s, size_t n)
{
    memcpy(f->out + f->len, s, n);
    f->len += n;
}

#define PUT_LIT(f, lit) put((f), (lit), sizeof(lit) - 1)

/* A column's value as the canonical form writes it, when that is the value
 * itself (gh_audit__escape leaves it as it is). */
static void put_value(struct front *f, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
            f->bad = true;
            return;
        }
    }
    put(f, s, n);
}

static void put_u64(struct front *f, uint64_t v)
{
    char d[20];
    size_t start = gh_u64_dec(v, d);

    put(f, d + start, 20 - start);
}

#define PUT_FIELD(f, lit, row, col)                                                                \
    (PUT_LIT(f, lit), put_value((f), (row)->col, sizeof((row)->col)))

/* Writes the front <row>'s columns give at <out> (FRONT_MAX bytes);
 * returns its length, 0 when it would need escaping. */
static size_t front(const struct gh_store_audit_row *row, char *out)
{
    struct front f = {out, 0, false};

    /* The canonical form writes a negative time as 0: such a row's front
     * would not be its columns'. */
    if (row->time_us < 0) return 0;
    /* gh_audit_canonical: format version 2 when the event names its node. */
    if (row->node[0] != '\0')
        PUT_LIT(&f, "{\"v\":2,\"chain\":\"");
    else
        PUT_LIT(&f, "{\"v\":1,\"chain\":\"");
    put_value(&f, row->chain, sizeof(row->chain));
    PUT_LIT(&f, "\",\"seq\":");
    put_u64(&f, row->seq);
    PUT_FIELD(&f, ",\"id\":\"", row, id);
    PUT_LIT(&f, "\",\"time_us\":");
    put_u64(&f, (uint64_t)row->time_us);
    PUT_FIELD(&f, ",\"tenant\":\"", row, tenant_id);
    PUT_FIELD(&f, "\",\"actor\":\"", row, actor);
    PUT_FIELD(&f, "\",\"action\":\"", row, action);
    PUT_FIELD(&f, "\",\"resource\":\"", row, resource);
    PUT_FIELD(&f, "\",\"outcome\":\"", row, outcome);
    PUT_LIT(&f, "\"");
    return f.bad ? 0 : f.len;
}

_Static_assert(FRONT_MAX >= 130 + GH_STORE_AUDIT_CHAIN_SIZE * 2 + 20 + 20 +
                                sizeof(((struct gh_store_audit_row *)0)->id) +
                                sizeof(((struct gh_store_audit_row *)0)->actor) +
                                sizeof(((struct gh_store_audit_row *)0)->action) +
                                sizeof(((struct gh_store_audit_row *)0)->resource) +
                                sizeof(((struct gh_store_audit_row *)0)->outcome),
               "the front of the longest row fits");
_Static_assert(FRONT_MAX <= GH_STORE_AUDIT_BODY_MAX, "a front fits in a row's body");

size_t gh_store__audit_body_cut(const struct gh_store_audit_row *row)
{
    char buf[FRONT_MAX];
    size_t n = front(row, buf);

    if (n == 0 || n >= row->body_len || row->body[n] != ',' || memcmp(row->body, buf, n) != 0)
        return 0;
    return n;
}

bool gh_store__audit_body_expand(struct gh_store_audit_row *row, const char *stored, size_t len)
{
    size_t n = 0;
    bool ok = true;

    /* The front goes straight into the body (it fits: FRONT_MAX); <stored>
     * is the engine's memory, never the row's. */
    if (len > 0 && stored[0] == ',') {
        n = front(row, row->body);
        if (n == 0 || n + len > GH_STORE_AUDIT_BODY_MAX) {
            n = 0;
            ok = false;
        }
    }
    if (n + len > GH_STORE_AUDIT_BODY_MAX) {
        len = GH_STORE_AUDIT_BODY_MAX - n;
        ok = false;
    }
    memcpy(row->body + n, stored, len);
    row->body[n + len] = '\0';
    row->body_len = n + len;
    return ok;
}
