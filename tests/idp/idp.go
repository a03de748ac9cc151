// Package idp holds the project's own identity providers: real RSA, EC and Ed25519 keys, their
// public JWK Sets served over HTTP, JWTs signed with them, and a Keycloak-like multi-tenant
// provider (realms.go).
//
// They stay only where a provider must misbehave on purpose: keys the test holds (forged,
// expired, tampered or unsigned tokens, tokens with chosen claims), garbage, hangs, huge answers,
// private keys published, redirects, documents naming another issuer, floods of made-up tenants;
// and `make run`'s demo. Everything an identity provider does when it behaves is tested against
// real ones: Keycloak, ORY Hydra and panva's oidc-provider (tests/providers, tests/realidp).
package idp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var b64 = base64.RawURLEncoding

// Key is one signing key with its kid and JWS algorithm.
type Key struct {
	Kid    string
	Alg    string // RS256, ES256 or EdDSA
	signer crypto.Signer
}

// NewKey generates a key for alg ("RS256", "ES256" or "EdDSA").
func NewKey(kid, alg string) *Key {
	var s crypto.Signer
	var err error
	switch alg {
	case "RS256":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		panic("idp: unsupported alg " + alg)
	}
	if err != nil {
		panic(err)
	}
	return &Key{Kid: kid, Alg: alg, signer: s}
}

func pad(b []byte, n int) []byte {
	out := make([]byte, n)
	copy(out[n-len(b):], b)
	return out
}

// PublicJWK is the key's public JWK.
func (k *Key) PublicJWK() map[string]interface{} {
	m := map[string]interface{}{"kid": k.Kid, "alg": k.Alg, "use": "sig"}
	switch pub := k.signer.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64.EncodeToString(pub.N.Bytes()), b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, _ := pub.ECDH()
		pt := raw.Bytes() // 0x04 || X || Y
		m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", b64.EncodeToString(pt[1:33]), b64.EncodeToString(pt[33:65])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64.EncodeToString(pub)
	}
	return m
}

// CertJWK is the public JWK with a self-signed certificate of the key in x5c and its thumbprints.
// With certKey set, the certificate holds that other key instead (a mismatched chain).
func (k *Key) CertJWK(certKey *Key) map[string]interface{} {
	holder := k
	if certKey != nil {
		holder = certKey
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: k.Kid},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, holder.signer.Public(), holder.signer)
	if err != nil {
		panic(err)
	}
	m := k.PublicJWK()
	s1, s256 := sha1.Sum(der), sha256.Sum256(der)
	m["x5c"] = []string{base64.StdEncoding.EncodeToString(der)}
	m["x5t"], m["x5t#S256"] = b64.EncodeToString(s1[:]), b64.EncodeToString(s256[:])
	return m
}

// PrivateJWK is the public JWK plus the private members, as a careless provider would publish.
func (k *Key) PrivateJWK() map[string]interface{} {
	m := k.PublicJWK()
	switch priv := k.signer.(type) {
	case *rsa.PrivateKey:
		m["d"] = b64.EncodeToString(priv.D.Bytes())
		m["p"] = b64.EncodeToString(priv.Primes[0].Bytes())
		m["q"] = b64.EncodeToString(priv.Primes[1].Bytes())
	case *ecdsa.PrivateKey:
		m["d"] = b64.EncodeToString(pad(priv.D.Bytes(), 32))
	case ed25519.PrivateKey:
		m["d"] = b64.EncodeToString(priv.Seed())
	}
	return m
}

