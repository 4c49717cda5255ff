/* A JWKS kept fresh from a file or a URL by a background thread; the
 * contract is in auth/jwks_source.h.
 *
 * One mutex guards the current set and the schedule. The thread never holds
 * it while reading or fetching, so acquire() and kick() on a worker wait at
 * most for a pointer swap. */
#include "auth/jwks_source.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"

#define MS ((uint64_t)1000000) /* nanoseconds per millisecond */

/* What identifies a version of the file without reading it. */
struct file_sig {
    int err; /* errno of a failed stat, else 0 */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim;
};

struct gh_jwks_source {
    /* set by new(), read-only afterwards */
    char *location;
    bool is_url, https;
    uint64_t refresh_ns, min_refresh_ns, backoff_min_ns, backoff_max_ns;
    long timeout_ms;
    size_t max_bytes;
    void (*report)(void *arg, bool ok, const char *msg);
    void *report_arg;

    CURLM *multi; /* URL sources: one transfer at a time; free() wakes it */

    /* the thread's own */
    pthread_t thread;
    bool started;
    unsigned char hash[32]; /* SHA-256 of the bytes of the current set */
    bool have_hash;
    struct file_sig fsig; /* of the last version read (or failed to read) */
    bool have_fsig;

    /* under <lock> */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; the thread's sleep and wait()ers */
    struct gh_jwks *cur;
    bool stop;
    bool failing;
    uint64_t next_ns, last_attempt_ns, backoff_ns;
    uint64_t last_kick_ns;           /* start of the last refresh a kick caused; 0 = none yet */
    struct gh_jwks_source_status st; /* all but generation */

    _Atomic uint64_t generation;
    _Atomic bool kicked;
    _Atomic bool stopping; /* read between transfer steps */
};

/* ---- reading ---- */

struct body {
    char *p;
    size_t len, cap, max;
    bool too_big;
};

static bool body_append(struct body *b, const void *data, size_t n)
{
    if (n > b->max - b->len) {
        b->too_big = true;
        return false;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        char *p;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > b->max) cap = b->max;
        p = realloc(b->p, cap);
        if (p == NULL) return false;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return true;
}

static void file_sig_of(const char *path, struct file_sig *sig)
{
    struct stat st;

    memset(sig, 0, sizeof(*sig));
    if (stat(path, &st) != 0) {
        sig->err = errno;
        return;
    }
    sig->dev = st.st_dev;
    sig->ino = st.st_ino;
    sig->size = st.st_size;
    sig->mtim = st.st_mtim;
}

/* Reads the file if it changed since the last look: GH_OK with <b> filled,
 * GH_DECLINED when unchanged, GH_ERROR with <msg>. A version that failed is
 * not read again until it changes, so a bad file is reported once. */
static int read_file(struct gh_jwks_source *src, struct body *b, char *msg, size_t size)
{
    struct file_sig sig;
    char chunk[16384];
    int fd = -1, rc = GH_ERROR;

    file_sig_of(src->location, &sig);
    if (src->have_fsig && memcmp(&sig, &src->fsig, sizeof(sig)) == 0) return GH_DECLINED;
    src->fsig = sig;
    src->have_fsig = true;
    if (sig.err != 0) {
        snprintf(msg, size, "jwks file: %s", strerror(sig.err));
        return GH_ERROR;
    }
    fd = open(src->location, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(msg, size, "jwks file: %s", strerror(errno));
        return GH_ERROR;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            snprintf(msg, size, "jwks file: %s", strerror(errno));
            goto out;
        }
        if (n == 0) break;
        if (!body_append(b, chunk, (size_t)n)) {
            if (b->too_big)
                snprintf(msg, size, "jwks file: over %zu bytes", b->max);
            else
                snprintf(msg, size, "jwks file: out of memory");
            goto out;
        }
    }
    rc = GH_OK;
out:
    close(fd);
    return rc;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct body *b = arg;
    size_t n = size * nmemb;

    return body_append(b, ptr, n) ? n : 0; /* 0 aborts the transfer */
}

/* GETs the URL into <b>: GH_OK on status 200, GH_ERROR with <msg> otherwise.
 * The message never carries the URL (it may hold credentials). The multi
 * interface lets gh_jwks_source_free() wake the wait and stop a transfer at
 * once, instead of after libcurl's next progress call. */
