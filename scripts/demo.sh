#!/usr/bin/env bash
# Run the platform with simulated Maebashi traffic until Ctrl-C. Sets up .venv first;
# without MEBUKU_DATABASE_URL / MEBUKU_MQTT_URL it starts a private PostgreSQL and
# Mosquitto under .mebuku/. Extra arguments go to `mebuku demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/mebuku demo "$@"
