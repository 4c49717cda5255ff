/* The PostgreSQL store: the connection pool, transactions under the tenant
 * or operator role, the catalogue of SQL statements, error mapping, and the
 * ops table that ties the per-entity files (pg_migrations.c, pg_tenants.c,
 * pg_keys.c, pg_tokens.c, pg_usage.c, pg_audit.c, pg_backup.c, pg_secrets.c,
 * pg_webhooks.c, pg_listen.c) together; pg_tools.c runs PostgreSQL's
 * client programs.
 * pg_int.h states the rules; docs/postgres.md the schema, roles and policies. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "store/pg_int.h"

#define DEFAULT_POOL 8
#define MAX_POOL     64
/* statement_timeout and lock_timeout of the pooled sessions, when the
 * configuration gives none (store.statement_timeout, store.lock_timeout). */
#define DEFAULT_TIMEOUT_MS 5000

#define TENANT_COLS        "id, name, status, plan, created_at, updated_at"
#define KEY_COLS                                                                                   \
    "k.id, k.tenant_id, k.name, k.roles, k.scopes, k.secret_hash, k.status, k.expires_at, "        \
    "k.created_at, k.last_used_at, coalesce(k.rotated_from, '')"
#define USAGE_COLS "tenant_id, period, requests, request_bytes, response_bytes, updated_at"
#define EVENT_COLS "id, tenant_id, period, metric, threshold, value, lim, created_at"
#define AUDIT_COLS GH_PG_AUDIT_COLS
#define AUDIT_ARCHIVE_COLS                                                                         \
    "chain, first_seq, last_seq, prev_hash, last_hash, events, file, file_sha256, created_at"
#define SECRET_COLS  GH_PG_SECRET_COLS
#define HOOK_EP_COLS GH_PG_HOOK_EP_COLS
/* "paused" as the API shows it: waiting for its endpoint to be enabled,
 * whether the row is paused or was in flight (or published) at the
 * disabling (docs/webhooks.md). */
#define HOOK_DLV_COLS                                                                              \
    "d.id, d.endpoint_id, m.id, m.type, d.status, d.attempts, d.next_attempt_at, "                 \
    "d.last_status, d.last_error, d.created_at, d.updated_at, "                                    \
    "(d.paused OR EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id "           \
    "AND e.status <> 'active')) FROM webhook_deliveries d "                                        \
    "JOIN webhook_messages m ON m.seq = d.message_seq"
#define I64_MAX "9223372036854775807"

/* A chain's head seq and hash (GH_PG_AUDIT_HEADS_OF, _FIRST), from the
 * joins on c.chain. */
#define AUDIT_HEAD_COLS "coalesce(e.seq, a.last_seq, 0), coalesce(e.hash, a.last_hash, '')"
#define AUDIT_HEAD_JOINS                                                                           \
    "LEFT JOIN LATERAL (SELECT seq, hash FROM audit_events "                                       \
    "WHERE chain = (c.chain COLLATE \"C\") ORDER BY seq DESC LIMIT 1) e ON true "                  \
    "LEFT JOIN LATERAL (SELECT last_seq, last_hash FROM audit_archives "                           \
    "WHERE chain = (c.chain COLLATE \"C\") ORDER BY last_seq DESC LIMIT 1) a ON true "

/* Every statement, with $N parameters only (typed, so that the server never
 * guesses): no SQL is built from values. Tables are found through the
 * search_path the connection sets (the gatehouse schema). The one
 * exception is the audit append's script (pg_audit.c, script_of): one
 * simple query cannot bind parameters, so its values go in as quoted
 * literals, through one quoting function. */
