/* The admin API: /v1/... endpoints (see api.c for the table and
 * docs/openapi.yaml for the contract). */
#ifndef GH_ADMIN_API_H
#define GH_ADMIN_API_H

#include <stdbool.h>

#include "core/str.h"

struct gh_req;

/* Answers <req> (a /v1/ path) with <body> (the whole request body, maybe
 * empty). Always answers; returns 0. */
int gh_admin_api_handle(struct gh_req *req, gh_str body);

/* Checks that <req> carries an operator's credential, as the operator-only
 * /v1 endpoints ask (an API key with role admin on the system tenant).
 * Returns true, or false after answering 401 or 403. Blocking store calls
 * may happen: admin thread only. */
bool gh_admin_api_operator(struct gh_req *req);

#endif
