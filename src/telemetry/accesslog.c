/* Access-log formatting (worker threads) and writing (one thread). */
#include "telemetry/accesslog.h"
#include "telemetry/tracectx.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "core/worker.h"
#include "http/conn.h"
#include "proxy/pool.h"
#include "proxy/router.h"

#define BUF_CAP    (64 * 1024)
#define MAX_QUEUED 64 /* buffers waiting for the writer: 4 MiB */

struct chunk {
    struct chunk *next;
    size_t len;
    char data[];
};

struct gh_accesslog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct chunk *head, *tail;
    unsigned queued;
    bool stop;
    bool reopen;
    char *path; /* NULL for stdout/stderr */
    int std_fd; /* STDOUT_FILENO / STDERR_FILENO when path is NULL */
    int fd;
    _Atomic uint64_t dropped;
    /* `,"node":"<id>"`, formatted at open: a line copies it (the id is
     * fixed for the process's life and needs no escape). */
    char node_json[96];
    size_t node_json_len;
};

struct gh_accesslog_buf {
    struct gh_accesslog *log;
    struct chunk *cur;
    time_t sec;     /* second of <stamp> */
    char stamp[24]; /* "2026-11-21T23:59:01" */
};

static int open_sink(const char *path, int std_fd, char *why, size_t whylen)
{
    int fd;
    if (path == NULL) return std_fd;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) snprintf(why, whylen, "cannot open access log %s: %s", path, strerror(errno));
    return fd;
}

static void sink_from_cfg(const struct gh_config_access_log *cfg, char **path, int *std_fd)
{
    *path = NULL;
    *std_fd = STDOUT_FILENO;
    if (cfg->path == NULL || strcmp(cfg->path, "stdout") == 0) return;
    if (strcmp(cfg->path, "stderr") == 0) {
        *std_fd = STDERR_FILENO;
        return;
    }
    *path = strdup(cfg->path);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* a full disk must not wedge the writer */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void *writer_main(void *arg)
{
    struct gh_accesslog *l = arg;

    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->head == NULL && !l->stop && !l->reopen)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->reopen) {
            char why[256];
            int fd;
            l->reopen = false;
            fd = open_sink(l->path, l->std_fd, why, sizeof(why));
            if (fd < 0) {
                gh_log_error("%s; keeping the old file", why);
            } else {
                if (l->fd != l->std_fd && l->fd >= 0 && l->fd != fd) close(l->fd);
                l->fd = fd;
            }
        }
        struct chunk *list = l->head;
        l->head = l->tail = NULL;
        l->queued = 0;
        bool stop = l->stop;
        int fd = l->fd;
        pthread_mutex_unlock(&l->mu);
        while (list) {
            struct chunk *next = list->next;
            write_all(fd, list->data, list->len);
            free(list);
            list = next;
        }
        pthread_mutex_lock(&l->mu);
        if (stop && l->head == NULL) break;
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

struct gh_accesslog *gh_accesslog_open(const struct gh_config_access_log *cfg, const char *node,
                                       struct gh_err *err)
{
    struct gh_accesslog *l = calloc(1, sizeof(*l));
    char why[256];

    if (l == NULL) {
        gh_err_set(err, NULL, 0, 0, "out of memory");
        return NULL;
    }
    if (node != NULL && node[0] != '\0') {
        struct gh_jsonw jw;
        gh_jsonw_init(&jw, l->node_json, sizeof(l->node_json));
        gh_jsonw_lit(&jw, ",\"node\":");
        gh_jsonw_str(&jw, gh_str_cstr(node));
        l->node_json_len = jw.overflow ? 0 : jw.len;
    }
    sink_from_cfg(cfg, &l->path, &l->std_fd);
    l->fd = open_sink(l->path, l->std_fd, why, sizeof(why));
    if (l->fd < 0) {
        gh_err_set(err, NULL, 0, 0, "%s", why);
        free(l->path);
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (pthread_create(&l->thread, NULL, writer_main, l) != 0) {
        gh_err_set(err, NULL, 0, 0, "cannot start the access log thread");
        if (l->fd != l->std_fd) close(l->fd);
        free(l->path);
        free(l);
        return NULL;
    }
    return l;
}

void gh_accesslog_close(struct gh_accesslog *l)
{
    if (l == NULL) return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    if (l->fd != l->std_fd && l->fd >= 0) close(l->fd);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->path);
    free(l);
}

