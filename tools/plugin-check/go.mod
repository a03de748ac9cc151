module github.com/jwk-aggregator/jwk-aggregator/tools/plugin-check

// Standard library only; any Go that can build the plugin builds this.
go 1.22
