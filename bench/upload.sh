#!/usr/bin/env bash
# Uploads through the proxy: a 1 GiB chunked upload that is cut at the 10 MiB limit, and 9 MiB uploads
# that pass. Reports the proxy's peak resident memory (VmHWM) after each phase, which must stay flat
# (bodies are streamed, never buffered), and the throughput of the 9 MiB upload through the proxy versus
# straight to the sink (medians of ROUNDS interleaved runs). The sink (sink.py) reads every body byte
# before answering, so timings include the whole transfer.
#
# Usage: bench/upload.sh              (env: ROUNDS=10)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-10}"
cargo build --release -q -p edge-proxy --bins

. bench/lib.sh

S=$(free_port); P=$(free_port); PA=$(free_port)
python3 bench/sink.py "$S" & pids+=($!)
wait_for "http://127.0.0.1:$S/"

cat > "$work/proxy.toml" <<TOML
listen = "127.0.0.1:$P"
[server]
threads = 2
[admin]
listen = "127.0.0.1:$PA"
token_file = "$PWD/config/test/fixtures/admin-token.TEST-ONLY.txt"
[jwt]
key_file = "$PWD/config/test/fixtures/jwt-hs256.TEST-ONLY.b64"
[identity]
secret_file = "$PWD/config/test/fixtures/identity-secret.TEST-ONLY.b64"
[upstreams.todo]
peers = ["127.0.0.1:$S"]
[[routes]]
name = "upload"
prefix = "/upload"
upstream = "todo"
auth = "none"
methods = ["POST", "PUT"]
[log]
filter = "error"
TOML
target/release/edge-proxy --config "$work/proxy.toml" & proxy=$!; pids+=($proxy)
wait_for "http://127.0.0.1:$PA/healthz"
hwm() { awk '/VmHWM/ {print $2}' "/proc/$proxy/status"; }

head -c $((9 * 1024 * 1024)) /dev/urandom > "$work/9m"
echo "proxy peak RSS at start: $(hwm) KiB"

# 1 GiB, chunked, streamed from /dev/zero: cut at 10 MiB.
status=$(head -c $((1024 * 1024 * 1024)) /dev/zero | curl -s -o /dev/null -w '%{http_code}' \
  -H 'Expect:' -X POST -T - "http://127.0.0.1:$P/upload/big" || true)
echo "1 GiB chunked upload: HTTP $status; proxy peak RSS after: $(hwm) KiB"

for r in $(seq 1 "$ROUNDS"); do
  for target in "direct http://127.0.0.1:$S/upload/9m" "proxy http://127.0.0.1:$P/upload/9m"; do
    set -- $target
    t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H 'Expect:' -X POST --data-binary @"$work/9m" "$2")
    [ "${t%% *}" = 200 ] || { echo "$1: HTTP ${t%% *}" >&2; exit 1; }
    echo "$1 ${t#* }" >> "$work/results"
  done
done
echo "after $ROUNDS x 9 MiB through the proxy: peak RSS $(hwm) KiB"
python3 - "$work/results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    k, t = line.split()
    runs.setdefault(k, []).append(float(t))
mib = 9.0
d, p = statistics.median(runs["direct"]), statistics.median(runs["proxy"])
print(f"9 MiB upload: direct {mib / d:.0f} MiB/s, through edge-proxy {mib / p:.0f} MiB/s (median of {len(runs['proxy'])}); proxy/direct = {d / p:.2f}")
PY
