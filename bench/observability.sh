#!/usr/bin/env bash
# Cost of per-request metrics and the access log on the proxy's hot path: the same proxy, restarted per
# configuration, with `metrics.enabled` and `log.access` on (JSON access log written to a file, as in
# production) or both off. Rounds alternate the order; medians and the on/off throughput ratio for the
# authenticated route (GET /todos) and a public route.
#
# Usage: bench/observability.sh      (env: ROUNDS=5 DURATION=10s CONNECTIONS=32;
#                                    ON_METRICS=false or ON_ACCESS_LOG=false to isolate one of them)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}" DURATION="${DURATION:-10s}" CONNECTIONS="${CONNECTIONS:-32}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p edge-proxy -p todo-backend --bins

. bench/lib.sh

start_backend

# What "on" enables (both by default; set one to false to measure the other alone).
ON_METRICS="${ON_METRICS:-true}" ON_ACCESS_LOG="${ON_ACCESS_LOG:-true}"
P=$(free_port); PA=$(free_port)
proxy_pid=""
start_proxy() { # on|off
  local metrics=$ON_METRICS access=$ON_ACCESS_LOG
  [ "$1" = off ] && { metrics=false; access=false; }
  EDGE_PROXY__LISTEN=127.0.0.1:$P EDGE_PROXY__ADMIN__LISTEN=127.0.0.1:$PA \
  EDGE_PROXY__UPSTREAMS__TODO__PEERS="[\"127.0.0.1:$B\"]" EDGE_PROXY__SERVER__THREADS=2 \
  EDGE_PROXY__LOG__FORMAT=json EDGE_PROXY__LOG__FILTER=info EDGE_PROXY__LOG__ACCESS=$access \
  EDGE_PROXY__METRICS__ENABLED=$metrics \
    target/release/edge-proxy --config config/test/proxy.toml >> "$work/proxy-$1.log" 2>&1 &
  proxy_pid=$!
  wait_for "http://127.0.0.1:$PA/readyz"
}
stop_proxy() { kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; }

email="obs-$RANDOM@example.com"
start_proxy off
curl -fs -X POST "http://127.0.0.1:$P/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"correct horse battery\"}" >/dev/null
stop_proxy

# CPU time (user + system, in clock ticks) the proxy process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$proxy_pid/stat"; }
run() { # name url [script]
  local out before after
  before=$(cpu_ticks)
  if [ -n "${3:-}" ]; then out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$3" "$2")
  else out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$2"); fi
  after=$(cpu_ticks)
  if grep -q Non-2xx <<<"$out"; then echo "$1: non-2xx answers, invalid run" >&2; exit 1; fi
  local requests; requests=$(awk '/requests in/ {print $1}' <<<"$out")
  # Proxy CPU microseconds per request: the cost that bounds the proxy's own throughput, and far
  # steadier than req/s on a machine the load generator and the backend share.
  local cpu_us; cpu_us=$(python3 -c "print(($after - $before) * 1e6 / $(getconf CLK_TCK) / $requests)")
  echo "$1 $(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="50%" {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out") $cpu_us" >> "$work/results"
}
measure() { # on|off: one proxy process, both routes
  start_proxy "$1"
  local token
  token=$(curl -fs -X POST "http://127.0.0.1:$P/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"correct horse battery\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  printf 'wrk.headers["authorization"] = "Bearer %s"\n' "$token" > "$work/bearer.lua"
  run "auth-$1" "http://127.0.0.1:$P/todos" "$work/bearer.lua"
  run "public-$1" "http://127.0.0.1:$P/openapi.json"
  stop_proxy
}
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  # Alternate which configuration goes first, so drift over time does not favour one.
  if [ $((r % 2)) -eq 1 ]; then measure on; measure off; else measure off; measure on; fi
done
echo "access log lines: 'on' runs $(grep -c '"target":"access"' "$work/proxy-on.log" || true), 'off' runs $(grep -c '"target":"access"' "$work/proxy-off.log" || true)"

python3 - "$work/results" <<'PY'
import statistics, sys
def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float(v)
rows = {}
for line in open(sys.argv[1]):
    n, rps, p50, p99, cpu = line.split()
    rows.setdefault(n, []).append((float(rps), ms(p50), ms(p99), float(cpu)))
med = {k: [statistics.median(x[i] for x in v) for i in range(4)] for k, v in rows.items()}
print(f"{'run':<12}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'proxy CPU us/req':>18}   (median of {len(rows['auth-on'])} interleaved runs)")
for k in ["auth-on", "auth-off", "public-on", "public-off"]:
    print(f"{k:<12}{med[k][0]:>10.0f}{med[k][1]:>10.3f}{med[k][2]:>10.3f}{med[k][3]:>18.1f}")
for kind in ["auth", "public"]:
    on, off = med[f"{kind}-on"], med[f"{kind}-off"]
    print(f"{kind}: proxy CPU per request with metrics + access log = {on[3]/off[3]:.3f} of without "
          f"({(on[3]/off[3] - 1) * 100:+.1f}%); throughput ratio {on[0]/off[0]:.3f}")
PY
