#!/usr/bin/env bash
# What caching saves on `GET /todos` for a user with TODOS (200) todos, through edge-proxy (issue 14),
# one backend behind two proxies (the test profile as shipped, and the same without its
# `[routes.cache]` sections):
# - `plain`: no edge cache; every request reads and serialises the list;
# - `etag`: no edge cache; the client sends the `If-None-Match` of its last answer and gets 304 (one
#   indexed read of the user's data version in the backend, no list);
# - `edge`: the edge cache (per user); after the first request every answer is an edge hit;
# - `edge-redis` (with REDIS_URL): the same through a proxy whose stores, and so its cache entries,
#   are in Redis (one more round trip per hit: the entry's `HMGET`).
# For each: req/s, p50/p99, the backend's CPU per request (utime+stime from /proc) and the backend
# requests per client request (from the backend's own request counter). Rounds are interleaved and
# medians reported, on SQLite and, with DATABASE_URL, PostgreSQL.
#
# Usage: bench/cache.sh   (env: ROUNDS=3 DURATION=5s CONNECTIONS=16 TODOS=200 DBS="sqlite postgres")
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-5s}" CONNECTIONS="${CONNECTIONS:-16}" TODOS="${TODOS:-200}"
DBS="${DBS:-sqlite${DATABASE_URL:+ postgres}}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p edge-proxy -p todo-backend --bins

. bench/lib.sh
results="$work/results"
path="/todos?limit=$TODOS"

# The backend's answered requests so far (every route).
backend_requests() {
  curl -fs "http://127.0.0.1:$BA/metrics" |
    awk '/^todo_backend_http_requests_total/ {n += $NF} END {printf "%d\n", n}'
}

# expect_hits DB TOKEN: the proxy on $P answers a repeated GET from its cache.
expect_hits() {
  [ "$(curl -fsi "http://127.0.0.1:$P$path" -H "authorization: Bearer $2" >/dev/null
       curl -fsi "http://127.0.0.1:$P$path" -H "authorization: Bearer $2" |
       awk 'tolower($1) == "cache-status:" {print $3}' | tr -d '\r')" = hit ] ||
    { echo "$1: the caching proxy on $P does not answer from its cache" >&2; exit 1; }
}

# The Redis proxy's keys, deleted when the script ends.
redis_prefix="bench-cache-$$:"
drop_redis_keys() {
  [ -n "${REDIS_URL:-}" ] || return 0
  redis-cli -u "$REDIS_URL" --scan --pattern "$redis_prefix*" | xargs -r redis-cli -u "$REDIS_URL" DEL >/dev/null
}

