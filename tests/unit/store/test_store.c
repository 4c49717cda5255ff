/* Tests of src/store (the interface and its SQLite implementation), each
 * against a fresh SQLite file in a temporary folder: migrations, tenants,
 * keys, pagination under concurrent inserts, the change counter, revoked
 * tokens, validation tables, concurrent writers, and reopening the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "store_fixture.h"

/* A well-formed PHC string; tests check that no message ever contains it. */
static const char HASH[] = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
                           "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

struct fixture {
    char dir[64];
    char path[128];
    struct gh_store *st;
};

/* ---- Helpers ---------------------------------------------------------------- */

static void open_store(struct fixture *f)
{
    struct gh_store_params p = {.sqlite_path = f->path};
    struct gh_err err = {0};

    if (gh_store_open(&p, &f->st, &err) != GH_OK) fail_msg("open: %s", err.msg);
}

static int teardown(void **state);

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct gh_err err = {0};
    int applied = -1, version = -1;

    snprintf(f->dir, sizeof(f->dir), "/tmp/gh_store_XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->path, sizeof(f->path), "%s/gatehouse.db", f->dir);
    open_store(f);
    *state = f;
    if (gh_store_migrate(f->st, &applied, &version, &err) != GH_OK) {
        fprintf(stderr, "migrate: %s\n", err.msg);
        teardown(state);
        return -1;
    }
    if (applied != 23 || version != 23) {
        teardown(state);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    char path[160];

    gh_store_close(f->st);
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", f->path, suffix[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static uint64_t version_of(struct gh_store *st)
{
    struct gh_err err = {0};
    uint64_t v = 0;

    if (gh_store_change_version(st, &v, &err) != GH_OK) fail_msg("change_version: %s", err.msg);
    return v;
}

static void tenant_new(struct gh_store *st, const char *name, struct gh_store_tenant *t)
{
    struct gh_err err = {0};

    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    if (gh_store_tenant_create(st, t, &err) != GH_OK) fail_msg("tenant %s: %s", name, err.msg);
}

static void key_init(struct gh_store_key *k, const char *tenant_id)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->tenant_id, sizeof(k->tenant_id), "%s", tenant_id);
    snprintf(k->secret_hash, sizeof(k->secret_hash), "%s", HASH);
}

static void key_role(struct gh_store_key *k, const char *role)
{
    snprintf(k->roles[k->nroles++], GH_STORE_TOKEN_SIZE, "%s", role);
}

static void key_scope(struct gh_store_key *k, const char *scope)
{
    snprintf(k->scopes[k->nscopes++], GH_STORE_TOKEN_SIZE, "%s", scope);
}

static void key_new(struct gh_store *st, const char *tenant_id, struct gh_store_key *k)
{
    struct gh_err err = {0};

    key_init(k, tenant_id);
    key_role(k, "developer");
    key_scope(k, "orders:read");
    if (gh_store_key_insert(st, k, &err) != GH_OK) fail_msg("key insert: %s", err.msg);
}

static void assert_no_hash(const struct gh_err *err)
{
    assert_null(strstr(err->msg, HASH));
    assert_null(strstr(err->msg, "argon2id"));
}

/* Runs <sql> on the file directly (to look under the interface). */
static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int64_t v = -1;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    else
        assert_int_equal(rc, SQLITE_DONE);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

/* Runs the script <sql> on the file directly. */
static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        char copy[256];
        snprintf(copy, sizeof(copy), "%s", msg ? msg : "failed");
        sqlite3_free(msg);
        sqlite3_close(db);
        fail_msg("raw_exec: %s", copy);
    }
    sqlite3_close(db);
}

/* ---- Migrations and lifecycle ----------------------------------------------- */

static int collect_kid(const struct gh_store_signing_key *key, void *arg)
{
    struct {
        int n;
        char kids[4][GH_STORE_KID_SIZE];
    } *seen = arg;
    if (seen->n < 4) snprintf(seen->kids[seen->n++], GH_STORE_KID_SIZE, "%s", key->kid);
    return GH_OK;
}

