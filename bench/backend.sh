#!/usr/bin/env bash
# The todo backend's cost per request, through edge-proxy, the way issue 19 measured it: the backend
# process's CPU (utime + stime from /proc) divided by the requests served, per endpoint, for a user
# with no todos and for a user with TODOS todos, on SQLite and on PostgreSQL; then the mixed workload
# (70 % GET /todos?limit=20&count=true, 20 % POST /todos, 10 % GET /me, one user) at 16 and 64 connections with
# throughput, average, p95 and p99. Endpoint runs are interleaved (ROUNDS rounds) and medians reported.
# Everything listens on loopback; load is bounded by DURATION. PostgreSQL runs when DATABASE_URL is set
# (a database of its own, dropped at the end).
#
# Usage: bench/backend.sh   (env: ROUNDS=3 DURATION=5s CONNECTIONS=16 TODOS=10000 MIXED_DURATION=10s
#                            DBS="sqlite postgres" BACKEND_BIN=<another todo-backend binary to measure>)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-5s}" CONNECTIONS="${CONNECTIONS:-16}" TODOS="${TODOS:-10000}"
MIXED_DURATION="${MIXED_DURATION:-10s}"
DBS="${DBS:-sqlite${DATABASE_URL:+ postgres}}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p edge-proxy -p todo-backend --bins

. bench/lib.sh
results="$work/results"

run_db() { # sqlite|postgres
  local db=$1
  start_todo_stack "$db"

  local tag="bench-$$-$db"
  lua_common "$(login "empty-$tag@example.com")" > "$work/empty.lua"
  local full; full=$(login "full-$tag@example.com")
  lua_common "$full" > "$work/full.lua"
  { lua_common "$(login "writer-$tag@example.com")"
    echo 'wrk.method = "POST"'
    echo 'wrk.body = "{\"title\":\"a todo to measure\",\"due_on\":\"2026-12-24\"}"'; } > "$work/create.lua"
  # The full user's todos, through the API: wrk stops sending after TODOS answers (its main thread
  # still sleeps out -d, so it is stopped once the count is reached).
  { lua_common "$full"
    echo 'wrk.method = "POST"'
    echo 'wrk.body = "{\"title\":\"seeded todo\"}"'
    echo "local n = 0"
    echo "response = function() n = n + 1; if n >= $TODOS then wrk.thread:stop() end end"; } > "$work/seed.lua"
  echo "$db: seeding $TODOS todos for one user" >&2
  wrk -t1 -c16 -d600s -s "$work/seed.lua" "http://127.0.0.1:$P/todos" >/dev/null & local seeder=$!
  until [ "$(curl -fs "http://127.0.0.1:$P/todos?limit=1&count=true" -H "authorization: Bearer $full" |
             python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')" -ge "$TODOS" ]; do
    kill -0 "$seeder" 2>/dev/null || { echo "seeding stopped early" >&2; exit 1; }
    sleep 0.5
  done
  kill "$seeder"; wait "$seeder" 2>/dev/null || true

  for r in $(seq 1 "$ROUNDS"); do
    echo "$db: round $r/$ROUNDS" >&2
    measure "$db:GET-/me" "$DURATION" "$CONNECTIONS" "$work/empty.lua" /me
    measure "$db:list-20,0-todos" "$DURATION" "$CONNECTIONS" "$work/empty.lua" "/todos?limit=20&count=true"
    measure "$db:list-20,$TODOS-todos" "$DURATION" "$CONNECTIONS" "$work/full.lua" "/todos?limit=20&count=true"
    measure "$db:POST-/todos" "$DURATION" "$CONNECTIONS" "$work/create.lua" /todos
  done

  # The mixed workload, one user, starting empty.
  { lua_common "$(login "mixed-$tag@example.com")"
    cat <<'LUA'
local list, me, create
-- Formatted in init: wrk sets the Host header only after the script is loaded.
init = function(args)
  list = wrk.format("GET", "/todos?limit=20&count=true")
  me = wrk.format("GET", "/me")
  create = wrk.format("POST", "/todos", nil, '{"title":"mixed workload todo"}')
  math.randomseed(19)
end
request = function()
  local x = math.random(100)
  if x <= 70 then return list elseif x <= 90 then return create else return me end
end
LUA
  } > "$work/mixed.lua"
  for c in 16 64; do
    measure "$db:mixed,$c-connections" "$MIXED_DURATION" "$c" "$work/mixed.lua" /
  done
  kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; pids=()
}

for db in $DBS; do run_db "$db"; done

python3 - "$results" "$TODOS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, n, cpu, rps, mean, _p50, p95, p99 = line.split()
    rows.setdefault(name, []).append((float(cpu), float(rps), float(mean), float(p95), float(p99)))
med = lambda v, i: statistics.median(x[i] for x in v)
print(f"{'run':<34}{'backend CPU us/req':>20}{'req/s':>10}{'avg ms':>9}{'p95 ms':>9}{'p99 ms':>9}   (medians)")
for k, v in rows.items():
    print(f"{k:<34}{med(v,0):>20.1f}{med(v,1):>10.0f}{med(v,2):>9.2f}{med(v,3):>9.2f}{med(v,4):>9.2f}")
todos = sys.argv[2]
for db in sorted({k.split(':')[0] for k in rows}):
    full, empty = rows.get(f"{db}:list-20,{todos}-todos"), rows.get(f"{db}:list-20,0-todos")
    if full and empty:
        print(f"{db}: list of 20 with {todos} todos / with 0 todos = {med(full,0)/med(empty,0):.2f} (backend CPU)")
PY
