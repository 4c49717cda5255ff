/* The SQLite store: opening the database file (mode 0600, WAL,
 * synchronous=NORMAL, foreign keys), its writer and reader connections, the
 * catalogue of SQL statements, and the ops table that ties the per-entity
 * files (sqlite_migrations.c, sqlite_tenants.c, sqlite_keys.c,
 * sqlite_tokens.c, sqlite_signing.c, sqlite_usage.c, sqlite_audit.c,
 * sqlite_secrets.c, sqlite_webhooks.c)
 * together. sqlite_int.h
 * states the locking rules. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "core/log.h"
#include "store/sqlite_int.h"

#define DEFAULT_READERS      4
#define MAX_READERS          64
#define DEFAULT_BUSY_TIMEOUT 5000

/* The columns of a key row, in the order gh_sqlite__key_row() reads them. */
#define KEY_COLS                                                                                   \
    "k.id, k.tenant_id, k.name, k.roles, k.scopes, k.secret_hash, k.status, k.expires_at, "        \
    "k.created_at, k.last_used_at, coalesce(k.rotated_from, '')"
#define TENANT_COLS        "id, name, status, plan, created_at, updated_at"
#define USAGE_COLS         "tenant_id, period, requests, request_bytes, response_bytes, updated_at"
#define EVENT_COLS         "id, tenant_id, period, metric, threshold, value, lim, created_at"
#define AUDIT_COLS         GH_SQ_AUDIT_COLS
#define AUDIT_CP_COLS      GH_SQ_AUDIT_CP_COLS
#define AUDIT_ARCHIVE_COLS GH_SQ_AUDIT_ARCHIVE_COLS
#define SECRET_COLS        GH_SQ_SECRET_COLS
/* The columns of an endpoint and of a delivery, in the order
 * sqlite_webhooks.c reads them. */
#define HOOK_EP_COLS                                                                               \
    "id, tenant_id, url, description, events, signing, public_key, secret_version, "               \
    "prev_version, prev_until, status, failing_since, disabled_reason, created_at, updated_at, "   \
    "rev"
/* "paused" as the API shows it: waiting for its endpoint to be enabled,
 * whether the row is paused or was in flight (or published) at the
 * disabling (docs/webhooks.md). */
#define HOOK_DLV_COLS                                                                              \
    "d.id, d.endpoint_id, m.id, m.type, d.status, d.attempts, d.next_attempt_at, "                 \
    "d.last_status, d.last_error, d.created_at, d.updated_at, "                                    \
    "(d.paused OR EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id "           \
    "AND e.status <> 'active')) FROM webhook_deliveries d "                                        \
    "JOIN webhook_messages m ON m.seq = d.message_seq"

/* Every statement, bound with ?N parameters only: no SQL is built from
 * strings at run time. */

/* The placeholders of audit rows, 13 each, for GH_SQ_AUDIT_INSERT_GROUP. */
#define AUDIT_ROW_1   "(?,?,?,?,?,?,?,?,?,?,?,?,?)"
#define AUDIT_ROWS_4  AUDIT_ROW_1 "," AUDIT_ROW_1 "," AUDIT_ROW_1 "," AUDIT_ROW_1
#define AUDIT_ROWS_16 AUDIT_ROWS_4 "," AUDIT_ROWS_4 "," AUDIT_ROWS_4 "," AUDIT_ROWS_4
#define AUDIT_ROWS_32 AUDIT_ROWS_16 "," AUDIT_ROWS_16
_Static_assert(GH_SQ_AUDIT_GROUP == 64, "the group statement holds 64 rows");

