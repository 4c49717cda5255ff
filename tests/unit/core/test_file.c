/* Tests of durable files (src/core/file.c): atomic writes replace a file
 * whole with the mode asked and leave no temporary behind; SHA-256 of a
 * file against FIPS 180-2's "abc" vector and an empty file; errors name the
 * file and the caller's <what>. */
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

#include "core/file.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/gh_file_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void read_all(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    assert_non_null(f);
    n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

static void test_write_atomic_replaces_whole(void **state)
{
    char path[128], tmp[160], got[64];
    struct gh_err err = {0};
    struct stat sb;

    snprintf(path, sizeof(path), "%s/m.json", dir);
    assert_int_equal(gh_file_write_atomic("test", path, "first", 5, 0600, &err), GH_OK);
    assert_int_equal(gh_file_write_atomic("test", path, "second!", 7, 0600, &err), GH_OK);
    read_all(path, got, sizeof(got));
    assert_string_equal(got, "second!");
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0);
    assert_int_equal(gh_file_fsync("test", path, &err), GH_OK);
    assert_int_equal(gh_file_fsync_dir("test", dir, &err), GH_OK);
}

static void test_write_atomic_error_names_file(void **state)
{
    struct gh_err err = {0};
    char path[128];

    snprintf(path, sizeof(path), "%s/no/such/dir/x", dir);
    assert_int_equal(gh_file_write_atomic("backup", path, "x", 1, 0600, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "backup: "));
    assert_non_null(strstr(err.msg, "/no/such/dir/x"));
}

static void test_sha256_vectors(void **state)
{
    char path[128], hex[65];
    struct gh_err err = {0};
    uint64_t size = 99;

    snprintf(path, sizeof(path), "%s/abc", dir);
    assert_int_equal(gh_file_write_atomic("test", path, "abc", 3, 0600, &err), GH_OK);
    assert_int_equal(gh_file_sha256("test", path, hex, &size, &err), GH_OK);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(size, 3);
    snprintf(path, sizeof(path), "%s/empty", dir);
    assert_int_equal(gh_file_write_atomic("test", path, "", 0, 0600, &err), GH_OK);
    assert_int_equal(gh_file_sha256("test", path, hex, &size, &err), GH_OK);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(size, 0);
    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(gh_file_sha256("drill", path, hex, &size, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "drill: "));
}

static void test_make_dir(void **state)
{
    char path[128];
    struct gh_err err = {0};
    struct stat sb;

    snprintf(path, sizeof(path), "%s/sub", dir);
    assert_int_equal(gh_file_make_dir("test", path, &err), GH_OK);
    assert_int_equal(gh_file_make_dir("test", path, &err), GH_OK); /* exists: fine */
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_atomic_replaces_whole),
        cmocka_unit_test(test_write_atomic_error_names_file),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_make_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
