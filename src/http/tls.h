/* TLS contexts built from the configuration: one server side per TLS
 * listener (several certificates chosen by SNI) and one client side per
 * upstream that speaks TLS. Built by the main thread when a config is loaded
 * (so a SIGHUP reloads certificates), then shared read-only by workers. */
#ifndef GH_HTTP_TLS_H
#define GH_HTTP_TLS_H

#include <openssl/ssl.h>

#include "config/config.h"
#include "core/err.h"

struct gh_tls_cert_entry {
    char *name; /* lower case; "*.example.com" keeps its star */
    SSL_CTX *ctx;
};

struct gh_tls_server {
    SSL_CTX *default_ctx; /* the first certificate; owns nothing extra */
    SSL_CTX **ctxs;       /* one per certificate */
    size_t nctxs;
    struct gh_tls_cert_entry *names; /* SNI table */
    size_t nnames;
    int64_t not_after; /* the soonest notAfter of its certificates, Unix seconds (metrics) */
};

/* Builds the server contexts for <l>: TLS 1.2 and 1.3 only, modern AEAD
 * ciphers, ALPN http/1.1, no renegotiation, no compression, session tickets.
 * Returns NULL with <err> filled (file:line:col of the certificate entry). */
struct gh_tls_server *gh_tls_server_new(const struct gh_config *cfg,
                                        const struct gh_config_listen *l, struct gh_err *err);
void gh_tls_server_free(struct gh_tls_server *t);

/* A new server-side SSL for an accepted connection, or NULL. */
SSL *gh_tls_server_ssl(struct gh_tls_server *t, int fd);

/* Client context for an upstream: verification against ca_file (or the
 * system store), optional client certificate. NULL with <err> on failure. */
SSL_CTX *gh_tls_client_ctx_new(const struct gh_config *cfg, const struct gh_config_upstream *u,
                               struct gh_err *err);

/* A new client-side SSL to <host> (SNI and certificate name check unless
 * <host> is an IP literal or verification is off), or NULL. */
SSL *gh_tls_client_ssl(SSL_CTX *ctx, const struct gh_config_upstream *u, const char *host, int fd);

#endif
