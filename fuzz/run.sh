#!/usr/bin/env bash
# Runs one fuzz target: fuzz/run.sh TARGET SECONDS [libFuzzer flags...]. New inputs go to
# fuzz/work/TARGET (not committed), seeds come from fuzz/corpus/TARGET and fuzz/dict/TARGET.dict.
# A crash, a leak, an input over 1 s or over 2 GB fails the run: the input is in
# fuzz/artifacts/TARGET/; copy it to fuzz/regressions/TARGET/ with the fix. Then every input of
# the corpus is timed once: one over 100 ms fails too.
set -euo pipefail
cd "$(dirname "$0")"
t=$1 secs=${2:-60}
shift $(( $# < 2 ? $# : 2 ))
mkdir -p "work/$t" "artifacts/$t"
dict=(); [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
set +e
cargo +nightly fuzz run "$t" "work/$t" "corpus/$t" -- \
	-max_total_time="$secs" -timeout=1 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
	-print_final_stats=1 "${dict[@]}" "$@" >"work/$t.log" 2>&1
status=$?
set -e
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^(stat::|==[0-9]+==|SUMMARY|Test unit written|ParseDictionaryFile)|panicked' -A1 "work/$t.log" | grep -v '^--$' || true
[ "$status" = 0 ] || { echo "FAIL: fuzz target $t found a bug (exit $status); the input is in fuzz/artifacts/$t/"; exit 1; }
# libFuzzer reports slow units in whole seconds only: time every corpus input, one run each.
bin=target/x86_64-unknown-linux-gnu/release/$t
slowest=$(find "work/$t" "corpus/$t" -type f -print0 | xargs -0 -n 500 "$bin" -runs=1 2>&1 |
	awk '/^Executed .* in [0-9]+ ms$/ { if ($(NF-1) > max) { max = $(NF-1); f = $2 } } END { printf "%d %s\n", max, f }')
echo "$t: slowest input ${slowest% *} ms (${slowest#* })"
[ "${slowest% *}" -le 100 ] || { echo "FAIL: fuzz target $t: an input takes over 100 ms: ${slowest#* }"; exit 1; }
