#!/usr/bin/env bash
# Copies images from podman's storage into the cluster's containerd (the CRI namespace
# k8s.io), the way `kind load` does for kind: there is no registry to pull from. Prints
# each image's time. Images keep their podman names (localhost/<name>:<tag>), so a pod
# naming that image with imagePullPolicy IfNotPresent or Never runs the local copy.
#
# Usage: sudo cluster/load-images.sh IMAGE...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[ -S "$CONTAINERD_SOCKET" ] || fail "containerd is not running ($CONTAINERD_SOCKET): run cluster/up.sh"
ctr=("$(cat "$STATE/bin")/ctr" --address "$CONTAINERD_SOCKET" --namespace k8s.io)
archive_dir=$(mktemp -d -p "${TMPDIR:-/var/tmp}" mlbatch-images.XXXXXX)
trap 'rm -rf "$archive_dir"' EXIT
for image in "$@"; do
  start=$SECONDS
  id=$(podman image inspect --format '{{.Id}}' "$image") || fail "no image $image in podman's storage"
  # Skip an image containerd already holds under this name, imported from this podman id.
  if "${ctr[@]}" images ls --quiet "name==$image,labels.\"io.mlbatch.podman-id\"==${id#sha256:}" \
     | grep -qx "$image"; then
    echo "::: load $image: already loaded"; continue
  fi
  podman save --format docker-archive -o "$archive_dir/image.tar" "$image" >/dev/null
  # Pinned: the kubelet must never remove an image it cannot pull back.
  "${ctr[@]}" images import --label io.cri-containerd.pinned=pinned \
    --label "io.mlbatch.podman-id=${id#sha256:}" "$archive_dir/image.tar" >/dev/null
  rm -f "$archive_dir/image.tar"
  echo "::: load $image: $(( SECONDS - start ))s"
done
