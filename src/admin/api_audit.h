/* The audit log's read endpoints on the admin API (docs/openapi.yaml):
 * GET /v1/audit (filtered pages), /v1/audit/export (a tenant's chain as
 * JSON lines, streamed), /v1/audit/checkpoints and /v1/audit/keys. Rows of
 * api.c's endpoint table; any admin may call them, and a tenant admin sees
 * only its own tenant's chain: the tenant is set in the store query itself,
 * never filtered afterwards. */
#ifndef GH_ADMIN_API_AUDIT_H
#define GH_ADMIN_API_AUDIT_H

struct call;

void gh_api_audit_list(struct call *c);
void gh_api_audit_export(struct call *c);
void gh_api_audit_checkpoints(struct call *c);
void gh_api_audit_keys(struct call *c);

#endif
