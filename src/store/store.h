/* The storage interface: tenants (with their plans and limit overrides), API
 * keys, revoked tokens, usage counters, limit events, the audit log, sealed
 * secrets, webhook endpoints with their delivery queue, and a change counter,
 * behind one ops table that the SQLite implementation (and later the
 * PostgreSQL one) fills. Nothing above this header knows which engine runs.
 *
 * Threading: every call is synchronous and may block on disk and on locks
 * (up to the busy timeout). NEVER call from a worker event loop: callers are
 * the admin thread, the CLI and background threads. One struct gh_store may be
 * used by several threads at once; gh_store_close() must be called when no
 * other thread uses it any more.
 *
 * Tenant isolation: tenant-owned rows (api_keys, usage, limit_events) are
 * reached only through their tenant. Calls marked [tenant] take the tenant id
 * as their first argument and never see another tenant's rows (a key of
 * tenant B asked for under tenant A is GH_STORE_NOT_FOUND, exactly as a key
 * that does not exist). The PostgreSQL implementation runs them under a role
 * subject to row-level security with the tenant's id as session setting.
 * Calls marked [operator] read or write across tenants (the key directory,
 * tenant listing, last-used and usage batches) and are for operators and the
 * gateway's own background work.
 *
 * Records are plain structs with fixed-size arrays: callers never free them.
 * Times are unix milliseconds (int64_t); 0 means "never" where said.
 *
 * Return codes: GH_OK; GH_STORE_NOT_FOUND; GH_STORE_CONFLICT (a unique name or
 * id is taken, or a change that is not allowed in the current state);
 * GH_STORE_INVALID (the input was refused by validation);
 * GH_STORE_UNAVAILABLE (the engine cannot be reached: PostgreSQL only);
 * GH_ERROR (the engine failed). The last five fill <err>->msg. Messages never contain a
 * secret or a hash; those of NOT_FOUND, CONFLICT and INVALID name the field
 * and rule and may be shown to the client that sent the input.
 *
 * docs/internals/store.md describes the schema, migrations and cursors. */
#ifndef GH_STORE_STORE_H
#define GH_STORE_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum {
    GH_STORE_NOT_FOUND = -10,
    GH_STORE_CONFLICT = -11,
    GH_STORE_INVALID = -12,
    /* The engine cannot be reached (PostgreSQL: the connection was lost or
     * refused). Nothing of the call was written, or, when the commit itself
     * was cut, all or nothing: the caller answers 503 and may retry. The
     * next call reconnects. */
    GH_STORE_UNAVAILABLE = -13,
};

/* Sizes, with room for the terminating NUL (_SIZE) or without it (_MAX/_LEN). */
#define GH_STORE_TENANT_ID_SIZE 32 /* "tn_" + 20 base62, or "system" */
#define GH_STORE_TENANT_ID_RAND 20 /* random base62 characters after "tn_" */
#define GH_STORE_KEY_ID_LEN     16 /* base62 */
#define GH_STORE_KEY_ID_SIZE    (GH_STORE_KEY_ID_LEN + 1)
#define GH_STORE_NAME_MAX       64 /* tenant names, plans, key labels (bytes) */
#define GH_STORE_NAME_SIZE      (GH_STORE_NAME_MAX + 1)
#define GH_STORE_TOKEN_MAX      64 /* one role or one scope */
#define GH_STORE_TOKEN_SIZE     (GH_STORE_TOKEN_MAX + 1)
#define GH_STORE_MAX_ROLES      16
#define GH_STORE_MAX_SCOPES     32
#define GH_STORE_HASH_MAX       255 /* a PHC string */
#define GH_STORE_HASH_SIZE      (GH_STORE_HASH_MAX + 1)
#define GH_STORE_JTI_MAX        128
#define GH_STORE_JTI_SIZE       (GH_STORE_JTI_MAX + 1)
#define GH_STORE_CURSOR_SIZE    64
#define GH_STORE_LIST_MAX       200 /* the largest page a list call returns */

/* The operators' tenant, created by the first migration. It can be neither
 * renamed nor suspended. */
#define GH_STORE_SYSTEM_TENANT "system"

/* The action of the event each audited request writes (audit/request.c):
 * most rows of a busy store. Its rows stay out of the audit index on
 * action (migration 11), which serves the rarer actions. */
#define GH_STORE_AUDIT_REQUEST_ACTION "http.request"

enum gh_store_tenant_status {
    GH_STORE_TENANT_ANY = 0, /* only as a filter or "unchanged" */
    GH_STORE_TENANT_ACTIVE = 1,
    GH_STORE_TENANT_SUSPENDED = 2,
};

enum gh_store_key_status {
    GH_STORE_KEY_ANY = 0, /* only as "default" on insert */
    GH_STORE_KEY_ACTIVE = 1,
    GH_STORE_KEY_REVOKED = 2,
};

struct gh_store_tenant {
    char id[GH_STORE_TENANT_ID_SIZE];
    char name[GH_STORE_NAME_SIZE]; /* unique; [a-z0-9._-]{1,64} */
    char plan[GH_STORE_NAME_SIZE]; /* same rule as name; default "default" */
    enum gh_store_tenant_status status;
    int64_t created_at;
    int64_t updated_at;
};

/* What gh_store_tenant_update() changes: NULL / GH_STORE_TENANT_ANY fields
 * stay as they are. */
struct gh_store_tenant_update {
    const char *name;
    const char *plan;
    enum gh_store_tenant_status status;
};

struct gh_store_key {
    char id[GH_STORE_KEY_ID_SIZE]; /* the public key id: 16 base62, unique */
    char tenant_id[GH_STORE_TENANT_ID_SIZE];
    char name[GH_STORE_NAME_SIZE]; /* optional label: UTF-8, no control chars; "" = none */
    char roles[GH_STORE_MAX_ROLES][GH_STORE_TOKEN_SIZE];
    size_t nroles;
    char scopes[GH_STORE_MAX_SCOPES][GH_STORE_TOKEN_SIZE];
    size_t nscopes;
    char secret_hash[GH_STORE_HASH_SIZE]; /* Argon2id PHC string; the store never hashes */
    enum gh_store_key_status status;
    int64_t expires_at;                      /* 0 = never */
    int64_t created_at;                      /* set by the store */
    int64_t last_used_at;                    /* 0 = never; set by gh_store_keys_touch_batch() */
    char rotated_from[GH_STORE_KEY_ID_SIZE]; /* the key this one replaced; "" = none */
};

/* One entry of a last-used batch. */
struct gh_store_key_touch {
    char key_id[GH_STORE_KEY_ID_SIZE];
    int64_t last_used_at;
};

struct gh_store_revoked_token {
    char jti[GH_STORE_JTI_SIZE];
    int64_t expires_at;
    int64_t revoked_at;
};

/* A key the gateway signs its own tokens with (POST /oauth/token). Shared
 * by every node through the store. private_pem holds "secret:NAME", the
 * PEM sealed under the master key (src/secrets), once a secrets handle is
 * open (a store written before issue 7 held the PEM itself). */
#define GH_STORE_KID_SIZE 33
#define GH_STORE_PEM_SIZE 2048
struct gh_store_signing_key {
    char kid[GH_STORE_KID_SIZE]; /* [A-Za-z0-9_-]{1,32} */
    char alg[8];                 /* "ES256" or "EdDSA" */
    char private_pem[GH_STORE_PEM_SIZE];
    int64_t created_at;    /* set by the store */
    int64_t publish_until; /* unix ms: published (and trusted) until then */
};
typedef int (*gh_store_signing_cb)(const struct gh_store_signing_key *k, void *arg);

/* ---- Tenant limits (issue 4) ---- */
#define GH_STORE_LIMITS_JSON_MAX 4096 /* bytes of a tenant's limit overrides, without the NUL */
typedef int (*gh_store_tenant_limits_cb)(const char *tenant_id, enum gh_store_tenant_status status,
                                         const char *plan, const char *overrides_json, void *arg);

/* ---- Usage (quotas) ---- */
#define GH_STORE_PERIOD_SIZE 11 /* "2026-11-22" (a UTC day) or "2026-11" (a UTC month) */
struct gh_store_usage {
    char tenant_id[GH_STORE_TENANT_ID_SIZE];
    char period[GH_STORE_PERIOD_SIZE];
    uint64_t requests, request_bytes, response_bytes;
    int64_t updated_at;
};
typedef int (*gh_store_usage_cb)(const struct gh_store_usage *u, void *arg);

/* ---- Limit events (quota thresholds crossed) ---- */
#define GH_STORE_USAGE_PURGE_MAX 1000 /* rows of each table one usage_purge deletes */

/* What one usage_purge deleted. */
struct gh_store_usage_purged {
    uint64_t usage;  /* usage rows */
    uint64_t events; /* limit events */
};

struct gh_store_limit_event {
    int64_t id; /* set by the store, increasing */
    char tenant_id[GH_STORE_TENANT_ID_SIZE];
    char period[GH_STORE_PERIOD_SIZE];
    char metric[32];    /* e.g. "requests_per_day"; [a-z_]{1,31} */
    uint32_t threshold; /* percent: 80 or 100 (1..1000 accepted) */
    uint64_t value, limit;
    int64_t created_at; /* set by the store */
};

/* One page of a list call. The caller sets <cursor> and <limit> and passes an
 * array of <limit> records; the store sets <count> and <next>. Cursors are
 * opaque strings (keyset pagination on (created_at, id), oldest first): a
 * walk from the first page to the last sees every row that existed when it
 * started exactly once, whatever is inserted meanwhile. A cursor of one list
 * is refused (GH_STORE_INVALID) by another. */
struct gh_store_page {
    const char *cursor;              /* in: a previous page's <next>; NULL or "" = first page */
    size_t limit;                    /* in: 1..GH_STORE_LIST_MAX */
    size_t count;                    /* out: records written */
    char next[GH_STORE_CURSOR_SIZE]; /* out: "" when this page is the last */
};

/* Where a page starts: after the row (created_at, id). The gh_store_*
 * wrappers decode cursors into this; implementations never parse cursors. */
struct gh_store_keyset {
    int64_t created_at;
    char id[GH_STORE_TENANT_ID_SIZE];
};

/* Parameters of gh_store_open(): exactly one engine is named. */
struct gh_store_params {
    const char *sqlite_path;  /* the SQLite database file; created with mode 0600 */
    const char *postgres_url; /* a libpq URL or conninfo (docs/postgres.md) */
    unsigned pool;            /* PostgreSQL connections; 0 = 8; at most 64 */
    unsigned readers;         /* SQLite reader connections; 0 = 4; at most 64 */
    uint32_t busy_timeout_ms; /* wait for another process's lock; 0 = 5000 */
    /* PostgreSQL: statement_timeout and lock_timeout of the pooled sessions,
     * and the longest wait for a free connection (the statement timeout);
     * past any of them an op returns UNAVAILABLE. 0 = 5000 each. */
    uint32_t statement_timeout_ms;
    uint32_t lock_timeout_ms;
};

/* Streaming callbacks. They run on the calling thread while the store holds a
 * connection: they must not call into the store. Returning GH_OK goes on; any
 * other value stops the walk and is returned by the call that streams. */
typedef int (*gh_store_key_cb)(const struct gh_store_key *key,
                               enum gh_store_tenant_status tenant_status, void *arg);
typedef int (*gh_store_revoked_cb)(const struct gh_store_revoked_token *tok, void *arg);

/* ---- Audit (docs/audit-format.md) ---- */
#define GH_STORE_AUDIT_BODY_MAX 8192 /* = GH_AUDIT_CANON_MAX */
#define GH_STORE_AUDIT_CHAIN_SIZE                                                                  \
    32 /* a tenant id or "system": 1-31 bytes, no control characters */

