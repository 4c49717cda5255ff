/* Tests of who moved a status (src/store: gh_store_key_set_status and
 * gh_store_tenant_update with their <moved> answers), each on a fresh store
 * (store_fixture.h: a SQLite file, or a PostgreSQL database with
 * GH_TEST_PG_SERVER). The admin API and the CLI announce key.revoked and
 * tenant.suspended only when the store says this call moved the status
 * (src/admin/ops.c), so of several revocations or suspensions at once,
 * from several nodes, exactly one may say so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store_fixture.h"

enum { NODES = 4, ROUNDS = 12 };

static const char HASH[] = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
                           "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

static int setup(void **state)
{
    struct gh_test_store *t = calloc(1, sizeof(*t));
    struct gh_err err = {0};

    if (gh_test_store_open(t, "status", &err) != GH_OK) fail_msg("open: %s", err.msg);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    gh_test_store_close(*state);
    free(*state);
    return 0;
}

/* Another handle on the same store, as another node has. */
static struct gh_store *another_node(const struct gh_test_store *t)
{
    struct gh_store_params p = {.pool = 2};
    struct gh_store *st = NULL;
    struct gh_err err = {0};
    char url[256];

    if (t->db[0]) {
        gh_test_pg_url(url, sizeof(url), "gatehouse", t->db);
        p.postgres_url = url;
    } else {
        p.sqlite_path = t->path;
    }
    if (gh_store_open(&p, &st, &err) != GH_OK) fail_msg("open another node: %s", err.msg);
    return st;
}

static void tenant_new(struct gh_store *st, const char *name, struct gh_store_tenant *t)
{
    struct gh_err err = {0};

    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    if (gh_store_tenant_create(st, t, &err) != GH_OK) fail_msg("tenant %s: %s", name, err.msg);
}

static void key_new(struct gh_store *st, const char *tenant_id, struct gh_store_key *k)
{
    struct gh_err err = {0};

    memset(k, 0, sizeof(*k));
    snprintf(k->tenant_id, sizeof(k->tenant_id), "%s", tenant_id);
    snprintf(k->secret_hash, sizeof(k->secret_hash), "%s", HASH);
    if (gh_store_key_insert(st, k, &err) != GH_OK) fail_msg("key insert: %s", err.msg);
}

static void test_one_node(void **state)
{
    struct gh_test_store *t = *state;
    struct gh_store_tenant a, got;
    struct gh_store_key k;
    struct gh_err err = {0};
    bool moved = true;

    tenant_new(t->st, "acme", &a);
    key_new(t->st, a.id, &k);

    /* A key: active again is no move; the first revocation moves; the
     * second does not; a refused or failed call says false. */
    assert_int_equal(gh_store_key_set_status(t->st, a.id, k.id, GH_STORE_KEY_ACTIVE, &moved, &err),
                     GH_OK);
    assert_false(moved);
    assert_int_equal(gh_store_key_set_status(t->st, a.id, k.id, GH_STORE_KEY_REVOKED, &moved, &err),
                     GH_OK);
    assert_true(moved);
    assert_int_equal(gh_store_key_set_status(t->st, a.id, k.id, GH_STORE_KEY_REVOKED, &moved, &err),
                     GH_OK);
    assert_false(moved);
    moved = true;
    assert_int_equal(gh_store_key_set_status(t->st, a.id, k.id, GH_STORE_KEY_ACTIVE, &moved, &err),
                     GH_STORE_CONFLICT);
    assert_false(moved);
    moved = true;
    assert_int_equal(gh_store_key_set_status(t->st, a.id, "AAAAAAAAAAAAAAAA", GH_STORE_KEY_REVOKED,
                                             &moved, &err),
                     GH_STORE_NOT_FOUND);
    assert_false(moved);

    /* A tenant: a new plan or name is no move of the status. */
    struct gh_store_tenant_update plan = {.plan = "gold", .name = "acme-corp"};
    moved = true;
    assert_int_equal(gh_store_tenant_update(t->st, a.id, &plan, &got, &moved, &err), GH_OK);
    assert_false(moved);
    struct gh_store_tenant_update suspend = {.status = GH_STORE_TENANT_SUSPENDED};
    assert_int_equal(gh_store_tenant_update(t->st, a.id, &suspend, &got, &moved, &err), GH_OK);
    assert_true(moved);
    assert_int_equal(got.status, GH_STORE_TENANT_SUSPENDED);
    assert_int_equal(gh_store_tenant_update(t->st, a.id, &suspend, &got, &moved, &err), GH_OK);
    assert_false(moved);
    struct gh_store_tenant_update both = {.plan = "silver", .status = GH_STORE_TENANT_ACTIVE};
    assert_int_equal(gh_store_tenant_update(t->st, a.id, &both, &got, &moved, &err), GH_OK);
    assert_true(moved);
    moved = true;
    assert_int_equal(gh_store_tenant_update(t->st, "system", &suspend, NULL, &moved, &err),
                     GH_STORE_CONFLICT);
    assert_false(moved);
}

