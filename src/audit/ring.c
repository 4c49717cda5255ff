/* A data-plane worker's side of the audit service: its event ring (the
 * worker writes, the writer thread reads) and the answers for requests that
 * wait until their event is durable (strict mode). */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "audit/writer_int.h"
#include "core/clock.h"
#include "core/log.h"

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: the UUIDv7 random bits need to be unique, not secret. */
static uint64_t next_rand(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct gh_audit_worker *gh_audit_worker_new_(struct gh_audit_service *s, uint32_t capacity)
{
    struct gh_audit_worker *aw = calloc(1, sizeof(*aw));
    pthread_condattr_t ca;
    uint32_t cap = 16;

    if (aw == NULL) return NULL;
    while (cap < capacity && cap < (1u << 20))
        cap <<= 1;
    aw->slots = calloc(cap, sizeof(*aw->slots));
    if (aw->slots == NULL) {
        free(aw);
        return NULL;
    }
    aw->mask = cap - 1;
    aw->svc = s;
    pthread_mutex_init(&aw->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&aw->room, &ca);
    pthread_condattr_destroy(&ca);
    if (getrandom(aw->rng, sizeof(aw->rng), 0) != (ssize_t)sizeof(aw->rng)) {
        aw->rng[0] = gh_now_ns();
        aw->rng[1] = (uint64_t)(uintptr_t)aw;
        aw->rng[2] = 0x9e3779b97f4a7c15ull;
        aw->rng[3] = gh_wall_ms();
    }
    return aw;
}

void gh_audit_worker_free_(struct gh_audit_worker *aw)
{
    if (aw == NULL) return;
    pthread_cond_destroy(&aw->room);
    pthread_mutex_destroy(&aw->mu);
    free(aw->slots);
    free(aw);
}

uint64_t gh_audit_worker_pending_(struct gh_audit_worker *aw)
{
    return atomic_load_explicit(&aw->head, memory_order_acquire) -
           atomic_load_explicit(&aw->tail, memory_order_acquire);
}

struct gh_audit_service *gh_audit_worker_service(struct gh_audit_worker *aw)
{
    return aw ? aw->svc : NULL;
}

/* Runs on the worker's loop after the writer answered: resumes the
 * waiters whose events are finished, in ticket order. */
static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gh_audit_worker *aw = arg;
    uint64_t upto;
    struct {
        uint64_t from, to;
    } failed[GH_AUDIT_FAILED_MAX];
    unsigned nfailed, f = 0;
    (void)fd;
    (void)what;

    pthread_mutex_lock(&aw->mu);
    upto = aw->done_upto;
    nfailed = aw->nfailed;
    memcpy(failed, aw->failed, nfailed * sizeof(failed[0]));
    aw->nfailed = 0;
    pthread_mutex_unlock(&aw->mu);
    /* Waiters are in ticket order (they wait right after their push), and
     * a resumed request only adds tickets at or above <upto>. */
    while (aw->wait_head && aw->wait_head->ticket < upto) {
        struct gh_audit_waiter *wt = aw->wait_head;
        bool ok = true;
        while (f < nfailed && failed[f].to <= wt->ticket)
            f++;
        if (f < nfailed && failed[f].from <= wt->ticket) ok = false;
        gh_audit_worker_cancel(aw, wt);
        wt->done(wt, ok);
    }
}

int gh_audit_worker_bind(struct gh_audit_worker *aw, struct event_base *base)
{
    struct event *ev;
    if (aw == NULL) return GH_OK;
    ev = event_new(base, -1, 0, done_cb, aw);
    if (ev == NULL) return GH_ERROR;
    pthread_mutex_lock(&aw->mu);
    aw->done_ev = ev;
    pthread_mutex_unlock(&aw->mu);
    return GH_OK;
}

void gh_audit_worker_unbind(struct gh_audit_worker *aw)
{
    struct event *ev;
    if (aw == NULL) return;
    pthread_mutex_lock(&aw->mu);
    ev = aw->done_ev;
    aw->done_ev = NULL;
    pthread_mutex_unlock(&aw->mu);
    if (ev) event_free(ev);
    aw->wait_head = aw->wait_tail = NULL;
}

static bool ring_full(struct gh_audit_worker *aw, uint64_t head)
{
    return head - atomic_load_explicit(&aw->tail, memory_order_acquire) > aw->mask;
}

/* Sleeps until the writer gives slots back (gh_audit_worker_report_, right
 * after it moves the tail), or for ROOM_WAIT_MS at most (the caller looks
 * again; only a batch put back or in doubt leaves the tail where it was,
 * and then there is no room to find): a worker whose ring is full sleeps
 * through the commit it waits for instead of waking every 100 us to look
 * (which took a share of a core shared with the store's server), and goes
 * on as soon as the room is there. */
