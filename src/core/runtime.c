/* The process: start, signals, reload, graceful shutdown. */
#include "core/runtime.h"

#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "audit/audit.h"
#include "audit/archiver.h"
#include "hooks/replay.h"
#include "idem/table.h"
#include "auth/service.h"
#include "limits/limits.h"
#include "hooks/dispatcher.h"
#include "secrets/secrets.h"
#include "telemetry/tracer.h"
#include "core/clock.h"
#include "store/store.h"
#include "core/log.h"
#include "core/str.h"
#include "telemetry/accesslog.h"
#include "telemetry/metrics.h"

/* Connections are file descriptors: take all the kernel allows us. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void apply_log_level(const struct gh_config *cfg)
{
    enum gh_log_level lvl = GH_LOG_INFO;
    if (cfg->log_level) gh_log_level_parse(cfg->log_level, &lvl);
    gh_log_set_level(lvl);
}

/* The auth service's refresher thread publishes a new key directory. */
static void publish_keydir(void *arg, struct gh_keydir *d)
{
    struct gh_runtime *rt = arg;
    gh_keydir_ref(d, rt->nworkers + (rt->admin_running ? 1 : 0));
    for (int i = 0; i < rt->nworkers; i++)
        gh_worker_publish_keydir(&rt->workers[i], d);
    if (rt->admin_running) gh_worker_publish_keydir(&rt->admin, d);
    gh_keydir_unref(d); /* the reference the service gave us */
}

struct gh_store_params gh_runtime_store_params(const struct gh_config *cfg)
{
    struct gh_store_params p = {.sqlite_path = cfg->store.sqlite,
                                .postgres_url = cfg->store.postgres,
                                .pool = cfg->store.pool,
                                .statement_timeout_ms = cfg->store.statement_timeout_ms,
                                .lock_timeout_ms = cfg->store.lock_timeout_ms};
    return p;
}

const char *gh_runtime_store_label(const struct gh_config *cfg)
{
    return cfg->store.postgres ? "postgres" : cfg->store.sqlite;
}

int gh_runtime_open_store(const struct gh_config *cfg, struct gh_store **out, struct gh_err *err)
{
    struct gh_store_params params = gh_runtime_store_params(cfg);
    int applied = 0, version = 0;

    if (gh_store_open(&params, out, err) != GH_OK) return GH_ERROR;
    if (gh_store_migrate(*out, &applied, &version, err) != GH_OK) {
        gh_store_close(*out);
        *out = NULL;
        return GH_ERROR;
    }
    if (applied)
        gh_log_info("store %s: applied %d migration(s), schema version %d",
                    gh_runtime_store_label(cfg), applied, version);
    return GH_OK;
}

static void publish(struct gh_runtime *rt, struct gh_snapshot *snap)
{
    gh_snapshot_ref(snap, rt->nworkers + (rt->admin_running ? 1 : 0));
    for (int i = 0; i < rt->nworkers; i++)
        gh_worker_publish(&rt->workers[i], snap);
    if (rt->admin_running) gh_worker_publish(&rt->admin, snap);
}

static bool store_changed(const struct gh_config_store *a, const struct gh_config_store *b)
{
    return !gh_cstr_same(a->sqlite, b->sqlite) || !gh_cstr_same(a->postgres, b->postgres) ||
           a->pool != b->pool || a->statement_timeout_ms != b->statement_timeout_ms ||
           a->lock_timeout_ms != b->lock_timeout_ms;
}

/* The PIN is left out: a token's session stays logged in, and a new PIN
 * is what the next start will use. */
static bool secrets_changed(const struct gh_config_secrets *a, const struct gh_config_secrets *b)
{
    return !gh_cstr_same(a->provider, b->provider) ||
           !gh_cstr_same(a->master_key_file, b->master_key_file) ||
           !gh_cstr_same(a->pkcs11.module, b->pkcs11.module) ||
           !gh_cstr_same(a->pkcs11.token_label, b->pkcs11.token_label) ||
           !gh_cstr_same(a->pkcs11.key_label, b->pkcs11.key_label);
}