static const char *const stmt_sql[GH_SQ__COUNT] = {
    [GH_SQ_BEGIN] = "BEGIN",
    [GH_SQ_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [GH_SQ_COMMIT] = "COMMIT",
    [GH_SQ_ROLLBACK] = "ROLLBACK",
    [GH_SQ_VERSION_GET] = "SELECT version FROM change_counter WHERE id = 1",
    [GH_SQ_VERSION_BUMP] = "UPDATE change_counter SET version = version + 1 WHERE id = 1",
    [GH_SQ_MIGRATION_MAX] = "SELECT coalesce(max(version), 0) FROM schema_migrations",
    [GH_SQ_MIGRATION_RECORD] = "INSERT INTO schema_migrations (version, applied_at) "
                               "VALUES (?1, ?2)",
    [GH_SQ_TENANT_INSERT] = "INSERT INTO tenants (" TENANT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [GH_SQ_TENANT_GET] = "SELECT " TENANT_COLS " FROM tenants WHERE id = ?1",
    [GH_SQ_TENANT_GET_BY_NAME] = "SELECT " TENANT_COLS " FROM tenants WHERE name = ?1",
    [GH_SQ_TENANT_NAME_TAKEN] = "SELECT 1 FROM tenants WHERE name = ?1 AND id <> ?2",
    [GH_SQ_TENANT_LIST] = "SELECT " TENANT_COLS " FROM tenants "
                          "WHERE (?1 IS NULL OR status = ?1) AND (created_at, id) > (?2, ?3) "
                          "ORDER BY created_at, id LIMIT ?4",
    [GH_SQ_TENANT_UPDATE] = "UPDATE tenants SET name = coalesce(?2, name), "
                            "plan = coalesce(?3, plan), status = coalesce(?4, status), "
                            "updated_at = ?5 WHERE id = ?1",
    [GH_SQ_KEY_INSERT] = "INSERT INTO api_keys (id, tenant_id, name, roles, scopes, secret_hash, "
                         "status, expires_at, created_at, last_used_at, rotated_from) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10)",
    [GH_SQ_KEY_EXISTS] = "SELECT tenant_id FROM api_keys WHERE id = ?1",
    [GH_SQ_KEY_GET] = "SELECT " KEY_COLS " FROM api_keys k WHERE k.id = ?1 AND k.tenant_id = ?2",
    [GH_SQ_KEY_LIST] = "SELECT " KEY_COLS " FROM api_keys k "
                       "WHERE k.tenant_id = ?1 AND (k.created_at, k.id) > (?2, ?3) "
                       "ORDER BY k.created_at, k.id LIMIT ?4",
    [GH_SQ_KEY_STATUS_GET] = "SELECT status FROM api_keys WHERE id = ?1 AND tenant_id = ?2",
    [GH_SQ_KEY_SET_STATUS] = "UPDATE api_keys SET status = ?3 WHERE id = ?1 AND tenant_id = ?2",
    [GH_SQ_KEY_SET_EXPIRY] = "UPDATE api_keys SET expires_at = ?3 "
                             "WHERE id = ?1 AND tenant_id = ?2",
    /* A rotation's old key: it expires at ?3 unless sooner already, and
     * only while active (a revoked key is not rotated). */
    [GH_SQ_KEY_EXPIRE_ROTATED] = "UPDATE api_keys SET expires_at = CASE WHEN expires_at = 0 OR "
                                 "expires_at > ?3 THEN ?3 ELSE expires_at END "
                                 "WHERE id = ?1 AND tenant_id = ?2 AND status = 'active' "
                                 "RETURNING expires_at",
    [GH_SQ_KEY_TOUCH] = "UPDATE api_keys SET last_used_at = ?2 "
                        "WHERE id = ?1 AND last_used_at < ?2",
    [GH_SQ_KEY_DIRECTORY] = "SELECT " KEY_COLS ", t.status FROM api_keys k "
                            "JOIN tenants t ON t.id = k.tenant_id",
    [GH_SQ_TOKEN_REVOKE] = "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) "
                           "VALUES (?1, ?2, ?3) ON CONFLICT (jti) DO UPDATE "
                           "SET expires_at = max(expires_at, excluded.expires_at)",
    [GH_SQ_TOKEN_LOAD] = "SELECT jti, expires_at, revoked_at FROM revoked_tokens "
                         "WHERE expires_at > ?1",
    [GH_SQ_TOKEN_PURGE] = "DELETE FROM revoked_tokens WHERE expires_at <= ?1",
    [GH_SQ_SIGNING_INSERT] = "INSERT INTO signing_keys (kid, alg, private_pem, created_at, "
                             "publish_until) VALUES (?1, ?2, ?3, ?4, ?5)",
    [GH_SQ_SIGNING_LOAD] = "SELECT kid, alg, private_pem, created_at, publish_until "
                           "FROM signing_keys WHERE publish_until > ?1 ORDER BY created_at, kid",
    [GH_SQ_TENANT_LIMITS_GET] = "SELECT plan, limits FROM tenants WHERE id = ?1",
    [GH_SQ_TENANT_LIMITS_SET] = "UPDATE tenants SET plan = coalesce(?2, plan), "
                                "limits = coalesce(?3, limits), updated_at = ?4 WHERE id = ?1",
    [GH_SQ_TENANT_LIMITS_LOAD] = "SELECT id, status, plan, limits FROM tenants "
                                 "ORDER BY created_at, id",
    /* Each total saturates at INT64_MAX: min(t, MAX - a) + a never
     * overflows (0 <= a <= MAX), where t + a would turn into a REAL that the
     * STRICT INTEGER column refuses. */
    [GH_SQ_USAGE_ADD] =
        "INSERT INTO usage (" USAGE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
        "ON CONFLICT (tenant_id, period) DO UPDATE SET "
        "requests = min(requests, 9223372036854775807 - excluded.requests) + excluded.requests, "
        "request_bytes = min(request_bytes, 9223372036854775807 - excluded.request_bytes) "
        "+ excluded.request_bytes, "
        "response_bytes = min(response_bytes, 9223372036854775807 - excluded.response_bytes) "
        "+ excluded.response_bytes, "
        "updated_at = excluded.updated_at "
        "RETURNING requests, request_bytes, response_bytes",
    [GH_SQ_USAGE_GET] = "SELECT " USAGE_COLS " FROM usage WHERE tenant_id = ?1 AND period = ?2",
    [GH_SQ_USAGE_LOAD] = "SELECT " USAGE_COLS " FROM usage WHERE period = ?1 ORDER BY tenant_id",
    /* Retention (gh_sqlite__usage_purge): usage_by_period serves the
     * range; "YYYY-MM" sorts before its own days, so a month row of the
     * cutoff's month is kept by the length test. */
    [GH_SQ_USAGE_PURGE] = "DELETE FROM usage WHERE (tenant_id, period) IN (SELECT tenant_id, "
                          "period FROM usage WHERE period < ?1 AND (period < ?2 OR "
                          "length(period) = 10) LIMIT ?3)",
    [GH_SQ_EVENT_PURGE] = "DELETE FROM limit_events WHERE id IN (SELECT id FROM limit_events "
                          "WHERE period < ?1 AND (period < ?2 OR length(period) = 10) LIMIT ?3)",
    [GH_SQ_EVENT_INSERT] = "INSERT INTO limit_events (tenant_id, period, metric, threshold, value, "
                           "lim, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                           "ON CONFLICT (tenant_id, period, metric, threshold) DO NOTHING "
                           "RETURNING id",
    [GH_SQ_EVENT_LIST] = "SELECT " EVENT_COLS " FROM limit_events WHERE id < ?2 "
                         "ORDER BY id DESC LIMIT ?3",
    [GH_SQ_EVENT_LIST_TENANT] = "SELECT " EVENT_COLS " FROM limit_events "
                                "WHERE tenant_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    /* The audit log's commits must be on disk when they return (an audited
     * request may be answered right after): FULL syncs the WAL at each
     * commit, NORMAL (everything else) only at checkpoints. */
    [GH_SQ_SYNC_FULL] = "PRAGMA synchronous = FULL",
    [GH_SQ_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
    /* Long audit walks read through mmap (no read() and copy per page);
     * SQLite caps the size at its SQLITE_MAX_MMAP_SIZE (2 GB by default)
     * and reads the rest of a larger file as usual. */
    [GH_SQ_MMAP_ON] = "PRAGMA mmap_size = 2147418112",
    [GH_SQ_MMAP_OFF] = "PRAGMA mmap_size = 0",
    [GH_SQ_AUDIT_INSERT] = "INSERT INTO audit_events (chain, seq, id, time_us, tenant_id, actor, "
                           "action, resource, outcome, request_id, hash, body, node) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    /* GH_SQ_AUDIT_GROUP rows of the statement above at once (sqlite_audit.c
     * says why); the rows' parameters follow one another, 13 each. OR FAIL:
     * a statement that writes several rows and may abort half-way makes
     * SQLite keep a statement journal (a temp file: every page the
     * statement touches copied there first, through two write calls), to
     * undo only that statement. The append rolls back its whole
     * transaction on any failure, so FAIL, which keeps the rows before the
     * failing one until then, needs no such journal: 37% less CPU per
     * event in the store call (bench/RESULTS.md). Only ever run inside that
     * transaction: outside one, FAIL would commit those rows
     * (sqlite_audit.c, insert_rows, checks). */
    [GH_SQ_AUDIT_INSERT_GROUP] =
        "INSERT OR FAIL INTO audit_events (chain, seq, id, time_us, tenant_id, actor, action, "
        "resource, outcome, request_id, hash, body, node) VALUES " AUDIT_ROWS_32 "," AUDIT_ROWS_32,
    /* The predecessor may have been archived (the whole chain, even). */
    [GH_SQ_AUDIT_PREV_EXISTS] = "SELECT 1 FROM audit_events WHERE chain = ?1 AND seq = ?2 "
                                "UNION ALL SELECT 1 FROM audit_archives "
                                "WHERE chain = ?1 AND last_seq = ?2 LIMIT 1",
    [GH_SQ_AUDIT_HASH_AT] = "SELECT hash FROM audit_events WHERE chain = ?1 AND seq = ?2",
    /* Another writer's checkpoint of the same (chain, seq) (a CLI command's
     * next to the gateway's) is kept; insert_checkpoint compares it. */
    [GH_SQ_AUDIT_CP_INSERT] = "INSERT INTO audit_checkpoints (" AUDIT_CP_COLS ") "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (chain, seq) DO NOTHING",
    [GH_SQ_AUDIT_CP_HASH_AT] = "SELECT hash FROM audit_checkpoints WHERE chain = ?1 AND seq = ?2",
    /* The chains by a skip scan of the (chain, seq) index (one seek per
     * chain rather than a read of every row), then each chain's last row. */
    /* A chain whose events were all archived has its head in its last
     * archive row: rowid 0, the seq and hash, empty strings and body. */
    [GH_SQ_AUDIT_HEADS] =
        "WITH RECURSIVE c(chain) AS (SELECT min(chain) FROM audit_events UNION ALL "
        "SELECT (SELECT min(chain) FROM audit_events WHERE chain > c.chain) FROM c "
        "WHERE c.chain IS NOT NULL) "
        "SELECT " AUDIT_COLS " FROM audit_events WHERE rowid IN (SELECT (SELECT rowid FROM "
        "audit_events e WHERE e.chain = c.chain ORDER BY seq DESC LIMIT 1) FROM c "
        "WHERE c.chain IS NOT NULL) "
        "UNION ALL SELECT 0, chain, max(last_seq), '', 0, '', '', '', '', 'success', '', "
        "last_hash, '', '' FROM audit_archives a WHERE NOT EXISTS (SELECT 1 FROM audit_events e "
        "WHERE e.chain = a.chain) GROUP BY chain ORDER BY 2",
    [GH_SQ_AUDIT_WALK] = "SELECT " AUDIT_COLS " FROM audit_events "
                         "WHERE seq BETWEEN ?2 AND ?3 ORDER BY chain, seq",
    [GH_SQ_AUDIT_WALK_CHAIN] = "SELECT " AUDIT_COLS " FROM audit_events "
                               "WHERE chain = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
    /* A tenant's chain holds only that tenant's rows: its time index. */
    [GH_SQ_AUDIT_SEQ_SPAN] = "SELECT min(seq), max(seq) FROM audit_events WHERE tenant_id = ?1 "
                             "AND chain = ?1 AND time_us >= ?2 AND time_us < ?3",
    /* The system chain's rows: those of no tenant and of the tenant
     * "system" (the writer's chain_of), through the same index. */
    [GH_SQ_AUDIT_SEQ_SPAN_SYSTEM] = "SELECT min(seq), max(seq) FROM audit_events WHERE tenant_id "
                                    "IN ('', 'system') AND chain = ?1 AND time_us >= ?2 AND "
                                    "time_us < ?3",
    [GH_SQ_AUDIT_SCAN] =
        "SELECT " AUDIT_COLS " FROM audit_events WHERE rowid > ?1 AND rowid <= ?2 ORDER BY rowid",
    [GH_SQ_AUDIT_CP_WALK] = "SELECT " AUDIT_CP_COLS " FROM audit_checkpoints "
                            "WHERE seq BETWEEN ?2 AND ?3 ORDER BY chain, seq",
    [GH_SQ_AUDIT_CP_WALK_CHAIN] = "SELECT " AUDIT_CP_COLS " FROM audit_checkpoints "
                                  "WHERE chain = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
    [GH_SQ_AUDIT_KEY_INSERT] = "INSERT INTO audit_keys (key_id, public_pem, private_pem, "
                               "created_at) VALUES (?1, ?2, ?3, ?4)",
    [GH_SQ_AUDIT_KEYS_LIST] = "SELECT key_id, public_pem, private_pem, created_at FROM audit_keys "
                              "ORDER BY created_at DESC, key_id DESC LIMIT ?1",
    [GH_SQ_AUDIT_HOT_FIRST] = "SELECT min(seq) FROM audit_events WHERE chain = ?1",
    [GH_SQ_AUDIT_ARCHIVE_LAST] = "SELECT max(last_seq) FROM audit_archives WHERE chain = ?1",
    [GH_SQ_AUDIT_ARCHIVE_DELETE] = "DELETE FROM audit_events WHERE chain = ?1 AND seq BETWEEN ?2 "
                                   "AND ?3",
    [GH_SQ_AUDIT_ARCHIVE_INSERT] = "INSERT INTO audit_archives (" AUDIT_ARCHIVE_COLS ") "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [GH_SQ_AUDIT_ARCHIVES] = "SELECT " AUDIT_ARCHIVE_COLS " FROM audit_archives "
                             "ORDER BY chain, first_seq",
    [GH_SQ_AUDIT_ARCHIVES_CHAIN] = "SELECT " AUDIT_ARCHIVE_COLS " FROM audit_archives "
                                   "WHERE chain = ?1 ORDER BY first_seq",
    /* A replaced secret keeps its created_at. */
    [GH_SQ_SECRET_PUT] = "INSERT INTO secrets (" SECRET_COLS ") "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) "
                         "ON CONFLICT (tenant_id, name) DO UPDATE SET "
                         "ciphertext = excluded.ciphertext, nonce = excluded.nonce, "
                         "wrapped_dek = excluded.wrapped_dek, kek_version = excluded.kek_version, "
                         "updated_at = excluded.updated_at",
    [GH_SQ_SECRET_GET] = "SELECT " SECRET_COLS " FROM secrets WHERE tenant_id = ?1 AND name = ?2",
    [GH_SQ_SECRET_DELETE] = "DELETE FROM secrets WHERE tenant_id = ?1 AND name = ?2",
    [GH_SQ_SECRET_WALK] = "SELECT " SECRET_COLS " FROM secrets ORDER BY tenant_id, name",
    [GH_SQ_SECRET_WALK_TENANT] = "SELECT " SECRET_COLS " FROM secrets WHERE tenant_id = ?1 "
                                 "ORDER BY name",
    [GH_SQ_SECRET_VERSIONS] = "SELECT kek_version, count(*) FROM secrets GROUP BY kek_version "
                              "ORDER BY kek_version",
    [GH_SQ_SECRET_STALE] = "SELECT " SECRET_COLS " FROM secrets WHERE kek_version < ?1 "
                           "ORDER BY kek_version, tenant_id, name LIMIT ?2",
    [GH_SQ_SECRET_REWRAP] = "UPDATE secrets SET wrapped_dek = ?5, kek_version = ?6 "
                            "WHERE tenant_id = ?1 AND name = ?2 AND kek_version = ?3 "
                            "AND wrapped_dek = ?4",
    [GH_SQ_SECRET_ROT_GET] = "SELECT from_version, to_version, started_at, finished_at, rewrapped "
                             "FROM secrets_rotation WHERE id = 1",
    [GH_SQ_SECRET_ROT_START] = "INSERT OR REPLACE INTO secrets_rotation (id, from_version, "
                               "to_version, started_at, finished_at, rewrapped) "
                               "VALUES (1, ?1, ?2, ?3, 0, 0)",
    [GH_SQ_SECRET_ROT_COUNT] = "UPDATE secrets_rotation SET rewrapped = rewrapped + ?1 "
                               "WHERE id = 1 AND finished_at = 0",
    [GH_SQ_AUDIT_KEY_SET_PRIVATE] = "UPDATE audit_keys SET private_pem = ?2 WHERE key_id = ?1",
    [GH_SQ_SIGNING_SET_PRIVATE] = "UPDATE signing_keys SET private_pem = ?2 WHERE kid = ?1",
    [GH_SQ_SECRET_ROT_FINISH] = "UPDATE secrets_rotation SET finished_at = ?2 "
                                "WHERE id = 1 AND to_version = ?1 AND finished_at = 0",
    [GH_SQ_SECRET_KEK_CHECK_PUT] = "INSERT OR IGNORE INTO secrets_kek_checks (version, "
                                   "check_blob, created_at, prepared) VALUES (?1, ?2, ?3, ?4)",
    [GH_SQ_SECRET_KEK_STATE] = "SELECT coalesce(max(version) FILTER (WHERE prepared = 0), 0), "
                               "coalesce(max(version), 0) FROM secrets_kek_checks",
    [GH_SQ_SECRET_KEK_ACTIVATE] = "UPDATE secrets_kek_checks SET prepared = 0 WHERE version = ?1",
    [GH_SQ_SECRET_KEK_UNPREPARE] = "DELETE FROM secrets_kek_checks WHERE version = ?1 "
                                   "AND prepared = 1",
    [GH_SQ_SECRET_KEK_CHECK_GET] = "SELECT check_blob, (SELECT max(version) FROM "
                                   "secrets_kek_checks) FROM secrets_kek_checks WHERE version = ?1",
    /* Webhooks (sqlite_webhooks.c). */
    [GH_SQ_HOOK_EP_INSERT] = "INSERT INTO webhook_endpoints (" HOOK_EP_COLS ") VALUES (?1, ?2, "
                             "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    [GH_SQ_HOOK_EP_GET] = "SELECT " HOOK_EP_COLS " FROM webhook_endpoints "
                          "WHERE tenant_id = ?1 AND id = ?2",
    [GH_SQ_HOOK_EP_LIST] = "SELECT " HOOK_EP_COLS " FROM webhook_endpoints WHERE tenant_id = ?1 "
                           "AND (created_at, id) > (?2, ?3) ORDER BY created_at, id LIMIT ?4",
    /* Over the revision read (?16), moving it. The failure clock is the
     * dispatcher's: written here only to reset it (0, an admin enabling
     * the endpoint), so its changes need not move the revision, and an
     * endpoint that flaps does not make an admin's change conflict. */
    [GH_SQ_HOOK_EP_UPDATE] = "UPDATE webhook_endpoints SET url = ?3, description = ?4, "
                             "events = ?5, public_key = ?7, secret_version = ?8, "
                             "prev_version = ?9, prev_until = ?10, status = ?11, "
                             "failing_since = CASE WHEN ?12 = 0 THEN 0 ELSE failing_since END, "
                             "disabled_reason = ?13, updated_at = ?15, "
                             "rev = rev + 1 WHERE id = ?1 AND tenant_id = ?2 AND signing = ?6 "
                             "AND created_at = ?14 AND rev = ?16 RETURNING rev",
    /* An endpoint's status change pauses or resumes its pending
     * deliveries (gh_sqlite__hook_endpoint_update). */
    [GH_SQ_HOOK_EP_STATUS] = "SELECT status, rev FROM webhook_endpoints "
                             "WHERE tenant_id = ?1 AND id = ?2",
    [GH_SQ_HOOK_DLV_PAUSE] = "UPDATE webhook_deliveries SET paused = 1 WHERE endpoint_id = ?1 "
                             "AND status = 'pending' AND paused = 0",
    /* Served by webhook_deliveries_paused (migration 22). */
    [GH_SQ_HOOK_DLV_RESUME] = "UPDATE webhook_deliveries SET paused = 0 WHERE endpoint_id = ?1 "
                              "AND paused = 1",
    [GH_SQ_HOOK_DLV_RESUME_STRAY] = "UPDATE webhook_deliveries SET paused = 0 WHERE id IN "
                                    "(SELECT d.id FROM webhook_endpoints e "
                                    "JOIN webhook_deliveries d ON d.endpoint_id = e.id "
                                    "AND d.paused = 1 WHERE e.status = 'active' LIMIT ?1)",
    [GH_SQ_HOOK_EP_DELETE] = "DELETE FROM webhook_endpoints WHERE tenant_id = ?1 AND id = ?2 "
                             "RETURNING " HOOK_EP_COLS,
    [GH_SQ_HOOK_EP_DEL_ATTEMPTS] = "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id "
                                   "FROM webhook_deliveries WHERE endpoint_id = ?1)",
    [GH_SQ_HOOK_EP_DEL_DELIVERIES] = "DELETE FROM webhook_deliveries WHERE endpoint_id = ?1",
    [GH_SQ_HOOK_EP_SUBSCRIBED] = "SELECT id, events FROM webhook_endpoints "
                                 "WHERE tenant_id = ?1 AND status = 'active'",
    [GH_SQ_HOOK_EP_OK] = "UPDATE webhook_endpoints SET failing_since = 0 "
                         "WHERE id = ?1 AND failing_since <> 0",
    [GH_SQ_HOOK_EP_FAILING] = "UPDATE webhook_endpoints SET failing_since = ?2 "
                              "WHERE id = ?1 AND failing_since = 0",
    /* At most 64 a statement: the caller runs it until fewer come back. */
    [GH_SQ_HOOK_EP_DISABLE] = "UPDATE webhook_endpoints SET status = 'disabled', "
                              "disabled_reason = 'failing', updated_at = ?1, report_after = ?3, "
                              "rev = rev + 1 WHERE id IN (SELECT "
                              "id FROM webhook_endpoints WHERE status = 'active' AND "
                              "failing_since > 0 AND failing_since <= ?2 LIMIT 64) "
                              "RETURNING tenant_id, id",
    [GH_SQ_HOOK_EP_GONE] = "UPDATE webhook_endpoints SET status = 'disabled', "
                           "disabled_reason = 'gone', updated_at = ?1, report_after = ?3, "
                           "rev = rev + 1 WHERE id = ?2 AND status = 'active' "
                           "RETURNING tenant_id, id",
    [GH_SQ_HOOK_DLV_FAIL_EP] = "UPDATE webhook_deliveries SET status = 'failed', claimed = '', "
                               "last_error = 'endpoint_disabled', paused = 0, updated_at = ?2 "
                               "WHERE endpoint_id = ?1 AND status = 'pending'",
    [GH_SQ_HOOK_MSG_FIND] = "SELECT seq FROM webhook_messages WHERE tenant_id = ?1 AND id = ?2",
    [GH_SQ_HOOK_MSG_COUNT] = "SELECT deliveries, type = ?2 AND payload = ?3 FROM webhook_messages "
                             "WHERE seq = ?1",
    [GH_SQ_HOOK_MSG_SET_COUNT] = "UPDATE webhook_messages SET deliveries = ?2 WHERE seq = ?1",
    [GH_SQ_HOOK_MSG_INSERT] = "INSERT INTO webhook_messages (id, tenant_id, type, payload, "
                              "created_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING seq",
    [GH_SQ_HOOK_DLV_INSERT] = "INSERT INTO webhook_deliveries (message_seq, endpoint_id, "
                              "tenant_id, status, next_attempt_at, created_at, updated_at) "
                              "VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?5)",
    /* Served by webhook_deliveries_due; rows this process holds are
     * skipped, rows a dead process held are taken. */
    [GH_SQ_HOOK_DUE] = "SELECT d.id, d.attempts, d.tenant_id, d.endpoint_id, e.url, e.signing, "
                       "e.secret_version, e.prev_version, e.prev_until, m.id, m.type, m.payload, "
                       "m.created_at FROM webhook_deliveries d "
                       "JOIN webhook_endpoints e ON e.id = d.endpoint_id "
                       "JOIN webhook_messages m ON m.seq = d.message_seq "
                       "WHERE d.status = 'pending' AND d.paused = 0 AND d.next_attempt_at <= ?2 "
                       "AND d.claimed <> ?1 AND e.status = 'active' "
                       "ORDER BY d.next_attempt_at LIMIT ?3",
    [GH_SQ_HOOK_CLAIM] = "UPDATE webhook_deliveries SET claimed = ?1 WHERE id = ?2",
    [GH_SQ_HOOK_ATTEMPT_INSERT] = "INSERT INTO webhook_attempts (delivery_id, at, status, error, "
                                  "latency_ms, response) SELECT ?1, ?2, ?3, ?4, ?5, ?6 "
                                  "WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = ?1)",
    /* A finished delivery is never paused (migration 22). */
    [GH_SQ_HOOK_DLV_SET] = "UPDATE webhook_deliveries SET status = ?2, attempts = attempts + 1, "
                           "next_attempt_at = ?3, last_status = ?4, last_error = ?5, "
                           "claimed = '', paused = paused AND ?2 = 'pending', updated_at = ?6 "
                           "WHERE id = ?1",
    [GH_SQ_HOOK_DLV_LIST] = "SELECT " HOOK_DLV_COLS " WHERE d.tenant_id = ?1 "
                            "AND d.endpoint_id = ?2 AND d.id > ?3 ORDER BY d.id LIMIT ?5",
    [GH_SQ_HOOK_DLV_LIST_STATUS] = "SELECT " HOOK_DLV_COLS " WHERE d.tenant_id = ?1 "
                                   "AND d.endpoint_id = ?2 AND d.id > ?3 AND d.status = ?4 "
                                   "ORDER BY d.id LIMIT ?5",
    [GH_SQ_HOOK_DLV_GET] = "SELECT " HOOK_DLV_COLS " WHERE d.tenant_id = ?1 "
                           "AND d.endpoint_id = ?2 AND d.id = ?3",
    [GH_SQ_HOOK_ATTEMPTS] = "SELECT at, status, error, latency_ms, response FROM webhook_attempts "
                            "WHERE delivery_id = ?1 ORDER BY id LIMIT ?2",
    [GH_SQ_HOOK_DLV_STATUS] = "SELECT status FROM webhook_deliveries WHERE tenant_id = ?1 "
                              "AND endpoint_id = ?2 AND id = ?3",
    [GH_SQ_HOOK_REPLAY] = "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
                          "paused = EXISTS (SELECT 1 FROM webhook_endpoints e "
                          "WHERE e.id = ?2 AND e.status <> 'active'), "
                          "next_attempt_at = ?4, claimed = '', last_error = '', updated_at = ?4 "
                          "WHERE tenant_id = ?1 AND endpoint_id = ?2 AND id = ?3",
    [GH_SQ_HOOK_PENDING] = "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'",
    /* Served by webhook_endpoints_reports (migration 21). */
    [GH_SQ_HOOK_REPORTS_CLAIM] = "UPDATE webhook_endpoints SET report_after = ?2 WHERE id IN "
                                 "(SELECT id FROM webhook_endpoints WHERE report_after > 0 "
                                 "AND report_after <= ?1 ORDER BY id LIMIT ?3) "
                                 "RETURNING tenant_id, id, disabled_reason",
    [GH_SQ_HOOK_REPORTS_DONE] = "UPDATE webhook_endpoints SET report_after = 0 "
                                "WHERE id = ?1 AND report_after = ?2",
    /* Retention (gh_sqlite__hook_purge): messages by seq, the deliveries
     * of one through webhook_deliveries_by_message (migration 16). */
    [GH_SQ_HOOK_PURGE_SCAN] = "SELECT seq, created_at FROM webhook_messages WHERE seq > ?1 "
                              "ORDER BY seq LIMIT ?2",
    [GH_SQ_HOOK_PURGE_KEEP] = "SELECT 1 FROM webhook_deliveries WHERE message_seq = ?1 "
                              "AND status = 'pending' AND (claimed = ?2 OR updated_at >= ?3 "
                              "OR next_attempt_at > ?4) LIMIT 1",
    [GH_SQ_HOOK_PURGE_ATTEMPTS] = "DELETE FROM webhook_attempts WHERE delivery_id IN "
                                  "(SELECT id FROM webhook_deliveries WHERE message_seq = ?1)",
    [GH_SQ_HOOK_PURGE_DELIVERIES] = "DELETE FROM webhook_deliveries WHERE message_seq = ?1 "
                                    "RETURNING status = 'pending'",
    [GH_SQ_HOOK_PURGE_MESSAGE] = "DELETE FROM webhook_messages WHERE seq = ?1",
};

