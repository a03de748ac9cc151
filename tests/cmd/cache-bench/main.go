// Command cache-bench measures the memory the verified-token cache of jwk-aggregator-auth makes
// real KrakenD hold, at the default settings, for the worst token shape (a validly signed token
// just under max_token_bytes whose payload is one long array: every element a JSON value of its
// own once parsed) and for ordinary 1 KB tokens, each sent once.
//
//	cache-bench -krakend bin/krakend -plugin build/jwk-aggregator.so
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/gw"
)

func main() {
	bin := flag.String("krakend", "bin/krakend", "KrakenD binary")
	plugin := flag.String("plugin", "build/jwk-aggregator.so", "plugin")
	flag.Parse()
	p, err := idp.Start("cache-bench", 0, "EdDSA")
	if err != nil {
		gw.Die("%v", err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	zeros := make([]int, 5700)
	array := func(i int) string {
		return p.Key(0).Sign(map[string]interface{}{"iss": p.Issuer, "exp": exp, "n": i, "x": zeros}, nil)
	}
	ordinary := func(i int) string {
		return p.Key(0).Sign(map[string]interface{}{"iss": p.Issuer, "exp": exp, "sub": fmt.Sprintf("user-%d", i),
			"scope": "openid profile email orders:read orders:write", "aud": []string{"orders-api", "billing-api"},
			"roles": []string{"reader", "writer"}, "pad": strings.Repeat("x", 600)}, nil)
	}
	fmt.Printf("| tokens sent once each, default settings | token size | gateway anonymous memory before / after | growth |\n| --- | --- | --- | --- |\n")
	for _, c := range []struct {
		name  string
		n     int
		token func(int) string
	}{{"long-array tokens", 5000, array}, {"ordinary tokens", 10000, ordinary}} {
		dir, _ := os.MkdirTemp("", "cache-bench")
		cfg := map[string]interface{}{
			"plugin": map[string]interface{}{"pattern": ".so", "folder": gw.PluginDir(dir, *plugin)},
			"extra_config": map[string]interface{}{
				"telemetry/logging": map[string]interface{}{"level": "ERROR", "stdout": true},
				"plugin/http-server": map[string]interface{}{
					"name":                []string{"jwk-aggregator", "jwk-aggregator-auth"},
					"jwk-aggregator":      map[string]interface{}{"port": gw.FreePort(), "origins": []string{p.JWKSURL()}},
					"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/p"}}}},
				},
			},
			"endpoints": []interface{}{gw.Endpoint("/p", gw.Backend(), nil)},
		}
		g := gw.Start(*bin, cfg, dir, nil)
		tokens := make([]string, c.n)
		for i := range tokens {
			tokens[i] = c.token(i)
		}
		send(g, tokens[:100]) // warm up: keys fetched, connections open
		time.Sleep(time.Second)
		before := g.Status("RssAnon")
		send(g, tokens[100:])
		time.Sleep(time.Second)
		after := g.Status("RssAnon")
		g.Stop()
		os.RemoveAll(dir)
		fmt.Printf("| %d %s | %.1f KB | %.0f MB / %.0f MB | %.0f MB |\n", c.n, c.name, float64(len(tokens[0]))/1024,
			float64(before)/1024, float64(after)/1024, float64(after-before)/1024)
	}
	ver, _ := exec.Command(*bin, "version").CombinedOutput()
	fmt.Printf("\n`cache_size` 10,000 and `cache_max_bytes` 32 MiB (the defaults). Gateway: %s.\n",
		strings.TrimSpace(regexp.MustCompile(`\s+`).ReplaceAllString(string(ver), " ")))
}

// send sends each token once, from 8 clients, and dies unless every one is answered 200.
func send(g *gw.Gateway, tokens []string) {
	failed := gw.Each(len(tokens), 8, func(i int) bool {
		req, _ := http.NewRequest("GET", g.URL("/p"), nil)
		req.Header.Set("Authorization", "Bearer "+tokens[i])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if failed > 0 {
		gw.Die("%d of %d tokens not answered 200", failed, len(tokens))
	}
}
