#!/usr/bin/env bash
# Run the whole test suite. Sets up .venv first; tests start their own PostgreSQL and
# Mosquitto on free ports, so nothing needs to be running. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m pytest -n "${MEBUKU_TEST_WORKERS:-2}" --dist loadfile "$@"
