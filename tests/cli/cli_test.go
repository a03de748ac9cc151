// Package cli tests the operator's command, build/jwk-aggregator, as an operator runs it: against
// real identity providers on loopback with real keys, a real plugin file and real tokens.
// JWKA_CLI names the command and PLUGIN_SO a plugin built for this machine (`make test-cli`).
package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
	"github.com/jwk-aggregator/jwk-aggregator/tests/providers"
)

var provider = idp.StartForTest

// pluginDir is a plugin folder holding the real plugin, plus the named extra files.
func pluginDir(t *testing.T, extra map[string][]byte) string {
	t.Helper()
	so := os.Getenv("PLUGIN_SO")
	if so == "" || os.Getenv("JWKA_CLI") == "" {
		t.Fatal("JWKA_CLI and PLUGIN_SO must name the command and a plugin (run through `make test-cli`)")
	}
	dir := t.TempDir()
	if err := os.Symlink(so, filepath.Join(dir, "jwk-aggregator.so")); err != nil {
		t.Fatal(err)
	}
	for name, data := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type config map[string]interface{}

// goodConfig: two RS256 providers bound to their issuers, an auth/validator endpoint pointed at
// the aggregator as the README says, and a jwk-aggregator-auth rule whose claim header is forwarded.
func goodConfig(t *testing.T, a, b *idp.Provider, folder string) config {
	return config{
		"version": 3,
		"plugin":  map[string]interface{}{"pattern": ".so", "folder": folder + "/"},
		"extra_config": map[string]interface{}{"plugin/http-server": map[string]interface{}{
			"name": []string{"jwk-aggregator", "jwk-aggregator-auth"},
			"jwk-aggregator": map[string]interface{}{
				"port": 9876, "origins": []string{a.JWKSURL(), b.JWKSURL()},
				"issuers": map[string]interface{}{a.JWKSURL(): a.Issuer, b.JWKSURL(): b.Issuer},
			},
			"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{
				map[string]interface{}{"paths": []string{"/orders/{id}"}, "audience": []string{"orders"},
					"roles_key": "roles", "roles": []string{"reader"}, "propagate_claims": [][]string{{"sub", "X-User"}}},
			}},
		}},
		"endpoints": []interface{}{
			map[string]interface{}{"endpoint": "/protected", "extra_config": map[string]interface{}{"auth/validator": map[string]interface{}{
				"alg": "RS256", "jwk_url": "http://localhost:9876", "disable_jwk_security": true, "cache": true,
				"audience": []string{"orders"}}}},
			map[string]interface{}{"endpoint": "/orders/{id}", "input_headers": []string{"X-User"}},
		},
	}
}

