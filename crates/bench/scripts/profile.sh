#!/usr/bin/env bash
# Profiles signalr-testserver under one diquis-bench scenario with perf (software cpu-clock
# sampling, system wide, then filtered to the server's pid: this KVM guest has no hardware
# counters and per-pid recording gets no samples here).
#
#   crates/bench/scripts/profile.sh broadcast|broadcast-paced|echo|connect|group [seconds-to-record]
#   env: OUT (default /tmp/diquis-profile-<scenario>), DIQUIS_BENCH, SIGNALR_TESTSERVER
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bench="${DIQUIS_BENCH:-$target_dir/release/diquis-bench}"
server="${SIGNALR_TESTSERVER:-$target_dir/release/signalr-testserver}"
scenario="${1:?scenario}"
seconds="${2:-5}"
out="${OUT:-/tmp/diquis-profile-$scenario}"
mkdir -p "$out"
# Like measure.sh: a session (autogroup) of its own at nice -15, so concurrent builds on the
# shared machine do not decide the profile.
nice_level="${NICE:-$([ "$(id -u)" -eq 0 ] && echo -15 || echo 0)}"
if [ -z "${PROFILE_OWN_SESSION:-}" ] && [ -w /proc/self/autogroup ] && command -v setsid >/dev/null; then
    export PROFILE_OWN_SESSION=1
    exec setsid --wait bash "$0" "$@"
fi
if [ -w /proc/self/autogroup ]; then echo "$nice_level" >/proc/self/autogroup 2>/dev/null || true; fi
nice -n "$nice_level" "$server" --urls http://127.0.0.1:0 >"$out/server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q 'Now listening' "$out/server.log" && break; sleep 0.1; done
url="$(grep -m1 -o 'http://[0-9.:]*' "$out/server.log")/testhub"
case "$scenario" in
    # As measure.sh's broadcast-burst, with twice the messages so the recording fits in the burst.
    broadcast) args=(broadcast -n 10000 --messages 600 --inflight 16 --size 100 --workers 1 --duration 60 --drain-timeout 60); delay=1.8 ;;
    broadcast-paced) args=(broadcast -n 10000 --rate 10 --duration 15); delay=4 ;;
    echo) args=(echo -n 1000 --duration 12); delay=3 ;;
    group) args=(group -n 10000 --group-size 10 --rate 2000 --duration 12); delay=5 ;;
    connect) args=(connect -n 15000 --skip-negotiation); delay=0.3 ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
nice -n "$nice_level" "$bench" "${args[@]}" --url "$url" --server-pid "$server_pid" --quiet --json "$out/run.json" >"$out/bench.txt" 2>&1 &
bench_pid=$!
sleep "$delay"
perf record -e cpu-clock -F 249 -a --call-graph dwarf,8192 -o "$out/perf.data" -- sleep "$seconds" >/dev/null 2>&1
wait "$bench_pid" || true
cat "$out/bench.txt"
# Self time per symbol, then the same with callers folded in (children), server pid only.
perf report -i "$out/perf.data" --pid "$server_pid" --no-children -g none --percentage relative \
    --sort dso,symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | cut -c1-160 | head -40 | tee "$out/top-self.txt"
perf report -i "$out/perf.data" --pid "$server_pid" --children -g none --percentage relative \
    --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | cut -c1-160 | head -60 >"$out/top-children.txt"
echo "profile in $out (perf report -i $out/perf.data --pid $server_pid)"