/* ---- Statements and errors -------------------------------------------------- */

sqlite3_stmt *gh_sqlite__stmt(struct gh_sqlite_conn *c, enum gh_sqlite_stmt id, struct gh_err *err)
{
    if (c->stmt[id] == NULL &&
        sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[id],
                           NULL) != SQLITE_OK) {
        gh_sqlite__fail(c, "prepare", err);
        c->stmt[id] = NULL;
    }
    return c->stmt[id];
}

void gh_sqlite__done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

int gh_sqlite__fail(struct gh_sqlite_conn *c, const char *what, struct gh_err *err)
{
    return gh_err_set(err, NULL, 0, 0, "store: %s: %s", what, sqlite3_errmsg(c->db));
}

int gh_sqlite__exec(struct gh_sqlite_conn *c, sqlite3_stmt *s, const char *what, struct gh_err *err)
{
    int rc = sqlite3_step(s);

    if (rc != SQLITE_DONE) gh_sqlite__fail(c, what, err);
    gh_sqlite__done(s);
    return rc == SQLITE_DONE ? GH_OK : GH_ERROR;
}

int gh_sqlite__row(struct gh_sqlite_conn *c, sqlite3_stmt *s, const char *what, struct gh_err *err)
{
    int rc = sqlite3_step(s);

    if (rc == SQLITE_ROW) return GH_OK;
    if (rc != SQLITE_DONE) gh_sqlite__fail(c, what, err);
    gh_sqlite__done(s);
    return rc == SQLITE_DONE ? GH_STORE_NOT_FOUND : GH_ERROR;
}

