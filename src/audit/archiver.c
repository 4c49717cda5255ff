/* The audit maintenance thread (archiver.h). */
#include "audit/archiver.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/archive.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/log.h"
#include "core/snapshot.h"

struct gh_audit_archiver {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    struct gh_store *store;
    struct gh_snapshot *snap; /* under <lock> */
    bool stop;                /* under <lock> */
};

static void pass(struct gh_audit_archiver *a, struct gh_snapshot *snap)
{
    const struct gh_config *cfg = snap->cfg;
    struct gh_audit_archive_opts o = {.dir = cfg->audit.archive_dir};
    struct gh_audit_archive_stats st = {0};
    struct gh_err err = {0};

    int rc = gh_audit_archive_run(a->store, cfg, &o, &st, &err);

    if (rc == GH_AGAIN) /* `gatehouse audit archive` is at it */
        gh_log_info("%s; this one is skipped", err.msg);
    else if (rc != GH_OK)
        gh_log_error("audit archive: %s (the events stay in the store; next pass in %u ms)",
                     err.msg, cfg->audit.archive_interval_ms);
    else if (st.events > 0 || st.orphans > 0)
        gh_log_info("audit archive: %" PRIu64 " events in %" PRIu64 " segments to %s", st.events,
                    st.segments, o.dir);
}

static void *archiver_main(void *arg)
{
    struct gh_audit_archiver *a = arg;
    struct timespec deadline;

    clock_gettime(CLOCK_MONOTONIC, &deadline); /* the first pass at once */
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        int rc = 0;
        while (!a->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&a->cond, &a->lock, &deadline);
        if (a->stop) break;
        struct gh_snapshot *snap = a->snap;
        uint32_t ms = snap->cfg->audit.archive_interval_ms;
        gh_snapshot_ref(snap, 1);
        pthread_mutex_unlock(&a->lock);
        pass(a, snap);
        gh_snapshot_unref(snap);
        gh_deadline_ms(CLOCK_MONOTONIC, ms, &deadline);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* A folder the archive cannot write to fails only once events pass the
 * retention, weeks after the start: said at the start. */
static void check_dir(const char *dir)
{
    struct gh_err e = {0};
    int rc = gh_file_make_dir("audit.archive_dir", dir, &e);

    if (rc == GH_OK && access(dir, W_OK | X_OK) == 0) return;
    if (rc == GH_OK) gh_err_set(&e, NULL, 0, 0, "audit.archive_dir: %s: %s", dir, strerror(errno));
    gh_log_warn("%s; events past audit.retention will stay in the store until it can be written "
                "(with the systemd unit, name a folder under /var/lib/gatehouse)",
                e.msg);
}

struct gh_audit_archiver *gh_audit_archiver_start(struct gh_store *st, struct gh_snapshot *snap,
                                                  struct gh_err *err)
{
    struct gh_audit_archiver *a = calloc(1, sizeof(*a));
    pthread_condattr_t ca;

    check_dir(snap->cfg->audit.archive_dir);
    if (a == NULL) {
        gh_err_set(err, NULL, 0, 0, "audit archive: out of memory");
        return NULL;
    }
    a->store = st;
    a->snap = snap;
    gh_snapshot_ref(snap, 1);
    pthread_mutex_init(&a->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&a->thread, NULL, archiver_main, a) != 0) {
        gh_err_set(err, NULL, 0, 0, "audit archive: cannot start the maintenance thread");
        pthread_mutex_destroy(&a->lock);
        pthread_cond_destroy(&a->cond);
        gh_snapshot_unref(snap);
        free(a);
        return NULL;
    }
    pthread_setname_np(a->thread, "gh-audit-arch");
    return a;
}

void gh_audit_archiver_configure(struct gh_audit_archiver *a, struct gh_snapshot *snap)
{
    struct gh_snapshot *old;

    if (a == NULL) return;
    gh_snapshot_ref(snap, 1);
    pthread_mutex_lock(&a->lock);
    old = a->snap;
    a->snap = snap;
    pthread_mutex_unlock(&a->lock);
    gh_snapshot_unref(old);
}

void gh_audit_archiver_free(struct gh_audit_archiver *a)
{
    if (a == NULL) return;
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    gh_snapshot_unref(a->snap);
    free(a);
}
