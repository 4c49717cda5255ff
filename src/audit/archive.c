/* One archive pass (archive.h): per chain, the events past retention go to
 * a segment and a manifest, made durable, and only then recorded and
 * deleted from the store in one transaction. */
#include "audit/archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "audit/segment.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/log.h"

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* ---- Names ------------------------------------------------------------------------- */

static bool plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

void gh_audit_archive_chain_dir(const char *chain, char out[94])
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)chain; *p && o + 4 <= 94; p++) {
        if (plain(*p)) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

static int unhex1(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool gh_audit_archive_chain_undir(const char *dir, char chain[GH_STORE_AUDIT_CHAIN_SIZE])
{
    size_t o = 0;

    for (const char *p = dir; *p; p++) {
        int c = (unsigned char)*p;
        if (o + 1 >= GH_STORE_AUDIT_CHAIN_SIZE) return false;
        if (*p == '%') {
            int h = unhex1(p[1]), l = h < 0 ? -1 : unhex1(p[2]);
            if (l < 0) return false;
            c = h * 16 + l;
            if (plain((unsigned char)c)) return false; /* one spelling per chain */
            p += 2;
        } else if (!plain((unsigned char)c)) {
            return false;
        }
        chain[o++] = (char)c;
    }
    chain[o] = '\0';
    return gh_store_valid_audit_chain(chain);
}

static bool read_u64(const char **p, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;

    if (*s < '1' || *s > '9') return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *out = v;
    return true;
}

bool gh_audit_archive_parse_name(const char *name, uint64_t *first, uint64_t *last)
{
    const char *p = name;

    return read_u64(&p, first) && *p++ == '-' && read_u64(&p, last) &&
           strcmp(p, ".jsonl.zst") == 0 && *first <= *last;
}

void gh_audit_archive_manifest_path(const char *segment, char *out, size_t size)
{
    size_t n = strlen(segment), ext = strlen(".jsonl.zst");

    if (n >= ext && strcmp(segment + n - ext, ".jsonl.zst") == 0) n -= ext;
    snprintf(out, size, "%.*s.manifest.json", (int)n, segment);
}

uint64_t gh_audit_retention_ms(const struct gh_config *cfg, const char *plan)
{
    const struct gh_config_plan *p = plan ? gh_config_plan_find(cfg, plan) : NULL;

    if (p == NULL && cfg->limits.default_plan != NULL)
        p = gh_config_plan_find(cfg, cfg->limits.default_plan);
    if (p != NULL && p->audit_retention_ms > 0) return p->audit_retention_ms;
    return cfg->audit.retention_ms;
}

/* ---- The archive rows -------------------------------------------------------------- */

struct rows {
    struct gh_store_audit_archive *a;
    size_t n, cap;
};

static int collect_row(const struct gh_store_audit_archive *a, void *arg)
{
    struct rows *r = arg;

    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        struct gh_store_audit_archive *p = realloc(r->a, cap * sizeof(*p));
        if (p == NULL) return GH_ERROR;
        r->a = p;
        r->cap = cap;
    }
    r->a[r->n++] = *a;
    return GH_OK;
}

/* Is "<dir>/<name>" a segment or a manifest some row names? */
static bool named(const struct rows *r, const char *dir, const char *name)
{
    char seg[300], man[300];

    for (size_t i = 0; i < r->n; i++) {
        snprintf(seg, sizeof(seg), "%s/%s", dir, name);
        if (strcmp(r->a[i].file, seg) == 0) return true;
        gh_audit_archive_manifest_path(r->a[i].file, man, sizeof(man));
        if (strcmp(man, seg) == 0) return true;
    }
    return false;
}

/* Removes what a pass that crashed before its transaction left: temporary
 * files, and segments and manifests that no archive row names. Other files
 * are not ours and stay. */
static void remove_orphans(const char *root, const struct rows *r, uint64_t *removed)
{
    DIR *d = opendir(root);
    struct dirent *e;

    if (d == NULL) return;
    while ((e = readdir(d)) != NULL) {
        char chain[GH_STORE_AUDIT_CHAIN_SIZE], sub[4200];
        DIR *cd;
        struct dirent *f;

        if (!gh_audit_archive_chain_undir(e->d_name, chain)) continue;
        snprintf(sub, sizeof(sub), "%s/%s", root, e->d_name);
        if ((cd = opendir(sub)) == NULL) continue;
        while ((f = readdir(cd)) != NULL) {
            size_t n = strlen(f->d_name);
            uint64_t a, b;
            char seg[300], path[4500];
            bool tmp = n > 4 && strcmp(f->d_name + n - 4, ".tmp") == 0;
            bool ours = tmp || gh_audit_archive_parse_name(f->d_name, &a, &b);
            if (!ours && n > 14 && strcmp(f->d_name + n - 14, ".manifest.json") == 0) {
                snprintf(seg, sizeof(seg), "%.*s.jsonl.zst", (int)(n - 14), f->d_name);
                ours = gh_audit_archive_parse_name(seg, &a, &b);
            }
            if (!ours || (!tmp && named(r, e->d_name, f->d_name))) continue;
            snprintf(path, sizeof(path), "%s/%s", sub, f->d_name);
            if (unlink(path) == 0 && !tmp) {
                (*removed)++;
                gh_log_warn("audit archive: removed %s (no archive row names it: a pass "
                            "stopped before its commit)",
                            path);
            }
        }
        closedir(cd);
    }
    closedir(d);
}

/* ---- One chain --------------------------------------------------------------------- */

struct seg {
    const char *chain;
    int64_t cutoff_us;
    uint64_t next, max, n;
    char last_hash[65];
    struct gh_audit_segment_writer *w;
    const char *tmp;
    struct gh_err *err;
    int rc;
};

static int on_event(const struct gh_store_audit_row *row, void *arg)
{
    struct seg *s = arg;

    /* Stop at the first event still within retention, or a gap (a prefix,
     * never a hole: a gap is the verifier's to report, not ours to skip). */
    if (row->time_us >= s->cutoff_us || row->seq != s->next || s->n == s->max) return GH_DECLINED;
    if (s->w == NULL && (s->w = gh_audit_segment_create(s->tmp, s->err)) == NULL) {
        s->rc = GH_ERROR;
        return GH_ERROR;
    }
    if (gh_audit_segment_add(s->w, row->body, row->body_len, row->hash, s->err) != GH_OK) {
        s->rc = GH_ERROR;
        return GH_ERROR;
    }
    memcpy(s->last_hash, row->hash, sizeof(s->last_hash));
    s->next++;
    s->n++;
    return GH_OK;
}

static int on_checkpoint(const struct gh_store_audit_checkpoint *cp, void *arg)
{
    json_t *o =
        json_pack("{sIsssIssss}", "seq", (json_int_t)cp->seq, "hash", cp->hash, "time_ms",
                  (json_int_t)cp->time_ms, "key_id", cp->key_id, "signature", cp->signature);

    return o && json_array_append_new(arg, o) == 0 ? GH_OK : GH_ERROR;
}

/* The manifest of <a> (docs/audit-format.md, "Archives"), as text to free. */
static char *manifest_text(struct gh_store *st, const struct gh_store_audit_archive *a,
                           const char *base, struct gh_err *err)
{
    json_t *cps = json_array(), *m = NULL;
    char *text = NULL;

    if (cps == NULL || gh_store_audit_checkpoints_walk(st, a->chain, a->first_seq, a->last_seq,
                                                       on_checkpoint, cps, err) != GH_OK)
        goto out;
    m = json_pack("{sssssIsIsIsssssssssIsO}", "format", "gatehouse-audit-archive:v1", "chain",
                  a->chain, "first_seq", (json_int_t)a->first_seq, "last_seq",
                  (json_int_t)a->last_seq, "events", (json_int_t)a->events, "prev_hash",
                  a->prev_hash, "last_hash", a->last_hash, "file", base, "file_sha256",
                  a->file_sha256, "created_ms", (json_int_t)a->created_at, "checkpoints", cps);
    if (m) text = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
    if (text == NULL && err->msg[0] == '\0')
        gh_err_set(err, NULL, 0, 0, "audit archive: cannot write the manifest");
    json_decref(m);
    json_decref(cps);
    return text;
}

/* Archives one segment of <chain> after <a> (its last archived range, or
 * zeros); sets *n to the events moved (0: nothing to do). */
static int one_segment(struct gh_store *st, const struct gh_audit_archive_opts *o,
                       const char *chain, int64_t cutoff_us, struct gh_store_audit_archive *a,
                       uint64_t *n, struct gh_err *err)
{
    char cdir[94], sub[4200], tmp[4300], base[64], path[4300], man[4400], *text;
    struct seg s = {.chain = chain, .cutoff_us = cutoff_us, .err = err};
    int rc;

    *n = 0;
    gh_audit_archive_chain_dir(chain, cdir);
    snprintf(sub, sizeof(sub), "%s/%s", o->dir, cdir);
    snprintf(tmp, sizeof(tmp), "%s/%" PRIu64 ".jsonl.zst.tmp", sub, a->last_seq + 1);
    s.next = a->last_seq + 1;
    s.max = o->max_events ? o->max_events : GH_AUDIT_SEGMENT_EVENTS;
    s.tmp = tmp;
    if (gh_file_make_dir("audit archive", sub, err) != GH_OK) return GH_ERROR;
    unlink(tmp); /* a leftover of a crash */
    rc = gh_store_audit_walk(st, chain, s.next, s.next + s.max - 1, on_event, &s, err);
    if (rc == GH_DECLINED) rc = GH_OK;
    if (rc == GH_OK) rc = s.rc;
    if (rc != GH_OK || s.n == 0) {
        gh_audit_segment_abort(s.w);
        return rc;
    }
    /* The new row: the range after <a>. */
    memcpy(a->prev_hash, a->last_seq == 0 ? ZERO_HASH : a->last_hash, 65);
    a->first_seq = a->last_seq + 1;
    a->last_seq = s.next - 1;
    a->events = s.n;
    memcpy(a->last_hash, s.last_hash, 65);
    a->created_at = (int64_t)gh_wall_ms();
    snprintf(base, sizeof(base), "%" PRIu64 "-%" PRIu64 ".jsonl.zst", a->first_seq, a->last_seq);
    snprintf(a->file, sizeof(a->file), "%s/%s", cdir, base);
    snprintf(path, sizeof(path), "%s/%s", sub, base);
    gh_audit_archive_manifest_path(path, man, sizeof(man));
    rc = gh_audit_segment_finish(s.w, a->file_sha256, err);
    if (rc == GH_OK && rename(tmp, path) != 0)
        rc = gh_err_set(err, NULL, 0, 0, "audit archive: %s: %s", path, strerror(errno));
    if (rc != GH_OK) goto fail;
    text = manifest_text(st, a, base, err);
    rc =
        text ? gh_file_write_atomic("audit archive", man, text, strlen(text), 0600, err) : GH_ERROR;
    free(text);
    /* The names must be durable too, and the chain's folder in its parent. */
    if (rc == GH_OK) rc = gh_file_fsync_dir("audit archive", sub, err);
    if (rc == GH_OK) rc = gh_file_fsync_dir("audit archive", o->dir, err);
    if (rc != GH_OK) goto fail;
    if (o->crash_before_commit) return GH_DECLINED;
    /* The events were read from commits that the audit writer may not
     * have synced yet (SQLite: store.h, gh_store_audit_append_unsynced):
     * synced now, so that no archive ever holds an event a crash could
     * take from the store, whose chain would then go on differently. */
    rc = gh_store_audit_sync(st, err);
    if (rc != GH_OK) goto fail;
    rc = gh_store_audit_archive_commit(st, a, err);
    if (rc != GH_OK) goto fail;
    *n = s.n;
    return GH_OK;
fail:
    /* Not recorded: the events are still in the store; the files go. */
    unlink(tmp);
    unlink(path);
    unlink(man);
    return rc;
}

/* ---- The pass ---------------------------------------------------------------------- */

struct heads {
    char (*chain)[GH_STORE_AUDIT_CHAIN_SIZE];
    size_t n, cap;
};

static int collect_head(const struct gh_store_audit_row *row, void *arg)
{
    struct heads *h = arg;

    if (row->rowid == 0) return GH_OK; /* wholly archived: nothing hot */
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        void *p = realloc(h->chain, cap * sizeof(*h->chain));
        if (p == NULL) return GH_ERROR;
        h->chain = p;
        h->cap = cap;
    }
    memcpy(h->chain[h->n++], row->chain, GH_STORE_AUDIT_CHAIN_SIZE);
    return GH_OK;
}