int gh_sqlite__run(struct gh_sqlite_conn *c, enum gh_sqlite_stmt id, const char *what,
                   struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, id, err);

    return s ? gh_sqlite__exec(c, s, what, err) : GH_ERROR;
}

int gh_sqlite__conflict(struct gh_sqlite_conn *c, int rc)
{
    int ext = sqlite3_extended_errcode(c->db);

    if (rc == GH_ERROR && (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY))
        return GH_STORE_CONFLICT;
    return rc;
}

int gh_sqlite__col_text(sqlite3_stmt *s, int col, char *dst, size_t size, struct gh_err *err)
{
    const unsigned char *text = sqlite3_column_text(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);

    if (text == NULL || n >= size || memchr(text, '\0', n) != NULL) {
        dst[0] = '\0';
        return gh_err_set(err, NULL, 0, 0, "store: column %s: missing or too long",
                          sqlite3_column_name(s, col));
    }
    memcpy(dst, text, n);
    dst[n] = '\0';
    return GH_OK;
}

int gh_sqlite__bind_text(sqlite3_stmt *s, int idx, const char *text)
{
    return sqlite3_bind_text(s, idx, text, -1, SQLITE_TRANSIENT);
}

/* ---- Transactions and the change counter ------------------------------------ */

/* After a failed sync of the log, nothing more is written (store.h,
 * gh_store_audit_sync). */
