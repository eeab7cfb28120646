#!/bin/sh
# The local base image: Debian bookworm built from Debian packages with debootstrap, so
# nothing is pulled from a container registry, trusting the build host's extra CA
# certificates (a proxy that re-signs TLS, a company CA). docs/images.md explains when
# to use it; `make base-image` runs this script.
#
# Usage: images/base/build.sh [IMAGE]        (default localhost/mlbatch-base:bookworm)
# Needs root (debootstrap and chroot), debootstrap, and podman or docker.
# Environment (all optional):
#   CONTAINER_ENGINE  podman or docker (default: podman when installed, else docker)
#   DEBIAN_MIRROR     the Debian mirror (default: the host's bookworm mirror, else deb.debian.org)
#   EXTRA_CA_DIR      CA certificates (*.crt) to trust (default /usr/local/share/ca-certificates)
#   BASE_WORK_DIR     scratch space for the root filesystem (default: a new dir in /var/tmp)
#   BASE_REBUILD      1: rebuild even when IMAGE was built from this recipe (default: keep it)
#
# `build.sh --recipe-hash` prints the hash of this recipe and the CAs it would trust (the
# image's io.mlbatch.base-recipe label) and builds nothing: a test reuses an existing base
# built the same way.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
engine=${CONTAINER_ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
ca_dir=${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
recipe=$(cat "$here/build.sh" "$ca_dir"/*.crt 2>/dev/null | sha256sum | cut -c1-12)
if [ "${1:-}" = --recipe-hash ]; then echo "$recipe"; exit 0; fi
image=${1:-localhost/mlbatch-base:bookworm}
# An image built from this recipe is kept: a new base is a new image id, which rebuilds
# every layer of every image above it (15-20 min on 2 cores). BASE_REBUILD=1 rebuilds
# (for Debian's security updates, say).
built=$("$engine" image inspect --format '{{index .Labels "io.mlbatch.base-recipe"}}' "$image" 2>/dev/null || true)
if [ "${BASE_REBUILD:-0}" != 1 ] && [ "$built" = "$recipe" ]; then
  echo "::: base image: $image is built from this recipe ($recipe): kept (BASE_REBUILD=1 rebuilds)"
  exit 0
fi
# python3-venv and python-is-python3 for the images' /opt/venv and `python`; libgomp1 is
# OpenMP's runtime, which XGBoost and LightGBM load (train, evaluate, predict).
packages=python3-venv,python-is-python3,ca-certificates,libgomp1

if [ "$(id -u)" -ne 0 ]; then
  echo "build.sh: debootstrap and chroot need root: run it with sudo" >&2; exit 2
fi
command -v debootstrap >/dev/null 2>&1 || {
  echo "build.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }
mirror=${DEBIAN_MIRROR:-$(apt-get indextargets --format '$(REPO_URI)' 'Codename: bookworm' \
  'Created-By: Packages' 2>/dev/null | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian/}

if [ -n "${BASE_WORK_DIR:-}" ]; then
  mkdir -p "$BASE_WORK_DIR"; rootfs=$BASE_WORK_DIR/rootfs
else
  rootfs=$(mktemp -d /var/tmp/mlbatch-base.XXXXXX)/rootfs
fi
trap 'rm -rf "$rootfs"; rmdir "$(dirname "$rootfs")" 2>/dev/null || true' EXIT
step() { echo "::: base image: $1 in $(( $(date +%s) - step_start ))s"; step_start=$(date +%s); }
step_start=$(date +%s)

echo "building $image from $mirror with $engine"
debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror"
step debootstrap
# Debian's CA bundle alone fails behind a re-signing proxy; pip in the image builds reads
# the system bundle, so the host's extra CAs go into it. TMPDIR may not exist in the chroot.
if ls "$ca_dir"/*.crt >/dev/null 2>&1; then
  cp "$ca_dir"/*.crt "$rootfs/usr/local/share/ca-certificates/"
fi
env -u TMPDIR chroot "$rootfs" update-ca-certificates
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
step "CA certificates"
tar -C "$rootfs" -c . | "$engine" import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --change 'LABEL org.opencontainers.image.title=mlbatch-base' \
  --change 'LABEL org.opencontainers.image.description="Debian bookworm from Debian packages"' \
  --change "LABEL io.mlbatch.base-recipe=$recipe" \
  - "$image"
step import
