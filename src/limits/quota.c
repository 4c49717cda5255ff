/* The quota table and its flush (see quota.h). */
#include "limits/quota.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/log.h"
#include "store/store.h"

#define SHARDS     64
#define TENANT_MAX 128
#define PROBE_MAX  32

struct quota_entry {
    bool used;
    uint8_t tlen;
    char tenant[TENANT_MAX + 1];
    int64_t day, month;                                  /* period ids the counts belong to */
    uint64_t base[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS]; /* store totals, last flush */
    uint64_t pend[GH_QUOTA_NMETRICS];                    /* counted here, not yet flushed */
    /* Taken out by a flush whose store call has not answered yet: still
     * counted by admission, so the window of the store call (longer on
     * PostgreSQL) never lets a tenant past its quota. */
    uint64_t flying[GH_QUOTA_NMETRICS];
    /* Counts of the period before a rollover, not yet flushed. */
    bool has_spill;
    int64_t spill_day, spill_month;
    uint64_t spill[GH_QUOTA_NMETRICS];
    uint64_t limits[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS]; /* last seen, for events */
    uint8_t events[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS];  /* bit 0: 80% done, bit 1: 100% */
};

struct quota_shard {
    pthread_mutex_t mu;
    struct quota_entry *slots;
} __attribute__((aligned(64)));

struct flush_row;

struct gh_quota_table {
    struct quota_shard shards[SHARDS];
    uint32_t per_shard; /* slots per shard, a power of two */
    _Atomic uint64_t overflows;
    gh_quota_event_cb on_event; /* set before the flusher starts */
    void *on_event_arg;
    /* Under <flush_mu> (one flush at a time): a batch whose commit went
     * unanswered (UNAVAILABLE: it may have been stored), with its id. Its
     * counts go back into the entries, as for a refused batch, so that
     * admission keeps counting them; and it is sent again, the same rows
     * under the same id, before any other (gh_store_usage_add_once). Once
     * it is stored (then or before), its counts are taken back out of the
     * entries: added once, never twice. */
    pthread_mutex_t flush_mu;
    struct flush_row *doubt;
    size_t ndoubt;
    char doubt_id[33];
};

void gh_quota_on_event(struct gh_quota_table *t, gh_quota_event_cb cb, void *arg)
{
    t->on_event = cb;
    t->on_event_arg = arg;
}

static const char *const metric_names[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS] = {
    {"requests_per_day", "requests_per_month"},
    {"request_bytes_per_day", "request_bytes_per_month"},
    {"response_bytes_per_day", "response_bytes_per_month"},
};

const char *gh_quota_metric_name(int metric, int period)
{
    return metric_names[metric][period];
}

/* ---- Periods (UTC) ------------------------------------------------------ */

static int64_t day_of(int64_t wall_ms)
{
    return wall_ms / 86400000;
}

static int64_t month_of(int64_t wall_ms)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    return (int64_t)(tm.tm_year + 1900) * 12 + tm.tm_mon;
}

static void day_name(int64_t day, char out[11])
{
    time_t secs = (time_t)(day * 86400);
    struct tm tm;
    char buf[48];
    gmtime_r(&secs, &tm);
    snprintf(buf, sizeof(buf), "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000, tm.tm_mon + 1,
             tm.tm_mday);
    memcpy(out, buf, 10);
    out[10] = '\0';
}

static void month_name(int64_t month, char out[11])
{
    char buf[48];
    snprintf(buf, sizeof(buf), "%04d-%02d", (int)(month / 12) % 10000, (int)(month % 12) + 1);
    memcpy(out, buf, 8);
    out[7] = '\0';
}

void gh_quota_period_name(int period, int64_t wall_ms, char out[11])
{
    if (period == GH_QUOTA_DAY)
        day_name(day_of(wall_ms), out);
    else
        month_name(month_of(wall_ms), out);
}

