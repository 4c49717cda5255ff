/*
 * A constant-rate HTTP/1.1 load generator for latency at a fixed request
 * rate (bench/audit_strict.sh). wrk sends as fast as it can and has no rate
 * option, so it cannot say what a request costs at 2,000 requests/s.
 *
 * Request i is due at t0 + i / rate, whatever happened to the others. It goes
 * out on an idle keep-alive connection as soon as it is due; when none is
 * idle it waits in the backlog. Its latency runs from the time it was due to
 * the end of its response, so a stall counts against every request it
 * delayed (no coordinated omission). One thread, epoll, a timerfd armed at the
 * next due time; no pipelining (one request in flight per connection).
 *
 *   rate_load -p PORT [-h 127.0.0.1] [-u /path] [-r 2000] [-d 20] [-w 2] [-c 64]
 *
 * Prints one line of key=value: the rate asked for and the rate achieved in
 * the measured window (requests due after the warm-up of -w seconds), how
 * late sends were (the generator's own lag), the largest backlog, errors, and
 * p50/p90/p99/p99.9/max latency in ms. Exits 1 on bad usage or when it cannot
 * connect; errors during the run are reported, not fatal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define RBUF      8192

struct conn {
    int fd;
    int busy;        /* a request is in flight */
    uint64_t due_ns; /* when the in-flight request was due */
    uint64_t seq;    /* its index in the schedule */
    size_t rlen;
    char rbuf[RBUF];
};

static struct conn conns[MAX_CONNS];
static int nconns = 64;
static struct sockaddr_in addr;
static char req[1024];
static size_t req_len;
static int epfd;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Opens <c>'s connection (blocking connect on loopback, then non-blocking)
 * and registers it with epoll; returns 0 or -1. */
static int conn_open(struct conn *c)
{
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct epoll_event ev = {.events = EPOLLIN};

    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ev.data.ptr = c;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->busy = 0;
    c->rlen = 0;
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->busy = 0;
    c->rlen = 0;
}

/* Whether <c>'s buffer holds one whole response: 1 (status in *<status>),
 * 0 (not yet), -1 (malformed or not a Content-Length response). */
