/* Benchmark of the audit verifier (src/audit/verify.c): builds N events
 * (default 1,000,000) over 10 tenant chains and the system chain, with a
 * signed checkpoint every 1,000 events per chain, in a store (batches of
 * 1,000 through gh_store_audit_append, durable commits, as the audit writer
 * does), then times gh_audit_verify over the whole store, RUNS times
 * (default 2: the first run may read from disk, the second from the page
 * cache). RUNS 0 only builds the store and keeps it (its path is printed),
 * e.g. for `gatehouse audit verify` or a profiler; it is also how
 * bench/pg_audit.sh times the append alone.
 *
 * The store is a temporary SQLite file under DIR, or with --postgres URL
 * that PostgreSQL database, which must be initialised (`gatehouse postgres
 * init`) and hold none of the bench's chains (a fresh database): the
 * bench's events are left there for the caller to drop.
 *
 *   make bench-audit-verify
 *   build/audit_verify_bench [--postgres URL] [--service] [--batch K] [N] [DIR] [RUNS]
 *
 * --batch K (1..1,000) appends K events per call instead of 1,000: a light
 * load's small batches, where the append's fixed cost (its round trips on
 * PostgreSQL, the commit) is most of it.
 *
 * Prints "append store=ENGINE events=N batch=K seconds=S events_per_s=R ...
 * store_cpu_us_per_event=C" (C: this thread's CPU time in the store call
 * per event, which the host's changing speed and the disk's fsync move far
 * less than the rates) and one
 * "verify run=K events=N seconds=S events_per_s=R" line per run.
 *
 * With --service, the N events go through the gateway's own audit service
 * instead of the loop above: made one by one into a worker's ring, as a
 * data-plane worker makes them, and taken from there by the writer thread,
 * which chains and signs them while its committer thread stores the batch
 * before (batches of up to 1,000, queue of 65,536). The clock runs from the
 * first event made to the last one committed; it prints "service
 * store=ENGINE events=N seconds=S events_per_s=R batches=B mean_batch=M
 * producer_waits=W failed=F". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/chain.h"
#include "bench_event.h"
#include "audit/checkpoint.h"
#include "audit/verify.h"
#include "core/clock.h"

#define CHAINS 11
#define BATCH  1000
#define EVERY  1000

static void die(const char *what, const struct gh_err *err)
{
    fprintf(stderr, "audit_verify_bench: %s: %s\n", what, err->msg);
    exit(1);
}

static void on_report(const struct gh_audit_chain_report *r, void *arg)
{
    uint64_t *events = arg;

    *events += r->events;
    if (r->problem != GH_AUDIT_INTACT)
        fprintf(stderr, "audit_verify_bench: chain %s seq %" PRIu64 ": %s\n", r->chain, r->seq,
                r->reason);
}

/* The N events through the audit service (--service). */
static void run_service(struct gh_store *st, uint64_t n, char chains[][32], const char *engine)
{
    static const char yaml[] = "listen: [{address: \"127.0.0.1:8080\"}]\n"
                               "upstreams: {app: {endpoints: [\"127.0.0.1:9000\"]}}\n"
                               "routes: [{path: /, upstream: app}]\n"
                               "audit: {checkpoint_every: 1000, batch_max: 1000, "
                               "queue_size: 65536}\n";
    struct gh_config *cfg = NULL;
    struct gh_audit_service *s;
    struct gh_audit_worker *aw;
    struct gh_audit_stats stats;
    struct gh_err err = {0};
    uint64_t t0;

    if (gh_config_load_buffer("bench.yaml", yaml, sizeof(yaml) - 1, &cfg, &err) != GH_OK)
        die("config", &err);
    s = gh_audit_service_new(cfg, st, 1, &err);
    if (s == NULL || gh_audit_service_start(s, &err) != GH_OK) die("audit service", &err);
    aw = gh_audit_worker_of(s, 0);
    t0 = gh_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        bench_event(gh_audit_worker_slot(aw), i, chains[i % CHAINS]);
        gh_audit_worker_push(aw, false);
    }
    do {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
        gh_audit_stats(s, &stats);
    } while (stats.events_written + stats.events_failed < n);
    double secs = (double)(gh_now_ns() - t0) / 1e9;
    printf("service store=%s events=%" PRIu64 " seconds=%.2f events_per_s=%.0f batches=%" PRIu64
           " mean_batch=%.1f mean_commit_ms=%.2f producer_waits=%" PRIu64 " failed=%" PRIu64 "\n",
           engine, n, secs, (double)n / secs, stats.batches,
           (double)stats.batch_events_sum / (double)(stats.batches ? stats.batches : 1),
           (double)stats.commit_ns_sum / 1e6 / (double)(stats.batches ? stats.batches : 1),
           stats.producer_waits, stats.events_failed);
    fflush(stdout);
    gh_audit_service_free(s);
    gh_config_free(cfg);
}

