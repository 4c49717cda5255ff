/* The archive half of the offline verifier (verify.h): every segment that
 * audit_archives records is read back, streaming, and checked against its
 * record and its manifest (the file's SHA-256, the range, the hashes at both
 * ends), line by line (each event's hash chained from the one before, seq
 * and chain as recorded), and its checkpoints' signatures. Files in the
 * archive directory that no record names are reported too. What it hands
 * back, the archived head of each chain, is where the hot part's check
 * starts (gh_audit_verify_from). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OPENSSL_SUPPRESS_DEPRECATED /* the low-level SHA-256, as verify.c */
#include <jansson.h>
#include <openssl/sha.h>

#include "audit/archive.h"
#include "audit/chain.h"
#include "audit/checkpoint.h"
#include "audit/event.h"
#include "audit/segment.h"
#include "audit/verify.h"

#define MAX_KEYS 256

struct extra {
    char chain[GH_STORE_AUDIT_CHAIN_SIZE];
    char file[300];
    uint64_t first, last;
    bool used;
};

struct av {
    const char *dir;
    struct gh_store_audit_key keys[MAX_KEYS];
    EVP_PKEY *pub[MAX_KEYS];
    size_t nkeys;
    struct gh_store_audit_archive *rows;
    size_t nrows, rows_cap;
    struct extra *extras;
    size_t nextras, extras_cap;
    /* the chain being checked */
    struct gh_audit_chain_report r;
    uint8_t prev[32];
    uint64_t next; /* the seq the next line must have */
    char last[65]; /* hash of the last line read */
    json_t *cps;   /* the manifest's checkpoints, by seq */
    size_t cp;     /* the next one to meet */
    const struct gh_store_audit_archive *row;
    /* the store's checkpoints of the segment's range (the manifest's are a
     * copy; both must name the archived events) */
    struct gh_store_audit_checkpoint *scps;
    size_t nscps, scps_cap, scp;
    struct gh_audit_event ev;
};

static void problem(struct av *v, enum gh_audit_problem p, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(struct av *v, enum gh_audit_problem p, uint64_t seq, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (v->r.problem != GH_AUDIT_INTACT) return;
    v->r.problem = p;
    v->r.seq = seq;
    n = snprintf(v->r.reason, sizeof(v->r.reason), "%s: ", gh_audit_problem_name(p));
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(v->r.reason))
        vsnprintf(v->r.reason + n, sizeof(v->r.reason) - (size_t)n, fmt, ap);
    va_end(ap);
}

static int collect(const struct gh_store_audit_archive *a, void *arg)
{
    struct av *v = arg;

    if (v->nrows == v->rows_cap) {
        size_t cap = v->rows_cap ? 2 * v->rows_cap : 64;
        void *p = realloc(v->rows, cap * sizeof(*v->rows));
        if (p == NULL) return GH_ERROR;
        v->rows = p;
        v->rows_cap = cap;
    }
    v->rows[v->nrows++] = *a;
    return GH_OK;
}

/* ---- Files no record names ---------------------------------------------------------- */

static bool recorded(const struct av *v, const char *rel)
{
    char man[300];

    for (size_t i = 0; i < v->nrows; i++) {
        if (strcmp(v->rows[i].file, rel) == 0) return true;
        gh_audit_archive_manifest_path(v->rows[i].file, man, sizeof(man));
        if (strcmp(man, rel) == 0) return true;
    }
    return false;
}

static int add_extra(struct av *v, const char *chain, const char *rel, uint64_t a, uint64_t b)
{
    struct extra *e;

    if (v->nextras == v->extras_cap) {
        size_t cap = v->extras_cap ? 2 * v->extras_cap : 16;
        void *p = realloc(v->extras, cap * sizeof(*v->extras));
        if (p == NULL) return GH_ERROR;
        v->extras = p;
        v->extras_cap = cap;
    }
    e = &v->extras[v->nextras++];
    memset(e, 0, sizeof(*e));
    snprintf(e->chain, sizeof(e->chain), "%s", chain);
    snprintf(e->file, sizeof(e->file), "%s", rel);
    e->first = a;
    e->last = b;
    return GH_OK;
}

/* Segments and manifests in the directory that no record names (of
 * <only>'s folder when set). Temporary files of a pass in progress are not
 * reported. */
