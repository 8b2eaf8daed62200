#!/usr/bin/env bash
# Runs the docs/benchmarks.md measurements: each scenario RUNS times (default 3), every run
# against freshly started signalr-testserver nodes (and a fresh redis-server where a backplane is
# needed), then prints the per-metric medians. Each diquis-bench run is bounded (≤ 2 minutes).
#
#   crates/bench/scripts/measure.sh [scenario ...]     (default: all but scale)
#   scenarios: idle connect connect-skip broadcast-burst broadcast-paced echo group cross-node scale
#   env: RUNS (3), PERF_SECONDS (unset: when set, a system-wide perf profile of each run's measured phase, PERF_DELAY and PERF_FREQUENCY), SCALE (1: divide connection counts by it), NICE (-15 as root), NODE_THREADS (1), READ_PAUSE_US (0: passed to every run as --read-pause-us), BURST_WORKERS (1: bench workers of broadcast-burst), OUT (results dir, default /tmp/diquis-bench-<time>), DIQUIS_BENCH, SIGNALR_TESTSERVER
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bench="${DIQUIS_BENCH:-$target_dir/release/diquis-bench}"
server="${SIGNALR_TESTSERVER:-$target_dir/release/signalr-testserver}"
runs="${RUNS:-3}"
scale="${SCALE:-1}"  # divides every connection count, for a quick rehearsal
# Servers, Redis and the bench run at this nice level (default -15 as root): on a shared
# 2-core machine busy with builds, unboosted runs measure the scheduler, not the server.
# With autogroup scheduling, nice only counts inside a session, so the script moves itself
# into a session of its own and gives that session's autogroup the same nice level.
nice_level="${NICE:-$([ "$(id -u)" -eq 0 ] && echo -15 || echo 0)}"
if [ -z "${MEASURE_OWN_SESSION:-}" ] && [ -w /proc/self/autogroup ] && command -v setsid >/dev/null; then
    export MEASURE_OWN_SESSION=1
    exec setsid --wait bash "$0" "$@"
fi
if [ -w /proc/self/autogroup ]; then echo "$nice_level" >/proc/self/autogroup 2>/dev/null || true; fi
out="${OUT:-/tmp/diquis-bench-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(idle connect connect-skip broadcast-burst broadcast-paced echo group cross-node)

pids=()
servers_started=0
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_server [args]: sets node_url, node_pid.
start_server() {
    servers_started=$((servers_started + 1))
    local log="$out/server-$servers_started.log"
    : >"$log"  # empty before the server starts, so no earlier run's port is read
    nice -n "$nice_level" "$server" --urls http://127.0.0.1:0 "$@" >"$log" 2>&1 &
    local pid=$! line=""
    pids+=("$pid")
    for _ in $(seq 1 300); do
        line="$(grep -m1 -o 'Now listening on: http://[0-9.:]*' "$log" || true)"
        [ -n "$line" ] && break
        sleep 0.1
    done
    [ -n "$line" ] || { echo "testserver did not start: $(cat "$log")" >&2; exit 1; }
    node_url="${line#Now listening on: }/testhub"
    node_pid="$pid"
}

# start_redis: sets redis_port, redis_pid.
start_redis() {
    redis_port="$(free_port)"
    mkdir -p "$out/redis-$redis_port"
    nice -n "$nice_level" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$out/redis-$redis_port" \
        >"$out/redis-$redis_port.log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && return; sleep 0.1; done
    echo "redis-server did not start" >&2; exit 1
}

cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# start_nodes N: N nodes sharing a fresh redis-server; sets urls (comma list), node_pids (comma
# list). Each node runs one tokio worker thread (NODE_THREADS, default 1): several nodes share
# the two cores here, and two threads per node
# only add context switches (cross-node p99 445 ms with two, 149 ms with one). A node on a
# machine of its own uses every core (tokio's default).
start_nodes() {
    start_redis
    local prefix="bench-$RANDOM" list=() plist=()
    for _ in $(seq 1 "$1"); do
        TOKIO_WORKER_THREADS="${NODE_THREADS:-1}" start_server --redis "127.0.0.1:$redis_port" --channel-prefix "$prefix"
        list+=("$node_url"); plist+=("$node_pid")
    done
    urls="$(IFS=,; echo "${list[*]}")"
    node_pids="$(IFS=,; echo "${plist[*]}")"
}

bench_run() { # name run args...
    local name="$1" run="$2"; shift 2
    local json="$out/$name-$run.json"
    echo "=== $name run $run: diquis-bench $* (load: $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$out/log.txt"
    local run_bench=(timeout 150 nice -n "$nice_level" "$bench" "$@" --read-pause-us "${READ_PAUSE_US:-0}" --json "$json")
    if [ -n "${PERF_SECONDS:-}" ]; then
        # A system-wide profile of the measured phase: from PERF_DELAY (2) s after every client
        # connected, for PERF_SECONDS; `perf report -i FILE --sort comm,dso,symbol` splits it.
        local progress="$out/$name-$run.progress"
        "${run_bench[@]}" >"$progress" 2>&1 &
        local bench_pid=$!
        until grep -q '^connected ' "$progress" || ! kill -0 "$bench_pid" 2>/dev/null; do sleep 0.2; done
        sleep "${PERF_DELAY:-2}"
        perf record -e cpu-clock -F "${PERF_FREQUENCY:-499}" -a -g -o "$out/$name-$run.perf.data" -- sleep "$PERF_SECONDS" >/dev/null 2>&1 || true
        wait "$bench_pid" || echo "(exit status $?)" | tee -a "$out/log.txt"
        grep -v '^\[' "$progress" | tee -a "$out/log.txt"
        return
    fi
    "${run_bench[@]}" --quiet 2>&1 | tee -a "$out/log.txt" || echo "(exit status $?)" | tee -a "$out/log.txt"
}

