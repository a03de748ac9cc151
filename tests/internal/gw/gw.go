// Package gw runs real KrakenD for the load and benchmark commands: free ports, a plugin folder
// holding only the plugin, a config file, start-up and shutdown.
package gw

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FreePort returns a port free on 127.0.0.1 now.
func FreePort() int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Die prints a message prefixed with the command name and exits 1.
func Die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, filepath.Base(os.Args[0])+": "+format+"\n", a...)
	os.Exit(1)
}

// PluginDir makes a folder under dir that holds only a link to the plugin, as users deploy it.
func PluginDir(dir, plugin string) string {
	pd := filepath.Join(dir, "plugins")
	abs, _ := filepath.Abs(plugin)
	if err := os.MkdirAll(pd, 0o755); err != nil {
		Die("%v", err)
	}
	if err := os.Symlink(abs, filepath.Join(pd, "jwk-aggregator.so")); err != nil {
		Die("%v", err)
	}
	return pd + "/"
}

// Env is the environment a test gateway runs with: this process's, less the KRAKEND_* variables
// (KrakenD reads them as configuration overrides: make's KRAKEND_VERSION=2.10.2 would become the
// configuration's "version"), and with KrakenD's usage report off (it never leaves the machine).
func Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KRAKEND_") {
			env = append(env, kv)
		}
	}
	return append(env, "USAGE_DISABLE=1")
}

// Gateway is one running KrakenD.
type Gateway struct {
	cmd  *exec.Cmd
	Port int
}

// Start writes cfg (version and port filled in) under dir, starts KrakenD with its output to log
// (nil: discarded) and waits until /__health answers 200.
func Start(bin string, cfg map[string]interface{}, dir string, log io.Writer) *Gateway {
	port := FreePort()
	cfg["version"], cfg["port"] = 3, port
	raw, _ := json.MarshalIndent(cfg, "", " ")
	path := filepath.Join(dir, fmt.Sprintf("krakend-%d.json", port))
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		Die("%v", err)
	}
	cmd := exec.Command(bin, "run", "-c", path)
	cmd.Env = Env()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		Die("%v", err)
	}
	for i := 0; i < 300; i++ {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/__health", port)); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return &Gateway{cmd, port}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Kill()
	Die("krakend did not start with %s", path)
	return nil
}

// Status reads one field of the gateway process's /proc status ("RssAnon", "Threads") as a
// number (kB for sizes).
func (g *Gateway) Status(field string) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		Die("%v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	Die("no %s in /proc status", field)
	return 0
}

// Threads counts the gateway's threads by name: Go's own carry the program's name, the plugin's
// Rust threads theirs (jwka-fetch, jwka-refresh, reqwest's runtime).
func (g *Gateway) Threads() string {
	dirs, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", g.cmd.Process.Pid))
	count := map[string]int{}
	for _, d := range dirs {
		if raw, err := os.ReadFile(d); err == nil {
			count[strings.TrimSpace(string(raw))]++
		}
	}
	names := make([]string, 0, len(count))
	for n := range count {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, count[n])
	}
	return strings.Join(parts, ", ")
}

// URL is the gateway's address for path.
func (g *Gateway) URL(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", g.Port, path) }

// Stop ends KrakenD the way an operator does and waits for it.
func (g *Gateway) Stop() {
	_ = g.cmd.Process.Signal(os.Interrupt)
	_ = g.cmd.Wait()
}

// Endpoint is a KrakenD endpoint at path proxying to backend's "/", with extra_config if not nil.
func Endpoint(path, backend string, extra map[string]interface{}) map[string]interface{} {
	e := map[string]interface{}{"endpoint": path, "backend": []interface{}{map[string]interface{}{"host": []string{backend}, "url_pattern": "/"}}}
	if extra != nil {
		e["extra_config"] = extra
	}
	return e
}

// Backend serves {"ok":true} on a free loopback port and returns its base URL.
func Backend() string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		Die("%v", err)
	}
	go (&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})}).Serve(ln)
	return "http://" + ln.Addr().String()
}

// Each runs ok(i) for every i in [0, n) from `workers` goroutines at once and returns how many
// returned false.
func Each(n, workers int, ok func(i int) bool) int {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if !ok(i) {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(failed.Load())
}

// Pid is the gateway process's id (profiling).
func (g *Gateway) Pid() int { return g.cmd.Process.Pid }
