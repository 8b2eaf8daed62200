#!/usr/bin/env bash
# Runs the headless-Chromium suite (clients/browser: playwright-core + Debian's chromium) against
# signalr-testserver. The server binary comes from $SIGNALR_TESTSERVER
# (default: <repo>/target/release/signalr-testserver). Installs chromium with apt if it is missing.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/.." && pwd)"
export SIGNALR_TESTSERVER="${SIGNALR_TESTSERVER:-$REPO_ROOT/target/release/signalr-testserver}"
if [[ ! -x "$SIGNALR_TESTSERVER" ]]; then
    echo "error: signalr-testserver not found at $SIGNALR_TESTSERVER" >&2
    echo "       build it with: cargo build --release -p signalr-testserver (or set SIGNALR_TESTSERVER)" >&2
    exit 1
fi
if [[ ! -x /usr/bin/chromium ]]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
# Playwright must never fetch a browser of its own; playwright-core has no download step anyway.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# The browser suite reuses the Node suite's server harness (clients/node/lib, no dependencies).
cd "$HERE/browser"
npm ci --no-audit --no-fund --loglevel=error
exec node --test --test-reporter=tap --test-concurrency=1 test/*.test.js
