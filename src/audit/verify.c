/* The audit verifier (verify.h), in two passes, with the checkpoints and
 * keys loaded first:
 * 1. a scan of every row in commit (rowid) order, which reads the table
 *    sequentially (a walk chain by chain jumps around it, at half the
 *    speed), keeping each chain's state in a hash table. A chain whose rows
 *    come as seq 1, 2, 3 ... with every check passing is intact: in it,
 *    commit order is seq order, so the checks are those of pass 2;
 * 2. a walk in seq order of each chain that failed anything in pass 1 (or
 *    has checkpoints and no rows), which finds and names its FIRST problem
 *    (looking a few rows further to tell a deletion from a reordering).
 * Pass 1 runs on two threads: the caller's reads the rows from the store
 * into batches, a second one checks them (hashing costs about as much as
 * reading), so each core does half the work. Nothing is allocated per row:
 * the batches are reused, the body is read in place, and SHA-256 runs on
 * the stack. */
#include "audit/verify.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPENSSL_SUPPRESS_DEPRECATED /* the low-level SHA-256: see event.c */
#include <openssl/sha.h>

#include "audit/chain.h"
#include "audit/checkpoint.h"
#include "audit/event.h"

#define MAX_KEYS 256 /* audit keys are rotated rarely: more are ignored (NEEDSWORK: page) */

struct cp {
    struct gh_store_audit_checkpoint c;
    bool sig_ok;
};

/* A chain's state in pass 1. */
struct chain {
    char name[GH_STORE_AUDIT_CHAIN_SIZE]; /* "" = a free slot */
    uint64_t base;                        /* the archived head: hot rows start after it */
    uint64_t events, head;
    uint8_t prev[32];
    size_t cp, cp_end; /* its checkpoints not yet reached: cps[cp..cp_end) */
    size_t cp_first;
    bool suspect; /* something failed: pass 2 decides what */
};

struct verifier {
    gh_audit_verify_cb cb;
    void *arg;
    /* where chains start when their oldest events are archived, by chain */
    const struct gh_audit_verify_start *starts;
    size_t nstarts;
    size_t bad;
    /* pass 1: chains by name (open addressing, power of two) */
    struct chain *chains;
    size_t nchains, slots;
    struct chain *last;           /* the chain of the previous row: usually the same */
    uint64_t orphans, orphan_seq; /* rows whose chain name is empty or invalid */
    /* reports, emitted in chain order at the end */
    struct gh_audit_chain_report *reports;
    size_t nreports, reports_cap;
    /* keys */
    struct gh_store_audit_key keys[MAX_KEYS];
    EVP_PKEY *pub[MAX_KEYS];
    size_t nkeys;
    /* every checkpoint, in (chain, seq) order */
    struct cp *cps;
    size_t ncps, cap, next_cp; /* next_cp: the first not yet matched */
    /* the chain being walked */
    bool open;
    struct gh_audit_chain_report r;
    uint8_t prev[32];
    size_t chain_cp; /* the first checkpoint of this chain */
    /* after a row whose body says another seq: looking for the event that
     * should be at <want> further on (reordered), or not (deleted) */
    uint64_t want;
    bool hash_bad_pending; /* a hash mismatch: is the next row's body at seq - 1? */
    struct gh_audit_event ev;
};

const char *gh_audit_problem_name(enum gh_audit_problem p)
{
    switch (p) {
    case GH_AUDIT_INTACT: return "intact";
    case GH_AUDIT_CHANGED: return "changed";
    case GH_AUDIT_DELETED: return "deleted";
    case GH_AUDIT_INSERTED: return "inserted";
    case GH_AUDIT_REORDERED: return "reordered";
    case GH_AUDIT_BAD_SIGNATURE: return "bad checkpoint signature";
    case GH_AUDIT_TRUNCATED: return "truncated";
    }
    return "?";
}

