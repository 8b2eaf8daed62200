#!/usr/bin/env bash
# Runs the official @microsoft/signalr Node client suite (clients/node) against signalr-testserver.
# The server binary comes from $SIGNALR_TESTSERVER (default: <repo>/target/release/signalr-testserver).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/.." && pwd)"
export SIGNALR_TESTSERVER="${SIGNALR_TESTSERVER:-$REPO_ROOT/target/release/signalr-testserver}"
if [[ ! -x "$SIGNALR_TESTSERVER" ]]; then
    echo "error: signalr-testserver not found at $SIGNALR_TESTSERVER" >&2
    echo "       build it with: cargo build --release -p signalr-testserver (or set SIGNALR_TESTSERVER)" >&2
    exit 1
fi
cd "$HERE/node"
npm ci --no-audit --no-fund --loglevel=error
# TAP output ends with the "# pass N" / "# fail N" summary; exit status is non-zero on any failure.
exec node --test --test-reporter=tap --test-concurrency="${NODE_TEST_CONCURRENCY:-1}" test/*.test.js
