/* Tests of src/secrets/secrets.c and rotate.c against a real SQLite store
 * and the local provider: round trips, rows changed in the store (another
 * place, another wrapped key, another version) that must not open, a wrong
 * master key, first start rules, config references, and rotation with
 * limits and resumes. */
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

#include "config/config.h"
#include "secrets/kms.h"
#include "secrets/secrets.h"
#include "store/store.h"

struct fixture {
    char dir[64];
    char db[128];
    char master[160];
    struct gh_config *cfg;
    struct gh_store *st;
    struct gh_secrets *s;
};

static void load_config(struct fixture *f, const char *extra)
{
    char text[2048];
    struct gh_err err = {0};

    snprintf(text, sizeof(text),
             "listen:\n  - address: 127.0.0.1:1\nupstreams:\n  app:\n"
             "    endpoints: [\"127.0.0.1:2\"]\n%s"
             "routes:\n  - path: /\n    upstream: app\nstore:\n  sqlite: %s\n",
             extra, f->db);
    gh_config_free(f->cfg);
    f->cfg = NULL;
    if (gh_config_load_buffer("t.yaml", text, strlen(text), &f->cfg, &err) != GH_OK)
        fail_msg("config: %s", err.msg);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct gh_store_params p = {0};
    struct gh_err err = {0};

    snprintf(f->dir, sizeof(f->dir), "/tmp/gh_secrets_XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->db, sizeof(f->db), "%s/gatehouse.db", f->dir);
    snprintf(f->master, sizeof(f->master), "%s.master", f->db);
    *state = f;
    load_config(f, "");
    p.sqlite_path = f->db;
    if (gh_store_open(&p, &f->st, &err) != GH_OK || gh_store_migrate(f->st, NULL, NULL, &err))
        return -1;
    /* The default master key file is beside the store. */
    if (strcmp(f->cfg->secrets.master_key_file, f->master) != 0) return -1;
    f->s = gh_secrets_open_ex(f->cfg, f->st, GH_SECRETS_CREATE_MASTER, &err);
    return f->s ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[256];

    gh_secrets_close(f->s);
    gh_store_close(f->st);
    gh_config_free(f->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static void raw(struct fixture *f, const char *sql)
{
    sqlite3 *db;

    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) fail_msg("%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

static int raw_int(struct fixture *f, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    int v = -1;

    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void put(struct fixture *f, const char *tenant, const char *name, const char *v)
{
    struct gh_err err = {0};

    if (gh_secrets_put(f->s, tenant, name, v, strlen(v), &err) != GH_OK)
        fail_msg("put %s: %s", name, err.msg);
}

static int get(struct fixture *f, const char *tenant, const char *name, char *out, size_t cap)
{
    struct gh_err err = {0};
    size_t len = 0;
    int rc = gh_secrets_get(f->s, tenant, name, out, cap - 1, &len, &err);

    out[rc == GH_OK ? len : 0] = '\0';
    return rc;
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    char out[64];

    put(f, "system", "config/db", "s3cret-value-number-one");
    assert_int_equal(get(f, "system", "config/db", out, sizeof(out)), GH_OK);
    assert_string_equal(out, "s3cret-value-number-one");
    /* Replacing makes a new data key and nonce. */
    put(f, "system", "config/db", "the second value");
    assert_int_equal(get(f, "system", "config/db", out, sizeof(out)), GH_OK);
    assert_string_equal(out, "the second value");
    /* Tenants are apart. */
    assert_int_equal(get(f, "tn_AAAAAAAAAAAAAAAAAAAA", "config/db", out, sizeof(out)),
                     GH_STORE_NOT_FOUND);
    /* A buffer too small is INVALID, not a truncated value. */
    assert_int_equal(get(f, "system", "config/db", out, 4), GH_STORE_INVALID);
    assert_int_equal(gh_secrets_delete(f->s, "system", "config/db", &err), GH_OK);
    assert_int_equal(gh_secrets_delete(f->s, "system", "config/db", &err), GH_STORE_NOT_FOUND);
    assert_int_equal(get(f, "system", "config/db", out, sizeof(out)), GH_STORE_NOT_FOUND);
}

static void test_validation(void **state)
{
    static const char *const bad_names[] = {"", "/abs", ".hidden", "sp ace", "a\nb", NULL};
    struct fixture *f = *state;
    struct gh_err err = {0};
    char big[GH_SECRET_VALUE_MAX + 1];

    for (size_t i = 0; bad_names[i]; i++)
        assert_int_equal(gh_secrets_put(f->s, "system", bad_names[i], "x", 1, &err),
                         GH_STORE_INVALID);
    assert_int_equal(gh_secrets_put(f->s, "nobody", "a", "x", 1, &err), GH_STORE_INVALID);
    assert_int_equal(gh_secrets_put(f->s, "system", "a", "x", 0, &err), GH_STORE_INVALID);
    memset(big, 'b', sizeof(big));
    assert_int_equal(gh_secrets_put(f->s, "system", "a", big, sizeof(big), &err), GH_STORE_INVALID);
    assert_int_equal(gh_secrets_put(f->s, "system", "a", big, sizeof(big) - 1, &err), GH_OK);
}

/* Rows changed in the store do not open (table: the SQL that changes it). */
static void test_tamper(void **state)
{
    static const struct {
        const char *what, *sql, *name;
    } cases[] = {
        {"ciphertext",
         "UPDATE secrets SET ciphertext = randomblob(length(ciphertext)) "
         "WHERE name = 'a'",
         "a"},
        {"tag",
         "UPDATE secrets SET ciphertext = (SELECT ciphertext FROM secrets WHERE name = 'b') "
         "WHERE name = 'a'",
         "a"},
        {"nonce", "UPDATE secrets SET nonce = zeroblob(12) WHERE name = 'a'", "a"},
        {"wrapped key",
         "UPDATE secrets SET wrapped_dek = "
         "(SELECT wrapped_dek FROM secrets WHERE name = 'b') WHERE name = 'a'",
         "a"},
        {"version", "UPDATE secrets SET kek_version = 1 WHERE name = 'a'", "a"},
        {"place", "UPDATE secrets SET name = 'c' WHERE name = 'a'", "c"},
    };
    struct fixture *f = *state;
    struct gh_err err = {0};
    char out[64];

    /* Rows go under version 2 and version 1 exists: "version" names a real
     * other key, not a missing one. */
    {
        struct gh_secrets_rotate_opts o = {0};
        struct gh_secrets_rotate_result r;
        assert_int_equal(gh_secrets_rotate_master(f->s, &o, &r, &err), GH_OK);
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        raw(f, "DELETE FROM secrets");
        put(f, "system", "a", "value-of-a-0123456789");
        put(f, "system", "b", "value-of-b-0123456789");
        assert_int_equal(get(f, "system", "a", out, sizeof(out)), GH_OK);
        raw(f, cases[i].sql);
        if (get(f, "system", cases[i].name, out, sizeof(out)) != GH_ERROR)
            fail_msg("a changed %s still opens (got \"%s\")", cases[i].what, out);
    }
}

static void test_wrong_master(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    char out[64];

    put(f, "system", "a", "value-of-a-0123456789");
    gh_secrets_close(f->s);
    f->s = NULL;
    assert_int_equal(raw_int(f, "SELECT count(*) FROM secrets_kek_checks"), 1);
    /* Another master key file at the same path: refused at open, before
     * anything is sealed under it, and the file is left alone. */
    unlink(f->master);
    assert_int_equal(gh_secrets_init(f->cfg, &err), GH_OK);
    assert_null(gh_secrets_open(f->cfg, f->st, &err));
    assert_non_null(strstr(err.msg, "master key version 1 of the file "));
    assert_non_null(strstr(err.msg, "is not the one this store's secrets are sealed under: "
                                    "every node needs the same master key"));
    assert_int_equal(access(f->master, F_OK), 0);
    /* The check is the first key's still: the second open did not replace
     * it, so the first key opens again. */
    assert_int_equal(raw_int(f, "SELECT count(*) FROM secrets_kek_checks"), 1);
    raw(f, "DELETE FROM secrets_kek_checks");
    f->s = gh_secrets_open(f->cfg, f->st, &err);
    assert_non_null(f->s);
    /* Without the check (a store of an older build) the key is taken, and
     * the value does not open. */
    assert_int_equal(get(f, "system", "a", out, sizeof(out)), GH_ERROR);
}

/* Points the fixture's config at <dir>/other.master (its path in <other>),
 * a copy of the fixture's master key file when <copy>: another node's. */
static void other_node(struct fixture *f, char *other, size_t cap, bool copy)
{
    char extra[256], cmd[512];

    snprintf(other, cap, "%s/other.master", f->dir);
    if (copy) {
        snprintf(cmd, sizeof(cmd), "cp -p %s %s", f->master, other);
        assert_int_equal(system(cmd), 0);
    }
    snprintf(extra, sizeof(extra), "secrets:\n  master_key_file: %s\n", other);
    load_config(f, extra);
}

/* Two nodes' first starts on one shared store, both before anything is
 * sealed: each makes a master key file; the second to record its check
 * is refused and removes the file it made, so its next start (with the
 * first node's file copied) works. */
static void test_first_starts_at_once(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    char other[200];
    struct gh_secrets *s;

    other_node(f, other, sizeof(other), false);
    assert_int_equal(access(other, F_OK), -1);
    s = gh_secrets_open_ex(f->cfg, f->st, GH_SECRETS_CREATE_MASTER, &err);
    assert_null(s);
    assert_non_null(strstr(err.msg, "is not the one this store's secrets are sealed under: another "
                                    "node made the store's master key (at the same time, or "
                                    "earlier and its file is missing here), and this start "
                                    "removed the file it had just made"));
    assert_int_equal(access(other, F_OK), -1);
    /* With the first node's file copied, it opens. */
    other_node(f, other, sizeof(other), true);
    s = gh_secrets_open_ex(f->cfg, f->st, GH_SECRETS_CREATE_MASTER, &err);
    assert_non_null(s);
    gh_secrets_close(s);
}

/* A node whose copy of the file lacks the version another node's rotation
 * made opens (with a warning) but may not rotate: its own new version would
 * be a second key of that version. A copy that made its own version 2 is
 * refused at open. */
static void test_rotation_with_a_stale_copy(void **state)
{
    struct fixture *f = *state;
    struct gh_secrets_rotate_result r;
    struct gh_err err = {0};
    char other[200];
    struct gh_secrets *s;
    struct gh_kms *k;
    uint32_t v = 0;

    put(f, "system", "a", "value-of-a-0123456789");
    other_node(f, other, sizeof(other), true); /* f->s keeps the fixture's file */
    assert_int_equal(gh_secrets_rotate_master(f->s, NULL, &r, &err), GH_OK);
    assert_int_equal(r.to_version, 2);
    assert_int_equal(raw_int(f, "SELECT max(version) FROM secrets_kek_checks"), 2);

    s = gh_secrets_open(f->cfg, f->st, &err);
    assert_non_null(s);
    assert_int_equal(gh_secrets_rotate_master(s, NULL, &r, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "the store has master key version 2 (a rotation made it "
                                    "elsewhere), but the file "));
    assert_int_equal(gh_secrets_current_version(s, &v, &err), GH_OK);
    assert_int_equal(v, 1); /* no version made */
    gh_secrets_close(s);

    /* The copy makes a version 2 of its own (another operator's rotation
     * that raced ours): refused at open. */
    k = gh_kms_local_open(other, &err);
    assert_non_null(k);
    assert_int_equal(k->ops->create_version(k, 2, &err), GH_OK);
    k->ops->close(k);
    assert_null(gh_secrets_open(f->cfg, f->st, &err));
    assert_non_null(strstr(err.msg, "master key version 2 of the file "));
    assert_int_equal(access(other, F_OK), 0); /* not made by that open: kept */
}

/* rotate-master --prepare: version 2 is made and its check recorded
 * prepared; nothing is sealed under it, so a node whose copy lacks it opens
 * every value; a second prepare makes nothing; the rotation is refused on
 * that node until its copy holds version 2, then puts the prepared version
 * in use (no third is made); no prepare while a rotation is pending. */
static void test_prepare(void **state)
{
    struct fixture *f = *state;
    struct gh_secrets_prepare_result pr;
    struct gh_secrets_rotate_opts o = {.limit = 1};
    struct gh_secrets_rotate_result r;
    struct gh_err err = {0};
    char other[200], cmd[512], out[64];
    struct gh_secrets *s;
    uint32_t v = 0;
    size_t len = 0;

    put(f, "system", "a", "value-of-a-0123456789");
    other_node(f, other, sizeof(other), true); /* a copy with version 1 only */
    s = gh_secrets_open(f->cfg, f->st, &err);
    assert_non_null(s);
    assert_int_equal(gh_secrets_prepare_master(f->s, &pr, &err), GH_OK);
    assert_int_equal(pr.version, 2);
    assert_int_equal(pr.from_version, 1);
    assert_false(pr.already);
    assert_int_equal(raw_int(f, "SELECT prepared FROM secrets_kek_checks WHERE version = 2"), 1);
    assert_int_equal(raw_int(f, "SELECT prepared FROM secrets_kek_checks WHERE version = 1"), 0);
    bool held = true;
    assert_int_equal(gh_secrets_prepared_version(s, &v, &held, &err), GH_OK);
    assert_int_equal(v, 2);
    assert_false(held); /* its copy lacks it */
    assert_int_equal(gh_secrets_prepared_version(f->s, &v, &held, &err), GH_OK);
    assert_true(held);
    /* The preparing handle's file holds 2, and it still seals under 1. */
    assert_int_equal(gh_secrets_current_version(f->s, &v, &err), GH_OK);
    assert_int_equal(v, 1);
    put(f, "system", "b", "value-of-b-0123456789");
    assert_int_equal(raw_int(f, "SELECT kek_version FROM secrets WHERE name = 'b'"), 1);
    assert_int_equal(gh_secrets_get(s, "system", "b", out, sizeof(out), &len, &err), GH_OK);
    /* A handle opened on the file with version 2 seals under 1 as well. */
    load_config(f, "");
    struct gh_secrets *s2 = gh_secrets_open(f->cfg, f->st, &err);
    assert_non_null(s2);
    assert_int_equal(gh_secrets_current_version(s2, &v, &err), GH_OK);
    assert_int_equal(v, 1);
    gh_secrets_close(s2);
    assert_int_equal(gh_secrets_prepare_master(f->s, &pr, &err), GH_OK);
    assert_true(pr.already);
    assert_int_equal(pr.version, 2);
    assert_int_equal(raw_int(f, "SELECT max(version) FROM secrets_kek_checks"), 2);

    /* The copy without version 2 may not rotate (nor make a 2 of its own). */
    assert_int_equal(gh_secrets_rotate_master(s, NULL, &r, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "master key version 2 was prepared"));
    assert_int_equal(gh_secrets_prepare_master(s, &pr, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "master key version 2 was prepared (rotate-master --prepare), "
                                    "but the file "));
    /* Copied, it may: the prepared version goes in use, and rows move. */
    snprintf(cmd, sizeof(cmd), "cp -p %s %s", f->master, other);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(gh_secrets_rotate_master(s, NULL, &r, &err), GH_OK);
    assert_int_equal(r.from_version, 1);
    assert_int_equal(r.to_version, 2);
    assert_true(r.finished);
    assert_int_equal(raw_int(f, "SELECT max(version) FROM secrets_kek_checks"), 2);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM secrets_kek_checks WHERE prepared = 1"), 0);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM secrets WHERE kek_version <> 2"), 0);
    assert_int_equal(gh_secrets_current_version(f->s, &v, &err), GH_OK);
    assert_int_equal(v, 2);
    assert_int_equal(gh_secrets_get(f->s, "system", "a", out, sizeof(out), &len, &err), GH_OK);

    /* No prepare while a rotation is pending. */
    assert_int_equal(gh_secrets_rotate_master(f->s, &o, &r, &err), GH_OK);
    assert_false(r.finished);
    assert_int_equal(gh_secrets_prepare_master(f->s, &pr, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "a rotation to master key version 3 is pending"));
    gh_secrets_close(s);
}

/* A prepared key lost before its rotation (the file restored from a
 * backup that predates it): the rotation and a new prepare are refused
 * until --unprepare forgets its check, which only a prepared version's
 * may be; then a new version 2 is prepared and used. */
static void test_unprepare(void **state)
{
    struct fixture *f = *state;
    struct gh_secrets_prepare_result pr;
    struct gh_secrets_rotate_result r;
    struct gh_err err = {0};
    char backup[200], cmd[512], out[64];
    struct gh_secrets *s;
    uint32_t v = 0;

    put(f, "system", "a", "value-of-a-0123456789");
    snprintf(backup, sizeof(backup), "%s/backup.master", f->dir);
    snprintf(cmd, sizeof(cmd), "cp -p %s %s", f->master, backup);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(gh_secrets_unprepare_master(f->s, &v, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "no master key version is prepared"));
    assert_int_equal(gh_secrets_prepare_master(f->s, &pr, &err), GH_OK);
    /* Another node, running, got a copy with the prepared key first. */
    char other[200];
    other_node(f, other, sizeof(other), true);
    struct gh_secrets *b = gh_secrets_open(f->cfg, f->st, &err);
    assert_non_null(b);
    assert_int_equal(gh_secrets_current_version(b, &v, &err), GH_OK);
    assert_int_equal(v, 1);
    load_config(f, "");
    snprintf(cmd, sizeof(cmd), "cp -p %s %s", backup, f->master); /* version 2 lost */
    assert_int_equal(system(cmd), 0);
    s = gh_secrets_open(f->cfg, f->st, &err);
    assert_non_null(s);
    assert_int_equal(gh_secrets_rotate_master(s, NULL, &r, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "master key version 2 was prepared"));
    assert_int_equal(gh_secrets_prepare_master(s, &pr, &err), GH_ERROR);
    assert_int_equal(gh_secrets_unprepare_master(s, &v, &err), GH_OK);
    assert_int_equal(v, 2);
    assert_int_equal(raw_int(f, "SELECT max(version) FROM secrets_kek_checks"), 1);
    /* A check in use is never forgotten this way. */
    assert_int_equal(gh_store_secrets_kek_unprepare(f->st, 1, &err), GH_STORE_NOT_FOUND);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM secrets_kek_checks"), 1);
    /* A new version 2, prepared and used. */
    assert_int_equal(gh_secrets_prepare_master(s, &pr, &err), GH_OK);
    assert_int_equal(pr.version, 2);
    assert_false(pr.already);
    assert_int_equal(gh_secrets_rotate_master(s, NULL, &r, &err), GH_OK);
    assert_true(r.finished);
    assert_int_equal(r.to_version, 2);
    size_t len = 0;
    assert_int_equal(gh_secrets_get(s, "system", "a", out, sizeof(out), &len, &err), GH_OK);
    /* The running node still holds the forgotten key as its version 2: it
     * compares it again now that version 2 is in use, and seals nothing. */
    assert_int_equal(gh_secrets_put(b, "system", "c", "value-of-c-0123456789", 21, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "master key version 2 of the file "));
    assert_int_equal(raw_int(f, "SELECT count(*) FROM secrets WHERE name = 'c'"), 0);
    gh_secrets_close(b);
    gh_secrets_close(s);
}

static void test_first_start(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    struct gh_secrets *s;

    put(f, "system", "a", "value-of-a-0123456789");
    unlink(f->master);
    /* Sealed secrets and no master key: refused, never a new key. */
    s = gh_secrets_open_ex(f->cfg, f->st, GH_SECRETS_CREATE_MASTER, &err);
    assert_null(s);
    assert_non_null(strstr(err.msg, "1 sealed secret"));
    assert_int_equal(access(f->master, F_OK), -1);
    /* Without the flag too: not "create it", which would orphan them. */
    assert_null(gh_secrets_open(f->cfg, f->st, &err));
    assert_non_null(strstr(err.msg, "is missing, but the store holds 1 sealed secret(s): copy the "
                                    "file from a node of this store, or restore it"));
    assert_null(strstr(err.msg, "secrets init"));
}

/* A gateway already running when its copy of the file gains a version (a
 * rotation that lost the race to record that version's check leaves its
 * own key there): the new version is compared with the store's check before
 * anything is sealed under it, and the seal is refused. */
static void test_running_handle_checks_a_new_version(void **state)
{
    struct fixture *f = *state;
    struct gh_secrets_rotate_result r;
    struct gh_err err = {0};
    char other[200], out[64];
    struct gh_secrets *s;
    struct gh_kms *k;
    size_t len = 0;

    put(f, "system", "a", "value-of-a-0123456789");
    other_node(f, other, sizeof(other), true);
    s = gh_secrets_open(f->cfg, f->st, &err); /* the other node, running on version 1 */
    assert_non_null(s);
    assert_int_equal(gh_secrets_rotate_master(f->s, NULL, &r, &err), GH_OK);
    assert_int_equal(r.to_version, 2);
    k = gh_kms_local_open(other, &err); /* a version 2 of its own in its copy */
    assert_non_null(k);
    assert_int_equal(k->ops->create_version(k, 2, &err), GH_OK);
    k->ops->close(k);
    assert_int_equal(gh_secrets_put(s, "system", "b", "value-of-b-0123456789", 21, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "master key version 2 of the file "));
    assert_int_equal(gh_secrets_get(f->s, "system", "b", out, sizeof(out), &len, &err),
                     GH_STORE_NOT_FOUND); /* nothing sealed under the wrong key */
    /* And a row the rotation moved to the store's version 2 does not open
     * there: that node's version 2 is another key. */
    assert_int_equal(gh_secrets_get(s, "system", "a", out, sizeof(out), &len, &err), GH_ERROR);
    gh_secrets_close(s);
}

static void test_rotation(void **state)
{
    struct fixture *f = *state;
    struct gh_secrets_rotate_opts o = {.batch = 3, .limit = 5};
    struct gh_secrets_rotate_result r;
    struct gh_store_secrets_rotation rot;
    struct gh_err err = {0};
    char name[32], out[64], want[64];
    uint32_t v;

    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "k/%02d", i);
        snprintf(want, sizeof(want), "value-%02d-abcdefghijkl", i);
        put(f, "system", name, want);
    }
    /* Interrupted after 5 rows: pending, and the target stays v2. */
    assert_int_equal(gh_secrets_rotate_master(f->s, &o, &r, &err), GH_OK);
    assert_true(r.started);
    assert_false(r.finished);
    assert_int_equal(r.to_version, 2);
    assert_int_equal(r.rewrapped, 5);
    assert_int_equal(r.remaining, 7);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM secrets WHERE kek_version = 2"), 5);
    /* Every value opens meanwhile, from either version. */
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "k/%02d", i);
        snprintf(want, sizeof(want), "value-%02d-abcdefghijkl", i);
        assert_int_equal(get(f, "system", name, out, sizeof(out)), GH_OK);
        assert_string_equal(out, want);
    }
    /* A put now goes under the new version. */
    put(f, "system", "k/new", "written-during-rotation");
    assert_int_equal(raw_int(f, "SELECT kek_version FROM secrets WHERE name = 'k/new'"), 2);
    /* The rerun resumes: same target, no version 3. */
    o.limit = 0;
    assert_int_equal(gh_secrets_rotate_master(f->s, &o, &r, &err), GH_OK);
    assert_false(r.started);
    assert_true(r.finished);
    assert_int_equal(r.to_version, 2);
    assert_int_equal(r.rewrapped, 7);
    assert_int_equal(r.total, 12);
    assert_int_equal(gh_secrets_current_version(f->s, &v, &err), GH_OK);
    assert_int_equal(v, 2);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM secrets WHERE kek_version <> 2"), 0);
    assert_int_equal(gh_store_secrets_rotation_get(f->st, &rot, &err), GH_OK);
    assert_true(rot.finished_at > 0);
    /* The next one goes to 3. */
    assert_int_equal(gh_secrets_rotate_master(f->s, &o, &r, &err), GH_OK);
    assert_int_equal(r.to_version, 3);
    assert_true(r.finished);
    assert_int_equal(get(f, "system", "k/07", out, sizeof(out)), GH_OK);
    assert_string_equal(out, "value-07-abcdefghijkl");
}

