module github.com/jwk-aggregator/jwk-aggregator/go-shim

// Standard library only: a plugin shares every imported module with the gateway, at the same version.
// go 1.22: the oldest release it compiles with whose plugins carry Go build information, which
// make check-plugin reads (Go 1.20 writes none into plugins). That is KrakenD 2.6.1 and later.
go 1.22
