/* The gh_store_audit_* wrappers: they validate every audit row, checkpoint,
 * key and filter before an engine sees it (so each engine may assume valid
 * input, and all refuse the same input with the same message), set the
 * keys' creation time, and turn a query's first-page cursor into a keyset. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "store/store.h"

static int invalid(struct gh_err *err, const char *field, const char *rule)
{
    gh_err_set(err, NULL, 0, 0, "%s: %s", field, rule);
    return GH_STORE_INVALID;
}

static int invalid_at(struct gh_err *err, const char *what, size_t i, const char *field,
                      const char *rule)
{
    gh_err_set(err, NULL, 0, 0, "%s[%zu].%s: %s", what, i, field, rule);
    return GH_STORE_INVALID;
}

static bool terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

bool gh_store_valid_audit_chain(const char *s)
{
    size_t n;

    if (s == NULL) return false;
    n = strnlen(s, GH_STORE_AUDIT_CHAIN_SIZE);
    if (n == 0 || n >= GH_STORE_AUDIT_CHAIN_SIZE) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f) return false;
    return true;
}

static bool valid_hex64(const char *s)
{
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return s[64] == '\0';
}

static bool valid_base62(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return s[len] == '\0';
}

static bool valid_base64_sig(const char *s)
{
    /* 64 bytes: 21 groups of 4 characters, then 2 + 1 character and "=". */
    for (int i = 0; i < 86; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '+' || c == '/'))
            return false;
    }
    return s[86] == '=' && s[87] == '=' && s[88] == '\0';
}

static bool valid_outcome(const char *s)
{
    return strcmp(s, "success") == 0 || strcmp(s, "denied") == 0 || strcmp(s, "failed") == 0;
}

static int check_row(const struct gh_store_audit_row *r, size_t i, struct gh_err *err)
{
    if (!gh_store_valid_audit_chain(r->chain))
        return invalid_at(err, "rows", i, "chain", "must be 1-31 bytes without control characters");
    if (r->seq < 1 || r->seq > INT64_MAX)
        return invalid_at(err, "rows", i, "seq", "must be 1..2^63-1");
    if (strnlen(r->id, sizeof(r->id)) != 36)
        return invalid_at(err, "rows", i, "id", "must be a UUID (36 characters)");
    if (r->time_us < 0) return invalid_at(err, "rows", i, "time_us", "must be >= 0");
    if (r->tenant_id[0] != '\0' && !gh_store_valid_audit_chain(r->tenant_id))
        return invalid_at(err, "rows", i, "tenant_id",
                          "must be empty or 1-31 bytes without control characters");
    if (!terminated(r->actor, sizeof(r->actor)) || !terminated(r->action, sizeof(r->action)) ||
        !terminated(r->resource, sizeof(r->resource)) ||
        !terminated(r->request_id, sizeof(r->request_id)) || !terminated(r->node, sizeof(r->node)))
        return invalid_at(err, "rows", i, "strings", "must be NUL-terminated");
    if (!terminated(r->outcome, sizeof(r->outcome)) || !valid_outcome(r->outcome))
        return invalid_at(err, "rows", i, "outcome", "must be success, denied or failed");
    if (!valid_hex64(r->hash))
        return invalid_at(err, "rows", i, "hash", "must be 64 lowercase hex");
    if (r->body_len < 1 || r->body_len > GH_STORE_AUDIT_BODY_MAX)
        return invalid_at(err, "rows", i, "body_len", "must be 1..8192");
    return GH_OK;
}

static int check_checkpoint(const struct gh_store_audit_checkpoint *c, size_t i, struct gh_err *err)
{
    if (!gh_store_valid_audit_chain(c->chain))
        return invalid_at(err, "checkpoints", i, "chain",
                          "must be 1-31 bytes without control characters");
    if (c->seq < 1 || c->seq > INT64_MAX)
        return invalid_at(err, "checkpoints", i, "seq", "must be 1..2^63-1");
    if (!valid_hex64(c->hash))
        return invalid_at(err, "checkpoints", i, "hash", "must be 64 lowercase hex");
    if (c->time_ms < 0) return invalid_at(err, "checkpoints", i, "time_ms", "must be >= 0");
    if (!valid_base62(c->key_id, 16))
        return invalid_at(err, "checkpoints", i, "key_id", "must be 16 base62 characters");
    if (!valid_base64_sig(c->signature))
        return invalid_at(err, "checkpoints", i, "signature",
                          "must be the base64 of 64 bytes (88 characters)");
    return GH_OK;
}

