package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/providers"
)

// recordingBackend keeps the Authorization and Cookie headers of the last request it received.
type recordingBackend struct {
	URL   string
	mu    sync.Mutex
	hits  int
	authz []string
	jar   []string
	hdr   http.Header
}

func newRecordingBackend(t *testing.T) *recordingBackend {
	b := &recordingBackend{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.hits++
		b.authz, b.jar, b.hdr = r.Header.Values("Authorization"), r.Header.Values("Cookie"), r.Header.Clone()
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"backend":"ok"}`)
	}))
	t.Cleanup(srv.Close)
	b.URL = srv.URL
	return b
}

func (b *recordingBackend) last() (int, []string, []string, http.Header) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits, b.authz, b.jar, b.hdr
}

// Overlapping rules all decide, under the default router settings and with remove_extra_slash:
// /orders/export is served by its own endpoint, so the rule of /orders/export (a scope, a claim
// header) applies beside the rule of /orders/{id}, whatever spelling reaches it. And an audience
// list copied from auth/validator means "all of these", as it does there.
func TestOverlappingRulesEachDecide(t *testing.T) {
	p := provider(t, "idp-a", "RS256")
	now := time.Now().Unix()
	sign := func(extra map[string]interface{}) string {
		c := map[string]interface{}{"iss": p.Issuer, "sub": "alice", "exp": now + 600}
		for k, v := range extra {
			c[k] = v
		}
		return p.Key(0).Sign(c, nil)
	}
	plain, export := sign(nil), sign(map[string]interface{}{"scope": "export"})
	be := newRecordingBackend(t)
	for _, name := range []string{"defaults", "remove_extra_slash"} {
		t.Run(name, func(t *testing.T) {
			aggPort := freePort(t)
			server := map[string]interface{}{
				"name":           []string{"jwk-aggregator", "jwk-aggregator-auth"},
				"jwk-aggregator": map[string]interface{}{"port": aggPort, "origins": []string{p.JWKSURL()}},
				"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{
					map[string]interface{}{"paths": []string{"/orders/{id}"}, "propagate_claims": [][]string{{"sub", "X-User"}}},
					map[string]interface{}{"paths": []string{"/orders/export"}, "scopes": []string{"export"}, "propagate_claims": [][]string{{"scope", "X-Export-Scope"}}},
					map[string]interface{}{"paths": []string{"/aud"}, "audience": []string{"api", "web"}},
				}},
			}
			g := startGatewayService(t, aggPort, server, []endpoint{
				{path: "/orders/{id}", backend: be.URL, inputHeaders: []string{"*"}},
				{path: "/orders/export", backend: be.URL, inputHeaders: []string{"*"}},
				{path: "/aud", backend: be.URL},
			}, map[string]interface{}{"router": routerSettings[name]})
			for _, target := range []string{"/orders/export", "/orders//export", "/orders/x/../export", "//orders/export", "/orders/./export"} {
				before, _, _, _ := be.last()
				code := raw(t, g.port, "GET", target, "Authorization: Bearer "+plain)
				if n, _, _, _ := be.last(); n != before {
					t.Errorf("GET %s with a token lacking the export scope reached the backend (answer %d)", target, code)
				}
			}
			if code := raw(t, g.port, "GET", "/orders/export", "Authorization: Bearer "+export, "X-Export-Scope: forged"); code != 200 {
				t.Fatalf("GET /orders/export with the export scope: %d, want 200", code)
			}
			_, _, _, h := be.last()
			if got := h.Values("X-Export-Scope"); len(got) != 1 || got[0] != "export" {
				t.Errorf("the /orders/export rule's claim header at the backend: %q, want [export]", got)
			}
			if got := h.Values("X-User"); len(got) != 1 || got[0] != "alice" {
				t.Errorf("the /orders/{id} rule's claim header at the backend: %q, want [alice]", got)
			}
			if code := raw(t, g.port, "GET", "/orders/1", "Authorization: Bearer "+plain); code != 200 {
				t.Errorf("GET /orders/1 with a token: %d, want 200", code)
			}
			if code := g.call("/aud", sign(map[string]interface{}{"aud": "api"})); code != 401 {
				t.Errorf("a token with one of two listed audiences: %d, want 401 (every listed audience, as auth/validator)", code)
			}
			if code := g.call("/aud", sign(map[string]interface{}{"aud": []string{"api", "web"}})); code != 200 {
				t.Errorf("a token with both audiences: %d, want 200", code)
			}
		})
	}
}

// bearerAsBackendsRead reads an Authorization header as a lenient backend does: the scheme in any
// case, any spaces or tabs after it.
func bearerAsBackendsRead(v string) string {
	v = strings.Trim(v, " \t")
	i := strings.IndexAny(v, " \t")
	if i < 0 || !strings.EqualFold(v[:i], "bearer") {
		return ""
	}
	return strings.Trim(v[i:], " \t")
}

// cookieReaders reads the access_token cookie of each request's Cookie headers as three real
// parsers do: Go's net/http, Python's http.cookies, and Node's `cookies` (Koa's, shipped with the
// oidc-provider the tests run). Each result is every value that parser reads.
func cookieReaders(t *testing.T, jars [][]string) map[string][][]string {
	out := map[string][][]string{}
	for _, jar := range jars {
		var vals []string
		for _, c := range (&http.Request{Header: http.Header{"Cookie": jar}}).Cookies() {
			if c.Name == "access_token" {
				vals = append(vals, c.Value)
			}
		}
		out["Go net/http"] = append(out["Go net/http"], vals)
	}
	clean := make([][]string, len(jars))
	for i, jar := range jars {
		clean[i] = append([]string{}, jar...)
	}
	in, _ := json.Marshal(clean)
	py := `
import json, sys
from http.cookies import SimpleCookie
out = []
for jar in json.load(sys.stdin):
    vals = []
    for h in jar:
        c = SimpleCookie()
        try:
            c.load(h)
        except Exception:
            continue
        if "access_token" in c:
            vals.append(c["access_token"].value)
    out.append(vals)
print(json.dumps(out))
`
	run := func(name string, cmd *exec.Cmd) {
		cmd.Stdin = strings.NewReader(string(in))
		cmd.Stderr = &strings.Builder{}
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, cmd.Stderr)
		}
		var res [][]string
		if err := json.Unmarshal(b, &res); err != nil || len(res) != len(jars) {
			t.Fatalf("%s: %v: %s", name, err, b)
		}
		out[name] = res
	}
	run("Python http.cookies", exec.Command("python3", "-c", py))
	server := os.Getenv("OIDC_PROVIDER_SERVER")
	if server == "" {
		t.Fatal("OIDC_PROVIDER_SERVER is not set: run through `make test` (tests/providers/run.sh)")
	}
	js := `
const Cookies = require(process.argv[1]);
let data = ""; process.stdin.on("data", d => data += d); process.stdin.on("end", () => {
  const out = JSON.parse(data).map(jar => {
    // Node joins repeated Cookie headers with "; ".
    const v = new Cookies({headers: {cookie: jar.join("; ")}}, null).get("access_token");
    return v === undefined ? [] : [v];
  });
  console.log(JSON.stringify(out));
});`
	run("Node cookies (Koa)", exec.Command("node", "-e", js, filepath.Join(filepath.Dir(server), "node_modules", "cookies")))
	return out
}

// Credentials spelled as other parsers read them: whatever header and cookie spellings a request
// carries, when the gateway lets it through, every token that Go's, Python's or Node's parsers (or
// a lenient bearer reader) find in what the backend received is the one that was verified.
func TestCredentialSpellingsAsBackendsReadThem(t *testing.T) {
	p := provider(t, "idp-a", "RS256")
	now := time.Now().Unix()
	valid := p.Key(0).Sign(map[string]interface{}{"iss": p.Issuer, "sub": "alice", "exp": now + 600}, nil)
	forged := p.Key(0).Sign(map[string]interface{}{"iss": p.Issuer, "sub": "mallory", "exp": now + 600}, nil)
	forged = forged[:strings.LastIndex(forged, ".")+1] + "Zm9yZ2Vk"
	be := newRecordingBackend(t)
	aggPort := freePort(t)
	server := map[string]interface{}{
		"name":                []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator":      map[string]interface{}{"port": aggPort, "origins": []string{p.JWKSURL()}},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/me"}}}},
	}
	g := startGatewayWith(t, aggPort, server, []endpoint{{path: "/me", backend: be.URL, inputHeaders: []string{"*"}}})
	V, F := valid, forged
	headers := []string{"", "Bearer " + V, "Bearer\t" + V, "bearer  " + V, "Bearer " + F, "Bearer\t" + F, "bEaReR " + F,
		"BEARER \t" + F, "Basic Zm9vOmJhcg==", "Bearer", "DPoP " + F}
	jars := [][]string{nil, {"access_token=" + V}, {"access_token =" + F}, {" access_token=" + F + "; access_token=" + V},
		{`access_token="` + F + `"`}, {"Access_Token=" + F + "; access_token=" + V}, {"access.token=" + F + "; access_token=" + V},
		{"access_token=" + V + "; access_token =" + F}, {"access_token=" + V + ", access_token=" + F},
		{"access_token=" + V, "access_token=" + F}, {"a=1; access_token=" + F}, {"access_token=" + V + "; access_token=" + V},
		{"access_token\t=" + F + ";access_token=" + V}, {"access_token= " + F}}
	type result struct {
		header string
		jar    []string
		code   int
		authz  []string
		got    []string
	}
	var passed []result
	var gotJars [][]string
	for _, h := range headers {
		for _, jar := range jars {
			var hs []string
			if h != "" {
				hs = append(hs, "Authorization: "+h)
			}
			for _, c := range jar {
				hs = append(hs, "Cookie: "+c)
			}
			before, _, _, _ := be.last()
			code := raw(t, g.port, "GET", "/me", hs...)
			n, authz, got, _ := be.last()
			if n == before {
				continue
			}
			if code != 200 {
				t.Errorf("Authorization %q, Cookie %q: the backend was called, answer %d", h, jar, code)
			}
			passed = append(passed, result{h, jar, code, authz, got})
			gotJars = append(gotJars, got)
		}
	}
	if len(passed) < 6 {
		t.Fatalf("only %d spellings reached the backend; the plain ones (a bearer header, the cookie, both) must", len(passed))
	}
	readers := cookieReaders(t, gotJars)
	for i, r := range passed {
		for _, a := range r.authz {
			if tok := bearerAsBackendsRead(a); tok != "" && tok != valid {
				t.Errorf("Authorization %q, Cookie %q: the backend received Authorization %q, another token than the verified one", r.header, r.jar, a)
			}
		}
		for name, res := range readers {
			for _, v := range res[i] {
				if v != valid {
					t.Errorf("Authorization %q, Cookie %q: %s reads access_token %.20q... at the backend, not the verified token", r.header, r.jar, name, v)
				}
			}
		}
	}
	t.Logf("%d spellings tried, %d reached the backend, each holding only the verified token as Go, Python and Node read it", len(headers)*len(jars), len(passed))
}

// The request path and the refusal's reason come from the client: logged quoted, so that
// /orders/%0Afake cannot write a log line of its own.
func TestRefusalsAreLoggedWithoutLineBreaks(t *testing.T) {
	p := provider(t, "idp-a", "RS256")
	aggPort := freePort(t)
	server := map[string]interface{}{
		"name": []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator": map[string]interface{}{"port": aggPort, "origins": []string{p.JWKSURL()},
			"issuers": []interface{}{map[string]interface{}{"origin": p.JWKSURL(), "issuer": p.Issuer}}},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/orders/*"}}}},
	}
	g := startGatewayWith(t, aggPort, server, []endpoint{{path: "/orders/{id}"}})
	// An issuer with a line break in it, bound to no origin: the reason names it.
	tok := p.Key(0).Sign(map[string]interface{}{"iss": "https://x\nINJECTED-ISS", "exp": time.Now().Unix() + 600}, nil)
	if code := raw(t, g.port, "GET", "/orders/%0AINJECTED-PATH", "Authorization: Bearer garbage"); code != 401 {
		t.Errorf("a bad token: %d, want 401", code)
	}
	if code := raw(t, g.port, "GET", "/orders/1", "Authorization: Bearer "+tok); code != 401 {
		t.Errorf("a token of an unbound issuer: %d, want 401", code)
	}
	if len(waitLog(g, "refused", `INJECTED-PATH`)) == 0 {
		t.Fatalf("no DEBUG line for the refusal:\n%s", g.out.String())
	}
	for _, line := range strings.Split(g.out.String(), "\n") {
		if strings.HasPrefix(line, "INJECTED") {
			t.Errorf("a client-chosen text started a log line: %q", line)
		}
	}
}

// Forged tokens naming real Keycloak realms cost Keycloak at most the discovery budget: a
// discovery gives its charge back only when a token verifies with the keys it found.
func TestForgedTokensNamingRealRealmsCostTheBudgetOnly(t *testing.T) {
	env := providers.Require(t)
	var realms []*providers.Realm
	for i := 0; i < 6; i++ {
		realms = append(realms, env.Keycloak.NewRealm(t, "ES256"))
	}
	aggPort := freePort(t)
	server := map[string]interface{}{
		"name": []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator": map[string]interface{}{
			"port": aggPort, "issuer_patterns": []string{env.Keycloak.URL + "/realms/*"}, "discoveries_per_minute": 2,
		},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/t"}}}},
	}
	g := startGatewayWith(t, aggPort, server, []endpoint{{path: "/t"}})
	var real []string
	for _, r := range realms {
		tok := providers.Must(t)(r.Token("ES256"))
		real = append(real, tok)
		// The realm's own header and claims, a made-up signature.
		forged := tok[:strings.LastIndex(tok, ".")+1] + strings.Repeat("A", 86)
		if code := g.call("/t", forged); code != 401 {
			t.Errorf("a forged token naming realm %s: %d, want 401", r.Name, code)
		}
	}
	metrics := getBody(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", aggPort))
	var ok, limited int
	for _, line := range strings.Split(metrics, "\n") {
		fmt.Sscanf(line, `jwk_aggregator_discoveries_total{result="ok"} %d`, &ok)
		fmt.Sscanf(line, `jwk_aggregator_discoveries_total{result="rate_limited"} %d`, &limited)
	}
	if ok > 2 || limited < 4 {
		t.Errorf("6 forged tokens naming 6 real realms: %d discoveries (2 requests each to Keycloak), %d rate-limited; want at most 2 and at least 4", ok, limited)
	}
	// A real token verifies, which gives its discovery's charge back for the next real realm.
	if code := g.call("/t", real[0]); code != 200 {
		t.Errorf("a real token of the first realm: %d, want 200", code)
	}
	if code := g.call("/t", real[5]); code != 200 {
		t.Errorf("a real token of the last realm after the charge came back: %d, want 200", code)
	}
}

// A `discover` issuer whose document names the aggregator's own merged set as its jwks_uri would
// bind every origin's keys to that issuer: refused, and so is a token of that issuer signed with
// another origin's key.
func TestADiscoveredJWKSURIMayNotBeTheAggregatorsOwnSet(t *testing.T) {
	p := provider(t, "idp-a", "RS256")
	realms := startRealms(t)
	realms.Create("evil", "ES256")
	aggPort := freePort(t)
	realms.SetJWKSURI("evil", fmt.Sprintf("http://127.0.0.1:%d/", aggPort))
	server := map[string]interface{}{
		"name": []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator": map[string]interface{}{
			"port": aggPort, "origins": []string{p.JWKSURL()}, "discover": []string{realms.Issuer("evil")},
			"issuers": []interface{}{map[string]interface{}{"origin": p.JWKSURL(), "issuer": p.Issuer}},
		},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/p"}}}},
	}
	g := startGatewayWith(t, aggPort, server, []endpoint{{path: "/p"}})
	now := time.Now().Unix()
	if code := g.call("/p", p.Key(0).Sign(map[string]interface{}{"iss": p.Issuer, "exp": now + 600}, nil)); code != 200 {
		t.Fatalf("a token of the configured origin: %d, want 200", code)
	}
	if !g.waitOriginState(realms.Issuer("evil"), "down") {
		t.Errorf("the discover issuer naming the aggregator's own set did not fail")
	}
	if lines := waitLog(g, "own merged set"); len(lines) == 0 {
		t.Errorf("no log line says why the jwks_uri was refused:\n%s", g.out.String())
	}
	if code := g.call("/p", p.Key(0).Sign(map[string]interface{}{"iss": realms.Issuer("evil"), "exp": now + 600}, nil)); code != 401 {
		t.Errorf("a token of the discover issuer signed with another origin's key: %d, want 401", code)
	}
}

// A near miss of a pattern's issuer (a trailing slash, an explicit port, upper case, a query) is
// refused, never verified by the unbound origins' keys.
func TestANearMissOfAPatternsIssuerIsRefused(t *testing.T) {
	p := provider(t, "idp-a", "RS256")
	realms := startRealms(t)
	realms.Create("acme", "ES256")
	aggPort := freePort(t)
	server := map[string]interface{}{
		"name": []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator": map[string]interface{}{
			"port": aggPort, "origins": []string{p.JWKSURL()}, "issuer_patterns": []string{realms.Pattern()},
		},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/p"}}}},
	}
	g := startGatewayWith(t, aggPort, server, []endpoint{{path: "/p"}})
	now := time.Now().Unix()
	sign := func(iss string) string {
		return p.Key(0).Sign(map[string]interface{}{"iss": iss, "exp": now + 600}, nil)
	}
	if code := g.call("/p", sign("https://other.example/")); code != 200 {
		t.Fatalf("a token of another issuer, verified by the unbound origin: %d, want 200", code)
	}
	acme := realms.Issuer("acme")
	for _, iss := range []string{acme + "/", acme + "?x=1", strings.Replace(acme, "http://", "HTTP://", 1), acme + "#f"} {
		if code := g.call("/p", sign(iss)); code != 401 {
			t.Errorf("iss %q, a near miss of the pattern, signed by the unbound origin: %d, want 401", iss, code)
		}
	}
	if len(waitLog(g, "another spelling")) == 0 {
		t.Errorf("no DEBUG line says why:\n%s", g.out.String())
	}
	if n := realms.Requests(); n != 0 {
		t.Errorf("near misses made %d requests to the provider; want 0", n)
	}
}
