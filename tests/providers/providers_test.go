package providers

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// checkToken checks a token's header alg, iss and aud, and that the JWK Set at jwksURL publishes
// its kid; it returns the kid.
func checkToken(t *testing.T, token, alg, iss, aud, jwksURL string) string {
	t.Helper()
	h, err := ParseHeader(token)
	if err != nil {
		t.Fatal(err)
	}
	if h.Alg != alg {
		t.Errorf("token alg %q, want %q", h.Alg, alg)
	}
	claims, err := ParseClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	if claims["iss"] != iss {
		t.Errorf("token iss %v, want %s", claims["iss"], iss)
	}
	if aud != "" && !hasAudience(claims["aud"], aud) {
		t.Errorf("token aud %v lacks %s", claims["aud"], aud)
	}
	jwks, err := FetchJWKS(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	if h.Kid == "" || jwks.Find(h.Kid) == nil {
		t.Errorf("kid %q of the %s token is not in %s", h.Kid, alg, jwksURL)
	}
	return h.Kid
}

func hasAudience(aud interface{}, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []interface{}:
		for _, v := range a {
			if v == want {
				return true
			}
		}
	}
	return false
}

func TestFromEnvFailsWithoutProviders(t *testing.T) {
	t.Setenv(EnvKeycloakURL, "")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), EnvKeycloakURL) {
		t.Fatalf("FromEnv without %s: %v, want an error naming it", EnvKeycloakURL, err)
	}
}

var keycloakAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func TestKeycloakEveryAlgorithm(t *testing.T) {
	kc := Require(t).Keycloak
	start := time.Now()
	realm := kc.NewRealm(t, keycloakAlgs...)
	t.Logf("realm %s with %d algorithms created in %v", realm.Name, len(keycloakAlgs), time.Since(start))
	for _, alg := range keycloakAlgs {
		start := time.Now()
		tok, err := realm.Token(alg)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		t.Logf("%s: client and first token in %v", alg, time.Since(start))
		checkToken(t, tok, alg, realm.Issuer(), realm.Audience, realm.JWKSURL())
	}
	// Keycloak also publishes an RSA-OAEP encryption key; its keys carry x5c certificates.
	jwks, err := FetchJWKS(realm.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	var enc bool
	for _, k := range jwks.Keys {
		if k.Use == "enc" && k.Alg == "RSA-OAEP" && len(k.X5c) == 1 {
			enc = true
		}
	}
	if !enc {
		t.Errorf("no RSA-OAEP enc key with an x5c certificate in %+v", jwks.Keys)
	}
}

func TestKeycloakRealmDefaultAlgorithm(t *testing.T) {
	kc := Require(t).Keycloak
	start := time.Now()
	realm := kc.NewRealm(t, "ES384")
	t.Logf("realm %s created in %v", realm.Name, time.Since(start))
	if err := kc.CreateClient(realm.Name, Client{ID: "plain", Secret: "plain-secret", Audience: realm.Audience}); err != nil {
		t.Fatal(err)
	}
	tok, err := kc.Token(realm.Name, "plain", "plain-secret")
	if err != nil {
		t.Fatal(err)
	}
	checkToken(t, tok, "ES384", realm.Issuer(), realm.Audience, realm.JWKSURL())
}

func TestKeycloakRotateAndDeleteRealm(t *testing.T) {
	kc := Require(t).Keycloak
	name := "rotate-" + randomHex(3)
	start := time.Now()
	if err := kc.CreateRealm(name, "ES256", "EdDSA"); err != nil {
		t.Fatal(err)
	}
	t.Logf("realm %s created in %v", name, time.Since(start))
	deleted := false
	defer func() {
		if !deleted {
			kc.DeleteRealm(name)
		}
	}()
	if err := kc.CreateClient(name, Client{ID: "svc", Secret: "svc-secret"}); err != nil {
		t.Fatal(err)
	}
	tok, err := kc.Token(name, "svc", "svc-secret")
	if err != nil {
		t.Fatal(err)
	}
	oldKid := checkToken(t, tok, "ES256", kc.Issuer(name), "", kc.JWKSURL(name))

	start = time.Now()
	old, newKid, err := kc.RotateKey(name, "ES256")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ES256 key rotated in %v", time.Since(start))
	if !slices.Equal(old, []string{oldKid}) || newKid == oldKid {
		t.Fatalf("rotation: old %v new %s, want old [%s] and a new kid", old, newKid, oldKid)
	}
	tok, err = kc.Token(name, "svc", "svc-secret")
	if err != nil {
		t.Fatal(err)
	}
	if kid := checkToken(t, tok, "ES256", kc.Issuer(name), "", kc.JWKSURL(name)); kid != newKid {
		t.Errorf("token after rotation signed by %s, want %s", kid, newKid)
	}
	jwks, err := FetchJWKS(kc.JWKSURL(name))
	if err != nil {
		t.Fatal(err)
	}
	if jwks.Find(oldKid) != nil {
		t.Errorf("rotated-out key %s is still published", oldKid)
	}

	if err := kc.DeleteRealm(name); err != nil {
		t.Fatal(err)
	}
	deleted = true
	resp, err := http.Get(kc.JWKSURL(name))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("JWK Set of a deleted realm: %d, want 404", resp.StatusCode)
	}
}

