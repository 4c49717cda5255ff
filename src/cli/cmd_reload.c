/* `gatehouse reload -c FILE --pid PID [--timeout DURATION]`: a reload that
 * says how it went, for systemd's ExecReload= and for scripts.
 *
 * A SIGHUP alone cannot fail: the gateway keeps its running config when the
 * new one is refused (a key that needs a restart, a secret that cannot be
 * read), and `kill -HUP` has long returned 0. So this command checks the
 * file as `gatehouse check` does, reads the gateway's config generation and
 * its count of refused reloads from the admin listener's /readyz (no
 * credentials: the two numbers and the config's hash are all it shows),
 * sends SIGHUP to PID, and waits until one of them moves. Exit codes: 0
 * reloaded (or signalled when the admin listener is off, with a warning: the
 * outcome cannot be read then); 1 the file has errors, the gateway refused
 * it, or no answer came in time; 2 usage. The reason of a refusal is in the
 * gateway's log, which this command cannot read. */
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "audit/chain.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/version.h"

/* What /readyz says. */
struct gw_state {
    bool ready;
    uint64_t generation, refused;
    char hash[65];
};

/* The admin listener's address to connect to: a wildcard listener is
 * reached on the loopback of its family. */
static void admin_target(const struct gh_config_addr *a, struct sockaddr_storage *ss,
                         socklen_t *len)
{
    memcpy(ss, &a->ss, a->sslen);
    *len = a->sslen;
    if (a->host[0] != '\0') return;
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_addr = in6addr_loopback;
    else
        ((struct sockaddr_in *)ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* GET /readyz on <a>, within about a second: 0 with <out> filled, or -1
 * with a reason in <why>. */
static int read_state(const struct gh_config_addr *a, struct gw_state *out, char *why,
                      size_t whylen, bool *unreachable)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct timeval tv = {1, 0};
    char req[256], resp[4096];
    size_t got = 0;
    ssize_t n;
    int fd, status = 0, rc = -1;
    const char *body;
    json_t *doc = NULL, *v;

    admin_target(a, &ss, &sslen);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&ss, sslen) != 0) {
        *unreachable =
            errno == ECONNREFUSED || errno == ETIMEDOUT || errno == EINPROGRESS || errno == EAGAIN;
        snprintf(why, whylen, "cannot connect to the admin listener %s: %s", a->text,
                 strerror(errno));
        goto out;
    }
    n = snprintf(req, sizeof(req),
                 "GET /readyz HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatehouse-cli/%s\r\n"
                 "Connection: close\r\n\r\n",
                 a->text, gh_version());
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        snprintf(why, whylen, "admin listener %s: send: %s", a->text, strerror(errno));
        goto out;
    }
    while (got < sizeof(resp) - 1 && (n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0)) > 0)
        got += (size_t)n;
    resp[got] = '\0';
    body = strstr(resp, "\r\n\r\n");
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1 || body == NULL) {
        snprintf(why, whylen, "admin listener %s: no HTTP answer to GET /readyz", a->text);
        goto out;
    }
    memset(out, 0, sizeof(*out));
    out->ready = status == 200;
    if (!out->ready) {
        rc = 0; /* not ready (stopping, or not yet serving): nothing more to read */
        goto out;
    }
    doc = json_loads(body + 4, JSON_DISABLE_EOF_CHECK, NULL);
    if (!json_is_integer(v = json_object_get(doc, "config_generation"))) goto unreadable;
    out->generation = (uint64_t)json_integer_value(v);
    if (!json_is_integer(v = json_object_get(doc, "config_reloads_failed"))) goto unreadable;
    out->refused = (uint64_t)json_integer_value(v);
    if (!json_is_string(v = json_object_get(doc, "config_hash"))) goto unreadable;
    snprintf(out->hash, sizeof(out->hash), "%s", json_string_value(v));
    rc = 0;
    goto out;
unreadable:
    snprintf(why, whylen,
             "admin listener %s: /readyz has no config_generation and config_reloads_failed "
             "(a gateway older than this command? reload it with kill -HUP)",
             a->text);
out:
    json_decref(doc);
    close(fd);
    return rc;
}

static int parse_pid(const char *s, pid_t *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 2 || v > INT32_MAX) return -1;
    *out = (pid_t)v;
    return 0;
}

