/* The gateway's version: `git describe --tags --always --dirty` when it was
 * built (make writes it into version.o alone, rebuilt whenever it changes,
 * so an incremental build never reports the version of an older one). */
#ifndef GH_CORE_VERSION_H
#define GH_CORE_VERSION_H

/* A static string, e.g. "302e8c1" or "302e8c1-dirty". */
const char *gh_version(void);

#endif
