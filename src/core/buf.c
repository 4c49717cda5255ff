/* Buffer storage and its per-worker pool. */
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

void gh_bufpool_init(struct gh_bufpool *p, uint32_t max_free)
{
    p->free = calloc(max_free, sizeof(void *));
    p->nfree = 0;
    p->max_free = p->free ? max_free : 0;
}

void gh_bufpool_release(struct gh_bufpool *p)
{
    for (uint32_t i = 0; i < p->nfree; i++)
        free(p->free[i]);
    free(p->free);
    p->free = NULL;
    p->nfree = p->max_free = 0;
}

int gh_buf_acquire(struct gh_buf *b, struct gh_bufpool *p)
{
    if (b->data) return 0;
    if (p->nfree > 0) {
        b->data = p->free[--p->nfree];
    } else {
        b->data = malloc(GH_BUF_SIZE);
        if (b->data == NULL) return -1;
    }
    b->cap = GH_BUF_SIZE;
    b->start = b->end = 0;
    b->pooled = 1;
    return 0;
}

void gh_buf_drop(struct gh_buf *b, struct gh_bufpool *p)
{
    if (b->data == NULL) return;
    if (b->pooled && p->nfree < p->max_free)
        p->free[p->nfree++] = b->data;
    else
        free(b->data);
    b->data = NULL;
    b->cap = b->start = b->end = 0;
    b->pooled = 0;
}

int gh_buf_grow(struct gh_buf *b, struct gh_bufpool *p, uint32_t cap)
{
    char *d;

    if (cap <= b->cap) return 0;
    d = malloc(cap);
    if (d == NULL) return -1;
    if (b->data) memcpy(d, b->data + b->start, gh_buf_len(b));
    b->end -= b->start;
    b->start = 0;
    if (b->data) {
        struct gh_buf old = *b;
        gh_buf_drop(&old, p);
    }
    b->data = d;
    b->cap = cap;
    b->pooled = 0;
    return 0;
}

void gh_buf_compact(struct gh_buf *b)
{
    if (b->start == 0) return;
    memmove(b->data, b->data + b->start, b->end - b->start);
    b->end -= b->start;
    b->start = 0;
}

int gh_buf_append(struct gh_buf *b, const void *p, size_t n)
{
    if (n > gh_buf_room(b)) {
        gh_buf_compact(b);
        if (n > gh_buf_room(b)) return -1;
    }
    memcpy(b->data + b->end, p, n);
    b->end += (uint32_t)n;
    return 0;
}
