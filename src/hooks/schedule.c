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
    int64_t at = (int64_t)t * 1000;
    uint64_t d = at > now_ms ? (uint64_t)(at - now_ms) : 0;
    *delay_ms = d > RETRY_AFTER_CAP_MS ? RETRY_AFTER_CAP_MS : d;
    return true;
}
