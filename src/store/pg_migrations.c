/* The PostgreSQL schema as a list of numbered migrations (the same numbers
 * and meaning as sqlite_migrations.c), with each table's grants and
 * row-level security policies in the migration that creates it; the roles
 * and schema they need; and the two runners: gh_store_postgres_init(), which
 * applies them as the owner role, and gh_pg__migrate(), the gateway's, which
 * only checks the version (its login role may create nothing).
 * docs/postgres.md explains the roles. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "store/audit_body.h"
#include "store/pg_int.h"
#include "store/store_postgres.h"

/* A tenant-owned table: only the tenant named by the transaction's setting
 * (gh_pg__begin) sees or writes its rows; FORCE so the owner is held too
 * (the operator role bypasses RLS by its BYPASSRLS attribute, explicitly).
 * current_setting(..., true) is NULL when unset: no row matches. */
#define TENANT_POLICY(table, column)                                                               \
    "ALTER TABLE " table " ENABLE ROW LEVEL SECURITY;"                                             \
    "ALTER TABLE " table " FORCE ROW LEVEL SECURITY;"                                              \
    "CREATE POLICY " table "_tenant ON " table " TO gatehouse_tenant"                              \
    "  USING (" column " = current_setting('gatehouse.tenant_id', true))"                          \
    "  WITH CHECK (" column " = current_setting('gatehouse.tenant_id', true));"

/* Migration 8: the same policy, with an empty setting matching nothing
 * by construction (nullif), as an unset one does: gh_pg__begin refuses an
 * empty tenant, and no row can be reached through one either. */
#define TENANT_POLICY_STRICT(table, column)                                                        \
    "ALTER POLICY " table "_tenant ON " table "  USING (" column                                   \
    " = nullif(current_setting('gatehouse.tenant_id', true), ''))"                                 \
    "  WITH CHECK (" column " = nullif(current_setting('gatehouse.tenant_id', true), ''));"

struct migration {
    int version; /* 1, 2, 3 ... without gaps */
    const char *sql;
};

