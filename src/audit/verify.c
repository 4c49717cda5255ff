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
 * Pass 1 splits the table into rowid ranges ("parts"), a few per core,
 * which one thread per core (at most MAX_WORKERS) takes in turn, scanning
 * and checking each whole: reading a row costs about as much as checking
 * it, so a reader handing rows to a checker keeps one core waiting, and
 * copies every row once more. A row's hash is checked against the hash of
 * the row before it in its chain; the first row of a chain in a part
 * chains from a row of an earlier part, so it is kept and checked when the
 * parts are joined, in rowid order. Nothing is allocated per row but those
 * first rows: the body is read in place and SHA-256 runs on the stack. */
#include "audit/verify.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
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
#include "core/cpus.h"

#define MAX_KEYS 256 /* audit keys are rotated rarely: more are ignored (NEEDSWORK: page) */

struct cp {
    struct gh_store_audit_checkpoint c;
    bool sig_ok;
};

/* A chain's state in pass 1: in one part, or joined over the parts. */
struct chain {
    char name[GH_STORE_AUDIT_CHAIN_SIZE]; /* "" = a free slot */
    uint64_t events, head;                /* rows seen; the highest seq among them */
    uint64_t last;    /* the seq of the last row checked (joined: from the archived head) */
    uint8_t prev[32]; /* and its hash */
    bool suspect;     /* something failed: pass 2 decides what */
    /* In a part: the chain's checkpoints from its first row on, not yet
     * reached (cps[cp..cp_end)), and its first row, whose hash chains from
     * an earlier part: checked when the parts are joined. */
    size_t cp, cp_end;
    uint64_t first;
    char first_hash[65];
    char *first_body;
    size_t first_len;
    /* Joined: the archived head (hot rows start after it) and the chain's
     * checkpoints, cps[cp_first..cp_end). */
    uint64_t base;
    size_t cp_first;
};

/* Chains by name: open addressing, a power of two of slots. */
struct table {
    struct chain *slots;
    size_t n, cap;
    struct chain *last; /* the chain of the previous row: usually the same */
};

struct verifier {
    gh_audit_verify_cb cb;
    void *arg;
    /* where chains start when their oldest events are archived, by chain */
    const struct gh_audit_verify_start *starts;
    size_t nstarts;
    size_t bad;
    /* pass 1, the parts joined */
    struct table chains;
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
    cp->sig_ok = false; /* check_sigs */
    return GH_OK;
}

/* Verifies the signatures of checkpoints <from>, <from> + <step>, ... :
 * the workers of pass 1 share them out, each setting only its own. */
static void check_sigs(struct verifier *v, size_t from, size_t step)
{
    for (size_t k = from; k < v->ncps; k += step) {
        struct cp *cp = &v->cps[k];
        for (size_t i = 0; i < v->nkeys; i++)
            if (v->pub[i] != NULL && strcmp(v->keys[i].key_id, cp->c.key_id) == 0)
                cp->sig_ok = gh_audit_checkpoint_verify(v->pub[i], &cp->c);
    }
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
    /* Not qsort(NULL, 0, ...): no report yet means no array. */
    if (v->nreports > 1) qsort(v->reports, v->nreports, sizeof(*v->reports), by_chain);
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

/* Chain <name> of <t>, or NULL. */
static struct chain *table_find(const struct table *t, const char *name)
{
    struct chain *c = t->cap > 0 ? slot_of(t->slots, t->cap, name) : NULL;

    return c != NULL && c->name[0] != '\0' ? c : NULL;
}

/* Chain <name> of <t>, added (zeroed but for its name) on first sight and
 * then *<added> is set; NULL when out of memory. */
static struct chain *table_get(struct table *t, const char *name, bool *added)
{
    struct chain *c;

    *added = false;
    if (t->last != NULL && strcmp(t->last->name, name) == 0) return t->last;
    if (2 * (t->n + 1) > t->cap) { /* grow: load stays under one half */
        size_t cap = t->cap ? 2 * t->cap : 64;
        struct chain *slots = calloc(cap, sizeof(*slots));
        if (slots == NULL) return NULL;
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].name[0] != '\0') *slot_of(slots, cap, t->slots[i].name) = t->slots[i];
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    c = slot_of(t->slots, t->cap, name);
    if (c->name[0] == '\0') {
        snprintf(c->name, sizeof(c->name), "%s", name);
        t->n++;
        *added = true;
    }
    t->last = c;
    return c;
}

