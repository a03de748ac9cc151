package idp

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Realms is a multi-tenant identity provider that behaves like Keycloak: every realm lives under
// one base URL, <base>/realms/<name>, with its own discovery document
// (<issuer>/.well-known/openid-configuration), JWK Set (<issuer>/protocol/openid-connect/certs)
// and keys. Realms are created and deleted while it runs; a deleted or unknown realm answers 404,
// as Keycloak does.
type Realms struct {
	URL string

	mu         sync.Mutex
	realms     map[string]*Key
	docIssuer  map[string]string // a discovery document that names another issuer
	jwksURI    map[string]string // a discovery document that points elsewhere
	requests   int
	byRealm    map[string]int
	srv        *http.Server
	ln         net.Listener
	serveAdmin bool
}

// StartRealms serves an empty multi-tenant provider on 127.0.0.1:port (0 picks a free port).
// With admin, POST <base>/admin/realms/<name>?alg=ES256 creates a realm and DELETE deletes it (the
// demo uses them; tests call Create and Delete).
func StartRealms(port int, admin bool) (*Realms, error) {
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	r := &Realms{URL: "http://" + ln.Addr().String(), ln: ln, realms: map[string]*Key{}, docIssuer: map[string]string{},
		jwksURI: map[string]string{}, byRealm: map[string]int{}, serveAdmin: admin}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

// Issuer is the issuer of a realm, as Keycloak writes it (no trailing slash).
func (r *Realms) Issuer(realm string) string { return r.URL + "/realms/" + realm }

// Pattern is the issuer pattern that trusts every realm of this provider.
func (r *Realms) Pattern() string { return r.URL + "/realms/*" }

// Create adds a realm with one fresh key of alg and returns the key.
func (r *Realms) Create(realm, alg string) *Key {
	k := NewKey(realm+"-"+alg, alg)
	r.mu.Lock()
	r.realms[realm] = k
	r.mu.Unlock()
	return k
}

// Delete removes a realm: its documents answer 404 from now on.
func (r *Realms) Delete(realm string) {
	r.mu.Lock()
	delete(r.realms, realm)
	r.mu.Unlock()
}

// SetDocumentIssuer makes a realm's discovery document name another issuer.
func (r *Realms) SetDocumentIssuer(realm, issuer string) {
	r.mu.Lock()
	r.docIssuer[realm] = issuer
	r.mu.Unlock()
}

// SetJWKSURI makes a realm's discovery document point its jwks_uri elsewhere.
func (r *Realms) SetJWKSURI(realm, uri string) {
	r.mu.Lock()
	r.jwksURI[realm] = uri
	r.mu.Unlock()
}

// Requests counts every HTTP request the provider received; RealmRequests those of one realm.
func (r *Realms) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

func (r *Realms) RealmRequests(realm string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byRealm[realm]
}

// Token signs a token of a realm with its key (which need not be published any more).
func (r *Realms) Token(realm string, key *Key, sub, aud string, ttl time.Duration) string {
	now := time.Now().Unix()
	claims := map[string]interface{}{"iss": r.Issuer(realm), "sub": sub, "iat": now, "exp": now + int64(ttl.Seconds())}
	if aud != "" {
		claims["aud"] = aud
	}
	return key.Sign(claims, nil)
}

// Close stops the server.
func (r *Realms) Close() { r.srv.Close() }

func (r *Realms) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests++
	r.mu.Unlock()
	path := req.URL.Path
	if rest, ok := strings.CutPrefix(path, "/admin/realms/"); ok && r.serveAdmin && rest != "" && !strings.Contains(rest, "/") {
		switch req.Method {
		case http.MethodPost:
			alg := req.URL.Query().Get("alg")
			if alg == "" {
				alg = "RS256"
			}
			r.Create(rest, alg)
			fmt.Fprintf(w, "created realm %s (%s): issuer %s\n", rest, alg, r.Issuer(rest))
		case http.MethodDelete:
			r.Delete(rest)
			fmt.Fprintf(w, "deleted realm %s\n", rest)
		default:
			http.Error(w, "POST or DELETE", http.StatusMethodNotAllowed)
		}
		return
	}
	rest, ok := strings.CutPrefix(path, "/realms/")
	if !ok {
		http.NotFound(w, req)
		return
	}
	realm, sub, _ := strings.Cut(rest, "/")
	r.mu.Lock()
	r.byRealm[realm]++
	key := r.realms[realm]
	docIssuer, lie := r.docIssuer[realm]
	jwksURI, elsewhere := r.jwksURI[realm]
	r.mu.Unlock()
	if key == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"Realm does not exist"}`)
		return
	}
	issuer := r.Issuer(realm)
	w.Header().Set("Content-Type", "application/json")
	switch sub {
	case ".well-known/openid-configuration":
		if !lie {
			docIssuer = issuer
		}
		if !elsewhere {
			jwksURI = issuer + "/protocol/openid-connect/certs"
		}
		_ = json.NewEncoder(w).Encode(map[string]interface{}{
			"issuer": docIssuer, "jwks_uri": jwksURI,
			"authorization_endpoint":                issuer + "/protocol/openid-connect/auth",
			"token_endpoint":                        issuer + "/protocol/openid-connect/token",
			"id_token_signing_alg_values_supported": []string{key.Alg},
		})
	case "protocol/openid-connect/certs":
		_ = json.NewEncoder(w).Encode(map[string]interface{}{"keys": []interface{}{key.PublicJWK()}})
	case "token":
		// Demo convenience: GET <issuer>/token?sub=alice hands out a token of this realm.
		w.Header().Set("Content-Type", "text/plain")
		s := req.URL.Query().Get("sub")
		if s == "" {
			s = "demo-user"
		}
		fmt.Fprintln(w, r.Token(realm, key, s, "", time.Hour))
	default:
		http.NotFound(w, req)
	}
}
