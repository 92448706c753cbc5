#!/usr/bin/env bash
# CPU per request of the proxy alone, the way proxy engineers measure it: each proxy on core 0 with one
# worker, a static 300-byte upstream (nginx) and wrk on core 1, keep-alive everywhere, interleaved rounds.
# The proxy process's utime+stime from /proc, divided by the requests it served, is the figure; medians
# over the rounds, then the ratios. Targets, side by side in one run:
#
#   direct          wrk → the static upstream (latency baseline; no proxy CPU)
#   nginx           nginx 1 worker, proxy_pass with upstream keepalive
#   haproxy         HAProxy 1 thread, http-reuse always
#   haproxy-jwt     the same, verifying an HS256 JWT (jwt_verify, alg and exp) before forwarding
#   floor           a bare pingora proxy, no filters, one thread (bench/floor)
#   edge-public     edge-proxy, one thread, a route with auth = "none"
#   edge-auth-mem   edge-proxy, an authenticated route, HS256, in-process store
#   edge-auth-redis the same on a Redis store (a private redis-server on core 1)
#   edge-eddsa      EdDSA tokens and EdDSA identity assertions, in-process store
#   edge-ws         a WebSocket route (public): 300-byte messages echoed by a Python websockets server,
#                   sent by a Python client on the load core; the figure is per message echoed (one
#                   frame each way, as a request and its answer are), at the load one client core makes
#
# With BASE_BIN=<an older edge-proxy binary>, the targets base-public, base-auth-mem, base-auth-redis and
# base-eddsa run that binary beside the current one (same configs), so a change is measured before and
# after in one run; add them to TARGETS.
#
# CALLGRIND=N runs the floor and the edge targets (edge-*, base-*) under valgrind's callgrind instead and prints the
# instructions per request over N keep-alive requests (counters zeroed after a warm-up): a count that
# is the same from run to run whatever else the machine does, unlike CPU time on a shared machine.
# ANNOTATE=1 adds each target's top functions by inclusive instructions; CALLGRIND_KEEP=<dir> keeps the
# dumps there for callgrind_annotate.
#
# Then the added latency (p50, p99) over direct at 1 and 32 connections for the same targets.
# Loopback only; every run is bounded by DURATION.
#
# Usage: bench/cpu.sh   (env: ROUNDS=3 DURATION=10s CONNECTIONS=32 PROXY_CPU=0 LOAD_CPU=1 TARGETS="…"
#                       LATENCY_CONNECTIONS="1 32", empty for the CPU figures only)
#        PROFILE=edge-public TARGETS=edge-public bench/cpu.sh   (perf profile of one target instead)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-10s}" CONNECTIONS="${CONNECTIONS:-32}"
PROXY_CPU="${PROXY_CPU:-0}" LOAD_CPU="${LOAD_CPU:-1}"
LATENCY_CONNECTIONS="${LATENCY_CONNECTIONS-1 32}"   # empty: CPU figures only
ALL="nginx haproxy haproxy-jwt floor edge-public edge-auth-mem edge-auth-redis edge-eddsa"
TARGETS="${TARGETS:-$ALL}"

for tool in wrk nginx haproxy taskset redis-server openssl; do
  command -v "$tool" >/dev/null || {
    apt-get update -qq && apt-get install -y -qq wrk nginx-light haproxy util-linux redis-server openssl
    break
  }
done
cargo build --release -q -p edge-proxy -p todo-backend -p pingora-floor --bins

. bench/lib.sh
# taskset execs the command, so `$!` is the pinned process itself (a shell function would not be).
on_proxy_cpu=(taskset -c "$PROXY_CPU")
on_load_cpu=(taskset -c "$LOAD_CPU")
ticks=$(getconf CLK_TCK)

