// Command tenant-bench measures dynamic issuers (issuer_patterns) at scale through real KrakenD
// and jwk-aggregator-auth, against a multi-tenant loopback provider of N realms:
//
//   - first-sight discoveries per second, for N new tenants sent by 16 clients;
//
//   - the gateway's anonymous resident memory per idle issuer and its thread count, before and after;
//
//   - a known tenant's latency (p50, p99) with no tenants arriving, then while new tenants arrive;
//
//   - the refresh load on the provider, in requests per hour per tenant, at a 10 s freshness.
//
//     tenant-bench -krakend bin/krakend -plugin build/jwk-aggregator.so -tenants 10000
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/gw"
)

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

func get(url, token string) int {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// gateway starts KrakenD protecting /t/{realm} with the realms' pattern and the given settings.
func gateway(bin, plugin, parent string, realms *idp.Realms, extra map[string]interface{}) *gw.Gateway {
	dir, err := os.MkdirTemp(parent, "gateway")
	if err != nil {
		gw.Die("%v", err)
	}
	block := map[string]interface{}{
		"port": gw.FreePort(), "issuer_patterns": []string{realms.Pattern()},
		"max_dynamic_issuers": 100000, "discoveries_per_minute": 10000,
	}
	for k, v := range extra {
		block[k] = v
	}
	cfg := map[string]interface{}{
		"plugin": map[string]interface{}{"pattern": ".so", "folder": gw.PluginDir(dir, plugin)},
		"extra_config": map[string]interface{}{
			"telemetry/logging": map[string]interface{}{"level": "ERROR", "stdout": true},
			"plugin/http-server": map[string]interface{}{
				"name":                []string{"jwk-aggregator", "jwk-aggregator-auth"},
				"jwk-aggregator":      block,
				"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/t/{realm}"}}}},
			},
		},
		"endpoints": []interface{}{gw.Endpoint("/t/{realm}", gw.Backend(), nil)},
	}
	return gw.Start(bin, cfg, dir, nil)
}

// discover sends one token per realm with 16 clients and returns the time it took.
func discover(g *gw.Gateway, realms []string, tokens map[string]string) time.Duration {
	start := time.Now()
	if n := gw.Each(len(realms), 16, func(i int) bool { return get(g.URL("/t/"+realms[i]), tokens[realms[i]]) == 200 }); n > 0 {
		gw.Die("%d of %d first sights were not answered 200", n, len(realms))
	}
	return time.Since(start)
}

// latencies sends n requests of one tenant one after another and returns their durations.
func latencies(url, token string, n int) []time.Duration {
	d := make([]time.Duration, n)
	for i := range d {
		t0 := time.Now()
		if c := get(url, token); c != 200 {
			gw.Die("known tenant answered %d", c)
		}
		d[i] = time.Since(t0)
	}
	return d
}

func percentiles(d []time.Duration) (time.Duration, time.Duration) {
	sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
	return d[len(d)/2], d[len(d)*99/100]
}

