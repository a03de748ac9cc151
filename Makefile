# jwk-aggregator. Two commands matter on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := build

GO      ?= go
CARGO   ?= cargo

# A Go plugin loads only into a gateway built by the same Go release, for the same CPU (and its
# GOAMD64/GOARM64 level) and libc, both with cgo, both with or both without -trimpath, with the
# same build tags. Anything else aborts the gateway at start-up. So the plugin is built with
# exactly the Go that built the KrakenD it is for, whatever Go is installed (Go fetches that
# release by itself).
#
# Default: the official release KRAKEND_VERSION, its Go taken from data/krakend-releases.tsv.
# LIBC=glibc for the official .deb/.tgz packages, LIBC=musl for the official (Alpine) Docker images.
# ARCH=amd64 or arm64 (below): the CPU, this machine's by default.
# KRAKEND=/path/to/krakend: every setting is read from that binary instead (make build, install).
KRAKEND_VERSION ?= 2.13.8
LIBC            ?= glibc
RELEASES        := data/krakend-releases.tsv
# The oldest Go the shim compiles with: the `go` line of its go.mod.
SHIM_GO_MIN     := $(shell awk '$$1 == "go" {print $$2}' go-shim/go.mod)

# `make test KRAKEND_BIN=...` and `make run KRAKEND_BIN=...` build the plugin for that gateway.
ifeq ($(KRAKEND),)
ifneq ($(filter command line environment,$(origin KRAKEND_BIN)),)
KRAKEND := $(KRAKEND_BIN)
endif
endif
# check-plugin compares whatever it is given, so it must not stop here on an unmatchable gateway.
ifneq ($(KRAKEND),)
ifeq ($(filter check-plugin,$(MAKECMDGOALS)),)
MATCH := $(shell mkdir -p build && cd tools/plugin-check && $(GO) build -o ../../build/plugin-check . && \
	../../build/plugin-check match -min-go $(SHIM_GO_MIN) '$(abspath $(KRAKEND))')
ifneq ($(.SHELLSTATUS),0)
$(error cannot build a plugin for KRAKEND=$(KRAKEND): see above (a wrapper script that runs the gateway under an emulator? name the binary itself in KRAKEND or KRAKEND_BIN, and the emulator in KRAKEND_EXEC))
endif
$(foreach v,$(MATCH),$(eval override $(v)))
endif
endif

GO_VERSION ?= $(shell awk -F'\t' '$$1 == "$(KRAKEND_VERSION)" {print $$2}' $(RELEASES))
GOAMD64    ?= v1
GOARM64    ?= v8.0
TRIMPATH   ?= 0
GO_TAGS    ?=
export GOAMD64 GOARM64
# The Go that builds the plugin and the development gateway.
PINNED_GO  := GOTOOLCHAIN=go$(GO_VERSION) $(GO)
GO_BUILD_FLAGS := $(if $(filter 1,$(TRIMPATH)),-trimpath) $(if $(GO_TAGS),-tags $(GO_TAGS))

# ARCH: the gateway's CPU, amd64 or arm64 (this machine's by default). Another one is cross-built:
# Rust's target for that CPU and libc, a C cross compiler for cgo and aws-lc, GOARCH for Go.
HOST_ARCH := $(patsubst x86_64,amd64,$(patsubst aarch64,arm64,$(shell uname -m)))
ARCH      ?= $(HOST_ARCH)
ifeq ($(ARCH),amd64)
CPU       := x86_64
GO_LEVEL_VAR := GOAMD64
else ifeq ($(ARCH),arm64)
CPU       := aarch64
GO_LEVEL_VAR := GOARM64
else
$(error ARCH must be amd64 or arm64, not "$(ARCH)")
endif
GO_LEVEL  := $($(GO_LEVEL_VAR))
CROSS     := $(if $(filter $(HOST_ARCH),$(ARCH)),,1)
# Debian's cross gcc and binutils for that CPU (gcc-aarch64-linux-gnu): used only when cross-building.
GNU_CC    := $(if $(CROSS),$(CPU)-linux-gnu-gcc,cc)
GNU_AR    := $(if $(CROSS),$(CPU)-linux-gnu-ar,ar)
APT_CROSS := $(if $(CROSS),gcc-$(subst _,-,$(CPU))-linux-gnu)

ifeq ($(LIBC),glibc)
RUST_TARGET := $(CPU)-unknown-linux-gnu
PLUGIN_CC   := $(GNU_CC)
APT_PKGS    := $(APT_CROSS)
else ifeq ($(LIBC),musl)
RUST_TARGET := $(CPU)-unknown-linux-musl
# Debian's musl-gcc wrappers: musl-gcc (musl-tools) on amd64; for arm64 aarch64-linux-musl-gcc, which
# Debian's musl-dev:arm64 ships to drive its cross gcc against musl's arm64 headers and crt files
# (apt packages only: no second compiler such as zig to fetch and trust). On Alpine (krakend/builder)
# the native gcc: make build LIBC=musl MUSL_CC=gcc.
MUSL_CC     ?= $(if $(filter amd64,$(ARCH)),musl-gcc,$(CPU)-linux-musl-gcc)
PLUGIN_CC   := $(MUSL_CC)
APT_PKGS    := $(if $(filter amd64,$(ARCH)),musl-tools,$(APT_CROSS) musl-dev:$(ARCH))
else
$(error LIBC must be glibc or musl, not "$(LIBC)")
endif
# This machine's own glibc build stays in target/release, which the tests share; any other target
# is built with --target into target/<triple>/release.
ifeq ($(LIBC)-$(CROSS),glibc-)
RUST_LIB    := target/release/libjwk_aggregator.a
PLUGIN_LIBS  = $(RUST_LIB)
else
RUST_LIB    := target/$(RUST_TARGET)/release/libjwk_aggregator.a
ifeq ($(LIBC),musl)
# Rust's std leaves the unwinder to the final link, and gcc would take libgcc_eh, which Debian
# builds for glibc (natively and in its cross compilers alike): it calls _dl_find_object, which
# musl does not have, so the plugin would fail to load ("Error relocating ...: _dl_find_object:
# symbol not found"). The LLVM libunwind that ships with Rust's musl target (x86_64 and aarch64
# alike) is built for musl (it walks dl_iterate_phdr) and is the one Rust's own musl programs link;
# named before gcc's libraries, it leaves nothing for libgcc_eh to provide.
PLUGIN_LIBS  = $(RUST_LIB) $(shell rustc --print sysroot)/lib/rustlib/$(RUST_TARGET)/lib/self-contained/libunwind.a
else
PLUGIN_LIBS  = $(RUST_LIB)
endif
endif

