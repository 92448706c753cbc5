#!/usr/bin/env bash
# Deterministic companion to observability.sh: instructions the proxy executes per authenticated request
# (GET /todos with a token), with metrics + JSON access log on and off, counted by callgrind (all threads,
# the log-writer thread included). Each configuration runs twice, with N1 and N2 requests on one
# keep-alive connection; (I(N2) - I(N1)) / (N2 - N1) is the per-request cost, start-up cancelled out.
#
# Usage: bench/observability-instructions.sh     (env: N1=500 N2=2500; ON_METRICS=false or
#                                                ON_ACCESS_LOG=false to isolate one of them)
set -euo pipefail
cd "$(dirname "$0")/.."
N1="${N1:-500}" N2="${N2:-2500}"
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
cargo build --release -q -p edge-proxy -p todo-backend --bins

. bench/lib.sh
WAIT_TRIES=600 # the proxy starts slowly under valgrind

start_backend
P=$(free_port); PA=$(free_port)

# What "on" enables (both by default; set one to false to measure the other alone).
ON_METRICS="${ON_METRICS:-true}" ON_ACCESS_LOG="${ON_ACCESS_LOG:-true}"
count() { # on|off N -> total instructions
  local metrics=$ON_METRICS access=$ON_ACCESS_LOG
  [ "$1" = off ] && { metrics=false; access=false; }
  EDGE_PROXY__LISTEN=127.0.0.1:$P EDGE_PROXY__ADMIN__LISTEN=127.0.0.1:$PA \
  EDGE_PROXY__UPSTREAMS__TODO__PEERS="[\"127.0.0.1:$B\"]" EDGE_PROXY__SERVER__THREADS=1 \
  EDGE_PROXY__LOG__FORMAT=json EDGE_PROXY__LOG__FILTER=info EDGE_PROXY__LOG__ACCESS=$access \
  EDGE_PROXY__METRICS__ENABLED=$metrics \
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.$1.$2" \
    target/release/edge-proxy --config config/test/proxy.toml > "$work/proxy.log" 2>&1 &
  local vg=$!
  wait_for "http://127.0.0.1:$PA/readyz"
  python3 - "$P" "$2" <<'PY'
import http.client, json, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
body = json.dumps({"email": "cg@example.com", "password": "correct horse battery"})
c.request("POST", "/auth/register", body, {"content-type": "application/json"}); c.getresponse().read()
c.request("POST", "/auth/login", body, {"content-type": "application/json"})
token = json.loads(c.getresponse().read())["access_token"]
for _ in range(n):
    c.request("GET", "/todos", headers={"authorization": f"Bearer {token}"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
  kill -INT "$vg"; wait "$vg" 2>/dev/null || true
  awk '/^(summary|totals):/ {print $2; exit}' "$work/cg.$1.$2"
}

declare -A I
for mode in off on; do
  for n in "$N1" "$N2"; do
    I[$mode.$n]=$(count "$mode" "$n")
    echo "$mode, $n requests: ${I[$mode.$n]} instructions" >&2
  done
done
python3 - "${I[off.$N1]}" "${I[off.$N2]}" "${I[on.$N1]}" "${I[on.$N2]}" "$N1" "$N2" <<'PY'
import sys
off1, off2, on1, on2, n1, n2 = map(int, sys.argv[1:])
off = (off2 - off1) / (n2 - n1)
on = (on2 - on1) / (n2 - n1)
print(f"instructions per authenticated request: without {off:,.0f}, with metrics + access log {on:,.0f}")
print(f"cost of metrics + access log: {on - off:,.0f} instructions/request = {(on / off - 1) * 100:+.1f}% of the proxy's work")
PY
