// Package integration runs the real KrakenD CE binary with the built plugin, real identity
// providers on loopback, and checks what an operator sees: status codes, served keys, log lines.
//
// KRAKEND_BIN names the gateway binary and PLUGIN_SO the plugin (the Makefile sets both).
package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/gw"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type gateway struct {
	t       *testing.T
	cmd     *exec.Cmd
	port    int
	aggPort int
	out     *syncBuf
	done    chan struct{}
	// tls: the gateway serves https (the service's tls block), reached with client.
	tls    bool
	client *http.Client
}

// endpoint is one KrakenD endpoint; validator nil means no auth/validator.
type endpoint struct {
	path         string
	method       string // default: GET
	validator    map[string]interface{}
	backend      string   // default: a backend answering {"backend":"ok"}
	inputHeaders []string // headers KrakenD forwards to the backend
	urlPattern   string   // default: /ok
	noOp         bool     // no-op encoding: the backend's answer goes to the client as it is
}

func validator(aggPort int, alg string, cache bool) map[string]interface{} {
	return map[string]interface{}{
		"alg":                  alg,
		"jwk_url":              fmt.Sprintf("http://localhost:%d", aggPort),
		"disable_jwk_security": true,
		"cache":                cache,
	}
}

var backendOnce sync.Once
var backendURL string

