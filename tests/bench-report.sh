#!/usr/bin/env bash
# Turns the `go test -bench` output of `make bench` into BENCHMARKS.md (stdout).
set -euo pipefail
raw=$1
gateway=${2:-}
tenants=${3:-}
cache=${4:-}
dpop=${5:-}
section() { if [ -n "$1" ] && [ -s "$1" ]; then cat "$1"; else echo "Not measured in this run: no KrakenD binary (see \`make krakend\`)."; fi; }
avg() { grep -E "^$1(-[0-9]+)?[[:space:]]" "$raw" | awk -v col="$2" '{for(i=1;i<=NF;i++) if($(i+1)==col){s+=$i;n++}} END{if(n) printf "%.0f", s/n; else print "NaN"}'; }
avgf() { grep -E "^$1(-[0-9]+)?[[:space:]]" "$raw" | awk -v col="$2" '{for(i=1;i<=NF;i++) if($(i+1)==col){s+=$i;n++}} END{if(n) printf "%.3f", s/n; else print "NaN"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "NaN" }'; }

cold1=$(avg BenchmarkColdMerge/origins=1 ns/op)
cold10=$(avg BenchmarkColdMerge/origins=10 ns/op)
fetches=$(avgf BenchmarkConcurrentColdRequests fetches/origin)
agg=$(avg BenchmarkServe/aggregator ns/op)
static=$(avg BenchmarkServe/go-static ns/op)

cat <<MD
# Benchmarks

Produced by \`make bench\` on $(date -u +%Y-%m-%d) (UTC). Regenerate with \`make bench\`; the raw
\`go test -bench\` output follows the tables. Each comparison is measured side by side in one run, so
read the ratios rather than the absolute numbers: this machine is shared and noisy.

Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),
$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) memory, $(uname -sr);
$(go version | cut -d' ' -f3), $(rustc --version | cut -d' ' -f1-2).

Everything goes through the real plugin factory, its loopback HTTP server and the Rust core, against
real loopback origins (\`go-shim/bench_test.go\`).

## Cold merge: 10 origins vs 1 (each origin answers after 100 ms)

| origins | time to the first merged set |
| --- | --- |
| 1 | $(awk -v n="$cold1" 'BEGIN{printf "%.1f ms", n/1e6}') |
| 10 | $(awk -v n="$cold10" 'BEGIN{printf "%.1f ms", n/1e6}') |
| ratio 10/1 | **$(ratio "$cold10" "$cold1")** (1.00 = fully parallel; sequential fetching would be about 10) |

## 1,000 concurrent cold requests (cache off, two origins answering after 100 ms)

Origin fetches per origin: **$fetches** (1 = every request shared one fetch per origin).

## Serving the merged set with \`cache: true\` vs a Go handler writing the same bytes

Loopback HTTP, keep-alive clients, \`b.RunParallel\` with 4 goroutines per core.

| server | ns/request | requests/s |
| --- | --- | --- |
| jwk-aggregator (Go server, cgo call, Rust core) | $agg | $(awk -v n="$agg" 'BEGIN{printf "%.0f", 1e9/n}') |
| plain Go handler, same bytes | $static | $(awk -v n="$static" 'BEGIN{printf "%.0f", 1e9/n}') |
| ratio aggregator/plain (time per request) | **$(ratio "$agg" "$static")** | |

## Token verification: Go→C→Rust against go-jose, same tokens

\`tests/bench/verify_bench_test.go\`: go-jose does what krakend-jose does per request (parse, verify
with the already-parsed key, validate claims); the Rust path is the auth handler's whole decision
through the C API (path rule, extraction, parse, key lookup, signature, claims), with the
verified-token cache off, and on (a repeated token).

| alg | go-jose ns/op | Rust via cgo ns/op | ratio Rust/go-jose | cache hit ns/op |
| --- | --- | --- | --- | --- |
$(for a in RS256 ES256 EdDSA; do g=$(avg "BenchmarkVerify/$a/go-jose" ns/op); r=$(avg "BenchmarkVerify/$a/rust-via-cgo" ns/op); h=$(avg "BenchmarkVerify/$a/rust-via-cgo-cache-hit" ns/op); echo "| $a | $g | $r | $(ratio "$r" "$g") | $h |"; done)

An unprotected path costs $(avg "BenchmarkVerify/unprotected-path" ns/op) ns per request (one cgo call and the path rules).

## What the handler adds to a request, in process

\`go-shim\` BenchmarkAuthHandler: the \`jwk-aggregator-auth\` handler's whole work on one request
(reading the credentials, the cgo call, the core's decision, applying it), side by side with the
next handler alone (which copies the headers, as a backend proxy does).

| request | ns/request | added by the handler |
| --- | --- | --- |
$(n=$(avg "BenchmarkAuthHandler/next-handler-alone" ns/op); for c in next-handler-alone unprotected-path cache-hit cache-hit-claim-header; do v=$(avg "BenchmarkAuthHandler/$c" ns/op); echo "| $c | $v | $(awk -v a="$v" -v b="$n" 'BEGIN{printf "%.0f ns", a-b}') |"; done)

## A DPoP check beside a bearer check, in process

\`tests/bench\` BenchmarkDPoP: the handler's whole decision through the C API, verified-token cache
on (the token's own signature is verified once). A DPoP request adds the proof's checks, an ES256
signature among them, and the replay store: this process's memory, or a real Redis on loopback.

| request | ns/request | ratio to bearer |
| --- | --- | --- |
$(n=$(avg "BenchmarkDPoP/bearer" ns/op); for c in bearer dpop-memory-store dpop-redis-store; do v=$(avg "BenchmarkDPoP/$c" ns/op); echo "| $c | $v | $(awk -v a="$v" -v b="$n" 'BEGIN{printf "%.1f", a/b}') |"; done)

## Gateway throughput (real KrakenD, wrk)

$(section "$gateway")

## Waiting for keys while the core logs (before and after the keys-ready signal)

$(cat "$(dirname "$0")/bench/waiting.md")

## Where a protected request's time goes (real KrakenD, perf)

$(cat "$(dirname "$0")/bench/profile.md")

## Dynamic issuers at scale (real KrakenD, \`tests/cmd/tenant-bench\`)

10,000 tenants of a multi-tenant provider, each trusted by \`issuer_patterns\` at its first token:
how fast they are discovered, the memory and threads they cost the gateway, a known tenant's
latency while new tenants arrive, and the refresh load each tenant puts on its provider (see
"Sizing a fleet" (docs/sizing.md) for what that means for a fleet).

$(section "$tenants")

## DPoP beside bearer through the gateway (real KrakenD and Redis, \`tests/cmd/dpop-bench\`)

$(section "$dpop")

## Memory of the verified-token cache (real KrakenD, \`tests/cmd/cache-bench\`)

$(section "$cache")

## Raw output

\`\`\`
$(grep -E '^(Benchmark|goos|goarch|cpu|pkg)' "$raw")
\`\`\`
MD