static int find_extras(struct av *v, const char *only)
{
    DIR *d = opendir(v->dir);
    struct dirent *e;
    int rc = GH_OK;

    if (d == NULL) return GH_OK; /* no archive yet: the records say what is missing */
    while (rc == GH_OK && (e = readdir(d)) != NULL) {
        char chain[GH_STORE_AUDIT_CHAIN_SIZE], sub[4200];
        DIR *cd;
        struct dirent *f;

        if (!gh_audit_archive_chain_undir(e->d_name, chain)) continue;
        if (only != NULL && strcmp(chain, only) != 0) continue;
        snprintf(sub, sizeof(sub), "%s/%s", v->dir, e->d_name);
        if ((cd = opendir(sub)) == NULL) continue;
        while (rc == GH_OK && (f = readdir(cd)) != NULL) {
            size_t n = strlen(f->d_name);
            char seg[300], rel[300];
            uint64_t a, b;
            bool ours = gh_audit_archive_parse_name(f->d_name, &a, &b);
            if (!ours && n > 14 && strcmp(f->d_name + n - 14, ".manifest.json") == 0) {
                snprintf(seg, sizeof(seg), "%.*s.jsonl.zst", (int)(n - 14), f->d_name);
                ours = gh_audit_archive_parse_name(seg, &a, &b);
            }
            if (!ours) continue;
            snprintf(rel, sizeof(rel), "%s/%s", e->d_name, f->d_name);
            if (!recorded(v, rel)) rc = add_extra(v, chain, rel, a, b);
        }
        closedir(cd);
    }
    closedir(d);
    return rc;
}

/* ---- One segment ---------------------------------------------------------------------- */

static bool sig_ok(struct av *v, const struct gh_store_audit_checkpoint *cp)
{
    for (size_t i = 0; i < v->nkeys; i++)
        if (v->pub[i] != NULL && strcmp(v->keys[i].key_id, cp->key_id) == 0)
            return gh_audit_checkpoint_verify(v->pub[i], cp);
    return false;
}

/* The manifest's checkpoint <i> as a store checkpoint; false when malformed. */
static bool cp_at(struct av *v, size_t i, struct gh_store_audit_checkpoint *cp)
{
    json_t *o = json_array_get(v->cps, i);
    json_int_t seq = 0, t = 0;
    const char *hash = NULL, *kid = NULL, *sig = NULL;

    if (o == NULL || json_unpack(o, "{s:I,s:s,s:I,s:s,s:s}", "seq", &seq, "hash", &hash, "time_ms",
                                 &t, "key_id", &kid, "signature", &sig) != 0)
        return false;
    memset(cp, 0, sizeof(*cp));
    snprintf(cp->chain, sizeof(cp->chain), "%s", v->r.chain);
    cp->seq = (uint64_t)seq;
    cp->time_ms = t;
    return snprintf(cp->hash, sizeof(cp->hash), "%s", hash) == 64 &&
           snprintf(cp->key_id, sizeof(cp->key_id), "%s", kid) == 16 &&
           snprintf(cp->signature, sizeof(cp->signature), "%s", sig) == 88;
}

static int collect_cp(const struct gh_store_audit_checkpoint *cp, void *arg)
{
    struct av *v = arg;

    if (v->nscps == v->scps_cap) {
        size_t cap = v->scps_cap ? 2 * v->scps_cap : 64;
        void *p = realloc(v->scps, cap * sizeof(*v->scps));
        if (p == NULL) return GH_ERROR;
        v->scps = p;
        v->scps_cap = cap;
    }
    v->scps[v->nscps++] = *cp;
    return GH_OK;
}