static int refuse_after_failed_sync(struct gh_err *err)
{
    return gh_err_set(err, NULL, 0, 0,
                      "store: a sync of the write-ahead log failed earlier: the store takes no "
                      "write until gatehouse is restarted");
}

/* Locks the writer, unless a sync of the log has failed. Checked under the
 * lock: a sync that fails meanwhile is seen by every write that begins
 * after it. */
static int writer_lock(struct gh_sqlite_store *s, struct gh_err *err)
{
    pthread_mutex_lock(&s->writer.lock);
    if (!atomic_load_explicit(&s->sync_failed, memory_order_acquire)) return GH_OK;
    pthread_mutex_unlock(&s->writer.lock);
    return refuse_after_failed_sync(err);
}

int gh_sqlite__write_begin(struct gh_sqlite_store *s, struct gh_err *err)
{
    int rc;

    if (writer_lock(s, err) != GH_OK) return GH_ERROR;
    /* IMMEDIATE takes the write lock now (waiting up to busy_timeout for
     * another process), so no statement inside can fail with SQLITE_BUSY
     * halfway through. */
    rc = gh_sqlite__run(&s->writer, GH_SQ_BEGIN_IMMEDIATE, "begin", err);
    if (rc != GH_OK) pthread_mutex_unlock(&s->writer.lock);
    return rc;
}

