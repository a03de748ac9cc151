package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/providers"
)

func hydraClient(t *testing.T, h *providers.Hydra) (string, string) {
	t.Helper()
	id, secret := fmt.Sprintf("gw-%d", time.Now().UnixNano()), "gateway-secret-0123456789"
	if err := h.CreateClient(providers.Client{ID: id, Secret: secret, Audience: "api"}); err != nil {
		t.Fatal(err)
	}
	return id, secret
}

// Real Keycloak, Hydra and oidc-provider through KrakenD's own auth/validator reading the merged
// set: RS256 tokens of all three on one endpoint (Keycloak's encryption key, which go-jose would
// choke on, is dropped), and each provider's issuer through discover.
func TestRealProvidersThroughTheValidator(t *testing.T) {
	env := providers.Require(t)
	realm := env.Keycloak.NewRealm(t, "RS256")
	id, secret := hydraClient(t, env.Hydra)
	tokens := map[string]string{
		"Keycloak":      providers.Must(t)(realm.Token("RS256")),
		"Hydra":         providers.Must(t)(env.Hydra.Token(id, secret, "api")),
		"oidc-provider": providers.Must(t)(env.OIDCProvider.Token("RS256", "")),
	}
	hydraIssuer := func() string { c, _ := providers.ParseClaims(tokens["Hydra"]); return c["iss"].(string) }()
	for _, form := range []map[string]interface{}{
		{"origins": []string{realm.JWKSURL(), env.Hydra.JWKSURL(), env.OIDCProvider.JWKSURL()}},
		{"discover": []string{realm.Issuer(), hydraIssuer, env.OIDCProvider.Issuer()}},
	} {
		aggPort := freePort(t)
		form["port"] = aggPort
		g := startGateway(t, aggPort, form, []endpoint{{path: "/v", validator: validator(aggPort, "RS256", true)}})
		for name, tok := range tokens {
			if code := g.call("/v", tok); code != 200 {
				t.Errorf("%v: %s's RS256 token through auth/validator: %d", form, name, code)
			}
		}
		if code := g.call("/v", ""); code != 401 {
			t.Errorf("no token: %d", code)
		}
	}
}

// Every algorithm of every provider on one endpoint through jwk-aggregator-auth, each bound to
// its own issuer; realms created after start trusted by pattern; a rotated key accepted on first
// use; a deleted realm refused after max_stale.
func TestRealProvidersThroughTheAuthHandler(t *testing.T) {
	env := providers.Require(t)
	realm := env.Keycloak.NewRealm(t, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
	id, secret := hydraClient(t, env.Hydra)
	aggPort := freePort(t)
	server := map[string]interface{}{
		"name": []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator": map[string]interface{}{
			"port":    aggPort,
			"origins": []string{realm.JWKSURL(), env.Hydra.JWKSURL(), env.OIDCProvider.JWKSURL()},
			"issuers": []interface{}{
				map[string]interface{}{"origin": realm.JWKSURL(), "issuer": realm.Issuer()},
				map[string]interface{}{"origin": env.OIDCProvider.JWKSURL(), "issuer": env.OIDCProvider.Issuer()},
			},
			"issuer_patterns": []string{env.Keycloak.URL + "/realms/*"},
			"max_stale":       "2s", "cache_min_ttl": "1s", "cache_default_ttl": "1s",
		},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{
			map[string]interface{}{"paths": []string{"/multi"}, "propagate_claims": [][]string{{"iss", "X-Issuer"}}},
		}},
	}
	echo := echoBackend(t)
	g := startGatewayWith(t, aggPort, server, []endpoint{{path: "/multi", backend: echo, inputHeaders: []string{"X-Issuer"}}})
	accept := func(what, tok string) {
		t.Helper()
		h, _ := providers.ParseHeader(tok)
		if code, _, body := g.request("/multi", tok, nil); code != 200 {
			t.Errorf("%s (%s): %d %s", what, h.Alg, code, body)
		}
	}
	for _, alg := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"} {
		accept("Keycloak "+alg, providers.Must(t)(realm.Token(alg)))
	}
	for _, alg := range providers.OIDCProviderAlgs {
		accept("oidc-provider "+alg, providers.Must(t)(env.OIDCProvider.Token(alg, "")))
	}
	accept("Hydra", providers.Must(t)(env.Hydra.Token(id, secret, "api")))

	// A realm created now, trusted by the pattern at first sight; then rotated; then deleted.
	late := env.Keycloak.NewRealm(t, "ES256")
	first := providers.Must(t)(late.Token("ES256"))
	start := time.Now()
	accept("a realm created after start", first)
	t.Logf("first token of a new realm answered in %v (its discovery included)", time.Since(start).Round(100*time.Microsecond))
	if _, _, err := env.Keycloak.RotateKey(late.Name, "ES256"); err != nil {
		t.Fatal(err)
	}
	tok := providers.Must(t)(late.Token("ES256"))
	accept("the realm after rotation", tok)
	if err := late.Delete(); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	for g.call("/multi", tok) == 200 {
		if time.Since(deleted) > 15*time.Second {
			t.Fatalf("a deleted realm's token is still accepted 15 s later (max_stale 2s)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("deleted realm refused %v after its deletion (max_stale 2s)", time.Since(deleted).Round(10*time.Millisecond))
}
