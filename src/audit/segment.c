/* Archive segment files: streaming zstd writer and reader (segment.h). */
#include "audit/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "audit/chain.h"
#include "audit/event.h"

#define LINE_HEAD "{\"event\":"
#define LINE_MID  ",\"hash\":\""
#define LINE_TAIL "\"}"
#define HEAD_LEN  (sizeof(LINE_HEAD) - 1)
#define MID_LEN   (sizeof(LINE_MID) - 1)
#define TAIL_LEN  (sizeof(LINE_TAIL) - 1)
/* The longest line: a canonical body and the fixed parts; longer is not ours. */
#define SEG_LINE_MAX (HEAD_LEN + GH_AUDIT_CANON_MAX + MID_LEN + 64 + TAIL_LEN + 1)
#define LEVEL        3 /* zstd's default: about 10x on audit JSON, fast enough for the writer */

struct gh_audit_segment_writer {
    int fd;
    char *path;
    ZSTD_CCtx *cctx;
    EVP_MD_CTX *sha;
    void *out;
    size_t out_cap;
};

static void hex32(const unsigned char *d, char out[65])
{
    gh_audit_hex(d, out);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return GH_ERROR;
        c += w;
        n -= (size_t)w;
    }
    return GH_OK;
}

static void writer_free(struct gh_audit_segment_writer *w)
{
    if (w->fd >= 0) close(w->fd);
    ZSTD_freeCCtx(w->cctx);
    EVP_MD_CTX_free(w->sha);
    free(w->out);
    free(w->path);
    free(w);
}

struct gh_audit_segment_writer *gh_audit_segment_create(const char *path, struct gh_err *err)
{
    struct gh_audit_segment_writer *w = calloc(1, sizeof(*w));

    if (w == NULL) goto oom;
    w->fd = -1;
    w->out_cap = ZSTD_CStreamOutSize();
    w->out = malloc(w->out_cap);
    w->path = strdup(path);
    w->cctx = ZSTD_createCCtx();
    w->sha = EVP_MD_CTX_new();
    if (w->out == NULL || w->path == NULL || w->cctx == NULL || w->sha == NULL) goto oom;
    if (EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) != 1 ||
        ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, LEVEL)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1)))
        goto oom;
    w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        gh_err_set(err, NULL, 0, 0, "audit archive: %s: %s", path, strerror(errno));
        writer_free(w);
        return NULL;
    }
    return w;
oom:
    gh_err_set(err, NULL, 0, 0, "audit archive: out of memory");
    if (w) writer_free(w);
    return NULL;
}

/* Compresses <n> bytes (or flushes the frame's end when <end>) and writes
 * what zstd hands out, hashing it. */
static int feed(struct gh_audit_segment_writer *w, const void *p, size_t n, bool end,
                struct gh_err *err)
{
    ZSTD_inBuffer in = {p, n, 0};
    size_t left;

    do {
        ZSTD_outBuffer out = {w->out, w->out_cap, 0};
        left = ZSTD_compressStream2(w->cctx, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left))
            return gh_err_set(err, NULL, 0, 0, "audit archive: zstd: %s", ZSTD_getErrorName(left));
        if (out.pos > 0 && (EVP_DigestUpdate(w->sha, w->out, out.pos) != 1 ||
                            write_all(w->fd, w->out, out.pos) != GH_OK))
            return gh_err_set(err, NULL, 0, 0, "audit archive: %s: %s", w->path, strerror(errno));
    } while (end ? left != 0 : in.pos < in.size);
    return GH_OK;
}

int gh_audit_segment_add(struct gh_audit_segment_writer *w, const char *body, size_t len,
                         const char hash[65], struct gh_err *err)
{
    if (feed(w, LINE_HEAD, HEAD_LEN, false, err) != GH_OK ||
        feed(w, body, len, false, err) != GH_OK ||
        feed(w, LINE_MID, MID_LEN, false, err) != GH_OK || feed(w, hash, 64, false, err) != GH_OK ||
        feed(w, LINE_TAIL "\n", TAIL_LEN + 1, false, err) != GH_OK)
        return GH_ERROR;
    return GH_OK;
}

int gh_audit_segment_finish(struct gh_audit_segment_writer *w, char sha256[65], struct gh_err *err)
{
    unsigned char d[32];
    unsigned dl = 0;
    int rc = feed(w, NULL, 0, true, err);

    if (rc == GH_OK && EVP_DigestFinal_ex(w->sha, d, &dl) != 1)
        rc = gh_err_set(err, NULL, 0, 0, "audit archive: sha256 failed");
    /* The file must be on disk before the store forgets its events. */
    if (rc == GH_OK && fsync(w->fd) != 0)
        rc = gh_err_set(err, NULL, 0, 0, "audit archive: fsync %s: %s", w->path, strerror(errno));
    if (rc == GH_OK && close(w->fd) != 0)
        rc = gh_err_set(err, NULL, 0, 0, "audit archive: close %s: %s", w->path, strerror(errno));
    w->fd = -1;
    if (rc == GH_OK) hex32(d, sha256);
    if (rc != GH_OK) unlink(w->path);
    writer_free(w);
    return rc;
}

