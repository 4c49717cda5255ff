/* How many CPUs this process may run on: the ones its affinity mask allows
 * (taskset, a container's cpuset), not every CPU the machine has. What
 * `workers: auto` and the audit verifier's threads are sized by. */
#ifndef GH_CORE_CPUS_H
#define GH_CORE_CPUS_H

/* At least 1. */
int gh_cpus_usable(void);

#endif
