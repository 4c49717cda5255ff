/* PostgreSQL connection strings rewritten for another use, and PostgreSQL's
 * client programs (pg_dump, pg_restore) run on them (pg_int.h): backups and
 * restore drills (pg_backup.c), `gatehouse postgres init`'s default
 * connection (pg_migrations.c).
 *
 * A password never goes on a command line (any local user can read those
 * in ps): the conninfo handed to a program has none, and the program gets
 * it as PGPASSWORD in its own environment (readable only by its user). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/pg_int.h"

extern char **environ;

static bool replaced(const struct gh_pg_conninfo_edit *e, const char *key)
{
    if (strcmp(key, "password") == 0) return e == NULL || !e->keep_password;
    if (e == NULL) return false;
    if (e->drop_user && strcmp(key, "user") == 0) return true;
    if (e->dbname != NULL && strcmp(key, "dbname") == 0) return true;
    /* A host set here is the one server a program must reach (where a
     * snapshot lives, where a database was created): the URL's list of
     * hosts and addresses, and the choice among them, go. */
    if (e->host != NULL &&
        (strcmp(key, "host") == 0 || strcmp(key, "hostaddr") == 0 || strcmp(key, "port") == 0 ||
         strcmp(key, "target_session_attrs") == 0 || strcmp(key, "load_balance_hosts") == 0))
        return true;
    return false;
}

/* key='value', quotes and backslashes escaped (libpq's conninfo syntax),
 * into <buf> which the caller sized for it (gh_pg__conninfo's <cap>). */
static void put(char *buf, size_t cap, size_t *o, const char *key, const char *val)
{
    *o += (size_t)snprintf(buf + *o, cap - *o, "%s%s='", *o ? " " : "", key);
    for (const char *c = val; *c; c++) {
        if (*c == '\'' || *c == '\\') buf[(*o)++] = '\\';
        buf[(*o)++] = *c;
    }
    buf[(*o)++] = '\'';
    buf[*o] = '\0';
}

int gh_pg__conninfo(const char *url, const struct gh_pg_conninfo_edit *e, char **out,
                    char **password, struct gh_err *err)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    size_t cap = 64, o = 0;
    char *buf;

    *out = NULL;
    if (password != NULL) *password = NULL;
    if (opts == NULL) {
        gh_err_set(err, NULL, 0, 0, "postgres: the URL cannot be parsed: %.200s",
                   msg ? msg : "out of memory");
        PQfreemem(msg);
        return GH_ERROR;
    }
    for (PQconninfoOption *p = opts; p->keyword != NULL; p++)
        if (p->val != NULL) cap += strlen(p->keyword) + 2 * strlen(p->val) + 4;
    if (e != NULL) {
        const char *v[] = {e->dbname, e->host, e->port};
        for (size_t i = 0; i < 3; i++)
            if (v[i] != NULL) cap += 2 * strlen(v[i]) + 16;
    }
    buf = malloc(cap);
    if (buf == NULL) goto oom;
    buf[0] = '\0';
    for (PQconninfoOption *p = opts; p->keyword != NULL; p++) {
        if (strcmp(p->keyword, "password") == 0 && p->val != NULL && p->val[0] != '\0' &&
            password != NULL && (*password = strdup(p->val)) == NULL)
            goto oom;
        if (p->val == NULL || p->val[0] == '\0' || replaced(e, p->keyword)) continue;
        put(buf, cap, &o, p->keyword, p->val);
    }
    if (e != NULL && e->dbname != NULL) put(buf, cap, &o, "dbname", e->dbname);
    if (e != NULL && e->host != NULL) put(buf, cap, &o, "host", e->host);
    if (e != NULL && e->host != NULL && e->port != NULL) put(buf, cap, &o, "port", e->port);
    PQconninfoFree(opts);
    *out = buf;
    return GH_OK;
oom:
    PQconninfoFree(opts);
    free(buf);
    if (password != NULL && *password != NULL) {
        free(*password);
        *password = NULL;
    }
    return gh_err_set(err, NULL, 0, 0, "postgres: out of memory");
}

static bool executable(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && access(path, X_OK) == 0;
}

/* The highest major version under /usr/lib/postgresql that has <tool>. */
static bool newest_installed(const char *tool, char *path, size_t size)
{
    DIR *d = opendir("/usr/lib/postgresql");
    struct dirent *e;
    long best = -1;
    char cand[PATH_MAX];

    if (d == NULL) return false;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0' || v <= best) continue;
        snprintf(cand, sizeof(cand), "/usr/lib/postgresql/%s/bin/%s", e->d_name, tool);
        if (!executable(cand)) continue;
        best = v;
        snprintf(path, size, "%s", cand);
    }
    closedir(d);
    return best >= 0;
}