void gh_audit_segment_abort(struct gh_audit_segment_writer *w)
{
    if (w == NULL) return;
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    unlink(w->path);
    writer_free(w);
}

/* ---- Reading ---------------------------------------------------------------------- */

struct reader {
    char *line;
    size_t n;      /* bytes in <line> */
    bool too_long; /* the current line passed SEG_LINE_MAX: it is refused at its end */
    uint64_t lineno;
    gh_audit_segment_line_cb cb;
    void *arg;
    int cb_rc; /* the first non-OK answer of <cb>: reading goes on only to hash */
};

/* One complete line (without its '\n'). */
static int line_done(struct reader *r, struct gh_err *err)
{
    const char *l = r->line;
    size_t n = r->n;
    char hash[65];

    r->lineno++;
    r->n = 0;
    if (r->too_long || n < HEAD_LEN + 2 + MID_LEN + 64 + TAIL_LEN ||
        memcmp(l, LINE_HEAD, HEAD_LEN) != 0 || memcmp(l + n - TAIL_LEN, LINE_TAIL, TAIL_LEN) != 0 ||
        memcmp(l + n - TAIL_LEN - 64 - MID_LEN, LINE_MID, MID_LEN) != 0) {
        gh_err_set(err, NULL, 0, 0, "line %llu is not {\"event\":...,\"hash\":\"...\"}",
                   (unsigned long long)r->lineno);
        r->too_long = false;
        return GH_AGAIN;
    }
    memcpy(hash, l + n - TAIL_LEN - 64, 64);
    hash[64] = '\0';
    if (r->cb_rc == GH_OK)
        r->cb_rc = r->cb(l + HEAD_LEN, n - HEAD_LEN - MID_LEN - 64 - TAIL_LEN, hash, r->arg);
    return GH_OK;
}

static int lines(struct reader *r, const char *p, size_t n, struct gh_err *err)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (r->n + take > SEG_LINE_MAX) {
            r->too_long = true;
        } else {
            memcpy(r->line + r->n, p, take);
            r->n += take;
        }
        p += take;
        n -= take;
        if (nl) {
            int rc = line_done(r, err);
            if (rc != GH_OK) return rc;
            p++;
            n--;
        }
    }
    return GH_OK;
}

int gh_audit_segment_read(const char *path, gh_audit_segment_line_cb cb, void *arg, char sha256[65],
                          struct gh_err *err)
{
    struct reader r = {.cb = cb, .arg = arg};
    size_t in_cap = ZSTD_DStreamInSize(), out_cap = ZSTD_DStreamOutSize(), last = 0;
    void *in = malloc(in_cap), *out = malloc(out_cap);
    ZSTD_DCtx *d = ZSTD_createDCtx();
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    unsigned char dg[32];
    unsigned dl = 0;
    int fd = -1, rc = GH_OK, form = GH_OK; /* form: the first content problem */
    bool any = false;

    r.line = malloc(SEG_LINE_MAX);
    if (in == NULL || out == NULL || d == NULL || sha == NULL || r.line == NULL ||
        EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
        rc = gh_err_set(err, NULL, 0, 0, "audit archive: out of memory");
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        /* Missing is what a verifier reports as deleted; a file it may not
         * read (another user's) says nothing about the log. */
        rc = errno == ENOENT || errno == ENOTDIR ? GH_DECLINED : GH_ERROR;
        gh_err_set(err, NULL, 0, 0, "%s: %s", path, strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t got = read(fd, in, in_cap);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            rc = gh_err_set(err, NULL, 0, 0, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (got == 0) break;
        any = true;
        EVP_DigestUpdate(sha, in, (size_t)got);
        if (form != GH_OK) continue; /* only the hash from here on */
        ZSTD_inBuffer ib = {in, (size_t)got, 0};
        while (form == GH_OK && ib.pos < ib.size) {
            ZSTD_outBuffer ob = {out, out_cap, 0};
            last = ZSTD_decompressStream(d, &ob, &ib);
            if (ZSTD_isError(last)) {
                gh_err_set(err, NULL, 0, 0, "not a zstd stream (%s)", ZSTD_getErrorName(last));
                form = GH_AGAIN;
                break;
            }
            form = lines(&r, out, ob.pos, err);
        }
    }
    if (form == GH_OK && (last != 0 || !any)) {
        gh_err_set(err, NULL, 0, 0, "the zstd stream is truncated");
        form = GH_AGAIN;
    }
    if (form == GH_OK && r.n > 0) {
        gh_err_set(err, NULL, 0, 0, "the last line has no end");
        form = GH_AGAIN;
    }
    if (EVP_DigestFinal_ex(sha, dg, &dl) != 1) {
        rc = gh_err_set(err, NULL, 0, 0, "audit archive: sha256 failed");
        goto out;
    }
    hex32(dg, sha256);
    rc = form != GH_OK ? form : r.cb_rc;
out:
    if (fd >= 0) close(fd);
    ZSTD_freeDCtx(d);
    EVP_MD_CTX_free(sha);
    free(in);
    free(out);
    free(r.line);
    return rc;
}
