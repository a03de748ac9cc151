package providers

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"
)

// OIDCProviderAlgs are the algorithms panva's oidc-provider signs access tokens with here
// (tests/providers/oidc-provider/server.mjs): one RSA key for RS256 and PS256, one P-256 key,
// one Ed25519 key, all generated at its start.
var OIDCProviderAlgs = []string{"RS256", "PS256", "ES256", "EdDSA"}

// OIDCProvider is a running panva's oidc-provider with one client per algorithm, svc-<alg>.
type OIDCProvider struct {
	URL    string // the issuer, e.g. http://127.0.0.1:3000
	Secret string // every client's secret
}

// Issuer is the iss of its tokens.
func (o *OIDCProvider) Issuer() string { return o.URL }

// JWKSURL is its JWK Set URL.
func (o *OIDCProvider) JWKSURL() string { return o.URL + "/jwks" }

// Token gets a JWT access token signed with alg (one of OIDCProviderAlgs) whose aud is audience
// (any absolute URI: it is the resource indicator), urn:jwk-aggregator:api when empty.
func (o *OIDCProvider) Token(alg, audience string) (string, error) {
	form := url.Values{}
	if audience != "" {
		form.Set("resource", audience)
	}
	return clientCredentials(o.URL+"/token", "svc-"+alg, o.Secret, form)
}

// StartAnother starts a private oidc-provider on a free loopback port (new keys, the same
// clients) for a test that must stop a provider while the shared ones keep running. It is
// stopped when the test ends, or earlier by its Stop.
func StartAnother(t testing.TB) (*OIDCProvider, func()) {
	t.Helper()
	server := os.Getenv(EnvOIDCProviderServer)
	if server == "" {
		t.Fatalf("%s is not set: run the tests through tests/providers/run.sh", EnvOIDCProviderServer)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	o := &OIDCProvider{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Secret: hex.EncodeToString(b)}
	cmd := exec.Command("node", server)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "CLIENT_SECRET="+o.Secret)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(o.URL + "/.well-known/openid-configuration"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return o, stop
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	t.Fatalf("a second oidc-provider did not start on port %d", port)
	return nil, nil
}

// CertBoundToken gets a token of svc-mtls bound to the client certificate certPEM (cnf
// x5t#S256), handed to oidc-provider as a TLS-terminating proxy does (x-ssl-client-cert).
func (o *OIDCProvider) CertBoundToken(certPEM string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	basic := "Basic " + basicAuth("svc-mtls", o.Secret)
	if err := call(http.MethodPost, o.URL+"/token", form, []string{"Authorization: " + basic, "x-ssl-client-cert: " + url.PathEscape(certPEM)}, &tok); err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}
