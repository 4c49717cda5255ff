/* Commands run as root next to a gateway that runs as its own user: see
 * cli.h, gh_cli_as_owner. */
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"

/* The folder that holds <path>, or <path> itself when <is_dir> and it
 * exists; its owner in *<uid>. False when neither can be read. */
static bool folder_owner(const char *path, bool is_dir, uid_t *uid, char *folder, size_t size)
{
    struct stat sb;
    char copy[4096];

    if (is_dir && stat(path, &sb) == 0) {
        snprintf(folder, size, "%s", path);
        *uid = sb.st_uid;
        return true;
    }
    snprintf(copy, sizeof(copy), "%s", path);
    snprintf(folder, size, "%s", dirname(copy));
    if (stat(folder, &sb) != 0) return false;
    *uid = sb.st_uid;
    return true;
}

int gh_cli_as_owner(const struct gh_config *cfg, const char *command)
{
    const struct {
        const char *path;
        bool is_dir;
    } places[] = {
        {cfg->store.sqlite, false},
        {cfg->secrets.master_key_file, false},
        {cfg->audit.archive_dir, true},
    };
    char folder[4096], name[64];
    struct passwd pw, *found = NULL;
    char buf[1024];
    uid_t uid;
    bool p11;

    if (geteuid() != 0) return 0;
    for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
        if (places[i].path == NULL ||
            !folder_owner(places[i].path, places[i].is_dir, &uid, folder, sizeof(folder)) ||
            uid == 0)
            continue;
        if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found != NULL)
            snprintf(name, sizeof(name), "%s", found->pw_name);
        else
            snprintf(name, sizeof(name), "#%u", (unsigned)uid);
        /* A PKCS#11 token's files are the gateway's user's too, reached
         * through a group the unit adds (docs/operations.md: softhsm for
         * SoftHSM2): runuser gives only the user's own groups. */
        p11 = cfg->secrets.provider != NULL && strcmp(cfg->secrets.provider, "pkcs11") == 0;
        fprintf(stderr,
                "gatehouse %s: not run as root: %s belongs to %s, the gateway's user, and files "
                "this command makes there would be root's, which the gateway could not open. "
                "Run it as that user: runuser -u %s%s -- gatehouse %s ...%s\n",
                command, folder, name, name, p11 ? " -g GROUP -G TOKEN_GROUP" : "", command,
                p11 ? " (GROUP: the unit's Group=; TOKEN_GROUP: the group that reaches the "
                      "token, softhsm for SoftHSM2)"
                    : "");
        return 1;
    }
    return 0;
}