static int check_batch(const struct gh_store_audit_row *rows, size_t n,
                       const struct gh_store_audit_checkpoint *cps, size_t ncp, struct gh_err *err)
{
    int rc;

    for (size_t i = 0; i < n; i++)
        if ((rc = check_row(&rows[i], i, err)) != GH_OK) return rc;
    for (size_t i = 0; i < ncp; i++)
        if ((rc = check_checkpoint(&cps[i], i, err)) != GH_OK) return rc;
    return GH_OK;
}

/* The caller's rechain, then the checks every batch gets on entry: the
 * engine only ever sees rows that passed them. */
struct checked_rechain {
    const struct gh_store_audit_rechain *inner;
    const struct gh_store_audit_row *rows;
    size_t n;
    const struct gh_store_audit_checkpoint *cps;
    struct gh_err *err;
};

static int rechain_checked(void *arg, const struct gh_store_audit_head *heads, size_t nheads,
                           size_t *ncp)
{
    struct checked_rechain *c = arg;
    int rc = c->inner->fn(c->inner->arg, heads, nheads, ncp);

    if (rc != GH_OK) {
        gh_err_set(c->err, NULL, 0, 0, "audit append: the batch could not be chained again");
        return rc;
    }
    return check_batch(c->rows, c->n, c->cps, *ncp, c->err);
}

int gh_store_audit_append_unsynced(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                                   const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                                   const struct gh_store_audit_rechain *rechain, bool *unsynced,
                                   struct gh_err *err)
{
    struct checked_rechain c = {rechain, rows, n, cps, err};
    struct gh_store_audit_rechain outer = {rechain_checked, &c};
    int rc = check_batch(rows, n, cps, *ncp, err);

    if (unsynced != NULL) *unsynced = false;
    if (rc != GH_OK) return rc;
    if (n + *ncp == 0) return GH_OK;
    return st->ops->audit_append(st, rows, n, cps, ncp, rechain ? &outer : NULL, unsynced, err);
}

int gh_store_audit_append_rechain(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                                  const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                                  const struct gh_store_audit_rechain *rechain, struct gh_err *err)
{
    return gh_store_audit_append_unsynced(st, rows, n, cps, ncp, rechain, NULL, err);
}

int gh_store_audit_sync(struct gh_store *st, struct gh_err *err)
{
    return st->ops->audit_sync ? st->ops->audit_sync(st, err) : GH_OK;
}

int gh_store_audit_append(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                          const struct gh_store_audit_checkpoint *cps, size_t ncp,
                          struct gh_err *err)
{
    return gh_store_audit_append_rechain(st, rows, n, cps, &ncp, NULL, err);
}

int gh_store_audit_heads(struct gh_store *st, gh_store_audit_row_cb cb, void *arg,
                         struct gh_err *err)
{
    return st->ops->audit_heads(st, cb, arg, err);
}

/* A filter string: NULL or "" (any), else at most <max> bytes. */
static bool filter_ok(const char *s, size_t max)
{
    return s == NULL || strnlen(s, max + 1) <= max;
}

/* The keyset position <after> of a query by time with the range's bound on
 * the side the walk moves towards folded in: (from_us, 0) is just before
 * every row at from_us or later, (to_us, 0) just after every row before
 * to_us (rowids start at 1). A position outside the range (a forged cursor)
 * thus still returns only rows inside it, and an engine has one bound to
 * seek, not two to choose from. */
static struct gh_store_audit_pos clamp_pos(const struct gh_store_audit_filter *f,
                                           const struct gh_store_audit_pos *after)
{
    struct gh_store_audit_pos p = *after;

    if (f->oldest_first && f->from_us > 0 && p.time_us < f->from_us) {
        p.time_us = f->from_us;
        p.rowid = 0;
    }
    if (!f->oldest_first && f->to_us > 0 && p.time_us >= f->to_us) {
        p.time_us = f->to_us;
        p.rowid = 0;
    }
    return p;
}

