/* Tests of src/admin/ops.c that need no store: a key's roles and scopes
 * are checked before its Argon2id hash is computed, so a request with a
 * duplicate role costs no hashing (the store's own check came after it).
 * Argon2 parameters that cannot hash (no memory) tell the order: lists
 * that pass reach the hash and fail there; a bad list fails first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "admin/ops.h"
#include "store/store.h"

static const struct gh_argon2_params cannot_hash = {0, 0, 0};

static void key_with(struct gh_store_key *k, const char *role1, const char *role2)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->tenant_id, sizeof(k->tenant_id), "tn_0123456789abcdefghij");
    snprintf(k->name, sizeof(k->name), "ci");
    snprintf(k->roles[0], GH_STORE_TOKEN_SIZE, "%s", role1);
    snprintf(k->roles[1], GH_STORE_TOKEN_SIZE, "%s", role2);
    k->nroles = 2;
}

static void test_lists_before_the_hash(void **state)
{
    struct gh_store_key k;
    struct gh_err err = {0};
    char key[GH_APIKEY_LEN + 1] = "";

    (void)state;
    key_with(&k, "reader", "reader");
    assert_int_equal(gh_ops_key_create(NULL, &cannot_hash, &k, key, &err), GH_STORE_INVALID);
    assert_string_equal(err.msg, "roles[1]: duplicate of roles[0]");
    assert_string_equal(key, "");

    snprintf(k.scopes[0], GH_STORE_TOKEN_SIZE, "orders:read");
    snprintf(k.scopes[1], GH_STORE_TOKEN_SIZE, "Orders");
    k.nscopes = 2;
    snprintf(k.roles[1], GH_STORE_TOKEN_SIZE, "writer");
    assert_int_equal(gh_ops_key_create(NULL, &cannot_hash, &k, key, &err), GH_STORE_INVALID);
    assert_non_null(strstr(err.msg, "scopes[1]"));

    /* Good lists go on to the hash, which these parameters cannot make. */
    key_with(&k, "reader", "writer");
    assert_int_equal(gh_ops_key_create(NULL, &cannot_hash, &k, key, &err), GH_ERROR);
    assert_string_equal(err.msg, "cannot hash the key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists_before_the_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
