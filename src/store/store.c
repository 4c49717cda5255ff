/* The engine-independent half of the store: the gh_store_* wrappers that
 * validate input, draw ids, set times and turn cursors into keysets before
 * calling an implementation's ops, so every engine refuses the same input
 * with the same message. */
#include "store/store.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "core/clock.h"

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* ---- Validation ------------------------------------------------------------- */

static bool is_lower_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_base62(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* True when <s> is 1..<max> characters, each alphanumeric (lower case) or
 * in <extra>. */
static bool valid_token(const char *s, size_t max, const char *extra)
{
    size_t n = 0;

    if (s == NULL) return false;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= max) return false;
        if (!is_lower_alnum(c) && strchr(extra, c) == NULL) return false;
    }
    return n > 0;
}

bool gh_store_valid_tenant_name(const char *s)
{
    return valid_token(s, GH_STORE_NAME_MAX, "._-");
}

bool gh_store_valid_role(const char *s)
{
    return valid_token(s, GH_STORE_TOKEN_MAX, ":._-");
}

bool gh_store_valid_scope(const char *s)
{
    return valid_token(s, GH_STORE_TOKEN_MAX, ":._-");
}

static bool valid_base62(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_base62((unsigned char)s[i])) return false;
    return s[len] == '\0';
}

bool gh_store_valid_tenant_id(const char *s)
{
    if (s == NULL) return false;
    if (strcmp(s, GH_STORE_SYSTEM_TENANT) == 0) return true;
    return strncmp(s, "tn_", 3) == 0 && strnlen(s, 64) == 3 + GH_STORE_TENANT_ID_RAND &&
           valid_base62(s + 3, GH_STORE_TENANT_ID_RAND);
}

bool gh_store_valid_key_id(const char *s)
{
    return s != NULL && strnlen(s, 64) == GH_STORE_KEY_ID_LEN &&
           valid_base62(s, GH_STORE_KEY_ID_LEN);
}

/* Well-formed UTF-8 (RFC 3629 §4: no overlongs, no surrogates, <= U+10FFFF)
 * without C0, DEL or C1 control characters, at most 64 bytes. */
bool gh_store_valid_key_name(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    if (s == NULL) return false;
    while (p[i] != '\0') {
        unsigned char c = p[i];
        uint32_t cp;
        size_t n;

        if (i >= GH_STORE_NAME_MAX) return false;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) return false;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return false; /* also stops at the NUL */
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
            return false;
        i += n + 1;
    }
    return i <= GH_STORE_NAME_MAX;
}

/* A JWT ID: printable ASCII without spaces, 1..128 characters. */
static bool valid_jti(const char *s)
{
    size_t n = 0;

    if (s == NULL) return false;
    for (; s[n] != '\0'; n++)
        if (n >= GH_STORE_JTI_MAX || (unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e)
            return false;
    return n > 0;
}

/* An Argon2id PHC string ("$argon2id$v=19$m=...,t=...,p=...$salt$hash"). Only
 * its shape is checked; the auth module parses it. */
static bool valid_phc(const char *s)
{
    size_t n;

    if (strncmp(s, "$argon2id$", 10) != 0) return false;
    for (n = 0; s[n] != '\0'; n++)
        if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e) return false;
    return n <= GH_STORE_HASH_MAX;
}

/* "YYYY-MM" or "YYYY-MM-DD", a real date (Gregorian leap years). */
bool gh_store_valid_period(const char *s)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year = 0, month, day;
    size_t n;

    if (s == NULL) return false;
    n = strnlen(s, GH_STORE_PERIOD_SIZE);
    if (n != 7 && n != 10) return false;
    for (size_t i = 0; i < n; i++) {
        if (i == 4 || i == 7) {
            if (s[i] != '-') return false;
        } else if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    for (int i = 0; i < 4; i++)
        year = year * 10 + (s[i] - '0');
    month = (s[5] - '0') * 10 + (s[6] - '0');
    if (month < 1 || month > 12) return false;
    if (n == 7) return true;
    day = (s[8] - '0') * 10 + (s[9] - '0');
    if (day < 1 || day > mdays[month - 1]) return false;
    return month != 2 || day < 29 || (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0));
}

/* A tenant id as usage rows and limit events take it: 1..31 bytes without
 * control characters in an array of <size> bytes. Not
 * gh_store_valid_tenant_id(): a JWT's tenant claim need not be a store id. */
static bool valid_usage_tenant(const char *s, size_t size)
{
    size_t n;

    if (s == NULL) return false;
    n = strnlen(s, size);
    if (n == 0 || n >= size || n >= GH_STORE_TENANT_ID_SIZE) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f) return false;
    return true;
}

/* A limit event's metric: [a-z_]{1,31}. */
static bool valid_metric(const char *s, size_t size)
{
    size_t n = strnlen(s, size);

    if (n == 0 || n >= size) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_')) return false;
    return true;
}

/* True when the fixed array <s> of <size> bytes holds a terminated string. */
static bool terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

