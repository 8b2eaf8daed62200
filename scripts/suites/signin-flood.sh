#!/usr/bin/env bash
# Issue 14, point 1, against the real binary: ten rounds of 64 parallel wrong-password sign-ins
# must keep the process's peak RSS at or under 150 MB, and every /health/live probe during the
# flood must be answered. No timing assertions (the timings it prints are for docs/benchmarks.md).
#
# Builds nothing: runs $DIQUIS_BIN (default: the release binary under $CARGO_TARGET_DIR or target/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export DIQUIS_BIN="${DIQUIS_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/diquis}"
source "$root/scripts/lib/install.sh"
ensure_debian_packages curl
SETTLE_SECONDS="${SETTLE_SECONDS:-0}" exec bash "$root/scripts/bench-signin-flood.sh" 10 64
