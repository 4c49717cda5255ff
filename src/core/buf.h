/* I/O buffers with a fixed capacity, and a per-worker pool that recycles them.
 *
 * A connection holds buffers only while it has bytes to keep: an idle
 * keep-alive connection holds none, which is what keeps idle connections
 * small. Buffers never grow past their capacity except through
 * gh_buf_grow(), which is capped by its caller (the head size limit). */
#ifndef GH_CORE_BUF_H
#define GH_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

#define GH_BUF_SIZE 16384

struct gh_buf {
    char *data;
    uint32_t cap;
    uint32_t start; /* first unconsumed byte */
    uint32_t end;   /* one past the last byte */
    uint8_t pooled; /* data came from a gh_bufpool (cap == GH_BUF_SIZE) */
};

/* A free list of GH_BUF_SIZE blocks; owned by one worker thread, never shared. */
struct gh_bufpool {
    void **free;
    uint32_t nfree;
    uint32_t max_free;
};

void gh_bufpool_init(struct gh_bufpool *p, uint32_t max_free);
void gh_bufpool_release(struct gh_bufpool *p);

/* Gives <b> storage if it has none. Returns 0, or -1 when out of memory. */
int gh_buf_acquire(struct gh_buf *b, struct gh_bufpool *p);
/* Returns <b>'s storage to the pool (or frees it); <b> becomes empty. */
void gh_buf_drop(struct gh_buf *b, struct gh_bufpool *p);
/* Enlarges <b> to <cap> bytes (keeping its content). Returns 0 or -1. */
int gh_buf_grow(struct gh_buf *b, struct gh_bufpool *p, uint32_t cap);

static inline uint32_t gh_buf_len(const struct gh_buf *b)
{
    return b->end - b->start;
}
static inline uint32_t gh_buf_room(const struct gh_buf *b)
{
    return b->cap - b->end;
}
static inline char *gh_buf_head(const struct gh_buf *b)
{
    return b->data + b->start;
}
static inline char *gh_buf_tail(const struct gh_buf *b)
{
    return b->data + b->end;
}
/* Moves unconsumed bytes to the front so that the room is maximal. */
void gh_buf_compact(struct gh_buf *b);
/* Appends <n> bytes if they fit; returns 0, or -1 (nothing written) if not. */
int gh_buf_append(struct gh_buf *b, const void *p, size_t n);
static inline void gh_buf_consume(struct gh_buf *b, uint32_t n)
{
    b->start += n;
    if (b->start == b->end) b->start = b->end = 0;
}

#endif
