/* The audit log in the SQLite store: durable appends of chained events and
 * their checkpoints, chain heads, filtered and paged queries, walks of a
 * chain for the verifier, and the audit keys. Input arrives validated by the
 * gh_store_audit_* wrappers (store_audit.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "store/store_int.h"

/* ---- Rows --------------------------------------------------------------------- */

/* Copies text column <col> into <dst> of <size> bytes; false (with what
 * fits copied) when it is NULL, too long or has a NUL inside. */
static bool col_copy(sqlite3_stmt *s, int col, char *dst, size_t size)
{
    /* One sqlite3_column_* call, not two, each of which goes through the
     * connection's API entry and exit: the value is read under our own
     * lock on the connection (readers are opened NOMUTEX), which is what
     * makes the unprotected value of sqlite3_column_value safe to read. */
    sqlite3_value *v = sqlite3_column_value(s, col);
    const unsigned char *text = sqlite3_value_text(v);
    size_t n = (size_t)sqlite3_value_bytes(v);
    bool ok = text != NULL && n < size;

    if (text == NULL) n = 0;
    if (n >= size) n = size - 1;
    /* One pass copies and stops at a NUL inside; libc's, not an inlined
     * `rep movs`, which costs more than these short strings (the scan of
     * the verifier copies eleven per row). */
    if (n > 0 && memccpy(dst, text, '\0', n) != NULL) ok = false;
    dst[n] = '\0';
    return ok;
}

/* Fills <r> from the 14 columns of GH_SQ_AUDIT_COLS. Only the fields are
 * written, not the whole struct: a walk reuses one row for a million. A
 * column that does not read back as the gateway writes it marks the row
 * damaged rather than stopping the walk: the verifier must name the row. */
static void audit_row(sqlite3_stmt *s, struct gh_store_audit_row *r)
{
    sqlite3_value *bv;
    const unsigned char *body;
    size_t n;
    bool ok;

    r->rowid = sqlite3_column_int64(s, 0);
    r->seq = (uint64_t)sqlite3_column_int64(s, 2);
    r->time_us = sqlite3_column_int64(s, 4);
    ok = col_copy(s, 1, r->chain, sizeof(r->chain));
    ok &= col_copy(s, 3, r->id, sizeof(r->id));
    ok &= col_copy(s, 5, r->tenant_id, sizeof(r->tenant_id));
    ok &= col_copy(s, 6, r->actor, sizeof(r->actor));
    ok &= col_copy(s, 7, r->action, sizeof(r->action));
    ok &= col_copy(s, 8, r->resource, sizeof(r->resource));
    ok &= col_copy(s, 9, r->outcome, sizeof(r->outcome));
    ok &= col_copy(s, 10, r->request_id, sizeof(r->request_id));
    ok &= col_copy(s, 11, r->hash, sizeof(r->hash));
    ok &= col_copy(s, 13, r->node, sizeof(r->node));
    bv = sqlite3_column_value(s, 12); /* as in col_copy */
    body = sqlite3_value_text(bv);
    n = (size_t)sqlite3_value_bytes(bv);
    if (body == NULL || n > GH_STORE_AUDIT_BODY_MAX) {
        ok = false;
        n = 0;
    }
    if (n > 0) memcpy(r->body, body, n);
    r->body[n] = '\0';
    r->body_len = n;
    r->damaged = !ok;
}

static int checkpoint_row(sqlite3_stmt *s, struct gh_store_audit_checkpoint *cp, struct gh_err *err)
{
    cp->seq = (uint64_t)sqlite3_column_int64(s, 1);
    cp->time_ms = sqlite3_column_int64(s, 3);
    if (gh_sqlite__col_text(s, 0, cp->chain, sizeof(cp->chain), err) != GH_OK ||
        gh_sqlite__col_text(s, 2, cp->hash, sizeof(cp->hash), err) != GH_OK ||
        gh_sqlite__col_text(s, 4, cp->key_id, sizeof(cp->key_id), err) != GH_OK ||
        gh_sqlite__col_text(s, 5, cp->signature, sizeof(cp->signature), err) != GH_OK)
        return GH_ERROR;
    return GH_OK;
}

/* ---- Append ------------------------------------------------------------------- */

/* CONFLICT unless (chain, seq - 1) of <r> is stored (or seq is 1): a writer
 * whose head is stale must not leave a gap. */
