/* Tests of src/limits/ltable.c and src/limits/inflight.c: SipHash-2-4
 * against the reference vectors, decisions over many keys, eviction when the
 * table is too small, reuse of expired slots, exact budgets under several
 * threads, and in-flight counters that never pass their maximum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "limits/inflight.h"
#include "limits/ltable.h"

#define SEC  UINT64_C(1000000000)
#define HOUR (3600 * SEC)
#define T0   (1000 * SEC)

static struct gh_gcra_params params(uint64_t count, uint64_t period, uint32_t burst)
{
    struct gh_gcra_params p;
    assert_int_equal(gh_gcra_params_init(&p, count, period, burst), GH_OK);
    return p;
}

static uint64_t key_of(const struct gh_ltable *t, const char *prefix, int i)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%s-%d", prefix, i);
    return gh_ltable_hash(t, buf, (size_t)n);
}

/* ---- SipHash ---------------------------------------------------------------- */

/* SipHash-2-4 with key 00 01 .. 0f of the messages 00 01 .. (n-1), n = 0..63:
 * the vectors of the SipHash paper (Appendix A gives n = 15) and of the
 * reference implementation's vectors.h. */
static const uint64_t siphash_vectors[64] = {
    0x726fdb47dd0e0e31, 0x74f839c593dc67fd, 0x0d6c8009d9a94f5a, 0x85676696d7fb7e2d,
    0xcf2794e0277187b7, 0x18765564cd99a68d, 0xcbc9466e58fee3ce, 0xab0200f58b01d137,
    0x93f5f5799a932462, 0x9e0082df0ba9e4b0, 0x7a5dbbc594ddb9f3, 0xf4b32f46226bada7,
    0x751e8fbc860ee5fb, 0x14ea5627c0843d90, 0xf723ca908e7af2ee, 0xa129ca6149be45e5,
    0x3f2acc7f57c29bdb, 0x699ae9f52cbe4794, 0x4bc1b3f0968dd39c, 0xbb6dc91da77961bd,
    0xbed65cf21aa2ee98, 0xd0f2cbb02e3b67c7, 0x93536795e3a33e88, 0xa80c038ccd5ccec8,
    0xb8ad50c6f649af94, 0xbce192de8a85b8ea, 0x17d835b85bbb15f3, 0x2f2e6163076bcfad,
    0xde4daaaca71dc9a5, 0xa6a2506687956571, 0xad87a3535c49ef28, 0x32d892fad841c342,
    0x7127512f72f27cce, 0xa7f32346f95978e3, 0x12e0b01abb051238, 0x15e034d40fa197ae,
    0x314dffbe0815a3b4, 0x027990f029623981, 0xcadcd4e59ef40c4d, 0x9abfd8766a33735c,
    0x0e3ea96b5304a7d0, 0xad0c42d6fc585992, 0x187306c89bc215a9, 0xd4a60abcf3792b95,
    0xf935451de4f21df2, 0xa9538f0419755787, 0xdb9acddff56ca510, 0xd06c98cd5c0975eb,
    0xe612a3cb9ecba951, 0xc766e62cfcadaf96, 0xee64435a9752fe72, 0xa192d576b245165a,
    0x0a8787bf8ecb74b2, 0x81b3e73d20b49b6f, 0x7fa8220ba3b2ecea, 0x245731c13ca42499,
    0xb78dbfaf3a8d83bd, 0xea1ad565322a1a0b, 0x60e61c23a3795013, 0x6606d7e446282b93,
    0x6ca4ecb15c5f91e1, 0x9f626da15c9625f3, 0xe51b38608ef25f57, 0x958a324ceb064572,
};

static void test_siphash_vectors(void **state)
{
    uint8_t key[16], msg[64];

    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    for (size_t n = 0; n < 64; n++)
        assert_int_equal(gh_siphash(key, msg, n), siphash_vectors[n]);
    /* Unaligned input reads the same bytes. */
    uint8_t shifted[65];
    for (int i = 0; i < 64; i++)
        shifted[i + 1] = (uint8_t)i;
    assert_int_equal(gh_siphash(key, shifted + 1, 63), siphash_vectors[63]);
}

/* Each table draws its own seed; within a table the hash is a function. */
static void test_table_hash_keyed(void **state)
{
    struct gh_ltable *a = gh_ltable_new(64), *b = gh_ltable_new(64);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(gh_ltable_hash(a, "10.0.0.1", 8), gh_ltable_hash(a, "10.0.0.1", 8));
    assert_int_not_equal(gh_ltable_hash(a, "10.0.0.1", 8), gh_ltable_hash(a, "10.0.0.2", 8));
    assert_int_not_equal(gh_ltable_hash(a, "10.0.0.1", 8), gh_ltable_hash(b, "10.0.0.1", 8));
    gh_ltable_free(a);
    gh_ltable_free(b);
}