/* One stored event: its canonical form and hash, and copies of the fields
 * queries filter on (the verifier checks them against the body). Strings are
 * NUL-terminated; body is not (body_len bytes; the store adds a NUL after
 * them when it reads a row). */
struct gh_store_audit_row {
    int64_t rowid; /* set by the store: commit order, increasing, never reused */
    char chain[GH_STORE_AUDIT_CHAIN_SIZE];
    uint64_t seq; /* 1.. INT64_MAX */
    char id[37];  /* UUIDv7, 36 characters */
    int64_t time_us;
    char tenant_id[GH_STORE_AUDIT_CHAIN_SIZE]; /* "" when none */
    char actor[272];
    char action[48];
    char resource[256];
    char outcome[8]; /* "success", "denied" or "failed" */
    char request_id[65];
    char node[64]; /* the writing node's id, "" for events of format version 1 */
    char hash[65]; /* 64 lowercase hex */
    /* Set by the writer, not stored: the hash this row chains from (64
     * lowercase hex; "" when unknown, e.g. a row read back). An engine that
     * reads the heads under its append lock (PostgreSQL) refuses a row whose
     * predecessor is not this one, as a stale head: a head lost in a
     * failover and written again by another node is not chained onto. */
    char prev_hash[65];
    /* Set by the store when reading: a column could not be read as stored
     * (too long for its field, a NUL inside, NULL); the field holds what
     * fits. Such a row was not written by the gateway (the verifier reports
     * it as changed) and is still handed over, so a walk never stops on it. */
    bool damaged;
    size_t body_len;
    char body[GH_STORE_AUDIT_BODY_MAX + 1];
};

struct gh_store_audit_checkpoint {
    char chain[GH_STORE_AUDIT_CHAIN_SIZE];
    uint64_t seq;
    char hash[65]; /* of the event (chain, seq): 64 lowercase hex */
    int64_t time_ms;
    char key_id[17];    /* the audit key that signed: 16 base62 */
    char signature[89]; /* base64 (with padding) of the 64-byte Ed25519 signature */
};

/* The gateway's audit signing key (Ed25519). The private half is sealed as
 * the token signing keys' is: private_pem holds "secret:NAME". */
struct gh_store_audit_key {
    char key_id[17]; /* 16 base62 */
    char public_pem[512];
    char private_pem[512];
    int64_t created_at; /* set by the store */
};

/* Filters of an audit query; NULL or empty strings and zeros mean "any".
 * A tenant admin's query MUST set tenant_id: the store then puts
 * "tenant_id = ?" in the SQL, so no other tenant's row can come back. */
struct gh_store_audit_filter {
    const char *tenant_id; /* [tenant] when set by a tenant admin: enforced in the query */
    const char *actor;
    const char *action;
    const char *outcome;
    const char *resource;
    const char *request_id;
    int64_t from_us, to_us; /* time_us in [from_us, to_us); 0 = open */
    bool oldest_first;      /* default newest first */
};

/* A place in the order of an audit query: the last row of a page, by its
 * time_us and rowid, is where the next page starts. Without a time range
 * the order is rowid alone and time_us is not looked at. */
struct gh_store_audit_pos {
    int64_t time_us;
    int64_t rowid;
};

/* An archive segment: events <first_seq>..<last_seq> of <chain>, moved out
 * of the hot table into <file> (docs/audit-format.md, "Archives"). */
struct gh_store_audit_archive {
    char chain[GH_STORE_AUDIT_CHAIN_SIZE];
    uint64_t first_seq, last_seq;
    char prev_hash[65]; /* the hash of first_seq - 1 (64 zeros for seq 1) */
    char last_hash[65]; /* the hash of last_seq */
    uint64_t events;    /* last_seq - first_seq + 1 */
    char file[256]; /* relative to the archive directory: "<chain dir>/<first>-<last>.jsonl.zst" */
    char file_sha256[65];
    int64_t created_at; /* unix ms, set by the caller */
};

typedef int (*gh_store_audit_row_cb)(const struct gh_store_audit_row *row, void *arg);

/* A chain's head as the store holds it under the append lock. */
struct gh_store_audit_head {
    char chain[GH_STORE_AUDIT_CHAIN_SIZE];
    uint64_t seq;  /* 0: the chain has no event yet */
    char hash[65]; /* 64 lowercase hex; "" when seq is 0 */
};

/* How a batch is chained again under an engine's append lock (see
 * gh_store_audit_append_rechain). <fn> gets the store's heads of every
 * chain of the batch, by chain, rewrites the caller's rows (the same <n>
 * events, new seqs and hashes) and checkpoints, and sets *ncp. It may be
 * called more than once in one append (PostgreSQL tries a batch as one
 * script, then the long way: pg_audit.c), each time after the rows as the
 * call before left them. */
struct gh_store_audit_rechain {
    int (*fn)(void *arg, const struct gh_store_audit_head *heads, size_t nheads, size_t *ncp);
    void *arg;
};
typedef int (*gh_store_audit_archive_cb)(const struct gh_store_audit_archive *a, void *arg);
typedef int (*gh_store_audit_cp_cb)(const struct gh_store_audit_checkpoint *cp, void *arg);
/* A table and its row count (backups). */
typedef int (*gh_store_count_cb)(const char *table, uint64_t rows, void *arg);

/* ---- Secrets (issue 7, src/secrets/secrets.h) ---- */
#define GH_STORE_SECRET_NAME_SIZE 129                              /* [A-Za-z0-9._/-]{1,128} */
#define GH_STORE_SECRET_VALUE_MAX 8192                             /* = GH_SECRET_VALUE_MAX */
#define GH_STORE_SECRET_CT_MAX    (GH_STORE_SECRET_VALUE_MAX + 16) /* + the GCM tag */
#define GH_STORE_SECRET_NONCE_LEN 12
#define GH_STORE_SECRET_WRAP_MAX  512 /* a wrapped data key, as the KMS made it */

/* One sealed secret: only ciphertext, the wrapped data key and the master
 * key version that wrapped it (docs/secrets.md has the byte layout). The
 * store never sees a plaintext or a data key. */
struct gh_store_secret {
    char tenant_id[GH_STORE_TENANT_ID_SIZE]; /* a tenant id or "system" */
    char name[GH_STORE_SECRET_NAME_SIZE];
    uint8_t nonce[GH_STORE_SECRET_NONCE_LEN];
    size_t ciphertext_len; /* 17..GH_STORE_SECRET_CT_MAX: the value and its 16-byte tag */
    uint8_t ciphertext[GH_STORE_SECRET_CT_MAX];
    size_t wrapped_len; /* 1..GH_STORE_SECRET_WRAP_MAX */
    uint8_t wrapped_dek[GH_STORE_SECRET_WRAP_MAX];
    uint32_t kek_version; /* >= 1 */
    int64_t created_at;   /* set by the store; kept when a value is replaced */
    int64_t updated_at;   /* set by the store */
};
typedef int (*gh_store_secret_cb)(const struct gh_store_secret *s, void *arg);
typedef int (*gh_store_secret_version_cb)(uint32_t kek_version, uint64_t rows, void *arg);

/* A new wrapping of one row's data key (a master key rotation), applied
 * only while the row still has <old_version> and <old_wrapped>: a value
 * put meanwhile is never overwritten with a stale data key. */
struct gh_store_secret_rewrap {
    char tenant_id[GH_STORE_TENANT_ID_SIZE];
    char name[GH_STORE_SECRET_NAME_SIZE];
    uint32_t old_version, new_version;
    size_t old_len, new_len;
    uint8_t old_wrapped[GH_STORE_SECRET_WRAP_MAX];
    uint8_t new_wrapped[GH_STORE_SECRET_WRAP_MAX];
};

/* The tables whose rows hold a private key (the gateway's own signing keys):
 * the column holds a PEM (before issue 7) or "secret:<name>", a reference
 * to a sealed secret of the system tenant. */
enum gh_store_private_kind {
    GH_STORE_PRIVATE_AUDIT_KEY = 1, /* audit_keys.private_pem, by key_id */
    GH_STORE_PRIVATE_SIGNING_KEY,   /* signing_keys.private_pem, by kid */
};

/* The master key rotation: at most one at a time, recorded before any row
 * is re-wrapped, so an interrupted one resumes to the same target. */
struct gh_store_secrets_rotation {
    uint32_t from_version, to_version;
    int64_t started_at;  /* unix ms */
    int64_t finished_at; /* 0 while pending */
    uint64_t rewrapped;  /* rows moved so far */
};

/* ---- Webhooks (issue 7, docs/webhooks.md) ---- */
#define GH_STORE_HOOK_ID_RAND      20 /* random base62 after "ep_" */
#define GH_STORE_HOOK_ID_SIZE      24 /* "ep_" + 20 base62 */
#define GH_STORE_HOOK_URL_MAX      2048
#define GH_STORE_HOOK_DESC_MAX     256 /* bytes of UTF-8 without control characters */
#define GH_STORE_HOOK_TYPE_MAX     64  /* an event type: [a-z0-9_.-]{1,64} */
#define GH_STORE_HOOK_TYPE_SIZE    (GH_STORE_HOOK_TYPE_MAX + 1)
#define GH_STORE_HOOK_EVENTS_MAX   32 /* subscriptions per endpoint */
#define GH_STORE_HOOK_MSG_ID_SIZE  65 /* "msg_..." or a caller's id: [A-Za-z0-9_.-]{1,64} */
#define GH_STORE_HOOK_PAYLOAD_MAX  (1024 * 1024) /* bytes of one message's JSON payload */
#define GH_STORE_HOOK_SNIPPET_MAX  1024          /* bytes of a response kept with an attempt */
#define GH_STORE_HOOK_ATTEMPTS_MAX 64            /* attempts returned with one delivery */

enum gh_store_hook_status {
    GH_STORE_HOOK_ANY = 0, /* only as a filter or "unchanged" */
    GH_STORE_HOOK_ACTIVE = 1,
    GH_STORE_HOOK_DISABLED = 2,
};

enum gh_store_delivery_status {
    GH_STORE_DELIVERY_ANY = 0, /* only as a filter */
    GH_STORE_DELIVERY_PENDING = 1,
    GH_STORE_DELIVERY_SUCCEEDED = 2,
    GH_STORE_DELIVERY_FAILED = 3,
};

/* An endpoint a tenant receives events at. Its signing keys are secrets
 * (src/secrets) named "webhook/<id>/<version>"; the row keeps only their
 * versions. */
struct gh_store_hook_endpoint {
    char id[GH_STORE_HOOK_ID_SIZE];
    char tenant_id[GH_STORE_TENANT_ID_SIZE];
    char url[GH_STORE_HOOK_URL_MAX + 1];
    char description[GH_STORE_HOOK_DESC_MAX + 1];
    char events[GH_STORE_HOOK_EVENTS_MAX][GH_STORE_HOOK_TYPE_SIZE]; /* "order.created",
                                                                      "order.*" or "*" */
    size_t nevents;
    bool ed25519;            /* signing "ed25519" (v1a), else "hmac" (v1) */
    char public_key[64];     /* "whpk_..." for ed25519; "" for hmac */
    uint32_t secret_version; /* the current key: webhook/<id>/<secret_version> */
    uint32_t prev_version;   /* the key being rotated out; 0 = none */
    int64_t prev_until;      /* unix ms: the old key also signs until then */
    enum gh_store_hook_status status;
    int64_t failing_since;     /* unix ms of the first failure since the last success; 0 */
    char disabled_reason[128]; /* "" unless disabled */
    int64_t created_at;
    int64_t updated_at;
    /* The row's revision: 1 at insert, one more at every change of a field
     * an update writes over (by an admin, or the dispatcher's disabling;
     * not the failure clock, which an update only resets). An update
     * applies only to the revision it read. */
    int64_t rev;
};

