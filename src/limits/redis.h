/* An asynchronous Redis client for one worker: one connection, plain or TLS,
 * on the worker's event_base, with a deadline on every command.
 *
 * hiredis is used for RESP only (its reader parses replies); the I/O is ours
 * (http/sock.h), because the hiredis 0.14 that Debian 12 ships has neither
 * per-command timeouts nor TLS.
 *
 * Contract:
 * - gh_redis_new() copies the options and starts connecting at once; it
 *   never blocks. A numeric host is used as is; a name is looked up again
 *   at every connect attempt (evdns on <base>: /etc/hosts and
 *   /etc/resolv.conf, or only the `resolver` given; A first, AAAA only for
 *   a name without an IPv4 address), so a
 *   name that does not resolve yet, or that moves to another address (a
 *   failover behind DNS), is followed at the next reconnect; a lookup that
 *   fails or takes longer than max(connect_timeout_ms, 2 s) counts as a
 *   failed connect. The resolver is made at the first lookup and kept:
 *   /etc/resolv.conf and /etc/hosts are read then. An error reply READONLY
 *   (a primary demoted to a replica) is passed to its callback, then the
 *   connection is declared DOWN, so that the reconnect looks for the
 *   primary; its next hellos ask ROLE, and a server that is still a
 *   replica counts as a failed connect (the backoff keeps growing) until
 *   one says "master" (or refuses ROLE, which cannot tell). After the TCP connect and the TLS
 * handshake, AUTH (when a password is set) and SELECT (when db != 0) are sent ahead of any queued
 * command; with neither, a PING is sent, so that "up" always means "the server answered". The whole
 * sequence must finish within connect_timeout_ms. A failure marks the connection DOWN with a logged
 *   reason (the password is never logged).
 * - gh_redis_command() queues a command and returns GH_OK; the callback then
 *   runs exactly once, later, from the event loop (never from inside
 *   gh_redis_command), unless the command is cancelled. Commands queued in
 *   the same loop iteration go out in one write (pipelining). It returns
 *   GH_ERROR, and the callback is never called, when the connection is DOWN
 *   or the pending queue (GH_REDIS_MAX_PENDING) or the output buffer
 *   (GH_REDIS_OUT_MAX bytes) is full: the caller decides locally at once.
 *   While the very first connection attempt is in progress commands are
 *   queued (they wait at most timeout_ms); after a failure they are refused
 *   until a reconnect succeeds.
 * - Every command has a deadline, issue time + timeout_ms. On expiry the
 *   callback gets GH_REDIS_TIMEOUT and the reply, when it comes, is read and
 *   dropped. Three expiries without an on-time reply in between, an I/O
 *   error, a closed connection or a protocol error declare the connection
 *   DOWN: it is closed, every waiting callback gets GH_REDIS_IOERR, and a
 *   reconnect is tried after a backoff that doubles from backoff_min_ms to
 *   backoff_max_ms, with +-20% jitter, reset by a successful connect.
 * - One log line per state change (down with the reason, up), none per
 *   command.
 * - The reply passed to a callback belongs to the client and is freed when
 *   the callback returns. A callback may call gh_redis_command and
 *   gh_redis_cancel, but not gh_redis_free.
 * - gh_redis_free() closes the connection and drops pending commands
 *   silently: their callbacks are not called (the owner frees the client at
 *   worker shutdown, when nobody waits for answers any more).
 * - Single-threaded: every call must come from the thread running <base>. */
#ifndef GH_LIMITS_REDIS_H
#define GH_LIMITS_REDIS_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GH_REDIS_MAX_PENDING 4096
#define GH_REDIS_OUT_MAX     (1u << 20) /* bytes queued and not yet written */
#define GH_REDIS_IN_MAX      (1u << 20) /* bytes of one reply not yet complete */

