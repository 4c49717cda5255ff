/* The per-worker Redis connection: our own non-blocking I/O and timers on
 * the worker's event_base, hiredis's reader for RESP. See redis.h. */
#include "limits/redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event_struct.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "http/sock.h"

#define OUT_INITIAL       16384
#define READ_CHUNK        16384
#define READS_PER_EVENT   16 /* then yield to the other connections of the worker */
#define TIMEOUTS_FOR_DOWN 3
#define HELLO_MAX         3 /* AUTH, SELECT, PING, ROLE: at most three of them */
#define RING_CAP          (GH_REDIS_MAX_PENDING + HELLO_MAX)

enum state {
    ST_DOWN,       /* closed; the timer is the reconnect backoff */
    ST_RESOLVING,  /* looking the host name up (evdns), before connecting */
    ST_CONNECTING, /* TCP connect in progress */
    ST_HANDSHAKE,  /* TLS handshake in progress */
    ST_HELLO,      /* connected; waiting for the AUTH/SELECT/PING replies */
    ST_UP,
};

enum kind { K_USER, K_AUTH, K_SELECT, K_PING, K_ROLE };

static const char *const kind_names[] = {"command", "AUTH", "SELECT", "PING", "ROLE"};

/* One command sent or queued, waiting for its reply. Redis answers in order,
 * so these form a FIFO and the head is the one the next reply belongs to. */
struct slot {
    gh_redis_cb cb; /* NULL: nobody waits (cancelled, timed out, or internal) */
    void *arg;
    uint64_t deadline_ns; /* 0: covered by the connect deadline (hello commands) */
    uint32_t handle;      /* 0 for commands nobody can cancel */
    uint8_t kind;
    uint8_t flags;
    bool expired; /* its deadline passed: its reply, when it comes, is late */
};

struct gh_redis {
    struct event_base *base;
    struct sockaddr_storage addr; /* the address the current attempt connects to */
    socklen_t addrlen;
    bool numeric;           /* host is an address: never looked up */
    struct evdns_base *dns; /* a name's resolver, made at the first lookup */
    struct lookup *lk;      /* the lookup not called back yet (in flight or cancelled) */
    bool hold_backoff;      /* down for READONLY: up is not well until a write works */
    char *host, *sni, *username, *password, *name, *resolver;
    SSL_CTX *tls_ctx;
    bool tls;
    uint16_t port;
    uint32_t db;
    uint32_t timeout_ms, connect_timeout_ms, backoff_min_ms, backoff_max_ms;
    uint32_t backoff_ms; /* the next reconnect delay before jitter */
    uint64_t rng;        /* xorshift state, for the jitter */

    enum state state;
    bool down; /* declared down and not reconnected since: commands are refused */
    struct gh_sock sock;
    bool write_wants_read, read_wants_write; /* TLS: the other direction is needed */
    uint64_t connect_deadline_ns;            /* while connecting and saying hello */
    uint32_t hello_pending;

    redisReader *reader;
    char *out; /* RESP bytes not yet written: [out_off, out_len) */
    size_t out_off, out_len, out_cap;

    struct slot *ring; /* RING_CAP slots; absolute positions head <= tmo_next <= tail */
    uint64_t head, tail;
    uint64_t tmo_next; /* first slot whose deadline was not checked yet */
    uint32_t next_handle;
    uint32_t consec_timeouts;

    struct event ev_timer; /* one per connection: backoff, or the earliest deadline */
    bool timer_on;
    uint64_t timer_at_ns;
    struct event ev_flush; /* activated by commands: one write per loop iteration */
    bool flush_queued;

    struct gh_redis_stats st;
};

static void sock_cb(evutil_socket_t fd, short what, void *arg);
static void start_connect(struct gh_redis *r);
static void cancel_lookup(struct gh_redis *r);

static struct slot *slot_at(struct gh_redis *r, uint64_t pos)
{
    return &r->ring[pos % RING_CAP];
}

static uint64_t next_rand(struct gh_redis *r)
{
    uint64_t x = r->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->rng = x;
    return x;
}

static void timer_add_at(struct gh_redis *r, uint64_t at_ns)
{
    uint64_t now = gh_now_ns();
    uint64_t d = at_ns > now ? at_ns - now : 0;
    struct timeval tv = {(time_t)(d / 1000000000ull), (suseconds_t)((d % 1000000000ull) / 1000)};

    event_add(&r->ev_timer, &tv);
    r->timer_on = true;
    r->timer_at_ns = at_ns;
}

