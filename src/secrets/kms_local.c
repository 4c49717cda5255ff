/* The `local` KMS provider: master keys in a file beside the store, one
 * line per version:
 *
 *   gatehouse-master v<N> <base64 of 32 random bytes>
 *
 * (lines starting with '#' and empty lines are skipped). The current version
 * is the highest. Data keys are wrapped with AES-256-GCM under the master
 * key: blob = nonce (12) | wrapped key (32) | tag (16), additional data
 * "gatehouse-kek-v1" NUL version (4 bytes big endian), so a blob does not
 * open under another version. The file is refused unless only its owner can
 * read it: anyone who reads it reads every secret. A new version is
 * appended by writing a whole new file (0600, fsync) and renaming it over
 * the old one, then fsyncing the folder, under an flock on "<file>.lock": a
 * crash leaves the old file or the new one, never half of one. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "secrets/envelope.h"
#include "core/file.h"
#include "secrets/kms.h"

#define MAGIC        "gatehouse-master"
#define FILE_MAX     (1u << 20) /* about 15,000 versions: far beyond any use */
#define VERSIONS_MAX 10000
#define B64_LEN      44 /* base64 of 32 bytes, with one '=' */
#define KEK_AAD      "gatehouse-kek-v1"
#define BLOB_LEN     (GH_ENVELOPE_NONCE_LEN + GH_KMS_DEK_LEN + GH_ENVELOPE_TAG_LEN)

struct master_key {
    uint32_t version;
    uint8_t key[32];
};

struct kms_local {
    struct gh_kms base; /* first */
    char *path;
    pthread_mutex_t lock; /* keys, nkeys and seen */
    struct master_key *keys;
    size_t nkeys;
    struct stat seen; /* the file as last read: a change means another process rotated */
};

static void keys_free(struct master_key *keys, size_t n)
{
    if (keys != NULL) OPENSSL_cleanse(keys, n * sizeof(*keys));
    free(keys);
}

static int mode_error(const char *path, mode_t mode, struct gh_err *err)
{
    return gh_err_set(err, NULL, 0, 0,
                      "master key file %s has mode %04o; it must be 0600 or stricter (no access "
                      "for group or others): chmod 600 %s",
                      path, (unsigned)(mode & 07777), path);
}

/* Parses one "gatehouse-master vN BASE64" line into <k>. */
static int parse_line(const char *line, size_t len, struct master_key *k)
{
    char vbuf[16], b64[B64_LEN + 1];
    uint8_t raw[36];
    const char *p = line, *end = line + len, *sp;
    unsigned long v;
    char *vend;

    if (len < sizeof(MAGIC) + 1 || memcmp(p, MAGIC " v", sizeof(MAGIC) + 1) != 0) return GH_ERROR;
    p += sizeof(MAGIC) + 1;
    sp = memchr(p, ' ', (size_t)(end - p));
    if (sp == NULL || sp == p || (size_t)(sp - p) >= sizeof(vbuf)) return GH_ERROR;
    memcpy(vbuf, p, (size_t)(sp - p));
    vbuf[sp - p] = '\0';
    errno = 0;
    v = strtoul(vbuf, &vend, 10);
    if (errno != 0 || *vend != '\0' || v == 0 || v > INT32_MAX || vbuf[0] == '0') return GH_ERROR;
    p = sp + 1;
    while (end > p && (end[-1] == ' ' || end[-1] == '\r'))
        end--;
    if (end - p != B64_LEN || end[-1] != '=' || end[-2] == '=') return GH_ERROR;
    memcpy(b64, p, B64_LEN);
    b64[B64_LEN] = '\0';
    if (EVP_DecodeBlock(raw, (const unsigned char *)b64, B64_LEN) != 33) {
        OPENSSL_cleanse(raw, sizeof(raw));
        OPENSSL_cleanse(b64, sizeof(b64));
        return GH_ERROR;
    }
    k->version = (uint32_t)v;
    memcpy(k->key, raw, 32);
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(b64, sizeof(b64));
    return GH_OK;
}