static void test_new_bounds(void **state)
{
    struct gh_ltable *t;

    assert_null(gh_ltable_new(0));
    assert_null(gh_ltable_new(GH_LTABLE_MAX_CAPACITY + 1));
    assert_null(gh_inflight_new(0));
    t = gh_ltable_new(1);
    assert_non_null(t);
    assert_int_equal(gh_ltable_capacity(t), GH_LTABLE_WINDOW);
    gh_ltable_free(t);
    t = gh_ltable_new(1000);
    assert_int_equal(gh_ltable_capacity(t), 1024);
    gh_ltable_free(t);
    gh_ltable_free(NULL);
    gh_inflight_free(NULL);
}

/* ---- Decisions -------------------------------------------------------------- */

/* 6,000 keys in 65,536 slots (light load: no window fills up): every key gets
 * exactly its own burst. */
static void test_many_keys(void **state)
{
    enum { KEYS = 6000 };
    struct gh_ltable *t = gh_ltable_new(1 << 16);
    struct gh_gcra_params p = params(1, HOUR, 3);
    struct gh_gcra_result r;

    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < KEYS; i++) {
            gh_ltable_decide(t, key_of(t, "client", i), T0, &p, &r);
            assert_int_equal(r.allowed, round < 3);
            assert_int_equal(r.remaining, round < 3 ? 2 - round : 0);
        }
    }
    assert_int_equal(gh_ltable_evictions(t), 0);
    assert_int_equal(gh_ltable_live(t, T0), KEYS);
    /* An hour per request, three requests: all gone after three hours. */
    assert_int_equal(gh_ltable_live(t, T0 + 3 * HOUR - 1), KEYS);
    assert_int_equal(gh_ltable_live(t, T0 + 3 * HOUR), 0);
    gh_ltable_free(t);
}

/* Key 0 is folded into key 1. */
static void test_key_zero(void **state)
{
    struct gh_ltable *t = gh_ltable_new(64);
    struct gh_gcra_params p = params(1, HOUR, 2);
    struct gh_gcra_result r;

    gh_ltable_decide(t, 0, T0, &p, &r);
    assert_true(r.allowed);
    gh_ltable_decide(t, 1, T0, &p, &r);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 0);
    gh_ltable_decide(t, 0, T0, &p, &r);
    assert_false(r.allowed);
    gh_ltable_free(t);
}

/* One shard of 16 slots, so every key shares one window. 16 live keys fit;
 * the 17th evicts the key closest to expiry, and only that one. */
static void test_eviction(void **state)
{
    struct gh_ltable *t = gh_ltable_new(16);
    struct gh_gcra_params p = params(1, SEC, 2);
    struct gh_gcra_result r;

    /* Key i is decided at T0 + i, so its tat is T0 + i + 1 s: key 0 expires
     * first. */
    for (int i = 0; i < 16; i++) {
        gh_ltable_decide(t, key_of(t, "k", i), T0 + (uint64_t)i, &p, &r);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 1);
    }
    assert_int_equal(gh_ltable_evictions(t), 0);
    assert_int_equal(gh_ltable_live(t, T0 + 16), 16);

    gh_ltable_decide(t, key_of(t, "k", 16), T0 + 16, &p, &r);
    assert_true(r.allowed);
    assert_int_equal(gh_ltable_evictions(t), 1);
    assert_int_equal(gh_ltable_live(t, T0 + 16), 16);

    /* Keys 1..16 kept their state: one request left each, then none. */
    for (int i = 1; i <= 16; i++) {
        gh_ltable_decide(t, key_of(t, "k", i), T0 + 20, &p, &r);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 0);
        gh_ltable_decide(t, key_of(t, "k", i), T0 + 20, &p, &r);
        assert_false(r.allowed);
    }
    assert_int_equal(gh_ltable_evictions(t), 1);

    /* Key 0 was forgotten: it starts over (and evicts someone to do so). */
    gh_ltable_decide(t, key_of(t, "k", 0), T0 + 20, &p, &r);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 1);
    assert_int_equal(gh_ltable_evictions(t), 2);
    gh_ltable_free(t);
}