/* A due delivery, as the dispatcher claims it: the strings and <payload>
 * live until the callback returns. */
struct gh_store_hook_due {
    int64_t delivery_id;
    unsigned attempts; /* attempts already made */
    const char *tenant_id;
    const char *endpoint_id;
    const char *url;
    bool ed25519;
    uint32_t secret_version, prev_version;
    int64_t prev_until;
    const char *msg_id;
    const char *type;
    const char *payload; /* JSON text */
    size_t payload_len;
    int64_t msg_created_at;
};
typedef int (*gh_store_hook_due_cb)(const struct gh_store_hook_due *d, void *arg);

/* The outcome of one attempt, recorded with the delivery's new state. */
struct gh_store_hook_outcome {
    int64_t delivery_id;
    char endpoint_id[GH_STORE_HOOK_ID_SIZE];
    int64_t at;         /* unix ms when the attempt started */
    long status;        /* HTTP status; 0 when none came */
    char error[64];     /* "" or e.g. "timeout", "connect", "blocked_address: loopback" */
    int64_t latency_ms; /* start to answer (or error) */
    char snippet[GH_STORE_HOOK_SNIPPET_MAX + 1]; /* the start of the answer, sanitized */
    enum gh_store_delivery_status next;          /* PENDING (retry), SUCCEEDED or FAILED */
    bool gone;                                   /* 410 Gone: the endpoint is disabled now */
    int64_t next_attempt_at;                     /* when next is PENDING */
};

/* A delivery as the admin API shows it. */
struct gh_store_hook_delivery {
    int64_t id;
    char endpoint_id[GH_STORE_HOOK_ID_SIZE];
    char msg_id[GH_STORE_HOOK_MSG_ID_SIZE];
    char type[GH_STORE_HOOK_TYPE_SIZE];
    enum gh_store_delivery_status status;
    unsigned attempts;
    int64_t next_attempt_at; /* 0 unless pending */
    bool paused;             /* pending, and its endpoint disabled (by an admin: migration 20) */
    long last_status;
    char last_error[64];
    int64_t created_at, updated_at;
};

struct gh_store_hook_attempt {
    int64_t at;
    long status;
    char error[64];
    int64_t latency_ms;
    char snippet[GH_STORE_HOOK_SNIPPET_MAX + 1];
};

#define GH_STORE_HOOK_PURGE_MAX 1000 /* messages one hook_purge looks at */

/* One retention batch (hook_purge): what it deleted, and where the next
 * batch of the same pass starts. */
struct gh_store_hook_purged {
    uint64_t messages, deliveries, attempts;
    uint64_t undelivered; /* of <deliveries>: still pending (never delivered) */
    uint64_t kept;        /* old messages left for now (a delivery in flight or active) */
    int64_t last_seq;     /* the last message looked at: the next batch's <after_seq> */
    bool more;            /* old messages may follow <last_seq> */
};

/* A disabling's report (the audit record and the tenant's
 * webhook.endpoint_disabled event) is the disabling process's for this
 * long; not marked made by then (the process died, or its commit's answer
 * was lost), any process's hook_reports_claim takes it. */
#define GH_STORE_HOOK_REPORT_LEASE_MS 60000
#define GH_STORE_HOOK_REPORTS_MAX     64 /* reports one hook_reports_claim takes */

/* An endpoint the store just disabled; <reason> is "gone" (it answered 410)
 * or "failing" (webhooks.disable_after); <lease> names the caller's lease
 * on its report, for hook_reports_done. */
typedef int (*gh_store_hook_disabled_cb)(const char *tenant_id, const char *endpoint_id,
                                         const char *reason, int64_t lease, void *arg);

/* A report made: its endpoint and the lease it was made under. */
struct gh_store_hook_report {
    char endpoint_id[GH_STORE_HOOK_ID_SIZE];
    int64_t lease;
};

struct gh_store;

/* Called on the store's listener thread when another writer (this or any
 * node) committed a change that bumps the change counter, and once after
 * every (re)connect of the listener (changes may have been missed while it
 * was down). It must return quickly and must not call the store: it wakes
 * whoever reads the change counter. */
typedef void (*gh_store_change_fn)(void *arg);

/* A subscription to pushed changes (gh_store_watch_changes). The engine
 * writes the counters; anyone reads them (gh_store_watch_stats). */
struct gh_store_watch {
    struct gh_store *st;
    gh_store_change_fn cb;
    void *arg;
    _Atomic uint64_t notifications; /* notifications received */
    _Atomic bool connected;         /* the listener is connected and listening */
    void *engine;                   /* the engine's state; NULL: nothing runs */
};

/* The store's write-ahead log, where the gateway runs it (SQLite: its
 * checkpoints run on a thread of their own, off the writer's commits). */
struct gh_store_wal_stats {
    bool supported;      /* the engine fills the figures below */
    uint64_t wal_frames; /* pages in the WAL after the last commit */
    uint64_t background; /* checkpoints run by the store's checkpoint thread */
    uint64_t inline_;    /* checkpoints the writer ran itself, so that the WAL can start over */
    uint64_t failed;     /* checkpoints that failed (I/O error, disk full): the WAL grows */
};

/* The ops table an implementation fills. Slots are called only through the
 * gh_store_* wrappers below, which validate every argument first (names,
 * lists, ids, limits), generate ids, set times, and decode cursors: a slot
 * may assume its input is valid. Every slot returns the codes listed at the
 * top of this file. All slots are mandatory. */
struct gh_store_ops {
    const char *name; /* "sqlite", "postgres": for logs and `gatehouse check` */

    /* Opens the store described by <params> and sets *out. Does not migrate.
     * On failure returns GH_ERROR, leaves *out NULL and fills <err>. */
    int (*open)(const struct gh_store_params *params, struct gh_store **out, struct gh_err *err);

    /* Closes connections and frees <st>. No other thread may use <st>. */
    void (*close)(struct gh_store *st);

    /* Applies every migration newer than the database's version, each in its
     * own transaction, and records it in schema_migrations(version,
     * applied_at). Sets *applied to how many ran and *version to the schema
     * version reached. Refuses (GH_ERROR) a database newer than the code. */
    int (*migrate)(struct gh_store *st, int *applied, int *version, struct gh_err *err);

    /* Reads the change counter (committed value). Must be cheap: called every
     * 250 ms by each cache that depends on it. */
    int (*change_version)(struct gh_store *st, uint64_t *version, struct gh_err *err);

    /* Starts pushing committed changes to <w> (set up by the wrapper:
     * gh_store_watch_changes): calls gh_store__watch_fire() for each
     * notification and once after every (re)connect, and
     * gh_store__watch_set_connected() as its listener comes and goes. May
     * start a thread and keep its state in w->engine. A server that cannot
     * be reached is not an error here (the engine keeps trying): only
     * resources that cannot be had are. An engine with nothing to push (one
     * process: SQLite) returns GH_OK and leaves w->engine NULL. */
    int (*watch_start)(struct gh_store *st, struct gh_store_watch *w, struct gh_err *err);

    /* Stops what watch_start started, promptly (no callback after it
     * returns), and frees w->engine. Called once, only after a GH_OK. */
    void (*watch_stop)(struct gh_store_watch *w);

    /* Fills <out> (zeroed by the wrapper) with the engine's write-ahead log
     * figures; an engine whose log is not its own to run (PostgreSQL)
     * leaves <out> as it is. Lock-free: called by a metrics scrape. */
    void (*wal_stats)(struct gh_store *st, struct gh_store_wal_stats *out);

    /* [operator] Inserts <t> (all fields set by the wrapper). CONFLICT when
     * the name (or id) is taken. */
    int (*tenant_create)(struct gh_store *st, const struct gh_store_tenant *t, struct gh_err *err);

    /* [tenant] Fills <out> with the tenant <id>; NOT_FOUND when absent. */
    int (*tenant_get)(struct gh_store *st, const char *id, struct gh_store_tenant *out,
                      struct gh_err *err);

    /* [operator] Fills <out> with the tenant named <name>; NOT_FOUND. */
    int (*tenant_get_by_name)(struct gh_store *st, const char *name, struct gh_store_tenant *out,
                              struct gh_err *err);

    /* [operator] Writes up to <limit> tenants ordered by (created_at, id)
     * strictly after <after> (NULL: from the start) and with status <status>
     * (GH_STORE_TENANT_ANY: all) into <out>; sets *count, and *more when at
     * least one further row exists. */
    int (*tenant_list)(struct gh_store *st, enum gh_store_tenant_status status,
                       const struct gh_store_keyset *after, size_t limit,
                       struct gh_store_tenant *out, size_t *count, bool *more, struct gh_err *err);

    /* [operator] Applies <upd> to tenant <id>, sets updated_at to <now>, and
     * fills <out> (may be NULL) with the result, and <status_moved> with
     * whether the status it found under the row's lock was another. Bumps
     * the change counter when the status or the plan changes. NOT_FOUND;
     * CONFLICT when the new name is taken. */
    int (*tenant_update)(struct gh_store *st, const char *id,
                         const struct gh_store_tenant_update *upd, int64_t now,
                         struct gh_store_tenant *out, bool *status_moved, struct gh_err *err);

    /* [tenant: k->tenant_id] Inserts <k> (id and times set by the wrapper)
     * and bumps the change counter. NOT_FOUND when the tenant, or the key
     * named by rotated_from within that tenant, does not exist; CONFLICT when
     * the key id is taken. A rotation (<old_until> >= 0, rotated_from set)
     * also sets, in the same transaction, the old key's expires_at to
     * <old_until> unless it expires sooner already, and reads it back into
     * *old_expires_at; CONFLICT, with nothing stored, when the old key is
     * no longer active. */
    int (*key_insert)(struct gh_store *st, const struct gh_store_key *k, int64_t old_until,
                      int64_t *old_expires_at, struct gh_err *err);

    /* [tenant] Fills <out> with key <key_id> of tenant <tenant_id>. */
    int (*key_get)(struct gh_store *st, const char *tenant_id, const char *key_id,
                   struct gh_store_key *out, struct gh_err *err);

    /* [tenant] As tenant_list, for the keys of <tenant_id>. */
    int (*key_list)(struct gh_store *st, const char *tenant_id, const struct gh_store_keyset *after,
                    size_t limit, struct gh_store_key *out, size_t *count, bool *more,
                    struct gh_err *err);

    /* [tenant] Sets the status of a key and bumps the change counter when it
     * changed, and sets <moved> to whether it changed. Revocation is final:
     * active -> revoked, or no change; revoked -> active is CONFLICT.
     * NOT_FOUND. */
    int (*key_set_status)(struct gh_store *st, const char *tenant_id, const char *key_id,
                          enum gh_store_key_status status, bool *moved, struct gh_err *err);

    /* [tenant] Sets expires_at (0 = never) and bumps the change counter. */
    int (*key_set_expiry)(struct gh_store *st, const char *tenant_id, const char *key_id,
                          int64_t expires_at, struct gh_err *err);

    /* [operator] In one transaction, sets last_used_at of each key to the
     * larger of its value and the entry's; unknown ids are skipped. Does not
     * bump the change counter (last use does not change who may pass). */
    int (*keys_touch_batch)(struct gh_store *st, const struct gh_store_key_touch *touches, size_t n,
                            struct gh_err *err);

    /* [operator] Calls <cb> for every key (any status) with its tenant's
     * status, from one consistent snapshot, and sets *version to the change
     * counter of that same snapshot. */
    int (*key_directory_load)(struct gh_store *st, gh_store_key_cb cb, void *arg, uint64_t *version,
                              struct gh_err *err);

