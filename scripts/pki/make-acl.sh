#!/bin/sh
# Write the broker ACL: the shipped rules (image/mosquitto/scribe.acl: clinic server and tools)
# plus one block per device issued by make-cert.sh (CA_DIR/devices.txt) and not revoked, which
# lets that certificate's name use only its own topics under the site it was issued for.
#   scripts/pki/make-acl.sh CA_DIR > /etc/mosquitto/scribe.acl    (then: systemctl reload mosquitto)
set -eu
ca=${1:?usage: make-acl.sh CA_DIR > scribe.acl}
rules=${SCRIBE_ACL:-$(dirname "$0")/../../image/mosquitto/scribe.acl}
prefix=${TOPIC_PREFIX:-scribe}
cat "$rules"
[ -e "$ca/devices.txt" ] || exit 0
touch "$ca/index.txt"
# The newest certificate of a name decides its site (a re-issue may move a device).
tac "$ca/devices.txt" | awk '!seen[$1]++' | sort | while read -r name site serial; do
    if grep -q "^R.*	$serial	" "$ca/index.txt"; then
        continue
    fi
    printf '\n# device %s at site %s (certificate serial %s)\nuser %s\n' "$name" "$site" "$serial" "$name"
    printf 'topic write %s/%s/%s/%s\n' "$prefix" "$site" "$name" transcript "$prefix" "$site" "$name" status
    printf 'topic read %s/%s/%s/%s\n' "$prefix" "$site" "$name" ack "$prefix" "$site" "$name" note \
        "$prefix" "$site" "$name" command
    printf 'topic read %s/templates\n' "$prefix"  # the clinic's note templates, retained, same for all
done
