/* The audit verifier: walks every chain (or one) of a store and checks it
 * against docs/audit-format.md: each hash recomputed from the stored body,
 * seq continuous from 1, the row's chain, seq and filter columns equal to the
 * body's, every checkpoint's hash equal to the chain's at its seq and its
 * Ed25519 signature valid under the audit key it names, and the head not
 * older than the newest checkpoint. It reports the FIRST problem of each
 * chain, with its seq and a reason. `gatehouse audit verify` runs it.
 *
 * What a hash chain cannot show: events appended after the newest
 * checkpoint by someone who can compute SHA-256, or the tail after the
 * newest checkpoint removed (the head is then still >= the checkpoint).
 * Checkpoints bound both to the checkpoint interval. */
#ifndef GH_AUDIT_VERIFY_H
#define GH_AUDIT_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

enum gh_audit_problem {
    GH_AUDIT_INTACT = 0,
    GH_AUDIT_CHANGED,       /* a body, hash or column differs from what was chained */
    GH_AUDIT_DELETED,       /* an event is missing (a gap, or later events renumbered) */
    GH_AUDIT_INSERTED,      /* an event the gateway did not write is in the chain */
    GH_AUDIT_REORDERED,     /* an event is stored at another seq than its own */
    GH_AUDIT_BAD_SIGNATURE, /* a checkpoint's signature (or key) does not verify */
    GH_AUDIT_TRUNCATED,     /* events signed by a checkpoint are gone from the tail */
};

struct gh_audit_chain_report {
    char chain[GH_STORE_AUDIT_CHAIN_SIZE];
    uint64_t events;      /* rows read */
    uint64_t checkpoints; /* checkpoints of the chain */
    uint64_t head;        /* the highest seq stored (or archived) */
    uint64_t archived;    /* the hot rows were checked from after this seq (0: from 1) */
    enum gh_audit_problem problem;
    uint64_t seq;     /* where the first problem is (0 when intact) */
    char reason[192]; /* e.g. "changed: column actor differs from the body" */
};

/* Called once per chain, in chain order, when the chain is done. */
typedef void (*gh_audit_verify_cb)(const struct gh_audit_chain_report *r, void *arg);

/* Verifies <chain> (NULL: every chain) of <st>, calling <cb> for each
 * chain; sets *bad to the number of chains with a problem. Returns GH_OK when
 * every chain could be read (intact or not), GH_ERROR (with <err>) when the
 * store could not be read. Memory: the checkpoints and keys, not the events
 * (one row buffer is reused). */
int gh_audit_verify(struct gh_store *st, const char *chain, gh_audit_verify_cb cb, void *arg,
                    size_t *bad, struct gh_err *err);

/* Where a chain's hot rows start when its oldest events were archived: after
 * <seq>, whose hash is <hash> (64 lowercase hex). */
struct gh_audit_verify_start {
    char chain[GH_STORE_AUDIT_CHAIN_SIZE];
    uint64_t seq;
    char hash[65];
};

/* gh_audit_verify, where chains named in <starts> (<nstarts>, sorted by
 * chain, strcmp order) start after their archived head instead of at seq 1
 * with the zero hash; a chain with no hot rows left is reported with its
 * archived head. The archives themselves are not read here
 * (gh_audit_archive_verify). */
int gh_audit_verify_from(struct gh_store *st, const char *chain,
                         const struct gh_audit_verify_start *starts, size_t nstarts,
                         gh_audit_verify_cb cb, void *arg, size_t *bad, struct gh_err *err);

/* Checks the archive in <dir> (archive_verify.c): each segment that
 * audit_archives records for <chain> (NULL: all), against its record and
 * manifest (range, end hashes, the file's SHA-256), line by line (hash
 * chain, seq, chain) and its checkpoints (signature, hash); and reports
 * files of the directory that no record names. One report per chain (events
 * and head: the archived ones; seq: where the first problem is, with the
 * file and seq range in the reason); *bad counts those with a problem. Sets
 * *starts (malloc'd, sorted by chain, for gh_audit_verify_from: each
 * chain's archived head as recorded) and *nstarts. GH_OK when everything
 * could be read (intact or not), GH_ERROR with <err> otherwise. Reads each
 * segment streaming: memory is one line and zstd's buffers. */
int gh_audit_archive_verify(struct gh_store *st, const char *dir, const char *chain,
                            gh_audit_verify_cb cb, void *arg, size_t *bad,
                            struct gh_audit_verify_start **starts, size_t *nstarts,
                            struct gh_err *err);

/* Only the archived heads of the store's records (no files are read): for
 * verifying the hot part of a store whose oldest events are archived
 * elsewhere. */
int gh_audit_archive_heads(struct gh_store *st, const char *chain,
                           struct gh_audit_verify_start **starts, size_t *nstarts,
                           struct gh_err *err);

/* "changed", "deleted", ...: the first word of a reason. */
const char *gh_audit_problem_name(enum gh_audit_problem p);

#endif
