/* Redis-backed rate-limit decisions per second for one node (issue 4 (b)).
 *
 * One libevent loop, the gateway's own Redis client (src/limits/redis.h) and
 * EVALSHA wrapper (src/limits/redis_script.h), and the same GCRA Lua script
 * the gateway runs: that is one worker's Redis path without the HTTP around
 * it. N decisions are kept in flight (like N concurrent requests on one
 * worker, all sharing the worker's one Redis connection); each is for one of
 * K keys shaped like the gateway's ("rl:" + 32 hex digits of SHA-256), with
 * ARGV emission and tau in microseconds as src/limits/limits.c sends them.
 *
 * Unless -p PORT names a running server, it starts its own redis-server on a
 * free loopback port in a temp dir (no persistence) and stops it by PID at
 * the end. Layout as in the shared bench notes (bench/README.md): this process (the worker
 * side) is pinned to core 0, redis-server to core 1 (-c/-C to change, -1: no
 * pinning).
 *
 *   make bench-redis     (or build/redis_decisions_bench [options])
 *
 *   -d SECONDS   measured duration (5)        -w SECONDS  warm-up first (1)
 *   -n N[,N...]  decisions in flight (64)     -k KEYS     distinct keys (10000)
 *   -e US -T US  ARGV emission / tau (1000 / 1000000: 1000/s, burst 1000)
 *   -t MS        per-command timeout (5, the gateway's redis.timeout default)
 *   -p PORT      use a running server on -h HOST (127.0.0.1) instead
 *   -s PATH      redis-server to start (/usr/bin/redis-server)
 *   -c CORE      core for this process (0)    -C CORE     core for redis-server (1)
 *
 * Prints, per in-flight count, "redis_decisions_per_sec inflight=N keys=K
 * value=V" and "redis_decision_latency_us inflight=N p50=.. p90=.. p99=..
 * max=..", then a line with allowed/denied/timeouts/errors. The latency is
 * from gh_redis_evalsha() to the callback, as a request would wait for it. */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <fcntl.h>

#include "core/clock.h"
#include "core/err.h"
#include "limits/gcra_script.h"
#include "limits/redis.h"
#include "limits/redis_script.h"

enum { KEY_LEN = 3 + 32, HIST_US = 100000, MAX_INFLIGHT = 4096 };

struct slot {
    struct bench *b;
    uint64_t issued_ns;
    bool busy;
};

struct bench {
    struct event_base *base;
    struct gh_redis *redis;
    struct gh_redis_script script;
    char (*keys)[KEY_LEN + 1];
    uint32_t nkeys;
    char em[24], tau[24];
    size_t em_len, tau_len;
    uint64_t rng;
    struct slot *slots;
    uint32_t nslots;        /* decisions kept in flight */
    uint32_t inflight;      /* slots busy now */
    struct event *retry_ev; /* re-issues slots the client refused */
    bool stopping, measuring;
    uint64_t t_start, t_end;
    /* Counted for completions inside [t_start, t_end) only. */
    uint64_t allowed, denied, timeouts, errors, error_replies, refused;
    uint64_t *hist; /* HIST_US + 1 buckets of 1 µs; the last one: >= 100 ms */
    uint64_t max_ns;
    bool reported_error;
};

static pid_t redis_pid = -1;
static char tmp_dir[64];

static void die(const char *msg)
{
    fprintf(stderr, "redis_decisions_bench: %s\n", msg);
    exit(1);
}

static void pin(pid_t pid, int core)
{
    cpu_set_t set;

    if (core < 0) return;
    if (core >= sysconf(_SC_NPROCESSORS_ONLN)) {
        fprintf(stderr, "redis_decisions_bench: no core %d here, not pinning\n", core);
        return;
    }
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    if (sched_setaffinity(pid, sizeof(set), &set) != 0) perror("sched_setaffinity");
}

/* ---- redis-server ------------------------------------------------------- */

static uint16_t free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("cannot find a free loopback port");
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(const char *host, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok;

    if (fd < 0) return false;
    inet_pton(AF_INET, host, &a.sin_addr);
    ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void stop_redis(void)
{
    if (redis_pid > 0) {
        int st;
        kill(redis_pid, SIGTERM);
        for (int i = 0; i < 50; i++) {
            if (waitpid(redis_pid, &st, WNOHANG) == redis_pid) {
                redis_pid = -1;
                break;
            }
            usleep(100000);
        }
        if (redis_pid > 0) {
            kill(redis_pid, SIGKILL);
            waitpid(redis_pid, &st, 0);
            redis_pid = -1;
        }
    }
    if (tmp_dir[0] != '\0') {
        DIR *d = opendir(tmp_dir);
        struct dirent *e;
        char path[512];
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof(path), "%s/%s", tmp_dir, e->d_name);
            unlink(path);
        }
        if (d != NULL) closedir(d);
        rmdir(tmp_dir);
        tmp_dir[0] = '\0';
    }
}