static const struct migration migrations[] = {
    {1,
     /* Tenants (a tenant sees and updates its own row: the policy is on id),
      * API keys, revoked tokens (operator-only: no tenant column), and the
      * change counter (a tenant's key insert bumps it). Roles and scopes are
      * JSON text, as in SQLite: the store checks them in C. Ids sort by
      * byte (COLLATE "C") like SQLite's, for the keyset cursors. The system
      * tenant's row goes in before RLS is forced on the owner. */
     "CREATE TABLE tenants ("
     "  id text COLLATE \"C\" PRIMARY KEY,"
     "  name text COLLATE \"C\" NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),"
     "  status text NOT NULL CHECK (status IN ('active', 'suspended')),"
     "  plan text NOT NULL DEFAULT 'default',"
     "  created_at bigint NOT NULL,"
     "  updated_at bigint NOT NULL);"
     "CREATE INDEX tenants_by_created ON tenants (created_at, id);"
     "INSERT INTO tenants (id, name, status, plan, created_at, updated_at) VALUES"
     "  ('system', 'system', 'active', 'default',"
     "   (extract(epoch FROM now()) * 1000)::bigint, (extract(epoch FROM now()) * 1000)::bigint);"
     "CREATE TABLE api_keys ("
     "  id text COLLATE \"C\" PRIMARY KEY CHECK (length(id) = 16),"
     "  tenant_id text COLLATE \"C\" NOT NULL REFERENCES tenants (id),"
     "  name text NOT NULL DEFAULT '',"
     "  roles text NOT NULL DEFAULT '[]',"
     "  scopes text NOT NULL DEFAULT '[]',"
     "  secret_hash text NOT NULL,"
     "  status text NOT NULL CHECK (status IN ('active', 'revoked')),"
     "  expires_at bigint NOT NULL DEFAULT 0,"
     "  created_at bigint NOT NULL,"
     "  last_used_at bigint NOT NULL DEFAULT 0,"
     "  rotated_from text COLLATE \"C\" REFERENCES api_keys (id));"
     "CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at, id);"
     "CREATE TABLE revoked_tokens ("
     "  jti text COLLATE \"C\" PRIMARY KEY,"
     "  expires_at bigint NOT NULL,"
     "  revoked_at bigint NOT NULL);"
     "CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);"
     "CREATE TABLE change_counter ("
     "  id integer PRIMARY KEY CHECK (id = 1),"
     "  version bigint NOT NULL);"
     "INSERT INTO change_counter (id, version) VALUES (1, 0);"
     "GRANT SELECT, INSERT, UPDATE ON tenants, api_keys TO gatehouse_operator;"
     "GRANT SELECT, UPDATE ON tenants TO gatehouse_tenant;"
     "GRANT SELECT, INSERT, UPDATE ON api_keys TO gatehouse_tenant;"
     "GRANT SELECT, INSERT, UPDATE, DELETE ON revoked_tokens TO gatehouse_operator;"
     "GRANT SELECT, UPDATE ON change_counter TO gatehouse_operator, "
     "gatehouse_tenant;" TENANT_POLICY("tenants", "id") TENANT_POLICY("api_keys", "tenant_id")},
    {2,
     /* Keys for gateway-issued tokens, shared by every node. */
     "CREATE TABLE signing_keys ("
     "  kid text COLLATE \"C\" PRIMARY KEY CHECK (length(kid) BETWEEN 1 AND 32),"
     "  alg text NOT NULL CHECK (alg IN ('ES256', 'EdDSA')),"
     "  private_pem text NOT NULL,"
     "  created_at bigint NOT NULL,"
     "  publish_until bigint NOT NULL);"
     "GRANT SELECT, INSERT ON signing_keys TO gatehouse_operator;"},
    {3,
     /* Issue 4: limit overrides (text as given, '' = none), usage counters
      * and limit events. No foreign key to tenants: a JWT's tenant need not
      * be a stored one. Both are tenant-owned. */
     "ALTER TABLE tenants ADD COLUMN limits text NOT NULL DEFAULT '';"
     "CREATE TABLE usage ("
     "  tenant_id text COLLATE \"C\" NOT NULL,"
     "  period text COLLATE \"C\" NOT NULL,"
     "  requests bigint NOT NULL DEFAULT 0,"
     "  request_bytes bigint NOT NULL DEFAULT 0,"
     "  response_bytes bigint NOT NULL DEFAULT 0,"
     "  updated_at bigint NOT NULL,"
     "  PRIMARY KEY (tenant_id, period));"
     "CREATE INDEX usage_by_period ON usage (period, tenant_id);"
     "CREATE TABLE limit_events ("
     "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  tenant_id text COLLATE \"C\" NOT NULL,"
     "  period text COLLATE \"C\" NOT NULL,"
     "  metric text COLLATE \"C\" NOT NULL,"
     "  threshold bigint NOT NULL,"
     "  value bigint NOT NULL,"
     "  lim bigint NOT NULL,"
     "  created_at bigint NOT NULL,"
     "  UNIQUE (tenant_id, period, metric, threshold));"
     "CREATE INDEX limit_events_by_tenant ON limit_events (tenant_id, id);"
     "GRANT SELECT, INSERT, UPDATE ON usage TO gatehouse_operator;"
     "GRANT SELECT ON usage TO gatehouse_tenant;"
     "GRANT SELECT, INSERT ON limit_events TO gatehouse_operator;"
     "GRANT SELECT ON limit_events TO gatehouse_tenant;"
     /* pg_dump --role=gatehouse_operator reads the sequence's state. */
     "GRANT SELECT ON SEQUENCE limit_events_id_seq TO gatehouse_operator;" TENANT_POLICY(
         "usage", "tenant_id") TENANT_POLICY("limit_events", "tenant_id")},
    {4,
     /* Issue 5: the audit log. rowid is drawn under the append lock
      * (pg_int.h, GH_PG_AUDIT_LOCK_SQL), so it is the commit order. A
      * tenant reads the rows of its tenant_id; system rows have tenant_id
      * '' and no tenant setting is ever '': operators only. Checkpoints,
      * keys (with their private halves) are operator-only. */
     "CREATE TABLE audit_events ("
     "  rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  chain text COLLATE \"C\" NOT NULL,"
     "  seq bigint NOT NULL CHECK (seq >= 1),"
     "  id text NOT NULL,"
     "  time_us bigint NOT NULL,"
     "  tenant_id text COLLATE \"C\" NOT NULL,"
     "  actor text COLLATE \"C\" NOT NULL,"
     "  action text COLLATE \"C\" NOT NULL,"
     "  resource text COLLATE \"C\" NOT NULL,"
     "  outcome text NOT NULL,"
     "  request_id text COLLATE \"C\" NOT NULL,"
     "  hash text NOT NULL,"
     "  body text NOT NULL,"
     "  CONSTRAINT audit_events_chain_seq_key UNIQUE (chain, seq));"
     "CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, rowid);"
     "CREATE INDEX audit_events_by_time ON audit_events (time_us, rowid);"
     "CREATE INDEX audit_events_by_tenant_time ON audit_events (tenant_id, time_us, rowid);"
     "CREATE INDEX audit_events_by_request ON audit_events (request_id);"
     "CREATE INDEX audit_events_by_action ON audit_events (action, rowid);"
     "CREATE INDEX audit_events_by_actor ON audit_events (actor, rowid);"
     "CREATE TABLE audit_checkpoints ("
     "  chain text COLLATE \"C\" NOT NULL,"
     "  seq bigint NOT NULL,"
     "  hash text NOT NULL,"
     "  time_ms bigint NOT NULL,"
     "  key_id text NOT NULL,"
     "  signature text NOT NULL,"
     "  PRIMARY KEY (chain, seq));"
     "CREATE TABLE audit_keys ("
     "  key_id text COLLATE \"C\" PRIMARY KEY,"
     "  public_pem text NOT NULL,"
     "  private_pem text NOT NULL,"
     "  created_at bigint NOT NULL);"
     "GRANT SELECT, INSERT, DELETE ON audit_events TO gatehouse_operator;"
     "GRANT SELECT ON audit_events TO gatehouse_tenant;"
     /* SELECT on the sequence: pg_dump, and currval, from which the
      * audit append takes a batch's rowids (pg_audit.c insert_rows). */
     "GRANT SELECT ON SEQUENCE audit_events_rowid_seq TO gatehouse_operator;"
     "GRANT SELECT, INSERT ON audit_checkpoints, audit_keys TO gatehouse_operator;" TENANT_POLICY(
         "audit_events", "tenant_id")},
    {5,
     /* Issue 5: audit archives, one row per segment moved out of
      * audit_events (in the same transaction that deletes its events). */
     "CREATE TABLE audit_archives ("
     "  chain text COLLATE \"C\" NOT NULL,"
     "  first_seq bigint NOT NULL CHECK (first_seq >= 1),"
     "  last_seq bigint NOT NULL CHECK (last_seq >= first_seq),"
     "  prev_hash text NOT NULL,"
     "  last_hash text NOT NULL,"
     "  events bigint NOT NULL,"
     "  file text NOT NULL,"
     "  file_sha256 text NOT NULL,"
     "  created_at bigint NOT NULL,"
     "  PRIMARY KEY (chain, first_seq));"
     "GRANT SELECT, INSERT ON audit_archives TO gatehouse_operator;"},
    {6,
     /* Issue 7: sealed secrets (docs/secrets.md): ciphertext, nonce, the
      * wrapped data key and its master key version, never a plaintext.
      * Tenant-owned: a tenant's calls (put, get, delete, its walk) see its
      * own rows only. The rotation record and the own keys' sealed column
      * (private_key_set) are operator work. */
     "CREATE TABLE secrets ("
     "  tenant_id text COLLATE \"C\" NOT NULL,"
     "  name text COLLATE \"C\" NOT NULL CHECK (length(name) BETWEEN 1 AND 128),"
     "  ciphertext bytea NOT NULL,"
     "  nonce bytea NOT NULL CHECK (length(nonce) = 12),"
     "  wrapped_dek bytea NOT NULL,"
     "  kek_version bigint NOT NULL CHECK (kek_version >= 1),"
     "  created_at bigint NOT NULL,"
     "  updated_at bigint NOT NULL,"
     "  PRIMARY KEY (tenant_id, name));"
     "CREATE INDEX secrets_by_version ON secrets (kek_version, tenant_id, name);"
     "CREATE TABLE secrets_rotation ("
     "  id integer PRIMARY KEY CHECK (id = 1),"
     "  from_version bigint NOT NULL,"
     "  to_version bigint NOT NULL,"
     "  started_at bigint NOT NULL,"
     "  finished_at bigint NOT NULL DEFAULT 0,"
     "  rewrapped bigint NOT NULL DEFAULT 0);"
     "GRANT SELECT, INSERT, UPDATE, DELETE ON secrets TO gatehouse_tenant;"
     "GRANT SELECT, UPDATE ON secrets TO gatehouse_operator;"
     "GRANT SELECT, INSERT, UPDATE ON secrets_rotation TO gatehouse_operator;"
     "GRANT UPDATE (private_pem) ON audit_keys, signing_keys TO gatehouse_operator;" TENANT_POLICY(
         "secrets", "tenant_id")},
    {7,
     /* Issue 7: outbound webhooks (docs/webhooks.md), as in SQLite, and
      * more: a delivery's claim is a lease (claimed by whom, until when),
      * so that several nodes claim with FOR UPDATE SKIP LOCKED without
      * taking each other's deliveries in flight; and attempts carry their
      * delivery's tenant_id, so that every table a tenant reaches has its
      * policy. The endpoint, publish and delivery calls are [tenant]; the
      * dispatcher's claims and outcomes are [operator]. */
     "CREATE TABLE webhook_endpoints ("
     "  id text COLLATE \"C\" PRIMARY KEY,"
     "  tenant_id text COLLATE \"C\" NOT NULL REFERENCES tenants (id),"
     "  url text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),"
     "  description text NOT NULL DEFAULT '',"
     "  events text NOT NULL DEFAULT '[]',"
     "  signing text NOT NULL CHECK (signing IN ('hmac', 'ed25519')),"
     "  public_key text NOT NULL DEFAULT '',"
     "  secret_version bigint NOT NULL CHECK (secret_version >= 1),"
     "  prev_version bigint NOT NULL DEFAULT 0,"
     "  prev_until bigint NOT NULL DEFAULT 0,"
     "  status text NOT NULL CHECK (status IN ('active', 'disabled')),"
     "  failing_since bigint NOT NULL DEFAULT 0,"
     "  disabled_reason text NOT NULL DEFAULT '',"
     "  created_at bigint NOT NULL,"
     "  updated_at bigint NOT NULL);"
     "CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, created_at, id);"
     "CREATE TABLE webhook_messages ("
     "  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  id text COLLATE \"C\" NOT NULL,"
     "  tenant_id text COLLATE \"C\" NOT NULL,"
     "  type text COLLATE \"C\" NOT NULL,"
     "  payload text NOT NULL,"
     "  deliveries bigint NOT NULL DEFAULT 0,"
     "  created_at bigint NOT NULL,"
     "  CONSTRAINT webhook_messages_tenant_id_key UNIQUE (tenant_id, id));"
     "CREATE TABLE webhook_deliveries ("
     "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  message_seq bigint NOT NULL REFERENCES webhook_messages (seq),"
     "  endpoint_id text COLLATE \"C\" NOT NULL,"
     "  tenant_id text COLLATE \"C\" NOT NULL,"
     "  status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),"
     "  attempts bigint NOT NULL DEFAULT 0,"
     "  next_attempt_at bigint NOT NULL,"
     "  claimed text NOT NULL DEFAULT '',"
     "  claim_until bigint NOT NULL DEFAULT 0,"
     "  last_status bigint NOT NULL DEFAULT 0,"
     "  last_error text NOT NULL DEFAULT '',"
     "  created_at bigint NOT NULL,"
     "  updated_at bigint NOT NULL);"
     "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);"
     "CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);"
     "CREATE TABLE webhook_attempts ("
     "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  delivery_id bigint NOT NULL,"
     "  tenant_id text COLLATE \"C\" NOT NULL,"
     "  at bigint NOT NULL,"
     "  status bigint NOT NULL,"
     "  error text NOT NULL DEFAULT '',"
     "  latency_ms bigint NOT NULL,"
     "  response text NOT NULL DEFAULT '');"
     "CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);"
     "GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints TO gatehouse_tenant;"
     "GRANT SELECT, INSERT, UPDATE ON webhook_messages TO gatehouse_tenant;"
     "GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_deliveries TO gatehouse_tenant;"
     "GRANT SELECT, DELETE ON webhook_attempts TO gatehouse_tenant;"
     "GRANT SELECT, UPDATE ON webhook_endpoints, webhook_deliveries TO gatehouse_operator;"
     "GRANT SELECT ON webhook_messages TO gatehouse_operator;"
     "GRANT SELECT, INSERT ON webhook_attempts TO gatehouse_operator;"
     /* pg_dump --role=gatehouse_operator reads the sequences' state. */
     "GRANT SELECT ON SEQUENCE webhook_messages_seq_seq, webhook_deliveries_id_seq, "
     "webhook_attempts_id_seq TO gatehouse_operator;" TENANT_POLICY(
         "webhook_endpoints", "tenant_id") TENANT_POLICY("webhook_messages", "tenant_id")
         TENANT_POLICY("webhook_deliveries", "tenant_id")
             TENANT_POLICY("webhook_attempts", "tenant_id")},
    {8,
     /* As in SQLite: the node that wrote each audit event, '' for format
      * version 1. The table's grants (operator: SELECT, INSERT, DELETE;
      * tenant: SELECT) and its row policy (on tenant_id) cover the new
      * column as they are: nothing to grant. A constant default adds the
      * column without rewriting the table. */
     "ALTER TABLE audit_events ADD COLUMN node text COLLATE \"C\" NOT NULL DEFAULT '';"},
    {9,
     /* The PostgreSQL review. usage_batches: the ids of the usage batches
      * stored (gh_store_usage_add_once), so that a batch sent again after
      * a commit whose answer was lost is not added twice; operator-only,
      * kept 7 days. And every tenant policy made strict
      * (TENANT_POLICY_STRICT). SQLite's migration 9 does nothing. */
     "CREATE TABLE usage_batches ("
     "  id text COLLATE \"C\" PRIMARY KEY,"
     "  created_at bigint NOT NULL);"
     "CREATE INDEX usage_batches_by_created ON usage_batches (created_at);"
     "GRANT SELECT, INSERT, UPDATE, DELETE ON usage_batches TO "
     "gatehouse_operator;" TENANT_POLICY_STRICT("tenants", "id")
         TENANT_POLICY_STRICT("api_keys", "tenant_id") TENANT_POLICY_STRICT("usage", "tenant_id")
             TENANT_POLICY_STRICT("limit_events", "tenant_id") TENANT_POLICY_STRICT(
                 "audit_events", "tenant_id") TENANT_POLICY_STRICT("secrets", "tenant_id")
                 TENANT_POLICY_STRICT("webhook_endpoints", "tenant_id")
                     TENANT_POLICY_STRICT("webhook_messages", "tenant_id")
                         TENANT_POLICY_STRICT("webhook_deliveries", "tenant_id")
                             TENANT_POLICY_STRICT("webhook_attempts", "tenant_id")},
    {10,
     /* As in SQLite: a tenant's query without a time range walks its chain
      * through audit_events_chain_seq_key (pg_audit.c, query_sql), so
      * (tenant_id, rowid) goes, one index fewer for every row COPY adds;
      * the system tenant's rows get a partial index (its chain also holds
      * the events of no tenant). */
     "DROP INDEX IF EXISTS audit_events_by_tenant;"
     "CREATE INDEX audit_events_of_system ON audit_events (rowid) WHERE tenant_id = "
     "'system';"},
    {11,
     /* As in SQLite: the requests' own events (GH_STORE_AUDIT_REQUEST_ACTION,
      * most rows) leave the index on action, one B-tree entry fewer for
      * each (0.65 of 8.2 µs of the server's time per row COPY adds:
      * bench/RESULTS.md, 2026-11-23). A query for another action says so
      * as a constant (GH_AQ_OTHER_ACTION) and reads the partial index; one
      * for the requests' action matches most rows wherever it reads. */
     "DROP INDEX IF EXISTS audit_events_by_action;"
     "CREATE INDEX audit_events_by_action ON audit_events (action, rowid) WHERE action <> "
     "'" GH_STORE_AUDIT_REQUEST_ACTION "';"},
    {12,
     /* The audit append stores most bodies in the compact form (audit_body.h:
      * their front, which the columns hold, left out; 230 of a request
      * event's 445 bytes, about a tenth of the server's time per event). The
      * view gives every event's canonical body, the bytes its hash covers,
      * to readers of the table; security_invoker keeps the reader's row
      * policy, as if it read audit_events itself. */
     "CREATE VIEW audit_events_canonical WITH (security_invoker = true) AS "
     "SELECT " GH_STORE_AUDIT_CANONICAL_COLS " FROM audit_events;"
     "GRANT SELECT ON audit_events_canonical TO gatehouse_operator, gatehouse_tenant;"},
    {13,
     /* The compact form also leaves out the request_id and node members
      * (audit_body.h: a mark in their place, about 60 more of a request
      * event's bytes, 0.6 to 0.8 us of the server's time per event in
      * bench/pg_proxy.sh). The view puts them back; OR REPLACE keeps its
      * grants and security_invoker. */
     "CREATE OR REPLACE VIEW audit_events_canonical WITH (security_invoker = true) AS "
     "SELECT " GH_STORE_AUDIT_CANONICAL_COLS_13("chr") " FROM audit_events;"},
    {14,
     /* As in SQLite: the master key checks (src/secrets/secrets.c). Two
      * nodes whose first starts make a master key each, at once, both
      * record version 1's check; the primary key keeps the first, and the
      * other node, unable to unwrap it, refuses to start. Operator-only:
      * no tenant owns a master key. */
     "CREATE TABLE secrets_kek_checks ("
     "  version bigint PRIMARY KEY CHECK (version >= 1),"
     "  check_blob bytea NOT NULL,"
     "  created_at bigint NOT NULL);"
     "GRANT SELECT, INSERT ON secrets_kek_checks TO gatehouse_operator;"},
    {15,
     /* tenant_update is operator work (PATCH /v1/tenants: a suspension, a
      * plan), run as the operator; no [tenant] call writes a tenant row, so
      * the tenant role keeps SELECT only: a tenant's session can no longer
      * lift its own suspension or change its own plan, whatever SQL it is
      * made to run. */
     "REVOKE UPDATE ON tenants FROM gatehouse_tenant;"},
    {16,
     /* As in SQLite: webhook retention (gh_pg__hook_purge), operator work,
      * deletes old messages with their deliveries and attempts; the index
      * finds a message's deliveries for it and for the foreign key's check
      * of the message's delete (without it, a scan of the table per
      * message). UPDATE on one column of the messages only for the row
      * locks (FOR UPDATE needs it); the operator changes no message. */
     "CREATE INDEX webhook_deliveries_by_message ON webhook_deliveries (message_seq);"
     "GRANT DELETE ON webhook_messages, webhook_deliveries, webhook_attempts TO "
     "gatehouse_operator;"
     "GRANT UPDATE (deliveries) ON webhook_messages TO gatehouse_operator;"},
    {17,
     /* As in SQLite: a master key version made ahead of its rotation
      * (`rotate-master --prepare`) is checked like any but sealed under by
      * no node until the rotation puts it in use; the operator may change
      * that column only. */
     "ALTER TABLE secrets_kek_checks ADD COLUMN prepared boolean NOT NULL DEFAULT false;"
     "GRANT UPDATE (prepared) ON secrets_kek_checks TO gatehouse_operator;"},
    {18,
     /* `rotate-master --unprepare` forgets a prepared version's check. The
      * operator gets no DELETE on the table, which would let it forget a
      * check in use too (and a node with another key then record its
      * own): this function, run as the schema's owner, deletes only a
      * prepared one. (SQLite's migration 18 makes delivery ids never come
      * back; PostgreSQL's identity columns never reuse a value.) */
     "CREATE FUNCTION secrets_kek_unprepare(v bigint) RETURNS bigint LANGUAGE sql "
     "SECURITY DEFINER SET search_path = gatehouse, pg_temp AS "
     "'WITH gone AS (DELETE FROM secrets_kek_checks WHERE version = v AND prepared "
     "RETURNING 1) SELECT count(*) FROM gone';"
     "REVOKE ALL ON FUNCTION secrets_kek_unprepare(bigint) FROM PUBLIC;"
     "GRANT EXECUTE ON FUNCTION secrets_kek_unprepare(bigint) TO gatehouse_operator;"},
    {19,
     /* Usage retention (limits.usage_retention, gh_pg__usage_purge): the
      * operator deletes usage rows and limit events past it. A limit
      * event's purge reads by period. */
     "GRANT DELETE ON usage, limit_events TO gatehouse_operator;"
     "CREATE INDEX limit_events_by_period ON limit_events (period, id);"},
    {20,
     /* As in SQLite: a pending delivery of an endpoint an admin disabled
      * is paused, and the claim (GH_PG_HOOK_DUE) reads the due index past
      * paused = false only. The owner, under forced RLS and no policy of
      * its own, sees no row: the deliveries already waiting are paused as
      * the operator, who sees every tenant's. */
     "ALTER TABLE webhook_deliveries ADD COLUMN paused boolean NOT NULL DEFAULT false;"
     "DROP INDEX webhook_deliveries_due;"
     "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, paused, "
     "next_attempt_at);"
     "SET LOCAL ROLE gatehouse_operator;"
     "UPDATE webhook_deliveries SET paused = true WHERE status = 'pending' AND endpoint_id IN "
     "(SELECT id FROM webhook_endpoints WHERE status <> 'active');"
     "SET LOCAL ROLE gatehouse_owner;"},
    {21,
     /* As in SQLite: the report of an endpoint's disabling is made once
      * (gh_pg__hook_reports_claim); the operator has UPDATE on the table. */
     "ALTER TABLE webhook_endpoints ADD COLUMN report_after bigint NOT NULL DEFAULT 0;"
     "CREATE INDEX webhook_endpoints_reports ON webhook_endpoints (report_after) "
     "WHERE report_after > 0;"},
    {22,
     /* As in SQLite: an endpoint's paused deliveries, found at once; a
      * finished delivery is unpaused (as the operator: see 20). */
     "SET LOCAL ROLE gatehouse_operator;"
     "UPDATE webhook_deliveries SET paused = false WHERE paused AND status <> 'pending';"
     "SET LOCAL ROLE gatehouse_owner;"
     "CREATE INDEX webhook_deliveries_paused ON webhook_deliveries (endpoint_id, id) "
     "WHERE paused;"},
    {23,
     /* As in SQLite: an endpoint's revision, which an admin's update
      * checks (a constant default: no rewrite of the table), and the
      * trigger that moves it for a writer that does not (a node still on
      * an older build during a rolling upgrade). */
     "ALTER TABLE webhook_endpoints ADD COLUMN rev bigint NOT NULL DEFAULT 1 "
     "CHECK (rev >= 1);"
     "CREATE FUNCTION webhook_endpoints_rev() RETURNS trigger LANGUAGE plpgsql AS $$"
     "BEGIN "
     "IF NEW.rev = OLD.rev AND (NEW.url, NEW.description, NEW.events, NEW.public_key, "
     "NEW.secret_version, NEW.prev_version, NEW.prev_until, NEW.status, NEW.disabled_reason) "
     "IS DISTINCT FROM (OLD.url, OLD.description, OLD.events, OLD.public_key, "
     "OLD.secret_version, OLD.prev_version, OLD.prev_until, OLD.status, OLD.disabled_reason) "
     "THEN NEW.rev := OLD.rev + 1; END IF; "
     "RETURN NEW; "
     "END $$;"
     "REVOKE ALL ON FUNCTION webhook_endpoints_rev() FROM PUBLIC;"
     "CREATE TRIGGER webhook_endpoints_rev BEFORE UPDATE ON webhook_endpoints "
     "FOR EACH ROW EXECUTE FUNCTION webhook_endpoints_rev();"},
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The oldest server the migrations run on (PQserverVersion's form). */
#define GH_PG_SERVER_MIN 150000

/* A transaction under an advisory lock, READ COMMITTED whatever the
 * database's default: what it reads after the lock is read after the
 * holder's commit (two inits at once, or two nodes migrating). */
#define BEGIN_LOCKED(name)                                                                         \
    "BEGIN ISOLATION LEVEL READ COMMITTED;"                                                        \
    "SELECT pg_advisory_xact_lock(hashtext('" name "'));"
#define INIT_LOCKED    BEGIN_LOCKED("gatehouse.init")
#define MIGRATE_LOCKED BEGIN_LOCKED("gatehouse.migrate")

/* Runs constant SQL <sql> (several statements, nothing bound) on <db>. */
static int exec(PGconn *db, const char *sql, const char *what, struct gh_err *err)
{
    PGresult *r = PQexec(db, sql);
    int rc = GH_OK;

    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        rc = gh_err_set(err, NULL, 0, 0, "store: %s: %.300s", what, msg ? msg : PQerrorMessage(db));
        if (PQstatus(db) != CONNECTION_OK) rc = GH_STORE_UNAVAILABLE;
    }
    PQclear(r);
    return rc;
}

/* Runs the statement that <format_sql> (a SELECT format(...) with $1)
 * returns for <arg>: the server quotes the identifier (%I), we never do. */
static int exec_formatted(PGconn *db, const char *format_sql, const char *arg, const char *what,
                          struct gh_err *err)
{
    const char *v[1] = {arg};
    PGresult *r = PQexecParams(db, format_sql, 1, NULL, v, NULL, NULL, 0);
    int rc;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = gh_err_set(err, NULL, 0, 0, "store: %s: %.300s", what, PQerrorMessage(db));
        PQclear(r);
        return rc;
    }
    rc = exec(db, PQgetvalue(r, 0, 0), what, err);
    PQclear(r);
    return rc;
}

