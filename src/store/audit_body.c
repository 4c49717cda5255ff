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

/* Whether the canonical form writes <s> (<n> bytes) as it is
 * (gh_audit__escape leaves it so). */
static bool plain(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
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

/* A member the compact form has as its <mark>: <key><value>", at most
 * 15 + 64 + 1 bytes (request_id) or 9 + 63 + 1 (node). */
#define MEMBER_MAX 96
struct member {
    char text[MEMBER_MAX];
    size_t len;
    char mark;
};

#define REQUEST_KEY ",\"request_id\":\""
#define NODE_KEY    ",\"node\":\""
_Static_assert(sizeof(REQUEST_KEY) + sizeof(((struct gh_store_audit_row *)0)->request_id) <=
                   MEMBER_MAX,
               "a request_id member fits");
_Static_assert(sizeof(NODE_KEY) + sizeof(((struct gh_store_audit_row *)0)->node) <= MEMBER_MAX,
               "a node member fits");

/* Sets <m> to <key><value>" when the value (at most <cap> bytes) needs no
 * escaping: false otherwise. */
static bool member_set(struct member *m, const char *key, size_t key_len, const char *value,
                       size_t cap, char mark)
{
    size_t n = strnlen(value, cap);

    if (!plain(value, n)) return false;
    memcpy(m->text, key, key_len);
    memcpy(m->text + key_len, value, n);
    m->text[key_len + n] = '"';
    m->len = key_len + n + 1;
    m->mark = mark;
    return true;
}

/* The members of <row> that can be marks, request_id before node, as the
 * canonical form writes them: those whose value needs no escaping (and
 * node only in format version 2). Returns their number. */
static size_t members(const struct gh_store_audit_row *row, struct member m[2])
{
    size_t n = 0;

    n += member_set(&m[n], REQUEST_KEY, sizeof(REQUEST_KEY) - 1, row->request_id,
                    sizeof(row->request_id), GH_STORE_AUDIT_MARK_REQUEST);
    if (row->node[0] != '\0')
        n += member_set(&m[n], NODE_KEY, sizeof(NODE_KEY) - 1, row->node, sizeof(row->node),
                        GH_STORE_AUDIT_MARK_NODE);
    return n;
}

const char *gh_store__audit_body_stored(const struct gh_store_audit_row *row, char *scratch,
                                        size_t *len)
{
    char buf[FRONT_MAX];
    struct member m[2];
    const char *at[2] = {NULL, NULL}, *rest, *end = row->body + row->body_len;
    size_t n = front(row, buf), nm = 0, out = 0;

    *len = row->body_len;
    if (n == 0 || n >= row->body_len || row->body[n] != ',' || memcmp(row->body, buf, n) != 0)
        return row->body;
    rest = row->body + n;
    /* A mark must be the only such byte: a body that holds one (never a
     * canonical body) is stored whole. */
    if (memchr(rest, GH_STORE_AUDIT_MARK_REQUEST, (size_t)(end - rest)) != NULL ||
        memchr(rest, GH_STORE_AUDIT_MARK_NODE, (size_t)(end - rest)) != NULL)
        return row->body;
    nm = members(row, m);
    /* From the second byte on: the compact form begins with ',' (a mark
     * first would read as a whole body). */
    for (size_t i = 0; i < nm; i++)
        at[i] = memmem(rest + 1, (size_t)(end - rest) - 1, m[i].text, m[i].len);
    /* The canonical form writes request_id before node; a body where a
     * node member comes first keeps its request_id whole. */
    if (nm == 2 && at[0] != NULL && at[1] != NULL && at[1] < at[0] + m[0].len) at[0] = NULL;
    for (size_t i = 0; i < nm; i++) {
        if (at[i] == NULL) continue;
        memcpy(scratch + out, rest, (size_t)(at[i] - rest));
        out += (size_t)(at[i] - rest);
        scratch[out++] = m[i].mark;
        rest = at[i] + m[i].len;
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

/* Appends the compact <stored> with its marks as their members: false
 * when a mark is not one of <row>'s (a column that needs escaping now) or
 * the body would not fit. */
static bool body_put_marked(struct gh_store_audit_row *row, const char *stored, size_t len)
{
    const char *end = stored + len;
    struct member m[2];
    size_t nm = members(row, m);

    while (stored < end) {
        const struct member *mk = NULL;
        size_t n = 0;
        while (stored + n < end && stored[n] != GH_STORE_AUDIT_MARK_REQUEST &&
               stored[n] != GH_STORE_AUDIT_MARK_NODE)
            n++;
        if (!body_put(row, stored, n)) return false;
        stored += n;
        if (stored == end) break;
        for (size_t i = 0; i < nm; i++)
            if (m[i].mark == *stored) mk = &m[i];
        if (mk == NULL || !body_put(row, mk->text, mk->len)) return false;
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
