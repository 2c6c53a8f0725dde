# Tollgate. `make run` starts the gateway on the shipped gateway.toml in
# development mode; `make test` installs what the tests need and runs them.

GO      ?= go
BIN     := bin/gateway
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# Debian packages the tests talk to (real peers, never mocks).
TEST_PKGS  := curl ca-certificates git wabt clickhouse-server clickhouse-client zookeeper postgresql chromium openssh-server openssh-client prometheus
# Peers `make bench` measures the gateway against: nginx and Caddy (2.6,
# run from a Caddyfile of the benchmark's own, not as the packaged
# service) for HTTP, PgBouncer for PostgreSQL; wrk drives HTTP.
BENCH_PKGS := nginx-light caddy wrk pgbouncer

.PHONY: all build run run-deps test detect-property deps chdb kube bench-deps bench soak fuzz vet clean plugins conformance conformance-run

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/gateway

# The built-in plugins, compiled to Wasm with the SDK like any customer's;
# each is built again only when the guest code changed.
PLUGINS := guard mask redact approve
PLUGIN_SRC := $(shell find plugins sdk -name '*.go' ! -name '*_test.go' 2>/dev/null) go.mod
plugins: build $(PLUGINS:%=bin/plugins/%.wasm)

bin/plugins/%.wasm: $(PLUGIN_SRC) | build
	@mkdir -p bin/plugins
	./$(BIN) plugin build plugins/$* -o $@

# The quick start: the gateway on the shipped gateway.toml in development
# mode, with the demo upstream and the demo database (Debian's postgresql,
# installed when missing, as `make deps` does). The gateway makes the demo
# credentials under .tollgate/ (which git ignores) on first start; the
# directory is made here searchable, so that the database's server, which
# runs as the postgres user when make runs as root, reaches its data.
run: build plugins chdb run-deps
	@mkdir -p .tollgate
	./$(BIN) serve --dev -c gateway.toml

run-deps:
	@.ci/install-packages postgresql

# -timeout 30m: a package's whole run under the race detector (detect's
# gitleaks comparison, the gateway binary's soak and bounds) outgrows go
# test's 10 minutes on a loaded 2-core machine; CI's own 90 minutes bound
# the whole.
test: deps vet
	$(GO) test -race -count=1 -timeout 30m ./...
	@$(MAKE) --no-print-directory detect-property
	@$(MAKE) --no-print-directory conformance-run

# Stream output equals whole-text output for every gitleaks sample over
# random chunkings: too slow under the race detector, so a step of its own.
detect-property:
	TOLLGATE_DETECT_PROPERTY=full $(GO) test -count=1 -run '^TestGitleaksStreamEqualsWhole$$' -timeout 20m ./internal/detect/

# pgx's own test suite run straight at PostgreSQL 15 and then through the
# gateway, each test's outcome compared (protocols/postgres/conformance_test.go;
# documented differences: protocols/postgres/testdata/pgx-conformance-known.txt).
# A step of its own after the other packages, not inside `go test ./...`:
# pgx has timing tests (100 ms statement timeouts, idle-pool checks) that
# flake when they share the 2 cores with our packages, and it takes about
# 3-5 minutes, which CI's budget holds.
conformance: deps conformance-run

conformance-run:
	TOLLGATE_CONFORMANCE=1 $(GO) test -count=1 -v -run '^TestPgxConformance$$' -timeout 30m ./protocols/postgres/

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./plugins/... ./examples/plugin/ ./examples/plugins/...
	@# sdk/ is a module of its own (plugins outside the repository require it).
	cd sdk && GOOS=wasip1 GOARCH=wasm $(GO) vet ./... && $(GO) vet ./...

# deps installs, idempotently, everything `make test` needs.
deps: chdb kube
	@.ci/install-packages $(TEST_PKGS)

