// Package fuzz holds Go native fuzz targets for the Rust core, called through its C API as the
// plugin calls it: settings parsing, JWK Set parsing and sanitizing, and token checks. Their seed
// corpora (testdata/fuzz) run as ordinary tests; `make fuzz` runs each target for a set time.
package fuzz

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/core"
)

func FuzzSettings(f *testing.F) {
	for _, s := range []string{
		`{"port": 9876, "origins": ["https://idp-a.example/jwks.json", "https://idp-b.example/keys"]}`,
		`{"port": 9876.0, "origins": ["http://127.0.0.1:1/k"], "cache": true, "timeout": "1s500ms", "issuers": {"http://127.0.0.1:1/k": ["a", "b"]}}`,
		`{"port": 1, "origins": ["http://idp.example/k"], "disable_jwk_security": true, "max_stale": "0"}`,
		`{"port": 1, "origins": ["https://a/k"], "@comment": 1, "cache_min_ttl": "1h", "cache_max_ttl": "1s"}`,
		`null`, `[]`, `{"port": 1e400}`, "\xff", `{"origins": [{"url": 1}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		status, msg := core.Validate(data)
		switch status {
		case core.StatusOK:
		case core.StatusInvalidSettings:
			if msg == "" {
				t.Fatalf("invalid settings without a message: %q", data)
			}
		default:
			t.Fatalf("status %d (a panic or a bug) for %q: %s", status, data, msg)
		}
	})
}

// One loopback origin per fuzz worker process, serving whatever the current input is.
var (
	bodyMu  sync.Mutex
	body    []byte
	srvOnce sync.Once
	srvURL  string
)

func origin() string {
	srvOnce.Do(func() {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			bodyMu.Lock()
			b := body
			bodyMu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		}))
		srvURL = srv.URL + "/jwks.json"
	})
	return srvURL
}

func FuzzJWKS(f *testing.F) {
	seeds, _ := os.ReadFile("../c/fixture-jwks.json")
	f.Add(seeds)
	for _, s := range []string{
		`{"keys": [{"kty": "RSA", "kid": "a", "n": "` + strings.Repeat("x", 342) + `", "e": "AQAB", "d": "secret", "p": "x"}]}`,
		`{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}, {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}`,
		`{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "x5t": "bad", "use": "sig"}]}`,
		`{"keys": []}`, `{"keys": [1, "a", null, []]}`, `{"keys": {}}`, `[[[[[[[[[[[[[[[[[[`,
	} {
		f.Add([]byte(s))
	}
	settings, _ := json.Marshal(map[string]interface{}{"port": 1, "origins": []string{origin()}, "min_refresh_interval": "0"})
	c, err := core.New(string(settings), `{"rules": [{"paths": ["/*"]}]}`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		bodyMu.Lock()
		body = data
		bodyMu.Unlock()
		status, out := c.Body("/")
		c.DrainLogs()
		if status == 503 {
			return
		}
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		var set struct{ Keys []map[string]interface{} }
		if err := json.Unmarshal(out, &set); err != nil || len(set.Keys) == 0 {
			t.Fatalf("200 without a usable set: %v %s", err, out)
		}
		for _, k := range set.Keys {
			for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
				if _, ok := k[m]; ok {
					t.Fatalf("served private or symmetric member %q: %s", m, out)
				}
			}
			switch k["kty"] {
			case "RSA", "EC", "OKP":
			default:
				t.Fatalf("served kty %v", k["kty"])
			}
		}
		// The same keys go through the verifier's key store.
		c.Check("/x", "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImEifQ.e30.AAAA")
	})
}

func FuzzToken(f *testing.F) {
	jwks, _ := os.ReadFile("../c/fixture-jwks.json")
	good, _ := os.ReadFile("../c/fixture-token.txt")
	token := strings.TrimSpace(string(good))
	bodyMu.Lock()
	body = jwks
	bodyMu.Unlock()
	settings, _ := json.Marshal(map[string]interface{}{"port": 1, "origins": []string{origin()}})
	c, err := core.New(string(settings), `{"rules": [{"paths": ["/api/{id}"], "audience": ["api"]}], "unknown_kid_wait": "50ms", "max_token_bytes": 4096}`)
	if err != nil {
		f.Fatal(err)
	}
	if c.Check("/api/1", "Bearer "+token) != core.Allow {
		f.Fatal("the fixture token does not verify")
	}
	parts := strings.Split(token, ".")
	f.Add("/api/1", "Bearer "+token)
	f.Add("/api/1", "Bearer "+parts[0]+"."+parts[1]+".")
	f.Add("/api/1", "Bearer eyJhbGciOiJub25lIn0."+parts[1]+".")
	f.Add("/api/1", "Bearer "+parts[0]+".e30."+parts[2])
	f.Add("/api//1", "bearer "+token)
	f.Add("/api/1", "Basic abc")
	f.Fuzz(func(t *testing.T, path, authorization string) {
		outcome := c.Check(path, authorization)
		if outcome == core.Allow && !strings.Contains(authorization, token) {
			t.Fatalf("accepted a token it was never given: %q", authorization)
		}
		c.DrainLogs()
	})
}