/* Fills <err> with "<field>: <rule>" and returns GH_STORE_INVALID. */
static int invalid(struct gh_err *err, const char *field, const char *rule)
{
    gh_err_set(err, NULL, 0, 0, "%s: %s", field, rule);
    return GH_STORE_INVALID;
}

/* Checks a role or scope list of a key record: count, each entry's rule, and
 * no duplicates. <what> is "roles" or "scopes". */
static int check_list(const char (*items)[GH_STORE_TOKEN_SIZE], size_t n, size_t max,
                      const char *what, bool (*valid)(const char *), struct gh_err *err)
{
    if (n > max) {
        gh_err_set(err, NULL, 0, 0, "%s: too many entries (%zu; at most %zu)", what, n, max);
        return GH_STORE_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        if (!terminated(items[i], GH_STORE_TOKEN_SIZE) || !valid(items[i])) {
            gh_err_set(err, NULL, 0, 0, "%s[%zu]: must be 1-%d characters of [a-z0-9:._-]", what, i,
                       GH_STORE_TOKEN_MAX);
            return GH_STORE_INVALID;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(items[i], items[j]) == 0) {
                gh_err_set(err, NULL, 0, 0, "%s[%zu]: duplicate of %s[%zu]", what, i, what, j);
                return GH_STORE_INVALID;
            }
    }
    return GH_OK;
}

/* ---- Status names ----------------------------------------------------------- */

const char *gh_store_tenant_status_name(enum gh_store_tenant_status s)
{
    switch (s) {
    case GH_STORE_TENANT_ACTIVE: return "active";
    case GH_STORE_TENANT_SUSPENDED: return "suspended";
    default: return "";
    }
}

const char *gh_store_key_status_name(enum gh_store_key_status s)
{
    switch (s) {
    case GH_STORE_KEY_ACTIVE: return "active";
    case GH_STORE_KEY_REVOKED: return "revoked";
    default: return "";
    }
}

enum gh_store_tenant_status gh_store_tenant_status_parse(const char *s)
{
    if (s == NULL) return GH_STORE_TENANT_ANY;
    if (strcmp(s, "active") == 0) return GH_STORE_TENANT_ACTIVE;
    if (strcmp(s, "suspended") == 0) return GH_STORE_TENANT_SUSPENDED;
    return GH_STORE_TENANT_ANY;
}

enum gh_store_key_status gh_store_key_status_parse(const char *s)
{
    if (s == NULL) return GH_STORE_KEY_ANY;
    if (strcmp(s, "active") == 0) return GH_STORE_KEY_ACTIVE;
    if (strcmp(s, "revoked") == 0) return GH_STORE_KEY_REVOKED;
    return GH_STORE_KEY_ANY;
}

/* ---- Ids and cursors -------------------------------------------------------- */

int gh_store_random_base62(char *out, size_t n, struct gh_err *err)
{
    unsigned char buf[64];
    size_t got = 0;

    while (got < n) {
        if (RAND_bytes(buf, sizeof(buf)) != 1)
            return gh_err_set(err, NULL, 0, 0, "store: the CSPRNG failed");
        /* 248 = 4 * 62: bytes at or above it are dropped so that every
         * character is equally likely. */
        for (size_t i = 0; i < sizeof(buf) && got < n; i++)
            if (buf[i] < 248) out[got++] = base62[buf[i] % 62];
    }
    out[n] = '\0';
    return GH_OK;
}

/* Cursor text: "<kind>1.<created_at>.<id>", e.g. "t1.1700000000000.tn_...".
 * <kind> is 't' for tenants and 'k' for keys; "1" is the format version. The
 * text is URL-safe. Callers treat it as opaque. */
static void cursor_encode(char kind, int64_t created_at, const char *id,
                          char out[GH_STORE_CURSOR_SIZE])
{
    snprintf(out, GH_STORE_CURSOR_SIZE, "%c1.%" PRId64 ".%s", kind, created_at, id);
}

static int cursor_decode(char kind, const char *text, struct gh_store_keyset *ks,
                         struct gh_err *err)
{
    const char *p = text;
    int64_t v = 0;
    size_t digits = 0;
    bool id_ok;

    if (strnlen(text, GH_STORE_CURSOR_SIZE) >= GH_STORE_CURSOR_SIZE || p[0] != kind ||
        p[1] != '1' || p[2] != '.')
        goto bad;
    for (p += 3; *p >= '0' && *p <= '9'; p++, digits++) {
        if (v > (INT64_MAX - (*p - '0')) / 10) goto bad;
        v = v * 10 + (*p - '0');
    }
    if (digits == 0 || (digits > 1 && p[-(ptrdiff_t)digits] == '0') || *p != '.') goto bad;
    p++;
    id_ok = kind == 't' ? gh_store_valid_tenant_id(p) : gh_store_valid_key_id(p);
    if (!id_ok) goto bad;
    ks->created_at = v;
    snprintf(ks->id, sizeof(ks->id), "%s", p);
    return GH_OK;
bad:
    gh_err_set(err, NULL, 0, 0, "cursor: not a cursor of this list");
    return GH_STORE_INVALID;
}

