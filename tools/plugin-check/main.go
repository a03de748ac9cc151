// Command plugin-check tells, without loading anything, whether a Go plugin will load into a
// KrakenD binary, and which build settings make one that does.
//
// Go loads a plugin only into a program built by the same Go release, for the same OS,
// architecture (and GOAMD64 or GOARM64 level) and C library, both with cgo, both with or both without
// -trimpath, with the same build tags and instrumentation. A mismatch is not reported as an
// error: the gateway aborts ("runtime: no plugin module data", "plugin was built with a different
// version of package"). So the check reads the Go build information and the ELF headers of both
// files instead of loading them.
//
//	plugin-check describe FILE                        the settings that decide loading, one per line
//	plugin-check match [-min-go V] KRAKEND            make variables for a matching plugin, or exit 1
//	plugin-check compare [-min-go V] KRAKEND PLUGIN   exit 0 when PLUGIN loads into KRAKEND, else 1
package main

import (
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// build is what decides whether a plugin loads into a gateway.
type build struct {
	path      string
	goVersion string // "1.25.12"
	buildmode string
	goos      string
	goarch    string
	level     string // GOAMD64 on amd64, GOARM64 on arm64: "v1", "v8.0"
	machine   elf.Machine
	cgo       bool
	trimpath  bool
	tags      string
	libc      string // glibc, musl, static, unknown
	libcFrom  string // the ELF interpreter or DT_NEEDED entry it was read from
	glibcMin  string // highest GLIBC_x.y symbol version a plugin needs
	krakend   string // KrakenD version stamped by -ldflags, for gateways
	// settings this tool does not reproduce; compared as they are.
	other map[string]string
}

var otherKeys = []string{"-race", "-msan", "-asan", "-gcflags", "-asmflags", "-pgo", "GOEXPERIMENT", "-compiler"}

func read(path string) (*build, error) {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: no Go build information (%v); plugins built by Go before 1.21 carry none", path, err)
	}
	b := &build{path: path, goVersion: strings.TrimPrefix(info.GoVersion, "go"), other: map[string]string{}}
	levels := map[string]string{}
	for _, s := range info.Settings {
		switch s.Key {
		case "-buildmode":
			b.buildmode = s.Value
		case "GOOS":
			b.goos = s.Value
		case "GOARCH":
			b.goarch = s.Value
		case "GOAMD64", "GOARM64":
			levels[s.Key] = s.Value
		case "CGO_ENABLED":
			b.cgo = s.Value == "1"
		case "-trimpath":
			b.trimpath = s.Value == "true"
		case "-tags":
			b.tags = s.Value
		case "-ldflags":
			b.krakend = ldflagsValue(s.Value, "github.com/luraproject/lura/v2/core.KrakendVersion")
		default:
			for _, k := range otherKeys {
				if s.Key == k && s.Value != "" && s.Value != "false" && s.Value != "off" && !(k == "-compiler" && s.Value == "gc") {
					b.other[k] = s.Value
				}
			}
		}
	}
	// Go records the level of the build's own architecture; the defaults when it does not.
	switch b.goarch {
	case "amd64":
		b.level = "GOAMD64=" + or(levels["GOAMD64"], "v1")
	case "arm64":
		b.level = "GOARM64=" + or(levels["GOARM64"], "v8.0")
	}
	if err := b.readELF(); err != nil {
		return nil, err
	}
	return b, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ldflagsValue finds "-X name=value" in a recorded -ldflags string.
func ldflagsValue(ldflags, name string) string {
	for _, f := range strings.Fields(ldflags) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}

// readELF finds the C library: an executable's interpreter, or a shared object's libc entry.
func (b *build) readELF() error {
	f, err := elf.Open(b.path)
	if err != nil {
		return fmt.Errorf("%s: not an ELF file: %v", b.path, err)
	}
	defer f.Close()
	b.machine = f.Machine
	b.libc, b.libcFrom = "static", "no interpreter, no libc"
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		raw := make([]byte, p.Filesz)
		if _, err := p.ReadAt(raw, 0); err != nil {
			return fmt.Errorf("%s: unreadable ELF interpreter: %v", b.path, err)
		}
		interp := strings.TrimRight(string(raw), "\x00")
		b.libc, b.libcFrom = libcOf(interp), interp
		return nil
	}
	libs, _ := f.ImportedLibraries()
	for _, l := range libs {
		if c := libcOf(l); c != "unknown" {
			b.libc, b.libcFrom = c, l
			break
		}
	}
	if b.libc == "glibc" {
		syms, _ := f.DynamicSymbols()
		for _, s := range syms {
			if v, ok := strings.CutPrefix(s.Version, "GLIBC_"); ok && s.Section == elf.SHN_UNDEF && versionLess(b.glibcMin, v) {
				b.glibcMin = v
			}
		}
	}
	return nil
}

