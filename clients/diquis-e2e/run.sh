#!/usr/bin/env bash
# Runs the Diquis end-to-end suite: installs the npm packages from the lockfile, then runs every
# test with Node's test runner. Needs: the release binary (DIQUIS_BIN, default
# $CARGO_TARGET_DIR/release/diquis), PostgreSQL at 127.0.0.1:5432 (user postgres, trust),
# redis-server and redis-cli, psql, and Debian's chromium at /usr/bin/chromium (or CHROMIUM=…).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
exec node --test --test-concurrency=1 test/
