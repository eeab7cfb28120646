#!/usr/bin/env bash
# Builds the one-node cluster's programs from their Go modules, once per machine: the
# binaries go to $MLBATCH_CLUSTER_CACHE/bin-<key>, where the key hashes the pinned versions
# and this folder's sources, so a later run (a warm CI machine) reuses them and a version
# change builds afresh. Prints the folder on stdout, and each step's time on stderr.
#
# Usage: cluster/build.sh            (as any user; Go and the Go module proxy needed)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
cache=${MLBATCH_CLUSTER_CACHE:-/var/tmp/mlbatch-cluster}
key=$(cat "$here/versions.env" "$here/build.sh" "$here"/kube/go.mod "$here"/kube/go.sum \
  "$here"/kube/*.go "$here"/pause/* | sha256sum | cut -c1-12)
bin=$cache/bin-$key
if [ -f "$bin/.complete" ]; then echo "$bin"; exit 0; fi

export GOFLAGS="-trimpath -buildvcs=false"
mkdir -p "$bin.tmp"
step() { # step NAME COMMAND...: run it, print its time
  local start=$SECONDS
  "${@:2}" >&2 || { echo "cluster/build.sh: building $1 failed" >&2; exit 1; }
  echo "::: build $1: $(( SECONDS - start ))s" >&2
}

# Kubernetes reports its version from -X flags (hack/lib/version.sh); unset, it says
# v0.0.0-master, which breaks helm's kubeVersion checks.
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
ldflags+=" -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
step kube bash -c "cd '$here/kube' && go build -ldflags '$ldflags' -o '$bin.tmp/kube' ."
for program in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy \
    kubectl helm cluster-dns; do
  ln -sf kube "$bin.tmp/$program"
done

# containerd without btrfs (it needs the btrfs headers); the shim is what containerd
# starts per pod, found on PATH beside containerd.
step containerd env GOBIN="$bin.tmp" GOFLAGS="$GOFLAGS -tags=no_btrfs" go install -ldflags "-s -w" \
  "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
  "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
  "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
mkdir -p "$bin.tmp/cni"
step cni-plugins env GOBIN="$bin.tmp/cni" go install -ldflags "-s -w" \
  "github.com/containernetworking/plugins/plugins/main/bridge@$CNI_PLUGINS_VERSION" \
  "github.com/containernetworking/plugins/plugins/main/loopback@$CNI_PLUGINS_VERSION" \
  "github.com/containernetworking/plugins/plugins/ipam/host-local@$CNI_PLUGINS_VERSION" \
  "github.com/containernetworking/plugins/plugins/meta/portmap@$CNI_PLUGINS_VERSION"
step kuberay-operator bash -c "GOBIN='$bin.tmp' go install -ldflags '-s -w' \
  'github.com/ray-project/kuberay/ray-operator@$KUBERAY_VERSION' \
  && mv '$bin.tmp/ray-operator' '$bin.tmp/kuberay-operator'"
# The operator's CRDs, from the same module version.
mkdir -p "$bin.tmp/kuberay-crds"
cp "$(go env GOMODCACHE)/github.com/ray-project/kuberay/ray-operator@$KUBERAY_VERSION"/config/crd/bases/*.yaml \
  "$bin.tmp/kuberay-crds/"

# The pause image's one program: static, so the image needs nothing else.
step pause gcc -Os -static -o "$bin.tmp/pause" "$here/pause/pause.c"

rm -rf "$bin" && mv "$bin.tmp" "$bin" && touch "$bin/.complete"
du -sh "$bin" >&2
echo "$bin"
