/* The audit writer thread (see audit.h): gathers a batch from the workers'
 * rings and the submit queue, gives each event its chain position and hash,
 * adds the checkpoints that are due, signs them, commits all of it in one
 * store call (one fsync), then answers whoever waits.
 *
 * The pipeline: the commit is made by a second thread, the committer, so
 * that the writer gathers and chains batch k+1 while batch k is being
 * stored (the store call is most of the time: an SQLite insert into seven
 * B-trees and an fsync, or PostgreSQL's round trips and its WAL flush).
 * Batch k+1 is chained after batch k's new heads before k is known to be
 * stored. When k is stored, it is answered at once, k+1 takes what came
 * meanwhile and goes to the committer; when it is not, k+1's chaining is
 * undone and k+1 is put back (its ring slots were only read), and batch k
 * goes through the one-batch-at-a-time path, which has every answer to
 * every failure (chain again after a CONFLICT, drop the interval
 * checkpoints the store refused, hold a batch whose outcome is unknown).
 * While k is in flight, k+1 takes no submitted event (those are taken out
 * of their queue, and could not be put back), and after a CONFLICT (another
 * writer on our chains) the writer goes one batch at a time for a while:
 * there the store chains a stale batch again under its lock, which the
 * committer cannot do while the writer chains the next one. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "audit/chain.h"
#include "audit/checkpoint.h"
#include "audit/writer_int.h"
#include "core/clock.h"
#include "core/log.h"
#include "store/store.h"
#include "telemetry/metrics.h"

#define NBUCKETS     4096 /* chain hash table; chains are tenants */
#define IDLE_WAIT_MS 5    /* a batch waits at most this long for more events */
/* The writer's longest sleep once a whole IDLE_WAIT_MS brought nothing:
 * any event wakes it, and it ends when the interval checkpoints' next look
 * is due (CP_SCAN_NS). A held batch's retries keep the short sleep. */
#define IDLE_DEEP_MS 250
/* The pause before async events that met an unavailable store are tried again. */
#define UNAVAILABLE_PAUSE_MS 100
#define SUBMIT_QUEUE         256
#define CP_EXTRA             64 /* interval checkpoints per batch, on top of one per event */
#define CP_SCAN_NS           250000000ull /* interval checkpoints are looked for this often */
/* Times a batch is chained again after a CONFLICT (another writer's
 * append), each after a random pause of up to 2 ms times the attempt, so
 * that two busy nodes on one chain stop meeting in the same window. */
#define CONFLICT_RETRIES 12
/* After a CONFLICT on the pipeline's path: one batch at a time this long,
 * doubled at each CONFLICT that follows, back to the least after a batch
 * chained ahead is stored. */
#define SERIAL_MIN_NS 1000000000ull
#define SERIAL_MAX_NS 64000000000ull
/* Events chained between two looks at whether the committer is done. */
#define CHAIN_CHUNK 64

/* A chain's state before a batch that touched it (restored when the batch
 * is not stored). */
struct chain_snap {
    uint64_t seq;
    uint8_t hash[32];
    uint64_t cp_seq;
    int64_t cp_ms;
    bool touched;
    struct gh_audit_chain *tnext; /* the batch's next touched chain */
};

/* A chain's head as the writer knows it, and its state before each of the
 * two batches in progress (one per buffer: the one being stored and the one
 * chained after it). */
struct gh_audit_chain {
    char name[GH_AUDIT_CHAIN_SIZE];
    uint64_t seq;
    uint8_t hash[32];
    uint64_t cp_seq; /* last checkpoint */
    int64_t cp_ms;   /* its time (or when the chain was first seen) */
    bool in_dirty;   /* on s->dirty */
    struct chain_snap snap[2];
    struct gh_audit_chain *hnext, *dnext;
};

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static struct gh_audit_chain *chain_get(struct gh_audit_service *s, const char *name, bool create)
{
    uint32_t b = hash_name(name) % NBUCKETS;
    struct gh_audit_chain *c;

    for (c = s->buckets[b]; c; c = c->hnext)
        if (strcmp(c->name, name) == 0) return c;
    if (!create) return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL) return NULL;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->cp_ms = (int64_t)gh_wall_ms();
    c->hnext = s->buckets[b];
    s->buckets[b] = c;
    return c;
}

/* ---- start ---------------------------------------------------------------- */

static int head_cb(const struct gh_store_audit_row *row, void *arg)
{
    struct gh_audit_service *s = arg;
    struct gh_audit_chain *c = chain_get(s, row->chain, true);
    uint8_t hash[32];
    /* Decoded apart: a damaged hash leaves the head as it was. */
    if (c == NULL || gh_audit_unhex(row->hash, hash) != GH_OK) return GH_ERROR;
    memcpy(c->hash, hash, sizeof(c->hash));
    c->seq = row->seq;
    return GH_OK;
}

static void mark_dirty(struct gh_audit_service *s, struct gh_audit_chain *c)
{
    if (c->in_dirty || c->seq <= c->cp_seq) return;
    c->in_dirty = true;
    c->dnext = s->dirty;
    s->dirty = c;
}

static int cp_cb(const struct gh_store_audit_checkpoint *cp, void *arg)
{
    struct gh_audit_service *s = arg;
    struct gh_audit_chain *c = chain_get(s, cp->chain, false);
    if (c && cp->seq >= c->cp_seq) {
        c->cp_seq = cp->seq;
        c->cp_ms = cp->time_ms;
    }
    return GH_OK;
}

static void conf_from(struct gh_audit_conf *c, const struct gh_config *cfg)
{
    c->strict = cfg->audit.strict;
    c->checkpoint_every = cfg->audit.checkpoint_every ? cfg->audit.checkpoint_every : 1000;
    c->checkpoint_interval_ms =
        cfg->audit.checkpoint_interval_ms ? cfg->audit.checkpoint_interval_ms : 60000;
    c->param_prefix = cfg->audit.param_prefix;
    c->events = cfg->audit.events;
}

/* Submitted events one batch takes at most. */
static size_t subs_per_batch(uint32_t batch_max)
{
    return batch_max < SUBMIT_QUEUE ? batch_max : SUBMIT_QUEUE;
}

/* A batch's buffers (the rows are touched only as they fill: the memory a
 * batch never reaches is never used). */
static int buf_alloc(struct gh_audit_buf *b, uint32_t batch_max, uint32_t cps_cap, int nworkers)
{
    size_t nw = (size_t)(nworkers > 0 ? nworkers : 1);

    b->rows = calloc(batch_max, sizeof(*b->rows));
    b->cps = calloc(cps_cap, sizeof(*b->cps));
    b->batch = calloc(batch_max, sizeof(*b->batch));
    b->taken_subs = calloc(subs_per_batch(batch_max), sizeof(*b->taken_subs));
    b->taken = calloc(nw, sizeof(*b->taken));
    b->strict_seen = calloc(nw, sizeof(*b->strict_seen));
    if (b->rows == NULL || b->cps == NULL || b->batch == NULL || b->taken_subs == NULL ||
        b->taken == NULL || b->strict_seen == NULL)
        return GH_ERROR;
    return GH_OK;
}

static void buf_free(struct gh_audit_buf *b)
{
    free(b->rows);
    free(b->cps);
    free(b->batch);
    free(b->taken_subs);
    free(b->taken);
    free(b->strict_seen);
}

