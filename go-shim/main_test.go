package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// capture is a KrakenD-shaped logger that records lines by level.
type capture struct {
	mu    sync.Mutex
	lines []string
}

func (c *capture) add(level string, v ...interface{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, level+" "+strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
func (c *capture) Debug(v ...interface{})    { c.add("DEBUG", v...) }
func (c *capture) Info(v ...interface{})     { c.add("INFO", v...) }
func (c *capture) Warning(v ...interface{})  { c.add("WARNING", v...) }
func (c *capture) Error(v ...interface{})    { c.add("ERROR", v...) }
func (c *capture) Critical(v ...interface{}) { c.add("CRITICAL", v...) }
func (c *capture) Fatal(v ...interface{})    { c.add("FATAL", v...) }

func (c *capture) find(words ...string) string {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, l := range c.lines {
			ok := true
			for _, w := range words {
				ok = ok && strings.Contains(l, w)
			}
			if ok {
				c.mu.Unlock()
				return l
			}
		}
		c.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return ""
}

func useLogger(t *testing.T) *capture {
	c := &capture{}
	HandlerRegisterer.RegisterLogger(c)
	t.Cleanup(func() { HandlerRegisterer.RegisterLogger(noopLogger{}) })
	return c
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

const jwks = `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`

func origin(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, jwks)
	}))
	t.Cleanup(srv.Close)
	return srv
}

type factoryFunc = func(context.Context, map[string]interface{}, http.Handler) (http.Handler, error)

// factories gets the handler factories exactly as KrakenD's loader does, through RegisterHandlers.
func factories(t testing.TB) map[string]factoryFunc {
	got := map[string]factoryFunc{}
	var names []string
	HandlerRegisterer.RegisterHandlers(func(name string, h func(context.Context, map[string]interface{}, http.Handler) (http.Handler, error)) {
		names = append(names, name)
		got[name] = h
	})
	if strings.Join(names, ",") != "jwk-aggregator,jwk-aggregator-auth" {
		t.Fatalf("registered %v, want [jwk-aggregator jwk-aggregator-auth]", names)
	}
	return got
}

func factory(t testing.TB) factoryFunc { return factories(t)["jwk-aggregator"] }

func get(t testing.TB, url string) (int, string, []byte) {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func TestServesTheMergedSetAndPassesGatewayTrafficThrough(t *testing.T) {
	logs := useLogger(t)
	o := origin(t)
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "gateway") })
	// Port as each config format delivers it: JSON float64, YAML int, TOML int64.
	for i, p := range []interface{}{float64(port), port, int64(port)} {
		if i > 0 {
			cancel()
			waitFree(t, port)
			ctx, cancel = context.WithCancel(context.Background())
		}
		h, err := factory(t)(ctx, map[string]interface{}{
			"name":           []interface{}{"jwk-aggregator"},
			"jwk-aggregator": map[string]interface{}{"port": p, "origins": []interface{}{o.URL + "/jwks.json"}},
		}, next)
		if err != nil {
			t.Fatalf("port as %T: %v", p, err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/anything", nil))
		if rec.Body.String() != "gateway" {
			t.Fatalf("gateway handler not passed through: %q", rec.Body.String())
		}
		status, ct, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
		var set struct{ Keys []map[string]interface{} }
		if status != 200 || ct != "application/json" || json.Unmarshal(body, &set) != nil || len(set.Keys) != 1 || set.Keys[0]["kid"] != "ed1" {
			t.Fatalf("GET / = %d %q %s", status, ct, body)
		}
	}
	if status, _, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/__health", port)); status != 200 {
		t.Errorf("/__health = %d", status)
	}
	if _, _, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port)); !strings.Contains(string(body), "jwk_aggregator_origin_fetches_ok_total") {
		t.Errorf("/metrics lacks counters: %s", body)
	}
	if status, _, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/nope", port)); status != 404 {
		t.Errorf("unknown path = %d, want 404", status)
	}
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/", port), "text/plain", nil)
	if err != nil || resp.StatusCode != 405 {
		t.Errorf("POST / = %v %v, want 405", resp, err)
	}
	if l := logs.find("INFO", "[PLUGIN: jwk-aggregator]", "aggregating 1 origin(s)"); l == "" {
		t.Errorf("no INFO log from the Rust core through the logger")
	}
	cancel()
	waitFree(t, port)
}

func waitFree(t testing.TB, port int) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d still busy after the context was cancelled", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConfigurationErrorsAreReturnedAndLoggedAtError(t *testing.T) {
	o := origin(t)
	cases := []struct {
		block interface{}
		words []string
	}{
		{nil, []string{`missing "jwk-aggregator"`}},
		{map[string]interface{}{"port": 9}, []string{`missing "origins"`}},
		{map[string]interface{}{"port": "9876", "origins": []interface{}{o.URL}}, []string{`"port"`, `"9876"`}},
		{map[string]interface{}{"port": 1.5, "origins": []interface{}{o.URL}}, []string{`"port"`, `1.5`}},
		{map[string]interface{}{"port": 9, "origin": []interface{}{o.URL}}, []string{`unknown setting "origin"`}},
		{map[string]interface{}{"port": 9, "origins": []interface{}{"http://idp.example/keys"}}, []string{`origins[0]`, "disable_jwk_security"}},
		{map[interface{}]interface{}{"port": 9, "origins": []interface{}{42}}, []string{`origins[0]`, "42"}},
	}
	for _, c := range cases {
		logs := useLogger(t)
		extra := map[string]interface{}{}
		if c.block != nil {
			extra["jwk-aggregator"] = c.block
		}
		h, err := factory(t)(context.Background(), extra, http.NotFoundHandler())
		if err == nil || h != nil {
			t.Errorf("%v: no error", c.block)
			continue
		}
		for _, w := range c.words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", c.block, err, w)
			}
		}
		if logs.find(append([]string{"ERROR", "[PLUGIN: jwk-aggregator]"}, c.words...)...) == "" {
			t.Errorf("%v: not logged at ERROR", c.block)
		}
	}
}

func TestBusyPortIsAnErrorNamingThePort(t *testing.T) {
	logs := useLogger(t)
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	_, err = factory(t)(context.Background(), map[string]interface{}{
		"jwk-aggregator": map[string]interface{}{"port": port, "origins": []interface{}{origin(t).URL}},
	}, http.NotFoundHandler())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(port)) {
		t.Fatalf("busy port: %v", err)
	}
	if logs.find("ERROR", fmt.Sprint(port)) == "" {
		t.Errorf("busy port not logged at ERROR")
	}
}

func TestConcurrentRequestsWhileShuttingDown(t *testing.T) {
	useLogger(t)
	o := origin(t)
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := factory(t)(ctx, map[string]interface{}{
		"jwk-aggregator": map[string]interface{}{"port": port, "origins": []interface{}{o.URL}},
	}, http.NotFoundHandler()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
				if err != nil {
					return // the server went away: expected during shutdown
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 && resp.StatusCode != 503 {
					t.Errorf("status %d during shutdown", resp.StatusCode)
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
	waitFree(t, port)
}

// unhashable is a context whose dynamic type cannot be a map key.
type unhashable struct {
	context.Context
	tags []string
}

func TestAnyContextIsAccepted(t *testing.T) {
	useLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	port := freePort(t)
	_, err := factory(t)(unhashable{ctx, nil}, map[string]interface{}{
		"jwk-aggregator": map[string]interface{}{"port": port, "origins": []interface{}{origin(t).URL}},
	}, http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitFree(t, port)
}