/* Validates <page> and decodes its cursor into <ks>; sets *after to <ks> or
 * NULL for the first page. */
static int page_start(char kind, struct gh_store_page *page, struct gh_store_keyset *ks,
                      const struct gh_store_keyset **after, struct gh_err *err)
{
    int rc;

    page->count = 0;
    page->next[0] = '\0';
    if (page->limit < 1 || page->limit > GH_STORE_LIST_MAX) {
        gh_err_set(err, NULL, 0, 0, "limit: must be 1-%d", GH_STORE_LIST_MAX);
        return GH_STORE_INVALID;
    }
    *after = NULL;
    if (page->cursor == NULL || page->cursor[0] == '\0') return GH_OK;
    rc = cursor_decode(kind, page->cursor, ks, err);
    if (rc == GH_OK) *after = ks;
    return rc;
}

/* ---- Lifecycle -------------------------------------------------------------- */

int gh_store_open(const struct gh_store_params *params, struct gh_store **out, struct gh_err *err)
{
    bool sqlite, postgres;

    *out = NULL;
    sqlite = params != NULL && params->sqlite_path != NULL && params->sqlite_path[0] != '\0';
    postgres = params != NULL && params->postgres_url != NULL && params->postgres_url[0] != '\0';
    if (sqlite == postgres) {
        gh_err_set(err, NULL, 0, 0,
                   "store: name exactly one engine (store: { sqlite: PATH } or "
                   "{ postgres: URL })");
        return GH_STORE_INVALID;
    }
    return postgres ? gh_store_postgres_ops.open(params, out, err)
                    : gh_store_sqlite_ops.open(params, out, err);
}

void gh_store_close(struct gh_store *st)
{
    if (st != NULL) st->ops->close(st);
}

const char *gh_store_engine(const struct gh_store *st)
{
    return st->ops->name;
}

int gh_store_migrate(struct gh_store *st, int *applied, int *version, struct gh_err *err)
{
    int a = 0, v = 0;
    int rc = st->ops->migrate(st, &a, &v, err);

    if (applied != NULL) *applied = a;
    if (version != NULL) *version = v;
    return rc;
}

int gh_store_change_version(struct gh_store *st, uint64_t *version, struct gh_err *err)
{
    return st->ops->change_version(st, version, err);
}

int gh_store_watch_changes(struct gh_store *st, gh_store_change_fn cb, void *arg,
                           struct gh_store_watch **out, struct gh_err *err)
{
    struct gh_store_watch *w = calloc(1, sizeof(*w));
    int rc;

    *out = NULL;
    if (w == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    w->st = st;
    w->cb = cb;
    w->arg = arg;
    atomic_init(&w->notifications, 0);
    atomic_init(&w->connected, false);
    rc = st->ops->watch_start(st, w, err);
    if (rc != GH_OK) {
        free(w);
        return rc;
    }
    *out = w;
    return GH_OK;
}

void gh_store_watch_stop(struct gh_store_watch *w)
{
    if (w == NULL) return;
    w->st->ops->watch_stop(w);
    free(w);
}

void gh_store_watch_stats(const struct gh_store_watch *w, struct gh_store_watch_stats *out)
{
    struct gh_store_watch *m = (struct gh_store_watch *)w; /* atomics: loads only */

    out->active = w != NULL && w->engine != NULL;
    out->connected = out->active && atomic_load_explicit(&m->connected, memory_order_relaxed);
    out->notifications =
        w != NULL ? atomic_load_explicit(&m->notifications, memory_order_relaxed) : 0;
}

void gh_store_wal_stats(struct gh_store *st, struct gh_store_wal_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (st != NULL) st->ops->wal_stats(st, out);
}

/* ---- Tenants ---------------------------------------------------------------- */

/* The id or name asked for is not echoed: it may be hostile input. */
static int tenant_not_found(struct gh_err *err)
{
    gh_err_set(err, NULL, 0, 0, "tenant not found");
    return GH_STORE_NOT_FOUND;
}

int gh_store_tenant_create(struct gh_store *st, struct gh_store_tenant *t, struct gh_err *err)
{
    int rc;

    if (!terminated(t->name, sizeof(t->name)) || !gh_store_valid_tenant_name(t->name))
        return invalid(err, "name", "must be 1-64 characters of [a-z0-9._-]");
    if (!terminated(t->plan, sizeof(t->plan)))
        return invalid(err, "plan", "must be 1-64 characters of [a-z0-9._-]");
    if (t->plan[0] == '\0') snprintf(t->plan, sizeof(t->plan), "default");
    if (!gh_store_valid_tenant_name(t->plan))
        return invalid(err, "plan", "must be 1-64 characters of [a-z0-9._-]");
    if (t->status == GH_STORE_TENANT_ANY) t->status = GH_STORE_TENANT_ACTIVE;
    if (t->status != GH_STORE_TENANT_ACTIVE && t->status != GH_STORE_TENANT_SUSPENDED)
        return invalid(err, "status", "must be active or suspended");

    memcpy(t->id, "tn_", 3);
    rc = gh_store_random_base62(t->id + 3, GH_STORE_TENANT_ID_RAND, err);
    if (rc != GH_OK) return rc;
    t->created_at = t->updated_at = (int64_t)gh_wall_ms();
    rc = st->ops->tenant_create(st, t, err);
    if (rc != GH_OK) t->id[0] = '\0';
    return rc;
}

int gh_store_tenant_get(struct gh_store *st, const char *id, struct gh_store_tenant *out,
                        struct gh_err *err)
{
    if (!gh_store_valid_tenant_id(id)) return tenant_not_found(err);
    return st->ops->tenant_get(st, id, out, err);
}

int gh_store_tenant_get_by_name(struct gh_store *st, const char *name, struct gh_store_tenant *out,
                                struct gh_err *err)
{
    if (!gh_store_valid_tenant_name(name)) return tenant_not_found(err);
    return st->ops->tenant_get_by_name(st, name, out, err);
}

int gh_store_tenant_find(struct gh_store *st, const char *ref, struct gh_store_tenant *out,
                         struct gh_err *err)
{
    int rc = gh_store_tenant_get(st, ref, out, err);