static int fetch_url(struct gh_jwks_source *src, struct body *b, char *msg, size_t size)
{
    char cerr[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    CURL *h = curl_easy_init();
    CURLcode cc = CURLE_OK;
    CURLMsg *done;
    long status = 0;
    int rc = GH_ERROR, running = 1, left;
    bool added = false;

    if (h == NULL) {
        snprintf(msg, size, "jwks url: cannot start libcurl");
        return GH_ERROR;
    }
    hdrs = curl_slist_append(NULL, "Accept: application/jwk-set+json, application/json");
    /* Redirects may not leave http(s), nor go from https down to http. */
    if (curl_easy_setopt(h, CURLOPT_URL, src->location) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, src->https ? "https" : "http,https") !=
            CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, src->timeout_ms) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, src->timeout_ms) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)src->max_bytes) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_WRITEDATA, b) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_USERAGENT, "gatehouse-jwks") != CURLE_OK ||
        (hdrs != NULL && curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK)) {
        snprintf(msg, size, "jwks url: libcurl refused an option");
        goto out;
    }
    if (curl_multi_add_handle(src->multi, h) != CURLM_OK) {
        snprintf(msg, size, "jwks url: libcurl refused the transfer");
        goto out;
    }
    added = true;
    /* CURLOPT_TIMEOUT_MS bounds the whole loop. */
    while (running) {
        if (curl_multi_perform(src->multi, &running) != CURLM_OK) {
            snprintf(msg, size, "jwks url: libcurl failed");
            goto out;
        }
        if (atomic_load_explicit(&src->stopping, memory_order_acquire)) {
            snprintf(msg, size, "jwks url: stopped");
            goto out;
        }
        if (running && curl_multi_poll(src->multi, NULL, 0, 1000, NULL) != CURLM_OK) {
            snprintf(msg, size, "jwks url: libcurl failed");
            goto out;
        }
    }
    while ((done = curl_multi_info_read(src->multi, &left)) != NULL)
        if (done->msg == CURLMSG_DONE && done->easy_handle == h) cc = done->data.result;
    if (b->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(msg, size, "jwks url: body over %zu bytes", b->max);
        goto out;
    }
    if (cc != CURLE_OK) {
        snprintf(msg, size, "jwks url: %s", cerr[0] ? cerr : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        snprintf(msg, size, "jwks url: HTTP status %ld", status);
        goto out;
    }
    rc = GH_OK;
out:
    if (added) curl_multi_remove_handle(src->multi, h);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc;
}

/* ---- publishing ---- */

/* Reads or fetches, parses and publishes a new set. GH_OK when a new set was
 * published, GH_DECLINED when nothing changed, GH_ERROR with <msg>. */
static int refresh(struct gh_jwks_source *src, char *msg, size_t size)
{
    struct body b = {.max = src->max_bytes};
    struct gh_jwks *set = NULL, *old = NULL;
    unsigned char hash[32];
    struct gh_err err;
    int rc;

    rc = src->is_url ? fetch_url(src, &b, msg, size) : read_file(src, &b, msg, size);
    if (rc != GH_OK) goto out;
    rc = GH_ERROR;
    if (EVP_Digest(b.p ? b.p : "", b.len, hash, NULL, EVP_sha256(), NULL) != 1) {
        snprintf(msg, size, "jwks: SHA-256 failed");
        goto out;
    }
    if (src->have_hash && memcmp(hash, src->hash, sizeof(hash)) == 0) {
        rc = GH_DECLINED;
        goto out;
    }
    err.msg[0] = '\0';
    set = gh_jwks_parse(b.p ? b.p : "", b.len, &err);
    if (set == NULL) {
        snprintf(msg, size, "%s", err.msg);
        goto out;
    }
    /* Replacing working keys by none would lock every client out. */
    if (set->nkeys == 0) {
        snprintf(msg, size, "jwks: no usable key (%zu skipped)", set->nskipped);
        goto out;
    }
    memcpy(src->hash, hash, sizeof(hash));
    src->have_hash = true;
    pthread_mutex_lock(&src->lock);
    old = src->cur;
    src->cur = set;
    src->st.nkeys = set->nkeys;
    set = NULL;
    atomic_fetch_add_explicit(&src->generation, 1, memory_order_release);
    pthread_mutex_unlock(&src->lock);
    rc = GH_OK;
out:
    gh_jwks_release(old);
    gh_jwks_release(set);
    free(b.p);
    return rc;
}

/* Sleeps on <cond> until <deadline_ns> (monotonic). <lock> is held. */
static void wait_until(struct gh_jwks_source *src, uint64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                          .tv_nsec = (long)(deadline_ns % 1000000000u)};
    pthread_cond_timedwait(&src->cond, &src->lock, &ts);
}

