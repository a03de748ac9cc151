// Command dpop-bench measures, through real KrakenD with the plugin, what a DPoP check costs beside
// a bearer check: a bearer token on a rule without dpop, and a DPoP-bound token with its proof on a
// rule with "dpop": {"mode": "required"}, once with the replay store in the gateway's memory and
// once in a real Redis. The verified-token cache stays on, so each token's signature is verified
// once; what a DPoP request adds is the proof check and the replay store.
//
// The load generator is Go, not wrk: every DPoP request needs a fresh signed proof. To keep the
// client's CPU the same in every row, it signs a proof for every request in every row, also in the
// bearer row, where the proof is not sent. As in gateway-bench, every gateway (and Redis) runs for
// the whole measurement and the rows take turns over several rounds; each row's median is
// reported.
//
//	dpop-bench -krakend bin/krakend -plugin build/jwk-aggregator.so -duration 10s
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/gw"
	"github.com/jwk-aggregator/jwk-aggregator/tests/providers"
)

// cleanups stop what this command started (gateways, Redis), last started first; die and the
// signal handler run them too, since os.Exit skips deferred calls.
var (
	cleanupMu sync.Mutex
	cleanups  []func()
)

func atExit(f func()) {
	cleanupMu.Lock()
	cleanups = append(cleanups, f)
	cleanupMu.Unlock()
}

func cleanup() {
	cleanupMu.Lock()
	fs := cleanups
	cleanups = nil
	cleanupMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func die(format string, a ...interface{}) {
	cleanup()
	gw.Die(format, a...)
}

// startRedis runs a real redis-server on a free loopback port until this command exits.
func startRedis(bin string) int {
	port := gw.FreePort()
	stop, err := providers.StartRedis(bin, port)
	if err != nil {
		die("%v", err)
	}
	atExit(stop)
	return port
}

// row is one kind of request, measured on one gateway.
type row struct {
	name   string
	url    string
	token  string
	dpop   bool // Authorization: DPoP and the proof sent; otherwise Bearer, the proof not sent
	conns  []*http.Client
	rps    []float64
	non200 int64
	errors int64 // transport errors (no answer), counted in non200 too
	first  string
}

// newClients makes one keep-alive client per goroutine, each with its own connection (as wrk's
// connections are).
func newClients(n int) []*http.Client {
	cs := make([]*http.Client, n)
	for i := range cs {
		cs[i] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true, IdleConnTimeout: 5 * time.Minute}}
	}
	return cs
}

// result is what one run of a row gave.
type result struct {
	ok, non200, errors int64
	first              string
	elapsed            time.Duration
}