void gh_accesslog_reopen(struct gh_accesslog *l)
{
    pthread_mutex_lock(&l->mu);
    l->reopen = true;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

int gh_accesslog_configure(struct gh_accesslog *l, const struct gh_config_access_log *cfg,
                           struct gh_err *err)
{
    char *path;
    int std_fd;

    sink_from_cfg(cfg, &path, &std_fd);
    pthread_mutex_lock(&l->mu);
    bool same = (path == NULL && l->path == NULL && std_fd == l->std_fd) ||
                (path && l->path && strcmp(path, l->path) == 0);
    if (!same) {
        free(l->path);
        l->path = path;
        l->std_fd = std_fd;
        l->reopen = true;
        pthread_cond_signal(&l->cv);
        path = NULL;
    }
    pthread_mutex_unlock(&l->mu);
    free(path);
    (void)err;
    return GH_OK;
}

uint64_t gh_accesslog_dropped(struct gh_accesslog *l)
{
    return l ? atomic_load(&l->dropped) : 0;
}

static struct chunk *chunk_new(void)
{
    struct chunk *c = malloc(sizeof(*c) + BUF_CAP);
    if (c) {
        c->next = NULL;
        c->len = 0;
    }
    return c;
}

struct gh_accesslog_buf *gh_accesslog_buf_new(struct gh_accesslog *l)
{
    struct gh_accesslog_buf *b = calloc(1, sizeof(*b));
    if (b) b->log = l;
    return b;
}

static void submit(struct gh_accesslog_buf *b)
{
    struct gh_accesslog *l = b->log;
    struct chunk *c = b->cur;

    if (c == NULL || c->len == 0) return;
    b->cur = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->queued >= MAX_QUEUED) {
        pthread_mutex_unlock(&l->mu);
        atomic_fetch_add(&l->dropped, 1);
        free(c);
        return;
    }
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->queued++;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void gh_accesslog_flush(struct gh_accesslog_buf *b)
{
    if (b) submit(b);
}

void gh_accesslog_buf_free(struct gh_accesslog_buf *b)
{
    if (b == NULL) return;
    submit(b);
    free(b->cur);
    free(b);
}

static void format_time(struct gh_accesslog_buf *b, struct gh_jsonw *jw)
{
    uint64_t ms = gh_wall_ms();
    time_t sec = (time_t)(ms / 1000);
    char frac[6] = {'.', 0, 0, 0, 'Z', '"'};
    unsigned m = (unsigned)(ms % 1000);

    if (sec != b->sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(b->stamp, sizeof(b->stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        b->sec = sec;
    }
    gh_jsonw_lit(jw, "{\"time\":\"");
    gh_jsonw_raw(jw, b->stamp, strlen(b->stamp));
    frac[1] = (char)('0' + m / 100);
    frac[2] = (char)('0' + m / 10 % 10);
    frac[3] = (char)('0' + m % 10);
    gh_jsonw_raw(jw, frac, sizeof(frac));
}

void gh_accesslog_request(struct gh_worker *w, const struct gh_req *r)
{
    struct gh_accesslog_buf *b = w->alog;
    const struct gh_conn *c = r->conn;
    char line[2048];
    struct gh_jsonw jw;
    uint64_t now;

    if (b == NULL || r->snap == NULL || !r->snap->cfg->access_log.enabled) return;
    now = gh_now_ns();
    gh_jsonw_init(&jw, line, sizeof(line));
    format_time(b, &jw);
    gh_jsonw_raw(&jw, b->log->node_json, b->log->node_json_len);
    gh_jsonw_lit(&jw, ",\"request_id\":");
    gh_jsonw_str(&jw, gh_str_make(r->id, r->id_len));
    gh_jsonw_lit(&jw, ",\"client\":");
    gh_jsonw_str(&jw, gh_str_make(c->peer_ip, c->peer_ip_len));
    gh_jsonw_lit(&jw, ",\"method\":");
    gh_jsonw_str(&jw, r->head.method);
    gh_jsonw_lit(&jw, ",\"path\":");
    gh_jsonw_str(&jw, r->head.path.len > 512 ? gh_str_make(r->head.path.ptr, 512) : r->head.path);
    gh_jsonw_lit(&jw, ",\"status\":");
    gh_jsonw_u64(&jw, (uint64_t)r->status);
    gh_jsonw_lit(&jw, ",\"bytes_in\":");
    gh_jsonw_u64(&jw, r->bytes_in);
    gh_jsonw_lit(&jw, ",\"bytes_out\":");
    gh_jsonw_u64(&jw, r->bytes_out);
    gh_jsonw_lit(&jw, ",\"duration_ms\":");
    gh_jsonw_ms3(&jw, r->t_start ? now - r->t_start : 0);
    if (r->t_up_start) {
        gh_jsonw_lit(&jw, ",\"upstream_ms\":");
        gh_jsonw_ms3(&jw, (r->t_up_head ? r->t_up_head : now) - r->t_up_start);
    }
    if (r->route) {
        gh_jsonw_lit(&jw, ",\"route\":");
        gh_jsonw_str(&jw, gh_str_cstr(r->route->cfg->name));
        gh_jsonw_lit(&jw, ",\"upstream\":");
        gh_jsonw_str(&jw, gh_str_cstr(r->route->upstream->name));
    }
    if (r->endpoint[0]) {
        gh_jsonw_lit(&jw, ",\"endpoint\":");
        gh_jsonw_str(&jw, gh_str_cstr(r->endpoint));
    }
    if (r->error) {
        gh_jsonw_lit(&jw, ",\"error\":");
        gh_jsonw_str(&jw, gh_str_cstr(r->error));
    }
    if (r->tr_on) {
        /* The ids of this request's server span, to join logs and traces. */
        char hex[33];
        gh_jsonw_lit(&jw, ",\"trace_id\":\"");
        gh_trace_hex(hex, r->tr_trace_id, 16);
        gh_jsonw_raw(&jw, hex, 32);
        gh_jsonw_lit(&jw, "\",\"span_id\":\"");
        gh_trace_hex(hex, r->tr_server_id, 8);
        gh_jsonw_raw(&jw, hex, 16);
        gh_jsonw_lit(&jw, "\"");
    }
    gh_jsonw_lit(&jw, "}\n");
    if (jw.overflow) return;

    if (b->cur && b->cur->len + jw.len > BUF_CAP) submit(b);
    if (b->cur == NULL) {
        b->cur = chunk_new();
        if (b->cur == NULL) return;
    }
    memcpy(b->cur->data + b->cur->len, line, jw.len);
    b->cur->len += jw.len;
}