static uint64_t chain_retention_ms(struct gh_store *st, const struct gh_config *cfg,
                                   const char *chain)
{
    char plan[GH_STORE_NAME_SIZE];
    static const size_t cap = GH_STORE_LIMITS_JSON_MAX + 1;
    char *json = malloc(cap);
    struct gh_err scratch = {0};
    uint64_t ms;

    if (strcmp(chain, "system") == 0 || json == NULL) {
        free(json);
        return cfg->audit.retention_ms;
    }
    /* A tenant the store does not know (a JWT's) has no plan of its own. */
    if (gh_store_tenant_limits_get(st, chain, plan, json, cap, &scratch) != GH_OK) plan[0] = '\0';
    ms = gh_audit_retention_ms(cfg, plan[0] ? plan : NULL);
    free(json);
    return ms;
}

int gh_audit_archive_run(struct gh_store *st, const struct gh_config *cfg,
                         const struct gh_audit_archive_opts *o,
                         struct gh_audit_archive_stats *stats, struct gh_err *err)
{
    struct gh_audit_archive_stats none = {0};
    struct rows r = {0};
    struct heads h = {0};
    int lockfd = -1;
    int64_t now_us = o->now_us ? o->now_us : (int64_t)gh_wall_ms() * 1000;
    int rc;