struct gh_audit_service *gh_audit_service_new(const struct gh_config *cfg, struct gh_store *st,
                                              int nworkers, struct gh_err *err)
{
    struct gh_audit_service *s = calloc(1, sizeof(*s));
    uint32_t qs = cfg->audit.queue_size ? cfg->audit.queue_size : 4096;

    if (s == NULL) goto oom;
    s->store = st;
    s->nworkers = nworkers;
    s->batch_max = cfg->audit.batch_max ? cfg->audit.batch_max : 512;
    s->serial_ns = SERIAL_MIN_NS;
    if (cfg->node.id != NULL) GH_AUDIT_SET(s, node, gh_str_cstr(cfg->node.id));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->room, NULL);
    pthread_cond_init(&s->done, NULL);
    pthread_mutex_init(&s->commit_mu, NULL);
    pthread_cond_init(&s->commit_cv, NULL);
    conf_from(&s->conf, cfg);
    s->subcap = SUBMIT_QUEUE;
    s->subq = calloc(s->subcap, sizeof(*s->subq));
    s->workers = calloc((size_t)(nworkers > 0 ? nworkers : 1), sizeof(*s->workers));
    s->buckets = calloc(NBUCKETS, sizeof(*s->buckets));
    s->cps_cap = s->batch_max + CP_EXTRA;
    if (s->subq == NULL || s->workers == NULL || s->buckets == NULL) goto oom;
    for (int i = 0; i < 2; i++)
        if (buf_alloc(&s->buf[i], s->batch_max, s->cps_cap, nworkers) != GH_OK) goto oom;
    for (int i = 0; i < nworkers; i++)
        if ((s->workers[i] = gh_audit_worker_new_(s, qs)) == NULL) goto oom;
    return s;
oom:
    gh_err_set(err, NULL, 0, 0, "audit: out of memory");
    gh_audit_service_free(s);
    return NULL;
}

struct gh_audit_worker *gh_audit_worker_of(struct gh_audit_service *s, int i)
{
    return s && i >= 0 && i < s->nworkers ? s->workers[i] : NULL;
}

void gh_audit_service_configure(struct gh_audit_service *s, const struct gh_config *cfg)
{
    if (s == NULL) return;
    pthread_mutex_lock(&s->mu);
    conf_from(&s->conf, cfg);
    pthread_mutex_unlock(&s->mu);
}

bool gh_audit_wants(struct gh_audit_service *s, enum gh_audit_kind kind)
{
    bool on = false;
    if (s == NULL) return false;
    pthread_mutex_lock(&s->mu);
    switch (kind) {
    case GH_AUDIT_KIND_AUTH_FAILURES: on = s->conf.events.auth_failures; break;
    case GH_AUDIT_KIND_ADMIN: on = s->conf.events.admin; break;
    case GH_AUDIT_KIND_LIMITS: on = s->conf.events.limits; break;
    case GH_AUDIT_KIND_RELOADS: on = s->conf.events.reloads; break;
    }
    pthread_mutex_unlock(&s->mu);
    return on;
}

bool gh_audit_strict(struct gh_audit_service *s)
{
    bool on;
    if (s == NULL) return false;
    pthread_mutex_lock(&s->mu);
    on = s->conf.strict;
    pthread_mutex_unlock(&s->mu);
    return on;
}

unsigned gh_audit_param_prefix(struct gh_audit_service *s)
{
    unsigned n;
    if (s == NULL) return 4;
    pthread_mutex_lock(&s->mu);
    n = s->conf.param_prefix;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Signals the writer if it sleeps at least as deep as <level>. The fence
 * orders the caller's ring store before this load, against the writer's
 * store of <sleeping> before it looks at the rings (writer_main): either it
 * sees the event, or the caller sees it asleep and signals under <mu>, so
 * not before it waits. */
static void wake_from(struct gh_audit_service *s, int level)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&s->sleeping, memory_order_relaxed) < level) return;
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

void gh_audit_wake_(struct gh_audit_service *s)
{
    wake_from(s, GH_AUDIT_NAP);
}

void gh_audit_wake_idle_(struct gh_audit_service *s)
{
    wake_from(s, GH_AUDIT_IDLE);
}

