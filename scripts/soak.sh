#!/usr/bin/env bash
# Soak run of the chaos deployment (not part of the test command): tenant churn with a random
# fault from the chaos suite's list every minute, RSS and open descriptors of every process each
# minute, lost/repeated event counts at the end. Same processes and needs as
# scripts/suites/chaos.sh (which installs them).
#   SOAK_MINUTES=30 SOAK_FAULT_EVERY_S=60 SOAK_ISOLATED_EVERY=10 DIQUIS_BIN=target/release/diquis scripts/soak.sh
# Disk: each isolated tenant is a PostgreSQL database of ~8 MB in a temp dir (removed at the end).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DIQUIS_BIN="${DIQUIS_BIN:-$root/target/release/diquis}"
if [[ ! -x "$DIQUIS_BIN" ]]; then
    echo "soak: diquis binary not found at $DIQUIS_BIN (cargo build --release -p diquis, or set DIQUIS_BIN)" >&2
    exit 1
fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
[[ -d "$root/clients/diquis-e2e/node_modules/@microsoft/signalr" ]] || (cd "$root/clients/diquis-e2e" && npm ci --no-audit --no-fund --loglevel=error)
cd "$root/clients/diquis-chaos"
exec node soak.js
