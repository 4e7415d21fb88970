#!/bin/sh
# Sign a certificate request with the clinic CA: the key stays where the CSR was made.
#   scripts/pki/sign-csr.sh CA_DIR CSR OUT_CRT device  DEVICE_ID SITE
#   scripts/pki/sign-csr.sh CA_DIR CSR OUT_CRT clinic  CLINIC_ID
#   scripts/pki/sign-csr.sh CA_DIR CSR OUT_CRT server  HOST [HOST|IP ...]
# The request's subject must be exactly the one this kind and name give (device: /OU=SITE/CN=ID,
# otherwise /CN=NAME): a device cannot ask for another's name. make-cert.sh uses this after
# making a key; provisioning (ansible role pki) uses it with a CSR made on the device.
set -eu
ca=${1:?usage: sign-csr.sh CA_DIR CSR OUT_CRT device|clinic|server NAME [SITE|HOST...]}
csr=${2:?missing CSR}
crt=${3:?missing OUT_CRT}
kind=${4:?missing kind: device, clinic or server}
name=${5:?missing name}
shift 5
days=${CERT_DAYS:-825}
case "$name" in
    *[!A-Za-z0-9._-]*|"") echo "sign-csr: name '$name' may use only letters, digits, '.', '_' and '-'" >&2; exit 2;;
esac
expected="CN=$name"
if [ "$kind" = device ]; then
    site=${1:?sign-csr: a device certificate needs its SITE ([device] site)}
    case "$site" in
        *[!A-Za-z0-9._-]*) echo "sign-csr: site '$site' may use only letters, digits, '.', '_' and '-'" >&2; exit 2;;
    esac
    expected="OU=$site, CN=$name"
fi
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case "$kind" in
    device|clinic)
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > "$tmp/ext";;
    server)
        san="DNS:$name"
        for h in "$@"; do
            case "$h" in
                *[!0-9.]*) san="$san,DNS:$h";;
                *) san="$san,IP:$h";;
            esac
        done
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$san" > "$tmp/ext";;
    *) echo "sign-csr: kind must be device, clinic or server" >&2; exit 2;;
esac
openssl req -in "$csr" -noout -verify 2>/dev/null || { echo "sign-csr: $csr is not a valid, self-signed request" >&2; exit 2; }
subject=$(openssl req -in "$csr" -noout -subject -nameopt compat,sep_comma_plus_space | sed 's/^subject=//; s/^ *//')
if [ "$subject" != "$expected" ]; then
    echo "sign-csr: $csr asks for '$subject'; a $kind certificate for $name must be '$expected'" >&2
    exit 2
fi
openssl x509 -req -in "$csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -days "$days" -sha256 -extfile "$tmp/ext" -out "$crt" 2>/dev/null
chmod 644 "$crt"
if [ "$kind" = device ]; then
    serial=$(openssl x509 -in "$crt" -noout -serial | cut -d= -f2)
    (umask 022; echo "$name $site $serial" >> "$ca/devices.txt")
fi
echo "$kind certificate written: $crt"