/* The version recorded in schema_migrations, in the current transaction. */
static int read_version(PGconn *db, int *version, struct gh_err *err)
{
    PGresult *r = PQexec(db, "SELECT coalesce(max(version), 0) FROM gatehouse.schema_migrations");
    int rc = GH_OK;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        rc = gh_err_set(err, NULL, 0, 0, "store: schema version: %.300s", PQerrorMessage(db));
    else
        *version = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* GH_ERROR when <login> exists and is a superuser or bypasses RLS: such a
 * login would read every tenant's rows in a transaction that forgot its
 * SET ROLE, which must fail closed instead (docs/postgres.md). */
static int login_ok(PGconn *db, const char *login, struct gh_err *err)
{
    const char *v[1] = {login};
    PGresult *r =
        PQexecParams(db, "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1", 1,
                     NULL, v, NULL, NULL, 0);
    int rc = GH_OK;

    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = gh_err_set(err, NULL, 0, 0, "store: init: %.300s", PQerrorMessage(db));
    else if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0)
        rc = gh_err_set(err, NULL, 0, 0,
                        "store: init: the login role %s is a superuser or bypasses row-level "
                        "security: the gateway needs a role of its own (docs/postgres.md)",
                        login);
    PQclear(r);
    return rc;
}

/* The roles, the login role's memberships and the schema: one transaction
 * under a lock, so two inits at once do not both try to create them. */