/* The Redis connections, made at start with every setting of the block,
 * and which parts use them. */
static bool redis_changed(const struct gh_config *old, const struct gh_config *cfg)
{
    const struct gh_config_redis *a = &old->redis, *b = &cfg->redis;

    return old->limits.redis_backend != cfg->limits.redis_backend ||
           old->inbound_webhooks.replay_redis != cfg->inbound_webhooks.replay_redis ||
           old->idempotency.redis != cfg->idempotency.redis || a->enabled != b->enabled ||
           !gh_cstr_same(a->url, b->url) || !gh_cstr_same(a->username, b->username) ||
           !gh_cstr_same(a->password, b->password) || a->timeout_ms != b->timeout_ms ||
           a->connect_timeout_ms != b->connect_timeout_ms ||
           !gh_cstr_same(a->key_prefix, b->key_prefix) || !gh_cstr_same(a->ca_file, b->ca_file) ||
           !gh_cstr_same(a->sni, b->sni) || a->verify != b->verify ||
           !gh_cstr_same(a->resolver, b->resolver);
}

/* Listener sockets are opened once, at start: a reload that changes them
 * is refused as a whole, so that what runs is always what the file says. */
static int check_restart_only(const struct gh_config *old, const struct gh_config *cfg,
                              struct gh_err *err)
{
    if (old->nlistens != cfg->nlistens)
        return gh_err_set(err, cfg->file, 0, 0,
                          "the listen addresses changed; that needs a restart (reload refused)");
    for (size_t i = 0; i < cfg->nlistens; i++) {
        const struct gh_config_listen *a = &old->listens[i], *b = &cfg->listens[i];
        if (strcmp(a->addr.text, b->addr.text) != 0 || a->tls != b->tls)
            return gh_err_set(err, cfg->file, b->pos.line, b->pos.col,
                              "listen %s changed; that needs a restart (reload refused)",
                              b->addr.text);
    }
    /* The node id is stamped into audit events, metrics, traces and logs
     * since start: a file naming another node would not describe what
     * runs (and two ids for one process mislead whoever reads them). */
    if (strcmp(old->node.id, cfg->node.id) != 0)
        return gh_err_set(err, cfg->file, cfg->node.pos.line, cfg->node.pos.col,
                          "node.id changed from \"%s\" to \"%s\"; that needs a restart (reload "
                          "refused)",
                          old->node.id, cfg->node.id);
    if (old->workers != cfg->workers)
        gh_log_warn("reload: workers changed from %d to %d; takes effect at the next restart",
                    old->workers, cfg->workers);
    /* Where the data lives and how it is reached: opened once, at start.
     * A file that names another store, master key or Redis would not
     * describe what runs, and a write meant for the new place would go to
     * the old one: refused, as listen is. (Values are not quoted: a URL
     * may hold a password.) */
    if (store_changed(&old->store, &cfg->store))
        return gh_err_set(err, cfg->file, 0, 0,
                          "store changed; that needs a restart (reload refused)");
    if (secrets_changed(&old->secrets, &cfg->secrets))
        return gh_err_set(err, cfg->file, 0, 0,
                          "secrets (provider, master key file or PKCS#11 token) changed; that "
                          "needs a restart (reload refused)");
    if (redis_changed(old, cfg))
        return gh_err_set(err, cfg->file, cfg->redis.pos.line, cfg->redis.pos.col,
                          "redis, limits.backend, inbound_webhooks.replay_store or "
                          "idempotency.store changed; that needs a restart (reload refused)");
    if (old->idempotency.keys != cfg->idempotency.keys ||
        old->idempotency.max_memory != cfg->idempotency.max_memory)
        gh_log_warn("reload: idempotency.keys or max_memory changed; takes effect at the next "
                    "restart");
    if (old->tracing.queue_size != cfg->tracing.queue_size)
        gh_log_warn("reload: tracing.queue_size changed; takes effect at the next restart");
    if (old->admin.enabled != cfg->admin.enabled ||
        strcmp(old->admin.addr.text, cfg->admin.addr.text) != 0)
        gh_log_warn("reload: the admin address changed; takes effect at the next restart");
    return GH_OK;
}