/* Reads <path> into a new key array. Refuses a file that group or others
 * may read or write, a symbolic link, and any line it does not understand
 * (a damaged file is an error, never a silently shorter key list). */
static int read_keys(const char *path, struct master_key **out, size_t *nout, struct stat *stp,
                     struct gh_err *err)
{
    struct master_key *keys = NULL;
    size_t n = 0, len = 0, lineno = 0;
    char *buf = NULL;
    int fd, rc = GH_ERROR;
    struct stat st;

    *out = NULL;
    *nout = 0;
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return gh_err_set(err, NULL, 0, 0,
                              "master key file %s does not exist (create it with `gatehouse "
                              "secrets init`)",
                              path);
        /* O_NOFOLLOW's refusal of a symbolic link reads "Too many levels of
         * symbolic links": say what the rule is (docs/secrets.md). */
        if (errno == ELOOP)
            return gh_err_set(err, NULL, 0, 0,
                              "master key file %s is a symbolic link: name the file itself "
                              "(a link could be pointed elsewhere)",
                              path);
        return gh_err_set(err, NULL, 0, 0, "master key file %s: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        gh_err_set(err, NULL, 0, 0, "master key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        gh_err_set(err, NULL, 0, 0, "master key file %s is not a regular file", path);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        mode_error(path, st.st_mode, err);
        goto out;
    }
    if (st.st_size <= 0 || (uint64_t)st.st_size > FILE_MAX) {
        gh_err_set(err, NULL, 0, 0, "master key file %s: empty or larger than 1 MiB", path);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    keys = calloc(VERSIONS_MAX, sizeof(*keys));
    if (buf == NULL || keys == NULL) {
        gh_err_set(err, NULL, 0, 0, "out of memory");
        goto out;
    }
    while (len < (size_t)st.st_size) {
        ssize_t got = read(fd, buf + len, (size_t)st.st_size - len);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            gh_err_set(err, NULL, 0, 0, "master key file %s: read failed", path);
            goto out;
        }
        len += (size_t)got;
    }
    buf[len] = '\0';
    for (char *line = buf; line < buf + len;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(buf + len - line);
        lineno++;
        if (ll > 0 && line[0] != '#' && !(ll == 1 && line[0] == '\r')) {
            if (n == VERSIONS_MAX || parse_line(line, ll, &keys[n]) != GH_OK) {
                gh_err_set(err, NULL, 0, 0,
                           "master key file %s:%zu: expected \"" MAGIC " v<N> <base64 of 32 "
                           "bytes>\"",
                           path, lineno);
                goto out;
            }
            for (size_t i = 0; i < n; i++)
                if (keys[i].version == keys[n].version) {
                    gh_err_set(err, NULL, 0, 0, "master key file %s:%zu: version %" PRIu32 " twice",
                               path, lineno, keys[n].version);
                    goto out;
                }
            n++;
        }
        line += ll + 1;
    }
    if (n == 0) {
        gh_err_set(err, NULL, 0, 0, "master key file %s holds no key", path);
        goto out;
    }
    *out = keys;
    *nout = n;
    *stp = st;
    keys = NULL;
    rc = GH_OK;
out:
    if (buf != NULL) OPENSSL_cleanse(buf, len);
    free(buf);
    keys_free(keys, VERSIONS_MAX);
    close(fd);
    return rc;
}

/* Re-reads the file into <k> (locked). On failure <k> keeps what it had. */
static int reload(struct kms_local *k, struct gh_err *err)
{
    struct master_key *keys;
    size_t n;
    struct stat st;

    if (read_keys(k->path, &keys, &n, &st, err) != GH_OK) return GH_ERROR;
    keys_free(k->keys, VERSIONS_MAX);
    k->keys = keys;
    k->nkeys = n;
    k->seen = st;
    return GH_OK;
}