struct racer {
    struct gh_store *st;
    pthread_barrier_t *start;
    const char *tenant_id, *key_id; /* key_id NULL: suspend the tenant */
    int moves, rc;
    char error[sizeof(((struct gh_err *)0)->msg)];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct gh_store_tenant_update suspend = {.status = GH_STORE_TENANT_SUSPENDED};
    struct gh_err err = {0};
    bool moved = false;

    pthread_barrier_wait(r->start);
    if (r->key_id)
        r->rc = gh_store_key_set_status(r->st, r->tenant_id, r->key_id, GH_STORE_KEY_REVOKED,
                                        &moved, &err);
    else
        r->rc = gh_store_tenant_update(r->st, r->tenant_id, &suspend, NULL, &moved, &err);
    if (r->rc != GH_OK) snprintf(r->error, sizeof(r->error), "%s", err.msg);
    r->moves += moved;
    return NULL;
}

/* NODES handles on one store revoke one key, then suspend one tenant, all
 * at once, ROUNDS times: every call succeeds and exactly one moved each. */
static void test_nodes_at_once(void **state)
{
    struct gh_test_store *t = *state;
    struct gh_store *nodes[NODES];
    struct racer r[NODES];
    pthread_t th[NODES];
    pthread_barrier_t start;

    for (int i = 0; i < NODES; i++)
        nodes[i] = another_node(t);
    for (int round = 0; round < ROUNDS; round++) {
        struct gh_store_tenant a;
        struct gh_store_key k;
        char name[32];

        snprintf(name, sizeof(name), "race-%d", round);
        tenant_new(t->st, name, &a);
        key_new(t->st, a.id, &k);
        for (int what = 0; what < 2; what++) {
            int moves = 0;

            pthread_barrier_init(&start, NULL, NODES);
            for (int i = 0; i < NODES; i++) {
                r[i] = (struct racer){.st = nodes[i],
                                      .start = &start,
                                      .tenant_id = a.id,
                                      .key_id = what == 0 ? k.id : NULL};
                assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
            }
            for (int i = 0; i < NODES; i++)
                pthread_join(th[i], NULL);
            pthread_barrier_destroy(&start);
            for (int i = 0; i < NODES; i++) {
                if (r[i].rc != GH_OK)
                    fail_msg("round %d, %s, node %d: %d %s", round, what ? "suspend" : "revoke", i,
                             r[i].rc, r[i].error);
                moves += r[i].moves;
            }
            if (moves != 1)
                fail_msg("round %d: %d of %d nodes say they %s", round, moves, NODES,
                         what ? "suspended the tenant" : "revoked the key");
        }
    }
    for (int i = 0; i < NODES; i++)
        gh_store_close(nodes[i]);
}

/* The keys of <tenant_id> (at most 20). */
static size_t keys_of(struct gh_store *st, const char *tenant_id)
{
    struct gh_store_key out[20];
    struct gh_store_page page = {.limit = 20};
    struct gh_err err = {0};

    if (gh_store_key_list(st, tenant_id, &page, out, &err) != GH_OK)
        fail_msg("key list: %s", err.msg);
    return page.count;
}

