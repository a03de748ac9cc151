package providers

import "net/url"

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
