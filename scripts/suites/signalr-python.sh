#!/usr/bin/env bash
# The official-client conformance suite (python) against signalr-testserver.
set -euo pipefail
exec bash "$(dirname "$0")/../../clients/run-python-tests.sh"