/* The timer is lazy: it stays armed for a deadline whose command was
 * answered, fires, finds nothing and re-arms. That saves an event_add per
 * reply; it is moved only when something needs it earlier. */
static void timer_want(struct gh_redis *r, uint64_t at_ns)
{
    if (r->timer_on && r->timer_at_ns <= at_ns) return;
    timer_add_at(r, at_ns);
}

static void timer_stop(struct gh_redis *r)
{
    if (r->timer_on) event_del(&r->ev_timer);
    r->timer_on = false;
}

/* ---- state changes ---- */

static void go_down(struct gh_redis *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Closes the connection, fails what waits with GH_REDIS_IOERR and schedules
 * a reconnect. Logs only when the client was not down already, so a server
 * that stays away costs one line, not one per attempt. */
static void go_down(struct gh_redis *r, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    bool announce = !r->down;
    uint32_t delay;

    if (r->state == ST_DOWN) return;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);

    r->down = true;
    r->state = ST_DOWN;
    cancel_lookup(r);
    gh_sock_close(&r->sock);
    event_del(&r->ev_flush);
    r->flush_queued = false;
    r->out_off = r->out_len = 0;
    r->write_wants_read = r->read_wants_write = false;
    r->hello_pending = 0;
    r->connect_deadline_ns = 0;
    r->consec_timeouts = 0;
    /* A half-read reply belongs to the old connection; hiredis 0.14 has no
     * reset, so take a fresh reader (start_connect retries if this fails). */
    redisReaderFree(r->reader);
    r->reader = redisReaderCreate();

    delay = (uint32_t)((uint64_t)r->backoff_ms * (80 + next_rand(r) % 41) / 100);
    if (delay == 0) delay = 1;
    r->backoff_ms = r->backoff_ms >= r->backoff_max_ms / 2 ? r->backoff_max_ms : r->backoff_ms * 2;
    timer_stop(r);
    timer_add_at(r, gh_now_ns() + (uint64_t)delay * 1000000ull);

    if (announce)
        gh_log_warn("redis %s: down: %s; reconnecting in %u ms", r->name, why, delay);
    else
        gh_log_debug("redis %s: reconnect failed: %s; next try in %u ms", r->name, why, delay);

    /* Last, because callbacks run the caller's code, which must find the
     * client down already (a new command is refused, not queued). */
    while (r->head < r->tail) {
        struct slot s = *slot_at(r, r->head++);
        r->tmo_next = r->head;
        if (s.cb == NULL) continue;
        r->st.errors++;
        s.cb(s.arg, NULL, GH_REDIS_IOERR);
    }
}

static void go_up(struct gh_redis *r)
{
    char ip[INET6_ADDRSTRLEN] = "";

    r->state = ST_UP;
    r->down = false;
    r->connect_deadline_ns = 0;
    /* After a READONLY the hello asked ROLE, which cleared the hold (and
     * the backoff) for a primary; a replica never gets here. */
    if (!r->hold_backoff) r->backoff_ms = r->backoff_min_ms;
    /* A name says where it led: after a failover, which server this is. */
    if (!r->numeric)
        getnameinfo((struct sockaddr *)&r->addr, r->addrlen, ip, sizeof(ip), NULL, 0,
                    NI_NUMERICHOST);
    gh_log_info("redis %s: up (%s%s%s port %u%s)", r->name, r->host, ip[0] ? " at " : "", ip,
                (unsigned)r->port, r->tls ? ", TLS" : "");
}

/* ---- output ---- */

static int out_reserve(struct gh_redis *r, size_t n)
{
    size_t used = r->out_len - r->out_off;
    size_t cap;
    char *p;

    if (n > GH_REDIS_OUT_MAX - used) return GH_ERROR;
    if (r->out_len + n <= r->out_cap) return GH_OK;
    /* Moving unsent bytes is safe with TLS too: the SSL object has
     * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, and a retry only ever offers
     * more bytes than the write that would block. */
    if (r->out_off > 0) {
        memmove(r->out, r->out + r->out_off, used);
        r->out_off = 0;
        r->out_len = used;
        if (used + n <= r->out_cap) return GH_OK;
    }
    cap = r->out_cap;
    while (cap < used + n)
        cap *= 2;
    if (cap > GH_REDIS_OUT_MAX) cap = GH_REDIS_OUT_MAX;
    p = realloc(r->out, cap);
    if (p == NULL) return GH_ERROR;
    r->out = p;
    r->out_cap = cap;
    return GH_OK;
}

static size_t dec_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

