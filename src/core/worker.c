/* Worker threads: loop setup, listeners, snapshot adoption, housekeeping. */
#include "core/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/request.h"
#include "auth/authn.h"
#include "limits/limits.h"
#include "telemetry/trace.h"
#include "telemetry/tracer.h"
#include "auth/keydir.h"
#include "auth/service.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/runtime.h"
#include "hooks/stage.h"
#include "http/conn.h"
#include "proxy/pool.h"
#include "telemetry/accesslog.h"
#include "telemetry/metrics.h"

#define FREE_REQS_MAX 256
#define TICK_MS       250

/* Opens a listening socket with SO_REUSEPORT, so each worker has its own and
 * the kernel spreads connections across them. */
static int open_listener(const struct gh_config_addr *a, struct gh_err *err)
{
    int fd, one = 1;

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return gh_err_set(err, NULL, 0, 0, "socket: %s", strerror(errno)), -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        gh_err_set(err, NULL, 0, 0, "SO_REUSEPORT: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (a->ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->ss, a->sslen) != 0) {
        gh_err_set(err, NULL, 0, 0, "cannot listen on %s: %s", a->text, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 4096) != 0) {
        gh_err_set(err, NULL, 0, 0, "listen %s: %s", a->text, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void adopt(struct gh_worker *w, struct gh_snapshot *snap)
{
    struct gh_wsnap *ws = calloc(1, sizeof(*ws));

    if (ws == NULL || gh_pools_adopt(w, snap) != GH_OK) {
        gh_log_error("worker %d: out of memory adopting config %llu; keeping the old one", w->id,
                     (unsigned long long)snap->generation);
        free(ws);
        gh_snapshot_unref(snap);
        return;
    }
    ws->snap = snap;
    if (w->cur) {
        struct gh_wsnap *old = w->cur;
        if (old->inflight == 0) {
            gh_snapshot_unref(old->snap);
            free(old);
        } else {
            old->next = w->retired;
            w->retired = old;
        }
    }
    w->cur = ws;
}

struct gh_wsnap *gh_worker_snap_enter(struct gh_worker *w)
{
    w->cur->inflight++;
    return w->cur;
}

void gh_worker_snap_leave(struct gh_worker *w, struct gh_wsnap *ws)
{
    ws->inflight--;
    if (ws == w->cur || ws->inflight > 0) return;
    /* A retired snapshot's last request ended: let it go. */
    for (struct gh_wsnap **pp = &w->retired; *pp; pp = &(*pp)->next) {
        if (*pp == ws) {
            *pp = ws->next;
            gh_snapshot_unref(ws->snap);
            free(ws);
            return;
        }
    }
}

struct gh_req *gh_worker_req_get(struct gh_worker *w)
{
    struct gh_req *r = w->free_reqs;
    if (r) {
        w->free_reqs = r->next_free;
        w->nfree_reqs--;
    } else {
        r = malloc(sizeof(*r));
        if (r == NULL) return NULL;
    }
    /* Only the fields before next_free need zeroing: the principal and the
     * header arrays are written before anything reads them. */
    memset(r, 0, offsetof(struct gh_req, next_free));
    r->principal.kind = GH_PRINCIPAL_NONE;
    return r;
}

void gh_worker_req_put(struct gh_worker *w, struct gh_req *r)
{
    gh_audit_request_cancel(w, r);
    gh_authn_cancel(r);
    gh_limits_request_end(w, r);
    if (r->stream_release) {
        /* A streamed response's state (gh_conn_stream_begin). */
        r->stream_release(r);
        r->stream_release = NULL;
    }
    free(r->body_copy);
    r->body_copy = NULL;
    if (w->nfree_reqs >= FREE_REQS_MAX) {
        free(r);
        return;
    }
    r->next_free = w->free_reqs;
    w->free_reqs = r;
    w->nfree_reqs++;
}

const char *gh_worker_date(struct gh_worker *w)
{
    time_t now = time(NULL);
    if (now != w->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->date, sizeof(w->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        w->date_sec = now;
    }
    return w->date;
}

void gh_worker_pause_accept(struct gh_worker *w, bool pause)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        struct gh_listener *l = &w->listeners[i];
        if (l->fd < 0 || l->paused == pause) continue;
        if (!pause && w->draining) continue;
        if (!pause && w->nconns >= w->cur->snap->cfg->limits.max_connections) continue;
        l->paused = pause;
        if (pause)
            event_del(&l->ev);
        else
            event_add(&l->ev, NULL);
    }
}

static void close_listeners(struct gh_worker *w)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        struct gh_listener *l = &w->listeners[i];
        if (l->fd < 0) continue;
        event_del(&l->ev);
        close(l->fd);
        l->fd = -1;
    }
}