static void test_migrate_idempotent(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    int applied = -1, version = -1;

    assert_string_equal(gh_store_engine(f->st), "sqlite");
    assert_int_equal(gh_store_migrate(f->st, &applied, &version, &err), GH_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(version, 23);
    assert_int_equal(gh_store_migrate(f->st, &applied, &version, &err), GH_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM schema_migrations"), 23);
    assert_true(raw_int(f->path, "SELECT min(applied_at) FROM schema_migrations") > 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tenants"), 1);

    /* A database from a newer gatehouse is refused, not "downgraded". */
    raw_int(f->path, "INSERT INTO schema_migrations VALUES (99, 0)");
    assert_int_equal(gh_store_migrate(f->st, NULL, NULL, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "newer"));
}

/* A database left at version 2 by an older gatehouse: migrations 3 and 4
 * run, keep every tenant and key, and give old tenants empty overrides.
 * The version-2 file is made by undoing migrations 4 and 3 by hand (only the
 * sqlite_sequence table that AUTOINCREMENT created stays behind). */
static void test_migrate_from_v2(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant t, got;
    struct gh_store_key k, kgot;
    struct gh_store_usage u[1];
    struct gh_err err = {0};
    char plan[GH_STORE_NAME_SIZE], json[64];
    int applied = -1, version = -1;

    tenant_new(f->st, "acme", &t);
    key_new(f->st, t.id, &k);
    gh_store_close(f->st);
    f->st = NULL;
    raw_exec(f->path, "DELETE FROM schema_migrations WHERE version = 23;"
                      "DELETE FROM schema_migrations WHERE version = 22;"
                      "DELETE FROM schema_migrations WHERE version = 21;"
                      "DELETE FROM schema_migrations WHERE version = 20;"
                      "DELETE FROM schema_migrations WHERE version = 19;"
                      "DELETE FROM schema_migrations WHERE version = 18;"
                      "DELETE FROM schema_migrations WHERE version = 17;"
                      "DELETE FROM schema_migrations WHERE version = 16;"
                      "DROP INDEX webhook_deliveries_by_message;"
                      "DELETE FROM schema_migrations WHERE version = 15;"
                      "DROP TABLE secrets_kek_checks;"
                      "DELETE FROM schema_migrations WHERE version = 14;"
                      "DROP VIEW audit_events_canonical;"
                      "DELETE FROM schema_migrations WHERE version = 13;"
                      "DELETE FROM schema_migrations WHERE version = 12;"
                      "DELETE FROM schema_migrations WHERE version = 11;"
                      "DELETE FROM schema_migrations WHERE version = 10;"
                      "DELETE FROM schema_migrations WHERE version = 9;"
                      "DELETE FROM schema_migrations WHERE version = 8;"
                      "DROP TABLE webhook_attempts;"
                      "DROP TABLE webhook_deliveries;"
                      "DROP TABLE webhook_messages;"
                      "DROP TABLE webhook_endpoints;"
                      "DELETE FROM schema_migrations WHERE version = 7;"
                      "DROP TABLE secrets_rotation;"
                      "DROP TABLE secrets;"
                      "DELETE FROM schema_migrations WHERE version = 6;"
                      "DROP TABLE audit_archives;"
                      "DELETE FROM schema_migrations WHERE version = 5;"
                      "DROP TABLE audit_events;"
                      "DROP TABLE audit_checkpoints;"
                      "DROP TABLE audit_keys;"
                      "DELETE FROM schema_migrations WHERE version = 4;"
                      "DROP TABLE limit_events;"
                      "DROP TABLE usage;"
                      "ALTER TABLE tenants DROP COLUMN limits;"
                      "DELETE FROM schema_migrations WHERE version = 3;");
    assert_int_equal(raw_int(f->path, "SELECT max(version) FROM schema_migrations"), 2);
    raw_exec(f->path, "INSERT INTO tenants (id, name, status, plan, created_at, updated_at) "
                      "VALUES ('tn_AAAAAAAAAAAAAAAAAAAA', 'old', 'suspended', 'pro', 1, 1)");

    open_store(f);
    assert_int_equal(gh_store_migrate(f->st, &applied, &version, &err), GH_OK);
    assert_int_equal(applied, 21);
    assert_int_equal(version, 23);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tenants"), 3);
    assert_int_equal(gh_store_tenant_get_by_name(f->st, "acme", &got, &err), GH_OK);
    assert_string_equal(got.id, t.id);
    assert_int_equal(gh_store_key_get(f->st, t.id, k.id, &kgot, &err), GH_OK);
    assert_string_equal(kgot.secret_hash, HASH);
    assert_int_equal(gh_store_tenant_limits_get(f->st, "tn_AAAAAAAAAAAAAAAAAAAA", plan, json,
                                                sizeof(json), &err),
                     GH_OK);
    assert_string_equal(plan, "pro");
    assert_string_equal(json, "");
    assert_int_equal(gh_store_tenant_get(f->st, "tn_AAAAAAAAAAAAAAAAAAAA", &got, &err), GH_OK);
    assert_int_equal(got.status, GH_STORE_TENANT_SUSPENDED);
    /* The new tables work, and a second run applies nothing. */
    assert_int_equal(gh_store_tenant_limits_set(f->st, t.id, NULL, "{\"rps\":5}", &err), GH_OK);
    memset(u, 0, sizeof(u));
    snprintf(u[0].tenant_id, sizeof(u[0].tenant_id), "%s", t.id);
    snprintf(u[0].period, sizeof(u[0].period), "2026-11");
    u[0].requests = 1;
    assert_int_equal(gh_store_usage_add(f->st, u, 1, &err), GH_OK);
    assert_int_equal(gh_store_migrate(f->st, &applied, &version, &err), GH_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(version, 23);
}

/* Migration 18 on a store at 17 whose deliveries table has no
 * AUTOINCREMENT: every delivery of a stored message is copied with its id,
 * one whose message is gone (a hand's edit with foreign keys off) goes with
 * its attempts instead of failing the copy, and the next id follows the
 * highest kept, even once every delivery is deleted. */
static void test_migrate_18_deliveries(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    int applied = -1, version = -1;

    gh_store_close(f->st);
    f->st = NULL;
    raw_exec(
        f->path,
        GH_TEST_WEBHOOKS_AT_19(
            GH_TEST_REV_TRIGGER_SQLITE) "DELETE FROM schema_migrations WHERE version = 19;"
                                        "DROP INDEX limit_events_by_period;"
                                        "DELETE FROM schema_migrations WHERE version = 18;"
                                        "DROP TABLE webhook_deliveries;"
                                        "CREATE TABLE webhook_deliveries ("
                                        "  id INTEGER PRIMARY KEY,"
                                        "  message_seq INTEGER NOT NULL REFERENCES "
                                        "webhook_messages (seq),"
                                        "  endpoint_id TEXT NOT NULL, tenant_id TEXT NOT NULL,"
                                        "  status TEXT NOT NULL CHECK (status IN ('pending', "
                                        "'succeeded', 'failed')),"
                                        "  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at "
                                        "INTEGER NOT NULL,"
                                        "  claimed TEXT NOT NULL DEFAULT '', last_status INTEGER "
                                        "NOT NULL DEFAULT 0,"
                                        "  last_error TEXT NOT NULL DEFAULT '', created_at INTEGER "
                                        "NOT NULL,"
                                        "  updated_at INTEGER NOT NULL) STRICT;"
                                        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries "
                                        "(status, next_attempt_at);"
                                        "CREATE INDEX webhook_deliveries_by_endpoint ON "
                                        "webhook_deliveries (endpoint_id, id);"
                                        "CREATE INDEX webhook_deliveries_by_message ON "
                                        "webhook_deliveries (message_seq);"
                                        "INSERT INTO webhook_messages (seq, id, tenant_id, type, "
                                        "payload, created_at) "
                                        "VALUES (7, 'm7', 'system', 'a.b', '{}', 1);"
                                        "INSERT INTO webhook_deliveries (id, message_seq, "
                                        "endpoint_id, tenant_id, status, "
                                        "next_attempt_at, created_at, updated_at) VALUES "
                                        "(40, 7, 'ep_x', 'system', 'succeeded', 0, 1, 1),"
                                        "(41, 99, 'ep_x', 'system', 'pending', 0, 1, 1);" /* message
                                                                                             99 is
                                                                                             gone */
                                        "INSERT INTO webhook_attempts (delivery_id, at, status, "
                                        "latency_ms) VALUES "
                                        "(40, 1, 204, 1), (41, 1, 500, 1);");
    open_store(f);
    assert_int_equal(gh_store_migrate(f->st, &applied, &version, &err), GH_OK);
    assert_int_equal(applied, 6);
    assert_int_equal(version, 23);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM webhook_deliveries"), 1);
    assert_int_equal(raw_int(f->path, "SELECT id FROM webhook_deliveries"), 40);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM webhook_attempts"), 1);
    assert_int_equal(raw_int(f->path, "SELECT seq FROM sqlite_sequence WHERE name = "
                                      "'webhook_deliveries'"),
                     40);
    raw_exec(f->path, "DELETE FROM webhook_attempts; DELETE FROM webhook_deliveries;"
                      "INSERT INTO webhook_deliveries (message_seq, endpoint_id, tenant_id, "
                      "status, next_attempt_at, created_at, updated_at) "
                      "VALUES (7, 'ep_x', 'system', 'pending', 0, 2, 2);");
    assert_int_equal(raw_int(f->path, "SELECT id FROM webhook_deliveries"), 41);
}

/* Migration 20 on a store at 19: the pending deliveries of a disabled
 * endpoint are paused, those of an active one and finished ones are not,
 * and the claim's index leads with status and paused. */
static void test_migrate_20_paused(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    int applied = -1, version = -1;

    gh_store_close(f->st);
    f->st = NULL;
    raw_exec(f->path,
             GH_TEST_WEBHOOKS_AT_19(
                 GH_TEST_REV_TRIGGER_SQLITE) "INSERT INTO webhook_endpoints (id, tenant_id, url, "
                                             "signing, secret_version, status, "
                                             "created_at, updated_at) VALUES "
                                             "('ep_on', 'system', 'https://a.example/', 'hmac', 1, "
                                             "'active', 1, 1),"
                                             "('ep_off', 'system', 'https://b.example/', 'hmac', "
                                             "1, 'disabled', 1, 1);"
                                             "INSERT INTO webhook_messages (seq, id, tenant_id, "
                                             "type, payload, created_at) "
                                             "VALUES (7, 'm7', 'system', 'a.b', '{}', 1);"
                                             "INSERT INTO webhook_deliveries (id, message_seq, "
                                             "endpoint_id, tenant_id, status, "
                                             "next_attempt_at, created_at, updated_at) VALUES "
                                             "(1, 7, 'ep_on', 'system', 'pending', 0, 1, 1),"
                                             "(2, 7, 'ep_off', 'system', 'pending', 0, 1, 1),"
                                             "(3, 7, 'ep_off', 'system', 'failed', 0, 1, 1);");
    open_store(f);
    assert_int_equal(gh_store_migrate(f->st, &applied, &version, &err), GH_OK);
    assert_int_equal(applied, 4);
    assert_int_equal(version, 23);
    /* Migration 23: each endpoint at revision 1. */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM webhook_endpoints WHERE rev = 1"), 2);
    assert_int_equal(raw_int(f->path, "SELECT paused FROM webhook_deliveries WHERE id = 1"), 0);
    assert_int_equal(raw_int(f->path, "SELECT paused FROM webhook_deliveries WHERE id = 2"), 1);
    assert_int_equal(raw_int(f->path, "SELECT paused FROM webhook_deliveries WHERE id = 3"), 0);
    assert_int_equal(raw_int(f->path, "SELECT group_concat(name, ',') = 'status,paused,"
                                      "next_attempt_at' FROM pragma_index_info("
                                      "'webhook_deliveries_due')"),
                     1);
}

/* Signing keys: insert (bumping the change counter, so every node's
 * directory loads them), load only those still published, oldest first;
 * a duplicate kid is a conflict and malformed rows are refused. */
static void test_signing_keys(void **state)
{
    struct fixture *f = *state;
    struct gh_store_signing_key k;
    struct gh_err err = {0};
    uint64_t v0 = 0, v1 = 0;
    struct {
        int n;
        char kids[4][GH_STORE_KID_SIZE];
    } seen = {0};
    int64_t now = 0;

    memset(&k, 0, sizeof(k));
    assert_int_equal(gh_store_change_version(f->st, &v0, &err), GH_OK);
    snprintf(k.kid, sizeof(k.kid), "gh-one");
    snprintf(k.alg, sizeof(k.alg), "ES256");
    snprintf(k.private_pem, sizeof(k.private_pem), "-----BEGIN PRIVATE KEY-----\nx\n");
    k.publish_until = INT64_MAX / 2;
    assert_int_equal(gh_store_signing_key_insert(f->st, &k, &err), GH_OK);
    now = k.created_at;
    assert_int_equal(gh_store_change_version(f->st, &v1, &err), GH_OK);
    assert_true(v1 > v0);
    assert_int_equal(gh_store_signing_key_insert(f->st, &k, &err), GH_STORE_CONFLICT);
    snprintf(k.kid, sizeof(k.kid), "gh-old");
    k.publish_until = now + 500; /* no longer published at now + 1000 */
    assert_int_equal(gh_store_signing_key_insert(f->st, &k, &err), GH_OK);
    snprintf(k.kid, sizeof(k.kid), "bad kid!");
    k.publish_until = INT64_MAX / 2;
    assert_int_equal(gh_store_signing_key_insert(f->st, &k, &err), GH_STORE_INVALID);
    snprintf(k.kid, sizeof(k.kid), "gh-alg");
    snprintf(k.alg, sizeof(k.alg), "HS256");
    assert_int_equal(gh_store_signing_key_insert(f->st, &k, &err), GH_STORE_INVALID);

    assert_int_equal(gh_store_signing_keys_load(f->st, now + 1000, collect_kid, &seen, &err),
                     GH_OK);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.kids[0], "gh-one");
}

static void test_system_tenant(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant t;
    struct gh_err err = {0};

    assert_int_equal(gh_store_tenant_get(f->st, GH_STORE_SYSTEM_TENANT, &t, &err), GH_OK);
    assert_string_equal(t.id, "system");
    assert_string_equal(t.name, "system");
    assert_string_equal(t.plan, "default");
    assert_int_equal(t.status, GH_STORE_TENANT_ACTIVE);
    assert_true(t.created_at > 1600000000000);
    assert_int_equal(gh_store_tenant_get_by_name(f->st, "system", &t, &err), GH_OK);
    assert_string_equal(t.id, "system");

    struct gh_store_tenant_update suspend = {.status = GH_STORE_TENANT_SUSPENDED};
    assert_int_equal(gh_store_tenant_update(f->st, "system", &suspend, NULL, NULL, &err),
                     GH_STORE_CONFLICT);
    struct gh_store_tenant_update rename = {.name = "ops"};
    assert_int_equal(gh_store_tenant_update(f->st, "system", &rename, NULL, NULL, &err),
                     GH_STORE_CONFLICT);
    struct gh_store_tenant_update plan = {.plan = "unlimited"};
    assert_int_equal(gh_store_tenant_update(f->st, "system", &plan, &t, NULL, &err), GH_OK);
    assert_string_equal(t.plan, "unlimited");

    struct gh_store_tenant dup;
    memset(&dup, 0, sizeof(dup));
    snprintf(dup.name, sizeof(dup.name), "system");
    assert_int_equal(gh_store_tenant_create(f->st, &dup, &err), GH_STORE_CONFLICT);
}

static void test_reopen_keeps_data(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant t, got;
    struct gh_store_key k, kgot;
    struct gh_err err = {0};
    int applied = -1;

    tenant_new(f->st, "acme", &t);
    key_new(f->st, t.id, &k);
    gh_store_close(f->st);
    open_store(f);
    assert_int_equal(gh_store_migrate(f->st, &applied, NULL, &err), GH_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(gh_store_tenant_get_by_name(f->st, "acme", &got, &err), GH_OK);
    assert_string_equal(got.id, t.id);
    assert_int_equal(gh_store_key_get(f->st, t.id, k.id, &kgot, &err), GH_OK);
    assert_string_equal(kgot.secret_hash, HASH);
    assert_int_equal(version_of(f->st), 1);
}

static void test_file_mode(void **state)
{
    struct fixture *f = *state;
    struct stat sb;
    char wal[160];
    struct gh_store_tenant t;

    tenant_new(f->st, "acme", &t); /* makes sure the WAL has content */
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(raw_int(f->path, "PRAGMA journal_mode = WAL") >= 0 ? 0 : 1, 0);
}

static void test_open_errors(void **state)
{
    struct gh_store_params none = {0};
    struct gh_store_params bad = {.sqlite_path = "/nonexistent-dir/x/gatehouse.db"};
    struct gh_store_params many = {.sqlite_path = "/tmp/x.db", .readers = 65};
    struct gh_store *st = (struct gh_store *)&none; /* must be reset to NULL */
    struct gh_err err = {0};

    assert_int_equal(gh_store_open(&none, &st, &err), GH_STORE_INVALID);
    assert_null(st);
    assert_int_equal(gh_store_open(&bad, &st, &err), GH_ERROR);
    assert_null(st);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x/gatehouse.db"));
    assert_int_equal(gh_store_open(&many, &st, &err), GH_ERROR);
    assert_null(st);
    gh_store_close(NULL);
}

/* ---- Tenants ---------------------------------------------------------------- */

static void test_tenant_crud(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant a, b, got;
    struct gh_err err = {0};

    tenant_new(f->st, "acme", &a);
    assert_int_equal(strlen(a.id), 23);
    assert_memory_equal(a.id, "tn_", 3);
    assert_true(gh_store_valid_tenant_id(a.id));
    assert_string_equal(a.plan, "default");
    assert_int_equal(a.status, GH_STORE_TENANT_ACTIVE);
    assert_true(a.created_at > 0);
    assert_int_equal(a.created_at, a.updated_at);

    assert_int_equal(gh_store_tenant_get(f->st, a.id, &got, &err), GH_OK);
    assert_string_equal(got.name, "acme");
    assert_int_equal(got.created_at, a.created_at);
    assert_int_equal(gh_store_tenant_get_by_name(f->st, "acme", &got, &err), GH_OK);
    assert_string_equal(got.id, a.id);

    /* Unique name. */
    memset(&b, 0, sizeof(b));
    snprintf(b.name, sizeof(b.name), "acme");
    assert_int_equal(gh_store_tenant_create(f->st, &b, &err), GH_STORE_CONFLICT);
    assert_non_null(strstr(err.msg, "name"));
    assert_string_equal(b.id, "");

    /* Rename, then a rename onto a taken name. */
    struct gh_store_tenant_update ren = {.name = "acme-2"};
    assert_int_equal(gh_store_tenant_update(f->st, a.id, &ren, &got, NULL, &err), GH_OK);
    assert_string_equal(got.name, "acme-2");
    assert_true(got.updated_at >= a.updated_at);
    assert_int_equal(gh_store_tenant_get_by_name(f->st, "acme", &got, &err), GH_STORE_NOT_FOUND);
    tenant_new(f->st, "beta", &b);
    assert_int_equal(gh_store_tenant_update(f->st, b.id, &ren, NULL, NULL, &err),
                     GH_STORE_CONFLICT);
    /* Renaming to its own name is fine. */
    assert_int_equal(gh_store_tenant_update(f->st, a.id, &ren, NULL, NULL, &err), GH_OK);

    /* Plan, suspend, reinstate. */
    struct gh_store_tenant_update up = {.plan = "gold", .status = GH_STORE_TENANT_SUSPENDED};
    assert_int_equal(gh_store_tenant_update(f->st, b.id, &up, &got, NULL, &err), GH_OK);
    assert_string_equal(got.plan, "gold");
    assert_string_equal(got.name, "beta");
    assert_int_equal(got.status, GH_STORE_TENANT_SUSPENDED);
    struct gh_store_tenant_update act = {.status = GH_STORE_TENANT_ACTIVE};
    assert_int_equal(gh_store_tenant_update(f->st, b.id, &act, &got, NULL, &err), GH_OK);
    assert_int_equal(got.status, GH_STORE_TENANT_ACTIVE);
    assert_string_equal(got.plan, "gold");

    /* Not found, malformed, empty. */
    assert_int_equal(gh_store_tenant_get(f->st, "tn_00000000000000000000", &got, &err),
                     GH_STORE_NOT_FOUND);
    assert_int_equal(gh_store_tenant_get(f->st, "../etc/passwd", &got, &err), GH_STORE_NOT_FOUND);
    assert_int_equal(gh_store_tenant_get(f->st, "", &got, &err), GH_STORE_NOT_FOUND);
    assert_int_equal(
        gh_store_tenant_update(f->st, "tn_00000000000000000000", &act, NULL, NULL, &err),
        GH_STORE_NOT_FOUND);
    struct gh_store_tenant_update empty = {0};
    assert_int_equal(gh_store_tenant_update(f->st, a.id, &empty, NULL, NULL, &err),
                     GH_STORE_INVALID);
    struct gh_store_tenant_update badname = {.name = "Acme"};
    assert_int_equal(gh_store_tenant_update(f->st, a.id, &badname, NULL, NULL, &err),
                     GH_STORE_INVALID);
    struct gh_store_tenant_update badstatus = {.status = (enum gh_store_tenant_status)7};
    assert_int_equal(gh_store_tenant_update(f->st, a.id, &badstatus, NULL, NULL, &err),
                     GH_STORE_INVALID);

    /* A tenant created suspended, with a plan. */
    memset(&b, 0, sizeof(b));
    snprintf(b.name, sizeof(b.name), "gamma.eu_1");
    snprintf(b.plan, sizeof(b.plan), "pro");
    b.status = GH_STORE_TENANT_SUSPENDED;
    assert_int_equal(gh_store_tenant_create(f->st, &b, &err), GH_OK);
    assert_int_equal(gh_store_tenant_get(f->st, b.id, &got, &err), GH_OK);
    assert_int_equal(got.status, GH_STORE_TENANT_SUSPENDED);
    assert_string_equal(got.plan, "pro");
}

/* Walks every page of the tenant list with <status> and page size <limit>;
 * returns the number of tenants and pages. */
static size_t walk_tenants(struct gh_store *st, enum gh_store_tenant_status status, size_t limit,
                           size_t *pages)
{
    struct gh_store_tenant out[GH_STORE_LIST_MAX];
    struct gh_store_page page = {.limit = limit};
    char cursor[GH_STORE_CURSOR_SIZE] = "";
    struct gh_err err = {0};
    size_t total = 0;
    int64_t last = INT64_MIN;

    *pages = 0;
    for (;;) {
        page.cursor = cursor;
        if (gh_store_tenant_list(st, status, &page, out, &err) != GH_OK)
            fail_msg("tenant_list: %s", err.msg);
        (*pages)++;
        for (size_t i = 0; i < page.count; i++) {
            assert_true(out[i].created_at >= last); /* oldest first */
            last = out[i].created_at;
            if (status != GH_STORE_TENANT_ANY) assert_int_equal(out[i].status, status);
        }
        total += page.count;
        if (page.next[0] == '\0') break;
        assert_int_equal(page.count, limit);
        snprintf(cursor, sizeof(cursor), "%s", page.next);
    }
    return total;
}

static void test_tenant_list(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant t, out[4];
    struct gh_store_tenant_update suspend = {.status = GH_STORE_TENANT_SUSPENDED};
    struct gh_err err = {0};
    size_t pages;
    char name[32];

    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof(name), "tenant-%02d", i);
        tenant_new(f->st, name, &t);
        if (i % 5 == 0)
            assert_int_equal(gh_store_tenant_update(f->st, t.id, &suspend, NULL, NULL, &err),
                             GH_OK);
    }
    assert_int_equal(walk_tenants(f->st, GH_STORE_TENANT_ANY, 10, &pages), 26); /* + system */
    assert_int_equal(pages, 3);
    assert_int_equal(walk_tenants(f->st, GH_STORE_TENANT_SUSPENDED, 2, &pages), 5);
    assert_int_equal(pages, 3);
    assert_int_equal(walk_tenants(f->st, GH_STORE_TENANT_ACTIVE, 200, &pages), 21);
    assert_int_equal(pages, 1);
    assert_int_equal(walk_tenants(f->st, GH_STORE_TENANT_ANY, 26, &pages), 26);
    assert_int_equal(pages, 1);

    /* Bad limits and cursors. */
    struct gh_store_page page = {.limit = 0};
    assert_int_equal(gh_store_tenant_list(f->st, GH_STORE_TENANT_ANY, &page, out, &err),
                     GH_STORE_INVALID);
    page.limit = GH_STORE_LIST_MAX + 1;
    assert_int_equal(gh_store_tenant_list(f->st, GH_STORE_TENANT_ANY, &page, out, &err),
                     GH_STORE_INVALID);
    static const char *const bad[] = {
        "garbage",        "t1.",           "t1.12.",
        "t1.-5.system",   "t1.012.system", "t1.99999999999999999999.system",
        "t1.12.tn_short", "t2.12.system",  "k1.12.ABCDEFGHIJKLMNOP", /* a key list's cursor */
        "t1.12.system.x", "t1.12 .system",
    };
    page.limit = 4;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        page.cursor = bad[i];
        if (gh_store_tenant_list(f->st, GH_STORE_TENANT_ANY, &page, out, &err) != GH_STORE_INVALID)
            fail_msg("cursor \"%s\" was accepted", bad[i]);
        assert_non_null(strstr(err.msg, "cursor"));
    }
    page.cursor = "t1.0.system"; /* well-formed: a fine place to start */
    assert_int_equal(gh_store_tenant_list(f->st, GH_STORE_TENANT_ANY, &page, out, &err), GH_OK);
    assert_int_equal(page.count, 4);
    assert_int_equal(gh_store_tenant_list(f->st, (enum gh_store_tenant_status)9, &page, out, &err),
                     GH_STORE_INVALID);
}

/* ---- Keys ------------------------------------------------------------------- */

static void test_key_crud(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant a, b;
    struct gh_store_key k, got, other;
    struct gh_err err = {0};

    tenant_new(f->st, "acme", &a);
    tenant_new(f->st, "beta", &b);

    key_init(&k, a.id);
    snprintf(k.name, sizeof(k.name), "clé de prod ✓");
    key_role(&k, "admin");
    key_role(&k, "developer");
    key_scope(&k, "orders:read");
    key_scope(&k, "orders:write");
    key_scope(&k, "billing.v2_read-all");
    k.expires_at = 4102444800000;
    assert_int_equal(gh_store_key_insert(f->st, &k, &err), GH_OK);
    assert_true(gh_store_valid_key_id(k.id));
    assert_int_equal(k.status, GH_STORE_KEY_ACTIVE);
    assert_true(k.created_at > 0);

    assert_int_equal(gh_store_key_get(f->st, a.id, k.id, &got, &err), GH_OK);
    assert_string_equal(got.id, k.id);
    assert_string_equal(got.tenant_id, a.id);
    assert_string_equal(got.name, "clé de prod ✓");
    assert_int_equal(got.nroles, 2);
    assert_string_equal(got.roles[0], "admin");
    assert_string_equal(got.roles[1], "developer");
    assert_int_equal(got.nscopes, 3);
    assert_string_equal(got.scopes[2], "billing.v2_read-all");
    assert_string_equal(got.secret_hash, HASH);
    assert_int_equal(got.status, GH_STORE_KEY_ACTIVE);
    assert_int_equal(got.expires_at, 4102444800000);
    assert_int_equal(got.created_at, k.created_at);
    assert_int_equal(got.last_used_at, 0);
    assert_string_equal(got.rotated_from, "");

    /* Another tenant cannot see it; an unknown or malformed id is not found. */
    assert_int_equal(gh_store_key_get(f->st, b.id, k.id, &got, &err), GH_STORE_NOT_FOUND);
    assert_int_equal(gh_store_key_get(f->st, a.id, "AAAAAAAAAAAAAAAA", &got, &err),
                     GH_STORE_NOT_FOUND);
    assert_int_equal(gh_store_key_get(f->st, a.id, "short", &got, &err), GH_STORE_NOT_FOUND);

    /* A caller-chosen id, then the same id again. */
    key_init(&other, b.id);
    snprintf(other.id, sizeof(other.id), "0123456789abcDEF");
    assert_int_equal(gh_store_key_insert(f->st, &other, &err), GH_OK);
    assert_string_equal(other.id, "0123456789abcDEF");
    assert_int_equal(gh_store_key_get(f->st, b.id, "0123456789abcDEF", &got, &err), GH_OK);
    assert_int_equal(got.nroles, 0);
    assert_int_equal(got.nscopes, 0);
    assert_string_equal(got.name, "");
    key_init(&other, a.id);
    snprintf(other.id, sizeof(other.id), "0123456789abcDEF");
    assert_int_equal(gh_store_key_insert(f->st, &other, &err), GH_STORE_CONFLICT);
    assert_no_hash(&err);

    /* Unknown tenant. */
    key_init(&other, "tn_00000000000000000000");
    assert_int_equal(gh_store_key_insert(f->st, &other, &err), GH_STORE_NOT_FOUND);
    assert_non_null(strstr(err.msg, "tenant"));
    assert_no_hash(&err);
    key_init(&other, "nonsense");
    assert_int_equal(gh_store_key_insert(f->st, &other, &err), GH_STORE_NOT_FOUND);

    /* rotated_from: must be a key of the same tenant. */
    key_init(&other, a.id);
    snprintf(other.rotated_from, sizeof(other.rotated_from), "AAAAAAAAAAAAAAAA");
    assert_int_equal(gh_store_key_insert(f->st, &other, &err), GH_STORE_NOT_FOUND);
    assert_non_null(strstr(err.msg, "rotated_from"));
    key_init(&other, a.id);
    snprintf(other.rotated_from, sizeof(other.rotated_from), "0123456789abcDEF"); /* of beta */
    assert_int_equal(gh_store_key_insert(f->st, &other, &err), GH_STORE_NOT_FOUND);
    key_init(&other, a.id);
    snprintf(other.rotated_from, sizeof(other.rotated_from), "%s", k.id);
    assert_int_equal(gh_store_key_insert(f->st, &other, &err), GH_OK);
    assert_int_equal(gh_store_key_get(f->st, a.id, other.id, &got, &err), GH_OK);
    assert_string_equal(got.rotated_from, k.id);
}

struct inserter {
    struct gh_store *st;
    char tenant_id[GH_STORE_TENANT_ID_SIZE];
    char other_id[GH_STORE_TENANT_ID_SIZE];
    atomic_bool stop;
    atomic_int inserted;
    atomic_int failures;
};

static void *insert_loop(void *arg)
{
    struct inserter *in = arg;
    struct gh_store_key k;
    struct gh_err err;

    while (!atomic_load(&in->stop)) {
        int n = atomic_load(&in->inserted);
        key_init(&k, n % 3 == 2 ? in->other_id : in->tenant_id);
        if (gh_store_key_insert(in->st, &k, &err) != GH_OK) atomic_fetch_add(&in->failures, 1);
        atomic_fetch_add(&in->inserted, 1);
    }
    return NULL;
}

/* Pagination across 3+ pages while another thread inserts keys of the same
 * tenant: every key that existed before the first page is seen exactly once,
 * and no key is seen twice. */
static void test_key_pagination_concurrent(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant a, b;
    struct gh_store_key *out = calloc(10, sizeof(*out));
    struct gh_store_key k;
    struct gh_store_page page = {.limit = 10};
    char cursor[GH_STORE_CURSOR_SIZE] = "";
    char before[30][GH_STORE_KEY_ID_SIZE];
    char(*seen)[GH_STORE_KEY_ID_SIZE] = calloc(4096, GH_STORE_KEY_ID_SIZE);
    size_t nseen = 0, pages = 0;
    struct inserter in = {.st = f->st};
    struct gh_err err = {0};
    pthread_t th;

    tenant_new(f->st, "acme", &a);
    tenant_new(f->st, "beta", &b);
    for (int i = 0; i < 30; i++) {
        key_new(f->st, a.id, &k);
        memcpy(before[i], k.id, sizeof(before[i]));
    }
    memcpy(in.tenant_id, a.id, sizeof(in.tenant_id));
    memcpy(in.other_id, b.id, sizeof(in.other_id));
    atomic_init(&in.stop, false);
    atomic_init(&in.inserted, 0);
    atomic_init(&in.failures, 0);
    assert_int_equal(pthread_create(&th, NULL, insert_loop, &in), 0);

    for (;;) {
        /* Let inserts land between pages. */
        int mark = atomic_load(&in.inserted);
        while (atomic_load(&in.inserted) < mark + 3)
            sched_yield();
        page.cursor = cursor;
        if (gh_store_key_list(f->st, a.id, &page, out, &err) != GH_OK) {
            atomic_store(&in.stop, true);
            pthread_join(th, NULL);
            fail_msg("key_list: %s", err.msg);
        }
        pages++;
        for (size_t i = 0; i < page.count; i++) {
            assert_string_equal(out[i].tenant_id, a.id);
            assert_true(nseen < 4096);
            memcpy(seen[nseen++], out[i].id, GH_STORE_KEY_ID_SIZE);
        }
        if (page.next[0] == '\0' || nseen >= 4000) break;
        snprintf(cursor, sizeof(cursor), "%s", page.next);
    }
    atomic_store(&in.stop, true);
    pthread_join(th, NULL);

    assert_int_equal(atomic_load(&in.failures), 0);
    assert_true(atomic_load(&in.inserted) > 0);
    assert_true(pages >= 3);
    for (size_t i = 0; i < nseen; i++)
        for (size_t j = i + 1; j < nseen; j++)
            if (strcmp(seen[i], seen[j]) == 0) fail_msg("key %s seen twice", seen[i]);
    for (int i = 0; i < 30; i++) {
        size_t hits = 0;
        for (size_t j = 0; j < nseen; j++)
            hits += strcmp(before[i], seen[j]) == 0;
        if (hits != 1) fail_msg("key %s seen %zu times", before[i], hits);
    }

    /* A key cursor is refused by the tenant list, and a bad one by the key list. */
    page.cursor = cursor;
    if (cursor[0] != '\0') {
        struct gh_store_tenant tout[1];
        struct gh_store_page tp = {.limit = 1, .cursor = cursor};
        assert_int_equal(gh_store_tenant_list(f->st, GH_STORE_TENANT_ANY, &tp, tout, &err),
                         GH_STORE_INVALID);
    }
    page.cursor = "t1.0.system";
    assert_int_equal(gh_store_key_list(f->st, a.id, &page, out, &err), GH_STORE_INVALID);
    /* An unknown tenant has no keys. */
    page.cursor = NULL;
    assert_int_equal(gh_store_key_list(f->st, "tn_00000000000000000000", &page, out, &err), GH_OK);
    assert_int_equal(page.count, 0);
    assert_string_equal(page.next, "");
    free(out);
    free(seen);
}

static void test_key_revoke(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant a, b;
    struct gh_store_key k, got;
    struct gh_err err = {0};
    uint64_t v;

    tenant_new(f->st, "acme", &a);
    tenant_new(f->st, "beta", &b);
    key_new(f->st, a.id, &k);
    v = version_of(f->st);

    /* Another tenant cannot revoke it. */
    assert_int_equal(gh_store_key_set_status(f->st, b.id, k.id, GH_STORE_KEY_REVOKED, NULL, &err),
                     GH_STORE_NOT_FOUND);
    assert_int_equal(version_of(f->st), v);
    /* Active -> active changes nothing. */
    assert_int_equal(gh_store_key_set_status(f->st, a.id, k.id, GH_STORE_KEY_ACTIVE, NULL, &err),
                     GH_OK);
    assert_int_equal(version_of(f->st), v);

    assert_int_equal(gh_store_key_set_status(f->st, a.id, k.id, GH_STORE_KEY_REVOKED, NULL, &err),
                     GH_OK);
    assert_int_equal(version_of(f->st), v + 1);
    assert_int_equal(gh_store_key_get(f->st, a.id, k.id, &got, &err), GH_OK);
    assert_int_equal(got.status, GH_STORE_KEY_REVOKED);
    /* Twice is fine and changes nothing; back to active is refused. */
    assert_int_equal(gh_store_key_set_status(f->st, a.id, k.id, GH_STORE_KEY_REVOKED, NULL, &err),
                     GH_OK);
    assert_int_equal(version_of(f->st), v + 1);
    assert_int_equal(gh_store_key_set_status(f->st, a.id, k.id, GH_STORE_KEY_ACTIVE, NULL, &err),
                     GH_STORE_CONFLICT);
    assert_int_equal(gh_store_key_get(f->st, a.id, k.id, &got, &err), GH_OK);
    assert_int_equal(got.status, GH_STORE_KEY_REVOKED);

    assert_int_equal(gh_store_key_set_status(f->st, a.id, k.id, GH_STORE_KEY_ANY, NULL, &err),
                     GH_STORE_INVALID);
    assert_int_equal(
        gh_store_key_set_status(f->st, a.id, "AAAAAAAAAAAAAAAA", GH_STORE_KEY_REVOKED, NULL, &err),
        GH_STORE_NOT_FOUND);
}

static void test_key_expiry(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant a, b;
    struct gh_store_key k, got;
    struct gh_err err = {0};
    uint64_t v;

    tenant_new(f->st, "acme", &a);
    tenant_new(f->st, "beta", &b);
    key_new(f->st, a.id, &k);
    assert_int_equal(k.expires_at, 0);
    v = version_of(f->st);

    assert_int_equal(gh_store_key_set_expiry(f->st, a.id, k.id, 1700000000123, &err), GH_OK);
    assert_int_equal(version_of(f->st), v + 1);
    assert_int_equal(gh_store_key_get(f->st, a.id, k.id, &got, &err), GH_OK);
    assert_int_equal(got.expires_at, 1700000000123);
    assert_int_equal(got.status, GH_STORE_KEY_ACTIVE);

    assert_int_equal(gh_store_key_set_expiry(f->st, a.id, k.id, 0, &err), GH_OK);
    assert_int_equal(gh_store_key_get(f->st, a.id, k.id, &got, &err), GH_OK);
    assert_int_equal(got.expires_at, 0);
    assert_int_equal(version_of(f->st), v + 2);

    assert_int_equal(gh_store_key_set_expiry(f->st, a.id, k.id, -1, &err), GH_STORE_INVALID);
    assert_int_equal(gh_store_key_set_expiry(f->st, b.id, k.id, 5, &err), GH_STORE_NOT_FOUND);
    assert_int_equal(gh_store_key_set_expiry(f->st, a.id, "AAAAAAAAAAAAAAAA", 5, &err),
                     GH_STORE_NOT_FOUND);
    assert_int_equal(version_of(f->st), v + 2);
}

static void test_keys_touch_batch(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant a, b;
    struct gh_store_key k[3], got;
    struct gh_store_key_touch touch[4];
    struct gh_err err = {0};
    uint64_t v;

    tenant_new(f->st, "acme", &a);
    tenant_new(f->st, "beta", &b);
    key_new(f->st, a.id, &k[0]);
    key_new(f->st, a.id, &k[1]);
    key_new(f->st, b.id, &k[2]);
    v = version_of(f->st);

    memset(touch, 0, sizeof(touch));
    for (int i = 0; i < 3; i++) {
        memcpy(touch[i].key_id, k[i].id, sizeof(touch[i].key_id));
        touch[i].last_used_at = 1000 + i;
    }
    snprintf(touch[3].key_id, sizeof(touch[3].key_id), "ZZZZZZZZZZZZZZZZ"); /* unknown: skipped */
    touch[3].last_used_at = 5;
    assert_int_equal(gh_store_keys_touch_batch(f->st, touch, 4, &err), GH_OK);
    assert_int_equal(gh_store_key_get(f->st, a.id, k[0].id, &got, &err), GH_OK);
    assert_int_equal(got.last_used_at, 1000);
    assert_int_equal(gh_store_key_get(f->st, a.id, k[1].id, &got, &err), GH_OK);
    assert_int_equal(got.last_used_at, 1001);
    assert_int_equal(gh_store_key_get(f->st, b.id, k[2].id, &got, &err), GH_OK);
    assert_int_equal(got.last_used_at, 1002);

    /* A time never moves back. */
    touch[0].last_used_at = 10;
    touch[1].last_used_at = 5000;
    assert_int_equal(gh_store_keys_touch_batch(f->st, touch, 2, &err), GH_OK);
    assert_int_equal(gh_store_key_get(f->st, a.id, k[0].id, &got, &err), GH_OK);
    assert_int_equal(got.last_used_at, 1000);
    assert_int_equal(gh_store_key_get(f->st, a.id, k[1].id, &got, &err), GH_OK);
    assert_int_equal(got.last_used_at, 5000);

    assert_int_equal(gh_store_keys_touch_batch(f->st, touch, 0, &err), GH_OK);
    snprintf(touch[1].key_id, sizeof(touch[1].key_id), "bad id");
    assert_int_equal(gh_store_keys_touch_batch(f->st, touch, 2, &err), GH_STORE_INVALID);
    assert_non_null(strstr(err.msg, "touches[1]"));
    /* The batch is not a change that affects authentication. */
    assert_int_equal(version_of(f->st), v);
}

struct dir_entry {
    char id[GH_STORE_KEY_ID_SIZE];
    char tenant_id[GH_STORE_TENANT_ID_SIZE];
    enum gh_store_key_status status;
    enum gh_store_tenant_status tenant_status;
    bool hash_ok;
};

struct dir {
    struct dir_entry e[64];
    size_t n;
    size_t stop_after; /* 0 = never */
};

static int dir_cb(const struct gh_store_key *k, enum gh_store_tenant_status ts, void *arg)
{
    struct dir *d = arg;

    if (d->stop_after && d->n == d->stop_after) return GH_DECLINED;
    if (d->n == 64) return GH_ERROR;
    memcpy(d->e[d->n].id, k->id, sizeof(k->id));
    memcpy(d->e[d->n].tenant_id, k->tenant_id, sizeof(k->tenant_id));
    d->e[d->n].status = k->status;
    d->e[d->n].tenant_status = ts;
    d->e[d->n].hash_ok = strcmp(k->secret_hash, HASH) == 0 && k->nscopes == 1;
    d->n++;
    return GH_OK;
}

static const struct dir_entry *dir_find(const struct dir *d, const char *id)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->e[i].id, id) == 0) return &d->e[i];
    return NULL;
}