    /* [operator] Records token <jti> as revoked until <expires_at> (revoking
     * again keeps the later expiry) and bumps the change counter. */
    int (*token_revoke)(struct gh_store *st, const char *jti, int64_t expires_at, int64_t now,
                        struct gh_err *err);

    /* [operator] Calls <cb> for every revoked token with expires_at > <now>,
     * from one snapshot whose change counter goes to *version. */
    int (*revoked_tokens_load)(struct gh_store *st, int64_t now, gh_store_revoked_cb cb, void *arg,
                               uint64_t *version, struct gh_err *err);

    /* [operator] Deletes revoked tokens with expires_at <= <now>; sets
     * *purged. Does not bump the change counter (they can no longer pass). */
    int (*revoked_tokens_purge)(struct gh_store *st, int64_t now, size_t *purged,
                                struct gh_err *err);

    /* [operator] Inserts a signing key (kid unique: CONFLICT) and bumps the
     * change counter, so every node's key directory picks it up. */
    int (*signing_key_insert)(struct gh_store *st, const struct gh_store_signing_key *k,
                              int64_t now, struct gh_err *err);
    /* [operator] Streams keys with publish_until > <now>, oldest first. */
    int (*signing_keys_load)(struct gh_store *st, int64_t now, gh_store_signing_cb cb, void *arg,
                             struct gh_err *err);

    /* [operator] Sets tenant <id>'s plan (NULL: unchanged) and limit
     * overrides (NULL: unchanged; "" clears) and updated_at to <now>; bumps
     * the change counter when the plan or the overrides text changed.
     * NOT_FOUND. */
    int (*tenant_limits_set)(struct gh_store *st, const char *id, const char *plan,
                             const char *overrides_json, int64_t now, struct gh_err *err);

    /* [tenant] Copies tenant <id>'s plan into <plan> (GH_STORE_NAME_SIZE
     * bytes) and its overrides into <json> (<cap> bytes). NOT_FOUND; INVALID
     * when the overrides do not fit in <cap>. */
    int (*tenant_limits_get)(struct gh_store *st, const char *id, char *plan, char *json,
                             size_t cap, struct gh_err *err);

    /* [operator] Calls <cb> for every tenant, oldest first. */
    int (*tenant_limits_load)(struct gh_store *st, gh_store_tenant_limits_cb cb, void *arg,
                              struct gh_err *err);

    /* [operator] In one transaction, adds each row's counts to the stored
     * (tenant_id, period) row (created when absent; each total saturates at
     * INT64_MAX), sets its updated_at to <now>, and writes the new totals and
     * updated_at into rows[i]. n >= 1. Does not bump the change counter.
     * <batch_id> (may be NULL): a batch stored under that id already adds
     * nothing and reads the totals (gh_store_usage_add_once). */
    int (*usage_add)(struct gh_store *st, const char *batch_id, struct gh_store_usage *rows,
                     size_t n, int64_t now, struct gh_err *err);

    /* [tenant] Fills <out> with the row (tenant_id, period); NOT_FOUND when
     * there is none (the wrapper turns that into zero counts). */
    int (*usage_get)(struct gh_store *st, const char *tenant_id, const char *period,
                     struct gh_store_usage *out, struct gh_err *err);

    /* [operator] Calls <cb> for every row of <period>, ordered by tenant_id. */
    int (*usage_load)(struct gh_store *st, const char *period, gh_store_usage_cb cb, void *arg,
                      struct gh_err *err);

    /* [operator] Inserts <ev> (created_at set by the wrapper) unless an event
     * with the same (tenant_id, period, metric, threshold) exists; sets
     * *inserted, and ev->id when inserted. Does not bump the change counter. */
    int (*limit_event_record)(struct gh_store *st, struct gh_store_limit_event *ev, bool *inserted,
                              struct gh_err *err);

    /* [tenant when <tenant_id> is not NULL, else operator] Writes up to
     * <limit> events with id < <before_id> (INT64_MAX: from the newest),
     * newest first, of <tenant_id> (NULL: of every tenant) into <out>; sets
     * *count, and *more when at least one further row exists. */
    int (*limit_events_list)(struct gh_store *st, const char *tenant_id, int64_t before_id,
                             size_t limit, struct gh_store_limit_event *out, size_t *count,
                             bool *more, struct gh_err *err);
    /* Deletes at most <limit> usage rows and at most <limit> limit events
     * whose period is a day before <day> ("YYYY-MM-DD") or a month before
     * <month> ("YYYY-MM"), in one transaction. PostgreSQL skips usage rows
     * another transaction holds. */
    int (*usage_purge)(struct gh_store *st, const char *day, const char *month, size_t limit,
                       struct gh_store_usage_purged *out, struct gh_err *err);

    /* ---- audit ---- */

    /* [operator] In one transaction (durable when it returns: the SQLite
     * engine commits with synchronous=FULL for this call), inserts <n> event
     * rows, in order, and <ncp> checkpoints. CONFLICT when a (chain, seq)
     * exists, or when a row's seq - 1 is neither stored nor earlier in the
     * batch: the caller's view of a chain head is stale. INVALID when a
     * checkpoint's (chain, seq, hash) is not a stored event's. Sets each
     * row's rowid (only when it returns GH_OK). A checkpoint of the same
     * (chain, seq, hash) as a stored one is taken as stored (another
     * writer's of the same head: a CLI command's next to the gateway's).
     * An engine whose commit can be cut with an unknown outcome
     * (PostgreSQL: UNAVAILABLE) also takes a row identical to the stored
     * one at its (chain, seq) (same hash) as already stored, so the caller
     * may send the same batch again. With <rechain> (may be NULL;
     * an engine may ignore it), a batch whose heads are stale is chained
     * again through it under the append lock instead of CONFLICT (see
     * gh_store_audit_append_rechain); *ncp is then the new count. With
     * <unsynced> (may be NULL), the engine may commit without waiting for
     * the disk: it sets *unsynced to say so (false: durable already), and
     * the batch is durable once audit_sync returns GH_OK. */
    int (*audit_append)(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                        const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                        const struct gh_store_audit_rechain *rechain, bool *unsynced,
                        struct gh_err *err);

    /* [operator] Makes every write committed before the call durable. NULL
     * for an engine whose commits always are (PostgreSQL). GH_ERROR when it
     * cannot: what was committed since the last sync may be lost, and the
     * store refuses every write from then on (until it is opened again). */
    int (*audit_sync)(struct gh_store *st, struct gh_err *err);

    /* [operator] Calls <cb> with the last row (highest seq) of every chain,
     * ordered by chain. A chain whose events were all archived reports its
     * head from its last archive row: rowid 0, chain, seq and hash set, the
     * other strings and the body empty. */
    int (*audit_heads)(struct gh_store *st, gh_store_audit_row_cb cb, void *arg,
                       struct gh_err *err);

    /* [tenant when f->tenant_id is set, else operator] Up to <limit> rows
     * matching <f>, newest first (or oldest first), strictly after <after>
     * in that order: (time_us, rowid) when <f> has a time range, else rowid
     * (the wrapper passes {INT64_MAX, INT64_MAX}, or {0, 0} oldest first,
     * for the first page; with a time range, <after> is already clamped
     * into it on the side the walk moves towards; its filter strings are
     * NULL, never "", when unset). When f->tenant_id is set, the query itself must restrict to it
     * (SQLite: "tenant_id = ?" in the SQL; PostgreSQL: RLS). Sets *count and
     * *more. */
    int (*audit_query)(struct gh_store *st, const struct gh_store_audit_filter *f,
                       const struct gh_store_audit_pos *after, size_t limit,
                       struct gh_store_audit_row *out, size_t *count, bool *more,
                       struct gh_err *err);

    /* [operator, or tenant with a tenant chain] Calls <cb> for every row of
     * <chain> (NULL: every chain, chain by chain) with seq in [from_seq, to_seq]
     * (to_seq 0: no end), in (chain, seq) order, from one snapshot. */
    int (*audit_walk)(struct gh_store *st, const char *chain, uint64_t from_seq, uint64_t to_seq,
                      gh_store_audit_row_cb cb, void *arg, struct gh_err *err);

    /* [operator, or tenant with a tenant chain] The lowest and highest seq
     * of <chain>'s rows with time_us in [from_us, to_us); *first = *last =
     * 0 when there is none. */
    int (*audit_seq_span)(struct gh_store *st, const char *chain, int64_t from_us, int64_t to_us,
                          uint64_t *first, uint64_t *last, struct gh_err *err);

    /* [operator] Calls <cb> for every row with rowid in (<after_rowid>,
     * <to_rowid>], in commit (rowid) order, from one snapshot: a sequential
     * read of the table, much faster than a walk chain by chain (the
     * verifier's first pass). Scans of disjoint ranges may run at the same
     * time on several threads (each on its own connection). */
    int (*audit_scan)(struct gh_store *st, int64_t after_rowid, int64_t to_rowid,
                      gh_store_audit_row_cb cb, void *arg, struct gh_err *err);

    /* How many scans can run at the same time, each on a connection of
     * its own, none waiting for another to end (the verifier splits its
     * scan into no more ranges): the reader connections, or the pool. */
    unsigned (*audit_scan_slots)(struct gh_store *st);

    /* Same for checkpoints, in (chain, seq) order. */
    int (*audit_checkpoints_walk)(struct gh_store *st, const char *chain, uint64_t from_seq,
                                  uint64_t to_seq, gh_store_audit_cp_cb cb, void *arg,
                                  struct gh_err *err);

    /* [operator] The audit keys: insert one; list all (newest first). */
    int (*audit_key_insert)(struct gh_store *st, const struct gh_store_audit_key *k,
                            struct gh_err *err);
    int (*audit_keys_list)(struct gh_store *st, struct gh_store_audit_key *out, size_t max,
                           size_t *count, struct gh_err *err);

    /* [operator] In ONE durable transaction: records archive <a> and deletes
     * its events (chain, first_seq..last_seq) from the hot table. CONFLICT
     * unless first_seq is the chain's first event not yet archived, every
     * event of the range is stored, and the stored hash at last_seq is
     * a->last_hash: only a whole prefix moves, never a hole. */
    int (*audit_archive_commit)(struct gh_store *st, const struct gh_store_audit_archive *a,
                                struct gh_err *err);
    /* [operator] Calls <cb> for every archive row of <chain> (NULL: all), in
     * (chain, first_seq) order. */
    int (*audit_archives_walk)(struct gh_store *st, const char *chain, gh_store_audit_archive_cb cb,
                               void *arg, struct gh_err *err);

    /* ---- backups ---- */
    /* [operator] Writes a copy of the whole store as of one commit into the
     * new file <path> (created 0600; an existing file is an error), while
     * writers go on. SQLite: a database this implementation can open;
     * PostgreSQL: a pg_dump archive (custom format) of the gatehouse schema,
     * which store_postgres.h restores into a scratch database (its
     * gh_store_postgres_backup also reports the counts and chain heads of
     * the dump's snapshot). */
    int (*backup)(struct gh_store *st, const char *path, struct gh_err *err);
    /* [operator] Calls <cb> with every table's name and row count, by name,
     * from one snapshot; tables are listed from the engine's catalogue. */
    int (*table_counts)(struct gh_store *st, gh_store_count_cb cb, void *arg, struct gh_err *err);
    /* [operator] The engine's own consistency check: <problem> (of <size>
     * bytes) is "" when the store is sound, else the first problem found.
     * GH_ERROR when the check could not run (a damaged file may say so). */
    int (*integrity_check)(struct gh_store *st, char *problem, size_t size, struct gh_err *err);
    /* ---- secrets ---- */

