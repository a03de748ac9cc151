// Package build tests the Makefile's own decisions as a user meets them: which development gateway
// it reuses, which KrakenD releases it builds for, and what `make check-plugin` says about a plugin
// built by another Go. Nothing here starts a gateway.
package build

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const repo = "../.."

// make runs make in the repository and returns its combined output and exit code.
func runMake(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-s", "--no-print-directory", "-C", repo}, args...)...)
	cmd.Env = append(os.Environ(), "MAKEFLAGS=", "KRAKEND_BIN=", "KRAKEND=")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// standIn writes an executable that answers `version` as KrakenD does: on stderr.
func standIn(t *testing.T, krakend, goVersion, libc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "krakend")
	script := "#!/bin/sh\n[ \"$1\" = version ] || { echo \"stand-in: only 'version' ($*)\" >&2; exit 3; }\n" +
		"echo 'KrakenD Version: " + krakend + "' >&2\necho 'Go Version: " + goVersion + "' >&2\necho 'Glibc Version: " + libc + "' >&2\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestKrakendReusesAMatchingGateway(t *testing.T) {
	gw := standIn(t, "2.13.8", "1.25.12", "GLIBC-2.36_(debian-12)")
	out, code := runMake(t, "krakend", "KRAKEND_VERSION=2.13.8", "LIBC=glibc", "DEV_KRAKEND="+gw)
	if code != 0 || !strings.Contains(out, "reused") || strings.Contains(out, "building") {
		t.Fatalf("a matching gateway must be reused without building; exit %d:\n%s", code, out)
	}
}

func TestKrakendSaysWhatDiffers(t *testing.T) {
	for _, c := range []struct{ krakend, goVersion, libc, want string }{
		{"2.13.8", "1.26.8", "GLIBC-2.36_(debian-12)", "Go 1.26.8 (wanted 1.25.12)"},
		{"2.13.7", "1.25.12", "GLIBC-2.36_(debian-12)", "KrakenD 2.13.7 (wanted 2.13.8)"},
		{"2.13.8", "1.25.12", "MUSL-1.2.5_(alpine-3.23)", "libc musl (wanted glibc)"},
		{"2.13.8", "1.25.12", "undefined", "libc unknown (wanted glibc)"},
	} {
		gw := standIn(t, c.krakend, c.goVersion, c.libc)
		out, code := runMake(t, "krakend-status", "KRAKEND_VERSION=2.13.8", "LIBC=glibc", "DEV_KRAKEND="+gw)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("%s/%s/%s: want a refusal naming %q; exit %d:\n%s", c.krakend, c.goVersion, c.libc, c.want, code, out)
		}
	}
	gw := standIn(t, "2.13.8", "1.25.12", "MUSL-1.2.5_(alpine-3.23)")
	if out, code := runMake(t, "krakend-status", "LIBC=musl", "DEV_KRAKEND="+gw); code != 0 {
		t.Errorf("a musl gateway is the one wanted with LIBC=musl; exit %d:\n%s", code, out)
	}
}

func TestReleasesOutsideTheSupportedRangeAreRefused(t *testing.T) {
	for version, want := range map[string]string{
		"2.6.0":  "built with Go 1.20.14; the plugin needs Go 1.22 or later",
		"2.0.0":  "built with Go 1.17.8; the plugin needs Go 1.22 or later",
		"2.99.0": "KRAKEND_VERSION=2.99.0 is not a KrakenD CE v2 release",
	} {
		out, code := runMake(t, "check-release", "KRAKEND_VERSION="+version)
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("KRAKEND_VERSION=%s: want a refusal saying %q; exit %d:\n%s", version, want, code, out)
		}
	}
	for _, version := range []string{"2.6.1", "2.13.8"} {
		if out, code := runMake(t, "check-release", "KRAKEND_VERSION="+version); code != 0 {
			t.Errorf("KRAKEND_VERSION=%s is supported; exit %d:\n%s", version, code, out)
		}
	}
}

// goBuild builds a one-file Go program (a stand-in gateway) or plugin with the given Go release,
// for this machine or, with env "GOARCH=arm64", for another CPU.
func goBuild(t *testing.T, goVersion, cc, mode, src string, env ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module standin\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command("go", "build", "-buildmode="+mode, "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOTOOLCHAIN=go"+goVersion, "CGO_ENABLED=1", "CC="+cc, "GOFLAGS=-buildvcs=false"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go%s build -buildmode=%s: %v\n%s", goVersion, mode, err, b)
	}
	return out
}

const hostSrc = "package main\n\nimport _ \"plugin\"\n\nfunc main() {}\n"
const pluginSrc = "package main\n\nvar HandlerRegisterer = 1\n\nfunc main() {}\n"

