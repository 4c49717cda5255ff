/* The webhook dispatcher's claim (gh_store_hook_claim) beside a disabled
 * endpoint's backlog: N messages published to an endpoint that an admin
 * then disables (its deliveries stay pending), one more to an active
 * endpoint, then CLAIMS claims of up to 100 deliveries, as a dispatcher's
 * polls make, then the endpoint enabled again. Before migration 20 each
 * claim read past the whole backlog. Also times the two admin updates,
 * which pause and resume the backlog.
 *
 *   build/hook_claim_bench [N] [STORE] [CLAIMS]   (make bench-hook-claim)
 *
 * STORE: a SQLite file to create (default: a fresh one in /tmp) or a
 * PostgreSQL URL as the gateway's login role, on a database `gatehouse
 * postgres init` made and that holds no tenant called "bench". Prints the
 * fill's time, ms per claim and the two updates' times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_store.h"
#include "store/store.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int endpoint_new(struct gh_store *st, const char *tenant, const char *events,
                        struct gh_store_hook_endpoint *e, struct gh_err *err)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->tenant_id, sizeof(e->tenant_id), "%s", tenant);
    snprintf(e->url, sizeof(e->url), "http://127.0.0.1:9/hook");
    snprintf(e->events[0], sizeof(e->events[0]), "%s", events);
    e->nevents = 1;
    e->secret_version = 1;
    return gh_store_hook_endpoint_insert(st, e, err);
}

static int on_due(const struct gh_store_hook_due *d, void *arg)
{
    (void)d;
    (*(size_t *)arg)++;
    return GH_OK;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 100000;
    int claims = argc > 3 ? atoi(argv[3]) : 200;
    char path[64] = "", id[32];
    struct gh_store_params p = {0};
    struct gh_store_tenant t = {0};
    struct gh_store_hook_endpoint off, on;
    struct gh_store *st = NULL;
    struct gh_err err = {0};
    size_t got = 0, deliveries;
    bool dup;
    double t0, fill, took, pause, resume;

    if (bench_store_params(argc > 2 ? argv[2] : NULL, "hook-claim", path, &p) != 0) return 1;
    snprintf(t.name, sizeof(t.name), "bench");
    if (gh_store_open(&p, &st, &err) != GH_OK || gh_store_migrate(st, NULL, NULL, &err) != GH_OK ||
        gh_store_tenant_create(st, &t, &err) != GH_OK ||
        endpoint_new(st, t.id, "backlog.*", &off, &err) != GH_OK ||
        endpoint_new(st, t.id, "live.*", &on, &err) != GH_OK)
        goto fail;
    t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "b%zu", i);
        if (gh_store_hook_publish(st, t.id, id, "backlog.x", "{}", 2, 0, &deliveries, &dup, &err) !=
            GH_OK)
            goto fail;
    }
    fill = now_s() - t0;
    off.status = GH_STORE_HOOK_DISABLED;
    t0 = now_s();
    if (gh_store_hook_endpoint_update(st, &off, &err) != GH_OK) goto fail;
    pause = now_s() - t0;
    if (gh_store_hook_publish(st, t.id, "live", "live.x", "{}", 2, 0, &deliveries, &dup, &err) !=
        GH_OK)
        goto fail;
    t0 = now_s();
    for (int i = 0; i < claims; i++)
        if (gh_store_hook_claim(st, "bench", 100, on_due, &got, &err) != GH_OK) goto fail;
    took = now_s() - t0;
    off.status = GH_STORE_HOOK_ACTIVE;
    t0 = now_s();
    if (gh_store_hook_endpoint_update(st, &off, &err) != GH_OK) goto fail;
    resume = now_s() - t0;
    printf("%s: %zu deliveries of a disabled endpoint (published in %.1f s); %d claims, "
           "%zu delivery claimed, %.3f ms per claim; the disabling (pause) %.3f s, the "
           "enabling (resume) %.3f s\n",
           p.sqlite_path ? "sqlite" : "postgres", n, fill, claims, got, took * 1000 / claims, pause,
           resume);
    gh_store_close(st);
    bench_store_remove(path);
    return got == 1 ? 0 : 1;
fail:
    fprintf(stderr, "hook_claim_bench: %s\n", err.msg);
    return 1;
}