// once sends one request with a freshly signed proof; ok is a 200 answer, and what is not ok is
// described (transport says there was no answer).
func (r *row) once(c *http.Client, key *providers.DPoPKey) (ok, transport bool, what string) {
	// Signed in every row, sent only in the DPoP rows: the client's work is the same.
	proof := key.Proof("GET", r.url, r.token, nil)
	req, _ := http.NewRequest("GET", r.url, nil)
	if r.dpop {
		req.Header.Set("Authorization", "DPoP "+r.token)
		req.Header.Set("DPoP", proof)
	} else {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, true, "no answer: " + err.Error()
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 {
		return true, false, ""
	}
	return false, false, fmt.Sprintf("%d, WWW-Authenticate %q, body %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), trim(string(body), 500))
}

// run sends requests from len(r.conns) goroutines for d and counts the 200 answers.
func (r *row) run(key *providers.DPoPKey, d time.Duration) result {
	var ok, non200, errs atomic.Int64
	var firstOnce sync.Once
	var first string
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for _, c := range r.conns {
		wg.Add(1)
		go func(c *http.Client) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				good, transport, what := r.once(c, key)
				if good {
					ok.Add(1)
					continue
				}
				non200.Add(1)
				if transport {
					errs.Add(1)
				}
				firstOnce.Do(func() { first = what })
			}
		}(c)
	}
	wg.Wait()
	return result{ok.Load(), non200.Load(), errs.Load(), first, time.Since(start)}
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func main() {
	bin := flag.String("krakend", "bin/krakend", "KrakenD binary")
	plugin := flag.String("plugin", "build/jwk-aggregator.so", "plugin")
	redisBin := flag.String("redis-server", "redis-server", "redis-server binary")
	d := flag.Duration("duration", 10*time.Second, "per row and round")
	rounds := flag.Int("rounds", 3, "rounds: each row is measured once a round, the rows taking turns")
	conns := flag.Int("connections", 32, "goroutines, each with its own keep-alive connection")
	alg := flag.String("alg", "ES256", "the tokens' algorithm (the identity provider's key): ES256 or RS256")
	flag.Parse()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		die("stopped by %v", s)
	}()

	redisPort := startRedis(*redisBin)

	p, err := idp.Start("dpop-bench-idp", 0, *alg)
	if err != nil {
		die("%v", err)
	}
	defer p.Close()
	key := providers.NewDPoPKey()
	now := time.Now().Unix()
	claims := func(cnf bool) map[string]interface{} {
		c := map[string]interface{}{"iss": p.Issuer, "sub": "alice", "aud": "api", "iat": now, "exp": now + 24*3600}
		if cnf {
			c["cnf"] = map[string]interface{}{"jkt": key.Thumbprint()}
		}
		return c
	}
	bearer := p.Key(0).Sign(claims(false), nil)
	bound := p.Key(0).Sign(claims(true), nil)

	backendURL := gw.Backend()
	dir, err := os.MkdirTemp("", "dpop-bench")
	if err != nil {
		die("%v", err)
	}
	atExit(func() { os.RemoveAll(dir) })
	pluginDir := gw.PluginDir(dir, *plugin)
	logging := map[string]interface{}{"level": "ERROR", "stdout": true}

	// cfg is a gateway with the aggregator and the auth handler: /bearer a plain rule, /dpop a rule
	// requiring DPoP; the replay store in memory unless replay is given.
	cfg := func(replay map[string]interface{}) map[string]interface{} {
		auth := map[string]interface{}{"rules": []interface{}{
			map[string]interface{}{"paths": []string{"/bearer"}, "audience": []string{"api"}},
			map[string]interface{}{"paths": []string{"/dpop"}, "audience": []string{"api"},
				"dpop": map[string]interface{}{"mode": "required", "alg": []string{"ES256"}}},
		}}
		if replay != nil {
			auth["dpop_replay"] = replay
		}
		return map[string]interface{}{
			"plugin": map[string]interface{}{"pattern": ".so", "folder": pluginDir},
			"extra_config": map[string]interface{}{
				"telemetry/logging": logging,
				"plugin/http-server": map[string]interface{}{
					"name":                []string{"jwk-aggregator", "jwk-aggregator-auth"},
					"jwk-aggregator":      map[string]interface{}{"port": gw.FreePort(), "origins": []string{p.JWKSURL()}, "cache": true},
					"jwk-aggregator-auth": auth,
				},
			},
			"endpoints": []interface{}{gw.Endpoint("/bearer", backendURL, nil), gw.Endpoint("/dpop", backendURL, nil)},
		}
	}
	m := gw.Start(*bin, cfg(nil), dir, nil)
	atExit(m.Stop)
	r := gw.Start(*bin, cfg(map[string]interface{}{"redis": fmt.Sprintf("redis://127.0.0.1:%d/0", redisPort)}), dir, nil)
	atExit(r.Stop)

	rows := []*row{
		{name: "bearer token, rule without dpop (gateway M `/bearer`)", url: m.URL("/bearer"), token: bearer},
		{name: "DPoP token and proof, replay store in memory (gateway M `/dpop`)", url: m.URL("/dpop"), token: bound, dpop: true},
		{name: "DPoP token and proof, replay store in Redis (gateway R `/dpop`)", url: r.URL("/dpop"), token: bound, dpop: true},
	}
	// Every row answers 200 and has run under load once before the measurement, so that no row
	// pays for warming up (keys fetched on first use, the token verified and cached, connections).
	for _, w := range rows {
		w.conns = newClients(*conns)
		if ok, _, what := w.once(w.conns[0], key); !ok {
			die("%s does not answer 200 before the run: %s", w.url, what)
		}
		if res := w.run(key, 2*time.Second); res.non200 > 0 {
			die("%s: %d non-200 answers while warming up; the first: %s", w.url, res.non200, res.first)
		}
	}
	for round := 0; round < *rounds; round++ {
		for _, w := range rows {
			res := w.run(key, *d)
			w.rps = append(w.rps, float64(res.ok)/res.elapsed.Seconds())
			w.non200 += res.non200
			w.errors += res.errors
			if w.first == "" && res.first != "" {
				w.first = res.first
				fmt.Fprintf(os.Stderr, "%s: first non-200 answer: %s\n", w.url, res.first)
			}
		}
	}
	median := func(v []float64) float64 {
		s := append([]float64{}, v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	base := median(rows[0].rps)
	fmt.Printf("| request | requests/s (median) | ratio to the bearer row | each round | non-200 |\n| --- | --- | --- | --- | --- |\n")
	for _, w := range rows {
		var each []string
		for _, v := range w.rps {
			each = append(each, fmt.Sprintf("%.0f", v))
		}
		non := fmt.Sprint(w.non200)
		if w.errors > 0 {
			non += fmt.Sprintf(" (%d without an answer)", w.errors)
		}
		fmt.Printf("| %s | %.0f | %.2f | %s | %s |\n", w.name, median(w.rps), median(w.rps)/base, strings.Join(each, ", "), non)
	}
	for _, w := range rows {
		if w.first != "" {
			fmt.Printf("\nFirst non-200 answer of %q: %s\n", w.name, w.first)
		}
	}
	tokenKey := "a P-256 key"
	if *alg == "RS256" {
		tokenKey = "a 2048-bit key"
	}
	fmt.Printf("\nA Go load generator: %d goroutines, each with its own keep-alive connection, %s per row and\n", *conns, d)
	fmt.Printf("round, %d rounds, the rows taking turns, both gateways and Redis running throughout. Tokens %s\n", *rounds, *alg)
	fmt.Printf("(%s), proofs ES256 (P-256), verified-token cache on (the default): each token's signature is\n", tokenKey)
	fmt.Printf("verified once, and a DPoP request adds its proof check and the replay store (in-process, or one\n")
	fmt.Printf("`SET NX PX` on a local Redis without persistence). The load generator signs a fresh proof for\n")
	fmt.Printf("every request in every row, sent only in the DPoP rows, so that the client's CPU is the same in\n")
	fmt.Printf("each row. The load generator, KrakenD, Redis, the backend and the identity provider share this\n")
	// The report describes the gateway build (KrakenD prints its version lines on stderr), never
	// where it sits on this machine.
	ver, _ := exec.Command(*bin, "version").CombinedOutput()
	rv, _ := exec.Command(*redisBin, "--version").CombinedOutput()
	redisVer := "unknown"
	if mv := regexp.MustCompile(`v=(\S+)`).FindSubmatch(rv); mv != nil {
		redisVer = string(mv[1])
	}
	fmt.Printf("machine's cores. Gateway: %s. Redis %s.\n", strings.TrimSpace(regexp.MustCompile(`\s+`).ReplaceAllString(string(ver), " ")), redisVer)
	cleanup()
}