static char *put_dec(char *p, uint64_t v)
{
    size_t n = dec_len(v);
    for (size_t i = n; i > 0; i--) {
        p[i - 1] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

/* Appends argv as a RESP array of bulk strings. Written straight into the
 * output buffer rather than through redisFormatCommandArgv, which would cost
 * a malloc and a copy per command on the request path. */
static int encode(struct gh_redis *r, int argc, const char **argv, const size_t *argvlen)
{
    size_t need = 1 + dec_len((uint64_t)argc) + 2;
    char *p;

    for (int i = 0; i < argc; i++)
        need += 1 + dec_len(argvlen[i]) + 2 + argvlen[i] + 2;
    if (out_reserve(r, need) != GH_OK) return GH_ERROR;
    p = r->out + r->out_len;
    *p++ = '*';
    p = put_dec(p, (uint64_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        *p++ = '$';
        p = put_dec(p, argvlen[i]);
        *p++ = '\r';
        *p++ = '\n';
        if (argvlen[i]) memcpy(p, argv[i], argvlen[i]);
        p += argvlen[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    r->out_len += need;
    return GH_OK;
}

static void push_slot(struct gh_redis *r, gh_redis_cb cb, void *arg, uint64_t deadline,
                      uint32_t handle, enum kind kind, unsigned flags)
{
    struct slot *s = slot_at(r, r->tail++);

    s->cb = cb;
    s->arg = arg;
    s->deadline_ns = deadline;
    s->handle = handle;
    s->kind = (uint8_t)kind;
    s->flags = (uint8_t)flags;
    s->expired = false;
}

/* Writes what is queued. Returns GH_OK, or GH_ERROR when the connection went
 * down (the caller must not touch the socket any more). */
static int flush_out(struct gh_redis *r)
{
    if (r->state != ST_HELLO && r->state != ST_UP) return GH_OK;
    r->write_wants_read = false;
    while (r->out_off < r->out_len) {
        ssize_t n = gh_sock_write(&r->sock, r->out + r->out_off, r->out_len - r->out_off);
        if (n > 0) {
            r->out_off += (size_t)n;
            continue;
        }
        if (n == GH_SOCK_AGAIN) {
            if (r->sock.want == GH_WANT_WRITE)
                gh_sock_want_write(&r->sock, true);
            else
                r->write_wants_read = true; /* read interest is always on */
            return GH_OK;
        }
        go_down(r, "write: %s", r->sock.err > 0 ? strerror(r->sock.err) : "TLS error");
        return GH_ERROR;
    }
    r->out_off = r->out_len = 0;
    if (!r->read_wants_write) gh_sock_want_write(&r->sock, false);
    return GH_OK;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gh_redis *r = arg;

    r->flush_queued = false;
    flush_out(r);
}

/* ---- connecting ---- */

static bool is_ip_literal(const char *host)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
}

/* The client SSL, as http/tls.c makes them for upstreams: SNI and a name
 * check against the certificate (enforced when the context verifies). */
static SSL *new_ssl(struct gh_redis *r, int fd)
{
    SSL *ssl = SSL_new(r->tls_ctx);
    const char *name = r->sni ? r->sni : r->host;

    if (ssl == NULL) return NULL;
    if (SSL_set_fd(ssl, fd) != 1) goto fail;
    SSL_set_connect_state(ssl);
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!is_ip_literal(name)) {
        if (SSL_set_tlsext_host_name(ssl, name) != 1) goto fail;
        if (SSL_set1_host(ssl, name) != 1) goto fail;
    } else if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1) {
        goto fail;
    }
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

/* AUTH and SELECT, or a PING when there is neither, go first on every
 * connection: queued before the socket even connects, so they precede any
 * command, and pipelined with those commands rather than costing a round
 * trip. Queued into an empty buffer, so they always fit. */
static void queue_hello(struct gh_redis *r)
{
    const char *argv[3];
    size_t lens[3];
    char dbuf[16];

    if (r->password) {
        int n = 0;
        argv[n] = "AUTH";
        lens[n++] = 4;
        if (r->username) {
            argv[n] = r->username;
            lens[n++] = strlen(r->username);
        }
        argv[n] = r->password;
        lens[n++] = strlen(r->password);
        encode(r, n, argv, lens);
        push_slot(r, NULL, NULL, 0, 0, K_AUTH, 0);
        r->hello_pending++;
    }
    if (r->db) {
        argv[0] = "SELECT";
        lens[0] = 6;
        argv[1] = dbuf;
        lens[1] = (size_t)(put_dec(dbuf, r->db) - dbuf);
        encode(r, 2, argv, lens);
        push_slot(r, NULL, NULL, 0, 0, K_SELECT, 0);
        r->hello_pending++;
    }
    /* After a READONLY: whether this server is a primary now (a replica
     * answers the rest of the hello as well). */
    if (r->hold_backoff) {
        argv[0] = "ROLE";
        lens[0] = 4;
        encode(r, 1, argv, lens);
        push_slot(r, NULL, NULL, 0, 0, K_ROLE, 0);
        r->hello_pending++;
    }
    if (r->hello_pending == 0) {
        argv[0] = "PING";
        lens[0] = 4;
        encode(r, 1, argv, lens);
        push_slot(r, NULL, NULL, 0, 0, K_PING, 0);
        r->hello_pending++;
    }
}

static void start_connect(struct gh_redis *r)
{
    int fd, one = 1;

    r->state = ST_CONNECTING;
    r->connect_deadline_ns = gh_now_ns() + (uint64_t)r->connect_timeout_ms * 1000000ull;
    timer_stop(r);
    timer_want(r, r->connect_deadline_ns);
    if (r->reader == NULL) r->reader = redisReaderCreate();
    if (r->reader == NULL) {
        go_down(r, "out of memory");
        return;
    }
    fd = socket(r->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        go_down(r, "socket: %s", strerror(errno));
        return;
    }
    /* Small commands, each waited for: Nagle would only add latency. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&r->addr, r->addrlen) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        go_down(r, "connect: %s", strerror(e));
        return;
    }
    gh_sock_init(&r->sock, r->base, fd, sock_cb, r);
    if (r->tls) {
        r->sock.ssl = new_ssl(r, fd);
        if (r->sock.ssl == NULL) {
            go_down(r, "cannot create a TLS session");
            return;
        }
    }
    gh_sock_want_write(&r->sock, true); /* writable = connected (or failed) */
}

static void connected(struct gh_redis *r)
{
    r->state = ST_HELLO;
    gh_sock_want_write(&r->sock, false);
    gh_sock_want_read(&r->sock, true); /* always on: a close is noticed at once */
    flush_out(r);
}

static void do_handshake(struct gh_redis *r)
{
    int rc = gh_sock_handshake(&r->sock);

    if (rc == GH_SOCK_AGAIN) {
        gh_sock_want_read(&r->sock, r->sock.want == GH_WANT_READ);
        gh_sock_want_write(&r->sock, r->sock.want == GH_WANT_WRITE);
        return;
    }
    if (rc != 0) {
        long v = SSL_get_verify_result(r->sock.ssl);
        if (v != X509_V_OK)
            go_down(r, "TLS handshake: %s", X509_verify_cert_error_string(v));
        else if (r->sock.err > 0)
            go_down(r, "TLS handshake: %s", strerror(r->sock.err));
        else
            go_down(r, "TLS handshake failed");
        return;
    }
    connected(r);
}

/* ---- input ---- */

/* Hands one reply to the command at the head of the FIFO. Returns GH_OK, or
 * GH_ERROR when the connection went down. Frees <reply>. */
static int handle_reply(struct gh_redis *r, redisReply *reply)
{
    struct slot s;
    bool readonly;

    if (r->head == r->tail) {
        freeReplyObject(reply);
        go_down(r, "protocol error: a reply nobody asked for");
        return GH_ERROR;
    }
    s = *slot_at(r, r->head++);
    if (r->tmo_next < r->head) r->tmo_next = r->head;
    if (s.kind == K_ROLE) {
        /* ["master", ...] clears the hold; a replica is a failed connect
         * (the backoff keeps growing); a ROLE refused (an ACL without it)
         * cannot tell, and the hold goes. */
        bool replica = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                       reply->element[0]->type == REDIS_REPLY_STRING &&
                       strcmp(reply->element[0]->str, "master") != 0;
        freeReplyObject(reply);
        if (replica) {
            go_down(r, "the server is still a replica (ROLE)");
            return GH_ERROR;
        }
        r->hold_backoff = false; /* and go_up resets the backoff */
        if (--r->hello_pending == 0 && r->state == ST_HELLO) go_up(r);
        return GH_OK;
    }
    if (s.kind != K_USER) {
        if (reply->type == REDIS_REPLY_ERROR) {
            /* The server's message, never ours: it cannot hold the password. */
            go_down(r, "%s refused: %.120s", kind_names[s.kind], reply->str ? reply->str : "");
            freeReplyObject(reply);
            return GH_ERROR;
        }
        freeReplyObject(reply);
        if (--r->hello_pending == 0 && r->state == ST_HELLO) go_up(r);
        return GH_OK;
    }
    if (!s.expired) r->consec_timeouts = 0;
    /* A primary demoted to a replica (a failover that left this connection
     * open) refuses every write: its caller hears the refusal, and the next
     * connect finds the primary (a name is looked up again). */
    readonly = reply->type == REDIS_REPLY_ERROR && reply->str != NULL &&
               strncmp(reply->str, "READONLY ", 9) == 0;
    if (s.cb) s.cb(s.arg, reply, GH_REDIS_OK);
    freeReplyObject(reply);
    if (readonly) {
        r->hold_backoff = true;
        go_down(r, "the server answers READONLY (a replica now)");
        return GH_ERROR;
    }
    return GH_OK;
}

static void read_replies(struct gh_redis *r)
{
    char buf[READ_CHUNK];

    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = gh_sock_read(&r->sock, buf, sizeof(buf));
        void *reply;

        if (n == GH_SOCK_AGAIN) {
            if (r->sock.want == GH_WANT_WRITE) {
                r->read_wants_write = true;
                gh_sock_want_write(&r->sock, true);
            }
            return;
        }
        if (n == GH_SOCK_EOF) {
            go_down(r, "connection closed by the server");
            return;
        }
        if (n < 0) {
            go_down(r, "read: %s", r->sock.err > 0 ? strerror(r->sock.err) : "TLS error");
            return;
        }
        if (redisReaderFeed(r->reader, buf, (size_t)n) != REDIS_OK) {
            go_down(r, "out of memory");
            return;
        }
        for (;;) {
            if (redisReaderGetReply(r->reader, &reply) != REDIS_OK) {
                go_down(r, "protocol error: %s", r->reader->errstr);
                return;
            }
            if (reply == NULL) break;
            if (handle_reply(r, reply) != GH_OK) return;
        }
        if (r->reader->len - r->reader->pos > GH_REDIS_IN_MAX) {
            go_down(r, "a reply larger than %u bytes", GH_REDIS_IN_MAX);
            return;
        }
        if ((size_t)n < sizeof(buf)) return; /* drained; TLS leftovers re-kick the event */
    }
}

static void sock_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gh_redis *r = arg;
    int err = 0;
    socklen_t len = sizeof(err);

    switch (r->state) {
    case ST_CONNECTING:
        if (getsockopt(r->sock.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        if (err != 0) {
            go_down(r, "connect: %s", strerror(err));
            return;
        }
        if (!r->tls) {
            connected(r);
            return;
        }
        r->state = ST_HANDSHAKE;
        do_handshake(r);
        return;
    case ST_HANDSHAKE: do_handshake(r); return;
    case ST_HELLO:
    case ST_UP:
        if ((what & EV_WRITE) || ((what & EV_READ) && r->write_wants_read)) {
            if (flush_out(r) != GH_OK) return;
        }
        if ((what & EV_READ) || ((what & EV_WRITE) && r->read_wants_write)) {
            if (r->read_wants_write) {
                r->read_wants_write = false;
                if (r->out_off == r->out_len) gh_sock_want_write(&r->sock, false);
            }
            read_replies(r);
        }
        return;
    case ST_DOWN:
    case ST_RESOLVING: return;
    }
}

/* ---- the host name ---- */

/* Names are looked up on every attempt, not once: a name that did not
 * resolve at start, or that moved (a failover that repoints a DNS name, as
 * managed Redis services do), is followed at the next reconnect. evdns runs
 * on the worker's loop, so a slow resolver never blocks the worker. One
 * resolver per client, made at its first lookup (/etc/resolv.conf and
 * /etc/hosts read then, or only redis.resolver), so that it learns which
 * nameservers answer; a try waits 0.5 s, not evdns's 5 s, and 3 tries fit
 * in the lookup's deadline. */
#define RESOLVE_TIMEOUT_MIN_MS 2000

static uint32_t resolve_timeout_ms(const struct gh_redis *r)
{
    return r->connect_timeout_ms > RESOLVE_TIMEOUT_MIN_MS ? r->connect_timeout_ms
                                                          : RESOLVE_TIMEOUT_MIN_MS;
}

/* One lookup, from evdns_getaddrinfo until its callback, which always comes
 * (a cancelled one is called back later, with EVUTIL_EAI_CANCEL) and frees
 * it. A client freed before that hands it the resolver to free: evdns still
 * uses the resolver to call back. */
struct lookup {
    struct gh_redis *r; /* NULL once the client is freed */
    int family;         /* AF_INET, then AF_INET6 when the name has no IPv4 address */
    struct evdns_getaddrinfo_request *req;
    struct evdns_base *dns; /* set when the client is freed: freed after the callback */
    struct event_base *base;
    bool cancelled; /* the answer is not wanted any more */
};

static void free_resolver_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evdns_base_free(arg, 0);
}

/* Copies the first IPv4 address of <res> (else its first) into r->addr, as
 * the config's own resolution does (config_values.c). */
static bool take_address(struct gh_redis *r, const struct evutil_addrinfo *res)
{
    const struct evutil_addrinfo *pick = res;

    for (const struct evutil_addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    if (pick == NULL || pick->ai_addrlen > sizeof(r->addr)) return false;
    memcpy(&r->addr, pick->ai_addr, pick->ai_addrlen);
    r->addrlen = (socklen_t)pick->ai_addrlen;
    return true;
}

static void lookup_family(struct gh_redis *r, int family);

static void lookup_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    struct lookup *lk = arg;
    struct gh_redis *r = lk->r;
    bool wanted = r != NULL && !lk->cancelled && result != EVUTIL_EAI_CANCEL, ok;
    bool try_v6 = wanted && lk->family == AF_INET &&
                  (result == EVUTIL_EAI_NONAME || result == EVUTIL_EAI_NODATA ||
                   (result == 0 && res == NULL));

    if (r != NULL && r->lk == lk) r->lk = NULL;
    /* After this callback returns, evdns is done with the resolver: free it
     * 10 ms later, from the loop (a worker that stops before leaves it to
     * the process's exit). */
    if (lk->dns != NULL) {
        struct timeval later = {0, 10000};
        if (event_base_once(lk->base, -1, EV_TIMEOUT, free_resolver_cb, lk->dns, &later) != 0)
            gh_log_debug("redis: a resolver left unfreed");
    }
    ok = wanted && result == 0 && res != NULL && take_address(r, res);
    if (res) evutil_freeaddrinfo(res);
    free(lk);
    if (!wanted) return;
    if (try_v6) {
        lookup_family(r, AF_INET6);
        return;
    }
    if (!ok) {
        go_down(r, "cannot resolve %s: %s", r->host,
                result ? evutil_gai_strerror(result) : "no usable address");
        return;
    }
    start_connect(r);
}

static struct evdns_base *new_resolver(struct gh_redis *r)
{
    struct evdns_base *dns =
        evdns_base_new(r->base, (r->resolver ? 0 : EVDNS_BASE_INITIALIZE_NAMESERVERS) |
                                    EVDNS_BASE_DISABLE_WHEN_INACTIVE);

    if (dns == NULL) return NULL;
    if ((r->resolver != NULL && evdns_base_nameserver_ip_add(dns, r->resolver) != 0) ||
        evdns_base_set_option(dns, "timeout:", "0.5") != 0 ||
        evdns_base_set_option(dns, "attempts:", "3") != 0) {
        evdns_base_free(dns, 0);
        return NULL;
    }
    return dns;
}

static void start_lookup(struct gh_redis *r)
{
    r->state = ST_RESOLVING;
    r->connect_deadline_ns = gh_now_ns() + (uint64_t)resolve_timeout_ms(r) * 1000000ull;
    timer_stop(r);
    timer_want(r, r->connect_deadline_ns);
    if (r->dns == NULL && (r->dns = new_resolver(r)) == NULL) {
        go_down(r, "cannot set up a resolver (%s)", r->resolver ? r->resolver : "/etc/resolv.conf");
        return;
    }
    lookup_family(r, AF_INET);
}

/* One question at a time (A, then AAAA when the name has no IPv4 address):
 * evdns's A + AAAA pair would wait for its second half, then cancel it on
 * its own, a callback this client cannot see coming. */
static void lookup_family(struct gh_redis *r, int family)
{
    struct evutil_addrinfo hints;
    struct evdns_getaddrinfo_request *req;
    struct lookup *lk;
    char port[8];

    if ((lk = calloc(1, sizeof(*lk))) == NULL) {
        go_down(r, "out of memory");
        return;
    }
    lk->r = r;
    lk->family = family;
    lk->base = r->base;
    r->lk = lk;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", (unsigned)r->port);
    req = evdns_getaddrinfo(r->dns, r->host, port, &hints, lookup_cb, lk);
    /* A hosts-file answer (or an error) is called back before the call
     * returns, and <lk> is gone then. */
    if (r->lk == lk) lk->req = req;
}

/* The answer of the lookup in flight is not wanted (the client went down):
 * its callback, which comes later, only frees it. */
static void cancel_lookup(struct gh_redis *r)
{
    struct lookup *lk = r->lk;

    if (lk == NULL || lk->cancelled) return;
    lk->cancelled = true;
    if (lk->req != NULL) evdns_getaddrinfo_cancel(lk->req);
    lk->req = NULL;
}

/* One connect attempt: the hello first, so that it goes out ahead of the
 * commands queued meanwhile, then a name is looked up. */
static void start_attempt(struct gh_redis *r)
{
    queue_hello(r);
    if (r->numeric)
        start_connect(r);
    else
        start_lookup(r);
}

/* ---- deadlines ---- */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gh_redis *r = arg;
    uint64_t now = gh_now_ns(), next = 0;

    r->timer_on = false;
    if (r->state == ST_DOWN) {
        r->st.reconnects++;
        start_attempt(r);
        return;
    }
    if (r->state != ST_UP && now >= r->connect_deadline_ns) {
        if (r->state == ST_RESOLVING)
            go_down(r, "no answer for %s from the resolver within %u ms", r->host,
                    resolve_timeout_ms(r));
        else if (r->state == ST_CONNECTING)
            go_down(r, "connect timed out after %u ms", r->connect_timeout_ms);
        else if (r->state == ST_HANDSHAKE)
            go_down(r, "TLS handshake timed out after %u ms", r->connect_timeout_ms);
        else
            go_down(r, "no answer to AUTH/SELECT/PING within %u ms", r->connect_timeout_ms);
        return;
    }
    /* Deadlines grow along the FIFO (issue time + one timeout), so expiry
     * stops at the first one still in the future. */
    if (r->tmo_next < r->head) r->tmo_next = r->head;
    while (r->tmo_next < r->tail) {
        struct slot *s = slot_at(r, r->tmo_next);
        gh_redis_cb cb;

        if (s->deadline_ns == 0) {
            r->tmo_next++;
            continue;
        }
        if (s->deadline_ns > now) {
            next = s->deadline_ns;
            break;
        }
        r->tmo_next++;
        s->expired = true;
        r->consec_timeouts++;
        r->st.timeouts++;
        cb = s->cb;
        s->cb = NULL;
        if (cb) cb(s->arg, NULL, GH_REDIS_TIMEOUT);
    }
    if (r->consec_timeouts >= TIMEOUTS_FOR_DOWN) {
        go_down(r, "%u commands in a row timed out (%u ms each)", r->consec_timeouts,
                r->timeout_ms);
        return;
    }
    if (r->state != ST_UP && (next == 0 || r->connect_deadline_ns < next))
        next = r->connect_deadline_ns;
    if (next) timer_want(r, next);
}

/* ---- public ---- */

static char *dup_opt(const char *s, bool *fail)
{
    char *d;
    if (s == NULL) return NULL;
    d = strdup(s);
    if (d == NULL) *fail = true;
    return d;
}

/* A numeric host's address, once (AI_NUMERICHOST: no lookup, no blocking);
 * r->numeric stays false for a name, which each attempt looks up. */
static void numeric_address(struct gh_redis *r)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[8];

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)r->port);
    if (getaddrinfo(r->host, portstr, &hints, &res) != 0 || res == NULL) return;
    if (res->ai_addrlen <= sizeof(r->addr)) {
        memcpy(&r->addr, res->ai_addr, res->ai_addrlen);
        r->addrlen = (socklen_t)res->ai_addrlen;
        r->numeric = true;
    }
    freeaddrinfo(res);
}

