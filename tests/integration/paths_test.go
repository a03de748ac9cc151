package integration

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingBackend counts the requests it receives and answers with the headers it got.
func countingBackend(t *testing.T) (string, *atomic.Int64, *atomic.Value) {
	var hits atomic.Int64
	var last atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		last.Store(r.Header.Clone())
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"secret":"orders"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &hits, &last
}

// raw sends one request exactly as written (no client cleans or escapes its target or header
// names) and returns the status code.
func raw(t *testing.T, port int, method, target string, headers ...string) int {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The router settings of KrakenD (lura's router/gin) that change which endpoint a path reaches or
// whether a path is redirected, alone and together.
var routerSettings = map[string]map[string]interface{}{
	"defaults":           {},
	"remove_extra_slash": {"remove_extra_slash": true},
	"no redirects, extra slashes removed": {
		"remove_extra_slash": true, "disable_redirect_fixed_path": true, "disable_redirect_trailing_slash": true,
	},
	"no path decoding check": {"disable_path_decoding": true, "remove_extra_slash": true},
	"auto_options":           {"auto_options": true},
	"every option": {
		"remove_extra_slash": true, "disable_redirect_fixed_path": true, "disable_redirect_trailing_slash": true,
		"disable_path_decoding": true, "disable_handle_method_not_allowed": true, "auto_options": true,
	},
}

// Spellings of the protected /orders/1 and /users/1/orders/2: dot segments, repeated slashes, percent-encoded dots and
// slashes, trailing slashes, case, `;` parameters, backslashes, encoded letters, and routes
// through the unprotected endpoint.
var pathShapes = []string{
	"/orders/1", "/x/../orders/1", "/orders/./1", "/./orders/1", "/orders/1/.", "/orders/1/x/..",
	"//orders/1", "/orders//1", "/orders/1/", "/orders/1//", "///orders///1///",
	"/%2e%2e/orders/1", "/x/%2e%2e/orders/1", "/x/%2E%2E/orders/1", "/orders/%2e/1", "/orders/.%2e/../1",
	"/x/..%2forders/1", "/x/..%2Forders/1", "/orders%2F1", "/orders%2f1", "/%2forders/1", "/orders/1%2f",
	"/ORDERS/1", "/Orders/1", "/orders/1;x", "/orders;x/1", "/orders/1%3bx",
	"/public/../orders/1", "/public/x/../../orders/1", "/public/%2e%2e/orders/1", "/public/..%2f..%2forders/1",
	"/orders\\1", "/x/..\\orders/1", "/%6frders/1", "/orders/%31", "/orders/..", "/orders/.%2e",
	"/orders/1?x=1", "/orders/1?../../public/x", "http://127.0.0.1/x/../orders/1",
	// A parameter given an empty segment (found by FuzzRouterPaths).
	"/users//orders/1", "/users/1/orders/", "/users//orders/", "/users/x/../1/orders/2",
}

// Fail closed whatever the router settings: no spelling of a protected endpoint's path reaches
// its backend without a token (Envoy's CVE-2019-9901 and CVE-2021-29492 are this hole), and the
// canonical paths keep working.
func TestNoPathSpellingReachesAProtectedBackendWithoutAToken(t *testing.T) {
	p := provider(t, "idp-a", "RS256")
	token := p.Key(0).Sign(map[string]interface{}{"iss": p.Issuer, "sub": "alice", "exp": time.Now().Unix() + 600}, nil)
	orders, hits, _ := countingBackend(t)
	for name, router := range routerSettings {
		t.Run(name, func(t *testing.T) {
			aggPort := freePort(t)
			server := map[string]interface{}{
				"name":                []string{"jwk-aggregator", "jwk-aggregator-auth"},
				"jwk-aggregator":      map[string]interface{}{"port": aggPort, "origins": []string{p.JWKSURL()}},
				"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/orders/{id}", "/users/{id}/orders/{oid}"}}}},
			}
			g := startGatewayService(t, aggPort, server, []endpoint{
				{path: "/orders/{id}", backend: orders},
				{path: "/users/{id}/orders/{oid}", backend: orders},
				{path: "/orders/{id}", method: "POST", backend: orders},
				{path: "/public/{x}"},
			}, map[string]interface{}{"router": router})
			before := hits.Load()
			for _, target := range pathShapes {
				for _, method := range []string{"GET", "POST", "OPTIONS", "HEAD", "get"} {
					code := raw(t, g.port, method, target)
					if n := hits.Load(); n != before {
						t.Errorf("%s %s without a token reached the protected backend (answer %d)", method, target, code)
						before = n
					}
				}
			}
			if code := raw(t, g.port, "GET", "/orders/1", "Authorization: Bearer "+token); code != 200 || hits.Load() != before+1 {
				t.Errorf("GET /orders/1 with a token: %d, want 200 from the backend", code)
			}
			if code := raw(t, g.port, "GET", "/public/x"); code != 200 {
				t.Errorf("GET /public/x: %d, want 200", code)
			}
		})
	}
}