void gh_audit_event_new(struct gh_audit_event *ev)
{
    uint8_t rnd[10];
    struct timespec ts;

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t a = gh_now_ns();
        memcpy(rnd, &a, 8);
        rnd[8] = (uint8_t)(uintptr_t)ev;
        rnd[9] = (uint8_t)((uintptr_t)ev >> 8);
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gh_audit_event_init(ev, (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, rnd);
}

int gh_audit_submit(struct gh_audit_service *s, const struct gh_audit_event *ev, bool durable)
{
    struct gh_audit_sub_waiter w = {false, GH_OK};
    struct gh_audit_sub *e;
    bool waited = false;

    if (s == NULL) return GH_OK;
    pthread_mutex_lock(&s->mu);
    while (s->sublen == s->subcap && !atomic_load(&s->stop)) {
        if (!waited) atomic_fetch_add_explicit(&s->producer_waits, 1, memory_order_relaxed);
        waited = true;
        pthread_cond_signal(&s->wake);
        pthread_cond_wait(&s->room, &s->mu);
    }
    if (s->sublen == s->subcap) {
        /* Stopping with a full queue: said, counted, never silent. */
        pthread_mutex_unlock(&s->mu);
        atomic_fetch_add_explicit(&s->events_failed, 1, memory_order_relaxed);
        gh_log_error("audit: the writer is stopping; an event (%s) was not stored", ev->action);
        return GH_ERROR;
    }
    e = &s->subq[(s->subhead + s->sublen) % s->subcap];
    e->ev = *ev;
    e->waiter = durable ? &w : NULL;
    s->sublen++;
    pthread_cond_signal(&s->wake);
    while (durable && !w.done)
        pthread_cond_wait(&s->done, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return w.rc;
}

/* ---- one batch ------------------------------------------------------------ */

static bool may_log(struct gh_audit_service *s)
{
    return gh_log_due(&s->last_log_ns);
}

/* One batch, from its gathering to its answer: what the writer's steps,
 * the committer and the store's rechain callback share. */
struct gh_audit_round {
    struct gh_audit_service *s;
    struct gh_audit_buf *b; /* &s->buf[slot] */
    int slot;
    size_t n;     /* events in b->batch */
    size_t nsubs; /* of them, submitted ones (b->taken_subs) */
    size_t nrows; /* rows chained in b->rows (n once chained) */
    size_t ncp;   /* checkpoints in b->cps */
    struct gh_audit_chain *touched;
    struct gh_audit_conf conf;
    int64_t now_ms;
    int64_t oldest_us; /* its oldest event's time, 0 when none */
    bool interval;     /* interval checkpoints are due this round */
    uint64_t scan_ns0; /* last_cp_scan_ns before this round took the scan */
    size_t cp_room;    /* checkpoints kept free for events still to come */
    bool ahead;        /* chained (in part) while the batch before was stored */
    bool final;
    /* The committer's attempt (rechain: none), and whether it is through
     * with the round (under commit_mu): stored, failed, or dropped untried
     * behind a round that failed. */
    int rc;
    struct gh_err err;
    bool committer_done;
    /* Stored without its fsync (SQLite): the writer syncs it after giving
     * the committer the next batch (complete, sync_answer); the time of
     * the store call, and when it returned. */
    bool unsynced;
    uint64_t append_ns, committed_ns;
};

/* The round takes no ring slot (yet). */
static void clear_takes(struct gh_audit_round *r)
{
    for (int k = 0; k < r->s->nworkers; k++) {
        r->b->taken[k] = 0;
        r->b->strict_seen[k] = false;
    }
}

/* Starts a round on buffer <slot>: the settings of the moment. A <fresh>
 * round owns its buffer's ring counts (zeroed); the batch in doubt keeps
 * its own. */
static void round_start(struct gh_audit_service *s, struct gh_audit_round *r, int slot, bool final,
                        bool fresh)
{
    uint64_t now_ns = gh_now_ns();

    memset(r, 0, sizeof(*r));
    r->s = s;
    r->committer_done = true; /* not given */
    r->slot = slot;
    r->b = &s->buf[slot];
    r->final = final;
    r->now_ms = (int64_t)gh_wall_ms();
    pthread_mutex_lock(&s->mu);
    r->conf = s->conf;
    pthread_mutex_unlock(&s->mu);
    r->scan_ns0 = s->last_cp_scan_ns;
    if (final || now_ns - s->last_cp_scan_ns >= CP_SCAN_NS) {
        s->last_cp_scan_ns = now_ns;
        r->interval = true;
    }
    if (fresh) clear_takes(r);
}

static void touch(struct gh_audit_round *r, struct gh_audit_chain *c)
{
    struct chain_snap *sn = &c->snap[r->slot];

    if (sn->touched) return;
    sn->touched = true;
    sn->seq = c->seq;
    memcpy(sn->hash, c->hash, 32);
    sn->cp_seq = c->cp_seq;
    sn->cp_ms = c->cp_ms;
    sn->tnext = r->touched;
    r->touched = c;
}

/* Adds a checkpoint of <c>'s head. Returns false when it cannot be signed
 * (logged; the next one will be tried later). */
static bool add_checkpoint(struct gh_audit_round *r, struct gh_audit_chain *c)
{
    struct gh_audit_service *s = r->s;
    struct gh_err err = {0};

    if (r->ncp >= s->cps_cap || c->seq == 0 || c->seq == c->cp_seq) return false;
    if (gh_audit_checkpoint_sign(s->key, s->key_id, c->name, c->seq, c->hash, r->now_ms,
                                 &r->b->cps[r->ncp], &err) != GH_OK) {
        if (may_log(s))
            gh_log_error("audit: cannot sign a checkpoint of chain %s: %s", c->name, err.msg);
        return false;
    }
    r->ncp++;
    c->cp_seq = c->seq;
    c->cp_ms = r->now_ms;
    return true;
}

/* Chains and hashes one event into <row>. */
static int chain_event(struct gh_audit_round *r, struct gh_audit_event *ev,
                       struct gh_store_audit_row *row)
{
    struct gh_audit_service *s = r->s;
    struct gh_audit_chain *c;

    /* A tenant id that cannot name a chain (a JWT's tenant claim with a
     * control character) would make the store refuse the whole batch: such
     * an event goes to the system chain; its actor still says who. */
    for (const char *p = ev->tenant; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            ev->tenant[0] = '\0';
            break;
        }
    c = chain_get(s, gh_audit_chain_of(ev), true);
    if (c == NULL) return GH_ERROR;
    touch(r, c);
    memcpy(ev->node, s->node, sizeof(ev->node));
    if (gh_audit_chain_event(ev, c->seq + 1, c->hash, row) != GH_OK) return GH_ERROR;
    c->seq = ev->seq;
    memcpy(c->hash, ev->hash, 32);
    if (c->seq - c->cp_seq >= r->conf.checkpoint_every) add_checkpoint(r, c);
    return GH_OK;
}

/* Interval checkpoints: chains with events newer than their last
 * checkpoint, whose checkpoint is older than the interval (or all of them
 * in the final round: at shutdown). */
static void interval_checkpoints(struct gh_audit_round *r)
{
    struct gh_audit_service *s = r->s;
    struct gh_audit_chain **pp = &s->dirty;

    while (*pp) {
        struct gh_audit_chain *c = *pp;
        if (c->seq <= c->cp_seq) {
            *pp = c->dnext;
            c->in_dirty = false;
            continue;
        }
        if ((r->final || r->now_ms - c->cp_ms >= (int64_t)r->conf.checkpoint_interval_ms) &&
            r->ncp + r->cp_room < s->cps_cap) {
            touch(r, c);
            add_checkpoint(r, c);
        }
        pp = &c->dnext;
    }
}

/* The round's oldest event, its events from <from> on looked at. */
static void note_oldest(struct gh_audit_round *r, size_t from)
{
    for (size_t i = from; i < r->n; i++)
        if (r->oldest_us == 0 || r->b->batch[i]->time_us < r->oldest_us)
            r->oldest_us = r->b->batch[i]->time_us;
}

/* Adds events to the round, up to <limit> (at most batch_max): submitted
 * ones first (their callers block; after the events it has already) when
 * <subs>, then round robin over the rings, past the slots the round has and
 * those of <skip> (per worker: the batch being stored, NULL: none). */
static void gather(struct gh_audit_round *r, const uint64_t *skip, bool subs, size_t limit)
{
    struct gh_audit_service *s = r->s;
    struct gh_audit_buf *b = r->b;
    size_t n = r->n, from = r->n, cap_subs = subs_per_batch(s->batch_max);

    if (subs) {
        size_t had = r->nsubs;
        pthread_mutex_lock(&s->mu);
        while (s->sublen > 0 && r->nsubs < cap_subs && n + r->nsubs - had < limit) {
            b->taken_subs[r->nsubs++] = s->subq[s->subhead];
            s->subhead = (s->subhead + 1) % s->subcap;
            s->sublen--;
        }
        if (r->nsubs > had) pthread_cond_broadcast(&s->room);
        pthread_mutex_unlock(&s->mu);
        for (size_t i = had; i < r->nsubs; i++)
            b->batch[n++] = &b->taken_subs[i].ev;
    }
    for (bool more = true; more && n < limit;) {
        more = false;
        for (int k = 0; k < s->nworkers && n < limit; k++) {
            struct gh_audit_worker *aw = s->workers[k];
            uint64_t tail = atomic_load_explicit(&aw->tail, memory_order_relaxed) + b->taken[k] +
                            (skip ? skip[k] : 0);
            uint64_t head = atomic_load_explicit(&aw->head, memory_order_acquire);
            /* Up to 64 from one ring per round, so one busy worker does
             * not starve the others' strict waiters. */
            for (int j = 0; j < 64 && tail < head && n < limit; j++, tail++) {
                struct gh_audit_slot *sl = &aw->slots[tail & aw->mask];
                b->batch[n++] = &sl->ev;
                if (sl->strict) b->strict_seen[k] = true;
                b->taken[k]++;
                more = true;
            }
        }
    }
    r->n = n;
    note_oldest(r, from);
}

/* The batch's ring slots stay in their rings, for a later batch to take:
 * they were only read. (Never for a batch with submitted events.) */
static void put_back(struct gh_audit_round *r)
{
    clear_takes(r);
    r->n = r->nrows = r->ncp = 0;
    /* Its interval checkpoints were not made: the next round looks. */
    if (r->interval) r->s->last_cp_scan_ns = r->scan_ns0;
}

static void observe_commit(struct gh_audit_service *s, uint64_t ns, size_t n)
{
    atomic_fetch_add_explicit(&s->batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->batch_events_sum, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->commit_ns_sum, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->commit_buckets[gh_metrics_bucket(ns)], 1, memory_order_relaxed);
}

/* Sleeps a random time in [0, 2 ms * (attempt + 1)). */
static void conflict_pause(int attempt)
{
    uint32_t r = 0;
    struct timespec ts;

    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) r = (uint32_t)gh_now_ns();
    ts.tv_sec = 0;
    ts.tv_nsec = (long)(r % (2000000u * (uint32_t)(attempt + 1)));
    nanosleep(&ts, NULL);
}

/* Whether a batch that met an unavailable store may wait for it: when
 * nobody waits on it (a strict slot or a durable submit: those callers are
 * answered at once, as for any failure). Its ring slots are simply not
 * given back meanwhile, and its submitted events stay in taken_subs. */
static bool may_hold(const struct gh_audit_round *r)
{
    for (int k = 0; k < r->s->nworkers; k++)
        if (r->b->strict_seen[k]) return false;
    for (size_t i = 0; i < r->nsubs; i++)
        if (r->b->taken_subs[i].waiter != NULL) return false;
    return true;
}

static void unavailable_pause(void)
{
    struct timespec ts = {0, UNAVAILABLE_PAUSE_MS * 1000000L};
    nanosleep(&ts, NULL);
}

/* What became of a batch whose append answered UNAVAILABLE. */
enum outcome { STORED, NOT_STORED, UNKNOWN };

struct lookup {
    const struct gh_store_audit_row *want;
    bool found;
};

static int same_hash_cb(const struct gh_store_audit_row *row, void *arg)
{
    struct lookup *l = arg;
    if (row->seq == l->want->seq && strcmp(row->hash, l->want->hash) == 0) l->found = true;
    return GH_OK;
}

/* Finds out whether the batch in b's rows/cps (<nrows>, <ncp>), whose
 * append answered UNAVAILABLE, was stored: the commit may have landed
 * though the answer was lost (the connection cut during COMMIT). It sends
 * the very same rows again: the append takes the store's append lock
 * first, so a commit of ours still in flight has ended, and an engine whose
 * commit can be cut takes rows identical to stored ones as already stored
 * (store.h): GH_OK means stored, once. Any other refusal is looked into: if
 * the batch's last row is stored with its hash (an engine that refuses
 * identical rows), the batch is stored (one transaction: all of it or
 * none); otherwise it is not, and *rc says why (CONFLICT: another writer
 * moved a head meanwhile). UNKNOWN while the store stays out of reach.
 * Re-chaining a batch that landed would store its events twice; dropping
 * it when it did not would lose them: neither happens before this says.
 * Store calls only: the committer may make it. */
static enum outcome resolve(struct gh_audit_service *s, const struct gh_audit_buf *b, size_t nrows,
                            size_t ncp, int *rc, struct gh_err *err)
{
    struct lookup l = {NULL, false};
    int wr;

    *rc = gh_store_audit_append(s->store, b->rows, nrows, b->cps, ncp, err);
    if (*rc == GH_OK) return STORED;
    if (*rc == GH_STORE_UNAVAILABLE) return UNKNOWN;
    if (nrows == 0) return NOT_STORED; /* checkpoints only: taken again later */
    l.want = &b->rows[nrows - 1];
    wr = gh_store_audit_walk(s->store, l.want->chain, l.want->seq, l.want->seq, same_hash_cb, &l,
                             err);
    if (wr == GH_STORE_UNAVAILABLE) {
        *rc = wr;
        return UNKNOWN;
    }
    if (wr == GH_OK && l.found) {
        *rc = GH_OK;
        return STORED;
    }
    return NOT_STORED;
}

/* The batch in b's rows/cps is stored (found so after an unknown outcome,
 * the chain heads having gone back to before it): the heads move past it. */
static void heads_after(struct gh_audit_service *s, const struct gh_audit_buf *b, size_t nrows,
                        size_t ncp)
{
    for (size_t i = 0; i < nrows; i++) {
        struct gh_audit_chain *c = chain_get(s, b->rows[i].chain, false);
        if (c == NULL || b->rows[i].seq <= c->seq) continue;
        if (gh_audit_unhex(b->rows[i].hash, c->hash) != GH_OK) continue;
        c->seq = b->rows[i].seq;
        mark_dirty(s, c);
    }
    for (size_t i = 0; i < ncp; i++) {
        struct gh_audit_chain *c = chain_get(s, b->cps[i].chain, false);
        if (c == NULL || b->cps[i].seq < c->cp_seq) continue;
        c->cp_seq = b->cps[i].seq;
        c->cp_ms = b->cps[i].time_ms;
    }
}

/* Gives the round's events back: ring slots to their workers, submitters
 * learn whether <ok>. */
static void answer(struct gh_audit_round *r, bool ok)
{
    struct gh_audit_service *s = r->s;
    struct gh_audit_buf *b = r->b;

    for (int k = 0; k < s->nworkers; k++) {
        struct gh_audit_worker *aw = s->workers[k];
        uint64_t from, upto;
        if (b->taken[k] == 0) continue;
        from = atomic_load_explicit(&aw->tail, memory_order_relaxed);
        upto = from + b->taken[k];
        atomic_store_explicit(&aw->tail, upto, memory_order_release);
        gh_audit_worker_report_(aw, from, upto, ok, b->strict_seen[k]);
        b->taken[k] = 0;
    }
    if (r->nsubs) {
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < r->nsubs; i++) {
            if (b->taken_subs[i].waiter == NULL) continue;
            b->taken_subs[i].waiter->rc = ok ? GH_OK : GH_ERROR;
            b->taken_subs[i].waiter->done = true;
        }
        pthread_cond_broadcast(&s->done);
        pthread_mutex_unlock(&s->mu);
    }
}

