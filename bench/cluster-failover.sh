#!/usr/bin/env bash
# Leader failover, 3-member etcd 3.4 against 3-member rollcall on this
# machine (both with --election-timeout 1000, --heartbeat-interval 100, the
# defaults). Each round starts a fresh cluster, puts load on the two
# followers (`rollcall bench put`, 100 clients for 8 s), kills the leader
# with SIGKILL 3 s in, and measures:
#   - first write: from the kill to the first acknowledged put through a
#     survivor (etcdctl, 200 ms command timeout, retried at once);
#   - the bench's put p99 and error count over the whole run.
#
#   bench/cluster-failover.sh              # 3 rounds per server
#   ROUNDS=1 bench/cluster-failover.sh
#   ROLLCALL_BIN=path bench/...            # use that binary (no release build)
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/lib/setup.sh
. bench/lib/setup.sh
# shellcheck source=bench/lib/cluster.sh
. bench/lib/cluster.sh
ROUNDS=${ROUNDS:-3}
export ETCDCTL_API=3

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# The index (0..2) of the member that leads, asked of each endpoint.
leader_index() { # endpoints
    local -a eps
    IFS=',' read -r -a eps <<<"$1"
    etcdctl --endpoints "$1" endpoint status -w json | python3 -c '
import json, sys
eps = sys.argv[1].split(",")
rows = json.load(sys.stdin)
leader = rows[0]["Status"]["leader"]
for row in rows:
    if row["Status"]["header"]["member_id"] == leader:
        print(eps.index(row["Endpoint"].replace("http://", "")))
' "$1"
}

RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
    for kind in etcd rollcall; do
        started=$(start_cluster "$kind")
        read -r -a pids <<<"${started%%|*}"
        eps=${started##*|}
        wait_ready "$eps"
        IFS=',' read -r -a all <<<"$eps"
        lead=$(leader_index "$eps")
        survivors=""
        for i in 0 1 2; do [ "$i" = "$lead" ] || survivors+="${all[$i]},"; done
        survivors=${survivors%,}
        "$ROLLCALL" bench --endpoints "$survivors" --output json --no-progress \
            --clients 100 --conns 10 --duration 8s put >"$OUT/bench.json" &
        bench=$!
        sleep 3
        killed_at=$(now_ms)
        kill -9 "${pids[$lead]}"
        first=""
        for _ in $(seq 1 300); do
            if etcdctl --endpoints "$survivors" --command-timeout=200ms put failover "$round" >/dev/null 2>&1; then
                first=$(( $(now_ms) - killed_at )); break
            fi
        done
        wait "$bench"
        kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true
        python3 - "$kind" "$round" "${first:-null}" "$(tail -1 "$OUT/bench.json")" >>"$RESULTS" <<'PY'
import json, sys
kind, round_, first, line = sys.argv[1:5]
report = json.loads(line)
print(json.dumps({"server": kind, "round": int(round_),
                  "first_write_ms": None if first == "null" else int(first),
                  "put_p99_ms": report["latency_ms"]["p99"],
                  "put_max_ms": report["latency_ms"].get("max"),
                  "ops_per_sec": report["ops_per_sec"],
                  "errors": report["errors"]}))
PY
        echo "done: round $round on $kind" >&2
    done
done

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| server (3 members) | round | leader kill → first write ms | put p99 ms (8 s, kill at 3 s) | put ops/s | errors |")
print("|---|---|---|---|---|---|")
for r in rows:
    errors = sum(r["errors"].values()) if isinstance(r["errors"], dict) else r["errors"]
    print(f"| {r['server']} | {r['round']} | {r['first_write_ms']} | {r['put_p99_ms']:.0f} | {r['ops_per_sec']:,.0f} | {errors} |")
PY
