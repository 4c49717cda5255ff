/* Private to the admin API: what api.c's endpoint table hands a handler,
 * shared with the endpoint files that keep api.c from growing (api_audit.c).
 * Not for use outside src/admin/. */
#ifndef GH_ADMIN_API_CALL_H
#define GH_ADMIN_API_CALL_H

#include <jansson.h>

#include "auth/principal.h"
#include "core/err.h"
#include "core/str.h"
#include "http/parser.h"
#include "store/store.h"

struct gh_req;
struct gh_config;

#define MAX_SEGMENTS 8

enum access {
    ACCESS_ADMIN,    /* any key with role admin */
    ACCESS_OPERATOR, /* role admin on the system tenant */
    ACCESS_TENANT,   /* role admin on {tenant}, or an operator */
};

/* One admin API call: authenticated (<who>) and authorized for the row's
 * access level before the handler runs. */
struct call {
    struct gh_req *r;
    struct gh_store *st;
    const struct gh_config *cfg;
    struct gh_principal who;
    gh_str seg[MAX_SEGMENTS];
    size_t nseg;
    char tenant[GH_STORE_TENANT_ID_SIZE]; /* {tenant} */
    char key[GH_STORE_KEY_ID_SIZE];       /* {key} */
    char hook[GH_STORE_HOOK_ID_SIZE];     /* {w}: a webhook endpoint id */
    char delivery[24];                    /* {d}: a delivery id (digits) */
    json_t *body;                         /* parsed JSON body or NULL */
};

struct endpoint {
    enum gh_http_method method;
    const char *pattern; /* segments; "{t}" a tenant id, "{k}" a key id, "{w}" a webhook
                          * endpoint id, "{d}" a delivery id */
    enum access access;
    void (*handle)(struct call *c);
};

/* Answers with <doc> as compact JSON (takes ownership of <doc>). */
void gh_api_reply_json(struct call *c, int status, json_t *doc);
/* {"error": <code>, "message": <message>, "request_id": ...}; <message>
 * must never carry a secret. */
void gh_api_reply_error(struct call *c, int status, const char *code, const char *message);
/* The answer for a gh_store_* return code other than GH_OK. */
void gh_api_reply_store_error(struct call *c, int rc, const struct gh_err *err);

/* Body and query helpers; each answers (400) and returns false on bad
 * input. only_fields: the body has no member outside <allowed>.
 * str_field: *out is the string member <name> or NULL when absent.
 * query_value: ?<name>=value into <out> ("" when absent). page_params:
 * ?cursor= and ?limit= (1..200, default 50) into <page>. */
bool gh_api_only_fields(struct call *c, const char *const *allowed);
bool gh_api_str_field(struct call *c, const char *name, const char **out);
bool gh_api_query_value(struct call *c, const char *name, char *out, size_t size);
bool gh_api_page_params(struct call *c, struct gh_store_page *page, char *cursor, size_t csize);
/* A ?limit= value: "" leaves *n as it is; otherwise digits only, 1..200
 * (GH_STORE_LIST_MAX). False, without answering, when it is neither. */
bool gh_api_limit_value(const char *v, size_t *n);
/* {"items": <items>, "next_cursor": ...} (takes <items>). */
json_t *gh_api_page_doc(json_t *items, const struct gh_store_page *page);

#endif
