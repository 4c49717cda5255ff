/* The engine-independent wrappers of the secrets ops (store.h, "Secrets"):
 * they validate names, sizes and versions and set times, so every engine
 * refuses the same input with the same message. */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "store/store.h"

static int invalid(struct gh_err *err, const char *field, const char *rule)
{
    gh_err_set(err, NULL, 0, 0, "%s: %s", field, rule);
    return GH_STORE_INVALID;
}

bool gh_store_valid_secret_name(const char *s)
{
    size_t n = 0;

    if (s == NULL || s[0] == '/' || s[0] == '.') return false;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n >= GH_STORE_SECRET_NAME_SIZE - 1) return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '/' || c == '-'))
            return false;
    }
    return n > 0;
}

static int check_key(const char *tenant_id, const char *name, struct gh_err *err)
{
    if (!gh_store_valid_tenant_id(tenant_id))
        return invalid(err, "tenant", "must be \"system\" or a tenant id");
    if (!gh_store_valid_secret_name(name))
        return invalid(err, "name", "must be [A-Za-z0-9._/-]{1,128}, not starting with / or .");
    return GH_OK;
}

int gh_store_secret_put(struct gh_store *st, struct gh_store_secret *s, struct gh_err *err)
{
    int rc = check_key(s->tenant_id, s->name, err);

    if (rc != GH_OK) return rc;
    if (s->ciphertext_len <= 16 || s->ciphertext_len > sizeof(s->ciphertext))
        return invalid(err, "ciphertext", "must be 17..8208 bytes");
    if (s->wrapped_len == 0 || s->wrapped_len > sizeof(s->wrapped_dek))
        return invalid(err, "wrapped_dek", "must be 1..512 bytes");
    if (s->kek_version == 0 || s->kek_version > INT32_MAX)
        return invalid(err, "kek_version", "must be >= 1");
    s->created_at = s->updated_at = (int64_t)gh_wall_ms();
    return st->ops->secret_put(st, s, s->updated_at, err);
}

int gh_store_secret_get(struct gh_store *st, const char *tenant_id, const char *name,
                        struct gh_store_secret *out, struct gh_err *err)
{
    if (check_key(tenant_id, name, err) != GH_OK) {
        gh_err_set(err, NULL, 0, 0, "secret not found");
        return GH_STORE_NOT_FOUND;
    }
    return st->ops->secret_get(st, tenant_id, name, out, err);
}

int gh_store_secret_delete(struct gh_store *st, const char *tenant_id, const char *name,
                           struct gh_err *err)
{
    int rc = check_key(tenant_id, name, err);

    if (rc != GH_OK) return rc;
    return st->ops->secret_delete(st, tenant_id, name, err);
}

int gh_store_secrets_walk(struct gh_store *st, const char *tenant_id, gh_store_secret_cb cb,
                          void *arg, struct gh_err *err)
{
    if (tenant_id != NULL && !gh_store_valid_tenant_id(tenant_id))
        return invalid(err, "tenant", "must be \"system\" or a tenant id");
    return st->ops->secrets_walk(st, tenant_id, cb, arg, err);
}

int gh_store_secrets_versions(struct gh_store *st, gh_store_secret_version_cb cb, void *arg,
                              struct gh_err *err)
{
    return st->ops->secrets_versions(st, cb, arg, err);
}

static int add_rows(uint32_t version, uint64_t rows, void *arg)
{
    (void)version;
    *(uint64_t *)arg += rows;
    return GH_OK;
}

int gh_store_secrets_count(struct gh_store *st, uint64_t *rows, struct gh_err *err)
{
    *rows = 0;
    return st->ops->secrets_versions(st, add_rows, rows, err);
}

int gh_store_secrets_stale(struct gh_store *st, uint32_t version, size_t limit,
                           struct gh_store_secret *out, size_t *count, struct gh_err *err)
{
    *count = 0;
    if (limit == 0 || limit > GH_STORE_LIST_MAX) return invalid(err, "limit", "must be 1..200");
    if (version == 0) return invalid(err, "version", "must be >= 1");
    return st->ops->secrets_stale(st, version, limit, out, count, err);
}

