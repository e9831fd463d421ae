# Shared start of every script in bench/ (sourced from the repository root):
# refuse to run without etcd 3.4 and etcdctl (the comparison, and
# BENCHMARKS.md, is against etcd 3.4; another version's numbers would be
# published under the wrong name), pick the rollcall binary ($ROLLCALL_BIN,
# or a fresh release build), make a scratch directory $OUT removed on exit
# with every background job and every server listed in $OUT/servers (servers
# started inside $(...) are not this shell's jobs), and free_port.

command -v etcd >/dev/null || { echo "needs etcd 3.4: apt-get install etcd-server" >&2; exit 1; }
command -v etcdctl >/dev/null || { echo "needs etcdctl: apt-get install etcd-client" >&2; exit 1; }
ETCD_VERSION=$(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p' | head -1)
case "$ETCD_VERSION" in
    3.4.*) ;;
    *) echo "refusing to run: etcd --version reports '${ETCD_VERSION:-nothing}', not 3.4.x" >&2; exit 1 ;;
esac
if [ -n "${ROLLCALL_BIN:-}" ]; then
    ROLLCALL=$ROLLCALL_BIN
else
    cargo build --release -q -p rollcall-server
    ROLLCALL=./target/release/rollcall
fi
OUT=$(mktemp -d)
: > "$OUT/servers"
trap 'kill $(jobs -p) $(cat "$OUT/servers" 2>/dev/null) 2>/dev/null || true; rm -rf "$OUT"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
