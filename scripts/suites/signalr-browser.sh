#!/usr/bin/env bash
# The official-client conformance suite (browser) against signalr-testserver.
set -euo pipefail
exec bash "$(dirname "$0")/../../clients/run-browser-tests.sh"
