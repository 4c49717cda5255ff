/* Micro-benchmark of the rate-limit table (src/limits): decisions per second
 * with one and two threads, on one hot key and on 100,000 random keys, each
 * decision reading gh_now_ns() as the request path does. Also the keyed hash
 * of a typical descriptor, and an in-flight acquire/release pair.
 *
 *   make bench-limits            (or build/limits_bench [seconds])
 *
 * Prints one "name threads=N keys=K value=V" line per measurement. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "limits/inflight.h"
#include "limits/ltable.h"

enum { MANY_KEYS = 100000, MAX_THREADS = 2 };

enum mode { DECIDE, HASH_DECIDE, INFLIGHT };

struct run {
    struct gh_ltable *t;
    struct gh_inflight *inf;
    const struct gh_gcra_params *p;
    bool many; /* MANY_KEYS random keys; else one hot key */
    enum mode mode;
    uint64_t seed;
    uint64_t duration_ns;
    atomic_bool *go;
    uint64_t ops;
    uint64_t allowed;
};

/* A descriptor like the request path hashes: rule id and client address. */
struct descriptor {
    uint32_t rule;
    char addr[20];
};

static void *worker(void *arg)
{
    struct run *r = arg;
    struct gh_gcra_result res;
    uint64_t x = r->seed | 1, ops = 0, allowed = 0;
    struct descriptor d = {.rule = 7, .addr = "203.0.113.77"};

    while (!atomic_load_explicit(r->go, memory_order_acquire)) {
    }
    uint64_t start = gh_now_ns(), deadline = start + r->duration_ns;
    for (;;) {
        /* Check the clock for the deadline every 1024 operations only; the
         * per-decision clock read is part of what is measured. */
        for (int i = 0; i < 1024; i++) {
            uint64_t key;
            x ^= x << 13; /* xorshift64: a random key index, ~1 ns */
            x ^= x >> 7;
            x ^= x << 17;
            /* Random keys come from their index, not from an array: a
             * lookup in a 100k-entry array would add a cache miss the
             * request path (which hashes bytes it already holds) does not
             * have. */
            key = r->many ? (x % MANY_KEYS + 1) * 0x9e3779b97f4a7c15 : 0x9e3779b97f4a7c15;
            switch (r->mode) {
            case DECIDE:
                gh_ltable_decide(r->t, key, gh_now_ns(), r->p, &res);
                allowed += res.allowed;
                break;
            case HASH_DECIDE:
                memcpy(d.addr + 12, &key, 8);
                key = gh_ltable_hash(r->t, &d, sizeof(d));
                gh_ltable_decide(r->t, key, gh_now_ns(), r->p, &res);
                allowed += res.allowed;
                break;
            case INFLIGHT:
                if (gh_inflight_acquire(r->inf, key, 1000000)) {
                    allowed++;
                    gh_inflight_release(r->inf, key);
                }
                break;
            }
        }
        ops += 1024;
        if (gh_now_ns() >= deadline) break;
    }
    r->ops = ops;
    r->allowed = allowed;
    return NULL;
}

static void measure(const char *name, enum mode mode, int threads, bool many, uint64_t duration_ns)
{
    /* 2^18 slots for 100k keys: a load of 0.38, where a window never fills. */
    struct gh_ltable *t = gh_ltable_new(1u << 18);
    struct gh_inflight *inf = gh_inflight_new(1u << 18);
    struct gh_gcra_params p;
    pthread_t th[MAX_THREADS];
    struct run runs[MAX_THREADS];
    atomic_bool go = false;
    uint64_t ops = 0;

    if (t == NULL || inf == NULL) {
        fprintf(stderr, "limits_bench: out of memory\n");
        exit(1);
    }
    /* 1000 per second, burst 100: hot keys are mostly denied, cold ones
     * allowed; both paths cost the same. */
    gh_gcra_params_init(&p, 1000, 1000000000ull, 100);
    for (int i = 0; i < threads; i++) {
        runs[i] = (struct run){.t = t,
                               .inf = inf,
                               .p = &p,
                               .many = many,
                               .mode = mode,
                               .seed = 0x2545f4914f6cdd1dull * (uint64_t)(i + 1),
                               .duration_ns = duration_ns,
                               .go = &go};
        if (pthread_create(&th[i], NULL, worker, &runs[i]) != 0) {
            fprintf(stderr, "limits_bench: pthread_create failed\n");
            exit(1);
        }
    }
    uint64_t start = gh_now_ns();
    atomic_store_explicit(&go, true, memory_order_release);
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        ops += runs[i].ops;
    }
    double secs = (double)(gh_now_ns() - start) / 1e9;
    double rate = (double)ops / secs;
    int nkeys = many ? MANY_KEYS : 1;

    printf("%s_per_sec threads=%d keys=%d value=%.0f\n", name, threads, nkeys, rate);
    /* Per thread: the latency one worker sees per decision. */
    printf("%s_ns threads=%d keys=%d value=%.1f\n", name, threads, nkeys, 1e9 * threads / rate);
    if (mode != INFLIGHT)
        printf("evictions threads=%d keys=%d value=%llu\n", threads, nkeys,
               (unsigned long long)gh_ltable_evictions(t));
    gh_ltable_free(t);
    gh_inflight_free(inf);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    uint64_t duration = (uint64_t)(secs * 1e9);
    volatile uint64_t sink = 0;

    if (duration == 0) return 1;
    uint64_t t0 = gh_now_ns(), n = 0;
    for (; n < 10000000; n++)
        sink += gh_now_ns();
    printf("clock_ns value=%.1f\n", (double)(gh_now_ns() - t0) / (double)n);

    for (int threads = 1; threads <= MAX_THREADS; threads++) {
        measure("local_decisions", DECIDE, threads, false, duration);
        measure("local_decisions", DECIDE, threads, true, duration);
    }
    for (int threads = 1; threads <= MAX_THREADS; threads++)
        measure("hash_and_decide", HASH_DECIDE, threads, true, duration);
    for (int threads = 1; threads <= MAX_THREADS; threads++) {
        measure("inflight_pairs", INFLIGHT, threads, false, duration);
        measure("inflight_pairs", INFLIGHT, threads, true, duration);
    }
    return 0;
}