uint64_t gh_quota_period_left_s(int period, int64_t wall_ms)
{
    int64_t end_ms;

    if (period == GH_QUOTA_DAY) {
        end_ms = (day_of(wall_ms) + 1) * 86400000;
    } else {
        int64_t m = month_of(wall_ms) + 1;
        struct tm tm = {0};
        tm.tm_year = (int)(m / 12) - 1900;
        tm.tm_mon = (int)(m % 12);
        tm.tm_mday = 1;
        end_ms = (int64_t)timegm(&tm) * 1000;
    }
    return end_ms > wall_ms ? (uint64_t)((end_ms - wall_ms + 999) / 1000) : 1;
}

static uint64_t period_len_s(int period, int64_t wall_ms)
{
    if (period == GH_QUOTA_DAY) return 86400;
    /* The length of this month. */
    {
        int64_t m = month_of(wall_ms);
        struct tm a = {0}, b = {0};
        a.tm_year = (int)(m / 12) - 1900;
        a.tm_mon = (int)(m % 12);
        a.tm_mday = 1;
        b.tm_year = (int)((m + 1) / 12) - 1900;
        b.tm_mon = (int)((m + 1) % 12);
        b.tm_mday = 1;
        return (uint64_t)(timegm(&b) - timegm(&a));
    }
}

/* ---- The table ---------------------------------------------------------- */

struct gh_quota_table *gh_quota_table_new(uint32_t capacity)
{
    struct gh_quota_table *t;
    uint32_t per = 16;

    while ((uint64_t)per * SHARDS < capacity && per < (1u << 20))
        per <<= 1;
    t = aligned_alloc(64, sizeof(*t));
    if (t == NULL) return NULL;
    memset(t, 0, sizeof(*t));
    t->per_shard = per;
    pthread_mutex_init(&t->flush_mu, NULL);
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&t->shards[i].mu, NULL);
        t->shards[i].slots = calloc(per, sizeof(struct quota_entry));
        if (t->shards[i].slots == NULL) {
            gh_quota_table_free(t);
            return NULL;
        }
    }
    return t;
}

void gh_quota_table_free(struct gh_quota_table *t)
{
    if (t == NULL) return;
    for (int i = 0; i < SHARDS; i++) {
        free(t->shards[i].slots);
        pthread_mutex_destroy(&t->shards[i].mu);
    }
    pthread_mutex_destroy(&t->flush_mu);
    free(t->doubt);
    free(t);
}

uint64_t gh_quota_overflows(const struct gh_quota_table *t)
{
    return atomic_load_explicit(&t->overflows, memory_order_relaxed);
}

/* FNV-1a: tenant ids come from our store or a trusted issuer's tokens, so
 * no keyed hash is needed against chosen collisions. */
