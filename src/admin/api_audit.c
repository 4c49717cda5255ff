/* The audit log's read endpoints (api_audit.h): pages of events under
 * filters with keyset cursors, a tenant's chain exported as JSON lines,
 * checkpoints and the public audit keys.
 *
 * Events are shown as they are stored: the canonical form of
 * docs/audit-format.md with "hash" added as a last member, so that a client
 * can recompute every hash from the bytes it received. Store calls are
 * synchronous: the admin thread runs them, never a data-plane worker. */
#include "admin/api_audit.h"
#include "audit/show.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/api_call.h"
#include "admin/audit_params.h"
#include "auth/principal.h"
#include "core/log.h"
#include "core/utf8.h"
#include "core/worker.h"
#include "http/conn.h"
#include "store/store.h"

#define DEFAULT_LIMIT 50
/* A store walk callback's "enough for now": not an error. */
#define WALK_STOP 1
/* An export page: made and written in one loop turn, then the next page
 * waits until the client has taken this one. */
#define EXPORT_PAGE_BYTES (64 * 1024)
#define KEYS_MAX          32
/* A filter value can be no longer than the stored field it is compared with. */
#define ROW_FIELD_SIZE(f) sizeof(((struct gh_store_audit_row *)0)->f)

/* ---- parameters ---- */

/* True when <s> can be a tenant id or chain name ("tn_..." or "system"). */
static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= GH_STORE_TENANT_ID_SIZE) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return false;
    }
    return true;
}

/* Refuses parameters the endpoint does not know (a typo would otherwise
 * widen a query silently) and repeated ones. */
static bool known_params(struct call *c, const char *const *names)
{
    gh_str bad;
    char msg[160];
    if (gh_audit_query_check(c->r->head.query, names, &bad)) return true;
    snprintf(msg, sizeof(msg), "unknown or repeated query parameter \"%.*s\"",
             (int)(bad.len > 64 ? 64 : bad.len), bad.ptr);
    /* The name comes from the client: keep the message valid UTF-8. */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20) *p = '?';
    gh_api_reply_error(c, 400, "invalid_query", msg);
    return false;
}

/* The decoded value of <name> into <out>; false after answering 400. */
static bool param(struct call *c, const char *name, char *out, size_t size)
{
    char msg[128];
    int n = gh_audit_query_get(c->r->head.query, name, out, size);

    /* Values are compared with stored text: bytes that are not UTF-8 match
     * nothing, and PostgreSQL refuses them as an error of the store. */
    if (n >= 0 && gh_utf8_valid(out, strlen(out))) return true;
    if (n >= 0)
        snprintf(msg, sizeof(msg), "%s is not valid UTF-8 once decoded", name);
    else
        snprintf(msg, sizeof(msg), "%s is malformed or longer than %zu bytes", name, size - 1);
    gh_api_reply_error(c, 400, "invalid_query", msg);
    return false;
}

static bool limit_param(struct call *c, size_t *limit)
{
    char v[16];
    if (!param(c, "limit", v, sizeof(v))) return false;
    *limit = DEFAULT_LIMIT;
    if (gh_api_limit_value(v, limit)) return true;
    gh_api_reply_error(c, 400, "invalid_query", "limit must be between 1 and 200");
    return false;
}

static bool time_param(struct call *c, const char *name, int64_t *us)
{
    char v[64], msg[160];
    if (!param(c, name, v, sizeof(v))) return false;
    *us = 0;
    if (v[0] == '\0') return true;
    if (gh_audit_parse_time(v, us) == 0) return true;
    snprintf(msg, sizeof(msg), "%s must be an RFC 3339 date-time or unix milliseconds", name);
    gh_api_reply_error(c, 400, "invalid_query", msg);
    return false;
}

/* The tenant (chain) a call may read: a tenant admin's own, whatever it
 * asks; an operator's choice (<asked>, maybe ""). Asking for another tenant
 * as a tenant admin answers 404, as every other cross-tenant access does:
 * the other tenant does not exist for it. Returns false after answering. */
