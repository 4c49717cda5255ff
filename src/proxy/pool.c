/* Per-worker upstream connection pools. */
#include "proxy/pool.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/worker.h"
#include "http/conn.h"
#include "http/tls.h"
#include "proxy/proxy.h"

static void pool_free(struct gh_pool *p)
{
    free(p->key);
    free(p->endpoint);
    free(p->host);
    if (p->tls) SSL_CTX_free(p->tls);
    if (p->tls_session) SSL_SESSION_free(p->tls_session);
    free(p);
}

static void pool_unlink_idle(struct gh_pool *p, struct gh_upconn *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        p->idle = u->next;
    if (u->next) u->next->prev = u->prev;
    u->prev = u->next = NULL;
    p->nidle--;
}

/* Frees retired pools with no open connection. */
static void pools_collect(struct gh_worker *w)
{
    struct gh_pool **pp = &w->pools;
    while (*pp) {
        struct gh_pool *p = *pp;
        if (p->retired && p->nopen == 0) {
            *pp = p->next;
            pool_free(p);
        } else {
            pp = &p->next;
        }
    }
}

void gh_upconn_close(struct gh_upconn *u)
{
    struct gh_pool *p = u->pool;
    struct gh_worker *w = p->worker;

    if (u->state == GH_UP_IDLE) pool_unlink_idle(p, u);
    gh_sock_close(&u->sock);
    gh_buf_drop(&u->in, &w->bufpool);
    gh_buf_drop(&u->out, &w->bufpool);
    p->nopen--;
    free(u);
    if (p->retired && p->nopen == 0) pools_collect(w);
}

static char *make_key(const struct gh_config_upstream *u, const struct gh_config_addr *a)
{
    char key[512];
    snprintf(key, sizeof(key), "%s|%d|%s|%s|%d", a->text, u->tls.enabled,
             u->tls.sni ? u->tls.sni : "", u->tls.ca_file ? u->tls.ca_file : "", u->tls.verify);
    return strdup(key);
}

static struct gh_pool *pool_find(struct gh_worker *w, const char *key)
{
    for (struct gh_pool *p = w->pools; p; p = p->next)
        if (strcmp(p->key, key) == 0) return p;
    return NULL;
}

static void pool_configure(struct gh_pool *p, const struct gh_config_upstream *u, SSL_CTX *tls)
{
    p->ucfg = u;
    p->max_idle = u->keepalive;
    p->max_conns = u->max_connections;
    p->keepalive_timeout_ms = u->keepalive_timeout_ms;
    p->retired = false;
    if (p->tls != tls) {
        /* New certificates or CA after a reload: new connections use them. */
        if (p->tls) SSL_CTX_free(p->tls);
        p->tls = tls;
        if (tls) SSL_CTX_up_ref(tls);
        if (p->tls_session) SSL_SESSION_free(p->tls_session);
        p->tls_session = NULL;
    }
}

static void free_ups(struct gh_upstream_rt *ups, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ups[i].pools);
    free(ups);
}

int gh_pools_adopt(struct gh_worker *w, const struct gh_snapshot *snap)
{
    const struct gh_config *cfg = snap->cfg;
    struct gh_upstream_rt *ups = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*ups));

    if (ups == NULL) return GH_ERROR;
    for (struct gh_pool *p = w->pools; p; p = p->next)
        p->retired = true;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct gh_config_upstream *u = &cfg->upstreams[i];
        ups[i].pools = calloc(u->nendpoints, sizeof(struct gh_pool *));
        if (ups[i].pools == NULL) goto oom;
        ups[i].npools = u->nendpoints;
        /* Keep the round-robin position across reloads. */
        if (w->ups && i < w->nups) ups[i].rr = w->ups[i].rr;
        for (size_t k = 0; k < u->nendpoints; k++) {
            char *key = make_key(u, &u->endpoints[k]);
            struct gh_pool *p;
            if (key == NULL) goto oom;
            p = pool_find(w, key);
            if (p == NULL) {
                p = calloc(1, sizeof(*p));
                if (p == NULL) {
                    free(key);
                    goto oom;
                }
                p->worker = w;
                p->key = key;
                p->endpoint = strdup(u->endpoints[k].text);
                p->host = strdup(u->endpoints[k].host);
                memcpy(&p->addr, &u->endpoints[k].ss, sizeof(p->addr));
                p->addrlen = u->endpoints[k].sslen;
                p->next = w->pools;
                w->pools = p;
            } else {
                free(key);
            }
            pool_configure(p, u, snap->upstream_tls[i]);
            ups[i].pools[k] = p;
        }
    }
    /* Idle connections of retired pools are closed now; busy ones when done. */
    for (struct gh_pool *p = w->pools; p; p = p->next)
        if (p->retired)
            while (p->idle)
                gh_upconn_close(p->idle);
    if (w->ups) free_ups(w->ups, w->nups);
    w->ups = ups;
    w->nups = cfg->nupstreams;
    pools_collect(w);
    return GH_OK;