# --- the static upstream: 300 bytes, keep-alive, on the load core -----------------------------------
S=$(free_port)
body=$(python3 -c 'print("x" * 300, end="")')
cat > "$work/static.conf" <<NGINX
worker_processes 1;
pid $work/static.pid;
error_log $work/static-error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$S; location / { default_type text/plain; return 200 "$body"; } }
}
NGINX
"${on_load_cpu[@]}" nginx -c "$work/static.conf" -g 'daemon off;' & pids+=($!)
wait_for "http://127.0.0.1:$S/x"

# --- secrets and keys of this run ----------------------------------------------------------------------
jwt_b64=$(cat config/test/fixtures/jwt-hs256.TEST-ONLY.b64)
identity_file="$(pwd)/config/test/fixtures/identity-secret.TEST-ONLY.b64"
admin_file="$(pwd)/config/test/fixtures/admin-token.TEST-ONLY.txt"
openssl genpkey -algorithm ed25519 -out "$work/jwt_ed" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$work/id_ed" 2>/dev/null
openssl pkey -in "$work/id_ed" -pubout -out "$work/id_ed.pub" 2>/dev/null

# --- backends for the credential check only (logins happen once, before the runs) -----------------
start_backend
B_HS=$B
# The EdDSA backend verifies with the public half only (R-ID-5).
cat > "$work/backend-ed.toml" <<TOML
[server]
listen = "127.0.0.1:3000"
[admin]
listen = "127.0.0.1:3001"
[database]
url = "sqlite:$work/todo-ed.db"
[identity]
algorithm = "EdDSA"
public_key_file = "$work/id_ed.pub"
audience = "todo"
[password]
memory_kib = 1024
iterations = 1
[log]
filter = "error"
TOML
BACKEND_CONFIG="$work/backend-ed.toml" BACKEND_DB=todo-ed start_backend
B_ED=$B

# --- a private Redis on the load core --------------------------------------------------------------
R=$(free_port)
"${on_load_cpu[@]}" redis-server --port "$R" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --logfile "$work/redis.log" & pids+=($!)
for _ in $(seq 1 50); do redis-cli -p "$R" ping >/dev/null 2>&1 && break; sleep 0.1; done

# --- edge-proxy configs ------------------------------------------------------------------------------
edge_config() { # file port admin_port store jwt_alg
  local store='[store]
backend = "memory"'
  [ "$4" = redis ] && store="[store]
backend = \"redis\"
redis_url = \"redis://127.0.0.1:$R\"
key_prefix = \"bench-$$:\""
  local jwt="[jwt]
key = \"$jwt_b64\"
realm = \"bench\""
  local identity="[identity]
secret_file = \"$identity_file\""
  local creds=$B_HS
  if [ "$5" = EdDSA ]; then
    jwt="[jwt]
algorithm = \"EdDSA\"
key_file = \"$work/jwt_ed\"
realm = \"bench\""
    identity="[identity]
algorithm = \"EdDSA\"
secret_file = \"$work/id_ed\""
    creds=$B_ED
  fi
  cat > "$1" <<TOML
listen = "127.0.0.1:$2"
[server]
threads = 1
grace_period_seconds = 0
graceful_shutdown_timeout_seconds = 1
[admin]
listen = "127.0.0.1:$3"
token_file = "$admin_file"
$store
$jwt
$identity
[upstreams.static]
peers = ["127.0.0.1:$S"]
[upstreams.ws]
peers = ["127.0.0.1:${WS:-1}"]
[[routes]]
name = "ws"
prefix = "/ws"
upstream = "ws"
auth = "none"
websocket = true
# The credential check's pool: its name is the service assertion's audience (the backends' "todo").
[upstreams.todo]
peers = ["127.0.0.1:$creds"]
[[routes]]
name = "public"
prefix = "/public"
upstream = "static"
auth = "none"
methods = ["GET"]
[[routes]]
name = "private"
prefix = "/private"
upstream = "static"
methods = ["GET"]
[log]
format = "json"
filter = "error"
TOML
}

