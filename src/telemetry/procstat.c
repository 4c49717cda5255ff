/* /proc/self readers for the process_* metrics (see procstat.h). */
#include "telemetry/procstat.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Reads a small /proc file into <buf>; returns its length or -1. */
static long read_small(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    size_t n;

    if (f == NULL) return -1;
    n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (long)n;
}

/* The boot time (btime of /proc/stat), Unix seconds; 0 when unknown. */
static uint64_t boot_time_s(void)
{
    char line[256];
    uint64_t bt = 0;
    FILE *f = fopen("/proc/stat", "re");

    if (f == NULL) return 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "btime ", 6) == 0) {
            bt = strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return bt;
}

static uint64_t count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    uint64_t n = 0;

    if (d == NULL) return 0;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') n++;
    closedir(d);
    /* The directory's own descriptor was open while we counted. */
    return n ? n - 1 : 0;
}

bool gh_procstat_read(struct gh_procstat *out)
{
    char buf[1024];
    const char *p;
    unsigned long long utime, stime, start, vsize;
    long long rss, threads;
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    struct rlimit rl;

    memset(out, 0, sizeof(*out));
    out->open_fds = count_fds();
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) out->max_fds = (uint64_t)rl.rlim_cur;
    if (read_small("/proc/self/stat", buf, sizeof(buf)) <= 0) return false;
    /* proc(5): the command name is in parentheses and may hold spaces or
     * ')' itself, so the fields start after the last ')'. Field 3 (state)
     * comes first; utime is field 14. */
    p = strrchr(buf, ')');
    if (p == NULL || tck <= 0 || page <= 0) return false;
    if (sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %lld "
               "%*d %llu %llu %lld",
               &utime, &stime, &threads, &start, &vsize, &rss) != 6)
        return false;
    out->cpu_ns = (utime + stime) * (1000000000ull / (uint64_t)tck);
    out->threads = (uint64_t)threads;
    out->vsize_bytes = vsize;
    out->rss_bytes = (uint64_t)rss * (uint64_t)page;
    out->start_time_ms = boot_time_s() * 1000 + start * 1000 / (uint64_t)tck;
    return true;
}