func main() {
	bin := flag.String("krakend", "bin/krakend", "KrakenD binary")
	plugin := flag.String("plugin", "build/jwk-aggregator.so", "plugin")
	n := flag.Int("tenants", 10000, "tenants discovered")
	flag.Parse()

	realms, err := idp.StartRealms(0, false)
	if err != nil {
		gw.Die("%v", err)
	}
	arrivals := 3000
	names := make([]string, *n+arrivals+1)
	tokens := map[string]string{}
	for i := range names {
		names[i] = fmt.Sprintf("t%05d", i)
		key := realms.Create(names[i], "EdDSA")
		tokens[names[i]] = realms.Token(names[i], key, "u", "", 24*time.Hour)
	}
	known, tenants, newcomers := names[0], names[1:*n+1], names[*n+1:]
	dir, _ := os.MkdirTemp("", "tenant-bench")
	defer os.RemoveAll(dir)

	g := gateway(*bin, *plugin, dir, realms, nil)
	knownURL := g.URL("/t/" + known)
	latencies(knownURL, tokens[known], 500) // warm up: the known tenant discovered, connections open
	time.Sleep(time.Second)
	anonBefore, threadsBefore := g.Status("RssAnon"), g.Status("Threads")
	took := discover(g, tenants, tokens)
	time.Sleep(2 * time.Second)
	anonAfter, threadsAfter := g.Status("RssAnon"), g.Status("Threads")
	// A known tenant's latency with no tenants arriving (A) and while new tenants arrive, 100 a
	// second from 4 clients (B), alternated three times: the machine's own noise hits both alike.
	var quiet, busy []time.Duration
	var arrived atomic.Int64
	var during time.Duration
	next := 0
	for round := 0; round < 3; round++ {
		quiet = append(quiet, latencies(knownURL, tokens[known], 1000)...)
		var stop atomic.Bool
		var wg sync.WaitGroup
		var mu sync.Mutex
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					mu.Lock()
					i := next
					next++
					mu.Unlock()
					if i >= len(newcomers) {
						return
					}
					t0 := time.Now()
					if get(g.URL("/t/"+newcomers[i]), tokens[newcomers[i]]) == 200 {
						arrived.Add(1)
					}
					time.Sleep(40*time.Millisecond - time.Since(t0))
				}
			}()
		}
		t0 := time.Now()
		busy = append(busy, latencies(knownURL, tokens[known], 1000)...)
		during += time.Since(t0)
		stop.Store(true)
		wg.Wait()
	}
	p50, p99 := percentiles(quiet)
	p50a, p99a := percentiles(busy)
	// Fetch workers leave after 30 s without work: the threads that stay.
	time.Sleep(35 * time.Second)
	threadsSettled := g.Status("Threads")
	g.Stop()

	// Refresh load: 1,000 tenants at a 10 s freshness, provider requests counted over 40 s.
	const m, fresh, window = 1000, 10 * time.Second, 40 * time.Second
	g = gateway(*bin, *plugin, dir, realms, map[string]interface{}{"cache_default_ttl": "10s", "cache_min_ttl": "10s", "cache_max_ttl": "10s"})
	discover(g, names[:m], tokens)
	time.Sleep(fresh) // past the first refresh of every tenant: a steady state
	r0 := realms.Requests()
	time.Sleep(window)
	refreshes := realms.Requests() - r0
	g.Stop()
	perTenantHour := float64(refreshes) / m * float64(time.Hour) / float64(window)

	kb := func(k int) string { return fmt.Sprintf("%.1f MB", float64(k)/1024) }
	fmt.Printf("| dynamic issuers, %d tenants | figure |\n| --- | --- |\n", *n)
	fmt.Printf("| first sights, 16 clients | %d in %.1f s: %.0f discoveries/s |\n", *n, took.Seconds(), float64(*n)/took.Seconds())
	fmt.Printf("| gateway anonymous memory, before / after | %s / %s: %.1f KB per idle issuer |\n", kb(anonBefore), kb(anonAfter), float64(anonAfter-anonBefore)/float64(*n))
	fmt.Printf("| gateway threads, before / 2 s after / once fetch workers idled 35 s | %d / %d / %d |\n", threadsBefore, threadsAfter, threadsSettled)
	fmt.Printf("| known tenant, no arrivals (3 × 1,000 requests): p50 / p99 | %.0f µs / %.0f µs |\n", us(p50), us(p99))
	fmt.Printf("| known tenant, %.0f new tenants/s arriving (3 × 1,000, alternated with the row above): p50 / p99 | %.0f µs / %.0f µs (p99 ratio %.2f) |\n",
		float64(arrived.Load())/during.Seconds(), us(p50a), us(p99a), float64(p99a)/float64(p99))
	fmt.Printf("| refresh load at a %s freshness (%d tenants, %s counted) | %.0f provider requests per tenant per hour |\n", fresh, m, window, perTenantHour)
	ver, _ := exec.Command(*bin, "version").CombinedOutput()
	fmt.Printf("\nProvider: the project's multi-tenant loopback provider (tests/idp/realms.go), one EdDSA key a realm,\n")
	fmt.Printf("on the same machine. Gateway: %s.\n", strings.TrimSpace(regexp.MustCompile(`\s+`).ReplaceAllString(string(ver), " ")))
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
