#!/usr/bin/env bash
# Where the todo backend's CPU goes for one request type: the stack as bench/backend.sh runs it
# (backend on SQLite or DATABASE_URL's PostgreSQL, behind edge-proxy), a user with TODOS todos, wrk on
# one request for DURATION, and `perf record --call-graph dwarf` on the backend process meanwhile.
# Prints the top functions by inclusive and by own time. Needs perf (Debian: linux-perf).
#
# Usage: bench/backend-perf.sh me|list|create   (env: DB=sqlite|postgres TODOS=500 DURATION=8s
#                                                CONNECTIONS=16 TOP=40 KEEP=<dir for perf.data>)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:?me|list|create}"
DB="${DB:-sqlite}" TODOS="${TODOS:-500}" DURATION="${DURATION:-8s}" CONNECTIONS="${CONNECTIONS:-16}" TOP="${TOP:-40}"
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf; }
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p edge-proxy -p todo-backend --bins
. bench/lib.sh

start_todo_stack "$DB"
token=$(login "perf-$$@example.com")
for i in $(seq 1 "$TODOS"); do echo "{\"title\":\"todo $i\",\"due_on\":\"2026-12-24\"}"; done |
  xargs -d '\n' -P 8 -I{} curl -fs -o /dev/null -X POST "http://127.0.0.1:$P/todos" \
    -H "authorization: Bearer $token" -H 'content-type: application/json' -d {}

printf 'wrk.headers["authorization"] = "Bearer %s"\nwrk.headers["content-type"] = "application/json"\n' "$token" > "$work/req.lua"
case "$what" in
  me) path=/me ;;
  list) path="/todos?limit=20&count=true" ;;
  create) path=/todos; printf 'wrk.method = "POST"\nwrk.body = "{\\"title\\":\\"a todo to measure\\"}"\n' >> "$work/req.lua" ;;
  *) echo "unknown request: $what" >&2; exit 2 ;;
esac
wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$work/req.lua" "http://127.0.0.1:$P$path" > "$work/wrk.txt" &
wrkpid=$!
sleep 1
perf record -q -e cpu-clock -F 2000 --call-graph dwarf,16384 -p "$BPID" -o "$work/perf.data" -- sleep 5 2>/dev/null
wait "$wrkpid"
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$work/perf.data" "$KEEP/"; fi
grep -E 'Requests/sec|Non-2xx' "$work/wrk.txt"
echo "== inclusive (children), top $TOP"
perf report -i "$work/perf.data" --children --stdio --sort symbol -g none --percent-limit 1 2>/dev/null |
  grep -E '^ +[0-9]' | head -"$TOP" || true
echo "== self, top $TOP"
perf report -i "$work/perf.data" --no-children --stdio --sort symbol -g none 2>/dev/null |
  grep -E '^ +[0-9]' | head -"$TOP" || true
