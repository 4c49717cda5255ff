/* gatehouse audit verify -c FILE [--tenant T]: the offline verifier of the
 * audit log in the store named by the config (src/audit/verify.h). It
 * opens the store without migrating it (a verifier writes nothing) and
 * prints one summary line per chain on stdout, and each chain's first
 * problem, with its seq, on stderr. Exit 0: every chain intact; 1: tampering
 * found; 2: usage, config or store errors. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "audit/verify.h"
#include "cli/cli.h"
#include "config/config.h"
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

static int verify(int argc, char **argv)
{
    const char *config = NULL, *tenant = NULL;
    struct gh_config *cfg = NULL;
    struct gh_store *st = NULL;
    struct gh_store_params params = {0};
    struct gh_store_tenant t;
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
    params.sqlite_path = cfg->store.sqlite;
    if (gh_store_open(&params, &st, &err) != GH_OK) {
        fprintf(stderr, "gatehouse audit verify: %s\n", err.msg);
        gh_config_free(cfg);
        return 2;
    }
    /* --tenant takes a tenant's id (its chain) or its name. */
    if (tenant != NULL && gh_store_tenant_get_by_name(st, tenant, &t, &err) == GH_OK) tenant = t.id;
    if (tenant != NULL && !gh_store_valid_audit_chain(tenant)) {
        fprintf(stderr, "gatehouse audit verify: --tenant: not a tenant id or name\n");
        rc = 2;
        goto out;
    }
    if (gh_audit_verify(st, tenant, report, &chains, &bad, &err) != GH_OK) {
        fprintf(stderr, "gatehouse audit verify: %s\n", err.msg);
        rc = 2;
        goto out;
    }
    if (chains == 0) printf("no audit events%s%s\n", tenant ? " for " : "", tenant ? tenant : "");
    rc = bad == 0 ? 0 : 1;
out:
    gh_store_close(st);
    gh_config_free(cfg);
    return rc;
}

int gh_cmd_audit(int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";

    if (strcmp(verb, "verify") == 0) return verify(argc - 1, argv + 1);
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
        gh_cli_usage("audit");
        return 0;
    }
    gh_cli_usage("audit");
    return 2;
}
