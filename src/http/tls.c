/* OpenSSL contexts for the listeners and the upstreams. */
#include "http/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* TLS 1.2 suites: forward secrecy and AEAD only (Mozilla "intermediate"
 * minus the DHE suites). TLS 1.3 suites are OpenSSL's defaults, all AEAD. */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static void openssl_reason(char *buf, size_t size)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, size);
    else
        snprintf(buf, size, "unknown error");
    ERR_clear_error();
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    /* We speak HTTP/1.1 only; a client offering only h2 gets no ALPN
     * answer and may fall back or abort, as RFC 7301 §3.2 allows. */
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen) break;
        if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Finds the context for an SNI name: exact first, then "*.rest" for the
 * name with its first label removed (RFC 6125 §6.4.3: one label only). */
static SSL_CTX *find_ctx(const struct gh_tls_server *t, const char *name)
{
    char lower[256];
    size_t n = strlen(name);
    const char *dot;

    if (n == 0 || n >= sizeof(lower)) return NULL;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    for (size_t i = 0; i < t->nnames; i++)
        if (strcmp(t->names[i].name, lower) == 0) return t->names[i].ctx;
    dot = strchr(lower, '.');
    if (dot == NULL) return NULL;
    for (size_t i = 0; i < t->nnames; i++) {
        const char *nm = t->names[i].name;
        if (nm[0] == '*' && strcmp(nm + 1, dot) == 0) return t->names[i].ctx;
    }
    return NULL;
}

static int sni_callback(SSL *ssl, int *alert, void *arg)
{
    struct gh_tls_server *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    SSL_CTX *ctx;

    if (name == NULL) return SSL_TLSEXT_ERR_OK;
    ctx = find_ctx(t, name);
    if (ctx && ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *new_server_ctx(const struct gh_config_cert *c, char *why, size_t whylen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) goto fail;
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1) {
        char r[200];
        openssl_reason(r, sizeof(r));
        snprintf(why, whylen, "cannot load certificate %s: %s", c->cert_file, r);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char r[200];
        openssl_reason(r, sizeof(r));
        snprintf(why, whylen, "cannot load key %s (or it does not match the certificate): %s",
                 c->key_file, r);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    return ctx;
fail:
    openssl_reason(why, whylen);
    SSL_CTX_free(ctx);
    return NULL;
}

static int add_name(struct gh_tls_server *t, const char *name, size_t len, SSL_CTX *ctx)
{
    struct gh_tls_cert_entry *n = realloc(t->names, (t->nnames + 1) * sizeof(*n));
    if (n == NULL) return -1;
    t->names = n;
    n[t->nnames].name = strndup(name, len);
    if (n[t->nnames].name == NULL) return -1;
    for (size_t i = 0; i < len; i++)
        n[t->nnames].name[i] = (char)tolower((unsigned char)n[t->nnames].name[i]);
    n[t->nnames].ctx = ctx;
    t->nnames++;
    return 0;
}

/* Adds the certificate's subjectAltName DNS entries as SNI names. */
static int add_names_from_cert(struct gh_tls_server *t, SSL_CTX *ctx)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    GENERAL_NAMES *sans;
    int rc = 0;

    if (x == NULL) return 0;
    sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (sans == NULL) return 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(sans) && rc == 0; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type != GEN_DNS) continue;
        const unsigned char *p = ASN1_STRING_get0_data(gn->d.dNSName);
        int len = ASN1_STRING_length(gn->d.dNSName);
        if (len > 0 && len < 256 && memchr(p, 0, (size_t)len) == NULL)
            rc = add_name(t, (const char *)p, (size_t)len, ctx);
    }
    GENERAL_NAMES_free(sans);
    return rc;
}

/* The certificate's notAfter as Unix seconds, or INT64_MAX when unreadable
 * (read once per context, for the certificate expiry metric). */
static int64_t cert_not_after(SSL_CTX *ctx)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    const ASN1_TIME *t = x ? X509_get0_notAfter(x) : NULL;
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) return INT64_MAX;
    return (int64_t)timegm(&tm);
}

