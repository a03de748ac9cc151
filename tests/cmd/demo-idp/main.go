// Command demo-idp runs identity providers on loopback for `make run`: each serves its JWK Set
// at /jwks.json and hands out signed tokens at /token.
//
//	demo-idp -provider idp-a:9101:RS256 -provider idp-b:9102:ES256
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
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