static const struct master_key *find(const struct kms_local *k, uint32_t version)
{
    for (size_t i = 0; i < k->nkeys; i++)
        if (k->keys[i].version == version) return &k->keys[i];
    return NULL;
}

static uint32_t highest(const struct kms_local *k)
{
    uint32_t v = 0;

    for (size_t i = 0; i < k->nkeys; i++)
        if (k->keys[i].version > v) v = k->keys[i].version;
    return v;
}

static size_t kek_aad(uint8_t aad[sizeof(KEK_AAD) + 4], uint32_t version)
{
    memcpy(aad, KEK_AAD, sizeof(KEK_AAD));
    aad[sizeof(KEK_AAD)] = (uint8_t)(version >> 24);
    aad[sizeof(KEK_AAD) + 1] = (uint8_t)(version >> 16);
    aad[sizeof(KEK_AAD) + 2] = (uint8_t)(version >> 8);
    aad[sizeof(KEK_AAD) + 3] = (uint8_t)version;
    return sizeof(KEK_AAD) + 4;
}

static int local_wrap(struct gh_kms *base, uint32_t version, const uint8_t dek[GH_KMS_DEK_LEN],
                      uint8_t *blob, size_t cap, size_t *len, struct gh_err *err)
{
    struct kms_local *k = (struct kms_local *)base;
    uint8_t aad[sizeof(KEK_AAD) + 4];
    const struct master_key *mk;
    int rc = GH_ERROR;

    *len = 0;
    if (cap < BLOB_LEN) return gh_err_set(err, NULL, 0, 0, "kms local: blob buffer too small");
    pthread_mutex_lock(&k->lock);
    mk = find(k, version);
    if (mk == NULL && reload(k, err) == GH_OK) mk = find(k, version);
    if (mk == NULL) {
        gh_err_set(err, NULL, 0, 0, "master key version %" PRIu32 " is not in %s", version,
                   k->path);
        goto out;
    }
    if (RAND_bytes(blob, GH_ENVELOPE_NONCE_LEN) != 1) {
        gh_err_set(err, NULL, 0, 0, "kms local: the CSPRNG failed");
        goto out;
    }
    rc = gh_envelope_aead_seal(mk->key, blob, aad, kek_aad(aad, version), dek, GH_KMS_DEK_LEN,
                               blob + GH_ENVELOPE_NONCE_LEN,
                               blob + GH_ENVELOPE_NONCE_LEN + GH_KMS_DEK_LEN, err);
    if (rc == GH_OK) *len = BLOB_LEN;
out:
    pthread_mutex_unlock(&k->lock);
    return rc;
}

static int local_unwrap(struct gh_kms *base, uint32_t version, const uint8_t *blob, size_t len,
                        uint8_t dek[GH_KMS_DEK_LEN], struct gh_err *err)
{
    struct kms_local *k = (struct kms_local *)base;
    uint8_t aad[sizeof(KEK_AAD) + 4];
    const struct master_key *mk;
    int rc = GH_ERROR;

    if (len != BLOB_LEN)
        return gh_err_set(err, NULL, 0, 0, "kms local: a wrapped data key has the wrong size");
    pthread_mutex_lock(&k->lock);
    mk = find(k, version);
    /* Another process (secrets rotate-master) may have added the version
     * since this handle read the file: look once more. */
    if (mk == NULL && reload(k, err) == GH_OK) mk = find(k, version);
    if (mk == NULL) {
        gh_err_set(err, NULL, 0, 0, "master key version %" PRIu32 " is not in %s", version,
                   k->path);
        goto out;
    }
    rc = gh_envelope_aead_open(mk->key, blob, aad, kek_aad(aad, version),
                               blob + GH_ENVELOPE_NONCE_LEN, GH_KMS_DEK_LEN,
                               blob + GH_ENVELOPE_NONCE_LEN + GH_KMS_DEK_LEN, dek, err);
    if (rc != GH_OK)
        gh_err_set(err, NULL, 0, 0,
                   "a data key does not open under master key version %" PRIu32
                   " of %s (a wrong master key file, or a changed row)",
                   version, k->path);
out:
    pthread_mutex_unlock(&k->lock);
    return rc;
}

