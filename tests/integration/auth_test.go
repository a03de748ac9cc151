package integration

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
			"issuers": map[string]interface{}{a.JWKSURL(): a.Issuer, b.JWKSURL(): b.Issuer, c.JWKSURL(): c.Issuer},
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