// Sign returns a compact JWS of claims, with the key's kid unless header overrides it.
func (k *Key) Sign(claims map[string]interface{}, header map[string]interface{}) string {
	h := map[string]interface{}{"alg": k.Alg, "typ": "JWT", "kid": k.Kid}
	for name, v := range header {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	hj, _ := json.Marshal(h)
	cj, _ := json.Marshal(claims)
	input := b64.EncodeToString(hj) + "." + b64.EncodeToString(cj)
	var sig []byte
	var err error
	switch s := k.signer.(type) {
	case *rsa.PrivateKey:
		d := sha256.Sum256([]byte(input))
		sig, err = rsa.SignPKCS1v15(rand.Reader, s, crypto.SHA256, d[:])
	case *ecdsa.PrivateKey:
		d := sha256.Sum256([]byte(input))
		var r, ss *big.Int
		r, ss, err = ecdsa.Sign(rand.Reader, s, d[:])
		if err == nil {
			sig = append(pad(r.Bytes(), 32), pad(ss.Bytes(), 32)...)
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(s, []byte(input))
	}
	if err != nil {
		panic(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// Provider is an identity provider: an issuer, its keys, and an HTTP server on loopback.
type Provider struct {
	Name   string
	Issuer string
	URL    string // base URL, e.g. http://127.0.0.1:1234

	mu      sync.Mutex
	keys    []*Key
	extra   []map[string]interface{}
	status  int
	srv     *http.Server
	ln      net.Listener
	fetches int
}

// Start serves a provider on 127.0.0.1:port (0 picks a free port) with one key per alg.
func Start(name string, port int, algs ...string) (*Provider, error) {
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	p := &Provider{Name: name, URL: "http://" + ln.Addr().String(), ln: ln, status: 200}
	p.Issuer = p.URL
	for i, alg := range algs {
		p.keys = append(p.keys, NewKey(fmt.Sprintf("%s-%s-%d", name, alg, i+1), alg))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks.json", p.serveJWKS)
	mux.HandleFunc("/token", p.serveToken)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go p.srv.Serve(ln)
	return p, nil
}

// StartForTest starts a provider on a free port that stops when the test ends.
func StartForTest(t testing.TB, name string, algs ...string) *Provider {
	t.Helper()
	p, err := Start(name, 0, algs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// JWKSURL is the provider's JWK Set URL.
func (p *Provider) JWKSURL() string { return p.URL + "/jwks.json" }

// Key returns the provider's i-th key.
func (p *Provider) Key(i int) *Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[i]
}

// SetKeys replaces the published keys (rotation).
func (p *Provider) SetKeys(keys ...*Key) {
	p.mu.Lock()
	p.keys = keys
	p.mu.Unlock()
}

// PublishExtra adds raw JWK objects to the set, as published, e.g. keys a validator cannot parse.
func (p *Provider) PublishExtra(jwks ...map[string]interface{}) {
	p.mu.Lock()
	p.extra = append(p.extra, jwks...)
	p.mu.Unlock()
}

// SetStatus makes the JWKS endpoint answer with this status (200 restores it).
func (p *Provider) SetStatus(code int) {
	p.mu.Lock()
	p.status = code
	p.mu.Unlock()
}

// Fetches counts JWK Set requests.
func (p *Provider) Fetches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fetches
}

// Close stops the server.
func (p *Provider) Close() { p.srv.Close() }

// Restart serves again on the same address with the same keys, after Close.
func (p *Provider) Restart() error {
	ln, err := net.Listen("tcp4", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		return err
	}
	p.srv = &http.Server{Handler: p.srv.Handler, ReadHeaderTimeout: 5 * time.Second}
	go p.srv.Serve(ln)
	return nil
}

func (p *Provider) serveJWKS(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.fetches++
	status := p.status
	keys := []map[string]interface{}{}
	for _, k := range p.keys {
		keys = append(keys, k.PublicJWK())
	}
	keys = append(keys, p.extra...)
	p.mu.Unlock()
	if status != 200 {
		http.Error(w, "unavailable", status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]interface{}{"keys": keys})
}

// Token signs a token for this provider: issuer, subject, audience and an expiry ttl from now.
func (p *Provider) Token(keyIndex int, sub, aud string, ttl time.Duration) string {
	now := time.Now().Unix()
	claims := map[string]interface{}{
		"iss": p.Issuer, "sub": sub, "iat": now, "exp": now + int64(ttl.Seconds()),
	}
	if aud != "" {
		claims["aud"] = aud
	}
	return p.Key(keyIndex).Sign(claims, nil)
}

// serveToken hands out a token: GET /token?sub=alice&aud=x&ttl=3600&key=0
func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sub := q.Get("sub")
	if sub == "" {
		sub = "demo-user"
	}
	ttl, err := strconv.Atoi(q.Get("ttl"))
	if err != nil || ttl == 0 {
		ttl = 3600
	}
	idx, _ := strconv.Atoi(q.Get("key"))
	p.mu.Lock()
	n := len(p.keys)
	p.mu.Unlock()
	if idx < 0 || idx >= n {
		http.Error(w, "no such key", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintln(w, p.Token(idx, sub, q.Get("aud"), time.Duration(ttl)*time.Second))
}