static const char *const stmt_sql[GH_PG__COUNT] = {
    [GH_PG_SET_TENANT] = "SELECT set_config('gatehouse.tenant_id', $1::text, true)",
    [GH_PG_VERSION_GET] = "SELECT version FROM change_counter WHERE id = 1",
    /* NOTIFY is sent at commit only (never for a rollback), after the new
     * version is visible: a listener woken by it reads that version or a
     * later one (pg_listen.c). pg_notify() is PUBLIC's to execute. */
    [GH_PG_VERSION_BUMP] = "WITH b AS (UPDATE change_counter SET version = version + 1 "
                           "WHERE id = 1 RETURNING version) "
                           "SELECT pg_notify('" GH_PG_CHANGES_CHANNEL "', version::text) FROM b",
    [GH_PG_MIGRATION_MAX] = "SELECT coalesce(max(version), 0) FROM schema_migrations",
    /* The login role itself (session_user, not the role SET for the
     * transaction) must not be able to see past row-level security. */
    [GH_PG_LOGIN_CHECK] = "SELECT rolsuper OR rolbypassrls FROM pg_roles "
                          "WHERE rolname = session_user",
    [GH_PG_TENANT_INSERT] = "INSERT INTO tenants (" TENANT_COLS ") "
                            "VALUES ($1::text, $2::text, $3::text, $4::text, $5::bigint, "
                            "$6::bigint)",
    [GH_PG_TENANT_GET] = "SELECT " TENANT_COLS " FROM tenants WHERE id = $1::text",
    [GH_PG_TENANT_GET_BY_NAME] = "SELECT " TENANT_COLS " FROM tenants WHERE name = $1::text",
    [GH_PG_TENANT_LOCK] = "SELECT " TENANT_COLS " FROM tenants WHERE id = $1::text FOR UPDATE",
    [GH_PG_TENANT_LIST] = "SELECT " TENANT_COLS " FROM tenants "
                          "WHERE ($1::text IS NULL OR status = $1::text) "
                          "AND (created_at, id) > ($2::bigint, $3::text) "
                          "ORDER BY created_at, id LIMIT $4::bigint",
    [GH_PG_TENANT_UPDATE] = "UPDATE tenants SET name = coalesce($2::text, name), "
                            "plan = coalesce($3::text, plan), status = coalesce($4::text, status), "
                            "updated_at = $5::bigint WHERE id = $1::text",
    [GH_PG_KEY_INSERT] = "INSERT INTO api_keys (id, tenant_id, name, roles, scopes, secret_hash, "
                         "status, expires_at, created_at, last_used_at, rotated_from) "
                         "VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, "
                         "$7::text, $8::bigint, $9::bigint, 0, $10::text)",
    [GH_PG_KEY_OWNED] = "SELECT 1 FROM api_keys WHERE id = $1::text AND tenant_id = $2::text",
    [GH_PG_KEY_GET] = "SELECT " KEY_COLS " FROM api_keys k "
                      "WHERE k.id = $1::text AND k.tenant_id = $2::text",
    [GH_PG_KEY_STATUS_LOCK] = "SELECT status FROM api_keys WHERE id = $1::text "
                              "AND tenant_id = $2::text FOR UPDATE",
    [GH_PG_KEY_LIST] = "SELECT " KEY_COLS " FROM api_keys k WHERE k.tenant_id = $1::text "
                       "AND (k.created_at, k.id) > ($2::bigint, $3::text) "
                       "ORDER BY k.created_at, k.id LIMIT $4::bigint",
    [GH_PG_KEY_SET_STATUS] = "UPDATE api_keys SET status = $3::text "
                             "WHERE id = $1::text AND tenant_id = $2::text",
    [GH_PG_KEY_SET_EXPIRY] = "UPDATE api_keys SET expires_at = $3::bigint "
                             "WHERE id = $1::text AND tenant_id = $2::text",
    /* A rotation's old key (store_sqlite.c says why). */
    [GH_PG_KEY_EXPIRE_ROTATED] = "UPDATE api_keys SET expires_at = CASE WHEN expires_at = 0 OR "
                                 "expires_at > $3::bigint THEN $3::bigint ELSE expires_at END "
                                 "WHERE id = $1::text AND tenant_id = $2::text "
                                 "AND status = 'active' RETURNING expires_at",
    [GH_PG_KEY_TOUCH] = "UPDATE api_keys SET last_used_at = $2::bigint "
                        "WHERE id = $1::text AND last_used_at < $2::bigint",
    [GH_PG_KEY_DIRECTORY] = "SELECT " KEY_COLS ", t.status FROM api_keys k "
                            "JOIN tenants t ON t.id = k.tenant_id",
    [GH_PG_TOKEN_REVOKE] = "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) "
                           "VALUES ($1::text, $2::bigint, $3::bigint) ON CONFLICT (jti) DO UPDATE "
                           "SET expires_at = GREATEST(revoked_tokens.expires_at, "
                           "excluded.expires_at)",
    [GH_PG_TOKEN_LOAD] = "SELECT jti, expires_at, revoked_at FROM revoked_tokens "
                         "WHERE expires_at > $1::bigint",
    [GH_PG_TOKEN_PURGE] = "DELETE FROM revoked_tokens WHERE expires_at <= $1::bigint",
    [GH_PG_SIGNING_INSERT] = "INSERT INTO signing_keys (kid, alg, private_pem, created_at, "
                             "publish_until) VALUES ($1::text, $2::text, $3::text, $4::bigint, "
                             "$5::bigint)",
    [GH_PG_SIGNING_LOAD] = "SELECT kid, alg, private_pem, created_at, publish_until "
                           "FROM signing_keys WHERE publish_until > $1::bigint "
                           "ORDER BY created_at, kid",
    [GH_PG_TENANT_LIMITS_GET] = "SELECT plan, limits FROM tenants WHERE id = $1::text",
    [GH_PG_TENANT_LIMITS_LOCK] = "SELECT plan, limits FROM tenants WHERE id = $1::text "
                                 "FOR UPDATE",
    [GH_PG_TENANT_LIMITS_SET] = "UPDATE tenants SET plan = coalesce($2::text, plan), "
                                "limits = coalesce($3::text, limits), updated_at = $4::bigint "
                                "WHERE id = $1::text",
    [GH_PG_TENANT_LIMITS_LOAD] = "SELECT id, status, plan, limits FROM tenants "
                                 "ORDER BY created_at, id",
    /* Each total saturates at INT64_MAX: LEAST(t, MAX - a) + a cannot
     * overflow a bigint (0 <= a <= MAX). */
    [GH_PG_USAGE_ADD] =
        "INSERT INTO usage AS u (" USAGE_COLS ") VALUES ($1::text, $2::text, $3::bigint, "
        "$4::bigint, $5::bigint, $6::bigint) ON CONFLICT (tenant_id, period) DO UPDATE SET "
        "requests = LEAST(u.requests, " I64_MAX " - excluded.requests) + excluded.requests, "
        "request_bytes = LEAST(u.request_bytes, " I64_MAX " - excluded.request_bytes) "
        "+ excluded.request_bytes, "
        "response_bytes = LEAST(u.response_bytes, " I64_MAX " - excluded.response_bytes) "
        "+ excluded.response_bytes, updated_at = excluded.updated_at "
        "RETURNING requests, request_bytes, response_bytes",
    /* Usage batches stored (migration 9): an id already there inserts
     * nothing, and its batch adds nothing (gh_store_usage_add_once). The
     * purge takes at most 100 old ids and skips those another node's purge
     * holds, so two nodes never wait on each other for it. */
    [GH_PG_USAGE_BATCH_INSERT] = "INSERT INTO usage_batches (id, created_at) VALUES ($1::text, "
                                 "$2::bigint) ON CONFLICT (id) DO NOTHING RETURNING id",
    [GH_PG_USAGE_BATCH_PURGE] = "DELETE FROM usage_batches WHERE id IN (SELECT id FROM "
                                "usage_batches WHERE created_at < $1::bigint LIMIT 100 "
                                "FOR UPDATE SKIP LOCKED)",
    [GH_PG_USAGE_TOTALS] = "SELECT requests, request_bytes, response_bytes FROM usage "
                           "WHERE tenant_id = $1::text AND period = $2::text",
    [GH_PG_USAGE_GET] = "SELECT " USAGE_COLS " FROM usage "
                        "WHERE tenant_id = $1::text AND period = $2::text",
    [GH_PG_USAGE_LOAD] = "SELECT " USAGE_COLS " FROM usage WHERE period = $1::text "
                         "ORDER BY tenant_id",
    /* Retention (gh_pg__usage_purge), as in SQLite; usage rows a flush or
     * another node's purge holds are skipped, left for the next pass. */
    [GH_PG_USAGE_PURGE] = "WITH gone AS (DELETE FROM usage WHERE (tenant_id, period) IN "
                          "(SELECT tenant_id, period FROM usage WHERE period < $1::text AND "
                          "(period < $2::text OR length(period) = 10) LIMIT $3::bigint "
                          "FOR UPDATE SKIP LOCKED) RETURNING 1) SELECT count(*) FROM gone",
    /* Limit events go as their period's usage row does (the event of a
     * period that has not ended is what keeps a threshold from being
     * announced twice). They are never updated (the operator may not: no
     * row lock), so two nodes' purges take them in the one order of the
     * plan and the second finds them gone. */
    [GH_PG_EVENT_PURGE] = "WITH gone AS (DELETE FROM limit_events WHERE id IN (SELECT id FROM "
                          "limit_events WHERE period < $1::text AND (period < $2::text OR "
                          "length(period) = 10) ORDER BY period, id LIMIT $3::bigint) "
                          "RETURNING 1) SELECT count(*) FROM gone",
    [GH_PG_EVENT_INSERT] = "INSERT INTO limit_events (tenant_id, period, metric, threshold, value, "
                           "lim, created_at) VALUES ($1::text, $2::text, $3::text, $4::bigint, "
                           "$5::bigint, $6::bigint, $7::bigint) "
                           "ON CONFLICT (tenant_id, period, metric, threshold) DO NOTHING "
                           "RETURNING id",
    [GH_PG_EVENT_LIST] = "SELECT " EVENT_COLS " FROM limit_events WHERE id < $1::bigint "
                         "ORDER BY id DESC LIMIT $2::bigint",
    [GH_PG_EVENT_LIST_TENANT] = "SELECT " EVENT_COLS " FROM limit_events "
                                "WHERE tenant_id = $1::text AND id < $2::bigint "
                                "ORDER BY id DESC LIMIT $3::bigint",
    /* After the append's COPY, under the append lock (pg_audit.c): the
     * last rowid this session drew. */
    [GH_PG_AUDIT_LAST_ROWID] = "SELECT currval('audit_events_rowid_seq')",
    /* At start: that sequence must hand out 1, 2, 3... to whoever asks,
     * with no values cached per session (pg_migrations.c gh_pg__migrate). */
    [GH_PG_AUDIT_SEQ_CHECK] = "SELECT increment_by, cache_size FROM pg_sequences "
                              "WHERE schemaname = 'gatehouse' "
                              "AND sequencename = 'audit_events_rowid_seq'",
    /* The head of each chain named in $1 (sorted as strcmp sorts: "C"), from
     * the hot rows, else from the archives (a chain wholly archived), else
     * (0, ''): read under the append lock, so it cannot move meanwhile. */
    [GH_PG_AUDIT_HEADS_OF] = "SELECT c.chain, " AUDIT_HEAD_COLS " FROM unnest($1::text[]) AS "
                             "c(chain) " AUDIT_HEAD_JOINS "ORDER BY c.chain COLLATE \"C\"",
    /* The same, with for each chain the hash stored at the seq in $2 at
     * the same place (NULL when no row is there): the audit append's
     * script (pg_audit.c) tells a stale batch from one sent again by it.
     * LIMIT 1 keeps that lookup a subquery run per chain through
     * audit_events_chain_seq_key: without it the planner makes it a join,
     * and the generic plan of a session prepared while the table was
     * small hashes the whole table on every append (3 times slower per
     * batch of 10 after 20,000 events). */
    [GH_PG_AUDIT_HEADS_FIRST] =
        "SELECT c.chain, " AUDIT_HEAD_COLS ", f.hash "
        "FROM unnest($1::text[], $2::bigint[]) AS c(chain, first) " AUDIT_HEAD_JOINS
        "LEFT JOIN LATERAL (SELECT hash FROM audit_events "
        "WHERE chain = (c.chain COLLATE \"C\") AND seq = c.first LIMIT 1) f ON true "
        "ORDER BY c.chain COLLATE \"C\"",
    [GH_PG_AUDIT_HASHES] = "SELECT seq, hash, rowid FROM audit_events WHERE chain = $1::text "
                           "AND seq BETWEEN $2::bigint AND $3::bigint ORDER BY seq",
    [GH_PG_AUDIT_HASH_AT] = "SELECT hash FROM audit_events WHERE chain = $1::text "
                            "AND seq = $2::bigint",
    /* Before a query that walks a tenant's chain (pg_audit.c, query_sql):
     * sorts off for the transaction, so that the one plan without a sort,
     * audit_events_chain_seq_key in order, is the plan; and the seq the walk
     * starts from ($3: oldest first): that of the cursor's row $1 in chain
     * $2; when it is not there, past the chain's end if the cursor is past
     * the chain's last row (oldest first) or before its first (newest
     * first), else the chain's end the walk starts at (as sqlite_audit.c's
     * query_stmt). */
    [GH_PG_AUDIT_CHAIN_QUERY_START] =
        "SELECT set_config('enable_sort', 'off', true), coalesce((SELECT seq FROM audit_events "
        "WHERE rowid = $1::bigint AND chain = $2::text), CASE WHEN $3::boolean THEN CASE WHEN "
        "$1::bigint >= (SELECT rowid FROM audit_events WHERE chain = $2::text ORDER BY seq DESC "
        "LIMIT 1) THEN 9223372036854775807 ELSE 0 END ELSE CASE WHEN $1::bigint <= (SELECT rowid "
        "FROM audit_events WHERE chain = $2::text ORDER BY seq LIMIT 1) THEN 0 ELSE "
        "9223372036854775807 END END)",
    /* Before the system tenant's query (pg_audit.c): sorts off, so that its
     * partial index in rowid order is the plan. */
    [GH_PG_SORT_OFF] = "SELECT set_config('enable_sort', 'off', true)",
    /* For the rest of the transaction: plans made for the values at hand.
     * A generic plan of a pausing step can read the primary key past the
     * whole table for an endpoint of a few deliveries (pg_webhooks.c,
     * pause_steps). */
    [GH_PG_CUSTOM_PLANS] = "SELECT set_config('plan_cache_mode', 'force_custom_plan', true)",
    [GH_PG_AUDIT_CP_INSERT] = "INSERT INTO audit_checkpoints (" GH_PG_AUDIT_CP_COLS ") "
                              "VALUES ($1::text, $2::bigint, $3::text, $4::bigint, $5::text, "
                              "$6::text) ON CONFLICT (chain, seq) DO NOTHING RETURNING hash",
    [GH_PG_AUDIT_CP_AT] = "SELECT hash FROM audit_checkpoints WHERE chain = $1::text "
                          "AND seq = $2::bigint",
    /* Each chain's last row: the chains by a skip scan of the (chain, seq)
     * index (one seek per chain, not a read of every row: the writer reads
     * the heads again after each CONFLICT), then each one's last row. A
     * chain whose events were all archived has its head in its last
     * archive row (rowid 0, seq and hash, empty strings). */
    [GH_PG_AUDIT_HEADS] =
        "WITH RECURSIVE c(chain) AS ((SELECT chain FROM audit_events ORDER BY chain LIMIT 1) "
        "UNION ALL SELECT (SELECT e.chain FROM audit_events e WHERE e.chain > c.chain "
        "ORDER BY e.chain LIMIT 1) FROM c WHERE c.chain IS NOT NULL) "
        "SELECT h.* FROM c CROSS JOIN LATERAL (SELECT " AUDIT_COLS " FROM audit_events e "
        "WHERE e.chain = c.chain ORDER BY e.seq DESC LIMIT 1) h WHERE c.chain IS NOT NULL "
        "UNION ALL SELECT 0, chain, max(last_seq), '', 0, '', '', '', '', 'success', '', "
        "(array_agg(last_hash ORDER BY last_seq DESC))[1], '', '' FROM audit_archives a "
        "WHERE NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.chain = a.chain) "
        "GROUP BY chain ORDER BY 2",
    [GH_PG_AUDIT_WALK] = "SELECT " AUDIT_COLS " FROM audit_events "
                         "WHERE seq BETWEEN $1::bigint AND $2::bigint ORDER BY chain, seq",
    [GH_PG_AUDIT_WALK_CHAIN] = "SELECT " AUDIT_COLS " FROM audit_events WHERE chain = $1::text "
                               "AND seq BETWEEN $2::bigint AND $3::bigint ORDER BY seq",
    /* As SQLite's: a tenant chain's rows through its time index. */
    [GH_PG_AUDIT_SEQ_SPAN] =
        "SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM audit_events "
        "WHERE tenant_id = $1::text AND chain = $1::text "
        "AND time_us >= $2::bigint AND time_us < $3::bigint",
    [GH_PG_AUDIT_SEQ_SPAN_SYSTEM] = "SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM "
                                    "audit_events WHERE tenant_id IN ('', 'system') AND "
                                    "chain = $1::text "
                                    "AND time_us >= $2::bigint AND time_us < $3::bigint",
    [GH_PG_AUDIT_SCAN] = "SELECT " AUDIT_COLS " FROM audit_events WHERE rowid > $1::bigint "
                         "AND rowid <= $2::bigint ORDER BY rowid",
    [GH_PG_AUDIT_CP_WALK] = "SELECT " GH_PG_AUDIT_CP_COLS " FROM audit_checkpoints "
                            "WHERE seq BETWEEN $1::bigint AND $2::bigint ORDER BY chain, seq",
    [GH_PG_AUDIT_CP_WALK_CHAIN] = "SELECT " GH_PG_AUDIT_CP_COLS " FROM audit_checkpoints "
                                  "WHERE chain = $1::text AND seq BETWEEN $2::bigint "
                                  "AND $3::bigint ORDER BY seq",
    [GH_PG_AUDIT_KEY_INSERT] = "INSERT INTO audit_keys (key_id, public_pem, private_pem, "
                               "created_at) VALUES ($1::text, $2::text, $3::text, $4::bigint)",
    [GH_PG_AUDIT_KEYS_LIST] = "SELECT key_id, public_pem, private_pem, created_at FROM audit_keys "
                              "ORDER BY created_at DESC, key_id DESC LIMIT $1::bigint",
    [GH_PG_AUDIT_HOT_FIRST] = "SELECT coalesce(min(seq), 0) FROM audit_events "
                              "WHERE chain = $1::text",
    [GH_PG_AUDIT_ARCHIVE_LAST] = "SELECT coalesce(max(last_seq), 0) FROM audit_archives "
                                 "WHERE chain = $1::text",
    [GH_PG_AUDIT_ARCHIVE_DELETE] = "DELETE FROM audit_events WHERE chain = $1::text "
                                   "AND seq BETWEEN $2::bigint AND $3::bigint",
    [GH_PG_AUDIT_ARCHIVE_INSERT] = "INSERT INTO audit_archives (" AUDIT_ARCHIVE_COLS ") "
                                   "VALUES ($1::text, $2::bigint, $3::bigint, $4::text, $5::text, "
                                   "$6::bigint, $7::text, $8::text, $9::bigint)",
    [GH_PG_AUDIT_ARCHIVES] = "SELECT " AUDIT_ARCHIVE_COLS " FROM audit_archives "
                             "ORDER BY chain, first_seq",
    [GH_PG_AUDIT_ARCHIVES_CHAIN] = "SELECT " AUDIT_ARCHIVE_COLS " FROM audit_archives "
                                   "WHERE chain = $1::text ORDER BY first_seq",
    /* Every table of the schema with its row count, from one statement
     * (one snapshot): the count's SQL is put together by the server with
     * format(%I) from the catalogue's names, never by us. */
    [GH_PG_TABLES] = "SELECT c.relname, (xpath('/row/n/text()', query_to_xml(format("
                     "'SELECT count(*) AS n FROM gatehouse.%I', c.relname), false, true, "
                     "'')))[1]::text::bigint FROM pg_class c JOIN pg_namespace s "
                     "ON s.oid = c.relnamespace WHERE s.nspname = 'gatehouse' "
                     "AND c.relkind = 'r' ORDER BY c.relname COLLATE \"C\"",
    /* The snapshot of a REPEATABLE READ transaction, for pg_dump --snapshot
     * (pg_backup.c): the dump sees exactly what the transaction sees. */
    [GH_PG_EXPORT_SNAPSHOT] = "SELECT pg_export_snapshot()",
    [GH_PG_NO_IDLE_TIMEOUT] = "SELECT set_config('idle_in_transaction_session_timeout', '0', "
                              "true)",
    /* A tenant-owned table (one with a tenant_id column, and tenants) whose
     * row-level security is off or not forced, or has no policy. */
    [GH_PG_RLS_CHECK] = "SELECT c.relname FROM pg_class c JOIN pg_namespace s "
                        "ON s.oid = c.relnamespace WHERE s.nspname = 'gatehouse' "
                        "AND c.relkind = 'r' AND (c.relname = 'tenants' OR EXISTS (SELECT 1 "
                        "FROM pg_attribute a WHERE a.attrelid = c.oid "
                        "AND a.attname = 'tenant_id' AND NOT a.attisdropped)) "
                        "AND NOT (c.relrowsecurity AND c.relforcerowsecurity AND EXISTS "
                        "(SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)) "
                        "ORDER BY 1 LIMIT 1",
    /* Sealed secrets (pg_secrets.c): bytea sent in binary, read as text
     * (hex) and unescaped. A replaced secret keeps its created_at. */
    [GH_PG_SECRET_PUT] = "INSERT INTO secrets AS s (" SECRET_COLS ") VALUES ($1::text, $2::text, "
                         "$3::bytea, $4::bytea, $5::bytea, $6::bigint, $7::bigint, $7::bigint) "
                         "ON CONFLICT (tenant_id, name) DO UPDATE SET "
                         "ciphertext = excluded.ciphertext, nonce = excluded.nonce, "
                         "wrapped_dek = excluded.wrapped_dek, kek_version = excluded.kek_version, "
                         "updated_at = excluded.updated_at",
    [GH_PG_SECRET_GET] = "SELECT " SECRET_COLS " FROM secrets WHERE tenant_id = $1::text "
                         "AND name = $2::text",
    [GH_PG_SECRET_DELETE] = "DELETE FROM secrets WHERE tenant_id = $1::text AND name = $2::text",
    [GH_PG_SECRET_WALK] = "SELECT " SECRET_COLS " FROM secrets ORDER BY tenant_id, name",
    [GH_PG_SECRET_WALK_TENANT] = "SELECT " SECRET_COLS " FROM secrets WHERE tenant_id = $1::text "
                                 "ORDER BY name",
    [GH_PG_SECRET_VERSIONS] = "SELECT kek_version, count(*) FROM secrets GROUP BY kek_version "
                              "ORDER BY kek_version",
    [GH_PG_SECRET_STALE] = "SELECT " SECRET_COLS " FROM secrets WHERE kek_version < $1::bigint "
                           "ORDER BY kek_version, tenant_id, name LIMIT $2::bigint",
    /* Compare-and-set: a row put or re-wrapped meanwhile is left alone
     * (READ COMMITTED re-checks the WHERE on the row's newest version). */
    [GH_PG_SECRET_REWRAP] = "UPDATE secrets SET wrapped_dek = $5::bytea, kek_version = $6::bigint "
                            "WHERE tenant_id = $1::text AND name = $2::text "
                            "AND kek_version = $3::bigint AND wrapped_dek = $4::bytea",
    /* Held to the commit: two operators starting a rotation at once see
     * one record (there may be no row yet to lock FOR UPDATE). */
    [GH_PG_SECRET_ROT_LOCK] =
        "SELECT pg_advisory_xact_lock(hashtext('gatehouse.secrets_rotation'))",
    [GH_PG_SECRET_ROT_GET] = "SELECT from_version, to_version, started_at, finished_at, rewrapped "
                             "FROM secrets_rotation WHERE id = 1",
    [GH_PG_SECRET_ROT_START] = "INSERT INTO secrets_rotation (id, from_version, to_version, "
                               "started_at, finished_at, rewrapped) VALUES (1, $1::bigint, "
                               "$2::bigint, $3::bigint, 0, 0) ON CONFLICT (id) DO UPDATE SET "
                               "from_version = excluded.from_version, "
                               "to_version = excluded.to_version, "
                               "started_at = excluded.started_at, finished_at = 0, rewrapped = 0",
    [GH_PG_SECRET_ROT_COUNT] = "UPDATE secrets_rotation SET rewrapped = rewrapped + $1::bigint "
                               "WHERE id = 1 AND finished_at = 0",
    [GH_PG_SECRET_ROT_FINISH] = "UPDATE secrets_rotation SET finished_at = $2::bigint "
                                "WHERE id = 1 AND to_version = $1::bigint AND finished_at = 0",
    [GH_PG_SECRET_KEK_CHECK_PUT] = "INSERT INTO secrets_kek_checks (version, check_blob, "
                                   "created_at, prepared) VALUES ($1::bigint, $2::bytea, "
                                   "$3::bigint, $4::boolean) ON CONFLICT (version) DO NOTHING",
    [GH_PG_SECRET_KEK_STATE] = "SELECT coalesce(max(version) FILTER (WHERE NOT prepared), 0), "
                               "coalesce(max(version), 0) FROM secrets_kek_checks",
    [GH_PG_SECRET_KEK_ACTIVATE] = "UPDATE secrets_kek_checks SET prepared = false "
                                  "WHERE version = $1::bigint RETURNING version",
    /* Migration 18's function: the operator deletes no check itself. A
     * row when it deleted one, as the UPDATE above answers. */
    [GH_PG_SECRET_KEK_UNPREPARE] = "SELECT $1::bigint WHERE secrets_kek_unprepare($1::bigint) > 0",
    /* A statement of its own after the insert: under READ COMMITTED it
     * sees a row another node committed while the insert waited for it. */
    [GH_PG_SECRET_KEK_CHECK_GET] = "SELECT check_blob, (SELECT max(version) FROM "
                                   "secrets_kek_checks) FROM secrets_kek_checks "
                                   "WHERE version = $1::bigint",
    [GH_PG_AUDIT_KEY_SET_PRIVATE] = "UPDATE audit_keys SET private_pem = $2::text "
                                    "WHERE key_id = $1::text",
    [GH_PG_SIGNING_SET_PRIVATE] = "UPDATE signing_keys SET private_pem = $2::text "
                                  "WHERE kid = $1::text",
    /* Webhooks (pg_webhooks.c). */
    [GH_PG_HOOK_EP_INSERT] = "INSERT INTO webhook_endpoints (" HOOK_EP_COLS ") VALUES ($1::text, "
                             "$2::text, $3::text, $4::text, $5::text, $6::text, $7::text, "
                             "$8::bigint, $9::bigint, $10::bigint, $11::text, $12::bigint, "
                             "$13::text, $14::bigint, $15::bigint, $16::bigint)",
    [GH_PG_HOOK_EP_GET] = "SELECT " HOOK_EP_COLS " FROM webhook_endpoints "
                          "WHERE tenant_id = $1::text AND id = $2::text",
    [GH_PG_HOOK_EP_LIST] = "SELECT " HOOK_EP_COLS " FROM webhook_endpoints "
                           "WHERE tenant_id = $1::text AND (created_at, id) > ($2::bigint, "
                           "$3::text) ORDER BY created_at, id LIMIT $4::bigint",
    /* Over the revision read ($16), moving it. The failure clock is the
     * dispatcher's: written here only to reset it (0, an admin enabling
     * the endpoint), so its changes need not move the revision, and an
     * endpoint that flaps does not make an admin's change conflict. */
    [GH_PG_HOOK_EP_UPDATE] = "UPDATE webhook_endpoints SET url = $3::text, description = $4::text, "
                             "events = $5::text, public_key = $7::text, "
                             "secret_version = $8::bigint, prev_version = $9::bigint, "
                             "prev_until = $10::bigint, status = $11::text, "
                             "failing_since = CASE WHEN $12::bigint = 0 THEN 0 "
                             "ELSE failing_since END, disabled_reason = $13::text, "
                             "updated_at = $15::bigint, rev = rev + 1 "
                             "WHERE id = $1::text AND tenant_id = $2::text "
                             "AND signing = $6::text AND created_at = $14::bigint "
                             "AND rev = $16::bigint RETURNING rev",
    /* An endpoint's status change pauses or resumes its pending
     * deliveries (gh_pg__hook_endpoint_update): under this lock, so that
     * two changes, or a change and a replay, cannot cross and leave an
     * active endpoint's deliveries paused. */
    [GH_PG_HOOK_EP_STATUS_LOCK] =
        "SELECT pg_advisory_xact_lock(" GH_PG_HOOK_EP_LOCK_NS ", hashtext($1::text))",
    [GH_PG_HOOK_EP_STATUS] = "SELECT status, rev FROM webhook_endpoints "
                             "WHERE id = $1::text",
    /* Deliveries are locked in id order, as an outcome batch locks them,
     * and before the endpoint's row, as every writer of both does; in
     * steps of GH_PG_HOOK_PAUSE_STEP from id $2 on, each far inside the
     * pool's statement timeout however long the backlog (the caller runs
     * them until one does fewer). Answers how many, and the last id. */
    /* Not one in flight (claimed, its lease running at $3): its outcome
     * batch would wait for this transaction, holding a whole batch of other
     * endpoints' outcomes back. It comes back unpaused, not claimed while
     * the endpoint is disabled. */
    [GH_PG_HOOK_DLV_PAUSE] =
        "WITH c AS (UPDATE webhook_deliveries SET paused = true WHERE id = ANY (ARRAY("
        "SELECT id FROM webhook_deliveries WHERE endpoint_id = $1::text "
        "AND id > $2::bigint AND status = 'pending' AND NOT paused "
        "AND (claimed = '' OR claim_until <= $3::bigint) "
        "ORDER BY id LIMIT " GH_PG_HOOK_PAUSE_STEP " FOR UPDATE)) RETURNING id) "
        "SELECT count(*), coalesce(max(id), 0) FROM c",
    /* Served by webhook_deliveries_paused (migration 22). The ids as an
     * array (= ANY (ARRAY(...)), here and above): the planner then updates
     * them by primary key, where IN (subquery) made a hash join over a scan
     * of the whole table. */
    [GH_PG_HOOK_DLV_RESUME] = "WITH c AS (UPDATE webhook_deliveries SET paused = false "
                              "WHERE id = ANY (ARRAY(SELECT id FROM webhook_deliveries "
                              "WHERE endpoint_id = $1::text AND id > $2::bigint AND paused "
                              "ORDER BY id LIMIT " GH_PG_HOOK_PAUSE_STEP " FOR UPDATE)) "
                              "RETURNING id) SELECT count(*), coalesce(max(id), 0) FROM c",
    /* Paused deliveries of active endpoints (an older gatehouse enabled the
     * endpoint): none a transaction holds (SKIP LOCKED: an admin's pause
     * under way is left alone, and nothing waits). */
    /* Driven from the active endpoints, each probing the partial index
     * webhook_deliveries_paused: a join over the deliveries would read a
     * disabled endpoint's whole paused backlog (or the table). */
    [GH_PG_HOOK_DLV_RESUME_STRAY] = "WITH c AS (UPDATE webhook_deliveries SET paused = false "
                                    "WHERE id = ANY (ARRAY(SELECT id FROM webhook_deliveries "
                                    "WHERE paused AND id = ANY (ARRAY(SELECT p.id FROM "
                                    "webhook_endpoints e CROSS JOIN LATERAL (SELECT d.id FROM "
                                    "webhook_deliveries d WHERE d.endpoint_id = e.id AND d.paused "
                                    "ORDER BY d.id LIMIT $1::bigint) p WHERE e.status = 'active' "
                                    "LIMIT $1::bigint)) FOR UPDATE SKIP LOCKED)) RETURNING 1) "
                                    "SELECT count(*) FROM c",
    [GH_PG_HOOK_EP_DELETE] = "DELETE FROM webhook_endpoints WHERE tenant_id = $1::text "
                             "AND id = $2::text RETURNING " HOOK_EP_COLS,
    /* An endpoint's delete locks its deliveries first, in id order, then
     * deletes attempts, deliveries and last the endpoint's row: the order
     * of the dispatcher's outcomes (deliveries by id, then endpoints' rows)
     * and of the retention (deliveries, then attempts), so none of them
     * deadlock with it. Only a count comes back. */
    [GH_PG_HOOK_EP_LOCK_DELIVERIES] = "SELECT count(*) FROM (SELECT id FROM webhook_deliveries "
                                      "WHERE endpoint_id = $1::text ORDER BY id FOR UPDATE) d",
    [GH_PG_HOOK_EP_DEL_ATTEMPTS] = "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id "
                                   "FROM webhook_deliveries WHERE endpoint_id = $1::text)",
    [GH_PG_HOOK_EP_DEL_DELIVERIES] = "DELETE FROM webhook_deliveries WHERE endpoint_id = $1::text",
    [GH_PG_HOOK_EP_SUBSCRIBED] = "SELECT id, events FROM webhook_endpoints "
                                 "WHERE tenant_id = $1::text AND status = 'active'",
    [GH_PG_HOOK_EP_OK] = "UPDATE webhook_endpoints SET failing_since = 0 "
                         "WHERE id = $1::text AND failing_since <> 0",
    [GH_PG_HOOK_EP_FAILING] = "UPDATE webhook_endpoints SET failing_since = $2::bigint "
                              "WHERE id = $1::text AND failing_since = 0",
    /* The endpoints to disable as failing, 64 a transaction (the caller
     * runs transactions until fewer come back), in id order. */
    [GH_PG_HOOK_EP_DUE] = "SELECT id FROM webhook_endpoints WHERE status = 'active' "
                          "AND failing_since > 0 AND failing_since <= $1::bigint "
                          "ORDER BY id LIMIT 64",
    /* Of those ($3), the ones still to disable, checked again on each row's
     * newest version: of two nodes disabling one endpoint at once, one
     * reports it. */
    [GH_PG_HOOK_EP_DISABLE] = "UPDATE webhook_endpoints SET status = 'disabled', "
                              "disabled_reason = 'failing', updated_at = $1::bigint, "
                              "report_after = $4::bigint, rev = rev + 1 "
                              "WHERE id = ANY ($3::text[]) AND status = 'active' "
                              "AND failing_since > 0 AND failing_since <= $2::bigint "
                              "RETURNING tenant_id, id",
    [GH_PG_HOOK_EP_GONE] = "UPDATE webhook_endpoints SET status = 'disabled', "
                           "disabled_reason = 'gone', updated_at = $1::bigint, "
                           "report_after = $3::bigint, rev = rev + 1 "
                           "WHERE id = ANY ($2::text[]) AND status = 'active' "
                           "RETURNING tenant_id, id",
    /* The rows of endpoints about to be disabled, in id order, after their
     * deliveries (GH_PG_HOOK_DLV_LOCK_EPS): two nodes disabling some of the
     * same endpoints take them in one order. */
    [GH_PG_HOOK_EP_LOCK_ROWS] = "SELECT count(*) FROM (SELECT id FROM webhook_endpoints "
                                "WHERE id = ANY ($1::text[]) ORDER BY id FOR NO KEY UPDATE) e",
    /* The pending deliveries of endpoints about to be disabled, locked in
     * id order before any endpoint's row, the order of every writer of
     * both (docs/postgres.md). */
    [GH_PG_HOOK_DLV_LOCK_EPS] = "SELECT id FROM webhook_deliveries "
                                "WHERE endpoint_id = ANY ($1::text[]) AND status = 'pending' "
                                "ORDER BY id FOR UPDATE",
    /* Only the deliveries GH_PG_HOOK_DLV_LOCK_EPS locked ($3): one
     * published since is not locked, and locking it now, after the
     * endpoints' rows, could deadlock with a writer that holds it and
     * waits for a row (an admin's pause). It stays pending, unclaimed
     * while its endpoint is disabled. */
    [GH_PG_HOOK_DLV_FAIL_EP] = "UPDATE webhook_deliveries SET status = 'failed', claimed = '', "
                               "claim_until = 0, last_error = 'endpoint_disabled', "
                               "paused = false, updated_at = $2::bigint "
                               "WHERE id = ANY ($3::bigint[]) AND endpoint_id = ANY ($1::text[]) "
                               "AND status = 'pending'",
    /* A message id already stored for the tenant inserts nothing (two
     * nodes publishing one id at once: the second waits for the first's
     * commit, then sees its row) and the caller reads its count. */
    [GH_PG_HOOK_MSG_INSERT] = "INSERT INTO webhook_messages (id, tenant_id, type, payload, "
                              "created_at) VALUES ($1::text, $2::text, $3::text, $4::text, "
                              "$5::bigint) ON CONFLICT ON CONSTRAINT "
                              "webhook_messages_tenant_id_key DO NOTHING RETURNING seq",
    [GH_PG_HOOK_MSG_COUNT] = "SELECT deliveries, type = $3::text AND payload = $4::text "
                             "FROM webhook_messages WHERE tenant_id = $1::text AND id = $2::text",
    [GH_PG_HOOK_MSG_SET_COUNT] = "UPDATE webhook_messages SET deliveries = $2::bigint "
                                 "WHERE seq = $1::bigint",
    [GH_PG_HOOK_DLV_INSERT] = "INSERT INTO webhook_deliveries (message_seq, endpoint_id, "
                              "tenant_id, status, next_attempt_at, created_at, updated_at) "
                              "VALUES ($1::bigint, $2::text, $3::text, 'pending', $4::bigint, "
                              "$5::bigint, $5::bigint)",
    /* Served by webhook_deliveries_due. A delivery this process holds is
     * skipped; so is one another process holds while its lease runs and
     * that process lives (its session holds the advisory lock named after
     * its owner name: pg_webhooks.c; the live owners are read from pg_locks
     * once per claim, not per row). A row another claim has locked right
     * now is skipped, not waited for (SKIP LOCKED, only the delivery rows:
     * OF d). */
    [GH_PG_HOOK_DUE] = "WITH live AS MATERIALIZED (SELECT l.objid FROM pg_locks l "
                       "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                       "AND l.classid = " GH_PG_HOOK_LOCK_NS "::oid "
                       "AND l.database = (SELECT oid FROM pg_database "
                       "WHERE datname = current_database())) "
                       "SELECT d.id, d.attempts, d.tenant_id, d.endpoint_id, e.url, e.signing, "
                       "e.secret_version, e.prev_version, e.prev_until, m.id, m.type, m.payload, "
                       "m.created_at FROM webhook_deliveries d "
                       "JOIN webhook_endpoints e ON e.id = d.endpoint_id "
                       "JOIN webhook_messages m ON m.seq = d.message_seq "
                       "WHERE d.status = 'pending' AND d.paused = false "
                       "AND d.next_attempt_at <= $2::bigint "
                       "AND (d.claimed <> $1::text OR d.claim_until <= $2::bigint) "
                       "AND e.status = 'active' "
                       "AND (d.claim_until <= $2::bigint "
                       "OR (hashtext(d.claimed)::bigint & 4294967295)::oid "
                       "NOT IN (SELECT objid FROM live)) "
                       "ORDER BY d.next_attempt_at LIMIT $3::bigint FOR UPDATE OF d SKIP LOCKED",
    /* Whether a session of this database holds the claimer's lock, as
     * the others see it (GH_PG_HOOK_DUE's "live"). */
    [GH_PG_HOOK_OWNER_LIVE] = "SELECT EXISTS (SELECT 1 FROM pg_locks l "
                              "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                              "AND l.classid = " GH_PG_HOOK_LOCK_NS "::oid "
                              "AND l.objid = (hashtext($1::text)::bigint & 4294967295)::oid "
                              "AND l.database = (SELECT oid FROM pg_database "
                              "WHERE datname = current_database()))",
    [GH_PG_HOOK_CLAIM] = "UPDATE webhook_deliveries SET claimed = $1::text, "
                         "claim_until = $2::bigint WHERE id = ANY ($3::bigint[])",
    /* The attempt takes its delivery's tenant (for its policy); none for
     * a delivery deleted meanwhile (with its endpoint, or by the retention:
     * the key-share lock waits for a purge that holds the delivery, then
     * finds it gone, so no attempt outlives its delivery), and none when that
     * attempt (its delivery and start time) is stored: an outcome batch
     * recorded again after a commit that went unanswered. */
    [GH_PG_HOOK_ATTEMPT_INSERT] = "INSERT INTO webhook_attempts (delivery_id, tenant_id, at, "
                                  "status, error, latency_ms, response) SELECT id, tenant_id, "
                                  "$2::bigint, $3::bigint, $4::text, $5::bigint, $6::text "
                                  "FROM webhook_deliveries WHERE id = $1::bigint AND NOT EXISTS "
                                  "(SELECT 1 FROM webhook_attempts WHERE delivery_id = $1::bigint "
                                  "AND at = $2::bigint) FOR KEY SHARE OF webhook_deliveries",
    /* Only while pending and claimed by the outcome's owner ($7): an
     * outcome that arrives after the delivery ended (its endpoint was
     * disabled, or another node took it over when the lease ran out and
     * finished it), or while another node holds it, or again (a batch sent
     * again after its commit went unanswered: the first released the
     * claim) keeps its attempt row but changes nothing else: it neither
     * puts a delivery back in the queue nor counts an attempt twice nor
     * takes another node's claim. */
    /* A finished delivery is never paused (migration 22). */
    [GH_PG_HOOK_DLV_SET] = "UPDATE webhook_deliveries SET status = $2::text, "
                           "attempts = attempts + 1, next_attempt_at = $3::bigint, "
                           "last_status = $4::bigint, last_error = $5::text, claimed = '', "
                           "claim_until = 0, paused = paused AND $2::text = 'pending', "
                           "updated_at = $6::bigint "
                           "WHERE id = $1::bigint AND status = 'pending' AND claimed = $7::text",
    [GH_PG_HOOK_DLV_LIST] = "SELECT " HOOK_DLV_COLS " WHERE d.tenant_id = $1::text "
                            "AND d.endpoint_id = $2::text AND d.id > $3::bigint "
                            "AND $4::text IS NULL ORDER BY d.id LIMIT $5::bigint",
    [GH_PG_HOOK_DLV_LIST_STATUS] = "SELECT " HOOK_DLV_COLS " WHERE d.tenant_id = $1::text "
                                   "AND d.endpoint_id = $2::text AND d.id > $3::bigint "
                                   "AND d.status = $4::text ORDER BY d.id LIMIT $5::bigint",
    [GH_PG_HOOK_DLV_GET] = "SELECT " HOOK_DLV_COLS " WHERE d.tenant_id = $1::text "
                           "AND d.endpoint_id = $2::text AND d.id = $3::bigint",
    [GH_PG_HOOK_ATTEMPTS] = "SELECT at, status, error, latency_ms, response FROM webhook_attempts "
                            "WHERE delivery_id = $1::bigint ORDER BY id LIMIT $2::bigint",
    [GH_PG_HOOK_DLV_STATUS] = "SELECT status FROM webhook_deliveries WHERE tenant_id = $1::text "
                              "AND endpoint_id = $2::text AND id = $3::bigint FOR UPDATE",
    [GH_PG_HOOK_REPLAY] = "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
                          "paused = EXISTS (SELECT 1 FROM webhook_endpoints e "
                          "WHERE e.id = $2::text AND e.status <> 'active'), "
                          "next_attempt_at = $4::bigint, claimed = '', claim_until = 0, "
                          "last_error = '', updated_at = $4::bigint "
                          "WHERE tenant_id = $1::text AND endpoint_id = $2::text "
                          "AND id = $3::bigint",
    [GH_PG_HOOK_PENDING] = "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'",
    /* Served by webhook_endpoints_reports (migration 21). Endpoints' rows
     * only, in id order, and none another transaction holds (SKIP
     * LOCKED): two nodes take disjoint sets, and neither waits. */
    [GH_PG_HOOK_REPORTS_CLAIM] = "UPDATE webhook_endpoints SET report_after = $2::bigint "
                                 "WHERE id IN (SELECT id FROM webhook_endpoints "
                                 "WHERE report_after > 0 AND report_after <= $1::bigint "
                                 "ORDER BY id LIMIT $3::bigint FOR NO KEY UPDATE SKIP LOCKED) "
                                 "RETURNING tenant_id, id, disabled_reason",
    /* In id order, as every writer of several endpoints' rows; each only
     * while still under the lease its report was made under ($2). */
    [GH_PG_HOOK_REPORTS_DONE] =
        "UPDATE webhook_endpoints SET report_after = 0 WHERE id IN "
        "(SELECT e.id FROM webhook_endpoints e JOIN unnest($1::text[], "
        "$2::bigint[]) AS r (id, lease) ON e.id = r.id "
        "AND e.report_after = r.lease ORDER BY e.id FOR NO KEY UPDATE OF e)",
    /* Retention (gh_pg__hook_purge). The oldest messages, unlocked: the
     * caller picks those older than the cutoff. */
    [GH_PG_HOOK_PURGE_SCAN] = "SELECT seq, created_at FROM webhook_messages WHERE seq > $1::bigint "
                              "ORDER BY seq LIMIT $2::bigint",
    /* Of those, the ones no other node's purge holds, locked. */
    [GH_PG_HOOK_PURGE_LOCK] = "SELECT seq FROM webhook_messages WHERE seq = ANY ($1::bigint[]) "
                              "ORDER BY seq FOR UPDATE SKIP LOCKED",
    /* Each locked message, and whether to keep it: a delivery that is
     * pending and in flight (its lease runs), due later, or active since
     * the cutoff, or that another transaction holds (a claim or an outcome
     * being written: busy, so kept, not waited for). Every other delivery
     * of the locked messages is locked here, its newest version checked,
     * so no claim can take one before the deletes. */
    [GH_PG_HOOK_PURGE_KEEP] = "WITH mine AS MATERIALIZED (SELECT id, status, claim_until, "
                              "updated_at, next_attempt_at FROM webhook_deliveries "
                              "WHERE message_seq = ANY ($1::bigint[]) FOR UPDATE SKIP LOCKED), "
                              "keep AS (SELECT d.message_seq FROM webhook_deliveries d "
                              "LEFT JOIN mine ON mine.id = d.id "
                              "WHERE d.message_seq = ANY ($1::bigint[]) AND (mine.id IS NULL "
                              "OR (mine.status = 'pending' AND (mine.claim_until > $2::bigint "
                              "OR mine.next_attempt_at > $2::bigint "
                              "OR mine.updated_at >= $3::bigint)))) "
                              "SELECT m, m IN (SELECT message_seq FROM keep) "
                              "FROM unnest($1::bigint[]) m",
    [GH_PG_HOOK_PURGE_ATTEMPTS] = "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id "
                                  "FROM webhook_deliveries WHERE message_seq = ANY ($1::bigint[]))",
    [GH_PG_HOOK_PURGE_DELIVERIES] = "WITH gone AS (DELETE FROM webhook_deliveries "
                                    "WHERE message_seq = ANY ($1::bigint[]) RETURNING status) "
                                    "SELECT count(*), count(*) FILTER (WHERE status = 'pending') "
                                    "FROM gone",
    [GH_PG_HOOK_PURGE_MESSAGES] = "DELETE FROM webhook_messages WHERE seq = ANY ($1::bigint[])",
};

