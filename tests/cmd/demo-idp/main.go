// Command demo-idp runs identity providers on loopback for `make run`: each serves its JWK Set
// at /jwks.json and hands out signed tokens at /token.
//
//	demo-idp -provider idp-a:9101:RS256 -provider idp-b:9102:ES256 -realms 9104
//
// -realms serves a Keycloak-like multi-tenant provider: realms under /realms/<name>, created with
// POST /admin/realms/<name>?alg=ES256 and deleted with DELETE, tokens at /realms/<name>/token.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/jwk-aggregator/jwk-aggregator/tests/idp"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var specs list
	flag.Var(&specs, "provider", "name:port:alg[,alg...] (repeatable)")
	realmsPort := flag.Int("realms", 0, "port of a multi-tenant provider with a realm \"acme\" (0: none)")
	flag.Parse()
	if len(specs) == 0 {
		specs = list{"idp-a:9101:RS256", "idp-b:9102:ES256"}
	}
	for _, spec := range specs {
		parts := strings.Split(spec, ":")
		if len(parts) != 3 {
			fmt.Fprintln(os.Stderr, "bad -provider", spec)
			os.Exit(2)
		}
		port, err := strconv.Atoi(parts[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad port in", spec)
			os.Exit(2)
		}
		p, err := idp.Start(parts[0], port, strings.Split(parts[2], ",")...)
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo-idp:", err)
			os.Exit(1)
		}
		fmt.Printf("%s: JWK Set %s, tokens %s/token\n", p.Name, p.JWKSURL(), p.URL)
	}
	if *realmsPort != 0 {
		r, err := idp.StartRealms(*realmsPort, true)
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo-idp:", err)
			os.Exit(1)
		}
		r.Create("acme", "ES256")
		fmt.Printf("realms: %s/realms/<name> (realm acme exists), POST %s/admin/realms/<name> creates one\n", r.URL, r.URL)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
