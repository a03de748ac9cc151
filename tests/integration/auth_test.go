package integration

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
)

var b64 = base64.RawURLEncoding

// echoBackend answers with the X-User header it received.
func echoBackend(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]interface{}{"x_user": r.Header.Values("X-User")})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestAuthHandlerThroughTheGateway(t *testing.T) {
	a, b, c := provider(t, "idp-a", "RS256"), provider(t, "idp-b", "ES256"), provider(t, "idp-c", "EdDSA")
	aggPort := freePort(t)
	server := map[string]interface{}{
		"name": []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator": map[string]interface{}{
			"port":    aggPort,
			"origins": []string{a.JWKSURL(), b.JWKSURL(), c.JWKSURL()},
			// The list form: every KrakenD release reads it as written (TestIssuersAsAnObject).
			"issuers": []interface{}{
				map[string]interface{}{"origin": a.JWKSURL(), "issuer": a.Issuer},
				map[string]interface{}{"origin": b.JWKSURL(), "issuer": b.Issuer},
				map[string]interface{}{"origin": c.JWKSURL(), "issuer": c.Issuer},
			},
		},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{
			map[string]interface{}{
				"paths":            []string{"/multi/{tenant}"},
				"audience":         []string{"api"},
				"propagate_claims": [][]string{{"sub", "X-User"}},
			},
			map[string]interface{}{"paths": []string{"/admin"}, "scopes": []string{"admin"}, "scopes_key": "scope"},
		}},
	}
	echo := echoBackend(t)
	g := startGatewayWith(t, aggPort, server, []endpoint{
		{path: "/multi/{tenant}", backend: echo, inputHeaders: []string{"X-User"}},
		{path: "/admin"},
		{path: "/public"},
	})
	now := time.Now().Unix()
	claims := func(p *idp.Provider, extra map[string]interface{}) map[string]interface{} {
		c := map[string]interface{}{"iss": p.Issuer, "sub": p.Name + "-user", "aud": "api", "iat": now, "exp": now + 600}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}

	for _, p := range []*idp.Provider{a, b, c} {
		code, _, body := g.request("/multi/t1", p.Key(0).Sign(claims(p, nil), nil), map[string]string{"X-User": "spoofed"})
		if code != 200 {
			t.Errorf("%s token (%s): %d, want 200", p.Name, p.Key(0).Alg, code)
			continue
		}
		if !strings.Contains(body, `"x_user":["`+p.Name+`-user"]`) {
			t.Errorf("%s: backend saw %s; want only the claim, never the client's header", p.Name, body)
		}
	}

	good := a.Key(0).Sign(claims(a, nil), nil)
	parts := strings.Split(good, ".")
	none := b64.EncodeToString([]byte(`{"alg":"none","kid":"`+a.Key(0).Kid+`"}`)) + "." + parts[1] + "."
	jwkJSON, _ := json.Marshal(a.Key(0).PublicJWK())
	hsInput := b64.EncodeToString([]byte(`{"alg":"HS256","kid":"`+a.Key(0).Kid+`"}`)) + "." + parts[1]
	mac := hmac.New(sha256.New, jwkJSON)
	mac.Write([]byte(hsInput))
	hs := hsInput + "." + b64.EncodeToString(mac.Sum(nil))
	tampered := parts[0] + "." + b64.EncodeToString([]byte(`{"iss":"`+a.Issuer+`","sub":"root","aud":"api","exp":9999999999}`)) + "." + parts[2]

	for name, token := range map[string]string{
		"A's key claiming B's issuer":   a.Key(0).Sign(claims(b, nil), nil),
		"alg none":                      none,
		"HS256 with the RSA public key": hs,
		"tampered payload":              tampered,
		"expired":                       a.Key(0).Sign(claims(a, map[string]interface{}{"exp": now - 60}), nil),
		"not yet valid":                 a.Key(0).Sign(claims(a, map[string]interface{}{"nbf": now + 600}), nil),
		"wrong audience":                a.Key(0).Sign(claims(a, map[string]interface{}{"aud": "other"}), nil),
		"unknown key":                   idp.NewKey("stranger", "RS256").Sign(claims(a, nil), nil),
	} {
		code, h, _ := g.request("/multi/t1", token, nil)
		if code != 401 || h.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
			t.Errorf("%s: %d %q, want 401 with error=\"invalid_token\"", name, code, h.Get("WWW-Authenticate"))
		}
	}
	if code := g.call("/multi/t1", ""); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	if code := g.call("/admin", a.Key(0).Sign(claims(a, map[string]interface{}{"scope": "read"}), nil)); code != 403 {
		t.Errorf("missing scope: %d, want 403", code)
	}
	if code := g.call("/admin", a.Key(0).Sign(claims(a, map[string]interface{}{"scope": "read admin"}), nil)); code != 200 {
		t.Errorf("with scope: %d, want 200", code)
	}
	if code := g.call("/public", ""); code != 200 {
		t.Errorf("unprotected endpoint: %d, want 200", code)
	}
}

// krakendRelease is the gateway's KrakenD version as (major, minor), from `krakend version`.
func krakendRelease(t *testing.T) (int, int) {
	out, _ := exec.Command(os.Getenv("KRAKEND_BIN"), "version").CombinedOutput()
	var major, minor int
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "KrakenD Version:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%d.%d", &major, &minor)
		}
	}
	if major == 0 {
		t.Fatalf("cannot read the gateway's version:\n%s", out)
	}
	return major, minor
}

// "issuers" as an object keyed by origin URL: read as written from KrakenD 2.12 on (koanf); up to
// 2.11 KrakenD reads its configuration with viper, which splits keys at ".", and then the
// handler fails closed (503) with an ERROR naming the cause and the list form that fixes it.
func TestIssuersAsAnObject(t *testing.T) {
	a := provider(t, "idp-a", "RS256")
	aggPort := freePort(t)
	server := map[string]interface{}{
		"name": []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator": map[string]interface{}{
			"port": aggPort, "origins": []string{a.JWKSURL()},
			"issuers": map[string]interface{}{a.JWKSURL(): a.Issuer},
		},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/p"}}}},
	}
	major, minor := krakendRelease(t)
	koanf := major > 2 || (major == 2 && minor >= 12)
	// Failing closed, the handler answers 503 to everything, /__health included.
	g := startGatewayUntil(t, aggPort, server, []endpoint{{path: "/p"}}, nil, func(code int) bool { return code == 200 || (!koanf && code == 503) })
	code := g.call("/p", a.Token(0, "alice", "", time.Hour))
	switch {
	case koanf && code != 200:
		t.Errorf("KrakenD %d.%d: a token bound by the object form: %d, want 200", major, minor, code)
	case !koanf && code != 503:
		t.Errorf("KrakenD %d.%d (viper): %d, want 503 (fail closed)", major, minor, code)
	case !koanf && len(waitLog(g, "viper", `"origin"`)) == 0:
		t.Errorf("KrakenD %d.%d (viper): no log line names the cause:\n%s", major, minor, g.out.String())
	}
}
