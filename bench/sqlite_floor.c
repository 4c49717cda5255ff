/* What SQLite itself takes to store audit events (issue 5's target of
 * 100,000 events/s into the store): the audit_events table exactly as the
 * migrations make it (src/store/sqlite_migrations.c), filled with the
 * statement the store uses (GH_SQ_AUDIT_INSERT) by a bare loop: no
 * validation, no chaining, no gatehouse code between the rows, one
 * transaction and one durable commit (synchronous=FULL, WAL) per batch of
 * 1,000, as the audit writer commits. Then the same with each query index
 * dropped in turn, and with none of them, so each index's cost shows.
 * Checkpoints are left out of the timing (the store runs them on a thread
 * of its own): each fill ends with one, untimed.
 *
 * The rows are the events of bench/audit_verify_bench.c (canonical form
 * and hash made by src/audit/chain.c, about 1,000 bytes a row), made
 * before each batch's clock starts. Variants are interleaved over ROUNDS
 * rounds; the report is the median of each.
 *
 *   make bench-sqlite-floor
 *   build/sqlite_floor_bench [N] [ROUNDS] [DIR]     (defaults 300000 3 /tmp)
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/chain.h"
#include "bench_event.h"
#include "core/clock.h"
#include "store/store.h"

#define CHAINS 11
#define BATCH  1000

/* The query indexes of audit_events; variant 0 keeps all, variant k drops
 * index k-1, the last drops them all. */
static const char *const indexes[] = {
    "audit_events_by_time",   "audit_events_by_tenant_time", "audit_events_by_request",
    "audit_events_by_action", "audit_events_by_actor",
};
#define NINDEX   (sizeof(indexes) / sizeof(indexes[0]))
#define NVARIANT (NINDEX + 2)

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "sqlite_floor_bench: %s: %s\n", what, msg);
    exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) die(sql, msg ? msg : "failed");
}

/* Row <i> of the fill: the events of bench/audit_verify_bench.c, with a node. */
static void make_row(uint64_t i, uint64_t *seq, uint8_t (*prev)[32], char (*chains)[32],
                     struct gh_store_audit_row *row)
{
    struct gh_audit_event ev;
    int c = (int)(i % CHAINS);

