/* The audit trail of changes made with the CLI (docs/config.md, "audit":
 * "Changes made with the CLI"). `admin bootstrap`, `tenants create|suspend|activate`,
 * `keys create|rotate|revoke` and `secrets set|delete|rotate-master` write
 * the events the admin API writes for the same change: the same actions,
 * resources and parameters, on the tenant's chain. A command has an audit
 * writer of its own, a tool writer (audit.h), next to any gateway running
 * on the same store: the store refuses an append over a stale chain head,
 * and the writer chains the event again after the store's head.
 *
 * The actor is "cli:<user>", the account the command runs as (its
 * effective uid), or "cli:root/sudo:<user>" when root runs it through
 * sudo. The event is written once the store has answered, with the
 * outcome, and the command waits until it is committed. Whether the
 * writer runs follows the config: audit.enabled and audit.events (admin).
 *
 * Use: open before the change (a writer that cannot start refuses the
 * change: nothing unaudited), begin + params + end per change, close. */
#ifndef GH_CLI_CLI_AUDIT_H
#define GH_CLI_CLI_AUDIT_H

#include <stdbool.h>

#include "audit/audit.h"
#include "config/config.h"

struct gh_store;
struct gh_secrets;

struct gh_cli_audit {
    struct gh_audit_service *service; /* NULL: admin events are off */
    struct gh_secrets *own_secrets;   /* opened by open, closed by close */
    const char *command;              /* "keys revoke", for messages */
    bool strict;                      /* audit.mode strict (a caller may set it): an event
                                       * not written fails the command */
    unsigned prefix;                  /* audit.param_prefix */
    char actor[GH_AUDIT_ACTOR_SIZE];
};

/* Starts the writer when admin events are on. Its signing key is sealed
 * with <secrets>; when NULL the config's provider is opened here, and when
 * there is no master key yet (before the first gateway start: no key
 * check, nothing sealed, no local file) a new signing key is stored in clear,
 * with a warning, and sealed by the gateway's first start. Returns 0, or 1 after saying on stderr
 * that the command is not done, and why. */
int gh_cli_audit_open(struct gh_cli_audit *a, const char *command, const struct gh_config *cfg,
                      struct gh_store *st, struct gh_secrets *secrets);

/* A new event: <action> (as the admin API names it) on <tenant>'s chain
 * ("" for the system chain), about <resource>. */
void gh_cli_audit_begin(const struct gh_cli_audit *a, struct gh_audit_event *ev, const char *action,
                        const char *tenant, const char *resource);

/* One parameter, as the admin API records a body member: its name, and its
 * value hashed with a prefix, or redacted (docs/audit-format.md). */
void gh_cli_audit_param(const struct gh_cli_audit *a, struct gh_audit_event *ev, const char *name,
                        const char *value);

/* Writes <ev> with the store's answer <store_rc>: success on GH_OK, else
 * failed, with the admin API's error code as its reason unless it has one
 * already. Returns 0, or 1
 * when it could not be written and audit.mode is strict (said on stderr:
 * the change was made, its record is missing). A no-op without a writer. */
int gh_cli_audit_end(struct gh_cli_audit *a, struct gh_audit_event *ev, int store_rc);

/* Writes what is queued, stops the writer. Safe on a zeroed <a>. */
void gh_cli_audit_close(struct gh_cli_audit *a);

#endif
