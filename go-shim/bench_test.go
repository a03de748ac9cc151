package main

// Benchmarks for `make bench`, which turns their output into BENCHMARKS.md. They go through the
// real plugin factory, the loopback HTTP server and the Rust core, against real loopback origins.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowOrigin answers with its own key after delay and counts its fetches.
func slowOrigin(tb testing.TB, kid string, delay time.Duration, hits *atomic.Int64) *httptest.Server {
	body := fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":%q,"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`, kid)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// startFor starts an aggregator on a fresh port and returns its URL and a stop function.
func startFor(tb testing.TB, settings map[string]interface{}) (string, func()) {
	port := freePort(tb)
	settings["port"] = port
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := factory(tb)(ctx, map[string]interface{}{"jwk-aggregator": settings}, http.NotFoundHandler()); err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/", port), func() { cancel(); waitFree(tb, port) }
}

func mustGet(tb testing.TB, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
}

// BenchmarkColdMerge: time to the first merged set from N origins that each answer after 100 ms.
func BenchmarkColdMerge(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("origins=%d", n), func(b *testing.B) {
			var hits atomic.Int64
			var urls []interface{}
			for i := 0; i < n; i++ {
				urls = append(urls, slowOrigin(b, fmt.Sprintf("k%d", i), 100*time.Millisecond, &hits).URL+"/jwks.json")
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				url, stop := startFor(b, map[string]interface{}{"origins": urls})
				b.StartTimer()
				mustGet(b, http.DefaultClient, url)
				b.StopTimer()
				stop()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkConcurrentColdRequests: 1,000 simultaneous requests to a fresh aggregator (cache off)
// whose two origins answer after 100 ms; reports origin fetches per origin.
func BenchmarkConcurrentColdRequests(b *testing.B) {
	const clients = 1000
	var total int64
	for i := 0; i < b.N; i++ {
		var ha, hb atomic.Int64
		a := slowOrigin(b, "a", 100*time.Millisecond, &ha)
		o := slowOrigin(b, "b", 100*time.Millisecond, &hb)
		url, stop := startFor(b, map[string]interface{}{"origins": []interface{}{a.URL, o.URL}})
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: 0}}
		gate := make(chan struct{})
		var wg sync.WaitGroup
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				mustGet(b, client, url)
			}()
		}
		close(gate)
		wg.Wait()
		total += ha.Load() + hb.Load()
		stop()
	}
	b.ReportMetric(float64(total)/float64(b.N)/2, "fetches/origin")
	b.ReportMetric(clients, "requests")
}

// BenchmarkServe: requests per second for the merged set with cache on, side by side with a
// plain Go handler writing the same bytes, both over loopback HTTP with keep-alive clients.
func BenchmarkServe(b *testing.B) {
	var hits atomic.Int64
	var urls []interface{}
	for i := 0; i < 3; i++ {
		urls = append(urls, slowOrigin(b, fmt.Sprintf("k%d", i), 0, &hits).URL+"/jwks.json")
	}
	aggURL, stop := startFor(b, map[string]interface{}{"origins": urls, "cache": true})
	defer stop()
	resp, err := http.Get(aggURL)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	static := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer static.Close()
	for _, target := range []struct{ name, url string }{{"aggregator", aggURL}, {"go-static", static.URL + "/"}} {
		b.Run(target.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					mustGet(b, client, target.url)
				}
			})
		})
	}
}

// BenchmarkAuthHandler: what the jwk-aggregator-auth handler costs a request in process, side by
// side: the next handler alone, an unprotected path, and a protected path whose token is a
// verified-token cache hit (with and without a claim header to set). ns/op and allocs/op are the
// handler's whole work: reading the credentials, the cgo call, the core's decision, applying it.
func BenchmarkAuthHandler(b *testing.B) {
	key := newEdKey("k1")
	h, _ := authSetup(b, key, []interface{}{
		map[string]interface{}{"paths": []interface{}{"/orders/{id}"}},
		map[string]interface{}{"paths": []interface{}{"/me"}, "propagate_claims": []interface{}{[]interface{}{"sub", "X-User"}}},
	})
	token := key.sign(map[string]interface{}{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "iss": "https://idp.example", "aud": "api"})
	// The same work as authSetup's next handler, which the handler under test calls.
	var seen http.Header
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		io.WriteString(w, "backend")
	})
	_ = seen
	for _, c := range []struct {
		name, path string
		h          http.Handler
	}{
		{"next-handler-alone", "/orders/1", next},
		{"unprotected-path", "/public", h},
		{"cache-hit", "/orders/1", h},
		{"cache-hit-claim-header", "/me", h},
	} {
		b.Run(c.name, func(b *testing.B) {
			if rec := do(c.h, c.path, http.Header{"Authorization": {"Bearer " + token}}); rec.Code != 200 {
				b.Fatalf("%s: %d", c.path, rec.Code)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest("GET", c.path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Cookie", "session=abc; theme=dark")
				c.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