static void table_release(struct table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].first_body);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* The first checkpoint of <name> at or after <seq> in the sorted list (or
 * where it would be); <seq> 0: the chain's first. */
static size_t cp_lower_bound_at(const struct verifier *v, const char *name, uint64_t seq)
{
    size_t lo = 0, hi = v->ncps;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->cps[mid].c.chain, name);
        if (c < 0 || (c == 0 && v->cps[mid].c.seq < seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t cp_lower_bound(const struct verifier *v, const char *name)
{
    return cp_lower_bound_at(v, name, 0);
}

/* The end of <name>'s checkpoints, from <i> within them. */
static size_t cp_chain_end(const struct verifier *v, const char *name, size_t i)
{
    while (i < v->ncps && strcmp(v->cps[i].c.chain, name) == 0)
        i++;
    return i;
}

/* ---- Pass 1's reading of a body --------------------------------------------------- */

/* A string member whose text must equal <want>: 1 equal, 0 not, -1 it has
 * escapes (the strict parser decides). */
static int str_eq(struct gh_cursor *c, const char *want)
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
static bool str_skip(struct gh_cursor *c)
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
    struct gh_cursor c = {row->body, row->body + row->body_len};
    int r;

#define STR(name, want)                                                                            \
    do {                                                                                           \
        if (!GH_CURSOR_TAKE_LIT(&c, name)) return -1;                                              \
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
    if (!GH_CURSOR_TAKE_LIT(&c, ",\"seq\":") || !gh_cursor_take_u64(&c, row->seq)) return -1;
    STR(",\"id\":\"", row->id);
    if (!GH_CURSOR_TAKE_LIT(&c, ",\"time_us\":") || !gh_cursor_take_u64(&c, (uint64_t)row->time_us))
        return -1;
    STR(",\"tenant\":\"", row->tenant_id);
    STR(",\"actor\":\"", row->actor);
    STR(",\"action\":\"", row->action);
    STR(",\"resource\":\"", row->resource);
    STR(",\"outcome\":\"", row->outcome);
    if (!GH_CURSOR_TAKE_LIT(&c, ",\"reason\":\"") || !str_skip(&c) ||
        !GH_CURSOR_TAKE_LIT(&c, ",\"method\":\"") || !str_skip(&c) ||
        !GH_CURSOR_TAKE_LIT(&c, ",\"path\":\"") || !str_skip(&c) ||
        !GH_CURSOR_TAKE_LIT(&c, ",\"status\":"))
        return -1;
    while (c.p < c.end && *c.p >= '0' && *c.p <= '9')
        c.p++;
    STR(",\"request_id\":\"", row->request_id);
#undef STR
    return 1;
}

/* The strict way, for bodies the fast reading leaves undecided; <ev> is
 * scratch space. */
static bool columns_match_strict(struct gh_audit_event *ev, const struct gh_store_audit_row *row)
{
    return gh_audit_canonical_parse(row->body, row->body_len, ev) == GH_OK && ev->seq == row->seq &&
           strcmp(ev->chain, row->chain) == 0 && column_differs(row, ev) == NULL;
}

/* ---- Pass 1 in parts ------------------------------------------------------------------ */

#define MAX_WORKERS 8 /* threads of pass 1, one per core */
/* Parts per worker: a thread that runs slower (the core is shared) takes
 * fewer parts, rather than the others waiting for its half at the end. */
#define PARTS_PER_WORKER 4
/* The first rows the parts keep for the join, at most, shared out among
 * them: beyond, a chain is left to pass 2 (only a store with a great many
 * chains gets there). */
#define FIRST_BODIES_MAX (64u << 20)
/* Chains beyond which pass 1 takes one part per worker (see scan()). */
#define MANY_CHAINS 4096

/* One rowid range of pass 1, scanned and checked by one thread. */
struct part {
    struct verifier *v; /* read only while the parts run, but for the sig_ok of cps[] */
    int64_t after, to;  /* rowids (after, to] */
    struct table chains;
    uint64_t orphans, orphan_seq;
    size_t kept, keep_max; /* bytes of first bodies */
    int rc;
    struct gh_err err;
    struct gh_audit_event ev; /* scratch for the strict reading */
};

/* The parts, taken in turn by the workers. */
struct parts {
    struct verifier *v;
    struct gh_store *st;
    struct part *part;
    size_t n, nworkers;
    atomic_size_t next; /* the next part to take */
    atomic_bool failed; /* a part failed: the others are not taken */
};

struct worker {
    struct parts *parts;
    size_t index;
};

/* Keeps <row> as the first of <c> in its part, for the join. */
static bool keep_first(struct part *p, struct chain *c, const struct gh_store_audit_row *row)
{
    if (row->body_len > p->keep_max - p->kept) return false;
    c->first_body = malloc(row->body_len);
    if (c->first_body == NULL) return false;
    memcpy(c->first_body, row->body, row->body_len);
    c->first_len = row->body_len;
    p->kept += row->body_len;
    c->first = row->seq;
    memcpy(c->first_hash, row->hash, sizeof(c->first_hash));
    return true;
}

/* The hash of <body> chained from <prev>, into <h> and, as hex, <hex>. */
static void chain_hash_hex(const uint8_t prev[32], const char *body, size_t len, uint8_t h[32],
                           char hex[65])
{
    SHA256_CTX sha;

    SHA256_Init(&sha);
    SHA256_Update(&sha, prev, 32);
    SHA256_Update(&sha, body, len);
    SHA256_Final(h, &sha);
    gh_audit_hex(h, hex);
}

static int on_part_row(const struct gh_store_audit_row *row, void *arg)
{
    struct part *p = arg;
    const struct verifier *v = p->v;
    struct chain *c;
    uint8_t h[32];
    char hex[65];
    bool added;
    int m;

    /* A row moved out of every chain (its own then shows a gap). */
    if (!gh_store_valid_audit_chain(row->chain)) {
        if (p->orphans++ == 0) p->orphan_seq = row->seq;
        return GH_OK;
    }
    c = table_get(&p->chains, row->chain, &added);
    if (c == NULL) return GH_ERROR;
    c->events++;
    if (row->seq > c->head) c->head = row->seq;
    if (c->suspect) return GH_OK;
    /* Any failure makes the chain suspect; pass 2 names the problem. */
    m = !row->damaged && (added || row->seq == c->last + 1) ? columns_match(row) : 0;
    if (m == -1) m = columns_match_strict(&p->ev, row);
    if (m != 1) {
        c->suspect = true;
        return GH_OK;
    }
    if (added) {
        /* It chains from an earlier part, or the archive: the join checks
         * its hash. Its checkpoints start here. */
        if (gh_audit_unhex(row->hash, h) != GH_OK || !keep_first(p, c, row)) {
            c->suspect = true;
            return GH_OK;
        }
        c->cp = cp_lower_bound_at(v, row->chain, row->seq);
        c->cp_end = cp_chain_end(v, row->chain, c->cp);
    } else {
        chain_hash_hex(c->prev, row->body, row->body_len, h, hex);
        if (memcmp(hex, row->hash, sizeof(hex)) != 0) {
            c->suspect = true;
            return GH_OK;
        }
    }
    /* A checkpoint at this seq names this very hash (its signature is
     * checked at the join, once every part has verified its share). */
    for (; c->cp < c->cp_end && v->cps[c->cp].c.seq <= row->seq; c->cp++) {
        const struct cp *cp = &v->cps[c->cp];
        if (cp->c.seq == row->seq && memcmp(cp->c.hash, row->hash, sizeof(cp->c.hash)) != 0) {
            c->suspect = true;
            return GH_OK;
        }
    }
    memcpy(c->prev, h, 32);
    c->last = row->seq;
    return GH_OK;
}

/* Verifies the worker's share of the checkpoint signatures, then scans
 * parts until none is left. */
static void *worker_main(void *arg)
{
    const struct worker *w = arg;
    struct parts *ps = w->parts;
    size_t k;

    check_sigs(ps->v, w->index, ps->nworkers);
    while (!atomic_load(&ps->failed) && (k = atomic_fetch_add(&ps->next, 1)) < ps->n) {
        struct part *p = &ps->part[k];
        p->rc = gh_store_audit_scan(ps->st, p->after, p->to, on_part_row, p, &p->err);
        if (p->rc != GH_OK) atomic_store(&ps->failed, true);
    }
    return NULL;
}

/* The joined state of chain <name>, created from its archived head. */
static struct chain *joined_get(struct verifier *v, const char *name)
{
    bool added;
    struct chain *c = table_get(&v->chains, name, &added);

    if (c != NULL && added) {
        start_state(v, name, &c->base, c->prev);
        c->head = c->last = c->base;
        c->cp_first = cp_lower_bound(v, name);
        c->cp_end = cp_chain_end(v, name, c->cp_first);
    }
    return c;
}

/* Joins the parts, in rowid order: each part's first row of a chain must
 * follow the chain's last row so far, by seq and by hash. A chain that
 * joins up must also have every checkpoint up to its head signed. */
static int join(struct verifier *v, struct part *parts, size_t nparts)
{
    uint8_t h[32];
    char hex[65];

    for (size_t k = 0; k < nparts; k++) {
        const struct part *p = &parts[k];
        if (p->orphans > 0 && v->orphans == 0) v->orphan_seq = p->orphan_seq;
        v->orphans += p->orphans;
        for (size_t i = 0; i < p->chains.cap; i++) {
            const struct chain *q = &p->chains.slots[i];
            struct chain *c;
            if (q->name[0] == '\0') continue;
            c = joined_get(v, q->name);
            if (c == NULL) return GH_ERROR;
            c->events += q->events;
            if (q->head > c->head) c->head = q->head;
            if (c->suspect || q->suspect) {
                c->suspect = true;
                continue;
            }
            if (q->first != c->last + 1) {
                c->suspect = true;
                continue;
            }
            chain_hash_hex(c->prev, q->first_body, q->first_len, h, hex);
            if (memcmp(hex, q->first_hash, sizeof(hex)) != 0) {
                c->suspect = true;
                continue;
            }
            memcpy(c->prev, q->prev, 32);
            c->last = q->last;
        }
    }
    for (size_t i = 0; i < v->chains.cap; i++) {
        struct chain *c = &v->chains.slots[i];
        for (size_t k = c->cp_first; c->name[0] != '\0' && !c->suspect && k < c->cp_end; k++)
            if (v->cps[k].c.seq <= c->head && !v->cps[k].sig_ok) c->suspect = true;
    }
    return GH_OK;
}

/* How many chains have checkpoints (cps[] is sorted by chain). */
static size_t chains_of_checkpoints(const struct verifier *v)
{
    size_t n = 0;

    for (size_t i = 0; i < v->ncps; i++)
        if (i == 0 || strcmp(v->cps[i].c.chain, v->cps[i - 1].c.chain) != 0) n++;
    return n;
}

/* The rowids of the oldest and newest rows; both 0 when there are none. */
static int rowid_range(struct gh_store *st, int64_t *first, int64_t *last, struct gh_err *err)
{
    struct gh_store_audit_filter f = {0};
    struct gh_store_audit_row *row = malloc(sizeof(*row));
    size_t count = 0;
    bool more;
    int rc;

    *first = *last = 0;
    if (row == NULL) return GH_ERROR;
    rc = gh_store_audit_query(st, &f, NULL, 1, row, &count, &more, err);
    if (rc == GH_OK && count == 1) {
        *last = row->rowid;
        f.oldest_first = true;
        rc = gh_store_audit_query(st, &f, NULL, 1, row, &count, &more, err);
        if (rc == GH_OK && count == 1) *first = row->rowid;
    }
    free(row);
    return rc;
}

/* Pass 1 over the whole store: a few rowid ranges (parts) per core, taken
 * in turn by one worker per core (as far as the store has connections for
 * them), each on a thread of its own but the first, which runs on the
 * caller's (a worker whose thread cannot be had only verifies its share of
 * the signatures, after: the others take its parts). Each part reads its
 * own snapshot: rows are never changed, only added after the newest
 * (beyond every part) or archived, and a chain that an archiving cut
 * between two parts' snapshots fails the join and is walked again in one
 * snapshot by pass 2. */
static int scan(struct verifier *v, struct gh_store *st, struct gh_err *err)
{
    int cores = gh_cpus_usable();
    size_t nworkers = cores > MAX_WORKERS ? MAX_WORKERS : (size_t)cores;
    size_t slots = gh_store_audit_scan_slots(st);
    struct parts ps = {.v = v, .st = st};
    struct worker workers[MAX_WORKERS];
    pthread_t threads[MAX_WORKERS];
    bool started[MAX_WORKERS] = {false};
    int64_t first, last;
    uint64_t span;
    int rc;

    rc = rowid_range(st, &first, &last, err);
    if (rc != GH_OK) return rc;
    if (last == 0) {
        check_sigs(v, 0, 1);
        return GH_OK;
    }
    span = (uint64_t)(last - first) + 1;
    if (nworkers > slots) nworkers = slots; /* a worker waiting for a connection would time out */
    /* Each part keeps a table of every chain it meets and each chain's
     * first row: with many chains (counted by their checkpoints), one part
     * per worker, so that memory stays at a few KiB per chain. */
    ps.n = nworkers == 1 || chains_of_checkpoints(v) > MANY_CHAINS ? nworkers
                                                                   : nworkers * PARTS_PER_WORKER;
    if (span < ps.n) ps.n = nworkers = 1;
    ps.nworkers = nworkers;
    atomic_init(&ps.next, 0);
    atomic_init(&ps.failed, false);
    ps.part = calloc(ps.n, sizeof(*ps.part));
    if (ps.part == NULL) return GH_ERROR;
    for (size_t k = 0; k < ps.n; k++) {
        struct part *p = &ps.part[k];
        p->v = v;
        p->keep_max = FIRST_BODIES_MAX / ps.n;
        /* The first part from the very start: a row a tamperer put at a
         * rowid below 1 (never one the gateway gives) is read too. */
        p->after = k == 0 ? INT64_MIN : ps.part[k - 1].to;
        p->to = first - 1 + (int64_t)(span / ps.n * (k + 1) + span % ps.n * (k + 1) / ps.n);
    }
    for (size_t i = 0; i < nworkers; i++)
        workers[i] = (struct worker){&ps, i};
    for (size_t i = 1; i < nworkers; i++)
        started[i] = pthread_create(&threads[i], NULL, worker_main, &workers[i]) == 0;
    worker_main(&workers[0]);
    for (size_t i = 1; i < nworkers; i++) {
        if (started[i])
            pthread_join(threads[i], NULL);
        else
            worker_main(&workers[i]);
    }
    for (size_t k = 0; k < ps.n && rc == GH_OK; k++)
        if ((rc = ps.part[k].rc) != GH_OK) *err = ps.part[k].err;
    if (rc == GH_OK) rc = join(v, ps.part, ps.n);
    for (size_t k = 0; k < ps.n; k++)
        table_release(&ps.part[k].chains);
    free(ps.part);
    return rc;
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
        check_sigs(v, 0, 1);
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
        for (size_t i = 0; rc == GH_OK && i < v->chains.cap; i++) {
            struct chain *c = &v->chains.slots[i];
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
            bool seen = table_find(&v->chains, name) != NULL;
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
            if (table_find(&v->chains, name) == NULL) rc = recheck(v, st, name, err);
            i = j;
        }
    }
    if (rc == GH_OK) emit_reports(v);
    *bad = v->bad;
    for (size_t i = 0; i < v->nkeys; i++)
        EVP_PKEY_free(v->pub[i]);
    free(v->cps);
    table_release(&v->chains);
    free(v->reports);
    free(v);
    return rc;
}