/* The round is stored: counted, and its events given back. */
static void answer_stored(struct gh_audit_round *r)
{
    atomic_fetch_add_explicit(&r->s->events_written, r->n, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->s->checkpoints, r->ncp, memory_order_relaxed);
    /* Only a round the store took ends an outage: an empty one (nothing
     * to write, as the last round at a stop can be) proves nothing. */
    if (r->nrows > 0 || r->ncp > 0) gh_log_episode_ok(&r->s->unavailable, "audit: storing events");
    answer(r, true);
}

/* Chains the round's events [r->nrows, <to>) after the chains' current
 * heads. */
static int chain_range(struct gh_audit_round *r, size_t to, struct gh_err *err)
{
    for (; r->nrows < to; r->nrows++)
        if (chain_event(r, r->b->batch[r->nrows], &r->b->rows[r->nrows]) != GH_OK)
            return gh_err_set(err, NULL, 0, 0,
                              "out of memory, or an event that cannot be serialised");
    return GH_OK;
}

/* Chains all the round's events from the chains' current heads into rows
 * and checkpoints. */
static int chain_batch(struct gh_audit_round *r, struct gh_err *err)
{
    r->nrows = r->ncp = 0;
    if (chain_range(r, r->n, err) != GH_OK) return GH_ERROR;
    if (r->interval) interval_checkpoints(r);
    return GH_OK;
}

/* The chains the round touched keep their new heads (<keep>), or go back
 * to where they were before it. A round chained after another is settled
 * first: its snapshots hold the other's heads. */
