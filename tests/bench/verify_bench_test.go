// Package bench measures the Go→C→Rust verification path against go-jose, the library behind
// KrakenD's auth/validator, on the same tokens.
package bench

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/core"
)

type fixture struct {
	core, cached *core.Core
	tokens       map[string]string
	keys         map[string]interface{} // public keys for go-jose
}

func setup(b *testing.B) *fixture {
	f := &fixture{tokens: map[string]string{}, keys: map[string]interface{}{}}
	var origins []string
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		p, err := idp.Start("idp-"+alg, 0, alg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Close)
		origins = append(origins, p.JWKSURL())
		f.tokens[alg] = p.Token(0, "alice", "api", time.Hour)
		raw, _ := json.Marshal(p.Key(0).PublicJWK())
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			b.Fatal(err)
		}
		f.keys[alg] = jwk.Key
	}
	settings, _ := json.Marshal(map[string]interface{}{"port": 1, "origins": origins})
	rule := `{"rules": [{"paths": ["/api/*"], "audience": ["api"]}], "cache_size": %d}`
	var err error
	if f.core, err = core.New(string(settings), fmt.Sprintf(rule, 0)); err != nil {
		b.Fatal(err)
	}
	if f.cached, err = core.New(string(settings), fmt.Sprintf(rule, 10000)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.core.Free(); f.cached.Free() })
	return f
}

// goJose does what krakend-jose does per request: parse, verify with the key, validate claims.
func goJose(token string, key interface{}) error {
	tok, err := jwt.ParseSigned(token)
	if err != nil {
		return err
	}
	var claims jwt.Claims
	if err := tok.Claims(key, &claims); err != nil {
		return err
	}
	return claims.Validate(jwt.Expected{Audience: jwt.Audience{"api"}, Time: time.Now()})
}

func BenchmarkVerify(b *testing.B) {
	f := setup(b)
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		token, key := f.tokens[alg], f.keys[alg]
		if goJose(token, key) != nil || f.core.Check("/api/x", "Bearer "+token) != core.Allow {
			b.Fatalf("%s token does not verify", alg)
		}
		b.Run(alg+"/go-jose", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := goJose(token, key); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/rust-via-cgo", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if f.core.Check("/api/x", "Bearer "+token) != core.Allow {
					b.Fatal("refused")
				}
			}
		})
		b.Run(alg+"/rust-via-cgo-cache-hit", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if f.cached.Check("/api/x", "Bearer "+token) != core.Allow {
					b.Fatal("refused")
				}
			}
		})
	}
	b.Run("unprotected-path", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if f.core.Check("/public/x", "") != core.Unprotected {
				b.Fatal("protected?")
			}
		}
	})
}