struct gh_redis *gh_redis_new(struct event_base *base, const struct gh_redis_opts *o)
{
    struct gh_redis *r;
    bool fail = false;

    if (o->host == NULL || o->host[0] == '\0' || (o->tls && o->tls_ctx == NULL)) return NULL;
    r = calloc(1, sizeof(*r));
    if (r == NULL) return NULL;
    r->base = base;
    r->sock.fd = -1;
    event_assign(&r->ev_timer, base, -1, 0, timer_cb, r);
    event_assign(&r->ev_flush, base, -1, 0, flush_cb, r);
    r->port = o->port;
    r->host = dup_opt(o->host, &fail);
    r->sni = dup_opt(o->sni, &fail);
    r->resolver = dup_opt(o->resolver, &fail);
    r->username = dup_opt(o->username, &fail);
    r->password = dup_opt(o->password, &fail);
    r->name = dup_opt(o->log_name ? o->log_name : o->host, &fail);
    r->tls = o->tls;
    r->tls_ctx = o->tls_ctx;
    r->db = o->db;
    r->timeout_ms = o->timeout_ms ? o->timeout_ms : 5;
    r->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 200;
    r->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 50;
    r->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 2000;
    if (r->backoff_max_ms < r->backoff_min_ms) r->backoff_max_ms = r->backoff_min_ms;
    r->backoff_ms = r->backoff_min_ms;
    r->rng = (gh_now_ns() ^ (uint64_t)(uintptr_t)r) | 1;
    r->next_handle = 1;
    r->ring = calloc(RING_CAP, sizeof(*r->ring));
    r->out = malloc(OUT_INITIAL);
    r->out_cap = OUT_INITIAL;
    r->reader = redisReaderCreate();
    if (fail || r->ring == NULL || r->out == NULL || r->reader == NULL) goto fail;
    numeric_address(r);
    start_attempt(r);
    return r;
fail:
    gh_redis_free(r);
    return NULL;
}

