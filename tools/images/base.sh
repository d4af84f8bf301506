#!/usr/bin/env bash
# Builds the local base image's root filesystem from Debian packages, without any registry:
# `debootstrap --variant=minbase` of the suite apt is configured with, plus python3 and
# python3-venv (Debian's python3 refuses system-wide pip installs; images install into a
# venv). Docs, man pages, locales and apt lists are removed. The result is a tarball in the
# cache, keyed by this script, reused until it changes. Prints the tarball's path.
# ~1 min on first use. Needs root and debootstrap (tools/node/ensure-packages.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KUSTOS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kustos}"
suite="${KUSTOS_DEBIAN_SUITE:-bookworm}"
# KUSTOS_BASE_EXTRA adds packages (comma-separated), e.g. nodejs for an example's app image.
packages="python3,python3-venv,ca-certificates${KUSTOS_BASE_EXTRA:+,$KUSTOS_BASE_EXTRA}"
mirror="${KUSTOS_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)}"
mirror="${mirror:-http://deb.debian.org/debian}"
# Bump `recipe` when the steps below change what the rootfs holds (the key names the cache).
recipe=1
key="$(printf '%s\n' "$recipe" "$suite" "$packages" "$mirror" | sha256sum | cut -c1-16)"
out="$cache/base-$key.tar"
if [ -s "$out" ]; then echo "$out"; exit 0; fi
# One build per key at a time (a CI run, a test run and `make` may start together; two
# builds once shared one temporary tarball, and the second `mv` failed): whoever waited
# finds the tarball built.
mkdir -p "$cache"
exec 8>"$out.lock"
flock 8
if [ -s "$out" ]; then echo "$out"; exit 0; fi
root="$(mktemp -d "$cache/base-rootfs.XXXXXX")"
cleanup() {
  # debootstrap mounts proc and sys inside the target; never delete through a mount.
  awk -v r="$root" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT
t0=$SECONDS
echo "building the base image rootfs: debootstrap $suite minbase + $packages from $mirror" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/locale/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* \
  "$root"/var/cache/debconf/*-old "$root"/var/log/*
# Image runtimes write these at container start; leave no machine-specific copies.
: >"$root/etc/hostname"; : >"$root/etc/resolv.conf"
tar -C "$root" --numeric-owner --sort=name --mtime=@0 -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "base rootfs $(du -m "$out" | cut -f1) MB in $((SECONDS - t0))s" >&2
echo "$out"