func TestCheckPluginRefusesAnotherGoOrLibc(t *testing.T) {
	gateway := goBuild(t, "1.25.12", "cc", "exe", hostSrc)
	same := goBuild(t, "1.25.12", "cc", "plugin", pluginSrc)
	otherGo := goBuild(t, "1.26.8", "cc", "plugin", pluginSrc)
	musl := goBuild(t, "1.25.12", "musl-gcc", "plugin", pluginSrc)

	if out, code := runMake(t, "check-plugin", "KRAKEND="+gateway, "PLUGIN="+same); code != 0 || !strings.Contains(out, "matches") {
		t.Errorf("a plugin built like the gateway must pass; exit %d:\n%s", code, out)
	}
	out, code := runMake(t, "check-plugin", "KRAKEND="+gateway, "PLUGIN="+otherGo)
	for _, want := range []string{"will NOT load", "go1.25.12", "go1.26.8", "make build KRAKEND=" + gateway} {
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("a plugin built by Go 1.26.8 for a Go 1.25.12 gateway: want %q and a non-zero exit; exit %d:\n%s", want, code, out)
		}
	}
	out, code = runMake(t, "check-plugin", "KRAKEND="+gateway, "PLUGIN="+musl)
	if code == 0 || !strings.Contains(out, "C library") || !strings.Contains(out, "musl") {
		t.Errorf("a musl plugin for a glibc gateway must be refused naming the C libraries; exit %d:\n%s", code, out)
	}
}

func TestBuildMatchesAGivenGateway(t *testing.T) {
	gateway := goBuild(t, "1.24.2", "cc", "exe", hostSrc)
	// -n prints what would run: the plugin is built with the gateway's Go, whatever Go is installed.
	out, code := runMake(t, "-n", "build", "KRAKEND="+gateway)
	if code != 0 || !strings.Contains(out, "GOTOOLCHAIN=go1.24.2") || !strings.Contains(out, "build/go1.24.2-glibc-amd64v1/jwk-aggregator.so") {
		t.Fatalf("make build KRAKEND=<Go 1.24.2 gateway> must build with go1.24.2; exit %d:\n%s", code, out)
	}
	old := goBuild(t, "1.21.13", "cc", "exe", hostSrc)
	out, code = runMake(t, "-n", "build", "KRAKEND="+old)
	if code == 0 || !strings.Contains(out, "the gateway was built with Go 1.21.13; the plugin needs Go 1.22 or later") {
		t.Fatalf("a gateway older than the shim's Go must be refused with the reason; exit %d:\n%s", code, out)
	}
}

// The Makefile installs Debian's aarch64 cross gcc (make toolchains) before these tests run.
const arm64CC = "aarch64-linux-gnu-gcc"

func TestCheckPluginRefusesAnotherArchitecture(t *testing.T) {
	gateway := goBuild(t, "1.25.12", "cc", "exe", hostSrc)
	arm64 := goBuild(t, "1.25.12", arm64CC, "plugin", pluginSrc, "GOARCH=arm64")
	out, code := runMake(t, "check-plugin", "KRAKEND="+gateway, "PLUGIN="+arm64)
	for _, want := range []string{"will NOT load", "linux/amd64 GOAMD64=v1", "linux/arm64 GOARM64=v8.0", "CPU (ELF)", "x86-64", "aarch64"} {
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("an arm64 plugin for an amd64 gateway: want %q and a non-zero exit; exit %d:\n%s", want, code, out)
		}
	}
	arm64Gateway := goBuild(t, "1.25.12", arm64CC, "exe", hostSrc, "GOARCH=arm64")
	if out, code := runMake(t, "check-plugin", "KRAKEND="+arm64Gateway, "PLUGIN="+arm64); code != 0 || !strings.Contains(out, "matches") {
		t.Errorf("an arm64 plugin built like the arm64 gateway must pass; exit %d:\n%s", code, out)
	}
}

func TestBuildMatchesAnArm64Gateway(t *testing.T) {
	gateway := goBuild(t, "1.24.2", arm64CC, "exe", hostSrc, "GOARCH=arm64")
	out, code := runMake(t, "-n", "build", "KRAKEND="+gateway)
	for _, want := range []string{"GOTOOLCHAIN=go1.24.2", "GOARCH=arm64", "CC=" + arm64CC, "target/aarch64-unknown-linux-gnu/release/libjwk_aggregator.a",
		"build/go1.24.2-glibc-arm64v8.0/jwk-aggregator.so",
		// Go 1.24.2 asks for gold on arm64, which would leave Rust's thread-local symbols exported.
		"-Wl,--exclude-libs,ALL -fuse-ld=bfd"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("make build KRAKEND=<arm64 gateway> must cross-build for arm64: want %q; exit %d:\n%s", want, code, out)
		}
	}
	out, code = runMake(t, "-n", "build", "ARCH=riscv64")
	if code == 0 || !strings.Contains(out, `ARCH must be amd64 or arm64, not "riscv64"`) {
		t.Errorf("an unsupported ARCH must be refused; exit %d:\n%s", code, out)
	}
}