    return rc == GH_STORE_NOT_FOUND ? gh_store_tenant_get_by_name(st, ref, out, err) : rc;
}

int gh_store_tenant_list(struct gh_store *st, enum gh_store_tenant_status status,
                         struct gh_store_page *page, struct gh_store_tenant *out,
                         struct gh_err *err)
{
    struct gh_store_keyset ks;
    const struct gh_store_keyset *after;
    size_t count = 0;
    bool more = false;
    int rc;

    if (status != GH_STORE_TENANT_ANY && status != GH_STORE_TENANT_ACTIVE &&
        status != GH_STORE_TENANT_SUSPENDED)
        return invalid(err, "status", "must be active or suspended");
    rc = page_start('t', page, &ks, &after, err);
    if (rc != GH_OK) return rc;
    rc = st->ops->tenant_list(st, status, after, page->limit, out, &count, &more, err);
    if (rc != GH_OK) return rc;
    page->count = count;
    if (more && count > 0)
        cursor_encode('t', out[count - 1].created_at, out[count - 1].id, page->next);
    return GH_OK;
}

int gh_store_tenant_update(struct gh_store *st, const char *id,
                           const struct gh_store_tenant_update *upd, struct gh_store_tenant *out,
                           bool *status_moved, struct gh_err *err)
{
    bool system, moved_here = false;
    int rc;

    if (status_moved != NULL) *status_moved = false;
    if (!gh_store_valid_tenant_id(id)) return tenant_not_found(err);
    if (upd->name == NULL && upd->plan == NULL && upd->status == GH_STORE_TENANT_ANY)
        return invalid(err, "update", "nothing to change");
    if (upd->name != NULL && !gh_store_valid_tenant_name(upd->name))
        return invalid(err, "name", "must be 1-64 characters of [a-z0-9._-]");
    if (upd->plan != NULL && !gh_store_valid_tenant_name(upd->plan))
        return invalid(err, "plan", "must be 1-64 characters of [a-z0-9._-]");
    if (upd->status != GH_STORE_TENANT_ANY && upd->status != GH_STORE_TENANT_ACTIVE &&
        upd->status != GH_STORE_TENANT_SUSPENDED)
        return invalid(err, "status", "must be active or suspended");
    /* The operators' tenant stays reachable: suspending it would lock every
     * operator out, and its name is what operators look for. */
    system = strcmp(id, GH_STORE_SYSTEM_TENANT) == 0;
    if (system && upd->status == GH_STORE_TENANT_SUSPENDED) {
        gh_err_set(err, NULL, 0, 0, "the system tenant cannot be suspended");
        return GH_STORE_CONFLICT;
    }
    if (system && upd->name != NULL && strcmp(upd->name, GH_STORE_SYSTEM_TENANT) != 0) {
        gh_err_set(err, NULL, 0, 0, "the system tenant cannot be renamed");
        return GH_STORE_CONFLICT;
    }
    rc = st->ops->tenant_update(st, id, upd, (int64_t)gh_wall_ms(), out, &moved_here, err);
    if (status_moved != NULL) *status_moved = rc == GH_OK && moved_here;
    return rc;
}

/* ---- API keys --------------------------------------------------------------- */

static int key_not_found(struct gh_err *err)
{
    gh_err_set(err, NULL, 0, 0, "key not found");
    return GH_STORE_NOT_FOUND;
}

int gh_store_key_check_lists(const struct gh_store_key *k, struct gh_err *err)
{
    int rc = check_list(k->roles, k->nroles, GH_STORE_MAX_ROLES, "roles", gh_store_valid_role, err);
    if (rc != GH_OK) return rc;
    return check_list(k->scopes, k->nscopes, GH_STORE_MAX_SCOPES, "scopes", gh_store_valid_scope,
                      err);
}

static int check_key(const struct gh_store_key *k, struct gh_err *err)
{
    int rc;

    if (!terminated(k->tenant_id, sizeof(k->tenant_id)) || !gh_store_valid_tenant_id(k->tenant_id))
        return tenant_not_found(err);
    if (!terminated(k->id, sizeof(k->id)) || (k->id[0] != '\0' && !gh_store_valid_key_id(k->id)))
        return invalid(err, "id", "must be 16 base62 characters");
    if (!terminated(k->name, sizeof(k->name)) || !gh_store_valid_key_name(k->name))
        return invalid(err, "name", "at most 64 bytes of UTF-8 without control characters");
    rc = gh_store_key_check_lists(k, err);
    if (rc != GH_OK) return rc;
    /* The message never shows the hash. */
    if (!terminated(k->secret_hash, sizeof(k->secret_hash)) || !valid_phc(k->secret_hash))
        return invalid(err, "secret_hash",
                       "must be an Argon2id PHC string of at most 255 characters");
    if (k->status != GH_STORE_KEY_ANY && k->status != GH_STORE_KEY_ACTIVE)
        return invalid(err, "status", "a new key is active");
    if (k->expires_at < 0) return invalid(err, "expires_at", "must be >= 0 (0 = never)");
    if (!terminated(k->rotated_from, sizeof(k->rotated_from)) ||
        (k->rotated_from[0] != '\0' && !gh_store_valid_key_id(k->rotated_from)))
        return invalid(err, "rotated_from", "must be a key id");
    return GH_OK;
}

/* gh_store_key_insert and gh_store_key_rotate (<old_until> >= 0). */
static int key_insert(struct gh_store *st, struct gh_store_key *k, int64_t old_until,
                      int64_t *old_expires_at, struct gh_err *err)
{
    bool generate;
    int rc;

    rc = check_key(k, err);
    if (rc != GH_OK) return rc;
    generate = k->id[0] == '\0';
    k->status = GH_STORE_KEY_ACTIVE;
    k->created_at = (int64_t)gh_wall_ms();
    k->last_used_at = 0;
    /* A clash of two drawn 16-character ids (62^16 ~ 4.8e28) is not expected;
     * drawing again keeps it from ever reaching the caller. */
    for (int attempt = 0; attempt < 3; attempt++) {
        if (generate) {
            rc = gh_store_random_base62(k->id, GH_STORE_KEY_ID_LEN, err);
            if (rc != GH_OK) break;
        }
        rc = st->ops->key_insert(st, k, old_until, old_expires_at, err);
        /* A rotation's CONFLICT is the old key's (revoked meanwhile), not
         * the drawn id's: drawing again would not help. */
        if (rc != GH_STORE_CONFLICT || !generate || old_until >= 0) break;
    }
    if (rc != GH_OK && generate) k->id[0] = '\0';
    return rc;
}

int gh_store_key_insert(struct gh_store *st, struct gh_store_key *k, struct gh_err *err)
{
    return key_insert(st, k, -1, NULL, err);
}

int gh_store_key_rotate(struct gh_store *st, struct gh_store_key *k, int64_t old_until,
                        int64_t *old_expires_at, struct gh_err *err)
{
    if (old_until < 0) return invalid(err, "expires_at", "must be >= 0");
    if (k->rotated_from[0] == '\0') return invalid(err, "rotated_from", "names the old key");
    return key_insert(st, k, old_until, old_expires_at, err);
}

int gh_store_key_get(struct gh_store *st, const char *tenant_id, const char *key_id,
                     struct gh_store_key *out, struct gh_err *err)
{
    if (!gh_store_valid_tenant_id(tenant_id) || !gh_store_valid_key_id(key_id))
        return key_not_found(err);
    return st->ops->key_get(st, tenant_id, key_id, out, err);
}

int gh_store_key_list(struct gh_store *st, const char *tenant_id, struct gh_store_page *page,
                      struct gh_store_key *out, struct gh_err *err)
{
    struct gh_store_keyset ks;
    const struct gh_store_keyset *after;
    size_t count = 0;
    bool more = false;
    int rc;