#define ROOM_WAIT_MS 1000

static void wait_for_room(struct gh_audit_worker *aw, uint64_t head)
{
    struct timespec until;

    gh_deadline_ms(CLOCK_MONOTONIC, ROOM_WAIT_MS, &until);
    pthread_mutex_lock(&aw->mu);
    aw->room_wanted = true;
    /* Looked at again under <mu>: a tail moved before this is seen here,
     * one moved after it is followed by a signal (the writer takes <mu>). */
    if (ring_full(aw, head)) pthread_cond_timedwait(&aw->room, &aw->mu, &until);
    aw->room_wanted = false;
    pthread_mutex_unlock(&aw->mu);
}

struct gh_audit_event *gh_audit_worker_slot(struct gh_audit_worker *aw)
{
    uint64_t head = atomic_load_explicit(&aw->head, memory_order_relaxed);
    struct gh_audit_event *ev;
    uint8_t rnd[16];
    uint64_t a, b;
    bool waited = false;

    /* Full: wait for the writer. This stalls the worker's loop, which is
     * the backpressure the issue asks for (requests wait, nothing is
     * dropped); at 4096 slots a healthy writer frees room within a batch.
     * NEEDSWORK: suspend only the request (reserve a slot at the route
     * stage) instead of the whole loop; settle with a load test on a slow
     * disk. */
    while (ring_full(aw, head)) {
        if (!waited) atomic_fetch_add_explicit(&aw->svc->producer_waits, 1, memory_order_relaxed);
        waited = true;
        gh_audit_wake_(aw->svc);
        wait_for_room(aw, head);
    }
    ev = &aw->slots[head & aw->mask].ev;
    a = next_rand(aw->rng);
    b = next_rand(aw->rng);
    memcpy(rnd, &a, 8);
    memcpy(rnd + 8, &b, 8);
    gh_audit_event_init(ev, wall_us(), rnd);
    return ev;
}

uint64_t gh_audit_worker_push(struct gh_audit_worker *aw, bool strict)
{
    uint64_t head = atomic_load_explicit(&aw->head, memory_order_relaxed);
    aw->slots[head & aw->mask].strict = strict;
    atomic_store_explicit(&aw->head, head + 1, memory_order_release);
    /* Async events wait for the writer's next look (at most 5 ms), or
     * wake it from its idle sleep; a strict one has a client waiting. */
    if (strict)
        gh_audit_wake_(aw->svc);
    else
        gh_audit_wake_idle_(aw->svc);
    return head;
}

void gh_audit_worker_wait(struct gh_audit_worker *aw, struct gh_audit_waiter *wt, uint64_t ticket)
{
    wt->ticket = ticket;
    wt->next = NULL;
    wt->prev = aw->wait_tail;
    if (aw->wait_tail)
        aw->wait_tail->next = wt;
    else
        aw->wait_head = wt;
    aw->wait_tail = wt;
    wt->linked = true;
}

void gh_audit_worker_cancel(struct gh_audit_worker *aw, struct gh_audit_waiter *wt)
{
    if (aw == NULL || !wt->linked) return;
    if (wt->prev)
        wt->prev->next = wt->next;
    else
        aw->wait_head = wt->next;
    if (wt->next)
        wt->next->prev = wt->prev;
    else
        aw->wait_tail = wt->prev;
    wt->prev = wt->next = NULL;
    wt->linked = false;
}

void gh_audit_worker_report_(struct gh_audit_worker *aw, uint64_t from, uint64_t upto, bool ok,
                             bool wake)
{
    pthread_mutex_lock(&aw->mu);
    if (upto > aw->done_upto) aw->done_upto = upto;
    if (!ok && from < upto) {
        if (aw->nfailed > 0 && aw->failed[aw->nfailed - 1].to == from) {
            aw->failed[aw->nfailed - 1].to = upto;
        } else if (aw->nfailed < GH_AUDIT_FAILED_MAX) {
            aw->failed[aw->nfailed].from = from;
            aw->failed[aw->nfailed].to = upto;
            aw->nfailed++;
        } else {
            /* No room: widen the last failed range. Events stored in
             * between are then reported failed: their requests get 503
             * although the record exists, never the other way round. */
            aw->failed[aw->nfailed - 1].to = upto;
        }
    }
    if (wake && aw->done_ev) event_active(aw->done_ev, EV_TIMEOUT, 0);
    if (aw->room_wanted) pthread_cond_signal(&aw->room);
    pthread_mutex_unlock(&aw->mu);
}
