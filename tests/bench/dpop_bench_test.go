package bench

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/core"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/gw"
	"github.com/jwk-aggregator/jwk-aggregator/tests/providers"
)

// BenchmarkDPoP is the auth handler's whole decision through the C API on a DPoP request beside a
// bearer request, with the verified-token cache on (the token's signature is verified once): what
// a DPoP request adds is the proof's checks (an ES256 signature among them) and the replay
// store, in memory or in a real Redis on loopback. Proofs are signed before the timer starts.
func BenchmarkDPoP(b *testing.B) {
	p, err := idp.Start("idp-dpop", 0, "ES256")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	key := providers.NewDPoPKey()
	exp := time.Now().Add(time.Hour).Unix()
	bearer := p.Key(0).Sign(map[string]interface{}{"iss": p.Issuer, "sub": "alice", "exp": exp}, nil)
	bound := p.Key(0).Sign(map[string]interface{}{"iss": p.Issuer, "sub": "alice", "exp": exp, "cnf": map[string]interface{}{"jkt": key.Thumbprint()}}, nil)
	redisPort := gw.FreePort()
	stopRedis, err := providers.StartRedis("redis-server", redisPort)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stopRedis)
	settings, _ := json.Marshal(map[string]interface{}{"port": 1, "origins": []string{p.JWKSURL()}})
	rules := `{"rules": [{"paths": ["/bearer"]}, {"paths": ["/dpop"], "dpop": {"mode": "required", "alg": ["ES256"]}}]`
	memory, err := core.New(string(settings), rules+`}`)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(memory.Free)
	shared, err := memory.WithRules(rules + fmt.Sprintf(`, "dpop_replay": {"redis": "redis://127.0.0.1:%d/0"}}`, redisPort))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(shared.Release)
	const host = "api.example"
	b.Run("bearer", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if memory.Check("/bearer", "Bearer "+bearer) != core.Allow {
				b.Fatal("the bearer token was refused")
			}
		}
	})
	for _, c := range []struct {
		name string
		core *core.Core
	}{{"dpop-memory-store", memory}, {"dpop-redis-store", shared}} {
		b.Run(c.name, func(b *testing.B) {
			proofs := make([]string, b.N)
			for i := range proofs {
				proofs[i] = key.Proof("GET", "http://"+host+"/dpop", bound, nil)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if out := c.core.CheckDPoP(host, "/dpop", bound, proofs[i]); out != core.Allow {
					b.Fatalf("proof %d: outcome %d", i, out)
				}
			}
		})
	}
}
