/* Gateway-issued tokens, served on the proxy listener before routing:
 *
 *   POST /oauth/token            client_credentials grant (RFC 6749 §4.4),
 *                                the client authenticated by a gatehouse API
 *                                key; answers a short-lived JWT signed with
 *                                the gateway's current key (ES256 or EdDSA)
 *   GET  /.well-known/jwks.json  the public keys, current and previous
 *
 * Keys live in the store and rotate on the auth service's schedule; every
 * node signs with the newest and publishes all keys whose tokens may still
 * be alive. Routes with `auth: jwt` or `any` accept these tokens; a token's
 * jti can be revoked through the admin API. */
#ifndef GH_AUTH_TOKENS_H
#define GH_AUTH_TOKENS_H

struct gh_req;

/* The stage: 1 = not ours (go on), 0 = answered, 2 = suspended. */
int gh_tokens_stage(struct gh_req *r);

#endif