struct gh_tls_server *gh_tls_server_new(const struct gh_config *cfg,
                                        const struct gh_config_listen *l, struct gh_err *err)
{
    struct gh_tls_server *t = calloc(1, sizeof(*t));
    char why[400];

    if (t == NULL) goto oom;
    t->ctxs = calloc(l->ncerts, sizeof(SSL_CTX *));
    if (t->ctxs == NULL) goto oom;
    for (size_t i = 0; i < l->ncerts; i++) {
        const struct gh_config_cert *c = &l->certs[i];
        SSL_CTX *ctx = new_server_ctx(c, why, sizeof(why));
        if (ctx == NULL) {
            gh_err_set(err, cfg->file, c->pos.line, c->pos.col, "in listen %s: %s", l->addr.text,
                       why);
            gh_tls_server_free(t);
            return NULL;
        }
        t->ctxs[t->nctxs++] = ctx;
        if (i == 0 || cert_not_after(ctx) < t->not_after) t->not_after = cert_not_after(ctx);
        if (c->nnames > 0) {
            for (size_t k = 0; k < c->nnames; k++)
                if (add_name(t, c->names[k], strlen(c->names[k]), ctx) != 0) goto oom;
        } else if (add_names_from_cert(t, ctx) != 0) {
            goto oom;
        }
    }
    t->default_ctx = t->ctxs[0];
    /* The callback lives on the context a connection starts with. */
    for (size_t i = 0; i < t->nctxs; i++) {
        SSL_CTX_set_tlsext_servername_callback(t->ctxs[i], sni_callback);
        SSL_CTX_set_tlsext_servername_arg(t->ctxs[i], t);
    }
    return t;
oom:
    gh_tls_server_free(t);
    gh_err_set(err, cfg->file, l->pos.line, l->pos.col, "out of memory building TLS contexts");
    return NULL;
}

void gh_tls_server_free(struct gh_tls_server *t)
{
    if (t == NULL) return;
    for (size_t i = 0; i < t->nctxs; i++)
        SSL_CTX_free(t->ctxs[i]);
    for (size_t i = 0; i < t->nnames; i++)
        free(t->names[i].name);
    free(t->names);
    free(t->ctxs);
    free(t);
}

SSL *gh_tls_server_ssl(struct gh_tls_server *t, int fd)
{
    SSL *ssl = SSL_new(t->default_ctx);
    if (ssl == NULL) return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

SSL_CTX *gh_tls_client_ctx_new(const struct gh_config *cfg, const struct gh_config_upstream *u,
                               struct gh_err *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[300];

    if (ctx == NULL) goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) goto fail;
    if (u->tls.verify) {
        int ok = u->tls.ca_file ? SSL_CTX_load_verify_locations(ctx, u->tls.ca_file, NULL)
                                : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) goto fail;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (u->tls.cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, u->tls.cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, u->tls.key_file, SSL_FILETYPE_PEM) != 1)
            goto fail;
    }
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    return ctx;
fail:
    openssl_reason(why, sizeof(why));
    SSL_CTX_free(ctx);
    gh_err_set(err, cfg->file, u->pos.line, u->pos.col, "in upstreams.%s.tls: %s", u->name, why);
    return NULL;
}

static bool is_ip_literal(const char *host)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
}

SSL *gh_tls_client_ssl(SSL_CTX *ctx, const struct gh_config_upstream *u, const char *host, int fd)
{
    SSL *ssl = SSL_new(ctx);
    const char *name = u->tls.sni ? u->tls.sni : host;

    if (ssl == NULL) return NULL;
    if (SSL_set_fd(ssl, fd) != 1) goto fail;
    SSL_set_connect_state(ssl);
    if (name && name[0] && !is_ip_literal(name)) {
        if (SSL_set_tlsext_host_name(ssl, name) != 1) goto fail;
        if (u->tls.verify && SSL_set1_host(ssl, name) != 1) goto fail;
    } else if (name && name[0] && u->tls.verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1) goto fail;
    }
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}
