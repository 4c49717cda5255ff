/* Refresher, verifier and last-used writer threads. */
#include "auth/service.h"
#include "core/log_episode.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "core/clock.h"
#include "core/log.h"
#include "secrets/secrets.h"

/* The fallback poll of the change counter. Changes are pushed by the
 * store where it can (PostgreSQL: LISTEN/NOTIFY, gh_store_watch_changes),
 * and this node's own admin API pokes; the poll is for everything those
 * miss: a listener that is down or reconnecting, a session that died
 * without a word (found only by TCP keepalives, tens of seconds), SQLite
 * written by the CLI. It stays at 250 ms whether or not the listener is
 * connected: a connected listener can be half-dead unnoticed, and only an
 * unrelaxed poll keeps the 1 s bound then; the read is one indexed row. */
#define POLL_MS         250
#define TOUCH_FLUSH_MS  1000
#define MAX_QUEUED_JOBS 1024
#define MAX_TOUCHES     4096

struct gh_auth_service {
    struct gh_store *store;
    struct gh_auth_token_params tokens; /* .algorithm points at <alg> */
    char alg[8];                        /* a copy: the config it came from may be freed */
    uint64_t last_rotate_try_ns;
    /* The refresher's store calls, failing while the store is down. */
    struct gh_log_episode version_failing, touch_failing;
    gh_keydir_publish_fn publish;
    void *publish_arg;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t jobs_cv;
    pthread_cond_t refresh_cv;
    bool stop;
    bool poked;
    struct gh_verify_job *jobs_head, *jobs_tail;
    unsigned njobs;
    struct gh_keydir *current;                /* the service's own reference */
    struct gh_store_key_touch *touches;       /* MAX_TOUCHES, filled by workers */
    struct gh_store_key_touch *touches_spare; /* MAX_TOUCHES, being written */
    size_t ntouches;

    /* Pushed changes; NULL before run / after stop. Published once the
     * listener is set up: /metrics (the admin thread) may read it any time. */
    _Atomic(struct gh_store_watch *) watch;
    pthread_t refresher;
    pthread_t *verifiers;
    unsigned nverifiers;
    unsigned nthreads_wanted;
    bool refresher_running;
};

/* Two buffers, allocated once: workers fill one under the mutex while the
 * refresher writes the other to the store without holding it. */
static void flush_touches(struct gh_auth_service *s)
{
    struct gh_store_key_touch *batch;
    size_t n;
    struct gh_err err = {0};

    pthread_mutex_lock(&s->mu);
    batch = s->touches;
    n = s->ntouches;
    s->touches = s->touches_spare;
    s->touches_spare = batch;
    s->ntouches = 0;
    pthread_mutex_unlock(&s->mu);
    if (n == 0) return;
    if (gh_store_keys_touch_batch(s->store, batch, n, &err) != GH_OK)
        gh_log_episode_fail(&s->touch_failing, "auth: writing last_used for %zu keys failed: %s", n,
                            err.msg);
    else
        gh_log_episode_ok(&s->touch_failing, "auth: writing keys' last_used");
}

/* Seals <k>'s PEM as (system, "signing-key/<kid>") and puts the reference
 * in its place. */
static int seal_pem(struct gh_auth_service *s, struct gh_store_signing_key *k, struct gh_err *err)
{
    char name[64], pem[sizeof(k->private_pem)];
    int rc;

    snprintf(name, sizeof(name), "signing-key/%s", k->kid);
    memcpy(pem, k->private_pem, sizeof(pem));
    rc = gh_secrets_seal_ref(s->tokens.secrets, name, pem, k->private_pem, sizeof(k->private_pem),
                             err);
    OPENSSL_cleanse(pem, sizeof(pem));
    return rc;
}

/* Generates and stores a new signing key when the newest is due for
 * rotation. Runs on the refresher thread; the store's change counter then
 * brings the key to every node's directory. Returns whether a key was
 * stored. */
