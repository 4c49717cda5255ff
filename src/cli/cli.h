/* Subcommands, declared as data (tmux's cmd-*.c): each has a name, a usage
 * line, a summary and a handler; `gatehouse --help` and the dispatcher are
 * built from the same table. Handlers return the process exit code. */
#ifndef GH_CLI_CLI_H
#define GH_CLI_CLI_H

#include <stdint.h>

struct gh_cli_command {
    const char *name;
    const char *usage;                 /* arguments after the name */
    const char *summary;               /* one line */
    const char *help;                  /* the rest of --help, may be NULL */
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

int gh_cli_main(int argc, char **argv);

int gh_cmd_run(int argc, char **argv);
int gh_cmd_check(int argc, char **argv);
int gh_cmd_reload(int argc, char **argv);
int gh_cmd_demo(int argc, char **argv);
int gh_cmd_version(int argc, char **argv);
int gh_cmd_migrate(int argc, char **argv);
int gh_cmd_admin(int argc, char **argv);
int gh_cmd_tenants(int argc, char **argv);
int gh_cmd_keys(int argc, char **argv);
int gh_cmd_audit(int argc, char **argv);
int gh_cmd_audit_list(int argc, char **argv); /* `audit list`, from gh_cmd_audit */

/* "2026-11-22T04:00:00Z" (RFC 3339: fraction and offset allowed) or unix
 * milliseconds, to unix microseconds: GH_OK or GH_ERROR. */
int gh_cli_parse_time(const char *s, int64_t *us);
int gh_cmd_backup(int argc, char **argv);
int gh_cmd_restore_drill(int argc, char **argv);
int gh_cmd_postgres(int argc, char **argv);
int gh_cmd_secrets(int argc, char **argv);

/* Parses "-c FILE" / "--config FILE" / "--config=FILE" from <argv>; prints
 * usage and returns NULL on anything else. "--help" sets *<help>. */
const char *gh_cli_config_arg(int argc, char **argv, int *help);
void gh_cli_usage(const char *name);

struct gh_config;
/* For a command that changes the store or makes files (the SQLite store,
 * the master key file, archive segments), run as root: refuses (1, said on
 * stderr) when the folder of one of them belongs to another user, the
 * gateway's: what the command made would be root's, and the gateway could
 * not open it at its next start. 0 otherwise (not root, or root's folders). */
int gh_cli_as_owner(const struct gh_config *cfg, const char *command);

/* The demo upstream: a small HTTP server on 127.0.0.1, in its own thread,
 * that echoes requests as JSON (see docs). Returns its port, or 0. */
unsigned gh_demo_upstream_start(void);

#endif
