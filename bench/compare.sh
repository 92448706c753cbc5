#!/usr/bin/env bash
# Throughput and latency: backend direct, through nginx (plain reverse proxy with upstream keepalive), and
# through edge-proxy on a public route and on an authenticated route (GET /todos with a token).
# Runs are interleaved (ROUNDS rounds of the four targets) and the medians are reported, with the ratios
# edge-proxy/nginx and edge-proxy/direct. Everything listens on loopback; load is bounded by DURATION.
#
# Usage: bench/compare.sh            (env: ROUNDS=3 DURATION=10s CONNECTIONS=32 THREADS=1)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-10s}" CONNECTIONS="${CONNECTIONS:-32}" THREADS="${THREADS:-1}"

for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk nginx-light; }
done
cargo build --release -q -p edge-proxy -p todo-backend --bins

. bench/lib.sh


P=$(free_port); PA=$(free_port); N=$(free_port)
start_backend
EDGE_PROXY__LISTEN=127.0.0.1:$P EDGE_PROXY__ADMIN__LISTEN=127.0.0.1:$PA \
EDGE_PROXY__UPSTREAMS__TODO__PEERS="[\"127.0.0.1:$B\"]" EDGE_PROXY__LOG__FILTER=error EDGE_PROXY__SERVER__THREADS=2 \
  target/release/edge-proxy --config config/test/proxy.toml & pids+=($!)
wait_for "http://127.0.0.1:$PA/readyz"

cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:$B; keepalive 64; }
  server {
    listen 127.0.0.1:$N;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
wait_for "http://127.0.0.1:$N/openapi.json"

# A user with a few todos.
email="bench-$RANDOM@example.com"
curl -fs -X POST "http://127.0.0.1:$P/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"correct horse battery\"}" > "$work/user.json"
sub=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/user.json")
token=$(curl -fs -X POST "http://127.0.0.1:$P/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"correct horse battery\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
for i in 1 2 3 4 5; do
  curl -fs -X POST "http://127.0.0.1:$P/todos" -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"title\":\"todo $i\"}" >/dev/null
done
secret=$(cat config/test/fixtures/identity-secret.TEST-ONLY.b64)

# wrk Lua scripts: the direct and nginx runs send what edge-proxy would add (a fresh assertion per run).
assertion_script() {
  local a; a=$(python3 bench/mint_assertion.py "$secret" "$sub" "$email" GET /todos)
  printf 'wrk.headers["x-user-id"] = "%s"\nwrk.headers["x-identity-assertion"] = "%s"\n' "$sub" "$a" > "$work/assert.lua"
}
printf 'wrk.headers["authorization"] = "Bearer %s"\n' "$token" > "$work/bearer.lua"

run() { # name url [script]
  local out
  if [ -n "${3:-}" ]; then out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$3" "$2")
  else out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$2"); fi
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  if [ -n "$non2xx" ]; then echo "$1: $non2xx non-2xx answers, the run is invalid" >&2; exit 1; fi
  echo "$1 $rps $p50 $p99" >> "$work/results"
}

for r in $(seq 1 "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  run public-direct "http://127.0.0.1:$B/openapi.json"
  run public-nginx "http://127.0.0.1:$N/openapi.json"
  run public-edge "http://127.0.0.1:$P/openapi.json"
  assertion_script
  run auth-direct "http://127.0.0.1:$B/todos" "$work/assert.lua"
  run auth-nginx "http://127.0.0.1:$N/todos" "$work/assert.lua"
  run auth-edge "http://127.0.0.1:$P/todos" "$work/bearer.lua"
done

python3 - "$work/results" <<'PY'
import statistics, sys
def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float(v)
rows = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99 = line.split()
    rows.setdefault(name, []).append((float(rps), ms(p50), ms(p99)))
med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in rows.items()}
print(f"{'target':<15}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}   (median of {len(next(iter(rows.values())))} interleaved runs)")
for k in ["public-direct", "public-nginx", "public-edge", "auth-direct", "auth-nginx", "auth-edge"]:
    r, a, b = med[k]
    print(f"{k:<15}{r:>10.0f}{a:>10.3f}{b:>10.3f}")
for kind in ["public", "auth"]:
    e, n, d = med[f"{kind}-edge"][0], med[f"{kind}-nginx"][0], med[f"{kind}-direct"][0]
    print(f"{kind}: edge-proxy/nginx = {e/n:.2f}, edge-proxy/direct = {e/d:.2f} (throughput)")
PY