// elfMachine is the ELF machine of each GOARCH plugins are built for.
var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// machineName names an ELF machine as file(1) and uname -m do.
func machineName(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "x86-64"
	case elf.EM_AARCH64:
		return "aarch64"
	}
	return strings.TrimPrefix(m.String(), "EM_")
}

func (b *build) platform() string {
	return strings.TrimSpace(b.goos + "/" + b.goarch + " " + b.level)
}

func libcOf(name string) string {
	switch {
	case strings.Contains(name, "ld-musl"), strings.Contains(name, "libc.musl"), name == "libc.so":
		return "musl" // Debian's musl-gcc links "libc.so", which musl's loader resolves to itself
	case strings.Contains(name, "ld-linux"), name == "libc.so.6":
		return "glibc"
	}
	return "unknown"
}

// version compares dotted Go versions ("1.25.12" < "1.26"); non-numeric parts count as 0.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (b *build) describe() string {
	var sb strings.Builder
	kind := "executable (a gateway)"
	if b.buildmode == "plugin" {
		kind = "Go plugin"
	}
	fmt.Fprintf(&sb, "file:      %s\n", b.path)
	fmt.Fprintf(&sb, "kind:      %s\n", kind)
	if b.krakend != "" {
		fmt.Fprintf(&sb, "krakend:   %s\n", b.krakend)
	}
	fmt.Fprintf(&sb, "go:        %s\n", b.goVersion)
	fmt.Fprintf(&sb, "platform:  %s\n", b.platform())
	fmt.Fprintf(&sb, "machine:   %s\n", machineName(b.machine))
	fmt.Fprintf(&sb, "cgo:       %s\n", yesNo(b.cgo))
	fmt.Fprintf(&sb, "trimpath:  %s\n", yesNo(b.trimpath))
	fmt.Fprintf(&sb, "tags:      %s\n", orNone(b.tags))
	fmt.Fprintf(&sb, "libc:      %s (%s)\n", b.libc, b.libcFrom)
	if b.glibcMin != "" {
		fmt.Fprintf(&sb, "needs:     glibc %s or later\n", b.glibcMin)
	}
	keys := make([]string, 0, len(b.other))
	for k := range b.other {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&sb, "other:     %s=%s\n", k, b.other[k])
	}
	return sb.String()
}

// unmatchable says why no plugin this project builds can load into gateway g.
func unmatchable(g *build, minGo string) []string {
	var why []string
	if g.buildmode == "plugin" {
		why = append(why, g.path+" is a plugin, not a gateway")
	}
	if g.goos != "linux" || (g.goarch != "amd64" && g.goarch != "arm64") {
		why = append(why, fmt.Sprintf("the gateway is built for %s/%s; plugins are built here for linux/amd64 and linux/arm64 only", g.goos, g.goarch))
	} else if want := elfMachine[g.goarch]; g.machine != want {
		why = append(why, fmt.Sprintf("the gateway says GOARCH=%s but is an ELF file for %s", g.goarch, machineName(g.machine)))
	}
	if !g.cgo {
		why = append(why, "the gateway was built with CGO_ENABLED=0: it cannot load any plugin")
	}
	if g.libc != "glibc" && g.libc != "musl" {
		why = append(why, fmt.Sprintf("the gateway's C library is %s (%s): it cannot load plugins", g.libc, g.libcFrom))
	}
	if versionLess(g.goVersion, minGo) {
		why = append(why, fmt.Sprintf("the gateway was built with Go %s; the plugin needs Go %s or later (KrakenD 2.6.1 and later)", g.goVersion, minGo))
	}
	for k, v := range g.other {
		why = append(why, fmt.Sprintf("the gateway was built with %s=%s, which this Makefile does not reproduce", k, v))
	}
	sort.Strings(why)
	return why
}