static uint64_t hash_tenant(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Finds (or, with <create>, makes) the entry of <tenant> in its locked shard.
 * Entries are never removed: a tenant keeps its slot for the process's life. */
static struct quota_entry *find(struct gh_quota_table *t, struct quota_shard *sh, uint64_t h,
                                const char *tenant, size_t n, bool create)
{
    uint32_t mask = t->per_shard - 1;
    uint32_t i = (uint32_t)(h >> 6) & mask;

    for (uint32_t probe = 0; probe < PROBE_MAX && probe <= mask; probe++, i = (i + 1) & mask) {
        struct quota_entry *e = &sh->slots[i];
        if (!e->used) {
            if (!create) return NULL;
            e->used = true;
            e->tlen = (uint8_t)n;
            memcpy(e->tenant, tenant, n);
            e->tenant[n] = '\0';
            return e;
        }
        if (e->tlen == n && memcmp(e->tenant, tenant, n) == 0) return e;
    }
    return NULL;
}

/* Moves counts of an ended period aside for the flush and starts the new one. */
static void roll(struct quota_entry *e, int64_t day, int64_t month)
{
    if (e->day == day && e->month == month) return;
    if (e->day != 0) {
        bool any = e->pend[0] || e->pend[1] || e->pend[2];
        if (any && e->has_spill && (e->spill_day != e->day || e->spill_month != e->month)) {
            /* Two rollovers within one flush interval: cannot happen with
             * intervals of at most a second; drop rather than misfile. */
            memset(e->spill, 0, sizeof(e->spill));
        }
        if (any) {
            for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
                e->spill[m] += e->pend[m];
            e->spill_day = e->day;
            e->spill_month = e->month;
            e->has_spill = true;
        }
    }
    memset(e->pend, 0, sizeof(e->pend));
    for (int m = 0; m < GH_QUOTA_NMETRICS; m++) {
        if (e->day != day) {
            e->base[m][GH_QUOTA_DAY] = 0;
            e->events[m][GH_QUOTA_DAY] = 0;
        }
        if (e->month != month) {
            e->base[m][GH_QUOTA_MONTH] = 0;
            e->events[m][GH_QUOTA_MONTH] = 0;
        }
    }
    e->day = day;
    e->month = month;
}

static struct quota_shard *shard_of(struct gh_quota_table *t, uint64_t h)
{
    return &t->shards[h & (SHARDS - 1)];
}

bool gh_quota_admit(struct gh_quota_table *t, const char *tenant, size_t n,
                    const struct gh_config_quotas *limits, int64_t wall_ms,
                    struct gh_quota_verdict *v)
{
    uint64_t h = hash_tenant(tenant, n);
    struct quota_shard *sh = shard_of(t, h);
    struct quota_entry *e;
    bool ok = true;

    if (n > TENANT_MAX) n = TENANT_MAX;
    pthread_mutex_lock(&sh->mu);
    e = find(t, sh, h, tenant, n, true);
    if (e == NULL) {
        pthread_mutex_unlock(&sh->mu);
        atomic_fetch_add_explicit(&t->overflows, 1, memory_order_relaxed);
        return true;
    }
    roll(e, day_of(wall_ms), month_of(wall_ms));
    memcpy(e->limits, limits->limit, sizeof(e->limits));
    for (int m = 0; m < GH_QUOTA_NMETRICS && ok; m++)
        for (int p = 0; p < GH_QUOTA_NPERIODS && ok; p++) {
            uint64_t lim = limits->limit[m][p], used;
            if (lim == 0) continue;
            used = e->base[m][p] + e->pend[m] + e->flying[m];
            /* A request needs room for itself; bytes are known only after,
             * so a byte quota stops requests once it is reached. */
            if (m == GH_QUOTA_REQUESTS ? used + 1 > lim : used >= lim) {
                ok = false;
                v->metric = m;
                v->period = p;
                v->limit = lim;
                v->used = used;
            }
        }
    if (ok) e->pend[GH_QUOTA_REQUESTS]++;
    pthread_mutex_unlock(&sh->mu);
    if (!ok) {
        v->retry_after_s = gh_quota_period_left_s(v->period, wall_ms);
        v->window_s = period_len_s(v->period, wall_ms);
    }
    return ok;
}

static void add(struct gh_quota_table *t, const char *tenant, size_t n, int64_t wall_ms,
                const int64_t delta[GH_QUOTA_NMETRICS])
{
    uint64_t h = hash_tenant(tenant, n);
    struct quota_shard *sh = shard_of(t, h);
    struct quota_entry *e;

    if (n > TENANT_MAX) n = TENANT_MAX;
    pthread_mutex_lock(&sh->mu);
    e = find(t, sh, h, tenant, n, true);
    if (e != NULL) {
        roll(e, day_of(wall_ms), month_of(wall_ms));
        for (int m = 0; m < GH_QUOTA_NMETRICS; m++) {
            if (delta[m] < 0 && e->pend[m] < (uint64_t)-delta[m])
                e->pend[m] = 0;
            else
                e->pend[m] += (uint64_t)delta[m];
        }
    }
    pthread_mutex_unlock(&sh->mu);
}

bool gh_quota_usage(struct gh_quota_table *t, const char *tenant, size_t n, int64_t wall_ms,
                    uint64_t used[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS],
                    uint64_t limit[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS])
{
    uint64_t h = hash_tenant(tenant, n);
    struct quota_shard *sh = shard_of(t, h);
    struct quota_entry *e;
    int64_t ids[GH_QUOTA_NPERIODS] = {day_of(wall_ms), month_of(wall_ms)};

    if (n > TENANT_MAX) n = TENANT_MAX;
    pthread_mutex_lock(&sh->mu);
    e = find(t, sh, h, tenant, n, false);
    if (e != NULL) {
        memcpy(limit, e->limits, sizeof(e->limits));
        for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
            for (int p = 0; p < GH_QUOTA_NPERIODS; p++) {
                /* A period that ended since the entry was last touched has
                 * no usage yet (roll() would start it at 0). */
                int64_t cur = p == GH_QUOTA_DAY ? e->day : e->month;
                used[m][p] = cur == ids[p] ? e->base[m][p] + e->pend[m] : 0;
            }
    }
    pthread_mutex_unlock(&sh->mu);
    return e != NULL;
}

void gh_quota_unadmit(struct gh_quota_table *t, const char *tenant, size_t n, int64_t wall_ms)
{
    const int64_t d[GH_QUOTA_NMETRICS] = {-1, 0, 0};
    add(t, tenant, n, wall_ms, d);
}

void gh_quota_add_bytes(struct gh_quota_table *t, const char *tenant, size_t n, uint64_t in,
                        uint64_t out, int64_t wall_ms)
{
    const int64_t d[GH_QUOTA_NMETRICS] = {0, (int64_t)(in & INT64_MAX), (int64_t)(out & INT64_MAX)};
    add(t, tenant, n, wall_ms, d);
}

/* ---- Flush -------------------------------------------------------------- */

/* One row to write: which entry and which of its periods. */
struct flush_row {
    struct gh_store_usage u;            /* the counts, then the totals */
    uint64_t counts[GH_QUOTA_NMETRICS]; /* the counts */
    uint32_t shard, slot;
    int period; /* GH_QUOTA_DAY / MONTH */
    int64_t id; /* the period id it belongs to */
    bool spill; /* counts of an ended period */
};

struct flush_batch {
    struct flush_row *rows;
    size_t n, cap;
};

static int batch_push(struct flush_batch *b, const struct quota_entry *e, uint32_t shard,
                      uint32_t slot, int period, int64_t id, const uint64_t c[GH_QUOTA_NMETRICS],
                      bool spill)
{
    struct flush_row *r;

    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        struct flush_row *rows = realloc(b->rows, cap * sizeof(*rows));
        if (rows == NULL) return GH_ERROR;
        b->rows = rows;
        b->cap = cap;
    }
    r = &b->rows[b->n++];
    memset(r, 0, sizeof(*r));
    /* gh_quota_admit counts only tenants whose ids fit the store's column. */
    memcpy(r->u.tenant_id, e->tenant, e->tlen < sizeof(r->u.tenant_id) ? e->tlen + 1u : 1u);
    r->u.tenant_id[sizeof(r->u.tenant_id) - 1] = '\0';
    if (period == GH_QUOTA_DAY)
        day_name(id, r->u.period);
    else
        month_name(id, r->u.period);
    r->u.requests = c[GH_QUOTA_REQUESTS];
    r->u.request_bytes = c[GH_QUOTA_REQUEST_BYTES];
    r->u.response_bytes = c[GH_QUOTA_RESPONSE_BYTES];
    memcpy(r->counts, c, sizeof(r->counts));
    r->shard = shard;
    r->slot = slot;
    r->period = period;
    r->id = id;
    r->spill = spill;
    return GH_OK;
}

