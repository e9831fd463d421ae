#!/usr/bin/env bash
# Runs `rollcall bench` scenarios against a 3-member etcd 3.4 cluster and a
# 3-member rollcall cluster on this machine, one cluster at a time, each on
# loopback with fresh data directories and the same parameters, with the
# load spread over all three members. Beside throughput and latency it
# prints the servers' CPU per operation (utime + stime of the three
# processes from /proc/PID/stat before and after the scenario, divided by
# the operations done; the load generator shares the cores, so this is the
# figure the servers alone control) and the peak RSS summed over the three.
#
#   bench/cluster-side-by-side.sh           # full run
#   QUICK=1 bench/cluster-side-by-side.sh   # short smoke run
#   ROLLCALL_BIN=path bench/...             # use that binary (no release build)
#   ONLY=put,range-l bench/...              # only these scenarios
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/lib/setup.sh
. bench/lib/setup.sh

TICKS=$(getconf CLK_TCK)
# shellcheck source=bench/lib/cluster.sh
. bench/lib/cluster.sh

if [ -n "${QUICK:-}" ]; then
    SECS=3; N=20000; W=1000
else
    SECS=10; N=60000; W=5000
fi
D=${SECS}s

SCENARIOS=(
  "put|put, 1000 clients / 100 conns, 8 B keys, 256 B values|--clients 1000 --conns 100 --total $N --key-size 8 --val-size 256 put"
  "range-l|range, linearizable, 100 clients over 10k keys|--clients 100 --conns 10 --total $N --key-space 10000 range --consistency l"
  "range-s|range, serializable|--clients 100 --conns 10 --total $N --key-space 10000 range --consistency s"
  "txn-cas|txn-cas, 100 clients, $SECS s, 1000 keys|--clients 100 --conns 10 --duration $D --key-space 1000 txn-cas"
  "watch-latency|watch-latency, $W watchers + 100 hot, 200 puts/s, $SECS s|--duration $D watch-latency --watchers $W --hot-watchers 100 --streams 10 --rate 200"
  "lease-keepalive|lease-keepalive, $W leases, 1000 in flight on 3 streams (one per member), $SECS s|--clients 1000 --conns 3 --duration $D lease-keepalive --leases $W --streams 3"
  "register-churn|register-churn, 100 clients, $SECS s|--clients 100 --conns 10 --duration $D register-churn"
)

RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
for entry in "${SCENARIOS[@]}"; do
    IFS='|' read -r name label args <<<"$entry"
    if [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
    for kind in etcd rollcall; do
        started=$(start_cluster "$kind")
        read -r -a pids <<<"${started%%|*}"
        eps=${started##*|}
        wait_ready "$eps"
        before=$(cpu_ticks "${pids[@]}")
        # shellcheck disable=SC2086
        line=$("$ROLLCALL" bench --endpoints "$eps" --output json --no-progress $args | tail -1)
        after=$(cpu_ticks "${pids[@]}")
        rss_kb=0
        for pid in "${pids[@]}"; do
            rss_kb=$((rss_kb + $(awk '/VmHWM/ {print $2}' "/proc/$pid/status")))
        done
        kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
        python3 - "$name" "$label" "$kind" "$rss_kb" "$((after - before))" "$TICKS" "$line" >>"$RESULTS" <<'PY'
import json, sys
name, label, kind, rss, ticks, hz, line = sys.argv[1:8]
report = json.loads(line)
print(json.dumps({"scenario": name, "label": label, "server": kind,
                  "peak_rss_mib": int(rss) / 1024, "cpu_s": int(ticks) / int(hz),
                  "report": report}))
PY
        echo "done: $name on $kind" >&2
    done
done

python3 - "$RESULTS" <<'PY'
import json, sys

def ms(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"

def times(r):
    return "n/a" if r is None else f"{r:.2f}×"

def ratio(a, b):
    return b / a if a else None

rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["scenario"], {})[r["server"]] = r
print("| scenario (3 members each) | metric | etcd 3.4 | rollcall | rollcall/etcd |")
print("|---|---|---|---|---|")
errors = []
for name, pair in by.items():
    e, r = pair["etcd"], pair["rollcall"]
    er, rr = e["report"], r["report"]
    def cpu_us(side):
        done = side["report"]["ok"] + (side["report"].get("conflicts") or 0)
        return side["cpu_s"] * 1e6 / done if done else None
    ce, cr = cpu_us(e), cpu_us(r)
    latency = "put-to-event p50 / p99 ms" if name == "watch-latency" else "p50 / p99 ms"
    print(f"| {e['label']} | ops/s | {er['ops_per_sec']:,.0f} | {rr['ops_per_sec']:,.0f} | {times(ratio(er['ops_per_sec'], rr['ops_per_sec']))} |")
    print(f"| | {latency} | {ms(er['latency_ms']['p50'])} / {ms(er['latency_ms']['p99'])} | {ms(rr['latency_ms']['p50'])} / {ms(rr['latency_ms']['p99'])} | {times(ratio(er['latency_ms']['p99'], rr['latency_ms']['p99']))} (p99) |")
    cpu = lambda v: "n/a" if v is None else f"{v:.0f}"
    print(f"| | server CPU µs/op (3 members) | {cpu(ce)} | {cpu(cr)} | {times(ratio(ce, cr)) if ce and cr else 'n/a'} |")
    print(f"| | peak RSS MiB (sum of 3) | {e['peak_rss_mib']:.0f} | {r['peak_rss_mib']:.0f} | {times(ratio(e['peak_rss_mib'], r['peak_rss_mib']))} |")
    for side in (e, r):
        if side["report"]["errors"]:
            errors.append(f"{name} on {side['server']}: {side['report']['errors']}")
print()
print("Errors: " + ("; ".join(errors) if errors else "none in any run."))
PY
