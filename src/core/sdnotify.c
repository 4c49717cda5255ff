/* sd_notify(3)'s datagrams: see sdnotify.h. */
#include "core/sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

void gh_sdnotify_open(struct gh_sdnotify *n)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t len;

    memset(n, 0, sizeof(*n));
    n->fd = -1;
    if (path == NULL || path[0] == '\0') return;
    len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(n->addr.sun_path)) {
        gh_log_warn("NOTIFY_SOCKET is not an absolute path or @name of at most %zu bytes: "
                    "systemd will not hear that the gateway is ready",
                    sizeof(n->addr.sun_path) - 1);
        unsetenv("NOTIFY_SOCKET");
        return;
    }
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, path, len);
    /* "@name": the abstract namespace, whose names start with a NUL byte
     * and are as long as the address says (no terminating NUL). */
    if (path[0] == '@') n->addr.sun_path[0] = '\0';
    n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    unsetenv("NOTIFY_SOCKET");
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (n->fd < 0) gh_log_warn("NOTIFY_SOCKET: socket: %s", strerror(errno));
}

void gh_sdnotify_send(struct gh_sdnotify *n, const char *state)
{
    if (n->fd < 0) return;
    if (sendto(n->fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&n->addr,
               n->addr_len) < 0)
        gh_log_debug("NOTIFY_SOCKET: cannot send \"%.40s\": %s", state, strerror(errno));
}

void gh_sdnotify_reloading(struct gh_sdnotify *n)
{
    struct timespec ts;
    char msg[64];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    gh_sdnotify_send(n, msg);
}

void gh_sdnotify_close(struct gh_sdnotify *n)
{
    if (n->fd >= 0) close(n->fd);
    n->fd = -1;
}
