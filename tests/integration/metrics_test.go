package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The loopback /metrics published on the gateway for a Prometheus scraper, as the README shows:
// an endpoint with no-op encoding whose backend is the aggregator's port, kept private by a
// jwk-aggregator-auth rule that wants a scope only the scraper's token has.
func TestMetricsPublishedThroughTheGatewayAndKeptPrivate(t *testing.T) {
	a := provider(t, "idp-a", "RS256")
	aggPort := freePort(t)
	server := map[string]interface{}{
		"name":           []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator": map[string]interface{}{"port": aggPort, "origins": []string{a.JWKSURL()}},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{
			map[string]interface{}{"paths": []string{"/__jwka/metrics"}, "scopes_key": "scope", "scopes": []string{"metrics:read"}},
		}},
	}
	g := startGatewayWith(t, aggPort, server, []endpoint{
		{path: "/__jwka/metrics", backend: fmt.Sprintf("http://127.0.0.1:%d", aggPort), urlPattern: "/metrics", noOp: true},
	})
	now := time.Now().Unix()
	scraper := a.Key(0).Sign(map[string]interface{}{"iss": a.Issuer, "sub": "prometheus", "scope": "metrics:read", "exp": now + 600}, nil)
	other := a.Key(0).Sign(map[string]interface{}{"iss": a.Issuer, "sub": "alice", "scope": "orders", "exp": now + 600}, nil)

	code, header, body := g.request("/__jwka/metrics", scraper, nil)
	if code != 200 {
		t.Fatalf("scraper: %d, want 200\n%s", code, body)
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q: Prometheus needs the text format as the aggregator sends it", ct)
	}
	for _, want := range []string{"# TYPE jwk_aggregator_origin_fetches_ok_total counter", `jwk_aggregator_origin_keys{origin="` + a.JWKSURL() + `"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("published metrics lack %q:\n%s", want, body)
		}
	}
	if code := g.call("/__jwka/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code := g.call("/__jwka/metrics", other); code != http.StatusForbidden {
		t.Errorf("a token without the metrics scope: %d, want 403", code)
	}
}