/* Records the 80% / 100% events an entry's new totals crossed. Runs with the
 * shard unlocked (the store call may block); <e> is re-read under lock by
 * the caller. */
static void record_events(struct gh_quota_table *t, struct gh_store *st, const struct flush_row *r,
                          const uint64_t limits[GH_QUOTA_NMETRICS], uint8_t done[GH_QUOTA_NMETRICS])
{
    const uint64_t totals[GH_QUOTA_NMETRICS] = {r->u.requests, r->u.request_bytes,
                                                r->u.response_bytes};
    static const uint32_t thresholds[2] = {80, 100};

    for (int m = 0; m < GH_QUOTA_NMETRICS; m++) {
        if (limits[m] == 0) continue;
        for (int k = 0; k < 2; k++) {
            struct gh_store_limit_event ev;
            struct gh_err err;
            bool inserted = false;
            /* totals * 100 >= limit * threshold, without overflow */
            if (done[m] & (1u << k)) continue;
            if ((unsigned __int128)totals[m] * 100 < (unsigned __int128)limits[m] * thresholds[k])
                continue;
            memset(&ev, 0, sizeof(ev));
            snprintf(ev.tenant_id, sizeof(ev.tenant_id), "%s", r->u.tenant_id);
            snprintf(ev.period, sizeof(ev.period), "%s", r->u.period);
            snprintf(ev.metric, sizeof(ev.metric), "%s", metric_names[m][r->period]);
            ev.threshold = thresholds[k];
            ev.value = totals[m];
            ev.limit = limits[m];
            if (gh_store_limit_event_record(st, &ev, &inserted, &err) != GH_OK) {
                gh_log_warn("quota: cannot record an event for tenant %s: %s", ev.tenant_id,
                            err.msg);
                continue;
            }
            done[m] |= (uint8_t)(1u << k);
            if (inserted) {
                gh_log_warn("quota: tenant %s reached %u%% of %s for %s (%llu of %llu)",
                            ev.tenant_id, ev.threshold, ev.metric, ev.period,
                            (unsigned long long)ev.value, (unsigned long long)ev.limit);
                if (t->on_event) t->on_event(t->on_event_arg, &ev);
            }
        }
    }
}