static void problem(struct verifier *v, enum gh_audit_problem p, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(struct verifier *v, enum gh_audit_problem p, uint64_t seq, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (v->r.problem != GH_AUDIT_INTACT) return; /* the first one only */
    v->r.problem = p;
    v->r.seq = seq;
    n = snprintf(v->r.reason, sizeof(v->r.reason), "%s: ", gh_audit_problem_name(p));
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(v->r.reason))
        vsnprintf(v->r.reason + n, sizeof(v->r.reason) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* The archived head of <name>, or NULL (the chain starts at seq 1). */
static const struct gh_audit_verify_start *start_of(const struct verifier *v, const char *name)
{
    size_t lo = 0, hi = v->nstarts;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->starts[mid].chain, name);
        if (c == 0) return &v->starts[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Sets *base and <prev> from <name>'s archived head (0 and zeros when none). */
static void start_state(const struct verifier *v, const char *name, uint64_t *base,
                        uint8_t prev[32])
{
    const struct gh_audit_verify_start *s = start_of(v, name);

    *base = 0;
    memset(prev, 0, 32);
    if (s != NULL && gh_audit_unhex(s->hash, prev) == GH_OK) *base = s->seq;
}

/* ---- Loading keys and checkpoints -------------------------------------------------- */

static int load_cp(const struct gh_store_audit_checkpoint *c, void *arg)
{
    struct verifier *v = arg;
    struct cp *cp;

    if (v->ncps == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 256;
        struct cp *p = realloc(v->cps, cap * sizeof(*p));
        if (p == NULL) return GH_ERROR;
        v->cps = p;
        v->cap = cap;
    }
    cp = &v->cps[v->ncps++];
    cp->c = *c;
    cp->sig_ok = false;
    for (size_t i = 0; i < v->nkeys; i++)
        if (v->pub[i] != NULL && strcmp(v->keys[i].key_id, c->key_id) == 0)
            cp->sig_ok = gh_audit_checkpoint_verify(v->pub[i], c);
    return GH_OK;
}

static int load(struct verifier *v, struct gh_store *st, const char *chain, struct gh_err *err)
{
    struct gh_err scratch;
    int rc;

    rc = gh_store_audit_keys_list(st, v->keys, MAX_KEYS, &v->nkeys, err);
    if (rc != GH_OK) return rc;
    /* A key that does not load verifies nothing: its checkpoints fail. */
    for (size_t i = 0; i < v->nkeys; i++)
        v->pub[i] = gh_audit_key_load(v->keys[i].public_pem, false, &scratch);
    rc = gh_store_audit_checkpoints_walk(st, chain, 0, 0, load_cp, v, err);
    if (rc != GH_OK && err->msg[0] == '\0') gh_err_set(err, NULL, 0, 0, "audit: out of memory");
    return rc;
}

/* ---- Reports ------------------------------------------------------------------------ */

static void add_report(struct verifier *v, const struct gh_audit_chain_report *r)
{
    if (v->nreports == v->reports_cap) {
        size_t cap = v->reports_cap ? 2 * v->reports_cap : 16;
        struct gh_audit_chain_report *p = realloc(v->reports, cap * sizeof(*p));
        if (p == NULL) { /* reported at once rather than lost */
            if (r->problem != GH_AUDIT_INTACT) v->bad++;
            v->cb(r, v->arg);
            return;
        }
        v->reports = p;
        v->reports_cap = cap;
    }
    v->reports[v->nreports++] = *r;
}

static int by_chain(const void *a, const void *b)
{
    return strcmp(((const struct gh_audit_chain_report *)a)->chain,
                  ((const struct gh_audit_chain_report *)b)->chain);
}

static void emit_reports(struct verifier *v)
{
    qsort(v->reports, v->nreports, sizeof(*v->reports), by_chain);
    for (size_t i = 0; i < v->nreports; i++) {
        if (v->reports[i].problem != GH_AUDIT_INTACT) v->bad++;
        v->cb(&v->reports[i], v->arg);
    }
}

/* ---- Pass 2: one chain in seq order -------------------------------------------------- */

static void chain_open(struct verifier *v, const char *chain)
{
    memset(&v->r, 0, sizeof(v->r));
    snprintf(v->r.chain, sizeof(v->r.chain), "%s", chain);
    start_state(v, chain, &v->r.archived, v->prev);
    v->r.head = v->r.archived;
    v->want = 0;
    v->hash_bad_pending = false;
    v->chain_cp = v->next_cp;
    v->open = true;
}

/* Ends the open chain: checkpoints beyond its head, pending diagnoses. */
static void chain_close(struct verifier *v)
{
    size_t i = v->chain_cp;

    if (!v->open) return;
    if (v->want != 0)
        problem(v, GH_AUDIT_DELETED, v->want,
                "the event with seq %" PRIu64 " is missing and the later ones renumbered", v->want);
    while (i < v->ncps && strcmp(v->cps[i].c.chain, v->r.chain) == 0)
        i++;
    v->r.checkpoints = i - v->chain_cp;
    if (i > v->chain_cp && v->cps[i - 1].c.seq > v->r.head)
        problem(v, GH_AUDIT_TRUNCATED, v->r.head + 1,
                "events from seq %" PRIu64 " are gone, but checkpoint %" PRIu64 " signed them",
                v->r.head + 1, v->cps[i - 1].c.seq);
    v->next_cp = i;
    add_report(v, &v->r);
    v->open = false;
}

/* Chains that have checkpoints but no events left, up to <chain> (NULL: all). */
static void checkpoint_only_chains(struct verifier *v, const char *chain)
{
    while (v->next_cp < v->ncps &&
           (chain == NULL || strcmp(v->cps[v->next_cp].c.chain, chain) < 0)) {
        chain_open(v, v->cps[v->next_cp].c.chain);
        chain_close(v);
    }
}

/* The columns of <row> against the body parsed into <ev>. */
static const char *column_differs(const struct gh_store_audit_row *row,
                                  const struct gh_audit_event *ev)
{
    if (strcmp(row->id, ev->id) != 0) return "id";
    if (row->time_us != ev->time_us) return "time_us";
    if (strcmp(row->tenant_id, ev->tenant) != 0) return "tenant_id";
    if (strcmp(row->actor, ev->actor) != 0) return "actor";
    if (strcmp(row->action, ev->action) != 0) return "action";
    if (strcmp(row->resource, ev->resource) != 0) return "resource";
    if (strcmp(row->outcome, gh_audit_outcome_name(ev->outcome)) != 0) return "outcome";
    if (strcmp(row->request_id, ev->request_id) != 0) return "request_id";
    if (strcmp(row->node, ev->node) != 0) return "node";
    return NULL;
}

/* After the first problem, a few rows more can say what it was. */
static void diagnose(struct verifier *v, const struct gh_store_audit_row *row)
{
    bool parsed = gh_audit_canonical_parse(row->body, row->body_len, &v->ev) == GH_OK;

    if (v->hash_bad_pending) {
        /* The row after a bad hash holds the event of the seq before it:
         * the bad one was slipped in, the later ones renumbered. */
        uint64_t at = v->r.seq;
        v->hash_bad_pending = false;
        if (parsed && v->ev.seq + 1 == row->seq && row->seq == at + 1) {
            v->r.problem = GH_AUDIT_INTACT;
            problem(v, GH_AUDIT_INSERTED, at,
                    "the event at seq %" PRIu64 " is not the gateway's (the later ones were "
                    "renumbered)",
                    at);
        }
        return;
    }
    if (v->want != 0 && parsed && v->ev.seq == v->want) {
        uint64_t want = v->want;
        v->want = 0;
        problem(v, GH_AUDIT_REORDERED, want,
                "the event with seq %" PRIu64 " is stored at seq %" PRIu64, want, row->seq);
    }
}

static int on_row(const struct gh_store_audit_row *row, void *arg)
{
    struct verifier *v = arg;
    struct gh_audit_event *ev = &v->ev;
    uint64_t expect;
    uint8_t h[32];
    char hex[65];
    const char *col;
    SHA256_CTX sha;

    if (!v->open || strcmp(row->chain, v->r.chain) != 0) {
        chain_close(v);
        checkpoint_only_chains(v, row->chain);
        chain_open(v, row->chain);
    }
    v->r.events++;
    if (row->seq > v->r.head) v->r.head = row->seq;
    if (v->r.problem != GH_AUDIT_INTACT || v->want != 0) {
        if (v->want != 0 || v->hash_bad_pending) diagnose(v, row);
        return GH_OK;
    }
    expect = v->r.archived + v->r.events; /* rows come in seq order from 1, or after the archive */
    if (row->damaged) {
        problem(v, GH_AUDIT_CHANGED, row->seq,
                "a column of seq %" PRIu64 " is not readable as written (too long, NUL or NULL)",
                row->seq);
        return GH_OK;
    }
    if (row->seq != expect) {
        problem(v, GH_AUDIT_DELETED, expect,
                "seq %" PRIu64 " is missing (the next event stored is seq %" PRIu64 ")", expect,
                row->seq);
        return GH_OK;
    }
    if (gh_audit_canonical_parse(row->body, row->body_len, ev) != GH_OK) {
        problem(v, GH_AUDIT_CHANGED, row->seq, "the body is not a canonical event");
        return GH_OK;
    }
    if (strcmp(ev->chain, row->chain) != 0) {
        problem(v, GH_AUDIT_INSERTED, row->seq,
                "the event stored at seq %" PRIu64 " is of chain %s", row->seq, ev->chain);
        return GH_OK;
    }
    if (ev->seq > row->seq) {
        /* The event of this seq is elsewhere (reordered) or gone (deleted):
         * the rows after this one tell. */
        v->want = row->seq;
        return GH_OK;
    }
    if (ev->seq < row->seq) {
        problem(v, GH_AUDIT_INSERTED, ev->seq,
                "%" PRIu64 " event(s) at seq %" PRIu64 "..%" PRIu64
                " are not the gateway's (the event of seq %" PRIu64 " is stored at %" PRIu64 ")",
                row->seq - ev->seq, ev->seq, row->seq - 1, ev->seq, row->seq);
        return GH_OK;
    }
    if ((col = column_differs(row, ev)) != NULL) {
        problem(v, GH_AUDIT_CHANGED, row->seq, "column %s differs from the body", col);
        return GH_OK;
    }
    SHA256_Init(&sha);
    SHA256_Update(&sha, v->prev, 32);
    SHA256_Update(&sha, row->body, row->body_len);
    SHA256_Final(h, &sha);
    gh_audit_hex(h, hex);
    if (memcmp(hex, row->hash, 65) != 0) {
        problem(v, GH_AUDIT_CHANGED, row->seq,
                "the hash does not match (this event, or the one before it together with its "
                "hash, was rewritten)");
        v->hash_bad_pending = true;
        return GH_OK;
    }
    /* Checkpoints at this seq: signed, and naming this very hash. */
    while (v->next_cp < v->ncps && strcmp(v->cps[v->next_cp].c.chain, row->chain) == 0 &&
           v->cps[v->next_cp].c.seq <= row->seq) {
        const struct cp *cp = &v->cps[v->next_cp++];
        if (!cp->sig_ok) {
            problem(v, GH_AUDIT_BAD_SIGNATURE, cp->c.seq,
                    "checkpoint %" PRIu64 " does not verify with audit key %s", cp->c.seq,
                    cp->c.key_id);
            break;
        }
        if (cp->c.seq == row->seq && strcmp(cp->c.hash, hex) != 0) {
            problem(v, GH_AUDIT_CHANGED, cp->c.seq,
                    "the chain up to seq %" PRIu64 " was rewritten (its hash is not the one "
                    "checkpoint %" PRIu64 " signed)",
                    cp->c.seq, cp->c.seq);
            break;
        }
    }
    memcpy(v->prev, h, 32);
    return GH_OK;
}

/* ---- Pass 1: every row in commit order --------------------------------------------- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct chain *slot_of(struct chain *t, size_t slots, const char *name)
{
    size_t i = (size_t)name_hash(name) & (slots - 1);

    while (t[i].name[0] != '\0' && strcmp(t[i].name, name) != 0)
        i = (i + 1) & (slots - 1);
    return &t[i];
}

/* The first checkpoint of <name> in the sorted list (or where it would be). */
static size_t cp_lower_bound(const struct verifier *v, const char *name)
{
    size_t lo = 0, hi = v->ncps;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v->cps[mid].c.chain, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The state of chain <name>, created on first sight; NULL when out of memory. */
static struct chain *chain_get(struct verifier *v, const char *name)
{
    struct chain *c;

    if (v->last != NULL && strcmp(v->last->name, name) == 0) return v->last;
    if (2 * (v->nchains + 1) > v->slots) { /* grow: load stays under one half */
        size_t slots = v->slots ? 2 * v->slots : 64;
        struct chain *t = calloc(slots, sizeof(*t));
        if (t == NULL) return NULL;
        for (size_t i = 0; i < v->slots; i++)
            if (v->chains[i].name[0] != '\0') *slot_of(t, slots, v->chains[i].name) = v->chains[i];
        free(v->chains);
        v->chains = t;
        v->slots = slots;
    }
    c = slot_of(v->chains, v->slots, name);
    if (c->name[0] == '\0') {
        snprintf(c->name, sizeof(c->name), "%s", name);
        start_state(v, name, &c->base, c->prev);
        c->head = c->base;
        c->cp_first = c->cp = cp_lower_bound(v, name);
        c->cp_end = c->cp;
        while (c->cp_end < v->ncps && strcmp(v->cps[c->cp_end].c.chain, name) == 0)
            c->cp_end++;
        v->nchains++;
    }
    v->last = c;
    return c;
}

/* ---- Pass 1's reading of a body --------------------------------------------------- */

struct cur {
    const char *p, *end;
};

static bool lit(struct cur *c, const char *s, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0) return false;
    c->p += n;
    return true;
}

#define LIT(c, s) lit((c), (s), sizeof(s) - 1)

/* A string member whose text must equal <want>: 1 equal, 0 not, -1 it has
 * escapes (the strict parser decides). */
static int str_eq(struct cur *c, const char *want)
{
    const char *q = memchr(c->p, '"', (size_t)(c->end - c->p));
    size_t n = strlen(want);

    if (q == NULL) return 0;
    if (memchr(c->p, '\\', (size_t)(q - c->p)) != NULL) return -1;
    if ((size_t)(q - c->p) != n || memcmp(c->p, want, n) != 0) return 0;
    c->p = q + 1;
    return 1;
}

/* Skips a string member's text and its closing quote (escapes allowed). */
static bool str_skip(struct cur *c)
{
    for (;;) {
        const char *q = memchr(c->p, '"', (size_t)(c->end - c->p));
        size_t bs = 0;
        if (q == NULL) return false;
        while (q - bs > c->p && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        c->p = q + 1;
        if (bs % 2 == 0) return true;
    }
}

static bool u64_eq(struct cur *c, uint64_t want)
{
    char d[20];
    size_t start = gh_u64_dec(want, d);

    return lit(c, d + start, 20 - start);
}

/* Does a version-2 body end with the row's node, as its last member
 * (`,"node":"<node>"}`)? 1 yes, -1 undecided (a node that would need
 * escapes, or not at the end: the strict parser decides). */
static int node_matches(const struct gh_store_audit_row *row)
{
    static const char key[] = ",\"node\":\"";
    size_t n = strnlen(row->node, sizeof(row->node)), klen = sizeof(key) - 1;
    const char *tail;

    if (row->body_len < klen + n + 2) return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)row->node[i] < 0x20 || row->node[i] == '"' || row->node[i] == '\\' ||
            row->node[i] == 0x7f)
            return -1;
    tail = row->body + row->body_len - (klen + n + 2);
    if (memcmp(tail, key, klen) != 0 || memcmp(tail + klen, row->node, n) != 0 ||
        memcmp(tail + klen + n, "\"}", 2) != 0)
        return -1;
    return 1;
}

/* Do the row's columns equal the body's members? Reads the body only as
 * far as request_id (and, for version 2, its end: the node), in place: 1
 * yes, 0 no, -1 undecided (escapes, or a body this fast reading does not
 * follow): then the strict parser decides. Pass 1 needs no more: the hash
 * covers every byte of the body. */
static int columns_match(const struct gh_store_audit_row *row)
{
    struct cur c = {row->body, row->body + row->body_len};
    int r;

#define STR(name, want)                                                                            \
    do {                                                                                           \
        if (!LIT(&c, name)) return -1;                                                             \
        if ((r = str_eq(&c, (want))) != 1) return r;                                               \
    } while (0)
    /* A row without a node holds a version-1 event, with one a version-2
     * event that names it. */
    if (row->node[0] == '\0') {
        STR("{\"v\":1,\"chain\":\"", row->chain);
    } else {
        if ((r = node_matches(row)) != 1) return r;
        STR("{\"v\":2,\"chain\":\"", row->chain);
    }
    if (!LIT(&c, ",\"seq\":") || !u64_eq(&c, row->seq)) return -1;
    STR(",\"id\":\"", row->id);
    if (!LIT(&c, ",\"time_us\":") || !u64_eq(&c, (uint64_t)row->time_us)) return -1;
    STR(",\"tenant\":\"", row->tenant_id);
    STR(",\"actor\":\"", row->actor);
    STR(",\"action\":\"", row->action);
    STR(",\"resource\":\"", row->resource);
    STR(",\"outcome\":\"", row->outcome);
    if (!LIT(&c, ",\"reason\":\"") || !str_skip(&c) || !LIT(&c, ",\"method\":\"") ||
        !str_skip(&c) || !LIT(&c, ",\"path\":\"") || !str_skip(&c) || !LIT(&c, ",\"status\":"))
        return -1;
    while (c.p < c.end && *c.p >= '0' && *c.p <= '9')
        c.p++;
    STR(",\"request_id\":\"", row->request_id);
#undef STR
    return 1;
}

/* The strict way, for bodies the fast reading leaves undecided. */
static bool columns_match_strict(struct verifier *v, const struct gh_store_audit_row *row)
{
    struct gh_audit_event *ev = &v->ev;

    return gh_audit_canonical_parse(row->body, row->body_len, ev) == GH_OK && ev->seq == row->seq &&
           strcmp(ev->chain, row->chain) == 0 && column_differs(row, ev) == NULL;
}

static int on_scan_row(const struct gh_store_audit_row *row, void *arg)
{
    struct verifier *v = arg;
    struct chain *c;
    uint8_t h[32];
    char hex[65];
    int m;
    SHA256_CTX sha;

    /* A row moved out of every chain (its own then shows a gap). */
    if (!gh_store_valid_audit_chain(row->chain)) {
        if (v->orphans++ == 0) v->orphan_seq = row->seq;
        return GH_OK;
    }
    c = chain_get(v, row->chain);
    if (c == NULL) return GH_ERROR;
    c->events++;
    if (row->seq > c->head) c->head = row->seq;
    if (c->suspect) return GH_OK;
    /* Any failure makes the chain suspect; pass 2 names the problem. */
    m = row->seq == c->base + c->events && !row->damaged ? columns_match(row) : 0;
    if (m == -1) m = columns_match_strict(v, row);
    if (m != 1) {
        c->suspect = true;
        return GH_OK;
    }
    SHA256_Init(&sha);
    SHA256_Update(&sha, c->prev, 32);
    SHA256_Update(&sha, row->body, row->body_len);
    SHA256_Final(h, &sha);
    gh_audit_hex(h, hex);
    if (memcmp(hex, row->hash, sizeof(hex)) != 0) {
        c->suspect = true;
        return GH_OK;
    }
    for (; c->cp < c->cp_end && v->cps[c->cp].c.seq <= row->seq; c->cp++) {
        const struct cp *cp = &v->cps[c->cp];
        if (!cp->sig_ok || (cp->c.seq == row->seq && memcmp(cp->c.hash, hex, sizeof(hex)) != 0)) {
            c->suspect = true;
            return GH_OK;
        }
    }
    memcpy(c->prev, h, 32);
    return GH_OK;
}

/* ---- Pass 1 on two threads ---------------------------------------------------------- */

#define BATCH_ROWS 256
#define NBATCHES   4

/* A batch of rows, each copied only as far as its body's end. */
struct batch {
    size_t n;
    struct gh_store_audit_row rows[BATCH_ROWS];
};

/* Batches go reader -> checker through <full> and back through <free>. */
struct pipe {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct batch *batches[NBATCHES];
    struct batch *full[NBATCHES], *free[NBATCHES];
    size_t nfull, full_head, nfree;
    struct batch *cur; /* the reader's batch being filled */
    bool done;         /* the reader has no more */
    bool failed;       /* the checker ran out of memory */
    struct verifier *v;
};

static void *checker_main(void *arg)
{
    struct pipe *p = arg;

    for (;;) {
        struct batch *b;
        bool failed = false;

        pthread_mutex_lock(&p->lock);
        while (p->nfull == 0 && !p->done)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->nfull == 0) { /* done and drained */
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        b = p->full[p->full_head];
        p->full_head = (p->full_head + 1) % NBATCHES;
        p->nfull--;
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i < b->n && !failed; i++)
            failed = on_scan_row(&b->rows[i], p->v) != GH_OK;
        pthread_mutex_lock(&p->lock);
        p->failed = p->failed || failed;
        p->free[p->nfree++] = b;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
    }
}

/* Hands the reader's batch to the checker and takes a free one. */
static int pipe_push(struct pipe *p)
{
    int rc;

    pthread_mutex_lock(&p->lock);
    p->full[(p->full_head + p->nfull) % NBATCHES] = p->cur;
    p->nfull++;
    pthread_cond_broadcast(&p->cond);
    while (p->nfree == 0 && !p->failed)
        pthread_cond_wait(&p->cond, &p->lock);
    p->cur = p->failed ? NULL : p->free[--p->nfree];
    if (p->cur) p->cur->n = 0;
    rc = p->failed ? GH_ERROR : GH_OK;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

static int on_read_row(const struct gh_store_audit_row *row, void *arg)
{
    struct pipe *p = arg;

    /* The fixed part, then the body up to its NUL: not the whole 8 KiB. */
    memcpy(&p->cur->rows[p->cur->n++], row,
           offsetof(struct gh_store_audit_row, body) + row->body_len + 1);
    return p->cur->n == BATCH_ROWS ? pipe_push(p) : GH_OK;
}

/* Pass 1 over the whole store; falls back to one thread when a second one
 * cannot be had. */
static int scan(struct verifier *v, struct gh_store *st, struct gh_err *err)
{
    struct pipe p = {.v = v};
    pthread_t checker;
    int rc;

    for (size_t i = 0; i < NBATCHES; i++) {
        p.batches[i] = malloc(sizeof(struct batch));
        if (p.batches[i] == NULL) goto single;
        p.free[p.nfree++] = p.batches[i];
    }
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    p.cur = p.free[--p.nfree];
    p.cur->n = 0;
    if (pthread_create(&checker, NULL, checker_main, &p) != 0) {
        pthread_mutex_destroy(&p.lock);
        pthread_cond_destroy(&p.cond);
        goto single;
    }
    rc = gh_store_audit_scan(st, 0, on_read_row, &p, err);
    if (rc == GH_OK && p.cur != NULL && p.cur->n > 0) rc = pipe_push(&p);
    pthread_mutex_lock(&p.lock);
    p.done = true;
    pthread_cond_broadcast(&p.cond);
    pthread_mutex_unlock(&p.lock);
    pthread_join(checker, NULL);
    if (rc == GH_OK && p.failed) rc = GH_ERROR;
    pthread_mutex_destroy(&p.lock);
    pthread_cond_destroy(&p.cond);
    for (size_t i = 0; i < NBATCHES; i++)
        free(p.batches[i]);
    return rc;
single:
    for (size_t i = 0; i < NBATCHES; i++)
        free(p.batches[i]);
    return gh_store_audit_scan(st, 0, on_scan_row, v, err);
}

/* Pass 2 on chain <name>: its report, with its first problem. */
static int recheck(struct verifier *v, struct gh_store *st, const char *name, struct gh_err *err)
{
    char chain[GH_STORE_AUDIT_CHAIN_SIZE];
    int rc;

    snprintf(chain, sizeof(chain), "%s", name); /* <name> may live in the table */
    v->next_cp = cp_lower_bound(v, chain);
    v->open = false;
    rc = gh_store_audit_walk(st, chain, 0, 0, on_row, v, err);
    if (rc != GH_OK) return rc;
    if (!v->open) chain_open(v, chain); /* checkpoints and no rows */
    chain_close(v);
    return GH_OK;
}

int gh_audit_verify(struct gh_store *st, const char *chain, gh_audit_verify_cb cb, void *arg,
                    size_t *bad, struct gh_err *err)
{
    return gh_audit_verify_from(st, chain, NULL, 0, cb, arg, bad, err);
}

int gh_audit_verify_from(struct gh_store *st, const char *chain,
                         const struct gh_audit_verify_start *starts, size_t nstarts,
                         gh_audit_verify_cb cb, void *arg, size_t *bad, struct gh_err *err)
{
    struct verifier *v = calloc(1, sizeof(*v));
    int rc;

    *bad = 0;
    if (v == NULL) return gh_err_set(err, NULL, 0, 0, "audit: out of memory");
    v->cb = cb;
    v->arg = arg;
    v->starts = starts;
    v->nstarts = nstarts;
    rc = load(v, st, chain, err);
    if (rc == GH_OK && chain != NULL) {
        /* One chain: the walk in seq order is already the short way. */
        rc = gh_store_audit_walk(st, chain, 0, 0, on_row, v, err);
        if (rc == GH_OK && !v->open && start_of(v, chain) != NULL) {
            checkpoint_only_chains(v, chain);
            chain_open(v, chain); /* wholly archived */
        }
        if (rc == GH_OK) {
            chain_close(v);
            checkpoint_only_chains(v, NULL);
        }
    } else if (rc == GH_OK) {
        rc = scan(v, st, err);
        if (rc != GH_OK && err->msg[0] == '\0') gh_err_set(err, NULL, 0, 0, "audit: out of memory");
        for (size_t i = 0; rc == GH_OK && i < v->slots; i++) {
            struct chain *c = &v->chains[i];
            if (c->name[0] == '\0') continue;
            /* A chain that passed may still have lost its tail. */
            if (c->suspect || (c->cp_end > c->cp_first && v->cps[c->cp_end - 1].c.seq > c->head)) {
                rc = recheck(v, st, c->name, err);
                continue;
            }
            struct gh_audit_chain_report r = {0};
            snprintf(r.chain, sizeof(r.chain), "%s", c->name);
            r.archived = c->base;
            r.events = c->events;
            r.head = c->head;
            r.checkpoints = c->cp_end - c->cp_first;
            add_report(v, &r);
        }
        if (rc == GH_OK && v->orphans > 0) {
            struct gh_audit_chain_report r = {0};
            snprintf(r.chain, sizeof(r.chain), "(invalid)");
            r.events = v->orphans;
            r.problem = GH_AUDIT_INSERTED;
            r.seq = v->orphan_seq;
            snprintf(r.reason, sizeof(r.reason),
                     "inserted: %" PRIu64 " row(s) with an empty or invalid chain name (the first "
                     "with seq %" PRIu64 ")",
                     v->orphans, v->orphan_seq);
            add_report(v, &r);
        }
        /* Chains wholly archived (no rows left): their checkpoints must not
         * pass their archived head. */
        for (size_t i = 0; rc == GH_OK && i < v->nstarts; i++) {
            const char *name = v->starts[i].chain;
            bool seen = v->slots > 0 && slot_of(v->chains, v->slots, name)->name[0] != '\0';
            size_t k = cp_lower_bound(v, name);
            bool has_cps = k < v->ncps && strcmp(v->cps[k].c.chain, name) == 0;
            if (!seen && !has_cps) rc = recheck(v, st, name, err);
        }
        /* Chains with checkpoints and no rows at all. */
        for (size_t i = 0; rc == GH_OK && i < v->ncps;) {
            const char *name = v->cps[i].c.chain;
            size_t j = i;
            while (j < v->ncps && strcmp(v->cps[j].c.chain, name) == 0)
                j++;
            if (v->slots == 0 || slot_of(v->chains, v->slots, name)->name[0] == '\0')
                rc = recheck(v, st, name, err);
            i = j;
        }
    }
    if (rc == GH_OK) emit_reports(v);
    *bad = v->bad;
    for (size_t i = 0; i < v->nkeys; i++)
        EVP_PKEY_free(v->pub[i]);
    free(v->cps);
    free(v->chains);
    free(v->reports);
    free(v);
    return rc;
}