/* A value put between a rotation's read of a row and its write must not get
 * the old data key back: the write is a compare-and-set. */
static void test_rewrap_compare_and_set(void **state)
{
    struct fixture *f = *state;
    struct gh_store_secret *stale = calloc(1, sizeof(*stale));
    struct gh_store_secret_rewrap *rw = calloc(1, sizeof(*rw));
    struct gh_store_secrets_rotation rot;
    struct gh_err err = {0};
    size_t count = 0, applied = 9;
    bool started = false;
    char out[64];

    assert_non_null(stale);
    assert_non_null(rw);
    put(f, "system", "race", "the-value-before-0123");
    assert_int_equal(gh_store_secrets_rotation_begin(f->st, 1, 2, &rot, &started, &err), GH_OK);
    assert_true(started);
    /* A second operator resumes the same rotation. */
    assert_int_equal(gh_store_secrets_rotation_begin(f->st, 1, 2, &rot, &started, &err), GH_OK);
    assert_false(started);
    assert_int_equal(rot.to_version, 2);
    assert_int_equal(gh_store_secrets_stale(f->st, 2, 1, stale, &count, &err), GH_OK);
    assert_int_equal(count, 1);
    /* Meanwhile the value is put again (a new data key). */
    put(f, "system", "race", "the-value-after-45678");
    snprintf(rw->tenant_id, sizeof(rw->tenant_id), "%s", stale->tenant_id);
    snprintf(rw->name, sizeof(rw->name), "%s", stale->name);
    rw->old_version = stale->kek_version;
    rw->new_version = 2;
    rw->old_len = stale->wrapped_len;
    memcpy(rw->old_wrapped, stale->wrapped_dek, stale->wrapped_len);
    rw->new_len = stale->wrapped_len;
    memcpy(rw->new_wrapped, stale->wrapped_dek, stale->wrapped_len); /* the stale key */
    assert_int_equal(gh_store_secrets_rewrap(f->st, rw, 1, &applied, &err), GH_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(get(f, "system", "race", out, sizeof(out)), GH_OK);
    assert_string_equal(out, "the-value-after-45678");
    assert_int_equal(gh_store_secrets_rotation_get(f->st, &rot, &err), GH_OK);
    assert_int_equal(rot.rewrapped, 0);
    free(stale);
    free(rw);
}

static void test_config_refs(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};

    load_config(f, "    identity_secret: secret:upstream-app\n");
    assert_int_equal(f->cfg->nsecret_refs, 1);
    assert_null(f->cfg->upstreams[0].identity_secret);
    /* Missing: the error is at the reference. */
    assert_int_equal(gh_secrets_resolve_config(f->s, f->cfg, &err), GH_ERROR);
    assert_string_equal(err.file, "t.yaml");
    assert_int_equal(err.line, 6);
    assert_int_equal(err.col, 22);
    assert_non_null(strstr(err.msg, "config/upstream-app"));
    /* Too short for an HMAC key. */
    put(f, "system", "config/upstream-app", "short");
    assert_int_equal(gh_secrets_resolve_config(f->s, f->cfg, &err), GH_ERROR);
    put(f, "system", "config/upstream-app", "a-long-enough-identity-secret");
    assert_int_equal(gh_secrets_resolve_config(f->s, f->cfg, &err), GH_OK);
    assert_string_equal(f->cfg->upstreams[0].identity_secret, "a-long-enough-identity-secret");
    assert_int_equal(f->cfg->nwarnings, 0);
    /* The longest NAME the config takes is one the store holds: "config/"
     * and 121 characters make GH_SECRET_NAME_MAX (test_config.c refuses 122). */
    char line[200], name[GH_SECRET_NAME_MAX + 1] = "config/";
    memset(name + 7, 'n', GH_CONFIG_SECRET_REF_MAX);
    name[7 + GH_CONFIG_SECRET_REF_MAX] = '\0';
    snprintf(line, sizeof(line), "    identity_secret: secret:%s\n", name + 7);
    load_config(f, line);
    assert_int_equal(f->cfg->nsecret_refs, 1);
    put(f, "system", name, "the-longest-named-secret");
    assert_int_equal(gh_secrets_resolve_config(f->s, f->cfg, &err), GH_OK);
    assert_string_equal(f->cfg->upstreams[0].identity_secret, "the-longest-named-secret");
    /* A literal is a warning, not an error. */
    load_config(f, "    identity_secret: a-literal-secret-in-the-file\n");
    assert_int_equal(f->cfg->nwarnings, 1);
    assert_int_equal(f->cfg->warnings[0].pos.line, 6);
    assert_non_null(strstr(f->cfg->warnings[0].msg, "upstreams.app.identity_secret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_master, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepare, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unprepare, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_starts_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_with_a_stale_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_running_handle_checks_a_new_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrap_compare_and_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_refs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
