#!/usr/bin/env bash
# The official-client conformance suite (node) against signalr-testserver.
set -euo pipefail
exec bash "$(dirname "$0")/../../clients/run-node-tests.sh"