/* ---- Parameters and rows ------------------------------------------------------ */

void gh_pg__arg(struct gh_pg_args *a, const char *text)
{
    a->v[a->n] = text;
    a->len[a->n] = 0;
    a->fmt[a->n] = 0;
    a->n++;
}

void gh_pg__arg_i64(struct gh_pg_args *a, int64_t v)
{
    snprintf(a->num[a->n], sizeof(a->num[a->n]), "%lld", (long long)v);
    gh_pg__arg(a, a->num[a->n]);
}

void gh_pg__arg_bytes(struct gh_pg_args *a, const char *p, size_t len)
{
    a->v[a->n] = p;
    a->len[a->n] = (int)len;
    a->fmt[a->n] = 1;
    a->n++;
}

int gh_pg__text(const PGresult *r, int row, int col, char *dst, size_t size, struct gh_err *err)
{
    size_t n = (size_t)PQgetlength(r, row, col);

    if (PQgetisnull(r, row, col) || n >= size) {
        dst[0] = '\0';
        return gh_err_set(err, NULL, 0, 0, "store: column %s: missing or too long",
                          PQfname(r, col));
    }
    memcpy(dst, PQgetvalue(r, row, col), n);
    dst[n] = '\0';
    return GH_OK;
}

int64_t gh_pg__i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

