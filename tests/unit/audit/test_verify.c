/* Tests of the audit verifier (src/audit/verify.c) and checkpoints
 * (src/audit/checkpoint.c): chains built with the real event code and store
 * ops in a temporary SQLite file, then tampered with straight in the file
 * (sqlite3, as an attacker with the file would): a field, the body, a filter
 * column, a deleted row, two rows' seq swapped, forged rows inserted, the
 * tail truncated after a checkpoint, a corrupted signature, a chain rewritten
 * with correct hashes, the node of a version-2 event changed or dropped.
 * Each must be named with the right seq; an untouched store verifies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/chain.h"
#include "audit/checkpoint.h"
#include "audit/verify.h"

#define A      "tn_AAAAAAAAAAAAAAAAAAAA"
#define B      "tn_BBBBBBBBBBBBBBBBBBBB"
#define NEVENT 20 /* per chain */
#define EVERY  5  /* a checkpoint every 5 events */

struct fixture {
    char dir[64];
    char path[128];
    struct gh_store *st;
    struct gh_audit_chain_report reports[8];
    size_t nreports;
};

static const char *const chain_names[3] = {A, B, "system"};

/* Builds NEVENT events on each of the three chains, interleaved, with a
 * signed checkpoint every EVERY events. <variant> changes the actor of
 * event 3 of chain A (for a rewritten copy of the chain). Chain A is
 * written as a store that was upgraded: events 1..10 without a node
 * (format version 1), then by node "gw-1" (version 2); system is all
 * version 2 (node "gw-2"), B all version 1. */
