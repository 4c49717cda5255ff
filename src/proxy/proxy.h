/* The proxy handler: forwards a routed request to its upstream and streams
 * the response back, with backpressure both ways (a full output buffer stops
 * reading the other side; nothing is buffered whole).
 *
 * The client connection calls in when its socket has news; the proxy calls
 * the connection back to write and to finish. */
#ifndef GH_PROXY_PROXY_H
#define GH_PROXY_PROXY_H

#include <event2/event.h>
#include <stdbool.h>

struct gh_req;
struct gh_upconn;

/* Starts forwarding <req> (route set). Answers errors itself. */
void gh_proxy_start(struct gh_req *req);
/* New bytes in conn->in for the request body (or EOF seen). */
void gh_proxy_on_client_input(struct gh_req *req);
/* conn->out has room again. */
void gh_proxy_on_client_drained(struct gh_req *req);
/* A phase deadline passed (connect, response head, idle, total). */
void gh_proxy_on_timeout(struct gh_req *req);
/* The client is gone: drop the upstream side. */
void gh_proxy_abort(struct gh_req *req);
/* The audit writer answered for a response head held in strict mode:
 * relay it (<ok>), or answer 503 audit_unavailable. */
void gh_proxy_audit_done(struct gh_req *req, bool ok);
/* Deadline of the current upstream phase (monotonic ns), 0 when none. */
uint64_t gh_proxy_deadline(const struct gh_req *req);

/* Event callback of upstream connections. */
void gh_proxy_upconn_event(evutil_socket_t fd, short what, void *arg);

#endif
