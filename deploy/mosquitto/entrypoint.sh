#!/bin/sh
# Start Mosquitto for the console: build the password file (the console's account from the
# environment plus the device accounts made with deploy/mqtt_accounts.py) and turn on the TLS
# listener when a certificate is mounted. MOSQUITTO_ROOT lets the tests run it outside Docker.
set -eu

root="${MOSQUITTO_ROOT:-/mosquitto}"
console_user="${ACUVIM_MQTT_CONSOLE_USER:-acuvim-console}"
: "${ACUVIM_MQTT_CONSOLE_PASSWORD:?ACUVIM_MQTT_CONSOLE_PASSWORD is not set (see .env.example)}"

passwd="$root/data/passwd"
devices="$root/config/devices.passwd"
mkdir -p "$root/data/conf.d"

# The device accounts are already hashed; the console's password is hashed here, every start,
# so that changing it in .env and restarting is all it takes.
umask 077
if [ -f "$devices" ]; then
    grep -v "^$console_user:" "$devices" > "$passwd.new" || true
else
    : > "$passwd.new"
fi
mosquitto_passwd -b "$passwd.new" "$console_user" "$ACUVIM_MQTT_CONSOLE_PASSWORD"
mv "$passwd.new" "$passwd"

rm -f "$root/data/conf.d/"*.conf
if [ -s "$root/certs/server.crt" ] && [ -s "$root/certs/server.key" ]; then
    cp "$root/config/tls.conf.in" "$root/data/conf.d/tls.conf"
else
    echo "mqtt: no server.crt/server.key in $root/certs: the TLS listener (8883) is off" >&2
fi

# Mosquitto drops root for its own user before it reads the password file.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    chown -R mosquitto:mosquitto "$root/data"
fi
exec mosquitto -c "${MOSQUITTO_CONFIG:-$root/config/mosquitto.conf}"