static bool scope(struct call *c, const char *name, const char *asked, char *out, size_t size)
{
    struct gh_store_tenant t;
    struct gh_err err = {0};
    bool is_operator = gh_principal_is_operator(&c->who);
    char msg[96];

    /* A tenant admin names its own tenant, by id or name, or nothing: any
     * other value answers 404 before it is looked at, so that whether
     * another tenant's name exists cannot be told from the answer. */
    if (!is_operator && asked[0] && strcmp(asked, c->who.tenant) != 0 &&
        !(gh_store_tenant_get(c->st, c->who.tenant, &t, &err) == GH_OK &&
          strcmp(asked, t.name) == 0)) {
        gh_api_reply_error(c, 404, "not_found", "no such tenant");
        return false;
    }
    /* An operator's value: what is not a tenant's id but is a tenant's name
     * means that tenant, as the CLI takes it (a chain of a JWT tenant that
     * is no store tenant is named by its id, as it comes). */
    if (is_operator && asked[0] && gh_store_tenant_find(c->st, asked, &t, &err) == GH_OK)
        asked = t.id;
    if (is_operator && asked[0] && !valid_id(asked)) {
        snprintf(msg, sizeof(msg), "%s must be a tenant id or name, or \"system\"", name);
        gh_api_reply_error(c, 400, "invalid_query", msg);
        return false;
    }
    if (is_operator) {
        snprintf(out, size, "%s", asked);
        return true;
    }
    /* Admin keys belong to store tenants, whose ids are chain names; a
     * tenant id that is not one (never from an API key) has no chain. */
    if (strlen(c->who.tenant) >= size || !valid_id(c->who.tenant)) {
        gh_api_reply_error(c, 404, "not_found", "no such tenant");
        return false;
    }
    memcpy(out, c->who.tenant, strlen(c->who.tenant) + 1);
    return true;
}

/* ---- output ---- */

/* A growable text buffer for one answer (bounded by its caller's page). */
struct text {
    char *p;
    size_t len, cap;
    bool failed;
};

