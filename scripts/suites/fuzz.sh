#!/usr/bin/env bash
# Short coverage-guided fuzz pass (cargo-fuzz, libFuzzer) over every target in fuzz/: builds
# them all with the nightly toolchain, then runs each for FUZZ_SECONDS (default 20) over its
# committed seeds, with libFuzzer's default memory (2 GiB) and time (1200 s) limits. Fails on any
# crash, timeout or out-of-memory; the input that failed is copied to fuzz/artifacts/<target>/.
# docs/fuzzing.md has the targets and the long runs.
#
# Installs what it needs: cargo-fuzz from crates.io when `cargo fuzz` is missing. The nightly
# toolchain must be present (rustup); it is on the project's machines.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root/fuzz"

seconds="${FUZZ_SECONDS:-20}"
# Its own target directory: fuzz builds use other flags than the workspace's and would otherwise
# rebuild each other's artifacts.
target_dir="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
unset CARGO_TARGET_DIR

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
    exit 1
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
summary=()
failed=()
for target in $(cargo +nightly fuzz list); do
    mkdir -p "$work/corpus/$target" "artifacts/$target"
    args=(-max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="artifacts/$target/")
    dict="$(dict_of "$target")"
    [ -n "$dict" ] && args+=(-dict="$dict")
    log="$work/$target.log"
    echo "--- fuzz: $target (${seconds} s)"
    if cargo +nightly fuzz run "${flags[@]}" "$target" "$work/corpus/$target" "seeds/$target" -- "${args[@]}" >"$log" 2>&1; then
        runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
        cov="$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)"
        summary+=("$(printf '%-22s %10s runs  %s' "$target" "$runs" "$cov")")
    else
        echo "fuzz: $target FAILED; its log:" >&2
        tail -60 "$log" >&2
        failed+=("$target")
    fi
done
echo "fuzz: summary (${seconds} s per target)"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed targets: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#summary[@]} passed, 0 failed"