int gh_sqlite__write_begin_durable(struct gh_sqlite_store *s, struct gh_err *err)
{
    int rc;

    if (writer_lock(s, err) != GH_OK) return GH_ERROR;
    /* The pragma is set outside the transaction, before BEGIN. */
    rc = gh_sqlite__run(&s->writer, GH_SQ_SYNC_FULL, "synchronous", err);
    if (rc == GH_OK) {
        s->durable = true;
        rc = gh_sqlite__run(&s->writer, GH_SQ_BEGIN_IMMEDIATE, "begin", err);
    }
    if (rc != GH_OK) {
        struct gh_err scratch;
        if (s->durable) gh_sqlite__run(&s->writer, GH_SQ_SYNC_NORMAL, "synchronous", &scratch);
        s->durable = false;
        pthread_mutex_unlock(&s->writer.lock);
    }
    return rc;
}

int gh_sqlite__write_end(struct gh_sqlite_store *s, int rc, struct gh_err *err)
{
    struct gh_sqlite_conn *c = &s->writer;
    struct gh_err scratch;

    if (rc == GH_OK) rc = gh_sqlite__run(c, GH_SQ_COMMIT, "commit", err);
    /* After some errors SQLite has already rolled back by itself. */
    if (rc != GH_OK && !sqlite3_get_autocommit(c->db))
        gh_sqlite__run(c, GH_SQ_ROLLBACK, "rollback", &scratch);
    if (s->durable) {
        /* A failure here would leave FULL on: slower, never less safe. */
        gh_sqlite__run(c, GH_SQ_SYNC_NORMAL, "synchronous", &scratch);
        s->durable = false;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int gh_sqlite__read_begin(struct gh_sqlite_conn *c, struct gh_err *err)
{
    return gh_sqlite__run(c, GH_SQ_BEGIN, "begin", err);
}

void gh_sqlite__read_end(struct gh_sqlite_conn *c)
{
    struct gh_err scratch;

    if (!sqlite3_get_autocommit(c->db)) gh_sqlite__run(c, GH_SQ_COMMIT, "commit", &scratch);
    if (!sqlite3_get_autocommit(c->db)) gh_sqlite__run(c, GH_SQ_ROLLBACK, "rollback", &scratch);
}

int gh_sqlite__bump(struct gh_sqlite_conn *c, struct gh_err *err)
{
    return gh_sqlite__run(c, GH_SQ_VERSION_BUMP, "change counter", err);
}

int gh_sqlite__version(struct gh_sqlite_conn *c, uint64_t *version, struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_VERSION_GET, err);
    int rc;

    if (s == NULL) return GH_ERROR;
    rc = gh_sqlite__row(c, s, "change counter", err);
    if (rc == GH_STORE_NOT_FOUND)
        return gh_err_set(err, NULL, 0, 0, "store: change counter: missing (not migrated?)");
    if (rc != GH_OK) return rc;
    *version = (uint64_t)sqlite3_column_int64(s, 0);
    gh_sqlite__done(s);
    return GH_OK;
}

struct gh_sqlite_conn *gh_sqlite__read_acquire(struct gh_sqlite_store *s)
{
    unsigned start = atomic_fetch_add(&s->next_reader, 1);

    for (unsigned i = 0; i < s->nreaders; i++) {
        struct gh_sqlite_conn *c = &s->readers[(start + i) % s->nreaders];
        if (pthread_mutex_trylock(&c->lock) == 0) return c;
    }
    /* All busy: queue on one of them, spread by the counter. */
    struct gh_sqlite_conn *c = &s->readers[start % s->nreaders];
    pthread_mutex_lock(&c->lock);
    return c;
}

void gh_sqlite__read_release(struct gh_sqlite_conn *c)
{
    pthread_mutex_unlock(&c->lock);
}

static unsigned sqlite_audit_scan_slots(struct gh_store *st)
{
    return gh_sqlite__of(st)->nreaders;
}

static int sqlite_change_version(struct gh_store *st, uint64_t *version, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    int rc = gh_sqlite__version(c, version, err);

    gh_sqlite__read_release(c);
    return rc;
}

/* One process writes and reads the file: its own writes poke its caches
 * directly, and the CLI's are seen by the poll. Nothing to push. */
static int sqlite_watch_start(struct gh_store *st, struct gh_store_watch *w, struct gh_err *err)
{
    (void)st;
    (void)err;
    w->engine = NULL;
    return GH_OK;
}

static void sqlite_watch_stop(struct gh_store_watch *w)
{
    (void)w;
}

static void sqlite_wal_stats(struct gh_store *st, struct gh_store_wal_stats *out)
{
    gh_sqlite__checkpoint_stats(gh_sqlite__of(st), out);
}

/* ---- Syncing the log apart from the commit ---------------------------------- */

/* Opens the log of the writer's database for syncing, and syncs its folder
 * once, so the log's name is on disk too (SQLite does that at its first
 * sync of a new log, which a commit without synchronous=FULL never makes).
 * At open, before any commit is left unsynced: on Linux an fsync reports
 * the write-back errors since its descriptor was opened (or that nobody
 * saw yet), so a descriptor opened later could miss one that SQLite's own
 * saw first. It stays right for the store's life: SQLite removes the log
 * only when the last connection to the database closes, and the writer's
 * stays open until sqlite_close; a checkpoint truncates or rewrites the log
 * in place (each sync checks that it is still the same file). */
static int wal_open(struct gh_sqlite_store *s, struct gh_err *err)
{
    const char *wal = s->wal_path;
    struct stat st;
    int fd;

    if (gh_file_fsync_parent("store: the write-ahead log's folder", wal, err) != GH_OK)
        return GH_ERROR;
    fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        gh_err_set(err, NULL, 0, 0, "store: cannot open %s to sync it: %s", wal, strerror(errno));
        if (fd >= 0) close(fd);
        return GH_ERROR;
    }
    s->wal_fd = fd;
    s->wal_dev = st.st_dev;
    s->wal_ino = st.st_ino;
    return GH_OK;
}

/* Marks the store: no write, no checkpoint from now on (sqlite_close does
 * not checkpoint either), and says so once, whoever asked for the sync. */
static int sync_failed(struct gh_sqlite_store *s, const char *why, struct gh_err *err)
{
    atomic_store_explicit(&s->sync_failed, true, memory_order_release);
    gh_err_set(err, NULL, 0, 0,
               "store: syncing the write-ahead log failed (%s): the last commits may be lost, and "
               "the store takes no write until gatehouse is restarted",
               why);
    gh_log_error("%s", err->msg);
    return GH_ERROR;
}

