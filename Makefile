# gatehouse: a plain, non-recursive Makefile.
#   make            build build/gatehouse
#   make test       unit tests (cmocka), integration tests (pytest; the store's suites twice:
#                   SQLite, then PostgreSQL), deploy-check, 20 s of fuzzing
#   make deploy-check  deploy/: promtool and amtool checks, rule unit tests, dashboards and a real Prometheus
#   make asan       the unit and integration tests on an ASan+UBSan build
#   make demo       run the gateway on its embedded default in front of a demo upstream
#   make bench      gatehouse next to nginx and HAProxy (bench/RESULTS.md), then
#                   bench-limits and bench-redis (rate-limit decisions per second),
#                   bench-metrics (a /metrics scrape of 2,000 series), bench-otlp
#                   (trace encoders, ns per span), bench-verify (inbound webhook
#                   signature checks, ns per 1 KiB body) and bench-webhooks
#                   (signed deliveries/s)
#   make bench-pg   the proxy with auth + rate limit + async audit, SQLite vs PostgreSQL
#                   store; make bench-pg-audit: audit events/s into PostgreSQL (issue 8);
#                   make bench-pg-audit-query: audit query latency, PostgreSQL and SQLite
#   make fuzz       run each fuzz harness for 60 s
#   make install    install the binary (PREFIX=/usr/local)

CC       ?= cc
BUILD    ?= build
PREFIX   ?= /usr/local
PYTHON   ?= /usr/bin/python3
SANITIZE ?=

PKGS     := libevent libevent_pthreads libevent_openssl openssl yaml-0.1 jansson sqlite3 libcurl hiredis libzstd libpq
LIBS_EXTRA := -largon2 -ldl
# PKCS#11 (src/secrets/kms_pkcs11.c): p11-kit's pkcs11.h for the types only;
# the module is dlopen'ed, p11-kit is not linked.
CFLAGS_ONLY_PKGS := p11-kit-1
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0)

WARN     := -Wall -Wextra -Wshadow -Wpointer-arith -Wformat=2 -Wstrict-prototypes \
            -Wmissing-prototypes -Wno-unused-parameter -Werror=implicit-function-declaration
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -pthread $(WARN) -Isrc -include src/core/banned.h \
            -fno-omit-frame-pointer
LDLIBS   += -pthread

ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=address,undefined -fno-sanitize-recover=undefined -O1
LDFLAGS  += -fsanitize=address,undefined
endif

DEPS_OK  := $(BUILD)/.deps-ok