static int count_row(const struct gh_store_audit_row *row, void *arg)
{
    (*(uint64_t *)arg)++;
    return GH_OK;
}

int main(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL}, *pg_url = NULL;
    int npos = 0;
    bool service = false;
    size_t batch = BATCH;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--postgres") == 0 && i + 1 < argc) {
            pg_url = argv[++i];
        } else if (strcmp(argv[i], "--service") == 0) {
            service = true;
        } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            char *end;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end != '\0' || v < 1 || v > BATCH) {
                fprintf(stderr, "audit_verify_bench: --batch must be 1..%d\n", BATCH);
                return 2;
            }
            batch = v;
        } else if (argv[i][0] != '-' && npos < 3) {
            pos[npos++] = argv[i];
        } else {
            fprintf(stderr,
                    "usage: audit_verify_bench [--postgres URL] [--service] [--batch K] [N] "
                    "[DIR] [RUNS]\n");
            return 2;
        }
    }
    uint64_t n = pos[0] ? strtoull(pos[0], NULL, 10) : 1000000;
    const char *base = pos[1] ? pos[1] : "/tmp";
    int runs = pos[2] ? atoi(pos[2]) : 2;
    char dir[256], path[300], chains[CHAINS][32], sql[340];
    struct gh_store_params params = {0};
    struct gh_store *st;
    struct gh_store_audit_key key;
    struct gh_store_audit_row *rows = calloc(BATCH, sizeof(*rows));
    struct gh_store_audit_checkpoint cps[BATCH];
    uint8_t prev[CHAINS][32] = {{0}};
    uint64_t seq[CHAINS] = {0};
    struct gh_err err = {0};
    EVP_PKEY *pk;
    uint64_t t0;

    if (rows == NULL) return 1;
    if (pg_url != NULL) {
        params.postgres_url = pg_url;
    } else {
        snprintf(dir, sizeof(dir), "%s/gh_audit_bench_XXXXXX", base);
        if (mkdtemp(dir) == NULL) return 1;
        snprintf(path, sizeof(path), "%s/gatehouse.db", dir);
        params.sqlite_path = path;
    }
    if (gh_store_open(&params, &st, &err) != GH_OK || gh_store_migrate(st, NULL, NULL, &err))
        die("open", &err);
    if (gh_audit_key_generate(&key, &err) != GH_OK || gh_store_audit_key_insert(st, &key, &err))
        die("key", &err);
    pk = gh_audit_key_load(key.private_pem, true, &err);
    for (int c = 0; c < CHAINS - 1; c++)
        snprintf(chains[c], sizeof(chains[c]), "tn_bench%012d", c);
    chains[CHAINS - 1][0] = '\0'; /* the system chain */

    if (service) {
        run_service(st, n, chains, pg_url ? "postgres" : "sqlite");
        goto scans;
    }

    /* Three clocks: the whole loop (the events made as the workers make
     * them, then chained, signed and appended), the writer's share (chain,
     * sign, append: what the audit writer thread does with events it takes
     * from the rings) and the store call alone. */
    struct gh_audit_event *evs = calloc(BATCH, sizeof(*evs));
    uint64_t store_ns = 0, writer_ns = 0, cpu_ns = 0; /* cpu_ns: this thread's, in the store call */
    if (evs == NULL) return 1;
    t0 = gh_now_ns();
    for (uint64_t done = 0; done < n;) {
        size_t k = 0, ncp = 0;
        for (; k < batch && done + k < n; k++)
            bench_event(&evs[k], done + k, chains[(done + k) % CHAINS]);
        uint64_t w0 = gh_now_ns();
        for (size_t j = 0; j < k; j++, done++) {
            int c = (int)(done % CHAINS);
            if (gh_audit_chain_event(&evs[j], ++seq[c], prev[c], &rows[j]) != GH_OK) return 1;
            memcpy(prev[c], evs[j].hash, 32);
            if (seq[c] % EVERY == 0 &&
                gh_audit_checkpoint_sign(pk, key.key_id, evs[j].chain, seq[c], evs[j].hash,
                                         1763782800000 + (int64_t)done / 1000, &cps[ncp++],
                                         &err) != GH_OK)
                die("sign", &err);
        }
        struct timespec c0, c1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        uint64_t a0 = gh_now_ns();
        if (gh_store_audit_append(st, rows, k, cps, ncp, &err) != GH_OK) die("append", &err);
        uint64_t a1 = gh_now_ns();
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
        cpu_ns += (uint64_t)((c1.tv_sec - c0.tv_sec) * 1000000000LL + (c1.tv_nsec - c0.tv_nsec));
        store_ns += a1 - a0;
        writer_ns += a1 - w0;
    }
    free(evs);
    double s = (double)(gh_now_ns() - t0) / 1e9;
    printf("append store=%s events=%" PRIu64 " batch=%zu seconds=%.2f events_per_s=%.0f "
           "writer_seconds=%.2f writer_events_per_s=%.0f store_seconds=%.2f "
           "store_events_per_s=%.0f store_cpu_us_per_event=%.3f\n",
           pg_url ? "postgres" : "sqlite", n, batch, s, (double)n / s, (double)writer_ns / 1e9,
           (double)n * 1e9 / (double)writer_ns, (double)store_ns / 1e9,
           (double)n * 1e9 / (double)store_ns, (double)cpu_ns / 1e3 / (double)n);
    {
        struct gh_store_wal_stats ws;
        gh_store_wal_stats(st, &ws);
        if (ws.supported)
            printf("wal checkpoints background=%" PRIu64 " inline=%" PRIu64 " frames=%" PRIu64 "\n",
                   ws.background, ws.inline_, ws.wal_frames);
    }
    fflush(stdout);

