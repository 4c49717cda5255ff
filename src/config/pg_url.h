/* The store's PostgreSQL URL, checked when the config is loaded, so that
 * `gatehouse check` (and a reload) catches what libpq would refuse only at
 * the first connection: an unknown parameter (`sslmod`), a malformed URL,
 * or a value libpq does not know for the parameters that take a fixed set
 * (`target_session_attrs=read-writ`). The connection itself is not tried.
 *
 * The message never repeats a value from the URL: of what libpq's own
 * message quotes, only a parameter's name is kept ("sslmod"); a value, or
 * the whole URI, which may hold the password (in the user information or
 * as password=), is written "...". */
#ifndef GH_CONFIG_PG_URL_H
#define GH_CONFIG_PG_URL_H

#include <stddef.h>

/* 0 when libpq accepts <url>; else -1 with the reason in <why>. */
int gh_config_pg_url_check(const char *url, char *why, size_t whylen);

#endif