struct order_ctx {
    const char *base;
    size_t size;
    int (*cmp)(const void *, const void *);
};

static int order_cmp(const void *a, const void *b, void *arg)
{
    const struct order_ctx *o = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = o->cmp(o->base + i * o->size, o->base + j * o->size);
    return c != 0 ? c : (i > j) - (i < j);
}

size_t *gh_pg__order(const void *base, size_t n, size_t size,
                     int (*cmp)(const void *, const void *))
{
    struct order_ctx o = {base, size, cmp};
    size_t *idx = malloc((n ? n : 1) * sizeof(*idx));

    if (idx == NULL) return NULL;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof(*idx), order_cmp, &o);
    return idx;
}

/* ---- Errors ------------------------------------------------------------------- */

/* Whether the failure of <r> on <db> means the server is gone: the
 * connection broke, the server is shutting down or starting, or we reached a
 * standby (a failover in progress: target_session_attrs=read-write finds the
 * new primary at the next connect). */
static bool lost(PGconn *db, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    if (PQstatus(db) != CONNECTION_OK) return true;
    if (state == NULL) return r == NULL || PQresultStatus(r) == PGRES_FATAL_ERROR;
    return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
           strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
           strcmp(state, "25006") == 0;
}

/* Whether <state> says the transaction lost a race or ran out of time,
 * not that it was wrong: a lock not granted within lock_timeout (55P03), a
 * deadlock (40P01), a serialization failure (40001), a statement cancelled
 * by statement_timeout (57014). Nothing of the transaction was written and
 * the very same op may succeed when tried again, so callers hear
 * UNAVAILABLE, the code every one of them holds and retries on (the audit
 * writer keeps its batch, the quota flush its counts, the dispatcher its
 * outcomes; the admin API answers 503 store_unavailable), never GH_ERROR,
 * which would drop an async audit event. The session itself is fine. */