    rc = page_start('k', page, &ks, &after, err);
    if (rc != GH_OK) return rc;
    if (!gh_store_valid_tenant_id(tenant_id)) return GH_OK; /* an empty page */
    rc = st->ops->key_list(st, tenant_id, after, page->limit, out, &count, &more, err);
    if (rc != GH_OK) return rc;
    page->count = count;
    if (more && count > 0)
        cursor_encode('k', out[count - 1].created_at, out[count - 1].id, page->next);
    return GH_OK;
}

int gh_store_key_set_status(struct gh_store *st, const char *tenant_id, const char *key_id,
                            enum gh_store_key_status status, bool *moved, struct gh_err *err)
{
    bool moved_here = false;
    int rc;

    if (moved != NULL) *moved = false;
    if (status != GH_STORE_KEY_ACTIVE && status != GH_STORE_KEY_REVOKED)
        return invalid(err, "status", "must be active or revoked");
    if (!gh_store_valid_tenant_id(tenant_id) || !gh_store_valid_key_id(key_id))
        return key_not_found(err);
    rc = st->ops->key_set_status(st, tenant_id, key_id, status, &moved_here, err);
    if (moved != NULL) *moved = rc == GH_OK && moved_here;
    return rc;
}

int gh_store_key_set_expiry(struct gh_store *st, const char *tenant_id, const char *key_id,
                            int64_t expires_at, struct gh_err *err)
{
    if (expires_at < 0) return invalid(err, "expires_at", "must be >= 0 (0 = never)");
    if (!gh_store_valid_tenant_id(tenant_id) || !gh_store_valid_key_id(key_id))
        return key_not_found(err);
    return st->ops->key_set_expiry(st, tenant_id, key_id, expires_at, err);
}

int gh_store_keys_touch_batch(struct gh_store *st, const struct gh_store_key_touch *touches,
                              size_t n, struct gh_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!terminated(touches[i].key_id, sizeof(touches[i].key_id)) ||
            !gh_store_valid_key_id(touches[i].key_id)) {
            gh_err_set(err, NULL, 0, 0, "touches[%zu].key_id: must be 16 base62 characters", i);
            return GH_STORE_INVALID;
        }
        if (touches[i].last_used_at < 0) {
            gh_err_set(err, NULL, 0, 0, "touches[%zu].last_used_at: must be >= 0", i);
            return GH_STORE_INVALID;
        }
    }
    if (n == 0) return GH_OK;
    return st->ops->keys_touch_batch(st, touches, n, err);
}

