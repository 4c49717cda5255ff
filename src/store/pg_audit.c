/* The audit log in the PostgreSQL store: appends of chained events and
 * their checkpoints under one advisory lock (so that writers on several
 * nodes never fork a chain), heads, filtered and paged queries (a tenant's
 * under row-level security), walks and the scan for the verifier, audit
 * keys and archives. Input arrives validated by the gh_store_audit_*
 * wrappers (store_audit.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/audit_body.h"
#include "store/pg_array.h"
#include "store/pg_int.h"
#include "store/store_int.h"
#include "store/store_postgres.h"

/* ---- Rows --------------------------------------------------------------------- */

/* Fills <out> from row <row> of the 14 columns of GH_PG_AUDIT_COLS. A
 * column that does not read back as the gateway writes it marks the row
 * damaged: the verifier names it rather than the walk stopping. */
static void audit_row(const PGresult *r, int row, struct gh_store_audit_row *out)
{
    size_t n = (size_t)PQgetlength(r, row, 12);
    bool ok = true;
    struct {
        int col;
        char *dst;
        size_t size;
    } cols[] = {
        {1, out->chain, sizeof(out->chain)},         {3, out->id, sizeof(out->id)},
        {5, out->tenant_id, sizeof(out->tenant_id)}, {6, out->actor, sizeof(out->actor)},
        {7, out->action, sizeof(out->action)},       {8, out->resource, sizeof(out->resource)},
        {9, out->outcome, sizeof(out->outcome)},     {10, out->request_id, sizeof(out->request_id)},
        {11, out->hash, sizeof(out->hash)},          {13, out->node, sizeof(out->node)},
    };

    out->rowid = gh_pg__i64(r, row, 0);
    out->seq = (uint64_t)gh_pg__i64(r, row, 2);
    out->time_us = gh_pg__i64(r, row, 4);
    for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
        size_t len = (size_t)PQgetlength(r, row, cols[i].col);
        ok &= !PQgetisnull(r, row, cols[i].col) && len < cols[i].size;
        if (len >= cols[i].size) len = cols[i].size - 1;
        memcpy(cols[i].dst, PQgetvalue(r, row, cols[i].col), len);
        cols[i].dst[len] = '\0';
    }
    if (PQgetisnull(r, row, 12)) {
        ok = false;
        n = 0;
    }
    /* After the columns: a compact body gets its front back from them. */
    ok &= gh_store__audit_body_expand(out, PQgetvalue(r, row, 12), n);
    out->damaged = !ok;
}

/* ---- Append ------------------------------------------------------------------- */

/* One append: the batch's rows by (chain, seq), the heads of its chains
 * under the lock, which rows are stored already (a batch sent again after
 * an unknown outcome), and the column arrays of the insert. */
struct batch {
    struct gh_store_audit_row *rows;
    size_t n;
    size_t *order; /* rows by (chain, seq) */
    bool *stored;
    bool any_stored; /* some row is stored already: a batch sent again */
    size_t *starts;  /* in order[]: where each chain's rows begin (sort_rows) */
    size_t nchains;
    struct gh_store_audit_head *heads; /* one per chain, by chain */
    size_t nheads;
    /* The script's (append_script), per chain: the stored row at the seq of
     * the batch's first row of that chain has the same hash (1), another
     * (-1), or none is there (0). The long way, which reads the hashes
     * themselves, never looks at it. */
    signed char *at_first;
    struct gh_pg_array buf;                /* the heads' names, then the COPY's input */
    char scratch[GH_STORE_AUDIT_BODY_MAX]; /* a row's body in the compact form */
};

