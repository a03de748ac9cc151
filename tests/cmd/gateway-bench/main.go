// Command gateway-bench measures real KrakenD throughput with a load generator (wrk), side by side
// in one run: a gateway without the plugin, and one with it on an unprotected endpoint, an
// auth/validator endpoint pointed at the aggregator, and a jwk-aggregator-auth endpoint. Every
// gateway runs for the whole measurement, and the rows take turns over several rounds (each row's
// median is reported): on a shared 2-core machine, rows measured one after another differ by
// more than what the plugin costs.
//
//	gateway-bench -krakend bin/krakend -plugin build/jwk-aggregator.so -duration 10s
//
// With -serve FILE it measures nothing: it starts the same gateways, writes the token and each
// row's URL and gateway pid to FILE (shell variables), and keeps them running until interrupted,
// for a profiler (BENCHMARKS.md, "Where a protected request's time goes").
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/gw"
)

// row is one measured endpoint and the gateway that serves it.
type row struct {
	name, url string
	gw        *gw.Gateway
}

// serveRows writes the token and, per row, its URL and gateway pid (ROW<i>_URL, ROW<i>_PID, with
// the row's name in a comment) to path, and waits for an interrupt.
func serveRows(path, token string, rows []row) {
	env := fmt.Sprintf("TOKEN=%s\n", token)
	for i, r := range rows {
		env += fmt.Sprintf("# %s\nROW%d_URL=%s\nROW%d_PID=%d\n", r.name, i, r.url, i, r.gw.Pid())
	}
	if err := os.WriteFile(path, []byte(env), 0o644); err != nil {
		gw.Die("%v", err)
	}
	fmt.Print(env)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}

var rpsRe = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
var non2xxRe = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)

// warm makes sure a row answers 200 and has run under load once, so that no row pays for
// warming up its gateway (the validator fetches keys on first use).
func warm(url, token string, conns int) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		gw.Die("%s does not answer 200 before the run: %v %v", url, err, resp)
	}
	resp.Body.Close()
	if out, err := exec.Command("wrk", "-t2", fmt.Sprintf("-c%d", conns), "-d2s", "-H", "Authorization: Bearer "+token, url).CombinedOutput(); err != nil {
		gw.Die("wrk: %v\n%s", err, out)
	}
}

