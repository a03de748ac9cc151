package providers

import (
	"net/http"
	"net/url"
	"strings"
)

// AccessTokenKeySet is the JWK Set that signs Hydra's JWT access tokens; its newest private key
// signs, and every key of it is published on the public JWK Set URL.
const AccessTokenKeySet = "hydra.jwt.access-token"

// Hydra is a running ORY Hydra (in-memory storage, JWT access tokens). Its keys are shared by
// every test of a run: a test that rotates them must not run in parallel with one that counts them.
type Hydra struct {
	PublicURL string // the issuer, e.g. http://127.0.0.1:4444
	AdminURL  string
}

// Issuer is the iss of Hydra's tokens.
func (h *Hydra) Issuer() string { return h.PublicURL }

// JWKSURL is Hydra's public JWK Set URL (ID token and access token keys).
func (h *Hydra) JWKSURL() string { return h.PublicURL + "/.well-known/jwks.json" }

// CreateClient creates a client of the client_credentials grant whose access tokens are JWTs,
// allowed to ask for audience (Client.Alg is not used: Hydra signs with its key set's newest key).
func (h *Hydra) CreateClient(c Client) error {
	rep := map[string]interface{}{
		"client_id": c.ID, "client_secret": c.Secret, "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic", "access_token_strategy": "jwt",
	}
	if c.Audience != "" {
		rep["audience"] = []string{c.Audience}
	}
	return call(http.MethodPost, h.AdminURL+"/admin/clients", rep, nil, nil)
}

// Token gets an access token of a client by the client_credentials grant, for the audience when
// it is not empty.
func (h *Hydra) Token(clientID, secret, audience string) (string, error) {
	form := url.Values{}
	if audience != "" {
		form.Set("audience", audience)
	}
	return clientCredentials(h.PublicURL+"/oauth2/token", clientID, secret, form)
}

// AccessTokenKids lists the kids of the access token key set, the signing one first.
func (h *Hydra) AccessTokenKids() ([]string, error) {
	var s JWKS
	if err := call(http.MethodGet, h.AdminURL+"/admin/keys/"+AccessTokenKeySet, nil, nil, &s); err != nil {
		return nil, err
	}
	var kids []string
	for _, k := range s.Keys {
		kids = append(kids, k.Kid)
	}
	return kids, nil
}

// RotateKey adds a new key of alg (RS256, ES256, ...) to the access token key set; it signs every
// access token from now on, and the older keys stay published until RemoveKey.
func (h *Hydra) RotateKey(alg string) (string, error) {
	kid := "hydra-" + strings.ToLower(alg) + "-" + randomHex(4)
	body := map[string]string{"alg": alg, "kid": kid, "use": "sig"}
	return kid, call(http.MethodPost, h.AdminURL+"/admin/keys/"+AccessTokenKeySet, body, nil, nil)
}

// RemoveKey deletes a key of the access token key set: it is no longer published.
func (h *Hydra) RemoveKey(kid string) error {
	return call(http.MethodDelete, h.AdminURL+"/admin/keys/"+AccessTokenKeySet+"/"+url.PathEscape(kid), nil, nil, nil)
}
