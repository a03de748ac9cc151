module github.com/jwk-aggregator/jwk-aggregator/go-shim

// Standard library only: a plugin shares every imported module with the gateway, at the same version.
go 1.25
