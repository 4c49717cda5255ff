/* Master key rotation (secrets.h, gh_secrets_rotate_master): re-wraps every
 * data key under a new master key version while the gateway keeps running.
 *
 * Order, so that an interruption at any point resumes to the same target:
 *   1. record the rotation (from N to N + 1) in the store, or find the
 *      pending one: a rerun never makes a second new version;
 *   2. make version N + 1 at the provider (already there on a rerun, or
 *      made by gh_secrets_prepare_master: fine), compare it with the
 *      store's check, and put it in use (new values are sealed under it);
 *   3. in batches: read rows still under an older version, unwrap each data
 *      key and wrap it under N + 1, and write the batch in one transaction
 *      where each row changes only if it still holds what was read
 *      (compare-and-set: a value put meanwhile is already under N + 1 and
 *      must not get an old data key back);
 *   4. mark the rotation finished once no row is left under an older
 *      version.
 * Values are never decrypted, and old versions are never deleted: a reader
 * that meets a row of either version opens it.
 *
 * gh_secrets_prepare_master does step 2 without putting the version in
 * use, so that copies of a master key file can hold it before any value
 * needs it (docs/secrets.md, "Rotation with copies of the file"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "secrets/kms.h"
#include "secrets/secrets.h"
#include "secrets/secrets_int.h"
#include "store/store.h"

#define BATCH_DEFAULT 100

/* Re-wraps the data keys of <rows> under <to> into <rw>; sets *n. */
static int rewrap_rows(struct gh_secrets *s, const struct gh_store_secret *rows, size_t count,
                       uint32_t to, struct gh_store_secret_rewrap *rw, struct gh_err *err)
{
    uint8_t dek[GH_KMS_DEK_LEN];
    int rc = GH_OK;

    for (size_t i = 0; i < count && rc == GH_OK; i++) {
        const struct gh_store_secret *r = &rows[i];
        struct gh_store_secret_rewrap *w = &rw[i];

        memset(w, 0, sizeof(*w));
        snprintf(w->tenant_id, sizeof(w->tenant_id), "%s", r->tenant_id);
        snprintf(w->name, sizeof(w->name), "%s", r->name);
        w->old_version = r->kek_version;
        w->new_version = to;
        w->old_len = r->wrapped_len;
        memcpy(w->old_wrapped, r->wrapped_dek, r->wrapped_len);
        rc = s->kms->ops->unwrap(s->kms, r->kek_version, r->wrapped_dek, r->wrapped_len, dek, err);
        if (rc == GH_OK)
            rc = s->kms->ops->wrap(s->kms, to, dek, w->new_wrapped, sizeof(w->new_wrapped),
                                   &w->new_len, err);
        if (rc != GH_OK) {
            char msg[sizeof(err->msg)];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            gh_err_set(err, NULL, 0, 0, "secret (%s, %s): %s", r->tenant_id, r->name, msg);
        }
    }
    OPENSSL_cleanse(dek, sizeof(dek));
    return rc;
}

static int count_older(uint32_t version, uint64_t rows, void *arg)
{
    uint64_t *acc = arg;

    if (version < (uint32_t)acc[1]) acc[0] += rows;
    return GH_OK;
}

/* GH_ERROR: prepared version <version> is not in this provider, which
 * holds up to <held>. */
static int not_held(struct gh_secrets *s, uint32_t version, uint32_t held, struct gh_err *err)
{
    return gh_err_set(err, NULL, 0, 0,
                      "master key version %u was prepared (rotate-master --prepare), but the %s "
                      "has only up to version %u: copy the master key file of the node that "
                      "prepared it here (and to every node) first",
                      version, s->place, held);
}

int gh_secrets_rotate_master(struct gh_secrets *s, const struct gh_secrets_rotate_opts *opts,
                             struct gh_secrets_rotate_result *res, struct gh_err *err)
{
    size_t batch = opts && opts->batch ? opts->batch : BATCH_DEFAULT;
    uint64_t limit = opts ? opts->limit : 0;
    struct gh_store_secrets_rotation rot;
    struct gh_store_secret *rows = NULL;
    struct gh_store_secret_rewrap *rw = NULL;
    uint64_t acc[2];
    uint32_t cur, newest = 0;
    bool started = false;
    int rc = GH_ERROR;

