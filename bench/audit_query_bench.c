/* The audit log's filtered queries over a large store (issue 5: "a filtered
 * query p99 <= 20 ms over 5 million events"): fills a SQLite store with
 * chained events over many tenants through the store's audit_append, then
 * times pages of gh_store_audit_query as GET /v1/audit asks for them
 * (50 events, newest first) under the filters a caller would use.
 *
 *   build/audit_query_bench [--db PATH | --postgres URL [--reuse]] [--events N]
 *                           [--tenants T] [--queries Q] [--fill-only]
 *
 * With --db, an existing file is reused as it is (filling 5 M events takes
 * minutes); without, a temporary store is made and removed. With
 * --postgres, that database (initialised by `gatehouse postgres init`, with
 * no audit events yet) is filled and queried, a tenant's queries under its
 * row-level security as the gateway runs them; its events are left there
 * for the caller to drop. --reuse queries a database filled by an earlier
 * run with the same --events and --tenants (bench/pg_audit_query.sh runs
 * ANALYZE in between, as autovacuum would after a fill); --fill-only stops
 * after the fill. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/chain.h"
#include "audit/event.h"
#include "store/store.h"

#define BATCH 2000
#define PAGE  50

static const char *const ACTIONS[] = {"http.request",  "auth.denied",   "key.create",
                                      "key.revoke",    "tenant.create", "quota.threshold",
                                      "config.reload", "token.issue"};
#define NACTIONS (sizeof(ACTIONS) / sizeof(ACTIONS[0]))

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
    /* xorshift64*: reproducible runs. */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void tenant_name(unsigned i, char *out, size_t size)
{
    snprintf(out, size, "tn_bench%012u", i);
}

struct head {
    uint64_t seq;
    uint8_t hash[32];
};