    /* [tenant] Inserts or replaces secret (s->tenant_id, s->name); created_at
     * is <now> for a new row and kept for a replaced one; updated_at <now>. */
    int (*secret_put)(struct gh_store *st, const struct gh_store_secret *s, int64_t now,
                      struct gh_err *err);
    /* [tenant] Fills <out>; NOT_FOUND. */
    int (*secret_get)(struct gh_store *st, const char *tenant_id, const char *name,
                      struct gh_store_secret *out, struct gh_err *err);
    /* [tenant] NOT_FOUND when absent. */
    int (*secret_delete)(struct gh_store *st, const char *tenant_id, const char *name,
                         struct gh_err *err);
    /* [tenant when <tenant_id> is set, else operator] Streams rows ordered by
     * (tenant_id, name). */
    int (*secrets_walk)(struct gh_store *st, const char *tenant_id, gh_store_secret_cb cb,
                        void *arg, struct gh_err *err);
    /* [operator] Calls <cb> with each master key version in use and its row
     * count, by version. */
    int (*secrets_versions)(struct gh_store *st, gh_store_secret_version_cb cb, void *arg,
                            struct gh_err *err);
    /* [operator] Up to <limit> rows with kek_version < <version>, ordered
     * by (kek_version, tenant_id, name), the order of their index, so a
     * batch reads its rows without sorting the rest; sets *count. */
    int (*secrets_stale)(struct gh_store *st, uint32_t version, size_t limit,
                         struct gh_store_secret *out, size_t *count, struct gh_err *err);
    /* [operator] In ONE transaction: applies each rewrap whose row still has
     * its old version and wrapped key (compare-and-set), adds how many did
     * to the pending rotation's count, and sets *applied. */
    int (*secrets_rewrap)(struct gh_store *st, const struct gh_store_secret_rewrap *rw, size_t n,
                          size_t *applied, struct gh_err *err);
    /* [operator] In one transaction: when no rotation is pending, records
     * <want> (started_at, from, to; finished_at 0, rewrapped 0) as the
     * pending one and sets *started; else leaves the pending one. Fills
     * <out> with the pending rotation either way. */
    int (*secrets_rotation_begin)(struct gh_store *st, const struct gh_store_secrets_rotation *want,
                                  struct gh_store_secrets_rotation *out, bool *started,
                                  struct gh_err *err);
    /* [operator] The last rotation (pending or finished); NOT_FOUND when
     * there was none. */
    int (*secrets_rotation_get)(struct gh_store *st, struct gh_store_secrets_rotation *out,
                                struct gh_err *err);
    /* [operator] Replaces the private_pem column of key <id> in the table
     * of <kind> with <text> (a reference once the key is sealed), so that no
     * copy of the old value stays in the file (SQLite: secure_delete, then
     * a checkpoint that truncates the WAL). NOT_FOUND. */
    int (*private_key_set)(struct gh_store *st, enum gh_store_private_kind kind, const char *id,
                           const char *text, struct gh_err *err);
    /* [operator] Marks the pending rotation to <to_version> finished at
     * <now>; CONFLICT when no such rotation is pending. */
    int (*secrets_rotation_finish)(struct gh_store *st, uint32_t to_version, int64_t now,
                                   struct gh_err *err);
    /* [operator] In one transaction: records <check> (<len> bytes) as
     * master key <version>'s check unless the store has one (<prepared>:
     * recorded as prepared, not in use: nothing is sealed under it until
     * secrets_kek_activate), then copies the recorded one into <stored>
     * (GH_STORE_SECRET_WRAP_MAX bytes) and sets *stored_len, and *newest to
     * the highest version with a check. */
    int (*secrets_kek_check)(struct gh_store *st, uint32_t version, const uint8_t *check,
                             size_t len, bool prepared, int64_t now, uint8_t *stored,
                             size_t *stored_len, uint32_t *newest, struct gh_err *err);
    /* [operator] Sets *in_use to the highest master key version whose check
     * is in use (0: none) and *newest to the highest with a check,
     * prepared or not. */
    int (*secrets_kek_state)(struct gh_store *st, uint32_t *in_use, uint32_t *newest,
                             struct gh_err *err);
    /* [operator] Puts prepared version <version> in use (a rotation to it
     * begins); one in use already stays so. NOT_FOUND without a check. */
    int (*secrets_kek_activate)(struct gh_store *st, uint32_t version, struct gh_err *err);
    /* [operator] Deletes version <version>'s check while it is prepared;
     * NOT_FOUND when there is none, or it is in use. */
    int (*secrets_kek_unprepare)(struct gh_store *st, uint32_t version, struct gh_err *err);
    /* ---- Webhooks (docs/webhooks.md) ---- */

    /* [tenant: e->tenant_id] Inserts endpoint <e> (all fields set by the
     * wrapper). NOT_FOUND when the tenant does not exist. */
    int (*hook_endpoint_insert)(struct gh_store *st, const struct gh_store_hook_endpoint *e,
                                struct gh_err *err);
    /* [tenant] Fills <out> with endpoint <id> of <tenant_id>. NOT_FOUND. */
    int (*hook_endpoint_get)(struct gh_store *st, const char *tenant_id, const char *id,
                             struct gh_store_hook_endpoint *out, struct gh_err *err);
    /* [tenant] As tenant_list, for the endpoints of <tenant_id>. */
    int (*hook_endpoint_list)(struct gh_store *st, const char *tenant_id,
                              const struct gh_store_keyset *after, size_t limit,
                              struct gh_store_hook_endpoint *out, size_t *count, bool *more,
                              struct gh_err *err);
    /* [tenant: e->tenant_id] Writes every changeable field of <e> (url,
     * description, events, status, disabled_reason, key versions, public
     * key, updated_at; failing_since only when 0) over the stored row if it
     * is still at revision e->rev, and sets e->rev to the row's new one.
     * CONFLICT when the row changed since; NOT_FOUND. */
    int (*hook_endpoint_update)(struct gh_store *st, struct gh_store_hook_endpoint *e,
                                struct gh_err *err);
    /* [tenant] Deletes endpoint <id> with its deliveries and their attempts,
     * in one transaction; fills <gone> with the row deleted. NOT_FOUND. */
    int (*hook_endpoint_delete)(struct gh_store *st, const char *tenant_id, const char *id,
                                struct gh_store_hook_endpoint *gone, struct gh_err *err);
    /* [tenant] In ONE transaction: stores message (<msg_id>, <type>,
     * <payload>) of <tenant_id> created at <now>, and a pending delivery,
     * due at <due>, for each active endpoint of the tenant subscribed to
     * <type>; sets *deliveries. When the tenant already has a message with
     * <msg_id>, changes nothing, sets *duplicate and *deliveries to that
     * message's delivery count (idempotent publish), or answers CONFLICT
     * when that message's type or payload differ (the id is reused). */
    int (*hook_publish)(struct gh_store *st, const char *tenant_id, const char *msg_id,
                        const char *type, const char *payload, size_t payload_len, int64_t now,
                        int64_t due, size_t *deliveries, bool *duplicate, struct gh_err *err);
    /* [operator] Claims up to <limit> pending deliveries due at <now> and
     * not claimed by <owner> yet, oldest due first, marks them claimed by
     * <owner>, and calls <cb> for each (while holding the writer: <cb> only
     * copies). A claim by another owner (a process that died) does not
     * hold a delivery back: that is what redelivers after a crash. */
    int (*hook_claim)(struct gh_store *st, const char *owner, int64_t now, size_t limit,
                      gh_store_hook_due_cb cb, void *arg, struct gh_err *err);
    /* [operator] In ONE transaction: for each outcome of <owner>'s claims,
     * appends the attempt, sets the delivery's status, attempt count, next
     * time, last status and error, releases its claim (PostgreSQL: only
     * while <owner> holds it, and an attempt already stored is not added
     * again, so a batch sent again after an unknown commit changes nothing
     * twice), and updates its endpoint's failing_since
     * (0 after a success, kept or set to the attempt's time after a
     * failure). Then disables the endpoint of each outcome marked <gone>
     * (reason "gone") and the active endpoints failing since before
     * <now> - <disable_after_ms> (> 0; reason "failing"), marking their
     * pending deliveries failed, and calls <cb> (may be NULL) for each.
     * Each disabling's report is leased to the caller
     * (GH_STORE_HOOK_REPORT_LEASE_MS), who marks it made with
     * hook_reports_done. */
    int (*hook_record)(struct gh_store *st, const char *owner,
                       const struct gh_store_hook_outcome *o, size_t n, int64_t now,
                       int64_t disable_after_ms, gh_store_hook_disabled_cb cb, void *arg,
                       struct gh_err *err);
    /* [tenant] Up to <limit> deliveries of endpoint <endpoint_id> of
     * <tenant_id> with id > <after_id>, with <status> (ANY: all), by id. */
    int (*hook_delivery_list)(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                              enum gh_store_delivery_status status, int64_t after_id, size_t limit,
                              struct gh_store_hook_delivery *out, size_t *count, bool *more,
                              struct gh_err *err);
    /* [tenant] Fills <out> with delivery <id> of endpoint <endpoint_id> and
     * up to <max> of its attempts, oldest first, into <attempts>. */
    int (*hook_delivery_get)(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                             int64_t id, struct gh_store_hook_delivery *out,
                             struct gh_store_hook_attempt *attempts, size_t max, size_t *nattempts,
                             struct gh_err *err);
    /* [tenant] Puts a delivery that is not pending back in the queue, due at
     * <now>, with a new attempt sequence (attempts 0; the history stays).
     * NOT_FOUND; CONFLICT when it is pending. */
    int (*hook_delivery_replay)(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                                int64_t id, int64_t now, struct gh_err *err);
    /* [operator] Counts pending deliveries. */
    int (*hook_pending_count)(struct gh_store *st, uint64_t *count, struct gh_err *err);
    /* [operator] In ONE transaction: takes up to GH_STORE_HOOK_REPORTS_MAX
     * disabled endpoints whose report is not made and whose lease ran out
     * by <now>, leases each to the caller (GH_STORE_HOOK_REPORT_LEASE_MS),
     * and once that committed calls <cb> with its reason. Two callers take
     * disjoint sets. */
    int (*hook_reports_claim)(struct gh_store *st, int64_t now, gh_store_hook_disabled_cb cb,
                              void *arg, struct gh_err *err);
    /* [operator] Marks the reports <r> made, each only while its endpoint's
     * report is still under that lease: a later disabling of the endpoint
     * (a new lease) keeps its own report to make. */
    int (*hook_reports_done)(struct gh_store *st, const struct gh_store_hook_report *r, size_t n,
                             struct gh_err *err);
    /* [operator] Resumes up to <limit> paused deliveries of active
     * endpoints (an older gatehouse, which knows no pausing, enabled their
     * endpoint), and sets *resumed to how many. */
    int (*hook_resume_stray)(struct gh_store *st, size_t limit, uint64_t *resumed,
                             struct gh_err *err);
    /* [operator] Retention, in ONE transaction: looks at up to <limit>
     * messages with seq > <after_seq>, oldest first. Each created before
     * <cutoff> is deleted with its deliveries and their attempts, unless
     * one of its deliveries is pending and either in flight (SQLite:
     * claimed by <owner>, the one process that claims; PostgreSQL: a claim
     * lease running at <now>), due after <now> (a retry gap longer than the
     * retention), or created, attempted or replayed at or after <cutoff>:
     * that message is kept (out->kept). Younger ones are passed over (a
     * node whose clock ran ahead stores some out of order). out->more when
     * the batch was full and held an old one or one created after <now>;
     * out->last_seq is the last message looked at. PostgreSQL: the messages and deliveries are
     * locked first, and those another transaction holds are skipped (kept), so nodes purging at
     * once delete disjoint sets and a claim never takes a delivery being deleted. Fills <out>. */
    int (*hook_purge)(struct gh_store *st, const char *owner, int64_t after_seq, int64_t cutoff,
                      int64_t now, size_t limit, struct gh_store_hook_purged *out,
                      struct gh_err *err);
};

