/* The compact form of a stored audit body (audit_body.h). */
#include <stdint.h>
#include <string.h>

#include "core/str.h"
#include "core/swar.h"
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

/* Whether the canonical form writes <s> (<n> bytes) as it is
 * (gh_audit__escape leaves it so): no byte below 0x20, 0x7f, '"' or '\\'.
 * Eight bytes at a time: every stored event's values go through here. */
static bool plain(const char *s, size_t n)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t v = gh_swar_load8(s + i);
        if (gh_swar_below(v, 0x20) | gh_swar_has(v, 0x7f) | gh_swar_has(v, '"') |
            gh_swar_has(v, '\\'))
            return false;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') return false;
    }
    return true;
}

/* A column's value as the canonical form writes it, when that is the value
 * itself. */
static void put_value(struct front *f, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    if (!plain(s, n))
        f->bad = true;
    else
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

/* The stored side compares the body with the columns where they stand
 * (a gh_cursor along the body): no front or member is built, and each
 * value is looked at once (the committer does this for every event it
 * appends). take_value: the column <s> (at most <cap> bytes) next in the
 * body, as the canonical form writes a value it leaves as it is (plain). */
static bool take_value(struct gh_cursor *c, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    if (!plain(s, n)) return false;
    return gh_cursor_take(c, s, n);
}

#define TAKE_FIELD(c, lit, row, col)                                                               \
    (GH_CURSOR_TAKE_LIT(c, lit) && take_value((c), (row)->col, sizeof((row)->col)))

/* The length of the front <row>'s columns give, when <row>'s body begins
 * with it (the bytes front() would write); 0 when not. */
static size_t front_in_body(const struct gh_store_audit_row *row)
{
    struct gh_cursor c = {row->body, row->body + row->body_len};
    bool v2 = row->node[0] != '\0', ok;

    if (row->time_us < 0) return 0;
    ok = (v2 ? GH_CURSOR_TAKE_LIT(&c, "{\"v\":2,\"chain\":\"")
             : GH_CURSOR_TAKE_LIT(&c, "{\"v\":1,\"chain\":\"")) &&
         take_value(&c, row->chain, sizeof(row->chain)) && GH_CURSOR_TAKE_LIT(&c, "\",\"seq\":") &&
         gh_cursor_take_u64(&c, row->seq) && TAKE_FIELD(&c, ",\"id\":\"", row, id) &&
         GH_CURSOR_TAKE_LIT(&c, "\",\"time_us\":") &&
         gh_cursor_take_u64(&c, (uint64_t)row->time_us) &&
         TAKE_FIELD(&c, ",\"tenant\":\"", row, tenant_id) &&
         TAKE_FIELD(&c, "\",\"actor\":\"", row, actor) &&
         TAKE_FIELD(&c, "\",\"action\":\"", row, action) &&
         TAKE_FIELD(&c, "\",\"resource\":\"", row, resource) &&
         TAKE_FIELD(&c, "\",\"outcome\":\"", row, outcome) && GH_CURSOR_TAKE_LIT(&c, "\"");
    return ok ? (size_t)(c.p - row->body) : 0;
}

/* A member the compact form has as its <mark>: <key><value>", found where
 * the body has it. */
struct member {
    const char *at; /* NULL: not found, or a value that needs escaping */
    size_t len;
    char mark;
};

#define REQUEST_KEY ",\"request_id\":\""
#define NODE_KEY    ",\"node\":\""

/* The first <key><value>" in [from, end), <value> being the column (at
 * most <cap> bytes) as the canonical form writes it. */
static struct member find_member(const char *from, const char *end, const char *key, size_t key_len,
                                 const char *value, size_t cap, char mark)
{
    struct member m = {NULL, 0, mark};
    const char *k;

    while ((k = memmem(from, (size_t)(end - from), key, key_len)) != NULL) {
        struct gh_cursor c = {k + key_len, end};
        if (take_value(&c, value, cap) && GH_CURSOR_TAKE_LIT(&c, "\"")) {
            m.at = k;
            m.len = (size_t)(c.p - k);
            break;
        }
        from = k + 1;
    }
    return m;
}

const char *gh_store__audit_body_stored(const struct gh_store_audit_row *row, char *scratch,
                                        size_t *len)
{
    const char *rest, *end = row->body + row->body_len;
    struct member m[2];
    size_t n = front_in_body(row), out = 0;

    *len = row->body_len;
    if (n == 0 || n >= row->body_len || row->body[n] != ',') return row->body;
    rest = row->body + n;
    /* A mark must be the only such byte: a body that holds one (never a
     * canonical body) is stored whole. */
    if (memchr(rest, GH_STORE_AUDIT_MARK_REQUEST, (size_t)(end - rest)) != NULL ||
        memchr(rest, GH_STORE_AUDIT_MARK_NODE, (size_t)(end - rest)) != NULL)
        return row->body;
    /* From the second byte on: the compact form begins with ',' (a mark
     * first would read as a whole body). Node only in format version 2. */
    m[0] = find_member(rest + 1, end, REQUEST_KEY, sizeof(REQUEST_KEY) - 1, row->request_id,
                       sizeof(row->request_id), GH_STORE_AUDIT_MARK_REQUEST);
    m[1] = (struct member){NULL, 0, GH_STORE_AUDIT_MARK_NODE};
    if (row->node[0] != '\0')
        m[1] = find_member(rest + 1, end, NODE_KEY, sizeof(NODE_KEY) - 1, row->node,
                           sizeof(row->node), GH_STORE_AUDIT_MARK_NODE);
    /* The canonical form writes request_id before node; a body where a
     * node member comes first keeps its request_id whole. */
    if (m[0].at != NULL && m[1].at != NULL && m[1].at < m[0].at + m[0].len) m[0].at = NULL;
    for (size_t i = 0; i < 2; i++) {
        if (m[i].at == NULL) continue;
        memcpy(scratch + out, rest, (size_t)(m[i].at - rest));
        out += (size_t)(m[i].at - rest);
        scratch[out++] = m[i].mark;
        rest = m[i].at + m[i].len;
    }
    memcpy(scratch + out, rest, (size_t)(end - rest));
    *len = out + (size_t)(end - rest);
    return scratch;
}

/* Appends <s> (<n> bytes) to <row>'s body: false when it would not fit. */
static bool body_put(struct gh_store_audit_row *row, const char *s, size_t n)
{
    if (n > GH_STORE_AUDIT_BODY_MAX - row->body_len) return false;
    memcpy(row->body + row->body_len, s, n);
    row->body_len += n;
    return true;
}

/* Appends the member <mark> stands for, <key><column>", to <row>'s body:
 * false when <mark> is not one of <row>'s (node without a node column, a
 * column that needs escaping now) or the body would not fit. */
static bool body_put_member(struct gh_store_audit_row *row, char mark)
{
    const char *value = row->request_id;
    size_t cap = sizeof(row->request_id), n;
    bool ok;

    if (mark == GH_STORE_AUDIT_MARK_NODE) {
        if (row->node[0] == '\0') return false;
        value = row->node;
        cap = sizeof(row->node);
    }
    n = strnlen(value, cap);
    if (!plain(value, n)) return false;
    if (mark == GH_STORE_AUDIT_MARK_NODE)
        ok = body_put(row, NODE_KEY, sizeof(NODE_KEY) - 1);
    else
        ok = body_put(row, REQUEST_KEY, sizeof(REQUEST_KEY) - 1);
    return ok && body_put(row, value, n) && body_put(row, "\"", 1);
}

/* Appends the compact <stored> with its marks as their members: false
 * when a mark is not one of <row>'s or the body would not fit. */
static bool body_put_marked(struct gh_store_audit_row *row, const char *stored, size_t len)
{
    const char *end = stored + len;

    while (stored < end) {
        size_t n = 0;
        while (stored + n < end && stored[n] != GH_STORE_AUDIT_MARK_REQUEST &&
               stored[n] != GH_STORE_AUDIT_MARK_NODE)
            n++;
        if (!body_put(row, stored, n)) return false;
        stored += n;
        if (stored == end) break;
        if (!body_put_member(row, *stored)) return false;
        stored++;
    }
    return true;
}

bool gh_store__audit_body_expand(struct gh_store_audit_row *row, const char *stored, size_t len)
{
    bool ok = false;

    /* The front goes straight into the body (it fits: FRONT_MAX); <stored>
     * is the engine's memory, never the row's. */
    if (len > 0 && stored[0] == ',') {
        row->body_len = front(row, row->body);
        ok = row->body_len > 0 && body_put_marked(row, stored, len);
        if (ok) {
            row->body[row->body_len] = '\0';
            return true;
        }
    } else if (len <= GH_STORE_AUDIT_BODY_MAX) {
        ok = true;
    }
    /* Whole, or a compact body that cannot come back: <stored> as far as
     * it fits. */
    if (len > GH_STORE_AUDIT_BODY_MAX) len = GH_STORE_AUDIT_BODY_MAX;
    memcpy(row->body, stored, len);
    row->body[len] = '\0';
    row->body_len = len;
    return ok;
}