run_db() { # sqlite|postgres
  local db=$1 token etag edge_port edge_token
  start_todo_stack "$db"
  # The second proxy, with the edge cache on, in front of the same backend.
  edge_port=$P
  P=$(free_port); local admin; admin=$(free_port)
  awk '/^\[routes.cache\]/ {skip = 1; next} skip && /^(\[|$)/ {skip = 0} !skip' \
    config/test/proxy.toml > config/test/proxy-nocache-bench.toml
  EDGE_PROXY__LISTEN=127.0.0.1:$P EDGE_PROXY__ADMIN__LISTEN=127.0.0.1:$admin \
  EDGE_PROXY__UPSTREAMS__TODO__PEERS="[\"127.0.0.1:$B\"]" EDGE_PROXY__LOG__FILTER=error \
    target/release/edge-proxy --config config/test/proxy-nocache-bench.toml >>"$work/proxy.log" 2>&1 & pids+=($!)
  wait_for "http://127.0.0.1:$admin/readyz"
  rm -f config/test/proxy-nocache-bench.toml
  token=$(login "cache-$$-$db@example.com")
  echo "$db: creating $TODOS todos" >&2
  for i in $(seq 1 "$TODOS"); do
    curl -fs -o /dev/null -X POST "http://127.0.0.1:$P/todos" -H "authorization: Bearer $token" \
      -H 'content-type: application/json' -d "{\"title\":\"todo $i\",\"due_on\":\"2026-12-24\"}"
  done
  etag=$(curl -fsi "http://127.0.0.1:$P$path" -H "authorization: Bearer $token" |
    awk 'tolower($1) == "etag:" {print $2}' | tr -d '\r')
  [ -n "$etag" ] || { echo "$db: GET $path has no ETag" >&2; exit 1; }
  lua_common "$token" > "$work/plain.lua"
  { lua_common "$token"; echo "wrk.headers[\"if-none-match\"] = '$etag'"; } > "$work/etag.lua"
  # The same user through the caching proxy (its own session store, so its own token).
  local plain_port=$P
  P=$edge_port
  edge_token=$(token_on_p "cache-$$-$db@example.com")
  lua_common "$edge_token" > "$work/edge.lua"
  expect_hits "$db" "$edge_token"
  local modes="plain etag edge" redis_port=""
  if [ -n "${REDIS_URL:-}" ]; then
    # The third proxy: the test profile on the Redis store, under a prefix of its own.
    redis_port=$(free_port); admin=$(free_port)
    EDGE_PROXY__LISTEN=127.0.0.1:$redis_port EDGE_PROXY__ADMIN__LISTEN=127.0.0.1:$admin \
    EDGE_PROXY__UPSTREAMS__TODO__PEERS="[\"127.0.0.1:$B\"]" EDGE_PROXY__LOG__FILTER=error \
    EDGE_PROXY__STORE__BACKEND=redis EDGE_PROXY__STORE__REDIS_URL="$REDIS_URL" \
    EDGE_PROXY__STORE__KEY_PREFIX="$redis_prefix" \
      target/release/edge-proxy --config config/test/proxy.toml >>"$work/proxy.log" 2>&1 & pids+=($!)
    wait_for "http://127.0.0.1:$admin/readyz"
    P=$redis_port
    edge_token=$(token_on_p "cache-$$-$db@example.com")
    lua_common "$edge_token" > "$work/edge-redis.lua"
    expect_hits "$db" "$edge_token"
    modes="$modes edge-redis"
  fi
  P=$plain_port
  # A 304 must really be one: the tag answers 304, and the full answer has every todo.
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P$path" \
      -H "authorization: Bearer $token" -H "if-none-match: $etag")" = 304 ] ||
    { echo "$db: the ETag does not answer 304" >&2; exit 1; }
  for r in $(seq 1 "$ROUNDS"); do
    echo "$db: round $r/$ROUNDS" >&2
    for mode in $modes; do
      local before after
      case $mode in
        edge) P=$edge_port ;;
        edge-redis) P=$redis_port ;;
        *) P=$plain_port ;;
      esac
      before=$(backend_requests)
      measure "$db:$mode" "$DURATION" "$CONNECTIONS" "$work/$mode.lua" "$path"
      after=$(backend_requests)
      echo "$db:$mode $((after - before))" >> "$work/backend-requests"
    done
  done
  kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; pids=()
}

for db in $DBS; do run_db "$db"; done
drop_redis_keys

python3 - "$results" "$work/backend-requests" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, n, cpu, rps, mean, p50, p95, p99 = line.split()
    rows.setdefault(name, []).append((float(cpu), float(rps), float(p50), float(p99), int(n)))
backend = {}
for line in open(sys.argv[2]):
    name, count = line.split()
    backend.setdefault(name, []).append(int(count))
med = lambda v, i: statistics.median(x[i] for x in v)
print(f"{'run':<20}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'backend CPU us/req':>20}{'backend req per req':>21}   (medians)")
for k, v in rows.items():
    per = statistics.median(b / r[4] for b, r in zip(backend[k], v))
    print(f"{k:<20}{med(v,1):>10.0f}{med(v,2):>9.2f}{med(v,3):>9.2f}{med(v,0):>20.1f}{per:>21.2f}")
for db in sorted({k.split(':')[0] for k in rows}):
    plain = rows.get(f"{db}:plain")
    for mode in ("etag", "edge", "edge-redis"):
        other = rows.get(f"{db}:{mode}")
        if plain and other:
            print(f"{db}: {mode} / plain = {med(other,1)/med(plain,1):.2f}x req/s, "
                  f"{med(other,0)/med(plain,0):.2f}x backend CPU per request")
PY