oom:
    free_ups(ups, cfg->nupstreams);
    return GH_ERROR;
}

void gh_pools_tick(struct gh_worker *w, uint64_t now_ns)
{
    for (struct gh_pool *p = w->pools; p; p = p->next) {
        uint64_t limit = (uint64_t)p->keepalive_timeout_ms * 1000000ull;
        struct gh_upconn *u = p->idle, *next;
        /* LIFO: the oldest are at the tail, but the list is short; a full
         * scan keeps the code simple. */
        for (; u; u = next) {
            next = u->next;
            if (now_ns - u->idle_since_ns >= limit) gh_upconn_close(u);
        }
    }
}

void gh_pools_release(struct gh_worker *w)
{
    for (struct gh_pool *p = w->pools; p; p = p->next) {
        p->retired = true;
        while (p->idle)
            gh_upconn_close(p->idle);
    }
    pools_collect(w);
    if (w->ups) free_ups(w->ups, w->nups);
    w->ups = NULL;
    w->nups = 0;
}

struct gh_upconn *gh_pool_take(struct gh_pool *p)
{
    struct gh_upconn *u = p->idle;
    if (u == NULL) return NULL;
    pool_unlink_idle(p, u);
    u->state = GH_UP_READY;
    u->uses++;
    return u;
}

struct gh_upconn *gh_pool_connect(struct gh_pool *p, struct gh_req *req, int *why)
{
    struct gh_worker *w = p->worker;
    struct gh_upconn *u;
    int fd, one = 1;

    if (p->max_conns && p->nopen >= p->max_conns) {
        *why = GH_UPERR_BUSY;
        return NULL;
    }
    fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *why = GH_UPERR_REFUSED;
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&p->addr, p->addrlen) != 0 && errno != EINPROGRESS) {
        close(fd);
        *why = GH_UPERR_REFUSED;
        return NULL;
    }
    u = calloc(1, sizeof(*u));
    if (u == NULL) {
        close(fd);
        *why = GH_UPERR_REFUSED;
        return NULL;
    }
    u->pool = p;
    u->req = req;
    u->state = GH_UP_CONNECTING;
    u->uses = 1;
    gh_sock_init(&u->sock, w->base, fd, gh_proxy_upconn_event, u);
    if (p->tls) {
        u->sock.ssl = gh_tls_client_ssl(p->tls, p->ucfg, p->host, fd);
        if (u->sock.ssl == NULL) {
            gh_sock_close(&u->sock);
            free(u);
            *why = GH_UPERR_TLS;
            return NULL;
        }
        if (p->tls_session) SSL_set_session(u->sock.ssl, p->tls_session);
    }
    p->nopen++;
    atomic_fetch_add_explicit(&w->stats.upstream_connects, 1, memory_order_relaxed);
    gh_sock_want_write(&u->sock, true); /* writable = connected (or failed) */
    return u;
}

void gh_pool_put(struct gh_upconn *u)
{
    struct gh_pool *p = u->pool;
    struct gh_worker *w = p->worker;

    u->req = NULL;
    if (p->retired || p->max_idle == 0 || p->nidle >= p->max_idle || w->draining ||
        gh_buf_len(&u->in) > 0) {
        gh_upconn_close(u);
        return;
    }
    if (u->sock.ssl && p->tls_session == NULL) {
        SSL_SESSION *s = SSL_get1_session(u->sock.ssl);
        if (s && SSL_SESSION_is_resumable(s))
            p->tls_session = s;
        else if (s)
            SSL_SESSION_free(s);
    }
    gh_buf_drop(&u->in, &w->bufpool);
    gh_buf_drop(&u->out, &w->bufpool);
    gh_sock_want_write(&u->sock, false);
    gh_sock_want_read(&u->sock, true); /* notice a close while idle */
    u->state = GH_UP_IDLE;
    u->idle_since_ns = gh_now_ns();
    u->next = p->idle;
    u->prev = NULL;
    if (p->idle) p->idle->prev = u;
    p->idle = u;
    p->nidle++;
}