/* The counts of day row <r> are no longer in flight (answered either way). */
static void land(struct quota_entry *e, const struct flush_row *r)
{
    for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
        e->flying[m] -= e->flying[m] < r->counts[m] ? e->flying[m] : r->counts[m];
}

/* Takes the counts of day row <r> of a batch in doubt, now stored, back
 * out of <e>: out of the counts not flushed yet, where they were put back,
 * or of the ended day's, where a rollover since moved them. */
static void take_back(struct quota_entry *e, const struct flush_row *r, bool current)
{
    uint64_t *from = NULL;

    if (current && !r->spill)
        from = e->pend;
    else if (e->has_spill && e->spill_day == r->id)
        from = e->spill;
    for (int m = 0; from != NULL && m < GH_QUOTA_NMETRICS; m++)
        from[m] -= from[m] < r->counts[m] ? from[m] : r->counts[m];
}

/* Steps 2 and 3 of a flush for batch <b> under <batch_id>: one store
 * transaction, then the totals into the entries, or, when it failed, the
 * counts back into them (UNAVAILABLE too: the caller keeps such a batch in
 * doubt). <resolving>: <b> is a batch in doubt sent again, whose counts are
 * in the entries already: taken back out when it is stored, left there
 * otherwise. */
static int commit_batch(struct gh_quota_table *t, struct gh_store *st, struct flush_batch *b,
                        const char *batch_id, bool resolving, struct gh_err *err)
{
    int rc = GH_OK;

    /* 2. One transaction for the lot; the store writes the totals back. */
    {
        struct gh_store_usage *rows = malloc(b->n * sizeof(*rows));
        if (rows == NULL) {
            rc = gh_err_set(err, NULL, 0, 0, "quota: out of memory");
        } else {
            for (size_t i = 0; i < b->n; i++)
                rows[i] = b->rows[i].u;
            rc = gh_store_usage_add_once(st, batch_id, rows, b->n, err);
            for (size_t i = 0; rc == GH_OK && i < b->n; i++)
                b->rows[i].u = rows[i];
            free(rows);
        }
    }

    /* 3. Totals back into the entries (or, on failure, the counts back in). */
    for (size_t i = 0; i < b->n; i++) {
        struct flush_row *r = &b->rows[i];
        struct quota_shard *sh = &t->shards[r->shard];
        struct quota_entry *e = &sh->slots[r->slot];
        uint64_t limits[GH_QUOTA_NMETRICS];
        uint8_t done[GH_QUOTA_NMETRICS];
        bool current;

        pthread_mutex_lock(&sh->mu);
        current = (r->period == GH_QUOTA_DAY ? e->day : e->month) == r->id;
        if (rc != GH_OK) {
            if (!resolving && r->period == GH_QUOTA_DAY && !r->spill) land(e, r);
            /* Put the counts back once (the day row carries them). */
            if (resolving) {
                /* They are there already. */
            } else if (r->period == GH_QUOTA_DAY && current && !r->spill) {
                e->pend[0] += r->u.requests;
                e->pend[1] += r->u.request_bytes;
                e->pend[2] += r->u.response_bytes;
            } else if (r->period == GH_QUOTA_DAY && (!e->has_spill || e->spill_day == r->id)) {
                /* Counts of an ended day (a spill, or a day that ended
                 * during this flush) go back aside for the next flush too;
                 * they used to be dropped. A different spill already
                 * waiting means two ended days at once: dropped, as in
                 * roll(). */
                e->spill[0] += r->u.requests;
                e->spill[1] += r->u.request_bytes;
                e->spill[2] += r->u.response_bytes;
                e->spill_day = r->id;
                e->spill_month = month_of(r->id * 86400000);
                e->has_spill = true;
            }
            pthread_mutex_unlock(&sh->mu);
            continue;
        }
        if (resolving && r->period == GH_QUOTA_DAY) take_back(e, r, current);
        if (!current) {
            pthread_mutex_unlock(&sh->mu);
            continue;
        }
        e->base[GH_QUOTA_REQUESTS][r->period] = r->u.requests;
        e->base[GH_QUOTA_REQUEST_BYTES][r->period] = r->u.request_bytes;
        e->base[GH_QUOTA_RESPONSE_BYTES][r->period] = r->u.response_bytes;
        for (int m = 0; m < GH_QUOTA_NMETRICS; m++) {
            limits[m] = e->limits[m][r->period];
            done[m] = e->events[m][r->period];
        }
        pthread_mutex_unlock(&sh->mu);

        record_events(t, st, r, limits, done);

        pthread_mutex_lock(&sh->mu);
        if ((r->period == GH_QUOTA_DAY ? e->day : e->month) == r->id)
            for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
                e->events[m][r->period] |= done[m];
        pthread_mutex_unlock(&sh->mu);
    }
    /* Stored: the totals above hold the counts now (both periods' rows
     * were written back before this), so they leave the flight. */
    for (size_t i = 0; rc == GH_OK && !resolving && i < b->n; i++) {
        struct flush_row *r = &b->rows[i];
        struct quota_shard *sh = &t->shards[r->shard];
        if (r->period != GH_QUOTA_DAY || r->spill) continue;
        pthread_mutex_lock(&sh->mu);
        land(&sh->slots[r->slot], r);
        pthread_mutex_unlock(&sh->mu);
    }
    return rc;
}