func backend() string {
	backendOnce.Do(func() {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"backend":"ok"}`)
		}))
		backendURL = srv.URL
	})
	return backendURL
}

// startGateway writes a KrakenD config with the given aggregator block (nil: none) and endpoints,
// starts bin/krakend, and waits until it serves.
func startGateway(t *testing.T, aggPort int, block map[string]interface{}, endpoints []endpoint) *gateway {
	t.Helper()
	var server map[string]interface{}
	if block != nil {
		server = map[string]interface{}{"name": []string{"jwk-aggregator"}, "jwk-aggregator": block}
	}
	return startGatewayWith(t, aggPort, server, endpoints)
}

// startGatewayWith takes the whole plugin/http-server block (nil: none).
func startGatewayWith(t *testing.T, aggPort int, server map[string]interface{}, endpoints []endpoint) *gateway {
	t.Helper()
	return startGatewayService(t, aggPort, server, endpoints, nil)
}

// startGatewayService also takes extra service-level extra_config entries (such as "router").
func startGatewayService(t *testing.T, aggPort int, server map[string]interface{}, endpoints []endpoint, service map[string]interface{}) *gateway {
	t.Helper()
	return startGatewayUntil(t, aggPort, server, endpoints, service, func(code int) bool { return code == 200 })
}

// startGatewayUntil starts the gateway and waits until its /__health answers a code ready accepts
// (a gateway whose handler fails closed answers 503 to everything, /__health included).
func startGatewayUntil(t *testing.T, aggPort int, server map[string]interface{}, endpoints []endpoint, service map[string]interface{}, ready func(int) bool) *gateway {
	t.Helper()
	return launch(t, aggPort, server, endpoints, service, nil, nil, ready)
}

// launch starts the gateway; tls, when not nil, is the configuration's tls block, and client
// reaches the gateway then.
func launch(t *testing.T, aggPort int, server map[string]interface{}, endpoints []endpoint, service, tls map[string]interface{}, client *http.Client, ready func(int) bool) *gateway {
	t.Helper()
	bin, so := os.Getenv("KRAKEND_BIN"), os.Getenv("PLUGIN_SO")
	if bin == "" || so == "" {
		t.Fatal("KRAKEND_BIN and PLUGIN_SO must name the gateway and the plugin (run through `make test`)")
	}
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The plugin folder holds exactly the one .so, as users deploy it.
	abs, _ := filepath.Abs(so)
	if err := os.Symlink(abs, filepath.Join(pluginDir, "jwk-aggregator.so")); err != nil {
		t.Fatal(err)
	}
	eps := []interface{}{}
	for _, e := range endpoints {
		host := e.backend
		if host == "" {
			host = backend()
		}
		pattern := e.urlPattern
		if pattern == "" {
			pattern = "/ok"
		}
		be := map[string]interface{}{"host": []string{host}, "url_pattern": pattern}
		ep := map[string]interface{}{"endpoint": e.path, "backend": []interface{}{be}}
		if e.method != "" {
			ep["method"] = e.method
		}
		if e.noOp {
			ep["output_encoding"], be["encoding"] = "no-op", "no-op"
		}
		if e.inputHeaders != nil {
			ep["input_headers"] = e.inputHeaders
		}
		if e.validator != nil {
			ep["extra_config"] = map[string]interface{}{"auth/validator": e.validator}
		}
		eps = append(eps, ep)
	}
	port := freePort(t)
	cfg := map[string]interface{}{
		"version":   3,
		"port":      port,
		"plugin":    map[string]interface{}{"pattern": ".so", "folder": pluginDir + "/"},
		"endpoints": eps,
		"extra_config": map[string]interface{}{
			"telemetry/logging": map[string]interface{}{"level": "DEBUG", "stdout": true},
		},
	}
	if server != nil {
		cfg["extra_config"].(map[string]interface{})["plugin/http-server"] = server
	}
	if tls != nil {
		cfg["tls"] = tls
	}
	if client == nil {
		client = http.DefaultClient
	}
	for k, v := range service {
		cfg["extra_config"].(map[string]interface{})[k] = v
	}
	raw, _ := json.MarshalIndent(cfg, "", "  ")
	cfgPath := filepath.Join(dir, "krakend.json")
	if err := os.WriteFile(cfgPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, port: port, aggPort: aggPort, out: &syncBuf{}, done: make(chan struct{}), tls: tls != nil, client: client}
	g.cmd = exec.Command(bin, "run", "-c", cfgPath)
	g.cmd.Env = gw.Env()
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(g.stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(g.url("/__health"))
		if err == nil {
			resp.Body.Close()
			if ready(resp.StatusCode) {
				return g
			}
		}
		select {
		case <-g.done:
			t.Fatalf("krakend exited at startup:\n%s", g.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("krakend did not start in time:\n%s", g.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (g *gateway) stop() {
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(15 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
	if g.t.Failed() {
		g.t.Logf("krakend output:\n%s", g.out.String())
	}
}

// call requests a gateway path with an optional bearer token and returns the status code.
func (g *gateway) call(path, token string) int {
	g.t.Helper()
	code, _, _ := g.request(path, token, nil)
	return code
}

// request is call with extra request headers, returning the response headers and body too.
func (g *gateway) request(path, token string, headers map[string]string) (int, http.Header, string) {
	g.t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", g.port, path), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// aggregated fetches the merged set from the aggregator port.
func (g *gateway) aggregated() (int, string, map[string]interface{}) {
	g.t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", g.aggPort))
	if err != nil {
		g.t.Fatalf("aggregator: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]interface{}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// logLines returns the gateway's log lines that contain every one of the given words.
func (g *gateway) logLines(words ...string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(g.out.String()))
	for sc.Scan() {
		line := sc.Text()
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

func waitLog(g *gateway, words ...string) []string {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if l := g.logLines(words...); len(l) > 0 {
			return l
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// waitOriginState polls the merged set and /__health until the origin reaches state.
func (g *gateway) waitOriginState(url, state string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		g.aggregated()
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/__health", g.aggPort))
		if err == nil {
			var h struct {
				Origins []struct{ URL, State string }
			}
			_ = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			for _, o := range h.Origins {
				if o.URL == url && o.State == state {
					return true
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

func kids(set map[string]interface{}) []string {
	var out []string
	keys, _ := set["keys"].([]interface{})
	for _, k := range keys {
		m, _ := k.(map[string]interface{})
		kid, _ := m["kid"].(string)
		out = append(out, kid)
	}
	return out
}

var provider = idp.StartForTest

func block(port int, origins ...string) map[string]interface{} {
	return map[string]interface{}{"port": port, "origins": origins}
}

func TestTwoProvidersThroughTheGateway(t *testing.T) {
	a, b := provider(t, "idp-a", "RS256"), provider(t, "idp-b", "RS256")
	aggPort := freePort(t)
	g := startGateway(t, aggPort, block(aggPort, a.JWKSURL(), b.JWKSURL()), []endpoint{
		{path: "/protected", validator: validator(aggPort, "RS256", true)},
		{path: "/public"},
	})
	hour := time.Hour
	if c := g.call("/protected", a.Token(0, "alice", "", hour)); c != 200 {
		t.Errorf("token from provider A: %d, want 200", c)
	}
	if c := g.call("/protected", b.Token(0, "bob", "", hour)); c != 200 {
		t.Errorf("token from provider B: %d, want 200", c)
	}
	// A key nobody publishes, under a kid that exists.
	forged := idp.NewKey(a.Key(0).Kid, "RS256").Sign(map[string]interface{}{
		"iss": a.Issuer, "sub": "mallory", "exp": time.Now().Add(hour).Unix(),
	}, nil)
	if c := g.call("/protected", forged); c != 401 {
		t.Errorf("token signed by an unpublished key: %d, want 401", c)
	}
	if c := g.call("/protected", ""); c != 401 {
		t.Errorf("no token: %d, want 401", c)
	}
	if c := g.call("/protected", a.Token(0, "alice", "", -time.Minute)); c != 401 {
		t.Errorf("expired token: %d, want 401", c)
	}
	if c := g.call("/public", ""); c != 200 {
		t.Errorf("unprotected endpoint: %d, want 200", c)
	}
	status, ct, set := g.aggregated()
	if status != 200 || !strings.HasPrefix(ct, "application/json") {
		t.Errorf("aggregator answered %d %q", status, ct)
	}
	if got, want := strings.Join(kids(set), ","), a.Key(0).Kid+","+b.Key(0).Kid; got != want {
		t.Errorf("merged kids %s, want %s", got, want)
	}
}

func TestOnlyConfiguredProvidersAreTrusted(t *testing.T) {
	a, b := provider(t, "idp-a", "RS256"), provider(t, "idp-b", "RS256")
	aggPort := freePort(t)
	g := startGateway(t, aggPort, block(aggPort, a.JWKSURL()), []endpoint{
		{path: "/protected", validator: validator(aggPort, "RS256", true)},
	})
	if c := g.call("/protected", a.Token(0, "alice", "", time.Hour)); c != 200 {
		t.Errorf("token from configured provider A: %d, want 200", c)
	}
	if c := g.call("/protected", b.Token(0, "bob", "", time.Hour)); c != 401 {
		t.Errorf("token from unconfigured provider B: %d, want 401", c)
	}
}

// listeners returns the local addresses listening on port, from /proc/net/tcp{,6}.
func listeners(t *testing.T, port int) []string {
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			addr := fields[1]
			i := strings.LastIndex(addr, ":")
			var p int
			fmt.Sscanf(addr[i+1:], "%X", &p)
			if p == port {
				out = append(out, addr[:i])
			}
		}
	}
	return out
}

func TestAggregatorListensOnLoopbackOnlyAndFreesItsPort(t *testing.T) {
	a := provider(t, "idp-a", "RS256")
	aggPort := freePort(t)
	g := startGateway(t, aggPort, block(aggPort, a.JWKSURL()), []endpoint{{path: "/public"}})
	addrs := listeners(t, aggPort)
	if len(addrs) == 0 {
		t.Fatalf("nothing listens on %d", aggPort)
	}
	for _, addr := range addrs {
		// 127.0.0.1 and ::1 as /proc/net prints them.
		if addr != "0100007F" && addr != "00000000000000000000000001000000" {
			t.Errorf("aggregator listens on non-loopback address %s", addr)
		}
	}
	// And from a non-loopback address of this machine, if it has one, nothing answers.
	ifaddrs, _ := net.InterfaceAddrs()
	for _, ia := range ifaddrs {
		ip, _, _ := net.ParseCIDR(ia.String())
		if ip == nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			continue
		}
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), fmt.Sprint(aggPort)), time.Second)
		if err == nil {
			conn.Close()
			t.Errorf("aggregator reachable on %s", ip)
		}
	}
	g.stop()
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", aggPort))
	if err != nil {
		t.Fatalf("port %d still busy after SIGTERM: %v", aggPort, err)
	}
	ln.Close()
}

func TestBusyPortIsAnErrorAndTheGatewayKeepsServing(t *testing.T) {
	a := provider(t, "idp-a", "RS256")
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	aggPort := busy.Addr().(*net.TCPAddr).Port
	g := startGateway(t, aggPort, block(aggPort, a.JWKSURL()), []endpoint{{path: "/public"}})
	if l := waitLog(g, "ERROR", "[PLUGIN: jwk-aggregator]", fmt.Sprint(aggPort)); l == nil {
		t.Errorf("no ERROR line naming port %d", aggPort)
	}
	if c := g.call("/public", ""); c != 200 {
		t.Errorf("gateway stopped serving: %d", c)
	}
}

func TestMissingOriginsIsAnErrorAndTheGatewayKeepsServing(t *testing.T) {
	aggPort := freePort(t)
	g := startGateway(t, aggPort, map[string]interface{}{"port": aggPort}, []endpoint{{path: "/public"}})
	if l := waitLog(g, "ERROR", "[PLUGIN: jwk-aggregator]", `"origins"`); l == nil {
		t.Errorf("no ERROR line naming \"origins\"")
	}
	if c := g.call("/public", ""); c != 200 {
		t.Errorf("gateway stopped serving: %d", c)
	}
}

func TestBadOriginsDoNotBreakTheOthers(t *testing.T) {
	a, b := provider(t, "idp-a", "RS256"), provider(t, "idp-b", "RS256")
	// B also publishes keys go-jose cannot parse, and A leaks private members.
	b.PublishExtra(
		map[string]interface{}{"kty": "XYZ", "kid": "weird"},
		map[string]interface{}{"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AAAA", "y": "AAAA"},
		// A P-256 point off its curve: go-jose refuses the whole set over it.
		map[string]interface{}{"kty": "EC", "kid": "offcurve", "crv": "P-256", "x": strings.Repeat("A", 43), "y": strings.Repeat("A", 43)},
		// A certificate chain that states another key: the same.
		idp.NewKey("mismatched-x5c", "RS256").CertJWK(idp.NewKey("someone-else", "RS256")),
	)
	certified := idp.NewKey("certified", "RS256")
	b.PublishExtra(certified.CertJWK(nil))
	leaky := idp.NewKey("idp-a-leaky", "RS256")
	a.SetKeys(a.Key(0))
	a.PublishExtra(leaky.PrivateJWK())
	aggPort := freePort(t)
	g := startGateway(t, aggPort, block(aggPort, a.JWKSURL(), b.JWKSURL()), []endpoint{
		// No validator cache: every validation reads the aggregator, so its state is what counts.
		{path: "/protected", validator: validator(aggPort, "RS256", false)},
	})
	if c := g.call("/protected", b.Token(0, "bob", "", time.Hour)); c != 200 {
		t.Errorf("token from B's good key while B also publishes unparseable keys: %d, want 200", c)
	}
	if c := g.call("/protected", certified.Sign(map[string]interface{}{"sub": "x", "exp": time.Now().Add(time.Hour).Unix()}, nil)); c != 200 {
		t.Errorf("token from a key published with its certificate: %d, want 200", c)
	}
	if c := g.call("/protected", leaky.Sign(map[string]interface{}{"sub": "x", "exp": time.Now().Add(time.Hour).Unix()}, nil)); c != 200 {
		t.Errorf("token from A's leaked-but-public key: %d, want 200", c)
	}
	_, _, set := g.aggregated()
	raw, _ := json.Marshal(set)
	for _, m := range []string{`"d"`, `"p"`, `"q"`, "weird", "secp256k1", "offcurve", "mismatched-x5c", `"x5c"`} {
		if strings.Contains(string(raw), m) {
			t.Errorf("merged set serves %s: %s", m, raw)
		}
	}
	if l := waitLog(g, "CRITICAL", "private key members"); l == nil {
		t.Errorf("leaked private members were not logged")
	}

	// A goes down: its last good keys keep its tokens valid; B is unaffected.
	a.SetStatus(500)
	if !g.waitOriginState(a.JWKSURL(), "stale") {
		t.Fatalf("origin A never became stale after it started failing")
	}
	if c := g.call("/protected", a.Token(0, "alice", "", time.Hour)); c != 200 {
		t.Errorf("token from A while A is down (stale keys): %d, want 200", c)
	}
	if c := g.call("/protected", b.Token(0, "bob", "", time.Hour)); c != 200 {
		t.Errorf("token from B while A is down: %d, want 200", c)
	}
	if l := waitLog(g, "ERROR", a.JWKSURL(), "HTTP 500"); l == nil {
		t.Errorf("A's failure was not logged at ERROR")
	}
}

func TestHangingOriginCostsItsTimeoutOnce(t *testing.T) {
	b := provider(t, "idp-b", "RS256")
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}))
	defer hang.Close()
	aggPort := freePort(t)
	blk := block(aggPort, hang.URL+"/jwks.json", b.JWKSURL())
	blk["timeout"] = "1s"
	g := startGateway(t, aggPort, blk, []endpoint{
		{path: "/protected", validator: validator(aggPort, "RS256", false)},
	})
	if c := g.call("/protected", b.Token(0, "bob", "", time.Hour)); c != 200 {
		t.Errorf("token from B while the other origin hangs: %d, want 200", c)
	}
	for i := 0; i < 3; i++ {
		start := time.Now()
		status, _, set := g.aggregated()
		took := time.Since(start)
		if status != 200 || len(kids(set)) != 1 {
			t.Errorf("aggregator answered %d with %v", status, kids(set))
		}
		// Backing off, the hanging origin is not waited for again.
		if took >= time.Second {
			t.Errorf("aggregator response %d took %v: it waited for the hanging origin again", i, took)
		}
	}
}
