#!/usr/bin/env bash
# Smoke run of every diquis-bench scenario against freshly started signalr-testserver nodes:
# a few hundred connections for a few seconds each. Fails if a connection fails or a message
# is lost (diquis-bench exits non-zero) or if a run delivered nothing. No timing assertions.
#
# Builds nothing: uses $DIQUIS_BENCH and $SIGNALR_TESTSERVER (defaults: the release binaries
# under $CARGO_TARGET_DIR or target/). The cross-node run starts its own redis-server on a free
# port in a temp dir.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bench="${DIQUIS_BENCH:-$target_dir/release/diquis-bench}"
server="${SIGNALR_TESTSERVER:-$target_dir/release/signalr-testserver}"
for binary in "$bench" "$server"; do
    [ -x "$binary" ] || { echo "bench-smoke: missing binary $binary (build it with cargo build --release)" >&2; exit 1; }
done

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts a testserver with extra arguments; sets $node_url and $node_pid once it listens.
start_server() {
    local log="$work/server-${#pids[@]}.log"
    : >"$log"
    "$server" --urls http://127.0.0.1:0 "$@" >"$log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    local line=""
    for _ in $(seq 1 300); do
        line="$(grep -m1 -o 'Now listening on: http://[0-9.:]*' "$log" || true)"
        [ -n "$line" ] && break
        kill -0 "$pid" 2>/dev/null || { echo "bench-smoke: testserver exited:" >&2; cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$line" ] || { echo "bench-smoke: testserver did not start listening:" >&2; cat "$log" >&2; exit 1; }
    node_url="${line#Now listening on: }/testhub"
    node_pid="$pid"
}

stop_server() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# Runs one bench scenario; checks its JSON says it passed and delivered something.
run_bench() {
    local name="$1"
    shift
    local json="$work/$name.json"
    echo "--- bench-smoke: $name: $*"
    if ! "$bench" "$@" --quiet --json "$json"; then
        echo "bench-smoke: $name FAILED" >&2
        exit 1
    fi
    python3 - "$json" "$name" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
name = sys.argv[2]
assert report["passed"], f"{name}: not passed: {report['failures']}"
connect = report["connect"]
assert connect["connected"] == connect["requested"] > 0, f"{name}: {connect}"
traffic = report.get("traffic")
if traffic is not None:
    assert traffic["expected"] > 0, f"{name}: nothing was expected: {traffic}"
    assert traffic["received"] == traffic["expected"] and traffic["lost"] == 0, f"{name}: {traffic}"
    assert traffic["latency"]["count"] >= traffic["received"], f"{name}: latency samples missing"
    if report["scenario"] != "echo":
        # Every call the sender made was completed (no send errors), so each has a round trip.
        calls = traffic.get("call_latency")
        assert calls is not None and calls["count"] == traffic["sent"] > 0, f"{name}: call round trips: {calls}"
    else:
        assert "call_latency" not in traffic, f"{name}: echo has no sender"
server = report.get("server")
if server is not None:
    assert server["rss_before_kb"] > 0 and server["rss_end_kb"] > 0, f"{name}: {server}"
assert report["config"]["read_pause_us"] == (50 if "paced-reads" in name else 0), f"{name}: {report['config']}"
EOF
}

common=(--duration 3 --drain-timeout 10 --connect-timeout 20)

start_server
run_bench idle idle --url "$node_url" -n 300 --server-pid "$node_pid" --settle 0.5 "${common[@]}"
stop_server "$node_pid"

start_server
run_bench connect connect --url "$node_url" -n 300 --workers 2 --source-addrs 2 --server-pid "$node_pid" "${common[@]}"
run_bench connect-skip-negotiation connect --url "$node_url" -n 200 --skip-negotiation "${common[@]}"
run_bench broadcast-json broadcast --url "$node_url" -n 300 --messages 200 --rate 100 --server-pid "$node_pid" "${common[@]}"
run_bench broadcast-burst-paced-reads broadcast --url "$node_url" -n 300 --messages 100 --inflight 16 --read-pause-us 50 "${common[@]}"
run_bench broadcast-messagepack broadcast --url "$node_url" -n 200 --messages 100 --protocol messagepack "${common[@]}"
run_bench echo echo --url "$node_url" -n 200 --rate 1000 --server-pid "$node_pid" "${common[@]}"
run_bench echo-messagepack echo --url "$node_url" -n 100 --protocol messagepack "${common[@]}"
run_bench group group --url "$node_url" -n 300 --group-size 10 --messages 300 --rate 300 "${common[@]}"
stop_server "$node_pid"

if "$server" --help 2>&1 | grep -q -- '--redis'; then
    redis_port="$(free_port)"
    mkdir -p "$work/redis"
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/redis" \
        >"$work/redis.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 1 100); do
        redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
    redis-cli -p "$redis_port" ping | grep -q PONG || { echo "bench-smoke: redis-server did not start" >&2; exit 1; }
    prefix="bench-smoke-$$"
    start_server --redis "127.0.0.1:$redis_port" --channel-prefix "$prefix"
    node_a="$node_url" pid_a="$node_pid"
    start_server --redis "127.0.0.1:$redis_port" --channel-prefix "$prefix"
    node_b="$node_url" pid_b="$node_pid"
    start_server --redis "127.0.0.1:$redis_port" --channel-prefix "$prefix"
    node_sender="$node_url"
    run_bench cross-node cross-node --url "$node_a,$node_b" --sender-url "$node_sender" -n 300 \
        --messages 100 --rate 50 --server-pid "$pid_a,$pid_b" "${common[@]}"
else
    echo "--- bench-smoke: cross-node SKIPPED: this signalr-testserver has no --redis option yet"
fi
echo "bench-smoke: all scenarios passed"