func load(url, token string, d time.Duration, conns int) float64 {
	out, err := exec.Command("wrk", "-t2", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(d.Seconds())),
		"-H", "Authorization: Bearer "+token, url).CombinedOutput()
	if err != nil {
		gw.Die("wrk: %v\n%s", err, out)
	}
	if m := non2xxRe.FindSubmatch(out); m != nil {
		gw.Die("%s: %s non-2xx answers under load:\n%s", url, m[1], out)
	}
	m := rpsRe.FindSubmatch(out)
	if m == nil {
		gw.Die("no Requests/sec in wrk output:\n%s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func main() {
	bin := flag.String("krakend", "bin/krakend", "KrakenD binary")
	plugin := flag.String("plugin", "build/jwk-aggregator.so", "plugin")
	d := flag.Duration("duration", 10*time.Second, "per measurement")
	rounds := flag.Int("rounds", 3, "rounds: each row is measured once a round, the rows taking turns")
	passThrough := flag.String("pass-through-plugin", "", "a Go http-server plugin registering jwk-aggregator-auth as a bare pass-through (built with the gateway's Go): adds the row of what being a plugin costs")
	conns := flag.Int("connections", 32, "wrk connections")
	serve := flag.String("serve", "", "start the gateways, write the token and each row's URL and pid to this file, and keep them running until interrupted")
	flag.Parse()

	p, err := idp.Start("bench-idp", 0, "RS256")
	if err != nil {
		gw.Die("%v", err)
	}
	token := p.Token(0, "alice", "api", 24*time.Hour)
	backendURL := gw.Backend()
	dir, _ := os.MkdirTemp("", "gateway-bench")
	defer os.RemoveAll(dir)
	pluginDir := gw.PluginDir(dir, *plugin)

	ep := func(path string, extra map[string]interface{}) map[string]interface{} {
		return gw.Endpoint(path, backendURL, extra)
	}
	logging := map[string]interface{}{"telemetry/logging": map[string]interface{}{"level": "ERROR", "stdout": true}}

	plain := gw.Start(*bin, map[string]interface{}{"endpoints": []interface{}{ep("/noauth", nil)}, "extra_config": logging}, dir, nil)
	defer plain.Stop()

	aggPort := gw.FreePort()
	cfg := map[string]interface{}{
		"plugin": map[string]interface{}{"pattern": ".so", "folder": pluginDir},
		"extra_config": map[string]interface{}{
			"telemetry/logging": logging["telemetry/logging"],
			"plugin/http-server": map[string]interface{}{
				"name":                []string{"jwk-aggregator", "jwk-aggregator-auth"},
				"jwk-aggregator":      map[string]interface{}{"port": aggPort, "origins": []string{p.JWKSURL()}, "cache": true},
				"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/handler"}, "audience": []string{"api"}}}},
			},
		},
		"endpoints": []interface{}{
			ep("/noauth", nil),
			ep("/validator", map[string]interface{}{"auth/validator": map[string]interface{}{
				"alg": "RS256", "jwk_url": fmt.Sprintf("http://localhost:%d", aggPort), "disable_jwk_security": true, "cache": true, "audience": []string{"api"}}}),
			ep("/handler", nil),
		},
	}
	g := gw.Start(*bin, cfg, dir, nil)
	defer g.Stop()
	// The same handler with its verified-token cache off: every request verifies the signature.
	uncachedCfg := map[string]interface{}{}
	raw, _ := json.Marshal(cfg)
	_ = json.Unmarshal(raw, &uncachedCfg)
	srv := uncachedCfg["extra_config"].(map[string]interface{})["plugin/http-server"].(map[string]interface{})
	srv["jwk-aggregator"].(map[string]interface{})["port"] = gw.FreePort()
	srv["jwk-aggregator-auth"].(map[string]interface{})["cache_size"] = 0
	u := gw.Start(*bin, uncachedCfg, dir, nil)
	defer u.Stop()

	// The plugin loaded with the aggregator only (no handler): what its presence costs a gateway.
	aggOnly := gw.Start(*bin, map[string]interface{}{
		"plugin":    map[string]interface{}{"pattern": ".so", "folder": pluginDir},
		"endpoints": []interface{}{ep("/noauth", nil)},
		"extra_config": map[string]interface{}{"telemetry/logging": logging["telemetry/logging"],
			"plugin/http-server": map[string]interface{}{"name": []string{"jwk-aggregator"},
				"jwk-aggregator": map[string]interface{}{"port": gw.FreePort(), "origins": []string{p.JWKSURL()}, "cache": true}}},
	}, dir, nil)
	defer aggOnly.Stop()

	rows := []row{
		{"no auth, gateway without the plugin", plain.URL("/noauth"), plain},
		{"no auth, gateway with the plugin's jwk-aggregator only (no handler)", aggOnly.URL("/noauth"), aggOnly},
	}
	if *passThrough != "" {
		ptDir, _ := os.MkdirTemp("", "gateway-bench-pt")
		defer os.RemoveAll(ptDir)
		pt := gw.Start(*bin, map[string]interface{}{
			"plugin":    map[string]interface{}{"pattern": ".so", "folder": gw.PluginDir(ptDir, *passThrough)},
			"endpoints": []interface{}{ep("/noauth", nil)},
			"extra_config": map[string]interface{}{"telemetry/logging": logging["telemetry/logging"],
				"plugin/http-server": map[string]interface{}{"name": []string{"jwk-aggregator-auth"}}},
		}, ptDir, nil)
		defer pt.Stop()
		rows = append(rows, row{"no auth, a bare pass-through Go plugin (what being a plugin costs)", pt.URL("/noauth"), pt})
	}
	rows = append(rows, []row{
		{"no auth, unprotected path through jwk-aggregator-auth", g.URL("/noauth"), g},
		{"auth/validator (RS256, cache on) with jwk_url at the aggregator", g.URL("/validator"), g},
		{"jwk-aggregator-auth (RS256, verified-token cache on)", g.URL("/handler"), g},
		{"jwk-aggregator-auth (RS256, cache_size 0: every request verified)", u.URL("/handler"), u},
	}...)
	if *serve != "" {
		serveRows(*serve, token, rows)
		return
	}
	for _, r := range rows {
		warm(r.url, token, *conns)
	}
	runs := make([][]float64, len(rows))
	for round := 0; round < *rounds; round++ {
		for i, r := range rows {
			runs[i] = append(runs[i], load(r.url, token, *d, *conns))
		}
	}
	median := func(v []float64) float64 {
		s := append([]float64{}, v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	base := median(runs[0])
	fmt.Printf("| gateway endpoint | requests/s (median) | ratio to no auth | each round |\n| --- | --- | --- | --- |\n")
	for i, r := range rows {
		var each []string
		for _, v := range runs[i] {
			each = append(each, fmt.Sprintf("%.0f", v))
		}
		fmt.Printf("| %s | %.0f | %.2f | %s |\n", r.name, median(runs[i]), median(runs[i])/base, strings.Join(each, ", "))
	}
	fmt.Printf("\nwrk -t2 -c%d -d%s per row and round, %d rounds, the rows taking turns, every gateway running\n", *conns, d, *rounds)
	fmt.Printf("throughout; RS256 token with a 2048-bit key. wrk, KrakenD, the backend and the identity provider\n")
	fmt.Printf("share this machine's cores, so differences\n")
	// The report describes the gateway build (KrakenD prints its version lines on stderr), never
	// where it sits on this machine.
	ver, _ := exec.Command(*bin, "version").CombinedOutput()
	fmt.Printf("of about 10%% between rows are noise. Gateway: %s.\n", strings.TrimSpace(regexp.MustCompile(`\s+`).ReplaceAllString(string(ver), " ")))
}
