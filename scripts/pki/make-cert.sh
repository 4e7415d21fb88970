#!/bin/sh
# Issue a certificate signed by the clinic CA.
#   scripts/pki/make-cert.sh CA_DIR OUT_DIR device  DEVICE_ID SITE     -> OUT_DIR/DEVICE_ID.{crt,key}
#   scripts/pki/make-cert.sh CA_DIR OUT_DIR clinic  CLINIC_ID          -> OUT_DIR/CLINIC_ID.{crt,key}
#   scripts/pki/make-cert.sh CA_DIR OUT_DIR server  HOST [HOST|IP ...] -> OUT_DIR/server.{crt,key}
# The common name of a device certificate IS the device id: the broker uses it as the MQTT user
# name and client id. Its organizational unit is the device's site; the device is recorded in
# CA_DIR/devices.txt, from which make-acl.sh writes the broker ACL that lets it use only
# scribe/SITE/DEVICE_ID/... topics.
set -eu
ca=${1:?usage: make-cert.sh CA_DIR OUT_DIR device|clinic|server NAME [SITE|HOST...]}
out=${2:?missing OUT_DIR}
kind=${3:?missing kind: device, clinic or server}
name=${4:?missing name}
shift 4
days=${CERT_DAYS:-825}
case "$name" in
    *[!A-Za-z0-9._-]*|"") echo "make-cert: name '$name' may use only letters, digits, '.', '_' and '-'" >&2; exit 2;;
esac
subject="/CN=$name"
if [ "$kind" = device ]; then
    site=${1:?make-cert: a device certificate needs its SITE ([device] site)}
    case "$site" in
        *[!A-Za-z0-9._-]*) echo "make-cert: site '$site' may use only letters, digits, '.', '_' and '-'" >&2; exit 2;;
    esac
    subject="/OU=$site/CN=$name"
fi
mkdir -p "$out"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case "$kind" in
    device|clinic)
        base="$out/$name"
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > "$tmp/ext";;
    server)
        base="$out/server"
        san="DNS:$name"
        for h in "$@"; do
            case "$h" in
                *[!0-9.]*) san="$san,DNS:$h";;
                *) san="$san,IP:$h";;
            esac
        done
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$san" > "$tmp/ext";;
    *) echo "make-cert: kind must be device, clinic or server" >&2; exit 2;;
esac
openssl ecparam -name prime256v1 -genkey -noout -out "$base.key"
openssl req -new -key "$base.key" -subj "$subject" -out "$tmp/req.csr"
openssl x509 -req -in "$tmp/req.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -days "$days" -sha256 -extfile "$tmp/ext" -out "$base.crt" 2>/dev/null
chmod 644 "$base.crt"
if [ "$kind" = device ]; then
    serial=$(openssl x509 -in "$base.crt" -noout -serial | cut -d= -f2)
    (umask 022; echo "$name $site $serial" >> "$ca/devices.txt")
fi
echo "$kind certificate written: $base.crt (key: $base.key)"
