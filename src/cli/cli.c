/* The command table and dispatcher. */
#include "cli/cli.h"
#include "core/version.h"

#include <stdio.h>
#include <string.h>

static const struct gh_cli_command commands[] = {
    {"run", "-c FILE", "run the gateway with a config file",
     "Signals: SIGHUP reloads the config (kept as is when the new one has errors),\n"
     "SIGTERM/SIGINT shut down gracefully, SIGUSR1 reopens the access log file.\n",
     gh_cmd_run},
    {"check", "-c FILE", "validate a config file (errors as file:line:col); exit 1 on errors", NULL,
     gh_cmd_check},
    {"reload", "-c FILE --pid PID [--timeout 30s]",
     "check the file, signal the gateway PID to reload it, and wait for the outcome",
     "Exit 0 when the gateway runs the new config; 1 when the file has errors (nothing\n"
     "is sent), when the gateway refused it (a key that needs a restart, a secret it\n"
     "cannot read: it keeps the running config, and its log says why), or when no outcome\n"
     "came within --timeout. The outcome is read from the admin listener's /readyz, as\n"
     "the file names it; with the admin listener off the signal is sent with a warning.\n"
     "For systemd: ExecReload=gatehouse reload -c FILE --pid $MAINPID.\n",
     gh_cmd_reload},
    {"demo", "[--listen ADDR] [--admin ADDR]",
     "run on the built-in config (default 127.0.0.1:8080, admin 127.0.0.1:9901) in front of a "
     "demo upstream",
     NULL, gh_cmd_demo},
    {"migrate", "-c FILE", "apply the store's migrations and exit", NULL, gh_cmd_migrate},
    {"admin", "bootstrap -c FILE [--name LABEL]",
     "create an operator key (role admin on the system tenant); printed once, last line",
     "The first one, or another one (a lost key, a second operator): each run makes a new\n"
     "key, the ones made before stay valid (revoke them with the admin API or `keys revoke\n"
     "--tenant system`). Audited as key.create (actor cli:<user>), as the admin API would.\n",
     gh_cmd_admin},
    {"tenants", "create NAME [--plan P] | list | suspend T | activate T  -c FILE",
     "manage tenants in the store (T: id or name)",
     "Changes are audited (actor cli:<user>) and send the admin API's webhook events;\n"
     "one that cannot be audited is not made.\n",
     gh_cmd_tenants},
    {"keys", "create|list|rotate KEY|revoke KEY --tenant T -c FILE", "manage API keys in the store",
     "create: [--role R]... [--scope S]... [--name LABEL] [--ttl 30d]\n"
     "rotate: [--grace 24h] (the old key stays valid that long)\n"
     "A new key is printed once, alone on the last line. Changes are audited (actor\n"
     "cli:<user>) and send the admin API's webhook events; one that cannot be audited\n"
     "is not made.\n",
     gh_cmd_keys},
    {"audit",
     "verify -c FILE [--archive DIR] [--tenant T] | archive -c FILE [--now TIME] |\n"
     "             list -c FILE [filters]",
     "verify the audit log's hash chains and checkpoints (exit 0 intact, 1 tampered, 2 error),\n"
     "             move events past retention to archive segments, or list events",
     "Each chain gets a summary line on stdout; the first problem of a chain (changed,\n"
     "deleted, inserted, reordered, bad checkpoint signature, truncated) is named with\n"
     "its seq on stderr. T is a tenant id or name, or \"system\" (one that names no tenant\n"
     "and no chain is exit 2). The store is only read.\n"
     "--archive DIR also checks the archive segments (audit.archive_dir) and continues\n"
     "each chain across into the store; without it, chains start at their archived head.\n"
     "archive: one pass of audit retention; --now (RFC 3339 or unix ms) moves \"now\".\n"
     "list: the events the store holds, as GET /v1/audit shows them, one JSON line each,\n"
     "      newest first: [--tenant T] [--actor A] [--action X] [--outcome success|denied|\n"
     "      failed] [--resource R] [--request-id ID] [--from TIME] [--to TIME]\n"
     "      [--oldest-first] [--limit N] (default 100; 0: all). The store is only read.\n",
     gh_cmd_audit},
    {"backup", "-c FILE --out DIR",
     "an online, consistent backup of the store into the new folder DIR, with a manifest",
     "DIR gets the store's copy (SQLite: gatehouse.db, as of one commit; PostgreSQL:\n"
     "gatehouse.dump, pg_dump of the gatehouse schema from one snapshot), taken while the\n"
     "gateway runs, and manifest.json (time, size, SHA-256, row counts, audit chain\n"
     "heads). The master key file and the audit archive folder are not included: back\n"
     "them up apart.\n",
     gh_cmd_backup},
    {"restore-drill", "-c FILE --from DIR [--admin-url URL]",
     "restore the backup in DIR into a temporary place and check it (exit 0 pass, 1 fail)",
     "Checks the file against the manifest (size, SHA-256), restores it (SQLite: into a\n"
     "temporary folder; PostgreSQL: into a scratch database gatehouse_drill_* of the\n"
     "config's server, created over --admin-url, by default the config's server as\n"
     "whoever runs the command, and always dropped), runs the engine's integrity check,\n"
     "compares row counts and audit chain heads with the manifest, verifies the audit\n"
     "chains and checkpoints and opens every sealed secret. One PASS/FAIL line each.\n",
     gh_cmd_restore_drill},
    {"postgres", "init -c FILE [--admin-url URL]",
     "create the PostgreSQL store's roles, schema and row-level security policies, and migrate",
     "The config's store.postgres names the gateway's login role; the work is done as a\n"
     "role that may create roles and grant BYPASSRLS (a superuser): --admin-url, or by\n"
     "default the config's server and database as whoever runs this (PGUSER, ~/.pgpass,\n"
     "the OS user: sudo -u postgres ...). Running it again changes nothing.\n"
     "See docs/postgres.md.\n",
     gh_cmd_postgres},
    {"secrets", "init | set NAME | get NAME | list | delete NAME | status | rotate-master  -c FILE",
     "secrets sealed under the master key (provider local or pkcs11)",
     "init: make master key version 1 (local: the master key file, mode 0600, refusing to\n"
     "      overwrite one; pkcs11: <key_label>-v1 on the token)\n"
     "set NAME [--tenant T]: seal the value read from stdin (never from the command line;\n"
     "      one final newline is dropped). `secret:NAME` in a config reads config/NAME\n"
     "      of the system tenant: `gatehouse secrets set config/NAME`.\n"
     "get NAME [--tenant T]: write the value to stdout, for scripts\n"
     "list [--tenant T]: names, master key versions and sizes; never values\n"
     "delete NAME [--tenant T]\n"
     "status: provider, current master key version, secrets per version, last rotation\n"
     "rotate-master [--batch N] [--limit N]: re-wrap every data key under a new master key\n"
     "      version while gateways keep running; --batch rows per transaction (default\n"
     "      100), --limit stops after N rows (throttling): a rerun resumes the same\n"
     "      rotation. Audited as secrets.rotate_master on the system chain.\n"
     "rotate-master --prepare: only make the next master key version, in use nowhere\n"
     "      (nodes keep sealing under the current one): copy the master key file to\n"
     "      every node, then run rotate-master, which puts it in use.\n"
     "rotate-master --unprepare: forget the prepared version (its key lost before the\n"
     "      rotation); nothing was sealed under it.\n"
     "T is a tenant id or name; the default is the system tenant.\n",
     gh_cmd_secrets},
    {"version", "", "print the version", NULL, gh_cmd_version},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage_all(FILE *f)
{
    fprintf(f, "gatehouse %s: a security and observability gateway for HTTP services\n\n",
            gh_version());
    fprintf(f, "usage: gatehouse <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-8s %s\n  %-8s   %s\n", commands[i].name, commands[i].usage, "",
                commands[i].summary);
    fprintf(f, "\n`gatehouse <command> --help` tells more.\n");
}

void gh_cli_usage(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, name) != 0) continue;
        printf("usage: gatehouse %s %s\n\n%s\n", commands[i].name, commands[i].usage,
               commands[i].summary);
        if (commands[i].help) printf("\n%s", commands[i].help);
        return;
    }
}

const char *gh_cli_config_arg(int argc, char **argv, int *help)
{
    const char *path = NULL;
    *help = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            *help = 1;
            return NULL;
        }
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        } else {
            fprintf(stderr, "gatehouse %s: unexpected argument \"%s\"\n", argv[0], argv[i]);
            return NULL;
        }
    }
    if (path == NULL) fprintf(stderr, "gatehouse %s: missing -c FILE\n", argv[0]);
    return path;
}

int gh_cli_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage_all(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) return gh_cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "gatehouse: unknown command \"%s\"\n\n", argv[1]);
    usage_all(stderr);
    return 2;
}
