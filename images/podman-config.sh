#!/bin/sh
# Configure podman for hosts like our build machines (shared/CONTAINERS.md): runc (crun
# fails there in cgroup hybrid mode), ulimits below the host's hard limits (podman's
# defaults exceed them and the runtime refuses to start), storage under one work dir.
#
# Usage: eval "$(images/podman-config.sh WORK_DIR)"
# Writes WORK_DIR/containers.conf and WORK_DIR/storage.conf, and prints the `export` line
# that points podman at them. Podman's large temporary files go to WORK_DIR/tmp too
# (image_copy_tmp_dir), without changing TMPDIR for everything else.
set -eu
work=${1:?usage: podman-config.sh WORK_DIR}
mkdir -p "$work/tmp"
work=$(cd "$work" && pwd)
cat > "$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
image_copy_tmp_dir = "$work/tmp"
EOF
cat > "$work/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/storage"
runroot = "$work/run"
EOF
echo "export CONTAINERS_CONF='$work/containers.conf' CONTAINERS_STORAGE_CONF='$work/storage.conf'"