static bool transient(const char *state)
{
    return state != NULL && (strcmp(state, "55P03") == 0 || strcmp(state, "40P01") == 0 ||
                             strcmp(state, "40001") == 0 || strcmp(state, "57014") == 0);
}

/* The message of a unique violation, by constraint: the field a client can
 * fix. Constraint names are those of the migrations (pg_migrations.c). */
static int conflict(const PGresult *r, struct gh_err *err)
{
    static const struct {
        const char *constraint, *msg;
    } known[] = {
        {"tenants_name_key", "name: a tenant with this name already exists"},
        {"tenants_pkey", "id: a tenant with this id already exists"},
        {"api_keys_pkey", "id: a key with this id already exists"},
        {"signing_keys_pkey", "kid: a signing key with this kid already exists"},
        {"audit_keys_pkey", "key_id: an audit key with this id already exists"},
        {"audit_events_chain_seq_key", "audit append: (chain, seq) already stored"},
        {"webhook_endpoints_pkey", "id: a webhook endpoint with this id already exists"},
    };
    const char *c = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);

    for (size_t i = 0; c != NULL && i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(c, known[i].constraint) == 0) {
            gh_err_set(err, NULL, 0, 0, "%s", known[i].msg);
            return GH_STORE_CONFLICT;
        }
    gh_err_set(err, NULL, 0, 0, "conflict: %s", c ? c : "unique constraint");
    return GH_STORE_CONFLICT;
}

/* A foreign key that a check before the write found intact broke in a race
 * (another node deleted or never had the row): NOT_FOUND, as the check
 * would have said. */
