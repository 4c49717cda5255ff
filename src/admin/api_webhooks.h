/* Outbound webhooks on the admin API (docs/webhooks.md, docs/openapi.yaml):
 * endpoints of a tenant (create, list, get, change, delete, rotate the
 * signing secret), their deliveries with the attempt history, replay, and
 * POST /v1/events, where services publish events for a tenant. Rows of
 * api.c's endpoint table; a tenant admin reaches only its own tenant
 * (another tenant's objects answer 404), operators reach all. */
#ifndef GH_ADMIN_API_WEBHOOKS_H
#define GH_ADMIN_API_WEBHOOKS_H

struct call;

void gh_api_hook_create(struct call *c);
void gh_api_hook_list(struct call *c);
void gh_api_hook_get(struct call *c);
void gh_api_hook_patch(struct call *c);
void gh_api_hook_delete(struct call *c);
void gh_api_hook_rotate(struct call *c);
void gh_api_hook_deliveries(struct call *c);
void gh_api_hook_delivery(struct call *c);
void gh_api_hook_replay(struct call *c);
void gh_api_events_publish(struct call *c);

#endif
