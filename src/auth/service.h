/* The auth service: the background side of authentication.
 *
 * - A refresher thread polls the store's change counter every 250 ms and,
 *   when it moved, loads a new key directory and publishes it to every
 *   worker (revocations and suspensions take effect within a second). The
 *   store pushes changes too (gh_store_watch_changes: PostgreSQL's
 *   LISTEN/NOTIFY, so a change made on another node is seen within a round
 *   trip); each push pokes the refresher, and the poll is the fallback.
 * - Verifier threads run Argon2id (about 20 ms each) for keys a worker has
 *   not verified yet; the worker's request waits, suspended, and resumes
 *   when its job comes back. The queue is bounded.
 * - last_used times arrive from workers in batches and are written once a
 *   second, never per request.
 * Workers never call the store. */
#ifndef GH_AUTH_SERVICE_H
#define GH_AUTH_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "auth/apikey.h"
#include "auth/keydir.h"
#include "core/err.h"
#include "store/store.h"

struct gh_worker;
struct gh_req;
struct gh_auth_service;

/* One Argon2 verification. Owned by the service until it is handed back to
 * the worker's done list; then by the worker. The waiter fields are only
 * touched on the worker thread (the service reads phc/secret, writes ok). */
struct gh_verify_job {
    struct gh_worker *worker;
    struct gh_req *req; /* first waiting request (linked by req->next_waiter); NULL: none */
    bool background;    /* a refresh of a cached verification; nobody waits */
    bool ok;
    uint8_t sha[32]; /* SHA-256 of the full key: the cache key */
    char key_id[GH_STORE_KEY_ID_SIZE];
    char secret[GH_APIKEY_SECRET_LEN + 1];
    char phc[GH_STORE_HASH_SIZE];
    struct gh_verify_job *next;         /* the service's queue, then the done list */
    struct gh_verify_job *pending_next; /* the worker's list of jobs out */
};

/* The gateway's own token keys: the refresher generates a new signing key
 * when the newest is older than <rotate_every_ms> (or there is none), and
 * keeps each published for <rotate_every_ms> + <ttl_ms> (its tokens' life)
 * plus five minutes. */
struct gh_auth_token_params {
    const char *algorithm; /* "ES256" or "EdDSA" */
    uint64_t rotate_every_ms;
    uint64_t ttl_ms;
    /* Seals new signing keys and opens sealed ones (secrets.h, "own private
     * keys"); NULL: keys are kept in clear (unit tests). */
    struct gh_secrets *secrets;
};

/* Called on the refresher thread with a new directory (one reference is the
 * callee's to keep or drop). */
typedef void (*gh_keydir_publish_fn)(void *arg, struct gh_keydir *d);

/* Loads the first directory from <st> (synchronously, so the gateway starts
 * with every key known). No thread runs until gh_auth_service_run(): the
 * threads publish to workers, which must exist first. */
struct gh_auth_service *gh_auth_service_start(struct gh_store *st, unsigned verify_threads,
                                              const struct gh_auth_token_params *tokens,
                                              gh_keydir_publish_fn publish, void *arg,
                                              struct gh_err *err);
/* Starts the refresher and verifier threads. GH_OK or GH_ERROR. */
int gh_auth_service_run(struct gh_auth_service *s, struct gh_err *err);
void gh_auth_service_stop(struct gh_auth_service *s);

/* The store's change push (for /metrics): whether it runs, is connected,
 * and how many notifications came. Inactive when <s> is NULL or not run. */
void gh_auth_service_change_stats(const struct gh_auth_service *s,
                                  struct gh_store_watch_stats *out);

/* A reference to the current directory (for a worker's start). */
struct gh_keydir *gh_auth_service_keydir(struct gh_auth_service *s);

/* Worker thread: queues <job>. Returns false when the queue is full (the
 * caller answers 503 and frees the job). */
bool gh_auth_verify_submit(struct gh_auth_service *s, struct gh_verify_job *job);

/* Worker thread: hands last-used times over (copied). */
void gh_auth_touch(struct gh_auth_service *s, const struct gh_store_key_touch *t, size_t n);

/* Asks the refresher to look at the store now (after an admin write). */
void gh_auth_service_poke(struct gh_auth_service *s);

/* Done jobs go back to the worker through this (defined by the worker). */
void gh_worker_verify_done(struct gh_worker *w, struct gh_verify_job *job);

#endif
