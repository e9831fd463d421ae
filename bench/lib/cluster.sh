# Shared by the cluster scripts in bench/: start a 3-member etcd 3.4 or
# rollcall cluster on loopback with fresh data directories under $OUT, wait
# for it, and read the servers' CPU time. Needs bench/lib/setup.sh first.

start_cluster() { # kind -> "pid pid pid|endpoints"
    local kind=$1 cluster="" pids="" eps="" i
    local -a cports pports
    for i in 0 1 2; do cports[$i]=$(free_port); pports[$i]=$(free_port); done
    for i in 0 1 2; do cluster+="m$i=http://127.0.0.1:${pports[$i]},"; done
    cluster=${cluster%,}
    for i in 0 1 2; do
        local dir="$OUT/$kind-$RANDOM-m$i"
        if [ "$kind" = etcd ]; then
            etcd --name "m$i" --data-dir "$dir" \
                --listen-client-urls "http://127.0.0.1:${cports[$i]}" --advertise-client-urls "http://127.0.0.1:${cports[$i]}" \
                --listen-peer-urls "http://127.0.0.1:${pports[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${pports[$i]}" \
                --initial-cluster "$cluster" --initial-cluster-state new --log-outputs=stderr >"$dir.log" 2>&1 &
        else
            "$ROLLCALL" serve --name "m$i" --data-dir "$dir" \
                --listen-client-urls "http://127.0.0.1:${cports[$i]}" --listen-metrics-urls '' \
                --listen-peer-urls "http://127.0.0.1:${pports[$i]}" \
                --initial-cluster "$cluster" --initial-cluster-state new >"$dir.log" 2>&1 &
        fi
        pids+="$! "
        echo "$!" >> "$OUT/servers"
        eps+="127.0.0.1:${cports[$i]},"
    done
    echo "${pids% }|${eps%,}"
}

wait_ready() { # endpoints
    for _ in $(seq 1 200); do
        if ETCDCTL_API=3 etcdctl --endpoints "$1" endpoint health --cluster >/dev/null 2>&1 \
            && ETCDCTL_API=3 etcdctl --endpoints "$1" put bench-ready 1 >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "cluster $1 did not become ready" >&2; return 1
}

cpu_ticks() { # pids -> utime+stime summed
    local total=0 pid
    for pid in "$@"; do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo $total
}