/* The config.reload event, on the system chain. The error message is not
 * recorded (it may quote a value from the file): the log has it. */
static void audit_reload(struct gh_runtime *rt, bool ok, const char *hash)
{
    struct gh_audit_event ev;

    if (!gh_audit_wants(rt->audit, GH_AUDIT_KIND_RELOADS)) return;
    gh_audit_event_new(&ev);
    GH_AUDIT_SET(&ev, actor, GH_STR_LIT("system"));
    GH_AUDIT_SET(&ev, action, GH_STR_LIT("config.reload"));
    GH_AUDIT_SET(&ev, resource, gh_str_cstr(rt->config_path));
    ev.outcome = ok ? GH_AUDIT_SUCCESS : GH_AUDIT_FAILED;
    GH_AUDIT_SET(&ev, reason, ok ? GH_STR_LIT("") : GH_STR_LIT("invalid_config"));
    gh_audit_params_begin(&ev);
    if (ok) gh_audit_params_add(&ev, GH_STR_LIT("config_sha256"), gh_str_cstr(hash), 8);
    gh_audit_params_end(&ev);
    gh_audit_submit(rt->audit, &ev, gh_audit_strict(rt->audit));
}

int gh_runtime_reload(struct gh_runtime *rt)
{
    struct gh_config *cfg = NULL;
    struct gh_snapshot *snap;
    struct gh_err err = {0};
    char msg[1024];

    if (rt->config_path == NULL) {
        gh_log_warn("reload: the demo runs on its built-in config; nothing to reload");
        return GH_OK;
    }
    /* `secret:NAME` values resolved before the comparison: the running
     * config holds resolved values, and an unchanged file must compare
     * equal to it. */
    if (gh_config_load(rt->config_path, &cfg, &err) != GH_OK ||
        gh_secrets_resolve_config(rt->secrets, cfg, &err) != GH_OK ||
        check_restart_only(rt->snap->cfg, cfg, &err) != GH_OK) {
        gh_config_free(cfg);
        goto fail;
    }
    snap = gh_snapshot_new(cfg, rt->generation + 1, &err);
    if (snap == NULL) goto fail;
    if (gh_accesslog_configure(rt->alog, &snap->cfg->access_log, &err) != GH_OK ||
        gh_metrics_bind(rt->metrics, snap, &err) != GH_OK) {
        gh_snapshot_unref(snap);
        goto fail;
    }
    rt->generation++;
    apply_log_level(snap->cfg);
    gh_tracer_configure(rt->tracer, snap->cfg);
    gh_hooks_dispatcher_configure(rt->hooks, &snap->cfg->webhooks);
    gh_audit_service_configure(rt->audit, snap->cfg);
    gh_audit_archiver_configure(rt->archiver, snap);
    publish(rt, snap);
    gh_snapshot_unref(rt->snap);
    rt->snap = snap;
    atomic_fetch_add(&rt->reloads_ok, 1);
    gh_log_info("config reloaded from %s (generation %llu, sha256 %s...)", rt->config_path,
                (unsigned long long)snap->generation, snap->config_hash);
    audit_reload(rt, true, snap->config_hash);
    return GH_OK;
fail:
    atomic_fetch_add(&rt->reloads_failed, 1);
    gh_log_error("reload failed, keeping the running config: %s",
                 gh_err_format(&err, msg, sizeof(msg)));
    audit_reload(rt, false, NULL);
    return GH_ERROR;
}