static int check_prev(struct gh_sqlite_conn *c, const struct gh_store_audit_row *r, size_t i,
                      struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_AUDIT_PREV_EXISTS, err);
    int rc;

    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, r->chain);
    sqlite3_bind_int64(s, 2, (int64_t)r->seq - 1);
    rc = gh_sqlite__row(c, s, "audit append", err);
    if (rc == GH_OK) {
        gh_sqlite__done(s);
        return GH_OK;
    }
    if (rc == GH_STORE_NOT_FOUND) {
        gh_err_set(err, NULL, 0, 0, "rows[%zu]: seq %llu of chain %s does not follow its head", i,
                   (unsigned long long)r->seq, r->chain);
        return GH_STORE_CONFLICT;
    }
    return rc;
}

/* Binds a row's text in place (SQLITE_STATIC): the rows outlive the
 * statement's run, whose bindings gh_sqlite__done() clears, so SQLite need
 * not copy eleven strings per row into memory of its own (an allocation
 * and a copy each: 9% of the append's CPU, bench/RESULTS.md). */
static void bind_in_place(sqlite3_stmt *s, int idx, const char *text)
{
    sqlite3_bind_text(s, idx, text, -1, SQLITE_STATIC);
}

/* Binds row <r> as the row starting at parameter <first> of <s>. */
static void bind_row(sqlite3_stmt *s, int first, const struct gh_store_audit_row *r)
{
    bind_in_place(s, first, r->chain);
    sqlite3_bind_int64(s, first + 1, (int64_t)r->seq);
    bind_in_place(s, first + 2, r->id);
    sqlite3_bind_int64(s, first + 3, r->time_us);
    bind_in_place(s, first + 4, r->tenant_id);
    bind_in_place(s, first + 5, r->actor);
    bind_in_place(s, first + 6, r->action);
    bind_in_place(s, first + 7, r->resource);
    bind_in_place(s, first + 8, r->outcome);
    bind_in_place(s, first + 9, r->request_id);
    bind_in_place(s, first + 10, r->hash);
    sqlite3_bind_text(s, first + 11, r->body, (int)r->body_len, SQLITE_STATIC);
    bind_in_place(s, first + 12, r->node);
}

#define ROW_PARAMS 13

/* Inserts the <n> rows at <rows> (1 or GH_SQ_AUDIT_GROUP of them) with
 * one statement and sets their rowids. Within one statement the rows get
 * consecutive rowids in VALUES order: AUTOINCREMENT gives each the largest
 * so far plus one, and this connection is the only writer (an overflow is
 * SQLITE_FULL, never a reused rowid). A group that fails half-way keeps
 * its first rows (INSERT OR FAIL, store_sqlite.c says why) until the
 * append's failure rolls the whole batch back in gh_sqlite__write_end(). */
static int insert_rows(struct gh_sqlite_conn *c, struct gh_store_audit_row *rows, size_t n,
                       struct gh_err *err)
{
    sqlite3_stmt *s =
        gh_sqlite__stmt(c, n == 1 ? GH_SQ_AUDIT_INSERT : GH_SQ_AUDIT_INSERT_GROUP, err);
    int64_t last;
    int rc;

    if (s == NULL) return GH_ERROR;
    /* Outside a transaction (one SQLite ended by itself on an error some
     * caller let pass), a group failing half-way would commit its first
     * rows: a gap in their chains. */
    if (sqlite3_get_autocommit(c->db))
        return gh_err_set(err, NULL, 0, 0, "audit append: no transaction open");
    for (size_t j = 0; j < n; j++)
        bind_row(s, 1 + (int)j * ROW_PARAMS, &rows[j]);
    rc = gh_sqlite__conflict(c, gh_sqlite__exec(c, s, "audit append", err));
    if (rc != GH_OK) return rc;
    last = sqlite3_last_insert_rowid(c->db);
    for (size_t j = 0; j < n; j++)
        rows[j].rowid = last - (int64_t)(n - 1 - j);
    return GH_OK;
}

/* Whether the row <which> (GH_SQ_AUDIT_HASH_AT: the event;
 * GH_SQ_AUDIT_CP_HASH_AT: the checkpoint) of (<chain>, <seq>) exists with
 * hash <hash>: *same. GH_OK, or GH_ERROR when it cannot be read. */
static int hash_at(struct gh_sqlite_conn *c, int which, const char *chain, uint64_t seq,
                   const char *hash, const char *what, bool *same, struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, which, err);
    int rc;

    *same = false;
    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, chain);
    sqlite3_bind_int64(s, 2, (int64_t)seq);
    rc = gh_sqlite__row(c, s, what, err);
    if (rc == GH_ERROR) return rc;
    if (rc == GH_OK) {
        *same = strcmp((const char *)sqlite3_column_text(s, 0), hash) == 0;
        gh_sqlite__done(s);
    }
    return GH_OK;
}

