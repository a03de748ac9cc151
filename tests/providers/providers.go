// Package providers drives real identity providers in tests: Keycloak, ORY Hydra and panva's
// oidc-provider, started on loopback by tests/providers/run.sh, which exports their addresses and
// admin credentials. FromEnv reads them; a test that needs the providers fails (never skips) when
// they are absent.
package providers

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// The variables run.sh writes to build/providers.env and exports to the command it runs.
const (
	EnvKeycloakURL           = "KEYCLOAK_URL"
	EnvKeycloakAdmin         = "KEYCLOAK_ADMIN"
	EnvKeycloakAdminPassword = "KEYCLOAK_ADMIN_PASSWORD"
	EnvHydraPublicURL        = "HYDRA_PUBLIC_URL"
	EnvHydraAdminURL         = "HYDRA_ADMIN_URL"
	EnvOIDCProviderURL       = "OIDC_PROVIDER_URL"
	EnvOIDCProviderSecret    = "OIDC_PROVIDER_CLIENT_SECRET"
	EnvOIDCProviderServer    = "OIDC_PROVIDER_SERVER" // its server script, to start a private instance
)

// Env is the three running providers.
type Env struct {
	Keycloak     *Keycloak
	Hydra        *Hydra
	OIDCProvider *OIDCProvider
}

// FromEnv reads the providers' addresses and credentials from the environment. It is an error
// when any variable is missing: run the tests through tests/providers/run.sh.
func FromEnv() (*Env, error) {
	names := []string{EnvKeycloakURL, EnvKeycloakAdmin, EnvKeycloakAdminPassword, EnvHydraPublicURL,
		EnvHydraAdminURL, EnvOIDCProviderURL, EnvOIDCProviderSecret}
	v := map[string]string{}
	var missing []string
	for _, n := range names {
		if v[n] = os.Getenv(n); v[n] == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the identity providers are not running (%s unset): run the tests "+
			"through tests/providers/run.sh, e.g. tests/providers/run.sh go test ./providers/, or "+
			"source the env file of tests/providers/run.sh --serve", strings.Join(missing, ", "))
	}
	return &Env{
		Keycloak:     &Keycloak{URL: v[EnvKeycloakURL], Admin: v[EnvKeycloakAdmin], Password: v[EnvKeycloakAdminPassword]},
		Hydra:        &Hydra{PublicURL: v[EnvHydraPublicURL], AdminURL: v[EnvHydraAdminURL]},
		OIDCProvider: &OIDCProvider{URL: v[EnvOIDCProviderURL], Secret: v[EnvOIDCProviderSecret]},
	}, nil
}

// Require is FromEnv for tests: it fails the test when the providers are absent.
func Require(t testing.TB) *Env {
	t.Helper()
	env, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// Header is the protected header of a compact JWS.
type Header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// ParseHeader decodes a token's header (it verifies nothing).
func ParseHeader(token string) (Header, error) {
	var h Header
	err := decodePart(token, 0, &h)
	return h, err
}

// ParseClaims decodes a token's claims (it verifies nothing).
func ParseClaims(token string) (map[string]interface{}, error) {
	var c map[string]interface{}
	err := decodePart(token, 1, &c)
	return c, err
}

func decodePart(token string, i int, v interface{}) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Errorf("not a compact JWS: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// JWK is the public part of a published key, as far as tests look at it.
type JWK struct {
	Kid string   `json:"kid"`
	Kty string   `json:"kty"`
	Alg string   `json:"alg"`
	Use string   `json:"use"`
	Crv string   `json:"crv"`
	X5c []string `json:"x5c"`
}

// JWKS is a published JWK Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// Find returns the key of that kid, or nil.
func (s JWKS) Find(kid string) *JWK {
	for i := range s.Keys {
		if s.Keys[i].Kid == kid {
			return &s.Keys[i]
		}
	}
	return nil
}

// FetchJWKS gets a JWK Set.
func FetchJWKS(jwksURL string) (JWKS, error) {
	var s JWKS
	err := call(http.MethodGet, jwksURL, nil, nil, &s)
	return s, err
}

var client = &http.Client{Timeout: 60 * time.Second}

// call sends a request with a JSON (or, for url.Values, form) body and decodes a JSON answer into
// out when out is not nil; any status but 2xx is an error naming the answer. Each header entry
// is "Name: value".
func call(method, u string, body interface{}, header []string, out interface{}) error {
	_, err := callLocation(method, u, body, header, out)
	return err
}

func callLocation(method, u string, body interface{}, header []string, out interface{}) (string, error) {
	var r io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		r, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return "", err
		}
		r, ctype = strings.NewReader(string(j)), "application/json"
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		return "", err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	for _, h := range header {
		name, value, _ := strings.Cut(h, ": ")
		req.Header.Set(name, value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s %s: %s: %.500s", method, u, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return "", fmt.Errorf("%s %s: %v: %.500s", method, u, err, data)
		}
	}
	return resp.Header.Get("Location"), nil
}

// basicAuth is the HTTP Basic client authentication of OAuth (RFC 6749 section 2.3.1).
func basicAuth(clientID, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID) + ":" + url.QueryEscape(secret)))
}

// clientCredentials runs the client_credentials grant with HTTP Basic client authentication.
func clientCredentials(tokenURL, clientID, secret string, form url.Values) (string, error) {
	form.Set("grant_type", "client_credentials")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := call(http.MethodPost, tokenURL, form, []string{"Authorization: Basic " + basicAuth(clientID, secret)}, &tok); err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", fmt.Errorf("%s: no access_token in the answer", tokenURL)
	}
	return tok.AccessToken, nil
}

// Must turns a provider call's (value, error) into the value, failing the test on an error:
// must := providers.Must(t); tok := must(realm.Token("RS256")).
func Must(t testing.TB) func(string, error) string {
	return func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}