static void test_key_directory(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant a, b;
    struct gh_store_key ka, kr, kb;
    struct gh_store_tenant_update suspend = {.status = GH_STORE_TENANT_SUSPENDED};
    struct dir *d = calloc(1, sizeof(*d));
    struct gh_err err = {0};
    uint64_t v = 0;
    const struct dir_entry *e;

    tenant_new(f->st, "acme", &a);
    tenant_new(f->st, "beta", &b);
    key_new(f->st, a.id, &ka);
    key_new(f->st, a.id, &kr);
    key_new(f->st, b.id, &kb);
    assert_int_equal(gh_store_key_set_status(f->st, a.id, kr.id, GH_STORE_KEY_REVOKED, NULL, &err),
                     GH_OK);
    assert_int_equal(gh_store_tenant_update(f->st, b.id, &suspend, NULL, NULL, &err), GH_OK);

    assert_int_equal(gh_store_key_directory_load(f->st, dir_cb, d, &v, &err), GH_OK);
    assert_int_equal(v, version_of(f->st));
    assert_int_equal(d->n, 3);
    e = dir_find(d, ka.id);
    assert_non_null(e);
    assert_string_equal(e->tenant_id, a.id);
    assert_int_equal(e->status, GH_STORE_KEY_ACTIVE);
    assert_int_equal(e->tenant_status, GH_STORE_TENANT_ACTIVE);
    assert_true(e->hash_ok);
    e = dir_find(d, kr.id);
    assert_non_null(e);
    assert_int_equal(e->status, GH_STORE_KEY_REVOKED);
    e = dir_find(d, kb.id);
    assert_non_null(e);
    assert_int_equal(e->tenant_status, GH_STORE_TENANT_SUSPENDED);

    /* A callback that stops the walk: its value comes back. */
    memset(d, 0, sizeof(*d));
    d->stop_after = 1;
    assert_int_equal(gh_store_key_directory_load(f->st, dir_cb, d, NULL, &err), GH_DECLINED);
    assert_int_equal(d->n, 1);
    /* The reader is usable again afterwards (its transaction was closed). */
    memset(d, 0, sizeof(*d));
    for (int i = 0; i < 8; i++) {
        d->n = 0;
        assert_int_equal(gh_store_key_directory_load(f->st, dir_cb, d, NULL, &err), GH_OK);
        assert_int_equal(d->n, 3);
    }
    free(d);
}