int gh_store_key_directory_load(struct gh_store *st, gh_store_key_cb cb, void *arg,
                                uint64_t *version, struct gh_err *err)
{
    uint64_t v = 0;
    int rc = st->ops->key_directory_load(st, cb, arg, &v, err);

    if (rc == GH_OK && version != NULL) *version = v;
    return rc;
}

/* ---- Revoked tokens --------------------------------------------------------- */

int gh_store_token_revoke(struct gh_store *st, const char *jti, int64_t expires_at,
                          struct gh_err *err)
{
    if (!valid_jti(jti))
        return invalid(err, "jti", "must be 1-128 printable ASCII characters without spaces");
    if (expires_at <= 0) return invalid(err, "expires_at", "must be > 0");
    return st->ops->token_revoke(st, jti, expires_at, (int64_t)gh_wall_ms(), err);
}

int gh_store_revoked_tokens_load(struct gh_store *st, int64_t now, gh_store_revoked_cb cb,
                                 void *arg, uint64_t *version, struct gh_err *err)
{
    uint64_t v = 0;
    int rc = st->ops->revoked_tokens_load(st, now, cb, arg, &v, err);

    if (rc == GH_OK && version != NULL) *version = v;
    return rc;
}

int gh_store_revoked_tokens_purge(struct gh_store *st, int64_t now, size_t *purged,
                                  struct gh_err *err)
{
    size_t n = 0;
    int rc = st->ops->revoked_tokens_purge(st, now, &n, err);

    if (purged != NULL) *purged = rc == GH_OK ? n : 0;
    return rc;
}

/* ---- Signing keys ----------------------------------------------------------- */

int gh_store_signing_key_insert(struct gh_store *st, struct gh_store_signing_key *k,
                                struct gh_err *err)
{
    size_t n = strlen(k->kid);
    if (n == 0 || n >= GH_STORE_KID_SIZE) return invalid(err, "kid", "must be 1-32 characters");
    for (size_t i = 0; i < n; i++) {
        char c = k->kid[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return invalid(err, "kid", "must be [A-Za-z0-9_-]");
    }
    if (strcmp(k->alg, "ES256") != 0 && strcmp(k->alg, "EdDSA") != 0)
        return invalid(err, "alg", "must be ES256 or EdDSA");
    if (strncmp(k->private_pem, "-----BEGIN ", 11) != 0 &&
        strncmp(k->private_pem, "secret:", 7) != 0)
        return invalid(err, "private_pem", "must be a PEM private key or secret:NAME");
    k->created_at = (int64_t)gh_wall_ms();
    if (k->publish_until <= k->created_at)
        return invalid(err, "publish_until", "must be in the future");
    return st->ops->signing_key_insert(st, k, k->created_at, err);
}

int gh_store_signing_keys_load(struct gh_store *st, int64_t now, gh_store_signing_cb cb, void *arg,
                               struct gh_err *err)
{
    return st->ops->signing_keys_load(st, now, cb, arg, err);
}

/* ---- Tenant limits ---------------------------------------------------------- */

/* Limit overrides: a JSON object of at most GH_STORE_LIMITS_JSON_MAX bytes
 * without duplicate keys (two parsers could pick different values of an
 * ambiguous object). Their meaning is the limits module's. */
static int check_overrides(const char *json, struct gh_err *err)
{
    json_error_t jerr;
    json_t *v;
    bool object;

    if (strnlen(json, GH_STORE_LIMITS_JSON_MAX + 1) > GH_STORE_LIMITS_JSON_MAX) {
        gh_err_set(err, NULL, 0, 0, "overrides: at most %d bytes", GH_STORE_LIMITS_JSON_MAX);
        return GH_STORE_INVALID;
    }
    v = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL) {
        /* The position only: jansson's text quotes the input. */
        gh_err_set(err, NULL, 0, 0, "overrides: not valid JSON (line %d, column %d)", jerr.line,
                   jerr.column);
        return GH_STORE_INVALID;
    }
    object = json_is_object(v);
    json_decref(v);
    if (!object) return invalid(err, "overrides", "must be a JSON object");
    return GH_OK;
}

