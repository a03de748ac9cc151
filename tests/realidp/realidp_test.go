// Package realidp tests the Rust core, through the C API exactly as the plugin calls it, against
// real identity providers: Keycloak 26.5.6, ORY Hydra v2.3.0 and panva's oidc-provider 9.13.3,
// started by tests/providers/run.sh (make test does it). Without them these tests fail; they
// never skip. The same flows through real KrakenD are in tests/integration/realidp_test.go.
package realidp

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/core"
	"github.com/jwk-aggregator/jwk-aggregator/tests/providers"
)

// keycloakAlgs are every signing algorithm a Keycloak realm can issue access tokens with.
var keycloakAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

const rules = `{"rules": [{"paths": ["/p"]}], "cache_size": 0}`

func start(t *testing.T, settings map[string]interface{}) *core.Core {
	t.Helper()
	settings["port"] = 9876
	raw, _ := json.Marshal(settings)
	c, err := core.New(string(raw), rules)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Free)
	return c
}

// client creates a Hydra client with an id unique to this run (Hydra keeps its clients for as
// long as it runs) and returns the id and its secret.
func client(t *testing.T, h *providers.Hydra, name string) (string, string) {
	t.Helper()
	id, secret := fmt.Sprintf("%s-%d", name, time.Now().UnixNano()), "secret-"+name+"-0123456789"
	noErr(t, h.CreateClient(providers.Client{ID: id, Secret: secret, Audience: "api"}))
	return id, secret
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// accept asserts that the core lets the token through, and returns the token's header.
func accept(t *testing.T, c *core.Core, what, token string) providers.Header {
	t.Helper()
	h, _ := providers.ParseHeader(token)
	if out, reason, _ := c.Decide("/p", "Bearer "+token, ""); out != core.Allow {
		t.Errorf("%s (%s, kid %s): outcome %d, %s", what, h.Alg, h.Kid, out, reason)
	}
	return h
}

func refuse(t *testing.T, c *core.Core, what, token, want string) {
	t.Helper()
	out, reason, _ := c.Decide("/p", "Bearer "+token, "")
	if out != core.Invalid || !strings.Contains(reason, want) {
		t.Errorf("%s: outcome %d, %q; want refused with %q", what, out, reason, want)
	}
}

func issuerOf(t *testing.T, token string) string {
	claims, err := providers.ParseClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := claims["iss"].(string)
	return iss
}

// merged is the merged JWK Set the validator reads, by kid.
func merged(t *testing.T, c *core.Core) map[string]map[string]interface{} {
	t.Helper()
	status, body := c.Body("/")
	if status != 200 {
		t.Fatalf("GET /: %d %s", status, body)
	}
	var set struct{ Keys []map[string]interface{} }
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]interface{}{}
	for _, k := range set.Keys {
		kid, _ := k["kid"].(string)
		out[kid] = k
	}
	return out
}

// Every signing algorithm of Keycloak, through the realm's JWK Set URL (origins): each token
// verified; the realm's RSA-OAEP encryption key and its HMAC and AES secrets never served.
func TestKeycloakEveryAlgorithmThroughItsJWKSURL(t *testing.T) {
	env := providers.Require(t)
	realm := env.Keycloak.NewRealm(t, keycloakAlgs...)
	c := start(t, map[string]interface{}{
		"origins": []string{realm.JWKSURL()},
		"issuers": []interface{}{map[string]interface{}{"origin": realm.JWKSURL(), "issuer": realm.Issuer()}},
	})
	for _, alg := range keycloakAlgs {
		tok := providers.Must(t)(realm.Token(alg))
		if h := accept(t, c, "Keycloak "+alg, tok); h.Alg != alg {
			t.Errorf("Keycloak signed with %s, asked %s", h.Alg, alg)
		}
	}
	keys, err := env.Keycloak.Keys(realm.Name)
	if err != nil {
		t.Fatal(err)
	}
	served := merged(t, c)
	var enc int
	for _, k := range keys {
		_, in := served[k.Kid]
		switch {
		case k.Use == "ENC" || k.Type == "OCT":
			enc++
			if in {
				t.Errorf("%s key %s (%s, use %s) is served", k.Type, k.Kid, k.Alg, k.Use)
			}
		case k.Kid != "" && !in:
			t.Errorf("signing key %s (%s) is not served", k.Kid, k.Alg)
		}
	}
	if enc == 0 {
		t.Errorf("Keycloak published no encryption or secret key to drop: %+v", keys)
	}
	for kid, k := range served {
		if k["use"] == "enc" || k["kty"] == "oct" || k["d"] != nil || k["x5c"] != nil {
			t.Errorf("served key %s: %v", kid, k)
		}
	}
}

