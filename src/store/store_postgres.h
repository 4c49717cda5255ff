/* What only the PostgreSQL store has: creating its roles, schema and policies
 * (`gatehouse postgres init`, docs/postgres.md). Everything else goes through
 * store.h like any engine.
 *
 * The gateway's own connection (the login role of store.postgres) may not
 * create or alter anything: gh_store_migrate() on PostgreSQL only checks that
 * the schema is at this gatehouse's version and refuses to go on otherwise.
 * gh_store_postgres_init() does the work, over a connection that may create
 * roles and grant BYPASSRLS (a superuser's). */
#ifndef GH_STORE_STORE_POSTGRES_H
#define GH_STORE_STORE_POSTGRES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

/* Over <admin_url>: creates the roles gatehouse_owner, gatehouse_operator
 * and gatehouse_tenant (when missing), the login role <login> (when missing;
 * made NOINHERIT and a member of the operator and tenant roles either way),
 * the schema gatehouse, and applies the missing migrations as
 * gatehouse_owner, each in its own transaction with its tables, grants and
 * row-level security policies. Idempotent: a second run changes nothing and
 * applies no migration. Sets *applied and *version (may be NULL). With
 * <want_db> (may be NULL), refuses first unless <admin_url> reaches that
 * database: the config's (gh_store_postgres_url_dbname), so that a typo in
 * the admin URL does not make the schema where no gateway looks. GH_OK;
 * GH_STORE_UNAVAILABLE when the server cannot be reached; GH_ERROR. */
int gh_store_postgres_init(const char *admin_url, const char *want_db, const char *login,
                           int *applied, int *version, struct gh_err *err);

/* How the audit appends of the PostgreSQL store <st> went so far: in the two
 * round trips of one script (*scripted: the script reached the server), or
 * the long way (*long_way: a batch sent again, checkpoints of events stored
 * before, a batch of checkpoints only, or one the script gave back). An
 * append that could not begin (no server) is in neither. For tests and
 * benchmarks. */
void gh_store_postgres_audit_ways(struct gh_store *st, uint64_t *scripted, uint64_t *long_way);

/* Copies the user name of the libpq URL or conninfo <url> into <out> (<size>
 * bytes). GH_ERROR when <url> cannot be parsed or names no user. */
int gh_store_postgres_url_user(const char *url, char *out, size_t size, struct gh_err *err);

/* The same for the database name of <url> (libpq's default when it names
 * none: the user's name). */
int gh_store_postgres_url_dbname(const char *url, char *out, size_t size, struct gh_err *err);

/* The connection of <url> as whoever runs the command: <url> without its
 * user and password, so libpq's defaults apply (PGUSER, PGPASSWORD,
 * ~/.pgpass, the operating system's user name: `sudo -u postgres gatehouse
 * postgres init -c FILE`), to the database <url> reaches (named, so that a
 * URL naming none still means its user's, not the runner's). Sets *out to
 * a conninfo string (free() it). */
int gh_store_postgres_url_anyone(const char *url, char **out, struct gh_err *err);

/* A backup of the PostgreSQL store <st> (`gatehouse backup`): opens a
 * REPEATABLE READ READ ONLY transaction as gatehouse_operator, exports its
 * snapshot, calls <count_cb> with every table's row count and <head_cb> with
 * every audit chain's head (either may be NULL), then runs pg_dump
 * --snapshot --schema=gatehouse --format=custom --role=gatehouse_operator
 * into the new file <path> (created 0600) while the transaction stays
 * open: the dump, the counts and the heads are the store as of one
 * instant, while writers go on. pg_dump is the server's major version's
 * (pg_int.h gh_pg__tool); the URL's password reaches it in its environment,
 * never on its command line. <server_version> (<size> bytes, may be NULL)
 * gets the server's version. */
int gh_store_postgres_backup(struct gh_store *st, const char *path, gh_store_count_cb count_cb,
                             gh_store_audit_row_cb head_cb, void *arg, char *server_version,
                             size_t size, struct gh_err *err);

/* A restore drill's scratch database: a new database gatehouse_drill_<16
 * hex digits> on the server of <admin_url>, created there (template0) over
 * that connection, into which pg_restore --single-transaction
 * --exit-on-error restores the dump <dump> as the admin role (owners,
 * grants and policies as dumped: roles are the cluster's). Always sets *out
 * (also on failure): hand it to gh_store_postgres_drill_drop(), which
 * drops the database when it was created and frees *out.
 * gh_store_postgres_drill_url() is <store_url> pointed at that database
 * (the same login role: the checks go through the store like the gateway). */
struct gh_store_postgres_drill;
int gh_store_postgres_drill_restore(const char *admin_url, const char *store_url, const char *dump,
                                    struct gh_store_postgres_drill **out, struct gh_err *err);
const char *gh_store_postgres_drill_url(const struct gh_store_postgres_drill *d);
const char *gh_store_postgres_drill_name(const struct gh_store_postgres_drill *d);
/* Whether the database was created (and so is there to drop). */
bool gh_store_postgres_drill_created(const struct gh_store_postgres_drill *d);
/* GH_ERROR (with the reason) when the database could not be dropped. */
int gh_store_postgres_drill_drop(struct gh_store_postgres_drill *d, struct gh_err *err);

#endif