static int local_current(struct gh_kms *base, uint32_t *version, struct gh_err *err)
{
    struct kms_local *k = (struct kms_local *)base;
    struct stat st;
    int rc = GH_OK;

    pthread_mutex_lock(&k->lock);
    /* A rotation replaces the file (rename): a new inode or size says so. */
    if (stat(k->path, &st) == 0 && (st.st_ino != k->seen.st_ino || st.st_size != k->seen.st_size ||
                                    st.st_mtim.tv_sec != k->seen.st_mtim.tv_sec ||
                                    st.st_mtim.tv_nsec != k->seen.st_mtim.tv_nsec))
        rc = reload(k, err);
    *version = highest(k);
    pthread_mutex_unlock(&k->lock);
    return rc;
}

/* Writes <n> keys to <fd> as lines, then fsyncs it. */
static int write_keys(int fd, const char *path, const struct master_key *keys, size_t n,
                      struct gh_err *err)
{
    char line[sizeof(MAGIC) + 16 + B64_LEN + 8];
    int rc = GH_OK;

    for (size_t i = 0; i < n && rc == GH_OK; i++) {
        unsigned char b64[B64_LEN + 1];
        size_t ll, off = 0;

        EVP_EncodeBlock(b64, keys[i].key, 32);
        ll = (size_t)snprintf(line, sizeof(line), MAGIC " v%" PRIu32 " %s\n", keys[i].version,
                              (const char *)b64);
        OPENSSL_cleanse(b64, sizeof(b64));
        while (off < ll) {
            ssize_t w = write(fd, line + off, ll - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                rc = gh_err_set(err, NULL, 0, 0, "cannot write %s: %s", path, strerror(errno));
                break;
            }
            off += (size_t)w;
        }
        OPENSSL_cleanse(line, sizeof(line));
    }
    if (rc == GH_OK && fsync(fd) != 0)
        rc = gh_err_set(err, NULL, 0, 0, "fsync %s: %s", path, strerror(errno));
    return rc;
}