/* The handle. Implementations embed it as their first member. */
struct gh_store {
    const struct gh_store_ops *ops; /* read-only */
};

extern const struct gh_store_ops gh_store_sqlite_ops;
extern const struct gh_store_ops gh_store_postgres_ops;

/* ---- Lifecycle ------------------------------------------------------------ */

/* Opens the engine named in <params> (sqlite_path or postgres_url) and sets *out.
 * Does not migrate: call gh_store_migrate() next. GH_STORE_INVALID when no
 * engine is named; GH_ERROR when it cannot be opened. */
int gh_store_open(const struct gh_store_params *params, struct gh_store **out, struct gh_err *err);

/* Closes <st> (NULL is fine). No other thread may use it any more. */
void gh_store_close(struct gh_store *st);

/* The implementation's name ("sqlite", "postgres"). */
const char *gh_store_engine(const struct gh_store *st);

/* Applies pending migrations (idempotent: a second run applies none). Sets
 * *applied and *version when not NULL. */
int gh_store_migrate(struct gh_store *st, int *applied, int *version, struct gh_err *err);

/* Reads the change counter: every write that affects who may pass (tenant
 * status, plan or limit overrides, key insert / status / expiry, token
 * revocation) increments it in its own transaction. Readers poll it to know
 * when to reload their caches. */
int gh_store_change_version(struct gh_store *st, uint64_t *version, struct gh_err *err);

/* Subscribes <cb>(<arg>) to changes pushed by the engine, so that readers
 * of the change counter need not wait for their next poll: PostgreSQL runs
 * one listener thread with its own connection (LISTEN gatehouse_changes;
 * every bump notifies on commit), reconnecting with backoff while the
 * server is away; SQLite (one process) pushes nothing. Polling stays the
 * fallback either way. Sets *out; GH_ERROR only when no thread or memory
 * could be had. */
int gh_store_watch_changes(struct gh_store *st, gh_store_change_fn cb, void *arg,
                           struct gh_store_watch **out, struct gh_err *err);

/* Stops and frees <w> (NULL is fine): no callback runs after it returns.
 * Before gh_store_close(). */
void gh_store_watch_stop(struct gh_store_watch *w);

struct gh_store_watch_stats {
    bool active;            /* the engine pushes changes (PostgreSQL) */
    bool connected;         /* its listener is connected now */
    uint64_t notifications; /* notifications received since the start */
};
void gh_store_watch_stats(const struct gh_store_watch *w, struct gh_store_watch_stats *out);

/* The write-ahead log's figures (struct gh_store_wal_stats); all zero and
 * supported false for an engine that does not run its own log, or st NULL. */
void gh_store_wal_stats(struct gh_store *st, struct gh_store_wal_stats *out);

/* ---- Tenants ---------------------------------------------------------------- */

/* [operator] Creates a tenant from <t>->name, <t>->plan ("" = "default") and
 * <t>->status (GH_STORE_TENANT_ANY = active); fills <t>->id ("tn_" + 20
 * base62 from the CSPRNG), created_at and updated_at. INVALID, CONFLICT. */
int gh_store_tenant_create(struct gh_store *st, struct gh_store_tenant *t, struct gh_err *err);

/* [tenant] Fills <out> with tenant <id>. NOT_FOUND (also for a malformed id). */
int gh_store_tenant_get(struct gh_store *st, const char *id, struct gh_store_tenant *out,
                        struct gh_err *err);

/* [operator] Fills <out> with the tenant named <name>. NOT_FOUND. */
int gh_store_tenant_get_by_name(struct gh_store *st, const char *name, struct gh_store_tenant *out,
                                struct gh_err *err);

/* [operator] The tenant <ref> names, as the CLI and the admin API take a
 * tenant: its id, else its name. NOT_FOUND when it is neither; another
 * store code when the lookup by id failed otherwise. */
int gh_store_tenant_find(struct gh_store *st, const char *ref, struct gh_store_tenant *out,
                         struct gh_err *err);

/* [operator] One page of tenants with status <status> (GH_STORE_TENANT_ANY:
 * all), oldest first; <out> holds <page>->limit records. INVALID for a bad
 * cursor or limit. */
int gh_store_tenant_list(struct gh_store *st, enum gh_store_tenant_status status,
                         struct gh_store_page *page, struct gh_store_tenant *out,
                         struct gh_err *err);

/* [tenant] Changes name, plan and/or status of tenant <id>; fills <out> (may
 * be NULL). Bumps the change counter when the status or the plan changes
 * (both change what passes). *<status_moved> (may be NULL) says whether
 * this call changed the status: of two suspensions at once, on one node or
 * two, exactly one moves it, as the store decides under the row's lock.
 * NOT_FOUND; CONFLICT when the name is taken or when asked to rename or
 * suspend the system tenant; INVALID for bad values or an empty update. */
int gh_store_tenant_update(struct gh_store *st, const char *id,
                           const struct gh_store_tenant_update *upd, struct gh_store_tenant *out,
                           bool *status_moved, struct gh_err *err);

/* ---- API keys --------------------------------------------------------------- */

/* [tenant: <k>->tenant_id] Inserts a key. The caller sets tenant_id, name,
 * roles, scopes, secret_hash, expires_at, rotated_from, and id ("" = the
 * store draws one from the CSPRNG); status must be active or ANY. The store
 * fills id, status, created_at and sets last_used_at to 0. INVALID (a clear
 * message says which field and rule), NOT_FOUND (tenant or rotated_from),
 * CONFLICT (a caller-given id is taken). */
int gh_store_key_insert(struct gh_store *st, struct gh_store_key *k, struct gh_err *err);
/* [tenant: <k>->tenant_id] A rotation in one transaction: inserts <k>, the
 * new key (as gh_store_key_insert; k->rotated_from names the old one), and
 * sets the old key's expires_at to <old_until> (>= 0) unless it expires
 * sooner already; *old_expires_at is its expiry after. Either both happen
 * or neither: a store lost between them leaves no new key whose secret
 * nobody was shown. CONFLICT (nothing stored) when the old key was revoked
 * meanwhile; otherwise as gh_store_key_insert. */
int gh_store_key_rotate(struct gh_store *st, struct gh_store_key *k, int64_t old_until,
                        int64_t *old_expires_at, struct gh_err *err);
/* The insert's check of <k>'s roles and scopes (count, rule, no duplicate),
 * for a caller that wants it before costly work (a key's Argon2id hash).
 * GH_OK or INVALID. */
int gh_store_key_check_lists(const struct gh_store_key *k, struct gh_err *err);

/* [tenant] Fills <out> with key <key_id> of tenant <tenant_id>. NOT_FOUND
 * when absent, malformed, or owned by another tenant. */
int gh_store_key_get(struct gh_store *st, const char *tenant_id, const char *key_id,
                     struct gh_store_key *out, struct gh_err *err);

/* [tenant] One page of the keys of <tenant_id>, oldest first. An unknown
 * tenant gives an empty page. */
int gh_store_key_list(struct gh_store *st, const char *tenant_id, struct gh_store_page *page,
                      struct gh_store_key *out, struct gh_err *err);

/* [tenant] Revokes (status GH_STORE_KEY_REVOKED) a key; revoking twice is
 * GH_OK. Revocation is final: asking for GH_STORE_KEY_ACTIVE on a revoked key
 * is CONFLICT. NOT_FOUND. *<moved> (may be NULL) says whether this call
 * changed the status: of two revocations at once, exactly one did. */
int gh_store_key_set_status(struct gh_store *st, const char *tenant_id, const char *key_id,
                            enum gh_store_key_status status, bool *moved, struct gh_err *err);

/* [tenant] Sets a key's expiry (unix ms; 0 = never), e.g. the end of a
 * rotation's grace period. INVALID when negative; NOT_FOUND. */
int gh_store_key_set_expiry(struct gh_store *st, const char *tenant_id, const char *key_id,
                            int64_t expires_at, struct gh_err *err);

/* [operator] Writes a batch of last-used times in one transaction (a time
 * never moves back; unknown ids are skipped). INVALID for a malformed id. */
int gh_store_keys_touch_batch(struct gh_store *st, const struct gh_store_key_touch *touches,
                              size_t n, struct gh_err *err);

/* [operator] Streams every key, any status, with its tenant's status, to
 * <cb> (see gh_store_key_cb), and sets *version (may be NULL) to the change
 * counter of the same snapshot: a cache built from it is current as of that
 * version. The records passed to <cb> live until it returns. */
int gh_store_key_directory_load(struct gh_store *st, gh_store_key_cb cb, void *arg,
                                uint64_t *version, struct gh_err *err);

/* ---- Revoked tokens --------------------------------------------------------- */

/* [operator] Revokes token <jti> (1..128 printable ASCII characters) until
 * <expires_at> (its exp, unix ms, > 0). Revoking again is GH_OK. */
int gh_store_token_revoke(struct gh_store *st, const char *jti, int64_t expires_at,
                          struct gh_err *err);

/* [operator] Streams the revoked tokens not yet expired at <now> to <cb>, and
 * sets *version (may be NULL) as gh_store_key_directory_load() does. */
int gh_store_revoked_tokens_load(struct gh_store *st, int64_t now, gh_store_revoked_cb cb,
                                 void *arg, uint64_t *version, struct gh_err *err);

/* [operator] Deletes revoked tokens expired at <now>; sets *purged (may be
 * NULL) to how many. */
int gh_store_revoked_tokens_purge(struct gh_store *st, int64_t now, size_t *purged,
                                  struct gh_err *err);

/* [operator] Signing keys for gateway-issued tokens (see the ops). */
int gh_store_signing_key_insert(struct gh_store *st, struct gh_store_signing_key *k,
                                struct gh_err *err);
int gh_store_signing_keys_load(struct gh_store *st, int64_t now, gh_store_signing_cb cb, void *arg,
                               struct gh_err *err);

/* ---- Tenant limits (issue 4) ------------------------------------------------ */

/* [operator] Sets tenant <id>'s plan (NULL: unchanged; validated like a name)
 * and its limit overrides (<overrides_json>: NULL unchanged, "" clears, else a
 * JSON object of at most GH_STORE_LIMITS_JSON_MAX bytes; the store checks only
 * that it is a JSON object, the limits module checks its meaning). Both NULL is
 * INVALID ("nothing to change"), as for gh_store_tenant_update(). Sets
 * updated_at and bumps the change counter when the plan or the overrides text
 * changed (plans and overrides change what passes). NOT_FOUND; INVALID. */
int gh_store_tenant_limits_set(struct gh_store *st, const char *id, const char *plan,
                               const char *overrides_json, struct gh_err *err);

/* [tenant] Reads tenant <id>'s plan into <plan> (GH_STORE_NAME_SIZE bytes) and
 * its overrides into <json> (<cap> bytes, "" when none; a <cap> of
 * GH_STORE_LIMITS_JSON_MAX + 1 always suffices). NOT_FOUND; INVALID when <cap>
 * is 0 or the stored overrides do not fit in it. */
int gh_store_tenant_limits_get(struct gh_store *st, const char *id, char *plan, char *json,
                               size_t cap, struct gh_err *err);

/* [operator] Streams every tenant's id, status, plan and overrides ("" when
 * none) to <cb>, oldest tenant first. The strings live until <cb> returns. */
int gh_store_tenant_limits_load(struct gh_store *st, gh_store_tenant_limits_cb cb, void *arg,
                                struct gh_err *err);

/* ---- Usage (quotas) ---------------------------------------------------------- */

