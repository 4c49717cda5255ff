/* Eight bytes at a time, for scans of text whose bytes are mostly plain
 * (JSON values, audit columns): the "has a zero byte" trick
 * (graphics.stanford.edu/~seander/bithacks.html#ZeroInWord) and what is
 * built on it. Each test is exact as a yes/no for the whole word (not for
 * which byte). */
#ifndef GH_CORE_SWAR_H
#define GH_CORE_SWAR_H

#include <stdint.h>
#include <string.h>

#define GH_SWAR_ONES  UINT64_C(0x0101010101010101)
#define GH_SWAR_HIGHS UINT64_C(0x8080808080808080)

/* The 8 bytes at <p>, in host order (any alignment). */
static inline uint64_t gh_swar_load8(const void *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

/* Nonzero when a byte of <v> is below <n> (at most 0x80). */
static inline uint64_t gh_swar_below(uint64_t v, uint8_t n)
{
    return (v - GH_SWAR_ONES * n) & ~v & GH_SWAR_HIGHS;
}

/* Nonzero when a byte of <v> is <c>. */
static inline uint64_t gh_swar_has(uint64_t v, uint8_t c)
{
    return gh_swar_below(v ^ (GH_SWAR_ONES * c), 1);
}

#endif