int gh_pg__tool(const char *tool, int server_version, char *path, size_t size, struct gh_err *err)
{
    const char *env = getenv("PATH");
    char cand[PATH_MAX];

    /* The server's own major version first: pg_dump refuses a server newer
     * than itself, and an older pg_restore may not read a newer dump. */
    snprintf(cand, sizeof(cand), "/usr/lib/postgresql/%d/bin/%s", server_version / 10000, tool);
    if (executable(cand)) {
        snprintf(path, size, "%s", cand);
        return GH_OK;
    }
    for (const char *p = env ? env : "/usr/local/bin:/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        if (n > 0 && n < sizeof(cand) - strlen(tool) - 2) {
            snprintf(cand, sizeof(cand), "%.*s/%s", (int)n, p, tool);
            if (executable(cand)) {
                snprintf(path, size, "%s", cand);
                return GH_OK;
            }
        }
        p += n + (p[n] == ':');
    }
    if (newest_installed(tool, path, size)) return GH_OK;
    return gh_err_set(err, NULL, 0, 0,
                      "postgres: %s not found (on PATH or under /usr/lib/postgresql/*/bin): "
                      "install the PostgreSQL client programs (postgresql-client)",
                      tool);
}

/* The environment of the child: ours, with PGPASSWORD set to <password>
 * (or left as it is when NULL). Only the array is allocated. */
static char **child_env(char *pw_entry)
{
    size_t n = 0, o = 0;
    char **env;

    while (environ[n] != NULL)
        n++;
    env = calloc(n + 2, sizeof(*env));
    if (env == NULL) return NULL;
    for (size_t i = 0; i < n; i++)
        if (pw_entry == NULL || strncmp(environ[i], "PGPASSWORD=", 11) != 0) env[o++] = environ[i];
    if (pw_entry != NULL) env[o++] = pw_entry;
    env[o] = NULL;
    return env;
}

/* The program's error output, as one line: its lines joined with "; ". */
static void flatten(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    for (char *c = s; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
}

int gh_pg__tool_run(char *const argv[], const char *password, struct gh_err *err)
{
    posix_spawn_file_actions_t fa;
    char msg[400] = "", *pw_entry = NULL, **env = NULL;
    size_t used = 0;
    int pipefd[2] = {-1, -1}, status = 0, rc = GH_ERROR, spawned;
    pid_t pid;
    ssize_t n;

    if (password != NULL) {
        size_t len = strlen(password) + 12;
        pw_entry = malloc(len);
        if (pw_entry != NULL) snprintf(pw_entry, len, "PGPASSWORD=%s", password);
    }
    env = (password == NULL || pw_entry != NULL) ? child_env(pw_entry) : NULL;
    if (env == NULL) {
        gh_err_set(err, NULL, 0, 0, "%s: out of memory", argv[0]);
        goto out;
    }
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        gh_err_set(err, NULL, 0, 0, "%s: pipe: %s", argv[0], strerror(errno));
        goto out;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    spawned = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    pipefd[1] = -1;
    if (spawned != 0) {
        gh_err_set(err, NULL, 0, 0, "%s: %s", argv[0], strerror(spawned));
        goto out;
    }
    /* Read to the end (the program exits only once its output is taken),
     * keeping the beginning: where the first error is. */
    for (;;) {
        char buf[4096];
        n = read(pipefd[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (used < sizeof(msg) - 1) {
            size_t take = (size_t)n < sizeof(msg) - 1 - used ? (size_t)n : sizeof(msg) - 1 - used;
            memcpy(msg + used, buf, take);
            used += take;
            msg[used] = '\0';
        }
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            gh_err_set(err, NULL, 0, 0, "%s: waitpid: %s", argv[0], strerror(errno));
            goto out;
        }
    flatten(msg);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        rc = GH_OK;
    else if (WIFEXITED(status))
        gh_err_set(err, NULL, 0, 0, "%s exited with %d: %s", argv[0], WEXITSTATUS(status),
                   msg[0] ? msg : "(no message)");
    else
        gh_err_set(err, NULL, 0, 0, "%s: killed by signal %d: %s", argv[0],
                   WIFSIGNALED(status) ? WTERMSIG(status) : 0, msg);
out:
    if (pipefd[0] >= 0) close(pipefd[0]);
    if (pipefd[1] >= 0) close(pipefd[1]);
    if (pw_entry != NULL) {
        explicit_bzero(pw_entry, strlen(pw_entry));
        free(pw_entry);
    }
    free(env);
    return rc;
}