/* Whether the log's name no longer leads to the file opened at start (a
 * failure of stat other than a missing file says nothing either way). */
static bool wal_replaced(const struct gh_sqlite_store *s)
{
    struct stat st;

    if (stat(s->wal_path, &st) != 0) return errno == ENOENT;
    return st.st_ino != s->wal_ino || st.st_dev != s->wal_dev;
}

/* One fdatasync of the log, outside the writer's lock, so the writer
 * commits the next batch meanwhile (its frames, written after the sync
 * began, may or may not be covered: its own sync will tell). The log holds
 * every committed transaction not yet checkpointed, and a checkpoint syncs
 * the log before it copies it into the database, so syncing the log is
 * syncing every commit made before. A failure marks the store for good:
 * the kernel may have dropped the pages it could not write, and a later
 * sync that succeeds would not bring them back. */
int gh_sqlite__audit_sync(struct gh_store *st, struct gh_err *err)
{
    struct gh_sqlite_store *s = gh_sqlite__of(st);
    int rc = GH_OK;

    pthread_mutex_lock(&s->sync_lock);
    if (atomic_load_explicit(&s->sync_failed, memory_order_acquire)) {
        rc = refuse_after_failed_sync(err);
    } else if (wal_replaced(s)) {
        rc = sync_failed(s, "the log is no longer the file opened at start", err);
    } else {
        int r;
        while ((r = fdatasync(s->wal_fd)) != 0 && errno == EINTR)
            ;
        if (r != 0) rc = sync_failed(s, strerror(errno), err);
    }
    pthread_mutex_unlock(&s->sync_lock);
    return rc;
}

/* ---- Open and close --------------------------------------------------------- */

static void conn_close(struct gh_sqlite_conn *c)
{
    for (int i = 0; i < GH_SQ__COUNT; i++)
        sqlite3_finalize(c->stmt[i]);
    for (int i = 0; i < GH_SQ_AUDIT_QUERY_VARIANTS; i++)
        sqlite3_finalize(c->audit_query[i]);
    memset(c->stmt, 0, sizeof(c->stmt));
    memset(c->audit_query, 0, sizeof(c->audit_query));
    sqlite3_close(c->db);
    c->db = NULL;
}

/* Runs a setup PRAGMA whose answer (if any) is not needed. */
static int pragma(struct gh_sqlite_conn *c, const char *sql, struct gh_err *err)
{
    char *msg = NULL;

    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        gh_err_set(err, NULL, 0, 0, "store: %s: %s", sql, msg ? msg : "failed");
        sqlite3_free(msg);
        return GH_ERROR;
    }
    return GH_OK;
}

/* Switches the database to WAL and checks that it took (it does not on some
 * file systems, and readers would then block writers). */
static int set_wal(struct gh_sqlite_conn *c, struct gh_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = GH_ERROR;

    if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        gh_sqlite__fail(c, "journal_mode", err);
        goto out;
    }
    if (sqlite3_stricmp((const char *)sqlite3_column_text(s, 0), "wal") != 0) {
        gh_err_set(err, NULL, 0, 0, "store: the database cannot use WAL mode (journal_mode is %s)",
                   (const char *)sqlite3_column_text(s, 0));
        goto out;
    }
    rc = GH_OK;
out:
    sqlite3_finalize(s);
    return rc;
}

static int conn_open(struct gh_sqlite_conn *c, const char *path, uint32_t busy_ms, bool writer,
                     struct gh_err *err)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX; /* our own mutex guards it */

    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        if (c->db == NULL) return gh_err_set(err, NULL, 0, 0, "store: %s: out of memory", path);
        return gh_err_set(err, NULL, 0, 0, "store: %s: %s", path, sqlite3_errmsg(c->db));
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, (int)busy_ms);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    if (pragma(c, "PRAGMA foreign_keys = ON", err) != GH_OK) return GH_ERROR;
    if (pragma(c, "PRAGMA trusted_schema = OFF", err) != GH_OK) return GH_ERROR;
    if (!writer) return pragma(c, "PRAGMA query_only = ON", err);
    if (set_wal(c, err) != GH_OK) return GH_ERROR;
    /* A row overwritten in place (a private key replaced by its sealed
     * reference) leaves no old bytes in its page; FAST costs no extra I/O. */
    if (pragma(c, "PRAGMA secure_delete = FAST", err) != GH_OK) return GH_ERROR;
    /* The writer's page cache: 64 MiB, not SQLite's 2 MiB. Every audit
     * event goes into seven B-trees, each with many insertion points (one
     * per tenant, actor, action...); with 2 MiB their inner pages did not
     * stay cached in a store of millions of events, and each insert read
     * them again from the OS (half the writer's time in the kernel). It
     * fills only as pages are touched: a small store uses little. */
    if (pragma(c, "PRAGMA cache_size = -65536", err) != GH_OK) return GH_ERROR;
    /* NORMAL in WAL: a commit is durable once the WAL is synced at the next
     * checkpoint; a power loss may drop the last commits, never corrupt. */
    return pragma(c, "PRAGMA synchronous = NORMAL", err);
}

static void sqlite_close(struct gh_store *st)
{
    struct gh_sqlite_store *s = gh_sqlite__of(st);

    if (s == NULL) return;
    /* The checkpoint thread and the readers first: the last connection
     * to close (the writer) checkpoints the WAL and removes it. */
    gh_sqlite__checkpointer_stop(s);
    /* After a failed sync the log may hold pages the kernel dropped: it is
     * left for the next open's recovery, which checks every frame's
     * checksum, instead of being copied into the database unchecked. */
    if (atomic_load(&s->sync_failed) && s->writer.db != NULL)
        sqlite3_db_config(s->writer.db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    for (unsigned i = 0; i < s->nreaders; i++) {
        conn_close(&s->readers[i]);
        pthread_mutex_destroy(&s->readers[i].lock);
    }
    conn_close(&s->writer);
    pthread_mutex_destroy(&s->writer.lock);
    if (s->wal_fd >= 0) close(s->wal_fd);
    free(s->wal_path);
    pthread_mutex_destroy(&s->sync_lock);
    free(s->readers);
    free(s);
}

/* Creates the file with mode 0600 when it is missing (SQLite would use 0644),
 * so the hashes in it are not world-readable. The -wal and -shm files take
 * the database file's mode. An existing file keeps its mode. */
static int create_file(const char *path, struct gh_err *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) return gh_err_set(err, NULL, 0, 0, "store: %s: %s", path, strerror(errno));
    close(fd);
    return GH_OK;
}

/* SQLite's process-wide settings, made once before its first use. Memory
 * statistics (on by default) take a global mutex on every allocation, and
 * SQLite allocates for every row it writes: 6% of the audit writer's time
 * went to that mutex. Nothing here reads the statistics. (SQLITE_MISUSE,
 * when something in the process started SQLite first, leaves them on.) */