static int on_line(const char *body, size_t len, const char hash[65], void *arg)
{
    struct av *v = arg;
    uint64_t seq = v->next;
    struct gh_store_audit_checkpoint cp;
    uint8_t h[32];
    char hex[65];
    SHA256_CTX sha;

    v->next++;
    v->r.events++;
    if (v->r.problem != GH_AUDIT_INTACT) return GH_OK; /* counting only, for the hash */
    if (seq > v->row->last_seq) {
        problem(v, GH_AUDIT_INSERTED, seq,
                "archive segment %s (seq %" PRIu64 "..%" PRIu64 ") has events after its last",
                v->row->file, v->row->first_seq, v->row->last_seq);
        return GH_OK;
    }
    if (gh_audit_canonical_parse(body, len, &v->ev) != GH_OK ||
        strcmp(v->ev.chain, v->r.chain) != 0 || v->ev.seq != seq) {
        problem(v, GH_AUDIT_CHANGED, seq,
                "in archive segment %s, the line of seq %" PRIu64 " is not that event of the chain",
                v->row->file, seq);
        return GH_OK;
    }
    SHA256_Init(&sha);
    SHA256_Update(&sha, v->prev, 32);
    SHA256_Update(&sha, body, len);
    SHA256_Final(h, &sha);
    gh_audit_hex(h, hex);
    if (memcmp(hex, hash, 65) != 0) {
        problem(v, GH_AUDIT_CHANGED, seq,
                "in archive segment %s, the hash of seq %" PRIu64 " does not match", v->row->file,
                seq);
        return GH_OK;
    }
    for (; v->cp < json_array_size(v->cps); v->cp++) {
        bool ok = cp_at(v, v->cp, &cp);
        if (ok && cp.seq > seq) break;
        if (!ok || cp.seq < seq || !sig_ok(v, &cp) || strcmp(cp.hash, hex) != 0) {
            problem(v, GH_AUDIT_BAD_SIGNATURE, ok ? cp.seq : seq,
                    "checkpoint %" PRIu64 " in the manifest of %s does not verify",
                    ok ? cp.seq : seq, v->row->file);
            break;
        }
        v->r.checkpoints++;
    }
    for (; v->scp < v->nscps && v->scps[v->scp].seq <= seq; v->scp++) {
        const struct gh_store_audit_checkpoint *c = &v->scps[v->scp];
        if (c->seq < seq || !sig_ok(v, c) || strcmp(c->hash, hex) != 0) {
            problem(v, GH_AUDIT_BAD_SIGNATURE, c->seq,
                    "checkpoint %" PRIu64 " in the store does not verify against archive "
                    "segment %s",
                    c->seq, v->row->file);
            break;
        }
    }
    memcpy(v->prev, h, 32);
    memcpy(v->last, hex, 65);
    return GH_OK;
}

/* The manifest of <a> against its record; NULL (and a problem) when it
 * does not match; NULL and GH_ERROR in *<rc> (with <err>) when it cannot be
 * read (not for being missing: that is a problem). */
static json_t *manifest(struct av *v, const struct gh_store_audit_archive *a, int *rc,
                        struct gh_err *err)
{
    char rel[300], path[4500], base[300];
    const char *slash = strrchr(a->file, '/');
    json_error_t je;
    json_t *m;
    const char *chain = "", *prev = "", *last = "", *file = "", *sha = "";
    json_int_t first = 0, lastseq = 0, events = 0;

    gh_audit_archive_manifest_path(a->file, rel, sizeof(rel));
    snprintf(path, sizeof(path), "%s/%s", v->dir, rel);
    snprintf(base, sizeof(base), "%s", slash ? slash + 1 : a->file);
    *rc = GH_OK;
    m = json_load_file(path, 0, &je);
    if (m == NULL) {
        bool gone = access(path, R_OK) != 0;
        if (gone && errno != ENOENT && errno != ENOTDIR) {
            /* Another user's file (an archive pass run as root): an error
             * of the verification, not a deletion. */
            *rc = gh_err_set(err, NULL, 0, 0, "cannot read the archive manifest %s: %s", path,
                             strerror(errno));
            return NULL;
        }
        problem(v, gone ? GH_AUDIT_DELETED : GH_AUDIT_CHANGED, a->first_seq,
                "the manifest %s of seq %" PRIu64 "..%" PRIu64 " is %s", rel, a->first_seq,
                a->last_seq, gone ? "missing" : "not JSON");
        return NULL;
    }
    if (json_unpack(m, "{s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:o}", "chain", &chain, "first_seq",
                    &first, "last_seq", &lastseq, "events", &events, "prev_hash", &prev,
                    "last_hash", &last, "file", &file, "file_sha256", &sha, "checkpoints",
                    &v->cps) != 0 ||
        !json_is_array(v->cps) || strcmp(chain, a->chain) != 0 || (uint64_t)first != a->first_seq ||
        (uint64_t)lastseq != a->last_seq || (uint64_t)events != a->events ||
        strcmp(prev, a->prev_hash) != 0 || strcmp(last, a->last_hash) != 0 ||
        strcmp(file, base) != 0 || strcmp(sha, a->file_sha256) != 0) {
        problem(v, GH_AUDIT_CHANGED, a->first_seq,
                "the manifest %s of seq %" PRIu64 "..%" PRIu64 " does not match the store's record",
                rel, a->first_seq, a->last_seq);
        json_decref(m);
        return NULL;
    }
    return m;
}