/* [operator] In ONE transaction, adds each row's three counts to the stored
 * (tenant_id, period) row (created at zero when absent; unknown tenants are
 * fine: JWT tenants may not be in the tenants table, so no foreign key), sets
 * updated_at to now, and writes the new totals (and updated_at) back into
 * rows[i]; a pair given twice in one batch is added twice, each row getting
 * the total after its own addition. <rows> is written only when the
 * transaction committed, so a failed batch can be retried as it is. Does not
 * bump the change counter. INVALID for a malformed period (must be YYYY-MM-DD
 * or YYYY-MM, a real date), an empty tenant id (or one with control
 * characters), or a count above INT64_MAX; a stored total saturates at
 * INT64_MAX. n == 0 is GH_OK. */
int gh_store_usage_add(struct gh_store *st, struct gh_store_usage *rows, size_t n,
                       struct gh_err *err);
/* As gh_store_usage_add(), at most once per <batch_id> (1-64 bytes of
 * [A-Za-z0-9_-], unique per batch: random): a batch whose commit went
 * unanswered (UNAVAILABLE on PostgreSQL) is sent again, with the same id
 * and rows, until it is answered; if its first commit did land, the counts
 * are not added again and rows[i] get the stored totals. The engines keep
 * the ids for 7 days (SQLite, whose commits are always answered, keeps
 * none). NULL: no such guard. */
int gh_store_usage_add_once(struct gh_store *st, const char *batch_id, struct gh_store_usage *rows,
                            size_t n, struct gh_err *err);

/* [tenant] Fills <out> with tenant_id's usage for <period>; a period without a
 * row is GH_OK with zero counts (and updated_at 0). INVALID for a bad period
 * or tenant id. */
int gh_store_usage_get(struct gh_store *st, const char *tenant_id, const char *period,
                       struct gh_store_usage *out, struct gh_err *err);

/* [operator] Streams every tenant's row for <period>, ordered by tenant id.
 * INVALID for a bad period. */
int gh_store_usage_load(struct gh_store *st, const char *period, gh_store_usage_cb cb, void *arg,
                        struct gh_err *err);

/* ---- Limit events (quota thresholds crossed) ---------------------------------- */

/* [operator] Records <ev> once per (tenant_id, period, metric, threshold): the
 * first call inserts it (sets id, created_at, *inserted = true); later calls
 * change nothing (ev->id and ev->created_at are set to 0) and set *inserted =
 * false (GH_OK). Does not bump the change counter. INVALID for bad fields:
 * tenant_id and period as for gh_store_usage_add(), metric [a-z_]{1,31},
 * threshold 1..1000, value and limit at most INT64_MAX. */
int gh_store_limit_event_record(struct gh_store *st, struct gh_store_limit_event *ev,
                                bool *inserted, struct gh_err *err);

/* [tenant when tenant_id is not NULL, else operator] Up to <limit>
 * (1..GH_STORE_LIST_MAX) events newest first with id < <before_id> (0: from the
 * newest); sets *count and *more (a further page exists: pass the last
 * event's id as <before_id>). INVALID for a bad limit, a negative before_id or
 * a malformed (e.g. empty) tenant id. */
int gh_store_limit_events_list(struct gh_store *st, const char *tenant_id, int64_t before_id,
                               size_t limit, struct gh_store_limit_event *out, size_t *count,
                               bool *more, struct gh_err *err);

/* [operator] Usage retention (limits.usage_retention): deletes at most
 * <limit> (1..GH_STORE_USAGE_PURGE_MAX) usage rows and at most <limit>
 * limit events of periods wholly before the cutoff whose UTC day is <day>
 * ("YYYY-MM-DD") and month <month> ("YYYY-MM"), the names the limits
 * module gives periods (gh_quota_period_name): a name sorts before these
 * exactly when its period ended before the cutoff's day or month began.
 * One transaction; says how many of each went (a full batch: call again).
 * An event goes with its period, never before it ended: it is what keeps
 * a threshold from being announced twice in a period. INVALID for a bad
 * limit, day or month. */
int gh_store_usage_purge(struct gh_store *st, const char *day, const char *month, size_t limit,
                         struct gh_store_usage_purged *out, struct gh_err *err);

/* ---- Audit (docs/audit-format.md, docs/internals/store.md) -------------------- */

/* [operator] Appends <n> chained events and <ncp> checkpoints in ONE
 * transaction, durable when it returns GH_OK (see the op). Each row must
 * have: chain 1-31 bytes without control characters, seq 1..INT64_MAX, id
 * of 36 characters, time_us >= 0, tenant_id "" or a valid chain name, the
 * other strings terminated, outcome success|denied|failed, hash 64 lowercase
 * hex, body_len 1..GH_STORE_AUDIT_BODY_MAX. Each checkpoint: chain and seq
 * as above, hash as above, time_ms >= 0, key_id 16 base62, signature 88
 * base64 characters. Sets rows[i].rowid. INVALID; CONFLICT (stale head);
 * GH_ERROR. n + ncp == 0 is GH_OK. */
int gh_store_audit_append(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                          const struct gh_store_audit_checkpoint *cps, size_t ncp,
                          struct gh_err *err);

/* The same, for writers that share chains with writers on other nodes
 * (PostgreSQL). Heads read before the append may be stale by the time the
 * append takes the store's lock, and with several busy nodes a writer that
 * re-reads them and tries again can keep losing that race. Here the engine
 * reads the heads of the batch's chains under its lock and, when they are
 * not where <rows> expect them, calls <rechain> (still under the lock) to
 * chain the same events after them; the rewritten rows and checkpoints are
 * checked as on entry, then stored in the same transaction. An engine that
 * serialises writers otherwise (SQLite) may ignore <rechain> and answer
 * CONFLICT. Rows identical to stored ones (a batch sent again after an
 * unknown outcome) are taken as stored, never chained again. */
int gh_store_audit_append_rechain(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                                  const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                                  const struct gh_store_audit_rechain *rechain, struct gh_err *err);

/* The same, but the engine may answer before the batch is on disk (SQLite:
 * the commit's fsync is left out), so that the caller can send its next
 * batch while the disk catches up. *unsynced says whether it did: the batch
 * is then committed (readers see it; later writes come after it) but
 * durable only once gh_store_audit_sync returns GH_OK, and nobody may be
 * told it is stored before that. A crash before the sync loses it, and
 * every write after it, whole: never a part of a batch. */
int gh_store_audit_append_unsynced(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                                   const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                                   const struct gh_store_audit_rechain *rechain, bool *unsynced,
                                   struct gh_err *err);

/* [operator] Makes every append committed before the call durable (one
 * fsync on SQLite; nothing to do on PostgreSQL). GH_ERROR when the disk
 * refused: the batches not yet synced may be lost, and the store takes no
 * more writes until the process opens it again, as PostgreSQL stops after a
 * failed fsync: after one, the kernel may have dropped the pages it could
 * not write, and a later fsync that succeeds proves nothing about them. */
int gh_store_audit_sync(struct gh_store *st, struct gh_err *err);

/* [operator] Streams the head (highest seq) of every chain, by chain. */
int gh_store_audit_heads(struct gh_store *st, gh_store_audit_row_cb cb, void *arg,
                         struct gh_err *err);

/* [tenant when f->tenant_id is set, else operator] Up to <limit>
 * (1..GH_STORE_LIST_MAX) rows matching <f> into <out>, newest first (or
 * oldest first), strictly after <after> in that order (NULL: from the start;
 * the time_us and rowid of a page's last row give the next one). The order
 * is rowid (commit order), or (time_us, rowid) when <f> has a time range, so
 * that a range is read from its index without a sort. Sets *count and
 * *more. Stable under concurrent appends: rows are never changed, so a walk
 * sees every row that existed when it started exactly once, whichever the
 * order; by rowid, newest first never sees a row appended after it started
 * and oldest first sees them at its end. INVALID for a bad limit, an <after>
 * with rowid < 1 or time_us < 0, a filter string too long for its column,
 * negative times or from_us >= to_us. */
int gh_store_audit_query(struct gh_store *st, const struct gh_store_audit_filter *f,
                         const struct gh_store_audit_pos *after, size_t limit,
                         struct gh_store_audit_row *out, size_t *count, bool *more,
                         struct gh_err *err);

/* [operator, or tenant with its own chain] The lowest and highest seq of
 * <chain>'s events stamped in [from_us, to_us) (to_us 0: no end); *first =
 * *last = 0 when none is. Along a chain, time does not always grow with seq
 * (nodes' clocks differ; an event held while the store was down is chained
 * after later ones), so the run [*first, *last] holds every event of the
 * window, and may hold others between them. Reads the window's events
 * through the tenants' time index (the system chain's rows are those of no
 * tenant and of "system"). INVALID for a bad chain or times. */
int gh_store_audit_seq_span(struct gh_store *st, const char *chain, int64_t from_us, int64_t to_us,
                            uint64_t *first, uint64_t *last, struct gh_err *err);

/* [operator, or tenant with its own chain] Streams the rows of <chain> (NULL:
 * every chain, chain by chain) with seq in [from_seq, to_seq] (to_seq 0: no
 * end) in (chain, seq) order, from one snapshot. The row passed to <cb> is
 * reused for the next one: copy what must outlive the call. */
int gh_store_audit_walk(struct gh_store *st, const char *chain, uint64_t from_seq, uint64_t to_seq,
                        gh_store_audit_row_cb cb, void *arg, struct gh_err *err);

/* [operator] Streams every row with rowid in (<after_rowid>, <to_rowid>]
 * (to_rowid 0: no end; after_rowid INT64_MIN: from the very start, rows at
 * rowids below 1, which only tampering makes, included) in commit (rowid) order, from one
 * snapshot, reusing one row as the walk does. Within a chain, commit order
 * is seq order unless the table was tampered with. Safe to call from
 * several threads at once: each scan holds a connection of its own (the
 * verifier reads disjoint ranges in parallel). */
int gh_store_audit_scan(struct gh_store *st, int64_t after_rowid, int64_t to_rowid,
                        gh_store_audit_row_cb cb, void *arg, struct gh_err *err);

/* How many gh_store_audit_scan calls can run at the same time without one
 * waiting for another's connection (>= 1). */
unsigned gh_store_audit_scan_slots(struct gh_store *st);

/* The same for checkpoints (gh_store_audit_walk). */
int gh_store_audit_checkpoints_walk(struct gh_store *st, const char *chain, uint64_t from_seq,
                                    uint64_t to_seq, gh_store_audit_cp_cb cb, void *arg,
                                    struct gh_err *err);

/* [operator] Inserts an audit key (key_id 16 base62, both PEMs non-empty;
 * created_at set by the store). CONFLICT when the key id is taken. */
int gh_store_audit_key_insert(struct gh_store *st, struct gh_store_audit_key *k,
                              struct gh_err *err);

/* [operator] Up to <max> audit keys, newest first; sets *count. */
int gh_store_audit_keys_list(struct gh_store *st, struct gh_store_audit_key *out, size_t max,
                             size_t *count, struct gh_err *err);

/* [operator] Records archive <a> and deletes its events, in one
 * transaction (see the op). INVALID for a bad chain, seqs (1 <= first <=
 * last <= INT64_MAX), hashes (64 lowercase hex), events != last - first + 1,
 * an empty or unterminated file, or created_at < 0. CONFLICT as the op. */
int gh_store_audit_archive_commit(struct gh_store *st, const struct gh_store_audit_archive *a,
                                  struct gh_err *err);

/* [operator] Streams the archive rows of <chain> (NULL: every chain). */
int gh_store_audit_archives_walk(struct gh_store *st, const char *chain,
                                 gh_store_audit_archive_cb cb, void *arg, struct gh_err *err);

/* ---- Secrets (src/secrets/secrets.h seals and opens them) ------------------ */

