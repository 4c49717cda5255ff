/* Retry delays with jitter, retryable answers and Retry-After (see
 * schedule.h). */
#include "hooks/schedule.h"

#include <curl/curl.h>
#include <string.h>

#define RETRY_AFTER_CAP_MS (24ull * 3600 * 1000)

bool gh_hooks_schedule_delay(const uint64_t *steps_ms, size_t n, unsigned attempts, double jitter,
                             double u, uint64_t *delay_ms)
{
    double d, spread;

    if (attempts >= n) return false;
    d = (double)steps_ms[attempts];
    spread = d * jitter * (2.0 * u - 1.0); /* in [-jitter*d, +jitter*d) */
    d += spread;
    *delay_ms = d > 0 ? (uint64_t)d : 0;
    return true;
}

bool gh_hooks_success(long status)
{
    return status >= 200 && status <= 299;
}

bool gh_hooks_retryable(long status)
{
    return status == 0 || status == 408 || status == 429 || (status >= 500 && status <= 599);
}

bool gh_hooks_retry_after(const char *value, int64_t now_ms, uint64_t *delay_ms)
{
    const char *p = value;
    uint64_t secs = 0;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p >= '0' && *p <= '9') {
        for (; *p >= '0' && *p <= '9'; p++) {
            secs = secs * 10 + (uint64_t)(*p - '0');
            if (secs > RETRY_AFTER_CAP_MS / 1000) secs = RETRY_AFTER_CAP_MS / 1000;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p) return false;
        *delay_ms = secs * 1000;
        return true;
    }
    /* An HTTP-date: curl_getdate reads the three forms RFC 9110 §5.6.7
     * asks recipients to accept. */
    time_t t = curl_getdate(p, NULL);
    if (t == (time_t)-1 || strlen(p) < 20) return false;
    /* Compared in seconds first: curl reads years far beyond what
     * milliseconds in an int64_t can hold (found by fuzz/fuzz_hooks.c). */
    int64_t now_s = now_ms / 1000;
    if ((int64_t)t <= now_s)
        *delay_ms = 0;
    else if ((uint64_t)((int64_t)t - now_s) > RETRY_AFTER_CAP_MS / 1000)
        *delay_ms = RETRY_AFTER_CAP_MS;
    else if ((int64_t)t * 1000 > now_ms)
        *delay_ms = (uint64_t)((int64_t)t * 1000 - now_ms);
    else
        *delay_ms = 0;
    return true;
}