static int row_cmp(const void *pa, const void *pb)
{
    const struct gh_store_audit_row *x = pa, *y = pb;
    int c = strcmp(x->chain, y->chain);

    if (c != 0) return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void batch_free(struct batch *b)
{
    free(b->at_first);
    free(b->starts);
    free(b->order);
    free(b->stored);
    free(b->heads);
    gh_pg_array_free(&b->buf);
}

static int oom(struct gh_err *err)
{
    gh_err_set(err, NULL, 0, 0, "audit append: out of memory");
    return GH_ERROR;
}

/* The first row of chain <k> of the sorted batch. */
static const struct gh_store_audit_row *first_of(const struct batch *b, size_t k)
{
    return &b->rows[b->order[b->starts[k]]];
}

/* Sorts the rows, finds where each chain's rows begin, and puts the names
 * of the chains in b->buf as an array literal (returned; NULL when out of
 * memory). A batch chained again keeps its chains and their order: only
 * seqs and hashes move. */
static const char *sort_rows(struct batch *b)
{
    struct gh_pg_array *names = &b->buf;

    free(b->order);
    free(b->starts);
    b->starts = NULL;
    b->nchains = 0;
    b->order = gh_pg__order(b->rows, b->n, sizeof(*b->rows), row_cmp);
    if (b->order == NULL || (b->starts = calloc(b->n ? b->n : 1, sizeof(*b->starts))) == NULL)
        return NULL;
    for (size_t i = 0; i < b->n; i++)
        if (i == 0 || strcmp(b->rows[b->order[i]].chain, b->rows[b->order[i - 1]].chain) != 0)
            b->starts[b->nchains++] = i;
    gh_pg_array_reset(names);
    for (size_t k = 0; k < b->nchains; k++)
        gh_pg_array_text(names, first_of(b, k)->chain, strlen(first_of(b, k)->chain));
    return gh_pg_array_end(names);
}

/* The heads of the batch's chains from the heads query's result <r>. */
static int take_heads(struct batch *b, const PGresult *r, struct gh_err *err)
{
    int rc = GH_OK;

    free(b->heads);
    b->heads = calloc(b->nchains ? b->nchains : 1, sizeof(*b->heads));
    if (b->heads == NULL) return oom(err);
    b->nheads = (size_t)PQntuples(r);
    if (b->nheads != b->nchains) return gh_err_set(err, NULL, 0, 0, "audit append: heads not read");
    for (size_t i = 0; rc == GH_OK && i < b->nheads; i++) {
        struct gh_store_audit_head *h = &b->heads[i];
        if (gh_pg__text(r, (int)i, 0, h->chain, sizeof(h->chain), err) != GH_OK ||
            gh_pg__text(r, (int)i, 2, h->hash, sizeof(h->hash), err) != GH_OK)
            rc = GH_ERROR;
        h->seq = (uint64_t)gh_pg__i64(r, (int)i, 1);
    }
    return rc;
}

/* Sorts the rows and reads the heads of their chains (under the lock). */
static int read_heads(struct gh_pg_tx *tx, struct batch *b, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    PGresult *r = NULL;
    const char *lit = sort_rows(b);
    int rc;

    if (lit == NULL) return oom(err);
    gh_pg__arg(&a, lit);
    rc = gh_pg__run(tx, GH_PG_AUDIT_HEADS_OF, &a, &r, err);
    if (rc == GH_OK) rc = take_heads(b, r, err);
    PQclear(r);
    return rc;
}

/* place() with no transaction to look in: a row at a seq its chain's head
 * has passed needs its hash read (a batch sent again). */
#define NEEDS_LOOKUP 1

/* Whether the group of rows order[from..to) (one chain, by seq) follows
 * head <h>: each row at a seq the head has passed must be stored with its
 * hash (the batch was sent before and landed), the others must go on from
 * the head without a gap. Marks the stored ones. CONFLICT when stale;
 * NEEDS_LOOKUP when <tx> is NULL and a row's hash must be read. */
static int place_chain(struct gh_pg_tx *tx, struct batch *b, size_t from, size_t to,
                       const struct gh_store_audit_head *h, struct gh_err *err)
{
    struct gh_store_audit_row *first = &b->rows[b->order[from]];
    uint64_t upto;
    struct gh_pg_args a = {0};
    PGresult *r = NULL;
    size_t k = from, bad = b->order[from]; /* the row a CONFLICT names (batch index) */
    size_t gap = 0;                        /* in order[]: the row after a gap, if any */
    int rc;

    for (size_t i = from + 1; i < to && gap == 0; i++)
        if (b->rows[b->order[i]].seq != b->rows[b->order[i - 1]].seq + 1) gap = i;
    if (gap) {
        bad = b->order[gap];
        goto stale;
    }
    if (strcmp(h->chain, first->chain) != 0 || first->seq > h->seq + 1) goto stale;
    /* Next to the head: it must chain from the head itself, not from an
     * event at that seq that the store no longer has (a failover that lost
     * it, and another node's event written there since). */
    if (first->seq == h->seq + 1) {
        if (h->seq == 0 || first->prev_hash[0] == '\0' || strcmp(first->prev_hash, h->hash) == 0)
            return GH_OK;
        goto stale;
    }
    if (tx == NULL) {
        /* Another event at the first row's seq: stale, none of the chain's
         * rows is stored (as the lookup below would find). The same
         * event, or none: only reading them all tells. */
        if (b->at_first != NULL && b->at_first[h - b->heads] < 0) goto stale;
        return NEEDS_LOOKUP;
    }
    upto = b->rows[b->order[to - 1]].seq < h->seq ? b->rows[b->order[to - 1]].seq : h->seq;
    gh_pg__arg(&a, first->chain);
    gh_pg__arg_i64(&a, (int64_t)first->seq);
    gh_pg__arg_i64(&a, (int64_t)upto);
    rc = gh_pg__run(tx, GH_PG_AUDIT_HASHES, &a, &r, err);
    if (rc != GH_OK) return rc;
    for (int i = 0; i < PQntuples(r) && k < to; i++, k++) {
        struct gh_store_audit_row *row = &b->rows[b->order[k]];
        if ((uint64_t)gh_pg__i64(r, i, 0) != row->seq || strcmp(PQgetvalue(r, i, 1), row->hash))
            break;
        row->rowid = gh_pg__i64(r, i, 2);
        b->stored[b->order[k]] = true;
        b->any_stored = true;
    }
    PQclear(r);
    if (k < to && b->rows[b->order[k]].seq <= h->seq) {
        bad = b->order[k];
        goto stale;
    }
    return GH_OK;
stale:
    for (size_t i = from; i < to; i++)
        b->stored[b->order[i]] = false;
    /* Named as the SQLite engine names it: the row, by its batch index. */
    if (gap)
        gh_err_set(err, NULL, 0, 0, "rows[%zu]: seq %llu of chain %s does not follow seq %llu", bad,
                   (unsigned long long)b->rows[bad].seq, b->rows[bad].chain,
                   (unsigned long long)b->rows[b->order[gap - 1]].seq);
    else
        gh_err_set(
            err, NULL, 0, 0, "rows[%zu]: seq %llu of chain %s does not follow its head (%llu)", bad,
            (unsigned long long)b->rows[bad].seq, b->rows[bad].chain, (unsigned long long)h->seq);
    return GH_STORE_CONFLICT;
}

/* Checks every chain of the batch against its head (<tx> NULL: without
 * reading anything, else NEEDS_LOOKUP). */
static int place(struct gh_pg_tx *tx, struct batch *b, struct gh_err *err)
{
    int rc = GH_OK;

    memset(b->stored, 0, b->n * sizeof(*b->stored));
    b->any_stored = false;
    if (b->nheads != b->nchains) return gh_err_set(err, NULL, 0, 0, "audit append: heads not read");
    /* Every chain is looked at, even after a stale one: the caller must
     * know whether any row is stored already before it chains again. */
    for (size_t k = 0; k < b->nchains; k++) {
        size_t to = k + 1 < b->nchains ? b->starts[k + 1] : b->n;
        int crc = place_chain(tx, b, b->starts[k], to, &b->heads[k], err);
        if (crc != GH_OK && crc != GH_STORE_CONFLICT) return crc;
        if (crc != GH_OK) rc = crc;
    }
    return rc;
}

/* Finds row (chain, seq) in the sorted batch; SIZE_MAX when absent. */
static size_t find_row(const struct batch *b, const char *chain, uint64_t seq)
{
    size_t lo = 0, hi = b->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct gh_store_audit_row *row = &b->rows[b->order[mid]];
        int c = strcmp(row->chain, chain);
        if (c == 0) c = row->seq < seq ? -1 : row->seq > seq;
        if (c == 0) return b->order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

/* Inserts the rows not stored yet, in the batch's order, with one COPY in
 * the binary format (the cheapest way in for the server: no statement per
 * row, no text to scan; the writer's group commit on PostgreSQL depends on
 * it), then sets their rowids from the last one this session drew: COPY
 * draws a row's rowid as it reads the row, in input order, and under the
 * append lock no other session draws from the sequence (every writer
 * appends under the lock: gh_pg__audit_append), so the batch's rows hold
 * the <want> rowids up to it, one after the other. Reading the rows back
 * took a twentieth of the server's time per event. COPY has no ON
 * CONFLICT: the heads were checked under the lock, and a (chain, seq)
 * taken all the same (a writer that does not take the lock) fails the
 * batch as CONFLICT. */
static const char copy_sql[] =
    "COPY audit_events (chain, seq, id, time_us, tenant_id, actor, action, resource, outcome, "
    "request_id, hash, body, node) FROM STDIN (FORMAT binary)";

/* The COPY input of the rows not stored yet, in b->buf (NULL when out of
 * memory); *want gets their number. Bodies go in the compact form where it
 * applies (audit_body.h): the members the columns hold were two fifths of a
 * request event's row, and the server's work per event grows with it. */
static const char *copy_input(struct batch *b, size_t *want)
{
    struct gh_pg_array *buf = &b->buf;

    *want = 0;
    gh_pg_copy_reset(buf);
    for (size_t i = 0; i < b->n; i++) {
        const struct gh_store_audit_row *row = &b->rows[i];
        const char *body;
        size_t body_len;
        if (b->stored[i]) continue;
        (*want)++;
        gh_pg_copy_row(buf, 13);
        gh_pg_copy_text(buf, row->chain, strlen(row->chain));
        gh_pg_copy_i64(buf, (int64_t)row->seq);
        gh_pg_copy_text(buf, row->id, strlen(row->id));
        gh_pg_copy_i64(buf, row->time_us);
        gh_pg_copy_text(buf, row->tenant_id, strlen(row->tenant_id));
        gh_pg_copy_text(buf, row->actor, strlen(row->actor));
        gh_pg_copy_text(buf, row->action, strlen(row->action));
        gh_pg_copy_text(buf, row->resource, strlen(row->resource));
        gh_pg_copy_text(buf, row->outcome, strlen(row->outcome));
        gh_pg_copy_text(buf, row->request_id, strlen(row->request_id));
        gh_pg_copy_text(buf, row->hash, strlen(row->hash));
        body = gh_store__audit_body_stored(row, b->scratch, &body_len);
        gh_pg_copy_text(buf, body, body_len);
        gh_pg_copy_text(buf, row->node, strlen(row->node));
    }
    return gh_pg_copy_end(buf);
}

/* The rows just copied (<want> of them, those not stored) hold the rowids
 * up to <last>, the one the session drew last, in the batch's order. */
static void set_rowids(struct batch *b, size_t want, int64_t last)
{
    int64_t rowid = last - (int64_t)want;

    for (size_t i = 0; i < b->n; i++)
        if (!b->stored[i]) b->rows[i].rowid = ++rowid;
}

static int insert_rows(struct gh_pg_tx *tx, struct batch *b, struct gh_err *err)
{
    PGresult *r = NULL;
    const char *data;
    uint64_t copied = 0;
    size_t want = 0;
    int rc;

    if ((data = copy_input(b, &want)) == NULL) return oom(err);
    if (want == 0) return GH_OK;
    rc = gh_pg__copy_in(tx, copy_sql, data, b->buf.len, &copied, err);
    if (rc != GH_OK) return rc;
    if (copied != want)
        return gh_err_set(err, NULL, 0, 0, "audit append: COPY took %llu of %zu rows",
                          (unsigned long long)copied, want);
    rc = gh_pg__run(tx, GH_PG_AUDIT_LAST_ROWID, NULL, &r, err);
    if (rc == GH_OK) set_rowids(b, want, gh_pg__i64(r, 0, 0));
    PQclear(r);
    return rc;
}

/* A checkpoint must name a stored event by its hash: INVALID otherwise. */
static int insert_checkpoint(struct gh_pg_tx *tx, const struct batch *b,
                             const struct gh_store_audit_checkpoint *cp, size_t i,
                             struct gh_err *err)
{
    struct gh_pg_args a = {0};
    PGresult *r = NULL;
    size_t k = b->order != NULL ? find_row(b, cp->chain, cp->seq) : SIZE_MAX;
    bool same;
    int rc;

    gh_pg__arg(&a, cp->chain);
    gh_pg__arg_i64(&a, (int64_t)cp->seq);
    if (k != SIZE_MAX) {
        /* An event of this batch, just stored (or found stored) with its
         * hash: no need to read it back. */
        same = strcmp(b->rows[k].hash, cp->hash) == 0;
    } else {
        rc = gh_pg__run(tx, GH_PG_AUDIT_HASH_AT, &a, &r, err);
        if (rc != GH_OK) return rc;
        same = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), cp->hash) == 0;
        PQclear(r);
    }
    if (!same) {
        gh_err_set(err, NULL, 0, 0,
                   "checkpoints[%zu]: no event of chain %s at seq %llu has its hash", i, cp->chain,
                   (unsigned long long)cp->seq);
        return GH_STORE_INVALID;
    }
    gh_pg__arg(&a, cp->hash);
    gh_pg__arg_i64(&a, cp->time_ms);
    gh_pg__arg(&a, cp->key_id);
    gh_pg__arg(&a, cp->signature);
    rc = gh_pg__run(tx, GH_PG_AUDIT_CP_INSERT, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        /* A checkpoint of that (chain, seq) exists: of the same event (this
         * batch sent again, or another node's checkpoint of the same head)
         * is as good as ours; the hash was checked just above. */
        PQclear(r);
        memset(&a, 0, sizeof(a));
        gh_pg__arg(&a, cp->chain);
        gh_pg__arg_i64(&a, (int64_t)cp->seq);
        rc = gh_pg__run(tx, GH_PG_AUDIT_CP_AT, &a, &r, err);
        if (rc == GH_OK && (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), cp->hash) != 0)) {
            gh_err_set(err, NULL, 0, 0, "checkpoints[%zu]: another checkpoint at that seq", i);
            rc = GH_STORE_CONFLICT;
        }
    }
    PQclear(r);
    return rc;
}