static int roles_and_schema(PGconn *db, const char *login, struct gh_err *err)
{
    int rc = login_ok(db, login, err);

    if (rc != GH_OK) return rc;
    rc = exec(db,
              INIT_LOCKED
              "DO $$ BEGIN"
              "  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_owner') THEN"
              "    CREATE ROLE gatehouse_owner NOLOGIN; END IF;"
              "  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_operator')"
              "  THEN CREATE ROLE gatehouse_operator NOLOGIN BYPASSRLS; END IF;"
              "  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_tenant') THEN"
              "    CREATE ROLE gatehouse_tenant NOLOGIN NOBYPASSRLS; END IF;"
              "END $$;"
              /* What an older init or a hand may have changed, set again. */
              "ALTER ROLE gatehouse_operator NOLOGIN BYPASSRLS;"
              "ALTER ROLE gatehouse_tenant NOLOGIN NOBYPASSRLS;"
              "CREATE SCHEMA IF NOT EXISTS gatehouse AUTHORIZATION gatehouse_owner;"
              "GRANT USAGE ON SCHEMA gatehouse TO gatehouse_operator, gatehouse_tenant;",
              "init", err);

    if (rc == GH_OK)
        rc = exec_formatted(db,
                            "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) "
                            "THEN format('ALTER ROLE %I NOINHERIT', $1::text) "
                            "ELSE format('CREATE ROLE %I LOGIN NOINHERIT', $1::text) END",
                            login, "init: login role", err);
    if (rc == GH_OK)
        rc = exec_formatted(db,
                            "SELECT format('GRANT gatehouse_operator, gatehouse_tenant TO %I', "
                            "$1::text)",
                            login, "init: login role", err);
    if (rc == GH_OK) return exec(db, "COMMIT", "init", err);
    exec(db, "ROLLBACK", "init", &(struct gh_err){0});
    return rc;
}