static void settle_heads(struct gh_audit_round *r, bool keep)
{
    while (r->touched) {
        struct gh_audit_chain *c = r->touched;
        struct chain_snap *sn = &c->snap[r->slot];
        r->touched = sn->tnext;
        sn->touched = false;
        if (!keep) {
            c->seq = sn->seq;
            memcpy(c->hash, sn->hash, 32);
            c->cp_seq = sn->cp_seq;
            c->cp_ms = sn->cp_ms;
        }
        mark_dirty(r->s, c);
    }
}

/* The store found the round's heads stale and holds its append lock: the
 * same events are chained again after the heads it read, which cannot move
 * before the commit (store.h, gh_store_audit_append_rechain). Only in the
 * one-batch-at-a-time path, on the writer thread. */
static int rechain_cb(void *arg, const struct gh_store_audit_head *heads, size_t nheads,
                      size_t *ncp)
{
    struct gh_audit_round *r = arg;
    struct gh_err err = {0};

    settle_heads(r, false);
    for (size_t i = 0; i < nheads; i++) {
        struct gh_audit_chain *c = chain_get(r->s, heads[i].chain, true);
        uint8_t hash[32] = {0};
        if (c == NULL) return GH_ERROR;
        /* Decoded apart: a damaged hash leaves the head as it was. */
        if (heads[i].seq > 0 && gh_audit_unhex(heads[i].hash, hash) != GH_OK) return GH_ERROR;
        memcpy(c->hash, hash, sizeof(c->hash));
        c->seq = heads[i].seq;
    }
    if (chain_batch(r, &err) != GH_OK) return GH_ERROR;
    atomic_fetch_add_explicit(&r->s->rechains, 1, memory_order_relaxed);
    *ncp = r->ncp;
    return GH_OK;
}

/* The store call of a chained round, and what follows an UNAVAILABLE
 * answer at once (the outcome is unknown: the connection was cut, maybe
 * during the commit; the store may be back already). With <may_defer>,
 * the store may leave the fsync out (r->unsynced): the round is then
 * counted as a commit when it is synced. */
static int append(struct gh_audit_round *r, const struct gh_store_audit_rechain *rechain,
                  bool may_defer, struct gh_err *err)
{
    struct gh_audit_service *s = r->s;
    uint64_t t0 = gh_now_ns();
    int rc = gh_store_audit_append_unsynced(s->store, r->b->rows, r->nrows, r->b->cps, &r->ncp,
                                            rechain, may_defer ? &r->unsynced : NULL, err);

    if (rc == GH_STORE_UNAVAILABLE) (void)resolve(s, r->b, r->nrows, r->ncp, &rc, err);
    r->committed_ns = gh_now_ns();
    r->append_ns = r->committed_ns - t0;
    if (rc != GH_OK) r->unsynced = false;
    if (!r->unsynced) observe_commit(s, r->append_ns, r->n);
    return rc;
}

/* A round found stored, maybe by a commit left without its fsync: synced,
 * then answered. A failed sync fails the round's events: they may be lost,
 * and the store takes no more writes (store.h, gh_store_audit_sync), so
 * neither will the rounds after it. */
static void answer_synced(struct gh_audit_round *r)
{
    struct gh_audit_service *s = r->s;
    struct gh_err err = {0};

    if (gh_store_audit_sync(s->store, &err) == GH_OK) {
        answer_stored(r);
        return;
    }
    atomic_fetch_add_explicit(&s->events_failed, r->n, memory_order_relaxed);
    if (may_log(s))
        gh_log_error("audit: %zu event(s) and %zu checkpoint(s) may not be stored: %s", r->n,
                     r->ncp, err.msg);
    answer(r, false);
}

/* A round the committer stored without its fsync: synced (while the
 * committer stores the next one), then answered; its commit counted from
 * the store call to the end of the sync, until it is durable. */
static void sync_answer(struct gh_audit_round *r)
{
    answer_synced(r);
    observe_commit(r->s, r->append_ns + (gh_now_ns() - r->committed_ns), r->n);
    r->unsynced = false;
}

/* The round after its first store call (made here when !<tried>, else by
 * the committer: r->rc, r->err), to its answer: chained again after a
 * CONFLICT, without interval checkpoints after a refused one, held while
 * the store is out of reach. Returns the events handled (0 when held). */
static size_t finish(struct gh_audit_round *r, bool tried)
{
    struct gh_audit_service *s = r->s;
    struct gh_err err = {0};
    bool ok = true;
    int rc = GH_OK;

    atomic_store_explicit(&s->oldest_since_us, r->oldest_us, memory_order_relaxed);
    /* A CONFLICT means another writer on the same store (another node on
     * PostgreSQL, the CLI) appended to one of our chains since we last read
     * its head: nothing of the batch was stored, so we read the heads again
     * and chain the same events after them. A chain is never forked, and
     * the events are not lost to the race. */
    for (int attempt = 0;; attempt++) {
        struct gh_store_audit_rechain rechain = {rechain_cb, r};
        if (attempt == 0 && tried) {
            rc = r->rc;
            err = r->err;
            ok = rc == GH_OK;
            /* Another writer on our chains: one batch at a time for a
             * while, where the store chains a stale batch again itself;
             * longer each time the next batch chained ahead meets one
             * again (nodes that keep writing the same chains). */
            if (rc == GH_STORE_CONFLICT) {
                s->serial_until_ns = gh_now_ns() + s->serial_ns;
                if (s->serial_ns < SERIAL_MAX_NS) s->serial_ns *= 2;
            }
        } else {
            rc = chain_batch(r, &err);
            ok = rc == GH_OK;
            if (ok && (r->nrows > 0 || r->ncp > 0)) {
                rc = append(r, &rechain, false, &err);
                ok = rc == GH_OK;
            }
        }

        /* Chain heads: keep the new ones, or go back to the committed ones
         * (also while the outcome is unknown: heads_after() moves them once
         * the batch is found stored). */
        settle_heads(r, ok);
        if (rc == GH_STORE_INVALID && r->interval) {
            /* The store refused a checkpoint: an interval checkpoint of a
             * chain outside the batch, signed at this writer's idea of its
             * head, whose event is no longer there (archived, or lost in a
             * failover and written again by another node). The events must
             * not fail for it: they go in without interval checkpoints, and
             * the heads are read again so the next ones name stored events.
             * (Checkpoints of the batch's own rows are always valid.) */
            if (may_log(s))
                gh_log_warn("audit: a checkpoint was refused (%s); the batch goes in without "
                            "interval checkpoints",
                            err.msg);
            r->interval = false;
            if (gh_store_audit_heads(s->store, head_cb, s, &err) == GH_OK) continue;
        }
        if (rc != GH_STORE_CONFLICT || attempt == CONFLICT_RETRIES) break;
        conflict_pause(attempt);
        {
            /* The heads cannot be read (the store went away meanwhile):
             * decide on that, so an unavailable store holds the batch back
             * as below instead of dropping it. */
            int hr = gh_store_audit_heads(s->store, head_cb, s, &err);
            if (hr != GH_OK) {
                rc = hr;
                break;
            }
        }
    }
    if (!ok && rc == GH_STORE_UNAVAILABLE && !r->final && may_hold(r)) {
        /* The store is out of reach (PostgreSQL restarting or failing
         * over). No caller waits on these events, so they wait in memory,
         * the rings and the queue bounding what waits. When the append
         * itself went unanswered (nrows > 0 and the heads read fine), the
         * batch is in doubt: kept exactly as chained until resolve() tells;
         * otherwise nothing of it was sent and it is chained again. Either
         * way the next round starts with resolve(), which sends the rows
         * chained here again: rows the store does not have are stored, rows
         * it has are recognised, never stored twice. */
        s->pending = true;
        s->pending_buf = r->slot;
        s->pending_n = r->n;
        s->pending_nsubs = r->nsubs;
        s->pending_nrows = r->nrows;
        s->pending_ncp = r->ncp;
        gh_log_episode_fail(&s->unavailable,
                            "audit: the store is unavailable; %zu event(s) wait to be stored: %s",
                            r->n, err.msg);
        unavailable_pause();
        return 0;
    }
    if (ok) {
        answer_stored(r);
    } else {
        if (r->n > 0 || r->ncp > 0) {
            atomic_fetch_add_explicit(&s->events_failed, r->n, memory_order_relaxed);
            if (may_log(s))
                gh_log_error("audit: cannot store %zu event(s) and %zu checkpoint(s): %s", r->n,
                             r->ncp, err.msg);
            /* Still stale after the retries: heal from the store's heads on
             * the next batch. A batch whose outcome stayed unknown (a waiter
             * was answered "failed") may be stored all the same: the heads went
             * back to before it, so the next append meets CONFLICT and reads
             * them, rather than chaining after a guess. */
            if (rc == GH_STORE_CONFLICT) gh_store_audit_heads(s->store, head_cb, s, &err);
        }
        answer(r, false);
    }
    atomic_store_explicit(&s->oldest_since_us, 0, memory_order_relaxed);
    return r->n;
}

