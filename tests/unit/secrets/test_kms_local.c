/* Tests of src/secrets/kms_local.c: the master key file's mode rule (0600
 * and stricter only), its format, wrap/unwrap under a version, new versions
 * written whole, and a handle that meets a version made by another one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secrets/kms.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct gh_err err = {0};

    snprintf(f->dir, sizeof(f->dir), "/tmp/gh_kms_XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->path, sizeof(f->path), "%s/gatehouse.db.master", f->dir);
    *state = f;
    return gh_kms_local_create(f->path, &err) == GH_OK ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char p[160];

    unlink(f->path);
    snprintf(p, sizeof(p), "%s.new", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s.lock", f->path);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void test_create(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    struct stat st;
    char line[128];
    FILE *fp;

    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    fp = fopen(f->path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof(line), fp));
    fclose(fp);
    assert_int_equal(strncmp(line, "gatehouse-master v1 ", 20), 0);
    assert_int_equal(strlen(line), 20 + 44 + 1);
    /* Never overwritten: its keys open the store's secrets. */
    assert_int_equal(gh_kms_local_create(f->path, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "refusing to overwrite"));
}

/* Table: modes that open and modes refused with the file and its mode named. */
static void test_modes(void **state)
{
    static const struct {
        mode_t mode;
        bool ok;
    } cases[] = {
        {0600, true}, {0400, true}, {0640, false}, {0644, false}, {0604, false}, {0660, false},
    };
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gh_err err = {0};
        struct gh_kms *k;
        char want[16];

        assert_int_equal(chmod(f->path, cases[i].mode), 0);
        k = gh_kms_local_open(f->path, &err);
        if (cases[i].ok) {
            if (k == NULL) fail_msg("mode %04o refused: %s", (unsigned)cases[i].mode, err.msg);
            k->ops->close(k);
            continue;
        }
        if (k != NULL) fail_msg("mode %04o accepted", (unsigned)cases[i].mode);
        snprintf(want, sizeof(want), "mode %04o", (unsigned)cases[i].mode);
        assert_non_null(strstr(err.msg, want));
        assert_non_null(strstr(err.msg, f->path));
        assert_non_null(strstr(err.msg, "0600"));
    }
    chmod(f->path, 0600);
}

/* A symbolic link to the file is refused, and the message says so rather
 * than O_NOFOLLOW's "Too many levels of symbolic links". */
static void test_symlink_refused(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    char link[600];

    snprintf(link, sizeof(link), "%s.link", f->path);
    assert_int_equal(symlink(f->path, link), 0);
    assert_null(gh_kms_local_open(link, &err));
    assert_non_null(strstr(err.msg, "is a symbolic link: name the file itself"));
    unlink(link);
}

static void test_wrap_unwrap(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    uint8_t dek[GH_KMS_DEK_LEN], back[GH_KMS_DEK_LEN], blob[GH_KMS_BLOB_MAX];
    size_t len = 0;
    uint32_t v = 0;
    struct gh_kms *k = gh_kms_local_open(f->path, &err);

    assert_non_null(k);
    assert_string_equal(k->ops->name, "local");
    assert_int_equal(k->ops->current(k, &v, &err), GH_OK);
    assert_int_equal(v, 1);
    memset(dek, 0x5a, sizeof(dek));
    assert_int_equal(k->ops->wrap(k, 1, dek, blob, sizeof(blob), &len, &err), GH_OK);
    assert_int_equal(len, 60);
    assert_null(memmem(blob, len, dek, 8));
    assert_int_equal(k->ops->unwrap(k, 1, blob, len, back, &err), GH_OK);
    assert_memory_equal(back, dek, sizeof(dek));
    /* Another version, a changed byte, a wrong size: refused. */
    assert_int_equal(k->ops->unwrap(k, 2, blob, len, back, &err), GH_ERROR);
    blob[20] ^= 1;
    assert_int_equal(k->ops->unwrap(k, 1, blob, len, back, &err), GH_ERROR);
    assert_int_equal(k->ops->unwrap(k, 1, blob, len - 1, back, &err), GH_ERROR);
    assert_int_equal(k->ops->wrap(k, 7, dek, blob, sizeof(blob), &len, &err), GH_ERROR);
    k->ops->close(k);
}

static void test_versions(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    uint8_t dek[GH_KMS_DEK_LEN], back[GH_KMS_DEK_LEN], blob[GH_KMS_BLOB_MAX],
        blob1[GH_KMS_BLOB_MAX];
    size_t len = 0, len1 = 0;
    uint32_t v = 0;
    struct gh_kms *a = gh_kms_local_open(f->path, &err);
    struct gh_kms *b = gh_kms_local_open(f->path, &err); /* another process, say */
    struct stat st;

    assert_non_null(a);
    assert_non_null(b);
    memset(dek, 0x33, sizeof(dek));
    assert_int_equal(a->ops->wrap(a, 1, dek, blob1, sizeof(blob1), &len1, &err), GH_OK);
    /* Only the next version can be made; making it twice is a resume. */
    assert_int_equal(a->ops->create_version(a, 3, &err), GH_ERROR);
    assert_int_equal(a->ops->create_version(a, 2, &err), GH_OK);
    assert_int_equal(a->ops->create_version(a, 2, &err), GH_OK);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(a->ops->current(a, &v, &err), GH_OK);
    assert_int_equal(v, 2);
    assert_int_equal(a->ops->wrap(a, 2, dek, blob, sizeof(blob), &len, &err), GH_OK);
    /* <b> read the file before version 2 existed: it looks again once. */
    assert_int_equal(b->ops->unwrap(b, 2, blob, len, back, &err), GH_OK);
    assert_memory_equal(back, dek, sizeof(dek));
    assert_int_equal(b->ops->current(b, &v, &err), GH_OK);
    assert_int_equal(v, 2);
    /* The old version still opens what it wrapped. */
    assert_int_equal(b->ops->unwrap(b, 1, blob1, len1, back, &err), GH_OK);
    a->ops->close(a);
    b->ops->close(b);
}

static void test_bad_files(void **state)
{
    static const char *const bodies[] = {
        "",
        "gatehouse-master v1 short\n",
        "gatehouse-master v0 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "gatehouse-master v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        "gatehouse-master v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "something else\n",
    };
    struct fixture *f = *state;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct gh_err err = {0};
        FILE *fp = fopen(f->path, "w");
        assert_non_null(fp);
        fputs(bodies[i], fp);
        fclose(fp);
        chmod(f->path, 0600);
        if (gh_kms_local_open(f->path, &err) != NULL) fail_msg("file %zu accepted", i);
        assert_non_null(strstr(err.msg, f->path));
    }
    /* A comment and a good line are fine. */
    {
        struct gh_err err = {0};
        struct gh_kms *k;
        FILE *fp = fopen(f->path, "w");
        fputs("# made by hand\ngatehouse-master v4 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
              fp);
        fclose(fp);
        k = gh_kms_local_open(f->path, &err);
        assert_non_null(k);
        k->ops->close(k);
    }
    unlink(f->path);
    {
        struct gh_err err = {0};
        assert_null(gh_kms_local_open(f->path, &err));
        assert_non_null(strstr(err.msg, "secrets init"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrap_unwrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