int gh_store_tenant_limits_set(struct gh_store *st, const char *id, const char *plan,
                               const char *overrides_json, struct gh_err *err)
{
    int rc;

    if (!gh_store_valid_tenant_id(id)) return tenant_not_found(err);
    if (plan == NULL && overrides_json == NULL) return invalid(err, "update", "nothing to change");
    if (plan != NULL && !gh_store_valid_tenant_name(plan))
        return invalid(err, "plan", "must be 1-64 characters of [a-z0-9._-]");
    if (overrides_json != NULL && overrides_json[0] != '\0') {
        rc = check_overrides(overrides_json, err);
        if (rc != GH_OK) return rc;
    }
    return st->ops->tenant_limits_set(st, id, plan, overrides_json, (int64_t)gh_wall_ms(), err);
}

int gh_store_tenant_limits_get(struct gh_store *st, const char *id, char *plan, char *json,
                               size_t cap, struct gh_err *err)
{
    int rc;

    if (cap == 0) return invalid(err, "cap", "must be > 0");
    plan[0] = json[0] = '\0';
    if (!gh_store_valid_tenant_id(id)) return tenant_not_found(err);
    rc = st->ops->tenant_limits_get(st, id, plan, json, cap, err);
    if (rc != GH_OK) plan[0] = json[0] = '\0';
    return rc;
}

int gh_store_tenant_limits_load(struct gh_store *st, gh_store_tenant_limits_cb cb, void *arg,
                                struct gh_err *err)
{
    return st->ops->tenant_limits_load(st, cb, arg, err);
}

/* ---- Usage ------------------------------------------------------------------ */

static int usage_invalid(struct gh_err *err, size_t i, const char *field, const char *rule)
{
    gh_err_set(err, NULL, 0, 0, "rows[%zu].%s: %s", i, field, rule);
    return GH_STORE_INVALID;
}

int gh_store_usage_add(struct gh_store *st, struct gh_store_usage *rows, size_t n,
                       struct gh_err *err)
{
    return gh_store_usage_add_once(st, NULL, rows, n, err);
}