/* A random batch id: 32 hex digits. */
static void batch_id_new(char id[33])
{
    uint8_t r[16];
    static const char hex[] = "0123456789abcdef";

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(r, &ts, sizeof(r) < sizeof(ts) ? sizeof(r) : sizeof(ts));
    }
    for (size_t i = 0; i < sizeof(r); i++) {
        id[2 * i] = hex[r[i] >> 4];
        id[2 * i + 1] = hex[r[i] & 15];
    }
    id[32] = '\0';
}

int gh_quota_flush(struct gh_quota_table *t, struct gh_store *st, int64_t wall_ms,
                   struct gh_err *err)
{
    struct flush_batch b = {0};
    char id[33];
    int rc = GH_OK;
    (void)wall_ms;

    pthread_mutex_lock(&t->flush_mu);
    if (t->ndoubt > 0) {
        struct flush_batch d = {t->doubt, t->ndoubt, t->ndoubt};
        rc = commit_batch(t, st, &d, t->doubt_id, true, err);
        /* Still unanswered: its counts and the new ones wait in the
         * entries (a batch of them now could add them twice). */
        if (rc == GH_STORE_UNAVAILABLE) goto out;
        free(t->doubt);
        t->doubt = NULL;
        t->ndoubt = 0;
        rc = GH_OK;
    }

