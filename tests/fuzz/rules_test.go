package fuzz

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/core"
)

// One Ed25519 key behind a loopback origin, and a token of it that every drawn rule accepts
// unless the rule asks for a scope the token lacks ("c").
var (
	rulesOnce  sync.Once
	rulesCore  *core.Core
	rulesToken string
)

func rulesChecker(t testing.TB) (*core.Core, string) {
	rulesOnce.Do(func() {
		pub, priv, _ := ed25519.GenerateKey(nil)
		b64 := base64.RawURLEncoding
		jwks, _ := json.Marshal(map[string]interface{}{"keys": []interface{}{
			map[string]interface{}{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": b64.EncodeToString(pub)},
		}})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(jwks)
		}))
		head := b64.EncodeToString([]byte(`{"alg":"EdDSA","kid":"k"}`))
		claims, _ := json.Marshal(map[string]interface{}{"sub": "alice", "scope": "a b", "exp": time.Now().Unix() + 86400})
		input := head + "." + b64.EncodeToString(claims)
		rulesToken = input + "." + b64.EncodeToString(ed25519.Sign(priv, []byte(input)))
		settings, _ := json.Marshal(map[string]interface{}{"port": 1, "origins": []string{srv.URL + "/jwks.json"}})
		c, err := core.New(string(settings), `{"rules": [{"paths": ["/*"]}]}`)
		if err != nil {
			t.Fatal(err)
		}
		rulesCore = c
	})
	return rulesCore, rulesToken
}

var segAlphabet = []string{"a", "b", "c", "orders", "export", "{p}"}

// drawPattern draws a KrakenD path pattern of 1 to 3 segments; a final "*" when rest is true.
func drawPattern(r *rand.Rand, rest bool) []string {
	n := 1 + r.IntN(3)
	segs := make([]string, n)
	for i := range segs {
		segs[i] = segAlphabet[r.IntN(len(segAlphabet))]
	}
	if rest {
		segs[n-1] = "*"
	}
	return segs
}

// ginPath is a pattern as lura registers it in gin: {p} becomes :pN (one name per position, as
// gin refuses two names at one place).
func ginPath(segs []string) string {
	out := make([]string, len(segs))
	for i, s := range segs {
		if s == "{p}" {
			s = fmt.Sprintf(":p%d", i)
		}
		out[i] = s
	}
	return "/" + strings.Join(out, "/")
}

// covers is the reference reading of a rule's pattern: literal segments, {p} any one segment
// (empty included, as gin gives a parameter an empty segment), a final * the rest.
func covers(rule []string, path string) bool {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, s := range rule {
		if s == "*" {
			return true
		}
		if i >= len(parts) || (s != "{p}" && s != parts[i]) {
			return false
		}
	}
	return len(parts) == len(rule)
}

// drawTarget spells a request for one endpoint as a client might: parameters filled with odd
// values, empty and dot segments, case, trailing slashes, percent-encoding.
func drawTarget(r *rand.Rand, segs []string) string {
	values := []string{"x", "", ".", "..", "export", "a", "%2e%2e", "A", "x%2Fy", "orders"}
	var b strings.Builder
	for _, s := range segs {
		switch r.IntN(8) {
		case 0:
			b.WriteString("/")
		case 1:
			b.WriteString("/./")
		case 2:
			b.WriteString("/zz/../")
		default:
			b.WriteString("/")
		}
		switch {
		case s == "{p}" || s == "*":
			b.WriteString(values[r.IntN(len(values))])
		case r.IntN(12) == 0:
			b.WriteString(strings.ToUpper(s))
		case r.IntN(12) == 0:
			b.WriteString("%" + fmt.Sprintf("%02x", s[0]) + s[1:])
		default:
			b.WriteString(s)
		}
	}
	switch r.IntN(6) {
	case 0:
		b.WriteString("/")
	case 1:
		b.WriteString("/..")
	case 2:
		b.WriteString("//")
	}
	return b.String()
}

// FuzzRouterRules draws random rule sets (2 to 6 rules whose patterns overlap: literals, {params},
// a final *, some wanting a scope the token lacks), the endpoints they stand for, router settings
// and request targets. Whenever gin, set up as lura sets it up, routes a request to an endpoint,
// every rule covering the path it routed must have been applied: the request is refused, or
// allowed with the claim header of each of those rules.
func FuzzRouterRules(f *testing.F) {
	for seed := uint64(0); seed < 64; seed++ {
		f.Add(seed, byte(seed*7), uint64(seed*31+1))
	}
	f.Fuzz(func(t *testing.T, ruleSeed uint64, settings byte, targetSeed uint64) {
		checkRuleCase(t, ruleSeed, settings, targetSeed, 4)
	})
}

