/* The CLI's audit writer: see cli_audit.h. */
#include "cli/cli_audit.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/ops.h"
#include "core/log.h"
#include "core/version.h"
#include "secrets/secrets.h"
#include "store/store.h"

/* A submit the writer answered "not stored" is tried this many times in
 * all: the store may have refused a stale head more often than the writer
 * retries it (a gateway busy on the same chain). The event keeps its id, so
 * a record stored after all is recognisable as the same one. */
#define SUBMIT_TRIES 3

/* A user name as an actor may carry it: the characters of POSIX portable
 * names, so that no value of the environment puts anything else there. */
static bool plain_name(const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > 64) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

static void actor_of(char *out, size_t size)
{
    uid_t uid = geteuid();
    struct passwd pw, *found = NULL;
    char buf[1024];
    const char *sudo = getenv("SUDO_USER");

    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) != 0 || found == NULL ||
        !plain_name(found->pw_name))
        snprintf(out, size, "cli:uid:%u", (unsigned)uid);
    else
        snprintf(out, size, "cli:%s", found->pw_name);
    /* Only root's: sudo sets it, and any other account could set it to
     * anything. Root could too; it says whom sudo ran the command for. */
    if (uid == 0 && plain_name(sudo) && strcmp(sudo, "root") != 0) {
        size_t n = strlen(out);
        snprintf(out + n, size - n, "/sudo:%s", sudo);
    }
}

/* Before the first gateway start there is no master key to open: no key
 * check recorded and nothing sealed in the store (no key has ever been used
 * with it), and with the local provider no file either. Only then may a
 * command's writer store a new signing key in clear, sealed by that start;
 * any other failure to open the provider (a file with the wrong mode,
 * another node's key, a token that does not answer once used) refuses. */
static bool no_master_key_yet(const struct gh_config *cfg, struct gh_store *st)
{
    const char *file = cfg->secrets.master_key_file;
    bool local = cfg->secrets.provider == NULL || strcmp(cfg->secrets.provider, "local") == 0;
    struct gh_err none = {0};
    uint32_t in_use = 0, newest = 1;
    uint64_t sealed = 1;
    struct stat sb;

    if (local && file != NULL && (stat(file, &sb) == 0 || errno != ENOENT)) return false;
    return gh_store_secrets_count(st, &sealed, &none) == GH_OK && sealed == 0 &&
           gh_store_secrets_kek_state(st, &in_use, &newest, &none) == GH_OK && newest == 0;
}

/* The provider for the signing key, or NULL with *<ok> when there is no
 * master key yet (logged). */
static struct gh_secrets *open_secrets(const struct gh_config *cfg, struct gh_store *st, bool *ok,
                                       struct gh_err *err)
{
    struct gh_secrets *s = gh_secrets_open(cfg, st, err);

    *ok = s != NULL;
    if (s == NULL && no_master_key_yet(cfg, st)) {
        gh_log_warn("no master key yet (the first `gatehouse run` makes it): the audit signing key "
                    "this command may make is kept in clear until that start seals it");
        *ok = true;
    }
    return s;
}

int gh_cli_audit_open(struct gh_cli_audit *a, const char *command, const struct gh_config *cfg,
                      struct gh_store *st, struct gh_secrets *secrets)
{
    struct gh_err err = {0};
    char msg[1024];
    bool ok = true;

    memset(a, 0, sizeof(*a));
    a->command = command;
    a->strict = cfg->audit.strict;
    a->prefix = cfg->audit.param_prefix;
    actor_of(a->actor, sizeof(a->actor));
    if (!cfg->audit.enabled || !cfg->audit.events.admin) return 0;
    if (secrets == NULL) secrets = a->own_secrets = open_secrets(cfg, st, &ok, &err);
    if (!ok) goto fail;
    a->service = gh_audit_service_new(cfg, st, 0, &err);
    if (a->service == NULL) goto fail;
    gh_audit_service_set_tool(a->service);
    gh_audit_service_set_secrets(a->service, secrets);
    if (gh_audit_service_start(a->service, &err) != GH_OK) goto fail;
    return 0;
fail:
    fprintf(stderr,
            "gatehouse %s: not done, as it could not be audited: %s (the CLI writes the audit "
            "record the admin API would, with this node's master key)\n",
            command, gh_err_format(&err, msg, sizeof(msg)));
    gh_cli_audit_close(a);
    return 1;
}

void gh_cli_audit_begin(const struct gh_cli_audit *a, struct gh_audit_event *ev, const char *action,
                        const char *tenant, const char *resource)
{
    char ua[64];

    gh_audit_event_new(ev);
    snprintf(ua, sizeof(ua), "gatehouse-cli/%s", gh_version());
    GH_AUDIT_SET(ev, actor, gh_str_cstr(a->actor));
    GH_AUDIT_SET(ev, action, gh_str_cstr(action));
    GH_AUDIT_SET(ev, tenant, gh_str_cstr(tenant));
    GH_AUDIT_SET(ev, resource, gh_str_cstr(resource));
    GH_AUDIT_SET(ev, user_agent, gh_str_cstr(ua));
    gh_audit_params_begin(ev);
}

void gh_cli_audit_param(const struct gh_cli_audit *a, struct gh_audit_event *ev, const char *name,
                        const char *value)
{
    gh_audit_params_add(ev, gh_str_cstr(name), gh_str_cstr(value), a->prefix);
}

int gh_cli_audit_end(struct gh_cli_audit *a, struct gh_audit_event *ev, int store_rc)
{
    int rc = GH_ERROR;

    if (a->service == NULL) return 0;
    ev->outcome = store_rc == GH_OK ? GH_AUDIT_SUCCESS : GH_AUDIT_FAILED;
    if (store_rc != GH_OK && ev->reason[0] == '\0')
        GH_AUDIT_SET(ev, reason, gh_str_cstr(gh_ops_store_error_code(store_rc)));
    for (int i = 0; i < SUBMIT_TRIES && rc != GH_OK; i++)
        rc = gh_audit_submit(a->service, ev, true);
    if (rc == GH_OK) return 0;
    fprintf(stderr,
            "gatehouse %s: the audit record (%s, %s) could not be written; the reason is logged "
            "above\n",
            a->command, ev->action, gh_audit_outcome_name(ev->outcome));
    return a->strict ? 1 : 0;
}

void gh_cli_audit_close(struct gh_cli_audit *a)
{
    gh_audit_service_free(a->service); /* writes what is queued */
    gh_secrets_close(a->own_secrets);
    a->service = NULL;
    a->own_secrets = NULL;
}
