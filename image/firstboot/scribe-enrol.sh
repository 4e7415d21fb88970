#!/bin/sh
# First-boot enrolment of a room device made from the image (scribe-enrol.service).
#
# The device id comes from /boot/firmware/scribe-device-id (one line, written by clinic IT
# with the SD card in a reader, e.g. "room-12"), else "room-" and the board's serial number.
# This script sets the host name and the config's [device] id, makes the device's private key
# and certificate request in /etc/appliance/pki (the key never leaves the device), and stops.
# Clinic IT then signs the request over SSH with the same role as any room:
#     ansible-playbook rooms.yml --limit room-12 --tags appliance_pki,appliance_config
# which also turns sync on. Until then the device records and keeps transcripts locally;
# `appliance ctl status` shows sync as not configured.
set -eu
pki=/etc/appliance/pki
config=/etc/appliance/appliance.toml
idfile=/boot/firmware/scribe-device-id

id=""
[ -r "$idfile" ] && id=$(tr -d ' \r\n' < "$idfile")
if [ -z "$id" ]; then
    serial=$(tr -d '\0' < /proc/device-tree/serial-number 2>/dev/null || cat /etc/machine-id)
    id="room-$(printf '%s' "$serial" | tail -c 8)"
fi
case "$id" in
    *[!A-Za-z0-9._-]*) echo "scribe-enrol: device id '$id' may use only letters, digits, '.', '_' and '-'" >&2; exit 2;;
esac

# The id, in the config the role rendered (checked before it replaces the old one).
tmp=$(mktemp)
sed "s/^id = .*/id = \"$id\"/" "$config" > "$tmp"
/opt/appliance/.venv/bin/appliance config check "$tmp"
install -m 0640 -o root -g appliance "$tmp" "$config"
rm -f "$tmp"
echo "$id" > /etc/hostname
hostname "$id" 2>/dev/null || true

install -d -m 0750 -o root -g appliance "$pki"
if [ ! -s "$pki/device.key" ]; then
    (umask 077; openssl ecparam -name prime256v1 -genkey -noout -out "$pki/device.key")
    chown appliance:appliance "$pki/device.key"
fi
echo "scribe-enrol: device $id has its key; sign it with: ansible-playbook rooms.yml --limit $id --tags appliance_pki,appliance_config"