// An issuer in discover: its discovery document names its JWK Set.
func TestDiscoverEveryProvidersIssuer(t *testing.T) {
	env := providers.Require(t)
	realm := env.Keycloak.NewRealm(t, "ES256")
	kc := providers.Must(t)(realm.Token("ES256"))
	id, secret := client(t, env.Hydra, "discover")
	hy := providers.Must(t)(env.Hydra.Token(id, secret, "api"))
	op := providers.Must(t)(env.OIDCProvider.Token("EdDSA", ""))
	c := start(t, map[string]interface{}{"discover": []string{realm.Issuer(), issuerOf(t, hy), env.OIDCProvider.Issuer()}})
	for name, tok := range map[string]string{"Keycloak": kc, "Hydra": hy, "oidc-provider": op} {
		accept(t, c, name+" through discover", tok)
	}
}

// issuer_patterns over Keycloak realms: realms created after start, each trusted at first sight
// with its own keys; a rotated key accepted on first use; a withdrawn key refused, even after
// its realm was evicted and discovered again; a healthy realm accepted after any idle time; a
// deleted realm refused once max_stale has passed.
func TestKeycloakRealmsByPattern(t *testing.T) {
	env := providers.Require(t)
	pattern := env.Keycloak.URL + "/realms/*"

	t.Run("first sight and rotation", func(t *testing.T) {
		c := start(t, map[string]interface{}{"issuer_patterns": []string{pattern}})
		a, b := env.Keycloak.NewRealm(t, "RS256"), env.Keycloak.NewRealm(t, "EdDSA")
		accept(t, c, "realm A", providers.Must(t)(a.Token("RS256")))
		accept(t, c, "realm B", providers.Must(t)(b.Token("EdDSA")))
		if _, _, err := env.Keycloak.RotateKey(a.Name, "RS256"); err != nil {
			t.Fatal(err)
		}
		h := accept(t, c, "realm A after rotation (a kid never seen)", providers.Must(t)(a.Token("RS256")))
		t.Logf("rotated realm's new kid %s accepted on first use", h.Kid)
	})

	t.Run("withdrawn key after eviction", func(t *testing.T) {
		c := start(t, map[string]interface{}{"issuer_patterns": []string{pattern}, "max_dynamic_issuers": 1})
		a, b := env.Keycloak.NewRealm(t, "ES256"), env.Keycloak.NewRealm(t, "ES256")
		old := providers.Must(t)(a.Token("ES256"))
		accept(t, c, "realm A", old)
		if _, _, err := env.Keycloak.RotateKey(a.Name, "ES256"); err != nil {
			t.Fatal(err)
		}
		accept(t, c, "realm B (evicts A)", providers.Must(t)(b.Token("ES256")))
		refuse(t, c, "realm A's token of its withdrawn key", old, "no key with kid")
		accept(t, c, "realm A's token of its new key", providers.Must(t)(a.Token("ES256")))
	})

	t.Run("idle healthy realm", func(t *testing.T) {
		c := start(t, map[string]interface{}{"issuer_patterns": []string{pattern}, "max_stale": "3s", "cache_min_ttl": "1s", "cache_default_ttl": "1s"})
		a := env.Keycloak.NewRealm(t, "EdDSA")
		tok := providers.Must(t)(a.Token("EdDSA"))
		accept(t, c, "realm", tok)
		time.Sleep(8 * time.Second)
		accept(t, c, "the same realm after 8 s idle (max_stale 3s)", tok)
	})

	t.Run("deleted realm", func(t *testing.T) {
		c := start(t, map[string]interface{}{"issuer_patterns": []string{pattern}, "max_stale": "2s", "cache_min_ttl": "1s", "cache_default_ttl": "1s"})
		realm := env.Keycloak.NewRealm(t, "ES256")
		tok := providers.Must(t)(realm.Token("ES256"))
		accept(t, c, "realm", tok)
		if err := realm.Delete(); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		for time.Since(deleted) < 15*time.Second {
			if out, reason, _ := c.Decide("/p", "Bearer "+tok, ""); out != core.Allow {
				if !strings.Contains(reason, "stale") {
					t.Errorf("refused for another reason: %s", reason)
				}
				t.Logf("deleted realm refused %v after its deletion (max_stale 2s)", time.Since(deleted).Round(10*time.Millisecond))
				if time.Since(deleted) < 2*time.Second {
					t.Errorf("refused before max_stale")
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("a deleted realm's token is still accepted 15 s later")
	})
}

// Hydra: its JWK Set URL, a token of each client, and a rotated key accepted on first use.
func TestHydraThroughItsJWKSURL(t *testing.T) {
	env := providers.Require(t)
	id, secret := client(t, env.Hydra, "jwks")
	c := start(t, map[string]interface{}{"origins": []string{env.Hydra.JWKSURL()}})
	accept(t, c, "Hydra", providers.Must(t)(env.Hydra.Token(id, secret, "api")))
	kid, err := env.Hydra.RotateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Hydra.RemoveKey(kid) })
	h := accept(t, c, "Hydra after rotation", providers.Must(t)(env.Hydra.Token(id, secret, "api")))
	if h.Kid != kid || h.Alg != "ES256" {
		t.Errorf("Hydra signed with %s %s after rotating to %s ES256", h.Kid, h.Alg, kid)
	}
}

// oidc-provider: every algorithm it signs with, through its JWK Set URL.
func TestOIDCProviderEveryAlgorithm(t *testing.T) {
	env := providers.Require(t)
	c := start(t, map[string]interface{}{"origins": []string{env.OIDCProvider.JWKSURL()}})
	for _, alg := range providers.OIDCProviderAlgs {
		if h := accept(t, c, "oidc-provider "+alg, providers.Must(t)(env.OIDCProvider.Token(alg, ""))); h.Alg != alg {
			t.Errorf("oidc-provider signed with %s, asked %s", h.Alg, alg)
		}
	}
}

// One provider stopped: the others' tokens keep working and their keys stay in the merged set;
// the stopped one's keys are kept for max_stale, then dropped.
func TestOneProviderStoppedTheOthersKeepWorking(t *testing.T) {
	env := providers.Require(t)
	realm := env.Keycloak.NewRealm(t, "RS256")
	id, secret := client(t, env.Hydra, "stop")
	other, stop := providers.StartAnother(t)
	c := start(t, map[string]interface{}{
		"origins":   []string{realm.JWKSURL(), env.Hydra.JWKSURL(), other.JWKSURL()},
		"max_stale": "2s", "cache_min_ttl": "1s", "cache_default_ttl": "1s", "cache": true,
	})
	kc, hy, op := providers.Must(t)(realm.Token("RS256")), providers.Must(t)(env.Hydra.Token(id, secret, "api")), providers.Must(t)(other.Token("ES256", ""))
	for name, tok := range map[string]string{"Keycloak": kc, "Hydra": hy, "oidc-provider": op} {
		accept(t, c, name, tok)
	}
	opKid := func() string { h, _ := providers.ParseHeader(op); return h.Kid }()
	stop()
	stopped := time.Now()
	for time.Since(stopped) < 10*time.Second {
		if _, in := merged(t, c)[opKid]; !in {
			break
		}
		accept(t, c, "Keycloak while oidc-provider is down", kc)
		accept(t, c, "Hydra while oidc-provider is down", hy)
		time.Sleep(200 * time.Millisecond)
	}
	if _, in := merged(t, c)[opKid]; in {
		t.Fatalf("the stopped provider's key is still served 10 s later (max_stale 2s)")
	}
	refuse(t, c, "the stopped provider's token after max_stale", op, "no key")
	accept(t, c, "Keycloak", kc)
	accept(t, c, "Hydra", hy)
	if status, body := c.Body("/__health"); status != 207 || !strings.Contains(string(body), `"down"`) {
		t.Errorf("/__health with one provider down: %d %s", status, body)
	}
}