/* ---- Append in two round trips ------------------------------------------------ */

/* After the lock: the heads of the batch's chains with, for each, the
 * hash stored at the seq of its first row in the batch (so that a stale
 * batch is told from one sent again without another query), the rows'
 * COPY, the last rowid drawn, the checkpoints, and the commit. Uses b->buf
 * for the array literals. The two reads are prepared statements run by
 * name (script_uses): parsed and planned once per session. */
static const enum gh_pg_stmt script_uses[] = {GH_PG_AUDIT_HEADS_FIRST, GH_PG_AUDIT_LAST_ROWID};

static const char *script_of(struct gh_pg_array *s, struct batch *b,
                             const struct gh_store_audit_checkpoint *cps, size_t ncp)
{
    const char *lit = sort_rows(b);
    char name[16];

    if (lit == NULL) return NULL;
    gh_pg_sql_reset(s);
    gh_pg__stmt_name(GH_PG_AUDIT_HEADS_FIRST, name);
    gh_pg_sql_raw(s, "EXECUTE ");
    gh_pg_sql_raw(s, name);
    gh_pg_sql_raw(s, "(");
    gh_pg_sql_quote(s, lit);
    gh_pg_sql_raw(s, ", ");
    gh_pg_array_reset(&b->buf);
    for (size_t k = 0; k < b->nchains; k++)
        gh_pg_array_i64(&b->buf, (int64_t)first_of(b, k)->seq);
    if ((lit = gh_pg_array_end(&b->buf)) == NULL) return NULL;
    gh_pg_sql_quote(s, lit);
    gh_pg_sql_raw(s, "); ");
    gh_pg_sql_raw(s, copy_sql);
    gh_pg__stmt_name(GH_PG_AUDIT_LAST_ROWID, name);
    gh_pg_sql_raw(s, "; EXECUTE ");
    gh_pg_sql_raw(s, name);
    gh_pg_sql_raw(s, "; ");
    for (size_t i = 0; i < ncp; i++) {
        gh_pg_sql_raw(s, i == 0 ? "INSERT INTO audit_checkpoints (" GH_PG_AUDIT_CP_COLS ") VALUES ("
                                : ", (");
        gh_pg_sql_quote(s, cps[i].chain);
        gh_pg_sql_raw(s, ", ");
        gh_pg_sql_i64(s, (int64_t)cps[i].seq);
        gh_pg_sql_raw(s, ", ");
        gh_pg_sql_quote(s, cps[i].hash);
        gh_pg_sql_raw(s, ", ");
        gh_pg_sql_i64(s, cps[i].time_ms);
        gh_pg_sql_raw(s, ", ");
        gh_pg_sql_quote(s, cps[i].key_id);
        gh_pg_sql_raw(s, ", ");
        gh_pg_sql_quote(s, cps[i].signature);
        gh_pg_sql_raw(s, i + 1 == ncp ? "); " : ")");
    }
    gh_pg_sql_raw(s, "COMMIT");
    return gh_pg_sql_end(s);
}

