/* POST /oauth/token and GET /.well-known/jwks.json. */
#include "auth/tokens.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/request.h"
#include "auth/authn.h"
#include "auth/jwt.h"
#include "auth/keydir.h"
#include "core/clock.h"
#include "core/worker.h"
#include "http/conn.h"
#include "store/store.h"

#define TOKEN_MAX_BODY 4096

static const char no_store[] = "Cache-Control: no-store\r\nPragma: no-cache\r\n";

/* RFC 6749 §5.2: errors are {"error": code}; ours also carry request_id. */
static void oauth_error(struct gh_req *r, int status, const char *code)
{
    gh_conn_reply_error_ex(r->conn, status, code, false, no_store);
}

/* Decodes an application/x-www-form-urlencoded value in place ('+' is a
 * space, %XX a byte). Returns false on a malformed escape or a control byte. */
static bool form_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '+') {
            *o++ = ' ';
        } else if (*p == '%') {
            int hi, lo;
            if (!p[1] || !p[2]) return false;
            hi = p[1] <= '9' ? p[1] - '0' : (p[1] | 32) - 'a' + 10;
            lo = p[2] <= '9' ? p[2] - '0' : (p[2] | 32) - 'a' + 10;
            if (hi < 0 || hi > 15 || lo < 0 || lo > 15) return false;
            *o++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *o++ = *p;
        }
        if ((unsigned char)o[-1] < 0x20) return false;
    }
    *o = '\0';
    return true;
}

/* The value of form field <name> in <form> (decoded copy in <out>); false
 * when absent, repeated (RFC 6749 §3.2: parameters must not repeat) or bad. */
static bool form_field(gh_str form, const char *name, char *out, size_t size, bool *bad)
{
    size_t nl = strlen(name), i = 0;
    bool found = false;
    while (i < form.len) {
        size_t e = i;
        while (e < form.len && form.ptr[e] != '&')
            e++;
        if (e - i > nl && memcmp(form.ptr + i, name, nl) == 0 && form.ptr[i + nl] == '=') {
            size_t vl = e - i - nl - 1;
            if (found || vl >= size) {
                *bad = true;
                return false;
            }
            memcpy(out, form.ptr + i + nl + 1, vl);
            out[vl] = '\0';
            if (!form_decode(out)) {
                *bad = true;
                return false;
            }
            found = true;
        }
        i = e + 1;
    }
    return found;
}

static void serve_jwks(struct gh_req *r)
{
    const struct gh_keydir *d = r->conn->worker->keydir;
    gh_conn_reply_ex(r->conn, 200, "application/json", d->own_keys_json, d->own_keys_json_len,
                     "Cache-Control: public, max-age=300\r\n");
}

static void issue(struct gh_req *r, gh_str body)
{
    struct gh_worker *w = r->conn->worker;
    const struct gh_config_tokens *tc = &r->snap->cfg->auth.tokens;
    const struct gh_principal *p = &r->principal;
    char grant[64], scope[1025], jti[24];
    bool bad = false, has_scope;
    struct gh_err err = {0};
    int64_t now = (int64_t)(gh_wall_ms() / 1000);

    if (!form_field(body, "grant_type", grant, sizeof(grant), &bad) || bad) {
        oauth_error(r, 400, "invalid_request");
        return;
    }
    if (strcmp(grant, "client_credentials") != 0) {
        oauth_error(r, 400, "unsupported_grant_type");
        return;
    }
    has_scope = form_field(body, "scope", scope, sizeof(scope), &bad);
    if (bad) {
        oauth_error(r, 400, "invalid_request");
        return;
    }
    if (has_scope) {
        /* A token may narrow the key's scopes, never widen them. */
        for (char *t = strtok(scope, " "); t; t = strtok(NULL, " "))
            if (!gh_principal_list_has(p->scopes, gh_str_cstr(t))) {
                oauth_error(r, 400, "invalid_scope");
                return;
            }
        /* strtok cut the string: rebuild it from the request. */
        form_field(body, "scope", scope, sizeof(scope), &bad);
    } else {
        snprintf(scope, sizeof(scope), "%s", p->scopes);
    }
    if (w->keydir->signer == NULL) {
        gh_conn_reply_error_ex(r->conn, 503, "signing_key_unavailable", false, no_store);
        return;
    }
    memcpy(jti, "tok_", 4);
    if (gh_store_random_base62(jti + 4, 16, &err) != GH_OK) {
        gh_conn_reply_error_ex(r->conn, 500, "internal_error", false, no_store);
        return;
    }
    memcpy(r->au_jti, jti, sizeof(r->au_jti)); /* for its audit event */
    json_t *roles = json_array();
    for (const char *s = p->roles; *s;) {
        const char *e = strchr(s, ' ');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        json_array_append_new(roles, json_stringn(s, n));
        if (!e) break;
        s = e + 1;
    }
    int64_t ttl = (int64_t)(tc->ttl_ms / 1000);
    /* Not past its key's expiry: a token is its key's (authn.c checks the
     * key at every use; this keeps `exp` and `expires_in` honest). */
    const struct gh_keydir_entry *key = gh_keydir_find(w->keydir, gh_str_cstr(p->key_id));
    if (key != NULL && key->expires_at > 0 && now + ttl > key->expires_at / 1000)
        ttl = key->expires_at / 1000 > now ? key->expires_at / 1000 - now : 1;
    json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:s}", "iss", tc->issuer, "sub",
                               p->subject, "tenant", p->tenant, "scope", scope, "roles", roles,
                               "iat", (json_int_t)now, "exp", (json_int_t)(now + ttl), "jti", jti);
    char *token = claims ? gh_jwt_sign(w->keydir->signer, claims, &err) : NULL;
    json_decref(claims);
    if (token == NULL) {
        gh_conn_reply_error_ex(r->conn, 500, "internal_error", false, no_store);
        return;
    }
    json_t *resp = json_pack("{s:s, s:s, s:I, s:s}", "access_token", token, "token_type", "Bearer",
                             "expires_in", (json_int_t)ttl, "scope", scope);
    char *text = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
    OPENSSL_cleanse(token, strlen(token));
    free(token);
    json_decref(resp);
    if (text == NULL) {
        gh_conn_reply_error_ex(r->conn, 500, "internal_error", false, no_store);
        return;
    }
    gh_conn_reply_ex(r->conn, 200, "application/json", text, strlen(text), no_store);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
}

int gh_tokens_stage(struct gh_req *r)
{
    gh_str path = r->head.path, body;
    int rc;

    if (gh_str_eq(path, GH_STR_LIT("/.well-known/jwks.json"))) {
        if (r->head.method_id != GH_HTTP_GET && r->head.method_id != GH_HTTP_HEAD) {
            gh_conn_reply_error_ex(r->conn, 405, "method_not_allowed", false,
                                   "Allow: GET, HEAD\r\n");
            return 0;
        }
        serve_jwks(r);
        return 0;
    }
    if (!gh_str_eq(path, GH_STR_LIT("/oauth/token"))) return 1;
    if (r->head.method_id != GH_HTTP_POST) {
        gh_conn_reply_error_ex(r->conn, 405, "method_not_allowed", false, "Allow: POST\r\n");
        return 0;
    }
    rc = gh_conn_collect_body(r, TOKEN_MAX_BODY, &body);
    if (rc != 1) return rc;
    rc = gh_authn_api_key(r); /* may suspend for Argon2 and run this stage again */
    if (rc != 1) return rc;
    gh_audit_token_begin(r); /* token.issue is written with the answer */
    issue(r, body);
    return 0;
}