// A client can never set a header the backend reads as a claim: every spelling of a
// propagate_claims header (case, '-' or '_', repeated) is removed before the claim is set.
func TestClientCopiesOfClaimHeadersNeverReachTheBackend(t *testing.T) {
	p := provider(t, "idp-a", "RS256")
	token := p.Key(0).Sign(map[string]interface{}{"iss": p.Issuer, "sub": "alice", "exp": time.Now().Unix() + 600}, nil)
	be, _, last := countingBackend(t)
	aggPort := freePort(t)
	server := map[string]interface{}{
		"name":           []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator": map[string]interface{}{"port": aggPort, "origins": []string{p.JWKSURL()}},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{
			"paths": []string{"/me"}, "propagate_claims": [][]string{{"sub", "X-User"}, {"missing", "X-Role"}},
		}}},
	}
	g := startGatewayWith(t, aggPort, server, []endpoint{{path: "/me", backend: be, inputHeaders: []string{"*"}}})
	code := raw(t, g.port, "GET", "/me", "Authorization: Bearer "+token,
		"X_User: mallory", "x-user: mallory2", "X_USER: mallory3", "X-USER: mallory4", "x_uSeR: mallory5",
		"X_Role: admin", "x-role: admin")
	if code != 200 {
		t.Fatalf("GET /me with a token: %d", code)
	}
	h, _ := last.Load().(http.Header)
	for k, v := range h {
		folded := strings.ReplaceAll(strings.ToLower(k), "_", "-")
		if folded == "x-role" || (folded == "x-user" && (k != "X-User" || len(v) != 1 || v[0] != "alice")) {
			t.Errorf("the backend received %s: %q", k, v)
		}
	}
	if got := h.Get("X-User"); got != "alice" {
		t.Errorf("X-User at the backend: %q, want the claim", got)
	}
}

// Credentials that say two things are refused whole, never half verified.
func TestAmbiguousCredentialsAreRefused(t *testing.T) {
	p := provider(t, "idp-a", "RS256")
	sign := func(sub string) string {
		return p.Key(0).Sign(map[string]interface{}{"iss": p.Issuer, "sub": sub, "exp": time.Now().Unix() + 600}, nil)
	}
	alice, bob := sign("alice"), sign("bob")
	be, hits, _ := countingBackend(t)
	aggPort := freePort(t)
	server := map[string]interface{}{
		"name":                []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator":      map[string]interface{}{"port": aggPort, "origins": []string{p.JWKSURL()}},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{map[string]interface{}{"paths": []string{"/me"}}}},
	}
	g := startGatewayWith(t, aggPort, server, []endpoint{{path: "/me", backend: be, inputHeaders: []string{"*"}}})
	for name, headers := range map[string][]string{
		"two Authorization headers":            {"Authorization: Bearer " + alice, "Authorization: Bearer " + bob},
		"the same token twice":                 {"Authorization: Bearer " + alice, "Authorization: Bearer " + alice},
		"a valid and a garbage header":         {"Authorization: Bearer " + alice, "Authorization: Bearer x.y.z"},
		"header and cookie, different tokens":  {"Authorization: Bearer " + alice, "Cookie: access_token=" + bob},
		"the cookie twice, different tokens":   {"Cookie: access_token=" + alice + "; access_token=" + bob},
		"two Cookie headers, different tokens": {"Cookie: access_token=" + alice, "Cookie: access_token=" + bob},
	} {
		before := hits.Load()
		if code := raw(t, g.port, "GET", "/me", headers...); code != 401 || hits.Load() != before {
			t.Errorf("%s: %d, want 401 and no backend call", name, code)
		}
	}
	for name, headers := range map[string][]string{
		"one header":                    {"Authorization: Bearer " + alice},
		"the cookie":                    {"Cookie: access_token=" + alice},
		"header and cookie, same token": {"Authorization: Bearer " + alice, "Cookie: access_token=" + alice},
	} {
		if code := raw(t, g.port, "GET", "/me", headers...); code != 200 {
			t.Errorf("%s: %d, want 200", name, code)
		}
	}
}
