#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what the tests need (Debian
# packages, npm packages from lockfiles, PyPI packages into a venv), builds the binaries once
# in release mode, then runs the Rust tests and the real-client suites against them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

source scripts/lib/install.sh
ensure_debian_packages redis-server redis-tools openssl chromium

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
step() { printf '\n=== %s ===\n' "$*"; }

step "format, lint, documentation and dependency gates (rustfmt.toml; clippy and rustdoc with warnings as errors; no unused dependency)"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
# Broken or private intra-doc links are doc comments that drifted from the code.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
ensure_cargo_tool cargo-machete 0.9.2
cargo machete

step "build release binaries and examples"
cargo build --release --workspace --bins --examples

step "Rust tests (release profile, sharing the binaries' build)"
cargo test --release --workspace --no-fail-fast

export SIGNALR_TESTSERVER="$CARGO_TARGET_DIR/release/signalr-testserver"
export DIQUIS_BIN="$CARGO_TARGET_DIR/release/diquis"
export DIQUIS_BENCH="$CARGO_TARGET_DIR/release/diquis-bench"

for suite in scripts/suites/*.sh; do
    step "suite $(basename "$suite" .sh)"
    bash "$suite"
done
step "all tests passed"