/* A secret name: [A-Za-z0-9._/-]{1,128}, not starting with '/' or '.'. */
bool gh_store_valid_secret_name(const char *s);

/* [tenant: s->tenant_id] Stores sealed secret <s>, replacing the row of the
 * same (tenant, name). INVALID for a bad tenant id or name, sizes out of
 * range, or kek_version 0. Sets created_at (of this write; a replaced row
 * keeps its own) and updated_at. */
int gh_store_secret_put(struct gh_store *st, struct gh_store_secret *s, struct gh_err *err);
/* [tenant] NOT_FOUND (also for a malformed tenant id or name). */
int gh_store_secret_get(struct gh_store *st, const char *tenant_id, const char *name,
                        struct gh_store_secret *out, struct gh_err *err);
int gh_store_secret_delete(struct gh_store *st, const char *tenant_id, const char *name,
                           struct gh_err *err);
/* [tenant when <tenant_id> is set, else operator] Streams rows; the row
 * passed to <cb> lives until it returns. */
int gh_store_secrets_walk(struct gh_store *st, const char *tenant_id, gh_store_secret_cb cb,
                          void *arg, struct gh_err *err);
/* [operator] Rows per master key version. */
int gh_store_secrets_versions(struct gh_store *st, gh_store_secret_version_cb cb, void *arg,
                              struct gh_err *err);
/* [operator] How many sealed secrets the store holds. */
int gh_store_secrets_count(struct gh_store *st, uint64_t *rows, struct gh_err *err);
/* [operator] Rotation support: see the ops. <limit> 1..GH_STORE_LIST_MAX. */
int gh_store_secrets_stale(struct gh_store *st, uint32_t version, size_t limit,
                           struct gh_store_secret *out, size_t *count, struct gh_err *err);
int gh_store_secrets_rewrap(struct gh_store *st, const struct gh_store_secret_rewrap *rw, size_t n,
                            size_t *applied, struct gh_err *err);
/* Starts a rotation from <from> to <to> (to = from + 1) unless one is
 * pending; fills <out> with the pending one and sets *started. */
int gh_store_secrets_rotation_begin(struct gh_store *st, uint32_t from, uint32_t to,
                                    struct gh_store_secrets_rotation *out, bool *started,
                                    struct gh_err *err);
int gh_store_secrets_rotation_get(struct gh_store *st, struct gh_store_secrets_rotation *out,
                                  struct gh_err *err);
int gh_store_secrets_rotation_finish(struct gh_store *st, uint32_t to_version, struct gh_err *err);
/* [operator] Master key checks (src/secrets/secrets.c, docs/secrets.md): the
 * first check recorded for <version> stays, whoever records it; every node
 * then compares its own key with it. See the op. <len> 1..512. INVALID. */
int gh_store_secrets_kek_check(struct gh_store *st, uint32_t version, const uint8_t *check,
                               size_t len, bool prepared, uint8_t *stored, size_t *stored_len,
                               uint32_t *newest, struct gh_err *err);
int gh_store_secrets_kek_state(struct gh_store *st, uint32_t *in_use, uint32_t *newest,
                               struct gh_err *err);
int gh_store_secrets_kek_activate(struct gh_store *st, uint32_t version, struct gh_err *err);
int gh_store_secrets_kek_unprepare(struct gh_store *st, uint32_t version, struct gh_err *err);
/* [operator] See the op. <text>: a PEM or "secret:<name>", at most 511
 * bytes. INVALID; NOT_FOUND. */
int gh_store_private_key_set(struct gh_store *st, enum gh_store_private_kind kind, const char *id,
                             const char *text, struct gh_err *err);

/* A chain name (and a non-empty audit tenant id): 1-31 bytes, no control
 * characters. */
bool gh_store_valid_audit_chain(const char *s);

/* ---- Validation and helpers (no store needed) ------------------------------- */

/* ---- Backups (gatehouse backup / restore-drill) ------------------------------ */

/* See the ops of the same names. */
int gh_store_backup(struct gh_store *st, const char *path, struct gh_err *err);
int gh_store_table_counts(struct gh_store *st, gh_store_count_cb cb, void *arg, struct gh_err *err);
int gh_store_integrity_check(struct gh_store *st, char *problem, size_t size, struct gh_err *err);

/* A usage period: "YYYY-MM-DD" (a UTC day) or "YYYY-MM" (a UTC month), a real
 * date of the Gregorian calendar. */
bool gh_store_valid_period(const char *s);

/* [a-z0-9._-]{1,64}: tenant names and plans. */
bool gh_store_valid_tenant_name(const char *s);
/* [a-z0-9:._-]{1,64}: one role ("admin", "developer", "viewer", custom). */
bool gh_store_valid_role(const char *s);
/* [a-z0-9:._-]{1,64}: one scope ("orders:read"). */
bool gh_store_valid_scope(const char *s);
/* A key label: at most 64 bytes of UTF-8 without control characters; "" ok. */
bool gh_store_valid_key_name(const char *s);
/* "system" or "tn_" + 20 base62. */
bool gh_store_valid_tenant_id(const char *s);
/* 16 base62. */
bool gh_store_valid_key_id(const char *s);

/* "active" / "suspended" / "revoked"; "" for ANY or out of range. */
const char *gh_store_tenant_status_name(enum gh_store_tenant_status s);
const char *gh_store_key_status_name(enum gh_store_key_status s);
/* The reverse; GH_STORE_TENANT_ANY / GH_STORE_KEY_ANY for unknown text. */
enum gh_store_tenant_status gh_store_tenant_status_parse(const char *s);
enum gh_store_key_status gh_store_key_status_parse(const char *s);

/* Writes <n> base62 characters drawn from OpenSSL's CSPRNG (no modulo bias)
 * and a NUL into <out>, which holds n + 1 bytes. GH_ERROR when the CSPRNG
 * fails. */
int gh_store_random_base62(char *out, size_t n, struct gh_err *err);

/* ---- Webhooks (docs/webhooks.md) ------------------------------------------------ */

/* An event type: [a-z0-9_.-]{1,64}. */
bool gh_store_valid_hook_type(const char *s);
/* A subscription: an event type, a prefix wildcard "<type prefix>.*", or "*". */
bool gh_store_valid_hook_pattern(const char *s);
/* Does subscription <pattern> cover event type <type>? */
bool gh_store_hook_pattern_match(const char *pattern, const char *type);
/* "ep_" + 20 base62. */
bool gh_store_valid_hook_id(const char *s);
/* A message id: [A-Za-z0-9_.-]{1,64}. */
bool gh_store_valid_hook_msg_id(const char *s);
/* An endpoint's description: at most GH_STORE_HOOK_DESC_MAX bytes, no
 * control characters ("" is one). */
bool gh_store_valid_hook_description(const char *s);
const char *gh_store_delivery_status_name(enum gh_store_delivery_status s);
enum gh_store_delivery_status gh_store_delivery_status_parse(const char *s);

/* [tenant: e->tenant_id] Inserts an endpoint. The caller sets tenant_id,
 * url (already checked by the hooks module's SSRF rules), description,
 * events (1..32 valid patterns), ed25519, public_key and secret_version
 * (>= 1); the store draws the id (unless the caller set one) and sets
 * status active and the times. INVALID; NOT_FOUND (tenant). */
int gh_store_hook_endpoint_insert(struct gh_store *st, struct gh_store_hook_endpoint *e,
                                  struct gh_err *err);
/* [tenant] NOT_FOUND when absent, malformed or another tenant's. */
int gh_store_hook_endpoint_get(struct gh_store *st, const char *tenant_id, const char *id,
                               struct gh_store_hook_endpoint *out, struct gh_err *err);
/* [tenant] One page of <tenant_id>'s endpoints, oldest first. */
int gh_store_hook_endpoint_list(struct gh_store *st, const char *tenant_id,
                                struct gh_store_page *page, struct gh_store_hook_endpoint *out,
                                struct gh_err *err);
/* [tenant] Validates <e> as insert does, sets updated_at and writes it
 * over the row get read (e->rev): a read, a change and this call make a
 * read-modify-write that loses no concurrent change. failing_since is
 * written only as 0 (the clock reset); any other value keeps the stored
 * one. GH_STORE_CONFLICT
 * when the row changed since it was read (read it again, apply the change
 * again, retry); NOT_FOUND. On GH_OK e->rev is the row's new revision. */
int gh_store_hook_endpoint_update(struct gh_store *st, struct gh_store_hook_endpoint *e,
                                  struct gh_err *err);
/* [tenant] Deletes an endpoint and its deliveries; fills <gone> (optional)
 * with the row as it was deleted, whose key versions are the ones to drop.
 * NOT_FOUND. */
int gh_store_hook_endpoint_delete(struct gh_store *st, const char *tenant_id, const char *id,
                                  struct gh_store_hook_endpoint *gone, struct gh_err *err);
/* [tenant] Stores a message and its deliveries in ONE transaction, durable
 * as any commit of the store, before returning (see the op); the first
 * attempt is due <first_delay_ms> after now. <msg_id> must be valid;
 * <type> valid; <payload> a JSON text of at most GH_STORE_HOOK_PAYLOAD_MAX
 * bytes (not re-parsed here). INVALID; GH_ERROR. */
int gh_store_hook_publish(struct gh_store *st, const char *tenant_id, const char *msg_id,
                          const char *type, const char *payload, size_t payload_len,
                          uint64_t first_delay_ms, size_t *deliveries, bool *duplicate,
                          struct gh_err *err);
/* [operator] See the ops: <owner> 1..64 bytes, <limit> 1..1000. */
int gh_store_hook_claim(struct gh_store *st, const char *owner, size_t limit,
                        gh_store_hook_due_cb cb, void *arg, struct gh_err *err);
int gh_store_hook_record(struct gh_store *st, const char *owner,
                         const struct gh_store_hook_outcome *o, size_t n, int64_t disable_after_ms,
                         gh_store_hook_disabled_cb cb, void *arg, struct gh_err *err);
/* [tenant] Deliveries of one endpoint, paged by <page> (cursor: the last
 * id seen) with a status filter. */
int gh_store_hook_delivery_list(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                                enum gh_store_delivery_status status, struct gh_store_page *page,
                                struct gh_store_hook_delivery *out, struct gh_err *err);
int gh_store_hook_delivery_get(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                               int64_t id, struct gh_store_hook_delivery *out,
                               struct gh_store_hook_attempt *attempts, size_t max,
                               size_t *nattempts, struct gh_err *err);
int gh_store_hook_delivery_replay(struct gh_store *st, const char *tenant_id,
                                  const char *endpoint_id, int64_t id, struct gh_err *err);
int gh_store_hook_pending_count(struct gh_store *st, uint64_t *count, struct gh_err *err);
/* [operator] See the ops; now is the wall clock. <n> 0..GH_STORE_HOOK_REPORTS_MAX. */
int gh_store_hook_reports_claim(struct gh_store *st, gh_store_hook_disabled_cb cb, void *arg,
                                struct gh_err *err);
int gh_store_hook_reports_done(struct gh_store *st, const struct gh_store_hook_report *r, size_t n,
                               struct gh_err *err);
/* [operator] See the op: <limit> 1..GH_STORE_HOOK_RESUME_MAX. */
#define GH_STORE_HOOK_RESUME_MAX 10000
int gh_store_hook_resume_stray(struct gh_store *st, size_t limit, uint64_t *resumed,
                               struct gh_err *err);
/* [operator] See the op: <owner> 1..64 bytes, <limit> 1..GH_STORE_HOOK_PURGE_MAX, <cutoff> a
 * unix ms time; now is the wall clock. */
int gh_store_hook_purge(struct gh_store *st, const char *owner, int64_t after_seq, int64_t cutoff,
                        size_t limit, struct gh_store_hook_purged *out, struct gh_err *err);

#endif
