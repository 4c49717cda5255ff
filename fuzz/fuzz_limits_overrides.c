/* libFuzzer harness for a tenant's limit overrides (gh_tenant_overrides_parse,
 * src/limits/policy.c) and the rate syntax (gh_config_parse_rate,
 * src/config/config_values.c). The Makefile links src/limits/policy.c,
 * src/config/config_values.c and -ljansson (FUZZ_LIBS_fuzz_limits_overrides).
 *
 * Every input, as a NUL-terminated copy (cut at its first NUL, as a C string
 * from the admin API would be), is:
 * 1. parsed as overrides: an accepted set must be within its bounds (at most
 *    16 rules, names of 1 to 95 bytes, rates and bursts that build GCRA
 *    parameters), parse the same way twice, and a refusal must come with a
 *    NUL-terminated message that fits any buffer, even a tiny one;
 * 2. parsed as a rate: an accepted rate is a count >= 1 per 1 ms .. 366 days,
 *    and its canonical form "<count>/<ms>ms" parses back to the same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#include "config/config.h"
#include "limits/policy.h"

/* The message is a C string within <why>. It may quote an offending key
 * with any bytes in it: the admin API escapes it into a JSON body. */
static void check_why(const char *why, size_t whylen)
{
    CHECK(strnlen(why, whylen) < whylen);
}

static void check_overrides(const char *s)
{
    struct gh_tenant_overrides a, b;
    char why[256], tiny[4];
    int rc, rc2;

    memset(why, 'w', sizeof(why));
    rc = gh_tenant_overrides_parse(s, &a, why, sizeof(why));
    CHECK(rc == GH_OK || rc == GH_ERROR);
    if (rc != GH_OK) {
        check_why(why, sizeof(why));
        CHECK(why[0] != '\0');
        memset(tiny, 'w', sizeof(tiny));
        CHECK(gh_tenant_overrides_parse(s, &b, tiny, sizeof(tiny)) == GH_ERROR);
        check_why(tiny, sizeof(tiny));
        return;
    }
    CHECK(a.nrules <= GH_LIMITS_MAX_RULE_OVERRIDES);
    for (uint32_t i = 0; i < a.nrules; i++) {
        const struct gh_limit_override *ov = &a.rules[i];
        size_t n = strnlen(ov->rule, sizeof(ov->rule));
        struct gh_limit_rule rl;

        CHECK(n >= 1 && n < sizeof(ov->rule));
        CHECK(ov->rate.count >= 1);
        CHECK(ov->rate.period_ms >= 1 && ov->rate.period_ms <= 366ull * 86400000);
        CHECK(ov->burst >= 1);
        CHECK(gh_limits_rule_params(&rl, ov->rate.count, ov->rate.period_ms, ov->burst, 1) ==
              GH_OK);
        CHECK(rl.window_s >= 1);
        CHECK(rl.share.burst >= 1 && rl.share.burst <= rl.full.burst);
    }
    for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
        for (int p = 0; p < GH_QUOTA_NPERIODS; p++) {
            CHECK(a.quota_set[m][p] <= 1);
            CHECK(a.quota_set[m][p] || a.quotas.limit[m][p] == 0);
            CHECK(a.quotas.limit[m][p] <= (uint64_t)INT64_MAX);
        }
    CHECK(a.has_concurrency || a.concurrency == 0);
    /* Deterministic. */
    rc2 = gh_tenant_overrides_parse(s, &b, why, sizeof(why));
    CHECK(rc2 == GH_OK);
    CHECK(memcmp(&a, &b, sizeof(a)) == 0);
}

static void check_rate(const char *s)
{
    struct gh_config_rate r, back;
    char canon[64];

    memset(&r, 0, sizeof(r));
    if (gh_config_parse_rate(s, &r) != GH_OK) return;
    CHECK(r.count >= 1);
    CHECK(r.period_ms >= 1 && r.period_ms <= 366ull * 86400000);
    snprintf(canon, sizeof(canon), "%llu/%llums", (unsigned long long)r.count,
             (unsigned long long)r.period_ms);
    CHECK(gh_config_parse_rate(canon, &back) == GH_OK);
    CHECK(back.count == r.count && back.period_ms == r.period_ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    /* Overrides are stored with at most 4096 bytes; a little more reaches
     * the same code. */
    if (size > 8192) return 0;
    s = malloc(size + 1);
    if (s == NULL) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check_overrides(s);
    check_rate(s);
    free(s);
    return 0;
}