/* A small table flooded by one-off keys: the busy key has the largest tat in
 * its window, so it keeps its state; the table never holds more than its
 * capacity. */
static void test_flood_keeps_heavy_key(void **state)
{
    struct gh_ltable *t = gh_ltable_new(1024);
    struct gh_gcra_params p = params(1, HOUR, 1000);
    struct gh_gcra_result r;
    uint64_t heavy = key_of(t, "heavy", 0);

    for (int i = 0; i < 500; i++)
        gh_ltable_decide(t, heavy, T0, &p, &r);
    assert_int_equal(r.remaining, 500);
    for (int i = 0; i < 20000; i++) {
        gh_ltable_decide(t, key_of(t, "flood", i), T0, &p, &r);
        assert_true(r.allowed);
    }
    assert_true(gh_ltable_evictions(t) >= 20000 - 1024);
    assert_true(gh_ltable_live(t, T0) <= 1024);
    gh_ltable_decide(t, heavy, T0, &p, &r);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 499);
    gh_ltable_free(t);
}

/* Slots of expired keys are taken by new keys without evicting anyone. */
static void test_expired_slots_reused(void **state)
{
    struct gh_ltable *t = gh_ltable_new(16);
    struct gh_gcra_params p = params(1, SEC, 1);
    struct gh_gcra_result r;

    for (int round = 0; round < 5; round++) {
        uint64_t now = T0 + (uint64_t)round * 2 * SEC;
        for (int i = 0; i < 16; i++) {
            gh_ltable_decide(t, key_of(t, "r", round * 16 + i), now, &p, &r);
            assert_true(r.allowed);
        }
        assert_int_equal(gh_ltable_live(t, now), 16);
    }
    assert_int_equal(gh_ltable_evictions(t), 0);
    gh_ltable_free(t);
}

/* ---- Threads ---------------------------------------------------------------- */

enum { THREADS = 4 };

struct hammer {
    struct gh_ltable *t;
    const struct gh_gcra_params *p;
    const uint64_t *keys;
    int nkeys;
    int rounds;
    atomic_int *allowed;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    struct gh_gcra_result r;
    int allowed = 0;

    for (int n = 0; n < h->rounds; n++)
        for (int i = 0; i < h->nkeys; i++) {
            gh_ltable_decide(h->t, h->keys[i], T0, h->p, &r);
            allowed += r.allowed;
        }
    atomic_fetch_add(h->allowed, allowed);
    return NULL;
}