// differences lists, setting by setting, where plugin p cannot load into gateway g.
func differences(g, p *build) []string {
	var d []string
	row := func(what, gw, pl string) {
		if gw != pl {
			d = append(d, fmt.Sprintf("%-12s gateway %-28s plugin %s", what, gw, pl))
		}
	}
	if p.buildmode != "plugin" {
		d = append(d, fmt.Sprintf("%s is not a Go plugin (-buildmode=%s)", p.path, p.buildmode))
	}
	row("Go release", "go"+g.goVersion, "go"+p.goVersion)
	row("platform", g.platform(), p.platform())
	row("CPU (ELF)", machineName(g.machine), machineName(p.machine))
	row("cgo", yesNo(g.cgo), yesNo(p.cgo))
	row("-trimpath", yesNo(g.trimpath), yesNo(p.trimpath))
	row("C library", g.libc, p.libc)
	row("build tags", orNone(g.tags), orNone(p.tags))
	for _, k := range otherKeys {
		row(k, orNone(g.other[k]), orNone(p.other[k]))
	}
	return d
}

func main() {
	flag.Usage = func() {
		fmt.Fprint(os.Stderr, "usage:\n  plugin-check describe FILE\n  plugin-check match [-min-go V] KRAKEND\n  plugin-check compare [-min-go V] KRAKEND PLUGIN\n")
	}
	if len(os.Args) < 2 {
		flag.Usage()
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	minGo := fs.String("min-go", "1.22", "oldest Go release the shim compiles with (go-shim/go.mod)")
	_ = fs.Parse(os.Args[2:])
	args := fs.Args()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "plugin-check:", err)
		os.Exit(1)
	}
	switch {
	case os.Args[1] == "describe" && len(args) == 1:
		b, err := read(args[0])
		if err != nil {
			fail(err)
		}
		fmt.Print(b.describe())
	case os.Args[1] == "match" && len(args) == 1:
		g, err := read(args[0])
		if err != nil {
			fail(err)
		}
		if why := unmatchable(g, *minGo); len(why) > 0 {
			fail(errors.New("no plugin can be built to match " + g.path + ":\n  " + strings.Join(why, "\n  ")))
		}
		// Make variables, one token each: none of these values holds a space.
		trim := "0"
		if g.trimpath {
			trim = "1"
		}
		fmt.Printf("GO_VERSION=%s LIBC=%s ARCH=%s %s TRIMPATH=%s GO_TAGS=%s", g.goVersion, g.libc, g.goarch, g.level, trim, g.tags)
		if g.krakend != "" {
			fmt.Printf(" KRAKEND_VERSION=%s", g.krakend)
		}
		fmt.Println()
	case os.Args[1] == "compare" && len(args) == 2:
		g, err := read(args[0])
		if err != nil {
			fail(err)
		}
		p, err := read(args[1])
		if err != nil {
			fail(err)
		}
		d := differences(g, p)
		if len(d) == 0 {
			fmt.Printf("plugin-check: %s matches %s (Go %s, %s, %s, %s, cgo, trimpath %s)\n",
				p.path, g.path, g.goVersion, g.libc, g.platform(), machineName(g.machine), yesNo(g.trimpath))
			return
		}
		msg := fmt.Sprintf("%s will NOT load into %s; loading it would abort the gateway at start-up:\n  %s\n",
			p.path, g.path, strings.Join(d, "\n  "))
		if why := unmatchable(g, *minGo); len(why) > 0 {
			msg += "and no plugin can be built to match this gateway:\n  " + strings.Join(why, "\n  ")
		} else {
			msg += fmt.Sprintf("Build a matching plugin with:  make build KRAKEND=%s\nor build, check and install:  make install KRAKEND=%s PLUGIN_DIR=<KrakenD's plugin folder>", g.path, g.path)
		}
		fail(errors.New(msg))
	default:
		flag.Usage()
		os.Exit(2)
	}
}
