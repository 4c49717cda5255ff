/* The SQLite schema as a list of numbered migrations, and the runner that
 * applies the missing ones at start. The list is append-only: a released
 * migration is never edited, a change is a new entry with the next number
 * (docs/internals/store.md). The PostgreSQL store keeps its own list with
 * the same numbers and meaning. */
#include <stdint.h>

#include "core/clock.h"
#include "store/audit_body.h"
#include "store/sqlite_int.h"

struct migration {
    int version; /* 1, 2, 3 ... without gaps */
    const char *sql;
};

static const struct migration migrations[] = {
    {1,
     /* Tenants, the operators' tenant, API keys, revoked tokens, and the
      * change counter that caches poll. Roles and scopes are JSON arrays of
      * strings, validated in C before they are written and again when read
      * (a CHECK with json_type() would need trusted_schema, which is off). */
     "CREATE TABLE tenants ("
     "  id TEXT PRIMARY KEY,"
     "  name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),"
     "  status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),"
     "  plan TEXT NOT NULL DEFAULT 'default',"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL"
     ") STRICT;"
     "CREATE INDEX tenants_by_created ON tenants (created_at, id);"
     "INSERT INTO tenants (id, name, status, plan, created_at, updated_at) VALUES"
     "  ('system', 'system', 'active', 'default',"
     "   CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER),"
     "   CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));"
     "CREATE TABLE api_keys ("
     "  id TEXT PRIMARY KEY CHECK (length(id) = 16),"
     "  tenant_id TEXT NOT NULL REFERENCES tenants (id),"
     "  name TEXT NOT NULL DEFAULT '',"
     "  roles TEXT NOT NULL DEFAULT '[]',"
     "  scopes TEXT NOT NULL DEFAULT '[]',"
     "  secret_hash TEXT NOT NULL,"
     "  status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),"
     "  expires_at INTEGER NOT NULL DEFAULT 0,"
     "  created_at INTEGER NOT NULL,"
     "  last_used_at INTEGER NOT NULL DEFAULT 0,"
     "  rotated_from TEXT REFERENCES api_keys (id)"
     ") STRICT;"
     "CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at, id);"
     "CREATE TABLE revoked_tokens ("
     "  jti TEXT PRIMARY KEY,"
     "  expires_at INTEGER NOT NULL,"
     "  revoked_at INTEGER NOT NULL"
     ") STRICT;"
     "CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);"
     "CREATE TABLE change_counter ("
     "  id INTEGER PRIMARY KEY CHECK (id = 1),"
     "  version INTEGER NOT NULL"
     ") STRICT;"
     "INSERT INTO change_counter (id, version) VALUES (1, 0);"},
    {2,
     /* Keys for gateway-issued tokens, shared by every node. */
     "CREATE TABLE signing_keys ("
     "  kid TEXT PRIMARY KEY CHECK (length(kid) BETWEEN 1 AND 32),"
     "  alg TEXT NOT NULL CHECK (alg IN ('ES256', 'EdDSA')),"
     "  private_pem TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  publish_until INTEGER NOT NULL"
     ") STRICT;"},
    {3,
     /* Issue 4: each tenant's limit overrides (a JSON object, '' = none;
      * its meaning is the limits module's), usage counters per tenant and
      * period (a UTC day "YYYY-MM-DD" or month "YYYY-MM"), and the quota
      * thresholds crossed. Neither usage nor limit_events references
      * tenants: a JWT's tenant need not be in the tenants table. */
     "ALTER TABLE tenants ADD COLUMN limits TEXT NOT NULL DEFAULT '';"
     "CREATE TABLE usage ("
     "  tenant_id TEXT NOT NULL,"
     "  period TEXT NOT NULL,"
     "  requests INTEGER NOT NULL DEFAULT 0,"
     "  request_bytes INTEGER NOT NULL DEFAULT 0,"
     "  response_bytes INTEGER NOT NULL DEFAULT 0,"
     "  updated_at INTEGER NOT NULL,"
     "  PRIMARY KEY (tenant_id, period)"
     ") STRICT, WITHOUT ROWID;"
     "CREATE INDEX usage_by_period ON usage (period, tenant_id);"
     "CREATE TABLE limit_events ("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  tenant_id TEXT NOT NULL,"
     "  period TEXT NOT NULL,"
     "  metric TEXT NOT NULL,"
     "  threshold INTEGER NOT NULL,"
     "  value INTEGER NOT NULL,"
     "  lim INTEGER NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  UNIQUE (tenant_id, period, metric, threshold)"
     ") STRICT;"
     "CREATE INDEX limit_events_by_tenant ON limit_events (tenant_id, id);"},
    {4,
     /* Issue 5: the audit log (docs/audit-format.md). One row per event:
      * its canonical form (body) and hash, and copies of the fields queries
      * filter on, which the verifier checks against the body. rowid is the
      * commit order and the keyset of queries; AUTOINCREMENT so that it is
      * never reused, even when the newest rows are gone. UNIQUE (chain, seq)
      * is also the index of chain walks. The other indexes serve the
      * query filters, each ending in rowid for the keyset; a query with a
      * time range pages by (time_us, rowid) instead, alone or within a
      * tenant. */
     "CREATE TABLE audit_events ("
     "  rowid INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  chain TEXT NOT NULL,"
     "  seq INTEGER NOT NULL CHECK (seq >= 1),"
     "  id TEXT NOT NULL,"
     "  time_us INTEGER NOT NULL,"
     "  tenant_id TEXT NOT NULL,"
     "  actor TEXT NOT NULL,"
     "  action TEXT NOT NULL,"
     "  resource TEXT NOT NULL,"
     "  outcome TEXT NOT NULL,"
     "  request_id TEXT NOT NULL,"
     "  hash TEXT NOT NULL,"
     "  body TEXT NOT NULL,"
     "  UNIQUE (chain, seq)"
     ") STRICT;"
     "CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, rowid);"
     "CREATE INDEX audit_events_by_time ON audit_events (time_us, rowid);"
     "CREATE INDEX audit_events_by_tenant_time ON audit_events (tenant_id, time_us, rowid);"
     "CREATE INDEX audit_events_by_request ON audit_events (request_id);"
     "CREATE INDEX audit_events_by_action ON audit_events (action, rowid);"
     "CREATE INDEX audit_events_by_actor ON audit_events (actor, rowid);"
     "CREATE TABLE audit_checkpoints ("
     "  chain TEXT NOT NULL,"
     "  seq INTEGER NOT NULL,"
     "  hash TEXT NOT NULL,"
     "  time_ms INTEGER NOT NULL,"
     "  key_id TEXT NOT NULL,"
     "  signature TEXT NOT NULL,"
     "  PRIMARY KEY (chain, seq)"
     ") STRICT, WITHOUT ROWID;"
     "CREATE TABLE audit_keys ("
     "  key_id TEXT PRIMARY KEY,"
     "  public_pem TEXT NOT NULL,"
     "  private_pem TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL"
     ") STRICT;"},
    {5,
     /* Issue 5: audit archives. One row per archive segment: a prefix of a
      * chain moved out of audit_events (docs/audit-format.md, "Archives").
      * The row is inserted in the same transaction that deletes the
      * segment's events, so an event is always either here (by range) or
      * in audit_events. prev_hash is the hash before first_seq (zeros for
      * seq 1): a segment verifies on its own. */
     "CREATE TABLE audit_archives ("
     "  chain TEXT NOT NULL,"
     "  first_seq INTEGER NOT NULL CHECK (first_seq >= 1),"
     "  last_seq INTEGER NOT NULL CHECK (last_seq >= first_seq),"
     "  prev_hash TEXT NOT NULL,"
     "  last_hash TEXT NOT NULL,"
     "  events INTEGER NOT NULL,"
     "  file TEXT NOT NULL,"
     "  file_sha256 TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  PRIMARY KEY (chain, first_seq)"
     ") STRICT, WITHOUT ROWID;"},
    {6,
     /* Issue 7: sealed secrets (src/secrets, docs/secrets.md). A row holds
      * only the ciphertext (value and GCM tag), its nonce, the data key
      * wrapped by the master key, and that master key's version; the
      * version index lets a rotation find the rows still to re-wrap. A
      * rowid table, not WITHOUT ROWID: values reach 8 KiB. The single
      * secrets_rotation row is the pending (or last) master key rotation,
      * recorded before any row moves so that a rerun resumes it. */
     "CREATE TABLE secrets ("
     "  tenant_id TEXT NOT NULL,"
     "  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 128),"
     "  ciphertext BLOB NOT NULL,"
     "  nonce BLOB NOT NULL CHECK (length(nonce) = 12),"
     "  wrapped_dek BLOB NOT NULL,"
     "  kek_version INTEGER NOT NULL CHECK (kek_version >= 1),"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL,"
     "  PRIMARY KEY (tenant_id, name)"
     ") STRICT;"
     "CREATE INDEX secrets_by_version ON secrets (kek_version, tenant_id, name);"
     "CREATE TABLE secrets_rotation ("
     "  id INTEGER PRIMARY KEY CHECK (id = 1),"
     "  from_version INTEGER NOT NULL,"
     "  to_version INTEGER NOT NULL,"
     "  started_at INTEGER NOT NULL,"
     "  finished_at INTEGER NOT NULL DEFAULT 0,"
     "  rewrapped INTEGER NOT NULL DEFAULT 0"
     ") STRICT;"},
    {7,
     /* Issue 7: outbound webhooks (src/hooks, docs/webhooks.md). Endpoints
      * keep their subscriptions as a JSON array (validated in C, as the
      * keys' roles) and only the versions of their signing keys, which
      * live in the secrets table. A message is stored once; each
      * subscribed endpoint gets a delivery, and each try an attempt row.
      * The dispatcher claims due deliveries through (status,
      * next_attempt_at); "claimed" names the process that holds one, so a
      * process that restarts after a crash claims again what its previous
      * life held (at least once). Message ids are unique per tenant (a
      * publisher's idempotency key); seq is the internal key; a message
      * keeps its delivery count (the answer to a repeated id) rather than
      * an index of deliveries by message, one page less per publish. */
     "CREATE TABLE webhook_endpoints ("
     "  id TEXT PRIMARY KEY,"
     "  tenant_id TEXT NOT NULL REFERENCES tenants (id),"
     "  url TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),"
     "  description TEXT NOT NULL DEFAULT '',"
     "  events TEXT NOT NULL DEFAULT '[]',"
     "  signing TEXT NOT NULL CHECK (signing IN ('hmac', 'ed25519')),"
     "  public_key TEXT NOT NULL DEFAULT '',"
     "  secret_version INTEGER NOT NULL CHECK (secret_version >= 1),"
     "  prev_version INTEGER NOT NULL DEFAULT 0,"
     "  prev_until INTEGER NOT NULL DEFAULT 0,"
     "  status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),"
     "  failing_since INTEGER NOT NULL DEFAULT 0,"
     "  disabled_reason TEXT NOT NULL DEFAULT '',"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL"
     ") STRICT;"
     "CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, created_at, id);"
     "CREATE TABLE webhook_messages ("
     "  seq INTEGER PRIMARY KEY,"
     "  id TEXT NOT NULL,"
     "  tenant_id TEXT NOT NULL,"
     "  type TEXT NOT NULL,"
     "  payload TEXT NOT NULL,"
     "  deliveries INTEGER NOT NULL DEFAULT 0,"
     "  created_at INTEGER NOT NULL,"
     "  UNIQUE (tenant_id, id)"
     ") STRICT;"
     "CREATE TABLE webhook_deliveries ("
     "  id INTEGER PRIMARY KEY,"
     "  message_seq INTEGER NOT NULL REFERENCES webhook_messages (seq),"
     "  endpoint_id TEXT NOT NULL,"
     "  tenant_id TEXT NOT NULL,"
     "  status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),"
     "  attempts INTEGER NOT NULL DEFAULT 0,"
     "  next_attempt_at INTEGER NOT NULL,"
     "  claimed TEXT NOT NULL DEFAULT '',"
     "  last_status INTEGER NOT NULL DEFAULT 0,"
     "  last_error TEXT NOT NULL DEFAULT '',"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL"
     ") STRICT;"
     "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);"
     "CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);"
     "CREATE TABLE webhook_attempts ("
     "  id INTEGER PRIMARY KEY,"
     "  delivery_id INTEGER NOT NULL,"
     "  at INTEGER NOT NULL,"
     "  status INTEGER NOT NULL,"
     "  error TEXT NOT NULL DEFAULT '',"
     "  latency_ms INTEGER NOT NULL,"
     "  response TEXT NOT NULL DEFAULT ''"
     ") STRICT;"
     "CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);"},
    {8,
     /* The node that wrote each audit event (config node.id; format
      * version 2 of docs/audit-format.md), a copy of the body's "node"
      * member as the other filter columns are; '' for the events of
      * version 1, which have none. */
     "ALTER TABLE audit_events ADD COLUMN node TEXT NOT NULL DEFAULT '';"},
    {9,
     /* Nothing: PostgreSQL's migration 9 (the PostgreSQL review: ids of
      * stored usage batches, row-level security that an empty tenant
      * setting cannot satisfy) has no SQLite counterpart, whose commits are
      * always answered and which has no roles. Kept so that the numbers
      * mean the same in both engines. */
     "SELECT 1;"},
    {10,
     /* One B-tree fewer on every audit append: a tenant's query without a
      * time range reads its chain through UNIQUE (chain, seq), in the same
      * order (sqlite_audit.c, query_stmt), so (tenant_id, rowid) served
      * nothing the other indexes do not, but for the system tenant, whose
      * chain also holds the events of no tenant: its own rows get a
      * partial index, which no other row enters. Migration 4 still makes
      * the dropped index, for the stores that are at version 4 to 9. */
     "DROP INDEX IF EXISTS audit_events_by_tenant;"
     "CREATE INDEX audit_events_of_system ON audit_events (rowid) WHERE tenant_id = "
     "'system';"},
    {11,
     /* One B-tree entry fewer for each audited request: the requests' own
      * events (GH_STORE_AUDIT_REQUEST_ACTION), most of a busy store's rows,
      * leave the index on action, which then serves the rarer actions
      * only. A query for one of those says so as a constant
      * (GH_AQ_OTHER_ACTION), which lets the planner use the partial index;
      * one for the requests' action matches most rows in any order it
      * reads them. */
     "DROP INDEX IF EXISTS audit_events_by_action;"
     "CREATE INDEX audit_events_by_action ON audit_events (action, rowid) WHERE action <> "
     "'" GH_STORE_AUDIT_REQUEST_ACTION "';"},
    {12,
     /* Each event's canonical body for readers of the table (audit_body.h):
      * the PostgreSQL store keeps most bodies in the compact form, and a
      * reader that wants the bytes the chain's hashes cover reads this view
      * in either engine. SQLite stores every body whole, so here it gives
      * the column as it is. */
     "CREATE VIEW audit_events_canonical AS SELECT " GH_STORE_AUDIT_CANONICAL_COLS
     " FROM audit_events;"},
    {13,
     /* As in PostgreSQL: the view reads the compact form with its marks
      * too (audit_body.h), so that both engines' views are one definition;
      * SQLite still stores every body whole. */
     "DROP VIEW audit_events_canonical;"
     "CREATE VIEW audit_events_canonical AS SELECT " GH_STORE_AUDIT_CANONICAL_COLS_13(
         "char") " FROM audit_events;"},
    {14,
     /* Master key checks (src/secrets/secrets.c): per master key version,
      * a constant wrapped by it, recorded by the first process that opened
      * the store with that version. Another key under the same version
      * (a second node's own file, a wrong copy) cannot unwrap it, and is
      * refused before it seals anything. */
     "CREATE TABLE secrets_kek_checks ("
     "  version INTEGER PRIMARY KEY CHECK (version >= 1),"
     "  check_blob BLOB NOT NULL,"
     "  created_at INTEGER NOT NULL"
     ") STRICT;"},
    {15,
     /* Nothing: PostgreSQL's migration 15 takes UPDATE on tenants from the
      * tenant role; SQLite has no roles. Kept so that the numbers mean the
      * same in both engines. */
     "SELECT 1;"},
    {16,
     /* Webhook retention (gh_sqlite__hook_purge) deletes a message's
      * deliveries, then the message: both find them by message_seq, and so
      * does the foreign key's check on the message's delete, which without
      * this index reads the whole table once per message. */
     "CREATE INDEX webhook_deliveries_by_message ON webhook_deliveries (message_seq);"},
    {17,
     /* A master key version made ahead of its rotation (`rotate-master
      * --prepare`, docs/secrets.md): checked like any, sealed under by no
      * node until the rotation puts it in use, so the file can be copied to
      * every node first. Every check recorded before is in use. */
     "ALTER TABLE secrets_kek_checks ADD COLUMN prepared INTEGER NOT NULL DEFAULT 0 "
     "CHECK (prepared IN (0, 1));"},
    {18,
     /* Delivery ids never come back. Without AUTOINCREMENT SQLite gives
      * the highest id + 1, so once the newest deliveries are deleted (by
      * retention, or with their endpoint) their ids went to new ones: a
      * stored id then named another delivery, and a list's cursor skipped
      * new ones. AUTOINCREMENT remembers the highest id ever given
      * (sqlite_sequence), and the copy below sets it from the rows kept
      * (ids freed above them before this migration may come back once).
      * A delivery whose message is gone (a hand's edit with the sqlite3
      * shell, where foreign keys are off) is not copied, nor its attempts
      * kept: it could never be sent, and it would fail the copy.
      * PostgreSQL's identity columns never reuse a value. */
     "CREATE TABLE webhook_deliveries_18 ("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  message_seq INTEGER NOT NULL REFERENCES webhook_messages (seq),"
     "  endpoint_id TEXT NOT NULL,"
     "  tenant_id TEXT NOT NULL,"
     "  status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),"
     "  attempts INTEGER NOT NULL DEFAULT 0,"
     "  next_attempt_at INTEGER NOT NULL,"
     "  claimed TEXT NOT NULL DEFAULT '',"
     "  last_status INTEGER NOT NULL DEFAULT 0,"
     "  last_error TEXT NOT NULL DEFAULT '',"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL"
     ") STRICT;"
     "INSERT INTO webhook_deliveries_18 SELECT id, message_seq, endpoint_id, tenant_id, status, "
     "attempts, next_attempt_at, claimed, last_status, last_error, created_at, updated_at "
     "FROM webhook_deliveries d WHERE EXISTS (SELECT 1 FROM webhook_messages m "
     "WHERE m.seq = d.message_seq);"
     "DELETE FROM webhook_attempts WHERE delivery_id NOT IN (SELECT id FROM "
     "webhook_deliveries_18);"
     "DROP TABLE webhook_deliveries;"
     "ALTER TABLE webhook_deliveries_18 RENAME TO webhook_deliveries;"
     "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);"
     "CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);"
     "CREATE INDEX webhook_deliveries_by_message ON webhook_deliveries (message_seq);"},
    {19,
     /* Usage retention (limits.usage_retention, gh_sqlite__usage_purge): a
      * limit event's purge reads by period. */
     "CREATE INDEX limit_events_by_period ON limit_events (period, id);"},
    {20,
     /* A pending delivery of an endpoint an admin disabled is paused: the
      * claim (GH_SQ_HOOK_DUE) reads the due index past paused = 0 only, so
      * a disabled endpoint's backlog costs a claim nothing, however long
      * it is. Set and cleared with the endpoint's status
      * (gh_sqlite__hook_endpoint_update); the status stays 'pending'. */
     "ALTER TABLE webhook_deliveries ADD COLUMN paused INTEGER NOT NULL DEFAULT 0 "
     "CHECK (paused IN (0, 1));"
     "DROP INDEX webhook_deliveries_due;"
     "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, paused, "
     "next_attempt_at);"
     "UPDATE webhook_deliveries SET paused = 1 WHERE status = 'pending' AND endpoint_id IN "
     "(SELECT id FROM webhook_endpoints WHERE status <> 'active');"},
    {21,
     /* The report of an endpoint's disabling (audit record, event) is
      * made once: report_after is 0 once made, else the time from which
      * any process may make it (gh_sqlite__hook_reports_claim), the
      * disabling process having it until then. An endpoint disabled before
      * this migration was reported as it was. */
     "ALTER TABLE webhook_endpoints ADD COLUMN report_after INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX webhook_endpoints_reports ON webhook_endpoints (report_after) "
     "WHERE report_after > 0;"},
    {22,
     /* An endpoint's paused deliveries, found at once: to resume them
      * (whatever the status read says: an older gatehouse may have enabled
      * the endpoint without resuming them), and for the dispatcher's look
      * for paused deliveries of active endpoints (hook_resume_stray). Only
      * a pending delivery stays paused: a finished one is unpaused. */
     "UPDATE webhook_deliveries SET paused = 0 WHERE paused = 1 AND status <> 'pending';"
     "CREATE INDEX webhook_deliveries_paused ON webhook_deliveries (endpoint_id, id) "
     "WHERE paused = 1;"},
    {23,
     /* An endpoint's revision: one more at every change of a field the
      * admin API's update writes over (all but the failure clock, which it
      * only resets), by the API or the dispatcher. The update applies only
      * to the revision it read (gh_store_hook_endpoint_update), so a change
      * made between an admin's read and write (an automatic disabling,
      * another admin's rotation) is never written over. The statements
      * move it themselves; the trigger moves it for a writer that does not
      * (an older gatehouse on the same file). */
     "ALTER TABLE webhook_endpoints ADD COLUMN rev INTEGER NOT NULL DEFAULT 1 "
     "CHECK (rev >= 1);"
     "CREATE TRIGGER webhook_endpoints_rev AFTER UPDATE ON webhook_endpoints "
     "WHEN NEW.rev = OLD.rev AND (NEW.url IS NOT OLD.url "
     "OR NEW.description IS NOT OLD.description OR NEW.events IS NOT OLD.events "
     "OR NEW.public_key IS NOT OLD.public_key OR NEW.secret_version IS NOT OLD.secret_version "
     "OR NEW.prev_version IS NOT OLD.prev_version OR NEW.prev_until IS NOT OLD.prev_until "
     "OR NEW.status IS NOT OLD.status OR NEW.disabled_reason IS NOT OLD.disabled_reason) "
     "BEGIN UPDATE webhook_endpoints SET rev = rev + 1 WHERE id = NEW.id; END;"},
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* Runs one migration's script. sqlite3_exec is fine here: the scripts are
 * constants, run once per database, and bind nothing. */
static int run_script(struct gh_sqlite_conn *c, const struct migration *m, struct gh_err *err)
{
    char *msg = NULL;

    if (sqlite3_exec(c->db, m->sql, NULL, NULL, &msg) != SQLITE_OK) {
        gh_err_set(err, NULL, 0, 0, "store: migration %d: %s", m->version, msg ? msg : "failed");
        sqlite3_free(msg);
        return GH_ERROR;
    }
    return GH_OK;
}

/* Reads the schema version inside the writer's transaction. */
static int current_version(struct gh_sqlite_conn *c, int *version, struct gh_err *err)
{
    static const struct migration table = {0, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                              "  version INTEGER PRIMARY KEY,"
                                              "  applied_at INTEGER NOT NULL"
                                              ") STRICT;"};
    sqlite3_stmt *s;
    int rc;

    if (run_script(c, &table, err) != GH_OK) return GH_ERROR;
    s = gh_sqlite__stmt(c, GH_SQ_MIGRATION_MAX, err);
    if (s == NULL) return GH_ERROR;
    rc = gh_sqlite__row(c, s, "schema version", err);
    if (rc != GH_OK) return GH_ERROR;
    *version = sqlite3_column_int(s, 0);
    gh_sqlite__done(s);
    return GH_OK;
}

/* Applies the migration after the current version, if any; sets *done when
 * the schema is up to date. One transaction per migration, BEGIN IMMEDIATE:
 * two processes migrating the same file at once apply each step once. */
static int step(struct gh_sqlite_store *s, int *version, bool *done, struct gh_err *err)
{
    struct gh_sqlite_conn *c = &s->writer;
    const struct migration *m;
    sqlite3_stmt *rec;
    int rc;

    rc = gh_sqlite__write_begin(s, err);
    if (rc != GH_OK) return rc;
    rc = current_version(c, version, err);
    if (rc != GH_OK) goto out;
    if (*version > NMIGRATIONS) {
        rc = gh_err_set(err, NULL, 0, 0,
                        "store: the database schema (version %d) is newer than this gatehouse "
                        "(version %d)",
                        *version, NMIGRATIONS);
        goto out;
    }
    if (*version == NMIGRATIONS) {
        *done = true;
        goto out;
    }
    m = &migrations[*version];
    if (m->version != *version + 1) { /* a gap or a misordered entry in the list */
        rc = gh_err_set(err, NULL, 0, 0, "store: migration list broken at %d", m->version);
        goto out;
    }
    rc = run_script(c, m, err);
    if (rc != GH_OK) goto out;
    rec = gh_sqlite__stmt(c, GH_SQ_MIGRATION_RECORD, err);
    if (rec == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    sqlite3_bind_int(rec, 1, m->version);
    sqlite3_bind_int64(rec, 2, (int64_t)gh_wall_ms());
    rc = gh_sqlite__exec(c, rec, "schema_migrations", err);
    if (rc == GH_OK) *version = m->version;
out:
    return gh_sqlite__write_end(s, rc, err);
}

int gh_sqlite__migrate(struct gh_store *st, int *applied, int *version, struct gh_err *err)
{
    struct gh_sqlite_store *s = gh_sqlite__of(st);
    bool done = false;
    int rc;

    *applied = 0;
    for (;;) {
        rc = step(s, version, &done, err);
        if (rc != GH_OK || done) return rc;
        (*applied)++;
    }
}
