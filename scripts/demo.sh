#!/usr/bin/env bash
# Run the platform with simulated Maebashi traffic until Ctrl-C (or SIGTERM/SIGHUP). Sets up
# .venv first; without MEBUKU_DATABASE_URL / MEBUKU_MQTT_URL it starts a private PostgreSQL
# and Mosquitto under .mebuku/. Extra arguments go to `mebuku demo` (e.g. --api-port 8080;
# see `mebuku demo --help`). exec: signals reach the demo, which stops everything in order.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/mebuku demo "$@"
