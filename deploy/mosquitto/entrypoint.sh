#!/bin/sh
# Build the password file from the environment at start, so no password is in the repo.
# Devices' lines come from deploy/mosquitto/devices.passwd (`mebuku broker passwd`), their
# topics from deploy/mosquitto/acl (`mebuku broker acl`); see docs/security.md.
set -eu
cp /deploy/mosquitto.conf /deploy/acl /mosquitto/config/
# The TLS listener's certificate (deploy/certs/README.md); the key readable by mosquitto only.
for f in mqtt.crt mqtt.key; do
  [ -f "/certs/$f" ] || { echo "missing /certs/$f: see deploy/certs/README.md" >&2; exit 1; }
done
mkdir -p /mosquitto/config/certs
cp /certs/mqtt.crt /certs/mqtt.key /mosquitto/config/certs/
chown -R mosquitto:mosquitto /mosquitto/config/certs
chmod 0600 /mosquitto/config/certs/mqtt.key
# Bound every MQTT packet: the ingest payload limit plus 4096 bytes for topic and headers
# (core/embedded.py MQTT_PACKET_HEADROOM). Mosquitto disconnects a client that sends more.
echo "max_packet_size $((${MEBUKU_INGEST_MAX_PAYLOAD_BYTES:-262144} + 4096))" >> /mosquitto/config/mosquitto.conf
: > /mosquitto/config/passwd
mosquitto_passwd -b /mosquitto/config/passwd mebuku-ingest "$MQTT_INGEST_PASSWORD"
mosquitto_passwd -b /mosquitto/config/passwd mebuku-simulator "$MQTT_SIMULATOR_PASSWORD"
if [ -f /deploy/devices.passwd ]; then cat /deploy/devices.passwd >> /mosquitto/config/passwd; fi
chown mosquitto:mosquitto /mosquitto/config/passwd
chmod 0700 /mosquitto/config/passwd
exec mosquitto -c /mosquitto/config/mosquitto.conf
