module github.com/jwk-aggregator/jwk-aggregator/tools/sbom

// Standard library only, like plugin-check.
go 1.22
