package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/providers"
)

// startRedis runs a real redis-server on the loopback port until stop (or the test's end).
func startRedis(t *testing.T, port int) (stop func()) {
	t.Helper()
	stop, err := providers.StartRedis("redis-server", port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return stop
}

// credentialsBackend answers with the Authorization and DPoP headers it received.
func credentialsBackend(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]interface{}{"authorization": r.Header.Values("Authorization"), "dpop": r.Header.Values("Dpop")})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// send makes a request with the given Authorization value and DPoP proof.
func (g *gateway) send(method, path, authorization, proof string) (int, http.Header, string) {
	g.t.Helper()
	return g.sendAs(g, method, path, authorization, proof)
}

func (g *gateway) url(path string) string {
	scheme := "http"
	if g.tls {
		scheme = "https"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, g.port, path)
}

// DPoP-bound tokens of real Keycloak and oidc-provider (token requests made with a DPoP proof, as
// a client library makes them) through real KrakenD: accepted with the right proof, once; refused
// for every way a proof can be wrong, and as a bearer token; what the backend receives, as sent or
// turned into a bearer request. Two gateways share one real Redis: a proof accepted by one is
// refused by the other; with Redis stopped DPoP requests get 503 while bearer requests go on, and
// come back with it.
func TestDPoPTokensOfRealProvidersThroughTwoGatewaysSharingRedis(t *testing.T) {
	env := providers.Require(t)
	must := providers.Must(t)
	realm := env.Keycloak.NewRealm(t, "RS256")
	clientID, secret := fmt.Sprintf("dpop-%d", time.Now().UnixNano()), "dpop-client-secret-0123456789"
	if err := env.Keycloak.CreateClient(realm.Name, providers.Client{ID: clientID, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	key, other := providers.NewDPoPKey(), providers.NewDPoPKey()
	tokens := map[string]string{
		"Keycloak":      must(env.Keycloak.DPoPToken(realm.Name, clientID, secret, key)),
		"oidc-provider": must(env.OIDCProvider.DPoPToken("ES256", key)),
	}
	for name, tok := range tokens {
		c, _ := providers.ParseClaims(tok)
		if cnf, _ := c["cnf"].(map[string]interface{}); cnf["jkt"] != key.Thumbprint() {
			t.Fatalf("%s's token is not bound to the client's key: cnf %v", name, c["cnf"])
		}
	}
	plain := must(realm.Token("RS256"))

	redisPort := freePort(t)
	stopRedis := startRedis(t, redisPort)
	backend := credentialsBackend(t)
	start := func() *gateway {
		aggPort := freePort(t)
		server := map[string]interface{}{
			"name": []string{"jwk-aggregator", "jwk-aggregator-auth"},
			"jwk-aggregator": map[string]interface{}{
				"port":    aggPort,
				"origins": []string{realm.JWKSURL(), env.OIDCProvider.JWKSURL()},
			},
			"jwk-aggregator-auth": map[string]interface{}{
				"dpop_replay": map[string]interface{}{"redis": fmt.Sprintf("redis://127.0.0.1:%d/0", redisPort), "timeout": "200ms"},
				"rules": []interface{}{
					map[string]interface{}{"paths": []string{"/dpop"}, "dpop": map[string]interface{}{"mode": "required", "alg": []string{"ES256"}, "backend": "bearer"}},
					map[string]interface{}{"paths": []string{"/either"}, "dpop": map[string]interface{}{}},
				},
			},
		}
		headers := []string{"Authorization", "DPoP"}
		return startGatewayWith(t, aggPort, server, []endpoint{
			{path: "/dpop", backend: backend, inputHeaders: headers},
			{path: "/either", backend: backend, inputHeaders: headers},
		})
	}
	a, b := start(), start()
	tok := tokens["Keycloak"]
	proof := func(g *gateway, method, path, token string, edit func(h, c map[string]interface{})) string {
		return key.Proof(method, g.url(path), token, edit)
	}

	for name, tok := range tokens {
		code, _, body := a.send("GET", "/dpop", "DPoP "+tok, proof(a, "GET", "/dpop", tok, nil))
		if code != 200 {
			t.Fatalf("%s's DPoP token with its proof: %d %s", name, code, body)
		}
		// backend "bearer": a bearer request, without the proof.
		want := fmt.Sprintf(`{"authorization":["Bearer %s"],"dpop":null}`, tok)
		if strings.TrimSpace(body) != want {
			t.Errorf("%s: the backend received %s, want %s", name, body, want)
		}
	}
	// As sent: the backend gets the DPoP request.
	p := proof(a, "GET", "/either", tok, nil)
	if code, _, body := a.send("GET", "/either", "DPoP "+tok, p); code != 200 || !strings.Contains(body, `"authorization":["DPoP `+tok+`"]`) || !strings.Contains(body, p) {
		t.Errorf("as sent: %d %s", code, body)
	}

	if code, h, _ := a.send("GET", "/either", "DPoP "+tok, p); code != 401 || !strings.Contains(h.Get("WWW-Authenticate"), `DPoP error="invalid_dpop_proof"`) {
		t.Errorf("a proof replayed on the same gateway: %d, WWW-Authenticate %q", code, h.Get("WWW-Authenticate"))
	}
	refusals := []struct {
		what, authorization, proof, error string
	}{
		{"replayed on the other gateway", "DPoP " + tok, "", "invalid_dpop_proof"},
		{"a proof for POST", "DPoP " + tok, proof(a, "POST", "/dpop", tok, nil), "invalid_dpop_proof"},
		{"a proof for another URI", "DPoP " + tok, proof(a, "GET", "/either", tok, nil), "invalid_dpop_proof"},
		{"a proof for another token", "DPoP " + tok, proof(a, "GET", "/dpop", plain, nil), "invalid_dpop_proof"},
		{"a proof by another key", "DPoP " + tok, other.Proof("GET", a.url("/dpop"), tok, nil), "invalid_token"},
		{"a proof two minutes old", "DPoP " + tok, proof(a, "GET", "/dpop", tok, func(_, c map[string]interface{}) { c["iat"] = time.Now().Unix() - 120 }), "invalid_dpop_proof"},
		{"a proof with a private key", "DPoP " + tok, proof(a, "GET", "/dpop", tok, func(h, _ map[string]interface{}) {
			h["jwk"].(map[string]interface{})["d"] = "AAAA"
		}), "invalid_dpop_proof"},
		{"a proof with alg none", "DPoP " + tok, unsignedProof(proof(a, "GET", "/dpop", tok, func(h, _ map[string]interface{}) { h["alg"] = "none" })), "invalid_dpop_proof"},
		{"no proof", "DPoP " + tok, "", "invalid_dpop_proof"},
		{"the bound token as a bearer token", "Bearer " + tok, "", "invalid_token"},
		{"an unbound token", "Bearer " + plain, "", "invalid_token"},
	}
	for _, r := range refusals {
		g, pr := a, r.proof
		if r.what == "replayed on the other gateway" {
			pr = proof(a, "GET", "/dpop", tok, nil)
			if code, _, body := a.send("GET", "/dpop", r.authorization, pr); code != 200 {
				t.Fatalf("a fresh proof on the first gateway: %d %s", code, body)
			}
			// The same proof, addressed to the second gateway's URI, would differ in htu: the
			// second gateway is told the first one's origin, as a fleet behind one address is.
			g = b
		}
		code, h, _ := g.sendAs(a, "GET", "/dpop", r.authorization, pr)
		challenge := h.Get("WWW-Authenticate")
		if code != 401 || !strings.HasPrefix(challenge, "DPoP ") || !strings.Contains(challenge, `error="`+r.error+`"`) || !strings.Contains(challenge, `algs="ES256"`) {
			t.Errorf("%s: %d, WWW-Authenticate %q; want 401 with a DPoP challenge, error %s", r.what, code, challenge, r.error)
		}
	}

	// Redis stopped: DPoP requests are refused (503), bearer requests on the same gateway go on.
	stopRedis()
	if code, _, _ := a.send("GET", "/dpop", "DPoP "+tok, proof(a, "GET", "/dpop", tok, nil)); code != 503 {
		t.Errorf("DPoP with Redis stopped: %d, want 503", code)
	}
	if code, _, _ := a.send("GET", "/either", "Bearer "+plain, ""); code != 200 {
		t.Errorf("a bearer request with Redis stopped: %d, want 200", code)
	}
	startRedis(t, redisPort)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, _ := a.send("GET", "/dpop", "DPoP "+tok, proof(a, "GET", "/dpop", tok, nil))
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DPoP requests still refused (%d) 5 s after Redis came back", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	metrics := a.metricsText()
	for _, want := range []string{`jwk_aggregator_dpop_proofs_total{result="replayed"} 1`, `jwk_aggregator_auth_requests_total{outcome="unavailable"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}
}

// sendAs sends to g a request whose Host is the one `as` is addressed by: gateways of a fleet
// behind one address see the same URI.
func (g *gateway) sendAs(as *gateway, method, path, authorization, proof string) (int, http.Header, string) {
	g.t.Helper()
	req, _ := http.NewRequest(method, g.url(path), nil)
	req.Host = fmt.Sprintf("127.0.0.1:%d", as.port)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// metricsText is the aggregator's /metrics.
func (g *gateway) metricsText() string {
	g.t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", g.aggPort))
	if err != nil {
		g.t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func unsignedProof(p string) string {
	parts := strings.Split(p, ".")
	return parts[0] + "." + parts[1] + "."
}
