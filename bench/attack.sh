#!/usr/bin/env bash
# Login attack simulation: one attacker hammers one account, another sprays many accounts, both as fast
# as they can and each request from a different client IP (a botnet: X-Forwarded-For from a trusted
# proxy, addresses in the RFC 2544 benchmarking range 198.18.0.0/15 — header values only, all traffic is on
# loopback). Meanwhile a third load generator measures an unrelated authenticated route (GET /todos).
# Reports the credential checks that reached the backend, and p50/p99 of the unrelated route with and
# without the attack (medians of ROUNDS interleaved runs).
#
# Usage: bench/attack.sh             (env: ROUNDS=3 DURATION=10s)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-10s}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p edge-proxy -p todo-backend --bins

. bench/lib.sh

# Production cost for password hashing: the attack must not be cheap for the backend either.
TODO_BACKEND__PASSWORD__MEMORY_KIB=19456 TODO_BACKEND__PASSWORD__ITERATIONS=2 start_backend
P=$(free_port); PA=$(free_port)
# Production throttle settings (minutes), loopback as the trusted proxy in front.
EDGE_PROXY__LISTEN=127.0.0.1:$P EDGE_PROXY__ADMIN__LISTEN=127.0.0.1:$PA \
EDGE_PROXY__UPSTREAMS__TODO__PEERS="[\"127.0.0.1:$B\"]" EDGE_PROXY__LOG__FILTER=error \
EDGE_PROXY__TRUSTED_PROXIES='["127.0.0.1"]' EDGE_PROXY__LOGIN__BACKOFF_BASE_SECONDS=60 \
EDGE_PROXY__LOGIN__MAX_WAIT_SECONDS=3600 EDGE_PROXY__LOGIN__IP__RATE_PER_MINUTE=30 \
EDGE_PROXY__LOGIN__IP__WINDOW_SECONDS=600 EDGE_PROXY__LOGIN__IP__BAN_SECONDS=900 \
  target/release/edge-proxy --config config/test/proxy.toml & pids+=($!)
wait_for "http://127.0.0.1:$PA/readyz"

register() { curl -fs -X POST "http://127.0.0.1:$P/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"$1\",\"password\":\"correct horse battery\"}" >/dev/null; }
register victim@example.com
register reader@example.com
token=$(curl -fs -X POST "http://127.0.0.1:$P/auth/login" -H 'content-type: application/json' \
  -d '{"email":"reader@example.com","password":"correct horse battery"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
for i in 1 2 3; do curl -fs -X POST "http://127.0.0.1:$P/todos" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d "{\"title\":\"t$i\"}" >/dev/null; done

printf 'wrk.headers["authorization"] = "Bearer %s"\n' "$token" > "$work/reader.lua"
cat > "$work/hammer.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"email":"victim@example.com","password":"guess-123456"}'
request = function()
  wrk.headers["x-forwarded-for"] = string.format("198.%d.%d.%d", math.random(18, 19), math.random(0, 255), math.random(1, 254))
  return wrk.format()
end
LUA
cat > "$work/spray.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  wrk.headers["x-forwarded-for"] = string.format("198.%d.%d.%d", math.random(18, 19), math.random(0, 255), math.random(1, 254))
  wrk.body = string.format('{"email":"user%d@example.com","password":"Winter2026!"}', n % 5000)
  return wrk.format()
end
LUA

checks() { curl -fs "http://127.0.0.1:$BA/metrics" | awk '/todo_backend_http_requests_total\{.*route="\/internal\/credentials\/verify"/ {s+=$NF} END {print s+0}'; }
attempts() { curl -fs "http://127.0.0.1:$PA/metrics" | awk '/^edge_proxy_login_attempts_total/ {s+=$NF} END {print s+0}'; }
measure() { # label
  local out; out=$(wrk -t1 -c16 -d"$DURATION" --latency -s "$work/reader.lua" "http://127.0.0.1:$P/todos")
  echo "$1 $(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="50%" {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out")" >> "$work/results"
}

for r in $(seq 1 "$ROUNDS"); do
  echo "round $r/$ROUNDS: quiet" >&2
  measure quiet
  echo "round $r/$ROUNDS: under attack" >&2
  c0=$(checks); a0=$(attempts)
  wrk -t1 -c16 -d"$DURATION" -s "$work/hammer.lua" "http://127.0.0.1:$P/auth/login" > "$work/hammer.out" &
  h=$!
  wrk -t1 -c16 -d"$DURATION" -s "$work/spray.lua" "http://127.0.0.1:$P/auth/login" > "$work/spray.out" &
  s=$!
  measure attack
  wait $h $s
  c1=$(checks); a1=$(attempts)
  echo "checks $((c1 - c0)) $((a1 - a0))" >> "$work/results"
done
echo "victim account state: $(curl -fs -H "authorization: Bearer $(cat config/test/fixtures/admin-token.TEST-ONLY.txt)" "http://127.0.0.1:$PA/admin/accounts/victim@example.com")"

python3 - "$work/results" <<'PY'
import statistics, sys
def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float(v)
runs, checks = {}, []
for line in open(sys.argv[1]):
    f = line.split()
    if f[0] == "checks":
        checks.append((int(f[1]), int(f[2])))
    else:
        runs.setdefault(f[0], []).append((float(f[1]), ms(f[2]), ms(f[3])))
print(f"{'GET /todos':<14}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}   (median of {len(runs['quiet'])} interleaved runs)")
for k in ("quiet", "attack"):
    v = runs[k]
    print(f"{k:<14}{statistics.median(x[0] for x in v):>10.0f}{statistics.median(x[1] for x in v):>10.3f}{statistics.median(x[2] for x in v):>10.3f}")
for i, (c, a) in enumerate(checks, 1):
    print(f"attack round {i}: {a} login attempts at the proxy, {c} credential checks reached the backend")
PY
