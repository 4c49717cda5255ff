/* Where a JWKS comes from (a file or an http(s) URL), kept fresh by its own
 * background thread so that no worker ever waits on disk or network for keys.
 *
 * - A file is read at start (a bad file fails gh_jwks_source_new) and again
 *   whenever its mtime, size or inode changes; it is checked every
 *   refresh_ms.
 * - A URL is fetched with libcurl on the source's thread (http and https
 *   only, at most 3 redirects and never from https down to http, timeout_ms
 *   for the whole transfer, at most max_bytes of body, status 200 required)
 *   right after start, then every refresh_ms, and soon after
 *   gh_jwks_source_kick() (a token with an unknown kid: the issuer may have
 *   rotated its keys), but never more often than once per min_refresh_ms.
 * - A failed refresh (network, status, size, a JWKS that gh_jwks_parse
 *   refuses or that has no usable key) keeps the last good set and retries
 *   after backoff_min_ms, doubling up to backoff_max_ms.
 * - A refresh that returns the same bytes as the current set changes
 *   nothing (the generation stays).
 *
 * Readers: gh_jwks_source_generation() is one atomic load; a worker keeps
 * the set it acquired and calls gh_jwks_source_acquire() (a short mutex
 * hold and an atomic increment) only when the generation moved, then
 * gh_jwks_release() on the set it drops. A set is immutable and freed when
 * its last holder releases it, so a reader never sees a freed set.
 */
#ifndef GH_AUTH_JWKS_SOURCE_H
#define GH_AUTH_JWKS_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/jwks.h"
#include "core/err.h"

struct gh_jwks_source_opts {
    const char *location;    /* a file path, or an http:// or https:// URL; copied */
    uint32_t refresh_ms;     /* 0: 300000 for a URL, 5000 (mtime check) for a file */
    uint32_t min_refresh_ms; /* 0: 10000; least time between two refreshes on kick */
    uint32_t timeout_ms;     /* 0: 5000; whole HTTP transfer */
    size_t max_bytes;        /* 0: 1 MiB */
    uint32_t backoff_min_ms; /* 0: 1000 */
    uint32_t backoff_max_ms; /* 0: 300000 */
    /* Called on the source's thread after each refresh that changed the set
     * (<ok> true) or failed (<ok> false, <msg> says why; never a secret). May
     * be NULL. Must not call back into the source. */
    void (*report)(void *arg, bool ok, const char *msg);
    void *report_arg;
};

struct gh_jwks_source_status {
    uint64_t generation;  /* sets published so far */
    size_t nkeys;         /* in the current set; 0 when none yet */
    uint64_t last_ok_ms;  /* wall clock of the last good refresh; 0 when none */
    uint32_t failures;    /* consecutive failed refreshes */
    char last_error[256]; /* "" after a success */
};

struct gh_jwks_source;

/* Starts a source for <opts>. For a file, the first read happens here and
 * its failure fails the call; for a URL, the first fetch starts on the
 * thread (see gh_jwks_source_wait). Call from the main thread: a URL source
 * calls curl_global_init(). Returns NULL with <err> filled. */
struct gh_jwks_source *gh_jwks_source_new(const struct gh_jwks_source_opts *opts,
                                          struct gh_err *err);

/* Waits up to <timeout_ms> for a first set. GH_OK once there is one,
 * GH_AGAIN on timeout. Blocks: for start-up and tests, never on a worker. */
int gh_jwks_source_wait(struct gh_jwks_source *src, uint32_t timeout_ms);

/* The current set with a reference for the caller (release it with
 * gh_jwks_release), or NULL while there is none yet. Thread-safe. */
struct gh_jwks *gh_jwks_source_acquire(struct gh_jwks_source *src);

/* How many sets have been published; changes when acquire would give a new
 * set. One atomic load; thread-safe. */
uint64_t gh_jwks_source_generation(const struct gh_jwks_source *src);

/* Asks for a refresh soon (rate-limited as the header says). Never blocks
 * for long: after the first kick, further kicks until the refresh cost one
 * atomic exchange. Thread-safe. */
void gh_jwks_source_kick(struct gh_jwks_source *src);

void gh_jwks_source_status(struct gh_jwks_source *src, struct gh_jwks_source_status *out);

/* Stops the thread, drops the source's reference to its set (holders keep
 * theirs) and frees <src>. Joins the thread: that takes a few milliseconds
 * even during a transfer (the transfer is woken and abandoned), yet it is
 * meant for the main thread, not a worker loop. NULL is fine. */
void gh_jwks_source_free(struct gh_jwks_source *src);

#endif
