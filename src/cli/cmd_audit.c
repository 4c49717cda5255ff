/* gatehouse audit verify -c FILE [--archive DIR] [--tenant T]: the offline
 * verifier of the audit log in the store named by the config
 * (src/audit/verify.h), and of its archive segments with --archive. It
 * opens the store without migrating it (a verifier writes nothing) and
 * prints one summary line per chain on stdout, and each chain's first
 * problem, with its seq, on stderr. Exit 0: every chain intact; 1: tampering
 * found; 2: usage, config or store errors.
 *
 * gatehouse audit archive -c FILE [--now TIME]: one archive pass
 * (src/audit/archive.h), as the maintenance thread runs it.
 *
 * gatehouse audit list: cmd_audit_list.c. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/archive.h"
#include "audit/verify.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/runtime.h"
#include "store/store.h"

static void report(const struct gh_audit_chain_report *r, void *arg)
{
    size_t *chains = arg;

    (*chains)++;
    if (r->problem == GH_AUDIT_INTACT) {
        printf("chain %s: %" PRIu64 " events, %" PRIu64 " checkpoints, head %" PRIu64 ": ok\n",
               r->chain, r->events, r->checkpoints, r->head);
        return;
    }
    printf("chain %s: %" PRIu64 " events, %" PRIu64 " checkpoints, head %" PRIu64
           ": FAILED at seq %" PRIu64 "\n",
           r->chain, r->events, r->checkpoints, r->head, r->seq);
    fprintf(stderr, "gatehouse audit verify: chain %s, seq %" PRIu64 ": %s\n", r->chain, r->seq,
            r->reason);
}

static void archive_report(const struct gh_audit_chain_report *r, void *arg)
{
    size_t *chains = arg;

    (*chains)++;
    if (r->problem == GH_AUDIT_INTACT) {
        printf("archive of chain %s: %" PRIu64 " events, %" PRIu64 " checkpoints, seq 1..%" PRIu64
               ": ok\n",
               r->chain, r->events, r->checkpoints, r->head);
        return;
    }
    printf("archive of chain %s: seq 1..%" PRIu64 ": FAILED at seq %" PRIu64 "\n", r->chain,
           r->head, r->seq);
    fprintf(stderr, "gatehouse audit verify: chain %s, seq %" PRIu64 ": %s\n", r->chain, r->seq,
            r->reason);
}

static void hot_report(const struct gh_audit_chain_report *r, void *arg)
{
    if (r->archived > 0)
        printf("chain %s: events up to seq %" PRIu64 " are archived; the store's part is "
               "checked from there\n",
               r->chain, r->archived);
    report(r, arg);
}

static int verify(int argc, char **argv)
{
    const char *config = NULL, *tenant = NULL, *archive = NULL;
    struct gh_audit_verify_start *starts = NULL;
    size_t nstarts = 0, abad = 0;
    struct gh_config *cfg = NULL;
    struct gh_store *st = NULL;
    struct gh_store_params params = {0};
    struct gh_store_tenant t;
    bool known = false;
    struct gh_err err = {0};
    char msg[1024];
    size_t bad = 0, chains = 0;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            gh_cli_usage("audit");
            return 0;
        }
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            config = argv[++i];
        else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
            tenant = argv[++i];
        else if (strcmp(argv[i], "--archive") == 0 && i + 1 < argc)
            archive = argv[++i];
        else {
            fprintf(stderr, "gatehouse audit verify: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (config == NULL) {
        fprintf(stderr, "gatehouse audit verify: missing -c FILE\n");
        return 2;
    }
    if (gh_config_load(config, &cfg, &err) != GH_OK) {
        fprintf(stderr, "%s\n", gh_err_format(&err, msg, sizeof(msg)));
        return 2;
    }
    params = gh_runtime_store_params(cfg);
    if (gh_store_open(&params, &st, &err) != GH_OK) {
        fprintf(stderr, "gatehouse audit verify: %s\n", err.msg);
        gh_config_free(cfg);
        return 2;
    }
    /* --tenant takes a tenant's id (its chain) or its name, or the name of
     * a chain that is no store tenant's (a JWT tenant's). */
    known = tenant != NULL && gh_store_tenant_find(st, tenant, &t, &err) == GH_OK;
    if (known) tenant = t.id;
    if (tenant != NULL && !gh_store_valid_audit_chain(tenant)) {
        fprintf(stderr, "gatehouse audit verify: --tenant: not a tenant id or name\n");
        rc = 2;
        goto out;
    }
    /* The archive first: it says where each chain's hot part starts. Without
     * it, the hot part starts after the archived heads the store records. */
    rc = archive ? gh_audit_archive_verify(st, archive, tenant, archive_report, &chains, &abad,
                                           &starts, &nstarts, &err)
                 : gh_audit_archive_heads(st, tenant, &starts, &nstarts, &err);
    if (rc == GH_OK && archive == NULL && nstarts > 0)
        printf("archives not checked (%zu chain(s) have archived events; use --archive DIR)\n",
               nstarts);
    if (rc == GH_OK)
        rc = gh_audit_verify_from(st, tenant, starts, nstarts, hot_report, &chains, &bad, &err);
    if (rc != GH_OK) {
        fprintf(stderr, "gatehouse audit verify: %s\n", err.msg);
        rc = 2;
        goto out;
    }
    /* A name found nowhere is an error only when it has no chain either: a
     * typo must not pass for an intact log. */
    if (chains == 0 && tenant != NULL && !known) {
        fprintf(stderr,
                "gatehouse audit verify: --tenant: no tenant \"%s\" (by id or name) and no "
                "audit chain of that name\n",
                tenant);
        rc = 2;
        goto out;
    }
    if (chains == 0) printf("no audit events%s%s\n", tenant ? " for " : "", tenant ? tenant : "");
    rc = bad + abad == 0 ? 0 : 1;
