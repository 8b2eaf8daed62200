#!/usr/bin/env bash
# End-to-end suites of the Diquis application (clients/diquis-e2e), issue 6 "Tests":
#   across processes (2 × `diquis web` + `diquis jobs` on PostgreSQL and Redis), isolation,
#   no loss (Redis killed and restarted, jobs process killed mid-provisioning), and the browser
#   (Debian's chromium through playwright-core).
#
# Builds nothing: runs the binary at $DIQUIS_BIN (default <repo>/target/release/diquis).
# Needs the machine's PostgreSQL on 127.0.0.1:5432 (user postgres, trust); each suite creates
# its own database with a random name and drops it. Starts its own redis-server on free ports
# (never the shared 6379). Installs what it needs: npm packages from the lockfile, and the
# Debian packages redis-server, postgresql-client and chromium only when they are missing.
# Exits non-zero when a test fails.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
suite_dir="$root/clients/diquis-e2e"

export DIQUIS_BIN="${DIQUIS_BIN:-$root/target/release/diquis}"
if [[ ! -x "$DIQUIS_BIN" ]]; then
    echo "diquis-e2e: diquis binary not found at $DIQUIS_BIN" >&2
    echo "            build it with: cargo build --release -p diquis (or set DIQUIS_BIN)" >&2
    exit 1
fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "diquis-e2e: installing Debian packages: ${missing[*]}"
    sudo=""
    [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -X -Atc 'SELECT 1' >/dev/null 2>&1; then
    echo "diquis-e2e: PostgreSQL does not answer on 127.0.0.1:5432 as user postgres (trust auth expected)" >&2
    exit 1
fi

# playwright-core never downloads a browser; the suites launch /usr/bin/chromium.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
cd "$suite_dir"
npm ci --no-audit --no-fund --loglevel=error
# One suite at a time: each runs its own PostgreSQL database, redis-server and three diquis
# processes, and the machine has two cores.
exec node --test --test-reporter=tap --test-concurrency=1 test/*.test.js
