package providers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"time"
)

// DPoPKey is a client's DPoP key pair (P-256), making proofs as a client library does (RFC 9449
// section 4.2).
type DPoPKey struct {
	priv *ecdsa.PrivateKey
}

// NewDPoPKey makes a new key pair.
func NewDPoPKey() *DPoPKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return &DPoPKey{priv: k}
}

var b64 = base64.RawURLEncoding

func pad32(n *big.Int) []byte {
	b := make([]byte, 32)
	return n.FillBytes(b)
}

// JWK is its public key.
func (k *DPoPKey) JWK() map[string]interface{} {
	return map[string]interface{}{"kty": "EC", "crv": "P-256", "x": b64.EncodeToString(pad32(k.priv.X)), "y": b64.EncodeToString(pad32(k.priv.Y))}
}

// Thumbprint is its RFC 7638 SHA-256 thumbprint, the cnf.jkt of tokens bound to it.
func (k *DPoPKey) Thumbprint() string {
	j := k.JWK()
	canonical := fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":%q,"y":%q}`, j["x"], j["y"])
	sum := sha256.Sum256([]byte(canonical))
	return b64.EncodeToString(sum[:])
}

// Proof is a DPoP proof for a request (method, the URI it is sent to), with ath when token is
// given. edit, when not nil, changes the header and claims before signing.
func (k *DPoPKey) Proof(method, uri, token string, edit func(header, claims map[string]interface{})) string {
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	header := map[string]interface{}{"typ": "dpop+jwt", "alg": "ES256", "jwk": k.JWK()}
	claims := map[string]interface{}{"jti": hex.EncodeToString(jti), "htm": method, "htu": uri, "iat": time.Now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		claims["ath"] = b64.EncodeToString(sum[:])
	}
	if edit != nil {
		edit(header, claims)
	}
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, digest[:])
	if err != nil {
		panic(err)
	}
	return input + "." + b64.EncodeToString(append(pad32(r), pad32(s)...))
}

// dpopToken runs the client_credentials grant with a DPoP proof, as a client library does: the
// provider binds the token it issues to the proof's key (cnf.jkt) and answers token_type DPoP.
func dpopToken(tokenURL, clientID, secret string, form url.Values, key *DPoPKey) (string, error) {
	form.Set("grant_type", "client_credentials")
	basic := basicAuth(clientID, secret)
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	proof := key.Proof(http.MethodPost, tokenURL, "", nil)
	if err := call(http.MethodPost, tokenURL, form, []string{"Authorization: Basic " + basic, "DPoP: " + proof}, &tok); err != nil {
		return "", err
	}
	if tok.TokenType != "DPoP" {
		return "", fmt.Errorf("%s answered token_type %q, not DPoP", tokenURL, tok.TokenType)
	}
	return tok.AccessToken, nil
}

// DPoPToken gets an access token bound to key from oidc-provider (the svc-<alg> client).
func (o *OIDCProvider) DPoPToken(alg string, key *DPoPKey) (string, error) {
	return dpopToken(o.URL+"/token", "svc-"+alg, o.Secret, url.Values{}, key)
}