    if (stats == NULL) stats = &none;
    rc = gh_file_make_dir("audit archive", o->dir, err);
    /* One pass at a time per directory (the gateway's thread and the CLI):
     * another pass's files between their rename and their commit look like
     * orphans, and both would write the same temporary names. */
    if (rc == GH_OK) {
        char lock[4200];
        snprintf(lock, sizeof(lock), "%s/.lock", o->dir);
        lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lockfd < 0)
            rc = gh_err_set(err, NULL, 0, 0, "audit archive: %s: %s", lock, strerror(errno));
        else if (flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
            gh_err_set(err, NULL, 0, 0, "audit archive: another pass is running on %s", o->dir);
            rc = GH_AGAIN;
        }
    }
    if (rc == GH_OK) rc = gh_store_audit_archives_walk(st, NULL, collect_row, &r, err);
    if (rc == GH_OK) remove_orphans(o->dir, &r, &stats->orphans);
    if (rc == GH_OK) rc = gh_store_audit_heads(st, collect_head, &h, err);
    for (size_t i = 0; rc == GH_OK && i < h.n; i++) {
        const char *chain = h.chain[i];
        uint64_t ret = chain_retention_ms(st, cfg, chain), n = 0;
        int64_t cutoff = ret >= (uint64_t)now_us / 1000 ? 0 : now_us - (int64_t)ret * 1000;
        struct gh_store_audit_archive a = {0};

        snprintf(a.chain, sizeof(a.chain), "%s", chain);
        for (size_t j = 0; j < r.n; j++) /* its last archived range */
            if (strcmp(r.a[j].chain, chain) == 0 && r.a[j].last_seq > a.last_seq) a = r.a[j];
        do {
            rc = one_segment(st, o, chain, cutoff, &a, &n, err);
            stats->events += n;
            stats->segments += n > 0;
        } while (rc == GH_OK && n > 0);
    }
    if (rc == GH_DECLINED) rc = GH_OK; /* crash_before_commit */
    if (rc != GH_OK && err->msg[0] == '\0') gh_err_set(err, NULL, 0, 0, "audit archive: failed");
    if (lockfd >= 0) close(lockfd); /* and with it the lock */
    free(r.a);
    free(h.chain);
    return rc;
}
