/* The runtime: the one struct that holds the process's mutable state
 * (workers, the current snapshot, the access-log writer). `gatehouse run`
 * and `gatehouse demo` create one, start it, and run the main thread's loop,
 * which handles signals: SIGHUP reloads, SIGTERM/SIGINT shut down
 * gracefully, SIGUSR1 reopens the access log. Under systemd (Type=notify)
 * it says when it is ready, reloading and stopping (sdnotify.h). */
#ifndef GH_CORE_RUNTIME_H
#define GH_CORE_RUNTIME_H

#include <event2/event.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "store/store.h"
#include "core/sdnotify.h"
#include "core/snapshot.h"
#include "core/worker.h"

struct gh_accesslog;
struct gh_store;
struct gh_secrets;
struct gh_auth_service;
struct gh_metrics;
struct gh_audit_service;
struct gh_audit_archiver;
struct gh_hooks_dispatcher;

struct gh_runtime {
    char *config_path; /* NULL for the built-in demo config */
    struct event_base *main_base;
    struct gh_snapshot *snap; /* main thread's reference to the current snapshot */
    uint64_t generation;
    struct gh_worker *workers;
    int nworkers;
    struct gh_worker admin;
    bool admin_running;
    struct gh_accesslog *alog;
    struct gh_store *store;             /* opened and migrated at start */
    struct gh_secrets *secrets;         /* the master key provider, opened after the store */
    struct gh_auth_service *auth;       /* key directory refresh, Argon2, last_used */
    struct gh_limits_service *limits;   /* rate-limit tables, quotas and their flusher */
    struct gh_tracer *tracer;           /* trace rings and the dispatcher thread (OTLP export) */
    struct gh_hooks_dispatcher *hooks;  /* webhook deliveries' thread (gh-webhooks) */
    struct gh_metrics *metrics;         /* name registry, sticky tenants, trace counters */
    struct gh_audit_archiver *archiver; /* audit retention's thread; NULL when audit is off */
    struct gh_audit_service *audit;     /* audit writer and rings; NULL when audit is off */
    struct gh_replay *wh_replay;        /* inbound webhook ids already accepted (all workers) */
    struct gh_idem_table *idem;         /* idempotency records without Redis (all workers) */
    _Atomic bool ready;                 /* listeners up, config loaded, not draining */
    _Atomic int running_workers;
    _Atomic uint64_t reloads_ok;
    _Atomic uint64_t reloads_failed;
    uint64_t started_wall_ms;
    char node_id[GH_CONFIG_NODE_ID_MAX + 1]; /* config `node.id`, fixed for the process's life */
    bool stopping;
    struct gh_sdnotify notify; /* systemd's Type=notify socket, when started by it */
    struct event *sig_hup, *sig_term, *sig_int, *sig_usr1, *stop_check;
};

/* Builds the runtime from a loaded config (takes ownership of <cfg>),
 * opens listeners and starts threads. <config_path> (may be NULL) is what a
 * SIGHUP re-reads. Returns GH_OK or GH_ERROR with <err>. */
int gh_runtime_start(struct gh_runtime *rt, struct gh_config *cfg, const char *config_path,
                     struct gh_err *err);
/* The gh_store_open() parameters of <cfg>'s `store:` block; the strings
 * live as long as <cfg>. */
struct gh_store_params gh_runtime_store_params(const struct gh_config *cfg);

/* What to call the store in messages: the SQLite file, or "postgres" (the
 * URL may hold a password). */
const char *gh_runtime_store_label(const struct gh_config *cfg);

/* Opens the store named by <cfg> and applies its migrations (also used by
 * the CLI). Returns GH_OK or GH_ERROR with <err>. */
int gh_runtime_open_store(const struct gh_config *cfg, struct gh_store **out, struct gh_err *err);

/* Runs the main loop until shutdown completes; returns the exit code. */
int gh_runtime_run(struct gh_runtime *rt);
void gh_runtime_release(struct gh_runtime *rt);

/* Re-reads the config file and swaps the snapshot. On error the old one
 * stays and the error is logged with file:line:col. Returns GH_OK/GH_ERROR. */
int gh_runtime_reload(struct gh_runtime *rt);

#endif