/* The heads query's fourth column, per chain: whether the stored row at
 * the chain's first seq in the batch has that row's hash (b->at_first). */
static int take_at_first(struct batch *b, const PGresult *r, struct gh_err *err)
{
    free(b->at_first);
    if ((b->at_first = calloc(b->nchains ? b->nchains : 1, 1)) == NULL) return oom(err);
    for (size_t k = 0; k < b->nchains; k++)
        if (!PQgetisnull(r, (int)k, 3))
            b->at_first[k] = strcmp(PQgetvalue(r, (int)k, 3), first_of(b, k)->hash) == 0 ? 1 : -1;
    return GH_OK;
}

/* Whether the batch's checkpoints are all of events of the batch, with
 * their hashes: then nothing needs to be read for them, and no other
 * checkpoint can be at their seqs (the events are new, and appended under
 * the lock), so a plain INSERT takes them. */
static bool checkpoints_of_batch(const struct batch *b, const struct gh_store_audit_checkpoint *cps,
                                 size_t ncp)
{
    for (size_t i = 0; i < ncp; i++) {
        size_t k = find_row(b, cps[i].chain, cps[i].seq);
        if (k == SIZE_MAX || strcmp(b->rows[k].hash, cps[i].hash) != 0) return false;
    }
    return true;
}

/* The COPY input, made while the server takes the lock and reads the heads
 * (the script's <meanwhile>): it does not depend on them unless the batch
 * has to be chained again. */
struct early_input {
    struct batch *b;
    const char *data;
    size_t want;
};

static void make_early_input(void *arg)
{
    /* Every row is still unstored here (b->stored fresh from calloc):
     * what the script sends is the whole batch. */
    struct early_input *in = arg;

    in->data = copy_input(in->b, &in->want);
}

/* The round trips of the long way (gh_pg__audit_append below: six, and
 * one more per checkpoint, each of them time the lock is held and, on a
 * busy host, a wait for the CPU on both sides) sent as one script, in the
 * common case, where nothing needs reading but the heads: the lock, the
 * heads and the start of the COPY in the first round trip; the COPY's
 * input, the rowid, the checkpoints and the commit in the second. The rows
 * are checked against the heads while the server waits for the COPY's
 * input; a batch that turns out stale is chained again there and goes on,
 * unless that changes its checkpoints, which the script already holds.
 * What cannot go this way returns NEEDS_LOOKUP, rolled back with nothing
 * written, for the caller to take the long way: a checkpoint of an event
 * not in the batch (before anything is sent); a row whose hash must be
 * read (a batch sent again) or checkpoints to change (the script fails its
 * COPY, so the server skips the rest); a checkpoint found taken (its
 * INSERT fails). *sent says whether the script went to the server. */
static int append_script(struct gh_store *st, struct batch *b,
                         const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                         const struct gh_store_audit_rechain *rechain, bool *sent,
                         struct gh_err *err)
{
    struct gh_pg_array sql = {0};
    struct early_input in = {b, NULL, 0};
    struct gh_pg_script script = {NULL, script_uses, sizeof(script_uses) / sizeof(script_uses[0]),
                                  make_early_input, &in};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    const char *fail = NULL;
    size_t ncp_sent = *ncp;
    uint64_t copied;
    int rc;