/* A checkpoint must name a stored event by its hash: INVALID otherwise. */
static int insert_checkpoint(struct gh_sqlite_conn *c, const struct gh_store_audit_checkpoint *cp,
                             size_t i, struct gh_err *err)
{
    sqlite3_stmt *s;
    bool same;
    int rc;

    if (hash_at(c, GH_SQ_AUDIT_HASH_AT, cp->chain, cp->seq, cp->hash, "audit checkpoint", &same,
                err) != GH_OK)
        return GH_ERROR;
    if (!same) {
        gh_err_set(err, NULL, 0, 0,
                   "checkpoints[%zu]: no event of chain %s at seq %llu has its hash", i, cp->chain,
                   (unsigned long long)cp->seq);
        return GH_STORE_INVALID;
    }
    s = gh_sqlite__stmt(c, GH_SQ_AUDIT_CP_INSERT, err);
    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, cp->chain);
    sqlite3_bind_int64(s, 2, (int64_t)cp->seq);
    gh_sqlite__bind_text(s, 3, cp->hash);
    sqlite3_bind_int64(s, 4, cp->time_ms);
    gh_sqlite__bind_text(s, 5, cp->key_id);
    gh_sqlite__bind_text(s, 6, cp->signature);
    rc = gh_sqlite__conflict(c, gh_sqlite__exec(c, s, "audit checkpoint", err));
    if (rc != GH_OK || sqlite3_changes(c->db) > 0) return rc;
    /* A checkpoint of that (chain, seq) exists: another writer's of the same
     * head (a CLI command's, and this gateway's after it read the heads
     * again) is as good as this one; the hash was checked just above. */
    if (hash_at(c, GH_SQ_AUDIT_CP_HASH_AT, cp->chain, cp->seq, cp->hash, "audit checkpoint", &same,
                err) != GH_OK)
        return GH_ERROR;
    if (same) return GH_OK;
    gh_err_set(err, NULL, 0, 0, "checkpoints[%zu]: another checkpoint at that seq", i);
    return GH_STORE_CONFLICT;
}

/* The chains of one batch and the seq last inserted for each, so that a row
 * whose predecessor went in earlier in the same batch needs no lookup: a
 * gateway serving many tenants interleaves their chains, so the row before
 * is seldom the predecessor. Open addressing over a fixed table; a chain
 * that finds no room is simply looked up in the store, as before. */
#define BATCH_CHAINS 256 /* a power of two */

struct batch_heads {
    const char *chain[BATCH_CHAINS]; /* into the batch's rows; NULL: free */
    uint64_t seq[BATCH_CHAINS];
};