/* When the next refresh is due, kicks included. <lock> is held. */
static uint64_t next_due(struct gh_jwks_source *src)
{
    uint64_t due = src->next_ns;

    if (atomic_load_explicit(&src->kicked, memory_order_acquire)) {
        /* Kicks are limited among themselves (one refresh per min_refresh,
         * however many unknown kids arrive), not by the scheduled refresh:
         * an issuer that rotates just after one is picked up at once. */
        uint64_t at = src->last_kick_ns ? src->last_kick_ns + src->min_refresh_ns : 0;
        /* A kick never shortens a backoff: the issuer is already failing. */
        if (src->failing && src->is_url && src->next_ns > at) at = src->next_ns;
        if (at < due) due = at;
    }
    return due;
}

static void *source_main(void *arg)
{
    struct gh_jwks_source *src = arg;
    char msg[256];

    pthread_mutex_lock(&src->lock);
    while (!src->stop) {
        uint64_t start = gh_now_ns(), due = next_due(src);
        int rc;

        if (start < due) {
            wait_until(src, due);
            continue;
        }
        bool by_kick = atomic_exchange_explicit(&src->kicked, false, memory_order_acq_rel) &&
                       start < src->next_ns;
        if (by_kick) src->last_kick_ns = start;
        pthread_mutex_unlock(&src->lock);

        msg[0] = '\0';
        rc = refresh(src, msg, sizeof(msg));

        pthread_mutex_lock(&src->lock);
        src->last_attempt_ns = start;
        if (rc == GH_ERROR) {
            src->failing = true;
            src->st.failures++;
            snprintf(src->st.last_error, sizeof(src->st.last_error), "%s", msg);
            if (src->is_url) {
                src->next_ns = gh_now_ns() + src->backoff_ns;
                src->backoff_ns = src->backoff_ns * 2 > src->backoff_max_ns ? src->backoff_max_ns
                                                                            : src->backoff_ns * 2;
            } else {
                src->next_ns = gh_now_ns() + src->refresh_ns; /* retried when it changes */
            }
        } else {
            if (rc == GH_OK || src->is_url) {
                src->failing = false;
                src->st.failures = 0;
                src->st.last_error[0] = '\0';
                src->st.last_ok_ms = gh_wall_ms();
            }
            src->backoff_ns = src->backoff_min_ns;
            src->next_ns = gh_now_ns() + src->refresh_ns;
        }
        pthread_cond_broadcast(&src->cond);
        pthread_mutex_unlock(&src->lock);

        if (src->report != NULL && rc != GH_DECLINED) {
            if (rc == GH_OK) snprintf(msg, sizeof(msg), "jwks: %zu keys loaded", src->st.nkeys);
            src->report(src->report_arg, rc == GH_OK, msg);
        }
        pthread_mutex_lock(&src->lock);
    }
    pthread_mutex_unlock(&src->lock);
    return NULL;
}

/* ---- the public side ---- */

static bool has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

void gh_jwks_source_free(struct gh_jwks_source *src)
{
    if (src == NULL) return;
    if (src->started) {
        atomic_store(&src->stopping, true);
        if (src->multi != NULL) curl_multi_wakeup(src->multi); /* a transfer in progress */
        pthread_mutex_lock(&src->lock);
        src->stop = true;
        pthread_cond_broadcast(&src->cond);
        pthread_mutex_unlock(&src->lock);
        pthread_join(src->thread, NULL);
    }
    gh_jwks_release(src->cur);
    pthread_cond_destroy(&src->cond);
    pthread_mutex_destroy(&src->lock);
    if (src->multi != NULL) curl_multi_cleanup(src->multi);
    if (src->is_url) curl_global_cleanup();
    free(src->location);
    free(src);
}

struct gh_jwks_source *gh_jwks_source_new(const struct gh_jwks_source_opts *opts,
                                          struct gh_err *err)
{
    struct gh_jwks_source *src;
    pthread_condattr_t ca;
    char msg[256];

