#!/usr/bin/env bash
# Chaos suite of the Diquis application (clients/diquis-chaos), issue 16: Redis frozen
# (SIGSTOP), killed and restarted, cut off by a proxy that stops forwarding; the jobs process
# and a web node killed -9; the database stopped; all while tenants are created and updated.
# After each fault: every accepted tenant ends once with one admin, every root client (the
# official @microsoft/signalr client, reconnecting and catching up like the page) shows every
# event exactly once, another tenant's user none, and no process needed a restart.
#
# Builds nothing: runs the binary at $DIQUIS_BIN (default <repo>/target/release/diquis).
# Runs everything of its own on free ports: a PostgreSQL instance (Debian's initdb/pg_ctl under
# the postgres user, in a temp dir), a redis-server, 2 x `diquis web`, `diquis jobs`. Never
# touches the machine's shared PostgreSQL or Redis. Installs what it needs: npm packages from
# clients/diquis-e2e's lockfile (whose helpers and client it reuses), and the Debian packages
# redis-server, postgresql and postgresql-client only when missing. Takes about 4 minutes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

export DIQUIS_BIN="${DIQUIS_BIN:-$root/target/release/diquis}"
if [[ ! -x "$DIQUIS_BIN" ]]; then
    echo "chaos: diquis binary not found at $DIQUIS_BIN" >&2
    echo "       build it with: cargo build --release -p diquis (or set DIQUIS_BIN)" >&2
    exit 1
fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "chaos: installing Debian packages: ${missing[*]}"
    sudo=""
    [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
(cd "$root/clients/diquis-e2e" && npm ci --no-audit --no-fund --loglevel=error)
cd "$root/clients/diquis-chaos"
exec node --test --test-reporter=tap --test-concurrency=1 test/*.test.js