/* ---- The change counter ----------------------------------------------------- */

static int count_cb(const struct gh_store_key *k, enum gh_store_tenant_status ts, void *arg)
{
    (*(int *)arg)++;
    return GH_OK;
}

static int count_tok_cb(const struct gh_store_revoked_token *tok, void *arg)
{
    (*(int *)arg)++;
    return GH_OK;
}

static void test_change_version(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant a, got;
    struct gh_store_key k, kout[4];
    struct gh_store_tenant tout[4];
    struct gh_store_page page = {.limit = 4};
    struct gh_store_key_touch touch = {.last_used_at = 99};
    struct gh_err err = {0};
    uint64_t v0 = version_of(f->st);
    int n = 0;

    assert_int_equal(v0, 0);
    tenant_new(f->st, "acme", &a); /* a new tenant has no keys yet */
    assert_int_equal(version_of(f->st), v0);

    /* A rename changes nothing that decides who passes; a new plan does (its
     * limits), the same plan again does not. */
    struct gh_store_tenant_update rename = {.name = "acme-corp"};
    assert_int_equal(gh_store_tenant_update(f->st, a.id, &rename, NULL, NULL, &err), GH_OK);
    assert_int_equal(version_of(f->st), v0);
    struct gh_store_tenant_update plan = {.plan = "gold"};
    assert_int_equal(gh_store_tenant_update(f->st, a.id, &plan, NULL, NULL, &err), GH_OK);
    assert_int_equal(version_of(f->st), v0 + 1);
    assert_int_equal(gh_store_tenant_update(f->st, a.id, &plan, NULL, NULL, &err), GH_OK);
    assert_int_equal(version_of(f->st), v0 + 1);
    v0++;
    struct gh_store_tenant_update suspend = {.status = GH_STORE_TENANT_SUSPENDED};
    assert_int_equal(gh_store_tenant_update(f->st, a.id, &suspend, NULL, NULL, &err), GH_OK);
    assert_int_equal(version_of(f->st), v0 + 1);
    assert_int_equal(gh_store_tenant_update(f->st, a.id, &suspend, NULL, NULL, &err), GH_OK);
    assert_int_equal(version_of(f->st), v0 + 1); /* no change of status */
    struct gh_store_tenant_update active = {.status = GH_STORE_TENANT_ACTIVE};
    assert_int_equal(gh_store_tenant_update(f->st, a.id, &active, NULL, NULL, &err), GH_OK);
    assert_int_equal(version_of(f->st), v0 + 2);

    key_new(f->st, a.id, &k);
    assert_int_equal(version_of(f->st), v0 + 3);

    /* Reads change nothing. */
    assert_int_equal(gh_store_tenant_get(f->st, a.id, &got, &err), GH_OK);
    assert_int_equal(gh_store_tenant_get_by_name(f->st, "acme-corp", &got, &err), GH_OK);
    assert_int_equal(gh_store_tenant_list(f->st, GH_STORE_TENANT_ANY, &page, tout, &err), GH_OK);
    assert_int_equal(gh_store_key_get(f->st, a.id, k.id, &kout[0], &err), GH_OK);
    assert_int_equal(gh_store_key_list(f->st, a.id, &page, kout, &err), GH_OK);
    assert_int_equal(gh_store_key_directory_load(f->st, count_cb, &n, NULL, &err), GH_OK);
    assert_int_equal(gh_store_revoked_tokens_load(f->st, 0, count_tok_cb, &n, NULL, &err), GH_OK);
    assert_int_equal(version_of(f->st), v0 + 3);
    /* Nor do last-used batches and purges. */
    memcpy(touch.key_id, k.id, sizeof(touch.key_id));
    assert_int_equal(gh_store_keys_touch_batch(f->st, &touch, 1, &err), GH_OK);
    assert_int_equal(gh_store_revoked_tokens_purge(f->st, 0, NULL, &err), GH_OK);
    assert_int_equal(version_of(f->st), v0 + 3);

    assert_int_equal(gh_store_key_set_expiry(f->st, a.id, k.id, 123, &err), GH_OK);
    assert_int_equal(version_of(f->st), v0 + 4);
    assert_int_equal(gh_store_key_set_status(f->st, a.id, k.id, GH_STORE_KEY_REVOKED, NULL, &err),
                     GH_OK);
    assert_int_equal(version_of(f->st), v0 + 5);
    assert_int_equal(gh_store_token_revoke(f->st, "jti-1", 4102444800000, &err), GH_OK);
    assert_int_equal(version_of(f->st), v0 + 6);

    /* Failed writes change nothing either. */
    assert_int_equal(gh_store_key_set_status(f->st, a.id, k.id, GH_STORE_KEY_ACTIVE, NULL, &err),
                     GH_STORE_CONFLICT);
    key_init(&k, "tn_00000000000000000000");
    assert_int_equal(gh_store_key_insert(f->st, &k, &err), GH_STORE_NOT_FOUND);
    assert_int_equal(version_of(f->st), v0 + 6);
}

