package fuzz

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/jwk-aggregator/jwk-aggregator/tests/internal/core"
)

// KrakenD endpoints as lura registers them in gin ({param} becomes :param); the first ones are
// protected by the rules below, the others are not.
var (
	protectedEndpoints = []string{"/orders/:id", "/users/:id/orders/:oid", "/admin", "/files/:name/raw"}
	publicEndpoints    = []string{"/public/:x", "/orders", "/users/:id", "/files/:name"}
	routerRules        = `{"rules": [{"paths": ["/orders/{id}", "/users/{id}/orders/{oid}", "/admin", "/files/{name}/raw"]}]}`
)

// engine builds gin the way lura's router/gin NewEngine does for one combination of the router
// settings that decide routing (redirects, extra slashes, 405s), with every endpoint recording
// that it was reached. lura's parameter check (on unless disable_path_decoding) is left out:
// it only refuses more, and the plugin must hold without it.
func engine(settings byte, reached *string) *gin.Engine {
	e := bareEngine(settings)
	for _, p := range append(append([]string{}, protectedEndpoints...), publicEndpoints...) {
		p := p
		h := func(c *gin.Context) { *reached = p }
		e.GET(p, h)
		e.POST(p, h)
	}
	if settings&16 != 0 { // auto_options: answered by gin itself, never a backend
		for _, p := range append(append([]string{}, protectedEndpoints...), publicEndpoints...) {
			e.OPTIONS(p, func(c *gin.Context) {})
		}
	}
	return e
}

// bareEngine is gin as lura's router/gin NewEngine sets it up for one combination of the router
// settings that decide routing (bit 0: no trailing-slash redirect, 1: no fixed-path redirect,
// 2: no 405s, 3: remove_extra_slash), with no endpoint yet.
func bareEngine(settings byte) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.RedirectTrailingSlash = settings&1 == 0
	e.RedirectFixedPath = settings&2 == 0
	e.HandleMethodNotAllowed = settings&4 == 0
	e.RemoveExtraSlash = settings&8 != 0
	e.ContextWithFallback = true
	return e
}

var (
	routerOnce sync.Once
	routerCore *core.Core
)

func routerChecker(t testing.TB) *core.Core {
	routerOnce.Do(func() {
		settings, _ := json.Marshal(map[string]interface{}{"port": 1, "origins": []string{origin()}})
		c, err := core.New(string(settings), routerRules)
		if err != nil {
			t.Fatal(err)
		}
		routerCore = c
	})
	return routerCore
}

// FuzzRouterPaths sends random request targets through gin, set up as KrakenD sets it up for
// each router setting, and through the plugin's decision on the path the plugin sees. Whenever
// gin routes a request to a protected endpoint, the plugin must have protected it: a request
// without a token is never passed on.
func FuzzRouterPaths(f *testing.F) {
	for _, s := range []string{
		"/orders/1", "/x/../orders/1", "/orders/./1", "//orders//1//", "/%2e%2e/orders/1", "/orders%2F1",
		"/ORDERS/1", "/orders/1;x", "/public/../orders/1", "/public/..%2f..%2forders/1", "/orders/..",
		"/users/1/orders/2/", "/users/1/./orders/2", "/users/1/x/../orders/2", "/files/a/raw/.", "/admin/",
		"/admin/.", "/ADMIN", "/x/../admin", "/files/%2e%2e/raw", "/orders/", "/orders//", "/orders/1/x/..",
		"http://h/x/../orders/1", "/orders\\1", "/%6frders/1", "/orders/%00",
	} {
		for _, settings := range []byte{0, 8, 11, 15, 24, 31} {
			f.Add(settings, s)
		}
	}
	c := routerChecker(f)
	f.Fuzz(func(t *testing.T, settings byte, target string) {
		if strings.ContainsAny(target, " \r\n") || target == "" {
			return
		}
		// The request exactly as KrakenD's HTTP server parses it.
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n")))
		if err != nil {
			return // the server answers 400 itself
		}
		for _, method := range []string{"GET", "POST", "OPTIONS"} {
			var reached string
			req.Method = method
			engine(settings&31, &reached).ServeHTTP(httptest.NewRecorder(), req)
			if reached == "" {
				continue
			}
			protected := false
			for _, p := range protectedEndpoints {
				protected = protected || p == reached
			}
			outcome := c.Check(req.URL.Path, "")
			if protected && outcome == core.Unprotected && method != "OPTIONS" {
				t.Fatalf("router settings %05b: %s %q (path %q) reaches %s, and the plugin lets it pass without a token", settings&31, method, target, req.URL.Path, reached)
			}
		}
	})
}