static int local_create_version(struct gh_kms *base, uint32_t version, struct gh_err *err)
{
    struct kms_local *k = (struct kms_local *)base;
    char tmp[PATH_MAX];
    struct master_key *keys = NULL;
    size_t nkeys = 0;
    int fd = -1, lockfd = -1, rc = GH_ERROR;

    pthread_mutex_lock(&k->lock);
    /* Another process may add a version at the same time (two operators):
     * an exclusive lock on "<path>.lock" makes read, check, write and
     * rename one step, so neither takes the other's file half-written. */
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.lock", k->path) >= sizeof(tmp)) {
        gh_err_set(err, NULL, 0, 0, "master key file path too long");
        goto out;
    }
    lockfd = open(tmp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX) != 0) {
        gh_err_set(err, NULL, 0, 0, "cannot lock %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (reload(k, err) != GH_OK) goto out;
    if (find(k, version) != NULL) { /* made before an interruption: resume */
        rc = GH_OK;
        goto out;
    }
    if (version != highest(k) + 1) {
        gh_err_set(err, NULL, 0, 0, "master key version %" PRIu32 " cannot follow version %" PRIu32,
                   version, highest(k));
        goto out;
    }
    nkeys = k->nkeys + 1;
    keys = calloc(nkeys, sizeof(*keys));
    if (keys == NULL) {
        gh_err_set(err, NULL, 0, 0, "out of memory");
        goto out;
    }
    memcpy(keys, k->keys, k->nkeys * sizeof(*keys));
    keys[k->nkeys].version = version;
    if (RAND_priv_bytes(keys[k->nkeys].key, 32) != 1) {
        gh_err_set(err, NULL, 0, 0, "kms local: the CSPRNG failed");
        goto out;
    }
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", k->path) >= sizeof(tmp)) {
        gh_err_set(err, NULL, 0, 0, "master key file path too long");
        goto out;
    }
    /* Under the lock, a leftover .new is from a rotation that died before
     * its rename: it was never the file in use, so it is replaced. */
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        gh_err_set(err, NULL, 0, 0, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    /* The new file keeps the old one's owner: a rotation run by root (sudo)
     * for a gateway that runs as its own user must not leave a file that
     * user cannot read. A caller who cannot give it away is refused. */
    {
        struct stat old;
        if (stat(k->path, &old) != 0 || ((old.st_uid != geteuid() || old.st_gid != getegid()) &&
                                         fchown(fd, old.st_uid, old.st_gid) != 0)) {
            gh_err_set(err, NULL, 0, 0,
                       "%s: cannot give the new master key file the old one's owner (%s); run "
                       "rotate-master as the gateway's user",
                       k->path, strerror(errno));
            unlink(tmp);
            goto out;
        }
    }
    if (write_keys(fd, tmp, keys, nkeys, err) != GH_OK) {
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, k->path) != 0) {
        gh_err_set(err, NULL, 0, 0, "cannot rename %s to %s: %s", tmp, k->path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (gh_file_fsync_parent("master key file", k->path, err) != GH_OK) goto out;
    rc = reload(k, err);
out:
    if (fd >= 0) close(fd);
    if (lockfd >= 0) close(lockfd); /* releases the lock */
    keys_free(keys, nkeys);
    pthread_mutex_unlock(&k->lock);
    return rc;
}

static void local_close(struct gh_kms *base)
{
    struct kms_local *k = (struct kms_local *)base;

    if (k == NULL) return;
    keys_free(k->keys, VERSIONS_MAX);
    pthread_mutex_destroy(&k->lock);
    free(k->path);
    free(k);
}

static const struct gh_kms_ops local_ops = {
    .name = "local",
    .wrap = local_wrap,
    .unwrap = local_unwrap,
    .current = local_current,
    .create_version = local_create_version,
    .close = local_close,
};

struct gh_kms *gh_kms_local_open(const char *path, struct gh_err *err)
{
    struct kms_local *k = calloc(1, sizeof(*k));

    if (k == NULL || (k->path = strdup(path)) == NULL) {
        free(k);
        gh_err_set(err, NULL, 0, 0, "out of memory");
        return NULL;
    }
    k->base.ops = &local_ops;
    pthread_mutex_init(&k->lock, NULL);
    if (reload(k, err) != GH_OK) {
        local_close(&k->base);
        return NULL;
    }
    return &k->base;
}

int gh_kms_local_create(const char *path, struct gh_err *err)
{
    struct master_key key = {.version = 1};
    int fd, rc;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return gh_err_set(err, NULL, 0, 0,
                              "master key file %s exists; refusing to overwrite it (its keys "
                              "open the store's secrets)",
                              path);
        return gh_err_set(err, NULL, 0, 0, "cannot create %s: %s", path, strerror(errno));
    }
    /* The umask may have taken bits away, never added any; make it exact. */
    if (fchmod(fd, 0600) != 0) {
        rc = gh_err_set(err, NULL, 0, 0, "chmod %s: %s", path, strerror(errno));
    } else if (RAND_priv_bytes(key.key, sizeof(key.key)) != 1) {
        rc = gh_err_set(err, NULL, 0, 0, "kms local: the CSPRNG failed");
    } else {
        rc = write_keys(fd, path, &key, 1, err);
    }
    OPENSSL_cleanse(&key, sizeof(key));
    close(fd);
    if (rc == GH_OK) rc = gh_file_fsync_parent("master key file", path, err);
    if (rc != GH_OK) unlink(path);
    return rc;
}