/* The batch in doubt (s->pending): resolved first, nothing new before the
 * store says what became of it. Returns the events handled. */
static size_t write_pending(struct gh_audit_service *s, bool final)
{
    struct gh_audit_round r;
    struct gh_err err = {0};
    int rc = GH_OK;
    enum outcome o;

    round_start(s, &r, s->pending_buf, final, false);
    r.n = s->pending_n;
    r.nsubs = s->pending_nsubs;
    r.nrows = s->pending_nrows;
    r.ncp = s->pending_ncp;
    note_oldest(&r, 0);
    atomic_store_explicit(&s->oldest_since_us, r.oldest_us, memory_order_relaxed);
    o = resolve(s, r.b, r.nrows, r.ncp, &rc, &err);
    if (o == UNKNOWN && !final) {
        gh_log_episode_fail(&s->unavailable,
                            "audit: the store is unavailable; %zu event(s) wait to be stored: %s",
                            r.n, err.msg);
        s->last_cp_scan_ns = r.scan_ns0; /* this round made no checkpoint */
        unavailable_pause();
        return 0;
    }
    s->pending = false;
    if (o == STORED) {
        size_t n = r.n;
        heads_after(s, r.b, r.nrows, r.ncp);
        /* Maybe by the committer's commit, left without its fsync. */
        answer_synced(&r);
        atomic_store_explicit(&s->oldest_since_us, 0, memory_order_relaxed);
        if (!final) return n;
        /* At shutdown: what is queued besides gets its round too. */
        round_start(s, &r, s->pending_buf, true, true);
        gather(&r, NULL, true, s->batch_max);
        return n + finish(&r, false);
    }
    if (o == UNKNOWN) {
        /* Stopping with the store still out of reach: said, counted. */
        atomic_fetch_add_explicit(&s->events_failed, r.n, memory_order_relaxed);
        gh_log_error("audit: stopping with the store unavailable: %zu event(s) may not be "
                     "stored: %s",
                     r.n, err.msg);
        /* The outage ends with this line, not with "works again". */
        s->unavailable = (struct gh_log_episode){0};
        answer(&r, false);
        atomic_store_explicit(&s->oldest_since_us, 0, memory_order_relaxed);
        return r.n;
    }
    /* Not stored: the same events are chained again, after the heads
     * another writer moved (CONFLICT) or as they are. */
    if (rc == GH_STORE_CONFLICT) gh_store_audit_heads(s->store, head_cb, s, &err);
    return finish(&r, false);
}

/* ---- the committer ----------------------------------------------------------- */

static void *committer_main(void *arg)
{
    struct gh_audit_service *s = arg;

    pthread_mutex_lock(&s->commit_mu);
    for (;;) {
        struct gh_audit_round *r, *next;
        while (s->commit_round == NULL && !s->commit_stop)
            pthread_cond_wait(&s->commit_cv, &s->commit_mu);
        if (s->commit_round == NULL) break;
        r = s->commit_round;
        pthread_mutex_unlock(&s->commit_mu);
        /* No rechain: the writer is chaining the next batch meanwhile. No
         * fsync either: the writer makes it once the next batch is here. */
        r->rc = append(r, NULL, true, &r->err);
        pthread_mutex_lock(&s->commit_mu);
        r->committer_done = true;
        s->commit_round = NULL;
        if ((next = s->commit_next) != NULL) {
            s->commit_next = NULL;
            /* The round queued behind was chained after this one's heads:
             * stored only if this one was, at once, without waiting for the
             * writer to be scheduled (on a core shared with the workers,
             * that wait was a sixth of a PostgreSQL batch's time). */
            if (r->rc == GH_OK) {
                s->commit_round = next;
            } else {
                next->rc = GH_ERROR;
                gh_err_set(&next->err, NULL, 0, 0, "not tried: the batch before it failed");
                next->committer_done = true;
            }
        }
        pthread_cond_broadcast(&s->commit_cv);
    }
    pthread_mutex_unlock(&s->commit_mu);
    return NULL;
}

/* Gives the committer round <r>, with nothing being stored. */
static void commit_give(struct gh_audit_service *s, struct gh_audit_round *r)
{
    pthread_mutex_lock(&s->commit_mu);
    r->committer_done = false;
    s->commit_round = r;
    pthread_cond_broadcast(&s->commit_cv);
    pthread_mutex_unlock(&s->commit_mu);
}

/* Queues round <r>, chained after round <prev> (given before), to be
 * stored right after <prev> if <prev> is stored. False, and <r> not
 * given, when <prev> has failed already. */
static bool commit_queue(struct gh_audit_service *s, struct gh_audit_round *r,
                         const struct gh_audit_round *prev)
{
    bool queued = false;

    pthread_mutex_lock(&s->commit_mu);
    if (!prev->committer_done || prev->rc == GH_OK) {
        r->committer_done = false;
        if (prev->committer_done)
            s->commit_round = r;
        else
            s->commit_next = r;
        pthread_cond_broadcast(&s->commit_cv);
        queued = true;
    }
    pthread_mutex_unlock(&s->commit_mu);
    return queued;
}

/* Waits until the committer is through with round <r>. */
static void commit_wait(struct gh_audit_round *r)
{
    struct gh_audit_service *s = r->s;

    pthread_mutex_lock(&s->commit_mu);
    while (!r->committer_done)
        pthread_cond_wait(&s->commit_cv, &s->commit_mu);
    pthread_mutex_unlock(&s->commit_mu);
}

/* ---- the writer's steps ------------------------------------------------------- */

/* Waits for the committer's answer on <r>: a stored round is answered
 * (*stored), or, when it is not synced yet and <unsynced> is not NULL, left
 * in *unsynced for the caller to sync_answer() once the committer has the
 * next round; any other goes the one-batch-at-a-time way (finish) after
 * <next>, chained after it, is undone and put back. Returns the events
 * handled. */