static bool maybe_rotate(struct gh_auth_service *s, const struct gh_keydir *d)
{
    int64_t now = (int64_t)gh_wall_ms();
    struct gh_store_signing_key k;
    struct gh_jwt_signer *signer;
    struct gh_err err = {0};
    char kid[17];
    BIO *bio;
    long n;
    char *pem;
    bool stored = false;

    if (d->signer && d->signer_created_at + (int64_t)s->tokens.rotate_every_ms > now) return false;
    /* A failing store is tried again every 5 s, not every poll. */
    if (s->last_rotate_try_ns && gh_now_ns() - s->last_rotate_try_ns < 5000000000ull) return false;
    s->last_rotate_try_ns = gh_now_ns();
    memset(&k, 0, sizeof(k));
    memcpy(kid, "gh-", 3);
    if (gh_store_random_base62(kid + 3, 13, &err) != GH_OK) return false;
    enum gh_jwa alg = gh_jwa_parse(s->tokens.algorithm, strlen(s->tokens.algorithm));
    signer = gh_jwt_signer_generate(alg, kid, &err);
    if (signer == NULL) {
        gh_log_warn("auth: cannot generate a signing key: %s", err.msg);
        return false;
    }
    bio = BIO_new(BIO_s_mem());
    if (bio &&
        PEM_write_bio_PrivateKey(bio, gh_jwt_signer_pkey(signer), NULL, NULL, 0, NULL, NULL) == 1 &&
        (n = BIO_get_mem_data(bio, &pem)) > 0 && (size_t)n < sizeof(k.private_pem)) {
        memcpy(k.private_pem, pem, (size_t)n);
        snprintf(k.kid, sizeof(k.kid), "%s", kid);
        snprintf(k.alg, sizeof(k.alg), "%s", s->tokens.algorithm);
        k.publish_until = now + (int64_t)(s->tokens.rotate_every_ms + s->tokens.ttl_ms) + 300000;
        /* Sealed before the row exists (secrets.h, "own private keys"): the
         * row keeps "secret:signing-key/<kid>", never the PEM. */
        if (s->tokens.secrets != NULL && seal_pem(s, &k, &err) != GH_OK)
            gh_log_warn("auth: cannot seal a new signing key: %s", err.msg);
        else if (gh_store_signing_key_insert(s->store, &k, &err) != GH_OK)
            gh_log_warn("auth: cannot store a new signing key: %s", err.msg);
        else {
            gh_log_info("auth: new token signing key %s (%s)", kid, s->tokens.algorithm);
            stored = true;
        }
    }
    OPENSSL_cleanse(k.private_pem, sizeof(k.private_pem));
    BIO_free(bio);
    gh_jwt_signer_free(signer);
    return stored;
}

