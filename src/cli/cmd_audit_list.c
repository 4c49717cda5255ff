/* gatehouse audit list -c FILE [filters] [--oldest-first] [--limit N]: the
 * audit log read straight from the store named by the config, as GET
 * /v1/audit reads it (the same filters, the same order, each event as
 * audit/show.h shows it, one JSON line each), for an operator at the
 * store's machine, on a restored backup, or when no gateway runs. The
 * store is only read. Exit 0 (even with no event); 2: usage, config or
 * store errors. */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/show.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/runtime.h"
#include "store/store.h"

#define PAGE 200

struct list_args {
    const char *config, *tenant, *limit;
    struct gh_store_audit_filter f;
};

static void put_stdout(void *arg, const char *s, size_t n)
{
    fwrite(s, 1, n, arg);
}

static int usage_error(const char *what)
{
    fprintf(stderr, "gatehouse audit list: %s\n", what);
    return 2;
}

/* -1: go on; else the exit code. */
static int parse(int argc, char **argv, struct list_args *a)
{
    static const struct {
        const char *flag;
        size_t off;
    } strings[] = {
        {"--actor", offsetof(struct gh_store_audit_filter, actor)},
        {"--action", offsetof(struct gh_store_audit_filter, action)},
        {"--outcome", offsetof(struct gh_store_audit_filter, outcome)},
        {"--resource", offsetof(struct gh_store_audit_filter, resource)},
        {"--request-id", offsetof(struct gh_store_audit_filter, request_id)},
    };

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool taken = false;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            gh_cli_usage("audit");
            return 0;
        }
        if (strcmp(arg, "--oldest-first") == 0) {
            a->f.oldest_first = true;
            continue;
        }
        if (val == NULL) {
            fprintf(stderr, "gatehouse audit list: unexpected argument \"%s\"\n", arg);
            return 2;
        }
        for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]) && !taken; k++)
            if (strcmp(arg, strings[k].flag) == 0) {
                *(const char **)((char *)&a->f + strings[k].off) = val;
                taken = true;
            }
        if (taken) {
        } else if (strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) {
            a->config = val;
        } else if (strcmp(arg, "--tenant") == 0) {
            a->tenant = val;
        } else if (strcmp(arg, "--limit") == 0) {
            a->limit = val;
        } else if (strcmp(arg, "--from") == 0 || strcmp(arg, "--to") == 0) {
            int64_t *t = arg[2] == 'f' ? &a->f.from_us : &a->f.to_us;
            if (gh_cli_parse_time(val, t) != GH_OK)
                return usage_error("--from/--to: expected RFC 3339 (2026-11-22T04:00:00Z) or "
                                   "unix milliseconds");
        } else {
            fprintf(stderr, "gatehouse audit list: unexpected argument \"%s\"\n", arg);
            return 2;
        }
        i++;
    }
    if (a->config == NULL) return usage_error("missing -c FILE");
    if (a->f.outcome != NULL && strcmp(a->f.outcome, "success") != 0 &&
        strcmp(a->f.outcome, "denied") != 0 && strcmp(a->f.outcome, "failed") != 0)
        return usage_error("--outcome: success, denied or failed");
    return -1;
}

int gh_cmd_audit_list(int argc, char **argv)
{
    struct list_args a = {0};
    struct gh_config *cfg = NULL;
    struct gh_store *st = NULL;
    struct gh_store_params params;
    struct gh_store_tenant t;
    struct gh_store_audit_row *rows = NULL;
    struct gh_store_audit_pos pos, *after = NULL;
    struct gh_err err = {0};
    char msg[1024], *end;
    unsigned long long limit = 100, shown = 0;
    bool more = true;
    int rc = parse(argc, argv, &a);

    if (rc >= 0) return rc;
    if (a.limit != NULL) {
        limit = strtoull(a.limit, &end, 10);
        if (a.limit[0] == '-' || end == a.limit || *end != '\0')
            return usage_error("--limit: a number of events (0: all of them)");
    }
    if (gh_config_load(a.config, &cfg, &err) != GH_OK) {
        fprintf(stderr, "%s\n", gh_err_format(&err, msg, sizeof(msg)));
        return 2;
    }
    params = gh_runtime_store_params(cfg);
    rows = calloc(PAGE, sizeof(*rows));
    rc = rows == NULL ? usage_error("out of memory") : 0;
    if (rc == 0 && gh_store_open(&params, &st, &err) != GH_OK) {
        fprintf(stderr, "gatehouse audit list: %s\n", err.msg);
        rc = 2;
    }
    /* --tenant: a tenant's id or name (as audit verify takes it), or the
     * name of a chain that is no store tenant's (a JWT tenant's). */
    a.f.tenant_id = a.tenant;
    if (rc == 0 && a.tenant != NULL && gh_store_tenant_find(st, a.tenant, &t, &err) == GH_OK)
        a.f.tenant_id = t.id;
    while (rc == 0 && more && (limit == 0 || shown < limit)) {
        size_t want = PAGE, count = 0;

        if (limit != 0 && limit - shown < want) want = (size_t)(limit - shown);
        if (gh_store_audit_query(st, &a.f, after, want, rows, &count, &more, &err) != GH_OK) {
            fprintf(stderr, "gatehouse audit list: %s\n", err.msg);
            rc = 2;
            break;
        }
        for (size_t i = 0; i < count; i++) {
            if (gh_audit_show_event(&rows[i], NULL, put_stdout, stdout) < 0) {
                fprintf(stderr, "gatehouse audit list: out of memory\n");
                rc = 2;
                break;
            }
            putchar('\n');
        }
        shown += count;
        if (count == 0) break;
        pos = (struct gh_store_audit_pos){rows[count - 1].time_us, rows[count - 1].rowid};
        after = &pos;
    }
    if (fflush(stdout) != 0 && rc == 0) rc = usage_error("cannot write the output");
    free(rows);
    gh_store_close(st);
    gh_config_free(cfg);
    return rc;
}