LIB_SRC  := $(sort $(shell find src -name '*.c' ! -path src/main.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(sort $(shell find tests/unit -name 'test_*.c' 2>/dev/null))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_LIB := src/http/parser.c src/http/chunked.c src/core/err.c
# Libraries a harness needs beyond FUZZ_LIB, by harness name.
FUZZ_LIBS_fuzz_jwt := -lcrypto -ljansson
FUZZ_LIBS_fuzz_limits_overrides := src/limits/policy.c src/config/config_values.c -ljansson
FUZZ_LIBS_fuzz_tracectx := src/telemetry/tracectx.c
FUZZ_LIBS_fuzz_otlp := src/telemetry/otlp_proto.c src/telemetry/otlp_json.c src/telemetry/otlp_buf.c -ljansson
FUZZ_LIBS_fuzz_audit_body := src/store/audit_body.c
FUZZ_LIBS_fuzz_audit_params := src/audit/event.c src/audit/redact.c src/audit/parse.c -lcrypto -ljansson
FUZZ_LIBS_fuzz_webhook_sig := src/hooks/inbound.c -lcrypto
FUZZ_LIBS_fuzz_hooks := src/hooks/ssrf.c src/hooks/schedule.c -lcurl
# The config loader and what it calls: libyaml, libpq's URL parser (pg_url.c),
# the webhook verifier's secret checks (inbound.c), allow-list CIDRs (ssrf.c).
FUZZ_LIBS_fuzz_config = src/config/config.c src/config/config_values.c src/config/pg_url.c \
    src/hooks/inbound.c src/hooks/ssrf.c src/core/cpus.c \
    $(shell pkg-config --cflags --libs yaml-0.1 libpq libcrypto) -lcurl

.PHONY: all test unit integration deploy-check asan demo bench fuzz fuzz-smoke install clean deps format

all: $(BUILD)/gatehouse

# Install what is missing (Debian packages), once per build folder.
$(DEPS_OK): scripts/install-deps
	@scripts/install-deps
	@mkdir -p $(BUILD) && touch $@

deps: $(DEPS_OK)

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) $(CFLAGS_ONLY_PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) $(LIBS_EXTRA)

$(BUILD)/obj/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	@echo "  CC $<"; $(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

# The version goes into version.o alone (src/core/version.h), rebuilt when
# it changes: the stamp is rewritten only then, so a new commit rebuilds one
# object and an unchanged one none.
$(BUILD)/version.stamp: FORCE | $(DEPS_OK)
	@mkdir -p $(dir $@)
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
$(BUILD)/obj/src/core/version.o: $(BUILD)/version.stamp
$(BUILD)/obj/src/core/version.o: CFLAGS += -DGH_VERSION='"$(VERSION)"'
.PHONY: FORCE
FORCE:

$(BUILD)/libgatehouse.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/gatehouse: $(BUILD)/obj/src/main.o $(BUILD)/libgatehouse.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libgatehouse.a | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libgatehouse.a \
	    $(PKG_LIBS) -lcmocka $(LDLIBS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# test_deploy.py runs in deploy-check, next to the promtool checks it goes with.
# The second pass runs the suites that use the store again with a real
# PostgreSQL server as the store (docs/postgres.md; test_postgres.py runs in
# the first pass, as does test_backup_postgres.py).
PG_SUITES := test_identity.py test_tokens.py test_admin.py test_limits.py test_audit.py \
             test_audit_api.py test_audit_archive.py test_jwt.py test_secrets.py test_webhooks.py \
             test_backup.py test_node.py test_cli_audit.py test_systemd_unit.py \
             test_admin_hostile.py
# A PKCS#11 module in front of SoftHSM2 that drops sessions on cue, as a
# network HSM does when it restarts (tests/p11_faulty/p11_faulty.c).
$(BUILD)/tests/libp11faulty.so: tests/p11_faulty/p11_faulty.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -shared -fPIC -o $@ $< -ldl

integration: $(BUILD)/gatehouse $(BUILD)/tests/store/test_audit_store \
             $(BUILD)/tests/store/test_webhooks_store $(BUILD)/tests/store/test_usage_store \
             $(BUILD)/tests/store/test_status_store $(BUILD)/tests/libp11faulty.so
	GATEHOUSE_BIN=$(abspath $(BUILD)/gatehouse) $(PYTHON) -m pytest -q tests/integration \
	    --ignore=tests/integration/test_deploy.py
	GH_TEST_STORE=postgres GATEHOUSE_BIN=$(abspath $(BUILD)/gatehouse) $(PYTHON) -m pytest -q \
	    $(addprefix tests/integration/,$(PG_SUITES))

# deploy/: rules and their unit tests, the scrape config, the Alertmanager
# routing, then tests/integration/test_deploy.py (dashboards against Grafana's
# schema, alerts against docs/runbooks.md, metric names against
# docs/metrics.md, and a real Prometheus scraping a real gatehouse).
deploy-check: $(BUILD)/gatehouse | $(DEPS_OK)
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml
	promtool check config deploy/prometheus/prometheus.yml
	@if command -v amtool >/dev/null 2>&1; then \
	  set -e; amtool check-config deploy/alertmanager/alertmanager.yml; \
	  for r in pager:page ticket:ticket; do \
	    amtool config routes test --config.file=deploy/alertmanager/alertmanager.yml \
	        --verify.receivers=$${r%%:*} severity=$${r#*:} alertname=GatehouseTargetDown >/dev/null 2>&1 \
	      || { echo "amtool: severity=$${r#*:} is not routed to $${r%%:*}"; exit 1; }; \
	  done; echo "amtool: severity=page -> pager, severity=ticket -> ticket"; \
	else echo "amtool not found: Alertmanager config not checked"; fi
	GATEHOUSE_BIN=$(abspath $(BUILD)/gatehouse) $(PYTHON) -m pytest -q -rs tests/integration/test_deploy.py

test: all unit integration deploy-check fuzz-smoke

asan:
	$(MAKE) BUILD=build/asan SANITIZE=1 all unit integration

# Fuzzing needs clang's libFuzzer; harnesses compile the parser sources directly
# (a harness is built again when one of its own sources changes, too).
fuzz_sources = $(filter %.c,$(FUZZ_LIBS_$(1)))
.SECONDEXPANSION:
$(BUILD)/fuzz/%: fuzz/%.c fuzz/fuzz_check.h $(FUZZ_LIB) $$(call fuzz_sources,$$*) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -Isrc -MM -MP -MT $@ -MF $@.d $<
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $@ $< $(FUZZ_LIB) $(FUZZ_LIBS_$*)

fuzz-smoke: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); \
	  mkdir -p $(BUILD)/fuzz/corpus/$$n; \
	  echo "== $$n (20 s)"; \
	  $$f -max_total_time=20 -print_final_stats=0 $(BUILD)/fuzz/corpus/$$n fuzz/corpus/$$n \
	      -dict=fuzz/$$n.dict 2>$(BUILD)/fuzz/$$n.log || { tail -40 $(BUILD)/fuzz/$$n.log; exit 1; }; \
	  tail -1 $(BUILD)/fuzz/$$n.log; done

fuzz: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); \
	  mkdir -p $(BUILD)/fuzz/corpus/$$n; \
	  $$f -max_total_time=60 $(BUILD)/fuzz/corpus/$$n fuzz/corpus/$$n -dict=fuzz/$$n.dict; done

demo: $(BUILD)/gatehouse
	$(BUILD)/gatehouse demo

# bench/run.sh (the proxies), then the micro-benchmarks below, then (not
# with QUICK=1: about 12 minutes more) the audit log's and the PostgreSQL
# store's, whose targets issues 5 and 8 set.
BENCH_STORES := bench-audit bench-audit-verify bench-audit-query bench-pg-audit bench-pg
bench: $(BUILD)/gatehouse $(BUILD)/limits_bench $(BUILD)/redis_decisions_bench $(BUILD)/metrics_bench \
       $(BUILD)/otlp_bench $(BUILD)/webhook_verify_bench
	bench/run.sh
	$(MAKE) --no-print-directory bench-limits bench-redis bench-metrics bench-otlp bench-verify \
	    bench-webhooks $(if $(filter 1,$(QUICK)),,$(BENCH_STORES))

# The binary, and the docs the systemd unit's Documentation= names.
install: $(BUILD)/gatehouse
	install -D -m 0755 $(BUILD)/gatehouse $(DESTDIR)$(PREFIX)/bin/gatehouse
	install -d $(DESTDIR)$(PREFIX)/share/doc/gatehouse
	install -m 0644 README.md docs/*.md docs/openapi.yaml $(DESTDIR)$(PREFIX)/share/doc/gatehouse/

format:
	clang-format -i $$(find src tests/unit fuzz -name '*.[ch]')

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/src/main.d
# A harness that includes a parser's .c (fuzz_jwt) or a header that changes
# is built again: clang's dependency list of the harness itself.
-include $(FUZZ_BIN:=.d)

# Micro-benchmark of the rate-limit table (src/limits), linked like the unit tests.
.PHONY: bench-limits
$(BUILD)/limits_bench: bench/limits_bench.c $(BUILD)/libgatehouse.a | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libgatehouse.a $(PKG_LIBS) $(LDLIBS)

bench-limits: $(BUILD)/limits_bench
	$(BUILD)/limits_bench

# Redis-backed decisions for one node: the gateway's Redis client and GCRA
# script against a redis-server it starts (bench/redis_decisions_bench.c).
.PHONY: bench-redis
$(BUILD)/redis_decisions_bench: bench/redis_decisions_bench.c $(BUILD)/libgatehouse.a | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libgatehouse.a $(PKG_LIBS) $(LDLIBS)

bench-redis: $(BUILD)/redis_decisions_bench
	$(BUILD)/redis_decisions_bench $(REDIS_BENCH_ARGS)

# A /metrics scrape of about 2,000 series (src/telemetry), linked like the unit tests.
.PHONY: bench-metrics
$(BUILD)/metrics_bench: bench/metrics_bench.c $(BUILD)/libgatehouse.a | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libgatehouse.a $(PKG_LIBS) $(LDLIBS)

bench-metrics: $(BUILD)/metrics_bench
	$(BUILD)/metrics_bench $(METRICS_BENCH_ARGS)

# Usage retention's store call (gh_store_usage_purge): ms per batch of 1,000
# over 100,000 old rows; USAGE_PURGE_ARGS="N postgresql://..." for PostgreSQL.
.PHONY: bench-usage-purge
$(BUILD)/usage_purge_bench: bench/usage_purge_bench.c bench/bench_store.h $(BUILD)/libgatehouse.a | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libgatehouse.a $(PKG_LIBS) $(LDLIBS)

bench-usage-purge: $(BUILD)/usage_purge_bench
	$(BUILD)/usage_purge_bench $(USAGE_PURGE_ARGS)

# The webhook claim beside a disabled endpoint's backlog: ms per claim over
# 100,000 paused deliveries; HOOK_CLAIM_ARGS="N postgresql://..." for PostgreSQL.
.PHONY: bench-hook-claim
$(BUILD)/hook_claim_bench: bench/hook_claim_bench.c bench/bench_store.h $(BUILD)/libgatehouse.a | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libgatehouse.a $(PKG_LIBS) $(LDLIBS)

bench-hook-claim: $(BUILD)/hook_claim_bench
	$(BUILD)/hook_claim_bench $(HOOK_CLAIM_ARGS)

# The OTLP trace encoders (src/telemetry/otlp_*.c): ns per span, protobuf and JSON.
.PHONY: bench-otlp
$(BUILD)/otlp_bench: bench/otlp_bench.c $(BUILD)/libgatehouse.a | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libgatehouse.a $(PKG_LIBS) $(LDLIBS)

bench-otlp: $(BUILD)/otlp_bench
	$(BUILD)/otlp_bench

# Inbound webhook verification (src/hooks/inbound.c): ns per check of a
# 1 KiB body for each format, and the HMAC strategies it was chosen from.
.PHONY: bench-verify
$(BUILD)/webhook_verify_bench: bench/webhook_verify_bench.c $(BUILD)/libgatehouse.a | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libgatehouse.a $(PKG_LIBS) $(LDLIBS)

bench-verify: $(BUILD)/webhook_verify_bench
	taskset -c 1 $(BUILD)/webhook_verify_bench

# End to end: wrk POSTs of signed 1 KiB bodies to a route with and without
# webhook_verify (bench/webhook_e2e.sh; nginx upstream, pinned as run.sh).
.PHONY: bench-verify-e2e
bench-verify-e2e: $(BUILD)/gatehouse
	GATEHOUSE_BIN=$(abspath $(BUILD)/gatehouse) bench/webhook_e2e.sh
# Signed webhook deliveries per second to an nginx receiver, end to end and
# draining a queue (bench/webhooks_bench.py; N=, DURATION=, WRK_CONNS=).
.PHONY: bench-webhooks
bench-webhooks: $(BUILD)/gatehouse
	GATEHOUSE_BIN=$(abspath $(BUILD)/gatehouse) $(PYTHON) bench/webhooks_bench.py

# Filtered audit queries over a large store (src/store audit_query): p50/p99
# per filter over 5 M events and 50 tenants. AUDIT_BENCH_ARGS="--db PATH"
# keeps the filled store for the next run (filling takes minutes).
.PHONY: bench-audit-query
$(BUILD)/audit_query_bench: bench/audit_query_bench.c $(BUILD)/libgatehouse.a | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libgatehouse.a $(PKG_LIBS) $(LDLIBS)
bench-audit-query: $(BUILD)/audit_query_bench
	$(BUILD)/audit_query_bench $(AUDIT_BENCH_ARGS)

# The audit verifier (src/audit/verify.c) over N events (default 1,000,000)
# in a temporary store: events verified per second.
.PHONY: bench-audit-verify
$(BUILD)/audit_verify_bench: bench/audit_verify_bench.c $(BUILD)/libgatehouse.a | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libgatehouse.a $(PKG_LIBS) $(LDLIBS)

bench-audit-verify: $(BUILD)/audit_verify_bench
	$(BUILD)/audit_verify_bench $(AUDIT_VERIFY_BENCH_ARGS)

# SQLite's own cost of storing audit events (bench/sqlite_floor.c): the
# migrated audit_events table filled by a bare loop, with every query index,
# without each in turn, and with none: the ceiling under issue 5's target.
.PHONY: bench-sqlite-floor
$(BUILD)/sqlite_floor_bench: bench/sqlite_floor.c $(BUILD)/libgatehouse.a | $(DEPS_OK)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libgatehouse.a $(PKG_LIBS) $(LDLIBS)

bench-sqlite-floor: $(BUILD)/sqlite_floor_bench
	taskset -c 1 $(BUILD)/sqlite_floor_bench $(SQLITE_FLOOR_ARGS)

# The audit log on the request path (bench/audit_strict.sh): p50/p99/p99.9 at
# a fixed 2,000 requests/s with no audit, async and strict (build/rate_load,
# a constant-rate generator), then async events/s committed under wrk.
.PHONY: bench-audit
$(BUILD)/rate_load: bench/rate_load.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

bench-audit: $(BUILD)/gatehouse $(BUILD)/rate_load
	bench/audit_strict.sh

# PostgreSQL as the store (issue 8), each against a temporary server it starts:
# the proxy with auth + rate limit + async audit, SQLite vs PostgreSQL store
# (bench/pg_proxy.sh), and audit events/s appended with group commit into
# PostgreSQL next to SQLite (bench/pg_audit.sh over build/audit_verify_bench).
.PHONY: bench-pg bench-pg-audit bench-pg-audit-query
bench-pg: $(BUILD)/gatehouse
	GATEHOUSE_BIN=$(abspath $(BUILD)/gatehouse) bench/pg_proxy.sh

bench-pg-audit: $(BUILD)/gatehouse $(BUILD)/audit_verify_bench
	GATEHOUSE_BIN=$(abspath $(BUILD)/gatehouse) AUDIT_BENCH_BIN=$(abspath $(BUILD)/audit_verify_bench) \
	    bench/pg_audit.sh

# The audit queries' latency over 5 M events, PostgreSQL (under row-level
# security) next to SQLite (bench/pg_audit_query.sh over build/audit_query_bench).
bench-pg-audit-query: $(BUILD)/gatehouse $(BUILD)/audit_query_bench
	GATEHOUSE_BIN=$(abspath $(BUILD)/gatehouse) AUDIT_QUERY_BIN=$(abspath $(BUILD)/audit_query_bench) \
	    bench/pg_audit_query.sh