static bool stopping(struct gh_auth_service *s)
{
    bool stop;

    pthread_mutex_lock(&s->mu);
    stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void *refresher_main(void *arg)
{
    struct gh_auth_service *s = arg;
    uint64_t last_touch = gh_now_ns();

    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec ts;
        uint64_t version = 0;
        struct gh_err err = {0};

        if (!s->poked) {
            gh_deadline_ms(CLOCK_REALTIME, POLL_MS, &ts);
            pthread_cond_timedwait(&s->refresh_cv, &s->mu, &ts);
        }
        s->poked = false;
        if (s->stop) break;
        uint64_t have = s->current->version;
        pthread_mutex_unlock(&s->mu);

        bool counted = gh_store_change_version(s->store, &version, &err) == GH_OK;
        if (!counted)
            gh_log_episode_fail(&s->version_failing,
                                "auth: cannot read the store's change counter: %s", err.msg);
        else
            gh_log_episode_ok(&s->version_failing, "auth: reading the store's change counter");
        if (counted && version != have) {
            struct gh_keydir *d = gh_keydir_load_ex(s->store, s->tokens.secrets, &err);
            if (d == NULL) {
                gh_log_warn("auth: reloading the key directory failed: %s", err.msg);
            } else {
                pthread_mutex_lock(&s->mu);
                struct gh_keydir *old = s->current;
                s->current = d;
                gh_keydir_ref(d, 1); /* the publish callee's */
                pthread_mutex_unlock(&s->mu);
                gh_keydir_unref(old);
                s->publish(s->publish_arg, d);
            }
        }
        /* Each store call may take seconds when the store is slow: a stop
         * asked meanwhile is looked at between them, so that stopping does
         * not wait for a whole turn. */
        if (!stopping(s)) {
            struct gh_keydir *d = gh_auth_service_keydir(s);
            bool rotated = maybe_rotate(s, d);
            gh_keydir_unref(d);
            /* A new key bumped the counter: load it on the next turn, now. */
            if (rotated) {
                pthread_mutex_lock(&s->mu);
                s->poked = true;
                pthread_mutex_unlock(&s->mu);
            }
        }
        if (!stopping(s) && gh_now_ns() - last_touch >= (uint64_t)TOUCH_FLUSH_MS * 1000000ull) {
            flush_touches(s);
            last_touch = gh_now_ns();
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    flush_touches(s);
    return NULL;
}

static void *verifier_main(void *arg)
{
    struct gh_auth_service *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->jobs_head == NULL && !s->stop)
            pthread_cond_wait(&s->jobs_cv, &s->mu);
        if (s->stop && s->jobs_head == NULL) break;
        struct gh_verify_job *job = s->jobs_head;
        s->jobs_head = job->next;
        if (s->jobs_head == NULL) s->jobs_tail = NULL;
        s->njobs--;
        bool stopping = s->stop;
        pthread_mutex_unlock(&s->mu);

        job->next = NULL;
        /* Stopping: hand queued jobs back unverified rather than spend
         * 20 ms each on requests that are being closed. */
        job->ok =
            !stopping && gh_apikey_verify(job->phc, gh_str_make(job->secret, strlen(job->secret)));
        gh_apikey_wipe(job->secret, sizeof(job->secret));
        gh_worker_verify_done(job->worker, job);

        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

struct gh_auth_service *gh_auth_service_start(struct gh_store *st, unsigned verify_threads,
                                              const struct gh_auth_token_params *tokens,
                                              gh_keydir_publish_fn publish, void *arg,
                                              struct gh_err *err)
{
    struct gh_auth_service *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        gh_err_set(err, NULL, 0, 0, "out of memory");
        return NULL;
    }
    s->store = st;
    s->tokens = *tokens;
    snprintf(s->alg, sizeof(s->alg), "%s", tokens->algorithm ? tokens->algorithm : "ES256");
    s->tokens.algorithm = s->alg;
    s->publish = publish;
    s->publish_arg = arg;
    s->current = gh_keydir_load_ex(st, tokens->secrets, err);
    if (s->current == NULL) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->jobs_cv, NULL);
    pthread_cond_init(&s->refresh_cv, NULL);
    s->touches = calloc(MAX_TOUCHES, sizeof(*s->touches));
    s->touches_spare = calloc(MAX_TOUCHES, sizeof(*s->touches_spare));
    s->nthreads_wanted = verify_threads ? verify_threads : 1;
    s->verifiers = calloc(s->nthreads_wanted, sizeof(pthread_t));
    if (s->touches == NULL || s->touches_spare == NULL || s->verifiers == NULL) {
        free(s->touches);
        free(s->touches_spare);
        free(s->verifiers);
        pthread_cond_destroy(&s->refresh_cv);
        pthread_cond_destroy(&s->jobs_cv);
        pthread_mutex_destroy(&s->mu);
        gh_keydir_unref(s->current);
        free(s);
        gh_err_set(err, NULL, 0, 0, "out of memory");
        return NULL;
    }
    return s;
}

/* The store's listener thread: a change was committed somewhere (or the
 * listener reconnected): the refresher looks at the counter now. */
