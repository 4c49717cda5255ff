/* A non-blocking socket, plain or TLS, with its two libevent events.
 *
 * gh_sock_read/gh_sock_write hide the TLS state machine: they return bytes
 * moved, or one of the GH_SOCK_* codes below. With TLS, a read may need the
 * socket to be writable (and a write readable); <want> says which event the
 * caller must wait for before calling again. */
#ifndef GH_HTTP_SOCK_H
#define GH_HTTP_SOCK_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum {
    GH_SOCK_AGAIN = -1, /* would block; wait for sock->want */
    GH_SOCK_EOF = -2,   /* orderly close by the peer */
    GH_SOCK_ERR = -3,   /* reset or other error; errno-like cause in sock->err */
};

enum { GH_WANT_READ = 1, GH_WANT_WRITE = 2 };

struct gh_sock {
    int fd;
    SSL *ssl;          /* NULL for plain TCP */
    uint8_t want;      /* after GH_SOCK_AGAIN: GH_WANT_READ or GH_WANT_WRITE */
    bool rd_on, wr_on; /* whether ev_read / ev_write are added */
    bool handshake_done;
    int err; /* last errno, or -1 for a TLS protocol error */
    struct event ev_read;
    struct event ev_write;
};

/* Binds <fd> and its events to <base>; <cb> gets <arg> for both events. */
void gh_sock_init(struct gh_sock *s, struct event_base *base, int fd, event_callback_fn cb,
                  void *arg);
/* Removes events, frees the SSL object, closes the fd. Safe to call twice. */
void gh_sock_close(struct gh_sock *s);

ssize_t gh_sock_read(struct gh_sock *s, char *buf, size_t n);
ssize_t gh_sock_write(struct gh_sock *s, const char *buf, size_t n);
/* Drives a TLS handshake; returns 0 when done, GH_SOCK_AGAIN or GH_SOCK_ERR. */
int gh_sock_handshake(struct gh_sock *s);

/* Turn read/write interest on or off; no system call when unchanged. */
void gh_sock_want_read(struct gh_sock *s, bool on);
void gh_sock_want_write(struct gh_sock *s, bool on);

#endif