static int missing(const PGresult *r, struct gh_err *err)
{
    const char *c = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);

    if (c != NULL && strcmp(c, "api_keys_rotated_from_fkey") == 0)
        gh_err_set(err, NULL, 0, 0, "rotated_from: key not found");
    else if (c != NULL && (strcmp(c, "api_keys_tenant_id_fkey") == 0 ||
                           strcmp(c, "webhook_endpoints_tenant_id_fkey") == 0))
        gh_err_set(err, NULL, 0, 0, "tenant not found");
    else
        gh_err_set(err, NULL, 0, 0, "not found: %s", c ? c : "foreign key");
    return GH_STORE_NOT_FOUND;
}

/* Maps a failed result <r> (may be NULL) of <what> on <c> to a store code
 * and fills <err>. The server's primary message names objects, not values
 * (values only appear in DETAIL, which is not copied). */
static int failure(struct gh_pg_conn *c, const PGresult *r, const char *what, struct gh_err *err)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    if (state != NULL && strcmp(state, "23505") == 0) return conflict(r, err);
    if (state != NULL && strcmp(state, "23503") == 0) return missing(r, err);
    if (msg == NULL) msg = PQerrorMessage(c->db);
    if (transient(state)) {
        gh_err_set(err, NULL, 0, 0, "store: %s: PostgreSQL busy, try again: %.200s", what, msg);
        return GH_STORE_UNAVAILABLE;
    }
    if (lost(c->db, r)) {
        /* A session on a server turned standby (a failover) would fail
         * every write from now on: the pool's generation moves on, so this
         * session and every other connected before connect again at their
         * next use, and target_session_attrs=read-write finds the new
         * primary. Only a session of the current generation moves it (one
         * behind it is behind already): the ops still in flight on the old
         * server do not send the sessions just reconnected round again. */
        unsigned mine = c->gen;
        atomic_compare_exchange_strong(&c->owner->gen, &mine, c->gen + 1);
        gh_err_set(err, NULL, 0, 0, "store: %s: PostgreSQL unavailable: %.200s", what, msg);
        return GH_STORE_UNAVAILABLE;
    }
    gh_err_set(err, NULL, 0, 0, "store: %s: %.300s", what, msg);
    return GH_ERROR;
}

/* ---- Statements --------------------------------------------------------------- */

static int prepare(struct gh_pg_conn *c, const char *name, const char *sql, const Oid *types,
                   int ntypes, struct gh_err *err)
{
    PGresult *r = PQprepare(c->db, name, sql, ntypes, types);
    int rc = GH_OK;

    if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = failure(c, r, "prepare", err);
    PQclear(r);
    return rc;
}

int gh_pg__run_sql(struct gh_pg_tx *tx, const char *name, const char *sql, const Oid *types,
                   int ntypes, bool *prepared, const struct gh_pg_args *a, PGresult **res,
                   struct gh_err *err)
{
    struct gh_pg_conn *c = tx->c;
    static const struct gh_pg_args none = {0};
    PGresult *r;
    int rc = GH_OK, st;

    if (res != NULL) *res = NULL;
    if (a == NULL) a = &none;
    if (!*prepared) {
        rc = prepare(c, name, sql, types, ntypes, err);
        if (rc != GH_OK) return rc;
        *prepared = true;
    }
    r = PQexecPrepared(c->db, name, a->n, a->v, a->len, a->fmt, 0);
    st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = failure(c, r, name, err);
        PQclear(r);
        return rc;
    }
    if (res != NULL)
        *res = r;
    else
        PQclear(r);
    return GH_OK;
}

int gh_pg__copy_in(struct gh_pg_tx *tx, const char *sql, const char *data, size_t len,
                   uint64_t *rows, struct gh_err *err)
{
    struct gh_pg_conn *c = tx->c;
    PGresult *r = PQexec(c->db, sql);
    int rc = GH_OK;

    *rows = 0;
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        rc = failure(c, r, "copy", err);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    /* Blocking connection: each call returns once libpq has queued or sent
     * the bytes; chunks keep libpq's buffer small. */
    for (size_t off = 0; off < len;) {
        size_t n = len - off > 65536 ? 65536 : len - off;
        if (PQputCopyData(c->db, data + off, (int)n) != 1) {
            /* The end below reports the connection's state. */
            break;
        }
        off += n;
    }
    if (PQputCopyEnd(c->db, NULL) != 1) return failure(c, NULL, "copy", err);
    while ((r = PQgetResult(c->db)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == GH_OK) rc = failure(c, r, "copy", err);
        if (PQresultStatus(r) == PGRES_COMMAND_OK) *rows = strtoull(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    return rc;
}

void gh_pg__stmt_name(enum gh_pg_stmt id, char out[16])
{
    snprintf(out, 16, "s%d", (int)id);
}

int gh_pg__run(struct gh_pg_tx *tx, enum gh_pg_stmt id, const struct gh_pg_args *a, PGresult **res,
               struct gh_err *err)
{
    char name[16];

    gh_pg__stmt_name(id, name);
    return gh_pg__run_sql(tx, name, stmt_sql[id], NULL, 0, &tx->c->prepared[id], a, res, err);
}

int gh_pg__stream(struct gh_pg_tx *tx, enum gh_pg_stmt id, const struct gh_pg_args *a,
                  gh_pg_row_cb row_cb, void *arg, struct gh_err *err)
{
    struct gh_pg_conn *c = tx->c;
    static const struct gh_pg_args none = {0};
    char name[16];
    PGresult *r;
    int rc = GH_OK;
    bool stopped = false;

    if (a == NULL) a = &none;
    snprintf(name, sizeof(name), "s%d", (int)id);
    if (!tx->unbounded) {
        /* A walk of the whole audit log (the verifier, the archiver) may
         * rightly take longer than any one admin call: the statement bound
         * is lifted for the rest of this transaction; lock_timeout stays. */
        r = PQexec(c->db, "SET LOCAL statement_timeout = 0");
        if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = failure(c, r, "walk", err);
        PQclear(r);
        if (rc != GH_OK) return rc;
        tx->unbounded = true;
    }
    if (!c->prepared[id]) {
        rc = prepare(c, name, stmt_sql[id], NULL, 0, err);
        if (rc != GH_OK) return rc;
        c->prepared[id] = true;
    }
    if (!PQsendQueryPrepared(c->db, name, a->n, a->v, a->len, a->fmt, 0))
        return failure(c, NULL, name, err);
    PQsetSingleRowMode(c->db);
    /* Every result is read to the end, even after a stop, so the
     * connection is ready for the next statement. */
    while ((r = PQgetResult(c->db)) != NULL) {
        int st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE && !stopped) {
            rc = row_cb(r, arg);
            stopped = rc != GH_OK;
        } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && !stopped) {
            rc = failure(c, r, name, err);
            stopped = true;
        }
        PQclear(r);
    }
    if (!stopped && PQstatus(c->db) != CONNECTION_OK) rc = failure(c, NULL, name, err);
    return rc;
}

/* ---- Connections and transactions --------------------------------------------- */

/* search_path makes every statement name the gatehouse schema's tables;
 * lock_timeout is SQLite's busy timeout: a lock held elsewhere (a row, the
 * audit append lock) fails the op after 5 s rather than hanging it. No
 * statement_timeout here: `gatehouse postgres init` runs migrations on
 * such a session (the pool's sessions get theirs: pg_open). */
#define BASE_OPTIONS "-c search_path=gatehouse -c client_min_messages=warning"

/* libpq's notices (a server's warning, or its message when it ends a
 * session: "terminating connection due to administrator command") go to
 * the log, one record each, not straight to stderr as libpq's default does. */
static void log_notice(void *arg, const char *message)
{
    (void)arg;
    gh_log_warn("store: postgres: %s", message);
}

/* Opens a connection to <url> named <app> with the server settings
 * <options> ("-c name=value" pairs), blocking (PQconnectdbParams) or not
 * (PQconnectStartParams: the caller drives PQconnectPoll). */
static PGconn *connect_params(const char *url, const char *app, const char *options, bool async)
{
    /* The URL is expanded where "dbname" stands: what it says wins over
     * the timeouts before it; what follows it is ours. A server host that
     * died without a word (no RST: a power cut, a partition) is given up
     * after ~10 s of unacknowledged data or 25 s of silence, not the
     * kernel's hours, so a failover is noticed. */
    static const char *const keys[] = {"connect_timeout",  "tcp_user_timeout",
                                       "keepalives_idle",  "keepalives_interval",
                                       "keepalives_count", "dbname",
                                       "application_name", "client_encoding",
                                       "options",          NULL};
    /* In the order of <keys>. */
    const char *vals[] = {"5", "10000", "10", "5", "3", url, app, "UTF8", options, NULL};

    PGconn *db = async ? PQconnectStartParams(keys, vals, 1) : PQconnectdbParams(keys, vals, 1);

    if (db) PQsetNoticeProcessor(db, log_notice, NULL);
    return db;
}

static int connect_with(const char *url, const char *app, const char *options, PGconn **out,
                        struct gh_err *err)
{
    PGconn *db = connect_params(url, app, options, false);

    *out = NULL;
    if (db == NULL) return gh_err_set(err, NULL, 0, 0, "store: postgres: out of memory");
    if (PQstatus(db) != CONNECTION_OK) {
        /* libpq's message names the host and the reason, never the password. */
        gh_err_set(err, NULL, 0, 0, "store: postgres: cannot connect: %.300s", PQerrorMessage(db));
        PQfinish(db);
        return GH_STORE_UNAVAILABLE;
    }
    *out = db;
    return GH_OK;
}

PGconn *gh_pg__connect_start(const char *url, const char *app)
{
    return connect_params(url, app, BASE_OPTIONS " -c lock_timeout=5s", true);
}

int gh_pg__connect(const char *url, const char *app, PGconn **out, struct gh_err *err)
{
    return connect_with(url, app, BASE_OPTIONS " -c lock_timeout=5s", out, err);
}

/* Whether <c> can be used as it is: connected, and of the pool's current
 * generation (failure() moves it on past a session whose server cannot
 * serve us). */
static bool conn_current(struct gh_pg_store *s, const struct gh_pg_conn *c)
{
    return c->db != NULL && PQstatus(c->db) == CONNECTION_OK && c->gen == atomic_load(&s->gen);
}

/* (Re)connects <c> when it is not current. */
static int conn_ready(struct gh_pg_store *s, struct gh_pg_conn *c, struct gh_err *err)
{
    if (conn_current(s, c)) return GH_OK;
    if (c->db != NULL) PQfinish(c->db);
    c->db = NULL;
    c->gen = atomic_load(&s->gen);
    /* A new session: nothing is prepared on it. */
    memset(c->prepared, 0, sizeof(c->prepared));
    memset(c->query_prepared, 0, sizeof(c->query_prepared));
    return connect_with(s->url, GH_PG_APP, s->options, &c->db, err);
}

/* Takes a free connection, the first free one in pool order: a light load
 * keeps to the same few sessions, whose server processes stay warm (their
 * caches, and the CPU's for them: the audit writer's batches on one busy
 * core went 4% faster than when each went to the next session in turn,
 * bench/RESULTS.md), as PgBouncer reuses its server connections last in,
 * first out for the same reason. A session left idle that broke meanwhile
 * (a server restart) is connected again by its next use (gh_pg__begin).
 * When all are busy, waits for one to be given back, at
 * most the statement timeout (as long as a statement of the holder may
 * run). NULL when none came: the op fails with UNAVAILABLE, its caller
 * (an admin request, the audit writer) is not held longer than that. */
