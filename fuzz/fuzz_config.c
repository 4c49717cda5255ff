/* libFuzzer harness for the configuration loader (gh_config_load_buffer,
 * src/config/config.c with config_values.c and pg_url.c): a config file is
 * hostile input, and every mistake in it must come back as an error with
 * its place, never as a crash, a leak or a hang. The Makefile links the
 * loader's sources, libyaml, libpq, OpenSSL and libcurl
 * (FUZZ_LIBS_fuzz_config).
 *
 * Every input (at most 64 KiB) is loaded as a file named "fuzz.yaml", twice.
 * Checks:
 * 1. a refused file leaves no config and an error that names "fuzz.yaml",
 *    has a non-empty, NUL-terminated message, and a line and column that
 *    are both given or both 0 and, when given, lie within the input; a
 *    secret read through file: or env: never shows up in the message;
 * 2. an accepted file has a listener, an upstream and a route, every route
 *    names the upstream it was resolved to, every address is resolved, the
 *    node id is valid and every warning is a C string placed in the input;
 * 3. the second load gives the same answer (the same error, or the same
 *    config hash and counts).
 * GH_FUZZ_PRINT=1 in the environment prints the first load's answer.
 *
 * The loader resolves host names (getaddrinfo), reads `file:` secrets and
 * `env:` variables, and checks that certificate, key, CA and JWKS files
 * exist. A fuzzer must not send DNS queries off the machine, nor open
 * whatever path it makes up (a FIFO blocks, a device may act on open), nor
 * depend on the machine's files and environment. So this file interposes:
 * - getaddrinfo, always: numeric addresses only ("localhost" is taken as
 *   127.0.0.1 or ::1); any other name fails with EAI_NONAME, as a name that
 *   does not resolve does;
 * - open, fopen, access, stat and getenv, while the loader runs: only a few
 *   virtual files (matched by their last path component, see vfiles[]) and
 *   variables (venv[]) exist; every other path is ENOENT and every other
 *   variable is unset. Outside the loader they are the C library's. One
 *   open is not the input's to choose and not caught: libcrypto reads its
 *   own openssl.cnf (fopen64, its path from secure_getenv) at its first
 *   use, a fixed file of the machine's. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_check.h"

#include "config/config.h"

/* With 64-bit file offsets asked for, the loader's open and stat calls are
 * open64 and stat64, which the interposers below would not see: the sandbox
 * would be gone without a word. */
#if defined(_FILE_OFFSET_BITS) && _FILE_OFFSET_BITS == 64
#error "fuzz_config interposes open and stat: build it without _FILE_OFFSET_BITS=64"
#endif

#define NAME      "fuzz.yaml"
#define MAX_INPUT (64 * 1024)

/* ---- The loader's view of the machine ------------------------------------ */

#define FILE_SECRET  "fuzz-file-secret-0123456789abcdef"
#define ENV_SECRET   "fuzz-env-secret-0123456789abcdef"
#define WHSEC_SECRET "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

static const struct vfile {
    const char *name;
    const char *content;
    mode_t type;
} vfiles[] = {
    {"secret.txt", FILE_SECRET "\n", S_IFREG},
    {"whsec.txt", WHSEC_SECRET "\r\n", S_IFREG},
    {"short.txt", "abc\n", S_IFREG},
    {"empty.txt", "", S_IFREG},
    {"cert.pem", "-----BEGIN CERTIFICATE-----\n", S_IFREG},
    {"key.pem", "-----BEGIN PRIVATE KEY-----\n", S_IFREG},
    {"ca.pem", "-----BEGIN CERTIFICATE-----\n", S_IFREG},
    {"jwks.json", "{\"keys\":[]}\n", S_IFREG},
    {"certs", NULL, S_IFDIR},
};

static const struct {
    const char *name, *value;
} venv[] = {
    {"GH_FUZZ_SECRET", ENV_SECRET},
    {"GH_FUZZ_SHORT", "abc"},
    {"GH_FUZZ_EMPTY", ""},
    {"GH_FUZZ_NODE", "gw-fuzz-1"},
    {"GH_FUZZ_BAD_NODE", "gw \x1b[31m\"1\""},
};

/* Secrets the loader may read, which no message may show. */
static const char *const secrets[] = {FILE_SECRET, ENV_SECRET, WHSEC_SECRET};

static int in_loader; /* the interposed calls below answer from the tables */

static void *real(const char *sym)
{
    void *f = dlsym(RTLD_NEXT, sym);

    if (f == NULL) {
        fprintf(stderr, "fuzz_config: no %s in the C library\n", sym);
        abort();
    }
    return f;
}