static void put(struct text *t, const char *s, size_t n)
{
    if (t->failed) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void puts_(struct text *t, const char *s)
{
    put(t, s, strlen(s));
}

static void put_cb(void *arg, const char *s, size_t n)
{
    put(arg, s, n);
}

/* <row>'s event as audit/show.h shows it; false when it was shown as
 * damaged (or memory ran out: <t> is marked failed). */
static bool put_event(struct text *t, const struct gh_store_audit_row *row, const char *prev_hash)
{
    int rc = gh_audit_show_event(row, prev_hash, put_cb, t);

    if (rc < 0) t->failed = true;
    return rc > 0;
}

static json_t *checkpoint_json(const struct gh_store_audit_checkpoint *cp)
{
    return json_pack("{s:s, s:I, s:s, s:I, s:s, s:s}", "chain", cp->chain, "seq",
                     (json_int_t)cp->seq, "hash", cp->hash, "time_ms", (json_int_t)cp->time_ms,
                     "key_id", cp->key_id, "signature", cp->signature);
}

static void reply_text(struct call *c, struct text *t)
{
    if (t->failed) {
        gh_api_reply_error(c, 500, "internal_error", "out of memory");
    } else {
        gh_conn_reply(c->r->conn, 200, "application/json", t->p, t->len);
    }
    free(t->p);
}

/* ---- GET /v1/audit ---- */

void gh_api_audit_list(struct call *c)
{
    static const char *const names[] = {"limit",  "cursor",  "tenant",   "actor",
                                        "action", "outcome", "resource", "request_id",
                                        "from",   "to",      "order",    NULL};
    char tenant_q[GH_STORE_TENANT_ID_SIZE + 1], tenant[GH_STORE_TENANT_ID_SIZE];
    char actor[ROW_FIELD_SIZE(actor)], action[ROW_FIELD_SIZE(action)];
    char outcome[16], resource[ROW_FIELD_SIZE(resource)];
    char request_id[ROW_FIELD_SIZE(request_id)], order[16], cursor_text[GH_AUDIT_CURSOR_MAX];
    char from_s[24], to_s[24];
    struct gh_store_audit_filter f;
    struct gh_audit_cursor cur = {0};
    struct gh_store_audit_row *rows = NULL;
    struct gh_err err = {0};
    struct text t = {0};
    struct gh_store_audit_pos after, *afterp = NULL;
    int64_t from_us, to_us;
    size_t limit, count = 0;
    bool more = false;
    int rc;

    if (!known_params(c, names) || !limit_param(c, &limit) ||
        !param(c, "cursor", cursor_text, sizeof(cursor_text)) ||
        !param(c, "tenant", tenant_q, sizeof(tenant_q)) ||
        !param(c, "actor", actor, sizeof(actor)) || !param(c, "action", action, sizeof(action)) ||
        !param(c, "outcome", outcome, sizeof(outcome)) ||
        !param(c, "resource", resource, sizeof(resource)) ||
        !param(c, "request_id", request_id, sizeof(request_id)) ||
        !param(c, "order", order, sizeof(order)) || !time_param(c, "from", &from_us) ||
        !time_param(c, "to", &to_us))
        return;
    if (order[0] && strcmp(order, "newest") != 0 && strcmp(order, "oldest") != 0) {
        gh_api_reply_error(c, 400, "invalid_query", "order must be newest or oldest");
        return;
    }
    if (outcome[0] && strcmp(outcome, "success") != 0 && strcmp(outcome, "denied") != 0 &&
        strcmp(outcome, "failed") != 0) {
        gh_api_reply_error(c, 400, "invalid_query", "outcome must be success, denied or failed");
        return;
    }
    if (from_us && to_us && from_us >= to_us) {
        gh_api_reply_error(c, 400, "invalid_query", "from must be before to");
        return;
    }
    if (!scope(c, "tenant", tenant_q, tenant, sizeof(tenant))) return;

    memset(&f, 0, sizeof(f));
    f.tenant_id = tenant;
    f.actor = actor;
    f.action = action;
    f.outcome = outcome;
    f.resource = resource;
    f.request_id = request_id;
    f.from_us = from_us;
    f.to_us = to_us;
    f.oldest_first = strcmp(order, "oldest") == 0;

    /* The cursor holds a digest of the effective filters (the tenant as
     * enforced, times as parsed), so that it is refused under others. */
    snprintf(from_s, sizeof(from_s), "%lld", (long long)from_us);
    snprintf(to_s, sizeof(to_s), "%lld", (long long)to_us);
    const char *const fields[] = {tenant,  actor,    action,
                                  outcome, resource, request_id,
                                  from_s,  to_s,     f.oldest_first ? "oldest" : "newest"};
    uint8_t digest[GH_AUDIT_DIGEST_LEN];
    gh_audit_filter_digest(fields, sizeof(fields) / sizeof(fields[0]), digest);
    if (cursor_text[0]) {
        if (gh_audit_cursor_decode(cursor_text, &cur) != 0) {
            gh_api_reply_error(c, 400, "invalid_cursor", "cursor is malformed");
            return;
        }
        if (memcmp(cur.digest, digest, sizeof(digest)) != 0 || cur.oldest_first != f.oldest_first) {
            gh_api_reply_error(c, 400, "invalid_cursor",
                               "cursor was made under other filters or another order");
            return;
        }
        after.time_us = cur.time_us;
        after.rowid = cur.rowid;
        afterp = &after;
    }

    rows = calloc(limit, sizeof(*rows));
    if (rows == NULL) {
        gh_api_reply_error(c, 500, "internal_error", "out of memory");
        return;
    }
    rc = gh_store_audit_query(c->st, &f, afterp, limit, rows, &count, &more, &err);
    /* What is shown is durable: the rows may be commits the audit writer
     * has not synced yet (SQLite), and a sync after the read covers them. */
    if (rc == GH_OK) rc = gh_store_audit_sync(c->st, &err);
    if (rc != GH_OK) {
        free(rows);
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    puts_(&t, "{\"events\":[");
    for (size_t i = 0; i < count; i++) {
        if (i) puts_(&t, ",");
        if (!put_event(&t, &rows[i], NULL))
            gh_log_warn("audit: row %lld (chain %.31s, seq %llu) is damaged; run gatehouse audit "
                        "verify",
                        (long long)rows[i].rowid, rows[i].chain, (unsigned long long)rows[i].seq);
    }
    puts_(&t, "],\"next_cursor\":");
    if (more && count) {
        char next[GH_AUDIT_CURSOR_MAX];
        cur.rowid = rows[count - 1].rowid;
        cur.time_us = rows[count - 1].time_us;
        cur.oldest_first = f.oldest_first;
        memcpy(cur.digest, digest, sizeof(digest));
        gh_audit_cursor_encode(&cur, next);
        puts_(&t, "\"");
        puts_(&t, next);
        puts_(&t, "\"}\n");
    } else {
        puts_(&t, "null}\n");
    }
    free(rows);
    reply_text(c, &t);
}

/* ---- GET /v1/audit/export ---- */

/* One row looked up by seq: found, its seq, time and hash. */
struct probe {
    bool found;
    uint64_t seq;
    int64_t time_us;
    char hash[65];
};

static int probe_cb(const struct gh_store_audit_row *row, void *arg)
{
    struct probe *p = arg;
    p->found = true;
    p->seq = row->seq;
    p->time_us = row->time_us;
    memcpy(p->hash, row->hash, sizeof(p->hash));
    return WALK_STOP;
}

/* The first row of <chain> with seq >= <seq> (to <to>, 0: no end). */
static int probe_at(struct gh_store *st, const char *chain, uint64_t seq, uint64_t to,
                    struct probe *p, struct gh_err *err)
{
    int rc;
    memset(p, 0, sizeof(*p));
    rc = gh_store_audit_walk(st, chain, seq, to, probe_cb, p, err);
    return rc == WALK_STOP ? GH_OK : rc;
}

/* The last seq of <chain> (0 when it has no rows from <lo> on): doubling,
 * then halving, with point lookups on (chain, seq). */
static int chain_head(struct gh_store *st, const char *chain, uint64_t lo, uint64_t *out,
                      struct gh_err *err)
{
    uint64_t good = lo, step = 1, bad;
    struct probe p;
    int rc;

    for (;;) {
        rc = probe_at(st, chain, good + step, good + step, &p, err);
        if (rc != GH_OK) return rc;
        if (!p.found) break;
        good += step;
        step *= 2;
    }
    bad = good + step;
    while (bad - good > 1) {
        uint64_t mid = good + (bad - good) / 2;
        rc = probe_at(st, chain, mid, mid, &p, err);
        if (rc != GH_OK) return rc;
        if (p.found)
            good = mid;
        else
            bad = mid;
    }
    *out = good;
    return GH_OK;
}

enum export_phase { EXPORT_EVENTS, EXPORT_CHECKPOINTS, EXPORT_DONE };

struct export_state {
    struct gh_store *st;
    char chain[GH_STORE_TENANT_ID_SIZE];
    enum export_phase phase;
    uint64_t next_seq, last_seq; /* events still to write: [next_seq, last_seq] */
    uint64_t first_seq;
    uint64_t cp_next;   /* checkpoints: from this seq on */
    char prev_hash[65]; /* the hash before first_seq, for the first line ("" when unknown) */
    unsigned damaged;   /* damaged rows met (shown as such, logged once) */
    struct text page;
};

static void export_release(struct gh_req *r)
{
    struct export_state *x = r->stream_arg;
    if (x == NULL) return;
    free(x->page.p);
    free(x);
    r->stream_arg = NULL;
}

static int export_event_cb(const struct gh_store_audit_row *row, void *arg)
{
    struct export_state *x = arg;
    if (row->seq < x->next_seq) return GH_OK;
    if (!put_event(&x->page, row,
                   row->seq == x->first_seq && x->prev_hash[0] ? x->prev_hash : NULL) &&
        x->damaged++ == 0)
        gh_log_warn("audit export of %s: seq %llu is damaged; run gatehouse audit verify", x->chain,
                    (unsigned long long)row->seq);
    put(&x->page, "\n", 1);
    x->next_seq = row->seq + 1;
    return x->page.len >= EXPORT_PAGE_BYTES ? WALK_STOP : GH_OK;
}

static int export_cp_cb(const struct gh_store_audit_checkpoint *cp, void *arg)
{
    struct export_state *x = arg;
    json_t *line = json_pack("{s:o}", "checkpoint", checkpoint_json(cp));
    char *s = line ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
    if (s == NULL) {
        x->page.failed = true;
        return WALK_STOP;
    }
    puts_(&x->page, s);
    put(&x->page, "\n", 1);
    free(s);
    x->cp_next = cp->seq + 1;
    /* The first checkpoint at or after the last event covers all of them. */
    if (cp->seq >= x->last_seq) {
        x->phase = EXPORT_DONE;
        return WALK_STOP;
    }
    return x->page.len >= EXPORT_PAGE_BYTES ? WALK_STOP : GH_OK;
}

/* One page: events, then checkpoints, then the end. */
static void export_drained(struct gh_req *r)
{
    struct export_state *x = r->stream_arg;
    struct gh_err err = {0};
    int rc = GH_OK;

    x->page.len = 0;
    if (x->phase == EXPORT_EVENTS) {
        if (x->next_seq <= x->last_seq)
            rc = gh_store_audit_walk(x->st, x->chain, x->next_seq, x->last_seq, export_event_cb, x,
                                     &err);
        if (rc == WALK_STOP) rc = GH_OK;
        /* A walk that ended without stopping went to last_seq: rows that
         * are missing (a hole) are the verifier's to report, not ours. */
        if (rc == GH_OK && x->page.len < EXPORT_PAGE_BYTES) {
            x->next_seq = x->last_seq + 1;
            x->phase = EXPORT_CHECKPOINTS;
        }
    } else if (x->phase == EXPORT_CHECKPOINTS) {
        size_t before = x->page.len;
        rc = gh_store_audit_checkpoints_walk(x->st, x->chain, x->cp_next, 0, export_cp_cb, x, &err);
        if (rc == WALK_STOP) rc = GH_OK;
        if (rc == GH_OK && x->phase == EXPORT_CHECKPOINTS &&
            x->page.len - before < EXPORT_PAGE_BYTES)
            x->phase = EXPORT_DONE; /* no more checkpoints */
    }
    if (rc != GH_OK || x->page.failed) {
        /* The head is out: the client sees the body end without its last
         * chunk, which says "incomplete" (RFC 9112 §7.1). */
        gh_log_warn("audit export of %s stopped at seq %llu: %s", x->chain,
                    (unsigned long long)x->next_seq, rc != GH_OK ? err.msg : "out of memory");
        gh_conn_abort(r->conn);
        return;
    }
    if (x->page.len && gh_conn_stream_write(r, x->page.p, x->page.len) != 0) return;
    if (x->phase == EXPORT_DONE) gh_conn_stream_end(r);
}

void gh_api_audit_export(struct call *c)
{
    static const char *const names[] = {"tenant", "from", "to", NULL};
    char tenant_q[GH_STORE_TENANT_ID_SIZE + 1];
    struct export_state *x;
    struct gh_err err = {0};
    struct probe p;
    int64_t from_us, to_us;
    uint64_t lo, head, first, last;
    int rc;

    if (!known_params(c, names) || !param(c, "tenant", tenant_q, sizeof(tenant_q)) ||
        !time_param(c, "from", &from_us) || !time_param(c, "to", &to_us))
        return;
    if (from_us && to_us && from_us >= to_us) {
        gh_api_reply_error(c, 400, "invalid_query", "from must be before to");
        return;
    }
    if (tenant_q[0] == '\0' && gh_principal_is_operator(&c->who)) {
        gh_api_reply_error(c, 400, "invalid_query",
                           "tenant is required (a tenant id, or \"system\")");
        return;
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL) {
        gh_api_reply_error(c, 500, "internal_error", "out of memory");
        return;
    }
    if (!scope(c, "tenant", tenant_q, x->chain, sizeof(x->chain))) {
        free(x);
        return;
    }
    x->st = c->st;

    /* The range, as seqs: from the lowest seq stamped in [from, to) to the
     * highest, and every event between them, so that the lines form one
     * unbroken run of the chain that verifies on its own. Time does not
     * always grow with seq (nodes' clocks; an event held while the store
     * was down is chained after later ones): the run holds every event of
     * the window, and the events chained among them whatever their time.
     * Without a window, the whole chain the store holds. */
    if (from_us || to_us) {
        rc = gh_store_audit_seq_span(c->st, x->chain, from_us, to_us, &first, &last, &err);
        /* Nothing past <last> is sent, and the sync covers it (as a query's). */
        if (rc == GH_OK && first > 0) rc = gh_store_audit_sync(c->st, &err);
        if (rc == GH_OK) {
            x->first_seq = x->next_seq = first;
            x->last_seq = last; /* 0 with first: nothing in the window */
        }
    } else {
        rc = probe_at(c->st, x->chain, 1, 0, &p, &err);
        if (rc == GH_OK && p.found) {
            lo = p.seq; /* after archived events, the hot store starts later */
            rc = chain_head(c->st, x->chain, lo, &head, &err);
            if (rc == GH_OK) rc = gh_store_audit_sync(c->st, &err);
            if (rc == GH_OK) {
                x->first_seq = x->next_seq = lo;
                x->last_seq = head;
            }
        }
    }
    if (rc != GH_OK) {
        free(x);
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    if (x->next_seq == 0 || x->next_seq > x->last_seq) {
        x->phase = EXPORT_DONE; /* nothing in the range: an empty body */
    } else {
        x->phase = EXPORT_EVENTS;
        x->cp_next = x->first_seq;
        if (x->first_seq > 1) {
            rc = probe_at(c->st, x->chain, x->first_seq - 1, x->first_seq - 1, &p, &err);
            if (rc != GH_OK) {
                free(x);
                gh_api_reply_store_error(c, rc, &err);
                return;
            }
            if (p.found) memcpy(x->prev_hash, p.hash, sizeof(x->prev_hash));
        }
    }
    if (gh_conn_stream_begin(c->r, 200, "application/x-ndjson", export_drained, export_release,
                             x) != 0)
        return;
    if (x->phase == EXPORT_DONE) gh_conn_stream_end(c->r);
}

/* ---- GET /v1/audit/checkpoints ---- */

struct cp_page {
    json_t *items;
    size_t limit, count;
    bool more;
    struct gh_store_audit_checkpoint last;
};

static int cp_page_cb(const struct gh_store_audit_checkpoint *cp, void *arg)
{
    struct cp_page *pg = arg;
    if (pg->count == pg->limit) {
        pg->more = true;
        return WALK_STOP;
    }
    json_array_append_new(pg->items, checkpoint_json(cp));
    pg->last = *cp;
    pg->count++;
    return GH_OK;
}

/* Chain names in store order, for an operator's walk over every chain. */
struct chains {
    char (*names)[GH_STORE_TENANT_ID_SIZE];
    size_t n, cap;
    bool failed;
};

static int chains_cb(const struct gh_store_audit_row *row, void *arg)
{
    struct chains *ch = arg;
    if (ch->n == ch->cap) {
        size_t cap = ch->cap ? ch->cap * 2 : 64;
        void *p = realloc(ch->names, cap * sizeof(*ch->names));
        if (p == NULL) {
            ch->failed = true;
            return WALK_STOP;
        }
        ch->names = p;
        ch->cap = cap;
    }
    snprintf(ch->names[ch->n++], sizeof(ch->names[0]), "%s", row->chain);
    return GH_OK;
}

static int cmp_chain(const void *a, const void *b)
{
    return strcmp(a, b);
}

void gh_api_audit_checkpoints(struct call *c)
{
    static const char *const names[] = {"chain", "limit", "cursor", NULL};
    char chain_q[GH_STORE_TENANT_ID_SIZE + 1], chain[GH_STORE_TENANT_ID_SIZE];
    char cursor_text[GH_AUDIT_CURSOR_MAX];
    struct gh_audit_cp_cursor cur = {0};
    struct cp_page pg = {0};
    struct chains all = {0};
    struct gh_err err = {0};
    uint8_t digest[GH_AUDIT_DIGEST_LEN];
    size_t limit;
    int rc = GH_OK;

    if (!known_params(c, names) || !param(c, "chain", chain_q, sizeof(chain_q)) ||
        !limit_param(c, &limit) || !param(c, "cursor", cursor_text, sizeof(cursor_text)) ||
        !scope(c, "chain", chain_q, chain, sizeof(chain)))
        return;
    const char *fields[] = {chain};
    gh_audit_filter_digest(fields, 1, digest);
    if (cursor_text[0]) {
        if (gh_audit_cp_cursor_decode(cursor_text, &cur) != 0) {
            gh_api_reply_error(c, 400, "invalid_cursor", "cursor is malformed");
            return;
        }
        if (memcmp(cur.digest, digest, sizeof(digest)) != 0 ||
            (chain[0] && strcmp(cur.chain, chain) != 0)) {
            gh_api_reply_error(c, 400, "invalid_cursor", "cursor was made under another chain");
            return;
        }
    }
    pg.items = json_array();
    pg.limit = limit;
    if (chain[0]) {
        rc = gh_store_audit_checkpoints_walk(c->st, chain, cur.seq + 1, 0, cp_page_cb, &pg, &err);
    } else {
        /* Every chain, in name order, from the cursor's on. */
        rc = gh_store_audit_heads(c->st, chains_cb, &all, &err);
        if (rc == WALK_STOP && all.failed) rc = GH_ERROR;
        if (rc == GH_OK) qsort(all.names, all.n, sizeof(*all.names), cmp_chain);
        for (size_t i = 0; rc == GH_OK && i < all.n && !pg.more; i++) {
            int order = cur.chain[0] ? strcmp(all.names[i], cur.chain) : 1;
            if (order < 0) continue;
            rc = gh_store_audit_checkpoints_walk(c->st, all.names[i], order == 0 ? cur.seq + 1 : 1,
                                                 0, cp_page_cb, &pg, &err);
        }
        free(all.names);
    }
    if (rc == WALK_STOP) rc = GH_OK;
    if (rc == GH_OK) rc = gh_store_audit_sync(c->st, &err); /* as a query's */
    if (rc != GH_OK) {
        json_decref(pg.items);
        if (err.msg[0] == '\0') snprintf(err.msg, sizeof(err.msg), "out of memory");
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    json_t *doc = json_pack("{s:o}", "checkpoints", pg.items);
    if (pg.more) {
        char next[GH_AUDIT_CURSOR_MAX];
        snprintf(cur.chain, sizeof(cur.chain), "%s", pg.last.chain);
        cur.seq = pg.last.seq;
        memcpy(cur.digest, digest, sizeof(digest));
        gh_audit_cp_cursor_encode(&cur, next);
        json_object_set_new(doc, "next_cursor", json_string(next));
    } else {
        json_object_set_new(doc, "next_cursor", json_null());
    }
    gh_api_reply_json(c, 200, doc);
}

/* ---- GET /v1/audit/keys ---- */

void gh_api_audit_keys(struct call *c)
{
    static const char *const names[] = {NULL};
    struct gh_store_audit_key *keys;
    struct gh_err err = {0};
    size_t count = 0;
    int rc;

    if (!known_params(c, names)) return;
    keys = calloc(KEYS_MAX, sizeof(*keys));
    if (keys == NULL) {
        gh_api_reply_error(c, 500, "internal_error", "out of memory");
        return;
    }
    rc = gh_store_audit_keys_list(c->st, keys, KEYS_MAX, &count, &err);
    if (rc != GH_OK) {
        free(keys);
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < count; i++)
        /* The public half only: the private PEM never leaves the store. */
        json_array_append_new(items,
                              json_pack("{s:s, s:s, s:s, s:I}", "key_id", keys[i].key_id,
                                        "algorithm", "Ed25519", "public_pem", keys[i].public_pem,
                                        "created_at", (json_int_t)keys[i].created_at));
    /* The private halves are wiped before the memory goes back. */
    for (size_t i = 0; i < KEYS_MAX; i++)
        OPENSSL_cleanse(keys[i].private_pem, sizeof(keys[i].private_pem));
    free(keys);
    gh_api_reply_json(c, 200, json_pack("{s:o}", "keys", items));
}