int gh_store_secrets_rewrap(struct gh_store *st, const struct gh_store_secret_rewrap *rw, size_t n,
                            size_t *applied, struct gh_err *err)
{
    *applied = 0;
    if (n == 0) return GH_OK;
    for (size_t i = 0; i < n; i++) {
        int rc = check_key(rw[i].tenant_id, rw[i].name, err);
        if (rc != GH_OK) return rc;
        if (rw[i].old_len == 0 || rw[i].old_len > GH_STORE_SECRET_WRAP_MAX || rw[i].new_len == 0 ||
            rw[i].new_len > GH_STORE_SECRET_WRAP_MAX)
            return invalid(err, "wrapped_dek", "must be 1..512 bytes");
        if (rw[i].old_version == 0 || rw[i].new_version <= rw[i].old_version)
            return invalid(err, "kek_version", "must move to a newer version");
    }
    return st->ops->secrets_rewrap(st, rw, n, applied, err);
}

int gh_store_secrets_rotation_begin(struct gh_store *st, uint32_t from, uint32_t to,
                                    struct gh_store_secrets_rotation *out, bool *started,
                                    struct gh_err *err)
{
    struct gh_store_secrets_rotation want = {.from_version = from, .to_version = to};

    *started = false;
    if (from == 0 || to != from + 1) return invalid(err, "version", "must go from N to N+1");
    want.started_at = (int64_t)gh_wall_ms();
    return st->ops->secrets_rotation_begin(st, &want, out, started, err);
}

int gh_store_secrets_rotation_get(struct gh_store *st, struct gh_store_secrets_rotation *out,
                                  struct gh_err *err)
{
    memset(out, 0, sizeof(*out));
    return st->ops->secrets_rotation_get(st, out, err);
}

int gh_store_secrets_rotation_finish(struct gh_store *st, uint32_t to_version, struct gh_err *err)
{
    if (to_version < 2) return invalid(err, "version", "must be >= 2");
    return st->ops->secrets_rotation_finish(st, to_version, (int64_t)gh_wall_ms(), err);
}

int gh_store_secrets_kek_check(struct gh_store *st, uint32_t version, const uint8_t *check,
                               size_t len, bool prepared, uint8_t *stored, size_t *stored_len,
                               uint32_t *newest, struct gh_err *err)
{
    *stored_len = 0;
    *newest = 0;
    if (version == 0) return invalid(err, "version", "must be >= 1");
    if (check == NULL || len == 0 || len > GH_STORE_SECRET_WRAP_MAX)
        return invalid(err, "check", "must be 1..512 bytes");
    return st->ops->secrets_kek_check(st, version, check, len, prepared, (int64_t)gh_wall_ms(),
                                      stored, stored_len, newest, err);
}

int gh_store_secrets_kek_state(struct gh_store *st, uint32_t *in_use, uint32_t *newest,
                               struct gh_err *err)
{
    *in_use = *newest = 0;
    return st->ops->secrets_kek_state(st, in_use, newest, err);
}

int gh_store_secrets_kek_activate(struct gh_store *st, uint32_t version, struct gh_err *err)
{
    if (version == 0) return invalid(err, "version", "must be >= 1");
    return st->ops->secrets_kek_activate(st, version, err);
}

int gh_store_private_key_set(struct gh_store *st, enum gh_store_private_kind kind, const char *id,
                             const char *text, struct gh_err *err)
{
    size_t n = text ? strlen(text) : 0;

    if (kind != GH_STORE_PRIVATE_AUDIT_KEY && kind != GH_STORE_PRIVATE_SIGNING_KEY)
        return invalid(err, "kind", "must be an audit or a signing key");
    if (id == NULL || id[0] == '\0' || strlen(id) > 32)
        return invalid(err, "id", "must be 1-32 bytes");
    if (n == 0 || n > 511 ||
        (strncmp(text, "secret:", 7) != 0 && strncmp(text, "-----BEGIN ", 11) != 0))
        return invalid(err, "private_pem", "must be a PEM or secret:NAME of at most 511 bytes");
    return st->ops->private_key_set(st, kind, id, text, err);
}

int gh_store_secrets_kek_unprepare(struct gh_store *st, uint32_t version, struct gh_err *err)
{
    if (version == 0) return invalid(err, "version", "must be >= 1");
    return st->ops->secrets_kek_unprepare(st, version, err);
}