int gh_store_audit_query(struct gh_store *st, const struct gh_store_audit_filter *f,
                         const struct gh_store_audit_pos *after, size_t limit,
                         struct gh_store_audit_row *out, size_t *count, bool *more,
                         struct gh_err *err)
{
    struct gh_store_audit_filter g = *f;
    struct gh_store_audit_pos start;
    size_t c = 0;
    bool m = false;
    int rc;

    *count = 0;
    *more = false;
    if (limit < 1 || limit > GH_STORE_LIST_MAX) {
        gh_err_set(err, NULL, 0, 0, "limit: must be 1-%d", GH_STORE_LIST_MAX);
        return GH_STORE_INVALID;
    }
    if (after != NULL && (after->rowid < 1 || after->time_us < 0))
        return invalid(err, "cursor", "must name a row");
    if (g.tenant_id != NULL && g.tenant_id[0] != '\0' && !gh_store_valid_audit_chain(g.tenant_id))
        return invalid(err, "tenant", "must be 1-31 bytes without control characters");
    if (!filter_ok(g.actor, sizeof(out->actor) - 1)) return invalid(err, "actor", "too long");
    if (!filter_ok(g.action, sizeof(out->action) - 1)) return invalid(err, "action", "too long");
    if (!filter_ok(g.outcome, sizeof(out->outcome) - 1))
        return invalid(err, "outcome", "must be success, denied or failed");
    if (!filter_ok(g.resource, sizeof(out->resource) - 1))
        return invalid(err, "resource", "too long");
    if (!filter_ok(g.request_id, sizeof(out->request_id) - 1))
        return invalid(err, "request_id", "too long");
    if (g.from_us < 0 || g.to_us < 0) return invalid(err, "time", "must be >= 0");
    if (g.to_us > 0 && g.from_us >= g.to_us) return invalid(err, "time", "from must be before to");
    /* Engines see NULL for "any", never "". */
    if (g.tenant_id && !g.tenant_id[0]) g.tenant_id = NULL;
    if (g.actor && !g.actor[0]) g.actor = NULL;
    if (g.action && !g.action[0]) g.action = NULL;
    if (g.outcome && !g.outcome[0]) g.outcome = NULL;
    if (g.resource && !g.resource[0]) g.resource = NULL;
    if (g.request_id && !g.request_id[0]) g.request_id = NULL;
    if (after == NULL) {
        start.time_us = g.oldest_first ? 0 : INT64_MAX;
        start.rowid = g.oldest_first ? 0 : INT64_MAX;
        after = &start;
    }
    start = clamp_pos(&g, after);
    rc = st->ops->audit_query(st, &g, &start, limit, out, &c, &m, err);
    if (rc != GH_OK) return rc;
    *count = c;
    *more = m;
    return GH_OK;
}

static int check_walk(const char *chain, uint64_t from_seq, uint64_t to_seq, struct gh_err *err)
{
    if (chain != NULL && !gh_store_valid_audit_chain(chain))
        return invalid(err, "chain", "must be 1-31 bytes without control characters");
    if (from_seq > INT64_MAX || to_seq > INT64_MAX) return invalid(err, "seq", "too large");
    return GH_OK;
}

int gh_store_audit_walk(struct gh_store *st, const char *chain, uint64_t from_seq, uint64_t to_seq,
                        gh_store_audit_row_cb cb, void *arg, struct gh_err *err)
{
    int rc = check_walk(chain, from_seq, to_seq, err);

    if (rc != GH_OK) return rc;
    return st->ops->audit_walk(st, chain, from_seq, to_seq == 0 ? INT64_MAX : to_seq, cb, arg, err);
}

