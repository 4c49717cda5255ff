/* The service manager's readiness protocol (sd_notify(3)) without
 * libsystemd: under `Type=notify` systemd names an AF_UNIX datagram socket
 * in $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace), and the
 * service sends one datagram of "KEY=value" lines per change of state:
 * READY=1 once it serves, RELOADING=1 and READY=1 around a reload,
 * STOPPING=1 when it drains. Nothing is sent when the variable is unset.
 *
 * Main thread only (start, signal handlers, reload). Best effort: the
 * service runs the same whether or not anyone listens; a failed send is
 * logged at debug level. */
#ifndef GH_CORE_SDNOTIFY_H
#define GH_CORE_SDNOTIFY_H

#include <sys/socket.h>
#include <sys/un.h>

struct gh_sdnotify {
    int fd; /* -1: not under a service manager that listens */
    struct sockaddr_un addr;
    socklen_t addr_len;
};

/* Reads $NOTIFY_SOCKET and unsets it, so that no program the process
 * starts later takes it for its own. <n> stays off (fd -1) when it is
 * unset or not a usable address (logged). */
void gh_sdnotify_open(struct gh_sdnotify *n);

/* Sends <state>: newline-separated assignments, e.g. "READY=1\nSTATUS=...". */
void gh_sdnotify_send(struct gh_sdnotify *n, const char *state);

/* RELOADING=1 with MONOTONIC_USEC (the clock systemd compares with), as
 * sd_notify(3) asks before a reload. */
void gh_sdnotify_reloading(struct gh_sdnotify *n);

void gh_sdnotify_close(struct gh_sdnotify *n);

#endif