/* Runs on the worker's loop when the main thread has news. */
static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gh_worker *w = arg;
    struct gh_snapshot *snap = atomic_exchange(&w->pending, NULL);
    struct gh_keydir *dir = atomic_exchange(&w->pending_dir, NULL);

    if (snap) adopt(w, snap);
    if (dir) {
        /* No request keeps pointers into a directory across loop turns. */
        gh_keydir_unref(w->keydir);
        w->keydir = dir;
    }
    if (atomic_load(&w->stop_requested) && !w->draining) {
        w->draining = true;
        w->drain_deadline_ns =
            gh_now_ns() + (uint64_t)w->cur->snap->cfg->shutdown_timeout_ms * 1000000ull;
        close_listeners(w);
        gh_conn_drain_all(w);
        gh_pools_tick(w, UINT64_MAX); /* closes every idle upstream connection */
    }
}

static void verify_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gh_worker *w = arg;
    struct gh_verify_job *list, *prev = NULL;

    pthread_mutex_lock(&w->verify_mu);
    list = w->verify_done;
    w->verify_done = NULL;
    pthread_mutex_unlock(&w->verify_mu);
    /* The list is newest first: reverse it so requests resume in order. */
    while (list) {
        struct gh_verify_job *next = list->next;
        list->next = prev;
        prev = list;
        list = next;
    }
    while (prev) {
        struct gh_verify_job *next = prev->next;
        gh_authn_job_done(w, prev);
        prev = next;
    }
}

void gh_worker_verify_done(struct gh_worker *w, struct gh_verify_job *job)
{
    pthread_mutex_lock(&w->verify_mu);
    job->next = w->verify_done;
    w->verify_done = job;
    pthread_mutex_unlock(&w->verify_mu);
    event_active(w->verify_ev, EV_TIMEOUT, 0);
}

void gh_worker_publish_keydir(struct gh_worker *w, struct gh_keydir *d)
{
    struct gh_keydir *old = atomic_exchange(&w->pending_dir, d);
    if (old) gh_keydir_unref(old);
    event_active(w->notify_ev, EV_TIMEOUT, 0);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gh_worker *w = arg;
    uint64_t now = gh_now_ns();

    gh_accesslog_flush(w->alog);
    gh_authn_tick(w);
    gh_pools_tick(w, now);
    if (w->trace) gh_trace_worker_tick(w->trace);
    gh_metrics_worker_tick(w);
    /* Listeners paused by EMFILE get another chance each tick. */
    gh_worker_pause_accept(w, false);
    if (w->draining) {
        if (w->nconns == 0 || now >= w->drain_deadline_ns) {
            if (w->nconns)
                gh_log_warn("worker %d: shutdown deadline passed with %u connections open", w->id,
                            w->nconns);
            gh_conn_close_all(w);
            event_base_loopbreak(w->base);
        }
    }
}

int gh_worker_init(struct gh_worker *w, struct gh_runtime *rt, int id, bool is_admin,
                   struct gh_snapshot *snap, struct gh_err *err)
{
    const struct gh_config *cfg = snap->cfg;
    size_t n = is_admin ? 1 : cfg->nlistens;
    struct timeval tick = {0, TICK_MS * 1000};