// TestRouterRulesDrawn runs the same check over JWKA_RULE_SETS drawn rule sets (default 2,000,
// as `make test` runs it), each with 64 request targets under every router setting: the bulk of
// the generated cases, without the fuzzing engine's instrumentation.
func TestRouterRulesDrawn(t *testing.T) {
	n := 2000
	if v := os.Getenv("JWKA_RULE_SETS"); v != "" {
		fmt.Sscan(v, &n)
	}
	start := time.Now()
	routedCases.Store(0)
	coveredChecks.Store(0)
	for i := 0; i < n; i++ {
		for settings := byte(0); settings < 16; settings++ {
			checkRuleCase(t, uint64(i), settings, uint64(i)*16+uint64(settings), 64)
		}
	}
	t.Logf("%d rule sets x 16 router settings x 64 targets = %d cases in %v: %d routed to an endpoint, %d rule-covers-request checks",
		n, n*16*64, time.Since(start).Round(time.Millisecond), routedCases.Load(), coveredChecks.Load())
	if routedCases.Load() < int64(n*16*64/10) {
		t.Errorf("only %d of %d drawn requests reached an endpoint: the generator no longer aims at the endpoints", routedCases.Load(), n*16*64)
	}
}

var routedCases, coveredChecks atomic.Int64

// checkRuleCase draws one rule set and its endpoints from ruleSeed, sets gin up with the router
// settings, and sends `targets` drawn request targets through gin and through the plugin.
func checkRuleCase(t *testing.T, ruleSeed uint64, settings byte, targetSeed uint64, targets int) {
	t.Helper()
	c, token := rulesChecker(t)
	{
		r := rand.New(rand.NewPCG(ruleSeed, 0))
		type rule struct {
			segs  []string
			scope string
		}
		var rules []rule
		var endpoints [][]string
		for n := 2 + r.IntN(5); len(rules) < n; {
			segs := drawPattern(r, r.IntN(4) == 0)
			scope := []string{"", "", "a", "c"}[r.IntN(4)]
			rules = append(rules, rule{segs, scope})
			if segs[len(segs)-1] != "*" {
				endpoints = append(endpoints, segs)
			}
		}
		for i := r.IntN(3); i > 0; i-- { // endpoints no rule lists
			endpoints = append(endpoints, drawPattern(r, false))
		}
		if len(endpoints) == 0 {
			return
		}
		var reached string
		e := bareEngine(settings)
		registered := map[string]bool{}
		ok := func() (ok bool) {
			defer func() { ok = recover() == nil }()
			for _, segs := range endpoints {
				p := ginPath(segs)
				if registered[p] {
					continue
				}
				registered[p] = true
				segs := segs
				e.GET(p, func(ctx *gin.Context) {
					// The path gin routed: the endpoint's pattern with the parameters it took.
					out := make([]string, len(segs))
					for i, s := range segs {
						if s == "{p}" {
							s = ctx.Param(fmt.Sprintf("p%d", i))
						}
						out[i] = s
					}
					reached = "/" + strings.Join(out, "/")
				})
			}
			return true
		}()
		if !ok {
			return // gin refuses this endpoint set (conflicting wildcards), as KrakenD would at start-up
		}
		var block struct {
			Rules []map[string]interface{} `json:"rules"`
		}
		for i, ru := range rules {
			m := map[string]interface{}{"paths": []string{"/" + strings.Join(ru.segs, "/")}, "propagate_claims": [][]string{{"sub", fmt.Sprintf("X-R%d", i)}}}
			if ru.scope != "" {
				m["scopes"] = []string{ru.scope}
			}
			block.Rules = append(block.Rules, m)
		}
		raw, _ := json.Marshal(block)
		checker, err := c.WithRules(string(raw))
		if err != nil {
			t.Fatalf("rules %s: %v", raw, err)
		}
		defer checker.Release()
		tr := rand.New(rand.NewPCG(targetSeed, ruleSeed))
		for try := 0; try < targets; try++ {
			target := drawTarget(tr, endpoints[tr.IntN(len(endpoints))])
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n")))
			if err != nil {
				continue // the server answers 400 itself
			}
			reached = ""
			e.ServeHTTP(httptest.NewRecorder(), req)
			if reached == "" {
				continue
			}
			routedCases.Add(1)
			outcome, _, headers := checker.Decide(req.URL.Path, "Bearer "+token, "")
			for i, ru := range rules {
				if !covers(ru.segs, reached) {
					continue
				}
				coveredChecks.Add(1)
				if outcome == core.Unprotected || (outcome == core.Allow && !strings.Contains(headers, fmt.Sprintf("X-R%d\t", i))) {
					t.Fatalf("router settings %04b, rules %s: GET %q (path %q) reaches endpoint path %q, which rule %d covers, and the plugin answered %d without applying it (claim headers %q)",
						settings&15, raw, target, req.URL.Path, reached, i, outcome, headers)
				}
			}
		}
	}
}
