package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	stdlog "log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startAggregator runs the factory with the given settings and returns the loopback base URL.
func startAggregator(t testing.TB, settings map[string]interface{}) string {
	t.Helper()
	port := freePort(t)
	settings["port"] = port
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := factory(t)(ctx, map[string]interface{}{"jwk-aggregator": settings}, http.NotFoundHandler()); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); waitFree(t, port) })
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// tlsOrigin serves h over TLS with a leaf certificate for 127.0.0.1 issued by a fresh test CA,
// and returns the server and the CA's PEM file.
func tlsOrigin(t *testing.T, h http.HandlerFunc) (*httptest.Server, string) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jwk-aggregator test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // handshake failures are expected here
	srv.StartTLS()
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, path
}

func serveJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, jwks)
}

func TestHTTPSOriginsAreVerified(t *testing.T) {
	useLogger(t)
	srv, caFile := tlsOrigin(t, serveJWKS)

	// The test server's certificate is not in the system store: refused.
	base := startAggregator(t, map[string]interface{}{"origins": []interface{}{srv.URL + "/jwks.json"}})
	status, _, body := get(t, base+"/")
	if status != 503 || !strings.Contains(strings.ToLower(string(body)), "certificate") {
		t.Errorf("untrusted certificate: %d %s", status, body)
	}

	// Trusted through ca_file.
	base = startAggregator(t, map[string]interface{}{"origins": []interface{}{srv.URL + "/jwks.json"}, "ca_file": caFile})
	if status, _, body := get(t, base+"/"); status != 200 || !strings.Contains(string(body), `"ed1"`) {
		t.Errorf("with ca_file: %d %s", status, body)
	}
}

func TestRedirectFromHTTPSToHTTPIsRefused(t *testing.T) {
	useLogger(t)
	plain := origin(t)
	srv, caFile := tlsOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/jwks.json", http.StatusFound)
	})
	base := startAggregator(t, map[string]interface{}{"origins": []interface{}{srv.URL + "/jwks.json"}, "ca_file": caFile})
	status, _, body := get(t, base+"/")
	if status != 503 || !strings.Contains(string(body), "redirect from https to plain http refused") {
		t.Errorf("downgrade redirect: %d %s", status, body)
	}
}

func TestBadCAFileIsAConfigurationError(t *testing.T) {
	logs := useLogger(t)
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	for _, path := range []string{bad, "/nonexistent/ca.pem"} {
		_, err := factory(t)(context.Background(), map[string]interface{}{"jwk-aggregator": map[string]interface{}{
			"port": freePort(t), "origins": []interface{}{"https://idp.example/keys"}, "ca_file": path,
		}}, http.NotFoundHandler())
		if err == nil || !strings.Contains(err.Error(), `"ca_file"`) || !strings.Contains(err.Error(), path) {
			t.Errorf("ca_file %s: %v", path, err)
		}
		if logs.find("ERROR", `"ca_file"`) == "" {
			t.Errorf("ca_file error not logged at ERROR")
		}
	}
}