    memset(w, 0, sizeof(*w));
    w->id = id;
    w->is_admin = is_admin;
    w->rt = rt;
    atomic_init(&w->pending, NULL);
    w->base = event_base_new();
    if (w->base == NULL) return gh_err_set(err, NULL, 0, 0, "event_base_new failed");
    gh_bufpool_init(&w->bufpool, 1024);
    if (getrandom(&w->id_prefix, sizeof(w->id_prefix), 0) != sizeof(w->id_prefix))
        w->id_prefix = (uint64_t)gh_wall_ms() * 2654435761u + (uint64_t)id;
    w->listeners = calloc(n, sizeof(*w->listeners));
    if (w->listeners == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    w->nlisteners = n;
    for (size_t i = 0; i < n; i++)
        w->listeners[i].fd = -1;
    for (size_t i = 0; i < n; i++) {
        struct gh_listener *l = &w->listeners[i];
        const struct gh_config_addr *a = is_admin ? &cfg->admin.addr : &cfg->listens[i].addr;
        l->worker = w;
        l->listen_index = i;
        l->is_admin = is_admin;
        l->fd = open_listener(a, err);
        if (l->fd < 0) return GH_ERROR;
        event_assign(&l->ev, w->base, l->fd, EV_READ | EV_PERSIST, gh_conn_accept_cb, l);
    }
    w->notify_ev = event_new(w->base, -1, 0, notify_cb, w);
    w->tick_ev = event_new(w->base, -1, EV_PERSIST, tick_cb, w);
    w->verify_ev = event_new(w->base, -1, 0, verify_done_cb, w);
    pthread_mutex_init(&w->verify_mu, NULL);
    w->authn = gh_authn_worker_new();
    w->keydir = rt->auth ? gh_auth_service_keydir(rt->auth) : gh_keydir_empty();
    if (w->notify_ev == NULL || w->tick_ev == NULL || w->verify_ev == NULL || w->authn == NULL ||
        w->keydir == NULL)
        return gh_err_set(err, NULL, 0, 0, "out of memory");
    if (rt->alog && !is_admin) w->alog = gh_accesslog_buf_new(rt->alog);
    if (rt->metrics && !is_admin) {
        w->metrics = gh_metrics_worker_new();
        if (w->metrics == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    }
    if (rt->limits && !is_admin) {
        w->limits = gh_limits_worker_new(w, rt->limits, snap->cfg);
        if (w->limits == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    }
    if (!is_admin) w->trace = gh_tracer_worker(rt->tracer, id);
    if (!is_admin) {
        w->audit = gh_audit_worker_of(rt->audit, id);
        if (gh_audit_worker_bind(w->audit, w->base) != GH_OK)
            return gh_err_set(err, NULL, 0, 0, "out of memory");
    }
    gh_snapshot_ref(snap, 1);
    adopt(w, snap);
    if (w->cur == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    event_add(w->tick_ev, &tick);
    for (size_t i = 0; i < n; i++)
        event_add(&w->listeners[i].ev, NULL);
    return GH_OK;
}

static void *worker_main(void *arg)
{
    struct gh_worker *w = arg;
    event_base_dispatch(w->base);
    atomic_fetch_sub(&w->rt->running_workers, 1);
    /* Wake the main thread so it notices that workers are finishing. */
    return NULL;
}

int gh_worker_start(struct gh_worker *w)
{
    atomic_fetch_add(&w->rt->running_workers, 1);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        atomic_fetch_sub(&w->rt->running_workers, 1);
        return GH_ERROR;
    }
    return GH_OK;
}

void gh_worker_publish(struct gh_worker *w, struct gh_snapshot *snap)
{
    struct gh_snapshot *old = atomic_exchange(&w->pending, snap);
    /* A snapshot the worker never picked up is superseded. */
    if (old) gh_snapshot_unref(old);
    event_active(w->notify_ev, EV_TIMEOUT, 0);
}

void gh_worker_shutdown(struct gh_worker *w)
{
    atomic_store(&w->stop_requested, true);
    event_active(w->notify_ev, EV_TIMEOUT, 0);
}

void gh_worker_release(struct gh_worker *w)
{
    struct gh_snapshot *pending;

    if (w->base == NULL) return;
    gh_conn_close_all(w);
    gh_pools_release(w);
    close_listeners(w);
    gh_accesslog_buf_free(w->alog);
    w->alog = NULL;
    pending = atomic_exchange(&w->pending, NULL);
    if (pending) gh_snapshot_unref(pending);
    while (w->retired) {
        struct gh_wsnap *ws = w->retired;
        w->retired = ws->next;
        gh_snapshot_unref(ws->snap);
        free(ws);
    }
    if (w->cur) {
        gh_snapshot_unref(w->cur->snap);
        free(w->cur);
        w->cur = NULL;
    }
    gh_inbound_worker_free(w->wh);
    w->wh = NULL;
    while (w->free_reqs) {
        struct gh_req *r = w->free_reqs;
        w->free_reqs = r->next_free;
        free(r);
    }
    {
        struct gh_keydir *d = atomic_exchange(&w->pending_dir, NULL);
        if (d) gh_keydir_unref(d);
    }
    /* Jobs that came back after the loop stopped. */
    while (w->verify_done) {
        struct gh_verify_job *j = w->verify_done;
        w->verify_done = j->next;
        free(j);
    }
    gh_keydir_unref(w->keydir);
    w->keydir = NULL;
    gh_authn_worker_free(w->authn);
    w->authn = NULL;
    gh_limits_worker_free(w->limits);
    w->limits = NULL;
    gh_metrics_worker_free(w->metrics);
    w->metrics = NULL;
    /* The audit writer posts no more completions to this loop. */
    gh_audit_worker_unbind(w->audit);
    w->audit = NULL;
    pthread_mutex_destroy(&w->verify_mu);
    if (w->notify_ev) event_free(w->notify_ev);
    if (w->tick_ev) event_free(w->tick_ev);
    if (w->verify_ev) event_free(w->verify_ev);
    free(w->listeners);
    gh_bufpool_release(&w->bufpool);
    event_base_free(w->base);
    w->base = NULL;
}
