package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

var b64 = base64.RawURLEncoding

type edKey struct {
	kid  string
	priv ed25519.PrivateKey
}

func newEdKey(kid string) edKey {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return edKey{kid, priv}
}

func (k edKey) jwk() map[string]interface{} {
	return map[string]interface{}{"kty": "OKP", "crv": "Ed25519", "kid": k.kid, "x": b64.EncodeToString(k.priv.Public().(ed25519.PublicKey))}
}

func (k edKey) sign(claims map[string]interface{}) string {
	h, _ := json.Marshal(map[string]interface{}{"alg": "EdDSA", "kid": k.kid})
	c, _ := json.Marshal(claims)
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	return input + "." + b64.EncodeToString(ed25519.Sign(k.priv, []byte(input)))
}

// authSetup starts the aggregator and the auth handler the way KrakenD does: same root context,
// same plugin/http-server block, auth factory first.
func authSetup(t testing.TB, key edKey, rules []interface{}) (http.Handler, *http.Header) {
	body, _ := json.Marshal(map[string]interface{}{"keys": []interface{}{key.jwk()}})
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(o.Close)
	ctx, cancel := context.WithCancel(context.Background())
	port := freePort(t)
	t.Cleanup(func() { cancel(); waitFree(t, port) })
	extra := map[string]interface{}{
		"name":                []interface{}{"jwk-aggregator-auth", "jwk-aggregator"},
		"jwk-aggregator":      map[string]interface{}{"port": float64(port), "origins": []interface{}{o.URL}},
		"jwk-aggregator-auth": map[string]interface{}{"rules": rules},
	}
	seen := &http.Header{}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*seen = r.Header.Clone()
		io.WriteString(w, "backend")
	})
	f := factories(t)
	h, err := f["jwk-aggregator-auth"](ctx, extra, next)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f["jwk-aggregator"](ctx, extra, h); err != nil {
		t.Fatalf("second factory on the same gateway: %v", err)
	}
	// Wait for the start-up fetch.
	for i := 0; i < 100; i++ {
		if st, _, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/__health", port)); st == 200 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h, seen
}

func do(h http.Handler, path string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	req.Header = header
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAuthHandlerDecidesAndPropagatesClaims(t *testing.T) {
	useLogger(t)
	key := newEdKey("k1")
	h, seen := authSetup(t, key, []interface{}{map[string]interface{}{
		"paths":            []interface{}{"/orders/{id}"},
		"scopes":           []interface{}{"orders"},
		"propagate_claims": []interface{}{[]interface{}{"sub", "X-User"}},
	}})
	exp := time.Now().Add(time.Hour).Unix()
	good := key.sign(map[string]interface{}{"sub": "alice", "exp": exp, "scope": "orders"})

	rec := do(h, "/orders/7", http.Header{"Authorization": {"Bearer " + good}, "X-User": {"mallory"}})
	if rec.Code != 200 || seen.Get("X-User") != "alice" || len(seen.Values("X-User")) != 1 {
		t.Errorf("good token: %d, backend saw X-User %v", rec.Code, seen.Values("X-User"))
	}
	if rec := do(h, "/orders/7", http.Header{"Cookie": {"a=b; access_token=" + good}}); rec.Code != 200 {
		t.Errorf("token in cookie: %d", rec.Code)
	}
	rec = do(h, "/orders/7", http.Header{})
	if rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	rec = do(h, "/orders/7", http.Header{"Authorization": {"Bearer " + good + "x"}})
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != `Bearer error="invalid_token"` || rec.Body.Len() != 0 {
		t.Errorf("bad signature: %d %q %q", rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body.String())
	}
	noScope := key.sign(map[string]interface{}{"sub": "alice", "exp": exp, "scope": "other"})
	if rec := do(h, "/orders/7", http.Header{"Authorization": {"Bearer " + noScope}}); rec.Code != 403 {
		t.Errorf("missing scope: %d", rec.Code)
	}
	// CORS preflights pass without a token.
	pre := httptest.NewRequest("OPTIONS", "/orders/7", nil)
	pre.Header.Set("Origin", "https://app.example")
	prec := httptest.NewRecorder()
	h.ServeHTTP(prec, pre)
	if prec.Code != 200 || prec.Body.String() != "backend" {
		t.Errorf("OPTIONS preflight: %d %q", prec.Code, prec.Body.String())
	}
	// Unprotected paths pass untouched, client headers included.
	rec = do(h, "/health", http.Header{"X-User": {"whoever"}})
	if rec.Code != 200 || seen.Get("X-User") != "whoever" {
		t.Errorf("unprotected path: %d %v", rec.Code, seen.Values("X-User"))
	}
}

func TestBadAuthConfigurationFailsClosed(t *testing.T) {
	logs := useLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	port := freePort(t)
	extra := map[string]interface{}{
		"jwk-aggregator":      map[string]interface{}{"port": port, "origins": []interface{}{"http://127.0.0.1:1/jwks"}},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"path": "/x"}}},
	}
	h, err := factories(t)["jwk-aggregator-auth"](ctx, extra, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	if err != nil || h == nil {
		t.Fatalf("a failed auth handler must still be installed (fail closed): %v", err)
	}
	if rec := do(h, "/anything", http.Header{}); rec.Code != 503 {
		t.Errorf("bad configuration served %d, want 503", rec.Code)
	}
	if logs.find("CRITICAL", "jwk-aggregator-auth", `unknown setting "path"`) == "" {
		t.Errorf("not logged at CRITICAL")
	}
	cancel()
	waitFree(t, port)
}

