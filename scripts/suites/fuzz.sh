#!/usr/bin/env bash
# Short coverage-guided fuzz pass (cargo-fuzz, libFuzzer) over every target in fuzz/: builds
# them all with the nightly toolchain, then runs each for FUZZ_SECONDS (default 20) over its
# committed seeds, FUZZ_JOBS (default 2) at a time, with libFuzzer's default memory (2 GiB) and
# time (1200 s) limits. Fails on any
# crash, timeout or out-of-memory; the input that failed is copied to fuzz/artifacts/<target>/.
# docs/fuzzing.md has the targets and the long runs.
#
# Installs what it needs: cargo-fuzz from crates.io when `cargo fuzz` is missing. The nightly
# toolchain is installed through rustup when missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root/fuzz"

seconds="${FUZZ_SECONDS:-20}"
# Its own target directory: fuzz builds use other flags than the workspace's and would otherwise
# rebuild each other's artifacts.
target_dir="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
unset CARGO_TARGET_DIR

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: installing the nightly toolchain (libFuzzer's instrumentation needs it)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# No sanitizer: the code under test is safe Rust, so AddressSanitizer adds cost, not findings;
# debug assertions on, so an integer overflow is a crash.
flags=(-s none -a --target-dir "$target_dir")
started=$SECONDS
cargo +nightly fuzz build "${flags[@]}"
echo "fuzz: built every target in $((SECONDS - started)) s"

dict_of() {
    case "$1" in
        handshake | hub_json | hub_roundtrip | appsettings) echo "dicts/json.dict" ;;
        hub_msgpack | backplane | backplane_roundtrip) echo "dicts/msgpack.dict" ;;
        http_head | query_cookie | request_values | jwt_session) echo "dicts/http.dict" ;;
        connection_strings | cron) echo "dicts/config.dict" ;;
        *) echo "" ;;
    esac
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Runs one target; leaves "ok <summary>" or "FAILED" in $work/<target>.result.
run_target() {
    local target="$1"
    mkdir -p "$work/corpus/$target" "artifacts/$target"
    local args=(-max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="artifacts/$target/")
    local dict
    dict="$(dict_of "$target")"
    [ -n "$dict" ] && args+=(-dict="$dict")
    local log="$work/$target.log"
    if cargo +nightly fuzz run "${flags[@]}" "$target" "$work/corpus/$target" "seeds/$target" -- "${args[@]}" >"$log" 2>&1; then
        local runs cov
        runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
        cov="$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)"
        printf 'ok %-22s %10s runs  %s\n' "$target" "$runs" "$cov" >"$work/$target.result"
    else
        echo "FAILED" >"$work/$target.result"
    fi
}

# FUZZ_JOBS targets at a time (default 2, one per core of the project's machines).
jobs_max="${FUZZ_JOBS:-2}"
targets=($(cargo +nightly fuzz list))
echo "fuzz: running ${#targets[@]} targets, ${seconds} s each, ${jobs_max} at a time"
for target in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
        wait -n || true
    done
    echo "--- fuzz: $target"
    run_target "$target" &
done
wait

failed=()
echo "fuzz: summary (${seconds} s per target)"
for target in "${targets[@]}"; do
    result="$(cat "$work/$target.result" 2>/dev/null || echo FAILED)"
    if [ "${result%% *}" = ok ]; then
        echo "  ${result#ok }"
    else
        echo "fuzz: $target FAILED; its log:" >&2
        tail -60 "$work/$target.log" >&2 || true
        failed+=("$target")
    fi
done
echo "fuzz: done in $((SECONDS - started)) s (build included)"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed targets: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    echo "fuzz: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
    exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"