    if ((script.tail = script_of(&sql, b, cps, *ncp)) == NULL) {
        gh_pg_array_free(&sql);
        return oom(err);
    }
    if (!checkpoints_of_batch(b, cps, *ncp)) {
        gh_pg_array_free(&sql);
        return NEEDS_LOOKUP;
    }
    rc = gh_pg__begin_audit_script(gh_pg__of(st), &script, &tx, err);
    gh_pg_array_free(&sql);
    if (rc != GH_OK) return rc;
    *sent = true;
    if (in.data == NULL) rc = oom(err);
    if (rc == GH_OK) rc = gh_pg__script_next(&tx, PGRES_TUPLES_OK, &r, "audit heads", err);
    if (rc == GH_OK) rc = take_heads(b, r, err);
    if (rc == GH_OK) rc = take_at_first(b, r, err);
    PQclear(r);
    r = NULL;
    if (rc == GH_OK) rc = place(NULL, b, err);
    if (rc == GH_STORE_CONFLICT && rechain != NULL && !b->any_stored && *ncp == 0) {
        /* Another node appended to a chain since this batch was chained:
         * chained again after the heads, as the long way does. */
        rc = rechain->fn(rechain->arg, b->heads, b->nheads, ncp);
        if (rc == GH_OK && *ncp != ncp_sent) rc = NEEDS_LOOKUP;
        if (rc == GH_OK) rc = place(NULL, b, err);
        if (rc == GH_OK && (in.data = copy_input(b, &in.want)) == NULL) rc = oom(err);
    } else if (rc == GH_STORE_CONFLICT && rechain != NULL && !b->any_stored) {
        rc = NEEDS_LOOKUP; /* its checkpoints would change */
    }
    if (rc == GH_OK || rc == NEEDS_LOOKUP || rc == GH_STORE_CONFLICT) {
        int crc = gh_pg__script_next(&tx, PGRES_COPY_IN, NULL, "copy", err);
        if (rc != GH_OK) fail = "gatehouse: this audit append goes the long way (not a failure)";
        if (crc == GH_OK) crc = gh_pg__script_copy(&tx, in.data, b->buf.len, fail, err);
        if (crc != GH_OK) rc = crc;
    }
    if (rc == GH_OK) rc = gh_pg__script_next(&tx, PGRES_COMMAND_OK, &r, "copy", err);
    /* Past this point the server goes on to the COMMIT whatever is read
     * here: a check of ours that fails leaves the outcome unknown, which
     * is UNAVAILABLE (the writer sends the batch again, and the long way
     * finds what was stored). */
    if (rc == GH_OK && (copied = strtoull(PQcmdTuples(r), NULL, 10)) != in.want) {
        gh_err_set(err, NULL, 0, 0, "audit append: COPY took %llu of %zu rows",
                   (unsigned long long)copied, in.want);
        rc = GH_STORE_UNAVAILABLE;
    }
    PQclear(r);
    r = NULL;
    if (rc == GH_OK) rc = gh_pg__script_next(&tx, PGRES_TUPLES_OK, &r, "audit rowid", err);
    if (rc == GH_OK) set_rowids(b, in.want, gh_pg__i64(r, 0, 0));
    PQclear(r);
    if (rc == GH_OK && *ncp > 0) {
        rc = gh_pg__script_next(&tx, PGRES_COMMAND_OK, NULL, "audit checkpoints", err);
        /* Taken: the long way tells one of the same event from a fork. */
        if (rc == GH_STORE_CONFLICT) rc = NEEDS_LOOKUP;
    }
    if (rc == GH_OK) rc = gh_pg__script_commit(&tx, err);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__audit_append(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                        const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                        const struct gh_store_audit_rechain *rechain, bool *unsynced,
                        struct gh_err *err)
{
    struct batch b = {.rows = rows, .n = n};
    struct gh_pg_tx tx;
    int rc;

    /* Durable when it returns (synchronous_commit): there is no sync to
     * leave for later, and the server groups concurrent commits itself. */
    if (unsynced != NULL) *unsynced = false;

