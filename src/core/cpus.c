/* See cpus.h. */
#include "core/cpus.h"

#include <sched.h>
#include <unistd.h>

int gh_cpus_usable(void)
{
    cpu_set_t set;
    long n;

    /* The mask holds up to CPU_SETSIZE (1,024) CPUs; a machine with more
     * makes the call fail, and the count of online CPUs is used instead. */
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1 << 20 ? 1 << 20 : (int)n;
}
