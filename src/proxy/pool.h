/* Upstream connections and the per-worker keep-alive pools that hold them.
 *
 * A pool is one endpoint as one worker sees it (address, TLS settings).
 * Idle connections wait in LIFO order (the most recently used is warmest)
 * with a read event on, so a close by the upstream is noticed at once; the
 * worker's tick closes those idle longer than keepalive_timeout. Pools are
 * matched by key across reloads, so a reload keeps warm connections. */
#ifndef GH_PROXY_POOL_H
#define GH_PROXY_POOL_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"
#include "http/sock.h"

struct gh_worker;
struct gh_snapshot;
struct gh_req;

enum gh_upconn_state {
    GH_UP_CONNECTING,
    GH_UP_HANDSHAKE,
    GH_UP_READY, /* connected (and TLS done): in use by a request */
    GH_UP_IDLE,  /* in the pool */
};

struct gh_upconn {
    struct gh_sock sock;
    struct gh_pool *pool;
    struct gh_req *req; /* the request using it; NULL when idle */
    struct gh_buf in;   /* response bytes from the upstream */
    struct gh_buf out;  /* request bytes to the upstream */
    struct gh_upconn *prev, *next;
    uint64_t idle_since_ns;
    uint32_t uses;
    uint8_t state;
};

struct gh_pool {
    struct gh_worker *worker;
    char *key;      /* endpoint text + TLS identity; matches pools across reloads */
    char *endpoint; /* "host:port" as configured, for logs */
    char *host;     /* for SNI */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    SSL_CTX *tls;                          /* a reference (SSL_CTX_up_ref) or NULL */
    const struct gh_config_upstream *ucfg; /* of the snapshot that last used it */
    struct gh_upconn *idle;                /* LIFO list */
    uint32_t nidle;
    uint32_t nopen; /* connections open, idle or busy */
    uint32_t max_idle;
    uint32_t max_conns;
    uint32_t keepalive_timeout_ms;
    bool retired;             /* not in the current snapshot: freed once nopen == 0 */
    SSL_SESSION *tls_session; /* resumed on new connections */
    struct gh_pool *next;
};

/* Per upstream of the worker's current snapshot. */
struct gh_upstream_rt {
    struct gh_pool **pools; /* per endpoint */
    size_t npools;
    uint32_t rr; /* round robin position */
};

/* Worker thread: builds w->ups for <snap>, reusing pools with the same key
 * and retiring the others. Returns GH_OK or GH_ERROR (out of memory). */
int gh_pools_adopt(struct gh_worker *w, const struct gh_snapshot *snap);
/* Worker thread: closes idle connections past their keepalive timeout. */
void gh_pools_tick(struct gh_worker *w, uint64_t now_ns);
/* Worker thread: closes every idle connection and frees unused pools. */
void gh_pools_release(struct gh_worker *w);

/* Takes an idle connection from <p>, or NULL if none. */
struct gh_upconn *gh_pool_take(struct gh_pool *p);
/* Starts a new connection to <p> for <req> (non-blocking connect). Returns
 * NULL with *<why> set (GH_UPERR_REFUSED when connect fails at once,
 * GH_UPERR_BUSY at max_connections). The connection's events call the proxy. */
struct gh_upconn *gh_pool_connect(struct gh_pool *p, struct gh_req *req, int *why);
/* Gives a healthy, fully read connection back to its pool (or closes it
 * when the pool is full, retired, or keep-alive is off). */
void gh_pool_put(struct gh_upconn *u);
/* Closes a connection and frees it. */
void gh_upconn_close(struct gh_upconn *u);

#endif