declare -A PORT PID
grind=()
# ws_run CONNECTIONS URL: 300-byte messages, each awaited before the next, on every connection for
# DURATION; prints the messages echoed and their rate.
ws_run() {
  "${on_load_cpu[@]}" python3 - "$1" "$2" "${DURATION%s}" <<'PY'
import asyncio, sys, time
from websockets.asyncio.client import connect
conns, url, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
async def one(deadline):
    n, msg = 0, b"x" * 300
    async with connect(url, compression=None) as ws:
        while time.monotonic() < deadline:
            await ws.send(msg)
            assert await ws.recv() == msg
            n += 1
    return n
async def main():
    start = time.monotonic()
    counts = await asyncio.gather(*(one(start + seconds) for _ in range(conns)))
    print(sum(counts), round(sum(counts) / (time.monotonic() - start)))
asyncio.run(main())
PY
}

if [ -n "${CALLGRIND:-}" ]; then
  grind=(valgrind -q --tool=callgrind --callgrind-out-file="$work/%q{TARGET}.cg")
  WAIT_TRIES=600
fi
start_edge() { # name store alg [binary]
  local p pa
  p=$(free_port); pa=$(free_port)
  edge_config "$work/$1.toml" "$p" "$pa" "$2" "$3"
  TARGET=$1 "${on_proxy_cpu[@]}" "${grind[@]}" "${4:-target/release/edge-proxy}" --config "$work/$1.toml" \
    > "$work/$1.log" 2>&1 & pids+=($!)
  PID[$1]=$!; PORT[$1]=$p
  wait_for "http://127.0.0.1:$pa/readyz"
  # Wait for both pools' first health check.
  for _ in $(seq 1 "${WAIT_TRIES:-100}"); do
    curl -fs "http://127.0.0.1:$pa/readyz" | python3 -c \
      'import json,sys; u=json.load(sys.stdin)["upstreams"]; sys.exit(min(v["healthy_peers"] for v in u.values()) < 1)' && break
    sleep 0.1
  done
}

want() { [[ " $TARGETS " == *" $1 "* ]]; }