out:
    free(starts);
    gh_store_close(st);
    gh_config_free(cfg);
    return rc;
}

int gh_cli_parse_time(const char *s, int64_t *us)
{
    struct tm tm = {0};
    const char *p;
    int64_t t, frac = 0, scale = 1000000;
    char *end;

    if (isdigit((unsigned char)s[0]) && strchr(s, '-') == NULL) {
        long long ms;
        errno = 0;
        ms = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0' || ms <= 0 || ms > INT64_MAX / 1000) return GH_ERROR;
        *us = (int64_t)ms * 1000;
        return GH_OK;
    }
    p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL) return GH_ERROR;
    t = (int64_t)timegm(&tm);
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            if (scale > 1) frac += (*p - '0') * (scale /= 10);
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
               isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
               isdigit((unsigned char)p[5])) {
        int off =
            ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
        t -= *p == '+' ? off : -off;
        p += 6;
    } else {
        return GH_ERROR;
    }
    if (*p != '\0' || t <= 0) return GH_ERROR;
    *us = t * 1000000 + frac;
    return GH_OK;
}

static int archive_cmd(int argc, char **argv)
{
    const char *config = NULL;
    struct gh_audit_archive_opts o = {0};
    struct gh_audit_archive_stats stats = {0};
    struct gh_config *cfg = NULL;
    struct gh_store *st = NULL;
    struct gh_store_params params = {0};
    struct gh_err err = {0};
    char msg[1024];
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            gh_cli_usage("audit");
            return 0;
        }
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--now") == 0 && i + 1 < argc) {
            if (gh_cli_parse_time(argv[++i], &o.now_us) != GH_OK) {
                fprintf(stderr, "gatehouse audit archive: --now: expected RFC 3339 "
                                "(2026-11-22T04:00:00Z) or unix milliseconds\n");
                return 2;
            }
        } else {
            fprintf(stderr, "gatehouse audit archive: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (config == NULL) {
        fprintf(stderr, "gatehouse audit archive: missing -c FILE\n");
        return 2;
    }
    if (gh_config_load(config, &cfg, &err) != GH_OK) {
        fprintf(stderr, "%s\n", gh_err_format(&err, msg, sizeof(msg)));
        return 2;
    }
    if (gh_cli_as_owner(cfg, "audit archive") != 0) {
        rc = 2;
        goto out;
    }
    params = gh_runtime_store_params(cfg);
    o.dir = cfg->audit.archive_dir;
    /* Archiving writes: the store must have audit_archives (migration 5). */
    if (gh_store_open(&params, &st, &err) != GH_OK ||
        gh_store_migrate(st, NULL, NULL, &err) != GH_OK) {
        fprintf(stderr, "gatehouse audit archive: %s\n", err.msg);
        rc = 2;
        goto out;
    }
    rc = gh_audit_archive_run(st, cfg, &o, &stats, &err);
    printf("archived %" PRIu64 " events in %" PRIu64 " segments to %s", stats.events,
           stats.segments, o.dir);
    if (stats.orphans > 0)
        printf(" (removed %" PRIu64 " files left by an interrupted pass)", stats.orphans);
    printf("\n");
    if (rc != GH_OK) {
        fprintf(stderr, "gatehouse audit archive: %s\n", err.msg);
        rc = 1;
    }
out:
    gh_store_close(st);
    gh_config_free(cfg);
    return rc;
}

int gh_cmd_audit(int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";

    if (strcmp(verb, "verify") == 0) return verify(argc - 1, argv + 1);
    if (strcmp(verb, "archive") == 0) return archive_cmd(argc - 1, argv + 1);
    if (strcmp(verb, "list") == 0) return gh_cmd_audit_list(argc - 1, argv + 1);
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
        gh_cli_usage("audit");
        return 0;
    }
    gh_cli_usage("audit");
    return 2;
}
