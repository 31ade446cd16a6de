#!/usr/bin/env bash
# Makes a local Debian bookworm image with Python 3.11 (python3, venv, pip) for machines where no
# container registry is reachable, so that the Dockerfiles' default `python:3.11-slim` cannot be pulled.
# Usage: scripts/docker-base.sh [IMAGE]        (default: $OCELOT_BASE_IMAGE or ocelot-base:py311)
# Needs root, debootstrap and a running Docker daemon. Does nothing when IMAGE already exists
# (set FORCE=1 to rebuild). The Debian mirror is $DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
image=${1:-${OCELOT_BASE_IMAGE:-ocelot-base:py311}}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "docker-base: $image already exists (FORCE=1 rebuilds it)"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "docker-base: debootstrap is missing (apt-get install -y debootstrap)" >&2; exit 1; }

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/ocelot-base.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
echo "docker-base: debootstrap bookworm into $rootfs (about a minute)"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$rootfs" "$mirror" > "$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
# Keep the image small: package caches and docs are not needed at run time.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
tar -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  - "$image" >/dev/null
echo "docker-base: built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
