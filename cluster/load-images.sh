#!/usr/bin/env bash
# Copies images from podman's storage into the cluster's containerd (the CRI namespace
# k8s.io), the way `kind load` does for kind: there is no registry to pull from. Prints
# the time it took. Images keep their podman names (localhost/<name>:<tag>), so a pod
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
# Skip each image containerd already holds under this name, imported from this podman id.
load=() ids=()
for image in "$@"; do
  id=$(podman image inspect --format '{{.Id}}' "$image") || fail "no image $image in podman's storage"
  if "${ctr[@]}" images ls --quiet "name==$image,labels.\"io.mlbatch.podman-id\"==${id#sha256:}" \
     | grep -qx "$image"; then
    echo "::: load $image: already loaded"
  else
    load+=("$image") ids+=("${id#sha256:}")
  fi
done
[ ${#load[@]} -gt 0 ] || exit 0
start=$SECONDS
# One archive for them all: the images share their runtime layers (images/runtime), which
# it then holds, and containerd unpacks, once.
podman save --multi-image-archive --format docker-archive -o "$archive_dir/images.tar" \
  "${load[@]}" >/dev/null
# Pinned: the kubelet must never remove an image it cannot pull back.
"${ctr[@]}" images import --label io.cri-containerd.pinned=pinned "$archive_dir/images.tar" >/dev/null
rm -f "$archive_dir/images.tar"
for i in "${!load[@]}"; do
  "${ctr[@]}" images label "${load[$i]}" "io.mlbatch.podman-id=${ids[$i]}" >/dev/null
done
echo "::: load ${load[*]}: $(( SECONDS - start ))s"
