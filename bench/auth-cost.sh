#!/usr/bin/env bash
# The authenticated route's cost per request, split into its parts, and the Redis round trips it makes.
#
# 1. criterion micro-benchmarks (proxy/benches/auth_path.rs): token verification (own HS256 and EdDSA,
#    external EdDSA and RS256-2048), the session-store lookup (in-process and Redis on loopback), and
#    signing the identity assertion (HS256 and EdDSA). Medians are printed.
# 2. Redis round trips per request: edge-proxy on the Redis store in front of the backend, wrk on an
#    authenticated route and on a public one; Redis's own command counter (after CONFIG RESETSTAT)
#    divided by the requests the proxy answered.
#
# Usage: bench/auth-cost.sh   (env: REDIS_URL=redis://127.0.0.1:6379 DURATION=5s MEASURE=3)
# The Redis it uses must be otherwise idle while it runs (its statistics are reset).
set -euo pipefail
cd "$(dirname "$0")/.."
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" DURATION="${DURATION:-5s}" MEASURE="${MEASURE:-3}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

. bench/lib.sh

echo "== micro-benchmarks (criterion medians)"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.pem" 2>/dev/null
openssl rsa -in "$work/rsa.pem" -traditional -outform DER -out "$work/rsa.der" 2>/dev/null
BENCH_RSA_KEY="$work/rsa.der" REDIS_URL="$REDIS_URL" \
  cargo bench -q -p edge-proxy --bench auth_path -- --warm-up-time 1 --measurement-time "$MEASURE" 2>/dev/null \
  | awk '/^[a-z_]+\/[a-z0-9_]+/ {name=$1} /time:/ {sub(/.*time: +\[/, ""); split($0, t, " "); printf "  %-36s %s %s\n", name, t[3], t[4]}'

echo "== Redis round trips per proxied request"
cargo build --release -q -p edge-proxy -p todo-backend --bins
P=$(free_port); PA=$(free_port)
prefix="bench-auth-$RANDOM:"
start_backend
EDGE_PROXY__LISTEN=127.0.0.1:$P EDGE_PROXY__ADMIN__LISTEN=127.0.0.1:$PA \
EDGE_PROXY__UPSTREAMS__TODO__PEERS="[\"127.0.0.1:$B\"]" EDGE_PROXY__LOG__FILTER=error EDGE_PROXY__SERVER__THREADS=2 \
EDGE_PROXY__STORE__BACKEND=redis EDGE_PROXY__STORE__REDIS_URL="$REDIS_URL" EDGE_PROXY__STORE__KEY_PREFIX="$prefix" \
  target/release/edge-proxy --config config/test/proxy.toml & pids+=($!)
wait_for "http://127.0.0.1:$PA/readyz"

email="bench-$RANDOM@example.com"
curl -fs -X POST "http://127.0.0.1:$P/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"correct horse battery\"}" >/dev/null
token=$(curl -fs -X POST "http://127.0.0.1:$P/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"correct horse battery\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
printf 'wrk.headers["authorization"] = "Bearer %s"\n' "$token" > "$work/bearer.lua"

rcli() { redis-cli -u "$REDIS_URL" "$@"; }
measure() { # label url [script]
  rcli CONFIG RESETSTAT >/dev/null
  local out
  if [ -n "${3:-}" ]; then out=$(wrk -t1 -c16 -d"$DURATION" -s "$3" "$2"); else out=$(wrk -t1 -c16 -d"$DURATION" "$2"); fi
  # INFO itself is one command; CONFIG RESETSTAT is not counted after the reset.
  local cmds reqs non2xx
  cmds=$(rcli INFO stats | awk -F: '/^total_commands_processed/ {print $2-1}' | tr -d '\r')
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '  %-28s %8s requests  %8s Redis commands  %.3f per request%s\n' "$1" "$reqs" "$cmds" \
    "$(python3 -c "print($cmds/$reqs)")" "${non2xx:+  (non-2xx: $non2xx)}"
  rcli INFO commandstats | grep -E '^cmdstat_(mget|evalsha|get|set)' | sed 's/^/      /' || true
}
measure "GET /todos (authenticated)" "http://127.0.0.1:$P/todos" "$work/bearer.lua"
measure "GET /openapi.json (public)" "http://127.0.0.1:$P/openapi.json"
rcli --scan --pattern "${prefix}*" | xargs -r redis-cli -u "$REDIS_URL" DEL >/dev/null