    /* 1. Take the counts out, shard by shard. */
    for (uint32_t s = 0; s < SHARDS && rc == GH_OK; s++) {
        struct quota_shard *sh = &t->shards[s];
        pthread_mutex_lock(&sh->mu);
        for (uint32_t i = 0; i < t->per_shard && rc == GH_OK; i++) {
            struct quota_entry *e = &sh->slots[i];
            static const uint64_t no_limits[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS];
            bool any;
            if (!e->used) continue;
            any = e->pend[0] || e->pend[1] || e->pend[2];
            if (e->has_spill) {
                if (batch_push(&b, e, s, i, GH_QUOTA_DAY, e->spill_day, e->spill, true) ||
                    batch_push(&b, e, s, i, GH_QUOTA_MONTH, e->spill_month, e->spill, true)) {
                    rc = GH_ERROR;
                    break;
                }
                memset(e->spill, 0, sizeof(e->spill));
                e->has_spill = false;
            }
            /* Tenants with limits get their totals refreshed even without
             * traffic here: another node may be counting for them. */
            if (!any && memcmp(e->limits, no_limits, sizeof(no_limits)) == 0) continue;
            if (batch_push(&b, e, s, i, GH_QUOTA_DAY, e->day, e->pend, false) ||
                batch_push(&b, e, s, i, GH_QUOTA_MONTH, e->month, e->pend, false)) {
                rc = GH_ERROR;
                break;
            }
            for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
                e->flying[m] += e->pend[m];
            memset(e->pend, 0, sizeof(e->pend));
        }
        pthread_mutex_unlock(&sh->mu);
    }
    if (rc != GH_OK) {
        gh_err_set(err, NULL, 0, 0, "quota: out of memory");
        goto out;
    }
    if (b.n == 0) goto out;

    batch_id_new(id);
    rc = commit_batch(t, st, &b, id, false, err);
    if (rc == GH_STORE_UNAVAILABLE) {
        t->doubt = b.rows;
        t->ndoubt = b.n;
        memcpy(t->doubt_id, id, sizeof(id));
        b.rows = NULL;
    }
out:
    pthread_mutex_unlock(&t->flush_mu);
    free(b.rows);
    return rc;
}

struct preload_ctx {
    struct gh_quota_table *t;
    int period;
    int64_t day, month;
};

static int preload_row(const struct gh_store_usage *u, void *arg)
{
    struct preload_ctx *pc = arg;
    size_t n = strlen(u->tenant_id);
    uint64_t h = hash_tenant(u->tenant_id, n);
    struct quota_shard *sh = shard_of(pc->t, h);
    struct quota_entry *e;

    pthread_mutex_lock(&sh->mu);
    e = find(pc->t, sh, h, u->tenant_id, n, true);
    if (e != NULL) {
        roll(e, pc->day, pc->month);
        e->base[GH_QUOTA_REQUESTS][pc->period] = u->requests;
        e->base[GH_QUOTA_REQUEST_BYTES][pc->period] = u->request_bytes;
        e->base[GH_QUOTA_RESPONSE_BYTES][pc->period] = u->response_bytes;
    }
    pthread_mutex_unlock(&sh->mu);
    return GH_OK;
}

int gh_quota_preload(struct gh_quota_table *t, struct gh_store *st, int64_t wall_ms,
                     struct gh_err *err)
{
    struct preload_ctx pc = {t, GH_QUOTA_DAY, day_of(wall_ms), month_of(wall_ms)};
    char name[11];

    gh_quota_period_name(GH_QUOTA_DAY, wall_ms, name);
    if (gh_store_usage_load(st, name, preload_row, &pc, err) != GH_OK) return GH_ERROR;
    pc.period = GH_QUOTA_MONTH;
    gh_quota_period_name(GH_QUOTA_MONTH, wall_ms, name);
    return gh_store_usage_load(st, name, preload_row, &pc, err);
}
