#!/bin/sh
# Issue a certificate signed by the clinic CA, making its key here (sign-csr.sh signs).
#   scripts/pki/make-cert.sh CA_DIR OUT_DIR device  DEVICE_ID SITE     -> OUT_DIR/DEVICE_ID.{crt,key}
#   scripts/pki/make-cert.sh CA_DIR OUT_DIR clinic  CLINIC_ID          -> OUT_DIR/CLINIC_ID.{crt,key}
#   scripts/pki/make-cert.sh CA_DIR OUT_DIR server  HOST [HOST|IP ...] -> OUT_DIR/server.{crt,key}
# The common name of a device certificate IS the device id: the broker uses it as the MQTT user
# name and client id. Its organizational unit is the device's site; the device is recorded in
# CA_DIR/devices.txt, from which make-acl.sh writes the broker ACL that lets it use only
# scribe/SITE/DEVICE_ID/... topics. Provisioning makes device keys on the device instead
# (the key never leaves it) and signs their requests with sign-csr.sh.
set -eu
ca=${1:?usage: make-cert.sh CA_DIR OUT_DIR device|clinic|server NAME [SITE|HOST...]}
out=${2:?missing OUT_DIR}
kind=${3:?missing kind: device, clinic or server}
name=${4:?missing name}
shift 4
case "$name" in
    *[!A-Za-z0-9._-]*|"") echo "make-cert: name '$name' may use only letters, digits, '.', '_' and '-'" >&2; exit 2;;
esac
case "$kind" in
    device) subject="/OU=${1:?make-cert: a device certificate needs its SITE ([device] site)}/CN=$name"
            base="$out/$name";;
    clinic) subject="/CN=$name"; base="$out/$name";;
    server) subject="/CN=$name"; base="$out/server";;
    *) echo "make-cert: kind must be device, clinic or server" >&2; exit 2;;
esac
mkdir -p "$out"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$base.key"
openssl req -new -key "$base.key" -subj "$subject" -out "$tmp/req.csr" 2>/dev/null \
    || { echo "make-cert: bad subject '$subject'" >&2; exit 2; }
"$(dirname "$0")/sign-csr.sh" "$ca" "$tmp/req.csr" "$base.crt" "$kind" "$name" "$@" >/dev/null
echo "$kind certificate written: $base.crt (key: $base.key)"