static int segment(struct av *v, struct gh_store *st, const struct gh_store_audit_archive *a,
                   struct gh_err *err)
{
    char path[4500], sha[65] = "", hex[65];
    struct gh_err why = {0};
    json_t *m;
    int rc;

    gh_audit_hex(v->prev, hex);
    if (a->first_seq != v->next) {
        problem(v, GH_AUDIT_DELETED, v->next,
                "no archive holds seq %" PRIu64 "..%" PRIu64 " (the next record starts there)",
                v->next, a->first_seq - 1);
        return GH_OK;
    }
    if (strcmp(a->prev_hash, hex) != 0) {
        problem(v, GH_AUDIT_CHANGED, a->first_seq,
                "the archive record of seq %" PRIu64 "..%" PRIu64
                " does not follow the one before it",
                a->first_seq, a->last_seq);
        return GH_OK;
    }
    m = manifest(v, a, &rc, err);
    if (m == NULL) return rc;
    v->nscps = 0;
    v->scp = 0;
    if (gh_store_audit_checkpoints_walk(st, a->chain, a->first_seq, a->last_seq, collect_cp, v,
                                        err) != GH_OK) {
        json_decref(m);
        return GH_ERROR;
    }
    v->cp = 0;
    v->row = a;
    snprintf(path, sizeof(path), "%s/%s", v->dir, a->file);
    rc = gh_audit_segment_read(path, on_line, v, sha, &why);
    if (rc == GH_DECLINED)
        problem(v, GH_AUDIT_DELETED, a->first_seq,
                "the archive segment %s of seq %" PRIu64 "..%" PRIu64 " is missing", a->file,
                a->first_seq, a->last_seq);
    else if (rc == GH_AGAIN || (rc == GH_OK && strcmp(sha, a->file_sha256) != 0))
        problem(v, GH_AUDIT_CHANGED, a->first_seq,
                "the archive segment %s of seq %" PRIu64 "..%" PRIu64 " was changed (%s)", a->file,
                a->first_seq, a->last_seq,
                rc == GH_AGAIN ? why.msg : "its SHA-256 is not the recorded one");
    else if (rc == GH_OK && (v->next != a->last_seq + 1 || strcmp(v->last, a->last_hash) != 0))
        problem(v, GH_AUDIT_DELETED, v->next,
                "the archive segment %s of seq %" PRIu64 "..%" PRIu64 " ends early", a->file,
                a->first_seq, a->last_seq);
    else if (rc != GH_OK)
        gh_err_set(err, NULL, 0, 0, "%s", why.msg);
    json_decref(m);
    v->cps = NULL;
    /* The record, not what was read, is where the next one continues. */
    gh_audit_unhex(a->last_hash, v->prev);
    v->next = a->last_seq + 1;
    return rc == GH_OK || rc == GH_DECLINED || rc == GH_AGAIN ? GH_OK : GH_ERROR;
}

/* ---- The whole archive -------------------------------------------------------------- */

static void chain_extras(struct av *v, const char *chain)
{
    for (size_t i = 0; i < v->nextras; i++) {
        struct extra *e = &v->extras[i];
        if (e->used || strcmp(e->chain, chain) != 0) continue;
        e->used = true;
        problem(v, GH_AUDIT_INSERTED, e->first,
                "the archive file %s (seq %" PRIu64 "..%" PRIu64 ") is not recorded in the store",
                e->file, e->first, e->last);
    }
}

static void report(struct av *v, gh_audit_verify_cb cb, void *arg, size_t *bad)
{
    chain_extras(v, v->r.chain);
    if (v->r.problem != GH_AUDIT_INTACT) (*bad)++;
    cb(&v->r, arg);
}