# The Kubernetes control plane of the tests (kube-apiserver, etcd, kubectl),
# built from the Go module proxy into .deps/kube/; cached while its module
# (internal/testenv/kubebin) and the Go version are unchanged.
kube:
	@.ci/build-kube

# chDB's library for the embedded audit store (the shipped gateway.toml).
chdb:
	@.ci/install-chdb
	$(GO) mod download

bench-deps:
	@.ci/install-packages $(BENCH_PKGS)

# Each figure prints as: BENCH <name> <value> <unit> ratio=<r> vs <baseline>
# -p 1: one package's benchmarks at a time, so they do not share the cores.
bench: deps bench-deps
	$(GO) test -p 1 -run '^$$' -bench 'DefaultSets|SSHExec|RecordingOutput|Wrk|GitHTTP|TokenVerify|Plugins|Fuel|CallFloor|Pipeline|ClickHouseInsert|Spool|EmbeddedInsert|ApprovalResume|Pgbench|RowThroughput|StatementCost' -benchtime 1x ./protocols/http/ ./protocols/postgres/ ./protocols/ssh/ ./host/gate/ ./host/identity/ ./plugins/ ./host/plugin/ ./internal/detect/ ./host/plugin/internal/fuel/ ./host/audit/ ./host/audit/clickhouse/ ./host/audit/spool/ ./host/audit/embedded/ ./host/approval/ ./host/approval/chstore/ | tee .bench.out | grep '^BENCH' || (cat .bench.out; exit 1)

# The soak (cmd/gateway/soak_test.go, TestSoak): PostgreSQL sessions and
# HTTP clients through a real gateway with the default chain and the
# ClickHouse store, every fault of issue 19 in turn, each request matched
# to its audit row. Loopback only; stops by itself after SOAK_DURATION (plus
# the restarts and the final drain, about a minute). Not part of `make
# test`, which runs the 20-second TestSoakShort. It needs no chDB, so it
# installs only its peers. The figures go to
# .soak.out; docs/SOAK.md keeps a run to compare with. Then TestBounds
# (bounds_test.go, also in `make test`) runs with SOAK_ROWS rows through
# the mask plugin instead of make test's million (its BENCH bounds/...
# lines go to stdout).
#   make soak SOAK_DURATION=30m SOAK_PG=16 SOAK_HTTP=32 SOAK_DURABILITY=synced
# SOAK_CLUSTER=1 (read by the test from the environment) puts the audit
# trail on a 2-shard ClickHouse cluster with ZooKeeper instead.
SOAK_DURATION   ?= 2m
SOAK_PG         ?= 8
SOAK_HTTP       ?= 16
SOAK_DURABILITY ?=
SOAK_ROWS       ?= 10000000
# SOAK_PROFILES=DIR: [admin] pprof on, heap profiles of gateway "a" into DIR.
SOAK_PROFILES   ?=
# SOAK_MEMORY_LIMIT=bytes: [gateway] memory_limit for the gateways.
SOAK_MEMORY_LIMIT ?= 0
soak:
	@.ci/install-packages clickhouse-server clickhouse-client zookeeper postgresql
	$(GO) test -count=1 -v -run '^(TestSoak|TestBounds)$$' -timeout 90m ./cmd/gateway/ -args -soak.duration=$(SOAK_DURATION) \
		-soak.pg=$(SOAK_PG) -soak.http=$(SOAK_HTTP) -soak.durability=$(SOAK_DURABILITY) -soak.rows=$(SOAK_ROWS) -soak.out=$(CURDIR)/.soak.out \
		-soak.memory_limit=$(SOAK_MEMORY_LIMIT) $(if $(SOAK_PROFILES),-soak.profiles=$(abspath $(SOAK_PROFILES)))