    if (n > 0 && (b.stored = calloc(n, sizeof(*b.stored))) == NULL) return oom(err);
    if (n > 0) {
        bool sent = false;
        rc = append_script(st, &b, cps, ncp, rechain, &sent, err);
        if (rc != NEEDS_LOOKUP) {
            if (sent)
                atomic_fetch_add_explicit(&gh_pg__of(st)->audit_scripted, 1, memory_order_relaxed);
            goto out;
        }
    }
    atomic_fetch_add_explicit(&gh_pg__of(st)->audit_long_way, 1, memory_order_relaxed);
    /* Under the lock, the heads read below cannot move before our commit:
     * appends from every node are serialised, so a chain never forks. A
     * stale batch is chained again here, under the lock, through the
     * caller's <rechain>: a writer on a busy cluster cannot keep losing
     * the race between reading the heads and appending after them. */
    rc = gh_pg__begin_audit_locked(gh_pg__of(st), &tx, err);
    if (rc != GH_OK) goto out;
    if (n > 0) {
        rc = read_heads(&tx, &b, err);
        if (rc == GH_OK) rc = place(&tx, &b, err);
        /* Never when a row is stored already: those events must not be
         * chained a second time (store.h); the caller resolves it. */
        if (rc == GH_STORE_CONFLICT && rechain != NULL && !b.any_stored) {
            rc = rechain->fn(rechain->arg, b.heads, b.nheads, ncp);
            /* The events are the same, in the same chains: only their seqs
             * moved, so the order and the heads still apply. */
            if (rc == GH_OK) rc = place(&tx, &b, err);
        }
        if (rc == GH_OK) rc = insert_rows(&tx, &b, err);
    }
    for (size_t i = 0; rc == GH_OK && i < *ncp; i++)
        rc = insert_checkpoint(&tx, &b, &cps[i], i, err);
    /* synchronous_commit is on (the server's default, not changed by us):
     * the commit returns once the WAL is flushed, so the events are durable. */
    rc = gh_pg__end(&tx, rc, err);
out:
    if (rc != GH_OK)
        for (size_t i = 0; i < n; i++)
            rows[i].rowid = 0;
    batch_free(&b);
    return rc;
}

void gh_store_postgres_audit_ways(struct gh_store *st, uint64_t *scripted, uint64_t *long_way)
{
    *scripted = atomic_load_explicit(&gh_pg__of(st)->audit_scripted, memory_order_relaxed);
    *long_way = atomic_load_explicit(&gh_pg__of(st)->audit_long_way, memory_order_relaxed);
}

/* ---- Reads -------------------------------------------------------------------- */

struct row_walk {
    gh_store_audit_row_cb cb;
    void *arg;
    struct gh_store_audit_row *row; /* one, reused */
};

static int walk_row(const PGresult *r, void *arg)
{
    struct row_walk *w = arg;

    audit_row(r, 0, w->row);
    return w->cb(w->row, w->arg);
}

/* Streams statement <id> with <a> to <cb>, in one snapshot, as operator
 * or (<tenant> not NULL) under that tenant's row-level security. */
static int walk(struct gh_store *st, enum gh_pg_stmt id, const struct gh_pg_args *a,
                const char *tenant, gh_store_audit_row_cb cb, void *arg, struct gh_err *err)
{
    struct row_walk w = {cb, arg, calloc(1, sizeof(struct gh_store_audit_row))};
    struct gh_pg_tx tx;
    int rc;

    if (w.row == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    rc =
        gh_pg__begin(gh_pg__of(st), tenant ? GH_PG_TENANT : GH_PG_OPERATOR, tenant, true, &tx, err);
    if (rc == GH_OK) {
        rc = gh_pg__stream(&tx, id, a, walk_row, &w, err);
        rc = gh_pg__end(&tx, rc, err);
    }
    free(w.row);
    return rc;
}

int gh_pg__audit_heads(struct gh_store *st, gh_store_audit_row_cb cb, void *arg, struct gh_err *err)
{
    return walk(st, GH_PG_AUDIT_HEADS, NULL, NULL, cb, arg, err);
}

int gh_pg__audit_heads_tx(struct gh_pg_tx *tx, gh_store_audit_row_cb cb, void *arg,
                          struct gh_err *err)
{
    struct row_walk w = {cb, arg, calloc(1, sizeof(struct gh_store_audit_row))};
    int rc;

    if (w.row == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    rc = gh_pg__stream(tx, GH_PG_AUDIT_HEADS, NULL, walk_row, &w, err);
    free(w.row);
    return rc;
}

int gh_pg__audit_walk(struct gh_store *st, const char *chain, uint64_t from_seq, uint64_t to_seq,
                      gh_store_audit_row_cb cb, void *arg, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    /* A tenant's chain holds only rows of that tenant (docs/audit-format.md:
     * the chain is the event's tenant, or system): its walk (a tenant
     * admin's export, the verifier, the archiver) runs under that tenant's
     * row-level security. A row whose tenant_id was changed by hand is then
     * missing from the walk, which the verifier reports as a gap. */
    const char *tenant = chain && strcmp(chain, GH_STORE_SYSTEM_TENANT) != 0 ? chain : NULL;

    if (chain) gh_pg__arg(&a, chain);
    gh_pg__arg_i64(&a, (int64_t)from_seq);
    gh_pg__arg_i64(&a, (int64_t)to_seq);
    return walk(st, chain ? GH_PG_AUDIT_WALK_CHAIN : GH_PG_AUDIT_WALK, &a, tenant, cb, arg, err);
}

int gh_pg__audit_seq_span(struct gh_store *st, const char *chain, int64_t from_us, int64_t to_us,
                          uint64_t *first, uint64_t *last, struct gh_err *err)
{
    bool system = strcmp(chain, GH_STORE_SYSTEM_TENANT) == 0;
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    /* A tenant's chain under its row-level security, as its walk. */
    int rc = gh_pg__begin(gh_pg__of(st), system ? GH_PG_OPERATOR : GH_PG_TENANT,
                          system ? NULL : chain, true, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, chain);
    gh_pg__arg_i64(&a, from_us);
    gh_pg__arg_i64(&a, to_us);
    rc = gh_pg__run(&tx, system ? GH_PG_AUDIT_SEQ_SPAN_SYSTEM : GH_PG_AUDIT_SEQ_SPAN, &a, &r, err);
    if (rc == GH_OK) {
        *first = (uint64_t)gh_pg__i64(r, 0, 0);
        *last = (uint64_t)gh_pg__i64(r, 0, 1);
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__audit_scan(struct gh_store *st, int64_t after_rowid, int64_t to_rowid,
                      gh_store_audit_row_cb cb, void *arg, struct gh_err *err)
{
    struct gh_pg_args a = {0};

    gh_pg__arg_i64(&a, after_rowid);
    gh_pg__arg_i64(&a, to_rowid);
    return walk(st, GH_PG_AUDIT_SCAN, &a, NULL, cb, arg, err);
}

struct cp_walk {
    gh_store_audit_cp_cb cb;
    void *arg;
    struct gh_err *err;
};

static int cp_row(const PGresult *r, void *arg)
{
    struct cp_walk *w = arg;
    struct gh_store_audit_checkpoint cp;

    memset(&cp, 0, sizeof(cp));
    cp.seq = (uint64_t)gh_pg__i64(r, 0, 1);
    cp.time_ms = gh_pg__i64(r, 0, 3);
    if (gh_pg__text(r, 0, 0, cp.chain, sizeof(cp.chain), w->err) != GH_OK ||
        gh_pg__text(r, 0, 2, cp.hash, sizeof(cp.hash), w->err) != GH_OK ||
        gh_pg__text(r, 0, 4, cp.key_id, sizeof(cp.key_id), w->err) != GH_OK ||
        gh_pg__text(r, 0, 5, cp.signature, sizeof(cp.signature), w->err) != GH_OK)
        return GH_ERROR;
    return w->cb(&cp, w->arg);
}

int gh_pg__audit_checkpoints_walk(struct gh_store *st, const char *chain, uint64_t from_seq,
                                  uint64_t to_seq, gh_store_audit_cp_cb cb, void *arg,
                                  struct gh_err *err)
{
    struct cp_walk w = {cb, arg, err};
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc;

    if (chain) gh_pg__arg(&a, chain);
    gh_pg__arg_i64(&a, (int64_t)from_seq);
    gh_pg__arg_i64(&a, (int64_t)to_seq);
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, true, &tx, err);
    if (rc != GH_OK) return rc;
    rc = gh_pg__stream(&tx, chain ? GH_PG_AUDIT_CP_WALK_CHAIN : GH_PG_AUDIT_CP_WALK, &a, cp_row, &w,
                       err);
    return gh_pg__end(&tx, rc, err);
}

/* ---- Queries ------------------------------------------------------------------ */

/* The SQL for the filters in <mask>, from constant pieces only, as in
 * sqlite_audit.c (which explains the keysets): $1..$8 the filters, $9 and
 * $11 the keyset, $10 the limit, $12 the seq a chain walk starts from. The
 * statement is prepared with the types of all twelve (query_types), so a
 * variant need not mention them all.
 *
 * A chain walk's start is a parameter found before the query
 * (GH_PG_AUDIT_CHAIN_QUERY_START), not a subquery as in SQLite: under
 * row-level security a bound computed by a subquery is not used as an
 * index condition (only as a filter after the policy's), and the walk
 * would start at the chain's end on every page. That statement also turns
 * sorts off for the transaction: taking chain and the policy's tenant_id
 * for independent, the planner expects a few hundred rows where a tenant
 * has its whole chain, and would rather read them all through a bitmap on
 * (tenant_id, time_us, rowid) and sort them (100 ms for 13,000 rows) than
 * walk (chain, seq) backwards (0.1 ms). */
static void query_sql(unsigned mask, char *sql, size_t size)
{
    static const struct {
        unsigned bit;
        const char *sql;
    } parts[] = {
        {GH_AQ_TENANT, " AND tenant_id = $1"},
        {GH_AQ_ACTOR, " AND actor = $2"},
        {GH_AQ_ACTION, " AND action = $3"},
        {GH_AQ_OUTCOME, " AND outcome = $4"},
        {GH_AQ_RESOURCE, " AND resource = $5"},
        {GH_AQ_REQUEST, " AND request_id = $6"},
        {GH_AQ_FROM, " AND time_us >= $7"},
        {GH_AQ_TO, " AND time_us < $8"},
        {GH_AQ_SYSTEM, " AND tenant_id = '" GH_STORE_SYSTEM_TENANT "'"},
        {GH_AQ_OTHER_ACTION, " AND action <> '" GH_STORE_AUDIT_REQUEST_ACTION "'"},
    };
    bool oldest = mask & GH_AQ_OLDEST, by_time = mask & (GH_AQ_FROM | GH_AQ_TO),
         chain = gh_store__audit_query_walks_chain(mask);
    unsigned folded = !by_time ? 0 : oldest ? GH_AQ_FROM : GH_AQ_TO;
    size_t o = 0;

#define APPEND(s) o += (size_t)snprintf(sql + o, size - o, "%s", (s))
    APPEND("SELECT " GH_PG_AUDIT_COLS " FROM audit_events WHERE ");
    if (by_time)
        APPEND(oldest ? "(time_us, rowid) > ($11, $9)" : "(time_us, rowid) < ($11, $9)");
    else if (chain)
        APPEND(oldest ? "chain = $1 AND seq > $12 AND rowid > $9"
                      : "chain = $1 AND seq < $12 AND rowid < $9");
    else
        APPEND(oldest ? "rowid > $9" : "rowid < $9");
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        if ((mask & parts[i].bit) && parts[i].bit != folded) APPEND(parts[i].sql);
    if (by_time)
        APPEND(oldest ? " ORDER BY time_us, rowid LIMIT $10"
                      : " ORDER BY time_us DESC, rowid DESC LIMIT $10");
    else if (chain)
        APPEND(oldest ? " ORDER BY seq LIMIT $10" : " ORDER BY seq DESC LIMIT $10");
    else
        APPEND(oldest ? " ORDER BY rowid LIMIT $10" : " ORDER BY rowid DESC LIMIT $10");
#undef APPEND
}

_Static_assert(GH_PG_AUDIT_QUERY_VARIANTS >= GH_AQ_SHAPES, "a statement for every query shape");

/* text for the filters, int8 for times, keyset, limit and a walk's start. */
static const Oid query_types[12] = {25, 25, 25, 25, 25, 25, 20, 20, 20, 20, 20, 20};

int gh_pg__audit_query(struct gh_store *st, const struct gh_store_audit_filter *f,
                       const struct gh_store_audit_pos *after, size_t limit,
                       struct gh_store_audit_row *out, size_t *count, bool *more,
                       struct gh_err *err)
{
    unsigned mask = gh_store__audit_query_shape(f);
    struct gh_store_audit_pos pos = *after; /* clamped into the range by the wrapper */
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    char name[16], sql[1024];
    int64_t start = 0;
    int rc;

    *count = 0;
    *more = false;
    /* A tenant's query runs under RLS as well as naming its tenant. */
    rc = gh_pg__begin(gh_pg__of(st), f->tenant_id ? GH_PG_TENANT : GH_PG_OPERATOR, f->tenant_id,
                      false, &tx, err);
    if (rc != GH_OK) return rc;
    if (gh_store__audit_query_walks_system(mask)) {
        /* Sorts off alone: the partial index is the plan without a sort.
         * Not the chain walk's start, which would look for the system
         * chain's ends through rows the policy hides (tenant_id ''). */
        rc = gh_pg__run(&tx, GH_PG_SORT_OFF, NULL, NULL, err);
        if (rc != GH_OK) return gh_pg__end(&tx, rc, err);
    } else if (gh_store__audit_query_walks_chain(mask)) {
        gh_pg__arg_i64(&a, pos.rowid);
        gh_pg__arg(&a, f->tenant_id);
        gh_pg__arg(&a, f->oldest_first ? "t" : "f");
        rc = gh_pg__run(&tx, GH_PG_AUDIT_CHAIN_QUERY_START, &a, &r, err);
        if (rc == GH_OK) start = gh_pg__i64(r, 0, 1);
        PQclear(r);
        r = NULL;
        memset(&a, 0, sizeof(a));
        if (rc != GH_OK) return gh_pg__end(&tx, rc, err);
    }
    snprintf(name, sizeof(name), "aq%u", mask);
    query_sql(mask, sql, sizeof(sql));
    gh_pg__arg(&a, f->tenant_id);
    gh_pg__arg(&a, f->actor);
    gh_pg__arg(&a, f->action);
    gh_pg__arg(&a, f->outcome);
    gh_pg__arg(&a, f->resource);
    gh_pg__arg(&a, f->request_id);
    if (f->from_us > 0)
        gh_pg__arg_i64(&a, f->from_us);
    else
        gh_pg__arg(&a, NULL);
    if (f->to_us > 0)
        gh_pg__arg_i64(&a, f->to_us);
    else
        gh_pg__arg(&a, NULL);
    gh_pg__arg_i64(&a, pos.rowid);
    gh_pg__arg_i64(&a, (int64_t)limit + 1); /* one more row says whether a next page exists */
    gh_pg__arg_i64(&a, pos.time_us);
    gh_pg__arg_i64(&a, start);
    rc = gh_pg__run_sql(&tx, name, sql, query_types, 12, &tx.c->query_prepared[mask], &a, &r, err);
    for (int i = 0; rc == GH_OK && i < PQntuples(r); i++) {
        if (*count == limit) {
            *more = true;
            break;
        }
        audit_row(r, i, &out[*count]);
        (*count)++;
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

/* ---- Keys --------------------------------------------------------------------- */

int gh_pg__audit_key_insert(struct gh_store *st, const struct gh_store_audit_key *k,
                            struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, k->key_id);
    gh_pg__arg(&a, k->public_pem);
    gh_pg__arg(&a, k->private_pem);
    gh_pg__arg_i64(&a, k->created_at);
    rc = gh_pg__run(&tx, GH_PG_AUDIT_KEY_INSERT, &a, NULL, err);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__audit_keys_list(struct gh_store *st, struct gh_store_audit_key *out, size_t max,
                           size_t *count, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc;

    *count = 0;
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc != GH_OK) return rc;
    gh_pg__arg_i64(&a, max > INT64_MAX ? INT64_MAX : (int64_t)max);
    rc = gh_pg__run(&tx, GH_PG_AUDIT_KEYS_LIST, &a, &r, err);
    for (int i = 0; rc == GH_OK && i < PQntuples(r) && (size_t)i < max; i++) {
        struct gh_store_audit_key *k = &out[*count];
        memset(k, 0, sizeof(*k));
        rc = gh_pg__text(r, i, 0, k->key_id, sizeof(k->key_id), err);
        if (rc == GH_OK) rc = gh_pg__text(r, i, 1, k->public_pem, sizeof(k->public_pem), err);
        if (rc == GH_OK) rc = gh_pg__text(r, i, 2, k->private_pem, sizeof(k->private_pem), err);
        if (rc != GH_OK) break;
        k->created_at = gh_pg__i64(r, i, 3);
        (*count)++;
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

/* ---- Archives ----------------------------------------------------------------- */

/* The int64 that statement <id> returns for <chain>. */
static int chain_int(struct gh_pg_tx *tx, enum gh_pg_stmt id, const char *chain, int64_t *out,
                     struct gh_err *err)
{
    struct gh_pg_args a = {0};
    PGresult *r = NULL;
    int rc;

    gh_pg__arg(&a, chain);
    rc = gh_pg__run(tx, id, &a, &r, err);
    if (rc == GH_OK) *out = PQntuples(r) == 1 ? gh_pg__i64(r, 0, 0) : 0;
    PQclear(r);
    return rc;
}

static int archive_check(struct gh_pg_tx *tx, const struct gh_store_audit_archive *a,
                         struct gh_err *err)
{
    int64_t hot_first = 0, archived = 0;
    struct gh_pg_args args = {0};
    PGresult *r = NULL;
    bool same;
    int rc;

    if ((rc = chain_int(tx, GH_PG_AUDIT_HOT_FIRST, a->chain, &hot_first, err)) != GH_OK ||
        (rc = chain_int(tx, GH_PG_AUDIT_ARCHIVE_LAST, a->chain, &archived, err)) != GH_OK)
        return rc;
    if ((uint64_t)archived + 1 != a->first_seq || (uint64_t)hot_first != a->first_seq) {
        gh_err_set(err, NULL, 0, 0,
                   "audit archive: seq %llu of chain %s is not the first event still in the store",
                   (unsigned long long)a->first_seq, a->chain);
        return GH_STORE_CONFLICT;
    }
    gh_pg__arg(&args, a->chain);
    gh_pg__arg_i64(&args, (int64_t)a->last_seq);
    rc = gh_pg__run(tx, GH_PG_AUDIT_HASH_AT, &args, &r, err);
    if (rc != GH_OK) return rc;
    same = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), a->last_hash) == 0;
    PQclear(r);
    if (!same) {
        gh_err_set(err, NULL, 0, 0,
                   "audit archive: the stored hash of chain %s at seq %llu is not the segment's "
                   "last hash",
                   a->chain, (unsigned long long)a->last_seq);
        return GH_STORE_CONFLICT;
    }
    return GH_OK;
}

int gh_pg__audit_archive_commit(struct gh_store *st, const struct gh_store_audit_archive *a,
                                struct gh_err *err)
{
    struct gh_pg_args args = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    /* With the append lock: no append or other archiver moves the chain
     * under us. */
    int rc = gh_pg__begin_audit_locked(gh_pg__of(st), &tx, err);

    if (rc != GH_OK) return rc;
    rc = archive_check(&tx, a, err);
    if (rc != GH_OK) goto out;
    gh_pg__arg(&args, a->chain);
    gh_pg__arg_i64(&args, (int64_t)a->first_seq);
    gh_pg__arg_i64(&args, (int64_t)a->last_seq);
    rc = gh_pg__run(&tx, GH_PG_AUDIT_ARCHIVE_DELETE, &args, &r, err);
    /* With first and last checked, fewer rows than the range is a hole. */
    if (rc == GH_OK && strtoull(PQcmdTuples(r), NULL, 10) != a->events) {
        gh_err_set(err, NULL, 0, 0, "audit archive: chain %s has a gap in seq %llu..%llu", a->chain,
                   (unsigned long long)a->first_seq, (unsigned long long)a->last_seq);
        rc = GH_STORE_CONFLICT;
    }
    PQclear(r);
    if (rc != GH_OK) goto out;
    gh_pg__arg(&args, a->prev_hash);
    gh_pg__arg(&args, a->last_hash);
    gh_pg__arg_i64(&args, (int64_t)a->events);
    gh_pg__arg(&args, a->file);
    gh_pg__arg(&args, a->file_sha256);
    gh_pg__arg_i64(&args, a->created_at);
    rc = gh_pg__run(&tx, GH_PG_AUDIT_ARCHIVE_INSERT, &args, NULL, err);
out:
    return gh_pg__end(&tx, rc, err);
}

struct archive_walk {
    gh_store_audit_archive_cb cb;
    void *arg;
    struct gh_err *err;
};

static int archive_row(const PGresult *r, void *arg)
{
    struct archive_walk *w = arg;
    struct gh_store_audit_archive a;

    memset(&a, 0, sizeof(a));
    a.first_seq = (uint64_t)gh_pg__i64(r, 0, 1);
    a.last_seq = (uint64_t)gh_pg__i64(r, 0, 2);
    a.events = (uint64_t)gh_pg__i64(r, 0, 5);
    a.created_at = gh_pg__i64(r, 0, 8);
    if (gh_pg__text(r, 0, 0, a.chain, sizeof(a.chain), w->err) != GH_OK ||
        gh_pg__text(r, 0, 3, a.prev_hash, sizeof(a.prev_hash), w->err) != GH_OK ||
        gh_pg__text(r, 0, 4, a.last_hash, sizeof(a.last_hash), w->err) != GH_OK ||
        gh_pg__text(r, 0, 6, a.file, sizeof(a.file), w->err) != GH_OK ||
        gh_pg__text(r, 0, 7, a.file_sha256, sizeof(a.file_sha256), w->err) != GH_OK)
        return GH_ERROR;
    return w->cb(&a, w->arg);
}

int gh_pg__audit_archives_walk(struct gh_store *st, const char *chain, gh_store_audit_archive_cb cb,
                               void *arg, struct gh_err *err)
{
    struct archive_walk w = {cb, arg, err};
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, true, &tx, err);

    if (rc != GH_OK) return rc;
    if (chain) gh_pg__arg(&a, chain);
    rc = gh_pg__stream(&tx, chain ? GH_PG_AUDIT_ARCHIVES_CHAIN : GH_PG_AUDIT_ARCHIVES, &a,
                       archive_row, &w, err);
    return gh_pg__end(&tx, rc, err);
}
