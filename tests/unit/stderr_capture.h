/* What gh_log writes (to stderr) while a test runs some code, read back
 * for the test to look at: stderr goes to a temporary file between
 * gh_test_stderr_begin() and gh_test_stderr_end(), which puts it back and
 * copies the file into <out> (NUL-ended, cut at <cap> - 1 bytes).
 *
 * Header-only: each unit test is one translation unit (Makefile). */
#ifndef GH_TESTS_STDERR_CAPTURE_H
#define GH_TESTS_STDERR_CAPTURE_H

#include <stdio.h>
#include <unistd.h>

static FILE *gh_test_stderr_begin(int *saved)
{
    FILE *tmp = tmpfile();

    assert_non_null(tmp);
    *saved = dup(STDERR_FILENO);
    assert_true(*saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    return tmp;
}

static void gh_test_stderr_end(FILE *tmp, int saved, char *out, size_t cap)
{
    size_t n;

    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(tmp);
    n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
}

#endif