int gh_cmd_reload(int argc, char **argv)
{
    const char *path = NULL, *pid_arg = NULL, *timeout_arg = "30s";
    struct gh_config *cfg = NULL;
    struct gh_err err = {0};
    struct gw_state before, now;
    char msg[1024], why[512] = "", file_hash[65];
    bool unreachable = false;
    uint64_t timeout_ms, deadline_ns;
    pid_t pid;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            gh_cli_usage("reload");
            return 0;
        }
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc)
            pid_arg = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            timeout_arg = argv[++i];
        else {
            fprintf(stderr, "gatehouse reload: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (path == NULL || pid_arg == NULL) {
        fprintf(stderr, "gatehouse reload: needs -c FILE and --pid PID (the gateway's: "
                        "$MAINPID under systemd)\n");
        return 2;
    }
    if (parse_pid(pid_arg, &pid) != 0) {
        fprintf(stderr, "gatehouse reload: --pid: \"%s\" is not a process id\n", pid_arg);
        return 2;
    }
    if (gh_config_parse_duration_ms(timeout_arg, &timeout_ms) != 0 || timeout_ms == 0 ||
        timeout_ms > 3600 * 1000) {
        fprintf(stderr,
                "gatehouse reload: --timeout: \"%s\" is not a duration from 1ms to 1h, such as "
                "30s\n",
                timeout_arg);
        return 2;
    }
    /* The same check as `gatehouse check`: a file with errors is not sent. */
    if (gh_config_load(path, &cfg, &err) != GH_OK) {
        fprintf(stderr, "%s\n", gh_err_format(&err, msg, sizeof(msg)));
        fprintf(stderr, "gatehouse reload: not reloaded: the running config stays\n");
        return 1;
    }
    if (kill(pid, 0) != 0) {
        fprintf(stderr, "gatehouse reload: cannot signal process %d: %s\n", (int)pid,
                strerror(errno));
        goto out;
    }
    if (!cfg->admin.enabled) {
        if (kill(pid, SIGHUP) != 0) {
            fprintf(stderr, "gatehouse reload: SIGHUP to %d: %s\n", (int)pid, strerror(errno));
            goto out;
        }
        fprintf(stderr,
                "gatehouse reload: warning: SIGHUP sent to %d, but with the admin listener off "
                "(admin.enabled: false) whether the gateway took the new config cannot be read: "
                "see its log\n",
                (int)pid);
        rc = 0;
        goto out;
    }
    if (read_state(&cfg->admin.addr, &before, why, sizeof(why), &unreachable) != 0) {
        /* The address is the file's: one the file has just moved is not
         * listened on until the next restart. */
        fprintf(stderr, "gatehouse reload: not reloaded: %s%s\n", why,
                unreachable ? " (if the file moves admin.address, the new address applies only "
                              "at the next restart: restart the gateway, e.g. systemctl restart "
                              "gatehouse)"
                            : "");
        goto out;
    }
    if (!before.ready) {
        fprintf(stderr,
                "gatehouse reload: not reloaded: the gateway at %s is not ready (starting "
                "or stopping)\n",
                cfg->admin.addr.text);
        goto out;
    }
    if (kill(pid, SIGHUP) != 0) {
        fprintf(stderr, "gatehouse reload: SIGHUP to %d: %s\n", (int)pid, strerror(errno));
        goto out;
    }
    deadline_ns = gh_now_ns() + timeout_ms * 1000000u;
    for (;;) {
        struct timespec pause = {0, 50 * 1000 * 1000};

        if (read_state(&cfg->admin.addr, &now, why, sizeof(why), &unreachable) == 0 && now.ready) {
            if (now.refused > before.refused) {
                fprintf(stderr,
                        "gatehouse reload: the gateway refused the new config and keeps the "
                        "running one (generation %llu); its log says why (journalctl -u "
                        "gatehouse)\n",
                        (unsigned long long)before.generation);
                goto out;
            }
            if (now.generation > before.generation) break;
        }
        if (gh_now_ns() >= deadline_ns) {
            fprintf(stderr,
                    "gatehouse reload: no outcome within %s: config generation still %llu%s%s\n",
                    timeout_arg, (unsigned long long)before.generation, why[0] ? "; " : "", why);
            goto out;
        }
        nanosleep(&pause, NULL);
    }
    /* The gateway read the file again itself: a file changed after the
     * check above is what it runs. */
    printf("%s: reloaded: config generation %llu, sha256 %s...\n", path,
           (unsigned long long)now.generation, now.hash);
    gh_audit_hex(cfg->sha256, file_hash);
    /* /readyz shows the hash's first 8 bytes (snapshot.h). */
    if (strlen(now.hash) != 16 || strncmp(now.hash, file_hash, 16) != 0)
        fprintf(stderr,
                "gatehouse reload: warning: the gateway runs sha256 %s..., not the file "
                "checked (%.16s...): the file changed meanwhile, or another reload came first\n",
                now.hash, file_hash);
    rc = 0;
out:
    gh_config_free(cfg);
    return rc;
}
