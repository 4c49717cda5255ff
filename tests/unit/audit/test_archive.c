/* Tests of audit archives: segment files (src/audit/segment.c) written and
 * read back, damaged, truncated and missing; archive passes
 * (src/audit/archive.c) over three chains in a temporary store: a prefix
 * past retention moves, in segments of at most max_events, with counts that
 * add up; a crash between the files and the store transaction leaves
 * orphans that the next pass removes; the store refuses a range that is not
 * the next prefix; chain heads and appends continue after a chain archived
 * whole; and the verifier (src/audit/archive_verify.c, verify.c) passes
 * across the boundary and names a changed or missing segment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/archive.h"
#include "audit/chain.h"
#include "audit/checkpoint.h"
#include "audit/segment.h"
#include "audit/verify.h"

#define A      "tn_AAAAAAAAAAAAAAAAAAAA"
#define NEVENT 20
#define EVERY  5
#define T0     1763782800000000LL /* event seq s is at T0 + s ms */

struct fixture {
    char dir[64], path[128], arc[128];
    struct gh_store *st;
    struct gh_config *cfg;
    struct gh_audit_chain_report reports[16];
    size_t nreports;
};

static const char *const chain_names[3] = {A, "tn_BBBBBBBBBBBBBBBBBBBB", "system"};

static void chain_rows(struct gh_store_audit_row *rows, int c, uint64_t from, uint64_t to,
                       uint8_t prev[32])
{
    for (uint64_t seq = from; seq <= to; seq++) {
        struct gh_audit_event ev;
        uint8_t rnd[10] = {(uint8_t)c, (uint8_t)seq};
        gh_audit_event_init(&ev, T0 + (int64_t)seq * 1000, rnd);
        if (c < 2) GH_AUDIT_SET(&ev, tenant, gh_str_cstr(chain_names[c]));
        GH_AUDIT_SET(&ev, action, GH_STR_LIT("key.revoke"));
        ev.outcome = GH_AUDIT_SUCCESS;
        assert_int_equal(gh_audit_chain_event(&ev, seq, prev, &rows[seq - from]), GH_OK);
        memcpy(prev, ev.hash, 32);
    }
}

/* NEVENT events on each chain, a signed checkpoint every EVERY. */
static void build(struct gh_store *st)
{
    struct gh_store_audit_key key;
    struct gh_store_audit_row *rows = calloc(NEVENT, sizeof(*rows));
    struct gh_store_audit_checkpoint cps[NEVENT / EVERY];
    struct gh_err err = {0};
    EVP_PKEY *pk;

    assert_int_equal(gh_audit_key_generate(&key, &err), GH_OK);
    assert_int_equal(gh_store_audit_key_insert(st, &key, &err), GH_OK);
    pk = gh_audit_key_load(key.private_pem, true, &err);
    assert_non_null(pk);
    for (int c = 0; c < 3; c++) {
        uint8_t prev[32] = {0}, h[32];
        size_t ncp = 0;
        chain_rows(rows, c, 1, NEVENT, prev);
        for (uint64_t seq = EVERY; seq <= NEVENT; seq += EVERY) {
            assert_int_equal(gh_audit_unhex(rows[seq - 1].hash, h), GH_OK);
            assert_int_equal(gh_audit_checkpoint_sign(pk, key.key_id, rows[0].chain, seq, h,
                                                      T0 / 1000 + (int64_t)seq, &cps[ncp++], &err),
                             GH_OK);
        }
        if (gh_store_audit_append(st, rows, NEVENT, cps, ncp, &err) != GH_OK)
            fail_msg("append: %s", err.msg);
    }
    EVP_PKEY_free(pk);
    free(rows);
}

