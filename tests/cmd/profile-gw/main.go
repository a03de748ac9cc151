// Command profile-gw starts the gateway-bench setup (identity provider, backend, a gateway without
// the plugin, one with jwk-aggregator-auth, cache on) and keeps it running until SIGINT/SIGTERM,
// writing the URLs, pids and token to -out for wrk and perf.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/gw"
)

func main() {
	bin := flag.String("krakend", "bin/krakend", "KrakenD binary")
	plugin := flag.String("plugin", "build/jwk-aggregator.so", "plugin")
	out := flag.String("out", "/tmp/profile-gw.env", "env file")
	cfgDir := flag.String("dir", "/tmp/profile-gw", "config dir")
	flag.Parse()
	p, err := idp.Start("bench-idp", 0, "RS256")
	if err != nil {
		gw.Die("%v", err)
	}
	token := p.Token(0, "alice", "api", 24*time.Hour)
	backendURL := gw.Backend()
	os.RemoveAll(*cfgDir)
	os.MkdirAll(*cfgDir, 0o755)
	pluginDir := gw.PluginDir(*cfgDir, *plugin)
	ep := func(path string, extra map[string]interface{}) map[string]interface{} {
		return gw.Endpoint(path, backendURL, extra)
	}
	logging := map[string]interface{}{"telemetry/logging": map[string]interface{}{"level": "ERROR", "stdout": true}}
	plain := gw.Start(*bin, map[string]interface{}{"endpoints": []interface{}{ep("/noauth", nil)}, "extra_config": logging}, *cfgDir, nil)
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
		"endpoints": []interface{}{ep("/noauth", nil), ep("/handler", nil)},
	}
	g := gw.Start(*bin, cfg, *cfgDir, nil)
	defer g.Stop()
	env := fmt.Sprintf("TOKEN=%s\nPLAIN_URL=%s\nPLAIN_PID=%d\nNOAUTH_URL=%s\nHANDLER_URL=%s\nPLUGIN_PID=%d\nSELF_PID=%d\n",
		token, plain.URL("/noauth"), plain.Pid(), g.URL("/noauth"), g.URL("/handler"), g.Pid(), os.Getpid())
	if err := os.WriteFile(*out, []byte(env), 0o644); err != nil {
		gw.Die("%v", err)
	}
	fmt.Print(env)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