/* Applies the migration after the current version, if any, as the owner;
 * sets *done when the schema is up to date. */
static int step(PGconn *db, int *version, bool *done, struct gh_err *err)
{
    char record[128];
    int rc;

    rc = exec(db,
              MIGRATE_LOCKED "SET LOCAL ROLE gatehouse_owner;"
                             "SET LOCAL search_path = gatehouse;"
                             "CREATE TABLE IF NOT EXISTS schema_migrations ("
                             "  version integer PRIMARY KEY, applied_at bigint NOT NULL);"
                             "GRANT SELECT ON schema_migrations TO gatehouse_operator;",
              "migrate", err);
    if (rc != GH_OK) goto out;
    rc = read_version(db, version, err);
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
        rc = exec(db, "COMMIT", "migrate", err);
        return rc;
    }
    if (migrations[*version].version != *version + 1) {
        rc = gh_err_set(err, NULL, 0, 0, "store: migration list broken at %d",
                        migrations[*version].version);
        goto out;
    }
    rc = exec(db, migrations[*version].sql, "migration", err);
    if (rc != GH_OK) goto out;
    snprintf(record, sizeof(record),
             "INSERT INTO schema_migrations (version, applied_at) VALUES (%d, %lld)",
             migrations[*version].version, (long long)gh_wall_ms());
    rc = exec(db, record, "schema_migrations", err);
    if (rc != GH_OK) goto out;
    rc = exec(db, "COMMIT", "migrate", err);
    if (rc == GH_OK) (*version)++;
    return rc;