    memset(res, 0, sizeof(*res));
    if (batch > GH_STORE_LIST_MAX) batch = GH_STORE_LIST_MAX;
    if (gh_secrets_current_version(s, &cur, err) != GH_OK) return GH_ERROR;
    /* A newer version made on another node's provider (another copy of the
     * file): making ours would give that version a second key. */
    if (gh_secrets__check_version(s, cur, false, &newest, err) != GH_OK) return GH_ERROR;
    if (newest > cur) {
        uint32_t prepared = 0, held = 0;
        if (gh_secrets_prepared_version(s, &prepared, NULL, err) != GH_OK ||
            s->kms->ops->current(s->kms, &held, err) != GH_OK)
            return GH_ERROR;
        /* The version `--prepare` made: the rotation puts it in use, on a
         * provider that holds it. */
        if (prepared != newest || newest != cur + 1)
            return gh_err_set(err, NULL, 0, 0,
                              "the store has master key version %u (a rotation made it "
                              "elsewhere), but the %s has only up to version %u: give this node "
                              "that version first (copy the master key file of the node that "
                              "rotated)",
                              newest, s->place, cur);
        if (held < newest) return not_held(s, newest, held, err);
    }
    /* 1. Record it first (or find the pending one). */
    if (gh_store_secrets_rotation_begin(s->store, cur, cur + 1, &rot, &started, err) != GH_OK)
        return GH_ERROR;
    res->from_version = rot.from_version;
    res->to_version = rot.to_version;
    res->started = started;
    if (rot.to_version > cur + 1)
        return gh_err_set(err, NULL, 0, 0,
                          "a rotation to master key version %u is pending, but the provider's "
                          "newest version is %u: was the master key restored from an older "
                          "backup?",
                          rot.to_version, cur);
    if (opts && opts->on_begin && (rc = opts->on_begin(res, opts->arg, err)) != GH_OK) return rc;
    /* 2. The new version (kept when a previous run made it). */
    if (s->kms->ops->create_version(s->kms, rot.to_version, err) != GH_OK) return GH_ERROR;
    /* Its check, before any row is wrapped under it: two operators rotating
     * with two copies of the file at once make two keys of one version, and
     * the second to record its check stops here. */
    if (gh_secrets__check_version(s, rot.to_version, false, &newest, err) != GH_OK) return GH_ERROR;
    /* In use from now on: new values are sealed under it as rows move. */
    if (gh_store_secrets_kek_activate(s->store, rot.to_version, err) != GH_OK) return GH_ERROR;

    rows = calloc(batch, sizeof(*rows));
    rw = calloc(batch, sizeof(*rw));
    if (rows == NULL || rw == NULL) {
        gh_err_set(err, NULL, 0, 0, "out of memory");
        goto out;
    }
    /* 3. Batches until no row is older, or the limit. */
    for (;;) {
        size_t want = batch, count = 0, applied = 0;

        if (limit > 0 && res->rewrapped >= limit) break;
        if (limit > 0 && limit - res->rewrapped < want) want = (size_t)(limit - res->rewrapped);
        if (gh_store_secrets_stale(s->store, rot.to_version, want, rows, &count, err) != GH_OK)
            goto out;
        if (count == 0) break;
        if (rewrap_rows(s, rows, count, rot.to_version, rw, err) != GH_OK ||
            gh_store_secrets_rewrap(s->store, rw, count, &applied, err) != GH_OK)
            goto out;
        res->rewrapped += applied;
        /* A row that changed under us was put anew (under the new version)
         * or deleted: the next read no longer returns it. */
    }
    acc[0] = 0;
    acc[1] = rot.to_version;
    if (gh_store_secrets_versions(s->store, count_older, acc, err) != GH_OK) goto out;
    res->remaining = acc[0];
    /* 4. Done when nothing is left under an older version. */
    if (res->remaining == 0) {
        if (gh_store_secrets_rotation_finish(s->store, rot.to_version, err) != GH_OK) goto out;
        res->finished = true;
    }
    rc = GH_OK;
out:
    if (gh_store_secrets_rotation_get(s->store, &rot, NULL) == GH_OK) res->total = rot.rewrapped;
    free(rows);
    if (rw != NULL) OPENSSL_cleanse(rw, batch * sizeof(*rw));
    free(rw);
    return rc;
}

