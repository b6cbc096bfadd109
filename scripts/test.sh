#!/usr/bin/env bash
# Run the whole test suite, setting up what is missing first.
#
#   scripts/test.sh [PYTEST ARGS...]     e.g. scripts/test.sh tests/unit -q
#
# The integration tests start their own sandbox in a temporary directory (beside any
# sandbox of yours) and stop it at the end. With CI=true a missing service fails them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-run
exec .venv/bin/python -m pytest "$@"