func write(t *testing.T, c config) string {
	t.Helper()
	raw, _ := json.MarshalIndent(c, "", "  ")
	path := filepath.Join(t.TempDir(), "krakend.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// run runs the command and returns its standard output and exit code.
func run(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Getenv("JWKA_CLI"), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
		out = append(out, ee.Stderr...)
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func endpointAt(c config, i int) map[string]interface{} {
	return c["endpoints"].([]interface{})[i].(map[string]interface{})
}

func server(c config) map[string]interface{} {
	return c["extra_config"].(map[string]interface{})["plugin/http-server"].(map[string]interface{})
}

func TestAGoodConfigurationHasNoFindings(t *testing.T) {
	a, b := provider(t, "a", "RS256"), provider(t, "b", "RS256")
	path := write(t, goodConfig(t, a, b, pluginDir(t, nil)))
	out, code := run(t, "", "check", path)
	if code != 0 || !strings.Contains(out, "no findings") {
		t.Fatalf("check of a good configuration: exit %d\n%s", code, out)
	}
	out, code = run(t, "", "check", "--json", path)
	var doc struct{ Findings []interface{} }
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Findings) != 0 {
		t.Fatalf("check --json: exit %d, want parsable JSON with no findings:\n%s", code, out)
	}
}

func TestEachMistakeIsAFinding(t *testing.T) {
	a, b := provider(t, "a", "RS256"), provider(t, "b", "RS256")
	cases := []struct {
		name   string
		break_ func(c config)
		extra  map[string][]byte
		want   []string
	}{
		{"validator without disable_jwk_security", func(c config) {
			delete(endpointAt(c, 0)["extra_config"].(map[string]interface{})["auth/validator"].(map[string]interface{}), "disable_jwk_security")
		}, nil, []string{`endpoints[0] "/protected"`, "disable_jwk_security"}},
		{"validator without cache", func(c config) {
			delete(endpointAt(c, 0)["extra_config"].(map[string]interface{})["auth/validator"].(map[string]interface{}), "cache")
		}, nil, []string{`"cache": true`}},
		{"alg no origin publishes", func(c config) {
			endpointAt(c, 0)["extra_config"].(map[string]interface{})["auth/validator"].(map[string]interface{})["alg"] = "ES256"
		}, nil, []string{"alg ES256: no origin publishes a key for it", "RSA alg RS256"}},
		{"validator on another loopback port", func(c config) {
			endpointAt(c, 0)["extra_config"].(map[string]interface{})["auth/validator"].(map[string]interface{})["jwk_url"] = "http://localhost:9999"
		}, nil, []string{"port 9999", "listens on 9876"}},
		{"rule path matching no endpoint", func(c config) {
			rule := server(c)["jwk-aggregator-auth"].(map[string]interface{})["rules"].([]interface{})[0].(map[string]interface{})
			rule["paths"] = []string{"/orders/{id}", "/order/{id}"}
		}, nil, []string{`rules[0].paths[1]`, `"/order/{id}" matches no endpoint`}},
		{"claim header not forwarded", func(c config) {
			endpointAt(c, 1)["input_headers"] = []string{"X-Other"}
		}, nil, []string{`endpoints[1] "/orders/{id}" input_headers`, "X-User", "never sees it"}},
		{"unknown aggregator setting", func(c config) {
			server(c)["jwk-aggregator"].(map[string]interface{})["origin"] = "https://typo.example/"
		}, nil, []string{`"jwk-aggregator"`, `unknown setting "origin"`}},
		{"bad rule", func(c config) {
			server(c)["jwk-aggregator-auth"].(map[string]interface{})["rules"] = []interface{}{map[string]interface{}{"paths": []string{"/x"}, "alg": []string{"none"}}}
		}, nil, []string{`"jwk-aggregator-auth"`, "alg"}},
		{"auth block not listed", func(c config) {
			server(c)["name"] = []string{"jwk-aggregator"}
		}, nil, []string{"not listed", "protect nothing"}},
		{"DPoP replay store that does not answer", func(c config) {
			auth := server(c)["jwk-aggregator-auth"].(map[string]interface{})
			auth["dpop_replay"] = map[string]interface{}{"redis": fmt.Sprintf("redis://127.0.0.1:%d/0", closedPort(t))}
			auth["rules"].([]interface{})[0].(map[string]interface{})["dpop"] = map[string]interface{}{"mode": "required"}
		}, nil, []string{`"jwk-aggregator-auth".dpop_replay.redis`, "does not answer", "503"}},
		{"bad DPoP mode", func(c config) {
			server(c)["jwk-aggregator-auth"].(map[string]interface{})["rules"].([]interface{})[0].(map[string]interface{})["dpop"] = map[string]interface{}{"mode": "sometimes"}
		}, nil, []string{`rules[0].dpop.mode`, `"sometimes"`}},
		{"certificate binding without client certificates", func(c config) {
			server(c)["jwk-aggregator-auth"].(map[string]interface{})["rules"].([]interface{})[0].(map[string]interface{})["certificate_binding"] = "allowed"
		}, nil, []string{"tls.enable_mtls", "every bound token is refused"}},
		{"another shared library in the plugin folder", nil,
			map[string][]byte{"libother.so": []byte("\x7fELF not a Go plugin")}, []string{"libother.so", "not a Go plugin"}},
	}
	for _, c := range cases {
		cfg := goodConfig(t, a, b, pluginDir(t, c.extra))
		if c.break_ != nil {
			c.break_(cfg)
		}
		out, code := run(t, "", "check", write(t, cfg))
		if code != 1 {
			t.Errorf("%s: exit %d, want 1\n%s", c.name, code, out)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: the finding does not say %q:\n%s", c.name, w, out)
			}
		}
		if !strings.Contains(out, "fix:") {
			t.Errorf("%s: no fix is given:\n%s", c.name, out)
		}
	}
	if _, code := run(t, "", "check", "/no/such/krakend.json"); code != 2 {
		t.Errorf("an unreadable configuration: exit %d, want 2 (usage)", code)
	}
	if _, code := run(t, "", "check"); code != 2 {
		t.Errorf("no configuration given: exit %d, want 2 (usage)", code)
	}
}

// A plugin built by another Go than the gateway, found by check --krakend.
func TestCheckComparesThePluginsWithTheGateway(t *testing.T) {
	a, b := provider(t, "a", "RS256"), provider(t, "b", "RS256")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport _ \"plugin\"\n\nfunc main() {}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module gw\n\ngo 1.21\n"), 0o644)
	build := exec.Command("go", "build", "-o", "krakend", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOTOOLCHAIN=go1.24.2", "CGO_ENABLED=1", "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building a Go 1.24.2 stand-in gateway: %v\n%s", err, out)
	}
	out, code := run(t, "", "check", "--krakend", filepath.Join(dir, "krakend"), write(t, goodConfig(t, a, b, pluginDir(t, nil))))
	if code != 1 || !strings.Contains(out, "go1.24.2") || !strings.Contains(out, "will NOT load") || !strings.Contains(out, "make build KRAKEND=") {
		t.Fatalf("a plugin of another Go: exit %d\n%s", code, out)
	}
}