out:
    exec(db, "ROLLBACK", "migrate", &(struct gh_err){0});
    return rc;
}

/* Whether <db> is connected to database <want>: init over an admin URL
 * naming another database would make the schema where no gateway looks. */
static int same_database(PGconn *db, const char *want, struct gh_err *err)
{
    PGresult *r = PQexec(db, "SELECT current_database()");
    int rc = GH_OK;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        rc = gh_err_set(err, NULL, 0, 0, "store: cannot read the admin connection's database: %s",
                        PQerrorMessage(db));
    else if (strcmp(PQgetvalue(r, 0, 0), want) != 0)
        rc = gh_err_set(err, NULL, 0, 0,
                        "the admin URL reaches database \"%.64s\", but the config's store is "
                        "database \"%.64s\": point --admin-url at \"%.64s\"",
                        PQgetvalue(r, 0, 0), want, want);
    PQclear(r);
    return rc;
}

int gh_store_postgres_init(const char *admin_url, const char *want_db, const char *login,
                           int *applied, int *version, struct gh_err *err)
{
    PGconn *db = NULL;
    bool done = false;
    int rc, a = 0, v = 0;

    rc = gh_pg__connect(admin_url, GH_PG_APP, &db, err);
    if (rc != GH_OK) return rc;
    /* Migration 12's view keeps its reader's row policies (security_invoker),
     * which PostgreSQL has from 15: an older server is named here, before
     * any statement, not met halfway through the migrations. */
    if (PQserverVersion(db) < GH_PG_SERVER_MIN)
        rc = gh_err_set(err, NULL, 0, 0,
                        "store: PostgreSQL %d is too old: gatehouse needs 15 or newer "
                        "(docs/postgres.md)",
                        PQserverVersion(db) / 10000);
    if (rc == GH_OK && want_db != NULL) rc = same_database(db, want_db, err);
    if (rc == GH_OK) rc = roles_and_schema(db, login, err);
    while (rc == GH_OK && !done) {
        int before = v;
        rc = step(db, &v, &done, err);
        if (rc == GH_OK && v > before && !done) a++;
    }
    PQfinish(db);
    if (applied != NULL) *applied = a;
    if (version != NULL) *version = v;
    return rc;
}