func TestHydraTokenAndRotation(t *testing.T) {
	h := Require(t).Hydra
	id, secret, aud := "svc-"+randomHex(4), randomHex(16), "urn:jwk-aggregator:hydra"
	if err := h.CreateClient(Client{ID: id, Secret: secret, Audience: aud}); err != nil {
		t.Fatal(err)
	}
	tok, err := h.Token(id, secret, aud)
	if err != nil {
		t.Fatal(err)
	}
	before := checkToken(t, tok, "RS256", h.Issuer(), aud, h.JWKSURL())

	kid, err := h.RotateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	if kids, err := h.AccessTokenKids(); err != nil || len(kids) == 0 || kids[0] != kid {
		t.Fatalf("access token keys after rotation: %v %v, want %s first", kids, err, kid)
	}
	tok, err = h.Token(id, secret, aud)
	if err != nil {
		t.Fatal(err)
	}
	if got := checkToken(t, tok, "ES256", h.Issuer(), aud, h.JWKSURL()); got != kid {
		t.Errorf("token after rotation signed by %s, want %s", got, kid)
	}
	jwks, err := FetchJWKS(h.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	if jwks.Find(before) == nil {
		t.Errorf("the previous key %s is no longer published after a rotation", before)
	}

	if err := h.RemoveKey(kid); err != nil {
		t.Fatal(err)
	}
	tok, err = h.Token(id, secret, aud)
	if err != nil {
		t.Fatal(err)
	}
	if got := checkToken(t, tok, "RS256", h.Issuer(), aud, h.JWKSURL()); got != before {
		t.Errorf("token after removing %s signed by %s, want %s", kid, got, before)
	}
	if jwks, err = FetchJWKS(h.JWKSURL()); err != nil || jwks.Find(kid) != nil {
		t.Errorf("removed key %s still published (%v)", kid, err)
	}
}

func TestOIDCProviderEveryAlgorithm(t *testing.T) {
	o := Require(t).OIDCProvider
	for _, alg := range OIDCProviderAlgs {
		tok, err := o.Token(alg, "https://api.example/")
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		checkToken(t, tok, alg, o.Issuer(), "https://api.example/", o.JWKSURL())
		if h, _ := ParseHeader(tok); h.Typ != "at+jwt" {
			t.Errorf("%s token typ %q, want at+jwt", alg, h.Typ)
		}
	}
	tok, err := o.Token("ES256", "")
	if err != nil {
		t.Fatal(err)
	}
	checkToken(t, tok, "ES256", o.Issuer(), "urn:jwk-aggregator:api", o.JWKSURL())
}