/* GH_ERROR with "a rotation ... is pending: <what> (...)" while one is
 * pending (or the store cannot say); GH_OK otherwise. */
static int refuse_while_pending(struct gh_secrets *s, const char *what, struct gh_err *err)
{
    struct gh_store_secrets_rotation rot;
    int rc = gh_store_secrets_rotation_get(s->store, &rot, err);

    if (rc == GH_OK && rot.finished_at == 0)
        return gh_err_set(err, NULL, 0, 0,
                          "a rotation to master key version %u is pending: %s (gatehouse secrets "
                          "rotate-master)",
                          rot.to_version, what);
    return rc == GH_OK || rc == GH_STORE_NOT_FOUND ? GH_OK : GH_ERROR;
}

int gh_secrets_prepare_master(struct gh_secrets *s, struct gh_secrets_prepare_result *res,
                              struct gh_err *err)
{
    uint32_t cur, held = 0, prepared = 0, newest = 0;

    memset(res, 0, sizeof(*res));
    if (refuse_while_pending(s, "finish it first", err) != GH_OK) return GH_ERROR;
    if (gh_secrets_current_version(s, &cur, err) != GH_OK ||
        gh_secrets_prepared_version(s, &prepared, NULL, err) != GH_OK ||
        s->kms->ops->current(s->kms, &held, err) != GH_OK)
        return GH_ERROR;
    res->from_version = cur;
    if (prepared != 0) {
        /* Made already (here or on another node): the same one, never a
         * second, so that every copy made meanwhile stays good. */
        res->version = prepared;
        res->already = true;
        if (held < prepared) return not_held(s, prepared, held, err);
        return GH_OK;
    }
    /* The same guard as a rotation's: a newer version in the store made on
     * another copy would get a second key from ours. */
    if (gh_secrets__check_version(s, cur, false, &newest, err) != GH_OK) return GH_ERROR;
    if (newest > cur || held > cur)
        return gh_err_set(err, NULL, 0, 0,
                          "the %s holds master key version %u and the store %u, beyond version "
                          "%u in use: not a state a prepare starts from",
                          s->place, held, newest, cur);
    res->version = cur + 1;
    if (s->kms->ops->create_version(s->kms, res->version, err) != GH_OK) return GH_ERROR;
    /* Recorded prepared: no node seals under it, whichever copies hold it. */
    if (gh_secrets__check_version(s, res->version, true, &newest, err) != GH_OK) return GH_ERROR;
    /* A plain rotate-master run at the same moment records the version in
     * use instead (its check came first, or it put ours in use): then it is
     * no prepared version, and saying so would mislead. */
    if (gh_secrets_prepared_version(s, &prepared, NULL, err) != GH_OK) return GH_ERROR;
    if (prepared != res->version)
        return gh_err_set(err, NULL, 0, 0,
                          "master key version %u was put in use meanwhile (a rotate-master ran "
                          "at the same time): it is not prepared; see gatehouse secrets status",
                          res->version);
    return GH_OK;
}

int gh_secrets_unprepare_master(struct gh_secrets *s, uint32_t *version, struct gh_err *err)
{
    *version = 0;
    if (refuse_while_pending(s, "it uses the prepared version; finish it", err) != GH_OK)
        return GH_ERROR;
    if (gh_secrets_prepared_version(s, version, NULL, err) != GH_OK) return GH_ERROR;
    if (*version == 0) return gh_err_set(err, NULL, 0, 0, "no master key version is prepared");
    /* Only while still prepared (the store checks again): nothing was ever
     * sealed under it, so forgetting its check loses nothing. */
    return gh_store_secrets_kek_unprepare(s->store, *version, err) == GH_OK ? GH_OK : GH_ERROR;
}
