#!/usr/bin/env bash
# Sign-in flood (issue 14, point 1): ROUNDS rounds of PARALLEL simultaneous wrong-password
# `POST /api/tokens` against one diquis process (SQLite, defaults otherwise), while
# `/health/live` is polled every 100 ms. Prints the answers by status, the process's peak RSS
# (VmHWM), its RSS 2 s and 22 s (SETTLE_SECONDS + 2) after the flood, and the liveness answers.
# Exits non-zero when peak RSS exceeds MAX_PEAK_MB (default 150) or a liveness probe fails.
#
#   DIQUIS_BIN=target/release/diquis scripts/bench-signin-flood.sh [ROUNDS=10] [PARALLEL=64]
#
# The rate limits and the lockout are lifted so that every request reaches the password check
# (one client address would otherwise be answered 429 after 30 attempts); set KEEP_LIMITS=1 to
# run with the defaults.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${DIQUIS_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/diquis}"
rounds="${1:-10}"
parallel="${2:-64}"
max_peak_mb="${MAX_PEAK_MB:-150}"
[ -x "$bin" ] || { echo "bench-signin-flood: missing binary $bin (cargo build --release -p diquis)" >&2; exit 1; }

work="$(mktemp -d)"
pid=""
poller=""
cleanup() {
    [ -n "$poller" ] && kill "$poller" 2>/dev/null || true
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

limits=()
if [ "${KEEP_LIMITS:-0}" != 1 ]; then
    limits=(Security__RateLimit__PerAddress__PermitLimit=1000000 Security__RateLimit__PerAccount__PermitLimit=1000000
        Security__Lockout__MaxFailedAccessAttempts=0)
fi
(cd "$work" && exec env Urls=http://127.0.0.1:0 Seed__AdminPassword=Adm1nPassw0rd \
    Jwt__Key=a-benchmark-signing-key-that-is-long-enough-0123 "${limits[@]}" \
    "$bin" >"$work/stdout" 2>"$work/stderr") &
pid=$!
url=""
for _ in $(seq 1 600); do
    url="$(sed -n 's/^Now listening on: //p' "$work/stdout" | head -n1)"
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/stderr" >&2; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "bench-signin-flood: diquis did not start" >&2; exit 1; }

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$pid/status"; }
echo "diquis $url (pid $pid, $(nproc) cores); RSS at start: $(( $(kib VmRSS) / 1024 )) MB"

# Liveness: one probe every 100 ms, each allowed 2 s.
(while :; do
    curl -s -o /dev/null --max-time 2 -w '%{http_code} %{time_total}\n' "$url/health/live" || echo "000 2"
    sleep 0.1
done) >"$work/live" &
poller=$!

: >"$work/codes"
started=$(date +%s.%N)
for round in $(seq 1 "$rounds"); do
    seq 1 "$parallel" | xargs -P "$parallel" -I{} curl -s -o /dev/null --max-time 60 -w '%{http_code}\n' \
        -H 'content-type: application/json' \
        -d "{\"email\":\"nobody{}-$round@example.test\",\"password\":\"Wrong-passw0rd\"}" \
        "$url/api/tokens" >>"$work/codes"
done
elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
sleep 2
kill "$poller" 2>/dev/null || true
wait "$poller" 2>/dev/null || true
poller=""

peak_mb=$(( $(kib VmHWM) / 1024 ))
after_mb=$(( $(kib VmRSS) / 1024 ))
# Idle hashing threads free their work areas after 5 s, one after another.
sleep "${SETTLE_SECONDS:-20}"
settled_mb=$(( $(kib VmRSS) / 1024 ))
echo "$rounds rounds x $parallel parallel wrong-password sign-ins in ${elapsed}s"
echo "answers: $(sort "$work/codes" | uniq -c | awk '{ printf "%s×%s ", $2, $1 }')"
echo "peak RSS (VmHWM): ${peak_mb} MB; RSS 2 s after the flood: ${after_mb} MB; $(( ${SETTLE_SECONDS:-20} + 2 )) s after: ${settled_mb} MB"
probes=$(wc -l <"$work/live")
failed=$(awk '$1 != "200"' "$work/live" | wc -l)
slowest=$(awk '{ print $2 }' "$work/live" | sort -n | tail -n1)
echo "/health/live: $probes probes, $failed failed, slowest ${slowest}s"
status=0
if [ "$peak_mb" -gt "$max_peak_mb" ]; then
    echo "bench-signin-flood: peak RSS ${peak_mb} MB is above ${max_peak_mb} MB" >&2
    status=1
fi
if [ "$failed" -gt 0 ] || [ "$probes" -eq 0 ]; then
    echo "bench-signin-flood: /health/live did not answer every probe" >&2
    status=1
fi
exit $status