if want nginx; then
  PORT[nginx]=$(free_port)
  cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream static { server 127.0.0.1:$S; keepalive 64; }
  server {
    listen 127.0.0.1:${PORT[nginx]};
    location / { proxy_pass http://static; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
  "${on_proxy_cpu[@]}" nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
  wait_for "http://127.0.0.1:${PORT[nginx]}/x"
  # The master only supervises; the worker serves.
  PID[nginx]=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)
fi

# An HS256 JWT for HAProxy (its own secret; alg and exp are checked, as edge-proxy checks them).
hs_secret="bench-haproxy-hs256-secret-0123456789" # pragma: allowlist secret (a throwaway bench key)
hs_token=$(python3 - "$hs_secret" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
head = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b(json.dumps({"sub": "bench", "exp": int(time.time()) + 3600}).encode())
sig = b(hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
)
haproxy_conf() { # file port jwt?
  local verify=""
  if [ "$3" = jwt ]; then
    verify="  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny status 401 unless { var(txn.alg) -m str HS256 }
  http-request deny status 401 unless { var(txn.bearer),jwt_verify(txn.alg,\"$hs_secret\") -m int 1 }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }"
  fi
  cat > "$1" <<CFG
global
  nbthread 1
  log stderr format raw local0 err
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$2
$verify
  default_backend be
backend be
  server s1 127.0.0.1:$S
CFG
}
for h in haproxy haproxy-jwt; do
  want "$h" || continue
  PORT[$h]=$(free_port)
  haproxy_conf "$work/$h.cfg" "${PORT[$h]}" "$([ "$h" = haproxy-jwt ] && echo jwt)"
  "${on_proxy_cpu[@]}" haproxy -f "$work/$h.cfg" -db > "$work/$h.log" 2>&1 & pids+=($!)
  PID[$h]=$!
done
if want floor; then
  PORT[floor]=$(free_port)
  TARGET=floor "${on_proxy_cpu[@]}" "${grind[@]}" target/release/pingora-floor "127.0.0.1:${PORT[floor]}" \
    "127.0.0.1:$S" 1 > "$work/floor.log" 2>&1 & pids+=($!)
  PID[floor]=$!
fi
want edge-public && start_edge edge-public memory HS256
want edge-auth-mem && start_edge edge-auth-mem memory HS256
want edge-auth-redis && start_edge edge-auth-redis redis HS256
want edge-eddsa && start_edge edge-eddsa memory EdDSA
if want edge-ws; then
  python3 -c 'import websockets' 2>/dev/null || python3 -m pip install -q websockets==15.0.1
  WS=$(free_port)
  "${on_load_cpu[@]}" python3 - "$WS" > "$work/ws-echo.log" 2>&1 <<'PY' & pids+=($!)
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None):
        await asyncio.Future()
asyncio.run(main())
PY
  start_edge edge-ws memory HS256
fi
for b in public:memory:HS256 auth-mem:memory:HS256 auth-redis:redis:HS256 eddsa:memory:EdDSA; do
  IFS=: read -r name store alg <<<"$b"
  if want "base-$name"; then
    [ -x "${BASE_BIN:-}" ] || { echo "base-$name needs BASE_BIN=<edge-proxy binary>" >&2; exit 1; }
    start_edge "base-$name" "$store" "$alg" "$BASE_BIN"
  fi
done
for t in $TARGETS; do
  for _ in $(seq 1 "${WAIT_TRIES:-50}"); do curl -fs -o /dev/null "http://127.0.0.1:${PORT[$t]}/public/x" 2>/dev/null && break; sleep 0.1; done
done

# --- tokens: one login per authenticated target ---------------------------------------------------
email="bench-$RANDOM@example.com"
account="{\"email\":\"$email\",\"password\":\"correct horse battery\"}" # pragma: allowlist secret
curl -fs -o /dev/null -X POST "http://127.0.0.1:$B_HS/auth/register" -H 'content-type: application/json' -d "$account"
curl -fs -o /dev/null -X POST "http://127.0.0.1:$B_ED/auth/register" -H 'content-type: application/json' -d "$account"
declare -A SCRIPT URL
for t in $TARGETS; do
  URL[$t]="http://127.0.0.1:${PORT[$t]}/public/x"
  SCRIPT[$t]=""
done
for t in edge-auth-mem edge-auth-redis edge-eddsa base-auth-mem base-auth-redis base-eddsa; do
  want "$t" || continue
  tok=$(curl -fs -X POST "http://127.0.0.1:${PORT[$t]}/auth/login" -H 'content-type: application/json' -d "$account" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  printf 'wrk.headers["authorization"] = "Bearer %s"\n' "$tok" > "$work/$t.lua"
  URL[$t]="http://127.0.0.1:${PORT[$t]}/private/x"
  SCRIPT[$t]="$work/$t.lua"
done
if want haproxy-jwt; then
  printf 'wrk.headers["authorization"] = "Bearer %s"\n' "$hs_token" > "$work/haproxy-jwt.lua"
  SCRIPT[haproxy-jwt]="$work/haproxy-jwt.lua"
fi
# Every target must answer 200 before it is measured.
for t in $TARGETS; do
  auth=()
  [ -n "${SCRIPT[$t]}" ] && auth=(-H "authorization: $(sed -n 's/.*"\(Bearer [^"]*\)".*/\1/p' "${SCRIPT[$t]}")")
  code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "${URL[$t]}")
  [ "$code" = 200 ] || { echo "$t answers $code, not 200: not measured" >&2; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# wrk_run CONNS URL SCRIPT -> "requests rps p50_us p99_us"
wrk_run() {
  local out args=(-t1 -c"$1" -d"$DURATION" --latency)
  [ -n "$3" ] && args+=(-s "$3")
  out=$("${on_load_cpu[@]}" wrk "${args[@]}" "$2")
  if grep -q 'Non-2xx' <<<"$out"; then echo "non-2xx answers from $2: the run is invalid" >&2; echo "$out" >&2; exit 1; fi
  local req rps p50 p99
  req=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  to_us() { python3 -c 'import sys,re; v=sys.argv[1]; m=re.match(r"([\d.]+)(us|ms|s)",v); print(round(float(m[1])*{"us":1,"ms":1e3,"s":1e6}[m[2]],1))' "$1"; }
  echo "$req $rps $(to_us "$p50") $(to_us "$p99")"
}

if [ -n "${CALLGRIND:-}" ]; then
  # N requests on one keep-alive connection, each checked for 200.
  keepalive_get() { # url script count
    python3 - "$1" "${2:-}" "$3" <<'PY'
import http.client, re, sys, urllib.parse
url, script, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlsplit(url)
headers = {}
if script:
    m = re.search(r'"(Bearer [^"]+)"', open(script).read())
    headers["authorization"] = m.group(1)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
for _ in range(n):
    c.request("GET", u.path, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{url} answered {r.status}")
PY
  }
  printf '\n%-16s %14s   (callgrind, %s requests after a warm-up)\n' target instr/request "$CALLGRIND"
  for t in $TARGETS; do
    case $t in edge-ws) continue ;; edge-*|base-*|floor) ;; *) continue ;; esac
    keepalive_get "${URL[$t]}" "${SCRIPT[$t]}" 200
    callgrind_control -z "${PID[$t]}" >/dev/null 2>&1
    keepalive_get "${URL[$t]}" "${SCRIPT[$t]}" "$CALLGRIND"
    rm -f "$work/$t.cg".*
    callgrind_control -d "${PID[$t]}" >/dev/null 2>&1
    dump=$(ls -t "$work/$t.cg".* | head -1)
    total=$(awk '/^summary:/ {print $2}' "$dump")
    printf '%-16s %14d\n' "$t" $((total / CALLGRIND))
    [ -n "${CALLGRIND_KEEP:-}" ] && mkdir -p "$CALLGRIND_KEEP" && cp "$dump" "$CALLGRIND_KEEP/$t.cg"
    if [ -n "${ANNOTATE:-}" ]; then
      callgrind_annotate --inclusive=yes --threshold=99 "$dump" 2>/dev/null | sed -n '/^Ir/,$p' | head -"${PROFILE_LINES:-45}" | cut -c1-160 || true
    fi
  done
  exit 0
fi

if [ -n "${PROFILE:-}" ]; then
  # Where the time goes: perf with DWARF call graphs on one target under the same load, then the
  # functions by inclusive (children) and by self cost.
  command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf; }
  t=$PROFILE
  data="${PROFILE_DATA:-$work/perf.data}"
  perf record -q -F 2000 --call-graph dwarf,16384 -p "${PID[$t]}" -o "$data" -- sleep 6 &
  rec=$!
  sleep 0.5
  wrk_run "$CONNECTIONS" "${URL[$t]}" "${SCRIPT[$t]}" >/dev/null
  wait "$rec" || true
  echo "--- inclusive cost (children) ---"
  perf report -i "$data" --children --percent-limit 2 --stdio -g none --sort symbol 2>&1 |
    grep -v '^#' | sed '/^$/d' | head -"${PROFILE_LINES:-60}" || true
  echo "--- self cost ---"
  perf report -i "$data" --no-children --percent-limit 0.7 --stdio -g none --sort symbol 2>&1 |
    grep -v '^#' | sed '/^$/d' | head -"${PROFILE_LINES:-60}" || true
  exit 0
fi

: > "$work/cpu"
for r in $(seq 1 "$ROUNDS"); do
  echo "CPU round $r/$ROUNDS" >&2
  for t in $TARGETS; do
    before=$(cpu_ticks "${PID[$t]}")
    if [ "$t" = edge-ws ]; then
      read -r req rps < <(ws_run "$CONNECTIONS" "ws://127.0.0.1:${PORT[$t]}/ws/echo")
    else
      read -r req rps _ _ < <(wrk_run "$CONNECTIONS" "${URL[$t]}" "${SCRIPT[$t]}")
    fi
    after=$(cpu_ticks "${PID[$t]}")
    us=$(python3 -c "print(round(($after - $before) / $ticks * 1e6 / $req, 1))")
    echo "$t $rps $us" >> "$work/cpu"
  done
done

: > "$work/lat"
for conns in $LATENCY_CONNECTIONS; do
  echo "latency at $conns connection(s)" >&2
  for r in $(seq 1 "$ROUNDS"); do
    read -r _ _ p50 p99 < <(wrk_run "$conns" "http://127.0.0.1:$S/x" "")
    echo "$conns direct $p50 $p99" >> "$work/lat"
    for t in $TARGETS; do
      [ "$t" = edge-ws ] && continue
      read -r _ _ p50 p99 < <(wrk_run "$conns" "${URL[$t]}" "${SCRIPT[$t]}")
      echo "$conns $t $p50 $p99" >> "$work/lat"
    done
  done
done

python3 - "$work/cpu" "$work/lat" "$TARGETS" <<'PY'
import statistics, sys
cpu, lat, targets = sys.argv[1], sys.argv[2], sys.argv[3].split()
rows = {}
for line in open(cpu):
    t, rps, us = line.split()
    rows.setdefault(t, []).append((float(rps), float(us)))
med = {t: (statistics.median(r for r, _ in v), statistics.median(u for _, u in v)) for t, v in rows.items()}
print(f"\n{'target':<16} {'req/s':>9} {'proxy CPU us/request':>21}   (medians of {len(next(iter(rows.values())))} rounds)")
for t in targets:
    rps, us = med[t]
    print(f"{t:<16} {rps:>9.0f} {us:>21.1f}")
lat_rows = {}
for line in open(lat):
    c, t, p50, p99 = line.split()
    lat_rows.setdefault((c, t), []).append((float(p50), float(p99)))
if lat_rows:
    print(f"\n{'added latency over direct':<26} {'p50 us':>8} {'p99 us':>8}")
for c in sorted({c for c, _ in lat_rows}, key=int):
    d50 = statistics.median(p for p, _ in lat_rows[(c, "direct")])
    d99 = statistics.median(p for _, p in lat_rows[(c, "direct")])
    for t in (t for t in targets if (c, t) in lat_rows):
        p50 = statistics.median(p for p, _ in lat_rows[(c, t)])
        p99 = statistics.median(p for _, p in lat_rows[(c, t)])
        print(f"{t + ' @' + c:<26} {p50 - d50:>8.1f} {p99 - d99:>8.1f}")
def ratio(a, b):
    return f"{med[a][1] / med[b][1]:.2f}x" if a in med and b in med else "n/a"
print("\nratios (CPU per request, medians; issue 13 targets in brackets)")
print(f"  edge-public     / floor        {ratio('edge-public', 'floor')}   [<= 1.05x]")
print(f"  edge-auth-mem   / floor        {ratio('edge-auth-mem', 'floor')}   [<= 1.2x]")
print(f"  edge-auth-mem   / haproxy-jwt  {ratio('edge-auth-mem', 'haproxy-jwt')}   [<= 2.0x]")
if "edge-auth-redis" in med and "edge-auth-mem" in med:
    print(f"  edge-auth-redis - edge-auth-mem  {med['edge-auth-redis'][1] - med['edge-auth-mem'][1]:.1f} us   [<= 20 us]")
print(f"  edge-eddsa      / floor        {ratio('edge-eddsa', 'floor')}")
print(f"  edge-ws (per message) / edge-public  {ratio('edge-ws', 'edge-public')}")
for name in ("public", "auth-mem", "auth-redis", "eddsa"):
    if f"base-{name}" in med and f"edge-{name}" in med:
        print(f"  edge-{name:<10} / base-{name:<10} {ratio('edge-' + name, 'base-' + name)}   (this build / BASE_BIN)")
print(f"  floor           / nginx        {ratio('floor', 'nginx')}")
print(f"  haproxy-jwt     / haproxy      {ratio('haproxy-jwt', 'haproxy')}")
PY