struct gh_redis_opts {
    const char *host;     /* numeric IP or name (looked up at every connect) */
    const char *resolver; /* "IP:PORT" of the DNS server for a name; NULL: the system's */
    uint16_t port;
    bool tls;
    SSL_CTX *tls_ctx;     /* caller-owned client context, outlives the client; NULL when !tls */
    const char *sni;      /* TLS server name; NULL: host (unless it is an IP literal) */
    const char *username; /* NULL: AUTH <password> (Redis < 6 style) */
    const char *password; /* NULL: no AUTH */
    uint32_t db;          /* 0: no SELECT */
    uint32_t timeout_ms;  /* per command; 0 means 5 */
    uint32_t connect_timeout_ms; /* connect + TLS + AUTH/SELECT; 0 means 200 */
    uint32_t backoff_min_ms;     /* 0 means 50 */
    uint32_t backoff_max_ms;     /* 0 means 2000 */
    const char *log_name;        /* in log lines: "redis <log_name>: ..."; NULL: host */
};

/* Callback statuses. */
enum {
    GH_REDIS_OK = 0,       /* reply non-NULL; it may be a REDIS_REPLY_ERROR reply */
    GH_REDIS_DOWN = 1,     /* not sent: a wrapper (redis_script) could not queue its retry */
    GH_REDIS_TIMEOUT = 2,  /* no reply within timeout_ms; reply NULL */
    GH_REDIS_IOERR = 3,    /* the connection was lost while waiting; reply NULL */
    GH_REDIS_CANCELLED = 4 /* only for GH_REDIS_F_OWNED commands, see below */
};

typedef void (*gh_redis_cb)(void *arg, const redisReply *reply, int status);

struct gh_redis;

struct gh_redis_stats {
    uint64_t commands;   /* accepted by gh_redis_command */
    uint64_t timeouts;   /* deadlines that passed */
    uint64_t errors;     /* commands refused (down, full) or failed with GH_REDIS_IOERR */
    uint64_t reconnects; /* connection attempts after the connection went down */
    uint32_t pending;    /* sent or queued, reply not read yet (timed-out ones included) */
    bool up;
};

/* NULL when out of memory or when the options are unusable (no host, tls
 * without tls_ctx). A host that does not resolve is no error here: the
 * client is down until it does. */
struct gh_redis *gh_redis_new(struct event_base *base, const struct gh_redis_opts *o);
void gh_redis_free(struct gh_redis *r);

/* Queues argv[0..argc) (argvlen[i] bytes each; binary-safe). <cb> may be
 * NULL (the reply is dropped). *handle (when <handle> is not NULL) gets a
 * non-zero id for gh_redis_cancel. Returns GH_OK or GH_ERROR (see above). */
int gh_redis_command(struct gh_redis *r, int argc, const char **argv, const size_t *argvlen,
                     gh_redis_cb cb, void *arg, uint32_t *handle);

/* The callback of <handle> will never be called (the request that asked
 * went away); the reply is read and dropped. Unknown or finished handles are
 * ignored. Costs O(pending), scanning from the newest command. */
void gh_redis_cancel(struct gh_redis *r, uint32_t handle);

bool gh_redis_is_up(const struct gh_redis *r);
void gh_redis_stats(const struct gh_redis *r, struct gh_redis_stats *out);

/* For wrappers that keep state per command (redis_script.c), not for
 * callers:
 * - GH_REDIS_F_OWNED: <cb> is also called, with GH_REDIS_CANCELLED and a
 *   NULL reply, when the command is cancelled or the client is freed, so the
 *   wrapper can release its state. Every other path calls it as usual.
 * - GH_REDIS_F_REUSE_HANDLE: *handle is an input too: the new command takes
 *   over that handle (a retry, queued from inside the callback of the
 *   command that had it), so the caller's gh_redis_cancel keeps working. */
#define GH_REDIS_F_OWNED        1u
#define GH_REDIS_F_REUSE_HANDLE 2u
int gh_redis_command_ex(struct gh_redis *r, int argc, const char **argv, const size_t *argvlen,
                        gh_redis_cb cb, void *arg, unsigned flags, uint32_t *handle);

#endif