static void build(struct gh_store *st, int variant)
{
    struct gh_store_audit_key key;
    struct gh_store_audit_row *rows = calloc(3 * NEVENT, sizeof(*rows));
    struct gh_store_audit_checkpoint cps[3 * NEVENT / EVERY];
    uint8_t prev[3][32] = {{0}};
    struct gh_err err = {0};
    EVP_PKEY *pk;
    size_t n = 0, ncp = 0;

    assert_int_equal(gh_audit_key_generate(&key, &err), GH_OK);
    assert_int_equal(gh_store_audit_key_insert(st, &key, &err), GH_OK);
    pk = gh_audit_key_load(key.private_pem, true, &err);
    assert_non_null(pk);
    for (uint64_t seq = 1; seq <= NEVENT; seq++)
        for (int c = 0; c < 3; c++) {
            struct gh_audit_event ev;
            uint8_t rnd[10] = {(uint8_t)c, (uint8_t)seq};
            gh_audit_event_init(&ev, 1763782800000000 + (int64_t)seq * 1000, rnd);
            if (c < 2) GH_AUDIT_SET(&ev, tenant, gh_str_cstr(chain_names[c]));
            GH_AUDIT_SET(&ev, actor,
                         variant && c == 0 && seq == 3 ? GH_STR_LIT("sub:mallory")
                                                       : GH_STR_LIT("sub:alice"));
            GH_AUDIT_SET(&ev, action, GH_STR_LIT("key.revoke"));
            ev.outcome = GH_AUDIT_SUCCESS;
            if (c == 0 && seq > 10) GH_AUDIT_SET(&ev, node, GH_STR_LIT("gw-1"));
            if (c == 2) GH_AUDIT_SET(&ev, node, GH_STR_LIT("gw-2"));
            assert_int_equal(gh_audit_chain_event(&ev, seq, prev[c], &rows[n]), GH_OK);
            memcpy(prev[c], ev.hash, 32);
            n++;
            if (seq % EVERY == 0) {
                assert_int_equal(gh_audit_checkpoint_sign(pk, key.key_id, ev.chain, seq, ev.hash,
                                                          1763782800000 + (int64_t)seq, &cps[ncp],
                                                          &err),
                                 GH_OK);
                ncp++;
            }
        }
    if (gh_store_audit_append(st, rows, n, cps, ncp, &err) != GH_OK)
        fail_msg("append: %s", err.msg);
    EVP_PKEY_free(pk);
    free(rows);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct gh_store_params p = {0};
    struct gh_err err = {0};

    snprintf(f->dir, sizeof(f->dir), "/tmp/gh_verify_XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->path, sizeof(f->path), "%s/gatehouse.db", f->dir);
    p.sqlite_path = f->path;
    if (gh_store_open(&p, &f->st, &err) != GH_OK || gh_store_migrate(f->st, NULL, NULL, &err))
        fail_msg("open: %s", err.msg);
    build(f->st, 0);
    *state = f;
    return 0;
}

static void remove_db(const char *path)
{
    const char *suffix[] = {"", "-wal", "-shm"};
    char p[160];

    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    gh_store_close(f->st);
    remove_db(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Runs SQL on the file through a connection of its own, as an attacker. */
static void tamper(struct fixture *f, const char *sql)
{
    sqlite3 *db;
    char *msg = NULL;

    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static void on_report(const struct gh_audit_chain_report *r, void *arg)
{
    struct fixture *f = arg;

    assert_true(f->nreports < 8);
    f->reports[f->nreports++] = *r;
}

/* Verifies and returns the report of chain A, after checking that B and
 * system are intact (tampering one chain never blames another). */
static const struct gh_audit_chain_report *verify_a(struct fixture *f, size_t want_bad)
{
    struct gh_err err = {0};
    size_t bad = 99;
    const struct gh_audit_chain_report *a = NULL;

    f->nreports = 0;
    if (gh_audit_verify(f->st, NULL, on_report, f, &bad, &err) != GH_OK)
        fail_msg("verify: %s", err.msg);
    assert_int_equal(bad, want_bad);
    assert_int_equal(f->nreports, 3);
    for (size_t i = 0; i < f->nreports; i++) {
        if (strcmp(f->reports[i].chain, A) == 0)
            a = &f->reports[i];
        else
            assert_int_equal(f->reports[i].problem, GH_AUDIT_INTACT);
    }
    assert_non_null(a);
    if (a->problem != GH_AUDIT_INTACT)
        fprintf(stderr, "    A: seq %llu: %s\n", (unsigned long long)a->seq, a->reason);
    return a;
}

static void expect(struct fixture *f, enum gh_audit_problem p, uint64_t seq, const char *words)
{
    const struct gh_audit_chain_report *a = verify_a(f, 1);

    assert_int_equal(a->problem, p);
    assert_int_equal(a->seq, seq);
    if (words) assert_non_null(strstr(a->reason, words));
}

static void test_intact(void **state)
{
    struct fixture *f = *state;
    const struct gh_audit_chain_report *a = verify_a(f, 0);

    assert_int_equal(a->problem, GH_AUDIT_INTACT);
    assert_int_equal(a->events, NEVENT);
    assert_int_equal(a->head, NEVENT);
    assert_int_equal(a->checkpoints, NEVENT / EVERY);
    /* ordered by chain */
    assert_string_equal(f->reports[0].chain, "system");
    assert_string_equal(f->reports[1].chain, A);
    assert_string_equal(f->reports[2].chain, B);
    /* one chain alone */
    struct gh_err err = {0};
    size_t bad;
    f->nreports = 0;
    assert_int_equal(gh_audit_verify(f->st, B, on_report, f, &bad, &err), GH_OK);
    assert_int_equal(f->nreports, 1);
    assert_string_equal(f->reports[0].chain, B);
    assert_int_equal(bad, 0);
}

static void test_changed_field_in_body(void **state)
{
    struct fixture *f = *state;

    /* The body alone: its columns no longer match it. */
    tamper(f, "UPDATE audit_events SET body = replace(body, 'sub:alice', 'sub:bob') "
              "WHERE chain = '" A "' AND seq = 7");
    expect(f, GH_AUDIT_CHANGED, 7, "column actor");
}

static void test_changed_body_and_column(void **state)
{
    struct fixture *f = *state;

    /* Body and column together: the hash tells. */
    tamper(f, "UPDATE audit_events SET body = replace(body, 'sub:alice', 'sub:bob'), "
              "actor = 'sub:bob' WHERE chain = '" A "' AND seq = 7");
    expect(f, GH_AUDIT_CHANGED, 7, "hash");
}

/* Pass 1 reads the table in parts, one per core, and checks the first row
 * of a chain in a part when the parts are joined: wherever the parts
 * start (the number of cores decides), a rewritten event or a deleted one
 * at any seq is named. */
static void test_tampered_at_every_seq(void **state)
{
    char sql[256];

    (void)state;
    for (int del = 0; del < 2; del++)
        for (uint64_t seq = 1; seq < NEVENT; seq++) {
            void *s;
            assert_int_equal(setup(&s), 0);
            if (del) {
                snprintf(sql, sizeof(sql),
                         "DELETE FROM audit_events WHERE chain = '" A "' AND seq = %llu",
                         (unsigned long long)seq);
                tamper(s, sql);
                expect(s, GH_AUDIT_DELETED, seq, "missing");
            } else {
                snprintf(sql, sizeof(sql),
                         "UPDATE audit_events SET body = replace(body, 'sub:alice', 'sub:bob'), "
                         "actor = 'sub:bob' WHERE chain = '" A "' AND seq = %llu",
                         (unsigned long long)seq);
                tamper(s, sql);
                expect(s, GH_AUDIT_CHANGED, seq, "hash");
            }
            teardown(&s);
        }
}

static void test_changed_body_not_canonical(void **state)
{
    struct fixture *f = *state;

    tamper(f, "UPDATE audit_events SET body = replace(body, '\"v\":1,', '\"v\": 1,') "
              "WHERE chain = '" A "' AND seq = 4");
    expect(f, GH_AUDIT_CHANGED, 4, "canonical");
}

static void test_changed_filter_column(void **state)
{
    struct fixture *f = *state;

    tamper(f, "UPDATE audit_events SET outcome = 'denied' WHERE chain = '" A "' AND seq = 11");
    expect(f, GH_AUDIT_CHANGED, 11, "column outcome");
}

static void test_changed_node_column(void **state)
{
    struct fixture *f = *state;

    tamper(f, "UPDATE audit_events SET node = 'gw-evil' WHERE chain = '" A "' AND seq = 12");
    expect(f, GH_AUDIT_CHANGED, 12, "column node");
}

static void test_node_column_on_a_version_1_event(void **state)
{
    struct fixture *f = *state;

    tamper(f, "UPDATE audit_events SET node = 'gw-1' WHERE chain = '" A "' AND seq = 3");
    expect(f, GH_AUDIT_CHANGED, 3, "column node");
}

static void test_changed_node_in_body_and_column(void **state)
{
    struct fixture *f = *state;

    tamper(f, "UPDATE audit_events SET body = replace(body, '\"node\":\"gw-1\"', "
              "'\"node\":\"gw-9\"'), node = 'gw-9' WHERE chain = '" A "' AND seq = 14");
    expect(f, GH_AUDIT_CHANGED, 14, "hash");
}

static void test_node_dropped(void **state)
{
    struct fixture *f = *state;

    /* Made a well-formed version-1 event, column and all: the hash tells. */
    tamper(f, "UPDATE audit_events SET body = replace(replace(body, ',\"node\":\"gw-1\"}', '}'), "
              "'{\"v\":2,', '{\"v\":1,'), node = '' WHERE chain = '" A "' AND seq = 13");
    expect(f, GH_AUDIT_CHANGED, 13, "hash");
}

static void test_changed_hash_column(void **state)
{
    struct fixture *f = *state;

    /* The event rewritten with a correct hash of its own: the next one breaks. */
    tamper(f, "UPDATE audit_events SET hash = '0000000000000000000000000000000000000000000000000000"
              "000000000000' WHERE chain = '" A "' AND seq = 12");
    expect(f, GH_AUDIT_CHANGED, 12, "hash");
}

static void test_unreadable_columns(void **state)
{
    struct fixture *f = *state;

    /* Too long for its field, and a NUL inside: named, not a read error. */
    tamper(f, "UPDATE audit_events SET actor = 'sub:alice' || printf('%400s', '') "
              "WHERE chain = '" A "' AND seq = 3");
    expect(f, GH_AUDIT_CHANGED, 3, "not readable");
}

static void test_nul_in_column(void **state)
{
    struct fixture *f = *state;

    tamper(f, "UPDATE audit_events SET actor = CAST(X'7375623a616c69636500657669' AS TEXT) "
              "WHERE chain = '" A "' AND seq = 6");
    expect(f, GH_AUDIT_CHANGED, 6, "not readable");
}

static void test_row_moved_out_of_its_chain(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    size_t bad;

    tamper(f, "UPDATE audit_events SET chain = '' WHERE chain = '" A "' AND seq = 4");
    f->nreports = 0;
    assert_int_equal(gh_audit_verify(f->st, NULL, on_report, f, &bad, &err), GH_OK);
    assert_int_equal(bad, 2);
    assert_int_equal(f->nreports, 4);
    assert_string_equal(f->reports[0].chain, "(invalid)"); /* '(' sorts first */
    assert_int_equal(f->reports[0].seq, 4);
    assert_string_equal(f->reports[2].chain, A);
    assert_int_equal(f->reports[2].problem, GH_AUDIT_DELETED);
    assert_int_equal(f->reports[2].seq, 4);
}

static void test_deleted_row(void **state)
{
    struct fixture *f = *state;

    tamper(f, "DELETE FROM audit_events WHERE chain = '" A "' AND seq = 9");
    expect(f, GH_AUDIT_DELETED, 9, "seq 9 is missing");
}

static void test_deleted_and_renumbered(void **state)
{
    struct fixture *f = *state;

    tamper(f, "DELETE FROM audit_events WHERE chain = '" A "' AND seq = 9;"
              "UPDATE audit_events SET seq = seq + 1000 WHERE chain = '" A "' AND seq > 9;"
              "UPDATE audit_events SET seq = seq - 1001 WHERE chain = '" A "' AND seq > 1000;");
    expect(f, GH_AUDIT_DELETED, 9, "renumbered");
}

static void test_swapped_rows(void **state)
{
    struct fixture *f = *state;

    tamper(f, "UPDATE audit_events SET seq = 1000 WHERE chain = '" A "' AND seq = 5;"
              "UPDATE audit_events SET seq = 5 WHERE chain = '" A "' AND seq = 6;"
              "UPDATE audit_events SET seq = 6 WHERE chain = '" A "' AND seq = 1000;");
    expect(f, GH_AUDIT_REORDERED, 5, "seq 5 is stored at seq 6");
}

/* Moves the events from <seq> on one place later, freeing <seq>. */
#define MAKE_ROOM(seq)                                                                             \
    "UPDATE audit_events SET seq = seq + 1000 WHERE chain = '" A "' AND seq >= " #seq ";"          \
    "UPDATE audit_events SET seq = seq - 999 WHERE chain = '" A "' AND seq > 1000;"

static void test_inserted_forged_row(void **state)
{
    struct fixture *f = *state;
    struct gh_store_audit_row *row = calloc(1, sizeof(*row));
    struct gh_audit_event ev;
    uint8_t prev[32], rnd[10] = {9, 9, 9};
    char sql[GH_STORE_AUDIT_BODY_MAX + 1024];
    sqlite3 *db;
    sqlite3_stmt *s;

    /* The forger knows the format: a row at seq 12 that chains correctly
     * onto event 11's hash. The renumbered event 12 (now at 13) cannot. */
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT hash FROM audit_events WHERE chain = '" A "' AND seq = 11",
                           -1, &s, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(gh_audit_unhex((const char *)sqlite3_column_text(s, 0), prev), GH_OK);
    sqlite3_finalize(s);
    sqlite3_close(db);
    gh_audit_event_init(&ev, 1763782800011500, rnd);
    GH_AUDIT_SET(&ev, tenant, GH_STR_LIT(A));
    GH_AUDIT_SET(&ev, actor, GH_STR_LIT("sub:alice"));
    GH_AUDIT_SET(&ev, action, GH_STR_LIT("key.create"));
    ev.outcome = GH_AUDIT_SUCCESS;
    assert_int_equal(gh_audit_chain_event(&ev, 12, prev, row), GH_OK);
    snprintf(sql, sizeof(sql),
             MAKE_ROOM(12) "INSERT INTO audit_events (chain, seq, id, time_us, tenant_id, actor, "
                           "action, resource, outcome, request_id, hash, body) VALUES ('%s', 12, "
                           "'%s', %lld, '%s', '%s', '%s', '', '%s', '', '%s', '%s')",
             row->chain, row->id, (long long)row->time_us, row->tenant_id, row->actor, row->action,
             row->outcome, row->hash, row->body);
    tamper(f, sql);
    expect(f, GH_AUDIT_INSERTED, 12, "not the gateway's");
    free(row);
}

static void test_inserted_naive_row(void **state)
{
    struct fixture *f = *state;

    /* A copy of event 2 with a made-up hash, slipped in at seq 8. */
    tamper(f, MAKE_ROOM(8) "INSERT INTO audit_events (chain, seq, id, time_us, tenant_id, actor, "
                           "action, resource, outcome, request_id, hash, body) "
                           "SELECT chain, 8, id, time_us, tenant_id, actor, action, resource, "
                           "outcome, request_id, hash, replace(body, '\"seq\":2,', '\"seq\":8,') "
                           "FROM audit_events WHERE chain = '" A "' AND seq = 2");
    expect(f, GH_AUDIT_INSERTED, 8, "not the gateway's");
}

static void test_inserted_at_a_rowid_below_one(void **state)
{
    struct fixture *f = *state;
    const struct gh_audit_chain_report *a;

    /* A row appended to the chain's tail at a rowid the gateway never
     * gives: a scan from rowid 1 on would not meet it. */
    tamper(f, "INSERT INTO audit_events (rowid, chain, seq, id, time_us, tenant_id, actor, "
              "action, resource, outcome, request_id, hash, body) "
              "SELECT -5, chain, 21, id, time_us, tenant_id, actor, action, resource, "
              "outcome, request_id, hash, replace(body, '\"seq\":2,', '\"seq\":21,') "
              "FROM audit_events WHERE chain = '" A "' AND seq = 2");
    a = verify_a(f, 1);
    assert_int_not_equal(a->problem, GH_AUDIT_INTACT);
    assert_int_equal(a->seq, NEVENT + 1);
}

static void test_truncated_after_checkpoint(void **state)
{
    struct fixture *f = *state;
    const struct gh_audit_chain_report *a;

    /* Checkpoints at 5, 10, 15, 20: the tail from 13 is gone. */
    tamper(f, "DELETE FROM audit_events WHERE chain = '" A "' AND seq >= 13");
    a = verify_a(f, 1);
    assert_int_equal(a->problem, GH_AUDIT_TRUNCATED);
    assert_int_equal(a->seq, 13);
    assert_non_null(strstr(a->reason, "checkpoint 20"));
    assert_int_equal(a->head, 12);
}

static void test_truncated_all(void **state)
{
    struct fixture *f = *state;

    tamper(f, "DELETE FROM audit_events WHERE chain = '" A "'");
    expect(f, GH_AUDIT_TRUNCATED, 1, "checkpoint 20");
}

static void test_bad_signature(void **state)
{
    struct fixture *f = *state;

    /* Another checkpoint's (valid) signature on checkpoint 10. */
    tamper(f, "UPDATE audit_checkpoints SET signature = (SELECT signature FROM "
              "audit_checkpoints WHERE chain = '" A "' AND seq = 5) "
              "WHERE chain = '" A "' AND seq = 10");
    expect(f, GH_AUDIT_BAD_SIGNATURE, 10, "checkpoint 10");
}

static void test_bad_checkpoint_key(void **state)
{
    struct fixture *f = *state;

    tamper(f, "UPDATE audit_checkpoints SET key_id = 'ZZZZZZZZZZZZZZZZ' "
              "WHERE chain = '" A "' AND seq = 15");
    expect(f, GH_AUDIT_BAD_SIGNATURE, 15, "ZZZZZZZZZZZZZZZZ");
}

static void test_rewritten_chain(void **state)
{
    struct fixture *f = *state;
    struct gh_store *other;
    struct gh_store_params p = {0};
    struct gh_err err = {0};
    char path[160], sql[512];

    /* The whole chain A rebuilt with event 3 changed and every hash
     * recomputed: only the signed checkpoint at 5 can tell. */
    snprintf(path, sizeof(path), "%s/other.db", f->dir);
    p.sqlite_path = path;
    assert_int_equal(gh_store_open(&p, &other, &err), GH_OK);
    assert_int_equal(gh_store_migrate(other, NULL, NULL, &err), GH_OK);
    build(other, 1);
    gh_store_close(other);
    snprintf(sql, sizeof(sql),
             "ATTACH '%s' AS o;"
             "DELETE FROM audit_events WHERE chain = '" A "';"
             "INSERT INTO audit_events SELECT * FROM o.audit_events WHERE chain = '" A "';"
             "DETACH o;",
             path);
    tamper(f, sql);
    expect(f, GH_AUDIT_CHANGED, 5, "checkpoint 5");
    remove_db(path);
}

/* Fields with escapes and UTF-8 take the verifier's careful reading: still
 * intact, and a changed column is still caught. */
static void test_escaped_fields(void **state)
{
    struct fixture *f = *state;
    struct gh_store_audit_row rows[3];
    uint8_t prev[32] = {0};
    struct gh_err err = {0};
    size_t bad;

    for (int i = 0; i < 3; i++) {
        struct gh_audit_event ev;
        uint8_t rnd[10] = {7, (uint8_t)i};
        gh_audit_event_init(&ev, 1763782900000000 + i, rnd);
        GH_AUDIT_SET(&ev, tenant, GH_STR_LIT("tn_CCCCCCCCCCCCCCCCCCCC"));
        GH_AUDIT_SET(&ev, actor, GH_STR_LIT("sub:\"quoted\" \\ caf\xc3\xa9 \x01"));
        GH_AUDIT_SET(&ev, resource, GH_STR_LIT("tenants/\x7f"));
        /* Not an id the config allows, but the verifier must still read
         * it (its fast path leaves escapes to the strict parser). */
        if (i > 0) GH_AUDIT_SET(&ev, node, GH_STR_LIT("gw\"1\\"));
        ev.outcome = GH_AUDIT_DENIED;
        assert_int_equal(gh_audit_chain_event(&ev, (uint64_t)i + 1, prev, &rows[i]), GH_OK);
        memcpy(prev, ev.hash, 32);
    }
    assert_int_equal(gh_store_audit_append(f->st, rows, 3, NULL, 0, &err), GH_OK);
    f->nreports = 0;
    assert_int_equal(gh_audit_verify(f->st, NULL, on_report, f, &bad, &err), GH_OK);
    assert_int_equal(bad, 0);
    assert_int_equal(f->nreports, 4);
    tamper(f, "UPDATE audit_events SET actor = 'sub:\"quoted\"' "
              "WHERE chain = 'tn_CCCCCCCCCCCCCCCCCCCC' AND seq = 2");
    f->nreports = 0;
    assert_int_equal(gh_audit_verify(f->st, NULL, on_report, f, &bad, &err), GH_OK);
    assert_int_equal(bad, 1);
    assert_int_equal(f->reports[3].problem, GH_AUDIT_CHANGED);
    assert_int_equal(f->reports[3].seq, 2);
    assert_non_null(strstr(f->reports[3].reason, "column actor"));
}

static void test_checkpoint_sign_verify(void **state)
{
    struct gh_store_audit_key key, other;
    struct gh_store_audit_checkpoint cp;
    struct gh_err err = {0};
    uint8_t hash[32];
    EVP_PKEY *priv, *pub, *pub2;

    memset(hash, 0xab, sizeof(hash));
    assert_int_equal(gh_audit_key_generate(&key, &err), GH_OK);
    assert_int_equal(gh_audit_key_generate(&other, &err), GH_OK);
    assert_int_equal(strlen(key.key_id), 16);
    assert_non_null(strstr(key.public_pem, "BEGIN PUBLIC KEY"));
    priv = gh_audit_key_load(key.private_pem, true, &err);
    pub = gh_audit_key_load(key.public_pem, false, &err);
    pub2 = gh_audit_key_load(other.public_pem, false, &err);
    assert_non_null(priv);
    assert_non_null(pub);
    assert_null(gh_audit_key_load("not a pem", false, &err));
    assert_int_equal(
        gh_audit_checkpoint_sign(priv, key.key_id, "system", 42, hash, 1234, &cp, &err), GH_OK);
    assert_int_equal(strlen(cp.signature), 88);
    assert_true(gh_audit_checkpoint_verify(pub, &cp));
    assert_false(gh_audit_checkpoint_verify(pub2, &cp));
    cp.seq = 43;
    assert_false(gh_audit_checkpoint_verify(pub, &cp));
    cp.seq = 42;
    cp.time_ms = 1235;
    assert_false(gh_audit_checkpoint_verify(pub, &cp));
    EVP_PKEY_free(priv);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(pub2);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_intact),
        T(test_changed_field_in_body),
        T(test_changed_body_and_column),
        cmocka_unit_test(test_tampered_at_every_seq),
        T(test_changed_body_not_canonical),
        T(test_changed_filter_column),
        T(test_changed_node_column),
        T(test_node_column_on_a_version_1_event),
        T(test_changed_node_in_body_and_column),
        T(test_node_dropped),
        T(test_changed_hash_column),
        T(test_unreadable_columns),
        T(test_nul_in_column),
        T(test_row_moved_out_of_its_chain),
        T(test_deleted_row),
        T(test_deleted_and_renumbered),
        T(test_swapped_rows),
        T(test_inserted_forged_row),
        T(test_inserted_naive_row),
        T(test_inserted_at_a_rowid_below_one),
        T(test_truncated_after_checkpoint),
        T(test_truncated_all),
        T(test_bad_signature),
        T(test_bad_checkpoint_key),
        T(test_rewritten_chain),
        T(test_escaped_fields),
        cmocka_unit_test(test_checkpoint_sign_verify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
