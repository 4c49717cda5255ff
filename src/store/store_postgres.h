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

#include <stddef.h>

#include "core/err.h"

/* Over <admin_url>: creates the roles gatehouse_owner, gatehouse_operator
 * and gatehouse_tenant (when missing), the login role <login> (when missing;
 * made NOINHERIT and a member of the operator and tenant roles either way),
 * the schema gatehouse, and applies the missing migrations as
 * gatehouse_owner, each in its own transaction with its tables, grants and
 * row-level security policies. Idempotent: a second run changes nothing and
 * applies no migration. Sets *applied and *version (may be NULL). GH_OK;
 * GH_STORE_UNAVAILABLE when the server cannot be reached; GH_ERROR. */
int gh_store_postgres_init(const char *admin_url, const char *login, int *applied, int *version,
                           struct gh_err *err);

/* Copies the user name of the libpq URL or conninfo <url> into <out> (<size>
 * bytes). GH_ERROR when <url> cannot be parsed or names no user. */
int gh_store_postgres_url_user(const char *url, char *out, size_t size, struct gh_err *err);

/* The connection of <url> as whoever runs the command: <url> without its
 * user and password, so libpq's defaults apply (PGUSER, PGPASSWORD,
 * ~/.pgpass, the operating system's user name: `sudo -u postgres gatehouse
 * postgres init -c FILE`). Sets *out to a conninfo string (free() it). */
int gh_store_postgres_url_anyone(const char *url, char **out, struct gh_err *err);

#endif
