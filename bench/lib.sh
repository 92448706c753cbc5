# Shared by the bench scripts (sourced, not run): a scratch directory and background processes cleaned up
# on exit, free loopback ports, readiness polling, and the todo-backend on SQLite from the test profile.
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for URL: until it answers 2xx, at most WAIT_TRIES x 0.1 s (default 10 s).
wait_for() {
  for _ in $(seq 1 "${WAIT_TRIES:-100}"); do curl -fs -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "not ready: $1" >&2; exit 1
}

# start_backend: todo-backend (release) on free ports B (API) and BA (admin), SQLite in $work. Extra
# TODO_BACKEND__* settings can be given as environment assignments before the call; BACKEND_CONFIG
# names another config file (default: the test profile), BACKEND_DB another database name.
start_backend() {
  B=$(free_port); BA=$(free_port)
  TODO_BACKEND__SERVER__LISTEN=127.0.0.1:$B TODO_BACKEND__ADMIN__LISTEN=127.0.0.1:$BA \
  TODO_BACKEND__DATABASE__URL="sqlite:$work/${BACKEND_DB:-todo}.db" TODO_BACKEND__LOG__FILTER=error \
    target/release/todo-backend --config "${BACKEND_CONFIG:-config/test/backend.toml}" & pids+=($!)
  wait_for "http://127.0.0.1:$BA/health/ready"
}

# start_todo_stack sqlite|postgres: todo-backend ($BACKEND_BIN, default release) on a fresh database
# (SQLite in $work, or a database of its own on DATABASE_URL's server, dropped at exit) behind
# edge-proxy (test profile); sets B/BA (backend API/admin), P/PA (proxy) and BPID (the backend's pid).
# The proxy's log goes to $work/proxy.log.
start_todo_stack() {
  local db=$1 url
  if [ "$db" = postgres ]; then
    local name="bench_${RANDOM}_$$"
    psql -q "$DATABASE_URL" -c "CREATE DATABASE $name" >/dev/null
    # Dropped when the script exits, whatever happens in between.
    trap "cleanup; psql -q '$DATABASE_URL' -c 'DROP DATABASE IF EXISTS $name WITH (FORCE)' >/dev/null" EXIT
    url="${DATABASE_URL%/*}/$name"
  else
    url="sqlite:$work/todo-$RANDOM.db"
  fi
  B=$(free_port); BA=$(free_port); P=$(free_port); PA=$(free_port)
  TODO_BACKEND__SERVER__LISTEN=127.0.0.1:$B TODO_BACKEND__ADMIN__LISTEN=127.0.0.1:$BA \
  TODO_BACKEND__DATABASE__URL="$url" TODO_BACKEND__LOG__FILTER=error \
    "${BACKEND_BIN:-target/release/todo-backend}" --config config/test/backend.toml & BPID=$!; pids+=($BPID)
  wait_for "http://127.0.0.1:$BA/health/ready"
  EDGE_PROXY__LISTEN=127.0.0.1:$P EDGE_PROXY__ADMIN__LISTEN=127.0.0.1:$PA \
  EDGE_PROXY__UPSTREAMS__TODO__PEERS="[\"127.0.0.1:$B\"]" EDGE_PROXY__LOG__FILTER=error \
    target/release/edge-proxy --config config/test/proxy.toml >>"$work/proxy.log" 2>&1 & pids+=($!)
  wait_for "http://127.0.0.1:$PA/readyz"
}

# login EMAIL: registers the user through the proxy on $P and prints an access token.
login() {
  curl -fs -X POST "http://127.0.0.1:$P/auth/register" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"correct horse battery\"}" >/dev/null
  token_on_p "$1"
}

# token_on_p EMAIL: an access token for a registered user from the proxy on $P (each proxy with its
# own session store mints its own).
token_on_p() {
  curl -fs -X POST "http://127.0.0.1:$P/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"correct horse battery\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

# Per-request measurement through the proxy (backend.sh, cache.sh). `results` names the file the rows
# go to; `BPID` is the process whose CPU is counted, `P` the proxy's port.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)

# lua_common TOKEN: wrk script lines: a bearer token, JSON bodies, and a done() that prints the
# request count, latency percentiles and error counts for `measure`.
lua_common() {
  cat <<LUA
wrk.headers["authorization"] = "Bearer $1"
wrk.headers["content-type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %.0f %.0f %.0f %.0f %d %d\n", summary.requests, latency.mean,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
LUA
}

# measure NAME DURATION CONNECTIONS SCRIPT PATH: one wrk run; appends "NAME requests cpu_us_per_request
# rps mean_ms p50_ms p95_ms p99_ms" to the results; a 4xx/5xx answer or a socket error invalidates
# the run.
measure() {
  local name=$1 duration=$2 conns=$3 script=$4 path=$5 before after out line
  before=$(cpu_ticks "$BPID")
  out=$(wrk -t1 -c"$conns" -d"$duration" -s "$script" "http://127.0.0.1:$P$path")
  after=$(cpu_ticks "$BPID")
  line=$(grep '^RESULT' <<<"$out")
  read -r _ n mean p50 p95 p99 status errors <<<"$line"
  if [ "$status" != 0 ] || [ "$errors" != 0 ]; then
    echo "$name: $status non-2xx answers and $errors socket errors, the run is invalid" >&2; echo "$out" >&2; exit 1
  fi
  local rps; rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  python3 - "$name" "$n" "$before" "$after" "$clk_tck" "$rps" "$mean" "$p50" "$p95" "$p99" >> "$results" <<'PY'
import sys
name, n, before, after, tck, rps, *lat = sys.argv[1:]
cpu_us = (int(after) - int(before)) / int(tck) * 1e6 / int(n)
print(name, n, f"{cpu_us:.1f}", rps, *(f"{float(x)/1000:.2f}" for x in lat))
PY
}