int gh_store_audit_seq_span(struct gh_store *st, const char *chain, int64_t from_us, int64_t to_us,
                            uint64_t *first, uint64_t *last, struct gh_err *err)
{
    *first = *last = 0;
    if (chain == NULL || !gh_store_valid_audit_chain(chain))
        return invalid(err, "chain", "must be 1-31 bytes without control characters");
    if (from_us < 0 || to_us < 0) return invalid(err, "time", "must be >= 0");
    if (to_us == 0) to_us = INT64_MAX;
    if (from_us >= to_us) return invalid(err, "time", "from must be before to");
    return st->ops->audit_seq_span(st, chain, from_us, to_us, first, last, err);
}

int gh_store_audit_scan(struct gh_store *st, int64_t after_rowid, int64_t to_rowid,
                        gh_store_audit_row_cb cb, void *arg, struct gh_err *err)
{
    if (to_rowid < 0) return invalid(err, "to_rowid", "must be >= 0");
    return st->ops->audit_scan(st, after_rowid, to_rowid == 0 ? INT64_MAX : to_rowid, cb, arg, err);
}

unsigned gh_store_audit_scan_slots(struct gh_store *st)
{
    unsigned n = st->ops->audit_scan_slots(st);

    return n > 0 ? n : 1;
}

int gh_store_audit_checkpoints_walk(struct gh_store *st, const char *chain, uint64_t from_seq,
                                    uint64_t to_seq, gh_store_audit_cp_cb cb, void *arg,
                                    struct gh_err *err)
{
    int rc = check_walk(chain, from_seq, to_seq, err);

    if (rc != GH_OK) return rc;
    return st->ops->audit_checkpoints_walk(st, chain, from_seq, to_seq == 0 ? INT64_MAX : to_seq,
                                           cb, arg, err);
}

int gh_store_audit_key_insert(struct gh_store *st, struct gh_store_audit_key *k, struct gh_err *err)
{
    if (!valid_base62(k->key_id, 16)) return invalid(err, "key_id", "must be 16 base62 characters");
    if (!terminated(k->public_pem, sizeof(k->public_pem)) || k->public_pem[0] == '\0')
        return invalid(err, "public_pem", "must be a PEM of at most 511 bytes");
    if (!terminated(k->private_pem, sizeof(k->private_pem)) || k->private_pem[0] == '\0')
        return invalid(err, "private_pem", "must be a PEM of at most 511 bytes");
    k->created_at = (int64_t)gh_wall_ms();
    return st->ops->audit_key_insert(st, k, err);
}

int gh_store_audit_archive_commit(struct gh_store *st, const struct gh_store_audit_archive *a,
                                  struct gh_err *err)
{
    if (!gh_store_valid_audit_chain(a->chain))
        return invalid(err, "chain", "must be 1-31 bytes without control characters");
    if (a->first_seq < 1 || a->last_seq < a->first_seq || a->last_seq > INT64_MAX)
        return invalid(err, "seq", "must be 1 <= first_seq <= last_seq <= 2^63-1");
    if (a->events != a->last_seq - a->first_seq + 1)
        return invalid(err, "events", "must be last_seq - first_seq + 1");
    if (!valid_hex64(a->prev_hash) || !valid_hex64(a->last_hash) || !valid_hex64(a->file_sha256))
        return invalid(err, "hash", "must be 64 lowercase hex");
    if (!terminated(a->file, sizeof(a->file)) || a->file[0] == '\0')
        return invalid(err, "file", "must be 1-255 bytes");
    if (a->created_at < 0) return invalid(err, "created_at", "must be >= 0");
    return st->ops->audit_archive_commit(st, a, err);
}

int gh_store_audit_archives_walk(struct gh_store *st, const char *chain,
                                 gh_store_audit_archive_cb cb, void *arg, struct gh_err *err)
{
    if (chain != NULL && !gh_store_valid_audit_chain(chain))
        return invalid(err, "chain", "must be 1-31 bytes without control characters");
    return st->ops->audit_archives_walk(st, chain, cb, arg, err);
}

int gh_store_audit_keys_list(struct gh_store *st, struct gh_store_audit_key *out, size_t max,
                             size_t *count, struct gh_err *err)
{
    *count = 0;
    if (max == 0) return invalid(err, "max", "must be >= 1");
    return st->ops->audit_keys_list(st, out, max, count, err);
}
