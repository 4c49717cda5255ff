/* The PostgreSQL change listener (store.h: watch_start / watch_stop): one
 * thread per subscription with its own session (application_name
 * "gatehouse-listen", outside the pool), LISTEN on GH_PG_CHANGES_CHANNEL.
 * Every change-counter bump notifies that channel in its own transaction
 * (GH_PG_VERSION_BUMP), so each node hears of a commit of any node within
 * a round trip, instead of at its next poll.
 *
 * The thread waits with poll() on the session's socket and on a pipe that
 * stop writes to, so stopping never waits on the network (the connect is
 * non-blocking too). A lost session (server restart, failover,
 * pg_terminate_backend) is made again with a growing pause (100 ms to 5 s),
 * logged once per outage; after every (re)connect the subscriber is called
 * once, since notifications sent while nobody listened are gone. Meanwhile
 * the subscriber's own poll of the change counter carries the changes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "store/pg_int.h"
#include "store/store_int.h"

#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
#define CONNECT_TIMEOUT_MS 10000
/* A session that lived this long was a good one: the next loss starts the
 * pauses from BACKOFF_MIN_MS again (one that drops at once keeps growing
 * them, so a server that kills us on sight is not hammered). */
#define STABLE_NS (10ull * 1000000000ull)

struct pg_listener {
    struct gh_store_watch *w;
    char *url;
    int wake[2]; /* stop writes a byte to wake[1] */
    _Atomic bool stop;
    pthread_t thread;
};

enum { WAIT_READY = 1, WAIT_TIMEOUT = 0, WAIT_STOP = -1 };

/* Waits up to <ms> (-1: no limit) for <events> on <fd> (-1: none) or a
 * stop. A failing poll() counts as ready: the caller's libpq call then
 * finds out what is wrong. */
static int wait_fd(struct pg_listener *l, int fd, short events, int ms)
{
    struct pollfd p[2] = {{.fd = l->wake[0], .events = POLLIN}, {.fd = fd, .events = events}};
    uint64_t until = ms < 0 ? 0 : gh_now_ns() + (uint64_t)ms * 1000000ull;

    for (;;) {
        int left = ms;
        if (atomic_load(&l->stop)) return WAIT_STOP;
        if (ms >= 0) {
            uint64_t now = gh_now_ns();
            left = now >= until ? 0 : (int)((until - now + 999999) / 1000000);
        }
        int n = poll(p, fd >= 0 ? 2 : 1, left);
        if (n < 0 && errno == EINTR) continue;
        if (atomic_load(&l->stop) || (n > 0 && p[0].revents)) return WAIT_STOP;
        if (n == 0) return WAIT_TIMEOUT;
        return WAIT_READY;
    }
}

/* libpq's message on one line (it ends in a newline, may span several). */
static void one_line(char *dst, size_t size, const char *msg)
{
    size_t i = 0;
    for (; msg && msg[i] && i + 1 < size; i++)
        dst[i] = (msg[i] == '\n' || msg[i] == '\r') ? ' ' : msg[i];
    while (i > 0 && dst[i - 1] == ' ')
        i--;
    dst[i] = '\0';
}

/* A listening session, or NULL with <why> set (or a stop: NULL, why ""). */
static PGconn *listen_connect(struct pg_listener *l, char *why, size_t size)
{
    PGconn *db = gh_pg__connect_start(l->url, GH_PG_APP_LISTEN);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    uint64_t until = gh_now_ns() + (uint64_t)CONNECT_TIMEOUT_MS * 1000000ull;
    PGresult *r;
    bool ok;

    why[0] = '\0';
    if (db == NULL) {
        one_line(why, size, "out of memory");
        return NULL;
    }
    /* libpq's non-blocking connect: wait for what PQconnectPoll asks for,
     * then call it again; it walks the URL's hosts itself. */
    while (PQstatus(db) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        uint64_t now = gh_now_ns();
        if (now >= until) {
            one_line(why, size, "cannot connect: timed out");
            goto fail;
        }
        int w = wait_fd(l, PQsocket(db), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                        (int)((until - now) / 1000000ull) + 1);
        if (w == WAIT_STOP) goto fail;
        if (w == WAIT_TIMEOUT) continue;
        st = PQconnectPoll(db);
    }
    if (PQstatus(db) != CONNECTION_OK) {
        /* libpq's message names the host and the reason, never the password. */
        one_line(why, size, PQerrorMessage(db));
        goto fail;
    }
    /* LISTEN without blocking either: a server that hangs right after the
     * connect must not keep a stop waiting for TCP to give up. */
    if (PQsetnonblocking(db, 1) != 0 || !PQsendQuery(db, "LISTEN " GH_PG_CHANGES_CHANNEL)) {
        one_line(why, size, PQerrorMessage(db));
        goto fail;
    }
    for (int flushed = 1;;) {
        uint64_t now = gh_now_ns();
        int w;
        if ((flushed = PQflush(db)) < 0) {
            one_line(why, size, PQerrorMessage(db));
            goto fail;
        }
        if (flushed == 0 && !PQisBusy(db)) break;
        if (now >= until) {
            one_line(why, size, "LISTEN: timed out");
            goto fail;
        }
        w = wait_fd(l, PQsocket(db), flushed ? POLLIN | POLLOUT : POLLIN,
                    (int)((until - now) / 1000000ull) + 1);
        if (w == WAIT_STOP) goto fail;
        if (w == WAIT_READY && !PQconsumeInput(db)) {
            one_line(why, size, PQerrorMessage(db));
            goto fail;
        }
    }
    ok = true;
    while ((r = PQgetResult(db)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            if (ok) one_line(why, size, PQerrorMessage(db));
            ok = false;
        }
        PQclear(r);
    }
    if (ok) return db;
fail:
    PQfinish(db);
    return NULL;
}

