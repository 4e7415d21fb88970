#!/bin/sh
# A fresh Debian bookworm root file system for the provisioning tests, from a cache.
#   scripts/provision/rootfs.sh DEST     -> DEST holds a new, unpacked copy
# The first run builds it with debootstrap (~5-7 min) and keeps a tarball in
# $PROVISION_CACHE (default /var/cache/exam-scribe, outside the clone, so CI re-runs and
# later clones reuse it); later runs only unpack it (~20 s).
set -eu
dest=${1:?usage: rootfs.sh DEST}
cache=${PROVISION_CACHE:-/var/cache/exam-scribe}
tarball="$cache/bookworm-rootfs.tar"
# The mirror apt already uses on this machine (no other host is reachable from a lab).
mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p; s/^deb \(http[^ ]*\) bookworm .*/\1/p' \
    /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null | grep -v security | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
# What every target has: Python (for Ansible) and systemd. Everything else is the roles' job.
include=python3,python3-apt,ca-certificates,systemd,systemd-sysv

mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
    build="$cache/build.$$"
    trap 'rm -rf "$build"' EXIT
    echo "rootfs: building bookworm with debootstrap from $mirror (once; cached in $tarball)" >&2
    debootstrap --variant=minbase --include="$include" bookworm "$build" "$mirror" >&2
    # Package lists inside, so the roles' apt tasks work without an update of their own.
    chroot "$build" apt-get update -qq >&2 || true
    chroot "$build" apt-get clean
    tar -C "$build" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
fi
mkdir -p "$dest"
tar -C "$dest" -xf "$tarball"
# What an installed system has and debootstrap leaves out: localhost resolves.
[ -s "$dest/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$dest/etc/hosts"
echo "$dest"
