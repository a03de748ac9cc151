// Command fault-load drives real KrakenD at a fixed concurrency for a set time while one identity
// provider is stopped and restarted and another rotates its keys, and counts every answer.
// Clients only send tokens that are valid at that moment, so anything but 200 is a failure.
//
//	fault-load -krakend bin/krakend -plugin build/jwk-aggregator.so -duration 60s -concurrency 64
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/gw"
)

type tokens struct {
	mu   sync.RWMutex
	list []string
}

func (t *tokens) set(l []string) { t.mu.Lock(); t.list = l; t.mu.Unlock() }
func (t *tokens) pick(i int) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.list[i%len(t.list)]
}

func main() {
	bin := flag.String("krakend", "bin/krakend", "KrakenD binary")
	plugin := flag.String("plugin", "build/jwk-aggregator.so", "plugin")
	duration := flag.Duration("duration", 60*time.Second, "load duration")
	concurrency := flag.Int("concurrency", 64, "concurrent clients")
	flag.Parse()
	at := func(f float64) time.Duration { return time.Duration(float64(*duration) * f) }

	a, err := idp.Start("idp-a", 0, "RS256")
	if err != nil {
		gw.Die("%v", err)
	}
	b, err := idp.Start("idp-b", 0, "RS256")
	if err != nil {
		gw.Die("%v", err)
	}
	mint := func(p *idp.Provider, key *idp.Key, n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, key.Sign(map[string]interface{}{"iss": p.Issuer, "sub": fmt.Sprintf("u%d", i), "aud": "api",
				"iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Hour).Unix()}, nil))
		}
		return out
	}
	tokA := mint(a, a.Key(0), 50)
	pool := &tokens{}
	pool.set(append(append([]string{}, tokA...), mint(b, b.Key(0), 50)...))

	backendURL := gw.Backend()
	dir, _ := os.MkdirTemp("", "fault-load")
	defer os.RemoveAll(dir)
	pluginDir := gw.PluginDir(dir, *plugin)
	aggPort := gw.FreePort()
	ep := func(path string, extra map[string]interface{}) map[string]interface{} {
		return gw.Endpoint(path, backendURL, extra)
	}
	cfg := map[string]interface{}{
		"plugin": map[string]interface{}{"pattern": ".so", "folder": pluginDir},
		"extra_config": map[string]interface{}{
			"telemetry/logging": map[string]interface{}{"level": "WARNING", "stdout": true},
			"plugin/http-server": map[string]interface{}{
				"name":                []string{"jwk-aggregator", "jwk-aggregator-auth"},
				"jwk-aggregator":      map[string]interface{}{"port": aggPort, "origins": []string{a.JWKSURL(), b.JWKSURL()}},
				"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/handler"}, "audience": []string{"api"}}}},
			},
		},
		"endpoints": []interface{}{
			ep("/validator", map[string]interface{}{"auth/validator": map[string]interface{}{"alg": "RS256",
				"jwk_url": fmt.Sprintf("http://localhost:%d", aggPort), "disable_jwk_security": true, "cache": true, "audience": []string{"api"}}}),
			ep("/handler", nil),
		},
	}
	logPath := filepath.Join(dir, "krakend.log")
	logFile, _ := os.Create(logPath)
	g := gw.Start(*bin, cfg, dir, logFile)
	defer g.Stop()

	type key struct {
		path   string
		status int
	}
	var mu sync.Mutex
	counts := map[key]int{}
	var failures []string
	var total atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *concurrency}, Timeout: 10 * time.Second}
	start := time.Now()
	deadline := start.Add(*duration)
	var wg sync.WaitGroup
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i += *concurrency {
				path := []string{"/validator", "/handler"}[i%2]
				req, _ := http.NewRequest("GET", g.URL(path), nil)
				req.Header.Set("Authorization", "Bearer "+pool.pick(i/2))
				resp, err := client.Do(req)
				status := 0
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				total.Add(1)
				mu.Lock()
				counts[key{path, status}]++
				if status != 200 && len(failures) < 20 {
					failures = append(failures, fmt.Sprintf("%s %s: %d %v", time.Since(start).Round(time.Millisecond), path, status, err))
				}
				mu.Unlock()
			}
		}(w)
	}

	events := []string{}
	step := func(when time.Duration, what string, f func()) {
		time.Sleep(time.Until(start.Add(when)))
		f()
		events = append(events, fmt.Sprintf("%s: %s", when.Round(time.Second), what))
	}
	step(at(1.0/6), "identity provider A stopped", a.Close)
	step(at(25.0/60), "identity provider A restarted", func() {
		if err := a.Restart(); err != nil {
			gw.Die("restart A: %v", err)
		}
	})
	key2 := idp.NewKey("idp-b-rotated", "RS256")
	step(at(0.5), "B publishes a new key beside the old one", func() { b.SetKeys(b.Key(0), key2) })
	step(at(32.0/60), "B signs with the new key (clients switch to its tokens)", func() {
		pool.set(append(append([]string{}, tokA...), mint(b, key2, 50)...))
	})
	step(at(0.75), "B withdraws the old key", func() { b.SetKeys(key2) })
	wg.Wait()

	fmt.Printf("Load: %d clients for %s against real KrakenD (%s), alternating /validator (auth/validator, jwk_url at the aggregator) and /handler (jwk-aggregator-auth).\n\n", *concurrency, *duration, *bin)
	fmt.Println("Events:")
	for _, e := range events {
		fmt.Println("- " + e)
	}
	fmt.Printf("\n| endpoint | status | responses |\n| --- | --- | --- |\n")
	var keys []key
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	bad := 0
	for _, k := range keys {
		fmt.Printf("| %s | %d | %d |\n", k.path, k.status, counts[k])
		if k.status != 200 {
			bad += counts[k]
		}
	}
	fmt.Printf("\ntotal %d requests, %.0f/s, non-200: %d\n", total.Load(), float64(total.Load())/duration.Seconds(), bad)
	for _, f := range failures {
		fmt.Println("  " + f)
	}
	if bad > 0 {
		fmt.Println("FAULT LOAD FAILED; gateway log:", logPath)
		os.Exit(1)
	}
	fmt.Println("fault load ok: zero 5xx and no valid token rejected")
}
