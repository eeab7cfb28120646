#!/bin/sh
# Configure podman for hosts like our build machines (shared/CONTAINERS.md): runc (crun
# fails there in cgroup hybrid mode), ulimits below the host's hard limits (podman's
# defaults exceed them and the runtime refuses to start), storage under one work dir.
#
# Usage: eval "$(images/podman-config.sh WORK_DIR)"
# Writes WORK_DIR/containers.conf and WORK_DIR/storage.conf, and prints the `export` line
# that points podman at them (and TMPDIR at WORK_DIR/tmp, for podman's large temp files).
set -eu
work=${1:?usage: podman-config.sh WORK_DIR}
mkdir -p "$work/tmp"
work=$(cd "$work" && pwd)
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n[engine]\nruntime = "runc"\n' \
  > "$work/containers.conf"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n' "$work" "$work" \
  > "$work/storage.conf"
echo "export CONTAINERS_CONF='$work/containers.conf' CONTAINERS_STORAGE_CONF='$work/storage.conf' TMPDIR='$work/tmp'"