# A short run of every fuzz target (go test runs their seeds in `make test`).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./host/config/
	$(GO) test -run '^$$' -fuzz FuzzScan -fuzztime $(FUZZTIME) ./host/config/internal/tomlpos/
	$(GO) test -run '^$$' -fuzz FuzzVerify -fuzztime $(FUZZTIME) ./host/identity/
	$(GO) test -run '^$$' -fuzz FuzzMatch -fuzztime $(FUZZTIME) ./host/access/glob/
	$(GO) test -run '^$$' -fuzz FuzzRewrite -fuzztime $(FUZZTIME) ./host/plugin/internal/fuel/
	$(GO) test -run '^$$' -fuzz FuzzParseSchema -fuzztime $(FUZZTIME) ./host/plugin/
	$(GO) test -run '^$$' -fuzz FuzzClassify -fuzztime $(FUZZTIME) ./internal/sqlclass/
	$(GO) test -run '^$$' -fuzz FuzzSplit -fuzztime $(FUZZTIME) ./internal/sqlclass/
	$(GO) test -run '^$$' -fuzz FuzzSetFind -fuzztime $(FUZZTIME) ./internal/detect/
	$(GO) test -run '^$$' -fuzz '^FuzzStream$$' -fuzztime $(FUZZTIME) ./internal/detect/
	$(GO) test -run '^$$' -fuzz '^FuzzStreamRules$$' -fuzztime $(FUZZTIME) ./internal/detect/
	$(GO) test -run '^$$' -fuzz '^FuzzStreamPhoneRegions$$' -fuzztime $(FUZZTIME) ./internal/detect/
	$(GO) test -run '^$$' -fuzz FuzzNeeds -fuzztime $(FUZZTIME) ./internal/detect/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./host/audit/spool/
	$(GO) test -run '^$$' -fuzz FuzzDecodeRow -fuzztime $(FUZZTIME) ./host/audit/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./host/audit/cast/
	$(GO) test -run '^$$' -fuzz FuzzRecordingOutput -fuzztime $(FUZZTIME) ./host/gate/
	$(GO) test -run '^$$' -fuzz FuzzClientMessages -fuzztime $(FUZZTIME) ./protocols/postgres/
	$(GO) test -run '^$$' -fuzz FuzzCopyLine -fuzztime $(FUZZTIME) ./protocols/postgres/
	$(GO) test -run '^$$' -fuzz FuzzStartupOptions -fuzztime $(FUZZTIME) ./protocols/postgres/
	$(GO) test -run '^$$' -fuzz FuzzServerMessages -fuzztime $(FUZZTIME) ./protocols/postgres/
	$(GO) test -run '^$$' -fuzz FuzzSettingRequest -fuzztime $(FUZZTIME) ./protocols/postgres/
	$(GO) test -run '^$$' -fuzz FuzzAnalyze -fuzztime $(FUZZTIME) ./protocols/postgres/internal/sqlref/
	$(GO) test -run '^$$' -fuzz FuzzSplit -fuzztime $(FUZZTIME) ./protocols/ssh/
	$(GO) test -run '^$$' -fuzz FuzzParseUser -fuzztime $(FUZZTIME) ./protocols/ssh/
	$(GO) test -run '^$$' -fuzz FuzzSFTPPackets -fuzztime $(FUZZTIME) ./protocols/ssh/
	$(GO) test -run '^$$' -fuzz FuzzSFTPChanged -fuzztime $(FUZZTIME) ./protocols/ssh/
	$(GO) test -run '^$$' -fuzz FuzzPktLine -fuzztime $(FUZZTIME) ./protocols/http/gitwire/
	$(GO) test -run '^$$' -fuzz FuzzCommandList -fuzztime $(FUZZTIME) ./protocols/http/gitwire/
	$(GO) test -run '^$$' -fuzz FuzzCheckPack -fuzztime $(FUZZTIME) ./protocols/http/gitwire/
	$(GO) test -run '^$$' -fuzz FuzzParseRequestInfo -fuzztime $(FUZZTIME) ./protocols/kube/

clean:
	rm -rf bin .bench.out
