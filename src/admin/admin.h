/* The admin listener's endpoints (default 127.0.0.1:9901): health for now;
 * the admin API and /metrics join here. Endpoints are rows in one table. */
#ifndef GH_ADMIN_ADMIN_H
#define GH_ADMIN_ADMIN_H

struct gh_req;

/* Answers <req> from the admin endpoint table (404 when none matches).
 * Returns 2 when the request waits for its body (the stage suspends). */
int gh_admin_handle(struct gh_req *req);

#endif
