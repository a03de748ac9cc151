module github.com/jwk-aggregator/jwk-aggregator/tests

go 1.25