HEADER   := include/jwk_aggregator.h
# One folder per build variant, so that switching Go release or libc never reuses a stale plugin.
VARIANT    := go$(GO_VERSION)-$(LIBC)-$(ARCH)$(GO_LEVEL)$(if $(filter 1,$(TRIMPATH)),-trimpath)$(if $(GO_TAGS),-tags-$(subst $(comma),-,$(GO_TAGS)))
comma      := ,
space      := $(subst ,, )
PLUGIN_OUT := build/$(VARIANT)/jwk-aggregator.so
# The file users take; `make check-plugin PLUGIN=...` names another.
PLUGIN     ?= build/jwk-aggregator.so
RUST_SRC := $(shell find src -name '*.rs') Cargo.toml Cargo.lock
SHIM_SRC := $(wildcard go-shim/*.go) go-shim/go.mod

# Tools, identity providers and development gateways are kept in a cache outside the repository,
# so that `make clean` and fresh clones (CI) reuse them.
TOOLS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/jwk-aggregator
# The development gateways: the official release KRAKEND_VERSION for LIBC, built like the official
# one (`make krakend`), one folder per release, Go, libc and CPU.
DEV_KRAKEND ?= $(TOOLS_CACHE)/krakend/$(KRAKEND_VERSION)-go$(GO_VERSION)-$(LIBC)-$(HOST_ARCH)/krakend
# A gateway built elsewhere can be named instead: make test KRAKEND_BIN=/path/krakend
KRAKEND_BIN ?= $(DEV_KRAKEND)
# A gateway for another CPU runs under user-mode emulation: KRAKEND_EXEC is the command put in front
# of it. By default, for an arm64 gateway on an amd64 machine, Debian's qemu-aarch64 (qemu-user)
# with the aarch64 glibc of the cross compiler as its sysroot (a musl gateway finds musl's loader,
# /lib/ld-musl-aarch64.so.1 from Debian's musl:arm64, outside it). plugin-check keeps reading the
# binary itself; whatever starts the gateway (test-plugin, the gateway tests, run, bench, load)
# starts build/krakend-exec, a two-line wrapper written from both.
KRAKEND_EXEC ?= $(if $(CROSS),qemu-$(CPU) -L /usr/$(CPU)-linux-gnu)
RUN_KRAKEND  := $(if $(KRAKEND_EXEC),$(CURDIR)/build/krakend-exec,$(KRAKEND_BIN))
# KrakenD CE's module: github.com/krakend/... from 2.12 on, github.com/krakendio/... before (tried
# in that order; the other is the fallback).
KRAKEND_ORGS = $(if $(filter 2.12.0,$(firstword $(shell printf '%s\n' 2.12.0 $(KRAKEND_VERSION) | sort -V))),krakend krakendio,krakendio krakend)
# The Go module proxy here refuses KrakenD's own modules; ../shared/goproxy, beside the clone, holds
# them at their go.sum hashes and is put in front of the default proxy when it is there. The
# checksum database does not know them; each is still checked against krakend-ce's go.sum.
KRAKEND_GOPROXY ?= $(abspath $(CURDIR)/../shared/goproxy)
KRAKEND_GOENV   := $(if $(wildcard $(KRAKEND_GOPROXY)/github.com),GOPROXY="file://$(KRAKEND_GOPROXY)$(comma)$$($(GO) env GOPROXY)" \
	GONOSUMDB=github.com/krakend$(comma)github.com/krakendio$(comma)github.com/luraproject)
# What the official Makefile stamps into KrakenD (its find_glibc.sh computes the libc string).
OS_RELEASE = $$(. /etc/os-release; echo "$$ID-$$VERSION_ID")
LIBC_STRING = $(if $(filter musl,$(LIBC)),MUSL-$$(/lib/ld-musl-x86_64.so.1 2>&1 | awk '/^Version/{print $$2}'),GLIBC-$$(ldd --version 2>&1 | awk '/^ldd/{print $$NF}'))_($(OS_RELEASE))
# Older releases' Makefiles (2.6.1) stamp the Go version too (core.GoVersion): without it their
# `krakend version` says "Go Version: undefined". Where lura reads it at run time, it says the same.
KRAKEND_LDFLAGS = -X github.com/$$org/krakend-ce/v2/pkg.Version=$(KRAKEND_VERSION) \
	-X github.com/luraproject/lura/v2/core.KrakendVersion=$(KRAKEND_VERSION) \
	-X github.com/luraproject/lura/v2/core.GoVersion=$(GO_VERSION) \
	-X github.com/luraproject/lura/v2/core.GlibcVersion=$(LIBC_STRING)

# What a gateway this Makefile starts runs with: no KRAKEND_* variable (KrakenD reads them as
# configuration overrides, and make exports its command line: KRAKEND_VERSION=2.10.2 would become
# the configuration's "version"), and no usage report leaving the machine.
GATEWAY_ENV = env $$(env | awk -F= '/^KRAKEND_/ {printf "-u %s ", $$1}') USAGE_DISABLE=1

# Plugin and gateway must come from the same Go, both with cgo, neither with -trimpath.
export CGO_ENABLED := 1
# Go's build cache does not look inside the Rust static library it links, so a changed library
# would not relink the plugin. Its hash in the cgo flags makes every change a new build.
SHIM_ENV = CGO_CFLAGS="-O2 -g -DJWKA_CORE_SHA256=$(shell sha256sum $(RUST_LIB) 2>/dev/null | cut -c1-16)"
# The shim's own tests run on this machine (glibc, race detector) whatever LIBC the plugin is for.
SHIM_TEST_ENV = CGO_CFLAGS="-O2 -g -DJWKA_CORE_SHA256=$(shell sha256sum target/release/libjwk_aggregator.a 2>/dev/null | cut -c1-16)" \
	CGO_LDFLAGS="$(CURDIR)/target/release/libjwk_aggregator.a"

.PHONY: redis-server test-gateways test-releases build bench fuzz fuzz-tools asan load memcheck soak header plugin krakend krakend-status run test test-rust test-shim test-gateway test-build test-cli test-dist check-dist check-symbols check-release check-plugin krakend-exec install dist dist-one releases dist-version sbom test-sbom lint-workflows toolchain toolchains musl-toolchain tools clean test-all test-realidp

# The plugin for KRAKEND_VERSION and LIBC (or for KRAKEND), copied to build/jwk-aggregator.so, and
# the operator's command build/jwk-aggregator with the plugin-check it uses.
build: $(PLUGIN_OUT) build/jwk-aggregator build/plugin-check
	@cmp -s $(PLUGIN_OUT) $(PLUGIN) || cp $(PLUGIN_OUT) $(PLUGIN)
	@echo "$(PLUGIN): for KrakenD $(KRAKEND_VERSION) built with Go $(GO_VERSION) and $(LIBC) for linux/$(ARCH) ($(GO_LEVEL_VAR)=$(GO_LEVEL), $(if $(filter 1,$(TRIMPATH)),with,without) -trimpath$(if $(GO_TAGS),$(comma) tags $(GO_TAGS)))"

tools:
	@for t in $(GO) $(CARGO) cc nm; do command -v $$t >/dev/null || { echo "missing tool: $$t (Go, Rust via rustup, gcc and binutils are needed)"; exit 1; }; done

# An unknown or unsupported release is an error before anything is built.
check-release:
	@[ -n "$(GO_VERSION)" ] || { echo "ERROR: KRAKEND_VERSION=$(KRAKEND_VERSION) is not a KrakenD CE v2 release listed in $(RELEASES)."; exit 1; }
	@if [ "$$(printf '%s\n' "$(SHIM_GO_MIN)" "$(GO_VERSION)" | sort -V | head -n1)" != "$(SHIM_GO_MIN)" ]; then \
		echo "ERROR: KrakenD $(KRAKEND_VERSION) is built with Go $(GO_VERSION); the plugin needs Go $(SHIM_GO_MIN) or later, which means KrakenD 2.6.1 or later."; exit 1; fi

# The C compiler and Rust target of ARCH and LIBC, installed when missing (Debian's packages,
# rustup), or the command that would install them and a failure. Debian's arm64 musl files come
# from its arm64 packages, which apt installs beside the amd64 ones once arm64 is a foreign
# architecture of dpkg.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL = $(if $(filter %:arm64,$(APT_PKGS)),$(SUDO) dpkg --add-architecture arm64 && )$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(APT_PKGS)
toolchain:
	@command -v $(PLUGIN_CC) >/dev/null || { [ -n "$(APT_PKGS)" ] && echo "installing $(APT_PKGS) ($(PLUGIN_CC)) from Debian's packages" && \
		{ $(APT_INSTALL) >/dev/null; } && command -v $(PLUGIN_CC) >/dev/null; } || \
		{ echo "ERROR: $(PLUGIN_CC) is missing and could not be installed; install it with: $(or $(APT_INSTALL),a C compiler for $(ARCH) $(LIBC))"; exit 1; }
	@[ -z "$(CROSS)$(filter musl,$(LIBC))" ] || rustup target list --installed 2>/dev/null | grep -qx $(RUST_TARGET) || rustup target add $(RUST_TARGET) || \
		{ echo "ERROR: Rust's $(RUST_TARGET) target is missing; install it with: rustup target add $(RUST_TARGET)"; exit 1; }

# Every C compiler and Rust target `make dist` needs.
toolchains:
	@for arch in amd64 arm64; do for libc in glibc musl; do \
		$(MAKE) --no-print-directory -s toolchain ARCH=$$arch LIBC=$$libc KRAKEND= KRAKEND_BIN= || exit 1; done; done

# The name earlier Makefiles used.
musl-toolchain:
	@$(MAKE) --no-print-directory toolchain LIBC=musl

target/release/libjwk_aggregator.a target/release/jwk-aggregator &: $(RUST_SRC) | tools
	$(CARGO) build --release --locked

build/jwk-aggregator: target/release/jwk-aggregator
	@mkdir -p build
	cp $< $@

# Any other target: only the static library the plugin links (cargo rustc --crate-type), so no
# linker for that target is needed. The cc crate compiles aws-lc with that target's C compiler.
target/$(RUST_TARGET)/release/libjwk_aggregator.a: $(RUST_SRC) | tools toolchain
	CC_$(subst -,_,$(RUST_TARGET))="$(PLUGIN_CC)" AR_$(subst -,_,$(RUST_TARGET))=$(GNU_AR) \
		$(CARGO) rustc --release --locked --lib --crate-type staticlib --target $(RUST_TARGET)

# Regenerates the C header from the Rust sources; `make test` fails when the committed one is stale.
header:
	UPDATE_HEADER=1 $(CARGO) test --release --locked --test header

# --exclude-libs hides every Rust and aws-lc symbol of the static library: Go opens plugins with
# RTLD_GLOBAL, so exported symbols could clash with another plugin's. cgo refuses the flag in
# #cgo LDFLAGS, hence the environment, which also names the library of the wanted libc.
# -fuse-ld=bfd: Go before 1.25.10 asks gcc for gold when it links an arm64 plugin, and gold keeps
# the static library's thread-local Rust symbols (std, tokio, parking_lot) exported despite
# --exclude-libs; GNU ld hides them. Coming after Go's own -fuse-ld=gold, it wins.
# -s -w drops the symbol table and DWARF (27 MB -> 20 MB); panics still name their functions.
# PLUGIN_LDFLAGS= keeps them for a debugger.
PLUGIN_LDFLAGS ?= -s -w
$(PLUGIN_OUT): $(RUST_LIB) $(HEADER) $(SHIM_SRC) | check-release toolchain
	@mkdir -p $(@D)
	cd go-shim && $(SHIM_ENV) GOOS=linux GOARCH=$(ARCH) CC=$(PLUGIN_CC) CGO_LDFLAGS="$(abspath $(PLUGIN_LIBS)) -Wl,--exclude-libs,ALL -fuse-ld=bfd" \
		$(PINNED_GO) build -buildmode=plugin $(GO_BUILD_FLAGS) -ldflags="$(PLUGIN_LDFLAGS)" -o ../$@ .
	@ls -l $@

plugin: build

build/plugin-check: $(wildcard tools/plugin-check/*.go) tools/plugin-check/go.mod
	@mkdir -p build
	cd tools/plugin-check && $(GO) build -o ../../$@ .

# Compares a gateway and a plugin without loading either: exit 1, naming both sides, on a mismatch.
check-plugin: build/plugin-check
	@[ -n "$(KRAKEND)" ] || { echo "usage: make check-plugin KRAKEND=/path/to/krakend [PLUGIN=$(PLUGIN)]"; exit 2; }
	@build/plugin-check compare -min-go $(SHIM_GO_MIN) "$(KRAKEND)" "$(PLUGIN)"

# Builds a plugin matching KRAKEND, checks it, lets that KrakenD load it (test-plugin), and only
# then copies it into PLUGIN_DIR.
install: build build/plugin-check
	@[ -n "$(KRAKEND)" ] && [ -n "$(PLUGIN_DIR)" ] || { echo "usage: make install KRAKEND=/path/to/krakend PLUGIN_DIR=/path/to/plugins"; exit 2; }
	@[ -d "$(PLUGIN_DIR)" ] || { echo "ERROR: PLUGIN_DIR=$(PLUGIN_DIR) is not a folder; nothing installed"; exit 1; }
	@build/plugin-check compare -min-go $(SHIM_GO_MIN) "$(KRAKEND)" $(PLUGIN_OUT) || { echo "ERROR: nothing installed"; exit 1; }
	@out=$$($(GATEWAY_ENV) $(KRAKEND_EXEC) "$(KRAKEND)" test-plugin -s $(PLUGIN_OUT) 2>&1); echo "$$out"; \
		grep -q '\[OK\] SERVER' <<<"$$out" || { echo "ERROR: $(KRAKEND) test-plugin did not load $(PLUGIN_OUT); nothing installed"; exit 1; }
	install -m 0644 $(PLUGIN_OUT) "$(PLUGIN_DIR)/jwk-aggregator.so"
	@for f in "$(PLUGIN_DIR)"/*.so*; do [ "$$f" = "$(PLUGIN_DIR)/jwk-aggregator.so" ] && continue; [ -e "$$f" ] || continue; \
		build/plugin-check describe "$$f" >/dev/null 2>&1 || echo "WARNING: $$f is not a Go plugin; KrakenD opens every file in its plugin folder whose name matches the plugin pattern, and such a file can abort it at start-up: move it out"; done
	@echo "installed $(PLUGIN_DIR)/jwk-aggregator.so"

# The release artifacts: for each KrakenD release of DIST_RELEASES, a plugin per CPU of DIST_ARCHS
# and C library of DIST_LIBCS (by default KRAKEND_VERSION: amd64 and arm64, glibc and musl, four
# plugins), each with a .txt of its build information, and SHA256SUMS. DIST_RELEASES=all is every
# supported release (the release workflow). Releases built by the same Go share one build.
DIST_VERSION := $(shell awk -F'"' '/^version/ {print $$2; exit}' Cargo.toml)
DIST_NAME     = jwk-aggregator-$(DIST_VERSION)-krakend-$(KRAKEND_VERSION)-linux-$(ARCH)-$(LIBC)
# Every release of data/krakend-releases.tsv built with Go SHIM_GO_MIN or later, newest first.
SUPPORTED_RELEASES := $(shell awk -F'\t' 'NR > 1 {print $$1, $$2}' $(RELEASES) | \
	while read k g; do [ "$$(printf '%s\n' $(SHIM_GO_MIN) $$g | sort -V | head -n1)" = $(SHIM_GO_MIN) ] && echo $$k; done)
DIST_RELEASES ?= $(KRAKEND_VERSION)
DIST_ARCHS    ?= amd64 arm64
DIST_LIBCS    ?= glibc musl
DIST_LIST     := $(if $(filter all,$(DIST_RELEASES)),$(SUPPORTED_RELEASES),$(DIST_RELEASES))
# KRAKEND and KRAKEND_BIN are cleared: these are the official releases' plugins, not one binary's.
dist:
	@start=$$(date +%s); rm -rf dist; mkdir -p dist; \
	for k in $(DIST_LIST); do for arch in $(DIST_ARCHS); do for libc in $(DIST_LIBCS); do \
		$(MAKE) --no-print-directory dist-one KRAKEND_VERSION=$$k ARCH=$$arch LIBC=$$libc KRAKEND= KRAKEND_BIN= || exit 1; \
	done; done; done; \
	cd dist && sha256sum *.so > SHA256SUMS && cd .. && ls -l dist && echo "make dist took $$(( $$(date +%s) - start ))s"

releases:
	@echo $(SUPPORTED_RELEASES)

dist-version:
	@echo $(DIST_VERSION)

dist-one: $(PLUGIN_OUT) build/plugin-check
	cp $(PLUGIN_OUT) dist/$(DIST_NAME).so
	@{ echo "$(DIST_NAME).so"; echo; \
	  echo "jwk-aggregator $(DIST_VERSION) for KrakenD CE $(KRAKEND_VERSION) on linux/$(ARCH): the official $(if $(filter musl,$(LIBC)),Docker image (krakend:$(KRAKEND_VERSION), Alpine/musl),.deb/.tgz packages (glibc))."; \
	  echo "It loads only into a KrakenD built with the settings below; check yours with"; \
	  echo "  make check-plugin KRAKEND=/path/to/krakend PLUGIN=$(DIST_NAME).so"; echo; \
	  build/plugin-check describe dist/$(DIST_NAME).so | sed 's|^file: .*|file:      $(DIST_NAME).so|'; \
	  echo "needed:    $$(readelf -d dist/$(DIST_NAME).so | awk '/NEEDED/{gsub(/[][]/,"",$$NF); printf "%s ", $$NF}')"; \
	  echo "sha256:    $$(sha256sum dist/$(DIST_NAME).so | cut -d' ' -f1)"; } > dist/$(DIST_NAME).txt
	@cat dist/$(DIST_NAME).txt

# Checks the artifacts of `make dist` as files: build information, CPU, libraries they need,
# checksums.
test-dist: dist
	@$(MAKE) --no-print-directory -s check-dist KRAKEND= KRAKEND_BIN=

# What each artifact may need: a musl plugin only musl's libc (which the official Alpine image
# has, and which musl's loader is itself); a glibc plugin only glibc's own libraries.
MUSL_NEEDED  := libc.so ld-musl-x86_64.so.1 ld-musl-aarch64.so.1
GLIBC_NEEDED := libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libgcc_s.so.1 ld-linux-x86-64.so.2 ld-linux-aarch64.so.1
check-dist: build/plugin-check
	cd dist && sha256sum -c SHA256SUMS
	@for k in $(DIST_LIST); do for arch in $(DIST_ARCHS); do for libc in $(DIST_LIBCS); do \
		f=dist/jwk-aggregator-$(DIST_VERSION)-krakend-$$k-linux-$$arch-$$libc.so; \
		go=$$(awk -F'\t' -v k=$$k '$$1 == k {print $$2}' $(RELEASES)); \
		cpu=$$(case $$arch in amd64) echo x86-64;; arm64) echo aarch64;; esac); \
		d=$$(build/plugin-check describe $$f) || exit 1; \
		grep -qx "go:        $$go" <<<"$$d" || { echo "FAIL: $$f is not built with Go $$go"; exit 1; }; \
		grep -q "^platform:  linux/$$arch " <<<"$$d" || { echo "FAIL: $$f is not built for linux/$$arch"; exit 1; }; \
		grep -qx "machine:   $$cpu" <<<"$$d" || { echo "FAIL: $$f is not an ELF file for $$cpu"; exit 1; }; \
		grep -q "^libc:      $$libc " <<<"$$d" || { echo "FAIL: $$f is not a $$libc build"; exit 1; }; \
		grep -qx "trimpath:  no" <<<"$$d" || { echo "FAIL: $$f is built with -trimpath"; exit 1; }; \
		needed=$$(readelf -d $$f | awk '/NEEDED/{print $$NF}' | tr -d '[]' | tr '\n' ' '); \
		allowed=" $$([ $$libc = musl ] && echo $(MUSL_NEEDED) || echo $(GLIBC_NEEDED)) "; \
		for n in $$needed; do [[ "$$allowed" == *" $$n "* ]] || { echo "FAIL: $$f needs $$n; a $$libc system may not have it (it needs $$needed)"; exit 1; }; done; \
		if [ $$libc = musl ] && readelf --dyn-syms -W $$f | awk '$$7 == "UND" {print $$8}' | grep -qE '^(_dl_find_object|__.*_chk)(@|$$)'; then \
			echo "FAIL: $$f needs a glibc-only symbol"; exit 1; fi; \
		n=$$(nm -D --defined-only $$f | awk '{print $$3}' | grep -cE '$(RUST_SYMBOLS)' || true); \
		[ "$$n" = 0 ] || { echo "FAIL: $$f exports $$n Rust/aws-lc symbols"; exit 1; }; \
		echo "ok: $$f (linux/$$arch, $$libc, Go $$go, needs $$needed, exports no Rust symbol)"; done; done; done

# Tools pinned to a version and kept in a cache outside the repository, so that `make clean` and new
# worktrees do not rebuild them and `make test` stays fast: actionlint (GitHub workflows),
# cyclonedx-gomod and cargo-cyclonedx (SBOMs, both maintained by CycloneDX), and CycloneDX's
# cyclonedx-python-lib, whose bundled schemas validate the SBOMs.
ACTIONLINT_VERSION      := v1.7.12
CYCLONEDX_GOMOD_VERSION := v1.10.0
CARGO_CYCLONEDX_VERSION := 0.5.9
CYCLONEDX_PYLIB_VERSION := 11.12.0
ACTIONLINT      := $(TOOLS_CACHE)/actionlint-$(ACTIONLINT_VERSION)/actionlint
CYCLONEDX_GOMOD := $(TOOLS_CACHE)/cyclonedx-gomod-$(CYCLONEDX_GOMOD_VERSION)/cyclonedx-gomod
CARGO_CYCLONEDX := $(TOOLS_CACHE)/cargo-cyclonedx-$(CARGO_CYCLONEDX_VERSION)/bin/cargo-cyclonedx
CYCLONEDX_PY    := $(TOOLS_CACHE)/cyclonedx-python-lib-$(CYCLONEDX_PYLIB_VERSION)/bin/python
$(ACTIONLINT):
	GOBIN=$(@D) $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
$(CYCLONEDX_GOMOD):
	GOBIN=$(@D) $(GO) install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_GOMOD_VERSION)
$(CARGO_CYCLONEDX):
	$(CARGO) install --locked --root $(TOOLS_CACHE)/cargo-cyclonedx-$(CARGO_CYCLONEDX_VERSION) cargo-cyclonedx --version $(CARGO_CYCLONEDX_VERSION)
$(CYCLONEDX_PY):
	python3 -m venv $(TOOLS_CACHE)/cyclonedx-python-lib-$(CYCLONEDX_PYLIB_VERSION)
	$(@D)/pip install -q 'cyclonedx-python-lib[json-validation]==$(CYCLONEDX_PYLIB_VERSION)'

build/sbom-tool: $(wildcard tools/sbom/*.go) tools/sbom/go.mod
	@mkdir -p build
	cd tools/sbom && $(GO) build -o ../../$@ .

# A CycloneDX SBOM (dist/<artifact>.cdx.json) for every plugin in dist/: the Rust crates of the
# plugin's Rust target (cargo-cyclonedx, without build-only crates) and the Go modules recorded in
# the plugin file (cyclonedx-gomod bin), joined by tools/sbom under the file and its SHA-256.
# Then SHA256SUMS covers every file of dist/.
sbom: build/sbom-tool | $(CARGO_CYCLONEDX) $(CYCLONEDX_GOMOD)
	@ls dist/*.so >/dev/null 2>&1 || { echo "ERROR: no plugin in dist/; run make dist first"; exit 1; }
	@rm -rf build/sbom; mkdir -p build/sbom; \
	for f in dist/*.so; do n=$$(basename $$f .so); arch=$${n%-*}; arch=$${arch##*-}; libc=$${n##*-}; \
		triple=$$(case $$arch in amd64) echo x86_64;; arm64) echo aarch64;; esac)-unknown-linux-$$(case $$libc in glibc) echo gnu;; musl) echo musl;; esac); \
		rust=build/sbom/rust-$$triple.cdx.json; \
		[ -f $$rust ] || { $(CARGO_CYCLONEDX) cyclonedx -q --format json --spec-version 1.5 --no-build-deps --target $$triple \
			--override-filename sbom-$$triple && mv sbom-$$triple.json $$rust; } || exit 1; \
		GOARCH=$$arch $(CYCLONEDX_GOMOD) bin -json -output-version 1.5 -version v$(DIST_VERSION) -output build/sbom/go-$$n.cdx.json $$f 2>/dev/null || exit 1; \
		build/sbom-tool join -artifact $$f -version $(DIST_VERSION) -rust $$rust -go build/sbom/go-$$n.cdx.json -o dist/$$n.cdx.json || exit 1; \
		echo "dist/$$n.cdx.json"; done
	cd dist && sha256sum *.so *.txt *.cdx.json > SHA256SUMS

# The SBOM of one artifact of `make dist` against the CycloneDX 1.5 schema and for its content: the
# plugin file's hash, the crypto crate, the Go shim module and Go's standard library.
SBOM_SAMPLE = dist/jwk-aggregator-$(DIST_VERSION)-krakend-$(KRAKEND_VERSION)-linux-arm64-musl
test-sbom: test-dist | $(CYCLONEDX_PY)
	@$(MAKE) --no-print-directory -s sbom KRAKEND= KRAKEND_BIN= >/dev/null
	@build/sbom-tool check -artifact $(SBOM_SAMPLE).so -want aws-lc-rs -want aws-lc-sys \
		-want github.com/jwk-aggregator/jwk-aggregator/go-shim -want std $(SBOM_SAMPLE).cdx.json
	@$(CYCLONEDX_PY) tools/sbom/validate.py $(SBOM_SAMPLE).cdx.json
	@cd dist && sha256sum --quiet -c SHA256SUMS

# The GitHub workflows, with actionlint (it runs shellcheck on their scripts when shellcheck is
# installed).
lint-workflows: | $(ACTIONLINT)
	$(ACTIONLINT) .github/workflows/*.yml

# The development gateway: KrakenD CE KRAKEND_VERSION from its Go module, built like the official
# release (its Go, cgo, no -trimpath, the same -X stamps) for LIBC, into DEV_KRAKEND. An existing one
# of that KrakenD version, Go version and libc is reused; anything else is rebuilt, saying what
# differed. KrakenD prints its version lines on stderr.
krakend-status:
	@[ -x "$(DEV_KRAKEND)" ] || { echo "$(DEV_KRAKEND): not there"; exit 1; }; \
	out=$$("$(DEV_KRAKEND)" version 2>&1); \
	have_k=$$(awk -F': ' '/^KrakenD Version:/{print $$2}' <<<"$$out"); \
	have_g=$$(awk -F': ' '/^Go Version:/{print $$2}' <<<"$$out"); \
	have_l=$$(awk -F': ' '/^Glibc Version:/{print $$2}' <<<"$$out" | sed -E 's/^GLIBC-.*/glibc/; s/^MUSL-.*/musl/; /^(glibc|musl)$$/!s/.*/unknown/'); \
	diff=""; \
	[ "$$have_k" = "$(KRAKEND_VERSION)" ] || diff="$$diff KrakenD $${have_k:-unknown} (wanted $(KRAKEND_VERSION));"; \
	[ "$$have_g" = "$(GO_VERSION)" ] || diff="$$diff Go $${have_g:-unknown} (wanted $(GO_VERSION));"; \
	[ "$$have_l" = "$(LIBC)" ] || diff="$$diff libc $${have_l:-unknown} (wanted $(LIBC));"; \
	if [ -z "$$diff" ]; then echo "$(DEV_KRAKEND) is KrakenD CE $(KRAKEND_VERSION) built with Go $(GO_VERSION) and $(LIBC): reused"; \
	else echo "$(DEV_KRAKEND) differs:$$diff"; exit 1; fi

krakend: | tools check-release
	@[ -z "$(CROSS)" ] || { echo "ERROR: the development gateway is built for this machine ($(HOST_ARCH)) only; for ARCH=$(ARCH) pass a KrakenD built for it: KRAKEND_BIN=/path/to/krakend (run under KRAKEND_EXEC=\"$(KRAKEND_EXEC)\")"; exit 1; }
	@st=$$($(MAKE) --no-print-directory -s krakend-status 2>/dev/null) && { echo "$$st"; exit 0; }; echo "$$st"; \
	[ "$(LIBC)" != musl ] || $(MAKE) --no-print-directory toolchain || exit 1; \
	echo "building KrakenD CE $(KRAKEND_VERSION) with Go $(GO_VERSION) and $(LIBC) into $(DEV_KRAKEND)$(if $(KRAKEND_GOENV), (KrakenD's modules from $(KRAKEND_GOPROXY)))"; \
	dir=$(dir $(DEV_KRAKEND)); mkdir -p $$dir; rm -f $$dir/krakend-ce; start=$$(date +%s); \
	for org in $(KRAKEND_ORGS); do \
		if CC=$(PLUGIN_CC) GOBIN=$$dir $(KRAKEND_GOENV) $(PINNED_GO) install -ldflags "$(KRAKEND_LDFLAGS)" \
			github.com/$$org/krakend-ce/v2/cmd/krakend-ce@v$(KRAKEND_VERSION); then \
			mv $$dir/krakend-ce $(DEV_KRAKEND); \
			echo "built $(DEV_KRAKEND) (github.com/$$org/krakend-ce/v2) in $$(( $$(date +%s) - start ))s"; exit 0; fi; \
	done; \
	echo "ERROR: could not build KrakenD CE $(KRAKEND_VERSION) (github.com/{$(subst $(space),$(comma),$(KRAKEND_ORGS))}/krakend-ce/v2)."; \
	echo "       The Go module proxy must serve KrakenD's modules, or ../shared/goproxy hold them."; \
	echo "       Or pass a KrakenD binary: KRAKEND_BIN=/path/to/krakend (the plugin is then built to match it)."; \
	exit 1

build/demo-idp: $(wildcard tests/idp/*.go tests/cmd/demo-idp/*.go)
	@mkdir -p build
	cd tests && $(GO) build -o ../build/demo-idp ./cmd/demo-idp

# Builds everything, starts the demo identity providers (three single-tenant, one multi-tenant)
# and KrakenD with krakend-config/.
run: build build/demo-idp $(if $(KRAKEND_EXEC),krakend-exec)
	@if [ "$(KRAKEND_BIN)" = "$(DEV_KRAKEND)" ]; then $(MAKE) --no-print-directory krakend; fi
	@set -m; build/demo-idp -provider idp-a:9101:RS256 -provider idp-b:9102:RS256 -provider idp-c:9103:ES256 -realms 9104 & idp=$$!; \
	trap 'kill $$idp 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq 50); do curl -sf http://127.0.0.1:9104/realms/acme/.well-known/openid-configuration >/dev/null && break; sleep 0.1; done; \
	echo; echo "== jwk-aggregator demo: KrakenD on :8080, merged JWK Set on :9876 =="; \
	echo '  TOKEN_A=$$(curl -s "http://127.0.0.1:9101/token?sub=alice")'; \
	echo '  TOKEN_B=$$(curl -s "http://127.0.0.1:9102/token?sub=bob")'; \
	echo '  curl -i -H "Authorization: Bearer $$TOKEN_A" http://127.0.0.1:8080/protected   # 200'; \
	echo '  curl -i -H "Authorization: Bearer $$TOKEN_B" http://127.0.0.1:8080/protected   # 200'; \
	echo '  curl -i http://127.0.0.1:8080/protected                                       # 401'; \
	echo '  TOKEN_C=$$(curl -s "http://127.0.0.1:9103/token?sub=carol")                     # ES256'; \
	echo '  curl -i -H "Authorization: Bearer $$TOKEN_C" http://127.0.0.1:8080/multi       # 200 (jwk-aggregator-auth)'; \
	echo '  curl -i -H "Authorization: Bearer $$TOKEN_A" http://127.0.0.1:8080/multi       # 200'; \
	echo '  curl -X POST "http://127.0.0.1:9104/admin/realms/newco?alg=RS256"              # a tenant created now'; \
	echo '  TOKEN_N=$$(curl -s http://127.0.0.1:9104/realms/newco/token?sub=dave)'; \
	echo '  curl -i -H "Authorization: Bearer $$TOKEN_N" http://127.0.0.1:8080/tenant/newco # 200: discovered at first use'; \
	echo '  curl -X DELETE http://127.0.0.1:9104/admin/realms/newco     # deleted: refused once max_stale passes'; \
	echo '  curl -s http://127.0.0.1:9876/ ; curl -s http://127.0.0.1:9876/__health ; curl -s http://127.0.0.1:9876/metrics'; \
	echo "Ctrl-C stops everything."; echo; \
	$(GATEWAY_ENV) $(RUN_KRAKEND) run -c krakend-config/krakend.json

# A real Redis server for the DPoP replay store's tests (Debian's package), or the command that
# would install it and a failure.
redis-server:
	@command -v redis-server >/dev/null || { echo "installing redis-server from Debian's packages" && \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; } >/dev/null && command -v redis-server >/dev/null; } || \
		{ echo "ERROR: redis-server is missing and could not be installed; install it with: $(SUDO) apt-get install redis-server"; exit 1; }

test-rust: | tools redis-server
	$(CARGO) test --release --locked

test-shim: target/release/libjwk_aggregator.a build/plugin-check
	cd go-shim && $(SHIM_TEST_ENV) $(GO) vet ./... && $(SHIM_TEST_ENV) $(GO) test -race -count=1 ./...
	cd tests && $(SHIM_TEST_ENV) $(GO) vet ./... && $(SHIM_TEST_ENV) $(GO) test -count=1 ./fuzz/
	cd tools/plugin-check && $(GO) vet ./...
	cd tools/sbom && $(GO) vet ./...

# The Makefile's own decisions: gateway reuse, supported releases, make check-plugin, make build KRAKEND=.
test-build: build/plugin-check | toolchains
	cd tests && $(GO) test -count=1 ./build/

# The operator's command against loopback and real identity providers, real keys and a real
# plugin file.
test-cli: build/jwk-aggregator build/plugin-check $(PLUGIN_OUT)
	cd tests && JWKA_CLI=$(CURDIR)/build/jwk-aggregator PLUGIN_SO=$(CURDIR)/$(PLUGIN_OUT) $(WITH_PROVIDERS:tests/%=../tests/%) $(GO) test -count=1 ./cli/

# Real identity providers on loopback (Keycloak, ORY Hydra, oidc-provider), fetched or built once
# into ~/.cache/jwk-aggregator/providers/ by tests/providers/run.sh, and the tests of their Go clients.
# Real identity providers (Keycloak, ORY Hydra, oidc-provider), started once by
# tests/providers/run.sh around the whole of `make test`, or around a target run alone.
WITH_PROVIDERS = $(if $(KEYCLOAK_URL),,tests/providers/run.sh)

# The providers' own clients (tests/providers) and the Rust core, through its C API as the plugin
# calls it, against each real provider (tests/realidp).
test-realidp: target/release/libjwk_aggregator.a
	$(WITH_PROVIDERS) bash -c 'cd tests && $(SHIM_TEST_ENV) $(GO) test -count=1 ./providers/ ./realidp/'

# No Rust or aws-lc symbol may be exported by the plugin.
RUST_SYMBOLS := ^(_ZN|_R[A-Z0-9]|aws_lc|AWS_LC|rust_|__rust|jwka_|ring_core|_Unwind|unw_)
check-symbols: $(PLUGIN_OUT)
	@n=$$(nm -D --defined-only $(PLUGIN_OUT) | awk '{print $$3}' | grep -cE '$(RUST_SYMBOLS)' || true); \
	echo "plugin exports $$n Rust/aws-lc dynamic symbols; size $$(stat -c %s $(PLUGIN_OUT)) bytes"; [ "$$n" = 0 ]

# GATEWAY_RUN: a -run pattern to run some gateway tests only. An emulated gateway starts slower and
# runs several times slower, hence a longer time limit.
GATEWAY_RUN     ?=
GATEWAY_TIMEOUT ?= $(if $(KRAKEND_EXEC),60m,10m)
# The emulator (qemu-user from Debian's packages when missing) and the wrapper that runs the gateway
# under it, for KRAKEND_EXEC.
krakend-exec:
	@command -v $(firstword $(KRAKEND_EXEC)) >/dev/null || [ "$(firstword $(KRAKEND_EXEC))" != qemu-$(CPU) ] || \
		{ echo "installing qemu-user (qemu-$(CPU)) from Debian's packages"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq qemu-user >/dev/null; } || \
		{ echo "ERROR: qemu-$(CPU) is missing; install it with: apt-get install qemu-user"; exit 1; }
	@mkdir -p build
	@printf '#!/bin/sh\n# Written by make: the gateway under %s\nexec %s %s "$$@"\n' "$(firstword $(KRAKEND_EXEC))" "$(KRAKEND_EXEC)" "$(abspath $(KRAKEND_BIN))" > build/krakend-exec
	@chmod +x build/krakend-exec

GATEWAY_NAME = KrakenD $(KRAKEND_VERSION) $(LIBC) $(ARCH)
test-gateway: $(PLUGIN_OUT) build/plugin-check $(if $(KRAKEND_EXEC),krakend-exec) | redis-server
	build/plugin-check compare -min-go $(SHIM_GO_MIN) $(KRAKEND_BIN) $(PLUGIN_OUT)
	out=$$($(GATEWAY_ENV) $(RUN_KRAKEND) test-plugin -s $(PLUGIN_OUT) 2>&1); echo "$$out"; grep -q '\[OK\] SERVER' <<<"$$out"
	@start=$$(date +%s); log=$(CURDIR)/build/gateway-test-$(KRAKEND_VERSION)-$(LIBC)-$(ARCH).log; \
	cd tests && KRAKEND_BIN=$(RUN_KRAKEND) PLUGIN_SO=$(CURDIR)/$(PLUGIN_OUT) $(WITH_PROVIDERS:tests/%=../tests/%) $(GO) test -count=1 -v -timeout $(GATEWAY_TIMEOUT) $(if $(GATEWAY_RUN),-run '$(GATEWAY_RUN)') ./integration/ 2>&1 | tee $$log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go'; \
	rc=$${PIPESTATUS[0]}; \
	echo "gateway tests on $(GATEWAY_NAME): $$(grep -c '^--- PASS' $$log) passed, $$(grep -c '^--- FAIL' $$log) failed, $$(grep -c '^--- SKIP' $$log) skipped in $$(( $$(date +%s) - start ))s$(if $(KRAKEND_EXEC), under $(KRAKEND_EXEC))"; \
	[ "$$(grep -c '^--- SKIP' $$log)" = 0 ] || { echo "FAIL: a gateway test skipped; none may"; exit 1; }; \
	exit $$rc

# Unit, C-API, shim and gateway tests, with the real identity providers started once around them.
test:
	$(WITH_PROVIDERS) $(MAKE) --no-print-directory test-all

test-all: test-rust test-shim test-build test-cli test-realidp check-symbols memcheck test-dist test-sbom lint-workflows test-gateways test-releases
	@cat build/gateway-test-*.log 2>/dev/null | awk '/^--- PASS/ {p++} /^--- FAIL/ {f++} END {printf "gateway: %d passed, %d failed\n", p, f}'

# The gateway tests on each gateway of GATEWAY_LIBCS: KRAKEND_VERSION's glibc and musl (Alpine)
# builds, made by `make krakend` (or reused), each with its own plugin. KRAKEND_BIN=... names one
# gateway instead. Where no gateway can be built, the tests are reported NOT RUN, never passed; in
# CI (CI=true) that is a failure.
GATEWAY_LIBCS ?= glibc musl
GATEWAY_COUNT  = $$(cat tests/integration/*_test.go | grep -c '^func Test')
# The gateway tests on each gateway of $(1), a list of <KrakenD version>:<libc>: built by `make
# krakend` or reused, then tested with its own plugin; a gateway that cannot be built is NOT RUN,
# or a failure in CI.
define GATEWAY_LOOP
@failed=""; for g in $(1); do v=$${g%%:*}; libc=$${g##*:}; \
		start=$$(date +%s); \
		if ! $(MAKE) --no-print-directory krakend KRAKEND_VERSION=$$v LIBC=$$libc; then \
			if [ -n "$$CI$$REQUIRE_GATEWAY" ]; then echo "FAIL: $(GATEWAY_COUNT) gateway tests on KrakenD $$v $$libc cannot run: the gateway could not be built (see the ERROR above)"; failed="$$failed $$v-$$libc"; \
			else echo "NOT RUN: $(GATEWAY_COUNT) gateway tests on KrakenD $$v $$libc (the gateway could not be built; see the ERROR above)"; fi; continue; fi; \
		echo "gateway KrakenD $$v $$libc ready after $$(( $$(date +%s) - start ))s"; \
		$(MAKE) --no-print-directory test-gateway KRAKEND_VERSION=$$v LIBC=$$libc || failed="$$failed $$v-$$libc"; \
	done; \
	[ -z "$$failed" ] || { echo "FAIL: gateway tests on KrakenD$$failed"; exit 1; }
endef
test-gateways:
	@rm -f build/gateway-test-*.log
ifneq ($(filter command line environment,$(origin KRAKEND_BIN)),)
	@$(MAKE) --no-print-directory test-gateway
else
	$(call GATEWAY_LOOP,$(foreach l,$(GATEWAY_LIBCS),$(KRAKEND_VERSION):$(l)))
endif

# The gateway tests on the older releases of TEST_RELEASES (glibc), each built by `make krakend` with
# its own Go (their module path is github.com/krakendio/krakend-ce/v2). Part of `make test` unless
# KRAKEND_BIN names one gateway.
TEST_RELEASES ?= 2.10.2 2.6.1
test-releases:
ifeq ($(filter command line environment,$(origin KRAKEND_BIN)),)
	$(call GATEWAY_LOOP,$(foreach v,$(TEST_RELEASES),$(v):glibc))
endif

# Speed figures live here, never in tests. Writes BENCHMARKS.md. The gateway part needs KrakenD
# (see `make krakend`) and wrk, which it installs from Debian's packages when missing.
bench: build $(if $(KRAKEND_EXEC),krakend-exec) | redis-server
	@mkdir -p build
	cd go-shim && $(SHIM_TEST_ENV) $(GO) test -run '^$$' -bench 'ColdMerge' -benchtime 10x -count 3 . | tee ../build/bench.txt
	cd go-shim && $(SHIM_TEST_ENV) $(GO) test -run '^$$' -bench 'ConcurrentColdRequests' -benchtime 3x -count 3 . | tee -a ../build/bench.txt
	cd go-shim && $(SHIM_TEST_ENV) $(GO) test -run '^$$' -bench 'Serve' -benchtime 3s -count 3 . | tee -a ../build/bench.txt
	cd go-shim && $(SHIM_TEST_ENV) $(GO) test -run '^$$' -bench 'AuthHandler' -benchtime 1s -count 5 . | tee -a ../build/bench.txt
	cd tests && $(SHIM_TEST_ENV) $(GO) test -run '^$$' -bench 'Verify|DPoP' -benchtime 1s -count 3 ./bench/ | tee -a ../build/bench.txt
	@rm -f build/gateway-bench.md build/tenant-bench.md build/cache-bench.md build/dpop-bench.md
	@if [ "$(KRAKEND_BIN)" = "$(DEV_KRAKEND)" ]; then $(MAKE) --no-print-directory krakend || true; fi
	@if [ -x "$(KRAKEND_BIN)" ]; then \
		command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }; \
		cd tests && $(GO) build -o ../build/gateway-bench ./cmd/gateway-bench && cd .. && \
		build/gateway-bench -krakend $(RUN_KRAKEND) -plugin $(PLUGIN_OUT) -duration 10s | tee build/gateway-bench.md && \
		cd tests && $(GO) build -o ../build/tenant-bench ./cmd/tenant-bench && $(GO) build -o ../build/cache-bench ./cmd/cache-bench && cd .. && \
		build/tenant-bench -pin -krakend $(RUN_KRAKEND) -plugin $(PLUGIN_OUT) -tenants 10000 | tee build/tenant-bench.md && \
		build/cache-bench -krakend $(RUN_KRAKEND) -plugin $(PLUGIN_OUT) | tee build/cache-bench.md && \
		cd tests && $(GO) build -o ../build/dpop-bench ./cmd/dpop-bench && cd .. && \
		build/dpop-bench -krakend $(RUN_KRAKEND) -plugin $(PLUGIN_OUT) | tee build/dpop-bench.md; \
	else echo "gateway throughput NOT MEASURED: no KrakenD binary at $(KRAKEND_BIN)"; fi
	tests/bench-report.sh build/bench.txt build/gateway-bench.md build/tenant-bench.md build/cache-bench.md build/dpop-bench.md > BENCHMARKS.md
	@cat BENCHMARKS.md

# The C harness calls every exported function, error paths included, under valgrind: any leak
# (definite or indirect) or invalid access fails. Its origin is a loopback static file server.
memcheck: target/release/libjwk_aggregator.a
	@mkdir -p build
	cc -std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude tests/c/harness.c target/release/libjwk_aggregator.a -lpthread -ldl -lm -o build/harness
	@command -v valgrind >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq valgrind; }
	@port=$$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	python3 -m http.server $$port --bind 127.0.0.1 --directory tests/c >/dev/null 2>&1 & srv=$$!; \
	trap 'kill $$srv' EXIT; \
	for i in $$(seq 50); do curl -sf http://127.0.0.1:$$port/fixture-jwks.json >/dev/null && break; sleep 0.1; done; \
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect build/harness http://127.0.0.1:$$port/fixture-jwks.json "$$(cat tests/c/fixture-token.txt)" 2>&1 | tee build/memcheck.log | tail -25; \
	exit $${PIPESTATUS[0]}

# Coverage-guided fuzzing of the Rust core with cargo-fuzz (libFuzzer, nightly Rust), each target
# for FUZZTIME (fuzz/run.sh: a crash, a leak, an input over 1 s or 2 GB, or a corpus input over
# 100 ms fails), then Go's native fuzzing of the C boundary. Findings go to fuzz/regressions and
# tests/fuzz/testdata/fuzz with their fix; `make test` replays both.
FUZZTIME ?= 60s
FUZZ_TARGETS := settings auth_settings jwks token token_signed x5c cache_headers rule_paths issuers dpop_proof
fuzz-tools:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal || \
		{ echo "ERROR: a nightly Rust toolchain is needed; install it with: rustup toolchain install nightly --profile minimal"; exit 1; }
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked || \
		{ echo "ERROR: cargo-fuzz is needed; install it with: cargo install cargo-fuzz"; exit 1; }

fuzz: target/release/libjwk_aggregator.a | fuzz-tools
	for t in $(FUZZ_TARGETS); do fuzz/run.sh $$t $(patsubst %s,%,$(FUZZTIME)) || exit 1; done
	cd tests && for t in FuzzSettings FuzzJWKS FuzzToken FuzzRouterPaths; do \
		$(SHIM_TEST_ENV) $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./fuzz/ || exit 1; done

# The Rust tests, and the C harness over every exported function, under AddressSanitizer and
# LeakSanitizer (nightly Rust, std rebuilt with the sanitizer), beside valgrind's `make memcheck`.
ASAN_TARGET := x86_64-unknown-linux-gnu
asan: | fuzz-tools
	@rustup component list --toolchain nightly --installed | grep -q rust-src || rustup component add rust-src --toolchain nightly || \
		{ echo "ERROR: std's source is needed; install it with: rustup component add rust-src --toolchain nightly"; exit 1; }
	RUSTFLAGS="-Zsanitizer=address" CARGO_TARGET_DIR=target/asan $(CARGO) +nightly test -Zbuild-std --target $(ASAN_TARGET) --release --lib --tests
	RUSTFLAGS="-Zsanitizer=address" CARGO_TARGET_DIR=target/asan $(CARGO) +nightly build -Zbuild-std --target $(ASAN_TARGET) --release --lib
	@mkdir -p build
	@port=$$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	python3 -m http.server $$port --bind 127.0.0.1 --directory tests/c >/dev/null 2>&1 & srv=$$!; trap 'kill $$srv' EXIT; \
	for i in $$(seq 50); do curl -sf http://127.0.0.1:$$port/fixture-jwks.json >/dev/null && break; sleep 0.1; done; \
	cc -std=c11 -Wall -Wextra -Werror -O1 -g -fsanitize=address -fno-omit-frame-pointer -Iinclude tests/c/harness.c \
		target/asan/$(ASAN_TARGET)/release/libjwk_aggregator.a -lpthread -ldl -lm -o build/harness-asan && \
	ASAN_OPTIONS=detect_leaks=1 build/harness-asan http://127.0.0.1:$$port/fixture-jwks.json "$$(cat tests/c/fixture-token.txt)"

# 1,000,000 verifications and 100,000 aggregator requests in one process; fails when memory or
# threads grow. Writes build/soak.md.
soak: target/release/libjwk_aggregator.a
	@mkdir -p build
	cd tests && $(SHIM_TEST_ENV) $(GO) build -o ../build/soak ./cmd/soak
	build/soak -verifications 1000000 -requests 100000 | tee build/soak.md

# Load through real KrakenD while one identity provider is stopped and restarted and another
# rotates its keys: zero 5xx and no valid token refused, or it fails. Writes build/load.md.
LOAD_DURATION ?= 60s
load: build $(if $(KRAKEND_EXEC),krakend-exec)
	@if [ "$(KRAKEND_BIN)" = "$(DEV_KRAKEND)" ]; then $(MAKE) --no-print-directory krakend; fi
	cd tests && $(GO) build -o ../build/fault-load ./cmd/fault-load
	build/fault-load -krakend $(RUN_KRAKEND) -plugin $(PLUGIN_OUT) -duration $(LOAD_DURATION) -concurrency 64 | tee build/load.md

clean:
	rm -rf target build dist
