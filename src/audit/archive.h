/* Audit retention: moving each chain's events older than its tenant's
 * retention out of the store into archive segments (docs/audit-format.md,
 * "Archives"; the plan in docs/internals/store.md).
 *
 * One pass, per chain: the oldest events still in the store whose time_us is
 * before now - retention (a prefix: it stops at the first newer event, so an
 * archive never leaves a hole) go into a segment file, fsync'd, then a
 * manifest beside it, fsync'd, and the directory fsync'd; only THEN does one
 * store transaction record the segment (audit_archives) and delete its
 * events. A crash before that transaction leaves files that no row names:
 * the next pass removes them (and archives the events again); a crash after
 * it leaves both sides consistent. No event is ever in neither place.
 *
 * Runs on the caller's thread and blocks on disk and the store: the audit
 * maintenance thread (archiver.c) and `gatehouse audit archive` call it,
 * never a worker loop. */
#ifndef GH_AUDIT_ARCHIVE_H
#define GH_AUDIT_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/err.h"
#include "store/store.h"

struct gh_audit_archive_opts {
    const char *dir;     /* the archive directory (created when missing) */
    int64_t now_us;      /* retention is counted back from here; 0: the wall clock */
    uint64_t max_events; /* events per segment at most; 0: GH_AUDIT_SEGMENT_EVENTS */
    /* Tests only: stop after the files are durable and before the store
     * transaction, as a crash there would (the pass returns GH_OK). */
    bool crash_before_commit;
};

#define GH_AUDIT_SEGMENT_EVENTS 100000

struct gh_audit_archive_stats {
    uint64_t segments; /* recorded in this pass */
    uint64_t events;   /* moved out of the store */
    uint64_t orphans;  /* files no archive row names, removed */
};

/* Runs one archive pass over every chain of <st> with the retention of
 * <cfg> (gh_audit_retention_ms). Adds to <stats> (may be NULL). GH_OK;
 * GH_AGAIN when another pass holds <o->dir> (its ".lock", flock); or
 * GH_ERROR with <err> at the first failure (what was committed before stays
 * committed; files of the failed segment are removed or left as orphans). */
int gh_audit_archive_run(struct gh_store *st, const struct gh_config *cfg,
                         const struct gh_audit_archive_opts *o,
                         struct gh_audit_archive_stats *stats, struct gh_err *err);

/* The retention of a tenant on plan <plan> (NULL or unknown:
 * limits.default_plan's): the plan's audit_retention, else audit.retention. */
uint64_t gh_audit_retention_ms(const struct gh_config *cfg, const char *plan);

/* The directory of <chain> under the archive directory: the chain name with
 * every byte outside [A-Za-z0-9_-] written %XX (so "..", "/" or a NUL
 * cannot name another place). <out> holds 3 * 31 + 1 bytes. */
void gh_audit_archive_chain_dir(const char *chain, char out[94]);
/* The reverse; false when <dir> is not such a name. */
bool gh_audit_archive_chain_undir(const char *dir, char chain[GH_STORE_AUDIT_CHAIN_SIZE]);

/* "<first>-<last>.jsonl.zst" -> its seqs, and the manifest name beside a
 * segment ("<first>-<last>.manifest.json"). */
bool gh_audit_archive_parse_name(const char *name, uint64_t *first, uint64_t *last);
void gh_audit_archive_manifest_path(const char *segment, char *out, size_t size);

#endif