static int response_complete(struct conn *c, int *status, size_t *total)
{
    char *end, *p;
    size_t head, clen = 0;
    int have_len = 0;

    c->rbuf[c->rlen] = '\0';
    end = strstr(c->rbuf, "\r\n\r\n");
    if (end == NULL) return c->rlen >= RBUF - 1 ? -1 : 0;
    head = (size_t)(end - c->rbuf) + 4;
    if (strncmp(c->rbuf, "HTTP/1.", 7) != 0 || c->rlen < 12) return -1;
    *status = atoi(c->rbuf + 9);
    for (p = strstr(c->rbuf, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, "content-length:", 15) == 0) {
            clen = strtoul(p + 17, NULL, 10);
            have_len = 1;
        } else if (strncasecmp(p + 2, "transfer-encoding:", 18) == 0) {
            return -1;
        }
    }
    if (!have_len) return -1;
    if (c->rlen < head + clen) return head + clen >= RBUF ? -1 : 0;
    *total = head + clen;
    return 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: rate_load -p PORT [-h HOST] [-u PATH] [-r RATE] [-d SECONDS] "
                    "[-w WARMUP_SECONDS] [-c CONNS]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *path = "/";
    double rate = 2000, dur = 20, warm = 2;
    int port = 0, opt, tfd, i;

    while ((opt = getopt(argc, argv, "h:p:u:r:d:w:c:")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'u': path = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 'd': dur = atof(optarg); break;
        case 'w': warm = atof(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        default: usage();
        }
    }
    if (port <= 0 || port > 65535 || rate <= 0 || dur <= 0 || warm < 0 || nconns < 1 ||
        nconns > MAX_CONNS)
        usage();
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) usage();
    req_len = (size_t)snprintf(req, sizeof(req),
                               "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: rate_load\r\n\r\n",
                               path, host, port);
    if (req_len >= sizeof(req)) usage();

    epfd = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (epfd < 0 || tfd < 0) {
        perror("rate_load: epoll/timerfd");
        return 1;
    }
    {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);
    }
    for (i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        if (conn_open(&conns[i]) < 0) {
            perror("rate_load: connect");
            return 1;
        }
    }

    uint64_t interval = (uint64_t)(1e9 / rate);
    uint64_t total_reqs = (uint64_t)((warm + dur) * rate);
    uint64_t first_measured = (uint64_t)(warm * rate);
    uint64_t measured = total_reqs - first_measured;
    uint64_t *lat = calloc(measured ? measured : 1, sizeof(*lat));
    uint64_t nlat = 0, next = 0, max_backlog = 0, late_1ms = 0, max_late = 0;
    uint64_t errors = 0, non200 = 0, reconnects = 0, sent_measured = 0;
    uint64_t last_done_ns = 0;
    uint64_t t0 = now_ns() + 10000000ull; /* start 10 ms from now */
    uint64_t t_end_sched = t0 + total_reqs * interval;
    uint64_t deadline = t_end_sched + 5000000000ull; /* 5 s for the last answers */
    int inflight = 0;

    if (lat == NULL) return 1;
    for (;;) {
        uint64_t now = now_ns();
        struct epoll_event evs[64];
        int n;

        /* Send every due request that has an idle connection. */
        for (i = 0; i < nconns && next < total_reqs; i++) {
            struct conn *c = &conns[i];
            uint64_t due = t0 + next * interval;
            ssize_t w;

            if (due > now) break;
            if (c->fd < 0) {
                if (conn_open(c) < 0) continue;
                reconnects++;
            }
            if (c->busy) continue;
            w = send(c->fd, req, req_len, MSG_NOSIGNAL);
            if (w != (ssize_t)req_len) { /* a whole small request fits an empty socket */
                errors++;
                conn_close(c);
                continue;
            }
            c->busy = 1;
            c->due_ns = due;
            c->seq = next;
            if (next >= first_measured) {
                uint64_t late = now - due;
                sent_measured++;
                if (late > 1000000ull) late_1ms++;
                if (late > max_late) max_late = late;
            }
            next++;
            inflight++;
            i = -1; /* rescan from the first connection for the next due request */
        }
        if (next < total_reqs) {
            uint64_t due = t0 + next * interval;
            uint64_t backlog = due <= now ? (now - due) / interval + 1 : 0;
            if (backlog > max_backlog) max_backlog = backlog;
        }
        if (next >= total_reqs && inflight == 0) break;
        if (now > deadline) break;

        /* Wake at the next due time (if a connection is free for it) or on I/O. */
        {
            struct itimerspec its = {0};
            uint64_t due = next < total_reqs ? t0 + next * interval : deadline;
            /* Already due means every connection is busy: an answer wakes us
             * (the timer stays disarmed, all zero). */
            if (due > now) {
                its.it_value.tv_sec = (time_t)(due / 1000000000ull);
                its.it_value.tv_nsec = (long)(due % 1000000000ull);
            }
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        n = epoll_wait(epfd, evs, 64, 1000);
        if (n < 0 && errno != EINTR) {
            perror("rate_load: epoll_wait");
            return 1;
        }
        for (i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            ssize_t r;
            int status = 0, rc;
            size_t total = 0;

            if (c == NULL) {
                uint64_t exp;
                ssize_t ignored = read(tfd, &exp, sizeof(exp));
                (void)ignored;
                continue;
            }
            r = recv(c->fd, c->rbuf + c->rlen, RBUF - 1 - c->rlen, 0);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                if (c->busy) {
                    errors++;
                    inflight--;
                }
                conn_close(c);
                continue;
            }
            c->rlen += (size_t)r;
            if (!c->busy) continue; /* unasked bytes: ignore */
            rc = response_complete(c, &status, &total);
            if (rc == 0) continue;
            inflight--;
            if (rc < 0) {
                errors++;
                conn_close(c);
                continue;
            }
            uint64_t done = now_ns();
            if (c->seq >= first_measured) {
                if (status != 200)
                    non200++;
                else
                    lat[nlat++] = done - c->due_ns;
                last_done_ns = done;
            }
            memmove(c->rbuf, c->rbuf + total, c->rlen - total);
            c->rlen -= total;
            c->busy = 0;
        }
    }

    uint64_t window_start = t0 + first_measured * interval;
    double window_s = (double)(t_end_sched - window_start) / 1e9;
    double span_s =
        last_done_ns > window_start ? (double)(last_done_ns - window_start) / 1e9 : window_s;
    qsort(lat, nlat, sizeof(*lat), cmp_u64);
#define PCT(q) (nlat ? (double)lat[(size_t)((double)(nlat - 1) * (q))] / 1e6 : -1.0)
    printf("rate_load path=%s rate=%.0f seconds=%.1f conns=%d due=%llu sent=%llu ok=%llu "
           "achieved_rps=%.1f send_rps=%.1f late_over_1ms=%llu max_late_ms=%.3f max_backlog=%llu "
           "errors=%llu non200=%llu reconnects=%llu unanswered=%d "
           "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n",
           path, rate, window_s, nconns, (unsigned long long)measured,
           (unsigned long long)sent_measured, (unsigned long long)nlat, (double)nlat / span_s,
           (double)sent_measured / window_s, (unsigned long long)late_1ms, (double)max_late / 1e6,
           (unsigned long long)max_backlog, (unsigned long long)errors, (unsigned long long)non200,
           (unsigned long long)reconnects, inflight, PCT(0.50), PCT(0.90), PCT(0.99), PCT(0.999),
           nlat ? (double)lat[nlat - 1] / 1e6 : -1.0);
    free(lat);
    return 0;
}
