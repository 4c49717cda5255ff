/* Durable files (file.h). */
#include "core/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int gh_file_fsync(const char *what, const char *path, struct gh_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? GH_OK : GH_ERROR;
    int saved = errno;

    if (fd >= 0) close(fd);
    if (rc != GH_OK) gh_err_set(err, NULL, 0, 0, "%s: fsync %s: %s", what, path, strerror(saved));
    return rc;
}

int gh_file_fsync_dir(const char *what, const char *path, struct gh_err *err)
{
    return gh_file_fsync(what, path, err);
}

int gh_file_fsync_parent(const char *what, const char *path, struct gh_err *err)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else if ((size_t)(slash - path) >= sizeof(dir))
        return gh_err_set(err, NULL, 0, 0, "%s: %s: path too long", what, path);
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    return gh_file_fsync_dir(what, dir, err);
}

int gh_file_make_dir(const char *what, const char *path, struct gh_err *err)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST) return GH_OK;
    return gh_err_set(err, NULL, 0, 0, "%s: mkdir %s: %s", what, path, strerror(errno));
}

int gh_file_write_atomic(const char *what, const char *path, const void *data, size_t len,
                         mode_t mode, struct gh_err *err)
{
    char tmp[PATH_MAX];
    const char *p = data;
    int fd, rc = GH_OK, saved = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return gh_err_set(err, NULL, 0, 0, "%s: %s: path too long", what, path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return gh_err_set(err, NULL, 0, 0, "%s: %s: %s", what, tmp, strerror(errno));
    for (size_t o = 0; rc == GH_OK && o < len;) {
        ssize_t w = write(fd, p + o, len - o);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            saved = w < 0 ? errno : EIO;
            rc = GH_ERROR;
        } else {
            o += (size_t)w;
        }
    }
    if (rc == GH_OK && fsync(fd) != 0) {
        saved = errno;
        rc = GH_ERROR;
    }
    if (close(fd) != 0 && rc == GH_OK) {
        saved = errno;
        rc = GH_ERROR;
    }
    if (rc == GH_OK && rename(tmp, path) != 0) {
        saved = errno;
        rc = GH_ERROR;
    }
    if (rc != GH_OK) {
        gh_err_set(err, NULL, 0, 0, "%s: %s: %s", what, path, strerror(saved));
        unlink(tmp);
    }
    return rc;
}

int gh_file_sha256(const char *what, const char *path, char hex[65], uint64_t *size,
                   struct gh_err *err)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char buf[65536], md[32];
    unsigned int mdlen = 0;
    uint64_t total = 0;
    EVP_MD_CTX *ctx = NULL;
    int fd, rc = GH_ERROR;
    ssize_t n;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return gh_err_set(err, NULL, 0, 0, "%s: %s: %s", what, path, strerror(errno));
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        gh_err_set(err, NULL, 0, 0, "%s: SHA-256 unavailable", what);
        goto out;
    }
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            gh_err_set(err, NULL, 0, 0, "%s: %s: %s", what, path, strerror(errno));
            goto out;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        total += (uint64_t)n;
    }
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != sizeof(md)) {
        gh_err_set(err, NULL, 0, 0, "%s: SHA-256 failed", what);
        goto out;
    }
    for (size_t i = 0; i < sizeof(md); i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    if (size != NULL) *size = total;
    rc = GH_OK;
out:
    EVP_MD_CTX_free(ctx);
    close(fd);
    return rc;
}