scans:
    /* The store's share: the same walk with nothing done per row. */
    for (int run = 1; run <= runs; run++) {
        uint64_t events = 0;
        t0 = gh_now_ns();
        if (gh_store_audit_scan(st, 0, 0, count_row, &events, &err) != GH_OK) die("scan", &err);
        s = (double)(gh_now_ns() - t0) / 1e9;
        printf("scan run=%d events=%" PRIu64 " seconds=%.3f events_per_s=%.0f\n", run, events, s,
               (double)events / s);
        fflush(stdout);
    }
    for (int run = 1; run <= runs; run++) {
        uint64_t events = 0;
        size_t bad = 0;
        t0 = gh_now_ns();
        if (gh_audit_verify(st, NULL, on_report, &events, &bad, &err) != GH_OK) die("verify", &err);
        s = (double)(gh_now_ns() - t0) / 1e9;
        printf("verify run=%d events=%" PRIu64 " seconds=%.3f events_per_s=%.0f%s\n", run, events,
               s, (double)events / s, bad ? " TAMPERED?" : "");
        fflush(stdout);
    }
    EVP_PKEY_free(pk);
    gh_store_close(st);
    if (pg_url != NULL || runs == 0) {
        /* A database is the caller's: never its URL here (it may hold a password). */
        printf("kept %s\n", pg_url ? "the PostgreSQL database" : path);
        free(rows);
        return 0;
    }
    snprintf(sql, sizeof(sql), "%s-wal", path);
    unlink(sql);
    snprintf(sql, sizeof(sql), "%s-shm", path);
    unlink(sql);
    unlink(path);
    rmdir(dir);
    free(rows);
    return 0;
}