    if (opts->location == NULL || opts->location[0] == '\0') {
        gh_err_set(err, NULL, 0, 0, "jwks: no file or URL given");
        return NULL;
    }
    src = calloc(1, sizeof(*src));
    if (src == NULL || (src->location = strdup(opts->location)) == NULL) {
        free(src);
        gh_err_set(err, NULL, 0, 0, "jwks: out of memory");
        return NULL;
    }
    src->https = has_prefix_ci(src->location, "https://");
    src->is_url = src->https || has_prefix_ci(src->location, "http://");
    src->refresh_ns = (opts->refresh_ms ? opts->refresh_ms : src->is_url ? 300000u : 5000u) * MS;
    src->min_refresh_ns = (opts->min_refresh_ms ? opts->min_refresh_ms : 10000u) * MS;
    src->backoff_min_ns = (opts->backoff_min_ms ? opts->backoff_min_ms : 1000u) * MS;
    src->backoff_max_ns = (opts->backoff_max_ms ? opts->backoff_max_ms : 300000u) * MS;
    if (src->backoff_max_ns < src->backoff_min_ns) src->backoff_max_ns = src->backoff_min_ns;
    src->backoff_ns = src->backoff_min_ns;
    src->timeout_ms = (long)(opts->timeout_ms ? opts->timeout_ms : 5000u);
    src->max_bytes = opts->max_bytes ? opts->max_bytes : (size_t)1 << 20;
    src->report = opts->report;
    src->report_arg = opts->report_arg;
    atomic_init(&src->generation, 0);
    atomic_init(&src->kicked, false);
    atomic_init(&src->stopping, false);

    pthread_mutex_init(&src->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&src->cond, &ca);
    pthread_condattr_destroy(&ca);

    if (!src->is_url && strstr(src->location, "://") != NULL) {
        src->is_url = false;
        gh_err_set(err, NULL, 0, 0, "jwks: only http:// and https:// URLs are supported");
        goto fail;
    }
    if (src->is_url && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        src->is_url = false; /* nothing to clean up */
        gh_err_set(err, NULL, 0, 0, "jwks: libcurl failed to start");
        goto fail;
    }
    if (src->is_url && (src->multi = curl_multi_init()) == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwks: libcurl failed to start");
        goto fail;
    }
    src->last_attempt_ns = gh_now_ns();
    if (!src->is_url) {
        /* A file is local and quick: a bad one is a start-up error. */
        msg[0] = '\0';
        if (refresh(src, msg, sizeof(msg)) != GH_OK) {
            gh_err_set(err, src->location, 0, 0, "%s", msg);
            goto fail;
        }
        src->st.last_ok_ms = gh_wall_ms();
        src->next_ns = gh_now_ns() + src->refresh_ns;
    } else {
        src->next_ns = 0; /* fetch at once */
    }
    if (pthread_create(&src->thread, NULL, source_main, src) != 0) {
        gh_err_set(err, NULL, 0, 0, "jwks: cannot start the refresh thread");
        goto fail;
    }
    src->started = true;
    return src;
fail:
    gh_jwks_source_free(src);
    return NULL;
}

int gh_jwks_source_wait(struct gh_jwks_source *src, uint32_t timeout_ms)
{
    uint64_t deadline = gh_now_ns() + (uint64_t)timeout_ms * MS;
    int rc;

    pthread_mutex_lock(&src->lock);
    while (src->cur == NULL && !src->stop && gh_now_ns() < deadline)
        wait_until(src, deadline);
    rc = src->cur != NULL ? GH_OK : GH_AGAIN;
    pthread_mutex_unlock(&src->lock);
    return rc;
}

struct gh_jwks *gh_jwks_source_acquire(struct gh_jwks_source *src)
{
    struct gh_jwks *set;

    pthread_mutex_lock(&src->lock);
    set = src->cur;
    if (set != NULL) gh_jwks_ref(set);
    pthread_mutex_unlock(&src->lock);
    return set;
}

uint64_t gh_jwks_source_generation(const struct gh_jwks_source *src)
{
    return atomic_load_explicit(&src->generation, memory_order_acquire);
}

void gh_jwks_source_kick(struct gh_jwks_source *src)
{
    /* Only the first kick since the last refresh wakes the thread. */
    if (atomic_exchange_explicit(&src->kicked, true, memory_order_acq_rel)) return;
    pthread_mutex_lock(&src->lock);
    pthread_cond_broadcast(&src->cond); /* wait()ers share the condition */
    pthread_mutex_unlock(&src->lock);
}

void gh_jwks_source_status(struct gh_jwks_source *src, struct gh_jwks_source_status *out)
{
    pthread_mutex_lock(&src->lock);
    *out = src->st;
    pthread_mutex_unlock(&src->lock);
    out->generation = gh_jwks_source_generation(src);
}