/* The value of <keyword> in <url> into <out>: GH_OK, GH_DECLINED when the
 * URL does not set it (or it does not fit), GH_ERROR when it cannot be
 * parsed (the config's check has made that rare). */
static int url_option(const char *url, const char *keyword, char *out, size_t size,
                      struct gh_err *err)
{
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    int rc = GH_DECLINED;

    out[0] = '\0';
    if (opts == NULL) return gh_err_set(err, NULL, 0, 0, "postgres: the URL cannot be parsed");
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, keyword) != 0) continue;
        if (o->val != NULL && o->val[0] != '\0' && strlen(o->val) < size) {
            memcpy(out, o->val, strlen(o->val) + 1);
            rc = GH_OK;
        }
    }
    PQconninfoFree(opts);
    return rc;
}

int gh_store_postgres_url_user(const char *url, char *out, size_t size, struct gh_err *err)
{
    int rc = url_option(url, "user", out, size, err);

    if (rc == GH_DECLINED)
        rc = gh_err_set(err, NULL, 0, 0,
                        "postgres: the URL must name its user (postgresql://USER@...)");
    return rc;
}

int gh_store_postgres_url_dbname(const char *url, char *out, size_t size, struct gh_err *err)
{
    int rc = url_option(url, "dbname", out, size, err);

    /* libpq's default: the database named as the user. */
    return rc == GH_DECLINED ? gh_store_postgres_url_user(url, out, size, err) : rc;
}

