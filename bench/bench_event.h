/* The audit event the append benchmarks store (bench/audit_verify_bench.c,
 * bench/sqlite_floor.c): event <i> of tenant <tenant> ("" for the system
 * chain), an authenticated POST with three query parameters, one of them
 * redacted, about 1,000 bytes once chained. Made as a worker makes it. */
#ifndef GH_BENCH_EVENT_H
#define GH_BENCH_EVENT_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "audit/chain.h"

static inline void bench_event(struct gh_audit_event *ev, uint64_t i, const char *tenant)
{
    uint8_t rnd[10];
    char req[32];

    memcpy(rnd, &i, 8);
    rnd[8] = rnd[9] = 0x5a;
    gh_audit_event_init(ev, 1763782800000000 + (int64_t)i, rnd);
    GH_AUDIT_SET(ev, tenant, gh_str_cstr(tenant));
    GH_AUDIT_SET(ev, actor, GH_STR_LIT("key:AbCdEfGh12345678"));
    GH_AUDIT_SET(ev, action, GH_STR_LIT("http.request"));
    GH_AUDIT_SET(ev, resource, GH_STR_LIT("orders-api"));
    ev->outcome = GH_AUDIT_SUCCESS;
    GH_AUDIT_SET(ev, method, GH_STR_LIT("POST"));
    GH_AUDIT_SET(ev, path, GH_STR_LIT("/v1/orders/12345/items"));
    ev->status = 201;
    snprintf(req, sizeof(req), "req-%016" PRIx64, i);
    GH_AUDIT_SET(ev, request_id, gh_str_cstr(req));
    GH_AUDIT_SET(ev, trace_id, GH_STR_LIT("0af7651916cd43dd8448eb211c80319c"));
    GH_AUDIT_SET(ev, client_ip, GH_STR_LIT("192.0.2.17"));
    GH_AUDIT_SET(ev, user_agent, GH_STR_LIT("bench/1.0 (gatehouse)"));
    ev->latency_us = 1234;
    gh_audit_params_from_query(ev, GH_STR_LIT("page=2&sort=desc&token=abc"), 4);
}

#endif