/* Serves one session until it is lost (<why> set) or a stop. */
static void listen_serve(struct pg_listener *l, PGconn *db, char *why, size_t size)
{
    why[0] = '\0';
    for (;;) {
        PGnotify *n;
        uint64_t count = 0;
        int w = wait_fd(l, PQsocket(db), POLLIN, -1);

        if (w == WAIT_STOP) return;
        if (!PQconsumeInput(db)) {
            one_line(why, size, PQerrorMessage(db));
            return;
        }
        while ((n = PQnotifies(db)) != NULL) {
            count++;
            PQfreemem(n);
        }
        /* Many commits at once wake the subscriber once: it reads the
         * counter, which covers them all. */
        if (count) gh_store__watch_fire(l->w, count);
        if (PQstatus(db) != CONNECTION_OK) {
            one_line(why, size, PQerrorMessage(db));
            return;
        }
    }
}

static void *listen_main(void *arg)
{
    struct pg_listener *l = arg;
    unsigned backoff = BACKOFF_MIN_MS;
    bool down = false; /* an outage is going on, and was logged */
    char why[320];

    while (!atomic_load(&l->stop)) {
        PGconn *db = listen_connect(l, why, sizeof(why));
        if (db == NULL) {
            if (atomic_load(&l->stop)) break;
            if (!down)
                gh_log_warn("store: change listener: %s; changes reach this node by polling "
                            "until it is back",
                            why);
            down = true;
        } else {
            uint64_t since = gh_now_ns();
            if (down) gh_log_info("store: change listener connected again");
            down = false;
            gh_store__watch_set_connected(l->w, true);
            /* What was committed while nobody listened: one look now. */
            gh_store__watch_fire(l->w, 0);
            listen_serve(l, db, why, sizeof(why));
            gh_store__watch_set_connected(l->w, false);
            PQfinish(db);
            if (atomic_load(&l->stop)) break;
            gh_log_warn("store: change listener lost its session: %s; changes reach this node "
                        "by polling until it is back",
                        why[0] ? why : "connection closed");
            down = true;
            if (gh_now_ns() - since >= STABLE_NS) backoff = BACKOFF_MIN_MS;
        }
        if (wait_fd(l, -1, 0, (int)backoff) == WAIT_STOP) break;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return NULL;
}

static void listener_free(struct pg_listener *l)
{
    if (l->wake[0] >= 0) close(l->wake[0]);
    if (l->wake[1] >= 0) close(l->wake[1]);
    free(l->url);
    free(l);
}

int gh_pg__watch_start(struct gh_store *st, struct gh_store_watch *w, struct gh_err *err)
{
    struct pg_listener *l = calloc(1, sizeof(*l));

    if (l == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    l->w = w;
    l->wake[0] = l->wake[1] = -1;
    atomic_init(&l->stop, false);
    l->url = strdup(gh_pg__of(st)->url);
    if (l->url == NULL) {
        listener_free(l);
        return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    }
    if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        gh_err_set(err, NULL, 0, 0, "store: change listener: pipe: %s", strerror(errno));
        listener_free(l);
        return GH_ERROR;
    }
    if (pthread_create(&l->thread, NULL, listen_main, l) != 0) {
        listener_free(l);
        return gh_err_set(err, NULL, 0, 0, "store: cannot start the change listener thread");
    }
    pthread_setname_np(l->thread, "gh-pg-listen");
    w->engine = l;
    return GH_OK;
}

void gh_pg__watch_stop(struct gh_store_watch *w)
{
    struct pg_listener *l = w->engine;
    ssize_t n;

    if (l == NULL) return;
    atomic_store(&l->stop, true);
    do
        n = write(l->wake[1], "x", 1);
    while (n < 0 && errno == EINTR);
    pthread_join(l->thread, NULL);
    gh_store__watch_set_connected(w, false);
    listener_free(l);
    w->engine = NULL;
}