func TestKeysShowsKeptAndDroppedKeys(t *testing.T) {
	a, b := provider(t, "a", "RS256"), provider(t, "b", "ES256")
	// A key that is not a signing key (Keycloak publishes one in every realm) is information.
	b.PublishExtra(map[string]interface{}{"kty": "EC", "kid": "enc-1", "use": "enc", "crv": "P-256",
		"x": b.Key(0).PublicJWK()["x"], "y": b.Key(0).PublicJWK()["y"]})
	path := write(t, goodConfig(t, a, b, pluginDir(t, nil)))
	out, code := run(t, "", "keys", path)
	for _, w := range []string{"kept     kid=a-RS256-1", "kept     kid=b-ES256-1", "EC P-256", "skipped  kid=enc-1", "merged set: 2 key(s)", "issuers: " + a.Issuer} {
		if !strings.Contains(out, w) {
			t.Errorf("keys output lacks %q:\n%s", w, out)
		}
	}
	if code != 0 {
		t.Errorf("an encryption key is no finding: exit %d, want 0\n%s", code, out)
	}
	if out, code := run(t, "", "check", path); code != 0 {
		t.Errorf("check with an encryption key published: exit %d, want 0\n%s", code, out)
	}
	// A signing key KrakenD cannot use is one.
	b.PublishExtra(map[string]interface{}{"kty": "EC", "kid": "k1-1", "crv": "secp256k1", "x": b.Key(0).PublicJWK()["x"], "y": b.Key(0).PublicJWK()["y"]})
	out, code = run(t, "", "keys", path)
	if code != 1 || !strings.Contains(out, "DROPPED  kid=k1-1") {
		t.Errorf("a dropped signing key is a finding: exit %d, want 1\n%s", code, out)
	}
	out, _ = run(t, "", "keys", "--json", path)
	var doc struct {
		Origins []struct {
			Dropped []struct {
				Kid, Reason string
				Fault       bool
			}
		}
		MergedKeys int `json:"merged_keys"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.MergedKeys != 2 || len(doc.Origins) != 2 || len(doc.Origins[1].Dropped) != 2 {
		t.Fatalf("keys --json: %v\n%s", err, out)
	}
	if d := doc.Origins[1].Dropped; d[0].Fault == d[1].Fault {
		t.Errorf("keys --json: the encryption key and the unusable signing key are told apart by \"fault\": %+v", d)
	}
}

func TestExplainGivesTheHandlersReason(t *testing.T) {
	a, b := provider(t, "a", "RS256"), provider(t, "b", "RS256")
	unbound := provider(t, "u", "RS256")
	path := write(t, goodConfig(t, a, b, pluginDir(t, nil)))
	now := time.Now().Unix()
	claims := func(extra map[string]interface{}) map[string]interface{} {
		c := map[string]interface{}{"iss": a.Issuer, "sub": "alice", "aud": "orders", "roles": []string{"reader"}, "iat": now, "exp": now + 600}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	good := a.Key(0).Sign(claims(nil), nil)
	parts := strings.Split(good, ".")
	for _, c := range []struct{ name, token, want string }{
		{"accepted", good, "verdict: accepted"},
		{"malformed", "abc.def", "malformed token"},
		{"too large", strings.Repeat("a", 20000), "larger than 16384 bytes"},
		{"alg none", "eyJhbGciOiJub25lIn0." + parts[1] + ".", `algorithm "none" not allowed`},
		{"unknown kid", a.Key(0).Sign(claims(nil), map[string]interface{}{"kid": "nope"}), `no key with kid "nope"`},
		{"bad signature", parts[0] + "." + parts[1] + "." + strings.Split(b.Key(0).Sign(claims(nil), nil), ".")[2], "signature does not verify"},
		{"expired", a.Key(0).Sign(claims(map[string]interface{}{"exp": now - 60}), nil), "token expired"},
		{"no exp", a.Key(0).Sign(claims(map[string]interface{}{"exp": nil}), nil), "token has no exp"},
		{"not yet valid", a.Key(0).Sign(claims(map[string]interface{}{"nbf": now + 600}), nil), "not valid yet (nbf)"},
		{"issued in the future", a.Key(0).Sign(claims(map[string]interface{}{"iat": now + 600}), nil), "issued in the future (iat)"},
		{"wrong audience", a.Key(0).Sign(claims(map[string]interface{}{"aud": "billing"}), nil), "audience not accepted"},
		{"issuer bound elsewhere", a.Key(0).Sign(claims(map[string]interface{}{"iss": b.Issuer}), nil), "no key fits the token"},
		{"issuer not bound", unbound.Key(0).Sign(claims(map[string]interface{}{"iss": unbound.Issuer}), nil), "is not bound to any origin"},
		{"missing role", a.Key(0).Sign(claims(map[string]interface{}{"roles": []string{"guest"}}), nil), "forbidden (403): missing role"},
	} {
		out, code := run(t, "", "explain", "--path", "/orders/42", path, c.token)
		if !strings.Contains(out, c.want) {
			t.Errorf("%s: explain does not say %q:\n%s", c.name, c.want, out)
		}
		wantCode := 1
		if c.name == "accepted" {
			wantCode = 0
		}
		if code != wantCode {
			t.Errorf("%s: exit %d, want %d", c.name, code, wantCode)
		}
		if strings.Contains(out, parts[2]) {
			t.Errorf("%s: the signature is printed", c.name)
		}
	}
	// The token on standard input; the validator endpoint explained with the merged set.
	out, code := run(t, good, "explain", "--path", "/protected", path, "-")
	if code != 0 || !strings.Contains(out, `auth/validator of endpoints[0] "/protected"`) || !strings.Contains(out, "KrakenD uses this key") {
		t.Errorf("explain on a validator endpoint: exit %d\n%s", code, out)
	}
	es := provider(t, "c", "ES256").Key(0).Sign(claims(nil), nil)
	if out, _ := run(t, "", "explain", "--path", "/protected", path, es); !strings.Contains(out, `alg "ES256" is not the endpoint's "RS256"`) {
		t.Errorf("explain of an alg mismatch on a validator endpoint:\n%s", out)
	}
	out, code = run(t, "", "explain", "--json", "--path", "/orders/42", path, good)
	var doc struct {
		Handler struct{ Verdict string }
		Claims  map[string]interface{}
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.Handler.Verdict != "accepted" || doc.Claims["sub"] != "alice" {
		t.Errorf("explain --json: exit %d\n%s", code, out)
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// explain says why a DPoP request was refused: the token bound to a key, the proof and the URL
// the client addressed given as the gateway would see them.
func TestExplainSaysWhyADPoPRequestWasRefused(t *testing.T) {
	a, b := provider(t, "a", "RS256"), provider(t, "b", "RS256")
	cfg := goodConfig(t, a, b, pluginDir(t, nil))
	auth := server(cfg)["jwk-aggregator-auth"].(map[string]interface{})
	auth["rules"] = append(auth["rules"].([]interface{}), map[string]interface{}{"paths": []string{"/pay/{id}"}, "dpop": map[string]interface{}{"mode": "required", "alg": []string{"ES256"}}})
	path := write(t, cfg)
	key := providers.NewDPoPKey()
	now := time.Now().Unix()
	token := a.Key(0).Sign(map[string]interface{}{"iss": a.Issuer, "sub": "alice", "exp": now + 600, "cnf": map[string]interface{}{"jkt": key.Thumbprint()}}, nil)
	url := "https://api.example.com/pay/1"
	for _, c := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"accepted", []string{"--url", url, "--dpop", key.Proof("GET", url, token, nil)}, "verdict: accepted", 0},
		{"a proof for POST", []string{"--url", url, "--dpop", key.Proof("POST", url, token, nil)}, "DPoP proof: proof htm is not the request's method", 1},
		{"a proof for another URL", []string{"--url", url, "--dpop", key.Proof("GET", "https://api.example.com/pay/2", token, nil)}, `proof htu is not "https://api.example.com/pay/1"`, 1},
		{"another key", []string{"--url", url, "--dpop", providers.NewDPoPKey().Proof("GET", url, token, nil)}, "not the one the token is bound to", 1},
		{"as a bearer token", nil, "a DPoP-bound token sent without the DPoP scheme", 1},
		{"the challenge", []string{"--url", url, "--dpop", "not-a-proof"}, `WWW-Authenticate: DPoP error="invalid_dpop_proof", algs="ES256"`, 1},
	} {
		args := append([]string{"explain", "--path", "/pay/1"}, c.args...)
		out, code := run(t, "", append(args, path, token)...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, want %d saying %q:\n%s", c.name, code, c.code, c.want, out)
		}
	}
}

// A token accepted through issuer_patterns is explained by the path it took: the pattern that
// matched, the jwks_uri its discovery found, the key that verified it.
func TestExplainShowsTheDynamicIssuersPath(t *testing.T) {
	realms, err := idp.StartRealms(0, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(realms.Close)
	key := realms.Create("acme", "ES256")
	cfg := config{
		"version": 3,
		"plugin":  map[string]interface{}{"pattern": ".so", "folder": pluginDir(t, nil) + "/"},
		"extra_config": map[string]interface{}{"plugin/http-server": map[string]interface{}{
			"name":                []string{"jwk-aggregator", "jwk-aggregator-auth"},
			"jwk-aggregator":      map[string]interface{}{"port": 9876, "issuer_patterns": []string{realms.Pattern()}},
			"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/t/{realm}"}}}},
		}},
		"endpoints": []interface{}{map[string]interface{}{"endpoint": "/t/{realm}"}},
	}
	path := write(t, cfg)
	out, code := run(t, "", "explain", "--path", "/t/acme", path, realms.Token("acme", key, "alice", "", time.Hour))
	for _, w := range []string{"verdict: accepted", "+ " + realms.Issuer("acme") + "/protocol/openid-connect/certs",
		`issuer_patterns[0] "` + realms.Pattern() + `" matched "` + realms.Issuer("acme") + `"`, `the key with kid "` + key.Kid + `" is used`} {
		if !strings.Contains(out, w) {
			t.Errorf("explain lacks %q:\n%s", w, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	out, code = run(t, "", "explain", "--path", "/t/acme", path, realms.Token("acme", idp.NewKey("other", "ES256"), "alice", "", time.Hour))
	if code != 1 || !strings.Contains(out, `no key with kid "other"`) || !strings.Contains(out, "issuer_patterns[0]") {
		t.Errorf("a key the issuer does not publish: exit %d\n%s", code, out)
	}
}

// The operator's command against real Keycloak, Hydra and oidc-provider: a correct configuration
// checks clean (every Keycloak realm publishes an encryption key: information, not a finding),
// keys lists each provider's keys, and explain accepts a token of each, showing the path it took.
func TestCommandAgainstRealProviders(t *testing.T) {
	env := providers.Require(t)
	must := providers.Must(t)
	realm := env.Keycloak.NewRealm(t, "RS256")
	tenant := env.Keycloak.NewRealm(t, "ES256")
	id, secret := fmt.Sprintf("cli-%d", time.Now().UnixNano()), "cli-secret-0123456789"
	if err := env.Hydra.CreateClient(providers.Client{ID: id, Secret: secret, Audience: "api"}); err != nil {
		t.Fatal(err)
	}
	cfg := config{
		"version": 3,
		"plugin":  map[string]interface{}{"pattern": ".so", "folder": pluginDir(t, nil) + "/"},
		"extra_config": map[string]interface{}{"plugin/http-server": map[string]interface{}{
			"name": []string{"jwk-aggregator", "jwk-aggregator-auth"},
			"jwk-aggregator": map[string]interface{}{
				"port":            9876,
				"origins":         []string{realm.JWKSURL(), env.Hydra.JWKSURL(), env.OIDCProvider.JWKSURL()},
				"issuer_patterns": []string{env.Keycloak.URL + "/realms/*"},
			},
			"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/multi"}}}},
		}},
		"endpoints": []interface{}{
			map[string]interface{}{"endpoint": "/v", "extra_config": map[string]interface{}{"auth/validator": map[string]interface{}{
				"alg": "RS256", "jwk_url": "http://localhost:9876", "disable_jwk_security": true, "cache": true}}},
			map[string]interface{}{"endpoint": "/multi"},
		},
	}
	path := write(t, cfg)
	if out, code := run(t, "", "check", path); code != 0 || !strings.Contains(out, "no findings") {
		t.Errorf("check of a correct configuration over real providers: exit %d\n%s", code, out)
	}
	out, code := run(t, "", "keys", path)
	if code != 0 || !strings.Contains(out, "skipped ") || !strings.Contains(out, "encryption_key") {
		t.Errorf("keys: exit %d, want 0 with Keycloak's encryption key skipped\n%s", code, out)
	}
	for name, tok := range map[string]string{
		"Keycloak":      must(realm.Token("RS256")),
		"Hydra":         must(env.Hydra.Token(id, secret, "api")),
		"oidc-provider": must(env.OIDCProvider.Token("RS256", "")),
	} {
		for _, p := range []string{"/v", "/multi"} {
			if out, code := run(t, "", "explain", "--path", p, path, tok); code != 0 || !strings.Contains(out, "verdict: accepted") {
				t.Errorf("explain of a %s token on %s: exit %d\n%s", name, p, code, out)
			}
		}
	}
	out, code = run(t, "", "explain", "--path", "/multi", path, must(tenant.Token("ES256")))
	if code != 0 || !strings.Contains(out, "+ "+tenant.JWKSURL()) || !strings.Contains(out, `issuer_patterns[0]`) {
		t.Errorf("explain of a realm's token through issuer_patterns: exit %d\n%s", code, out)
	}
}