int gh_audit_archive_verify(struct gh_store *st, const char *dir, const char *chain,
                            gh_audit_verify_cb cb, void *arg, size_t *bad,
                            struct gh_audit_verify_start **starts, size_t *nstarts,
                            struct gh_err *err)
{
    struct av *v = calloc(1, sizeof(*v));
    struct gh_audit_verify_start *s = NULL;
    struct gh_err scratch;
    size_t ns = 0;
    int rc;

    *bad = 0;
    *starts = NULL;
    *nstarts = 0;
    if (v == NULL) return gh_err_set(err, NULL, 0, 0, "audit: out of memory");
    v->dir = dir;
    rc = gh_store_audit_keys_list(st, v->keys, MAX_KEYS, &v->nkeys, err);
    for (size_t i = 0; rc == GH_OK && i < v->nkeys; i++)
        v->pub[i] = gh_audit_key_load(v->keys[i].public_pem, false, &scratch);
    if (rc == GH_OK) rc = gh_store_audit_archives_walk(st, chain, collect, v, err);
    if (rc == GH_OK) rc = find_extras(v, chain);
    if (rc == GH_OK && v->nrows > 0 && (s = calloc(v->nrows, sizeof(*s))) == NULL) rc = GH_ERROR;
    for (size_t i = 0; rc == GH_OK && i < v->nrows; i++) {
        const struct gh_store_audit_archive *a = &v->rows[i];
        if (i == 0 || strcmp(a->chain, v->rows[i - 1].chain) != 0) {
            memset(&v->r, 0, sizeof(v->r));
            snprintf(v->r.chain, sizeof(v->r.chain), "%s", a->chain);
            memset(v->prev, 0, 32);
            v->next = 1;
        }
        if (v->r.problem == GH_AUDIT_INTACT) {
            rc = segment(v, st, a, err);
        } else { /* after the first problem: only the record counts */
            v->r.events += a->events;
            v->next = a->last_seq + 1;
        }
        v->r.head = a->last_seq;
        if (i + 1 == v->nrows || strcmp(a->chain, v->rows[i + 1].chain) != 0) {
            report(v, cb, arg, bad);
            snprintf(s[ns].chain, sizeof(s[ns].chain), "%s", a->chain);
            s[ns].seq = a->last_seq;
            memcpy(s[ns].hash, a->last_hash, 65);
            ns++;
        }
    }
    /* Files of chains that have no record at all. */
    for (size_t i = 0; rc == GH_OK && i < v->nextras; i++) {
        if (v->extras[i].used) continue;
        memset(&v->r, 0, sizeof(v->r));
        snprintf(v->r.chain, sizeof(v->r.chain), "%s", v->extras[i].chain);
        report(v, cb, arg, bad);
    }
    if (rc != GH_OK && err->msg[0] == '\0') gh_err_set(err, NULL, 0, 0, "audit: out of memory");
    if (rc == GH_OK) {
        *starts = s;
        *nstarts = ns;
    } else {
        free(s);
    }
    for (size_t i = 0; i < v->nkeys; i++)
        EVP_PKEY_free(v->pub[i]);
    free(v->rows);
    free(v->extras);
    free(v->scps);
    free(v);
    return rc;
}

int gh_audit_archive_heads(struct gh_store *st, const char *chain,
                           struct gh_audit_verify_start **starts, size_t *nstarts,
                           struct gh_err *err)
{
    struct av v = {0};
    struct gh_audit_verify_start *s = NULL;
    size_t ns = 0;
    int rc = gh_store_audit_archives_walk(st, chain, collect, &v, err);

    if (rc == GH_OK && v.nrows > 0 && (s = calloc(v.nrows, sizeof(*s))) == NULL)
        rc = gh_err_set(err, NULL, 0, 0, "audit: out of memory");
    for (size_t i = 0; rc == GH_OK && i < v.nrows; i++) {
        const struct gh_store_audit_archive *a = &v.rows[i];
        if (i + 1 < v.nrows && strcmp(a->chain, v.rows[i + 1].chain) == 0) continue;
        snprintf(s[ns].chain, sizeof(s[ns].chain), "%s", a->chain);
        s[ns].seq = a->last_seq;
        memcpy(s[ns].hash, a->last_hash, 65);
        ns++;
    }
    free(v.rows);
    *starts = rc == GH_OK ? s : NULL;
    *nstarts = rc == GH_OK ? ns : 0;
    if (rc != GH_OK) free(s);
    return rc;
}
