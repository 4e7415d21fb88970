#!/bin/sh
# Revoke certificates and (re)write the CRL the broker checks every client against.
#   scripts/pki/revoke.sh CA_DIR [CERT_FILE ...]
# With certificate files: marks each revoked in CA_DIR/index.txt. Always: writes CA_DIR/ca.crl
# (valid CRL_DAYS, default 45), which goes to the broker (crlfile) and takes effect when mosquitto
# restarts. Run it with no certificate monthly as well: an expired CRL makes the broker refuse
# every client. make-ca.sh runs it once to write the first, empty CRL.
set -eu
ca=${1:?usage: revoke.sh CA_DIR [CERT_FILE ...]}
shift
days=${CRL_DAYS:-45}
for f in "$ca/ca.crt" "$ca/ca.key"; do
    [ -r "$f" ] || { echo "revoke: cannot read $f" >&2; exit 1; }
done
umask 077
touch "$ca/index.txt"
[ -e "$ca/crlnumber" ] || echo 1000 > "$ca/crlnumber"
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
# The minimal `openssl ca` setup: only its database (index.txt) and CRL counter are used.
cat > "$conf" <<CONF
[ca]
default_ca = clinic
[clinic]
database = $ca/index.txt
crlnumber = $ca/crlnumber
certificate = $ca/ca.crt
private_key = $ca/ca.key
default_md = sha256
default_crl_days = $days
CONF
for cert in "$@"; do
    [ -r "$cert" ] || { echo "revoke: cannot read certificate $cert" >&2; exit 1; }
    subject=$(openssl x509 -in "$cert" -noout -subject -nameopt RFC2253 | sed "s/^subject=//")
    openssl verify -CAfile "$ca/ca.crt" "$cert" >/dev/null 2>&1 \
        || { echo "revoke: $cert was not issued by the CA in $ca" >&2; exit 1; }
    serial=$(openssl x509 -in "$cert" -noout -serial | cut -d= -f2)
    if grep -q "^R.*	$serial	" "$ca/index.txt"; then
        echo "already revoked: $subject"
        continue
    fi
    openssl ca -config "$conf" -revoke "$cert" -batch 2>/dev/null \
        || { echo "revoke: could not revoke $cert ($subject)" >&2; exit 1; }
    echo "revoked: $subject (serial $serial)"
done
openssl ca -config "$conf" -gencrl -out "$ca/ca.crl" -batch 2>/dev/null
chmod 644 "$ca/ca.crl"
echo "CRL written: $ca/ca.crl ($(grep -c '^R' "$ca/index.txt" || true) revoked; valid $days days)"