for scenario in "${scenarios[@]}"; do
    for run in $(seq 1 "$runs"); do
        case "$scenario" in
        idle)
            start_server
            bench_run idle "$run" idle --url "$node_url" -n $((15000 / scale)) --settle 3 --duration 35 --server-pid "$node_pid" ;;
        connect)
            start_server
            bench_run connect "$run" connect --url "$node_url" -n $((10000 / scale)) --server-pid "$node_pid" ;;
        connect-skip)
            start_server
            bench_run connect-skip "$run" connect --url "$node_url" -n $((10000 / scale)) --skip-negotiation --server-pid "$node_pid" ;;
        broadcast-burst)
            start_server
            # One bench worker: on two cores shared with the server's two threads, a second
            # bench thread only adds context switches (docs/benchmarks.md, "Broadcast burst").
            bench_run broadcast-burst "$run" broadcast --url "$node_url" -n $((10000 / scale)) --messages 300 --inflight 16 \
                --size 100 --duration 60 --drain-timeout 60 --workers "${BURST_WORKERS:-1}" --server-pid "$node_pid" ;;
        broadcast-paced)
            start_server
            bench_run broadcast-paced "$run" broadcast --url "$node_url" -n $((10000 / scale)) --rate 10 --duration 15 \
                --size 100 --server-pid "$node_pid" ;;
        echo)
            start_server
            bench_run echo "$run" echo --url "$node_url" -n $((1000 / scale)) --duration 10 --server-pid "$node_pid" ;;
        group)
            start_server
            bench_run group "$run" group --url "$node_url" -n $((10000 / scale)) --group-size 10 --rate 2000 --duration 10 \
                --server-pid "$node_pid" ;;
        cross-node)
            start_nodes 3
            receivers="${urls%,*}"; sender="${urls##*,}"
            before="$(cpu_ticks "$redis_pid")"
            bench_run cross-node "$run" cross-node --url "$receivers" --sender-url "$sender" -n $((10000 / scale)) --rate 50 \
                --duration 20 --server-pid "$node_pids"
            echo "redis cpu ticks during run: $(( $(cpu_ticks "$redis_pid") - before ))" | tee "$out/cross-node-$run.redis" ;;
        scale)
            start_nodes 6
            before="$(cpu_ticks "$redis_pid")"
            bench_run scale "$run" broadcast --url "$urls" -n $((100000 / scale)) --rate 1 --duration 20 --connect-timeout 60 \
                --drain-timeout 30 --server-pid "$node_pids"
            echo "redis cpu ticks during run: $(( $(cpu_ticks "$redis_pid") - before ))" | tee "$out/scale-$run.redis" ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
        esac
        cleanup
    done
done

python3 - "$out" "${scenarios[@]}" <<'PY'
import glob, json, statistics, sys
out, scenarios = sys.argv[1], sys.argv[2:]
def get(d, path):
    for key in path.split("."):
        if d is None:
            return None
        d = d.get(key)
    return d
metrics = [
    ("conn/s", "connect.per_second", "{:.0f}"), ("connect p99 ms", "connect.latency.p99_ms", "{:.1f}"),
    ("failed", "connect.failed", "{:.0f}"), ("KB/conn", "server.kb_per_connection", "{:.2f}"),
    ("rss peak MB", "server.rss_peak_kb", "{:.0f}", 1 / 1024), ("msg/s", "traffic.per_second", "{:.0f}"),
    ("p50 ms", "traffic.latency.p50_ms", "{:.2f}"), ("p90 ms", "traffic.latency.p90_ms", "{:.2f}"),
    ("p99 ms", "traffic.latency.p99_ms", "{:.2f}"), ("max ms", "traffic.latency.max_ms", "{:.2f}"),
    ("lost", "traffic.lost", "{:.0f}"), ("server cpu %", "server.cpu_run_percent", "{:.0f}"),
    ("µs cpu/msg", "server.cpu_us_per_message", "{:.2f}"), ("bench cpu %", "client.cpu_run_percent", "{:.0f}"),
]
for scenario in scenarios:
    reports = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{scenario}-[0-9]*.json"))]
    if not reports:
        continue
    print(f"\n{scenario}: {len(reports)} runs, passed: {[r['passed'] for r in reports]}")
    for name, path, fmt, *scale in metrics:
        values = [get(r, path) for r in reports]
        values = [v * (scale[0] if scale else 1) for v in values if isinstance(v, (int, float))]
        if values:
            print(f"  {name:<15} median {fmt.format(statistics.median(values)):>12}   runs: " + ", ".join(fmt.format(v) for v in values))
PY
echo "results in $out"