int gh_store_postgres_url_anyone(const char *url, char **out, struct gh_err *err)
{
    /* The database the gateway reaches, named: without its user, a URL
     * that names none would reach the one named as whoever runs this. */
    char db[128];
    struct gh_pg_conninfo_edit e = {.drop_user = true, .dbname = db};
    int rc = gh_store_postgres_url_dbname(url, db, sizeof(db), err);

    return rc == GH_OK ? gh_pg__conninfo(url, &e, out, NULL, err) : rc;
}

/* Rewrites <err> (a failure to read the schema or take its roles) into
 * what to do about it. */
static int not_initialised(struct gh_err *err)
{
    char why[sizeof(err->msg)];

    snprintf(why, sizeof(why), "%s", err->msg);
    return gh_err_set(err, NULL, 0, 0,
                      "store: the PostgreSQL roles or schema are missing or not readable: run "
                      "`gatehouse postgres init` (%.200s)",
                      why);
}

/* The gateway's login role creates nothing (docs/postgres.md): it checks
 * that it is not a role that sees past row-level security, and that
 * `gatehouse postgres init` brought the schema to this version. */
int gh_pg__migrate(struct gh_store *st, int *applied, int *version, struct gh_err *err)
{
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc;

    *applied = 0;
    *version = 0;
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc == GH_ERROR) return not_initialised(err); /* no gatehouse_operator role */
    if (rc != GH_OK) return rc;
    rc = gh_pg__run(&tx, GH_PG_LOGIN_CHECK, NULL, &r, err);
    if (rc == GH_OK && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0)
        rc = gh_err_set(err, NULL, 0, 0,
                        "store: the login role of store.postgres is a superuser or bypasses "
                        "row-level security: give the gateway a role of its own "
                        "(docs/postgres.md)");
    PQclear(r);
    r = NULL;
    if (rc == GH_OK) {
        rc = gh_pg__run(&tx, GH_PG_MIGRATION_MAX, NULL, &r, err);
        if (rc == GH_ERROR) not_initialised(err);
    }
    if (rc == GH_OK) *version = (int)gh_pg__i64(r, 0, 0);
    PQclear(r);
    r = NULL;
    /* The audit append takes a batch's rowids as the last ones its session
     * drew (pg_audit.c insert_rows), and rowids are the commit order across
     * nodes: both hold only while the sequence gives each caller the next
     * value, none cached ahead. A sequence altered by hand is refused here
     * rather than found out by wrong rowids. */
    if (rc == GH_OK && *version >= 4) {
        rc = gh_pg__run(&tx, GH_PG_AUDIT_SEQ_CHECK, NULL, &r, err);
        if (rc == GH_OK &&
            (PQntuples(r) != 1 || gh_pg__i64(r, 0, 0) != 1 || gh_pg__i64(r, 0, 1) != 1))
            rc = gh_err_set(err, NULL, 0, 0,
                            "store: the sequence gatehouse.audit_events_rowid_seq must have "
                            "INCREMENT 1 and CACHE 1 (audit rowids are the commit order, "
                            "docs/postgres.md): found increment %s, cache %s",
                            PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "none",
                            PQntuples(r) == 1 ? PQgetvalue(r, 0, 1) : "none");
        PQclear(r);
    }
    rc = gh_pg__end(&tx, rc, err);
    if (rc != GH_OK) return rc;
    if (*version > NMIGRATIONS)
        return gh_err_set(err, NULL, 0, 0,
                          "store: the database schema (version %d) is newer than this gatehouse "
                          "(version %d)",
                          *version, NMIGRATIONS);
    if (*version < NMIGRATIONS)
        return gh_err_set(err, NULL, 0, 0,
                          "store: the database schema is at version %d, this gatehouse needs %d: "
                          "run `gatehouse postgres init`",
                          *version, NMIGRATIONS);
    return GH_OK;
}