/* The READY=1 that ends a start or a reload, with the state in STATUS. */
static void notify_ready(struct gh_runtime *rt, const char *how)
{
    char msg[256];

    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s: config generation %llu, %d workers", how,
             (unsigned long long)rt->generation, rt->nworkers);
    gh_sdnotify_send(&rt->notify, msg);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct gh_runtime *rt = arg;

    if (rt->stopping) {
        gh_log_warn("SIGHUP while stopping: no reload");
        return;
    }
    gh_sdnotify_reloading(&rt->notify);
    /* Ready again either way: a refused config leaves the old one serving. */
    notify_ready(rt,
                 gh_runtime_reload(rt) == GH_OK ? "serving" : "serving (the last reload failed)");
}

static void on_usr1(evutil_socket_t sig, short what, void *arg)
{
    struct gh_runtime *rt = arg;
    gh_log_info("SIGUSR1: reopening the access log");
    gh_accesslog_reopen(rt->alog);
}

static void stop_check(evutil_socket_t fd, short what, void *arg)
{
    struct gh_runtime *rt = arg;
    if (atomic_load(&rt->running_workers) == 0) event_base_loopbreak(rt->main_base);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    struct gh_runtime *rt = arg;
    struct timeval tv = {0, 50 * 1000};

    if (rt->stopping) {
        gh_log_warn("second signal: stopping now");
        exit(1);
    }
    rt->stopping = true;
    atomic_store(&rt->ready, false);
    gh_sdnotify_send(&rt->notify, "STOPPING=1\nSTATUS=draining");
    gh_log_info("shutting down: no new connections, in-flight requests get up to %u ms",
                rt->snap->cfg->shutdown_timeout_ms);
    for (int i = 0; i < rt->nworkers; i++)
        gh_worker_shutdown(&rt->workers[i]);
    if (rt->admin_running) gh_worker_shutdown(&rt->admin);
    rt->stop_check = event_new(rt->main_base, -1, EV_PERSIST, stop_check, rt);
    if (rt->stop_check) event_add(rt->stop_check, &tv);
}

int gh_runtime_start(struct gh_runtime *rt, struct gh_config *cfg, const char *config_path,
                     struct gh_err *err)
{
    sigset_t block, old;
    size_t sealed = 0;
    int started = 0;