/* ---- Revoked tokens --------------------------------------------------------- */

struct toks {
    char jti[8][GH_STORE_JTI_SIZE];
    int64_t exp[8];
    size_t n;
};

static int toks_cb(const struct gh_store_revoked_token *tok, void *arg)
{
    struct toks *t = arg;

    if (t->n == 8) return GH_ERROR;
    memcpy(t->jti[t->n], tok->jti, sizeof(tok->jti));
    t->exp[t->n] = tok->expires_at;
    if (tok->revoked_at <= 0) return GH_ERROR;
    t->n++;
    return GH_OK;
}

static void test_revoked_tokens(void **state)
{
    struct fixture *f = *state;
    struct toks t;
    struct gh_err err = {0};
    const int64_t now = 1700000000000;
    size_t purged = 99;
    uint64_t v = 0;
    char longjti[GH_STORE_JTI_MAX + 2];

    assert_int_equal(gh_store_token_revoke(f->st, "live", now + 60000, &err), GH_OK);
    assert_int_equal(gh_store_token_revoke(f->st, "old", now - 1, &err), GH_OK);
    assert_int_equal(gh_store_token_revoke(f->st, "edge", now, &err), GH_OK);
    /* Revoking again keeps the later expiry. */
    assert_int_equal(gh_store_token_revoke(f->st, "live", now + 10, &err), GH_OK);

    memset(&t, 0, sizeof(t));
    assert_int_equal(gh_store_revoked_tokens_load(f->st, now, toks_cb, &t, &v, &err), GH_OK);
    assert_int_equal(v, version_of(f->st));
    assert_int_equal(t.n, 1);
    assert_string_equal(t.jti[0], "live");
    assert_int_equal(t.exp[0], now + 60000);

    memset(&t, 0, sizeof(t));
    assert_int_equal(gh_store_revoked_tokens_load(f->st, now - 100, toks_cb, &t, NULL, &err),
                     GH_OK);
    assert_int_equal(t.n, 3);

    assert_int_equal(gh_store_revoked_tokens_purge(f->st, now, &purged, &err), GH_OK);
    assert_int_equal(purged, 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM revoked_tokens"), 1);
    assert_int_equal(gh_store_revoked_tokens_purge(f->st, now, &purged, &err), GH_OK);
    assert_int_equal(purged, 0);

    /* Refusals. */
    assert_int_equal(gh_store_token_revoke(f->st, "", now, &err), GH_STORE_INVALID);
    assert_int_equal(gh_store_token_revoke(f->st, "has space", now, &err), GH_STORE_INVALID);
    assert_int_equal(gh_store_token_revoke(f->st, "tab\t", now, &err), GH_STORE_INVALID);
    assert_int_equal(gh_store_token_revoke(f->st, "ok", 0, &err), GH_STORE_INVALID);
    memset(longjti, 'a', sizeof(longjti) - 1);
    longjti[sizeof(longjti) - 1] = '\0';
    assert_int_equal(gh_store_token_revoke(f->st, longjti, now, &err), GH_STORE_INVALID);
    longjti[GH_STORE_JTI_MAX] = '\0';
    assert_int_equal(gh_store_token_revoke(f->st, longjti, now + 1, &err), GH_OK);
}

/* ---- Validation ------------------------------------------------------------- */

static void count_call(void *arg)
{
    (*(int *)arg)++;
}

/* SQLite pushes nothing (one process): the subscription is a handle that
 * is inactive, never calls back, and stops at once. */
static void test_watch_changes_sqlite(void **state)
{
    struct fixture *f = *state;
    struct gh_store_watch *w = NULL;
    struct gh_store_watch_stats ws;
    struct gh_err err = {0};
    struct gh_store_tenant t;
    struct gh_store_key k;
    int calls = 0;

    assert_int_equal(gh_store_watch_changes(f->st, count_call, &calls, &w, &err), GH_OK);
    assert_non_null(w);
    tenant_new(f->st, "watched", &t);
    key_new(f->st, t.id, &k); /* bumps the counter: still no push */
    gh_store_watch_stats(w, &ws);
    assert_false(ws.active);
    assert_false(ws.connected);
    assert_int_equal(ws.notifications, 0);
    assert_int_equal(calls, 0);
    gh_store_watch_stop(w);
    gh_store_watch_stop(NULL);
    gh_store_watch_stats(NULL, &ws);
    assert_false(ws.active);
}

static void test_validation_helpers(void **state)
{
    static const struct {
        const char *s;
        bool tenant, role, scope, label;
    } cases[] = {
        {"acme", true, true, true, true},
        {"a", true, true, true, true},
        {"a-b_c.d9", true, true, true, true},
        {"orders:read", false, true, true, true},
        {"", false, false, false, true},
        {"Acme", false, false, false, true},
        {"ac me", false, false, false, true},
        {"acme/x", false, false, false, true},
        {"é", false, false, false, true},
        {"tab\there", false, false, false, false},
        {"del\x7f", false, false, false, false},
        {"c1\xc2\x85", false, false, false, false}, /* U+0085 NEL */
        {"overlong\xc0\xaf", false, false, false, false},
        {"surrogate\xed\xa0\x80", false, false, false, false},
        {"cut\xe2\x9c", false, false, false, false},         /* truncated sequence */
        {"big\xf4\x90\x80\x80", false, false, false, false}, /* > U+10FFFF */
        {"emoji \xf0\x9f\x94\x91", false, false, false, true},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true, true, true,
         true}, /* 64 */
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, false, false,
         false}, /* 65 */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (gh_store_valid_tenant_name(cases[i].s) != cases[i].tenant ||
            gh_store_valid_role(cases[i].s) != cases[i].role ||
            gh_store_valid_scope(cases[i].s) != cases[i].scope ||
            gh_store_valid_key_name(cases[i].s) != cases[i].label)
            fail_msg("case %zu (\"%s\")", i, cases[i].s);
    }
    /* 21 three-byte characters (63 bytes) fit, 22 (66 bytes) do not. */
    char label[80] = "";
    for (int i = 0; i < 21; i++)
        snprintf(label + strlen(label), 4, "\xe2\x9c\x93");
    assert_true(gh_store_valid_key_name(label));
    snprintf(label + strlen(label), 4, "\xe2\x9c\x93");
    assert_false(gh_store_valid_key_name(label));
    assert_false(gh_store_valid_tenant_name(NULL));

    assert_true(gh_store_valid_tenant_id("system"));
    assert_true(gh_store_valid_tenant_id("tn_abcdefghijABCDEFGHIJ"));
    assert_false(gh_store_valid_tenant_id("tn_abcdefghijABCDEFGHI"));
    assert_false(gh_store_valid_tenant_id("tn_abcdefghijABCDEFGHIJK"));
    assert_false(gh_store_valid_tenant_id("tn_abcdefghij-BCDEFGHIJ"));
    assert_false(gh_store_valid_tenant_id("xx_abcdefghijABCDEFGHIJ"));
    assert_true(gh_store_valid_key_id("0123456789abcDEF"));
    assert_false(gh_store_valid_key_id("0123456789abcDE"));
    assert_false(gh_store_valid_key_id("0123456789abcDEF0"));
    assert_false(gh_store_valid_key_id("0123456789abcDE_"));
    assert_false(gh_store_valid_key_id(NULL));

    assert_string_equal(gh_store_tenant_status_name(GH_STORE_TENANT_SUSPENDED), "suspended");
    assert_int_equal(gh_store_tenant_status_parse("active"), GH_STORE_TENANT_ACTIVE);
    assert_int_equal(gh_store_tenant_status_parse("Active"), GH_STORE_TENANT_ANY);
    assert_string_equal(gh_store_key_status_name(GH_STORE_KEY_REVOKED), "revoked");
    assert_int_equal(gh_store_key_status_parse("revoked"), GH_STORE_KEY_REVOKED);
    assert_string_equal(gh_store_key_status_name(GH_STORE_KEY_ANY), "");
}

/* Each row changes one thing of a good key; the insert must be refused with
 * GH_STORE_INVALID and a message naming <field>. */
enum bad_key {
    BAD_ROLES_COUNT,
    BAD_SCOPES_COUNT,
    BAD_ROLE_CHARS,
    BAD_SCOPE_LONG,
    BAD_SCOPE_UNTERMINATED,
    BAD_SCOPE_DUP,
    BAD_NAME_LONG,
    BAD_NAME_CONTROL,
    BAD_HASH_BCRYPT,
    BAD_HASH_EMPTY,
    BAD_HASH_SPACE,
    BAD_EXPIRY,
    BAD_STATUS,
    BAD_ID,
    BAD_ROTATED_FROM,
};

