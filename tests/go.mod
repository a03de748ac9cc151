module github.com/jwk-aggregator/jwk-aggregator/tests

go 1.25

require (
	github.com/go-jose/go-jose/v3 v3.0.5 // indirect
	golang.org/x/crypto v0.19.0 // indirect
)
