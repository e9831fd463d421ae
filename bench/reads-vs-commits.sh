#!/usr/bin/env bash
# Do long reads hold up commits? Fills 100,000 keys, then measures put
# latency (`rollcall bench put`) once alone and once while a loop of
# full-keyspace ranges (100,000 keys, 256-byte values, ~27 MB per response)
# runs against the same server. Prints one JSON line per run.
#
#   bench/reads-vs-commits.sh [ROLLCALL_BINARY_UNDER_TEST]
#
# The binary under test defaults to ./target/release/rollcall; the load
# generator is always ./target/release/rollcall. Needs etcdctl (the range
# loop) and python3 (free ports).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v etcdctl >/dev/null || { echo "needs etcdctl: apt-get install etcd-client" >&2; exit 1; }
[ -x ./target/release/rollcall ] || cargo build --release -q -p rollcall-server
BENCH=./target/release/rollcall
SERVER=${1:-$BENCH}
KEYS=${KEYS:-100000}
PUTS=${PUTS:-20000}
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SERVER" serve --data-dir "$OUT/data" --listen-client-urls "http://127.0.0.1:$port" \
    --listen-metrics-urls '' >"$OUT/server.log" 2>&1 &
for _ in $(seq 1 100); do
    ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$port" endpoint health >/dev/null 2>&1 && break
    sleep 0.1
done
# Fill keys 0..KEYS (8-byte keys, 256-byte values); one get measured, ignored.
"$BENCH" bench --endpoints "127.0.0.1:$port" --no-progress --output json \
    --clients 100 --conns 10 --total 1 --key-space "$KEYS" range >/dev/null

measure() { # label
    "$BENCH" bench --endpoints "127.0.0.1:$port" --no-progress --output json \
        --clients 100 --conns 10 --total "$PUTS" --key-size 8 --val-size 256 \
        --key-space "$KEYS" put | tail -1 | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(json.dumps({"run": sys.argv[1], "ops_per_sec": round(r["ops_per_sec"]), "p50_ms": r["latency_ms"]["p50"], "p99_ms": r["latency_ms"]["p99"], "max_ms": r["latency_ms"]["max"]}))' "$1"
}

measure "puts alone"
(
    # Bounded: at most 10,000 ranges, and stopped when the measurement ends.
    for _ in $(seq 1 10000); do
        ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$port" --command-timeout 60s \
            get "" --from-key -w protobuf >/dev/null
        echo >>"$OUT/ranges"
    done
) &
loop=$!
sleep 1
measure "puts during full-keyspace ranges"
kill "$loop" 2>/dev/null || true
echo "{\"ranges_completed\": $(wc -l <"$OUT/ranges" 2>/dev/null || echo 0)}"
