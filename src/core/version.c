/* The version string (version.h). Only this file is compiled with
 * GH_VERSION (Makefile), so a new version rebuilds one object. */
#include "core/version.h"

#ifndef GH_VERSION
#define GH_VERSION "unknown"
#endif

const char *gh_version(void)
{
    return GH_VERSION;
}
