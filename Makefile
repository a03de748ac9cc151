# jwk-aggregator. Two commands matter on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := build

KRAKEND_VERSION ?= 2.13.8
KRAKEND_MODULE  := github.com/krakend/krakend-ce/v2/cmd/krakend-ce@v$(KRAKEND_VERSION)
KRAKEND_LDFLAGS := -X github.com/luraproject/lura/v2/core.KrakendVersion=$(KRAKEND_VERSION)
# A gateway built elsewhere by this same Go toolchain can be named instead: make test KRAKEND_BIN=/path/krakend
KRAKEND_BIN     ?= $(CURDIR)/bin/krakend

GO      ?= go
CARGO   ?= cargo
RUST_LIB := target/release/libjwk_aggregator.a
HEADER   := include/jwk_aggregator.h
PLUGIN   := build/jwk-aggregator.so
RUST_SRC := $(wildcard src/*.rs) Cargo.toml
SHIM_SRC := $(wildcard go-shim/*.go) go-shim/go.mod

# Plugin and gateway must come from the same Go, both with cgo, neither with -trimpath.
export CGO_ENABLED := 1
# Go's build cache does not look inside the Rust static library it links, so a changed library
# would not relink the plugin. Its hash in the cgo flags makes every change a new build.
SHIM_ENV = CGO_CFLAGS="-O2 -g -DJWKA_CORE_SHA256=$(shell sha256sum $(RUST_LIB) | cut -c1-16)"

.PHONY: build bench fuzz load memcheck soak header plugin krakend run test test-rust test-shim test-gateway check-symbols tools clean

build: $(PLUGIN)

tools:
	@for t in $(GO) $(CARGO) cc nm; do command -v $$t >/dev/null || { echo "missing tool: $$t (Go, Rust via rustup, gcc and binutils are needed)"; exit 1; }; done

$(RUST_LIB): $(RUST_SRC) | tools
	$(CARGO) build --release --locked

# Regenerates the C header from the Rust sources; `make test` fails when the committed one is stale.
header:
	UPDATE_HEADER=1 $(CARGO) test --release --locked --test header

# --exclude-libs hides every Rust and aws-lc symbol of the static library: Go opens plugins with
# RTLD_GLOBAL, so exported symbols could clash with another plugin's. cgo refuses the flag in
# #cgo LDFLAGS, hence the environment.
# -s -w drops the symbol table and DWARF (27 MB -> 20 MB); panics still name their functions.
# PLUGIN_LDFLAGS= keeps them for a debugger.
PLUGIN_LDFLAGS ?= -s -w
$(PLUGIN): $(RUST_LIB) $(HEADER) $(SHIM_SRC)
	@mkdir -p build
	cd go-shim && $(SHIM_ENV) CGO_LDFLAGS="-Wl,--exclude-libs,ALL" $(GO) build -buildmode=plugin -ldflags="$(PLUGIN_LDFLAGS)" -o ../$(PLUGIN) .
	@ls -l $(PLUGIN)

plugin: $(PLUGIN)

# The stock gateway from its Go module, built by the same Go as the plugin. Skipped when
# bin/krakend already is that version built by this Go.
krakend: | tools
	@want="$(KRAKEND_VERSION) $$($(GO) env GOVERSION | sed 's/^go//')"; \
	if [ -x bin/krakend ] && [ "$$(bin/krakend version 2>/dev/null | awk '/KrakenD Version/{v=$$3} /Go Version/{g=$$3} END{print v" "g}')" = "$$want" ]; then \
		echo "bin/krakend is KrakenD CE $(KRAKEND_VERSION) built with this Go: nothing to do"; exit 0; fi; \
	mkdir -p bin; start=$$(date +%s); \
	if GOBIN=$(CURDIR)/bin $(GO) install -ldflags "$(KRAKEND_LDFLAGS)" $(KRAKEND_MODULE); then \
		mv bin/krakend-ce bin/krakend; echo "built bin/krakend in $$(( $$(date +%s) - start ))s"; \
	else \
		echo "ERROR: could not build KrakenD CE $(KRAKEND_VERSION) from $(KRAKEND_MODULE)."; \
		echo "       The Go module proxy must serve github.com/krakend/* and github.com/luraproject/*."; \
		echo "       Or build it yourself with this Go ($$($(GO) env GOVERSION)) and pass KRAKEND_BIN=/path/to/krakend."; \
		exit 1; fi


build/demo-idp: $(wildcard tests/idp/*.go tests/cmd/demo-idp/*.go)
	@mkdir -p build
	cd tests && $(GO) build -o ../build/demo-idp ./cmd/demo-idp

# Builds everything, starts two demo identity providers and KrakenD with krakend-config/.
run: build build/demo-idp
	@if [ "$(KRAKEND_BIN)" = "$(CURDIR)/bin/krakend" ]; then $(MAKE) --no-print-directory krakend; fi
	@set -m; build/demo-idp -provider idp-a:9101:RS256 -provider idp-b:9102:RS256 -provider idp-c:9103:ES256 & idp=$$!; \
	trap 'kill $$idp 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq 50); do curl -sf http://127.0.0.1:9103/jwks.json >/dev/null && break; sleep 0.1; done; \
	echo; echo "== jwk-aggregator demo: KrakenD on :8080, merged JWK Set on :9876 =="; \
	echo '  TOKEN_A=$$(curl -s "http://127.0.0.1:9101/token?sub=alice")'; \
	echo '  TOKEN_B=$$(curl -s "http://127.0.0.1:9102/token?sub=bob")'; \
	echo '  curl -i -H "Authorization: Bearer $$TOKEN_A" http://127.0.0.1:8080/protected   # 200'; \
	echo '  curl -i -H "Authorization: Bearer $$TOKEN_B" http://127.0.0.1:8080/protected   # 200'; \
	echo '  curl -i http://127.0.0.1:8080/protected                                       # 401'; \
	echo '  TOKEN_C=$$(curl -s "http://127.0.0.1:9103/token?sub=carol")                     # ES256'; \
	echo '  curl -i -H "Authorization: Bearer $$TOKEN_C" http://127.0.0.1:8080/multi       # 200 (jwk-aggregator-auth)'; \
	echo '  curl -i -H "Authorization: Bearer $$TOKEN_A" http://127.0.0.1:8080/multi       # 200'; \
	echo '  curl -s http://127.0.0.1:9876/ ; curl -s http://127.0.0.1:9876/__health ; curl -s http://127.0.0.1:9876/metrics'; \
	echo "Ctrl-C stops everything."; echo; \
	$(KRAKEND_BIN) run -c krakend-config/krakend.json

test-rust: | tools
	$(CARGO) test --release --locked

test-shim: $(PLUGIN)
	cd go-shim && $(SHIM_ENV) $(GO) vet ./... && $(SHIM_ENV) $(GO) test -race -count=1 ./...
	cd tests && $(SHIM_ENV) $(GO) vet ./... && $(SHIM_ENV) $(GO) test -count=1 ./fuzz/

# No Rust or aws-lc symbol may be exported by the plugin.
check-symbols: $(PLUGIN)
	@n=$$(nm -D --defined-only $(PLUGIN) | awk '{print $$3}' | grep -cE '^(_ZN|_R[A-Z0-9]|aws_lc|AWS_LC|rust_|__rust|jwka_|ring_core)' || true); \
	echo "plugin exports $$n Rust/aws-lc dynamic symbols; size $$(stat -c %s $(PLUGIN)) bytes"; [ "$$n" = 0 ]

test-gateway: $(PLUGIN)
	out=$$($(KRAKEND_BIN) test-plugin -s $(PLUGIN) 2>&1); echo "$$out"; grep -q '\[OK\] SERVER' <<<"$$out"
	cd tests && KRAKEND_BIN=$(KRAKEND_BIN) PLUGIN_SO=$(CURDIR)/$(PLUGIN) $(GO) test -count=1 -v ./integration/ 2>&1 | tee ../build/gateway-test.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go'; exit $${PIPESTATUS[0]}

# Unit, C-API, shim and gateway tests. When KrakenD CE cannot be built here (see `make krakend`)
# the gateway tests are reported as NOT RUN, never as passed.
test: test-rust test-shim check-symbols memcheck
	@if [ "$(KRAKEND_BIN)" = "$(CURDIR)/bin/krakend" ]; then $(MAKE) --no-print-directory krakend || true; fi
	@if [ -x "$(KRAKEND_BIN)" ]; then $(MAKE) --no-print-directory test-gateway; else \
		n=$$(cat tests/integration/*_test.go | grep -c '^func Test'); \
		echo "NOT RUN: $$n gateway integration tests (no KrakenD binary at $(KRAKEND_BIN); see the ERROR above)"; \
		if [ -n "$$REQUIRE_GATEWAY" ]; then exit 1; fi; fi

# Speed figures live here, never in tests. Writes BENCHMARKS.md. The gateway part needs KrakenD
# (see `make krakend`) and wrk, which it installs from Debian's packages when missing.
bench: $(PLUGIN)
	@mkdir -p build
	cd go-shim && $(SHIM_ENV) $(GO) test -run '^$$' -bench 'ColdMerge' -benchtime 10x -count 3 . | tee ../build/bench.txt
	cd go-shim && $(SHIM_ENV) $(GO) test -run '^$$' -bench 'ConcurrentColdRequests' -benchtime 3x -count 3 . | tee -a ../build/bench.txt
	cd go-shim && $(SHIM_ENV) $(GO) test -run '^$$' -bench 'Serve' -benchtime 3s -count 3 . | tee -a ../build/bench.txt
	cd tests && $(SHIM_ENV) $(GO) test -run '^$$' -bench 'Verify' -benchtime 1s -count 3 ./bench/ | tee -a ../build/bench.txt
	@rm -f build/gateway-bench.md
	@if [ "$(KRAKEND_BIN)" = "$(CURDIR)/bin/krakend" ]; then $(MAKE) --no-print-directory krakend || true; fi
	@if [ -x "$(KRAKEND_BIN)" ]; then \
		command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }; \
		cd tests && $(GO) build -o ../build/gateway-bench ./cmd/gateway-bench && cd .. && \
		build/gateway-bench -krakend $(KRAKEND_BIN) -plugin $(PLUGIN) -duration 10s | tee build/gateway-bench.md; \
	else echo "gateway throughput NOT MEASURED: no KrakenD binary at $(KRAKEND_BIN)"; fi
	tests/bench-report.sh build/bench.txt build/gateway-bench.md > BENCHMARKS.md
	@cat BENCHMARKS.md

# The C harness calls every exported function, error paths included, under valgrind: any leak
# (definite or indirect) or invalid access fails. Its origin is a loopback static file server.
memcheck: $(RUST_LIB)
	@mkdir -p build
	cc -std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude tests/c/harness.c $(RUST_LIB) -lpthread -ldl -lm -o build/harness
	@command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
	@port=$$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	python3 -m http.server $$port --bind 127.0.0.1 --directory tests/c >/dev/null 2>&1 & srv=$$!; \
	trap 'kill $$srv' EXIT; \
	for i in $$(seq 50); do curl -sf http://127.0.0.1:$$port/fixture-jwks.json >/dev/null && break; sleep 0.1; done; \
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect build/harness http://127.0.0.1:$$port/fixture-jwks.json "$$(cat tests/c/fixture-token.txt)" 2>&1 | tee build/memcheck.log | tail -25; \
	exit $${PIPESTATUS[0]}

# Go native fuzzing of the Rust core through its C API (no nightly Rust toolchain is needed).
# Each target runs FUZZTIME; findings land in tests/fuzz/testdata/fuzz and then run in make test.
FUZZTIME ?= 60s
fuzz: $(RUST_LIB)
	cd tests && for t in FuzzSettings FuzzJWKS FuzzToken; do \
		$(SHIM_ENV) $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./fuzz/ || exit 1; done

# 1,000,000 verifications and 100,000 aggregator requests in one process; fails when memory or
# threads grow. Writes build/soak.md.
soak: $(RUST_LIB)
	@mkdir -p build
	cd tests && $(SHIM_ENV) $(GO) build -o ../build/soak ./cmd/soak
	build/soak -verifications 1000000 -requests 100000 | tee build/soak.md

# Load through real KrakenD while one identity provider is stopped and restarted and another
# rotates its keys: zero 5xx and no valid token refused, or it fails. Writes build/load.md.
LOAD_DURATION ?= 60s
load: $(PLUGIN)
	@if [ "$(KRAKEND_BIN)" = "$(CURDIR)/bin/krakend" ]; then $(MAKE) --no-print-directory krakend; fi
	cd tests && $(GO) build -o ../build/fault-load ./cmd/fault-load
	build/fault-load -krakend $(KRAKEND_BIN) -plugin $(PLUGIN) -duration $(LOAD_DURATION) -concurrency 64 | tee build/load.md

clean:
	rm -rf target build