void gh_redis_free(struct gh_redis *r)
{
    if (r == NULL) return;
    timer_stop(r);
    event_del(&r->ev_flush);
    cancel_lookup(r);
    if (r->lk != NULL) {
        /* Its callback is still to come, and needs the resolver. */
        r->lk->r = NULL;
        r->lk->dns = r->dns;
    } else if (r->dns != NULL) {
        evdns_base_free(r->dns, 0);
    }
    r->dns = NULL;
    gh_sock_close(&r->sock);
    /* Callers' callbacks are dropped silently; wrappers still hear about
     * it, to release what they hold. */
    while (r->head < r->tail) {
        struct slot s = *slot_at(r, r->head++);
        if (s.cb && (s.flags & GH_REDIS_F_OWNED)) s.cb(s.arg, NULL, GH_REDIS_CANCELLED);
    }
    if (r->reader) redisReaderFree(r->reader);
    free(r->out);
    free(r->ring);
    free(r->host);
    free(r->sni);
    free(r->resolver);
    free(r->username);
    if (r->password) OPENSSL_cleanse(r->password, strlen(r->password));
    free(r->password);
    free(r->name);
    free(r);
}

int gh_redis_command_ex(struct gh_redis *r, int argc, const char **argv, const size_t *argvlen,
                        gh_redis_cb cb, void *arg, unsigned flags, uint32_t *handle)
{
    uint64_t deadline;
    uint32_t h = 0;

    if (argc < 1 || r->down || r->tail - r->head >= GH_REDIS_MAX_PENDING ||
        encode(r, argc, argv, argvlen) != GH_OK) {
        r->st.errors++;
        return GH_ERROR;
    }
    if ((flags & GH_REDIS_F_REUSE_HANDLE) && handle) {
        h = *handle;
    } else {
        h = r->next_handle++;
        if (r->next_handle == 0) r->next_handle = 1;
    }
    deadline = gh_now_ns() + (uint64_t)r->timeout_ms * 1000000ull;
    push_slot(r, cb, arg, deadline, h, K_USER, flags);
    r->st.commands++;
    timer_want(r, deadline);
    /* Not written now: everything queued until the loop runs the flush
     * event goes out in one write. */
    if (!r->flush_queued && (r->state == ST_HELLO || r->state == ST_UP)) {
        r->flush_queued = true;
        event_active(&r->ev_flush, EV_TIMEOUT, 0);
    }
    if (handle) *handle = h;
    return GH_OK;
}

int gh_redis_command(struct gh_redis *r, int argc, const char **argv, const size_t *argvlen,
                     gh_redis_cb cb, void *arg, uint32_t *handle)
{
    return gh_redis_command_ex(r, argc, argv, argvlen, cb, arg, 0, handle);
}

void gh_redis_cancel(struct gh_redis *r, uint32_t handle)
{
    if (handle == 0) return;
    /* Newest first: a request usually goes away soon after asking. */
    for (uint64_t pos = r->tail; pos > r->head; pos--) {
        struct slot *s = slot_at(r, pos - 1);
        gh_redis_cb cb = s->cb;

        if (s->handle != handle || cb == NULL) continue;
        s->cb = NULL;
        if (s->flags & GH_REDIS_F_OWNED) cb(s->arg, NULL, GH_REDIS_CANCELLED);
        return;
    }
}

bool gh_redis_is_up(const struct gh_redis *r)
{
    return r->state == ST_UP;
}

void gh_redis_stats(const struct gh_redis *r, struct gh_redis_stats *out)
{
    *out = r->st;
    out->pending = (uint32_t)(r->tail - r->head);
    out->up = r->state == ST_UP;
}
