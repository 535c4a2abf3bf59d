# Strata. `make run` starts a single-node broker; `make test` installs what
# the tests need and runs them (this is what .ci/run calls).
GO            ?= go
BIN           := bin/strata
# Tools are installed at pinned versions into bin/tools (not GOPATH/bin),
# so a different version found on the machine never changes the output.
GOBIN         := $(CURDIR)/bin/tools
PROTOC_GEN_GO := v1.36.12
PROTOC_GEN_GO_GRPC := v1.6.2
GRPCURL       := v1.9.4
NATS_SERVER   := v2.15.2
STATICCHECK   := v0.8.2
TEST_TIMEOUT  ?= 14m

.PHONY: all build run lint test test-browser screenshots compose-test test-cluster tools vet fmt-check proto proto-check bench bench-segment bench-compare docker clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/strata

run: build
	./$(BIN) server

# tools installs what the tests need: protoc (Debian's protobuf-compiler),
# kcat (Debian's kcat, the black-box Kafka client of the e2e tests),
# chromium (Debian's, the headless browser of the console's browser tests),
# the Go code generators at pinned versions, grpcurl for the e2e tests and
# staticcheck for `make lint`.
tools:
	@command -v protoc >/dev/null 2>&1 || { echo "installing protobuf-compiler"; \
	  (apt-get update -qq && apt-get install -y -qq protobuf-compiler) >/dev/null; }
	@command -v kcat >/dev/null 2>&1 || { echo "installing kcat"; \
	  (apt-get update -qq && apt-get install -y -qq kcat) >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium"; \
	  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null; }
	@$(MAKE) -s $(GOBIN)/.protoc-gen-go@$(PROTOC_GEN_GO) $(GOBIN)/.protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC) \
	  $(GOBIN)/.grpcurl@$(GRPCURL) $(GOBIN)/.staticcheck@$(STATICCHECK)

$(GOBIN)/.protoc-gen-go@%:
	GOBIN=$(GOBIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$*
	@touch $@

$(GOBIN)/.protoc-gen-go-grpc@%:
	GOBIN=$(GOBIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$*
	@touch $@

$(GOBIN)/.staticcheck@%:
	GOBIN=$(GOBIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$*
	@touch $@

$(GOBIN)/.grpcurl@%:
	GOBIN=$(GOBIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$*
	@touch $@

proto: tools
	PATH="$(GOBIN):$$PATH" protoc -I api/v1 --go_out=api/v1 --go_opt=paths=source_relative \
	  --go-grpc_out=api/v1 --go-grpc_opt=paths=source_relative api/v1/strata.proto

# proto-check regenerates into a temporary directory and fails when the
# committed code differs.
proto-check: tools
	@tmp=$$(mktemp -d); \
	PATH="$(GOBIN):$$PATH" protoc -I api/v1 --go_out=$$tmp --go_opt=paths=source_relative \
	  --go-grpc_out=$$tmp --go-grpc_opt=paths=source_relative api/v1/strata.proto; \
	for f in strata.pb.go strata_grpc.pb.go; do \
	  cmp -s $$tmp/$$f api/v1/$$f || { echo "api/v1/$$f is stale: run make proto"; rm -rf $$tmp; exit 1; }; \
	done; rm -rf $$tmp; echo "proto: generated code is current"

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd internal/console/browsertest && $(GO) vet ./...
	cd internal/benchcmp && $(GO) vet ./...

# lint runs staticcheck (checks chosen in staticcheck.conf) on every package.
lint: tools
	$(GOBIN)/staticcheck ./...

# test runs vet, the unit, model, crash and end-to-end tests with the race
# detector, and every fuzz corpus under */testdata/fuzz as ordinary tests;
# then the tests of internal/benchcmp (a module of its own: the root's ./...
# does not reach it), the console's browser tests (test-browser) and the
# compose test (.ci/compose-test: a 3-node cluster of containers with TLS
# and auth on; it skips when no Docker daemon answers).
test: tools fmt-check proto-check vet lint
	PATH="$(GOBIN):$$PATH" $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	cd internal/benchcmp && $(GO) test -race -count=1 ./...
	$(MAKE) -s test-browser
	./.ci/compose-test

# test-browser drives the web console of a real 3-node cluster of bin/strata
# processes with headless Chromium (internal/console/browsertest, a Go module
# of its own so that chromedp stays out of the main go.mod). Under CI=true a
# missing chromium fails it; elsewhere it skips.
test-browser: build
	cd internal/console/browsertest && STRATA_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 10m ./...

# screenshots retakes the console screenshots of the README.
screenshots: build
	cd internal/console/browsertest && STRATA_BIN=$(CURDIR)/$(BIN) \
	  STRATA_SCREENSHOTS=$(CURDIR)/internal/console/screenshots $(GO) test -count=1 -timeout 10m ./...

# test-cluster runs the long cluster tests: with real strata processes,
# 20 leader kills, isolated and paused leaders, catch-up of a wiped node;
# in process (internal/faulttest), 20 rounds of each fault schedule under
# the history checkers, for the log and for a queue group.
test-cluster: tools
	STRATA_CLUSTER_LONG=1 PATH="$(GOBIN):$$PATH" $(GO) test -race -count=1 -timeout 30m -run 'TestE2ECluster' -v ./cmd/strata
	STRATA_CLUSTER_LONG=1 $(GO) test -race -count=1 -timeout 60m -run 'TestFaults' -v ./internal/faulttest

bench-segment:
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 5 ./segment/ | tee bench-segment.txt

bench: bench-segment

# bench-compare runs Strata and NATS JetStream side by side on this machine
# (internal/benchcmp, a module of its own, so the server's go.mod has no
# NATS client): servers on 127.0.0.1 with data in a temporary directory,
# BENCH_ROUNDS rounds, one table per workload (medians), and the chart. It
# takes about 18 minutes; BENCH_ARGS passes more flags (run
# `bin/benchcmp -h`). Results: bench-compare.md, .svg and .json.
# Only the 3-node clusters (e), about 5 minutes:
#   make bench-compare BENCH_ROUNDS=3 BENCH_ARGS="-only e"
BENCH_ROUNDS  ?= 5
BENCH_ARGS    ?=
bench-compare: build
	@$(MAKE) -s $(GOBIN)/.nats-server@$(NATS_SERVER)
	cd internal/benchcmp && $(GO) build -o $(CURDIR)/bin/benchcmp ./cmd/benchcmp
	./bin/benchcmp -strata $(BIN) -nats-server $(GOBIN)/nats-server -rounds $(BENCH_ROUNDS) \
	  -svg bench-compare.svg -json bench-compare.json $(BENCH_ARGS) | tee bench-compare.md

$(GOBIN)/.nats-server@%:
	GOBIN=$(GOBIN) $(GO) install github.com/nats-io/nats-server/v2@$*
	@touch $@

compose-test:
	./.ci/compose-test

docker:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/strata-linux ./cmd/strata
	docker build -t strata:latest .

clean:
	rm -rf bin data