static int run_hammer(struct gh_ltable *t, const struct gh_gcra_params *p, const uint64_t *keys,
                      int nkeys, int rounds)
{
    pthread_t th[THREADS];
    struct hammer h[THREADS];
    atomic_int allowed = 0;

    for (int i = 0; i < THREADS; i++) {
        h[i] = (struct hammer){t, p, keys, nkeys, rounds, &allowed};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    return atomic_load(&allowed);
}

/* A fixed now and burst 1000: across threads, exactly 1000 are allowed. */
static void test_threads_one_key_exact(void **state)
{
    struct gh_ltable *t = gh_ltable_new(1024);
    struct gh_gcra_params p = params(1, HOUR, 1000);
    uint64_t key = key_of(t, "hot", 0);

    assert_int_equal(run_hammer(t, &p, &key, 1, 5000), 1000);
    gh_ltable_free(t);
}

/* 2,000 keys, burst 7 each, all threads on all keys: exactly 7 per key. */
static void test_threads_many_keys_exact(void **state)
{
    enum { KEYS = 2000 };
    static uint64_t keys[KEYS];
    struct gh_ltable *t = gh_ltable_new(1 << 16);
    struct gh_gcra_params p = params(1, HOUR, 7);

    for (int i = 0; i < KEYS; i++)
        keys[i] = key_of(t, "mk", i);
    assert_int_equal(run_hammer(t, &p, keys, KEYS, 10), KEYS * 7);
    assert_int_equal(gh_ltable_evictions(t), 0);
    gh_ltable_free(t);
}

/* ---- In-flight counters ----------------------------------------------------- */

static void test_inflight_basic(void **state)
{
    struct gh_inflight *t = gh_inflight_new(1024);

    assert_false(gh_inflight_acquire(t, 42, 0));
    assert_int_equal(gh_inflight_count(t, 42), 0);
    for (int i = 0; i < 3; i++)
        assert_true(gh_inflight_acquire(t, 42, 3));
    assert_false(gh_inflight_acquire(t, 42, 3));
    assert_int_equal(gh_inflight_count(t, 42), 3);
    /* A larger max for the same key lets more in. */
    assert_true(gh_inflight_acquire(t, 42, 4));
    gh_inflight_release(t, 42);
    gh_inflight_release(t, 42);
    assert_int_equal(gh_inflight_count(t, 42), 2);
    assert_true(gh_inflight_acquire(t, 42, 3));
    for (int i = 0; i < 3; i++)
        gh_inflight_release(t, 42);
    assert_int_equal(gh_inflight_count(t, 42), 0);
    /* Releases with no acquire are ignored. */
    gh_inflight_release(t, 42);
    gh_inflight_release(t, 7);
    assert_int_equal(gh_inflight_count(t, 42), 0);
    assert_true(gh_inflight_acquire(t, 42, 1));

    /* Key 0 is key 1. */
    assert_true(gh_inflight_acquire(t, 0, 5));
    assert_int_equal(gh_inflight_count(t, 1), 1);
    gh_inflight_release(t, 1);
    assert_int_equal(gh_inflight_count(t, 0), 0);
    assert_int_equal(gh_inflight_full_refusals(t), 0);
    gh_inflight_free(t);
}

/* One shard of 16 slots: 16 live keys fit, a 17th is refused (fail closed,
 * counted); once a key drops to 0 its slot goes to the newcomer, and keys
 * placed after the freed slot are still found. */
static void test_inflight_full(void **state)
{
    struct gh_inflight *t = gh_inflight_new(16);

    for (uint64_t k = 1; k <= 16; k++)
        assert_true(gh_inflight_acquire(t, k, 10));
    assert_false(gh_inflight_acquire(t, 17, 10));
    assert_int_equal(gh_inflight_full_refusals(t), 1);
    assert_int_equal(gh_inflight_count(t, 17), 0);

    /* Known keys still go up when the table is full. */
    assert_true(gh_inflight_acquire(t, 9, 10));
    assert_int_equal(gh_inflight_count(t, 9), 2);

    for (uint64_t k = 1; k <= 4; k++)
        gh_inflight_release(t, k);
    for (uint64_t k = 17; k <= 20; k++)
        assert_true(gh_inflight_acquire(t, k, 10));
    assert_false(gh_inflight_acquire(t, 21, 10));
    assert_int_equal(gh_inflight_full_refusals(t), 2);
    for (uint64_t k = 5; k <= 20; k++)
        assert_int_equal(gh_inflight_count(t, k), k == 9 ? 2 : 1);
    for (uint64_t k = 1; k <= 4; k++)
        assert_int_equal(gh_inflight_count(t, k), 0);
    gh_inflight_free(t);
}

struct bulkhead {
    struct gh_inflight *t;
    uint64_t key;
    uint32_t max;
    atomic_int current; /* holders right now, as seen between acquire and release */
    atomic_int peak;
    atomic_int granted;
};

static void *bulkhead_run(void *arg)
{
    struct bulkhead *b = arg;

    for (int n = 0; n < 100000; n++) {
        if (!gh_inflight_acquire(b->t, b->key, b->max)) continue;
        int cur = atomic_fetch_add(&b->current, 1) + 1;
        int peak = atomic_load(&b->peak);
        while (cur > peak && !atomic_compare_exchange_weak(&b->peak, &peak, cur)) {
        }
        atomic_fetch_add(&b->granted, 1);
        atomic_fetch_sub(&b->current, 1);
        gh_inflight_release(b->t, b->key);
    }
    return NULL;
}

static void test_inflight_threads(void **state)
{
    struct gh_inflight *t = gh_inflight_new(1024);
    struct bulkhead b = {.t = t, .key = 77, .max = 2};
    pthread_t th[THREADS];

    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, bulkhead_run, &b), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(gh_inflight_count(t, 77), 0);
    assert_true(atomic_load(&b.peak) >= 1);
    assert_true(atomic_load(&b.peak) <= 2);
    assert_true(atomic_load(&b.granted) > 0);
    assert_int_equal(gh_inflight_full_refusals(t), 0);
    gh_inflight_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_vectors),
        cmocka_unit_test(test_table_hash_keyed),
        cmocka_unit_test(test_new_bounds),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_key_zero),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_flood_keeps_heavy_key),
        cmocka_unit_test(test_expired_slots_reused),
        cmocka_unit_test(test_threads_one_key_exact),
        cmocka_unit_test(test_threads_many_keys_exact),
        cmocka_unit_test(test_inflight_basic),
        cmocka_unit_test(test_inflight_full),
        cmocka_unit_test(test_inflight_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