static void on_signal(int sig)
{
    /* Async-signal-safe part only: stop the server; the temp dir may stay. */
    if (redis_pid > 0) kill(redis_pid, SIGKILL);
    _exit(128 + sig);
}

static uint16_t start_redis(const char *server, int core)
{
    uint16_t port = free_port();
    char port_s[8], log_path[128];

    const char *t = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/redis-bench.XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(tmp_dir) == NULL) die("mkdtemp failed");
    snprintf(port_s, sizeof(port_s), "%u", port);
    snprintf(log_path, sizeof(log_path), "%s/redis.log", tmp_dir);

    redis_pid = fork();
    if (redis_pid < 0) die("fork failed");
    if (redis_pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        pin(0, core);
        execl(server, server, "--port", port_s, "--bind", "127.0.0.1", "--save", "", "--appendonly",
              "no", "--dir", tmp_dir, (char *)NULL);
        _exit(127);
    }
    atexit(stop_redis);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (int i = 0; i < 500; i++) { /* 5 s */
        int st;
        if (waitpid(redis_pid, &st, WNOHANG) == redis_pid) {
            redis_pid = -1;
            fprintf(stderr, "redis_decisions_bench: %s exited at start (log: %s)\n", server,
                    log_path);
            tmp_dir[0] = '\0'; /* keep the log */
            exit(1);
        }
        if (port_open("127.0.0.1", port)) return port;
        usleep(10000);
    }
    die("redis-server did not listen within 5 s");
    return 0;
}

/* ---- Decisions ---------------------------------------------------------- */

static uint64_t next_rand(struct bench *b)
{
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return b->rng;
}

static void done(void *arg, const redisReply *reply, int status);

static bool issue(struct slot *s)
{
    struct bench *b = s->b;
    const char *key = b->keys[next_rand(b) % b->nkeys];
    const char *keys[1] = {key};
    size_t keylens[1] = {KEY_LEN};
    const char *args[2] = {b->em, b->tau};
    size_t arglens[2] = {b->em_len, b->tau_len};

    s->issued_ns = gh_now_ns();
    if (gh_redis_evalsha(b->redis, &b->script, 1, keys, keylens, 2, args, arglens, done, s, NULL) !=
        GH_OK) {
        if (b->measuring) b->refused++;
        return false;
    }
    s->busy = true;
    b->inflight++;
    return true;
}

static void arm_retry(struct bench *b)
{
    struct timeval tv = {0, 1000};
    if (!event_pending(b->retry_ev, EV_TIMEOUT, NULL)) event_add(b->retry_ev, &tv);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;

    if (b->stopping) return;
    for (uint32_t i = 0; i < b->nslots; i++)
        if (!b->slots[i].busy && !issue(&b->slots[i])) {
            arm_retry(b);
            return;
        }
}

static void done(void *arg, const redisReply *reply, int status)
{
    struct slot *s = arg;
    struct bench *b = s->b;
    uint64_t now = gh_now_ns();

    s->busy = false;
    b->inflight--;
    if (b->measuring && !b->stopping) { /* completed inside [t_start, t_end) */
        uint64_t lat = now - s->issued_ns, us = lat / 1000;
        if (status == GH_REDIS_OK && reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
            reply->elements == 5 && reply->element[0]->type == REDIS_REPLY_INTEGER) {
            if (reply->element[0]->integer == 1)
                b->allowed++;
            else
                b->denied++;
            b->hist[us < HIST_US ? us : HIST_US]++;
            if (lat > b->max_ns) b->max_ns = lat;
        } else if (status == GH_REDIS_TIMEOUT) {
            b->timeouts++;
        } else if (status == GH_REDIS_OK) {
            b->error_replies++;
        } else {
            b->errors++;
        }
    }
    if (status == GH_REDIS_OK && reply != NULL && reply->type == REDIS_REPLY_ERROR &&
        !b->reported_error) {
        fprintf(stderr, "redis_decisions_bench: Redis error reply: %.200s\n", reply->str);
        b->reported_error = true;
    }
    if (b->stopping) {
        if (b->inflight == 0) event_base_loopbreak(b->base);
        return;
    }
    if (!issue(s)) arm_retry(b);
}

