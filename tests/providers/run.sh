#!/usr/bin/env bash
# Real identity providers for the tests, on loopback: Keycloak 26.5.6, ORY Hydra v2.3.0 and panva's
# oidc-provider 9.13.3 (tests/providers/oidc-provider/server.mjs).
#
#   tests/providers/run.sh COMMAND [ARG...]   start them, run COMMAND with their variables
#                                             exported, stop them; exit with COMMAND's status
#   tests/providers/run.sh --serve            start them and keep them running until Ctrl-C
#
# The variables (KEYCLOAK_URL, KEYCLOAK_ADMIN, KEYCLOAK_ADMIN_PASSWORD, HYDRA_PUBLIC_URL,
# HYDRA_ADMIN_URL, OIDC_PROVIDER_URL, OIDC_PROVIDER_CLIENT_SECRET) are also written to
# build/providers.env. Logs: build/providers/*.log, their tails printed on failure.
# What is missing is installed first (Java, Node.js, Maven, unzip from Debian's packages), then
# downloaded or built once into ~/.cache/jwk-aggregator/providers/ and reused: Keycloak's distribution from Maven
# Central, Hydra built from its Go module, oidc-provider from npm.
set -euo pipefail

KEYCLOAK_VERSION=26.5.6
HYDRA_VERSION=v2.3.0
GO=${GO:-go}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/providers
# Outside the clone, beside the Makefile's pinned tools, so that a fresh clone (CI) reuses them.
CACHE=${JWKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jwk-aggregator}/providers
LOGS=$ROOT/build/providers
ENV_FILE=$ROOT/build/providers.env
RUN=$LOGS/run # pid files of the servers and of the preparing jobs

