/* Plain and TLS socket I/O with one interface. */
#include "http/sock.h"

#include <errno.h>
#include <openssl/err.h>
#include <unistd.h>

static void kick_if_pending(struct gh_sock *s);

void gh_sock_init(struct gh_sock *s, struct event_base *base, int fd, event_callback_fn cb,
                  void *arg)
{
    s->fd = fd;
    s->ssl = NULL;
    s->want = 0;
    s->rd_on = s->wr_on = false;
    s->handshake_done = false;
    s->err = 0;
    event_assign(&s->ev_read, base, fd, EV_READ | EV_PERSIST, cb, arg);
    event_assign(&s->ev_write, base, fd, EV_WRITE | EV_PERSIST, cb, arg);
}

void gh_sock_close(struct gh_sock *s)
{
    if (s->fd < 0) return;
    if (s->rd_on) event_del(&s->ev_read);
    if (s->wr_on) event_del(&s->ev_write);
    s->rd_on = s->wr_on = false;
    if (s->ssl) {
        /* A close_notify is polite but must not block: one attempt only. */
        if (s->handshake_done) SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    close(s->fd);
    s->fd = -1;
}

/* Bytes OpenSSL already pulled off the socket make no socket event: a
 * reader that paused (backpressure) or read less than a record would wait
 * forever. Run the read callback again while such bytes are there. */
static void kick_if_pending(struct gh_sock *s)
{
    if (s->ssl && s->rd_on && SSL_pending(s->ssl) > 0) event_active(&s->ev_read, EV_READ, 0);
}

void gh_sock_want_read(struct gh_sock *s, bool on)
{
    if (on == s->rd_on) {
        if (on) kick_if_pending(s);
        return;
    }
    s->rd_on = on;
    if (on) {
        event_add(&s->ev_read, NULL);
        kick_if_pending(s);
    } else {
        event_del(&s->ev_read);
    }
}

void gh_sock_want_write(struct gh_sock *s, bool on)
{
    if (on == s->wr_on) return;
    s->wr_on = on;
    if (on)
        event_add(&s->ev_write, NULL);
    else
        event_del(&s->ev_write);
}

/* Maps an SSL_get_error() result to our codes. */
static ssize_t tls_result(struct gh_sock *s, int rc)
{
    int e = SSL_get_error(s->ssl, rc);
    switch (e) {
    case SSL_ERROR_WANT_READ: s->want = GH_WANT_READ; return GH_SOCK_AGAIN;
    case SSL_ERROR_WANT_WRITE: s->want = GH_WANT_WRITE; return GH_SOCK_AGAIN;
    case SSL_ERROR_ZERO_RETURN: return GH_SOCK_EOF;
    case SSL_ERROR_SYSCALL:
        s->err = errno ? errno : ECONNRESET;
        ERR_clear_error();
        /* OpenSSL 3 reports an EOF without close_notify as SSL_ERROR_SSL
         * with SSL_R_UNEXPECTED_EOF_WHILE_READING unless told otherwise;
         * a bare SYSCALL with errno 0 is the same thing. */
        return errno == 0 ? GH_SOCK_EOF : GH_SOCK_ERR;
    default:
        s->err = -1;
        ERR_clear_error();
        return GH_SOCK_ERR;
    }
}

ssize_t gh_sock_read(struct gh_sock *s, char *buf, size_t n)
{
    if (s->ssl == NULL) {
        ssize_t r = read(s->fd, buf, n);
        if (r > 0) return r;
        if (r == 0) return GH_SOCK_EOF;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            s->want = GH_WANT_READ;
            return GH_SOCK_AGAIN;
        }
        s->err = errno;
        return GH_SOCK_ERR;
    }
    errno = 0;
    int rc = SSL_read(s->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (rc > 0) {
        s->handshake_done = true;
        kick_if_pending(s);
        return rc;
    }
    return tls_result(s, rc);
}

ssize_t gh_sock_write(struct gh_sock *s, const char *buf, size_t n)
{
    if (s->ssl == NULL) {
        ssize_t r = write(s->fd, buf, n);
        if (r >= 0) return r;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            s->want = GH_WANT_WRITE;
            return GH_SOCK_AGAIN;
        }
        s->err = errno;
        return GH_SOCK_ERR;
    }
    errno = 0;
    int rc = SSL_write(s->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (rc > 0) return rc;
    return tls_result(s, rc);
}

int gh_sock_handshake(struct gh_sock *s)
{
    errno = 0;
    int rc = SSL_do_handshake(s->ssl);
    if (rc == 1) {
        s->handshake_done = true;
        return 0;
    }
    ssize_t r = tls_result(s, rc);
    return r == GH_SOCK_AGAIN ? GH_SOCK_AGAIN : GH_SOCK_ERR;
}