static void phase_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;

    if (!b->measuring) {
        b->measuring = true;
        b->t_start = gh_now_ns();
        return;
    }
    b->t_end = gh_now_ns();
    b->stopping = true;
    if (b->inflight == 0) event_base_loopbreak(b->base);
}

static void giveup_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    fprintf(stderr, "redis_decisions_bench: %u decisions still unanswered 2 s after the end\n",
            b->inflight);
    event_base_loopbreak(b->base);
}

static uint64_t percentile_us(const struct bench *b, uint64_t total, double q)
{
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;

    if (want == 0) want = 1;
    for (uint32_t i = 0; i <= HIST_US; i++) {
        seen += b->hist[i];
        if (seen >= want) return i;
    }
    return HIST_US;
}

static void run(struct bench *b, uint32_t n, double warmup_s, double secs)
{
    struct timeval tw = {(time_t)warmup_s,
                         (suseconds_t)((warmup_s - (double)(time_t)warmup_s) * 1e6)};
    struct timeval tm = {
        (time_t)(warmup_s + secs),
        (suseconds_t)((warmup_s + secs - (double)(time_t)(warmup_s + secs)) * 1e6)};
    struct timeval tg = {(time_t)(warmup_s + secs) + 2, 0};
    struct event *p1 = evtimer_new(b->base, phase_cb, b), *p2 = evtimer_new(b->base, phase_cb, b);
    struct event *g = evtimer_new(b->base, giveup_cb, b);
    struct gh_redis_stats st0, st1;

    b->slots = calloc(n, sizeof(*b->slots));
    if (b->slots == NULL || p1 == NULL || p2 == NULL || g == NULL) die("out of memory");
    memset(b->hist, 0, (HIST_US + 1) * sizeof(*b->hist));
    b->allowed = b->denied = b->timeouts = b->errors = b->error_replies = b->refused = 0;
    b->max_ns = 0;
    b->measuring = b->stopping = false;
    b->inflight = 0;
    b->nslots = n;
    gh_redis_stats(b->redis, &st0);
    for (uint32_t i = 0; i < n; i++) {
        b->slots[i].b = b;
        if (!issue(&b->slots[i])) arm_retry(b);
    }
    evtimer_add(p1, &tw);
    evtimer_add(p2, &tm);
    evtimer_add(g, &tg);
    event_base_dispatch(b->base);
    event_del(b->retry_ev);
    gh_redis_stats(b->redis, &st1);

    double secs_run = (double)(b->t_end - b->t_start) / 1e9;
    uint64_t ok = b->allowed + b->denied;
    printf("redis_decisions_per_sec inflight=%u keys=%u value=%.0f\n", n, b->nkeys,
           (double)ok / secs_run);
    printf("redis_decision_latency_us inflight=%u p50=%llu p90=%llu p99=%llu p999=%llu max=%.0f\n",
           n, (unsigned long long)percentile_us(b, ok, 0.50),
           (unsigned long long)percentile_us(b, ok, 0.90),
           (unsigned long long)percentile_us(b, ok, 0.99),
           (unsigned long long)percentile_us(b, ok, 0.999), (double)b->max_ns / 1000.0);
    printf("redis_decisions_detail inflight=%u seconds=%.2f decisions=%llu allowed=%llu "
           "denied=%llu timeouts=%llu io_errors=%llu error_replies=%llu refused=%llu "
           "client_timeouts=%llu client_reconnects=%llu\n",
           n, secs_run, (unsigned long long)ok, (unsigned long long)b->allowed,
           (unsigned long long)b->denied, (unsigned long long)b->timeouts,
           (unsigned long long)b->errors, (unsigned long long)b->error_replies,
           (unsigned long long)b->refused, (unsigned long long)(st1.timeouts - st0.timeouts),
           (unsigned long long)(st1.reconnects - st0.reconnects));
    fflush(stdout);
    event_free(p1);
    event_free(p2);
    event_free(g);
    free(b->slots);
    b->slots = NULL;
}

