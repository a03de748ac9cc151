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
	"path/filepath"
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
	pin := flag.Bool("pin", false, "run KrakenD on CPU 0 and this command (clients and provider) on CPU 1, as if they were other machines")
	flag.Parse()
	if *pin {
		*bin = pinned(*bin)
	}

	realms, err := idp.StartRealms(0, false)
	if err != nil {
		gw.Die("%v", err)
	}
	arrivals := 3000
	names := make([]string, *n+arrivals+1)
	tokens := map[string]string{}
	keys := map[string]*idp.Key{}
	for i := range names {
		names[i] = fmt.Sprintf("t%05d", i)
		keys[names[i]] = realms.Create(names[i], "EdDSA")
		tokens[names[i]] = realms.Token(names[i], keys[names[i]], "u", "", 24*time.Hour)
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
	// A known tenant's latency with no other traffic (A), while new tenants arrive, 100 a second
	// from 4 clients (B), and, as a control, while the same 4 clients send 100 requests a second of
	// tenants already known (C): B against C is what the discoveries themselves cost. Alternated
	// three times, so that the machine's own noise hits all three alike.
	var quiet, busy, control []time.Duration
	var failed atomic.Int64
	next, other := 0, 0
	// Fresh tokens of known tenants for the control: each is verified once, as an arriving
	// tenant's is, so that only the discovery differs.
	renewed := map[string]string{}
	for i := 0; i < 3000; i++ {
		r := tenants[i%len(tenants)]
		renewed[fmt.Sprintf("%s#%d", r, i)] = realms.Token(r, keys[r], fmt.Sprintf("u%d", i), "", 24*time.Hour)
	}
	// load runs 4 clients, 25 requests a second each, of the realms next() hands out (with their
	// token), while measure runs.
	load := func(next func() (string, string, bool), measure func()) {
		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					realm, token, ok := next()
					if !ok {
						return
					}
					t0 := time.Now()
					if get(g.URL("/t/"+realm), token) != 200 {
						failed.Add(1)
					}
					time.Sleep(40*time.Millisecond - time.Since(t0))
				}
			}()
		}
		measure()
		stop.Store(true)
		wg.Wait()
	}
	var mu sync.Mutex
	newcomer := func() (string, string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= len(newcomers) {
			return "", "", false
		}
		next++
		return newcomers[next-1], tokens[newcomers[next-1]], true
	}
	knownOne := func() (string, string, bool) {
		mu.Lock()
		defer mu.Unlock()
		other++
		r := tenants[other%3000%len(tenants)]
		return r, renewed[fmt.Sprintf("%s#%d", r, other%3000)], true
	}
	for round := 0; round < 5; round++ {
		quiet = append(quiet, latencies(knownURL, tokens[known], 1000)...)
		load(newcomer, func() { busy = append(busy, latencies(knownURL, tokens[known], 1000)...) })
		load(knownOne, func() { control = append(control, latencies(knownURL, tokens[known], 1000)...) })
	}
	p50, p99 := percentiles(quiet)
	p50a, p99a := percentiles(busy)
	p50c, p99c := percentiles(control)
	if n := failed.Load(); n > 0 {
		gw.Die("%d requests of arriving or other known tenants were not answered 200", n)
	}
	// Fetch workers leave after 30 s without work: the threads that stay.
	time.Sleep(35 * time.Second)
	threadsSettled, settledNames := g.Status("Threads"), g.Threads()
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
	fmt.Printf("| gateway threads, before / 2 s after / once fetch workers idled 35 s | %d / %d / %d (%s) |\n", threadsBefore, threadsAfter, threadsSettled, settledNames)
	fmt.Printf("| known tenant, no other traffic (5 × 1,000 requests): p50 / p99 | %.0f µs / %.0f µs |\n", us(p50), us(p99))
	fmt.Printf("| known tenant, about 100 new tenants/s arriving (alternated with the row above): p50 / p99 | %.0f µs / %.0f µs (p99 ratio %.2f) |\n",
		us(p50a), us(p99a), float64(p99a)/float64(p99))
	fmt.Printf("| control: known tenant, about 100 requests/s of other known tenants with new tokens: p50 / p99 | %.0f µs / %.0f µs (p99 ratio %.2f; new tenants against this: %.2f) |\n",
		us(p50c), us(p99c), float64(p99c)/float64(p99), float64(p99a)/float64(p99c))
	fmt.Printf("| refresh load at a %s freshness (%d tenants, %s counted) | %.0f provider requests per tenant per hour |\n", fresh, m, window, perTenantHour)
	ver, _ := exec.Command(*bin, "version").CombinedOutput()
	fmt.Printf("\nProvider: the project's multi-tenant loopback provider (tests/idp/realms.go), one EdDSA key a realm,\n")
	where := "on the same machine and cores as the gateway"
	if *pin {
		where = "on the same machine; the gateway on CPU 0, the provider and the clients on CPU 1 (taskset)"
	}
	fmt.Printf("%s. Gateway: %s.\n", where, strings.TrimSpace(regexp.MustCompile(`\s+`).ReplaceAllString(string(ver), " ")))
}

// pinned writes a wrapper that runs the gateway on CPU 0 and moves this process to CPU 1, so that
// the clients and the provider (other machines in production) do not compete with the gateway.
func pinned(bin string) string {
	abs, err := filepath.Abs(bin)
	if err != nil {
		gw.Die("%v", err)
	}
	f, err := os.CreateTemp("", "krakend-cpu0-*")
	if err != nil {
		gw.Die("%v", err)
	}
	fmt.Fprintf(f, "#!/bin/sh\nexec taskset -c 0 %s \"$@\"\n", abs)
	f.Close()
	os.Chmod(f.Name(), 0o755)
	if out, err := exec.Command("taskset", "-a", "-p", "-c", "1", fmt.Sprint(os.Getpid())).CombinedOutput(); err != nil {
		gw.Die("taskset: %v %s", err, out)
	}
	return f.Name()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
