/* The store a store-call benchmark runs on (bench/usage_purge_bench.c,
 * bench/hook_claim_bench.c): a PostgreSQL URL as given, or a SQLite file,
 * given or made fresh in /tmp, removed with its side files afterwards. */
#ifndef GH_BENCH_STORE_H
#define GH_BENCH_STORE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

/* Fills <p> for store argument <arg> (NULL: a fresh SQLite file named
 * after <name> in /tmp). <path> (64 bytes) keeps the SQLite file's name
 * ("" for PostgreSQL). Non-zero when no fresh file can be made. */
static inline int bench_store_params(const char *arg, const char *name, char path[64],
                                     struct gh_store_params *p)
{
    memset(p, 0, sizeof(*p));
    path[0] = '\0';
    if (arg != NULL && strncmp(arg, "postgresql:", 11) == 0) {
        p->postgres_url = arg;
        return 0;
    }
    if (arg != NULL) {
        snprintf(path, 64, "%s", arg);
    } else {
        int fd;
        snprintf(path, 64, "/tmp/gh-%s-XXXXXX", name);
        if ((fd = mkstemp(path)) < 0) return -1;
        close(fd);
        unlink(path); /* the store makes it, with its own settings */
    }
    p->sqlite_path = path;
    return 0;
}

/* Removes the SQLite file <path> and its -wal and -shm (nothing for ""). */
static inline void bench_store_remove(const char *path)
{
    static const char *const side[] = {"", "-wal", "-shm"};
    char name[80];

    for (size_t i = 0; path[0] && i < 3; i++) {
        snprintf(name, sizeof(name), "%s%s", path, side[i]);
        unlink(name);
    }
}

#endif