    bench_event(&ev, i, chains[c]);
    GH_AUDIT_SET(&ev, node, GH_STR_LIT("gw-1"));
    if (gh_audit_chain_event(&ev, ++seq[c], prev[c], row) != GH_OK) die("chain", "event");
    memcpy(prev[c], ev.hash, 32);
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

/* One fill of <n> rows into a fresh store under <base> with variant <v>;
 * returns the rows per second of the timed part. */
static double fill(const char *base, uint64_t n, size_t v, struct gh_store_audit_row *rows)
{
    char dir[256], path[300], sql[320];
    struct gh_store_params params = {0};
    struct gh_store *st;
    struct gh_err err = {0};
    char chains[CHAINS][32];
    uint8_t prev[CHAINS][32] = {{0}};
    uint64_t seq[CHAINS] = {0}, ns = 0;
    sqlite3 *db;
    sqlite3_stmt *ins;

    snprintf(dir, sizeof(dir), "%s/gh_sqlite_floor_XXXXXX", base);
    if (mkdtemp(dir) == NULL) die("mkdtemp", dir);
    snprintf(path, sizeof(path), "%s/gatehouse.db", dir);
    params.sqlite_path = path;
    /* The schema exactly as the gateway makes it. */
    if (gh_store_open(&params, &st, &err) != GH_OK || gh_store_migrate(st, NULL, NULL, &err))
        die("store", err.msg);
    gh_store_close(st);

    if (sqlite3_open(path, &db) != SQLITE_OK) die("open", path);
    exec(db, "PRAGMA journal_mode = WAL");
    exec(db, "PRAGMA synchronous = FULL");
    exec(db, "PRAGMA wal_autocheckpoint = 0");
    for (size_t k = 0; k < NINDEX; k++)
        if (v == NVARIANT - 1 || v == k + 1) {
            snprintf(sql, sizeof(sql), "DROP INDEX %s", indexes[k]);
            exec(db, sql);
        }
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO audit_events (chain, seq, id, time_us, tenant_id, actor, "
                           "action, resource, outcome, request_id, hash, body, node) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                           -1, &ins, NULL) != SQLITE_OK)
        die("prepare", sqlite3_errmsg(db));
    for (int c = 0; c < CHAINS - 1; c++)
        snprintf(chains[c], sizeof(chains[c]), "tn_bench%012d", c);
    chains[CHAINS - 1][0] = '\0';

    for (uint64_t done = 0; done < n;) {
        size_t k = 0;
        for (; k < BATCH && done + k < n; k++)
            make_row(done + k, seq, prev, chains, &rows[k]);
        uint64_t t0 = gh_now_ns();
        exec(db, "BEGIN IMMEDIATE");
        for (size_t i = 0; i < k; i++) {
            const struct gh_store_audit_row *r = &rows[i];
            bind_text(ins, 1, r->chain);
            sqlite3_bind_int64(ins, 2, (int64_t)r->seq);
            bind_text(ins, 3, r->id);
            sqlite3_bind_int64(ins, 4, r->time_us);
            bind_text(ins, 5, r->tenant_id);
            bind_text(ins, 6, r->actor);
            bind_text(ins, 7, r->action);
            bind_text(ins, 8, r->resource);
            bind_text(ins, 9, r->outcome);
            bind_text(ins, 10, r->request_id);
            bind_text(ins, 11, r->hash);
            sqlite3_bind_text(ins, 12, r->body, (int)r->body_len, SQLITE_STATIC);
            bind_text(ins, 13, r->node);
            if (sqlite3_step(ins) != SQLITE_DONE) die("insert", sqlite3_errmsg(db));
            sqlite3_reset(ins);
        }
        exec(db, "COMMIT");
        ns += gh_now_ns() - t0;
        done += k;
    }
    sqlite3_finalize(ins);
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    sqlite3_close(db);
    snprintf(sql, sizeof(sql), "%s-wal", path);
    unlink(sql);
    snprintf(sql, sizeof(sql), "%s-shm", path);
    unlink(sql);
    unlink(path);
    rmdir(dir);
    return (double)n * 1e9 / (double)ns;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 300000;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    const char *base = argc > 3 ? argv[3] : "/tmp";
    struct gh_store_audit_row *rows = calloc(BATCH, sizeof(*rows));
    double(*rate)[NVARIANT];

    if (n == 0 || rounds < 1 || rounds > 99) {
        fprintf(stderr, "usage: sqlite_floor_bench [N] [ROUNDS 1-99] [DIR]\n");
        return 2;
    }
    rate = calloc((size_t)rounds, sizeof(*rate));
    if (rows == NULL || rate == NULL) die("memory", "out of memory");
    printf("sqlite_floor: %" PRIu64 " events per fill, batches of %d, %d round(s), SQLite %s\n", n,
           BATCH, rounds, sqlite3_libversion());
    for (int r = 0; r < rounds; r++)
        for (size_t v = 0; v < NVARIANT; v++) {
            rate[r][v] = fill(base, n, v, rows);
            fflush(stdout);
        }
    for (size_t v = 0; v < NVARIANT; v++) {
        double m[99];
        for (int r = 0; r < rounds; r++)
            m[r] = rate[r][v];
        qsort(m, (size_t)rounds, sizeof(double), cmp_double);
        printf("variant=\"%s%s\" rows_per_s=%.0f (min %.0f, max %.0f)\n",
               v == 0              ? "every index"
               : v == NVARIANT - 1 ? "no query index"
                                   : "without ",
               v > 0 && v < NVARIANT - 1 ? indexes[v - 1] : "", m[rounds / 2], m[0], m[rounds - 1]);
    }
    free(rows);
    free(rate);
    return 0;
}
