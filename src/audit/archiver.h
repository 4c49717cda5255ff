/* The audit maintenance thread: runs an archive pass (archive.h) at start
 * and every audit.archive_interval. Its own thread, not the audit writer's:
 * a pass compresses, hashes and fsyncs whole segments, which would hold up
 * strict-mode commits if the writer ran it between batches; here the only
 * contact with the request path is the one short store transaction per
 * segment (the writer connection's lock, as any admin write). */
#ifndef GH_AUDIT_ARCHIVER_H
#define GH_AUDIT_ARCHIVER_H

#include "core/err.h"

struct gh_store;
struct gh_snapshot;
struct gh_audit_archiver;

/* Starts the thread on <st> with <snap>'s config (a reference is taken).
 * NULL with <err> when the thread cannot start. */
struct gh_audit_archiver *gh_audit_archiver_start(struct gh_store *st, struct gh_snapshot *snap,
                                                  struct gh_err *err);

/* A reload: retention, plans, archive_dir and archive_interval apply from
 * the next pass (a reference to <snap> is taken, the old one dropped).
 * Main thread. NULL <a> is fine. */
void gh_audit_archiver_configure(struct gh_audit_archiver *a, struct gh_snapshot *snap);

/* Stops the thread (waiting for a pass in progress to end) and frees. NULL
 * is fine. Before the store closes. */
void gh_audit_archiver_free(struct gh_audit_archiver *a);

#endif