static struct gh_pg_conn *conn_acquire(struct gh_pg_store *s, struct gh_err *err)
{
    struct gh_pg_conn *c = NULL;
    struct timespec until;
    int w = 0;

    gh_deadline_ms(CLOCK_MONOTONIC, s->wait_ms, &until);
    pthread_mutex_lock(&s->pool_mu);
    for (;;) {
        for (unsigned i = 0; i < s->nconns && c == NULL; i++) {
            struct gh_pg_conn *x = &s->conns[i];
            if (!x->busy) c = x;
        }
        if (c != NULL || w == ETIMEDOUT) break;
        w = pthread_cond_timedwait(&s->pool_cv, &s->pool_mu, &until);
    }
    if (c != NULL) c->busy = true;
    pthread_mutex_unlock(&s->pool_mu);
    if (c == NULL)
        gh_err_set(err, NULL, 0, 0,
                   "store: PostgreSQL: all %u connections stayed busy for %u ms (store.pool)",
                   s->nconns, s->wait_ms);
    return c;
}

/* Each scan holds a pooled connection for as long as it runs. */
static unsigned pg_audit_scan_slots(struct gh_store *st)
{
    return gh_pg__of(st)->nconns;
}

static void conn_release(struct gh_pg_store *s, struct gh_pg_conn *c)
{
    pthread_mutex_lock(&s->pool_mu);
    c->busy = false;
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
}

/* Reads and drops the results still due for the query in flight. A COPY
 * FROM STDIN it reaches is failed, so that the statements after it (a
 * script's COMMIT) are skipped; a lost connection ends the results. */
static void drain(struct gh_pg_conn *c)
{
    PGresult *r;

    while ((r = PQgetResult(c->db)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        PQclear(r);
        if (st == PGRES_COPY_IN && PQputCopyEnd(c->db, "gatehouse: abandoned") != 1) break;
        if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) break; /* never sent by us */
    }
}

/* BEGIN and the role, in one round trip (constant SQL, nothing bound); with
 * <audit_lock> (operator, not a snapshot) the audit append lock too, as a
 * statement of its own after the others: in READ COMMITTED, what the caller
 * reads next is read after the lock is held. One round trip fewer matters
 * to the audit committer, which waits for the CPU after each one when the
 * gateway is busy. With <script> (audit_lock only), the statements of its
 * tail go in the same message, its <meanwhile> runs (once) while the server
 * works, and the tail's results are left for the caller
 * (gh_pg__begin_audit_script). */
static int open_tx(struct gh_pg_conn *c, enum gh_pg_role role, bool snapshot, bool audit_lock,
                   struct gh_pg_script *script, struct gh_err *err)
{
    /* READ COMMITTED named, whatever the database's default_transaction_
     * isolation: the calls count on it (an ON CONFLICT that waited for
     * another commit, then a statement that sees that commit; compare-and-
     * set updates re-checked on the newest row version). */
    static const char *const sql[2][2] = {
        {"BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL ROLE gatehouse_operator",
         "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL ROLE gatehouse_operator"},
        {"BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL ROLE gatehouse_tenant",
         "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL ROLE gatehouse_tenant"},
    };
    /* READ COMMITTED named, whatever the database's default: the heads read
     * after the lock must be read in a snapshot taken after it is held.
     * Generic plans forced for the append's statements: left to choose, the
     * server plans the heads statement again at every run, as its plan for
     * unnest($1) of unknown length looks dearer than one for the array it
     * is given, though both are one index lookup per chain (LIMIT 1): 0.2
     * ms of the server's time per append under load (bench/RESULTS.md). */
    static const char locked[] = "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL ROLE "
                                 "gatehouse_operator; SET LOCAL plan_cache_mode = "
                                 "force_generic_plan; " GH_PG_AUDIT_LOCK_SQL;
    /* What the statements of <locked> answer. */
    static const ExecStatusType locked_status[] = {PGRES_COMMAND_OK, PGRES_COMMAND_OK,
                                                   PGRES_COMMAND_OK, PGRES_TUPLES_OK};
    enum { NLOCKED = sizeof(locked_status) / sizeof(locked_status[0]) };
    const char *what = audit_lock ? "begin, audit append lock" : "begin";
    PGresult *r;
    int rc = GH_OK;

    if (script != NULL) {
        /* The statements the tail runs by name that this session has not
         * prepared yet are prepared in the same message, after the role is
         * set (as gh_pg__run prepares inside its transaction: names resolve
         * as the operator's). PREPARE is not undone by a rollback. */
        size_t hl = sizeof(locked) - 1, tl = strlen(script->tail), len = hl + 2 + tl + 1;
        size_t nprep = 0, o = hl;
        enum gh_pg_stmt prep[4];
        char *text;
        if (script->nuses > sizeof(prep) / sizeof(prep[0]))
            return gh_err_set(err, NULL, 0, 0, "store: a script uses too many statements");
        for (size_t i = 0; i < script->nuses; i++)
            if (!c->prepared[script->uses[i]]) {
                prep[nprep++] = script->uses[i];
                len += 32 + strlen(stmt_sql[script->uses[i]]);
            }
        if ((text = malloc(len)) == NULL)
            return gh_err_set(err, NULL, 0, 0, "store: out of memory");
        memcpy(text, locked, hl);
        for (size_t i = 0; i < nprep; i++) {
            char name[16];
            gh_pg__stmt_name(prep[i], name);
            o += (size_t)snprintf(text + o, len - o, "; PREPARE %s AS %s", name, stmt_sql[prep[i]]);
        }
        snprintf(text + o, len - o, "; %s", script->tail);
        if (!PQsendQuery(c->db, text)) rc = failure(c, NULL, what, err);
        free(text);
        if (rc == GH_OK && script->meanwhile != NULL) {
            script->meanwhile(script->arg);
            script->meanwhile = NULL;
        }
        for (int i = 0; rc == GH_OK && i < NLOCKED; i++) {
            r = PQgetResult(c->db);
            if (PQresultStatus(r) != locked_status[i]) rc = failure(c, r, what, err);
            PQclear(r);
        }
        for (size_t i = 0; rc == GH_OK && i < nprep; i++) {
            r = PQgetResult(c->db);
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                rc = failure(c, r, "prepare", err);
            else
                c->prepared[prep[i]] = true;
            PQclear(r);
        }
        if (rc != GH_OK) drain(c);
    } else {
        r = PQexec(c->db, audit_lock ? locked : sql[role == GH_PG_TENANT][snapshot]);
        if (PQresultStatus(r) != (audit_lock ? PGRES_TUPLES_OK : PGRES_COMMAND_OK))
            rc = failure(c, r, what, err);
        PQclear(r);
    }
    if (rc != GH_OK && PQtransactionStatus(c->db) != PQTRANS_IDLE) {
        PGresult *rb = PQexec(c->db, "ROLLBACK");
        PQclear(rb);
    }
    return rc;
}

static int begin_tx(struct gh_pg_store *s, enum gh_pg_role role, const char *tenant, bool snapshot,
                    bool audit_lock, struct gh_pg_script *script, struct gh_pg_tx *tx,
                    struct gh_err *err)
{
    struct gh_pg_conn *c;
    bool was_up;
    int rc;

    /* An empty tenant setting would match the system rows (tenant_id ''):
     * a tenant-scoped call always names its tenant. */
    if (role == GH_PG_TENANT && (tenant == NULL || tenant[0] == '\0'))
        return gh_err_set(err, NULL, 0, 0, "store: a tenant-scoped call without a tenant");
    c = conn_acquire(s, err);
    if (c == NULL) return GH_STORE_UNAVAILABLE;
    was_up = conn_current(s, c);
    tx->s = s;
    tx->c = c;
    tx->snapshot = snapshot;
    tx->unbounded = false;
    tx->script = script != NULL;
    rc = conn_ready(s, c, err);
    if (rc == GH_OK) rc = open_tx(c, role, snapshot, audit_lock, script, err);
    /* A connection that broke since its last use (a server restart) shows
     * only now: nothing was sent in this op yet, so one reconnect and retry
     * is safe (a script's COPY input is not sent before its first results
     * came, so none of it was taken either). A connect that just failed is
     * not tried twice. */
    if (rc == GH_STORE_UNAVAILABLE && was_up && !conn_current(s, c)) {
        rc = conn_ready(s, c, err);
        if (rc == GH_OK) rc = open_tx(c, role, snapshot, audit_lock, script, err);
    }
    if (rc == GH_OK && role == GH_PG_TENANT) {
        struct gh_pg_args a = {0};
        gh_pg__arg(&a, tenant);
        rc = gh_pg__run(tx, GH_PG_SET_TENANT, &a, NULL, err);
        if (rc != GH_OK) {
            PGresult *rb = PQexec(c->db, "ROLLBACK");
            PQclear(rb);
        }
    }
    if (rc != GH_OK) conn_release(s, c);
    return rc;
}

int gh_pg__begin(struct gh_pg_store *s, enum gh_pg_role role, const char *tenant, bool snapshot,
                 struct gh_pg_tx *tx, struct gh_err *err)
{
    return begin_tx(s, role, tenant, snapshot, false, NULL, tx, err);
}

int gh_pg__begin_audit_locked(struct gh_pg_store *s, struct gh_pg_tx *tx, struct gh_err *err)
{
    return begin_tx(s, GH_PG_OPERATOR, NULL, false, true, NULL, tx, err);
}

int gh_pg__begin_audit_script(struct gh_pg_store *s, const struct gh_pg_script *script,
                              struct gh_pg_tx *tx, struct gh_err *err)
{
    struct gh_pg_script once = *script; /* its <meanwhile> is spent by the first try */

    return begin_tx(s, GH_PG_OPERATOR, NULL, false, true, &once, tx, err);
}

int gh_pg__script_next(struct gh_pg_tx *tx, ExecStatusType want, PGresult **res, const char *what,
                       struct gh_err *err)
{
    PGresult *r = PQgetResult(tx->c->db);
    int rc = GH_OK;

    if (res != NULL) *res = NULL;
    if (r == NULL && PQstatus(tx->c->db) == CONNECTION_OK) {
        /* The script answered fewer results than its reader expects: a
         * bug here, not a server gone (failure() would reconnect the pool).
         * Its COMMIT may be among what was read: UNAVAILABLE, the unknown
         * outcome, which the audit writer resolves by sending again. */
        gh_err_set(err, NULL, 0, 0, "store: %s: the script ended early", what);
        return GH_STORE_UNAVAILABLE;
    }
    if (PQresultStatus(r) != want) {
        rc = failure(tx->c, r, what, err);
        PQclear(r);
    } else if (res != NULL) {
        *res = r;
    } else {
        PQclear(r);
    }
    return rc;
}

int gh_pg__script_copy(struct gh_pg_tx *tx, const char *data, size_t len, const char *fail,
                       struct gh_err *err)
{
    PGconn *db = tx->c->db;