static void on_store_change(void *arg)
{
    gh_auth_service_poke(arg);
}

int gh_auth_service_run(struct gh_auth_service *s, struct gh_err *err)
{
    if (pthread_create(&s->refresher, NULL, refresher_main, s) != 0)
        return gh_err_set(err, NULL, 0, 0, "cannot start the auth threads");
    s->refresher_running = true;
    {
        struct gh_store_watch *w = NULL;
        if (gh_store_watch_changes(s->store, on_store_change, s, &w, err) != GH_OK) return GH_ERROR;
        atomic_store_explicit(&s->watch, w, memory_order_release);
    }
    for (unsigned i = 0; i < s->nthreads_wanted; i++)
        if (pthread_create(&s->verifiers[s->nverifiers], NULL, verifier_main, s) == 0)
            s->nverifiers++;
    return s->nverifiers ? GH_OK : gh_err_set(err, NULL, 0, 0, "cannot start verifier threads");
}

void gh_auth_service_stop(struct gh_auth_service *s)
{
    if (s == NULL) return;
    /* First: its callback pokes <s>. */
    gh_store_watch_stop(atomic_exchange_explicit(&s->watch, NULL, memory_order_acq_rel));
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->jobs_cv);
    pthread_cond_broadcast(&s->refresh_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->refresher_running) pthread_join(s->refresher, NULL);
    for (unsigned i = 0; i < s->nverifiers; i++)
        pthread_join(s->verifiers[i], NULL);
    /* Jobs still queued belong to workers that are gone: free them. */
    while (s->jobs_head) {
        struct gh_verify_job *j = s->jobs_head;
        s->jobs_head = j->next;
        gh_apikey_wipe(j->secret, sizeof(j->secret));
        free(j);
    }
    gh_keydir_unref(s->current);
    free(s->touches);
    free(s->touches_spare);
    free(s->verifiers);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->jobs_cv);
    pthread_cond_destroy(&s->refresh_cv);
    free(s);
}

struct gh_keydir *gh_auth_service_keydir(struct gh_auth_service *s)
{
    struct gh_keydir *d;
    pthread_mutex_lock(&s->mu);
    d = s->current;
    gh_keydir_ref(d, 1);
    pthread_mutex_unlock(&s->mu);
    return d;
}

bool gh_auth_verify_submit(struct gh_auth_service *s, struct gh_verify_job *job)
{
    pthread_mutex_lock(&s->mu);
    if (s->njobs >= MAX_QUEUED_JOBS || s->stop) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    job->next = NULL;
    if (s->jobs_tail)
        s->jobs_tail->next = job;
    else
        s->jobs_head = job;
    s->jobs_tail = job;
    s->njobs++;
    pthread_cond_signal(&s->jobs_cv);
    pthread_mutex_unlock(&s->mu);
    return true;
}

void gh_auth_touch(struct gh_auth_service *s, const struct gh_store_key_touch *t, size_t n)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n && s->ntouches < MAX_TOUCHES; i++) {
        size_t k;
        for (k = 0; k < s->ntouches; k++)
            if (strcmp(s->touches[k].key_id, t[i].key_id) == 0) break;
        if (k < s->ntouches) {
            if (t[i].last_used_at > s->touches[k].last_used_at)
                s->touches[k].last_used_at = t[i].last_used_at;
            continue;
        }
        s->touches[s->ntouches++] = t[i];
    }
    pthread_mutex_unlock(&s->mu);
}

void gh_auth_service_poke(struct gh_auth_service *s)
{
    pthread_mutex_lock(&s->mu);
    s->poked = true;
    pthread_cond_signal(&s->refresh_cv);
    pthread_mutex_unlock(&s->mu);
}

void gh_auth_service_change_stats(const struct gh_auth_service *s, struct gh_store_watch_stats *out)
{
    gh_store_watch_stats(s ? atomic_load_explicit(&s->watch, memory_order_acquire) : NULL, out);
}
