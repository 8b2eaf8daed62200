#!/usr/bin/env bash
# Runs the pysignalr and signalrcore suites (clients/python) against signalr-testserver.
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
cd "$HERE/python"
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
# pytest prints its summary line and exits non-zero on any failure (5 when nothing ran).
exec .venv/bin/python -m pytest