static void sqlite_configure(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int sqlite_open(const struct gh_store_params *p, struct gh_store **out, struct gh_err *err)
{
    /* Process-wide, as SQLite's own configuration is: the one static. */
    static pthread_once_t configured = PTHREAD_ONCE_INIT;

    struct gh_sqlite_store *s;
    unsigned nreaders = p->readers ? p->readers : DEFAULT_READERS;
    uint32_t busy = p->busy_timeout_ms ? p->busy_timeout_ms : DEFAULT_BUSY_TIMEOUT;

    *out = NULL;
    pthread_once(&configured, sqlite_configure);
    if (nreaders > MAX_READERS)
        return gh_err_set(err, NULL, 0, 0, "store: readers: at most %d", MAX_READERS);
    if (sqlite3_threadsafe() == 0)
        return gh_err_set(err, NULL, 0, 0, "store: SQLite was built without thread support");
    if (create_file(p->sqlite_path, err) != GH_OK) return GH_ERROR;

    s = calloc(1, sizeof(*s));
    if (s == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    s->readers = calloc(nreaders, sizeof(*s->readers));
    if (s->readers == NULL) {
        free(s);
        return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    }
    s->base.ops = &gh_store_sqlite_ops;
    s->nreaders = nreaders;
    atomic_init(&s->next_reader, 0);
    atomic_init(&s->sync_failed, false);
    s->wal_fd = -1;
    pthread_mutex_init(&s->sync_lock, NULL);
    pthread_mutex_init(&s->writer.lock, NULL);
    for (unsigned i = 0; i < nreaders; i++)
        pthread_mutex_init(&s->readers[i].lock, NULL);

    /* The writer first: it switches the file to WAL, which readers need. */
    if (conn_open(&s->writer, p->sqlite_path, busy, true, err) != GH_OK) goto fail;
    /* Its name, as SQLite makes it, for gh_sqlite__audit_sync. */
    s->wal_path = strdup(sqlite3_filename_wal(sqlite3_db_filename(s->writer.db, "main")));
    if (s->wal_path == NULL) {
        gh_err_set(err, NULL, 0, 0, "store: out of memory");
        goto fail;
    }
    /* A read makes SQLite open the log, creating it if need be (a new
     * database has none until then). */
    if (sqlite3_exec(s->writer.db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) !=
        SQLITE_OK) {
        gh_sqlite__fail(&s->writer, "open the write-ahead log", err);
        goto fail;
    }
    if (wal_open(s, err) != GH_OK) goto fail;
    for (unsigned i = 0; i < nreaders; i++)
        if (conn_open(&s->readers[i], p->sqlite_path, busy, false, err) != GH_OK) goto fail;
    if (gh_sqlite__checkpointer_start(s, p->sqlite_path, err) != GH_OK) goto fail;
    *out = &s->base;
    return GH_OK;
fail:
    sqlite_close(&s->base);
    return GH_ERROR;
}

const struct gh_store_ops gh_store_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .migrate = gh_sqlite__migrate,
    .change_version = sqlite_change_version,
    .watch_start = sqlite_watch_start,
    .watch_stop = sqlite_watch_stop,
    .wal_stats = sqlite_wal_stats,
    .tenant_create = gh_sqlite__tenant_create,
    .tenant_get = gh_sqlite__tenant_get,
    .tenant_get_by_name = gh_sqlite__tenant_get_by_name,
    .tenant_list = gh_sqlite__tenant_list,
    .tenant_update = gh_sqlite__tenant_update,
    .key_insert = gh_sqlite__key_insert,
    .key_get = gh_sqlite__key_get,
    .key_list = gh_sqlite__key_list,
    .key_set_status = gh_sqlite__key_set_status,
    .key_set_expiry = gh_sqlite__key_set_expiry,
    .keys_touch_batch = gh_sqlite__keys_touch_batch,
    .key_directory_load = gh_sqlite__key_directory_load,
    .token_revoke = gh_sqlite__token_revoke,
    .revoked_tokens_load = gh_sqlite__revoked_tokens_load,
    .revoked_tokens_purge = gh_sqlite__revoked_tokens_purge,
    .signing_key_insert = gh_sqlite__signing_key_insert,
    .signing_keys_load = gh_sqlite__signing_keys_load,
    .tenant_limits_set = gh_sqlite__tenant_limits_set,
    .tenant_limits_get = gh_sqlite__tenant_limits_get,
    .tenant_limits_load = gh_sqlite__tenant_limits_load,
    .usage_add = gh_sqlite__usage_add,
    .usage_get = gh_sqlite__usage_get,
    .usage_load = gh_sqlite__usage_load,
    .limit_event_record = gh_sqlite__limit_event_record,
    .limit_events_list = gh_sqlite__limit_events_list,
    .audit_append = gh_sqlite__audit_append,
    .audit_sync = gh_sqlite__audit_sync,
    .audit_heads = gh_sqlite__audit_heads,
    .audit_query = gh_sqlite__audit_query,
    .audit_walk = gh_sqlite__audit_walk,
    .audit_seq_span = gh_sqlite__audit_seq_span,
    .audit_scan = gh_sqlite__audit_scan,
    .audit_scan_slots = sqlite_audit_scan_slots,
    .audit_checkpoints_walk = gh_sqlite__audit_checkpoints_walk,
    .audit_key_insert = gh_sqlite__audit_key_insert,
    .audit_keys_list = gh_sqlite__audit_keys_list,
    .audit_archive_commit = gh_sqlite__audit_archive_commit,
    .audit_archives_walk = gh_sqlite__audit_archives_walk,
    .backup = gh_sqlite__backup,
    .table_counts = gh_sqlite__table_counts,
    .integrity_check = gh_sqlite__integrity_check,
    .secret_put = gh_sqlite__secret_put,
    .secret_get = gh_sqlite__secret_get,
    .secret_delete = gh_sqlite__secret_delete,
    .secrets_walk = gh_sqlite__secrets_walk,
    .secrets_versions = gh_sqlite__secrets_versions,
    .secrets_stale = gh_sqlite__secrets_stale,
    .secrets_rewrap = gh_sqlite__secrets_rewrap,
    .secrets_rotation_begin = gh_sqlite__secrets_rotation_begin,
    .secrets_rotation_get = gh_sqlite__secrets_rotation_get,
    .secrets_kek_check = gh_sqlite__secrets_kek_check,
    .secrets_kek_state = gh_sqlite__secrets_kek_state,
    .secrets_kek_activate = gh_sqlite__secrets_kek_activate,
    .secrets_kek_unprepare = gh_sqlite__secrets_kek_unprepare,
    .secrets_rotation_finish = gh_sqlite__secrets_rotation_finish,
    .private_key_set = gh_sqlite__private_key_set,
    .hook_endpoint_insert = gh_sqlite__hook_endpoint_insert,
    .hook_endpoint_get = gh_sqlite__hook_endpoint_get,
    .hook_endpoint_list = gh_sqlite__hook_endpoint_list,
    .hook_endpoint_update = gh_sqlite__hook_endpoint_update,
    .hook_endpoint_delete = gh_sqlite__hook_endpoint_delete,
    .hook_publish = gh_sqlite__hook_publish,
    .hook_claim = gh_sqlite__hook_claim,
    .hook_record = gh_sqlite__hook_record,
    .hook_delivery_list = gh_sqlite__hook_delivery_list,
    .hook_delivery_get = gh_sqlite__hook_delivery_get,
    .hook_delivery_replay = gh_sqlite__hook_delivery_replay,
    .hook_pending_count = gh_sqlite__hook_pending_count,
    .hook_reports_claim = gh_sqlite__hook_reports_claim,
    .hook_reports_done = gh_sqlite__hook_reports_done,
    .hook_resume_stray = gh_sqlite__hook_resume_stray,
    .hook_purge = gh_sqlite__hook_purge,
    .usage_purge = gh_sqlite__usage_purge,
};