int main(int argc, char **argv)
{
    double secs = 5, warmup = 1;
    const char *ns = "64", *host = "127.0.0.1", *server = "/usr/bin/redis-server";
    long port = 0, nkeys = 10000, timeout_ms = 5, my_core = 0, redis_core = 1;
    unsigned long long em = 1000, tau = 1000000;
    struct bench b = {0};
    int opt;

    while ((opt = getopt(argc, argv, "d:w:n:k:e:T:t:p:h:s:c:C:")) != -1) {
        switch (opt) {
        case 'd': secs = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'n': ns = optarg; break;
        case 'k': nkeys = strtol(optarg, NULL, 10); break;
        case 'e': em = strtoull(optarg, NULL, 10); break;
        case 'T': tau = strtoull(optarg, NULL, 10); break;
        case 't': timeout_ms = strtol(optarg, NULL, 10); break;
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 'h': host = optarg; break;
        case 's': server = optarg; break;
        case 'c': my_core = strtol(optarg, NULL, 10); break;
        case 'C': redis_core = strtol(optarg, NULL, 10); break;
        default:
            fprintf(stderr,
                    "usage: %s [-d s] [-w s] [-n N[,N..]] [-k keys] [-e us] [-T us] "
                    "[-t ms] [-p port [-h host]] [-s redis-server] [-c core] [-C core]\n",
                    argv[0]);
            return 2;
        }
    }
    if (secs <= 0 || warmup < 0 || nkeys < 1 || nkeys > 10000000 || timeout_ms < 1 || em == 0 ||
        tau == 0 || port < 0 || port > 65535)
        die("bad option value");
    signal(SIGPIPE, SIG_IGN);

    if (port == 0) {
        port = start_redis(server, (int)redis_core);
        printf("# redis-server pid %d on 127.0.0.1:%ld (core %ld), dir %s\n", (int)redis_pid, port,
               redis_core, tmp_dir);
    } else {
        printf("# using the Redis server at %s:%ld\n", host, port);
    }
    pin(0, (int)my_core);

    b.nkeys = (uint32_t)nkeys;
    b.keys = malloc((size_t)nkeys * sizeof(*b.keys));
    b.hist = malloc((HIST_US + 1) * sizeof(*b.hist));
    if (b.keys == NULL || b.hist == NULL) die("out of memory");
    /* Keys as the gateway makes them: prefix "rl:" and the first 16 bytes of
     * SHA-256 of the descriptor tuple, in hex. */
    for (long i = 0; i < nkeys; i++) {
        static const char hex[] = "0123456789abcdef";
        unsigned char md[32];
        unsigned int mdlen = 0;
        char tuple[64];
        int tl = snprintf(tuple, sizeof(tuple), "bench-rule|tenant-%ld", i);
        EVP_Digest(tuple, (size_t)tl, md, &mdlen, EVP_sha256(), NULL);
        memcpy(b.keys[i], "rl:", 3);
        for (int j = 0; j < 16; j++) {
            b.keys[i][3 + 2 * j] = hex[md[j] >> 4];
            b.keys[i][4 + 2 * j] = hex[md[j] & 15];
        }
        b.keys[i][KEY_LEN] = '\0';
    }
    b.em_len = (size_t)snprintf(b.em, sizeof(b.em), "%llu", em);
    b.tau_len = (size_t)snprintf(b.tau, sizeof(b.tau), "%llu", tau);
    b.rng = 0x2545f4914f6cdd1dull;
    gh_redis_script_init(&b.script, gh_gcra_script);

    b.base = event_base_new();
    if (b.base == NULL) die("event_base_new failed");
    b.retry_ev = evtimer_new(b.base, retry_cb, &b);
    struct gh_redis_opts o = {.host = host,
                              .port = (uint16_t)port,
                              .timeout_ms = (uint32_t)timeout_ms,
                              .connect_timeout_ms = 1000,
                              .log_name = "bench"};
    b.redis = gh_redis_new(b.base, &o);
    if (b.redis == NULL || b.retry_ev == NULL) die("gh_redis_new failed");

    printf("# script sha1 %s; key example %s; ARGV %s %s (us); timeout %ld ms; this process on "
           "core %ld\n",
           b.script.sha1_hex, b.keys[0], b.em, b.tau, timeout_ms, my_core);
    fflush(stdout);

    for (const char *p = ns; *p != '\0';) {
        char *end;
        long n = strtol(p, &end, 10);
        if (end == p || n < 1 || n > MAX_INFLIGHT) die("-n: in-flight counts from 1 to 4096");
        run(&b, (uint32_t)n, warmup, secs);
        p = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0') die("-n: a comma-separated list of counts");
    }

    gh_redis_free(b.redis);
    event_free(b.retry_ev);
    event_base_free(b.base);
    free(b.keys);
    free(b.hist);
    return 0;
}