static int fill(struct gh_store *st, unsigned long long events, unsigned tenants, int64_t t0_us)
{
    struct gh_store_audit_row *rows = calloc(BATCH, sizeof(*rows));
    struct head *heads = calloc(tenants + 1, sizeof(*heads));
    struct gh_audit_event ev;
    struct gh_err err = {0};
    double t = now_ms();
    unsigned long long done = 0;

    if (rows == NULL || heads == NULL) return -1;
    while (done < events) {
        size_t n = 0;
        for (; n < BATCH && done < events; n++, done++) {
            uint8_t rnd[10];
            uint64_t r = next_rand();
            unsigned ti = (unsigned)(r % (tenants + 1)); /* tenants == index: system */
            char tenant[32], buf[128];
            struct head *h = &heads[ti];
            struct gh_store_audit_row *row = &rows[n];

            for (int i = 0; i < 10; i++)
                rnd[i] = (uint8_t)(next_rand() >> 24);
            gh_audit_event_init(&ev, t0_us + (int64_t)done * 1000, rnd);
            if (ti < tenants) {
                tenant_name(ti, tenant, sizeof(tenant));
                GH_AUDIT_SET(&ev, tenant, gh_str_cstr(tenant));
            }
            snprintf(buf, sizeof(buf), "key:Bench%011llu", (unsigned long long)(r >> 20) % 40);
            GH_AUDIT_SET(&ev, actor, gh_str_cstr(buf));
            GH_AUDIT_SET(&ev, action, gh_str_cstr(ACTIONS[(r >> 8) % NACTIONS]));
            snprintf(buf, sizeof(buf), "tenants/%s/keys/K%llu", ti < tenants ? tenant : "system",
                     (unsigned long long)(r >> 30) % 20);
            GH_AUDIT_SET(&ev, resource, gh_str_cstr(buf));
            ev.outcome = (enum gh_audit_outcome)(1 + (r >> 40) % 3);
            GH_AUDIT_SET(&ev, method, GH_STR_LIT("GET"));
            GH_AUDIT_SET(&ev, path, GH_STR_LIT("/orders/123"));
            ev.status = ev.outcome == GH_AUDIT_SUCCESS  ? 200
                        : ev.outcome == GH_AUDIT_DENIED ? 403
                                                        : 502;
            snprintf(buf, sizeof(buf), "req-%016llx", (unsigned long long)done);
            GH_AUDIT_SET(&ev, request_id, gh_str_cstr(buf));
            GH_AUDIT_SET(&ev, client_ip, GH_STR_LIT("10.1.2.3"));
            GH_AUDIT_SET(&ev, user_agent, GH_STR_LIT("bench/1.0"));
            ev.latency_us = r % 5000;
            gh_audit_params_begin(&ev);
            gh_audit_params_add(&ev, GH_STR_LIT("page"), GH_STR_LIT("2"), 4);
            gh_audit_params_end(&ev);

            if (gh_audit_chain_event(&ev, h->seq + 1, h->hash, row) != GH_OK) {
                fprintf(stderr, "an event does not fit its canonical form\n");
                free(rows);
                free(heads);
                return -1;
            }
            h->seq++;
            memcpy(h->hash, ev.hash, 32);
        }
        if (gh_store_audit_append(st, rows, n, NULL, 0, &err) != GH_OK) {
            fprintf(stderr, "audit_append: %s\n", err.msg);
            free(rows);
            free(heads);
            return -1;
        }
        if (done % 500000 < BATCH)
            fprintf(stderr, "  %llu events, %.0f/s\n", done, done / ((now_ms() - t) / 1e3));
    }
    fprintf(stderr, "filled %llu events in %.1f s\n", done, (now_ms() - t) / 1e3);
    free(rows);
    free(heads);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum kind {
    K_TENANT,
    K_TENANT_ACTION,
    K_TENANT_OUTCOME_TIME,
    K_ACTOR,
    K_REQUEST_ID,
    K_TENANT_PAGE2,
    K_TIME,
    K_ACTION_OUTCOME,
    K_TENANT_DEEP,
    NKINDS
};
static const char *const KIND_NAMES[] = {"tenant",
                                         "tenant+action",
                                         "tenant+outcome+time range",
                                         "tenant+actor",
                                         "request_id",
                                         "tenant, 2nd page",
                                         "time range (operator)",
                                         "action+outcome (operator)",
                                         "tenant, deep page"};

int main(int argc, char **argv)
{
    const char *db = NULL, *pg_url = NULL;
    bool reuse = false, fill_only = false;
    unsigned long long events = 5000000;
    unsigned tenants = 50, queries = 2000;
    char tmpdir[] = "/tmp/audit-bench-XXXXXX", path[512];
    struct gh_store_params params = {0};
    struct gh_store *st = NULL;
    struct gh_err err = {0};
    bool made = false;
    const int64_t t0_us = INT64_C(1763000000000000);

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
            db = argv[++i];
        else if (strcmp(argv[i], "--postgres") == 0 && i + 1 < argc)
            pg_url = argv[++i];
        else if (strcmp(argv[i], "--reuse") == 0)
            reuse = true;
        else if (strcmp(argv[i], "--fill-only") == 0)
            fill_only = true;
        else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
            events = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--tenants") == 0 && i + 1 < argc)
            tenants = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--queries") == 0 && i + 1 < argc)
            queries = (unsigned)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr,
                    "usage: %s [--db PATH | --postgres URL [--reuse]] [--events N] "
                    "[--tenants T] [--queries Q] [--fill-only]\n",
                    argv[0]);
            return 2;
        }
    }
    if (tenants == 0 || queries == 0 || (db != NULL && pg_url != NULL) ||
        (reuse && pg_url == NULL)) {
        fprintf(stderr,
                "%s: --tenants and --queries must be above 0, --db and --postgres exclude "
                "each other, --reuse needs --postgres\n",
                argv[0]);
        return 2;
    }
    if (pg_url != NULL) {
        /* A database is the caller's: never its URL in the output (it may
         * hold a password). */
        made = !reuse;
        db = "the PostgreSQL database";
        params.postgres_url = pg_url;
    } else {
        if (db == NULL) {
            if (mkdtemp(tmpdir) == NULL) return 2;
            snprintf(path, sizeof(path), "%s/audit.db", tmpdir);
            db = path;
        }
        struct stat sb;
        made = stat(db, &sb) != 0;
        params.sqlite_path = db;
    }
    if (gh_store_open(&params, &st, &err) != GH_OK ||
        gh_store_migrate(st, NULL, NULL, &err) != GH_OK) {
        fprintf(stderr, "store: %s\n", err.msg);
        return 2;
    }
    if (made) {
        fprintf(stderr, "filling %s: %llu events over %u tenants and system\n", db, events,
                tenants);
        if (fill(st, events, tenants, t0_us) != 0) return 2;
    } else {
        fprintf(stderr, "reusing %s as it is\n", db);
    }
    if (fill_only) {
        gh_store_close(st);
        return 0;
    }

    struct gh_store_audit_row *rows = calloc(PAGE, sizeof(*rows));
    double *lat[NKINDS], all_sum = 0;
    double *all = calloc((size_t)queries * NKINDS, sizeof(double));
    size_t nall = 0;
    unsigned long long returned = 0;
    for (int k = 0; k < NKINDS; k++)
        lat[k] = calloc(queries, sizeof(double));
    for (unsigned q = 0; q < queries; q++) {
        for (int k = 0; k < NKINDS; k++) {
            struct gh_store_audit_filter f;
            char tenant[32], actor[64], reqid[64];
            uint64_t r = next_rand();
            struct gh_store_audit_pos after, *afterp = NULL;
            size_t count = 0;
            bool more = false;
            memset(&f, 0, sizeof(f));
            tenant_name((unsigned)(r % tenants), tenant, sizeof(tenant));
            f.oldest_first = (r >> 50) & 1;
            int64_t span = (int64_t)events * 1000,
                    from = t0_us + (int64_t)((r >> 8) % (uint64_t)span);
            switch (k) {
            case K_TENANT: f.tenant_id = tenant; break;
            case K_TENANT_ACTION:
                f.tenant_id = tenant;
                f.action = ACTIONS[(r >> 20) % NACTIONS];
                break;
            case K_TENANT_OUTCOME_TIME:
                f.tenant_id = tenant;
                f.outcome = "denied";
                f.from_us = from;
                f.to_us = from + span / 10;
                break;
            case K_ACTOR:
                snprintf(actor, sizeof(actor), "key:Bench%011llu",
                         (unsigned long long)(r >> 20) % 40);
                f.actor = actor;
                f.tenant_id = tenant;
                break;
            case K_REQUEST_ID:
                snprintf(reqid, sizeof(reqid), "req-%016llx",
                         (unsigned long long)((r >> 4) % events));
                f.request_id = reqid;
                break;
            case K_TENANT_PAGE2: f.tenant_id = tenant; break;
            case K_TIME:
                f.from_us = from;
                f.to_us = from + span / 100;
                break;
            case K_ACTION_OUTCOME:
                f.action = ACTIONS[(r >> 20) % NACTIONS];
                f.outcome = "failed";
                break;
            case K_TENANT_DEEP: f.tenant_id = tenant; break;
            }
            if (k == K_TENANT_DEEP) {
                /* A page from the middle of the tenant's chain: after a row
                 * of that tenant at a random time (found by a query with a
                 * time range, not timed). */
                struct gh_store_audit_filter g = f;
                g.from_us = from;
                g.oldest_first = true;
                if (gh_store_audit_query(st, &g, NULL, 1, rows, &count, &more, &err) != GH_OK)
                    goto fail;
                if (count) {
                    after.time_us = rows[0].time_us;
                    after.rowid = rows[0].rowid;
                    afterp = &after;
                }
            }
            if (k == K_TENANT_PAGE2) {
                /* The second page: after the first page's last row. */
                if (gh_store_audit_query(st, &f, NULL, PAGE, rows, &count, &more, &err) != GH_OK)
                    goto fail;
                if (count) {
                    after.time_us = rows[count - 1].time_us;
                    after.rowid = rows[count - 1].rowid;
                    afterp = &after;
                }
            }
            double t = now_ms();
            if (gh_store_audit_query(st, &f, afterp, PAGE, rows, &count, &more, &err) != GH_OK)
                goto fail;
            double d = now_ms() - t;
            lat[k][q] = d;
            all[nall++] = d;
            all_sum += d;
            returned += count;
        }
    }
    printf("audit_query_bench: store=%s, %llu events, %u tenants + system, %u queries of each "
           "kind, pages of %d\n",
           gh_store_engine(st), events, tenants, queries, PAGE);
    printf("%-28s %9s %9s %9s\n", "filter", "p50 ms", "p99 ms", "max ms");
    for (int k = 0; k < NKINDS; k++) {
        qsort(lat[k], queries, sizeof(double), cmp_double);
        printf("%-28s %9.3f %9.3f %9.3f\n", KIND_NAMES[k], lat[k][queries / 2],
               lat[k][(size_t)(queries * 0.99)], lat[k][queries - 1]);
    }
    qsort(all, nall, sizeof(double), cmp_double);
    printf("%-28s %9.3f %9.3f %9.3f  (mean %.3f, %.1f rows per page)\n", "all", all[nall / 2],
           all[(size_t)(nall * 0.99)], all[nall - 1], all_sum / nall, (double)returned / nall);
    gh_store_close(st);
    if (db == path) {
        char wal[600];
        unlink(path);
        snprintf(wal, sizeof(wal), "%s-wal", path);
        unlink(wal);
        snprintf(wal, sizeof(wal), "%s-shm", path);
        unlink(wal);
        rmdir(tmpdir);
    }
    return 0;
fail:
    fprintf(stderr, "audit_query: %s\n", err.msg);
    return 2;
}
