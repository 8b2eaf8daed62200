#!/usr/bin/env bash
# Runs the official @microsoft/signalr Node client suite (clients/node) against signalr-testserver.
# The server binary comes from $SIGNALR_TESTSERVER (default: <repo>/target/release/signalr-testserver).
# The backplane suite (test/backplane.test.js) also needs redis-server and redis-cli (installed
# here when missing) and the publisher-only example from $SIGNALR_REDIS_PUBLISH (default: next to
# the server binary, examples/publish; build: cargo build --release -p signalr-redis --example publish).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/.." && pwd)"
export SIGNALR_TESTSERVER="${SIGNALR_TESTSERVER:-$REPO_ROOT/target/release/signalr-testserver}"
if [[ ! -x "$SIGNALR_TESTSERVER" ]]; then
    echo "error: signalr-testserver not found at $SIGNALR_TESTSERVER" >&2
    echo "       build it with: cargo build --release -p signalr-testserver (or set SIGNALR_TESTSERVER)" >&2
    exit 1
fi
source "$REPO_ROOT/scripts/lib/install.sh"
ensure_debian_packages redis-server redis-tools
export SIGNALR_REDIS_PUBLISH="${SIGNALR_REDIS_PUBLISH:-$(dirname "$SIGNALR_TESTSERVER")/examples/publish}"
if [[ ! -x "$SIGNALR_REDIS_PUBLISH" ]]; then
    echo "error: the publish example not found at $SIGNALR_REDIS_PUBLISH" >&2
    echo "       build it with: cargo build --release -p signalr-redis --example publish (or set SIGNALR_REDIS_PUBLISH)" >&2
    exit 1
fi
cd "$HERE/node"
npm ci --no-audit --no-fund --loglevel=error
# TAP output ends with the "# pass N" / "# fail N" summary; exit status is non-zero on any failure.
exec node --test --test-reporter=tap --test-concurrency="${NODE_TEST_CONCURRENCY:-1}" test/*.test.js