    memset(rt, 0, sizeof(*rt));
    gh_sdnotify_open(&rt->notify);
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() != 0) {
        gh_config_free(cfg);
        return gh_err_set(err, NULL, 0, 0, "libevent has no pthreads support");
    }
    rt->config_path = config_path ? strdup(config_path) : NULL;
    rt->started_wall_ms = gh_wall_ms();
    snprintf(rt->node_id, sizeof(rt->node_id), "%s", cfg->node.id);
    gh_log_set_node(rt->node_id);
    apply_log_level(cfg);
    /* The store and the secrets before the snapshot: `secret:NAME` values
     * are resolved into <cfg> before anything is built from it. */
    if (gh_runtime_open_store(cfg, &rt->store, err) != GH_OK ||
        (rt->secrets = gh_secrets_open_ex(cfg, rt->store, GH_SECRETS_CREATE_MASTER, err)) == NULL ||
        gh_secrets_resolve_config(rt->secrets, cfg, err) != GH_OK ||
        gh_secrets_seal_store_keys(rt->secrets, &sealed, err) != GH_OK) {
        gh_config_free(cfg);
        return GH_ERROR;
    }
    rt->generation = 1;
    rt->snap = gh_snapshot_new(cfg, rt->generation, err);
    if (rt->snap == NULL) return GH_ERROR;
    rt->metrics = gh_metrics_new();
    if (rt->metrics == NULL || gh_metrics_bind(rt->metrics, rt->snap, err) != GH_OK)
        return gh_err_set(err, NULL, 0, 0, "out of memory");
    /* Always made, sized at start (a reload keeps it, and what it holds): a
     * reload may add the first webhook_verify route. Its pages are only
     * touched as ids are recorded. */
    rt->wh_replay = gh_replay_new(rt->snap->cfg->inbound_webhooks.replay_keys);
    if (rt->wh_replay == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    /* The same for the idempotency records: its slots' pages are only
     * touched as keys are recorded. */
    rt->idem =
        gh_idem_table_new(rt->snap->cfg->idempotency.keys, rt->snap->cfg->idempotency.max_memory);
    if (rt->idem == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    rt->alog = gh_accesslog_open(&rt->snap->cfg->access_log, rt->node_id, err);
    if (rt->alog == NULL) return GH_ERROR;
    rt->main_base = event_base_new();
    if (rt->main_base == NULL) return gh_err_set(err, NULL, 0, 0, "event_base_new failed");
    /* Before the workers: each takes its ring. */
    if (rt->snap->cfg->audit.enabled) {
        rt->audit = gh_audit_service_new(rt->snap->cfg, rt->store, rt->snap->cfg->workers, err);
        if (rt->audit == NULL) return GH_ERROR;
        gh_audit_service_set_secrets(rt->audit, rt->secrets);
        if (gh_audit_service_start(rt->audit, err) != GH_OK) return GH_ERROR;
        /* Retention runs on its own thread (archiver.h), after the writer
         * loaded its heads. */
        rt->archiver = gh_audit_archiver_start(rt->store, rt->snap, err);
        if (rt->archiver == NULL) return GH_ERROR;
    }
    struct gh_auth_token_params tp = {
        .algorithm = rt->snap->cfg->auth.tokens.algorithm,
        .rotate_every_ms = rt->snap->cfg->auth.tokens.rotate_every_ms,
        .ttl_ms = rt->snap->cfg->auth.tokens.ttl_ms,
        .secrets = rt->secrets,
    };
    rt->auth = gh_auth_service_start(rt->store, rt->snap->cfg->auth.verify_threads, &tp,
                                     publish_keydir, rt, err);
    if (rt->auth == NULL) return GH_ERROR;
    rt->limits = gh_limits_service_new(rt->snap->cfg, rt->store, err);
    if (rt->limits == NULL) return GH_ERROR;
    gh_limits_service_set_audit(rt->limits, rt->audit);
    rt->tracer = gh_tracer_new(rt->snap->cfg, rt->snap->cfg->workers, err);
    if (rt->tracer == NULL) return GH_ERROR;

    rt->nworkers = rt->snap->cfg->workers;
    rt->workers = calloc((size_t)rt->nworkers, sizeof(*rt->workers));
    if (rt->workers == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    for (int i = 0; i < rt->nworkers; i++)
        if (gh_worker_init(&rt->workers[i], rt, i, false, rt->snap, err) != GH_OK) return GH_ERROR;
    if (rt->snap->cfg->admin.enabled) {
        if (gh_worker_init(&rt->admin, rt, rt->nworkers, true, rt->snap, err) != GH_OK)
            return GH_ERROR;
    }

    /* Threads inherit the mask: only the main thread takes these signals. */
    sigemptyset(&block);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (int i = 0; i < rt->nworkers; i++)
        if (gh_worker_start(&rt->workers[i]) == GH_OK) started++;
    if (rt->snap->cfg->admin.enabled && gh_worker_start(&rt->admin) == GH_OK)
        rt->admin_running = true;
    /* Workers exist now: the auth threads may publish to them. */
    int auth_rc = gh_auth_service_run(rt->auth, err);

    rt->sig_hup = evsignal_new(rt->main_base, SIGHUP, on_hup, rt);
    rt->sig_term = evsignal_new(rt->main_base, SIGTERM, on_term, rt);
    rt->sig_int = evsignal_new(rt->main_base, SIGINT, on_term, rt);
    rt->sig_usr1 = evsignal_new(rt->main_base, SIGUSR1, on_usr1, rt);
    evsignal_add(rt->sig_hup, NULL);
    evsignal_add(rt->sig_term, NULL);
    evsignal_add(rt->sig_int, NULL);
    evsignal_add(rt->sig_usr1, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started != rt->nworkers) return gh_err_set(err, NULL, 0, 0, "cannot start worker threads");
    if (auth_rc != GH_OK) return GH_ERROR;
    if (gh_limits_service_start(rt->limits, err) != GH_OK) return GH_ERROR;
    if (gh_tracer_start(rt->tracer, err) != GH_OK) return GH_ERROR;
    rt->hooks =
        gh_hooks_dispatcher_start(rt->store, rt->secrets, rt->audit, &rt->snap->cfg->webhooks, err);
    if (rt->hooks == NULL) return GH_ERROR;
    gh_limits_service_set_hooks(rt->limits, rt->hooks);

    atomic_store(&rt->ready, true);
    for (size_t i = 0; i < rt->snap->cfg->nlistens; i++)
        gh_log_info("listening on %s%s (%d workers)", rt->snap->cfg->listens[i].addr.text,
                    rt->snap->cfg->listens[i].tls ? " (TLS)" : "", rt->nworkers);
    if (rt->admin_running) gh_log_info("admin on %s", rt->snap->cfg->admin.addr.text);
    notify_ready(rt, "serving");
    return GH_OK;
}

int gh_runtime_run(struct gh_runtime *rt)
{
    event_base_dispatch(rt->main_base);
    for (int i = 0; i < rt->nworkers; i++)
        pthread_join(rt->workers[i].thread, NULL);
    if (rt->admin_running) pthread_join(rt->admin.thread, NULL);
    rt->admin_running = false;
    gh_log_info("stopped");
    return 0;
}

void gh_runtime_release(struct gh_runtime *rt)
{
    /* The auth service first: its threads hand jobs back to workers and
     * publish directories to them, so workers must outlive it. */
    gh_auth_service_stop(rt->auth);
    rt->auth = NULL;
    for (int i = 0; rt->workers && i < rt->nworkers; i++)
        gh_worker_release(&rt->workers[i]);
    gh_worker_release(&rt->admin);
    free(rt->workers);
    rt->workers = NULL;
    /* After the workers (they hold slots in its tables), before the store
     * (its last flush writes there). */
    gh_limits_service_free(rt->limits);
    rt->limits = NULL;
    /* After the workers: they write into its rings. */
    gh_tracer_free(rt->tracer);
    rt->tracer = NULL;
    gh_hooks_dispatcher_free(rt->hooks); /* before the audit service, the secrets and the store */
    rt->hooks = NULL;
    /* After the workers (they unbound) and the limits flusher (its last
     * flush may submit quota events), before the store: the writer
     * commits what is queued. */
    gh_audit_archiver_free(rt->archiver); /* before the store: a pass may be running */
    rt->archiver = NULL;
    gh_audit_service_free(rt->audit);
    rt->audit = NULL;
    gh_secrets_close(rt->secrets); /* after every thread that may open a secret */
    rt->secrets = NULL;
    if (rt->store) gh_store_close(rt->store);
    rt->store = NULL;
    gh_accesslog_close(rt->alog);
    rt->alog = NULL;
    gh_sdnotify_close(&rt->notify);
    gh_metrics_free(rt->metrics); /* after the workers: they count into it */
    gh_replay_free(rt->wh_replay);
    rt->wh_replay = NULL;
    gh_idem_table_free(rt->idem);
    rt->idem = NULL;
    rt->metrics = NULL;
    if (rt->sig_hup) event_free(rt->sig_hup);
    if (rt->sig_term) event_free(rt->sig_term);
    if (rt->sig_int) event_free(rt->sig_int);
    if (rt->sig_usr1) event_free(rt->sig_usr1);
    if (rt->stop_check) event_free(rt->stop_check);
    if (rt->main_base) event_base_free(rt->main_base);
    if (rt->snap) gh_snapshot_unref(rt->snap);
    free(rt->config_path);
    memset(rt, 0, sizeof(*rt));
}