static void test_validation_key_insert(void **state)
{
    static const struct {
        enum bad_key what;
        const char *field;
    } cases[] = {
        {BAD_ROLES_COUNT, "roles"},
        {BAD_SCOPES_COUNT, "scopes"},
        {BAD_ROLE_CHARS, "roles[1]"},
        {BAD_SCOPE_LONG, "scopes[0]"},
        {BAD_SCOPE_UNTERMINATED, "scopes[0]"},
        {BAD_SCOPE_DUP, "scopes[1]"},
        {BAD_NAME_LONG, "name"},
        {BAD_NAME_CONTROL, "name"},
        {BAD_HASH_BCRYPT, "secret_hash"},
        {BAD_HASH_EMPTY, "secret_hash"},
        {BAD_HASH_SPACE, "secret_hash"},
        {BAD_EXPIRY, "expires_at"},
        {BAD_STATUS, "status"},
        {BAD_ID, "id"},
        {BAD_ROTATED_FROM, "rotated_from"},
    };
    struct fixture *f = *state;
    struct gh_store_tenant a;
    struct gh_store_key k;
    struct gh_err err;
    uint64_t v;

    tenant_new(f->st, "acme", &a);
    v = version_of(f->st);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        key_init(&k, a.id);
        key_role(&k, "viewer");
        key_scope(&k, "orders:read");
        switch (cases[i].what) {
        case BAD_ROLES_COUNT:
            for (int j = 1; j <= GH_STORE_MAX_ROLES; j++)
                snprintf(k.roles[k.nroles++ % GH_STORE_MAX_ROLES], GH_STORE_TOKEN_SIZE, "r%d", j);
            break;
        case BAD_SCOPES_COUNT:
            for (int j = 1; j <= GH_STORE_MAX_SCOPES; j++)
                snprintf(k.scopes[k.nscopes++ % GH_STORE_MAX_SCOPES], GH_STORE_TOKEN_SIZE, "s%d",
                         j);
            break;
        case BAD_ROLE_CHARS: key_role(&k, "Admin"); break;
        case BAD_SCOPE_LONG: memset(k.scopes[0], 'a', GH_STORE_TOKEN_MAX + 1); break;
        case BAD_SCOPE_UNTERMINATED: memset(k.scopes[0], 'a', GH_STORE_TOKEN_SIZE); break;
        case BAD_SCOPE_DUP: key_scope(&k, "orders:read"); break;
        case BAD_NAME_LONG: memset(k.name, 'n', GH_STORE_NAME_MAX + 1); break;
        case BAD_NAME_CONTROL: snprintf(k.name, sizeof(k.name), "a\nb"); break;
        case BAD_HASH_BCRYPT:
            snprintf(k.secret_hash, sizeof(k.secret_hash), "$2b$12$abcdefghijklmnopqrstuv");
            break;
        case BAD_HASH_EMPTY: k.secret_hash[0] = '\0'; break;
        case BAD_HASH_SPACE: snprintf(k.secret_hash, sizeof(k.secret_hash), "%s x", HASH); break;
        case BAD_EXPIRY: k.expires_at = -5; break;
        case BAD_STATUS: k.status = GH_STORE_KEY_REVOKED; break;
        case BAD_ID: snprintf(k.id, sizeof(k.id), "short"); break;
        case BAD_ROTATED_FROM: snprintf(k.rotated_from, sizeof(k.rotated_from), "x"); break;
        }
        if (cases[i].what == BAD_ROLES_COUNT) k.nroles = GH_STORE_MAX_ROLES + 1;
        if (cases[i].what == BAD_SCOPES_COUNT) k.nscopes = GH_STORE_MAX_SCOPES + 1;
        memset(&err, 0, sizeof(err));
        int rc = gh_store_key_insert(f->st, &k, &err);
        if (rc != GH_STORE_INVALID) fail_msg("case %zu: rc %d", i, rc);
        if (strncmp(err.msg, cases[i].field, strlen(cases[i].field)) != 0)
            fail_msg("case %zu: message \"%s\" does not start with %s", i, err.msg, cases[i].field);
        assert_no_hash(&err);
    }
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM api_keys"), 0);
    assert_int_equal(version_of(f->st), v);

    /* The limits themselves are accepted. */
    key_init(&k, a.id);
    for (int j = 0; j < GH_STORE_MAX_ROLES; j++)
        snprintf(k.roles[j], GH_STORE_TOKEN_SIZE, "r%d", j);
    k.nroles = GH_STORE_MAX_ROLES;
    for (int j = 0; j < GH_STORE_MAX_SCOPES; j++) {
        memset(k.scopes[j], 's', GH_STORE_TOKEN_MAX);
        snprintf(k.scopes[j], GH_STORE_TOKEN_SIZE, "%02d", j);
        k.scopes[j][2] = 's';
    }
    k.nscopes = GH_STORE_MAX_SCOPES;
    memset(k.name, 'n', GH_STORE_NAME_MAX);
    memset(&err, 0, sizeof(err));
    if (gh_store_key_insert(f->st, &k, &err) != GH_OK) fail_msg("limits: %s", err.msg);
    struct gh_store_key got;
    assert_int_equal(gh_store_key_get(f->st, a.id, k.id, &got, &err), GH_OK);
    assert_int_equal(got.nroles, GH_STORE_MAX_ROLES);
    assert_int_equal(got.nscopes, GH_STORE_MAX_SCOPES);
    assert_int_equal(strlen(got.scopes[31]), GH_STORE_TOKEN_MAX);
    assert_int_equal(strlen(got.name), GH_STORE_NAME_MAX);
}

static void test_validation_tenant_create(void **state)
{
    static const char *const bad_names[] = {
        "",           "Acme",
        "acme corp",  "acme/1",
        "ac\xc3\xa9", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 65 */
    };
    struct fixture *f = *state;
    struct gh_store_tenant t;
    struct gh_err err;

    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        memset(&t, 0, sizeof(t));
        snprintf(t.name, sizeof(t.name), "%s", bad_names[i]);
        if (strlen(bad_names[i]) > GH_STORE_NAME_MAX) memset(t.name, 'a', sizeof(t.name));
        assert_int_equal(gh_store_tenant_create(f->st, &t, &err), GH_STORE_INVALID);
        assert_memory_equal(err.msg, "name:", 5);
    }
    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "ok");
    snprintf(t.plan, sizeof(t.plan), "Gold Plan");
    assert_int_equal(gh_store_tenant_create(f->st, &t, &err), GH_STORE_INVALID);
    assert_memory_equal(err.msg, "plan:", 5);
    t.plan[0] = '\0';
    t.status = (enum gh_store_tenant_status)5;
    assert_int_equal(gh_store_tenant_create(f->st, &t, &err), GH_STORE_INVALID);
    assert_memory_equal(err.msg, "status:", 7);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tenants"), 1);
}

static void test_random_ids(void **state)
{
    char ids[500][GH_STORE_KEY_ID_SIZE];
    struct gh_err err = {0};
    int hist[62] = {0};
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    for (int i = 0; i < 500; i++) {
        assert_int_equal(gh_store_random_base62(ids[i], GH_STORE_KEY_ID_LEN, &err), GH_OK);
        assert_true(gh_store_valid_key_id(ids[i]));
        for (int j = 0; j < GH_STORE_KEY_ID_LEN; j++)
            hist[strchr(b62, ids[i][j]) - b62]++;
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
    /* 8000 draws over 62 symbols: each expected ~129 times. */
    for (int i = 0; i < 62; i++)
        assert_true(hist[i] > 60 && hist[i] < 220);
}

/* ---- Tenant limits, usage and limit events ---------------------------------- */

struct limits_seen {
    size_t n;
    size_t stop_after; /* 0 = never */
    struct {
        char id[GH_STORE_TENANT_ID_SIZE];
        enum gh_store_tenant_status status;
        char plan[GH_STORE_NAME_SIZE];
        char json[64];
    } e[8];
};

static int limits_cb(const char *tenant_id, enum gh_store_tenant_status status, const char *plan,
                     const char *overrides_json, void *arg)
{
    struct limits_seen *seen = arg;

    if (seen->stop_after && seen->n == seen->stop_after) return GH_DECLINED;
    if (seen->n == 8) return GH_ERROR;
    snprintf(seen->e[seen->n].id, sizeof(seen->e[0].id), "%s", tenant_id);
    seen->e[seen->n].status = status;
    snprintf(seen->e[seen->n].plan, sizeof(seen->e[0].plan), "%s", plan);
    snprintf(seen->e[seen->n].json, sizeof(seen->e[0].json), "%s", overrides_json);
    seen->n++;
    return GH_OK;
}

static void test_tenant_limits(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant a, b, got;
    struct gh_store_tenant_update suspend = {.status = GH_STORE_TENANT_SUSPENDED};
    struct limits_seen seen = {0};
    struct gh_err err = {0};
    char plan[GH_STORE_NAME_SIZE];
    char *json = malloc(GH_STORE_LIMITS_JSON_MAX + 2);
    char *big = malloc(GH_STORE_LIMITS_JSON_MAX + 2);
    uint64_t v;

    tenant_new(f->st, "acme", &a);
    assert_int_equal(gh_store_tenant_limits_get(f->st, a.id, plan, json, 64, &err), GH_OK);
    assert_string_equal(plan, "default");
    assert_string_equal(json, "");

    /* Plan and overrides together: the counter moves (caches reload). */
    v = version_of(f->st);
    assert_int_equal(
        gh_store_tenant_limits_set(f->st, a.id, "gold", "{\"requests_per_day\": 5000}", &err),
        GH_OK);
    assert_int_equal(version_of(f->st), v + 1);
    assert_int_equal(gh_store_tenant_limits_get(f->st, a.id, plan, json, 64, &err), GH_OK);
    assert_string_equal(plan, "gold");
    assert_string_equal(json, "{\"requests_per_day\": 5000}");
    assert_int_equal(gh_store_tenant_get(f->st, a.id, &got, &err), GH_OK);
    assert_string_equal(got.plan, "gold");
    assert_true(got.updated_at >= a.created_at);
    /* The same values again change nothing. */
    assert_int_equal(
        gh_store_tenant_limits_set(f->st, a.id, "gold", "{\"requests_per_day\": 5000}", &err),
        GH_OK);
    assert_int_equal(version_of(f->st), v + 1);
    /* Overrides alone (the plan stays), then cleared. */
    assert_int_equal(gh_store_tenant_limits_set(f->st, a.id, NULL, "{}", &err), GH_OK);
    assert_int_equal(version_of(f->st), v + 2);
    assert_int_equal(gh_store_tenant_limits_get(f->st, a.id, plan, json, 64, &err), GH_OK);
    assert_string_equal(plan, "gold");
    assert_string_equal(json, "{}");
    assert_int_equal(gh_store_tenant_limits_set(f->st, a.id, NULL, "", &err), GH_OK);
    assert_int_equal(version_of(f->st), v + 3);
    assert_int_equal(gh_store_tenant_limits_get(f->st, a.id, plan, json, 64, &err), GH_OK);
    assert_string_equal(json, "");
    /* The plan alone (the overrides stay). */
    assert_int_equal(gh_store_tenant_limits_set(f->st, a.id, NULL, "{\"rps\":10}", &err), GH_OK);
    assert_int_equal(gh_store_tenant_limits_set(f->st, a.id, "pro", NULL, &err), GH_OK);
    assert_int_equal(version_of(f->st), v + 5);
    assert_int_equal(gh_store_tenant_limits_get(f->st, a.id, plan, json, 64, &err), GH_OK);
    assert_string_equal(plan, "pro");
    assert_string_equal(json, "{\"rps\":10}");

    /* Refused input changes nothing. */
    v = version_of(f->st);
    static const char *const bad_json[] = {
        "[1]",
        "\"text\"",
        "42",
        "null",
        "nope",
        "{",
        "{} {}",
        "{\"a\":1,\"a\":2}",
        "{\"a\":\"\xff\"}",
    };
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
        if (gh_store_tenant_limits_set(f->st, a.id, NULL, bad_json[i], &err) != GH_STORE_INVALID)
            fail_msg("overrides %s were accepted", bad_json[i]);
        assert_memory_equal(err.msg, "overrides:", 10);
    }
    assert_int_equal(gh_store_tenant_limits_set(f->st, a.id, "Gold", NULL, &err), GH_STORE_INVALID);
    assert_memory_equal(err.msg, "plan:", 5);
    assert_int_equal(gh_store_tenant_limits_set(f->st, a.id, NULL, NULL, &err), GH_STORE_INVALID);
    assert_int_equal(
        gh_store_tenant_limits_set(f->st, "tn_00000000000000000000", "gold", NULL, &err),
        GH_STORE_NOT_FOUND);
    assert_int_equal(gh_store_tenant_limits_set(f->st, "../x", "gold", NULL, &err),
                     GH_STORE_NOT_FOUND);
    assert_int_equal(
        gh_store_tenant_limits_get(f->st, "tn_00000000000000000000", plan, json, 64, &err),
        GH_STORE_NOT_FOUND);
    assert_int_equal(gh_store_tenant_limits_get(f->st, a.id, plan, json, 0, &err),
                     GH_STORE_INVALID);
    /* At most GH_STORE_LIMITS_JSON_MAX bytes. */
    size_t fill = GH_STORE_LIMITS_JSON_MAX - 8; /* {"k":"<fill>"} */
    memcpy(big, "{\"k\":\"", 6);
    memset(big + 6, 'x', fill + 1);
    memcpy(big + 6 + fill + 1, "\"}", 3);
    assert_int_equal(strlen(big), GH_STORE_LIMITS_JSON_MAX + 1);
    assert_int_equal(gh_store_tenant_limits_set(f->st, a.id, NULL, big, &err), GH_STORE_INVALID);
    assert_memory_equal(err.msg, "overrides:", 10);
    assert_int_equal(version_of(f->st), v);
    memcpy(big + 6 + fill, "\"}", 3);
    assert_int_equal(strlen(big), GH_STORE_LIMITS_JSON_MAX);
    assert_int_equal(gh_store_tenant_limits_set(f->st, a.id, NULL, big, &err), GH_OK);
    assert_int_equal(
        gh_store_tenant_limits_get(f->st, a.id, plan, json, GH_STORE_LIMITS_JSON_MAX + 1, &err),
        GH_OK);
    assert_string_equal(json, big);
    /* A buffer too small is refused, not truncated. */
    assert_int_equal(
        gh_store_tenant_limits_get(f->st, a.id, plan, json, GH_STORE_LIMITS_JSON_MAX, &err),
        GH_STORE_INVALID);
    assert_string_equal(json, "");
    assert_int_equal(gh_store_tenant_limits_set(f->st, a.id, NULL, "{\"rps\":10}", &err), GH_OK);

    /* The walk: every tenant with its status, plan and overrides. */
    tenant_new(f->st, "beta", &b);
    assert_int_equal(gh_store_tenant_update(f->st, b.id, &suspend, NULL, NULL, &err), GH_OK);
    assert_int_equal(gh_store_tenant_limits_load(f->st, limits_cb, &seen, &err), GH_OK);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.e[0].id, "system");
    assert_string_equal(seen.e[0].json, "");
    /* Tenants made in the same second come in id order, and ids are random. */
    size_t ia = strcmp(seen.e[1].id, a.id) == 0 ? 1 : 2, ib = 3 - ia;
    assert_string_equal(seen.e[ia].id, a.id);
    assert_int_equal(seen.e[ia].status, GH_STORE_TENANT_ACTIVE);
    assert_string_equal(seen.e[ia].plan, "pro");
    assert_string_equal(seen.e[ia].json, "{\"rps\":10}");
    assert_string_equal(seen.e[ib].id, b.id);
    assert_int_equal(seen.e[ib].status, GH_STORE_TENANT_SUSPENDED);
    assert_string_equal(seen.e[ib].plan, "default");
    assert_string_equal(seen.e[ib].json, "");
    memset(&seen, 0, sizeof(seen));
    seen.stop_after = 1;
    assert_int_equal(gh_store_tenant_limits_load(f->st, limits_cb, &seen, &err), GH_DECLINED);
    assert_int_equal(seen.n, 1);
    free(json);
    free(big);
}