int gh_store_usage_add_once(struct gh_store *st, const char *batch_id, struct gh_store_usage *rows,
                            size_t n, struct gh_err *err)
{
    struct gh_store_usage *copy;
    int rc;

    if (batch_id != NULL) {
        size_t len = strlen(batch_id);
        if (len == 0 || len > 64) return invalid(err, "batch_id", "must be 1-64 bytes");
        for (size_t i = 0; i < len; i++)
            if (!isalnum((unsigned char)batch_id[i]) && batch_id[i] != '-' && batch_id[i] != '_')
                return invalid(err, "batch_id", "must be letters, digits, '-' and '_'");
    }

    for (size_t i = 0; i < n; i++) {
        const struct gh_store_usage *u = &rows[i];

        if (!valid_usage_tenant(u->tenant_id, sizeof(u->tenant_id)))
            return usage_invalid(err, i, "tenant_id",
                                 "must be 1-31 bytes without control characters");
        if (!terminated(u->period, sizeof(u->period)) || !gh_store_valid_period(u->period))
            return usage_invalid(err, i, "period", "must be a date YYYY-MM-DD or a month YYYY-MM");
        /* SQLite stores int64: a larger count is a caller's bug, not usage. */
        if (u->requests > INT64_MAX || u->request_bytes > INT64_MAX ||
            u->response_bytes > INT64_MAX)
            return usage_invalid(err, i, "counts", "must be at most 2^63 - 1");
    }
    if (n == 0) return GH_OK;
    if (n > SIZE_MAX / sizeof(*copy)) return invalid(err, "n", "too many rows");
    /* The engine writes the totals into a copy that is given back only once
     * the transaction committed: a failed batch keeps its counts and can be
     * retried as it is, never adding totals as if they were counts. */
    copy = malloc(n * sizeof(*copy));
    if (copy == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    memcpy(copy, rows, n * sizeof(*copy));
    rc = st->ops->usage_add(st, batch_id, copy, n, (int64_t)gh_wall_ms(), err);
    if (rc == GH_OK) memcpy(rows, copy, n * sizeof(*copy));
    free(copy);
    return rc;
}

int gh_store_usage_get(struct gh_store *st, const char *tenant_id, const char *period,
                       struct gh_store_usage *out, struct gh_err *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (!valid_usage_tenant(tenant_id, GH_STORE_TENANT_ID_SIZE))
        return invalid(err, "tenant_id", "must be 1-31 bytes without control characters");
    if (!gh_store_valid_period(period))
        return invalid(err, "period", "must be a date YYYY-MM-DD or a month YYYY-MM");
    rc = st->ops->usage_get(st, tenant_id, period, out, err);
    if (rc == GH_OK) return GH_OK;
    memset(out, 0, sizeof(*out));
    if (rc != GH_STORE_NOT_FOUND) return rc;
    /* No row yet: nothing was used in that period. */
    snprintf(out->tenant_id, sizeof(out->tenant_id), "%s", tenant_id);
    snprintf(out->period, sizeof(out->period), "%s", period);
    return GH_OK;
}

int gh_store_usage_load(struct gh_store *st, const char *period, gh_store_usage_cb cb, void *arg,
                        struct gh_err *err)
{
    if (!gh_store_valid_period(period))
        return invalid(err, "period", "must be a date YYYY-MM-DD or a month YYYY-MM");
    return st->ops->usage_load(st, period, cb, arg, err);
}

/* ---- Limit events ----------------------------------------------------------- */

int gh_store_limit_event_record(struct gh_store *st, struct gh_store_limit_event *ev,
                                bool *inserted, struct gh_err *err)
{
    bool ins = false;
    int rc;

    if (inserted != NULL) *inserted = false;
    if (!valid_usage_tenant(ev->tenant_id, sizeof(ev->tenant_id)))
        return invalid(err, "tenant_id", "must be 1-31 bytes without control characters");
    if (!terminated(ev->period, sizeof(ev->period)) || !gh_store_valid_period(ev->period))
        return invalid(err, "period", "must be a date YYYY-MM-DD or a month YYYY-MM");
    if (!valid_metric(ev->metric, sizeof(ev->metric)))
        return invalid(err, "metric", "must be 1-31 characters of [a-z_]");
    if (ev->threshold < 1 || ev->threshold > 1000)
        return invalid(err, "threshold", "must be a percentage of 1-1000");
    if (ev->value > INT64_MAX || ev->limit > INT64_MAX)
        return invalid(err, "value", "value and limit must be at most 2^63 - 1");
    ev->id = 0;
    ev->created_at = (int64_t)gh_wall_ms();
    rc = st->ops->limit_event_record(st, ev, &ins, err);
    if (rc != GH_OK || !ins) {
        ev->id = 0;
        ev->created_at = 0;
        ins = false;
    }
    if (inserted != NULL) *inserted = ins;
    return rc;
}

int gh_store_usage_purge(struct gh_store *st, const char *day, const char *month, size_t limit,
                         struct gh_store_usage_purged *out, struct gh_err *err)
{
    memset(out, 0, sizeof(*out));
    if (limit < 1 || limit > GH_STORE_USAGE_PURGE_MAX)
        return invalid(err, "limit", "must be 1-1000");
    if (day == NULL || strlen(day) != 10 || !gh_store_valid_period(day))
        return invalid(err, "day", "must be a date YYYY-MM-DD");
    if (month == NULL || strlen(month) != 7 || !gh_store_valid_period(month))
        return invalid(err, "month", "must be a month YYYY-MM");
    return st->ops->usage_purge(st, day, month, limit, out, err);
}

int gh_store_limit_events_list(struct gh_store *st, const char *tenant_id, int64_t before_id,
                               size_t limit, struct gh_store_limit_event *out, size_t *count,
                               bool *more, struct gh_err *err)
{
    size_t c = 0;
    bool m = false;
    int rc;

    *count = 0;
    *more = false;
    if (limit < 1 || limit > GH_STORE_LIST_MAX) {
        gh_err_set(err, NULL, 0, 0, "limit: must be 1-%d", GH_STORE_LIST_MAX);
        return GH_STORE_INVALID;
    }
    if (before_id < 0) return invalid(err, "before_id", "must be >= 0 (0 = from the newest)");
    if (tenant_id != NULL && !valid_usage_tenant(tenant_id, GH_STORE_TENANT_ID_SIZE))
        return invalid(err, "tenant_id", "must be 1-31 bytes without control characters");
    rc = st->ops->limit_events_list(st, tenant_id, before_id == 0 ? INT64_MAX : before_id, limit,
                                    out, &c, &m, err);
    if (rc != GH_OK) return rc;
    *count = c;
    *more = m;
    return GH_OK;
}

/* ---- Backups ------------------------------------------------------------------- */

int gh_store_backup(struct gh_store *st, const char *path, struct gh_err *err)
{
    if (path == NULL || path[0] == '\0') return invalid(err, "path", "must not be empty");
    return st->ops->backup(st, path, err);
}

int gh_store_table_counts(struct gh_store *st, gh_store_count_cb cb, void *arg, struct gh_err *err)
{
    return st->ops->table_counts(st, cb, arg, err);
}

int gh_store_integrity_check(struct gh_store *st, char *problem, size_t size, struct gh_err *err)
{
    if (size == 0) return invalid(err, "problem", "needs room");
    return st->ops->integrity_check(st, problem, size, err);
}