static int setup(void **state)
{
    static const char yaml[] = "listen: [{address: \"127.0.0.1:18080\"}]\n"
                               "upstreams: { app: { endpoints: [\"127.0.0.1:18081\"] } }\n"
                               "routes: [{path: /, upstream: app}]\n"
                               "audit: { retention: 1s }\n";
    struct fixture *f = calloc(1, sizeof(*f));
    struct gh_store_params p = {0};
    struct gh_err err = {0};

    snprintf(f->dir, sizeof(f->dir), "/tmp/gh_archive_XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->path, sizeof(f->path), "%s/gatehouse.db", f->dir);
    snprintf(f->arc, sizeof(f->arc), "%s/arc", f->dir);
    p.sqlite_path = f->path;
    if (gh_store_open(&p, &f->st, &err) != GH_OK || gh_store_migrate(f->st, NULL, NULL, &err))
        fail_msg("open: %s", err.msg);
    if (gh_config_load_buffer("test.yaml", yaml, sizeof(yaml) - 1, &f->cfg, &err) != GH_OK)
        fail_msg("config: %s", err.msg);
    build(f->st);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[256];

    gh_store_close(f->st);
    gh_config_free(f->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static int64_t count(struct fixture *f, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    int64_t v = -1;

    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

/* A pass with "now" such that events up to seq <upto> are past the 1s retention. */
static void pass(struct fixture *f, uint64_t upto, uint64_t max, bool crash,
                 struct gh_audit_archive_stats *st)
{
    struct gh_audit_archive_opts o = {.dir = f->arc,
                                      .now_us = T0 + 1000000 + (int64_t)upto * 1000 + 1,
                                      .max_events = max,
                                      .crash_before_commit = crash};
    struct gh_err err = {0};

    memset(st, 0, sizeof(*st));
    if (gh_audit_archive_run(f->st, f->cfg, &o, st, &err) != GH_OK) fail_msg("pass: %s", err.msg);
}

static void on_report(const struct gh_audit_chain_report *r, void *arg)
{
    struct fixture *f = arg;

    if (r->problem != GH_AUDIT_INTACT) print_message("  %s: %s\n", r->chain, r->reason);
    if (f->nreports < 16) f->reports[f->nreports++] = *r;
}

/* Archive + hot verification; returns the number of bad chains. */
static size_t verify_all(struct fixture *f)
{
    struct gh_audit_verify_start *starts = NULL;
    size_t ns = 0, bad = 0, bad2 = 0;
    struct gh_err err = {0};

    f->nreports = 0;
    if (gh_audit_archive_verify(f->st, f->arc, NULL, on_report, f, &bad, &starts, &ns, &err) !=
        GH_OK)
        fail_msg("archive verify: %s", err.msg);
    if (gh_audit_verify_from(f->st, NULL, starts, ns, on_report, f, &bad2, &err) != GH_OK)
        fail_msg("verify: %s", err.msg);
    free(starts);
    return bad + bad2;
}

/* The report of <chain>: the archive's (<hot> false) or the store's. */
static const struct gh_audit_chain_report *rep(struct fixture *f, const char *chain, bool hot)
{
    bool seen = false;

    for (size_t i = 0; i < f->nreports; i++)
        if (strcmp(f->reports[i].chain, chain) == 0) {
            if (seen || !hot) return &f->reports[i];
            seen = true;
        }
    fail_msg("no report of %s", chain);
    return NULL;
}

/* ---- Segments ---------------------------------------------------------------------- */

struct lines {
    size_t n;
    char first[64];
};

static int on_line(const char *body, size_t len, const char hash[65], void *arg)
{
    struct lines *l = arg;

    if (l->n++ == 0) snprintf(l->first, sizeof(l->first), "%.*s|%.4s", (int)len, body, hash);
    return GH_OK;
}

static void test_segment_roundtrip(void **state)
{
    struct fixture *f = *state;
    char path[160], sha[65], sha2[65];
    struct gh_audit_segment_writer *w;
    struct lines l = {0};
    struct gh_err err = {0};
    FILE *fp;
    long size;

    snprintf(path, sizeof(path), "%s/seg.jsonl.zst", f->dir);
    w = gh_audit_segment_create(path, &err);
    assert_non_null(w);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(gh_audit_segment_add(w, "{\"v\":1}", 7,
                                              "abcd"
                                              "0123456789012345678901"
                                              "234567890123456789012345678901"
                                              "23456789",
                                              &err),
                         GH_OK);
    assert_int_equal(gh_audit_segment_finish(w, sha, &err), GH_OK);
    assert_null(gh_audit_segment_create(path, &err)); /* never overwrites */
    assert_int_equal(gh_audit_segment_read(path, on_line, &l, sha2, &err), GH_OK);
    assert_int_equal(l.n, 1000);
    assert_string_equal(l.first, "{\"v\":1}|abcd");
    assert_string_equal(sha, sha2);

    /* Truncated: the frame does not end. */
    fp = fopen(path, "r+");
    fseek(fp, 0, SEEK_END);
    size = ftell(fp);
    fclose(fp);
    assert_int_equal(truncate(path, size - 3), 0);
    l.n = 0;
    assert_int_equal(gh_audit_segment_read(path, on_line, &l, sha2, &err), GH_AGAIN);
    assert_string_not_equal(sha, sha2);
    /* Missing. */
    unlink(path);
    assert_int_equal(gh_audit_segment_read(path, on_line, &l, sha2, &err), GH_DECLINED);
}

/* ---- Passes ------------------------------------------------------------------------ */

static void test_archive_prefix(void **state)
{
    struct fixture *f = *state;
    struct gh_audit_archive_stats st;

    pass(f, 10, 4, false, &st); /* seq 1..10 of each chain, as 1-4, 5-8, 9-10 */
    assert_int_equal(st.events, 30);
    assert_int_equal(st.segments, 9);
    assert_int_equal(count(f, "SELECT count(*) FROM audit_events"), 30);
    assert_int_equal(count(f, "SELECT min(seq) FROM audit_events"), 11);
    assert_int_equal(count(f, "SELECT sum(events) FROM audit_archives"), 30);
    assert_int_equal(count(f, "SELECT count(*) FROM audit_archives WHERE chain = 'system' AND "
                              "first_seq = 9 AND last_seq = 10"),
                     1);
    assert_int_equal(verify_all(f), 0);
    /* Again at the same time: nothing more is past retention. */
    pass(f, 10, 4, false, &st);
    assert_int_equal(st.events, 0);
    /* Later: the rest, continuing the prefix. */
    pass(f, NEVENT, 0, false, &st);
    assert_int_equal(st.events, 30);
    assert_int_equal(count(f, "SELECT count(*) FROM audit_events"), 0);
    assert_int_equal(verify_all(f), 0);
    assert_int_equal(rep(f, A, true)->head, NEVENT); /* the store's part: the archived head */
    assert_int_equal(rep(f, A, true)->archived, NEVENT);
    assert_int_equal(rep(f, A, false)->head, NEVENT);
    assert_int_equal(rep(f, A, false)->events, NEVENT);
    assert_int_equal(rep(f, A, false)->checkpoints, NEVENT / EVERY);
}

/* A crash between the durable files and the store transaction: the files
 * are orphans (the events are all still in the store), the verifier names
 * them, and the next pass removes them and archives again. */
static void test_crash_before_commit(void **state)
{
    struct fixture *f = *state;
    struct gh_audit_archive_stats st;
    char seg[200];

    pass(f, 10, 0, true, &st);
    assert_int_equal(st.segments, 0);
    assert_int_equal(count(f, "SELECT count(*) FROM audit_events"), 3 * NEVENT);
    assert_int_equal(count(f, "SELECT count(*) FROM audit_archives"), 0);
    snprintf(seg, sizeof(seg), "%s/system/1-10.jsonl.zst", f->arc);
    assert_int_equal(access(seg, F_OK), 0); /* the first chain's files were written */
    assert_int_equal(verify_all(f), 1);
    assert_int_equal(rep(f, "system", false)->problem, GH_AUDIT_INSERTED);
    assert_non_null(strstr(rep(f, "system", false)->reason, "not recorded"));

    pass(f, 12, 0, false, &st);
    assert_int_equal(st.orphans, 2); /* the segment and its manifest */
    assert_int_equal(st.events, 36);
    assert_int_equal(access(seg, F_OK), -1); /* 1-12 now */
    assert_int_equal(count(f, "SELECT count(*) FROM audit_events") +
                         count(f, "SELECT sum(events) FROM audit_archives"),
                     3 * NEVENT);
    assert_int_equal(verify_all(f), 0);
}

/* A changed or missing segment is named with its chain and range; the hot
 * part still verifies from the recorded head. */
static void test_verify_damage(void **state)
{
    struct fixture *f = *state;
    struct gh_audit_archive_stats st;
    char seg[200];
    FILE *fp;

    pass(f, 10, 0, false, &st);
    snprintf(seg, sizeof(seg), "%s/%s/1-10.jsonl.zst", f->arc, A);
    fp = fopen(seg, "r+");
    assert_non_null(fp);
    fseek(fp, 20, SEEK_SET);
    fputc('X', fp);
    fclose(fp);
    assert_int_equal(verify_all(f), 1);
    assert_int_equal(rep(f, A, false)->problem, GH_AUDIT_CHANGED);
    assert_non_null(strstr(rep(f, A, false)->reason, "1..10"));
    assert_int_equal(rep(f, A, true)->problem, GH_AUDIT_INTACT);
    unlink(seg);
    assert_int_equal(verify_all(f), 1);
    assert_int_equal(rep(f, A, false)->problem, GH_AUDIT_DELETED);
    assert_int_equal(rep(f, A, false)->seq, 1);
    assert_non_null(strstr(rep(f, A, false)->reason, "missing"));
}

/* The store moves whole prefixes only, and only what it holds. */
static void test_commit_refuses(void **state)
{
    struct fixture *f = *state;
    struct gh_store_audit_archive a = {0};
    struct gh_err err = {0};

    snprintf(a.chain, sizeof(a.chain), "system");
    a.first_seq = 2; /* not the first */
    a.last_seq = 3;
    a.events = 2;
    memset(a.prev_hash, '0', 64);
    memset(a.last_hash, '0', 64);
    memset(a.file_sha256, '0', 64);
    snprintf(a.file, sizeof(a.file), "system/2-3.jsonl.zst");
    assert_int_equal(gh_store_audit_archive_commit(f->st, &a, &err), GH_STORE_CONFLICT);
    a.first_seq = 1; /* the first, but the hash at 3 is not this */
    a.events = 3;
    assert_int_equal(gh_store_audit_archive_commit(f->st, &a, &err), GH_STORE_CONFLICT);
    a.events = 9;
    assert_int_equal(gh_store_audit_archive_commit(f->st, &a, &err), GH_STORE_INVALID);
    assert_int_equal(count(f, "SELECT count(*) FROM audit_events"), 3 * NEVENT);
    assert_int_equal(count(f, "SELECT count(*) FROM audit_archives"), 0);
}

struct head {
    int64_t rowid;
    uint64_t seq;
    char hash[65];
};

static int on_head(const struct gh_store_audit_row *row, void *arg)
{
    struct head *h = arg;

    if (strcmp(row->chain, A) != 0) return GH_OK;
    h->rowid = row->rowid;
    h->seq = row->seq;
    memcpy(h->hash, row->hash, 65);
    return GH_OK;
}

/* A chain archived whole keeps its head; appends continue after it. */
static void test_heads_after_whole_chain(void **state)
{
    struct fixture *f = *state;
    struct gh_audit_archive_stats st;
    struct gh_store_audit_row *rows = calloc(3, sizeof(*rows));
    struct head h = {0}, h2 = {0};
    struct gh_err err = {0};
    uint8_t prev[32];

    assert_int_equal(gh_store_audit_heads(f->st, on_head, &h2, &err), GH_OK);
    pass(f, NEVENT, 0, false, &st);
    assert_int_equal(gh_store_audit_heads(f->st, on_head, &h, &err), GH_OK);
    assert_int_equal(h.rowid, 0);
    assert_int_equal(h.seq, NEVENT);
    assert_string_equal(h.hash, h2.hash);
    /* seq 22 does not follow; 21 does. */
    assert_int_equal(gh_audit_unhex(h.hash, prev), GH_OK);
    chain_rows(rows, 0, NEVENT + 1, NEVENT + 2, prev);
    assert_int_equal(gh_store_audit_append(f->st, &rows[1], 1, NULL, 0, &err), GH_STORE_CONFLICT);
    assert_int_equal(gh_store_audit_append(f->st, rows, 2, NULL, 0, &err), GH_OK);
    assert_int_equal(verify_all(f), 0);
    assert_int_equal(rep(f, A, true)->head, NEVENT + 2);
    assert_int_equal(rep(f, A, true)->events, 2);
    free(rows);
}

/* One pass at a time per directory: a second one is refused, not run. */
static void test_one_pass_at_a_time(void **state)
{
    struct fixture *f = *state;
    struct gh_audit_archive_opts o = {.dir = f->arc, .now_us = T0 + 100000000};
    struct gh_err err = {0};
    char lock[160];
    int fd;

    assert_int_equal(mkdir(f->arc, 0700), 0);
    snprintf(lock, sizeof(lock), "%s/.lock", f->arc);
    fd = open(lock, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0 && flock(fd, LOCK_EX) == 0);
    assert_int_equal(gh_audit_archive_run(f->st, f->cfg, &o, NULL, &err), GH_AGAIN);
    assert_int_equal(count(f, "SELECT count(*) FROM audit_events"), 3 * NEVENT);
    close(fd);
    assert_int_equal(gh_audit_archive_run(f->st, f->cfg, &o, NULL, &err), GH_OK);
    assert_int_equal(count(f, "SELECT count(*) FROM audit_events"), 0);
}

/* A store older than migration 5 (the verifier does not migrate) has no
 * archives: the hot part verifies as before. */
static void test_store_without_archives_table(void **state)
{
    struct fixture *f = *state;
    struct gh_audit_verify_start *starts = NULL;
    size_t ns = 7;
    struct gh_err err = {0};
    sqlite3 *db;

    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE audit_archives", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(gh_audit_archive_heads(f->st, NULL, &starts, &ns, &err), GH_OK);
    assert_int_equal(ns, 0);
    free(starts);
    assert_int_equal(verify_all(f), 0);
}

static void test_chain_dir_names(void **state)
{
    char d[94], c[GH_STORE_AUDIT_CHAIN_SIZE];
    uint64_t a, b;

    (void)state;
    gh_audit_archive_chain_dir("../x y", d);
    assert_string_equal(d, "%2E%2E%2Fx%20y");
    assert_true(gh_audit_archive_chain_undir(d, c));
    assert_string_equal(c, "../x y");
    assert_false(gh_audit_archive_chain_undir("%61", c)); /* "a" has one spelling */
    assert_false(gh_audit_archive_chain_undir("a.b", c));
    assert_true(gh_audit_archive_parse_name("12-345.jsonl.zst", &a, &b));
    assert_true(a == 12 && b == 345);
    assert_false(gh_audit_archive_parse_name("012-345.jsonl.zst", &a, &b));
    assert_false(gh_audit_archive_parse_name("5-4.jsonl.zst", &a, &b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_segment_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_archive_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_before_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heads_after_whole_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_pass_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_without_archives_table, setup, teardown),
        cmocka_unit_test(test_chain_dir_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