static const struct vfile *vfile_of(const char *path)
{
    const char *base = strrchr(path, '/');

    base = base ? base + 1 : path;
    for (size_t i = 0; i < sizeof(vfiles) / sizeof(vfiles[0]); i++)
        if (strcmp(base, vfiles[i].name) == 0) return &vfiles[i];
    return NULL;
}

/* A virtual file's content as a real descriptor (a memfd): fstat, read and
 * close on it work as on a file. */
static int vfile_fd(const struct vfile *v)
{
    size_t len = strlen(v->content);
    int fd = memfd_create(v->name, MFD_CLOEXEC);

    if (fd < 0) return -1;
    if (write(fd, v->content, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static int (*next)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    struct addrinfo h;

    if (next == NULL) next = real("getaddrinfo");
    memset(&h, 0, sizeof(h));
    if (hints != NULL) h = *hints;
    if (node != NULL && strcasecmp(node, "localhost") == 0)
        node = h.ai_family == AF_INET6 ? "::1" : "127.0.0.1";
    h.ai_flags |= AI_NUMERICHOST; /* a name fails with EAI_NONAME, without a query */
    return next(node, service, &h, res);
}

int open(const char *path, int flags, ...)
{
    static int (*next)(const char *, int, ...);
    const struct vfile *v;
    mode_t mode = 0;

    /* As glibc's __OPEN_NEEDS_MODE: O_TMPFILE includes O_DIRECTORY's bit,
     * so only all of its bits mean a mode follows. */
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (!in_loader) {
        if (next == NULL) next = real("open");
        return next(path, flags, mode);
    }
    v = vfile_of(path);
    if (v == NULL || (flags & O_ACCMODE) != O_RDONLY || (flags & O_CREAT)) {
        errno = v == NULL ? ENOENT : EACCES;
        return -1;
    }
    if (v->type == S_IFDIR) {
        errno = EISDIR;
        return -1;
    }
    return vfile_fd(v);
}

FILE *fopen(const char *restrict path, const char *restrict mode)
{
    static FILE *(*next)(const char *restrict, const char *restrict);
    const struct vfile *v;
    int fd;
    FILE *f;

    if (!in_loader) {
        if (next == NULL) next = real("fopen");
        return next(path, mode);
    }
    v = vfile_of(path);
    if (v == NULL || mode[0] != 'r' || strchr(mode, '+') != NULL) {
        errno = v == NULL ? ENOENT : EACCES;
        return NULL;
    }
    if (v->type == S_IFDIR) {
        errno = EISDIR;
        return NULL;
    }
    fd = vfile_fd(v);
    if (fd < 0) return NULL;
    f = fdopen(fd, "rb");
    if (f == NULL) close(fd);
    return f;
}

int access(const char *path, int mode)
{
    static int (*next)(const char *, int);

    if (!in_loader) {
        if (next == NULL) next = real("access");
        return next(path, mode);
    }
    if (vfile_of(path) == NULL) {
        errno = ENOENT;
        return -1;
    }
    if (mode & (W_OK | X_OK)) {
        errno = EACCES;
        return -1;
    }
    return 0;
}

int stat(const char *restrict path, struct stat *restrict st)
{
    static int (*next)(const char *restrict, struct stat *restrict);
    const struct vfile *v;

    if (!in_loader) {
        if (next == NULL) next = real("stat");
        return next(path, st);
    }
    v = vfile_of(path);
    if (v == NULL) {
        errno = ENOENT;
        return -1;
    }
    memset(st, 0, sizeof(*st));
    st->st_mode = v->type | (v->type == S_IFDIR ? 0755 : 0600);
    st->st_nlink = 1;
    st->st_size = v->content ? (off_t)strlen(v->content) : 4096;
    return 0;
}

char *getenv(const char *name)
{
    static char *(*next)(const char *);

    if (!in_loader) {
        if (next == NULL) next = real("getenv");
        return next(name);
    }
    for (size_t i = 0; i < sizeof(venv) / sizeof(venv[0]); i++)
        if (strcmp(name, venv[i].name) == 0) return (char *)venv[i].value;
    return NULL;
}

/* ---- Checks -------------------------------------------------------------- */

/* Lines a position may name: libyaml counts "\n", "\r", "\r\n", NEL, LS and
 * PS as breaks (so at most one per '\n', '\r', 0xC2 or 0xE2 byte in UTF-8,
 * one per two bytes in UTF-16); a mark may sit after the last one, and the
 * end of a file without a final break is put on a line of its own (libyaml
 * breaks the line before STREAM-END): one more. */
static size_t max_line(const uint8_t *data, size_t size)
{
    size_t n = 2;

    if (size >= 2 && ((data[0] == 0xff && data[1] == 0xfe) || (data[0] == 0xfe && data[1] == 0xff)))
        return size / 2 + 2;
    for (size_t i = 0; i < size; i++)
        n += data[i] == '\n' || data[i] == '\r' || data[i] == 0xc2 || data[i] == 0xe2;
    return n;
}

static void check_pos(int line, int col, const uint8_t *data, size_t size)
{
    CHECK(line >= 0 && col >= 0);
    CHECK((line > 0) == (col > 0));
    if (line == 0) return;
    CHECK((size_t)line <= max_line(data, size));
    CHECK((size_t)col <= size + 1);
}

static bool input_has(const uint8_t *data, size_t size, const char *s)
{
    return memmem(data, size, s, strlen(s)) != NULL;
}

static void check_error(const struct gh_err *err, const uint8_t *data, size_t size)
{
    CHECK(strnlen(err->file, sizeof(err->file)) < sizeof(err->file));
    CHECK(strcmp(err->file, NAME) == 0);
    CHECK(strnlen(err->msg, sizeof(err->msg)) < sizeof(err->msg));
    CHECK(err->msg[0] != '\0');
    check_pos(err->line, err->col, data, size);
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        CHECK(input_has(data, size, secrets[i]) || strstr(err->msg, secrets[i]) == NULL);
}

static void check_config(const struct gh_config *cfg, const uint8_t *data, size_t size)
{
    CHECK(strcmp(cfg->file, NAME) == 0);
    CHECK(cfg->workers >= 1 && cfg->workers <= 1024);
    CHECK(cfg->nlistens >= 1 && cfg->nupstreams >= 1 && cfg->nroutes >= 1);
    for (size_t i = 0; i < cfg->nlistens; i++)
        CHECK(cfg->listens[i].addr.sslen > 0 && cfg->listens[i].addr.port >= 1);
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct gh_config_upstream *u = &cfg->upstreams[i];
        CHECK(u->name != NULL && u->nendpoints >= 1);
        for (size_t k = 0; k < u->nendpoints; k++)
            CHECK(u->endpoints[k].sslen > 0 && u->endpoints[k].host[0] != '\0');
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct gh_config_route *r = &cfg->routes[i];
        CHECK(r->name != NULL && r->path != NULL && r->path[0] == '/');
        CHECK(r->upstream_index < cfg->nupstreams);
        CHECK(strcmp(cfg->upstreams[r->upstream_index].name, r->upstream) == 0);
    }
    CHECK(gh_config_valid_node_id(cfg->node.id));
    for (size_t i = 0; i < cfg->nsecret_refs; i++)
        CHECK(cfg->secret_refs[i].field != NULL && cfg->secret_refs[i].name[0] != '\0');
    for (size_t i = 0; i < cfg->nwarnings; i++) {
        const struct gh_config_warning *w = &cfg->warnings[i];
        CHECK(strnlen(w->msg, sizeof(w->msg)) < sizeof(w->msg));
        check_pos(w->pos.line, w->pos.col, data, size);
    }
}

static int load(const uint8_t *data, size_t size, struct gh_config **cfg, struct gh_err *err)
{
    int rc;

    memset(err, 'e', sizeof(*err));
    *cfg = NULL;
    in_loader = 1;
    rc = gh_config_load_buffer(NAME, (const char *)data, size, cfg, err);
    in_loader = 0;
    CHECK(rc == GH_OK || rc == GH_ERROR);
    CHECK((rc == GH_OK) == (*cfg != NULL));
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gh_config *a, *b;
    struct gh_err ea, eb;
    int rc;

    /* Real files are a few KiB (and capped at 16 MiB); more only slows. */
    if (size > MAX_INPUT) return 0;
    rc = load(data, size, &a, &ea);
    /* GH_FUZZ_PRINT=1 shows the loader's answer, to read a reproducer by. */
    if (getenv("GH_FUZZ_PRINT") != NULL) {
        char buf[1024];
        fprintf(stderr, "fuzz_config: %s\n",
                rc == GH_OK ? "loaded" : gh_err_format(&ea, buf, sizeof(buf)));
    }
    if (rc == GH_OK)
        check_config(a, data, size);
    else
        check_error(&ea, data, size);

    /* Deterministic: nothing of one load leaks into the next. */
    CHECK(load(data, size, &b, &eb) == rc);
    if (rc == GH_OK) {
        CHECK(memcmp(a->sha256, b->sha256, sizeof(a->sha256)) == 0);
        CHECK(a->nlistens == b->nlistens && a->nupstreams == b->nupstreams &&
              a->nroutes == b->nroutes && a->nplans == b->nplans && a->nwarnings == b->nwarnings &&
              a->nsecret_refs == b->nsecret_refs);
    } else {
        CHECK(ea.line == eb.line && ea.col == eb.col);
        CHECK(strcmp(ea.msg, eb.msg) == 0);
    }
    gh_config_free(a);
    gh_config_free(b);
    return 0;
}
