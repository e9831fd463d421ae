#!/usr/bin/env bash
# Runs every `rollcall bench` scenario against real etcd 3.4 and against
# rollcall, one server at a time, each on loopback with a fresh data directory
# and the same parameters, records each server's peak RSS, and prints one
# table with both results and the ratio rollcall/etcd.
#
#   bench/side-by-side.sh            # full run (a few minutes)
#   QUICK=1 bench/side-by-side.sh    # short smoke run
#
# Both servers acknowledge only durable writes (etcd fsyncs its WAL and
# backend; rollcall fsyncs every redb commit). Needs etcd (Debian's
# etcd-server) and python3 (to pick free ports and to format the table).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v etcd >/dev/null || { echo "needs etcd: apt-get install etcd-server" >&2; exit 1; }
cargo build --release -q -p rollcall-server
ROLLCALL=./target/release/rollcall
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ -n "${QUICK:-}" ]; then
    D=3s; N=20000; W=1000
else
    D=10s; N=100000; W=10000
fi

# name | bench arguments (the same for both servers)
SCENARIOS=(
  "put 1000c/100conn|--clients 1000 --conns 100 --total $N --key-size 8 --val-size 256 put"
  "range l|--clients 100 --conns 10 --total $N --key-space 10000 range --consistency l"
  "range s|--clients 100 --conns 10 --total $N --key-space 10000 range --consistency s"
  "txn-cas|--clients 100 --conns 10 --duration $D --key-space 1000 txn-cas"
  "watch-latency|--duration $D watch-latency --watchers $W --hot-watchers 100 --streams 10 --rate 200"
  "lease-keepalive|--clients 1000 --duration $D lease-keepalive --leases $W --streams 1"
  "register-churn|--clients 100 --conns 10 --duration $D register-churn"
)

start_server() { # kind port dir -> pid
    local kind=$1 port=$2 dir=$3
    if [ "$kind" = etcd ]; then
        local peer; peer=$(free_port)
        etcd --name bench --data-dir "$dir" \
            --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
            --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
            --initial-cluster "bench=http://127.0.0.1:$peer" --log-outputs=stderr >"$dir.log" 2>&1 &
    else
        "$ROLLCALL" serve --data-dir "$dir" --listen-client-urls "http://127.0.0.1:$port" \
            --listen-metrics-urls '' >"$dir.log" 2>&1 &
    fi
    echo $!
}

wait_ready() { # port
    for _ in $(seq 1 100); do
        if ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$1" endpoint health >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "server on port $1 did not become ready" >&2; return 1
}

RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
for entry in "${SCENARIOS[@]}"; do
    name=${entry%%|*}; args=${entry#*|}
    for kind in etcd rollcall; do
        port=$(free_port); dir="$OUT/$kind-$RANDOM"
        pid=$(start_server "$kind" "$port" "$dir")
        wait_ready "$port"
        # shellcheck disable=SC2086
        line=$("$ROLLCALL" bench --endpoints "127.0.0.1:$port" --output json --no-progress $args | tail -1)
        rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
        kill "$pid"; wait "$pid" 2>/dev/null || true
        python3 - "$name" "$kind" "$rss_kb" "$line" >>"$RESULTS" <<'PY'
import json, sys
name, kind, rss, line = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
report = json.loads(line)
print(json.dumps({"scenario": name, "server": kind, "peak_rss_mib": rss / 1024, "report": report}))
PY
        echo "done: $name on $kind" >&2
    done
done

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["scenario"], {})[r["server"]] = r
def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"
print(f"| scenario | metric | etcd 3.4 | rollcall | rollcall/etcd |")
print(f"|---|---|---|---|---|")
for name, pair in by.items():
    e, r = pair["etcd"], pair["rollcall"]
    er, rr = e["report"], r["report"]
    metrics = [
        ("ops/s", er["ops_per_sec"], rr["ops_per_sec"], "{:,.0f}"),
        ("p50 ms", er["latency_ms"]["p50"], rr["latency_ms"]["p50"], "{:.2f}"),
        ("p99 ms", er["latency_ms"]["p99"], rr["latency_ms"]["p99"], "{:.2f}"),
        ("errors", er["errors"], rr["errors"], "{}"),
        ("peak RSS MiB", e["peak_rss_mib"], r["peak_rss_mib"], "{:.0f}"),
    ]
    for metric, a, b, fmt in metrics:
        print(f"| {name} | {metric} | {fmt.format(a)} | {fmt.format(b)} | {ratio(b, a) if metric != 'errors' else ''} |")
PY
