#!/usr/bin/env bash
# Runs every `rollcall bench` scenario against real etcd 3.4 and against
# rollcall, one server at a time, each on loopback with a fresh data directory
# and the same parameters, records each server's peak RSS, and prints one
# markdown table with both results, the ratio rollcall/etcd and the target
# each headline ratio is held to: the format of the tables in BENCHMARKS.md.
#
#   bench/side-by-side.sh            # full run (a few minutes)
#   QUICK=1 bench/side-by-side.sh    # short smoke run
#   ROLLCALL_BIN=path bench/...      # use that rollcall binary (no release build)
#
# Both servers acknowledge only durable writes (etcd fsyncs its WAL and
# backend; rollcall fsyncs every redb commit). Needs etcd 3.4.x and etcdctl
# (Debian's etcd-server and etcd-client) and python3 (to pick free ports and
# to format the table).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/lib/setup.sh
. bench/lib/setup.sh

if [ -n "${QUICK:-}" ]; then
    SECS=3; N=20000; W=1000
else
    SECS=10; N=100000; W=10000
fi
D=${SECS}s
NK="$((N / 1000))k"
WN=$(python3 -c "print(f'{$W:,}')")

# key | label in the table | bench arguments (the same for both servers).
# The key selects the throughput unit and the targets in the formatter below.
SCENARIOS=(
  "put|put, 1000 clients / 100 conns, $NK puts, 8 B keys, 256 B values|--clients 1000 --conns 100 --total $N --key-size 8 --val-size 256 put"
  "range-l|range, linearizable, 100 clients, $NK gets over 10k keys|--clients 100 --conns 10 --total $N --key-space 10000 range --consistency l"
  "range-s|range, serializable|--clients 100 --conns 10 --total $N --key-space 10000 range --consistency s"
  "txn-cas|txn-cas, 100 clients, $SECS s, 1000 keys|--clients 100 --conns 10 --duration $D --key-space 1000 txn-cas"
  "watch-latency|watch-latency, $WN watchers on distinct prefixes + 100 on a hot one, 200 puts/s, $SECS s|--duration $D watch-latency --watchers $W --hot-watchers 100 --streams 10 --rate 200"
  "lease-keepalive|lease-keepalive, $WN leases on one stream, 1000 in flight, $SECS s|--clients 1000 --duration $D lease-keepalive --leases $W --streams 1"
  "register-churn|register-churn (grant + put with lease + keepalive once + revoke), 100 clients, $SECS s|--clients 100 --conns 10 --duration $D register-churn"
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
    echo "$!" >> "$OUT/servers"
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
    IFS='|' read -r name label args <<<"$entry"
    for kind in etcd rollcall; do
        port=$(free_port); dir="$OUT/$kind-$RANDOM"
        pid=$(start_server "$kind" "$port" "$dir")
        wait_ready "$port"
        # shellcheck disable=SC2086
        line=$("$ROLLCALL" bench --endpoints "127.0.0.1:$port" --output json --no-progress $args | tail -1)
        rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
        kill "$pid"; wait "$pid" 2>/dev/null || true
        python3 - "$name" "$label" "$kind" "$rss_kb" "$line" >>"$RESULTS" <<'PY'
import json, sys
name, label, kind, rss, line = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
report = json.loads(line)
print(json.dumps({"scenario": name, "label": label, "server": kind,
                  "peak_rss_mib": rss / 1024, "report": report}))
PY
        echo "done: $name on $kind" >&2
    done
done

python3 - "$RESULTS" <<'PY'
import json, sys

# Throughput unit and targets per scenario: ("ops", ">=", 2) means
# rollcall/etcd throughput at least 2x; ("p99", "<=", 0.5) the latency p99
# ratio at most 0.5x; ("rss", "<=", 0.5) the peak RSS ratio at most 0.5x.
UNITS = {"put": "ops/s", "range-l": "ops/s", "range-s": "ops/s", "txn-cas": "swaps/s",
         "watch-latency": "events/s delivered", "lease-keepalive": "keepalives/s",
         "register-churn": "cycles/s"}
TARGETS = {"put": [("ops", ">=", 2), ("rss", "<=", 0.5)], "range-l": [("ops", ">=", 2)],
           "range-s": [("ops", ">=", 2)], "txn-cas": [("rss", "<=", 0.5)],
           "watch-latency": [("p99", "<=", 0.5)], "lease-keepalive": [("ops", ">=", 2)],
           "register-churn": [("ops", ">=", 2), ("rss", "<=", 0.5)]}

def ms(v):  # three significant digits
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"

def times(r):
    return "n/a" if r is None else f"{r:.0f}×" if r >= 10 else f"{r:.2f}×"

def ratio(a, b):
    return b / a if a else None

def target(scenario, what, r):
    for w, op, bound in TARGETS.get(scenario, []):
        if w == what:
            met = r is not None and (r >= bound if op == ">=" else r <= bound)
            sign = "≥" if op == ">=" else "≤"
            prefix = "p99 " if w == "p99" else ""
            return f"{prefix}{sign} {bound:g}× — {'met' if met else 'missed'}"
    return ""

def shown(scenario, what, r):
    text = times(r)
    return f"**{text}**" if target(scenario, what, r) else text

def row(cells):  # an empty cell is "| |", as in BENCHMARKS.md
    print("|" + "".join(f" {c} |" if c else " |" for c in cells))

rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["scenario"], {})[r["server"]] = r
print("| scenario | metric | etcd 3.4 | rollcall | rollcall/etcd | target |")
print("|---|---|---|---|---|---|")
errors = []
for name, pair in by.items():
    e, r = pair["etcd"], pair["rollcall"]
    er, rr = e["report"], r["report"]
    ops = ratio(er["ops_per_sec"], rr["ops_per_sec"])
    p50 = ratio(er["latency_ms"]["p50"], rr["latency_ms"]["p50"])
    p99 = ratio(er["latency_ms"]["p99"], rr["latency_ms"]["p99"])
    rss = ratio(e["peak_rss_mib"], r["peak_rss_mib"])
    latency = "put-to-event p50 / p99 ms" if name == "watch-latency" else "p50 / p99 ms"
    row([e["label"], UNITS.get(name, "ops/s"), f"{er['ops_per_sec']:,.0f}",
         f"{rr['ops_per_sec']:,.0f}", shown(name, "ops", ops), target(name, "ops", ops)])
    row(["", latency, f"{ms(er['latency_ms']['p50'])} / {ms(er['latency_ms']['p99'])}",
         f"{ms(rr['latency_ms']['p50'])} / {ms(rr['latency_ms']['p99'])}",
         f"{times(p50)} / {shown(name, 'p99', p99)}", target(name, "p99", p99)])
    row(["", "peak RSS MiB", f"{e['peak_rss_mib']:.0f}", f"{r['peak_rss_mib']:.0f}",
         shown(name, "rss", rss), target(name, "rss", rss)])
    for side in (e, r):
        if side["report"]["errors"]:
            errors.append(f"{name} on {side['server']}: {side['report']['errors']}")
print()
print("Errors: " + ("; ".join(errors) if errors else "none in any run."))
PY