/* Runs <sqlite_sql> or <pg_sql>, as the test's engine speaks. */
static void store_sql(const struct gh_test_store *t, const char *sqlite_sql, const char *pg_sql)
{
    const char *sql = t->db[0] ? pg_sql : sqlite_sql;

    if (!gh_test_store_exec(t, sql)) fail_msg("%s failed", sql);
}

/* A rotation is one transaction: the new key, and the old key's expiry
 * (kept when sooner). When the second half fails, the first is not
 * stored (before, a store lost between them left an active new key whose
 * secret nobody was shown), and a key revoked meanwhile is not rotated. */
static void test_rotation_is_one_transaction(void **state)
{
    struct gh_test_store *t = *state;
    struct gh_store_tenant a;
    struct gh_store_key old, n, got;
    struct gh_err err = {0};
    int64_t old_exp = -1;

    tenant_new(t->st, "acme", &a);
    key_new(t->st, a.id, &old);
    memset(&n, 0, sizeof(n));
    snprintf(n.tenant_id, sizeof(n.tenant_id), "%s", a.id);
    snprintf(n.secret_hash, sizeof(n.secret_hash), "%s", HASH);
    snprintf(n.rotated_from, sizeof(n.rotated_from), "%s", old.id);

    assert_int_equal(gh_store_key_rotate(t->st, &n, 5000000000000, &old_exp, &err), GH_OK);
    assert_int_equal(old_exp, 5000000000000);
    assert_int_equal(gh_store_key_get(t->st, a.id, old.id, &got, &err), GH_OK);
    assert_int_equal(got.expires_at, 5000000000000);
    assert_int_equal(keys_of(t->st, a.id), 2);
    /* A later one keeps the sooner expiry. */
    n.id[0] = '\0';
    assert_int_equal(gh_store_key_rotate(t->st, &n, 6000000000000, &old_exp, &err), GH_OK);
    assert_int_equal(old_exp, 5000000000000);
    assert_int_equal(keys_of(t->st, a.id), 3);

    /* The old key's expiry cannot be written: no new key either. */
    store_sql(t,
              "CREATE TRIGGER cut BEFORE UPDATE OF expires_at ON api_keys "
              "BEGIN SELECT RAISE(ABORT, 'cut'); END;",
              "CREATE FUNCTION cut() RETURNS trigger LANGUAGE plpgsql AS "
              "$$BEGIN RAISE EXCEPTION 'cut'; END$$;"
              "CREATE TRIGGER cut BEFORE UPDATE OF expires_at ON api_keys "
              "FOR EACH ROW EXECUTE FUNCTION cut();");
    n.id[0] = '\0';
    assert_int_not_equal(gh_store_key_rotate(t->st, &n, 7000000000000, &old_exp, &err), GH_OK);
    assert_int_equal(keys_of(t->st, a.id), 3);
    store_sql(t, "DROP TRIGGER cut;", "DROP TRIGGER cut ON api_keys; DROP FUNCTION cut();");

    /* Revoked meanwhile: CONFLICT, nothing stored. */
    assert_int_equal(gh_store_key_set_status(t->st, a.id, old.id, GH_STORE_KEY_REVOKED, NULL, &err),
                     GH_OK);
    n.id[0] = '\0';
    assert_int_equal(gh_store_key_rotate(t->st, &n, 7000000000000, &old_exp, &err),
                     GH_STORE_CONFLICT);
    assert_string_equal(err.msg, "rotated_from: the key is no longer active");
    assert_int_equal(keys_of(t->st, a.id), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nodes_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_is_one_transaction, setup, teardown),
    };

    if (gh_test_pg_server()) {
        print_message("status store on PostgreSQL at %s\n", gh_test_pg_server());
        return cmocka_run_group_tests_name("status store on PostgreSQL", tests, NULL, NULL);
    }
    return cmocka_run_group_tests_name("status store on SQLite", tests, NULL, NULL);
}
