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