static size_t complete(struct gh_audit_round *r, struct gh_audit_round *next, bool *stored,
                       struct gh_audit_round **unsynced)
{
    struct gh_audit_service *s = r->s;

    commit_wait(r);
    *stored = r->rc == GH_OK;
    if (*stored) {
        settle_heads(r, true);
        /* A batch chained ahead was stored: nobody else wrote our chains
         * meanwhile. */
        if (r->ahead) s->serial_ns = SERIAL_MIN_NS;
        if (r->unsynced && unsynced != NULL)
            *unsynced = r;
        else if (r->unsynced)
            sync_answer(r);
        else
            answer_stored(r);
        return r->n;
    }
    if (next != NULL) {
        /* Not tried if it was queued: dropped with <r>'s answer. */
        commit_wait(next);
        settle_heads(next, false);
        put_back(next);
    }
    return finish(r, true);
}

/* Whether the committer is through with round <r>, without waiting. */
static bool commit_ready(struct gh_audit_round *r)
{
    struct gh_audit_service *s = r->s;
    bool done;

    pthread_mutex_lock(&s->commit_mu);
    done = r->committer_done;
    pthread_mutex_unlock(&s->commit_mu);
    return done;
}

static size_t subs_waiting(struct gh_audit_service *s)
{
    size_t n;
    pthread_mutex_lock(&s->mu);
    n = s->sublen;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void show_oldest(struct gh_audit_service *s, const struct gh_audit_round *a,
                        const struct gh_audit_round *b)
{
    int64_t o = a->oldest_us;
    if (b != NULL && b->oldest_us != 0 && (o == 0 || b->oldest_us < o)) o = b->oldest_us;
    atomic_store_explicit(&s->oldest_since_us, o, memory_order_relaxed);
}

/* One step of the writer. With a batch in flight (*inflight, being stored
 * by the committer), the next one is gathered from the rings and chained
 * after it meanwhile, in pieces: the one in flight is answered as soon as
 * it is stored. A next one full and chained before that is queued behind
 * it (commit_queue), unless submitted events wait; else it takes what came
 * while the one before was stored (submitted events too: nothing is ahead
 * of it any more), and goes to the committer. A batch stored without its fsync (<unsynced>) is
 * answered after that hand-over, its fsync made while the committer stores
 * the next one: the disk's wait is off the committer's path. Returns the
 * events answered (0 also when a batch was put back, or only checkpoints
 * were stored). */
static size_t step(struct gh_audit_service *s, struct gh_audit_round rounds[2],
                   struct gh_audit_round **inflight)
{
    struct gh_audit_round *prev = *inflight, *r, *unsynced = NULL;
    struct gh_err err = {0};
    size_t done = 0, limit = s->batch_max;
    bool ahead = prev != NULL, stored, queued = false;

    if (prev == NULL && (s->pending || gh_now_ns() < s->serial_until_ns)) {
        if (s->pending) return write_pending(s, false);
        round_start(s, &rounds[0], 0, false, true);
        gather(&rounds[0], NULL, true, s->batch_max);
        return finish(&rounds[0], false);
    }
    r = &rounds[prev != NULL ? 1 - prev->slot : 0];
    round_start(s, r, (int)(r - rounds), false, true);
    if (ahead) {
        /* Ring events only (a batch chained ahead may be put back, which
         * submitted events could not be), with room kept for the waiting
         * submitted ones, taken below once nothing is ahead. */
        size_t subs = subs_waiting(s), cap_subs = subs_per_batch(s->batch_max);
        limit -= subs < cap_subs ? subs : cap_subs;
    }
    gather(r, ahead ? prev->b->taken : NULL, !ahead, limit);
    show_oldest(s, r, prev);
    /* The checkpoints of events the top-up may add keep their room. */
    if (ahead) r->cp_room = s->batch_max - r->n;
    while (r->nrows < r->n) {
        size_t to = r->n - r->nrows > CHAIN_CHUNK ? r->nrows + CHAIN_CHUNK : r->n;
        if (chain_range(r, to, &err) != GH_OK) goto chain_failed;
        if (prev != NULL && commit_ready(prev)) {
            r->ahead = true;
            done += complete(prev, r, &stored, &unsynced);
            *inflight = prev = NULL;
            if (!stored) return done;
            show_oldest(s, r, unsynced);
        }
    }
    if (r->interval) interval_checkpoints(r);
    r->cp_room = 0;
    if (prev != NULL) {
        r->ahead = r->ahead || r->nrows > 0 || r->ncp > 0;
        /* Full, and chained before the batch in flight is stored: queued
         * behind it, so that the committer goes on to it at once; it could
         * take nothing more below anyway. A batch with room waits to take
         * what comes meanwhile (an event waits for no extra batch), and
         * submitted events go in only once nothing is ahead (below). */
        queued =
            r->ahead && r->n >= s->batch_max && subs_waiting(s) == 0 && commit_queue(s, r, prev);
        done += complete(prev, r, &stored, &unsynced);
        *inflight = prev = NULL;
        if (!stored) return done;
    }
    if (ahead && !queued) {
        /* What came while the batch before was stored goes in this one,
         * as it would have without the pipeline; past the ring slots of
         * the batch before when it is still to be synced and answered. (A
         * queued batch is full: what came waits for the next one.) */
        size_t had = r->n;
        gather(r, unsynced ? unsynced->b->taken : NULL, true, s->batch_max);
        if (r->n > had && chain_range(r, r->n, &err) != GH_OK) goto chain_failed;
    }
    if (ahead) show_oldest(s, r, unsynced);
    if (r->nrows == 0 && r->ncp == 0) {
        if (unsynced != NULL) sync_answer(unsynced);
        settle_heads(r, true);
        atomic_store_explicit(&s->oldest_since_us, 0, memory_order_relaxed);
        return done;
    }
    if (r->ahead) atomic_fetch_add_explicit(&s->chained_ahead, 1, memory_order_relaxed);
    if (queued)
        atomic_fetch_add_explicit(&s->queued_ahead, 1, memory_order_relaxed); /* given already */
    else
        commit_give(s, r);
    *inflight = r;
    /* The batch before is answered only now, and in ring order: its slots
     * come before this one's. */
    if (unsynced != NULL) sync_answer(unsynced);
    return done + r->n;

chain_failed:
    /* Cannot happen short of memory: the batch goes the slow way, where it
     * fails as it would have (after the batch before is answered). */
    if (unsynced != NULL) sync_answer(unsynced);
    settle_heads(r, false);
    if (prev != NULL) {
        put_back(r);
        done += complete(prev, NULL, &stored, NULL);
        *inflight = NULL;
        return done;
    }
    return done + finish(r, false);
}

/* Events queued and not taken by a batch (the rings and the submit
 * queue). */
static uint64_t queued(struct gh_audit_service *s)
{
    uint64_t n = 0;

    for (int k = 0; k < s->nworkers; k++)
        n += gh_audit_worker_pending_(s->workers[k]);
    pthread_mutex_lock(&s->mu);
    n += s->sublen;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static bool work_waiting(struct gh_audit_service *s)
{
    if (s->sublen > 0) return true;
    for (int k = 0; k < s->nworkers; k++)
        if (gh_audit_worker_pending_(s->workers[k]) > 0) return true;
    return false;
}

static void *writer_main(void *arg)
{
    struct gh_audit_service *s = arg;
    struct gh_audit_round rounds[2], *inflight = NULL, last;
    bool napped = false; /* the last sleep was a short one that nothing ended */

    for (;;) {
        bool stopping = atomic_load(&s->stop), idle;
        uint64_t now_ns;
        long sleep_ms;
        size_t n = step(s, rounds, &inflight);
        if (stopping && n == 0 && inflight == NULL) {
            /* A step that answered nothing may have put a batch back: it
             * is taken again, unless the store is out of reach (the batch
             * in doubt and the rest get their last try below). */
            if (queued(s) == 0 || s->pending) break;
            continue;
        }
        if (n > 0 || inflight != NULL) {
            napped = false;
            continue;
        }
        /* Nothing came: sleep until woken (strict event, submit) or for
         * IDLE_WAIT_MS, when async events in the rings are looked at. After
         * a short sleep that brought nothing, and with no batch held, the
         * sleep is IDLE_DEEP_MS and async events wake it too. */
        now_ns = gh_now_ns();
        idle = napped && !s->pending && now_ns >= s->serial_until_ns;
        if (idle) {
            /* No later than the next interval-checkpoint look is due. */
            uint64_t due = s->last_cp_scan_ns + CP_SCAN_NS;
            sleep_ms = due <= now_ns ? 1 : (long)((due - now_ns + 999999) / 1000000);
            if (sleep_ms > IDLE_DEEP_MS) sleep_ms = IDLE_DEEP_MS;
        } else {
            sleep_ms = IDLE_WAIT_MS;
        }
        pthread_mutex_lock(&s->mu);
        atomic_store(&s->sleeping, idle ? GH_AUDIT_IDLE : GH_AUDIT_NAP);
        /* Pairs with the fence of wake_from: the rings are read below
         * after <sleeping> is seen stored. */
        atomic_thread_fence(memory_order_seq_cst);
        napped = false;
        if (!work_waiting(s) && !atomic_load(&s->stop)) {
            struct timespec ts;
            gh_deadline_ms(CLOCK_REALTIME, sleep_ms, &ts);
            napped = pthread_cond_timedwait(&s->wake, &s->mu, &ts) == ETIMEDOUT;
        }
        atomic_store(&s->sleeping, GH_AUDIT_AWAKE);
        pthread_mutex_unlock(&s->mu);
    }
    /* What is left, then checkpoints for what this run wrote, so a restart
     * loses no proof. */
    if (s->pending) write_pending(s, true);
    for (;;) {
        uint64_t failed = atomic_load_explicit(&s->events_failed, memory_order_relaxed), rest;
        round_start(s, &last, 0, true, true);
        gather(&last, NULL, true, s->batch_max);
        finish(&last, false);
        if ((rest = queued(s)) == 0) break;
        if (atomic_load_explicit(&s->events_failed, memory_order_relaxed) > failed) {
            /* The store refused the last batch (out of reach, say): the
             * rest would wait for the same answer, batch after batch, and
             * hold the stop. Counted and said, never silent. */
            atomic_fetch_add_explicit(&s->events_failed, rest, memory_order_relaxed);
            gh_log_error("audit: stopping: %llu more event(s) not stored: the store refused the "
                         "last batch",
                         (unsigned long long)rest);
            break;
        }
    }
    return NULL;
}

void gh_audit_service_set_tool(struct gh_audit_service *s)
{
    s->tool = true;
}

int gh_audit_service_start(struct gh_audit_service *s, struct gh_err *err)
{
    if (gh_store_audit_heads(s->store, head_cb, s, err) != GH_OK) return GH_ERROR;
    /* A tool's chains start with no checkpoint known: the ones it writes
     * are marked dirty as it writes them, and signed at its last round. */
    if (!s->tool) {
        if (gh_store_audit_checkpoints_walk(s->store, NULL, 0, 0, cp_cb, s, err) != GH_OK)
            return GH_ERROR;
        for (uint32_t b = 0; b < NBUCKETS; b++)
            for (struct gh_audit_chain *c = s->buckets[b]; c; c = c->hnext)
                mark_dirty(s, c);
    }
    if (gh_audit_key_load_(s, err) != GH_OK) return GH_ERROR;
    s->last_cp_scan_ns = gh_now_ns();
    if (pthread_create(&s->commit_thread, NULL, committer_main, s) != 0)
        return gh_err_set(err, NULL, 0, 0, "audit: cannot start the committer thread");
    pthread_setname_np(s->commit_thread, "gh-audit-commit");
    s->commit_started = true;
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0)
        return gh_err_set(err, NULL, 0, 0, "audit: cannot start the writer thread");
    pthread_setname_np(s->thread, "gh-audit");
    s->started = true;
    return GH_OK;
}

void gh_audit_stats(struct gh_audit_service *s, struct gh_audit_stats *out)
{
    int64_t since;

    memset(out, 0, sizeof(*out));
    if (s == NULL) return;
    out->events_written = atomic_load_explicit(&s->events_written, memory_order_relaxed);
    out->events_failed = atomic_load_explicit(&s->events_failed, memory_order_relaxed);
    out->batches = atomic_load_explicit(&s->batches, memory_order_relaxed);
    out->batch_events_sum = atomic_load_explicit(&s->batch_events_sum, memory_order_relaxed);
    out->commit_ns_sum = atomic_load_explicit(&s->commit_ns_sum, memory_order_relaxed);
    for (int b = 0; b < GH_AUDIT_NBUCKETS; b++)
        out->commit_buckets[b] = atomic_load_explicit(&s->commit_buckets[b], memory_order_relaxed);
    out->checkpoints = atomic_load_explicit(&s->checkpoints, memory_order_relaxed);
    out->producer_waits = atomic_load_explicit(&s->producer_waits, memory_order_relaxed);
    out->chained_ahead = atomic_load_explicit(&s->chained_ahead, memory_order_relaxed);
    out->queued_ahead = atomic_load_explicit(&s->queued_ahead, memory_order_relaxed);
    out->queue_depth = queued(s);
    since = atomic_load_explicit(&s->oldest_since_us, memory_order_relaxed);
    if (since > 0) {
        struct timespec ts;
        int64_t now;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        out->oldest_pending_us = now > since ? now - since : 0;
    }
}

void gh_audit_service_free(struct gh_audit_service *s)
{
    if (s == NULL) return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        atomic_store(&s->stop, true);
        pthread_cond_broadcast(&s->wake);
        pthread_cond_broadcast(&s->room);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    if (s->commit_started) {
        /* The writer waited for its last batch: the committer is idle. */
        pthread_mutex_lock(&s->commit_mu);
        s->commit_stop = true;
        pthread_cond_broadcast(&s->commit_cv);
        pthread_mutex_unlock(&s->commit_mu);
        pthread_join(s->commit_thread, NULL);
    }
    for (int i = 0; s->workers && i < s->nworkers; i++)
        gh_audit_worker_free_(s->workers[i]);
    if (s->buckets) {
        for (uint32_t b = 0; b < NBUCKETS; b++)
            while (s->buckets[b]) {
                struct gh_audit_chain *c = s->buckets[b];
                s->buckets[b] = c->hnext;
                free(c);
            }
    }
    EVP_PKEY_free(s->key);
    free(s->buckets);
    free(s->workers);
    free(s->subq);
    for (int i = 0; i < 2; i++)
        buf_free(&s->buf[i]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->room);
    pthread_cond_destroy(&s->done);
    pthread_mutex_destroy(&s->commit_mu);
    pthread_cond_destroy(&s->commit_cv);
    free(s);
}
