/* `gatehouse run`, `gatehouse check`, `gatehouse version`. */
#include <stdio.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/version.h"

static int load_or_report(const char *path, struct gh_config **cfg)
{
    struct gh_err err = {0};
    char msg[1024];
    if (gh_config_load(path, cfg, &err) != GH_OK) {
        fprintf(stderr, "%s\n", gh_err_format(&err, msg, sizeof(msg)));
        return 1;
    }
    return 0;
}

int gh_cmd_check(int argc, char **argv)
{
    struct gh_config *cfg = NULL;
    int help;
    const char *path = gh_cli_config_arg(argc, argv, &help);

    if (help) {
        gh_cli_usage("check");
        return 0;
    }
    if (path == NULL) return 2;
    if (load_or_report(path, &cfg) != 0) return 1;
    /* Warnings do not fail the check: the file is valid as written. */
    for (size_t i = 0; i < cfg->nwarnings; i++)
        fprintf(stderr, "%s:%d:%d: warning: %s\n", path, cfg->warnings[i].pos.line,
                cfg->warnings[i].pos.col, cfg->warnings[i].msg);
    printf("%s: ok (%zu listeners, %zu upstreams, %zu routes, %d workers)\n", path, cfg->nlistens,
           cfg->nupstreams, cfg->nroutes, cfg->workers);
    gh_config_free(cfg);
    return 0;
}

int gh_cmd_run(int argc, char **argv)
{
    struct gh_config *cfg = NULL;
    struct gh_runtime rt;
    struct gh_err err = {0};
    char msg[1024];
    int help, rc;
    const char *path = gh_cli_config_arg(argc, argv, &help);

    if (help) {
        gh_cli_usage("run");
        return 0;
    }
    if (path == NULL) return 2;
    /* Through the log, as every later line of the run: a unit's journal
     * or a log file shows when the start failed and on which node. */
    if (gh_config_load(path, &cfg, &err) != GH_OK) {
        gh_log_error("%s", gh_err_format(&err, msg, sizeof(msg)));
        return 1;
    }
    if (gh_runtime_start(&rt, cfg, path, &err) != GH_OK) {
        gh_log_error("%s", gh_err_format(&err, msg, sizeof(msg)));
        gh_runtime_release(&rt);
        return 1;
    }
    rc = gh_runtime_run(&rt);
    gh_runtime_release(&rt);
    return rc;
}

int gh_cmd_version(int argc, char **argv)
{
    printf("gatehouse %s\n", gh_version());
    return 0;
}