static uint64_t *batch_head(struct batch_heads *b, const char *chain)
{
    uint32_t h = 2166136261u;

    for (const char *p = chain; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    for (uint32_t k = 0; k < 8; k++) {
        uint32_t i = (h + k) & (BATCH_CHAINS - 1);
        if (b->chain[i] == NULL) {
            b->chain[i] = chain;
            b->seq[i] = 0;
            return &b->seq[i];
        }
        if (strcmp(b->chain[i], chain) == 0) return &b->seq[i];
    }
    return NULL;
}

/* Whether a row of <pending> (not inserted yet) is (chain, seq) of <r>'s
 * predecessor. */
static bool pending_has_prev(const struct gh_store_audit_row *pending, size_t n,
                             const struct gh_store_audit_row *r)
{
    for (size_t j = 0; j < n; j++)
        if (pending[j].seq + 1 == r->seq && strcmp(pending[j].chain, r->chain) == 0) return true;
    return false;
}

/* The rows go in by groups of GH_SQ_AUDIT_GROUP, one statement each: a
 * statement opens the table's and each index's cursors once for all its
 * rows, so an index whose keys grow (time, rowid, request id) takes each
 * row at its last page without a seek from the root, and AUTOINCREMENT's
 * counter is written once per statement instead of per row (5% less CPU
 * per event in the store call, 7 of 8 interleaved pairs; bench/RESULTS.md).
 * A row is checked before it joins the group: its predecessor is earlier
 * in the batch (inserted, or in the group) or in the store; the store is
 * asked only after the group is looked through, so a row is never judged
 * against what the group has not written yet.
 *
 * <rechain> is not used: one SQLite file has one gateway process writing
 * its audit log (the CLI's rare appends meet CONFLICT and the writer's own
 * retry), and the write transaction is the lock. */
int gh_sqlite__audit_append(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                            const struct gh_store_audit_checkpoint *cps, size_t *ncp_io,
                            const struct gh_store_audit_rechain *rechain, bool *unsynced,
                            struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    size_t ncp = *ncp_io, group = 0; /* rows[group..i) wait for their statement */
    struct batch_heads heads;        /* 4 KiB: the stack, not the heap */
    int rc;

    (void)rechain;
    memset(heads.chain, 0, sizeof(heads.chain));
    if (unsynced != NULL) *unsynced = false;
    /* Without a caller to sync later, the commit's own fsync. */
    rc = unsynced ? gh_sqlite__write_begin(ss, err) : gh_sqlite__write_begin_durable(ss, err);
    if (rc != GH_OK) return rc;
    for (size_t i = 0; rc == GH_OK && i < n; i++) {
        uint64_t *head = batch_head(&heads, rows[i].chain);
        /* A predecessor earlier in this batch: no lookup. */
        bool follows = head != NULL && *head > 0 && *head + 1 == rows[i].seq;
        if (rows[i].seq > 1 && !follows && !pending_has_prev(rows + group, i - group, &rows[i]))
            rc = check_prev(c, &rows[i], i, err);
        if (rc != GH_OK) break;
        if (head != NULL) *head = rows[i].seq;
        if (i + 1 - group == GH_SQ_AUDIT_GROUP) {
            rc = insert_rows(c, rows + group, GH_SQ_AUDIT_GROUP, err);
            group = i + 1;
        }
    }
    for (; rc == GH_OK && group < n; group++)
        rc = insert_rows(c, rows + group, 1, err);
    for (size_t i = 0; rc == GH_OK && i < ncp; i++)
        rc = insert_checkpoint(c, &cps[i], i, err);
    rc = gh_sqlite__write_end(ss, rc, err);
    if (rc != GH_OK)
        for (size_t i = 0; i < n; i++)
            rows[i].rowid = 0;
    else if (unsynced != NULL)
        *unsynced = true;
    return rc;
}

/* ---- Reads -------------------------------------------------------------------- */

/* Steps <s> (bound, on reader <c> in a read transaction) and calls <cb>
 * with each row, in <row>. */
static int stream_rows(struct gh_sqlite_conn *c, sqlite3_stmt *s, gh_store_audit_row_cb cb,
                       void *arg, const char *what, struct gh_err *err)
{
    struct gh_store_audit_row *row = malloc(sizeof(*row));
    int rc = GH_OK, step;

    if (row == NULL) {
        gh_sqlite__done(s);
        return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    }
    memset(row, 0, sizeof(*row));
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        audit_row(s, row);
        rc = cb(row, arg);
        if (rc != GH_OK) break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, what, err);
    gh_sqlite__done(s);
    free(row);
    return rc;
}

int gh_sqlite__audit_heads(struct gh_store *st, gh_store_audit_row_cb cb, void *arg,
                           struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_AUDIT_HEADS, err);
    int rc = s ? stream_rows(c, s, cb, arg, "audit heads", err) : GH_ERROR;

    gh_sqlite__read_release(c);
    return rc;
}

/* Sets the reader's mmap size (the pragma answers with a row: the size). */
static int set_mmap(struct gh_sqlite_conn *c, bool on, struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, on ? GH_SQ_MMAP_ON : GH_SQ_MMAP_OFF, err);
    int step;

    if (s == NULL) return GH_ERROR;
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        ;
    if (step != SQLITE_DONE) gh_sqlite__fail(c, "mmap_size", err);
    gh_sqlite__done(s);
    return step == SQLITE_DONE ? GH_OK : GH_ERROR;
}

/* Streams statement <id> (a walk or the scan) inside one read transaction.
 * A long walk reads the file through mmap: no read() and copy per page. */
