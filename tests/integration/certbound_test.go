package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/providers"
)

// pki is a test CA with the certificates it signed, as PEM files in a folder.
type pki struct {
	t    *testing.T
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{t: t, dir: t.TempDir(), ca: ca, key: key, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.write("ca.pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(name, kind string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// issue makes a certificate for name (a server's IP or a client's name) and returns it as a
// tls.Certificate, with the paths of its PEM files.
func (p *pki) issue(name string, server bool) (tls.Certificate, string, string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []net.IP{net.ParseIP(name)}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certPath, keyPath := p.write(name+".pem", "CERTIFICATE", der), p.write(name+"-key.pem", "PRIVATE KEY", keyDER)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		p.t.Fatal(err)
	}
	return cert, certPath, keyPath
}

// Certificate-bound tokens (RFC 8705) of real oidc-provider through real KrakenD serving mutual
// TLS: a token bound to one client certificate is accepted over a connection with that
// certificate and refused over one with another; a rule that requires binding refuses unbound
// tokens, one that allows it takes them.
func TestCertificateBoundTokensThroughAGatewayWithMutualTLS(t *testing.T) {
	env := providers.Require(t)
	p := newPKI(t)
	_, serverCert, serverKey := p.issue("127.0.0.1", true)
	alice, alicePEM, _ := p.issue("alice", false)
	mallory, _, _ := p.issue("mallory", false)
	pemBytes, _ := os.ReadFile(alicePEM)
	bound := providers.Must(t)(env.OIDCProvider.CertBoundToken(string(pemBytes)))
	claims, _ := providers.ParseClaims(bound)
	if cnf, _ := claims["cnf"].(map[string]interface{}); cnf["x5t#S256"] == nil {
		t.Fatalf("oidc-provider's token is not bound to the certificate: cnf %v", claims["cnf"])
	}
	unbound := providers.Must(t)(env.OIDCProvider.Token("ES256", ""))

	client := func(cert tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{cert}}}}
	}
	aggPort := freePort(t)
	server := map[string]interface{}{
		"name":           []string{"jwk-aggregator", "jwk-aggregator-auth"},
		"jwk-aggregator": map[string]interface{}{"port": aggPort, "origins": []string{env.OIDCProvider.JWKSURL()}},
		"jwk-aggregator-auth": map[string]interface{}{"rules": []interface{}{
			map[string]interface{}{"paths": []string{"/bound"}, "certificate_binding": "required"},
			map[string]interface{}{"paths": []string{"/either"}, "certificate_binding": "allowed"},
		}},
	}
	tlsBlock := map[string]interface{}{"public_key": serverCert, "private_key": serverKey, "enable_mtls": true, "ca_certs": []string{filepath.Join(p.dir, "ca.pem")}}
	g := launch(t, aggPort, server, []endpoint{{path: "/bound"}, {path: "/either"}}, nil, tlsBlock, client(alice), func(code int) bool { return code == 200 })
	as := func(c *http.Client, path, token string) int {
		g.client = c
		code, _, _ := g.send("GET", path, "Bearer "+token, "")
		return code
	}
	for _, c := range []struct {
		what   string
		client *http.Client
		path   string
		token  string
		want   int
	}{
		{"the bound token over its certificate", client(alice), "/bound", bound, 200},
		{"the bound token over another certificate", client(mallory), "/bound", bound, 401},
		{"the bound token over another certificate, binding allowed", client(mallory), "/either", bound, 401},
		{"an unbound token where binding is required", client(alice), "/bound", unbound, 401},
		{"an unbound token where binding is allowed", client(mallory), "/either", unbound, 200},
	} {
		if code := as(c.client, c.path, c.token); code != c.want {
			t.Errorf("%s: %d, want %d", c.what, code, c.want)
		}
	}
}