// A token of a tenant being discovered waits for the discovery in Go (the core answers
// "pending" and the wake socket says when to ask again): every waiting request is answered
// once the one discovery ends, and one that waited discovery_wait in vain is refused.
// realmsProvider is a multi-tenant provider on loopback: a realm's discovery document
// (/realms/<r>/...) answers after delay(r), its keys (/realms/<r>/certs) at once. It returns its
// base URL and how many discovery documents a realm served.
func realmsProvider(tb testing.TB, key edKey, delay func(realm string) time.Duration) (string, func(realm string) int) {
	keys, _ := json.Marshal(map[string]interface{}{"keys": []interface{}{key.jwk()}})
	var base string
	var mu sync.Mutex
	docs := map[string]int{}
	p := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		realm, file, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/realms/"), "/")
		w.Header().Set("Content-Type", "application/json")
		if file == "certs" {
			w.Write(keys)
			return
		}
		mu.Lock()
		docs[realm]++
		mu.Unlock()
		time.Sleep(delay(realm))
		json.NewEncoder(w).Encode(map[string]string{"issuer": base + "/realms/" + realm, "jwks_uri": base + "/realms/" + realm + "/certs"})
	}))
	// Set before it serves: its handler runs on requests the core's threads make, which the race
	// detector cannot link to this goroutine.
	base = "http://" + p.Listener.Addr().String()
	p.Start()
	tb.Cleanup(p.Close)
	served := func(realm string) int {
		mu.Lock()
		defer mu.Unlock()
		return docs[realm]
	}
	return base, served
}

// slowRealms runs a multi-tenant provider whose realms' discovery documents answer after
// delay(realm), and the auth handler trusting its realms by pattern with discovery_wait. It
// returns the handler, a bearer header for a token of a realm, and how many discovery documents
// a realm served.
func slowRealms(t *testing.T, delay func(realm string) time.Duration, discoveryWait string) (http.Handler, func(realm string) http.Header, func(realm string) int) {
	key := newEdKey("k")
	base, served := realmsProvider(t, key, delay)
	ctx, cancel := context.WithCancel(context.Background())
	port := freePort(t)
	t.Cleanup(func() { cancel(); waitFree(t, port) })
	extra := map[string]interface{}{
		"name":                []interface{}{"jwk-aggregator-auth", "jwk-aggregator"},
		"jwk-aggregator":      map[string]interface{}{"port": float64(port), "issuer_patterns": []interface{}{base + "/realms/*"}, "discovery_wait": discoveryWait},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []interface{}{"/p"}}}},
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "backend") })
	h, err := factories(t)["jwk-aggregator-auth"](ctx, extra, next)
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(realm string) http.Header {
		tok := key.sign(map[string]interface{}{"iss": base + "/realms/" + realm, "exp": time.Now().Add(time.Hour).Unix()})
		return http.Header{"Authorization": {"Bearer " + tok}}
	}
	return h, bearer, served
}

func TestRequestsWaitForADiscoveryAndNoLonger(t *testing.T) {
	logs := useLogger(t)
	// "slow" answers after discovery_wait; the others after a while.
	h, bearer, served := slowRealms(t, func(realm string) time.Duration {
		return map[bool]time.Duration{true: 1500 * time.Millisecond, false: 300 * time.Millisecond}[realm == "slow"]
	}, "1s")
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = do(h, "/p", bearer("acme")).Code
		}()
	}
	slow := do(h, "/p", bearer("slow"))
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d for the tenant being discovered: %d, want 200", i, c)
		}
	}
	if acme := served("acme"); acme != 1 {
		t.Errorf("%d discovery documents fetched for 8 waiting requests, want 1", served("acme"))
	}
	if slow.Code != 401 || logs.find("discovery_wait") == "" {
		t.Errorf("a discovery slower than discovery_wait: %d, log %q; want 401 naming discovery_wait", slow.Code, logs.find("discovery_wait"))
	}
}

// Requests waiting for keys wake when the source they wait for is ready, and not when another
// source's fetch ends: 12 requests, each waiting for its own tenant's discovery, the discoveries
// ending one after another, cost the core at most three questions each (the answer, the question
// again once the request's wake-up channel is taken, the question after the wake-up). Woken by
// every fetch's end, they would ask about as many times as discoveries end while they wait.
func TestWaitingRequestsWakeOnlyForTheirOwnSource(t *testing.T) {
	useLogger(t)
	// Tenant i's discovery ends i × 60 ms after the others began.
	h, bearer, _ := slowRealms(t, func(realm string) time.Duration {
		var i int
		fmt.Sscanf(realm, "t%d", &i)
		return time.Duration(100+60*i) * time.Millisecond
	}, "5s")
	const n = 12
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = do(h, "/p", bearer(fmt.Sprintf("t%d", i))).Code
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d: %d, want 200", i, c)
		}
	}
	asks := h.(*authHandler).asks.Load()
	t.Logf("%d requests waiting for %d discoveries ending one after another asked the core %d times", n, n, asks)
	if asks > 3*n {
		t.Errorf("the core was asked %d times for %d waiting requests; at most %d if each wakes only for its own source", asks, n, 3*n)
	}
}