static void usage_init(struct gh_store_usage *u, const char *tenant_id, const char *period,
                       uint64_t requests, uint64_t in, uint64_t out)
{
    memset(u, 0, sizeof(*u));
    snprintf(u->tenant_id, sizeof(u->tenant_id), "%s", tenant_id);
    snprintf(u->period, sizeof(u->period), "%s", period);
    u->requests = requests;
    u->request_bytes = in;
    u->response_bytes = out;
}

static void assert_usage(const struct gh_store_usage *u, uint64_t requests, uint64_t in,
                         uint64_t out)
{
    assert_int_equal(u->requests, requests);
    assert_int_equal(u->request_bytes, in);
    assert_int_equal(u->response_bytes, out);
}

struct usage_seen {
    size_t n;
    struct gh_store_usage e[8];
};

static int usage_cb(const struct gh_store_usage *u, void *arg)
{
    struct usage_seen *seen = arg;

    if (seen->n == 8) return GH_ERROR;
    seen->e[seen->n++] = *u;
    return GH_OK;
}

static void test_usage(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant a, b;
    struct gh_store_usage rows[3], got;
    struct usage_seen seen = {0};
    struct gh_err err = {0};
    uint64_t v;

    tenant_new(f->st, "acme", &a);
    tenant_new(f->st, "beta", &b);
    v = version_of(f->st);

    /* One batch: a day and a month of a, and a JWT tenant the store does not know. */
    usage_init(&rows[0], a.id, "2026-11-22", 1, 100, 1000);
    usage_init(&rows[1], a.id, "2026-11", 1, 100, 1000);
    usage_init(&rows[2], "jwt-tenant-7", "2026-11-22", 2, 20, 200);
    assert_int_equal(gh_store_usage_add(f->st, rows, 3, &err), GH_OK);
    assert_usage(&rows[0], 1, 100, 1000);
    assert_usage(&rows[2], 2, 20, 200);
    assert_true(rows[0].updated_at > 0);
    /* Across calls, and the same pair twice in one batch: each row gets the
     * total after its own addition. */
    usage_init(&rows[0], a.id, "2026-11-22", 2, 10, 10);
    usage_init(&rows[1], a.id, "2026-11-22", 3, 5, 5);
    assert_int_equal(gh_store_usage_add(f->st, rows, 2, &err), GH_OK);
    assert_usage(&rows[0], 3, 110, 1010);
    assert_usage(&rows[1], 6, 115, 1015);
    assert_string_equal(rows[1].tenant_id, a.id);
    assert_string_equal(rows[1].period, "2026-11-22");

    /* Periods are separate; a period without a row reads as zero. */
    assert_int_equal(gh_store_usage_get(f->st, a.id, "2026-11-22", &got, &err), GH_OK);
    assert_usage(&got, 6, 115, 1015);
    assert_string_equal(got.tenant_id, a.id);
    assert_string_equal(got.period, "2026-11-22");
    assert_true(got.updated_at > 0);
    assert_int_equal(gh_store_usage_get(f->st, a.id, "2026-11", &got, &err), GH_OK);
    assert_usage(&got, 1, 100, 1000);
    assert_int_equal(gh_store_usage_get(f->st, a.id, "2026-11-23", &got, &err), GH_OK);
    assert_usage(&got, 0, 0, 0);
    assert_int_equal(got.updated_at, 0);
    assert_string_equal(got.tenant_id, a.id);
    assert_string_equal(got.period, "2026-11-23");
    /* Tenant B sees none of A's usage. */
    assert_int_equal(gh_store_usage_get(f->st, b.id, "2026-11-22", &got, &err), GH_OK);
    assert_usage(&got, 0, 0, 0);
    assert_int_equal(gh_store_usage_get(f->st, "jwt-tenant-7", "2026-11-22", &got, &err), GH_OK);
    assert_usage(&got, 2, 20, 200);

    /* A period's rows, by tenant id. */
    assert_int_equal(gh_store_usage_load(f->st, "2026-11-22", usage_cb, &seen, &err), GH_OK);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.e[0].tenant_id, "jwt-tenant-7");
    assert_usage(&seen.e[0], 2, 20, 200);
    assert_string_equal(seen.e[1].tenant_id, a.id);
    assert_string_equal(seen.e[1].period, "2026-11-22");
    assert_usage(&seen.e[1], 6, 115, 1015);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(gh_store_usage_load(f->st, "2026-11", usage_cb, &seen, &err), GH_OK);
    assert_int_equal(seen.n, 1);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(gh_store_usage_load(f->st, "2025-01", usage_cb, &seen, &err), GH_OK);
    assert_int_equal(seen.n, 0);

    /* Totals saturate at INT64_MAX; a count above it is refused. */
    usage_init(&rows[0], a.id, "2026-12", INT64_MAX, 0, 7);
    assert_int_equal(gh_store_usage_add(f->st, rows, 1, &err), GH_OK);
    usage_init(&rows[0], a.id, "2026-12", 5, INT64_MAX, 7);
    assert_int_equal(gh_store_usage_add(f->st, rows, 1, &err), GH_OK);
    assert_usage(&rows[0], INT64_MAX, INT64_MAX, 14);
    usage_init(&rows[0], a.id, "2026-12", (uint64_t)INT64_MAX + 1, 0, 0);
    assert_int_equal(gh_store_usage_add(f->st, rows, 1, &err), GH_STORE_INVALID);
    assert_memory_equal(err.msg, "rows[0].counts", 14);

    /* A batch with one bad row writes nothing and leaves the rows as they were. */
    usage_init(&rows[0], a.id, "2026-11-22", 1, 1, 1);
    usage_init(&rows[1], a.id, "2026-13", 1, 1, 1);
    assert_int_equal(gh_store_usage_add(f->st, rows, 2, &err), GH_STORE_INVALID);
    assert_memory_equal(err.msg, "rows[1].period", 14);
    assert_usage(&rows[0], 1, 1, 1);
    assert_int_equal(gh_store_usage_get(f->st, a.id, "2026-11-22", &got, &err), GH_OK);
    assert_usage(&got, 6, 115, 1015);
    assert_int_equal(gh_store_usage_add(f->st, rows, 0, &err), GH_OK);

    /* Usage does not change who may pass. */
    assert_int_equal(version_of(f->st), v);
}

/* Records an event of <tenant_id>; returns whether it was inserted. */
static bool event_record(struct gh_store *st, const char *tenant_id, const char *period,
                         const char *metric, uint32_t threshold, struct gh_store_limit_event *ev)
{
    struct gh_err err = {0};
    bool inserted = false;

    memset(ev, 0, sizeof(*ev));
    snprintf(ev->tenant_id, sizeof(ev->tenant_id), "%s", tenant_id);
    snprintf(ev->period, sizeof(ev->period), "%s", period);
    snprintf(ev->metric, sizeof(ev->metric), "%s", metric);
    ev->threshold = threshold;
    ev->value = 10 * threshold;
    ev->limit = 1000;
    if (gh_store_limit_event_record(st, ev, &inserted, &err) != GH_OK)
        fail_msg("limit_event_record: %s", err.msg);
    return inserted;
}