static int walk(struct gh_store *st, enum gh_sqlite_stmt id, const char *chain, int64_t a,
                int64_t b, gh_store_audit_row_cb cb, void *arg, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    struct gh_err scratch;
    sqlite3_stmt *s;
    int rc;

    rc = set_mmap(c, true, err);
    if (rc != GH_OK) goto out;
    /* One read transaction: the whole walk sees one snapshot. */
    rc = gh_sqlite__read_begin(c, err);
    if (rc != GH_OK) goto out;
    s = gh_sqlite__stmt(c, id, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto end;
    }
    if (id == GH_SQ_AUDIT_SCAN) {
        sqlite3_bind_int64(s, 1, a);
        sqlite3_bind_int64(s, 2, b);
    } else {
        if (chain) gh_sqlite__bind_text(s, 1, chain);
        sqlite3_bind_int64(s, 2, a);
        sqlite3_bind_int64(s, 3, b);
    }
    rc = stream_rows(c, s, cb, arg, "audit walk", err);
end:
    gh_sqlite__read_end(c);
out:
    set_mmap(c, false, &scratch);
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__audit_walk(struct gh_store *st, const char *chain, uint64_t from_seq,
                          uint64_t to_seq, gh_store_audit_row_cb cb, void *arg, struct gh_err *err)
{
    return walk(st, chain ? GH_SQ_AUDIT_WALK_CHAIN : GH_SQ_AUDIT_WALK, chain, (int64_t)from_seq,
                (int64_t)to_seq, cb, arg, err);
}

int gh_sqlite__audit_seq_span(struct gh_store *st, const char *chain, int64_t from_us,
                              int64_t to_us, uint64_t *first, uint64_t *last, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    bool system = strcmp(chain, GH_STORE_SYSTEM_TENANT) == 0;
    sqlite3_stmt *s =
        gh_sqlite__stmt(c, system ? GH_SQ_AUDIT_SEQ_SPAN_SYSTEM : GH_SQ_AUDIT_SEQ_SPAN, err);
    int rc;

    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, chain);
    sqlite3_bind_int64(s, 2, from_us);
    sqlite3_bind_int64(s, 3, to_us);
    rc = gh_sqlite__row(c, s, "audit seq span", err);
    /* min() of no rows is NULL, read as 0: no event in the window. */
    if (rc == GH_OK) {
        *first = (uint64_t)sqlite3_column_int64(s, 0);
        *last = (uint64_t)sqlite3_column_int64(s, 1);
        gh_sqlite__done(s);
    }
out:
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__audit_scan(struct gh_store *st, int64_t after_rowid, int64_t to_rowid,
                          gh_store_audit_row_cb cb, void *arg, struct gh_err *err)
{
    return walk(st, GH_SQ_AUDIT_SCAN, NULL, after_rowid, to_rowid, cb, arg, err);
}

int gh_sqlite__audit_checkpoints_walk(struct gh_store *st, const char *chain, uint64_t from_seq,
                                      uint64_t to_seq, gh_store_audit_cp_cb cb, void *arg,
                                      struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s =
        gh_sqlite__stmt(c, chain ? GH_SQ_AUDIT_CP_WALK_CHAIN : GH_SQ_AUDIT_CP_WALK, err);
    struct gh_store_audit_checkpoint cp;
    int rc = GH_OK, step;

    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    if (chain) gh_sqlite__bind_text(s, 1, chain);
    sqlite3_bind_int64(s, 2, (int64_t)from_seq);
    sqlite3_bind_int64(s, 3, (int64_t)to_seq);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&cp, 0, sizeof(cp));
        rc = checkpoint_row(s, &cp, err);
        if (rc != GH_OK) break;
        rc = cb(&cp, arg);
        if (rc != GH_OK) break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = gh_sqlite__fail(c, "audit checkpoints", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

/* ---- Queries ------------------------------------------------------------------ */

_Static_assert(GH_SQ_AUDIT_QUERY_VARIANTS >= GH_AQ_SHAPES, "a statement for every query shape");

/* The statement for the filters in <mask>, prepared on first use. Its SQL is
 * put together from constant pieces only: every value is a bound ?N (?1..?8
 * the filters, ?9 and ?11 the keyset, ?10 the limit), never text in the SQL.
 *
 * Without a time range the keyset is rowid, served by the indexes that end
 * in rowid. With one it is (time_us, rowid), so that the range is read in
 * index order from (time_us, rowid) or (tenant_id, time_us, rowid) and no
 * page sorts the range or walks the table down to it. The row value
 * (time_us, rowid) is then the only bound on the side the walk moves
 * towards: the range's bound on that side is folded into ?11 and ?9
 * (the wrapper's clamp_pos in store_audit.c), so the planner has one bound
 * to seek, not two to choose from.
 *
 * A tenant's query without a time range, an actor or a request id reads
 * its chain through UNIQUE (chain, seq) instead: the chain of a tenant is
 * its id, and along a chain seq grows with rowid (the writer commits a
 * chain in seq order), so seq order is rowid order there. That is what
 * lets the table do without an index on (tenant_id, rowid), one B-tree
 * fewer on every append (migration 10), and a tenant's query still costs
 * what its own chain holds, whatever the other tenants store (an action,
 * shared by all tenants, is filtered along the chain, as before). rowid
 * stays the keyset: the seq of the cursor's row is only where the walk
 * starts. When that row is not in the chain (archived meanwhile, or a
 * forged cursor), a cursor before the chain's first row (newest first) or
 * after its last (oldest first) gives an empty page at once, and any other
 * starts the walk at the chain's end, the rowid bound skipping to the
 * page: slower, the same rows. An actor (a tenant's key or subject) and a
 * request id have indexes of their own, which find their rows without the
 * walk. The system tenant is the exception: the system chain also holds
 * the events of no tenant (tenant_id ''; unknown callers' 401s can be most
 * of it), so its own rows have a partial index, (rowid) WHERE tenant_id =
 * 'system', named in its statements when they have no time range, actor
 * or request id (store_int.h has both rules). PostgreSQL does the same,
 * with the walk's start read apart (pg_audit.c, query_sql, says why). */
static sqlite3_stmt *query_stmt(struct gh_sqlite_conn *c, unsigned mask, struct gh_err *err)
{
    static const struct {
        unsigned bit;
        const char *sql;
    } parts[] = {
        {GH_AQ_TENANT, " AND tenant_id = ?1"},
        {GH_AQ_ACTOR, " AND actor = ?2"},
        {GH_AQ_ACTION, " AND action = ?3"},
        {GH_AQ_OUTCOME, " AND outcome = ?4"},
        {GH_AQ_RESOURCE, " AND resource = ?5"},
        {GH_AQ_REQUEST, " AND request_id = ?6"},
        {GH_AQ_FROM, " AND time_us >= ?7"},
        {GH_AQ_TO, " AND time_us < ?8"},
        {GH_AQ_SYSTEM, " AND tenant_id = '" GH_STORE_SYSTEM_TENANT "'"},
        {GH_AQ_OTHER_ACTION, " AND action <> '" GH_STORE_AUDIT_REQUEST_ACTION "'"},
    };
    bool oldest = mask & GH_AQ_OLDEST, by_time = mask & (GH_AQ_FROM | GH_AQ_TO);
    bool by_chain = gh_store__audit_query_walks_chain(mask);
    unsigned folded = !by_time ? 0 : oldest ? GH_AQ_FROM : GH_AQ_TO;
    char sql[1024];
    size_t o = 0;

#define APPEND(s) (memcpy(sql + o, (s), strlen(s)), o += strlen(s))
    if (c->audit_query[mask] != NULL) return c->audit_query[mask];
    /* Named: without statistics the planner would rather read the system
     * tenant's rows from (tenant_id, time_us, rowid) and sort them all. */
    if (gh_store__audit_query_walks_system(mask))
        APPEND("SELECT " GH_SQ_AUDIT_COLS " FROM audit_events INDEXED BY audit_events_of_system "
               "WHERE ");
    else
        APPEND("SELECT " GH_SQ_AUDIT_COLS " FROM audit_events WHERE ");
    if (by_time)
        APPEND(oldest ? "(time_us, rowid) > (?11, ?9)" : "(time_us, rowid) < (?11, ?9)");
    else if (by_chain)
        /* The seq of the cursor's row if it is still in the tenant's chain,
         * else the chain's end: see above. */
        APPEND(oldest ? "chain = ?1 AND seq > coalesce((SELECT seq FROM audit_events WHERE "
                        "rowid = ?9 AND chain = ?1), CASE WHEN ?9 >= (SELECT rowid FROM "
                        "audit_events WHERE chain = ?1 ORDER BY seq DESC LIMIT 1) THEN "
                        "9223372036854775807 ELSE 0 END) AND rowid > ?9"
                      : "chain = ?1 AND seq < coalesce((SELECT seq FROM audit_events WHERE "
                        "rowid = ?9 AND chain = ?1), CASE WHEN ?9 <= (SELECT rowid FROM "
                        "audit_events WHERE chain = ?1 ORDER BY seq LIMIT 1) THEN 0 ELSE "
                        "9223372036854775807 END) AND rowid < ?9");
    else
        APPEND(oldest ? "rowid > ?9" : "rowid < ?9");
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        if ((mask & parts[i].bit) && parts[i].bit != folded) APPEND(parts[i].sql);
    if (by_time)
        APPEND(oldest ? " ORDER BY time_us, rowid LIMIT ?10"
                      : " ORDER BY time_us DESC, rowid DESC LIMIT ?10");
    else if (by_chain)
        APPEND(oldest ? " ORDER BY seq LIMIT ?10" : " ORDER BY seq DESC LIMIT ?10");
    else
        APPEND(oldest ? " ORDER BY rowid LIMIT ?10" : " ORDER BY rowid DESC LIMIT ?10");
    sql[o] = '\0';
#undef APPEND
    if (sqlite3_prepare_v3(c->db, sql, (int)o, SQLITE_PREPARE_PERSISTENT, &c->audit_query[mask],
                           NULL) != SQLITE_OK) {
        gh_sqlite__fail(c, "prepare audit query", err);
        c->audit_query[mask] = NULL;
    }
    return c->audit_query[mask];
}

int gh_sqlite__audit_query(struct gh_store *st, const struct gh_store_audit_filter *f,
                           const struct gh_store_audit_pos *after, size_t limit,
                           struct gh_store_audit_row *out, size_t *count, bool *more,
                           struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    unsigned mask = gh_store__audit_query_shape(f);
    struct gh_store_audit_pos pos = *after; /* clamped into the range by the wrapper */
    sqlite3_stmt *s = query_stmt(c, mask, err);
    int rc = GH_OK, step;

    *count = 0;
    *more = false;
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    if (f->tenant_id) gh_sqlite__bind_text(s, 1, f->tenant_id);
    if (f->actor) gh_sqlite__bind_text(s, 2, f->actor);
    if (f->action) gh_sqlite__bind_text(s, 3, f->action);
    if (f->outcome) gh_sqlite__bind_text(s, 4, f->outcome);
    if (f->resource) gh_sqlite__bind_text(s, 5, f->resource);
    if (f->request_id) gh_sqlite__bind_text(s, 6, f->request_id);
    if (f->from_us > 0) sqlite3_bind_int64(s, 7, f->from_us);
    if (f->to_us > 0) sqlite3_bind_int64(s, 8, f->to_us);
    sqlite3_bind_int64(s, 9, pos.rowid);
    sqlite3_bind_int64(s, 10,
                       (int64_t)limit + 1); /* one more row says whether a next page exists */
    if (mask & (GH_AQ_FROM | GH_AQ_TO)) sqlite3_bind_int64(s, 11, pos.time_us);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (*count == limit) {
            *more = true;
            break;
        }
        audit_row(s, &out[*count]);
        (*count)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "audit query", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

/* ---- Keys --------------------------------------------------------------------- */

int gh_sqlite__audit_key_insert(struct gh_store *st, const struct gh_store_audit_key *k,
                                struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_AUDIT_KEY_INSERT, err);
    if (s == NULL) {
        rc = GH_ERROR;
    } else {
        gh_sqlite__bind_text(s, 1, k->key_id);
        gh_sqlite__bind_text(s, 2, k->public_pem);
        gh_sqlite__bind_text(s, 3, k->private_pem);
        sqlite3_bind_int64(s, 4, k->created_at);
        rc = gh_sqlite__conflict(c, gh_sqlite__exec(c, s, "audit key", err));
    }
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__audit_keys_list(struct gh_store *st, struct gh_store_audit_key *out, size_t max,
                               size_t *count, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_AUDIT_KEYS_LIST, err);
    int rc = GH_OK, step;

    *count = 0;
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    sqlite3_bind_int64(s, 1, max > INT64_MAX ? INT64_MAX : (int64_t)max);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        struct gh_store_audit_key *k = &out[*count];
        memset(k, 0, sizeof(*k));
        rc = gh_sqlite__col_text(s, 0, k->key_id, sizeof(k->key_id), err);
        if (rc == GH_OK) rc = gh_sqlite__col_text(s, 1, k->public_pem, sizeof(k->public_pem), err);
        if (rc == GH_OK)
            rc = gh_sqlite__col_text(s, 2, k->private_pem, sizeof(k->private_pem), err);
        if (rc != GH_OK) break;
        k->created_at = sqlite3_column_int64(s, 3);
        (*count)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "audit keys", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

/* ---- Archives ----------------------------------------------------------------- */

/* The int64 of statement <id> bound to <chain> (NULL reads as 0). */
static int chain_int(struct gh_sqlite_conn *c, enum gh_sqlite_stmt id, const char *chain,
                     int64_t *out, struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, id, err);
    int rc;

    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, chain);
    rc = gh_sqlite__row(c, s, "audit archive", err);
    if (rc != GH_OK) return rc;
    *out = sqlite3_column_int64(s, 0);
    gh_sqlite__done(s);
    return GH_OK;
}

static int archive_check(struct gh_sqlite_conn *c, const struct gh_store_audit_archive *a,
                         struct gh_err *err)
{
    int64_t hot_first = 0, archived = 0;
    bool same;

    if (chain_int(c, GH_SQ_AUDIT_HOT_FIRST, a->chain, &hot_first, err) != GH_OK ||
        chain_int(c, GH_SQ_AUDIT_ARCHIVE_LAST, a->chain, &archived, err) != GH_OK)
        return GH_ERROR;
    /* A prefix: right after what is archived, and the first event still hot. */
    if ((uint64_t)archived + 1 != a->first_seq || (uint64_t)hot_first != a->first_seq)
        return gh_err_set(err, NULL, 0, 0,
                          "audit archive: seq %llu of chain %s is not the first event still "
                          "in the store",
                          (unsigned long long)a->first_seq, a->chain),
               GH_STORE_CONFLICT;
    if (hash_at(c, GH_SQ_AUDIT_HASH_AT, a->chain, a->last_seq, a->last_hash, "audit archive", &same,
                err) != GH_OK)
        return GH_ERROR;
    if (!same)
        return gh_err_set(err, NULL, 0, 0,
                          "audit archive: the stored hash of chain %s at seq %llu is not the "
                          "segment's last hash",
                          a->chain, (unsigned long long)a->last_seq),
               GH_STORE_CONFLICT;
    return GH_OK;
}

int gh_sqlite__audit_archive_commit(struct gh_store *st, const struct gh_store_audit_archive *a,
                                    struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin_durable(ss, err);
    if (rc != GH_OK) return rc;
    rc = archive_check(c, a, err);
    if (rc != GH_OK) goto out;
    s = gh_sqlite__stmt(c, GH_SQ_AUDIT_ARCHIVE_DELETE, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, a->chain);
    sqlite3_bind_int64(s, 2, (int64_t)a->first_seq);
    sqlite3_bind_int64(s, 3, (int64_t)a->last_seq);
    rc = gh_sqlite__exec(c, s, "audit archive", err);
    if (rc != GH_OK) goto out;
    /* Every event of the range was there: with the first and last checked,
     * a count short of the range is a hole. */
    if ((uint64_t)sqlite3_changes64(c->db) != a->events) {
        rc =
            gh_err_set(err, NULL, 0, 0, "audit archive: chain %s has a gap in seq %llu..%llu",
                       a->chain, (unsigned long long)a->first_seq, (unsigned long long)a->last_seq);
        rc = GH_STORE_CONFLICT;
        goto out;
    }
    s = gh_sqlite__stmt(c, GH_SQ_AUDIT_ARCHIVE_INSERT, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, a->chain);
    sqlite3_bind_int64(s, 2, (int64_t)a->first_seq);
    sqlite3_bind_int64(s, 3, (int64_t)a->last_seq);
    gh_sqlite__bind_text(s, 4, a->prev_hash);
    gh_sqlite__bind_text(s, 5, a->last_hash);
    sqlite3_bind_int64(s, 6, (int64_t)a->events);
    gh_sqlite__bind_text(s, 7, a->file);
    gh_sqlite__bind_text(s, 8, a->file_sha256);
    sqlite3_bind_int64(s, 9, a->created_at);
    rc = gh_sqlite__conflict(c, gh_sqlite__exec(c, s, "audit archive", err));
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__audit_archives_walk(struct gh_store *st, const char *chain,
                                   gh_store_audit_archive_cb cb, void *arg, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = NULL;
    struct gh_store_audit_archive a;
    int rc = GH_OK, step;

    /* The verifier opens a store without migrating it: one older than
     * migration 5 has no archives, which is not an error. */
    if (sqlite3_table_column_metadata(c->db, "main", "audit_archives", NULL, NULL, NULL, NULL, NULL,
                                      NULL) != SQLITE_OK)
        goto out;
    s = gh_sqlite__stmt(c, chain ? GH_SQ_AUDIT_ARCHIVES_CHAIN : GH_SQ_AUDIT_ARCHIVES, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    if (chain) gh_sqlite__bind_text(s, 1, chain);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&a, 0, sizeof(a));
        a.first_seq = (uint64_t)sqlite3_column_int64(s, 1);
        a.last_seq = (uint64_t)sqlite3_column_int64(s, 2);
        a.events = (uint64_t)sqlite3_column_int64(s, 5);
        a.created_at = sqlite3_column_int64(s, 8);
        if (gh_sqlite__col_text(s, 0, a.chain, sizeof(a.chain), err) != GH_OK ||
            gh_sqlite__col_text(s, 3, a.prev_hash, sizeof(a.prev_hash), err) != GH_OK ||
            gh_sqlite__col_text(s, 4, a.last_hash, sizeof(a.last_hash), err) != GH_OK ||
            gh_sqlite__col_text(s, 6, a.file, sizeof(a.file), err) != GH_OK ||
            gh_sqlite__col_text(s, 7, a.file_sha256, sizeof(a.file_sha256), err) != GH_OK) {
            rc = GH_ERROR;
            break;
        }
        rc = cb(&a, arg);
        if (rc != GH_OK) break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "audit archives", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}
