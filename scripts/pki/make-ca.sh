#!/bin/sh
# Create the clinic CA that signs the broker's and every device's certificate.
#   scripts/pki/make-ca.sh DIR [NAME]
# Writes DIR/ca.key (0600, keep it offline), DIR/ca.crt (give it to broker, clinic and devices) and
# DIR/ca.crl, the first (empty) certificate revocation list for the broker (see revoke.sh).
# Needs only openssl (Debian: apt-get install openssl).
set -eu
dir=${1:?usage: make-ca.sh DIR [NAME]}
name=${2:-Exam Scribe Clinic CA}
days=${CA_DAYS:-3650}
mkdir -p "$dir"
if [ -e "$dir/ca.key" ]; then
    echo "make-ca: $dir/ca.key exists; refusing to overwrite the CA" >&2
    exit 1
fi
umask 077
openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key"
openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$days" -subj "/CN=$name" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.crt"
chmod 644 "$dir/ca.crt"
echo "CA written: $dir/ca.crt (key: $dir/ca.key)"
"$(dirname "$0")/revoke.sh" "$dir"
