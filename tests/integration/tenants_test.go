package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
)

// tenantGateway runs KrakenD with jwk-aggregator-auth on /t/{realm} trusting every realm of a
// Keycloak-like provider by pattern, with the given extra aggregator settings.
func tenantGateway(t *testing.T, realms *idp.Realms, extra map[string]interface{}) *gateway {
	t.Helper()
	aggPort := freePort(t)
	block := map[string]interface{}{
		"port":            aggPort,
		"issuer_patterns": []string{realms.Pattern()},
	}
	for k, v := range extra {
		block[k] = v
	}
	server := map[string]interface{}{
		"name":           []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator": block,
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{
			map[string]interface{}{"paths": []string{"/t/{realm}"}},
		}},
	}
	return startGatewayWith(t, aggPort, server, []endpoint{{path: "/t/{realm}"}})
}

func startRealms(t *testing.T) *idp.Realms {
	t.Helper()
	r, err := idp.StartRealms(0, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func TestIssuersOutsideThePatternCostNoTraffic(t *testing.T) {
	realms := startRealms(t)
	key := realms.Create("acme", "ES256")
	g := tenantGateway(t, realms, nil)
	host := strings.TrimPrefix(realms.URL, "http://")
	port := host[strings.LastIndex(host, ":")+1:]
	other := "1" + port
	if len(other) > 5 {
		other = "1"
	}
	for _, iss := range []string{
		"http://127.0.0.1:1/realms/acme",                  // another port
		"http://127.0.0.1:" + other + "/realms/acme",      // another port
		realms.URL + "/realms/acme/../../admin",           // dot segments
		realms.URL + "/realms/..",                         // dot segment
		realms.URL + "/realms/a%2Fb",                      // encoded slash
		realms.URL + "/realms/%2e%2e",                     // encoded dots
		"http://user:pw@" + host + "/realms/acme",         // user info
		realms.URL + "/realms/acme?x=1",                   // query
		realms.URL + "/realms/acme#x",                     // fragment
		realms.URL + "/realms/acme/extra",                 // two segments
		realms.URL + "/other/acme",                        // outside the pattern
		"https://evil.example/realms/acme",                // another host
		realms.URL + "/realms/" + strings.Repeat("a", 80), // segment too long
	} {
		tok := key.Sign(map[string]interface{}{"iss": iss, "sub": "x", "exp": time.Now().Add(time.Hour).Unix()}, nil)
		if code := g.call("/t/acme", tok); code != 401 {
			t.Errorf("iss %q: %d, want 401", iss, code)
		}
	}
	if n := realms.Requests(); n != 0 {
		t.Errorf("issuers outside the pattern caused %d requests to the provider; want 0", n)
	}
	metrics := getBody(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", g.aggPort))
	if !strings.Contains(metrics, `jwk_aggregator_discoveries_total{result="refused_before_fetch"} 13`) {
		t.Errorf("/metrics does not count 13 refusals before fetch:\n%s", metrics)
	}
}

func TestRandomRealmFloodCostsAtMostTheDiscoveryRate(t *testing.T) {
	realms := startRealms(t)
	key := idp.NewKey("attacker", "ES256")
	g := tenantGateway(t, realms, map[string]interface{}{"discoveries_per_minute": 10})
	start := time.Now()
	for i := 0; i < 1000; i++ {
		iss := realms.Issuer(fmt.Sprintf("random-%d-%d", i, time.Now().UnixNano()%1000))
		tok := key.Sign(map[string]interface{}{"iss": iss, "sub": "x", "exp": time.Now().Add(time.Hour).Unix()}, nil)
		if code := g.call("/t/x", tok); code != 401 {
			t.Fatalf("token %d with a random realm: %d, want 401", i, code)
		}
	}
	elapsed := time.Since(start)
	n := realms.Requests()
	t.Logf("1,000 tokens with random realms: %d requests to the provider in %v", n, elapsed)
	// 10 at once, then 10 a minute.
	allowed := 10 + int(10*elapsed.Minutes())
	if n > allowed {
		t.Errorf("1,000 random realms caused %d requests to the provider in %v; want at most %d (discoveries_per_minute 10)", n, elapsed, allowed)
	}
	metrics := getBody(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", g.aggPort))
	var limited int
	for _, line := range strings.Split(metrics, "\n") {
		fmt.Sscanf(line, `jwk_aggregator_discoveries_total{result="rate_limited"} %d`, &limited)
	}
	if limited < 1000-allowed {
		t.Errorf("/metrics counts %d rate-limited discoveries; want at least %d", limited, 1000-allowed)
	}
}

func TestDiscoveryDocumentMustNameTheTokensIssuer(t *testing.T) {
	realms := startRealms(t)
	liar := realms.Create("liar", "ES256")
	realms.SetDocumentIssuer("liar", realms.Issuer("victim"))
	far := realms.Create("far", "ES256")
	realms.SetJWKSURI("far", "http://127.0.0.2:1/certs") // another host than the issuer's
	g := tenantGateway(t, realms, nil)
	if code := g.call("/t/liar", realms.Token("liar", liar, "x", "", time.Hour)); code != 401 {
		t.Errorf("a discovery document naming another issuer: %d, want 401", code)
	}
	if !g.waitLog("discovery of issuer", "names issuer") {
		t.Errorf("the issuer mismatch is not logged")
	}
	if code := g.call("/t/far", realms.Token("far", far, "x", "", time.Hour)); code != 401 {
		t.Errorf("a jwks_uri on another host: %d, want 401", code)
	}
	if !g.waitLog("jwks_uri", "refused") {
		t.Errorf("the refused jwks_uri is not logged")
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitLog waits up to 3 s for a log line with every word: the plugin's log reaches KrakenD's
// logger through a queue, after the request that caused it was answered.
func (g *gateway) waitLog(words ...string) bool {
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if len(g.logLines(words...)) > 0 {
			return true
		}
	}
	return false
}