log() { echo "providers: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# ---- downloads and builds, each once into $CACHE ----

KC_HOME=$CACHE/keycloak-$KEYCLOAK_VERSION
prepare_keycloak() {
	[ -x "$KC_HOME/bin/kc.sh" ] && return 0
	local tmp=$CACHE/keycloak.tmp
	rm -rf "$tmp"
	mvn -B -q dependency:copy -Dartifact=org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip -DoutputDirectory="$tmp"
	unzip -q "$tmp/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip" -d "$tmp"
	mv "$tmp/keycloak-$KEYCLOAK_VERSION" "$KC_HOME"
	rm -rf "$tmp"
}

HYDRA_BIN=$CACHE/hydra-$HYDRA_VERSION
prepare_hydra() {
	[ -x "$HYDRA_BIN" ] && return 0
	local src=$CACHE/hydra-src.tmp dir
	rm -rf "$src"
	dir=$(cd "$CACHE" && "$GO" mod download -json "github.com/ory/hydra/v2@$HYDRA_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -d "$dir" ] || { echo "go mod download gave no folder for github.com/ory/hydra/v2@$HYDRA_VERSION"; return 1; }
	cp -r "$dir" "$src"
	chmod -R u+w "$src"
	# Hydra's go.mod replaces its API client with ./internal/httpclient, a nested module that the
	# module's zip leaves out: the client's published module (the version go.mod requires) is used.
	# SQLite's C at -O1 without debug information: a fifth less build time, fast enough here.
	(cd "$src" && "$GO" mod edit -dropreplace github.com/ory/hydra-client-go/v2 &&
		CGO_ENABLED=1 CGO_CFLAGS="-O1 -g0" nice "$GO" build -mod=mod -trimpath -tags sqlite,sqlite_omit_load_extension \
			-ldflags "-s -w -X github.com/ory/hydra/v2/driver/config.Version=$HYDRA_VERSION" -o "$HYDRA_BIN.tmp" .)
	mv "$HYDRA_BIN.tmp" "$HYDRA_BIN"
	rm -rf "$src"
}

# The folder is named after package.json and package-lock.json: a change installs anew.
OP_DIR=$CACHE/oidc-provider-$(cat "$HERE/oidc-provider/package.json" "$HERE/oidc-provider/package-lock.json" | sha256sum | cut -c1-12)
prepare_oidc_provider() {
	[ -f "$OP_DIR/node_modules/oidc-provider/package.json" ] && return 0
	local tmp=$OP_DIR.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	cp "$HERE/oidc-provider/package.json" "$HERE/oidc-provider/package-lock.json" "$tmp/"
	(cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error)
	rm -rf "$OP_DIR"
	mv "$tmp" "$OP_DIR"
}

# Internal: `run.sh --prepare NAME` runs prepare_NAME (in its own process group, see job below).
if [ "${1:-}" = --prepare ]; then
	"prepare_${2//-/_}"
	exit
fi
if [ $# -eq 0 ]; then
	echo "usage: $0 COMMAND [ARG...] | $0 --serve" >&2
	exit 2
fi
SERVE=0
[ "$1" = --serve ] && SERVE=1

mkdir -p "$CACHE" "$LOGS" "$RUN"
for f in "$RUN"/*.pid; do
	[ -e "$f" ] || continue
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		die "another $0 is running here (pid $pid in $f); stop it first"
	fi
	rm -f "$f"
done
rm -f "$LOGS"/*.log "$ENV_FILE"

# Stops every server (its whole process group) and preparing job this script started.
cleanup() {
	local status=$? f pid i
	trap - EXIT INT TERM
	for f in "$RUN"/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	done
	for i in $(seq 600); do # Keycloak may be writing its class archive
		local alive=0
		for f in "$RUN"/*.pid; do
			[ -e "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1
		done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	# A Keycloak that stopped by itself has written its whole class archive.
	if [ -s "${KC_CDS:-}.tmp" ] && ! kill -0 "$(cat "$RUN/keycloak.pid" 2>/dev/null)" 2>/dev/null; then
		mv "$KC_CDS.tmp" "$KC_CDS"
	fi
	rm -f "${KC_CDS:-/nonexistent}.tmp"
	for f in "$RUN"/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
		rm -f "$f"
	done
	if [ "$status" != 0 ]; then
		for f in "$LOGS"/*.log; do
			[ -s "$f" ] || continue
			echo "---- last lines of $f" >&2
			tail -n 30 "$f" >&2
		done
		log "failed (exit $status); logs in $LOGS"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# need COMMAND PACKAGE: installs Debian's PACKAGE when COMMAND is missing, or fails saying how.
need() {
	command -v "$1" >/dev/null && return 0
	log "$1 is missing: installing it with: apt-get install -y $2"
	if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; } >"$LOGS/apt-$2.log" 2>&1; then
		tail -n 20 "$LOGS/apt-$2.log" >&2
		die "$1 is missing and could not be installed; install it with: apt-get install -y $2"
	fi
	command -v "$1" >/dev/null || die "$1 is still missing after apt-get install -y $2"
}

command -v "$GO" >/dev/null || die "Go is missing (it builds Hydra); install Go 1.22 or later"
need curl curl
need python3 python3
need unzip unzip
need cc gcc # Hydra's SQLite driver is cgo
# Keycloak 26 runs on Java 17 or later.
java_major() { "${1:-java}" -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == 1 ? v[2] : v[1]); exit }'; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then
	command -v java >/dev/null && log "java is $(java_major), Keycloak needs 17 or later"
	need /usr/lib/jvm/java-17-openjdk-amd64/bin/java openjdk-17-jre-headless
	export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 PATH=/usr/lib/jvm/java-17-openjdk-amd64/bin:$PATH
fi
need mvn maven
need node nodejs
need npm npm
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "oidc-provider 9 needs Node.js 20 or later, node is $(node --version); install a newer Node.js"

# ---- ports, secrets, servers ----

read -r KC_PORT HYDRA_PUBLIC_PORT HYDRA_ADMIN_PORT OP_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(4)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
secret() { head -c 24 /dev/urandom | base64 | tr -d '/+=' | cut -c1-24; }
KC_ADMIN=admin
KC_PASSWORD=$(secret)
OP_SECRET=$(secret)
HYDRA_SECRET=$(secret)$(secret)

# start NAME COMMAND...: runs a server in its own process group, its output in build/providers/NAME.log.
declare -A STARTED
start() {
	local name=$1
	shift
	STARTED[$name]=$(now)
	setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
	echo $! >"$RUN/$name.pid"
}

# memory: the resident memory of each server (all processes of its session), in MB.
memory() {
	local name out=""
	for name in keycloak hydra oidc-provider; do
		out="$out $name $(ps -o rss= --sid "$(cat "$RUN/$name.pid")" | awk '{ s += $1 } END { printf "%d", s / 1024 }') MB,"
	done
	log "memory:${out%,}"
}

# Keycloak's class data sharing archive, written when the first Keycloak stops (some 20 s more),
# makes later starts a few seconds faster; it is named after the Java build (another Java writes
# its own). Not written under CI, whose clone starts Keycloak once.
KC_CDS=$CACHE/keycloak-$KEYCLOAK_VERSION-$(java -version 2>&1 | sha256sum | cut -c1-8).jsa
start_keycloak() {
	local cds="-XX:SharedArchiveFile=$KC_CDS"
	if [ ! -s "$KC_CDS" ]; then
		cds=
		[ -n "${CI:-}" ] || cds="-XX:ArchiveClassesAtExit=$KC_CDS.tmp"
	fi
	KC_BOOTSTRAP_ADMIN_USERNAME=$KC_ADMIN KC_BOOTSTRAP_ADMIN_PASSWORD=$KC_PASSWORD \
		JAVA_OPTS_APPEND="-XX:TieredStopAtLevel=1 $cds -Xlog:cds=off ${KEYCLOAK_JAVA_OPTS:-}" \
		start keycloak "$KC_HOME/bin/kc.sh" start-dev --http-host=127.0.0.1 --http-port="$KC_PORT" \
		--db=dev-mem --hostname="http://127.0.0.1:$KC_PORT"
}

start_hydra() {
	DSN=memory SECRETS_SYSTEM=$HYDRA_SECRET URLS_SELF_ISSUER=http://127.0.0.1:$HYDRA_PUBLIC_PORT \
		SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT=$HYDRA_PUBLIC_PORT \
		SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT=$HYDRA_ADMIN_PORT \
		STRATEGIES_ACCESS_TOKEN=jwt LOG_LEVEL=info \
		start hydra "$HYDRA_BIN" serve all --dev --sqa-opt-out
}

start_oidc_provider() {
	cp "$HERE/oidc-provider/server.mjs" "$OP_DIR/server.mjs" # resolves oidc-provider from its node_modules
	PORT=$OP_PORT CLIENT_SECRET=$OP_SECRET start oidc-provider node "$OP_DIR/server.mjs"
}

# wait_ready NAME URL SECONDS: until URL answers 200; fails early when the server exits.
wait_ready() {
	local name=$1 url=$2 deadline=$((SECONDS + $3))
	while ! curl -sf -o /dev/null --max-time 5 "$url"; do
		kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null || die "$name exited before it was ready (build/providers/$name.log)"
		[ $SECONDS -lt $deadline ] || die "$name was not ready after $3 s (build/providers/$name.log)"
		sleep 0.2
	done
	log "$name ready in $(since "${STARTED[$name]}") after its start"
}

# Keycloak takes longest (about 20 s to start): prepared and started first; Hydra's build (minutes,
# once) and oidc-provider's install run beside it. Each job runs in its own process group.
T0=$(now)
job() { # job NAME: runs prepare_NAME in the background, its output in build/providers/prepare-NAME.log
	start "prepare-$1" "$HERE/run.sh" --prepare "$1"
}
declare -A PREPARING
[ -x "$KC_HOME/bin/kc.sh" ] || { PREPARING[keycloak]=1; log "downloading Keycloak $KEYCLOAK_VERSION into $KC_HOME (once)"; }
job keycloak
[ -x "$HYDRA_BIN" ] || { PREPARING[hydra]=1; log "building Hydra $HYDRA_VERSION into $HYDRA_BIN (once; a few minutes)"; }
job hydra
[ -f "$OP_DIR/node_modules/oidc-provider/package.json" ] || { PREPARING[oidc-provider]=1; log "installing oidc-provider into $OP_DIR (once)"; }
job oidc-provider

# await NAME: waits for a preparing job; fails with its log when it failed.
await() {
	local pid
	pid=$(cat "$RUN/$1.pid")
	while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
	rm -f "$RUN/$1.pid"
	case $1 in
	prepare-keycloak) [ -x "$KC_HOME/bin/kc.sh" ] ;;
	prepare-hydra) [ -x "$HYDRA_BIN" ] ;;
	prepare-oidc-provider) [ -f "$OP_DIR/node_modules/oidc-provider/package.json" ] ;;
	esac || die "$1 failed (build/providers/$1.log)"
	[ -z "${PREPARING[${1#prepare-}]:-}" ] || log "$1 done after $(since "$T0")"
}
await prepare-keycloak
start_keycloak
await prepare-oidc-provider
start_oidc_provider
wait_ready oidc-provider "http://127.0.0.1:$OP_PORT/.well-known/openid-configuration" 60
wait_ready keycloak "http://127.0.0.1:$KC_PORT/realms/master/.well-known/openid-configuration" 300
await prepare-hydra
start_hydra
wait_ready hydra "http://127.0.0.1:$HYDRA_ADMIN_PORT/health/ready" 60
log "all ready after $(since "$T0")"

cat >"$ENV_FILE.tmp" <<EOF
KEYCLOAK_URL=http://127.0.0.1:$KC_PORT
KEYCLOAK_ADMIN=$KC_ADMIN
KEYCLOAK_ADMIN_PASSWORD=$KC_PASSWORD
HYDRA_PUBLIC_URL=http://127.0.0.1:$HYDRA_PUBLIC_PORT
HYDRA_ADMIN_URL=http://127.0.0.1:$HYDRA_ADMIN_PORT
OIDC_PROVIDER_URL=http://127.0.0.1:$OP_PORT
OIDC_PROVIDER_CLIENT_SECRET=$OP_SECRET
OIDC_PROVIDER_SERVER=$OP_DIR/server.mjs
PROVIDERS_LOG_DIR=$LOGS
EOF
mv "$ENV_FILE.tmp" "$ENV_FILE"
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a

if [ $SERVE = 1 ]; then
	trap 'exit 0' INT TERM # stopping them is how --serve ends
	memory
	log "running; their variables are in $ENV_FILE (set -a; . $ENV_FILE; set +a). Ctrl-C stops them."
	echo "$ENV_FILE"
	while sleep 2; do
		for name in keycloak hydra oidc-provider; do
			kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null || die "$name stopped (build/providers/$name.log)"
		done
	done
fi

set +e
"$@"
status=$?
set -e
memory
exit $status