static void test_limit_events(void **state)
{
    struct fixture *f = *state;
    struct gh_store_tenant a, b;
    struct gh_store_limit_event ev, out[GH_STORE_LIST_MAX];
    struct gh_err err = {0};
    int64_t ids_a[5], ids_b[2], last = 0;
    size_t count = 0, total = 0, pages = 0;
    bool more = true;
    uint64_t v;

    tenant_new(f->st, "acme", &a);
    tenant_new(f->st, "beta", &b);
    v = version_of(f->st);

    /* Once per (tenant, period, metric, threshold). */
    assert_true(event_record(f->st, a.id, "2026-11-22", "requests_per_day", 80, &ev));
    assert_true(ev.id > 0);
    assert_true(ev.created_at > 0);
    ids_a[0] = ev.id;
    assert_false(event_record(f->st, a.id, "2026-11-22", "requests_per_day", 80, &ev));
    assert_int_equal(ev.id, 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM limit_events"), 1);
    assert_true(event_record(f->st, b.id, "2026-11-22", "requests_per_day", 80, &ev));
    ids_b[0] = ev.id;
    assert_true(event_record(f->st, a.id, "2026-11-22", "requests_per_day", 100, &ev));
    ids_a[1] = ev.id;
    assert_true(event_record(f->st, a.id, "2026-11-23", "requests_per_day", 80, &ev));
    ids_a[2] = ev.id;
    assert_true(event_record(f->st, a.id, "2026-11", "bytes_per_month", 80, &ev));
    ids_a[3] = ev.id;
    assert_true(event_record(f->st, b.id, "2026-11", "bytes_per_month", 80, &ev));
    ids_b[1] = ev.id;
    assert_true(event_record(f->st, a.id, "2026-11", "requests_per_month", 80, &ev));
    ids_a[4] = ev.id;
    assert_true(ids_a[4] > ids_b[1] && ids_b[1] > ids_a[3]); /* increasing */
    /* *inserted may be NULL. */
    assert_int_equal(gh_store_limit_event_record(f->st, &ev, NULL, &err), GH_OK);

    /* A's list, two per page, newest first: never one of B's. */
    do {
        assert_int_equal(gh_store_limit_events_list(f->st, a.id, last, 2, out, &count, &more, &err),
                         GH_OK);
        pages++;
        for (size_t i = 0; i < count; i++) {
            assert_string_equal(out[i].tenant_id, a.id);
            assert_int_equal(out[i].id, ids_a[4 - total]);
            total++;
        }
        if (count > 0) last = out[count - 1].id;
    } while (more);
    assert_int_equal(total, 5);
    assert_int_equal(pages, 3);
    /* The fields come back as recorded. */
    assert_int_equal(gh_store_limit_events_list(f->st, a.id, 0, 1, out, &count, &more, &err),
                     GH_OK);
    assert_int_equal(count, 1);
    assert_true(more);
    assert_string_equal(out[0].period, "2026-11");
    assert_string_equal(out[0].metric, "requests_per_month");
    assert_int_equal(out[0].threshold, 80);
    assert_int_equal(out[0].value, 800);
    assert_int_equal(out[0].limit, 1000);
    assert_true(out[0].created_at > 0);

    assert_int_equal(gh_store_limit_events_list(f->st, b.id, 0, 10, out, &count, &more, &err),
                     GH_OK);
    assert_int_equal(count, 2);
    assert_false(more);
    assert_int_equal(out[0].id, ids_b[1]);
    assert_int_equal(out[1].id, ids_b[0]);
    assert_int_equal(gh_store_limit_events_list(f->st, "tn_00000000000000000000", 0, 10, out,
                                                &count, &more, &err),
                     GH_OK);
    assert_int_equal(count, 0);
    assert_false(more);
    /* The operator's list has everyone's. */
    assert_int_equal(
        gh_store_limit_events_list(f->st, NULL, 0, GH_STORE_LIST_MAX, out, &count, &more, &err),
        GH_OK);
    assert_int_equal(count, 7);
    assert_false(more);
    for (size_t i = 1; i < count; i++)
        assert_true(out[i].id < out[i - 1].id);
    assert_int_equal(
        gh_store_limit_events_list(f->st, NULL, ids_a[3], 10, out, &count, &more, &err), GH_OK);
    assert_int_equal(count, 4);
    assert_int_equal(out[0].id, ids_a[2]);
    assert_int_equal(out[3].id, ids_a[0]);

    /* Bad pages. */
    assert_int_equal(gh_store_limit_events_list(f->st, a.id, 0, 0, out, &count, &more, &err),
                     GH_STORE_INVALID);
    assert_int_equal(
        gh_store_limit_events_list(f->st, a.id, 0, GH_STORE_LIST_MAX + 1, out, &count, &more, &err),
        GH_STORE_INVALID);
    assert_int_equal(gh_store_limit_events_list(f->st, a.id, -1, 5, out, &count, &more, &err),
                     GH_STORE_INVALID);
    assert_int_equal(gh_store_limit_events_list(f->st, "", 0, 5, out, &count, &more, &err),
                     GH_STORE_INVALID);
    assert_int_equal(count, 0);

    /* Events do not change who may pass. */
    assert_int_equal(version_of(f->st), v);
}

/* Usage and limit-event input that must be refused with GH_STORE_INVALID,
 * whichever call it reaches, and without writing anything. */
static void test_validation_usage(void **state)
{
    static const char *const bad_periods[] = {
        "",           "2026",       "2026-1",      "abcd-ef",    "2026-13",    "2026-00",
        "2026/11",    "2026-11-",   "2026-11-1",   "2026-11-32", "2026-11-00", "2026-02-29",
        "1900-02-29", "2026-04-31", "2026-11-22 ", "+026-11",    "2026-1a-01", "2026-11-2x",
    };
    static const char *const good_periods[] = {
        "2026-11", "2026-01", "2026-12-31", "2024-02-29", "2000-02-29", "2026-11-22",
    };
    static const char *const bad_metrics[] = {
        "", "Requests", "requests-per-day", "requests per day", "req1", "r\xc3\xa9q",
    };
    struct fixture *f = *state;
    struct gh_store_usage u, got;
    struct gh_store_limit_event ev;
    struct usage_seen seen = {0};
    struct gh_err err;
    bool inserted = true;

    for (size_t i = 0; i < sizeof(bad_periods) / sizeof(bad_periods[0]); i++) {
        if (gh_store_valid_period(bad_periods[i])) fail_msg("period \"%s\" valid", bad_periods[i]);
        assert_int_equal(gh_store_usage_get(f->st, "system", bad_periods[i], &got, &err),
                         GH_STORE_INVALID);
        assert_int_equal(gh_store_usage_load(f->st, bad_periods[i], usage_cb, &seen, &err),
                         GH_STORE_INVALID);
        if (strlen(bad_periods[i]) >= GH_STORE_PERIOD_SIZE) continue; /* would be cut to fit */
        usage_init(&u, "system", bad_periods[i], 1, 1, 1);
        assert_int_equal(gh_store_usage_add(f->st, &u, 1, &err), GH_STORE_INVALID);
        assert_memory_equal(err.msg, "rows[0].period:", 15);
        memset(&ev, 0, sizeof(ev));
        snprintf(ev.tenant_id, sizeof(ev.tenant_id), "system");
        snprintf(ev.period, sizeof(ev.period), "%s", bad_periods[i]);
        snprintf(ev.metric, sizeof(ev.metric), "requests_per_day");
        ev.threshold = 80;
        assert_int_equal(gh_store_limit_event_record(f->st, &ev, &inserted, &err),
                         GH_STORE_INVALID);
        assert_memory_equal(err.msg, "period:", 7);
        assert_false(inserted);
    }
    for (size_t i = 0; i < sizeof(good_periods) / sizeof(good_periods[0]); i++)
        if (!gh_store_valid_period(good_periods[i]))
            fail_msg("period \"%s\" refused", good_periods[i]);
    assert_false(gh_store_valid_period(NULL));
    /* An unterminated (overlong) period in a record. */
    usage_init(&u, "system", "2026-11-22", 1, 1, 1);
    memset(u.period, '1', sizeof(u.period));
    assert_int_equal(gh_store_usage_add(f->st, &u, 1, &err), GH_STORE_INVALID);
    assert_int_equal(gh_store_usage_get(f->st, "system", "2026-11-221", &got, &err),
                     GH_STORE_INVALID);

    /* Tenant ids: empty, control characters, unterminated. */
    usage_init(&u, "", "2026-11", 1, 1, 1);
    assert_int_equal(gh_store_usage_add(f->st, &u, 1, &err), GH_STORE_INVALID);
    assert_memory_equal(err.msg, "rows[0].tenant_id:", 18);
    usage_init(&u, "a\nb", "2026-11", 1, 1, 1);
    assert_int_equal(gh_store_usage_add(f->st, &u, 1, &err), GH_STORE_INVALID);
    usage_init(&u, "x", "2026-11", 1, 1, 1);
    memset(u.tenant_id, 'x', sizeof(u.tenant_id));
    assert_int_equal(gh_store_usage_add(f->st, &u, 1, &err), GH_STORE_INVALID);
    assert_int_equal(gh_store_usage_get(f->st, "", "2026-11", &got, &err), GH_STORE_INVALID);
    assert_int_equal(
        gh_store_usage_get(f->st, "tn_abcdefghijABCDEFGHIJ0123456789", "2026-11", &got, &err),
        GH_STORE_INVALID);

    /* Limit events: metric, threshold, value, tenant. */
    for (size_t i = 0; i < sizeof(bad_metrics) / sizeof(bad_metrics[0]) + 5; i++) {
        memset(&ev, 0, sizeof(ev));
        snprintf(ev.tenant_id, sizeof(ev.tenant_id), "system");
        snprintf(ev.period, sizeof(ev.period), "2026-11-22");
        snprintf(ev.metric, sizeof(ev.metric), "requests_per_day");
        ev.threshold = 100;
        const char *field = "metric:";
        size_t nb = sizeof(bad_metrics) / sizeof(bad_metrics[0]);
        if (i < nb) {
            snprintf(ev.metric, sizeof(ev.metric), "%s", bad_metrics[i]);
        } else if (i == nb) {
            memset(ev.metric, 'm', sizeof(ev.metric)); /* 32 characters, no NUL */
        } else if (i == nb + 1) {
            ev.threshold = 0;
            field = "threshold:";
        } else if (i == nb + 2) {
            ev.threshold = 1001;
            field = "threshold:";
        } else if (i == nb + 3) {
            ev.limit = (uint64_t)INT64_MAX + 1;
            field = "value:";
        } else {
            ev.tenant_id[0] = '\0';
            field = "tenant_id:";
        }
        inserted = true;
        memset(&err, 0, sizeof(err));
        int rc = gh_store_limit_event_record(f->st, &ev, &inserted, &err);
        if (rc != GH_STORE_INVALID) fail_msg("event case %zu: rc %d", i, rc);
        if (strncmp(err.msg, field, strlen(field)) != 0)
            fail_msg("event case %zu: message \"%s\" does not start with %s", i, err.msg, field);
        assert_false(inserted);
    }
    /* The bounds themselves are accepted. */
    memset(&ev, 0, sizeof(ev));
    snprintf(ev.tenant_id, sizeof(ev.tenant_id), "system");
    snprintf(ev.period, sizeof(ev.period), "2026-11-22");
    memset(ev.metric, 'm', sizeof(ev.metric) - 1);
    ev.threshold = 1000;
    ev.value = ev.limit = INT64_MAX;
    assert_int_equal(gh_store_limit_event_record(f->st, &ev, &inserted, &err), GH_OK);
    assert_true(inserted);
    ev.threshold = 1;
    assert_int_equal(gh_store_limit_event_record(f->st, &ev, &inserted, &err), GH_OK);
    assert_true(inserted);

    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM usage"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM limit_events"), 2);
}

/* ---- Concurrency ------------------------------------------------------------ */

struct worker_arg {
    struct gh_store *st;
    int id;
    int failures;
    char first_error[512];
};

static void record_failure(struct worker_arg *w, const char *what, const struct gh_err *err)
{
    if (w->failures++ == 0)
        snprintf(w->first_error, sizeof(w->first_error), "%s: %.400s", what, err->msg);
}

static void *writer_thread(void *arg)
{
    struct worker_arg *w = arg;
    struct gh_store_tenant t;
    struct gh_store_key k;
    struct gh_store_key_touch touch;
    struct gh_err err;
    char jti[32];

    for (int i = 0; i < 40; i++) {
        memset(&t, 0, sizeof(t));
        snprintf(t.name, sizeof(t.name), "w%d-t%d", w->id, i);
        if (gh_store_tenant_create(w->st, &t, &err) != GH_OK) {
            record_failure(w, "tenant", &err);
            continue;
        }
        for (int j = 0; j < 2; j++) {
            key_init(&k, t.id);
            key_scope(&k, "orders:read");
            if (gh_store_key_insert(w->st, &k, &err) != GH_OK) record_failure(w, "key", &err);
        }
        memcpy(touch.key_id, k.id, sizeof(touch.key_id));
        touch.last_used_at = i + 1;
        if (gh_store_keys_touch_batch(w->st, &touch, 1, &err) != GH_OK)
            record_failure(w, "touch", &err);
        if (gh_store_key_set_status(w->st, t.id, k.id, GH_STORE_KEY_REVOKED, NULL, &err) != GH_OK)
            record_failure(w, "revoke", &err);
        snprintf(jti, sizeof(jti), "w%d-%d", w->id, i);
        if (gh_store_token_revoke(w->st, jti, 4102444800000, &err) != GH_OK)
            record_failure(w, "token", &err);
    }
    return NULL;
}

static void *reader_thread(void *arg)
{
    struct worker_arg *w = arg;
    struct gh_store_tenant t;
    struct gh_err err;
    uint64_t v;
    int n;

    for (int i = 0; i < 150; i++) {
        if (gh_store_change_version(w->st, &v, &err) != GH_OK) record_failure(w, "version", &err);
        if (gh_store_tenant_get(w->st, "system", &t, &err) != GH_OK)
            record_failure(w, "tenant_get", &err);
        n = 0;
        if (gh_store_key_directory_load(w->st, count_cb, &n, &v, &err) != GH_OK)
            record_failure(w, "directory", &err);
    }
    return NULL;
}

/* Several threads write at once through the one writer connection, while
 * others read: nothing fails (no SQLITE_BUSY comes out) and nothing is lost. */
static void test_concurrent_writers(void **state)
{
    enum { NWRITERS = 4, NREADERS = 6 };
    struct fixture *f = *state;
    struct worker_arg w[NWRITERS + NREADERS];
    pthread_t th[NWRITERS + NREADERS];
    struct gh_err err = {0};
    int n = 0;

    memset(w, 0, sizeof(w));
    for (int i = 0; i < NWRITERS + NREADERS; i++) {
        w[i].st = f->st;
        w[i].id = i;
        assert_int_equal(
            pthread_create(&th[i], NULL, i < NWRITERS ? writer_thread : reader_thread, &w[i]), 0);
    }
    for (int i = 0; i < NWRITERS + NREADERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NWRITERS + NREADERS; i++)
        if (w[i].failures)
            fail_msg("thread %d: %d failures, first: %s", i, w[i].failures, w[i].first_error);

    assert_int_equal(gh_store_key_directory_load(f->st, count_cb, &n, NULL, &err), GH_OK);
    assert_int_equal(n, NWRITERS * 40 * 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tenants"), NWRITERS * 40 + 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM revoked_tokens"), NWRITERS * 40);
    /* Per writer and round: 2 inserts, 1 revocation, 1 token. */
    assert_int_equal(version_of(f->st), NWRITERS * 40 * 4);
}

struct late {
    struct gh_store *st;
    struct gh_store_tenant t;
    struct gh_err err;
    int rc;
};

static void *create_late(void *arg)
{
    struct late *l = arg;

    l->rc = gh_store_tenant_create(l->st, &l->t, &l->err);
    return NULL;
}

/* Another process (here: another connection) holds the write lock for a
 * while: the store waits for it (busy_timeout) instead of failing. */
static void test_waits_for_other_writer(void **state)
{
    struct fixture *f = *state;
    struct late l = {.st = f->st};
    struct gh_store_tenant t;
    struct gh_err err = {0};
    struct timespec pause = {0, 300 * 1000 * 1000};
    sqlite3 *db;
    pthread_t th;

    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    snprintf(l.t.name, sizeof(l.t.name), "late");
    assert_int_equal(pthread_create(&th, NULL, create_late, &l), 0);
    nanosleep(&pause, NULL);
    /* Reads go on meanwhile (WAL). */
    assert_int_equal(gh_store_tenant_get(f->st, "system", &t, &err), GH_OK);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    pthread_join(th, NULL);
    sqlite3_close(db);
    if (l.rc != GH_OK) fail_msg("create while locked: %s", l.err.msg);
    assert_int_equal(gh_store_tenant_get_by_name(f->st, "late", &t, &err), GH_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_tenant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_mode, setup, teardown),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test_setup_teardown(test_tenant_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_pagination_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_touch_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_changes_sqlite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_tokens, setup, teardown),
        cmocka_unit_test(test_validation_helpers),
        cmocka_unit_test_setup_teardown(test_validation_key_insert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation_tenant_create, setup, teardown),
        cmocka_unit_test(test_random_ids),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waits_for_other_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signing_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_18_deliveries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_20_paused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation_usage, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