    /* Chunks keep libpq's buffer small. Unlike gh_pg__copy_in, a send that
     * fails half-way fails the COPY: a normal end would let the server take
     * the rows sent so far and go on to the script's COMMIT. The outcome
     * is then "not written", but told as a lost connection (UNAVAILABLE,
     * which every caller retries; the pool reconnects, also when it was
     * libpq running out of memory). */
    for (size_t off = 0; fail == NULL && off < len;) {
        size_t n = len - off > 65536 ? 65536 : len - off;
        if (PQputCopyData(db, data + off, (int)n) != 1) {
            (void)PQputCopyEnd(db, "gatehouse: the COPY's input could not be sent");
            return failure(tx->c, NULL, "copy", err);
        }
        off += n;
    }
    if (PQputCopyEnd(db, fail) != 1) return failure(tx->c, NULL, "copy", err);
    return GH_OK;
}

int gh_pg__script_commit(struct gh_pg_tx *tx, struct gh_err *err)
{
    PGresult *r = NULL;
    int rc = gh_pg__script_next(tx, PGRES_COMMAND_OK, &r, "commit", err);

    /* As gh_pg__end: "ROLLBACK" answers the COMMIT of an aborted
     * transaction. */
    if (rc == GH_OK && strcmp(PQcmdStatus(r), "COMMIT") != 0)
        rc = gh_err_set(err, NULL, 0, 0, "store: the transaction was rolled back");
    PQclear(r);
    return rc;
}

int gh_pg__end(struct gh_pg_tx *tx, int rc, struct gh_err *err)
{
    struct gh_pg_conn *c = tx->c;
    PGresult *r;

    if (tx->script) {
        /* The script commits itself (gh_pg__script_commit); what it left
         * unread is dropped, and a transaction still open is rolled back.
         * A connection lost after the COMMIT's answer came lost nothing. */
        drain(c);
        if (rc == GH_OK && PQstatus(c->db) == CONNECTION_OK &&
            PQtransactionStatus(c->db) != PQTRANS_IDLE)
            rc = gh_err_set(err, NULL, 0, 0, "store: the script ended without its commit");
        if (rc != GH_OK && PQstatus(c->db) == CONNECTION_OK &&
            PQtransactionStatus(c->db) != PQTRANS_IDLE) {
            r = PQexec(c->db, "ROLLBACK");
            PQclear(r);
        }
    } else if (rc == GH_OK) {
        r = PQexec(c->db, "COMMIT");
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = failure(c, r, "commit", err);
        else if (strcmp(PQcmdStatus(r), "COMMIT") != 0)
            /* PostgreSQL answers the COMMIT of an aborted transaction with
             * "ROLLBACK": nothing was written. */
            rc = gh_err_set(err, NULL, 0, 0, "store: the transaction was rolled back");
        PQclear(r);
    } else if (PQstatus(c->db) == CONNECTION_OK && PQtransactionStatus(c->db) != PQTRANS_IDLE) {
        r = PQexec(c->db, "ROLLBACK");
        PQclear(r);
    }
    conn_release(tx->s, c);
    return rc;
}

int gh_pg__end_lookup(struct gh_pg_tx *tx, int rc, struct gh_err *err)
{
    int end = gh_pg__end(tx, rc == GH_STORE_NOT_FOUND ? GH_OK : rc, err);

    return end != GH_OK ? end : rc;
}

int gh_pg__bump(struct gh_pg_tx *tx, struct gh_err *err)
{
    return gh_pg__run(tx, GH_PG_VERSION_BUMP, NULL, NULL, err);
}

static int pg_change_version(struct gh_store *st, uint64_t *version, struct gh_err *err)
{
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    rc = gh_pg__run(&tx, GH_PG_VERSION_GET, NULL, &r, err);
    if (rc == GH_OK && PQntuples(r) != 1)
        rc = gh_err_set(err, NULL, 0, 0, "store: change counter: missing (not migrated?)");
    if (rc == GH_OK) *version = (uint64_t)gh_pg__i64(r, 0, 0);
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

/* ---- Open and close ----------------------------------------------------------- */

static void pg_close(struct gh_store *st)
{
    struct gh_pg_store *s = gh_pg__of(st);

    if (s == NULL) return;
    for (unsigned i = 0; i < s->nconns; i++)
        if (s->conns[i].db != NULL) PQfinish(s->conns[i].db);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_cond_destroy(&s->pool_cv);
    if (s->owner_db != NULL) PQfinish(s->owner_db); /* releases the claimer's lock */
    pthread_mutex_destroy(&s->owner_mu);
    free(s->conns);
    free(s->url);
    free(s->options);
    free(s);
}

static int pg_open(const struct gh_store_params *p, struct gh_store **out, struct gh_err *err)
{
    struct gh_pg_store *s;
    unsigned n = p->pool ? p->pool : DEFAULT_POOL;
    unsigned stmt_ms = p->statement_timeout_ms ? p->statement_timeout_ms : DEFAULT_TIMEOUT_MS;
    unsigned lock_ms = p->lock_timeout_ms ? p->lock_timeout_ms : DEFAULT_TIMEOUT_MS;
    int rc;

    *out = NULL;
    if (n > MAX_POOL) return gh_err_set(err, NULL, 0, 0, "store: pool: at most %d", MAX_POOL);
    if (!PQisthreadsafe())
        return gh_err_set(err, NULL, 0, 0, "store: libpq was built without thread support");
    s = calloc(1, sizeof(*s));
    if (s == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    s->base.ops = &gh_store_postgres_ops;
    s->url = strdup(p->postgres_url);
    s->conns = calloc(n, sizeof(*s->conns));
    s->nconns = n;
    s->wait_ms = stmt_ms;
    /* Each pooled session's bounds (store.statement_timeout, lock_timeout):
     * a statement or a wait for a lock past them fails the op with
     * UNAVAILABLE (transient()), never holds its thread longer. Walks
     * lift the statement bound (gh_pg__stream). */
    if (asprintf(&s->options, BASE_OPTIONS " -c statement_timeout=%u -c lock_timeout=%u", stmt_ms,
                 lock_ms) < 0)
        s->options = NULL;
    if (s->url == NULL || s->conns == NULL || s->options == NULL) {
        free(s->url);
        free(s->conns);
        free(s->options);
        free(s);
        return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    }
    for (unsigned i = 0; i < n; i++)
        s->conns[i].owner = s;
    pthread_mutex_init(&s->pool_mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->pool_cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    pthread_mutex_init(&s->owner_mu, NULL);
    /* One connection now, so that a wrong URL or password is reported at
     * start; the others connect on first use. */
    rc = conn_ready(s, &s->conns[0], err);
    if (rc != GH_OK) {
        pg_close(&s->base);
        return GH_ERROR;
    }
    *out = &s->base;
    return GH_OK;
}

/* PostgreSQL runs its own WAL and checkpoints. */
static void pg_wal_stats(struct gh_store *st, struct gh_store_wal_stats *out)
{
    (void)st;
    (void)out;
}

const struct gh_store_ops gh_store_postgres_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .migrate = gh_pg__migrate,
    .change_version = pg_change_version,
    .watch_start = gh_pg__watch_start,
    .watch_stop = gh_pg__watch_stop,
    .wal_stats = pg_wal_stats,
    .tenant_create = gh_pg__tenant_create,
    .tenant_get = gh_pg__tenant_get,
    .tenant_get_by_name = gh_pg__tenant_get_by_name,
    .tenant_list = gh_pg__tenant_list,
    .tenant_update = gh_pg__tenant_update,
    .key_insert = gh_pg__key_insert,
    .key_get = gh_pg__key_get,
    .key_list = gh_pg__key_list,
    .key_set_status = gh_pg__key_set_status,
    .key_set_expiry = gh_pg__key_set_expiry,
    .keys_touch_batch = gh_pg__keys_touch_batch,
    .key_directory_load = gh_pg__key_directory_load,
    .token_revoke = gh_pg__token_revoke,
    .revoked_tokens_load = gh_pg__revoked_tokens_load,
    .revoked_tokens_purge = gh_pg__revoked_tokens_purge,
    .signing_key_insert = gh_pg__signing_key_insert,
    .signing_keys_load = gh_pg__signing_keys_load,
    .tenant_limits_set = gh_pg__tenant_limits_set,
    .tenant_limits_get = gh_pg__tenant_limits_get,
    .tenant_limits_load = gh_pg__tenant_limits_load,
    .usage_add = gh_pg__usage_add,
    .usage_get = gh_pg__usage_get,
    .usage_load = gh_pg__usage_load,
    .limit_event_record = gh_pg__limit_event_record,
    .limit_events_list = gh_pg__limit_events_list,
    .audit_append = gh_pg__audit_append,
    .audit_heads = gh_pg__audit_heads,
    .audit_query = gh_pg__audit_query,
    .audit_walk = gh_pg__audit_walk,
    .audit_seq_span = gh_pg__audit_seq_span,
    .audit_scan = gh_pg__audit_scan,
    .audit_scan_slots = pg_audit_scan_slots,
    .audit_checkpoints_walk = gh_pg__audit_checkpoints_walk,
    .audit_key_insert = gh_pg__audit_key_insert,
    .audit_keys_list = gh_pg__audit_keys_list,
    .audit_archive_commit = gh_pg__audit_archive_commit,
    .audit_archives_walk = gh_pg__audit_archives_walk,
    .backup = gh_pg__backup,
    .table_counts = gh_pg__table_counts,
    .integrity_check = gh_pg__integrity_check,
    .secret_put = gh_pg__secret_put,
    .secret_get = gh_pg__secret_get,
    .secret_delete = gh_pg__secret_delete,
    .secrets_walk = gh_pg__secrets_walk,
    .secrets_versions = gh_pg__secrets_versions,
    .secrets_stale = gh_pg__secrets_stale,
    .secrets_rewrap = gh_pg__secrets_rewrap,
    .secrets_rotation_begin = gh_pg__secrets_rotation_begin,
    .secrets_kek_check = gh_pg__secrets_kek_check,
    .secrets_kek_state = gh_pg__secrets_kek_state,
    .secrets_kek_activate = gh_pg__secrets_kek_activate,
    .secrets_kek_unprepare = gh_pg__secrets_kek_unprepare,
    .secrets_rotation_get = gh_pg__secrets_rotation_get,
    .private_key_set = gh_pg__private_key_set,
    .secrets_rotation_finish = gh_pg__secrets_rotation_finish,
    .hook_endpoint_insert = gh_pg__hook_endpoint_insert,
    .hook_endpoint_get = gh_pg__hook_endpoint_get,
    .hook_endpoint_list = gh_pg__hook_endpoint_list,
    .hook_endpoint_update = gh_pg__hook_endpoint_update,
    .hook_endpoint_delete = gh_pg__hook_endpoint_delete,
    .hook_publish = gh_pg__hook_publish,
    .hook_claim = gh_pg__hook_claim,
    .hook_record = gh_pg__hook_record,
    .hook_delivery_list = gh_pg__hook_delivery_list,
    .hook_delivery_get = gh_pg__hook_delivery_get,
    .hook_delivery_replay = gh_pg__hook_delivery_replay,
    .hook_pending_count = gh_pg__hook_pending_count,
    .hook_reports_claim = gh_pg__hook_reports_claim,
    .hook_reports_done = gh_pg__hook_reports_done,
    .hook_resume_stray = gh_pg__hook_resume_stray,
    .hook_purge = gh_pg__hook_purge,
    .usage_purge = gh_pg__usage_purge,
};
